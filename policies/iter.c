/* Iterations: finding the training loop's period in a trace and building the iteration policies plan. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "policies/policy.h"

/* A launch as the period finder compares them. */
struct key {
	uint32_t func, nrefs;
};

static int key_eq(const struct key *a, const struct key *b)
{
	return a->func == b->func && a->nrefs == b->nrefs;
}

/* The last two marks bound the iteration. */
static int detect_marks(const struct mv_trace *t, uint32_t nmarks, uint32_t *first_op, uint32_t *nops)
{
	uint32_t i, m2 = MV_TRACE_NONE, m1 = MV_TRACE_NONE;

	if (nmarks < 2)
		return -ENOENT;
	for (i = t->nops; i-- > 0;) {
		if (t->ops[i].kind != MV_TREC_MARK)
			continue;
		if (m2 == MV_TRACE_NONE) {
			m2 = i;
		} else {
			m1 = i;
			break;
		}
	}
	for (i = m1 + 1; i < m2; i++)
		if (t->ops[i].kind == MV_TREC_LAUNCH)
			break;
	if (i == m2)
		return -ENOENT;
	*first_op = m1 + 1;
	*nops = m2 - m1 - 1;
	return 0;
}

/* z[i]: the length of the longest common prefix of s and s[i..]; z[0] = n. */
static void z_function(const struct key *s, uint32_t n, uint32_t *z)
{
	uint32_t i, l = 0, r = 0;

	if (n == 0)
		return;
	z[0] = n;
	for (i = 1; i < n; i++) {
		uint32_t k = 0;

		if (i < r)
			k = z[i - l] < r - i ? z[i - l] : r - i;
		while (i + k < n && key_eq(&s[k], &s[i + k]))
			k++;
		z[i] = k;
		if (i + k > r) {
			l = i;
			r = i + k;
		}
	}
}

/*
 * Without marks. Launches are compared by function and the number of buffers named. Reading the launch
 * sequence backwards from the end, a period P is a candidate when the last P launches repeat the P
 * before them (the Z-function of the reversed sequence at P is at least P), and when the bytes alive
 * before launch n-2P and before launch n-P are equal: an inner loop (an LSTM's time steps) allocates
 * without freeing, or frees without allocating, so its footprint drifts and it is refused. Where the
 * trace allocates or frees at all between launches, a candidate period must also contain an ALLOC or
 * FREE: an optimizer's loop over identical layers keeps the footprint flat and would otherwise pass.
 * Of the candidates, the one whose repetition reaches furthest back wins (an inner loop repeats within
 * one iteration, the training loop across all of them), the shortest on a tie, which rejects the
 * multiples of the period. Then the window is rotated to begin after the launch past which the bytes
 * alive are lowest (the end of the optimizer step, typically), at the end of that low plateau, so that
 * no buffer's life is split by the iteration boundary, and the last complete such window is returned.
 */
int mv_iter_detect(const struct mv_trace *t, uint32_t *first_op, uint32_t *nops)
{
	struct key *key = NULL;
	uint32_t *lop = NULL, *z = NULL, i, n = 0, nmarks = 0, P = 0, k, best_p = 0, best_k;
	uint64_t *live = NULL, *gapmin = NULL, *churn = NULL, bytes = 0, best_cover = 0, lo;
	int rc = -ENOENT, any_churn = 0;

	if (t == NULL || first_op == NULL || nops == NULL)
		return -EINVAL;
	for (i = 0; i < t->nops; i++) {
		n += t->ops[i].kind == MV_TREC_LAUNCH;
		nmarks += t->ops[i].kind == MV_TREC_MARK;
	}
	if (nmarks > 0)
		return detect_marks(t, nmarks, first_op, nops);
	if (n < 2)
		return -ENOENT;
	key = malloc((size_t)n * sizeof *key);
	lop = malloc((size_t)n * sizeof *lop);
	z = malloc((size_t)n * sizeof *z);
	live = malloc((size_t)n * sizeof *live);
	gapmin = malloc((size_t)n * sizeof *gapmin);
	churn = malloc(((size_t)n + 1) * sizeof *churn);
	if (key == NULL || lop == NULL || z == NULL || live == NULL || gapmin == NULL || churn == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	/* live[k]: bytes alive just before launch k; gapmin[k]: the fewest alive between launch k and the
	 * next; churn[k]: ALLOCs and FREEs before launch k, counted from the first launch. */
	k = 0;
	churn[0] = 0;
	for (i = 0; i < t->nops; i++) {
		const struct mv_trace_op *op = &t->ops[i];

		if (op->kind == MV_TREC_ALLOC || op->kind == MV_TREC_FREE) {
			uint64_t sz = t->bufs[op->id].size;

			bytes = op->kind == MV_TREC_ALLOC ? bytes + sz : bytes - sz;
			if (k > 0) {
				churn[k]++;
				any_churn = 1;
				if (bytes < gapmin[k - 1])
					gapmin[k - 1] = bytes;
			}
		} else if (op->kind == MV_TREC_LAUNCH) {
			key[n - 1 - k] = (struct key){op->id, op->nrefs};
			lop[k] = i;
			live[k] = bytes;
			gapmin[k] = bytes;
			if (k + 1 <= n)
				churn[k + 1] = churn[k];
			k++;
		}
	}
	z_function(key, n, z);
	for (P = 1; P <= n / 2; P++) {
		uint64_t cover = (uint64_t)z[P] + P;

		if (z[P] < P || live[n - 2 * P] != live[n - P])
			continue;
		if (any_churn && churn[n - P] == churn[n - 2 * P])
			continue;
		if (cover > best_cover) {
			best_cover = cover;
			best_p = P;
		}
	}
	if (best_cover == 0)
		goto out;
	P = best_p;
	/* Rotate: the launch k of the second-to-last period after which the fewest bytes are alive, at
	 * the end of a plateau of such launches. */
	lo = UINT64_MAX;
	for (k = n - 2 * P; k < n - P; k++)
		if (gapmin[k] < lo)
			lo = gapmin[k];
	best_k = n - P - 1;
	for (k = n - 2 * P; k < n - P; k++) {
		if (gapmin[k] == lo && gapmin[k + 1] > lo) {
			best_k = k;
			break;
		}
	}
	if (live[best_k] != live[best_k + P])
		best_k = n - P - 1;
	*first_op = lop[best_k] + 1;
	*nops = lop[best_k + P] - lop[best_k];
	rc = 0;
out:
	free(key);
	free(lop);
	free(z);
	free(live);
	free(gapmin);
	free(churn);
	return rc;
}

int mv_iter_detect_recorded(const struct mv_trace *t, uint32_t max_tail, uint32_t *first_op, uint32_t *nops)
{
	struct mv_trace view;
	uint32_t tail = 0;
	int rc;

	if (t == NULL || first_op == NULL || nops == NULL)
		return -EINVAL;
	/* A view that ends earlier: detection reads only ops[0, nops) and the buffers they name. */
	view = *t;
	for (;;) {
		rc = mv_iter_detect(&view, first_op, nops);
		if (rc != -ENOENT || tail == max_tail)
			return rc;
		while (view.nops > 0 && view.ops[view.nops - 1].kind != MV_TREC_LAUNCH)
			view.nops--;
		if (view.nops == 0)
			return -ENOENT;
		view.nops--;
		tail++;
	}
}

/* ---- building the iteration ----------------------------------------------------------------------- */

/* Counts buffers per (site, size) for their ordinals: open addressing over a power-of-two table. */
struct ordtab {
	uint64_t *site, *size;
	uint32_t *count;
	uint32_t mask;
};

static uint32_t ordinal_next(struct ordtab *o, uint64_t site, uint64_t size)
{
	uint64_t h = (site * 0x9E3779B97F4A7C15ull) ^ (size * 0xC2B2AE3D27D4EB4Full);
	uint32_t i = (uint32_t)(h ^ h >> 32) & o->mask;

	while (o->count[i] != 0 && (o->site[i] != site || o->size[i] != size))
		i = (i + 1) & o->mask;
	o->site[i] = site;
	o->size[i] = size;
	return o->count[i]++;
}

/* The iteration being built and the trace-to-iteration buffer map. */
struct builder {
	const struct mv_trace *t;
	struct mv_iter *it;
	uint32_t *map;   /* trace buffer -> iteration buffer */
	uint32_t *seen;  /* trace buffer -> 1 + the launch that last named it, to drop repeats */
};

static uint32_t ibuf(struct builder *b, uint32_t tb, uint32_t alloc_at)
{
	struct mv_iter_buf *ib;

	if (b->map[tb] != MV_TRACE_NONE)
		return b->map[tb];
	ib = &b->it->bufs[b->it->nbufs];
	ib->size = b->t->bufs[tb].size;
	ib->site = b->t->bufs[tb].site;
	ib->flags = (b->t->bufs[tb].flags & MV_TBUF_PINNED) ? MV_IBUF_PINNED : 0;
	ib->alloc_at = alloc_at;
	ib->free_at = MV_TRACE_NONE;
	ib->first_use = MV_TRACE_NONE;
	ib->last_use = MV_TRACE_NONE;
	ib->trace_buf = tb;
	b->map[tb] = b->it->nbufs;
	return b->it->nbufs++;
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *c = p;

	while (n-- > 0)
		h = (h ^ *c++) * 0x100000001b3ull;
	return h;
}

static const char *trace_name(void *ctx, uint32_t func)
{
	const struct mv_trace *t = ctx;

	return func < t->nfuncs ? t->funcs[func] : "";
}

uint64_t mv_iter_fingerprint(const struct mv_iter *it, const char *(*name)(void *ctx, uint32_t func), void *ctx)
{
	uint64_t h = 0xcbf29ce484222325ull;
	uint32_t i;

	for (i = 0; i < it->nlaunch; i++) {
		const char *nm = name(ctx, it->launch[i].func);
		uint8_t n[4];

		h = fnv(h, nm, strlen(nm) + 1);
		/* Little-endian, so that every host hashes alike. */
		n[0] = (uint8_t)it->launch[i].nrefs;
		n[1] = (uint8_t)(it->launch[i].nrefs >> 8);
		n[2] = (uint8_t)(it->launch[i].nrefs >> 16);
		n[3] = (uint8_t)(it->launch[i].nrefs >> 24);
		h = fnv(h, n, sizeof n);
	}
	return h;
}

/* Sizes the iteration of ops [first_op, first_op + nops) and allocates it and b's maps; what it
 * allocated before a failure is b's to free (builder_done). */
static int builder_init(struct builder *b, const struct mv_trace *t, uint32_t first_op, uint32_t nops)
{
	uint32_t i, nl = 0, nr = 0, nb = t->nbufs ? t->nbufs : 1;
	struct mv_iter *it;

	for (i = first_op; i < first_op + nops; i++) {
		if (t->ops[i].kind == MV_TREC_LAUNCH) {
			nl++;
			nr += t->ops[i].nrefs;
		}
	}
	b->t = t;
	b->it = it = calloc(1, sizeof *it);
	if (it == NULL)
		return -ENOMEM;
	it->first_op = first_op;
	it->nops = nops;
	it->launch = calloc(nl ? nl : 1, sizeof *it->launch);
	it->refs = malloc((nr ? nr : 1) * sizeof *it->refs);
	it->bufs = calloc(nb, sizeof *it->bufs);
	b->map = malloc(nb * sizeof *b->map);
	b->seen = calloc(nb, sizeof *b->seen);
	if (it->launch == NULL || it->refs == NULL || it->bufs == NULL || b->map == NULL || b->seen == NULL)
		return -ENOMEM;
	memset(b->map, 0xff, nb * sizeof *b->map);
	return 0;
}

static void builder_done(struct builder *b)
{
	free(b->map);
	free(b->seen);
	mv_iter_free(b->it);
}

/* Appends launch op with the buffers it names, each once, in the order named. */
static void builder_launch(struct builder *b, const struct mv_trace_op *op, uint64_t default_dur_ns)
{
	struct mv_iter *it = b->it;
	struct mv_iter_launch *l = &it->launch[it->nlaunch];
	uint32_t r, tb, ib;

	l->func = op->id;
	l->stream = op->stream;
	l->dur_ns = op->dur_ns != 0 ? op->dur_ns : default_dur_ns;
	l->ref0 = it->nrefs;
	for (r = 0; r < op->nrefs; r++) {
		tb = b->t->refs[op->ref0 + r];
		if (b->seen[tb] == it->nlaunch + 1)
			continue;
		b->seen[tb] = it->nlaunch + 1;
		ib = ibuf(b, tb, MV_TRACE_NONE);
		if (it->bufs[ib].first_use == MV_TRACE_NONE)
			it->bufs[ib].first_use = it->nlaunch;
		it->bufs[ib].last_use = it->nlaunch;
		it->refs[it->nrefs++] = ib;
	}
	l->nrefs = it->nrefs - l->ref0;
	it->nlaunch++;
}

/* The iteration's launches and its buffers' lives from ops [first_op, end), then the buffers alive
 * when it begins that it never touches, which still take room. */
static void builder_walk(struct builder *b, uint32_t first_op, uint32_t end, uint64_t default_dur_ns)
{
	const struct mv_trace *t = b->t;
	uint32_t i, ib, tb;

	for (i = first_op; i < end; i++) {
		const struct mv_trace_op *op = &t->ops[i];

		switch (op->kind) {
		case MV_TREC_ALLOC:
			ibuf(b, op->id, b->it->nlaunch);
			break;
		case MV_TREC_FREE:
			ib = ibuf(b, op->id, MV_TRACE_NONE);
			b->it->bufs[ib].free_at = b->it->nlaunch;
			break;
		case MV_TREC_LAUNCH:
			builder_launch(b, op, default_dur_ns);
			break;
		default:
			break;
		}
	}
	for (tb = 0; tb < t->nbufs; tb++) {
		const struct mv_trace_buf *tbuf = &t->bufs[tb];

		if (tbuf->alloc_op < first_op && (tbuf->free_op == MV_TRACE_NONE || tbuf->free_op >= first_op))
			ibuf(b, tb, MV_TRACE_NONE);
	}
}

/* Numbers each buffer among those of its (site, size), in the iteration's buffer order. */
static int iter_ordinals(struct mv_iter *it)
{
	struct ordtab o;
	uint32_t i, cap;
	int rc = -ENOMEM;

	for (cap = 16; cap < 2 * (uint64_t)it->nbufs; cap *= 2)
		;
	o.site = malloc(cap * sizeof *o.site);
	o.size = malloc(cap * sizeof *o.size);
	o.count = calloc(cap, sizeof *o.count);
	o.mask = cap - 1;
	if (o.site == NULL || o.size == NULL || o.count == NULL)
		goto out;
	for (i = 0; i < it->nbufs; i++)
		it->bufs[i].ordinal = ordinal_next(&o, it->bufs[i].site, it->bufs[i].size);
	rc = 0;
out:
	free(o.site);
	free(o.size);
	free(o.count);
	return rc;
}

int mv_iter_build(const struct mv_trace *t, uint32_t first_op, uint32_t nops, uint64_t default_dur_ns,
		  struct mv_iter **out)
{
	struct builder b = {NULL, NULL, NULL, NULL};
	int rc;

	if (t == NULL || out == NULL || first_op > t->nops || nops > t->nops - first_op)
		return -EINVAL;
	*out = NULL;
	rc = builder_init(&b, t, first_op, nops);
	if (rc == 0) {
		builder_walk(&b, first_op, first_op + nops, default_dur_ns);
		b.it->fingerprint = mv_iter_fingerprint(b.it, trace_name, (void *)t);
		rc = iter_ordinals(b.it);
	}
	if (rc == 0) {
		*out = b.it;
		b.it = NULL;
	}
	builder_done(&b);
	return rc;
}

void mv_iter_free(struct mv_iter *it)
{
	if (it == NULL)
		return;
	free(it->launch);
	free(it->bufs);
	free(it->refs);
	free(it);
}

int mv_iter_uses_build(const struct mv_iter *it, struct mv_iter_uses *u)
{
	uint32_t i, k, b, *fill;

	u->off = calloc((size_t)it->nbufs + 1, sizeof(*u->off));
	u->use = malloc(((size_t)it->nrefs + 1) * sizeof(*u->use));
	fill = calloc((size_t)it->nbufs + 1, sizeof(*fill));
	if (u->off == NULL || u->use == NULL || fill == NULL) {
		free(fill);
		mv_iter_uses_free(u);
		return -ENOMEM;
	}
	for (i = 0; i < it->nlaunch; i++)
		for (k = 0; k < it->launch[i].nrefs; k++) {
			b = it->refs[it->launch[i].ref0 + k];
			if (b < it->nbufs)
				u->off[b + 1]++;
		}
	for (b = 0; b < it->nbufs; b++)
		u->off[b + 1] += u->off[b];
	for (i = 0; i < it->nlaunch; i++)
		for (k = 0; k < it->launch[i].nrefs; k++) {
			b = it->refs[it->launch[i].ref0 + k];
			if (b < it->nbufs)
				u->use[u->off[b] + fill[b]++] = i;
		}
	free(fill);
	return 0;
}

void mv_iter_uses_free(struct mv_iter_uses *u)
{
	free(u->off);
	free(u->use);
	u->off = u->use = NULL;
}
