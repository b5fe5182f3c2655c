# Every man page renders without a warning: mandoc -Tlint at warning level, which is silent on a
# clean page. (Notes that a referenced page is not installed are below that level.)
. "$(dirname "$0")/lib.sh"
command -v mandoc >/dev/null 2>&1 || mv_skip "mandoc is not installed (apt-get install mandoc)"
n=0
for page in "$MV_TOP_SRCDIR"/man/*.[1-8]; do
	out=$(mandoc -Tlint -W warning "$page" 2>&1) || true
	[ -z "$out" ] || mv_fail "$page is not clean: $out"
	# And it renders to text with every section a page needs.
	text=$(mandoc -Tascii "$page" | sed 's/.\x08//g')
	for section in NAME DESCRIPTION; do
		echo "$text" | grep -q "^$section" || mv_fail "$page has no $section section"
	done
	n=$((n + 1))
done
[ "$n" -eq 5 ] || mv_fail "expected 5 man pages, found $n"
echo "$n man pages clean"
exit 0
