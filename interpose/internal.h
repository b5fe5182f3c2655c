/* libmemvirt.so internals: the locks, the real driver table, configuration, the device, streams,
 * the buffer registry, device pages, the host pool, residency, the pager, allocation, launches,
 * counters, the link, the learner and the plan executor. Each section names the file that owns
 * what it declares. */
#ifndef MV_INTERPOSE_INTERNAL_H
#define MV_INTERPOSE_INTERNAL_H

#include <cuda.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "interpose/memvirt.h"
#include "protocol/proto.h"

#define MV_EXPORT __attribute__((visibility("default")))

/* ---- locks ----
 *
 * mv_lock (registry.c; mv_lock()/mv_unlock()) guards:
 *   - the registry, and every field of every struct mv_buf except `busy` (atomic). A buffer out of
 *     the registry and on no list is its freeing thread's alone, one popped off a pager queue the
 *     pager's;
 *   - the budget's limit, resident and evicting bytes (residency.c; `local` is set once before the
 *     link starts and read without it);
 *   - the pager's state (pager.c): its queues (page-outs, page-ins, planned ones, releases, planned
 *     page-ins waiting for room), the releasing and landing counts, the stall measurements, and
 *     whether room is wanted, the host pool should grow, or the thread runs;
 *   - in alloc.c, the free cache, the slab classes' free and pending lists, and the table of the
 *     app's own VMM handles;
 *   - the plan executor (exec.c): the plan in force, its bindings to live buffers, its cursor and
 *     lateness counts, and the use clock when following began; the victim ranking reads them
 *     (mv_registry_victim's callers hold it);
 *   - the stream-ordered pools' usage figures (mempool.c).
 *   It is held for bookkeeping only: never across a driver call, with one exception (the slab's
 *   reuse check, and the victim check of a buffer used on a stream a memory wait may hold
 *   (mv_buf_held), may record and query a stream's mark event), and never while waiting for the
 *   device. Its condition (mv_wait_change, mv_wake_*) and the pager's (mv_lock_wait) let it go
 *   while they wait. A function called with it held that lets it go and takes it again ends in
 *   _relock, one that returns without it in _unlock; callers look again at what they read before.
 * pool_lock (hostpool.c): the host pool's chunk list, granule flags and byte counts, and its
 *   host grant. Let go while a chunk is made (pool_add_relock), and while a page-out waits on
 *   pool_cond for a larger grant (mv_host_alloc).
 * probe_lock (stream.c): the capture probes' bytes waiting to be freed.
 * gset_lock (graph.c): the buffers each graph, graph exec and capture names, and the graph each
 *   node added through memvirt is in.
 * add_lock (stream.c): adding to the stream table and the list of capturing streams; lookups read
 *   entries published by atomic counts.
 * each stream's demand_lock (stream.c): serialises records of its on-demand mark event, and guards
 *   `quiet`, so that nothing records on a stream destroyed or capturing.
 * layout_lock (launch.c): filling a slot of the parameter layout cache.
 * init_lock (device.c): the one-time device setup.
 * func_lock (learn.c): adding to the function number table.
 * end_lock (link.c): the link thread's `finished` flag at exit.
 * daemon_lock (exec.c): installing and withdrawing memvirtd's plans, and its plan kept until the
 *   iteration it is for is learned. Taken by the link thread and the planner, never by an app
 *   thread's launch.
 *
 * Order: init_lock before mv_lock (the setup sets the budget); daemon_lock before mv_lock (a plan
 * is installed under both); mv_lock before a stream's demand_lock (the slab's reuse check, mv_buf_held). Every
 * other lock is taken with none of these held, and takes none. The fork handlers (real.c) hold
 * daemon_lock and mv_lock across fork(), so that the child finds them free. */

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

/* The test seam, the only code that exists for the simulated driver alone: nonzero when the driver
 * is tests/simcuda keeping accounts without backing bytes (its model-only mode); 0 on a real one. */
int mv_seam_sim_model_only(void);

/* The hook for an exact versioned symbol, or NULL when it is not hooked (intercept.c). */
void *mv_hook_for(const char *symbol);

/* ---- configuration and logging (config.c) ---- */

enum mv_log_level { MV_LOG_DEBUG, MV_LOG_INFO, MV_LOG_WARN, MV_LOG_ERROR, MV_LOG_OFF };

struct mv_config {
	const char *budget_spec;  /* MEMVIRT_BUDGET as given, resolved against the device later */
	uint64_t slab_threshold;  /* MEMVIRT_SLAB_THRESHOLD: smaller allocations are never paged */
	uint64_t host_limit;      /* MEMVIRT_HOST_LIMIT: the pinned host pool's ceiling */
	uint32_t host_wait_ms;    /* MEMVIRT_HOST_WAIT: how long a page-out waits for memvirtd's host grant */
	int safety_net;           /* MEMVIRT_SAFETY_NET: map evicted ranges onto their host copy */
	enum mv_log_level log_level;
	int daemon;               /* MEMVIRT_DAEMON: link to memvirtd */
	uint32_t weight;          /* MEMVIRT_WEIGHT: this job's share, 0 for the daemon's default */
	char job[64];             /* MEMVIRT_JOB, or the program's name */
	uint32_t rank;            /* RANK, LOCAL_RANK, ...: the rank in the job, or MV_RANK_NONE */
	char group[64];           /* MEMVIRT_GROUP as HELLO carries it, all NUL for none */
	/* Planning. Zero (negative for headroom) leaves a knob at the policy's default. */
	char policy[32];          /* MEMVIRT_POLICY: lru, vdnn-all, vdnn-conv, mmcnn or auto */
	const char *record;       /* MEMVIRT_RECORD: the trace file to write (%p, %r), or NULL */
	uint64_t record_max;      /* MEMVIRT_RECORD_MAX: the trace's largest size, 0 for none */
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

/* ---- the device (device.c) ---- */

#define MV_MAX_ACCESS 64

struct mv_device {
	CUcontext ctx;
	CUdevice device;         /* the context's device */
	uint64_t total;          /* physical device memory */
	uint64_t granularity;    /* VMM granularity */
	int host_vmm;            /* host-located VMM allocations supported and wanted: the safety net */
	CUmemLocation host_loc;  /* where host-located allocations go: the GPU's nearest NUMA node
				  * (CU_MEM_LOCATION_TYPE_HOST_NUMA) where the driver takes one, else HOST */
	int host_numa;           /* the GPU's nearest host NUMA node, -1 when the host has none */
	CUstream d2h, h2d;       /* memvirt's own copy streams */
	/* The devices that get read-write access to every mapping memvirt makes: the paged device
	 * first, then each device that can reach its memory as a peer. A copy is carried out by its
	 * context's device, which needs access to both sides, so a buffer memvirt made is as reachable
	 * from another device's context as the driver's cuMemAlloc memory would be. */
	CUmemAccessDesc access[MV_MAX_ACCESS];
	int naccess;
};

/* The device as mv_device_init() set it up; meaningful once that has succeeded. */
const struct mv_device *mv_dev(void) __attribute__((const));

/* Makes ctx current where another context is, for work that must be done in ctx (an event is
 * recorded only on a stream of its own context). Returns 1 when it switched, *prev then holding the
 * context mv_ctx_leave gives back; 0 when ctx is NULL or current, or the current one cannot be
 * read; -1 when the switch failed. */
int mv_ctx_enter(CUcontext ctx, CUcontext *prev);
void mv_ctx_leave(int entered, CUcontext prev);

/* Gives the devices of mv_dev()->access read-write access to [va, va+span), and the host too
 * where host is set (a host-located allocation); failing that, the paged device alone (and the
 * host). */
CUresult mv_grant(CUdeviceptr va, uint64_t span, int host);
/* Fills d (room for max) with read-write access for owner, then every device the driver says can
 * reach owner's memory as a peer. Returns how many. */
int mv_access_for(CUdevice owner, CUmemAccessDesc *d, int max);
/* Whether loc is a device memvirt's mappings are granted to (mv_grant's list; the paged device
 * alone once the driver has refused a peer). */
int mv_granted(const CUmemLocation *loc);

/* Sets up the device side on the first allocation (the app has initialised the driver by then).
 * Returns CUDA_SUCCESS, MV_NOT_THIS_DEVICE, or the error to hand back. */
CUresult mv_device_init(void);
/* mv_device_init's answer, before any device is paged, in a context of a device that
 * MEMVIRT_BUDGET sets no budget for while it names another: memvirt leaves this device to the
 * driver, as mv_not_paged does once one is paged. Never handed to the app. */
#define MV_NOT_THIS_DEVICE CUDA_ERROR_NOT_READY
/* mv_device_init on the current context's device whatever the budget names: opening another
 * process's buffer (an IPC handle) needs memvirt's state, and pages that device under no budget of
 * its own. */
CUresult mv_device_init_any(void);

/* Whether allocations made now are the driver's: the calling thread's current context is on a
 * device other than the one memvirt pages (the first allocation's), or the paged context has
 * ended. Then the allocation entry points hand the call to the driver unchanged, and cuMemGetInfo
 * is the driver's answer. Says so once per other device in the log. Only after mv_device_init has
 * succeeded. */
int mv_not_paged(void);
/* The paged context has ended (destroyed, reset or released for the last time): its copy streams
 * and events went with it, so memvirt serves no allocation from then on. */
void mv_paged_ctx_ended(void);
/* Whether it has. */
int mv_paged_ctx_gone(void);

/* ---- streams (stream.c) ---- */

#define MV_RING 32
#define MV_MAX_STREAMS 128

/* A stream nothing more may be recorded on: destroyed by the app, capturing a graph, or gone with
 * its context (whose end destroyed its events and finished all its work). */
enum { MV_QUIET_DEAD = 1, MV_QUIET_CAPTURE, MV_QUIET_GONE };

/* An app stream and the ring of events that mark its launches (every few tickets; see stream.c). A
 * slot's ticket is published only after its event has been recorded. */
struct mv_stream {
	CUstream handle;
	CUcontext ctx;                /* the handle's context, whose events are the only ones it records */
	int per_thread;
	CUevent demand;               /* recorded on demand, to cover tickets not marked yet */
	pthread_mutex_t demand_lock;  /* serialises records of `demand` */
	CUevent ring[MV_RING];
	_Atomic uint64_t slot_ticket[MV_RING];
	_Atomic uint64_t next_ticket;
	_Atomic int inflight;         /* submissions between mv_stream_begin and mv_stream_end */
	_Atomic uint64_t marked;      /* the per-thread stream's latest ticket marked */
	_Atomic int quiet;            /* MV_QUIET_* (set under demand_lock): `demand` was its last mark */
	_Atomic uint64_t born;        /* when it took its handle, for mv_stream_retire_ctx */
	_Atomic int ending;           /* its context ended: a submission ending now waits for its work */
	unsigned index;               /* its place in the table, fixed */
};

/* The state of an app stream as named by a call (NULL means the legacy or the per-thread stream).
 * NULL when the table is full or the ring cannot be made. */
struct mv_stream *mv_stream_get(CUstream h, int per_thread);
/* Takes the next ticket for a submission; mv_stream_end() follows once its work is enqueued (and
 * may record a mark). */
uint64_t mv_stream_begin(struct mv_stream *s);
void mv_stream_end(struct mv_stream *s, uint64_t ticket);
/* Makes `waiter` wait until ticket t of s has completed. Returns 0, or -1 when that cannot be
 * arranged yet (a per-thread stream's ticket not marked yet). */
int mv_stream_wait_ticket(CUstream waiter, struct mv_stream *s, uint64_t t);
/* The latest ticket of s whose work is enqueued and can be waited for without waiting for a
 * submission still on its way (the caller's own included); 0 when none. */
uint64_t mv_stream_latest(struct mv_stream *s);
/* The app destroys stream h: marks the end of its work and forgets it, so that later waits use
 * that mark and a new stream with the same handle starts afresh. */
void mv_stream_forget(CUstream h);
/* A new moment, later than every one before: stream entries taking a handle, captures beginning
 * and parameter layouts being added each have one, and so does a context's end, taken before the
 * driver ends it. */
uint64_t mv_moment(void);
/* Context ctx has ended (destroyed, reset, or a primary context released for the last time): the
 * entries of its streams are retired for good, every ticket on them counts as complete, the
 * handle value starts afresh should a new context get it, and the captures on its streams end.
 * Only entries that took their handle before `before` (the end's mv_moment) are retired: a later
 * one may serve the context retained again since. */
void mv_stream_retire_ctx(CUcontext ctx, uint64_t before);
/* Context ctx has ended, and the modules loaded in it with it: the parameter layouts of their
 * functions, added before `before` (the end's mv_moment), are forgotten (launch.c), as their
 * handles may name other functions later. */
void mv_layouts_ctx_ended(CUcontext ctx, uint64_t before);
/* Blocks until ticket t of s has completed. */
void mv_stream_sync_ticket(struct mv_stream *s, uint64_t t);
/* Nonzero when ticket t of s has completed. */
int mv_stream_ticket_done(struct mv_stream *s, uint64_t t);
struct mv_stream *mv_stream_at(unsigned index);
/* Read on every launch, once for each buffer it names. */
static inline unsigned mv_stream_index(const struct mv_stream *s)
{
	return s->index;
}

/* Streams currently capturing a graph. mv_capture_prepare comes before the driver begins the
 * capture (returns 1 when it marked the stream; mv_capture_unprepare undoes that should the
 * driver refuse), mv_capture_begin once it has begun. */
int mv_capture_prepare(CUstream h, int per_thread);
void mv_capture_unprepare(CUstream h, int per_thread);
void mv_capture_begin(CUstream h, int per_thread);
/* Before the driver ends a capture on h: returns 1, doing nothing, when h only joined a capture
 * (the driver refuses to end it there); else ends h's capture and those of the streams that joined
 * it, sets *key to the capture's key (mv_capture_key), and returns 0. */
int mv_capture_end(CUstream h, int per_thread, uintptr_t *key);
/* Fork and join: an event recorded on h, which while h captures marks a point of the capture
 * (mv_capture_event_recorded); whether e marks one, and its capture's key; a stream that waited
 * on such an event (the driver accepted the wait) joins that capture (mv_capture_join). */
void mv_capture_event_recorded(CUevent e, CUstream h, int per_thread);
int mv_capture_event_key(CUevent e, uintptr_t *key);
/* Returns 0, or -1 (said in the log) when memvirt cannot follow one more capturing stream. */
int mv_capture_join(CUstream h, int per_thread, uintptr_t key);
/* The key under which graph.c keeps what a capture on h names while it runs: odd, so no graph or
 * exec handle is one. */
uintptr_t mv_capture_key(CUstream h, int per_thread);
/* A submission on a capturing stream: graph.c adds the buffers the words name to the capture's
 * set, and nothing is made resident (nothing runs until the graph is launched). */
void mv_graph_capture_add(CUstream h, int per_thread, const uint64_t *words, size_t n);
/* A capture that will never end (its stream's context ended): what it named is dropped. */
void mv_graph_capture_ended(uintptr_t key);
/* Frees va when it is a graph allocation a launch left charged (cuMemFree when sync, else
 * cuMemFreeAsync on h) and gives its bytes back; CUDA_ERROR_NOT_FOUND when it is none. */
CUresult mv_graph_mem_free(CUdeviceptr va, CUstream h, int per_thread, int sync);
int mv_capturing(CUstream h, int per_thread);
/* The capture-mode rules forbid cuMemAlloc and cuMemFree on some threads while a capture runs
 * (cuThreadExchangeStreamCaptureMode), and a forbidden call invalidates the capture. memvirt serves
 * both without the driver, so while a capture it knows of runs, the driver decides: one byte
 * allocated and freed, which it refuses (invalidating the captures that forbid it) exactly when it
 * would refuse the app's call. Returns CUDA_SUCCESS or the driver's refusal. */
CUresult mv_capture_probe(void);
/* Frees the probes' bytes once no capture runs (after a capture's real end). */
void mv_capture_probes_free(void);

/* ---- buffers (registry.c) ---- */

enum mv_state { MV_RESIDENT, MV_EVICTING, MV_HOST, MV_FETCHING };
enum mv_kind { MV_KIND_LARGE, MV_KIND_SLAB };

#define MV_USES 4
#define MV_REFS 8

struct mv_use {
	uint16_t stream;
	uint64_t ticket;
};

/* A buffer's place in the pinned host pool (hostpool.c). */
struct mv_hostslot;

/* One allocation the app made through memvirt. Guarded by mv_lock except where noted (see "locks"
 * above). */
struct mv_buf {
	uint64_t va;             /* the app's address, stable for the buffer's life */
	uint64_t size;           /* what the app asked for */
	uint64_t span;           /* reserved and mapped bytes (granularity-rounded); 0 for slab blocks */
	enum mv_kind kind;
	enum mv_state state;
	int pinned;              /* never paged while nonzero: pins held (mv_buf_pin), each for a graph
				  * node, a binding or an export, or for good */
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
	int mempool;             /* its stream-ordered pool's slot in mempool.c, 0 when none */
	/* Partial residency. netted: while on the host, its range is mapped onto its host copy (the
	 * safety net), written by whoever maps or unmaps it before the state says HOST again (or after
	 * it says otherwise). host_runs: submissions on their way that use it there; no page-in claims
	 * it meanwhile. host_used: work has used it there since its page-out, so its page-in waits for
	 * its uses first. */
	int netted;
	int host_runs;
	int host_used;
};

/* The stream-ordered pools' usage (mempool.c), with mv_lock held: b, just served from pool, counts
 * as in use from it; b, freed, no longer does. */
void mv_mempool_charge(struct mv_buf *b, CUmemoryPool pool);
void mv_mempool_uncharge(struct mv_buf *b);

/* Lists of buffers through `next` (the pager's queues, the free cache): appends b; takes the
 * first, or NULL. */
static inline void mv_list_push(struct mv_buf **q, struct mv_buf *b)
{
	b->next = NULL;
	while (*q != NULL)
		q = &(*q)->next;
	*q = b;
}

static inline struct mv_buf *mv_list_pop(struct mv_buf **q)
{
	struct mv_buf *b = *q;

	if (b != NULL)
		*q = b->next;
	return b;
}

/* The library lock, mv_lock: what it guards is listed under "locks" above. */
void mv_lock(void);
void mv_unlock(void);
/* Waits on c, a condition signalled under mv_lock, letting mv_lock go meanwhile; gives up at
 * `until` (CLOCK_REALTIME) unless it is NULL. */
void mv_lock_wait(pthread_cond_t *c, const struct timespec *until);
/* The CLOCK_REALTIME time ms milliseconds from now, for the timed waits. */
void mv_deadline_ms(struct timespec *until, long ms);
/* Waits, with mv_lock held and let go meanwhile, for room in the budget or for a buffer's move to
 * end: the threads in mv_make_room and mv_make_resident. _until gives up at `until` (CLOCK_REALTIME). */
void mv_wait_change(void);
void mv_wait_change_until(const struct timespec *until);
/* Wakes those waiters, with mv_lock held, naming the reason:
 * room:   device bytes or host slots were given back, the budget changed, or a freed buffer's pages
 *         became available to drop;
 * moved:  a buffer's page-out or page-in was issued, ended or undone, so its state changed;
 * unbusy: a submission let its busy marks go while a thread waited for them. */
void mv_wake_room(void);
void mv_wake_moved(void);
void mv_wake_unbusy(void);

int mv_registry_add(struct mv_buf *b);
void mv_registry_remove(struct mv_buf *b);
/* The buffer whose [va, va+size) holds addr; NULL when none. O(log n). */
struct mv_buf *mv_registry_find(uint64_t addr);
/* The buffer to page out now to make room for need more bytes, or NULL: while the plan's iteration
 * is followed, the best by next use (mv_exec_victim_key), else the least recently used. *later says
 * whether one may become a candidate soon: MV_LATER_BUSY when one is in use or just arriving,
 * MV_LATER_HELD when one is used on a stream a memory wait may hold (mv_buf_held). */
#define MV_LATER_BUSY 1
#define MV_LATER_HELD 2
struct mv_buf *mv_registry_victim(uint64_t need, int *later);
/* Writes the address of every pageable buffer to vas (at most max), those not resident first, and
 * returns how many: what a launch whose parameters cannot be scanned names. Takes mv_lock. */
size_t mv_registry_large(uint64_t *vas, size_t max);
/* Clears every buffer's skip mark. */
void mv_registry_unskip(void);
/* Records a use of b on stream s with ticket t. */
void mv_buf_use(struct mv_buf *b, struct mv_stream *s, uint64_t t, uint64_t clock);
/* Takes and drops one pin of b. A count that reached INT_MAX stays: the buffer is pinned for good.
 * Called with mv_lock held. */
void mv_buf_pin(struct mv_buf *b);
void mv_buf_unpin(struct mv_buf *b);
/* What holds the device, for the out-of-memory log line. Returns the bytes of idle, unpinned
 * resident buffers, which only a failed page-out keeps from being victims. Called with mv_lock
 * held. */
uint64_t mv_registry_describe(char *buf, size_t len);

/* Waits for every recorded use of b to complete. */
void mv_buf_wait_uses(struct mv_buf *b);
/* A stream memory wait is about to be submitted on s; mv_gate_end() follows once it has been
 * (whatever the outcome). Until its work has completed, buffers used on s are no victims. */
void mv_gate_begin(struct mv_stream *s);
void mv_gate_end(struct mv_stream *s);
/* Whether b has a use, not known complete, on a stream that a memory wait may hold: its page-out
 * could wait for a write the app has not submitted yet. Called with mv_lock held. */
int mv_buf_held(const struct mv_buf *b);
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
/* Waits on the host for every use in u to complete. Called without mv_lock. */
void mv_uses_sync(const struct mv_uses *u);

/* ---- device ranges and pages (vmm.c) ---- */

/* A new reserved range of span bytes with device pages, charged against the budget (evicting to
 * make room); mv_free_range gives it all back. may_host: where no room can be made, return
 * MV_ROOM_ON_HOST (mv_make_room_or_host) with nothing reserved. */
CUresult mv_new_range(uint64_t span, CUdeviceptr *va, CUmemGenericAllocationHandle *dev, int may_host);
/* A new reserved range for b (span set) whose pages are a host slot mapped there by the safety
 * net: b starts on the host, charged nothing on the device. Returns CUDA_SUCCESS or
 * CUDA_ERROR_OUT_OF_MEMORY (no host memory, or no mapping), with nothing kept. */
CUresult mv_new_host_range(struct mv_buf *b);
void mv_free_range(uint64_t va, uint64_t span, CUmemGenericAllocationHandle dev);
/* Device pages for [va, va+span): create, map, set access. */
CUresult mv_map_device(uint64_t va, uint64_t span, CUmemGenericAllocationHandle *out);
void mv_unmap_device(uint64_t va, uint64_t span, CUmemGenericAllocationHandle h);

/* ---- the pinned host pool (hostpool.c) ---- */

/* A host slot of span bytes; grows the pool by a chunk when none fits, up to MEMVIRT_HOST_LIMIT
 * and the host grant. At the grant it waits a bounded time for a larger one (once per grant; never
 * on the link thread), and before it first grows, for the link's first session's word (once).
 * NULL when the pool is full. Called without mv_lock. */
struct mv_hostslot *mv_host_alloc(uint64_t span);
void mv_host_free(struct mv_hostslot *s);
/* Where the slot's bytes are, for a copy. */
void *mv_host_ptr(const struct mv_hostslot *s);
/* Whether the pool has less than half a chunk free and room to grow. */
int mv_host_pool_low(void);
/* The pager's side: one more chunk, made before anyone waits for it. */
void mv_host_pool_grow(void);
/* The link thread's: memvirtd's share of the node's host limit (MV_HOST_GRANT_NONE: none). A grant
 * below the pool's size stops its growth; nothing in it is let go. */
void mv_host_grant_set(uint64_t grant);
/* The link thread's: its first session is welcomed or failed (mv_link_greeting is 0 now); a
 * page-out waiting for its word goes on. */
void mv_host_grant_heard(void);
/* The safety net: maps a paged-out buffer's range onto its host copy, so that an access the scan
 * missed reads host memory instead of faulting, and takes that mapping away again. No-ops where
 * the device cannot map host memory. */
void mv_net_map(struct mv_buf *b);
void mv_net_unmap(struct mv_buf *b);

/* ---- residency (residency.c) ---- */

/* The budget: device bytes this process may hold, against the bytes it holds (memvirt's buffers and
 * slab chunks, and the app's own VMM allocations).
 * mv_budget_init sets the local budget (MEMVIRT_BUDGET, or the device's memory) and puts it in force;
 * once, from mv_device_init, before the link starts. */
void mv_budget_init(uint64_t local);
/* The local budget: the one in force while no daemon grants another. */
uint64_t mv_budget_local(void);
/* The budget in force and the bytes charged against it, read together under mv_lock; either
 * pointer may be NULL. */
void mv_budget_read(uint64_t *limit, uint64_t *resident);
/* The budget in force. */
uint64_t mv_budget_now(void);
/* Sets the budget in force and evicts down to it when it shrank. Link thread only. */
void mv_budget_set(uint64_t limit);
/* For the pager, with mv_lock held. mv_budget_evicted: a page-out of span bytes has ended, and
 * released says whether its pages went (otherwise it was rescued or undone, and they stay);
 * mv_budget_evicting: the bytes whose page-out is in flight; mv_budget_over: whether more is
 * charged than the budget allows (a grant shrank it). */
void mv_budget_evicted(uint64_t span, int released);
uint64_t mv_budget_evicting(void);
int mv_budget_over(void);

/* Charges bytes against the budget, evicting least recently used buffers until they fit. Waits for
 * page-outs to complete. Called without mv_lock. Returns CUDA_SUCCESS or CUDA_ERROR_OUT_OF_MEMORY
 * when nothing more can be evicted. */
CUresult mv_make_room(uint64_t bytes);
/* The same for a new buffer that can start in host memory: where no room can be made and the
 * safety net maps host memory, returns MV_ROOM_ON_HOST, charging and logging nothing. */
CUresult mv_make_room_or_host(uint64_t bytes);
/* Whether the nth refusal of memory is logged at the default level: the 1st, 10th, 100th, ..., so
 * that a job retrying a thousand times gets four lines, each with the count. */
int mv_refusal_shown(uint64_t n);
/* make_room's answer where its caller can do without the room: the buffer stays (or starts) in host
 * memory, reached over the link. Never a driver's answer to the app. */
#define MV_ROOM_ON_HOST CUDA_ERROR_NOT_MAPPED
/* Returns bytes to the budget. */
void mv_uncharge(uint64_t bytes);
/* Pages out least recently used buffers, and drops cached pages of freed ones, until the bytes
 * that will stay resident fit the budget or nothing more can go. Issues the page-outs without
 * waiting for them. Called without mv_lock, from the link thread only: never on an app's thread. */
void mv_evict_to_budget(void);

/* Makes b resident for a use on stream s (handle h), and orders h after its page-in. Called
 * without mv_lock; b must not be freed meanwhile (the caller's use keeps it). Where on_host is not
 * NULL the caller can run with b in host memory, reached over the link through the safety net's
 * mapping (partial residency): when no room can be made for b and that mapping is there, *on_host
 * is set and CUDA_SUCCESS returned with b left on the host; the caller then takes it with
 * mv_host_runs_take before its work goes to the driver. */
CUresult mv_make_resident(struct mv_buf *b, CUstream h, int capturing, int *on_host);
/* For work about to go to the driver using named[i] in host memory wherever on_host[i] is set:
 * holds each there (no page-in moves its pages until mv_host_runs_drop) and marks it so that its
 * page-in first waits for that work. All or none: returns -1, taking nothing, when one of them has
 * left the host (or its mapping) meanwhile, 0 otherwise. */
int mv_host_runs_take(struct mv_buf *const *named, const unsigned char *on_host, size_t n);
/* The work is with the driver (its uses recorded), or was refused: lets them be paged in again.
 * Work the driver took (ran) is counted, and the first such run said in the log. */
void mv_host_runs_drop(struct mv_buf *const *named, const unsigned char *on_host, size_t n, int ran);

/* Issues a page-out of b for a plan: only when it is resident, large, unpinned and idle. Called
 * without mv_lock. Returns 0 when issued. */
int mv_page_out_planned(struct mv_buf *b);
/* Issues a page-in of b for a plan when it is on the host and fits the budget now without evicting;
 * otherwise asks the pager to try again once the page-outs in flight have landed. Called without
 * mv_lock. Returns 0 when issued or queued. */
int mv_page_in_planned(struct mv_buf *b);
/* The same without the queueing, for the pager: called with mv_lock held; lets it go while cached
 * pages are dropped or the copy is issued, and holds it again on return. Returns 0 when issued, 1
 * when there is no room yet, -1 when b is not on the host (any more) or the page-in failed. */
int mv_page_in_planned_relock(struct mv_buf *b);

/* ---- the pager (pager.c) ---- */

/* Issues the page-out of b, already marked EVICTING by the caller, after the uses the caller
 * copied when it did so. Uses recorded since then belong to submissions that wait for b's page-in,
 * so the copy must not wait for them (it would wait forever), and reading b->uses here, without
 * the lock, would race with their recording. planned: a plan's page-out, which the pager completes
 * only when its room is wanted. Called without mv_lock. Returns 0, or -1 when it could not be
 * issued (no host memory, a failed copy); b is then RESIDENT again. */
int mv_page_out(struct mv_buf *b, int planned, const struct mv_uses *uses);
/* Why the last page-out that could not be issued failed: CUDA_ERROR_OUT_OF_MEMORY when the host
 * pool had no room, else the driver's error; CUDA_SUCCESS when none has failed. */
CUresult mv_page_out_failure(void);

/* From here to mv_pager_landing, called with mv_lock held. */
/* Wakes the pager, starting its thread if it is not running. */
void mv_pager_kick(void);
/* Waits for room or for a move to end (mv_wait_change, letting mv_lock go meanwhile), telling the
 * pager that completing moves, planned ones included, is wanted now. until: as for
 * mv_wait_change_until, or NULL for no limit. */
void mv_pager_wait(const struct timespec *until);
/* A launch took back a buffer whose planned page-out is in flight: complete the planned ones now. */
void mv_pager_flush_lazy(void);
/* Hands over a page-in just issued, to be completed once its copy has landed: lazily when it is a
 * plan's (b->planned_in), until a launch uses the buffer or its room is wanted. */
void mv_pager_watch_in(struct mv_buf *b);
/* Queues b's planned page-in until the page-outs in flight have landed, holding a busy mark on it
 * meanwhile. Returns 0, or -1 when the queue is full. */
int mv_pager_defer_in(struct mv_buf *b);
/* Queues a freed buffer, resident or on the host, to be released once its last uses complete. */
void mv_pager_release(struct mv_buf *b);
/* Bytes of freed resident buffers the pager is about to release. */
uint64_t mv_pager_releasing(void);
/* Whether page-ins are issued that the pager has not seen land: each still holds a host slot. */
int mv_pager_landing(void);

/* Times how long stream h waited for page-ins between two events recorded around the wait; the
 * pager adds it to the stall counter once both have completed. Called without mv_lock. */
void mv_stall_measure(CUstream h, CUevent ready, int per_thread);
/* In a child after fork, before it runs any other thread: the pager thread did not come along. */
void mv_pager_forked(void);

/* ---- allocation and the free cache (alloc.c) ---- */

/* Takes a freed large buffer (already out of the registry; called with mv_lock held): its pages
 * and host copy are released, or its pages cached for reuse, once its last uses complete. */
void mv_release_later(struct mv_buf *b);
/* Puts a freed resident buffer whose last uses have completed into the free cache. Called with
 * mv_lock held. */
void mv_cache_put(struct mv_buf *b);
/* A freed buffer of exactly this span whose pages can be reused now, or NULL. Called with mv_lock
 * held. */
struct mv_buf *mv_cache_take(uint64_t span);
/* The oldest buffer in the free cache, taken out to give its pages back, or NULL. Called with
 * mv_lock held. */
struct mv_buf *mv_cache_pop(void);
/* Gives back all a freed large buffer holds, once nothing can use it any more: its device pages
 * (uncharged) or its host copy, its address range, its events, and the buffer itself. Called
 * without mv_lock, on a buffer on no list. */
void mv_buf_discard(struct mv_buf *b);

/* An allocation memvirt serves, as the app made it: what the pointer queries (pointer.c) answer. */
struct mv_alloc_info {
	uint64_t va, size;
	uint32_t id;     /* the buffer's number: unique to this allocation in the process */
};

/* Whether addr lies in an allocation memvirt serves (info may be NULL). Takes mv_lock. */
int mv_alloc_describe(uint64_t addr, struct mv_alloc_info *info);

/* ---- launches, copies and memsets (launch.c) ---- */

/* The one routine every launch, copy and memset goes through: finds the buffers named, makes them
 * resident, orders the stream after their page-ins, runs submit(), and records the use. */
CUresult mv_submit(CUstream h, int per_thread, const uint64_t *words, size_t nwords,
		   CUresult (*submit)(void *arg), void *arg, uintptr_t fkey);
/* For what the driver keeps using where memvirt cannot follow it (bound objects, bind.c; graphs it
 * cannot follow, graph.c): the buffers the words name are made resident and pinned for good, and
 * submit() runs while they are held. */
CUresult mv_submit_pinned(const uint64_t *words, size_t nwords, CUresult (*submit)(void *arg), void *arg);
/* The most buffers one submission names. */
#define MV_MAX_NAMED 512
/* Writes the nonzero words of a kernel's parameters (kernelParams or extra) to words (room for
 * MV_MAX_SCAN_WORDS); returns how many. */
#define MV_MAX_SCAN_WORDS 4096
size_t mv_kernel_words(CUfunction f, void **params, void **extra, uint64_t *words);
/* Keys of the operations that are not kernels, for mv_submit's fkey (a CUfunction otherwise). */
enum mv_fkey { MV_FK_HTOD = 1, MV_FK_DTOH, MV_FK_DTOD, MV_FK_COPY, MV_FK_MEMSET, MV_FK_LAST = MV_FK_MEMSET };
/* The global use clock, advanced by every launch, copy and memset: its value now. */
uint64_t mv_clock_now(void);
/* Busy marks: a submission holds one on each buffer it names from finding them until its work is
 * enqueued, and no page-out takes a busy buffer. Whether other threads' submissions hold any now. */
int mv_busy_elsewhere(void);
/* A thread in mv_make_room waits for busy marks between these: every submission that ends
 * meanwhile wakes it (mv_wake_unbusy). */
void mv_busy_wait_begin(void);
void mv_busy_wait_end(void);
/* Whether this thread's submission holds busy marks while it makes its buffers resident. */
int mv_busy_holds(void);
/* Lets those marks go while the thread waits for room, so that other threads may page its buffers
 * out rather than wait for it as it waits for them; the submission then looks at every buffer
 * again. Returns 0, or -1 when it holds none. mv_busy_unpark takes them again. Both with mv_lock
 * held. */
int mv_busy_park(void);
void mv_busy_unpark(void);

/* ---- counters (counters.c) ---- */

/* The counters of protocol/counters.def that the library keeps itself (source atomic), by their
 * index (protocol/proto.h); those of source budget are read from the budget (mv_budget_read). Any
 * thread may add or read one: each is one relaxed atomic operation. */
void mv_count_add(enum mv_counter_index c, uint64_t n);
void mv_count_sub(enum mv_counter_index c, uint64_t n);
uint64_t mv_count_get(enum mv_counter_index c);

/* The exported snapshot (memvirt.h), read by the link thread too. */
MV_EXPORT void memvirt_counters(struct memvirt_counters *out);


/* ---- rings from the app's threads to the library's own (ring.c) ---- */

#define MV_RING_SLOTS (1u << 16) /* a power of two */
#define MV_RING_LAP_SHIFT 16     /* log2 of MV_RING_SLOTS */
#define MV_RING_WORDS 7

/* One slot and whose turn it is: seq is 2L while the slot waits for the producer of lap L (ticket
 * >> MV_RING_LAP_SHIFT), 2L + 1 once that producer has written it and it waits for the consumer.
 * One cache line. */
struct mv_ring_slot {
	_Atomic uint64_t seq;
	uint64_t w[MV_RING_WORDS];
} __attribute__((aligned(64)));

/* A bounded ring that any thread fills and one thread drains, in ticket order. A record is one slot
 * or several consecutive ones claimed together. Zero-filled memory is an empty ring. */
struct mv_ring {
	_Alignas(64) _Atomic uint64_t tail; /* the next ticket to claim: producers, by compare-and-swap */
	_Alignas(64) uint64_t head;         /* the next ticket to read: the consumer's alone */
	_Atomic uint64_t dropped;           /* slots refused since the consumer last took the count */
	struct mv_ring_slot slot[MV_RING_SLOTS];
};

static inline struct mv_ring_slot *mv_ring_slot_at(struct mv_ring *r, uint64_t ticket)
{
	return &r->slot[ticket & (MV_RING_SLOTS - 1)];
}

/* What a slot's seq is while ticket waits for its producer; + 1 once written, + 2 once read. */
static inline uint64_t mv_ring_seq_free(uint64_t ticket)
{
	return (ticket >> MV_RING_LAP_SHIFT) * 2;
}

/* The producer's side, from any thread. Claims k consecutive slots (1 <= k <= MV_RING_SLOTS):
 * returns 0 and the first ticket, or -1 without waiting when the ring is full, counting k slots
 * dropped. The producer then fills each slot's words and commits it; a record of several slots
 * commits its first slot last, so the consumer, which stops at the first slot not committed,
 * takes the record whole. */
int mv_ring_claim(struct mv_ring *r, unsigned k, uint64_t *ticket);

static inline void mv_ring_commit(struct mv_ring *r, uint64_t ticket)
{
	atomic_store_explicit(&mv_ring_slot_at(r, ticket)->seq, mv_ring_seq_free(ticket) + 1,
			      memory_order_release);
}

/* The consumer's side, from its one thread. The words of the slot at head when committed, else
 * NULL; the slots after it that the same record claimed are mv_ring_slot_at(r, r->head + j). */
const uint64_t *mv_ring_peek(struct mv_ring *r);
/* Gives the k slots from head back to the producers (the record read). */
void mv_ring_release(struct mv_ring *r, unsigned k);
/* The slots dropped since the last call, at most max of them (the rest stay counted). */
uint64_t mv_ring_take_dropped(struct mv_ring *r, uint64_t max);
/* In a child after fork, single-threaded: the slots claimed by threads that did not come along are
 * given up as read, and the dropped count starts from zero. */
void mv_ring_forked(struct mv_ring *r);

/* ---- the link to memvirtd (link.c) ---- */

/* Nonzero while a daemon session is up: only then do the app's threads push events. One relaxed
 * load; set by the link thread alone. */
int mv_link_is_up(void);
/* Whether the caller is the link thread. */
int mv_link_is_self(void);
/* Whether the link's first session is under way: from the link's start to its WELCOME or failure.
 * Until then the host pool waits (a bounded time, once) before it first grows, since memvirtd may
 * give it a share of the node's host limit. */
int mv_link_greeting(void);
/* The host pool's: asks the link thread for a COUNTERS snapshot now, so that memvirtd divides the
 * node's host limit again without waiting for the next one. Cheap and rate-limited; nothing when
 * no daemon is linked. */
void mv_link_nudge(void);

/* Queues one event for the daemon without waiting: when the ring is full it is dropped and
 * counted. No lock, no system call (the time comes from the vDSO). */
void mv_link_push(uint32_t kind, uint32_t stream, uint64_t addr, uint64_t size, uint64_t arg);
/* Queues a LAUNCH of function number fn and one REF per buffer named, as one record: all of them
 * or, when the ring is full, none (each counted as dropped). Called only while mv_link_is_up(). */
void mv_link_launch(uint32_t stream, uint32_t fn, struct mv_buf *const *named, size_t n);
/* Whether the linked daemon asked for no LAUNCH events (MV_MSG_LAUNCHES): it has learnt the
 * iteration and plans nothing for it. */
int mv_link_launches_unwanted(void);

/* The app's side: one relaxed load when no daemon is linked. */
static inline void mv_link_event(uint32_t kind, uint32_t stream, uint64_t addr, uint64_t size, uint64_t arg)
{
	if (mv_link_is_up())
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

/* ---- the learner and the plan executor (learn.c, exec.c, record.c) ---- */

#define MV_LEARN_ON 0x1u      /* records go to the learner's queue */
#define MV_LEARN_TIME 0x2u    /* launches are bracketed with timing events */
#define MV_LEARN_PLAN 0x4u    /* a plan is installed: the executor follows launches */
#define MV_LEARN_NUMBER 0x8u  /* launches need their function number (the daemon's events) */
/* What the launch path must do beyond paging (MV_LEARN_*): one relaxed load. The learner (learn.c)
 * owns the flags; the executor sets MV_LEARN_PLAN through mv_learn_plan_following. */
unsigned mv_learn_flags_now(void);
void mv_learn_plan_following(int on);

/* Starts the learner when MEMVIRT_POLICY or MEMVIRT_RECORD ask for it (after mv_device_init). */
void mv_learn_start(void);
/* The function number of a kernel (CUfunction) or an mv_fkey; MV_TRACE_NONE-like UINT32_MAX when
 * the table is full. *marker says whether it is MEMVIRT_ITERATION_MARKER's kernel. */
uint32_t mv_func_number(uintptr_t fkey, int *marker);
/* Whether a function of owner o (its module, or a library), whose module was loaded in context c,
 * first seen at moment since, goes with the unload of `owner` or the end of ctx (NULL: none) that
 * began at moment `before`. A function whose owner the driver would not tell never goes. */
static inline int mv_owned_by(const void *o, CUcontext c, uint64_t since, const void *owner, CUcontext ctx,
			      uint64_t before)
{
	return o != NULL && since <= before && (o == owner || (ctx != NULL && c == ctx));
}
/* Forgets the numbers of owner's functions, or of those whose module was loaded in ctx, first seen
 * before `before` (an mv_moment): their handles may name other functions once the module or
 * library is unloaded. */
void mv_funcs_forget(void *owner, CUcontext ctx, uint64_t before);
/* What f was loaded with, whose unload ends it: its module, with the context current now (a
 * launch's, where the module lives and dies), or a CUkernel's library; NULL where the driver will
 * not tell. as_kernel: f is known to be a CUkernel. */
void mv_func_owner(CUfunction f, int as_kernel, void **owner, CUcontext *ctx);
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
 * buffers, and hands back the plan's moves due after this launch (at most MV_EXEC_STEP_OPS; the
 * rest are dropped). Returns whether the launch follows memvirtd's plan quietly: no event is sent
 * for it. */
#define MV_EXEC_STEP_OPS 16
struct mv_exec_step {
	int n;
	struct mv_buf *buf[MV_EXEC_STEP_OPS];
	uint8_t in[MV_EXEC_STEP_OPS];
};
int mv_exec_on_launch(uint32_t fn, struct mv_buf *const *named, size_t n, struct mv_exec_step *out);
/* Issues them, without mv_lock. */
void mv_exec_issue(struct mv_exec_step *st);
/* A buffer is being freed (mv_lock held): unbind it. */
void mv_exec_unbind(struct mv_buf *b);
/* A launch found b's planned page-in still copying (no lock held). */
void mv_exec_late(struct mv_buf *b);
/* A PLAN frame from memvirtd (link thread): payload of len bytes; NULL withdraws the daemon's plan
 * and goes back to the local one. A plan for an iteration not learned here (yet) is kept, a copy,
 * until the learner installs one it fits or memvirtd replaces or withdraws it. Returns 0 (installed,
 * kept or withdrawn), or a negative errno: -EINVAL when it is malformed, -ENOMEM. */
int mv_exec_from_daemon(const uint8_t *payload, size_t len);
/* fork (real.c): daemon_lock is held across it; the child drops the parent's session's plan kept. */
void mv_exec_fork_prepare(void);
void mv_exec_fork_parent(void);
void mv_exec_forked(void);
struct mv_iter;
struct mv_plan;
struct mv_machine;
/* The learner's plan p for iteration it, made for machine m (its copy bandwidths rank victims; NULL:
 * a default); fnmap maps the iteration's nfn function numbers to live ones. NULL withdraws it. Left
 * alone while memvirtd's plan is in force. Returns 0 or -1. */
int mv_exec_install_local(const struct mv_iter *it, const struct mv_plan *p, const struct mv_machine *m,
			  const uint32_t *fnmap, uint32_t nfn);
/* Victims by the plan's next use (exec.c, under mv_lock): whether the executor follows an
 * iteration now, and then how good a victim b is to free need bytes: the higher tier first, then
 * the higher value. exec.c's comment above mv_exec_ranks_victims defines the key. */
enum mv_victim_tier { MV_VICTIM_TOO_SOON, MV_VICTIM_IN_TIME, MV_VICTIM_UNKNOWN, MV_VICTIM_DEAD };
struct mv_victim_key {
	enum mv_victim_tier tier;
	double value;
};
int mv_exec_ranks_victims(void);
void mv_exec_victim_key(const struct mv_buf *b, uint64_t need, struct mv_victim_key *k);
/* Iterations the executor has followed to their end, and launches it spent off the plan. */
void mv_exec_progress(uint64_t *iterations, uint64_t *diverged);
/* Adds the late bytes per iteration buffer to late[] and clears them, when the plan in force has
 * that fingerprint and nbufs buffers; returns whether it had. */
int mv_exec_take_late(uint64_t fingerprint, uint64_t *late, uint32_t nbufs);
int mv_exec_daemon_active(void);

/* Recording (record.c), on the learner's thread only. */
/* Opens the trace file MEMVIRT_RECORD names (pattern: %p, %r, %%); 0, or -1 with a warning. */
int mv_record_open(const char *pattern, uint64_t device_total, uint32_t flags);
void mv_record_func(uint32_t fn, const char *name);
void mv_record_alloc(uint32_t id, uint32_t flags, uint64_t size, uint64_t site, uint64_t time_ns);
void mv_record_free(uint32_t id, uint64_t time_ns);
void mv_record_launch(uint32_t fn, uint32_t stream, uint64_t time_ns, uint64_t dur_ns, const uint32_t *ids,
		      uint32_t n);
void mv_record_mark(uint64_t time_ns);
void mv_record_page(uint32_t id, int in, uint64_t time_ns, uint64_t dur_ns, int waited);
/* Writes what is buffered; with end, the END record too, and closes the file. */
void mv_record_flush(int end);

#define MV_MIN(a, b) ((a) < (b) ? (a) : (b))
#define MV_MAX(a, b) ((a) > (b) ? (a) : (b))

#endif
