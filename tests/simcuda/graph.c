/* Stream capture and graphs of kernel nodes: capture records launches instead of running them, an
 * instantiated graph replays them in capture order on the stream it is launched on. Copies, memsets,
 * events and host functions are refused during capture. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "tests/simcuda/internal.h"

struct sim_graph {
	uint32_t magic;
	struct sim_op **nodes;
	size_t n, cap;
};

struct sim_exec {
	uint32_t magic;
	struct sim_op *nodes;
	size_t n;
};

static void graph_free(struct sim_graph *g)
{
	for (size_t i = 0; i < g->n; i++)
		free(g->nodes[i]);
	free(g->nodes);
	g->magic = SIM_MAGIC_DEAD;
	sim_retire(g);
}

CUresult sim_graph_capture_kernel(struct sim_stream *s, struct sim_op *op)
{
	struct sim_graph *g = s->capture;

	if (g->n == g->cap) {
		size_t cap = g->cap ? g->cap * 2 : 16;
		struct sim_op **v = realloc(g->nodes, cap * sizeof(*v));
		if (v == NULL) {
			free(op);
			return CUDA_ERROR_OUT_OF_MEMORY;
		}
		g->nodes = v;
		g->cap = cap;
	}
	g->nodes[g->n++] = op;
	return CUDA_SUCCESS;
}

static CUresult begin_capture(CUstream h, CUstreamCaptureMode mode, int per_thread)
{
	struct sim_stream *s;
	struct sim_graph *g;
	CUresult r = sim_enter_stream(h, per_thread, &s);

	if (r != CUDA_SUCCESS)
		return r;
	/* The NULL stream cannot be captured. */
	if (s->legacy)
		return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
	if (s->capture != NULL)
		return CUDA_ERROR_ILLEGAL_STATE;
	g = calloc(1, sizeof(*g));
	if (g == NULL)
		return CUDA_ERROR_OUT_OF_MEMORY;
	g->magic = SIM_MAGIC_GRAPH;
	s->capture_mode = mode;
	s->capture = g;
	return CUDA_SUCCESS;
}

SIM_EXPORT CUresult cuStreamBeginCapture_v2(CUstream h, CUstreamCaptureMode mode)
{
	return begin_capture(h, mode, 0);
}

SIM_EXPORT CUresult cuStreamBeginCapture_v2_ptsz(CUstream h, CUstreamCaptureMode mode)
{
	return begin_capture(h, mode, 1);
}

/* The first version had no mode argument: it captured in global mode. */
SIM_EXPORT CUresult cuStreamBeginCapture(CUstream h)
{
	return begin_capture(h, CU_STREAM_CAPTURE_MODE_GLOBAL, 0);
}

SIM_EXPORT CUresult cuStreamBeginCapture_ptsz(CUstream h)
{
	return begin_capture(h, CU_STREAM_CAPTURE_MODE_GLOBAL, 1);
}

static CUresult end_capture(CUstream h, CUgraph *pg, int per_thread)
{
	struct sim_stream *s;
	CUresult r = sim_enter_stream(h, per_thread, &s);

	if (r != CUDA_SUCCESS)
		return r;
	if (pg == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	if (s->capture == NULL)
		return CUDA_ERROR_ILLEGAL_STATE;
	*pg = (CUgraph)s->capture;
	s->capture = NULL;
	return CUDA_SUCCESS;
}

SIM_EXPORT CUresult cuStreamEndCapture(CUstream h, CUgraph *pg)
{
	return end_capture(h, pg, 0);
}

SIM_EXPORT CUresult cuStreamEndCapture_ptsz(CUstream h, CUgraph *pg)
{
	return end_capture(h, pg, 1);
}

static CUresult is_capturing(CUstream h, CUstreamCaptureStatus *status, int per_thread)
{
	struct sim_stream *s;
	CUresult r = sim_enter_stream(h, per_thread, &s);

	if (r != CUDA_SUCCESS)
		return r;
	if (status == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	*status = s->capture != NULL ? CU_STREAM_CAPTURE_STATUS_ACTIVE : CU_STREAM_CAPTURE_STATUS_NONE;
	return CUDA_SUCCESS;
}

SIM_EXPORT CUresult cuStreamIsCapturing(CUstream h, CUstreamCaptureStatus *status)
{
	return is_capturing(h, status, 0);
}

SIM_EXPORT CUresult cuStreamIsCapturing_ptsz(CUstream h, CUstreamCaptureStatus *status)
{
	return is_capturing(h, status, 1);
}

SIM_EXPORT CUresult cuGraphInstantiateWithFlags(CUgraphExec *pe, CUgraph hg, unsigned long long flags)
{
	struct sim_graph *g = (struct sim_graph *)hg;
	struct sim_exec *e;
	CUresult r = sim_enter_ctx(NULL);

	if (r != CUDA_SUCCESS)
		return r;
	if (pe == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	if (g == NULL || g->magic != SIM_MAGIC_GRAPH)
		return CUDA_ERROR_INVALID_HANDLE;
	e = calloc(1, sizeof(*e));
	if (e == NULL)
		return CUDA_ERROR_OUT_OF_MEMORY;
	e->nodes = calloc(g->n ? g->n : 1, sizeof(*e->nodes));
	if (e->nodes == NULL) {
		free(e);
		return CUDA_ERROR_OUT_OF_MEMORY;
	}
	for (size_t i = 0; i < g->n; i++)
		e->nodes[i] = *g->nodes[i];
	e->n = g->n;
	e->magic = SIM_MAGIC_EXEC;
	*pe = (CUgraphExec)e;
	return CUDA_SUCCESS;
}

static CUresult graph_launch(CUgraphExec he, CUstream h, int per_thread)
{
	struct sim_exec *e = (struct sim_exec *)he;
	struct sim_stream *s;
	CUresult r = sim_enter_stream(h, per_thread, &s);

	if (r != CUDA_SUCCESS)
		return r;
	if (e == NULL || e->magic != SIM_MAGIC_EXEC)
		return CUDA_ERROR_INVALID_HANDLE;
	if (s->capture != NULL)
		return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
	for (size_t i = 0; i < e->n; i++) {
		struct sim_op *op = sim_op_new(SIM_OP_KERNEL);
		const struct mv_kernel_desc *d = e->nodes[i].u.k.desc;
		double flops = 0, bytes = 0;
		if (op == NULL)
			return CUDA_ERROR_OUT_OF_MEMORY;
		memcpy(op->u.k.buf, e->nodes[i].u.k.buf, sizeof(op->u.k.buf));
		op->u.k.desc = d;
		for (unsigned j = 0; j < d->nparams; j++)
			op->u.k.args[j] = op->u.k.buf + d->offset[j];
		d->cost(op->u.k.args, &flops, &bytes);
		sim_stream_submit(s, op, SIM_ENGINE_COMPUTE, sim_cost_kernel_ns(flops, bytes));
	}
	return CUDA_SUCCESS;
}

SIM_EXPORT CUresult cuGraphLaunch(CUgraphExec e, CUstream h)
{
	return graph_launch(e, h, 0);
}

SIM_EXPORT CUresult cuGraphLaunch_ptsz(CUgraphExec e, CUstream h)
{
	return graph_launch(e, h, 1);
}

SIM_EXPORT CUresult cuGraphExecDestroy(CUgraphExec he)
{
	struct sim_exec *e = (struct sim_exec *)he;
	CUresult r = sim_enter();

	if (r != CUDA_SUCCESS)
		return r;
	if (e == NULL || e->magic != SIM_MAGIC_EXEC)
		return CUDA_ERROR_INVALID_HANDLE;
	e->magic = SIM_MAGIC_DEAD;
	free(e->nodes);
	sim_retire(e);
	return CUDA_SUCCESS;
}

SIM_EXPORT CUresult cuGraphDestroy(CUgraph hg)
{
	struct sim_graph *g = (struct sim_graph *)hg;
	CUresult r = sim_enter();

	if (r != CUDA_SUCCESS)
		return r;
	if (g == NULL || g->magic != SIM_MAGIC_GRAPH)
		return CUDA_ERROR_INVALID_HANDLE;
	graph_free(g);
	return CUDA_SUCCESS;
}

SIM_EXPORT CUresult cuGraphGetNodes(CUgraph hg, CUgraphNode *nodes, size_t *count)
{
	struct sim_graph *g = (struct sim_graph *)hg;
	CUresult r = sim_enter();

	if (r != CUDA_SUCCESS)
		return r;
	if (count == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	if (g == NULL || g->magic != SIM_MAGIC_GRAPH)
		return CUDA_ERROR_INVALID_HANDLE;
	if (nodes != NULL) {
		size_t n = SIM_MIN(*count, g->n);
		for (size_t i = 0; i < n; i++)
			nodes[i] = (CUgraphNode)g->nodes[i];
		*count = n;
	} else {
		*count = g->n;
	}
	return CUDA_SUCCESS;
}
