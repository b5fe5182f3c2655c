# The daemon dies under running jobs: SIGKILL memvirtd while two jobs are linked to it; both go on
# with their local budget and end with the checksum of a plain run. A daemon started again on the
# same socket while the longer job still runs gets it back: the job links again and shows in the
# new daemon's stats.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/daemon-lib.sh"

STEPS=15
ARGS="--model resnet50 --batch 2 --scale 0.125 --steps $STEPS"
JOB_A=e2e-kill-a-$$
JOB_B=e2e-kill-b-$$

plain_run
dev=$((peak * 5 / 4))

# start_job NAME JOB [SETTINGS]: runs mvtrain $ARGS under the daemon in the background, with the
# budget at 40% of a device of 5/4 of its peak; its pid goes to JOBS and `last`.
start_job() {
	# shellcheck disable=SC2086 # ARGS and SETTINGS are lists of words
	env SIMCUDA_MEM=$dev MEMVIRT_LOG=info MEMVIRT_JOB=$2 $3 timeout 60 \
		"$MEMVIRT" run --simulate --socket "$S" --budget 40% -- "$MVTRAIN" $ARGS \
		>"$T/$1.out" 2>"$T/$1.err" &
	last=$!
	JOBS="$JOBS $last"
}

# stats_has JOB: the daemon's stats show a session of JOB now.
stats_has() {
	timeout 10 "$MEMVIRT" stats --json --socket "$S" >"$T/stats.json" 2>/dev/null &&
		"$MVSOCK" flat <"$T/stats.json" >"$T/stats.flat" &&
		[ -n "$(sess_field "$T/stats.flat" "$1" session)" ]
}

start_daemon
echo "$out"
start_job a "$JOB_A"
run_a=$last
# The second job is the long one: a real delay before each kernel stretches it without changing
# what it computes.
start_job b "$JOB_B" SIMCUDA_DELAY_KERNEL_US=500
run_b=$last

n=0
until stats_has "$JOB_A" && stats_has "$JOB_B"; do
	alive "$run_a" && alive "$run_b" || mv_fail "a job ended before both had linked to the daemon"
	n=$((n + 1))
	[ "$n" -lt 300 ] || mv_fail "the jobs did not show in the daemon's stats within 30 s"
	sleep 0.1
done
alive "$run_a" || mv_fail "job a ended before the daemon was killed"
kill -KILL "$DAEMON"
while alive "$DAEMON"; do
	sleep 0.05
done
echo "killed memvirtd (pid $DAEMON) with SIGKILL while both jobs ran"
DAEMON=
[ -S "$S" ] || mv_fail "the killed daemon's socket $S is gone"

# A moment without any daemon, then a new one on the same socket (the old file is stale).
sleep 0.5
alive "$run_b" || mv_fail "job b ended before a new daemon was started"
start_daemon
echo "$out"
back=0
while alive "$run_b"; do
	if stats_has "$JOB_B"; then
		back=1
		echo "job b shows in the new daemon's stats: session $(sess_field "$T/stats.flat" "$JOB_B" session)"
		break
	fi
	sleep 0.1
done

wait_job "$run_a" 60
rc_a=$MV_RC
wait_job "$run_b" 60
rc_b=$MV_RC
echo "two jobs, mvtrain $ARGS -> exit $rc_a and $rc_b"
for j in a b; do
	MV_RC=$(eval echo "\$rc_$j")
	mv_expect_ok "$j" "$STEPS"
	[ "$(mv_checksum "$j")" = "$sum" ] || mv_fail_run "$j" "checksum $(mv_checksum "$j"), the plain run's is $sum"
	grep -q "lost memvirtd" "$T/$j.err" || mv_fail_run "$j" "the library did not notice that the daemon died"
done
[ "$back" -eq 1 ] || mv_fail_run b "job b never showed in the new daemon's stats while it ran"
links=$(grep -c "linked to memvirtd at $S" "$T/b.err")
[ "$links" -ge 2 ] || mv_fail_run b "job b linked $links times, expected again after the restart"

timeout 30 "$MEMVIRT" daemon stop --socket "$S" || mv_fail "memvirt daemon stop failed"
DAEMON=
exit 0
