/* The virtual memory management API: reserve addresses, create physical allocations on the device
 * or on the host, map them, set access, and release. */
#include "config.h"

#include <stdatomic.h>
#include <string.h>

#include "tests/simcuda/internal.h"

static int host_location(CUmemLocationType t)
{
	return t == CU_MEM_LOCATION_TYPE_HOST || t == CU_MEM_LOCATION_TYPE_HOST_NUMA ||
	       t == CU_MEM_LOCATION_TYPE_HOST_NUMA_CURRENT;
}

/* Checks allocation properties; returns whether the location is on the host through *host, and
 * the device it names through *dev. */
static CUresult check_prop(const CUmemAllocationProp *prop, int *host, int *dev)
{
	if (prop == NULL || prop->type != CU_MEM_ALLOCATION_TYPE_PINNED)
		return CUDA_ERROR_INVALID_VALUE;
	*dev = 0;
	if (prop->location.type == CU_MEM_LOCATION_TYPE_DEVICE) {
		CUresult r = sim_dev_check(prop->location.id);
		if (r != CUDA_SUCCESS)
			return r;
		*dev = prop->location.id;
		*host = 0;
		return CUDA_SUCCESS;
	}
	if (host_location(prop->location.type)) {
		if (!sim_cfg.host_vmm)
			return CUDA_ERROR_NOT_SUPPORTED;
		/* A driver that knows host NUMA nodes only: the unspecific location is not one it takes. */
		if (prop->location.type == CU_MEM_LOCATION_TYPE_HOST && !sim_cfg.host_type_vmm)
			return CUDA_ERROR_INVALID_VALUE;
		/* A node that exists; 0 where the host has no NUMA. */
		if (prop->location.type == CU_MEM_LOCATION_TYPE_HOST_NUMA &&
		    (prop->location.id < 0 || prop->location.id >= (sim_cfg.numa_nodes > 0 ? sim_cfg.numa_nodes : 1)))
			return CUDA_ERROR_INVALID_VALUE;
		*host = 1;
		return CUDA_SUCCESS;
	}
	return CUDA_ERROR_INVALID_VALUE;
}

/* Bytes made by cuMemCreate on each host NUMA node since start, for tests (simcuda.h). */
static _Atomic uint64_t numa_created[64];

SIM_EXPORT uint64_t simcuda_host_numa_created(int node)
{
	return node >= 0 && node < 64 ? atomic_load(&numa_created[node]) : 0;
}

SIM_EXPORT CUresult cuMemGetAllocationGranularity(size_t *granularity, const CUmemAllocationProp *prop,
						  CUmemAllocationGranularity_flags option)
{
	CUresult r = sim_enter();
	int host, dev;

	if (r != CUDA_SUCCESS)
		return r;
	if (granularity == NULL ||
	    (option != CU_MEM_ALLOC_GRANULARITY_MINIMUM && option != CU_MEM_ALLOC_GRANULARITY_RECOMMENDED))
		return CUDA_ERROR_INVALID_VALUE;
	r = check_prop(prop, &host, &dev);
	if (r != CUDA_SUCCESS)
		return r;
	*granularity = sim_cfg.granularity;
	return CUDA_SUCCESS;
}

SIM_EXPORT CUresult cuMemAddressReserve(CUdeviceptr *ptr, size_t size, size_t alignment, CUdeviceptr addr,
					unsigned long long flags)
{
	CUresult r = sim_enter();
	uint64_t va;

	if (r != CUDA_SUCCESS)
		return r;
	if (ptr == NULL || size == 0 || size % sim_cfg.granularity != 0 || flags != 0 ||
	    (alignment != 0 && (alignment & (alignment - 1)) != 0))
		return CUDA_ERROR_INVALID_VALUE;
	if (alignment < sim_cfg.granularity)
		alignment = sim_cfg.granularity;
	pthread_mutex_lock(&sim_mem_lock);
	if (sim_va_alloc(size, alignment, addr, &va) != 0) {
		r = CUDA_ERROR_OUT_OF_MEMORY;
	} else if (sim_resv_add(va, size) != 0) {
		sim_va_free(va, size);
		r = CUDA_ERROR_OUT_OF_MEMORY;
	}
	pthread_mutex_unlock(&sim_mem_lock);
	if (r == CUDA_SUCCESS)
		*ptr = va;
	return r;
}

SIM_EXPORT CUresult cuMemAddressFree(CUdeviceptr ptr, size_t size)
{
	CUresult r = sim_enter();

	if (r != CUDA_SUCCESS)
		return r;
	pthread_mutex_lock(&sim_mem_lock);
	r = sim_resv_remove(ptr, size);
	pthread_mutex_unlock(&sim_mem_lock);
	return r;
}

SIM_EXPORT CUresult cuMemCreate(CUmemGenericAllocationHandle *handle, size_t size, const CUmemAllocationProp *prop,
				unsigned long long flags)
{
	CUresult r = sim_enter();
	struct sim_phys *p;
	int host, dev;

	if (r != CUDA_SUCCESS)
		return r;
	if (handle == NULL || size == 0 || size % sim_cfg.granularity != 0 || flags != 0)
		return CUDA_ERROR_INVALID_VALUE;
	/* The calling thread's node is for pools and prefetches, not for cuMemCreate. */
	if (prop != NULL && prop->location.type == CU_MEM_LOCATION_TYPE_HOST_NUMA_CURRENT)
		return CUDA_ERROR_INVALID_VALUE;
	r = check_prop(prop, &host, &dev);
	if (r != CUDA_SUCCESS)
		return r;
	if (sim_inject_create_failure(host))
		return CUDA_ERROR_OUT_OF_MEMORY;
	pthread_mutex_lock(&sim_mem_lock);
	r = sim_phys_create(size, host, dev, &p);
	if (r == CUDA_SUCCESS) {
		p->handle_refs = 1;
		p->from_create = 1;
		p->handle_types = prop->requestedHandleTypes;
		p->numa = prop->location.type == CU_MEM_LOCATION_TYPE_HOST_NUMA ? prop->location.id : -1;
	}
	pthread_mutex_unlock(&sim_mem_lock);
	if (r == CUDA_SUCCESS && host && prop->location.type == CU_MEM_LOCATION_TYPE_HOST_NUMA)
		atomic_fetch_add(&numa_created[prop->location.id], size);
	if (r == CUDA_SUCCESS)
		*handle = (CUmemGenericAllocationHandle)(uintptr_t)p;
	return r;
}

static struct sim_phys *phys_of(CUmemGenericAllocationHandle h)
{
	struct sim_phys *p = (struct sim_phys *)(uintptr_t)h;
	return p != NULL && p->magic == SIM_MAGIC_PHYS && p->handle_refs > 0 ? p : NULL;
}

struct sim_phys *sim_phys_of(CUmemGenericAllocationHandle h)
{
	return phys_of(h);
}

SIM_EXPORT CUresult cuMemRelease(CUmemGenericAllocationHandle h)
{
	CUresult r = sim_enter();
	struct sim_phys *p;

	if (r != CUDA_SUCCESS)
		return r;
	pthread_mutex_lock(&sim_mem_lock);
	p = phys_of(h);
	if (p == NULL) {
		r = CUDA_ERROR_INVALID_VALUE;
	} else {
		p->handle_refs--;
		sim_phys_put(p);
	}
	pthread_mutex_unlock(&sim_mem_lock);
	return r;
}

SIM_EXPORT CUresult cuMemMap(CUdeviceptr ptr, size_t size, size_t offset, CUmemGenericAllocationHandle h,
			     unsigned long long flags)
{
	CUresult r = sim_enter();
	struct sim_phys *p;

	if (r != CUDA_SUCCESS)
		return r;
	if (size == 0 || flags != 0 || ptr % sim_cfg.granularity != 0 || size % sim_cfg.granularity != 0 ||
	    offset % sim_cfg.granularity != 0)
		return CUDA_ERROR_INVALID_VALUE;
	pthread_mutex_lock(&sim_mem_lock);
	p = phys_of(h);
	if (p == NULL || offset > p->size || size > p->size - offset)
		r = CUDA_ERROR_INVALID_VALUE;
	else if (!sim_resv_covers(ptr, size))
		r = CUDA_ERROR_INVALID_VALUE;
	else
		r = sim_map_insert(ptr, size, p, offset);
	pthread_mutex_unlock(&sim_mem_lock);
	return r;
}

SIM_EXPORT CUresult cuMemUnmap(CUdeviceptr ptr, size_t size)
{
	CUresult r = sim_enter();

	if (r != CUDA_SUCCESS)
		return r;
	if (size == 0)
		return CUDA_ERROR_INVALID_VALUE;
	pthread_mutex_lock(&sim_mem_lock);
	r = sim_resv_covers(ptr, size) ? sim_map_remove(ptr, size) : CUDA_ERROR_INVALID_VALUE;
	pthread_mutex_unlock(&sim_mem_lock);
	return r;
}

SIM_EXPORT CUresult cuMemSetAccess(CUdeviceptr ptr, size_t size, const CUmemAccessDesc *desc, size_t count)
{
	CUresult r = sim_enter();
	int level[SIM_MAX_DEVICES], named = 0;

	if (r != CUDA_SUCCESS)
		return r;
	if (desc == NULL || count == 0 || size == 0)
		return CUDA_ERROR_INVALID_VALUE;
	/* Each device descriptor sets that device's level, a later one for the same device winning;
	 * devices not named keep theirs. Host access descriptors are accepted as given. */
	for (int d = 0; d < SIM_MAX_DEVICES; d++)
		level[d] = -1;
	for (size_t i = 0; i < count; i++) {
		int a;
		switch (desc[i].flags) {
		case CU_MEM_ACCESS_FLAGS_PROT_NONE: a = 0; break;
		case CU_MEM_ACCESS_FLAGS_PROT_READ: a = 1; break;
		case CU_MEM_ACCESS_FLAGS_PROT_READWRITE: a = 3; break;
		default: return CUDA_ERROR_INVALID_VALUE;
		}
		if (desc[i].location.type == CU_MEM_LOCATION_TYPE_DEVICE) {
			if (desc[i].location.id < 0 || desc[i].location.id >= sim_cfg.ndevices)
				return CUDA_ERROR_INVALID_DEVICE;
			level[desc[i].location.id] = a;
			named = 1;
		} else if (!host_location(desc[i].location.type)) {
			return CUDA_ERROR_INVALID_VALUE;
		}
	}
	if (!named)
		return CUDA_SUCCESS;
	pthread_mutex_lock(&sim_mem_lock);
	r = sim_resv_covers(ptr, size) ? sim_map_set_dev_access(ptr, size, level) : CUDA_ERROR_INVALID_VALUE;
	pthread_mutex_unlock(&sim_mem_lock);
	return r;
}

SIM_EXPORT CUresult cuMemGetAccess(unsigned long long *flags, const CUmemLocation *location, CUdeviceptr ptr)
{
	CUresult r = sim_enter();
	struct sim_map *m;

	if (r != CUDA_SUCCESS)
		return r;
	if (flags == NULL || location == NULL || location->type != CU_MEM_LOCATION_TYPE_DEVICE)
		return CUDA_ERROR_INVALID_VALUE;
	if (location->id < 0 || location->id >= sim_cfg.ndevices)
		return CUDA_ERROR_INVALID_DEVICE;
	pthread_mutex_lock(&sim_mem_lock);
	m = sim_map_find(ptr);
	if (m == NULL) {
		r = CUDA_ERROR_INVALID_VALUE;
	} else {
		int a = m->dev_access[location->id];
		*flags = a == 3 ? CU_MEM_ACCESS_FLAGS_PROT_READWRITE
			 : a == 1 ? CU_MEM_ACCESS_FLAGS_PROT_READ
				  : CU_MEM_ACCESS_FLAGS_PROT_NONE;
	}
	pthread_mutex_unlock(&sim_mem_lock);
	return r;
}

SIM_EXPORT CUresult cuMemRetainAllocationHandle(CUmemGenericAllocationHandle *handle, void *addr)
{
	CUresult r = sim_enter();
	struct sim_map *m;

	if (r != CUDA_SUCCESS)
		return r;
	if (handle == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	pthread_mutex_lock(&sim_mem_lock);
	m = sim_map_find((uint64_t)(uintptr_t)addr);
	/* cuMemAlloc's own backings are not handles the app may hold; a released handle whose memory
	 * is still mapped can be retained again. */
	if (m == NULL || !m->phys->from_create) {
		r = CUDA_ERROR_INVALID_VALUE;
	} else {
		m->phys->handle_refs++;
		*handle = (CUmemGenericAllocationHandle)(uintptr_t)m->phys;
	}
	pthread_mutex_unlock(&sim_mem_lock);
	return r;
}

SIM_EXPORT CUresult cuMemGetAllocationPropertiesFromHandle(CUmemAllocationProp *prop, CUmemGenericAllocationHandle h)
{
	CUresult r = sim_enter();
	struct sim_phys *p;

	if (r != CUDA_SUCCESS)
		return r;
	if (prop == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	pthread_mutex_lock(&sim_mem_lock);
	p = phys_of(h);
	if (p == NULL) {
		r = CUDA_ERROR_INVALID_VALUE;
	} else {
		memset(prop, 0, sizeof(*prop));
		prop->type = CU_MEM_ALLOCATION_TYPE_PINNED;
		prop->location.type = !p->host_located ? CU_MEM_LOCATION_TYPE_DEVICE :
				      p->numa >= 0 ? CU_MEM_LOCATION_TYPE_HOST_NUMA : CU_MEM_LOCATION_TYPE_HOST;
		prop->location.id = !p->host_located ? p->dev : p->numa >= 0 ? p->numa : 0;
	}
	pthread_mutex_unlock(&sim_mem_lock);
	return r;
}
