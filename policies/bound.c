/* What no plan can beat: the least budget an iteration can run in, and the per-launch bound with
 * release times and deadlines (memvirt-policies(7), THE LOWER BOUND). */
#include "config.h"

#include <math.h>
#include <stdlib.h>

#include "policies/policy.h"

/* Whether buffer b is allocated and not yet freed when launch i runs. */
static int bound_alive_at(const struct mv_iter_buf *b, uint32_t i)
{
	return (b->alloc_at == MV_TRACE_NONE || b->alloc_at <= i) &&
	       (b->free_at == MV_TRACE_NONE || i < b->free_at);
}

/* The never-paged buffers alive when launch i runs. */
static uint64_t bound_pinned_at(const struct mv_iter *it, uint32_t i)
{
	uint64_t need = 0;

	for (uint32_t b = 0; b < it->nbufs; b++)
		if ((it->bufs[b].flags & MV_IBUF_PINNED) && bound_alive_at(&it->bufs[b], i))
			need += it->bufs[b].size;
	return need;
}

/* Bytes launch i cannot run without: the never-paged buffers alive then, and every buffer it
 * names. */
static uint64_t bound_launch_need(const struct mv_iter *it, uint32_t i)
{
	const struct mv_iter_launch *l = &it->launch[i];
	uint64_t need = bound_pinned_at(it, i);

	for (uint32_t k = 0; k < l->nrefs; k++) {
		uint32_t b = it->refs[l->ref0 + k], dup = 0;

		/* A never-paged buffer is counted above, whether the launch names it or not. */
		if (it->bufs[b].flags & MV_IBUF_PINNED)
			continue;
		/* A buffer named twice by one launch counts once. */
		for (uint32_t j = 0; j < k && !dup; j++)
			dup = it->refs[l->ref0 + j] == b;
		if (!dup)
			need += it->bufs[b].size;
	}
	return need;
}

uint64_t mv_model_min_budget_mapped(const struct mv_iter *it)
{
	uint64_t best = 0;

	for (uint32_t i = 0; i < it->nlaunch; i++) {
		uint64_t need = bound_pinned_at(it, i);

		if (need > best)
			best = need;
	}
	return best;
}

uint64_t mv_model_min_budget(const struct mv_iter *it)
{
	uint64_t best = 0;

	for (uint32_t i = 0; i < it->nlaunch; i++) {
		uint64_t need = bound_launch_need(it, i);

		if (need > best)
			best = need;
	}
	return best;
}

/* ---- the per-launch bound with release times and deadlines ---- */

/* Every buffer's uses, and room to sort one launch's byte ranges by launch number. */
struct mv_uses {
	uint32_t nlaunch;
	struct mv_iter_uses iu;
	uint32_t *cnt, *key;
	struct timed *tmp, *out, *in;
};

/* A byte range that must be off at a launch: when it can start leaving (after its last use before
 * the launch) or the compute left after the launch it must be back for. */
struct timed {
	double at, size;
};

struct mv_uses *mv_uses_new(const struct mv_iter *it)
{
	struct mv_uses *u = calloc(1, sizeof *u);
	size_t nb = (size_t)it->nbufs + 1;

	if (u == NULL)
		return NULL;
	u->nlaunch = it->nlaunch;
	u->cnt = malloc(((size_t)it->nlaunch + 1) * sizeof *u->cnt);
	u->key = malloc(2 * nb * sizeof *u->key);
	u->tmp = malloc(4 * nb * sizeof *u->tmp);
	if (mv_iter_uses_build(it, &u->iu) < 0 || u->cnt == NULL || u->key == NULL || u->tmp == NULL) {
		mv_uses_free(u);
		return NULL;
	}
	u->out = u->tmp + 2 * nb;
	u->in = u->out + nb;
	return u;
}

void mv_uses_free(struct mv_uses *u)
{
	if (u == NULL)
		return;
	mv_iter_uses_free(&u->iu);
	free(u->cnt);
	free(u->key);
	free(u->tmp);
	free(u);
}

/* Whether launch p names buffer b, by a binary search of b's uses; also the uses around p. */
static int uses_around(const struct mv_uses *u, uint32_t b, uint32_t p, uint32_t *prev, uint32_t *next)
{
	const uint32_t *use = u->iu.use;
	uint32_t lo = u->iu.off[b], hi = u->iu.off[b + 1], s = lo, e = hi;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (use[mid] < p)
			lo = mid + 1;
		else
			hi = mid;
	}
	*prev = lo > s ? use[lo - 1] : MV_TRACE_NONE;
	if (lo < e && use[lo] == p)
		return 1;
	*next = lo < e ? use[lo] : MV_TRACE_NONE;
	return 0;
}

/* Sorts t[0, n) into dst by key[] (launch numbers) with a counting sort, ascending or descending,
 * then turns each entry's at into at - (bytes before it) / bpns, running maximum: see timed_eval. */
static void timed_sort(struct mv_uses *u, const struct timed *t, const uint32_t *key, uint32_t n, int desc,
		       double bpns, struct timed *dst)
{
	uint32_t L = u->nlaunch, i, j, sum = 0;
	double before = 0, best = -INFINITY;

	for (j = 0; j <= L; j++)
		u->cnt[j] = 0;
	for (i = 0; i < n; i++)
		u->cnt[desc ? L - key[i] : key[i]]++;
	for (j = 0; j <= L; j++) {
		uint32_t c = u->cnt[j];

		u->cnt[j] = sum;
		sum += c;
	}
	for (i = 0; i < n; i++)
		dst[u->cnt[desc ? L - key[i] : key[i]]++] = t[i];
	for (i = 0; i < n; i++) {
		double v = dst[i].at - before / bpns;

		best = v > best ? v : best;
		before += dst[i].size;
		dst[i].at = best;
		dst[i].size = before; /* now the bytes up to and including it */
	}
}

/*
 * The least time that moving the first y bytes of the sorted ranges takes: the byte ranges from
 * entry i on in a prefix of y bytes hold y - (bytes before i), and cannot start before their at, so
 * the time is at least at_i + (y - before_i) / bpns for each i in the prefix, and at least floor.
 * timed_sort stored the running maximum of at_i - before_i / bpns: one binary search finds it.
 */
static double timed_eval(const struct timed *t, uint32_t n, double y, double bpns, double floor)
{
	uint32_t lo = 0, hi = n;
	double v;

	if (y <= 0 || n == 0)
		return floor;
	/* The prefix holding y bytes ends at the first entry whose running total reaches y. */
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (t[mid].size < y)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == n) {
		/* More bytes than there are: no schedule has to move more than all of them. */
		lo = n - 1;
		y = t[lo].size;
	}
	v = t[lo].at + y / bpns;
	return v > floor ? v : floor;
}

/* The pieces the split between bytes out and bytes in is cut into. */
#define TIMED_STEPS 32

double mv_bound_timed(const struct mv_iter *it, struct mv_uses *u, uint32_t p, double R, const uint64_t *cb,
		      uint64_t total, const struct mv_machine *m)
{
	double d2h = m->d2h_bps / 1e9, h2d = m->h2d_bps / 1e9, A = 0, B = 0, yl, yh, best = -1;
	double cbp = (double)cb[p], cfp = (double)(total - cb[p]);
	uint32_t b, nout = 0, nin = 0, prev, next, k, nb = it->nbufs + 1;
	struct timed *to = u->tmp, *ti = u->tmp + nb;
	uint32_t *ko = u->key, *ki = u->key + nb;

	for (b = 0; b < it->nbufs; b++) {
		const struct mv_iter_buf *ib = &it->bufs[b];

		if ((ib->flags & MV_IBUF_PINNED) || !bound_alive_at(ib, p) || uses_around(u, b, p, &prev, &next))
			continue;
		if (prev != MV_TRACE_NONE) {
			ko[nout] = prev;
			to[nout++] = (struct timed){(double)(cb[prev] + it->launch[prev].dur_ns), (double)ib->size};
		}
		if (next != MV_TRACE_NONE) {
			ki[nin] = next;
			ti[nin++] = (struct timed){(double)(total - cb[next]), (double)ib->size};
		}
		A += next == MV_TRACE_NONE && prev != MV_TRACE_NONE ? (double)ib->size : 0;
		B += prev == MV_TRACE_NONE && next != MV_TRACE_NONE ? (double)ib->size : 0;
	}
	/* Out: released earliest first. In: needed latest first (least compute left after it). */
	timed_sort(u, to, ko, nout, 0, d2h, u->out);
	timed_sort(u, ti, ki, nin, 1, h2d, u->in);
	/* y bytes leave before p and z come back after it, y >= R - B, z >= R - A, y + z >= R (only D
	 * is both). Both times grow with their bytes, so the least sum has y + z = R where it can. */
	yl = R - B > 0 ? R - B : 0;
	yh = A < R ? A : R;
	if (yl >= yh)
		return timed_eval(u->out, nout, yl, d2h, cbp) + timed_eval(u->in, nin, R - A, h2d, cfp);
	/* Over each piece [y0, y1] of the range, the sum is at least out(y0) + in(R - y1). */
	for (k = 0; k < TIMED_STEPS; k++) {
		double y0 = yl + (yh - yl) * k / TIMED_STEPS, y1 = yl + (yh - yl) * (k + 1) / TIMED_STEPS;
		double v = timed_eval(u->out, nout, y0, d2h, cbp) + timed_eval(u->in, nin, R - y1, h2d, cfp);

		if (best < 0 || v < best)
			best = v;
	}
	return best;
}
