/* Calls that hand a buffer to the driver for later use the scanner cannot see (texture and surface
 * objects, texture references, dma-buf exports, multicast bindings): the buffer is brought in and
 * pinned for good (through mv_submit_pinned). Also the one launch the library refuses. */
#include "config.h"

#include "interpose/internal.h"

/* The first byte a resource names and the first of its last row (or its last byte): the driver
 * accepts a resource only inside one allocation, so either names it. Arrays are the driver's. */
static size_t resource_words(const CUDA_RESOURCE_DESC *d, uint64_t *words)
{
	size_t n = 0;
	uint64_t p, bytes;

	if (d->resType == CU_RESOURCE_TYPE_LINEAR) {
		p = d->res.linear.devPtr;
		bytes = d->res.linear.sizeInBytes;
	} else if (d->resType == CU_RESOURCE_TYPE_PITCH2D && d->res.pitch2D.height > 0) {
		p = d->res.pitch2D.devPtr;
		bytes = (uint64_t)(d->res.pitch2D.height - 1) * d->res.pitch2D.pitchInBytes + 1;
	} else {
		return 0;
	}
	if (p != 0)
		words[n++] = p;
	if (p != 0 && bytes > 1 && p + bytes - 1 > p)
		words[n++] = p + bytes - 1;
	return n;
}

/* One binding call: which entry point, and its arguments as the app gave them. */
enum bind_call { BC_TEX, BC_SURF, BC_TEXREF, BC_TEXREF2D, BC_DMABUF, BC_MULTICAST };

struct bind_args {
	enum bind_call call;
	void *out;
	const void *desc;
	const void *desc2;
	const void *desc3;
	CUtexref ref;
	CUdeviceptr dptr;
	size_t size;
	size_t offset;
	unsigned long long flags;
	CUmemRangeHandleType type;
	CUmemGenericAllocationHandle mc;
};

static CUresult do_bind(void *arg)
{
	const struct bind_args *a = arg;

	switch (a->call) {
	case BC_TEX:
		return mv_real.cuTexObjectCreate(a->out, a->desc, a->desc2, a->desc3);
	case BC_SURF:
		return mv_real.cuSurfObjectCreate(a->out, a->desc);
	case BC_TEXREF:
		return mv_real.cuTexRefSetAddress_v2(a->out, a->ref, a->dptr, a->size);
	case BC_TEXREF2D:
		return mv_real.cuTexRefSetAddress2D_v3(a->ref, a->desc, a->dptr, a->size);
	case BC_DMABUF:
		return mv_real.cuMemGetHandleForAddressRange(a->out, a->dptr, a->size, a->type, a->flags);
	default:
		return mv_real.cuMulticastBindAddr(a->mc, a->offset, a->dptr, a->size, a->flags);
	}
}

/* Pins what the call names, then makes it: the buffer must be resident while the driver looks at
 * it. A call the driver refuses gives its pins back (mv_submit_pinned), so the buffer can be paged
 * again. */
static CUresult bind_call(struct bind_args *a)
{
	uint64_t words[2];
	size_t n = 0;

	if (mv_init() != 0)
		return CUDA_ERROR_NOT_INITIALIZED;
	if (a->call == BC_TEX || a->call == BC_SURF) {
		if (a->desc == NULL)
			return do_bind(a);
		n = resource_words(a->desc, words);
	} else if (a->dptr != 0) {
		words[n++] = a->dptr;
		if (a->size > 1 && a->dptr + a->size - 1 > a->dptr && a->call != BC_TEXREF2D)
			words[n++] = a->dptr + a->size - 1;
	}
	return mv_submit_pinned(words, n, do_bind, a);
}

#define BIND_CALL(...)                             \
	{                                          \
		struct bind_args a = {__VA_ARGS__}; \
		return bind_call(&a);              \
	}

MV_EXPORT CUresult cuTexObjectCreate(CUtexObject *out, const CUDA_RESOURCE_DESC *res, const CUDA_TEXTURE_DESC *tex,
				     const CUDA_RESOURCE_VIEW_DESC *view)
BIND_CALL(.call = BC_TEX, .out = out, .desc = res, .desc2 = tex, .desc3 = view)
MV_EXPORT CUresult cuSurfObjectCreate(CUsurfObject *out, const CUDA_RESOURCE_DESC *res)
BIND_CALL(.call = BC_SURF, .out = out, .desc = res)
MV_EXPORT CUresult cuTexRefSetAddress_v2(size_t *offset, CUtexref ref, CUdeviceptr dptr, size_t bytes)
BIND_CALL(.call = BC_TEXREF, .out = offset, .ref = ref, .dptr = dptr, .size = bytes)
MV_EXPORT CUresult cuTexRefSetAddress2D_v3(CUtexref ref, const CUDA_ARRAY_DESCRIPTOR *desc, CUdeviceptr dptr,
					   size_t pitch)
BIND_CALL(.call = BC_TEXREF2D, .ref = ref, .desc = desc, .dptr = dptr, .size = pitch)
MV_EXPORT CUresult cuMemGetHandleForAddressRange(void *handle, CUdeviceptr dptr, size_t size,
						 CUmemRangeHandleType type, unsigned long long flags)
BIND_CALL(.call = BC_DMABUF, .out = handle, .dptr = dptr, .size = size, .type = type, .flags = flags)
MV_EXPORT CUresult cuMulticastBindAddr(CUmemGenericAllocationHandle mc, size_t offset, CUdeviceptr dptr, size_t size,
				       unsigned long long flags)
BIND_CALL(.call = BC_MULTICAST, .mc = mc, .offset = offset, .dptr = dptr, .size = size, .flags = flags)

/* ---- the deprecated multi-device launch ---- */

static __thread uint64_t coop_words[MV_MAX_SCAN_WORDS];

/* Its launches run on several devices' streams at once, which the library does not order; one that
 * names a memvirt buffer is refused rather than run against a buffer that may be paged out. */
MV_EXPORT CUresult cuLaunchCooperativeKernelMultiDevice(CUDA_LAUNCH_PARAMS *list, unsigned int ndev,
							unsigned int flags)
{
	if (mv_init() != 0)
		return CUDA_ERROR_NOT_INITIALIZED;
	for (unsigned i = 0; list != NULL && i < ndev; i++) {
		size_t n = mv_kernel_words(list[i].function, list[i].kernelParams, NULL, coop_words);
		for (size_t j = 0; j < n; j++)
			if (mv_alloc_describe(coop_words[j], NULL)) {
				mv_log(MV_LOG_WARN,
				       "cuLaunchCooperativeKernelMultiDevice: launch %u names buffer %#llx: "
				       "not supported on memvirt's memory (launch each device with cuLaunchCooperativeKernel)",
				       i, (unsigned long long)coop_words[j]);
				return CUDA_ERROR_NOT_SUPPORTED;
			}
	}
	return mv_real.cuLaunchCooperativeKernelMultiDevice(list, ndev, flags);
}
