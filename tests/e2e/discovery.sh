# Jobs started one by one find one daemon (memvirt(1), DISCOVERY). With no MEMVIRT_SOCKET and no
# system daemon, two 'memvirt run --simulate' started at once end up on one daemon, on the user's
# own socket, which one of them started: both jobs link to it, 'memvirt stats' and 'memvirt ps'
# with no options show both on it, and both end with the checksum of a plain run. Once they have
# ended, the daemon stops by itself (--idle-exit) and removes its socket and lock. A system daemon
# that answers is the one a job gets. memvirtd refuses an --idle-exit that is not whole seconds.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/daemon-lib.sh"
MEMVIRTD=$MV_TOP_BUILDDIR/daemon/memvirtd
[ -x "$MEMVIRTD" ] || mv_fail "$MEMVIRTD is not built"

for bad in -1 1.5 x 604801 ""; do
	rc=0
	timeout 60 "$MEMVIRTD" --idle-exit "$bad" --socket "$T/bad.sock" >/dev/null 2>"$T/bad.err" || rc=$?
	[ "$rc" -eq 2 ] && grep -qF "memvirtd: --idle-exit '$bad' is not a number of seconds" "$T/bad.err" ||
		mv_fail "memvirtd --idle-exit '$bad': exit $rc, '$(cat "$T/bad.err")'"
done
[ -e "$T/bad.sock" ] && mv_fail "memvirtd with a bad --idle-exit made its socket"

STEPS=4
ARGS="--model resnet50 --batch 2 --scale 0.125 --steps $STEPS"
plain_run

# Nothing answers on the system daemon's socket; the user's own socket is under $T.
mkdir -m 700 "$T/xdg"
XDG_RUNTIME_DIR=$T/xdg
MEMVIRT_SYSTEM_SOCKET=$T/system/memvirtd.sock
MEMVIRT_IDLE_EXIT=3
export XDG_RUNTIME_DIR MEMVIRT_SYSTEM_SOCKET MEMVIRT_IDLE_EXIT
if [ "$(id -u)" -eq 0 ]; then
	US=$MEMVIRT_SYSTEM_SOCKET # root's own socket is the system daemon's
else
	US=$XDG_RUNTIME_DIR/memvirt/memvirtd.sock
fi
JOB_A=e2e-disc-a-$$
JOB_B=e2e-disc-b-$$

# start_job NAME JOB: a run of mvtrain that holds before step 2 until $T/go exists; pid in `last`.
start_job() {
	# shellcheck disable=SC2086 # ARGS is a list of words
	MEMVIRT_LOG=info MEMVIRT_JOB=$2 timeout 300 "$MEMVIRT" run --simulate -- "$MVTRAIN" $ARGS \
		--hold-at 2 --hold-file "$T/go" >"$T/$1.out" 2>"$T/$1.err" &
	last=$!
	JOBS="$JOBS $last"
}
start_job a "$JOB_A"
run_a=$last
start_job b "$JOB_B"
run_b=$last

# Both hold, linked to the daemon on the user's socket.
n=0
until grep -q "linked to memvirtd at $US:" "$T/a.err" 2>/dev/null &&
	grep -q "linked to memvirtd at $US:" "$T/b.err" 2>/dev/null &&
	grep -q 'holding before step 2' "$T/a.err" && grep -q 'holding before step 2' "$T/b.err"; do
	alive "$run_a" || mv_fail_run a "job a ended before it held, linked to $US"
	alive "$run_b" || mv_fail_run b "job b ended before it held, linked to $US"
	n=$((n + 1))
	[ "$n" -lt 1200 ] || mv_fail "the jobs did not both link to $US and hold within 120 s: $(cat "$T/a.err" "$T/b.err")"
	sleep 0.1
done

# stats, with no option, shows both jobs, on one daemon.
timeout 60 "$MEMVIRT" stats >"$T/stats.txt" 2>"$T/stats.err" || mv_fail "memvirt stats failed: $(cat "$T/stats.err")"
grep -q "^ *[0-9]*  $JOB_A " "$T/stats.txt" && grep -q "^ *[0-9]*  $JOB_B " "$T/stats.txt" ||
	mv_fail "memvirt stats does not show both jobs: $(cat "$T/stats.txt")"
grep -q "^memvirtd on " "$T/stats.txt" && mv_fail "memvirt stats shows two daemons: $(cat "$T/stats.txt")"
timeout 60 "$MEMVIRT" stats --json >"$T/stats.json" || mv_fail "memvirt stats --json failed"
"$MVSOCK" flat <"$T/stats.json" >"$T/stats.flat"
[ "$(sed -n 's/^sessions\.[0-9]*\.job //p' "$T/stats.flat" | sort | tr '\n' ' ')" = "$JOB_A $JOB_B " ] ||
	mv_fail "memvirt stats --json has sessions: $(cat "$T/stats.json")"

# ps: one daemon, on the user's socket, this user's, with both jobs on it.
timeout 60 "$MEMVIRT" ps --json >"$T/ps.json" 2>"$T/ps.err" || mv_fail "memvirt ps --json failed: $(cat "$T/ps.err")"
"$MVSOCK" flat <"$T/ps.json" >"$T/ps.flat"
grep -qx "daemons.0.socket $US" "$T/ps.flat" || mv_fail "memvirt ps found no daemon on $US: $(cat "$T/ps.json")"
grep -q '^daemons\.1\.' "$T/ps.flat" && mv_fail "memvirt ps found two daemons: $(cat "$T/ps.json")"
grep -qx "daemons.0.uid $(id -u)" "$T/ps.flat" || mv_fail "memvirt ps: the daemon is not this user's: $(cat "$T/ps.json")"
[ "$(sed -n 's/^daemons\.0\.jobs\.[0-9]*\.job //p' "$T/ps.flat" | sort | tr '\n' ' ')" = "$JOB_A $JOB_B " ] ||
	mv_fail "memvirt ps lists jobs: $(cat "$T/ps.json")"
pa=$(sed -n 's/^daemons\.0\.jobs\.[0-9]*\.pid //p' "$T/ps.flat" | sort -n | tr '\n' ' ')
ma=$(sed -n 's/^sessions\.[0-9]*\.pid //p' "$T/stats.flat" | sort -n | tr '\n' ' ')
[ "$pa" = "$ma" ] || mv_fail "memvirt ps lists pids '$pa', stats '$ma'"
DAEMON=$(sed -n 's/^daemons\.0\.pid //p' "$T/ps.flat")
alive "$DAEMON" || mv_fail "memvirt ps names daemon pid '$DAEMON', which does not run"
tr '\0' ' ' <"/proc/$DAEMON/cmdline" | grep -q -- "--socket $US --idle-exit 3 " ||
	mv_fail "the daemon runs as '$(tr '\0' ' ' <"/proc/$DAEMON/cmdline")'"
timeout 60 "$MEMVIRT" ps >"$T/ps.txt" || mv_fail "memvirt ps failed"
grep -q "^memvirtd pid $DAEMON, user .*, on $US: 2 jobs$" "$T/ps.txt" &&
	grep -q " $JOB_A " "$T/ps.txt" && grep -q " $JOB_B " "$T/ps.txt" ||
	mv_fail "memvirt ps printed: $(cat "$T/ps.txt")"
# Any other daemon started on that socket is gone (a zombie is not alive).
for p in $(pgrep -f -- "--socket $US --idle-exit"); do
	[ "$p" = "$DAEMON" ] || ! alive "$p" || mv_fail "a second daemon, pid $p, runs on $US"
done
echo "two runs, one daemon (pid $DAEMON) on $US: $(grep -c '^ *[0-9]' "$T/ps.txt") jobs in memvirt ps"

touch "$T/go"
wait_job "$run_a" 300
mv_expect_ok a "$STEPS"
wait_job "$run_b" 300
mv_expect_ok b "$STEPS"
JOBS=
for j in a b; do
	[ "$(mv_checksum $j)" = "$sum" ] || mv_fail_run $j "checksum $(mv_checksum $j), the plain run's is $sum"
done

# The last client gone, the daemon stops by itself and takes its socket and lock with it.
n=0
while alive "$DAEMON"; do
	n=$((n + 1))
	[ "$n" -lt 600 ] || mv_fail "the daemon (pid $DAEMON, --idle-exit 1) still runs 60 s after its jobs ended"
	sleep 0.1
done
DAEMON=
[ -e "$US" ] && mv_fail "the idle daemon left its socket $US"
[ -e "$US.lock" ] && mv_fail "the idle daemon left its lock $US.lock"
echo "the daemon stopped once idle, leaving nothing on $US"

# A system daemon that answers is the one a job gets, and no daemon is started for the user.
MEMVIRT_SYSTEM_SOCKET=$T/sys2/memvirtd.sock
timeout 60 "$MEMVIRT" daemon start --socket "$MEMVIRT_SYSTEM_SOCKET" --log-file "$T/sys2.log" >"$T/sys2.out" ||
	mv_fail "memvirt daemon start --socket $MEMVIRT_SYSTEM_SOCKET failed"
DAEMON=$(sed -n 's/^memvirtd started (pid \([0-9]*\)).*/\1/p' "$T/sys2.out")
rc=0
timeout 60 "$MEMVIRT" run -- sh -c 'echo "$MEMVIRT_SOCKET"' >"$T/sys2.run" 2>"$T/sys2.err" || rc=$?
[ "$rc" -eq 0 ] || mv_fail "memvirt run with a system daemon: exit $rc: $(cat "$T/sys2.err")"
[ "$(cat "$T/sys2.run")" = "$MEMVIRT_SYSTEM_SOCKET" ] ||
	mv_fail "the job's MEMVIRT_SOCKET is '$(cat "$T/sys2.run")', not the system daemon's $MEMVIRT_SYSTEM_SOCKET"
[ "$(id -u)" -eq 0 ] || [ ! -e "$US" ] || mv_fail "memvirt run started the user's daemon beside the system one"
timeout 60 "$MEMVIRT" daemon stop --socket "$MEMVIRT_SYSTEM_SOCKET" >/dev/null || mv_fail "memvirt daemon stop failed"
DAEMON=
echo "with a system daemon answering, the job linked to it"
exit 0
