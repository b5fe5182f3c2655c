#!/bin/sh
# Peak device memory and modeled step time of each model at full size, in model-only mode on the
# simulated GPU (default clock: one H100 SXM, FP32). Prints a Markdown table.
set -eu
mvtrain=${MV_TOP_BUILDDIR:?}/tests/workloads/mvtrain
export SIMCUDA_MODEL_ONLY=1 SIMCUDA_MEM=4TiB

echo "| model | batch | other | peak device memory | modeled step time |"
echo "|---|---|---|---|---|"
while read -r model batch extra; do
	# shellcheck disable=SC2086
	out=$("$mvtrain" --model "$model" --batch "$batch" $extra --model-only --steps 3)
	peak=$(echo "$out" | sed -n 's/^peak device bytes [0-9]* (\(.*\))$/\1/p')
	step=$(echo "$out" | sed -n 's/^modeled step time \(.*\)$/\1/p')
	echo "| $model | $batch | ${extra:--} | $peak | $step |"
done <<'LIST'
vgg16 128
vgg16 256
resnet50 256
transformer 32 --seq 2048
lstm 64
LIST
