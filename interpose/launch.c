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

#include <stdlib.h>
#include <string.h>

#include "interpose/internal.h"
#include "protocol/proto.h"

/* ---- parameter layouts ---- */

#define MV_LAYOUTS 16384 /* a power of two */
#define MV_INLINE_PARAMS 64
/* The most parameter bytes a launch may pass (CUDA 12.1 and later): the most words a scan sees. */
#define MV_MAX_WORDS (32768 / 8)

struct layout {
	_Atomic(CUfunction) f; /* published last; LAYOUT_GONE once forgotten */
	int known;             /* the driver reported every parameter */
	void *owner;           /* f's module, or its library for a CUkernel; NULL when unknown */
	CUcontext ctx;         /* where f's module was loaded (it dies with it); NULL for a library's */
	uint64_t since;        /* when it was added (mv_moment) */
	uint32_t n;
	const uint16_t *off, *size; /* the arrays below, or heap arrays past MV_INLINE_PARAMS */
	uint16_t off_in[MV_INLINE_PARAMS];
	uint16_t size_in[MV_INLINE_PARAMS];
};

static struct layout layouts[MV_LAYOUTS];
/* Guards filling and forgetting a slot; lookups read slots whose function has been published. */
static pthread_mutex_t layout_lock = PTHREAD_MUTEX_INITIALIZER;
/* A forgotten slot's function: lookups go past it, and a new function may take the slot. */
#define LAYOUT_GONE ((CUfunction)(uintptr_t)1)
/* For a function when the table is full: its launches name what an unreported layout does. */
static const struct layout unlisted;
static _Atomic int said_full;
/* Slots holding a function (changed under layout_lock): at MV_LAYOUTS no new one is asked for. */
static _Atomic unsigned nlayouts;

static size_t slot_of(CUfunction f)
{
	uint64_t x = (uint64_t)(uintptr_t)f;
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	return (size_t)x & (MV_LAYOUTS - 1);
}

/* Parameter i of f. A CUkernel passed where a CUfunction goes (cudart with lazy loading) may be
 * refused by cuFuncGetParamInfo: its layout then comes from cuKernelGetParamInfo. */
static CUresult param_info(CUfunction f, int *as_kernel, size_t i, size_t *off, size_t *size)
{
	CUresult r;

	if (!*as_kernel) {
		r = mv_real.cuFuncGetParamInfo(f, i, off, size);
		if (r == CUDA_SUCCESS || r == CUDA_ERROR_INVALID_VALUE || i > 0 || mv_real.cuKernelGetParamInfo == NULL)
			return r;
		*as_kernel = 1;
	}
	return mv_real.cuKernelGetParamInfo((CUkernel)f, i, off, size);
}

void mv_func_owner(CUfunction f, int as_kernel, void **owner, CUcontext *ctx)
{
	CUmodule m = NULL;
	CUlibrary lib = NULL;

	*owner = NULL;
	*ctx = NULL;
	if (!as_kernel && mv_real.cuFuncGetModule != NULL && mv_real.cuFuncGetModule(&m, f) == CUDA_SUCCESS) {
		*owner = m;
		if (mv_real.cuCtxGetCurrent(ctx) != CUDA_SUCCESS)
			*ctx = NULL;
	} else if (mv_real.cuKernelGetLibrary != NULL &&
		   mv_real.cuKernelGetLibrary(&lib, (CUkernel)f) == CUDA_SUCCESS) {
		*owner = lib;
	}
}

/* Asks the driver for f's layout into l; l->known stays 0 when it will not say. Heap arrays hold a
 * layout of more than MV_INLINE_PARAMS parameters. */
static void layout_query(CUfunction f, struct layout *l)
{
	uint16_t *off = l->off_in, *size = l->size_in;
	uint32_t cap = MV_INLINE_PARAMS;
	int as_kernel = 0;
	CUresult r;

	for (;;) {
		size_t o, sz;
		r = param_info(f, &as_kernel, l->n, &o, &sz);
		if (r != CUDA_SUCCESS || o + sz > 65535 || l->n == UINT16_MAX)
			break;
		if (l->n == cap) {
			uint16_t *o2 = malloc(2 * cap * sizeof(*o2)), *s2 = malloc(2 * cap * sizeof(*s2));
			if (o2 == NULL || s2 == NULL) {
				free(o2);
				free(s2);
				break;
			}
			memcpy(o2, off, cap * sizeof(*o2));
			memcpy(s2, size, cap * sizeof(*s2));
			if (off != l->off_in) {
				free(off);
				free(size);
			}
			off = o2;
			size = s2;
			cap *= 2;
		}
		off[l->n] = (uint16_t)o;
		size[l->n] = (uint16_t)sz;
		l->n++;
	}
	/* Running past the last parameter is the only good end. */
	l->known = r == CUDA_ERROR_INVALID_VALUE;
	mv_func_owner(f, as_kernel, &l->owner, &l->ctx);
	l->off = off;
	l->size = size;
	if (!l->known)
		mv_log(MV_LOG_WARN, "function %p: the driver reports no parameter layout (%d after %u parameters): %s",
		       (void *)f, (int)r, l->n,
		       mv_dev()->host_vmm ? "the safety net covers what its launches name"
					  : "every buffer is made resident before each of its launches");
}

/* The layout of a function the full table has no slot for. */
static const struct layout *table_full(void)
{
	if (atomic_exchange(&said_full, 1) == 0)
		mv_log(MV_LOG_WARN, "more than %d kernel functions: launches of the others are prepared as if their "
				    "parameter layout were unknown (%s)", MV_LAYOUTS,
		       mv_dev()->host_vmm ? "the safety net covers what they name"
					  : "every buffer is made resident before each of them");
	return &unlisted;
}

/* First launch of f: asks the driver, outside the lock, and keeps the answer. */
static __attribute__((noinline)) const struct layout *layout_add(CUfunction f)
{
	struct layout tmp = {0}, *at = NULL, *free_at = NULL;
	/* Taken before the query: a context's end that began before it forgets this layout too. */
	uint64_t since = mv_moment();
	int kept;
	size_t i;

	/* No slot would keep the answer: not asked of the driver at each launch. */
	if (atomic_load_explicit(&nlayouts, memory_order_relaxed) >= MV_LAYOUTS)
		return table_full();
	layout_query(f, &tmp);
	pthread_mutex_lock(&layout_lock);
	i = slot_of(f);
	/* f's slot if another thread filled it first; else the first free one along its chain. */
	for (size_t probe = 0; probe < MV_LAYOUTS; probe++, i = (i + 1) & (MV_LAYOUTS - 1)) {
		CUfunction g = atomic_load_explicit(&layouts[i].f, memory_order_relaxed);
		if (g == f) {
			at = &layouts[i];
			break;
		}
		if (g == LAYOUT_GONE && free_at == NULL)
			free_at = &layouts[i];
		if (g == NULL) {
			if (free_at == NULL)
				free_at = &layouts[i];
			break;
		}
	}
	if (at == NULL && free_at != NULL) {
		struct layout *l = at = free_at;
		l->known = tmp.known;
		l->owner = tmp.owner;
		l->ctx = tmp.ctx;
		l->since = since;
		l->n = tmp.n;
		memcpy(l->off_in, tmp.off_in, sizeof(tmp.off_in));
		memcpy(l->size_in, tmp.size_in, sizeof(tmp.size_in));
		l->off = tmp.off == tmp.off_in ? l->off_in : tmp.off;
		l->size = tmp.size == tmp.size_in ? l->size_in : tmp.size;
		tmp.off = l->off;
		atomic_fetch_add_explicit(&nlayouts, 1, memory_order_relaxed);
		atomic_store_explicit(&l->f, f, memory_order_release);
	}
	/* Another thread published f first, or the table is full: the heap arrays are not kept.
	 * Decided under the lock, as a forget may take the slot's arrays as soon as it is let go. */
	kept = at != NULL && tmp.off == at->off;
	pthread_mutex_unlock(&layout_lock);
	if (tmp.off != tmp.off_in && !kept) {
		free((void *)tmp.off);
		free((void *)tmp.size);
	}
	return at != NULL ? at : table_full();
}

/* Forgets the layouts and the function numbers (mv_funcs_forget) of owner's functions, or of the
 * functions of modules loaded in ctx: their handles may name other functions once the module is
 * unloaded (a context's end unloads its modules). Called before the driver unloads a module; a
 * launch of one of them meanwhile is the app's error. A function whose owner the driver would not
 * tell keeps its layout: another thread may be launching it now. */
static void layouts_forget(void *owner, CUcontext ctx, uint64_t before)
{
	pthread_mutex_lock(&layout_lock);
	for (size_t i = 0; i < MV_LAYOUTS; i++) {
		struct layout *l = &layouts[i];
		CUfunction g = atomic_load_explicit(&l->f, memory_order_relaxed);
		if (g == NULL || g == LAYOUT_GONE || !mv_owned_by(l->owner, l->ctx, l->since, owner, ctx, before))
			continue;
		atomic_store_explicit(&l->f, LAYOUT_GONE, memory_order_release);
		atomic_fetch_sub_explicit(&nlayouts, 1, memory_order_relaxed);
		if (l->off != l->off_in) {
			free((void *)l->off);
			free((void *)l->size);
		}
		l->off = l->off_in;
		l->size = l->size_in;
	}
	pthread_mutex_unlock(&layout_lock);
	mv_funcs_forget(owner, ctx, before);
}

void mv_layouts_ctx_ended(CUcontext ctx, uint64_t before)
{
	if (ctx != NULL)
		layouts_forget(NULL, ctx, before);
}

MV_EXPORT CUresult cuModuleUnload(CUmodule m)
{
	if (mv_init() != 0)
		return CUDA_ERROR_NOT_INITIALIZED;
	if (m != NULL)
		layouts_forget(m, NULL, UINT64_MAX);
	return mv_real.cuModuleUnload(m);
}

/* The contexts that functions with a layout were first launched in, each once, into *out (malloc'd;
 * the caller frees): where a library may have a module whose functions memvirt scanned. */
static size_t layout_contexts(CUcontext **out)
{
	size_t n = 0, cap = 0;
	CUcontext *ctxs = NULL;

	pthread_mutex_lock(&layout_lock);
	for (size_t i = 0; i < MV_LAYOUTS; i++) {
		CUfunction g = atomic_load_explicit(&layouts[i].f, memory_order_relaxed);
		CUcontext c = layouts[i].ctx;
		size_t j = 0;
		if (g == NULL || g == LAYOUT_GONE || c == NULL)
			continue;
		while (j < n && ctxs[j] != c)
			j++;
		if (j < n)
			continue;
		if (n == cap) {
			CUcontext *more = realloc(ctxs, (cap = cap ? 2 * cap : 8) * sizeof(*ctxs));
			if (more == NULL)
				break;
			ctxs = more;
		}
		ctxs[n++] = c;
	}
	pthread_mutex_unlock(&layout_lock);
	*out = ctxs;
	return n;
}

/* A library's kernels, and the functions of its module in every context one was launched in. */
MV_EXPORT CUresult cuLibraryUnload(CUlibrary lib)
{
	CUcontext *ctxs = NULL;
	size_t n;

	if (mv_init() != 0)
		return CUDA_ERROR_NOT_INITIALIZED;
	if (lib == NULL)
		return mv_real.cuLibraryUnload(lib);
	layouts_forget(lib, NULL, UINT64_MAX);
	n = mv_real.cuLibraryGetModule != NULL ? layout_contexts(&ctxs) : 0;
	for (size_t i = 0; i < n; i++) {
		CUcontext prev = NULL;
		CUmodule m = NULL;
		int entered = mv_ctx_enter(ctxs[i], &prev);
		/* A context that has ended since has unloaded its modules, and its layouts are gone. */
		if (entered >= 0 && mv_real.cuLibraryGetModule(&m, lib) == CUDA_SUCCESS && m != NULL)
			layouts_forget(m, NULL, UINT64_MAX);
		mv_ctx_leave(entered, prev);
	}
	free(ctxs);
	return mv_real.cuLibraryUnload(lib);
}

static const struct layout *layout_get(CUfunction f)
{
	size_t i = slot_of(f);

	for (size_t probe = 0; probe < MV_LAYOUTS; probe++, i = (i + 1) & (MV_LAYOUTS - 1)) {
		CUfunction g = atomic_load_explicit(&layouts[i].f, memory_order_acquire);
		if (g == f)
			return &layouts[i];
		if (g == NULL)
			break;
	}
	return layout_add(f);
}

/* Appends every 8-byte-aligned word of [base, base+len), which sits at offset `at` of the parameter
 * buffer, to words. */
static size_t scan(const unsigned char *base, size_t at, size_t len, uint64_t *words, size_t n)
{
	size_t first = (at + 7) & ~(size_t)7;

	/* The usual parameter, a pointer or another aligned 8-byte value: one word. */
	if (len == 8 && first == at) {
		uint64_t v;
		memcpy(&v, base, 8);
		if (v != 0 && n < MV_MAX_WORDS)
			words[n++] = v;
		return n;
	}

	for (size_t w = first; w + 8 <= at + len && n < MV_MAX_WORDS; w += 8) {
		uint64_t v;
		memcpy(&v, base + (w - at), 8);
		if (v != 0)
			words[n++] = v;
	}
	return n;
}

static __thread uint64_t tl_words[MV_MAX_WORDS];

/* The words of a launch whose layout is unknown. Where the safety net maps paged-out buffers onto
 * their host copies, none: a launch reads them there. Without it, every buffer memvirt serves, so
 * that all come back before the launch and none leaves while it runs. */
static size_t fallback_words(uint64_t *words)
{
	if (mv_dev()->host_vmm)
		return 0;
	return mv_registry_large(words, MV_MAX_WORDS);
}

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
			return fallback_words(words);
		for (unsigned i = 0; i < l->n && params[i] != NULL; i++)
			n = scan(params[i], l->off[i], l->size[i], words, n);
	}
	return n;
}

/* ---- the one routine ---- */

static _Atomic uint64_t epochs = 1;
/* The global use clock: buffers used longest ago are paged out first. */
static _Atomic uint64_t use_clock;
/* Busy marks held by every submission in flight, and by this thread's; threads waiting in
 * mv_make_room for busy buffers, whom a finished submission wakes. */
static _Atomic uint64_t busy_total;
static __thread uint64_t busy_mine;
static _Atomic int busy_waiters;
/* This thread's submission while it makes its buffers resident, whose marks mv_busy_park lets go,
 * and how many times it has done so. */
struct submission;
static __thread struct submission *making;
static __thread unsigned parks;

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
	int quiet; /* memvirtd's plan is followed quietly: no events for this launch */
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
	if (!mv_link_is_up())
		return;
	if (l->quiet || mv_link_launches_unwanted())
		mv_count_add(MV_COUNTER_launches_quiet, 1);
	else
		mv_link_launch(stream_ix, l->flags != 0 ? l->fn : 0, named, n);
}

/* Collects the buffer holding addr into named[] once per submission; called with mv_lock held. */
static inline size_t collect(uint64_t addr, uint64_t epoch, struct mv_buf **named, unsigned char *moving, size_t n)
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
	/* Left in host memory and reached over the link (partial residency), nhost of them; held
	 * there (mv_host_runs_take) once host_held is set. Set only by make_named_resident. */
	unsigned char on_host[MV_MAX_NAMED];
	size_t nhost;
	int host_held;
	int parked;                  /* its busy marks are let go while it waits for room */
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
	sub->l.quiet = 0;
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
 * untracked one, or as pinned for mv_submit_pinned. Called with mv_lock held. */
static inline void record_uses(struct submission *sub)
{
	uint64_t now = atomic_fetch_add_explicit(&use_clock, 1, memory_order_relaxed) + 1;

	if (sub->s != NULL)
		sub->ticket = mv_stream_begin(sub->s);
	for (size_t i = 0; i < sub->n; i++) {
		struct mv_buf *b = sub->named[i];
		if (sub->capturing)
			mv_buf_pin(b); /* mv_submit_pinned: it stays put for good */
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
		sub->l.quiet = mv_exec_on_launch(sub->l.fn, sub->named, sub->n, &sub->step);
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

static void busy_take(struct mv_buf *const *named, size_t n)
{
	for (size_t i = 0; i < n; i++)
		atomic_fetch_add_explicit(&named[i]->busy, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&busy_total, n, memory_order_relaxed);
	busy_mine += n;
}

int mv_busy_park(void)
{
	struct submission *sub = making;

	if (sub == NULL || sub->parked || sub->n == 0)
		return -1;
	for (size_t i = 0; i < sub->n; i++)
		atomic_fetch_sub_explicit(&sub->named[i]->busy, 1, memory_order_release);
	atomic_fetch_sub_explicit(&busy_total, sub->n, memory_order_relaxed);
	busy_mine -= sub->n;
	sub->parked = 1;
	parks++;
	mv_wake_unbusy();
	return 0;
}

void mv_busy_unpark(void)
{
	struct submission *sub = making;

	if (sub != NULL && sub->parked) {
		busy_take(sub->named, sub->n);
		sub->parked = 0;
	}
}

int mv_busy_holds(void)
{
	return making != NULL && !making->parked && making->n > 0;
}

/* Makes named[i] resident, or, for work that is not being captured, leaves it in host memory
 * where no room can be made for it and the link reaches it there. */
static CUresult resident_or_on_host(struct submission *sub, size_t i)
{
	int on_host = 0;
	CUresult r = mv_make_resident(sub->named[i], sub->handle, sub->capturing, sub->capturing ? NULL : &on_host);

	if (r == CUDA_SUCCESS && on_host != sub->on_host[i]) {
		sub->nhost = on_host ? sub->nhost + 1 : sub->nhost - 1;
		sub->on_host[i] = (unsigned char)on_host;
	}
	return r;
}

/* Makes the named buffers resident, or some of them reachable on the host. A wait for room may let
 * their marks go (mv_busy_park), and then any of them may have been paged out meanwhile: all are
 * looked at again until a pass goes through with the marks held throughout. Those left on the host
 * are held there last, all at once, so that no thread waits for room while it holds one there;
 * should one have left the host meanwhile, every buffer is looked at again. */
static CUresult make_named_resident(struct submission *sub)
{
	CUresult r = CUDA_SUCCESS;
	unsigned before = parks;
	int again = 0;

	making = sub;
	sub->parked = 0;
	memset(sub->on_host, 0, sub->n);
	sub->nhost = 0;
	sub->host_held = 0;
	do {
		for (size_t i = 0; i < sub->n && r == CUDA_SUCCESS; i++)
			if (again ? sub->named[i]->kind == MV_KIND_LARGE : sub->moving[i])
				r = resident_or_on_host(sub, i);
		while (r == CUDA_SUCCESS && parks != before) {
			before = parks;
			for (size_t i = 0; i < sub->n && r == CUDA_SUCCESS; i++)
				if (sub->named[i]->kind == MV_KIND_LARGE)
					r = resident_or_on_host(sub, i);
		}
		again = 1;
	} while (r == CUDA_SUCCESS && sub->nhost > 0 && mv_host_runs_take(sub->named, sub->on_host, sub->n) != 0);
	sub->host_held = r == CUDA_SUCCESS && sub->nhost > 0;
	making = NULL;
	return r;
}

/* For a submission that names buffers: makes them resident, enqueues the work, marks its place on
 * the stream, and lets the buffers go. */
static inline CUresult submit_named(struct submission *sub, CUresult (*submit)(void *arg), void *arg)
{
	CUresult r = CUDA_SUCCESS;

	sub->host_held = 0;
	atomic_fetch_add_explicit(&busy_total, sub->n, memory_order_relaxed);
	busy_mine += sub->n;
	for (size_t i = 0; i < sub->n; i++)
		if (sub->moving[i]) {
			r = make_named_resident(sub);
			break;
		}
	if (r == CUDA_SUCCESS)
		r = submit(arg);
	/* While the buffers are still busy: none can be freed and reused meanwhile. */
	after_submit(&sub->l, sub->stream_ix, sub->named, sub->n, sub->handle, sub->capturing);
	if (sub->s != NULL)
		mv_stream_end(sub->s, sub->ticket);
	else if (!sub->capturing)
		/* An untracked stream: its last uses cannot be named, so wait them out now. */
		mv_real.cuStreamSynchronize(sub->handle);
	if (sub->host_held)
		mv_host_runs_drop(sub->named, sub->on_host, sub->n, r == CUDA_SUCCESS);
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
	if (sub.capturing) {
		/* Recorded, not run: the graph's launches bring its buffers in. */
		mv_graph_capture_add(h, per_thread, words, nwords);
		r = submit(arg);
		after_submit(&sub.l, sub.stream_ix, sub.named, 0, sub.handle, sub.capturing);
		return r;
	}
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

/* Buffers the driver keeps using where memvirt cannot follow it: made resident now and pinned for
 * good, with no stream to order. submit binds them, adds or updates a graph node, or does
 * nothing. */
CUresult mv_submit_pinned(const uint64_t *words, size_t nwords, CUresult (*submit)(void *arg), void *arg)
{
	struct submission sub;

	sub.l.flags = 0;
	sub.l.quiet = 0;
	sub.handle = CU_STREAM_LEGACY;
	sub.capturing = 1;
	sub.s = NULL;
	sub.stream_ix = 0;
	sub.ticket = 0;
	sub.step.n = 0;
	CUresult r;

	collect_named(&sub, words, nwords);
	if (sub.n == 0)
		return submit(arg);
	r = submit_named(&sub, submit, arg);
	/* A call the driver refused (or that could not be made) holds nothing: its pins go. */
	if (r != CUDA_SUCCESS) {
		mv_lock();
		for (size_t i = 0; i < sub.n; i++)
			mv_buf_unpin(sub.named[i]);
		mv_unlock();
	}
	return r;
}

_Static_assert(MV_MAX_SCAN_WORDS == MV_MAX_WORDS, "the scan's bound is the callers'");

size_t mv_kernel_words(CUfunction f, void **params, void **extra, uint64_t *words)
{
	return kernel_words(f, params, extra, words);
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
	mv_count_add(MV_COUNTER_launches, 1);
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
	mv_count_add(MV_COUNTER_launches, 1);
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

