/* auto: the default. Until an iteration has been learned there is nothing to plan and the library
 * pages reactively (lru); once one has, auto plans it with mmcnn and, when mmcnn has to move
 * anything, also with vdnn-all, replays both plans under the time model with the same budget and
 * machine, and keeps the one with the shorter modeled step (a plan the model cannot keep within the
 * budget loses to one it can; equal steps: fewer bytes moved, then mmcnn). vdnn-all wins where the
 * budget is so far below the peak that paging every activation one layer ahead hides copies better
 * than mmcnn's just-in-time schedule. Its knobs are the union of the two policies': budget,
 * min_size, headroom, lookahead and the machine's bandwidths. Choose it unless there is a reason
 * to pin a particular policy. */
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

static int auto_plan(const struct mv_iter *it, const struct mv_policy_params *p, const struct mv_feedback *fb,
		     struct mv_plan **out)
{
	struct mv_plan *mm = NULL, *vd = NULL;
	struct mv_model_result rm, rv;
	int err;

	if (it == NULL || p == NULL || out == NULL)
		return -EINVAL;
	err = mv_policy_mmcnn.plan(it, p, fb, &mm);
	if (err < 0)
		return err;
	/* Nothing to move: nothing can beat that. */
	if (mm->nops == 0 || p->budget == 0) {
		*out = mm;
		return 0;
	}
	err = mv_policy_vdnn_all.plan(it, p, fb, &vd);
	if (err < 0)
		goto fail;
	if (vd->nops == 0)
		goto keep_mm;
	err = mv_model_run(it, mm, p->budget, &p->machine, &rm, NULL);
	if (err < 0)
		goto fail;
	err = mv_model_run(it, vd, p->budget, &p->machine, &rv, NULL);
	if (err < 0)
		goto fail;
	if (auto_better(&rv, &rm)) {
		mv_plan_free(mm);
		*out = vd;
		return 0;
	}
keep_mm:
	mv_plan_free(vd);
	*out = mm;
	return 0;
fail:
	mv_plan_free(mm);
	if (vd != NULL)
		mv_plan_free(vd);
	return err;
}

const struct mv_policy mv_policy_auto = {
	.name = "auto",
	.summary = "mmcnn once the iteration is learned (or vdnn-all where it models faster), lru until then",
	.plan = auto_plan,
};
