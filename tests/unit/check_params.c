/* The planning knobs' validator: every knob's range at its edges, the three ways a value is read or
 * refused, and the policies' defaults inside their own knobs' ranges. */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "policies/policy.h"

static const struct mv_knob *knob(const char *name)
{
	const struct mv_knob *k = mv_knob_find(name);

	ck_assert_msg(k != NULL, "no knob %s", name);
	ck_assert_str_eq(k->name, name);
	return k;
}

/* mv_knob_parse reads text as value. */
static void parse_ok(const char *name, const char *text, double value)
{
	struct mv_knob_value v = {7, 7};
	char msg[256] = "";

	ck_assert_msg(mv_knob_parse(knob(name), text, MV_KNOB_WORDS, &v, msg, sizeof(msg)) == 0,
		      "%s '%s' refused: %s", name, text, msg);
	ck_assert_msg(v.d == value, "%s '%s' read as %g", name, text, v.d);
}

/* mv_knob_parse refuses text with err and exactly the message want. */
static void parse_bad(const char *name, const char *text, enum mv_knob_notation n, int err,
		      const char *want)
{
	struct mv_knob_value v = {7, 7};
	char msg[256] = "";

	ck_assert_int_eq(mv_knob_parse(knob(name), text, n, &v, msg, sizeof(msg)), err);
	ck_assert_str_eq(msg, want);
	/* A refused value leaves *out alone. */
	ck_assert(v.u == 7 && v.d == 7);
}

/* mv_knob_check refuses value with exactly the message want. */
static void check_bad(const char *name, double value, const char *want)
{
	char msg[256] = "";

	ck_assert_int_eq(mv_knob_check(knob(name), value, msg, sizeof(msg)), -ERANGE);
	ck_assert_str_eq(msg, want);
}

START_TEST(table)
{
	static const char *const names[] = {"page_min", "lookahead", "heavy_fraction", "headroom",
					    "h2d_gbps", "d2h_gbps"};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		knob(names[i]);
	ck_assert_ptr_null(mv_knob_find("lookahed"));
	ck_assert_ptr_null(mv_knob_find(""));
	ck_assert_int_eq(knob("lookahead")->type, MV_KNOB_WHOLE);
	ck_assert_int_eq(knob("page_min")->type, MV_KNOB_SIZE);
	ck_assert_int_eq(knob("headroom")->type, MV_KNOB_REAL);
}
END_TEST

/* Each end of each range: in or out, as the knob's meaning wants. */
START_TEST(edges)
{
	ck_assert_int_eq(mv_knob_check(knob("lookahead"), 1, NULL, 0), 0);
	ck_assert_int_eq(mv_knob_check(knob("lookahead"), 1000000, NULL, 0), 0);
	ck_assert_int_eq(mv_knob_check(knob("lookahead"), 0, NULL, 0), -ERANGE);
	ck_assert_int_eq(mv_knob_check(knob("lookahead"), 1000001, NULL, 0), -ERANGE);
	ck_assert_int_eq(mv_knob_check(knob("heavy_fraction"), 0, NULL, 0), -ERANGE);
	ck_assert_int_eq(mv_knob_check(knob("heavy_fraction"), 1e-9, NULL, 0), 0);
	ck_assert_int_eq(mv_knob_check(knob("heavy_fraction"), 1, NULL, 0), 0);
	ck_assert_int_eq(mv_knob_check(knob("heavy_fraction"), 1.0000001, NULL, 0), -ERANGE);
	ck_assert_int_eq(mv_knob_check(knob("headroom"), 0, NULL, 0), 0);
	ck_assert_int_eq(mv_knob_check(knob("headroom"), 0.999, NULL, 0), 0);
	ck_assert_int_eq(mv_knob_check(knob("headroom"), 1, NULL, 0), -ERANGE);
	ck_assert_int_eq(mv_knob_check(knob("headroom"), -0.001, NULL, 0), -ERANGE);
	ck_assert_int_eq(mv_knob_check(knob("page_min"), 0, NULL, 0), -ERANGE);
	ck_assert_int_eq(mv_knob_check(knob("page_min"), 1, NULL, 0), 0);
	ck_assert_int_eq(mv_knob_check(knob("page_min"), 18446744073709551615.0, NULL, 0), 0);
	ck_assert_int_eq(mv_knob_check(knob("h2d_gbps"), 0, NULL, 0), -ERANGE);
	ck_assert_int_eq(mv_knob_check(knob("h2d_gbps"), 1e6, NULL, 0), 0);
	ck_assert_int_eq(mv_knob_check(knob("d2h_gbps"), 1e6 + 1, NULL, 0), -ERANGE);
	ck_assert_int_eq(mv_knob_check(knob("d2h_gbps"), NAN, NULL, 0), -ERANGE);
}
END_TEST

/* The refusals of memvirt.json's values name the key, the value and the range. */
START_TEST(check_messages)
{
	check_bad("lookahead", 0, "lookahead 0 is out of range 1..1000000");
	check_bad("lookahead", 1000001, "lookahead 1000001 is out of range 1..1000000");
	check_bad("heavy_fraction", 1.5, "heavy_fraction 1.5 is out of range: more than 0 and at most 1");
	check_bad("headroom", -0.1, "headroom -0.1 is out of range: at least 0 and less than 1");
	check_bad("headroom", 1, "headroom 1 is out of range: at least 0 and less than 1");
	check_bad("page_min", 0, "page_min 0 is out of range: at least 1 byte, such as \"1MiB\"");
	check_bad("h2d_gbps", 2e6, "h2d_gbps 2000000 is out of range: more than 0 and at most 1000000");
}
END_TEST

START_TEST(parse_values)
{
	struct mv_knob_value v;

	parse_ok("lookahead", "1", 1);
	parse_ok("lookahead", "1000000", 1000000);
	parse_ok("page_min", "4MiB", 4 * 1048576.0);
	parse_ok("page_min", "1", 1);
	parse_ok("heavy_fraction", "1", 1);
	parse_ok("headroom", "0", 0);
	parse_ok("headroom", "2.5e-1", 0.25);
	parse_ok("h2d_gbps", "12.5", 12.5);
	ck_assert_int_eq(mv_knob_parse(knob("page_min"), "16384PiB", MV_KNOB_WORDS, &v, NULL, 0), -EINVAL);
	ck_assert_int_eq(mv_knob_parse(knob("page_min"), "3GiB", MV_KNOB_WORDS, &v, NULL, 0), 0);
	ck_assert_uint_eq(v.u, 3ull << 30);
	ck_assert_int_eq(mv_knob_parse(knob("lookahead"), "42", MV_KNOB_WORDS, &v, NULL, 0), 0);
	ck_assert_uint_eq(v.u, 42);
}
END_TEST

/* Text that is not the knob's type is -EINVAL, a value outside its range -ERANGE; both messages name
 * the text and what the knob takes. */
START_TEST(parse_refusals)
{
	parse_bad("lookahead", "0", MV_KNOB_WORDS, -ERANGE, "'0' is not a whole number from 1 to 1000000");
	parse_bad("lookahead", "1000001", MV_KNOB_INTERVAL, -ERANGE,
		  "'1000001' is not a whole number from 1 to 1000000");
	parse_bad("lookahead", "1.5", MV_KNOB_WORDS, -EINVAL,
		  "'1.5' is not a whole number from 1 to 1000000");
	parse_bad("lookahead", "-1", MV_KNOB_WORDS, -EINVAL, "'-1' is not a whole number from 1 to 1000000");
	parse_bad("lookahead", "+2", MV_KNOB_WORDS, -EINVAL, "'+2' is not a whole number from 1 to 1000000");
	parse_bad("lookahead", " 2", MV_KNOB_WORDS, -EINVAL, "' 2' is not a whole number from 1 to 1000000");
	parse_bad("lookahead", "99999999999999999999", MV_KNOB_WORDS, -EINVAL,
		  "'99999999999999999999' is not a whole number from 1 to 1000000");
	parse_bad("lookahead", "", MV_KNOB_WORDS, -EINVAL, "'' is not a whole number from 1 to 1000000");
	parse_bad("page_min", "0", MV_KNOB_WORDS, -ERANGE,
		  "'0' is not a size of at least 1 byte, such as 1MiB");
	parse_bad("page_min", "4parsecs", MV_KNOB_INTERVAL, -EINVAL,
		  "'4parsecs' is not a size of at least 1 byte, such as 1MiB");
	parse_bad("headroom", "1", MV_KNOB_INTERVAL, -ERANGE, "'1' is not a number in [0, 1)");
	parse_bad("headroom", "1", MV_KNOB_WORDS, -ERANGE,
		  "'1' is not a number from 0 up to but not including 1");
	parse_bad("headroom", "5%", MV_KNOB_WORDS, -EINVAL,
		  "'5%' is not a number from 0 up to but not including 1");
	parse_bad("heavy_fraction", "0", MV_KNOB_INTERVAL, -ERANGE, "'0' is not a number in (0, 1]");
	parse_bad("heavy_fraction", "nan", MV_KNOB_WORDS, -EINVAL,
		  "'nan' is not a number greater than 0 and at most 1");
	parse_bad("heavy_fraction", "inf", MV_KNOB_WORDS, -EINVAL,
		  "'inf' is not a number greater than 0 and at most 1");
	parse_bad("h2d_gbps", "0", MV_KNOB_INTERVAL, -ERANGE, "'0' is not a number in (0, 1000000]");
	parse_bad("d2h_gbps", "1e400", MV_KNOB_INTERVAL, -EINVAL, "'1e400' is not a number in (0, 1000000]");
}
END_TEST

/* What each knob takes, as memvirt.json(5) and the variables' messages write it. */
START_TEST(expected_phrases)
{
	char buf[128];

	ck_assert_str_eq(mv_knob_expected(knob("lookahead"), MV_KNOB_WORDS, buf, sizeof(buf)),
			 "a whole number from 1 to 1000000");
	ck_assert_str_eq(mv_knob_expected(knob("heavy_fraction"), MV_KNOB_WORDS, buf, sizeof(buf)),
			 "a number greater than 0 and at most 1");
	ck_assert_str_eq(mv_knob_expected(knob("headroom"), MV_KNOB_WORDS, buf, sizeof(buf)),
			 "a number from 0 up to but not including 1");
	ck_assert_str_eq(mv_knob_expected(knob("headroom"), MV_KNOB_INTERVAL, buf, sizeof(buf)),
			 "a number in [0, 1)");
	ck_assert_str_eq(mv_knob_expected(knob("page_min"), MV_KNOB_INTERVAL, buf, sizeof(buf)),
			 "a size of at least 1 byte, such as 1MiB");
	/* A short buffer gets a cut, terminated phrase. */
	ck_assert_str_eq(mv_knob_expected(knob("lookahead"), MV_KNOB_WORDS, buf, 9), "a whole ");
}
END_TEST

/* The policies' defaults lie within the ranges people are held to. */
START_TEST(defaults_in_range)
{
	struct mv_policy_params d;

	mv_policy_defaults(&d);
	ck_assert_int_eq(mv_knob_check(knob("page_min"), (double)d.min_size, NULL, 0), 0);
	ck_assert_int_eq(mv_knob_check(knob("lookahead"), d.lookahead, NULL, 0), 0);
	ck_assert_int_eq(mv_knob_check(knob("heavy_fraction"), d.heavy_fraction, NULL, 0), 0);
	ck_assert_int_eq(mv_knob_check(knob("headroom"), d.headroom, NULL, 0), 0);
	ck_assert_int_eq(mv_knob_check(knob("h2d_gbps"), d.machine.h2d_bps / 1e9, NULL, 0), 0);
	ck_assert_int_eq(mv_knob_check(knob("d2h_gbps"), d.machine.d2h_bps / 1e9, NULL, 0), 0);
}
END_TEST

static Suite *params_suite(void)
{
	Suite *s = suite_create("params");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, table);
	tcase_add_test(tc, edges);
	tcase_add_test(tc, check_messages);
	tcase_add_test(tc, parse_values);
	tcase_add_test(tc, parse_refusals);
	tcase_add_test(tc, expected_phrases);
	tcase_add_test(tc, defaults_in_range);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(params_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
