/* Copies, memsets and stream memory operations: each names the buffers on its device side to
 * mv_submit (a pitched side by the first and last byte it touches), and a host-to-device copy of a
 * small pointer table remembers the buffers the table points to. */
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
				mv_buf_pin(b);
		}
	}
	mv_unlock();
}

/* Whether a unified copy's source is host memory the CPU may read for note_refs: neither a buffer
 * memvirt serves nor device memory the driver knows of (another allocator's, the app's own
 * mappings). Device memory is never read here: on a GPU that is a fault. */
static int host_source(uint64_t addr, size_t bytes)
{
	CUdeviceptr base;
	size_t size;
	CUresult r;
	int found;

	if (bytes > MV_REF_SCAN_MAX || bytes < 8)
		return 0;
	mv_lock();
	found = mv_registry_find(addr) != NULL;
	mv_unlock();
	if (found)
		return 0;
	/* Only the driver's "not device memory" counts: any other error (a sticky one) says nothing. */
	r = mv_real.cuMemGetAddressRange_v2(&base, &size, addr);
	return r == CUDA_ERROR_NOT_FOUND || r == CUDA_ERROR_INVALID_VALUE;
}

static CUresult copy(struct copy_args *a)
{
	uint64_t words[2];
	size_t n = 0;

	CUresult r;
	int scan;

	if (mv_init() != 0)
		return CUDA_ERROR_NOT_INITIALIZED;
	/* Asked before the copy is queued, while no error of its own can hide the answer. */
	scan = a->form == COPY_H2D || (a->form == COPY_UNIFIED && host_source(a->src, a->bytes));
	if (a->form != COPY_D2H)
		words[n++] = a->dst;
	if (a->form != COPY_H2D)
		words[n++] = a->src;
	static const uintptr_t keys[] = {[COPY_UNIFIED] = MV_FK_COPY, [COPY_H2D] = MV_FK_HTOD, [COPY_D2H] = MV_FK_DTOH,
					 [COPY_D2D] = MV_FK_DTOD};
	r = mv_submit(a->h, a->per_thread, words, a->bytes == 0 ? 0 : n, do_copy, a, keys[a->form]);
	/* The source is read only once the driver has accepted it: a bad pointer gets the driver's
	 * error, not a fault here. */
	if (r == CUDA_SUCCESS && scan)
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

/* ---- pitched copies and memsets, peer and batched copies, stream memory operations ---- */

/* Every one of these goes through mv_submit as the plain copies do: the buffers named are brought
 * in first, the stream is ordered after their page-ins, and the use is recorded on the stream, so
 * that no page-out takes them before the operation has completed. */
static CUresult submit(CUstream h, int per_thread, const uint64_t *words, size_t n, CUresult (*fn)(void *),
		       void *arg, uintptr_t key)
{
	if (mv_init() != 0)
		return CUDA_ERROR_NOT_INITIALIZED;
	return mv_submit(h, per_thread, words, n, fn, arg, key);
}

/* Appends the first and last byte a pitched side touches, when the side may be device memory:
 * between them lies every row it reads or writes. */
static size_t pitched_words(uint64_t *words, size_t n, CUmemorytype type, CUdeviceptr dev, size_t x, size_t y,
			    size_t z, size_t pitch, size_t height, size_t width, size_t rows, size_t depth)
{
	uint64_t first;

	if ((type != CU_MEMORYTYPE_DEVICE && type != CU_MEMORYTYPE_UNIFIED) || dev == 0 || width == 0 || rows == 0 ||
	    depth == 0)
		return n;
	first = dev + ((uint64_t)z * height + y) * pitch + x;
	words[n++] = first;
	words[n++] = first + ((uint64_t)(depth - 1) * height + (rows - 1)) * pitch + width - 1;
	return n;
}

enum pitched_form { P2D, P2D_UNALIGNED, P2D_ASYNC, P3D, P3D_ASYNC };

struct pitched_args {
	enum pitched_form form;
	int per_thread;
	const void *p;
	CUstream h;
};

static CUresult do_pitched(void *arg)
{
	struct pitched_args *a = arg;
	int pt = a->per_thread;

	switch (a->form) {
	case P2D:
		return (pt ? mv_real.cuMemcpy2D_v2_ptds : mv_real.cuMemcpy2D_v2)(a->p);
	case P2D_UNALIGNED:
		return (pt ? mv_real.cuMemcpy2DUnaligned_v2_ptds : mv_real.cuMemcpy2DUnaligned_v2)(a->p);
	case P2D_ASYNC:
		return (pt ? mv_real.cuMemcpy2DAsync_v2_ptsz : mv_real.cuMemcpy2DAsync_v2)(a->p, a->h);
	case P3D:
		return (pt ? mv_real.cuMemcpy3D_v2_ptds : mv_real.cuMemcpy3D_v2)(a->p);
	default:
		return (pt ? mv_real.cuMemcpy3DAsync_v2_ptsz : mv_real.cuMemcpy3DAsync_v2)(a->p, a->h);
	}
}

static CUresult copy2d(enum pitched_form form, const CUDA_MEMCPY2D *p, CUstream h, int per_thread)
{
	struct pitched_args a = {form, per_thread, p, h};
	uint64_t words[4];
	size_t n = 0;

	if (p != NULL) {
		n = pitched_words(words, n, p->srcMemoryType, p->srcDevice, p->srcXInBytes, p->srcY, 0, p->srcPitch, 0,
				  p->WidthInBytes, p->Height, 1);
		n = pitched_words(words, n, p->dstMemoryType, p->dstDevice, p->dstXInBytes, p->dstY, 0, p->dstPitch, 0,
				  p->WidthInBytes, p->Height, 1);
	}
	return submit(h, per_thread, words, n, do_pitched, &a, MV_FK_COPY);
}

static CUresult copy3d(enum pitched_form form, const CUDA_MEMCPY3D *p, CUstream h, int per_thread)
{
	struct pitched_args a = {form, per_thread, p, h};
	uint64_t words[4];
	size_t n = 0;

	if (p != NULL) {
		n = pitched_words(words, n, p->srcMemoryType, p->srcDevice, p->srcXInBytes, p->srcY, p->srcZ, p->srcPitch,
				  p->srcHeight, p->WidthInBytes, p->Height, p->Depth);
		n = pitched_words(words, n, p->dstMemoryType, p->dstDevice, p->dstXInBytes, p->dstY, p->dstZ, p->dstPitch,
				  p->dstHeight, p->WidthInBytes, p->Height, p->Depth);
	}
	return submit(h, per_thread, words, n, do_pitched, &a, MV_FK_COPY);
}

MV_EXPORT CUresult cuMemcpy2D_v2(const CUDA_MEMCPY2D *p) { return copy2d(P2D, p, NULL, 0); }
MV_EXPORT CUresult cuMemcpy2D_v2_ptds(const CUDA_MEMCPY2D *p) { return copy2d(P2D, p, NULL, 1); }
MV_EXPORT CUresult cuMemcpy2DUnaligned_v2(const CUDA_MEMCPY2D *p) { return copy2d(P2D_UNALIGNED, p, NULL, 0); }
MV_EXPORT CUresult cuMemcpy2DUnaligned_v2_ptds(const CUDA_MEMCPY2D *p) { return copy2d(P2D_UNALIGNED, p, NULL, 1); }
MV_EXPORT CUresult cuMemcpy2DAsync_v2(const CUDA_MEMCPY2D *p, CUstream h) { return copy2d(P2D_ASYNC, p, h, 0); }
MV_EXPORT CUresult cuMemcpy2DAsync_v2_ptsz(const CUDA_MEMCPY2D *p, CUstream h) { return copy2d(P2D_ASYNC, p, h, 1); }
MV_EXPORT CUresult cuMemcpy3D_v2(const CUDA_MEMCPY3D *p) { return copy3d(P3D, p, NULL, 0); }
MV_EXPORT CUresult cuMemcpy3D_v2_ptds(const CUDA_MEMCPY3D *p) { return copy3d(P3D, p, NULL, 1); }
MV_EXPORT CUresult cuMemcpy3DAsync_v2(const CUDA_MEMCPY3D *p, CUstream h) { return copy3d(P3D_ASYNC, p, h, 0); }
MV_EXPORT CUresult cuMemcpy3DAsync_v2_ptsz(const CUDA_MEMCPY3D *p, CUstream h) { return copy3d(P3D_ASYNC, p, h, 1); }

struct peer_args {
	CUdeviceptr dst, src;
	CUcontext dctx, sctx;
	size_t bytes;
	CUstream h;
	int async, per_thread;
};

static CUresult do_peer(void *arg)
{
	struct peer_args *a = arg;

	if (a->async)
		return (a->per_thread ? mv_real.cuMemcpyPeerAsync_ptsz : mv_real.cuMemcpyPeerAsync)(
			a->dst, a->dctx, a->src, a->sctx, a->bytes, a->h);
	return (a->per_thread ? mv_real.cuMemcpyPeer_ptds : mv_real.cuMemcpyPeer)(a->dst, a->dctx, a->src, a->sctx,
										    a->bytes);
}

static CUresult peer(struct peer_args *a)
{
	uint64_t words[2] = {a->dst, a->src};

	return submit(a->h, a->per_thread, words, a->bytes == 0 ? 0 : 2, do_peer, a, MV_FK_DTOD);
}

MV_EXPORT CUresult cuMemcpyPeer(CUdeviceptr d, CUcontext dc, CUdeviceptr s, CUcontext sc, size_t n)
{
	struct peer_args a = {d, s, dc, sc, n, NULL, 0, 0};
	return peer(&a);
}

MV_EXPORT CUresult cuMemcpyPeer_ptds(CUdeviceptr d, CUcontext dc, CUdeviceptr s, CUcontext sc, size_t n)
{
	struct peer_args a = {d, s, dc, sc, n, NULL, 0, 1};
	return peer(&a);
}

MV_EXPORT CUresult cuMemcpyPeerAsync(CUdeviceptr d, CUcontext dc, CUdeviceptr s, CUcontext sc, size_t n, CUstream h)
{
	struct peer_args a = {d, s, dc, sc, n, h, 1, 0};
	return peer(&a);
}

MV_EXPORT CUresult cuMemcpyPeerAsync_ptsz(CUdeviceptr d, CUcontext dc, CUdeviceptr s, CUcontext sc, size_t n,
					  CUstream h)
{
	struct peer_args a = {d, s, dc, sc, n, h, 1, 1};
	return peer(&a);
}

/* A batch names at most this many addresses; a bigger one is refused, as its buffers could not all
 * be named. */
#define MV_BATCH_WORDS 1024
static __thread uint64_t tl_batch[MV_BATCH_WORDS];

struct batch_args {
	CUdeviceptr *dsts, *srcs;
	size_t *sizes, count;
	CUmemcpyAttributes *attrs;
	size_t *idx, nattrs;
	CUstream h;
	int per_thread, v1;
	size_t *fail; /* the first version's */
};

static CUresult do_batch(void *arg)
{
	struct batch_args *a = arg;

	if (a->v1)
		return (a->per_thread ? mv_real.cuMemcpyBatchAsync_ptsz : mv_real.cuMemcpyBatchAsync)(
			a->dsts, a->srcs, a->sizes, a->count, a->attrs, a->idx, a->nattrs, a->fail, a->h);
	return (a->per_thread ? mv_real.cuMemcpyBatchAsync_v2_ptsz : mv_real.cuMemcpyBatchAsync_v2)(
		a->dsts, a->srcs, a->sizes, a->count, a->attrs, a->idx, a->nattrs, a->h);
}

static CUresult batch(struct batch_args *a)
{
	size_t n = 0;

	if (a->dsts != NULL && a->srcs != NULL && a->sizes != NULL) {
		if (a->count > MV_BATCH_WORDS / 2) {
			mv_log(MV_LOG_ERROR, "cuMemcpyBatchAsync of %zu copies refused: at most %d can be made safe",
			       a->count, MV_BATCH_WORDS / 2);
			return CUDA_ERROR_NOT_SUPPORTED;
		}
		for (size_t i = 0; i < a->count; i++) {
			if (a->sizes[i] == 0)
				continue;
			tl_batch[n++] = a->dsts[i];
			tl_batch[n++] = a->srcs[i];
		}
	}
	return submit(a->h, a->per_thread, tl_batch, n, do_batch, a, MV_FK_COPY);
}

MV_EXPORT CUresult cuMemcpyBatchAsync_v2(CUdeviceptr *dsts, CUdeviceptr *srcs, size_t *sizes, size_t count,
					 CUmemcpyAttributes *attrs, size_t *idx, size_t nattrs, CUstream h)
{
	struct batch_args a = {dsts, srcs, sizes, count, attrs, idx, nattrs, h, 0, 0, NULL};
	return batch(&a);
}

MV_EXPORT CUresult cuMemcpyBatchAsync_v2_ptsz(CUdeviceptr *dsts, CUdeviceptr *srcs, size_t *sizes, size_t count,
					      CUmemcpyAttributes *attrs, size_t *idx, size_t nattrs, CUstream h)
{
	struct batch_args a = {dsts, srcs, sizes, count, attrs, idx, nattrs, h, 1, 0, NULL};
	return batch(&a);
}

MV_EXPORT CUresult cuMemcpyBatchAsync(CUdeviceptr *dsts, CUdeviceptr *srcs, size_t *sizes, size_t count,
				      CUmemcpyAttributes *attrs, size_t *idx, size_t nattrs, size_t *fail, CUstream h)
{
	struct batch_args a = {dsts, srcs, sizes, count, attrs, idx, nattrs, h, 0, 1, fail};
	return batch(&a);
}

MV_EXPORT CUresult cuMemcpyBatchAsync_ptsz(CUdeviceptr *dsts, CUdeviceptr *srcs, size_t *sizes, size_t count,
					   CUmemcpyAttributes *attrs, size_t *idx, size_t nattrs, size_t *fail, CUstream h)
{
	struct batch_args a = {dsts, srcs, sizes, count, attrs, idx, nattrs, h, 1, 1, fail};
	return batch(&a);
}

struct memset2d_args {
	unsigned elem;
	int async, per_thread;
	CUdeviceptr dst;
	size_t pitch;
	uint32_t value;
	size_t width, height;
	CUstream h;
};

static CUresult do_memset2d(void *arg)
{
	struct memset2d_args *a = arg;
	int pt = a->per_thread;

	switch (a->elem + (a->async ? 8 : 0)) {
	case 1:
		return (pt ? mv_real.cuMemsetD2D8_v2_ptds : mv_real.cuMemsetD2D8_v2)(a->dst, a->pitch, (unsigned char)a->value,
										    a->width, a->height);
	case 2:
		return (pt ? mv_real.cuMemsetD2D16_v2_ptds : mv_real.cuMemsetD2D16_v2)(
			a->dst, a->pitch, (unsigned short)a->value, a->width, a->height);
	case 4:
		return (pt ? mv_real.cuMemsetD2D32_v2_ptds : mv_real.cuMemsetD2D32_v2)(a->dst, a->pitch, a->value, a->width,
										      a->height);
	case 9:
		return (pt ? mv_real.cuMemsetD2D8Async_ptsz : mv_real.cuMemsetD2D8Async)(
			a->dst, a->pitch, (unsigned char)a->value, a->width, a->height, a->h);
	case 10:
		return (pt ? mv_real.cuMemsetD2D16Async_ptsz : mv_real.cuMemsetD2D16Async)(
			a->dst, a->pitch, (unsigned short)a->value, a->width, a->height, a->h);
	default:
		return (pt ? mv_real.cuMemsetD2D32Async_ptsz : mv_real.cuMemsetD2D32Async)(a->dst, a->pitch, a->value,
											   a->width, a->height, a->h);
	}
}

static CUresult memset2d(struct memset2d_args *a)
{
	uint64_t words[2];
	size_t n = pitched_words(words, 0, CU_MEMORYTYPE_DEVICE, a->dst, 0, 0, 0, a->pitch, 0,
				 a->width * a->elem, a->height, 1);

	return submit(a->h, a->per_thread, words, n, do_memset2d, a, MV_FK_MEMSET);
}

#define MEMSET2D(elem, async, pt, d, p, v, w, hgt, h) \
	do { \
		struct memset2d_args a_ = {elem, async, pt, d, p, v, w, hgt, h}; \
		return memset2d(&a_); \
	} while (0)

MV_EXPORT CUresult cuMemsetD2D8_v2(CUdeviceptr d, size_t p, unsigned char v, size_t w, size_t hgt) { MEMSET2D(1, 0, 0, d, p, v, w, hgt, NULL); }
MV_EXPORT CUresult cuMemsetD2D8_v2_ptds(CUdeviceptr d, size_t p, unsigned char v, size_t w, size_t hgt) { MEMSET2D(1, 0, 1, d, p, v, w, hgt, NULL); }
MV_EXPORT CUresult cuMemsetD2D16_v2(CUdeviceptr d, size_t p, unsigned short v, size_t w, size_t hgt) { MEMSET2D(2, 0, 0, d, p, v, w, hgt, NULL); }
MV_EXPORT CUresult cuMemsetD2D16_v2_ptds(CUdeviceptr d, size_t p, unsigned short v, size_t w, size_t hgt) { MEMSET2D(2, 0, 1, d, p, v, w, hgt, NULL); }
MV_EXPORT CUresult cuMemsetD2D32_v2(CUdeviceptr d, size_t p, unsigned int v, size_t w, size_t hgt) { MEMSET2D(4, 0, 0, d, p, v, w, hgt, NULL); }
MV_EXPORT CUresult cuMemsetD2D32_v2_ptds(CUdeviceptr d, size_t p, unsigned int v, size_t w, size_t hgt) { MEMSET2D(4, 0, 1, d, p, v, w, hgt, NULL); }
MV_EXPORT CUresult cuMemsetD2D8Async(CUdeviceptr d, size_t p, unsigned char v, size_t w, size_t hgt, CUstream h) { MEMSET2D(1, 1, 0, d, p, v, w, hgt, h); }
MV_EXPORT CUresult cuMemsetD2D8Async_ptsz(CUdeviceptr d, size_t p, unsigned char v, size_t w, size_t hgt, CUstream h) { MEMSET2D(1, 1, 1, d, p, v, w, hgt, h); }
MV_EXPORT CUresult cuMemsetD2D16Async(CUdeviceptr d, size_t p, unsigned short v, size_t w, size_t hgt, CUstream h) { MEMSET2D(2, 1, 0, d, p, v, w, hgt, h); }
MV_EXPORT CUresult cuMemsetD2D16Async_ptsz(CUdeviceptr d, size_t p, unsigned short v, size_t w, size_t hgt, CUstream h) { MEMSET2D(2, 1, 1, d, p, v, w, hgt, h); }
MV_EXPORT CUresult cuMemsetD2D32Async(CUdeviceptr d, size_t p, unsigned int v, size_t w, size_t hgt, CUstream h) { MEMSET2D(4, 1, 0, d, p, v, w, hgt, h); }
MV_EXPORT CUresult cuMemsetD2D32Async_ptsz(CUdeviceptr d, size_t p, unsigned int v, size_t w, size_t hgt, CUstream h) { MEMSET2D(4, 1, 1, d, p, v, w, hgt, h); }

/* A stream memory operation names the word it writes or waits on: its buffer stays resident until
 * the operation has completed (a wait, until its condition held). */
struct memop_args {
	int wide, wait, per_thread, v1;
	CUstream h;
	CUdeviceptr addr;
	uint64_t value;
	unsigned flags;
};

typedef CUresult (*memop32_fn)(CUstream, CUdeviceptr, cuuint32_t, unsigned int);
typedef CUresult (*memop64_fn)(CUstream, CUdeviceptr, cuuint64_t, unsigned int);

static CUresult do_memop(void *arg)
{
	struct memop_args *a = arg;
	/* [wait][v1][per_thread] */
	const memop32_fn f32[2][2][2] = {
		{{mv_real.cuStreamWriteValue32_v2, mv_real.cuStreamWriteValue32_v2_ptsz},
		 {mv_real.cuStreamWriteValue32, mv_real.cuStreamWriteValue32_ptsz}},
		{{mv_real.cuStreamWaitValue32_v2, mv_real.cuStreamWaitValue32_v2_ptsz},
		 {mv_real.cuStreamWaitValue32, mv_real.cuStreamWaitValue32_ptsz}},
	};
	const memop64_fn f64[2][2][2] = {
		{{mv_real.cuStreamWriteValue64_v2, mv_real.cuStreamWriteValue64_v2_ptsz},
		 {mv_real.cuStreamWriteValue64, mv_real.cuStreamWriteValue64_ptsz}},
		{{mv_real.cuStreamWaitValue64_v2, mv_real.cuStreamWaitValue64_v2_ptsz},
		 {mv_real.cuStreamWaitValue64, mv_real.cuStreamWaitValue64_ptsz}},
	};

	if (a->wide)
		return f64[a->wait][a->v1][a->per_thread](a->h, a->addr, a->value, a->flags);
	return f32[a->wait][a->v1][a->per_thread](a->h, a->addr, (cuuint32_t)a->value, a->flags);
}

/* A wait holds its stream until its word is written, perhaps by work the app submits only later:
 * meanwhile nothing is paged out that would wait for that stream (mv_gate_begin). */
static CUresult memop_submit(CUstream h, int per_thread, int wait, const uint64_t *words, size_t n,
			     CUresult (*fn)(void *), void *arg)
{
	struct mv_stream *s;
	CUresult r;

	if (!wait || mv_init() != 0 || (s = mv_stream_get(h, per_thread)) == NULL)
		return submit(h, per_thread, words, n, fn, arg, MV_FK_MEMSET);
	mv_gate_begin(s);
	r = submit(h, per_thread, words, n, fn, arg, MV_FK_MEMSET);
	mv_gate_end(s);
	return r;
}

static CUresult memop(struct memop_args *a)
{
	uint64_t word = a->addr;

	return memop_submit(a->h, a->per_thread, a->wait, &word, 1, do_memop, a);
}

#define MEMOP(wide, wait, pt, v1, h, addr, v, f) \
	do { \
		struct memop_args a_ = {wide, wait, pt, v1, h, addr, v, f}; \
		return memop(&a_); \
	} while (0)

MV_EXPORT CUresult cuStreamWriteValue32_v2(CUstream h, CUdeviceptr a, cuuint32_t v, unsigned int f) { MEMOP(0, 0, 0, 0, h, a, v, f); }
MV_EXPORT CUresult cuStreamWriteValue32_v2_ptsz(CUstream h, CUdeviceptr a, cuuint32_t v, unsigned int f) { MEMOP(0, 0, 1, 0, h, a, v, f); }
MV_EXPORT CUresult cuStreamWriteValue64_v2(CUstream h, CUdeviceptr a, cuuint64_t v, unsigned int f) { MEMOP(1, 0, 0, 0, h, a, v, f); }
MV_EXPORT CUresult cuStreamWriteValue64_v2_ptsz(CUstream h, CUdeviceptr a, cuuint64_t v, unsigned int f) { MEMOP(1, 0, 1, 0, h, a, v, f); }
MV_EXPORT CUresult cuStreamWaitValue32_v2(CUstream h, CUdeviceptr a, cuuint32_t v, unsigned int f) { MEMOP(0, 1, 0, 0, h, a, v, f); }
MV_EXPORT CUresult cuStreamWaitValue32_v2_ptsz(CUstream h, CUdeviceptr a, cuuint32_t v, unsigned int f) { MEMOP(0, 1, 1, 0, h, a, v, f); }
MV_EXPORT CUresult cuStreamWaitValue64_v2(CUstream h, CUdeviceptr a, cuuint64_t v, unsigned int f) { MEMOP(1, 1, 0, 0, h, a, v, f); }
MV_EXPORT CUresult cuStreamWaitValue64_v2_ptsz(CUstream h, CUdeviceptr a, cuuint64_t v, unsigned int f) { MEMOP(1, 1, 1, 0, h, a, v, f); }
MV_EXPORT CUresult cuStreamWriteValue32(CUstream h, CUdeviceptr a, cuuint32_t v, unsigned int f) { MEMOP(0, 0, 0, 1, h, a, v, f); }
MV_EXPORT CUresult cuStreamWriteValue32_ptsz(CUstream h, CUdeviceptr a, cuuint32_t v, unsigned int f) { MEMOP(0, 0, 1, 1, h, a, v, f); }
MV_EXPORT CUresult cuStreamWriteValue64(CUstream h, CUdeviceptr a, cuuint64_t v, unsigned int f) { MEMOP(1, 0, 0, 1, h, a, v, f); }
MV_EXPORT CUresult cuStreamWriteValue64_ptsz(CUstream h, CUdeviceptr a, cuuint64_t v, unsigned int f) { MEMOP(1, 0, 1, 1, h, a, v, f); }
MV_EXPORT CUresult cuStreamWaitValue32(CUstream h, CUdeviceptr a, cuuint32_t v, unsigned int f) { MEMOP(0, 1, 0, 1, h, a, v, f); }
MV_EXPORT CUresult cuStreamWaitValue32_ptsz(CUstream h, CUdeviceptr a, cuuint32_t v, unsigned int f) { MEMOP(0, 1, 1, 1, h, a, v, f); }
MV_EXPORT CUresult cuStreamWaitValue64(CUstream h, CUdeviceptr a, cuuint64_t v, unsigned int f) { MEMOP(1, 1, 0, 1, h, a, v, f); }
MV_EXPORT CUresult cuStreamWaitValue64_ptsz(CUstream h, CUdeviceptr a, cuuint64_t v, unsigned int f) { MEMOP(1, 1, 1, 1, h, a, v, f); }

struct batch_memop_args {
	CUstream h;
	unsigned count;
	CUstreamBatchMemOpParams *ops;
	unsigned flags;
	int per_thread, v1;
};

static CUresult do_batch_memop(void *arg)
{
	struct batch_memop_args *a = arg;

	if (a->v1)
		return (a->per_thread ? mv_real.cuStreamBatchMemOp_ptsz : mv_real.cuStreamBatchMemOp)(a->h, a->count, a->ops,
												       a->flags);
	return (a->per_thread ? mv_real.cuStreamBatchMemOp_v2_ptsz : mv_real.cuStreamBatchMemOp_v2)(a->h, a->count,
												    a->ops, a->flags);
}

/* Every word a batch writes or waits on is named. */
static CUresult batch_memop(struct batch_memop_args *a)
{
	size_t n = 0;
	int wait = 0;

	if (a->ops != NULL) {
		if (a->count > MV_BATCH_WORDS) {
			mv_log(MV_LOG_ERROR, "cuStreamBatchMemOp of %u operations refused: at most %d can be made safe",
			       a->count, MV_BATCH_WORDS);
			return CUDA_ERROR_NOT_SUPPORTED;
		}
		for (unsigned i = 0; i < a->count; i++) {
			CUstreamBatchMemOpType op = a->ops[i].operation;
			if (op == CU_STREAM_MEM_OP_WAIT_VALUE_32 || op == CU_STREAM_MEM_OP_WAIT_VALUE_64) {
				tl_batch[n++] = a->ops[i].waitValue.address;
				wait = 1;
			} else if (op == CU_STREAM_MEM_OP_WRITE_VALUE_32 || op == CU_STREAM_MEM_OP_WRITE_VALUE_64)
				tl_batch[n++] = a->ops[i].writeValue.address;
		}
	}
	return memop_submit(a->h, a->per_thread, wait, tl_batch, n, do_batch_memop, a);
}

MV_EXPORT CUresult cuStreamBatchMemOp_v2(CUstream h, unsigned int count, CUstreamBatchMemOpParams *ops, unsigned int f)
{
	struct batch_memop_args a = {h, count, ops, f, 0, 0};
	return batch_memop(&a);
}

MV_EXPORT CUresult cuStreamBatchMemOp_v2_ptsz(CUstream h, unsigned int count, CUstreamBatchMemOpParams *ops,
					      unsigned int f)
{
	struct batch_memop_args a = {h, count, ops, f, 1, 0};
	return batch_memop(&a);
}

MV_EXPORT CUresult cuStreamBatchMemOp(CUstream h, unsigned int count, CUstreamBatchMemOpParams *ops, unsigned int f)
{
	struct batch_memop_args a = {h, count, ops, f, 0, 1};
	return batch_memop(&a);
}

MV_EXPORT CUresult cuStreamBatchMemOp_ptsz(CUstream h, unsigned int count, CUstreamBatchMemOpParams *ops, unsigned int f)
{
	struct batch_memop_args a = {h, count, ops, f, 1, 1};
	return batch_memop(&a);
}

/* A copy between a CUDA array and device memory names the device side's first and last byte; the
 * array is the driver's. */
struct array_copy_args {
	int to_array, per_thread;
	CUarray arr;
	size_t off;
	CUdeviceptr dev;
	size_t bytes;
};

static CUresult do_array_copy(void *arg)
{
	const struct array_copy_args *a = arg;

	if (a->to_array)
		return (a->per_thread ? mv_real.cuMemcpyDtoA_v2_ptds : mv_real.cuMemcpyDtoA_v2)(a->arr, a->off, a->dev,
												 a->bytes);
	return (a->per_thread ? mv_real.cuMemcpyAtoD_v2_ptds : mv_real.cuMemcpyAtoD_v2)(a->dev, a->arr, a->off, a->bytes);
}

static CUresult array_copy(struct array_copy_args *a)
{
	uint64_t words[2];
	size_t n = 0;

	if (a->dev != 0 && a->bytes > 0) {
		words[n++] = a->dev;
		if (a->bytes > 1 && a->dev + a->bytes - 1 > a->dev)
			words[n++] = a->dev + a->bytes - 1;
	}
	return submit(NULL, a->per_thread, words, n, do_array_copy, a, MV_FK_COPY);
}

MV_EXPORT CUresult cuMemcpyAtoD_v2(CUdeviceptr dst, CUarray src, size_t off, size_t n)
{
	struct array_copy_args a = {0, 0, src, off, dst, n};
	return array_copy(&a);
}

MV_EXPORT CUresult cuMemcpyAtoD_v2_ptds(CUdeviceptr dst, CUarray src, size_t off, size_t n)
{
	struct array_copy_args a = {0, 1, src, off, dst, n};
	return array_copy(&a);
}

MV_EXPORT CUresult cuMemcpyDtoA_v2(CUarray dst, size_t off, CUdeviceptr src, size_t n)
{
	struct array_copy_args a = {1, 0, dst, off, src, n};
	return array_copy(&a);
}

MV_EXPORT CUresult cuMemcpyDtoA_v2_ptds(CUarray dst, size_t off, CUdeviceptr src, size_t n)
{
	struct array_copy_args a = {1, 1, dst, off, src, n};
	return array_copy(&a);
}
