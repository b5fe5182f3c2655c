/* Texture and surface objects over linear and pitched device memory: created with the range they
 * name checked as a kernel's access would be, destroyed once. Arrays are not modelled. */
#include "config.h"

#include <stdatomic.h>

#include "tests/simcuda/internal.h"

/* Handles given out: 1, 2, ... Whether each of the first ones is live. */
#define TEX_MAX 4096
static atomic_ullong next_handle;
static atomic_uchar live[TEX_MAX];

static uint64_t elem_bytes(CUarray_format f, unsigned channels)
{
	uint64_t b;

	switch (f) {
	case CU_AD_FORMAT_UNSIGNED_INT8:
	case CU_AD_FORMAT_SIGNED_INT8:
		b = 1;
		break;
	case CU_AD_FORMAT_UNSIGNED_INT16:
	case CU_AD_FORMAT_SIGNED_INT16:
	case CU_AD_FORMAT_HALF:
		b = 2;
		break;
	case CU_AD_FORMAT_UNSIGNED_INT32:
	case CU_AD_FORMAT_SIGNED_INT32:
	case CU_AD_FORMAT_FLOAT:
		b = 4;
		break;
	default:
		return 0;
	}
	return channels == 1 || channels == 2 || channels == 4 ? b * channels : 0;
}

/* The range a resource names, checked against the mappings: it must be readable (writable for a
 * surface) device memory throughout. */
static CUresult check_resource(const CUDA_RESOURCE_DESC *d, int access)
{
	uint64_t p, bytes, e;

	if (d == NULL || d->flags != 0)
		return CUDA_ERROR_INVALID_VALUE;
	if (d->resType == CU_RESOURCE_TYPE_LINEAR) {
		p = d->res.linear.devPtr;
		bytes = d->res.linear.sizeInBytes;
		e = elem_bytes(d->res.linear.format, d->res.linear.numChannels);
	} else if (d->resType == CU_RESOURCE_TYPE_PITCH2D) {
		e = elem_bytes(d->res.pitch2D.format, d->res.pitch2D.numChannels);
		p = d->res.pitch2D.devPtr;
		if (d->res.pitch2D.width == 0 || d->res.pitch2D.height == 0 ||
		    d->res.pitch2D.width * e > d->res.pitch2D.pitchInBytes)
			return CUDA_ERROR_INVALID_VALUE;
		bytes = (uint64_t)(d->res.pitch2D.height - 1) * d->res.pitch2D.pitchInBytes + d->res.pitch2D.width * e;
	} else {
		return CUDA_ERROR_NOT_SUPPORTED;
	}
	if (e == 0 || p == 0 || bytes == 0 || !sim_is_device_addr(p) || sim_mem_check(p, bytes, access, 0) != 0)
		return CUDA_ERROR_INVALID_VALUE;
	return CUDA_SUCCESS;
}

static CUresult create(unsigned long long *out, const CUDA_RESOURCE_DESC *d, int access)
{
	unsigned long long h;
	CUresult r = sim_enter_ctx(NULL);

	if (r != CUDA_SUCCESS)
		return r;
	if (out == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	r = check_resource(d, access);
	if (r != CUDA_SUCCESS)
		return r;
	h = atomic_fetch_add(&next_handle, 1) + 1;
	if (h >= TEX_MAX)
		return CUDA_ERROR_OUT_OF_MEMORY;
	atomic_store(&live[h], 1);
	*out = h;
	return CUDA_SUCCESS;
}

static CUresult destroy(unsigned long long h)
{
	CUresult r = sim_enter();

	if (r != CUDA_SUCCESS)
		return r;
	if (h == 0 || h >= TEX_MAX || atomic_exchange(&live[h], 0) == 0)
		return CUDA_ERROR_INVALID_VALUE;
	return CUDA_SUCCESS;
}

SIM_EXPORT CUresult cuTexObjectCreate(CUtexObject *out, const CUDA_RESOURCE_DESC *res, const CUDA_TEXTURE_DESC *tex,
				      const CUDA_RESOURCE_VIEW_DESC *view)
{
	if (tex == NULL || view != NULL)
		return CUDA_ERROR_INVALID_VALUE;
	return create(out, res, 1);
}

SIM_EXPORT CUresult cuTexObjectDestroy(CUtexObject h)
{
	return destroy(h);
}

SIM_EXPORT CUresult cuSurfObjectCreate(CUsurfObject *out, const CUDA_RESOURCE_DESC *res)
{
	return create(out, res, 3);
}

SIM_EXPORT CUresult cuSurfObjectDestroy(CUsurfObject h)
{
	return destroy(h);
}
