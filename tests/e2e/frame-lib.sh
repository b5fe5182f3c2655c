# Raw frames of memvirtd's wire protocol (protocol/proto.h) written from the shell, for the
# end-to-end scripts that send the daemon bytes of their own. Sourced after lib.sh.

# Little-endian bytes on stdout.
byte() {
	# shellcheck disable=SC2059 # the format is the byte's octal escape
	printf "\\$(printf %03o "$1")"
}
le16() {
	byte $(($1 & 255))
	byte $(($1 >> 8 & 255))
}
le32() {
	le16 $(($1 & 65535))
	le16 $(($1 >> 16 & 65535))
}
# header MAGIC VERSION TYPE LENGTH [RESERVED]: a frame header (protocol/proto.h).
# shellcheck disable=SC2034 # used by the scripts that source this
MAGIC=$((0x5650564d))
# The protocol version, as protocol/proto.h defines it.
# shellcheck disable=SC2034 # used by the scripts that source this
V=$(sed -n 's/^#define MV_PROTO_VERSION \([0-9]*\)$/\1/p' "$MV_TOP_SRCDIR/protocol/proto.h")
[ -n "$V" ] || mv_fail "no MV_PROTO_VERSION in protocol/proto.h"
header() {
	le32 "$1"
	le16 "$2"
	le16 "$3"
	le32 "$4"
	le32 "${5:-0}"
}
# zeros N: N zero bytes.
zeros() {
	head -c "$1" /dev/zero
}
