# Every mvtrain model trains under every policy at half and a third of its peak (VGG-16: half and
# 40%, since a third cannot hold its second convolution's buffers at once) and ends with the
# checksum of the unconstrained run. The planning policies must have learned the iteration and
# issued planned page-outs: the summary line's "planned out" is above 0.
. "$(dirname "$0")/lib.sh"
: "${MEMVIRT_LIB:=$MV_TOP_BUILDDIR/interpose/.libs/libmemvirt.so}"
mv_need_mvtrain
mv_tmpdir
[ -f "$MEMVIRT_LIB" ] || mv_fail "$MEMVIRT_LIB is not built"

SIMCUDA_MEM=4GiB
SIMCUDA_GRANULARITY=4KiB
export SIMCUDA_MEM SIMCUDA_GRANULARITY
unset SIMCUDA_MODEL_ONLY SIMCUDA_NO_HOST_VMM LD_PRELOAD MEMVIRT_BUDGET MEMVIRT_LOG MEMVIRT_LOG_FILE MEMVIRT_RECORD
unset MEMVIRT_SAFETY_NET MEMVIRT_HOST_LIMIT MEMVIRT_REAL_LIBCUDA MEMVIRT_POLICY MEMVIRT_ITERATION_MARKER
MEMVIRT_DAEMON=off
export MEMVIRT_DAEMON
# Enough steps to learn the iteration (two of them), relearn it once if need be, and follow the plan.
STEPS=8
POLICIES="lru vdnn-all vdnn-conv mmcnn auto"

# pm_counter NAME FIELD: a number from the summary line ("planned out", "page-outs", ...).
pm_counter() {
	grep -E '^memvirt\[[0-9]+\] info: budget ' "$MV_TMP/$1.err" | tail -n 1 |
		sed -n "s/.*[;,] $2 \([0-9][0-9]*\).*/\1/p"
}

# Plain runs first, for each model's checksum and peak.
for spec in "resnet50 2 0.125" "transformer 2 0.03125" "lstm 16 0.0625" "vgg16 8 0.125"; do
	set -- $spec
	mv_run "$1" --model "$1" --batch "$2" --scale "$3" --steps "$STEPS"
	mv_expect_ok "$1" "$STEPS"
done

runs=""
for spec in "resnet50 2 0.125 50 33" "transformer 2 0.03125 50 33" "lstm 16 0.0625 50 33" "vgg16 8 0.125 50 40"; do
	set -- $spec
	model=$1 batch=$2 scale=$3
	peak=$(mv_peak "$model")
	[ -n "$peak" ] && [ "$peak" -gt 0 ] || mv_fail_run "$model" "no peak in the output"
	for pct in $4 $5; do
		for policy in $POLICIES; do
			name=$model-$policy-$pct
			mv_policy_run "$name" "$policy" $((peak * pct / 100)) --model "$model" --batch "$batch" --scale "$scale" \
				--steps "$STEPS"
			runs="$runs $name"
		done
		# The five policies run side by side.
		wait
	done
done
wait

for name in $runs; do
	model=${name%%-*}
	policy=${name#*-}
	policy=${policy%-*}
	rc=$(cat "$MV_TMP/$name.rc")
	echo "$name: exit $rc, planned out $(pm_counter "$name" 'planned out'), page-outs $(pm_counter "$name" page-outs)"
	[ "$rc" -eq 0 ] || mv_fail_run "$name" "exit status $rc, expected 0"
	[ "$(mv_checksum "$name")" = "$(mv_checksum "$model")" ] ||
		mv_fail_run "$name" "checksum '$(mv_checksum "$name")', the unconstrained run's is $(mv_checksum "$model")"
	outs=$(pm_counter "$name" 'planned out')
	[ -n "$outs" ] || mv_fail_run "$name" "no summary line"
	if [ "$policy" = lru ]; then
		[ "$outs" -eq 0 ] || mv_fail_run "$name" "lru planned $outs page-outs, expected none"
	else
		[ "$outs" -gt 0 ] || mv_fail_run "$name" "planned out $outs: the plan never ran"
	fi
	grep -q memvirt "$MV_TMP/$name.out" && mv_fail_run "$name" "the library wrote to stdout"
done
exit 0
