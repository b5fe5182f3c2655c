/* Pointer queries on memvirt's buffers answer for the allocation the app made, as a real driver
 * answers for cuMemAlloc memory, whether the buffer is resident, paged out or carved from a slab
 * chunk: never for the device range, chunk or handle memvirt serves it from. Other pointers go to
 * the driver. */
#include "config.h"

#include <string.h>

#include "interpose/internal.h"

/* memvirt's buffer IDs have the top bit set, so none equals one the driver gives its own
 * allocations. */
#define MV_BUFFER_ID_TAG (1ull << 63)

/* Bytes of each attribute's value, by attribute; 0 for one cuPointerGetAttributes does not take. */
static const unsigned char attr_sizes[] = {
	[CU_POINTER_ATTRIBUTE_CONTEXT] = 8,          [CU_POINTER_ATTRIBUTE_MEMORY_TYPE] = 4,
	[CU_POINTER_ATTRIBUTE_DEVICE_POINTER] = 8,   [CU_POINTER_ATTRIBUTE_HOST_POINTER] = 8,
	[CU_POINTER_ATTRIBUTE_SYNC_MEMOPS] = 4,      [CU_POINTER_ATTRIBUTE_BUFFER_ID] = 8,
	[CU_POINTER_ATTRIBUTE_IS_MANAGED] = 4,       [CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL] = 4,
	[CU_POINTER_ATTRIBUTE_IS_LEGACY_CUDA_IPC_CAPABLE] = 4,
	[CU_POINTER_ATTRIBUTE_RANGE_START_ADDR] = 8, [CU_POINTER_ATTRIBUTE_RANGE_SIZE] = 8,
	[CU_POINTER_ATTRIBUTE_MAPPED] = 4,           [CU_POINTER_ATTRIBUTE_ALLOWED_HANDLE_TYPES] = 8,
	[CU_POINTER_ATTRIBUTE_MEMPOOL_HANDLE] = 8,   [CU_POINTER_ATTRIBUTE_IS_HW_DECOMPRESS_CAPABLE] = 4,
};

static size_t attr_size(CUpointer_attribute a)
{
	return (unsigned)a < sizeof(attr_sizes) ? attr_sizes[a] : 0;
}

#define PUT(type, v) \
	do { \
		type v_ = (v); \
		memcpy(data, &v_, sizeof(v_)); \
		return CUDA_SUCCESS; \
	} while (0)

/* One attribute of the buffer at ptr, described by b. */
static CUresult answer(void *data, CUpointer_attribute a, CUdeviceptr ptr, const struct mv_alloc_info *b)
{
	switch (a) {
	case CU_POINTER_ATTRIBUTE_CONTEXT:
		PUT(CUcontext, mv_dev()->ctx);
	case CU_POINTER_ATTRIBUTE_MEMORY_TYPE:
		PUT(unsigned int, CU_MEMORYTYPE_DEVICE);
	/* The address is the buffer's for its whole life, wherever its bytes are. */
	case CU_POINTER_ATTRIBUTE_DEVICE_POINTER:
		PUT(CUdeviceptr, ptr);
	case CU_POINTER_ATTRIBUTE_BUFFER_ID:
	case CU_POINTER_ATTRIBUTE_MEMORY_BLOCK_ID:
		PUT(unsigned long long, MV_BUFFER_ID_TAG | b->id);
	case CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL:
		PUT(int, (int)mv_dev()->device);
	case CU_POINTER_ATTRIBUTE_IS_LEGACY_CUDA_IPC_CAPABLE:
	case CU_POINTER_ATTRIBUTE_MAPPED:
		PUT(int, 1);
	/* Its pages move, so nothing outside the process may hold on to them: no GPUDirect RDMA, no
	 * shareable handles. */
	case CU_POINTER_ATTRIBUTE_SYNC_MEMOPS:
	case CU_POINTER_ATTRIBUTE_IS_MANAGED:
	case CU_POINTER_ATTRIBUTE_IS_GPU_DIRECT_RDMA_CAPABLE:
	case CU_POINTER_ATTRIBUTE_IS_HW_DECOMPRESS_CAPABLE:
		PUT(int, 0);
	case CU_POINTER_ATTRIBUTE_ALLOWED_HANDLE_TYPES:
		PUT(unsigned long long, 0);
	case CU_POINTER_ATTRIBUTE_RANGE_START_ADDR:
		PUT(CUdeviceptr, b->va);
	case CU_POINTER_ATTRIBUTE_MAPPING_BASE_ADDR:
		PUT(void *, (void *)(uintptr_t)b->va);
	case CU_POINTER_ATTRIBUTE_RANGE_SIZE:
	case CU_POINTER_ATTRIBUTE_MAPPING_SIZE:
		PUT(size_t, b->size);
	case CU_POINTER_ATTRIBUTE_ACCESS_FLAGS:
		PUT(unsigned int, CU_POINTER_ATTRIBUTE_ACCESS_FLAG_READWRITE);
	/* memvirt serves stream-ordered allocations itself: no pool holds them. */
	case CU_POINTER_ATTRIBUTE_MEMPOOL_HANDLE:
		PUT(CUmemoryPool, NULL);
	case CU_POINTER_ATTRIBUTE_P2P_TOKENS:
		mv_log(MV_LOG_WARN, "P2P tokens refused for %#llx: memvirt moves its pages",
		       (unsigned long long)ptr);
		return CUDA_ERROR_NOT_SUPPORTED;
	default:
		/* Device memory has no host address; an attribute not in the list is invalid. */
		return CUDA_ERROR_INVALID_VALUE;
	}
}

MV_EXPORT CUresult cuPointerGetAttribute(void *data, CUpointer_attribute attribute, CUdeviceptr ptr)
{
	struct mv_alloc_info b;

	if (data == NULL || !mv_alloc_describe(ptr, &b))
		return mv_real.cuPointerGetAttribute(data, attribute, ptr);
	return answer(data, attribute, ptr, &b);
}

/* As the driver does: an attribute that does not apply gets a zero value, one not taken is an
 * error. */
MV_EXPORT CUresult cuPointerGetAttributes(unsigned int n, CUpointer_attribute *attributes, void **data,
					  CUdeviceptr ptr)
{
	struct mv_alloc_info b;

	if (n == 0 || attributes == NULL || data == NULL || !mv_alloc_describe(ptr, &b))
		return mv_real.cuPointerGetAttributes(n, attributes, data, ptr);
	for (unsigned i = 0; i < n; i++)
		if (attr_size(attributes[i]) == 0 || data[i] == NULL)
			return CUDA_ERROR_INVALID_VALUE;
	for (unsigned i = 0; i < n; i++)
		if (answer(data[i], attributes[i], ptr, &b) != CUDA_SUCCESS)
			memset(data[i], 0, attr_size(attributes[i]));
	return CUDA_SUCCESS;
}

/* memvirt's handle for a buffer covers its device range, or a whole slab chunk shared with other
 * allocations, and goes away when the buffer is paged out: the app gets what a real driver says for
 * cuMemAlloc memory. */
MV_EXPORT CUresult cuMemRetainAllocationHandle(CUmemGenericAllocationHandle *handle, void *addr)
{
	if (mv_alloc_describe((uint64_t)(uintptr_t)addr, NULL)) {
		mv_log(MV_LOG_DEBUG, "cuMemRetainAllocationHandle(%p): not a cuMemCreate mapping", addr);
		return CUDA_ERROR_INVALID_VALUE;
	}
	return mv_real.cuMemRetainAllocationHandle(handle, addr);
}

/* The app's device has read-write access to its buffer whether or not its pages are on the device
 * right now. */
MV_EXPORT CUresult cuMemGetAccess(unsigned long long *flags, const CUmemLocation *location, CUdeviceptr ptr)
{
	if (flags == NULL || location == NULL || location->type != CU_MEM_LOCATION_TYPE_DEVICE ||
	    !mv_alloc_describe(ptr, NULL))
		return mv_real.cuMemGetAccess(flags, location, ptr);
	/* Wherever its pages are now: memvirt's mappings all grant the devices mv_granted names. */
	*flags = mv_granted(location) ? CU_MEM_ACCESS_FLAGS_PROT_READWRITE : CU_MEM_ACCESS_FLAGS_PROT_NONE;
	return CUDA_SUCCESS;
}
