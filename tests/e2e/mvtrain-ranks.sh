# mvtrain --ranks: data-parallel ranks, one process and one device each, averaging their gradients
# every step through cuIpcGetMemHandle buffers, the shape torchrun and NCCL give a node.
# - Without memvirt: one rank trains to the checksum of a run without ranks; two ranks agree with
#   each other, on two devices or sharing one; a bad count is refused by name; a rank that dies
#   stops the job, with its status and a line naming it, and leaves no rank behind.
# - Under every policy at half and a third of a rank's peak (VGG-16 at half and 40%, as in
#   mvtrain-graphs.sh), and with --graphs under auto at a third, each rank alone on its device:
#   every rank pages, and the job ends with the plain two-rank checksum. With MEMVIRT_BUDGET
#   naming device 0 only, rank 0 pages and rank 1 pages nothing.
# - Four ranks on four devices linked to one memvirtd with a node host limit: while they hold
#   between steps, 'memvirt ps' shows four jobs, one per device, whose host grants fit the limit;
#   then they end with the plain four-rank checksum, and none was refused host memory. Once
#   memvirtd has learnt each rank's iteration (under lru, which plans nothing), it asks the rank
#   for no more launch events, and the ranks send none from then on.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/daemon-lib.sh"
: "${MEMVIRT_LIB:=$MV_TOP_BUILDDIR/interpose/.libs/libmemvirt.so}"
[ -f "$MEMVIRT_LIB" ] || mv_fail "$MEMVIRT_LIB is not built"
mv_need_mvtrain
SIMCUDA_DIR=$MV_TOP_BUILDDIR/tests/simcuda

SIMCUDA_MEM=4GiB
SIMCUDA_GRANULARITY=4KiB
SIMCUDA_DEVICES=2
export SIMCUDA_MEM SIMCUDA_GRANULARITY SIMCUDA_DEVICES
unset SIMCUDA_MODEL_ONLY SIMCUDA_NO_HOST_VMM LD_PRELOAD MEMVIRT_BUDGET MEMVIRT_LOG MEMVIRT_LOG_FILE MEMVIRT_RECORD
unset MEMVIRT_HOST_LIMIT MEMVIRT_REAL_LIBCUDA MEMVIRT_POLICY MEMVIRT_ITERATION_MARKER MEMVIRT_SOCKET
MEMVIRT_DAEMON=off
MEMVIRT_SAFETY_NET=off
export MEMVIRT_DAEMON MEMVIRT_SAFETY_NET
STEPS=6
POLICIES="lru vdnn-all vdnn-conv mmcnn auto"

# rk_expect NAME RANKS: every rank printed its device, its checksum and its paging line (under
# memvirt), and the job's checksum is theirs.
rk_expect() {
	mv_expect_ok "$1" "$STEPS"
	sum=$(mv_checksum "$1")
	grep -qx "ranks: $2, every rank's weights equal" "$MV_TMP/$1.out" || mv_fail_run "$1" "no line saying the $2 ranks agree"
	r=0
	while [ "$r" -lt "$2" ]; do
		grep -qx "rank $r: checksum OK $sum" "$MV_TMP/$1.out" || mv_fail_run "$1" "rank $r printed no 'checksum OK $sum'"
		grep -Eqx "rank $r: device [0-9]+ of [0-9]+" "$MV_TMP/$1.out" || mv_fail_run "$1" "rank $r printed no device"
		r=$((r + 1))
	done
}

# rk_lines NAME PID TEXT RANKS SECONDS WHAT: waits until RANKS lines of job PID's log (output NAME)
# have TEXT, failing when the job ends first or after SECONDS; WHAT says what the lines mean, as a
# past tense ("held").
rk_lines() {
	n=0
	until [ "$(grep -c "$3" "$T/$1.err")" -eq "$4" ]; do
		alive "$2" || mv_fail_run "$1" "the job ended before its $4 ranks $6"
		n=$((n + 1))
		[ "$n" -lt $(($5 * 10)) ] || mv_fail_run "$1" "only $(grep -c "$3" "$T/$1.err") of the $4 ranks $6 within $5 s"
		sleep 0.1
	done
}

# rk_hold NAME PID STEP RANKS SECONDS: waits until RANKS ranks of job PID (output NAME) hold before
# STEP, failing when the job ends first or after SECONDS.
rk_hold() {
	rk_lines "$1" "$2" "holding before step $3" "$4" "$5" "held"
}

# rk_paged NAME RANK: the buffers the rank paged out, from its own line.
rk_paged() {
	sed -n "s/^rank $2: paged out \\([0-9]*\\) and in [0-9]* buffers\$/\\1/p" "$MV_TMP/$1.out"
}

for spec in "resnet50 2 0.125" "vgg16 8 0.125"; do
	set -- $spec
	mv_run "$1" --model "$1" --batch "$2" --scale "$3" --steps "$STEPS"
	mv_expect_ok "$1" "$STEPS"
	mv_run "$1-r1" --model "$1" --batch "$2" --scale "$3" --steps "$STEPS" --ranks 1
	rk_expect "$1-r1" 1
	# Rank 0 reads the data of a run without ranks, and the mean of one rank is its gradient.
	[ "$(mv_checksum "$1-r1")" = "$(mv_checksum "$1")" ] ||
		mv_fail_run "$1-r1" "checksum $(mv_checksum "$1-r1"), the run without ranks has $(mv_checksum "$1")"
	mv_run "$1-r2" --model "$1" --batch "$2" --scale "$3" --steps "$STEPS" --ranks 2
	rk_expect "$1-r2" 2
	grep -qx "rank 1: device 1 of 2" "$MV_TMP/$1-r2.out" || mv_fail_run "$1-r2" "rank 1 is not on device 1"
	# Two shards average to other weights than one.
	[ "$(mv_checksum "$1-r2")" != "$(mv_checksum "$1")" ] || mv_fail_run "$1-r2" "two ranks trained as one"
done

# Two ranks sharing the one device agree with two on two devices.
SIMCUDA_DEVICES=1 mv_run shared --model resnet50 --batch 2 --scale 0.125 --steps "$STEPS" --ranks 2
rk_expect shared 2
grep -qx "rank 1: device 0 of 1" "$MV_TMP/shared.out" || mv_fail_run shared "rank 1 is not on device 0 of 1"
[ "$(mv_checksum shared)" = "$(mv_checksum resnet50-r2)" ] ||
	mv_fail_run shared "checksum $(mv_checksum shared), on two devices $(mv_checksum resnet50-r2)"

# A driver in model-only mode, with no --model-only asked: the ranks say no checksum, as one
# process does, never one of zeros.
SIMCUDA_MODEL_ONLY=1 mv_run modelonly --model resnet50 --batch 2 --scale 0.125 --steps 3 --ranks 2
[ "$MV_RC" -eq 0 ] && [ "$(tail -n 1 "$MV_TMP/modelonly.out")" = "checksum skipped (model-only)" ] ||
	mv_fail_run modelonly "a model-only driver: exit $MV_RC, last line '$(tail -n 1 "$MV_TMP/modelonly.out")'"

for bad in 0 17 x; do
	mv_run bad --model resnet50 --ranks "$bad"
	[ "$MV_RC" -eq 2 ] && grep -q "invalid --ranks value '$bad'" "$MV_TMP/bad.err" ||
		mv_fail_run bad "--ranks $bad: exit $MV_RC, expected 2 and the value named"
done

# A rank killed while the others hold: the job stops them and says which rank ended how.
"$MVTRAIN" --model resnet50 --batch 2 --scale 0.125 --steps "$STEPS" --ranks 2 --hold-at 2 \
	--hold-file "$T/never" >"$T/killed.out" 2>"$T/killed.err" &
job=$!
rk_hold killed "$job" 2 2 60
ranks=$(pgrep -P "$job")
[ "$(echo $ranks | wc -w)" -eq 2 ] || mv_fail_run killed "rank processes '$ranks' under pid $job, expected 2"
kill -KILL "$(echo "$ranks" | tail -n 1)"
wait_job "$job" 60
[ "$MV_RC" -eq 137 ] || mv_fail_run killed "exit status $MV_RC after a rank's SIGKILL, expected 137"
grep -Eq '^mvtrain: rank [01] ended by signal 9; stopping the others$' "$T/killed.err" ||
	mv_fail_run killed "no line naming the killed rank"
for p in $ranks; do
	n=0
	while alive "$p"; do
		n=$((n + 1))
		[ "$n" -lt 600 ] || mv_fail_run killed "rank pid $p outlived the job by 60 s"
		sleep 0.1
	done
done

# Under memvirt, each rank alone on its device.
[ -z "${MV_SANITIZER:-}" ] || POLICIES="lru auto"
runs=""
for spec in "resnet50 2 0.125 50 33" "vgg16 8 0.125 50 40"; do
	set -- $spec
	model=$1 batch=$2 scale=$3
	peak=$(mv_peak "$model-r2")
	pcts="$4 $5"
	[ -z "${MV_SANITIZER:-}" ] || pcts=$5
	for pct in $pcts; do
		for policy in $POLICIES; do
			name=$model-$policy-$pct
			mv_policy_run "$name" "$policy" $((peak * pct / 100)) --model "$model" --batch "$batch" \
				--scale "$scale" --steps "$STEPS" --ranks 2
			runs="$runs $name"
		done
		wait
	done
done
# One device short: MEMVIRT_BUDGET names device 0 only, so rank 0 pages and rank 1, on device 1,
# keeps its whole memory and pages nothing.
mv_policy_run one-short lru "0:$(($(mv_peak resnet50-r2) / 3))" --model resnet50 --batch 2 --scale 0.125 \
	--steps "$STEPS" --ranks 2
wait
rc=$(cat "$MV_TMP/one-short.rc")
[ "$rc" -eq 0 ] || mv_fail_run one-short "exit status $rc, expected 0"
MV_RC=0 rk_expect one-short 2
[ "$(mv_checksum one-short)" = "$(mv_checksum resnet50-r2)" ] ||
	mv_fail_run one-short "checksum '$(mv_checksum one-short)', the plain run's is $(mv_checksum resnet50-r2)"
short0=$(rk_paged one-short 0) short1=$(rk_paged one-short 1)
echo "one-short: rank 0 paged out $short0, rank 1 $short1"
[ -n "$short0" ] && [ "$short0" -gt 0 ] || mv_fail_run one-short "rank 0, on the short device, paged out '$short0' buffers"
[ "$short1" = 0 ] || mv_fail_run one-short "rank 1, on a device the budget does not name, paged out '$short1' buffers"
# With CUDA graphs too: each rank's layers replayed as graphs, its temporaries graph memory nodes.
mv_policy_run resnet50-graphs auto $(($(mv_peak resnet50-r2) / 3)) --model resnet50 --batch 2 --scale 0.125 \
	--steps "$STEPS" --ranks 2 --graphs --alloc async
wait
runs="$runs resnet50-graphs"
for name in $runs; do
	model=${name%%-*}
	rc=$(cat "$MV_TMP/$name.rc")
	echo "$name: exit $rc, ranks paged out $(rk_paged "$name" 0) and $(rk_paged "$name" 1)"
	[ "$rc" -eq 0 ] || mv_fail_run "$name" "exit status $rc, expected 0"
	MV_RC=0 rk_expect "$name" 2
	[ "$(mv_checksum "$name")" = "$(mv_checksum "$model-r2")" ] ||
		mv_fail_run "$name" "checksum '$(mv_checksum "$name")', the plain run's is $(mv_checksum "$model-r2")"
	for r in 0 1; do
		outs=$(rk_paged "$name" $r)
		[ -n "$outs" ] && [ "$outs" -gt 0 ] || mv_fail_run "$name" "rank $r paged out '$outs' buffers"
	done
	grep -q memvirt "$MV_TMP/$name.out" && mv_fail_run "$name" "the library wrote to stdout"
done

# Four ranks, four devices, one daemon dividing a node host limit of 64 MiB.
SIMCUDA_DEVICES=4
STEPS=9
ARGS="--model resnet50 --batch 2 --scale 0.125 --steps $STEPS --ranks 4"
mv_run r4 $ARGS
rk_expect r4 4
sum4=$(mv_checksum r4)
peak=$(mv_peak r4)
dev=$SIMCUDA_MEM
printf '{ "host": { "limit": "64MiB" } }\n' >"$T/memvirt.json"
start_daemon --config "$T/memvirt.json"
dl_job "$S" ranks "MEMVIRT_JOB=ranks MEMVIRT_HOST_WAIT=30000 MEMVIRT_DAEMON=on MEMVIRT_BUDGET=$((peak / 3)) MEMVIRT_LOG=debug" \
	--hold-at 3 --hold-at 7 --hold-file "$T/go"
job=$last
rk_hold ranks "$job" 3 4 120
timeout 60 "$MEMVIRT" ps --socket "$S" --json >"$T/ps.json" 2>"$T/ps.err" || mv_fail "memvirt ps failed: $(cat "$T/ps.err")"
"$MVSOCK" flat <"$T/ps.json" >"$T/ps.flat"
touch "$T/go"
# By step 7 memvirtd has seen seven iterations of each rank: every rank is told to send no launches.
rk_hold ranks "$job" 7 4 120
rk_lines ranks "$job" "plans nothing for it: launches are not sent" 4 120 "were asked for no launches"
touch "$T/go.2"
wait_job "$job" 120
[ "$MV_RC" -eq 0 ] || mv_fail_run ranks "exit status $MV_RC, expected 0"
rk_expect ranks 4
[ "$(mv_checksum ranks)" = "$sum4" ] || mv_fail_run ranks "checksum $(mv_checksum ranks), the plain run's is $sum4"
grep -q "host pool full" "$T/ranks.err" && mv_fail_run ranks "a rank was refused host memory below the node's limit"
unsent=$(sed -n 's/.*memvirt\[[0-9]*\] info: budget .*, unsent to memvirtd \([0-9]*\);.*/\1/p' "$T/ranks.err")
echo "launches unsent to memvirtd, per rank: $(echo $unsent)"
[ "$(echo "$unsent" | awk '$1 > 0' | wc -l)" -eq 4 ] || mv_fail_run ranks "launches unsent per rank: '$(echo $unsent)', expected 4 counts above 0"
jobs=$(grep -c '^daemons\.0\.jobs\.[0-9]*\.job ranks$' "$T/ps.flat")
devices=$(sed -n 's/^daemons\.0\.jobs\.[0-9]*\.device \(.*\)$/\1/p' "$T/ps.flat" | sort -u | wc -l)
hg=$(grep '^daemons\.0\.jobs\.[0-9]*\.host_grant ' "$T/ps.flat" | awk '{ s += $2 } END { print s + 0 }')
echo "4 ranks on one daemon: memvirt ps shows $jobs jobs on $devices devices with host grants summing to $hg B"
[ "$jobs" -eq 4 ] || mv_fail "memvirt ps lists $jobs jobs named ranks, expected 4: $(cat "$T/ps.json")"
[ "$devices" -eq 4 ] || mv_fail "memvirt ps shows $devices devices, expected 4: $(cat "$T/ps.json")"
[ "$hg" -gt 0 ] && [ "$hg" -le $((64 << 20)) ] || mv_fail "host grants sum to $hg B, expected (0, 64 MiB]: $(cat "$T/ps.json")"
exit 0
