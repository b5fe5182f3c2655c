#!/bin/sh
# Sorts the simulated driver's unit tests into those that can run on a real driver and those that
# use the simulator's own controls (simcuda_* entry points, the modeled clock, SIMCUDA_* settings,
# the built-in module by name), for scripts/gpu-check.
#
# usage: hw-cases.sh tests/unit/check_simcuda_*.c    prints "BINARY TEST hardware|simulator" lines
# A test counts as the simulator's when its own body names one of those controls; a control reached
# only through a helper function is missed, and such a test then shows up as a difference.
set -eu
[ $# -gt 0 ] || { echo "usage: hw-cases.sh CHECK_SOURCE..." >&2; exit 2; }
for src in "$@"; do
	[ -r "$src" ] || { echo "hw-cases: cannot read $src" >&2; exit 1; }
	bin=$(basename "$src" .c)
	awk -v bin="$bin" '
	/^START_TEST\(/ { name = $0; sub(/^START_TEST\(/, "", name); sub(/\).*/, "", name); sim = 0; next }
	name != "" && /(simcuda_|SIMCUDA_|simtest_env\(|simtest_start\("|simtest_(clock|makespan)_ns|simtest_model_only|simtest_mem_usage|simtest_sym\(|"simcuda")/ { sim = 1 }
	name != "" && /^END_TEST/ { print bin, name, (sim ? "simulator" : "hardware"); name = "" }
	' "$src"
done
