/* vdnn-all: vDNN's offload-all. Every feature map (a buffer allocated during the iteration, of at
 * least min_size bytes, not pinned) that sits idle between two uses is paged out once, right after
 * the use that begins its longest idle stretch (for an activation: its last use in the forward
 * pass), and paged in `lookahead` layers ahead of the launch that next names it (its first use in
 * the backward pass). Buffers alive when the iteration begins (weights, optimizer state, gradients
 * kept across steps) are never paged by it: vDNN offloads feature maps, and weights are needed in
 * every pass. The plan ignores the budget: it is the most memory a layer-by-layer schedule can
 * free, at the price of moving every activation twice per step.
 *
 * A layer, here, begins at every launch that names a buffer of at least min_size that the launch
 * before it did not name: a layer's kernels share its input, output and weights, and the next
 * layer brings a new output (forward) or a new input and weight (backward). In a framework that
 * allocates each op's output that is one layer per op, forward and backward alike, and kernels of
 * one op that name the same buffers stay one layer. A page-in `lookahead` layers ahead of a launch
 * in layer L is issued with the first launch of layer L - lookahead, so that its copy overlaps that
 * layer's compute. A buffer whose idle stretch is shorter than that is left alone
 * (its page-in would have to be issued before its page-out). Late page-ins fed back move earlier by
 * the planner's advance.
 *
 * Knobs: min_size, lookahead (default 1). Choose it when the budget is far below the iteration's
 * peak and the links are fast compared with each layer's compute (convolutional networks with
 * large batches), or as a budget-independent plan to compare others with. */
#include <errno.h>
#include <stdlib.h>

#include "policies/policy.h"

static int vdnn_plan(const struct mv_iter *it, const struct mv_policy_params *p, const struct mv_feedback *fb,
		     struct mv_plan **out)
{
	struct mv_iter_uses u = { NULL, NULL };
	uint64_t *start = NULL, t, gap, best;
	uint32_t *layer_of = NULL, *layer_start = NULL, *named = NULL, nlayer = 0;
	uint32_t i, b, k, n, lookahead, ua, ub, at, adv, L;
	struct mv_plan *plan = NULL;
	const struct mv_iter_buf *bf;
	int err = -ENOMEM, newlayer;

	if (it == NULL || p == NULL || out == NULL)
		return -EINVAL;
	n = it->nlaunch;
	lookahead = p->lookahead ? p->lookahead : 1;
	plan = mv_plan_new(it);
	start = malloc(((size_t)n + 1) * sizeof(*start));
	layer_of = calloc((size_t)n + 1, sizeof(*layer_of));
	layer_start = malloc(((size_t)n + 1) * sizeof(*layer_start));
	named = malloc(((size_t)it->nbufs + 1) * sizeof(*named));
	if (plan == NULL || start == NULL || layer_of == NULL || layer_start == NULL || named == NULL)
		goto out;
	if (mv_iter_uses_build(it, &u) < 0)
		goto out;

	for (i = 0, t = 0; i < n; i++) {
		start[i] = t;
		t += it->launch[i].dur_ns;
	}
	start[n] = t;
	/* Layers: pinning does not change where they begin, so that vdnn-conv, which pins what it
	 * leaves alone, sees the same layers. */
	for (b = 0; b < it->nbufs; b++)
		named[b] = MV_TRACE_NONE;
	for (i = 0; i < n; i++) {
		newlayer = 0;
		for (k = 0; k < it->launch[i].nrefs; k++) {
			b = it->refs[it->launch[i].ref0 + k];
			if (b >= it->nbufs || it->bufs[b].size < p->min_size)
				continue;
			if (named[b] != i && (named[b] == MV_TRACE_NONE || named[b] + 1 != i))
				newlayer = 1;
			named[b] = i;
		}
		if (newlayer)
			layer_start[++nlayer] = i;
		layer_of[i] = nlayer;
	}

	for (b = 0; b < it->nbufs; b++) {
		bf = &it->bufs[b];
		if (bf->alloc_at == MV_TRACE_NONE || (bf->flags & MV_IBUF_PINNED) || bf->size < p->min_size)
			continue;
		/* The longest idle stretch in compute time; the earliest of equals. */
		ua = ub = MV_TRACE_NONE;
		best = 0;
		for (k = u.off[b] + 1; k < u.off[b + 1]; k++) {
			if (u.use[k] <= u.use[k - 1] + 1)
				continue;
			gap = start[u.use[k]] - start[u.use[k - 1] + 1];
			if (ua == MV_TRACE_NONE || gap > best) {
				best = gap;
				ua = u.use[k - 1];
				ub = u.use[k];
			}
		}
		if (ua == MV_TRACE_NONE)
			continue;
		L = layer_of[ub];
		if (L <= lookahead)
			continue;
		at = layer_start[L - lookahead];
		if (at <= ua)
			continue;
		if (fb != NULL && b < fb->nbufs && fb->advance != NULL) {
			adv = fb->advance[b];
			at = at - ua - 1 > adv ? at - adv : ua + 1;
		}
		if (mv_plan_add(plan, MV_PLAN_OUT, ua, b, ub) < 0 || mv_plan_add(plan, MV_PLAN_IN, at, b, ub) < 0)
			goto out;
	}
	mv_plan_sort(plan);
	*out = plan;
	plan = NULL;
	err = 0;
out:
	if (plan != NULL)
		mv_plan_free(plan);
	mv_iter_uses_free(&u);
	free(start);
	free(layer_of);
	free(layer_start);
	free(named);
	return err;
}

const struct mv_policy mv_policy_vdnn_all = {
	.name = "vdnn-all",
	.summary = "vDNN offload-all: page out every activation after its forward use, page in a layer ahead",
	.plan = vdnn_plan,
};
