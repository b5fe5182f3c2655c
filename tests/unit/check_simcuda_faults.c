/* The simulated driver's fault injection (failed cuMemCreate, failed copies, slow copy engines) and
 * the recovery of a faulted context by resetting it. */
#include "config.h"

#include <time.h>

#include "tests/unit/simtest.h"

#define GRAN (2 * SIMTEST_MIB)
#define N 1024

START_TEST(test_fail_memcreate)
{
	CUmemAllocationProp prop = simtest_prop(0);
	CUmemGenericAllocationHandle h[5];

	simtest_start("SIMCUDA_MEM=64MiB", "SIMCUDA_FAIL_MEMCREATE=3");
	CHK(cuMemCreate(&h[0], GRAN, &prop, 0));
	CHK(cuMemCreate(&h[1], GRAN, &prop, 0));
	CHK_ERR(cuMemCreate(&h[2], GRAN, &prop, 0), CUDA_ERROR_OUT_OF_MEMORY);
	/* The failed one took nothing. */
	ck_assert_uint_eq(simtest_free_bytes(), 60 * SIMTEST_MIB);
	CHK(cuMemCreate(&h[3], GRAN, &prop, 0));
	CHK(cuMemCreate(&h[4], GRAN, &prop, 0));
	ck_assert_uint_eq(simtest_free_bytes(), 56 * SIMTEST_MIB);
	/* Only cuMemCreate is affected. */
	{
		CUdeviceptr p;
		CHK(cuMemAlloc(&p, GRAN));
		CHK(cuMemFree(p));
	}
	CHK(cuMemRelease(h[0]));
	CHK(cuMemRelease(h[1]));
	CHK(cuMemRelease(h[3]));
	CHK(cuMemRelease(h[4]));
	CHK(cuCtxSynchronize());
}
END_TEST

START_TEST(test_fail_memcreate_first)
{
	CUmemAllocationProp prop = simtest_prop(0);
	CUmemGenericAllocationHandle h;

	simtest_start("SIMCUDA_MEM=64MiB", "SIMCUDA_FAIL_MEMCREATE=1");
	CHK_ERR(cuMemCreate(&h, GRAN, &prop, 0), CUDA_ERROR_OUT_OF_MEMORY);
	CHK(cuMemCreate(&h, GRAN, &prop, 0));
	CHK(cuMemRelease(h));
}
END_TEST

/* A device buffer of N floats holding v. */
static CUdeviceptr dev_of(float v)
{
	CUdeviceptr p;

	CHK(cuMemAlloc(&p, N * sizeof(float)));
	CHK(simtest_fill(p, v, N, NULL));
	CHK(cuCtxSynchronize());
	return p;
}

static void host_set(float *h, float v)
{
	for (int i = 0; i < N; i++)
		h[i] = v;
}

/* The context still works: allocate, compute, copy, synchronise. */
static void expect_usable(void)
{
	CUdeviceptr p = dev_of(11.0f);

	simtest_expect_floats(p, N, 11.0f);
	CHK(cuCtxSynchronize());
	CHK(cuMemFree(p));
}

START_TEST(test_fail_d2h)
{
	static float h[N], up[N];
	CUdeviceptr p;

	simtest_start("SIMCUDA_MEM=64MiB", "SIMCUDA_FAIL_COPY=d2h:2");
	p = dev_of(3.0f);
	host_set(h, -1.0f);
	CHK(cuMemcpyDtoH(h, p, sizeof(h)));
	simtest_expect_host(h, N, 3.0f);
	/* Copies the other way do not count. */
	host_set(up, 4.0f);
	CHK(cuMemcpyHtoD(p, up, sizeof(up)));
	host_set(h, -1.0f);
	CHK_ERR(cuMemcpyDtoH(h, p, sizeof(h)), CUDA_ERROR_UNKNOWN);
	simtest_expect_host(h, N, -1.0f);
	/* Not sticky: the next one works. */
	CHK(cuCtxSynchronize());
	CHK(cuMemcpyDtoH(h, p, sizeof(h)));
	simtest_expect_host(h, N, 4.0f);
	expect_usable();
}
END_TEST

START_TEST(test_fail_h2d_async)
{
	static float h[N];
	CUdeviceptr p;
	CUstream s;

	simtest_start("SIMCUDA_MEM=64MiB", "SIMCUDA_FAIL_COPY=h2d:2");
	CHK(cuStreamCreate(&s, 0));
	p = dev_of(1.0f);
	host_set(h, 2.0f);
	CHK(cuMemcpyHtoDAsync(p, h, sizeof(h), s));
	CHK(cuStreamSynchronize(s));
	simtest_expect_floats(p, N, 2.0f);
	host_set(h, 5.0f);
	CHK_ERR(cuMemcpyHtoDAsync(p, h, sizeof(h), s), CUDA_ERROR_UNKNOWN);
	CHK(cuStreamSynchronize(s));
	simtest_expect_floats(p, N, 2.0f);
	CHK(cuMemcpyHtoDAsync(p, h, sizeof(h), s));
	CHK(cuStreamSynchronize(s));
	simtest_expect_floats(p, N, 5.0f);
	expect_usable();
}
END_TEST

START_TEST(test_fail_any)
{
	static float h[N];
	CUdeviceptr a, b;

	simtest_start("SIMCUDA_MEM=64MiB", "SIMCUDA_FAIL_COPY=any:3");
	a = dev_of(1.0f);
	b = dev_of(2.0f);
	host_set(h, 7.0f);
	CHK(cuMemcpyHtoD(a, h, sizeof(h)));  /* 1 */
	CHK(cuMemcpyDtoH(h, b, sizeof(h)));  /* 2 */
	simtest_expect_host(h, N, 2.0f);
	/* The third copy of any kind, device to device here, fails and leaves b as it was. */
	CHK_ERR(cuMemcpyDtoD(b, a, sizeof(h)), CUDA_ERROR_UNKNOWN);
	simtest_expect_floats(b, N, 2.0f); /* 4 */
	CHK(cuMemcpyDtoD(b, a, sizeof(h))); /* 5 */
	simtest_expect_floats(b, N, 7.0f);
	expect_usable();
}
END_TEST

START_TEST(test_fail_copy_invalid_setting_ignored)
{
	static float h[N];
	CUdeviceptr p;

	/* A malformed setting is warned about and injects nothing. */
	simtest_start("SIMCUDA_MEM=64MiB", "SIMCUDA_FAIL_COPY=sideways:1");
	p = dev_of(1.0f);
	for (int i = 0; i < 3; i++)
		CHK(cuMemcpyDtoH(h, p, sizeof(h)));
	simtest_expect_host(h, N, 1.0f);
}
END_TEST

/* simcuda_inject, looked up as a program would. */
static simcuda_inject_fn inject_fn(void)
{
	simcuda_inject_fn f = (simcuda_inject_fn)dlsym(RTLD_DEFAULT, SIMCUDA_INJECT);

	ck_assert_ptr_nonnull(f);
	return f;
}

/* Armed at run time: the count starts at the arming, only the chosen kind fails, and a device
 * cuMemCreate is told from a host one. */
START_TEST(test_inject_armed)
{
	static float h[N];
	CUmemAllocationProp dev = simtest_prop(0), host = simtest_prop(1);
	CUmemGenericAllocationHandle g[4];
	CUdeviceptr p;
	void *pin;
	simcuda_inject_fn inject = inject_fn();

	simtest_start("SIMCUDA_MEM=64MiB");
	ck_assert_int_eq(inject(SIMCUDA_FAULT_KINDS, 0, 1), -1);
	p = dev_of(3.0f);
	/* The second device cuMemCreate from now fails, host ones do not count. */
	ck_assert_int_eq(inject(SIMCUDA_FAULT_DEVICE_CREATE, 1, 1), 0);
	CHK(cuMemCreate(&g[0], GRAN, &host, 0));
	CHK(cuMemCreate(&g[1], GRAN, &dev, 0));
	CHK_ERR(cuMemCreate(&g[2], GRAN, &dev, 0), CUDA_ERROR_OUT_OF_MEMORY);
	CHK(cuMemCreate(&g[2], GRAN, &dev, 0));
	/* Host memory: every allocation fails until disarmed. */
	ck_assert_int_eq(inject(SIMCUDA_FAULT_HOST_ALLOC, 0, UINT64_MAX), 0);
	CHK(cuMemCreate(&g[3], GRAN, &dev, 0));
	CHK(cuMemRelease(g[3]));
	for (int i = 0; i < 3; i++) {
		CHK_ERR(cuMemHostAlloc(&pin, 4096, 0), CUDA_ERROR_OUT_OF_MEMORY);
		CHK_ERR(cuMemAllocHost(&pin, 4096), CUDA_ERROR_OUT_OF_MEMORY);
		CHK_ERR(cuMemCreate(&g[3], GRAN, &host, 0), CUDA_ERROR_OUT_OF_MEMORY);
	}
	ck_assert_int_eq(inject(SIMCUDA_FAULT_HOST_ALLOC, 0, 0), 0);
	CHK(cuMemHostAlloc(&pin, 4096, 0));
	CHK(cuMemFreeHost(pin));
	/* Two device-to-host copies fail, the third works; host-to-device ones are untouched. */
	ck_assert_int_eq(inject(SIMCUDA_FAULT_D2H, 0, 2), 0);
	host_set(h, 6.0f);
	CHK(cuMemcpyHtoD(p, h, sizeof(h)));
	host_set(h, -1.0f);
	CHK_ERR(cuMemcpyDtoH(h, p, sizeof(h)), CUDA_ERROR_UNKNOWN);
	CHK_ERR(cuMemcpyDtoH(h, p, sizeof(h)), CUDA_ERROR_UNKNOWN);
	simtest_expect_host(h, N, -1.0f);
	CHK(cuMemcpyDtoH(h, p, sizeof(h)));
	simtest_expect_host(h, N, 6.0f);
	for (int i = 0; i < 3; i++)
		CHK(cuMemRelease(g[i]));
	expect_usable();
}
END_TEST

static uint64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* s's copy, issued at t0 (mono_us) with a real delay of delay_us, cannot have completed if the
 * query answered within the delay: it must say CUDA_ERROR_NOT_READY. Later (the test thread was
 * descheduled that long on a busy machine) either answer is right. */
static void expect_not_ready_within(CUstream s, uint64_t t0, uint64_t delay_us)
{
	CUresult r = cuStreamQuery(s);

	if (mono_us() - t0 < delay_us)
		ck_assert_int_eq(r, CUDA_ERROR_NOT_READY);
	else
		ck_assert(r == CUDA_ERROR_NOT_READY || r == CUDA_SUCCESS);
}

START_TEST(test_delay_h2d)
{
	static float h[N];
	CUdeviceptr p;
	CUstream s;
	uint64_t t0;

	simtest_start("SIMCUDA_MEM=64MiB", "SIMCUDA_DELAY_H2D_US=200000");
	CHK(cuStreamCreate(&s, 0));
	CHK(cuMemAlloc(&p, sizeof(h)));
	host_set(h, 8.0f);
	t0 = mono_us();
	CHK(cuMemcpyHtoDAsync(p, h, sizeof(h), s));
	expect_not_ready_within(s, t0, 200000);
	CHK(cuStreamSynchronize(s));
	CHK(cuStreamQuery(s));
	simtest_expect_floats(p, N, 8.0f);
}
END_TEST

START_TEST(test_delay_d2h)
{
	float *h = NULL;
	CUdeviceptr p;
	CUstream s;
	uint64_t t0;

	simtest_start("SIMCUDA_MEM=64MiB", "SIMCUDA_DELAY_D2H_US=200000");
	CHK(cuStreamCreate(&s, 0));
	/* Pinned: a copy into pageable memory returns only once it has completed. */
	CHK(cuMemAllocHost((void **)&h, N * sizeof(float)));
	p = dev_of(9.0f);
	host_set(h, 0.0f);
	t0 = mono_us();
	CHK(cuMemcpyDtoHAsync(h, p, N * sizeof(float), s));
	expect_not_ready_within(s, t0, 200000);
	CHK(cuStreamSynchronize(s));
	CHK(cuStreamQuery(s));
	simtest_expect_host(h, N, 9.0f);
}
END_TEST

START_TEST(test_delay_is_per_engine)
{
	static float h[N], back[N];
	CUdeviceptr p, q;
	CUstream s1, s2;
	uint64_t t0;

	/* A slow H2D engine does not hold back a device-to-host copy on another stream. */
	simtest_start("SIMCUDA_MEM=64MiB", "SIMCUDA_DELAY_H2D_US=300000");
	CHK(cuStreamCreate(&s1, CU_STREAM_NON_BLOCKING));
	CHK(cuStreamCreate(&s2, CU_STREAM_NON_BLOCKING));
	p = dev_of(1.0f);
	q = dev_of(6.0f);
	host_set(h, 2.0f);
	t0 = mono_us();
	CHK(cuMemcpyHtoDAsync(p, h, sizeof(h), s1));
	CHK(cuMemcpyDtoHAsync(back, q, sizeof(back), s2));
	CHK(cuStreamSynchronize(s2));
	simtest_expect_host(back, N, 6.0f);
	/* s2's copy finished within s1's delay, unless the machine held this thread up that long. */
	expect_not_ready_within(s1, t0, 300000);
	CHK(cuStreamSynchronize(s1));
	simtest_expect_floats(p, N, 2.0f);
}
END_TEST

START_TEST(test_reset_clears_sticky)
{
	CUdeviceptr va, p;
	CUcontext ctx;
	int active = -1;
	unsigned flags;

	simtest_start("SIMCUDA_MEM=64MiB");
	CHK(cuMemAddressReserve(&va, GRAN, 0, 0, 0));
	CHK(simtest_fill(va, 1.0f, 16, NULL));
	CHK_ERR(cuCtxSynchronize(), CUDA_ERROR_ILLEGAL_ADDRESS);
	CHK_ERR(cuMemAlloc(&p, 4096), CUDA_ERROR_ILLEGAL_ADDRESS);

	CHK(cuDevicePrimaryCtxReset(0));
	CHK(cuDevicePrimaryCtxGetState(0, &flags, &active));
	ck_assert_int_eq(active, 0);
	/* The context is gone until retained again; then it is clean. */
	CHK_ERR(cuMemAlloc(&p, 4096), CUDA_ERROR_CONTEXT_IS_DESTROYED);
	CHK(cuDevicePrimaryCtxRetain(&ctx, 0));
	CHK(cuCtxSetCurrent(ctx));
	CHK(cuCtxSynchronize());
	/* The reset unloaded the module too. */
	CHK_ERR(cuModuleUnload(simtest_mod), CUDA_ERROR_INVALID_HANDLE);
	CHK(cuModuleLoadData(&simtest_mod, "simcuda"));
	expect_usable();
	/* And a new fault is reported again. */
	CHK(simtest_fill(va, 1.0f, 16, NULL));
	CHK_ERR(cuCtxSynchronize(), CUDA_ERROR_ILLEGAL_ADDRESS);
}
END_TEST

START_TEST(test_sticky_survives_without_reset)
{
	CUdeviceptr va, p;
	CUcontext ctx;

	simtest_start("SIMCUDA_MEM=64MiB");
	CHK(cuMemAddressReserve(&va, GRAN, 0, 0, 0));
	CHK(simtest_fill(va, 1.0f, 16, NULL));
	CHK_ERR(cuCtxSynchronize(), CUDA_ERROR_ILLEGAL_ADDRESS);
	/* Releasing and retaining (not the last reference) does not clear it. */
	CHK(cuDevicePrimaryCtxRetain(&ctx, 0));
	CHK(cuDevicePrimaryCtxRelease(0));
	CHK_ERR(cuMemAlloc(&p, 4096), CUDA_ERROR_ILLEGAL_ADDRESS);
	CHK_ERR(cuCtxSynchronize(), CUDA_ERROR_ILLEGAL_ADDRESS);
}
END_TEST

static Suite *faults_suite(void)
{
	Suite *s = suite_create("simcuda_faults");
	TCase *tc = simtest_tcase(s, "inject", 10);

	tcase_add_test(tc, test_fail_memcreate);
	tcase_add_test(tc, test_fail_memcreate_first);
	tcase_add_test(tc, test_fail_d2h);
	tcase_add_test(tc, test_fail_h2d_async);
	tcase_add_test(tc, test_fail_any);
	tcase_add_test(tc, test_fail_copy_invalid_setting_ignored);
	tcase_add_test(tc, test_inject_armed);
	tc = simtest_tcase(s, "delay", 10);
	tcase_add_test(tc, test_delay_h2d);
	tcase_add_test(tc, test_delay_d2h);
	tcase_add_test(tc, test_delay_is_per_engine);
	tc = simtest_tcase(s, "sticky", 10);
	tcase_add_test(tc, test_reset_clears_sticky);
	tcase_add_test(tc, test_sticky_survives_without_reset);
	return s;
}

int main(void)
{
	return simtest_run(faults_suite());
}
