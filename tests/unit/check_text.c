/* protocol/text.c: UTF-8 decoding, cleaning names from clients, and escaping text for a terminal. */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/text.h"

static size_t decode(const char *s, size_t len, uint32_t *cp)
{
	return mv_utf8_decode((const unsigned char *)s, len, cp);
}

START_TEST(test_decode)
{
	uint32_t cp = 0;

	ck_assert_uint_eq(decode("A", 1, &cp), 1);
	ck_assert_uint_eq(cp, 'A');
	ck_assert_uint_eq(decode("\xc3\xa9", 2, &cp), 2);
	ck_assert_uint_eq(cp, 0xe9);
	ck_assert_uint_eq(decode("\xe2\x82\xac", 3, &cp), 3);
	ck_assert_uint_eq(cp, 0x20ac);
	ck_assert_uint_eq(decode("\xf0\x9f\x98\x80", 4, &cp), 4);
	ck_assert_uint_eq(cp, 0x1f600);
	/* Overlong forms, surrogates, past U+10FFFF, stray continuations, short input. */
	ck_assert_uint_eq(decode("\xc0\xaf", 2, &cp), 0);
	ck_assert_uint_eq(decode("\xe0\x80\xaf", 3, &cp), 0);
	ck_assert_uint_eq(decode("\xed\xa0\x80", 3, &cp), 0);
	ck_assert_uint_eq(decode("\xf4\x90\x80\x80", 4, &cp), 0);
	ck_assert_uint_eq(decode("\x80", 1, &cp), 0);
	ck_assert_uint_eq(decode("\xff", 1, &cp), 0);
	ck_assert_uint_eq(decode("\xc3", 1, &cp), 0);
	ck_assert_uint_eq(decode("", 0, &cp), 0);
}
END_TEST

static const char *clean(const char *in, size_t len, size_t size, size_t *replaced)
{
	static char out[128];

	*replaced = mv_text_clean(in, len, out, size);
	return out;
}

START_TEST(test_clean)
{
	size_t n;

	ck_assert_str_eq(clean("train.py", 8, 64, &n), "train.py");
	ck_assert_uint_eq(n, 0);
	ck_assert_str_eq(clean("caf\xc3\xa9-\xff\xfe-x", 10, 64, &n), "caf\xc3\xa9-??-x");
	ck_assert_uint_eq(n, 2);
	/* Controls, C1 controls, DEL, a bidirectional override: each one '?'. */
	ck_assert_str_eq(clean("a\x1b[2Jb\nc\x7f\xc2\x85\xe2\x80\xae" "d", 15, 64, &n), "a?[2Jb?c???d");
	ck_assert_uint_eq(n, 5);
	/* A character cut short at the end is left out; one cut short before more text is not. */
	ck_assert_str_eq(clean("ab\xe4\xb8", 4, 64, &n), "ab");
	ck_assert_uint_eq(n, 0);
	ck_assert_str_eq(clean("ab\xe4\xb8x", 5, 64, &n), "ab??x");
	/* Stops at a NUL, and fits out on a character boundary. */
	ck_assert_str_eq(clean("ab\0cd", 5, 64, &n), "ab");
	ck_assert_str_eq(clean("\xc3\xa9\xc3\xa9\xc3\xa9", 6, 6, &n), "\xc3\xa9\xc3\xa9");
	ck_assert_str_eq(clean("abc", 3, 1, &n), "");
}
END_TEST

START_TEST(test_escape)
{
	char out[64];

	ck_assert_uint_eq(mv_text_escape("job", out, sizeof(out), 20), 3);
	ck_assert_str_eq(out, "job");
	ck_assert_uint_eq(mv_text_escape("a\x1b[1m\n", out, sizeof(out), 20), 12);
	ck_assert_str_eq(out, "a\\x1b[1m\\x0a");
	/* Widths count characters, and a cut never splits one or an escape. */
	ck_assert_uint_eq(mv_text_escape("\xc3\xa9\xc3\xa9\xc3\xa9", out, sizeof(out), 2), 2);
	ck_assert_str_eq(out, "\xc3\xa9\xc3\xa9");
	ck_assert_uint_eq(mv_text_escape("ab\xff", out, sizeof(out), 5), 2);
	ck_assert_str_eq(out, "ab");
	ck_assert_uint_eq(mv_text_escape("abcdef", out, 4, 20), 3);
	ck_assert_str_eq(out, "abc");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("text");
	TCase *tc = tcase_create("text");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_decode);
	tcase_add_test(tc, test_clean);
	tcase_add_test(tc, test_escape);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
