# memvirt run under a daemon started with 'memvirt daemon start': a job whose budget (40% of the
# device) is below its peak links to the daemon, pages, and ends with the checksum of a plain run;
# 'memvirt stats --json' sampled while it runs shows its session with page-outs and events, and no
# counter in a sample is above the figure the library prints for it at exit. Every counter of
# protocol/counters.def reaches the stats, in the JSON and in the Prometheus text (and memvirt(1)
# names it in both), and the events the library says it sent are never more than the daemon received.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/daemon-lib.sh"

STEPS=30
ARGS="--model resnet50 --batch 2 --scale 0.125 --steps $STEPS"
JOB=e2e-run-$$

plain_run
# 40% of a device of 5/4 of the peak is half the peak: the job must page.
dev=$((peak * 5 / 4))

start_daemon
echo "$out"

# The job holds before step 20 until the samples have seen it page and send events, so that however
# slow the machine, it outlasts what the test waits for.
# shellcheck disable=SC2086 # ARGS is a list of words
SIMCUDA_MEM=$dev MEMVIRT_LOG=info MEMVIRT_JOB=$JOB timeout 300 \
	"$MEMVIRT" run --simulate --socket "$S" --budget 40% -- "$MVTRAIN" $ARGS --hold-at 20 --hold-file "$T/go" \
	>"$T/job.out" 2>"$T/job.err" &
run=$!
JOBS=$run

# Samples while the job runs: every one in which the session is there is kept.
i=0
n=0
while alive "$run"; do
	if timeout 60 "$MEMVIRT" stats --json --socket "$S" >"$T/stats.json" 2>"$T/stats.err" &&
		"$MVSOCK" flat <"$T/stats.json" >"$T/stats.flat" &&
		[ -n "$(sess_field "$T/stats.flat" "$JOB" session)" ]; then
		i=$((i + 1))
		cp "$T/stats.flat" "$T/sample.$i"
		[ -s "$T/stats.prom" ] ||
			timeout 60 "$MEMVIRT" stats --prometheus --socket "$S" >"$T/stats.prom" 2>"$T/stats.err" ||
			rm -f "$T/stats.prom"
		if [ ! -e "$T/go" ] && [ -s "$T/stats.prom" ] &&
			[ "$(sess_field "$T/stats.flat" "$JOB" page_outs)" -gt 0 ] &&
			[ "$(sess_field "$T/stats.flat" "$JOB" events)" -gt 0 ] &&
			[ "$(sess_field "$T/stats.flat" "$JOB" events_sent)" -gt 0 ]; then
			touch "$T/go"
		fi
	fi
	n=$((n + 1))
	[ -e "$T/go" ] || [ "$n" -lt 1200 ] ||
		mv_fail "within 120 s no sample showed job $JOB paging and sending events: $(cat "$T/stats.json")"
	sleep 0.1
done
wait_job "$run" 300
echo "memvirt run --simulate --budget 40% -- mvtrain $ARGS -> exit $MV_RC ($i samples with the session)"

mv_expect_ok job "$STEPS"
[ "$(mv_checksum job)" = "$sum" ] || mv_fail_run job "checksum $(mv_checksum job), the plain run's is $sum"
grep -q "linked to memvirtd at $S" "$T/job.err" || mv_fail_run job "the job did not link to the daemon on $S"
summary=$(grep -E '^memvirt\[[0-9]+\] info: budget .*; page-outs [0-9]+ ' "$T/job.err" | tail -n 1)
[ -n "$summary" ] || mv_fail_run job "no summary line on stderr"
pid=$(echo "$summary" | sed -n 's/^memvirt\[\([0-9]*\)\].*/\1/p')
final() {
	echo "$summary" | sed -n "s/.*[;,] $1 \([0-9][0-9]*\).*/\1/p"
}
outs=$(final page-outs)
ins=$(final page-ins)
faults=$(final fault-ins)
echo "library at exit: page-outs $outs, page-ins $ins, fault-ins $faults"
[ -n "$outs" ] && [ "$outs" -gt 0 ] || mv_fail_run job "page-outs '$outs' at exit, expected more than 0"
[ -n "$ins" ] && [ -n "$faults" ] || mv_fail_run job "no page-ins or fault-ins in the summary"

[ "$i" -gt 0 ] || mv_fail "no stats sample showed job $JOB while it ran"
def=$MV_TOP_SRCDIR/protocol/counters.def
keys=$(sed -n 's/^MV_COUNTER([a-z_]*, [a-z]*, [a-z]*, [a-z]*, "\([a-z_]*\)", "\([a-z_]*\)".*/\1/p' "$def")
metrics=$(sed -n 's/^MV_COUNTER([a-z_]*, [a-z]*, [a-z]*, [a-z]*, "\([a-z_]*\)", "\([a-z_]*\)".*/\2/p' "$def")
[ "$(echo "$keys" | wc -w)" -eq "$(grep -c '^MV_COUNTER(' "$def")" ] || mv_fail "cannot read the keys of $def"
for k in $keys; do
	[ -n "$(sess_field "$T/sample.1" "$JOB" "$k")" ] || mv_fail "sample 1 has no $k for job $JOB"
	grep -q "^\.Qq $k\( \|$\)" "$MV_TOP_SRCDIR/man/memvirt.1" || mv_fail "memvirt(1) does not name $k"
done
for m in $metrics; do
	grep -q "^$m{gpu=\"GPU-[0-9a-f-]*\",gpu_index=\"[0-9]*\",job=\"$JOB\",rank=\"\"} [0-9]" "$T/stats.prom" ||
		mv_fail "the Prometheus text has no $m for job $JOB"
	grep -q "^\.Sy $m\( \|$\)" "$MV_TOP_SRCDIR/man/memvirt.1" || mv_fail "memvirt(1) does not name $m"
done
echo "the stats name all $(echo "$keys" | wc -w) counters of counters.def, in JSON and for Prometheus"
sent=0
paged=0
n=1
while [ "$n" -le "$i" ]; do
	f=$T/sample.$n
	[ "$(sess_field "$f" "$JOB" pid)" = "$pid" ] ||
		mv_fail "sample $n: session of job $JOB has pid $(sess_field "$f" "$JOB" pid), the library's is $pid"
	po=$(sess_field "$f" "$JOB" page_outs)
	pi=$(sess_field "$f" "$JOB" page_ins)
	fa=$(sess_field "$f" "$JOB" fault_ins)
	ev=$(sess_field "$f" "$JOB" events)
	es=$(sess_field "$f" "$JOB" events_sent)
	[ "$es" -le "$ev" ] || mv_fail "sample $n: events_sent $es, more than the $ev events the daemon received"
	[ "$es" -gt 0 ] && sent=$n
	[ "$po" -le "$outs" ] || mv_fail "sample $n: page_outs $po, more than the $outs the library counted"
	[ "$pi" -le "$ins" ] || mv_fail "sample $n: page_ins $pi, more than the $ins the library counted"
	[ "$fa" -le "$faults" ] || mv_fail "sample $n: fault_ins $fa, more than the $faults the library counted"
	if [ "$po" -gt 0 ] && [ "$ev" -gt 0 ]; then
		[ "$paged" -eq 0 ] && echo "sample $n of $i: page_outs $po, page_ins $pi, fault_ins $fa, events $ev"
		paged=$n
	fi
	n=$((n + 1))
done
[ "$paged" -gt 0 ] || mv_fail "no stats sample of the $i taken shows page_outs > 0 and events > 0"
[ "$sent" -gt 0 ] || mv_fail "no stats sample of the $i taken shows the library's events_sent above 0"

timeout 60 "$MEMVIRT" daemon stop --socket "$S" || mv_fail "memvirt daemon stop failed"
alive "$DAEMON" && mv_fail "the daemon (pid $DAEMON) still runs after 'memvirt daemon stop'"
DAEMON=
exit 0
