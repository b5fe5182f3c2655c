# A job dies in the middle of a page-out: three jobs share a device through a private daemon, one of
# them with a copy engine so slow (a real 300 ms before each device-to-host copy) that its page-outs
# are in flight most of the time. It is killed with SIGKILL while its log shows a page-out issued and
# not ended. The daemon drops its session and gives its share to the other two within a second:
# measured from the kill to the daemon's log lines of the new grants (its own clock), and to the
# first `memvirt stats --json` that shows them (which adds the command's own time, up to a second on
# a loaded machine, so it is held to STATS_MAX_MS). Both other jobs end with the checksum of a plain
# run.
set -u
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/daemon-lib.sh"

STEPS=15
ARGS="--model resnet50 --batch 2 --scale 0.125 --steps $STEPS"
JOB_A=e2e-kpo-a-$$
JOB_B=e2e-kpo-b-$$
JOB_C=e2e-kpo-c-$$
# The longest the grants may take to move after the kill, in milliseconds: by the daemon's log, and
# as the first stats that show it.
RECLAIM_MAX_MS=1000
STATS_MAX_MS=3000

plain_run
dev=$((peak * 5 / 4))

# start_job NAME JOB [SETTINGS]: mvtrain $ARGS under the daemon in the background, asking for 75% of
# a device of 5/4 of its peak: three such jobs cannot all have what they ask, so each is granted a
# third of the device. Its pid goes to JOBS and `last`.
start_job() {
	# shellcheck disable=SC2086 # ARGS and SETTINGS are lists of words
	env SIMCUDA_MEM=$dev MEMVIRT_JOB=$2 $3 timeout 90 \
		"$MEMVIRT" run --simulate --socket "$S" --budget 75% -- "$MVTRAIN" $ARGS \
		>"$T/$1.out" 2>"$T/$1.err" &
	last=$!
	JOBS="$JOBS $last"
}

# stats: the daemon's stats now, flattened into $T/stats.flat.
stats() {
	timeout 10 "$MEMVIRT" stats --json --socket "$S" >"$T/stats.json" 2>/dev/null &&
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
# The other two are stretched by a real delay before each kernel, so that they outlast the kill.
start_job b "$JOB_B" "SIMCUDA_DELAY_KERNEL_US=1000 MEMVIRT_LOG=info"
run_b=$last
start_job c "$JOB_C" "SIMCUDA_DELAY_KERNEL_US=1000 MEMVIRT_LOG=info"
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
		break
	fi
	n=$((n + 1))
	[ "$n" -lt 300 ] || mv_fail "job a had no page-out in flight with all three linked within 30 s"
	sleep 0.1
done
pid_a=$(sess_field "$T/stats.flat" "$JOB_A" pid)
grant_a=$(sess_field "$T/stats.flat" "$JOB_A" grant)
grant_b=$(sess_field "$T/stats.flat" "$JOB_B" grant)
grant_c=$(sess_field "$T/stats.flat" "$JOB_C" grant)
t0=$(now_ms)
kill -KILL "$pid_a"
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
	[ $((t - t0)) -le 10000 ] ||
		mv_fail "10 s after the kill: session a gone after ${gone:-never} ms, grants b ${gb:-none}, c ${gc:-none}"
	sleep 0.02
done
reclaim=$((t - t0))
echo "session a left the stats after at most $gone ms; grants grew to b $gb, c $gc after at most $reclaim ms"
[ "$reclaim" -le "$STATS_MAX_MS" ] || mv_fail "the stats showed the new grants $reclaim ms after the kill"

# The daemon's own times (its log's clock is the wall clock, to the millisecond).
log_ms() {
	grep "$1" "$T/memvirtd.log" | tail -n 1 | cut -d' ' -f1 | xargs -I{} date -d {} +%s%3N
}
ended=$(log_ms "session [0-9]* (pid $pid_a, $JOB_A) ended")
[ -n "$ended" ] || mv_fail "the daemon did not log the end of a's session: $(cat "$T/memvirtd.log")"
late=0
for j in "$JOB_B" "$JOB_C"; do
	at=$(log_ms "(pid [0-9]*, $j): grant [0-9.]* [KMG]*i*B, was")
	[ -n "$at" ] || mv_fail "the daemon logged no new grant for $j: $(cat "$T/memvirtd.log")"
	[ $((at - t0)) -gt "$late" ] && late=$((at - t0))
done
echo "by the daemon's log: a's session ended $((ended - t0)) ms and the last new grant went $late ms after the kill"
[ "$late" -le "$RECLAIM_MAX_MS" ] || mv_fail "the daemon gave a's grant back $late ms after the kill"

wait_job "$run_a" 10
[ "$MV_RC" -ne 0 ] || mv_fail "job a exited 0 after SIGKILL"
wait_job "$run_b" 90
rc_b=$MV_RC
wait_job "$run_c" 90
rc_c=$MV_RC
echo "jobs b and c, mvtrain $ARGS -> exit $rc_b and $rc_c"
for j in b c; do
	MV_RC=$(eval echo "\$rc_$j")
	mv_expect_ok "$j" "$STEPS"
	[ "$(mv_checksum "$j")" = "$sum" ] || mv_fail_run "$j" "checksum $(mv_checksum "$j"), the plain run's is $sum"
done

alive "$DAEMON" || mv_fail "the daemon died"
timeout 30 "$MEMVIRT" daemon stop --socket "$S" >/dev/null || mv_fail "memvirt daemon stop failed"
DAEMON=
exit 0
