#!/bin/sh
# How fast memvirtd gives a killed job's grant to the others: runs tests/e2e/fault-kill-pageout.sh
# RUNS times and prints the median, least and most milliseconds from the SIGKILL to the last new
# grant in the daemon's log, and to the first `memvirt stats --json` that shows both. Each run still
# checks the outcome (the grants move, both survivors end with a plain run's checksum); the times
# are printed, never held to a bound. Prints a Markdown table.
#
# usage: tests/bench/reclaim.sh [RUNS]   (via scripts/bench reclaim)
set -eu
: "${MV_TOP_BUILDDIR:?run through scripts/bench}"
: "${MV_TOP_SRCDIR:?run through scripts/bench}"
runs=${1:-5}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mv-bench-reclaim.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
i=0
while [ "$i" -lt "$runs" ]; do
	MV_KPO_TIMES=$tmp/times sh "$MV_TOP_SRCDIR/tests/e2e/fault-kill-pageout.sh" >"$tmp/log" 2>&1 || {
		echo "reclaim.sh: run $((i + 1)) failed:" >&2
		tail -n 20 "$tmp/log" >&2
		exit 1
	}
	i=$((i + 1))
done

# stat COLUMN: "median | least | most" of a column of the times file.
stat() {
	cut -d' ' -f"$1" "$tmp/times" | sort -n | awk '
		{ v[NR] = $1 }
		END { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		      printf "%d | %d | %d", m, v[1], v[NR] }'
}
echo "| from SIGKILL to | median ms | least | most | runs |"
echo "|---|---|---|---|---|"
echo "| the last new grant in memvirtd's log | $(stat 1) | $runs |"
echo "| the first stats showing both new grants | $(stat 2) | $runs |"
echo
echo "command: scripts/bench reclaim ($runs runs of tests/e2e/fault-kill-pageout.sh, $(nproc) cores)"
