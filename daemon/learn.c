/* Learning in memvirtd: each library session's events fed to the learner of policies/learn.h,
 * within bounds a hostile or merely huge event stream cannot pass, what the learning costs in memory,
 * and its part of the session's stats. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "daemon/internal.h"
#include "policies/learn.h"

/* Bounds on a session's learning (about 26 MiB at the worst), which hostile or merely huge event
 * streams reach: three iterations of 10,000 launches use a tenth of them. */
#define LEARN_OPS_MAX (1u << 18)   /* trace operations, 40 bytes each */
#define LEARN_REFS_MAX (1u << 21)  /* buffers named by the trace's launches, 4 bytes each */
#define LEARN_BUFS_MAX (1u << 17)  /* trace buffers, alive or freed, 32 bytes each */
#define LEARN_LIVE_MAX (1u << 16)  /* live addresses known at once */
#define LEARN_FUNCS_MAX (1u << 14) /* distinct functions */
/* Malformed events logged per session; the rest are only counted. */
#define LEARN_LOG_MAX 8

/* What the learner tells: the stream comes from a socket and may be hostile, so malformed events
 * must cost neither the daemon nor its log; the first few are logged, the rest only counted. */
static void learn_note(void *ctx, enum mv_learner_note kind, const char *fmt, va_list ap)
{
	struct mvd_learn *l = ctx;
	char msg[256];

	if (kind == MV_LEARNER_IGNORED && l->logged >= LEARN_LOG_MAX)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	switch (kind) {
	case MV_LEARNER_IGNORED:
		l->logged++;
		mvd_debug("session %llu: learning ignores %s%s", (unsigned long long)l->session, msg,
			  l->logged == LEARN_LOG_MAX ? " (further ones are only counted)" : "");
		break;
	case MV_LEARNER_WARN:
		mvd_warn("session %llu: %s", (unsigned long long)l->session, msg);
		break;
	default:
		mvd_debug("session %llu: %s", (unsigned long long)l->session, msg);
		break;
	}
}

void mvd_learn_nomem(int rc)
{
	if (rc == -ENOMEM)
		mvd_fatal("out of memory learning an iteration");
}

/* ---- quiet spells ----
 *
 * While the library follows memvirtd's plan it sends no LAUNCH or REF (MV_EV_QUIET to MV_EV_LOUD),
 * nor while memvirtd has asked it for none (hushed: its policy plans nothing for the iteration
 * learnt), and the trace holding the iteration stays as it is: a new grant is planned on it. The
 * buffers allocated meanwhile are kept aside, at most LEARN_LIVE_MAX of them, and learnt as alive
 * when launches resume (MV_EV_LOUD); a FREE of a buffer the trace knows goes to the trace at once.
 * So a spell costs a map operation per ALLOC and FREE, however long it lasts. */

static void quiet_drop(struct mvd_learn *l)
{
	mv_map_clear(&l->qmap);
	free(l->qbufs);
	l->qbufs = NULL;
	l->nq = l->capq = 0;
	l->qlost = 0;
}

static void quiet_alloc(struct mvd_learn *l, const struct mv_event *ev)
{
	uint32_t i;

	if (ev->size == 0) {
		mv_learner_ignore(l->learner, "an ALLOC of 0 bytes at 0x%" PRIx64, ev->addr);
		return;
	}
	if (mv_map_get(&l->qmap, ev->addr, &i)) {
		/* Its FREE was lost: this is the buffer there now. */
		l->qbufs[i] = (struct mvd_qbuf){ev->addr, ev->size, ev->arg};
		return;
	}
	if (l->qlost)
		return;
	if (l->nq >= LEARN_LIVE_MAX) {
		l->qlost = 1;
		return;
	}
	if (l->nq == l->capq) {
		l->capq = l->capq == 0 ? 64 : l->capq * 2;
		l->qbufs = mvd_xrealloc(l->qbufs, (size_t)l->capq * sizeof(*l->qbufs));
	}
	if (mv_map_set(&l->qmap, ev->addr, l->nq) != 0)
		mvd_fatal("out of memory learning an iteration");
	l->qbufs[l->nq++] = (struct mvd_qbuf){ev->addr, ev->size, ev->arg};
}

static void quiet_free(struct mvd_learn *l, const struct mv_event *ev)
{
	uint32_t i;

	if (!mv_map_get(&l->qmap, ev->addr, &i)) {
		/* One the trace knows (or none: the learner ignores it, as outside a spell). */
		mvd_learn_nomem(mv_learner_freed(l->learner, ev->addr, ev->time_ns));
		return;
	}
	mv_map_del(&l->qmap, ev->addr);
	if (i != --l->nq) {
		l->qbufs[i] = l->qbufs[l->nq];
		if (mv_map_set(&l->qmap, l->qbufs[i].key, i) != 0)
			mvd_fatal("out of memory learning an iteration");
	}
}

static void quiet_begin(struct mvd_learn *l, const struct mv_event *ev)
{
	if (l->quiet)
		return;
	l->quiet = 1;
	l->quiet_spells++;
	mvd_debug("session %llu: the job follows the plan (%llu iterations so far); its launches pause",
		  (unsigned long long)l->session, (unsigned long long)ev->arg);
}

/* Launches come again: called once neither the library's spell nor memvirtd's hush lasts. */
static void quiet_end(struct mvd_learn *l, uint64_t time_ns)
{
	/* The launches between no longer line up with the trace: learning starts over from the buffers
	 * alive now. */
	if (l->qlost) {
		mvd_learn_nomem(mv_learner_forget(l->learner, "the job left its plan, after more buffers "
					      "were allocated than are learnt"));
	} else {
		mvd_learn_nomem(mv_learner_restart(l->learner, "the job left its plan"));
		for (uint32_t i = 0; i < l->nq; i++)
			mvd_learn_nomem(mv_learner_alloc(l->learner, l->qbufs[i].key, l->qbufs[i].size,
							 l->qbufs[i].site, 0, time_ns));
	}
	mvd_debug("session %llu: the job left its plan; its launches resume", (unsigned long long)l->session);
	quiet_drop(l);
}

/* The library's spell is over (or may be): launches come again unless memvirtd's hush lasts. */
static void quiet_stop(struct mvd_learn *l, uint64_t time_ns)
{
	l->quiet = 0;
	if (!l->hushed)
		quiet_end(l, time_ns);
}

/* An event of a quiet spell. */
static void quiet_event(struct mvd_learn *l, const struct mv_event *ev)
{
	switch (ev->kind) {
	case MV_EV_ALLOC:
		quiet_alloc(l, ev);
		break;
	case MV_EV_FREE:
		quiet_free(l, ev);
		break;
	case MV_EV_LOUD:
		quiet_stop(l, ev->time_ns);
		break;
	case MV_EV_QUIET:
		quiet_begin(l, ev);
		break;
	case MV_EV_LAUNCH:
	case MV_EV_REF:
	case MV_EV_MARK:
	case MV_EV_PAGE_OUT:
	case MV_EV_PAGE_IN:
		/* A launch that raced with the spell's start, or what the trace does not keep. */
		break;
	default:
		mv_learner_ignore(l->learner, "an event of unknown kind %u", ev->kind);
		break;
	}
}

void mvd_learn_event(struct mvd_learn *l, const struct mv_event *ev)
{
	struct mv_learner *lr = l->learner;

	if (l->quiet || l->hushed) {
		quiet_event(l, ev);
		return;
	}
	switch (ev->kind) {
	case MV_EV_REF:
		mvd_learn_nomem(mv_learner_ref(lr, ev->addr));
		break;
	case MV_EV_ALLOC:
		mvd_learn_nomem(mv_learner_alloc(lr, ev->addr, ev->size, ev->arg, 0, ev->time_ns));
		break;
	case MV_EV_FREE:
		mvd_learn_nomem(mv_learner_freed(lr, ev->addr, ev->time_ns));
		break;
	case MV_EV_LAUNCH:
		mvd_learn_nomem(mv_learner_launch(lr, ev->addr, NULL, ev->stream, ev->time_ns, 0, ev->arg));
		break;
	case MV_EV_MARK:
		mvd_learn_nomem(mv_learner_mark(lr, ev->time_ns));
		break;
	case MV_EV_PAGE_OUT:
	case MV_EV_PAGE_IN:
		/* The library's own moves do not change the iteration. */
		mv_learner_skip(lr, ev->time_ns);
		break;
	case MV_EV_QUIET:
		mv_learner_skip(lr, ev->time_ns);
		quiet_begin(l, ev);
		break;
	case MV_EV_LOUD:
		/* Its QUIET was lost with a gap, which restarted learning already. */
		mv_learner_skip(lr, ev->time_ns);
		break;
	default:
		mv_learner_skip(lr, ev->time_ns);
		mv_learner_ignore(lr, "an event of unknown kind %u", ev->kind);
		break;
	}
}

void mvd_learn_gap(struct mvd_learn *l, uint32_t dropped)
{
	char why[64];

	if (dropped == 0)
		return;
	/* The lost events may have ended the spell: learning resumes as if they had (a library still
	 * quiet sends no launches to learn meanwhile). */
	if (l->quiet || l->hushed) {
		quiet_stop(l, 0);
		return;
	}
	/* A gap breaks the sequence: whatever was learnt no longer lines up with the library's
	 * launches. The live buffers are kept, so that learning resumes with the next iteration. */
	snprintf(why, sizeof(why), "%u events were lost", dropped);
	mvd_learn_nomem(mv_learner_restart(l->learner, why));
}

void mvd_learn_hush(struct mvd_learn *l, int on)
{
	if (on == l->hushed)
		return;
	l->hushed = on;
	if (!on && !l->quiet)
		quiet_end(l, 0);
}

struct mvd_learn *mvd_learn_new(uint64_t session, uint64_t device_total)
{
	static const struct mv_learner_limits lim = {LEARN_OPS_MAX, LEARN_REFS_MAX, LEARN_BUFS_MAX,
						     LEARN_LIVE_MAX, LEARN_FUNCS_MAX};
	struct mvd_learn *l = mvd_xcalloc(1, sizeof(*l));

	l->session = session;
	l->learner = mv_learner_new(device_total, &lim, learn_note, l);
	if (l->learner == NULL)
		mvd_fatal("out of memory learning an iteration");
	return l;
}

void mvd_learn_free(struct mvd_learn *l)
{
	if (l == NULL)
		return;
	mv_learner_free(l->learner);
	quiet_drop(l);
	free(l);
}

size_t mvd_learn_memory(const struct mvd_learn *l)
{
	return sizeof(*l) + mv_learner_memory(l->learner) + mv_map_memory(&l->qmap) +
	       (size_t)l->capq * sizeof(*l->qbufs);
}

const struct mv_trace *mvd_learn_trace(const struct mvd_learn *l)
{
	return mv_learner_trace(l->learner);
}

void mvd_learn_json(const struct mvd_learn *l, json_t *o)
{
	const struct mv_learner_stats *st = mv_learner_stats(l->learner);
	char fp[20];

	snprintf(fp, sizeof(fp), "%016" PRIx64, l->iter_fingerprint);
	json_object_set_new(o, "iteration_found", json_boolean(l->found));
	json_object_set_new(o, "iteration_launches", json_integer((json_int_t)l->iter_nlaunch));
	json_object_set_new(o, "iteration_fingerprint", json_string(fp));
	json_object_set_new(o, "plans_sent", json_integer((json_int_t)l->plans_sent));
	json_object_set_new(o, "plan_ops", json_integer((json_int_t)l->sent_nops));
	json_object_set_new(o, "plan_time_us", json_integer((json_int_t)(l->plan_ns / 1000)));
	json_object_set_new(o, "learn_resets", json_integer((json_int_t)st->resets));
	json_object_set_new(o, "learn_ignored", json_integer((json_int_t)st->ignored));
	json_object_set_new(o, "following_quietly", json_boolean(l->quiet));
	json_object_set_new(o, "launches_wanted", json_boolean(!l->hushed));
	json_object_set_new(o, "quiet_spells", json_integer((json_int_t)l->quiet_spells));
}

