# Discovery with a system daemon and a second user (memvirt(1), DISCOVERY). Root's daemon serves a
# socket handed over as systemd's memvirtd.socket does. A job of root and one of the user, both
# started by 'memvirt run' with no MEMVIRT_SOCKET, link to it; a second job of the user, whose
# system socket answers nothing, starts the user's own daemon. The user's 'memvirt stats' and
# 'memvirt ps' with no options read both daemons and show the user's two jobs and not root's;
# root's show root's job and the user's on the system daemon. The user's daemon stops once idle.
# Needs root and useradd: exit 77 (SKIP) otherwise.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/users.sh"
MEMVIRT=$MV_TOP_BUILDDIR/cli/memvirt
MEMVIRTD=$MV_TOP_BUILDDIR/daemon/memvirtd
MVSOCK=$MV_TOP_BUILDDIR/tests/e2e/mvsock
for p in "$MEMVIRT" "$MEMVIRTD" "$MVSOCK" "$MVTRAIN"; do
	[ -x "$p" ] || mv_fail "$p is not built"
done
unset MEMVIRT_SOCKET LD_PRELOAD MEMVIRT_BUDGET MEMVIRT_LOG_FILE MEMVIRT_DAEMON MEMVIRT_JOB XDG_RUNTIME_DIR

mv_users_need userdel
mv_tmpdir
chmod 700 "$MV_TMP"
T=$MV_TMP
DAEMON=
JOBS=
PUB=

cleanup() {
	mv_stop_pids $JOBS $DAEMON
	mv_users_remove
	[ -n "$PUB" ] && rm -rf "$PUB"
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

mv_user_new mve2e
USER2=$mv_user
UID2=$(id -u "$USER2")
mv_user_check "$USER2"

# The system daemon's directory, which the user can enter, as /run/memvirt; the user's runtime
# directory, as /run/user/UID.
PUB=$(mktemp -d "${TMPDIR:-/tmp}/mv-e2e-pub.XXXXXX") || mv_fail "mktemp failed"
chmod 755 "$PUB"
S=$PUB/memvirtd.sock
mkdir -m 700 "$PUB/xdg"
chown "$UID2" "$PUB/xdg"
US=$PUB/xdg/memvirt/memvirtd.sock

"$MVSOCK" "$S" serve "$MEMVIRTD" --log-file "$T/memvirtd.log" --log-level info &
DAEMON=$!
n=0
until timeout 60 "$MEMVIRT" daemon status --socket "$S" >/dev/null 2>&1; do
	alive "$DAEMON" || mv_fail "the system daemon exited: $(cat "$T/memvirtd.log" 2>/dev/null)"
	n=$((n + 1))
	[ "$n" -lt 600 ] || mv_fail "the system daemon did not answer within 60 s"
	sleep 0.1
done

STEPS=4
ARGS="--model resnet50 --batch 2 --scale 0.125 --steps $STEPS --hold-at 2 --hold-file $PUB/go"

# start_job NAME JOB SYSTEM-SOCKET [USER]: memvirt run of mvtrain, holding before step 2, as root or
# as USER (whose runtime directory is $PUB/xdg).
start_job() {
	set -- "$1" "$2" "$3" "${4:-}"
	# shellcheck disable=SC2086 # ARGS is a list of words
	if [ -n "$4" ]; then
		mv_as "$4" env XDG_RUNTIME_DIR="$PUB/xdg" MEMVIRT_SYSTEM_SOCKET="$3" MEMVIRT_IDLE_EXIT=3 \
			MEMVIRT_LOG=info MEMVIRT_JOB="$2" TMPDIR="$PUB/xdg" \
			timeout 300 "$MEMVIRT" run --simulate -- "$MVTRAIN" $ARGS >"$T/$1.out" 2>"$T/$1.err" &
	else
		env MEMVIRT_SYSTEM_SOCKET="$3" MEMVIRT_LOG=info MEMVIRT_JOB="$2" \
			timeout 300 "$MEMVIRT" run --simulate -- "$MVTRAIN" $ARGS >"$T/$1.out" 2>"$T/$1.err" &
	fi
	JOBS="$JOBS $!"
}
JOB_R=e2e-root-$$
JOB_U1=e2e-user1-$$
JOB_U2=e2e-user2-$$
start_job r "$JOB_R" "$S"
start_job u1 "$JOB_U1" "$S" "$USER2"
start_job u2 "$JOB_U2" "$PUB/none.sock" "$USER2"

# held NAME SOCKET: the job linked to the daemon on SOCKET and holds.
held() {
	grep -q "linked to memvirtd at $2:" "$T/$1.err" 2>/dev/null && grep -q 'holding before step 2' "$T/$1.err"
}
n=0
until held r "$S" && held u1 "$S" && held u2 "$US"; do
	n=$((n + 1))
	[ "$n" -lt 1200 ] || mv_fail "the jobs did not link and hold within 120 s: $(tail -n 3 "$T/r.err" "$T/u1.err" "$T/u2.err")"
	sleep 0.1
done
echo "root's job and the user's first on $S, the user's second on $US"

# as_disc CMD...: the user's memvirt with the system socket at $S.
as_disc() {
	mv_as "$USER2" env XDG_RUNTIME_DIR="$PUB/xdg" MEMVIRT_SYSTEM_SOCKET="$S" timeout 60 "$MEMVIRT" "$@"
}

# The user's stats: both daemons, each under its socket, with the user's jobs only.
as_disc stats >"$T/ustats.txt" 2>"$T/ustats.err" || mv_fail "the user's memvirt stats failed: $(cat "$T/ustats.err")"
grep -qx "memvirtd on $S:" "$T/ustats.txt" && grep -qx "memvirtd on $US:" "$T/ustats.txt" ||
	mv_fail "the user's memvirt stats does not show both daemons: $(cat "$T/ustats.txt")"
grep -q " $JOB_U1 " "$T/ustats.txt" && grep -q " $JOB_U2 " "$T/ustats.txt" ||
	mv_fail "the user's memvirt stats does not show both its jobs: $(cat "$T/ustats.txt")"
grep -q "$JOB_R" "$T/ustats.txt" && mv_fail "the user's memvirt stats shows root's job: $(cat "$T/ustats.txt")"

# The user's ps: the system daemon (root's, with the user's first job), then its own.
as_disc ps --json >"$T/ups.json" 2>"$T/ups.err" || mv_fail "the user's memvirt ps failed: $(cat "$T/ups.err")"
"$MVSOCK" flat <"$T/ups.json" >"$T/ups.flat"
for want in "daemons.0.socket $S" "daemons.0.uid 0" "daemons.0.jobs.0.job $JOB_U1" \
	"daemons.1.socket $US" "daemons.1.uid $UID2" "daemons.1.jobs.0.job $JOB_U2"; do
	grep -qx "$want" "$T/ups.flat" || mv_fail "the user's memvirt ps lacks '$want': $(cat "$T/ups.json")"
done
grep -q '^daemons\.[01]\.jobs\.1\.\|^daemons\.2\.' "$T/ups.flat" && mv_fail "the user's memvirt ps lists more: $(cat "$T/ups.json")"
UDAEMON=$(sed -n 's/^daemons\.1\.pid //p' "$T/ups.flat")
alive "$UDAEMON" || mv_fail "the user's daemon, pid '$UDAEMON', does not run"
[ "$(stat -c %u "/proc/$UDAEMON")" = "$UID2" ] || mv_fail "the user's daemon does not run as uid $UID2"

# Root's: the system daemon alone (root's own socket is its socket), with both jobs on it.
MEMVIRT_SYSTEM_SOCKET=$S timeout 60 "$MEMVIRT" ps --json >"$T/rps.json" 2>"$T/rps.err" ||
	mv_fail "root's memvirt ps failed: $(cat "$T/rps.err")"
"$MVSOCK" flat <"$T/rps.json" >"$T/rps.flat"
grep -qx "daemons.0.socket $S" "$T/rps.flat" || mv_fail "root's memvirt ps: $(cat "$T/rps.json")"
grep -q '^daemons\.1\.' "$T/rps.flat" && mv_fail "root's memvirt ps lists two daemons: $(cat "$T/rps.json")"
[ "$(sed -n 's/^daemons\.0\.jobs\.[0-9]*\.job //p' "$T/rps.flat" | sort | tr '\n' ' ')" = "$JOB_R $JOB_U1 " ] ||
	mv_fail "root's memvirt ps lists jobs: $(cat "$T/rps.json")"
MEMVIRT_SYSTEM_SOCKET=$S timeout 60 "$MEMVIRT" stats >"$T/rstats.txt" || mv_fail "root's memvirt stats failed"
grep -q " $JOB_R " "$T/rstats.txt" && grep -q " $JOB_U1 " "$T/rstats.txt" ||
	mv_fail "root's memvirt stats: $(cat "$T/rstats.txt")"
echo "the user sees its two jobs on two daemons; root sees both jobs on the system daemon"

touch "$PUB/go"
for p in $JOBS; do
	wait "$p" || mv_fail "a job failed: $(tail -n 3 "$T/r.err" "$T/u1.err" "$T/u2.err")"
done
JOBS=
for j in r u1 u2; do
	tail -n 1 "$T/$j.out" | grep -q '^checksum OK ' || mv_fail_run $j "job $j did not end with its checksum"
done
n=0
while alive "$UDAEMON"; do
	n=$((n + 1))
	[ "$n" -lt 600 ] || mv_fail "the user's daemon still runs 60 s after its job ended"
	sleep 0.1
done
[ -e "$US" ] && mv_fail "the user's idle daemon left its socket"
echo "the user's daemon stopped once idle"
exit 0
