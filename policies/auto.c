/* auto: until an iteration has been learned there is nothing to plan and the library pages
 * reactively (lru); once one has, auto plans it with mmcnn and, when mmcnn has to move anything,
 * also with knob variants (mmcnn with headroom 0 and 0.05, vdnn-all with lookahead 2 and 3,
 * vdnn-conv with lookahead 2), vdnn-all, vdnn-conv, lru (the empty plan) and mmcnn choosing by
 * next use (mv_policy_mmcnn_belady, with the caller's headroom and with 0). Each is replanned up
 * to three times with its own late page-ins fed back, as a running job learns; every plan is
 * replayed under the time model with the same budget and machine, and the one with the shortest
 * modeled step is kept (a plan the model cannot keep within the budget loses to one it can; equal
 * steps: fewer bytes moved, then the order above). It stops at a plan that reaches the lower
 * bound, and on iterations above AUTO_SEARCH_MAX launches and references it tries mmcnn, vdnn-all and lru once
 * with the caller's knobs, which keeps planning a 10,000-launch iteration well under 50 ms. vdnn-all wins where the budget is so far below the peak that paging every
 * activation one layer ahead hides copies better than mmcnn's just-in-time schedule; lru wins
 * where a few short reactive waits cost less than the traffic a plan adds. Its knobs are the union
 * of the others': budget, min_size, headroom, lookahead, heavy_fraction and the machine's
 * bandwidths. Choose it unless there is a reason to pin a particular policy. */
#include <errno.h>
#include <string.h>

#include "policies/policy.h"

/* Whether plan a, modeled as ra, is better than b, modeled as rb. */
static int auto_better(const struct mv_model_result *ra, const struct mv_model_result *rb)
{
	if (ra->over_budget != rb->over_budget)
		return !ra->over_budget;
	if (ra->step_ns != rb->step_ns)
		return ra->step_ns < rb->step_ns;
	return ra->bytes_out + ra->bytes_in < rb->bytes_out + rb->bytes_in;
}

/* One plan to try: a policy and the knobs it is tried with. */
struct auto_variant {
	const struct mv_policy *pol;
	double headroom;   /* < 0: the caller's */
	uint32_t lookahead; /* 0: the caller's */
};

/* The variants, in the order that breaks ties: mmcnn first. */
static const struct auto_variant auto_variants[] = {
	{ &mv_policy_mmcnn, -1, 0 },    { &mv_policy_mmcnn, 0, 0 },       { &mv_policy_mmcnn, 0.05, 0 },
	{ &mv_policy_vdnn_all, -1, 0 }, { &mv_policy_vdnn_all, -1, 2 },   { &mv_policy_vdnn_all, -1, 3 },
	{ &mv_policy_vdnn_conv, -1, 0 }, { &mv_policy_vdnn_conv, -1, 2 }, { &mv_policy_lru, -1, 0 },
	{ &mv_policy_mmcnn_belady, -1, 0 }, { &mv_policy_mmcnn_belady, 0, 0 },
};
#define AUTO_NVAR (sizeof(auto_variants) / sizeof(auto_variants[0]))
/* Rounds of late-page-in feedback each variant is planned with, as a running job would learn. */
#define AUTO_ROUNDS 3
/* Above this many launches and references only each policy's own knobs are tried, once, so that
 * planning stays within its time. */
#define AUTO_SEARCH_MAX 16384u

/* Plans variant v, then replans it up to AUTO_ROUNDS times with its late page-ins fed back (on a
 * copy of the caller's advances), keeping its best plan and model result in *best and *rbest.
 * Returns 0 or a negative errno. */
static int auto_try(const struct mv_iter *it, const struct mv_policy_params *p, const struct mv_feedback *fb,
		    const struct auto_variant *v, uint32_t rounds, struct mv_feedback *lfb, struct mv_plan **best,
		    struct mv_model_result *rbest)
{
	struct mv_policy_params q = *p;
	struct mv_plan *plan;
	struct mv_model_result r;
	uint32_t round, b;
	int err;

	if (v->headroom >= 0)
		q.headroom = v->headroom;
	if (v->lookahead > 0)
		q.lookahead = v->lookahead;
	for (b = 0; b < lfb->nbufs; b++) {
		lfb->advance[b] = fb != NULL && fb->advance != NULL && b < fb->nbufs ? fb->advance[b] : 0;
		lfb->late_ns[b] = 0;
		lfb->late_at[b] = MV_TRACE_NONE;
	}
	for (round = 0;; round++) {
		plan = NULL;
		err = v->pol->plan(it, &q, lfb, &plan);
		if (err < 0)
			return err;
		err = mv_model_run(it, plan, p->budget, &p->machine, &r, lfb);
		if (err < 0) {
			mv_plan_free(plan);
			return err;
		}
		if (*best == NULL || auto_better(&r, rbest)) {
			mv_plan_free(*best);
			*best = plan;
			*rbest = r;
		} else {
			mv_plan_free(plan);
		}
		if (round + 1 >= rounds || r.late == 0 || mv_feedback_apply(lfb, it) == 0 ||
		    rbest->step_ns <= rbest->compute_ns)
			return 0;
	}
}

static int auto_plan(const struct mv_iter *it, const struct mv_policy_params *p, const struct mv_feedback *fb,
		     struct mv_plan **out)
{
	struct mv_plan *best = NULL, *plan = NULL;
	struct mv_model_result rbest;
	struct mv_feedback *lfb;
	uint64_t lb;
	size_t i;
	int small = (uint64_t)it->nlaunch + it->nrefs <= AUTO_SEARCH_MAX;
	int err;

	if (it == NULL || p == NULL || out == NULL)
		return -EINVAL;
	/* mmcnn moving nothing means the iteration fits: nothing can beat that. */
	err = mv_policy_mmcnn.plan(it, p, fb, &plan);
	if (err < 0)
		return err;
	if (plan->nops == 0 || p->budget == 0) {
		*out = plan;
		return 0;
	}
	memset(&rbest, 0, sizeof(rbest));
	if (small) {
		mv_plan_free(plan);
	} else {
		/* Tried once with the caller's knobs, mmcnn's plan is the one just made. */
		err = mv_model_run(it, plan, p->budget, &p->machine, &rbest, NULL);
		if (err < 0) {
			mv_plan_free(plan);
			return err;
		}
		best = plan;
	}
	lfb = mv_feedback_new(it);
	if (lfb == NULL) {
		mv_plan_free(best);
		return -ENOMEM;
	}
	/* A plan that reaches the lower bound cannot be beaten: stop there. Below what one launch
	 * names there is none (UINT64_MAX), and nothing to stop at. */
	lb = mv_model_lower_bound(it, p->budget, &p->machine, NULL);
	if (lb == UINT64_MAX)
		lb = 0;
	for (i = 0; i < AUTO_NVAR && !(best != NULL && !rbest.over_budget && rbest.step_ns <= lb); i++) {
		/* Large iterations: each policy's own knobs only, and neither vdnn-conv, whose plans page
		 * a subset of what vdnn-all pages and so rarely beat both it and mmcnn, nor mmcnn's choice
		 * by next use, which would take planning past its time. */
		if (small == 0 && (i == 0 || auto_variants[i].headroom >= 0 || auto_variants[i].lookahead > 0 ||
				   auto_variants[i].pol == &mv_policy_vdnn_conv ||
				   auto_variants[i].pol == &mv_policy_mmcnn_belady))
			continue;
		err = auto_try(it, p, fb, &auto_variants[i], small ? AUTO_ROUNDS : 1, lfb, &best, &rbest);
		if (err < 0) {
			mv_plan_free(best);
			mv_feedback_free(lfb);
			return err;
		}
	}
	mv_feedback_free(lfb);
	*out = best;
	return 0;
}

const struct mv_policy mv_policy_auto = {
	.name = "auto",
	.summary = "the best modeled of mmcnn, vdnn-all, vdnn-conv and lru once the iteration is learned, lru until then",
	.plan = auto_plan,
};
