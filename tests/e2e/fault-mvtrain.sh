# A training job under device faults injected on the simulated GPU: mvtrain (ResNet-50, a third of
# its peak as the budget) with a failed page-out copy, a failed page-in copy, a failed cuMemCreate,
# a host pool too small and one just large enough, and copy engines a hundred times slower than
# PCIe with a real delay before each copy. Each run either ends with the checksum of the plain run,
# or fails with a CUDA error named by mvtrain and explained by the library's log line, without a
# checksum, a signal or a hang. The script says which, and checks the outcome each case must have
# where it is certain (EXPECT: ok, error or either).
set -u
. "$(dirname "$0")/lib.sh"
: "${MEMVIRT_LIB:=$MV_TOP_BUILDDIR/interpose/.libs/libmemvirt.so}"
mv_need_mvtrain
mv_tmpdir
[ -f "$MEMVIRT_LIB" ] || mv_fail "$MEMVIRT_LIB is not built"

SIMCUDA_MEM=64MiB
SIMCUDA_GRANULARITY=4KiB
export SIMCUDA_MEM SIMCUDA_GRANULARITY
unset SIMCUDA_MODEL_ONLY SIMCUDA_NO_HOST_VMM LD_PRELOAD MEMVIRT_BUDGET MEMVIRT_LOG MEMVIRT_LOG_FILE
unset MEMVIRT_SAFETY_NET MEMVIRT_SLAB_THRESHOLD MEMVIRT_HOST_LIMIT MEMVIRT_REAL_LIBCUDA MEMVIRT_SOCKET
STEPS=4
ARGS="--model resnet50 --batch 2 --scale 0.125 --steps $STEPS"

# shellcheck disable=SC2086 # ARGS is a list of words
mv_run plain $ARGS
mv_expect_ok plain "$STEPS"
sum=$(mv_checksum plain)
budget=$(($(mv_peak plain) / 3))

# fault NAME EXPECT SETTINGS LOGLINE: runs mvtrain under the library with SETTINGS (NAME=value words)
# and checks its outcome. LOGLINE is the library's warning that explains a failure (and, for a
# fault the job survives, that shows the fault was hit).
fault() {
	f_name=$1 f_expect=$2 f_settings=$3 f_line=$4
	MV_RC=0
	# shellcheck disable=SC2086 # SETTINGS and ARGS are lists of words
	env LD_PRELOAD="$MEMVIRT_LIB" MEMVIRT_BUDGET=$budget MEMVIRT_SLAB_THRESHOLD=4KiB MEMVIRT_LOG=info \
		MEMVIRT_DAEMON=off $f_settings timeout 60 "$MVTRAIN" $ARGS \
		>"$MV_TMP/$f_name.out" 2>"$MV_TMP/$f_name.err" || MV_RC=$?
	[ "$MV_RC" -ne 124 ] || mv_fail_run "$f_name" "still ran after 60 s"
	grep -q memvirt "$MV_TMP/$f_name.out" && mv_fail_run "$f_name" "the library wrote to stdout"
	if [ "$MV_RC" -eq 0 ]; then
		mv_expect_ok "$f_name" "$STEPS"
		[ "$(mv_checksum "$f_name")" = "$sum" ] ||
			mv_fail_run "$f_name" "checksum $(mv_checksum "$f_name"), the plain run's is $sum"
		outcome="served: checksum $sum"
		[ "$f_expect" != error ] || mv_fail_run "$f_name" "ran to the end; expected a CUDA error"
	else
		# mvtrain exits 3 when an allocation fails, 1 when another call does.
		case $MV_RC in
		1 | 3) ;;
		*) mv_fail_run "$f_name" "exit status $MV_RC, expected 0, 1 or 3" ;;
		esac
		err=$(sed -n 's/^mvtrain: \([A-Za-z_0-9]*\) failed: \(CUDA_ERROR_[A-Z_]*\).*/\1 -> \2/p' "$MV_TMP/$f_name.err")
		[ -n "$err" ] || mv_fail_run "$f_name" "exit $MV_RC without a failed driver call named"
		grep -q '^checksum' "$MV_TMP/$f_name.out" && mv_fail_run "$f_name" "failed but printed a checksum"
		outcome="refused: $err (exit $MV_RC)"
		[ "$f_expect" != ok ] || mv_fail_run "$f_name" "failed; expected to run to the end"
	fi
	if [ -n "$f_line" ]; then
		grep -q "$f_line" "$MV_TMP/$f_name.err" || mv_fail_run "$f_name" "no log line '$f_line'"
	fi
	echo "$f_name ($f_settings): $outcome"
}

# A failed page-out copy: that buffer stays resident and another goes instead.
fault d2h-page-out ok "SIMCUDA_FAIL_COPY=d2h:5" "page-out of .* failed (CUDA_ERROR_UNKNOWN); the buffer stays resident"
# A failed page-in copy: the launch that needed it fails with the copy's error.
fault h2d-page-in either "SIMCUDA_FAIL_COPY=h2d:200" ""
if [ "$MV_RC" -ne 0 ]; then
	grep -q "page-in of .* failed (CUDA_ERROR_UNKNOWN); the buffer stays on the host" "$MV_TMP/h2d-page-in.err" ||
		mv_fail_run h2d-page-in "failed without the page-in's log line"
fi
# A failed cuMemCreate, whoever's it is (an allocation's range or a page-in's pages).
fault memcreate either "SIMCUDA_FAIL_MEMCREATE=300" ""
if [ "$MV_RC" -ne 0 ]; then
	grep -Eq "page-in of .* failed \(CUDA_ERROR_OUT_OF_MEMORY\)|out of memory: [0-9]+ bytes asked" \
		"$MV_TMP/memcreate.err" || mv_fail_run memcreate "failed without a log line saying why"
fi
# Host pool plus budget below what the job needs at once: refused, and the log says the pool is full.
fault host-pool-small error "MEMVIRT_HOST_LIMIT=2304KiB" "host pool full at 2.2 MiB (MEMVIRT_HOST_LIMIT)"
# Just large enough: the job runs with the pool full at times.
fault host-pool-enough ok "MEMVIRT_HOST_LIMIT=2560KiB" ""
# Slow engines: 0.5 GB/s modeled and a real 300 us before each copy.
fault slow-copies ok "SIMCUDA_H2D_GBPS=0.5 SIMCUDA_D2H_GBPS=0.5 SIMCUDA_DELAY_H2D_US=300 SIMCUDA_DELAY_D2H_US=300" ""
exit 0
