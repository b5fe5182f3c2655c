/* libmemvirt.so and the pitched, peer and batched copies, the pitched memsets and the stream memory
 * operations: each one, given a buffer that is paged out, brings it in first and leaves exactly the
 * bytes a plain driver would. The safety net is off (SIMCUDA_NO_HOST_VMM=1), so an operation that
 * reached the device without its buffer being brought in would be a sticky illegal address. With
 * the net on, a write the app ordered before a later use is not undone by that use's page-in. */
#include "config.h"

#include <cudaTypedefs.h>

#include "tests/unit/interposetest.h"

#define BUF (64 * ITEST_KIB)   /* one granule */
#define PITCH 1024
#define ROWS 48
#define ENV_OFF "SIMCUDA_MEM=256KiB", "SIMCUDA_GRANULARITY=64KiB", "MEMVIRT_SLAB_THRESHOLD=16KiB", \
	"SIMCUDA_NO_HOST_VMM=1"

/* Five buffers on a device (and budget) of four: a is the one paged out, ref mirrors its bytes. */
struct fix {
	CUdeviceptr a, o[4];
	unsigned char ref[BUF], host[BUF];
	CUstream s;
	uint64_t seed;
};

/* Pages a out: the other four, used after it, take the whole budget. */
static void evict_a(struct fix *f)
{
	for (int i = 0; i < 4; i++)
		CHK(cuMemsetD8(f->o[i], (unsigned char)(0x40 + i), BUF));
	CHK(cuCtxSynchronize());
	ck_assert_msg(itest_counters().host_bytes >= BUF, "a is not paged out");
}

static void fix_start(struct fix *f)
{
	f->seed = 12345;
	CHK(cuStreamCreate(&f->s, CU_STREAM_NON_BLOCKING));
	CHK(cuMemAlloc(&f->a, BUF));
	itest_random_bytes(&f->seed, f->ref, BUF);
	CHK(cuMemcpyHtoD(f->a, f->ref, BUF));
	for (int i = 0; i < 4; i++)
		CHK(cuMemAlloc(&f->o[i], BUF));
	evict_a(f);
}

/* The pitched region of ROWS rows of width w starting x bytes into row y of a, as a 2D copy side. */
static void a_side(const struct fix *f, CUDA_MEMCPY2D *p, int dst, size_t x, size_t y)
{
	if (dst) {
		p->dstMemoryType = CU_MEMORYTYPE_DEVICE;
		p->dstDevice = f->a;
		p->dstPitch = PITCH;
		p->dstXInBytes = x;
		p->dstY = y;
	} else {
		p->srcMemoryType = CU_MEMORYTYPE_DEVICE;
		p->srcDevice = f->a;
		p->srcPitch = PITCH;
		p->srcXInBytes = x;
		p->srcY = y;
	}
}

static void host_side(struct fix *f, CUDA_MEMCPY2D *p, int dst, unsigned char *h)
{
	if (dst) {
		p->dstMemoryType = CU_MEMORYTYPE_HOST;
		p->dstHost = h;
		p->dstPitch = PITCH;
	} else {
		p->srcMemoryType = CU_MEMORYTYPE_HOST;
		p->srcHost = h;
		p->srcPitch = PITCH;
	}
}

/* What a pitched write of ROWS rows of w bytes from src (pitch PITCH) at (x, y) leaves in ref. */
static void ref_rows(struct fix *f, size_t x, size_t y, size_t w, const unsigned char *src)
{
	for (size_t r = 0; r < ROWS; r++)
		memcpy(f->ref + (y + r) * PITCH + x, src + r * PITCH, w);
}

static void expect_rows(const unsigned char *got, const unsigned char *want, size_t w, const char *what)
{
	for (size_t r = 0; r < ROWS; r++)
		for (size_t i = 0; i < w; i++)
			if (got[r * PITCH + i] != want[r * PITCH + i])
				ck_abort_msg("%s: row %zu byte %zu is %#x, expected %#x", what, r, i, got[r * PITCH + i],
					     want[r * PITCH + i]);
}

/* Each case runs on a paged-out a and leaves ref as a must then be. */
enum op {
	OP_2D_D2H, OP_2D_H2D_PTDS, OP_2D_UNALIGNED_D2D, OP_2D_ASYNC_D2H, OP_2D_ASYNC_H2D_PTSZ, OP_3D_D2H, OP_3D_ASYNC_H2D,
	OP_PEER, OP_PEER_ASYNC, OP_BATCH, OP_SET2D8, OP_SET2D16_ASYNC, OP_SET2D32_PTDS, OP_WRITE32, OP_WRITE64_PTSZ,
	OP_WAIT32, OP_BATCH_MEMOP, OP_V1_MEMOPS, OP_V1_BATCH, OP_COUNT
};

static void run_2d(struct fix *f, enum op op)
{
	CUDA_MEMCPY2D p;
	unsigned char src[ROWS * PITCH];
	size_t w = 700, x = 100, y = 5;

	memset(&p, 0, sizeof(p));
	memset(f->host, 0, sizeof(f->host));
	itest_random_bytes(&f->seed, src, sizeof(src));
	p.WidthInBytes = w;
	p.Height = ROWS;
	switch (op) {
	case OP_2D_D2H:
	case OP_2D_ASYNC_D2H:
		a_side(f, &p, 0, x, y);
		host_side(f, &p, 1, f->host);
		if (op == OP_2D_D2H)
			CHK(cuMemcpy2D(&p));
		else
			CHK(cuMemcpy2DAsync(&p, f->s));
		CHK(cuCtxSynchronize());
		expect_rows(f->host, f->ref + y * PITCH + x, w, "2D copy from a paged-out buffer");
		return;
	case OP_2D_H2D_PTDS:
		a_side(f, &p, 1, x, y);
		host_side(f, &p, 0, src);
		CHK(((PFN_cuMemcpy2D_v7000_ptds)simtest_sym("cuMemcpy2D_v2_ptds"))(&p));
		break;
	case OP_2D_ASYNC_H2D_PTSZ:
		a_side(f, &p, 1, x, y);
		host_side(f, &p, 0, src);
		CHK(((PFN_cuMemcpy2DAsync_v7000_ptsz)simtest_sym("cuMemcpy2DAsync_v2_ptsz"))(&p, NULL));
		break;
	default: /* OP_2D_UNALIGNED_D2D: from o[0] (all 0x40) into a */
		a_side(f, &p, 1, x, y);
		p.srcMemoryType = CU_MEMORYTYPE_DEVICE;
		p.srcDevice = f->o[0];
		p.srcPitch = PITCH;
		memset(src, 0x40, sizeof(src));
		CHK(cuMemcpy2DUnaligned(&p));
		break;
	}
	CHK(cuCtxSynchronize());
	ref_rows(f, x, y, w, src);
}

/* Two planes of ROWS / 2 rows each, planes ROWS / 2 + 4 rows apart in a. */
static void run_3d(struct fix *f, enum op op)
{
	CUDA_MEMCPY3D p;
	unsigned char src[ROWS * PITCH];
	size_t w = 300, x = 10, plane = ROWS / 2 + 4;

	memset(&p, 0, sizeof(p));
	itest_random_bytes(&f->seed, src, sizeof(src));
	p.WidthInBytes = w;
	p.Height = ROWS / 2;
	p.Depth = 2;
	if (op == OP_3D_D2H) {
		p.srcMemoryType = CU_MEMORYTYPE_DEVICE;
		p.srcDevice = f->a;
		p.srcXInBytes = x;
		p.srcPitch = PITCH;
		p.srcHeight = plane;
		p.dstMemoryType = CU_MEMORYTYPE_HOST;
		p.dstHost = f->host;
		p.dstPitch = PITCH;
		p.dstHeight = ROWS / 2;
		CHK(cuMemcpy3D(&p));
		for (size_t z = 0; z < 2; z++)
			for (size_t r = 0; r < ROWS / 2; r++)
				ck_assert_msg(memcmp(f->host + (z * ROWS / 2 + r) * PITCH, f->ref + (z * plane + r) * PITCH + x, w) ==
						      0,
					      "3D copy from a paged-out buffer: plane %zu row %zu differs", z, r);
		return;
	}
	p.dstMemoryType = CU_MEMORYTYPE_DEVICE;
	p.dstDevice = f->a;
	p.dstXInBytes = x;
	p.dstPitch = PITCH;
	p.dstHeight = plane;
	p.srcMemoryType = CU_MEMORYTYPE_HOST;
	p.srcHost = src;
	p.srcPitch = PITCH;
	p.srcHeight = ROWS / 2;
	CHK(cuMemcpy3DAsync(&p, f->s));
	CHK(cuStreamSynchronize(f->s));
	for (size_t z = 0; z < 2; z++)
		for (size_t r = 0; r < ROWS / 2; r++)
			memcpy(f->ref + (z * plane + r) * PITCH + x, src + (z * ROWS / 2 + r) * PITCH, w);
}

static void run_peer_batch(struct fix *f, enum op op)
{
	if (op == OP_PEER) {
		CHK(cuMemcpyPeer(f->o[1], simtest_ctx, f->a + 4096, simtest_ctx, 8192));
		CHK(cuMemcpyDtoH(f->host, f->o[1], 8192));
		ck_assert_msg(memcmp(f->host, f->ref + 4096, 8192) == 0, "peer copy from a paged-out buffer differs");
	} else if (op == OP_PEER_ASYNC) {
		CHK(cuMemcpyPeerAsync(f->a + 100, simtest_ctx, f->o[2], simtest_ctx, 5000, f->s));
		CHK(cuStreamSynchronize(f->s));
		memset(f->ref + 100, 0x42, 5000);
	} else {
		unsigned char in[3000];
		CUdeviceptr dsts[2] = {(CUdeviceptr)(uintptr_t)f->host, f->a + 20000};
		CUdeviceptr srcs[2] = {f->a + 333, (CUdeviceptr)(uintptr_t)in};
		size_t sizes[2] = {6000, sizeof(in)}, idx = 0;
		CUmemcpyAttributes attr;

		memset(&attr, 0, sizeof(attr));
		attr.srcAccessOrder = CU_MEMCPY_SRC_ACCESS_ORDER_STREAM;
		itest_random_bytes(&f->seed, in, sizeof(in));
		CHK(cuMemcpyBatchAsync(dsts, srcs, sizes, 2, &attr, &idx, 1, f->s));
		CHK(cuStreamSynchronize(f->s));
		ck_assert_msg(memcmp(f->host, f->ref + 333, 6000) == 0, "batched copy from a paged-out buffer differs");
		memcpy(f->ref + 20000, in, sizeof(in));
	}
}

static void run_memset2d(struct fix *f, enum op op)
{
	size_t w = 100, y = 3, x = 64; /* elements */

	if (op == OP_SET2D8) {
		CHK(cuMemsetD2D8(f->a + y * PITCH + x, PITCH, 0x5a, w, ROWS));
		for (size_t r = 0; r < ROWS; r++)
			memset(f->ref + (y + r) * PITCH + x, 0x5a, w);
	} else if (op == OP_SET2D16_ASYNC) {
		CHK(cuMemsetD2D16Async(f->a + y * PITCH + x, PITCH, 0xbeef, w, ROWS, f->s));
		CHK(cuStreamSynchronize(f->s));
		for (size_t r = 0; r < ROWS; r++)
			for (size_t i = 0; i < w; i++)
				memcpy(f->ref + (y + r) * PITCH + x + 2 * i, &(uint16_t){0xbeef}, 2);
	} else {
		CHK(((PFN_cuMemsetD2D32_v7000_ptds)simtest_sym("cuMemsetD2D32_v2_ptds"))(f->a + y * PITCH + x, PITCH,
											  0x01020304u, w, ROWS));
		for (size_t r = 0; r < ROWS; r++)
			for (size_t i = 0; i < w; i++)
				memcpy(f->ref + (y + r) * PITCH + x + 4 * i, &(uint32_t){0x01020304u}, 4);
	}
	CHK(cuCtxSynchronize());
}

static void run_memop(struct fix *f, enum op op)
{
	uint64_t v64 = 0x1122334455667788ull;
	uint32_t v32 = 0xcafef00du;

	if (op == OP_WRITE32) {
		CHK(cuStreamWriteValue32(f->s, f->a + 512, v32, 0));
		memcpy(f->ref + 512, &v32, 4);
	} else if (op == OP_WRITE64_PTSZ) {
		CHK(((PFN_cuStreamWriteValue64_v11070_ptsz)simtest_sym("cuStreamWriteValue64_v2_ptsz"))(NULL, f->a + 1024,
													 v64, 0));
		CHK(((PFN_cuStreamSynchronize_v7000_ptsz)simtest_sym("cuStreamSynchronize_ptsz"))(NULL));
		memcpy(f->ref + 1024, &v64, 8);
	} else if (op == OP_WAIT32) {
		uint32_t have;
		memcpy(&have, f->ref + 2048, 4);
		CHK(cuStreamWaitValue32(f->s, f->a + 2048, have, CU_STREAM_WAIT_VALUE_EQ));
	} else {
		CUstreamBatchMemOpParams ops[3];
		uint32_t have;
		memset(ops, 0, sizeof(ops));
		memcpy(&have, f->ref + 4096, 4);
		ops[0].waitValue.operation = CU_STREAM_MEM_OP_WAIT_VALUE_32;
		ops[0].waitValue.address = f->a + 4096;
		ops[0].waitValue.value = have;
		ops[0].waitValue.flags = CU_STREAM_WAIT_VALUE_EQ;
		ops[1].writeValue.operation = CU_STREAM_MEM_OP_WRITE_VALUE_64;
		ops[1].writeValue.address = f->a + 8192;
		ops[1].writeValue.value64 = v64;
		ops[2].writeValue.operation = CU_STREAM_MEM_OP_WRITE_VALUE_32;
		ops[2].writeValue.address = f->a + BUF - 4;
		ops[2].writeValue.value = v32;
		CHK(cuStreamBatchMemOp(f->s, 3, ops, 0));
		memcpy(f->ref + 8192, &v64, 8);
		memcpy(f->ref + BUF - 4, &v32, 4);
	}
	CHK(cuStreamSynchronize(f->s));
}

/* The first versions, which the runtime still asks for by older version numbers. */
static void run_v1(struct fix *f, enum op op)
{
	uint64_t v64 = 0x0102030405060708ull;
	uint32_t have;

	if (op == OP_V1_MEMOPS) {
		CUstreamBatchMemOpParams w;
		memset(&w, 0, sizeof(w));
		w.writeValue.operation = CU_STREAM_MEM_OP_WRITE_VALUE_32;
		w.writeValue.address = f->a + 40;
		w.writeValue.value = 0x99887766u;
		memcpy(&have, f->ref + 3000, 4);
		CHK(((PFN_cuStreamWaitValue32_v8000)simtest_sym("cuStreamWaitValue32"))(f->s, f->a + 3000, have,
											  CU_STREAM_WAIT_VALUE_EQ));
		CHK(((PFN_cuStreamWriteValue64_v9000)simtest_sym("cuStreamWriteValue64"))(f->s, f->a + 16, v64, 0));
		CHK(((PFN_cuStreamBatchMemOp_v8000)simtest_sym("cuStreamBatchMemOp"))(f->s, 1, &w, 0));
		CHK(cuStreamSynchronize(f->s));
		memcpy(f->ref + 16, &v64, 8);
		memcpy(f->ref + 40, &(uint32_t){0x99887766u}, 4);
	} else {
		CUdeviceptr dst = (CUdeviceptr)(uintptr_t)f->host, src = f->a + 7;
		size_t size = 9000, idx = 0, fail = 77;
		CUmemcpyAttributes attr;
		memset(&attr, 0, sizeof(attr));
		attr.srcAccessOrder = CU_MEMCPY_SRC_ACCESS_ORDER_STREAM;
		CHK(((PFN_cuMemcpyBatchAsync_v12080)simtest_sym("cuMemcpyBatchAsync"))(&dst, &src, &size, 1, &attr, &idx, 1,
											&fail, f->s));
		CHK(cuStreamSynchronize(f->s));
		ck_assert_msg(memcmp(f->host, f->ref + 7, 9000) == 0, "batched copy from a paged-out buffer differs");
	}
}

START_TEST(test_paged_out_buffer)
{
	static struct fix f;
	enum op op = (enum op)_i;

	simtest_start(ENV_OFF);
	fix_start(&f);
	if (op <= OP_2D_ASYNC_H2D_PTSZ)
		run_2d(&f, op);
	else if (op <= OP_3D_ASYNC_H2D)
		run_3d(&f, op);
	else if (op <= OP_BATCH)
		run_peer_batch(&f, op);
	else if (op <= OP_SET2D32_PTDS)
		run_memset2d(&f, op);
	else if (op <= OP_BATCH_MEMOP)
		run_memop(&f, op);
	else
		run_v1(&f, op);
	ck_assert_msg(itest_counters().page_ins >= 1, "case %d brought nothing in", _i);
	itest_expect_bytes(f.a, f.ref, BUF, "the paged-out buffer afterwards");
	CHK(cuCtxSynchronize());
}
END_TEST

/* With the safety net on, a is mapped onto its host copy while paged out. The app orders a pitched
 * memset on one stream (held back by a gate until later) before a copy on another stream that
 * reads a. The copy's page-in is slow: had the memset not brought a in itself, it would land on
 * the freshly mapped pages and the page-in's copy, finishing after it, would overwrite it. */
START_TEST(test_net_ordered_write_kept)
{
	static struct fix f;
	uint32_t *gate;
	unsigned char *out;
	CUstream s2;
	CUevent e;
	size_t w = 200, y = 7, x = 128;

	simtest_start("SIMCUDA_MEM=256KiB", "SIMCUDA_GRANULARITY=64KiB", "MEMVIRT_SLAB_THRESHOLD=16KiB",
		      "SIMCUDA_DELAY_H2D_US=200000");
	fix_start(&f);
	CHK(cuMemHostAlloc((void **)&gate, 4096, 0));
	/* Pinned: an asynchronous copy into pageable memory would return only once it completed,
	 * which here is after the gate this thread opens below. */
	CHK(cuMemHostAlloc((void **)&out, BUF, 0));
	*gate = 0;
	CHK(cuStreamCreate(&s2, CU_STREAM_NON_BLOCKING));
	CHK(cuEventCreate(&e, CU_EVENT_DISABLE_TIMING));
	CHK(cuStreamWaitValue32(s2, (CUdeviceptr)(uintptr_t)gate, 1, CU_STREAM_WAIT_VALUE_GEQ));
	CHK(cuMemsetD2D32Async(f.a + y * PITCH + x, PITCH, 0x0badf00du, w, ROWS, s2));
	CHK(cuEventRecord(e, s2));
	CHK(cuStreamWaitEvent(f.s, e, 0));
	CHK(cuMemcpyDtoHAsync(out, f.a, BUF, f.s));
	__atomic_store_n(gate, 1, __ATOMIC_SEQ_CST);
	CHK(cuStreamSynchronize(f.s));
	for (size_t r = 0; r < ROWS; r++)
		for (size_t i = 0; i < w; i++)
			memcpy(f.ref + (y + r) * PITCH + x + 4 * i, &(uint32_t){0x0badf00du}, 4);
	for (size_t i = 0; i < BUF; i++)
		if (out[i] != f.ref[i])
			ck_abort_msg("byte %zu is %#x, expected %#x: the app's ordered write was lost", i, out[i],
				     f.ref[i]);
	CHK(cuCtxSynchronize());
	CHK(cuMemFreeHost(out));
	CHK(cuMemFreeHost(gate));
}
END_TEST

/* A unified copy whose source is device memory of another allocator (here the app's own mapping,
 * which the device cannot even access yet) is never read by the CPU to look for pointers: on a
 * GPU that read is a fault. The copy itself reaches the driver, which reports the bad source. */
START_TEST(test_unified_device_source_not_read)
{
	CUmemAllocationProp prop;
	CUmemGenericAllocationHandle h;
	CUdeviceptr va, dst;
	CUstream s;

	simtest_start(ENV_OFF);
	memset(&prop, 0, sizeof(prop));
	prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
	prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
	prop.location.id = simtest_dev;
	CHK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
	CHK(cuMemAlloc(&dst, BUF));
	CHK(cuMemAddressReserve(&va, BUF, 0, 0, 0));
	CHK(cuMemCreate(&h, BUF, &prop, 0));
	CHK(cuMemMap(va, BUF, 0, h, 0));
	CHK(cuMemcpyAsync(dst, va, 64, s));
	CHK_ERR(cuStreamSynchronize(s), CUDA_ERROR_ILLEGAL_ADDRESS);
}
END_TEST

/* ---- stream waits submitted before the write they wait for ---- */

/* Pages the four others in and out in turn, so that a, used before them, would be the next victim;
 * then writes the word a stream waits for, on another stream, from this thread: the wait, and what
 * its stream holds behind it, can complete only now. Checks every byte of a against f->ref. */
static void evict_around_then_release(struct fix *f, CUstream waiting, CUdeviceptr word, uint32_t v)
{
	static unsigned char want[BUF];

	for (int i = 0; i < 4; i++)
		CHK(cuMemsetD8(f->o[i], (unsigned char)(0x50 + i), BUF));
	CHK(cuStreamWriteValue32(f->s, word, v, 0));
	CHK(cuStreamSynchronize(waiting));
	CHK(cuCtxSynchronize());
	itest_expect_bytes(f->a, f->ref, BUF, "a");
	for (int i = 0; i < 4; i++) {
		memset(want, 0x50 + i, BUF);
		itest_expect_bytes(f->o[i], want, BUF, "another buffer");
	}
}

/* A stream waits on a word of a, a paged-out buffer, that this thread writes later on another
 * stream. Making room meanwhile must not page a out: that page-out would wait for the waiting
 * stream, which waits for a write this thread, waiting for the room, never submits. A hang here is
 * caught by the case's timeout. */
START_TEST(test_wait_before_write_named_buffer)
{
	static struct fix f;
	CUstream s2;
	uint32_t v = 0xfeedf00du;

	simtest_start(ENV_OFF);
	fix_start(&f);
	CHK(cuStreamCreate(&s2, CU_STREAM_NON_BLOCKING));
	CHK(cuStreamWaitValue32(s2, f.a + 512, v, CU_STREAM_WAIT_VALUE_EQ));
	memcpy(f.ref + 512, &v, 4);
	evict_around_then_release(&f, s2, f.a + 512, v);
}
END_TEST

/* The same with the word in slab memory (never paged) and a used on the waiting stream behind the
 * wait: a's page-out would wait for that use, which waits for the write. */
START_TEST(test_wait_before_write_later_use)
{
	static struct fix f;
	CUdeviceptr flag;
	CUstream s2;

	simtest_start(ENV_OFF);
	fix_start(&f);
	CHK(cuMemAlloc(&flag, 64));
	CHK(cuMemsetD32(flag, 0, 16));
	CHK(cuStreamCreate(&s2, CU_STREAM_NON_BLOCKING));
	CHK(cuStreamWaitValue32(s2, flag, 1, CU_STREAM_WAIT_VALUE_EQ));
	CHK(cuMemsetD8Async(f.a + 100, 0x77, 300, s2));
	memset(f.ref + 100, 0x77, 300);
	evict_around_then_release(&f, s2, flag, 1);
}
END_TEST

/* The same with a freed behind the wait: its pages go back only once that use has completed, and
 * the room they would make must not be waited for meanwhile. */
START_TEST(test_wait_before_write_freed)
{
	static struct fix f;
	static unsigned char want[BUF];
	CUdeviceptr flag;
	CUstream s2;

	simtest_start(ENV_OFF);
	fix_start(&f);
	CHK(cuMemAlloc(&flag, 64));
	CHK(cuMemsetD32(flag, 0, 16));
	CHK(cuStreamCreate(&s2, CU_STREAM_NON_BLOCKING));
	CHK(cuStreamWaitValue32(s2, flag, 1, CU_STREAM_WAIT_VALUE_EQ));
	CHK(cuMemsetD8Async(f.a, 0x77, BUF, s2));
	CHK(cuMemFree(f.a));
	for (int i = 0; i < 4; i++)
		CHK(cuMemsetD8(f.o[i], (unsigned char)(0x50 + i), BUF));
	CHK(cuStreamWriteValue32(f.s, flag, 1, 0));
	CHK(cuStreamSynchronize(s2));
	CHK(cuCtxSynchronize());
	for (int i = 0; i < 4; i++) {
		memset(want, 0x50 + i, BUF);
		itest_expect_bytes(f.o[i], want, BUF, "another buffer");
	}
}
END_TEST

/* Buffers are used one after another behind a wait that only this thread would satisfy, later:
 * once every buffer that could make room is held by the wait, the next one cannot come in. The
 * library looks for a while (at least 60 s), then refuses that call with CUDA_ERROR_OUT_OF_MEMORY
 * instead of hanging; nothing is lost, and the refused call changed nothing. */
START_TEST(test_wait_before_write_never)
{
	static struct fix f;
	static unsigned char want[BUF];
	CUdeviceptr flag, b[5];
	CUstream s2;
	CUresult r = CUDA_SUCCESS;
	int k;

	simtest_start(ENV_OFF);
	fix_start(&f);
	CHK(cuMemAlloc(&flag, 64));
	CHK(cuMemsetD32(flag, 0, 16));
	CHK(cuStreamCreate(&s2, CU_STREAM_NON_BLOCKING));
	CHK(cuStreamWaitValue32(s2, flag, 1, CU_STREAM_WAIT_VALUE_EQ));
	for (k = 0; k < 5; k++) {
		b[k] = k < 4 ? f.o[k] : f.a;
		if ((r = cuMemsetD8Async(b[k], (unsigned char)(0x60 + k), BUF, s2)) != CUDA_SUCCESS)
			break;
	}
	ck_assert_msg(k >= 1 && k < 5 && r == CUDA_ERROR_OUT_OF_MEMORY,
		      "buffer %d behind the wait gave %d, not CUDA_ERROR_OUT_OF_MEMORY after at least one", k, r);
	CHK(cuStreamWriteValue32(f.s, flag, 1, 0));
	CHK(cuStreamSynchronize(s2));
	CHK(cuCtxSynchronize());
	for (int i = 0; i < 4; i++) {
		memset(want, i < k ? 0x60 + i : 0x40 + i, BUF);
		itest_expect_bytes(f.o[i], want, BUF, i < k ? "a buffer set behind the wait" : "a buffer left as it was");
	}
	itest_expect_bytes(f.a, f.ref, BUF, "a");
}
END_TEST

static Suite *copy2d_suite(void)
{
	Suite *s = suite_create("interpose_copy2d");
	TCase *tc = simtest_tcase(s, "paged_out", 300);

	tcase_add_loop_test(tc, test_paged_out_buffer, 0, OP_COUNT);
	tc = simtest_tcase(s, "safety_net", 300);
	tcase_add_test(tc, test_net_ordered_write_kept);
	tc = simtest_tcase(s, "pointer_tables", 300);
	tcase_add_test(tc, test_unified_device_source_not_read);
	tc = simtest_tcase(s, "wait_before_write", 300);
	tcase_add_test(tc, test_wait_before_write_named_buffer);
	tcase_add_test(tc, test_wait_before_write_later_use);
	/* Repeated: making room may start waiting for a's release before the pager has set it aside,
	 * and must be woken when it does; how often that order comes up depends on the scheduler. */
	tcase_add_loop_test(tc, test_wait_before_write_freed, 0, 16);
	/* Its refusal comes after at least 60 s of looking, by design. */
	tc = simtest_tcase(s, "wait_never_written", 600);
	tcase_add_test(tc, test_wait_before_write_never);
	return s;
}

int main(int argc, char **argv)
{
	itest_main_begin(argc, argv);
	return simtest_run(copy2d_suite());
}
