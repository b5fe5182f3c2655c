/* The time model: replays an iteration under a budget and a plan, and bounds what any plan can do.
 *
 * Engines. Launches run one at a time on a compute engine, in order, each for its dur_ns. Page-outs
 * run on a D2H engine and page-ins on an H2D engine, each first in, first out in the order issued, a
 * copy of s bytes taking ceil(s * 1e9 / bandwidth) ns.
 *
 * Memory. Device bytes are granted first in, first out in the order asked for, never over the budget:
 * a request waits until enough page-outs and frees have released their bytes, and when nothing that
 * is pending would release enough, it evicts the least recently used resident buffer that is neither
 * pinned nor named by the launch the request is for (a reactive page-out, on the D2H engine like any
 * other), until the request fits. A page-out releases its buffer's bytes when the copy completes; a
 * free releases them when the launch before it finishes. Only when nothing can be evicted does a
 * request go over the budget, and the run reports over_budget; except on a machine that maps host
 * memory (host_mapped), where a launch's fault-in leaves the buffer out instead (the launch reads it
 * over the link: partial residency, step 3), and an allocation first evicts its launch's own
 * buffers and else starts in host memory.
 *
 * Launch k, where F is the time launch k-1 finished:
 *   1. buffers freed before k are released at F; buffers allocated before k are granted, no
 *      earlier than F;
 *   2. each buffer k names must be resident: one brought in by a planned page-in is ready when its copy
 *      completes, and if that is after F the page-in was late (late, fb->late_ns += the difference);
 *      one that is out is faulted in (faults): its room is granted no earlier than F and than the
 *      completion of its page-out, then it is copied on the H2D engine;
 *   3. k starts at the latest of F, its grants and its buffers' readiness (stall_ns += start - F) and
 *      finishes dur_ns later, or, with buffers left out (host_runs, host_bytes), no earlier than
 *      their bytes take over the link at the H2D rate, which runs alongside its work as the
 *      simulated driver charges it (so the step is then longer than compute plus stall); those
 *      buffers' host copies are complete when it finishes, and no planned page-in brings them
 *      back until a launch has faulted them in, as in the library;
 *   4. the plan's ops with at == k are issued, OUTs first: an OUT of a resident, unpinned buffer
 *      starts when launch k and the buffer's latest user have finished and the D2H engine is free;
 *      an IN of a buffer that is out asks for its room no earlier than the start of launch k and the
 *      completion of the buffer's page-out, then copies on the H2D engine. Ops on buffers in the
 *      other state, or not allocated, are ignored. INs with at == MV_TRACE_NONE are issued when the
 *      iteration begins: at the start of the previous iteration's last launch.
 * Frees and allocations after the last launch (free_at or alloc_at == nlaunch) happen when it
 * finishes.
 *
 * Steady state. The iteration is run twice on one timeline and the second run is reported. The first
 * begins with every buffer alive at the iteration's start resident (those that do not fit under the
 * budget on the host). Between the runs, buffers allocated during the iteration that outlive it are
 * dropped, and buffers alive at its start that it freed are allocated again, so the second run begins
 * with the state (resident or out, copies in flight, engines busy) the first one left. step_ns is the
 * time from the end of the first run's last launch to the end of the second's, so it includes any
 * wait the second run has for copies the first one issued, and step_ns == compute_ns + stall_ns. */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "policies/policy.h"

enum { ABSENT, DEV, HOST };

/* A min-heap of (key, value) pairs. */
struct heap {
	uint64_t *key;
	uint64_t *val;
	size_t n, cap;
};

static int heap_push(struct heap *h, uint64_t key, uint64_t val)
{
	size_t i;

	if (h->n == h->cap) {
		size_t cap = h->cap < 64 ? 64 : h->cap * 2;
		uint64_t *k = realloc(h->key, cap * sizeof *k), *v;

		if (k == NULL)
			return -ENOMEM;
		h->key = k;
		v = realloc(h->val, cap * sizeof *v);
		if (v == NULL)
			return -ENOMEM;
		h->val = v;
		h->cap = cap;
	}
	for (i = h->n++; i > 0; i = (i - 1) / 2) {
		size_t up = (i - 1) / 2;

		if (h->key[up] < key || (h->key[up] == key && h->val[up] <= val))
			break;
		h->key[i] = h->key[up];
		h->val[i] = h->val[up];
	}
	h->key[i] = key;
	h->val[i] = val;
	return 0;
}

static void heap_pop(struct heap *h)
{
	uint64_t key, val;
	size_t i = 0, c;

	if (h->n == 0)
		return;
	key = h->key[--h->n];
	val = h->val[h->n];
	for (; (c = 2 * i + 1) < h->n; i = c) {
		if (c + 1 < h->n &&
		    (h->key[c + 1] < h->key[c] || (h->key[c + 1] == h->key[c] && h->val[c + 1] < h->val[c])))
			c++;
		if (key < h->key[c] || (key == h->key[c] && val <= h->val[c]))
			break;
		h->key[i] = h->key[c];
		h->val[i] = h->val[c];
	}
	h->key[i] = key;
	h->val[i] = val;
}

/* One replay. */
struct sim {
	const struct mv_iter *it;
	const struct mv_plan *plan;
	uint64_t budget;
	double h2d_bps, d2h_bps;
	int host_mapped;
	struct mv_model_result *r;
	struct mv_feedback *fb;
	const struct mv_model_observer *obs; /* NULL: nobody is told */
	int counting;          /* the second run: results are kept */
	int err;               /* -ENOMEM from a heap */

	uint8_t *st;           /* per buffer: ABSENT, DEV or HOST */
	uint8_t *planned;      /* resident through a planned page-in no launch has used yet */
	uint8_t *hused;        /* HOST: a launch read it there since its page-out; no plan brings it in */
	uint64_t *ready;       /* DEV: when its bytes are usable; HOST: when its host copy is complete */
	uint64_t *lu_fin;      /* when the latest launch naming it finishes */
	uint64_t *stamp;       /* recency for LRU: larger is more recent */
	uint64_t *excl;        /* equal to `token`: named by the launch a grant is for, not evictable */
	uint64_t token, clock;

	uint64_t used, cursor; /* bytes granted and not released; the time of the latest grant */
	struct heap rel;       /* pending releases: (time, bytes) */
	struct heap lru;       /* (stamp, buffer), stale entries skipped */
	uint64_t d2h_free, h2d_free;
	uint64_t *aside;       /* lru_victim's excluded entries, at most one per buffer */
	uint32_t *alloc_first, *alloc_list; /* buffers allocated before launch k: alloc_list[alloc_first[k] ..
					      * alloc_first[k + 1]); likewise for frees */
	uint32_t *free_first, *free_list;
};

static uint64_t copy_ns(uint64_t bytes, double bps)
{
	return (uint64_t)ceil((double)bytes * 1e9 / bps);
}

static void touch(struct sim *s, uint32_t b)
{
	s->stamp[b] = ++s->clock;
	if (!(s->it->bufs[b].flags & MV_IBUF_PINNED) && heap_push(&s->lru, s->stamp[b], b) != 0)
		s->err = -ENOMEM;
}

static void release_until(struct sim *s, uint64_t t)
{
	while (s->rel.n > 0 && s->rel.key[0] <= t) {
		s->used -= s->rel.val[0];
		heap_pop(&s->rel);
	}
}

static void tell_held(struct sim *s, uint64_t t, int64_t delta)
{
	if (s->counting && s->obs != NULL && s->obs->held != NULL)
		s->obs->held(s->obs->ctx, t, delta);
}

static void tell_copy(struct sim *s, uint32_t b, int in, int kind, uint64_t start, uint64_t end)
{
	if (s->obs != NULL && s->obs->copy != NULL)
		s->obs->copy(s->obs->ctx, b, in, kind, start, end);
}

static void release_at(struct sim *s, uint64_t t, uint64_t bytes)
{
	if (heap_push(&s->rel, t, bytes) != 0)
		s->err = -ENOMEM;
	tell_held(s, t, -(int64_t)bytes);
}

/* Copies b out, issued at t; its bytes are released when the copy completes. kind: mv_model_copy. */
static void page_out(struct sim *s, uint32_t b, uint64_t t, int kind)
{
	uint64_t size = s->it->bufs[b].size, start = t, done;

	if (start < s->d2h_free)
		start = s->d2h_free;
	if (start < s->lu_fin[b])
		start = s->lu_fin[b];
	if (start < s->ready[b])
		start = s->ready[b];
	done = start + copy_ns(size, s->d2h_bps);
	s->d2h_free = done;
	release_at(s, done, size);
	s->st[b] = HOST;
	s->ready[b] = done;
	s->planned[b] = 0;
	if (s->counting) {
		s->r->page_outs++;
		s->r->bytes_out += size;
	}
	tell_copy(s, b, 0, kind, start, done);
}

/* The least recently used evictable buffer, or MV_TRACE_NONE. */
static uint32_t lru_victim(struct sim *s)
{
	uint32_t victim = MV_TRACE_NONE, naside = 0, i;

	while (s->lru.n > 0) {
		uint64_t k = s->lru.key[0], v = s->lru.val[0];
		uint32_t b = (uint32_t)v;

		heap_pop(&s->lru);
		if (s->stamp[b] != k || s->st[b] != DEV)
			continue; /* stale: a newer entry exists, or one is pushed when it is resident again */
		if (s->excl[b] == s->token) {
			s->aside[naside++] = b;
			continue;
		}
		victim = b;
		break;
	}
	for (i = 0; i < naside; i++)
		if (heap_push(&s->lru, s->stamp[s->aside[i]], s->aside[i]) != 0)
			s->err = -ENOMEM;
	return victim;
}

/* Grants `size` bytes no earlier than t0; returns the grant's time. When nothing can be evicted, a
 * request that may fail returns UINT64_MAX; any other goes over the budget. A fault-in that may stay
 * on the host (may_fail == ACQUIRE_STAY) keeps the time its evictions and releases reached, so that
 * no later request is granted bytes before they were freed. */
#define ACQUIRE_STAY 2
static uint64_t acquire(struct sim *s, uint64_t size, uint64_t t0, int may_fail)
{
	uint64_t t = t0 > s->cursor ? t0 : s->cursor;

	release_until(s, t);
	while (s->used > s->budget || size > s->budget - s->used) {
		uint32_t b;

		if (s->rel.n > 0) {
			if (s->rel.key[0] > t)
				t = s->rel.key[0];
			release_until(s, t);
			continue;
		}
		b = lru_victim(s);
		if (b == MV_TRACE_NONE) {
			/* Never-paged buffers alone are more than the budget: nothing keeps it. */
			if (s->used > s->budget && s->counting)
				s->r->over_budget = 1;
			if (may_fail == ACQUIRE_STAY && s->cursor < t)
				s->cursor = t;
			if (may_fail)
				return UINT64_MAX;
			if (s->counting)
				s->r->over_budget = 1;
			break;
		}
		page_out(s, b, t, MV_COPY_REACTIVE);
	}
	s->used += size;
	s->cursor = t;
	tell_held(s, t, (int64_t)size);
	if (s->counting && s->used > s->r->peak)
		s->r->peak = s->used;
	return t;
}

/* Copies b in: room no earlier than t0, then the H2D engine. Returns when it is ready, or UINT64_MAX
 * when a planned page-in (kind MV_COPY_PLANNED), or any where may_stay, finds no room, which leaves
 * b out: a prefetch never fails a job, and a launch on a machine that maps host memory reads b
 * where it is. */
static uint64_t page_in(struct sim *s, uint32_t b, uint64_t t0, int kind, int may_stay)
{
	uint64_t size = s->it->bufs[b].size, start;

	if (t0 < s->ready[b])
		t0 = s->ready[b];
	start = acquire(s, size, t0, may_stay ? ACQUIRE_STAY : kind == MV_COPY_PLANNED);
	if (start == UINT64_MAX)
		return UINT64_MAX;
	if (start < s->h2d_free)
		start = s->h2d_free;
	s->h2d_free = start + copy_ns(size, s->h2d_bps);
	s->st[b] = DEV;
	s->ready[b] = s->h2d_free;
	s->hused[b] = 0;
	touch(s, b);
	if (s->counting) {
		s->r->page_ins++;
		s->r->bytes_in += size;
	}
	tell_copy(s, b, 1, kind, start, s->ready[b]);
	return s->ready[b];
}

static void exclude_launch(struct sim *s, uint32_t k);

/* b's room, for launch k (MV_TRACE_NONE: none). On a machine that maps host memory, where nothing
 * but launch k's own buffers could make room, they go too (k then reads them over the link); where
 * nothing at all can, b starts in host memory, as the library places it, unless it is never paged. */
static void allocate(struct sim *s, uint32_t b, uint64_t t0, uint32_t k)
{
	uint64_t size = s->it->bufs[b].size;
	int stay = s->host_mapped && !(s->it->bufs[b].flags & MV_IBUF_PINNED) ? ACQUIRE_STAY : 0;
	/* A never-paged buffer too may take its room from launch k's own buffers. */
	uint64_t t = acquire(s, size, t0, s->host_mapped && k != MV_TRACE_NONE ? ACQUIRE_STAY : stay);

	if (t == UINT64_MAX && k != MV_TRACE_NONE) {
		s->token++;
		t = acquire(s, size, t0, stay);
		exclude_launch(s, k);
	}
	if (t == UINT64_MAX) {
		s->st[b] = HOST;
		s->ready[b] = t0;
		s->planned[b] = 0;
		s->hused[b] = 0;
		return;
	}
	s->st[b] = DEV;
	s->ready[b] = t;
	s->planned[b] = 0;
	touch(s, b);
}

static void release(struct sim *s, uint32_t b, uint64_t t)
{
	/* A buffer out on the host holds no device bytes; one being copied out releases its own. */
	if (s->st[b] == DEV)
		release_at(s, t, s->it->bufs[b].size);
	s->st[b] = ABSENT;
	s->planned[b] = 0;
	s->hused[b] = 0;
}

static void exclude_launch(struct sim *s, uint32_t k)
{
	const struct mv_iter_launch *l;
	uint32_t i;

	s->token++;
	if (k == MV_TRACE_NONE || k >= s->it->nlaunch)
		return;
	l = &s->it->launch[k];
	for (i = 0; i < l->nrefs; i++)
		s->excl[s->it->refs[l->ref0 + i]] = s->token;
}

/* The plan's ops with this `at`, from index *pi on (the plan is sorted). */
static void issue_plan(struct sim *s, uint32_t *pi, uint32_t at, uint64_t start, uint64_t fin)
{
	const struct mv_plan *p = s->plan;

	for (; p != NULL && *pi < p->nops && p->ops[*pi].at == at; (*pi)++) {
		const struct mv_plan_op *op = &p->ops[*pi];
		uint32_t b = op->buf;

		if (b >= s->it->nbufs)
			continue;
		if (op->kind == MV_PLAN_OUT) {
			if (s->st[b] == DEV && !(s->it->bufs[b].flags & MV_IBUF_PINNED))
				page_out(s, b, fin, MV_COPY_PLANNED);
		} else if (op->kind == MV_PLAN_IN && s->st[b] == HOST && !s->hused[b]) {
			exclude_launch(s, op->need);
			if (page_in(s, b, start, MV_COPY_PLANNED, 0) != UINT64_MAX)
				s->planned[b] = 1;
		}
	}
}

/* Buffers allocated or freed before launch k (k == nlaunch: after the last). */
static void frees_and_allocs(struct sim *s, uint32_t k, uint64_t t, uint64_t *grant)
{
	uint32_t i, b;

	for (i = s->free_first[k]; i < s->free_first[k + 1]; i++) {
		b = s->free_list[i];
		if (s->st[b] != ABSENT)
			release(s, b, t);
	}
	for (i = s->alloc_first[k]; i < s->alloc_first[k + 1]; i++) {
		b = s->alloc_list[i];
		allocate(s, b, t, k < s->it->nlaunch ? k : MV_TRACE_NONE);
		if (grant != NULL && s->ready[b] > *grant)
			*grant = s->ready[b];
	}
}

/* Buckets the buffers by a launch number (alloc_at or free_at), in buffer order. */
static int bucket(const struct mv_iter *it, size_t field, uint32_t **first, uint32_t **list)
{
	uint32_t n = it->nlaunch, b, k, *f, *l;

	f = calloc((size_t)n + 2, sizeof *f);
	l = malloc((it->nbufs ? it->nbufs : 1) * sizeof *l);
	*first = f;
	*list = l;
	if (f == NULL || l == NULL)
		return -ENOMEM;
	for (b = 0; b < it->nbufs; b++) {
		memcpy(&k, (const char *)&it->bufs[b] + field, sizeof k);
		if (k <= n)
			f[k + 1]++;
	}
	for (k = 0; k <= n; k++)
		f[k + 1] += f[k];
	for (b = 0; b < it->nbufs; b++) {
		memcpy(&k, (const char *)&it->bufs[b] + field, sizeof k);
		if (k <= n)
			l[f[k]++] = b;
	}
	/* The fill advanced each start to the next bucket's; shift them back. */
	for (k = n + 1; k > 0; k--)
		f[k] = f[k - 1];
	f[0] = 0;
	return 0;
}

/* One pass over the iteration; *prev_start and *prev_fin carry the timeline between runs. */
static void run_once(struct sim *s, uint64_t *prev_start, uint64_t *prev_fin)
{
	const struct mv_iter *it = s->it;
	uint32_t k, i, pi = 0;

	/* Skip any OUT the plan puts before the first launch: only INs may come there. */
	while (s->plan != NULL && pi < s->plan->nops && s->plan->ops[pi].at == MV_TRACE_NONE &&
	       s->plan->ops[pi].kind != MV_PLAN_IN)
		pi++;
	issue_plan(s, &pi, MV_TRACE_NONE, *prev_start, *prev_fin);
	for (k = 0; k < it->nlaunch; k++) {
		const struct mv_iter_launch *l = &it->launch[k];
		uint64_t F = *prev_fin, start = F, linked = 0;

		exclude_launch(s, k);
		frees_and_allocs(s, k, F, &start);
		for (i = 0; i < l->nrefs; i++) {
			uint32_t b = it->refs[l->ref0 + i];
			uint64_t ready;

			if (s->st[b] == HOST) {
				ready = page_in(s, b, F, MV_COPY_FAULT, s->host_mapped);
				if (ready == UINT64_MAX) {
					/* Read where it is (below). */
					ready = F;
				} else if (s->counting) {
					s->r->faults++;
				}
			} else if (s->st[b] == ABSENT) {
				/* Named before its allocation or after its free: treat it as allocated here. */
				allocate(s, b, F, k);
				ready = s->ready[b];
			} else {
				ready = s->ready[b];
				if (s->planned[b] && ready > F && s->counting) {
					s->r->late++;
					if (s->obs != NULL && s->obs->late != NULL)
						s->obs->late(s->obs->ctx, b);
					if (s->fb != NULL && b < s->fb->nbufs) {
						s->fb->late_ns[b] += ready - F;
						if (s->fb->late_at != NULL)
							s->fb->late_at[b] = k;
					}
				}
			}
			s->planned[b] = 0;
			if (ready > start)
				start = ready;
		}
		/* Buffers left in host memory, by their fault-in or by an allocation for this launch that
		 * evicted them: read there once their page-out has landed. */
		for (i = 0; i < l->nrefs; i++) {
			uint32_t b = it->refs[l->ref0 + i];

			if (s->st[b] != HOST)
				continue;
			linked += s->it->bufs[b].size;
			if (s->ready[b] > start)
				start = s->ready[b];
		}
		if (s->counting)
			s->r->stall_ns += start - F;
		*prev_start = start;
		*prev_fin = start + l->dur_ns;
		if (linked > 0) {
			uint64_t over = start + copy_ns(linked, s->h2d_bps);
			if (over > *prev_fin)
				*prev_fin = over;
			if (s->counting) {
				s->r->host_runs++;
				s->r->host_bytes += linked;
			}
		}
		if (s->counting && s->obs != NULL && s->obs->launch != NULL)
			s->obs->launch(s->obs->ctx, k, start, *prev_fin);
		for (i = 0; i < l->nrefs; i++) {
			uint32_t b = it->refs[l->ref0 + i];

			s->lu_fin[b] = *prev_fin;
			/* Written where it is: its host copy is complete once the launch is. */
			if (s->st[b] == HOST) {
				s->ready[b] = *prev_fin;
				s->hused[b] = 1;
			}
			touch(s, b);
		}
		/* Skip ops for launches the plan names out of order (an unsorted or foreign plan). */
		while (s->plan != NULL && pi < s->plan->nops && s->plan->ops[pi].at != MV_TRACE_NONE &&
		       s->plan->ops[pi].at < k)
			pi++;
		issue_plan(s, &pi, k, start, *prev_fin);
	}
	s->token++;
	frees_and_allocs(s, it->nlaunch, *prev_fin, NULL);
}

int mv_model_run(const struct mv_iter *it, const struct mv_plan *plan, uint64_t budget, const struct mv_machine *m,
		 struct mv_model_result *out, struct mv_feedback *fb)
{
	return mv_model_observe(it, plan, budget, m, out, fb, NULL);
}

int mv_model_observe(const struct mv_iter *it, const struct mv_plan *plan, uint64_t budget,
		     const struct mv_machine *m, struct mv_model_result *out, struct mv_feedback *fb,
		     const struct mv_model_observer *obs)
{
	struct sim s;
	uint64_t prev_start = 0, prev_fin = 0, t0;
	uint32_t b, k, n;
	int rc = -ENOMEM;

	if (it == NULL || m == NULL || out == NULL || !(m->h2d_bps > 0) || !(m->d2h_bps > 0))
		return -EINVAL;
	if (plan != NULL && plan->nlaunch != it->nlaunch)
		return -EINVAL;
	memset(out, 0, sizeof *out);
	memset(&s, 0, sizeof s);
	s.it = it;
	s.plan = plan;
	s.budget = budget;
	s.h2d_bps = m->h2d_bps;
	s.d2h_bps = m->d2h_bps;
	s.host_mapped = m->host_mapped;
	s.r = out;
	s.fb = fb;
	s.obs = obs;
	n = it->nbufs ? it->nbufs : 1;
	s.st = calloc(n, 1);
	s.planned = calloc(n, 1);
	s.hused = calloc(n, 1);
	s.ready = calloc(n, sizeof *s.ready);
	s.lu_fin = calloc(n, sizeof *s.lu_fin);
	s.stamp = calloc(n, sizeof *s.stamp);
	s.excl = calloc(n, sizeof *s.excl);
	s.aside = malloc(n * sizeof *s.aside);
	if (s.st == NULL || s.planned == NULL || s.hused == NULL || s.ready == NULL || s.lu_fin == NULL || s.stamp == NULL ||
	    s.excl == NULL || s.aside == NULL ||
	    bucket(it, offsetof(struct mv_iter_buf, alloc_at), &s.alloc_first, &s.alloc_list) != 0 ||
	    bucket(it, offsetof(struct mv_iter_buf, free_at), &s.free_first, &s.free_list) != 0)
		goto out;
	for (k = 0; k < it->nlaunch; k++)
		out->compute_ns += it->launch[k].dur_ns;

	/* First run: what is alive at the start is resident, pinned buffers first, as far as it fits. */
	for (int pass = 0; pass < 2; pass++) {
		for (b = 0; b < it->nbufs; b++) {
			const struct mv_iter_buf *ib = &it->bufs[b];
			int pinned = (ib->flags & MV_IBUF_PINNED) != 0;

			if (ib->alloc_at != MV_TRACE_NONE || pinned != (pass == 0))
				continue;
			if (pass == 0 || (s.used <= budget && ib->size <= budget - s.used)) {
				s.st[b] = DEV;
				s.used += ib->size;
			} else {
				s.st[b] = HOST;
			}
			touch(&s, b);
		}
	}
	run_once(&s, &prev_start, &prev_fin);

	/* Between the runs: the next iteration's start state. */
	t0 = prev_fin;
	for (b = 0; b < it->nbufs; b++)
		if (it->bufs[b].alloc_at != MV_TRACE_NONE && s.st[b] != ABSENT)
			release(&s, b, t0);
	if (s.cursor < t0)
		s.cursor = t0;
	release_until(&s, s.cursor);
	s.counting = 1;
	if (obs != NULL && obs->begin != NULL)
		obs->begin(obs->ctx, t0, s.used);
	/* Releases still pending reach into the reported run. */
	for (size_t i = 0; i < s.rel.n; i++)
		tell_held(&s, s.rel.key[i], -(int64_t)s.rel.val[i]);
	out->peak = s.used;
	s.token++;
	for (b = 0; b < it->nbufs; b++)
		if (it->bufs[b].alloc_at == MV_TRACE_NONE && s.st[b] == ABSENT)
			allocate(&s, b, t0, MV_TRACE_NONE);
	run_once(&s, &prev_start, &prev_fin);
	out->step_ns = prev_fin - t0;
	rc = s.err;
out:
	free(s.st);
	free(s.planned);
	free(s.hused);
	free(s.ready);
	free(s.lu_fin);
	free(s.stamp);
	free(s.excl);
	free(s.aside);
	free(s.alloc_first);
	free(s.alloc_list);
	free(s.free_first);
	free(s.free_list);
	free(s.rel.key);
	free(s.rel.val);
	free(s.lru.key);
	free(s.lru.val);
	return rc;
}

/* ---- peak and lower bound --------------------------------------------------------------------------- */

/* The launches a buffer is alive at: [*s, *e) within [0, nlaunch]. Position nlaunch is after the last
 * launch. */
static void alive_span(const struct mv_iter *it, const struct mv_iter_buf *b, uint32_t *s, uint32_t *e)
{
	*s = b->alloc_at == MV_TRACE_NONE ? 0 : b->alloc_at;
	*e = b->free_at == MV_TRACE_NONE ? it->nlaunch + 1 : b->free_at;
	if (*e > it->nlaunch + 1)
		*e = it->nlaunch + 1;
	if (*s > *e)
		*s = *e;
}

/* Adds v over positions [s, e) of a difference array. */
static void span_add(int64_t *d, uint32_t s, uint32_t e, uint64_t v)
{
	if (s >= e)
		return;
	d[s] += (int64_t)v;
	d[e] -= (int64_t)v;
}

uint64_t mv_model_peak(const struct mv_iter *it)
{
	int64_t *d, acc = 0;
	uint64_t peak = 0;
	uint32_t b, k, s, e;

	if (it == NULL)
		return 0;
	d = calloc((size_t)it->nlaunch + 2, sizeof *d);
	if (d == NULL)
		return 0;
	for (b = 0; b < it->nbufs; b++) {
		alive_span(it, &it->bufs[b], &s, &e);
		span_add(d, s, e, it->bufs[b].size);
	}
	for (k = 0; k <= it->nlaunch; k++) {
		acc += d[k];
		if ((uint64_t)acc > peak)
			peak = (uint64_t)acc;
	}
	free(d);
	return peak;
}

static double dmax(double a, double b)
{
	return a > b ? a : b;
}

/* The least total of whole buffers among sz[0, n) that reaches at least target (exact for a few
 * buffers, else target itself, which is never more). */
static uint64_t least_cover(const uint64_t *sz, uint32_t n, uint64_t target)
{
	uint64_t best = UINT64_MAX, sum;
	uint32_t mask, i;

	if (target == 0)
		return 0;
	if (n > 16)
		return target;
	for (mask = 1; mask < (1u << n); mask++) {
		sum = 0;
		for (i = 0; i < n; i++)
			if (mask & (1u << i))
				sum += sz[i];
		if (sum >= target && sum < best)
			best = sum;
	}
	return best == UINT64_MAX ? target : best;
}

/* The largest total of whole buffers among sz[0, n) that fits in room (exact for a few buffers, else
 * room itself, which is never less). */
static uint64_t most_within(const uint64_t *sz, uint32_t n, uint64_t room)
{
	uint64_t best = 0, sum;
	uint32_t mask, i;

	if (n > 16)
		return room;
	for (mask = 1; mask < (1u << n); mask++) {
		sum = 0;
		for (i = 0; i < n; i++)
			if (mask & (1u << i))
				sum += sz[i];
		if (sum <= room && sum > best)
			best = sum;
	}
	return best;
}

/*
 * The stalls between launches. Launches run one after another, so in the time between the end of
 * launch p-1 and the start of p nothing computes, and these gaps add up across p. Two kinds of copy
 * must happen in the gap before p:
 *   out  at most `budget` bytes are on the device while p runs, and p's buffers and the pinned ones
 *        must be; of the other buffers alive at p, those p-1 named were on the device until p-1
 *        finished, so whatever of V_p = live(p) - budget the rest cannot cover leaves in the gap, in
 *        whole buffers (the least cover of the shortfall by those p-1 named);
 *   in   p's buffers that p-1 did not name and that were not just allocated were either on the
 *        device while p-1 ran, in the room its own buffers and the pinned ones left, or are copied in
 *        after p-1 finished (whatever does not fit that room, in whole buffers).
 * So gap(p) >= max(out / d2h, in / h2d). And the two cannot always overlap: room beyond what p-1's
 * own buffers and the pinned ones leave, plus what frees at p-1's end give back, comes only from a
 * page-out of a buffer p-1 named, which starts when p-1 finishes and releases nothing until it
 * completes. Every page-in that starts before that completion fits in that room at once, so the
 * rest (rem) starts no earlier than the smallest such page-out takes:
 *   gap(p) >= smallest out / d2h + rem / h2d.
 * The step is at least the compute time plus the sum of the gaps over p = 1 .. n-1. Like the bound
 * below it holds for any schedule the model or the library can run: a page-out starts only after the
 * buffer's last use has finished and releases the device only when it completes, and a page-in needs
 * room before it starts.
 *
 * With chunk > 0, copies move in pieces of that size instead of whole buffers: the covers become
 * the byte counts themselves, and the first room a page-out gives back is one chunk.
 */
struct gap_in {
	const uint64_t *live, *pinned, *named;
	uint64_t *pfree; /* pinned bytes alive at p-1 and freed when it ends, per p */
	uint32_t *stamp;
	uint64_t chunk;
};

/* Fills g->pfree and clears g->stamp. */
static void gap_prepare(const struct mv_iter *it, struct gap_in *g)
{
	uint32_t b, s, e;

	for (b = 0; b < it->nbufs; b++) {
		const struct mv_iter_buf *ib = &it->bufs[b];

		g->stamp[b] = MV_TRACE_NONE;
		alive_span(it, ib, &s, &e);
		if ((ib->flags & MV_IBUF_PINNED) && s < e && e < it->nlaunch)
			g->pfree[e] += ib->size;
	}
}

/* The least stall between launch p-1's end and p's start. */
static double gap_one(const struct mv_iter *it, uint64_t budget, const struct mv_machine *m, struct gap_in *g,
		      uint32_t p)
{
	const struct mv_iter_launch *lp = &it->launch[p], *lq = &it->launch[p - 1];
	uint32_t n = it->nlaunch, i, nout = 0, nin = 0, s, e;
	uint64_t outsz[17], insz[17], outb = 0, inb, tin = 0, v, sfree, room, held, fin, rem;
	uint64_t minout = UINT64_MAX, freed = g->pfree[p];
	double d2h = m->d2h_bps / 1e9, h2d = m->h2d_bps / 1e9, gap;

	for (i = 0; i < lp->nrefs; i++)
		g->stamp[it->refs[lp->ref0 + i]] = p;
	/* out: buffers p-1 named, alive at p, not named by p, not pinned; freed: those not alive at p. */
	for (i = 0; i < lq->nrefs; i++) {
		uint32_t b = it->refs[lq->ref0 + i];
		const struct mv_iter_buf *ib = &it->bufs[b];

		if (g->stamp[b] == p || (ib->flags & MV_IBUF_PINNED))
			continue;
		alive_span(it, ib, &s, &e);
		if (e <= p) {
			freed += ib->size;
			continue;
		}
		if (s > p)
			continue;
		if (nout < 17)
			outsz[nout] = ib->size;
		nout++;
		outb += ib->size;
		if (ib->size < minout)
			minout = ib->size;
	}
	held = g->pinned[p] + g->named[p];
	sfree = g->live[p] > held + outb ? g->live[p] - held - outb : 0;
	v = g->live[p] > budget ? g->live[p] - budget : 0;
	if (v <= sfree)
		outb = 0;
	else
		outb = g->chunk ? v - sfree : least_cover(outsz, nout > 16 ? 17 : nout, v - sfree);
	/* in: buffers p names that p-1 did not, allocated before p-1 ran. */
	for (i = 0; i < lq->nrefs; i++)
		g->stamp[it->refs[lq->ref0 + i]] = p + n; /* named by p-1, whether or not by p */
	for (i = 0; i < lp->nrefs; i++) {
		uint32_t b = it->refs[lp->ref0 + i];
		const struct mv_iter_buf *ib = &it->bufs[b];

		if (g->stamp[b] == p + n || (ib->flags & MV_IBUF_PINNED) || ib->alloc_at == p)
			continue;
		if (ib->alloc_at != MV_TRACE_NONE && ib->alloc_at > p - 1)
			continue;
		if (nin < 17)
			insz[nin] = ib->size;
		nin++;
		tin += ib->size;
	}
	held = g->pinned[p - 1] + g->named[p - 1];
	room = budget > held ? budget - held : 0;
	fin = room > UINT64_MAX - freed ? UINT64_MAX : room + freed;
	if (g->chunk || nin > 16) {
		inb = tin > room ? tin - room : 0;
		rem = tin > fin ? tin - fin : 0;
	} else {
		inb = tin - most_within(insz, nin, room);
		rem = tin - most_within(insz, nin, fin);
	}
	gap = dmax((double)outb / d2h, (double)inb / h2d);
	if (rem > 0 && nout > 0) {
		if (g->chunk && g->chunk < minout)
			minout = g->chunk;
		gap = dmax(gap, (double)minout / d2h + (double)rem / h2d);
	}
	return gap;
}

static double gap_stalls(const struct mv_iter *it, uint64_t budget, const struct mv_machine *m, const uint64_t *live,
			 const uint64_t *pinned, const uint64_t *named, uint64_t chunk)
{
	struct gap_in g = { live, pinned, named, NULL, NULL, chunk };
	double sum = 0;
	uint32_t p;

	g.stamp = malloc(((size_t)it->nbufs + 1) * sizeof *g.stamp);
	g.pfree = calloc((size_t)it->nlaunch + 1, sizeof *g.pfree);
	if (g.stamp != NULL && g.pfree != NULL) {
		gap_prepare(it, &g);
		for (p = 1; p < it->nlaunch; p++)
			sum += gap_one(it, budget, m, &g, p);
	}
	free(g.stamp);
	free(g.pfree);
	return sum;
}

/*
 * The bandwidth lower bound. Take any launch p and the moment it starts in the reported run. Every
 * byte alive at p (allocated at or before p, not freed before p) is on the device or off it, and no
 * more than `budget` bytes are on it, so at least V_p = (live(p) - budget)^+ bytes of live buffers are
 * off. Pinned buffers and those p names cannot be off; if they alone exceed the budget, no schedule
 * keeps it (the bound is UINT64_MAX). Of the others, sort each by where its uses lie in the
 * iteration:
 *   F  used neither before nor after p: off for free (it may have left in an earlier iteration);
 *   A  used before p only: off means it was copied out after that use, so before p started;
 *   B  used after p only: off means it is copied in after p started and before that use;
 *   D  used before and after: both.
 * Out-copies before p share the D2H engine with nothing faster, and p cannot start before the
 * launches before it have run: start(p) - begin >= max(C_before(p), out / d2h). Likewise
 * end - start(p) >= max(C_from(p), in / h2d). A schedule picks which bytes are off; the bound takes the
 * cheapest choice: F first, D only when A and B are exhausted, and the split between A and B that
 * minimises the sum (a convex function of the split, so its minimum lies at an end of the allowed
 * range or where one of the two max() changes branch). Split fractionally, it can only be lower.
 * LB = the largest such bound over p, the compute time plus the gaps between launches (above),
 * and at least the compute time. It holds in the model above
 * because the reported run begins when the previous run's last launch finishes: every use before p
 * in it, and so every out-copy after such a use, lies between then and start(p).
 */
/* The lower bound's per-launch figures: difference arrays (n + 2) of the bytes alive, pinned, and of
 * the kinds F, A and B above, and per launch (n + 1) the bytes its buffers name, the compute time
 * before it, and the bytes alive and pinned at it. */
struct lb {
	uint32_t n;
	uint64_t total; /* the compute time */
	int64_t *dl, *dpin, *dF, *dA, *dB;
	uint64_t *named, *cb, *livea, *pina;
	double *roff, *tp; /* per launch: R, the bytes off besides F, and the bound there (-1: none) */
};

/* Two blocks: the five difference arrays, then the four per-launch ones; lb_free frees both. */
static int lb_init(struct lb *lb, uint32_t n)
{
	size_t d = (size_t)n + 2, a = (size_t)n + 1;

	memset(lb, 0, sizeof(*lb));
	lb->n = n;
	lb->dl = calloc(5 * d, sizeof *lb->dl);
	lb->named = calloc(4 * a, sizeof *lb->named);
	lb->roff = malloc(2 * a * sizeof *lb->roff);
	if (lb->dl == NULL || lb->named == NULL || lb->roff == NULL)
		return -ENOMEM;
	lb->tp = lb->roff + a;
	for (size_t i = 0; i < a; i++)
		lb->tp[i] = -1;
	lb->dpin = lb->dl + d;
	lb->dF = lb->dpin + d;
	lb->dA = lb->dF + d;
	lb->dB = lb->dA + d;
	lb->cb = lb->named + a;
	lb->livea = lb->cb + a;
	lb->pina = lb->livea + a;
	return 0;
}

static void lb_free(struct lb *lb)
{
	free(lb->dl);
	free(lb->named);
	free(lb->roff);
}

/* The compute time before each launch, each buffer's life sorted into pinned, F, A and B, and the
 * bytes each launch names that could otherwise be off. */
static void lb_spans(struct lb *lb, const struct mv_iter *it)
{
	uint32_t n = lb->n, b, p, s, e, i;

	for (p = 0; p < n; p++) {
		lb->cb[p] = lb->total;
		lb->total += it->launch[p].dur_ns;
	}
	for (b = 0; b < it->nbufs; b++) {
		const struct mv_iter_buf *ib = &it->bufs[b];
		uint32_t fu = ib->first_use, lu = ib->last_use;

		alive_span(it, ib, &s, &e);
		if (e > n)
			e = n; /* only launches matter here */
		span_add(lb->dl, s, e, ib->size);
		if (ib->flags & MV_IBUF_PINNED) {
			span_add(lb->dpin, s, e, ib->size);
			continue;
		}
		if (fu == MV_TRACE_NONE) {
			span_add(lb->dF, s, e, ib->size);
			continue;
		}
		span_add(lb->dB, s, fu < e ? (fu > s ? fu : s) : e, ib->size);
		span_add(lb->dA, lu + 1 > s ? lu + 1 : s, e, ib->size);
		/* The rest of its life, between its first and last use, is D: what F, A and B leave. */
	}
	/* Named buffers cannot be off at p. */
	for (p = 0; p < n; p++) {
		const struct mv_iter_launch *ln = &it->launch[p];

		for (i = 0; i < ln->nrefs; i++) {
			const struct mv_iter_buf *ib = &it->bufs[it->refs[ln->ref0 + i]];

			if (ib->flags & MV_IBUF_PINNED)
				continue;
			lb->named[p] += ib->size;
		}
	}
}

/* The least time around a launch that must have R bytes off, A of them usable from before it only
 * and B from after it only, with cbs of compute before it and cfs from it on: the cheapest split
 * between A and B (D taking what they cannot), tried at the ends of its range and where either
 * max() changes branch. */
static double lb_split(double R, double a, double bb, double cbs, double cfs, const struct mv_machine *m)
{
	double d2h = m->d2h_bps / 1e9, h2d = m->h2d_bps / 1e9; /* bytes per ns */
	double xd, lo, hi, c[4], vmin = -1;
	int j;

	xd = R - a - bb > 0 ? R - a - bb : 0;
	lo = R - xd - bb > 0 ? R - xd - bb : 0;
	hi = a < R - xd ? a : R - xd;
	c[0] = lo;
	c[1] = hi;
	c[2] = cbs * d2h - xd;
	c[3] = R - cfs * h2d;
	for (j = 0; j < 4; j++) {
		double x = c[j] < lo ? lo : c[j] > hi ? hi : c[j];
		double f = dmax(cbs, (x + xd) / d2h) + dmax(cfs, (R - x) / h2d);

		if (vmin < 0 || f < vmin)
			vmin = f;
	}
	return vmin;
}

/* Sweeps the launches: fills livea and pina, and raises *best to the largest bound over p with
 * *worst_v the bytes that must be off there. Returns 1 when some launch's pinned and named buffers
 * alone exceed the budget, *worst_v then the bytes over it at the first such launch. */
static int lb_sweep(struct lb *lb, uint64_t budget, const struct mv_machine *m, double *best,
		    uint64_t *worst_v)
{
	int64_t l = 0, pin = 0, F = 0, A = 0, B = 0;
	uint64_t live, v;
	uint32_t p;
	double R, vmin;
	int infeasible = 0;

	for (p = 0; p < lb->n; p++) {
		l += lb->dl[p];
		pin += lb->dpin[p];
		F += lb->dF[p];
		A += lb->dA[p];
		B += lb->dB[p];
		live = (uint64_t)l;
		lb->livea[p] = live;
		lb->pina[p] = (uint64_t)pin;
		if ((uint64_t)pin > budget || lb->named[p] > budget - (uint64_t)pin) {
			if (!infeasible)
				*worst_v = live > budget ? live - budget : 0;
			infeasible = 1;
			continue;
		}
		if (live <= budget)
			continue;
		v = live - budget;
		R = (double)v - (double)F;
		if (R <= 0)
			continue;
		vmin = lb_split(R, (double)A, (double)B, (double)lb->cb[p], (double)(lb->total - lb->cb[p]), m);
		lb->roff[p] = R;
		lb->tp[p] = vmin;
		if (vmin > *best || (vmin == *best && v > *worst_v)) {
			*best = vmin;
			*worst_v = v;
		}
	}
	return infeasible;
}

/* The launches the timed bound looks at: all of them in a short iteration, else the ones where the
 * untimed bound is highest (any subset gives a valid bound; these are where it is likely tightest). */
#define LB_TIMED_ALL 1024
#define LB_TIMED_TOP 16

struct lb_cand {
	double tp;
	uint32_t p;
};

static int lb_cand_cmp(const void *a, const void *b)
{
	double x = ((const struct lb_cand *)a)->tp, y = ((const struct lb_cand *)b)->tp;

	return x > y ? -1 : x < y;
}

/* Raises *best with the per-launch bound that knows when each byte can leave and must be back, and
 * *worst_v with the bytes over the budget where that sets it. */
static void lb_timed(struct lb *lb, const struct mv_iter *it, uint64_t budget, const struct mv_machine *m,
		     double *best, uint64_t *worst_v)
{
	struct lb_cand *c = malloc(((size_t)lb->n + 1) * sizeof *c);
	struct mv_uses *u = c != NULL ? mv_uses_new(it) : NULL;
	uint32_t nc = 0, i;

	if (u == NULL)
		goto out;
	for (i = 0; i < lb->n; i++)
		if (lb->tp[i] >= 0)
			c[nc++] = (struct lb_cand){lb->tp[i], i};
	if (nc > LB_TIMED_ALL) {
		qsort(c, nc, sizeof *c, lb_cand_cmp);
		nc = LB_TIMED_TOP;
	}
	for (i = 0; i < nc; i++) {
		uint32_t p = c[i].p;
		double v = mv_bound_timed(it, u, p, lb->roff[p], lb->cb, lb->total, m);

		if (v > *best) {
			*best = v;
			*worst_v = lb->livea[p] - budget;
		}
	}
out:
	mv_uses_free(u);
	free(c);
}

/* The bound as a step time: the larger of best and the compute time plus the gaps' stalls. */
static uint64_t lb_result(const struct lb *lb, double best, double gaps)
{
	uint64_t r;

	gaps += (double)lb->total;
	if (gaps > best)
		best = gaps;
	r = best >= 18446744073709551615.0 ? UINT64_MAX : (uint64_t)floor(best);
	return r < lb->total ? lb->total : r;
}

uint64_t mv_model_bounds(const struct mv_iter *it, uint64_t budget, const struct mv_machine *m, uint64_t chunk,
			 uint64_t *must_move, uint64_t *chunk_bound)
{
	struct lb lb;
	uint64_t result = UINT64_MAX, worst_v = 0;
	double best;

	if (must_move != NULL)
		*must_move = 0;
	if (chunk_bound != NULL)
		*chunk_bound = it == NULL || m == NULL ? 0 : UINT64_MAX;
	if (it == NULL || m == NULL)
		return 0;
	if (!(m->d2h_bps > 0) || !(m->h2d_bps > 0))
		return UINT64_MAX;
	if (lb_init(&lb, it->nlaunch) < 0)
		goto out;
	lb_spans(&lb, it);
	best = (double)lb.total;
	if (!lb_sweep(&lb, budget, m, &best, &worst_v)) {
		/* The per-launch terms do not depend on how copies are cut; only the gaps do. */
		lb_timed(&lb, it, budget, m, &best, &worst_v);
		result = lb_result(&lb, best, gap_stalls(it, budget, m, lb.livea, lb.pina, lb.named, 0));
		if (chunk_bound != NULL)
			*chunk_bound = lb_result(&lb, best, gap_stalls(it, budget, m, lb.livea, lb.pina, lb.named,
								       chunk > 0 ? chunk : 1));
	}
	if (must_move != NULL)
		*must_move = worst_v;
out:
	lb_free(&lb);
	return result;
}

uint64_t mv_model_lower_bound(const struct mv_iter *it, uint64_t budget, const struct mv_machine *m,
			      uint64_t *must_move)
{
	return mv_model_bounds(it, budget, m, 0, must_move, NULL);
}

/* ---- feedback ------------------------------------------------------------------------------------------ */

struct mv_feedback *mv_feedback_new(const struct mv_iter *it)
{
	struct mv_feedback *fb = calloc(1, sizeof *fb);
	uint32_t n = it != NULL && it->nbufs ? it->nbufs : 1, b;

	if (fb == NULL)
		return NULL;
	fb->nbufs = it != NULL ? it->nbufs : 0;
	fb->late_ns = calloc(n, sizeof *fb->late_ns);
	fb->advance = calloc(n, sizeof *fb->advance);
	fb->late_at = malloc(n * sizeof *fb->late_at);
	if (fb->late_ns == NULL || fb->advance == NULL || fb->late_at == NULL) {
		mv_feedback_free(fb);
		return NULL;
	}
	for (b = 0; b < n; b++)
		fb->late_at[b] = MV_TRACE_NONE;
	return fb;
}

uint32_t mv_feedback_apply(struct mv_feedback *fb, const struct mv_iter *it)
{
	uint32_t b, moved = 0;

	if (fb == NULL || it == NULL)
		return 0;
	for (b = 0; b < fb->nbufs && b < it->nbufs; b++) {
		uint32_t need, j, count = 0;
		uint64_t covered = 0;

		if (fb->late_ns[b] == 0)
			continue;
		need = fb->late_at != NULL ? fb->late_at[b] : MV_TRACE_NONE;
		if (need == MV_TRACE_NONE || need >= it->nlaunch)
			need = it->bufs[b].last_use;
		/* Enough launches before the one it held up to hide the lateness. */
		for (j = need; j != MV_TRACE_NONE && j > 0 && covered < fb->late_ns[b]; j--, count++)
			covered += it->launch[j - 1].dur_ns;
		if (count == 0)
			count = 1;
		fb->advance[b] = fb->advance[b] > UINT32_MAX - count ? UINT32_MAX : fb->advance[b] + count;
		fb->late_ns[b] = 0;
		if (fb->late_at != NULL)
			fb->late_at[b] = MV_TRACE_NONE;
		moved++;
	}
	return moved;
}

void mv_feedback_free(struct mv_feedback *fb)
{
	if (fb == NULL)
		return;
	free(fb->late_ns);
	free(fb->advance);
	free(fb->late_at);
	free(fb);
}
