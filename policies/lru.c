/* lru: the empty plan. Nothing is paged ahead of time; the library pages reactively, evicting the
 * least recently used pageable buffer when an allocation or a page-in needs room and faulting a
 * buffer back in when a launch names it. It is the fallback before an iteration is learned and
 * after the live launch sequence leaves the plan, and the choice when the job has no repeating
 * iteration or when memory is short only now and then. It has no knobs. */
#include <errno.h>

#include "policies/policy.h"

static int lru_plan(const struct mv_iter *it, const struct mv_policy_params *p, const struct mv_feedback *fb,
		    struct mv_plan **out)
{
	struct mv_plan *plan;

	(void)p;
	(void)fb;
	if (it == NULL || out == NULL)
		return -EINVAL;
	plan = mv_plan_new(it);
	if (plan == NULL)
		return -ENOMEM;
	*out = plan;
	return 0;
}

const struct mv_policy mv_policy_lru = {
	.name = "lru",
	.summary = "no plan: page out the least recently used buffer on demand, page in on fault",
	.plan = lru_plan,
};
