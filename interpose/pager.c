/* The pager: issues page-outs, and on its own thread completes page-outs, page-ins and the release
 * of freed buffers once their copies or last uses are done, so that no app thread waits for them.
 *
 * A page-out: the D2H copy stream waits for the buffer's last use on every stream, copies it to its
 * host slot and records `moved`; the pager waits for that, unmaps and releases the device pages and,
 * where the device can map host memory, maps the range onto the host copy (the safety net). A
 * page-in (residency.c) is handed over once issued; the pager sees its copy land, after which its
 * users need not wait and its host slot goes back to the pool. Planned moves are completed lazily:
 * nothing waits on them until their room is wanted or a launch uses the buffer. */
#include "config.h"

#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "interpose/internal.h"
#include "protocol/proto.h"

/* All of the pager's state is guarded by mv_lock. */

/* Buffers whose page-out was issued, whose page-in was issued, and freed buffers waiting for their
 * last uses. */
static struct mv_buf *outq, *inq, *relq;
/* Planned page-outs whose copies the pager leaves alone until their room is wanted: seeing a
 * copy complete waits for it, and a plan's page-out has nothing waiting on it until then. */
static struct mv_buf *lazyq;
/* Planned page-ins likewise: launches order themselves after the copy on the device, so the pager
 * completes one once a launch has used the buffer, or when room is wanted. */
static struct mv_buf *lazyinq;
static int room_wanted;  /* threads waiting for room or for a move to end */
static int lazy_flush;   /* a launch took back a buffer whose planned page-out is in flight */
/* Bytes of freed resident buffers on relq: they leave the budget or go to the free cache soon. */
static uint64_t releasing_bytes;
/* Freed buffers with a last use on a stream a memory wait may hold (mv_buf_held): neither waited
 * for nor counted as releasing until it may no longer be; looked at again with the stalls. */
static struct mv_buf *heldq;
/* Page-ins issued and not yet seen complete by the pager: each still holds its host slot. */
static uint64_t landing;
/* Set when the host pool runs low, so that the pager grows it before an eviction has to. */
static int pool_grow_wanted;
static int pager_running;
/* Signalled when the pager has work. */
static pthread_cond_t pager_cond = PTHREAD_COND_INITIALIZER;

/* Planned page-ins waiting for page-outs in flight to make room, in plan order; each holds a busy
 * mark on its buffer. */
#define MV_PLANQ 64
static struct mv_buf *planq[MV_PLANQ];
static int nplanq;

/* Stall measurements waiting for their events, looked at again every MV_STALL_POLL_MS while the
 * pager has nothing else to do. */
#define MV_STALLS 256
#define MV_STALL_POLL_MS 10
static struct {
	CUevent a, b;
} stalls[MV_STALLS];
static int nstalls;

/* The device time of b's last page copy, which has completed. */
static uint64_t copy_ns(struct mv_buf *b)
{
	float ms = 0;

	if (mv_real.cuEventElapsedTime(&ms, b->mstart, b->moved) != CUDA_SUCCESS || ms < 0)
		return 0;
	return (uint64_t)((double)ms * 1e6);
}

void mv_pager_release(struct mv_buf *b)
{
	if (b->state == MV_RESIDENT)
		releasing_bytes += b->span;
	mv_list_push(&relq, b);
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
		mv_budget_evicted(b->span, 0);
		if (b->freed) {
			mv_pager_release(b);
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

	if (mv_learn_flags_now() & MV_LEARN_ON)
		mv_learn_page(b->id, 0, b->size, copy_ns(b), 0);
	mv_unmap_device(b->va, b->span, dev);
	mv_net_map(b);

	mv_lock();
	b->dev = 0;
	b->releasing = 0;
	b->state = MV_HOST;
	mv_budget_evicted(b->span, 1);
	mv_count_add(MV_COUNTER_host_bytes, b->span);
	mv_count_add(MV_COUNTER_page_outs, 1);
	mv_count_add(MV_COUNTER_bytes_out, b->size);
	mv_link_event(MV_EV_PAGE_OUT, 0, b->va, b->size, 0);
	if (b->freed)
		mv_pager_release(b);
	mv_wake_moved();
	pthread_cond_signal(&pager_cond);
	mv_unlock();
	mv_log(MV_LOG_DEBUG, "page-out of %#llx ended: on the host", (unsigned long long)va);
}

/* Completes one page-in: its copy has finished, so later users need not wait and the host copy
 * can go. */
static void finish_page_in(struct mv_buf *b, struct mv_hostslot *h)
{
	int learning = mv_learn_flags_now() & MV_LEARN_ON;
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
	if (b->freed)
		mv_pager_release(b);
	mv_wake_moved();
	mv_unlock();
	if (learning)
		mv_learn_page(b->id, 1, b->size, ns, waited);
}

/* Issues the queued planned page-ins that fit now, and drops the rest once no page-out is left to
 * make room. Called with mv_lock held; lets it go while each page-in is issued, and holds it again
 * on return. */
static void planq_run_relock(void)
{
	struct mv_buf *mine[MV_PLANQ];
	int n = nplanq;

	/* Taken off the queue first: the lock is let go while a page-in is issued. */
	memcpy(mine, planq, (size_t)n * sizeof(mine[0]));
	nplanq = 0;
	for (int i = 0; i < n; i++) {
		struct mv_buf *b = mine[i];
		int r = mv_page_in_planned_relock(b);
		if (r == 1 && mv_budget_evicting() > 0 && nplanq < MV_PLANQ) {
			planq[nplanq++] = b;
			continue;
		}
		atomic_fetch_sub_explicit(&b->busy, 1, memory_order_release);
	}
}

/* Releases a freed buffer whose last uses have completed: resident pages go to the free cache,
 * a host copy goes back to the pool. */
static void finish_release(struct mv_buf *b)
{
	uint64_t span = b->span;

	/* A plan's move still holds it: those queued here are dropped (it is freed), one being issued
	 * lets go in a moment. Back on the queue meanwhile, so the pager never waits on an app thread. */
	if (atomic_load_explicit(&b->busy, memory_order_acquire) > 0) {
		mv_lock();
		if (nplanq > 0)
			planq_run_relock();
		/* Its releasing bytes, if any, were counted when it was first queued. */
		mv_list_push(&relq, b);
		mv_unlock();
		sched_yield();
		return;
	}
	mv_lock();
	if (mv_buf_held(b)) {
		/* A thread making room may be waiting for these bytes: they are no longer on their way,
		 * so it must look again (and page out something else) rather than wait for ever. */
		if (b->state == MV_RESIDENT) {
			releasing_bytes -= span;
			mv_wake_room();
		}
		mv_list_push(&heldq, b);
		mv_unlock();
		return;
	}
	mv_unlock();
	mv_buf_wait_uses(b);
	if (b->state == MV_HOST) {
		mv_buf_discard(b);
		mv_lock();
		mv_wake_room();
		mv_unlock();
		return;
	}
	mv_lock();
	if (!mv_budget_over()) {
		releasing_bytes -= span;
		mv_cache_put(b);
		mv_wake_room();
		mv_unlock();
		return;
	}
	mv_unlock();
	/* Over the budget (a grant shrank it): the pages go back instead of into the cache. */
	mv_buf_discard(b);
	mv_lock();
	releasing_bytes -= span;
	mv_wake_room();
	mv_unlock();
}

/* Counts the stalls whose events have completed, and keeps the others: the events are on the app's
 * streams, which may be held (by a memory wait) until the app submits more, so the pager never
 * waits for them. */
static void finish_stalls(void)
{
	int n, kept = 0;

	mv_lock();
	n = nstalls;
	mv_unlock();
	for (int i = 0; i < n; i++) {
		float ms = 0;
		if (mv_real.cuEventQuery(stalls[i].b) == CUDA_ERROR_NOT_READY) {
			stalls[kept++] = stalls[i];
			continue;
		}
		if (mv_real.cuEventElapsedTime(&ms, stalls[i].a, stalls[i].b) == CUDA_SUCCESS && ms > 0)
			mv_count_add(MV_COUNTER_stall_ns, (uint64_t)((double)ms * 1e6));
		mv_real.cuEventDestroy_v2(stalls[i].a);
		mv_real.cuEventDestroy_v2(stalls[i].b);
	}
	mv_lock();
	memmove(stalls + kept, stalls + n, (size_t)(nstalls - n) * sizeof(stalls[0]));
	nstalls -= n - kept;
	mv_unlock();
}

/* Queues the held releases that are no longer held. Called with mv_lock held. */
static void unpark_held(void)
{
	struct mv_buf *q = heldq, *b;

	heldq = NULL;
	while ((b = mv_list_pop(&q)) != NULL) {
		if (mv_buf_held(b)) {
			mv_list_push(&heldq, b);
			continue;
		}
		if (b->state == MV_RESIDENT)
			releasing_bytes += b->span;
		mv_list_push(&relq, b);
	}
}

/* Waits for the pager's condition, or, while stalls are still being measured or releases held,
 * until it is time to look at them again. Called with mv_lock held, let go meanwhile. */
static void pager_wait(void)
{
	struct timespec until;

	if (nstalls == 0 && heldq == NULL) {
		mv_lock_wait(&pager_cond, NULL);
		return;
	}
	mv_deadline_ms(&until, MV_STALL_POLL_MS);
	mv_lock_wait(&pager_cond, &until);
	unpark_held();
	mv_unlock();
	finish_stalls();
	mv_lock();
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

/* Whether the pager has nothing to do. Called with mv_lock held. */
static int idle(void)
{
	return outq == NULL && !lazy_due() && inq == NULL && lazy_in_due() == NULL && relq == NULL &&
	       !pool_grow_wanted && (nplanq == 0 || mv_budget_evicting() > 0);
}

/* The pager: completes page-outs, page-ins and releases in the order they were queued. It makes
 * the app's context current on itself. */
static void *pager(void *arg)
{
	mv_real.cuCtxSetCurrent(mv_dev()->ctx);
	mv_lock();
	for (;;) {
		struct mv_buf *b, **q;
		while (idle())
			pager_wait();
		if (nplanq > 0 && outq == NULL)
			planq_run_relock();
		if (pool_grow_wanted) {
			pool_grow_wanted = 0;
			mv_unlock();
			mv_host_pool_grow();
		} else if ((b = mv_list_pop(&outq)) != NULL || (lazy_due() && (b = mv_list_pop(&lazyq)) != NULL)) {
			if (lazyq == NULL)
				lazy_flush = 0;
			mv_unlock();
			mv_real.cuEventSynchronize(b->moved);
			finish_page_out(b);
			mv_lock();
			if (nplanq > 0)
				planq_run_relock();
			mv_unlock();
		} else if ((b = mv_list_pop(&inq)) != NULL || ((q = lazy_in_due()) != NULL && (b = mv_list_pop(q)) != NULL)) {
			struct mv_hostslot *h = b->host;
			b->host = NULL;
			mv_unlock();
			mv_real.cuEventSynchronize(b->moved);
			finish_page_in(b, h);
		} else if ((b = mv_list_pop(&relq)) != NULL) {
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

void mv_pager_kick(void)
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

void mv_pager_wait(const struct timespec *until)
{
	room_wanted++;
	mv_pager_kick();
	if (until != NULL)
		mv_wait_change_until(until);
	else
		mv_wait_change();
	room_wanted--;
}

void mv_pager_flush_lazy(void)
{
	lazy_flush = 1;
	mv_pager_kick();
}

void mv_pager_watch_in(struct mv_buf *b)
{
	landing++;
	mv_list_push(b->planned_in ? &lazyinq : &inq, b);
	mv_pager_kick();
}

int mv_pager_defer_in(struct mv_buf *b)
{
	if (nplanq >= MV_PLANQ)
		return -1;
	atomic_fetch_add_explicit(&b->busy, 1, memory_order_relaxed);
	planq[nplanq++] = b;
	mv_pager_kick();
	return 0;
}

uint64_t mv_pager_releasing(void)
{
	return releasing_bytes;
}

int mv_pager_landing(void)
{
	return inq != NULL || landing > 0;
}

/* After fork the child has no pager thread: it starts a new one when it needs one. */
void mv_pager_forked(void)
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
	mv_pager_kick();
	mv_unlock();
	if (a != NULL) {
		/* The queue is full: the wait is ordered but not timed. */
		mv_real.cuEventDestroy_v2(a);
		mv_real.cuEventDestroy_v2(b);
	}
}

static _Atomic CUresult out_failure = CUDA_SUCCESS;

CUresult mv_page_out_failure(void)
{
	return atomic_load_explicit(&out_failure, memory_order_relaxed);
}

int mv_page_out(struct mv_buf *b, int planned, const struct mv_uses *uses)
{
	struct mv_hostslot *h = mv_host_alloc(b->span);
	CUresult r;
	int grow;

	if (h == NULL) {
		atomic_store_explicit(&out_failure, CUDA_ERROR_OUT_OF_MEMORY, memory_order_relaxed);
		goto undo;
	}
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
		atomic_store_explicit(&out_failure, r, memory_order_relaxed);
		mv_host_free(h);
		goto undo;
	}
	/* Paired with an "ended" line, so that a log cut short shows the page-outs in flight. */
	mv_log(MV_LOG_DEBUG, "page-out of %#llx (%llu bytes) issued", (unsigned long long)b->va,
	       (unsigned long long)b->size);
	grow = mv_host_pool_low();
	mv_lock();
	b->host = h;
	mv_list_push(planned ? &lazyq : &outq, b);
	pool_grow_wanted |= grow;
	mv_pager_kick();
	mv_unlock();
	return 0;
undo:
	mv_lock();
	b->state = MV_RESIDENT;
	b->skip = 1;
	mv_budget_evicted(b->span, 0);
	mv_wake_moved();
	mv_unlock();
	return -1;
}
