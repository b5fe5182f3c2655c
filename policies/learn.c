/* The learner: buffer events in, a bounded trace out (see learn.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policies/learn.h"
#include "policies/map.h"

struct mv_learner {
	struct mv_trace *trace;
	struct mv_learner_limits lim;
	mv_learner_note_fn *note;
	void *ctx;
	struct mv_map bufs;        /* live buffer key -> trace buffer */
	struct mv_map funcs;       /* function key -> trace function */
	uint64_t last_time;        /* times given to the trace never go back */

	/* The launch whose REFs are arriving. */
	int pending;
	int pending_bad;           /* its REFs are consumed, and it is not learnt */
	uint32_t pending_func;
	uint32_t pending_stream;
	uint64_t pending_time;
	uint64_t pending_dur;
	uint32_t want, got;
	uint32_t *refs;
	uint32_t refs_cap;

	/* The last iteration found in the current trace: kept when the trace is full. */
	int iter_valid;
	uint32_t iter_first_op;

	struct mv_learner_stats stats;
};

static void vnote(struct mv_learner *l, enum mv_learner_note kind, const char *fmt, va_list ap)
{
	if (l->note != NULL)
		l->note(l->ctx, kind, fmt, ap);
}

static void note(struct mv_learner *l, enum mv_learner_note kind, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void note(struct mv_learner *l, enum mv_learner_note kind, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vnote(l, kind, fmt, ap);
	va_end(ap);
}

void mv_learner_ignore(struct mv_learner *l, const char *fmt, ...)
{
	va_list ap;

	l->stats.ignored++;
	va_start(ap, fmt);
	vnote(l, MV_LEARNER_IGNORED, fmt, ap);
	va_end(ap);
}

/* An error the trace builder returns for an event that made no sense is the event's fault: only
 * running out of memory goes back to the caller. */
static int nomem_only(int rc)
{
	return rc == -ENOMEM ? rc : 0;
}

/* ---- starting over ---- */

/* A launch being collected refers to buffers by the old numbers: it cannot survive a restart. */
static void drop_pending(struct mv_learner *l)
{
	if (l->pending)
		l->pending_bad = 1;
}

/* Forgets everything: the trace, the buffers and the functions. */
static int learn_clear(struct mv_learner *l, const char *why)
{
	struct mv_trace *t = mv_trace_new(l->trace->device_total, 0);

	if (t == NULL)
		return -ENOMEM;
	note(l, MV_LEARNER_DEBUG, "learning starts over: %s", why);
	mv_trace_free(l->trace);
	l->trace = t;
	mv_map_clear(&l->bufs);
	mv_map_clear(&l->funcs);
	drop_pending(l);
	l->iter_valid = 0;
	l->stats.resets++;
	return 0;
}

/* Copies the ops of o from cut on into n, buffers by remap[], which gets the buffers they allocate. */
static int copy_ops(struct mv_trace *n, const struct mv_trace *o, uint32_t cut, uint32_t *remap)
{
	uint32_t *refs = NULL, i, k, b;
	int rc = 0;

	if (cut < o->nops && (refs = malloc(((size_t)MV_TRACE_REFS_MAX + 1) * sizeof(*refs))) == NULL)
		return -ENOMEM;
	for (k = cut; k < o->nops && rc == 0; k++) {
		const struct mv_trace_op *op = &o->ops[k];

		switch (op->kind) {
		case MV_TREC_ALLOC:
			b = op->id;
			rc = mv_trace_add_alloc(n, o->bufs[b].size, o->bufs[b].site, o->bufs[b].flags, op->time_ns,
						&remap[b]);
			break;
		case MV_TREC_FREE:
			rc = mv_trace_add_free(n, remap[op->id], op->time_ns);
			break;
		case MV_TREC_LAUNCH:
			for (i = 0; i < op->nrefs; i++)
				refs[i] = remap[o->refs[op->ref0 + i]];
			rc = mv_trace_add_launch(n, op->id, op->stream, op->time_ns, op->dur_ns, refs,
						 op->nrefs);
			break;
		case MV_TREC_SYNC:
			rc = mv_trace_add_sync(n, op->stream, op->time_ns);
			break;
		case MV_TREC_MARK:
			rc = mv_trace_add_mark(n, op->time_ns);
			break;
		case MV_TREC_PAGE:
			rc = mv_trace_add_page(n, remap[op->id], op->dir, op->time_ns, op->dur_ns, op->waited);
			break;
		default:
			break;
		}
	}
	free(refs);
	return rc;
}

/* The trace of o from op cut on, with the functions of o and the buffers alive at cut; the keys of
 * the buffers it keeps, renumbered, into *bufs. */
static int rebuilt(const struct mv_learner *l, uint32_t cut, struct mv_trace **out, struct mv_map *bufs)
{
	const struct mv_trace *o = l->trace;
	struct mv_trace *n = mv_trace_new(o->device_total, 0);
	uint32_t *remap = malloc(((size_t)o->nbufs + 1) * sizeof(*remap)), i, f, b, v;
	uint64_t key;
	int rc = n == NULL || remap == NULL ? -ENOMEM : 0;

	/* In the same order, so every function keeps its number. */
	for (f = 0; f < o->nfuncs && rc == 0; f++)
		rc = mv_trace_add_func(n, o->funcs[f], NULL);
	for (b = 0; b < o->nbufs && rc == 0; b++) {
		const struct mv_trace_buf *tb = &o->bufs[b];

		remap[b] = MV_TRACE_NONE;
		if (tb->alloc_op < cut && (tb->free_op == MV_TRACE_NONE || tb->free_op >= cut))
			rc = mv_trace_add_alloc(n, tb->size, tb->site, tb->flags, o->ops[tb->alloc_op].time_ns,
						&remap[b]);
	}
	if (rc == 0)
		rc = copy_ops(n, o, cut, remap);
	for (i = 0; rc == 0 && mv_map_next(&l->bufs, &i, &key, &v);) {
		if (remap[v] != MV_TRACE_NONE)
			rc = mv_map_set(bufs, key, remap[v]);
	}
	free(remap);
	if (rc < 0) {
		mv_trace_free(n);
		mv_map_clear(bufs);
		return rc;
	}
	*out = n;
	return 0;
}

/* Starts a new trace holding the ops of the old one from cut on, and the buffers alive at cut;
 * function numbers are kept, so the caller's function map stays valid. cut == nops keeps only the
 * live buffers. */
static int learn_rebuild(struct mv_learner *l, uint32_t cut)
{
	struct mv_map bufs = MV_MAP_INIT;
	struct mv_trace *n = NULL;
	int rc = rebuilt(l, cut, &n, &bufs);

	if (rc == -ENOMEM)
		return rc;
	if (rc < 0) {
		/* The old trace was built by the same checks: this is a bug, not input. */
		note(l, MV_LEARNER_WARN, "rebuilding the learnt trace failed (%d); starting over", rc);
		return learn_clear(l, "the trace could not be rebuilt");
	}
	mv_map_clear(&l->bufs);
	l->bufs = bufs;
	mv_trace_free(l->trace);
	l->trace = n;
	drop_pending(l);
	l->iter_valid = 0;
	return 0;
}

/* The refs held by the ops from cut on. */
static uint32_t refs_from(const struct mv_trace *t, uint32_t cut)
{
	uint32_t k;

	for (k = cut; k < t->nops; k++) {
		if (t->ops[k].kind == MV_TREC_LAUNCH)
			return t->nrefs - t->ops[k].ref0;
	}
	return 0;
}

static int fits(const struct mv_learner *l, uint32_t nrefs, uint32_t nbufs)
{
	const struct mv_trace *t = l->trace;

	return (uint64_t)t->nops + 1 + nbufs <= l->lim.ops && (uint64_t)t->nrefs + nrefs <= l->lim.refs &&
	       (uint64_t)t->nbufs + nbufs <= l->lim.bufs;
}

/* Makes room for one op naming nrefs buffers and adding up to nbufs buffers, restarting the trace
 * from its last iteration (or from nothing) when a limit would be passed. */
static int learn_room(struct mv_learner *l, uint32_t nrefs, uint32_t nbufs)
{
	const struct mv_trace *t = l->trace;
	int rc = 0;

	if (fits(l, nrefs, nbufs))
		return 0;
	l->stats.resets++;
	/* Keeping the last iteration lets detection find it again after one more, provided it is at
	 * most half of the trace; otherwise only the live buffers are kept. */
	if (l->iter_valid && t->nops - l->iter_first_op <= l->lim.ops / 2 &&
	    refs_from(t, l->iter_first_op) <= l->lim.refs / 2) {
		note(l, MV_LEARNER_DEBUG, "the learnt trace is full; keeping its last iteration");
		rc = learn_rebuild(l, l->iter_first_op);
	}
	if (rc == 0 && !fits(l, nrefs, nbufs)) {
		note(l, MV_LEARNER_DEBUG, "the learnt trace is full; keeping its live buffers");
		rc = learn_rebuild(l, l->trace->nops);
	}
	if (rc == 0 && !fits(l, nrefs, nbufs))
		rc = learn_clear(l, "too many live buffers");
	return rc;
}

int mv_learner_restart(struct mv_learner *l, const char *why)
{
	int rc;

	note(l, MV_LEARNER_DEBUG, "learning starts over: %s", why);
	l->pending = 0;
	rc = learn_rebuild(l, l->trace->nops);
	l->stats.resets++;
	return rc;
}

int mv_learner_forget(struct mv_learner *l, const char *why)
{
	l->pending = 0;
	return learn_clear(l, why);
}

void mv_learner_iteration(struct mv_learner *l, uint32_t first_op)
{
	l->iter_valid = 1;
	l->iter_first_op = first_op;
}

/* ---- events ---- */

/* What every event but a REF does first: the launch before it has had all its REFs, and its time
 * is the trace's next. */
static uint64_t event_begin(struct mv_learner *l, uint64_t time_ns)
{
	if (l->pending) {
		if (!l->pending_bad)
			mv_learner_ignore(l, "a LAUNCH that promised %u REFs and had %u", l->want, l->got);
		l->pending = 0;
	}
	if (time_ns > l->last_time)
		l->last_time = time_ns;
	return l->last_time;
}

void mv_learner_skip(struct mv_learner *l, uint64_t time_ns)
{
	event_begin(l, time_ns);
}

/* The trace buffer of a live key into *buf, with room made for one op: 1, or 0 when the key is not
 * alive (ignored, the event named by what), or -ENOMEM. */
static int live_buf(struct mv_learner *l, uint64_t key, const char *what, uint32_t *buf)
{
	int rc;

	if (!mv_map_get(&l->bufs, key, NULL)) {
		mv_learner_ignore(l, "a %s of 0x%" PRIx64 ", which is not allocated", what, key);
		return 0;
	}
	rc = learn_room(l, 0, 0);
	if (rc < 0)
		return rc;
	return mv_map_get(&l->bufs, key, buf);
}

static int learn_free(struct mv_learner *l, uint64_t key, uint64_t time)
{
	uint32_t buf;
	int rc = live_buf(l, key, "FREE", &buf);

	if (rc <= 0)
		return rc;
	rc = mv_trace_add_free(l->trace, buf, time);
	mv_map_del(&l->bufs, key);
	return nomem_only(rc);
}

int mv_learner_alloc(struct mv_learner *l, uint64_t key, uint64_t size, uint64_t site, uint32_t flags,
		     uint64_t time_ns)
{
	uint64_t time = event_begin(l, time_ns);
	uint32_t buf;
	int rc;

	if (size == 0) {
		mv_learner_ignore(l, "an ALLOC of 0 bytes at 0x%" PRIx64, key);
		return 0;
	}
	/* A second ALLOC of a live key means its FREE was lost. */
	if (mv_map_get(&l->bufs, key, NULL)) {
		mv_learner_ignore(l, "an ALLOC at 0x%" PRIx64 ", which is already allocated", key);
		rc = learn_free(l, key, time);
		if (rc < 0)
			return rc;
	}
	if (l->bufs.n >= l->lim.live && (rc = learn_clear(l, "too many live addresses")) < 0)
		return rc;
	rc = learn_room(l, 0, 1);
	if (rc == 0)
		rc = mv_trace_add_alloc(l->trace, size, site, flags, time, &buf);
	if (rc == 0)
		rc = mv_map_set(&l->bufs, key, buf);
	return nomem_only(rc);
}

int mv_learner_freed(struct mv_learner *l, uint64_t key, uint64_t time_ns)
{
	return learn_free(l, key, event_begin(l, time_ns));
}

/* The trace function of fkey, defined when first seen, into *func (MV_TRACE_NONE when learning had
 * to start over, or the name is not one a trace takes). */
static int learn_func(struct mv_learner *l, uint64_t fkey, const char *name, uint32_t *func)
{
	char own[32];
	int rc;

	if (mv_map_get(&l->funcs, fkey, func))
		return 0;
	*func = MV_TRACE_NONE;
	if (l->funcs.n >= l->lim.funcs)
		return learn_clear(l, "too many distinct functions");
	if (name == NULL) {
		snprintf(own, sizeof(own), "f%" PRIu64, fkey);
		name = own;
	}
	rc = mv_trace_add_func(l->trace, name, func);
	if (rc < 0) {
		*func = MV_TRACE_NONE;
		return nomem_only(rc);
	}
	return mv_map_set(&l->funcs, fkey, *func);
}

static int learn_commit(struct mv_learner *l)
{
	int rc;

	l->pending = 0;
	if (l->pending_bad)
		return 0;
	rc = mv_trace_add_launch(l->trace, l->pending_func, l->pending_stream, l->pending_time, l->pending_dur,
				 l->refs, l->got);
	if (rc == -ENOMEM)
		return rc;
	if (rc < 0) {
		mv_learner_ignore(l, "a LAUNCH the trace refused (%d)", rc);
		return 0;
	}
	l->stats.launches++;
	return 0;
}

int mv_learner_launch(struct mv_learner *l, uint64_t fkey, const char *name, uint32_t stream, uint64_t time_ns,
		      uint64_t dur_ns, uint64_t nrefs)
{
	uint64_t time = event_begin(l, time_ns);
	uint32_t want = nrefs > MV_TRACE_REFS_MAX ? 0 : (uint32_t)nrefs, func = MV_TRACE_NONE;
	int rc = 0;

	/* Room first: a restart while the REFs arrive would renumber the buffers they name. */
	if (nrefs <= MV_TRACE_REFS_MAX) {
		rc = learn_room(l, want, want);
		if (rc == 0)
			rc = learn_func(l, fkey, name, &func);
	}
	l->pending = 1;
	l->pending_bad = func == MV_TRACE_NONE;
	l->want = nrefs > UINT32_MAX ? UINT32_MAX : (uint32_t)nrefs;
	l->got = 0;
	if (nrefs > MV_TRACE_REFS_MAX)
		mv_learner_ignore(l, "a LAUNCH naming %" PRIu64 " buffers (at most %u)", nrefs,
				  MV_TRACE_REFS_MAX);
	if (!l->pending_bad) {
		l->pending_func = func;
		l->pending_stream = stream > UINT16_MAX ? UINT16_MAX : stream;
		l->pending_time = time;
		l->pending_dur = dur_ns;
		if (want > l->refs_cap) {
			uint32_t *r = realloc(l->refs, (size_t)want * sizeof(*r));
			if (r == NULL) {
				l->pending_bad = 1;
				return -ENOMEM;
			}
			l->refs = r;
			l->refs_cap = want;
		}
	}
	if (l->want == 0) {
		int rc2 = learn_commit(l);

		return rc < 0 ? rc : rc2;
	}
	return rc;
}

/* The trace buffer of key into *buf. A key never allocated (events lost, or a daemon started under
 * a running job) becomes a pinned stand-in; MV_TRACE_NONE when learning had to start over. */
static int learn_buf(struct mv_learner *l, uint64_t key, uint64_t time, uint32_t *buf)
{
	int rc;

	if (mv_map_get(&l->bufs, key, buf))
		return 0;
	*buf = MV_TRACE_NONE;
	mv_learner_ignore(l, "a REF of 0x%" PRIx64 ", which was never allocated", key);
	if (l->bufs.n >= l->lim.live)
		return learn_clear(l, "too many live addresses");
	rc = mv_trace_add_alloc(l->trace, 1, 0, MV_TBUF_PINNED, time, buf);
	if (rc < 0) {
		*buf = MV_TRACE_NONE;
		return nomem_only(rc);
	}
	return mv_map_set(&l->bufs, key, *buf);
}

int mv_learner_ref(struct mv_learner *l, uint64_t key)
{
	uint32_t buf;
	int rc = 0, rc2;

	if (!l->pending) {
		mv_learner_ignore(l, "a REF of 0x%" PRIx64 " with no LAUNCH before it", key);
		return 0;
	}
	if (!l->pending_bad) {
		/* learn_buf may start over, which marks the launch bad. */
		rc = learn_buf(l, key, l->pending_time, &buf);
		if (buf == MV_TRACE_NONE)
			l->pending_bad = 1;
		else if (!l->pending_bad)
			l->refs[l->got] = buf;
	}
	if (++l->got == l->want && (rc2 = learn_commit(l)) < 0)
		rc = rc2;
	return rc;
}

int mv_learner_mark(struct mv_learner *l, uint64_t time_ns)
{
	uint64_t time = event_begin(l, time_ns);
	int rc = learn_room(l, 0, 0);

	return rc < 0 ? rc : mv_trace_add_mark(l->trace, time);
}

int mv_learner_page(struct mv_learner *l, uint64_t key, int in, uint64_t time_ns, uint64_t dur_ns, int waited)
{
	uint64_t time = event_begin(l, time_ns);
	uint32_t buf;
	int rc = live_buf(l, key, "PAGE", &buf);

	if (rc <= 0)
		return rc;
	return nomem_only(mv_trace_add_page(l->trace, buf, in != 0, time, dur_ns, waited != 0));
}

/* ---- the learner ---- */

struct mv_learner *mv_learner_new(uint64_t device_total, const struct mv_learner_limits *lim,
				  mv_learner_note_fn *note_fn, void *ctx)
{
	struct mv_learner *l = calloc(1, sizeof(*l));

	if (l == NULL)
		return NULL;
	l->trace = mv_trace_new(device_total, 0);
	if (l->trace == NULL) {
		free(l);
		return NULL;
	}
	l->lim = *lim;
	l->note = note_fn;
	l->ctx = ctx;
	return l;
}

void mv_learner_free(struct mv_learner *l)
{
	if (l == NULL)
		return;
	mv_trace_free(l->trace);
	mv_map_clear(&l->bufs);
	mv_map_clear(&l->funcs);
	free(l->refs);
	free(l);
}

const struct mv_trace *mv_learner_trace(const struct mv_learner *l)
{
	return l->trace;
}

const struct mv_learner_stats *mv_learner_stats(const struct mv_learner *l)
{
	return &l->stats;
}

uint32_t mv_learner_func(const struct mv_learner *l, uint64_t fkey)
{
	uint32_t f;

	return mv_map_get(&l->funcs, fkey, &f) ? f : MV_TRACE_NONE;
}

size_t mv_learner_memory(const struct mv_learner *l)
{
	const struct mv_trace *t = l->trace;
	size_t n = sizeof(*l) + sizeof(*t);
	uint32_t f;

	n += (size_t)t->cap_ops * sizeof(*t->ops) + (size_t)t->cap_refs * sizeof(*t->refs) +
	     (size_t)t->cap_bufs * sizeof(*t->bufs) + (size_t)t->cap_funcs * sizeof(*t->funcs);
	for (f = 0; f < t->nfuncs; f++)
		n += strlen(t->funcs[f]) + 1;
	n += mv_map_memory(&l->bufs) + mv_map_memory(&l->funcs);
	n += (size_t)l->refs_cap * sizeof(*l->refs);
	return n;
}
