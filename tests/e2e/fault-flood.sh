# A client flooding the daemon with frames does not starve the others, and no connection makes the
# daemon hold more than a bounded amount for it. While a library session sends EVENTS frames as fast
# as the daemon takes them (tests/bench/event_flood), a control client pipelines stats requests
# without ever reading the answers, and a library session sends a long burst of good frames and then
# a header longer than MV_FRAME_MAX:
# - a normal job links, keeps its link (its counters reach the stats) and ends with the checksum of
#   a plain run;
# - `memvirt stats` answers every time, within a generous STATS_WAIT_S (its times are printed, not
#   held to a bound: how fast it answers depends on how loaded the machine is);
# - the client that does not read is cut off ("does not read what it is sent"), the oversized frame
#   closes its own connection with its reason, and the flooder is served to the end;
# - the daemon's peak resident memory stays under RSS_MAX_KIB.
set -u
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/daemon-lib.sh"
. "$(dirname "$0")/frame-lib.sh"

FLOOD=$MV_TOP_BUILDDIR/tests/bench/event_flood
[ -x "$FLOOD" ] || mv_fail "$FLOOD is not built"
STEPS=15
ARGS="--model resnet50 --batch 2 --scale 0.125 --steps $STEPS"
JOB=e2e-flood-$$
STATS_WAIT_S=60
# What the daemon may hold at its peak: its own few MiB, plus what the connections may buffer (a
# 2 MiB receive buffer each, 16 MiB of unread output for the one that does not read).
RSS_MAX_KIB=$((64 * 1024))

plain_run
dev=$((peak * 5 / 4))

now_ms() {
	echo $(($(date +%s%N) / 1000000))
}

# timed_stats: one `memvirt stats --json`, flattened into $T/stats.flat; its time in `took` (ms).
timed_stats() {
	t0=$(now_ms)
	timeout "$STATS_WAIT_S" "$MEMVIRT" stats --json --socket "$S" >"$T/stats.json" ||
		mv_fail "memvirt stats failed or gave no answer within $STATS_WAIT_S s"
	took=$(($(now_ms) - t0))
	"$MVSOCK" flat <"$T/stats.json" >"$T/stats.flat"
}

start_daemon
echo "$out"
quiet=0
for _ in 1 2 3 4 5; do
	timed_stats
	[ "$took" -gt "$quiet" ] && quiet=$took
done
echo "memvirt stats on a quiet daemon: at most $quiet ms"

# The flooder: one library session sending EVENTS frames until told to stop (SIGTERM), at most
# 600 s: longer than the job runs, however loaded the machine.
"$FLOOD" -n 1 -t 600 "$S" >"$T/flood.out" 2>"$T/flood.err" &
flood=$!
JOBS="$JOBS $flood"
n=0
until timed_stats && [ -n "$(sess_field "$T/stats.flat" event_flood-0 events)" ] &&
	[ "$(sess_field "$T/stats.flat" event_flood-0 events)" -gt 0 ]; do
	n=$((n + 1))
	[ "$n" -lt 600 ] || mv_fail "the flood did not start: $(cat "$T/flood.err")"
	sleep 0.1
done

# The client that does not read: a control hello, then 2^16 stats requests, more answers than the
# daemon keeps for a peer (16 MiB).
{
	header $MAGIC $V $((0x0300)) 8
	zeros 8
} >"$T/noread.bin"
{
	header $MAGIC $V $((0x0301)) 16
	printf '{"cmd": "stats"}'
} >"$T/req.bin"
for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16; do
	cat "$T/req.bin" "$T/req.bin" >"$T/req2.bin"
	mv "$T/req2.bin" "$T/req.bin"
done
cat "$T/req.bin" >>"$T/noread.bin"
timeout 60 "$MVSOCK" "$S" raw --wait 30 <"$T/noread.bin" >"$T/noread.out" 2>&1 &
noread=$!
JOBS="$JOBS $noread"

# The burst: a library hello, 2^14 empty EVENTS frames, then a header of MV_FRAME_MAX + 1 bytes and
# bytes after it that the daemon must not wait for.
{
	header $MAGIC $V $((0x0101)) 8
	zeros 8
} >"$T/ev.bin"
for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14; do
	cat "$T/ev.bin" "$T/ev.bin" >"$T/ev2.bin"
	mv "$T/ev2.bin" "$T/ev.bin"
done
{
	header $MAGIC $V $((0x0100)) 184
	zeros 184
	cat "$T/ev.bin"
	header $MAGIC $V $((0x0101)) $(((1 << 20) + 1))
	zeros 65536
} >"$T/burst.bin"
timeout 60 "$MVSOCK" "$S" raw --wait 30 <"$T/burst.bin" >"$T/burst.out" 2>&1 &
burst=$!
JOBS="$JOBS $burst"

# The normal job, stretched by a real delay before each kernel so that it runs through the flood, and
# held before its last step until its page-outs have reached the stats, however slow the machine.
# shellcheck disable=SC2086 # ARGS is a list of words
env SIMCUDA_MEM=$dev MEMVIRT_LOG=info MEMVIRT_JOB=$JOB SIMCUDA_DELAY_KERNEL_US=300 timeout 300 \
	"$MEMVIRT" run --simulate --socket "$S" --budget 40% -- "$MVTRAIN" $ARGS --hold-at $((STEPS - 1)) \
	--hold-file "$T/go" >"$T/job.out" 2>"$T/job.err" &
run=$!
JOBS="$JOBS $run"

# memvirt stats, again and again while the job runs and the flood goes on.
most=0
calls=0
counted=0
while alive "$run"; do
	timed_stats
	calls=$((calls + 1))
	[ "$took" -gt "$most" ] && most=$took
	po=$(sess_field "$T/stats.flat" "$JOB" page_outs)
	[ -n "$po" ] && [ "$po" -gt 0 ] && counted=1 && touch "$T/go"
	[ -e "$T/go" ] || [ "$calls" -lt 2400 ] || mv_fail_run job "the job's page-outs never reached the stats while it ran"
	sleep 0.05
done
alive "$flood" || mv_fail "the flood ended before the job: $(cat "$T/flood.out" "$T/flood.err")"
echo "memvirt stats under the flood: $calls calls, at most $most ms (quiet: $quiet ms)"

wait_job "$run" 10
mv_expect_ok job "$STEPS"
[ "$(mv_checksum job)" = "$sum" ] || mv_fail_run job "checksum $(mv_checksum job), the plain run's is $sum"
grep -q "linked to memvirtd at $S" "$T/job.err" || mv_fail_run job "the job did not link to the daemon"
grep -Eq "no WELCOME in time|lost memvirtd" "$T/job.err" && mv_fail_run job "the job's link was starved"
[ "$counted" -eq 1 ] || mv_fail_run job "the job's page-outs never reached the stats while it ran"
echo "the job linked, kept its link, and its counters reached the stats during the flood"

wait_job "$noread" 60
grep -qx closed "$T/noread.out" || mv_fail "the client that does not read was not cut off: $(cat "$T/noread.out")"
grep -q "does not read what it is sent" "$T/memvirtd.log" ||
	mv_fail "the daemon did not say why it cut the client that does not read"
wait_job "$burst" 60
grep -qx closed "$T/burst.out" || mv_fail "the oversized frame did not close its connection: $(cat "$T/burst.out")"
grep -q "bad frame: frame longer than 1 MiB" "$T/memvirtd.log" ||
	mv_fail "the daemon did not log the oversized frame: $(grep 'bad frame' "$T/memvirtd.log")"

kill -TERM "$flood"
wait_job "$flood" 30
[ "$MV_RC" -eq 0 ] || mv_fail "event_flood exited $MV_RC: $(cat "$T/flood.out" "$T/flood.err")"
events=$(sed -n 's/^total .* events \([0-9]*\) .*/\1/p' "$T/flood.out")
secs=$(sed -n 's/^total .* seconds \([0-9.]*\) .*/\1/p' "$T/flood.out")
echo "the flooder sent $events events in $secs s and was served to the end"
[ -n "$events" ] && [ "$events" -gt 0 ] || mv_fail "the flooder sent nothing: $(cat "$T/flood.out")"

hwm=$(sed -n 's/^VmHWM:[^0-9]*\([0-9]*\) kB$/\1/p' "/proc/$DAEMON/status")
echo "the daemon's peak resident memory: $hwm KiB"
[ -n "$hwm" ] || mv_fail "no peak resident memory for the daemon (pid $DAEMON)"
# A sanitizer's shadow memory and quarantine count in the resident memory of the build that
# scripts/sanitize makes: the bound is judged in the plain build only.
if [ -n "${MV_SANITIZER:-}" ]; then
	echo "not judged against $RSS_MAX_KIB KiB in the $MV_SANITIZER build"
else
	[ "$hwm" -le "$RSS_MAX_KIB" ] || mv_fail "the daemon's peak resident memory is $hwm KiB, above $RSS_MAX_KIB KiB"
fi
timeout 60 "$MEMVIRT" daemon stop --socket "$S" >/dev/null || mv_fail "memvirt daemon stop failed"
DAEMON=
exit 0
