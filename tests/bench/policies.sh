#!/bin/sh
# The policies on full-size models, modeled: each mvtrain model runs model-only (SIMCUDA_MODEL_ONLY=1)
# under libmemvirt.so with MEMVIRT_RECORD and no budget, 4 steps; 'memvirt trace replay --all' then
# plans the recorded iteration with every policy at 75%, 50%, 33% and 25% of its peak (VGG-16 also
# at 12 GB) on a 55 GB/s link each way and reports the modeled overhead over unlimited memory, the
# ratio to the bandwidth lower bound (and the bound for copies in 2 MiB pieces beside it), the
# ratio to the unified-memory baseline (the "uvm" row: demand paging in 2 MiB blocks at 45 us a
# fault, memvirt-policies(7)), bytes moved each way and the peak. Below what one launch needs at
# once the replay reads the rest over the link and has no bound ("none"); a refused budget is
# reported as infeasible. Then three of the models run live under lru, mmcnn
# and auto at one budget each, so the virtual clock's step time can be set beside the replay's.
# Last, mvtrain --graphs (per-layer CUDA graphs, replayed) beside the same model run eagerly, live
# at half the eager run's peak. Prints Markdown.
#
# usage: tests/bench/policies.sh [graphs|replay]   (via scripts/bench policies; "graphs" or
# "replay": that part only)
set -eu
: "${MV_TOP_BUILDDIR:?run through scripts/bench}"
: "${MEMVIRT_LIB:=$MV_TOP_BUILDDIR/interpose/.libs/libmemvirt.so}"
mvtrain=$MV_TOP_BUILDDIR/tests/workloads/mvtrain
memvirt=$MV_TOP_BUILDDIR/cli/memvirt
[ -r "$MEMVIRT_LIB" ] || { echo "policies.sh: no library at $MEMVIRT_LIB" >&2; exit 1; }
# The link: an H100's PCIe by default; MV_BENCH_H2D_GBPS=340 MV_BENCH_D2H_GBPS=170 models a GH200's.
export SIMCUDA_MODEL_ONLY=1 SIMCUDA_MEM=4TiB MEMVIRT_H2D_GBPS=${MV_BENCH_H2D_GBPS:-55} \
	MEMVIRT_D2H_GBPS=${MV_BENCH_D2H_GBPS:-55}
link="--h2d $MEMVIRT_H2D_GBPS --d2h $MEMVIRT_D2H_GBPS"
unset MEMVIRT_BUDGET MEMVIRT_POLICY MEMVIRT_LOG
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

MODELS='vgg16 256
resnet50 256
lstm 64
transformer 32 --seq 2048'

# record NAME MODEL BATCH [EXTRA...]: a trace of the model's run at full size.
record() {
	name=$1
	shift
	MEMVIRT_RECORD=$tmp/$name.mvtrace LD_PRELOAD=$MEMVIRT_LIB \
		"$mvtrain" --model "$@" --model-only --steps 4 </dev/null >"$tmp/$name.out" 2>"$tmp/$name.err" || {
		echo "policies.sh: recording $name failed" >&2
		cat "$tmp/$name.err" >&2
		exit 1
	}
}

# live BYTES POLICY ARGS...: mvtrain at full size, model-only, 12 steps under the library with that
# budget and policy; prints the median modeled step time of steps 4-11 and their range.
live() {
	lv_bytes=$1 lv_pol=$2
	shift 2
	if ! MEMVIRT_DAEMON=off MEMVIRT_POLICY=$lv_pol MEMVIRT_BUDGET=$lv_bytes MEMVIRT_LOG=info LD_PRELOAD=$MEMVIRT_LIB \
		"$mvtrain" "$@" --model-only --steps 12 </dev/null >"$tmp/live.out" 2>"$tmp/live.err"; then
		echo "failed: $(grep -m1 -i error "$tmp/live.err" | cut -c1-80)"
		return
	fi
	sed -n 's/^step \([4-9]\|1[01]\) time \([0-9.]*\) ms$/\2/p' "$tmp/live.out" | sort -n |
		awk '{ v[NR] = $1 } END { printf "%.3f ms (%.3f-%.3f)", (v[4] + v[5]) / 2, v[1], v[NR] }'
}

# The graphs part: each model's eager peak, then eager and --graphs runs at half of it.
graphs_part() {
	echo
	echo "CUDA graphs: mvtrain --graphs (a warm-up step, then each layer's forward and backward"
	echo "replayed as a graph of its own) beside the same model run eagerly, live at half the eager"
	echo "run's peak, median modeled step of steps 4-11 (min-max):"
	echo
	echo "| model | budget | policy | eager | --graphs | --graphs / eager |"
	echo "|---|---|---|---|---|---|"
	echo 'resnet50 64
vgg16 64
transformer 8
lstm 64' | while read -r model batch; do
		"$mvtrain" --model "$model" --batch "$batch" --model-only --steps 1 >"$tmp/peak.out"
		bytes=$(($(sed -n 's/^peak device bytes \([0-9]*\) .*/\1/p' "$tmp/peak.out") / 2))
		for pol in lru mmcnn auto; do
			eager=$(live "$bytes" "$pol" --model "$model" --batch "$batch")
			graphs=$(live "$bytes" "$pol" --model "$model" --batch "$batch" --graphs)
			ratio=$(echo "$eager $graphs" | awk '$1 + 0 > 0 && $4 + 0 > 0 { printf "%.3f", $4 / $1 }')
			echo "| $model $batch | 50% ($bytes B) | $pol | $eager | $graphs | ${ratio:--} |"
		done
	done
}
if [ "${1:-}" = graphs ]; then
	graphs_part
	exit 0
fi

echo "| model | budget | lower bound | chunk bound | policy | overhead | × bound | × uvm | out | in | peak |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
echo "$MODELS" | while read -r model batch extra; do
	# shellcheck disable=SC2086 # extra is a list of words
	record "$model" "$model" --batch "$batch" $extra
	budgets="75% 50% 33% 25%"
	[ "$model" = vgg16 ] && budgets="$budgets 12GB"
	for b in $budgets; do
		# shellcheck disable=SC2086 # link is four words
		if ! "$memvirt" trace replay "$tmp/$model.mvtrace" --all --budget "$b" $link >"$tmp/r" 2>"$tmp/e"; then
			echo "| $model $batch | $b | - | - | all | $(sed 's/.*infeasible[^:]*: /infeasible: /; s/|/\\|/g' "$tmp/e" | head -n 1) | | | | | |"
			continue
		fi
		# None below what one launch names: the replay reads the rest over the link.
		lb=$(sed -n 's/.*lower bound \([0-9.]* ms\).*/\1/p' "$tmp/r")
		cb=$(sed -n 's/.* ms, \([0-9.]* ms\) in .* pieces.*/\1/p' "$tmp/r")
		lb=${lb:-none} cb=${cb:-none}
		awk -v m="$model $batch" -v b="$b" -v lb="$lb" -v cb="$cb" '
			$1 ~ /^(lru|vdnn-all|vdnn-conv|mmcnn|auto|uvm)$/ {
				printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s %s | %s %s | %s %s |\n",
					m, b, lb, cb, $1, $12, $13, $14, $4, $5, $6, $7, $2, $3
			}' "$tmp/r"
	done
done

[ "${1:-}" = replay ] && exit 0

echo
echo "Live (the library learns, plans and follows the plan on the simulated GPU's virtual clock),"
echo "against the replay of the recorded trace with the same policy and budget:"
echo
echo "| model | budget | policy | live modeled step, median of steps 4-11 (min-max) | live planned out / in / late | replay step | unlimited | uvm baseline (replay) |"
echo "|---|---|---|---|---|---|---|---|"
echo 'resnet50 256 75%
vgg16 256 12GB
lstm 64 50%' | while read -r model batch b; do
	record "$model" "$model" --batch "$batch"
	case $b in
	*%) peak=$(sed -n 's/^peak device bytes \([0-9]*\) .*/\1/p' "$tmp/$model.out")
	    bytes=$((peak * ${b%\%} / 100)) ;;
	*) bytes=$b ;;
	esac
	for pol in lru mmcnn auto; do
		# shellcheck disable=SC2086 # link is four words
		"$memvirt" trace replay "$tmp/$model.mvtrace" --policy "$pol" --budget "$b" $link >"$tmp/r" 2>&1 || true
		want=$(sed -n 's/^step  *\([0-9.]* ms\); unlimited.*/\1/p' "$tmp/r")
		unl=$(sed -n 's/^step  *.*; unlimited \([0-9.]* ms\).*/\1/p' "$tmp/r")
		uvm=$(sed -n 's/^uvm baseline  *step \([0-9.]* ms\).*/\1/p' "$tmp/r")
		if ! MEMVIRT_POLICY=$pol MEMVIRT_BUDGET=$bytes MEMVIRT_LOG=info LD_PRELOAD=$MEMVIRT_LIB \
			"$mvtrain" --model "$model" --batch "$batch" --model-only --steps 12 </dev/null \
			>"$tmp/live.out" 2>"$tmp/live.err"; then
			echo "| $model $batch | $b | $pol | failed: $(grep -m1 -i error "$tmp/live.err" | cut -c1-80) | | ${want:-?} | $unl | ${uvm:-?} |"
			continue
		fi
		med=$(sed -n 's/^step \([4-9]\|1[01]\) time \([0-9.]*\) ms$/\2/p' "$tmp/live.out" | sort -n |
			awk '{ v[NR] = $1 } END { printf "%.3f (%.3f-%.3f)", (v[4] + v[5]) / 2, v[1], v[NR] }')
		pl=$(sed -n 's/.* planned out \([0-9]*\), in \([0-9]*\), late \([0-9]*\),.*/\1 \/ \2 \/ \3/p' "$tmp/live.err" | tail -n 1)
		echo "| $model $batch | $b | $pol | $med ms | $pl | ${want:-?} | $unl | ${uvm:-?} |"
	done
done

graphs_part
