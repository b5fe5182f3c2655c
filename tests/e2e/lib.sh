# Shared helpers of the end-to-end scripts: where the programs are, and how to fail or skip.
# Sourced by each script; automake's environment sets MV_TOP_SRCDIR, MV_TOP_BUILDDIR and
# LD_LIBRARY_PATH, and a script run by hand from a built tree gets the same defaults.

mv_here=$(cd "$(dirname "$0")" && pwd)
: "${MV_TOP_SRCDIR:=$(cd "$mv_here/../.." && pwd)}"
: "${MV_TOP_BUILDDIR:=$MV_TOP_SRCDIR}"
: "${LD_LIBRARY_PATH:=$MV_TOP_BUILDDIR/tests/simcuda}"
export MV_TOP_SRCDIR MV_TOP_BUILDDIR LD_LIBRARY_PATH

MVTRAIN=$MV_TOP_BUILDDIR/tests/workloads/mvtrain

mv_fail() {
	echo "FAIL: $*" >&2
	exit 1
}

mv_skip() {
	echo "SKIP: $*" >&2
	exit 77
}

# A private scratch directory, removed on exit.
mv_tmpdir() {
	MV_TMP=$(mktemp -d "${TMPDIR:-/tmp}/mv-e2e.XXXXXX") || mv_fail "mktemp failed"
	trap 'rm -rf "$MV_TMP"' EXIT
}

mv_need_mvtrain() {
	[ -x "$MVTRAIN" ] || mv_fail "$MVTRAIN is not built"
}

# mv_run NAME ARGS...: runs mvtrain with ARGS, stdout to $MV_TMP/NAME.out, stderr to
# $MV_TMP/NAME.err, and leaves its exit status in MV_RC.
mv_run() {
	mv_name=$1
	shift
	MV_RC=0
	"$MVTRAIN" "$@" >"$MV_TMP/$mv_name.out" 2>"$MV_TMP/$mv_name.err" || MV_RC=$?
	echo "mvtrain $* -> exit $MV_RC"
}

# mv_policy_run NAME POLICY BUDGET ARGS...: mvtrain with ARGS preloaded under POLICY and BUDGET,
# in the background, with small buffers pageable (4 KiB slab threshold and page minimum); its
# output goes to $MV_TMP/NAME.out and .err and its exit status to $MV_TMP/NAME.rc.
mv_policy_run() {
	pr_name=$1 pr_policy=$2 pr_budget=$3
	shift 3
	(
		rc=0
		env LD_PRELOAD="$MEMVIRT_LIB" MEMVIRT_BUDGET="$pr_budget" MEMVIRT_SLAB_THRESHOLD=4KiB \
			MEMVIRT_PAGE_MIN=4KiB MEMVIRT_POLICY="$pr_policy" MEMVIRT_LOG=info \
			"$MVTRAIN" "$@" >"$MV_TMP/$pr_name.out" 2>"$MV_TMP/$pr_name.err" || rc=$?
		echo "$rc" >"$MV_TMP/$pr_name.rc"
	) &
}

# Prints the run's output and fails with a reason.
mv_fail_run() {
	mv_name=$1
	shift
	echo "--- stdout of $mv_name" >&2
	cat "$MV_TMP/$mv_name.out" >&2
	echo "--- stderr of $mv_name" >&2
	cat "$MV_TMP/$mv_name.err" >&2
	mv_fail "$*"
}

# mv_expect_ok NAME STEPS: the run succeeded, printed every line in its format and a checksum.
mv_expect_ok() {
	mv_name=$1
	mv_out=$MV_TMP/$1.out
	[ "$MV_RC" -eq 0 ] || mv_fail_run "$mv_name" "exit status $MV_RC, expected 0"
	head -n 1 "$mv_out" | grep -Eq '^mvtrain: model [a-z0-9]+ batch [0-9]+ scale [0-9.e+-]+ steps [0-9]+$' ||
		mv_fail_run "$mv_name" "bad header line"
	mv_n=$(grep -Ec '^step [0-9]+ time [0-9]+\.[0-9]+ ms$' "$mv_out")
	[ "$mv_n" -eq "$2" ] || mv_fail_run "$mv_name" "$mv_n step lines, expected $2"
	grep -Eq '^peak device bytes [0-9]+ \([0-9.]+ (B|KiB|MiB|GiB|TiB)\)$' "$mv_out" ||
		mv_fail_run "$mv_name" "no peak device bytes line"
	grep -Eq '^modeled step time [0-9]+\.[0-9]+ ms$' "$mv_out" ||
		mv_fail_run "$mv_name" "no modeled step time line"
	tail -n 1 "$mv_out" | grep -Eq '^checksum OK [0-9a-f]{16}$' ||
		mv_fail_run "$mv_name" "last line is not 'checksum OK <hex>'"
}

# The checksum a successful run printed.
mv_checksum() {
	tail -n 1 "$MV_TMP/$1.out" | sed -n 's/^checksum OK //p'
}

# The peak device bytes a run printed.
mv_peak() {
	sed -n 's/^peak device bytes \([0-9]*\) .*/\1/p' "$MV_TMP/$1.out"
}

# Whether a process is still running (a zombie is not).
alive() {
	[ -r "/proc/$1/stat" ] && ! grep -q '^[0-9]* (.*) Z' "/proc/$1/stat" 2>/dev/null
}

# mv_stop_pids PID...: asks each process to stop, kills what is still there a moment later, and
# reaps them.
mv_stop_pids() {
	for p in "$@"; do
		kill -TERM "$p" 2>/dev/null
	done
	sleep 0.2
	for p in "$@"; do
		alive "$p" && kill -KILL "$p" 2>/dev/null
	done
	wait 2>/dev/null
}
