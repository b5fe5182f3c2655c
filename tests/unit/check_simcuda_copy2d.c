/* The simulated driver's pitched (2D, 3D) copies and memsets, peer and batched copies and stream
 * memory operations: exact bytes, the argument checks a real driver makes, sticky illegal
 * addresses for ranges that are not mapped, and waits that really hold their stream. */
#include "config.h"

#include "tests/unit/simtest.h"

#define P 256   /* pitch */
#define H 16    /* rows */

static void fill_pattern(unsigned char *h, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		h[i] = (unsigned char)(i * 31u + seed);
}

static CUDA_MEMCPY2D h2d(CUdeviceptr d, const void *h, size_t w, size_t rows)
{
	CUDA_MEMCPY2D p;

	memset(&p, 0, sizeof(p));
	p.srcMemoryType = CU_MEMORYTYPE_HOST;
	p.srcHost = h;
	p.srcPitch = P;
	p.dstMemoryType = CU_MEMORYTYPE_DEVICE;
	p.dstDevice = d;
	p.dstPitch = P;
	p.WidthInBytes = w;
	p.Height = rows;
	return p;
}

START_TEST(test_2d_copies)
{
	unsigned char in[P * H], out[P * H];
	CUdeviceptr d;
	CUDA_MEMCPY2D p;

	simtest_start();
	CHK(cuMemAlloc(&d, P * H));
	CHK(cuMemsetD8(d, 0xee, P * H));
	fill_pattern(in, sizeof(in), 1);
	p = h2d(d, in, 100, H);
	p.dstXInBytes = 10;
	p.dstY = 0;
	CHK(cuMemcpy2D(&p));
	CHK(cuMemcpyDtoH(out, d, P * H));
	for (size_t r = 0; r < H; r++)
		for (size_t x = 0; x < P; x++) {
			unsigned char want = x >= 10 && x < 110 ? in[r * P + x - 10] : 0xee;
			ck_assert_msg(out[r * P + x] == want, "row %zu byte %zu is %#x, expected %#x", r, x, out[r * P + x],
				      want);
		}
	/* Device to host with a source offset, asynchronously. */
	memset(&p, 0, sizeof(p));
	p.srcMemoryType = CU_MEMORYTYPE_UNIFIED;
	p.srcDevice = d;
	p.srcPitch = P;
	p.srcXInBytes = 10;
	p.srcY = 2;
	p.dstMemoryType = CU_MEMORYTYPE_HOST;
	p.dstHost = out;
	p.dstPitch = 100;
	p.WidthInBytes = 100;
	p.Height = H - 2;
	memset(out, 0, sizeof(out));
	CHK(cuMemcpy2DAsync(&p, NULL));
	CHK(cuCtxSynchronize());
	for (size_t r = 0; r < H - 2; r++)
		ck_assert_msg(memcmp(out + r * 100, in + (r + 2) * P, 100) == 0, "row %zu differs", r);
	/* What a real driver refuses. */
	p = h2d(d, in, P + 1, 2);
	CHK_ERR(cuMemcpy2D(&p), CUDA_ERROR_INVALID_VALUE);
	p = h2d(d, in, 100, 2);
	p.dstXInBytes = P - 99;
	CHK_ERR(cuMemcpy2D(&p), CUDA_ERROR_INVALID_VALUE);
	p = h2d(d, in, 100, 2);
	p.dstMemoryType = CU_MEMORYTYPE_ARRAY;
	CHK_ERR(cuMemcpy2D(&p), CUDA_ERROR_NOT_SUPPORTED);
	p = h2d(d, in, 100, 2);
	p.dstMemoryType = (CUmemorytype)9;
	CHK_ERR(cuMemcpy2D(&p), CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuMemcpy2D(NULL), CUDA_ERROR_INVALID_VALUE);
	/* A row past the end of device memory the host side cannot be: not device memory at all. */
	p = h2d((CUdeviceptr)(uintptr_t)out, in, 100, 2);
	CHK_ERR(cuMemcpy2D(&p), CUDA_ERROR_INVALID_VALUE);
	CHK(cuCtxSynchronize());
}
END_TEST

/* The last rows of a pitched copy fall past the allocation into unmapped device addresses: the
 * copy fails when it runs, stickily. */
START_TEST(test_2d_past_mapping_faults)
{
	unsigned char in[P * H];
	CUdeviceptr va;
	CUmemAllocationProp prop;
	CUmemGenericAllocationHandle hd;
	CUmemAccessDesc acc;
	CUDA_MEMCPY2D p;
	size_t gran = 0;

	simtest_start();
	memset(&prop, 0, sizeof(prop));
	prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
	prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
	prop.location.id = simtest_dev;
	CHK(cuMemGetAllocationGranularity(&gran, &prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM));
	CHK(cuMemAddressReserve(&va, 2 * gran, 0, 0, 0));
	CHK(cuMemCreate(&hd, gran, &prop, 0));
	CHK(cuMemMap(va, gran, 0, hd, 0));
	memset(&acc, 0, sizeof(acc));
	acc.location = prop.location;
	acc.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
	CHK(cuMemSetAccess(va, gran, &acc, 1));
	fill_pattern(in, sizeof(in), 2);
	p = h2d(va + gran - 4 * P, in, 100, H);
	CHK_ERR(cuMemcpy2D(&p), CUDA_ERROR_ILLEGAL_ADDRESS);
	CHK_ERR(cuCtxSynchronize(), CUDA_ERROR_ILLEGAL_ADDRESS);
}
END_TEST

START_TEST(test_3d_copies)
{
	unsigned char in[P * H], out[P * H];
	CUdeviceptr a, b;
	CUDA_MEMCPY3D p;

	simtest_start();
	CHK(cuMemAlloc(&a, P * H));
	CHK(cuMemAlloc(&b, P * H));
	fill_pattern(in, sizeof(in), 3);
	CHK(cuMemcpyHtoD(a, in, P * H));
	CHK(cuMemsetD8(b, 0, P * H));
	/* Two planes of 3 rows, 8 rows apart in a, 4 rows apart in b. */
	memset(&p, 0, sizeof(p));
	p.srcMemoryType = CU_MEMORYTYPE_DEVICE;
	p.srcDevice = a;
	p.srcPitch = P;
	p.srcHeight = 8;
	p.srcY = 1;
	p.dstMemoryType = CU_MEMORYTYPE_DEVICE;
	p.dstDevice = b;
	p.dstPitch = P;
	p.dstHeight = 4;
	p.dstXInBytes = 5;
	p.WidthInBytes = 50;
	p.Height = 3;
	p.Depth = 2;
	CHK(cuMemcpy3D(&p));
	CHK(cuMemcpyDtoH(out, b, P * H));
	for (size_t z = 0; z < 2; z++)
		for (size_t r = 0; r < 3; r++)
			ck_assert_msg(memcmp(out + (z * 4 + r) * P + 5, in + (z * 8 + 1 + r) * P, 50) == 0,
				      "plane %zu row %zu differs", z, r);
	ck_assert_int_eq(out[3 * P + 5], 0);
	p.srcY = 6; /* 6 + 3 rows do not fit a plane of 8 */
	CHK_ERR(cuMemcpy3D(&p), CUDA_ERROR_INVALID_VALUE);
	p.srcY = 1;
	p.reserved0 = &p;
	CHK_ERR(cuMemcpy3DAsync(&p, NULL), CUDA_ERROR_INVALID_VALUE);
	CHK(cuCtxSynchronize());
}
END_TEST

START_TEST(test_memset2d)
{
	unsigned char out[P * H];
	CUdeviceptr d;

	simtest_start();
	CHK(cuMemAlloc(&d, P * H));
	CHK(cuMemsetD8(d, 0, P * H));
	CHK(cuMemsetD2D8(d + 1, P, 0x11, 20, 3));
	CHK(cuMemsetD2D16Async(d + 4 * P + 2, P, 0x2233, 10, 2, NULL));
	CHK(cuMemsetD2D32(d + 8 * P + 4, P, 0x44556677u, 5, 2));
	CHK(cuMemcpyDtoH(out, d, P * H));
	for (size_t r = 0; r < H; r++)
		for (size_t x = 0; x < P; x++) {
			unsigned want = 0, b = out[r * P + x];
			if (r < 3 && x >= 1 && x < 21)
				want = 0x11;
			else if (r >= 4 && r < 6 && x >= 2 && x < 22)
				want = (x % 2 == 0) ? 0x33 : 0x22;
			else if (r >= 8 && r < 10 && x >= 4 && x < 24)
				want = (0x44556677u >> (8 * (x % 4))) & 0xff;
			ck_assert_msg(b == want, "row %zu byte %zu is %#x, expected %#x", r, x, b, want);
		}
	CHK_ERR(cuMemsetD2D8(d, P, 1, P + 1, 2), CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuMemsetD2D16(d + 1, P, 1, 4, 2), CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuMemsetD2D32(d, P + 2, 1, 4, 2), CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuMemsetD2D32(d, P, 1, P / 4 + 1, 2), CUDA_ERROR_INVALID_VALUE);
	CHK(cuCtxSynchronize());
}
END_TEST

START_TEST(test_peer_and_batch)
{
	unsigned char in[4096], out[4096];
	CUdeviceptr a, b;
	CUstream s;
	CUdeviceptr dsts[2], srcs[2];
	size_t sizes[2] = {1000, 500}, idx[2] = {0, 1};
	CUmemcpyAttributes attr[2];

	simtest_start();
	CHK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
	CHK(cuMemAlloc(&a, 4096));
	CHK(cuMemAlloc(&b, 4096));
	fill_pattern(in, sizeof(in), 4);
	CHK(cuMemcpyHtoD(a, in, 4096));
	CHK(cuMemcpyPeer(b, simtest_ctx, a, simtest_ctx, 4096));
	CHK(cuMemcpyDtoH(out, b, 4096));
	ck_assert(memcmp(in, out, 4096) == 0);
	CHK_ERR(cuMemcpyPeer(b, NULL, a, simtest_ctx, 16), CUDA_ERROR_INVALID_CONTEXT);
	CHK_ERR(cuMemcpyPeerAsync(b, simtest_ctx, a, (CUcontext)in, 16, s), CUDA_ERROR_INVALID_CONTEXT);
	/* A batch: device to host, and host to device. */
	memset(attr, 0, sizeof(attr));
	attr[0].srcAccessOrder = attr[1].srcAccessOrder = CU_MEMCPY_SRC_ACCESS_ORDER_STREAM;
	memset(out, 0, sizeof(out));
	dsts[0] = (CUdeviceptr)(uintptr_t)out;
	srcs[0] = a + 100;
	dsts[1] = b + 2000;
	srcs[1] = (CUdeviceptr)(uintptr_t)(in + 7);
	CHK(cuMemcpyBatchAsync(dsts, srcs, sizes, 2, attr, idx, 2, s));
	CHK(cuStreamSynchronize(s));
	ck_assert(memcmp(out, in + 100, 1000) == 0);
	CHK(cuMemcpyDtoH(out, b + 2000, 500));
	ck_assert(memcmp(out, in + 7, 500) == 0);
	CHK_ERR(cuMemcpyBatchAsync(dsts, srcs, sizes, 2, attr, idx, 2, NULL), CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuMemcpyBatchAsync(dsts, srcs, sizes, 2, attr, idx, 3, s), CUDA_ERROR_INVALID_VALUE);
	idx[1] = 0;
	CHK_ERR(cuMemcpyBatchAsync(dsts, srcs, sizes, 2, attr, idx, 2, s), CUDA_ERROR_INVALID_VALUE);
	idx[1] = 1;
	attr[1].srcAccessOrder = CU_MEMCPY_SRC_ACCESS_ORDER_INVALID;
	CHK_ERR(cuMemcpyBatchAsync(dsts, srcs, sizes, 2, attr, idx, 2, s), CUDA_ERROR_INVALID_VALUE);
	CHK(cuCtxSynchronize());
}
END_TEST

/* A wait holds its stream until another stream writes the value it waits for. */
START_TEST(test_wait_value_holds_stream)
{
	CUdeviceptr flag, buf;
	CUstream a, b;
	unsigned char out[64];
	CUstreamBatchMemOpParams ops[2];

	simtest_start();
	CHK(cuStreamCreate(&a, CU_STREAM_NON_BLOCKING));
	CHK(cuStreamCreate(&b, CU_STREAM_NON_BLOCKING));
	CHK(cuMemAlloc(&flag, 64));
	CHK(cuMemAlloc(&buf, 64));
	CHK(cuMemsetD8(flag, 0, 64));
	CHK(cuMemsetD8(buf, 0, 64));
	CHK(cuStreamWaitValue32(a, flag, 7, CU_STREAM_WAIT_VALUE_EQ));
	CHK(cuMemsetD8Async(buf, 0x11, 64, a));
	CHK_ERR(cuStreamQuery(a), CUDA_ERROR_NOT_READY);
	CHK(cuMemcpyDtoH(out, buf, 64));
	ck_assert_int_eq(out[0], 0);
	CHK(cuStreamWriteValue32(b, flag, 7, 0));
	CHK(cuStreamSynchronize(a));
	CHK(cuMemcpyDtoH(out, buf, 64));
	ck_assert_int_eq(out[63], 0x11);
	/* 64-bit forms and a batch. */
	memset(ops, 0, sizeof(ops));
	ops[0].writeValue.operation = CU_STREAM_MEM_OP_WRITE_VALUE_64;
	ops[0].writeValue.address = flag + 8;
	ops[0].writeValue.value64 = 0x8000000000000001ull;
	ops[1].waitValue.operation = CU_STREAM_MEM_OP_WAIT_VALUE_64;
	ops[1].waitValue.address = flag + 8;
	ops[1].waitValue.value64 = 1;
	ops[1].waitValue.flags = CU_STREAM_WAIT_VALUE_AND;
	CHK(cuStreamBatchMemOp(a, 2, ops, 0));
	CHK(cuStreamWaitValue64(a, flag + 8, 0x8000000000000001ull, CU_STREAM_WAIT_VALUE_GEQ));
	CHK(cuStreamSynchronize(a));
	CHK(cuMemcpyDtoH(out, flag, 16));
	ck_assert_uint_eq(out[8], 1);
	ck_assert_uint_eq(out[15], 0x80);
	/* What a real driver refuses. */
	CHK_ERR(cuStreamWriteValue32(a, flag + 2, 1, 0), CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuStreamWriteValue64(a, flag + 4, 1, 0), CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuStreamWriteValue32(a, flag, 1, CU_STREAM_WRITE_VALUE_NO_MEMORY_BARRIER), CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuStreamWaitValue32(a, flag, 1, 9), CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuStreamWaitValue32(a, (CUdeviceptr)(uintptr_t)out, 1, 0), CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuStreamBatchMemOp(a, 0, ops, 0), CUDA_ERROR_INVALID_VALUE);
	ops[0].operation = (CUstreamBatchMemOpType)77;
	CHK_ERR(cuStreamBatchMemOp(a, 2, ops, 0), CUDA_ERROR_INVALID_VALUE);
	CHK(cuCtxSynchronize());
}
END_TEST

/* A stream memory operation on a word that is no longer mapped when it runs faults, stickily. */
START_TEST(test_memop_unmapped_faults)
{
	CUdeviceptr va;
	CUstream s;

	simtest_start();
	CHK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
	CHK(cuMemAddressReserve(&va, 2 << 20, 0, 0, 0));
	CHK(cuStreamWriteValue32(s, va, 1, 0));
	CHK_ERR(cuStreamSynchronize(s), CUDA_ERROR_ILLEGAL_ADDRESS);
	CHK_ERR(cuCtxSynchronize(), CUDA_ERROR_ILLEGAL_ADDRESS);
}
END_TEST

static Suite *copy2d_suite(void)
{
	Suite *s = suite_create("simcuda_copy2d");
	TCase *tc = simtest_tcase(s, "pitched", 20);

	tcase_add_test(tc, test_2d_copies);
	tcase_add_test(tc, test_2d_past_mapping_faults);
	tcase_add_test(tc, test_3d_copies);
	tcase_add_test(tc, test_memset2d);
	tc = simtest_tcase(s, "peer_batch", 20);
	tcase_add_test(tc, test_peer_and_batch);
	tc = simtest_tcase(s, "memops", 20);
	tcase_add_test(tc, test_wait_value_holds_stream);
	tcase_add_test(tc, test_memop_unmapped_faults);
	return s;
}

int main(void)
{
	return simtest_run(copy2d_suite());
}
