/* Residency: the budget, page-out and page-in, the pinned host pool, and the pager thread.
 *
 * A buffer moves RESIDENT -> EVICTING -> HOST -> FETCHING -> RESIDENT. Page-out: the D2H copy
 * stream waits for the buffer's last use on every stream, copies it to its host slot and records
 * `moved`; the pager waits for that, unmaps and releases the device pages and, where the device can
 * map host memory, maps the range onto the host copy (the safety net). Page-in: new device pages at
 * the same address, an H2D copy, `moved` recorded; every stream that uses the buffer next waits on
 * it until the pager has seen it complete. */
#include "config.h"

#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "interpose/internal.h"
#include "protocol/proto.h"
#include "protocol/units.h"

/* Resident device bytes (memvirt's buffers and slab chunks, and the app's own VMM allocations)
 * against the budget. Guarded by mv_lock. */
static struct {
	uint64_t limit;      /* in force: the daemon's grant while linked, else `local` */
	uint64_t local;      /* MEMVIRT_BUDGET, or the device's memory; set once, before the link starts */
	uint64_t resident;   /* charged device bytes, including reservations in progress */
	uint64_t evicting;   /* bytes whose page-out is in flight */
} budget;

/* Set when the pool runs low, so that the pager grows it before an eviction has to. Guarded by
 * mv_lock. */
static int pool_grow_wanted;

static void pager_kick(void);

/* ---- the pager ---- */

/* Guarded by mv_lock: buffers whose page-out was issued, whose page-in was issued, and freed
 * buffers waiting for their last uses; the free cache; stall measurements. */
static struct mv_buf *outq, *inq, *relq;
/* Planned page-outs whose copies the pager leaves alone until their room is wanted: seeing a
 * copy complete waits for it, and a plan's page-out has nothing waiting on it until then. */
static struct mv_buf *lazyq;
/* Planned page-ins likewise: launches order themselves after the copy on the device, so the pager
 * completes one once a launch has used the buffer, or when room is wanted. */
static struct mv_buf *lazyinq;
static int room_wanted;  /* threads waiting for room or for a move to end */
static int lazy_flush;   /* a launch took back a buffer whose planned page-out is in flight */
static struct mv_buf *cache;
static uint64_t releasing_bytes;
/* Page-ins issued and not yet seen complete by the pager: each still holds its host slot. */
static uint64_t landing;
static int pager_running;
static pthread_cond_t pager_cond = PTHREAD_COND_INITIALIZER;

/* Planned page-ins waiting for page-outs in flight to make room, in plan order. Guarded by
 * mv_lock; each holds a busy mark on its buffer. */
#define MV_PLANQ 64
static struct mv_buf *planq[MV_PLANQ];
static int nplanq;
static void planq_run(void);

#define MV_STALLS 256
static struct {
	CUevent a, b;
} stalls[MV_STALLS];
static int nstalls;

static void push(struct mv_buf **q, struct mv_buf *b)
{
	b->next = NULL;
	while (*q != NULL)
		q = &(*q)->next;
	*q = b;
}

static struct mv_buf *pop(struct mv_buf **q)
{
	struct mv_buf *b = *q;
	if (b != NULL)
		*q = b->next;
	return b;
}

/* The device time of b's last page copy, which has completed. */
static uint64_t copy_ns(struct mv_buf *b)
{
	float ms = 0;

	if (mv_real.cuEventElapsedTime(&ms, b->mstart, b->moved) != CUDA_SUCCESS || ms < 0)
		return 0;
	return (uint64_t)((double)ms * 1e6);
}

/* Completes one page-out: called by the pager once its copy has finished. */
static void finish_page_out(struct mv_buf *b)
{
	CUmemGenericAllocationHandle dev;
	/* For the log lines: once the lock is let go, a freed b may be released and reused. */
	uint64_t va = b->va;

	mv_lock();
	if (b->rescue) {
		/* A launch took the buffer back before its pages went: they stay, the copy is dropped. */
		struct mv_hostslot *h = b->host;
		b->rescue = 0;
		b->host = NULL;
		b->state = MV_RESIDENT;
		budget.evicting -= b->span;
		if (b->freed) {
			releasing_bytes += b->span;
			push(&relq, b);
			pthread_cond_signal(&pager_cond);
		}
		mv_wake_moved();
		mv_unlock();
		mv_host_free(h);
		mv_log(MV_LOG_DEBUG, "page-out of %#llx ended: the buffer was wanted back", (unsigned long long)va);
		return;
	}
	b->releasing = 1;
	dev = b->dev;
	mv_unlock();

	if (atomic_load_explicit(&mv_learn_flags, memory_order_relaxed) & MV_LEARN_ON)
		mv_learn_page(b->id, 0, b->size, copy_ns(b), 0);
	mv_unmap_device(b->va, b->span, dev);
	mv_net_map(b);

	mv_lock();
	b->dev = 0;
	b->releasing = 0;
	b->state = MV_HOST;
	budget.evicting -= b->span;
	budget.resident -= b->span;
	atomic_fetch_add(&mv_count.host_bytes, b->span);
	atomic_fetch_add(&mv_count.page_outs, 1);
	atomic_fetch_add(&mv_count.bytes_out, b->size);
	mv_link_event(MV_EV_PAGE_OUT, 0, b->va, b->size, 0);
	if (b->freed)
		push(&relq, b);
	mv_wake_moved();
	pthread_cond_signal(&pager_cond);
	mv_unlock();
	mv_log(MV_LOG_DEBUG, "page-out of %#llx ended: on the host", (unsigned long long)va);
}

/* Completes one page-in: its copy has finished, so later users need not wait and the host copy
 * can go. */
static void finish_page_in(struct mv_buf *b, struct mv_hostslot *h)
{
	int learning = atomic_load_explicit(&mv_learn_flags, memory_order_relaxed) & MV_LEARN_ON;
	uint64_t ns = learning ? copy_ns(b) : 0;
	int waited;

	mv_host_free(h);
	mv_lock();
	/* Read under the lock: a launch that waited for this page-in sets it under the lock too. */
	waited = b->plan_waited;
	landing--;
	b->ready_pending = 0;
	b->planned_in = 0;
	b->plan_waited = 0;
	if (b->freed) {
		releasing_bytes += b->span;
		push(&relq, b);
	}
	mv_wake_moved();
	mv_unlock();
	if (learning)
		mv_learn_page(b->id, 1, b->size, ns, waited);
}

/* Releases a freed buffer whose last uses have completed: resident pages go to the free cache,
 * a host copy goes back to the pool. */
static void finish_release(struct mv_buf *b)
{
	/* A plan's move still holds it: those queued here are dropped (it is freed), one being issued
	 * lets go in a moment. Back on the queue meanwhile, so the pager never waits on an app thread. */
	if (atomic_load_explicit(&b->busy, memory_order_acquire) > 0) {
		mv_lock();
		if (nplanq > 0)
			planq_run();
		push(&relq, b);
		mv_unlock();
		sched_yield();
		return;
	}
	mv_buf_wait_uses(b);
	if (b->state == MV_HOST) {
		mv_net_unmap(b);
		mv_host_free(b->host);
		b->host = NULL;
		atomic_fetch_sub(&mv_count.host_bytes, b->span);
		mv_real.cuMemAddressFree(b->va, b->span);
		mv_real.cuEventDestroy_v2(b->moved);
		mv_real.cuEventDestroy_v2(b->mstart);
		free(b);
		mv_lock();
		mv_wake_room();
		mv_unlock();
		return;
	}
	mv_lock();
	if (budget.resident <= budget.limit) {
		releasing_bytes -= b->span;
		mv_cache_put(b);
		mv_wake_room();
		mv_unlock();
		return;
	}
	mv_unlock();
	/* Over the budget (a grant shrank it): the pages go back instead of into the cache. */
	mv_free_range(b->va, b->span, b->dev);
	mv_real.cuEventDestroy_v2(b->moved);
	mv_real.cuEventDestroy_v2(b->mstart);
	mv_lock();
	releasing_bytes -= b->span;
	mv_wake_room();
	mv_unlock();
	free(b);
}

static void finish_stalls(void)
{
	int n;

	mv_lock();
	n = nstalls;
	mv_unlock();
	for (int i = 0; i < n; i++) {
		float ms = 0;
		mv_real.cuEventSynchronize(stalls[i].b);
		if (mv_real.cuEventElapsedTime(&ms, stalls[i].a, stalls[i].b) == CUDA_SUCCESS && ms > 0)
			atomic_fetch_add(&mv_count.stall_ns, (uint64_t)((double)ms * 1e6));
		mv_real.cuEventDestroy_v2(stalls[i].a);
		mv_real.cuEventDestroy_v2(stalls[i].b);
	}
	mv_lock();
	memmove(stalls, stalls + n, (size_t)(nstalls - n) * sizeof(stalls[0]));
	nstalls -= n;
	mv_unlock();
}

/* Whether the planned page-outs in flight should be completed now. Called with mv_lock held. */
static int lazy_due(void)
{
	return lazyq != NULL && (room_wanted > 0 || nplanq > 0 || lazy_flush);
}

/* The planned page-in to complete now, if any: the oldest once room is wanted, else the first a
 * launch has used or the app has freed. Called with mv_lock held. */
static struct mv_buf **lazy_in_due(void)
{
	struct mv_buf **q = &lazyinq;

	if (*q != NULL && (room_wanted > 0 || nplanq > 0 || lazy_flush))
		return q;
	for (; *q != NULL; q = &(*q)->next)
		if ((*q)->in_used || (*q)->freed)
			return q;
	return NULL;
}

/* Waits for room or a move (mv_wait_change), telling the pager that completing page-outs is wanted.
 * Called with mv_lock held. */
static void room_wait(void)
{
	room_wanted++;
	pager_kick();
	mv_wait_change();
	room_wanted--;
}

/* The pager: completes page-outs, page-ins and releases in the order they were queued. It makes
 * the app's context current on itself. */
static void *pager(void *arg)
{
	mv_real.cuCtxSetCurrent(mv_dev()->ctx);
	mv_lock();
	for (;;) {
		struct mv_buf *b, **q;
		while (outq == NULL && !lazy_due() && inq == NULL && lazy_in_due() == NULL && relq == NULL && nstalls == 0 &&
		       !pool_grow_wanted && (nplanq == 0 || budget.evicting > 0))
			mv_lock_wait(&pager_cond);
		if (nplanq > 0 && outq == NULL)
			planq_run();
		if (pool_grow_wanted) {
			pool_grow_wanted = 0;
			mv_unlock();
			mv_host_pool_grow();
		} else if ((b = pop(&outq)) != NULL || (lazy_due() && (b = pop(&lazyq)) != NULL)) {
			if (lazyq == NULL)
				lazy_flush = 0;
			mv_unlock();
			mv_real.cuEventSynchronize(b->moved);
			finish_page_out(b);
			mv_lock();
			if (nplanq > 0)
				planq_run();
			mv_unlock();
		} else if ((b = pop(&inq)) != NULL || ((q = lazy_in_due()) != NULL && (b = pop(q)) != NULL)) {
			struct mv_hostslot *h = b->host;
			b->host = NULL;
			mv_unlock();
			mv_real.cuEventSynchronize(b->moved);
			finish_page_in(b, h);
		} else if ((b = pop(&relq)) != NULL) {
			mv_unlock();
			finish_release(b);
		} else {
			mv_unlock();
			finish_stalls();
		}
		mv_lock();
	}
	return NULL;
}

/* Called with mv_lock held. */
static void pager_kick(void)
{
	if (!pager_running) {
		pthread_t t;
		pthread_attr_t attr;
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&t, &attr, pager, NULL) == 0)
			pager_running = 1;
		else
			mv_log(MV_LOG_ERROR, "cannot start the pager thread");
		pthread_attr_destroy(&attr);
	}
	pthread_cond_signal(&pager_cond);
}

/* After fork the child has no pager thread: it starts a new one when it needs one. */
void mv_residency_forked(void)
{
	pager_running = 0;
	/* The page-in the parent's pager was completing did not come along; the queued ones will be
	 * completed here. */
	landing = 0;
	for (struct mv_buf *b = inq; b != NULL; b = b->next)
		landing++;
}

void mv_stall_measure(CUstream h, CUevent ready, int per_thread)
{
	CUevent a, b;

	if (mv_real.cuEventCreate(&a, 0) != CUDA_SUCCESS)
		return;
	if (mv_real.cuEventCreate(&b, 0) != CUDA_SUCCESS) {
		mv_real.cuEventDestroy_v2(a);
		return;
	}
	mv_real.cuEventRecord(a, h);
	mv_real.cuStreamWaitEvent(h, ready, 0);
	mv_real.cuEventRecord(b, h);
	mv_lock();
	if (nstalls < MV_STALLS) {
		stalls[nstalls].a = a;
		stalls[nstalls].b = b;
		nstalls++;
		a = b = NULL;
	}
	pager_kick();
	mv_unlock();
	if (a != NULL) {
		/* The queue is full: the wait is ordered but not timed. */
		mv_real.cuEventDestroy_v2(a);
		mv_real.cuEventDestroy_v2(b);
	}
}

/* ---- page-out ---- */

/* Issues the page-out of b, already marked EVICTING by the caller, after the uses the caller
 * copied when it did so. Uses recorded since then belong to submissions that wait for b's page-in,
 * so the copy must not wait for them (it would wait forever), and reading b->uses here, without
 * the lock, would race with their recording. planned: a plan's page-out, which the pager completes
 * only when its room is wanted. Returns 0, or -1 when it could not be issued (no host memory, a
 * failed copy); b is then RESIDENT again. */
static int page_out(struct mv_buf *b, int planned, const struct mv_uses *uses)
{
	struct mv_hostslot *h = mv_host_alloc(b->span);
	CUresult r;
	int grow;

	if (h == NULL)
		goto undo;
	mv_order_after_uses(mv_dev()->d2h, uses);
	mv_real.cuEventRecord(b->mstart, mv_dev()->d2h);
	r = mv_real.cuMemcpyDtoHAsync_v2(mv_host_ptr(h), b->va, b->size, mv_dev()->d2h);
	if (r == CUDA_SUCCESS)
		r = mv_real.cuEventRecord(b->moved, mv_dev()->d2h);
	if (r != CUDA_SUCCESS) {
		const char *name = "?";
		mv_real.cuGetErrorName(r, &name);
		mv_log(MV_LOG_WARN, "page-out of %#llx failed (%s); the buffer stays resident",
		       (unsigned long long)b->va, name);
		mv_host_free(h);
		goto undo;
	}
	/* Paired with an "ended" line, so that a log cut short shows the page-outs in flight. */
	mv_log(MV_LOG_DEBUG, "page-out of %#llx (%llu bytes) issued", (unsigned long long)b->va,
	       (unsigned long long)b->size);
	grow = mv_host_pool_low();
	mv_lock();
	b->host = h;
	push(planned ? &lazyq : &outq, b);
	pool_grow_wanted |= grow;
	pager_kick();
	mv_unlock();
	return 0;
undo:
	mv_lock();
	b->state = MV_RESIDENT;
	b->skip = 1;
	budget.evicting -= b->span;
	mv_wake_moved();
	mv_unlock();
	return -1;
}

CUresult mv_make_room(uint64_t bytes)
{
	int busy_waits = 0;

	mv_lock();
	for (;;) {
		struct mv_buf *v;
		int later;
		if (budget.resident + bytes <= budget.limit) {
			budget.resident += bytes;
			mv_registry_unskip();
			mv_unlock();
			return CUDA_SUCCESS;
		}
		/* Cached pages of freed buffers go first: nobody is waiting for them. */
		if ((v = pop(&cache)) != NULL) {
			mv_unlock();
			mv_free_range(v->va, v->span, v->dev);
			mv_real.cuEventDestroy_v2(v->moved);
			mv_real.cuEventDestroy_v2(v->mstart);
			free(v);
			mv_lock();
			continue;
		}
		/* Page-outs in flight, and freed buffers whose last uses are about to complete, may already
		 * free enough: better to wait for them than to page out live data. */
		if (budget.resident - budget.evicting - releasing_bytes + bytes <= budget.limit) {
			room_wait();
			continue;
		}
		if ((v = mv_registry_victim(&later)) != NULL) {
			struct mv_uses uses;
			v->state = MV_EVICTING;
			budget.evicting += v->span;
			mv_buf_uses_copy(v, &uses);
			mv_unlock();
			page_out(v, 0, &uses);
			mv_lock();
			continue;
		}
		/* Memory on its way back: wait for it. A page-in that lands also gives its host slot
		 * back, so victims whose page-out found the host pool full are worth another try. */
		if (budget.evicting > 0 || releasing_bytes > 0 || inq != NULL || landing > 0) {
			room_wait();
			mv_registry_unskip();
			continue;
		}
		/* Buffers other threads' submissions hold: they become candidates when those finish. The
		 * wait is bounded, since those threads may be waiting for room themselves. */
		if (later && mv_busy_elsewhere() && busy_waits < 50) {
			struct timespec until;
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_nsec += 10 * 1000 * 1000;
			if (until.tv_nsec >= 1000000000) {
				until.tv_sec++;
				until.tv_nsec -= 1000000000;
			}
			mv_busy_wait_begin();
			room_wanted++;
			pager_kick();
			mv_wait_change_until(&until);
			room_wanted--;
			mv_busy_wait_end();
			busy_waits++;
			continue;
		}
		mv_registry_unskip();
		{
			char what[256];
			mv_registry_describe(what, sizeof(what));
			mv_log(MV_LOG_INFO, "cannot make room for %llu bytes: resident %llu of %llu; %s",
			       (unsigned long long)bytes, (unsigned long long)budget.resident,
			       (unsigned long long)budget.limit, what);
		}
		mv_unlock();
		atomic_fetch_add(&mv_count.oom, 1);
		return CUDA_ERROR_OUT_OF_MEMORY;
	}
}

void mv_evict_to_budget(void)
{
	int issued = 0;

	mv_lock();
	for (;;) {
		struct mv_buf *v;
		struct mv_uses uses;
		int later;
		/* What stays once the page-outs in flight and the releases under way have landed. */
		if (budget.resident - budget.evicting - releasing_bytes <= budget.limit)
			break;
		if ((v = pop(&cache)) != NULL) {
			mv_unlock();
			mv_free_range(v->va, v->span, v->dev);
			mv_real.cuEventDestroy_v2(v->moved);
			mv_real.cuEventDestroy_v2(v->mstart);
			free(v);
			mv_lock();
			continue;
		}
		/* Buffers in use right now are left alone: the app's own allocations evict them later,
		 * should the budget still be short then. */
		if ((v = mv_registry_victim(&later)) == NULL) {
			char what[256], a[32], b[32];
			mv_registry_describe(what, sizeof(what));
			mv_log(MV_LOG_INFO, "cannot evict down to the budget %s: %s resident; %s",
			       mv_format_size(budget.limit, a, sizeof(a)),
			       mv_format_size(budget.resident, b, sizeof(b)), what);
			break;
		}
		v->state = MV_EVICTING;
		budget.evicting += v->span;
		mv_buf_uses_copy(v, &uses);
		mv_unlock();
		if (page_out(v, 0, &uses) == 0)
			issued++;
		mv_lock();
	}
	mv_registry_unskip();
	mv_unlock();
	if (issued > 0)
		mv_log(MV_LOG_DEBUG, "paging out %d buffers to meet a smaller budget", issued);
}

void mv_budget_init(uint64_t local)
{
	mv_lock();
	budget.limit = local;
	budget.local = local;
	mv_unlock();
}

uint64_t mv_budget_local(void)
{
	return budget.local;
}

void mv_budget_read(uint64_t *limit, uint64_t *resident)
{
	mv_lock();
	if (limit != NULL)
		*limit = budget.limit;
	if (resident != NULL)
		*resident = budget.resident;
	mv_unlock();
}

uint64_t mv_budget_now(void)
{
	uint64_t limit;

	mv_budget_read(&limit, NULL);
	return limit;
}

void mv_budget_set(uint64_t limit)
{
	int shrank;

	mv_lock();
	shrank = limit < budget.limit;
	budget.limit = limit;
	/* Allocations waiting for room may fit now. */
	mv_wake_room();
	mv_unlock();
	if (shrank)
		mv_evict_to_budget();
}

void mv_uncharge(uint64_t bytes)
{
	mv_lock();
	budget.resident -= bytes;
	mv_wake_room();
	mv_unlock();
}

/* ---- page-in ---- */

/* Brings b back from host memory into room already charged for it; b is FETCHING (claimed by
 * the caller). On failure the charge is returned. */
static CUresult page_in_charged(struct mv_buf *b)
{
	CUmemGenericAllocationHandle dev;
	CUresult r;

	mv_net_unmap(b);
	r = mv_map_device(b->va, b->span, &dev);
	if (r == CUDA_SUCCESS) {
		mv_real.cuEventRecord(b->mstart, mv_dev()->h2d);
		r = mv_real.cuMemcpyHtoDAsync_v2(b->va, mv_host_ptr(b->host), b->size, mv_dev()->h2d);
		if (r == CUDA_SUCCESS)
			r = mv_real.cuEventRecord(b->moved, mv_dev()->h2d);
		if (r != CUDA_SUCCESS) {
			/* The copy never happened or cannot be waited for: the host copy stays the data. */
			mv_real.cuStreamSynchronize(mv_dev()->h2d);
			mv_unmap_device(b->va, b->span, dev);
		}
	}
	if (r != CUDA_SUCCESS) {
		const char *name = "?";
		mv_net_map(b);
		mv_uncharge(b->span);
		mv_real.cuGetErrorName(r, &name);
		mv_log(MV_LOG_WARN, "page-in of %#llx failed (%s); the buffer stays on the host",
		       (unsigned long long)b->va, name);
		return r;
	}
	mv_lock();
	b->dev = dev;
	b->state = MV_RESIDENT;
	b->ready_pending = 1;
	landing++;
	atomic_fetch_sub(&mv_count.host_bytes, b->span);
	atomic_fetch_add(&mv_count.page_ins, 1);
	atomic_fetch_add(&mv_count.bytes_in, b->size);
	b->in_used = 0;
	push(b->planned_in ? &lazyinq : &inq, b);
	pager_kick();
	mv_wake_moved();
	mv_unlock();
	return CUDA_SUCCESS;
}

/* Brings b back from host memory; b is FETCHING (claimed by the caller). */
static CUresult page_in(struct mv_buf *b)
{
	CUresult r = mv_make_room(b->span);

	if (r != CUDA_SUCCESS)
		return r;
	return page_in_charged(b);
}

/* ---- planned moves ---- */

int mv_page_out_planned(struct mv_buf *b)
{
	struct mv_uses uses;

	mv_lock();
	/* The caller's hold is the one busy mark allowed. */
	if (b->kind != MV_KIND_LARGE || b->state != MV_RESIDENT || b->ready_pending || b->pinned || b->freed ||
	    atomic_load_explicit(&b->busy, memory_order_relaxed) > 1) {
		mv_unlock();
		return -1;
	}
	b->state = MV_EVICTING;
	budget.evicting += b->span;
	mv_buf_uses_copy(b, &uses);
	mv_unlock();
	return page_out(b, 1, &uses);
}

/* Starts b's planned page-in when it fits the budget as it stands. Called with mv_lock held, which
 * it drops and takes again. Returns 0 when issued, 1 when there is no room yet, -1 when b is not
 * on the host (any more) or the page-in failed. */
static int try_planned_in(struct mv_buf *b)
{
	struct mv_buf *v;

	if (b->state != MV_HOST || b->freed || b->kind != MV_KIND_LARGE)
		return -1;
	/* Cached pages of freed buffers make room first, as for any allocation: the plan counted a
	 * free as giving its memory back. */
	while (budget.resident + b->span > budget.limit && (v = pop(&cache)) != NULL) {
		mv_unlock();
		mv_free_range(v->va, v->span, v->dev);
		mv_real.cuEventDestroy_v2(v->moved);
		mv_real.cuEventDestroy_v2(v->mstart);
		free(v);
		mv_lock();
		if (b->state != MV_HOST || b->freed)
			return -1;
	}
	if (budget.resident + b->span > budget.limit)
		return 1;
	budget.resident += b->span;
	b->state = MV_FETCHING;
	b->planned_in = 1;
	b->plan_waited = 0;
	mv_unlock();
	if (page_in_charged(b) != CUDA_SUCCESS) {
		mv_lock();
		b->state = MV_HOST;
		b->planned_in = 0;
		if (b->freed)
			push(&relq, b);
		mv_wake_moved();
		return -1;
	}
	mv_lock();
	return 0;
}


int mv_page_in_planned(struct mv_buf *b)
{
	int r;

	mv_lock();
	r = try_planned_in(b);
	if (r == 1 && budget.evicting > 0 && nplanq < MV_PLANQ) {
		/* Room is on its way: the pager issues it once the page-outs before it have landed. */
		atomic_fetch_add_explicit(&b->busy, 1, memory_order_relaxed);
		planq[nplanq++] = b;
		pager_kick();
		r = 0;
	}
	mv_unlock();
	return r == 0 ? 0 : -1;
}

/* The pager's side, with mv_lock held: issues the queued page-ins that fit now, drops the rest once
 * no page-out is left to make room. */
static void planq_run(void)
{
	struct mv_buf *mine[MV_PLANQ];
	int n = nplanq;

	/* Taken off the queue first: the lock is dropped while a page-in is issued. */
	memcpy(mine, planq, (size_t)n * sizeof(mine[0]));
	nplanq = 0;
	for (int i = 0; i < n; i++) {
		struct mv_buf *b = mine[i];
		int r = try_planned_in(b);
		if (r == 1 && budget.evicting > 0 && nplanq < MV_PLANQ) {
			planq[nplanq++] = b;
			continue;
		}
		atomic_fetch_sub_explicit(&b->busy, 1, memory_order_release);
	}
}

CUresult mv_make_resident(struct mv_buf *b, CUstream h, int capturing)
{
	CUresult r;
	int fetched = 0, late;

	mv_lock();
	for (;;) {
		if (b->state == MV_RESIDENT)
			break;
		if (b->state == MV_EVICTING && !b->releasing) {
			/* Its pages are still mapped: keep them and drop the copy when it lands. */
			b->rescue = 1;
			lazy_flush = 1;
			pager_kick();
			break;
		}
		if (b->state == MV_HOST) {
			b->state = MV_FETCHING;
			mv_unlock();
			r = page_in(b);
			mv_lock();
			if (r != CUDA_SUCCESS) {
				b->state = MV_HOST;
				if (b->freed)
					push(&relq, b);
				mv_wake_moved();
				mv_unlock();
				return r;
			}
			fetched = 1;
			break;
		}
		room_wait();
	}
	if (!b->ready_pending) {
		mv_unlock();
		return CUDA_SUCCESS;
	}
	late = b->planned_in && !fetched && !b->in_used;
	if (!fetched && !b->in_used) {
		b->in_used = 1;
		pager_kick();
	}
	/* The pager reads it when the page-in lands, under this lock. */
	if (fetched)
		b->plan_waited = 1;
	mv_unlock();
	if (late && mv_real.cuEventQuery(b->moved) == CUDA_ERROR_NOT_READY)
		mv_plan_late(b);
	if (fetched) {
		/* Every page-in issued here is one a submission waits for: a fault-in. */
		atomic_fetch_add(&mv_count.fault_ins, 1);
		mv_link_event(MV_EV_PAGE_IN, 0, b->va, b->size, 1);
	}
	/* A capturing stream cannot wait on an event recorded outside its graph: wait here instead. */
	if (capturing)
		mv_real.cuEventSynchronize(b->moved);
	else if (fetched)
		mv_stall_measure(h, b->moved, 0);
	else
		mv_real.cuStreamWaitEvent(h, b->moved, 0);
	return CUDA_SUCCESS;
}

/* ---- release and reuse ---- */

void mv_release_later(struct mv_buf *b)
{
	b->freed = 1;
	if (b->state == MV_RESIDENT && !b->ready_pending) {
		releasing_bytes += b->span;
		push(&relq, b);
	} else if (b->state == MV_HOST) {
		push(&relq, b);
	}
	/* Otherwise it is moving, and whoever completes the move queues it: finish_page_in after a
	 * page-in, finish_page_out after a page-out (rescued or not). */
	pager_kick();
}

void mv_cache_put(struct mv_buf *b)
{
	b->freed = 1;
	b->nuses = 0;
	b->uses_overflow = 0;
	b->nrefs = 0;
	push(&cache, b);
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
