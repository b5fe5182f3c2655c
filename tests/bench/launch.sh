#!/bin/sh
# Host cost of cuLaunchKernel with 2, 8 and 32 pointer arguments, and of cuEventRecord (which the
# library hooks to follow a capture's fork and join), on the simulated GPU directly and with
# libmemvirt.so preloaded, the two interleaved in one run. Model-only, so the simulated GPU's
# worker does little besides. Prints a Markdown table of the medians.
#
# usage: tests/bench/launch.sh [ROUNDS [ITERS [REPS]]]   (via scripts/bench launch)
set -eu
: "${MV_TOP_BUILDDIR:?run through scripts/bench}"
: "${MEMVIRT_LIB:=$MV_TOP_BUILDDIR/interpose/.libs/libmemvirt.so}"
bench=$MV_TOP_BUILDDIR/tests/bench/launch_bench
rounds=${1:-9} iters=${2:-20000} reps=${3:-7}
[ -x "$bench" ] || make -C "$MV_TOP_BUILDDIR" tests/bench/launch_bench >/dev/null
[ -r "$MEMVIRT_LIB" ] || { echo "launch.sh: no library at $MEMVIRT_LIB" >&2; exit 1; }
export SIMCUDA_MODEL_ONLY=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

median() {
	sort -n "$1" | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# One launch_bench run: its median ns per launch.
one() {
	sed -n 's/.* median_ns \([0-9.]*\)$/\1/p'
}

# Direct and preloaded runs alternate, so both see the same machine load.
r=0
while [ "$r" -lt "$rounds" ]; do
	for n in 2 8 32; do
		"$bench" launch "$n" "$iters" "$reps" | one >>"$tmp/direct.$n"
		LD_PRELOAD=$MEMVIRT_LIB "$bench" launch "$n" "$iters" "$reps" | one >>"$tmp/memvirt.$n"
	done
	"$bench" event 1 "$iters" "$reps" | one >>"$tmp/direct.event"
	LD_PRELOAD=$MEMVIRT_LIB "$bench" event 1 "$iters" "$reps" | one >>"$tmp/memvirt.event"
	r=$((r + 1))
done

echo "$rounds rounds, each a median of $reps repetitions of $iters launches; medians of the rounds"
echo
echo "| args | direct ns | memvirt ns | added ns | ratio |"
echo "|---|---|---|---|---|"
for n in 2 8 32; do
	d=$(median "$tmp/direct.$n")
	m=$(median "$tmp/memvirt.$n")
	awk -v n="$n" -v d="$d" -v m="$m" 'BEGIN { printf "| %d | %.0f | %.0f | %.0f | %.2f |\n", n, d, m, m - d, m / d }'
done
d=$(median "$tmp/direct.event")
m=$(median "$tmp/memvirt.event")
awk -v d="$d" -v m="$m" 'BEGIN { printf "| cuEventRecord | %.0f | %.0f | %.0f | %.2f |\n", d, m, m - d, m / d }'
d=$(median "$tmp/direct.8")
m=$(median "$tmp/memvirt.8")
awk -v d="$d" -v m="$m" 'BEGIN {
	added = m - d
	printf "\ntarget: at most 150 ns added with 8 pointer arguments: %s (%.0f ns added)\n",
	    added <= 150 ? "met" : "not met", added
}'
