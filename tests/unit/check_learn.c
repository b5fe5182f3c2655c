/* The learner (policies/learn.c): events in, trace out, as the library's planner thread feeds it
 * (buffer ids, named functions, measured durations, page copies) and as memvirtd does (addresses,
 * functions by number); restarts and limits; and hostile event streams. */
#include <config.h>

#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policies/learn.h"
#include "tests/unit/policytest.h"

static const struct mv_learner_limits unlimited = {UINT32_MAX, UINT32_MAX, UINT32_MAX, UINT32_MAX, UINT32_MAX};

/* The key a caller gives trace buffer b of a source trace (an address, say). */
static uint64_t key_of(uint32_t b)
{
	return 0x7000000000ull + (uint64_t)b * 0x1000;
}

/* Feeds every op of t to l: as the library does (its function numbers, with their names, and the
 * measured durations) when named, else as memvirtd does (no names, no durations). */
static void replay(struct mv_learner *l, const struct mv_trace *t, int named)
{
	for (uint32_t k = 0; k < t->nops; k++) {
		const struct mv_trace_op *op = &t->ops[k];
		const struct mv_trace_buf *b = &t->bufs[op->id < t->nbufs ? op->id : 0];

		switch (op->kind) {
		case MV_TREC_ALLOC:
			ck_assert_int_eq(mv_learner_alloc(l, key_of(op->id), b->size, b->site, b->flags,
							  op->time_ns), 0);
			break;
		case MV_TREC_FREE:
			ck_assert_int_eq(mv_learner_freed(l, key_of(op->id), op->time_ns), 0);
			break;
		case MV_TREC_LAUNCH:
			ck_assert_int_eq(mv_learner_launch(l, op->id, named ? t->funcs[op->id] : NULL, op->stream,
							   op->time_ns, named ? op->dur_ns : 0, op->nrefs), 0);
			for (uint32_t r = 0; r < op->nrefs; r++)
				ck_assert_int_eq(mv_learner_ref(l, key_of(t->refs[op->ref0 + r])), 0);
			break;
		case MV_TREC_MARK:
			ck_assert_int_eq(mv_learner_mark(l, op->time_ns), 0);
			break;
		case MV_TREC_PAGE:
			ck_assert_int_eq(mv_learner_page(l, key_of(op->id), op->dir, op->time_ns, op->dur_ns,
							 op->waited), 0);
			break;
		default:
			ck_abort_msg("op %u of kind %u in a source trace", k, op->kind);
		}
	}
}

/* The learnt trace is the source op for op: the same buffer numbers, functions of the same names
 * (memvirtd's "f<number>" when not named), durations when named. */
static void same_trace(const struct mv_trace *got, const struct mv_trace *src, int named)
{
	char name[32];

	ck_assert_uint_eq(got->nops, src->nops);
	ck_assert_uint_eq(got->nbufs, src->nbufs);
	ck_assert_uint_eq(got->nrefs, src->nrefs);
	for (uint32_t b = 0; b < src->nbufs; b++) {
		ck_assert_uint_eq(got->bufs[b].size, src->bufs[b].size);
		ck_assert_uint_eq(got->bufs[b].site, src->bufs[b].site);
		ck_assert_uint_eq(got->bufs[b].flags, src->bufs[b].flags);
	}
	for (uint32_t k = 0; k < src->nops; k++) {
		const struct mv_trace_op *g = &got->ops[k], *s = &src->ops[k];

		ck_assert_uint_eq(g->kind, s->kind);
		ck_assert_uint_eq(g->time_ns, s->time_ns);
		ck_assert_uint_eq(g->stream, s->stream);
		ck_assert_uint_eq(g->dir, s->dir);
		ck_assert_uint_eq(g->waited, s->waited);
		if (s->kind != MV_TREC_LAUNCH) {
			ck_assert_uint_eq(g->id, s->id);
			ck_assert_uint_eq(g->dur_ns, s->dur_ns);
			continue;
		}
		snprintf(name, sizeof(name), "f%u", s->id);
		ck_assert_str_eq(got->funcs[g->id], named ? src->funcs[s->id] : name);
		ck_assert_uint_eq(g->dur_ns, named ? s->dur_ns : 0);
		ck_assert_uint_eq(g->nrefs, s->nrefs);
		ck_assert_mem_eq(&got->refs[g->ref0], &src->refs[s->ref0], s->nrefs * sizeof(uint32_t));
	}
}

/* Three steps of a layered network with a mark before each. */
static void three_steps(struct pt_gen *g, uint32_t layers)
{
	struct pt_net net = pt_net_layered(layers, 8 * PT_MIB, 4 * PT_MIB);

	net.mark = 1;
	pt_gen_init(g, &net, 80 * PT_GIB);
	pt_gen_iterations(g, 3);
}

START_TEST(library_path_learns_the_trace_op_for_op)
{
	struct mv_learner *l = mv_learner_new(80 * PT_GIB, &unlimited, NULL, NULL);
	struct pt_gen g;

	three_steps(&g, 6);
	/* The library's planner also learns the page copies it did. */
	PT_OK(mv_trace_add_page(g.t, g.w[0], 0, g.now, 5000, 0));
	PT_OK(mv_trace_add_page(g.t, g.w[0], 1, g.now + 10000, 6000, 1));
	replay(l, g.t, 1);
	same_trace(mv_learner_trace(l), g.t, 1);
	ck_assert_uint_eq(mv_learner_stats(l)->launches, 3 * (3 * 6 + 1));
	ck_assert_uint_eq(mv_learner_stats(l)->ignored, 0);
	ck_assert_uint_eq(mv_learner_stats(l)->resets, 0);
	/* Function keys map to the trace's numbers, which the executor maps back. */
	for (uint32_t f = 0; f < g.t->nfuncs; f++) {
		uint32_t tf = mv_learner_func(l, f);

		ck_assert_uint_ne(tf, MV_TRACE_NONE);
		ck_assert_str_eq(mv_learner_trace(l)->funcs[tf], g.t->funcs[f]);
	}
	ck_assert_uint_eq(mv_learner_func(l, 4242), MV_TRACE_NONE);
	ck_assert_uint_gt(mv_learner_memory(l), sizeof(struct mv_trace));
	mv_learner_free(l);
	pt_gen_free(&g);
}
END_TEST

START_TEST(daemon_path_learns_the_trace_op_for_op)
{
	struct mv_learner *l = mv_learner_new(80 * PT_GIB, &unlimited, NULL, NULL);
	struct pt_gen g;

	three_steps(&g, 6);
	replay(l, g.t, 0);
	same_trace(mv_learner_trace(l), g.t, 0);
	mv_learner_free(l);
	pt_gen_free(&g);
}
END_TEST

/* Names as memvirtd gives them, for a trace whose function keys are the source's numbers. */
struct wire {
	const struct mv_learner *l;
	uint32_t nkeys;
	char buf[32];
};

static const char *wire_name(void *ctx, uint32_t func)
{
	struct wire *w = ctx;

	for (uint32_t k = 0; k < w->nkeys; k++) {
		if (mv_learner_func(w->l, k) == func) {
			snprintf(w->buf, sizeof(w->buf), "f%u", k);
			return w->buf;
		}
	}
	return "?";
}

/* What lets the library take memvirtd's plans: from the same events, both learn the same iteration,
 * and the daemon's fingerprint is the library's with the daemon's names. */
START_TEST(library_and_daemon_learn_the_same_iteration)
{
	struct mv_learner *lib = mv_learner_new(80 * PT_GIB, &unlimited, NULL, NULL);
	struct mv_learner *dmn = mv_learner_new(80 * PT_GIB, &unlimited, NULL, NULL);
	struct mv_iter *a, *b;
	uint32_t fa, na, fb, nb;
	struct pt_gen g;
	struct pt_net net = pt_net_layered(5, 8 * PT_MIB, 4 * PT_MIB);
	struct wire w;

	pt_gen_init(&g, &net, 80 * PT_GIB);
	pt_gen_iterations(&g, 3);
	replay(lib, g.t, 1);
	replay(dmn, g.t, 0);
	ck_assert_int_eq(mv_iter_detect(mv_learner_trace(lib), &fa, &na), 0);
	ck_assert_int_eq(mv_iter_detect(mv_learner_trace(dmn), &fb, &nb), 0);
	ck_assert_uint_eq(fa, fb);
	ck_assert_uint_eq(na, nb);
	ck_assert_int_eq(mv_iter_build(mv_learner_trace(lib), fa, na, 1000, &a), 0);
	ck_assert_int_eq(mv_iter_build(mv_learner_trace(dmn), fb, nb, 1000, &b), 0);
	ck_assert_uint_eq(a->nlaunch, 3 * 5 + 1);
	ck_assert_uint_eq(a->nlaunch, b->nlaunch);
	ck_assert_uint_eq(a->nbufs, b->nbufs);
	ck_assert_uint_ne(a->fingerprint, b->fingerprint);
	w.l = lib;
	w.nkeys = g.t->nfuncs;
	ck_assert_uint_eq(mv_iter_fingerprint(a, wire_name, &w), b->fingerprint);
	mv_iter_free(a);
	mv_iter_free(b);
	mv_learner_free(lib);
	mv_learner_free(dmn);
	pt_gen_free(&g);
}
END_TEST

START_TEST(pages_of_live_buffers_only)
{
	struct mv_learner *l = mv_learner_new(1ull << 30, &unlimited, NULL, NULL);
	const struct mv_trace *t;

	ck_assert_int_eq(mv_learner_alloc(l, 7, 4096, 1, 0, 10), 0);
	ck_assert_int_eq(mv_learner_page(l, 7, 0, 20, 300, 0), 0);
	ck_assert_int_eq(mv_learner_page(l, 7, 1, 30, 400, 1), 0);
	ck_assert_int_eq(mv_learner_page(l, 8, 1, 40, 400, 1), 0);
	ck_assert_int_eq(mv_learner_freed(l, 7, 50), 0);
	ck_assert_int_eq(mv_learner_page(l, 7, 1, 60, 400, 0), 0);
	t = mv_learner_trace(l);
	ck_assert_uint_eq(t->nops, 4);
	ck_assert_uint_eq(t->ops[1].kind, MV_TREC_PAGE);
	ck_assert_uint_eq(t->ops[1].dir, 0);
	ck_assert_uint_eq(t->ops[1].dur_ns, 300);
	ck_assert_uint_eq(t->ops[2].dir, 1);
	ck_assert_uint_eq(t->ops[2].waited, 1);
	ck_assert_uint_eq(t->ops[3].kind, MV_TREC_FREE);
	/* Key 8 never was alive, and 7 no longer is. */
	ck_assert_uint_eq(mv_learner_stats(l)->ignored, 2);
	mv_learner_free(l);
}
END_TEST

/* A REF of a key never allocated keeps its place: a pinned stand-in, the same for the next REF. */
START_TEST(unknown_buffer_is_a_pinned_stand_in)
{
	struct mv_learner *l = mv_learner_new(1ull << 30, &unlimited, NULL, NULL);
	const struct mv_trace *t;

	ck_assert_int_eq(mv_learner_alloc(l, 1, 4096, 0, 0, 1), 0);
	ck_assert_int_eq(mv_learner_launch(l, 3, "k", 0, 2, 0, 2), 0);
	ck_assert_int_eq(mv_learner_ref(l, 99), 0);
	ck_assert_int_eq(mv_learner_ref(l, 1), 0);
	ck_assert_int_eq(mv_learner_launch(l, 3, "k", 0, 3, 0, 1), 0);
	ck_assert_int_eq(mv_learner_ref(l, 99), 0);
	t = mv_learner_trace(l);
	ck_assert_uint_eq(t->nbufs, 2);
	ck_assert_uint_eq(t->bufs[1].size, 1);
	ck_assert_uint_eq(t->bufs[1].flags, MV_TBUF_PINNED);
	ck_assert_uint_eq(t->ops[t->nops - 2].nrefs, 2);
	ck_assert_uint_eq(t->refs[t->ops[t->nops - 2].ref0], 1);
	ck_assert_uint_eq(t->refs[t->ops[t->nops - 1].ref0], 1);
	ck_assert_uint_eq(mv_learner_stats(l)->launches, 2);
	ck_assert_uint_eq(mv_learner_stats(l)->ignored, 1);
	mv_learner_free(l);
}
END_TEST

/* The library's relearning and memvirtd's lost events: the trace starts over from the live
 * buffers, function numbers kept, and the REFs of a launch cut in two are not learnt. */
START_TEST(restart_keeps_live_buffers_and_functions)
{
	struct mv_learner *l = mv_learner_new(80 * PT_GIB, &unlimited, NULL, NULL);
	const struct mv_trace *t;
	uint32_t fwd0;
	struct pt_gen g;

	three_steps(&g, 4);
	replay(l, g.t, 1);
	fwd0 = mv_learner_func(l, g.f_fwd[0]);
	ck_assert_int_eq(mv_learner_launch(l, g.f_fwd[0], "fwd0", 0, g.now, 0, 2), 0);
	ck_assert_int_eq(mv_learner_ref(l, key_of(g.input)), 0);
	ck_assert_int_eq(mv_learner_restart(l, "a test"), 0);
	ck_assert_int_eq(mv_learner_ref(l, key_of(g.w[0])), 0);
	t = mv_learner_trace(l);
	/* The input, 4 weights and 4 gradients. */
	ck_assert_uint_eq(t->nops, 9);
	ck_assert_uint_eq(t->nbufs, 9);
	ck_assert_uint_eq(t->nfuncs, g.t->nfuncs);
	ck_assert_uint_eq(mv_learner_func(l, g.f_fwd[0]), fwd0);
	ck_assert_uint_eq(mv_learner_stats(l)->resets, 1);
	ck_assert_uint_eq(mv_learner_stats(l)->ignored, 1);
	/* The weights are known by their keys still. */
	ck_assert_int_eq(mv_learner_freed(l, key_of(g.w[1]), g.now), 0);
	ck_assert_uint_eq(t->ops[t->nops - 1].kind, MV_TREC_FREE);
	ck_assert_uint_eq(mv_learner_stats(l)->ignored, 1);
	mv_learner_free(l);
	pt_gen_free(&g);
}
END_TEST

/* Buffers of t allocated before op cut and not freed before it. */
static uint32_t alive_at(const struct mv_trace *t, uint32_t cut)
{
	uint32_t n = 0;

	for (uint32_t b = 0; b < t->nbufs; b++) {
		const struct mv_trace_buf *tb = &t->bufs[b];

		n += tb->alloc_op < cut && (tb->free_op == MV_TRACE_NONE || tb->free_op >= cut);
	}
	return n;
}

/* Past its limit on ops the trace restarts from the last iteration found; without one, from its
 * live buffers. */
START_TEST(a_full_trace_keeps_its_last_iteration)
{
	struct mv_learner_limits lim = unlimited;
	struct pt_net net = pt_net_layered(4, 8 * PT_MIB, 4 * PT_MIB);
	const struct mv_trace *t;
	struct mv_learner *l;
	uint32_t first, nops, live, before, i;
	struct pt_gen g;

	pt_gen_init(&g, &net, 80 * PT_GIB);
	pt_gen_iterations(&g, 3);
	lim.ops = g.t->nops + 4;
	l = mv_learner_new(80 * PT_GIB, &lim, NULL, NULL);
	replay(l, g.t, 1);
	t = mv_learner_trace(l);
	ck_assert_int_eq(mv_iter_detect(t, &first, &nops), 0);
	mv_learner_iteration(l, first);
	live = alive_at(t, first);
	/* Four more ops fit, the fifth does not. */
	for (i = 0; i < 4; i++)
		ck_assert_int_eq(mv_learner_mark(l, g.now + i), 0);
	ck_assert_uint_eq(mv_learner_stats(l)->resets, 0);
	before = mv_learner_trace(l)->nops;
	ck_assert_int_eq(mv_learner_mark(l, g.now + i), 0);
	ck_assert_uint_eq(mv_learner_stats(l)->resets, 1);
	t = mv_learner_trace(l);
	ck_assert_uint_eq(t->nops, live + (before - first) + 1);
	ck_assert_uint_eq(t->ops[live].kind, g.t->ops[first].kind);
	ck_assert_uint_eq(t->ops[live].time_ns, g.t->ops[first].time_ns);
	/* Full again, with no iteration known: the live buffers only, the input, 4 weights and 4
	 * gradients. */
	while (mv_learner_stats(l)->resets == 1)
		ck_assert_int_eq(mv_learner_mark(l, g.now + i), 0);
	ck_assert_uint_eq(mv_learner_trace(l)->nops, 9 + 1);
	mv_learner_free(l);
	pt_gen_free(&g);
}
END_TEST

/* What the learner tells its caller. */
struct heard {
	unsigned debug, warn, ignored;
	char last[160];
};

static void hear(void *ctx, enum mv_learner_note kind, const char *fmt, va_list ap)
{
	struct heard *h = ctx;

	vsnprintf(h->last, sizeof(h->last), fmt, ap);
	h->debug += kind == MV_LEARNER_DEBUG;
	h->warn += kind == MV_LEARNER_WARN;
	h->ignored += kind == MV_LEARNER_IGNORED;
}

/* Past the limits on live keys and on functions, learning starts over from nothing. */
START_TEST(too_many_keys_start_over)
{
	struct mv_learner_limits lim = unlimited;
	struct heard h = {0};
	struct mv_learner *l;

	lim.live = 4;
	lim.funcs = 2;
	l = mv_learner_new(1ull << 30, &lim, hear, &h);
	for (uint64_t k = 0; k < 5; k++)
		ck_assert_int_eq(mv_learner_alloc(l, k, 64, 0, 0, k), 0);
	ck_assert_uint_eq(mv_learner_stats(l)->resets, 1);
	ck_assert_str_eq(h.last, "learning starts over: too many live addresses");
	ck_assert_uint_eq(mv_learner_trace(l)->nbufs, 1);
	for (uint64_t f = 0; f < 3; f++)
		ck_assert_int_eq(mv_learner_launch(l, f, NULL, 0, 10, 0, 0), 0);
	ck_assert_uint_eq(mv_learner_stats(l)->resets, 2);
	ck_assert_str_eq(h.last, "learning starts over: too many distinct functions");
	ck_assert_uint_eq(mv_learner_trace(l)->nbufs, 0);
	ck_assert_uint_eq(mv_learner_stats(l)->launches, 2);
	ck_assert_uint_eq(h.debug, 2);
	ck_assert_uint_eq(h.ignored, 0);
	mv_learner_free(l);
}
END_TEST

/* ---- hostile streams: what memvirtd may be sent ---- */

START_TEST(hostile_ref_without_launch)
{
	struct heard h = {0};
	struct mv_learner *l = mv_learner_new(1ull << 30, &unlimited, hear, &h);
	uint32_t i;

	for (i = 0; i < 100; i++)
		ck_assert_int_eq(mv_learner_ref(l, 0x1000 + i), 0);
	ck_assert_int_eq(mv_learner_stats(l)->ignored, 100);
	ck_assert_uint_eq(mv_learner_trace(l)->nops, 0);
	ck_assert_uint_eq(mv_learner_trace(l)->nbufs, 0);
	ck_assert_uint_eq(h.ignored, 100);
	ck_assert_str_eq(h.last, "a REF of 0x1063 with no LAUNCH before it");
	mv_learner_free(l);
}
END_TEST

START_TEST(hostile_launch_without_refs)
{
	struct mv_learner *l = mv_learner_new(1ull << 30, &unlimited, NULL, NULL);
	const struct mv_trace *t;

	ck_assert_int_eq(mv_learner_launch(l, 7, NULL, 0, 1, 0, 1000), 0);
	ck_assert_int_eq(mv_learner_alloc(l, 0x5000, 4096, 1, 0, 2), 0);
	/* A launch that promised 1000 REFs and had none is not learnt; what follows is. */
	t = mv_learner_trace(l);
	ck_assert_uint_eq(t->nops, 1);
	ck_assert_uint_eq(t->ops[0].kind, MV_TREC_ALLOC);
	ck_assert_int_eq(mv_learner_stats(l)->ignored, 1);
	/* More than a trace launch holds: ignored, its REFs consumed. */
	ck_assert_int_eq(mv_learner_launch(l, 7, NULL, 0, 3, 0, UINT64_MAX), 0);
	ck_assert_int_eq(mv_learner_ref(l, 0x5000), 0);
	ck_assert_int_eq(mv_learner_launch(l, 7, NULL, 0, 5, 0, 1), 0);
	ck_assert_int_eq(mv_learner_ref(l, 0x5000), 0);
	t = mv_learner_trace(l);
	ck_assert_uint_eq(t->nops, 2);
	ck_assert_uint_eq(t->ops[1].kind, MV_TREC_LAUNCH);
	ck_assert_uint_eq(t->ops[1].nrefs, 1);
	ck_assert_uint_eq(t->refs[t->ops[1].ref0], 0);
	/* Times that go back are kept in order. */
	ck_assert_int_eq(mv_learner_mark(l, 1), 0);
	ck_assert_uint_eq(mv_learner_trace(l)->nops, 3);
	ck_assert_uint_eq(mv_learner_trace(l)->ops[2].time_ns, 5);
	mv_learner_free(l);
}
END_TEST

START_TEST(hostile_free_unknown)
{
	struct mv_learner *l = mv_learner_new(1ull << 30, &unlimited, NULL, NULL);

	ck_assert_int_eq(mv_learner_freed(l, 0xdead, 1), 0);
	ck_assert_int_eq(mv_learner_alloc(l, 0xbeef, 0, 0, 0, 2), 0); /* size 0 */
	/* An event of a kind the caller does not know: it only counts. */
	mv_learner_skip(l, 3);
	mv_learner_ignore(l, "an event of unknown kind %u", 99);
	ck_assert_uint_eq(mv_learner_trace(l)->nops, 0);
	ck_assert_int_eq(mv_learner_stats(l)->ignored, 3);
	/* A second ALLOC at a live address: the first one's FREE was lost. */
	ck_assert_int_eq(mv_learner_alloc(l, 0xbeef, 64, 0, 0, 4), 0);
	ck_assert_int_eq(mv_learner_alloc(l, 0xbeef, 64, 0, 0, 4), 0);
	ck_assert_uint_eq(mv_learner_trace(l)->nops, 3);
	ck_assert_uint_eq(mv_learner_trace(l)->bufs[0].free_op, 1);
	mv_learner_free(l);
}
END_TEST

static Suite *learn_suite(void)
{
	Suite *s = suite_create("learn");
	TCase *tc = tcase_create("core");
	TCase *hostile = tcase_create("hostile");

	tcase_add_test(tc, library_path_learns_the_trace_op_for_op);
	tcase_add_test(tc, daemon_path_learns_the_trace_op_for_op);
	tcase_add_test(tc, library_and_daemon_learn_the_same_iteration);
	tcase_add_test(tc, pages_of_live_buffers_only);
	tcase_add_test(tc, unknown_buffer_is_a_pinned_stand_in);
	tcase_add_test(tc, restart_keeps_live_buffers_and_functions);
	tcase_add_test(tc, a_full_trace_keeps_its_last_iteration);
	tcase_add_test(tc, too_many_keys_start_over);
	suite_add_tcase(s, tc);
	tcase_add_test(hostile, hostile_ref_without_launch);
	tcase_add_test(hostile, hostile_launch_without_refs);
	tcase_add_test(hostile, hostile_free_unknown);
	suite_add_tcase(s, hostile);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(learn_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
