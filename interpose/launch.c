/* The launch path: kernels, copies, memsets and graph launches all go through mv_submit, which finds
 * the buffers an operation names, makes them resident, orders the stream after their page-ins and
 * records where on the stream they were last used.
 *
 * A kernel's buffers are found by scanning its parameters: every 8-byte-aligned word of every
 * parameter (layouts from cuFuncGetParamInfo, cached per function), or of the `extra` buffer, is
 * looked up in the registry, interior pointers included. A word that happens to equal an address
 * only costs a needless page-in. Pointers a host-to-device copy uploads into a buffer are remembered,
 * and a kernel naming that buffer keeps them resident too. What the scan cannot see (pointers
 * computed on the device, or written there by kernels) is what the safety net is for.
 *
 * Nothing here makes a system call, calls getenv, allocates on the heap or holds a lock across a
 * driver call once a function's layout is cached and its stream known. The launch event for the
 * daemon costs one atomic load without one, and a vDSO clock read and a slot in a lock-free ring
 * with one. */
#include "config.h"

#include <string.h>

#include "interpose/internal.h"
#include "protocol/proto.h"

/* ---- parameter layouts ---- */

#define MV_LAYOUTS 4096 /* a power of two */
#define MV_MAX_PARAMS 64
#define MV_MAX_WORDS 4096

struct layout {
	_Atomic(CUfunction) f; /* published last */
	int known;             /* cuFuncGetParamInfo answered */
	uint16_t n;
	uint16_t off[MV_MAX_PARAMS];
	uint16_t size[MV_MAX_PARAMS];
};

static struct layout layouts[MV_LAYOUTS];
/* Guards filling a slot; lookups read slots whose function has been published. */
static pthread_mutex_t layout_lock = PTHREAD_MUTEX_INITIALIZER;

static size_t slot_of(CUfunction f)
{
	uint64_t x = (uint64_t)(uintptr_t)f;
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	return (size_t)x & (MV_LAYOUTS - 1);
}

static const struct layout *layout_get(CUfunction f)
{
	struct layout tmp = {0};
	size_t i = slot_of(f);

	for (size_t probe = 0; probe < MV_LAYOUTS; probe++, i = (i + 1) & (MV_LAYOUTS - 1)) {
		CUfunction g = atomic_load_explicit(&layouts[i].f, memory_order_acquire);
		if (g == f)
			return &layouts[i];
		if (g == NULL)
			break;
	}
	/* First launch of f: ask the driver, outside the lock. */
	tmp.known = 1;
	while (tmp.n < MV_MAX_PARAMS) {
		size_t off, size;
		CUresult r = mv_real.cuFuncGetParamInfo(f, tmp.n, &off, &size);
		if (r == CUDA_ERROR_INVALID_VALUE)
			break;
		if (r != CUDA_SUCCESS || off + size > 65535) {
			tmp.known = 0;
			break;
		}
		tmp.off[tmp.n] = (uint16_t)off;
		tmp.size[tmp.n] = (uint16_t)size;
		tmp.n++;
	}
	if (!tmp.known)
		mv_log(MV_LOG_WARN, "no parameter layout for function %p: its arguments are not scanned", (void *)f);
	pthread_mutex_lock(&layout_lock);
	i = slot_of(f);
	for (size_t probe = 0; probe < MV_LAYOUTS; probe++, i = (i + 1) & (MV_LAYOUTS - 1)) {
		CUfunction g = atomic_load_explicit(&layouts[i].f, memory_order_relaxed);
		if (g == f)
			break;
		if (g == NULL) {
			layouts[i].known = tmp.known;
			layouts[i].n = tmp.n;
			memcpy(layouts[i].off, tmp.off, sizeof(tmp.off));
			memcpy(layouts[i].size, tmp.size, sizeof(tmp.size));
			atomic_store_explicit(&layouts[i].f, f, memory_order_release);
			break;
		}
	}
	pthread_mutex_unlock(&layout_lock);
	return &layouts[i];
}

/* Appends every 8-byte-aligned word of [base, base+len), which sits at offset `at` of the parameter
 * buffer, to words. */
static size_t scan(const unsigned char *base, size_t at, size_t len, uint64_t *words, size_t n)
{
	size_t first = (at + 7) & ~(size_t)7;

	for (size_t w = first; w + 8 <= at + len && n < MV_MAX_WORDS; w += 8) {
		uint64_t v;
		memcpy(&v, base + (w - at), 8);
		if (v != 0)
			words[n++] = v;
	}
	return n;
}

static __thread uint64_t tl_words[MV_MAX_WORDS];

static size_t kernel_words(CUfunction f, void **params, void **extra, uint64_t *words)
{
	size_t n = 0;

	if (extra != NULL) {
		void *buf = NULL;
		size_t size = 0;
		for (size_t i = 0; extra[i] != CU_LAUNCH_PARAM_END; i += 2) {
			if (extra[i] == CU_LAUNCH_PARAM_BUFFER_POINTER)
				buf = extra[i + 1];
			else if (extra[i] == CU_LAUNCH_PARAM_BUFFER_SIZE && extra[i + 1] != NULL)
				size = *(size_t *)extra[i + 1];
			else
				break;
		}
		if (buf != NULL)
			n = scan(buf, 0, size, words, n);
		return n;
	}
	if (params != NULL) {
		const struct layout *l = layout_get(f);
		if (!l->known)
			return 0;
		for (unsigned i = 0; i < l->n && params[i] != NULL; i++)
			n = scan(params[i], l->off[i], l->size[i], words, n);
	}
	return n;
}

/* ---- the one routine ---- */

#define MV_MAX_NAMED 512

static _Atomic uint64_t epochs = 1;
/* The global use clock: buffers used longest ago are paged out first. */
static _Atomic uint64_t use_clock;
/* Busy marks held by every submission in flight, and by this thread's; threads waiting in
 * mv_make_room for busy buffers, whom a finished submission wakes. */
static _Atomic uint64_t busy_total;
static __thread uint64_t busy_mine;
static _Atomic int busy_waiters;

uint64_t mv_clock_now(void)
{
	return atomic_load(&use_clock);
}

int mv_busy_elsewhere(void)
{
	return atomic_load(&busy_total) > busy_mine;
}

void mv_busy_wait_begin(void)
{
	atomic_fetch_add(&busy_waiters, 1);
}

void mv_busy_wait_end(void)
{
	atomic_fetch_sub(&busy_waiters, 1);
}

/* The learner's and the executor's part of a submission: what mv_submit saw, for after it. */
struct learn_ctx {
	unsigned flags;
	uint32_t fn;
	uint32_t tslot;
	int marker;
};

/* Before the operation is enqueued: its function number, a MARK for the iteration marker, and the
 * timing event in front of it. */
static void learn_before(struct learn_ctx *l, uintptr_t fkey, CUstream handle, int capturing)
{
	l->fn = UINT32_MAX;
	l->tslot = 0;
	l->marker = 0;
	if (capturing) {
		l->flags = 0;
		return;
	}
	l->fn = mv_func_number(fkey, &l->marker);
	if (l->marker) {
		if (l->flags & MV_LEARN_ON)
			mv_learn_mark();
		mv_link_event(MV_EV_MARK, 0, 0, 0, 0);
	}
	if (l->flags & MV_LEARN_TIME)
		l->tslot = mv_learn_time_begin(handle);
}

/* After the operation is enqueued: the timing event behind it, its record for the learner, and
 * its events for the daemon. */
static void after_submit(struct learn_ctx *l, uint32_t stream_ix, struct mv_buf *const *named, size_t n,
			 CUstream handle, int capturing)
{
	if (l->flags != 0 && !capturing) {
		if (l->tslot != 0)
			mv_learn_time_end(l->tslot, handle);
		if (l->flags & MV_LEARN_ON)
			mv_learn_launch(l->fn, stream_ix, named, n, l->tslot);
	}
	if (mv_link_is_up())
		mv_link_launch(stream_ix, l->flags != 0 ? l->fn : 0, named, n);
}

/* Collects the buffer holding addr into named[] once per submission; called with mv_lock held. */
static size_t collect(uint64_t addr, uint64_t epoch, struct mv_buf **named, unsigned char *moving, size_t n)
{
	struct mv_buf *b = mv_registry_find(addr);

	if (b == NULL || b->epoch == epoch || n >= MV_MAX_NAMED)
		return n;
	b->epoch = epoch;
	atomic_fetch_add_explicit(&b->busy, 1, memory_order_relaxed);
	moving[n] = b->kind == MV_KIND_LARGE && (b->state != MV_RESIDENT || b->ready_pending);
	named[n] = b;
	return n + 1;
}

/* One submission on its way through mv_submit. The arrays are left unset beyond n: clearing them
 * would cost every launch. */
struct submission {
	CUstream handle;             /* the stream as the driver is given it */
	int capturing;
	struct mv_stream *s;         /* NULL when capturing, or when the stream table is full */
	uint32_t stream_ix;          /* s's index + 1 for events, 0 for none */
	uint64_t ticket;             /* its place on s, once it names buffers */
	size_t n;
	struct mv_buf *named[MV_MAX_NAMED];
	unsigned char moving[MV_MAX_NAMED]; /* not resident and ready when collected */
	struct learn_ctx l;
	struct mv_exec_step step;
};

/* The stream it goes to, and the learner's part before it. */
static inline void submission_start(struct submission *sub, CUstream h, int per_thread, uintptr_t fkey)
{
	sub->handle = h == NULL ? (per_thread ? CU_STREAM_PER_THREAD : CU_STREAM_LEGACY) : h;
	sub->capturing = mv_capturing(h, per_thread);
	sub->s = sub->capturing ? NULL : mv_stream_get(h, per_thread);
	sub->stream_ix = sub->s != NULL ? mv_stream_index(sub->s) + 1 : 0;
	sub->ticket = 0;
	if (sub->l.flags != 0)
		learn_before(&sub->l, fkey, sub->handle, sub->capturing);
	sub->step.n = 0;
}

/* Pointers uploaded into the n buffers named so far name their buffers too (one level). Returns
 * how many are named now. Called with mv_lock held. */
static inline size_t collect_refs(struct submission *sub, uint64_t epoch, size_t n)
{
	struct mv_buf **named = sub->named;

	for (size_t i = 0, m = n; i < m; i++) {
		for (int j = 0; j < named[i]->nrefs; j++) {
			size_t before = n;
			n = collect(named[i]->refs[j], epoch, named, sub->moving, n);
			if (n > before)
				mv_log(MV_LOG_DEBUG, "buffer %#llx kept resident: its address was uploaded into %#llx",
				       (unsigned long long)named[n - 1]->va, (unsigned long long)named[i]->va);
		}
	}
	return n;
}

/* Records this use of every named buffer: at a new ticket on the stream, by the clock alone on an
 * untracked one, or as pinned when a graph is being captured. Called with mv_lock held. */
static inline void record_uses(struct submission *sub)
{
	uint64_t now = atomic_fetch_add_explicit(&use_clock, 1, memory_order_relaxed) + 1;

	if (sub->s != NULL)
		sub->ticket = mv_stream_begin(sub->s);
	for (size_t i = 0; i < sub->n; i++) {
		struct mv_buf *b = sub->named[i];
		if (sub->capturing)
			b->pinned = 1; /* named by a graph: it must stay put while any launch of it runs */
		else if (sub->s != NULL)
			mv_buf_use(b, sub->s, sub->ticket, now);
		else
			b->lru = now;
	}
}

/* One pass under the lock: finds the buffers the words name, marks them busy (so no page-out takes
 * them until the work is enqueued), records this use and takes the plan's step. */
static inline void collect_named(struct submission *sub, const uint64_t *words, size_t nwords)
{
	uint64_t epoch = atomic_fetch_add_explicit(&epochs, 1, memory_order_relaxed);
	size_t n = 0;

	mv_lock();
	for (size_t i = 0; i < nwords; i++)
		n = collect(words[i], epoch, sub->named, sub->moving, n);
	sub->n = collect_refs(sub, epoch, n);
	if (sub->n > 0)
		record_uses(sub);
	if (sub->l.flags & MV_LEARN_PLAN)
		mv_exec_on_launch(sub->l.fn, sub->named, sub->n, &sub->step);
	mv_unlock();
}

/* Lets go of the busy marks on named[0 .. n), waking the threads in mv_make_room that wait for
 * them. */
static inline void busy_release(struct mv_buf *const *named, size_t n)
{
	for (size_t i = 0; i < n; i++)
		atomic_fetch_sub_explicit(&named[i]->busy, 1, memory_order_release);
	atomic_fetch_sub_explicit(&busy_total, n, memory_order_relaxed);
	busy_mine -= n;
	if (atomic_load_explicit(&busy_waiters, memory_order_acquire) > 0) {
		mv_lock();
		mv_wake_unbusy();
		mv_unlock();
	}
}

/* For a submission that names buffers: makes them resident, enqueues the work, marks its place on
 * the stream, and lets the buffers go. */
static inline CUresult submit_named(struct submission *sub, CUresult (*submit)(void *arg), void *arg)
{
	CUresult r = CUDA_SUCCESS;

	atomic_fetch_add_explicit(&busy_total, sub->n, memory_order_relaxed);
	busy_mine += sub->n;
	for (size_t i = 0; i < sub->n && r == CUDA_SUCCESS; i++)
		if (sub->moving[i])
			r = mv_make_resident(sub->named[i], sub->handle, sub->capturing);
	if (r == CUDA_SUCCESS)
		r = submit(arg);
	/* While the buffers are still busy: none can be freed and reused meanwhile. */
	after_submit(&sub->l, sub->stream_ix, sub->named, sub->n, sub->handle, sub->capturing);
	if (sub->s != NULL)
		mv_stream_end(sub->s, sub->ticket);
	else if (!sub->capturing)
		/* An untracked stream: its last uses cannot be named, so wait them out now. */
		mv_real.cuStreamSynchronize(sub->handle);
	busy_release(sub->named, sub->n);
	return r;
}

CUresult mv_submit(CUstream h, int per_thread, const uint64_t *words, size_t nwords,
		   CUresult (*submit)(void *arg), void *arg, uintptr_t fkey)
{
	struct submission sub;
	CUresult r;

	sub.l.flags = mv_learn_flags_now();
	/* The daemon's LAUNCH events carry the function number. */
	if (mv_link_is_up())
		sub.l.flags |= MV_LEARN_NUMBER;
	if (sub.l.flags == 0 && nwords == 0) {
		/* Nothing to look up, the stream included: the event names none. */
		r = submit(arg);
		mv_link_event(MV_EV_LAUNCH, 0, 0, 0, 0);
		return r;
	}
	submission_start(&sub, h, per_thread, fkey);
	collect_named(&sub, words, nwords);
	if (sub.n == 0) {
		r = submit(arg);
		after_submit(&sub.l, sub.stream_ix, sub.named, 0, sub.handle, sub.capturing);
	} else {
		r = submit_named(&sub, submit, arg);
	}
	if (sub.step.n > 0)
		mv_exec_issue(&sub.step);
	return r;
}

/* ---- kernel launches ---- */

struct launch_args {
	CUfunction f;
	unsigned gx, gy, gz, bx, by, bz, shmem;
	CUstream h;
	void **params, **extra;
	int per_thread;
	int cooperative;
};

static CUresult do_launch(void *arg)
{
	struct launch_args *a = arg;

	if (a->cooperative)
		return (a->per_thread ? mv_real.cuLaunchCooperativeKernel_ptsz : mv_real.cuLaunchCooperativeKernel)(
			a->f, a->gx, a->gy, a->gz, a->bx, a->by, a->bz, a->shmem, a->h, a->params);
	return (a->per_thread ? mv_real.cuLaunchKernel_ptsz : mv_real.cuLaunchKernel)(
		a->f, a->gx, a->gy, a->gz, a->bx, a->by, a->bz, a->shmem, a->h, a->params, a->extra);
}

static CUresult launch(struct launch_args *a)
{
	size_t n;

	if (mv_init() != 0)
		return CUDA_ERROR_NOT_INITIALIZED;
	n = kernel_words(a->f, a->params, a->extra, tl_words);
	return mv_submit(a->h, a->per_thread, tl_words, n, do_launch, a, (uintptr_t)a->f);
}

MV_EXPORT CUresult cuLaunchKernel(CUfunction f, unsigned int gx, unsigned int gy, unsigned int gz, unsigned int bx,
				  unsigned int by, unsigned int bz, unsigned int shmem, CUstream h, void **params,
				  void **extra)
{
	struct launch_args a = {f, gx, gy, gz, bx, by, bz, shmem, h, params, extra, 0, 0};
	return launch(&a);
}

MV_EXPORT CUresult cuLaunchKernel_ptsz(CUfunction f, unsigned int gx, unsigned int gy, unsigned int gz,
				       unsigned int bx, unsigned int by, unsigned int bz, unsigned int shmem, CUstream h,
				       void **params, void **extra)
{
	struct launch_args a = {f, gx, gy, gz, bx, by, bz, shmem, h, params, extra, 1, 0};
	return launch(&a);
}

MV_EXPORT CUresult cuLaunchCooperativeKernel(CUfunction f, unsigned int gx, unsigned int gy, unsigned int gz,
					     unsigned int bx, unsigned int by, unsigned int bz, unsigned int shmem,
					     CUstream h, void **params)
{
	struct launch_args a = {f, gx, gy, gz, bx, by, bz, shmem, h, params, NULL, 0, 1};
	return launch(&a);
}

MV_EXPORT CUresult cuLaunchCooperativeKernel_ptsz(CUfunction f, unsigned int gx, unsigned int gy, unsigned int gz,
						  unsigned int bx, unsigned int by, unsigned int bz, unsigned int shmem,
						  CUstream h, void **params)
{
	struct launch_args a = {f, gx, gy, gz, bx, by, bz, shmem, h, params, NULL, 1, 1};
	return launch(&a);
}

struct launch_ex_args {
	const CUlaunchConfig *config;
	CUfunction f;
	void **params, **extra;
	int per_thread;
};

static CUresult do_launch_ex(void *arg)
{
	struct launch_ex_args *a = arg;
	return (a->per_thread ? mv_real.cuLaunchKernelEx_ptsz : mv_real.cuLaunchKernelEx)(a->config, a->f, a->params,
											   a->extra);
}

static CUresult launch_ex(const CUlaunchConfig *config, CUfunction f, void **params, void **extra, int per_thread)
{
	struct launch_ex_args a = {config, f, params, extra, per_thread};
	size_t n;

	if (mv_init() != 0)
		return CUDA_ERROR_NOT_INITIALIZED;
	if (config == NULL)
		return do_launch_ex(&a);
	n = kernel_words(f, params, extra, tl_words);
	return mv_submit(config->hStream, per_thread, tl_words, n, do_launch_ex, &a, (uintptr_t)f);
}

MV_EXPORT CUresult cuLaunchKernelEx(const CUlaunchConfig *config, CUfunction f, void **params, void **extra)
{
	return launch_ex(config, f, params, extra, 0);
}

MV_EXPORT CUresult cuLaunchKernelEx_ptsz(const CUlaunchConfig *config, CUfunction f, void **params, void **extra)
{
	return launch_ex(config, f, params, extra, 1);
}

/* ---- graphs ---- */

/* Launches captured into a graph make their buffers resident and pin them for good, so every later
 * launch of the graph finds them where they are: the graph rule. */
static CUresult begin_capture(CUstream h, CUstreamCaptureMode mode, int per_thread)
{
	CUresult r;

	if (mv_init() != 0)
		return CUDA_ERROR_NOT_INITIALIZED;
	mv_stream_get(h, per_thread);
	r = (per_thread ? mv_real.cuStreamBeginCapture_v2_ptsz : mv_real.cuStreamBeginCapture_v2)(h, mode);
	if (r == CUDA_SUCCESS)
		mv_capture_begin(h, per_thread);
	return r;
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
	if (mv_init() != 0)
		return CUDA_ERROR_NOT_INITIALIZED;
	mv_capture_end(h, per_thread);
	return (per_thread ? mv_real.cuStreamEndCapture_ptsz : mv_real.cuStreamEndCapture)(h, g);
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
