/* libmemvirt.so internals: the real driver table, configuration, the buffer registry, residency,
 * streams and counters. */
#ifndef MV_INTERPOSE_INTERNAL_H
#define MV_INTERPOSE_INTERNAL_H

#include <cuda.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "interpose/memvirt.h"

#define MV_EXPORT __attribute__((visibility("default")))

/* ---- the real driver (real.c) ---- */

/* One pointer per hooked or used driver entry point, from the real libcuda.so.1. */
struct mv_real {
#define MV_HOOK(sym) __typeof__(sym) *sym;
#define MV_DRIVER(sym) __typeof__(sym) *sym;
#include "interpose/hooks.def"
#include "interpose/driver.def"
#undef MV_HOOK
#undef MV_DRIVER
};

extern struct mv_real mv_real;

/* Loads the real driver once; returns 0, or -1 when it could not be loaded (every hook then returns
 * CUDA_ERROR_NOT_INITIALIZED). Cheap after the first call. */
int mv_init(void);

/* A symbol of the real driver that is not an entry point memvirt uses (simcuda's extras), or NULL. */
void *mv_real_symbol(const char *name);

/* The hook for an exact versioned symbol, or NULL when it is not hooked (intercept.c). */
void *mv_hook_for(const char *symbol);

/* ---- configuration and logging (config.c) ---- */

enum mv_log_level { MV_LOG_DEBUG, MV_LOG_INFO, MV_LOG_WARN, MV_LOG_ERROR, MV_LOG_OFF };

struct mv_config {
	const char *budget_spec;  /* MEMVIRT_BUDGET as given, resolved against the device later */
	uint64_t slab_threshold;  /* MEMVIRT_SLAB_THRESHOLD: smaller allocations are never paged */
	uint64_t host_limit;      /* MEMVIRT_HOST_LIMIT: the pinned host pool's ceiling */
	int safety_net;           /* MEMVIRT_SAFETY_NET: map evicted ranges onto their host copy */
	enum mv_log_level log_level;
	int daemon;               /* MEMVIRT_DAEMON: link to memvirtd */
	uint32_t weight;          /* MEMVIRT_WEIGHT: this job's share, 0 for the daemon's default */
	char job[64];             /* MEMVIRT_JOB, or the program's name */
	/* Planning. Zero (negative for headroom) leaves a knob at the policy's default. */
	char policy[32];          /* MEMVIRT_POLICY: lru, vdnn-all, vdnn-conv, mmcnn or auto */
	const char *record;       /* MEMVIRT_RECORD: the trace file to write, or NULL */
	uint64_t page_min;        /* MEMVIRT_PAGE_MIN: the smallest buffer a plan pages */
	uint32_t lookahead;       /* MEMVIRT_LOOKAHEAD */
	double heavy_fraction;    /* MEMVIRT_HEAVY_FRACTION */
	double headroom;          /* MEMVIRT_HEADROOM */
	const char *marker;       /* MEMVIRT_ITERATION_MARKER: a kernel whose launches mark iterations */
	double h2d_gbps, d2h_gbps; /* MEMVIRT_H2D_GBPS, MEMVIRT_D2H_GBPS: instead of the measured ones */
};

extern struct mv_config mv_cfg;

/* Reads MEMVIRT_* once. A malformed value gets one log line and its default. */
void mv_config_load(void);

void mv_log(enum mv_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- the device and the budget (device.c) ---- */

struct mv_device {
	CUcontext ctx;
	CUdevice device;         /* the context's device */
	uint64_t total;          /* physical device memory */
	uint64_t granularity;    /* VMM granularity */
	int host_vmm;            /* host-located VMM allocations supported and wanted: the safety net */
	CUstream d2h, h2d;       /* memvirt's own copy streams */
};

extern struct mv_device mv_dev;

/* Sets up the device side on the first allocation (the app has initialised the driver by then).
 * Returns CUDA_SUCCESS or the error to hand back. */
CUresult mv_device_init(void);

/* ---- streams (stream.c) ---- */

#define MV_RING 32
#define MV_MAX_STREAMS 128

/* An app stream and the ring of events that mark its launches (every few tickets; see stream.c). A
 * slot's ticket is published only after its event has been recorded. */
struct mv_stream {
	CUstream handle;
	int per_thread;
	CUevent demand;               /* recorded on demand, to cover tickets not marked yet */
	pthread_mutex_t demand_lock;  /* serialises records of `demand` */
	CUevent ring[MV_RING];
	_Atomic uint64_t slot_ticket[MV_RING];
	_Atomic uint64_t next_ticket;
	_Atomic int inflight;         /* submissions between mv_stream_begin and mv_stream_end */
};

/* The state of an app stream as named by a call (NULL means the legacy or the per-thread stream).
 * NULL when the table is full or the ring cannot be made. */
struct mv_stream *mv_stream_get(CUstream h, int per_thread);
/* The handle to pass to the driver for it. */
CUstream mv_stream_handle(const struct mv_stream *s);
/* Takes the next ticket for a submission; mv_stream_end() follows once its work is enqueued (and
 * may record a mark). */
uint64_t mv_stream_begin(struct mv_stream *s);
void mv_stream_end(struct mv_stream *s, uint64_t ticket);
/* Makes `waiter` wait until ticket t of s has completed. Returns 0, or -1 when that cannot be
 * arranged yet (a per-thread stream's ticket not marked yet). */
int mv_stream_wait_ticket(CUstream waiter, struct mv_stream *s, uint64_t t);
/* Blocks until ticket t of s has completed. */
void mv_stream_sync_ticket(struct mv_stream *s, uint64_t t);
/* Nonzero when ticket t of s has completed. */
int mv_stream_ticket_done(struct mv_stream *s, uint64_t t);
struct mv_stream *mv_stream_at(unsigned index);
unsigned mv_stream_index(const struct mv_stream *s);

/* Streams currently capturing a graph. */
void mv_capture_begin(CUstream h, int per_thread);
void mv_capture_end(CUstream h, int per_thread);
int mv_capturing(CUstream h, int per_thread);

/* ---- buffers (registry.c) ---- */

enum mv_state { MV_RESIDENT, MV_EVICTING, MV_HOST, MV_FETCHING };
enum mv_kind { MV_KIND_LARGE, MV_KIND_SLAB };

#define MV_USES 4
#define MV_REFS 8

struct mv_use {
	uint16_t stream;
	uint64_t ticket;
};

struct mv_hostslot;

/* One allocation the app made through memvirt. Guarded by mv_lock except where noted. */
struct mv_buf {
	uint64_t va;             /* the app's address, stable for the buffer's life */
	uint64_t size;           /* what the app asked for */
	uint64_t span;           /* reserved and mapped bytes (granularity-rounded); 0 for slab blocks */
	enum mv_kind kind;
	enum mv_state state;
	int pinned;              /* never paged: named by a captured graph */
	int freed;               /* the app freed it; released once its last uses complete */
	int rescue;              /* a launch needs it while its page-out is in flight: keep the pages */
	int releasing;           /* its page-out has passed the point where a launch can keep the pages */
	_Atomic int busy;        /* submissions using it right now: not a victim */
	int skip;                /* its page-out just failed: not a victim again in this round */
	uint64_t lru;            /* the global use clock at its last use */
	uint64_t epoch;          /* the submission that last collected it, so it is collected once */
	CUmemGenericAllocationHandle dev; /* its device pages, while resident */
	struct mv_hostslot *host;         /* its host copy, while paged out or moving */
	CUevent moved;           /* records the end of its last page-out or page-in copy */
	int ready_pending;       /* a page-in may still be copying: users wait on `moved` */
	struct mv_use uses[MV_USES];
	int nuses;
	int uses_overflow;       /* more streams than uses[] holds: wait for every stream */
	uint64_t refs[MV_REFS];  /* device pointers uploaded into it: kept resident with it */
	int nrefs;
	struct mv_buf *next;     /* on the pager's or the free cache's list */
	/* Identity for the learner: a number unique in this process, and the allocation site. */
	uint32_t id;
	uint64_t site;
	uint32_t ibuf;           /* the plan's iteration buffer bound to it, MV_TRACE_NONE when none */
	int planned_in;          /* its page-in was a plan's: a launch finding it copying is late */
	int plan_waited;         /* a launch waited for its last page-in */
	int in_used;             /* a launch has used it since its planned page-in was issued */
	CUevent mstart;          /* recorded where its last page copy began (timing) */
	uint64_t moved_ns;       /* when that copy was issued, CLOCK_MONOTONIC */
};

/* The lock over the registry, every buffer's state, the budget and the pager's queues. Never held
 * across a driver call. */
extern pthread_mutex_t mv_lock;
/* Broadcast whenever a page-out completes, memory is released or a buffer changes state. */
extern pthread_cond_t mv_cond;

int mv_registry_add(struct mv_buf *b);
void mv_registry_remove(struct mv_buf *b);
/* The buffer whose [va, va+size) holds addr; NULL when none. O(log n). */
struct mv_buf *mv_registry_find(uint64_t addr);
/* The least recently used buffer that may be paged out now, or NULL; *later says whether one may
 * become a candidate soon (it is in use or just arriving). */
struct mv_buf *mv_registry_victim(int *later);
/* Clears every buffer's skip mark. */
void mv_registry_unskip(void);
/* Records a use of b on stream s with ticket t. */
void mv_buf_use(struct mv_buf *b, struct mv_stream *s, uint64_t t, uint64_t clock);
size_t mv_registry_count(void);
/* What holds the device, for the out-of-memory log line. Called with mv_lock held. */
void mv_registry_describe(char *buf, size_t len);

/* ---- residency (residency.c) ---- */

/* Resident device bytes (memvirt's buffers and slab chunks, and the app's own VMM allocations)
 * against the budget. Guarded by mv_lock. */
struct mv_budget {
	uint64_t budget;     /* in force: the daemon's grant while linked, else `local` */
	uint64_t local;      /* MEMVIRT_BUDGET, or the device's memory */
	uint64_t resident;   /* charged device bytes, including reservations in progress */
	uint64_t evicting;   /* bytes whose page-out is in flight */
};

extern struct mv_budget mv_budget;

/* Charges bytes against the budget, evicting least recently used buffers until they fit. Waits for
 * page-outs to complete. Called without mv_lock. Returns CUDA_SUCCESS or CUDA_ERROR_OUT_OF_MEMORY
 * when nothing more can be evicted. */
CUresult mv_make_room(uint64_t bytes);
/* Returns bytes to the budget. */
void mv_uncharge(uint64_t bytes);

/* A new reserved range of span bytes with device pages, charged against the budget (evicting to
 * make room); mv_free_range gives it all back. */
CUresult mv_new_range(uint64_t span, CUdeviceptr *va, CUmemGenericAllocationHandle *dev);
void mv_free_range(uint64_t va, uint64_t span, CUmemGenericAllocationHandle dev);
/* Device pages for [va, va+span): create, map, set access. */
CUresult mv_map_device(uint64_t va, uint64_t span, CUmemGenericAllocationHandle *out);
void mv_unmap_device(uint64_t va, uint64_t span, CUmemGenericAllocationHandle h);

/* Makes b resident for a use on stream s (handle h), and orders h after its page-in. Called
 * without mv_lock; b must not be freed meanwhile (the caller's use keeps it). */
CUresult mv_make_resident(struct mv_buf *b, CUstream h, int capturing);

/* Takes a freed large buffer (already out of the registry; called with mv_lock held): its pages
 * and host copy are released, or its pages cached for reuse, once its last uses complete. */
void mv_release_later(struct mv_buf *b);
/* Puts a freed resident buffer whose last uses have completed into the free cache. Called with
 * mv_lock held. */
void mv_cache_put(struct mv_buf *b);
/* A freed buffer of exactly this span whose pages can be reused now, or NULL. Called with mv_lock
 * held. */
struct mv_buf *mv_cache_take(uint64_t span);
/* Waits for every recorded use of b to complete. */
void mv_buf_wait_uses(struct mv_buf *b);
/* A buffer's recorded uses as they stood at one moment. */
struct mv_uses {
	struct mv_use use[MV_USES];
	int n;
	int overflow;
};
/* Copies b's recorded uses; called with mv_lock held, as every change to them is. */
void mv_buf_uses_copy(const struct mv_buf *b, struct mv_uses *out);
/* Makes the copy stream wait for every use in u. */
void mv_order_after_uses(CUstream waiter, const struct mv_uses *u);

/* Pages out least recently used buffers, and drops cached pages of freed ones, until the bytes
 * that will stay resident fit the budget or nothing more can go. Issues the page-outs without
 * waiting for them. Called without mv_lock, from the link thread only: never on an app's thread. */
void mv_evict_to_budget(void);
/* Sets the budget in force and evicts down to it when it shrank. Link thread only. */
void mv_budget_set(uint64_t budget);

/* Issues a page-out of b for a plan: only when it is resident, large, unpinned and idle. Called
 * without mv_lock. Returns 0 when issued. */
int mv_page_out_planned(struct mv_buf *b);
/* Issues a page-in of b for a plan when it is on the host and fits the budget now without evicting;
 * otherwise asks the pager to try again once the page-outs in flight have landed. Called without
 * mv_lock. Returns 0 when issued or queued. */
int mv_page_in_planned(struct mv_buf *b);

/* Starts the pager thread if it is not running. */
void mv_pager_start(void);
/* In a child after fork: the pager thread did not come along. */
void mv_residency_forked(void);

/* ---- allocation (alloc.c) ---- */

/* The global use clock: advanced by every launch, copy and memset. */
extern _Atomic uint64_t mv_clock;

/* ---- launches, copies and memsets (launch.c) ---- */

/* A device range an operation touches: the start of a buffer or any address inside one. */
struct mv_access {
	uint64_t addr;
	uint64_t bytes; /* 0: only the buffer holding addr */
};

/* The one routine every launch, copy and memset goes through: finds the buffers named, makes them
 * resident, orders the stream after their page-ins, runs submit(), and records the use. */
CUresult mv_submit(CUstream h, int per_thread, const uint64_t *words, size_t nwords,
		   CUresult (*submit)(void *arg), void *arg, uintptr_t fkey);
/* Keys of the operations that are not kernels, for mv_submit's fkey (a CUfunction otherwise). */
enum mv_fkey { MV_FK_HTOD = 1, MV_FK_DTOH, MV_FK_DTOD, MV_FK_COPY, MV_FK_MEMSET, MV_FK_LAST = MV_FK_MEMSET };
/* Busy marks held by every submission in flight, and by this thread's; threads waiting in
 * mv_make_room for busy buffers, whom a finished submission wakes. */
extern _Atomic uint64_t mv_busy_total;
extern __thread uint64_t mv_busy_mine;
extern _Atomic int mv_room_waiters;

/* ---- counters (counters.c) ---- */

/* The counters of protocol/counters.def that the library keeps itself (source atomic); those of
 * source budget are read from mv_budget. */
struct mv_counters_atomic {
#define MV_COUNTER(name, source, ...) MV_COUNTER_FIELD_##source(name)
#define MV_COUNTER_FIELD_atomic(name) _Atomic uint64_t name;
#define MV_COUNTER_FIELD_budget(name)
#include "protocol/counters.def"
#undef MV_COUNTER
#undef MV_COUNTER_FIELD_atomic
#undef MV_COUNTER_FIELD_budget
};

extern struct mv_counters_atomic mv_count;

/* The exported snapshot (memvirt.h), read by the link thread too. */
MV_EXPORT void memvirt_counters(struct memvirt_counters *out);

/* Times how long stream h waited for page-ins between two events recorded around the wait; the
 * pager adds it to the stall counter once both have completed. */
void mv_stall_measure(CUstream h, CUevent ready, int per_thread);

/* ---- the link to memvirtd (link.c) ---- */

/* Nonzero while a daemon session is up: only then do the app's threads push events. */
extern _Atomic int mv_link_up;

/* Queues one event for the daemon without waiting: when the ring is full it is dropped and
 * counted. No lock, no system call (the time comes from the vDSO). */
void mv_link_push(uint32_t kind, uint32_t stream, uint64_t addr, uint64_t size, uint64_t arg);

/* The app's side: one relaxed load when no daemon is linked. */
static inline void mv_link_event(uint32_t kind, uint32_t stream, uint64_t addr, uint64_t size, uint64_t arg)
{
	if (atomic_load_explicit(&mv_link_up, memory_order_relaxed))
		mv_link_push(kind, stream, addr, size, arg);
}

/* Starts the link thread once the device is known, unless MEMVIRT_DAEMON=off; cheap once started. */
void mv_link_start(void);
/* In a child after fork: no link thread, no connection; the next allocation starts them anew. */
void mv_link_forked(void);

/* ---- buffer identity (site.c) ---- */

/* The allocation site of the current call: a hash of the app's innermost frames above memvirt's
 * own. Cached per thread by return address and stack depth, so a repeated site costs a lookup. */
uint64_t mv_site_hash(void);

/* ---- the learner and the plan executor (learn.c, plan.c, record.c) ---- */

#define MV_LEARN_ON 0x1u      /* records go to the learner's queue */
#define MV_LEARN_TIME 0x2u    /* launches are bracketed with timing events */
#define MV_LEARN_PLAN 0x4u    /* a plan is installed: the executor follows launches */
#define MV_LEARN_NUMBER 0x8u  /* launches need their function number (the daemon's events) */
/* What the launch path must do beyond paging; one relaxed load when nothing. */
extern _Atomic unsigned mv_learn_flags;
/* Buffer numbers, in allocation order. */
extern _Atomic uint32_t mv_next_buf_id;

/* Starts the learner when MEMVIRT_POLICY or MEMVIRT_RECORD ask for it (after mv_device_init). */
void mv_learn_start(void);
/* The function number of a kernel (CUfunction) or an mv_fkey; MV_TRACE_NONE-like UINT32_MAX when
 * the table is full. *marker says whether it is MEMVIRT_ITERATION_MARKER's kernel. */
uint32_t mv_func_number(uintptr_t fkey, int *marker);
const char *mv_func_name(uint32_t fn);
/* App-thread records; never block: a full queue drops the record and stops planning until the
 * learner resynchronises. */
void mv_learn_alloc(const struct mv_buf *b, int pinned);
void mv_learn_free(uint32_t id);
void mv_learn_mark(void);
/* The timing events for one launch: 0 when none is free. */
uint32_t mv_learn_time_begin(CUstream h);
void mv_learn_time_end(uint32_t slot, CUstream h);
void mv_learn_launch(uint32_t fn, uint32_t stream, struct mv_buf *const *named, size_t n, uint32_t tslot);
/* A page copy the library did: called by the pager when it completed. */
void mv_learn_page(uint32_t id, int in, uint64_t bytes, uint64_t dur_ns, int waited);

/* The executor's per-launch step, under mv_lock: follows the iteration cursor, binds iteration
 * buffers, and hands back the plan's moves due after this launch (at most MV_PLAN_STEP_OPS; the
 * rest are dropped). */
#define MV_PLAN_STEP_OPS 16
struct mv_plan_step {
	int n;
	struct mv_buf *buf[MV_PLAN_STEP_OPS];
	uint8_t in[MV_PLAN_STEP_OPS];
};
void mv_plan_on_launch(uint32_t fn, struct mv_buf *const *named, size_t n, struct mv_plan_step *out);
/* Issues them, without mv_lock. */
void mv_plan_issue(struct mv_plan_step *st);
/* A buffer is being freed (mv_lock held): unbind it. */
void mv_plan_unbind(struct mv_buf *b);
/* A launch found b's planned page-in still copying (no lock held). */
void mv_plan_late(struct mv_buf *b);
/* A PLAN frame from memvirtd (link thread): payload of len bytes; NULL withdraws the daemon's plan
 * and goes back to the local one. Returns 0, or -1 when it does not fit the learned iteration. */
int mv_plan_from_daemon(const uint8_t *payload, size_t len);
struct mv_iter;
struct mv_plan;
/* The learner's plan p for iteration it; fnmap maps the iteration's nfn function numbers to live
 * ones. NULL withdraws it. Left alone while memvirtd's plan is in force. Returns 0 or -1. */
int mv_plan_install_local(const struct mv_iter *it, const struct mv_plan *p, const uint32_t *fnmap, uint32_t nfn);
/* Iterations the executor has followed to their end, and launches it spent off the plan. */
void mv_plan_progress(uint64_t *iterations, uint64_t *diverged);
/* Adds the late bytes per iteration buffer to late[] and clears them, when the plan in force has
 * that fingerprint and nbufs buffers; returns whether it had. */
int mv_plan_take_late(uint64_t fingerprint, uint64_t *late, uint32_t nbufs);
int mv_plan_daemon_active(void);

/* Recording (record.c), on the learner's thread only. */
int mv_record_open(const char *path, uint64_t device_total, uint32_t flags);
void mv_record_func(uint32_t fn, const char *name);
void mv_record_alloc(uint32_t id, uint32_t flags, uint64_t size, uint64_t site, uint64_t time_ns);
void mv_record_free(uint32_t id, uint64_t time_ns);
void mv_record_launch(uint32_t fn, uint32_t stream, uint64_t time_ns, uint64_t dur_ns, const uint32_t *ids,
		      uint32_t n);
void mv_record_sync(uint32_t stream, uint64_t time_ns);
void mv_record_mark(uint64_t time_ns);
void mv_record_page(uint32_t id, int in, uint64_t time_ns, uint64_t dur_ns, int waited);
/* Writes what is buffered; with end, the END record too, and closes the file. */
void mv_record_flush(int end);

#define MV_MIN(a, b) ((a) < (b) ? (a) : (b))
#define MV_MAX(a, b) ((a) > (b) ? (a) : (b))

#endif
