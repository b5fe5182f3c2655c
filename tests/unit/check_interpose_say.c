/* What libmemvirt.so says at the default log level: the line for each refusal of memory (what is
 * resident and why nothing more could be paged), rate-limited, and the warning for a budget that
 * makes no sense on the device. */
#include "config.h"

#include "tests/unit/interposetest.h"

#define GRAN64 "SIMCUDA_GRANULARITY=64KiB"
#define THR16 "MEMVIRT_SLAB_THRESHOLD=16KiB"
/* Without the safety net a request no room can be made for is refused; with it, it would start in
 * host memory (memvirt(1), PARTIAL RESIDENCY). */
#define NET_OFF "MEMVIRT_SAFETY_NET=0"

/* ---- the helper children ---- */

/* "refuse": allocates and fills a buffer of ITEST_HOLD bytes, then asks ITEST_COUNT times for
 * ITEST_SIZE bytes. Exit 0 when every request was refused with CUDA_ERROR_OUT_OF_MEMORY, 2 when one
 * was granted, 3 on any other error. */
static int helper_refuse(void)
{
	long count = atol(getenv("ITEST_COUNT"));
	size_t hold = (size_t)atol(getenv("ITEST_HOLD")), size = (size_t)atol(getenv("ITEST_SIZE"));
	CUdeviceptr a, p;

	itest_helper_init();
	HCHK(cuMemAlloc(&a, hold));
	HCHK(cuMemsetD8(a, 7, hold));
	HCHK(cuCtxSynchronize());
	for (long i = 0; i < count; i++) {
		CUresult r = cuMemAlloc(&p, size);
		if (r == CUDA_SUCCESS)
			return 2;
		if (r != CUDA_ERROR_OUT_OF_MEMORY)
			HCHK(r);
	}
	return 0;
}

/* "touch": one allocation, whatever comes of it, so that the library reads its budget. */
static int helper_touch(void)
{
	CUdeviceptr p;

	itest_helper_init();
	(void)cuMemAlloc(&p, 64 * ITEST_KIB);
	return 0;
}

static int helper_main(const char *mode)
{
	if (strcmp(mode, "refuse") == 0)
		return helper_refuse();
	if (strcmp(mode, "touch") == 0)
		return helper_touch();
	return 126;
}

/* How many lines of text contain needle. */
static int lines_with(const char *text, const char *needle)
{
	int n = 0;

	for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

/* A child of the library at the default log level, linked to no daemon. */
static struct itest_child run_default(const char *mode, const char *const *env)
{
	unsetenv("MEMVIRT_LOG");
	unsetenv("MEMVIRT_LOG_FILE");
	return itest_run_helper(mode, 1, env, 120);
}

/* ---- refusals ---- */

START_TEST(test_refusal_says_what_is_resident_and_why)
{
	/* A host pool smaller than the held buffer: its page-out fails, and it stays resident. */
	const char *env[] = {"SIMCUDA_MEM=4MiB", GRAN64, THR16, "MEMVIRT_BUDGET=256KiB", "MEMVIRT_HOST_LIMIT=64KiB",
			     "MEMVIRT_DAEMON=off", NET_OFF, "ITEST_HOLD=131072", "ITEST_SIZE=196608", "ITEST_COUNT=1", NULL};
	struct itest_child c = run_default("refuse", env);
	const char *want = "warn: cannot make room for 196608 bytes: CUDA_ERROR_OUT_OF_MEMORY under a budget of "
			   "256.0 KiB with 128.0 KiB resident (slab blocks 0, pinned 0, in use 0, arriving 0, "
			   "moving 0, other 131072 bytes); nothing more could be paged out: page-outs found no "
			   "host memory (MEMVIRT_HOST_LIMIT)\n";

	ck_assert_msg(itest_exit_code(&c) == 0, "refuse: %s; stderr: %s", itest_how(&c), c.err);
	ck_assert_msg(strstr(c.err, want) != NULL, "no refusal line, or a wrong one: %s", c.err);
	ck_assert_int_eq(lines_with(c.err, "cannot make room"), 1);
	ck_assert_msg(c.out[0] == '\0', "the library wrote to stdout: \"%s\"", c.out);
	itest_child_free(&c);
}
END_TEST

/* The held buffer's page-out fails in the driver (the first device-to-host copy): the line names
 * the driver's error, not the host limit. */
START_TEST(test_refusal_names_the_driver_error)
{
	const char *env[] = {"SIMCUDA_MEM=4MiB", GRAN64, THR16, "MEMVIRT_BUDGET=256KiB", "SIMCUDA_FAIL_COPY=d2h:1",
			     "MEMVIRT_DAEMON=off", NET_OFF, "ITEST_HOLD=131072", "ITEST_SIZE=196608", "ITEST_COUNT=1", NULL};
	struct itest_child c = run_default("refuse", env);

	ck_assert_msg(itest_exit_code(&c) == 0, "refuse: %s; stderr: %s", itest_how(&c), c.err);
	ck_assert_msg(strstr(c.err, "page-out of ") != NULL && strstr(c.err, " failed (CUDA_ERROR_UNKNOWN)") != NULL,
		      "no line for the failed page-out: %s", c.err);
	ck_assert_msg(strstr(c.err, "nothing more could be paged out: page-outs failed in the driver "
				    "(CUDA_ERROR_UNKNOWN)\n") != NULL,
		      "no refusal line, or a wrong one: %s", c.err);
	itest_child_free(&c);
}
END_TEST

START_TEST(test_refusal_too_big_for_the_budget)
{
	const char *env[] = {"SIMCUDA_MEM=4MiB", GRAN64, THR16, "MEMVIRT_BUDGET=256KiB", "MEMVIRT_DAEMON=off", NET_OFF,
			     "ITEST_HOLD=65536", "ITEST_SIZE=327680", "ITEST_COUNT=1", NULL};
	struct itest_child c = run_default("refuse", env);

	ck_assert_msg(itest_exit_code(&c) == 0, "refuse: %s; stderr: %s", itest_how(&c), c.err);
	ck_assert_msg(strstr(c.err, "warn: cannot make room for 327680 bytes: CUDA_ERROR_OUT_OF_MEMORY under a "
				    "budget of 256.0 KiB with ") != NULL &&
		      strstr(c.err, "nothing more could be paged out: the request alone is more than the "
				    "budget\n") != NULL,
		      "no refusal line, or a wrong one: %s", c.err);
	itest_child_free(&c);
}
END_TEST

/* A thousand refusals make four lines at the default level, counting; every one at info. */
START_TEST(test_refusals_rate_limited)
{
	const char *env[] = {"SIMCUDA_MEM=4MiB", GRAN64, THR16, "MEMVIRT_BUDGET=256KiB", "MEMVIRT_DAEMON=off", NET_OFF,
			     "ITEST_HOLD=65536", "ITEST_SIZE=327680", "ITEST_COUNT=1000", NULL};
	const char *info[] = {"SIMCUDA_MEM=4MiB", GRAN64, THR16, "MEMVIRT_BUDGET=256KiB", "MEMVIRT_DAEMON=off", NET_OFF,
			      "ITEST_HOLD=65536", "ITEST_SIZE=327680", "ITEST_COUNT=1000", "MEMVIRT_LOG=info", NULL};
	struct itest_child c = run_default("refuse", env);

	ck_assert_msg(itest_exit_code(&c) == 0, "refuse: %s; stderr: %s", itest_how(&c), c.err);
	ck_assert_msg(lines_with(c.err, "cannot make room") == 4, "%d refusal lines, expected 4: %s",
		      lines_with(c.err, "cannot make room"), c.err);
	ck_assert_int_eq(lines_with(c.err, "[refusal "), 3);
	for (int i = 0; i < 3; i++) {
		const char *n[] = {"[refusal 10;", "[refusal 100;", "[refusal 1000;"};
		ck_assert_msg(strstr(c.err, n[i]) != NULL, "no line with %s: %s", n[i], c.err);
	}
	itest_child_free(&c);

	c = itest_run_helper("refuse", 1, info, 120);
	ck_assert_msg(itest_exit_code(&c) == 0, "refuse at info: %s", itest_how(&c));
	ck_assert_int_eq(lines_with(c.err, "cannot make room"), 1000);
	itest_child_free(&c);
}
END_TEST

/* With the safety net, a request no room can be made for starts in host memory; one the host pool
 * cannot take either is refused, and a thousand such make four lines at the default level. */
START_TEST(test_host_placement_refusals_rate_limited)
{
	const char *env[] = {"SIMCUDA_MEM=4MiB", GRAN64, THR16, "MEMVIRT_BUDGET=256KiB", "MEMVIRT_DAEMON=off",
			     "MEMVIRT_HOST_LIMIT=128KiB", "ITEST_HOLD=65536", "ITEST_SIZE=327680", "ITEST_COUNT=1000",
			     NULL};
	struct itest_child c = run_default("refuse", env);

	ck_assert_msg(itest_exit_code(&c) == 0, "refuse: %s; stderr: %s", itest_how(&c), c.err);
	ck_assert_msg(lines_with(c.err, "cannot allocate 327680 bytes: CUDA_ERROR_OUT_OF_MEMORY") == 4,
		      "%d refusal lines, expected 4: %s",
		      lines_with(c.err, "cannot allocate 327680 bytes: CUDA_ERROR_OUT_OF_MEMORY"), c.err);
	for (int i = 0; i < 4; i++) {
		const char *n[] = {"[refusal 1]\n", "[refusal 10]\n", "[refusal 100]\n", "[refusal 1000]\n"};
		ck_assert_msg(strstr(c.err, n[i]) != NULL, "no line with %s: %s", n[i], c.err);
	}
	ck_assert_int_eq(lines_with(c.err, "cannot make room"), 0);
	itest_child_free(&c);
}
END_TEST

/* ---- absurd budgets ---- */

/* The one MEMVIRT_BUDGET line the library prints for value on a 4 MiB device of 64 KiB granules,
 * or NULL for none. */
static void expect_budget_line(const char *value, const char *line)
{
	char budget[64];
	const char *env[] = {"SIMCUDA_MEM=4MiB", GRAN64, THR16, budget, "MEMVIRT_DAEMON=off", NULL};
	struct itest_child c;

	snprintf(budget, sizeof(budget), "MEMVIRT_BUDGET=%s", value);
	c = run_default("touch", env);
	ck_assert_msg(itest_exit_code(&c) == 0, "touch: %s; stderr: %s", itest_how(&c), c.err);
	if (line == NULL) {
		ck_assert_msg(strstr(c.err, "MEMVIRT_BUDGET") == NULL, "%s: a warning: %s", budget, c.err);
	} else {
		ck_assert_msg(strstr(c.err, line) != NULL, "%s: no warning \"%s\": %s", budget, line, c.err);
		ck_assert_msg(lines_with(c.err, "MEMVIRT_BUDGET") == 1, "%s: not one warning: %s", budget, c.err);
	}
	itest_child_free(&c);
}

START_TEST(test_absurd_budgets_warn)
{
	expect_budget_line("1", "warn: MEMVIRT_BUDGET=1 is 1 B, less than the device's allocation granularity "
				"(64.0 KiB): every allocation would be refused\n");
	expect_budget_line("1GiB", "warn: MEMVIRT_BUDGET=1GiB is 1.0 GiB, more than the device's 4.0 MiB: the "
				   "device runs out of memory before the budget is reached\n");
	expect_budget_line("0%", "warn: MEMVIRT_BUDGET=0% leaves no device memory; using the device's memory\n");
	expect_budget_line("0", "warn: MEMVIRT_BUDGET=0 leaves no device memory; using the device's memory\n");
	expect_budget_line("50%", NULL);
	expect_budget_line("4MiB", NULL);
	expect_budget_line("64KiB", NULL);
}
END_TEST

static Suite *say_suite(void)
{
	Suite *s = suite_create("interpose_say");
	TCase *tc = tcase_create("say");

	tcase_set_timeout(tc, 300);
	suite_add_tcase(s, tc);
	tcase_add_test(tc, test_refusal_says_what_is_resident_and_why);
	tcase_add_test(tc, test_refusal_names_the_driver_error);
	tcase_add_test(tc, test_refusal_too_big_for_the_budget);
	tcase_add_test(tc, test_refusals_rate_limited);
	tcase_add_test(tc, test_host_placement_refusals_rate_limited);
	tcase_add_test(tc, test_absurd_budgets_warn);
	return s;
}

int main(int argc, char **argv)
{
	const char *mode;

	itest_main_begin(argc, argv);
	mode = itest_helper_mode(argc, argv);
	if (mode != NULL)
		return helper_main(mode);
	return simtest_run(say_suite());
}
