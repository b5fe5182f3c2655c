# The simulated driver exports the real driver's whole surface: every name of
# tests/simcuda/driver-exports.txt, which equals what the toolkit's stub libcuda.so exports when
# that is installed; an entry point it does not model answers CUDA_ERROR_NOT_SUPPORTED (801) and
# names itself on stderr once, however often it is called.
. "$(dirname "$0")/lib.sh"
mv_tmpdir
sim=$MV_TOP_BUILDDIR/tests/simcuda/libcuda.so.1
list=$MV_TOP_SRCDIR/tests/simcuda/driver-exports.txt
[ -f "$sim" ] || mv_fail "$sim is not built"
command -v nm >/dev/null 2>&1 || mv_skip "no nm"

nm -D --defined-only "$sim" | awk '$3 ~ /^cu/ { print $3 }' | LC_ALL=C sort >"$MV_TMP/sim"
[ "$(wc -l <"$list")" -gt 600 ] || mv_fail "$list lists $(wc -l <"$list") names, expected the driver's 600 and more"
# The real driver also exports OpenGL interop that the stub lacks and ffmpeg's loader requires.
LC_ALL=C sort "$list" "$MV_TOP_SRCDIR/tests/simcuda/driver-exports-gl.txt" >"$MV_TMP/real"
missing=$(LC_ALL=C comm -23 "$MV_TMP/real" "$MV_TMP/sim" | head -n 5 | tr '\n' ' ')
[ -z "$missing" ] || mv_fail "simcuda does not export: $missing..."
extra=$(LC_ALL=C comm -13 "$MV_TMP/real" "$MV_TMP/sim" | head -n 5 | tr '\n' ' ')
[ -z "$extra" ] || mv_fail "simcuda exports what the real driver does not: $extra"

# The committed list is the installed toolkit's (the one configure found).
cuda=$(sed -n 's/^CUDA_DIR = //p' "$MV_TOP_BUILDDIR/Makefile" 2>/dev/null)
stub=${cuda:-/usr/local/cuda}/lib64/stubs/libcuda.so
if [ -f "$stub" ]; then
	nm -D --defined-only "$stub" | awk '$2 == "T" { print $3 }' | LC_ALL=C sort >"$MV_TMP/stub"
	diff -u "$list" "$MV_TMP/stub" >"$MV_TMP/diff" ||
		{ cat "$MV_TMP/diff" >&2; mv_fail "$list differs from the exports of $stub"; }
else
	echo "no $stub: the list is checked against simcuda only"
fi

# A stub called twice: 801 both times, one line on stderr.
py=$(command -v python3) || mv_skip "no python3 to call a stub"
"$py" - "$sim" >"$MV_TMP/py.out" 2>"$MV_TMP/py.err" <<'PY' || { cat "$MV_TMP/py.err" >&2; mv_fail "calling a stub failed"; }
import ctypes, sys
lib = ctypes.CDLL(sys.argv[1])
print(lib.cuArrayCreate_v2(None, None), lib.cuArrayCreate_v2(None, None), lib.cuMipmappedArrayDestroy(0))
PY
[ "$(cat "$MV_TMP/py.out")" = "801 801 801" ] || mv_fail "stubs answered $(cat "$MV_TMP/py.out"), expected 801 each"
n=$(grep -c 'cuArrayCreate_v2 is not modelled' "$MV_TMP/py.err")
[ "$n" -eq 1 ] || { cat "$MV_TMP/py.err" >&2; mv_fail "cuArrayCreate_v2 named itself $n times on stderr, expected once"; }
grep -q 'simcuda: cuMipmappedArrayDestroy is not modelled: CUDA_ERROR_NOT_SUPPORTED' "$MV_TMP/py.err" ||
	{ cat "$MV_TMP/py.err" >&2; mv_fail "cuMipmappedArrayDestroy did not name itself"; }
exit 0
