/* Synthetic training traces for the policy suites, built through the trace builder of
 * policies/trace.h: a layered network, and an LSTM-like network whose inner time steps repeat.
 *
 * Usage:
 *
 *     struct pt_net net = pt_net_layered(8, 64 * PT_MIB, 16 * PT_MIB);  // layers, activation, weight
 *     net.fwd_ns = 100000;                   // optional: durations, marks, pinned weights, ...
 *     struct pt_gen g;
 *     pt_gen_init(&g, &net, 80 * PT_GIB);   // a new trace with the functions, input and weights
 *     pt_gen_iterations(&g, 3);             // three whole training steps
 *     pt_gen_partial(&g, 5);                // optionally: the first 5 launches of a fourth (a cut)
 *     // g.t is the trace (owned by g); pt_iter(&g, 0) detects and builds its iteration
 *     pt_gen_free(&g);                      // frees the trace as well
 *
 * One step of a layered network (net.lstm == 0) with L layers:
 *
 *     [MARK]                                 when net.mark
 *     forward,  i = 0..L-1:  ALLOC act[i]; LAUNCH fwd<i> (in, w[i], act[i])   in = act[i-1] or input
 *     LAUNCH loss (act[L-1], input)
 *     backward, i = L-1..0:  LAUNCH bwd<i> (act[i], in, w[i], gw[i]); FREE act[i]
 *     optimizer, i = 0..L-1: LAUNCH opt<i> (w[i], gw[i])
 *
 * so its launch numbers are PT_FWD(i), PT_LOSS(L), PT_BWD(L, i), PT_OPT(L, i), and it has 3L + 1
 * launches. With net.same_funcs every layer uses the same fwd, bwd and opt functions, as a network
 * of identical blocks does. The input, the weights w[i] and gradients gw[i] (weight_bytes each, none
 * when 0) are allocated once by pt_gen_init(), so they are alive when every step begins; activations
 * are allocated and freed within each step, as tests/workloads/mvtrain does.
 *
 * An LSTM-like step (net.lstm == 1) with T = net.layers time steps and one weight:
 *
 *     forward,  t = 0..T-1:  ALLOC h[t]; LAUNCH cell (h[t-1] or input, w, h[t])
 *     LAUNCH loss (h[T-1], input)
 *     backward, t = T-1..0:  LAUNCH cell_bwd (h[t], h[t-1] or input, w, gw); FREE h[t]
 *     LAUNCH opt (w, gw)
 *
 * Every h[t] comes from one allocation site, so only the ordinal tells them apart, and the inner step
 * repeats T times within the iteration: the detector must not take it for the period.
 *
 * Sites: input 0x50, act[i] 0x100 + i (the LSTM's h[t] all 0x100), w[i] 0x200 + i, gw[i] 0x300 + i.
 * Launch times advance by each launch's duration plus gap_ns; durations are fwd_ns, bwd_ns, opt_ns and
 * loss_ns (0: untimed), or per layer from fwd[]/bwd[] when not NULL. act[] gives per-layer activation
 * sizes. g.act[i] holds the trace buffer numbers of the latest step's activations; pt_ibuf() maps a
 * trace buffer to its number in an iteration. Any builder failure aborts: these are test fixtures. */
#ifndef MV_TESTS_POLICYTEST_H
#define MV_TESTS_POLICYTEST_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policies/policy.h"
#include "policies/trace.h"

#define PT_KIB (1024ull)
#define PT_MIB (1024ull * 1024)
#define PT_GIB (1024ull * 1024 * 1024)

#define PT_FWD(i) (i)
#define PT_LOSS(L) (L)
#define PT_BWD(L, i) ((L) + 1 + ((L) - 1 - (i)))
#define PT_OPT(L, i) (2 * (L) + 1 + (i))

#define PT_MAX_LAYERS 4096

/* What to generate. */
struct pt_net {
	uint32_t layers;          /* layers, or the LSTM's time steps */
	uint64_t act_bytes;       /* each activation, unless act[] */
	const uint64_t *act;      /* per-layer activation sizes, or NULL */
	uint64_t weight_bytes;    /* each weight and gradient; 0: none (launches then name fewer buffers) */
	uint64_t input_bytes;     /* the input batch, allocated once */
	uint64_t fwd_ns, bwd_ns, opt_ns, loss_ns; /* launch durations; 0 leaves the launch untimed */
	const uint64_t *fwd, *bwd; /* per-layer durations, or NULL */
	uint64_t gap_ns;          /* host time between launches */
	int mark;                 /* a MARK at each step's start */
	int same_funcs;           /* one fwd, bwd and opt function for every layer */
	int pin_weights;          /* weights and gradients MV_TBUF_PINNED */
	int lstm;                 /* the LSTM-like step instead of the layered one */
};

/* A trace being generated. */
struct pt_gen {
	struct mv_trace *t;       /* owned */
	struct pt_net net;
	uint64_t now;
	uint32_t input;
	uint32_t w[PT_MAX_LAYERS], gw[PT_MAX_LAYERS], act[PT_MAX_LAYERS];
	uint32_t f_fwd[PT_MAX_LAYERS], f_bwd[PT_MAX_LAYERS], f_opt[PT_MAX_LAYERS];
	uint32_t f_loss;
	uint32_t steps;           /* whole steps generated */
};

#define PT_OK(expr)                                                                                 \
	do {                                                                                        \
		int pt_rc_ = (expr);                                                                \
		if (pt_rc_ != 0) {                                                                  \
			fprintf(stderr, "%s:%d: %s = %d\n", __FILE__, __LINE__, #expr, pt_rc_);     \
			abort();                                                                    \
		}                                                                                   \
	} while (0)

/* A layered network with the usual defaults: 1 ms forward, 2 ms backward, 0.1 ms optimizer. */
static inline struct pt_net pt_net_layered(uint32_t layers, uint64_t act_bytes, uint64_t weight_bytes)
{
	struct pt_net n;

	memset(&n, 0, sizeof n);
	n.layers = layers;
	n.act_bytes = act_bytes;
	n.weight_bytes = weight_bytes;
	n.input_bytes = act_bytes;
	n.fwd_ns = 1000000;
	n.bwd_ns = 2000000;
	n.opt_ns = 100000;
	n.loss_ns = 50000;
	n.gap_ns = 1000;
	return n;
}

/* An LSTM-like network of `steps` inner time steps. */
static inline struct pt_net pt_net_lstm(uint32_t steps, uint64_t h_bytes, uint64_t weight_bytes)
{
	struct pt_net n = pt_net_layered(steps, h_bytes, weight_bytes);

	n.lstm = 1;
	return n;
}

static inline uint64_t pt_act_bytes(const struct pt_gen *g, uint32_t i)
{
	return g->net.act != NULL ? g->net.act[i] : g->net.act_bytes;
}

static inline uint32_t pt_func(struct pt_gen *g, const char *fmt, uint32_t i)
{
	char name[64];
	uint32_t f;

	snprintf(name, sizeof name, fmt, i);
	PT_OK(mv_trace_add_func(g->t, name, &f));
	return f;
}

static inline void pt_gen_init(struct pt_gen *g, const struct pt_net *net, uint64_t device_total)
{
	uint32_t i, L = net->layers, nw;

	if (L == 0 || L > PT_MAX_LAYERS)
		abort();
	memset(g, 0, sizeof *g);
	g->net = *net;
	g->t = mv_trace_new(device_total, 0);
	if (g->t == NULL)
		abort();
	g->now = 1000000;
	for (i = 0; i < L; i++) {
		int shared = net->same_funcs || net->lstm;

		if (i == 0 || !shared) {
			g->f_fwd[i] = pt_func(g, net->lstm ? "cell" : "fwd%u", i);
			g->f_bwd[i] = pt_func(g, net->lstm ? "cell_bwd" : "bwd%u", i);
			if (!net->lstm)
				g->f_opt[i] = pt_func(g, "opt%u", i);
		} else {
			g->f_fwd[i] = g->f_fwd[0];
			g->f_bwd[i] = g->f_bwd[0];
			g->f_opt[i] = g->f_opt[0];
		}
	}
	if (net->lstm)
		g->f_opt[0] = pt_func(g, "opt", 0);
	g->f_loss = pt_func(g, "loss", 0);
	PT_OK(mv_trace_add_alloc(g->t, net->input_bytes ? net->input_bytes : 1, 0x50, 0, g->now, &g->input));
	nw = net->lstm ? 1 : L;
	for (i = 0; net->weight_bytes != 0 && i < nw; i++) {
		uint32_t fl = net->pin_weights ? MV_TBUF_PINNED : 0;

		PT_OK(mv_trace_add_alloc(g->t, net->weight_bytes, 0x200 + i, fl, g->now, &g->w[i]));
		PT_OK(mv_trace_add_alloc(g->t, net->weight_bytes, 0x300 + i, fl, g->now, &g->gw[i]));
	}
}

static inline void pt_launch(struct pt_gen *g, uint32_t func, uint64_t dur, const uint32_t *refs, uint32_t n)
{
	PT_OK(mv_trace_add_launch(g->t, func, 0, g->now, dur, refs, n));
	g->now += dur + g->net.gap_ns;
}

/* Emits the first `limit` launches of one step (all of it when limit >= its length), with the
 * allocations and frees that come before each. Returns how many launches it emitted. */
static inline uint32_t pt_gen_step(struct pt_gen *g, uint32_t limit)
{
	const struct pt_net *n = &g->net;
	uint32_t L = n->layers, i, r[4], k, done = 0;
	int hw = n->weight_bytes != 0;

	if (n->mark)
		PT_OK(mv_trace_add_mark(g->t, g->now));
	for (i = 0; i < L; i++) {
		uint32_t wi = n->lstm ? 0 : i;

		if (done == limit)
			return done;
		PT_OK(mv_trace_add_alloc(g->t, pt_act_bytes(g, i), 0x100 + (n->lstm ? 0 : i), 0, g->now, &g->act[i]));
		k = 0;
		r[k++] = i == 0 ? g->input : g->act[i - 1];
		if (hw)
			r[k++] = g->w[wi];
		r[k++] = g->act[i];
		pt_launch(g, g->f_fwd[i], n->fwd != NULL ? n->fwd[i] : n->fwd_ns, r, k);
		done++;
	}
	if (done == limit)
		return done;
	r[0] = g->act[L - 1];
	r[1] = g->input;
	pt_launch(g, g->f_loss, n->loss_ns, r, 2);
	done++;
	for (i = L; i-- > 0;) {
		uint32_t wi = n->lstm ? 0 : i;

		if (done == limit)
			return done;
		k = 0;
		r[k++] = g->act[i];
		r[k++] = i == 0 ? g->input : g->act[i - 1];
		if (hw) {
			r[k++] = g->w[wi];
			r[k++] = g->gw[wi];
		}
		pt_launch(g, g->f_bwd[i], n->bwd != NULL ? n->bwd[i] : n->bwd_ns, r, k);
		done++;
		PT_OK(mv_trace_add_free(g->t, g->act[i], g->now));
	}
	for (i = 0; i < (n->lstm ? 1u : L); i++) {
		if (done == limit)
			return done;
		if (hw) {
			r[0] = g->w[i];
			r[1] = g->gw[i];
		}
		pt_launch(g, g->f_opt[i], n->opt_ns, r, hw ? 2 : 0);
		done++;
	}
	return done;
}

/* Launches in one whole step. */
static inline uint32_t pt_step_launches(const struct pt_net *n)
{
	return n->lstm ? 2 * n->layers + 2 : 3 * n->layers + 1;
}

static inline void pt_gen_iterations(struct pt_gen *g, uint32_t steps)
{
	while (steps-- > 0) {
		pt_gen_step(g, UINT32_MAX);
		g->steps++;
	}
}

/* The first `launches` launches of one more step, as when a job is killed mid-step. */
static inline void pt_gen_partial(struct pt_gen *g, uint32_t launches)
{
	pt_gen_step(g, launches);
}

static inline void pt_gen_free(struct pt_gen *g)
{
	mv_trace_free(g->t);
	g->t = NULL;
}

/* Detects and builds the trace's iteration (default_dur_ns for untimed launches); aborts when
 * either fails. Free with mv_iter_free(). */
static inline struct mv_iter *pt_iter(const struct pt_gen *g, uint64_t default_dur_ns)
{
	uint32_t first, n;
	struct mv_iter *it = NULL;

	PT_OK(mv_iter_detect(g->t, &first, &n));
	PT_OK(mv_iter_build(g->t, first, n, default_dur_ns, &it));
	return it;
}

/* The iteration buffer number of trace buffer `tb`, or MV_TRACE_NONE. */
static inline uint32_t pt_ibuf(const struct mv_iter *it, uint32_t tb)
{
	uint32_t b;

	for (b = 0; b < it->nbufs; b++)
		if (it->bufs[b].trace_buf == tb)
			return b;
	return MV_TRACE_NONE;
}

/* A small deterministic generator (xorshift64*) for property tests. */
static inline uint64_t pt_rand(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

static inline uint32_t pt_rand_below(uint64_t *s, uint32_t n)
{
	return n == 0 ? 0 : (uint32_t)(pt_rand(s) % n);
}

#endif
