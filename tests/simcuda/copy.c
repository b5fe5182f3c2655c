/* Copies and memsets, synchronous and asynchronous, with their per-thread-default-stream forms. The
 * device side of each is checked when it runs: an unmapped address is a sticky illegal address. */
#include "config.h"

#include "tests/simcuda/internal.h"

/* A device-side address must be in the device window or be pinned host memory. */
static int device_side(uint64_t addr, uint64_t bytes)
{
	return sim_is_device_addr(addr) || sim_mem_check(addr, bytes, 0, 1) == 0;
}

static CUresult copy(uint64_t dst, uint64_t src, size_t bytes, enum sim_copy_dir dir, CUstream h, int per_thread,
		     int sync)
{
	struct sim_stream *s;
	struct sim_op *op;
	CUresult r = sim_enter_stream(h, per_thread, &s);

	if (r != CUDA_SUCCESS)
		return r;
	if (s->capture != NULL)
		return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
	if (bytes == 0)
		return CUDA_SUCCESS;
	if (dst == 0 || src == 0)
		return CUDA_ERROR_INVALID_VALUE;
	if ((dir == SIM_COPY_H2D || dir == SIM_COPY_D2D) && !device_side(dst, bytes))
		return CUDA_ERROR_INVALID_VALUE;
	if ((dir == SIM_COPY_D2H || dir == SIM_COPY_D2D) && !device_side(src, bytes))
		return CUDA_ERROR_INVALID_VALUE;
	/* An injected failure is reported by the call itself and copies nothing. */
	if (sim_inject_copy_failure(dir))
		return CUDA_ERROR_UNKNOWN;
	op = sim_op_new(SIM_OP_COPY);
	if (op == NULL)
		return CUDA_ERROR_OUT_OF_MEMORY;
	op->u.c.dst = dst;
	op->u.c.src = src;
	op->u.c.bytes = bytes;
	op->u.c.dir = dir;
	sim_stream_submit(s, op, sim_copy_engine(dir), sim_cost_copy_ns(dir, bytes));
	/* An asynchronous copy into pageable host memory returns only once it has completed, as
	 * the real driver's does (Numba reads such a copy's result without synchronising). */
	if (!sync && !(dir == SIM_COPY_D2H && sim_mem_check(dst, bytes, 0, 1) != 0))
		return CUDA_SUCCESS;
	sim_stream_wait_all(s);
	return sim_ctx_check(s->ctx);
}

/* Unified addressing: the direction follows from which side of the window each pointer is on. */
static enum sim_copy_dir unified_dir(uint64_t dst, uint64_t src)
{
	int d = sim_is_device_addr(dst), s = sim_is_device_addr(src);
	return d && s ? SIM_COPY_D2D : d ? SIM_COPY_H2D : s ? SIM_COPY_D2H : SIM_COPY_H2H;
}

#define HPTR(p) ((uint64_t)(uintptr_t)(p))

SIM_EXPORT CUresult cuMemcpy(CUdeviceptr dst, CUdeviceptr src, size_t n)
{
	return copy(dst, src, n, unified_dir(dst, src), NULL, 0, 1);
}
SIM_EXPORT CUresult cuMemcpy_ptds(CUdeviceptr dst, CUdeviceptr src, size_t n)
{
	return copy(dst, src, n, unified_dir(dst, src), NULL, 1, 1);
}
SIM_EXPORT CUresult cuMemcpyAsync(CUdeviceptr dst, CUdeviceptr src, size_t n, CUstream h)
{
	return copy(dst, src, n, unified_dir(dst, src), h, 0, 0);
}
SIM_EXPORT CUresult cuMemcpyAsync_ptsz(CUdeviceptr dst, CUdeviceptr src, size_t n, CUstream h)
{
	return copy(dst, src, n, unified_dir(dst, src), h, 1, 0);
}
SIM_EXPORT CUresult cuMemcpyHtoD_v2(CUdeviceptr dst, const void *src, size_t n)
{
	return copy(dst, HPTR(src), n, SIM_COPY_H2D, NULL, 0, 1);
}
SIM_EXPORT CUresult cuMemcpyHtoD_v2_ptds(CUdeviceptr dst, const void *src, size_t n)
{
	return copy(dst, HPTR(src), n, SIM_COPY_H2D, NULL, 1, 1);
}
SIM_EXPORT CUresult cuMemcpyDtoH_v2(void *dst, CUdeviceptr src, size_t n)
{
	return copy(HPTR(dst), src, n, SIM_COPY_D2H, NULL, 0, 1);
}
SIM_EXPORT CUresult cuMemcpyDtoH_v2_ptds(void *dst, CUdeviceptr src, size_t n)
{
	return copy(HPTR(dst), src, n, SIM_COPY_D2H, NULL, 1, 1);
}
SIM_EXPORT CUresult cuMemcpyDtoD_v2(CUdeviceptr dst, CUdeviceptr src, size_t n)
{
	return copy(dst, src, n, SIM_COPY_D2D, NULL, 0, 1);
}
SIM_EXPORT CUresult cuMemcpyDtoD_v2_ptds(CUdeviceptr dst, CUdeviceptr src, size_t n)
{
	return copy(dst, src, n, SIM_COPY_D2D, NULL, 1, 1);
}
SIM_EXPORT CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void *src, size_t n, CUstream h)
{
	return copy(dst, HPTR(src), n, SIM_COPY_H2D, h, 0, 0);
}
SIM_EXPORT CUresult cuMemcpyHtoDAsync_v2_ptsz(CUdeviceptr dst, const void *src, size_t n, CUstream h)
{
	return copy(dst, HPTR(src), n, SIM_COPY_H2D, h, 1, 0);
}
SIM_EXPORT CUresult cuMemcpyDtoHAsync_v2(void *dst, CUdeviceptr src, size_t n, CUstream h)
{
	return copy(HPTR(dst), src, n, SIM_COPY_D2H, h, 0, 0);
}
SIM_EXPORT CUresult cuMemcpyDtoHAsync_v2_ptsz(void *dst, CUdeviceptr src, size_t n, CUstream h)
{
	return copy(HPTR(dst), src, n, SIM_COPY_D2H, h, 1, 0);
}
SIM_EXPORT CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr dst, CUdeviceptr src, size_t n, CUstream h)
{
	return copy(dst, src, n, SIM_COPY_D2D, h, 0, 0);
}
SIM_EXPORT CUresult cuMemcpyDtoDAsync_v2_ptsz(CUdeviceptr dst, CUdeviceptr src, size_t n, CUstream h)
{
	return copy(dst, src, n, SIM_COPY_D2D, h, 1, 0);
}

static CUresult memset_submit(CUdeviceptr dst, uint32_t value, unsigned elem, size_t n, CUstream h, int per_thread,
			      int sync)
{
	struct sim_stream *s;
	struct sim_op *op;
	CUresult r = sim_enter_stream(h, per_thread, &s);

	if (r != CUDA_SUCCESS)
		return r;
	if (s->capture != NULL)
		return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
	if (n == 0)
		return CUDA_SUCCESS;
	if (dst % elem != 0 || n > SIZE_MAX / elem || !device_side(dst, n * elem))
		return CUDA_ERROR_INVALID_VALUE;
	op = sim_op_new(SIM_OP_MEMSET);
	if (op == NULL)
		return CUDA_ERROR_OUT_OF_MEMORY;
	op->u.m.dst = dst;
	op->u.m.n = n;
	op->u.m.elem = elem;
	op->u.m.value = value;
	sim_stream_submit(s, op, SIM_ENGINE_COMPUTE, sim_cost_kernel_ns(0, (double)n * elem));
	if (!sync)
		return CUDA_SUCCESS;
	sim_stream_wait_all(s);
	return sim_ctx_check(s->ctx);
}

SIM_EXPORT CUresult cuMemsetD8_v2(CUdeviceptr d, unsigned char v, size_t n)
{
	return memset_submit(d, v, 1, n, NULL, 0, 1);
}
SIM_EXPORT CUresult cuMemsetD8_v2_ptds(CUdeviceptr d, unsigned char v, size_t n)
{
	return memset_submit(d, v, 1, n, NULL, 1, 1);
}
SIM_EXPORT CUresult cuMemsetD16_v2(CUdeviceptr d, unsigned short v, size_t n)
{
	return memset_submit(d, v, 2, n, NULL, 0, 1);
}
SIM_EXPORT CUresult cuMemsetD16_v2_ptds(CUdeviceptr d, unsigned short v, size_t n)
{
	return memset_submit(d, v, 2, n, NULL, 1, 1);
}
SIM_EXPORT CUresult cuMemsetD32_v2(CUdeviceptr d, unsigned int v, size_t n)
{
	return memset_submit(d, v, 4, n, NULL, 0, 1);
}
SIM_EXPORT CUresult cuMemsetD32_v2_ptds(CUdeviceptr d, unsigned int v, size_t n)
{
	return memset_submit(d, v, 4, n, NULL, 1, 1);
}
SIM_EXPORT CUresult cuMemsetD8Async(CUdeviceptr d, unsigned char v, size_t n, CUstream h)
{
	return memset_submit(d, v, 1, n, h, 0, 0);
}
SIM_EXPORT CUresult cuMemsetD8Async_ptsz(CUdeviceptr d, unsigned char v, size_t n, CUstream h)
{
	return memset_submit(d, v, 1, n, h, 1, 0);
}
SIM_EXPORT CUresult cuMemsetD16Async(CUdeviceptr d, unsigned short v, size_t n, CUstream h)
{
	return memset_submit(d, v, 2, n, h, 0, 0);
}
SIM_EXPORT CUresult cuMemsetD16Async_ptsz(CUdeviceptr d, unsigned short v, size_t n, CUstream h)
{
	return memset_submit(d, v, 2, n, h, 1, 0);
}
SIM_EXPORT CUresult cuMemsetD32Async(CUdeviceptr d, unsigned int v, size_t n, CUstream h)
{
	return memset_submit(d, v, 4, n, h, 0, 0);
}
SIM_EXPORT CUresult cuMemsetD32Async_ptsz(CUdeviceptr d, unsigned int v, size_t n, CUstream h)
{
	return memset_submit(d, v, 4, n, h, 1, 0);
}
