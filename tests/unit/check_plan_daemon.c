/* memvirtd's planning (daemon/learn.c, daemon/plan.c): an iteration learnt from a session's
 * events, the PLAN it makes, and what hostile event streams cost a session. The learner's own cases
 * are in check_learn.c. */
#include <config.h>

#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/internal.h"
#include "policies/policy.h"

#define MIB (1024ull * 1024)

/* A synthetic event stream, and what the test knows about it: every buffer by its ALLOC ordinal
 * (which is also its number in a trace built from the stream), and every launch's buffers. */
struct gen {
	struct mv_event *ev;
	size_t n, cap;
	uint64_t t;
	/* Buffers in ALLOC order. */
	uint64_t *addr, *size;
	int *live;
	uint32_t nbufs, cap_bufs;
	/* Launches in order: refs[lref0[i] .. lref0[i] + lnrefs[i]) are buffer ordinals. */
	uint32_t *lref0, *lnrefs, nlaunch, cap_launch;
	uint32_t *refs, nrefs, cap_refs;
};

static void *grow(void *p, uint32_t *cap, uint32_t want, size_t size)
{
	if (want <= *cap)
		return p;
	while (*cap < want)
		*cap = *cap == 0 ? 64 : *cap * 2;
	p = realloc(p, (size_t)*cap * size);
	ck_assert_ptr_nonnull(p);
	return p;
}

static void gen_push(struct gen *g, uint32_t kind, uint64_t addr, uint64_t size, uint64_t arg)
{
	if (g->n == g->cap) {
		g->cap = g->cap == 0 ? 1024 : g->cap * 2;
		g->ev = realloc(g->ev, g->cap * sizeof(*g->ev));
		ck_assert_ptr_nonnull(g->ev);
	}
	memset(&g->ev[g->n], 0, sizeof(g->ev[g->n]));
	/* Each launch takes a millisecond of device time; everything else a microsecond. */
	g->ev[g->n].time_ns = g->t += kind == MV_EV_LAUNCH ? 1000000 : 1000;
	g->ev[g->n].kind = kind;
	g->ev[g->n].addr = addr;
	g->ev[g->n].size = size;
	g->ev[g->n].arg = arg;
	g->n++;
}

/* Allocates; returns the buffer's ordinal. */
static uint32_t gen_alloc(struct gen *g, uint64_t addr, uint64_t size, uint64_t site)
{
	uint32_t cap = g->cap_bufs;

	g->addr = grow(g->addr, &cap, g->nbufs + 1, sizeof(*g->addr));
	cap = g->cap_bufs;
	g->size = grow(g->size, &cap, g->nbufs + 1, sizeof(*g->size));
	g->live = grow(g->live, &g->cap_bufs, g->nbufs + 1, sizeof(*g->live));
	g->addr[g->nbufs] = addr;
	g->size[g->nbufs] = size;
	g->live[g->nbufs] = 1;
	gen_push(g, MV_EV_ALLOC, addr, size, site);
	return g->nbufs++;
}

static void gen_free(struct gen *g, uint32_t b)
{
	g->live[b] = 0;
	gen_push(g, MV_EV_FREE, g->addr[b], 0, 0);
}

static void gen_launch(struct gen *g, uint64_t func, const uint32_t *bufs, uint32_t n)
{
	uint32_t i, cap = g->cap_launch;

	gen_push(g, MV_EV_LAUNCH, func, 0, n);
	g->lref0 = grow(g->lref0, &cap, g->nlaunch + 1, sizeof(*g->lref0));
	g->lnrefs = grow(g->lnrefs, &g->cap_launch, g->nlaunch + 1, sizeof(*g->lnrefs));
	g->refs = grow(g->refs, &g->cap_refs, g->nrefs + n, sizeof(*g->refs));
	g->lref0[g->nlaunch] = g->nrefs;
	g->lnrefs[g->nlaunch] = n;
	g->nlaunch++;
	for (i = 0; i < n; i++) {
		gen_push(g, MV_EV_REF, g->addr[bufs[i]], 0, 0);
		g->refs[g->nrefs++] = bufs[i];
	}
}

static void gen_free_all(struct gen *g)
{
	free(g->ev);
	free(g->addr);
	free(g->size);
	free(g->live);
	free(g->lref0);
	free(g->lnrefs);
	free(g->refs);
	memset(g, 0, sizeof(*g));
}

/* A layered network: L weights and an input allocated once, then per iteration a forward pass
 * that allocates each layer's activation (at new addresses each time), a backward pass that frees
 * them and an optimizer step over the weights. 2L + 1 launches per iteration. */
struct net {
	uint32_t layers;
	uint32_t w[64];
	uint32_t x;
	uint32_t iters;
};

static void net_begin(struct gen *g, struct net *n, uint32_t layers)
{
	uint32_t i;

	memset(n, 0, sizeof(*n));
	n->layers = layers;
	for (i = 0; i < layers; i++)
		n->w[i] = gen_alloc(g, 0x10000000ull + i * 0x1000000ull, 4 * MIB, 1000 + i);
	n->x = gen_alloc(g, 0x9000000000ull, 8 * MIB, 999);
}

static void net_iteration(struct gen *g, struct net *n)
{
	uint32_t a[64], r[64], i;

	for (i = 0; i < n->layers; i++) {
		a[i] = gen_alloc(g, 0x100000000ull + (uint64_t)n->iters * 0x40000000ull + i * 0x1000000ull,
				 (8 + i % 3) * MIB, 2000 + i);
		r[0] = i == 0 ? n->x : a[i - 1];
		r[1] = n->w[i];
		r[2] = a[i];
		gen_launch(g, 100 + i, r, 3);
	}
	for (i = n->layers; i-- > 0;) {
		r[0] = a[i];
		r[1] = n->w[i];
		r[2] = i == 0 ? n->x : a[i - 1];
		gen_launch(g, 200 + i, r, 3);
		gen_free(g, a[i]);
	}
	gen_launch(g, 300, n->w, n->layers);
	n->iters++;
}

static void feed(struct mvd_learn *l, const struct gen *g, size_t from)
{
	size_t i;

	for (i = from; i < g->n; i++)
		mvd_learn_event(l, &g->ev[i]);
}

/* The trace the stream means, built here without the daemon: buffers by ALLOC order, functions
 * "f<number>" by first use. */
static struct mv_trace *equivalent_trace(const struct gen *g)
{
	struct mv_trace *t = mv_trace_new(80ull << 30, 0);
	uint64_t fnum[1024];
	uint32_t nf = 0, b = 0, f, li = 0, i, buf;
	char name[32];
	size_t k;

	ck_assert_ptr_nonnull(t);
	for (k = 0; k < g->n; k++) {
		const struct mv_event *e = &g->ev[k];

		switch (e->kind) {
		case MV_EV_ALLOC:
			ck_assert_int_eq(mv_trace_add_alloc(t, e->size, e->arg, 0, e->time_ns, &buf), 0);
			ck_assert_uint_eq(buf, b);
			b++;
			break;
		case MV_EV_FREE:
			for (i = 0; i < t->nbufs &&
				    !(g->addr[i] == e->addr && t->bufs[i].free_op == MV_TRACE_NONE); i++)
				;
			ck_assert_int_eq(mv_trace_add_free(t, i, e->time_ns), 0);
			break;
		case MV_EV_LAUNCH:
			for (f = 0; f < nf && fnum[f] != e->addr; f++)
				;
			if (f == nf) {
				snprintf(name, sizeof(name), "f%" PRIu64, e->addr);
				ck_assert_int_eq(mv_trace_add_func(t, name, &f), 0);
				ck_assert_uint_eq(f, nf);
				fnum[nf++] = e->addr;
			}
			ck_assert_int_eq(mv_trace_add_launch(t, f, e->stream, e->time_ns, 0,
							     &g->refs[g->lref0[li]], g->lnrefs[li]), 0);
			li++;
			break;
		case MV_EV_MARK:
			ck_assert_int_eq(mv_trace_add_mark(t, e->time_ns), 0);
			break;
		default:
			break;
		}
	}
	return t;
}

static json_t *learn_stats(const struct mvd_learn *l)
{
	json_t *o = json_object();

	mvd_learn_json(l, o);
	return o;
}

/* The integer (or, with boolean set, the boolean as 0 or 1) the learner's stats hold under key. */
static json_int_t stat_of(const struct mvd_learn *l, const char *key, int boolean)
{
	json_t *o = learn_stats(l), *v = json_object_get(o, key);
	json_int_t r;

	ck_assert_msg(boolean ? json_is_boolean(v) : json_is_integer(v), "no %s %s in the stats",
		      boolean ? "boolean" : "integer", key);
	r = boolean ? json_is_true(v) : json_integer_value(v);
	json_decref(o);
	return r;
}

static json_int_t stat_int(const struct mvd_learn *l, const char *key)
{
	return stat_of(l, key, 0);
}

static int stat_bool(const struct mvd_learn *l, const char *key)
{
	return (int)stat_of(l, key, 1);
}

static uint64_t stat_fingerprint(const struct mvd_learn *l, int *found)
{
	json_t *o = learn_stats(l);
	uint64_t fp;

	*found = json_is_true(json_object_get(o, "iteration_found"));
	ck_assert_ptr_nonnull(json_string_value(json_object_get(o, "iteration_fingerprint")));
	fp = strtoull(json_string_value(json_object_get(o, "iteration_fingerprint")), NULL, 16);
	json_decref(o);
	return fp;
}

static void params_for(struct mv_policy_params *p, uint64_t budget)
{
	mv_policy_defaults(p);
	p->budget = budget;
}

/* The iteration an independent build of the stream finds, and the number of the stream's launch
 * it starts at. */
static struct mv_iter *expected_iteration(const struct gen *g, uint32_t *start_launch)
{
	struct mv_trace *t = equivalent_trace(g);
	struct mv_iter *it = NULL;
	uint32_t first, nops, k;

	ck_assert_int_eq(mv_iter_detect(t, &first, &nops), 0);
	ck_assert_int_eq(mv_iter_build(t, first, nops, 1000, &it), 0);
	*start_launch = 0;
	for (k = 0; k < first; k++)
		*start_launch += t->ops[k].kind == MV_TREC_LAUNCH;
	mv_trace_free(t);
	return it;
}

static int launch_names(const struct gen *g, uint32_t launch, uint32_t buf)
{
	uint32_t i;

	for (i = 0; i < g->lnrefs[launch]; i++) {
		if (g->refs[g->lref0[launch] + i] == buf)
			return 1;
	}
	return 0;
}

/* Checks a PLAN payload against the stream: each op binds, by (bind_launch, bind_index), to a
 * buffer of that size that the iteration names there first, and the launch an IN is for names
 * that buffer. Returns the number of ops. */
static uint32_t check_plan(const struct gen *g, const uint8_t *p, size_t len, uint64_t fingerprint,
			   uint32_t nlaunch, uint32_t start)
{
	struct mv_msg_plan head;
	struct mv_plan_op_wire op;
	uint32_t i, j, gl, buf, outs = 0, ins = 0;

	ck_assert_int_eq(mv_plan_decode(p, len, &head), 0);
	ck_assert_uint_eq(head.fingerprint, fingerprint);
	ck_assert_uint_eq(head.nlaunch, nlaunch);
	for (i = 0; i < head.nops; i++) {
		ck_assert_int_eq(mv_plan_op_decode(p + MV_MSG_PLAN_HEAD + (size_t)i * MV_PLAN_OP_SIZE,
						   head.nlaunch, &op), 0);
		gl = start + op.bind_launch;
		ck_assert_uint_lt(gl, g->nlaunch);
		ck_assert_uint_lt(op.bind_index, g->lnrefs[gl]);
		buf = g->refs[g->lref0[gl] + op.bind_index];
		ck_assert_uint_eq(op.size, g->size[buf]);
		/* The first launch of the iteration that names it. */
		for (j = start; j < gl; j++)
			ck_assert_msg(!launch_names(g, j, buf), "op %u binds buffer %u at launch %u, but "
				      "launch %u names it first", i, buf, op.bind_launch, j - start);
		/* Only the activations (8 MiB and up) are worth paging here. */
		ck_assert_uint_ge(op.size, 4 * MIB);
		if (op.kind == MV_PLAN_IN) {
			ck_assert_uint_ne(op.need, MV_PLAN_OP_BEFORE_FIRST);
			ck_assert_msg(launch_names(g, start + op.need, buf),
				      "op %u pages in buffer %u for launch %u, which does not name it", i,
				      buf, op.need);
			ins++;
		} else {
			ck_assert_uint_eq(op.kind, MV_PLAN_OUT);
			if (op.need != MV_PLAN_OP_BEFORE_FIRST)
				ck_assert(launch_names(g, start + op.need, buf));
			outs++;
		}
	}
	ck_assert_uint_gt(outs, 0);
	ck_assert_uint_gt(ins, 0);
	return head.nops;
}

START_TEST(learns_and_plans_a_layered_loop)
{
	struct mvd_learn *l = mvd_learn_new(1, 80ull << 30);
	struct mv_policy_params p;
	struct mv_iter *it;
	struct gen g = {0};
	struct net n;
	uint8_t *payload = NULL;
	size_t len = 0;
	uint32_t start, k;
	uint64_t fp;
	int found;

	net_begin(&g, &n, 8);
	net_iteration(&g, &n);
	feed(l, &g, 0);
	params_for(&p, 70 * MIB);
	/* One iteration is not a period yet. */
	ck_assert_int_eq(mvd_learn_plan(l, "mmcnn", &p, &payload, &len), 0);
	stat_fingerprint(l, &found);
	ck_assert(!found);

	k = (uint32_t)g.n;
	for (int i = 0; i < 3; i++)
		net_iteration(&g, &n);
	feed(l, &g, k);
	ck_assert_int_eq(mvd_learn_plan(l, "mmcnn", &p, &payload, &len), 1);
	ck_assert_ptr_nonnull(payload);

	it = expected_iteration(&g, &start);
	ck_assert_uint_eq(it->nlaunch, 2 * 8 + 1);
	fp = stat_fingerprint(l, &found);
	ck_assert(found);
	ck_assert_uint_eq(fp, it->fingerprint);
	ck_assert_int_eq(stat_int(l, "iteration_launches"), 17);
	ck_assert_uint_gt(check_plan(&g, payload, len, it->fingerprint, it->nlaunch, start), 0);
	ck_assert_int_eq(stat_int(l, "plans_sent"), 1);
	{
		struct mv_msg_plan head;

		ck_assert_int_eq(mv_plan_decode(payload, len, &head), 0);
		ck_assert_uint_eq(head.plan_id, 1);
		ck_assert_int_eq(stat_int(l, "plan_ops"), head.nops);
	}
	free(payload);
	payload = NULL;

	/* The same loop again under the same budget: nothing new to send. */
	k = (uint32_t)g.n;
	net_iteration(&g, &n);
	feed(l, &g, k);
	ck_assert_int_eq(mvd_learn_plan(l, "mmcnn", &p, &payload, &len), 0);
	ck_assert_ptr_null(payload);
	ck_assert_int_eq(stat_int(l, "plans_sent"), 1);

	/* Room for everything: the plan is withdrawn with an empty one. */
	params_for(&p, 1ull << 40);
	ck_assert_int_eq(mvd_learn_plan(l, "mmcnn", &p, &payload, &len), 1);
	{
		struct mv_msg_plan head;

		ck_assert_int_eq(mv_plan_decode(payload, len, &head), 0);
		ck_assert_uint_eq(head.nops, 0);
		ck_assert_uint_eq(head.plan_id, 2);
		ck_assert_uint_eq(head.fingerprint, it->fingerprint);
	}
	free(payload);
	payload = NULL;
	/* ...and an empty plan is not withdrawn twice. */
	k = (uint32_t)g.n;
	net_iteration(&g, &n);
	feed(l, &g, k);
	ck_assert_int_eq(mvd_learn_plan(l, "mmcnn", &p, &payload, &len), 0);

	/* The budget shrinks again: a plan again, with a new id. */
	params_for(&p, 70 * MIB);
	ck_assert_int_eq(mvd_learn_plan(l, "mmcnn", &p, &payload, &len), 1);
	{
		struct mv_msg_plan head;
		uint32_t s2;
		struct mv_iter *it2 = expected_iteration(&g, &s2);

		ck_assert_int_eq(mv_plan_decode(payload, len, &head), 0);
		ck_assert_uint_eq(head.plan_id, 3);
		check_plan(&g, payload, len, it2->fingerprint, it2->nlaunch, s2);
		mv_iter_free(it2);
	}
	free(payload);

	ck_assert_uint_le(mvd_learn_memory(l), MVD_LEARN_MEMORY_MAX);
	mv_iter_free(it);
	mvd_learn_free(l);
	gen_free_all(&g);
}
END_TEST

START_TEST(lru_plans_nothing)
{
	struct mvd_learn *l = mvd_learn_new(1, 80ull << 30);
	struct mv_policy_params p;
	struct gen g = {0};
	struct net n;
	uint8_t *payload = NULL;
	size_t len = 0;
	int found;

	net_begin(&g, &n, 4);
	for (int i = 0; i < 4; i++)
		net_iteration(&g, &n);
	feed(l, &g, 0);
	params_for(&p, 20 * MIB);
	ck_assert_int_eq(mvd_learn_plan(l, "lru", &p, &payload, &len), 0);
	ck_assert_ptr_null(payload);
	stat_fingerprint(l, &found);
	ck_assert(found);
	ck_assert_int_eq(stat_int(l, "iteration_launches"), 9);
	ck_assert_int_eq(stat_int(l, "plans_sent"), 0);
	/* A name no policy has plans nothing either. */
	ck_assert_int_eq(mvd_learn_plan(l, "no-such-policy", &p, &payload, &len), 0);
	mvd_learn_free(l);
	gen_free_all(&g);
}
END_TEST

START_TEST(dropped_events_restart_learning)
{
	struct mvd_learn *l = mvd_learn_new(1, 80ull << 30);
	struct mv_policy_params p;
	struct gen g = {0};
	struct net n;
	uint8_t *payload = NULL;
	size_t len = 0, k;
	uint64_t fp, fp2;
	int found;

	net_begin(&g, &n, 6);
	for (int i = 0; i < 3; i++)
		net_iteration(&g, &n);
	feed(l, &g, 0);
	params_for(&p, 50 * MIB);
	ck_assert_int_eq(mvd_learn_plan(l, "mmcnn", &p, &payload, &len), 1);
	free(payload);
	fp = stat_fingerprint(l, &found);
	ck_assert(found);
	ck_assert_int_eq(stat_int(l, "learn_resets"), 0);

	/* Half an iteration is lost: the trace keeps only the live buffers (6 weights, the input). */
	k = g.n;
	net_iteration(&g, &n);
	mvd_learn_gap(l, 17);
	ck_assert_int_eq(stat_int(l, "learn_resets"), 1);
	ck_assert_uint_eq(mvd_learn_trace(l)->nops, 7);
	ck_assert_uint_eq(mvd_learn_trace(l)->nbufs, 7);
	/* The rest of the interrupted iteration, starting inside a launch's REFs. */
	feed(l, &g, k + (g.n - k) / 2 + 1);
	ck_assert_uint_gt(stat_int(l, "learn_ignored"), 0);
	/* One more iteration is not enough to find the period again... */
	k = g.n;
	net_iteration(&g, &n);
	feed(l, &g, k);
	ck_assert_int_eq(mvd_learn_plan(l, "mmcnn", &p, &payload, &len), 0);
	/* ...two are; the plan is the one sent before, so it is not sent again. */
	k = g.n;
	net_iteration(&g, &n);
	net_iteration(&g, &n);
	feed(l, &g, k);
	ck_assert_int_eq(mvd_learn_plan(l, "mmcnn", &p, &payload, &len), 0);
	fp2 = stat_fingerprint(l, &found);
	ck_assert(found);
	ck_assert_uint_eq(fp2, fp);
	ck_assert_int_eq(stat_int(l, "iteration_launches"), 13);
	ck_assert_int_eq(stat_int(l, "plans_sent"), 1);
	mvd_learn_free(l);
	gen_free_all(&g);
}
END_TEST

/* A quiet spell (the library follows the plan and sends no launches): the trace is kept as the
 * plan saw it, so a new grant is planned on it; what is allocated meanwhile is learnt as alive when
 * launches resume, and a FREE of a buffer the trace knows is learnt at once. */
START_TEST(quiet_spell_keeps_the_iteration)
{
	struct mvd_learn *l = mvd_learn_new(1, 80ull << 30);
	const struct mv_trace *t;
	struct mv_policy_params p;
	struct gen g = {0};
	struct net n;
	uint8_t *payload = NULL;
	size_t len = 0, k;
	uint32_t e, nops, i, q_seen = 0;
	uint64_t fp;
	json_int_t ignored;
	int found;

	net_begin(&g, &n, 6);
	e = gen_alloc(&g, 0xa000000000ull, 4 * MIB, 77); /* alive, named by no launch */
	for (i = 0; i < 3; i++)
		net_iteration(&g, &n);
	feed(l, &g, 0);
	params_for(&p, 50 * MIB);
	ck_assert_int_eq(mvd_learn_plan(l, "mmcnn", &p, &payload, &len), 1);
	free(payload);
	fp = stat_fingerprint(l, &found);
	ck_assert(found);
	ck_assert(!stat_bool(l, "following_quietly"));
	nops = mvd_learn_trace(l)->nops;
	ignored = stat_int(l, "learn_ignored");

	k = g.n;
	gen_push(&g, MV_EV_QUIET, 0, 0, 3);
	net_iteration(&g, &n);
	net_iteration(&g, &n);
	gen_free(&g, e);
	gen_alloc(&g, 0xb000000000ull, 2 * MIB, 78);
	feed(l, &g, k);
	ck_assert(stat_bool(l, "following_quietly"));
	ck_assert_int_eq(stat_int(l, "quiet_spells"), 1);
	/* Only the FREE of the buffer it knew reached the trace; launches are not counted ignored. */
	ck_assert_uint_eq(mvd_learn_trace(l)->nops, nops + 1);
	ck_assert_int_eq(stat_int(l, "learn_ignored"), ignored);
	/* Nothing new to plan with the same grant; a smaller one is planned on the iteration kept. */
	ck_assert_int_eq(mvd_learn_plan(l, "mmcnn", &p, &payload, &len), 0);
	params_for(&p, 36 * MIB);
	ck_assert_int_eq(mvd_learn_plan(l, "mmcnn", &p, &payload, &len), 1);
	free(payload);
	ck_assert_uint_eq(stat_fingerprint(l, &found), fp);
	ck_assert_int_eq(stat_int(l, "learn_resets"), 0);

	/* Launches resume: learning starts over from what is alive now, the spell's buffer included and
	 * the freed one not. */
	k = g.n;
	gen_push(&g, MV_EV_LOUD, 0, 0, 0);
	feed(l, &g, k);
	ck_assert(!stat_bool(l, "following_quietly"));
	ck_assert_int_eq(stat_int(l, "learn_resets"), 1);
	t = mvd_learn_trace(l);
	ck_assert_uint_eq(t->nbufs, 8); /* 6 weights, the input and the spell's buffer */
	ck_assert_uint_eq(t->nops, 8);
	for (i = 0; i < t->nbufs; i++) {
		ck_assert_uint_ne(t->bufs[i].site, 77);
		q_seen += t->bufs[i].site == 78 && t->bufs[i].size == 2 * MIB;
	}
	ck_assert_uint_eq(q_seen, 1);
	/* Three iterations later it has the same iteration again. */
	k = g.n;
	for (i = 0; i < 3; i++)
		net_iteration(&g, &n);
	feed(l, &g, k);
	params_for(&p, 30 * MIB);
	ck_assert_int_eq(mvd_learn_plan(l, "mmcnn", &p, &payload, &len), 1);
	free(payload);
	ck_assert_uint_eq(stat_fingerprint(l, &found), fp);

	/* Events lost during a spell may have held its LOUD: the spell ends with them. */
	k = g.n;
	gen_push(&g, MV_EV_QUIET, 0, 0, 6);
	feed(l, &g, k);
	ck_assert(stat_bool(l, "following_quietly"));
	mvd_learn_gap(l, 3);
	ck_assert(!stat_bool(l, "following_quietly"));
	ck_assert_int_eq(stat_int(l, "quiet_spells"), 2);
	mvd_learn_free(l);
	gen_free_all(&g);
}
END_TEST

static struct mv_event ev_of(uint32_t kind, uint64_t addr, uint64_t size, uint64_t arg, uint64_t t)
{
	struct mv_event e;

	memset(&e, 0, sizeof(e));
	e.kind = kind;
	e.addr = addr;
	e.size = size;
	e.arg = arg;
	e.time_ns = t;
	return e;
}

/* More buffers allocated in a spell than a session learns: what is alive is no longer known, so
 * learning forgets everything when launches resume; a LOUD outside a spell is nothing. */
START_TEST(quiet_spell_past_the_live_bound)
{
	struct mvd_learn *l = mvd_learn_new(1, 1ull << 30);
	struct mv_event e;
	size_t before;
	uint64_t i;

	e = ev_of(MV_EV_ALLOC, 0x1000, 4096, 1, 1);
	mvd_learn_event(l, &e);
	e = ev_of(MV_EV_LOUD, 0, 0, 0, 2);
	mvd_learn_event(l, &e);
	ck_assert_int_eq(stat_int(l, "learn_resets"), 0);
	ck_assert_uint_eq(mvd_learn_trace(l)->nbufs, 1);
	e = ev_of(MV_EV_QUIET, 0, 0, 0, 3);
	mvd_learn_event(l, &e);
	before = mvd_learn_memory(l);
	for (i = 0; i < 200000; i++) {
		e = ev_of(MV_EV_ALLOC, 0x100000000ull + i * 4096, 4096, i, 4 + i);
		mvd_learn_event(l, &e);
	}
	/* Bounded: 64 Ki entries of 24 bytes and their map. */
	ck_assert_uint_lt(mvd_learn_memory(l) - before, 8u << 20);
	e = ev_of(MV_EV_LOUD, 0, 0, 0, 300000);
	mvd_learn_event(l, &e);
	ck_assert_uint_eq(mvd_learn_trace(l)->nbufs, 0);
	ck_assert_int_eq(stat_int(l, "learn_resets"), 1);
	mvd_learn_free(l);
}
END_TEST

/* Kinds it does not know, the retired 6 (SYNC) among them, are counted and not learnt; the
 * library's own page copies are not learnt either. */
START_TEST(unknown_kinds_are_ignored)
{
	struct mvd_learn *l = mvd_learn_new(1, 1ull << 30);
	static const struct {
		uint32_t kind;
		uint64_t addr, size, arg;
	} evs[] = {
		{MV_EV_ALLOC, 0x5000, 4096, 0}, {6, 0, 0, 0}, {99, 0xbeef, 1, 0},
		{MV_EV_PAGE_OUT, 0x5000, 4096, 0}, {MV_EV_PAGE_IN, 0x5000, 4096, 1},
		/* A kind it does not know ends a launch whose REFs were due, as any event does. */
		{MV_EV_LAUNCH, 7, 0, 1}, {6, 0, 0, 0}, {MV_EV_REF, 0x5000, 0, 0},
	};
	struct mv_event e;
	uint32_t i;

	for (i = 0; i < 5; i++) {
		e = ev_of(evs[i].kind, evs[i].addr, evs[i].size, evs[i].arg, i + 1);
		mvd_learn_event(l, &e);
	}
	ck_assert_uint_eq(mvd_learn_trace(l)->nops, 1);
	ck_assert_int_eq(stat_int(l, "learn_ignored"), 2);
	for (; i < sizeof(evs) / sizeof(evs[0]); i++) {
		e = ev_of(evs[i].kind, evs[i].addr, evs[i].size, evs[i].arg, i + 1);
		mvd_learn_event(l, &e);
	}
	ck_assert_uint_eq(mvd_learn_trace(l)->nops, 1);
	ck_assert_int_eq(stat_int(l, "learn_ignored"), 5);
	mvd_learn_free(l);
}
END_TEST

START_TEST(hostile_million_addresses)
{
	struct mvd_learn *l = mvd_learn_new(1, 1ull << 30);
	struct mv_event e;
	size_t peak = 0, m;
	uint64_t i;

	/* A million allocations never freed, then a million launches naming a million addresses
	 * never allocated, then a million functions. */
	for (i = 0; i < 1000000; i++) {
		e = ev_of(MV_EV_ALLOC, 0x100000000ull + i * 4096, 4096, i, i);
		mvd_learn_event(l, &e);
		if (i % 4096 == 0 && (m = mvd_learn_memory(l)) > peak)
			peak = m;
	}
	for (i = 0; i < 1000000; i++) {
		e = ev_of(MV_EV_LAUNCH, i % 3, 0, 2, 1000000 + i);
		mvd_learn_event(l, &e);
		e = ev_of(MV_EV_REF, 0x900000000000ull + i * 64, 0, 0, 1000000 + i);
		mvd_learn_event(l, &e);
		mvd_learn_event(l, &e);
		if (i % 4096 == 0 && (m = mvd_learn_memory(l)) > peak)
			peak = m;
	}
	for (i = 0; i < 1000000; i++) {
		e = ev_of(MV_EV_LAUNCH, i, 0, 0, 2000000 + i);
		mvd_learn_event(l, &e);
		if (i % 4096 == 0 && (m = mvd_learn_memory(l)) > peak)
			peak = m;
	}
	fprintf(stderr, "check_plan_daemon: a million addresses and functions held at most %zu bytes\n",
		peak);
	ck_assert_uint_le(peak, MVD_LEARN_MEMORY_MAX);
	ck_assert_uint_le(mvd_learn_memory(l), MVD_LEARN_MEMORY_MAX);
	ck_assert_uint_gt(stat_int(l, "learn_resets"), 0);
	/* Still learning: an allocation now is in the trace. */
	e = ev_of(MV_EV_ALLOC, 0x42, 4096, 0, 3000000);
	mvd_learn_event(l, &e);
	ck_assert_uint_eq(mvd_learn_trace(l)->ops[mvd_learn_trace(l)->nops - 1].kind, MV_TREC_ALLOC);
	mvd_learn_free(l);
}
END_TEST

/* A long iteration: 5,000 layers, 10,001 launches. Prints how long planning took. */
START_TEST(ten_thousand_launches)
{
	struct mvd_learn *l = mvd_learn_new(1, 80ull << 30);
	struct mv_policy_params p;
	struct gen g = {0};
	uint32_t w[4], a[5000], r[3], i, it, start;
	uint8_t *payload = NULL;
	size_t len = 0;
	struct mv_iter *expect;
	uint64_t fp;
	int found, rc;

	for (i = 0; i < 4; i++)
		w[i] = gen_alloc(&g, 0x10000000ull + i * 0x1000000ull, 2 * MIB, 10 + i);
	for (it = 0; it < 3; it++) {
		for (i = 0; i < 5000; i++) {
			a[i] = gen_alloc(&g, 0x100000000ull + (uint64_t)it * 0x100000000ull + i * 0x200000ull,
					 MIB + (i % 7) * 65536, 20 + i % 50);
			r[0] = i == 0 ? w[0] : a[i - 1];
			r[1] = w[i % 4];
			r[2] = a[i];
			gen_launch(&g, 1 + i % 40, r, 3);
		}
		for (i = 5000; i-- > 0;) {
			r[0] = a[i];
			r[1] = w[i % 4];
			r[2] = i == 0 ? w[0] : a[i - 1];
			gen_launch(&g, 100 + i % 40, r, 3);
			gen_free(&g, a[i]);
		}
		gen_launch(&g, 500, w, 4);
	}
	feed(l, &g, 0);
	params_for(&p, 2000 * MIB);
	rc = mvd_learn_plan(l, "mmcnn", &p, &payload, &len);
	expect = expected_iteration(&g, &start);
	fp = stat_fingerprint(l, &found);
	ck_assert(found);
	ck_assert_uint_eq(expect->nlaunch, 10001);
	ck_assert_int_eq(stat_int(l, "iteration_launches"), 10001);
	ck_assert_uint_eq(fp, expect->fingerprint);
	ck_assert_int_eq(rc, 1);
	fprintf(stderr, "check_plan_daemon: planning a 10,001-launch iteration with mmcnn took %lld us\n",
		(long long)stat_int(l, "plan_time_us"));
	free(payload);
	mv_iter_free(expect);
	mvd_learn_free(l);
	gen_free_all(&g);
}
END_TEST

static Suite *plan_suite(void)
{
	Suite *s = suite_create("plan_daemon");
	TCase *tc = tcase_create("learn");

	tcase_add_test(tc, learns_and_plans_a_layered_loop);
	tcase_add_test(tc, lru_plans_nothing);
	tcase_add_test(tc, dropped_events_restart_learning);
	tcase_add_test(tc, quiet_spell_keeps_the_iteration);
	tcase_add_test(tc, quiet_spell_past_the_live_bound);
	tcase_add_test(tc, unknown_kinds_are_ignored);
	tcase_add_test(tc, hostile_million_addresses);
	tcase_add_test(tc, ten_thousand_launches);
	tcase_set_timeout(tc, 120);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(plan_suite());
	int failed;

	/* Quiet: the hostile cases would log at debug. */
	mvd_log_set_level(getenv("PLAN_DEBUG") ? MVD_LOG_DEBUG : MVD_LOG_WARN);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
