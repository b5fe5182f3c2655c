# Invariant 4, the app never blocks on the daemon: memvirtd is stopped with SIGSTOP while a job is
# linked to it, and another job starts while it is stopped. Both end with the checksum of a plain
# run; the one that started against the silent daemon gives up waiting for its WELCOME and runs on
# its local budget. After SIGCONT the daemon serves again.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/daemon-lib.sh"

: "${MEMVIRT_LIB:=$MV_TOP_BUILDDIR/interpose/.libs/libmemvirt.so}"
[ -f "$MEMVIRT_LIB" ] || mv_fail "$MEMVIRT_LIB is not built"
SIMCUDA_DIR=$MV_TOP_BUILDDIR/tests/simcuda
STEPS=15
ARGS="--model resnet50 --batch 2 --scale 0.125 --steps $STEPS"
JOB_A=e2e-stall-a-$$
JOB_C=e2e-stall-c-$$
# Each job holds (mvtrain --hold-at) until the test lets it go, so that it outlasts what the test
# waits for however fast or slow the machine is: a until the daemon is stopped, c until its link
# has given up on the silent daemon.

plain_run
dev=$((peak * 5 / 4))

start_daemon
echo "$out"

# Job a links to the daemon through memvirt run.
# shellcheck disable=SC2086 # ARGS is a list of words
env SIMCUDA_MEM=$dev MEMVIRT_LOG=info MEMVIRT_JOB=$JOB_A timeout 300 \
	"$MEMVIRT" run --simulate --socket "$S" --budget 40% -- "$MVTRAIN" $ARGS \
	--hold-at 5 --hold-file "$T/go-a" >"$T/a.out" 2>"$T/a.err" &
run_a=$!
JOBS=$run_a
n=0
until grep -q "linked to memvirtd at $S" "$T/a.err" 2>/dev/null; do
	alive "$run_a" || mv_fail_run a "job a ended before it linked to the daemon"
	n=$((n + 1))
	[ "$n" -lt 600 ] || mv_fail_run a "job a did not link to the daemon within 60 s"
	sleep 0.1
done
alive "$run_a" || mv_fail_run a "job a ended before the daemon was stopped"
kill -STOP "$DAEMON"
echo "stopped memvirtd (pid $DAEMON) with SIGSTOP while job a runs"

# Job c starts against the stopped daemon: its socket still takes connections, but nothing answers.
# memvirt run would not use a daemon that does not answer, so the library is preloaded directly.
# shellcheck disable=SC2086 # ARGS is a list of words
env SIMCUDA_MEM=$dev MEMVIRT_LOG=info MEMVIRT_JOB=$JOB_C MEMVIRT_BUDGET=40% MEMVIRT_SOCKET="$S" \
	LD_LIBRARY_PATH="$SIMCUDA_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" LD_PRELOAD="$MEMVIRT_LIB" \
	timeout 300 "$MVTRAIN" $ARGS --hold-at 2 --hold-file "$T/go-c" >"$T/c.out" 2>"$T/c.err" &
run_c=$!
JOBS="$JOBS $run_c"
n=0
until grep -q "memvirtd at $S: no WELCOME in time" "$T/c.err" 2>/dev/null; do
	alive "$run_c" || mv_fail_run c "job c ended before it gave up on the silent daemon"
	n=$((n + 1))
	[ "$n" -lt 600 ] || mv_fail_run c "job c did not give up on the silent daemon within 60 s"
	sleep 0.1
done
touch "$T/go-a" "$T/go-c"

wait_job "$run_a" 300
rc_a=$MV_RC
wait_job "$run_c" 300
rc_c=$MV_RC
echo "mvtrain $ARGS, linked then stalled -> exit $rc_a; started stalled -> exit $rc_c"
alive "$DAEMON" || mv_fail "the stopped daemon is gone"
kill -CONT "$DAEMON"

for j in a c; do
	MV_RC=$(eval echo "\$rc_$j")
	mv_expect_ok "$j" "$STEPS"
	[ "$(mv_checksum "$j")" = "$sum" ] || mv_fail_run "$j" "checksum $(mv_checksum "$j"), the plain run's is $sum"
done
grep -q "memvirtd at $S: no WELCOME in time; using the local budget" "$T/c.err" ||
	mv_fail_run c "job c did not give up on the silent daemon"
grep -q "linked to memvirtd" "$T/c.err" && mv_fail_run c "job c linked to a stopped daemon"
if grep -q "lost memvirtd" "$T/a.err"; then
	echo "job a: $(grep "lost memvirtd" "$T/a.err" | head -n 1)"
else
	echo "job a ended before its link gave up on the stopped daemon"
fi

# Continued, the daemon serves again.
timeout 60 "$MEMVIRT" stats --json --socket "$S" >"$T/stats.json" ||
	mv_fail "memvirt stats failed after SIGCONT"
"$MVSOCK" flat <"$T/stats.json" | grep -q '^ok true$' || mv_fail "stats after SIGCONT: $(cat "$T/stats.json")"
timeout 60 "$MEMVIRT" daemon stop --socket "$S" || mv_fail "memvirt daemon stop failed after SIGCONT"
DAEMON=
exit 0
