# libmemvirt.so exports exactly the hooks of interpose/hooks.def, its dlsym and memvirt_counters:
# everything else is hidden, so the library answers for no driver entry point it does not hook.
. "$(dirname "$0")/lib.sh"
: "${MEMVIRT_LIB:=$MV_TOP_BUILDDIR/interpose/.libs/libmemvirt.so}"
mv_tmpdir

[ -f "$MEMVIRT_LIB" ] || mv_fail "$MEMVIRT_LIB is not built"
hooks=$MV_TOP_SRCDIR/interpose/hooks.def
[ -f "$hooks" ] || mv_fail "$hooks is missing"

# The expected list: every MV_HOOK(symbol) line, plus the two entry points of the library's own.
{
	sed -n 's/^[[:space:]]*MV_HOOK(\([A-Za-z0-9_]*\))[[:space:]]*$/\1/p' "$hooks"
	echo dlsym
	echo memvirt_counters
} | LC_ALL=C sort >"$MV_TMP/expected"
# A list that lost its hooks would make the comparison hollow.
n=$(grep -c '^cu' "$MV_TMP/expected")
[ "$n" -ge 40 ] || mv_fail "only $n hooks read from $hooks"
# Every MV_HOOK line was read: none is written in a form the pattern above skips.
[ "$n" -eq "$(grep -c 'MV_HOOK(cu' "$hooks")" ] || mv_fail "hooks.def has MV_HOOK lines this script cannot read"
[ -z "$(LC_ALL=C uniq -d "$MV_TMP/expected")" ] || mv_fail "hooks.def names a symbol twice: $(LC_ALL=C uniq -d "$MV_TMP/expected")"

# The defined dynamic symbols, without the toolchain's _init, _fini and the like.
nm -D --defined-only "$MEMVIRT_LIB" >"$MV_TMP/nm" || mv_fail "nm -D failed on $MEMVIRT_LIB"
awk 'NF >= 3 { print $3 }' "$MV_TMP/nm" | sed 's/@.*//' | grep -v '^_' | LC_ALL=C sort -u >"$MV_TMP/actual"
[ -s "$MV_TMP/actual" ] || mv_fail "nm -D lists no symbols for $MEMVIRT_LIB"

if ! cmp -s "$MV_TMP/expected" "$MV_TMP/actual"; then
	echo "exported but not in hooks.def (nor dlsym, memvirt_counters):" >&2
	LC_ALL=C comm -13 "$MV_TMP/expected" "$MV_TMP/actual" | sed 's/^/  /' >&2
	echo "in hooks.def (or dlsym, memvirt_counters) but not exported:" >&2
	LC_ALL=C comm -23 "$MV_TMP/expected" "$MV_TMP/actual" | sed 's/^/  /' >&2
	mv_fail "the exports of $MEMVIRT_LIB differ from $hooks"
fi

# Each export is a function (T), not data or an undefined reference that nm happened to list.
bad=$(awk 'NF >= 3 && $3 !~ /^_/ && $2 != "T" { print $3 " (" $2 ")" }' "$MV_TMP/nm")
[ -z "$bad" ] || mv_fail "exports that are not functions in the text section: $bad"
echo "$(wc -l <"$MV_TMP/actual") exports match hooks.def"
exit 0
