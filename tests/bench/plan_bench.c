/* Planning time per built-in policy on a 10,000-launch iteration (a 3,333-layer synthetic network
 * with a budget at half its peak): the median of 20 plans each, in milliseconds. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "tests/unit/policytest.h"

#ifndef RUNS
#define RUNS 20
#endif

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

int main(void)
{
	static uint64_t fwd[PT_MAX_LAYERS], bwd[PT_MAX_LAYERS], act[PT_MAX_LAYERS];
	struct pt_net net = pt_net_layered(3333, 0, 4 * PT_MIB);
	struct mv_policy_params p;
	struct pt_gen g;
	struct mv_iter *it;
	struct mv_plan *pl;
	uint64_t t[RUNS], seed = 42, peak = 0, live;
	uint32_t i, k, r;
	int rc;

	for (i = 0; i < net.layers; i++) {
		fwd[i] = 20000 + pt_rand_below(&seed, 400000);
		bwd[i] = 2 * fwd[i];
		act[i] = (1 + pt_rand_below(&seed, 64)) * PT_MIB;
	}
	net.fwd = fwd;
	net.bwd = bwd;
	net.act = act;
	net.input_bytes = 64 * PT_MIB;
	net.mark = 1;
	pt_gen_init(&g, &net, 80 * PT_GIB);
	pt_gen_iterations(&g, 2);
	pt_gen_partial(&g, 0);
	it = pt_iter(&g, 10000);
	for (i = 0; i < it->nlaunch; i++) {
		live = 0;
		/* O(n * bufs), once, outside the timing. */
		for (k = 0; k < it->nbufs; k++) {
			uint32_t a = it->bufs[k].alloc_at == MV_TRACE_NONE ? 0 : it->bufs[k].alloc_at;
			uint32_t f = it->bufs[k].free_at == MV_TRACE_NONE ? it->nlaunch : it->bufs[k].free_at;

			if (i >= a && i < f)
				live += it->bufs[k].size;
		}
		if (live > peak)
			peak = live;
	}
	printf("iteration: %u launches, %u buffers, %u refs, peak %llu MiB, budget %llu MiB\n", it->nlaunch,
	       it->nbufs, it->nrefs, (unsigned long long)(peak / PT_MIB), (unsigned long long)(peak / 2 / PT_MIB));
	mv_policy_defaults(&p);
	p.budget = peak / 2;
	for (k = 0; mv_policies[k] != NULL; k++) {
		uint32_t nops = 0;

		rc = 0;
		for (r = 0; r < RUNS && rc == 0; r++) {
			uint64_t t0 = now_ns();

			rc = mv_policies[k]->plan(it, &p, NULL, &pl);
			t[r] = now_ns() - t0;
			if (rc == 0) {
				nops = pl->nops;
				mv_plan_free(pl);
			}
		}
		if (rc != 0) {
			printf("%-10s error %d\n", mv_policies[k]->name, rc);
			continue;
		}
		qsort(t, RUNS, sizeof(*t), cmp_u64);
		printf("%-10s median %7.2f ms  (min %.2f, max %.2f)  %u ops\n", mv_policies[k]->name,
		       (double)(t[RUNS / 2 - 1] + t[RUNS / 2]) / 2e6, (double)t[0] / 1e6, (double)t[RUNS - 1] / 1e6,
		       nops);
	}
	mv_iter_free(it);
	pt_gen_free(&g);
	return 0;
}
