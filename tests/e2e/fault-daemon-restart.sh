# The daemon is killed and started again, over and over, while three jobs run: memvirtd gets SIGKILL
# a moment after every start, on the same socket, until the jobs are done. Each job ends with the
# checksum of a plain run, and their logs show that they lost the daemon and linked to it again
# more than once. The script prints how many times the daemon was killed. The jobs hold before
# step 10 (mvtrain --hold-at) until the daemon was killed at least MIN_LOOPS times and each job
# has linked and lost it at least twice, so that nothing depends on how fast the machine is.
set -u
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/daemon-lib.sh"

STEPS=15
ARGS="--model resnet50 --batch 2 --scale 0.125 --steps $STEPS"
# At least this many kills while the jobs run, or the test proves too little.
MIN_LOOPS=5

plain_run
dev=$((peak * 5 / 4))

start_daemon
echo "$out"
runs=
for j in a b c; do
	# A real delay before each kernel stretches the jobs to several seconds without changing
	# what they compute.
	# shellcheck disable=SC2086 # ARGS is a list of words
	env SIMCUDA_MEM=$dev MEMVIRT_LOG=info MEMVIRT_JOB=e2e-restart-$j-$$ SIMCUDA_DELAY_KERNEL_US=800 timeout 300 \
		"$MEMVIRT" run --simulate --socket "$S" --budget 40% -- "$MVTRAIN" $ARGS \
		--hold-at 10 --hold-file "$T/go" >"$T/$j.out" 2>"$T/$j.err" &
	runs="$runs $!"
	JOBS="$JOBS $!"
done

# running: whether any job still runs.
running() {
	for p in $runs; do
		alive "$p" && return 0
	done
	return 1
}

# enough: whether the daemon was killed MIN_LOOPS times and each job linked and lost it twice.
enough() {
	[ "$loops" -ge "$MIN_LOOPS" ] || return 1
	for j in a b c; do
		[ "$(grep -c "linked to memvirtd at $S" "$T/$j.err")" -ge 2 ] &&
			[ "$(grep -c "lost memvirtd" "$T/$j.err")" -ge 2 ] || return 1
	done
}

# links: how many times the jobs linked to a daemon, all together.
links() {
	cat "$T/a.err" "$T/b.err" "$T/c.err" | grep -c "linked to memvirtd at $S" || :
}

# The first daemon lives until all three jobs have linked to it: a job whose `memvirt run` found
# no daemon would start a private one and never come back to this socket.
loops=0
before=2
while running; do
	# Up until some job has linked to this daemon (however slow the machine), then 0 to 0.4 s
	# more, so that the kill lands at different points of the jobs' sessions. Each later daemon
	# waits for one link more than there were when it started.
	n=0
	while running && [ "$(links)" -le "$before" ]; do
		n=$((n + 1))
		[ "$n" -lt 3000 ] || mv_fail "no job linked to the restarted daemon within 60 s"
		sleep 0.02
	done
	sleep "0.$((loops % 5))"
	kill -KILL "$DAEMON"
	while alive "$DAEMON"; do
		sleep 0.02
	done
	wait "$DAEMON" 2>/dev/null || :
	DAEMON=
	loops=$((loops + 1))
	[ -e "$T/go" ] || ! enough || touch "$T/go"
	[ "$loops" -lt 600 ] || mv_fail "the jobs still ran after $loops restarts"
	running || break
	sleep 0.1
	before=$(links)
	start_daemon
done
echo "killed memvirtd with SIGKILL $loops times while the jobs ran, starting it again after each but the last"
[ "$loops" -ge "$MIN_LOOPS" ] || mv_fail "only $loops restarts before the jobs ended"

# shellcheck disable=SC2086 # runs is a list of pids, a b c in order
set -- $runs
for j in a b c; do
	wait_job "$1" 120
	shift
	mv_expect_ok "$j" "$STEPS"
	[ "$(mv_checksum "$j")" = "$sum" ] || mv_fail_run "$j" "checksum $(mv_checksum "$j"), the plain run's is $sum"
	lost=$(grep -c "lost memvirtd" "$T/$j.err" || :)
	links=$(grep -c "linked to memvirtd at $S" "$T/$j.err" || :)
	echo "job $j: checksum $(mv_checksum "$j"), linked $links times, lost the daemon $lost times"
	[ "$links" -ge 2 ] && [ "$lost" -ge 2 ] ||
		mv_fail_run "$j" "linked $links and lost $lost times, expected at least twice each"
done
exit 0
