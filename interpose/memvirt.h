/* libmemvirt.so's own entry points, beyond the driver API it hooks. Programs find them with
 * dlsym(RTLD_DEFAULT, ...), so that they run unchanged without the library. */
#ifndef MEMVIRT_H
#define MEMVIRT_H

#include <stdint.h>

/* A snapshot of the paging counters of this process: a uint64_t for each counter of
 * protocol/counters.def, in its order, which says what each measures. */
struct memvirt_counters {
#define MV_COUNTER(name, ...) uint64_t name;
#include "protocol/counters.def"
#undef MV_COUNTER
};

typedef void (*memvirt_counters_fn)(struct memvirt_counters *out);
#define MEMVIRT_COUNTERS "memvirt_counters"

#endif
