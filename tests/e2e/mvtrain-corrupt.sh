# The end-of-run checksum catches a single corrupted byte of device memory.
. "$(dirname "$0")/lib.sh"
mv_need_mvtrain
mv_tmpdir
SIMCUDA_MEM=4GiB
export SIMCUDA_MEM
unset SIMCUDA_MODEL_ONLY

args="--model resnet50 --scale 0.125 --batch 2 --steps 2"
mv_run clean $args
mv_expect_ok clean 2

for off in 0 37; do
	mv_run "corrupt$off" $args --corrupt-byte "$off"
	[ "$MV_RC" -eq 1 ] || mv_fail_run "corrupt$off" "exit status $MV_RC with a corrupted byte, expected 1"
	grep -Eq '^checksum MISMATCH device [0-9a-f]{16} host [0-9a-f]{16}$' "$MV_TMP/corrupt$off.out" ||
		mv_fail_run "corrupt$off" "no mismatch line"
	grep -q "^checksum OK" "$MV_TMP/corrupt$off.out" && mv_fail_run "corrupt$off" "reported OK"
	# The host side of the comparison is the clean run's checksum.
	grep -q "host $(mv_checksum clean)\$" "$MV_TMP/corrupt$off.out" ||
		mv_fail_run "corrupt$off" "host checksum differs from the clean run's"
done

# An offset past the first weight is refused.
mv_run far $args --corrupt-byte 1000000000
[ "$MV_RC" -eq 2 ] || mv_fail_run far "exit status $MV_RC for an offset past the weight, expected 2"
exit 0
