#!/bin/sh
# Planning time of each built-in policy for one iteration of 10,000 launches (tests/bench/plan_bench.c):
# the median of 20 plans, in milliseconds. The goal is under 50 ms.
#
# usage: tests/bench/planning.sh   (via scripts/bench planning)
set -eu
: "${MV_TOP_BUILDDIR:?run through scripts/bench}"
bench=$MV_TOP_BUILDDIR/tests/bench/plan_bench
[ -x "$bench" ] || make -s -C "$MV_TOP_BUILDDIR" tests/bench/plan_bench >&2
"$bench"
