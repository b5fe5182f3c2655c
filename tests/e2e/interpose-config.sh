# libmemvirt.so's MEMVIRT_* settings: a malformed value gets one log line naming it and the run goes
# on with the default; the log goes to stderr or MEMVIRT_LOG_FILE, never stdout; MEMVIRT_BUDGET as a
# percentage is of the device's memory; a driver that cannot be loaded is a CUDA error, not a crash.
. "$(dirname "$0")/lib.sh"
: "${MEMVIRT_LIB:=$MV_TOP_BUILDDIR/interpose/.libs/libmemvirt.so}"
mv_need_mvtrain
mv_tmpdir
[ -f "$MEMVIRT_LIB" ] || mv_fail "$MEMVIRT_LIB is not built"

SIMCUDA_MEM=4GiB
export SIMCUDA_MEM
unset SIMCUDA_MODEL_ONLY SIMCUDA_NO_HOST_VMM SIMCUDA_GRANULARITY LD_PRELOAD
unset MEMVIRT_BUDGET MEMVIRT_LOG MEMVIRT_LOG_FILE MEMVIRT_SAFETY_NET MEMVIRT_SLAB_THRESHOLD MEMVIRT_HOST_LIMIT
unset MEMVIRT_REAL_LIBCUDA
STEPS=2
ARGS="--model lstm --batch 2 --scale 0.0625 --steps $STEPS"

# mvm_run NAME SETTINGS: runs mvtrain $ARGS like mv_run with the library preloaded and SETTINGS
# (space-separated NAME=value words, possibly none).
mvm_run() {
	mvm_name=$1 mvm_settings=$2
	MV_RC=0
	# shellcheck disable=SC2086 # SETTINGS and ARGS are lists of words
	env LD_PRELOAD="$MEMVIRT_LIB" $mvm_settings "$MVTRAIN" $ARGS \
		>"$MV_TMP/$mvm_name.out" 2>"$MV_TMP/$mvm_name.err" || MV_RC=$?
	echo "${mvm_settings:+$mvm_settings }mvtrain $ARGS -> exit $MV_RC"
}

# The lines of the library's log in a file.
mvm_log_lines() {
	grep -E '^memvirt\[[0-9]+\] ' "$1" || true
}

# mvm_same_stdout NAME: the run's stdout is the plain run's, but for the modeled times, and has
# nothing of the library's.
mvm_same_stdout() {
	grep -q memvirt "$MV_TMP/$1.out" && mv_fail_run "$1" "the library wrote to stdout"
	grep -v 'time [0-9.]* ms$' "$MV_TMP/$1.out" >"$MV_TMP/$1.out-untimed"
	cmp -s "$MV_TMP/plain.out-untimed" "$MV_TMP/$1.out-untimed" || {
		diff "$MV_TMP/plain.out-untimed" "$MV_TMP/$1.out-untimed" >&2
		mv_fail_run "$1" "stdout differs from the run without the library"
	}
}

# The summary's budget ("2.0 GiB") of a run logged at info, from FILE.
mvm_budget() {
	grep -E '^memvirt\[[0-9]+\] info: budget ' "$1" | tail -n 1 | sed -n 's/.* info: budget \([^,]*\),.*/\1/p'
}

mv_run plain $ARGS
mv_expect_ok plain "$STEPS"
sum=$(mv_checksum plain)
grep -v 'time [0-9.]* ms$' "$MV_TMP/plain.out" >"$MV_TMP/plain.out-untimed"

# The library with nothing set says nothing, and changes no result.
mvm_run quiet ""
mv_expect_ok quiet "$STEPS"
mvm_same_stdout quiet
[ -z "$(mvm_log_lines "$MV_TMP/quiet.err")" ] || mv_fail_run quiet "the library logged with nothing set"

# Each malformed value: one line, on stderr, naming the variable and the value; the run goes on.
i=0
for setting in MEMVIRT_BUDGET=abc MEMVIRT_BUDGET=150% MEMVIRT_LOG=loud MEMVIRT_SLAB_THRESHOLD=xyz \
	MEMVIRT_SAFETY_NET=maybe MEMVIRT_HOST_LIMIT=lots MEMVIRT_BUDGET=0 MEMVIRT_BUDGET=0x10 \
	MEMVIRT_BUDGET=1.5 MEMVIRT_SLAB_THRESHOLD=1e3; do
	i=$((i + 1))
	mvm_run "bad$i" "$setting"
	mv_expect_ok "bad$i" "$STEPS"
	[ "$(mv_checksum "bad$i")" = "$sum" ] || mv_fail_run "bad$i" "$setting changed the checksum"
	mvm_same_stdout "bad$i"
	lines=$(mvm_log_lines "$MV_TMP/bad$i.err" | wc -l)
	[ "$lines" -eq 1 ] || mv_fail_run "bad$i" "$setting: $lines lines from the library, expected 1"
	mvm_log_lines "$MV_TMP/bad$i.err" | grep -qF "$setting" ||
		mv_fail_run "bad$i" "the line does not name $setting"
done

# A malformed budget falls back to the device's memory, not to some reading of the value (0x10 is
# not 16 bytes, 1.5 is not 1 byte).
for setting in MEMVIRT_BUDGET=abc MEMVIRT_BUDGET=150% MEMVIRT_BUDGET=0x10 MEMVIRT_BUDGET=1.5; do
	mvm_run badinfo "$setting MEMVIRT_LOG=info"
	mv_expect_ok badinfo "$STEPS"
	[ "$(mvm_budget "$MV_TMP/badinfo.err")" = "4.0 GiB" ] ||
		mv_fail_run badinfo "$setting: budget '$(mvm_budget "$MV_TMP/badinfo.err")', expected the device's 4.0 GiB"
done

# A percentage is of the device's memory.
mvm_run half "MEMVIRT_BUDGET=50% MEMVIRT_LOG=info"
mv_expect_ok half "$STEPS"
mvm_same_stdout half
[ "$(mvm_budget "$MV_TMP/half.err")" = "2.0 GiB" ] ||
	mv_fail_run half "budget '$(mvm_budget "$MV_TMP/half.err")', expected 2.0 GiB, half of 4GiB"
mvm_run quarter "SIMCUDA_MEM=1GiB MEMVIRT_BUDGET=25% MEMVIRT_LOG=info"
mv_expect_ok quarter "$STEPS"
[ "$(mvm_budget "$MV_TMP/quarter.err")" = "256.0 MiB" ] ||
	mv_fail_run quarter "budget '$(mvm_budget "$MV_TMP/quarter.err")', expected 256.0 MiB, a quarter of 1GiB"

# A driver that cannot be loaded: a line naming the path, and a CUDA error for the program (mvtrain
# exits 1 on a failed driver call), not a signal.
missing=$MV_TMP/no-such-dir/libcuda.so.1
mvm_run nodriver "MEMVIRT_REAL_LIBCUDA=$missing"
[ "$MV_RC" -ne 0 ] || mv_fail_run nodriver "succeeded without a driver"
[ "$MV_RC" -lt 128 ] || mv_fail_run nodriver "killed by a signal (exit status $MV_RC)"
mvm_log_lines "$MV_TMP/nodriver.err" | grep -qF "$missing" || mv_fail_run nodriver "no line names $missing"
grep -Eq '^mvtrain: .* failed: CUDA_ERROR_[A-Z_]+' "$MV_TMP/nodriver.err" ||
	mv_fail_run nodriver "the program did not get a CUDA error"
grep -q memvirt "$MV_TMP/nodriver.out" && mv_fail_run nodriver "the library wrote to stdout"

# A log file that cannot be opened: said on stderr, and the run goes on.
mvm_run badfile "MEMVIRT_LOG_FILE=$MV_TMP/no-such-dir/log"
mv_expect_ok badfile "$STEPS"
mvm_log_lines "$MV_TMP/badfile.err" | grep -qF "$MV_TMP/no-such-dir/log" ||
	mv_fail_run badfile "no line names the log file"

# MEMVIRT_LOG_FILE takes the log in place of stderr: the summary, and every complaint about a
# setting, the log level's own included.
log=$MV_TMP/memvirt.log
mvm_run tofile "MEMVIRT_LOG=info MEMVIRT_LOG_FILE=$log MEMVIRT_SAFETY_NET=maybe"
mv_expect_ok tofile "$STEPS"
mvm_same_stdout tofile
[ -z "$(mvm_log_lines "$MV_TMP/tofile.err")" ] || mv_fail_run tofile "the library logged to stderr"
[ -f "$log" ] || mv_fail_run tofile "$log was not written"
grep -q 'MEMVIRT_SAFETY_NET=maybe' "$log" || mv_fail_run tofile "$log lacks the MEMVIRT_SAFETY_NET line"
[ "$(mvm_budget "$log")" = "4.0 GiB" ] || mv_fail_run tofile "$log lacks the summary"
rm -f "$log"
mvm_run tofile-loud "MEMVIRT_LOG=loud MEMVIRT_LOG_FILE=$log"
mv_expect_ok tofile-loud "$STEPS"
[ -z "$(mvm_log_lines "$MV_TMP/tofile-loud.err")" ] ||
	mv_fail_run tofile-loud "with MEMVIRT_LOG_FILE set, the library logged to stderr"
grep -q 'MEMVIRT_LOG=loud' "$log" || mv_fail_run tofile-loud "$log lacks the MEMVIRT_LOG line"
exit 0
