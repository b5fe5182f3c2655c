/* The table of built-in policies and their default knobs. */
#include <string.h>

#include "policies/policy.h"

const struct mv_policy *const mv_policies[] = {
	&mv_policy_lru, &mv_policy_vdnn_all, &mv_policy_vdnn_conv, &mv_policy_mmcnn, &mv_policy_auto, NULL,
};

const struct mv_policy *mv_policy_find(const char *name)
{
	size_t i;

	if (name == NULL)
		return NULL;
	for (i = 0; mv_policies[i] != NULL; i++)
		if (strcmp(mv_policies[i]->name, name) == 0)
			return mv_policies[i];
	return NULL;
}

void mv_policy_defaults(struct mv_policy_params *p)
{
	memset(p, 0, sizeof *p);
	p->budget = UINT64_MAX;
	/* An H100's PCIe 5 x16 link moves about 55 GB/s each way. */
	p->machine.h2d_bps = 55e9;
	p->machine.d2h_bps = 55e9;
	p->machine.launch_ns = 5000;
	/* An H100 maps host memory, and the library's safety net is on unless turned off. */
	p->machine.host_mapped = 1;
	p->min_size = 1024 * 1024;
	p->lookahead = 1;
	p->heavy_fraction = 0.5;
	p->headroom = 0.02;
}
