# MEMVIRT_RECORD writes a trace file the planning code's reader (through `memvirt trace info`) accepts, with the run's launches
# (timed), allocations, frees and the page copies the library did; in model-only mode it says so;
# and a job killed with SIGKILL leaves a file that reads as truncated, every whole record kept.
. "$(dirname "$0")/lib.sh"
: "${MEMVIRT_LIB:=$MV_TOP_BUILDDIR/interpose/.libs/libmemvirt.so}"
mv_need_mvtrain
mv_tmpdir
[ -f "$MEMVIRT_LIB" ] || mv_fail "$MEMVIRT_LIB is not built"
MEMVIRT=$MV_TOP_BUILDDIR/cli/memvirt
MVSOCK=$MV_TOP_BUILDDIR/tests/e2e/mvsock
for p in "$MEMVIRT" "$MVSOCK"; do
	[ -x "$p" ] || mv_fail "$p is not built"
done

SIMCUDA_MEM=4GiB
SIMCUDA_GRANULARITY=4KiB
MEMVIRT_DAEMON=off
export SIMCUDA_MEM SIMCUDA_GRANULARITY MEMVIRT_DAEMON
unset SIMCUDA_MODEL_ONLY SIMCUDA_NO_HOST_VMM LD_PRELOAD MEMVIRT_BUDGET MEMVIRT_LOG MEMVIRT_LOG_FILE MEMVIRT_RECORD
unset MEMVIRT_SAFETY_NET MEMVIRT_HOST_LIMIT MEMVIRT_REAL_LIBCUDA MEMVIRT_POLICY MEMVIRT_ITERATION_MARKER
args="--model resnet50 --batch 2 --scale 0.125"

# field NAME FILE: a value of the trace's summary (`memvirt trace info --json`, flattened).
field() {
	sed -n "s/^$1 //p" "$2"
}

# check NAME: reads $MV_TMP/NAME.trace into $MV_TMP/NAME.check, failing when the reader refuses it.
check() {
	"$MEMVIRT" trace info "$MV_TMP/$1.trace" --json >"$MV_TMP/$1.json" 2>"$MV_TMP/$1.checkerr" || {
		cat "$MV_TMP/$1.checkerr" >&2
		mv_fail "the reader refuses $1's trace"
	}
	"$MVSOCK" flat <"$MV_TMP/$1.json" >"$MV_TMP/$1.check" || mv_fail "$1's summary is not JSON"
	echo "$1: $(tr '\n' ' ' <"$MV_TMP/$1.check")"
}

# positive NAME FIELD...: each field is above 0.
positive() {
	p_name=$1
	shift
	for f in "$@"; do
		v=$(field "$f" "$MV_TMP/$p_name.check")
		[ -n "$v" ] && [ "$v" -gt 0 ] || mv_fail "$p_name's trace: $f is '$v', expected more than 0"
	done
}

mv_run plain $args --steps 3
mv_expect_ok plain 3
peak=$(mv_peak plain)

# A whole run under a third of its peak: it pages, and every kind of record is there.
MV_RC=0
env LD_PRELOAD="$MEMVIRT_LIB" MEMVIRT_BUDGET=$((peak / 3)) MEMVIRT_SLAB_THRESHOLD=4KiB MEMVIRT_LOG=info \
	MEMVIRT_RECORD="$MV_TMP/whole.trace" "$MVTRAIN" $args --steps 3 >"$MV_TMP/whole.out" 2>"$MV_TMP/whole.err" || MV_RC=$?
mv_expect_ok whole 3
[ "$(mv_checksum whole)" = "$(mv_checksum plain)" ] || mv_fail_run whole "checksum differs from the plain run's"
check whole
[ "$(field truncated "$MV_TMP/whole.check")" = false ] || mv_fail "the whole run's trace has no END"
[ "$(field model_only "$MV_TMP/whole.check")" = false ] || mv_fail "the whole run's trace says model-only"
positive whole functions allocs frees launches timed_launches refs pages waited_pages
outs=$(grep -E '^memvirt\[[0-9]+\] info: budget ' "$MV_TMP/whole.err" | sed -n 's/.*page-outs \([0-9]*\) .*/\1/p')
ins=$(grep -E '^memvirt\[[0-9]+\] info: budget ' "$MV_TMP/whole.err" | sed -n 's/.*page-ins \([0-9]*\) .*/\1/p')
pages=$(field pages "$MV_TMP/whole.check")
[ "$pages" -le $((outs + ins)) ] || mv_fail "$pages PAGE records, but only $outs page-outs and $ins page-ins"
# Every launch of the run: resnet50's steps launch hundreds of kernels each.
[ "$(field launches "$MV_TMP/whole.check")" -gt 600 ] || mv_fail "too few launches recorded"

# Model-only: the header's flag.
MV_RC=0
env SIMCUDA_MODEL_ONLY=1 LD_PRELOAD="$MEMVIRT_LIB" MEMVIRT_RECORD="$MV_TMP/model.trace" \
	"$MVTRAIN" $args --steps 2 --model-only >"$MV_TMP/model.out" 2>"$MV_TMP/model.err" || MV_RC=$?
[ "$MV_RC" -eq 0 ] || mv_fail_run model "exit status $MV_RC"
check model
[ "$(field model_only "$MV_TMP/model.check")" = true ] || mv_fail "the model-only trace lacks MV_TRACE_F_MODEL_ONLY"

# Killed: a long run, SIGKILLed once its trace has grown.
env LD_PRELOAD="$MEMVIRT_LIB" MEMVIRT_BUDGET=$((peak / 3)) MEMVIRT_SLAB_THRESHOLD=4KiB \
	MEMVIRT_RECORD="$MV_TMP/killed.trace" "$MVTRAIN" $args --steps 100000 >"$MV_TMP/killed.out" 2>&1 &
pid=$!
i=0
while [ "$(cat "$MV_TMP/killed.trace" 2>/dev/null | wc -c)" -lt 200000 ] && [ $i -lt 600 ]; do
	sleep 0.1
	i=$((i + 1))
done
kill -KILL "$pid"
wait "$pid" 2>/dev/null
check killed
[ "$(field truncated "$MV_TMP/killed.check")" = true ] || mv_fail "the killed run's trace does not read as truncated"
positive killed allocs launches
exit 0
