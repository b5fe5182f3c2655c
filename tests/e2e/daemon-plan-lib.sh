# memvirtd plans for a running job: with the job's policy mmcnn in the daemon's configuration, a
# job linked to it learns its iteration, memvirtd learns the same one from the job's events and
# sends a PLAN, and the library recognises it as a plan for its own iteration (same fingerprint,
# with memvirtd's names for the functions), binds every move and follows it. The job pages under
# the plan and ends with the checksum of a plain run.
#
# Once it has followed the plan for three iterations, the library stops sending its launches
# (memvirtd has the iteration; each launch would only tell it the same again): memvirtd's stats
# show the session following quietly. When the job changes shape (--reshape-at), the library
# leaves the plan, its launches go to memvirtd again, and memvirtd starts learning anew.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/daemon-lib.sh"

STEPS=15
ARGS="--model resnet50 --batch 2 --scale 0.125 --steps $STEPS --reshape-at 12"

plain_run
dev=$((peak * 5 / 4))
cat >"$T/memvirt.json" <<'JSON'
{ "jobs": { "default": { "policy": "mmcnn", "page_min": "4KiB" } } }
JSON
start_daemon --config "$T/memvirt.json"

# The job holds before step 6 until the library has installed memvirtd's plan: memvirtd plans on
# a timer from the events the link sends, which a loaded machine may delay past the job's end.
# shellcheck disable=SC2086 # ARGS is a list of words
SIMCUDA_MEM=$dev MEMVIRT_LOG=debug timeout 300 "$MEMVIRT" run --simulate --socket "$S" \
	--config "$T/memvirt.json" --budget 40% -- "$MVTRAIN" $ARGS --hold-at 6 --hold-at 11 --hold-at 13 \
	--hold-file "$T/go" \
	>"$T/job.out" 2>"$T/job.err" &
job=$!
JOBS=$job
n=0
until grep -q "plan: memvirtd's plan [0-9]* installed" "$T/job.err" 2>/dev/null; do
	alive "$job" || break
	n=$((n + 1))
	[ "$n" -lt 1200 ] || mv_fail_run job "the library installed no plan from memvirtd within 120 s"
	sleep 0.1
done
touch "$T/go"

# hold_then STEP TEXT: waits for the job to hold before STEP (the log says so), then checks that its
# log has TEXT. sstat (daemon-lib.sh) reads the job's session, the only one.
hold_then() {
	dl_wait_log job "$job" "holding before step $1 " 120
	grep -q "$2" "$T/job.err" || mv_fail_run job "no '$2' in the job's log by step $1"
}
# until_stat FIELD VALUE WHAT: waits (60 s at most) until the session's FIELD is VALUE.
until_stat() {
	n=0
	until [ "$(sstat "$1")" = "$2" ]; do
		n=$((n + 1))
		[ "$n" -lt 600 ] || mv_fail_run job "$3: memvirtd's $1 is $(sstat "$1"), expected $2"
		sleep 0.1
	done
}

# Steps 6 to 10 follow the plan: three whole iterations are enough for the library to stop sending
# its launches, and five leave room for the count to start over once, as it has on a loaded
# machine. By step 11 memvirtd knows it.
hold_then 11 "memvirtd's plan followed for 3 iterations; its launches are no longer sent to it"
until_stat following_quietly true "the job follows its plan quietly"
n=0
until [ "$(sstat launches_quiet)" -gt 0 ]; do
	n=$((n + 1))
	[ "$n" -lt 600 ] || mv_fail_run job "the library's counters never showed a launch unsent"
	sleep 0.1
done
events=$(sstat events)
echo "step 11: following quietly; $(sstat launches_quiet) launches unsent, $events events sent"
touch "$T/go.2"
# Step 12 doubles the batch: the job leaves the plan, and memvirtd learns again.
hold_then 13 "the job left the plan's iteration; launches go to memvirtd again"
until_stat following_quietly false "the job left its plan"
[ "$(sstat quiet_spells)" = 1 ] || mv_fail_run job "memvirtd counted $(sstat quiet_spells) quiet spells, expected 1"
[ "$(sstat learn_resets)" -ge 1 ] || mv_fail_run job "memvirtd did not start learning anew"
[ "$(sstat events)" -gt "$events" ] || mv_fail_run job "no event reached memvirtd after the job left its plan"
echo "step 13: launches sent again ($(sstat events) events), learning restarted"
touch "$T/go.3"
wait_job "$job" 300
echo "memvirt run --config (policy mmcnn) --budget 40% -- mvtrain $ARGS -> exit $MV_RC"
mv_expect_ok job "$STEPS"
[ "$(mv_checksum job)" = "$sum" ] || mv_fail_run job "checksum $(mv_checksum job), the plain run's is $sum"
grep -q "linked to memvirtd at $S" "$T/job.err" || mv_fail_run job "the job did not link to the daemon on $S"

# The daemon sent a plan, and the library took it with every move bound to one of its buffers.
installed=$(sed -n "s/.* plan: memvirtd's plan [0-9]* installed: \([0-9]*\) of \([0-9]*\) moves bound.*/\1 \2/p" \
	"$T/job.err" | head -n 1)
[ -n "$installed" ] || mv_fail_run job "the library never installed a plan from memvirtd"
# shellcheck disable=SC2086 # two numbers
set -- $installed
echo "memvirtd's first plan: $1 of $2 moves bound"
[ "$2" -gt 0 ] && [ "$1" -eq "$2" ] || mv_fail_run job "only $1 of memvirtd's $2 planned moves were bound"
planned=$(grep -E '^memvirt\[[0-9]+\] info: budget ' "$T/job.err" | tail -n 1 | sed -n 's/.* planned out \([0-9]*\),.*/\1/p')
[ -n "$planned" ] && [ "$planned" -gt 0 ] || mv_fail_run job "planned out '$planned' at exit, expected more than 0"
echo "planned page-outs at exit: $planned"
unsent=$(grep -E '^memvirt\[[0-9]+\] info: budget ' "$T/job.err" | tail -n 1 | sed -n 's/.* unsent to memvirtd \([0-9]*\);.*/\1/p')
[ -n "$unsent" ] && [ "$unsent" -gt 0 ] || mv_fail_run job "launches unsent at exit: '$unsent', expected more than 0"
echo "launches unsent to memvirtd at exit: $unsent"
