/* The simulated driver's virtual clock: copy engines, compute cost, launch overhead, overlap between
 * streams, and determinism whatever the real timing. */
#include "config.h"

#include <sys/wait.h>
#include <unistd.h>

#include "tests/unit/simtest.h"

#define BYTES (4 * SIMTEST_MIB)
#define NFLOATS (BYTES / sizeof(float))

/* Modeled nanoseconds for an amount at a rate in units per second. */
static double ns(double amount, double per_second)
{
	return amount / per_second * 1e9;
}

static double elapsed_ns(CUevent a, CUevent b)
{
	float ms = -1;

	CHK(cuEventElapsedTime(&ms, a, b));
	return (double)ms * 1e6;
}

static void near(double got, double want, double rel, const char *what)
{
	double d = got - want;

	if (d < 0)
		d = -d;
	ck_assert_msg(d <= rel * want, "%s: %.0f ns, expected %.0f ns", what, got, want);
}

/* A 4 MiB fill costs 4 MiB / DRAM rate and a 4 MiB copy 4 MiB / H2D rate: 4.19 ms each here. */
#define OVERLAP_ENV "SIMCUDA_LAUNCH_US=0", "SIMCUDA_DRAM_GBPS=1", "SIMCUDA_H2D_GBPS=1", "SIMCUDA_MEM=64MiB"

START_TEST(test_copy_overlaps_kernel)
{
	CUstream s1, s2;
	CUdeviceptr a, b;
	CUevent start, end1, end2;
	void *h;
	uint64_t t0, span;
	double kcost = ns(BYTES, 1e9), ccost = ns(BYTES, 1e9);

	simtest_start(OVERLAP_ENV);
	CHK(cuStreamCreate(&s1, CU_STREAM_NON_BLOCKING));
	CHK(cuStreamCreate(&s2, CU_STREAM_NON_BLOCKING));
	CHK(cuEventCreate(&start, 0));
	CHK(cuEventCreate(&end1, 0));
	CHK(cuEventCreate(&end2, 0));
	CHK(cuMemAlloc(&a, BYTES));
	CHK(cuMemAlloc(&b, BYTES));
	CHK(cuMemAllocHost(&h, BYTES));
	CHK(cuCtxSynchronize());

	t0 = simtest_makespan_ns();
	CHK(cuEventRecord(start, s1));
	CHK(simtest_fill(a, 1.0f, NFLOATS, s1));
	CHK(cuMemcpyHtoDAsync(b, h, BYTES, s2));
	CHK(cuEventRecord(end1, s1));
	CHK(cuEventRecord(end2, s2));
	span = simtest_makespan_ns() - t0;
	ck_assert_msg((double)span < kcost + ccost, "makespan %llu ns is not below the sum %.0f ns",
		      (unsigned long long)span, kcost + ccost);
	ck_assert_msg((double)span >= (kcost > ccost ? kcost : ccost) - 1, "makespan %llu ns is below the larger cost",
		      (unsigned long long)span);
	CHK(cuCtxSynchronize());
	/* The events say the same: each stream took its own cost, from the same start. */
	near(elapsed_ns(start, end1), kcost, 0.01, "kernel stream");
	near(elapsed_ns(start, end2), ccost, 0.01, "copy stream");
	/* Synchronising brought the host clock to the end of both. */
	ck_assert_uint_eq(simtest_clock_ns(), t0 + span);
}
END_TEST

START_TEST(test_one_stream_serialises)
{
	CUstream s1;
	CUdeviceptr a, b;
	CUevent start, end;
	void *h;
	uint64_t t0, span;
	double kcost = ns(BYTES, 1e9), ccost = ns(BYTES, 1e9);

	simtest_start(OVERLAP_ENV);
	CHK(cuStreamCreate(&s1, CU_STREAM_NON_BLOCKING));
	CHK(cuEventCreate(&start, 0));
	CHK(cuEventCreate(&end, 0));
	CHK(cuMemAlloc(&a, BYTES));
	CHK(cuMemAlloc(&b, BYTES));
	CHK(cuMemAllocHost(&h, BYTES));
	CHK(cuCtxSynchronize());

	t0 = simtest_makespan_ns();
	CHK(cuEventRecord(start, s1));
	CHK(simtest_fill(a, 1.0f, NFLOATS, s1));
	CHK(cuMemcpyHtoDAsync(b, h, BYTES, s1));
	CHK(cuEventRecord(end, s1));
	span = simtest_makespan_ns() - t0;
	ck_assert_msg((double)span >= kcost + ccost - 1, "makespan %llu ns is below the sum %.0f ns",
		      (unsigned long long)span, kcost + ccost);
	CHK(cuStreamSynchronize(s1));
	near(elapsed_ns(start, end), kcost + ccost, 0.01, "one stream");
}
END_TEST

START_TEST(test_event_orders_the_clock)
{
	CUstream s1, s2;
	CUdeviceptr a, b;
	CUevent done;
	void *h;
	uint64_t t0, span;
	double kcost = ns(BYTES, 1e9), ccost = ns(BYTES, 1e9);

	/* A copy made to wait for the kernel cannot overlap it. */
	simtest_start(OVERLAP_ENV);
	CHK(cuStreamCreate(&s1, CU_STREAM_NON_BLOCKING));
	CHK(cuStreamCreate(&s2, CU_STREAM_NON_BLOCKING));
	CHK(cuEventCreate(&done, CU_EVENT_DISABLE_TIMING));
	CHK(cuMemAlloc(&a, BYTES));
	CHK(cuMemAlloc(&b, BYTES));
	CHK(cuMemAllocHost(&h, BYTES));
	CHK(cuCtxSynchronize());
	t0 = simtest_makespan_ns();
	CHK(simtest_fill(a, 1.0f, NFLOATS, s1));
	CHK(cuEventRecord(done, s1));
	CHK(cuStreamWaitEvent(s2, done, 0));
	CHK(cuMemcpyHtoDAsync(b, h, BYTES, s2));
	span = simtest_makespan_ns() - t0;
	near((double)span, kcost + ccost, 0.01, "event-ordered makespan");
	CHK(cuCtxSynchronize());
}
END_TEST

START_TEST(test_copy_bandwidth)
{
	CUstream s;
	CUevent a, b, c;
	CUdeviceptr d;
	void *h;
	const size_t n = 16 * SIMTEST_MIB;

	simtest_start("SIMCUDA_LAUNCH_US=0", "SIMCUDA_H2D_GBPS=8", "SIMCUDA_D2H_GBPS=4", "SIMCUDA_MEM=64MiB");
	CHK(cuStreamCreate(&s, 0));
	CHK(cuEventCreate(&a, 0));
	CHK(cuEventCreate(&b, 0));
	CHK(cuEventCreate(&c, 0));
	CHK(cuMemAlloc(&d, n));
	CHK(cuMemAllocHost(&h, n));
	CHK(cuEventRecord(a, s));
	CHK(cuMemcpyHtoDAsync(d, h, n, s));
	CHK(cuEventRecord(b, s));
	CHK(cuMemcpyDtoHAsync(h, d, n, s));
	CHK(cuEventRecord(c, s));
	CHK(cuStreamSynchronize(s));
	near(elapsed_ns(a, b), ns((double)n, 8e9), 0.01, "H2D at 8 GB/s");
	near(elapsed_ns(b, c), ns((double)n, 4e9), 0.01, "D2H at 4 GB/s");
	/* Half the bytes take half the time. */
	CHK(cuEventRecord(a, s));
	CHK(cuMemcpyHtoDAsync(d, h, n / 2, s));
	CHK(cuEventRecord(b, s));
	CHK(cuStreamSynchronize(s));
	near(elapsed_ns(a, b), ns((double)n / 2, 8e9), 0.01, "H2D of half");
}
END_TEST

START_TEST(test_gemm_compute_bound)
{
	CUstream s;
	CUevent a, b;
	CUdeviceptr dc, da, db;
	uint32_t m = 128, n = 256, k = 64;
	void *args[] = {&dc, &da, &db, &m, &n, &k};
	double want = ns(2.0 * m * n * k, 0.01e12);

	simtest_start("SIMCUDA_LAUNCH_US=0", "SIMCUDA_TFLOPS=0.01", "SIMCUDA_DRAM_GBPS=1000000");
	CHK(cuStreamCreate(&s, 0));
	CHK(cuEventCreate(&a, 0));
	CHK(cuEventCreate(&b, 0));
	CHK(cuMemAlloc(&dc, 4ull * m * n));
	CHK(cuMemAlloc(&da, 4ull * m * k));
	CHK(cuMemAlloc(&db, 4ull * k * n));
	CHK(cuMemsetD32(da, 0, m * k));
	CHK(cuMemsetD32(db, 0, k * n));
	CHK(cuEventRecord(a, s));
	CHK(simtest_launch("mv_gemm", s, args));
	CHK(cuEventRecord(b, s));
	CHK(cuStreamSynchronize(s));
	near(elapsed_ns(a, b), want, 0.01, "mv_gemm 2mnk / TFLOPS");
	/* Twice k, twice the time. */
	k *= 2;
	CHK(cuMemFree(da));
	CHK(cuMemFree(db));
	CHK(cuMemAlloc(&da, 4ull * m * k));
	CHK(cuMemAlloc(&db, 4ull * k * n));
	CHK(cuEventRecord(a, s));
	CHK(simtest_launch("mv_gemm", s, args));
	CHK(cuEventRecord(b, s));
	CHK(cuStreamSynchronize(s));
	near(elapsed_ns(a, b), 2 * want, 0.01, "mv_gemm with twice k");
}
END_TEST

START_TEST(test_kernel_memory_bound)
{
	CUstream s;
	CUevent a, b;
	CUdeviceptr p;

	/* A fill moves 4 bytes a float and computes nothing: its cost is bytes / DRAM rate. */
	simtest_start("SIMCUDA_LAUNCH_US=0", "SIMCUDA_DRAM_GBPS=2", "SIMCUDA_MEM=64MiB");
	CHK(cuStreamCreate(&s, 0));
	CHK(cuEventCreate(&a, 0));
	CHK(cuEventCreate(&b, 0));
	CHK(cuMemAlloc(&p, BYTES));
	CHK(cuEventRecord(a, s));
	CHK(simtest_fill(p, 0.0f, NFLOATS, s));
	CHK(cuEventRecord(b, s));
	CHK(cuStreamSynchronize(s));
	near(elapsed_ns(a, b), ns(BYTES, 2e9), 0.01, "mv_fill bytes / DRAM");
}
END_TEST

/* A kernel reaches host-located memory mapped into device addresses over the link: the bytes it
 * touches there cost host-to-device time, the rest DRAM time, both at once. */
START_TEST(test_kernel_reads_host_memory_over_the_link)
{
	const size_t half = BYTES / 2;
	CUmemAllocationProp dprop = simtest_prop(0), hprop = simtest_prop(1);
	CUmemGenericAllocationHandle hd, hh;
	CUdeviceptr va;
	CUstream s;
	CUevent a, b, c, d;

	simtest_start("SIMCUDA_LAUNCH_US=0", "SIMCUDA_DRAM_GBPS=8", "SIMCUDA_H2D_GBPS=1", "SIMCUDA_MEM=64MiB");
	CHK(cuStreamCreate(&s, 0));
	CHK(cuEventCreate(&a, 0));
	CHK(cuEventCreate(&b, 0));
	CHK(cuEventCreate(&c, 0));
	CHK(cuEventCreate(&d, 0));
	/* One range: its first half on the device, its second half in host memory. */
	CHK(cuMemAddressReserve(&va, BYTES, 0, 0, 0));
	CHK(cuMemCreate(&hd, half, &dprop, 0));
	CHK(cuMemCreate(&hh, half, &hprop, 0));
	CHK(cuMemMap(va, half, 0, hd, 0));
	CHK(cuMemMap(va + half, half, 0, hh, 0));
	CHK(simtest_set_access(va, BYTES, CU_MEM_ACCESS_FLAGS_PROT_READWRITE));
	CHK(cuEventRecord(a, s));
	CHK(simtest_fill(va, 1.0f, NFLOATS / 2, s));
	CHK(cuEventRecord(b, s));
	CHK(simtest_fill(va, 3.0f, NFLOATS, s));
	CHK(cuEventRecord(c, s));
	CHK(simtest_fill(va + half, 2.0f, NFLOATS / 2, s));
	CHK(cuEventRecord(d, s));
	CHK(cuStreamSynchronize(s));
	near(elapsed_ns(a, b), ns((double)half, 8e9), 0.01, "a fill of device memory");
	/* Half over the link at 1 GB/s outlasts the other half at 8 GB/s. */
	near(elapsed_ns(b, c), ns((double)half, 1e9), 0.01, "a fill half in host memory");
	near(elapsed_ns(c, d), ns((double)half, 1e9), 0.01, "a fill of host memory");
	simtest_expect_floats(va, NFLOATS / 2, 3.0f);
	simtest_expect_floats(va + half, NFLOATS / 2, 2.0f);
	CHK(cuMemUnmap(va, BYTES));
	CHK(cuMemRelease(hd));
	CHK(cuMemRelease(hh));
	CHK(cuMemAddressFree(va, BYTES));
}
END_TEST

START_TEST(test_launch_overhead)
{
	CUstream s;
	CUdeviceptr p;
	uint64_t t0, t1;

	simtest_start("SIMCUDA_LAUNCH_US=7");
	CHK(cuStreamCreate(&s, 0));
	CHK(cuMemAlloc(&p, 64));
	CHK(cuCtxSynchronize());
	t0 = simtest_clock_ns();
	for (int i = 0; i < 5; i++)
		CHK(simtest_fill(p, 1.0f, 1, s));
	t1 = simtest_clock_ns();
	ck_assert_uint_eq(t1 - t0, 5 * 7000);
	/* Synchronising brings the host clock to the end of the stream's work. */
	CHK(cuStreamSynchronize(s));
	ck_assert_uint_ge(simtest_clock_ns(), t1);
	ck_assert_uint_eq(simtest_clock_ns(), simtest_makespan_ns());
	/* Launches back to back cannot finish before the host has issued them. */
	ck_assert_uint_ge(simtest_makespan_ns(), t0 + 5 * 7000);
}
END_TEST

START_TEST(test_zero_launch_overhead)
{
	CUdeviceptr p;
	uint64_t t0;

	simtest_start("SIMCUDA_LAUNCH_US=0");
	CHK(cuMemAlloc(&p, 64));
	CHK(cuCtxSynchronize());
	t0 = simtest_clock_ns();
	for (int i = 0; i < 5; i++)
		CHK(simtest_fill(p, 1.0f, 1, NULL));
	ck_assert_uint_eq(simtest_clock_ns(), t0);
}
END_TEST

/* ---- determinism ---- */

#define TIMELINE 10

/* The clock entry points, looked up without the test assertions (this runs in a grandchild). */
static uint64_t simcuda_clock_ns_now(void);
static uint64_t simcuda_makespan_now(void);

/* A mixed sequence on three streams; writes virtual times to out. Runs in a child process of its
 * own, so it reports failure by its exit status instead of asserting. */
static int sequence(uint64_t *out, int dawdle)
{
	CUdevice dev;
	CUcontext ctx;
	CUmodule mod;
	CUfunction fill;
	CUstream s[3];
	CUevent e[4];
	CUdeviceptr d[3];
	void *h;
	int k = 0;
	float v = 1.0f;
	uint64_t n = NFLOATS;

#define TRY(call)                                \
	do {                                     \
		if ((call) != CUDA_SUCCESS)      \
			return -1;               \
		if (dawdle)                      \
			usleep(3000);            \
	} while (0)
	TRY(cuInit(0));
	TRY(cuDeviceGet(&dev, 0));
	TRY(cuDevicePrimaryCtxRetain(&ctx, dev));
	TRY(cuCtxSetCurrent(ctx));
	TRY(cuModuleLoadData(&mod, "simcuda"));
	TRY(cuModuleGetFunction(&fill, mod, "mv_fill"));
	for (int i = 0; i < 3; i++) {
		TRY(cuStreamCreate(&s[i], i == 2 ? CU_STREAM_NON_BLOCKING : 0));
		TRY(cuMemAlloc(&d[i], BYTES));
	}
	for (int i = 0; i < 4; i++)
		TRY(cuEventCreate(&e[i], 0));
	TRY(cuMemAllocHost(&h, BYTES));
	out[k++] = simcuda_clock_ns_now();
	TRY(cuEventRecord(e[0], s[0]));
	for (int i = 0; i < 3; i++) {
		void *args[] = {&d[i], &v, &n};
		TRY(cuLaunchKernel(fill, 1, 1, 1, 1, 1, 1, 0, s[i], args, NULL));
		TRY(cuMemcpyHtoDAsync(d[(i + 1) % 3], h, BYTES, s[(i + 1) % 3]));
		out[k++] = simcuda_makespan_now();
	}
	TRY(cuEventRecord(e[1], s[1]));
	TRY(cuStreamWaitEvent(s[2], e[1], 0));
	TRY(cuMemcpyDtoHAsync(h, d[2], BYTES, s[2]));
	TRY(cuEventRecord(e[2], s[2]));
	TRY(cuMemcpyDtoDAsync(d[0], d[1], BYTES, NULL));
	TRY(cuEventRecord(e[3], NULL));
	out[k++] = simcuda_makespan_now();
	TRY(cuCtxSynchronize());
	out[k++] = simcuda_clock_ns_now();
	for (int i = 1; i < 4; i++) {
		float ms;
		TRY(cuEventElapsedTime(&ms, e[0], e[i]));
		out[k++] = (uint64_t)((double)ms * 1e6 + 0.5);
	}
	TRY(cuStreamSynchronize(s[0]));
	out[k++] = simcuda_clock_ns_now();
#undef TRY
	return k;
}

static uint64_t simcuda_clock_ns_now(void)
{
	simcuda_clock_ns_fn f = (simcuda_clock_ns_fn)dlsym(RTLD_DEFAULT, SIMCUDA_CLOCK_NS);
	return f != NULL ? f() : UINT64_MAX;
}

static uint64_t simcuda_makespan_now(void)
{
	simcuda_makespan_ns_fn f = (simcuda_makespan_ns_fn)dlsym(RTLD_DEFAULT, SIMCUDA_MAKESPAN_NS);
	return f != NULL ? f() : UINT64_MAX;
}

/* Runs sequence() in a fresh process with the given real delay; returns how many times it wrote. */
static int run_sequence(uint64_t *out, int dawdle)
{
	int fds[2], status = 0;
	pid_t pid;
	ssize_t got;

	ck_assert_int_eq(pipe(fds), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		uint64_t t[TIMELINE + 1];
		int k;

		close(fds[0]);
		setenv("SIMCUDA_MEM", "64MiB", 1);
		setenv("SIMCUDA_H2D_GBPS", "3", 1);
		setenv("SIMCUDA_D2H_GBPS", "5", 1);
		setenv("SIMCUDA_DRAM_GBPS", "7", 1);
		setenv("SIMCUDA_LAUNCH_US", "3", 1);
		/* Real delays in one run only: the virtual times must not see them. */
		if (dawdle)
			setenv("SIMCUDA_DELAY_KERNEL_US", "20000", 1);
		memset(t, 0, sizeof(t));
		k = sequence(t, dawdle);
		t[TIMELINE] = (uint64_t)k;
		if (write(fds[1], t, sizeof(t)) != (ssize_t)sizeof(t))
			_exit(2);
		_exit(k < 0 ? 1 : 0);
	}
	close(fds[1]);
	{
		uint64_t t[TIMELINE + 1];
		got = read(fds[0], t, sizeof(t));
		close(fds[0]);
		ck_assert_int_eq(waitpid(pid, &status, 0), pid);
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the sequence failed (status %#x)", status);
		ck_assert_int_eq(got, (ssize_t)sizeof(t));
		memcpy(out, t, TIMELINE * sizeof(uint64_t));
		return (int)t[TIMELINE];
	}
}

START_TEST(test_determinism)
{
	uint64_t a[TIMELINE], b[TIMELINE];
	int na, nb;

	na = run_sequence(a, 0);
	nb = run_sequence(b, 1);
	ck_assert_int_eq(na, TIMELINE);
	ck_assert_int_eq(nb, TIMELINE);
	for (int i = 0; i < TIMELINE; i++)
		ck_assert_msg(a[i] == b[i], "virtual time %d differs: %llu then %llu", i, (unsigned long long)a[i],
			      (unsigned long long)b[i]);
	/* And the timeline is not trivially flat. */
	ck_assert_uint_gt(a[4], a[0]);
	ck_assert_uint_gt(a[TIMELINE - 1], 0);
}
END_TEST

static Suite *clock_suite(void)
{
	Suite *s = suite_create("simcuda_clock");
	TCase *tc = simtest_tcase(s, "model", 10);

	tcase_add_test(tc, test_copy_overlaps_kernel);
	tcase_add_test(tc, test_one_stream_serialises);
	tcase_add_test(tc, test_event_orders_the_clock);
	tcase_add_test(tc, test_copy_bandwidth);
	tcase_add_test(tc, test_gemm_compute_bound);
	tcase_add_test(tc, test_kernel_memory_bound);
	tcase_add_test(tc, test_kernel_reads_host_memory_over_the_link);
	tcase_add_test(tc, test_launch_overhead);
	tcase_add_test(tc, test_zero_launch_overhead);
	tc = simtest_tcase(s, "determinism", 10);
	tcase_add_test(tc, test_determinism);
	return s;
}

int main(void)
{
	return simtest_run(clock_suite());
}
