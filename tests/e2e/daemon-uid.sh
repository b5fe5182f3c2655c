# Who sees what (memvirtd(8), DESIGN §9): a daemon shared by all users, on a socket handed over as
# systemd's memvirtd.socket does (mode 0666 in a 0755 directory), serves a second user created
# here. That user's 'memvirt stats' and 'daemon status' show only its own session, never root's,
# and its 'daemon stop' and 'config reload' are refused; root sees both sessions and may reload and
# stop. memvirtd itself refuses to make its socket in a directory others can enter or that another
# user owns. /metrics shows root's job by name and the user's only by its uid. Needs root and
# useradd: exit 77 (SKIP) otherwise.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/users.sh"
MEMVIRT=$MV_TOP_BUILDDIR/cli/memvirt
MEMVIRTD=$MV_TOP_BUILDDIR/daemon/memvirtd
MVSOCK=$MV_TOP_BUILDDIR/tests/e2e/mvsock
for p in "$MEMVIRT" "$MEMVIRTD" "$MVSOCK"; do
	[ -x "$p" ] || mv_fail "$p is not built"
done
unset MEMVIRT_SOCKET LD_PRELOAD

mv_users_need userdel

mv_tmpdir
chmod 700 "$MV_TMP"
T=$MV_TMP
DAEMON=
JOBS=
USER2=
PUB=


cleanup() {
	exec 3>&- 4>&-
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

# as_user CMD...: runs CMD as the second user.
as_user() {
	mv_as "$USER2" "$@"
}
mv_user_check "$USER2"

# A directory the second user can enter, as /run/memvirt is for the shared daemon.
PUB=$(mktemp -d "${TMPDIR:-/tmp}/mv-e2e-pub.XXXXXX") || mv_fail "mktemp failed"
chmod 755 "$PUB"
S=$PUB/memvirtd.sock

# memvirtd does not make its own socket where others can reach it, nor in another user's directory.
rc=0
timeout 60 "$MEMVIRTD" --socket "$PUB/own.sock" 2>"$T/loose.err" || rc=$?
[ "$rc" -eq 1 ] && grep -q "socket directory $PUB has mode 0755; it must be 0700" "$T/loose.err" ||
	mv_fail "memvirtd --socket in a 0755 directory: exit $rc, '$(cat "$T/loose.err")'"
[ -e "$PUB/own.sock" ] && mv_fail "memvirtd made its socket in a 0755 directory"
mkdir -m 700 "$PUB/theirs"
chown "$UID2" "$PUB/theirs"
rc=0
timeout 60 "$MEMVIRTD" --socket "$PUB/theirs/own.sock" 2>"$T/theirs.err" || rc=$?
[ "$rc" -eq 1 ] && grep -q "socket directory $PUB/theirs belongs to uid $UID2" "$T/theirs.err" ||
	mv_fail "memvirtd --socket in another user's directory: exit $rc, '$(cat "$T/theirs.err")'"
[ -e "$PUB/theirs/own.sock" ] && mv_fail "memvirtd made its socket in another user's directory"

# The shared daemon: root's, listening on a socket it was handed (LISTEN_PID, LISTEN_FDS), and
# serving metrics on a port nothing listens on.
MPORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$MVSOCK" "$S" serve "$MEMVIRTD" --log-file "$T/memvirtd.log" --log-level debug --metrics "127.0.0.1:$MPORT" &
DAEMON=$!
n=0
until timeout 60 "$MEMVIRT" daemon status --socket "$S" >/dev/null 2>&1; do
	alive "$DAEMON" || mv_fail "the shared daemon exited: $(cat "$T/memvirtd.log" 2>/dev/null)"
	n=$((n + 1))
	[ "$n" -lt 600 ] || mv_fail "the shared daemon did not answer within 60 s"
	sleep 0.1
done
grep -q "listening on $S (socket from systemd)" "$T/memvirtd.log" ||
	mv_fail "the daemon did not take the socket it was handed: $(cat "$T/memvirtd.log")"

# stats_as WHO FILE: WHO's (root or user) memvirt stats --json, flattened into FILE.
stats_as() {
	if [ "$1" = root ]; then
		timeout 60 "$MEMVIRT" stats --json --socket "$S" >"$T/stats.json" 2>"$T/stats.err"
	else
		as_user timeout 60 "$MEMVIRT" stats --json --socket "$S" >"$T/stats.json" 2>"$T/stats.err"
	fi || mv_fail "$1's memvirt stats failed: $(cat "$T/stats.err")"
	"$MVSOCK" flat <"$T/stats.json" >"$2"
}
# jobs_in FILE: the job names of the sessions in flattened stats, sorted, on one line.
jobs_in() {
	sed -n 's/^sessions\.[0-9]*\.job //p' "$1" | sort | tr '\n' ' '
}

# Root's session, then the user's own view before it has one: nothing at all.
mkfifo "$T/root.in" "$T/user.in"
"$MVSOCK" "$S" hello --job e2e-root --total 1000000 --budget 1000000 <"$T/root.in" >"$T/root.out" 2>&1 &
JOBS=$!
exec 3>"$T/root.in"
n=0
until grep -q '^welcome ' "$T/root.out" 2>/dev/null; do
	n=$((n + 1))
	[ "$n" -lt 600 ] || mv_fail "root's session got no WELCOME: $(cat "$T/root.out")"
	sleep 0.1
done
stats_as root "$T/root0.flat"
[ "$(jobs_in "$T/root0.flat")" = "e2e-root " ] || mv_fail "root sees sessions '$(jobs_in "$T/root0.flat")'"
stats_as user "$T/user0.flat"
grep -qx 'ok true' "$T/user0.flat" || mv_fail "the user's stats failed: $(cat "$T/user0.flat")"
grep -q '^sessions\.' "$T/user0.flat" && mv_fail "the user sees root's session: $(cat "$T/user0.flat")"
grep -q '^devices\.' "$T/user0.flat" && mv_fail "the user sees a device it has no session on: $(cat "$T/user0.flat")"

# The user's own session: the user sees it and only it; root sees both.
as_user "$MVSOCK" "$S" hello --job e2e-user --total 1000000 --budget 1000000 <"$T/user.in" >"$T/user.out" 2>&1 &
JOBS="$JOBS $!"
exec 4>"$T/user.in"
n=0
until grep -q '^welcome ' "$T/user.out" 2>/dev/null; do
	n=$((n + 1))
	[ "$n" -lt 600 ] || mv_fail "the user's session got no WELCOME: $(cat "$T/user.out")"
	sleep 0.1
done
stats_as user "$T/user1.flat"
[ "$(jobs_in "$T/user1.flat")" = "e2e-user " ] || mv_fail "the user sees sessions '$(jobs_in "$T/user1.flat")'"
grep -qx "sessions.0.uid $UID2" "$T/user1.flat" || mv_fail "the user's session is not of uid $UID2"
grep -qx 'devices.0.sessions 1' "$T/user1.flat" || mv_fail "the user's device line counts root's session"
stats_as root "$T/root1.flat"
[ "$(jobs_in "$T/root1.flat")" = "e2e-root e2e-user " ] || mv_fail "root sees sessions '$(jobs_in "$T/root1.flat")'"
as_user "$MEMVIRT" daemon status --json --socket "$S" >"$T/status.json" 2>&1 || mv_fail "the user's daemon status failed"
"$MVSOCK" flat <"$T/status.json" | grep -qx 'sessions 1' || mv_fail "the user's status counts $(cat "$T/status.json")"
timeout 60 "$MEMVIRT" daemon status --json --socket "$S" | "$MVSOCK" flat | grep -qx 'sessions 2' ||
	mv_fail "root's status does not count both sessions"
echo "user $USER2 (uid $UID2) sees only its own session; root sees both"
# Anyone may read /metrics: root's job keeps its name (the daemon's own user), the user's is its uid.
curl -sf "http://127.0.0.1:$MPORT/metrics" >"$T/metrics.txt" || mv_fail "GET /metrics failed"
grep -q '^memvirt_launches_total{.*,job="e2e-root",' "$T/metrics.txt" ||
	mv_fail "/metrics does not name root's job: $(cat "$T/metrics.txt")"
grep -q "^memvirt_launches_total{.*,job=\"uid$UID2\"," "$T/metrics.txt" ||
	mv_fail "/metrics does not show the user's job as uid$UID2: $(cat "$T/metrics.txt")"
grep -q e2e-user "$T/metrics.txt" && mv_fail "/metrics names the user's job to anyone"
echo "/metrics names root's job and shows the user's as uid$UID2"

# The user may not stop the daemon or make it reload.
rc=0
as_user timeout 60 "$MEMVIRT" daemon stop --socket "$S" >"$T/stop.out" 2>"$T/stop.err" || rc=$?
[ "$rc" -ne 0 ] && grep -q 'permission denied' "$T/stop.err" ||
	mv_fail "the user's daemon stop: exit $rc, '$(cat "$T/stop.out" "$T/stop.err")'"
rc=0
as_user timeout 60 "$MEMVIRT" config reload --socket "$S" >"$T/reload.out" 2>"$T/reload.err" || rc=$?
[ "$rc" -eq 1 ] && grep -q 'permission denied' "$T/reload.err" ||
	mv_fail "the user's config reload: exit $rc, '$(cat "$T/reload.out" "$T/reload.err")'"
rc=0
as_user timeout 60 "$MVSOCK" "$S" request '{"cmd": "stop"}' >"$T/req.out" 2>&1 || rc=$?
[ "$rc" -eq 1 ] && grep -q 'permission denied' "$T/req.out" || mv_fail "the user's stop request: exit $rc, '$(cat "$T/req.out")'"
echo "the user's stop and reload are refused"
alive "$DAEMON" || mv_fail "the daemon stopped at the user's request"
stats_as root "$T/root2.flat"
[ "$(jobs_in "$T/root2.flat")" = "e2e-root e2e-user " ] || mv_fail "after the refusals root sees '$(jobs_in "$T/root2.flat")'"
grep -q closed "$T/root.out" "$T/user.out" && mv_fail "a session was closed"

# Root may.
timeout 60 "$MEMVIRT" config reload --socket "$S" >/dev/null || mv_fail "root's config reload failed"
exec 3>&- 4>&-
timeout 60 "$MEMVIRT" daemon stop --socket "$S" >/dev/null || mv_fail "root's daemon stop failed"
alive "$DAEMON" && mv_fail "the daemon runs on after root's stop"
DAEMON=
[ -S "$S" ] || mv_fail "the daemon removed the socket it was handed"
exit 0
