# A job whose shape changes halfway (mvtrain --reshape-at: the batch doubles) under mmcnn: the
# executor leaves the learned iteration (a divergence), pages reactively, learns the new iteration
# and follows it again, issuing planned page-outs after the change; the checksum is exact.
. "$(dirname "$0")/lib.sh"
: "${MEMVIRT_LIB:=$MV_TOP_BUILDDIR/interpose/.libs/libmemvirt.so}"
mv_need_mvtrain
mv_tmpdir
[ -f "$MEMVIRT_LIB" ] || mv_fail "$MEMVIRT_LIB is not built"

SIMCUDA_MEM=4GiB
SIMCUDA_GRANULARITY=4KiB
MEMVIRT_DAEMON=off
export SIMCUDA_MEM SIMCUDA_GRANULARITY MEMVIRT_DAEMON
unset SIMCUDA_MODEL_ONLY SIMCUDA_NO_HOST_VMM LD_PRELOAD MEMVIRT_BUDGET MEMVIRT_LOG MEMVIRT_LOG_FILE MEMVIRT_RECORD
unset MEMVIRT_SAFETY_NET MEMVIRT_HOST_LIMIT MEMVIRT_REAL_LIBCUDA MEMVIRT_POLICY MEMVIRT_ITERATION_MARKER
STEPS=12
args="--model lstm --batch 16 --scale 0.0625 --steps $STEPS --reshape-at 6"

mv_run plain $args
mv_expect_ok plain "$STEPS"
sum=$(mv_checksum plain)
peak=$(mv_peak plain)
[ -n "$peak" ] && [ "$peak" -gt 0 ] || mv_fail_run plain "no peak in the output"

MV_RC=0
env LD_PRELOAD="$MEMVIRT_LIB" MEMVIRT_BUDGET=$((peak / 2)) MEMVIRT_SLAB_THRESHOLD=4KiB MEMVIRT_PAGE_MIN=4KiB \
	MEMVIRT_POLICY=mmcnn MEMVIRT_LOG=debug "$MVTRAIN" $args >"$MV_TMP/mmcnn.out" 2>"$MV_TMP/mmcnn.err" || MV_RC=$?
echo "MEMVIRT_POLICY=mmcnn mvtrain $args -> exit $MV_RC"
mv_expect_ok mmcnn "$STEPS"
[ "$(mv_checksum mmcnn)" = "$sum" ] || mv_fail_run mmcnn "checksum $(mv_checksum mmcnn), the plain run's is $sum"

summary=$(grep -E '^memvirt\[[0-9]+\] info: budget ' "$MV_TMP/mmcnn.err" | tail -n 1)
div=$(echo "$summary" | sed -n 's/.*divergences \([0-9]*\).*/\1/p')
outs=$(echo "$summary" | sed -n 's/.*planned out \([0-9]*\),.*/\1/p')
[ -n "$div" ] && [ "$div" -ge 1 ] || mv_fail_run mmcnn "divergences '$div', expected at least 1"

# The planned page-outs when the job first left the plan, and when it followed the new iteration.
at_div=$(sed -n 's/.*plan: launch .* reactive paging (planned out so far \([0-9]*\)).*/\1/p' "$MV_TMP/mmcnn.err" | head -n 1)
[ -n "$at_div" ] || mv_fail_run mmcnn "no divergence in the log"
resync=$(sed -n '/reactive paging/,$ s/.*plan: following the iteration from launch [0-9]* (planned out so far \([0-9]*\)).*/\1/p' \
	"$MV_TMP/mmcnn.err" | head -n 1)
[ -n "$resync" ] || mv_fail_run mmcnn "the executor never followed an iteration again after the divergence"
grep -q 'plan: learned an iteration' "$MV_TMP/mmcnn.err" || mv_fail_run mmcnn "no iteration learned"
echo "planned out: $at_div at the divergence, $resync at the resynchronisation, $outs at the end"
[ "$outs" -gt "$resync" ] || mv_fail_run mmcnn "planned out $outs at the end, $resync when the new plan began: no planned page-outs after the change"
[ "$resync" -ge "$at_div" ] || mv_fail_run mmcnn "planned out went backwards"
exit 0
