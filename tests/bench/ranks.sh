#!/bin/sh
# mvtrain --ranks 8: eight data-parallel ranks, one simulated device each (model-only, modeled H100),
# each at half its peak, all linked to one private memvirtd that divides a node host limit among
# them, the shape of torchrun on an 8-GPU node. Alternating in one run, the same job with each rank
# on its own (MEMVIRT_DAEMON=off, every pool unbounded). Prints, per job: the modeled step time,
# the node's pinned host memory at the end (the ranks' pools summed) against the limit, the
# refusals of host memory ("host pool full" lines), the events the ranks sent memvirtd per step
# (all ranks, over the whole job), and the daemon's CPU time per step of the job beside the
# modeled step time: over the whole job, and the marginal cost of a step once the job
# runs (a 10-step and a 30-step job, each with a daemon of its own: the difference over 20 steps).
#
# usage: tests/bench/ranks.sh [RUNS [MODEL BATCH [LIMIT]]]   (via scripts/bench ranks)
set -eu
: "${MV_TOP_BUILDDIR:?run through scripts/bench}"
: "${MEMVIRT_LIB:=$MV_TOP_BUILDDIR/interpose/.libs/libmemvirt.so}"
runs=${1:-3} model=${2:-resnet50} batch=${3:-64} limit=${4:-32GiB}
ranks=8 steps=30 short=10
mvtrain=$MV_TOP_BUILDDIR/tests/workloads/mvtrain
memvirt=$MV_TOP_BUILDDIR/cli/memvirt
for p in "$mvtrain" "$memvirt"; do
	[ -x "$p" ] || { echo "ranks.sh: $p is not built" >&2; exit 1; }
done
[ -r "$MEMVIRT_LIB" ] || { echo "ranks.sh: no library at $MEMVIRT_LIB" >&2; exit 1; }
SIMCUDA_MODEL_ONLY=1 SIMCUDA_DEVICES=$ranks
export SIMCUDA_MODEL_ONLY SIMCUDA_DEVICES
unset MEMVIRT_BUDGET MEMVIRT_POLICY MEMVIRT_SOCKET MEMVIRT_HOST_LIMIT LD_PRELOAD

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mv-bench-ranks.XXXXXX")
chmod 700 "$tmp"
sock=$tmp/memvirtd.sock
dpid=
stop_daemon() {
	if [ -n "$dpid" ]; then
		"$memvirt" daemon stop --socket "$sock" >/dev/null 2>&1 || kill "$dpid" 2>/dev/null || true
		i=0
		while kill -0 "$dpid" 2>/dev/null && [ "$i" -lt 300 ]; do
			sleep 0.1
			i=$((i + 1))
		done
		dpid=
	fi
}
trap 'stop_daemon; rm -rf "$tmp"' EXIT

median() {
	sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# The daemon's CPU time so far in ns, from the scheduler's count (/proc/PID/schedstat).
daemon_cpu() {
	awk '{ print $1 }' "/proc/$dpid/schedstat"
}

"$mvtrain" --model "$model" --batch "$batch" --model-only --steps 3 --ranks $ranks >"$tmp/plain.out"
peak=$(sed -n 's/^peak device bytes \([0-9]*\) .*/\1/p' "$tmp/plain.out")
unlimited=$(sed -n 's/^modeled step time \([0-9.]*\) ms$/\1/p' "$tmp/plain.out")
budget=$((peak / 2))
printf '{ "host": { "limit": "%s" } }\n' "$limit" >"$tmp/memvirt.json"

# job NAME MODE STEPS: the 8-rank job under the library, MODE "daemon" or "alone".
job() {
	j_name=$1 j_mode=$2 j_steps=$3
	if [ "$j_mode" = daemon ]; then
		set -- MEMVIRT_SOCKET="$sock" MEMVIRT_JOB=ranks MEMVIRT_HOST_WAIT=30000
	else
		set -- MEMVIRT_DAEMON=off
	fi
	env LD_PRELOAD="$MEMVIRT_LIB" MEMVIRT_BUDGET=$budget "$@" MEMVIRT_LOG=info \
		"$mvtrain" --model "$model" --batch "$batch" --model-only --steps "$j_steps" --ranks $ranks \
		>"$tmp/$j_name.out" 2>"$tmp/$j_name.err"
}

# daemon_job NAME STEPS: the job linked to a daemon of its own; leaves the daemon's CPU ns over it
# in dj_cpu.
daemon_job() {
	"$memvirt" daemon start --socket "$sock" --config "$tmp/memvirt.json" --log-file "$tmp/memvirtd-$1.log" \
		--log-level info >"$tmp/start.out"
	dpid=$(sed -n 's/^memvirtd started (pid \([0-9]*\)).*/\1/p' "$tmp/start.out")
	[ -n "$dpid" ] || { echo "ranks.sh: memvirtd did not start: $(cat "$tmp/start.out")" >&2; exit 1; }
	dj_c0=$(daemon_cpu)
	job "$1" daemon "$2" || { echo "ranks.sh: the job with memvirtd failed:" >&2; tail -n 20 "$tmp/$1.err" >&2; exit 1; }
	dj_c1=$(daemon_cpu)
	stop_daemon
	dj_cpu=$((dj_c1 - dj_c0))
}

# The ranks' host pools at exit, summed, in bytes (from each library's closing line).
pools() {
	sed -n 's/^memvirt\[[0-9]*\] info: budget .*; host pool \([0-9.]*\) \([KMGT]*i*B\)$/\1 \2/p' "$tmp/$1.err" |
		awk '{ m = 1; if ($2 == "KiB") m = 1024; if ($2 == "MiB") m = 1048576; if ($2 == "GiB") m = 1073741824;
			s += $1 * m; n++ } END { printf "%d %.0f\n", n, s }'
}

for r in $(seq 1 "$runs"); do
	job "alone-$r" alone $steps || { echo "ranks.sh: the job alone failed:" >&2; tail -n 20 "$tmp/alone-$r.err" >&2; exit 1; }
	daemon_job "daemon-$r" $steps
	c_long=$dj_cpu
	daemon_job "short-$r" $short
	c_short=$dj_cpu
	for m in alone daemon; do
		sed -n 's/^modeled step time \([0-9.]*\) ms$/\1/p' "$tmp/$m-$r.out" >>"$tmp/$m.step"
		set -- $(pools "$m-$r")
		[ "$1" -eq $ranks ] || { echo "ranks.sh: $1 closing lines in $m-$r, expected $ranks" >&2; exit 1; }
		echo "$2" >>"$tmp/$m.pool"
		grep -c "host pool full" "$tmp/$m-$r.err" >>"$tmp/$m.full" || true
	done
	sed -n 's/^memvirt\[[0-9]*\] info: budget .*; events sent \([0-9]*\),.*/\1/p' "$tmp/daemon-$r.err" |
		awk -v s=$steps '{ e += $1 } END { printf "%.0f\n", e / s }' >>"$tmp/daemon.events"
	echo "$c_long" | awk -v s=$steps '{ printf "%.3f\n", $1 / s / 1e6 }' >>"$tmp/daemon.cpu"
	echo "$c_short $c_long" | awk -v d=$((steps - short)) '{ printf "%.3f\n", ($2 - $1) / d / 1e6 }' >>"$tmp/daemon.marginal"
done

mib() {
	awk '{ printf "%.0f MiB", $1 / 1048576 }'
}
echo
echo "Command: \`scripts/bench ranks\` (tests/bench/ranks.sh $runs $model $batch $limit): $ranks ranks of $model batch $batch,"
echo "model-only, each at half its peak ($budget of $peak bytes), $steps steps; medians of $runs runs, alternating."
echo "The same job with unlimited memory and no library: $unlimited ms a step. The daemon's CPU time is"
echo "its scheduler count over the whole job (linking, learning, planning and every event) divided by"
echo "the steps; the marginal cost is that of a $steps-step job less a $short-step one, over the $((steps - short))"
echo "steps between. The daemon runs on a core of its own, beside the ranks."
echo
echo "| ranks | modeled step | node's pinned host memory at the end | host memory refused | events sent per step | memvirtd CPU per step | marginal |"
echo "|---|---|---|---|---|---|---|"
echo "| each alone (no daemon) | $(median <"$tmp/alone.step") ms | $(median <"$tmp/alone.pool" | mib) (no limit) | $(median <"$tmp/alone.full") times | - | - | - |"
cpu=$(median <"$tmp/daemon.cpu")
step=$(median <"$tmp/daemon.step")
marg=$(median <"$tmp/daemon.marginal")
pct() {
	echo "$1 $step" | awk '{ printf "%.2f", 100 * $1 / $2 }'
}
echo "| one memvirtd, node host limit $limit | $step ms | $(median <"$tmp/daemon.pool" | mib) | $(median <"$tmp/daemon.full") times | $(median <"$tmp/daemon.events") | $cpu ms ($(pct "$cpu")% of the step) | $marg ms ($(pct "$marg")%) |"
