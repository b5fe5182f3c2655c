/* The simulated driver's device memory: capacity, cuMemAlloc and friends, stream-ordered allocation,
 * pinned host memory and the model-only mode. */
#include "config.h"

#include <sys/mman.h>
#include <unistd.h>

#include "tests/unit/simtest.h"

START_TEST(test_capacity)
{
	CUdeviceptr a = 0, b = 0, c = 0;
	size_t free_bytes = 0, total = 0;

	simtest_start("SIMCUDA_MEM=64MiB");
	CHK(cuMemGetInfo(&free_bytes, &total));
	ck_assert_uint_eq(total, 64 * SIMTEST_MIB);
	ck_assert_uint_eq(free_bytes, 64 * SIMTEST_MIB);

	CHK(cuMemAlloc(&a, 40 * SIMTEST_MIB));
	ck_assert_uint_eq(simtest_free_bytes(), 24 * SIMTEST_MIB);
	CHK_ERR(cuMemAlloc(&b, 30 * SIMTEST_MIB), CUDA_ERROR_OUT_OF_MEMORY);
	ck_assert_uint_eq(simtest_free_bytes(), 24 * SIMTEST_MIB);
	/* Exactly what is left fits; one page more does not. */
	CHK_ERR(cuMemAlloc(&b, 24 * SIMTEST_MIB + 4096), CUDA_ERROR_OUT_OF_MEMORY);
	CHK(cuMemAlloc(&b, 24 * SIMTEST_MIB));
	ck_assert_uint_eq(simtest_free_bytes(), 0);
	CHK_ERR(cuMemAlloc(&c, 4096), CUDA_ERROR_OUT_OF_MEMORY);

	/* Freeing makes room again. */
	CHK(cuMemFree(a));
	ck_assert_uint_eq(simtest_free_bytes(), 40 * SIMTEST_MIB);
	CHK(cuMemAlloc(&c, 30 * SIMTEST_MIB));
	ck_assert_uint_eq(simtest_free_bytes(), 10 * SIMTEST_MIB);
	CHK(cuMemFree(b));
	CHK(cuMemFree(c));
	ck_assert_uint_eq(simtest_free_bytes(), 64 * SIMTEST_MIB);

	CHK_ERR(cuMemAlloc(&a, 0), CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuMemAlloc(NULL, 4096), CUDA_ERROR_INVALID_VALUE);
	CHK(cuMemFree(0));
}
END_TEST

START_TEST(test_alloc_distinct_and_usable)
{
	CUdeviceptr a, b;
	uint64_t used = 0, peak = 0;

	simtest_start("SIMCUDA_MEM=64MiB");
	CHK(cuMemAlloc(&a, 1000 * sizeof(float)));
	CHK(cuMemAlloc(&b, 1000 * sizeof(float)));
	ck_assert_uint_ne(a, 0);
	ck_assert_msg(a + 4000 <= b || b + 4000 <= a, "allocations overlap");
	CHK(simtest_fill(a, 1.5f, 1000, NULL));
	CHK(simtest_fill(b, -2.0f, 1000, NULL));
	simtest_expect_floats(a, 1000, 1.5f);
	simtest_expect_floats(b, 1000, -2.0f);
	simtest_mem_usage(&used, &peak);
	ck_assert_uint_ge(used, 8000);
	ck_assert_uint_ge(peak, used);
	CHK(cuMemFree(a));
	CHK(cuMemFree(b));
	simtest_mem_usage(&used, NULL);
	ck_assert_uint_eq(used, 0);
	/* Freeing twice is refused. */
	CHK_ERR(cuMemFree(a), CUDA_ERROR_INVALID_VALUE);
}
END_TEST

START_TEST(test_alloc_pitch)
{
	CUdeviceptr p = 0, base = 0;
	size_t pitch = 0, size = 0;
	const size_t width = 1000, height = 10;
	unsigned char *h;

	simtest_start("SIMCUDA_MEM=64MiB");
	CHK(cuMemAllocPitch(&p, &pitch, width, height, 4));
	ck_assert_uint_ge(pitch, width);
	ck_assert_uint_eq(pitch % 512, 0);
	CHK(cuMemGetAddressRange(&base, &size, p));
	ck_assert_uint_eq(base, p);
	ck_assert_uint_ge(size, pitch * height);
	/* Every row is writable up to the pitch. */
	CHK(cuMemsetD8(p, 0x5a, pitch * height));
	h = malloc(pitch * height);
	ck_assert_ptr_nonnull(h);
	CHK(cuMemcpyDtoH(h, p, pitch * height));
	for (size_t i = 0; i < pitch * height; i++)
		if (h[i] != 0x5a)
			ck_abort_msg("byte %zu is %#x", i, h[i]);
	free(h);
	CHK(cuMemFree(p));

	CHK_ERR(cuMemAllocPitch(&p, &pitch, width, height, 3), CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuMemAllocPitch(&p, &pitch, 0, height, 4), CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuMemAllocPitch(&p, NULL, width, height, 4), CUDA_ERROR_INVALID_VALUE);
}
END_TEST

START_TEST(test_address_range)
{
	CUdeviceptr p = 0, base = 0;
	size_t size = 0;
	int local = 0;

	simtest_start("SIMCUDA_MEM=64MiB");
	CHK(cuMemAlloc(&p, 10000));
	CHK(cuMemGetAddressRange(&base, &size, p));
	ck_assert_uint_eq(base, p);
	ck_assert_uint_eq(size, 10000);
	CHK(cuMemGetAddressRange(&base, &size, p + 5000));
	ck_assert_uint_eq(base, p);
	ck_assert_uint_eq(size, 10000);
	base = 0;
	size = 0;
	CHK(cuMemGetAddressRange(&base, &size, p + 9999));
	ck_assert_uint_eq(base, p);
	ck_assert_uint_eq(size, 10000);
	/* Either output may be left out. */
	base = 0;
	CHK(cuMemGetAddressRange(&base, NULL, p + 1));
	ck_assert_uint_eq(base, p);
	CHK_ERR(cuMemGetAddressRange(&base, &size, (CUdeviceptr)(uintptr_t)&local), CUDA_ERROR_NOT_FOUND);
	CHK(cuMemFree(p));
	CHK_ERR(cuMemGetAddressRange(&base, &size, p + 5000), CUDA_ERROR_NOT_FOUND);
}
END_TEST

START_TEST(test_async_alloc_default_pool)
{
	CUmemoryPool pool = NULL, pool2 = NULL;
	CUstream s;
	CUdeviceptr a = 0, b = 0;
	const uint64_t n = (1 << 20) / sizeof(float);

	simtest_start("SIMCUDA_MEM=64MiB");
	CHK(cuDeviceGetDefaultMemPool(&pool, 0));
	ck_assert_ptr_nonnull(pool);
	CHK(cuDeviceGetMemPool(&pool2, 0));
	ck_assert_ptr_eq(pool, pool2);
	CHK_ERR(cuDeviceGetDefaultMemPool(&pool2, 1), CUDA_ERROR_INVALID_DEVICE);
	CHK(cuStreamCreate(&s, 0));

	CHK(cuMemAllocAsync(&a, 1 << 20, s));
	CHK(cuMemAllocFromPoolAsync(&b, 1 << 20, pool, s));
	ck_assert_uint_ne(a, 0);
	ck_assert_uint_ne(b, 0);
	ck_assert_uint_ne(a, b);
	CHK(simtest_fill(a, 3.0f, n, s));
	CHK(simtest_fill(b, 4.0f, n, s));
	CHK(simtest_axpy(a, b, 0.5f, n, s));
	CHK(cuStreamSynchronize(s));
	simtest_expect_floats(a, n, 5.0f);
	simtest_expect_floats(b, n, 4.0f);
	ck_assert_uint_eq(simtest_free_bytes(), 62 * SIMTEST_MIB);
	CHK(cuMemFreeAsync(a, s));
	CHK(cuMemFreeAsync(b, s));
	CHK(cuStreamSynchronize(s));
	ck_assert_uint_eq(simtest_free_bytes(), 64 * SIMTEST_MIB);

	/* A pool that is not the device's, or a pointer that is no allocation, is refused. */
	CHK_ERR(cuMemAllocFromPoolAsync(&b, 4096, (CUmemoryPool)&n, s), CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuMemAllocAsync(&b, 0, s), CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuMemAllocAsync(&b, 128 * SIMTEST_MIB, s), CUDA_ERROR_OUT_OF_MEMORY);
	CHK_ERR(cuMemFreeAsync(a, s), CUDA_ERROR_INVALID_VALUE);
	/* The legacy stream works too. */
	CHK(cuMemAllocAsync(&a, 4096, NULL));
	CHK(cuMemFreeAsync(a, NULL));
	CHK(cuStreamSynchronize(NULL));
	ck_assert_uint_eq(simtest_free_bytes(), 64 * SIMTEST_MIB);
}
END_TEST

START_TEST(test_free_async_is_stream_ordered)
{
	CUstream s;
	CUdeviceptr p = 0;
	const uint64_t n = 8 * SIMTEST_MIB / sizeof(float);

	simtest_start("SIMCUDA_MEM=64MiB", "SIMCUDA_DELAY_KERNEL_US=200000");
	CHK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
	CHK(cuMemAllocAsync(&p, 8 * SIMTEST_MIB, s));
	ck_assert_uint_eq(simtest_free_bytes(), 56 * SIMTEST_MIB);
	/* The kernel is held back; the free queued behind it must wait for it. */
	CHK(simtest_fill(p, 1.0f, n, s));
	CHK(cuMemFreeAsync(p, s));
	ck_assert_uint_eq(simtest_free_bytes(), 56 * SIMTEST_MIB);
	CHK_ERR(cuStreamQuery(s), CUDA_ERROR_NOT_READY);
	ck_assert_uint_eq(simtest_free_bytes(), 56 * SIMTEST_MIB);
	CHK(cuStreamSynchronize(s));
	ck_assert_uint_eq(simtest_free_bytes(), 64 * SIMTEST_MIB);
	/* The kernel ran on live memory: no fault was recorded. */
	CHK(cuCtxSynchronize());
}
END_TEST

START_TEST(test_host_alloc)
{
	void *h = NULL, *h2 = NULL;
	CUdeviceptr d = 0;
	unsigned flags = 99;

	simtest_start("SIMCUDA_MEM=64MiB");
	CHK(cuMemHostAlloc(&h, 1 << 20, CU_MEMHOSTALLOC_DEVICEMAP | CU_MEMHOSTALLOC_PORTABLE));
	ck_assert_ptr_nonnull(h);
	memset(h, 0x11, 1 << 20);
	CHK(cuMemHostGetFlags(&flags, h));
	ck_assert_uint_eq(flags, CU_MEMHOSTALLOC_DEVICEMAP | CU_MEMHOSTALLOC_PORTABLE);
	CHK(cuMemHostGetDevicePointer(&d, h, 0));
	ck_assert_uint_eq(d, (CUdeviceptr)(uintptr_t)h);
	CHK(cuMemHostGetDevicePointer(&d, (char *)h + 100, 0));
	ck_assert_uint_eq(d, (CUdeviceptr)(uintptr_t)h + 100);
	CHK_ERR(cuMemHostGetDevicePointer(&d, h, 1), CUDA_ERROR_INVALID_VALUE);
	/* Pinned host memory is not device memory. */
	ck_assert_uint_eq(simtest_free_bytes(), 64 * SIMTEST_MIB);

	CHK(cuMemAllocHost(&h2, 4096));
	ck_assert_ptr_nonnull(h2);
	ck_assert_ptr_ne(h, h2);
	CHK(cuMemFreeHost(h2));
	CHK(cuMemFreeHost(h));
	CHK_ERR(cuMemFreeHost(h), CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuMemHostGetDevicePointer(&d, h, 0), CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuMemHostAlloc(&h, 4096, 0x80), CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuMemHostAlloc(&h, 0, 0), CUDA_ERROR_INVALID_VALUE);
}
END_TEST

START_TEST(test_host_register)
{
	size_t bytes = 1 << 20;
	void *buf = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CUdeviceptr d = 0;

	ck_assert_ptr_ne(buf, MAP_FAILED);
	simtest_start("SIMCUDA_MEM=64MiB");
	CHK_ERR(cuMemHostGetDevicePointer(&d, buf, 0), CUDA_ERROR_INVALID_VALUE);
	CHK(cuMemHostRegister(buf, bytes, CU_MEMHOSTREGISTER_DEVICEMAP));
	CHK(cuMemHostGetDevicePointer(&d, buf, 0));
	ck_assert_uint_eq(d, (CUdeviceptr)(uintptr_t)buf);
	CHK_ERR(cuMemHostRegister(buf, bytes, 0), CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED);
	CHK_ERR(cuMemHostRegister((char *)buf + 4096, 4096, 0), CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED);
	/* Registered memory is the caller's: cuMemFreeHost refuses it. */
	CHK_ERR(cuMemFreeHost(buf), CUDA_ERROR_INVALID_VALUE);
	CHK(cuMemHostUnregister(buf));
	CHK_ERR(cuMemHostUnregister(buf), CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED);
	CHK_ERR(cuMemHostGetDevicePointer(&d, buf, 0), CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuMemHostRegister(NULL, bytes, 0), CUDA_ERROR_INVALID_VALUE);
	munmap(buf, bytes);
}
END_TEST

START_TEST(test_kernel_reads_pinned_host)
{
	const uint64_t n = 4096;
	float *pinned = NULL, *registered;
	CUdeviceptr y, dp = 0, dr = 0;

	simtest_start("SIMCUDA_MEM=64MiB");
	CHK(cuMemAlloc(&y, n * sizeof(float)));
	CHK(cuMemHostAlloc((void **)&pinned, n * sizeof(float), CU_MEMHOSTALLOC_DEVICEMAP));
	registered = mmap(NULL, n * sizeof(float), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(registered, MAP_FAILED);
	CHK(cuMemHostRegister(registered, n * sizeof(float), CU_MEMHOSTREGISTER_DEVICEMAP));
	for (uint64_t i = 0; i < n; i++) {
		pinned[i] = (float)i;
		registered[i] = 1.0f;
	}
	CHK(cuMemHostGetDevicePointer(&dp, pinned, 0));
	CHK(cuMemHostGetDevicePointer(&dr, registered, 0));

	CHK(simtest_fill(y, 10.0f, n, NULL));
	CHK(simtest_axpy(y, dp, 2.0f, n, NULL));
	CHK(simtest_axpy(y, dr, -1.0f, n, NULL));
	CHK(cuCtxSynchronize());
	{
		float *h = malloc(n * sizeof(float));
		ck_assert_ptr_nonnull(h);
		CHK(cuMemcpyDtoH(h, y, n * sizeof(float)));
		for (uint64_t i = 0; i < n; i++)
			if (h[i] != 10.0f + 2.0f * (float)i - 1.0f)
				ck_abort_msg("element %llu is %g", (unsigned long long)i, h[i]);
		free(h);
	}
	/* A kernel may also write pinned host memory. */
	CHK(simtest_fill(dp, 7.0f, n, NULL));
	CHK(cuCtxSynchronize());
	simtest_expect_host(pinned, n, 7.0f);
	CHK(cuMemHostUnregister(registered));
	CHK(cuMemFreeHost(pinned));
	munmap(registered, n * sizeof(float));
}
END_TEST

START_TEST(test_kernel_unpinned_host_faults)
{
	const uint64_t n = 4096;
	float *plain = malloc(n * sizeof(float));
	CUdeviceptr y;

	ck_assert_ptr_nonnull(plain);
	for (uint64_t i = 0; i < n; i++)
		plain[i] = 1.0f;
	simtest_start("SIMCUDA_MEM=64MiB");
	CHK(cuMemAlloc(&y, n * sizeof(float)));
	CHK(simtest_fill(y, 10.0f, n, NULL));
	CHK(cuCtxSynchronize());
	/* The launch itself is accepted; the fault shows at synchronisation. */
	CHK(simtest_axpy(y, (CUdeviceptr)(uintptr_t)plain, 1.0f, n, NULL));
	CHK_ERR(cuCtxSynchronize(), CUDA_ERROR_ILLEGAL_ADDRESS);
	CHK_ERR(cuMemAlloc(&y, 4096), CUDA_ERROR_ILLEGAL_ADDRESS);
	free(plain);
}
END_TEST

START_TEST(test_model_only)
{
	CUdeviceptr p = 0, q = 0;
	const uint64_t tib = 1ull << 40;
	uint64_t n = tib / sizeof(float);

	simtest_start("SIMCUDA_MODEL_ONLY=1", "SIMCUDA_MEM=4TiB");
	ck_assert_int_eq(simtest_model_only(), 1);
	ck_assert_uint_eq(simtest_free_bytes(), 4 * tib);
	CHK(cuMemAlloc(&p, tib));
	ck_assert_uint_eq(simtest_free_bytes(), 3 * tib);
	CHK(simtest_fill(p, 1.0f, n, NULL));
	CHK(cuCtxSynchronize());
	/* The modeled time of a 4 TiB write is far from zero even though nothing was stored. */
	ck_assert_uint_gt(simtest_clock_ns(), 1000000);
	/* Capacity is still enforced. */
	CHK_ERR(cuMemAlloc(&q, 3 * tib + 4096), CUDA_ERROR_OUT_OF_MEMORY);
	CHK(cuMemFree(p));
	ck_assert_uint_eq(simtest_free_bytes(), 4 * tib);
}
END_TEST

START_TEST(test_not_model_only_by_default)
{
	simtest_start("SIMCUDA_MEM=64MiB");
	ck_assert_int_eq(simtest_model_only(), 0);
}
END_TEST

/* ---- asynchronous copies from host memory ---- */

/* A host function that holds its stream until a byte arrives on the pipe it names. */
static void CUDA_CB held(void *arg)
{
	char c;

	(void)!read(((int *)arg)[0], &c, 1);
}

/* Queues a copy of 1.0s from host buffer h behind a held stream, writes 2.0s into h once the call has
 * returned, then lets the stream go: the device gets what h held when it ran. */
static void copy_then_reuse(float *h, uint64_t n, int pinned)
{
	CUdeviceptr x;
	CUstream s;
	int gate[2];

	ck_assert_int_eq(pipe(gate), 0);
	CHK(cuMemAlloc(&x, n * sizeof(float)));
	CHK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
	for (uint64_t i = 0; i < n; i++)
		h[i] = 1.0f;
	CHK(cuLaunchHostFunc(s, held, gate));
	CHK(cuMemcpyHtoDAsync(x, h, n * sizeof(float), s));
	CHK_ERR(cuStreamQuery(s), CUDA_ERROR_NOT_READY);
	for (uint64_t i = 0; i < n; i++)
		h[i] = 2.0f;
	ck_assert_int_eq(write(gate[1], "g", 1), 1);
	CHK(cuStreamSynchronize(s));
	simtest_expect_floats(x, n, pinned ? 2.0f : 1.0f);
	CHK(cuStreamDestroy(s));
	CHK(cuMemFree(x));
	close(gate[0]);
	close(gate[1]);
}

/* A pageable source is staged at the call, as the real driver does: the app may reuse it at once. */
START_TEST(test_htod_async_pageable_staged)
{
	static float h[65536];

	simtest_start();
	copy_then_reuse(h, 65536, 0);
}
END_TEST

/* A pinned source, allocated or registered, is read when the copy runs: the copy is truly
 * asynchronous. */
START_TEST(test_htod_async_pinned_read_at_run)
{
	size_t bytes = 65536 * sizeof(float);
	float *h, *r;

	simtest_start();
	CHK(cuMemHostAlloc((void **)&h, bytes, 0));
	copy_then_reuse(h, 65536, 1);
	CHK(cuMemFreeHost(h));
	r = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(r, MAP_FAILED);
	CHK(cuMemHostRegister(r, bytes, 0));
	copy_then_reuse(r, 65536, 1);
	CHK(cuMemHostUnregister(r));
	munmap(r, bytes);
}
END_TEST

/* cuuint64_t pool attribute `attr` of the device's default pool. */
static cuuint64_t pool_u64(CUmemoryPool pool, CUmemPool_attribute attr)
{
	cuuint64_t v = 0;

	CHK(cuMemPoolGetAttribute(pool, attr, &v));
	return v;
}

/* The default pool reports what the app holds from it (used) and the memory behind that
 * (reserved), with high watermarks that only reset; its settings read back as set. */
START_TEST(test_pool_attributes)
{
	const uint64_t size = 3 * SIMTEST_MIB;
	CUmemoryPool pool;
	CUstream s;
	CUdeviceptr a = 0;
	cuuint64_t v;
	int flag = -1;

	simtest_start();
	CHK(cuDeviceGetDefaultMemPool(&pool, 0));
	CHK(cuStreamCreate(&s, 0));
	ck_assert_uint_eq(pool_u64(pool, CU_MEMPOOL_ATTR_USED_MEM_CURRENT), 0);
	CHK(cuMemAllocAsync(&a, size, s));
	CHK(cuStreamSynchronize(s));
	v = pool_u64(pool, CU_MEMPOOL_ATTR_USED_MEM_CURRENT);
	ck_assert_msg(v >= size && v < size + 2 * SIMTEST_MIB, "used %llu for a %llu-byte allocation",
		      (unsigned long long)v, (unsigned long long)size);
	ck_assert_uint_ge(pool_u64(pool, CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT), v);
	CHK(cuMemFreeAsync(a, s));
	CHK(cuStreamSynchronize(s));
	ck_assert_uint_eq(pool_u64(pool, CU_MEMPOOL_ATTR_USED_MEM_CURRENT), 0);
	ck_assert_uint_ge(pool_u64(pool, CU_MEMPOOL_ATTR_USED_MEM_HIGH), size);
	ck_assert_uint_ge(pool_u64(pool, CU_MEMPOOL_ATTR_RESERVED_MEM_HIGH), size);

	/* High watermarks reset to zero only; usage is read-only. */
	v = 0;
	CHK(cuMemPoolSetAttribute(pool, CU_MEMPOOL_ATTR_USED_MEM_HIGH, &v));
	ck_assert_uint_eq(pool_u64(pool, CU_MEMPOOL_ATTR_USED_MEM_HIGH), 0);
	v = 5;
	CHK_ERR(cuMemPoolSetAttribute(pool, CU_MEMPOOL_ATTR_USED_MEM_HIGH, &v), CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuMemPoolSetAttribute(pool, CU_MEMPOOL_ATTR_RESERVED_MEM_HIGH, &v), CUDA_ERROR_INVALID_VALUE);
	v = 0;
	CHK_ERR(cuMemPoolSetAttribute(pool, CU_MEMPOOL_ATTR_USED_MEM_CURRENT, &v), CUDA_ERROR_INVALID_VALUE);

	/* Settings. */
	v = UINT64_MAX;
	CHK(cuMemPoolSetAttribute(pool, CU_MEMPOOL_ATTR_RELEASE_THRESHOLD, &v));
	ck_assert_uint_eq(pool_u64(pool, CU_MEMPOOL_ATTR_RELEASE_THRESHOLD), UINT64_MAX);
	CHK(cuMemPoolGetAttribute(pool, CU_MEMPOOL_ATTR_REUSE_ALLOW_OPPORTUNISTIC, &flag));
	ck_assert_int_eq(flag, 1);
	flag = 0;
	CHK(cuMemPoolSetAttribute(pool, CU_MEMPOOL_ATTR_REUSE_ALLOW_OPPORTUNISTIC, &flag));
	flag = -1;
	CHK(cuMemPoolGetAttribute(pool, CU_MEMPOOL_ATTR_REUSE_ALLOW_OPPORTUNISTIC, &flag));
	ck_assert_int_eq(flag, 0);
	CHK(cuMemPoolTrimTo(pool, 0));

	CHK_ERR(cuMemPoolGetAttribute(pool, CU_MEMPOOL_ATTR_USED_MEM_CURRENT, NULL), CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuMemPoolGetAttribute(NULL, CU_MEMPOOL_ATTR_USED_MEM_CURRENT, &v), CUDA_ERROR_INVALID_VALUE);
	CHK(cuStreamDestroy(s));
}
END_TEST

static Suite *mem_suite(void)
{
	Suite *s = suite_create("simcuda_mem");
	TCase *tc = simtest_tcase(s, "alloc", 10);

	tcase_add_test(tc, test_capacity);
	tcase_add_test(tc, test_alloc_distinct_and_usable);
	tcase_add_test(tc, test_alloc_pitch);
	tcase_add_test(tc, test_address_range);
	tc = simtest_tcase(s, "stream_ordered", 10);
	tcase_add_test(tc, test_async_alloc_default_pool);
	tcase_add_test(tc, test_free_async_is_stream_ordered);
	tcase_add_test(tc, test_pool_attributes);
	tc = simtest_tcase(s, "host", 10);
	tcase_add_test(tc, test_host_alloc);
	tcase_add_test(tc, test_host_register);
	tcase_add_test(tc, test_kernel_reads_pinned_host);
	tcase_add_test(tc, test_kernel_unpinned_host_faults);
	tcase_add_test(tc, test_htod_async_pageable_staged);
	tcase_add_test(tc, test_htod_async_pinned_read_at_run);
	tc = simtest_tcase(s, "model_only", 10);
	tcase_add_test(tc, test_model_only);
	tcase_add_test(tc, test_not_model_only_by_default);
	return s;
}

int main(void)
{
	return simtest_run(mem_suite());
}
