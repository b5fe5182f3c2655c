#!/bin/sh
# cuMemAlloc_v2/cuMemFree_v2 pairs per second for 4 KiB (slab), 256 KiB (slab), 4 MiB and 64 MiB,
# on the simulated GPU directly and with libmemvirt.so preloaded, the two interleaved in one run.
# Once with the simulated GPU storing bytes (each of its allocations maps memory of its own), once
# model-only (it stores none). Prints a Markdown table per mode.
#
# usage: tests/bench/alloc.sh [ROUNDS [REPS]]   (via scripts/bench alloc)
set -eu
: "${MV_TOP_BUILDDIR:?run through scripts/bench}"
: "${MEMVIRT_LIB:=$MV_TOP_BUILDDIR/interpose/.libs/libmemvirt.so}"
bench=$MV_TOP_BUILDDIR/tests/bench/launch_bench
rounds=${1:-5} reps=${2:-7}
[ -x "$bench" ] || make -C "$MV_TOP_BUILDDIR" tests/bench/launch_bench >/dev/null
[ -r "$MEMVIRT_LIB" ] || { echo "alloc.sh: no library at $MEMVIRT_LIB" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sizes="4KiB 256KiB 4MiB 64MiB"

median() {
	sort -n "$1" | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

one() {
	sed -n 's/.* median_pairs_per_s \([0-9.]*\)$/\1/p'
}

# table MODE ITERS: MODE "stored" or "model-only".
table() {
	mode=$1 iters=$2
	if [ "$mode" = model-only ]; then
		SIMCUDA_MODEL_ONLY=1
		export SIMCUDA_MODEL_ONLY
	else
		unset SIMCUDA_MODEL_ONLY
	fi
	r=0
	while [ "$r" -lt "$rounds" ]; do
		for s in $sizes; do
			"$bench" alloc "$s" "$iters" "$reps" | one >>"$tmp/direct.$mode.$s"
			LD_PRELOAD=$MEMVIRT_LIB "$bench" alloc "$s" "$iters" "$reps" | one >>"$tmp/memvirt.$mode.$s"
		done
		r=$((r + 1))
	done
	echo "simulated GPU $mode; $rounds rounds, each a median of $reps repetitions of $iters pairs; medians of the rounds"
	echo
	echo "| size | direct pairs/s | memvirt pairs/s | ratio |"
	echo "|---|---|---|---|"
	for s in $sizes; do
		d=$(median "$tmp/direct.$mode.$s")
		m=$(median "$tmp/memvirt.$mode.$s")
		awk -v s="$s" -v d="$d" -v m="$m" 'BEGIN { printf "| %s | %.0f | %.0f | %.2f |\n", s, d, m, m / d }'
	done
	awk -v list="$(for s in $sizes; do
		printf '%s %s %s\n' "$s" "$(median "$tmp/direct.$mode.$s")" "$(median "$tmp/memvirt.$mode.$s")"
	done)" 'BEGIN {
		n = split(list, line, "\n"); slow = ""
		for (i = 1; i <= n; i++) { split(line[i], f, " "); if (f[3] < f[2]) slow = slow " " f[1] }
		printf "\ntarget: through the library at least as fast as direct: %s\n\n",
		    slow == "" ? "met" : "not met for" slow
	}'
}

table stored 2000
table model-only 20000
