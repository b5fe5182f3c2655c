/* Iterations: period detection (with and without marks, inner loops, cuts) and the built iteration. */
#include <config.h>

#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policies/policy.h"
#include "tests/unit/policytest.h"

/* Ops before the first step: the input and each layer's weight and gradient. */
static uint32_t setup_ops(const struct pt_net *n)
{
	return 1 + (n->weight_bytes ? 2 * (n->lstm ? 1 : n->layers) : 0);
}

/* Ops in one layered step: an ALLOC and a FREE per layer, the launches, and the mark. */
static uint32_t step_ops(const struct pt_net *n)
{
	return 2 * n->layers + pt_step_launches(n) + (n->mark != 0);
}

static const char *fname(const struct pt_gen *g, const struct mv_iter *it, uint32_t k)
{
	return g->t->funcs[it->launch[k].func];
}

/* The iteration of a layered net is exactly step `s` (0-based), starting with its first ALLOC. */
static void assert_layered_step(const struct pt_gen *g, const struct mv_iter *it, uint32_t s)
{
	const struct pt_net *n = &g->net;
	uint32_t L = n->layers, b, i;

	ck_assert_uint_eq(it->nlaunch, 3 * L + 1);
	ck_assert_uint_eq(it->first_op, setup_ops(n) + s * step_ops(n));
	ck_assert_uint_eq(it->nops, step_ops(n));
	ck_assert_uint_eq(g->t->ops[it->first_op].kind, MV_TREC_ALLOC);
	ck_assert_str_eq(fname(g, it, 0), "fwd0");
	ck_assert_str_eq(fname(g, it, PT_LOSS(L)), "loss");
	/* No buffer's life crosses the boundary: activations live inside, weights across. */
	for (b = 0; b < it->nbufs; b++) {
		const struct mv_iter_buf *ib = &it->bufs[b];

		if (ib->alloc_at == MV_TRACE_NONE)
			ck_assert_uint_eq(ib->free_at, MV_TRACE_NONE);
		else
			ck_assert_uint_ne(ib->free_at, MV_TRACE_NONE);
	}
	for (i = 0; i < L; i++) {
		uint32_t a = pt_ibuf(it, setup_ops(n) + s * L + i); /* trace buffers: setup, then L per step */
		const struct mv_iter_buf *ib;

		ck_assert_uint_ne(a, MV_TRACE_NONE);
		ib = &it->bufs[a];
		ck_assert_uint_eq(ib->site, 0x100 + i);
		ck_assert_uint_eq(ib->alloc_at, PT_FWD(i));
		ck_assert_uint_eq(ib->first_use, PT_FWD(i));
		ck_assert_uint_eq(ib->free_at, PT_BWD(L, i) + 1);
		ck_assert_uint_eq(ib->last_use, PT_BWD(L, i));
	}
}

START_TEST(layered_no_marks)
{
	struct pt_net net = pt_net_layered(6, 8 * PT_MIB, 2 * PT_MIB);
	struct pt_gen g;
	struct mv_iter *it;

	pt_gen_init(&g, &net, PT_GIB);
	pt_gen_iterations(&g, 3);
	it = pt_iter(&g, 0);
	assert_layered_step(&g, it, 2);
	mv_iter_free(it);
	pt_gen_free(&g);
}
END_TEST

/* Identical blocks: the optimizer's loop over them repeats with a flat footprint, and must not be
 * taken for the period. */
START_TEST(layered_same_funcs)
{
	struct pt_net net = pt_net_layered(8, 8 * PT_MIB, 2 * PT_MIB);
	struct pt_gen g;
	struct mv_iter *it;

	net.same_funcs = 1;
	pt_gen_init(&g, &net, PT_GIB);
	pt_gen_iterations(&g, 3);
	it = pt_iter(&g, 0);
	assert_layered_step(&g, it, 2);
	mv_iter_free(it);
	pt_gen_free(&g);
}
END_TEST

/* Cut mid-step, the window is rotated back to the footprint's minimum: the last whole step. */
START_TEST(layered_cut_rotates)
{
	uint32_t cuts[] = {1, 5, 9, 13, 18};
	size_t c;

	for (c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
		struct pt_net net = pt_net_layered(6, 8 * PT_MIB, 2 * PT_MIB);
		struct pt_gen g;
		struct mv_iter *it;

		net.same_funcs = c % 2;
		pt_gen_init(&g, &net, PT_GIB);
		pt_gen_iterations(&g, 3);
		pt_gen_partial(&g, cuts[c]);
		it = pt_iter(&g, 0);
		assert_layered_step(&g, it, 2);
		mv_iter_free(it);
		pt_gen_free(&g);
	}
}
END_TEST

START_TEST(lstm_inner_loop_is_not_the_iteration)
{
	/* Cut in the forward time steps, in the backward ones, and at a step's end. */
	uint32_t T = 20, cuts[] = {0, 3, 15, 20, 21, 25, 40};
	size_t c;

	for (c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
		struct pt_net net = pt_net_lstm(T, 4 * PT_MIB, 16 * PT_MIB);
		struct pt_gen g;
		struct mv_iter *it;
		uint32_t b, t, ords = 0;

		pt_gen_init(&g, &net, PT_GIB);
		pt_gen_iterations(&g, 3);
		if (cuts[c] != 0)
			pt_gen_partial(&g, cuts[c]);
		it = pt_iter(&g, 0);
		ck_assert_uint_eq(it->nlaunch, 2 * T + 2);
		ck_assert_str_eq(fname(&g, it, 0), "cell");
		ck_assert_str_eq(fname(&g, it, T), "loss");
		ck_assert_str_eq(fname(&g, it, 2 * T + 1), "opt");
		ck_assert_uint_eq(it->first_op, setup_ops(&net) + 2 * step_ops(&net));
		/* Every h[t] comes from one site: the ordinal tells them apart, in allocation order. */
		for (t = 0; t < T; t++) {
			for (b = 0; b < it->nbufs; b++) {
				if (it->bufs[b].site == 0x100 && it->bufs[b].alloc_at == t) {
					ck_assert_uint_eq(it->bufs[b].ordinal, t);
					ords++;
				}
			}
		}
		ck_assert_uint_eq(ords, T);
		mv_iter_free(it);
		pt_gen_free(&g);
	}
}
END_TEST

START_TEST(marks_bound_the_iteration)
{
	struct pt_net net = pt_net_layered(4, PT_MIB, PT_MIB);
	struct pt_gen g;
	uint32_t first, n, mark1;

	net.mark = 1;
	pt_gen_init(&g, &net, PT_GIB);
	pt_gen_iterations(&g, 3);
	pt_gen_partial(&g, 2);
	/* Marks open steps 0..3; the last two are those of step 2 and the cut step 3. */
	mark1 = setup_ops(&net) + 2 * step_ops(&net);
	ck_assert_uint_eq(g.t->ops[mark1].kind, MV_TREC_MARK);
	ck_assert_int_eq(mv_iter_detect(g.t, &first, &n), 0);
	ck_assert_uint_eq(first, mark1 + 1);
	ck_assert_uint_eq(n, step_ops(&net) - 1);
	pt_gen_free(&g);

	/* Marks need not sit at the footprint minimum: they are obeyed as they are. */
	net.mark = 0;
	pt_gen_init(&g, &net, PT_GIB);
	pt_gen_partial(&g, 2);
	PT_OK(mv_trace_add_mark(g.t, g.now));
	pt_gen_partial(&g, 7);
	PT_OK(mv_trace_add_mark(g.t, g.now));
	ck_assert_int_eq(mv_iter_detect(g.t, &first, &n), 0);
	ck_assert_uint_eq(first, setup_ops(&net) + 2 * 2 + 1);
	ck_assert_uint_eq(n, 4 + 7 + 2); /* 4 ALLOCs, 7 launches, 2 FREEs */
	pt_gen_free(&g);
}
END_TEST

START_TEST(not_yet)
{
	struct pt_net net = pt_net_layered(5, PT_MIB, PT_MIB);
	struct pt_gen g;
	uint32_t first = 77, n = 77, cut;

	for (cut = 0; cut < 2 * pt_step_launches(&net); cut += 3) {
		net.same_funcs = cut % 2;
		pt_gen_init(&g, &net, PT_GIB);
		ck_assert_int_eq(mv_iter_detect(g.t, &first, &n), -ENOENT);
		pt_gen_iterations(&g, 1);
		pt_gen_partial(&g, cut / 2);
		ck_assert_int_eq(mv_iter_detect(g.t, &first, &n), -ENOENT);
		pt_gen_free(&g);
	}
	/* One mark is not an iteration. */
	net.mark = 1;
	pt_gen_init(&g, &net, PT_GIB);
	pt_gen_partial(&g, 6);
	ck_assert_int_eq(mv_iter_detect(g.t, &first, &n), -ENOENT);
	pt_gen_free(&g);
	ck_assert_uint_eq(first, 77);
}
END_TEST

/* Two whole steps, the second of which is returned. */
START_TEST(two_steps_are_enough)
{
	struct pt_net net = pt_net_layered(5, PT_MIB, PT_MIB);
	struct pt_gen g;
	struct mv_iter *it;

	pt_gen_init(&g, &net, PT_GIB);
	pt_gen_iterations(&g, 2);
	it = pt_iter(&g, 0);
	assert_layered_step(&g, it, 1);
	mv_iter_free(it);
	pt_gen_free(&g);
}
END_TEST

/* SYNCs and PAGEs between launches change nothing. */
START_TEST(other_ops_between_launches)
{
	struct pt_net net = pt_net_layered(4, PT_MIB, PT_MIB);
	struct pt_gen g;
	uint32_t first, n, s;
	struct mv_iter *it;

	pt_gen_init(&g, &net, PT_GIB);
	for (s = 0; s < 3; s++) {
		pt_gen_iterations(&g, 1);
		PT_OK(mv_trace_add_sync(g.t, 0, g.now));
		PT_OK(mv_trace_add_page(g.t, g.w[1], 0, g.now, 10, 0));
		PT_OK(mv_trace_add_page(g.t, g.w[1], 1, g.now, 10, 0));
	}
	ck_assert_int_eq(mv_iter_detect(g.t, &first, &n), 0);
	ck_assert_int_eq(mv_iter_build(g.t, first, n, 0, &it), 0);
	ck_assert_uint_eq(it->nlaunch, 13);
	ck_assert_uint_eq(g.t->ops[first].kind, MV_TREC_SYNC);
	ck_assert_uint_eq(n, step_ops(&net) + 3);
	mv_iter_free(it);
	pt_gen_free(&g);
}
END_TEST

START_TEST(build_fields)
{
	struct pt_net net = pt_net_layered(3, 4 * PT_MIB, 2 * PT_MIB);
	uint64_t fwd[3] = {10, 0, 30};
	struct pt_gen g;
	struct mv_iter *it;
	uint32_t spare, b, in, w0, gw0, i;
	const struct mv_iter_launch *l;

	net.fwd = fwd;
	net.pin_weights = 1;
	pt_gen_init(&g, &net, PT_GIB);
	/* A buffer alive throughout and never used still takes room in the iteration. */
	PT_OK(mv_trace_add_alloc(g.t, 5 * PT_MIB, 0x999, 0, g.now, &spare));
	pt_gen_iterations(&g, 2);
	it = pt_iter(&g, 12345);
	ck_assert_uint_eq(it->nlaunch, 10);
	ck_assert_uint_eq(it->launch[0].dur_ns, 10);
	ck_assert_uint_eq(it->launch[1].dur_ns, 12345);
	ck_assert_uint_eq(it->launch[2].dur_ns, 30);
	ck_assert_uint_eq(it->launch[PT_BWD(3, 0)].dur_ns, 2000000);
	/* First appearance: act0 (ALLOC), then fwd0 names input and w0. */
	ck_assert_uint_eq(it->bufs[0].site, 0x100);
	in = 1;
	w0 = 2;
	ck_assert_uint_eq(it->bufs[in].site, 0x50);
	ck_assert_uint_eq(it->bufs[w0].site, 0x200);
	ck_assert_uint_eq(it->bufs[w0].flags, MV_IBUF_PINNED);
	ck_assert_uint_eq(it->bufs[0].flags, 0);
	ck_assert_uint_eq(it->bufs[w0].alloc_at, MV_TRACE_NONE);
	ck_assert_uint_eq(it->bufs[w0].first_use, PT_FWD(0));
	ck_assert_uint_eq(it->bufs[w0].last_use, PT_OPT(3, 0));
	ck_assert_uint_eq(it->bufs[in].last_use, PT_BWD(3, 0));
	gw0 = pt_ibuf(it, g.gw[0]);
	ck_assert_uint_eq(it->bufs[gw0].first_use, PT_BWD(3, 0));
	l = &it->launch[PT_FWD(0)];
	ck_assert_uint_eq(l->nrefs, 3);
	ck_assert_uint_eq(it->refs[l->ref0], in);
	ck_assert_uint_eq(it->refs[l->ref0 + 1], w0);
	ck_assert_uint_eq(it->refs[l->ref0 + 2], 0);
	/* The untouched buffer comes last. */
	b = pt_ibuf(it, spare);
	ck_assert_uint_eq(b, it->nbufs - 1);
	ck_assert_uint_eq(it->bufs[b].first_use, MV_TRACE_NONE);
	ck_assert_uint_eq(it->bufs[b].alloc_at, MV_TRACE_NONE);
	ck_assert_uint_eq(it->nbufs, 1 + 6 + 3 + 1);
	for (i = 0; i < it->nbufs; i++)
		ck_assert_uint_lt(it->bufs[i].trace_buf, g.t->nbufs);
	mv_iter_free(it);
	pt_gen_free(&g);
}
END_TEST

/* A launch naming a buffer twice names it once; (site, size) twins get ordinals in order. */
START_TEST(build_dedupe_and_ordinals)
{
	struct mv_trace *t = mv_trace_new(0, 0);
	uint32_t f, a, b, c, refs[4];
	struct mv_iter *it;

	PT_OK(mv_trace_add_func(t, "k", &f));
	PT_OK(mv_trace_add_alloc(t, 100, 7, 0, 0, &a));
	PT_OK(mv_trace_add_alloc(t, 100, 7, 0, 0, &b));
	PT_OK(mv_trace_add_alloc(t, 200, 7, 0, 0, &c));
	refs[0] = b;
	refs[1] = b;
	refs[2] = c;
	refs[3] = a;
	PT_OK(mv_trace_add_launch(t, f, 0, 1, 5, refs, 4));
	PT_OK(mv_trace_add_free(t, c, 2));
	ck_assert_int_eq(mv_iter_build(t, 0, t->nops, 0, &it), 0);
	ck_assert_uint_eq(it->nlaunch, 1);
	ck_assert_uint_eq(it->launch[0].nrefs, 3);
	ck_assert_uint_eq(it->nbufs, 3);
	ck_assert_uint_eq(it->bufs[0].trace_buf, a);
	ck_assert_uint_eq(it->bufs[0].ordinal, 0);
	ck_assert_uint_eq(it->bufs[1].ordinal, 1);
	ck_assert_uint_eq(it->bufs[2].ordinal, 0);
	ck_assert_uint_eq(it->bufs[2].free_at, 1);
	ck_assert_uint_eq(it->bufs[0].alloc_at, 0);
	mv_iter_free(it);
	ck_assert_int_eq(mv_iter_build(t, 1, t->nops, 0, &it), -EINVAL);
	mv_trace_free(t);
}
END_TEST

START_TEST(fingerprints)
{
	struct pt_net net = pt_net_layered(4, PT_MIB, PT_MIB), other = pt_net_layered(5, PT_MIB, PT_MIB);
	struct pt_gen g, h;
	struct mv_iter *a, *b, *c;
	uint32_t so;

	pt_gen_init(&g, &net, PT_GIB);
	pt_gen_iterations(&g, 3);
	so = step_ops(&net);
	ck_assert_int_eq(mv_iter_build(g.t, setup_ops(&net), so, 0, &a), 0);
	ck_assert_int_eq(mv_iter_build(g.t, setup_ops(&net) + so, so, 0, &b), 0);
	pt_gen_init(&h, &other, PT_GIB);
	pt_gen_iterations(&h, 1);
	ck_assert_int_eq(mv_iter_build(h.t, setup_ops(&other), step_ops(&other), 0, &c), 0);
	ck_assert_uint_eq(a->fingerprint, b->fingerprint);
	ck_assert_uint_ne(a->fingerprint, c->fingerprint);
	mv_iter_free(a);
	mv_iter_free(b);
	mv_iter_free(c);
	pt_gen_free(&g);
	pt_gen_free(&h);
}
END_TEST

/* Detection is linear: a long trace of a large network is handled at once. */
START_TEST(long_trace)
{
	struct pt_net net = pt_net_layered(1500, PT_MIB, PT_MIB);
	struct pt_gen g;
	struct mv_iter *it;

	net.same_funcs = 1;
	pt_gen_init(&g, &net, PT_GIB);
	pt_gen_iterations(&g, 6);
	pt_gen_partial(&g, 100);
	it = pt_iter(&g, 0);
	assert_layered_step(&g, it, 5);
	mv_iter_free(it);
	pt_gen_free(&g);
}
END_TEST

static Suite *iter_suite(void)
{
	Suite *s = suite_create("iter");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, layered_no_marks);
	tcase_add_test(tc, layered_same_funcs);
	tcase_add_test(tc, layered_cut_rotates);
	tcase_add_test(tc, lstm_inner_loop_is_not_the_iteration);
	tcase_add_test(tc, marks_bound_the_iteration);
	tcase_add_test(tc, not_yet);
	tcase_add_test(tc, two_steps_are_enough);
	tcase_add_test(tc, other_ops_between_launches);
	tcase_add_test(tc, build_fields);
	tcase_add_test(tc, build_dedupe_and_ordinals);
	tcase_add_test(tc, fingerprints);
	tcase_add_test(tc, long_trace);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(iter_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
