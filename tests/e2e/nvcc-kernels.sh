# The CUDA C kernels build with nvcc for sm_90 (cubin and fatbin), and every kernel of the C table is
# in both. Skipped without nvcc.
. "$(dirname "$0")/lib.sh"

[ -n "${NVCC:-}" ] && [ -x "$NVCC" ] || mv_skip "no nvcc (NVCC='${NVCC:-}')"
mv_tmpdir
src=$MV_TOP_SRCDIR/tests/workloads/kernels.cu
[ -r "$src" ] || mv_fail "$src missing"

names=$(sed -n 's/^[[:space:]]*{ "\(mv_[a-z0-9_]*\)".*/\1/p' "$MV_TOP_SRCDIR/tests/workloads/kernels.c")
[ "$(echo "$names" | wc -w)" -ge 12 ] || mv_fail "could not read the kernel table of kernels.c"

"$NVCC" -fmad=false -cubin -arch=sm_90 -o "$MV_TMP/kernels.cubin" "$src" ||
	mv_fail "nvcc -cubin failed"
"$NVCC" -fmad=false -fatbin -arch=sm_90 -o "$MV_TMP/kernels.fatbin" "$src" ||
	mv_fail "nvcc -fatbin failed"
for f in kernels.cubin kernels.fatbin; do
	[ -s "$MV_TMP/$f" ] || mv_fail "$f is missing or empty"
	tr '\0' '\n' <"$MV_TMP/$f" >"$MV_TMP/$f.strings"
	for n in $names; do
		grep -aqx "$n" "$MV_TMP/$f.strings" || mv_fail "kernel $n not found in $f"
	done
done
exit 0
