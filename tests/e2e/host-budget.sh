# The node's pinned host limit (memvirt.json's host.limit, memvirtd(8)) divided between two jobs on
# one daemon: a heavy one (mvtrain at a third of its peak, which pages a few MiB out) and a light
# one (its whole device, which pages nothing) that holds between steps while the heavy one runs.
# Under a limit of 4 MiB the heavy one starts with half of it, less than it needs, and is granted
# more as its pool grows: it ends with the plain run's checksum, its pool above its first share,
# and 'memvirt ps' shows both jobs' host grants within the limit. Under 2 MiB, less than it needs,
# it is refused with CUDA_ERROR_OUT_OF_MEMORY and the line that names the node's host limit.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/daemon-lib.sh"

: "${MEMVIRT_LIB:=$MV_TOP_BUILDDIR/interpose/.libs/libmemvirt.so}"
[ -f "$MEMVIRT_LIB" ] || mv_fail "$MEMVIRT_LIB is not built"
SIMCUDA_DIR=$MV_TOP_BUILDDIR/tests/simcuda
STEPS=4
ARGS="--model resnet50 --batch 2 --scale 0.125 --steps $STEPS"

plain_run
budget=$((peak / 3))
# Room on the device for both: the daemon grants the heavy job its own budget.
dev=$((peak * 4))

# job NAME SETTINGS [MVTRAIN OPTION...]: a job on $S (dl_job), named NAME for the daemon. A
# page-out waits up to 30 s for the daemon's answer about the host limit, not the default 2 s: on a
# loaded machine the answer can take longer, and the outcome must not depend on it.
job() {
	job_name=$1
	job_settings=$2
	shift 2
	dl_job "$S" "$job_name" "MEMVIRT_JOB=$job_name MEMVIRT_HOST_WAIT=30000 $job_settings" "$@"
}

# pool NAME: the host pool's bytes in the job's summary line at exit, as the summary prints them.
pool() {
	grep -E '^memvirt\[[0-9]+\] info: budget ' "$T/$1.err" | tail -n 1 | sed -n 's/.*; host pool \([^;]*\).*$/\1/p'
}

# round LIMIT: a daemon dividing LIMIT of host memory; the light job linked and holding before its
# second step, the heavy job run to its end. Leaves the heavy job's exit status in MV_RC.
round() {
	printf '{ "host": { "limit": "%s" } }\n' "$1" >"$T/memvirt.json"
	timeout 60 "$MEMVIRT" config check "$T/memvirt.json" >"$T/check.out" 2>&1 ||
		mv_fail "config check refused host.limit $1: $(cat "$T/check.out")"
	start_daemon --config "$T/memvirt.json"
	rm -f "$T/go"
	job light "" --hold-at 2 --hold-file "$T/go"
	light=$last
	dl_wait_log light "$light" "holding before step 2"
	job heavy "MEMVIRT_BUDGET=$budget" --hold-at 3 --hold-file "$T/go-heavy"
	heavy=$last
}

# Room: 4 MiB, twice the first share of each.
round 4MiB
dl_wait_log heavy "$heavy" "holding before step 3"
timeout 60 "$MEMVIRT" ps --socket "$S" --json >"$T/ps.json" 2>"$T/ps.err" || mv_fail "memvirt ps failed: $(cat "$T/ps.err")"
"$MVSOCK" flat <"$T/ps.json" >"$T/ps.flat"
timeout 60 "$MEMVIRT" stats --socket "$S" --json >"$T/stats.json" || mv_fail "memvirt stats failed"
"$MVSOCK" flat <"$T/stats.json" >"$T/stats.flat"
touch "$T/go-heavy"
wait_job "$heavy" 120
mv_expect_ok heavy "$STEPS"
[ "$(mv_checksum heavy)" = "$sum" ] || mv_fail_run heavy "checksum $(mv_checksum heavy), the plain run's is $sum"
grep -q "host pool full" "$T/heavy.err" && mv_fail_run heavy "refused host memory while the node had room"
grep -q "^daemons\.0\.jobs\.[01]\.job heavy$" "$T/ps.flat" || mv_fail "memvirt ps lists no heavy job: $(cat "$T/ps.json")"
hg=$(grep '^daemons\.0\.jobs\.[01]\.host_grant ' "$T/ps.flat" | awk '{ s += $2; n++ } END { if (n == 2) print s }')
echo "4 MiB: heavy ends with pool $(pool heavy), plain checksum; memvirt ps: host grants summing to $hg B"
[ -n "$hg" ] && [ "$hg" -gt 0 ] && [ "$hg" -le $((4 << 20)) ] ||
	mv_fail "memvirt ps: host grants '$hg' for two jobs, expected a sum in (0, 4 MiB]: $(cat "$T/ps.json")"
grep -qx 'host.limit 4194304' "$T/stats.flat" || mv_fail "memvirt stats: no host limit 4194304: $(cat "$T/stats.json")"
# Above its first share (2 MiB): the daemon followed its pool.
case $(pool heavy) in
2.[0-9]*MiB | [3-9].[0-9]*MiB) ;;
*) mv_fail_run heavy "host pool '$(pool heavy)' at exit, expected more than its first share of 2 MiB" ;;
esac
touch "$T/go"
wait_job "$light" 120
mv_expect_ok light "$STEPS"
timeout 60 "$MEMVIRT" daemon stop --socket "$S" >/dev/null 2>&1 || mv_fail "memvirt daemon stop failed"
n=0
while alive "$DAEMON"; do
	n=$((n + 1))
	[ "$n" -lt 600 ] || mv_fail "memvirtd (pid $DAEMON) still ran 60 s after its stop"
	sleep 0.1
done
DAEMON=
JOBS=

# Over: 2 MiB, less than the heavy job needs with the light one linked.
round 2MiB
touch "$T/go-heavy"
wait_job "$heavy" 120
[ "$MV_RC" -eq 3 ] || [ "$MV_RC" -eq 1 ] || mv_fail_run heavy "exit status $MV_RC under 2 MiB, expected 1 or 3"
err=$(sed -n 's/^mvtrain: \([A-Za-z_0-9]*\) failed: \(CUDA_ERROR_OUT_OF_MEMORY\).*/\1 -> \2/p' "$T/heavy.err")
[ -n "$err" ] || mv_fail_run heavy "refused without CUDA_ERROR_OUT_OF_MEMORY named"
grep -q "host pool full at .* (memvirtd's node host limit, this process's share .*): cannot page out more" "$T/heavy.err" ||
	mv_fail_run heavy "refused without the line naming the node's host limit"
echo "2 MiB: heavy refused: $err; $(grep -o "host pool full at .*" "$T/heavy.err" | head -n 1)"
touch "$T/go"
wait_job "$light" 120
mv_expect_ok light "$STEPS"
exit 0
