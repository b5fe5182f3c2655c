/* libFuzzer target: sizes and percentages as every MEMVIRT_* setting and config key spells them. A
 * parsed size, formatted for people and parsed again, must come back within the format's rounding;
 * written as a plain number of bytes, or with a half KiB added, it must come back exactly. A size is
 * read exactly: only decimal digits start it, and a fraction of a byte is never accepted. */
#include "config.h"

#include <stdint.h>
#include <string.h>

#include "protocol/units.h"
#include "tests/fuzz/fuzz.h"

/* What was accepted was written in decimal: digits first, no hex prefix or exponent, and in bytes
 * (no unit, or B) any fraction is zeros. */
static void check_spelling(const char *s)
{
	const char *p = s, *unit;

	FUZZ_CHECK(*s >= '0' && *s <= '9');
	FUZZ_CHECK(strpbrk(s, "xXeE") == NULL);
	unit = s + strspn(s, "0123456789. ");
	if (*unit == '\0' || strcmp(unit, "B") == 0) {
		p = strchr(s, '.');
		if (p != NULL)
			for (p++; *p >= '0' && *p <= '9'; p++)
				FUZZ_CHECK(*p == '0');
	}
}

static void check_size(const char *s, uint64_t x)
{
	static const uint64_t wholes[] = {0, 1, 100, 80ull << 30, (1ull << 53) + 1, UINT64_MAX};
	char buf[64];
	uint64_t y, d;

	check_spelling(s);

	/* mv_format_size keeps one decimal of a unit of at least 1, so it is within 5%; within 5% of
	 * 2^64 it may round up to "16384.0 PiB", which rightly does not fit. */
	mv_format_size(x, buf, sizeof(buf));
	if (x <= UINT64_MAX - UINT64_MAX / 20) {
		FUZZ_CHECK(mv_parse_size(buf, &y) == 0);
		d = x > y ? x - y : y - x;
		FUZZ_CHECK(d <= x / 20 + 1);
	}
	/* Whole numbers of bytes a double holds exactly come back exactly. */
	if (x <= (1ull << 53)) {
		snprintf(buf, sizeof(buf), "%llu", (unsigned long long)x);
		FUZZ_CHECK(mv_parse_size(buf, &y) == 0 && y == x);
	}
	/* A fraction of a larger unit that comes to whole bytes is exact. */
	if (x <= (UINT64_MAX >> 10) - 1) {
		snprintf(buf, sizeof(buf), "%llu.5KiB", (unsigned long long)x);
		FUZZ_CHECK(mv_parse_size(buf, &y) == 0 && y == x * 1024 + 512);
		snprintf(buf, sizeof(buf), "%llu.5", (unsigned long long)x);
		FUZZ_CHECK(mv_parse_size(buf, &y) == -1);
	}
	/* A size is a size whatever the whole a percentage would be of. */
	for (size_t i = 0; i < sizeof(wholes) / sizeof(wholes[0]); i++)
		FUZZ_CHECK(mv_parse_size_or_percent(s, wholes[i], &y) == 0 && y == x);
}

static void check_percent(const char *s)
{
	static const uint64_t wholes[] = {0, 1, 100, 80ull << 30, (1ull << 53) + 1, UINT64_MAX};
	uint64_t x;

	for (size_t i = 0; i < sizeof(wholes) / sizeof(wholes[0]); i++)
		if (mv_parse_size_or_percent(s, wholes[i], &x) == 0)
			FUZZ_CHECK(x <= wholes[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char s[128];
	uint64_t x;

	/* The parsers take C strings; longer inputs say nothing new. */
	if (size >= sizeof(s) || memchr(data, '\0', size) != NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	if (mv_parse_size(s, &x) == 0)
		check_size(s, x);
	else if (size > 0 && s[size - 1] == '%')
		check_percent(s);
	return 0;
}
