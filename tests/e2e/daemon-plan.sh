# Planning in the daemon: a library session (mvsock hello) of a job whose config policy is mmcnn
# sends four iterations of a layered training loop as crafted ALLOC, LAUNCH, REF, FREE and SYNC
# events under a device budget below the loop's peak. The daemon learns the iteration and sends a
# PLAN whose fingerprint and launch count are those policies/iter.c finds in the same events, whose
# ops bind to buffers the loop names, and which the stats report. More iterations, and a gap of
# lost events followed by more, bring no second copy of the same plan; a second session on the
# device (of a job with the default policy, lru, which plans nothing) halves the first one's
# grant, and the first gets a new plan for it.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/daemon-lib.sh"
MIB=1048576
L=8
JOB=e2e-plan-$$
printf '{\n  "device": { "budget": "70MiB" },\n  "jobs": { "%s": { "policy": "mmcnn" } }\n}\n' "$JOB" \
	>"$T/memvirt.json"
if ! timeout 60 "$MEMVIRT" config check "$T/memvirt.json" >"$T/check.out" 2>&1; then
	grep -q "unknown policy 'mmcnn'" "$T/check.out" &&
		mv_skip "this memvirt's config does not know the policy mmcnn"
	mv_fail "config check refused $T/memvirt.json: $(cat "$T/check.out")"
fi

# shellcheck disable=SC2034 # read by start_daemon (daemon-lib.sh)
DAEMON_LOG_LEVEL=debug
start_daemon --config "$T/memvirt.json"

# The loop: L weights of 4 MiB and an input of 8 MiB, allocated once; each iteration allocates an
# activation per layer (8 to 10 MiB, at new addresses), runs L forward launches, L backward ones
# that free the activations, and an optimizer launch over every weight: 2L + 1 launches.
w() { echo $((0x10000000 + $1 * 0x1000000)); }
X=$((0x9000000000))
act() { echo $((0x100000000 + $1 * 0x40000000 + $2 * 0x1000000)); }
setup() {
	i=0
	while [ $i -lt $L ]; do
		echo "alloc $(w $i) $((4 * MIB)) $((1000 + i))"
		i=$((i + 1))
	done
	echo "alloc $X $((8 * MIB)) 999"
}
iteration() {
	i=0
	while [ $i -lt $L ]; do
		echo "alloc $(act "$1" $i) $(((8 + i % 3) * MIB)) $((2000 + i))"
		if [ $i -eq 0 ]; then prev=$X; else prev=$(act "$1" $((i - 1))); fi
		echo "launch $((100 + i)) $prev $(w $i) $(act "$1" $i)"
		i=$((i + 1))
	done
	while [ $i -gt 0 ]; do
		i=$((i - 1))
		if [ $i -eq 0 ]; then prev=$X; else prev=$(act "$1" $((i - 1))); fi
		echo "launch $((200 + i)) $(act "$1" $i) $(w $i) $prev"
		echo "free $(act "$1" $i)"
	done
	all=
	while [ $i -lt $L ]; do
		all="$all $(w $i)"
		i=$((i + 1))
	done
	echo "launch 300$all"
	echo sync
}

# wait_line FILE PATTERN WHAT: waits up to 5 s for a line of FILE matching PATTERN.
wait_line() {
	n=0
	until grep -q "$2" "$1" 2>/dev/null; do
		n=$((n + 1))
		[ "$n" -lt 600 ] || mv_fail "$3: $(cat "$1")"
		sleep 0.1
	done
}


mkfifo "$T/a.in" "$T/b.in"
"$MVSOCK" "$S" hello --total $((1 << 30)) --budget $((1 << 30)) --job "$JOB" <"$T/a.in" >"$T/a.out" 2>"$T/a.err" &
JOBS=$!
exec 3>"$T/a.in"
wait_line "$T/a.out" "^welcome 1 $((70 * MIB))\$" "the session got no WELCOME with the whole budget"

{
	setup
	for it in 0 1 2 3; do iteration $it; done
	echo expect
} >&3
wait_line "$T/a.out" '^expect ' "mvsock printed no expectation"
wait_line "$T/a.out" '^plan 1 ' "no PLAN came after four iterations"
grep -q '^expect none' "$T/a.out" && mv_fail "policies/iter.c finds no iteration in the events sent"
expect_fp=$(sed -n 's/^expect \([0-9a-f]*\) \([0-9]*\)$/\1/p' "$T/a.out")
expect_n=$(sed -n 's/^expect \([0-9a-f]*\) \([0-9]*\)$/\2/p' "$T/a.out")
# shellcheck disable=SC2046 # the line's words are the fields
set -- $(grep '^plan 1 ' "$T/a.out")
plan_fp=$3 plan_n=$4 plan_ops=$5
echo "expected iteration $expect_fp of $expect_n launches; plan 1: $plan_fp of $plan_n launches, $plan_ops ops"
[ "$expect_n" = $((2 * L + 1)) ] || mv_fail "policies/iter.c finds $expect_n launches, the loop has $((2 * L + 1))"
[ "$plan_fp" = "$expect_fp" ] || mv_fail "the plan's fingerprint is $plan_fp, expected $expect_fp"
[ "$plan_n" = "$expect_n" ] || mv_fail "the plan is for $plan_n launches, expected $expect_n"
[ "$plan_ops" -gt 0 ] || mv_fail "a plan of no ops under a budget of 70 MiB for a peak of 111 MiB"
# The ops follow their plan line: wait for as many as it says (more would be a failure too).
n=0
until got=$(awk '/^plan 1 /{on=1; next} /^plan /{on=0} on && /^plan-op /' "$T/a.out" | wc -l) &&
	[ "$got" -ge "$plan_ops" ]; do
	n=$((n + 1))
	[ "$n" -lt 600 ] || break
	sleep 0.1
done
[ "$got" -eq "$plan_ops" ] || mv_fail "plan 1 says $plan_ops ops and $got followed"
# Every op binds to a buffer of the loop: launch 0..16, index within that launch's buffers (3, or L
# for the optimizer's), a size the loop allocates.
bad=$(awk -v n=$((2 * L + 1)) -v l=$L -v mib=$MIB '
	/^plan-op / {
		if ($5 >= n) { print "bind_launch " $5; next }
		if ($6 >= l) print "bind_index " $6
		s = $7 / mib
		if (s != 4 && s != 8 && s != 9 && s != 10) print "size " $7
		if ($2 == "in" && $4 == "-") print "a page-in for no launch"
	}' "$T/a.out")
[ -z "$bad" ] || mv_fail "plan ops that bind to no buffer of the loop: $bad"

[ "$(sstat policy "$JOB")" = mmcnn ] || mv_fail "the stats say policy '$(sstat policy "$JOB")'"
[ "$(sstat iteration_found "$JOB")" = true ] || mv_fail "the stats say no iteration was found"
[ "$(sstat iteration_launches "$JOB")" = "$expect_n" ] ||
	mv_fail "the stats say iteration_launches $(sstat iteration_launches "$JOB")"
[ "$(sstat iteration_fingerprint "$JOB")" = "$expect_fp" ] ||
	mv_fail "the stats say iteration_fingerprint $(sstat iteration_fingerprint "$JOB")"
[ "$(sstat plans_sent "$JOB")" = 1 ] || mv_fail "the stats say plans_sent $(sstat plans_sent "$JOB")"
[ "$(sstat plan_ops "$JOB")" = "$plan_ops" ] || mv_fail "the stats say plan_ops $(sstat plan_ops "$JOB")"

# The same loop goes on, then loses events, then goes on again: the daemon learns it again and
# has nothing new to say.
{
	iteration 4
	iteration 5
	echo "gap 5"
	iteration 6
	iteration 7
	iteration 8
	echo "counters 1 2 3"
} >&3
n=0
until [ "$(sstat learn_resets "$JOB")" -ge 1 ] && [ "$(sstat fault_ins "$JOB")" = 3 ]; do
	n=$((n + 1))
	[ "$n" -lt 600 ] || mv_fail "the gap did not restart learning: learn_resets $(sstat learn_resets "$JOB")"
	sleep 0.1
done
sleep 1
[ "$(grep -c '^plan ' "$T/a.out")" -eq 1 ] || mv_fail "the same plan was sent again: $(grep '^plan ' "$T/a.out")"
[ "$(sstat iteration_fingerprint "$JOB")" = "$expect_fp" ] ||
	mv_fail "after the gap the stats say iteration_fingerprint $(sstat iteration_fingerprint "$JOB")"
[ "$(sstat planned_outs "$JOB")" = 0 ] || mv_fail "planned_outs $(sstat planned_outs "$JOB") without a COUNTERS saying so"

# A second session halves the first one's grant: a new plan for the same iteration.
"$MVSOCK" "$S" hello --total $((1 << 30)) --budget $((1 << 30)) --job e2e-plan-lru-$$ <"$T/b.in" >"$T/b.out" 2>"$T/b.err" &
JOBS="$JOBS $!"
exec 4>"$T/b.in"
wait_line "$T/a.out" "^grant $((35 * MIB))\$" "the first session's grant was not halved"
wait_line "$T/a.out" '^plan 2 ' "no new PLAN after the grant was halved"
# shellcheck disable=SC2046 # the line's words are the fields
set -- $(grep '^plan 2 ' "$T/a.out")
[ "$3" = "$expect_fp" ] && [ "$4" = "$expect_n" ] || mv_fail "plan 2 is for $3 of $4 launches"
echo "plan 2 for a grant of 35 MiB: $5 ops"
{
	setup
	for it in 0 1 2 3; do iteration $it; done
} >&4
n=0
until [ "$(sstat iteration_found "e2e-plan-lru-$$")" = true ]; do
	n=$((n + 1))
	[ "$n" -lt 600 ] || mv_fail "the lru session learnt no iteration"
	sleep 0.1
done
sleep 0.5
grep -q '^plan' "$T/b.out" && mv_fail "the lru session got a plan: $(cat "$T/b.out")"
[ "$(sstat plans_sent "e2e-plan-lru-$$")" = 0 ] || mv_fail "the lru session's plans_sent is not 0"
grep -q "planning an iteration of 17 launches with mmcnn took" "$T/memvirtd.log" ||
	mv_fail "the daemon logged no planning time"

# Its iteration learnt, the lru session is asked for no launches: memvirtd would plan nothing from
# them. The launches that still come are not learnt: a launch naming an address never allocated,
# which learning counts as ignored, is not even looked at (the retired kind 6 of "sync" still is).
LRU=e2e-plan-lru-$$
wait_line "$T/b.out" '^launches 0$' "the lru session was not asked to stop sending launches"
[ "$(sstat launches_wanted "$LRU")" = false ] || mv_fail "the lru session's launches_wanted is not false"
ign=$(sstat learn_ignored "$LRU")
{
	iteration 4
	echo "launch 77 $((0xdead0000))"
	echo "counters 0 0 7"
} >&4
n=0
until [ "$(sstat fault_ins "$LRU")" = 7 ]; do
	n=$((n + 1))
	[ "$n" -lt 600 ] || mv_fail "the lru session's counters did not arrive"
	sleep 0.1
done
[ "$(sstat iteration_launches "$LRU")" = "$expect_n" ] && [ "$(sstat learn_resets "$LRU")" = 0 ] &&
	[ "$(sstat learn_ignored "$LRU")" = $((ign + 1)) ] ||
	mv_fail "launches sent unasked changed what was learnt: $(sstat iteration_launches "$LRU") launches," \
		"$(sstat learn_resets "$LRU") resets, $(sstat learn_ignored "$LRU") ignored"
# A reload that gives every job a policy that plans asks for launches again, and learning starts
# over from the buffers alive.
printf '{\n  "device": { "budget": "70MiB" },\n  "jobs": { "default": { "policy": "mmcnn" } }\n}\n' \
	>"$T/memvirt.json"
timeout 60 "$MEMVIRT" config reload --socket "$S" >"$T/reload.out" 2>&1 || mv_fail "config reload failed: $(cat "$T/reload.out")"
wait_line "$T/b.out" '^launches 1$' "the lru session, now under mmcnn, was not asked for launches again"
[ "$(sstat launches_wanted "$LRU")" = true ] || mv_fail "the session's launches_wanted is not true"
[ "$(sstat learn_resets "$LRU")" = 1 ] || mv_fail "learning did not start over: $(sstat learn_resets "$LRU") resets"
echo "the lru session: asked for no launches once its iteration was learnt, and for them again under mmcnn"

echo bye >&3
echo bye >&4
exec 3>&- 4>&-
alive "$DAEMON" || mv_fail "the daemon died"
timeout 60 "$MEMVIRT" daemon stop --socket "$S" || mv_fail "memvirt daemon stop failed"
DAEMON=
exit 0
