/* The device side of virtual memory: reserved address ranges and the device pages mapped into
 * them, created and released around a buffer's stable address. */
#include "config.h"

#include <string.h>

#include "interpose/internal.h"

CUresult mv_map_device(uint64_t va, uint64_t span, CUmemGenericAllocationHandle *out)
{
	CUmemAllocationProp prop = {0};
	CUmemGenericAllocationHandle h;
	CUresult r;
	/* The paged device's, whatever context the calling thread has: a page-in made for a launch or
	 * a copy on another device's context still lands where the buffer lives. */
	CUdevice dev = mv_dev()->device;

	prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
	prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
	prop.location.id = dev;
	/* So that a buffer can be exported to another process (ipc.c). */
	prop.requestedHandleTypes = CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR;
	r = mv_real.cuMemCreate(&h, span, &prop, 0);
	if (r != CUDA_SUCCESS)
		return r;
	r = mv_real.cuMemMap(va, span, 0, h, 0);
	if (r != CUDA_SUCCESS) {
		mv_real.cuMemRelease(h);
		return r;
	}
	r = mv_grant(va, span, 0);
	if (r != CUDA_SUCCESS) {
		mv_real.cuMemUnmap(va, span);
		mv_real.cuMemRelease(h);
		return r;
	}
	*out = h;
	return CUDA_SUCCESS;
}

void mv_unmap_device(uint64_t va, uint64_t span, CUmemGenericAllocationHandle h)
{
	mv_real.cuMemUnmap(va, span);
	mv_real.cuMemRelease(h);
}

CUresult mv_new_range(uint64_t span, CUdeviceptr *va, CUmemGenericAllocationHandle *dev, int may_host)
{
	CUresult r = may_host ? mv_make_room_or_host(span) : mv_make_room(span);

	if (r != CUDA_SUCCESS)
		return r;
	r = mv_real.cuMemAddressReserve(va, span, mv_dev()->granularity, 0, 0);
	if (r != CUDA_SUCCESS)
		goto err_reserve;
	r = mv_map_device(*va, span, dev);
	if (r != CUDA_SUCCESS)
		goto err_map;
	return CUDA_SUCCESS;
err_map:
	mv_real.cuMemAddressFree(*va, span);
err_reserve:
	mv_uncharge(span);
	return r;
}

CUresult mv_new_host_range(struct mv_buf *b)
{
	CUdeviceptr va;

	if (mv_real.cuMemAddressReserve(&va, b->span, mv_dev()->granularity, 0, 0) != CUDA_SUCCESS)
		return CUDA_ERROR_OUT_OF_MEMORY;
	b->va = va;
	b->host = mv_host_alloc(b->span);
	if (b->host != NULL)
		mv_net_map(b);
	if (b->host != NULL && b->netted)
		return CUDA_SUCCESS;
	if (b->host != NULL)
		mv_host_free(b->host);
	b->host = NULL;
	mv_real.cuMemAddressFree(va, b->span);
	return CUDA_ERROR_OUT_OF_MEMORY;
}

void mv_free_range(uint64_t va, uint64_t span, CUmemGenericAllocationHandle dev)
{
	mv_unmap_device(va, span, dev);
	mv_real.cuMemAddressFree(va, span);
	mv_uncharge(span);
}
