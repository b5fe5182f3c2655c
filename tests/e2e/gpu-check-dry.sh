# The GPU check kit works here: `scripts/gpu-check --dry-run` runs every part it can on the simulated
# GPU, exits 0, and writes a report where every model under memvirt ends with its plain checksum (or
# does not fit, VGG-16 at a third); it says the PyTorch part was skipped when torch is absent; its
# simulator part runs the simulated driver's tests on both sides and finds no difference, and
# lists exactly the hardware tests that differ once the side standing for the driver is made to
# fail its first copy; and scripts/gpu-bundle makes a bundle under 64 MiB with every file
# gpu-check needs, the simulated driver's tests included.
. "$(dirname "$0")/lib.sh"
mv_need_mvtrain
mv_tmpdir
check=$MV_TOP_SRCDIR/scripts/gpu-check
bundle=$MV_TOP_SRCDIR/scripts/gpu-bundle
report=$MV_TMP/report.json
unset MEMVIRT_BUDGET MEMVIRT_LOG MEMVIRT_LOG_FILE MEMVIRT_SAFETY_NET MEMVIRT_HOST_LIMIT MEMVIRT_LIBRARY LD_PRELOAD
MEMVIRT_SIMCUDA_DIR=$MV_TOP_BUILDDIR/tests/simcuda
export MEMVIRT_SIMCUDA_DIR

rc=0
sh "$check" --dry-run --report "$report" >"$MV_TMP/check.out" 2>&1 || rc=$?
showfail() {
	cat "$MV_TMP/check.out" >&2
	mv_fail "$*"
}
[ "$rc" -eq 0 ] || showfail "gpu-check --dry-run exited $rc"
[ -s "$report" ] || showfail "no report at $report"
for key in '"mode": "dry-run"' '"passed": true' '"failures": \[\]' '"mvtrain": \[' '"pytorch": {' \
	'"capacity": {' '"largest_batch_plain": [1-9]' '"largest_batch_memvirt": [1-9]' \
	'"simcuda": {"status": "ran", "compared": [1-9][0-9]*, "simulator_only": [1-9][0-9]*, "differing": 0,'; do
	grep -q "$key" "$report" || showfail "the report lacks $key"
done
if command -v python3 >/dev/null 2>&1; then
	python3 -m json.tool "$report" >/dev/null || showfail "the report is not valid JSON"
fi

# Every model: its plain checksum, and each run under memvirt has the same one or does not fit.
n=0
for model in resnet50 transformer lstm vgg16; do
	line=$(grep "\"model\": \"$model\"" "$report" | head -n 1)
	[ -n "$line" ] || showfail "no $model line in the report"
	plain=$(echo "$line" | sed -n 's/.*"plain": {"checksum": "\([0-9a-f]*\)".*/\1/p')
	[ -n "$plain" ] || showfail "$model has no plain checksum in the report"
	runs=$(echo "$line" | sed 's/"budget_percent"/\n&/g' | grep '^"budget_percent"')
	[ "$(echo "$runs" | wc -l)" -eq 3 ] || showfail "$model does not have three memvirt runs"
	echo "$runs" | while IFS= read -r r; do
		case $r in
		*'"status": "ok"'*) echo "$r" | grep -q "\"checksum\": \"$plain\"" ||
			showfail "$model: a run under memvirt has another checksum than the plain $plain: $r" ;;
		*'"status": "does not fit"'*) [ "$model" = vgg16 ] && echo "$r" | grep -q '"budget_percent": 33,' ||
			showfail "$model: only VGG-16 at 33% may not fit: $r" ;;
		*) showfail "$model: a run under memvirt failed: $r" ;;
		esac
	done || exit 1
	n=$((n + 1))
done
[ "$n" -eq 4 ] || mv_fail "checked $n models, expected 4"

if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import torch' >/dev/null 2>&1; then
	grep -q 'PyTorch part skipped' "$MV_TMP/check.out" || showfail "the output does not say the PyTorch part was skipped"
	grep -q '"pytorch": {"status": "skipped"' "$report" || showfail "the report does not mark PyTorch skipped"
fi

# The simulator part finds a difference: every hardware test that copies fails on the skewed side
# and is listed with its message; the simulator-only ones are not compared.
rc=0
GPU_CHECK_SIMCUDA_SKEW=SIMCUDA_FAIL_COPY=any:1 sh "$check" --dry-run --simcuda-only --report "$MV_TMP/skew.json" \
	>"$MV_TMP/check.out" 2>&1 || rc=$?
[ "$rc" -eq 0 ] || showfail "gpu-check --dry-run --simcuda-only exited $rc"
grep -q '"mode": "dry-run"' "$MV_TMP/skew.json" || showfail "no report of the skewed run"
if command -v python3 >/dev/null 2>&1; then
	python3 -m json.tool "$MV_TMP/skew.json" >/dev/null || showfail "the skewed run's report is not valid JSON"
fi
grep -q '"differing": [1-9]' "$MV_TMP/skew.json" || showfail "the skewed run reports no difference"
grep -q '{"binary": "check_simcuda_stream", "test": "test_events", "simulator": "P", "driver": "F", "message": ".*CUDA_ERROR_UNKNOWN' \
	"$MV_TMP/skew.json" || showfail "the skewed run does not list check_simcuda_stream test_events"
grep -q 'check_simcuda_stream test_events: simulator P, driver F' "$MV_TMP/check.out" ||
	showfail "the skewed run's output does not list check_simcuda_stream test_events"
sim_only=$(sh "$MV_TOP_SRCDIR/tests/simcuda/hw-cases.sh" "$MV_TOP_SRCDIR"/tests/unit/check_simcuda_*.c | awk '$3 == "simulator" { print $2 }')
for t in $sim_only; do
	grep -q "\"test\": \"$t\"" "$MV_TMP/skew.json" && showfail "the simulator-only test $t was compared"
done
[ -n "$sim_only" ] || mv_fail "hw-cases.sh names no simulator-only test"

# The bundle.
rc=0
sh "$bundle" "$MV_TMP/bundle" >"$MV_TMP/bundle.out" 2>&1 || rc=$?
[ "$rc" -eq 0 ] || { cat "$MV_TMP/bundle.out" >&2; mv_fail "gpu-bundle exited $rc"; }
size=$(du -sb "$MV_TMP/bundle" | cut -f1)
[ "$size" -lt $((64 * 1024 * 1024)) ] || mv_fail "the bundle is $size bytes, not under 64 MiB"
for f in libmemvirt.so memvirtd memvirt mvtrain gpu-check kernels.cu kernels.h torch_train.py jax_train.py \
	simcuda-cases simcuda/libcuda.so.1 simcuda-tests/check_simcuda_mem simcuda-tests/check_simcuda_vmm \
	data/cudart-13.0-getprocaddress.tsv; do
	[ -s "$MV_TMP/bundle/$f" ] || mv_fail "the bundle lacks $f"
done
# The bundle's own simulator part passes away from the source tree: the tests that read
# tests/data or the simulated driver's build find them in the bundle.
rc=0
(cd / && MEMVIRT_SIMCUDA_DIR=$MV_TMP/bundle/simcuda MV_TOP_SRCDIR= MV_TOP_BUILDDIR= \
	sh "$MV_TMP/bundle/gpu-check" --dry-run --simcuda-only --report "$MV_TMP/bundle-sim.json") \
	>"$MV_TMP/bundle-sim.out" 2>&1 || rc=$?
[ "$rc" -eq 0 ] || { cat "$MV_TMP/bundle-sim.out" >&2; mv_fail "the bundle's gpu-check --dry-run --simcuda-only exited $rc"; }
for f in memvirtd memvirt mvtrain gpu-check; do
	[ -x "$MV_TMP/bundle/$f" ] || mv_fail "$f in the bundle is not executable"
done
# Whatever the built binaries link of libuv and jansson is in lib/.
ldd "$MV_TOP_BUILDDIR/tests/unit/check_simcuda_mem" | grep -q libsubunit &&
	{ ls "$MV_TMP/bundle/lib/libsubunit".so* >/dev/null 2>&1 || mv_fail "the bundle lacks libsubunit under lib/"; }
for lib in libuv libjansson; do
	if ldd "$MV_TOP_BUILDDIR/daemon/memvirtd" | grep -q "$lib"; then
		ls "$MV_TMP/bundle/lib/$lib".so* >/dev/null 2>&1 || mv_fail "the bundle lacks $lib under lib/"
	fi
done
exit 0
