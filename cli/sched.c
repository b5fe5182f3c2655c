/* The schedule behind mv_model_run(), for `memvirt trace timeline` and `plot`: when each launch and
 * copy ran and how many device bytes were held, as the model reports them to an observer. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "cli/internal.h"
#include "policies/policy.h"

/* What the observer collects into, with the capacities of out's arrays. */
struct sched {
	struct cli_sched *out;
	uint32_t nbufs;
	uint32_t *in_copy; /* per buffer: its latest copy in, UINT32_MAX before one */
	size_t capcopies, capsamples;
};

static void sched_begin(void *ctx, uint64_t t0, uint64_t held)
{
	struct sched *s = ctx;

	s->out->t0 = t0;
	s->out->base = held;
}

static void sched_launch(void *ctx, uint32_t k, uint64_t start, uint64_t fin)
{
	struct sched *s = ctx;

	s->out->start[k] = start;
	s->out->fin[k] = fin;
}

static void sched_copy(void *ctx, uint32_t buf, int in, int kind, uint64_t start, uint64_t end)
{
	struct sched *s = ctx;
	struct cli_sched *o = s->out;

	if (o->ncopies == s->capcopies) {
		s->capcopies = s->capcopies ? s->capcopies * 2 : 256;
		o->copies = xrealloc(o->copies, s->capcopies * sizeof(*o->copies));
	}
	o->copies[o->ncopies] = (struct cli_sched_copy){.buf = buf, .in = (uint8_t)in, .kind = (uint8_t)kind,
							.start = start, .end = end};
	if (in && buf < s->nbufs)
		s->in_copy[buf] = o->ncopies;
	o->ncopies++;
}

static void sched_held(void *ctx, uint64_t t, int64_t delta)
{
	struct sched *s = ctx;
	struct cli_sched *o = s->out;

	if (o->nsamples == s->capsamples) {
		s->capsamples = s->capsamples ? s->capsamples * 2 : 256;
		o->samples = xrealloc(o->samples, s->capsamples * sizeof(*o->samples));
	}
	o->samples[o->nsamples++] = (struct cli_sched_sample){t, delta};
}

static void sched_late(void *ctx, uint32_t buf)
{
	struct sched *s = ctx;

	if (buf < s->nbufs && s->in_copy[buf] != UINT32_MAX)
		s->out->copies[s->in_copy[buf]].late = 1;
}

int cli_sched_run(const struct mv_iter *it, const struct mv_plan *plan, uint64_t budget,
		  const struct mv_machine *m, struct cli_sched *out)
{
	struct sched s = {.out = out, .nbufs = it->nbufs};
	struct mv_model_observer obs = {.ctx = &s, .begin = sched_begin, .launch = sched_launch,
					.copy = sched_copy, .held = sched_held, .late = sched_late};
	struct mv_model_result r;
	int rc;

	memset(out, 0, sizeof(*out));
	s.in_copy = xmalloc(((size_t)it->nbufs + 1) * sizeof(*s.in_copy));
	memset(s.in_copy, 0xff, ((size_t)it->nbufs + 1) * sizeof(*s.in_copy));
	out->start = xmalloc(((size_t)it->nlaunch + 1) * sizeof(*out->start));
	out->fin = xmalloc(((size_t)it->nlaunch + 1) * sizeof(*out->fin));
	rc = mv_model_observe(it, plan, budget, m, &r, NULL, &obs);
	free(s.in_copy);
	if (rc < 0) {
		cli_sched_free(out);
		return rc;
	}
	out->end = out->t0 + r.step_ns;
	out->step_ns = r.step_ns;
	out->stall_ns = r.stall_ns;
	out->compute_ns = r.compute_ns;
	out->peak = r.peak;
	out->over_budget = r.over_budget;
	return 0;
}

void cli_sched_free(struct cli_sched *s)
{
	free(s->start);
	free(s->fin);
	free(s->copies);
	free(s->samples);
	memset(s, 0, sizeof(*s));
}

static int sched_sample_cmp(const void *a, const void *b)
{
	const struct cli_sched_sample *x = a, *y = b;

	return x->t < y->t ? -1 : x->t > y->t;
}

/* The schedule's device bytes over its iteration as a step curve, one point per instant that
 * changes it, from 0 to its end. Returns how many points, in *out (malloc'd). */
size_t cli_sched_curve(struct cli_sched *s, struct cli_sched_point **out)
{
	struct cli_sched_point *p = xmalloc(((size_t)s->nsamples + 2) * sizeof(*p));
	int64_t v = (int64_t)s->base;
	size_t n = 0;

	qsort(s->samples, s->nsamples, sizeof(*s->samples), sched_sample_cmp);
	p[n++] = (struct cli_sched_point){0, s->base};
	for (uint32_t i = 0; i < s->nsamples; i++) {
		uint64_t t = s->samples[i].t > s->t0 ? s->samples[i].t - s->t0 : 0;

		if (s->samples[i].t > s->end)
			break;
		v += s->samples[i].delta;
		if (n > 0 && p[n - 1].t == t)
			p[n - 1].bytes = v > 0 ? (uint64_t)v : 0;
		else
			p[n++] = (struct cli_sched_point){t, v > 0 ? (uint64_t)v : 0};
	}
	v = (int64_t)p[n - 1].bytes;
	p[n++] = (struct cli_sched_point){s->end - s->t0, (uint64_t)v};
	*out = p;
	return n;
}
