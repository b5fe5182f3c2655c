/* The simulated driver's own entry points, beyond the CUDA driver API. Programs that want them look
 * them up with dlsym(RTLD_DEFAULT, ...) so that the same binary also runs on a real driver, where
 * they are absent. */
#ifndef SIMCUDA_H
#define SIMCUDA_H

#include <stdint.h>

/* Nanoseconds on the virtual clock as the host thread sees it: launch overheads it paid and the
 * completion time of all work it has synchronised with. */
typedef uint64_t (*simcuda_clock_ns_fn)(void);
#define SIMCUDA_CLOCK_NS "simcuda_clock_ns"

/* The virtual time at which everything enqueued so far on every stream completes. */
typedef uint64_t (*simcuda_makespan_ns_fn)(void);
#define SIMCUDA_MAKESPAN_NS "simcuda_makespan_ns"

/* Nonzero when SIMCUDA_MODEL_ONLY is set: accounting and the clock run, no bytes are stored, and
 * kernels, copies and memsets change nothing. */
typedef int (*simcuda_model_only_fn)(void);
#define SIMCUDA_MODEL_ONLY "simcuda_model_only"

/* Device bytes in use now and at most since start (or the last reset), physical allocations only, all
 * devices together. */
typedef void (*simcuda_mem_usage_fn)(uint64_t *used, uint64_t *peak);
#define SIMCUDA_MEM_USAGE "simcuda_mem_usage"

/* Bytes cuMemCreate has made on host NUMA node `node` (CU_MEM_LOCATION_TYPE_HOST_NUMA) since start,
 * released or not. */
typedef uint64_t (*simcuda_host_numa_created_fn)(int node);
#define SIMCUDA_HOST_NUMA_CREATED "simcuda_host_numa_created"

/* Fault injection armed while a program runs, where SIMCUDA_FAIL_MEMCREATE and SIMCUDA_FAIL_COPY,
 * counted from cuInit, cannot single out one call: of the calls of one kind made after the arming,
 * the first `skip` succeed and the `count` after them fail (UINT64_MAX: every one). Arming a kind
 * again restarts its count; count 0 disarms it. A failed allocation returns
 * CUDA_ERROR_OUT_OF_MEMORY, a failed copy CUDA_ERROR_UNKNOWN without copying, as with the
 * variables. Returns 0, or -1 for an unknown kind. */
enum simcuda_fault {
	SIMCUDA_FAULT_DEVICE_CREATE, /* cuMemCreate of device memory */
	SIMCUDA_FAULT_HOST_ALLOC,    /* pinned host memory: host-located cuMemCreate, cuMemHostAlloc, cuMemAllocHost */
	SIMCUDA_FAULT_H2D,           /* copies by direction, synchronous or not */
	SIMCUDA_FAULT_D2H,
	SIMCUDA_FAULT_D2D,
	SIMCUDA_FAULT_H2H,
	SIMCUDA_FAULT_PARAM_INFO,    /* cuFuncGetParamInfo and cuKernelGetParamInfo: CUDA_ERROR_NOT_SUPPORTED */
	SIMCUDA_FAULT_KINDS
};
typedef int (*simcuda_inject_fn)(int kind, uint64_t skip, uint64_t count);
#define SIMCUDA_INJECT "simcuda_inject"

/* cuDevicePrimaryCtxReset by a name that a library between the program and the driver does not
 * hook: a context's end it learns of only from the driver's answers afterwards, as when the end
 * comes from another thread while one of its calls is on its way. Returns a CUresult. */
typedef int (*simcuda_primary_ctx_reset_fn)(int dev);
#define SIMCUDA_PRIMARY_CTX_RESET "simcuda_primary_ctx_reset"

#endif
