/* The schedule behind mv_model_run(), recomputed for `memvirt trace timeline` and `plot`: when each
 * launch and copy ran and how many device bytes were held, by the rules policies/model.c states.
 * The model keeps only totals; the CLI checks its totals against the model's. */
/* Angle brackets: "config.h" would find daemon/config.h, the daemon's configuration, first. */
#include <config.h>

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/cli.h"
#include "policies/policy.h"

enum { S_ABSENT, S_DEV, S_HOST };

/* A pending release of device bytes, kept in a min-heap by time. */
struct sched_rel {
	uint64_t t, bytes;
};

/* One replay's state (the model's, plus what is recorded). */
struct sched {
	const struct mv_iter *it;
	const struct mv_plan *plan;
	uint64_t budget;
	double h2d_bps, d2h_bps;
	struct mvd_sched *out;
	int counting;              /* the second, reported run */

	uint8_t *st, *planned;
	uint64_t *ready, *lu_fin, *stamp, *excl;
	uint32_t *in_copy;         /* the recorded copy that brought each buffer in, or UINT32_MAX */
	uint64_t token, clock;
	uint64_t used, cursor;
	struct sched_rel *rel;
	size_t nrel, caprel;
	uint64_t d2h_free, h2d_free;
	size_t capcopies, capsamples;
};

static uint64_t sched_copy_ns(uint64_t bytes, double bps)
{
	return (uint64_t)ceil((double)bytes * 1e9 / bps);
}

static void sched_sample(struct sched *s, uint64_t t, int64_t delta)
{
	struct mvd_sched *o = s->out;

	if (!s->counting)
		return;
	if (o->nsamples == s->capsamples) {
		s->capsamples = s->capsamples ? s->capsamples * 2 : 256;
		o->samples = xrealloc(o->samples, s->capsamples * sizeof(*o->samples));
	}
	o->samples[o->nsamples++] = (struct mvd_sched_sample){t, delta};
}

static uint32_t sched_copy(struct sched *s, uint32_t b, int in, int kind, uint64_t start, uint64_t end)
{
	struct mvd_sched *o = s->out;

	/* Copies of the first run matter only when they reach into the reported one. */
	if (o->ncopies == s->capcopies) {
		s->capcopies = s->capcopies ? s->capcopies * 2 : 256;
		o->copies = xrealloc(o->copies, s->capcopies * sizeof(*o->copies));
	}
	o->copies[o->ncopies] = (struct mvd_sched_copy){.buf = b, .in = (uint8_t)in,
							.kind = (uint8_t)kind, .start = start, .end = end};
	return o->ncopies++;
}

static void sched_rel_push(struct sched *s, uint64_t t, uint64_t bytes)
{
	size_t i;

	if (s->nrel == s->caprel) {
		s->caprel = s->caprel ? s->caprel * 2 : 64;
		s->rel = xrealloc(s->rel, s->caprel * sizeof(*s->rel));
	}
	for (i = s->nrel++; i > 0 && s->rel[(i - 1) / 2].t > t; i = (i - 1) / 2)
		s->rel[i] = s->rel[(i - 1) / 2];
	s->rel[i] = (struct sched_rel){t, bytes};
	sched_sample(s, t, -(int64_t)bytes);
}

static void sched_rel_pop(struct sched *s)
{
	struct sched_rel last = s->rel[--s->nrel];
	size_t i = 0, c;

	for (; (c = 2 * i + 1) < s->nrel; i = c) {
		if (c + 1 < s->nrel && s->rel[c + 1].t < s->rel[c].t)
			c++;
		if (last.t <= s->rel[c].t)
			break;
		s->rel[i] = s->rel[c];
	}
	if (s->nrel > 0)
		s->rel[i] = last;
}

static void sched_release_until(struct sched *s, uint64_t t)
{
	while (s->nrel > 0 && s->rel[0].t <= t) {
		s->used -= s->rel[0].bytes;
		sched_rel_pop(s);
	}
}

static void sched_touch(struct sched *s, uint32_t b)
{
	s->stamp[b] = ++s->clock;
}

static void sched_page_out(struct sched *s, uint32_t b, uint64_t t, int kind)
{
	uint64_t size = s->it->bufs[b].size, start = t, done;

	if (start < s->d2h_free)
		start = s->d2h_free;
	if (start < s->lu_fin[b])
		start = s->lu_fin[b];
	if (start < s->ready[b])
		start = s->ready[b];
	done = start + sched_copy_ns(size, s->d2h_bps);
	s->d2h_free = done;
	sched_rel_push(s, done, size);
	s->st[b] = S_HOST;
	s->ready[b] = done;
	s->planned[b] = 0;
	sched_copy(s, b, 0, kind, start, done);
}

/* The least recently used resident buffer that may go, as the model picks it. */
static uint32_t sched_victim(struct sched *s)
{
	uint32_t best = MV_TRACE_NONE;

	for (uint32_t b = 0; b < s->it->nbufs; b++) {
		if (s->st[b] != S_DEV || (s->it->bufs[b].flags & MV_IBUF_PINNED) || s->excl[b] == s->token)
			continue;
		if (best == MV_TRACE_NONE || s->stamp[b] < s->stamp[best])
			best = b;
	}
	return best;
}

/* Grants size bytes no earlier than t0; returns the grant's time, or UINT64_MAX when a request
 * that may fail (a prefetch) finds nothing left to evict. */
static uint64_t sched_acquire(struct sched *s, uint64_t size, uint64_t t0, int may_fail)
{
	uint64_t t = t0 > s->cursor ? t0 : s->cursor;

	sched_release_until(s, t);
	while (s->used > s->budget || size > s->budget - s->used) {
		uint32_t b;

		if (s->nrel > 0) {
			if (s->rel[0].t > t)
				t = s->rel[0].t;
			sched_release_until(s, t);
			continue;
		}
		b = sched_victim(s);
		if (b == MV_TRACE_NONE) {
			if (may_fail)
				return UINT64_MAX;
			if (s->counting)
				s->out->over_budget = 1;
			break;
		}
		sched_page_out(s, b, t, MVD_COPY_REACTIVE);
	}
	s->used += size;
	s->cursor = t;
	sched_sample(s, t, (int64_t)size);
	if (s->counting && s->used > s->out->peak)
		s->out->peak = s->used;
	return t;
}

static uint64_t sched_page_in(struct sched *s, uint32_t b, uint64_t t0, int kind)
{
	uint64_t size = s->it->bufs[b].size, start;

	if (t0 < s->ready[b])
		t0 = s->ready[b];
	/* A planned page-in without room is dropped: a prefetch never fails a job. */
	start = sched_acquire(s, size, t0, kind == MVD_COPY_PLANNED);
	if (start == UINT64_MAX)
		return UINT64_MAX;
	if (start < s->h2d_free)
		start = s->h2d_free;
	s->h2d_free = start + sched_copy_ns(size, s->h2d_bps);
	s->st[b] = S_DEV;
	s->ready[b] = s->h2d_free;
	sched_touch(s, b);
	s->in_copy[b] = sched_copy(s, b, 1, kind, start, s->h2d_free);
	return s->ready[b];
}

static void sched_allocate(struct sched *s, uint32_t b, uint64_t t0)
{
	s->ready[b] = sched_acquire(s, s->it->bufs[b].size, t0, 0);
	s->st[b] = S_DEV;
	s->planned[b] = 0;
	sched_touch(s, b);
}

static void sched_release(struct sched *s, uint32_t b, uint64_t t)
{
	if (s->st[b] == S_DEV)
		sched_rel_push(s, t, s->it->bufs[b].size);
	s->st[b] = S_ABSENT;
	s->planned[b] = 0;
}

static void sched_exclude(struct sched *s, uint32_t k)
{
	const struct mv_iter_launch *l;

	s->token++;
	if (k == MV_TRACE_NONE || k >= s->it->nlaunch)
		return;
	l = &s->it->launch[k];
	for (uint32_t i = 0; i < l->nrefs; i++)
		s->excl[s->it->refs[l->ref0 + i]] = s->token;
}

static void sched_issue(struct sched *s, uint32_t *pi, uint32_t at, uint64_t start, uint64_t fin)
{
	const struct mv_plan *p = s->plan;

	for (; p != NULL && *pi < p->nops && p->ops[*pi].at == at; (*pi)++) {
		const struct mv_plan_op *op = &p->ops[*pi];
		uint32_t b = op->buf;

		if (b >= s->it->nbufs)
			continue;
		if (op->kind == MV_PLAN_OUT) {
			if (s->st[b] == S_DEV && !(s->it->bufs[b].flags & MV_IBUF_PINNED))
				sched_page_out(s, b, fin, MVD_COPY_PLANNED);
		} else if (op->kind == MV_PLAN_IN && s->st[b] == S_HOST) {
			sched_exclude(s, op->need);
			if (sched_page_in(s, b, start, MVD_COPY_PLANNED) != UINT64_MAX)
				s->planned[b] = 1;
		}
	}
}

static void sched_frees_allocs(struct sched *s, uint32_t k, uint64_t t, uint64_t *grant)
{
	const struct mv_iter *it = s->it;

	for (uint32_t b = 0; b < it->nbufs; b++)
		if (it->bufs[b].free_at == k && s->st[b] != S_ABSENT)
			sched_release(s, b, t);
	for (uint32_t b = 0; b < it->nbufs; b++) {
		if (it->bufs[b].alloc_at == k) {
			sched_allocate(s, b, t);
			if (grant != NULL && s->ready[b] > *grant)
				*grant = s->ready[b];
		}
	}
}

static void sched_run_once(struct sched *s, uint64_t *prev_start, uint64_t *prev_fin)
{
	const struct mv_iter *it = s->it;
	uint32_t pi = 0;

	while (s->plan != NULL && pi < s->plan->nops && s->plan->ops[pi].at == MV_TRACE_NONE &&
	       s->plan->ops[pi].kind != MV_PLAN_IN)
		pi++;
	sched_issue(s, &pi, MV_TRACE_NONE, *prev_start, *prev_fin);
	for (uint32_t k = 0; k < it->nlaunch; k++) {
		const struct mv_iter_launch *l = &it->launch[k];
		uint64_t F = *prev_fin, start = F;

		sched_exclude(s, k);
		sched_frees_allocs(s, k, F, &start);
		for (uint32_t i = 0; i < l->nrefs; i++) {
			uint32_t b = it->refs[l->ref0 + i];
			uint64_t ready;

			if (s->st[b] == S_HOST) {
				ready = sched_page_in(s, b, F, MVD_COPY_FAULT);
			} else if (s->st[b] == S_ABSENT) {
				sched_allocate(s, b, F);
				ready = s->ready[b];
			} else {
				ready = s->ready[b];
				if (s->planned[b] && ready > F && s->counting && s->in_copy[b] != UINT32_MAX)
					s->out->copies[s->in_copy[b]].late = 1;
			}
			s->planned[b] = 0;
			if (ready > start)
				start = ready;
		}
		if (s->counting) {
			s->out->start[k] = start;
			s->out->fin[k] = start + l->dur_ns;
			s->out->stall_ns += start - F;
		}
		*prev_start = start;
		*prev_fin = start + l->dur_ns;
		for (uint32_t i = 0; i < l->nrefs; i++) {
			uint32_t b = it->refs[l->ref0 + i];

			s->lu_fin[b] = *prev_fin;
			sched_touch(s, b);
		}
		while (s->plan != NULL && pi < s->plan->nops && s->plan->ops[pi].at != MV_TRACE_NONE &&
		       s->plan->ops[pi].at < k)
			pi++;
		sched_issue(s, &pi, k, start, *prev_fin);
	}
	s->token++;
	sched_frees_allocs(s, it->nlaunch, *prev_fin, NULL);
}

int mvd_sched_run(const struct mv_iter *it, const struct mv_plan *plan, uint64_t budget,
		  const struct mv_machine *m, struct mvd_sched *out)
{
	struct sched s;
	uint64_t prev_start = 0, prev_fin = 0, t0;
	uint32_t n;

	if (plan != NULL && plan->nlaunch != it->nlaunch)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	memset(&s, 0, sizeof(s));
	s.it = it;
	s.plan = plan;
	s.budget = budget;
	s.h2d_bps = m->h2d_bps;
	s.d2h_bps = m->d2h_bps;
	s.out = out;
	n = it->nbufs ? it->nbufs : 1;
	s.st = xmalloc(n);
	s.planned = xmalloc(n);
	memset(s.st, 0, n);
	memset(s.planned, 0, n);
	s.ready = xmalloc(n * sizeof(*s.ready));
	s.lu_fin = xmalloc(n * sizeof(*s.lu_fin));
	s.stamp = xmalloc(n * sizeof(*s.stamp));
	s.excl = xmalloc(n * sizeof(*s.excl));
	s.in_copy = xmalloc(n * sizeof(*s.in_copy));
	memset(s.ready, 0, n * sizeof(*s.ready));
	memset(s.lu_fin, 0, n * sizeof(*s.lu_fin));
	memset(s.stamp, 0, n * sizeof(*s.stamp));
	memset(s.excl, 0, n * sizeof(*s.excl));
	memset(s.in_copy, 0xff, n * sizeof(*s.in_copy));
	out->start = xmalloc(((size_t)it->nlaunch + 1) * sizeof(*out->start));
	out->fin = xmalloc(((size_t)it->nlaunch + 1) * sizeof(*out->fin));
	for (uint32_t k = 0; k < it->nlaunch; k++)
		out->compute_ns += it->launch[k].dur_ns;

	/* The first run begins with what is alive resident, pinned buffers first, as far as it fits. */
	for (int pass = 0; pass < 2; pass++) {
		for (uint32_t b = 0; b < it->nbufs; b++) {
			const struct mv_iter_buf *ib = &it->bufs[b];

			if (ib->alloc_at != MV_TRACE_NONE || ((ib->flags & MV_IBUF_PINNED) == 0) != pass)
				continue;
			if (pass == 0 || (s.used <= budget && ib->size <= budget - s.used)) {
				s.st[b] = S_DEV;
				s.used += ib->size;
			} else {
				s.st[b] = S_HOST;
			}
			sched_touch(&s, b);
		}
	}
	sched_run_once(&s, &prev_start, &prev_fin);

	/* The reported run starts from the state the first one left. */
	t0 = prev_fin;
	for (uint32_t b = 0; b < it->nbufs; b++)
		if (it->bufs[b].alloc_at != MV_TRACE_NONE && s.st[b] != S_ABSENT)
			sched_release(&s, b, t0);
	if (s.cursor < t0)
		s.cursor = t0;
	sched_release_until(&s, s.cursor);
	s.counting = 1;
	out->t0 = t0;
	out->base = s.used;
	out->peak = s.used;
	/* Releases still pending reach into the reported run. */
	for (size_t i = 0; i < s.nrel; i++)
		sched_sample(&s, s.rel[i].t, -(int64_t)s.rel[i].bytes);
	s.token++;
	for (uint32_t b = 0; b < it->nbufs; b++)
		if (it->bufs[b].alloc_at == MV_TRACE_NONE && s.st[b] == S_ABSENT)
			sched_allocate(&s, b, t0);
	sched_run_once(&s, &prev_start, &prev_fin);
	out->step_ns = prev_fin - t0;
	out->end = prev_fin;

	free(s.st);
	free(s.planned);
	free(s.ready);
	free(s.lu_fin);
	free(s.stamp);
	free(s.excl);
	free(s.in_copy);
	free(s.rel);
	return 0;
}

void mvd_sched_free(struct mvd_sched *s)
{
	free(s->start);
	free(s->fin);
	free(s->copies);
	free(s->samples);
	memset(s, 0, sizeof(*s));
}
