/* Copies and memsets: each names the buffers on its device side to mv_submit, and a host-to-device
 * copy of a small pointer table remembers the buffers the table points to. */
#include "config.h"

#include <string.h>

#include "interpose/internal.h"

enum copy_form {
	COPY_UNIFIED, COPY_H2D, COPY_D2H, COPY_D2D,
};

struct copy_args {
	enum copy_form form;
	int async, per_thread;
	uint64_t dst, src;
	size_t bytes;
	CUstream h;
};

static CUresult do_copy(void *arg)
{
	struct copy_args *a = arg;
	void *hdst = (void *)(uintptr_t)a->dst;
	const void *hsrc = (const void *)(uintptr_t)a->src;

	switch (a->form) {
	case COPY_UNIFIED:
		if (a->async)
			return (a->per_thread ? mv_real.cuMemcpyAsync_ptsz : mv_real.cuMemcpyAsync)(a->dst, a->src,
												    a->bytes, a->h);
		return (a->per_thread ? mv_real.cuMemcpy_ptds : mv_real.cuMemcpy)(a->dst, a->src, a->bytes);
	case COPY_H2D:
		if (a->async)
			return (a->per_thread ? mv_real.cuMemcpyHtoDAsync_v2_ptsz : mv_real.cuMemcpyHtoDAsync_v2)(
				a->dst, hsrc, a->bytes, a->h);
		return (a->per_thread ? mv_real.cuMemcpyHtoD_v2_ptds : mv_real.cuMemcpyHtoD_v2)(a->dst, hsrc, a->bytes);
	case COPY_D2H:
		if (a->async)
			return (a->per_thread ? mv_real.cuMemcpyDtoHAsync_v2_ptsz : mv_real.cuMemcpyDtoHAsync_v2)(
				hdst, a->src, a->bytes, a->h);
		return (a->per_thread ? mv_real.cuMemcpyDtoH_v2_ptds : mv_real.cuMemcpyDtoH_v2)(hdst, a->src, a->bytes);
	default:
		if (a->async)
			return (a->per_thread ? mv_real.cuMemcpyDtoDAsync_v2_ptsz : mv_real.cuMemcpyDtoDAsync_v2)(
				a->dst, a->src, a->bytes, a->h);
		return (a->per_thread ? mv_real.cuMemcpyDtoD_v2_ptds : mv_real.cuMemcpyDtoD_v2)(a->dst, a->src, a->bytes);
	}
}

#define MV_REF_SCAN_MAX (64u << 10)

/* A host-to-device copy of a small host buffer may upload device pointers (pointer tables): the
 * buffers they name are remembered as the destination's references. More than MV_REFS are pinned
 * instead, so nothing a table points to is ever paged out unseen. */
static void note_refs(uint64_t dst, const void *src, size_t bytes)
{
	struct mv_buf *d;

	if (bytes > MV_REF_SCAN_MAX || bytes < 8)
		return;
	mv_lock();
	d = mv_registry_find(dst);
	if (d != NULL) {
		size_t start = dst - d->va;
		/* Rewriting from the start replaces the table; writing further along adds to it. */
		if (start == 0)
			d->nrefs = 0;
		for (size_t off = 0; off + 8 <= bytes; off += 8) {
			uint64_t v;
			struct mv_buf *b;
			int known = 0;
			memcpy(&v, (const char *)src + off, 8);
			b = v != 0 ? mv_registry_find(v) : NULL;
			if (b == NULL || b == d)
				continue;
			for (int j = 0; j < d->nrefs && !known; j++)
				known = mv_registry_find(d->refs[j]) == b;
			if (known)
				continue;
			if (d->nrefs < MV_REFS)
				d->refs[d->nrefs++] = b->va;
			else
				b->pinned = 1;
		}
	}
	mv_unlock();
}

/* Whether addr is a buffer memvirt serves (device memory), not host memory. */
static int mv_is_device_side(uint64_t addr)
{
	int found;

	mv_lock();
	found = mv_registry_find(addr) != NULL;
	mv_unlock();
	return found;
}

static CUresult copy(struct copy_args *a)
{
	uint64_t words[2];
	size_t n = 0;

	if (mv_init() != 0)
		return CUDA_ERROR_NOT_INITIALIZED;
	CUresult r;

	if (a->form != COPY_D2H)
		words[n++] = a->dst;
	if (a->form != COPY_H2D)
		words[n++] = a->src;
	static const uintptr_t keys[] = {[COPY_UNIFIED] = MV_FK_COPY, [COPY_H2D] = MV_FK_HTOD, [COPY_D2H] = MV_FK_DTOH,
					 [COPY_D2D] = MV_FK_DTOD};
	r = mv_submit(a->h, a->per_thread, words, a->bytes == 0 ? 0 : n, do_copy, a, keys[a->form]);
	/* The source is read only once the driver has accepted it: a bad pointer gets the driver's
	 * error, not a fault here. */
	if (r == CUDA_SUCCESS && (a->form == COPY_H2D || (a->form == COPY_UNIFIED && !mv_is_device_side(a->src))))
		note_refs(a->dst, (const void *)(uintptr_t)a->src, a->bytes);
	return r;
}

#define HPTR(p) ((uint64_t)(uintptr_t)(p))
#define COPY(form, async, pt, d, s, n, h) \
	do { \
		struct copy_args a_ = {form, async, pt, d, s, n, h}; \
		return copy(&a_); \
	} while (0)

MV_EXPORT CUresult cuMemcpy(CUdeviceptr dst, CUdeviceptr src, size_t n) { COPY(COPY_UNIFIED, 0, 0, dst, src, n, NULL); }
MV_EXPORT CUresult cuMemcpy_ptds(CUdeviceptr dst, CUdeviceptr src, size_t n) { COPY(COPY_UNIFIED, 0, 1, dst, src, n, NULL); }
MV_EXPORT CUresult cuMemcpyAsync(CUdeviceptr dst, CUdeviceptr src, size_t n, CUstream h) { COPY(COPY_UNIFIED, 1, 0, dst, src, n, h); }
MV_EXPORT CUresult cuMemcpyAsync_ptsz(CUdeviceptr dst, CUdeviceptr src, size_t n, CUstream h) { COPY(COPY_UNIFIED, 1, 1, dst, src, n, h); }
MV_EXPORT CUresult cuMemcpyHtoD_v2(CUdeviceptr dst, const void *src, size_t n) { COPY(COPY_H2D, 0, 0, dst, HPTR(src), n, NULL); }
MV_EXPORT CUresult cuMemcpyHtoD_v2_ptds(CUdeviceptr dst, const void *src, size_t n) { COPY(COPY_H2D, 0, 1, dst, HPTR(src), n, NULL); }
MV_EXPORT CUresult cuMemcpyDtoH_v2(void *dst, CUdeviceptr src, size_t n) { COPY(COPY_D2H, 0, 0, HPTR(dst), src, n, NULL); }
MV_EXPORT CUresult cuMemcpyDtoH_v2_ptds(void *dst, CUdeviceptr src, size_t n) { COPY(COPY_D2H, 0, 1, HPTR(dst), src, n, NULL); }
MV_EXPORT CUresult cuMemcpyDtoD_v2(CUdeviceptr dst, CUdeviceptr src, size_t n) { COPY(COPY_D2D, 0, 0, dst, src, n, NULL); }
MV_EXPORT CUresult cuMemcpyDtoD_v2_ptds(CUdeviceptr dst, CUdeviceptr src, size_t n) { COPY(COPY_D2D, 0, 1, dst, src, n, NULL); }
MV_EXPORT CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void *src, size_t n, CUstream h) { COPY(COPY_H2D, 1, 0, dst, HPTR(src), n, h); }
MV_EXPORT CUresult cuMemcpyHtoDAsync_v2_ptsz(CUdeviceptr dst, const void *src, size_t n, CUstream h) { COPY(COPY_H2D, 1, 1, dst, HPTR(src), n, h); }
MV_EXPORT CUresult cuMemcpyDtoHAsync_v2(void *dst, CUdeviceptr src, size_t n, CUstream h) { COPY(COPY_D2H, 1, 0, HPTR(dst), src, n, h); }
MV_EXPORT CUresult cuMemcpyDtoHAsync_v2_ptsz(void *dst, CUdeviceptr src, size_t n, CUstream h) { COPY(COPY_D2H, 1, 1, HPTR(dst), src, n, h); }
MV_EXPORT CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr dst, CUdeviceptr src, size_t n, CUstream h) { COPY(COPY_D2D, 1, 0, dst, src, n, h); }
MV_EXPORT CUresult cuMemcpyDtoDAsync_v2_ptsz(CUdeviceptr dst, CUdeviceptr src, size_t n, CUstream h) { COPY(COPY_D2D, 1, 1, dst, src, n, h); }

struct memset_args {
	unsigned elem;
	int async, per_thread;
	CUdeviceptr dst;
	uint32_t value;
	size_t n;
	CUstream h;
};

static CUresult do_memset(void *arg)
{
	struct memset_args *a = arg;

	switch (a->elem) {
	case 1:
		if (a->async)
			return (a->per_thread ? mv_real.cuMemsetD8Async_ptsz : mv_real.cuMemsetD8Async)(
				a->dst, (unsigned char)a->value, a->n, a->h);
		return (a->per_thread ? mv_real.cuMemsetD8_v2_ptds : mv_real.cuMemsetD8_v2)(a->dst, (unsigned char)a->value, a->n);
	case 2:
		if (a->async)
			return (a->per_thread ? mv_real.cuMemsetD16Async_ptsz : mv_real.cuMemsetD16Async)(
				a->dst, (unsigned short)a->value, a->n, a->h);
		return (a->per_thread ? mv_real.cuMemsetD16_v2_ptds : mv_real.cuMemsetD16_v2)(a->dst, (unsigned short)a->value,
											    a->n);
	default:
		if (a->async)
			return (a->per_thread ? mv_real.cuMemsetD32Async_ptsz : mv_real.cuMemsetD32Async)(a->dst, a->value,
												    a->n, a->h);
		return (a->per_thread ? mv_real.cuMemsetD32_v2_ptds : mv_real.cuMemsetD32_v2)(a->dst, a->value, a->n);
	}
}

static CUresult memset_(struct memset_args *a)
{
	uint64_t word = a->dst;

	if (mv_init() != 0)
		return CUDA_ERROR_NOT_INITIALIZED;
	return mv_submit(a->h, a->per_thread, &word, a->n == 0 ? 0 : 1, do_memset, a, MV_FK_MEMSET);
}

#define MEMSET(elem, async, pt, d, v, n, h) \
	do { \
		struct memset_args a_ = {elem, async, pt, d, v, n, h}; \
		return memset_(&a_); \
	} while (0)

MV_EXPORT CUresult cuMemsetD8_v2(CUdeviceptr d, unsigned char v, size_t n) { MEMSET(1, 0, 0, d, v, n, NULL); }
MV_EXPORT CUresult cuMemsetD8_v2_ptds(CUdeviceptr d, unsigned char v, size_t n) { MEMSET(1, 0, 1, d, v, n, NULL); }
MV_EXPORT CUresult cuMemsetD16_v2(CUdeviceptr d, unsigned short v, size_t n) { MEMSET(2, 0, 0, d, v, n, NULL); }
MV_EXPORT CUresult cuMemsetD16_v2_ptds(CUdeviceptr d, unsigned short v, size_t n) { MEMSET(2, 0, 1, d, v, n, NULL); }
MV_EXPORT CUresult cuMemsetD32_v2(CUdeviceptr d, unsigned int v, size_t n) { MEMSET(4, 0, 0, d, v, n, NULL); }
MV_EXPORT CUresult cuMemsetD32_v2_ptds(CUdeviceptr d, unsigned int v, size_t n) { MEMSET(4, 0, 1, d, v, n, NULL); }
MV_EXPORT CUresult cuMemsetD8Async(CUdeviceptr d, unsigned char v, size_t n, CUstream h) { MEMSET(1, 1, 0, d, v, n, h); }
MV_EXPORT CUresult cuMemsetD8Async_ptsz(CUdeviceptr d, unsigned char v, size_t n, CUstream h) { MEMSET(1, 1, 1, d, v, n, h); }
MV_EXPORT CUresult cuMemsetD16Async(CUdeviceptr d, unsigned short v, size_t n, CUstream h) { MEMSET(2, 1, 0, d, v, n, h); }
MV_EXPORT CUresult cuMemsetD16Async_ptsz(CUdeviceptr d, unsigned short v, size_t n, CUstream h) { MEMSET(2, 1, 1, d, v, n, h); }
MV_EXPORT CUresult cuMemsetD32Async(CUdeviceptr d, unsigned int v, size_t n, CUstream h) { MEMSET(4, 1, 0, d, v, n, h); }
MV_EXPORT CUresult cuMemsetD32Async_ptsz(CUdeviceptr d, unsigned int v, size_t n, CUstream h) { MEMSET(4, 1, 1, d, v, n, h); }
