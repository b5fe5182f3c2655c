/* Streams, events and the virtual clock.
 *
 * Each stream runs its operations in order on a worker thread of its own, so work on different
 * streams really runs concurrently and a missing event shows up as wrong data. The virtual clock is
 * computed when an operation is enqueued, in API call order, so it is the same on every run: an
 * operation starts when its stream's previous one ends, when the host has submitted it, when its
 * engine (compute, H2D copy, D2H copy) is free, and when what it waits for has ended; each engine
 * serves operations in the order they were issued. */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tests/simcuda/internal.h"

pthread_mutex_t sim_sched_lock = PTHREAD_MUTEX_INITIALIZER;
pthread_cond_t sim_sched_cond = PTHREAD_COND_INITIALIZER;
/* How many threads wait on sim_sched_cond for a completion: completions broadcast only then. */
static int done_waiters;

/* Guarded by sim_sched_lock. */
static struct sim_stream *all_streams;
static uint64_t host_vnow;
static uint64_t engine_free[SIM_MAX_DEVICES][SIM_NENGINES]; /* each device's own engines */

struct sim_event {
	uint32_t magic;
	unsigned flags;
	struct sim_ctx *ctx; /* current when it was made: the only context its records may be in */
	uint64_t epoch;      /* ctx's then: an end of ctx since then destroyed the event */
	/* Guarded by sim_sched_lock: the last record. */
	int recorded;
	struct sim_stream *stream;
	uint64_t seq;
	uint64_t vtime;
	/* Recorded last in a capture: its sequence's id (0: not), the stream and its capture_ops then. */
	uint64_t cap_id;
	struct sim_stream *cap_stream;
	uint64_t cap_ops;
	/* An interprocess event's shared state, which replaces the fields above; NULL otherwise. */
	struct sim_ipc_event *shared;
};

static struct sim_event *event_of(CUevent h)
{
	struct sim_event *e = (struct sim_event *)h;
	if (e == NULL || e->magic != SIM_MAGIC_EVENT || sim_ctx_ended_since(e->ctx, e->epoch))
		return NULL;
	return e;
}

/* Each thread's per-thread default streams, one per context it used. */
#define PTDS_MAX 8
static __thread struct {
	struct sim_ctx *ctx;
	struct sim_stream *stream;
} ptds[PTDS_MAX];

/* ---- cost model ---- */

static uint64_t ns_for(double amount, double rate)
{
	return rate > 0 ? (uint64_t)(amount / rate * 1e9 + 0.5) : 0;
}

enum sim_engine_id sim_copy_engine(enum sim_copy_dir dir)
{
	switch (dir) {
	case SIM_COPY_H2D:
	case SIM_COPY_H2H:
		return SIM_ENGINE_H2D;
	case SIM_COPY_D2H:
		return SIM_ENGINE_D2H;
	default:
		return SIM_ENGINE_COMPUTE;
	}
}

uint64_t sim_cost_copy_ns(enum sim_copy_dir dir, uint64_t bytes)
{
	switch (dir) {
	case SIM_COPY_H2D:
	case SIM_COPY_H2H:
		return ns_for((double)bytes, sim_cfg.h2d_bps);
	case SIM_COPY_D2H:
		return ns_for((double)bytes, sim_cfg.d2h_bps);
	default:
		/* A device-to-device copy reads and writes every byte. */
		return ns_for(2.0 * (double)bytes, sim_cfg.dram_bps);
	}
}

uint64_t sim_cost_peer_ns(uint64_t bytes)
{
	return ns_for((double)bytes, sim_cfg.peer_bps);
}

uint64_t sim_cost_kernel_ns(double flops, double bytes)
{
	return SIM_MAX(ns_for(flops, sim_cfg.flops), ns_for(bytes, sim_cfg.dram_bps));
}

uint64_t sim_cost_kernel_split_ns(double flops, double bytes, double host_bytes)
{
	return SIM_MAX(sim_cost_kernel_ns(flops, bytes - host_bytes), ns_for(host_bytes, sim_cfg.h2d_bps));
}

/* ---- workers ---- */

static int copy_body(void *arg)
{
	struct sim_op *op = arg;
	memmove((void *)(uintptr_t)op->u.c.dst, (const void *)(uintptr_t)op->u.c.src, op->u.c.bytes);
	return 0;
}

static int memset_body(void *arg)
{
	struct sim_op *op = arg;
	uint64_t n = op->u.m.n;

	if (op->u.m.elem == 1) {
		memset((void *)(uintptr_t)op->u.m.dst, (int)(op->u.m.value & 0xff), n);
	} else if (op->u.m.elem == 2) {
		uint16_t *p = (uint16_t *)(uintptr_t)op->u.m.dst;
		for (uint64_t i = 0; i < n; i++)
			p[i] = (uint16_t)op->u.m.value;
	} else {
		uint32_t *p = (uint32_t *)(uintptr_t)op->u.m.dst;
		for (uint64_t i = 0; i < n; i++)
			p[i] = op->u.m.value;
	}
	return 0;
}

/* A copy or memset is carried out by the stream's device, which needs access to what it touches. */
static CUresult exec_copy(const struct sim_ctx *ctx, struct sim_op *op)
{
	/* A side named as host memory may still be a device address (host-located VMM memory, say):
	 * then it is checked as one. */
	int dst_dev = op->u.c.dir == SIM_COPY_H2D || op->u.c.dir == SIM_COPY_D2D || sim_is_device_addr(op->u.c.dst);
	int src_dev = op->u.c.dir == SIM_COPY_D2H || op->u.c.dir == SIM_COPY_D2D || sim_is_device_addr(op->u.c.src);

	/* Pinned host memory is a valid device address too (unified addressing). */
	if (dst_dev && sim_mem_check_copy(ctx, op->u.c.dst, op->u.c.bytes, 3) != 0)
		return CUDA_ERROR_ILLEGAL_ADDRESS;
	if (src_dev && sim_mem_check_copy(ctx, op->u.c.src, op->u.c.bytes, 1) != 0)
		return CUDA_ERROR_ILLEGAL_ADDRESS;
	if (sim_cfg.model_only)
		return CUDA_SUCCESS;
	return sim_guarded(copy_body, op) == 0 ? CUDA_SUCCESS : CUDA_ERROR_ILLEGAL_ADDRESS;
}

static CUresult exec_memset(const struct sim_ctx *ctx, struct sim_op *op)
{
	if (sim_mem_check_copy(ctx, op->u.m.dst, op->u.m.n * op->u.m.elem, 3) != 0)
		return CUDA_ERROR_ILLEGAL_ADDRESS;
	if (sim_cfg.model_only)
		return CUDA_SUCCESS;
	return sim_guarded(memset_body, op) == 0 ? CUDA_SUCCESS : CUDA_ERROR_ILLEGAL_ADDRESS;
}

static CUresult exec_op(struct sim_stream *s, struct sim_op *op)
{
	CUresult r = CUDA_SUCCESS;

	/* An interprocess event's op always runs, so that its reference is dropped. */
	if (op->kind == SIM_OP_IPCEV) {
		sim_ipc_event_exec(op, __atomic_load_n(&s->ctx->sticky, __ATOMIC_ACQUIRE) != CUDA_SUCCESS);
		return CUDA_SUCCESS;
	}
	/* A context with a sticky error runs nothing more, as a faulted GPU context does. */
	if (__atomic_load_n(&s->ctx->sticky, __ATOMIC_ACQUIRE) != CUDA_SUCCESS)
		return CUDA_SUCCESS;
	if (op->engine < SIM_NENGINES && sim_cfg.delay_us[op->engine] > 0) {
		struct timespec ts = {
			.tv_sec = (time_t)(sim_cfg.delay_us[op->engine] / 1000000),
			.tv_nsec = (long)(sim_cfg.delay_us[op->engine] % 1000000) * 1000,
		};
		nanosleep(&ts, NULL);
	}
	switch (op->kind) {
	case SIM_OP_KERNEL:
		r = sim_kernel_exec(s->ctx, op);
		break;
	case SIM_OP_COPY:
		r = exec_copy(s->ctx, op);
		break;
	case SIM_OP_MEMSET:
		r = exec_memset(s->ctx, op);
		break;
	case SIM_OP_HOSTFN:
		op->u.h.fn(op->u.h.data);
		break;
	case SIM_OP_FREE:
		pthread_mutex_lock(&sim_mem_lock);
		sim_alloc_free(op->u.f.dptr);
		pthread_mutex_unlock(&sim_mem_lock);
		break;
	case SIM_OP_GMAP:
	case SIM_OP_GUNMAP:
		sim_galloc_map(op->u.f.dptr, op->kind == SIM_OP_GMAP);
		break;
	case SIM_OP_NOP:
	case SIM_OP_IPCEV:
		break;
	}
	return r;
}

static int deps_done(const struct sim_op *op)
{
	for (int i = 0; i < op->ndeps; i++)
		if (op->deps[i].stream->done_seq < op->deps[i].seq)
			return 0;
	return 1;
}

static void *worker(void *arg)
{
	struct sim_stream *s = arg;

	pthread_mutex_lock(&sim_sched_lock);
	for (;;) {
		struct sim_op *op;
		CUresult r;

		while (s->head == NULL && !s->dying)
			pthread_cond_wait(&s->queued, &sim_sched_lock);
		if (s->head == NULL)
			break;
		op = s->head;
		while (!deps_done(op)) {
			done_waiters++;
			pthread_cond_wait(&sim_sched_cond, &sim_sched_lock);
			done_waiters--;
		}
		pthread_mutex_unlock(&sim_sched_lock);
		r = exec_op(s, op);
		if (r != CUDA_SUCCESS)
			sim_ctx_fault(s->ctx, r);
		pthread_mutex_lock(&sim_sched_lock);
		s->head = op->next;
		if (s->head == NULL)
			s->tail = NULL;
		s->done_seq = op->seq;
		if (done_waiters > 0)
			pthread_cond_broadcast(&sim_sched_cond);
		if (op->kind == SIM_OP_COPY)
			free(op->u.c.staged);
		free(op->deps);
		free(op);
	}
	pthread_mutex_unlock(&sim_sched_lock);
	return NULL;
}

/* ---- submission ---- */

struct sim_op *sim_op_new(enum sim_op_kind kind)
{
	struct sim_op *op = calloc(1, sizeof(*op));
	if (op != NULL)
		op->kind = kind;
	return op;
}

static int add_dep(struct sim_op *op, struct sim_stream *t, uint64_t seq)
{
	struct sim_dep *d = realloc(op->deps, (size_t)(op->ndeps + 1) * sizeof(*d));
	if (d == NULL)
		return -1;
	op->deps = d;
	op->deps[op->ndeps++] = (struct sim_dep){t, seq};
	return 0;
}

static int pending(const struct sim_stream *t)
{
	return t->enq_seq > t->done_seq;
}

/* Queues op on s; it occupies the lanes given (none when nlanes is 0), each a device's engine. */
static void submit(struct sim_stream *s, struct sim_op *op, uint64_t *const lanes[], int nlanes, uint64_t cost_ns)
{
	uint64_t start;

	pthread_mutex_lock(&sim_sched_lock);
	start = SIM_MAX(s->vtime, op->vready);
	/* The NULL stream waits for all blocking streams of its context, and they wait for it. */
	if (s->legacy) {
		for (struct sim_stream *t = all_streams; t != NULL; t = t->next_all) {
			if (t == s || t->ctx != s->ctx || (t->flags & CU_STREAM_NON_BLOCKING))
				continue;
			start = SIM_MAX(start, t->vtime);
			if (pending(t))
				add_dep(op, t, t->enq_seq);
		}
	} else if (!(s->flags & CU_STREAM_NON_BLOCKING) && s->ctx->legacy != NULL) {
		struct sim_stream *l = s->ctx->legacy;
		start = SIM_MAX(start, l->vtime);
		if (pending(l))
			add_dep(op, l, l->enq_seq);
	}
	if (nlanes > 0) {
		host_vnow += sim_cfg.launch_ns;
		start = SIM_MAX(start, host_vnow);
		for (int i = 0; i < nlanes; i++)
			start = SIM_MAX(start, *lanes[i]);
		for (int i = 0; i < nlanes; i++)
			*lanes[i] = start + cost_ns;
	}
	s->vtime = start + cost_ns;
	op->seq = ++s->enq_seq;
	op->next = NULL;
	if (s->tail != NULL)
		s->tail->next = op;
	else
		s->head = op;
	s->tail = op;
	pthread_cond_signal(&s->queued);
	pthread_mutex_unlock(&sim_sched_lock);
}

void sim_stream_submit(struct sim_stream *s, struct sim_op *op, enum sim_engine_id engine, uint64_t cost_ns)
{
	uint64_t *lane = engine < SIM_NENGINES ? &engine_free[s->ctx->dev][engine] : NULL;

	op->engine = engine;
	submit(s, op, &lane, lane != NULL, cost_ns);
}

void sim_stream_submit_peer(struct sim_stream *s, struct sim_op *op, int src_dev, int dst_dev, uint64_t cost_ns)
{
	uint64_t *lanes[2] = {&engine_free[src_dev][SIM_ENGINE_D2H], &engine_free[dst_dev][SIM_ENGINE_H2D]};

	op->engine = SIM_ENGINE_D2H;
	submit(s, op, lanes, 2, cost_ns);
}

/* Waits, with sim_sched_lock held, until t has completed seq; then the host clock catches up. */
static void wait_locked(struct sim_stream *t, uint64_t seq, uint64_t vtime)
{
	while (t->done_seq < seq) {
		done_waiters++;
		pthread_cond_wait(&sim_sched_cond, &sim_sched_lock);
		done_waiters--;
	}
	host_vnow = SIM_MAX(host_vnow, vtime);
}

void sim_stream_wait_all(struct sim_stream *s)
{
	pthread_mutex_lock(&sim_sched_lock);
	wait_locked(s, s->enq_seq, s->vtime);
	pthread_mutex_unlock(&sim_sched_lock);
}

void sim_streams_idle(struct sim_ctx *ctx)
{
	pthread_mutex_lock(&sim_sched_lock);
	for (struct sim_stream *t = all_streams; t != NULL; t = t->next_all)
		if (ctx == NULL || t->ctx == ctx)
			wait_locked(t, t->enq_seq, t->vtime);
	pthread_mutex_unlock(&sim_sched_lock);
}

/* ---- stream objects ---- */

/* Creates a stream and starts its worker. Called with sim_sched_lock held. */
static struct sim_stream *stream_new(struct sim_ctx *ctx, unsigned flags, int priority)
{
	struct sim_stream *s = calloc(1, sizeof(*s));
	pthread_attr_t attr;

	if (s == NULL)
		return NULL;
	s->magic = SIM_MAGIC_STREAM;
	pthread_cond_init(&s->queued, NULL);
	s->ctx = ctx;
	s->epoch = sim_ctx_epoch(ctx);
	s->flags = flags;
	s->priority = priority;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&s->thread, &attr, worker, s) != 0) {
		pthread_attr_destroy(&attr);
		free(s);
		return NULL;
	}
	pthread_attr_destroy(&attr);
	/* Streams are never freed: events and dependencies may name them after destruction. */
	s->next_all = all_streams;
	all_streams = s;
	return s;
}

static struct sim_stream *legacy_of(struct sim_ctx *ctx)
{
	struct sim_stream *s;

	pthread_mutex_lock(&sim_sched_lock);
	if (ctx->legacy == NULL) {
		ctx->legacy = stream_new(ctx, 0, 0);
		if (ctx->legacy != NULL)
			ctx->legacy->legacy = 1;
	}
	s = ctx->legacy;
	pthread_mutex_unlock(&sim_sched_lock);
	return s;
}

static struct sim_stream *per_thread_of(struct sim_ctx *ctx)
{
	int i;

	for (i = 0; i < PTDS_MAX && ptds[i].ctx != NULL; i++)
		if (ptds[i].ctx == ctx)
			return ptds[i].stream;
	if (i == PTDS_MAX)
		return NULL;
	pthread_mutex_lock(&sim_sched_lock);
	ptds[i].stream = stream_new(ctx, 0, 0);
	pthread_mutex_unlock(&sim_sched_lock);
	if (ptds[i].stream == NULL)
		return NULL;
	ptds[i].stream->per_thread = 1;
	ptds[i].ctx = ctx;
	return ptds[i].stream;
}

CUresult sim_stream_resolve(CUstream h, int per_thread, struct sim_stream **out)
{
	struct sim_ctx *ctx = sim_ctx_current();
	struct sim_stream *s;
	CUresult r;

	if (h == NULL)
		h = per_thread ? CU_STREAM_PER_THREAD : CU_STREAM_LEGACY;
	if (h == CU_STREAM_LEGACY || h == CU_STREAM_PER_THREAD) {
		if (ctx == NULL)
			return CUDA_ERROR_INVALID_CONTEXT;
		s = h == CU_STREAM_LEGACY ? legacy_of(ctx) : per_thread_of(ctx);
		if (s == NULL)
			return CUDA_ERROR_OUT_OF_MEMORY;
		*out = s;
		return CUDA_SUCCESS;
	}
	s = (struct sim_stream *)h;
	if (s->magic != SIM_MAGIC_STREAM)
		return CUDA_ERROR_INVALID_HANDLE;
	*out = s;
	r = sim_ctx_check(s->ctx);
	/* Made before its context's last end, it died with it. */
	if (r == CUDA_SUCCESS && sim_ctx_ended_since(s->ctx, s->epoch))
		r = CUDA_ERROR_INVALID_HANDLE;
	return r;
}

CUresult sim_enter_stream(CUstream h, int per_thread, struct sim_stream **out)
{
	CUresult r = sim_enter_ctx(NULL);

	if (r != CUDA_SUCCESS)
		return r;
	return sim_stream_resolve(h, per_thread, out);
}

SIM_EXPORT CUresult cuStreamCreateWithPriority(CUstream *ph, unsigned int flags, int priority)
{
	struct sim_ctx *ctx;
	struct sim_stream *s;
	CUresult r = sim_enter_ctx(&ctx);

	if (r != CUDA_SUCCESS)
		return r;
	if (ph == NULL || (flags & ~(unsigned)CU_STREAM_NON_BLOCKING))
		return CUDA_ERROR_INVALID_VALUE;
	/* Priorities outside [-5, 0] are clamped, as the driver documents. */
	priority = SIM_MAX(-5, SIM_MIN(0, priority));
	pthread_mutex_lock(&sim_sched_lock);
	s = stream_new(ctx, flags, priority);
	pthread_mutex_unlock(&sim_sched_lock);
	if (s == NULL)
		return CUDA_ERROR_OUT_OF_MEMORY;
	*ph = (CUstream)s;
	return CUDA_SUCCESS;
}

/* What the stream getters read. */
enum stream_attr { STREAM_CTX, STREAM_FLAGS, STREAM_PRIORITY };

static CUresult stream_get(CUstream h, int per_thread, enum stream_attr what, void *out)
{
	struct sim_stream *s;
	CUresult r = sim_enter_stream(h, per_thread, &s);

	if (r != CUDA_SUCCESS)
		return r;
	if (out == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	switch (what) {
	case STREAM_CTX: *(CUcontext *)out = (CUcontext)s->ctx; break;
	case STREAM_FLAGS: *(unsigned int *)out = s->flags; break;
	case STREAM_PRIORITY: *(int *)out = s->priority; break;
	}
	return CUDA_SUCCESS;
}

SIM_EXPORT CUresult cuStreamGetCtx(CUstream h, CUcontext *pctx)
{
	return stream_get(h, 0, STREAM_CTX, pctx);
}

SIM_EXPORT CUresult cuStreamGetCtx_ptsz(CUstream h, CUcontext *pctx)
{
	return stream_get(h, 1, STREAM_CTX, pctx);
}

SIM_EXPORT CUresult cuStreamCreate(CUstream *ph, unsigned int flags)
{
	return cuStreamCreateWithPriority(ph, flags, 0);
}

SIM_EXPORT CUresult cuStreamGetFlags(CUstream h, unsigned int *flags)
{
	return stream_get(h, 0, STREAM_FLAGS, flags);
}

SIM_EXPORT CUresult cuStreamGetFlags_ptsz(CUstream h, unsigned int *flags)
{
	return stream_get(h, 1, STREAM_FLAGS, flags);
}

SIM_EXPORT CUresult cuStreamGetPriority(CUstream h, int *priority)
{
	return stream_get(h, 0, STREAM_PRIORITY, priority);
}

SIM_EXPORT CUresult cuStreamGetPriority_ptsz(CUstream h, int *priority)
{
	return stream_get(h, 1, STREAM_PRIORITY, priority);
}

SIM_EXPORT CUresult cuStreamDestroy_v2(CUstream h)
{
	struct sim_stream *s = (struct sim_stream *)h;
	CUresult r = sim_enter();

	if (r != CUDA_SUCCESS)
		return r;
	if (h == NULL || h == CU_STREAM_LEGACY || h == CU_STREAM_PER_THREAD || s->magic != SIM_MAGIC_STREAM ||
	    s->legacy || s->per_thread || sim_ctx_ended_since(s->ctx, s->epoch))
		return CUDA_ERROR_INVALID_HANDLE;
	/* Work already queued still runs; the worker leaves once the queue is empty. */
	pthread_mutex_lock(&sim_sched_lock);
	s->magic = SIM_MAGIC_DEAD;
	s->dying = 1;
	pthread_cond_signal(&s->queued);
	pthread_mutex_unlock(&sim_sched_lock);
	return CUDA_SUCCESS;
}

static CUresult stream_sync(CUstream h, int per_thread)
{
	struct sim_stream *s;
	CUresult r = sim_enter_stream(h, per_thread, &s);

	if (r != CUDA_SUCCESS)
		return r;
	if (s->capture != NULL)
		return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
	sim_stream_wait_all(s);
	return sim_ctx_check(s->ctx);
}

SIM_EXPORT CUresult cuStreamSynchronize(CUstream h)
{
	return stream_sync(h, 0);
}

SIM_EXPORT CUresult cuStreamSynchronize_ptsz(CUstream h)
{
	return stream_sync(h, 1);
}

static CUresult stream_query(CUstream h, int per_thread)
{
	struct sim_stream *s;
	CUresult r = sim_enter_stream(h, per_thread, &s);
	int busy;

	if (r != CUDA_SUCCESS)
		return r;
	pthread_mutex_lock(&sim_sched_lock);
	busy = pending(s);
	if (!busy)
		host_vnow = SIM_MAX(host_vnow, s->vtime);
	pthread_mutex_unlock(&sim_sched_lock);
	r = sim_ctx_check(s->ctx);
	if (r != CUDA_SUCCESS)
		return r;
	return busy ? CUDA_ERROR_NOT_READY : CUDA_SUCCESS;
}

SIM_EXPORT CUresult cuStreamQuery(CUstream h)
{
	return stream_query(h, 0);
}

SIM_EXPORT CUresult cuStreamQuery_ptsz(CUstream h)
{
	return stream_query(h, 1);
}

/* Queues an interprocess event's record (a signal of the next ticket), or a wait for its latest
 * record (none when that is done already). */
static CUresult ipc_event_op(struct sim_stream *s, struct sim_ipc_event *ev, int signal)
{
	uint32_t ticket = sim_ipc_event_latest(ev);
	struct sim_op *op;

	if (!signal && sim_ipc_event_done(ev, ticket))
		return CUDA_SUCCESS;
	op = sim_op_new(SIM_OP_IPCEV);
	if (op == NULL)
		return CUDA_ERROR_OUT_OF_MEMORY;
	/* A ticket is taken only once its signal is sure to be queued: a lost one would hang waiters. */
	if (signal)
		ticket = sim_ipc_event_record(ev);
	op->u.e.ev = sim_ipc_event_get(ev);
	op->u.e.ticket = ticket;
	op->u.e.signal = signal;
	sim_stream_submit(s, op, SIM_NENGINES, 0);
	return CUDA_SUCCESS;
}

/* ---- fork and join in a capture ----
 *
 * An event recorded on a capturing stream marks a point of the capture. A stream that waits on it
 * joins the capture (a fork): its later work goes into the same graph, which runs every node in the
 * order it was added, so the order the waits ask for holds. A wait within one capture joins the
 * waited-on stream's work so far into the waiter's. The capture ends, on the stream that began it,
 * only when each stream that joined has had all of its work joined, through waits, back into that
 * stream (else CUDA_ERROR_STREAM_CAPTURE_UNJOINED); then they leave it. A capturing stream may not
 * wait on work outside its capture (CUDA_ERROR_STREAM_CAPTURE_ISOLATION) or on another capture's
 * (CUDA_ERROR_STREAM_CAPTURE_MERGE), and an event recorded in a capture cannot be queried, waited
 * for on the host, timed, or waited on once the capture has ended (CUDA_ERROR_CAPTURED_EVENT).
 * Called with sim_sched_lock held. */

/* The stream of capture sequence id that s is, if it still captures in it. */
static struct sim_stream *capture_member_locked(uint64_t id, const struct sim_stream *s)
{
	for (struct sim_stream *t = all_streams; t != NULL; t = t->next_all)
		if (t == s && t->capture != NULL && t->capture_id == id)
			return t;
	return NULL;
}

void sim_capture_invalidate_locked(struct sim_stream *s)
{
	s->capture_invalid = 1;
	if (s->capture_origin != NULL)
		s->capture_origin->capture_invalid = 1;
}

static CUresult capture_wait_locked(struct sim_stream *s, struct sim_event *e)
{
	struct sim_stream *from, *origin;

	if (e->cap_id == 0) {
		sim_capture_invalidate_locked(s);
		return CUDA_ERROR_STREAM_CAPTURE_ISOLATION;
	}
	from = capture_member_locked(e->cap_id, e->cap_stream);
	if (from == NULL)
		return CUDA_ERROR_CAPTURED_EVENT;
	origin = from->capture_origin != NULL ? from->capture_origin : from;
	if (s->capture == NULL && s->legacy) {
		/* The legacy stream cannot join a capture. */
		sim_capture_invalidate_locked(from);
		return CUDA_ERROR_STREAM_CAPTURE_IMPLICIT;
	}
	if (s->capture == NULL) {
		/* A fork: s joins the capture. */
		s->capture = from->capture;
		s->capture_id = from->capture_id;
		s->capture_origin = origin;
		s->capture_mode = origin->capture_mode;
		s->capture_thread = origin->capture_thread;
		s->capture_external = origin->capture_external;
		s->capture_invalid = 0;
		s->capture_ops = 1;
		s->capture_last_node = 0;
		s->join_to = NULL;
		return CUDA_SUCCESS;
	}
	if (s->capture_id != e->cap_id) {
		sim_capture_invalidate_locked(s);
		sim_capture_invalidate_locked(from);
		return CUDA_ERROR_STREAM_CAPTURE_MERGE;
	}
	s->capture_ops++;
	/* The wait that covers the most of from's work is the one kept. */
	if (from != s && (from->join_to == NULL || e->cap_ops >= from->join_at)) {
		from->join_to = s;
		from->join_at = e->cap_ops;
		from->join_wait = s->capture_ops;
	}
	return CUDA_SUCCESS;
}

void sim_capture_node_added(struct sim_stream *s)
{
	pthread_mutex_lock(&sim_sched_lock);
	s->capture_last_node = ++s->capture_ops;
	pthread_mutex_unlock(&sim_sched_lock);
}

/* Whether every node t added to origin's capture reaches origin through waits (a stream that added
 * none has nothing to join); depth bounds a cycle. */
static int capture_joined_locked(const struct sim_stream *t, const struct sim_stream *origin, int depth)
{
	const struct sim_stream *w = t->join_to;

	if (t == origin || t->capture_last_node == 0)
		return 1;
	if (depth > 64 || w == NULL || t->join_at < t->capture_last_node ||
	    capture_member_locked(origin->capture_id, w) == NULL)
		return 0;
	if (w == origin)
		return 1;
	return w->join_at >= t->join_wait && capture_joined_locked(w, origin, depth + 1);
}

CUresult sim_capture_end(struct sim_stream *origin, struct sim_graph **g, int *invalid, int *external)
{
	CUresult r = CUDA_SUCCESS;

	*invalid = 0;
	pthread_mutex_lock(&sim_sched_lock);
	for (struct sim_stream *t = all_streams; t != NULL; t = t->next_all) {
		if (t == origin || t->capture == NULL || t->capture_id != origin->capture_id)
			continue;
		if (!capture_joined_locked(t, origin, 0))
			r = CUDA_ERROR_STREAM_CAPTURE_UNJOINED;
		*invalid |= t->capture_invalid;
	}
	for (struct sim_stream *t = all_streams; t != NULL; t = t->next_all)
		if (t != origin && t->capture != NULL && t->capture_id == origin->capture_id) {
			t->capture = NULL;
			t->capture_origin = NULL;
			t->capture_invalid = 0;
		}
	*g = origin->capture;
	*invalid |= origin->capture_invalid;
	*external = origin->capture_external;
	origin->capture = NULL;
	origin->capture_invalid = 0;
	pthread_mutex_unlock(&sim_sched_lock);
	return r;
}

static CUresult stream_wait_event(CUstream h, CUevent he, unsigned int flags, int per_thread)
{
	struct sim_stream *s;
	struct sim_event *e = event_of(he);
	struct sim_op *op;
	CUresult r = sim_enter_stream(h, per_thread, &s);

	if (r != CUDA_SUCCESS)
		return r;
	if (e == NULL)
		return CUDA_ERROR_INVALID_HANDLE;
	if (flags & ~(unsigned)CU_EVENT_WAIT_EXTERNAL)
		return CUDA_ERROR_INVALID_VALUE;
	if (e->shared != NULL)
		return s->capture != NULL ? CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED : ipc_event_op(s, e->shared, 0);
	/* An external wait in a capture would be an event wait node, which is not modelled. */
	if (s->capture != NULL && (flags & CU_EVENT_WAIT_EXTERNAL))
		return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
	pthread_mutex_lock(&sim_sched_lock);
	if (e->cap_id != 0 || s->capture != NULL) {
		r = capture_wait_locked(s, e);
		pthread_mutex_unlock(&sim_sched_lock);
		return r;
	}
	pthread_mutex_unlock(&sim_sched_lock);
	op = sim_op_new(SIM_OP_NOP);
	if (op == NULL)
		return CUDA_ERROR_OUT_OF_MEMORY;
	pthread_mutex_lock(&sim_sched_lock);
	/* An event never recorded has nothing to wait for. */
	if (e->recorded) {
		op->vready = e->vtime;
		if (e->stream != s && e->stream->done_seq < e->seq && add_dep(op, e->stream, e->seq) != 0)
			r = CUDA_ERROR_OUT_OF_MEMORY;
	}
	pthread_mutex_unlock(&sim_sched_lock);
	if (r != CUDA_SUCCESS) {
		free(op);
		return r;
	}
	sim_stream_submit(s, op, SIM_NENGINES, 0);
	return CUDA_SUCCESS;
}

SIM_EXPORT CUresult cuStreamWaitEvent(CUstream h, CUevent e, unsigned int flags)
{
	return stream_wait_event(h, e, flags, 0);
}

SIM_EXPORT CUresult cuStreamWaitEvent_ptsz(CUstream h, CUevent e, unsigned int flags)
{
	return stream_wait_event(h, e, flags, 1);
}

static CUresult launch_host_func(CUstream h, CUhostFn fn, void *data, int per_thread)
{
	struct sim_stream *s;
	struct sim_op *op;
	CUresult r = sim_enter_stream(h, per_thread, &s);

	if (r != CUDA_SUCCESS)
		return r;
	if (fn == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	if (s->capture != NULL)
		return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
	op = sim_op_new(SIM_OP_HOSTFN);
	if (op == NULL)
		return CUDA_ERROR_OUT_OF_MEMORY;
	op->u.h.fn = fn;
	op->u.h.data = data;
	sim_stream_submit(s, op, SIM_NENGINES, 0);
	return CUDA_SUCCESS;
}

SIM_EXPORT CUresult cuLaunchHostFunc(CUstream h, CUhostFn fn, void *data)
{
	return launch_host_func(h, fn, data, 0);
}

SIM_EXPORT CUresult cuLaunchHostFunc_ptsz(CUstream h, CUhostFn fn, void *data)
{
	return launch_host_func(h, fn, data, 1);
}

/* ---- events ---- */

SIM_EXPORT CUresult cuEventCreate(CUevent *ph, unsigned int flags)
{
	struct sim_event *e;
	struct sim_ctx *ctx;
	CUresult r = sim_enter_ctx(&ctx);

	if (r != CUDA_SUCCESS)
		return r;
	if (ph == NULL || (flags & ~(unsigned)(CU_EVENT_BLOCKING_SYNC | CU_EVENT_DISABLE_TIMING | CU_EVENT_INTERPROCESS)))
		return CUDA_ERROR_INVALID_VALUE;
	e = calloc(1, sizeof(*e));
	if (e == NULL)
		return CUDA_ERROR_OUT_OF_MEMORY;
	e->magic = SIM_MAGIC_EVENT;
	e->flags = flags;
	e->ctx = ctx;
	e->epoch = sim_ctx_epoch(ctx);
	/* Only an event that keeps no timestamps can be shared with another process. */
	if ((flags & CU_EVENT_INTERPROCESS) && (flags & CU_EVENT_DISABLE_TIMING)) {
		e->shared = sim_ipc_event_new();
		if (e->shared == NULL) {
			free(e);
			return CUDA_ERROR_OUT_OF_MEMORY;
		}
	}
	*ph = (CUevent)e;
	return CUDA_SUCCESS;
}

CUresult sim_event_shared(CUevent h, struct sim_ipc_event **out)
{
	struct sim_event *e = event_of(h);

	if (e == NULL)
		return CUDA_ERROR_INVALID_HANDLE;
	*out = e->shared;
	return CUDA_SUCCESS;
}

CUresult sim_event_open(struct sim_ipc_event *ev, CUevent *out)
{
	struct sim_event *e = calloc(1, sizeof(*e));

	if (e == NULL)
		return CUDA_ERROR_OUT_OF_MEMORY;
	/* As the documentation says, an opened event behaves as one created with DISABLE_TIMING. */
	e->magic = SIM_MAGIC_EVENT;
	e->flags = CU_EVENT_DISABLE_TIMING;
	e->shared = ev;
	/* The opener's context is the event's here. */
	e->ctx = sim_ctx_current();
	e->epoch = sim_ctx_epoch(e->ctx);
	*out = (CUevent)e;
	return CUDA_SUCCESS;
}

static CUresult event_record(CUevent he, CUstream h, unsigned int flags, int per_thread)
{
	struct sim_event *e = event_of(he);
	struct sim_stream *s;
	CUresult r = sim_enter_stream(h, per_thread, &s);

	if (r != CUDA_SUCCESS)
		return r;
	if (e == NULL)
		return CUDA_ERROR_INVALID_HANDLE;
	if (flags & ~(unsigned)CU_EVENT_RECORD_EXTERNAL)
		return CUDA_ERROR_INVALID_VALUE;
	/* An event and the stream it is recorded on belong to one context. The legacy and per-thread
	 * streams are the current context's. */
	if (e->ctx != s->ctx)
		return CUDA_ERROR_INVALID_HANDLE;
	if (e->shared != NULL)
		return s->capture != NULL ? CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED : ipc_event_op(s, e->shared, 1);
	/* An external record in a capture would be an event record node, which is not modelled. */
	if (s->capture != NULL && (flags & CU_EVENT_RECORD_EXTERNAL))
		return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
	pthread_mutex_lock(&sim_sched_lock);
	if (s->capture != NULL) {
		/* A point of the capture, for other streams to fork from or join at. */
		e->cap_id = s->capture_id;
		e->cap_stream = s;
		e->cap_ops = s->capture_ops;
		pthread_mutex_unlock(&sim_sched_lock);
		return CUDA_SUCCESS;
	}
	e->cap_id = 0;
	/* An idle stream records "now" on the host's clock, not the end of its last work. */
	s->vtime = SIM_MAX(s->vtime, host_vnow);
	e->recorded = 1;
	e->stream = s;
	e->seq = s->enq_seq;
	e->vtime = s->vtime;
	pthread_mutex_unlock(&sim_sched_lock);
	return CUDA_SUCCESS;
}

SIM_EXPORT CUresult cuEventRecord(CUevent e, CUstream h)
{
	return event_record(e, h, 0, 0);
}

SIM_EXPORT CUresult cuEventRecord_ptsz(CUevent e, CUstream h)
{
	return event_record(e, h, 0, 1);
}

SIM_EXPORT CUresult cuEventRecordWithFlags(CUevent e, CUstream h, unsigned int flags)
{
	return event_record(e, h, flags, 0);
}

SIM_EXPORT CUresult cuEventRecordWithFlags_ptsz(CUevent e, CUstream h, unsigned int flags)
{
	return event_record(e, h, flags, 1);
}

static int event_done_locked(const struct sim_event *e)
{
	return !e->recorded || e->stream->done_seq >= e->seq;
}

SIM_EXPORT CUresult cuEventQuery(CUevent he)
{
	struct sim_event *e = event_of(he);
	CUresult r = sim_enter_ctx(NULL);
	int done;

	if (r != CUDA_SUCCESS)
		return r;
	if (e == NULL)
		return CUDA_ERROR_INVALID_HANDLE;
	if (e->shared != NULL)
		return sim_ipc_event_done(e->shared, sim_ipc_event_latest(e->shared)) ? CUDA_SUCCESS : CUDA_ERROR_NOT_READY;
	pthread_mutex_lock(&sim_sched_lock);
	if (e->cap_id != 0) {
		pthread_mutex_unlock(&sim_sched_lock);
		return CUDA_ERROR_CAPTURED_EVENT;
	}
	done = event_done_locked(e);
	if (done && e->recorded)
		host_vnow = SIM_MAX(host_vnow, e->vtime);
	pthread_mutex_unlock(&sim_sched_lock);
	return done ? CUDA_SUCCESS : CUDA_ERROR_NOT_READY;
}

SIM_EXPORT CUresult cuEventSynchronize(CUevent he)
{
	struct sim_event *e = event_of(he);
	struct sim_ctx *ctx;
	CUresult r = sim_enter_ctx(&ctx);

	if (r != CUDA_SUCCESS)
		return r;
	if (e == NULL)
		return CUDA_ERROR_INVALID_HANDLE;
	/* Another process's clock is its own: waiting for its record moves this one's not at all. */
	if (e->shared != NULL) {
		sim_ipc_event_wait(e->shared, sim_ipc_event_latest(e->shared));
		return sim_ctx_check(ctx);
	}
	pthread_mutex_lock(&sim_sched_lock);
	if (e->cap_id != 0) {
		pthread_mutex_unlock(&sim_sched_lock);
		return CUDA_ERROR_CAPTURED_EVENT;
	}
	if (e->recorded)
		wait_locked(e->stream, e->seq, e->vtime);
	pthread_mutex_unlock(&sim_sched_lock);
	return sim_ctx_check(ctx);
}

SIM_EXPORT CUresult cuEventElapsedTime_v2(float *ms, CUevent hstart, CUevent hend)
{
	struct sim_event *a = event_of(hstart), *b = event_of(hend);
	CUresult r = sim_enter_ctx(NULL);

	if (r != CUDA_SUCCESS)
		return r;
	if (ms == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	if (a == NULL || b == NULL)
		return CUDA_ERROR_INVALID_HANDLE;
	if ((a->flags | b->flags) & CU_EVENT_DISABLE_TIMING)
		return CUDA_ERROR_INVALID_HANDLE;
	pthread_mutex_lock(&sim_sched_lock);
	if (a->cap_id != 0 || b->cap_id != 0)
		r = CUDA_ERROR_CAPTURED_EVENT;
	else if (!a->recorded || !b->recorded)
		r = CUDA_ERROR_INVALID_HANDLE;
	else if (!event_done_locked(a) || !event_done_locked(b))
		r = CUDA_ERROR_NOT_READY;
	else
		*ms = (float)(((double)b->vtime - (double)a->vtime) / 1e6);
	pthread_mutex_unlock(&sim_sched_lock);
	return r;
}

SIM_EXPORT CUresult cuEventElapsedTime(float *ms, CUevent hstart, CUevent hend)
{
	return cuEventElapsedTime_v2(ms, hstart, hend);
}

SIM_EXPORT CUresult cuEventDestroy_v2(CUevent he)
{
	struct sim_event *e = event_of(he);
	CUresult r = sim_enter();

	if (r != CUDA_SUCCESS)
		return r;
	if (e == NULL)
		return CUDA_ERROR_INVALID_HANDLE;
	/* Streams never point at events, so the memory can go now; waits already queued copied what they
	 * needed. */
	pthread_mutex_lock(&sim_sched_lock);
	e->magic = SIM_MAGIC_DEAD;
	pthread_mutex_unlock(&sim_sched_lock);
	/* Queued signals and waits hold references of their own. */
	if (e->shared != NULL)
		sim_ipc_event_put(e->shared);
	sim_retire(e);
	return CUDA_SUCCESS;
}

/* ---- the clock, for programs ---- */

SIM_EXPORT uint64_t simcuda_clock_ns(void)
{
	uint64_t t;

	pthread_mutex_lock(&sim_sched_lock);
	t = host_vnow;
	pthread_mutex_unlock(&sim_sched_lock);
	return t;
}

/* A thread in global mode may not make unsafe calls while it or any other thread captures in
 * global mode, nor while it captures in thread-local mode; in thread-local mode, only its own
 * captures not begun relaxed forbid them; in relaxed mode, none do (cuThreadExchangeStreamCaptureMode). */
CUresult sim_capture_unsafe_call(CUstreamCaptureMode mode)
{
	int forbidden = 0;

	if (mode == CU_STREAM_CAPTURE_MODE_RELAXED)
		return CUDA_SUCCESS;
	pthread_mutex_lock(&sim_sched_lock);
	for (struct sim_stream *s = all_streams; s != NULL; s = s->next_all) {
		int own;
		/* A capture ends with its stream's context. */
		if (s->capture == NULL || sim_ctx_ended_since(s->ctx, s->epoch))
			continue;
		own = pthread_equal(s->capture_thread, pthread_self());
		if ((own && s->capture_mode != CU_STREAM_CAPTURE_MODE_RELAXED) ||
		    (!own && mode == CU_STREAM_CAPTURE_MODE_GLOBAL && s->capture_mode == CU_STREAM_CAPTURE_MODE_GLOBAL)) {
			s->capture_invalid = 1;
			forbidden = 1;
		}
	}
	pthread_mutex_unlock(&sim_sched_lock);
	return forbidden ? CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED : CUDA_SUCCESS;
}

SIM_EXPORT uint64_t simcuda_makespan_ns(void)
{
	uint64_t t;

	pthread_mutex_lock(&sim_sched_lock);
	t = host_vnow;
	for (struct sim_stream *s = all_streams; s != NULL; s = s->next_all)
		t = SIM_MAX(t, s->vtime);
	pthread_mutex_unlock(&sim_sched_lock);
	return t;
}
