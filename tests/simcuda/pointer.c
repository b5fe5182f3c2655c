/* Pointer attributes: cuPointerGetAttribute and cuPointerGetAttributes, answered as the driver
 * documents them for cuMemAlloc and pool allocations, the app's own VMM reservations, pinned host
 * memory and addresses the driver does not know. */
#include "config.h"

#include <string.h>

#include "tests/simcuda/internal.h"

/* Bytes of each attribute's value; 0 for one cuPointerGetAttributes does not take. */
static size_t attr_size(CUpointer_attribute a)
{
	switch (a) {
	case CU_POINTER_ATTRIBUTE_CONTEXT:
	case CU_POINTER_ATTRIBUTE_DEVICE_POINTER:
	case CU_POINTER_ATTRIBUTE_HOST_POINTER:
	case CU_POINTER_ATTRIBUTE_BUFFER_ID:
	case CU_POINTER_ATTRIBUTE_RANGE_START_ADDR:
	case CU_POINTER_ATTRIBUTE_RANGE_SIZE:
	case CU_POINTER_ATTRIBUTE_ALLOWED_HANDLE_TYPES:
	case CU_POINTER_ATTRIBUTE_MEMPOOL_HANDLE:
		return 8;
	case CU_POINTER_ATTRIBUTE_MEMORY_TYPE:
	case CU_POINTER_ATTRIBUTE_SYNC_MEMOPS:
	case CU_POINTER_ATTRIBUTE_IS_MANAGED:
	case CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL:
	case CU_POINTER_ATTRIBUTE_IS_LEGACY_CUDA_IPC_CAPABLE:
	case CU_POINTER_ATTRIBUTE_MAPPED:
	case CU_POINTER_ATTRIBUTE_IS_HW_DECOMPRESS_CAPABLE:
		return 4;
	default:
		return 0;
	}
}

#define PUT(type, v) \
	do { \
		type v_ = (v); \
		memcpy(data, &v_, sizeof(v_)); \
		return CUDA_SUCCESS; \
	} while (0)

/* The attributes that hold for any memory the driver knows. */
static CUresult answer_common(void *data, CUpointer_attribute a, const struct sim_ptr *p)
{
	switch (a) {
	case CU_POINTER_ATTRIBUTE_CONTEXT:
		PUT(CUcontext, (CUcontext)p->ctx);
	case CU_POINTER_ATTRIBUTE_SYNC_MEMOPS:
	case CU_POINTER_ATTRIBUTE_IS_MANAGED:
	case CU_POINTER_ATTRIBUTE_IS_HW_DECOMPRESS_CAPABLE:
	/* No GPUDirect RDMA peer on a simulated device. */
	case CU_POINTER_ATTRIBUTE_IS_GPU_DIRECT_RDMA_CAPABLE:
		PUT(int, 0);
	case CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL:
		PUT(int, p->dev);
	case CU_POINTER_ATTRIBUTE_BUFFER_ID:
		PUT(unsigned long long, p->id);
	case CU_POINTER_ATTRIBUTE_RANGE_START_ADDR:
		PUT(CUdeviceptr, p->start);
	case CU_POINTER_ATTRIBUTE_RANGE_SIZE:
		PUT(size_t, p->size);
	case CU_POINTER_ATTRIBUTE_MAPPED:
		PUT(int, p->mapped);
	/* Only the app's VMM allocations are exported through shareable handles, and this driver
	 * records none of their handle types. */
	case CU_POINTER_ATTRIBUTE_ALLOWED_HANDLE_TYPES:
		PUT(unsigned long long, 0);
	case CU_POINTER_ATTRIBUTE_MEMPOOL_HANDLE:
		PUT(CUmemoryPool, p->pool ? sim_default_pool(p->dev) : NULL);
	default:
		break;
	}
	if (!p->mapped)
		return CUDA_ERROR_INVALID_VALUE;
	switch (a) {
	case CU_POINTER_ATTRIBUTE_ACCESS_FLAGS:
		PUT(unsigned int, (unsigned int)p->access);
	case CU_POINTER_ATTRIBUTE_MAPPING_BASE_ADDR:
		PUT(void *, (void *)(uintptr_t)p->map_va);
	case CU_POINTER_ATTRIBUTE_MAPPING_SIZE:
		PUT(size_t, p->map_size);
	case CU_POINTER_ATTRIBUTE_MEMORY_BLOCK_ID:
		PUT(unsigned long long, p->block_id);
	default:
		return CUDA_ERROR_INVALID_VALUE;
	}
}

static CUresult answer(void *data, CUpointer_attribute a, uint64_t ptr, const struct sim_ptr *p)
{
	int host = p->kind == SIM_PTR_HOST || (p->mapped && p->host_located);

	switch (a) {
	case CU_POINTER_ATTRIBUTE_MEMORY_TYPE:
		PUT(unsigned int, host ? CU_MEMORYTYPE_HOST : CU_MEMORYTYPE_DEVICE);
	case CU_POINTER_ATTRIBUTE_DEVICE_POINTER:
		/* Unified addressing: the same address, where something backs it. */
		if (!p->mapped)
			return CUDA_ERROR_INVALID_VALUE;
		PUT(CUdeviceptr, ptr);
	case CU_POINTER_ATTRIBUTE_HOST_POINTER:
		if (p->kind != SIM_PTR_HOST)
			return CUDA_ERROR_INVALID_VALUE;
		PUT(void *, (void *)(uintptr_t)ptr);
	case CU_POINTER_ATTRIBUTE_P2P_TOKENS:
		/* Only cuMemAlloc memory has tokens, and there is no nv-p2p interface here to use them. */
		return p->kind == SIM_PTR_ALLOC ? CUDA_ERROR_NOT_SUPPORTED : CUDA_ERROR_INVALID_VALUE;
	case CU_POINTER_ATTRIBUTE_IS_LEGACY_CUDA_IPC_CAPABLE:
		/* cuIpcGetMemHandle takes cuMemAlloc memory; pool memory is shared through its pool. */
		PUT(int, p->kind == SIM_PTR_ALLOC && !p->pool);
	default:
		return answer_common(data, a, p);
	}
}

SIM_EXPORT CUresult cuPointerGetAttribute(void *data, CUpointer_attribute attribute, CUdeviceptr ptr)
{
	struct sim_ptr p;
	CUresult r = sim_enter();

	if (r != CUDA_SUCCESS)
		return r;
	if (data == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	if (!sim_ptr_describe(ptr, &p))
		return CUDA_ERROR_INVALID_VALUE;
	return answer(data, attribute, ptr, &p);
}

/* Unlike the single query, an address the driver does not know, or an attribute that does not apply
 * to it, gets a zero value and success; an attribute it does not take is an error. */
SIM_EXPORT CUresult cuPointerGetAttributes(unsigned int n, CUpointer_attribute *attributes, void **data,
					   CUdeviceptr ptr)
{
	struct sim_ptr p;
	int known;
	CUresult r = sim_enter();

	if (r != CUDA_SUCCESS)
		return r;
	if (n == 0 || attributes == NULL || data == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	for (unsigned i = 0; i < n; i++)
		if (attr_size(attributes[i]) == 0 || data[i] == NULL)
			return CUDA_ERROR_INVALID_VALUE;
	known = sim_ptr_describe(ptr, &p);
	for (unsigned i = 0; i < n; i++)
		if (!known || answer(data[i], attributes[i], ptr, &p) != CUDA_SUCCESS)
			memset(data[i], 0, attr_size(attributes[i]));
	return CUDA_SUCCESS;
}
