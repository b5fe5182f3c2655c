#!/bin/sh
# Modeled step time of VGG-16 and ResNet-50 at batch 256, full size and model-only, with unlimited
# device memory and then with libmemvirt.so preloaded under budgets of 100%, 50%, 33% and 25% of
# the plain run's peak: the overhead paging costs on the virtual clock, and the page traffic and the
# work run with buffers in host memory (partial residency) from the library's summary line. A budget
# too small for one launch's buffers (where the safety net cannot carry it) is reported, not failed.
# Prints a Markdown table.
#
# usage: tests/bench/paging.sh   (via scripts/bench paging)
set -eu
: "${MV_TOP_BUILDDIR:?run through scripts/bench}"
: "${MEMVIRT_LIB:=$MV_TOP_BUILDDIR/interpose/.libs/libmemvirt.so}"
mvtrain=$MV_TOP_BUILDDIR/tests/workloads/mvtrain
[ -r "$MEMVIRT_LIB" ] || { echo "paging.sh: no library at $MEMVIRT_LIB" >&2; exit 1; }
export SIMCUDA_MODEL_ONLY=1 SIMCUDA_MEM=4TiB
# The pinned host pool a GPU server would give, not three quarters of this machine's memory: the
# model-only driver backs none of it with real memory.
export MEMVIRT_HOST_LIMIT=256GiB
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

fail() {
	echo "paging.sh: $*" >&2
	cat "$tmp/err" >&2
	exit 1
}

# run MODEL BATCH [BUDGET]: mvtrain, plain or preloaded under BUDGET bytes ("none": no budget).
# Leaves stdout in $tmp/out and stderr in $tmp/err; returns mvtrain's status.
run() {
	if [ $# -eq 2 ]; then
		"$mvtrain" --model "$1" --batch "$2" --model-only --steps 3 </dev/null >"$tmp/out" 2>"$tmp/err"
	elif [ "$3" = none ]; then
		MEMVIRT_LOG=info LD_PRELOAD=$MEMVIRT_LIB \
			"$mvtrain" --model "$1" --batch "$2" --model-only --steps 3 </dev/null >"$tmp/out" 2>"$tmp/err"
	else
		MEMVIRT_BUDGET=$3 MEMVIRT_LOG=info LD_PRELOAD=$MEMVIRT_LIB \
			"$mvtrain" --model "$1" --batch "$2" --model-only --steps 3 </dev/null >"$tmp/out" 2>"$tmp/err"
	fi
}

step_ms() {
	sed -n 's/^modeled step time \([0-9.]*\) ms$/\1/p' "$tmp/out"
}

# The count and volume of page-outs or page-ins from the library's summary line.
traffic() {
	sed -n "s/.* info: budget .* $1 \\([0-9]* ([^)]*)\\).*/\\1/p" "$tmp/err" | tail -n 1
}

# Work run with buffers left in host memory: "RUNS (BYTES)" from the summary line.
over_link() {
	sed -n 's/.* over the link \([0-9]*\) runs naming \([^;]*\).*/\1 (\2)/p' "$tmp/err" | tail -n 1
}

human() {
	awk -v b="$1" 'BEGIN { printf "%.1f GiB", b / 1073741824 }'
}

echo "| model | batch | budget | modeled step time | overhead | page-outs | page-ins | over the link |"
echo "|---|---|---|---|---|---|---|---|"
while read -r model batch; do
	run "$model" "$batch" || fail "plain $model run failed"
	grep -qx 'checksum skipped (model-only)' "$tmp/out" || fail "plain $model run was not model-only"
	peak=$(sed -n 's/^peak device bytes \([0-9]*\) .*/\1/p' "$tmp/out")
	base=$(step_ms)
	if [ -z "$peak" ] || [ -z "$base" ]; then
		fail "no peak or step time from the plain $model run"
	fi
	echo "| $model | $batch | unlimited, plain (peak $(human "$peak")) | $base ms | - | - | - | - |"
	for pct in none 100 50 33 25; do
		if [ "$pct" = none ]; then
			budget=none label="unlimited, memvirt"
		else
			budget=$((peak * pct / 100)) label="$pct% ($(human $((peak * pct / 100))))"
		fi
		rc=0
		run "$model" "$batch" "$budget" || rc=$?
		if [ "$rc" -ne 0 ]; then
			grep -q 'CUDA_ERROR_OUT_OF_MEMORY' "$tmp/err" || fail "$model under $label exited $rc"
			# "cannot make room for X bytes: ... in use Y": X more were wanted on top of Y held by
			# operations in flight; the largest such sum is a lower bound on what the run needs.
			need=$(sed -n 's/.*cannot make room for \([0-9]*\) bytes: .* in use \([0-9]*\),.*/\1 \2/p' \
				"$tmp/err" | awk '$1 + $2 > m { m = $1 + $2 } END { if (m) print m }')
			why=$(sed -n 's/^mvtrain: \(.*\) failed: CUDA_ERROR_OUT_OF_MEMORY.*/\1/p' "$tmp/err" | head -n 1)
			if [ -n "$need" ]; then
				why="$why out of memory: $(human "$need") wanted resident at once"
			else
				why="$why out of memory"
			fi
			echo "| $model | $batch | $label | does not fit ($why) | - | $(traffic page-outs) | $(traffic page-ins) | $(over_link) |"
			continue
		fi
		ms=$(step_ms)
		over=$(awk -v a="$ms" -v b="$base" 'BEGIN { printf "%+.1f%%", (a / b - 1) * 100 }')
		echo "| $model | $batch | $label | $ms ms | $over | $(traffic page-outs) | $(traffic page-ins) | $(over_link) |"
	done
done <<'LIST'
vgg16 256
resnet50 256
LIST
