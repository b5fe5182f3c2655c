/* Residency: the budget, making room in it (dropping cached pages, paging out victims, by the
 * plan's next use while one is followed and else the least recently used, waiting for moves in
 * flight), evicting down to a smaller grant, and page-in.
 *
 * A buffer moves RESIDENT -> EVICTING -> HOST -> FETCHING -> RESIDENT. The page-outs themselves
 * are issued and completed by the pager (pager.c). Page-in: new device pages at the same address,
 * an H2D copy, `moved` recorded; every stream that uses the buffer next waits on it until the pager
 * has seen it complete. */
#include "config.h"

#include <stdio.h>
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

/* ---- the budget ---- */

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

void mv_budget_evicted(uint64_t span, int released)
{
	budget.evicting -= span;
	if (released)
		budget.resident -= span;
}

uint64_t mv_budget_evicting(void)
{
	return budget.evicting;
}

int mv_budget_over(void)
{
	return budget.resident > budget.limit;
}

/* ---- making room ---- */

/* Drops the pages of one freed buffer in the free cache, if it holds any. Called with mv_lock held;
 * lets it go while the pages are released, and holds it again on return. Returns whether it
 * dropped one. */
static int drop_cached_relock(void)
{
	struct mv_buf *v = mv_cache_pop();

	if (v == NULL)
		return 0;
	mv_unlock();
	mv_buf_discard(v);
	mv_lock();
	return 1;
}

/* Marks b EVICTING and counts its bytes as on their way out; uses gets the last uses the copy is
 * to wait for. Called with mv_lock held. */
static void evicting_mark(struct mv_buf *b, struct mv_uses *uses)
{
	b->state = MV_EVICTING;
	budget.evicting += b->span;
	mv_buf_uses_copy(b, uses);
}

/* Pages out v, a victim found under mv_lock. Called with mv_lock held; lets it go while the copy
 * is issued, and holds it again on return. Returns mv_page_out's result. */
static int evict_relock(struct mv_buf *v)
{
	struct mv_uses uses;
	int r;

	evicting_mark(v, &uses);
	mv_unlock();
	r = mv_page_out(v, 0, &uses);
	mv_lock();
	return r;
}

/* Whether a thread waits for room while its submission holds its busy marks: one at a time.
 * Guarded by mv_lock; the thread-local flag says whether it is this thread. */
static int room_owned;
static __thread int room_owner;

/* Waits for the pager's next change, or 10 ms: for what no event tells of. Called with mv_lock
 * held, let go during the wait. */
static void pager_wait_a_little(void)
{
	struct timespec until;

	mv_deadline_ms(&until, 10);
	mv_pager_wait(&until);
}

/* Waits a little for other threads' submissions to let go of buffers they hold: they become
 * candidates when those finish. A submission waiting for room keeps its own marks only while no
 * other one does: the others let theirs go (mv_busy_park), so that no two waiters ever wait for
 * each other's buffers, and the one keeping them waits only for submissions on their way to the
 * driver. Called with mv_lock held, let go during the wait. */
static void busy_wait(void)
{
	if (!room_owner && mv_busy_holds()) {
		if (!room_owned)
			room_owned = room_owner = 1;
		else
			mv_busy_park();
	}

	mv_busy_wait_begin();
	pager_wait_a_little();
	mv_busy_wait_end();
}

/* Leaving mv_make_room: the marks let go are taken again, and the right to wait with them given
 * back. Called with mv_lock held. */
static void busy_wait_done(void)
{
	mv_busy_unpark();
	if (room_owner)
		room_owned = room_owner = 0;
}

/* Refusals so far, for the log's rate limit. Guarded by mv_lock. */
static uint64_t refusals;

int mv_refusal_shown(uint64_t n)
{
	while (n % 10 == 0)
		n /= 10;
	return n == 1;
}

/* Gives up on making room for bytes: says so with what holds the device, the one line a job that
 * gets CUDA_ERROR_OUT_OF_MEMORY from memvirt needs; held says the candidates were kept by a stream
 * memory wait that never completed. Called with mv_lock held, which it lets go. */
static CUresult room_refused_unlock(uint64_t bytes, int held)
{
	char what[256], count[96] = "", b[32], c[32], failed[96];
	const char *why, *name = "?";
	uint64_t stuck, n = ++refusals;
	CUresult r;

	busy_wait_done();

	mv_registry_unskip();
	stuck = mv_registry_describe(what, sizeof(what));
	if (bytes > budget.limit)
		why = "the request alone is more than the budget";
	else if (held)
		why = "what could go is used on streams held by a memory wait (cuStreamWaitValue) that did not "
		      "complete within 60 s";
	else if (stuck > 0 && ((r = mv_page_out_failure()) == CUDA_ERROR_OUT_OF_MEMORY || r == CUDA_SUCCESS))
		why = "page-outs found no host memory (MEMVIRT_HOST_LIMIT)";
	else if (stuck > 0) {
		mv_real.cuGetErrorName(r, &name);
		snprintf(failed, sizeof(failed), "page-outs failed in the driver (%s)", name);
		why = failed;
	} else
		why = "all of it is slab blocks, pinned, in use or on the move";
	if (n > 1)
		snprintf(count, sizeof(count), " [refusal %llu; only the 1st, 10th, 100th, ... are shown]",
			 (unsigned long long)n);
	/* tests/bench/paging.sh reads "cannot make room for N bytes: ... in use M,". */
	mv_log(mv_refusal_shown(n) ? MV_LOG_WARN : MV_LOG_INFO,
	       "cannot make room for %llu bytes: CUDA_ERROR_OUT_OF_MEMORY under a budget of %s with %s "
	       "resident (%s); nothing more could be paged out: %s%s", (unsigned long long)bytes,
	       mv_format_size(budget.limit, b, sizeof(b)), mv_format_size(budget.resident, c, sizeof(c)),
	       what, why, count);
	mv_unlock();
	mv_count_add(MV_COUNTER_oom, 1);
	return CUDA_ERROR_OUT_OF_MEMORY;
}

/* Returned by make_room when the buffer the room was for has left the host meanwhile. */
#define MV_ROOM_MOOT CUDA_ERROR_NOT_READY

/* Each step that lets mv_lock go (drop_cached_relock, evict_relock, and the waits for the pager)
 * is followed by a fresh look at the budget from the top. for: the buffer on the host the room is
 * for, or NULL; once another thread (a planned page-in) has claimed it and charged its own room,
 * this room is moot: making it could only fail, since the budget would have to hold the buffer
 * twice, so MV_ROOM_MOOT comes back with nothing charged. may_stay: the caller can use for_buf where
 * it is, on the host, or, with no for_buf, place a new buffer there (MV_ROOM_ON_HOST). */
static CUresult make_room(uint64_t bytes, const struct mv_buf *for_buf, int may_stay)
{
	/* Looks for held candidates so far: at 10 ms each, at least 60 s. A wait that only this thread
	 * would satisfy (its write comes after this allocation) never completes, and a refusal is
	 * better than a hang. */
	unsigned held_looks = 0;

	mv_lock();
	for (;;) {
		struct mv_buf *v;
		int later;
		if (for_buf != NULL && for_buf->state != MV_HOST) {
			mv_registry_unskip();
			busy_wait_done();
			mv_unlock();
			return MV_ROOM_MOOT;
		}
		if (budget.resident + bytes <= budget.limit)
			break;
		/* Cached pages of freed buffers go first: nobody is waiting for them. */
		if (drop_cached_relock())
			continue;
		/* Page-outs in flight, and freed buffers whose last uses are about to complete, may already
		 * free enough: better to wait for them than to page out live data. */
		if (budget.resident - budget.evicting - mv_pager_releasing() + bytes <= budget.limit) {
			mv_pager_wait(NULL);
			continue;
		}
		if ((v = mv_registry_victim(budget.resident - budget.evicting - mv_pager_releasing() + bytes - budget.limit,
					    &later)) != NULL) {
			evict_relock(v);
			continue;
		}
		/* Memory on its way back: wait for it. A page-in that lands also gives its host slot
		 * back, so victims whose page-out found the host pool full are worth another try. */
		if (budget.evicting > 0 || mv_pager_releasing() > 0 || mv_pager_landing()) {
			mv_pager_wait(NULL);
			mv_registry_unskip();
			continue;
		}
		/* Every candidate is named by a submission on its way: wait for it. Nothing could ever
		 * make room only when no other thread holds one. */
		if ((later & MV_LATER_BUSY) && mv_busy_elsewhere()) {
			busy_wait();
			continue;
		}
		/* Rather than wait for a memory wait's write, or refuse: the link reaches it. */
		if (may_stay && (for_buf != NULL ? for_buf->netted : mv_dev()->host_vmm)) {
			mv_registry_unskip();
			busy_wait_done();
			mv_unlock();
			return MV_ROOM_ON_HOST;
		}
		/* Every candidate left is used on a stream a memory wait holds: look again shortly. No
		 * page-out waits for such a stream meanwhile, so the copy streams and the pager go on, and
		 * another thread's write (or one this thread queued) lets the wait complete. A wait that
		 * never completes ends in a refusal that says so. */
		if ((later & MV_LATER_HELD) && held_looks++ < 6000) {
			pager_wait_a_little();
			mv_registry_unskip();
			continue;
		}
		return room_refused_unlock(bytes, (later & MV_LATER_HELD) != 0);
	}
	budget.resident += bytes;
	mv_registry_unskip();
	busy_wait_done();
	mv_unlock();
	return CUDA_SUCCESS;
}

CUresult mv_make_room(uint64_t bytes)
{
	return make_room(bytes, NULL, 0);
}

CUresult mv_make_room_or_host(uint64_t bytes)
{
	return make_room(bytes, NULL, 1);
}

void mv_evict_to_budget(void)
{
	int issued = 0;

	mv_lock();
	for (;;) {
		struct mv_buf *v;
		int later;
		/* What stays once the page-outs in flight and the releases under way have landed. */
		if (budget.resident - budget.evicting - mv_pager_releasing() <= budget.limit)
			break;
		if (drop_cached_relock())
			continue;
		/* Buffers in use right now are left alone: the app's own allocations evict them later,
		 * should the budget still be short then. */
		if ((v = mv_registry_victim(budget.resident - budget.evicting - mv_pager_releasing() - budget.limit,
					    &later)) == NULL) {
			char what[256], a[32], b[32];
			mv_registry_describe(what, sizeof(what));
			mv_log(MV_LOG_INFO, "cannot evict down to the budget %s: %s resident; %s",
			       mv_format_size(budget.limit, a, sizeof(a)),
			       mv_format_size(budget.resident, b, sizeof(b)), what);
			break;
		}
		if (evict_relock(v) == 0)
			issued++;
	}
	mv_registry_unskip();
	mv_unlock();
	if (issued > 0)
		mv_log(MV_LOG_DEBUG, "paging out %d buffers to meet a smaller budget", issued);
}

/* ---- page-in ---- */

/* Brings b back from host memory into room already charged for it; b is FETCHING (claimed by
 * the caller). On failure the charge is returned. */
static CUresult page_in_charged(struct mv_buf *b)
{
	CUmemGenericAllocationHandle dev;
	CUresult r;

	if (b->host_used) {
		/* Work ran it on the host since its page-out: the pages move once that is done. */
		struct mv_uses u;
		mv_lock();
		mv_buf_uses_copy(b, &u);
		mv_unlock();
		mv_uses_sync(&u);
		b->host_used = 0;
	}
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
	mv_count_sub(MV_COUNTER_host_bytes, b->span);
	mv_count_add(MV_COUNTER_page_ins, 1);
	mv_count_add(MV_COUNTER_bytes_in, b->size);
	b->in_used = 0;
	mv_pager_watch_in(b);
	mv_wake_moved();
	mv_unlock();
	return CUDA_SUCCESS;
}

/* A page-in of b could not be issued: it stays on the host, and is released now if it was freed
 * meanwhile. Called with mv_lock held. */
static void page_in_failed(struct mv_buf *b)
{
	b->state = MV_HOST;
	if (b->freed)
		mv_pager_release(b);
	mv_wake_moved();
}

/* ---- planned moves ---- */

int mv_page_out_planned(struct mv_buf *b)
{
	struct mv_uses uses;

	mv_lock();
	/* The caller's hold is the one busy mark allowed. */
	if (b->kind != MV_KIND_LARGE || b->state != MV_RESIDENT || b->ready_pending || b->pinned || b->freed ||
	    atomic_load_explicit(&b->busy, memory_order_relaxed) > 1 || mv_buf_held(b)) {
		mv_unlock();
		return -1;
	}
	evicting_mark(b, &uses);
	mv_unlock();
	return mv_page_out(b, 1, &uses);
}

int mv_page_in_planned_relock(struct mv_buf *b)
{
	/* One used in host memory since its page-out is left to the launch that needs it: its page-in
	 * waits on the host for that use, which the pager and a plan's step never do. */
	if (b->state != MV_HOST || b->freed || b->kind != MV_KIND_LARGE || b->host_runs > 0 || b->host_used)
		return -1;
	/* Cached pages of freed buffers make room first, as for any allocation: the plan counted a
	 * free as giving its memory back. */
	while (budget.resident + b->span > budget.limit && drop_cached_relock())
		if (b->state != MV_HOST || b->freed || b->host_runs > 0 || b->host_used)
			return -1;
	if (budget.resident + b->span > budget.limit)
		return 1;
	budget.resident += b->span;
	b->state = MV_FETCHING;
	b->planned_in = 1;
	b->plan_waited = 0;
	mv_unlock();
	if (page_in_charged(b) != CUDA_SUCCESS) {
		mv_lock();
		b->planned_in = 0;
		page_in_failed(b);
		return -1;
	}
	mv_lock();
	return 0;
}

int mv_page_in_planned(struct mv_buf *b)
{
	int r;

	mv_lock();
	r = mv_page_in_planned_relock(b);
	/* Room is on its way: the pager issues it once the page-outs before it have landed. */
	if (r == 1 && budget.evicting > 0 && mv_pager_defer_in(b) == 0)
		r = 0;
	mv_unlock();
	return r == 0 ? 0 : -1;
}

/* ---- work that uses buffers where they are, on the host ---- */

/* Whether the first run over the link has been told of. Guarded by mv_lock. */
static int host_runs_told;

int mv_host_runs_take(struct mv_buf *const *named, const unsigned char *on_host, size_t n)
{
	mv_lock();
	for (size_t i = 0; i < n; i++)
		if (on_host[i] && (named[i]->state != MV_HOST || !named[i]->netted)) {
			mv_unlock();
			return -1;
		}
	for (size_t i = 0; i < n; i++)
		if (on_host[i]) {
			named[i]->host_runs++;
			named[i]->host_used = 1;
		}
	mv_unlock();
	return 0;
}

void mv_host_runs_drop(struct mv_buf *const *named, const unsigned char *on_host, size_t n, int ran)
{
	uint64_t bytes = 0, runs = 0;
	const struct mv_buf *first = NULL;
	int tell;

	mv_lock();
	for (size_t i = 0; i < n; i++)
		if (on_host[i]) {
			named[i]->host_runs--;
			bytes += named[i]->size;
			runs++;
			if (first == NULL)
				first = named[i];
		}
	mv_wake_moved();
	tell = ran && !host_runs_told;
	if (ran && first != NULL) {
		char a[32], b[32];
		host_runs_told = 1;
		/* tests/unit/check_interpose_invariants.c reads "reached in host memory over the link". */
		mv_log(tell ? MV_LOG_INFO : MV_LOG_DEBUG,
		       "%llu buffers (%s, the first at %#llx) reached in host memory over the link: the work "
		       "naming them does not fit the budget of %s at once%s", (unsigned long long)runs,
		       mv_format_size(bytes, a, sizeof(a)), (unsigned long long)first->va,
		       mv_format_size(budget.limit, b, sizeof(b)),
		       tell ? " (said once; memvirt stats counts such runs as host_mapped_runs)" : "");
	}
	mv_unlock();
	if (ran && runs > 0) {
		mv_count_add(MV_COUNTER_host_mapped_runs, 1);
		mv_count_add(MV_COUNTER_host_mapped_bytes, bytes);
	}
}

/* ---- making a buffer resident ---- */

CUresult mv_make_resident(struct mv_buf *b, CUstream h, int capturing, int *on_host)
{
	CUresult r;
	int fetched = 0, late;
	unsigned held_looks = 0;

	if (on_host != NULL)
		*on_host = 0;
	mv_lock();
	for (;;) {
		if (b->state == MV_RESIDENT)
			break;
		if (b->state == MV_EVICTING && !b->releasing) {
			/* Its pages are still mapped: keep them and drop the copy when it lands. */
			b->rescue = 1;
			mv_pager_flush_lazy();
			break;
		}
		if (b->state == MV_HOST && on_host != NULL && b->netted &&
		    (b->host_runs > 0 || (b->host_used && mv_buf_held(b)))) {
			/* Other work on its way uses it where it is, or its page-in would wait for work a
			 * memory wait holds: this work uses it there too, waiting for neither. */
			*on_host = 1;
			mv_unlock();
			return CUDA_SUCCESS;
		}
		if (b->state == MV_HOST && (b->host_runs > 0 || (b->host_used && mv_buf_held(b)))) {
			/* Work that needs it resident: the work using it where it is goes to the driver
			 * first (a page-in now would move the pages from under it), and a memory wait's
			 * write comes first, for as long as make_room waits for one. */
			if (held_looks++ >= 6000) {
				mv_unlock();
				mv_log(MV_LOG_WARN, "buffer %#llx: work used it in host memory on a stream a memory "
						    "wait (cuStreamWaitValue) still holds after 60 s; its page-in is "
						    "refused: CUDA_ERROR_OUT_OF_MEMORY", (unsigned long long)b->va);
				mv_count_add(MV_COUNTER_oom, 1);
				return CUDA_ERROR_OUT_OF_MEMORY;
			}
			if (b->host_runs > 0)
				mv_pager_wait(NULL);
			else
				pager_wait_a_little();
			continue;
		}
		if (b->state == MV_HOST) {
			/* Room first, then the claim: no thread waits for room holding a buffer that
			 * others need, and another thread may bring b in meanwhile. */
			mv_unlock();
			r = make_room(b->span, b, on_host != NULL);
			mv_lock();
			if (r == MV_ROOM_MOOT)
				continue;
			if (r == MV_ROOM_ON_HOST) {
				*on_host = 1;
				mv_unlock();
				return CUDA_SUCCESS;
			}
			if (r != CUDA_SUCCESS) {
				mv_unlock();
				return r;
			}
			if (b->state != MV_HOST || b->host_runs > 0) {
				mv_unlock();
				mv_uncharge(b->span);
				mv_lock();
				continue;
			}
			b->state = MV_FETCHING;
			mv_unlock();
			r = page_in_charged(b);
			mv_lock();
			if (r != CUDA_SUCCESS) {
				page_in_failed(b);
				mv_unlock();
				return r;
			}
			fetched = 1;
			break;
		}
		mv_pager_wait(NULL);
	}
	if (!b->ready_pending) {
		mv_unlock();
		return CUDA_SUCCESS;
	}
	late = b->planned_in && !fetched && !b->in_used;
	if (!fetched && !b->in_used) {
		b->in_used = 1;
		mv_pager_kick();
	}
	/* The pager reads it when the page-in lands, under this lock. */
	if (fetched)
		b->plan_waited = 1;
	mv_unlock();
	if (late && mv_real.cuEventQuery(b->moved) == CUDA_ERROR_NOT_READY)
		mv_exec_late(b);
	if (fetched) {
		/* Every page-in issued here is one a submission waits for: a fault-in. */
		mv_count_add(MV_COUNTER_fault_ins, 1);
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
