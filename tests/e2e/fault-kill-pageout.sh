# A job dies in the middle of a page-out: three jobs share a device through a private daemon, one of
# them with a copy engine so slow (a real 300 ms before each device-to-host copy) that its page-outs
# are in flight most of the time. It is killed with SIGKILL while its log shows a page-out issued and
# not ended. The daemon drops its session and gives its share to the other two: its log shows a's
# session ended and a new, larger grant for each, and `memvirt stats --json` shows them. Both other
# jobs end with the checksum of a plain run. The other two hold before a step (mvtrain --hold-at)
# until the test has seen the new grants, so no step depends on how fast the machine is; each wait
# is bounded at 60 s. The times from the kill to the new grants are printed, and appended to the file
# $MV_KPO_TIMES when it is set (tests/bench/reclaim.sh takes their median); they are not asserted.
set -u
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/daemon-lib.sh"

STEPS=15
ARGS="--model resnet50 --batch 2 --scale 0.125 --steps $STEPS"
JOB_A=e2e-kpo-a-$$
JOB_B=e2e-kpo-b-$$
JOB_C=e2e-kpo-c-$$
# The bound on each wait for an event, in seconds: generous, as a loaded machine is slow.
WAIT_S=60

plain_run
dev=$((peak * 5 / 4))

# start_job NAME JOB [SETTINGS [MVTRAIN-ARGS]]: mvtrain $ARGS under the daemon in the background,
# asking for 75% of a device of 5/4 of its peak: three such jobs cannot all have what they ask, so
# each is granted a third of the device. Its pid goes to JOBS and `last`.
start_job() {
	# shellcheck disable=SC2086 # ARGS, SETTINGS and MVTRAIN-ARGS are lists of words
	env SIMCUDA_MEM=$dev MEMVIRT_JOB=$2 ${3:-} timeout 300 \
		"$MEMVIRT" run --simulate --socket "$S" --budget 75% -- "$MVTRAIN" $ARGS ${4:-} \
		>"$T/$1.out" 2>"$T/$1.err" &
	last=$!
	JOBS="$JOBS $last"
}

# stats: the daemon's stats now, flattened into $T/stats.flat.
stats() {
	timeout "$WAIT_S" "$MEMVIRT" stats --json --socket "$S" >"$T/stats.json" 2>/dev/null &&
		"$MVSOCK" flat <"$T/stats.json" >"$T/stats.flat"
}

# inflight: how many page-outs job a's log shows issued and not ended.
inflight() {
	awk '/page-out of .* issued$/ { n[$5]++ } /page-out of .* ended: / { n[$5]-- }
		END { k = 0; for (a in n) if (n[a] > 0) k++; print k }' "$T/a.log"
}

now_ms() {
	echo $(($(date +%s%N) / 1000000))
}

start_daemon
echo "$out"
# Job a logs at debug to a file of its own: a page-out's "issued" and "ended" lines.
start_job a "$JOB_A" "SIMCUDA_DELAY_D2H_US=300000 MEMVIRT_LOG=debug MEMVIRT_LOG_FILE=$T/a.log"
run_a=$last
# The other two hold before step 10 until the test has seen their new grants: they outlast the kill
# however fast they run.
start_job b "$JOB_B" "MEMVIRT_LOG=info" "--hold-at 10 --hold-file $T/go"
run_b=$last
start_job c "$JOB_C" "MEMVIRT_LOG=info" "--hold-at 10 --hold-file $T/go"
run_c=$last

# Until all three are linked and job a has a page-out in flight.
n=0
while :; do
	for p in $run_a $run_b $run_c; do
		alive "$p" || mv_fail "a job ended before the kill: $(cat "$T"/*.err)"
	done
	if stats && [ -n "$(sess_field "$T/stats.flat" "$JOB_A" pid)" ] &&
		[ -n "$(sess_field "$T/stats.flat" "$JOB_B" grant)" ] &&
		[ -n "$(sess_field "$T/stats.flat" "$JOB_C" grant)" ] &&
		[ -f "$T/a.log" ] && [ "$(inflight)" -gt 0 ]; then
		pid_a=$(sess_field "$T/stats.flat" "$JOB_A" pid)
		grant_a=$(sess_field "$T/stats.flat" "$JOB_A" grant)
		grant_b=$(sess_field "$T/stats.flat" "$JOB_B" grant)
		grant_c=$(sess_field "$T/stats.flat" "$JOB_C" grant)
		t0=$(now_ms)
		# The page-out seen may have ended while the fields were read on a busy machine: the
		# kill comes right after a look that finds one in flight, else the loop looks again.
		if [ "$(inflight)" -gt 0 ]; then
			kill -KILL "$pid_a"
			break
		fi
	fi
	n=$((n + 1))
	[ "$n" -lt $((WAIT_S * 10)) ] || mv_fail "job a had no page-out in flight with all three linked within $WAIT_S s"
	sleep 0.1
done
echo "killed job a (pid $pid_a, grant $grant_a) with SIGKILL; grants before: b $grant_b, c $grant_c"

# Its log, complete up to the kill (one write per line), shows the page-outs it died in.
left=$(inflight)
[ "$left" -gt 0 ] || mv_fail "job a's log shows no page-out in flight at the kill: $(tail -n 5 "$T/a.log")"
echo "job a died with $left page-outs issued and not ended ($(grep -c 'issued$' "$T/a.log") issued in all)"

# The daemon reclaims a's grant: its session goes, and b's and c's grants grow.
gone=
while :; do
	stats || mv_fail "memvirt stats failed after the kill"
	t=$(now_ms)
	if [ -z "$gone" ] && [ -z "$(sess_field "$T/stats.flat" "$JOB_A" pid)" ]; then
		gone=$((t - t0))
	fi
	gb=$(sess_field "$T/stats.flat" "$JOB_B" grant)
	gc=$(sess_field "$T/stats.flat" "$JOB_C" grant)
	if [ -n "$gone" ] && [ "${gb:-0}" -gt "$grant_b" ] && [ "${gc:-0}" -gt "$grant_c" ]; then
		break
	fi
	[ $((t - t0)) -le $((WAIT_S * 1000)) ] ||
		mv_fail "$WAIT_S s after the kill: session a gone after ${gone:-never} ms, grants b ${gb:-none}, c ${gc:-none}"
	sleep 0.02
done
reclaim=$((t - t0))
echo "session a left the stats after at most $gone ms; grants grew to b $gb, c $gc after at most $reclaim ms"

# The daemon's log: a's session ended, and after that line a new grant for each of b and c. The log
# may trail the stats by a moment, so this waits for the lines. Their times (the log's clock is the
# wall clock, to the millisecond) are printed, not asserted.
ENDED="session [0-9]* (pid $pid_a, $JOB_A) ended"
# grant_after JOB: the line number of JOB's last grant line if it comes after a's end, else nothing.
grant_after() {
	awk -v e="(pid $pid_a, $JOB_A) ended" -v g=", $1): grant " '
		index($0, e) { end = NR } index($0, g) { last = NR }
		END { if (end && last > end) print last }' "$T/memvirtd.log"
}
n=0
until [ -n "$(grant_after "$JOB_B")" ] && [ -n "$(grant_after "$JOB_C")" ]; do
	n=$((n + 1))
	[ "$n" -lt $((WAIT_S * 10)) ] ||
		mv_fail "the daemon's log shows no end of a's session followed by new grants for b and c: $(cat "$T/memvirtd.log")"
	sleep 0.1
done
log_ms() {
	grep "$1" "$T/memvirtd.log" | tail -n 1 | cut -d' ' -f1 | xargs -I{} date -d {} +%s%3N
}
ended=$(log_ms "$ENDED")
late=0
for j in "$JOB_B" "$JOB_C"; do
	at=$(log_ms "(pid [0-9]*, $j): grant [0-9.]* [KMG]*i*B, was")
	[ $((at - t0)) -gt "$late" ] && late=$((at - t0))
done
echo "by the daemon's log: a's session ended $((ended - t0)) ms and the last new grant went $late ms after the kill"
if [ -n "${MV_KPO_TIMES:-}" ]; then
	echo "$late $reclaim" >>"$MV_KPO_TIMES"
fi

: >"$T/go"
wait_job "$run_a" "$WAIT_S"
[ "$MV_RC" -ne 0 ] || mv_fail "job a exited 0 after SIGKILL"
wait_job "$run_b" 300
rc_b=$MV_RC
wait_job "$run_c" 300
rc_c=$MV_RC
echo "jobs b and c, mvtrain $ARGS -> exit $rc_b and $rc_c"
for j in b c; do
	MV_RC=$(eval echo "\$rc_$j")
	mv_expect_ok "$j" "$STEPS"
	[ "$(mv_checksum "$j")" = "$sum" ] || mv_fail_run "$j" "checksum $(mv_checksum "$j"), the plain run's is $sum"
done

alive "$DAEMON" || mv_fail "the daemon died"
timeout 60 "$MEMVIRT" daemon stop --socket "$S" >/dev/null || mv_fail "memvirt daemon stop failed"
DAEMON=
exit 0
