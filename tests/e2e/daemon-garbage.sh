# Bad frames close only their own connection: while a library session (mvsock hello) is connected,
# other connections send garbage, a truncated header, a truncated payload, a bad magic, a bad
# version, an oversized length, an unknown type, a payload of the wrong size and frames out of
# turn. The daemon closes each of them and logs why, and the session, the daemon and new commands
# go on as before.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/frame-lib.sh"
. "$(dirname "$0")/daemon-lib.sh"
# shellcheck disable=SC2034 # read by start_daemon (daemon-lib.sh)
DAEMON_LOG_LEVEL=debug
start_daemon

# The session that must survive: it asks for the whole of a device of 1000000 bytes.
mkfifo "$T/hello.in" "$T/second.in"
"$MVSOCK" "$S" hello --total 1000000 --budget 1000000 --job e2e-survivor <"$T/hello.in" >"$T/hello.out" 2>&1 &
hello=$!
JOBS=$hello
exec 3>"$T/hello.in"
n=0
until grep -qx 'welcome 1 1000000' "$T/hello.out" 2>/dev/null; do
	n=$((n + 1))
	[ "$n" -lt 600 ] || mv_fail "the session got no WELCOME: $(cat "$T/hello.out")"
	sleep 0.1
done

# bad NAME REASON [--eof]: the bytes in $T/in.bin, sent on a connection of their own, make the
# daemon close it (without waiting for our end of the stream unless --eof) and log REASON; the
# session and the daemon are still there.
bad() {
	b_name=$1 b_reason=$2
	shift 2
	b_before=$(grep -c "bad frame" "$T/memvirtd.log")
	rc=0
	timeout 60 "$MVSOCK" "$S" raw --wait 30 "$@" <"$T/in.bin" >"$T/raw.out" 2>"$T/raw.err" || rc=$?
	echo "$b_name: $(cat "$T/raw.out" "$T/raw.err" | tr '\n' ' ')"
	[ "$rc" -eq 0 ] && [ "$(tail -n 1 "$T/raw.out")" = closed ] ||
		mv_fail "$b_name: the daemon did not close the connection (mvsock exit $rc)"
	n=0
	until [ "$(grep -c "bad frame" "$T/memvirtd.log")" -gt "$b_before" ]; do
		n=$((n + 1))
		[ "$n" -lt 600 ] || mv_fail "$b_name: the daemon logged no reason"
		sleep 0.1
	done
	grep "bad frame" "$T/memvirtd.log" | tail -n 1 | grep -qF "$b_reason" ||
		mv_fail "$b_name: the daemon logged '$(grep "bad frame" "$T/memvirtd.log" | tail -n 1)', expected '$b_reason'"
	alive "$DAEMON" || mv_fail "$b_name: the daemon died"
	alive "$hello" && ! grep -q closed "$T/hello.out" || mv_fail "$b_name: the session was closed"
}

# First, that mvsock tells an open connection from a closed one: a good control hello stays open.
{ header $MAGIC $V $((0x0300)) 8; zeros 8; } >"$T/good.bin"
rc=0
"$MVSOCK" "$S" raw --wait 1 <"$T/good.bin" >"$T/raw.out" || rc=$?
[ "$rc" -eq 1 ] && [ "$(cat "$T/raw.out")" = open ] || mv_fail "a good control hello was closed (mvsock exit $rc)"
# The longest frame there may be, a request of 1 MiB, is answered, and the connection kept.
{
	cat "$T/good.bin"
	header $MAGIC $V $((0x0301)) $((1 << 20))
	printf '{"cmd": "status"}'
	zeros $(((1 << 20) - 17)) | tr '\0' ' '
} >"$T/longest.bin"
rc=0
"$MVSOCK" "$S" raw --wait 60 --answered <"$T/longest.bin" >"$T/raw.out" || rc=$?
[ "$rc" -eq 1 ] && grep -qx 'received [0-9]*' "$T/raw.out" && grep -qx open "$T/raw.out" ||
	mv_fail "a request of 1 MiB: exit $rc, '$(cat "$T/raw.out")', expected an answer on an open connection"

printf 'GET / HTTP/1.1\r\nHost: memvirtd\r\n\r\n' >"$T/in.bin"
bad garbage "bad magic"
zeros 4096 >"$T/in.bin"
bad zeros "bad magic"
head -c 10 "$T/good.bin" >"$T/in.bin"
bad "truncated header" "connection closed inside a frame" --eof
head -c 19 "$T/good.bin" >"$T/in.bin"
bad "truncated payload" "connection closed inside a frame" --eof
{ header $((0x4d4d4d4d)) 1 $((0x0300)) 8; zeros 8; } >"$T/in.bin"
bad "bad magic" "bad magic"
{ header $MAGIC $((V + 1)) $((0x0300)) 8; zeros 8; } >"$T/in.bin"
bad "bad version" "unsupported protocol version"
header $MAGIC $V $((0x0301)) $((2 << 20)) >"$T/in.bin"
bad "oversized length" "frame longer than 1 MiB"
header $MAGIC $V $((0x0301)) $((0xffffffff)) >"$T/in.bin"
bad "length 2^32-1" "frame longer than 1 MiB"
{
	cat "$T/good.bin"
	header $MAGIC $V $((0x0301)) $(((1 << 20) + 1))
} >"$T/in.bin"
bad "length 1 MiB + 1" "frame longer than 1 MiB"
header $MAGIC $V $((0x0999)) 0 >"$T/in.bin"
bad "unknown type" "unknown message type"
header $MAGIC $V $((0x02ff)) 0 >"$T/in.bin"
bad "unknown type in a known block" "unknown message type"
{ header $MAGIC $V $((0x0300)) 8 1; zeros 8; } >"$T/in.bin"
bad "reserved word" "nonzero reserved field"
{ header $MAGIC $V $((0x0100)) 8; zeros 8; } >"$T/in.bin"
bad "short HELLO" "payload size does not match its type"
{ header $MAGIC $V $((0x0100)) 184; zeros 112; printf 'a b'; zeros 69; } >"$T/in.bin"
bad "HELLO with a space in its group token" "malformed group token"
{ header $MAGIC $V $((0x0301)) 2; printf '{}'; } >"$T/in.bin"
bad "request before hello" "neither HELLO nor CONTROL_HELLO"
{ header $MAGIC $V $((0x0200)) 24; zeros 24; } >"$T/in.bin"
bad "WELCOME from a peer" "neither HELLO nor CONTROL_HELLO"
{
	header $MAGIC $V $((0x0300)) 8
	zeros 8
	header $MAGIC $V $((0x0300)) 8
	zeros 8
} >"$T/in.bin"
bad "second control hello" "a second CONTROL_HELLO"
{
	header $MAGIC $V $((0x0300)) 8
	zeros 8
	header $MAGIC $V $((0x0101)) 8
	zeros 8
} >"$T/in.bin"
bad "events on a control session" "a message type a control session may not send"
{
	header $MAGIC $V $((0x0100)) 184
	zeros 184
	header $MAGIC $V $((0x0101)) 8
	le32 5
	le32 0
} >"$T/in.bin"
bad "events count beyond the payload" "EVENTS count does not match its payload size"
{
	header $MAGIC $V $((0x0100)) 184
	zeros 184
	header $MAGIC $V $((0x0301)) 2
	printf '{}'
} >"$T/in.bin"
bad "request on a library session" "a message type a library session may not send"
{
	header $MAGIC $V $((0x0300)) 8
	zeros 8
	head -c 3000 /dev/urandom
} >"$T/in.bin"
bad "garbage after a good frame" "bad frame"

# A request the daemon does not know is answered, not cut.
rc=0
"$MVSOCK" "$S" request '{"cmd": "no-such-command"}' >"$T/req.out" || rc=$?
[ "$rc" -eq 1 ] && grep -q "unknown command 'no-such-command'" "$T/req.out" ||
	mv_fail "an unknown request was not refused with an answer (exit $rc): $(cat "$T/req.out")"

# The session still talks: its counters reach the stats, and a second session on its device gets
# half the device and makes the daemon send it a smaller grant.
echo "events 3" >&3
echo "counters 11 7 5" >&3
n=0
while :; do
	timeout 60 "$MEMVIRT" stats --json --socket "$S" >"$T/stats.json" || mv_fail "memvirt stats failed"
	"$MVSOCK" flat <"$T/stats.json" >"$T/stats.flat"
	grep -qx 'sessions.0.page_outs 11' "$T/stats.flat" && grep -qx 'sessions.0.events 3' "$T/stats.flat" && break
	n=$((n + 1))
	[ "$n" -lt 600 ] || mv_fail "the session's counters never reached the stats: $(cat "$T/stats.json")"
	sleep 0.1
done
grep -qx 'sessions.0.job e2e-survivor' "$T/stats.flat" || mv_fail "the stats do not show the session"
grep -q '^sessions\.1\.' "$T/stats.flat" && mv_fail "a closed connection left a session: $(cat "$T/stats.json")"
"$MVSOCK" "$S" hello --total 1000000 --budget 1000000 --job e2e-second <"$T/second.in" >"$T/second.out" 2>&1 &
JOBS="$JOBS $!"
exec 4>"$T/second.in"
n=0
until grep -qx 'grant 500000' "$T/hello.out" 2>/dev/null; do
	n=$((n + 1))
	[ "$n" -lt 600 ] || mv_fail "the session got no smaller grant when a second one came: $(cat "$T/hello.out")"
	sleep 0.1
done
# The daemon sends the second session its WELCOME in the same turn as the first its GRANT, but the
# second mvsock may print it later than the first prints its grant.
n=0
until grep -qx 'welcome [0-9]* 500000' "$T/second.out" 2>/dev/null; do
	n=$((n + 1))
	[ "$n" -lt 600 ] || mv_fail "the second session got '$(cat "$T/second.out")'"
	sleep 0.1
done
echo "the session goes on: its counters are in the stats, and it was granted 500000 when a second came"

alive "$DAEMON" || mv_fail "the daemon died"
exec 3>&- 4>&-
timeout 60 "$MEMVIRT" daemon stop --socket "$S" >/dev/null || mv_fail "memvirt daemon stop failed"
DAEMON=
exit 0
