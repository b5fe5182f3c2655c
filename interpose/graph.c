/* Graphs: stream capture, explicitly added or updated nodes, and graph launches. memvirt keeps, for
 * each graph, the set of its buffers that the graph's nodes name: kernel parameters scanned when a
 * launch is captured or a node is added or set, memcpy, memset, generic and batch memory operation
 * nodes, and child graphs (copied into the parent, as the driver copies them). A clone copies the
 * set, an instantiation copies it into the exec, and the exec's setters and updates add to it (a
 * superset is safe). A launch of the exec goes through mv_submit as one launch naming the exec's
 * set: every buffer is brought in before it and held until it completes on its stream, and is
 * pageable again after: the graph rule. Nothing is made resident while a capture records.
 * Stream-ordered allocations during capture are the driver's alloc and free nodes (graph memory):
 * memvirt does not serve that memory, but charges it against the budget while it is allocated.
 *
 * Where memvirt cannot follow a graph, it falls back and says so once: a node it did not see
 * added (a captured node, say) whose parameters are set in the graph pins what they name for good,
 * as does an exec naming more buffers than one submission holds (MV_MAX_NAMED); an exec
 * instantiated through an entry point memvirt does not hook names every buffer memvirt serves.
 * A freed buffer's address left in a set names nothing, or names the buffer that took its place:
 * at worst a needless page-in. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "interpose/internal.h"

/* ---- the buffers each graph names ---- */

/* What a graph, an exec or a running capture names: the start addresses of memvirt's buffers,
 * sorted and distinct. The key is the CUgraph or CUgraphExec handle, or a capture's key (odd).
 * `lost`: an address could not be kept (no memory), so the set may name too little; `pinned`: its
 * buffers are pinned for good and nothing was added since; `embedded`: the graph is a child graph
 * node's own (cuGraphChildGraphNodeGetGraph), whose changes reach a parent memvirt cannot name, so
 * what is added to it is pinned for good instead. */
struct gmem;

struct gset {
	uintptr_t key;
	struct gset *next;
	uint64_t *va;
	size_t n, cap;
	int lost, pinned, embedded;
	struct gmem *mem; /* an exec's memory nodes (graph memory, below) */
	size_t nmem;
};

/* A node added through memvirt, and the graph it is in. */
struct gnode {
	uintptr_t node, graph;
	struct gnode *next;
};

#define MV_GBUCKETS 256
static struct gset *gsets[MV_GBUCKETS];
static struct gnode *gnodes[MV_GBUCKETS];
static pthread_mutex_t gset_lock = PTHREAD_MUTEX_INITIALIZER;

static size_t bucket(uintptr_t key)
{
	uint64_t x = (uint64_t)key;
	x ^= x >> 29;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 32;
	return (size_t)x & (MV_GBUCKETS - 1);
}

/* The set kept under key, made empty when `make` and there is none. With gset_lock held. */
static struct gset *gset_get(uintptr_t key, int make)
{
	struct gset **at = &gsets[bucket(key)], *s;

	for (s = *at; s != NULL; s = s->next)
		if (s->key == key)
			return s;
	if (!make || (s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->key = key;
	s->next = *at;
	*at = s;
	return s;
}

static void gset_insert(struct gset *s, uint64_t va)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (s->va[mid] == va)
			return;
		if (s->va[mid] < va)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (s->n == s->cap) {
		size_t cap = s->cap != 0 ? 2 * s->cap : 16;
		uint64_t *va2 = realloc(s->va, cap * sizeof(*va2));
		if (va2 == NULL) {
			s->lost = 1;
			return;
		}
		s->va = va2;
		s->cap = cap;
	}
	memmove(s->va + lo + 1, s->va + lo, (s->n - lo) * sizeof(*s->va));
	s->va[lo] = va;
	s->n++;
	s->pinned = 0;
}

/* Adds n addresses to key's set (made when there is none). */
static void gset_add(uintptr_t key, const uint64_t *va, size_t n)
{
	struct gset *s;

	pthread_mutex_lock(&gset_lock);
	if ((s = gset_get(key, 1)) == NULL)
		mv_log(MV_LOG_ERROR, "graph %#lx: no memory to keep the buffers it names", (unsigned long)key);
	for (size_t i = 0; s != NULL && i < n; i++)
		gset_insert(s, va[i]);
	pthread_mutex_unlock(&gset_lock);
}

/* Adds what src names to dst's set, which is made even when src names nothing. */
static void gset_merge(uintptr_t dst, uintptr_t src)
{
	struct gset *d, *s;

	pthread_mutex_lock(&gset_lock);
	s = gset_get(src, 0);
	if ((d = gset_get(dst, 1)) == NULL)
		mv_log(MV_LOG_ERROR, "graph %#lx: no memory to keep the buffers it names", (unsigned long)dst);
	for (size_t i = 0; d != NULL && s != NULL && i < s->n; i++)
		gset_insert(d, s->va[i]);
	if (d != NULL && s != NULL && s->lost)
		d->lost = 1;
	pthread_mutex_unlock(&gset_lock);
}

static void gset_drop(uintptr_t key)
{
	struct gset **at, *s;

	pthread_mutex_lock(&gset_lock);
	for (at = &gsets[bucket(key)]; (s = *at) != NULL; at = &s->next)
		if (s->key == key) {
			*at = s->next;
			free(s->va);
			free(s->mem);
			free(s);
			break;
		}
	pthread_mutex_unlock(&gset_lock);
}

void mv_graph_capture_ended(uintptr_t key)
{
	gset_drop(key);
}

/* Copies up to max addresses of key's set to out. Returns how many it has (more than max when
 * they did not fit), or SIZE_MAX when memvirt has no complete set for key. *pinned: whether they
 * are all pinned already. */
static size_t gset_copy(uintptr_t key, uint64_t *out, size_t max, int *pinned)
{
	struct gset *s;
	size_t n = SIZE_MAX;

	pthread_mutex_lock(&gset_lock);
	if ((s = gset_get(key, 0)) != NULL && !s->lost) {
		n = s->n;
		/* An empty set has no array yet. */
		if (out != NULL && n > 0)
			memcpy(out, s->va, (n < max ? n : max) * sizeof(*out));
		*pinned = s->pinned;
	}
	pthread_mutex_unlock(&gset_lock);
	return n;
}

static void gset_set_pinned(uintptr_t key, size_t n)
{
	struct gset *s;

	pthread_mutex_lock(&gset_lock);
	if ((s = gset_get(key, 0)) != NULL && s->n == n)
		s->pinned = 1;
	pthread_mutex_unlock(&gset_lock);
}

static int gset_embedded(uintptr_t key)
{
	struct gset *s;
	int embedded;

	pthread_mutex_lock(&gset_lock);
	embedded = (s = gset_get(key, 0)) != NULL && s->embedded;
	pthread_mutex_unlock(&gset_lock);
	return embedded;
}

static CUresult do_nothing(void *arg)
{
	return CUDA_SUCCESS;
}

/* Pins the n buffers key's set names (or its first n, should it grow meanwhile) for good,
 * MV_MAX_NAMED at a time. */
static CUresult pin_set(uintptr_t key, size_t n)
{
	uint64_t *all = malloc((n != 0 ? n : 1) * sizeof(*all));
	CUresult r = CUDA_SUCCESS;
	int pinned;
	size_t got;

	if (all == NULL)
		return CUDA_ERROR_OUT_OF_MEMORY;
	got = gset_copy(key, all, n, &pinned);
	if (got > n)
		got = n;
	for (size_t i = 0; i < got && r == CUDA_SUCCESS; i += MV_MAX_NAMED)
		r = mv_submit_pinned(all + i, got - i < MV_MAX_NAMED ? got - i : MV_MAX_NAMED, do_nothing, NULL);
	free(all);
	if (r == CUDA_SUCCESS)
		gset_set_pinned(key, got);
	return r;
}

/* Remembers that node is in graph; a node memvirt cannot remember is one it does not know. */
static void gnode_put(CUgraphNode node, CUgraph graph)
{
	struct gnode **at = &gnodes[bucket((uintptr_t)node)], *e;

	pthread_mutex_lock(&gset_lock);
	for (e = *at; e != NULL && e->node != (uintptr_t)node; e = e->next)
		;
	if (e == NULL && (e = malloc(sizeof(*e))) != NULL) {
		e->node = (uintptr_t)node;
		e->next = *at;
		*at = e;
	}
	if (e != NULL)
		e->graph = (uintptr_t)graph;
	pthread_mutex_unlock(&gset_lock);
}

/* The graph node is in, or 0 when memvirt did not see it added. */
static uintptr_t gnode_graph(CUgraphNode node)
{
	struct gnode *e;
	uintptr_t g = 0;

	pthread_mutex_lock(&gset_lock);
	for (e = gnodes[bucket((uintptr_t)node)]; e != NULL; e = e->next)
		if (e->node == (uintptr_t)node) {
			g = e->graph;
			break;
		}
	pthread_mutex_unlock(&gset_lock);
	return g;
}

/* Forgets node, or every node of graph when node is 0. */
static void gnode_forget(uintptr_t node, uintptr_t graph)
{
	pthread_mutex_lock(&gset_lock);
	for (size_t i = 0; i < MV_GBUCKETS; i++) {
		struct gnode **at = &gnodes[i], *e;
		if (node != 0 && i != bucket(node))
			continue;
		while ((e = *at) != NULL) {
			if (node != 0 ? e->node == node : e->graph == graph) {
				*at = e->next;
				free(e);
			} else {
				at = &e->next;
			}
		}
	}
	pthread_mutex_unlock(&gset_lock);
}

/* Replaces words[0 .. n) by the start addresses of the buffers they name; returns how many. */
static size_t to_buffers(uint64_t *words, size_t n)
{
	size_t m = 0;

	mv_lock();
	for (size_t i = 0; i < n; i++) {
		struct mv_buf *b = mv_registry_find(words[i]);
		if (b != NULL)
			words[m++] = b->va;
	}
	mv_unlock();
	return m;
}

static __thread uint64_t capture_words[MV_MAX_SCAN_WORDS];

void mv_graph_capture_add(CUstream h, int per_thread, const uint64_t *words, size_t n)
{
	if (n > MV_MAX_SCAN_WORDS)
		n = MV_MAX_SCAN_WORDS;
	/* A kernel without parameters names no words, and perhaps no array. */
	if (n > 0)
		memcpy(capture_words, words, n * sizeof(*words));
	n = to_buffers(capture_words, n);
	gset_add(mv_capture_key(h, per_thread), capture_words, n);
}

static _Atomic int said_unknown, said_many, said_node;

/* Says once, at warn, that memvirt falls back for a graph it cannot follow. */
static void fallback_once(_Atomic int *said, const char *what)
{
	if (atomic_exchange(said, 1) == 0)
		mv_log(MV_LOG_WARN, "%s", what);
}


/* After the driver's answer r to a capture's start on h: the stream captures, or is as before
 * (marked: mv_capture_prepare marked it). */
static CUresult capture_started(CUstream h, int per_thread, int marked, CUresult r)
{
	if (r == CUDA_SUCCESS) {
		gset_drop(mv_capture_key(h, per_thread)); /* an earlier capture's, ended badly */
		mv_capture_begin(h, per_thread);
	} else if (marked)
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

/* A capture into the app's own graph is a capture like any other: what it records joins the
 * graph's set when it ends. */
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

/* What the capture named becomes the graph's (the app's own graph's, for a capture into one). */
static CUresult end_capture(CUstream h, CUgraph *g, int per_thread)
{
	uintptr_t key = 0;
	CUresult r;

	if (mv_init() != 0)
		return CUDA_ERROR_NOT_INITIALIZED;
	if (mv_capture_end(h, per_thread, &key))
		/* h joined another stream's capture: the driver refuses to end it here. */
		return (per_thread ? mv_real.cuStreamEndCapture_ptsz : mv_real.cuStreamEndCapture)(h, g);
	r = (per_thread ? mv_real.cuStreamEndCapture_ptsz : mv_real.cuStreamEndCapture)(h, g);
	if (r == CUDA_SUCCESS && g != NULL && *g != NULL) {
		gset_merge((uintptr_t)*g, key);
		if (gset_embedded((uintptr_t)*g)) {
			int pinned;
			size_t n = gset_copy(key, NULL, 0, &pinned);
			fallback_once(&said_node, "a capture into a child graph node's graph: the buffers it names are "
						  "pinned for good");
			if (n != SIZE_MAX && pin_set(key, n) != CUDA_SUCCESS)
				mv_log(MV_LOG_ERROR, "graph %p: its captured buffers could not be pinned; a launch of "
						     "its parent may fault", (void *)*g);
		}
	}
	if (r != CUDA_ERROR_ILLEGAL_STATE)
		gset_drop(key);
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

/* ---- fork and join: events ---- */

static CUresult event_record(CUevent e, CUstream h, unsigned flags, int with_flags, int per_thread)
{
	CUresult r;

	if (mv_init() != 0)
		return CUDA_ERROR_NOT_INITIALIZED;
	if (with_flags)
		r = (per_thread ? mv_real.cuEventRecordWithFlags_ptsz : mv_real.cuEventRecordWithFlags)(e, h, flags);
	else
		r = (per_thread ? mv_real.cuEventRecord_ptsz : mv_real.cuEventRecord)(e, h);
	/* An external record is a node of the graph, not a point other streams fork from. */
	if (r == CUDA_SUCCESS && !(flags & CU_EVENT_RECORD_EXTERNAL))
		mv_capture_event_recorded(e, h, per_thread);
	return r;
}

MV_EXPORT CUresult cuEventRecord(CUevent e, CUstream h)
{
	return event_record(e, h, 0, 0, 0);
}

MV_EXPORT CUresult cuEventRecord_ptsz(CUevent e, CUstream h)
{
	return event_record(e, h, 0, 0, 1);
}

MV_EXPORT CUresult cuEventRecordWithFlags(CUevent e, CUstream h, unsigned int flags)
{
	return event_record(e, h, flags, 1, 0);
}

MV_EXPORT CUresult cuEventRecordWithFlags_ptsz(CUevent e, CUstream h, unsigned int flags)
{
	return event_record(e, h, flags, 1, 1);
}

/* A stream that waits on an event of a capture joins that capture: marked first, as a stream that
 * begins one is (mv_capture_prepare), since an event of memvirt's recorded on it from then on would
 * be part of the graph. */
static CUresult stream_wait_event(CUstream h, CUevent e, unsigned flags, int per_thread)
{
	uintptr_t key;
	int joins, marked = 0;
	CUresult r;

	if (mv_init() != 0)
		return CUDA_ERROR_NOT_INITIALIZED;
	joins = mv_capture_event_key(e, &key) && !mv_capturing(h, per_thread);
	if (joins)
		marked = mv_capture_prepare(h, per_thread);
	r = (per_thread ? mv_real.cuStreamWaitEvent_ptsz : mv_real.cuStreamWaitEvent)(h, e, flags);
	if (joins && r == CUDA_SUCCESS) {
		/* The driver says whether it joined: a handle memvirt kept may name an event destroyed
		 * since and made again, whose wait joins nothing. */
		CUstreamCaptureStatus st = CU_STREAM_CAPTURE_STATUS_NONE;
		CUstream q = h != NULL ? h : per_thread ? CU_STREAM_PER_THREAD : CU_STREAM_LEGACY;
		joins = mv_real.cuStreamIsCapturing(q, &st) == CUDA_SUCCESS && st == CU_STREAM_CAPTURE_STATUS_ACTIVE &&
			mv_capture_join(h, per_thread, key) == 0;
	}
	if (!(joins && r == CUDA_SUCCESS) && marked)
		mv_capture_unprepare(h, per_thread);
	return r;
}

MV_EXPORT CUresult cuStreamWaitEvent(CUstream h, CUevent e, unsigned int flags)
{
	return stream_wait_event(h, e, flags, 0);
}

MV_EXPORT CUresult cuStreamWaitEvent_ptsz(CUstream h, CUevent e, unsigned int flags)
{
	return stream_wait_event(h, e, flags, 1);
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

/* The words a node's parameters name; SIZE_MAX for a batch node memvirt cannot follow. */
static size_t node_params_words(const struct node_args *a, uint64_t *words)
{
	if (a->call <= NC_EXEC_SET_KERNEL)
		return kernel_node_words(a->p, words);
	if (a->call <= NC_EXEC_SET_MEMCPY)
		return copy_words(a->p, words);
	if (a->call <= NC_EXEC_SET_MEMSET)
		return memset_words(a->p, words);
	if (a->call <= NC_EXEC_SET_GENERIC)
		return generic_words(a->p, words);
	return batch_words(a->p, words);
}

/* Makes the call, then adds the buffers the node names to its graph's set, or its exec's. A
 * node set in a graph memvirt did not see it added to pins them for good instead. Parameters the
 * driver would refuse (NULL) go to it unread, for its own error. */
static CUresult node_call(struct node_args *a)
{
	enum node_call c = a->call;
	int exec = c == NC_EXEC_SET_KERNEL || c == NC_EXEC_SET_MEMCPY || c == NC_EXEC_SET_MEMSET ||
		   c == NC_EXEC_SET_GENERIC || c == NC_EXEC_SET_BATCH;
	int add = c == NC_ADD_KERNEL || c == NC_ADD_MEMCPY || c == NC_ADD_MEMSET || c == NC_ADD_GENERIC ||
		  c == NC_ADD_BATCH;
	uintptr_t key;
	size_t n;
	CUresult r;

	if (mv_init() != 0)
		return CUDA_ERROR_NOT_INITIALIZED;
	if (a->p == NULL)
		return do_node(a);
	if ((n = node_params_words(a, node_words)) == SIZE_MAX) {
		mv_log(MV_LOG_ERROR, "a graph node of more than %d memory operations refused: it cannot be made safe",
		       MV_MAX_SCAN_WORDS);
		return CUDA_ERROR_NOT_SUPPORTED;
	}
	n = to_buffers(node_words, n);
	key = exec ? (uintptr_t)a->e : add ? (uintptr_t)a->g : gnode_graph(a->node);
	if (key == 0 || (!exec && gset_embedded(key))) {
		fallback_once(&said_node, "a graph node memvirt did not see added, or one in a child graph node's "
					  "graph, is added or set: the buffers it names are pinned for good");
		return mv_submit_pinned(node_words, n, do_node, a);
	}
	/* Before the call, for an exec: one launching on another thread may name the new buffers. */
	if (!add)
		gset_add(key, node_words, n);
	r = do_node(a);
	if (add && r == CUDA_SUCCESS && a->out != NULL) {
		gset_add(key, node_words, n);
		gnode_put(*a->out, a->g);
	}
	return r;
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

/* ---- graphs, execs and their sets ---- */

MV_EXPORT CUresult cuGraphDestroy(CUgraph g)
{
	if (mv_init() != 0)
		return CUDA_ERROR_NOT_INITIALIZED;
	gset_drop((uintptr_t)g);
	gnode_forget(0, (uintptr_t)g);
	return mv_real.cuGraphDestroy(g);
}

MV_EXPORT CUresult cuGraphDestroyNode(CUgraphNode node)
{
	if (mv_init() != 0)
		return CUDA_ERROR_NOT_INITIALIZED;
	gnode_forget((uintptr_t)node, 0);
	return mv_real.cuGraphDestroyNode(node);
}

/* The graph a child graph node owns: changed, it changes the parent. */
MV_EXPORT CUresult cuGraphChildGraphNodeGetGraph(CUgraphNode node, CUgraph *out)
{
	CUresult r;
	struct gset *s;

	if (mv_init() != 0)
		return CUDA_ERROR_NOT_INITIALIZED;
	r = mv_real.cuGraphChildGraphNodeGetGraph(node, out);
	if (r == CUDA_SUCCESS && out != NULL && *out != NULL) {
		pthread_mutex_lock(&gset_lock);
		if ((s = gset_get((uintptr_t)*out, 1)) != NULL)
			s->embedded = 1;
		pthread_mutex_unlock(&gset_lock);
		if (s == NULL)
			mv_log(MV_LOG_ERROR, "graph %p: no memory to remember it is a child graph node's", (void *)*out);
	}
	return r;
}

MV_EXPORT CUresult cuGraphClone(CUgraph *out, CUgraph g)
{
	CUresult r;

	if (mv_init() != 0)
		return CUDA_ERROR_NOT_INITIALIZED;
	r = mv_real.cuGraphClone(out, g);
	if (r == CUDA_SUCCESS && out != NULL)
		gset_merge((uintptr_t)*out, (uintptr_t)g);
	return r;
}

/* The driver copies the child into the node: so does memvirt with its set. */
MV_EXPORT CUresult cuGraphAddChildGraphNode(CUgraphNode *out, CUgraph g, const CUgraphNode *deps, size_t ndeps,
					    CUgraph child)
{
	CUresult r;

	if (mv_init() != 0)
		return CUDA_ERROR_NOT_INITIALIZED;
	r = mv_real.cuGraphAddChildGraphNode(out, g, deps, ndeps, child);
	if (r == CUDA_SUCCESS && out != NULL) {
		gset_merge((uintptr_t)g, (uintptr_t)child);
		gnode_put(*out, g);
	}
	return r;
}

/* ---- graph memory ---- */

/* A memory node of an exec: an alloc node's address and bytes (rounded to the granularity, as the
 * driver backs them), and whether a free node of the same graph frees it; or (bytes 0) a free node
 * of an allocation another graph made. The driver serves graph memory; memvirt charges it against
 * the budget while it is allocated: a launch needs room for all its allocations, gives back those
 * it frees when it completes, and keeps the others charged (in `live`) until the app frees them. */
struct gmem {
	uint64_t va, bytes;
	int freed;
};

/* Allocations that outlived their launch, still charged. Guarded by gset_lock. */
static struct gmem *live;
static size_t nlive, live_cap;

/* Reads an alloc or free node into mem[*m]. */
static void gmem_node(CUgraphNode node, CUgraphNodeType type, struct gmem *mem, size_t *m)
{
	uint64_t gran = mv_dev()->granularity ? mv_dev()->granularity : 1;
	CUDA_MEM_ALLOC_NODE_PARAMS ap;
	CUdeviceptr va;

	if (type == CU_GRAPH_NODE_TYPE_MEM_ALLOC && mv_real.cuGraphMemAllocNodeGetParams != NULL &&
	    mv_real.cuGraphMemAllocNodeGetParams(node, &ap) == CUDA_SUCCESS) {
		mem[(*m)++] = (struct gmem){ap.dptr, (ap.bytesize + gran - 1) / gran * gran, 0};
	} else if (type == CU_GRAPH_NODE_TYPE_MEM_FREE && mv_real.cuGraphMemFreeNodeGetParams != NULL &&
		   mv_real.cuGraphMemFreeNodeGetParams(node, &va) == CUDA_SUCCESS) {
		for (size_t i = 0; i < *m; i++)
			if (mem[i].va == va && mem[i].bytes != 0) {
				mem[i].freed = 1;
				return;
			}
		mem[(*m)++] = (struct gmem){va, 0, 1};
	}
}

/* Finds the memory nodes of g (allocations first, then frees) and keeps them as key's. */
static void gmem_scan(uintptr_t key, CUgraph g)
{
	size_t n = 0, m = 0;
	CUgraphNode *nodes = NULL;
	CUgraphNodeType *types = NULL;
	struct gmem *mem = NULL;
	struct gset *s;

	if (mv_real.cuGraphGetNodes == NULL || mv_real.cuGraphNodeGetType == NULL ||
	    mv_real.cuGraphGetNodes(g, NULL, &n) != CUDA_SUCCESS || n == 0)
		return;
	nodes = calloc(n, sizeof(*nodes));
	types = calloc(n, sizeof(*types));
	mem = calloc(n, sizeof(*mem));
	if (nodes == NULL || types == NULL || mem == NULL) {
		mv_log(MV_LOG_ERROR, "graph %p: no memory to read its memory nodes; its allocations are not "
				     "charged against the budget", (void *)g);
	} else if (mv_real.cuGraphGetNodes(g, nodes, &n) == CUDA_SUCCESS) {
		for (size_t i = 0; i < n; i++)
			if (mv_real.cuGraphNodeGetType(nodes[i], &types[i]) != CUDA_SUCCESS)
				types[i] = CU_GRAPH_NODE_TYPE_EMPTY;
		for (size_t i = 0; i < n; i++)
			if (types[i] == CU_GRAPH_NODE_TYPE_MEM_ALLOC)
				gmem_node(nodes[i], types[i], mem, &m);
		for (size_t i = 0; i < n; i++)
			if (types[i] == CU_GRAPH_NODE_TYPE_MEM_FREE)
				gmem_node(nodes[i], types[i], mem, &m);
	}
	free(nodes);
	free(types);
	pthread_mutex_lock(&gset_lock);
	if (m > 0 && (s = gset_get(key, 1)) != NULL) {
		free(s->mem);
		s->mem = mem;
		s->nmem = m;
		mem = NULL;
	}
	pthread_mutex_unlock(&gset_lock);
	free(mem);
}

/* The bytes a launch of key allocates, and (*kept) those it does not free. */
static uint64_t gmem_bytes(uintptr_t key, uint64_t *kept)
{
	struct gset *s;
	uint64_t all = 0;

	*kept = 0;
	pthread_mutex_lock(&gset_lock);
	for (size_t i = 0; (s = gset_get(key, 0)) != NULL && i < s->nmem; i++) {
		all += s->mem[i].bytes;
		if (!s->mem[i].freed)
			*kept += s->mem[i].bytes;
	}
	pthread_mutex_unlock(&gset_lock);
	return all;
}

/* Takes va out of the live allocations: its bytes, 0 when it is none. With gset_lock held. */
static uint64_t live_take(uint64_t va)
{
	for (size_t i = 0; i < nlive; i++)
		if (live[i].va == va) {
			uint64_t bytes = live[i].bytes;
			live[i] = live[--nlive];
			return bytes;
		}
	return 0;
}

static void live_put(uint64_t va, uint64_t bytes)
{
	if (nlive == live_cap) {
		size_t cap = live_cap ? 2 * live_cap : 16;
		struct gmem *v = realloc(live, cap * sizeof(*v));
		if (v == NULL) {
			mv_log(MV_LOG_ERROR, "graph allocation %#llx: no memory to track it; its %llu bytes stay "
					     "charged", (unsigned long long)va, (unsigned long long)bytes);
			return;
		}
		live = v;
		live_cap = cap;
	}
	live[nlive++] = (struct gmem){va, bytes, 0};
}

/* Runs on the driver's thread when the stream gets past the launch. It takes mv_lock, which no
 * thread holds while it waits for the device, so the stream is never held up for long. */
static void CUDA_CB give_back(void *bytes)
{
	mv_uncharge((uint64_t)(uintptr_t)bytes);
}

/* After a launch of key on h: what it frees is given back when the stream gets past it, what it
 * keeps stays charged until the app frees it (a charge an earlier launch left for the same
 * address is given back: only an exec instantiated to free its allocations at each launch gets
 * that far). */
static void gmem_launched(uintptr_t key, CUstream h, int per_thread, uint64_t all, uint64_t kept)
{
	uint64_t back = all - kept;
	struct gset *s;
	CUresult r = CUDA_ERROR_NOT_SUPPORTED;

	pthread_mutex_lock(&gset_lock);
	for (size_t i = 0; (s = gset_get(key, 0)) != NULL && i < s->nmem; i++) {
		if (s->mem[i].bytes == 0 || !s->mem[i].freed)
			back += live_take(s->mem[i].va);
		if (s->mem[i].bytes != 0 && !s->mem[i].freed)
			live_put(s->mem[i].va, s->mem[i].bytes);
	}
	pthread_mutex_unlock(&gset_lock);
	if (back == 0)
		return;
	if (mv_real.cuLaunchHostFunc != NULL && mv_real.cuLaunchHostFunc_ptsz != NULL)
		r = (per_thread ? mv_real.cuLaunchHostFunc_ptsz : mv_real.cuLaunchHostFunc)(h, give_back,
											     (void *)(uintptr_t)back);
	if (r != CUDA_SUCCESS) {
		/* No callback: wait for the launch instead. */
		mv_real.cuStreamSynchronize(h == NULL && per_thread ? CU_STREAM_PER_THREAD : h);
		mv_uncharge(back);
	}
}

CUresult mv_graph_mem_free(CUdeviceptr va, CUstream h, int per_thread, int sync)
{
	uint64_t bytes;
	CUresult r;

	pthread_mutex_lock(&gset_lock);
	bytes = live_take(va);
	pthread_mutex_unlock(&gset_lock);
	if (bytes == 0)
		return CUDA_ERROR_NOT_FOUND;
	if (sync)
		r = mv_real.cuMemFree_v2(va);
	else
		r = (per_thread ? mv_real.cuMemFreeAsync_ptsz : mv_real.cuMemFreeAsync)(va, h);
	pthread_mutex_lock(&gset_lock);
	if (r != CUDA_SUCCESS)
		live_put(va, bytes);
	pthread_mutex_unlock(&gset_lock);
	if (r == CUDA_SUCCESS)
		mv_uncharge(bytes);
	return r;
}

/* An exec's set starts as its graph's, whatever the driver answers (a superset is safe), and its
 * memory nodes are its graph's. */
static CUresult instantiated(CUgraphExec *e, CUgraph g, CUresult r)
{
	if (r == CUDA_SUCCESS && e != NULL) {
		gset_merge((uintptr_t)*e, (uintptr_t)g);
		gmem_scan((uintptr_t)*e, g);
	}
	return r;
}

MV_EXPORT CUresult cuGraphInstantiateWithFlags(CUgraphExec *e, CUgraph g, unsigned long long flags)
{
	if (mv_init() != 0)
		return CUDA_ERROR_NOT_INITIALIZED;
	return instantiated(e, g, mv_real.cuGraphInstantiateWithFlags(e, g, flags));
}

MV_EXPORT CUresult cuGraphInstantiateWithParams(CUgraphExec *e, CUgraph g, CUDA_GRAPH_INSTANTIATE_PARAMS *p)
{
	if (mv_init() != 0)
		return CUDA_ERROR_NOT_INITIALIZED;
	return instantiated(e, g, mv_real.cuGraphInstantiateWithParams(e, g, p));
}

MV_EXPORT CUresult cuGraphInstantiateWithParams_ptsz(CUgraphExec *e, CUgraph g, CUDA_GRAPH_INSTANTIATE_PARAMS *p)
{
	if (mv_init() != 0)
		return CUDA_ERROR_NOT_INITIALIZED;
	return instantiated(e, g, mv_real.cuGraphInstantiateWithParams_ptsz(e, g, p));
}

MV_EXPORT CUresult cuGraphInstantiate_v2(CUgraphExec *e, CUgraph g, CUgraphNode *err, char *log, size_t len)
{
	if (mv_init() != 0)
		return CUDA_ERROR_NOT_INITIALIZED;
	return instantiated(e, g, mv_real.cuGraphInstantiate_v2(e, g, err, log, len));
}

/* An update takes its parameters from g: the exec names what g names too. */
MV_EXPORT CUresult cuGraphExecUpdate_v2(CUgraphExec e, CUgraph g, CUgraphExecUpdateResultInfo *info)
{
	if (mv_init() != 0)
		return CUDA_ERROR_NOT_INITIALIZED;
	gset_merge((uintptr_t)e, (uintptr_t)g);
	return mv_real.cuGraphExecUpdate_v2(e, g, info);
}

MV_EXPORT CUresult cuGraphExecChildGraphNodeSetParams(CUgraphExec e, CUgraphNode node, CUgraph child)
{
	if (mv_init() != 0)
		return CUDA_ERROR_NOT_INITIALIZED;
	gset_merge((uintptr_t)e, (uintptr_t)child);
	return mv_real.cuGraphExecChildGraphNodeSetParams(e, node, child);
}

MV_EXPORT CUresult cuGraphExecDestroy(CUgraphExec e)
{
	if (mv_init() != 0)
		return CUDA_ERROR_NOT_INITIALIZED;
	gset_drop((uintptr_t)e);
	return mv_real.cuGraphExecDestroy(e);
}

/* ---- launches ---- */

struct graph_launch_args {
	CUgraphExec e;
	CUstream h;
	int per_thread;
};

static CUresult do_graph_launch(void *arg)
{
	struct graph_launch_args *a = arg;
	return (a->per_thread ? mv_real.cuGraphLaunch_ptsz : mv_real.cuGraphLaunch)(a->e, a->h);
}

static __thread uint64_t launch_words[MV_MAX_SCAN_WORDS];

/* The bytes of the large buffers the words name, with the bytes the launch allocates, against the
 * budget: a launch that could never fit is refused, naming them. Where the safety net maps paged-out
 * buffers, only what it allocates must fit: the buffers it names that do not are reached in host
 * memory (partial residency). */
static CUresult check_fits(CUgraphExec e, const uint64_t *words, size_t n, uint64_t alloc)
{
	uint64_t bytes = alloc, budget;

	if (mv_dev()->host_vmm && alloc <= mv_budget_now())
		return CUDA_SUCCESS;

	mv_lock();
	for (size_t i = 0; i < n; i++) {
		struct mv_buf *b = mv_registry_find(words[i]);
		if (b != NULL && b->kind == MV_KIND_LARGE)
			bytes += b->span;
	}
	mv_unlock();
	budget = mv_budget_now();
	if (bytes <= budget)
		return CUDA_SUCCESS;
	mv_log(MV_LOG_ERROR, "graph exec %p names %llu bytes of buffers, more than the budget of %llu bytes less "
			     "the %llu bytes it allocates: launch refused",
	       (void *)e, (unsigned long long)(bytes - alloc), (unsigned long long)budget, (unsigned long long)alloc);
	return CUDA_ERROR_OUT_OF_MEMORY;
}

/* Whether what a launch in the calling thread's context allocates is charged: memvirt pages its
 * device (set up here, as an allocation would, when this is the process's first call that needs
 * it). Another device's, or one the budget leaves out, is the driver's. */
static int charged_here(void)
{
	CUresult r = mv_device_init();

	return r == CUDA_SUCCESS && !mv_not_paged();
}

/* A launch needs room for what it allocates (nothing while h captures: the launch is recorded,
 * not run), charged before it and given back as gmem_launched says. */
static CUresult launch_charged(struct graph_launch_args *a, const uint64_t *words, size_t n)
{
	uint64_t kept = 0, all = 0;
	CUresult r;

	if (!mv_capturing(a->h, a->per_thread) && (all = gmem_bytes((uintptr_t)a->e, &kept)) > 0 && !charged_here())
		all = kept = 0;
	r = check_fits(a->e, words, n, all);

	if (r != CUDA_SUCCESS)
		return r;
	if (all > 0 && (r = mv_make_room(all)) != CUDA_SUCCESS) {
		mv_log(MV_LOG_ERROR, "graph exec %p allocates %llu bytes, and no room can be made for them: launch "
				     "refused", (void *)a->e, (unsigned long long)all);
		return r;
	}
	r = mv_submit(a->h, a->per_thread, words, n, do_graph_launch, a, (uintptr_t)a->e);
	if (all > 0 && r != CUDA_SUCCESS)
		mv_uncharge(all);
	else if (all > 0)
		gmem_launched((uintptr_t)a->e, a->h, a->per_thread, all, kept);
	return r;
}

/* One launch naming the exec's set: brought in before it, held until it completes on h. */
static CUresult graph_launch(CUgraphExec e, CUstream h, int per_thread)
{
	struct graph_launch_args a = {e, h, per_thread};
	int pinned = 0;
	size_t n;
	CUresult r;

	if (mv_init() != 0)
		return CUDA_ERROR_NOT_INITIALIZED;
	n = gset_copy((uintptr_t)e, launch_words, MV_MAX_SCAN_WORDS, &pinned);
	if (n == SIZE_MAX) {
		fallback_once(&said_unknown, "a graph exec memvirt did not see instantiated (or could not follow) is "
					     "launched: its launches name every buffer memvirt serves");
		n = mv_dev()->host_vmm ? 0 : mv_registry_large(launch_words, MV_MAX_SCAN_WORDS);
	} else if (n > MV_MAX_NAMED) {
		fallback_once(&said_many, "a graph exec names more buffers than one launch can hold: they are "
					  "pinned for good");
		r = pinned ? CUDA_SUCCESS : pin_set((uintptr_t)e, n);
		return r != CUDA_SUCCESS ? r : launch_charged(&a, NULL, 0);
	}
	return launch_charged(&a, launch_words, n);
}

MV_EXPORT CUresult cuGraphLaunch(CUgraphExec e, CUstream h)
{
	return graph_launch(e, h, 0);
}

MV_EXPORT CUresult cuGraphLaunch_ptsz(CUgraphExec e, CUstream h)
{
	return graph_launch(e, h, 1);
}
