# Limits per user and one daemon per socket (memvirtd(8), memvirt.json(5)). A second, real user
# attacks a daemon shared by all users (its socket handed over as systemd's memvirtd.socket does,
# under the 1,024 descriptors of a systemd service), and a third user is the co-tenant:
# - 1,100 idle connections: the attacker keeps connections_per_user of them, the co-tenant's and
#   root's `memvirt stats` work, and the refusals' log lines are rate-limited with a count of
#   those not logged;
# - 300 connections sending a byte a second are all dropped by the frame timeout;
# - 300 partial 1 MiB frames keep the daemon's peak memory within buffered_per_user;
# - 1,700 sessions: sessions_per_user are welcomed, the rest sent SHUTDOWN, and the co-tenant's
#   grant is its share among them;
# - a second memvirtd on the path of a running one whose socket file was deleted refuses, naming
#   the first's pid, and the first says the socket went and makes it again.
# Needs root, useradd and setpriv or runuser: exit 77 (SKIP) otherwise.
set -u
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/users.sh"
MEMVIRT=$MV_TOP_BUILDDIR/cli/memvirt
MEMVIRTD=$MV_TOP_BUILDDIR/daemon/memvirtd
MVSOCK=$MV_TOP_BUILDDIR/tests/e2e/mvsock
for p in "$MEMVIRT" "$MEMVIRTD" "$MVSOCK"; do
	[ -x "$p" ] || mv_fail "$p is not built"
done
unset MEMVIRT_SOCKET LD_PRELOAD

mv_users_need

mv_tmpdir
chmod 700 "$MV_TMP"
T=$MV_TMP
DAEMON=
JOBS=
PUB=

cleanup() {
	exec 3>&-
	mv_stop_pids $JOBS $DAEMON
	[ -n "$PUB" ] && rm -rf "$PUB"
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# The attacker and the co-tenant: system users without a home, made once and kept.
mv_user_keep mvtest
mv_user_keep mvtest2
mv_user_check mvtest

# as WHO CMD...: runs CMD as user WHO.
as() {
	mv_as "$@"
}
ATTACKER=$(id -u mvtest)

PUB=$(mktemp -d "${TMPDIR:-/tmp}/mv-e2e-pub.XXXXXX") || mv_fail "mktemp failed"
chmod 755 "$PUB"
S=$PUB/memvirtd.sock

# shared NOFILE CONFIG: the shared daemon with CONFIG (a JSON text), under NOFILE descriptors, as
# systemd runs it; its log is $T/memvirtd.log.
shared() {
	printf '%s\n' "$2" >"$T/memvirt.json"
	: >"$T/memvirtd.log"
	(
		ulimit -n "$1" || exit 1
		exec "$MVSOCK" "$S" serve "$MEMVIRTD" --config "$T/memvirt.json" --log-file "$T/memvirtd.log"
	) &
	DAEMON=$!
	n=0
	until timeout 60 "$MEMVIRT" daemon status --socket "$S" >/dev/null 2>&1; do
		alive "$DAEMON" || mv_fail "the shared daemon exited: $(cat "$T/memvirtd.log")"
		n=$((n + 1))
		[ "$n" -lt 600 ] || mv_fail "the shared daemon did not answer within 60 s"
		sleep 0.1
	done
}

stop_shared() {
	timeout 60 "$MEMVIRT" daemon stop --socket "$S" >/dev/null || mv_fail "memvirt daemon stop failed"
	wait_pid "$DAEMON" 30
	DAEMON=
}

# wait_pid PID SECONDS: waits for a background process, killing it after SECONDS; its exit status
# goes to RC.
wait_pid() {
	n=$(($2 * 10))
	while alive "$1" && [ "$n" -gt 0 ]; do
		sleep 0.1
		n=$((n - 1))
	done
	alive "$1" && kill -KILL "$1" 2>/dev/null
	RC=0
	wait "$1" 2>/dev/null || RC=$?
}

# wait_line FILE PATTERN SECONDS WHAT: waits until a line of FILE matches PATTERN (grep -E).
wait_line() {
	n=$(($3 * 10))
	until grep -Eq "$2" "$1" 2>/dev/null; do
		n=$((n - 1))
		[ "$n" -gt 0 ] || mv_fail "$4 within $3 s: $(tail -n 5 "$1" 2>/dev/null)"
		sleep 0.1
	done
}

# stats_ok WHO: WHO's memvirt stats --json answers ok.
stats_ok() {
	if [ "$1" = root ]; then
		timeout 60 "$MEMVIRT" stats --json --socket "$S" >"$T/stats.json" 2>"$T/stats.err"
	else
		as "$1" timeout 60 "$MEMVIRT" stats --json --socket "$S" >"$T/stats.json" 2>"$T/stats.err"
	fi || mv_fail "$1's memvirt stats failed: $(cat "$T/stats.err")"
	"$MVSOCK" flat <"$T/stats.json" >"$T/stats.flat"
	grep -qx 'ok true' "$T/stats.flat" || mv_fail "$1's stats: $(cat "$T/stats.json")"
}

# ---- 1,100 idle connections from one user, on a daemon of 1,024 descriptors
# t0 is taken before the daemon starts, so that every minute of its log_lines count starts after t0.
t0=$(date +%s)
shared 1024 '{"limits": {"frame_timeout": 600}}'
as mvtest "$MVSOCK" "$S" flood idle 1100 --wait 300 >"$T/idle.out" 2>&1 &
idle=$!
JOBS=$idle
wait_line "$T/idle.out" '^connected ' 120 "the attacker's 1,100 connections were not all made"
stats_ok mvtest2
stats_ok root
echo "after $(head -n 1 "$T/idle.out") as uid $ATTACKER, the co-tenant's and root's stats work"
kill -TERM "$idle"
wait_pid "$idle" 30
JOBS=
stop_shared
key="uid $ATTACKER: too many connections"
logged=$(grep -c "uid $ATTACKER): too many connections (uid $ATTACKER has [0-9]* open; limits.connections_per_user is 256)" "$T/memvirtd.log")
held=$(sed -n "s/.* \([0-9]*\) more lines like '$key' in 60 s were not logged$/\1/p" "$T/memvirtd.log" |
	awk '{ n += $1 } END { print n + 0 }')
echo "the refusals: $logged logged, $held counted and not logged"
# 20 lines a minute (limits.log_lines): one minute's worth, unless the machine took longer (whole
# seconds from date +%s: one more second covers the part cut off).
most=$((20 * (($(date +%s) - t0 + 1) / 60 + 1)))
[ "$logged" -ge 1 ] && [ "$logged" -le "$most" ] && [ "$held" -ge 1 ] ||
	mv_fail "$logged refusals logged and $held held back, expected 1 to $most logged (limits.log_lines)"
[ $((logged + held)) -eq 844 ] || mv_fail "$logged logged and $held held back: expected the 844 refusals"

# ---- 300 connections sending a byte a second
shared 1024 '{"limits": {"connections_per_user": 400, "frame_timeout": 2}}'
as mvtest "$MVSOCK" "$S" flood slow 300 --wait 120 >"$T/slow.out" 2>&1 &
JOBS=$!
wait_pid "$JOBS" 150
JOBS=
grep -qx 'closed 300 open 0' "$T/slow.out" || mv_fail "the slow connections were not all dropped: $(cat "$T/slow.out")"
grep -q "uid $ATTACKER): no whole frame in 2 s (limits.frame_timeout)" "$T/memvirtd.log" ||
	mv_fail "the daemon did not say why it dropped the slow connections"
stats_ok mvtest2
echo "the 300 slow connections were dropped: $(tail -n 1 "$T/slow.out")"
stop_shared

# ---- 300 partial 1 MiB frames
LIMIT=$((16 << 20))
shared 1024 '{"limits": {"connections_per_user": 400, "buffered_per_user": "16MiB", "frame_timeout": 5}}'
base=$(sed -n 's/^VmHWM:[^0-9]*\([0-9]*\) kB$/\1/p' "/proc/$DAEMON/status")
as mvtest "$MVSOCK" "$S" flood partial 300 --wait 120 >"$T/partial.out" 2>&1 &
JOBS=$!
wait_pid "$JOBS" 150
JOBS=
grep -qx 'closed 300 open 0' "$T/partial.out" || mv_fail "the partial frames were not all dropped: $(cat "$T/partial.out")"
grep -q "uid $ATTACKER: its connections hold [0-9]* bytes of frames not yet whole, the limit (limits.buffered_per_user)" \
	"$T/memvirtd.log" || mv_fail "the daemon did not say the attacker's buffers were full"
hwm=$(sed -n 's/^VmHWM:[^0-9]*\([0-9]*\) kB$/\1/p' "/proc/$DAEMON/status")
echo "the daemon's peak resident memory: $base KiB before, $hwm KiB after 300 partial 1 MiB frames"
# The limit, and 8 MiB for the connections themselves and the allocator's slack. A sanitizer's
# shadow memory and quarantine count in the resident memory of the build scripts/sanitize makes.
if [ -n "${MV_SANITIZER:-}" ]; then
	echo "not judged in the $MV_SANITIZER build"
else
	[ "$hwm" -le $((base + LIMIT / 1024 + 8192)) ] ||
		mv_fail "the daemon's peak resident memory grew from $base to $hwm KiB, more than the 16 MiB limit allows"
fi
stats_ok mvtest2
stop_shared

# ---- 1,700 sessions from one user
TOTAL=$((40 << 30))
CAP=16
shared 4096 "{\"limits\": {\"connections_per_user\": 2000, \"sessions_per_user\": $CAP}}"
mkfifo "$T/tenant.in"
as mvtest2 "$MVSOCK" "$S" hello --job tenant --total $TOTAL --budget $TOTAL <"$T/tenant.in" >"$T/tenant.out" 2>&1 &
JOBS=$!
exec 3>"$T/tenant.in"
wait_line "$T/tenant.out" "^welcome [0-9]+ $TOTAL\$" 30 "the co-tenant was not welcomed with the whole device"
as mvtest "$MVSOCK" "$S" flood hello 1700 --total $TOTAL --budget $TOTAL --wait 300 >"$T/hello.out" 2>&1 &
JOBS="$JOBS $!"
wait_line "$T/hello.out" '^answered ' 240 "the 1,700 sessions were not all answered"
grep -qx "answered $CAP $((1700 - CAP))" "$T/hello.out" ||
	mv_fail "expected $CAP sessions welcomed and the rest sent SHUTDOWN: $(cat "$T/hello.out")"
stats_ok root
grant=$(awk '$1 ~ /^sessions\.[0-9]+\.job$/ && $2 == "tenant" { split($1, k, "."); i = k[2] }
	{ v[$1] = $2 } END { print v["sessions." i ".grant"] }' "$T/stats.flat")
echo "the co-tenant's grant beside $CAP of the attacker's sessions: $grant of $TOTAL"
[ -n "$grant" ] && [ "$grant" -ge $((TOTAL / (CAP + 2))) ] ||
	mv_fail "the co-tenant's grant is $grant, less than its share among $CAP other sessions"
[ "$(grep -c "uid $ATTACKER): too many sessions" "$T/memvirtd.log")" -le 20 ] ||
	mv_fail "the refused sessions were logged without a limit"
exec 3>&-
for p in $JOBS; do
	kill -TERM "$p" 2>/dev/null
	wait_pid "$p" 30
done
JOBS=
stop_shared

# ---- one daemon per socket
OWN=$T/own
mkdir -m 700 "$OWN"
"$MEMVIRTD" --socket "$OWN/d.sock" --log-file "$T/first.log" &
DAEMON=$!
wait_line "$T/first.log" "listening on $OWN/d.sock" 30 "the first daemon did not start"
rm "$OWN/d.sock"
rc=0
timeout 60 "$MEMVIRTD" --socket "$OWN/d.sock" >"$T/second.out" 2>"$T/second.err" || rc=$?
[ "$rc" -eq 1 ] && [ "$(wc -l <"$T/second.err")" -eq 1 ] &&
	grep -q "another memvirtd (pid $DAEMON) serves $OWN/d.sock; not starting" "$T/second.err" ||
	mv_fail "the second daemon on $OWN/d.sock: exit $rc, '$(cat "$T/second.out" "$T/second.err")'"
echo "a second daemon on the path refused: $(cat "$T/second.err")"
wait_line "$T/first.log" "the socket $OWN/d.sock was removed; making it again" 30 \
	"the first daemon did not notice its socket was removed"
wait_line "$T/first.log" "made the socket $OWN/d.sock again" 30 "the first daemon did not make its socket again"
timeout 60 "$MEMVIRT" daemon status --json --socket "$OWN/d.sock" | "$MVSOCK" flat | grep -qx "pid $DAEMON" ||
	mv_fail "the socket made again does not reach the first daemon"
echo "the first daemon noticed and made its socket again"
timeout 60 "$MEMVIRT" daemon stop --socket "$OWN/d.sock" >/dev/null || mv_fail "stopping the first daemon failed"
wait_pid "$DAEMON" 30
DAEMON=
[ -e "$OWN/d.sock.lock" ] && mv_fail "the daemon left its lock file behind"
exit 0
