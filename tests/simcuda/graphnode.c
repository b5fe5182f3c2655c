/* The generic graph node calls (cuGraphAddNode, cuGraphNodeSetParams, cuGraphExecNodeSetParams)
 * for kernel, memcpy and memset nodes, answered as the typed node calls answer; other node types
 * are not modelled. */
#include "config.h"

#include <string.h>

#include "tests/simcuda/internal.h"

/* Whether the fields the driver requires to be zero are. */
static int reserved_clear(const CUgraphNodeParams *p)
{
	if (p->reserved0[0] != 0 || p->reserved0[1] != 0 || p->reserved0[2] != 0 || p->reserved2 != 0)
		return 0;
	return p->type != CU_GRAPH_NODE_TYPE_MEMCPY || (p->memcpy.flags == 0 && p->memcpy.reserved == 0);
}

static CUresult check_params(const CUgraphNodeParams *p)
{
	if (p == NULL || !reserved_clear(p))
		return CUDA_ERROR_INVALID_VALUE;
	if (p->type != CU_GRAPH_NODE_TYPE_KERNEL && p->type != CU_GRAPH_NODE_TYPE_MEMCPY &&
	    p->type != CU_GRAPH_NODE_TYPE_MEMSET)
		return CUDA_ERROR_NOT_SUPPORTED;
	return CUDA_SUCCESS;
}

/* A memset node's legacy parameters: the generic form adds a context at the end. */
static CUDA_MEMSET_NODE_PARAMS memset_v1(const CUDA_MEMSET_NODE_PARAMS_v2 *m)
{
	return (CUDA_MEMSET_NODE_PARAMS){m->dst, m->pitch, m->value, m->elementSize, m->width, m->height};
}

/* Edge data other than the default (all zero) is not modelled. */
static int default_edges(const CUgraphEdgeData *edges, size_t n)
{
	static const CUgraphEdgeData zero;

	for (size_t i = 0; edges != NULL && i < n; i++)
		if (memcmp(&edges[i], &zero, sizeof(zero)) != 0)
			return 0;
	return 1;
}

SIM_EXPORT CUresult cuGraphAddNode_v2(CUgraphNode *out, CUgraph g, const CUgraphNode *deps,
				      const CUgraphEdgeData *edges, size_t ndeps, CUgraphNodeParams *p)
{
	CUresult r = check_params(p);
	CUDA_MEMSET_NODE_PARAMS m;

	if (r != CUDA_SUCCESS)
		return r;
	if (!default_edges(edges, ndeps))
		return CUDA_ERROR_NOT_SUPPORTED;
	switch (p->type) {
	case CU_GRAPH_NODE_TYPE_KERNEL:
		return cuGraphAddKernelNode_v2(out, g, deps, ndeps, (const CUDA_KERNEL_NODE_PARAMS *)&p->kernel);
	case CU_GRAPH_NODE_TYPE_MEMCPY:
		return cuGraphAddMemcpyNode(out, g, deps, ndeps, &p->memcpy.copyParams, p->memcpy.copyCtx);
	default:
		m = memset_v1(&p->memset);
		return cuGraphAddMemsetNode(out, g, deps, ndeps, &m, p->memset.ctx);
	}
}

SIM_EXPORT CUresult cuGraphNodeSetParams(CUgraphNode node, CUgraphNodeParams *p)
{
	CUresult r = check_params(p);
	CUDA_MEMSET_NODE_PARAMS m;

	if (r != CUDA_SUCCESS)
		return r;
	switch (p->type) {
	case CU_GRAPH_NODE_TYPE_KERNEL:
		return cuGraphKernelNodeSetParams_v2(node, (const CUDA_KERNEL_NODE_PARAMS *)&p->kernel);
	case CU_GRAPH_NODE_TYPE_MEMCPY:
		return cuGraphMemcpyNodeSetParams(node, &p->memcpy.copyParams);
	default:
		m = memset_v1(&p->memset);
		return cuGraphMemsetNodeSetParams(node, &m);
	}
}

SIM_EXPORT CUresult cuGraphExecNodeSetParams(CUgraphExec e, CUgraphNode node, CUgraphNodeParams *p)
{
	CUresult r = check_params(p);
	CUDA_MEMSET_NODE_PARAMS m;

	if (r != CUDA_SUCCESS)
		return r;
	switch (p->type) {
	case CU_GRAPH_NODE_TYPE_KERNEL:
		return cuGraphExecKernelNodeSetParams_v2(e, node, (const CUDA_KERNEL_NODE_PARAMS *)&p->kernel);
	case CU_GRAPH_NODE_TYPE_MEMCPY:
		return cuGraphExecMemcpyNodeSetParams(e, node, &p->memcpy.copyParams, p->memcpy.copyCtx);
	default:
		m = memset_v1(&p->memset);
		return cuGraphExecMemsetNodeSetParams(e, node, &m, p->memset.ctx);
	}
}
