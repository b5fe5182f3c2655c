# memvirt trace timeline writes what Perfetto shows whole: on every track, each slice is nested in or
# disjoint from the others (Perfetto's rule for complete events on one track: a slice that starts
# inside another must end inside it; it drops one that does not). Checked on a real recording of
# mvtrain paging under a third of its peak, whose launches are stamped on the host while the
# simulated device still runs the ones before them, as recorded and as modeled under each policy.
# The recorded timeline keeps every launch, each with its recorded duration.
. "$(dirname "$0")/lib.sh"
: "${MEMVIRT_LIB:=$MV_TOP_BUILDDIR/interpose/.libs/libmemvirt.so}"
MEMVIRT=$MV_TOP_BUILDDIR/cli/memvirt
MVSOCK=$MV_TOP_BUILDDIR/tests/e2e/mvsock
for p in "$MEMVIRT" "$MVSOCK"; do
	[ -x "$p" ] || mv_fail "$p is not built"
done
[ -f "$MEMVIRT_LIB" ] || mv_fail "$MEMVIRT_LIB is not built"
command -v python3 >/dev/null 2>&1 || mv_skip "no python3 to read the timeline"
mv_need_mvtrain
mv_tmpdir
T=$MV_TMP
SIMCUDA_MEM=4GiB
SIMCUDA_GRANULARITY=4KiB
MEMVIRT_DAEMON=off
export SIMCUDA_MEM SIMCUDA_GRANULARITY MEMVIRT_DAEMON
unset SIMCUDA_MODEL_ONLY SIMCUDA_NO_HOST_VMM LD_PRELOAD MEMVIRT_BUDGET MEMVIRT_LOG MEMVIRT_LOG_FILE MEMVIRT_RECORD
unset MEMVIRT_SAFETY_NET MEMVIRT_HOST_LIMIT MEMVIRT_REAL_LIBCUDA MEMVIRT_POLICY MEMVIRT_ITERATION_MARKER
args="--model resnet50 --batch 2 --scale 0.125 --steps 4"

mv_run plain $args
mv_expect_ok plain 4
peak=$(mv_peak plain)
MV_RC=0
# shellcheck disable=SC2086 # args is a list of words
env LD_PRELOAD="$MEMVIRT_LIB" MEMVIRT_BUDGET=$((peak / 3)) MEMVIRT_SLAB_THRESHOLD=4KiB \
	MEMVIRT_RECORD="$T/run.trace" "$MVTRAIN" $args >"$T/run.out" 2>"$T/run.err" || MV_RC=$?
mv_expect_ok run 4
"$MEMVIRT" trace info "$T/run.trace" --json >"$T/info.json" || mv_fail "memvirt trace info refuses the recording"
"$MVSOCK" flat <"$T/info.json" >"$T/info.flat" || mv_fail "the trace's summary is not JSON"
launches=$(sed -n 's/^launches //p' "$T/info.flat")
pages=$(sed -n 's/^pages //p' "$T/info.flat")
[ "$launches" -gt 0 ] && [ "$pages" -gt 0 ] || mv_fail "the recording has $launches launches and $pages page records"

# check FILE [LAUNCHES TIMED]: FILE's slices keep Perfetto's nesting rule on every track; with
# LAUNCHES, it has that many kernel slices, TIMED of them with a duration. The count of slices per
# category goes to $T/check.out.
check() {
	python3 - "$1" "${2:-}" "${3:-}" >"$T/check.out" 2>"$T/check.err" <<'PY' || mv_fail "$1: $(cat "$T/check.err")"
import json, sys
path, want, timed = sys.argv[1:4]
ev = json.load(open(path))["traceEvents"]
x = [e for e in ev if e["ph"] == "X"]
bad, tracks = [], {}
for e in x:
    # Perfetto's JSON reader works in integer nanoseconds.
    tracks.setdefault(e["tid"], []).append((round(e["ts"] * 1000), round(e["dur"] * 1000), e["name"]))
for tid, sl in tracks.items():
    sl.sort(key=lambda s: (s[0], -s[1]))
    stack = []
    for ts, dur, name in sl:
        while stack and stack[-1] <= ts:
            stack.pop()
        if stack and ts + dur > stack[-1]:
            bad.append((tid, ts, dur, name, stack[-1]))
        stack.append(ts + dur)
if bad:
    print("%d of %d slices partly overlap a slice before them on their track; the first: track %d "
          "at %d ns for %d ns (%s), inside one that ends at %d ns" % ((len(bad), len(x)) + bad[0]),
          file=sys.stderr)
    sys.exit(1)
k = [e for e in x if e["cat"] == "kernel"]
if want and (len(k) != int(want) or sum(1 for e in k if e["dur"] > 0) != int(timed)):
    print("%d kernel slices, %d with a duration; the trace has %s launches, %s timed" %
          (len(k), sum(1 for e in k if e["dur"] > 0), want, timed), file=sys.stderr)
    sys.exit(1)
cats = {}
for e in x:
    cats[e["cat"]] = cats.get(e["cat"], 0) + 1
print(", ".join("%d %s" % (n, c) for c, n in sorted(cats.items())) + " slices on %d tracks" % len(tracks))
PY
}

timed=$(sed -n 's/^timed_launches //p' "$T/info.flat")
"$MEMVIRT" trace timeline "$T/run.trace" >"$T/rec.json" 2>"$T/rec.err" ||
	mv_fail "memvirt trace timeline failed: $(cat "$T/rec.err")"
check "$T/rec.json" "$launches" "$timed"
echo "recorded ($launches launches, $timed timed, $pages page records): $(cat "$T/check.out")"
for pol in lru auto; do
	"$MEMVIRT" trace timeline "$T/run.trace" --policy $pol --budget 50% >"$T/$pol.json" 2>"$T/$pol.err" ||
		mv_fail "memvirt trace timeline --policy $pol failed: $(cat "$T/$pol.err")"
	check "$T/$pol.json"
	echo "modeled under $pol at 50%: $(cat "$T/check.out")"
done
exit 0
