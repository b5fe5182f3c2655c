# The library and the memvirt command trust only a daemon of their own user or root (memvirt(1)).
# A second user created here (the victim) runs jobs with XDG_RUNTIME_DIR unset, so that its socket
# is /tmp/memvirt-UID/memvirtd.sock; a third (the attacker) pre-creates that directory, or puts a
# symbolic link there, or serves from a socket of its own in a sticky directory, each time with a
# fake daemon (mvsock fake) granting 0 or 2^63 bytes. The victim's job refuses it with one log line
# naming it, never sends it a byte, and ends with the checksum of a plain run on its own budget;
# its 'memvirt stats' refuses and says why; its 'memvirt run' says why and starts a private daemon.
# Needs root and useradd: exit 77 (SKIP) otherwise.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/daemon-lib.sh"
. "$(dirname "$0")/users.sh"

: "${MEMVIRT_LIB:=$MV_TOP_BUILDDIR/interpose/.libs/libmemvirt.so}"
[ -f "$MEMVIRT_LIB" ] || mv_fail "$MEMVIRT_LIB is not built"
SIMCUDA_DIR=$MV_TOP_BUILDDIR/tests/simcuda
STEPS=4
ARGS="--model resnet50 --batch 2 --scale 0.125 --steps $STEPS"

# setpriv only: the fake daemon is setpriv itself in the background (see fake).
mv_users_need setpriv userdel

VICTIM=
ATTACKER=
VDIR=
trust_cleanup() {
	cleanup
	[ -n "$VDIR" ] && rm -rf "$VDIR"
	mv_users_remove
}
trap trust_cleanup EXIT

mv_user_new mvt
VICTIM=$mv_user
mv_user_new mvt
ATTACKER=$mv_user
VUID=$(id -u "$VICTIM")
AUID=$(id -u "$ATTACKER")

# as UID CMD...: runs CMD as that user, with no supplementary groups.
as() {
	mv_as "$@"
}
as "$VUID" "$MVTRAIN" --help >/dev/null 2>&1 || mv_skip "user $VICTIM cannot run the build tree's programs"
mv_user_check "$VICTIM"

# The victim's socket path, as the library finds it without XDG_RUNTIME_DIR.
VDIR=/tmp/memvirt-$VUID
VSOCK=$VDIR/memvirtd.sock
# Directories in $T the other users reach: the attacker's own, and the victim's TMPDIR.
chmod 711 "$T"
mkdir -m 755 "$T/attacker" && chown "$AUID" "$T/attacker"
mkdir -m 700 "$T/victim" && chown "$VUID" "$T/victim"

plain_run
dev=$((peak * 5 / 4))

# fake SOCKET GRANT: the attacker's fake daemon on SOCKET; its pid goes to DAEMON.
fake() {
	rm -f "$T/fake.out"
	# setpriv itself in the background, not a subshell around it: DAEMON is the fake's pid.
	setpriv --reuid="$AUID" --regid="$(id -g "$AUID")" --clear-groups -- "$MVSOCK" "$1" fake "$2" >"$T/fake.out" 2>&1 &
	DAEMON=$!
	n=0
	until grep -q '^listening$' "$T/fake.out" 2>/dev/null; do
		alive "$DAEMON" || mv_fail "the fake daemon ended: $(cat "$T/fake.out")"
		n=$((n + 1))
		[ "$n" -lt 600 ] || mv_fail "the fake daemon did not listen within 60 s"
		sleep 0.1
	done
}
stop_fake() {
	kill -KILL "$DAEMON" 2>/dev/null
	wait "$DAEMON" 2>/dev/null
	DAEMON=
}

# victim NAME WHY [SETTING...]: the victim's job, preloaded, refuses the fake daemon with one log
# line saying WHY, and ends with the plain run's checksum; the fake saw no HELLO.
victim() {
	name=$1
	why=$2
	shift 2
	MV_RC=0
	# shellcheck disable=SC2086 # ARGS is a list of words
	as "$VUID" env -u XDG_RUNTIME_DIR -u MEMVIRT_SOCKET SIMCUDA_MEM=$dev MEMVIRT_BUDGET=40% MEMVIRT_LOG=info \
		"$@" LD_LIBRARY_PATH="$SIMCUDA_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" LD_PRELOAD="$MEMVIRT_LIB" \
		timeout 120 "$MVTRAIN" $ARGS >"$T/$name.out" 2>"$T/$name.err" || MV_RC=$?
	mv_expect_ok "$name" "$STEPS"
	[ "$(mv_checksum "$name")" = "$sum" ] || mv_fail_run "$name" "checksum $(mv_checksum "$name"), the plain run's is $sum"
	grep -q "linked to memvirtd" "$T/$name.err" && mv_fail_run "$name" "the job linked to the attacker's daemon"
	grep -q '^hello ' "$T/fake.out" && mv_fail_run "$name" "the attacker's daemon got a HELLO: $(cat "$T/fake.out")"
	lines=$(grep -c "not linking to memvirtd: .*$why" "$T/$name.err")
	[ "$lines" -eq 1 ] || mv_fail_run "$name" "$lines log lines saying why the daemon was refused ('$why'), expected 1"
	echo "$name: $(grep "not linking to memvirtd" "$T/$name.err")"
}

# 1. The victim's directory, made by the attacker, with a fake daemon granting 0 bytes.
as "$AUID" mkdir -m 755 "$VDIR" || mv_fail "the attacker could not make $VDIR"
fake "$VSOCK" 0
victim dir "the socket's directory $VDIR belongs to uid $AUID, not to this user or root"

# ... the victim's memvirt stats refuses it and says why, before it sends a byte.
rc=0
as "$VUID" env -u XDG_RUNTIME_DIR -u MEMVIRT_SOCKET timeout 60 "$MEMVIRT" stats >"$T/stats.out" 2>"$T/stats.err" || rc=$?
echo "victim's memvirt stats -> exit $rc: $(cat "$T/stats.err")"
[ "$rc" -ne 0 ] && grep -qF "memvirt stats: refusing the daemon on $VSOCK: the socket's directory $VDIR belongs to uid $AUID" "$T/stats.err" ||
	mv_fail "the victim's memvirt stats: exit $rc, '$(cat "$T/stats.out" "$T/stats.err")'"
grep -q '^control$' "$T/fake.out" && mv_fail "the attacker's daemon got a control hello from memvirt stats"

# ... and its memvirt run says why and runs the job with a private daemon.
MV_RC=0
# shellcheck disable=SC2086 # ARGS is a list of words
as "$VUID" env -u XDG_RUNTIME_DIR -u MEMVIRT_SOCKET TMPDIR="$T/victim" SIMCUDA_MEM=$dev MEMVIRT_LOG=info \
	timeout 120 "$MEMVIRT" run --simulate --budget 40% -- "$MVTRAIN" $ARGS >"$T/run.out" 2>"$T/run.err" || MV_RC=$?
mv_expect_ok run "$STEPS"
[ "$(mv_checksum run)" = "$sum" ] || mv_fail_run run "checksum $(mv_checksum run), the plain run's is $sum"
grep -qF "memvirt run: refusing the daemon on $VSOCK: the socket's directory $VDIR belongs to uid $AUID" "$T/run.err" ||
	mv_fail_run run "memvirt run did not say why it refused the daemon"
grep -q "linked to memvirtd at $T/victim/memvirt-run\." "$T/run.err" || mv_fail_run run "the job did not link to a private daemon"
grep -q '^hello \|^control$' "$T/fake.out" && mv_fail_run run "the attacker's daemon was sent a byte: $(cat "$T/fake.out")"
echo "run: $(grep "refusing the daemon" "$T/run.err")"
stop_fake
rm -rf "$VDIR"

# 2. A symbolic link in the victim's directory's place, to the attacker's, granting 2^63 bytes.
as "$AUID" mkdir -m 777 "$T/attacker/d" && as "$AUID" ln -s "$T/attacker/d" "$VDIR" || mv_fail "the attacker could not link $VDIR"
fake "$VSOCK" 9223372036854775808
victim link "the socket's directory $VDIR is a symbolic link"
stop_fake
rm -f "$VDIR"

# 3. A socket of the attacker's in a sticky directory that anyone may write (like /tmp) ...
mkdir -m 1777 "$T/pub"
fake "$T/pub/fake.sock" 9223372036854775808
victim sock "the socket $T/pub/fake.sock belongs to uid $AUID, not to this user or root" MEMVIRT_SOCKET="$T/pub/fake.sock"
# ... and with its file made the victim's, the daemon's own credentials give it away.
chown "$VUID" "$T/pub/fake.sock"
victim peer "the daemon on $T/pub/fake.sock runs as uid $AUID" MEMVIRT_SOCKET="$T/pub/fake.sock"
stop_fake
exit 0
