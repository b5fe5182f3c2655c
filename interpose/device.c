/* The device side, set up on the first allocation: the app's context, the device's size and
 * granularity, whether it can map host memory into device addresses (the safety net), memvirt's
 * copy streams, and the local budget. Once it is known the link to the daemon starts. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "interpose/internal.h"
#include "policies/policy.h"
#include "protocol/units.h"

/* Written only by setup(), under init_lock, before `ready` is published; read-only after. */
static struct mv_device state;

/* Guards the one-time setup; a failed attempt (no context yet) is retried on the next call. */
static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic int ready;

/* Where host-located VMM allocations (the host pool's chunks) go: the node nearest dev where the
 * driver takes host NUMA locations, since pinned pages on the far socket cost link bandwidth on
 * every page-out and page-in; else the unspecific host location. Returns whether either works. */
static int host_location(CUdevice dev)
{
	int numa_vmm = 0, any_vmm = 0, numa = -1;

	if (mv_real.cuDeviceGetAttribute(&numa, CU_DEVICE_ATTRIBUTE_HOST_NUMA_ID, dev) != CUDA_SUCCESS)
		numa = -1;
	if (mv_real.cuDeviceGetAttribute(&numa_vmm, CU_DEVICE_ATTRIBUTE_HOST_NUMA_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED,
					 dev) != CUDA_SUCCESS)
		numa_vmm = 0;
	if (mv_real.cuDeviceGetAttribute(&any_vmm, CU_DEVICE_ATTRIBUTE_HOST_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED, dev) !=
	    CUDA_SUCCESS)
		any_vmm = 0;
	state.host_numa = numa < 0 ? -1 : numa;
	if (numa_vmm) {
		/* Without NUMA the driver wants node 0. */
		state.host_loc.type = CU_MEM_LOCATION_TYPE_HOST_NUMA;
		state.host_loc.id = numa < 0 ? 0 : numa;
	} else {
		state.host_loc.type = CU_MEM_LOCATION_TYPE_HOST;
		state.host_loc.id = 0;
	}
	return numa_vmm || any_vmm;
}

/* Set once the paged context has ended; allocations go to the driver from then on. */
static _Atomic int paged_ended;
/* Set once the driver refused a peer mv_grant named: mappings may grant the paged device alone. */
static _Atomic int peer_refused;

int mv_access_for(CUdevice owner, CUmemAccessDesc *d, int max)
{
	int count = 0, n = 1;

	memset(d, 0, sizeof(*d) * (size_t)max);
	d[0].location.type = CU_MEM_LOCATION_TYPE_DEVICE;
	d[0].location.id = owner;
	d[0].flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
	if (mv_real.cuDeviceGetCount(&count) != CUDA_SUCCESS)
		return n;
	for (int i = 0; i < count && n < max; i++) {
		int can = 0;
		if (i == owner || mv_real.cuDeviceCanAccessPeer(&can, i, owner) != CUDA_SUCCESS || !can)
			continue;
		d[n] = d[0];
		d[n++].location.id = i;
	}
	return n;
}

int mv_granted(const CUmemLocation *loc)
{
	int n = atomic_load_explicit(&peer_refused, memory_order_relaxed) ? 1 : state.naccess;

	if (loc->type != CU_MEM_LOCATION_TYPE_DEVICE)
		return 0;
	for (int i = 0; i < n; i++)
		if (state.access[i].location.id == loc->id)
			return 1;
	return 0;
}

/* Pushed on the calling thread's stack and popped again, so that the thread gets back whatever it
 * had below, even a context another thread destroyed meanwhile, which a set would refuse, leaving
 * ctx current to the app. */
int mv_ctx_enter(CUcontext ctx, CUcontext *prev)
{
	CUcontext cur = NULL;

	if (ctx == NULL || mv_real.cuCtxGetCurrent(&cur) != CUDA_SUCCESS || cur == ctx)
		return 0;
	if (mv_real.cuCtxPushCurrent_v2(ctx) != CUDA_SUCCESS)
		return -1;
	*prev = cur;
	return 1;
}

void mv_ctx_leave(int entered, CUcontext prev)
{
	CUcontext popped = NULL, cur = NULL;

	if (entered <= 0 || mv_real.cuCtxPopCurrent_v2(&popped) == CUDA_SUCCESS)
		return;
	/* Not popped: the app gets its context back all the same. */
	if (mv_real.cuCtxGetCurrent(&cur) == CUDA_SUCCESS && cur != prev)
		mv_real.cuCtxSetCurrent(prev);
}

/* Grants the first n devices of d (which has room for one more), with the host first where asked. */
static CUresult set_access(CUdeviceptr va, uint64_t span, CUmemAccessDesc *d, int n, int host)
{
	CUresult r;

	if (host) {
		/* The CPU's access is named with the allocation's own kind of host location. */
		memset(&d[n], 0, sizeof(d[n]));
		d[n].location = state.host_loc;
		d[n].flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
		r = mv_real.cuMemSetAccess(va, span, d, (size_t)n + 1);
		if (r == CUDA_SUCCESS)
			return r;
	}
	return mv_real.cuMemSetAccess(va, span, d, (size_t)n);
}

CUresult mv_grant(CUdeviceptr va, uint64_t span, int host)
{
	CUmemAccessDesc d[MV_MAX_ACCESS + 1];
	int n = state.naccess;
	CUresult r;

	memcpy(d, state.access, sizeof(d[0]) * (size_t)n);
	r = set_access(va, span, d, n, host);
	/* A peer the driver named but will not map for: the paged device (and the host) must have it. */
	if (r != CUDA_SUCCESS && n > 1) {
		r = set_access(va, span, d, 1, host);
		atomic_store_explicit(&peer_refused, 1, memory_order_relaxed);
	}
	return r;
}

static CUresult setup(void)
{
	CUmemAllocationProp prop = {0};
	CUdevice dev;
	size_t total, gran;
	uint64_t local;
	int host_vmm = 0;
	CUresult r;

	r = mv_real.cuCtxGetCurrent(&state.ctx);
	if (r != CUDA_SUCCESS)
		return r;
	if (state.ctx == NULL)
		return CUDA_ERROR_INVALID_CONTEXT;
	r = mv_real.cuCtxGetDevice(&dev);
	if (r == CUDA_SUCCESS)
		r = mv_real.cuDeviceTotalMem_v2(&total, dev);
	if (r != CUDA_SUCCESS)
		return r;
	prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
	prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
	prop.location.id = dev;
	r = mv_real.cuMemGetAllocationGranularity(&gran, &prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM);
	if (r != CUDA_SUCCESS) {
		mv_log(MV_LOG_ERROR, "the device has no virtual memory management; memvirt passes allocations through");
		return r;
	}
	host_vmm = host_location(dev);
	state.naccess = mv_access_for(dev, state.access, MV_MAX_ACCESS);
	r = mv_real.cuStreamCreate(&state.d2h, CU_STREAM_NON_BLOCKING);
	if (r == CUDA_SUCCESS)
		r = mv_real.cuStreamCreate(&state.h2d, CU_STREAM_NON_BLOCKING);
	if (r != CUDA_SUCCESS)
		return r;
	state.device = dev;
	state.total = total;
	state.granularity = gran;
	state.host_vmm = host_vmm && mv_cfg.safety_net;
	local = total;
	if (mv_cfg.budget_spec != NULL) {
		uint64_t b = 0;
		char why[160], entry[64];
		const char *bad = NULL;

		/* This device's entry, or the one for every device (a budget alone is one), or its
		 * memory. The configuration has checked every entry. */
		if (mv_budget_pick(mv_cfg.budget_spec, (long)dev, total, &b, &bad, entry, sizeof(entry)) <= 0)
			b = total;
		if (b > 0)
			local = b;
		if (mv_budget_absurd(b, gran, total, why, sizeof(why)))
			mv_log(MV_LOG_WARN, "MEMVIRT_BUDGET=%s %s%s", mv_cfg.budget_spec, why,
			       b == 0 ? "; using the device's memory" : "");
	}
	mv_budget_init(local);
	{
		char a[32], b[32];
		char n[48] = "the host";
		if (state.host_numa >= 0)
			snprintf(n, sizeof(n), "NUMA node %d", state.host_numa);
		mv_log(MV_LOG_INFO, "device budget %s of %s; safety net %s; host pool %s %s",
		       mv_format_size(local, a, sizeof(a)), mv_format_size(total, b, sizeof(b)),
		       state.host_vmm ? "on" : host_vmm ? "off (MEMVIRT_SAFETY_NET)" : "off (device lacks host VMM)",
		       state.host_vmm && state.host_loc.type == CU_MEM_LOCATION_TYPE_HOST_NUMA ? "on" :
		       "placed by the driver, the GPU being nearest", n);
	}
	return CUDA_SUCCESS;
}

const struct mv_device *mv_dev(void)
{
	return &state;
}

void mv_paged_ctx_ended(void)
{
	atomic_store_explicit(&paged_ended, 1, memory_order_release);
}

int mv_paged_ctx_gone(void)
{
	return atomic_load_explicit(&paged_ended, memory_order_acquire);
}

/* Whether MEMVIRT_BUDGET sets no budget for device dev (-1: a device it does not name): a list
 * with no entry of dev's own and none for every device. */
static int budget_leaves(long dev)
{
	uint64_t b = 0;
	char entry[64];
	const char *bad = NULL;

	return mv_cfg.budget_spec != NULL &&
	       mv_budget_pick(mv_cfg.budget_spec, dev, UINT64_C(1) << 40, &b, &bad, entry, sizeof(entry)) == 0;
}

/* Whether device d is named for the first time in *said, the devices already named in a log line,
 * one bit each (ordinals past 63 share the last). */
static int first_mention(_Atomic uint64_t *said, CUdevice d)
{
	uint64_t bit = 1ull << (d >= 0 && d < 63 ? d : 63);

	return !(atomic_fetch_or_explicit(said, bit, memory_order_relaxed) & bit);
}

int mv_not_paged(void)
{
	static _Atomic uint64_t said;
	CUdevice d;

	if (mv_paged_ctx_gone())
		return 1;
	if (mv_real.cuCtxGetDevice(&d) != CUDA_SUCCESS || d == state.device)
		return 0;
	if (first_mention(&said, d))
		mv_log(MV_LOG_INFO, "device %d: its allocations go to the driver unpaged; memvirt pages device %d, the "
		       "first one this process allocated on%s", (int)d, (int)state.device,
		       budget_leaves(-1) && !budget_leaves((long)state.device) ? " that MEMVIRT_BUDGET names" : "");
	return 1;
}

/* Whether MEMVIRT_BUDGET sets no budget for dev (budget_leaves); says so once per device. */
static int budget_skips(CUdevice dev)
{
	static _Atomic uint64_t said;

	if (!budget_leaves((long)dev))
		return 0;
	if (first_mention(&said, dev))
		mv_log(MV_LOG_INFO, "device %d: MEMVIRT_BUDGET=%s sets no budget for it, so its allocations go to "
		       "the driver unpaged; memvirt pages the first device the budget names that this process "
		       "allocates on", (int)dev, mv_cfg.budget_spec);
	return 1;
}

/* any: set up on the current context's device even where the budget leaves it out. */
static CUresult device_init(int any)
{
	CUresult r = CUDA_SUCCESS;
	CUdevice dev;

	if (atomic_load_explicit(&ready, memory_order_acquire)) {
		/* Also how a child after fork gets its link back. */
		mv_link_start();
		return CUDA_SUCCESS;
	}
	if (mv_init() != 0)
		return CUDA_ERROR_NOT_INITIALIZED;
	/* One device is paged per process: not one the budget leaves out while it names another. */
	if (!any && mv_real.cuCtxGetDevice(&dev) == CUDA_SUCCESS && budget_skips(dev))
		return MV_NOT_THIS_DEVICE;
	pthread_mutex_lock(&init_lock);
	if (!atomic_load_explicit(&ready, memory_order_relaxed)) {
		r = setup();
		if (r == CUDA_SUCCESS)
			atomic_store_explicit(&ready, 1, memory_order_release);
	}
	pthread_mutex_unlock(&init_lock);
	if (r == CUDA_SUCCESS) {
		mv_learn_start();
		mv_link_start();
	}
	return r;
}

CUresult mv_device_init(void)
{
	return device_init(0);
}

CUresult mv_device_init_any(void)
{
	return device_init(1);
}
