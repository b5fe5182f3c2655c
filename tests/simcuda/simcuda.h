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

/* Device bytes in use now and at most since start (or the last reset), physical allocations only. */
typedef void (*simcuda_mem_usage_fn)(uint64_t *used, uint64_t *peak);
#define SIMCUDA_MEM_USAGE "simcuda_mem_usage"

#endif
