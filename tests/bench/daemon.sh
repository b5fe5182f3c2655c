#!/bin/sh
# memvirtd and the library's link to it, each against a private daemon on a private socket:
#   ingest  events a second the daemon takes in on one core from 8 event_flood clients, by its own
#           count (memvirt stats --json) over fixed windows, beside the clients' send rate;
#   launch  host cost of cuLaunchKernel with 8 pointers under libmemvirt.so linked to the daemon
#           against MEMVIRT_DAEMON=off, alternating in one run;
#   drops   events the library drops at a fixed launch rate (launch_bench rate).
# The simulated GPU is model-only throughout. Prints a Markdown table for each, with its command.
#
# usage: tests/bench/daemon.sh [WINDOWS [ROUNDS [RUNS]]]   (via scripts/bench daemon)
set -eu
: "${MV_TOP_BUILDDIR:?run through scripts/bench}"
: "${MV_TOP_SRCDIR:?run through scripts/bench}"
: "${MEMVIRT_LIB:=$MV_TOP_BUILDDIR/interpose/.libs/libmemvirt.so}"
windows=${1:-7} rounds=${2:-9} runs=${3:-5}
memvirtd=$MV_TOP_BUILDDIR/daemon/memvirtd
memvirt=$MV_TOP_BUILDDIR/cli/memvirt
bench=$MV_TOP_BUILDDIR/tests/bench/launch_bench
flood=$MV_TOP_BUILDDIR/tests/bench/event_flood
export SIMCUDA_MODEL_ONLY=1

for p in "$memvirtd" "$memvirt"; do
	[ -x "$p" ] || { echo "daemon.sh: $p is not built" >&2; exit 1; }
done
[ -r "$MEMVIRT_LIB" ] || { echo "daemon.sh: no library at $MEMVIRT_LIB" >&2; exit 1; }
make -C "$MV_TOP_BUILDDIR" tests/bench/launch_bench >/dev/null
# event_flood is a check program once the Makefile lists it; until then it is built here.
if [ ! -x "$flood" ]; then
	${CC:-gcc} -std=gnu11 -O2 -I"$MV_TOP_SRCDIR" -I"$MV_TOP_BUILDDIR" -o "$flood" \
		"$MV_TOP_SRCDIR/tests/bench/event_flood.c" "$MV_TOP_SRCDIR/protocol/frame.c" -lpthread
fi
ncpu=$(nproc)
[ "$ncpu" -ge 2 ] || { echo "daemon.sh: needs two cores, one for the daemon and one for its clients" >&2; exit 1; }
others=1-$((ncpu - 1))

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mv-bench-daemon.XXXXXX")
sock=$tmp/memvirtd.sock
dpid=
stop_daemon() {
	if [ -n "$dpid" ]; then
		kill "$dpid" 2>/dev/null || true
		wait "$dpid" 2>/dev/null || true
		dpid=
	fi
}
trap 'stop_daemon; rm -rf "$tmp"' EXIT

# start_daemon [CPUS]: a private memvirtd on $sock, pinned to CPUS when given; returns once it
# answers.
start_daemon() {
	rm -f "$sock"
	if [ $# -gt 0 ]; then
		taskset -c "$1" "$memvirtd" --socket "$sock" --log-level warn 2>>"$tmp/memvirtd.log" &
	else
		"$memvirtd" --socket "$sock" --log-level warn 2>>"$tmp/memvirtd.log" &
	fi
	dpid=$!
	i=0
	until "$memvirt" stats --json --socket "$sock" >/dev/null 2>&1; do
		i=$((i + 1))
		[ "$i" -lt 100 ] || { echo "daemon.sh: memvirtd did not start" >&2; cat "$tmp/memvirtd.log" >&2; exit 1; }
		sleep 0.05
	done
}

median() {
	sort -g "$1" | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

now() {
	date +%s.%N
}

# The daemon's count of events received, over all its sessions; nothing unless all 8 are there.
daemon_events() {
	taskset -c "$others" "$memvirt" stats --json --socket "$sock" |
		awk -F'[:,]' '/"events":/ { s += $2; n++ } END { if (n == 8) printf "%.0f\n", s }'
}

# sample: the daemon's count (se), the time it was taken, as the middle of the query (st), and the
# CPU seconds the daemon has used, user and system (sc).
sample() {
	sa=$(now)
	se=$(daemon_events)
	[ -n "$se" ] || { echo "daemon.sh: memvirt stats did not show the 8 event_flood sessions" >&2; exit 1; }
	sb=$(now)
	sc=$(daemon_cpu)
	st=$(awk -v a="$sa" -v b="$sb" 'BEGIN { printf "%.6f\n", (a + b) / 2 }')
}

# CPU seconds the daemon has used (user and system).
daemon_cpu() {
	awk -v hz="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); printf "%.2f\n", ($12 + $13) / hz }' "/proc/$dpid/stat"
}

# ---- ingest ----

# ingest K: one flood of 8 clients sending K events a frame, sampled over $windows one-second
# windows after a second of warm-up, beside the clients' own rate over about the same span; one
# table row.
ingest() {
	k=$1 secs=$((windows + 2))
	rm -f "$tmp/rate" "$tmp/cpu" "$tmp/percpu"
	taskset -c "$others" "$flood" -n 8 -k "$k" -t "$secs" -w 1 "$sock" >"$tmp/flood" &
	fpid=$!
	sleep 1
	sample
	t0=$st e0=$se c0=$sc
	w=0
	while [ "$w" -lt "$windows" ]; do
		sleep 1
		sample
		t1=$st e1=$se c1=$sc
		awk -v e0="$e0" -v e1="$e1" -v t0="$t0" -v t1="$t1" 'BEGIN { printf "%.0f\n", (e1 - e0) / (t1 - t0) }' >>"$tmp/rate"
		awk -v c0="$c0" -v c1="$c1" -v t0="$t0" -v t1="$t1" 'BEGIN { printf "%.1f\n", 100 * (c1 - c0) / (t1 - t0) }' >>"$tmp/cpu"
		awk -v e0="$e0" -v e1="$e1" -v c0="$c0" -v c1="$c1" 'BEGIN { if (c1 > c0) printf "%.0f\n", (e1 - e0) / (c1 - c0) }' >>"$tmp/percpu"
		t0=$t1 e0=$e1 c0=$c1
		w=$((w + 1))
	done
	wait "$fpid" || { echo "daemon.sh: event_flood failed" >&2; cat "$tmp/flood" >&2; exit 1; }
	sent=$(sed -n 's/.* steady_events_per_s \([0-9]*\)$/\1/p' "$tmp/flood")
	rate=$(median "$tmp/rate")
	awk -v k="$k" -v r="$rate" -v lo="$(sort -g "$tmp/rate" | head -n 1)" -v hi="$(sort -g "$tmp/rate" | tail -n 1)" \
		-v s="$sent" -v c="$(median "$tmp/cpu")" -v p="$(median "$tmp/percpu")" \
		'BEGIN { printf "| %d | %.2f M | %.2f to %.2f M | %.2f M | %.2f | %.0f%% | %.2f M |\n", k, r / 1e6, lo / 1e6, hi / 1e6,
		    s / 1e6, r / s, c, p / 1e6 }'
}

echo "### Ingest on one core"
echo
echo "memvirtd: \`taskset -c 0 $memvirtd --socket SOCK --log-level warn\`"
echo "clients: \`taskset -c $others $flood -n 8 -k K -t $((windows + 2)) -w 1 SOCK\`"
echo "daemon's count: \`memvirt stats --json --socket SOCK\` (sum of \"events\"), $windows one-second windows after one second;"
echo "clients' rate: event_flood's own count from 1 s after the start to 1 s before the end"
echo
echo "| events per frame | ingested/s (median) | range | clients sent/s | ingested/sent | daemon CPU | per daemon CPU-second |"
echo "|---|---|---|---|---|---|---|"
start_daemon 0
ingest 1024
ingest 64
stop_daemon

# ---- launch ----

start_daemon
on() {
	MEMVIRT_SOCKET=$sock LD_PRELOAD=$MEMVIRT_LIB "$bench" --linked launch 8 20000 7 |
		sed -n 's/.* median_ns \([0-9.]*\)$/\1/p' >>"$tmp/on"
}
off() {
	MEMVIRT_DAEMON=off LD_PRELOAD=$MEMVIRT_LIB "$bench" launch 8 20000 7 |
		sed -n 's/.* median_ns \([0-9.]*\)$/\1/p' >>"$tmp/off"
}
# The two sides alternate, each going first in every other round.
r=0
while [ "$r" -lt "$rounds" ]; do
	if [ $((r % 2)) -eq 0 ]; then on; off; else off; on; fi
	r=$((r + 1))
done
echo
echo "### Launch cost with the link"
echo
echo "linked: \`MEMVIRT_SOCKET=SOCK LD_PRELOAD=$MEMVIRT_LIB $bench --linked launch 8 20000 7\`"
echo "off: \`MEMVIRT_DAEMON=off LD_PRELOAD=$MEMVIRT_LIB $bench launch 8 20000 7\`"
echo "both with SIMCUDA_MODEL_ONLY=1 and \`$memvirtd --socket SOCK --log-level warn\` running (not pinned);"
echo "$rounds rounds, alternating, each a median of 7 repetitions of 20000 launches; medians of the rounds"
echo
echo "| args | link off ns | linked ns | added ns | ratio |"
echo "|---|---|---|---|---|"
d=$(median "$tmp/off")
m=$(median "$tmp/on")
awk -v d="$d" -v m="$m" 'BEGIN { printf "| 8 | %.0f | %.0f | %.0f | %.2f |\n", d, m, m - d, m / d }'
echo
echo "rounds, link off: $(sort -g "$tmp/off" | tr '\n' ' ')"
echo "rounds, linked: $(sort -g "$tmp/on" | tr '\n' ' ')"

# ---- drops ----

# drops RATE: $runs runs of 3 s at RATE launches a second; one table row of medians.
drops() {
	rm -f "$tmp/ach" "$tmp/late" "$tmp/sent" "$tmp/drop" "$tmp/frac"
	i=0
	while [ "$i" -lt "$runs" ]; do
		MEMVIRT_SOCKET=$sock LD_PRELOAD=$MEMVIRT_LIB "$bench" rate 8 "$1" 3 |
			sed -n 's/.* achieved_per_s \([0-9]*\) max_late_us \([0-9.]*\) events_sent \([0-9]*\) events_dropped \([0-9]*\)$/\1 \2 \3 \4/p' >"$tmp/fields"
		read -r ach late sent drop <"$tmp/fields" || { echo "daemon.sh: launch_bench rate printed nothing" >&2; exit 1; }
		echo "$ach" >>"$tmp/ach"
		echo "$late" >>"$tmp/late"
		echo "$sent" >>"$tmp/sent"
		echo "$drop" >>"$tmp/drop"
		awk -v s="$sent" -v d="$drop" 'BEGIN { printf "%.6f\n", ((s + d) > 0 ? d / (s + d) : 0) }' >>"$tmp/frac"
		i=$((i + 1))
	done
	awk -v t="$1" -v a="$(median "$tmp/ach")" -v l="$(median "$tmp/late")" -v s="$(median "$tmp/sent")" \
		-v d="$(median "$tmp/drop")" -v f="$(median "$tmp/frac")" -v fmax="$(sort -g "$tmp/frac" | tail -n 1)" \
		'BEGIN { printf "| %d | %.0f (%s) | %.1f | %.0f | %.0f | %.4f%% | %.4f%% |\n", t, a,
		    (a >= 0.99 * t ? "reached" : "not reached"), l / 1e3, s, d, 100 * f, 100 * fmax }'
}

echo
echo "### Dropped events at a fixed launch rate"
echo
echo "\`MEMVIRT_SOCKET=SOCK LD_PRELOAD=$MEMVIRT_LIB $bench rate 8 RATE 3\`, SIMCUDA_MODEL_ONLY=1,"
echo "the same daemon (not pinned); $runs runs per rate, medians"
echo
echo "| target launches/s | achieved/s | worst lateness ms | events sent | dropped | dropped fraction | worst run |"
echo "|---|---|---|---|---|---|---|"
drops 200000
drops 400000
drops 1000000
stop_daemon
