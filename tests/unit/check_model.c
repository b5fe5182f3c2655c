/* The time model: a hand-computed replay, the peak, the lower bound against random plans, feedback. */
#include <config.h>

#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policies/policy.h"
#include "tests/unit/policytest.h"

/* One byte per nanosecond each way, so copy times are sizes. */
static const struct mv_machine byte_per_ns = {1e9, 1e9, 5000};

/*
 * W alive throughout (100 bytes); X allocated before launch 0, freed after launch 2; Y allocated before
 * launch 1, freed before launch 2 (100 bytes each); each launch takes 100 ns. L0 names W, X; L1 names Y;
 * L2 names W, X. Iteration buffers by first appearance: X 0, W 1, Y 2.
 */
static struct mv_iter *three_launches(struct mv_trace **tp)
{
	struct mv_trace *t = mv_trace_new(0, 0);
	uint32_t f, w, x, y, r[2];
	struct mv_iter *it;

	PT_OK(mv_trace_add_func(t, "k", &f));
	PT_OK(mv_trace_add_alloc(t, 100, 1, 0, 0, &w));
	PT_OK(mv_trace_add_alloc(t, 100, 2, 0, 0, &x));
	r[0] = w;
	r[1] = x;
	PT_OK(mv_trace_add_launch(t, f, 0, 1, 100, r, 2));
	PT_OK(mv_trace_add_alloc(t, 100, 3, 0, 2, &y));
	PT_OK(mv_trace_add_launch(t, f, 0, 2, 100, &y, 1));
	PT_OK(mv_trace_add_free(t, y, 3));
	PT_OK(mv_trace_add_launch(t, f, 0, 3, 100, r, 2));
	PT_OK(mv_trace_add_free(t, x, 4));
	PT_OK(mv_iter_build(t, 1, t->nops - 1, 0, &it));
	ck_assert_uint_eq(it->nbufs, 3);
	ck_assert_uint_eq(it->bufs[0].trace_buf, x);
	ck_assert_uint_eq(it->bufs[1].trace_buf, w);
	ck_assert_uint_eq(it->bufs[2].trace_buf, y);
	ck_assert_uint_eq(it->bufs[2].free_at, 2);
	ck_assert_uint_eq(it->bufs[0].free_at, 3);
	*tp = t;
	return it;
}

/*
 * Budget 200, plan: W out after L0, in after L1 for L2. The second run, from F = 600 (the first run's
 * end): L0 runs 600-700 with X granted at 600; W's page-out runs 700-800. L1's Y waits for that room:
 * 800-900 (stall 100). W's page-in after L1 (issued at 800) finds no room coming and evicts Y, the
 * least recently used buffer L2 does not name: Y's page-out waits for L1, 900-1000, then W comes in
 * 1000-1100. L2 is due at 900 and starts at 1100 (stall 200, W late by 200) and ends at 1200.
 */
START_TEST(hand_computed)
{
	struct mv_trace *t;
	struct mv_iter *it = three_launches(&t);
	struct mv_plan *p = mv_plan_new(it);
	struct mv_feedback *fb = mv_feedback_new(it);
	struct mv_model_result r;
	uint64_t must = 0;

	PT_OK(mv_plan_add(p, MV_PLAN_IN, 1, 1, 2));
	PT_OK(mv_plan_add(p, MV_PLAN_OUT, 0, 1, 2));
	mv_plan_sort(p);
	ck_assert_uint_eq(p->ops[0].kind, MV_PLAN_OUT);
	ck_assert_int_eq(mv_model_run(it, p, 200, &byte_per_ns, &r, fb), 0);
	ck_assert_uint_eq(r.compute_ns, 300);
	ck_assert_uint_eq(r.step_ns, 600);
	ck_assert_uint_eq(r.stall_ns, 300);
	ck_assert_uint_eq(r.peak, 200);
	ck_assert_uint_eq(r.page_outs, 2);
	ck_assert_uint_eq(r.bytes_out, 200);
	ck_assert_uint_eq(r.page_ins, 1);
	ck_assert_uint_eq(r.bytes_in, 100);
	ck_assert_uint_eq(r.late, 1);
	ck_assert_uint_eq(r.faults, 0);
	ck_assert_int_eq(r.over_budget, 0);
	ck_assert_uint_eq(fb->late_ns[1], 200);
	ck_assert_uint_eq(fb->late_at[1], 2);
	ck_assert_uint_eq(fb->late_ns[0], 0);
	/* Lateness 200 is covered by the two launches before L2; the page-in moves two earlier. */
	ck_assert_uint_eq(mv_feedback_apply(fb, it), 1);
	ck_assert_uint_eq(fb->advance[1], 2);
	ck_assert_uint_eq(fb->late_ns[1], 0);

	/* At L1, 300 bytes are alive under 200: 100 must be out, W or X, each used before and after
	 * L1. Both were named by L0, so that 100 ns page-out lies between L0 and L1; and while L1 runs,
	 * Y and one of W and X fill the budget, so the other comes back between L1 and L2, another
	 * 100 ns: 300 of compute and 200 of gaps. The reactive run below reaches it. */
	ck_assert_uint_eq(mv_model_lower_bound(it, 200, &byte_per_ns, &must), 500);
	ck_assert_uint_eq(must, 100);

	/* Reactively, with no plan: Y's allocation at 100 evicts W (least recent), 100-200; L1 runs
	 * 200-300; L2 faults W back in, room from Y's free at 300, 300-400; L2 400-500. Second run the
	 * same from F = 500: step 400, stall 100 + 100, one fault. */
	ck_assert_int_eq(mv_model_run(it, NULL, 200, &byte_per_ns, &r, NULL), 0);
	ck_assert_uint_eq(r.step_ns, 500);
	ck_assert_uint_eq(r.stall_ns, 200);
	ck_assert_uint_eq(r.faults, 1);
	ck_assert_uint_eq(r.page_outs, 1);
	ck_assert_uint_eq(r.page_ins, 1);
	ck_assert_uint_eq(r.late, 0);

	/* Unlimited memory: nothing moves and nothing waits. */
	ck_assert_int_eq(mv_model_run(it, NULL, UINT64_MAX, &byte_per_ns, &r, NULL), 0);
	ck_assert_uint_eq(r.step_ns, 300);
	ck_assert_uint_eq(r.peak, 300);
	ck_assert_uint_eq(mv_model_peak(it), 300);
	/* 50 bytes hold no buffer at all: the job would fail, and no bound exists. */
	ck_assert_int_eq(mv_model_run(it, NULL, 50, &byte_per_ns, &r, NULL), 0);
	ck_assert_int_eq(r.over_budget, 1);
	ck_assert_uint_eq(mv_model_lower_bound(it, 50, &byte_per_ns, &must), UINT64_MAX);
	ck_assert_int_eq(mv_model_run(it, NULL, 50, &(struct mv_machine){0, 1e9, 0}, &r, NULL), -EINVAL);

	mv_feedback_free(fb);
	mv_plan_free(p);
	mv_iter_free(it);
	mv_trace_free(t);
}
END_TEST

/*
 * Budget 150 holds one of the 100-byte buffers: L0 and L2 name two. With host mapping the reactive
 * replay runs them with one left in host memory, read over the link. Second run, from F = 600: X's
 * allocation for L0 finds only W, which L0 names, to evict: W goes out 600-700, X is granted at 700,
 * and L0 reads W where it is, 700-800 (its 100 bytes take 100 ns over the link, as long as its
 * work). Y's allocation evicts X 800-900; L1 900-1000. L2 faults W in (room from Y's free at 1000),
 * 1000-1100, and finds no room for X, which it reads where it is: 1100-1200. Step 600, stall 300.
 * Without host mapping the job cannot keep the budget.
 */
START_TEST(host_mapped_reads_over_the_link)
{
	struct mv_trace *t;
	struct mv_iter *it = three_launches(&t);
	struct mv_machine m = byte_per_ns;
	struct mv_model_result r;

	m.host_mapped = 1;
	/* Nothing is never paged: with host mapping any budget will do. */
	ck_assert_uint_eq(mv_model_min_budget(it), 200);
	ck_assert_uint_eq(mv_model_min_budget_mapped(it), 0);
	ck_assert_int_eq(mv_model_run(it, NULL, 150, &m, &r, NULL), 0);
	ck_assert_int_eq(r.over_budget, 0);
	ck_assert_uint_eq(r.step_ns, 600);
	ck_assert_uint_eq(r.stall_ns, 300);
	ck_assert_uint_eq(r.host_runs, 2);
	ck_assert_uint_eq(r.host_bytes, 200);
	ck_assert_uint_eq(r.faults, 1);
	ck_assert_uint_eq(r.page_outs, 2);
	ck_assert_uint_eq(r.page_ins, 1);
	ck_assert_uint_eq(r.peak, 100);
	/* A link ten times slower: each run over it takes 1000 ns, not its work's 100. */
	m.h2d_bps = 1e8;
	ck_assert_int_eq(mv_model_run(it, NULL, 150, &m, &r, NULL), 0);
	ck_assert_int_eq(r.over_budget, 0);
	ck_assert_uint_ge(r.step_ns, 2 * 1000 + 100);
	/* Where the budget holds every launch, host mapping changes nothing. */
	m = byte_per_ns;
	m.host_mapped = 1;
	ck_assert_int_eq(mv_model_run(it, NULL, 200, &m, &r, NULL), 0);
	ck_assert_uint_eq(r.step_ns, 500);
	ck_assert_uint_eq(r.host_runs, 0);

	m.host_mapped = 0;
	ck_assert_int_eq(mv_model_run(it, NULL, 150, &m, &r, NULL), 0);
	ck_assert_int_eq(r.over_budget, 1);
	ck_assert_uint_eq(r.host_runs, 0);
	mv_iter_free(it);
	mv_trace_free(t);
}
END_TEST

/* The chunk bound alone. */
static uint64_t chunk_bound(const struct mv_iter *it, uint64_t budget, const struct mv_machine *m, uint64_t chunk)
{
	uint64_t cb = 0;

	mv_model_bounds(it, budget, m, chunk, NULL, &cb);
	return cb;
}

/*
 * Two 100-byte buffers alive throughout, A and B, in a budget of 100; four 100 ns launches naming A,
 * B, A, B. Before each launch the other buffer must leave and this one come back. The page-in needs
 * the room the page-out gives back, which whole-buffer copies release only when the page-out
 * completes: every gap is at least 100 + 100 ns, not max(100, 100).
 */
START_TEST(whole_buffer_gaps)
{
	struct mv_trace *t = mv_trace_new(0, 0);
	uint32_t f, ab[2], k;
	struct mv_iter *it;
	struct mv_model_result r;

	PT_OK(mv_trace_add_func(t, "k", &f));
	PT_OK(mv_trace_add_alloc(t, 100, 1, 0, 0, &ab[0]));
	PT_OK(mv_trace_add_alloc(t, 100, 2, 0, 0, &ab[1]));
	for (k = 0; k < 4; k++)
		PT_OK(mv_trace_add_launch(t, f, 0, 1 + k, 100, &ab[k % 2], 1));
	PT_OK(mv_iter_build(t, 2, 4, 0, &it));
	ck_assert_uint_eq(it->nlaunch, 4);
	/* 400 of compute and three gaps of 200; in pieces of 10 bytes, each gap is 10 + 100. */
	ck_assert_uint_eq(mv_model_lower_bound(it, 100, &byte_per_ns, NULL), 1000);
	ck_assert_uint_eq(chunk_bound(it, 100, &byte_per_ns, 10), 730);
	/* Pieces as large as the buffers are whole buffers. */
	ck_assert_uint_eq(chunk_bound(it, 100, &byte_per_ns, 100), 1000);
	/* The model swaps reactively: 200 ns before every launch, the first one's included. */
	ck_assert_int_eq(mv_model_run(it, NULL, 100, &byte_per_ns, &r, NULL), 0);
	ck_assert_uint_eq(r.step_ns, 1200);
	/* With room for both nothing moves, and both bounds are the compute time. */
	ck_assert_uint_eq(mv_model_lower_bound(it, 200, &byte_per_ns, NULL), 400);
	ck_assert_uint_eq(chunk_bound(it, 200, &byte_per_ns, 10), 400);
	mv_iter_free(it);
	mv_trace_free(t);
}
END_TEST

/*
 * X and Y, 100 bytes each and alive throughout, in a budget of 100; launches of 100, 100, 10, 100 and
 * 100 ns naming X, X, nothing, Y, Y. At L3, X must be off: it cannot start leaving before its last
 * use, L1, ends at 200 ns, so L3 starts no earlier than 300 ns, and 200 ns of compute follow: 500 ns.
 * Without release times the bound sees only the 410 ns of compute.
 */
START_TEST(release_times)
{
	static const uint64_t dur[5] = {100, 100, 10, 100, 100};
	struct mv_trace *t = mv_trace_new(0, 0);
	uint32_t f, xy[2], k;
	struct mv_iter *it;
	struct mv_model_result r;

	PT_OK(mv_trace_add_func(t, "k", &f));
	PT_OK(mv_trace_add_alloc(t, 100, 1, 0, 0, &xy[0]));
	PT_OK(mv_trace_add_alloc(t, 100, 2, 0, 0, &xy[1]));
	for (k = 0; k < 5; k++)
		PT_OK(mv_trace_add_launch(t, f, 0, 1 + k, dur[k], k == 2 ? NULL : &xy[k / 3], k == 2 ? 0 : 1));
	PT_OK(mv_iter_build(t, 2, 5, 0, &it));
	ck_assert_uint_eq(it->nlaunch, 5);
	ck_assert_uint_eq(mv_model_lower_bound(it, 100, &byte_per_ns, NULL), 500);
	ck_assert_uint_eq(chunk_bound(it, 100, &byte_per_ns, 10), 500);
	ck_assert_int_eq(mv_model_run(it, NULL, 100, &byte_per_ns, &r, NULL), 0);
	ck_assert_uint_ge(r.step_ns, 500);
	mv_iter_free(it);
	mv_trace_free(t);
}
END_TEST

/* A random layered or LSTM-like network, with random sizes, durations and pins. */
static void random_gen(struct pt_gen *g, uint64_t *seed, uint64_t *act, uint64_t *fwd, uint64_t *bwd)
{
	struct pt_net net;
	uint32_t L = 2 + pt_rand_below(seed, 12), i;

	for (i = 0; i < L; i++) {
		act[i] = PT_MIB * (1 + pt_rand_below(seed, 64));
		fwd[i] = 1000 * (1 + pt_rand_below(seed, 2000));
		bwd[i] = 1000 * (1 + pt_rand_below(seed, 4000));
	}
	net = pt_rand_below(seed, 4) == 0 ? pt_net_lstm(L, act[0], PT_MIB * pt_rand_below(seed, 32))
					 : pt_net_layered(L, act[0], PT_MIB * pt_rand_below(seed, 32));
	if (!net.lstm) {
		net.act = act;
		net.fwd = fwd;
		net.bwd = bwd;
	}
	net.same_funcs = pt_rand_below(seed, 2);
	net.pin_weights = pt_rand_below(seed, 5) == 0;
	net.input_bytes = PT_MIB * (1 + pt_rand_below(seed, 16));
	pt_gen_init(g, &net, 80 * PT_GIB);
	pt_gen_iterations(g, 3);
}

static struct mv_plan *random_plan(const struct mv_iter *it, uint64_t *seed)
{
	struct mv_plan *p = mv_plan_new(it);
	uint32_t n = pt_rand_below(seed, 3 * it->nbufs + 1), i;

	for (i = 0; i < n; i++) {
		uint32_t b = pt_rand_below(seed, it->nbufs);
		uint32_t at = pt_rand_below(seed, it->nlaunch + 1);
		uint32_t need = pt_rand_below(seed, it->nlaunch);

		if (at == it->nlaunch)
			PT_OK(mv_plan_add(p, MV_PLAN_IN, MV_TRACE_NONE, b, need));
		else
			PT_OK(mv_plan_add(p, pt_rand_below(seed, 2) ? MV_PLAN_IN : MV_PLAN_OUT, at, b, need));
	}
	mv_plan_sort(p);
	return p;
}

/* With host mapping, a never-paged buffer allocated for a launch takes its room from that launch's
 * own paged buffer A, which the launch then reads over the link, and a buffer bigger than the
 * budget starts in host memory: budget 100, A 60 alive throughout, P 50 never paged for L1, B 150
 * for L2. Neither goes over the budget; without host mapping both do. */
START_TEST(host_mapped_allocations)
{
	struct mv_trace *t = mv_trace_new(0, 0);
	struct mv_machine m = byte_per_ns;
	struct mv_model_result r;
	struct mv_iter *it;
	uint32_t f, a, p, big, refs[2];

	PT_OK(mv_trace_add_func(t, "k", &f));
	PT_OK(mv_trace_add_alloc(t, 60, 1, 0, 0, &a));
	PT_OK(mv_trace_add_launch(t, f, 0, 1, 100, &a, 1));
	PT_OK(mv_trace_add_alloc(t, 50, 2, MV_TBUF_PINNED, 2, &p));
	refs[0] = a;
	refs[1] = p;
	PT_OK(mv_trace_add_launch(t, f, 0, 3, 100, refs, 2));
	PT_OK(mv_trace_add_free(t, p, 4));
	PT_OK(mv_trace_add_alloc(t, 150, 3, 0, 5, &big));
	PT_OK(mv_trace_add_launch(t, f, 0, 6, 100, &big, 1));
	PT_OK(mv_trace_add_free(t, big, 7));
	PT_OK(mv_iter_build(t, 1, t->nops - 1, 0, &it));
	ck_assert_uint_eq(mv_model_min_budget_mapped(it), 50);
	m.host_mapped = 1;
	ck_assert_int_eq(mv_model_run(it, NULL, 100, &m, &r, NULL), 0);
	ck_assert_int_eq(r.over_budget, 0);
	ck_assert_uint_le(r.peak, 100);
	ck_assert_uint_eq(r.host_runs, 2);
	ck_assert_uint_eq(r.host_bytes, 60 + 150);
	m.host_mapped = 0;
	ck_assert_int_eq(mv_model_run(it, NULL, 100, &m, &r, NULL), 0);
	ck_assert_int_eq(r.over_budget, 1);
	mv_iter_free(it);
	mv_trace_free(t);
}
END_TEST

/* The device bytes held over a reported run, from the observer's changes. */
struct held_log {
	uint64_t t0, held0;
	size_t n, cap;
	struct { uint64_t t; int64_t d; } *ev;
};

static void held_begin(void *ctx, uint64_t t0, uint64_t held)
{
	struct held_log *h = ctx;

	h->t0 = t0;
	h->held0 = held;
	h->n = 0;
}

static void held_change(void *ctx, uint64_t t, int64_t d)
{
	struct held_log *h = ctx;

	if (h->n == h->cap) {
		h->cap = h->cap ? 2 * h->cap : 256;
		h->ev = realloc(h->ev, h->cap * sizeof(*h->ev));
		ck_assert_ptr_nonnull(h->ev);
	}
	h->ev[h->n].t = t;
	h->ev[h->n++].d = d;
}

/* Releases before grants at the same moment. */
static int held_cmp(const void *a, const void *b)
{
	const struct { uint64_t t; int64_t d; } *x = a, *y = b;

	if (x->t != y->t)
		return x->t < y->t ? -1 : 1;
	return (x->d > y->d) - (x->d < y->d);
}

static uint64_t held_max(struct held_log *h)
{
	int64_t held = (int64_t)h->held0, most = held;

	qsort(h->ev, h->n, sizeof(*h->ev), held_cmp);
	for (size_t i = 0; i < h->n; i++) {
		held += h->ev[i].d;
		if (h->ev[i].t >= h->t0 && held > most)
			most = held;
	}
	return (uint64_t)most;
}

/* With host mapping, below what one launch names, the budget still holds at every moment: a
 * fault-in left on the host does not let a later grant use bytes before they are freed. */
START_TEST(host_mapped_keeps_the_budget_in_time)
{
	uint64_t seed = 0x51ed2701a3b4c5d7ull, act[16], fwd[16], bwd[16];
	struct held_log h = {0};
	struct mv_model_observer obs = {.ctx = &h, .begin = held_begin, .held = held_change};
	uint32_t cases, linked = 0;

	for (cases = 0; cases < 300; cases++) {
		struct pt_gen g;
		struct mv_iter *it;
		struct mv_machine m = {55e9, 55e9, 5000, 1};
		struct mv_model_result r;
		struct mv_plan *p = NULL;
		uint64_t need, budget;

		random_gen(&g, &seed, act, fwd, bwd);
		it = pt_iter(&g, 5000);
		need = mv_model_min_budget(it);
		budget = need / 5 + pt_rand(&seed) % need;
		if (cases % 2) {
			struct mv_policy_params pp;

			mv_policy_defaults(&pp);
			pp.budget = budget;
			pp.machine = m;
			ck_assert_int_eq(mv_policy_mmcnn.plan(it, &pp, NULL, &p), 0);
		}
		ck_assert_int_eq(mv_model_observe(it, p, budget, &m, &r, NULL, &obs), 0);
		if (!r.over_budget) {
			ck_assert_msg(held_max(&h) <= budget, "case %u: %llu bytes held at once under %llu", cases,
				      (unsigned long long)held_max(&h), (unsigned long long)budget);
			ck_assert_uint_le(r.peak, budget);
			linked += r.host_runs > 0;
		}
		mv_plan_free(p);
		mv_iter_free(it);
		pt_gen_free(&g);
	}
	/* Most cases are below one launch's need, and run some of it over the link. */
	ck_assert_uint_ge(linked, 100);
	free(h.ev);
}
END_TEST

/* No plan, however chosen, beats the lower bound; step = compute + stall without host mapping. */
START_TEST(lower_bound_holds_for_random_plans)
{
	uint64_t seed = 0x9e3779b97f4a7c15ull, act[16], fwd[16], bwd[16];
	uint32_t cases, checked = 0, tight = 0;

	for (cases = 0; cases < 400; cases++) {
		struct pt_gen g;
		struct mv_iter *it;
		uint64_t peak, budget, lb, must;
		struct mv_machine m;
		uint32_t j;

		random_gen(&g, &seed, act, fwd, bwd);
		it = pt_iter(&g, 5000);
		peak = mv_model_peak(it);
		budget = peak / 4 + pt_rand(&seed) % peak;
		m.h2d_bps = 1e9 * (5 + pt_rand_below(&seed, 60));
		m.d2h_bps = 1e9 * (5 + pt_rand_below(&seed, 60));
		m.launch_ns = 5000;
		/* Without host mapping a launch bigger than the budget goes over it, which the bound
		 * knows; with it, the step would also hold link time. */
		m.host_mapped = 0;
		lb = mv_model_lower_bound(it, budget, &m, &must);
		/* Copies in pieces can only do better than whole buffers. */
		ck_assert_uint_le(chunk_bound(it, budget, &m, MV_MODEL_CHUNK), lb);
		for (j = 0; j < 4 + 5; j++) {
			struct mv_plan *p = NULL;
			struct mv_model_result r;

			/* No plan, random plans, and the built-in policies' plans, which come close to it. */
			if (j >= 1 && j < 4) {
				p = random_plan(it, &seed);
			} else if (j >= 4) {
				struct mv_policy_params pp;

				mv_policy_defaults(&pp);
				pp.budget = budget;
				pp.machine = m;
				ck_assert_int_eq(mv_policies[j - 4]->plan(it, &pp, NULL, &p), 0);
			}
			ck_assert_int_eq(mv_model_run(it, p, budget, &m, &r, NULL), 0);
			ck_assert_uint_eq(r.step_ns, r.compute_ns + r.stall_ns);
			if (!r.over_budget) {
				ck_assert_msg(lb <= r.step_ns, "case %u plan %u: bound %llu above the step %llu", cases, j,
					      (unsigned long long)lb, (unsigned long long)r.step_ns);
				ck_assert_uint_le(r.peak, budget);
				checked++;
				tight += lb > r.compute_ns;
			} else {
				ck_assert_uint_eq(lb, UINT64_MAX);
			}
			mv_plan_free(p);
		}
		mv_iter_free(it);
		pt_gen_free(&g);
	}
	/* The property was exercised, and the bound is more than the compute time in many cases. */
	ck_assert_uint_gt(checked, 1000);
	ck_assert_uint_gt(tight, 100);
}
END_TEST

/* With unlimited memory and no plan the model's peak is the iteration's peak and nothing waits. */
START_TEST(unlimited_peak_matches)
{
	uint64_t seed = 42, act[16], fwd[16], bwd[16];
	uint32_t cases;

	for (cases = 0; cases < 100; cases++) {
		struct pt_gen g;
		struct mv_iter *it;
		struct mv_model_result r;

		random_gen(&g, &seed, act, fwd, bwd);
		it = pt_iter(&g, 5000);
		ck_assert_int_eq(mv_model_run(it, NULL, UINT64_MAX, &byte_per_ns, &r, NULL), 0);
		ck_assert_uint_eq(r.peak, mv_model_peak(it));
		ck_assert_uint_eq(r.step_ns, r.compute_ns);
		ck_assert_uint_eq(r.stall_ns, 0);
		ck_assert_uint_eq(r.page_ins + r.page_outs + r.faults + r.late, 0);
		ck_assert_uint_eq(mv_model_lower_bound(it, UINT64_MAX, &byte_per_ns, NULL), r.compute_ns);
		/* At exactly the peak nothing needs to move either. */
		ck_assert_int_eq(mv_model_run(it, NULL, r.peak, &byte_per_ns, &r, NULL), 0);
		ck_assert_uint_eq(r.page_outs, 0);
		ck_assert_uint_eq(r.step_ns, r.compute_ns);
		mv_iter_free(it);
		pt_gen_free(&g);
	}
}
END_TEST

/* The layered network's peak by hand: weights, gradients and input, plus every activation at the loss. */
START_TEST(layered_peak)
{
	struct pt_net net = pt_net_layered(5, 10 * PT_MIB, 3 * PT_MIB);
	struct pt_gen g;
	struct mv_iter *it;

	pt_gen_init(&g, &net, PT_GIB);
	pt_gen_iterations(&g, 2);
	it = pt_iter(&g, 0);
	ck_assert_uint_eq(mv_model_peak(it), 10 * PT_MIB + 2 * 5 * 3 * PT_MIB + 5 * 10 * PT_MIB);
	mv_iter_free(it);
	pt_gen_free(&g);
}
END_TEST

/* A vDNN-like plan: each activation out after its forward uses, in `1 + advance` launches before its
 * first backward use. */
static struct mv_plan *offload_plan(const struct mv_iter *it, uint32_t L, const struct mv_feedback *fb)
{
	struct mv_plan *p = mv_plan_new(it);
	uint32_t b;

	for (b = 0; b < it->nbufs; b++) {
		const struct mv_iter_buf *ib = &it->bufs[b];
		uint32_t i = ib->alloc_at, out_at, need, adv, at;

		/* Every other activation, and none of the last few, so that the link keeps up. */
		if (ib->alloc_at == MV_TRACE_NONE || ib->site < 0x100 || ib->site >= 0x200 || i % 2 != 0 ||
		    i + 5 > L)
			continue;
		out_at = i + 1 < L ? PT_FWD(i + 1) : PT_LOSS(L);
		need = i + 1 < L ? PT_BWD(L, i + 1) : PT_BWD(L, i);
		if (need <= out_at + 1)
			continue;
		adv = 1 + (fb != NULL ? fb->advance[b] : 0);
		at = need - out_at - 1 > adv ? need - adv : out_at + 1;
		PT_OK(mv_plan_add(p, MV_PLAN_OUT, out_at, b, need));
		PT_OK(mv_plan_add(p, MV_PLAN_IN, at, b, need));
	}
	mv_plan_sort(p);
	return p;
}

#define BUDGET (1100 * PT_MIB)
START_TEST(feedback_converges)
{
	struct pt_net net = pt_net_layered(12, 100 * PT_MIB, PT_MIB);
	struct mv_machine m = {55e9, 55e9, 5000};
	struct pt_gen g;
	struct mv_iter *it;
	struct mv_feedback *fb;
	struct mv_model_result first, r;
	uint32_t round, moved;

	net.bwd_ns = 1200000; /* a page-in takes ~1.9 ms: one backward launch ahead is not enough */
	pt_gen_init(&g, &net, 80 * PT_GIB);
	pt_gen_iterations(&g, 2);
	it = pt_iter(&g, 0);
	fb = mv_feedback_new(it);
	for (round = 0; round < 20; round++) {
		struct mv_plan *p = offload_plan(it, net.layers, fb);

		ck_assert_int_eq(mv_model_run(it, p, BUDGET, &m, &r, fb), 0);
		mv_plan_free(p);
		if (round == 0)
			first = r;
		if (r.late == 0)
			break;
		moved = mv_feedback_apply(fb, it);
		ck_assert_uint_eq(moved, r.late);
	}
	ck_assert_uint_gt(first.late, 3);
	ck_assert_uint_eq(r.late, 0);
	ck_assert_uint_eq(r.faults, 0);
	ck_assert_uint_lt(round, 20);
	ck_assert_uint_lt(r.stall_ns, first.stall_ns);
	ck_assert_uint_le(r.peak, BUDGET);
	mv_feedback_free(fb);
	mv_iter_free(it);
	pt_gen_free(&g);
}
END_TEST

START_TEST(plan_checks)
{
	struct mv_iter it;
	struct mv_plan *p;

	memset(&it, 0, sizeof it);
	it.nlaunch = 3;
	it.fingerprint = 99;
	p = mv_plan_new(&it);
	ck_assert_uint_eq(p->nlaunch, 3);
	ck_assert_uint_eq(p->fingerprint, 99);
	ck_assert_int_eq(mv_plan_add(p, MV_PLAN_OUT, MV_TRACE_NONE, 0, 1), -EINVAL);
	ck_assert_int_eq(mv_plan_add(p, MV_PLAN_IN, 3, 0, 1), -EINVAL);
	ck_assert_int_eq(mv_plan_add(p, 7, 0, 0, 1), -EINVAL);
	PT_OK(mv_plan_add(p, MV_PLAN_IN, 2, 4, 0));
	PT_OK(mv_plan_add(p, MV_PLAN_IN, 1, 5, 2));
	PT_OK(mv_plan_add(p, MV_PLAN_OUT, 1, 6, 2));
	PT_OK(mv_plan_add(p, MV_PLAN_IN, MV_TRACE_NONE, 7, 0));
	PT_OK(mv_plan_add(p, MV_PLAN_IN, 1, 3, 2));
	mv_plan_sort(p);
	ck_assert_uint_eq(p->nops, 5);
	ck_assert_uint_eq(p->ops[0].buf, 7);
	ck_assert_uint_eq(p->ops[1].buf, 6);
	ck_assert_uint_eq(p->ops[2].buf, 3);
	ck_assert_uint_eq(p->ops[3].buf, 5);
	ck_assert_uint_eq(p->ops[4].buf, 4);
	mv_plan_free(p);
}
END_TEST

START_TEST(policy_table)
{
	struct mv_policy_params d;
	const char *names[] = {"lru", "vdnn-all", "vdnn-conv", "mmcnn", "auto"};
	size_t i;

	for (i = 0; i < 5; i++) {
		ck_assert_ptr_nonnull(mv_policies[i]);
		ck_assert_str_eq(mv_policies[i]->name, names[i]);
		ck_assert_ptr_eq(mv_policy_find(names[i]), mv_policies[i]);
	}
	ck_assert_ptr_null(mv_policies[5]);
	ck_assert_ptr_null(mv_policy_find("belady"));
	mv_policy_defaults(&d);
	ck_assert_uint_eq(d.min_size, PT_MIB);
	ck_assert_uint_eq(d.lookahead, 1);
	ck_assert(d.heavy_fraction == 0.5);
	ck_assert(d.headroom == 0.02);
	ck_assert(d.machine.h2d_bps == 55e9 && d.machine.d2h_bps == 55e9);
	ck_assert_uint_eq(d.machine.launch_ns, 5000);
}
END_TEST

/* The least budget counts a buffer a launch names twice once (mv_iter_build never lists one twice,
 * but the contract does not forbid it), and a never-paged buffer whether a launch names it or not.
 * P is never paged (50 bytes), A 400, B 30; L0 names A, A and B; L1 names P and B: the tightest
 * launch is L0, with 50 + 400 + 30 bytes. */
START_TEST(min_budget_counts_once)
{
	struct mv_iter_buf bufs[3] = {
		{.size = 50, .flags = MV_IBUF_PINNED, .alloc_at = MV_TRACE_NONE, .free_at = MV_TRACE_NONE},
		{.size = 400, .alloc_at = MV_TRACE_NONE, .free_at = MV_TRACE_NONE},
		{.size = 30, .alloc_at = MV_TRACE_NONE, .free_at = MV_TRACE_NONE},
	};
	struct mv_iter_launch launch[2] = {{.nrefs = 3, .ref0 = 0}, {.nrefs = 2, .ref0 = 3}};
	uint32_t refs[5] = {1, 1, 2, 0, 2};
	struct mv_iter it = {.nlaunch = 2, .launch = launch, .nbufs = 3, .bufs = bufs, .refs = refs,
			     .nrefs = 5};

	ck_assert_uint_eq(mv_model_min_budget(&it), 480);
	/* Without A: L1's P and B, 80 bytes, is the tightest. */
	bufs[1].size = 0;
	ck_assert_uint_eq(mv_model_min_budget(&it), 80);
}
END_TEST

/* A never-paged buffer counts only while it is alive: Q (1000 bytes, never paged) is allocated after
 * L0 and freed after L1, so L1, which names P and Q, is the tightest launch with 50 + 1000 bytes; L0
 * and L2, which name A (400), need 450 each. */
START_TEST(min_budget_pinned_lifetime)
{
	struct mv_trace *t = mv_trace_new(0, 0);
	struct mv_model_result r;
	struct mv_iter *it;
	uint32_t f, p, q, a, refs[2];

	PT_OK(mv_trace_add_func(t, "k", &f));
	PT_OK(mv_trace_add_alloc(t, 50, 1, MV_TBUF_PINNED, 0, &p));
	PT_OK(mv_trace_add_alloc(t, 400, 2, 0, 0, &a));
	PT_OK(mv_trace_add_launch(t, f, 0, 1, 100, &a, 1));
	PT_OK(mv_trace_add_alloc(t, 1000, 3, MV_TBUF_PINNED, 2, &q));
	refs[0] = p;
	refs[1] = q;
	PT_OK(mv_trace_add_launch(t, f, 0, 3, 100, refs, 2));
	PT_OK(mv_trace_add_free(t, q, 4));
	PT_OK(mv_trace_add_launch(t, f, 0, 5, 100, &a, 1));
	PT_OK(mv_iter_build(t, 0, t->nops, 0, &it));
	ck_assert_uint_eq(mv_model_min_budget(it), 1050);
	/* It is the floor the model finds too: reactive paging keeps it, and not a byte less. */
	ck_assert_int_eq(mv_model_run(it, NULL, 1050, &byte_per_ns, &r, NULL), 0);
	ck_assert_int_eq(r.over_budget, 0);
	ck_assert_int_eq(mv_model_run(it, NULL, 1049, &byte_per_ns, &r, NULL), 0);
	ck_assert_int_eq(r.over_budget, 1);
	/* Never-paged buffers cannot be left in host memory: host mapping keeps that floor. */
	ck_assert_uint_eq(mv_model_min_budget_mapped(it), 1050);
	ck_assert_int_eq(mv_model_run(it, NULL, 1049, &(struct mv_machine){1e9, 1e9, 5000, 1}, &r, NULL), 0);
	ck_assert_int_eq(r.over_budget, 1);
	mv_iter_free(it);
	mv_trace_free(t);
}
END_TEST

/* ---- the unified-memory baseline (uvm.c) ---- */

/* Blocks of 2 bytes, each fault 10 ns besides its copy at one byte per ns. */
static const struct mv_uvm two_byte_blocks = {2, 10};

/*
 * A and B (4 bytes each) alive throughout; C (2 bytes) allocated before L0 and freed after it. L0
 * names A and C, L1 names B; 100 ns each.
 */
static struct mv_iter *uvm_iteration(struct mv_trace **tp)
{
	struct mv_trace *t = mv_trace_new(0, 0);
	uint32_t f, a, b, c, r[2], first;
	struct mv_iter *it;

	PT_OK(mv_trace_add_func(t, "k", &f));
	PT_OK(mv_trace_add_alloc(t, 4, 1, 0, 0, &a));
	PT_OK(mv_trace_add_alloc(t, 4, 2, 0, 0, &b));
	first = t->nops;
	PT_OK(mv_trace_add_alloc(t, 2, 3, 0, 1, &c));
	r[0] = a;
	r[1] = c;
	PT_OK(mv_trace_add_launch(t, f, 0, 1, 100, r, 2));
	PT_OK(mv_trace_add_free(t, c, 2));
	PT_OK(mv_trace_add_launch(t, f, 0, 3, 100, &b, 1));
	PT_OK(mv_iter_build(t, first, t->nops - first, 0, &it));
	ck_assert_uint_eq(it->nlaunch, 2);
	ck_assert_uint_eq(it->nbufs, 3);
	*tp = t;
	return it;
}

/*
 * Budget 6 bytes. The first pass leaves a1, b0, b1 resident (least recently used first). L0: a0
 * evicts a1 (out 2), faults (10) and comes in (2); a1 evicts b0 (2), faults, comes in (2); c0, a
 * first touch, evicts b1 (2) and takes its room, with no fault. C's free drops c0 uncopied. L1: b0
 * faults and comes in into the room C left (2); b1 evicts a0 (2), faults, comes in (2). 4 faults
 * (40 ns), 8 bytes each way (16 ns): the step is 200 + 56 ns, and ends with a1, b0, b1 resident
 * again.
 */
START_TEST(uvm_hand_computed)
{
	struct mv_trace *t;
	struct mv_iter *it = uvm_iteration(&t);
	struct mv_model_result r;

	ck_assert_int_eq(mv_model_uvm(it, 6, &byte_per_ns, &two_byte_blocks, &r), 0);
	ck_assert_uint_eq(r.compute_ns, 200);
	ck_assert_uint_eq(r.faults, 4);
	ck_assert_uint_eq(r.page_outs, 4);
	ck_assert_uint_eq(r.bytes_out, 8);
	ck_assert_uint_eq(r.page_ins, 4);
	ck_assert_uint_eq(r.bytes_in, 8);
	ck_assert_uint_eq(r.stall_ns, 56);
	ck_assert_uint_eq(r.step_ns, 256);
	ck_assert_uint_eq(r.peak, 6);
	ck_assert_int_eq(r.over_budget, 0);
	/* With room for everything nothing faults: C's first touch costs only its room. */
	ck_assert_int_eq(mv_model_uvm(it, UINT64_MAX, &byte_per_ns, &two_byte_blocks, &r), 0);
	ck_assert_uint_eq(r.faults, 0);
	ck_assert_uint_eq(r.page_ins + r.page_outs, 0);
	ck_assert_uint_eq(r.step_ns, 200);
	ck_assert_uint_eq(r.peak, 10);
	/* L0 names 6 bytes: a budget of 4 cannot hold it. */
	ck_assert_int_eq(mv_model_uvm(it, 4, &byte_per_ns, &two_byte_blocks, &r), 0);
	ck_assert_int_eq(r.over_budget, 1);
	mv_iter_free(it);
	mv_trace_free(t);
}
END_TEST

/* A block is the unit of a fault and of a copy: in 4-byte blocks each buffer faults once. */
START_TEST(uvm_blocks)
{
	struct mv_trace *t;
	struct mv_iter *it = uvm_iteration(&t);
	const struct mv_uvm whole = {4, 10};
	struct mv_model_result r;

	ck_assert_int_eq(mv_model_uvm(it, 6, &byte_per_ns, &whole, &r), 0);
	/* L0: A (4) evicts B (4 out), faults and comes in; C fits beside it. L1: B evicts A. 2 faults,
	 * 8 bytes each way. */
	ck_assert_uint_eq(r.faults, 2);
	ck_assert_uint_eq(r.page_ins, 2);
	ck_assert_uint_eq(r.bytes_in, 8);
	ck_assert_uint_eq(r.bytes_out, 8);
	ck_assert_uint_eq(r.step_ns, 200 + 20 + 16);
	ck_assert_int_eq(mv_model_uvm(it, 6, &byte_per_ns, &(struct mv_uvm){0, 10}, &r), -EINVAL);
	mv_iter_free(it);
	mv_trace_free(t);
}
END_TEST

/*
 * The next iteration's start, as the time model takes it: X (2 bytes) is alive when the iteration
 * begins and freed before L0; X2, the same site and size, is allocated before L0 and outlives it,
 * so the next iteration knows X2 as its X. L0 names X2, L1 names B (4 bytes, alive throughout);
 * budget 4. The first pass ends with b0, b1 resident and X2 evicted. The second starts with X2
 * gone (the next one's X, freed before L0) and X2 allocated anew: its touch in L0 costs only room
 * (b0 out), not a fault. L1: b0 evicts b1 and faults in, b1 evicts X2 and faults in. 2 faults,
 * 3 blocks out, 2 in: 200 + 20 + 6 + 4 ns.
 */
START_TEST(uvm_next_iteration)
{
	struct mv_trace *t = mv_trace_new(0, 0);
	uint32_t f, b, x, x2, first;
	struct mv_iter *it;
	struct mv_model_result r;

	PT_OK(mv_trace_add_func(t, "k", &f));
	PT_OK(mv_trace_add_alloc(t, 4, 1, 0, 0, &b));
	PT_OK(mv_trace_add_alloc(t, 2, 2, 0, 0, &x));
	first = t->nops;
	PT_OK(mv_trace_add_free(t, x, 1));
	PT_OK(mv_trace_add_alloc(t, 2, 2, 0, 1, &x2));
	PT_OK(mv_trace_add_launch(t, f, 0, 2, 100, &x2, 1));
	PT_OK(mv_trace_add_launch(t, f, 0, 3, 100, &b, 1));
	PT_OK(mv_iter_build(t, first, t->nops - first, 0, &it));
	ck_assert_uint_eq(it->nbufs, 3);
	ck_assert_int_eq(mv_model_uvm(it, 4, &byte_per_ns, &two_byte_blocks, &r), 0);
	ck_assert_uint_eq(r.faults, 2);
	ck_assert_uint_eq(r.page_outs, 3);
	ck_assert_uint_eq(r.bytes_out, 6);
	ck_assert_uint_eq(r.page_ins, 2);
	ck_assert_uint_eq(r.bytes_in, 4);
	ck_assert_uint_eq(r.step_ns, 230);
	ck_assert_int_eq(r.over_budget, 0);
	mv_iter_free(it);
	mv_trace_free(t);
}
END_TEST

static Suite *model_suite(void)
{
	Suite *s = suite_create("model");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, hand_computed);
	tcase_add_test(tc, host_mapped_reads_over_the_link);
	tcase_add_test(tc, host_mapped_keeps_the_budget_in_time);
	tcase_add_test(tc, host_mapped_allocations);
	tcase_add_test(tc, whole_buffer_gaps);
	tcase_add_test(tc, release_times);
	tcase_add_test(tc, lower_bound_holds_for_random_plans);
	tcase_add_test(tc, unlimited_peak_matches);
	tcase_add_test(tc, layered_peak);
	tcase_add_test(tc, feedback_converges);
	tcase_add_test(tc, plan_checks);
	tcase_add_test(tc, policy_table);
	tcase_add_test(tc, min_budget_counts_once);
	tcase_add_test(tc, min_budget_pinned_lifetime);
	tcase_add_test(tc, uvm_hand_computed);
	tcase_add_test(tc, uvm_blocks);
	tcase_add_test(tc, uvm_next_iteration);
	tcase_set_timeout(tc, 120);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(model_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
