# Every mvtrain model trains under libmemvirt.so with a device budget of a third of its peak (VGG-16:
# 40%, see below), pages, and ends with the same checksum as the unconstrained run: with the safety
# net on, with it off because the device lacks host VMM, and with it switched off; and with
# cuMemAllocAsync. At a quarter and at a tenth of its peak every model trains too, with the safety
# net: what a launch names beyond the budget is reached in host memory over the link, and a buffer
# no room can be made for starts there. Without the net, a budget no schedule can meet fails cleanly
# with CUDA_ERROR_OUT_OF_MEMORY.
. "$(dirname "$0")/lib.sh"
: "${MEMVIRT_LIB:=$MV_TOP_BUILDDIR/interpose/.libs/libmemvirt.so}"
mv_need_mvtrain
mv_tmpdir
[ -f "$MEMVIRT_LIB" ] || mv_fail "$MEMVIRT_LIB is not built"

# Small granules and a small slab threshold let buffers of a few KiB page.
SIMCUDA_MEM=4GiB
SIMCUDA_GRANULARITY=4KiB
export SIMCUDA_MEM SIMCUDA_GRANULARITY
unset SIMCUDA_MODEL_ONLY SIMCUDA_NO_HOST_VMM LD_PRELOAD
unset MEMVIRT_BUDGET MEMVIRT_LOG MEMVIRT_LOG_FILE MEMVIRT_SAFETY_NET MEMVIRT_SLAB_THRESHOLD MEMVIRT_HOST_LIMIT
unset MEMVIRT_REAL_LIBCUDA
STEPS=2

# mvm_run NAME BUDGET SETTINGS ARGS...: runs mvtrain like mv_run, with the library preloaded at the
# given budget, logging at info, and SETTINGS (space-separated NAME=value words, possibly none).
mvm_run() {
	mvm_name=$1 mvm_budget=$2 mvm_settings=$3
	shift 3
	MV_RC=0
	# shellcheck disable=SC2086 # SETTINGS is a list of words
	env LD_PRELOAD="$MEMVIRT_LIB" MEMVIRT_BUDGET="$mvm_budget" MEMVIRT_SLAB_THRESHOLD=4KiB MEMVIRT_LOG=info \
		$mvm_settings "$MVTRAIN" "$@" >"$MV_TMP/$mvm_name.out" 2>"$MV_TMP/$mvm_name.err" || MV_RC=$?
	echo "${mvm_settings:+$mvm_settings }MEMVIRT_BUDGET=$mvm_budget mvtrain $* -> exit $MV_RC"
}

# mvm_counter NAME FIELD: a number from the library's summary line at exit ("page-outs", "page-ins",
# "fault-ins", "out-of-memory", "over the link").
mvm_counter() {
	grep -E '^memvirt\[[0-9]+\] info: budget ' "$MV_TMP/$1.err" | tail -n 1 |
		sed -n "s/.*[;,] $2 \([0-9][0-9]*\).*/\1/p"
}

# mvm_expect_paged NAME SUM NET: the run succeeded with checksum SUM, paged, ran out of nothing,
# had the safety net NET (on or off), and printed nothing of the library's on stdout.
mvm_expect_paged() {
	mv_expect_ok "$1" "$STEPS"
	[ "$(mv_checksum "$1")" = "$2" ] ||
		mv_fail_run "$1" "checksum $(mv_checksum "$1"), the unconstrained run's is $2"
	grep -Eq '^memvirt\[[0-9]+\] info: budget .*; page-outs [0-9]+ ' "$MV_TMP/$1.err" ||
		mv_fail_run "$1" "no summary line on stderr"
	outs=$(mvm_counter "$1" page-outs)
	ins=$(mvm_counter "$1" page-ins)
	oom=$(mvm_counter "$1" out-of-memory)
	[ -n "$outs" ] && [ "$outs" -gt 0 ] || mv_fail_run "$1" "page-outs '$outs', expected more than 0"
	[ -n "$ins" ] && [ "$ins" -gt 0 ] || mv_fail_run "$1" "page-ins '$ins', expected more than 0"
	[ "$oom" = 0 ] || mv_fail_run "$1" "out-of-memory '$oom', expected 0"
	grep -q "safety net $3" "$MV_TMP/$1.err" || mv_fail_run "$1" "the log does not say 'safety net $3'"
	grep -q memvirt "$MV_TMP/$1.out" && mv_fail_run "$1" "the library wrote to stdout"
	return 0
}

# model batch scale budget-percent-of-peak (0: a third)
# VGG-16 cannot hold what one launch names at a third of its peak at any size: the backward of its
# second convolution names its input, output and both gradients at once, and together they are
# more than a third of the model's peak. It pages at 40%; below, the safety net carries it, and
# without the net a third must fail cleanly (checked below).
for spec in "resnet50 2 0.125 0" "transformer 2 0.03125 0" "lstm 16 0.0625 0" "vgg16 8 0.125 40"; do
	set -- $spec
	model=$1 pct=$4
	args="--model $1 --batch $2 --scale $3 --steps $STEPS"

	mv_run "$model" $args
	mv_expect_ok "$model" "$STEPS"
	sum=$(mv_checksum "$model")
	peak=$(mv_peak "$model")
	[ -n "$peak" ] && [ "$peak" -gt 0 ] || mv_fail_run "$model" "no peak in the output"
	if [ "$pct" -eq 0 ]; then
		budget=$((peak / 3))
	else
		budget=$((peak * pct / 100))
	fi

	mvm_run "$model-net" "$budget" "" $args
	mvm_expect_paged "$model-net" "$sum" on
	mvm_run "$model-nohostvmm" "$budget" "SIMCUDA_NO_HOST_VMM=1" $args
	mvm_expect_paged "$model-nohostvmm" "$sum" off
	mvm_run "$model-netoff" "$budget" "MEMVIRT_SAFETY_NET=0" $args
	mvm_expect_paged "$model-netoff" "$sum" off
	mvm_run "$model-async" "$budget" "" $args --alloc async
	mvm_expect_paged "$model-async" "$sum" on
	mvm_run "$model-quarter" $((peak / 4)) "" $args
	mvm_expect_paged "$model-quarter" "$sum" on
	mvm_run "$model-tenth" $((peak / 10)) "" $args
	mvm_expect_paged "$model-tenth" "$sum" on

	if [ "$model" = vgg16 ]; then
		link=$(mvm_counter vgg16-quarter "over the link")
		[ -n "$link" ] && [ "$link" -gt 0 ] ||
			mv_fail_run vgg16-quarter "over the link '$link' runs, expected more than 0"
		grep -q "reached in host memory over the link" "$MV_TMP/vgg16-quarter.err" ||
			mv_fail_run vgg16-quarter "the log does not say what was reached in host memory"
		# At a third without the safety net, the convolution's buffers cannot all be resident:
		# the driver call fails with CUDA_ERROR_OUT_OF_MEMORY (mvtrain exits 3 when an
		# allocation fails, 1 when another call does, here the launch), never a signal or a
		# wrong answer.
		mvm_run vgg16-third $((peak / 3)) "MEMVIRT_SAFETY_NET=0" $args
		case $MV_RC in
		1 | 3) ;;
		*) mv_fail_run vgg16-third "exit status $MV_RC at a third of the peak, expected 1 or 3" ;;
		esac
		grep -q '^mvtrain: .*CUDA_ERROR_OUT_OF_MEMORY' "$MV_TMP/vgg16-third.err" ||
			mv_fail_run vgg16-third "the failure is not CUDA_ERROR_OUT_OF_MEMORY"
		grep -q '^checksum' "$MV_TMP/vgg16-third.out" && mv_fail_run vgg16-third "printed a checksum"
		oom=$(mvm_counter vgg16-third out-of-memory)
		[ -n "$oom" ] && [ "$oom" -gt 0 ] || mv_fail_run vgg16-third "out-of-memory '$oom', expected more than 0"
	fi
done
exit 0
