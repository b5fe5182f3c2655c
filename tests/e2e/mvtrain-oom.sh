# Device capacity below a model's peak fails cleanly with CUDA_ERROR_OUT_OF_MEMORY (exit 3), and
# capacity comfortably above it succeeds.
. "$(dirname "$0")/lib.sh"
mv_need_mvtrain
mv_tmpdir
unset SIMCUDA_MODEL_ONLY

args="--model vgg16 --scale 0.125 --batch 16 --steps 2"
SIMCUDA_MEM=4GiB mv_run ample $args
mv_expect_ok ample 2
peak=$(mv_peak ample)
[ -n "$peak" ] && [ "$peak" -gt 0 ] || mv_fail_run ample "no peak in the output"

for alloc in sync async; do
	SIMCUDA_MEM=$((peak / 3)) mv_run "short-$alloc" $args --alloc "$alloc"
	[ "$MV_RC" -eq 3 ] || mv_fail_run "short-$alloc" "exit status $MV_RC at a third of the peak, expected 3"
	grep -q 'CUDA_ERROR_OUT_OF_MEMORY' "$MV_TMP/short-$alloc.err" ||
		mv_fail_run "short-$alloc" "the failure does not mention CUDA_ERROR_OUT_OF_MEMORY"
	grep -q '^checksum OK' "$MV_TMP/short-$alloc.out" && mv_fail_run "short-$alloc" "reported OK"
done

# Pages are charged whole, so leave room above the exact peak.
SIMCUDA_MEM=$((peak * 2 + 16777216)) mv_run roomy $args
mv_expect_ok roomy 2
[ "$(mv_checksum roomy)" = "$(mv_checksum ample)" ] || mv_fail "checksum depends on the capacity"
exit 0
