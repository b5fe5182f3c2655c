/* The simulated driver's internals: device state, memory map, streams and the virtual clock. */
#ifndef SIMCUDA_INTERNAL_H
#define SIMCUDA_INTERNAL_H

#include <cuda.h>
#include <pthread.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>

#include "tests/simcuda/simcuda.h"
#include "tests/workloads/kernels.h"

#define SIM_EXPORT __attribute__((visibility("default")))
#define SIM_HIDDEN __attribute__((visibility("hidden")))

#define SIM_MAX_DEVICES 8 /* SIMCUDA_DEVICES may ask for 1 to this many */
#define SIM_GRANULARITY (2ull << 20) /* default VMM granularity, as on current NVIDIA GPUs */
/* The device address window. A ThreadSanitizer build, whose runtime leaves no 4 TiB hole in the
 * address space, defines a smaller one. */
#ifndef SIM_VA_SIZE
#define SIM_VA_SIZE (4ull << 40)
#endif

/* Handle magics, so that a stale or foreign handle is refused instead of dereferenced blindly. */
enum {
	SIM_MAGIC_CTX = 0x43545831,
	SIM_MAGIC_STREAM = 0x53545231,
	SIM_MAGIC_EVENT = 0x45564e31,
	SIM_MAGIC_MODULE = 0x4d4f4431,
	SIM_MAGIC_FUNC = 0x46554e31,
	SIM_MAGIC_KERNEL = 0x4b524e31,
	SIM_MAGIC_LIBRARY = 0x4c494231,
	SIM_MAGIC_PHYS = 0x50485931,
	SIM_MAGIC_GRAPH = 0x47525031,
	SIM_MAGIC_EXEC = 0x47455831,
	SIM_MAGIC_GNODE = 0x474e4431,
	SIM_MAGIC_POOL = 0x504f4f31,
	SIM_MAGIC_DEAD = 0x44454144,
};

/* ---- configuration (init.c), read once from the environment ---- */

enum sim_engine_id { SIM_ENGINE_COMPUTE, SIM_ENGINE_H2D, SIM_ENGINE_D2H, SIM_NENGINES };

enum sim_copy_dir { SIM_COPY_H2D, SIM_COPY_D2H, SIM_COPY_D2D, SIM_COPY_H2H };

struct sim_config {
	int ndevices;          /* SIMCUDA_DEVICES: 1 to SIM_MAX_DEVICES */
	uint64_t capacity;     /* SIMCUDA_MEM: of each device */
	double peer_bps;       /* SIMCUDA_PEER_GBPS: a copy between two devices */
	uint64_t granularity;  /* SIMCUDA_GRANULARITY: a power of two from 4 KiB to 2 MiB */
	int model_only;        /* SIMCUDA_MODEL_ONLY */
	int host_vmm;          /* cleared by SIMCUDA_NO_HOST_VMM */
	int host_type_vmm;     /* the unspecific host location too; cleared by SIMCUDA_NO_HOST_TYPE_VMM */
	int numa_nodes;        /* SIMCUDA_NUMA_NODES: host NUMA nodes, 0 for a host without NUMA */
	int dev_numa[SIM_MAX_DEVICES]; /* SIMCUDA_HOST_NUMA: each device's nearest node, -1 for none */
	double h2d_bps;        /* SIMCUDA_H2D_GBPS */
	double d2h_bps;        /* SIMCUDA_D2H_GBPS */
	double dram_bps;       /* SIMCUDA_DRAM_GBPS */
	double flops;          /* SIMCUDA_TFLOPS */
	uint64_t launch_ns;    /* SIMCUDA_LAUNCH_US */
	uint64_t fail_create;  /* SIMCUDA_FAIL_MEMCREATE: the Nth cuMemCreate fails (0 = never) */
	int fail_copy_dir;     /* SIMCUDA_FAIL_COPY=h2d|d2h|d2d|any:N; -1 = any direction */
	uint64_t fail_copy_n;  /* ... the Nth copy of that direction fails (0 = never) */
	uint64_t delay_us[SIM_NENGINES]; /* SIMCUDA_DELAY_{KERNEL,H2D,D2H}_US: real sleep per operation */
};

extern struct sim_config sim_cfg;

/* CUDA_SUCCESS for a device ordinal below SIMCUDA_DEVICES, else CUDA_ERROR_INVALID_DEVICE; checks
 * cuInit first (init.c). */
CUresult sim_dev_check(CUdevice dev);


/* ---- contexts (ctx.c) ---- */

struct sim_stream;

struct sim_ctx {
	uint32_t magic;
	int primary;
	int active;               /* a primary context between retain and its last release */
	unsigned flags;
	int dev;                  /* the device it belongs to */
	unsigned peers;           /* devices whose memory its kernels may use (cuCtxEnablePeerAccess); atomic */
	int refs;                 /* primary context retains */
	CUresult sticky;          /* set once by a faulting kernel or copy; every later call returns it */
	struct sim_stream *legacy; /* the NULL stream */
	/* Counts its ends (a destroy, a reset, a primary context's last release); atomic. The streams
	 * and events made in it before an end die with it, whatever their handles still say. */
	uint64_t epoch;
};

/* Driver entry guards. sim_enter() checks cuInit; sim_enter_ctx() also needs a usable current
 * context and returns its sticky error, if any. */
CUresult sim_enter(void);

/* Frees an object whose handle the program was given, once its magic says dead, but only after
 * SIM_RETIRED_KEPT later ones: a stale handle passed back soon after (a double destroy, a use after
 * destroy) then reads the dead magic from memory still allocated rather than from freed memory. */
#define SIM_RETIRED_KEPT 4096
void sim_retire(void *obj);
CUresult sim_enter_ctx(struct sim_ctx **out);
int sim_initialized(void);
struct sim_ctx *sim_ctx_current(void);
CUresult sim_ctx_check(struct sim_ctx *ctx);
void sim_ctx_fault(struct sim_ctx *ctx, CUresult err);
/* Nonzero when an object made in ctx at the given epoch died with an end of ctx since. */
int sim_ctx_ended_since(const struct sim_ctx *ctx, uint64_t epoch);
uint64_t sim_ctx_epoch(const struct sim_ctx *ctx);

/* ---- memory (mem.c, vmm.c) ---- */

/* A physical allocation: cuMemCreate's handle, or the backing of one cuMemAlloc. */
struct sim_phys {
	uint32_t magic;
	uint64_t id;            /* its MEMORY_BLOCK_ID, unique in the process */
	int host_located;       /* CU_MEM_LOCATION_TYPE_HOST*: not charged against device capacity */
	int dev;                /* the device it is charged to (0 when host-located or imported) */
	int from_create;        /* made by cuMemCreate, not the hidden backing of a cuMemAlloc */
	int numa;               /* host-located on this NUMA node (CU_MEM_LOCATION_TYPE_HOST_NUMA), else -1 */
	uint64_t size;
	char *bytes;            /* shared anonymous memory; NULL in model-only mode */
	int handle_refs;        /* cuMemCreate and cuMemRetainAllocationHandle references */
	int map_refs;           /* live mappings */
	int memfd;              /* once exported by cuIpcGetMemHandle: the memfd bytes live in; else -1 */
	int imported;           /* another process's memory, opened or imported: never charged */
	unsigned handle_types;  /* cuMemCreate's requestedHandleTypes */
	int uncounted;          /* a graph allocation's pages: the allocation carries the charge */
};

/* The lock over every memory table below: reservations, mappings, allocations, pinned host ranges,
 * the free address list and the capacity counters. Never held across a wait on a stream. */
extern pthread_mutex_t sim_mem_lock;

void sim_mem_init(void);
int sim_is_device_addr(uint64_t addr);

/* Checks that [addr, addr+bytes) is mapped with at least the given access (1 read, 3 read-write).
 * For kernels, pinned host memory counts too (allow_host). Returns 0 or -1. */
int sim_mem_check(uint64_t addr, uint64_t bytes, int access, int allow_host);
/* The same for a kernel running in ctx: device memory of another device also needs peer access from
 * ctx, except VMM memory, whose access cuMemSetAccess alone grants. */
int sim_mem_check_in(const struct sim_ctx *ctx, uint64_t addr, uint64_t bytes, int access);
/* The same for a copy or memset that ctx's device carries out: its device must have the access
 * (VMM memory grants it per device), and another device's memory is reached over the link without
 * peer access. */
int sim_mem_check_copy(const struct sim_ctx *ctx, uint64_t addr, uint64_t bytes, int access);
/* How many bytes of [addr, addr+bytes) a kernel reaches over the link: those mapped on host-located
 * physical memory, or all of them for pinned host memory. Takes sim_mem_lock. */
uint64_t sim_mem_host_bytes(uint64_t addr, uint64_t bytes);
/* The device whose memory backs [addr, addr+bytes), or -1 when it is not all one device's memory
 * (host memory, unmapped, or spanning devices). Takes sim_mem_lock. */
int sim_mem_device(uint64_t addr, uint64_t bytes);

/* Address space and physical memory used by both cuMemAlloc and the VMM entry points. Callers hold
 * sim_mem_lock. */
int sim_va_alloc(uint64_t size, uint64_t align, uint64_t hint, uint64_t *out);
void sim_va_free(uint64_t addr, uint64_t size);
CUresult sim_phys_create(uint64_t size, int host_located, int dev, struct sim_phys **out);
void sim_phys_put(struct sim_phys *p);
/* Moves a physical allocation's bytes onto a memfd (p->memfd), once, so another process can map
 * them; every mapping of it shows the new pages. Callers hold sim_mem_lock, with the device idle.
 * Returns 0 or -1. */
int sim_phys_share(struct sim_phys *p);
/* The physical allocation a live cuMemCreate handle names, or NULL (vmm.c). */
struct sim_phys *sim_phys_of(CUmemGenericAllocationHandle h);
CUresult sim_map_insert(uint64_t va, uint64_t size, struct sim_phys *p, uint64_t off);
CUresult sim_map_remove(uint64_t va, uint64_t size);
CUresult sim_map_set_access(uint64_t va, uint64_t size, int access);
/* Sets each device's level where level[d] >= 0, leaving the others as they were. */
CUresult sim_map_set_dev_access(uint64_t va, uint64_t size, const int level[SIM_MAX_DEVICES]);
struct sim_map *sim_map_find(uint64_t addr);

/* Reservations the app made with cuMemAddressReserve (cuMemAlloc's own are internal and refused
 * here). Callers hold sim_mem_lock. */
int sim_resv_add(uint64_t va, uint64_t size);
int sim_resv_covers(uint64_t va, uint64_t size);
CUresult sim_resv_remove(uint64_t va, uint64_t size);

struct sim_map {
	uint64_t va, size;
	struct sim_phys *phys;
	uint64_t off;
	int access; /* 0 none, 1 read, 3 read-write: the most any device has, which the host pages show */
	/* Each device's own level. cuMemSetAccess sets them one by one; other mappings give every
	 * device the same. */
	unsigned char dev_access[SIM_MAX_DEVICES];
};

/* Frees a cuMemAlloc or cuMemAllocAsync allocation: used by cuMemFree and by the stream-ordered
 * free when its stream reaches it. */
CUresult sim_alloc_free(uint64_t dptr);
CUresult sim_alloc_new(uint64_t size, uint64_t *out);
/* The cuMemAlloc allocation starting at addr: its reserved span and its backing. Callers hold
 * sim_mem_lock. Returns 0 or -1. */
int sim_alloc_lookup(uint64_t addr, uint64_t *vsize, struct sim_phys **phys);

/* What an address is, as the pointer attributes describe it (pointer.c). */
enum sim_ptr_kind { SIM_PTR_ALLOC = 1, SIM_PTR_VMM, SIM_PTR_HOST };

struct sim_ptr {
	enum sim_ptr_kind kind;
	struct sim_ctx *ctx;    /* the context it was made in (VMM: the current one) */
	uint64_t start, size;   /* the allocation, the app's reservation, or the pinned range */
	uint64_t id;            /* BUFFER_ID: the allocation's, the reservation's or the pinning's */
	int pool;               /* from the default memory pool */
	int mapped;             /* backed at addr */
	uint64_t map_va, map_size, block_id; /* the mapping at addr and its physical allocation */
	int host_located;       /* the mapping's memory is host-located */
	int dev;                /* DEVICE_ORDINAL: the device the mapping's memory is on (else 0) */
	int access;             /* the device's access to it: 0, 1 read, 3 read-write */
};

/* Describes addr; returns 0 when the driver knows nothing of it. Takes sim_mem_lock. */
int sim_ptr_describe(uint64_t addr, struct sim_ptr *info);
/* Device dev's default memory pool. */
CUmemoryPool sim_default_pool(int dev);

/* Graph allocations (the ranges of alloc nodes, mem.c). sim_galloc_new reserves a range of size
 * bytes for device dev, named once (by its node); sim_galloc_ref adds or drops a name (a node, an
 * exec). sim_galloc_is: whether va starts one. sim_galloc_state allocates (alloc 1) or frees (0)
 * it as the calls order it, charging the device: CUDA_ERROR_INVALID_VALUE when it already is (or
 * is not) allocated, CUDA_ERROR_OUT_OF_MEMORY when the device has no room; callers hold
 * sim_mem_lock. sim_galloc_map maps (1) or unmaps (0) its pages when a stream reaches the
 * allocation or its free. */
CUresult sim_galloc_new(uint64_t size, int dev, uint64_t *va);
void sim_galloc_ref(uint64_t va, int delta);
int sim_galloc_is(uint64_t va);
CUresult sim_galloc_state(uint64_t va, int alloc);
void sim_galloc_map(uint64_t va, int map);

/* ---- streams and the virtual clock (stream.c) ---- */

/* SIM_OP_GMAP and SIM_OP_GUNMAP map and unmap a graph allocation's pages (u.f.dptr). */
enum sim_op_kind {
	SIM_OP_KERNEL, SIM_OP_COPY, SIM_OP_MEMSET, SIM_OP_HOSTFN, SIM_OP_FREE, SIM_OP_NOP, SIM_OP_IPCEV,
	SIM_OP_GMAP, SIM_OP_GUNMAP,
};

struct sim_ipc_event;

struct sim_dep {
	struct sim_stream *stream;
	uint64_t seq;
};

#define SIM_KARG_BYTES 512 /* room for mv_touch32: 33 pointers, 264 bytes */

struct sim_op {
	struct sim_op *next;
	enum sim_op_kind kind;
	enum sim_engine_id engine; /* SIM_NENGINES: occupies no engine */
	uint64_t seq;
	uint64_t vready; /* earliest virtual start, from what it waits for */
	struct sim_dep *deps; /* ops this one waits for (events, implicit NULL-stream ordering) */
	int ndeps;
	union {
		struct {
			const struct mv_kernel_desc *desc;
			void *args[MV_KERNEL_MAX_PARAMS];
			_Alignas(16) unsigned char buf[SIM_KARG_BYTES];
		} k;
		struct {
			uint64_t dst, src, bytes;
			enum sim_copy_dir dir;
			void *staged; /* a pageable source read at the call (src points here): freed with the op */
		} c;
		struct {
			uint64_t dst, n;
			unsigned elem;
			uint32_t value;
		} m;
		struct {
			CUhostFn fn;
			void *data;
		} h;
		struct {
			uint64_t dptr;
		} f;
		struct {
			struct sim_ipc_event *ev; /* a reference, dropped when the op has run */
			uint32_t ticket;
			int signal;               /* 1: marks the record done; 0: waits for it */
		} e;
	} u;
};

struct sim_graph;

struct sim_stream {
	uint32_t magic;
	struct sim_ctx *ctx;
	uint64_t epoch; /* ctx's when it was made (see struct sim_ctx) */
	unsigned flags;
	int priority;
	int legacy;     /* the NULL stream of its context */
	int per_thread; /* a thread's per-thread default stream */
	pthread_t thread;
	pthread_cond_t queued; /* signalled when work is queued or the stream dies */
	/* Guarded by sim_sched_lock: */
	struct sim_op *head, *tail;
	uint64_t enq_seq;  /* ops enqueued so far */
	uint64_t done_seq; /* ops completed so far, in order */
	uint64_t vtime;    /* virtual completion time of the last op enqueued */
	int dying;
	struct sim_graph *capture; /* non-NULL while capturing */
	CUstreamCaptureMode capture_mode;
	pthread_t capture_thread;  /* the thread that began the capture */
	int capture_invalid;       /* a forbidden call invalidated the capture: it ends in an error */
	int capture_external;      /* capturing into the app's graph (cuStreamBeginCaptureToGraph) */
	/* Fork and join (stream.c): a stream that waits on an event recorded in a capture joins it,
	 * and its work goes into the same graph; the capture's end needs every such stream joined
	 * back to the stream that began it. */
	uint64_t capture_id;               /* the capture sequence's, unique in the process */
	struct sim_stream *capture_origin; /* a stream that joined a capture: the one that began it */
	uint64_t capture_ops;              /* a version: nodes and event waits recorded here so far */
	uint64_t capture_last_node;        /* capture_ops after its last node */
	struct sim_stream *join_to;        /* the last stream of the capture that waited on this one */
	uint64_t join_at;                  /* this stream's capture_ops that wait covered */
	uint64_t join_wait;                /* join_to's capture_ops once it waited */
	struct sim_stream *next_all;
};

/* The scheduler lock: guards every stream's queue and counters, the engines' virtual clocks, the host
 * clock and all events. Workers wait for work on their stream's own condition; whoever waits for a
 * completion (a worker's dependency, a host synchronisation) waits on sim_sched_cond, which
 * completions broadcast. */
extern pthread_mutex_t sim_sched_lock;
extern pthread_cond_t sim_sched_cond;

/* Resolves a stream handle as the API sees it (NULL, CU_STREAM_LEGACY, CU_STREAM_PER_THREAD or a
 * created stream); per_thread says whether NULL means the per-thread stream (the _ptsz entries). */
CUresult sim_stream_resolve(CUstream h, int per_thread, struct sim_stream **out);
/* sim_enter_ctx() and sim_stream_resolve() together: the prologue of every stream-ordered call. */
CUresult sim_enter_stream(CUstream h, int per_thread, struct sim_stream **out);

/* Queues an op on a stream. Its virtual start is the latest of the stream's last op, the host clock,
 * the engine's availability and its dependencies; cost_ns is its modeled duration on engine. The op
 * is owned by the stream afterwards. */
void sim_stream_submit(struct sim_stream *s, struct sim_op *op, enum sim_engine_id engine, uint64_t cost_ns);
/* The same for a copy from device src_dev to device dst_dev: it occupies src_dev's D2H lane and
 * dst_dev's H2D lane together for cost_ns. */
void sim_stream_submit_peer(struct sim_stream *s, struct sim_op *op, int src_dev, int dst_dev, uint64_t cost_ns);

/* The capture-mode rules, for a potentially unsafe call (an allocation or a free) on this thread:
 * CUDA_SUCCESS when allowed, else CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED, and every capture that
 * forbade it is invalidated (stream.c). mode: the calling thread's (cuThreadExchangeStreamCaptureMode). */
CUresult sim_capture_unsafe_call(CUstreamCaptureMode mode);
/* The calling thread's capture interaction mode (graph.c). */
CUstreamCaptureMode sim_thread_capture_mode(void);

/* Waits until every op enqueued on s so far has completed. */
void sim_stream_wait_all(struct sim_stream *s);
/* Waits until all streams of a context (NULL: of every context) are idle. */
void sim_streams_idle(struct sim_ctx *ctx);
struct sim_op *sim_op_new(enum sim_op_kind kind);

/* Cost model helpers. */
uint64_t sim_cost_copy_ns(enum sim_copy_dir dir, uint64_t bytes);
uint64_t sim_cost_kernel_ns(double flops, double bytes);
/* The same for a kernel host_bytes of whose bytes are in host memory: those go over the link at the
 * host-to-device rate, concurrently with the rest. */
uint64_t sim_cost_kernel_split_ns(double flops, double bytes, double host_bytes);
uint64_t sim_cost_peer_ns(uint64_t bytes);
enum sim_engine_id sim_copy_engine(enum sim_copy_dir dir);

/* Runs fn under the fault net: an access to the device window that faults ends it and returns -1. */
int sim_guarded(int (*fn)(void *), void *arg);

/* Executes a kernel op's body (launch.c); returns 0 or a CUDA error. */
CUresult sim_kernel_exec(const struct sim_ctx *ctx, struct sim_op *op);
/* A kernel's device time, as its arguments stand now: its flops and bytes (its descriptor's cost)
 * against the device's rates, with the share of the bytes whose ranges lie in host memory (mapped
 * host-located allocations, pinned host memory) read over the link each time, at the host-to-device
 * rate. */
uint64_t sim_kernel_cost_ns(const struct sim_op *op);

/* Checks a kernel launch's function and dimensions and copies its arguments into a kernel op
 * (launch.c), for launches and for graph kernel nodes. */
CUresult sim_kernel_prepare(struct sim_op *op, CUfunction f, const unsigned grid[3], const unsigned block[3],
			    void **params, void **extra);
/* The built-in kernels as CUkernel handles (launch.c), and module-scope variables (library.c). */
struct sim_funcs;
/* A loaded library (library.c). Its magic turns SIM_MAGIC_DEAD under launch.c's lock of loaded
 * modules, so that no module of it is loaded once it is unloaded. */
struct sim_library {
	_Atomic uint32_t magic;
	uint64_t global;           /* its module-scope variable, once asked for */
	struct sim_funcs *kernels; /* its kernels' handles */
};
int sim_funcs_ready(void);
/* A context's end unloads the modules loaded in it. */
void sim_modules_end(struct sim_ctx *ctx);
/* A library's kernel handles, made at its load. */
struct sim_funcs *sim_kernels_new(struct sim_library *lib);
/* Unloads lib: its kernels die, and its module in each context. Returns -1 when it was not loaded
 * (or another thread unloaded it first). */
int sim_library_end(struct sim_library *lib);
CUkernel sim_kernel_find(struct sim_funcs *ks, const char *name);
const struct mv_kernel_desc *sim_kernel_desc(CUkernel k);
struct sim_library *sim_kernel_library(CUkernel k);
/* lib's module in ctx, loaded there first where load says so (else CUDA_ERROR_NOT_FOUND), and the
 * function of lib's kernel k in it. */
CUresult sim_library_module(struct sim_library *lib, struct sim_ctx *ctx, int load, CUmodule *mod);
CUresult sim_library_function(struct sim_library *lib, struct sim_ctx *ctx, CUkernel k, CUfunction *f);
CUresult sim_param_info(const struct mv_kernel_desc *d, size_t index, size_t *offset, size_t *size);
/* The one variable of a loaded module or library, "mv_scratch" (SIM_GLOBAL_BYTES of device memory,
 * allocated at the first request into *slot); sim_global_free frees it. */
#define SIM_GLOBAL_NAME "mv_scratch"
#define SIM_GLOBAL_BYTES 256
CUresult sim_global_get(uint64_t *slot, const char *name, CUdeviceptr *dptr, size_t *bytes);
void sim_global_free(uint64_t *slot);
/* The same without waiting for the device: no stream may still use the variable. */
void sim_global_release(uint64_t *slot);

/* Capture (graph.c): records a kernel, copy or memset op into the capturing graph instead of
 * running it, and frees op. */
CUresult sim_graph_capture_op(struct sim_stream *s, struct sim_op *op);
/* A capture's end on origin (stream.c), under one hold of sim_sched_lock: origin and the streams
 * that joined it leave it; *g gets the graph, *invalid whether one of them invalidated it, and
 * *external whether it was the app's graph. Returns CUDA_ERROR_STREAM_CAPTURE_UNJOINED when one of
 * them has nodes not joined back to origin, else CUDA_SUCCESS. */
CUresult sim_capture_end(struct sim_stream *origin, struct sim_graph **g, int *invalid, int *external);
/* A node s added to its capture: its version moves on. */
void sim_capture_node_added(struct sim_stream *s);
/* Invalidates s's capture, the whole sequence when s joined it. Called with sim_sched_lock held. */
void sim_capture_invalidate_locked(struct sim_stream *s);
/* Records a stream-ordered allocation of bytes on device dev (*va gets its address) or a free of
 * va (bytes 0) as an alloc or free node of s's capture. */
CUresult sim_graph_capture_mem(struct sim_stream *s, uint64_t bytes, int dev, uint64_t *va);

/* Copies and memsets (copy.c, copy2d.c). sim_copy_check answers CUDA_ERROR_INVALID_VALUE when a
 * side the direction puts on the device is not device memory; the enqueue calls queue one plain copy
 * or memset (its range is checked again when it runs: a sticky illegal address); sim_stream_finish
 * waits for a synchronous call's stream and returns the context's error. */
int sim_device_side(uint64_t addr, uint64_t bytes);
enum sim_copy_dir sim_unified_dir(uint64_t dst, uint64_t src);
CUresult sim_copy_check(uint64_t dst, uint64_t src, uint64_t bytes, enum sim_copy_dir dir);
CUresult sim_copy_enqueue(struct sim_stream *s, uint64_t dst, uint64_t src, uint64_t bytes, enum sim_copy_dir dir);
/* Queues a filled-in copy op on its engine, or on the peer link when it goes between two devices. */
void sim_copy_submit(struct sim_stream *s, struct sim_op *op);
CUresult sim_memset_enqueue(struct sim_stream *s, uint64_t dst, uint32_t value, unsigned elem, uint64_t n);
CUresult sim_stream_finish(struct sim_stream *s, int sync);

/* Interprocess events (ipc.c). An event created with CU_EVENT_INTERPROCESS and
 * CU_EVENT_DISABLE_TIMING keeps its state in a memfd page that every process holding the event maps:
 * each record takes the next ticket, and a signal op queued behind the recorded work marks the ticket
 * done when the stream reaches it. Queries, synchronisations and stream waits read that page, so a
 * record in one process orders work in another. References are atomic; the last put unmaps. */
struct sim_ipc_event *sim_ipc_event_new(void);
struct sim_ipc_event *sim_ipc_event_get(struct sim_ipc_event *ev);
void sim_ipc_event_put(struct sim_ipc_event *ev);
uint32_t sim_ipc_event_record(struct sim_ipc_event *ev);
uint32_t sim_ipc_event_latest(struct sim_ipc_event *ev);
int sim_ipc_event_done(struct sim_ipc_event *ev, uint32_t ticket);
/* Blocks the calling thread until ticket is done. */
void sim_ipc_event_wait(struct sim_ipc_event *ev, uint32_t ticket);
/* Runs a SIM_OP_IPCEV op (a signal, or a wait unless the context has faulted) and drops its reference. */
void sim_ipc_event_exec(struct sim_op *op, int faulted);
/* Events as ipc.c sees them (stream.c): an event's shared state (NULL when it has none, or
 * CUDA_ERROR_INVALID_HANDLE for a bad handle), and a new event over opened shared state (it takes
 * the caller's reference). */
CUresult sim_event_shared(CUevent h, struct sim_ipc_event **out);
CUresult sim_event_open(struct sim_ipc_event *ev, CUevent *out);

/* Fault injection counters (init.c): return nonzero when this call should fail. */
int sim_inject_create_failure(int host);
int sim_inject_host_alloc_failure(void);
int sim_inject_copy_failure(enum sim_copy_dir dir);
int sim_inject_param_info_failure(void);

#define SIM_MIN(a, b) ((a) < (b) ? (a) : (b))
#define SIM_MAX(a, b) ((a) > (b) ? (a) : (b))

#endif
