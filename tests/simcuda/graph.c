/* Graphs: stream capture, which records launches (and stream-ordered allocations and frees, as
 * alloc and free nodes) instead of running them, and explicit construction of kernel, memcpy,
 * memset, alloc, free, child-graph and empty nodes. An instantiated graph runs its
 * nodes one after another on the stream it is launched on, in the order they were added, which every
 * dependency allows since a node can only depend on nodes added before it. Each node's ranges are
 * checked when it runs, as any kernel's, copy's or memset's are. During capture an asynchronous
 * copy or memset becomes a node too (copy.c); a synchronous one, or a copy with a side in pageable
 * host memory, is refused and invalidates the capture, as the driver does. Pitched copies and
 * memsets, stream memory operations and host functions are refused. An event recorded during
 * capture marks a point of it: a stream that waits on it joins the capture (a fork), and the
 * capture ends only once each such stream's work is joined back to the stream that began it
 * (stream.c).
 *
 * An alloc node's address is reserved when the node is made and fixed for its life (mem.c). A
 * launch allocates it (charging the device) and its pages are mapped when the stream reaches the
 * node; a free node, cuMemFreeAsync or cuMemFree frees it. A launch of an exec whose allocation
 * from an earlier launch is still allocated is refused with CUDA_ERROR_INVALID_VALUE, as the
 * driver refuses it without CUDA_GRAPH_INSTANTIATE_FLAG_AUTO_FREE_ON_LAUNCH. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "tests/simcuda/internal.h"

enum gnode_kind { GN_KERNEL, GN_COPY, GN_MEMSET, GN_CHILD, GN_EMPTY, GN_MALLOC, GN_MFREE };

struct sim_graph;

struct sim_gnode {
	uint32_t magic;
	enum gnode_kind kind;
	struct sim_graph *owner;
	struct sim_graph *child; /* GN_CHILD: the graph's own clone of the child */
	struct sim_op op;        /* GN_KERNEL, GN_COPY, GN_MEMSET: what one launch runs; GN_MALLOC,
				  * GN_MFREE: the map or unmap of the address (op.u.f.dptr) */
	uint64_t bytes;          /* GN_MALLOC: the size asked for, on device dev */
	int dev;
};

struct sim_graph {
	uint32_t magic;
	struct sim_gnode **nodes;
	size_t n, cap;
};

/* One operation of an instantiated graph, and the node of the graph it came from (NULL inside a
 * child graph). */
struct exec_item {
	const struct sim_gnode *from;
	enum gnode_kind kind;
	struct sim_op op;
};

struct sim_exec {
	uint32_t magic;
	struct exec_item *items;
	size_t n;
};

static void graph_free(struct sim_graph *g);

static void node_free(struct sim_gnode *nd)
{
	if (nd->child != NULL)
		graph_free(nd->child);
	if (nd->kind == GN_MALLOC)
		sim_galloc_ref(nd->op.u.f.dptr, -1);
	nd->magic = SIM_MAGIC_DEAD;
	sim_retire(nd);
}

static void graph_free(struct sim_graph *g)
{
	for (size_t i = 0; i < g->n; i++)
		node_free(g->nodes[i]);
	free(g->nodes);
	g->magic = SIM_MAGIC_DEAD;
	sim_retire(g);
}

static struct sim_graph *graph_new(void)
{
	struct sim_graph *g = calloc(1, sizeof(*g));

	if (g != NULL)
		g->magic = SIM_MAGIC_GRAPH;
	return g;
}

static struct sim_graph *graph_of(CUgraph h)
{
	struct sim_graph *g = (struct sim_graph *)h;
	return g != NULL && g->magic == SIM_MAGIC_GRAPH ? g : NULL;
}

static struct sim_gnode *node_of(CUgraphNode h)
{
	struct sim_gnode *nd = (struct sim_gnode *)h;
	return nd != NULL && nd->magic == SIM_MAGIC_GNODE ? nd : NULL;
}

/* Kernel args point into the op's own argument buffer: re-aim them after the op is copied. */
static void op_copy(struct sim_op *dst, const struct sim_op *src)
{
	*dst = *src;
	dst->next = NULL;
	dst->deps = NULL;
	dst->ndeps = 0;
	if (src->kind == SIM_OP_KERNEL)
		for (unsigned j = 0; j < src->u.k.desc->nparams; j++)
			dst->u.k.args[j] = dst->u.k.buf + src->u.k.desc->offset[j];
}

/* Appends a node; it owns nothing yet. */
static CUresult graph_append(struct sim_graph *g, enum gnode_kind kind, struct sim_gnode **out)
{
	struct sim_gnode *nd;

	if (g->n == g->cap) {
		size_t cap = g->cap ? g->cap * 2 : 16;
		struct sim_gnode **v = realloc(g->nodes, cap * sizeof(*v));
		if (v == NULL)
			return CUDA_ERROR_OUT_OF_MEMORY;
		g->nodes = v;
		g->cap = cap;
	}
	nd = calloc(1, sizeof(*nd));
	if (nd == NULL)
		return CUDA_ERROR_OUT_OF_MEMORY;
	nd->magic = SIM_MAGIC_GNODE;
	nd->kind = kind;
	nd->owner = g;
	g->nodes[g->n++] = nd;
	*out = nd;
	return CUDA_SUCCESS;
}

/* Streams that joined one capture append to its graph from their own threads. */
static pthread_mutex_t capture_lock = PTHREAD_MUTEX_INITIALIZER;

CUresult sim_graph_capture_op(struct sim_stream *s, struct sim_op *op)
{
	struct sim_gnode *nd;
	enum gnode_kind kind = op->kind == SIM_OP_KERNEL ? GN_KERNEL : op->kind == SIM_OP_COPY ? GN_COPY : GN_MEMSET;
	CUresult r;

	pthread_mutex_lock(&capture_lock);
	r = graph_append(s->capture, kind, &nd);
	if (r == CUDA_SUCCESS)
		op_copy(&nd->op, op);
	pthread_mutex_unlock(&capture_lock);
	if (r == CUDA_SUCCESS)
		sim_capture_node_added(s);
	free(op);
	return r;
}

/* Appends an alloc node for a new graph allocation of bytes on dev, or (bytes 0) a free node of
 * *va, which must be a graph allocation's. */
static CUresult add_mem_node(struct sim_graph *g, uint64_t bytes, int dev, uint64_t *va, struct sim_gnode **out)
{
	struct sim_gnode *nd;
	CUresult r;

	if (bytes == 0 && !sim_galloc_is(*va))
		return CUDA_ERROR_INVALID_VALUE;
	if (bytes != 0 && (r = sim_galloc_new(bytes, dev, va)) != CUDA_SUCCESS)
		return r;
	r = graph_append(g, bytes != 0 ? GN_MALLOC : GN_MFREE, &nd);
	if (r != CUDA_SUCCESS) {
		if (bytes != 0)
			sim_galloc_ref(*va, -1);
		return r;
	}
	nd->op.kind = bytes != 0 ? SIM_OP_GMAP : SIM_OP_GUNMAP;
	nd->op.u.f.dptr = *va;
	nd->bytes = bytes;
	nd->dev = dev;
	*out = nd;
	return CUDA_SUCCESS;
}

CUresult sim_graph_capture_mem(struct sim_stream *s, uint64_t bytes, int dev, uint64_t *va)
{
	struct sim_gnode *nd;
	CUresult r;

	pthread_mutex_lock(&capture_lock);
	r = add_mem_node(s->capture, bytes, dev, va, &nd);
	pthread_mutex_unlock(&capture_lock);
	if (r == CUDA_SUCCESS)
		sim_capture_node_added(s);
	return r;
}

/* Whether a graph has alloc or free nodes, which the driver does not clone into a child node. */
static int has_mem_nodes(const struct sim_graph *g)
{
	for (size_t i = 0; i < g->n; i++)
		if (g->nodes[i]->kind == GN_MALLOC || g->nodes[i]->kind == GN_MFREE ||
		    (g->nodes[i]->child != NULL && has_mem_nodes(g->nodes[i]->child)))
			return 1;
	return 0;
}

/* Deep copy, for a child graph node: later changes to the child do not reach the parent. */
static struct sim_graph *graph_clone(const struct sim_graph *g)
{
	struct sim_graph *c = graph_new();

	if (c == NULL)
		return NULL;
	for (size_t i = 0; i < g->n; i++) {
		const struct sim_gnode *from = g->nodes[i];
		struct sim_gnode *nd;
		if (graph_append(c, from->kind, &nd) != CUDA_SUCCESS)
			goto fail;
		op_copy(&nd->op, &from->op);
		if (from->child != NULL && (nd->child = graph_clone(from->child)) == NULL)
			goto fail;
	}
	return c;
fail:
	graph_free(c);
	return NULL;
}

/* The last capture sequence's id. Guarded by sim_sched_lock. */
static uint64_t capture_ids;

/* Begins capturing on a stream, into a new graph, or into `into` (cuStreamBeginCaptureToGraph). */
static CUresult begin_capture_into(CUstream h, struct sim_graph *into, CUstreamCaptureMode mode, int per_thread)
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
	if (mode > CU_STREAM_CAPTURE_MODE_RELAXED)
		return CUDA_ERROR_INVALID_VALUE;
	g = into != NULL ? into : graph_new();
	if (g == NULL)
		return CUDA_ERROR_OUT_OF_MEMORY;
	pthread_mutex_lock(&sim_sched_lock);
	s->capture_external = into != NULL;
	s->capture_mode = mode;
	s->capture_thread = pthread_self();
	s->capture_invalid = 0;
	s->capture_id = ++capture_ids;
	s->capture_origin = NULL;
	s->capture_ops = 0;
	s->capture_last_node = 0;
	s->join_to = NULL;
	s->capture = g;
	pthread_mutex_unlock(&sim_sched_lock);
	return CUDA_SUCCESS;
}

static CUresult begin_capture(CUstream h, CUstreamCaptureMode mode, int per_thread)
{
	return begin_capture_into(h, NULL, mode, per_thread);
}

/* Each thread's mode for the capture rules; global until the thread changes it. */
static __thread CUstreamCaptureMode thread_mode = CU_STREAM_CAPTURE_MODE_GLOBAL;

CUstreamCaptureMode sim_thread_capture_mode(void)
{
	return thread_mode;
}

SIM_EXPORT CUresult cuThreadExchangeStreamCaptureMode(CUstreamCaptureMode *mode)
{
	CUstreamCaptureMode old = thread_mode;

	if (mode == NULL || *mode > CU_STREAM_CAPTURE_MODE_RELAXED)
		return CUDA_ERROR_INVALID_VALUE;
	thread_mode = *mode;
	*mode = old;
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
	struct sim_graph *g;
	int invalid, external;
	CUresult r = sim_enter_stream(h, per_thread, &s);

	if (r != CUDA_SUCCESS)
		return r;
	if (pg == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	if (s->capture == NULL)
		return CUDA_ERROR_ILLEGAL_STATE;
	/* Only the stream that began it ends a capture; trying on a stream that joined it breaks it. */
	if (s->capture_origin != NULL) {
		pthread_mutex_lock(&sim_sched_lock);
		sim_capture_invalidate_locked(s);
		pthread_mutex_unlock(&sim_sched_lock);
		return CUDA_ERROR_STREAM_CAPTURE_UNMATCHED;
	}
	r = sim_capture_end(s, &g, &invalid, &external);
	/* An invalidated capture, or one with work not joined back, ends without a graph (the app's
	 * own graph stays the app's). */
	if (invalid || r != CUDA_SUCCESS) {
		if (!external)
			graph_free(g);
		*pg = NULL;
		return r != CUDA_SUCCESS ? r : CUDA_ERROR_STREAM_CAPTURE_INVALIDATED;
	}
	*pg = (CUgraph)g;
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
	*status = s->capture == NULL ? CU_STREAM_CAPTURE_STATUS_NONE
		  : s->capture_invalid ? CU_STREAM_CAPTURE_STATUS_INVALIDATED
				       : CU_STREAM_CAPTURE_STATUS_ACTIVE;
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

/* ---- instantiation and launch ---- */

static size_t flat_count(const struct sim_graph *g)
{
	size_t n = 0;

	for (size_t i = 0; i < g->n; i++)
		n += g->nodes[i]->kind == GN_CHILD ? flat_count(g->nodes[i]->child) : g->nodes[i]->kind != GN_EMPTY;
	return n;
}

/* Writes g's operations in order, child graphs inlined where they stand; top says whether g is the
 * instantiated graph itself, whose nodes the exec's setters name. */
static size_t flatten(const struct sim_graph *g, struct exec_item *out, int top)
{
	size_t n = 0;

	for (size_t i = 0; i < g->n; i++) {
		const struct sim_gnode *nd = g->nodes[i];
		if (nd->kind == GN_CHILD) {
			n += flatten(nd->child, out + n, 0);
		} else if (nd->kind != GN_EMPTY) {
			out[n].from = top ? nd : NULL;
			out[n].kind = nd->kind;
			op_copy(&out[n].op, &nd->op);
			n++;
		}
	}
	return n;
}

SIM_EXPORT CUresult cuGraphInstantiateWithFlags(CUgraphExec *pe, CUgraph hg, unsigned long long flags)
{
	struct sim_graph *g = graph_of(hg);
	struct sim_exec *e;
	size_t n;
	CUresult r = sim_enter_ctx(NULL);

	if (r != CUDA_SUCCESS)
		return r;
	if (pe == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	if (g == NULL)
		return CUDA_ERROR_INVALID_HANDLE;
	n = flat_count(g);
	e = calloc(1, sizeof(*e));
	if (e == NULL)
		return CUDA_ERROR_OUT_OF_MEMORY;
	e->items = calloc(n ? n : 1, sizeof(*e->items));
	if (e->items == NULL) {
		free(e);
		return CUDA_ERROR_OUT_OF_MEMORY;
	}
	e->n = flatten(g, e->items, 1);
	for (size_t i = 0; i < e->n; i++)
		if (e->items[i].kind == GN_MALLOC)
			sim_galloc_ref(e->items[i].op.u.f.dptr, 1);
	e->magic = SIM_MAGIC_EXEC;
	*pe = (CUgraphExec)e;
	return CUDA_SUCCESS;
}

/* Queues one operation of a graph launch, as its own kind of call would. */
static CUresult submit_item(struct sim_stream *s, const struct sim_op *t)
{
	struct sim_op *op = sim_op_new(t->kind);

	if (op == NULL)
		return CUDA_ERROR_OUT_OF_MEMORY;
	op_copy(op, t);
	switch (t->kind) {
	case SIM_OP_KERNEL:
		sim_stream_submit(s, op, SIM_ENGINE_COMPUTE, sim_kernel_cost_ns(op));
		break;
	case SIM_OP_COPY:
		sim_copy_submit(s, op);
		break;
	case SIM_OP_GMAP:
	case SIM_OP_GUNMAP:
		sim_stream_submit(s, op, SIM_ENGINE_COMPUTE, 0);
		break;
	default:
		sim_stream_submit(s, op, SIM_ENGINE_COMPUTE, sim_cost_kernel_ns(0, (double)t->u.m.n * t->u.m.elem));
		break;
	}
	return CUDA_SUCCESS;
}

static int mem_item(const struct exec_item *it)
{
	return it->kind == GN_MALLOC || it->kind == GN_MFREE;
}

/* A launch allocates and frees its graph allocations in node order, as the calls order them; on a
 * refusal (one still allocated from an earlier launch, one not allocated, no room) it undoes what
 * it did. */
static CUresult exec_mem_apply(const struct sim_exec *e)
{
	size_t i;
	CUresult r = CUDA_SUCCESS;

	pthread_mutex_lock(&sim_mem_lock);
	for (i = 0; i < e->n && r == CUDA_SUCCESS; i++)
		if (mem_item(&e->items[i]))
			r = sim_galloc_state(e->items[i].op.u.f.dptr, e->items[i].kind == GN_MALLOC);
	if (r != CUDA_SUCCESS)
		for (i--; i-- > 0;)
			if (mem_item(&e->items[i]))
				sim_galloc_state(e->items[i].op.u.f.dptr, e->items[i].kind != GN_MALLOC);
	pthread_mutex_unlock(&sim_mem_lock);
	return r;
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
	r = exec_mem_apply(e);
	for (size_t i = 0; i < e->n && r == CUDA_SUCCESS; i++)
		r = submit_item(s, &e->items[i].op);
	return r;
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
	for (size_t i = 0; i < e->n; i++)
		if (e->items[i].kind == GN_MALLOC)
			sim_galloc_ref(e->items[i].op.u.f.dptr, -1);
	free(e->items);
	sim_retire(e);
	return CUDA_SUCCESS;
}

/* ---- construction ---- */

SIM_EXPORT CUresult cuGraphCreate(CUgraph *pg, unsigned int flags)
{
	struct sim_graph *g;
	CUresult r = sim_enter_ctx(NULL);

	if (r != CUDA_SUCCESS)
		return r;
	if (pg == NULL || flags != 0)
		return CUDA_ERROR_INVALID_VALUE;
	g = graph_new();
	if (g == NULL)
		return CUDA_ERROR_OUT_OF_MEMORY;
	*pg = (CUgraph)g;
	return CUDA_SUCCESS;
}

SIM_EXPORT CUresult cuGraphDestroy(CUgraph hg)
{
	struct sim_graph *g = graph_of(hg);
	CUresult r = sim_enter();

	if (r != CUDA_SUCCESS)
		return r;
	if (g == NULL)
		return CUDA_ERROR_INVALID_HANDLE;
	graph_free(g);
	return CUDA_SUCCESS;
}

SIM_EXPORT CUresult cuGraphGetNodes(CUgraph hg, CUgraphNode *nodes, size_t *count)
{
	struct sim_graph *g = graph_of(hg);
	CUresult r = sim_enter();

	if (r != CUDA_SUCCESS)
		return r;
	if (count == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	if (g == NULL)
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

/* The prologue of every cuGraphAdd*Node: the graph, and dependencies that are distinct nodes of it. */
static CUresult add_check(CUgraphNode *out, CUgraph hg, const CUgraphNode *deps, size_t ndeps,
			  struct sim_graph **pg)
{
	CUresult r = sim_enter_ctx(NULL);

	if (r != CUDA_SUCCESS)
		return r;
	if (out == NULL || (ndeps > 0 && deps == NULL))
		return CUDA_ERROR_INVALID_VALUE;
	*pg = graph_of(hg);
	if (*pg == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	for (size_t i = 0; i < ndeps; i++) {
		const struct sim_gnode *d = node_of(deps[i]);
		if (d == NULL || d->owner != *pg)
			return CUDA_ERROR_INVALID_VALUE;
		for (size_t j = 0; j < i; j++)
			if (deps[j] == deps[i])
				return CUDA_ERROR_INVALID_VALUE;
	}
	return CUDA_SUCCESS;
}

/* Adds a node whose operation t holds (NULL for an empty node). */
static CUresult add_node(CUgraphNode *out, struct sim_graph *g, enum gnode_kind kind, const struct sim_op *t)
{
	struct sim_gnode *nd;
	CUresult r = graph_append(g, kind, &nd);

	if (r != CUDA_SUCCESS)
		return r;
	if (t != NULL)
		op_copy(&nd->op, t);
	*out = (CUgraphNode)nd;
	return CUDA_SUCCESS;
}

static CUresult kernel_op(struct sim_op *op, const CUDA_KERNEL_NODE_PARAMS *p)
{
	unsigned grid[3], block[3];

	if (p == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	grid[0] = p->gridDimX, grid[1] = p->gridDimY, grid[2] = p->gridDimZ;
	block[0] = p->blockDimX, block[1] = p->blockDimY, block[2] = p->blockDimZ;
	memset(op, 0, sizeof(*op));
	op->kind = SIM_OP_KERNEL;
	/* A CUkernel is not a function this driver has: only func is read. */
	return sim_kernel_prepare(op, p->func, grid, block, p->kernelParams, p->extra);
}

SIM_EXPORT CUresult cuGraphAddKernelNode_v2(CUgraphNode *out, CUgraph hg, const CUgraphNode *deps, size_t ndeps,
					    const CUDA_KERNEL_NODE_PARAMS *p)
{
	struct sim_graph *g;
	struct sim_op op;
	CUresult r = add_check(out, hg, deps, ndeps, &g);

	if (r == CUDA_SUCCESS)
		r = kernel_op(&op, p);
	return r == CUDA_SUCCESS ? add_node(out, g, GN_KERNEL, &op) : r;
}

/* A device-side address must be in the device window or be pinned host memory. */
static int device_side(uint64_t addr, uint64_t bytes)
{
	return sim_is_device_addr(addr) || sim_mem_check(addr, bytes, 0, 1) == 0;
}

/* One side of a CUDA_MEMCPY3D: its first byte, and whether it is on the device. Arrays are not
 * modelled. */
static CUresult copy_side(CUmemorytype type, const void *host, CUdeviceptr dev, uint64_t *addr, int *device)
{
	switch (type) {
	case CU_MEMORYTYPE_HOST:
		*addr = (uint64_t)(uintptr_t)host;
		*device = 0;
		return CUDA_SUCCESS;
	case CU_MEMORYTYPE_DEVICE:
		*addr = dev;
		*device = 1;
		return CUDA_SUCCESS;
	case CU_MEMORYTYPE_UNIFIED:
		*addr = dev;
		*device = sim_is_device_addr(dev);
		return CUDA_SUCCESS;
	default:
		return CUDA_ERROR_NOT_SUPPORTED;
	}
}

/* A memcpy node's operation: one linear copy. Several rows or slices are not modelled. */
static CUresult copy_op(struct sim_op *op, const CUDA_MEMCPY3D *p)
{
	uint64_t dst, src, n;
	int dd, sd;
	CUresult r;

	if (p == NULL || p->WidthInBytes == 0)
		return CUDA_ERROR_INVALID_VALUE;
	if (p->Height > 1 || p->Depth > 1 || p->srcLOD != 0 || p->dstLOD != 0)
		return CUDA_ERROR_NOT_SUPPORTED;
	r = copy_side(p->srcMemoryType, p->srcHost, p->srcDevice, &src, &sd);
	if (r == CUDA_SUCCESS)
		r = copy_side(p->dstMemoryType, p->dstHost, p->dstDevice, &dst, &dd);
	if (r != CUDA_SUCCESS)
		return r;
	n = p->WidthInBytes;
	src += p->srcXInBytes + p->srcY * p->srcPitch + p->srcZ * p->srcPitch * p->srcHeight;
	dst += p->dstXInBytes + p->dstY * p->dstPitch + p->dstZ * p->dstPitch * p->dstHeight;
	if (src == 0 || dst == 0 || (sd && !device_side(src, n)) || (dd && !device_side(dst, n)))
		return CUDA_ERROR_INVALID_VALUE;
	memset(op, 0, sizeof(*op));
	op->kind = SIM_OP_COPY;
	op->u.c.dst = dst;
	op->u.c.src = src;
	op->u.c.bytes = n;
	op->u.c.dir = sd && dd ? SIM_COPY_D2D : dd ? SIM_COPY_H2D : sd ? SIM_COPY_D2H : SIM_COPY_H2H;
	return CUDA_SUCCESS;
}

SIM_EXPORT CUresult cuGraphAddMemcpyNode(CUgraphNode *out, CUgraph hg, const CUgraphNode *deps, size_t ndeps,
					 const CUDA_MEMCPY3D *p, CUcontext ctx)
{
	struct sim_graph *g;
	struct sim_op op;
	CUresult r = add_check(out, hg, deps, ndeps, &g);

	if (r == CUDA_SUCCESS)
		r = copy_op(&op, p);
	return r == CUDA_SUCCESS ? add_node(out, g, GN_COPY, &op) : r;
}

/* A memset node's operation: one row. Several rows are not modelled. */
static CUresult memset_op(struct sim_op *op, const CUDA_MEMSET_NODE_PARAMS *p)
{
	unsigned e;

	if (p == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	e = p->elementSize;
	if ((e != 1 && e != 2 && e != 4) || p->width == 0 || p->height == 0 || p->dst % e != 0 ||
	    p->width > SIZE_MAX / e || !device_side(p->dst, p->width * e))
		return CUDA_ERROR_INVALID_VALUE;
	if (p->height > 1)
		return CUDA_ERROR_NOT_SUPPORTED;
	memset(op, 0, sizeof(*op));
	op->kind = SIM_OP_MEMSET;
	op->u.m.dst = p->dst;
	op->u.m.n = p->width;
	op->u.m.elem = e;
	op->u.m.value = e == 4 ? p->value : p->value & ((1u << (8 * e)) - 1);
	return CUDA_SUCCESS;
}

SIM_EXPORT CUresult cuGraphAddMemsetNode(CUgraphNode *out, CUgraph hg, const CUgraphNode *deps, size_t ndeps,
					 const CUDA_MEMSET_NODE_PARAMS *p, CUcontext ctx)
{
	struct sim_graph *g;
	struct sim_op op;
	CUresult r = add_check(out, hg, deps, ndeps, &g);

	if (r == CUDA_SUCCESS)
		r = memset_op(&op, p);
	return r == CUDA_SUCCESS ? add_node(out, g, GN_MEMSET, &op) : r;
}

SIM_EXPORT CUresult cuGraphAddChildGraphNode(CUgraphNode *out, CUgraph hg, const CUgraphNode *deps, size_t ndeps,
					     CUgraph child)
{
	struct sim_graph *g, *c = graph_of(child), *clone;
	CUresult r = add_check(out, hg, deps, ndeps, &g);

	if (r != CUDA_SUCCESS)
		return r;
	if (c == NULL || c == g)
		return CUDA_ERROR_INVALID_VALUE;
	/* Moving a graph with memory nodes into its parent is not modelled. */
	if (has_mem_nodes(c))
		return CUDA_ERROR_NOT_SUPPORTED;
	clone = graph_clone(c);
	if (clone == NULL)
		return CUDA_ERROR_OUT_OF_MEMORY;
	r = add_node(out, g, GN_CHILD, NULL);
	if (r != CUDA_SUCCESS) {
		graph_free(clone);
		return r;
	}
	((struct sim_gnode *)*out)->child = clone;
	return CUDA_SUCCESS;
}

SIM_EXPORT CUresult cuGraphAddEmptyNode(CUgraphNode *out, CUgraph hg, const CUgraphNode *deps, size_t ndeps)
{
	struct sim_graph *g;
	CUresult r = add_check(out, hg, deps, ndeps, &g);

	return r == CUDA_SUCCESS ? add_node(out, g, GN_EMPTY, NULL) : r;
}

/* ---- parameter updates ---- */

static struct sim_gnode *node_kind(CUgraphNode h, enum gnode_kind kind)
{
	struct sim_gnode *nd = node_of(h);
	return nd != NULL && nd->kind == kind ? nd : NULL;
}

/* A node's operation from the parameters its kind takes. */
static CUresult make_op(enum gnode_kind kind, const void *p, struct sim_op *op)
{
	switch (kind) {
	case GN_KERNEL:
		return kernel_op(op, p);
	case GN_COPY:
		return copy_op(op, p);
	default:
		return memset_op(op, p);
	}
}

static CUresult node_set(CUgraphNode h, enum gnode_kind kind, const void *p)
{
	struct sim_gnode *nd = node_kind(h, kind);
	struct sim_op op;
	CUresult r = sim_enter_ctx(NULL);

	if (r != CUDA_SUCCESS)
		return r;
	if (nd == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	r = make_op(kind, p, &op);
	if (r == CUDA_SUCCESS)
		op_copy(&nd->op, &op);
	return r;
}

SIM_EXPORT CUresult cuGraphKernelNodeSetParams_v2(CUgraphNode h, const CUDA_KERNEL_NODE_PARAMS *p)
{
	return node_set(h, GN_KERNEL, p);
}

SIM_EXPORT CUresult cuGraphMemcpyNodeSetParams(CUgraphNode h, const CUDA_MEMCPY3D *p)
{
	return node_set(h, GN_COPY, p);
}

SIM_EXPORT CUresult cuGraphMemsetNodeSetParams(CUgraphNode h, const CUDA_MEMSET_NODE_PARAMS *p)
{
	return node_set(h, GN_MEMSET, p);
}

/* Changes what an instantiated graph runs for a node of the graph it was made from; the graph
 * itself keeps its parameters. */
static CUresult exec_set(CUgraphExec he, CUgraphNode h, enum gnode_kind kind, const void *p)
{
	struct sim_exec *e = (struct sim_exec *)he;
	struct exec_item *it = NULL;
	struct sim_op op;
	CUresult r = sim_enter_ctx(NULL);

	if (r != CUDA_SUCCESS)
		return r;
	if (e == NULL || e->magic != SIM_MAGIC_EXEC || node_kind(h, kind) == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	for (size_t i = 0; i < e->n && it == NULL; i++)
		if (e->items[i].from == (const struct sim_gnode *)h)
			it = &e->items[i];
	if (it == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	r = make_op(kind, p, &op);
	/* An instantiated copy keeps its direction. */
	if (r == CUDA_SUCCESS && kind == GN_COPY && op.u.c.dir != it->op.u.c.dir)
		r = CUDA_ERROR_INVALID_VALUE;
	if (r == CUDA_SUCCESS)
		op_copy(&it->op, &op);
	return r;
}

SIM_EXPORT CUresult cuGraphExecKernelNodeSetParams_v2(CUgraphExec he, CUgraphNode h, const CUDA_KERNEL_NODE_PARAMS *p)
{
	return exec_set(he, h, GN_KERNEL, p);
}

SIM_EXPORT CUresult cuGraphExecMemcpyNodeSetParams(CUgraphExec he, CUgraphNode h, const CUDA_MEMCPY3D *p, CUcontext ctx)
{
	return exec_set(he, h, GN_COPY, p);
}

SIM_EXPORT CUresult cuGraphExecMemsetNodeSetParams(CUgraphExec he, CUgraphNode h, const CUDA_MEMSET_NODE_PARAMS *p,
						   CUcontext ctx)
{
	return exec_set(he, h, GN_MEMSET, p);
}

/* Whether the graph's operations line up with the exec's one for one, kind for kind. */
static CUgraphExecUpdateResult update_match(const struct sim_exec *e, const struct exec_item *items, size_t n)
{
	if (n != e->n)
		return CU_GRAPH_EXEC_UPDATE_ERROR_TOPOLOGY_CHANGED;
	for (size_t i = 0; i < n; i++) {
		if (items[i].kind != e->items[i].kind)
			return CU_GRAPH_EXEC_UPDATE_ERROR_NODE_TYPE_CHANGED;
		if (items[i].kind == GN_COPY && items[i].op.u.c.dir != e->items[i].op.u.c.dir)
			return CU_GRAPH_EXEC_UPDATE_ERROR_PARAMETERS_CHANGED;
		if (mem_item(&items[i]) && items[i].op.u.f.dptr != e->items[i].op.u.f.dptr)
			return CU_GRAPH_EXEC_UPDATE_ERROR_PARAMETERS_CHANGED;
	}
	return CU_GRAPH_EXEC_UPDATE_SUCCESS;
}

/* Takes every node's parameters from a graph of the same shape; the exec keeps answering to the
 * nodes of the graph it was instantiated from. */
SIM_EXPORT CUresult cuGraphExecUpdate_v2(CUgraphExec he, CUgraph hg, CUgraphExecUpdateResultInfo *info)
{
	struct sim_exec *e = (struct sim_exec *)he;
	struct sim_graph *g = graph_of(hg);
	struct exec_item *items;
	CUgraphExecUpdateResult res;
	size_t n;
	CUresult r = sim_enter_ctx(NULL);

	if (r != CUDA_SUCCESS)
		return r;
	if (info == NULL || g == NULL || e == NULL || e->magic != SIM_MAGIC_EXEC)
		return CUDA_ERROR_INVALID_VALUE;
	memset(info, 0, sizeof(*info));
	n = flat_count(g);
	items = calloc(n ? n : 1, sizeof(*items));
	if (items == NULL)
		return CUDA_ERROR_OUT_OF_MEMORY;
	flatten(g, items, 0);
	res = update_match(e, items, n);
	if (res == CU_GRAPH_EXEC_UPDATE_SUCCESS)
		for (size_t i = 0; i < n; i++)
			op_copy(&e->items[i].op, &items[i].op);
	free(items);
	info->result = res;
	return res == CU_GRAPH_EXEC_UPDATE_SUCCESS ? CUDA_SUCCESS : CUDA_ERROR_GRAPH_EXEC_UPDATE_FAILURE;
}

/* Capture into an existing graph: the captured nodes follow the graph's nodes, so they run after
 * the dependencies named (which must be distinct nodes of that graph), and the capture's end gives
 * back the same graph. */
static CUresult begin_capture_to_graph(CUstream h, CUgraph hg, const CUgraphNode *deps, size_t ndeps,
				       CUstreamCaptureMode mode, int per_thread)
{
	CUgraphNode unused;
	struct sim_graph *g;
	CUresult r = add_check(&unused, hg, deps, ndeps, &g);

	if (r != CUDA_SUCCESS)
		return r;
	return begin_capture_into(h, g, mode, per_thread);
}

SIM_EXPORT CUresult cuStreamBeginCaptureToGraph(CUstream h, CUgraph hg, const CUgraphNode *deps,
						const CUgraphEdgeData *edges, size_t ndeps, CUstreamCaptureMode mode)
{
	(void)edges;
	return begin_capture_to_graph(h, hg, deps, ndeps, mode, 0);
}

SIM_EXPORT CUresult cuStreamBeginCaptureToGraph_ptsz(CUstream h, CUgraph hg, const CUgraphNode *deps,
						     const CUgraphEdgeData *edges, size_t ndeps, CUstreamCaptureMode mode)
{
	(void)edges;
	return begin_capture_to_graph(h, hg, deps, ndeps, mode, 1);
}

/* ---- memory nodes ---- */

/* Device memory of a device, as a pool's properties name it; IPC handle types are refused. */
static CUresult alloc_props_check(const CUDA_MEM_ALLOC_NODE_PARAMS *p)
{
	const CUmemPoolProps *pp = &p->poolProps;

	if (p->bytesize == 0 || pp->allocType != CU_MEM_ALLOCATION_TYPE_PINNED ||
	    pp->handleTypes != CU_MEM_HANDLE_TYPE_NONE || pp->location.type != CU_MEM_LOCATION_TYPE_DEVICE ||
	    (p->accessDescCount > 0 && p->accessDescs == NULL))
		return CUDA_ERROR_INVALID_VALUE;
	return sim_dev_check(pp->location.id) == CUDA_SUCCESS ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

SIM_EXPORT CUresult cuGraphAddMemAllocNode(CUgraphNode *out, CUgraph hg, const CUgraphNode *deps, size_t ndeps,
					   CUDA_MEM_ALLOC_NODE_PARAMS *p)
{
	struct sim_graph *g;
	struct sim_gnode *nd;
	uint64_t va;
	CUresult r = add_check(out, hg, deps, ndeps, &g);

	if (r == CUDA_SUCCESS)
		r = p == NULL ? CUDA_ERROR_INVALID_VALUE : alloc_props_check(p);
	if (r == CUDA_SUCCESS)
		r = add_mem_node(g, p->bytesize, p->poolProps.location.id, &va, &nd);
	if (r != CUDA_SUCCESS)
		return r;
	p->dptr = va;
	*out = (CUgraphNode)nd;
	return CUDA_SUCCESS;
}

SIM_EXPORT CUresult cuGraphAddMemFreeNode(CUgraphNode *out, CUgraph hg, const CUgraphNode *deps, size_t ndeps,
					  CUdeviceptr dptr)
{
	struct sim_graph *g;
	struct sim_gnode *nd;
	uint64_t va = dptr;
	CUresult r = add_check(out, hg, deps, ndeps, &g);

	if (r == CUDA_SUCCESS)
		r = add_mem_node(g, 0, 0, &va, &nd);
	if (r == CUDA_SUCCESS)
		*out = (CUgraphNode)nd;
	return r;
}

SIM_EXPORT CUresult cuGraphMemAllocNodeGetParams(CUgraphNode h, CUDA_MEM_ALLOC_NODE_PARAMS *p)
{
	const struct sim_gnode *nd = node_kind(h, GN_MALLOC);
	CUresult r = sim_enter();

	if (r != CUDA_SUCCESS)
		return r;
	if (nd == NULL || p == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	memset(p, 0, sizeof(*p));
	p->poolProps.allocType = CU_MEM_ALLOCATION_TYPE_PINNED;
	p->poolProps.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
	p->poolProps.location.id = nd->dev;
	p->bytesize = nd->bytes;
	p->dptr = nd->op.u.f.dptr;
	return CUDA_SUCCESS;
}

SIM_EXPORT CUresult cuGraphMemFreeNodeGetParams(CUgraphNode h, CUdeviceptr *dptr)
{
	const struct sim_gnode *nd = node_kind(h, GN_MFREE);
	CUresult r = sim_enter();

	if (r != CUDA_SUCCESS)
		return r;
	if (nd == NULL || dptr == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	*dptr = nd->op.u.f.dptr;
	return CUDA_SUCCESS;
}

SIM_EXPORT CUresult cuGraphNodeGetType(CUgraphNode h, CUgraphNodeType *type)
{
	static const CUgraphNodeType types[] = {
		[GN_KERNEL] = CU_GRAPH_NODE_TYPE_KERNEL, [GN_COPY] = CU_GRAPH_NODE_TYPE_MEMCPY,
		[GN_MEMSET] = CU_GRAPH_NODE_TYPE_MEMSET, [GN_CHILD] = CU_GRAPH_NODE_TYPE_GRAPH,
		[GN_EMPTY] = CU_GRAPH_NODE_TYPE_EMPTY,   [GN_MALLOC] = CU_GRAPH_NODE_TYPE_MEM_ALLOC,
		[GN_MFREE] = CU_GRAPH_NODE_TYPE_MEM_FREE,
	};
	const struct sim_gnode *nd = node_of(h);
	CUresult r = sim_enter();

	if (r != CUDA_SUCCESS)
		return r;
	if (nd == NULL || type == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	*type = types[nd->kind];
	return CUDA_SUCCESS;
}
