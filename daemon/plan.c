/* Planning in memvirtd: each library session's iteration learnt from its events, and the plans its
 * job's policy makes for that iteration, sent to the library as PLAN frames. */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon/internal.h"
#include "policies/learn.h"
#include "policies/policy.h"

/* How often sessions with new launches are planned for. */
#define PLAN_TICK_MS 250

/* Bounds on a session's learning (about 26 MiB at the worst), which hostile or merely huge event
 * streams reach: three iterations of 10,000 launches use a tenth of them. */
#define LEARN_OPS_MAX (1u << 18)   /* trace operations, 40 bytes each */
#define LEARN_REFS_MAX (1u << 21)  /* buffers named by the trace's launches, 4 bytes each */
#define LEARN_BUFS_MAX (1u << 17)  /* trace buffers, alive or freed, 32 bytes each */
#define LEARN_LIVE_MAX (1u << 16)  /* live addresses known at once */
#define LEARN_FUNCS_MAX (1u << 14) /* distinct functions */
/* Longer iterations are not planned: planning one would hold the event loop for tens of
 * milliseconds (a 10,000-launch iteration takes about 6 ms of CPU). */
#define PLAN_LAUNCH_MAX 50000u
/* Malformed events logged per session; the rest are only counted. */
#define LEARN_LOG_MAX 8
/* A launch without a measured duration is assumed to take between these. */
#define LEARN_DUR_MIN 1000ull
#define LEARN_DUR_MAX 100000000ull

/* What one session has learnt, and what was last planned and sent from it. */
struct mvd_learn {
	uint64_t session;          /* for log lines */
	struct mv_learner *learner;
	uint32_t logged;           /* ignored events logged */

	/* The last iteration detected. */
	int found;                 /* an iteration was ever learnt (the stats' "period found") */
	uint32_t iter_nlaunch;
	uint64_t iter_fingerprint;
	uint64_t planned_launches; /* launches learnt at the last planning */

	/* The inputs of the last planning, so that unchanged ones are not planned again. */
	int planned;
	uint64_t key_fingerprint;
	uint32_t key_nlaunch;
	char key_policy[32];
	struct mv_policy_params key_params;

	/* What was last sent. */
	int sent_ops;              /* the last plan sent had ops: an empty one would withdraw it */
	uint64_t sent_hash;
	uint32_t sent_nops;
	uint64_t plan_id;
	uint64_t plans_sent;
	uint64_t plan_ns;          /* how long the last planning took */

	int warned_long;           /* logged that its iteration is too long to plan */
};

/* ---- learning ------------------------------------------------------------------------------- */

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

static void learn_nomem(int rc)
{
	if (rc == -ENOMEM)
		mvd_fatal("out of memory learning an iteration");
}

void mvd_learn_event(struct mvd_learn *l, const struct mv_event *ev)
{
	struct mv_learner *lr = l->learner;

	switch (ev->kind) {
	case MV_EV_REF:
		learn_nomem(mv_learner_ref(lr, ev->addr));
		break;
	case MV_EV_ALLOC:
		learn_nomem(mv_learner_alloc(lr, ev->addr, ev->size, ev->arg, 0, ev->time_ns));
		break;
	case MV_EV_FREE:
		learn_nomem(mv_learner_freed(lr, ev->addr, ev->time_ns));
		break;
	case MV_EV_LAUNCH:
		learn_nomem(mv_learner_launch(lr, ev->addr, NULL, ev->stream, ev->time_ns, 0, ev->arg));
		break;
	case MV_EV_MARK:
		learn_nomem(mv_learner_mark(lr, ev->time_ns));
		break;
	case MV_EV_PAGE_OUT:
	case MV_EV_PAGE_IN:
		/* The library's own moves do not change the iteration. */
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
	/* A gap breaks the sequence: whatever was learnt no longer lines up with the library's
	 * launches. The live buffers are kept, so that learning resumes with the next iteration. */
	snprintf(why, sizeof(why), "%u events were lost", dropped);
	learn_nomem(mv_learner_restart(l->learner, why));
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
	free(l);
}

size_t mvd_learn_memory(const struct mvd_learn *l)
{
	return sizeof(*l) + mv_learner_memory(l->learner);
}

const struct mv_trace *mvd_learn_trace(const struct mvd_learn *l)
{
	return mv_learner_trace(l->learner);
}

/* ---- planning ------------------------------------------------------------------------------- */

static uint64_t plan_clock_ns(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t plan_now_ns(void)
{
	return plan_clock_ns(CLOCK_MONOTONIC);
}

static int plan_params_equal(const struct mv_policy_params *a, const struct mv_policy_params *b)
{
	return a->budget == b->budget && a->machine.h2d_bps == b->machine.h2d_bps &&
	       a->machine.d2h_bps == b->machine.d2h_bps && a->min_size == b->min_size &&
	       a->lookahead == b->lookahead && a->heavy_fraction == b->heavy_fraction &&
	       a->headroom == b->headroom;
}

static uint64_t plan_hash(uint64_t h, const uint8_t *p, size_t n)
{
	while (n-- > 0) {
		h ^= *p++;
		h *= UINT64_C(0x100000001b3);
	}
	return h;
}

/* The trace op of each of the iteration's launches, into launch_op[0, nlaunch); returns the
 * number of launches found. */
static uint32_t plan_launch_ops(const struct mv_trace *t, uint32_t first_op, uint32_t nops,
				uint32_t *launch_op, uint32_t max)
{
	uint32_t k, n = 0;

	for (k = first_op; k < first_op + nops; k++) {
		if (t->ops[k].kind == MV_TREC_LAUNCH) {
			if (n < max)
				launch_op[n] = k;
			n++;
		}
	}
	return n;
}

/* The duration assumed for each launch: the iteration's span over its launches, which is what a
 * launch costs on average when the loop is bound by the device. */
static uint64_t plan_default_dur(const struct mv_trace *t, uint32_t first_op, uint32_t nops, uint32_t nlaunch)
{
	uint64_t start = t->ops[first_op].time_ns, end, d;

	end = first_op + nops < t->nops ? t->ops[first_op + nops].time_ns :
					  t->ops[first_op + nops - 1].time_ns;
	d = nlaunch > 0 ? (end - start) / nlaunch : 0;
	if (d < LEARN_DUR_MIN)
		d = LEARN_DUR_MIN;
	if (d > LEARN_DUR_MAX)
		d = LEARN_DUR_MAX;
	return d;
}

/* Fills the wire ops of plan; returns how many (ops whose buffer the iteration never names
 * cannot be bound, and are left out). */
static uint32_t plan_wire_ops(const struct mvd_learn *l, const struct mv_iter *it, const struct mv_plan *plan,
			      const uint32_t *launch_op, struct mv_plan_op_wire *w)
{
	const struct mv_trace *t = mv_learner_trace(l->learner);
	const struct mv_trace_op *op;
	const struct mv_iter_buf *ib;
	uint32_t i, j, n = 0;

	for (i = 0; i < plan->nops; i++) {
		const struct mv_plan_op *p = &plan->ops[i];

		if (p->buf >= it->nbufs)
			continue;
		ib = &it->bufs[p->buf];
		if (ib->first_use == MV_TRACE_NONE || ib->first_use >= it->nlaunch) {
			mvd_debug("session %llu: a planned move of iteration buffer %u, which no launch "
				  "names, is left out", (unsigned long long)l->session, p->buf);
			continue;
		}
		/* The library binds by the position among the launch's REFs, which the trace keeps
		 * as they came. */
		op = &t->ops[launch_op[ib->first_use]];
		for (j = 0; j < op->nrefs && t->refs[op->ref0 + j] != ib->trace_buf; j++)
			;
		if (j == op->nrefs) {
			mvd_warn("session %llu: iteration buffer %u is not among the buffers of its first "
				 "launch %u; its planned move is left out", (unsigned long long)l->session,
				 p->buf, ib->first_use);
			continue;
		}
		w[n].at = p->at == MV_TRACE_NONE ? MV_PLAN_OP_BEFORE_FIRST : p->at;
		w[n].need = p->need == MV_TRACE_NONE ? MV_PLAN_OP_BEFORE_FIRST : p->need;
		w[n].kind = p->kind;
		w[n].bind_launch = ib->first_use;
		w[n].bind_index = j;
		w[n].reserved = 0;
		w[n].size = ib->size;
		n++;
	}
	return n;
}

int mvd_learn_plan(struct mvd_learn *l, const char *policy, const struct mv_policy_params *params,
		   uint8_t **payload, size_t *len)
{
	const struct mv_policy *pol;
	struct mv_policy_params p = *params;
	struct mv_iter *it = NULL;
	struct mv_plan *plan = NULL;
	struct mv_plan_op_wire *w = NULL;
	struct mv_msg_plan head;
	uint32_t first_op, nops, nlaunch, *launch_op = NULL;
	uint64_t t0, t1, t2, t3 = 0, cpu0, dur, hash, launches = mv_learner_stats(l->learner)->launches;
	const struct mv_trace *trace = mv_learner_trace(l->learner);
	int rc, same_inputs;

	*payload = NULL;
	*len = 0;
	same_inputs = l->planned && strcmp(l->key_policy, policy) == 0 &&
		      plan_params_equal(&l->key_params, params);
	if (launches == l->planned_launches && same_inputs)
		return 0;
	t0 = plan_now_ns();
	/* The wall time is what the event loop waited; the CPU time tells a busy host from slow code. */
	cpu0 = plan_clock_ns(CLOCK_THREAD_CPUTIME_ID);
	l->planned_launches = launches;
	rc = mv_iter_detect(trace, &first_op, &nops);
	if (rc == -ENOENT)
		return 0;
	if (rc < 0 || nops == 0) {
		mvd_warn("session %llu: iteration detection failed (%d)", (unsigned long long)l->session,
			 rc);
		return 0;
	}
	t1 = plan_now_ns();
	mv_learner_iteration(l->learner, first_op);

	nlaunch = plan_launch_ops(trace, first_op, nops, NULL, 0);
	if (nlaunch == 0)
		return 0;
	if (nlaunch > PLAN_LAUNCH_MAX) {
		if (!l->warned_long)
			mvd_warn("session %llu: its iteration of %u launches is longer than memvirtd plans "
				 "for (%u); the library pages on its own", (unsigned long long)l->session,
				 nlaunch, PLAN_LAUNCH_MAX);
		l->warned_long = 1;
		return 0;
	}
	/* An iteration already planned under the same rules is not planned again: launches keep
	 * arriving, but the loop they make is the same. */
	if (same_inputs && l->found && l->iter_nlaunch == nlaunch && l->key_nlaunch == nlaunch &&
	    l->key_fingerprint == l->iter_fingerprint) {
		/* The fingerprint needs the iteration built; the cheap checks come first. */
		dur = plan_default_dur(trace, first_op, nops, nlaunch);
		rc = mv_iter_build(trace, first_op, nops, dur, &it);
		learn_nomem(rc);
		if (rc == 0 && it->fingerprint == l->key_fingerprint) {
			mv_iter_free(it);
			return 0;
		}
	} else {
		dur = plan_default_dur(trace, first_op, nops, nlaunch);
		rc = mv_iter_build(trace, first_op, nops, dur, &it);
		learn_nomem(rc);
	}
	if (rc < 0) {
		mvd_warn("session %llu: building the iteration failed (%d)", (unsigned long long)l->session,
			 rc);
		return 0;
	}
	t2 = plan_now_ns();
	if (!l->found || l->iter_fingerprint != it->fingerprint || l->iter_nlaunch != it->nlaunch)
		mvd_info("session %llu: learnt an iteration of %u launches (fingerprint %016" PRIx64 ")",
			 (unsigned long long)l->session, it->nlaunch, it->fingerprint);
	l->found = 1;
	l->iter_nlaunch = it->nlaunch;
	l->iter_fingerprint = it->fingerprint;

	l->planned = 1;
	snprintf(l->key_policy, sizeof(l->key_policy), "%s", policy);
	l->key_params = *params;
	l->key_fingerprint = it->fingerprint;
	l->key_nlaunch = it->nlaunch;

	pol = mv_policy_find(policy);
	if (pol == NULL) {
		mvd_warn("session %llu: no policy '%s' in this memvirtd; nothing is planned",
			 (unsigned long long)l->session, policy);
		goto out;
	}
	p.machine.launch_ns = dur;
	rc = pol->plan(it, &p, NULL, &plan);
	t3 = plan_now_ns();
	learn_nomem(rc);
	if (rc < 0) {
		mvd_warn("session %llu: policy %s failed to plan (%d)", (unsigned long long)l->session,
			 policy, rc);
		goto out;
	}
	if (plan->nops > MV_PLAN_OPS_MAX) {
		mvd_warn("session %llu: policy %s planned %u moves, more than a PLAN carries (%u); none "
			 "is sent", (unsigned long long)l->session, policy, plan->nops,
			 (unsigned)MV_PLAN_OPS_MAX);
		goto out;
	}
	launch_op = mvd_xmalloc((size_t)it->nlaunch * sizeof(*launch_op));
	plan_launch_ops(trace, first_op, nops, launch_op, it->nlaunch);
	w = mvd_xmalloc(((size_t)plan->nops + 1) * sizeof(*w));
	head.fingerprint = it->fingerprint;
	head.nlaunch = it->nlaunch;
	head.nops = plan_wire_ops(l, it, plan, launch_op, w);

	hash = plan_hash(UINT64_C(0xcbf29ce484222325), (const uint8_t *)&head.fingerprint,
			 sizeof(head.fingerprint));
	hash = plan_hash(hash, (const uint8_t *)&head.nlaunch, sizeof(head.nlaunch));
	hash = plan_hash(hash, (const uint8_t *)w, (size_t)head.nops * sizeof(*w));
	/* Nothing to move and nothing sent before that would need withdrawing. */
	if (head.nops == 0 && !l->sent_ops)
		goto out;
	if (l->plans_sent > 0 && hash == l->sent_hash && head.nops == l->sent_nops)
		goto out;
	head.plan_id = ++l->plan_id;
	*payload = mvd_xmalloc(MV_MSG_PLAN_HEAD + (size_t)head.nops * MV_PLAN_OP_SIZE);
	*len = mv_plan_encode(&head, w, *payload);
	l->sent_hash = hash;
	l->sent_nops = head.nops;
	l->sent_ops = head.nops > 0;
	l->plans_sent++;
	rc = 1;
out:
	if (rc != 1)
		rc = 0;
	l->plan_ns = plan_now_ns() - t0;
	mvd_debug("session %llu: planning an iteration of %u launches with %s took %.3f ms, %.3f ms of "
		  "CPU (detection %.3f, building %.3f, the policy %.3f)%s", (unsigned long long)l->session,
		  it->nlaunch, policy, (double)l->plan_ns / 1e6,
		  (double)(plan_clock_ns(CLOCK_THREAD_CPUTIME_ID) - cpu0) / 1e6, (double)(t1 - t0) / 1e6,
		  (double)(t2 - t1) / 1e6, t3 > 0 ? (double)(t3 - t2) / 1e6 : 0.0,
		  rc == 1 ? "; plan sent" : "");
	free(w);
	free(launch_op);
	mv_plan_free(plan);
	mv_iter_free(it);
	return rc;
}

void mvd_learn_json(const struct mvd_learn *l, json_t *o)
{
	char fp[20];

	snprintf(fp, sizeof(fp), "%016" PRIx64, l->iter_fingerprint);
	json_object_set_new(o, "iteration_found", json_boolean(l->found));
	json_object_set_new(o, "iteration_launches", json_integer((json_int_t)l->iter_nlaunch));
	json_object_set_new(o, "iteration_fingerprint", json_string(fp));
	json_object_set_new(o, "plans_sent", json_integer((json_int_t)l->plans_sent));
	json_object_set_new(o, "plan_ops", json_integer((json_int_t)l->sent_nops));
	json_object_set_new(o, "plan_time_us", json_integer((json_int_t)(l->plan_ns / 1000)));
	json_object_set_new(o, "learn_resets", json_integer((json_int_t)mv_learner_stats(l->learner)->resets));
	json_object_set_new(o, "learn_ignored", json_integer((json_int_t)mv_learner_stats(l->learner)->ignored));
}

/* ---- sessions ------------------------------------------------------------------------------- */

static uv_timer_t plan_timer;
static int plan_timer_on;

/* What the job's policy plans with: the session's grant and the config's knobs. */
static void plan_params(const struct mvd_job *job, const struct mvd_session *s, struct mv_policy_params *p)
{
	mv_policy_defaults(p);
	p->budget = s->grant;
	/* A job's knobs were checked when the config was loaded; zero means the file left it out. */
	if (job->page_min > 0)
		p->min_size = job->page_min;
	if (job->lookahead > 0)
		p->lookahead = job->lookahead;
	if (job->heavy_fraction > 0)
		p->heavy_fraction = job->heavy_fraction;
	p->headroom = job->headroom;
}

void mvd_plan_session(struct mvd_session *s)
{
	const struct mvd_job *job = mvd_config_job(mvd_server_config(), s->job);
	struct mv_policy_params p;
	uint8_t *payload;
	size_t len;

	if (s->learn == NULL || s->conn == NULL || s->conn->closing)
		return;
	plan_params(job, s, &p);
	if (mvd_learn_plan(s->learn, job->policy != NULL ? job->policy : "lru", &p, &payload, &len) != 1)
		return;
	mvd_debug("session %llu: sending a plan of %zu bytes", (unsigned long long)s->id, len);
	mvd_conn_send(s->conn, MV_MSG_PLAN, payload, len);
	free(payload);
}

static void plan_tick(uv_timer_t *t)
{
	struct mvd_session *s;

	(void)t;
	TAILQ_FOREACH(s, mvd_sessions(), entry)
		mvd_plan_session(s);
}

void mvd_plan_start(uv_loop_t *loop)
{
	uv_timer_init(loop, &plan_timer);
	uv_timer_start(&plan_timer, plan_tick, PLAN_TICK_MS, PLAN_TICK_MS);
	/* The loop ends when the connections are gone; this timer does not hold it. */
	uv_unref((uv_handle_t *)&plan_timer);
	plan_timer_on = 1;
}

void mvd_plan_stop(void)
{
	if (!plan_timer_on)
		return;
	plan_timer_on = 0;
	uv_timer_stop(&plan_timer);
	uv_close((uv_handle_t *)&plan_timer, NULL);
}
