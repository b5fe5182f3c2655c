/* The app's streams as memvirt sees them: a ring of events per stream marks its launches, so that a
 * buffer's last use on each stream can be waited for exactly, and the set of streams capturing a
 * graph. */
#include "config.h"

#include <sched.h>

#include "interpose/internal.h"

static struct mv_stream table[MV_MAX_STREAMS];
static _Atomic unsigned count;
/* Guards adding to the table; lookups read entries published by count. */
static pthread_mutex_t add_lock = PTHREAD_MUTEX_INITIALIZER;
/* Each thread's per-thread default stream. */
static __thread struct mv_stream *own_stream;

static struct mv_stream *find(CUstream h)
{
	unsigned n = atomic_load_explicit(&count, memory_order_acquire);

	for (unsigned i = 0; i < n; i++)
		if (table[i].handle == h && !table[i].per_thread)
			return &table[i];
	return NULL;
}

static struct mv_stream *add(CUstream h, int per_thread)
{
	CUevent ring[MV_RING];
	struct mv_stream *s = NULL;
	unsigned i;

	/* The events are made before taking the lock: no lock is held across a driver call. */
	for (i = 0; i < MV_RING; i++) {
		if (mv_real.cuEventCreate(&ring[i], CU_EVENT_DISABLE_TIMING) != CUDA_SUCCESS) {
			while (i-- > 0)
				mv_real.cuEventDestroy_v2(ring[i]);
			return NULL;
		}
	}
	pthread_mutex_lock(&add_lock);
	if (!per_thread)
		s = find(h);
	if (s == NULL && atomic_load_explicit(&count, memory_order_relaxed) < MV_MAX_STREAMS) {
		s = &table[atomic_load_explicit(&count, memory_order_relaxed)];
		s->handle = h;
		s->per_thread = per_thread;
		for (i = 0; i < MV_RING; i++) {
			s->ring[i] = ring[i];
			atomic_store_explicit(&s->slot_ticket[i], 0, memory_order_relaxed);
		}
		atomic_store_explicit(&s->next_ticket, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&count, 1, memory_order_release);
		for (i = 0; i < MV_RING; i++)
			ring[i] = NULL;
	}
	pthread_mutex_unlock(&add_lock);
	for (i = 0; i < MV_RING; i++)
		if (ring[i] != NULL)
			mv_real.cuEventDestroy_v2(ring[i]);
	if (s == NULL)
		mv_log(MV_LOG_WARN, "more than %d streams: launches on the others synchronise", MV_MAX_STREAMS);
	return s;
}

struct mv_stream *mv_stream_get(CUstream h, int per_thread)
{
	struct mv_stream *s;

	if (h == NULL)
		h = per_thread ? CU_STREAM_PER_THREAD : CU_STREAM_LEGACY;
	if (h == CU_STREAM_PER_THREAD) {
		if (own_stream == NULL)
			own_stream = add(CU_STREAM_PER_THREAD, 1);
		return own_stream;
	}
	s = find(h);
	return s != NULL ? s : add(h, 0);
}

CUstream mv_stream_handle(const struct mv_stream *s)
{
	return s->handle;
}

struct mv_stream *mv_stream_at(unsigned index)
{
	return index < atomic_load_explicit(&count, memory_order_acquire) ? &table[index] : NULL;
}

unsigned mv_stream_index(const struct mv_stream *s)
{
	return (unsigned)(s - table);
}

uint64_t mv_stream_ticket(struct mv_stream *s)
{
	return atomic_fetch_add_explicit(&s->next_ticket, 1, memory_order_relaxed);
}

void mv_stream_mark(struct mv_stream *s, uint64_t t)
{
	unsigned slot = (unsigned)(t % MV_RING);

	mv_real.cuEventRecord(s->ring[slot], s->handle);
	atomic_store_explicit(&s->slot_ticket[slot], t, memory_order_release);
}

/* A slot's event marks ticket t or a later one of the same stream, which completes after it. */
static int recorded(struct mv_stream *s, uint64_t t, unsigned *slot)
{
	*slot = (unsigned)(t % MV_RING);
	return atomic_load_explicit(&s->slot_ticket[*slot], memory_order_acquire) >= t;
}

int mv_stream_wait_ticket(CUstream waiter, struct mv_stream *s, uint64_t t)
{
	unsigned slot;

	if (!recorded(s, t, &slot))
		return -1;
	mv_real.cuStreamWaitEvent(waiter, s->ring[slot], 0);
	return 0;
}

void mv_stream_sync_ticket(struct mv_stream *s, uint64_t t)
{
	unsigned slot;

	/* A use whose event is not recorded yet belongs to a launch on its way; it is recorded right
	 * after the launch returns. */
	while (!recorded(s, t, &slot))
		sched_yield();
	mv_real.cuEventSynchronize(s->ring[slot]);
}

int mv_stream_ticket_done(struct mv_stream *s, uint64_t t)
{
	unsigned slot;

	return recorded(s, t, &slot) && mv_real.cuEventQuery(s->ring[slot]) == CUDA_SUCCESS;
}

/* ---- capture ---- */

#define MV_MAX_CAPTURES 16

/* Guarded by add_lock; the count is read without it on the launch path. */
static struct {
	CUstream handle;
	struct mv_stream *own; /* for the per-thread stream: whose */
} captures[MV_MAX_CAPTURES];
static _Atomic int ncaptures;

static int capture_index(CUstream h, int per_thread)
{
	struct mv_stream *own = NULL;

	if (h == NULL)
		h = per_thread ? CU_STREAM_PER_THREAD : CU_STREAM_LEGACY;
	if (h == CU_STREAM_PER_THREAD)
		own = own_stream;
	for (int i = 0; i < atomic_load_explicit(&ncaptures, memory_order_acquire); i++)
		if (captures[i].handle == h && captures[i].own == own)
			return i;
	return -1;
}

void mv_capture_begin(CUstream h, int per_thread)
{
	pthread_mutex_lock(&add_lock);
	if (capture_index(h, per_thread) < 0 && ncaptures < MV_MAX_CAPTURES) {
		if (h == NULL)
			h = per_thread ? CU_STREAM_PER_THREAD : CU_STREAM_LEGACY;
		captures[ncaptures].handle = h;
		captures[ncaptures].own = h == CU_STREAM_PER_THREAD ? own_stream : NULL;
		atomic_fetch_add_explicit(&ncaptures, 1, memory_order_release);
	}
	pthread_mutex_unlock(&add_lock);
}

void mv_capture_end(CUstream h, int per_thread)
{
	int i;

	pthread_mutex_lock(&add_lock);
	i = capture_index(h, per_thread);
	if (i >= 0) {
		int last = atomic_load_explicit(&ncaptures, memory_order_relaxed) - 1;
		captures[i] = captures[last];
		atomic_store_explicit(&ncaptures, last, memory_order_release);
	}
	pthread_mutex_unlock(&add_lock);
}

int mv_capturing(CUstream h, int per_thread)
{
	if (atomic_load_explicit(&ncaptures, memory_order_acquire) == 0)
		return 0;
	return capture_index(h, per_thread) >= 0;
}
