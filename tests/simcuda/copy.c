/* Copies, memsets and stream memory operations, synchronous and asynchronous, with their
 * per-thread-default-stream forms. The device side of each is checked when it runs: an unmapped
 * address is a sticky illegal address. */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tests/simcuda/internal.h"

/* A device-side address must be in the device window or be pinned host memory. */
int sim_device_side(uint64_t addr, uint64_t bytes)
{
	return sim_is_device_addr(addr) || sim_mem_check(addr, bytes, 0, 1) == 0;
}

CUresult sim_copy_check(uint64_t dst, uint64_t src, uint64_t bytes, enum sim_copy_dir dir)
{
	if (dst == 0 || src == 0)
		return CUDA_ERROR_INVALID_VALUE;
	if ((dir == SIM_COPY_H2D || dir == SIM_COPY_D2D) && !sim_device_side(dst, bytes))
		return CUDA_ERROR_INVALID_VALUE;
	if ((dir == SIM_COPY_D2H || dir == SIM_COPY_D2D) && !sim_device_side(src, bytes))
		return CUDA_ERROR_INVALID_VALUE;
	return CUDA_SUCCESS;
}

void sim_copy_submit(struct sim_stream *s, struct sim_op *op)
{
	uint64_t bytes = op->u.c.bytes;
	enum sim_copy_dir dir = op->u.c.dir;

	if (dir == SIM_COPY_D2D && sim_cfg.ndevices > 1) {
		/* Between two devices it crosses the peer link, whether or not peer access is enabled. */
		int sd = sim_mem_device(op->u.c.src, bytes), dd = sim_mem_device(op->u.c.dst, bytes);
		if (sd >= 0 && dd >= 0 && sd != dd) {
			sim_stream_submit_peer(s, op, sd, dd, sim_cost_peer_ns(bytes));
			return;
		}
	}
	sim_stream_submit(s, op, sim_copy_engine(dir), sim_cost_copy_ns(dir, bytes));
}

/* A copy op, or NULL when there is no memory for one. */
static struct sim_op *copy_op_new(uint64_t dst, uint64_t src, uint64_t bytes, enum sim_copy_dir dir)
{
	struct sim_op *op = sim_op_new(SIM_OP_COPY);

	if (op != NULL) {
		op->u.c.dst = dst;
		op->u.c.src = src;
		op->u.c.bytes = bytes;
		op->u.c.dir = dir;
	}
	return op;
}

CUresult sim_copy_enqueue(struct sim_stream *s, uint64_t dst, uint64_t src, uint64_t bytes, enum sim_copy_dir dir)
{
	struct sim_op *op = copy_op_new(dst, src, bytes, dir);

	if (op == NULL)
		return CUDA_ERROR_OUT_OF_MEMORY;
	sim_copy_submit(s, op);
	return CUDA_SUCCESS;
}

CUresult sim_stream_finish(struct sim_stream *s, int sync)
{
	if (!sync)
		return CUDA_SUCCESS;
	sim_stream_wait_all(s);
	return sim_ctx_check(s->ctx);
}

/* An asynchronous copy from host memory. The real driver copies a pageable source to staging
 * memory before the call returns (the caller may reuse its buffer at once) and leaves only the DMA
 * pending; pinned memory is read when the copy runs. */
static CUresult copy_enqueue_h2d(struct sim_stream *s, uint64_t dst, uint64_t src, uint64_t bytes)
{
	struct sim_op *op;
	void *staged;

	if (sim_cfg.model_only || sim_mem_check(src, bytes, 0, 1) == 0)
		return sim_copy_enqueue(s, dst, src, bytes, SIM_COPY_H2D);
	staged = malloc(bytes);
	op = staged != NULL ? copy_op_new(dst, (uint64_t)(uintptr_t)staged, bytes, SIM_COPY_H2D) : NULL;
	if (op == NULL) {
		free(staged);
		return CUDA_ERROR_OUT_OF_MEMORY;
	}
	memcpy(staged, (const void *)(uintptr_t)src, bytes);
	op->u.c.staged = staged;
	sim_stream_submit(s, op, SIM_ENGINE_H2D, sim_cost_copy_ns(SIM_COPY_H2D, bytes));
	return CUDA_SUCCESS;
}

/* A call the capture cannot record: refused, and the capture ends in an error. */
static CUresult capture_refuse(struct sim_stream *s)
{
	pthread_mutex_lock(&sim_sched_lock);
	sim_capture_invalidate_locked(s);
	pthread_mutex_unlock(&sim_sched_lock);
	return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
}

/* During capture an asynchronous copy becomes a memcpy node, which reads its source when the graph
 * runs. Its host sides must be pinned: the driver cannot record a copy through pageable memory. */
static CUresult capture_copy(struct sim_stream *s, uint64_t dst, uint64_t src, uint64_t bytes, enum sim_copy_dir dir,
			     int sync)
{
	struct sim_op *op;
	CUresult r;

	if (sync)
		return capture_refuse(s);
	if (bytes == 0)
		return CUDA_SUCCESS;
	r = sim_copy_check(dst, src, bytes, dir);
	if (r != CUDA_SUCCESS)
		return r;
	if (!sim_device_side(dst, bytes) || !sim_device_side(src, bytes))
		return capture_refuse(s);
	op = copy_op_new(dst, src, bytes, dir);
	if (op == NULL)
		return CUDA_ERROR_OUT_OF_MEMORY;
	return sim_graph_capture_op(s, op);
}

static CUresult copy(uint64_t dst, uint64_t src, size_t bytes, enum sim_copy_dir dir, CUstream h, int per_thread,
		     int sync)
{
	struct sim_stream *s;
	CUresult r = sim_enter_stream(h, per_thread, &s);

	if (r != CUDA_SUCCESS)
		return r;
	if (s->capture != NULL)
		return capture_copy(s, dst, src, bytes, dir, sync);
	if (bytes == 0)
		return CUDA_SUCCESS;
	r = sim_copy_check(dst, src, bytes, dir);
	if (r != CUDA_SUCCESS)
		return r;
	/* An injected failure is reported by the call itself and copies nothing. */
	if (sim_inject_copy_failure(dir))
		return CUDA_ERROR_UNKNOWN;
	r = !sync && dir == SIM_COPY_H2D ? copy_enqueue_h2d(s, dst, src, bytes) : sim_copy_enqueue(s, dst, src, bytes, dir);
	if (r != CUDA_SUCCESS)
		return r;
	/* An asynchronous copy into pageable host memory returns only once it has completed, as
	 * the real driver's does (Numba reads such a copy's result without synchronising). */
	if (dir == SIM_COPY_D2H && sim_mem_check(dst, bytes, 0, 1) != 0)
		sync = 1;
	return sim_stream_finish(s, sync);
}

/* Unified addressing: the direction follows from which side of the window each pointer is on. */
enum sim_copy_dir sim_unified_dir(uint64_t dst, uint64_t src)
{
	int d = sim_is_device_addr(dst), s = sim_is_device_addr(src);
	return d && s ? SIM_COPY_D2D : d ? SIM_COPY_H2D : s ? SIM_COPY_D2H : SIM_COPY_H2H;
}

#define HPTR(p) ((uint64_t)(uintptr_t)(p))

SIM_EXPORT CUresult cuMemcpy(CUdeviceptr dst, CUdeviceptr src, size_t n)
{
	return copy(dst, src, n, sim_unified_dir(dst, src), NULL, 0, 1);
}
SIM_EXPORT CUresult cuMemcpy_ptds(CUdeviceptr dst, CUdeviceptr src, size_t n)
{
	return copy(dst, src, n, sim_unified_dir(dst, src), NULL, 1, 1);
}
SIM_EXPORT CUresult cuMemcpyAsync(CUdeviceptr dst, CUdeviceptr src, size_t n, CUstream h)
{
	return copy(dst, src, n, sim_unified_dir(dst, src), h, 0, 0);
}
SIM_EXPORT CUresult cuMemcpyAsync_ptsz(CUdeviceptr dst, CUdeviceptr src, size_t n, CUstream h)
{
	return copy(dst, src, n, sim_unified_dir(dst, src), h, 1, 0);
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

/* A memset op, or NULL when there is no memory for one. */
static struct sim_op *memset_op_new(uint64_t dst, uint32_t value, unsigned elem, uint64_t n)
{
	struct sim_op *op = sim_op_new(SIM_OP_MEMSET);

	if (op != NULL) {
		op->u.m.dst = dst;
		op->u.m.n = n;
		op->u.m.elem = elem;
		op->u.m.value = value;
	}
	return op;
}

CUresult sim_memset_enqueue(struct sim_stream *s, uint64_t dst, uint32_t value, unsigned elem, uint64_t n)
{
	struct sim_op *op = memset_op_new(dst, value, elem, n);

	if (op == NULL)
		return CUDA_ERROR_OUT_OF_MEMORY;
	sim_stream_submit(s, op, SIM_ENGINE_COMPUTE, sim_cost_kernel_ns(0, (double)n * elem));
	return CUDA_SUCCESS;
}

static CUresult memset_submit(CUdeviceptr dst, uint32_t value, unsigned elem, size_t n, CUstream h, int per_thread,
			      int sync)
{
	struct sim_stream *s;
	CUresult r = sim_enter_stream(h, per_thread, &s);

	if (r != CUDA_SUCCESS)
		return r;
	if (s->capture != NULL && sync)
		return capture_refuse(s);
	if (n == 0)
		return CUDA_SUCCESS;
	if (dst % elem != 0 || n > SIZE_MAX / elem || !sim_device_side(dst, n * elem))
		return CUDA_ERROR_INVALID_VALUE;
	if (s->capture != NULL) {
		/* Recorded as a memset node. */
		struct sim_op *op = memset_op_new(dst, value, elem, n);
		if (op == NULL)
			return CUDA_ERROR_OUT_OF_MEMORY;
		return sim_graph_capture_op(s, op);
	}
	r = sim_memset_enqueue(s, dst, value, elem, n);
	if (r != CUDA_SUCCESS)
		return r;
	return sim_stream_finish(s, sync);
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

/* ---- stream memory operations ----
 *
 * A write or wait on a 32- or 64-bit word runs on the stream's worker in order with the rest of its
 * work. A wait holds its stream until the condition holds, as it holds the device queue on hardware;
 * it rereads the word (mapping checked each time) until then, or until the context faults. */

struct memop {
	struct sim_ctx *ctx;
	uint64_t addr, value;
	unsigned flags;
	int wide, wait;
	uint64_t seen;
};

static int memop_access(void *arg)
{
	struct memop *m = arg;

	if (!m->wait) {
		if (m->wide)
			__atomic_store_n((uint64_t *)(uintptr_t)m->addr, m->value, __ATOMIC_SEQ_CST);
		else
			__atomic_store_n((uint32_t *)(uintptr_t)m->addr, (uint32_t)m->value, __ATOMIC_SEQ_CST);
	} else if (m->wide) {
		m->seen = __atomic_load_n((uint64_t *)(uintptr_t)m->addr, __ATOMIC_SEQ_CST);
	} else {
		m->seen = __atomic_load_n((uint32_t *)(uintptr_t)m->addr, __ATOMIC_SEQ_CST);
	}
	return 0;
}

static int memop_holds(const struct memop *m)
{
	uint64_t v = m->seen, x = m->value;

	if (!m->wide) {
		v = (uint32_t)v;
		x = (uint32_t)x;
	}
	switch (m->flags & 3u) {
	case CU_STREAM_WAIT_VALUE_GEQ:
		return m->wide ? (int64_t)(v - x) >= 0 : (int32_t)(uint32_t)(v - x) >= 0;
	case CU_STREAM_WAIT_VALUE_EQ:
		return v == x;
	case CU_STREAM_WAIT_VALUE_AND:
		return (v & x) != 0;
	default:
		return (m->wide ? ~(v | x) : (uint32_t) ~(v | x)) != 0;
	}
}

static void memop_run(void *arg)
{
	struct memop *m = arg;
	const struct timespec pause = {0, 50000};

	for (;;) {
		if (sim_mem_check(m->addr, m->wide ? 8 : 4, m->wait ? 1 : 3, 1) != 0 ||
		    (!sim_cfg.model_only && sim_guarded(memop_access, m) != 0)) {
			sim_ctx_fault(m->ctx, CUDA_ERROR_ILLEGAL_ADDRESS);
			break;
		}
		if (!m->wait || sim_cfg.model_only || memop_holds(m))
			break;
		if (__atomic_load_n(&m->ctx->sticky, __ATOMIC_ACQUIRE) != CUDA_SUCCESS)
			break;
		nanosleep(&pause, NULL);
	}
	free(m);
}

/* Checks one operation as the driver does before anything is queued. */
static CUresult memop_check(uint64_t addr, int wide, int wait, unsigned flags, int v1)
{
	if (addr == 0 || addr % (wide ? 8 : 4) != 0 || !sim_device_side(addr, wide ? 8 : 4))
		return CUDA_ERROR_INVALID_VALUE;
	/* Only the first version lets a write skip its memory barrier; here every write is ordered. */
	if (!wait)
		return flags == 0 || (v1 && flags == CU_STREAM_WRITE_VALUE_NO_MEMORY_BARRIER) ? CUDA_SUCCESS
											 : CUDA_ERROR_INVALID_VALUE;
	if (flags & CU_STREAM_WAIT_VALUE_FLUSH)
		return CUDA_ERROR_NOT_SUPPORTED;
	return flags <= CU_STREAM_WAIT_VALUE_NOR ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

static CUresult memop_enqueue(struct sim_stream *s, uint64_t addr, uint64_t value, int wide, int wait, unsigned flags)
{
	struct memop *m = calloc(1, sizeof(*m));
	struct sim_op *op = sim_op_new(SIM_OP_HOSTFN);

	if (m == NULL || op == NULL) {
		free(m);
		free(op);
		return CUDA_ERROR_OUT_OF_MEMORY;
	}
	*m = (struct memop){s->ctx, addr, value, flags, wide, wait, 0};
	op->u.h.fn = memop_run;
	op->u.h.data = m;
	sim_stream_submit(s, op, SIM_NENGINES, 0);
	return CUDA_SUCCESS;
}

static CUresult memop(CUstream h, int per_thread, uint64_t addr, uint64_t value, int wide, int wait, unsigned flags,
		      int v1)
{
	struct sim_stream *s;
	CUresult r = sim_enter_stream(h, per_thread, &s);

	if (r != CUDA_SUCCESS)
		return r;
	if (s->capture != NULL)
		return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
	r = memop_check(addr, wide, wait, flags, v1);
	if (r != CUDA_SUCCESS)
		return r;
	return memop_enqueue(s, addr, value, wide, wait, wait ? flags : 0);
}

SIM_EXPORT CUresult cuStreamWriteValue32_v2(CUstream h, CUdeviceptr a, cuuint32_t v, unsigned int f)
{
	return memop(h, 0, a, v, 0, 0, f, 0);
}
SIM_EXPORT CUresult cuStreamWriteValue32_v2_ptsz(CUstream h, CUdeviceptr a, cuuint32_t v, unsigned int f)
{
	return memop(h, 1, a, v, 0, 0, f, 0);
}
SIM_EXPORT CUresult cuStreamWriteValue64_v2(CUstream h, CUdeviceptr a, cuuint64_t v, unsigned int f)
{
	return memop(h, 0, a, v, 1, 0, f, 0);
}
SIM_EXPORT CUresult cuStreamWriteValue64_v2_ptsz(CUstream h, CUdeviceptr a, cuuint64_t v, unsigned int f)
{
	return memop(h, 1, a, v, 1, 0, f, 0);
}
SIM_EXPORT CUresult cuStreamWaitValue32_v2(CUstream h, CUdeviceptr a, cuuint32_t v, unsigned int f)
{
	return memop(h, 0, a, v, 0, 1, f, 0);
}
SIM_EXPORT CUresult cuStreamWaitValue32_v2_ptsz(CUstream h, CUdeviceptr a, cuuint32_t v, unsigned int f)
{
	return memop(h, 1, a, v, 0, 1, f, 0);
}
SIM_EXPORT CUresult cuStreamWaitValue64_v2(CUstream h, CUdeviceptr a, cuuint64_t v, unsigned int f)
{
	return memop(h, 0, a, v, 1, 1, f, 0);
}
SIM_EXPORT CUresult cuStreamWaitValue64_v2_ptsz(CUstream h, CUdeviceptr a, cuuint64_t v, unsigned int f)
{
	return memop(h, 1, a, v, 1, 1, f, 0);
}

#define SIM_MAX_BATCH_MEMOPS 256 /* the most one cuStreamBatchMemOp takes */

/* What one batch entry asks for: 0 and its fields, or the error that refuses the batch. */
static CUresult batch_entry(const CUstreamBatchMemOpParams *p, int v1, int *skip, int *wide, int *wait)
{
	*skip = 0;
	switch (p->operation) {
	case CU_STREAM_MEM_OP_WAIT_VALUE_32:
	case CU_STREAM_MEM_OP_WAIT_VALUE_64:
		*wait = 1;
		*wide = p->operation == CU_STREAM_MEM_OP_WAIT_VALUE_64;
		return memop_check(p->waitValue.address, *wide, 1, p->waitValue.flags, v1);
	case CU_STREAM_MEM_OP_WRITE_VALUE_32:
	case CU_STREAM_MEM_OP_WRITE_VALUE_64:
		*wait = 0;
		*wide = p->operation == CU_STREAM_MEM_OP_WRITE_VALUE_64;
		return memop_check(p->writeValue.address, *wide, 0, p->writeValue.flags, v1);
	case CU_STREAM_MEM_OP_BARRIER:
		/* Every operation here is already ordered and visible. The first version has no barrier. */
		*skip = 1;
		if (v1)
			return CUDA_ERROR_INVALID_VALUE;
		return p->memoryBarrier.flags <= CU_STREAM_MEMORY_BARRIER_TYPE_GPU ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
	case CU_STREAM_MEM_OP_FLUSH_REMOTE_WRITES:
		return CUDA_ERROR_NOT_SUPPORTED;
	default:
		return CUDA_ERROR_INVALID_VALUE;
	}
}

static CUresult batch_memop(CUstream h, int per_thread, unsigned count, CUstreamBatchMemOpParams *ops, unsigned flags,
			    int v1)
{
	struct sim_stream *s;
	CUresult r = sim_enter_stream(h, per_thread, &s);
	int skip, wide, wait;

	if (r != CUDA_SUCCESS)
		return r;
	if (count == 0 || count > SIM_MAX_BATCH_MEMOPS || ops == NULL || flags != 0)
		return CUDA_ERROR_INVALID_VALUE;
	if (s->capture != NULL)
		return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
	for (unsigned i = 0; i < count; i++) {
		r = batch_entry(&ops[i], v1, &skip, &wide, &wait);
		if (r != CUDA_SUCCESS)
			return r;
	}
	for (unsigned i = 0; i < count && r == CUDA_SUCCESS; i++) {
		batch_entry(&ops[i], v1, &skip, &wide, &wait);
		if (skip)
			continue;
		if (wait)
			r = memop_enqueue(s, ops[i].waitValue.address, wide ? ops[i].waitValue.value64 : ops[i].waitValue.value,
					  wide, 1, ops[i].waitValue.flags);
		else
			r = memop_enqueue(s, ops[i].writeValue.address,
					  wide ? ops[i].writeValue.value64 : ops[i].writeValue.value, wide, 0, 0);
	}
	return r;
}

SIM_EXPORT CUresult cuStreamBatchMemOp_v2(CUstream h, unsigned int count, CUstreamBatchMemOpParams *ops, unsigned int f)
{
	return batch_memop(h, 0, count, ops, f, 0);
}
SIM_EXPORT CUresult cuStreamBatchMemOp_v2_ptsz(CUstream h, unsigned int count, CUstreamBatchMemOpParams *ops,
					       unsigned int f)
{
	return batch_memop(h, 1, count, ops, f, 0);
}

/* The first versions, which the runtime still asks for by the versions it was built against. */
SIM_EXPORT CUresult cuStreamWriteValue32(CUstream h, CUdeviceptr a, cuuint32_t v, unsigned int f)
{
	return memop(h, 0, a, v, 0, 0, f, 1);
}
SIM_EXPORT CUresult cuStreamWriteValue32_ptsz(CUstream h, CUdeviceptr a, cuuint32_t v, unsigned int f)
{
	return memop(h, 1, a, v, 0, 0, f, 1);
}
SIM_EXPORT CUresult cuStreamWriteValue64(CUstream h, CUdeviceptr a, cuuint64_t v, unsigned int f)
{
	return memop(h, 0, a, v, 1, 0, f, 1);
}
SIM_EXPORT CUresult cuStreamWriteValue64_ptsz(CUstream h, CUdeviceptr a, cuuint64_t v, unsigned int f)
{
	return memop(h, 1, a, v, 1, 0, f, 1);
}
SIM_EXPORT CUresult cuStreamWaitValue32(CUstream h, CUdeviceptr a, cuuint32_t v, unsigned int f)
{
	return memop(h, 0, a, v, 0, 1, f, 1);
}
SIM_EXPORT CUresult cuStreamWaitValue32_ptsz(CUstream h, CUdeviceptr a, cuuint32_t v, unsigned int f)
{
	return memop(h, 1, a, v, 0, 1, f, 1);
}
SIM_EXPORT CUresult cuStreamWaitValue64(CUstream h, CUdeviceptr a, cuuint64_t v, unsigned int f)
{
	return memop(h, 0, a, v, 1, 1, f, 1);
}
SIM_EXPORT CUresult cuStreamWaitValue64_ptsz(CUstream h, CUdeviceptr a, cuuint64_t v, unsigned int f)
{
	return memop(h, 1, a, v, 1, 1, f, 1);
}
SIM_EXPORT CUresult cuStreamBatchMemOp(CUstream h, unsigned int count, CUstreamBatchMemOpParams *ops, unsigned int f)
{
	return batch_memop(h, 0, count, ops, f, 1);
}
SIM_EXPORT CUresult cuStreamBatchMemOp_ptsz(CUstream h, unsigned int count, CUstreamBatchMemOpParams *ops,
					    unsigned int f)
{
	return batch_memop(h, 1, count, ops, f, 1);
}
