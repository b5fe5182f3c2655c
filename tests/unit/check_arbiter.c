/* mvd_arbiter_divide(_groups): how one device's budget is split among its sessions and groups. */
#include <config.h>

#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/internal.h"

#define KIB 1024ull
#define GIB (1024ull * 1024 * 1024)
#define BIG UINT64_MAX

static uint64_t sum_of(const uint64_t *g, size_t n)
{
	uint64_t s = 0;
	size_t i;

	for (i = 0; i < n; i++)
		s += g[i];
	return s;
}

START_TEST(equal_weights)
{
	struct mvd_claim c[3] = {{BIG, 0, 1}, {BIG, 0, 1}, {BIG, 0, 1}};
	uint64_t g[3];

	mvd_arbiter_divide(12 * GIB, 3, c, g);
	ck_assert_uint_eq(g[0], 4 * GIB);
	ck_assert_uint_eq(g[1], 4 * GIB);
	ck_assert_uint_eq(g[2], 4 * GIB);
}
END_TEST

START_TEST(equal_weights_remainder)
{
	/* 10 bytes in three: the bytes the division leaves go to the first, none is lost. */
	struct mvd_claim c[3] = {{BIG, 0, 1}, {BIG, 0, 1}, {BIG, 0, 1}};
	uint64_t g[3];

	mvd_arbiter_divide(10, 3, c, g);
	ck_assert_uint_eq(g[0], 4);
	ck_assert_uint_eq(g[1], 3);
	ck_assert_uint_eq(g[2], 3);
	ck_assert_uint_eq(sum_of(g, 3), 10);
}
END_TEST

START_TEST(weights_two_to_one)
{
	struct mvd_claim c[2] = {{BIG, 0, 2}, {BIG, 0, 1}};
	uint64_t g[2];

	mvd_arbiter_divide(9 * GIB, 2, c, g);
	ck_assert_uint_eq(g[0], 6 * GIB);
	ck_assert_uint_eq(g[1], 3 * GIB);
}
END_TEST

START_TEST(mins_honored)
{
	/* 6 GiB to the first before anything is shared; the other 4 GiB half each. */
	struct mvd_claim c[2] = {{BIG, 6 * GIB, 1}, {BIG, 0, 1}};
	uint64_t g[2];

	mvd_arbiter_divide(10 * GIB, 2, c, g);
	ck_assert_uint_eq(g[0], 8 * GIB);
	ck_assert_uint_eq(g[1], 2 * GIB);
}
END_TEST

START_TEST(min_above_request)
{
	/* A minimum is never more than what the session asks for. */
	struct mvd_claim c[2] = {{2 * GIB, 8 * GIB, 1}, {BIG, 0, 1}};
	uint64_t g[2];

	mvd_arbiter_divide(10 * GIB, 2, c, g);
	ck_assert_uint_eq(g[0], 2 * GIB);
	ck_assert_uint_eq(g[1], 8 * GIB);
}
END_TEST

START_TEST(mins_exceed_budget)
{
	/* 12 + 4 GiB of minimums in 8 GiB: each gets half of its minimum, weights play no part. */
	struct mvd_claim c[3] = {{BIG, 12 * GIB, 1}, {BIG, 4 * GIB, 100}, {BIG, 0, 1000}};
	uint64_t g[3];

	mvd_arbiter_divide(8 * GIB, 3, c, g);
	ck_assert_uint_eq(g[0], 6 * GIB);
	ck_assert_uint_eq(g[1], 2 * GIB);
	ck_assert_uint_eq(g[2], 0);
}
END_TEST

START_TEST(mins_exactly_budget)
{
	struct mvd_claim c[2] = {{BIG, 6 * GIB, 1}, {BIG, 4 * GIB, 1}};
	uint64_t g[2];

	mvd_arbiter_divide(10 * GIB, 2, c, g);
	ck_assert_uint_eq(g[0], 6 * GIB);
	ck_assert_uint_eq(g[1], 4 * GIB);
}
END_TEST

START_TEST(request_caps_and_leftover_redistributed)
{
	/* A third of 100 would be 33; the first wants 10, and its 23 go to the other two. */
	struct mvd_claim c[3] = {{10, 0, 1}, {1000, 0, 1}, {1000, 0, 1}};
	uint64_t g[3];

	mvd_arbiter_divide(100, 3, c, g);
	ck_assert_uint_eq(g[0], 10);
	ck_assert_uint_eq(g[1], 45);
	ck_assert_uint_eq(g[2], 45);
	ck_assert_uint_eq(sum_of(g, 3), 100);
}
END_TEST

START_TEST(request_caps_cascade)
{
	/* Capping the first (20 of a 33 share) lifts the second's share to 40, above its 30:
	 * it is capped in the next round, and the third takes all the rest. */
	struct mvd_claim c[3] = {{20, 0, 1}, {30, 0, 1}, {BIG, 0, 1}};
	uint64_t g[3];

	mvd_arbiter_divide(100, 3, c, g);
	ck_assert_uint_eq(g[0], 20);
	ck_assert_uint_eq(g[1], 30);
	ck_assert_uint_eq(g[2], 50);
}
END_TEST

START_TEST(requests_all_fit)
{
	/* Room for everyone: each gets what it asked for and the rest stays ungranted. */
	struct mvd_claim c[2] = {{3 * GIB, 1 * GIB, 1}, {2 * GIB, 0, 5}};
	uint64_t g[2];

	mvd_arbiter_divide(16 * GIB, 2, c, g);
	ck_assert_uint_eq(g[0], 3 * GIB);
	ck_assert_uint_eq(g[1], 2 * GIB);
}
END_TEST

START_TEST(single_session)
{
	struct mvd_claim c = {20 * GIB, 0, 1};
	uint64_t g;

	mvd_arbiter_divide(16 * GIB, 1, &c, &g);
	ck_assert_uint_eq(g, 16 * GIB);
	c.request = 5 * GIB;
	mvd_arbiter_divide(16 * GIB, 1, &c, &g);
	ck_assert_uint_eq(g, 5 * GIB);
	c.min = 20 * GIB;
	c.request = 20 * GIB;
	mvd_arbiter_divide(16 * GIB, 1, &c, &g);
	ck_assert_uint_eq(g, 16 * GIB);
}
END_TEST

START_TEST(zero_sessions)
{
	uint64_t g = 12345;

	mvd_arbiter_divide(16 * GIB, 0, NULL, NULL);
	mvd_arbiter_divide(16 * GIB, 0, NULL, &g);
	ck_assert_uint_eq(g, 12345);
}
END_TEST

START_TEST(zero_budget)
{
	struct mvd_claim c[2] = {{BIG, 4 * GIB, 1}, {BIG, 0, 1}};
	uint64_t g[2];

	mvd_arbiter_divide(0, 2, c, g);
	ck_assert_uint_eq(g[0], 0);
	ck_assert_uint_eq(g[1], 0);
}
END_TEST

START_TEST(zero_weight_gets_only_its_min)
{
	struct mvd_claim c[2] = {{BIG, 1 * GIB, 0}, {BIG, 0, 1}};
	uint64_t g[2];

	mvd_arbiter_divide(10 * GIB, 2, c, g);
	ck_assert_uint_eq(g[0], 1 * GIB);
	ck_assert_uint_eq(g[1], 9 * GIB);
}
END_TEST

START_TEST(huge_values_do_not_overflow)
{
	struct mvd_claim c[3] = {{BIG, BIG, 1000}, {BIG, BIG, 1000}, {BIG, BIG / 2, 1}};
	uint64_t g[3];

	mvd_arbiter_divide(BIG, 3, c, g);
	ck_assert(g[0] <= BIG && g[1] <= BIG);
	ck_assert((unsigned __int128)g[0] + g[1] + g[2] <= BIG);
	ck_assert_uint_eq(g[0], g[1]);
	ck_assert(g[0] > g[2]);
}
END_TEST

/* xorshift64*: the same claims on every run and every machine. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

/* A size on one of several scales, so that budgets, requests and minimums are sometimes far apart,
 * sometimes close, sometimes zero and sometimes near the top of 64 bits. */
static uint64_t rng_size(void)
{
	switch (rng() % 6) {
	case 0:
		return 0;
	case 1:
		return rng() % 64;
	case 2:
		return rng() % (64 * KIB);
	case 3:
		return rng() % (80 * GIB);
	case 4:
		return (rng() % 80 + 1) * GIB;
	default:
		return rng() >> (rng() % 8);
	}
}

START_TEST(property_random_claims)
{
	struct mvd_claim c[16];
	uint64_t g[16], base[16], budget;
	unsigned __int128 total, mins;
	long double a, b;
	size_t n, i, j, open;
	int round;

	for (round = 0; round < 20000; round++) {
		n = 1 + rng() % 16;
		budget = rng_size();
		mins = 0;
		for (i = 0; i < n; i++) {
			c[i].request = rng_size();
			c[i].min = rng() % 3 == 0 ? rng_size() : 0;
			c[i].weight = (uint32_t)(rng() % 4 == 0 ? 1 : 1 + rng() % 1000);
			base[i] = c[i].min < c[i].request ? c[i].min : c[i].request;
			mins += base[i];
		}
		mvd_arbiter_divide(budget, n, c, g);

		total = 0;
		for (i = 0; i < n; i++) {
			ck_assert_msg(g[i] <= c[i].request, "round %d: grant %llu above request %llu",
				      round, (unsigned long long)g[i], (unsigned long long)c[i].request);
			total += g[i];
		}
		ck_assert_msg(total <= budget, "round %d: grants sum above the budget %llu", round,
			      (unsigned long long)budget);
		if (mins > budget)
			continue;

		/* Minimums that fit are given whole, and nothing is held back while anyone still
		 * wants more. */
		open = 0;
		for (i = 0; i < n; i++) {
			ck_assert_msg(g[i] >= base[i], "round %d: grant below its minimum", round);
			if (g[i] < c[i].request)
				open++;
		}
		if (open > 0)
			ck_assert_msg(total == budget, "round %d: %zu sessions want more but only part of "
				      "the budget is granted", round, open);

		/* Sessions still below their request share what is above their minimum in proportion
		 * to weight, up to a byte of rounding per round of the filling. */
		for (i = 0; i < n; i++) {
			if (g[i] >= c[i].request)
				continue;
			for (j = i + 1; j < n; j++) {
				if (g[j] >= c[j].request)
					continue;
				a = (long double)(g[i] - base[i]) / c[i].weight;
				b = (long double)(g[j] - base[j]) / c[j].weight;
				ck_assert_msg(fabsl(a - b) <= (long double)n + 2 + fabsl(a) * 1e-15L,
					      "round %d: per-weight shares %Lg and %Lg differ", round, a,
					      b);
			}
		}
	}
}
END_TEST

/* Two processes of one job (one uid, one token) asking for 6 GiB each share those 6 GiB, where
 * each alone would get all 6: a job's budget does not double with its processes. */
START_TEST(group_shares_its_budget)
{
	struct mvd_member c[2] = {{{6 * GIB, 0, 1}, 1000, "run-1"}, {{6 * GIB, 0, 1}, 1000, "run-1"}};
	uint64_t g[2];

	mvd_arbiter_divide_groups(80 * GIB, 2, c, g);
	ck_assert_uint_eq(g[0], 3 * GIB);
	ck_assert_uint_eq(g[1], 3 * GIB);
	/* Without the token, each its own budget, as before groups. */
	c[0].group = NULL;
	c[1].group = "";
	mvd_arbiter_divide_groups(80 * GIB, 2, c, g);
	ck_assert_uint_eq(g[0], 6 * GIB);
	ck_assert_uint_eq(g[1], 6 * GIB);
}
END_TEST

/* The group's budget is the least its members asked for, shared by weight; another job on the
 * device competes with the group as one claim. */
START_TEST(group_least_request_and_weights)
{
	struct mvd_member c[4] = {{{8 * GIB, 0, 2}, 1000, "slurm-7.0"}, {{BIG, 0, 1}, 1000, "other"},
				  {{12 * GIB, 0, 1}, 1000, "slurm-7.0"}, {{BIG, 0, 1}, 1000, "slurm-7.0"}};
	uint64_t g[4];

	mvd_arbiter_divide_groups(80 * GIB, 4, c, g);
	ck_assert_uint_eq(g[0] + g[2] + g[3], 8 * GIB);
	ck_assert_uint_eq(g[0], 4 * GIB);
	ck_assert_uint_eq(g[2], 2 * GIB);
	ck_assert_uint_eq(g[3], 2 * GIB);
	ck_assert_uint_eq(g[1], 72 * GIB);

	/* A tight device: the group (weight 4) and the other job (weight 1) split 10 GiB 8:2. */
	mvd_arbiter_divide_groups(10 * GIB, 4, c, g);
	ck_assert_uint_eq(g[0] + g[2] + g[3], 8 * GIB);
	ck_assert_uint_eq(g[1], 2 * GIB);
}
END_TEST

/* A token names a group only within one uid: another user sending the same token gets a budget
 * of its own and takes nothing from the group's. */
START_TEST(group_token_never_joins_uids)
{
	struct mvd_member c[3] = {{{6 * GIB, 0, 1}, 1000, "run-1"}, {{6 * GIB, 0, 1}, 1001, "run-1"},
				  {{6 * GIB, 0, 1}, 1000, "run-1"}};
	uint64_t g[3];

	mvd_arbiter_divide_groups(80 * GIB, 3, c, g);
	ck_assert_uint_eq(g[0], 3 * GIB);
	ck_assert_uint_eq(g[2], 3 * GIB);
	ck_assert_uint_eq(g[1], 6 * GIB);
	/* Nor does a user with a smaller budget shrink another's group. */
	c[1].claim.request = 1 * GIB;
	mvd_arbiter_divide_groups(80 * GIB, 3, c, g);
	ck_assert_uint_eq(g[0] + g[2], 6 * GIB);
	ck_assert_uint_eq(g[1], 1 * GIB);
}
END_TEST

/* Random claims in a few groups over two uids: every group's grants sum to at most its least
 * request, all of them to at most the budget. */
START_TEST(group_property_random)
{
	static const char *const tokens[] = {NULL, "a", "b", "c"};
	struct mvd_member c[12];
	uint64_t g[12], budget, sum, least[2][4], got[2][4];
	unsigned seed = 12345;

	for (int round = 0; round < 2000; round++) {
		size_t n = 1 + (size_t)(rand_r(&seed) % 12);

		budget = (uint64_t)(rand_r(&seed) % 64 + 1) * GIB;
		for (int u = 0; u < 2; u++)
			for (int t = 0; t < 4; t++)
				least[u][t] = BIG, got[u][t] = 0;
		for (size_t i = 0; i < n; i++) {
			c[i].claim.request = (uint64_t)(rand_r(&seed) % 32 + 1) * GIB;
			c[i].claim.min = rand_r(&seed) % 4 == 0 ? (uint64_t)(rand_r(&seed) % 8) * GIB : 0;
			c[i].claim.weight = (uint32_t)(rand_r(&seed) % 4);
			c[i].uid = 1000 + (uid_t)(rand_r(&seed) % 2);
			c[i].group = tokens[rand_r(&seed) % 4];
		}
		mvd_arbiter_divide_groups(budget, n, c, g);
		sum = 0;
		for (size_t i = 0; i < n; i++) {
			size_t u = c[i].uid - 1000, t = c[i].group == NULL ? 0 : (size_t)(c[i].group[0] - 'a' + 1);

			ck_assert_uint_le(g[i], c[i].claim.request);
			sum += g[i];
			if (t == 0)
				continue;
			if (c[i].claim.request < least[u][t])
				least[u][t] = c[i].claim.request;
			got[u][t] += g[i];
		}
		ck_assert_uint_le(sum, budget);
		for (int u = 0; u < 2; u++)
			for (int t = 1; t < 4; t++)
				ck_assert_uint_le(got[u][t], least[u][t]);
	}
}
END_TEST

/* ---- the node's host limit: claims that follow each pool's demand ---- */

#define MIB (1024ull * 1024)
#define CHUNK (256 * MIB)

/* A session's claim on the node's host limit, from its host_want, its pool's bytes and the pool
 * size a page-out waits for. */
static struct mvd_claim host_claim_need(uint64_t want, uint64_t pool, uint64_t need, uint32_t weight)
{
	struct mvd_session s;
	struct mvd_claim c;

	memset(&s, 0, sizeof(s));
	s.host_want = want;
	s.counters.host_pool_bytes = pool;
	s.counters.host_need_bytes = need;
	s.weight = weight;
	mvd_arbiter_host_claim(&s, &c);
	return c;
}

static struct mvd_claim host_claim(uint64_t want, uint64_t pool, uint32_t weight)
{
	return host_claim_need(want, pool, 0, weight);
}

START_TEST(host_claim_follows_demand)
{
	struct mvd_claim c;

	/* Two chunks beyond what the pool holds, which is its minimum. */
	c = host_claim(64 * GIB, 1 * GIB, 3);
	ck_assert_uint_eq(c.min, 1 * GIB);
	ck_assert_uint_eq(c.request, 1 * GIB + 2 * CHUNK);
	ck_assert_uint_eq(c.weight, 3);
	c = host_claim(64 * GIB, 0, 1);
	ck_assert_uint_eq(c.min, 0);
	ck_assert_uint_eq(c.request, 2 * CHUNK);
	/* Never beyond what the process would use on its own ... */
	c = host_claim(1 * GIB + 100 * MIB, 1 * GIB, 1);
	ck_assert_uint_eq(c.request, 1 * GIB + 100 * MIB);
	/* ... nor below what its pool holds already. */
	c = host_claim(1 * GIB, 2 * GIB, 1);
	ck_assert_uint_eq(c.min, 2 * GIB);
	ck_assert_uint_eq(c.request, 2 * GIB);
}
END_TEST

/* A page-out of a buffer larger than two chunks waits for a pool that size: the claim reaches it,
 * or the grant would never let the buffer out (784 MiB beyond a 512 MiB pool, as a ResNet-50 rank
 * at batch 64 asks). A need below the two chunks changes nothing, and want still bounds it. */
START_TEST(host_claim_reaches_need)
{
	struct mvd_claim c[2];
	uint64_t g[2];

	c[0] = host_claim_need(64 * GIB, 512 * MIB, 512 * MIB + 784 * MIB, 1);
	ck_assert_uint_eq(c[0].min, 512 * MIB);
	ck_assert_uint_eq(c[0].request, 512 * MIB + 784 * MIB);
	c[1] = host_claim_need(64 * GIB, 512 * MIB, 600 * MIB, 1);
	ck_assert_uint_eq(c[1].request, 512 * MIB + 2 * CHUNK);
	c[1] = host_claim_need(1 * GIB, 512 * MIB, 2 * GIB, 1);
	ck_assert_uint_eq(c[1].request, 1 * GIB);
	/* Divided with another process below the limit, it gets what it waits for. */
	c[1] = host_claim(64 * GIB, 512 * MIB, 1);
	mvd_arbiter_divide(16 * GIB, 2, c, g);
	ck_assert_uint_eq(g[0], 512 * MIB + 784 * MIB);
	ck_assert_uint_eq(g[1], 512 * MIB + 2 * CHUNK);
}
END_TEST

/* While the pools and their next two chunks fit, every process gets its whole request: the one that
 * pages heavily is never short because another is idle. */
START_TEST(host_division_below_limit)
{
	struct mvd_claim c[3] = {host_claim(64 * GIB, 0, 1), host_claim(64 * GIB, 9 * GIB, 1),
				 host_claim(64 * GIB, 1 * GIB, 5)};
	uint64_t g[3];

	mvd_arbiter_divide(16 * GIB, 3, c, g);
	ck_assert_uint_eq(g[0], 2 * CHUNK);
	ck_assert_uint_eq(g[1], 9 * GIB + 2 * CHUNK);
	ck_assert_uint_eq(g[2], 1 * GIB + 2 * CHUNK);
	ck_assert_uint_le(sum_of(g, 3), 16 * GIB);
}
END_TEST

/* Over the limit: each keeps its pool, and the rest is shared by weight. */
START_TEST(host_division_over_limit_keeps_pools)
{
	struct mvd_claim c[2] = {host_claim(64 * GIB, 6 * GIB, 1), host_claim(64 * GIB, 1 * GIB, 1)};
	uint64_t g[2];

	mvd_arbiter_divide(7 * GIB + 2 * CHUNK, 2, c, g);
	ck_assert_uint_eq(g[0], 6 * GIB + CHUNK);
	ck_assert_uint_eq(g[1], 1 * GIB + CHUNK);
	ck_assert_uint_eq(sum_of(g, 2), 7 * GIB + 2 * CHUNK);
	/* Exactly at the pools: nothing more for anyone, nothing taken back. */
	mvd_arbiter_divide(7 * GIB, 2, c, g);
	ck_assert_uint_eq(g[0], 6 * GIB);
	ck_assert_uint_eq(g[1], 1 * GIB);
}
END_TEST

static Suite *arbiter_suite(void)
{
	Suite *s = suite_create("arbiter");
	TCase *tc = tcase_create("divide");

	tcase_add_test(tc, equal_weights);
	tcase_add_test(tc, equal_weights_remainder);
	tcase_add_test(tc, weights_two_to_one);
	tcase_add_test(tc, mins_honored);
	tcase_add_test(tc, min_above_request);
	tcase_add_test(tc, mins_exceed_budget);
	tcase_add_test(tc, mins_exactly_budget);
	tcase_add_test(tc, request_caps_and_leftover_redistributed);
	tcase_add_test(tc, request_caps_cascade);
	tcase_add_test(tc, requests_all_fit);
	tcase_add_test(tc, single_session);
	tcase_add_test(tc, zero_sessions);
	tcase_add_test(tc, zero_budget);
	tcase_add_test(tc, zero_weight_gets_only_its_min);
	tcase_add_test(tc, huge_values_do_not_overflow);
	tcase_add_test(tc, property_random_claims);
	tcase_add_test(tc, group_shares_its_budget);
	tcase_add_test(tc, group_least_request_and_weights);
	tcase_add_test(tc, group_token_never_joins_uids);
	tcase_add_test(tc, group_property_random);
	tcase_add_test(tc, host_claim_follows_demand);
	tcase_add_test(tc, host_claim_reaches_need);
	tcase_add_test(tc, host_division_below_limit);
	tcase_add_test(tc, host_division_over_limit_keeps_pools);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(arbiter_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
