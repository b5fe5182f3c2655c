/* Graphs: stream capture, explicitly added or updated nodes, and graph launches. Every buffer a
 * graph names is made resident and pinned for good when the node naming it is captured, added or
 * updated, so every later launch of the graph finds it where it is: the graph rule. A launch of a
 * graph therefore names nothing the library must move. A child graph node's buffers were pinned
 * when its nodes were added to the child, and cuGraphExecUpdate takes its parameters from nodes
 * that were pinned when they were added, so neither needs a hook. */
#include "config.h"

#include "interpose/internal.h"

/* After the driver's answer r to a capture's start on h: the stream captures, or is as before
 * (marked: mv_capture_prepare marked it). */
static CUresult capture_started(CUstream h, int per_thread, int marked, CUresult r)
{
	if (r == CUDA_SUCCESS)
		mv_capture_begin(h, per_thread);
	else if (marked)
		mv_capture_unprepare(h, per_thread);
	return r;
}

static CUresult begin_capture(CUstream h, CUstreamCaptureMode mode, int per_thread)
{
	int marked;

	if (mv_init() != 0)
		return CUDA_ERROR_NOT_INITIALIZED;
	marked = mv_capture_prepare(h, per_thread);
	return capture_started(h, per_thread, marked,
			       (per_thread ? mv_real.cuStreamBeginCapture_v2_ptsz : mv_real.cuStreamBeginCapture_v2)(h, mode));
}

/* A capture into the app's own graph is a capture like any other: what it records is pinned. */
static CUresult begin_capture_to_graph(CUstream h, CUgraph g, const CUgraphNode *deps, const CUgraphEdgeData *edges,
				       size_t n, CUstreamCaptureMode mode, int per_thread)
{
	int marked;

	if (mv_init() != 0)
		return CUDA_ERROR_NOT_INITIALIZED;
	marked = mv_capture_prepare(h, per_thread);
	return capture_started(h, per_thread, marked,
			       (per_thread ? mv_real.cuStreamBeginCaptureToGraph_ptsz : mv_real.cuStreamBeginCaptureToGraph)(
				       h, g, deps, edges, n, mode));
}

MV_EXPORT CUresult cuStreamBeginCaptureToGraph(CUstream h, CUgraph g, const CUgraphNode *deps,
					       const CUgraphEdgeData *edges, size_t n, CUstreamCaptureMode mode)
{
	return begin_capture_to_graph(h, g, deps, edges, n, mode, 0);
}

MV_EXPORT CUresult cuStreamBeginCaptureToGraph_ptsz(CUstream h, CUgraph g, const CUgraphNode *deps,
						    const CUgraphEdgeData *edges, size_t n, CUstreamCaptureMode mode)
{
	return begin_capture_to_graph(h, g, deps, edges, n, mode, 1);
}

MV_EXPORT CUresult cuStreamBeginCapture_v2(CUstream h, CUstreamCaptureMode mode)
{
	return begin_capture(h, mode, 0);
}

MV_EXPORT CUresult cuStreamBeginCapture_v2_ptsz(CUstream h, CUstreamCaptureMode mode)
{
	return begin_capture(h, mode, 1);
}

static CUresult end_capture(CUstream h, CUgraph *g, int per_thread)
{
	CUresult r;

	if (mv_init() != 0)
		return CUDA_ERROR_NOT_INITIALIZED;
	mv_capture_end(h, per_thread);
	r = (per_thread ? mv_real.cuStreamEndCapture_ptsz : mv_real.cuStreamEndCapture)(h, g);
	mv_capture_probes_free();
	return r;
}

MV_EXPORT CUresult cuStreamEndCapture(CUstream h, CUgraph *g)
{
	return end_capture(h, g, 0);
}

MV_EXPORT CUresult cuStreamEndCapture_ptsz(CUstream h, CUgraph *g)
{
	return end_capture(h, g, 1);
}

/* Every buffer a graph names was pinned resident at capture, so the launch itself needs nothing. */
MV_EXPORT CUresult cuGraphLaunch(CUgraphExec e, CUstream h)
{
	if (mv_init() != 0)
		return CUDA_ERROR_NOT_INITIALIZED;
	return mv_real.cuGraphLaunch(e, h);
}

MV_EXPORT CUresult cuGraphLaunch_ptsz(CUgraphExec e, CUstream h)
{
	if (mv_init() != 0)
		return CUDA_ERROR_NOT_INITIALIZED;
	return mv_real.cuGraphLaunch_ptsz(e, h);
}

/* ---- explicit nodes ---- */

static __thread uint64_t node_words[MV_MAX_SCAN_WORDS];

/* The first and the last byte of a range of rows and slices; a range that would wrap names
 * nothing. */
static size_t range_words(uint64_t base, size_t width, size_t height, size_t depth, size_t pitch, size_t slice,
			  uint64_t *words, size_t n)
{
	uint64_t last = base + width - 1;

	if (base == 0 || width == 0)
		return n;
	if (height > 1)
		last += (uint64_t)(height - 1) * pitch;
	if (depth > 1)
		last += (uint64_t)(depth - 1) * slice;
	words[n++] = base;
	if (last > base)
		words[n++] = last;
	return n;
}

/* The device-side ranges of a 3D copy, wherever they may name device memory. */
static size_t copy_words(const CUDA_MEMCPY3D *p, uint64_t *words)
{
	size_t n = 0, h = p->Height ? p->Height : 1, d = p->Depth ? p->Depth : 1;

	if (p->srcMemoryType == CU_MEMORYTYPE_DEVICE || p->srcMemoryType == CU_MEMORYTYPE_UNIFIED)
		n = range_words(p->srcDevice + p->srcXInBytes + p->srcY * p->srcPitch +
					p->srcZ * p->srcPitch * p->srcHeight,
				p->WidthInBytes, h, d, p->srcPitch, p->srcPitch * p->srcHeight, words, n);
	if (p->dstMemoryType == CU_MEMORYTYPE_DEVICE || p->dstMemoryType == CU_MEMORYTYPE_UNIFIED)
		n = range_words(p->dstDevice + p->dstXInBytes + p->dstY * p->dstPitch +
					p->dstZ * p->dstPitch * p->dstHeight,
				p->WidthInBytes, h, d, p->dstPitch, p->dstPitch * p->dstHeight, words, n);
	return n;
}

static size_t memset_words(const CUDA_MEMSET_NODE_PARAMS *p, uint64_t *words)
{
	if (p->width > SIZE_MAX / 4)
		return 0;
	return range_words(p->dst, p->width * p->elementSize, p->height, 1, p->pitch, 0, words, 0);
}

/* A kernel node names a CUfunction, or a CUkernel when func is NULL. */
static size_t kernel_node_words(const CUDA_KERNEL_NODE_PARAMS *p, uint64_t *words)
{
	CUfunction f = p->func != NULL ? p->func : (CUfunction)p->kern;
	return mv_kernel_words(f, p->kernelParams, p->extra, words);
}

/* Every word a batch of memory operations writes or waits on; SIZE_MAX for a batch longer than the
 * scan's bound, which node_call refuses. */
static size_t batch_words(const CUDA_BATCH_MEM_OP_NODE_PARAMS *p, uint64_t *words)
{
	size_t n = 0;

	if (p->count > MV_MAX_SCAN_WORDS)
		return SIZE_MAX;
	for (unsigned i = 0; p->paramArray != NULL && i < p->count; i++) {
		CUstreamBatchMemOpType op = p->paramArray[i].operation;
		if (op == CU_STREAM_MEM_OP_WAIT_VALUE_32 || op == CU_STREAM_MEM_OP_WAIT_VALUE_64)
			words[n++] = p->paramArray[i].waitValue.address;
		else if (op == CU_STREAM_MEM_OP_WRITE_VALUE_32 || op == CU_STREAM_MEM_OP_WRITE_VALUE_64)
			words[n++] = p->paramArray[i].writeValue.address;
	}
	return n;
}

_Static_assert(sizeof(CUDA_KERNEL_NODE_PARAMS_v3) == sizeof(CUDA_KERNEL_NODE_PARAMS) &&
		       offsetof(CUDA_KERNEL_NODE_PARAMS_v3, kern) == offsetof(CUDA_KERNEL_NODE_PARAMS, kern),
	       "a generic kernel node's parameters are laid out as the kernel node's");
_Static_assert(sizeof(CUDA_BATCH_MEM_OP_NODE_PARAMS_v2) == sizeof(CUDA_BATCH_MEM_OP_NODE_PARAMS) &&
		       offsetof(CUDA_BATCH_MEM_OP_NODE_PARAMS_v2, paramArray) ==
			       offsetof(CUDA_BATCH_MEM_OP_NODE_PARAMS, paramArray),
	       "a generic batch node's parameters are laid out as the batch node's");
_Static_assert(offsetof(CUDA_MEMSET_NODE_PARAMS_v2, height) == offsetof(CUDA_MEMSET_NODE_PARAMS, height),
	       "a generic memset node's parameters begin as the memset node's");

/* A generic node names memory as the node of its type does; other types name none of memvirt's. */
static size_t generic_words(const CUgraphNodeParams *p, uint64_t *words)
{
	switch (p->type) {
	case CU_GRAPH_NODE_TYPE_KERNEL:
		return kernel_node_words((const CUDA_KERNEL_NODE_PARAMS *)&p->kernel, words);
	case CU_GRAPH_NODE_TYPE_MEMCPY:
		return copy_words(&p->memcpy.copyParams, words);
	case CU_GRAPH_NODE_TYPE_MEMSET:
		return memset_words((const CUDA_MEMSET_NODE_PARAMS *)&p->memset, words);
	case CU_GRAPH_NODE_TYPE_BATCH_MEM_OP:
		return batch_words((const CUDA_BATCH_MEM_OP_NODE_PARAMS *)&p->memOp, words);
	default:
		return 0;
	}
}

/* One node call: which entry point, and its arguments as the app gave them. */
enum node_call {
	NC_ADD_KERNEL,
	NC_SET_KERNEL,
	NC_EXEC_SET_KERNEL,
	NC_ADD_MEMCPY,
	NC_SET_MEMCPY,
	NC_EXEC_SET_MEMCPY,
	NC_ADD_MEMSET,
	NC_SET_MEMSET,
	NC_EXEC_SET_MEMSET,
	NC_ADD_GENERIC,
	NC_SET_GENERIC,
	NC_EXEC_SET_GENERIC,
	NC_ADD_BATCH,
	NC_SET_BATCH,
	NC_EXEC_SET_BATCH,
};

struct node_args {
	enum node_call call;
	CUgraphNode *out;
	CUgraph g;
	const CUgraphNode *deps;
	size_t ndeps;
	CUgraphExec e;
	CUgraphNode node;
	CUcontext ctx;
	const void *p;
	const CUgraphEdgeData *edges;
};

/* The generic and batch memory operation node calls. */
static CUresult do_node_more(const struct node_args *a)
{
	CUgraphNodeParams *gp = (CUgraphNodeParams *)a->p;

	switch (a->call) {
	case NC_ADD_GENERIC:
		return mv_real.cuGraphAddNode_v2(a->out, a->g, a->deps, a->edges, a->ndeps, gp);
	case NC_SET_GENERIC:
		return mv_real.cuGraphNodeSetParams(a->node, gp);
	case NC_EXEC_SET_GENERIC:
		return mv_real.cuGraphExecNodeSetParams(a->e, a->node, gp);
	case NC_ADD_BATCH:
		return mv_real.cuGraphAddBatchMemOpNode(a->out, a->g, a->deps, a->ndeps, a->p);
	case NC_SET_BATCH:
		return mv_real.cuGraphBatchMemOpNodeSetParams(a->node, a->p);
	default:
		return mv_real.cuGraphExecBatchMemOpNodeSetParams(a->e, a->node, a->p);
	}
}

static CUresult do_node(void *arg)
{
	const struct node_args *a = arg;

	switch (a->call) {
	case NC_ADD_KERNEL:
		return mv_real.cuGraphAddKernelNode_v2(a->out, a->g, a->deps, a->ndeps, a->p);
	case NC_SET_KERNEL:
		return mv_real.cuGraphKernelNodeSetParams_v2(a->node, a->p);
	case NC_EXEC_SET_KERNEL:
		return mv_real.cuGraphExecKernelNodeSetParams_v2(a->e, a->node, a->p);
	case NC_ADD_MEMCPY:
		return mv_real.cuGraphAddMemcpyNode(a->out, a->g, a->deps, a->ndeps, a->p, a->ctx);
	case NC_SET_MEMCPY:
		return mv_real.cuGraphMemcpyNodeSetParams(a->node, a->p);
	case NC_EXEC_SET_MEMCPY:
		return mv_real.cuGraphExecMemcpyNodeSetParams(a->e, a->node, a->p, a->ctx);
	case NC_ADD_MEMSET:
		return mv_real.cuGraphAddMemsetNode(a->out, a->g, a->deps, a->ndeps, a->p, a->ctx);
	case NC_SET_MEMSET:
		return mv_real.cuGraphMemsetNodeSetParams(a->node, a->p);
	case NC_EXEC_SET_MEMSET:
		return mv_real.cuGraphExecMemsetNodeSetParams(a->e, a->node, a->p, a->ctx);
	default:
		return do_node_more(a);
	}
}

/* Pins what the node's parameters name, then makes the call. Parameters the driver would refuse
 * (NULL) go to it unread, for its own error. */
static CUresult node_call(struct node_args *a)
{
	size_t n = 0;

	if (mv_init() != 0)
		return CUDA_ERROR_NOT_INITIALIZED;
	if (a->p == NULL)
		return do_node(a);
	if (a->call <= NC_EXEC_SET_KERNEL)
		n = kernel_node_words(a->p, node_words);
	else if (a->call <= NC_EXEC_SET_MEMCPY)
		n = copy_words(a->p, node_words);
	else if (a->call <= NC_EXEC_SET_MEMSET)
		n = memset_words(a->p, node_words);
	else if (a->call <= NC_EXEC_SET_GENERIC)
		n = generic_words(a->p, node_words);
	else
		n = batch_words(a->p, node_words);
	if (n == SIZE_MAX) {
		mv_log(MV_LOG_ERROR, "a graph node of more than %d memory operations refused: it cannot be made safe",
		       MV_MAX_SCAN_WORDS);
		return CUDA_ERROR_NOT_SUPPORTED;
	}
	return mv_submit_pinned(node_words, n, do_node, a);
}

/* Each entry point hands its arguments to node_call. */
#define NODE_CALL(...)                             \
	{                                          \
		struct node_args a = {__VA_ARGS__}; \
		return node_call(&a);              \
	}

MV_EXPORT CUresult cuGraphAddKernelNode_v2(CUgraphNode *out, CUgraph g, const CUgraphNode *deps, size_t ndeps,
					   const CUDA_KERNEL_NODE_PARAMS *p)
NODE_CALL(.call = NC_ADD_KERNEL, .out = out, .g = g, .deps = deps, .ndeps = ndeps, .p = p)
MV_EXPORT CUresult cuGraphAddMemcpyNode(CUgraphNode *out, CUgraph g, const CUgraphNode *deps, size_t ndeps,
					const CUDA_MEMCPY3D *p, CUcontext ctx)
NODE_CALL(.call = NC_ADD_MEMCPY, .out = out, .g = g, .deps = deps, .ndeps = ndeps, .ctx = ctx, .p = p)
MV_EXPORT CUresult cuGraphAddMemsetNode(CUgraphNode *out, CUgraph g, const CUgraphNode *deps, size_t ndeps,
					const CUDA_MEMSET_NODE_PARAMS *p, CUcontext ctx)
NODE_CALL(.call = NC_ADD_MEMSET, .out = out, .g = g, .deps = deps, .ndeps = ndeps, .ctx = ctx, .p = p)

MV_EXPORT CUresult cuGraphKernelNodeSetParams_v2(CUgraphNode node, const CUDA_KERNEL_NODE_PARAMS *p)
NODE_CALL(.call = NC_SET_KERNEL, .node = node, .p = p)
MV_EXPORT CUresult cuGraphMemcpyNodeSetParams(CUgraphNode node, const CUDA_MEMCPY3D *p)
NODE_CALL(.call = NC_SET_MEMCPY, .node = node, .p = p)
MV_EXPORT CUresult cuGraphMemsetNodeSetParams(CUgraphNode node, const CUDA_MEMSET_NODE_PARAMS *p)
NODE_CALL(.call = NC_SET_MEMSET, .node = node, .p = p)

MV_EXPORT CUresult cuGraphExecKernelNodeSetParams_v2(CUgraphExec e, CUgraphNode node, const CUDA_KERNEL_NODE_PARAMS *p)
NODE_CALL(.call = NC_EXEC_SET_KERNEL, .e = e, .node = node, .p = p)
MV_EXPORT CUresult cuGraphExecMemcpyNodeSetParams(CUgraphExec e, CUgraphNode node, const CUDA_MEMCPY3D *p,
						  CUcontext ctx)
NODE_CALL(.call = NC_EXEC_SET_MEMCPY, .e = e, .node = node, .ctx = ctx, .p = p)
MV_EXPORT CUresult cuGraphExecMemsetNodeSetParams(CUgraphExec e, CUgraphNode node, const CUDA_MEMSET_NODE_PARAMS *p,
						  CUcontext ctx)
NODE_CALL(.call = NC_EXEC_SET_MEMSET, .e = e, .node = node, .ctx = ctx, .p = p)

MV_EXPORT CUresult cuGraphAddNode_v2(CUgraphNode *out, CUgraph g, const CUgraphNode *deps, const CUgraphEdgeData *edges,
				     size_t ndeps, CUgraphNodeParams *p)
NODE_CALL(.call = NC_ADD_GENERIC, .out = out, .g = g, .deps = deps, .edges = edges, .ndeps = ndeps, .p = p)
MV_EXPORT CUresult cuGraphNodeSetParams(CUgraphNode node, CUgraphNodeParams *p)
NODE_CALL(.call = NC_SET_GENERIC, .node = node, .p = p)
MV_EXPORT CUresult cuGraphExecNodeSetParams(CUgraphExec e, CUgraphNode node, CUgraphNodeParams *p)
NODE_CALL(.call = NC_EXEC_SET_GENERIC, .e = e, .node = node, .p = p)
MV_EXPORT CUresult cuGraphAddBatchMemOpNode(CUgraphNode *out, CUgraph g, const CUgraphNode *deps, size_t ndeps,
					    const CUDA_BATCH_MEM_OP_NODE_PARAMS *p)
NODE_CALL(.call = NC_ADD_BATCH, .out = out, .g = g, .deps = deps, .ndeps = ndeps, .p = p)
MV_EXPORT CUresult cuGraphBatchMemOpNodeSetParams(CUgraphNode node, const CUDA_BATCH_MEM_OP_NODE_PARAMS *p)
NODE_CALL(.call = NC_SET_BATCH, .node = node, .p = p)
MV_EXPORT CUresult cuGraphExecBatchMemOpNodeSetParams(CUgraphExec e, CUgraphNode node,
						      const CUDA_BATCH_MEM_OP_NODE_PARAMS *p)
NODE_CALL(.call = NC_EXEC_SET_BATCH, .e = e, .node = node, .p = p)
