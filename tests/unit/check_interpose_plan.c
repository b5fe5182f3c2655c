/* libmemvirt.so's plan executor on the simulated driver: a synthetic training loop of layers whose
 * activations are made in a forward pass and read back in reverse, under a budget that cannot hold
 * them all. With a planning policy the library learns the loop and pages by plan; the data must
 * stay exact whatever the plan does: planned page-outs only after the last use, planned page-ins
 * complete before the launch that reads them, and a loop that changes shape falls back to reactive
 * paging without corrupting anything. */
#include "config.h"

#include <check.h>
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/interposetest.h"

#define L 8                             /* layers */
#define BUF (16 * ITEST_KIB)
#define NF (BUF / sizeof(float))
#define ITERS_MAX 200

/* The loop's persistent state: weights and an accumulator. */
static CUdeviceptr w[L], acc;

static void setup(const char *policy)
{
	simtest_start("SIMCUDA_MEM=64MiB", "SIMCUDA_GRANULARITY=4KiB", "SIMCUDA_NO_HOST_VMM=1",
		      "MEMVIRT_SLAB_THRESHOLD=4KiB", "MEMVIRT_PAGE_MIN=4KiB", "MEMVIRT_DAEMON=off",
		      /* 8 weights, the accumulator and 8 activations are 272 KiB: half of them fit. */
		      "MEMVIRT_BUDGET=160KiB", policy);
	for (int i = 0; i < L; i++) {
		CHK(cuMemAlloc(&w[i], BUF));
		CHK(simtest_fill(w[i], 0.5f * (float)i, NF, NULL));
	}
	CHK(cuMemAlloc(&acc, BUF));
	CHK(cuCtxSynchronize());
}

/* One iteration over `layers` layers: a[i] = (it + i + 1) + w[i] forward, then acc += a[i] in
 * reverse. Checks acc. */
static void iteration(int it, int layers)
{
	CUdeviceptr a[L];
	float want = 0;

	CHK(simtest_fill(acc, 0.0f, NF, NULL));
	for (int i = 0; i < layers; i++) {
		CHK(cuMemAlloc(&a[i], BUF));
		CHK(simtest_fill(a[i], (float)(it + i + 1), NF, NULL));
		CHK(simtest_axpy(a[i], w[i], 1.0f, NF, NULL));
	}
	for (int i = layers; i-- > 0;) {
		CHK(simtest_axpy(acc, a[i], 1.0f, NF, NULL));
		CHK(cuMemFree(a[i]));
		want += (float)(it + i + 1) + 0.5f * (float)i;
	}
	CHK(cuCtxSynchronize());
	simtest_expect_floats(acc, NF, want);
}

/* Lets the planner thread catch up with the loop between iterations (the loop's pace, not a
 * condition of the test). */
static void pause_briefly(void)
{
	struct timespec ts = {0, 5 * 1000 * 1000};
	nanosleep(&ts, NULL);
}

START_TEST(test_planned_paging_keeps_data)
{
	static const char *const policies[] = {"MEMVIRT_POLICY=vdnn-all", "MEMVIRT_POLICY=mmcnn"};
	struct memvirt_counters c;
	int it = 0;

	setup(policies[_i]);
	/* Until the plan has moved something and then for a few iterations more. */
	for (; it < ITERS_MAX && itest_counters().planned_outs == 0; it++) {
		iteration(it, L);
		pause_briefly();
	}
	for (int k = 0; k < 5; k++, it++)
		iteration(it, L);
	c = itest_counters();
	ck_assert_msg(c.planned_outs > 0, "%s: no planned page-out in %d iterations", policies[_i], it);
	ck_assert_msg(c.page_ins > 0, "nothing was paged back in");
	ck_assert_uint_le(c.late_ins, c.planned_ins);
	ck_assert_uint_eq(c.oom, 0);
	for (int i = 0; i < L; i++)
		simtest_expect_floats(w[i], NF, 0.5f * (float)i);
}
END_TEST

START_TEST(test_divergent_loop_falls_back)
{
	struct memvirt_counters c;
	uint64_t outs;
	int it = 0;

	setup("MEMVIRT_POLICY=mmcnn");
	for (; it < ITERS_MAX && itest_counters().planned_outs == 0; it++) {
		iteration(it, L);
		pause_briefly();
	}
	outs = itest_counters().planned_outs;
	ck_assert_msg(outs > 0, "no plan after %d iterations", it);
	/* The loop changes: fewer layers, then back. Every result stays exact. */
	for (int k = 0; k < 6; k++, it++)
		iteration(it, L - 3);
	c = itest_counters();
	ck_assert_msg(c.divergences >= 1, "the changed loop was not noticed");
	for (int k = 0; k < 6; k++, it++) {
		iteration(it, L);
		pause_briefly();
	}
	for (int i = 0; i < L; i++)
		simtest_expect_floats(w[i], NF, 0.5f * (float)i);
	ck_assert_uint_eq(itest_counters().oom, 0);
}
END_TEST

START_TEST(test_lru_plans_nothing)
{
	struct memvirt_counters c;

	setup("MEMVIRT_POLICY=lru");
	for (int it = 0; it < 10; it++)
		iteration(it, L);
	c = itest_counters();
	ck_assert_msg(c.page_outs > 0, "the budget did not make it page");
	ck_assert_uint_eq(c.planned_outs, 0);
	ck_assert_uint_eq(c.planned_ins, 0);
	ck_assert_uint_eq(c.divergences, 0);
}
END_TEST

static Suite *plan_suite(void)
{
	Suite *s = suite_create("interpose_plan");
	TCase *tc = simtest_tcase(s, "plan", 120);

	tcase_add_loop_test(tc, test_planned_paging_keeps_data, 0, 2);
	tcase_add_test(tc, test_divergent_loop_falls_back);
	tcase_add_test(tc, test_lru_plans_nothing);
	return s;
}

int main(int argc, char **argv)
{
	itest_main_begin(argc, argv);
	return simtest_run(plan_suite());
}
