/* auto: until an iteration has been learned there is nothing to plan and the library pages
 * reactively (lru); once one has, auto plans it with mmcnn and, when mmcnn has to move anything,
 * also with vdnn-all, vdnn-conv and lru (the empty plan), replays every plan under the time model
 * with the same budget and machine, and keeps the one with the shortest modeled step (a plan the
 * model cannot keep within the budget loses to one it can; equal steps: fewer bytes moved, then the
 * order above). vdnn-all wins where the budget is so far below the peak that paging every
 * activation one layer ahead hides copies better than mmcnn's just-in-time schedule; lru wins
 * where a few short reactive waits cost less than the traffic a plan adds. Its knobs are the union
 * of the others': budget, min_size, headroom, lookahead, heavy_fraction and the machine's
 * bandwidths. Choose it unless there is a reason to pin a particular policy. */
#include <errno.h>

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

/* The candidates, in the order that breaks ties: mmcnn first. */
static const struct mv_policy *const auto_candidates[] = {
	&mv_policy_mmcnn, &mv_policy_vdnn_all, &mv_policy_vdnn_conv, &mv_policy_lru,
};
#define AUTO_NCAND (sizeof(auto_candidates) / sizeof(auto_candidates[0]))

static int auto_plan(const struct mv_iter *it, const struct mv_policy_params *p, const struct mv_feedback *fb,
		     struct mv_plan **out)
{
	struct mv_plan *best = NULL, *plan;
	struct mv_model_result rbest, r;
	size_t i;
	int err;

	if (it == NULL || p == NULL || out == NULL)
		return -EINVAL;
	for (i = 0; i < AUTO_NCAND; i++) {
		plan = NULL;
		err = auto_candidates[i]->plan(it, p, fb, &plan);
		if (err < 0)
			goto fail;
		/* mmcnn moving nothing means the iteration fits: nothing can beat that. */
		if (i == 0 && (plan->nops == 0 || p->budget == 0)) {
			*out = plan;
			return 0;
		}
		err = mv_model_run(it, plan, p->budget, &p->machine, &r, NULL);
		if (err < 0) {
			mv_plan_free(plan);
			goto fail;
		}
		if (best == NULL || auto_better(&r, &rbest)) {
			if (best != NULL)
				mv_plan_free(best);
			best = plan;
			rbest = r;
		} else {
			mv_plan_free(plan);
		}
	}
	*out = best;
	return 0;
fail:
	if (best != NULL)
		mv_plan_free(best);
	return err;
}

const struct mv_policy mv_policy_auto = {
	.name = "auto",
	.summary = "the best modeled of mmcnn, vdnn-all, vdnn-conv and lru once the iteration is learned, lru until then",
	.plan = auto_plan,
};
