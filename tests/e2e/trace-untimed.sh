# A recording keeps every launch's duration while the app runs ahead of the device, or marks the
# launches whose duration it could not measure, and `memvirt trace replay` warns with their count.
# tests/e2e/holdlaunch holds its stream (cuStreamWaitValue32 on a host word, which the library
# records and times as a launch, of no duration on the simulated clock) and queues ITERS iterations of PER launches on it, more than the
# library's SLOTS timing slots:
# - release: the word is written as soon as the app begins its launch SLOTS, which needs the slot of
#   the stream's wait, whose duration the planner cannot take until the stream runs. The app waits
#   for the slot, so every kernel of the closed trace is timed (without the wait, the 178 after the
#   first SLOTS were not);
# - hold: the word is written only after every launch, so the launches after SLOTS can have no slot.
#   The trace is closed with exactly those marked untimed (duration 0), none with a duration still
#   pending, and the app does not wait long for each: the whole run is bounded at 120 s.
. "$(dirname "$0")/lib.sh"
: "${MEMVIRT_LIB:=$MV_TOP_BUILDDIR/interpose/.libs/libmemvirt.so}"
MEMVIRT=$MV_TOP_BUILDDIR/cli/memvirt
MVSOCK=$MV_TOP_BUILDDIR/tests/e2e/mvsock
HOLD=$MV_TOP_BUILDDIR/tests/e2e/holdlaunch
for p in "$MEMVIRT" "$MVSOCK" "$HOLD"; do
	[ -x "$p" ] || mv_fail "$p is not built"
done
[ -f "$MEMVIRT_LIB" ] || mv_fail "$MEMVIRT_LIB is not built"
mv_tmpdir
unset SIMCUDA_MODEL_ONLY SIMCUDA_MEM LD_PRELOAD MEMVIRT_BUDGET MEMVIRT_LOG MEMVIRT_LOG_FILE MEMVIRT_RECORD
unset MEMVIRT_POLICY MEMVIRT_SAFETY_NET MEMVIRT_HOST_LIMIT MEMVIRT_REAL_LIBCUDA
MEMVIRT_DAEMON=off
export MEMVIRT_DAEMON

SLOTS=1024 # the library's timing slots (EV_PAIRS in interpose/learn.c)
ITERS=6
PER=199 # 6 iterations of 200 launches and a last mark: with the wait, 1,202, 178 more than SLOTS

# record MODE: holdlaunch MODE recorded to $MV_TMP/MODE.trace, its summary flattened in MODE.check.
record() {
	MV_RC=0
	env LD_PRELOAD="$MEMVIRT_LIB" MEMVIRT_ITERATION_MARKER=mv_touch2 MEMVIRT_RECORD="$MV_TMP/$1.trace" \
		timeout 120 "$HOLD" "$1" $SLOTS $ITERS $PER >"$MV_TMP/$1.out" 2>"$MV_TMP/$1.err" || MV_RC=$?
	[ "$MV_RC" -eq 0 ] || mv_fail_run "$1" "holdlaunch $1 exited $MV_RC"
	"$MEMVIRT" trace info "$MV_TMP/$1.trace" --json >"$MV_TMP/$1.json" 2>"$MV_TMP/$1.ierr" ||
		mv_fail "memvirt trace info refuses $1's trace: $(cat "$MV_TMP/$1.ierr")"
	"$MVSOCK" flat <"$MV_TMP/$1.json" >"$MV_TMP/$1.check" || mv_fail "$1's summary is not JSON"
	"$MEMVIRT" trace replay "$MV_TMP/$1.trace" --budget 100% >"$MV_TMP/$1.replay" 2>"$MV_TMP/$1.rerr" ||
		mv_fail "memvirt trace replay of $1's trace failed: $(cat "$MV_TMP/$1.rerr")"
}

field() {
	sed -n "s/^$1 //p" "$MV_TMP/$2.check"
}

issued=$(((PER + 1) * ITERS + 1))
total=$((issued + 1))
for mode in release hold; do
	record $mode
	[ "$(cat "$MV_TMP/$mode.out")" = "launches $issued" ] || mv_fail_run $mode "expected launches $issued"
	[ "$(field truncated $mode)" = false ] || mv_fail "$mode's trace was not closed: $(cat "$MV_TMP/$mode.check")"
	[ "$(field launches $mode)" = "$total" ] || mv_fail "$mode's trace has $(field launches $mode) launches, expected $total"
	[ "$(field iteration.launches $mode)" = $((PER + 1)) ] ||
		mv_fail "$mode's trace: iteration of $(field iteration.launches $mode) launches, expected $((PER + 1))"
	echo "$mode: $(field timed_launches $mode) of $total launches timed," \
		"$(field iteration.untimed_launches $mode) of the iteration's untimed"
done

# release: every kernel has its duration (the stream's wait, of none, is the one launch untimed);
# replay has nothing to warn of.
[ "$(field timed_launches release)" = "$issued" ] ||
	mv_fail "release: $(field timed_launches release) of $total launches have a duration, expected the $issued kernels; the app did not wait for a slot"
[ "$(field iteration.untimed_launches release)" = 0 ] || mv_fail "release: the iteration has untimed launches"
grep -q "no measured duration" "$MV_TMP/release.rerr" && mv_fail "release: replay warns: $(cat "$MV_TMP/release.rerr")"

# hold: the kernels in the first SLOTS launches are timed (their events all ran once the word was
# written, before the trace closed), every later one is marked. The last iteration (kernels 1,001
# to 1,200) has those from SLOTS on untimed.
[ "$(field timed_launches hold)" = $((SLOTS - 1)) ] ||
	mv_fail "hold: $(field timed_launches hold) launches timed, expected the $((SLOTS - 1)) kernels among the first $SLOTS"
late=$((ITERS * (PER + 1) - (SLOTS - 1)))
[ "$(field iteration.untimed_launches hold)" = $late ] ||
	mv_fail "hold: $(field iteration.untimed_launches hold) of the iteration's launches untimed, expected $late"
grep -q "warning: .*: $late of $((PER + 1)) launches in the iteration have no measured duration" \
	"$MV_TMP/hold.rerr" || mv_fail "hold: replay does not warn with the count: $(cat "$MV_TMP/hold.rerr")"
echo "hold: replay warns: $(cat "$MV_TMP/hold.rerr")"
exit 0
