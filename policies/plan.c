/* Plans: the list of moves a policy makes for one iteration, kept sorted for the executor. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "policies/policy.h"

struct mv_plan *mv_plan_new(const struct mv_iter *it)
{
	struct mv_plan *p = calloc(1, sizeof *p);

	if (p == NULL)
		return NULL;
	if (it != NULL) {
		p->nlaunch = it->nlaunch;
		p->fingerprint = it->fingerprint;
	}
	return p;
}

int mv_plan_add(struct mv_plan *p, uint32_t kind, uint32_t at, uint32_t buf, uint32_t need)
{
	struct mv_plan_op *ops;
	uint32_t cap;

	if (p == NULL || (kind != MV_PLAN_OUT && kind != MV_PLAN_IN))
		return -EINVAL;
	/* Only an IN may come before the first launch; nothing comes after a launch that is not there. */
	if (at == MV_TRACE_NONE ? kind != MV_PLAN_IN : at >= p->nlaunch)
		return -EINVAL;
	if (p->nops == p->cap) {
		if (p->cap >= UINT32_MAX / 2)
			return -ENOMEM;
		cap = p->cap < 16 ? 16 : p->cap * 2;
		ops = realloc(p->ops, (size_t)cap * sizeof *ops);
		if (ops == NULL)
			return -ENOMEM;
		p->ops = ops;
		p->cap = cap;
	}
	p->ops[p->nops++] = (struct mv_plan_op){.at = at, .buf = buf, .need = need, .kind = kind};
	return 0;
}

/* An IN before the first launch (at == MV_TRACE_NONE) sorts before everything. */
static int op_cmp(const void *a, const void *b)
{
	const struct mv_plan_op *x = a, *y = b;
	uint64_t xa = x->at == MV_TRACE_NONE ? 0 : (uint64_t)x->at + 1;
	uint64_t ya = y->at == MV_TRACE_NONE ? 0 : (uint64_t)y->at + 1;

	if (xa != ya)
		return xa < ya ? -1 : 1;
	if (x->kind != y->kind)
		return x->kind == MV_PLAN_OUT ? -1 : 1;
	if (x->buf != y->buf)
		return x->buf < y->buf ? -1 : 1;
	if (x->need != y->need)
		return x->need < y->need ? -1 : 1;
	return 0;
}

void mv_plan_sort(struct mv_plan *p)
{
	if (p != NULL && p->nops > 1)
		qsort(p->ops, p->nops, sizeof *p->ops, op_cmp);
}

void mv_plan_free(struct mv_plan *p)
{
	if (p == NULL)
		return;
	free(p->ops);
	free(p);
}
