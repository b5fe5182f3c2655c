/* The app's streams as memvirt sees them: a ring of events per stream marks its launches, so that a
 * buffer's last use on each stream can be waited for exactly, and the set of streams capturing a
 * graph. */
#include "config.h"

#include <sched.h>
#include <string.h>

#include "interpose/internal.h"

static struct mv_stream table[MV_MAX_STREAMS];
static _Atomic unsigned count;
/* The last moment given (mv_moment). */
static _Atomic uint64_t moments;
/* Guards adding to the table; lookups read entries published by count. */
static pthread_mutex_t add_lock = PTHREAD_MUTEX_INITIALIZER;

/* Each thread's per-thread default streams, one per context it used (the driver has one per thread
 * and context); own_stream is the one used last. The key gives them back when the thread ends. */
#define MV_OWN_STREAMS 8
static __thread struct mv_stream *own_streams[MV_OWN_STREAMS];
static __thread struct mv_stream *own_stream;
static pthread_key_t own_key;
static pthread_once_t own_key_once = PTHREAD_ONCE_INIT;
static int own_key_made;

/* The legacy and per-thread handles name a stream of whichever context is current. */
static int implicit(CUstream h)
{
	return h == CU_STREAM_LEGACY || h == CU_STREAM_PER_THREAD;
}

/* Calls fn on stream h with its context ctx current: the implicit handles name the current
 * context's stream, an event is recorded only on a stream of the context it was made in, and an
 * error then says what became of ctx, not of the calling thread's context. */
static CUresult in_ctx_of(CUcontext ctx, CUstream h, CUresult (*fn)(CUstream h, void *arg), void *arg)
{
	CUcontext prev = NULL;
	int entered = mv_ctx_enter(ctx, &prev);
	CUresult r;

	if (entered < 0)
		return CUDA_ERROR_INVALID_CONTEXT;
	r = fn(h, arg);
	mv_ctx_leave(entered, prev);
	return r;
}

static CUresult in_ctx(struct mv_stream *s, CUresult (*fn)(CUstream h, void *arg), void *arg)
{
	return in_ctx_of(s->ctx, s->handle, fn, arg);
}

static CUresult record_on(CUstream h, void *e)
{
	return mv_real.cuEventRecord((CUevent)e, h);
}

static CUresult sync_on(CUstream h, void *unused)
{
	(void)unused;
	return mv_real.cuStreamSynchronize(h);
}

static CUresult query_on(CUstream h, void *unused)
{
	(void)unused;
	return mv_real.cuStreamQuery(h);
}

static CUresult capturing_on(CUstream h, void *st)
{
	return mv_real.cuStreamIsCapturing(h, (CUstreamCaptureStatus *)st);
}

static CUresult record(struct mv_stream *s, CUevent e)
{
	return in_ctx(s, record_on, e);
}

/* Its context ended: every ticket on it is complete, and nothing names it any more. */
static int gone(const struct mv_stream *s)
{
	return atomic_load_explicit(&s->quiet, memory_order_acquire) == MV_QUIET_GONE;
}

/* Called with s->demand_lock held. */
static void retire(struct mv_stream *s)
{
	atomic_store_explicit(&s->quiet, MV_QUIET_GONE, memory_order_release);
}

uint64_t mv_moment(void)
{
	return atomic_fetch_add_explicit(&moments, 1, memory_order_acq_rel) + 1;
}

/* s takes a handle (again): a new moment, and no end under way. */
static void renewed(struct mv_stream *s)
{
	atomic_store_explicit(&s->born, mv_moment(), memory_order_relaxed);
	atomic_store_explicit(&s->ending, 0, memory_order_relaxed);
}

/* s is about to be retired once what it ran is waited for: a submission that ends on it from now
 * on waits for its own work (mv_stream_end), as the wait below may not see it. */
static void ending(struct mv_stream *s)
{
	atomic_store_explicit(&s->ending, 1, memory_order_seq_cst);
}

/* Whether the driver's answer r to a call on a stream says its context has ended. */
static int ended_answer(CUresult r)
{
	return r == CUDA_ERROR_INVALID_HANDLE || r == CUDA_ERROR_INVALID_CONTEXT || r == CUDA_ERROR_CONTEXT_IS_DESTROYED;
}

/* A mark on s was refused with r. Where the caller may block (block set), the stream is
 * synchronised in its stead, which covers all it ran; else it is only asked whether it has
 * drained, as a caller holding mv_lock must not wait for the device (and, holding it, knows no
 * submission takes a ticket meanwhile). Returns whether the entry is to be retired: its context
 * ended and took the event with it (an end memvirt did not see, or not yet: another thread's,
 * racing with this call), and nothing it ran is still running. A new entry then serves the
 * handle, with events of the context as it is now. */
static int unmarked(struct mv_stream *s, CUresult r, int block)
{
	int ended = ended_answer(r);

	if (!block)
		return ended && atomic_load_explicit(&s->inflight, memory_order_acquire) == 0 &&
		       in_ctx(s, query_on, NULL) != CUDA_ERROR_NOT_READY;
	mv_log(MV_LOG_DEBUG, "stream %p cannot be marked (error %d): synchronised instead", (void *)s->handle, (int)r);
	if (ended)
		ending(s);
	in_ctx(s, sync_on, NULL);
	return ended;
}

static struct mv_stream *find(CUstream h, CUcontext ctx)
{
	unsigned n = atomic_load_explicit(&count, memory_order_acquire);

	for (unsigned i = 0; i < n; i++) {
		int q = atomic_load_explicit(&table[i].quiet, memory_order_acquire);
		/* A retired entry's fields may be changing (recycle). */
		if (q == MV_QUIET_DEAD || q == MV_QUIET_GONE)
			continue;
		if (table[i].handle == h && !table[i].per_thread && (!implicit(h) || table[i].ctx == ctx))
			return &table[i];
	}
	return NULL;
}

/* A destroyed stream's entry (or an ended thread's, for a per-thread stream) whose work has all
 * completed, taken for h: its events are reused and its tickets go on from where they were, so a
 * buffer's use recorded on the old stream names a ticket that is complete (waiting for it again
 * costs at most a wait on the new stream's work, and work on the new one is ordered after it).
 * Its events must be of h's context. */
static struct mv_stream *reuse(CUstream h, int per_thread, CUcontext ctx)
{
	unsigned n = atomic_load_explicit(&count, memory_order_acquire);
	struct mv_stream *s = NULL;

	for (unsigned i = 0; i < n && s == NULL; i++) {
		struct mv_stream *t = &table[i];
		if (atomic_load_explicit(&t->quiet, memory_order_acquire) != MV_QUIET_DEAD ||
		    t->per_thread != per_thread || t->ctx != ctx || mv_real.cuEventQuery(t->demand) != CUDA_SUCCESS)
			continue;
		pthread_mutex_lock(&add_lock);
		/* Under its demand_lock: a context's end may be retiring it. */
		pthread_mutex_lock(&t->demand_lock);
		if ((per_thread || (s = find(h, ctx)) == NULL) &&
		    atomic_load_explicit(&t->quiet, memory_order_relaxed) == MV_QUIET_DEAD) {
			t->handle = h;
			renewed(t);
			atomic_store_explicit(&t->quiet, 0, memory_order_release);
			s = t;
		}
		pthread_mutex_unlock(&t->demand_lock);
		pthread_mutex_unlock(&add_lock);
	}
	return s;
}

/* Makes n events in ctx (the current context where ctx is NULL or current). */
static CUresult events_in(CUcontext ctx, CUevent *ev, unsigned n)
{
	CUcontext prev = NULL;
	CUresult r = CUDA_SUCCESS;
	int entered = mv_ctx_enter(ctx, &prev);
	unsigned i;

	if (entered < 0)
		return CUDA_ERROR_INVALID_CONTEXT;
	for (i = 0; i < n && r == CUDA_SUCCESS; i++)
		r = mv_real.cuEventCreate(&ev[i], CU_EVENT_DISABLE_TIMING);
	if (r != CUDA_SUCCESS)
		for (i--; i-- > 0;)
			mv_real.cuEventDestroy_v2(ev[i]);
	mv_ctx_leave(entered, prev);
	return r;
}

/* s takes h, of ctx, with ev: the ring, then `demand`, events of ctx. */
static void take(struct mv_stream *s, CUstream h, CUcontext ctx, CUevent *ev)
{
	s->handle = h;
	s->ctx = ctx;
	s->demand = ev[MV_RING];
	for (unsigned j = 0; j < MV_RING; j++) {
		s->ring[j] = ev[j];
		atomic_store_explicit(&s->slot_ticket[j], 0, memory_order_relaxed);
	}
	renewed(s);
}

/* An entry retired with its ended context, given to h with ev, events of h's context (the old ones
 * died with theirs). Never a per-thread one, which its thread may still hold. Its tickets go on from
 * where they were: every older one is complete, and a wait for one now waits at most for h's work.
 * A lookup racing with the end of the stream's own context may still read the old handle. Called
 * with add_lock held. */
static struct mv_stream *recycle(CUstream h, CUcontext ctx, CUevent *ev)
{
	unsigned n = atomic_load_explicit(&count, memory_order_relaxed);

	for (unsigned i = 0; i < n; i++) {
		struct mv_stream *s = &table[i];
		/* A submission still on its way on it would mark the new stream's tickets. */
		if (!gone(s) || s->per_thread || atomic_load_explicit(&s->inflight, memory_order_acquire) != 0)
			continue;
		pthread_mutex_lock(&s->demand_lock);
		take(s, h, ctx, ev);
		atomic_store_explicit(&s->quiet, 0, memory_order_release);
		pthread_mutex_unlock(&s->demand_lock);
		return s;
	}
	return NULL;
}

static struct mv_stream *add(CUstream h, int per_thread, CUcontext ctx)
{
	/* The ring, then `demand`. */
	CUevent ev[MV_RING + 1];
	struct mv_stream *s = NULL;
	unsigned i;

	/* The events are made before taking the lock: no lock is held across a driver call. */
	if (events_in(ctx, ev, MV_RING + 1) != CUDA_SUCCESS)
		return NULL;
	pthread_mutex_lock(&add_lock);
	if (!per_thread)
		s = find(h, ctx);
	if (s == NULL && !per_thread && (s = recycle(h, ctx, ev)) != NULL) {
		for (i = 0; i <= MV_RING; i++)
			ev[i] = NULL;
	} else if (s == NULL && atomic_load_explicit(&count, memory_order_relaxed) < MV_MAX_STREAMS) {
		s = &table[atomic_load_explicit(&count, memory_order_relaxed)];
		s->index = (unsigned)(s - table);
		s->per_thread = per_thread;
		pthread_mutex_init(&s->demand_lock, NULL);
		take(s, h, ctx, ev);
		atomic_store_explicit(&s->next_ticket, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&count, 1, memory_order_release);
		for (i = 0; i <= MV_RING; i++)
			ev[i] = NULL;
	}
	pthread_mutex_unlock(&add_lock);
	for (i = 0; i <= MV_RING; i++)
		if (ev[i] != NULL)
			mv_real.cuEventDestroy_v2(ev[i]);
	if (s == NULL)
		mv_log(MV_LOG_WARN, "more than %d streams: launches on the others synchronise", MV_MAX_STREAMS);
	return s;
}

/* A thread ends: each of its per-thread streams' entries may serve another thread once all the
 * stream ran is complete, which a mark of `demand` made now tells (later waits for its tickets use
 * their own marks, or that one). A stream that cannot be marked here (no context any more, say)
 * keeps its entry: nothing would tell when its work is done. */
static void own_stream_ended(void *arg)
{
	(void)arg;
	for (int i = 0; i < MV_OWN_STREAMS; i++) {
		struct mv_stream *s = own_streams[i];
		own_streams[i] = NULL;
		if (s == NULL || gone(s))
			continue;
		pthread_mutex_lock(&s->demand_lock);
		if (!atomic_load_explicit(&s->quiet, memory_order_relaxed) && record(s, s->demand) == CUDA_SUCCESS)
			atomic_store_explicit(&s->quiet, MV_QUIET_DEAD, memory_order_release);
		else
			mv_log(MV_LOG_DEBUG, "an ending thread's per-thread stream cannot be marked: its entry is kept");
		pthread_mutex_unlock(&s->demand_lock);
	}
	own_stream = NULL;
}

static void own_key_make(void)
{
	own_key_made = pthread_key_create(&own_key, own_stream_ended) == 0;
}

/* The calling thread's per-thread stream in ctx. */
static struct mv_stream *own_stream_in(CUcontext ctx)
{
	struct mv_stream *s;
	int i;

	for (i = 0; i < MV_OWN_STREAMS; i++) {
		if (own_streams[i] == NULL || own_streams[i]->ctx != ctx)
			continue;
		if (!gone(own_streams[i]))
			return own_stream = own_streams[i];
		/* An ended context's, whose handle a new context has: a new entry takes the slot. */
		own_streams[i] = NULL;
	}
	for (i = 0; i < MV_OWN_STREAMS && own_streams[i] != NULL; i++)
		;
	/* A thread that used more contexts than that: the driver's own default stream serves the
	 * rest, as a full table does. */
	if (i == MV_OWN_STREAMS)
		return NULL;
	pthread_once(&own_key_once, own_key_make);
	if ((s = reuse(CU_STREAM_PER_THREAD, 1, ctx)) == NULL)
		s = add(CU_STREAM_PER_THREAD, 1, ctx);
	if (s == NULL)
		return NULL;
	own_streams[i] = s;
	if (own_key_made)
		pthread_setspecific(own_key, own_streams);
	return own_stream = s;
}

struct mv_stream *mv_stream_get(CUstream h, int per_thread)
{
	struct mv_stream *s;
	CUcontext ctx = NULL;

	if (h == NULL)
		h = per_thread ? CU_STREAM_PER_THREAD : CU_STREAM_LEGACY;
	if (implicit(h)) {
		if (mv_real.cuCtxGetCurrent(&ctx) != CUDA_SUCCESS || ctx == NULL)
			return NULL;
		if (h == CU_STREAM_PER_THREAD)
			return own_stream != NULL && own_stream->ctx == ctx && !gone(own_stream) ? own_stream
												  : own_stream_in(ctx);
	} else if ((s = find(h, NULL)) != NULL) {
		return s;
	} else if (mv_real.cuStreamGetCtx(h, &ctx) != CUDA_SUCCESS) {
		/* Not a stream the driver knows: the call itself will fail. */
		ctx = NULL;
	}
	if ((s = find(h, ctx)) != NULL || (s = reuse(h, 0, ctx)) != NULL)
		return s;
	return add(h, 0, ctx);
}

struct mv_stream *mv_stream_at(unsigned index)
{
	return index < atomic_load_explicit(&count, memory_order_acquire) ? &table[index] : NULL;
}

uint64_t mv_stream_begin(struct mv_stream *s)
{
	atomic_fetch_add_explicit(&s->inflight, 1, memory_order_acq_rel);
	return atomic_fetch_add_explicit(&s->next_ticket, 1, memory_order_relaxed);
}

/* Launches are marked every MV_MARK_EVERY tickets, not each one: the event record is the largest
 * cost the library adds to a launch. A use whose mark has not come yet is covered by a mark made on
 * demand, which also covers everything enqueued since. The per-thread default stream is marked at
 * every ticket, since no other thread can record on it. */
#define MV_MARK_EVERY 16

static uint64_t every(const struct mv_stream *s)
{
	return s->per_thread ? 1 : MV_MARK_EVERY;
}

/* A mark for ticket t covers every ticket up to t only if their work is all enqueued: so it is made
 * only when no other submission on the stream is still on its way. */
void mv_stream_end(struct mv_stream *s, uint64_t t)
{
	unsigned slot;
	CUresult r;

	if (t % every(s) == 0 && atomic_load_explicit(&s->inflight, memory_order_acquire) == 1) {
		slot = (unsigned)(t / every(s) % MV_RING);
		/* Without the mark the slot's event still holds an older one (or none): once the
		 * stream has drained, that covers the ticket too. */
		uint64_t b = atomic_load_explicit(&s->born, memory_order_relaxed);
		r = record(s, s->ring[slot]);
		if (r != CUDA_SUCCESS && unmarked(s, r, 1)) {
			/* Unless it serves another stream by now. */
			pthread_mutex_lock(&s->demand_lock);
			if (atomic_load_explicit(&s->born, memory_order_relaxed) == b)
				retire(s);
			pthread_mutex_unlock(&s->demand_lock);
		}
		atomic_store_explicit(&s->slot_ticket[slot], t, memory_order_release);
		if (s->per_thread)
			atomic_store_explicit(&s->marked, t, memory_order_release);
	} else if (gone(s) || atomic_load_explicit(&s->ending, memory_order_seq_cst)) {
		/* Retired, or being retired, while this submission was on its way: its ticket counts as
		 * complete, so its work is waited for now, while its buffers are still busy. */
		in_ctx(s, sync_on, NULL);
	}
	atomic_fetch_sub_explicit(&s->inflight, 1, memory_order_acq_rel);
}

/* What covering may do besides reading the marks made: nothing, make a mark and, should the driver
 * refuse it, synchronise the stream instead, or make a mark without ever waiting for the device
 * (its caller holds mv_lock). */
enum { COVER_PEEK, COVER_WAIT, COVER_POLL };

/* An event that completes after ticket t of s: the first mark at or after t, or else a mark made now.
 * Marks a later ticket's slot may hold complete later still, which only makes a wait longer. NULL
 * when there is none yet; after a refused mark, NULL for COVER_POLL, and for COVER_WAIT the stream
 * has been synchronised (and the entry may be retired). */
static CUevent covering(struct mv_stream *s, uint64_t t, int make)
{
	CUevent e;

	uint64_t k = every(s), next = (t + k - 1) / k * k;
	unsigned slot = (unsigned)(next / k % MV_RING);

	if (atomic_load_explicit(&s->slot_ticket[slot], memory_order_acquire) >= next)
		return s->ring[slot];
	/* An ended thread's stream has its last mark in `demand`, which covers all it ran. */
	if (!make || (s->per_thread && !atomic_load_explicit(&s->quiet, memory_order_acquire)))
		return NULL;
	/* A use is only waited for once its submission has ended (its buffer is busy until then), or
	 * as a ticket still on its way whose work is not enqueued yet: a record now covers what is.
	 * A poll, whose caller holds mv_lock, does not wait for the lock: its holder may be
	 * synchronising the stream after a refused mark, which can take as long as the stream's
	 * work. The ticket then counts as not done yet. */
	if (make == COVER_POLL) {
		if (pthread_mutex_trylock(&s->demand_lock) != 0)
			return NULL;
	} else {
		pthread_mutex_lock(&s->demand_lock);
	}
	e = s->demand;
	/* A destroyed or capturing stream's was recorded when it became so, after all it ran before. */
	if (!atomic_load_explicit(&s->quiet, memory_order_relaxed)) {
		CUresult r = record(s, s->demand);
		if (r != CUDA_SUCCESS) {
			/* `demand` holds an older mark, which does not cover t. */
			if (unmarked(s, r, make == COVER_WAIT))
				retire(s);
			if (make == COVER_POLL)
				e = NULL;
		}
	}
	pthread_mutex_unlock(&s->demand_lock);
	return e;
}

/* A per-thread stream is marked at every ticket once its submission ends, so its latest mark
 * covers every use whose submission has ended; the ticket still on its way (possibly the
 * caller's own, waiting for room) is left out, as no other thread can mark it. Any other stream's
 * latest ticket is covered by a mark made on demand, which covers what is enqueued now. */
uint64_t mv_stream_latest(struct mv_stream *s)
{
	if (s->per_thread)
		return atomic_load_explicit(&s->marked, memory_order_acquire);
	return atomic_load_explicit(&s->next_ticket, memory_order_relaxed) - 1;
}

/* Makes the last mark on s that waits will use until it is live again (quiet: MV_QUIET_*). */
static void quiesce(struct mv_stream *s, int quiet)
{
	CUresult r = CUDA_SUCCESS;

	pthread_mutex_lock(&s->demand_lock);
	if (!atomic_load_explicit(&s->quiet, memory_order_relaxed))
		r = record(s, s->demand);
	/* No mark: every earlier record of `demand` completes with the synchronisation. */
	if (r != CUDA_SUCCESS && unmarked(s, r, 1))
		retire(s);
	else
		atomic_store_explicit(&s->quiet, quiet, memory_order_release);
	pthread_mutex_unlock(&s->demand_lock);
}

/* The mark is made before the driver destroys the stream: afterwards nothing can be recorded on
 * it, while its queued work still runs. */
void mv_stream_forget(CUstream h)
{
	struct mv_stream *s;

	if (h != NULL && h != CU_STREAM_LEGACY && h != CU_STREAM_PER_THREAD && (s = find(h, NULL)) != NULL)
		quiesce(s, MV_QUIET_DEAD);
}

static void captures_end(CUcontext ctx, uint64_t before);

void mv_stream_retire_ctx(CUcontext ctx, uint64_t before)
{
	unsigned n = atomic_load_explicit(&count, memory_order_acquire);

	for (unsigned i = 0; i < n; i++) {
		struct mv_stream *s = &table[i];
		if (gone(s) || s->ctx != ctx || atomic_load_explicit(&s->born, memory_order_relaxed) > before)
			continue;
		/* Work another thread enqueued on the handle since the end (a primary context retained
		 * again at once) would count as complete: it is waited for, and what ends meanwhile
		 * waits for itself. A dead context's stream answers at once. A destroyed or capturing
		 * stream is not asked (its handle may be freed, or the wait refused), nor a per-thread
		 * one, which only its thread can name and which marks each launch itself. */
		ending(s);
		if (!s->per_thread && atomic_load_explicit(&s->quiet, memory_order_acquire) == 0)
			in_ctx(s, sync_on, NULL);
		pthread_mutex_lock(&s->demand_lock);
		if (s->ctx == ctx && atomic_load_explicit(&s->born, memory_order_relaxed) <= before)
			retire(s);
		pthread_mutex_unlock(&s->demand_lock);
	}
	captures_end(ctx, before);
}

int mv_stream_wait_ticket(CUstream waiter, struct mv_stream *s, uint64_t t)
{
	CUevent e;

	if (gone(s))
		return 0;
	e = covering(s, t, COVER_WAIT);
	/* Retired as the mark was refused: the stream was synchronised instead. */
	if (gone(s))
		return 0;
	if (e == NULL)
		return -1;
	mv_real.cuStreamWaitEvent(waiter, e, 0);
	return 0;
}

void mv_stream_sync_ticket(struct mv_stream *s, uint64_t t)
{
	CUevent e;

	if (gone(s))
		return;
	/* A per-thread stream's use is marked right after its launch returns: wait for that. */
	while ((e = covering(s, t, COVER_WAIT)) == NULL && !gone(s))
		sched_yield();
	if (e != NULL && !gone(s))
		mv_real.cuEventSynchronize(e);
}

int mv_stream_ticket_done(struct mv_stream *s, uint64_t t)
{
	CUevent e;

	if (gone(s))
		return 1;
	e = covering(s, t, COVER_POLL);
	return gone(s) || (e != NULL && mv_real.cuEventQuery(e) == CUDA_SUCCESS);
}

/* ---- capture ---- */

#define MV_MAX_CAPTURES 64

/* Guarded by add_lock. The launch path reads them without it: an entry never moves, a free one has
 * a NULL handle, and a handle is published (release) after the fields it stands for; ncaptures
 * counts the live entries, hwm bounds the slots ever used. */
static struct {
	CUstream handle;
	struct mv_stream *own; /* for the per-thread stream: whose */
	CUcontext ctx;         /* the stream's: the capture ends with it */
	uint64_t since;        /* its moment */
	uintptr_t key;         /* a stream that joined a capture: that capture's key; else 0 */
} captures[MV_MAX_CAPTURES];
static _Atomic int ncaptures, hwm;

static CUstream capture_handle(int i)
{
	return __atomic_load_n(&captures[i].handle, __ATOMIC_ACQUIRE);
}

/* The calling thread's per-thread stream entry in the current context, if it has one yet. */
static struct mv_stream *own_now(void)
{
	CUcontext ctx = NULL;

	if (own_stream == NULL || mv_real.cuCtxGetCurrent(&ctx) != CUDA_SUCCESS)
		return NULL;
	if (own_stream->ctx == ctx && !gone(own_stream))
		return own_stream;
	for (int i = 0; i < MV_OWN_STREAMS; i++)
		if (own_streams[i] != NULL && own_streams[i]->ctx == ctx && !gone(own_streams[i]))
			return own_streams[i];
	return NULL;
}

static int capture_index(CUstream h, int per_thread)
{
	struct mv_stream *own = NULL;

	if (h == NULL)
		h = per_thread ? CU_STREAM_PER_THREAD : CU_STREAM_LEGACY;
	if (h == CU_STREAM_PER_THREAD)
		own = own_now();
	for (int i = 0; i < atomic_load_explicit(&hwm, memory_order_acquire); i++)
		if (capture_handle(i) == h && captures[i].own == own)
			return i;
	return -1;
}

/* A capture begun on h (key 0), or one h joined (key: that capture's). Returns -1 when the table
 * is full. */
static int capture_enter(CUstream h, int per_thread, uintptr_t key)
{
	/* The per-thread stream's entry names the capture: made here, outside the lock. The entry
	 * also tells the stream's context. */
	struct mv_stream *s = mv_stream_get(h, per_thread);
	CUcontext ctx = s != NULL ? s->ctx : NULL;
	int i, top;

	if (h == NULL)
		h = per_thread ? CU_STREAM_PER_THREAD : CU_STREAM_LEGACY;
	if (s == NULL && (implicit(h) ? mv_real.cuCtxGetCurrent(&ctx) : mv_real.cuStreamGetCtx(h, &ctx)) !=
			 CUDA_SUCCESS)
		ctx = NULL;
	pthread_mutex_lock(&add_lock);
	i = capture_index(h, per_thread);
	if (i >= 0) {
		/* An earlier capture's entry, ended where memvirt did not see it: this one's now. */
		captures[i].ctx = ctx;
		captures[i].since = mv_moment();
		captures[i].key = key;
	} else {
		top = atomic_load_explicit(&hwm, memory_order_relaxed);
		for (i = 0; i < top && captures[i].handle != NULL; i++)
			;
		if (i < MV_MAX_CAPTURES) {
			captures[i].own = h == CU_STREAM_PER_THREAD ? s : NULL;
			captures[i].ctx = ctx;
			captures[i].since = mv_moment();
			captures[i].key = key;
			__atomic_store_n(&captures[i].handle, h, __ATOMIC_RELEASE);
			if (i == top)
				atomic_store_explicit(&hwm, top + 1, memory_order_release);
			atomic_fetch_add_explicit(&ncaptures, 1, memory_order_release);
		} else {
			i = -1;
		}
	}
	pthread_mutex_unlock(&add_lock);
	return i < 0 ? -1 : 0;
}

static _Atomic int said_captures_full;

/* Says once, at warn, that a capture is not followed: its work on that stream is made resident and
 * marked as any other, which breaks the capture. */
static void captures_full(CUstream h)
{
	if (atomic_exchange(&said_captures_full, 1) == 0)
		mv_log(MV_LOG_WARN, "more than %d streams capture at once: the capture on stream %p is not "
				    "followed, and memvirt's marks and page-ins on it will break it",
		       MV_MAX_CAPTURES, (void *)h);
}

void mv_capture_begin(CUstream h, int per_thread)
{
	if (capture_enter(h, per_thread, 0) < 0)
		captures_full(h);
}

int mv_capture_join(CUstream h, int per_thread, uintptr_t key)
{
	if (capture_enter(h, per_thread, key) == 0)
		return 0;
	captures_full(h);
	return -1;
}

/* Every thread has its own per-thread stream: its entry own tells them apart. */
static uintptr_t key_of(CUstream h, const struct mv_stream *own)
{
	return (h == CU_STREAM_PER_THREAD ? (uintptr_t)own : (uintptr_t)h) | 1;
}

uintptr_t mv_capture_key(CUstream h, int per_thread)
{
	int i = capture_index(h, per_thread);
	uintptr_t key = i >= 0 ? captures[i].key : 0;

	if (key != 0)
		return key;
	if (h == NULL)
		h = per_thread ? CU_STREAM_PER_THREAD : CU_STREAM_LEGACY;
	return key_of(h, h == CU_STREAM_PER_THREAD ? own_now() : NULL);
}

/* An event recorded on a capturing stream would become part of the graph, and a copy stream
 * waiting on it would break the capture: the stream's work before the capture is marked first. A
 * per-thread stream needs no such mark, as each of its tickets is marked as it ends. */
int mv_capture_prepare(CUstream h, int per_thread)
{
	struct mv_stream *s = mv_stream_get(h, per_thread);

	/* The legacy stream cannot capture: the driver refuses, and its marks go on. */
	if (s == NULL || s->per_thread || s->handle == CU_STREAM_LEGACY ||
	    atomic_load_explicit(&s->quiet, memory_order_acquire))
		return 0;
	quiesce(s, MV_QUIET_CAPTURE);
	return 1;
}

void mv_capture_unprepare(CUstream h, int per_thread)
{
	struct mv_stream *s = per_thread || h == NULL || implicit(h) ? NULL : find(h, NULL);
	int capturing = MV_QUIET_CAPTURE;

	if (s != NULL) {
		pthread_mutex_lock(&s->demand_lock);
		atomic_compare_exchange_strong(&s->quiet, &capturing, 0);
		pthread_mutex_unlock(&s->demand_lock);
	}
}

/* Called with add_lock held. */
static void capture_drop(int i)
{
	int top = atomic_load_explicit(&hwm, memory_order_relaxed);

	__atomic_store_n(&captures[i].handle, NULL, __ATOMIC_RELEASE);
	atomic_fetch_sub_explicit(&ncaptures, 1, memory_order_release);
	while (top > 0 && captures[top - 1].handle == NULL)
		top--;
	atomic_store_explicit(&hwm, top, memory_order_release);
}

static void cevents_forget_locked(uintptr_t key);

/* The streams that joined the capture whose key is key leave it with it, and its events mark
 * nothing any more. Puts the explicit handles of those streams into joined[] (their marks to undo)
 * and returns how many. Called with add_lock held. */
static int capture_forks_drop_locked(uintptr_t key, CUstream *joined)
{
	int n = 0;

	for (int i = 0; i < atomic_load_explicit(&hwm, memory_order_relaxed); i++)
		if (captures[i].handle != NULL && captures[i].key == key) {
			if (captures[i].own == NULL)
				joined[n++] = captures[i].handle;
			capture_drop(i);
		}
	cevents_forget_locked(key);
	return n;
}

/* ---- fork and join ----
 *
 * An event recorded on a capturing stream marks a point of the capture, and a stream that waits on
 * it joins the capture: the driver records its work into the same graph until the capture ends on
 * the stream that began it. memvirt keeps the events recorded in captures it knows of, with the
 * capture's key, so that a stream that joins one is treated as capturing: what its work names joins
 * that capture's set, and nothing is made resident or marked on it while it records (a wait on a
 * page-in, or an event of memvirt's, would break the capture). Guarded by add_lock; the count is
 * read without it. */
#define MV_CAPTURED_EVENTS 256
static struct {
	CUevent e;
	uintptr_t key;
} cevents[MV_CAPTURED_EVENTS];
static unsigned cevents_next; /* where the next one goes when all are taken */
static _Atomic int ncevents;

/* Called with add_lock held. */
static void cevents_forget_locked(uintptr_t key)
{
	for (int i = 0; i < MV_CAPTURED_EVENTS; i++)
		if (cevents[i].e != NULL && cevents[i].key == key) {
			cevents[i].e = NULL;
			atomic_fetch_sub_explicit(&ncevents, 1, memory_order_release);
		}
}

/* Called with add_lock held. */
static int cevent_find(CUevent e)
{
	for (int i = 0; i < MV_CAPTURED_EVENTS; i++)
		if (cevents[i].e == e)
			return i;
	return -1;
}

void mv_capture_event_recorded(CUevent e, CUstream h, int per_thread)
{
	int capturing = mv_capturing(h, per_thread), i;
	uintptr_t key;

	if (!capturing && atomic_load_explicit(&ncevents, memory_order_acquire) == 0)
		return;
	key = capturing ? mv_capture_key(h, per_thread) : 0;
	pthread_mutex_lock(&add_lock);
	i = cevent_find(e);
	if (i >= 0 && !capturing) {
		/* Recorded outside a capture: it marks none any more. */
		cevents[i].e = NULL;
		atomic_fetch_sub_explicit(&ncevents, 1, memory_order_release);
	} else if (i < 0 && capturing) {
		i = cevent_find(NULL);
		if (i < 0) {
			i = (int)(cevents_next++ % MV_CAPTURED_EVENTS);
			mv_log(MV_LOG_DEBUG, "event %p of a capture forgotten: %d are kept", (void *)cevents[i].e,
			       MV_CAPTURED_EVENTS);
		} else {
			atomic_fetch_add_explicit(&ncevents, 1, memory_order_release);
		}
		cevents[i].e = e;
	}
	if (i >= 0 && capturing)
		cevents[i].key = key;
	pthread_mutex_unlock(&add_lock);
}

int mv_capture_event_key(CUevent e, uintptr_t *key)
{
	int i;

	if (atomic_load_explicit(&ncevents, memory_order_acquire) == 0)
		return 0;
	pthread_mutex_lock(&add_lock);
	i = cevent_find(e);
	if (i >= 0)
		*key = cevents[i].key;
	pthread_mutex_unlock(&add_lock);
	return i >= 0;
}

int mv_capture_end(CUstream h, int per_thread, uintptr_t *key)
{
	CUstream joined[MV_MAX_CAPTURES];
	int i, n = 0;

	pthread_mutex_lock(&add_lock);
	i = capture_index(h, per_thread);
	if (i >= 0 && captures[i].key != 0) {
		pthread_mutex_unlock(&add_lock);
		return 1;
	}
	*key = mv_capture_key(h, per_thread);
	if (i >= 0)
		capture_drop(i);
	n = capture_forks_drop_locked(*key, joined);
	pthread_mutex_unlock(&add_lock);
	mv_capture_unprepare(h, per_thread);
	for (i = 0; i < n; i++)
		mv_capture_unprepare(joined[i], 0);
	return 0;
}

/* The probes' bytes, freed once no capture runs: cuMemFree waits for the device, which a capture
 * may not see. Guarded by probe_lock, which is taken with no other lock held, and takes none. */
#define MV_PROBES 1024
static pthread_mutex_t probe_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	CUdeviceptr p;
	CUcontext ctx; /* current when it was made */
} probes[MV_PROBES];
static int nprobes;

static void probes_forget(CUcontext ctx);

/* The captures on explicit streams that no longer capture end: their context ended where memvirt
 * did not see it (another thread's, while one of memvirt's calls was on its way), and the handle
 * may name another stream by now, whose launches would otherwise count as captured and run with
 * their buffers left where they are. Asked of the driver, in the stream's context; a per-thread
 * stream's capture can be asked about only by its own thread, and is left (so is one memvirt has
 * no entry for, whose handle alone cannot tell whose it is). */
static void captures_prune(void)
{
	struct {
		CUstream handle;
		CUcontext ctx;
		uint64_t since;
	} c[MV_MAX_CAPTURES];
	uintptr_t keys[MV_MAX_CAPTURES];
	CUstream joined[MV_MAX_CAPTURES];
	int n = 0, nkeys = 0, nj = 0;

	pthread_mutex_lock(&add_lock);
	for (int i = 0; i < atomic_load_explicit(&hwm, memory_order_relaxed); i++)
		if (captures[i].handle != NULL && captures[i].own == NULL && !implicit(captures[i].handle)) {
			c[n].handle = captures[i].handle;
			c[n].ctx = captures[i].ctx;
			c[n++].since = captures[i].since;
		}
	pthread_mutex_unlock(&add_lock);
	for (int i = 0; i < n; i++) {
		CUstreamCaptureStatus st = CU_STREAM_CAPTURE_STATUS_ACTIVE;
		CUresult r = in_ctx_of(c[i].ctx, c[i].handle, capturing_on, &st);
		int ended = r != CUDA_SUCCESS && ended_answer(r);
		/* CUDA_ERROR_INVALID_HANDLE alone may be a stream destroyed in a live context. */
		int ctx_ended = r == CUDA_ERROR_INVALID_CONTEXT || r == CUDA_ERROR_CONTEXT_IS_DESTROYED;

		if (!ended && (r != CUDA_SUCCESS || st != CU_STREAM_CAPTURE_STATUS_NONE))
			continue;
		pthread_mutex_lock(&add_lock);
		for (int j = 0; j < atomic_load_explicit(&hwm, memory_order_relaxed); j++)
			if (captures[j].handle == c[i].handle && captures[j].own == NULL && captures[j].ctx == c[i].ctx &&
			    captures[j].since == c[i].since) {
				int origin = captures[j].key == 0;
				capture_drop(j);
				/* A stream that began its capture: the streams that joined it end with it. */
				if (origin) {
					keys[nkeys++] = key_of(c[i].handle, NULL);
					nj += capture_forks_drop_locked(keys[nkeys - 1], joined + nj);
				}
				break;
			}
		pthread_mutex_unlock(&add_lock);
		mv_capture_unprepare(c[i].handle, 0);
		mv_log(MV_LOG_DEBUG, "the capture on stream %p ended unseen (%s): memvirt ends it too", (void *)c[i].handle,
		       ctx_ended ? "its context ended" : ended ? "the stream is gone" : "the stream no longer captures");
		/* The probes made in an ended context went with it. */
		if (ctx_ended && c[i].ctx != NULL)
			probes_forget(c[i].ctx);
	}
	for (int i = 0; i < nj; i++)
		mv_capture_unprepare(joined[i], 0);
	for (int i = 0; i < nkeys; i++)
		mv_graph_capture_ended(keys[i]);
}

CUresult mv_capture_probe(void)
{
	CUdeviceptr p;
	CUcontext ctx = NULL;
	CUresult r;
	int kept = 0;

	if (atomic_load_explicit(&ncaptures, memory_order_acquire) == 0)
		return CUDA_SUCCESS;
	captures_prune();
	if (atomic_load_explicit(&ncaptures, memory_order_acquire) == 0) {
		mv_capture_probes_free();
		return CUDA_SUCCESS;
	}
	r = mv_real.cuMemAlloc_v2(&p, 1);
	if (r != CUDA_SUCCESS)
		return r == CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED || r == CUDA_ERROR_STREAM_CAPTURE_IMPLICIT ? r
													 : CUDA_SUCCESS;
	mv_real.cuCtxGetCurrent(&ctx);
	pthread_mutex_lock(&probe_lock);
	if (nprobes < MV_PROBES) {
		probes[nprobes].p = p;
		probes[nprobes++].ctx = ctx;
		kept = 1;
	}
	pthread_mutex_unlock(&probe_lock);
	if (!kept)
		mv_real.cuMemFree_v2(p); /* more probes in one capture than the table holds: rare */
	return CUDA_SUCCESS;
}

void mv_capture_probes_free(void)
{
	CUdeviceptr p[MV_PROBES];
	int n;

	if (atomic_load_explicit(&ncaptures, memory_order_acquire) != 0)
		return;
	pthread_mutex_lock(&probe_lock);
	n = nprobes;
	for (int i = 0; i < n; i++)
		p[i] = probes[i].p;
	nprobes = 0;
	pthread_mutex_unlock(&probe_lock);
	for (int i = 0; i < n; i++)
		mv_real.cuMemFree_v2(p[i]);
}

/* The probes made in ctx, which has ended: forgotten, not freed. Called with no lock held. */
static void probes_forget(CUcontext ctx)
{
	int kept = 0;

	pthread_mutex_lock(&probe_lock);
	for (int i = 0; i < nprobes; i++)
		if (probes[i].ctx != ctx)
			probes[kept++] = probes[i];
	nprobes = kept;
	pthread_mutex_unlock(&probe_lock);
}

/* The captures on ctx's streams, begun before `before`, ended with it: what they named is dropped,
 * and so are the probes made in it (its memory went with it, and the addresses may serve another
 * allocation now). */
static void captures_end(CUcontext ctx, uint64_t before)
{
	uintptr_t keys[MV_MAX_CAPTURES];
	CUstream joined[MV_MAX_CAPTURES];
	int n = 0, nj = 0;

	pthread_mutex_lock(&add_lock);
	for (int i = 0; i < atomic_load_explicit(&hwm, memory_order_relaxed); i++) {
		if (captures[i].handle == NULL || captures[i].ctx != ctx || captures[i].since > before)
			continue;
		if (captures[i].key == 0)
			keys[n++] = key_of(captures[i].handle, captures[i].own);
		capture_drop(i);
	}
	/* The streams, in other contexts too, that joined one of them end with it. */
	for (int i = 0; i < n; i++)
		nj += capture_forks_drop_locked(keys[i], joined + nj);
	pthread_mutex_unlock(&add_lock);
	for (int i = 0; i < nj; i++)
		mv_capture_unprepare(joined[i], 0);
	for (int i = 0; i < n; i++)
		mv_graph_capture_ended(keys[i]);
	probes_forget(ctx);
	mv_capture_probes_free();
}

int mv_capturing(CUstream h, int per_thread)
{
	if (atomic_load_explicit(&ncaptures, memory_order_acquire) == 0)
		return 0;
	return capture_index(h, per_thread) >= 0;
}

/* ---- destruction ---- */

/* The primary context of dev, while it is active; NULL otherwise. Retaining it and releasing it at
 * once leaves its count as it was. */
static CUcontext primary_of(CUdevice dev)
{
	unsigned flags = 0;
	int active = 0;
	CUcontext ctx = NULL;

	if (mv_real.cuDevicePrimaryCtxGetState(dev, &flags, &active) != CUDA_SUCCESS || !active ||
	    mv_real.cuDevicePrimaryCtxRetain(&ctx, dev) != CUDA_SUCCESS)
		return NULL;
	mv_real.cuDevicePrimaryCtxRelease_v2(dev);
	return ctx;
}

/* A context that has ended: its streams' entries go, and the paged one's end is said. */
static void ended(CUcontext ctx, uint64_t before, const char *how)
{
	uint64_t dev_bytes, host_bytes;

	if (ctx == NULL)
		return;
	mv_stream_retire_ctx(ctx, before);
	mv_layouts_ctx_ended(ctx, before);
	if (ctx != mv_dev()->ctx)
		return;
	mv_paged_ctx_ended();
	/* Its copy streams went with it. An app ending normally frees its buffers first. */
	dev_bytes = mv_count_get(MV_COUNTER_resident_bytes);
	host_bytes = mv_count_get(MV_COUNTER_host_bytes);
	mv_log(dev_bytes + host_bytes > 0 ? MV_LOG_WARN : MV_LOG_INFO,
	       "the context memvirt pages in was %s: memvirt pages no more in this process, and later allocations "
	       "go to the driver (it still held %llu bytes on the device and %llu on the host, which went with "
	       "the context)",
	       how, (unsigned long long)dev_bytes, (unsigned long long)host_bytes);
}

MV_EXPORT CUresult cuCtxDestroy_v2(CUcontext ctx)
{
	uint64_t before;
	CUresult r;

	if (mv_init() != 0)
		return CUDA_ERROR_NOT_INITIALIZED;
	before = mv_moment();
	r = mv_real.cuCtxDestroy_v2(ctx);
	if (r == CUDA_SUCCESS)
		ended(ctx, before, "destroyed");
	return r;
}

/* A reset, or a release (release set), of dev's primary context: the last release resets it too. */
static CUresult primary_end(CUdevice dev, CUresult (*real)(CUdevice), int release)
{
	unsigned flags = 0;
	int active = 0;
	CUcontext ctx;
	uint64_t before;
	CUresult r;

	if (mv_init() != 0)
		return CUDA_ERROR_NOT_INITIALIZED;
	ctx = primary_of(dev);
	before = mv_moment();
	r = real(dev);
	if (r != CUDA_SUCCESS)
		return r;
	/* A retain by another thread right after the last release leaves it active: its old entries
	 * are retired as their marks are refused. */
	if (!release)
		ended(ctx, before, "reset");
	else if (mv_real.cuDevicePrimaryCtxGetState(dev, &flags, &active) == CUDA_SUCCESS && !active)
		ended(ctx, before, "released for the last time");
	return r;
}

MV_EXPORT CUresult cuDevicePrimaryCtxReset(CUdevice dev)
{
	return primary_end(dev, mv_real.cuDevicePrimaryCtxReset, 0);
}

MV_EXPORT CUresult cuDevicePrimaryCtxReset_v2(CUdevice dev)
{
	return primary_end(dev, mv_real.cuDevicePrimaryCtxReset_v2, 0);
}

MV_EXPORT CUresult cuDevicePrimaryCtxRelease(CUdevice dev)
{
	return primary_end(dev, mv_real.cuDevicePrimaryCtxRelease, 1);
}

MV_EXPORT CUresult cuDevicePrimaryCtxRelease_v2(CUdevice dev)
{
	return primary_end(dev, mv_real.cuDevicePrimaryCtxRelease_v2, 1);
}

MV_EXPORT CUresult cuStreamDestroy_v2(CUstream h)
{
	if (mv_init() != 0)
		return CUDA_ERROR_NOT_INITIALIZED;
	mv_stream_forget(h);
	return mv_real.cuStreamDestroy_v2(h);
}
