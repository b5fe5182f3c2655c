# The daemon dies under running jobs: SIGKILL memvirtd while two jobs are linked to it; both go on
# with their local budget and end with the checksum of a plain run. A daemon started again on the
# same socket while the longer job still runs gets it back: the job links again and shows in the
# new daemon's stats.
. "$(dirname "$0")/lib.sh"
MEMVIRT=$MV_TOP_BUILDDIR/daemon/memvirt
MVSOCK=$MV_TOP_BUILDDIR/tests/e2e/mvsock
mv_need_mvtrain
for p in "$MEMVIRT" "$MVSOCK"; do
	[ -x "$p" ] || mv_fail "$p is not built"
done
if [ -n "${MEMVIRT_LIB:-}" ]; then
	MEMVIRT_LIBRARY=$MEMVIRT_LIB
	export MEMVIRT_LIBRARY
fi

# Small granules and a small slab threshold let buffers of a few KiB page.
SIMCUDA_GRANULARITY=4KiB
MEMVIRT_SLAB_THRESHOLD=4KiB
export SIMCUDA_GRANULARITY MEMVIRT_SLAB_THRESHOLD
unset SIMCUDA_MEM SIMCUDA_MODEL_ONLY SIMCUDA_NO_HOST_VMM LD_PRELOAD MEMVIRT_SOCKET
unset MEMVIRT_BUDGET MEMVIRT_LOG MEMVIRT_LOG_FILE MEMVIRT_SAFETY_NET MEMVIRT_HOST_LIMIT MEMVIRT_JOB
unset MEMVIRT_WEIGHT MEMVIRT_DAEMON MEMVIRT_REAL_LIBCUDA

mv_tmpdir
chmod 700 "$MV_TMP"
T=$MV_TMP
S=$T/memvirtd.sock
DAEMON=
JOBS=

# Whether a process is still running (a zombie is not).
alive() {
	[ -r "/proc/$1/stat" ] && ! grep -q '^[0-9]* (.*) Z' "/proc/$1/stat" 2>/dev/null
}

cleanup() {
	for p in $JOBS $DAEMON; do
		kill -CONT "$p" 2>/dev/null
		kill -TERM "$p" 2>/dev/null
	done
	for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
		left=
		for p in $JOBS $DAEMON; do
			alive "$p" && left="$left $p"
		done
		[ -z "$left" ] && break
		sleep 0.1
	done
	for p in $left; do
		kill -KILL "$p" 2>/dev/null
	done
	wait 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# wait_job PID SECONDS: waits for a background job, killing it after SECONDS (a hang guard);
# leaves its exit status in MV_RC.
wait_job() {
	n=$(($2 * 10))
	while alive "$1" && [ "$n" -gt 0 ]; do
		sleep 0.1
		n=$((n - 1))
	done
	if alive "$1"; then
		kill -TERM "$1" 2>/dev/null
		sleep 1
		kill -KILL "$1" 2>/dev/null
		wait "$1" 2>/dev/null
		mv_fail "pid $1 still ran after $2 s"
	fi
	MV_RC=0
	wait "$1" || MV_RC=$?
}

# sess_field FLAT JOB FIELD: FIELD of the session of job JOB in a flattened stats answer.
sess_field() {
	awk -v job="$2" -v f="$3" '
		{ split($1, k, ".") }
		k[1] == "sessions" && k[3] == "job" && $2 == job { mine[k[2]] = 1 }
		k[1] == "sessions" && k[3] == f { val[k[2]] = $2 }
		END { for (i in mine) print val[i] }' "$1"
}

STEPS=15
ARGS="--model resnet50 --batch 2 --scale 0.125 --steps $STEPS"
JOB_A=e2e-kill-a-$$
JOB_B=e2e-kill-b-$$

# shellcheck disable=SC2086 # ARGS is a list of words
mv_run plain $ARGS
mv_expect_ok plain "$STEPS"
sum=$(mv_checksum plain)
peak=$(mv_peak plain)
[ -n "$peak" ] && [ "$peak" -gt 0 ] || mv_fail_run plain "no peak in the output"
dev=$((peak * 5 / 4))

# start_daemon: memvirt daemon start on $S; its pid goes to DAEMON.
start_daemon() {
	out=$(timeout 30 "$MEMVIRT" daemon start --socket "$S" --log-file "$T/memvirtd.log" --log-level info) ||
		mv_fail "memvirt daemon start --socket $S failed"
	DAEMON=$(echo "$out" | sed -n 's/^memvirtd started (pid \([0-9]*\)).*/\1/p')
	[ -n "$DAEMON" ] || mv_fail "memvirt daemon start printed no pid: $out"
	echo "$out"
}

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
