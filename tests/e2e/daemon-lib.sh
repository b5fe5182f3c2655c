# Shared set-up of the end-to-end tests that run workloads, or raw socket clients, against a
# private daemon: the programs, an environment in which buffers of a few KiB page, a private 0700
# directory $T with the socket path $S, cleanup of $DAEMON and $JOBS at exit, a hang-guarded wait,
# and reading a session's field from flattened stats. Sourced after lib.sh.
MEMVIRT=$MV_TOP_BUILDDIR/cli/memvirt
MVSOCK=$MV_TOP_BUILDDIR/tests/e2e/mvsock
for p in "$MEMVIRT" "$MVSOCK"; do
	[ -x "$p" ] || mv_fail "$p is not built"
done
if [ -n "${MEMVIRT_LIB:-}" ]; then
	MEMVIRT_LIBRARY=$MEMVIRT_LIB
	export MEMVIRT_LIBRARY
fi

# Small granules and a small slab threshold let buffers of a few KiB page.
SIMCUDA_GRANULARITY=4KiB
MEMVIRT_SLAB_THRESHOLD=4KiB
export SIMCUDA_GRANULARITY MEMVIRT_SLAB_THRESHOLD
unset SIMCUDA_MEM SIMCUDA_MODEL_ONLY SIMCUDA_NO_HOST_VMM LD_PRELOAD MEMVIRT_SOCKET
unset MEMVIRT_BUDGET MEMVIRT_LOG MEMVIRT_LOG_FILE MEMVIRT_SAFETY_NET MEMVIRT_HOST_LIMIT MEMVIRT_JOB
unset MEMVIRT_WEIGHT MEMVIRT_DAEMON MEMVIRT_REAL_LIBCUDA

mv_tmpdir
chmod 700 "$MV_TMP"
T=$MV_TMP
S=$T/memvirtd.sock
DAEMON=
JOBS=


cleanup() {
	for p in $JOBS $DAEMON; do
		kill -CONT "$p" 2>/dev/null
		kill -TERM "$p" 2>/dev/null
	done
	for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
		left=
		for p in $JOBS $DAEMON; do
			alive "$p" && left="$left $p"
		done
		[ -z "$left" ] && break
		sleep 0.1
	done
	for p in $left; do
		kill -KILL "$p" 2>/dev/null
	done
	wait 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# wait_job PID SECONDS: waits for a background job, killing it after SECONDS (a hang guard);
# leaves its exit status in MV_RC.
wait_job() {
	n=$(($2 * 10))
	while alive "$1" && [ "$n" -gt 0 ]; do
		sleep 0.1
		n=$((n - 1))
	done
	if alive "$1"; then
		kill -TERM "$1" 2>/dev/null
		sleep 1
		kill -KILL "$1" 2>/dev/null
		wait "$1" 2>/dev/null
		mv_fail "pid $1 still ran after $2 s"
	fi
	MV_RC=0
	wait "$1" || MV_RC=$?
}

# sess_field FLAT JOB FIELD: FIELD of the session of job JOB in a flattened stats answer (of every
# session when JOB is empty).
sess_field() {
	awk -v job="$2" -v f="$3" '
		{ split($1, k, ".") }
		k[1] == "sessions" && k[3] == "job" && (job == "" || $2 == job) { mine[k[2]] = 1 }
		k[1] == "sessions" && k[3] == f { val[k[2]] = $2 }
		END { for (i in mine) print val[i] }' "$1"
}

# plain_run: runs mvtrain $ARGS ($STEPS steps) on the simulated GPU alone; sets sum and peak from it.
plain_run() {
	mv_need_mvtrain
	# shellcheck disable=SC2086 # ARGS is a list of words
	mv_run plain $ARGS
	mv_expect_ok plain "$STEPS"
	sum=$(mv_checksum plain)
	peak=$(mv_peak plain)
	[ -n "$peak" ] && [ "$peak" -gt 0 ] || mv_fail_run plain "no peak in the output"
}

# start_daemon [OPTION...]: memvirt daemon start on $S with a log in $T at DAEMON_LOG_LEVEL (default
# info), plus the options; its pid goes to DAEMON and what it printed to `out`. memvirtd asks the
# simulated driver on LD_LIBRARY_PATH for the device's memory, so it is given the jobs' device
# ($dev bytes, when the script set it).
start_daemon() {
	# shellcheck disable=SC2086 # an assignment, or nothing
	out=$(env ${dev:+SIMCUDA_MEM=$dev} timeout 60 "$MEMVIRT" daemon start --socket "$S" "$@" --log-file "$T/memvirtd.log" \
		--log-level "${DAEMON_LOG_LEVEL:-info}") ||
		mv_fail "memvirt daemon start --socket $S failed"
	DAEMON=$(echo "$out" | sed -n 's/^memvirtd started (pid \([0-9]*\)).*/\1/p')
	[ -n "$DAEMON" ] || mv_fail "memvirt daemon start printed no pid: $out"
}

# dl_job SOCKET NAME SETTINGS [MVTRAIN OPTION...]: mvtrain $ARGS preloaded, linked to the daemon at
# SOCKET, with $dev bytes of simulated device memory, in the background; its output goes to
# $T/NAME.out and .err, its pid to `last` and JOBS.
dl_job() {
	dj_sock=$1 dj_name=$2 dj_settings=$3
	shift 3
	# shellcheck disable=SC2086 # ARGS and SETTINGS are lists of words
	env SIMCUDA_MEM=$dev MEMVIRT_LOG=info MEMVIRT_SOCKET="$dj_sock" $dj_settings \
		LD_LIBRARY_PATH="$SIMCUDA_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" LD_PRELOAD="$MEMVIRT_LIB" \
		timeout 120 "$MVTRAIN" $ARGS "$@" >"$T/$dj_name.out" 2>"$T/$dj_name.err" &
	last=$!
	JOBS="$JOBS $last"
}

# dl_wait_log NAME PID TEXT [SECONDS]: waits until the job's stderr has TEXT, while it runs
# (SECONDS at most, 60 when not given).
dl_wait_log() {
	dw_n=0
	until grep -qF "$3" "$T/$1.err" 2>/dev/null; do
		alive "$2" || mv_fail_run "$1" "the job ended before its log said '$3'"
		dw_n=$((dw_n + 1))
		[ "$dw_n" -lt $((${4:-60} * 10)) ] || mv_fail_run "$1" "the job's log did not say '$3' within ${4:-60} s"
		sleep 0.1
	done
}

# sstat FIELD [JOB]: FIELD of job JOB's session (of every session, without JOB) in the stats of the
# daemon on $S; the answer stays in $T/stats.json and $T/stats.flat.
sstat() {
	timeout 60 "$MVSOCK" "$S" request '{"cmd": "stats"}' >"$T/stats.json" ||
		mv_fail "the stats request failed: $(cat "$T/stats.json")"
	"$MVSOCK" flat <"$T/stats.json" >"$T/stats.flat" || mv_fail "mvsock flat failed"
	sess_field "$T/stats.flat" "${2-}" "$1"
}
