# Every model trains at small scale on the simulated GPU and matches the host reference bit for bit,
# with either allocator and either stream; model-only mode runs full-size shapes without bytes.
. "$(dirname "$0")/lib.sh"
mv_need_mvtrain
mv_tmpdir
SIMCUDA_MEM=4GiB
export SIMCUDA_MEM
unset SIMCUDA_MODEL_ONLY

# model scale batch
for spec in "vgg16 0.125 2" "resnet50 0.125 2" "transformer 0.03125 2" "lstm 0.0625 2"; do
	set -- $spec
	mv_run "$1" --model "$1" --scale "$2" --batch "$3" --steps 3
	mv_expect_ok "$1" 3
	sum=$(mv_checksum "$1")

	# The allocator and the stream change nothing in the results.
	mv_run "$1-async" --model "$1" --scale "$2" --batch "$3" --steps 3 --alloc async
	mv_expect_ok "$1-async" 3
	[ "$(mv_checksum "$1-async")" = "$sum" ] ||
		mv_fail "$1: --alloc async gives $(mv_checksum "$1-async"), sync gives $sum"
done

mv_run legacy --model lstm --scale 0.0625 --batch 2 --steps 2 --stream legacy --alloc async
mv_expect_ok legacy 2

# Different data must give different weights, or the comparison proves nothing.
mv_run vgg16-4 --model vgg16 --scale 0.125 --batch 2 --steps 4
mv_expect_ok vgg16-4 4
[ "$(mv_checksum vgg16-4)" != "$(mv_checksum vgg16)" ] ||
	mv_fail "4 steps and 3 steps give the same checksum"

# Model-only: a modest scale, and full-size shapes, which only issue launches.
SIMCUDA_MEM=64GiB
for spec in "resnet50 0.5" "vgg16 1" "transformer 1" "lstm 1"; do
	set -- $spec
	mv_run "$1-mo" --model "$1" --scale "$2" --steps 2 --model-only
	[ "$MV_RC" -eq 0 ] || mv_fail_run "$1-mo" "model-only exit status $MV_RC"
	[ "$(tail -n 1 "$MV_TMP/$1-mo.out")" = "checksum skipped (model-only)" ] ||
		mv_fail_run "$1-mo" "model-only run does not end with the skipped line"
	[ "$(grep -c '^step ' "$MV_TMP/$1-mo.out")" -eq 2 ] || mv_fail_run "$1-mo" "wrong step count"
done

# Bad option values are named, with exit status 2.
for bad in "--batch abc" "--scale 0" "--model alexnet" "--alloc maybe" "--stream fast"; do
	set -- $bad
	mv_run bad "$@"
	[ "$MV_RC" -eq 2 ] || mv_fail_run bad "'$bad' exits $MV_RC, expected 2"
	grep -q "'$2'" "$MV_TMP/bad.err" || mv_fail_run bad "'$bad': the error does not name '$2'"
done
exit 0
