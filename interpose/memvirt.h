/* libmemvirt.so's own entry points, beyond the driver API it hooks. Programs find them with
 * dlsym(RTLD_DEFAULT, ...), so that they run unchanged without the library. */
#ifndef MEMVIRT_H
#define MEMVIRT_H

#include <stdint.h>

/* A snapshot of the paging counters of this process. */
struct memvirt_counters {
	uint64_t budget;         /* device bytes this process may hold */
	uint64_t resident_bytes; /* device bytes it holds: buffers, slab chunks, its own VMM allocations */
	uint64_t host_bytes;     /* bytes of buffers paged out to host memory */
	uint64_t page_outs;      /* buffers copied out to host memory */
	uint64_t page_ins;       /* buffers copied back */
	uint64_t fault_ins;      /* page-ins that a launch, copy or memset had to wait for */
	uint64_t bytes_out;      /* bytes copied device to host by paging */
	uint64_t bytes_in;       /* bytes copied host to device by paging */
	uint64_t stall_ns;       /* time the app's streams waited on page-ins, measured with events */
	uint64_t app_vmm_bytes;  /* device bytes of the app's own cuMemCreate allocations */
	uint64_t oom;            /* allocations refused because nothing more could be evicted */
	uint64_t events_sent;    /* buffer events sent to memvirtd */
	uint64_t events_dropped; /* buffer events lost because the queue to memvirtd was full */
	uint64_t planned_outs;   /* page-outs a plan issued ahead of need */
	uint64_t planned_ins;    /* page-ins a plan issued ahead of need */
	uint64_t late_ins;       /* planned page-ins still copying when their launch came */
	uint64_t divergences;    /* times the job left its plan's iteration and paging went reactive */
};

typedef void (*memvirt_counters_fn)(struct memvirt_counters *out);
#define MEMVIRT_COUNTERS "memvirt_counters"

#endif
