#!/bin/sh
# VGG-16 at batch 256, modeled (no data moves), trains live in 12 GB under every policy. Its 3.29 GB
# activations are what a planned page-in and a launch both want: a launch that starts making room
# for a buffer on the host, while the plan's page-in of the same buffer claims it and charges its
# own room, must wait for that page-in, not ask the budget to hold the buffer twice (which failed
# with CUDA_ERROR_OUT_OF_MEMORY under mmcnn and auto).
. "$(dirname "$0")/lib.sh"
: "${MEMVIRT_LIB:=$MV_TOP_BUILDDIR/interpose/.libs/libmemvirt.so}"
mv_need_mvtrain
mv_tmpdir
[ -f "$MEMVIRT_LIB" ] || mv_fail "$MEMVIRT_LIB is not built"
unset MEMVIRT_LOG_FILE MEMVIRT_SAFETY_NET MEMVIRT_SLAB_THRESHOLD MEMVIRT_HOST_LIMIT MEMVIRT_REAL_LIBCUDA
export SIMCUDA_MODEL_ONLY=1 SIMCUDA_MEM=4TiB MEMVIRT_H2D_GBPS=55 MEMVIRT_D2H_GBPS=55 MEMVIRT_DAEMON=off

for pol in lru mmcnn auto; do
	rc=0
	MEMVIRT_POLICY=$pol MEMVIRT_BUDGET=12GB MEMVIRT_LOG=info LD_PRELOAD="$MEMVIRT_LIB" timeout 600 \
		"$MVTRAIN" --model vgg16 --batch 256 --model-only --steps 12 </dev/null \
		>"$MV_TMP/$pol.out" 2>"$MV_TMP/$pol.err" || rc=$?
	[ "$rc" -eq 0 ] || mv_fail "vgg16 in 12 GB under $pol: exit $rc: $(grep -m 1 'cannot make room' "$MV_TMP/$pol.err")"
	grep -q "out-of-memory 0;" "$MV_TMP/$pol.err" ||
		mv_fail "vgg16 in 12 GB under $pol: the library refused memory: $(tail -n 1 "$MV_TMP/$pol.err")"
	grep -q '^modeled step time ' "$MV_TMP/$pol.out" || mv_fail "vgg16 under $pol printed no step time"
	echo "ok: vgg16 b256 in 12 GB under $pol: $(sed -n 's/^modeled step time //p' "$MV_TMP/$pol.out")"
done
