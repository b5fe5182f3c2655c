# A job of two processes under one memvirt run (a shell starting two mvtrain, ranks 0 and 1): both
# are one group, and their grants, sampled while both hold linked, sum to at most the job's budget;
# with --budget-per-process each gets the whole budget. Both checksums match a plain run's. The stats
# show each process's rank and the group. --record with %r writes one trace per rank, each naming
# its rank; without a pattern the second process refuses to record, in one line, and the first's
# trace reads whole; --record-max ends a trace cleanly at its cap, and trace info says it was cut.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/daemon-lib.sh"

STEPS=6
ARGS="--model resnet50 --batch 2 --scale 0.125 --steps $STEPS"

plain_run
# 40% of a device of 5/4 of the peak: two budgets fit on it side by side.
dev=$((peak * 5 / 4))
start_daemon
echo "$out"

# job_of_two NAME [RUN OPTION...]: memvirt run with the options, of a shell that starts two mvtrain
# with RANK 0 and 1, each holding before step 2 until $T/go-NAME exists; their output goes to
# $T/NAME-r0.out, $T/NAME-r0.err and so on, and the job's pid to `job`.
job_of_two() {
	name=$1
	shift
	# shellcheck disable=SC2016 # the inner script's own variables
	env SIMCUDA_MEM=$dev MEMVIRT_LOG=info MEMVIRT_JOB="$name" timeout 300 \
		"$MEMVIRT" run --simulate --socket "$S" --budget 40% "$@" -- sh -c \
		'for r in 0 1; do RANK=$r "$0" $1 --hold-at 2 --hold-file "$2" >"$3-r$r.out" 2>"$3-r$r.err" & done; wait' \
		"$MVTRAIN" "$ARGS" "$T/go-$name" "$T/$name" >"$T/$name.out" 2>"$T/$name.err" &
	job=$!
	JOBS="$JOBS $job"
}

# sessions_of NAME: waits until both processes of job NAME are linked and granted (a grant above
# 0 each: the device was divided with both on it); leaves the flattened stats in $T/NAME.flat.
sessions_of() {
	n=0
	while :; do
		if timeout 60 "$MEMVIRT" stats --json --socket "$S" >"$T/stats.json" 2>"$T/stats.err" &&
			"$MVSOCK" flat <"$T/stats.json" >"$T/$1.flat" &&
			[ "$(sess_field "$T/$1.flat" "$1" grant | grep -c '^[1-9]')" -eq 2 ]; then
			return 0
		fi
		alive "$job" || mv_fail "job $1 ended before both its processes were granted: $(cat "$T/$1.err")"
		n=$((n + 1))
		[ "$n" -lt 1200 ] || mv_fail "job $1: its two processes were not both granted within 120 s"
		sleep 0.1
	done
}

# finish NAME: lets job NAME's processes go on, waits for it, and checks both checksums.
finish() {
	touch "$T/go-$1"
	wait_job "$job" 300
	[ "$MV_RC" -eq 0 ] || mv_fail "memvirt run of job $1: exit $MV_RC: $(cat "$T/$1.err")"
	for r in 0 1; do
		MV_RC=0
		mv_expect_ok "$1-r$r" "$STEPS"
		[ "$(mv_checksum "$1-r$r")" = "$sum" ] ||
			mv_fail_run "$1-r$r" "checksum $(mv_checksum "$1-r$r"), the plain run's is $sum"
	done
}

# One group: the grants sum to at most the budget, and neither process has all of it.
job_of_two shared --record "$T/shared.%r.trace"
sessions_of shared
budget=$(sess_field "$T/shared.flat" shared budget | sort -u)
grants=$(sess_field "$T/shared.flat" shared grant | tr '\n' ' ')
groups=$(sess_field "$T/shared.flat" shared group | sort -u)
ranks=$(sess_field "$T/shared.flat" shared rank | sort | tr '\n' ' ')
echo "shared: budget $budget, grants $grants, group $groups, ranks $ranks"
[ "$(echo "$budget" | wc -l)" -eq 1 ] && [ "$budget" -gt 0 ] || mv_fail "shared: budgets '$budget'"
set -- $grants
[ $(($1 + $2)) -le "$budget" ] || mv_fail "shared: grants $1 + $2 are more than the budget $budget"
[ "$1" -lt "$budget" ] && [ "$2" -lt "$budget" ] || mv_fail "shared: a process has the whole budget: $grants"
case $groups in
run-*) ;;
*) mv_fail "shared: the processes' groups are '$groups', expected one run-... token" ;;
esac
[ "$ranks" = "0 1 " ] || mv_fail "shared: ranks '$ranks', expected 0 and 1"
timeout 60 "$MEMVIRT" stats --socket "$S" >"$T/table.out" || mv_fail "memvirt stats failed"
head -n 1 "$T/table.out" | grep -q ' RANK  GROUP ' || mv_fail "the stats table has no GROUP column: $(cat "$T/table.out")"
[ "$(grep -c " $(echo "$groups" | cut -c 1-12) " "$T/table.out")" -eq 2 ] ||
	mv_fail "the stats table does not show the group's short form twice: $(cat "$T/table.out")"
finish shared
for r in 0 1; do
	timeout 60 "$MEMVIRT" trace info --json "$T/shared.$r.trace" >"$T/info$r.json" ||
		mv_fail "trace info of rank $r's trace failed"
	"$MVSOCK" flat <"$T/info$r.json" >"$T/info$r.flat"
	grep -qx "rank $r" "$T/info$r.flat" || mv_fail "rank $r's trace names rank '$(grep '^rank ' "$T/info$r.flat")'"
	grep -qx "truncated false" "$T/info$r.flat" || mv_fail "rank $r's trace is truncated"
done

# Each its own budget; one trace file for both: the second process refuses it, and an earlier
# run's file of that name is gone first.
echo "an earlier run's" >"$T/one.trace"
job_of_two apart --budget-per-process --record "$T/one.trace"
sessions_of apart
budget=$(sess_field "$T/apart.flat" apart budget | sort -u)
grants=$(sess_field "$T/apart.flat" apart grant | sort -u)
groups=$(sess_field "$T/apart.flat" apart group | sort -u)
echo "apart: budget $budget, grants $grants, group $groups"
[ "$grants" = "$budget" ] || mv_fail "--budget-per-process: grants '$grants', expected each the budget $budget"
[ "$groups" = "null" ] || mv_fail "--budget-per-process: the processes have groups '$groups'"
finish apart
refusals=$(cat "$T/apart-r0.err" "$T/apart-r1.err" | grep -c "MEMVIRT_RECORD=$T/one.trace exists.*%p or %r")
[ "$refusals" -eq 1 ] || mv_fail "$refusals processes refused to record to one.trace, expected 1"
timeout 60 "$MEMVIRT" trace info --json "$T/one.trace" >"$T/one.json" || mv_fail "trace info of one.trace failed"
"$MVSOCK" flat <"$T/one.json" >"$T/one.flat"
grep -qx "truncated false" "$T/one.flat" || mv_fail "one.trace is truncated"
grep -q "^launches [1-9]" "$T/one.flat" || mv_fail "one.trace has no launches"

# A cap: the trace ends cleanly at it, says so, and the job runs to its end.
cap=16384
# shellcheck disable=SC2086 # ARGS is a list of words
env SIMCUDA_MEM=$dev MEMVIRT_JOB=capped timeout 300 "$MEMVIRT" run --simulate --socket "$S" \
	--record "$T/cap.trace" --record-max 16KiB -- "$MVTRAIN" $ARGS >"$T/capped.out" 2>"$T/capped.err" ||
	mv_fail_run capped "memvirt run --record-max failed"
MV_RC=0
mv_expect_ok capped "$STEPS"
[ "$(mv_checksum capped)" = "$sum" ] || mv_fail_run capped "checksum $(mv_checksum capped), the plain run's is $sum"
[ "$(grep -c "the trace $T/cap.trace reached its cap, MEMVIRT_RECORD_MAX=$cap bytes" "$T/capped.err")" -eq 1 ] ||
	mv_fail_run capped "no one line about the trace's cap"
size=$(wc -c <"$T/cap.trace")
[ "$size" -le "$cap" ] || mv_fail "cap.trace has $size bytes, over the cap of $cap"
timeout 60 "$MEMVIRT" trace info "$T/cap.trace" >"$T/cap.info" || mv_fail "trace info of cap.trace failed"
grep -q "^cut         yes" "$T/cap.info" || mv_fail "trace info does not say cap.trace was cut: $(cat "$T/cap.info")"
grep -q "^truncated   no" "$T/cap.info" || mv_fail "cap.trace does not end with its END record"
echo "cap.trace: $size bytes, cut at the cap of $cap"
exit 0
