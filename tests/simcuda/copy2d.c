/* Pitched (2D and 3D) copies and memsets, peer copies and batches of copies. Each is checked as a
 * whole before anything is queued, then queued as one plain copy or memset per row, so every row's
 * range is checked again when it runs (a sticky illegal address). */
#include "config.h"

#include "tests/simcuda/internal.h"

/* One side of a pitched copy: where its first row starts, and the strides to the next row and the
 * next plane. */
struct side {
	CUmemorytype type;
	uint64_t base;
	size_t pitch, plane;
};

/* A side from its fields; x and y (and z) are already known to fit the pitch and height. */
static CUresult side_of(struct side *sd, CUmemorytype type, const void *host, CUdeviceptr dev, size_t x, size_t y,
			size_t z, size_t pitch, size_t height)
{
	sd->type = type;
	sd->pitch = pitch;
	sd->plane = pitch * height;
	switch (type) {
	case CU_MEMORYTYPE_HOST:
		sd->base = (uint64_t)(uintptr_t)host;
		break;
	case CU_MEMORYTYPE_DEVICE:
	case CU_MEMORYTYPE_UNIFIED:
		sd->base = dev;
		break;
	case CU_MEMORYTYPE_ARRAY:
		return CUDA_ERROR_NOT_SUPPORTED; /* no CUDA arrays here */
	default:
		return CUDA_ERROR_INVALID_VALUE;
	}
	if (sd->base == 0)
		return CUDA_ERROR_INVALID_VALUE;
	sd->base += z * sd->plane + y * pitch + x;
	return CUDA_SUCCESS;
}

/* Whether a row at addr is on the device side. */
static int on_device(const struct side *sd, uint64_t addr)
{
	return sd->type == CU_MEMORYTYPE_DEVICE || (sd->type == CU_MEMORYTYPE_UNIFIED && sim_is_device_addr(addr));
}

static enum sim_copy_dir dir_of(int dst_dev, int src_dev)
{
	return dst_dev && src_dev ? SIM_COPY_D2D : dst_dev ? SIM_COPY_H2D : src_dev ? SIM_COPY_D2H : SIM_COPY_H2H;
}

/* Checks every row (s NULL) or queues every row on s. */
static CUresult rows(struct sim_stream *s, const struct side *d, const struct side *sr, size_t width, size_t height,
		     size_t depth)
{
	for (size_t z = 0; z < depth; z++) {
		for (size_t y = 0; y < height; y++) {
			uint64_t da = d->base + z * d->plane + y * d->pitch, sa = sr->base + z * sr->plane + y * sr->pitch;
			enum sim_copy_dir dir = dir_of(on_device(d, da), on_device(sr, sa));
			CUresult r = s == NULL ? sim_copy_check(da, sa, width, dir) : sim_copy_enqueue(s, da, sa, width, dir);
			if (r != CUDA_SUCCESS)
				return r;
		}
	}
	return CUDA_SUCCESS;
}

/* Whether a side is host memory that is not pinned: the whole span its rows cover. */
static int pageable(const struct side *sd, size_t width, size_t height, size_t depth)
{
	uint64_t span = (depth - 1) * sd->plane + (height - 1) * sd->pitch + width;

	return !on_device(sd, sd->base) && sim_mem_check(sd->base, span, 0, 1) != 0;
}

static CUresult pitched(const struct side *d, const struct side *sr, size_t width, size_t height, size_t depth,
			CUstream h, int per_thread, int sync)
{
	struct sim_stream *s;
	CUresult r = sim_enter_stream(h, per_thread, &s);

	if (r != CUDA_SUCCESS)
		return r;
	if (s->capture != NULL)
		return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
	if (width == 0 || height == 0 || depth == 0)
		return CUDA_SUCCESS;
	r = rows(NULL, d, sr, width, height, depth);
	if (r != CUDA_SUCCESS)
		return r;
	if (sim_inject_copy_failure(dir_of(on_device(d, d->base), on_device(sr, sr->base))))
		return CUDA_ERROR_UNKNOWN;
	r = rows(s, d, sr, width, height, depth);
	if (r != CUDA_SUCCESS)
		return r;
	/* With pageable host memory on either side an asynchronous copy returns once it has completed:
	 * the real driver stages a pageable source before returning (the caller may reuse it at once,
	 * as ffmpeg's hwupload does) and completes a copy into pageable memory before returning. */
	if (pageable(d, width, height, depth) || pageable(sr, width, height, depth))
		sync = 1;
	return sim_stream_finish(s, sync);
}

/* A row must fit its pitch, as the driver requires of any side that is not an array. */
static int fits(CUmemorytype type, size_t x, size_t width, size_t pitch)
{
	return type == CU_MEMORYTYPE_ARRAY || (width <= pitch && x <= pitch - width);
}

static CUresult copy2d(const CUDA_MEMCPY2D *p, CUstream h, int per_thread, int sync)
{
	struct side d, s;
	CUresult r;

	if (p == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	if (p->Height > 1 && (!fits(p->srcMemoryType, p->srcXInBytes, p->WidthInBytes, p->srcPitch) ||
			      !fits(p->dstMemoryType, p->dstXInBytes, p->WidthInBytes, p->dstPitch)))
		return CUDA_ERROR_INVALID_VALUE;
	r = side_of(&s, p->srcMemoryType, p->srcHost, p->srcDevice, p->srcXInBytes, p->srcY, 0, p->srcPitch, 0);
	if (r == CUDA_SUCCESS)
		r = side_of(&d, p->dstMemoryType, p->dstHost, p->dstDevice, p->dstXInBytes, p->dstY, 0, p->dstPitch, 0);
	if (r != CUDA_SUCCESS)
		return r;
	return pitched(&d, &s, p->WidthInBytes, p->Height, 1, h, per_thread, sync);
}

static CUresult copy3d(const CUDA_MEMCPY3D *p, CUstream h, int per_thread, int sync)
{
	struct side d, s;
	CUresult r;

	if (p == NULL || p->reserved0 != NULL || p->reserved1 != NULL || p->srcLOD != 0 || p->dstLOD != 0)
		return CUDA_ERROR_INVALID_VALUE;
	if ((p->Height > 1 || p->Depth > 1) &&
	    (!fits(p->srcMemoryType, p->srcXInBytes, p->WidthInBytes, p->srcPitch) ||
	     !fits(p->dstMemoryType, p->dstXInBytes, p->WidthInBytes, p->dstPitch)))
		return CUDA_ERROR_INVALID_VALUE;
	/* Planes after the first start a height apart: the rows copied must fit in one. */
	if (p->Depth > 1 && (p->srcY + p->Height > p->srcHeight || p->dstY + p->Height > p->dstHeight))
		return CUDA_ERROR_INVALID_VALUE;
	r = side_of(&s, p->srcMemoryType, p->srcHost, p->srcDevice, p->srcXInBytes, p->srcY, p->srcZ, p->srcPitch,
		    p->srcHeight);
	if (r == CUDA_SUCCESS)
		r = side_of(&d, p->dstMemoryType, p->dstHost, p->dstDevice, p->dstXInBytes, p->dstY, p->dstZ, p->dstPitch,
			    p->dstHeight);
	if (r != CUDA_SUCCESS)
		return r;
	return pitched(&d, &s, p->WidthInBytes, p->Height, p->Depth, h, per_thread, sync);
}

SIM_EXPORT CUresult cuMemcpy2D_v2(const CUDA_MEMCPY2D *p)
{
	return copy2d(p, NULL, 0, 1);
}
SIM_EXPORT CUresult cuMemcpy2D_v2_ptds(const CUDA_MEMCPY2D *p)
{
	return copy2d(p, NULL, 1, 1);
}
SIM_EXPORT CUresult cuMemcpy2DUnaligned_v2(const CUDA_MEMCPY2D *p)
{
	return copy2d(p, NULL, 0, 1);
}
SIM_EXPORT CUresult cuMemcpy2DUnaligned_v2_ptds(const CUDA_MEMCPY2D *p)
{
	return copy2d(p, NULL, 1, 1);
}
SIM_EXPORT CUresult cuMemcpy2DAsync_v2(const CUDA_MEMCPY2D *p, CUstream h)
{
	return copy2d(p, h, 0, 0);
}
SIM_EXPORT CUresult cuMemcpy2DAsync_v2_ptsz(const CUDA_MEMCPY2D *p, CUstream h)
{
	return copy2d(p, h, 1, 0);
}
SIM_EXPORT CUresult cuMemcpy3D_v2(const CUDA_MEMCPY3D *p)
{
	return copy3d(p, NULL, 0, 1);
}
SIM_EXPORT CUresult cuMemcpy3D_v2_ptds(const CUDA_MEMCPY3D *p)
{
	return copy3d(p, NULL, 1, 1);
}
SIM_EXPORT CUresult cuMemcpy3DAsync_v2(const CUDA_MEMCPY3D *p, CUstream h)
{
	return copy3d(p, h, 0, 0);
}
SIM_EXPORT CUresult cuMemcpy3DAsync_v2_ptsz(const CUDA_MEMCPY3D *p, CUstream h)
{
	return copy3d(p, h, 1, 0);
}

/* ---- peer copies: one address space, so a plain copy; between devices it costs the peer link ---- */

static CUresult peer(CUdeviceptr dst, CUcontext dctx, CUdeviceptr src, CUcontext sctx, size_t n, CUstream h,
		     int per_thread, int sync)
{
	const struct sim_ctx *dc = (const struct sim_ctx *)dctx, *sc = (const struct sim_ctx *)sctx;
	struct side d = {CU_MEMORYTYPE_DEVICE, dst, n, 0}, s = {CU_MEMORYTYPE_DEVICE, src, n, 0};

	if (dc == NULL || sc == NULL || dc->magic != SIM_MAGIC_CTX || sc->magic != SIM_MAGIC_CTX)
		return CUDA_ERROR_INVALID_CONTEXT;
	if (n > 0 && (dst == 0 || src == 0))
		return CUDA_ERROR_INVALID_VALUE;
	return pitched(&d, &s, n, 1, 1, h, per_thread, sync);
}

SIM_EXPORT CUresult cuMemcpyPeer(CUdeviceptr dst, CUcontext dctx, CUdeviceptr src, CUcontext sctx, size_t n)
{
	return peer(dst, dctx, src, sctx, n, NULL, 0, 1);
}
SIM_EXPORT CUresult cuMemcpyPeer_ptds(CUdeviceptr dst, CUcontext dctx, CUdeviceptr src, CUcontext sctx, size_t n)
{
	return peer(dst, dctx, src, sctx, n, NULL, 1, 1);
}
SIM_EXPORT CUresult cuMemcpyPeerAsync(CUdeviceptr dst, CUcontext dctx, CUdeviceptr src, CUcontext sctx, size_t n,
				      CUstream h)
{
	return peer(dst, dctx, src, sctx, n, h, 0, 0);
}
SIM_EXPORT CUresult cuMemcpyPeerAsync_ptsz(CUdeviceptr dst, CUcontext dctx, CUdeviceptr src, CUcontext sctx,
					   size_t n, CUstream h)
{
	return peer(dst, dctx, src, sctx, n, h, 1, 0);
}

/* ---- batches of copies ---- */

/* The first version names the copy that was refused in *fail (SIZE_MAX when no one copy was). */
static CUresult batch_check(CUdeviceptr *dsts, CUdeviceptr *srcs, size_t *sizes, size_t count,
			    const CUmemcpyAttributes *attrs, const size_t *idx, size_t nattrs, size_t *fail)
{
	if (fail != NULL)
		*fail = SIZE_MAX;
	if (count == 0 || dsts == NULL || srcs == NULL || sizes == NULL || attrs == NULL || idx == NULL ||
	    nattrs == 0 || nattrs > count || idx[0] != 0)
		return CUDA_ERROR_INVALID_VALUE;
	for (size_t i = 0; i < nattrs; i++) {
		if ((i > 0 && idx[i] <= idx[i - 1]) || idx[i] >= count)
			return CUDA_ERROR_INVALID_VALUE;
		if (attrs[i].srcAccessOrder == CU_MEMCPY_SRC_ACCESS_ORDER_INVALID ||
		    attrs[i].srcAccessOrder > CU_MEMCPY_SRC_ACCESS_ORDER_ANY)
			return CUDA_ERROR_INVALID_VALUE;
	}
	for (size_t i = 0; i < count; i++) {
		CUresult r = sizes[i] == 0 ? CUDA_SUCCESS
					   : sim_copy_check(dsts[i], srcs[i], sizes[i], sim_unified_dir(dsts[i], srcs[i]));
		if (r != CUDA_SUCCESS) {
			if (fail != NULL)
				*fail = i;
			return r;
		}
	}
	return CUDA_SUCCESS;
}

static CUresult batch(CUdeviceptr *dsts, CUdeviceptr *srcs, size_t *sizes, size_t count, CUmemcpyAttributes *attrs,
		      size_t *idx, size_t nattrs, size_t *fail, CUstream h, int per_thread)
{
	struct sim_stream *s;
	CUresult r = sim_enter_stream(h, per_thread, &s);

	if (r != CUDA_SUCCESS)
		return r;
	/* The legacy NULL stream is refused: a batch needs a stream of its own ordering. */
	if (s->legacy)
		return CUDA_ERROR_INVALID_VALUE;
	if (s->capture != NULL)
		return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
	r = batch_check(dsts, srcs, sizes, count, attrs, idx, nattrs, fail);
	for (size_t i = 0; i < count && r == CUDA_SUCCESS; i++)
		if (sizes[i] > 0)
			r = sim_copy_enqueue(s, dsts[i], srcs[i], sizes[i], sim_unified_dir(dsts[i], srcs[i]));
	return r;
}

SIM_EXPORT CUresult cuMemcpyBatchAsync_v2(CUdeviceptr *dsts, CUdeviceptr *srcs, size_t *sizes, size_t count,
					  CUmemcpyAttributes *attrs, size_t *idx, size_t nattrs, CUstream h)
{
	return batch(dsts, srcs, sizes, count, attrs, idx, nattrs, NULL, h, 0);
}
SIM_EXPORT CUresult cuMemcpyBatchAsync_v2_ptsz(CUdeviceptr *dsts, CUdeviceptr *srcs, size_t *sizes, size_t count,
					       CUmemcpyAttributes *attrs, size_t *idx, size_t nattrs, CUstream h)
{
	return batch(dsts, srcs, sizes, count, attrs, idx, nattrs, NULL, h, 1);
}
SIM_EXPORT CUresult cuMemcpyBatchAsync(CUdeviceptr *dsts, CUdeviceptr *srcs, size_t *sizes, size_t count,
				       CUmemcpyAttributes *attrs, size_t *idx, size_t nattrs, size_t *fail, CUstream h)
{
	return batch(dsts, srcs, sizes, count, attrs, idx, nattrs, fail, h, 0);
}
SIM_EXPORT CUresult cuMemcpyBatchAsync_ptsz(CUdeviceptr *dsts, CUdeviceptr *srcs, size_t *sizes, size_t count,
					    CUmemcpyAttributes *attrs, size_t *idx, size_t nattrs, size_t *fail, CUstream h)
{
	return batch(dsts, srcs, sizes, count, attrs, idx, nattrs, fail, h, 1);
}

/* ---- pitched memsets ---- */

static CUresult memset2d(CUdeviceptr dst, size_t pitch, uint32_t value, unsigned elem, size_t width, size_t height,
			 CUstream h, int per_thread, int sync)
{
	struct sim_stream *s;
	CUresult r = sim_enter_stream(h, per_thread, &s);

	if (r != CUDA_SUCCESS)
		return r;
	if (s->capture != NULL)
		return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
	if (width == 0 || height == 0)
		return CUDA_SUCCESS;
	if (dst == 0 || dst % elem != 0 || width > SIZE_MAX / elem ||
	    (height > 1 && (pitch % elem != 0 || width * elem > pitch)))
		return CUDA_ERROR_INVALID_VALUE;
	for (size_t y = 0; y < height; y++)
		if (!sim_device_side(dst + y * pitch, width * elem))
			return CUDA_ERROR_INVALID_VALUE;
	for (size_t y = 0; y < height && r == CUDA_SUCCESS; y++)
		r = sim_memset_enqueue(s, dst + y * pitch, value, elem, width);
	if (r != CUDA_SUCCESS)
		return r;
	return sim_stream_finish(s, sync);
}

#define SIM_MEMSET2D(name, type, elem, pt, sync) \
	SIM_EXPORT CUresult name(CUdeviceptr d, size_t pitch, type v, size_t w, size_t hgt) \
	{ \
		return memset2d(d, pitch, v, elem, w, hgt, NULL, pt, sync); \
	}
#define SIM_MEMSET2D_ASYNC(name, type, elem, pt) \
	SIM_EXPORT CUresult name(CUdeviceptr d, size_t pitch, type v, size_t w, size_t hgt, CUstream h) \
	{ \
		return memset2d(d, pitch, v, elem, w, hgt, h, pt, 0); \
	}

SIM_MEMSET2D(cuMemsetD2D8_v2, unsigned char, 1, 0, 1)
SIM_MEMSET2D(cuMemsetD2D8_v2_ptds, unsigned char, 1, 1, 1)
SIM_MEMSET2D(cuMemsetD2D16_v2, unsigned short, 2, 0, 1)
SIM_MEMSET2D(cuMemsetD2D16_v2_ptds, unsigned short, 2, 1, 1)
SIM_MEMSET2D(cuMemsetD2D32_v2, unsigned int, 4, 0, 1)
SIM_MEMSET2D(cuMemsetD2D32_v2_ptds, unsigned int, 4, 1, 1)
SIM_MEMSET2D_ASYNC(cuMemsetD2D8Async, unsigned char, 1, 0)
SIM_MEMSET2D_ASYNC(cuMemsetD2D8Async_ptsz, unsigned char, 1, 1)
SIM_MEMSET2D_ASYNC(cuMemsetD2D16Async, unsigned short, 2, 0)
SIM_MEMSET2D_ASYNC(cuMemsetD2D16Async_ptsz, unsigned short, 2, 1)
SIM_MEMSET2D_ASYNC(cuMemsetD2D32Async, unsigned int, 4, 0)
SIM_MEMSET2D_ASYNC(cuMemsetD2D32Async_ptsz, unsigned int, 4, 1)
