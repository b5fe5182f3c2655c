/* The pinned host pool that paged-out buffers live in, grown in large chunks up to
 * MEMVIRT_HOST_LIMIT and memvirtd's share of the node's host limit (by doubling, under that share),
 * and the safety net's mappings of a buffer's device range onto its host copy. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "interpose/internal.h"
#include "protocol/units.h"

/* One block of pinned host memory: a host-located VMM allocation mapped at `ptr` (so its ranges
 * can also be mapped at buffers' device addresses), or cuMemHostAlloc memory where the device
 * cannot map host memory. Carved in granules. */
struct mv_hostchunk {
	CUmemGenericAllocationHandle handle; /* 0 for cuMemHostAlloc memory */
	char *ptr;
	uint64_t size;
	uint8_t *used; /* one flag per granule */
	struct mv_hostchunk *next;
};

struct mv_hostslot {
	struct mv_hostchunk *chunk;
	uint64_t off, span;
};

#define MV_HOST_CHUNK (256ull << 20)
/* Under memvirtd's node host limit the pool starts with a chunk this small and doubles. */
#define MV_HOST_CHUNK_FIRST (2ull << 20)
/* Guards the chunk list, the granule flags and the host grant; pool_cond is signalled when the
 * grant changes. Not held across driver calls: chunks are made first and linked in after. */
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_cond = PTHREAD_COND_INITIALIZER;
static struct mv_hostchunk *chunks;
static uint64_t pool_bytes, pool_used;
static int pool_full_logged, grant_full_logged;
static int pool_add_failed_logged;
/* memvirtd's share of the node's host limit for this process, MV_HOST_GRANT_NONE for none; and
 * the grant a page-out last waited out in vain, which no page-out waits for again. */
static uint64_t host_grant = MV_HOST_GRANT_NONE, grant_waited = MV_HOST_GRANT_NONE;
/* Whether a page-out has waited for the link's first session's word, which happens once. */
static int greet_waited;
/* While page-outs wait for a larger grant: how many wait, and the largest pool size one of them
 * needs (0 when none waits). memvirtd reads it (counter host_need_bytes) and claims that much of the
 * node for this process. Without it, the claim runs only a little ahead of the pool, and a buffer
 * larger than that would wait for a grant that never comes. */
static unsigned need_waiters;
static uint64_t need;
/* The pool size a wait last asked for in vain: a page-out that needs as much does not wait again
 * until a grant reaches it, so that grants that grow by less do not each cost a wait. */
static uint64_t want_waited;

/* What the pool may hold now: the lesser of MEMVIRT_HOST_LIMIT and the host grant. */
static uint64_t pool_limit(void)
{
	return MV_MIN(mv_cfg.host_limit, host_grant);
}

/* Whether the host grant, not MEMVIRT_HOST_LIMIT, is what stops the pool. */
static int grant_limits(void)
{
	return host_grant < mv_cfg.host_limit;
}

/* The size of the pool's next chunk. A process alone pins large chunks. Under memvirtd's node host
 * limit, the pool doubles from a small first chunk instead: pinned memory is never given back, so
 * a process that took a whole chunk, or the whole share it had while it was the only process,
 * would leave nothing for the processes that link after it, and they would be refused while the
 * node's total stays far below its limit. Doubling pins at most twice what the pool needed. */
static uint64_t chunk_next(void)
{
	uint64_t g = mv_dev()->granularity;

	if (host_grant == MV_HOST_GRANT_NONE)
		return MV_HOST_CHUNK;
	return (MV_MIN(MV_MAX(pool_bytes, MV_HOST_CHUNK_FIRST), MV_HOST_CHUNK) + g - 1) / g * g;
}

void mv_host_grant_set(uint64_t grant)
{
	pthread_mutex_lock(&pool_lock);
	if (grant != host_grant) {
		host_grant = grant;
		grant_full_logged = 0;
		pthread_cond_broadcast(&pool_cond);
	}
	pthread_mutex_unlock(&pool_lock);
}

void mv_host_grant_heard(void)
{
	/* Taken, so that a waiter that saw the greeting under way is asleep before the wake-up. */
	pthread_mutex_lock(&pool_lock);
	pthread_cond_broadcast(&pool_cond);
	pthread_mutex_unlock(&pool_lock);
}

/* Whether the pool should not grow yet: no grant, and the link's first session under way, whose
 * WELCOME may bring one. */
static int greeting_locked(void)
{
	return host_grant == MV_HOST_GRANT_NONE && !greet_waited && mv_link_greeting();
}

/* With pool_lock held, before the pool first grows: while the link's first session is being
 * greeted, waits a bounded time for its word, once, so that a job does not pin memory the node's
 * host limit may not give it. Never on the link thread. Returns whether it waited. */
static int greet_wait_locked(void)
{
	struct timespec until;

	if (!greeting_locked() || mv_link_is_self())
		return 0;
	mv_deadline_ms(&until, (long)mv_cfg.host_wait_ms);
	while (mv_link_greeting())
		if (pthread_cond_timedwait(&pool_cond, &pool_lock, &until) != 0)
			break;
	greet_waited = 1;
	return 1;
}

static struct mv_hostslot *slot_in(struct mv_hostchunk *c, uint64_t span)
{
	uint64_t g = mv_dev()->granularity, n = span / g, total = c->size / g, run = 0;

	for (uint64_t i = 0; i < total; i++) {
		run = c->used[i] ? 0 : run + 1;
		if (run == n) {
			struct mv_hostslot *s = malloc(sizeof(*s));
			if (s == NULL)
				return NULL;
			memset(c->used + (i + 1 - n), 1, n);
			*s = (struct mv_hostslot){c, (i + 1 - n) * g, span};
			pool_used += span;
			return s;
		}
	}
	return NULL;
}

static struct mv_hostchunk *chunk_new(uint64_t size)
{
	struct mv_hostchunk *c = calloc(1, sizeof(*c));
	CUresult r;

	if (c == NULL)
		return NULL;
	c->size = size;
	c->used = calloc(size / mv_dev()->granularity, 1);
	if (c->used == NULL)
		goto err_used;
	if (mv_dev()->host_vmm) {
		CUmemAllocationProp prop = {0};
		CUdeviceptr va;
		prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
		prop.location = mv_dev()->host_loc;
		r = mv_real.cuMemCreate(&c->handle, size, &prop, 0);
		if (r != CUDA_SUCCESS)
			goto err_create;
		r = mv_real.cuMemAddressReserve(&va, size, mv_dev()->granularity, 0, 0);
		if (r != CUDA_SUCCESS)
			goto err_reserve;
		r = mv_real.cuMemMap(va, size, 0, c->handle, 0);
		if (r != CUDA_SUCCESS)
			goto err_map;
		r = mv_grant(va, size, 1);
		if (r != CUDA_SUCCESS) {
			mv_real.cuMemUnmap(va, size);
			goto err_map;
		}
		c->ptr = (char *)(uintptr_t)va;
		return c;
err_map:
		mv_real.cuMemAddressFree(va, size);
err_reserve:
		mv_real.cuMemRelease(c->handle);
		goto err_create;
	}
	r = mv_real.cuMemHostAlloc((void **)&c->ptr, size, CU_MEMHOSTALLOC_PORTABLE);
	if (r == CUDA_SUCCESS)
		return c;
err_create:
	free(c->used);
err_used:
	free(c);
	return NULL;
}

/* Adds a chunk of size bytes to the pool. Called with pool_lock held, which it lets go while the
 * chunk is made (driver calls) and holds again on return; the size is counted first, so that the
 * limit holds meanwhile. Returns the chunk, or NULL. */
static struct mv_hostchunk *pool_add_relock(uint64_t size)
{
	struct mv_hostchunk *c;

	pool_bytes += size;
	pthread_mutex_unlock(&pool_lock);
	c = chunk_new(size);
	pthread_mutex_lock(&pool_lock);
	if (c == NULL) {
		char a[32];
		pool_bytes -= size;
		/* Once per run of failures: a page-out is tried for every victim, each would say it. */
		if (!pool_add_failed_logged)
			mv_log(MV_LOG_WARN, "cannot allocate %s of pinned host memory: cannot page out more",
			       mv_format_size(size, a, sizeof(a)));
		pool_add_failed_logged = 1;
		return NULL;
	}
	pool_add_failed_logged = 0;
	c->next = chunks;
	chunks = c;
	mv_count_add(MV_COUNTER_host_pool_bytes, size);
	/* Within a chunk of the grant: memvirtd hears of it now, so that the next grant comes before
	 * a page-out needs it. */
	if (grant_limits() && pool_bytes + chunk_next() >= host_grant)
		mv_link_nudge();
	return c;
}

/* Logs once per limit (and per grant) that the pool is full, naming which limit stops it. */
static void pool_full_log(void)
{
	char a[32], b[32];

	if (grant_limits() && !grant_full_logged) {
		grant_full_logged = 1;
		mv_log(MV_LOG_WARN, "host pool full at %s (memvirtd's node host limit, this process's share "
		       "%s): cannot page out more", mv_format_size(pool_bytes, a, sizeof(a)),
		       mv_format_size(host_grant, b, sizeof(b)));
	} else if (!grant_limits() && !pool_full_logged) {
		pool_full_logged = 1;
		mv_log(MV_LOG_WARN, "host pool full at %s (MEMVIRT_HOST_LIMIT): cannot page out more",
		       mv_format_size(pool_bytes, a, sizeof(a)));
	}
}

/* With pool_lock held: says what the pool needs (0: nothing waits). */
static void need_set(uint64_t bytes)
{
	if (bytes > need)
		mv_count_add(MV_COUNTER_host_need_bytes, bytes - need);
	else if (bytes < need)
		mv_count_sub(MV_COUNTER_host_need_bytes, need - bytes);
	need = bytes;
}

/* With pool_lock held: the pool is at its host grant, and would hold the page-out at `want` bytes
 * (0: no grant would do, MEMVIRT_HOST_LIMIT stops it). Tells memvirtd what it needs and waits for
 * a larger grant until *until, which the first wait of a page-out sets (*started), so that the
 * grants that change meanwhile do not add up to more than MEMVIRT_HOST_WAIT. Waits not for a grant
 * waited out before, nor for a need at least as large as one waited out in vain while the grant
 * stays below that, nor on the link thread, which is the one that would receive it. Returns
 * whether the grant changed. */
static int grant_wait_locked(uint64_t want, struct timespec *until, int *started)
{
	uint64_t was = host_grant;

	if (want == 0 || !grant_limits() || was == grant_waited || !mv_link_is_up() || mv_link_is_self() ||
	    (want_waited != 0 && want >= want_waited && was < want_waited))
		return 0;
	if (!*started)
		mv_deadline_ms(until, (long)mv_cfg.host_wait_ms);
	*started = 1;
	need_waiters++;
	if (want > need)
		need_set(want);
	mv_link_nudge();
	while (host_grant == was)
		if (pthread_cond_timedwait(&pool_cond, &pool_lock, until) != 0)
			break;
	if (--need_waiters == 0)
		need_set(0);
	if (host_grant != was)
		return 1;
	grant_waited = was;
	want_waited = want;
	return 0;
}

struct mv_hostslot *mv_host_alloc(uint64_t span)
{
	struct mv_hostslot *s = NULL;
	struct mv_hostchunk *c;
	uint64_t size, limit, want;
	struct timespec until;
	int started = 0;

	pthread_mutex_lock(&pool_lock);
again:
	limit = pool_limit();
	for (c = chunks; c != NULL && s == NULL; c = c->next)
		s = slot_in(c, span);
	size = MV_MAX(chunk_next(), span);
	/* The last chunk takes what is left below the limit, so that all of it can be used. */
	if (pool_bytes + size > limit && pool_bytes < limit)
		size = (limit - pool_bytes) / mv_dev()->granularity * mv_dev()->granularity;
	if (s != NULL || size < span || pool_bytes + size > limit) {
		/* The pool this page-out needs, where MEMVIRT_HOST_LIMIT would allow it. */
		want = pool_bytes + span <= mv_cfg.host_limit ?
			       MV_MIN(pool_bytes + MV_MAX(chunk_next(), span), mv_cfg.host_limit) : 0;
		if (s == NULL && grant_wait_locked(want, &until, &started))
			goto again;
		if (s == NULL)
			pool_full_log();
		pthread_mutex_unlock(&pool_lock);
		return s;
	}
	if (greet_wait_locked())
		goto again;
	c = pool_add_relock(size);
	if (c != NULL)
		s = slot_in(c, span);
	pthread_mutex_unlock(&pool_lock);
	return s;
}

void mv_host_free(struct mv_hostslot *s)
{
	pthread_mutex_lock(&pool_lock);
	memset(s->chunk->used + s->off / mv_dev()->granularity, 0, s->span / mv_dev()->granularity);
	pool_used -= s->span;
	pthread_mutex_unlock(&pool_lock);
	free(s);
}

int mv_host_pool_low(void)
{
	int low;

	pthread_mutex_lock(&pool_lock);
	low = pool_bytes - pool_used < chunk_next() / 2 && pool_bytes + chunk_next() <= pool_limit() &&
	      !greeting_locked();
	pthread_mutex_unlock(&pool_lock);
	return low;
}

void mv_host_pool_grow(void)
{
	pthread_mutex_lock(&pool_lock);
	if (pool_bytes - pool_used >= chunk_next() / 2 || pool_bytes + chunk_next() > pool_limit() ||
	    greeting_locked()) {
		pthread_mutex_unlock(&pool_lock);
		return;
	}
	pool_add_relock(chunk_next());
	pthread_mutex_unlock(&pool_lock);
}

void *mv_host_ptr(const struct mv_hostslot *s)
{
	return s->chunk->ptr + s->off;
}

void mv_net_map(struct mv_buf *b)
{
	b->netted = 0;
	if (!mv_dev()->host_vmm || b->host->chunk->handle == 0)
		return;
	if (mv_real.cuMemMap(b->va, b->span, b->host->off, b->host->chunk->handle, 0) != CUDA_SUCCESS)
		return;
	if (mv_grant(b->va, b->span, 0) != CUDA_SUCCESS)
		mv_real.cuMemUnmap(b->va, b->span);
	else
		b->netted = 1;
}

void mv_net_unmap(struct mv_buf *b)
{
	if (b->netted)
		mv_real.cuMemUnmap(b->va, b->span);
	b->netted = 0;
}
