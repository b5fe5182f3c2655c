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

# start_job NAME JOB HOLD: runs mvtrain $ARGS under the daemon in the background, with the
# budget at 40% of a device of 5/4 of its peak, holding before step HOLD until $T/go-NAME exists;
# its pid goes to JOBS and `last`.
start_job() {
	# shellcheck disable=SC2086 # ARGS is a list of words
	env SIMCUDA_MEM=$dev MEMVIRT_LOG=info MEMVIRT_JOB=$2 timeout 300 \
		"$MEMVIRT" run --simulate --socket "$S" --budget 40% -- "$MVTRAIN" $ARGS \
		--hold-at "$3" --hold-file "$T/go-$1" >"$T/$1.out" 2>"$T/$1.err" &
	last=$!
	JOBS="$JOBS $last"
}

# stats_has JOB: the daemon's stats show a session of JOB now.
stats_has() {
	timeout 60 "$MEMVIRT" stats --json --socket "$S" >"$T/stats.json" 2>/dev/null &&
		"$MVSOCK" flat <"$T/stats.json" >"$T/stats.flat" &&
		[ -n "$(sess_field "$T/stats.flat" "$1" session)" ]
}

start_daemon
echo "$out"
# Each job holds (mvtrain --hold-at) until the test lets it go: a while the daemon is killed, b
# until the new daemon has it back. No step of the test depends on how fast the jobs run.
start_job a "$JOB_A" 5
run_a=$last
start_job b "$JOB_B" 8
run_b=$last

n=0
until stats_has "$JOB_A" && stats_has "$JOB_B"; do
	alive "$run_a" && alive "$run_b" || mv_fail "a job ended before both had linked to the daemon"
	n=$((n + 1))
	[ "$n" -lt 600 ] || mv_fail "the jobs did not show in the daemon's stats within 60 s"
	sleep 0.1
done
kill -KILL "$DAEMON"
while alive "$DAEMON"; do
	sleep 0.05
done
echo "killed memvirtd (pid $DAEMON) with SIGKILL while both jobs ran"
DAEMON=
[ -S "$S" ] || mv_fail "the killed daemon's socket $S is gone"

# Both notice; a goes on without a daemon.
for j in a b; do
	n=0
	until grep -q "lost memvirtd" "$T/$j.err"; do
		n=$((n + 1))
		[ "$n" -lt 600 ] || mv_fail_run "$j" "the library did not notice within 60 s that the daemon died"
		sleep 0.1
	done
done
touch "$T/go-a"

# A new daemon on the same socket (the old file is stale) gets b back.
alive "$run_b" || mv_fail_run b "job b ended before a new daemon was started"
start_daemon
echo "$out"
back=0
n=0
while alive "$run_b" && [ "$n" -lt 600 ]; do
	if stats_has "$JOB_B"; then
		back=1
		echo "job b shows in the new daemon's stats: session $(sess_field "$T/stats.flat" "$JOB_B" session)"
		break
	fi
	n=$((n + 1))
	sleep 0.1
done
touch "$T/go-b"

wait_job "$run_a" 300
rc_a=$MV_RC
wait_job "$run_b" 300
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

timeout 60 "$MEMVIRT" daemon stop --socket "$S" || mv_fail "memvirt daemon stop failed"
DAEMON=
exit 0
