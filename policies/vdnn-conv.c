/* vdnn-conv: vDNN's convolution-only variant. The same schedule as vdnn-all (page out after the
 * use that begins a feature map's longest idle stretch, page in `lookahead` layers ahead of its
 * next use, layers counted the same way), but only for feature maps named by the heaviest
 * launches: the launches are ranked by measured duration (longest first, earlier first among
 * equals) and the smallest prefix of that ranking whose durations make up at least heavy_fraction
 * of the step's compute time is taken. In a convolutional network those are the convolutions, whose
 * long compute hides their inputs' copies; cheap layers' activations (pooling, activation
 * functions, normalisation) stay resident, so fewer bytes move than with vdnn-all and fewer copies
 * are exposed.
 *
 * Knobs: min_size, lookahead (default 1), heavy_fraction (default 0.5). Choose it over vdnn-all
 * when vdnn-all's copies outrun the compute they should hide behind and the budget still allows the
 * light layers' outputs to stay. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "policies/policy.h"

/* A launch's duration, for ranking. */
struct conv_rank {
	uint64_t dur;
	uint32_t launch;
};

/* Heaviest first; launch order among equals, so the choice is deterministic. */
static int conv_cmp(const void *a, const void *b)
{
	const struct conv_rank *x = a, *y = b;

	if (x->dur != y->dur)
		return x->dur > y->dur ? -1 : 1;
	return x->launch < y->launch ? -1 : x->launch > y->launch;
}

static int conv_plan(const struct mv_iter *it, const struct mv_policy_params *p, const struct mv_feedback *fb,
		     struct mv_plan **out)
{
	struct mv_iter view;
	struct mv_iter_buf *bufs = NULL;
	struct conv_rank *order = NULL;
	uint8_t *heavy = NULL;
	uint64_t total = 0, taken = 0, want;
	double frac;
	uint32_t i, k, b;
	int err = -ENOMEM;

	if (it == NULL || p == NULL || out == NULL)
		return -EINVAL;
	order = malloc(((size_t)it->nlaunch + 1) * sizeof(*order));
	heavy = calloc((size_t)it->nbufs + 1, 1);
	bufs = malloc(((size_t)it->nbufs + 1) * sizeof(*bufs));
	if (order == NULL || heavy == NULL || bufs == NULL)
		goto out;
	for (i = 0; i < it->nlaunch; i++) {
		order[i].dur = it->launch[i].dur_ns;
		order[i].launch = i;
		total += it->launch[i].dur_ns;
	}
	qsort(order, it->nlaunch, sizeof(*order), conv_cmp);
	frac = p->heavy_fraction;
	if (!(frac > 0))
		frac = 0;
	if (frac > 1)
		frac = 1;
	want = (uint64_t)((double)total * frac + 0.5);
	for (k = 0; k < it->nlaunch && taken < want; k++) {
		i = order[k].launch;
		taken += it->launch[i].dur_ns;
		for (b = 0; b < it->launch[i].nrefs; b++)
			if (it->refs[it->launch[i].ref0 + b] < it->nbufs)
				heavy[it->refs[it->launch[i].ref0 + b]] = 1;
	}
	/* vdnn-all on a view of the iteration in which every buffer no heavy launch names is pinned. */
	if (it->nbufs)
		memcpy(bufs, it->bufs, (size_t)it->nbufs * sizeof(*bufs));
	for (b = 0; b < it->nbufs; b++)
		if (!heavy[b])
			bufs[b].flags |= MV_IBUF_PINNED;
	view = *it;
	view.bufs = bufs;
	err = mv_policy_vdnn_all.plan(&view, p, fb, out);
out:
	free(order);
	free(heavy);
	free(bufs);
	return err;
}

const struct mv_policy mv_policy_vdnn_conv = {
	.name = "vdnn-conv",
	.summary = "vDNN conv-only: page only the activations the heaviest kernels name, a layer ahead",
	.plan = conv_plan,
};
