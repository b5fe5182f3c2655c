/* The least budget an iteration can run in under any plan: what a budget must leave room for before
 * a policy or the model is worth asking. */
#include "config.h"

#include "policies/policy.h"

/* Whether buffer b is allocated and not yet freed when launch i runs. */
static int bound_alive_at(const struct mv_iter_buf *b, uint32_t i)
{
	return (b->alloc_at == MV_TRACE_NONE || b->alloc_at <= i) &&
	       (b->free_at == MV_TRACE_NONE || i < b->free_at);
}

/* Bytes launch i cannot run without: the never-paged buffers alive then, and every buffer it
 * names. */
static uint64_t bound_launch_need(const struct mv_iter *it, uint32_t i)
{
	const struct mv_iter_launch *l = &it->launch[i];
	uint64_t need = 0;

	for (uint32_t b = 0; b < it->nbufs; b++)
		if ((it->bufs[b].flags & MV_IBUF_PINNED) && bound_alive_at(&it->bufs[b], i))
			need += it->bufs[b].size;
	for (uint32_t k = 0; k < l->nrefs; k++) {
		uint32_t b = it->refs[l->ref0 + k], dup = 0;

		/* A never-paged buffer is counted above, whether the launch names it or not. */
		if (it->bufs[b].flags & MV_IBUF_PINNED)
			continue;
		/* A buffer named twice by one launch counts once. */
		for (uint32_t j = 0; j < k && !dup; j++)
			dup = it->refs[l->ref0 + j] == b;
		if (!dup)
			need += it->bufs[b].size;
	}
	return need;
}

uint64_t mv_model_min_budget(const struct mv_iter *it)
{
	uint64_t best = 0;

	for (uint32_t i = 0; i < it->nlaunch; i++) {
		uint64_t need = bound_launch_need(it, i);

		if (need > best)
			best = need;
	}
	return best;
}
