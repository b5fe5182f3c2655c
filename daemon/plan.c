/* Planning in memvirtd: the plans a session's job's policy makes for the iteration learnt from its
 * events (learn.c), sent to the library as PLAN frames, a few times a second. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon/internal.h"
#include "policies/learn.h"
#include "policies/policy.h"

/* How often sessions with new launches are planned for. */
#define PLAN_TICK_MS 250
/* Longer iterations are not planned: planning one would hold the event loop for tens of
 * milliseconds (a 10,000-launch iteration takes about 6 ms of CPU). */
#define PLAN_LAUNCH_MAX 50000u
/* A launch without a measured duration is assumed to take between these. */
#define PLAN_DUR_MIN 1000ull
#define PLAN_DUR_MAX 100000000ull

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
	if (d < PLAN_DUR_MIN)
		d = PLAN_DUR_MIN;
	if (d > PLAN_DUR_MAX)
		d = PLAN_DUR_MAX;
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

/* When one planning began and reached each step, for its log line. */
struct plan_clock {
	uint64_t t0, detected, built, planned;
	uint64_t cpu0; /* the thread's CPU time at t0 */
};

/* Finds the iteration in t: 0 with its ops and launch count, or -1 when there is none to plan. */
static int plan_detect(struct mvd_learn *l, const struct mv_trace *t, uint32_t *first_op, uint32_t *nops,
		       uint32_t *nlaunch)
{
	int rc = mv_iter_detect(t, first_op, nops);

	if (rc == -ENOENT)
		return -1;
	if (rc < 0 || *nops == 0) {
		mvd_warn("session %llu: iteration detection failed (%d)", (unsigned long long)l->session, rc);
		return -1;
	}
	mv_learner_iteration(l->learner, *first_op);
	*nlaunch = plan_launch_ops(t, *first_op, *nops, NULL, 0);
	if (*nlaunch == 0)
		return -1;
	if (*nlaunch > PLAN_LAUNCH_MAX) {
		if (!l->warned_long)
			mvd_warn("session %llu: its iteration of %u launches is longer than memvirtd plans "
				 "for (%u); the library pages on its own", (unsigned long long)l->session,
				 *nlaunch, PLAN_LAUNCH_MAX);
		l->warned_long = 1;
		return -1;
	}
	return 0;
}

/* Builds the iteration into *it with the launch duration assumed, *dur. Returns 0; 1 when it is the
 * iteration planned last and the inputs are the same, so there is nothing new to plan; -1 when it
 * could not be built. */
static int plan_build(struct mvd_learn *l, const struct mv_trace *t, int same_inputs, uint32_t first_op,
		      uint32_t nops, uint32_t nlaunch, uint64_t *dur, struct mv_iter **it)
{
	int rc;

	*dur = plan_default_dur(t, first_op, nops, nlaunch);
	rc = mv_iter_build(t, first_op, nops, *dur, it);
	mvd_learn_nomem(rc);
	if (rc < 0) {
		mvd_warn("session %llu: building the iteration failed (%d)", (unsigned long long)l->session,
			 rc);
		return -1;
	}
	/* An iteration already planned under the same rules is not planned again: launches keep
	 * arriving, but the loop they make is the same. The fingerprint comes last, as the only check
	 * that needs the iteration built. */
	if (same_inputs && l->found && l->iter_nlaunch == nlaunch && l->key_nlaunch == nlaunch &&
	    l->key_fingerprint == l->iter_fingerprint && (*it)->fingerprint == l->key_fingerprint) {
		mv_iter_free(*it);
		*it = NULL;
		return 1;
	}
	return 0;
}

/* Takes it as the iteration found, planned with this policy and these params. */
static void plan_remember(struct mvd_learn *l, const struct mv_iter *it, const char *policy,
			  const struct mv_policy_params *params)
{
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
}

/* Runs the policy: 0 with a plan a PLAN can carry in *plan (which the caller frees either way),
 * or -1. */
static int plan_run(struct mvd_learn *l, const struct mv_iter *it, const char *policy,
		    const struct mv_policy_params *p, struct mv_plan **plan, struct plan_clock *clk)
{
	const struct mv_policy *pol = mv_policy_find(policy);
	int rc;

	if (pol == NULL) {
		mvd_warn("session %llu: no policy '%s' in this memvirtd; nothing is planned",
			 (unsigned long long)l->session, policy);
		return -1;
	}
	rc = pol->plan(it, p, NULL, plan);
	clk->planned = plan_now_ns();
	mvd_learn_nomem(rc);
	if (rc < 0) {
		mvd_warn("session %llu: policy %s failed to plan (%d)", (unsigned long long)l->session,
			 policy, rc);
		return -1;
	}
	if ((*plan)->nops > MV_PLAN_OPS_MAX) {
		mvd_warn("session %llu: policy %s planned %u moves, more than a PLAN carries (%u); none "
			 "is sent", (unsigned long long)l->session, policy, (*plan)->nops,
			 (unsigned)MV_PLAN_OPS_MAX);
		return -1;
	}
	return 0;
}

/* The PLAN payload of plan: 1 with *payload and *len when it should be sent (a new plan, or an
 * empty one withdrawing the last), else 0. */
static int plan_payload(struct mvd_learn *l, const struct mv_trace *t, const struct mv_iter *it,
			const struct mv_plan *plan, uint32_t first_op, uint32_t nops, uint8_t **payload,
			size_t *len)
{
	uint32_t *launch_op = mvd_xmalloc((size_t)it->nlaunch * sizeof(*launch_op));
	struct mv_plan_op_wire *w = mvd_xmalloc(((size_t)plan->nops + 1) * sizeof(*w));
	struct mv_msg_plan head;
	uint64_t hash;
	int rc = 0;

	plan_launch_ops(t, first_op, nops, launch_op, it->nlaunch);
	head.fingerprint = it->fingerprint;
	head.nlaunch = it->nlaunch;
	head.nops = plan_wire_ops(l, it, plan, launch_op, w);
	hash = plan_hash(UINT64_C(0xcbf29ce484222325), (const uint8_t *)&head.fingerprint,
			 sizeof(head.fingerprint));
	hash = plan_hash(hash, (const uint8_t *)&head.nlaunch, sizeof(head.nlaunch));
	hash = plan_hash(hash, (const uint8_t *)w, (size_t)head.nops * sizeof(*w));
	/* Sent unless it moves nothing and there is no plan to withdraw, or it is the plan sent last. */
	if ((head.nops > 0 || l->sent_ops) &&
	    !(l->plans_sent > 0 && hash == l->sent_hash && head.nops == l->sent_nops)) {
		head.plan_id = ++l->plan_id;
		*payload = mvd_xmalloc(MV_MSG_PLAN_HEAD + (size_t)head.nops * MV_PLAN_OP_SIZE);
		*len = mv_plan_encode(&head, w, *payload);
		l->sent_hash = hash;
		l->sent_nops = head.nops;
		l->sent_ops = head.nops > 0;
		l->plans_sent++;
		rc = 1;
	}
	free(w);
	free(launch_op);
	return rc;
}

static void plan_log(struct mvd_learn *l, const struct mv_iter *it, const char *policy,
		     const struct plan_clock *clk, int sent)
{
	l->plan_ns = plan_now_ns() - clk->t0;
	mvd_debug("session %llu: planning an iteration of %u launches with %s took %.3f ms, %.3f ms of "
		  "CPU (detection %.3f, building %.3f, the policy %.3f)%s", (unsigned long long)l->session,
		  it->nlaunch, policy, (double)l->plan_ns / 1e6,
		  (double)(plan_clock_ns(CLOCK_THREAD_CPUTIME_ID) - clk->cpu0) / 1e6,
		  (double)(clk->detected - clk->t0) / 1e6, (double)(clk->built - clk->detected) / 1e6,
		  clk->planned > 0 ? (double)(clk->planned - clk->built) / 1e6 : 0.0,
		  sent ? "; plan sent" : "");
}

int mvd_learn_plan(struct mvd_learn *l, const char *policy, const struct mv_policy_params *params,
		   uint8_t **payload, size_t *len)
{
	const struct mv_trace *t = mv_learner_trace(l->learner);
	uint64_t launches = mv_learner_stats(l->learner)->launches, dur;
	struct mv_policy_params p = *params;
	struct plan_clock clk = {0};
	struct mv_iter *it = NULL;
	struct mv_plan *plan = NULL;
	uint32_t first_op, nops, nlaunch;
	int same_inputs, rc = 0;

	*payload = NULL;
	*len = 0;
	same_inputs = l->planned && strcmp(l->key_policy, policy) == 0 &&
		      plan_params_equal(&l->key_params, params);
	if (launches == l->planned_launches && same_inputs)
		return 0;
	clk.t0 = plan_now_ns();
	/* The wall time is what the event loop waited; the CPU time tells a busy host from slow code. */
	clk.cpu0 = plan_clock_ns(CLOCK_THREAD_CPUTIME_ID);
	l->planned_launches = launches;
	if (plan_detect(l, t, &first_op, &nops, &nlaunch) != 0)
		return 0;
	clk.detected = plan_now_ns();
	if (plan_build(l, t, same_inputs, first_op, nops, nlaunch, &dur, &it) != 0)
		return 0;
	clk.built = plan_now_ns();
	plan_remember(l, it, policy, params);
	p.machine.launch_ns = dur;
	if (plan_run(l, it, policy, &p, &plan, &clk) == 0)
		rc = plan_payload(l, t, it, plan, first_op, nops, payload, len);
	plan_log(l, it, policy, &clk, rc);
	mv_plan_free(plan);
	mv_iter_free(it);
	return rc;
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

/* Whether the library should send its launches: unless the session's iteration is learnt and its
 * policy plans nothing for it (lru, or a name no policy has), when they would only tell memvirtd
 * the same iteration again. Then it is told to stop, and told to start again when a reload gives
 * it a policy that plans. */
static void plan_hush(struct mvd_session *s, const char *policy)
{
	int plans = strcmp(policy, "lru") != 0 && mv_policy_find(policy) != NULL;
	int hush = !plans && s->learn->found;
	struct mv_msg_launches m = {!hush};
	uint8_t payload[MV_MSG_LAUNCHES_SIZE];

	if (hush == s->learn->hushed)
		return;
	mvd_learn_hush(s->learn, hush);
	mvd_debug("session %llu: %s", (unsigned long long)s->id,
		  hush ? "its iteration is learnt and its policy plans nothing: it is asked for no launches"
		       : "its policy plans: it is asked for its launches again");
	mvd_conn_send(s->conn, MV_MSG_LAUNCHES, payload, mv_launches_encode(&m, payload));
}

void mvd_plan_session(struct mvd_session *s)
{
	const struct mvd_job *job = mvd_session_job(s);
	const char *policy = job->policy != NULL ? job->policy : "lru";
	struct mv_policy_params p;
	uint8_t *payload;
	size_t len;

	if (s->learn == NULL || s->conn == NULL || s->conn->closing)
		return;
	plan_params(job, s, &p);
	if (mvd_learn_plan(s->learn, policy, &p, &payload, &len) == 1) {
		mvd_debug("session %llu: sending a plan of %zu bytes", (unsigned long long)s->id, len);
		mvd_conn_send(s->conn, MV_MSG_PLAN, payload, len);
		free(payload);
	}
	plan_hush(s, policy);
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
