# DRIVER.md has a row for every function of cuda.h whose prototype mentions CUdeviceptr: each is
# named there in backquotes, by itself or by its base name (without _v2, _ptds, _ptsz).
. "$(dirname "$0")/lib.sh"
mv_tmpdir
table=$MV_TOP_SRCDIR/DRIVER.md
cuda=$(sed -n 's/^CUDA_DIR = //p' "$MV_TOP_BUILDDIR/Makefile" 2>/dev/null)
h=${cuda:-/usr/local/cuda}/include/cuda.h
[ -r "$h" ] || mv_skip "no $h"
[ -r "$table" ] || mv_fail "no $table"

# One declaration a line, comments removed, then the names of those that mention CUdeviceptr.
tr '\n' ' ' <"$h" | sed 's|/\*[^*]*\*\{1,\}\([^/*][^*]*\*\{1,\}\)*/||g' | tr ';' '\n' |
	grep -o 'CUresult CUDAAPI cu[A-Za-z0-9_]*(.*CUdeviceptr.*' |
	sed 's/^CUresult CUDAAPI \(cu[A-Za-z0-9_]*\)(.*/\1/' | LC_ALL=C sort -u >"$MV_TMP/names"
n=$(wc -l <"$MV_TMP/names")
[ "$n" -ge 50 ] || mv_fail "found only $n functions naming CUdeviceptr in $h: the extraction is broken"
grep -q 'cuMemcpyDtoH_v2$' "$MV_TMP/names" || mv_fail "the extraction missed cuMemcpyDtoH_v2"

# Only table rows count: the entry-point column of lines starting with '|'.
grep '^| ' "$table" | cut -d '|' -f 2 | grep -o '`cu[A-Za-z0-9_]*`' | tr -d '`' | LC_ALL=C sort -u >"$MV_TMP/rows"
missing=
while IFS= read -r name; do
	base=$(echo "$name" | sed 's/_pt[ds][sz]$//; s/_v[0-9][0-9]*$//')
	grep -qx "$name" "$MV_TMP/rows" || grep -qx "$base" "$MV_TMP/rows" || missing="$missing $name"
done <"$MV_TMP/names"
[ -z "$missing" ] || mv_fail "DRIVER.md has no row for:$missing"
echo "DRIVER.md covers all $n functions of cuda.h that name CUdeviceptr"
exit 0
