# memvirt trace on synthetic traces from tests/e2e/mktrace: info, replay numbers worked out by hand,
# --json, --all, the infeasible-budget and unknown-policy refusals, a malformed file named at its
# offset, a truncated one read with a warning, the Chrome trace timeline (recorded and modeled) and
# the SVG plot.
. "$(dirname "$0")/lib.sh"
MEMVIRT=$MV_TOP_BUILDDIR/cli/memvirt
MKTRACE=$MV_TOP_BUILDDIR/tests/e2e/mktrace
for p in "$MEMVIRT" "$MKTRACE"; do
	[ -x "$p" ] || mv_fail "$p is not built"
done
command -v python3 >/dev/null 2>&1 || mv_skip "python3 is needed to check JSON and SVG output"

mv_tmpdir
T=$MV_TMP
out=$("$MKTRACE" "$T") || mv_fail "mktrace failed"
BAD_OFFSET=$(echo "$out" | sed -n 's/^malformed-offset \([0-9]*\)$/\1/p')
[ -n "$BAD_OFFSET" ] || mv_fail "mktrace printed no offset: $out"
L=$T/layered.mvtrace

# expect WANT NAME ARGS...: memvirt ARGS, stdout to $T/NAME.out, stderr to $T/NAME.err; fails
# unless it exits WANT.
expect() {
	x_want=$1 x_name=$2
	shift 2
	rc=0
	timeout 60 "$MEMVIRT" "$@" >"$T/$x_name.out" 2>"$T/$x_name.err" || rc=$?
	echo "memvirt $* -> exit $rc"
	if [ "$rc" -ne "$x_want" ]; then
		echo "--- stdout" >&2
		head -c 4000 "$T/$x_name.out" >&2
		echo "--- stderr" >&2
		cat "$T/$x_name.err" >&2
		mv_fail "memvirt $*: exit status $rc, expected $x_want"
	fi
}

# has NAME TEXT: the output NAME holds the fixed string TEXT.
has() {
	grep -qF -- "$2" "$T/$1" || mv_fail "$1 lacks '$2': $(head -c 2000 "$T/$1")"
}

# py NAME SCRIPT: runs a Python check with the file $T/NAME as sys.argv[1].
py() {
	x_file=$T/$1
	shift
	python3 -c "$1" "$x_file" || mv_fail "check of $(basename "$x_file") failed"
}

# The help.
expect 0 help trace --help
head -n 1 "$T/help.out" | grep -q '^usage: memvirt trace replay' || mv_fail "trace --help: $(head -n 1 "$T/help.out")"
expect 2 nosub trace rewind "$L"
has nosub.err "unknown subcommand 'rewind'"

# info: three iterations of six launches; the last complete one is found, with its peak of four
# 4 MiB buffers.
expect 0 info trace info "$L"
has info.out "version     1"
has info.out "18 launches, 10 allocations, 9 frees"
has info.out "truncated   no"
has info.out "(6 launches, 5 buffers), detected from the launch sequence"
has info.out "peak        16.0 MiB (16777216 bytes)"
expect 0 infojson trace info --json "$L"
py infojson.out '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["version"] == 1 and d["launches"] == 18 and d["truncated"] is False, d
assert d["iteration"]["launches"] == 6 and d["iteration"]["peak"] == 16 << 20, d
assert d["iteration"]["untimed_launches"] == 0, d
'
expect 0 infomarked trace info "$T/marked.mvtrace"
has infomarked.out "(6 launches, 4 buffers), between the last two marks"

# replay, worked out by hand. A link of 1.048576 GB/s moves 1 MiB in exactly 1 ms; each launch
# takes 1 ms. At 12 MiB, fwd3's new 4 MiB buffer has to wait for W, the least recently used, to
# be copied out (4 ms), and bwd1 for W to come back in (4 ms): step 6 + 8 = 14 ms. No schedule
# beats 10 ms: 4 MiB must be off the device during fwd3. It can start leaving only after its last
# use, launch 0, ends at 1 ms, and takes 4 ms, so fwd3 starts at 5 ms at the earliest; it must be
# back before launch 5 starts, and that 4 ms copy and the 1 ms of launch 5 follow fwd3's start.
# Without those release times and deadlines the bound would be 8 ms: 2 ms of compute on one side
# and 4 on the other of a 4 ms copy.
LINK="--h2d 1.048576 --d2h 1.048576"
# shellcheck disable=SC2086 # LINK is two options
expect 0 lru trace replay "$L" --policy lru --budget 12MiB $LINK
has lru.out "peak             12.0 MiB (12582912 bytes); unlimited 16.0 MiB (16777216 bytes)"
has lru.out "moved out        4.0 MiB (4194304 bytes) in 1 page-outs"
has lru.out "moved in         4.0 MiB (4194304 bytes) in 1 page-ins"
has lru.out "stall            8.000 ms"
has lru.out "step             14.000 ms; unlimited 6.000 ms"
has lru.out "overhead         133.33%"
has lru.out "lower bound      10.000 ms"
has lru.out "chunk bound      10.000 ms (copies in 2.0 MiB pieces)"
has lru.out "step/bound       1.400"
has lru.out "faults           1"
has lru.out "uvm baseline     step 14.090 ms (134.83% over unlimited), 2 2.0 MiB faults, 4.0 MiB in, 4.0 MiB out; this policy's step is 0.994 of it"
[ -s "$T/lru.err" ] && mv_fail "replay of a fully timed trace warned: $(cat "$T/lru.err")"
has info.out "untimed     0 launches in the iteration have no measured duration"
# A recording that lost timings says so: info counts them, replay warns with the count.
U=$T/untimed.mvtrace
expect 0 infountimed trace info "$U"
has infountimed.out "untimed     2 launches in the iteration have no measured duration (the recording lost"
# shellcheck disable=SC2086
expect 0 untimed trace replay "$U" --policy lru --budget 12MiB $LINK
has untimed.err "memvirt trace replay: warning: $U: 2 of 6 launches in the iteration have no measured duration"
# shellcheck disable=SC2086
expect 0 untimedjson trace replay "$U" --policy lru --budget 12MiB --json $LINK
py untimedjson.out '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["iteration"]["untimed_launches"] == 2 and d["iteration"]["launches"] == 6, d
'
# A percentage is of the iteration's unlimited peak: 75% of 16 MiB is 12 MiB.
# shellcheck disable=SC2086
expect 0 lrupct trace replay "$L" --policy lru --budget 75% $LINK
cmp -s "$T/lru.out" "$T/lrupct.out" || mv_fail "--budget 75% differs from --budget 12MiB"
# The iteration named by hand is the one detected.
# shellcheck disable=SC2086
expect 0 lruiter trace replay "$L" --policy lru --budget 12MiB --iteration 26:12 $LINK
cmp -s "$T/lru.out" "$T/lruiter.out" || mv_fail "--iteration 26:12 differs from the detected iteration"
# shellcheck disable=SC2086
expect 0 lrujson trace replay "$L" --policy lru --budget 12MiB --json $LINK
python3 -m json.tool "$T/lrujson.out" >/dev/null || mv_fail "replay --json is not JSON"
py lrujson.out '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["budget"] == 12 << 20 and d["unlimited"] == {"peak": 16 << 20, "step_ns": 6000000}, d
assert d["lower_bound_ns"] == 10000000 and d["must_move"] == 4 << 20, d
assert d["chunk_bound_ns"] == 10000000, d
r, = d["results"]
want = {"policy": "lru", "peak": 12 << 20, "bytes_out": 4 << 20, "bytes_in": 4 << 20,
        "page_outs": 1, "page_ins": 1, "stall_ns": 8000000, "step_ns": 14000000,
        "compute_ns": 6000000, "late": 0, "faults": 1, "over_budget": False}
for k, v in want.items():
    assert r[k] == v, (k, r[k], v)
assert abs(r["overhead_pct"] - 800 / 6) < 1e-9 and abs(r["lower_bound_ratio"] - 1.4) < 1e-9, r
# The unified-memory baseline: steady state starts with W alone resident. A first touch of an
# activation costs only room; that of A3 evicts both 2 MiB blocks of W (4 MiB out), and bwd1 faults
# them back in (2 faults, 4 MiB in): 2 faults at 45 us and 8 ms of copies over 6 ms of launches.
u = d["uvm"]
want = {"peak": 12 << 20, "bytes_out": 4 << 20, "bytes_in": 4 << 20, "page_outs": 2, "page_ins": 2,
        "faults": 2, "stall_ns": 8090000, "step_ns": 14090000, "compute_ns": 6000000, "over_budget": False}
for k, v in want.items():
    assert u[k] == v, ("uvm", k, u[k], v)
assert abs(r["uvm_ratio"] - 14 / 14.09) < 1e-9, r
'
# Every policy keeps the budget and none beats the bound.
# shellcheck disable=SC2086
expect 0 all trace replay "$L" --all --budget 12MiB --json $LINK
py all.out '
import json, sys
d = json.load(open(sys.argv[1]))
names = [r["policy"] for r in d["results"]]
assert names == ["lru", "vdnn-all", "vdnn-conv", "mmcnn", "auto"], names
for r in d["results"]:
    assert r["peak"] <= 12 << 20 and not r["over_budget"], r
    assert r["step_ns"] >= d["lower_bound_ns"] >= d["chunk_bound_ns"], r
'
expect 0 unlimited trace replay "$L" --policy lru --budget 16MiB
has unlimited.out "moved out        0 B (0 bytes) in 0 page-outs"
has unlimited.out "overhead         0.00%"
# At the unlimited peak, lru moves nothing.
expect 0 alltable trace replay "$L" --all --budget 12MiB
for p in lru vdnn-all vdnn-conv mmcnn auto uvm; do
	grep -q "^$p " "$T/alltable.out" || mv_fail "replay --all has no row for $p"
done

# Below what fwd3 needs at once (two 4 MiB buffers): with host mapping (the default) the replay
# runs it with one of them read over the link, and has no lower bound to give.
expect 0 mapped trace replay "$L" --policy lru --budget 7MiB
has mapped.out "lower bound      none: a launch names more than the budget"
grep -Eq '^over the link    [1-9][0-9]* launches read ' "$T/mapped.out" ||
	mv_fail "replay at 7MiB read nothing over the link: $(cat "$T/mapped.out")"
expect 0 mappedjson trace replay "$L" --all --budget 7MiB --json
py mappedjson.out '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["lower_bound_ns"] is None and d["chunk_bound_ns"] is None, d
for r in d["results"]:
    assert r["host_runs"] > 0 and r["host_bytes"] >= r["host_runs"] * (4 << 20), r
    assert r["lower_bound_ratio"] is None and not r["over_budget"], r
'
expect 0 mappedall trace replay "$L" --all --budget 7MiB
grep -q "^lru .*  over the link [1-9]" "$T/mappedall.out" || mv_fail "replay --all has no over-the-link lru row"

# Refusals: the same budget where the device cannot map host memory, an unknown policy, a
# missing budget, a malformed file, a missing one, an iteration outside the trace.
expect 1 infeasible trace replay "$L" --budget 7MiB --no-host-mapping
has infeasible.err "infeasible without host mapping"
has infeasible.err "at least 8.0 MiB (8388608 bytes)"
# With host mapping a budget below every buffer (none is never paged) still runs: buffers start in
# host memory and launches read them over the link.
expect 0 tiny trace replay "$L" --policy lru --budget 1MiB
has tiny.out "moved in         0 B (0 bytes) in 0 page-ins"
grep -Eq '^over the link    [1-9][0-9]* launches read ' "$T/tiny.out" ||
	mv_fail "replay at 1MiB read nothing over the link: $(cat "$T/tiny.out")"
expect 2 badpolicy trace replay "$L" --policy fifo --budget 12MiB
has badpolicy.err "unknown policy 'fifo'"
has badpolicy.err "lru vdnn-all vdnn-conv mmcnn auto"
expect 2 typo trace replay "$L" --policy mmcn --budget 12MiB
has typo.err "did you mean 'mmcnn'?"
expect 2 nobudget trace replay "$L" --policy lru
has nobudget.err "--budget is required"
expect 2 badbudget trace replay "$L" --budget lots
expect 2 badbudget2 trace replay "$L" --budget 12parsecs
has badbudget2.err "'12parsecs' is not a size"
expect 1 malformed trace info "$T/malformed.mvtrace"
has malformed.err "$T/malformed.mvtrace: offset $BAD_OFFSET:"
expect 1 missing trace replay "$T/absent.mvtrace" --budget 1GiB
has missing.err "$T/absent.mvtrace: cannot open"
expect 1 outside trace replay "$L" --budget 12MiB --iteration 30:100
has outside.err "--iteration 30:100 is outside"
expect 2 badknob trace replay "$L" --budget 12MiB --headroom 1
has badknob.err "--headroom '1' is not a number in [0, 1)"

# One iteration is not yet a loop: nothing is detected, but one can be named.
expect 0 single trace info "$T/single.mvtrace"
has single.out "iteration   none found"
expect 1 singlereplay trace replay "$T/single.mvtrace" --budget 12MiB
has singlereplay.err "no iteration found"
has singlereplay.err "--iteration FIRST:N"
# shellcheck disable=SC2086
expect 0 singleiter trace replay "$T/single.mvtrace" --policy lru --budget 12MiB --iteration 1:12 $LINK
has singleiter.out "peak             12.0 MiB (12582912 bytes); unlimited 16.0 MiB (16777216 bytes)"

# A file cut short: read with a warning, and still an iteration to replay.
expect 0 truncated trace info "$T/truncated.mvtrace"
has truncated.err "warning"
has truncated.err "cut short"
has truncated.out "truncated   yes"
expect 0 truncreplay trace replay "$T/truncated.mvtrace" --policy lru --budget 12MiB
has truncreplay.err "cut short"

# The recorded timeline: three iterations of kernels on stream 0, the recorded page-out and the
# page-in a launch waited for, and the memory counter.
expect 0 tlrec trace timeline "$L"
python3 -m json.tool "$T/tlrec.out" >/dev/null || mv_fail "the timeline is not JSON"
py tlrec.out '
import json, sys
d = json.load(open(sys.argv[1]))
ev = d["traceEvents"]
tracks = {e["tid"]: e["args"]["name"] for e in ev if e["ph"] == "M" and e["name"] == "thread_name"}
assert set(tracks.values()) == {"stream 0", "page-out (D2H)", "page-in (H2D)", "stalls"}, tracks
tid = {v: k for k, v in tracks.items()}
x = [e for e in ev if e["ph"] == "X"]
assert sum(1 for e in x if e["name"] == "fwd1" and e["tid"] == tid["stream 0"]) == 3
assert sum(1 for e in x if e["tid"] == tid["stream 0"]) == 18
outs = [e for e in x if e["tid"] == tid["page-out (D2H)"]]
ins = [e for e in x if e["tid"] == tid["page-in (H2D)"]]
stalls = [e for e in x if e["tid"] == tid["stalls"]]
assert len(outs) == 1 and outs[0]["dur"] == 4000 and len(ins) == 1 and len(stalls) == 1, (outs, ins, stalls)
assert all(e["dur"] == 1000 for e in x if e["tid"] == tid["stream 0"])
c = [e for e in ev if e["ph"] == "C"]
assert c and max(e["args"]["allocated"] for e in c) == 16, c
'

# The modeled timeline under lru at 12 MiB: the same numbers as replay.
# shellcheck disable=SC2086
expect 0 tlmod trace timeline "$L" --policy lru --budget 12MiB $LINK
[ -s "$T/tlmod.err" ] && mv_fail "the modeled timeline warned: $(cat "$T/tlmod.err")"
py tlmod.out '
import json, sys
d = json.load(open(sys.argv[1]))
o = d["otherData"]
assert o["source"] == "model" and o["policy"] == "lru" and o["step_ns"] == 14000000, o
ev = d["traceEvents"]
tracks = {e["tid"]: e["args"]["name"] for e in ev if e["ph"] == "M" and e["name"] == "thread_name"}
tid = {v: k for k, v in tracks.items()}
x = [e for e in ev if e["ph"] == "X"]
kernels = [e["name"] for e in x if e["tid"] == tid["stream 0"]]
assert kernels == ["fwd1", "fwd2", "fwd3", "bwd3", "bwd2", "bwd1"], kernels
assert sum(e["dur"] for e in x if e["tid"] == tid["stalls"]) == 8000
assert [e["dur"] for e in x if e["tid"] == tid["page-out (D2H)"]] == [4000]
assert [e["dur"] for e in x if e["tid"] == tid["page-in (H2D)"]] == [4000]
res = [e["args"]["resident"] for e in ev if e["ph"] == "C" and e["name"] == "resident (MiB)"]
assert res and max(res) == 12, res
'
expect 2 tlhalf trace timeline "$L" --policy lru

# The plot: well-formed SVG with both curves, the budget line level across, and a title naming
# the file and the policy.
expect 0 plot trace plot "$L" --policy mmcnn --budget 12MiB
py plot.out '
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
ns = "{http://www.w3.org/2000/svg}"
assert root.tag == ns + "svg", root.tag
byid = {e.get("id"): e for e in root.iter() if e.get("id")}
for i in ("budget", "unlimited", "policy", "legend", "xticks", "yticks", "title"):
    assert i in byid, i
b = byid["budget"]
assert b.tag == ns + "line" and b.get("y1") == b.get("y2"), b.attrib
title = byid["title"].text
assert "layered.mvtrace" in title and "mmcnn" in title and "12.0 MiB" in title, title
texts = " ".join(t.text or "" for t in root.iter(ns + "text"))
assert "time (ms)" in texts and "(MiB)" in texts, texts
'
expect 2 plotnobudget trace plot "$L"
exit 0
