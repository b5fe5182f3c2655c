/* The allocator: every device allocation entry point, served from virtual memory with stable
 * addresses. Allocations of at least the slab threshold get address space and pages of their own and
 * can be paged; smaller ones are carved from slab chunks and never are. Freed memory is reused only
 * once its last uses have completed, so a free never synchronises the device. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "interpose/internal.h"
#include "protocol/proto.h"
#include "protocol/units.h"

/* Buffer numbers, in allocation order: the learner's identity for a buffer. */
static _Atomic uint32_t next_buf_id;

/* ---- the slab ---- */

#define MV_SLAB_MIN 256
#define MV_SLAB_CLASSES 48

/* A freed block waits on this list until its last uses complete. Guarded by mv_lock. */
struct slab_class {
	uint64_t size;
	struct mv_buf *free;    /* ready for reuse */
	struct mv_buf *pending; /* freed, uses maybe still running */
};

static struct slab_class classes[MV_SLAB_CLASSES];

/* Bytes of address space and pages for size bytes: whole granules. */
static uint64_t span_of(uint64_t size)
{
	uint64_t g = mv_dev()->granularity;

	return (size + g - 1) / g * g;
}

static unsigned class_of(uint64_t size, uint64_t *csize)
{
	uint64_t c = MV_SLAB_MIN;
	unsigned i = 0;

	while (c < size) {
		c <<= 1;
		i++;
	}
	*csize = c;
	return i;
}

static int uses_done(struct mv_buf *b)
{
	if (b->uses_overflow)
		return 0;
	for (int i = 0; i < b->nuses; i++) {
		struct mv_stream *s = mv_stream_at(b->uses[i].stream);
		if (s != NULL && !mv_stream_ticket_done(s, b->uses[i].ticket))
			return 0;
	}
	return 1;
}

/* Whether every recorded use of b was on stream s: then work s does later is ordered after them. */
static int uses_only_on(struct mv_buf *b, struct mv_stream *s)
{
	if (b->uses_overflow || s == NULL)
		return 0;
	for (int i = 0; i < b->nuses; i++)
		if (b->uses[i].stream != mv_stream_index(s))
			return 0;
	return 1;
}

/* A new slab chunk carved into blocks of class c, whose size is csize. Called without mv_lock, so
 * the size comes from the caller rather than from c. */
static CUresult slab_grow(struct slab_class *c, uint64_t csize)
{
	uint64_t span = span_of(csize);
	uint64_t n = span / csize;
	CUmemGenericAllocationHandle dev;
	CUdeviceptr va;
	struct mv_buf *blocks;
	CUresult r;

	blocks = calloc(n, sizeof(*blocks));
	if (blocks == NULL)
		return CUDA_ERROR_OUT_OF_MEMORY;
	r = mv_new_range(span, &va, &dev, 0);
	if (r != CUDA_SUCCESS) {
		free(blocks);
		return r;
	}
	mv_lock();
	for (uint64_t i = 0; i < n; i++) {
		blocks[i].va = va + i * csize;
		blocks[i].kind = MV_KIND_SLAB;
		blocks[i].next = c->free;
		c->free = &blocks[i];
	}
	mv_unlock();
	return CUDA_SUCCESS;
}

static CUresult slab_alloc(uint64_t size, struct mv_stream *s, uint64_t site, uint64_t *out)
{
	uint64_t csize;
	struct slab_class *c = &classes[class_of(size, &csize)];

	for (;;) {
		struct mv_buf *b = NULL;
		CUresult r;

		mv_lock();
		c->size = csize;
		/* Freed blocks whose uses have completed, or ran only on the allocating stream, are ready. */
		for (struct mv_buf **p = &c->pending; *p != NULL;) {
			struct mv_buf *q = *p;
			if (uses_done(q) || uses_only_on(q, s)) {
				*p = q->next;
				q->next = c->free;
				c->free = q;
			} else {
				p = &q->next;
			}
		}
		if (c->free != NULL) {
			b = c->free;
			c->free = b->next;
			b->next = NULL;
			b->size = size;
			b->freed = 0;
			b->nuses = 0;
			b->uses_overflow = 0;
			b->nrefs = 0;
			b->lru = mv_clock_now();
			b->site = site;
			b->ibuf = UINT32_MAX;
			b->id = atomic_fetch_add_explicit(&next_buf_id, 1, memory_order_relaxed);
			if (mv_registry_add(b) != 0) {
				b->next = c->free;
				c->free = b;
				mv_unlock();
				return CUDA_ERROR_OUT_OF_MEMORY;
			}
			mv_unlock();
			*out = b->va;
			return CUDA_SUCCESS;
		}
		mv_unlock();
		r = slab_grow(c, csize);
		if (r != CUDA_SUCCESS)
			return r;
	}
}

/* ---- the free cache ---- */

/* Freed large buffers whose pages are kept for the next allocation of the same span, oldest first:
 * still charged against the budget, and the first thing mv_make_room gives back. Guarded by
 * mv_lock. */
static struct mv_buf *cache;

void mv_cache_put(struct mv_buf *b)
{
	b->freed = 1;
	b->nuses = 0;
	b->uses_overflow = 0;
	b->nrefs = 0;
	mv_list_push(&cache, b);
}

struct mv_buf *mv_cache_take(uint64_t span)
{
	for (struct mv_buf **p = &cache; *p != NULL; p = &(*p)->next) {
		if ((*p)->span == span) {
			struct mv_buf *b = *p;
			*p = b->next;
			b->next = NULL;
			return b;
		}
	}
	return NULL;
}

struct mv_buf *mv_cache_pop(void)
{
	return mv_list_pop(&cache);
}

void mv_release_later(struct mv_buf *b)
{
	b->freed = 1;
	/* One on the move is queued by whoever completes the move: the pager, after a page-in or a
	 * page-out (rescued or not). */
	if ((b->state == MV_RESIDENT && !b->ready_pending) || b->state == MV_HOST)
		mv_pager_release(b);
	mv_pager_kick();
}

void mv_buf_discard(struct mv_buf *b)
{
	if (b->state == MV_HOST) {
		mv_net_unmap(b);
		mv_host_free(b->host);
		b->host = NULL;
		mv_count_sub(MV_COUNTER_host_bytes, b->span);
		mv_real.cuMemAddressFree(b->va, b->span);
	} else {
		mv_free_range(b->va, b->span, b->dev);
	}
	mv_real.cuEventDestroy_v2(b->moved);
	mv_real.cuEventDestroy_v2(b->mstart);
	free(b);
}

/* ---- large buffers ---- */

/* Whether a new buffer has been placed in host memory yet: the first is said at info. Placements
 * refused so far: the 1st, 10th, 100th, ... is said at warn, as refusals of room are. */
static _Atomic int placed_told;
static _Atomic uint64_t placed_refused;

/* A new buffer no room can be made for, where the safety net maps host memory: it starts there, as
 * if paged out (partial residency), and is brought in when work needs it and room allows. */
static CUresult host_placed(struct mv_buf *b, uint64_t size, CUdeviceptr *va)
{
	char a[32], c[32];
	CUresult r = mv_new_host_range(b);

	if (r != CUDA_SUCCESS) {
		uint64_t n = atomic_fetch_add(&placed_refused, 1) + 1;
		mv_log(mv_refusal_shown(n) ? MV_LOG_WARN : MV_LOG_INFO,
		       "cannot allocate %llu bytes: CUDA_ERROR_OUT_OF_MEMORY; no room can be made for them under "
		       "the budget of %s, nor in host memory (the pinned host pool is at MEMVIRT_HOST_LIMIT, or "
		       "the range could not be reserved or mapped there) [refusal %llu]", (unsigned long long)size,
		       mv_format_size(mv_budget_now(), a, sizeof(a)), (unsigned long long)n);
		mv_count_add(MV_COUNTER_oom, 1);
		return r;
	}
	*va = b->va;
	mv_count_add(MV_COUNTER_host_bytes, b->span);
	mv_log(atomic_exchange(&placed_told, 1) ? MV_LOG_DEBUG : MV_LOG_INFO,
	       "allocation of %s at %#llx placed in host memory, reached over the link: no room can be made "
	       "for it under the budget of %s", mv_format_size(size, c, sizeof(c)), (unsigned long long)b->va,
	       mv_format_size(mv_budget_now(), a, sizeof(a)));
	return CUDA_SUCCESS;
}

static CUresult large_alloc(uint64_t size, uint64_t site, uint64_t *out)
{
	uint64_t span = span_of(size);
	struct mv_buf *b;
	CUdeviceptr va;
	CUcontext prev = NULL;
	int entered;
	CUresult r;

	mv_lock();
	b = mv_cache_take(span);
	if (b != NULL) {
		/* Cached pages of a freed buffer, its last uses complete: still charged, reused as they are. */
		b->size = size;
		b->freed = 0;
		b->pinned = 0;
		b->lru = mv_clock_now();
		b->site = site;
		b->ibuf = UINT32_MAX;
		b->planned_in = 0;
		b->id = atomic_fetch_add_explicit(&next_buf_id, 1, memory_order_relaxed);
		if (mv_registry_add(b) == 0) {
			mv_unlock();
			*out = b->va;
			return CUDA_SUCCESS;
		}
		mv_release_later(b);
		mv_unlock();
		return CUDA_ERROR_OUT_OF_MEMORY;
	}
	mv_unlock();

	b = calloc(1, sizeof(*b));
	if (b == NULL)
		return CUDA_ERROR_OUT_OF_MEMORY;
	/* Timed, so that the learner knows what a page copy costs; in the paged context, as they are
	 * recorded on memvirt's copy streams. */
	entered = mv_ctx_enter(mv_dev()->ctx, &prev);
	/* Events of another context would never be recorded there. */
	r = entered < 0 ? CUDA_ERROR_INVALID_CONTEXT : mv_real.cuEventCreate(&b->moved, 0);
	if (r == CUDA_SUCCESS) {
		r = mv_real.cuEventCreate(&b->mstart, 0);
		if (r != CUDA_SUCCESS)
			mv_real.cuEventDestroy_v2(b->moved);
	}
	mv_ctx_leave(entered, prev);
	if (r != CUDA_SUCCESS)
		goto err_event;
	b->span = span;
	r = mv_new_range(span, &va, &b->dev, 1);
	if (r == MV_ROOM_ON_HOST)
		r = host_placed(b, size, &va);
	if (r != CUDA_SUCCESS)
		goto err_range;
	b->va = va;
	b->size = size;
	b->kind = MV_KIND_LARGE;
	b->state = b->host != NULL ? MV_HOST : MV_RESIDENT;
	b->lru = mv_clock_now();
	b->site = site;
	b->ibuf = UINT32_MAX;
	mv_lock();
	b->id = atomic_fetch_add_explicit(&next_buf_id, 1, memory_order_relaxed);
	if (mv_registry_add(b) != 0) {
		mv_unlock();
		mv_buf_discard(b);
		return CUDA_ERROR_OUT_OF_MEMORY;
	}
	mv_unlock();
	*out = va;
	return CUDA_SUCCESS;
err_range:
	mv_real.cuEventDestroy_v2(b->moved);
	mv_real.cuEventDestroy_v2(b->mstart);
err_event:
	free(b);
	return r;
}

/* Every allocation entry point ends here. s is the stream of a stream-ordered allocation. */
/* Serves an allocation; pool, when not NULL, is the stream-ordered pool whose usage figures count
 * it (mempool.c). */
static CUresult alloc(CUdeviceptr *dptr, size_t size, struct mv_stream *s, CUmemoryPool pool)
{
	CUresult r;
	uint64_t va, site = 0;
	unsigned learn;

	if (dptr == NULL || size == 0)
		return CUDA_ERROR_INVALID_VALUE;
	r = mv_device_init();
	if (r != CUDA_SUCCESS)
		return r;
	learn = mv_learn_flags_now();
	if ((learn & MV_LEARN_ON) || mv_link_is_up())
		site = mv_site_hash();
	if (size < mv_cfg.slab_threshold)
		r = slab_alloc(size, s, site, &va);
	else
		r = large_alloc(size, site, &va);
	if (r == CUDA_SUCCESS) {
		*dptr = va;
		if ((learn & MV_LEARN_ON) || pool != NULL) {
			struct mv_buf *b;
			mv_lock();
			b = mv_registry_find(va);
			if (b != NULL && (learn & MV_LEARN_ON))
				mv_learn_alloc(b, b->kind == MV_KIND_SLAB || b->pinned);
			if (b != NULL && b->va == va && pool != NULL)
				mv_mempool_charge(b, pool);
			mv_unlock();
		}
		mv_link_event(MV_EV_ALLOC, s != NULL ? mv_stream_index(s) + 1 : 0, va, size, site);
	} else if (r == CUDA_ERROR_OUT_OF_MEMORY) {
		uint64_t limit, resident;
		mv_budget_read(&limit, &resident);
		mv_log(MV_LOG_INFO, "out of memory: %zu bytes asked, budget %llu, resident %llu", size,
		       (unsigned long long)limit, (unsigned long long)resident);
	}
	return r;
}

/* Frees va; s is the stream of a stream-ordered free, whose point in s counts as a last use. Returns
 * CUDA_ERROR_INVALID_VALUE for an address that is not the start of a live allocation. */
static CUresult release(CUdeviceptr va, struct mv_stream *s)
{
	struct mv_buf *b;
	uint64_t t = 0;
	int idle;

	if (s != NULL) {
		/* The free's place in the stream is its last use there. */
		t = mv_stream_begin(s);
		mv_stream_end(s, t);
	}
	mv_lock();
	b = mv_registry_find(va);
	if (b == NULL) {
		mv_unlock();
		/* Not memvirt's: another device's allocation, which the driver served, or none at all,
		 * which the driver refuses. */
		if (s == NULL)
			return mv_real.cuMemFree_v2(va);
		return (s->per_thread ? mv_real.cuMemFreeAsync_ptsz : mv_real.cuMemFreeAsync)(va, s->handle);
	}
	if (b->va != va) {
		mv_unlock();
		return CUDA_ERROR_INVALID_VALUE;
	}
	mv_registry_remove(b);
	mv_mempool_uncharge(b);
	if (mv_learn_flags_now() & MV_LEARN_ON)
		mv_learn_free(b->id);
	if (b->ibuf != UINT32_MAX)
		mv_exec_unbind(b);
	mv_link_event(MV_EV_FREE, s != NULL ? mv_stream_index(s) + 1 : 0, va, b->size, 0);
	if (s != NULL)
		mv_buf_use(b, s, t, mv_clock_now());
	if (b->kind == MV_KIND_SLAB) {
		uint64_t csize;
		struct slab_class *c = &classes[class_of(b->size, &csize)];
		b->freed = 1;
		b->next = c->pending;
		c->pending = b;
		mv_unlock();
		return CUDA_SUCCESS;
	}
	idle = b->state == MV_RESIDENT && !b->ready_pending;
	mv_unlock();
	/* Out of the registry, b is this thread's alone until it is queued. Pages whose last uses
	 * have already completed go straight to the free cache, ready for the next allocation. */
	idle = idle && uses_done(b);
	mv_lock();
	if (idle)
		mv_cache_put(b);
	else
		mv_release_later(b);
	mv_wake_room();
	mv_unlock();
	return CUDA_SUCCESS;
}

/* Whether memvirt serves this process's allocations; until the first one, hooks pass through. */
static int serving(void)
{
	return mv_init() == 0;
}

/* Whether an allocation in the calling thread's context is the driver's to serve (mv_not_paged). */
static int other_device(void)
{
	CUresult r = mv_device_init();

	return r == MV_NOT_THIS_DEVICE || (r == CUDA_SUCCESS && mv_not_paged());
}

MV_EXPORT CUresult cuMemAlloc_v2(CUdeviceptr *dptr, size_t bytes)
{
	CUresult r;

	if (!serving())
		return CUDA_ERROR_NOT_INITIALIZED;
	r = mv_capture_probe();
	if (r == CUDA_SUCCESS && other_device())
		return mv_real.cuMemAlloc_v2(dptr, bytes);
	return r != CUDA_SUCCESS ? r : alloc(dptr, bytes, NULL, NULL);
}

MV_EXPORT CUresult cuMemAllocPitch_v2(CUdeviceptr *dptr, size_t *pitch, size_t width, size_t height,
				      unsigned int elem)
{
	size_t p;
	CUresult r;

	if (!serving())
		return CUDA_ERROR_NOT_INITIALIZED;
	if (dptr == NULL || pitch == NULL || width == 0 || height == 0 || (elem != 4 && elem != 8 && elem != 16))
		return CUDA_ERROR_INVALID_VALUE;
	/* The same 512-byte row alignment the driver uses. */
	p = (width + 511) & ~(size_t)511;
	if (height > SIZE_MAX / p)
		return CUDA_ERROR_INVALID_VALUE;
	r = mv_capture_probe();
	if (r != CUDA_SUCCESS)
		return r;
	if (other_device())
		return mv_real.cuMemAllocPitch_v2(dptr, pitch, width, height, elem);
	*pitch = p;
	return alloc(dptr, p * height, NULL, NULL);
}

MV_EXPORT CUresult cuMemFree_v2(CUdeviceptr dptr)
{
	CUresult r;

	if (!serving())
		return CUDA_ERROR_NOT_INITIALIZED;
	if (dptr == 0)
		return CUDA_SUCCESS;
	r = mv_capture_probe();
	if (r == CUDA_SUCCESS && (r = mv_graph_mem_free(dptr, NULL, 0, 1)) == CUDA_ERROR_NOT_FOUND)
		r = release(dptr, NULL);
	return r;
}

/* The driver serves it: during a capture (the driver records an alloc node: graph memory, which a
 * launch of the graph charges against the budget, graph.c), or in a context on a device memvirt
 * does not page. */
static CUresult driver_alloc(CUdeviceptr *dptr, size_t bytes, CUstream h, int per_thread, CUmemoryPool pool)
{
	if (pool != NULL)
		return (per_thread ? mv_real.cuMemAllocFromPoolAsync_ptsz : mv_real.cuMemAllocFromPoolAsync)(dptr, bytes,
													     pool, h);
	return (per_thread ? mv_real.cuMemAllocAsync_ptsz : mv_real.cuMemAllocAsync)(dptr, bytes, h);
}

/* A stream-ordered allocation from pool, or from the device's current pool when pool is NULL:
 * memvirt serves it, and counts it in that pool's usage figures (mempool.c). */
static CUresult alloc_async(CUdeviceptr *dptr, size_t bytes, CUstream h, int per_thread, CUmemoryPool pool)
{
	if (!serving())
		return CUDA_ERROR_NOT_INITIALIZED;
	if (mv_capturing(h, per_thread) || other_device())
		return driver_alloc(dptr, bytes, h, per_thread, pool);
	if (mv_device_init() != CUDA_SUCCESS)
		return CUDA_ERROR_INVALID_CONTEXT;
	if (pool == NULL && mv_real.cuDeviceGetMemPool(&pool, mv_dev()->device) != CUDA_SUCCESS)
		pool = NULL;
	return alloc(dptr, bytes, mv_stream_get(h, per_thread), pool);
}

MV_EXPORT CUresult cuMemAllocAsync(CUdeviceptr *dptr, size_t bytes, CUstream h)
{
	return alloc_async(dptr, bytes, h, 0, NULL);
}

MV_EXPORT CUresult cuMemAllocAsync_ptsz(CUdeviceptr *dptr, size_t bytes, CUstream h)
{
	return alloc_async(dptr, bytes, h, 1, NULL);
}

/* Pools other than the device's default one are served by memvirt all the same: their attributes
 * (release threshold, IPC) do not change where the memory comes from. */
MV_EXPORT CUresult cuMemAllocFromPoolAsync(CUdeviceptr *dptr, size_t bytes, CUmemoryPool pool, CUstream h)
{
	if (pool == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	return alloc_async(dptr, bytes, h, 0, pool);
}

MV_EXPORT CUresult cuMemAllocFromPoolAsync_ptsz(CUdeviceptr *dptr, size_t bytes, CUmemoryPool pool, CUstream h)
{
	if (pool == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	return alloc_async(dptr, bytes, h, 1, pool);
}

/* Whether va is the start of one of memvirt's buffers. */
static int served(CUdeviceptr va)
{
	struct mv_buf *b;
	int yes;

	mv_lock();
	b = mv_registry_find(va);
	yes = b != NULL && b->va == va;
	mv_unlock();
	return yes;
}

static CUresult free_async(CUdeviceptr dptr, CUstream h, int per_thread)
{
	struct mv_stream *s;
	CUresult r;

	if (!serving())
		return CUDA_ERROR_NOT_INITIALIZED;
	/* During capture the driver records a free node, of graph memory; memvirt's own buffers cannot
	 * be freed by a graph. */
	if (mv_capturing(h, per_thread))
		return served(dptr) ? CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED
				    : (per_thread ? mv_real.cuMemFreeAsync_ptsz : mv_real.cuMemFreeAsync)(dptr, h);
	if ((r = mv_graph_mem_free(dptr, h, per_thread, 0)) != CUDA_ERROR_NOT_FOUND)
		return r;
	s = mv_stream_get(h, per_thread);
	if (s == NULL) {
		/* No room to track the stream: wait for it, then free as if synchronously. */
		mv_real.cuStreamSynchronize(h == NULL && per_thread ? CU_STREAM_PER_THREAD : h);
	}
	return release(dptr, s);
}

MV_EXPORT CUresult cuMemFreeAsync(CUdeviceptr dptr, CUstream h)
{
	return free_async(dptr, h, 0);
}

MV_EXPORT CUresult cuMemFreeAsync_ptsz(CUdeviceptr dptr, CUstream h)
{
	return free_async(dptr, h, 1);
}

/* The budget is the device's size as the app sees it; another device's is the driver's answer. */
MV_EXPORT CUresult cuMemGetInfo_v2(size_t *free_bytes, size_t *total)
{
	uint64_t limit, resident;
	CUresult r;

	if (!serving())
		return CUDA_ERROR_NOT_INITIALIZED;
	if (free_bytes == NULL || total == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	r = mv_device_init();
	if (r != CUDA_SUCCESS || mv_not_paged())
		return mv_real.cuMemGetInfo_v2(free_bytes, total);
	mv_budget_read(&limit, &resident);
	*total = limit;
	*free_bytes = resident < limit ? limit - resident : 0;
	return CUDA_SUCCESS;
}

MV_EXPORT CUresult cuMemGetAddressRange_v2(CUdeviceptr *base, size_t *size, CUdeviceptr dptr)
{
	struct mv_buf *b;

	if (!serving())
		return CUDA_ERROR_NOT_INITIALIZED;
	mv_lock();
	b = mv_registry_find(dptr);
	if (b != NULL) {
		if (base != NULL)
			*base = b->va;
		if (size != NULL)
			*size = b->size;
	}
	mv_unlock();
	return b != NULL ? CUDA_SUCCESS : mv_real.cuMemGetAddressRange_v2(base, size, dptr);
}

int mv_alloc_describe(uint64_t addr, struct mv_alloc_info *info)
{
	struct mv_buf *b;

	if (mv_init() != 0)
		return 0;
	mv_lock();
	b = mv_registry_find(addr);
	if (b != NULL && info != NULL)
		*info = (struct mv_alloc_info){.va = b->va, .size = b->size, .id = b->id};
	mv_unlock();
	return b != NULL;
}

/* ---- the app's own VMM allocations ---- */

#define MV_APP_HANDLES 4096

/* Guarded by mv_lock: device-located handles the app created, and their sizes. */
static struct {
	CUmemGenericAllocationHandle h;
	uint64_t size;
} app_handles[MV_APP_HANDLES];

/* Counted against the budget like everything else on the device, but never paged: memvirt does not
 * know which of their mappings are in use. */
MV_EXPORT CUresult cuMemCreate(CUmemGenericAllocationHandle *handle, size_t size, const CUmemAllocationProp *prop,
			       unsigned long long flags)
{
	CUresult r;
	int device = prop != NULL && prop->location.type == CU_MEM_LOCATION_TYPE_DEVICE;

	if (!serving())
		return CUDA_ERROR_NOT_INITIALIZED;
	/* Another device's memory is the driver's to count, whichever context is current, and so is
	 * all of it once the paged context has ended. */
	if (!device || mv_device_init() != CUDA_SUCCESS || prop->location.id != mv_dev()->device ||
	    mv_paged_ctx_gone())
		return mv_real.cuMemCreate(handle, size, prop, flags);
	r = mv_make_room(size);
	if (r != CUDA_SUCCESS)
		return r;
	r = mv_real.cuMemCreate(handle, size, prop, flags);
	if (r != CUDA_SUCCESS) {
		mv_uncharge(size);
		return r;
	}
	mv_lock();
	for (int i = 0; i < MV_APP_HANDLES; i++) {
		if (app_handles[i].h == 0) {
			app_handles[i].h = *handle;
			app_handles[i].size = size;
			mv_count_add(MV_COUNTER_app_vmm_bytes, size);
			size = 0;
			break;
		}
	}
	mv_unlock();
	/* Untracked (the table is full): give the charge back rather than hold it forever. */
	if (size != 0)
		mv_uncharge(size);
	return CUDA_SUCCESS;
}

MV_EXPORT CUresult cuMemRelease(CUmemGenericAllocationHandle handle)
{
	CUresult r;
	uint64_t size = 0;

	if (!serving())
		return CUDA_ERROR_NOT_INITIALIZED;
	r = mv_real.cuMemRelease(handle);
	if (r != CUDA_SUCCESS)
		return r;
	mv_lock();
	for (int i = 0; i < MV_APP_HANDLES; i++) {
		if (app_handles[i].h == handle && handle != 0) {
			size = app_handles[i].size;
			app_handles[i].h = 0;
			break;
		}
	}
	mv_unlock();
	if (size != 0) {
		mv_count_sub(MV_COUNTER_app_vmm_bytes, size);
		mv_uncharge(size);
	}
	return CUDA_SUCCESS;
}
