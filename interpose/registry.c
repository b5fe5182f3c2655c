/* The buffer registry: every allocation the app made through memvirt, sorted by address so that
 * any address, interior pointers included, finds its buffer in O(log n); and each buffer's last
 * uses, per stream, which whatever releases or copies its pages waits for. */
#include "config.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "interpose/internal.h"

/* The library lock: what it guards, and the order it is taken in, are in internal.h. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
/* Waited on for room in the budget or for a buffer's move to end; broadcast through mv_wake_*. */
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;

void mv_lock(void)
{
	pthread_mutex_lock(&lock);
}

void mv_unlock(void)
{
	pthread_mutex_unlock(&lock);
}

void mv_lock_wait(pthread_cond_t *c, const struct timespec *until)
{
	if (until != NULL)
		pthread_cond_timedwait(c, &lock, until);
	else
		pthread_cond_wait(c, &lock);
}

void mv_deadline_ms(struct timespec *until, long ms)
{
	clock_gettime(CLOCK_REALTIME, until);
	until->tv_sec += ms / 1000;
	until->tv_nsec += (ms % 1000) * 1000000L;
	if (until->tv_nsec >= 1000000000L) {
		until->tv_sec++;
		until->tv_nsec -= 1000000000L;
	}
}

void mv_wait_change(void)
{
	pthread_cond_wait(&changed, &lock);
}

void mv_wait_change_until(const struct timespec *until)
{
	pthread_cond_timedwait(&changed, &lock, until);
}

/* Three reasons, one set of waiters: each waiter looks again at everything it waits for, so the
 * names say why a wake-up happens rather than whom it is for. */
void mv_wake_room(void)
{
	pthread_cond_broadcast(&changed);
}

void mv_wake_moved(void)
{
	pthread_cond_broadcast(&changed);
}

void mv_wake_unbusy(void)
{
	pthread_cond_broadcast(&changed);
}

/* Guarded by mv_lock. */
static struct mv_buf **bufs;
static size_t nbufs, capbufs;

/* Index of the first buffer starting above addr. */
static size_t upper(uint64_t addr)
{
	size_t lo = 0, hi = nbufs;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (bufs[mid]->va <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int mv_registry_add(struct mv_buf *b)
{
	size_t at;

	if (nbufs == capbufs) {
		size_t cap = capbufs ? capbufs * 2 : 256;
		struct mv_buf **v = realloc(bufs, cap * sizeof(*v));
		if (v == NULL)
			return -1;
		bufs = v;
		capbufs = cap;
	}
	at = upper(b->va);
	memmove(&bufs[at + 1], &bufs[at], (nbufs - at) * sizeof(*bufs));
	bufs[at] = b;
	nbufs++;
	return 0;
}

void mv_registry_remove(struct mv_buf *b)
{
	size_t at = upper(b->va);

	if (at == 0 || bufs[at - 1] != b)
		return;
	at--;
	memmove(&bufs[at], &bufs[at + 1], (nbufs - at - 1) * sizeof(*bufs));
	nbufs--;
}

struct mv_buf *mv_registry_find(uint64_t addr)
{
	size_t at = upper(addr);
	struct mv_buf *b;

	if (at == 0)
		return NULL;
	b = bufs[at - 1];
	return addr - b->va < b->size ? b : NULL;
}

size_t mv_registry_large(uint64_t *vas, size_t max)
{
	size_t n = 0;

	mv_lock();
	for (int resident = 0; resident < 2; resident++)
		for (size_t i = 0; i < nbufs && n < max; i++)
			if (bufs[i]->kind == MV_KIND_LARGE && (bufs[i]->state == MV_RESIDENT) == resident)
				vas[n++] = bufs[i]->va;
	mv_unlock();
	return n;
}

/* Whether a, keyed ka, is a better victim than b, keyed kb: the higher tier, then the higher
 * value, then the least recently used. */
static int victim_better(const struct mv_victim_key *ka, const struct mv_buf *a, const struct mv_victim_key *kb,
			 const struct mv_buf *b)
{
	if (ka->tier != kb->tier)
		return ka->tier > kb->tier;
	if (ka->value != kb->value)
		return ka->value > kb->value;
	return a->lru < b->lru;
}

static const char *const tier_names[] = {
	[MV_VICTIM_TOO_SOON] = "needed before it could be back",
	[MV_VICTIM_IN_TIME] = "back in time for its next use",
	[MV_VICTIM_UNKNOWN] = "not in the plan",
	[MV_VICTIM_DEAD] = "not used again",
};

/* By the plan's next use while the executor follows the iteration (exec.c says how), else least
 * recently used first. A buffer is a candidate when it is resident and large, not pinned, not
 * moving, not just paged in, not in use by a submission on its way, and not used on a stream held
 * by a memory wait. */
struct mv_buf *mv_registry_victim(uint64_t need, int *later)
{
	struct mv_buf *best = NULL;
	struct mv_victim_key best_key = {MV_VICTIM_TOO_SOON, 0}, key;
	int planned = mv_exec_ranks_victims();

	*later = 0;
	for (size_t i = 0; i < nbufs; i++) {
		struct mv_buf *b = bufs[i];
		if (b->kind != MV_KIND_LARGE || b->state != MV_RESIDENT || b->pinned || b->freed || b->rescue || b->skip)
			continue;
		/* In use right now, or just paged in: a candidate again shortly. */
		if (atomic_load_explicit(&b->busy, memory_order_acquire) > 0 || b->ready_pending) {
			*later |= MV_LATER_BUSY;
			continue;
		}
		/* Used on a stream a memory wait may hold: once the word has been written. */
		if (mv_buf_held(b)) {
			*later |= MV_LATER_HELD;
			continue;
		}
		if (!planned) {
			if (best == NULL || b->lru < best->lru)
				best = b;
			continue;
		}
		mv_exec_victim_key(b, need, &key);
		if (best == NULL || victim_better(&key, b, &best_key, best)) {
			best = b;
			best_key = key;
		}
	}
	/* tests/unit/check_interpose_plan.c reads "victim 0x...: by the plan's next use". */
	if (planned && best != NULL)
		mv_log(MV_LOG_DEBUG, "victim %#llx: by the plan's next use, %s (%.0f)", (unsigned long long)best->va,
		       tier_names[best_key.tier], best_key.value);
	return best;
}

void mv_registry_unskip(void)
{
	for (size_t i = 0; i < nbufs; i++)
		bufs[i]->skip = 0;
}

void mv_buf_use(struct mv_buf *b, struct mv_stream *s, uint64_t t, uint64_t clock)
{
	uint16_t idx = (uint16_t)mv_stream_index(s);

	b->lru = clock;
	for (int i = 0; i < b->nuses; i++) {
		if (b->uses[i].stream == idx) {
			b->uses[i].ticket = t;
			return;
		}
	}
	if (b->nuses < MV_USES)
		b->uses[b->nuses++] = (struct mv_use){idx, t};
	else
		b->uses_overflow = 1;
}

void mv_buf_pin(struct mv_buf *b)
{
	if (b->pinned < INT_MAX)
		b->pinned++;
}

/* A pin dropped by a buffer reused meanwhile (its count reset) leaves the count alone. */
void mv_buf_unpin(struct mv_buf *b)
{
	if (b->pinned > 0 && b->pinned < INT_MAX)
		b->pinned--;
}

uint64_t mv_registry_describe(char *buf, size_t len)
{
	uint64_t slab = 0, pinned = 0, busy = 0, pending = 0, other = 0, moving = 0;

	for (size_t i = 0; i < nbufs; i++) {
		struct mv_buf *b = bufs[i];
		if (b->kind == MV_KIND_SLAB)
			slab += b->size;
		else if (b->state != MV_RESIDENT)
			moving += b->span;
		else if (b->pinned)
			pinned += b->span;
		else if (atomic_load(&b->busy) > 0)
			busy += b->span;
		else if (b->ready_pending)
			pending += b->span;
		else
			other += b->span;
	}
	snprintf(buf, len, "slab blocks %llu, pinned %llu, in use %llu, arriving %llu, moving %llu, other %llu bytes",
		 (unsigned long long)slab, (unsigned long long)pinned, (unsigned long long)busy,
		 (unsigned long long)pending, (unsigned long long)moving, (unsigned long long)other);
	return other;
}

/* ---- last uses ---- */

void mv_buf_uses_copy(const struct mv_buf *b, struct mv_uses *out)
{
	out->n = b->nuses;
	out->overflow = b->uses_overflow;
	memcpy(out->use, b->uses, sizeof(out->use));
}

/* The uses to wait for: u's own, or, when it overflowed, every stream's latest ticket. Never a
 * submission still on its way (the waiter's own, or one that let its buffers go while it waits
 * for room): its work is not enqueued, and comes after the page-in it will wait for. Its ticket
 * replaced the stream's earlier use, which mv_stream_latest covers. Returns how many are in
 * out[MV_MAX_STREAMS]. */
static int uses_to_wait(const struct mv_uses *u, struct mv_use *out)
{
	int n = 0;

	for (unsigned i = 0; i < (u->overflow ? MV_MAX_STREAMS : (unsigned)u->n); i++) {
		unsigned ix = u->overflow ? i : u->use[i].stream;
		struct mv_stream *s = mv_stream_at(ix);
		uint64_t t;
		if (s == NULL) {
			if (u->overflow)
				break;
			continue;
		}
		t = mv_stream_latest(s);
		if (!u->overflow)
			t = MV_MIN(t, u->use[i].ticket);
		if (t > 0)
			out[n++] = (struct mv_use){(uint16_t)ix, t};
	}
	return n;
}

void mv_order_after_uses(CUstream waiter, const struct mv_uses *u)
{
	struct mv_use w[MV_MAX_STREAMS];
	int n = uses_to_wait(u, w);

	for (int i = 0; i < n; i++) {
		struct mv_stream *s = mv_stream_at(w[i].stream);
		if (s != NULL && mv_stream_wait_ticket(waiter, s, w[i].ticket) != 0)
			mv_stream_sync_ticket(s, w[i].ticket);
	}
}

void mv_buf_wait_uses(struct mv_buf *b)
{
	struct mv_uses u;

	/* Without mv_lock: b is out of the registry and on no list, its caller's alone. */
	mv_buf_uses_copy(b, &u);
	mv_uses_sync(&u);
}

void mv_uses_sync(const struct mv_uses *u)
{
	struct mv_use w[MV_MAX_STREAMS];
	int n = uses_to_wait(u, w);

	for (int i = 0; i < n; i++) {
		struct mv_stream *s = mv_stream_at(w[i].stream);
		if (s != NULL)
			mv_stream_sync_ticket(s, w[i].ticket);
	}
}

/* ---- streams held by a memory wait ---- */

/* A stream memory wait holds its stream until the word it waits on is written, which the app may
 * submit only later, perhaps from the very thread that would be waiting for room meanwhile. So no
 * page-out waits for such a stream while its wait may not have completed: a page-out waits on the
 * one copy stream, and every page-out and page-in after it would wait too. Guarded by mv_lock. */
static struct {
	int pending;    /* waits on their way to the driver */
	uint64_t until; /* a ticket at or after the latest wait submitted; 0 when none may be open */
} gates[MV_MAX_STREAMS];
static int ngates; /* streams with a wait pending or until set */

void mv_gate_begin(struct mv_stream *s)
{
	unsigned ix = mv_stream_index(s);

	mv_lock();
	if (gates[ix].pending++ == 0 && gates[ix].until == 0)
		ngates++;
	mv_unlock();
}

void mv_gate_end(struct mv_stream *s)
{
	unsigned ix = mv_stream_index(s);
	/* At or after the wait's own ticket: what completes after it on its stream, and nothing later
	 * than work already enqueued. */
	uint64_t t = mv_stream_latest(s);

	mv_lock();
	gates[ix].pending--;
	gates[ix].until = MV_MAX(gates[ix].until, t);
	if (gates[ix].pending == 0 && gates[ix].until == 0)
		ngates--;
	mv_unlock();
}

/* Whether stream ix may be held by a wait; forgets a wait found complete. Queries the stream's
 * mark (the lock block's exception). */
static int gate_open(unsigned ix)
{
	struct mv_stream *s;

	if (gates[ix].pending > 0)
		return 1;
	if (gates[ix].until == 0)
		return 0;
	s = mv_stream_at(ix);
	if (s != NULL && !mv_stream_ticket_done(s, gates[ix].until))
		return 1;
	gates[ix].until = 0;
	ngates--;
	return 0;
}

int mv_buf_held(const struct mv_buf *b)
{
	if (ngates == 0)
		return 0;
	/* Its page-out would wait for every stream's latest work. */
	if (b->uses_overflow) {
		for (unsigned ix = 0; ix < MV_MAX_STREAMS; ix++)
			if (gate_open(ix))
				return 1;
		return 0;
	}
	/* A use not known complete is held even if it came before the wait: the mark that covers it
	 * may be recorded after the wait. */
	for (int i = 0; i < b->nuses; i++) {
		unsigned ix = b->uses[i].stream;
		if (gate_open(ix) && !mv_stream_ticket_done(mv_stream_at(ix), b->uses[i].ticket))
			return 1;
	}
	return 0;
}
