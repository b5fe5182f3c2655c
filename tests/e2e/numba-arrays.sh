# A real client nobody here wrote: Numba's device arrays (Debian's python3-numba) on the simulated
# driver (tests/e2e/numba-arrays.py), plain and under `memvirt run` with a budget of a third of
# what they allocate. Every array comes back byte for byte as numpy computes it; under memvirt the
# arrays were paged out and in, and nothing ran out of memory.
. "$(dirname "$0")/lib.sh"
mv_tmpdir
sim=$MV_TOP_BUILDDIR/tests/simcuda/libcuda.so.1
script=$MV_TOP_SRCDIR/tests/e2e/numba-arrays.py
MEMVIRT=$MV_TOP_BUILDDIR/cli/memvirt
[ -f "$sim" ] || mv_fail "$sim is not built"
unset MEMVIRT_BUDGET MEMVIRT_LOG_FILE MEMVIRT_SAFETY_NET LD_PRELOAD

# Debian's numba is for Debian's python3, which a python3 earlier on PATH may not be.
py=
for p in /usr/bin/python3 "$(command -v python3 2>/dev/null)"; do
	[ -n "$p" ] && [ -x "$p" ] && "$p" -c 'import numba, numpy' >/dev/null 2>&1 && { py=$p; break; }
done
[ -n "$py" ] || mv_skip "python3-numba is not installed (scripts/test installs it)"
NUMBA_CUDA_DRIVER=$sim NUMBA_CACHE_DIR=$MV_TMP/cache
export NUMBA_CUDA_DRIVER NUMBA_CACHE_DIR

rc=0
timeout 300 "$py" "$script" >"$MV_TMP/plain.out" 2>"$MV_TMP/plain.err" || rc=$?
[ "$rc" -eq 0 ] && grep -qx 'numba arrays OK 24' "$MV_TMP/plain.out" ||
	{ cat "$MV_TMP/plain.out" "$MV_TMP/plain.err" >&2; mv_fail "plain run: exit $rc, arrays not all back"; }
bytes=$(sed -n 's/^allocated \([0-9]*\)$/\1/p' "$MV_TMP/plain.out")
[ -n "$bytes" ] && [ "$bytes" -gt $((48 << 20)) ] || mv_fail "plain run allocated '$bytes' bytes, expected over 48 MiB"
budget=$((bytes / 3))
echo "plain: $bytes bytes allocated, every array back"

rc=0
MEMVIRT_LOG=info timeout 300 "$MEMVIRT" run --simulate --socket "$MV_TMP/memvirtd.sock" --budget "$budget" -- \
	"$py" "$script" >"$MV_TMP/mv.out" 2>"$MV_TMP/mv.err" || rc=$?
[ "$rc" -eq 0 ] && grep -qx 'numba arrays OK 24' "$MV_TMP/mv.out" ||
	{ cat "$MV_TMP/mv.out" "$MV_TMP/mv.err" >&2; mv_fail "under memvirt at $budget bytes: exit $rc, arrays not all back"; }
summary=$(grep -E '^memvirt\[[0-9]+\] info: budget ' "$MV_TMP/mv.err" | tail -n 1)
outs=$(echo "$summary" | sed -n 's/.* page-outs \([0-9]*\) .*/\1/p')
ins=$(echo "$summary" | sed -n 's/.* page-ins \([0-9]*\) .*/\1/p')
oom=$(echo "$summary" | sed -n 's/.* out-of-memory \([0-9]*\);.*/\1/p')
[ "${outs:-0}" -gt 0 ] && [ "${ins:-0}" -gt 0 ] ||
	{ cat "$MV_TMP/mv.err" >&2; mv_fail "under memvirt nothing was paged (page-outs '$outs', page-ins '$ins')"; }
[ "$oom" = 0 ] || { cat "$MV_TMP/mv.err" >&2; mv_fail "under memvirt out-of-memory is '$oom', expected 0"; }
echo "memvirt at $budget bytes: every array back, $outs page-outs, $ins page-ins"
exit 0
