/* libmemvirt.so against the invariants of DESIGN §3, one test each, on the simulated GPU, plus the
 * rules around them: pointers uploaded into device memory, fork, graphs, the app's own VMM
 * allocations and percentage budgets.
 *
 * Invariant 4 (the app never blocks on the daemon) is tested end to end against a real daemon that
 * is killed (tests/e2e/daemon-kill.sh) or stopped mid-run (tests/e2e/daemon-stall.sh).
 *
 * Most tests turn the safety net off (SIMCUDA_NO_HOST_VMM=1 or MEMVIRT_SAFETY_NET=0): then an
 * evicted buffer's range is unmapped, and any access memvirt failed to prepare is a sticky
 * CUDA_ERROR_ILLEGAL_ADDRESS rather than a quiet read of the host copy. Slow engines
 * (SIMCUDA_DELAY_*_US) widen the windows in which a missing stream-order wait shows up as wrong
 * data; no test measures time. */
#include "config.h"

#include <pthread.h>
#include <stdatomic.h>

#include "tests/unit/interposetest.h"

#define GRAN64 "SIMCUDA_GRANULARITY=64KiB"
#define THR16 "MEMVIRT_SLAB_THRESHOLD=16KiB"
#define NET_OFF "SIMCUDA_NO_HOST_VMM=1"
#define BUF (64 * ITEST_KIB)           /* one granule with GRAN64 */
#define NF (BUF / sizeof(float))      /* floats in BUF */

static uint32_t f2u(float f)
{
	uint32_t u;

	memcpy(&u, &f, sizeof(u));
	return u;
}

static CUdeviceptr alloc_filled(uint64_t bytes, float v)
{
	CUdeviceptr p;

	CHK(cuMemAlloc(&p, bytes));
	CHK(simtest_fill(p, v, bytes / sizeof(float), NULL));
	CHK(cuCtxSynchronize());
	return p;
}

/* Uses each buffer of `others` (refilling it with its own value) so that every buffer not among them
 * becomes least recently used: under a budget that holds exactly these, the rest are paged out. */
static void touch(const CUdeviceptr *others, const float *vals, int n)
{
	for (int i = 0; i < n; i++)
		CHK(simtest_fill(others[i], vals[i], NF, NULL));
	CHK(cuCtxSynchronize());
}

/* ---- the helper children ---- */

/* "alloc": allocates and touches ITEST_COUNT buffers of ITEST_SIZE bytes. Exit 0 when all fit, 2 on
 * CUDA_ERROR_OUT_OF_MEMORY, 3 on any other error. */
static int helper_alloc(void)
{
	const char *c = getenv("ITEST_COUNT"), *s = getenv("ITEST_SIZE");
	long count = c ? atol(c) : 0;
	size_t size = s ? (size_t)atol(s) : 0;

	itest_helper_init();
	for (long i = 0; i < count; i++) {
		CUdeviceptr p;
		CUresult r = cuMemAlloc(&p, size);
		if (r == CUDA_ERROR_OUT_OF_MEMORY)
			return 2;
		HCHK(r);
		HCHK(cuMemsetD8(p, (unsigned char)i, size));
	}
	HCHK(cuCtxSynchronize());
	return 0;
}

static void line(const char *probe, CUresult r, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void line(const char *probe, CUresult r, const char *fmt, ...)
{
	va_list ap;

	printf("%s: %d", probe, (int)r);
	if (fmt != NULL) {
		printf(" ");
		va_start(ap, fmt);
		vprintf(fmt, ap);
		va_end(ap);
	}
	printf("\n");
	fflush(stdout);
}

/* "unrelated": calls that have nothing to do with memvirt's work (and a few memory calls given bad
 * arguments), one line each with its result, on stdout. The same program run with and without the
 * library must print the same lines. Lines are flushed one by one, so a crash shows where. */
static int helper_unrelated(void)
{
	static unsigned char junk[4096]; /* readable memory that is not a stream */
	unsigned char host[256];
	CUdeviceptr small, large;
	CUdevice d;
	CUstream s;
	CUevent e;
	CUfunction fill;
	int v = 0;
	size_t sz = 0, off = 0;
	char name[256];
	const char *str = NULL;
	CUresult r;

	memset(host, 0, sizeof(host));
	itest_helper_init();
	/* The library is serving once the app has allocated. */
	HCHK(cuMemAlloc(&small, 1024));
	HCHK(cuMemAlloc(&large, 2 << 20));
	HCHK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
	HCHK(cuEventCreate(&e, 0));
	HCHK(cuModuleGetFunction(&fill, simtest_mod, "mv_fill"));

	r = cuDriverGetVersion(&v);
	line("cuDriverGetVersion", r, "%d", v);
	r = cuDeviceGetCount(&v);
	line("cuDeviceGetCount", r, "%d", v);
	r = cuDeviceGet(&d, 7);
	line("cuDeviceGet(7)", r, NULL);
	memset(name, 0, sizeof(name));
	r = cuDeviceGetName(name, sizeof(name), 0);
	line("cuDeviceGetName", r, "%s", name);
	r = cuDeviceGetName(name, 0, 0);
	line("cuDeviceGetName(len 0)", r, NULL);
	{
		static const CUdevice_attribute attrs[] = {
			CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
			CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED,
			CU_DEVICE_ATTRIBUTE_HOST_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED,
			CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING,
			(CUdevice_attribute)99999,
		};
		for (size_t i = 0; i < sizeof(attrs) / sizeof(attrs[0]); i++) {
			char p[64];
			v = -1;
			r = cuDeviceGetAttribute(&v, attrs[i], 0);
			snprintf(p, sizeof(p), "cuDeviceGetAttribute(%d)", (int)attrs[i]);
			line(p, r, "%d", v);
		}
	}
	r = cuDeviceTotalMem(&sz, 0);
	line("cuDeviceTotalMem", r, "%zu", sz);
	d = -1;
	r = cuCtxGetDevice(&d);
	line("cuCtxGetDevice", r, "%d", (int)d);
	r = cuCtxGetDevice(NULL);
	line("cuCtxGetDevice(NULL)", r, NULL);
	r = cuStreamQuery((CUstream)(void *)junk);
	line("cuStreamQuery(bad handle)", r, NULL);
	r = cuStreamQuery(s);
	line("cuStreamQuery", r, NULL);
	r = cuStreamSynchronize((CUstream)(void *)junk);
	line("cuStreamSynchronize(bad handle)", r, NULL);
	r = cuEventQuery(e);
	line("cuEventQuery(unrecorded)", r, NULL);
	for (size_t i = 0; i < 5; i++) {
		char p[64];
		off = sz = 0;
		r = cuFuncGetParamInfo(fill, i, &off, &sz);
		snprintf(p, sizeof(p), "cuFuncGetParamInfo(%zu)", i);
		line(p, r, "%zu %zu", off, sz);
	}
	{
		CUfunction f = NULL;
		r = cuModuleGetFunction(&f, simtest_mod, "no_such_kernel");
		line("cuModuleGetFunction(no such)", r, NULL);
	}
	r = cuGetErrorName(CUDA_ERROR_ILLEGAL_ADDRESS, &str);
	line("cuGetErrorName", r, "%s", str ? str : "(null)");
	r = cuGetErrorString((CUresult)123456, &str);
	line("cuGetErrorString(bogus)", r, NULL);
	{
		void *fn = NULL;
		CUdriverProcAddressQueryResult st = (CUdriverProcAddressQueryResult)-1;
		r = cuGetProcAddress_v2("cuDeviceGetName", &fn, 12000, 0, &st);
		line("cuGetProcAddress_v2(cuDeviceGetName)", r, "%d %d", (int)st, fn != NULL);
		fn = NULL;
		r = cuGetProcAddress_v2("cuNoSuchEntryPoint", &fn, 12000, 0, &st);
		line("cuGetProcAddress_v2(no such)", r, "%d %d", (int)st, fn != NULL);
	}
	{
		float val = 1.0f;
		uint64_t n = 4;
		void *args[] = {&small, &val, &n};
		r = cuLaunchKernel(fill, 0, 1, 1, 1, 1, 1, 0, s, args, NULL);
		line("cuLaunchKernel(grid 0)", r, NULL);
		r = cuLaunchKernel(fill, 1, 1, 1, 1, 1, 1, 0, (CUstream)(void *)junk, args, NULL);
		line("cuLaunchKernel(bad stream)", r, NULL);
	}
	r = cuMemcpyHtoD(0, host, 16);
	line("cuMemcpyHtoD(dst 0)", r, NULL);
	r = cuMemcpyDtoH(NULL, small, 16);
	line("cuMemcpyDtoH(dst NULL)", r, NULL);
	r = cuMemsetD32(0, 0, 4);
	line("cuMemsetD32(dst 0)", r, NULL);
	r = cuMemcpyHtoDAsync(small, host, 16, (CUstream)(void *)junk);
	line("cuMemcpyHtoDAsync(bad stream)", r, NULL);
	r = cuMemsetD8Async(large, 0, 16, (CUstream)(void *)junk);
	line("cuMemsetD8Async(bad stream)", r, NULL);
	r = cuMemAlloc(&small, 0);
	line("cuMemAlloc(0 bytes)", r, NULL);
	r = cuMemAllocPitch(&small, &sz, 16, 16, 3);
	line("cuMemAllocPitch(elem 3)", r, NULL);
	r = cuMemcpyHtoD(small, NULL, 64);
	line("cuMemcpyHtoD(src NULL, small buffer)", r, NULL);
	r = cuMemcpyHtoD(large, NULL, 64);
	line("cuMemcpyHtoD(src NULL, large buffer)", r, NULL);
	HCHK(cuCtxSynchronize());
	line("end", CUDA_SUCCESS, NULL);
	return 0;
}

/* "noisy": provokes every kind of log line the library has (bad settings, out of memory, paging)
 * and ends with its own exit code, 42. Prints nothing itself. */
static int helper_noisy(void)
{
	CUdeviceptr p[6], big;
	CUresult r;

	itest_helper_init();
	for (int i = 0; i < 6; i++) {
		HCHK(cuMemAlloc(&p[i], BUF));
		HCHK(cuMemsetD32(p[i], (unsigned)i, NF));
	}
	for (int i = 0; i < 6; i++)
		HCHK(cuMemsetD32(p[i], (unsigned)i + 1, NF));
	/* The device holds 320KiB, and 8 TiB is more than the simulated driver's whole address
	 * window: this cannot fit on the device or in host memory, whatever the budget and the
	 * machine. */
	r = cuMemAlloc(&big, (size_t)8 << 40);
	if (r != CUDA_ERROR_OUT_OF_MEMORY) {
		fprintf(stderr, "an 8TiB allocation returned %s, expected CUDA_ERROR_OUT_OF_MEMORY\n",
			simtest_err_name(r));
		return 4;
	}
	HCHK(cuCtxSynchronize());
	return 42;
}

static int helper_main(const char *mode)
{
	if (strcmp(mode, "alloc") == 0)
		return helper_alloc();
	if (strcmp(mode, "unrelated") == 0)
		return helper_unrelated();
	if (strcmp(mode, "noisy") == 0)
		return helper_noisy();
	fprintf(stderr, "unknown helper mode %s\n", mode);
	return 125;
}

/* ---- controls: the scenarios below need paging ---- */

/* Each scenario allocates more than its simulated device holds. Without memvirt the same
 * allocations fail; with it they succeed. So the tests below really run with evicted buffers. */
START_TEST(test_control_scenarios_exceed_the_device)
{
	static const struct {
		const char *mem, *count, *size;
	} cases[] = {
		{"SIMCUDA_MEM=256KiB", "ITEST_COUNT=5", "ITEST_SIZE=65536"},   /* invariant 1 */
		{"SIMCUDA_MEM=320KiB", "ITEST_COUNT=6", "ITEST_SIZE=65536"},   /* invariant 2: slab + 5 */
		{"SIMCUDA_MEM=2MiB", "ITEST_COUNT=160", "ITEST_SIZE=131072"},  /* invariant 5 */
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *env[] = {cases[i].mem, cases[i].count, cases[i].size, GRAN64, THR16, NET_OFF, NULL};
		struct itest_child without = itest_run_helper("alloc", 0, env, 60);
		struct itest_child with = itest_run_helper("alloc", 1, env, 60);
		ck_assert_msg(itest_exit_code(&without) == 2,
			      "case %zu without memvirt: %s, expected exit 2 (out of memory); stderr: %s", i,
			      itest_how(&without), without.err);
		ck_assert_msg(itest_exit_code(&with) == 0, "case %zu with memvirt: %s, expected exit 0; stderr: %s", i,
			      itest_how(&with), with.err);
		itest_child_free(&without);
		itest_child_free(&with);
	}
}
END_TEST

/* ---- invariant 1: no kernel, copy or memset starts before its buffers are resident ---- */

/* Five 64KiB buffers on a device (and budget) of four: a is filled first, the rest after, so a is
 * the one paged out. The page-in copy engine is slow: an operation that does not wait for it reads
 * the fresh, zeroed pages (wrong data); one that does not page in at all faults (no safety net). */
#define INV1_ENV "SIMCUDA_MEM=256KiB", GRAN64, THR16, NET_OFF, "SIMCUDA_DELAY_H2D_US=100000"

struct inv1 {
	CUdeviceptr a, o[4];
	float va, vo[4];
};

static void inv1_setup(struct inv1 *t)
{
	struct memvirt_counters c;

	t->va = 3.0f;
	t->a = alloc_filled(BUF, t->va);
	for (int i = 0; i < 4; i++) {
		t->vo[i] = 10.0f + (float)i;
		t->o[i] = alloc_filled(BUF, t->vo[i]);
	}
	c = itest_counters();
	ck_assert_uint_eq(c.budget, 256 * ITEST_KIB);
	ck_assert_msg(c.page_outs >= 1 && c.host_bytes >= BUF, "a was not paged out: %llu page-outs, %llu on host",
		      (unsigned long long)c.page_outs, (unsigned long long)c.host_bytes);
}

/* Pages a out again: the other four take the whole budget. */
static void inv1_evict_a(struct inv1 *t)
{
	uint64_t before = itest_counters().page_outs;

	touch(t->o, t->vo, 4);
	ck_assert_msg(itest_counters().page_outs > before, "touching the others paged nothing out");
	ck_assert_uint_ge(itest_counters().host_bytes, BUF);
}

static void expect_faulted_in(uint64_t fault_ins_before, const char *what)
{
	struct memvirt_counters c = itest_counters();

	ck_assert_msg(c.fault_ins > fault_ins_before, "%s: no page-in was waited for (fault_ins %llu)", what,
		      (unsigned long long)c.fault_ins);
}

START_TEST(test_inv1_kernel_waits_for_page_in)
{
	struct inv1 t;
	CUstream s;
	uint64_t before;

	simtest_start(INV1_ENV);
	CHK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
	inv1_setup(&t);
	/* o[0] += 2 a, on a stream of the app's own. */
	before = itest_counters().fault_ins;
	CHK(simtest_axpy(t.o[0], t.a, 2.0f, NF, s));
	CHK(cuStreamSynchronize(s));
	expect_faulted_in(before, "axpy on a stream");
	t.vo[0] += 2.0f * t.va;
	simtest_expect_floats(t.o[0], NF, t.vo[0]);
	/* And on the legacy stream. */
	inv1_evict_a(&t);
	before = itest_counters().fault_ins;
	CHK(simtest_axpy(t.o[1], t.a, 1.0f, NF, NULL));
	CHK(cuCtxSynchronize());
	expect_faulted_in(before, "axpy on the legacy stream");
	t.vo[1] += t.va;
	simtest_expect_floats(t.o[1], NF, t.vo[1]);
	/* A kernel that writes a: the fill must land after the page-in, or the old bytes come back. */
	inv1_evict_a(&t);
	{
		float half = 8.0f;
		uint64_t n = NF / 2;
		void *args[] = {&t.a, &half, &n};
		CHK(simtest_launch("mv_fill", s, args));
	}
	CHK(cuStreamSynchronize(s));
	{
		float *h = malloc(BUF);
		CHK(cuMemcpyDtoH(h, t.a, BUF));
		simtest_expect_host(h, NF / 2, 8.0f);
		simtest_expect_host(h + NF / 2, NF / 2, t.va);
		free(h);
	}
	CHK(cuCtxSynchronize());
}
END_TEST

START_TEST(test_inv1_copy_waits_for_page_in)
{
	struct inv1 t;
	CUstream s;
	float *h = malloc(BUF);
	uint64_t before;

	ck_assert_ptr_nonnull(h);
	simtest_start(INV1_ENV);
	CHK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
	inv1_setup(&t);

	/* Device to host, synchronous. */
	before = itest_counters().fault_ins;
	memset(h, 0, BUF);
	CHK(cuMemcpyDtoH(h, t.a, BUF));
	expect_faulted_in(before, "cuMemcpyDtoH");
	simtest_expect_host(h, NF, t.va);

	/* Device to host, on a stream. */
	inv1_evict_a(&t);
	before = itest_counters().fault_ins;
	memset(h, 0, BUF);
	CHK(cuMemcpyDtoHAsync(h, t.a, BUF, s));
	CHK(cuStreamSynchronize(s));
	expect_faulted_in(before, "cuMemcpyDtoHAsync");
	simtest_expect_host(h, NF, t.va);

	/* Device to device, from an evicted source. */
	inv1_evict_a(&t);
	before = itest_counters().fault_ins;
	CHK(cuMemcpyDtoDAsync(t.o[2], t.a, BUF, s));
	CHK(cuStreamSynchronize(s));
	expect_faulted_in(before, "cuMemcpyDtoDAsync");
	t.vo[2] = t.va;
	simtest_expect_floats(t.o[2], NF, t.vo[2]);

	/* Host to device into part of an evicted buffer: the rest must survive, and the new part must
	 * not be overwritten by a page-in that lands late. */
	inv1_evict_a(&t);
	before = itest_counters().fault_ins;
	for (uint64_t i = 0; i < 256; i++)
		h[i] = 5.0f;
	CHK(cuMemcpyHtoD(t.a + 1024 * sizeof(float), h, 256 * sizeof(float)));
	expect_faulted_in(before, "cuMemcpyHtoD");
	CHK(cuMemcpyDtoH(h, t.a, BUF));
	simtest_expect_host(h, 1024, t.va);
	simtest_expect_host(h + 1024, 256, 5.0f);
	simtest_expect_host(h + 1280, NF - 1280, t.va);
	free(h);
	CHK(cuCtxSynchronize());
}
END_TEST

START_TEST(test_inv1_memset_waits_for_page_in)
{
	struct inv1 t;
	CUstream s;
	float *h = malloc(BUF);
	uint64_t before;

	ck_assert_ptr_nonnull(h);
	simtest_start(INV1_ENV);
	CHK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
	inv1_setup(&t);

	before = itest_counters().fault_ins;
	CHK(cuMemsetD32(t.a, f2u(6.0f), 1000));
	expect_faulted_in(before, "cuMemsetD32");
	CHK(cuMemcpyDtoH(h, t.a, BUF));
	simtest_expect_host(h, 1000, 6.0f);
	simtest_expect_host(h + 1000, NF - 1000, t.va);

	inv1_evict_a(&t);
	before = itest_counters().fault_ins;
	CHK(cuMemsetD32Async(t.a + 4000 * sizeof(float), f2u(7.0f), 100, s));
	CHK(cuStreamSynchronize(s));
	expect_faulted_in(before, "cuMemsetD32Async");
	CHK(cuMemcpyDtoH(h, t.a, BUF));
	simtest_expect_host(h, 1000, 6.0f);
	simtest_expect_host(h + 1000, 3000, t.va);
	simtest_expect_host(h + 4000, 100, 7.0f);
	simtest_expect_host(h + 4100, NF - 4100, t.va);
	free(h);
	CHK(cuCtxSynchronize());
}
END_TEST

/* ---- invariant 2: pages go only after the work naming the buffer is done ---- */

/* Four 64KiB buffers fit a 320KiB device beside the slab; a fifth pages one out. Kernels are slow
 * (a real delay before each), so a page-out that does not wait for the buffer's last use copies
 * stale bytes and unmaps pages a kernel is about to touch. */
static const char *const inv2_env[2][8] = {
	{"SIMCUDA_MEM=320KiB", GRAN64, THR16, NET_OFF, "SIMCUDA_DELAY_KERNEL_US=150000", NULL},
	{"SIMCUDA_MEM=320KiB", GRAN64, THR16, "SIMCUDA_DELAY_KERNEL_US=150000", NULL},
};

static void start_env(const char *const *env)
{
	for (size_t i = 0; env[i] != NULL; i++)
		simtest_env(env[i], (const char *)0);
	simtest_init();
}

/* Updates b's last use without the compute engine (a host-to-device copy of its own value). */
static void touch_by_copy(CUdeviceptr b, float v)
{
	float *h = malloc(BUF);

	ck_assert_ptr_nonnull(h);
	for (uint64_t i = 0; i < NF; i++)
		h[i] = v;
	CHK(cuMemcpyHtoD(b, h, BUF));
	free(h);
}

START_TEST(test_inv2_page_out_waits_for_last_use)
{
	CUdeviceptr a, o[3], e, small;
	CUstream s;
	uint64_t before;

	start_env(inv2_env[_i]);
	CHK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
	small = alloc_filled(4 * ITEST_KIB, 0.0f); /* the slab chunk takes one granule of the budget */
	a = alloc_filled(BUF, 1.0f);
	for (int i = 0; i < 3; i++)
		o[i] = alloc_filled(BUF, 20.0f + (float)i);
	/* The slow kernel writes a; then the others are used after it, so a is least recently used. */
	CHK(simtest_fill(a, 7.0f, NF, s));
	for (int i = 0; i < 3; i++)
		touch_by_copy(o[i], 20.0f + (float)i);
	before = itest_counters().page_outs;
	/* Needs a's room while its kernel may still be running. */
	CHK(cuMemAlloc(&e, BUF));
	CHK(cuMemsetD32(e, f2u(9.0f), NF));
	ck_assert_msg(itest_counters().page_outs > before, "nothing was paged out to make room");
	CHK(cuStreamSynchronize(s));
	simtest_expect_floats(a, NF, 7.0f);
	simtest_expect_floats(e, NF, 9.0f);
	for (int i = 0; i < 3; i++)
		simtest_expect_floats(o[i], NF, 20.0f + (float)i);
	CHK(cuMemFree(small));
	CHK(cuCtxSynchronize());
}
END_TEST

/* A buffer read on two streams: the page-out must wait for both uses, not only the latest. The
 * earlier-issued use finishes last (its stream has a slow kernel queued before it). */
START_TEST(test_inv2_page_out_waits_for_every_stream)
{
	CUdeviceptr a, o[3], e, x, y, dummy;
	CUstream s1, s2;
	uint64_t before;

	start_env(inv2_env[_i]);
	CHK(cuStreamCreate(&s1, CU_STREAM_NON_BLOCKING));
	CHK(cuStreamCreate(&s2, CU_STREAM_NON_BLOCKING));
	/* Small buffers come from the slab and are never paged. */
	x = alloc_filled(4 * ITEST_KIB, 1.0f);
	y = alloc_filled(4 * ITEST_KIB, 1.0f);
	dummy = alloc_filled(4 * ITEST_KIB, 0.0f);
	a = alloc_filled(BUF, 7.0f);
	for (int i = 0; i < 3; i++)
		o[i] = alloc_filled(BUF, 20.0f + (float)i);
	CHK(simtest_fill(dummy, 1.0f, 1024, s1));
	CHK(simtest_axpy(x, a, 1.0f, 1024, s1)); /* x = 1 + 7, finishes last */
	CHK(simtest_axpy(y, a, 2.0f, 1024, s2)); /* y = 1 + 14 */
	for (int i = 0; i < 3; i++)
		touch_by_copy(o[i], 20.0f + (float)i);
	before = itest_counters().page_outs;
	CHK(cuMemAlloc(&e, BUF));
	CHK(cuMemsetD32(e, f2u(9.0f), NF));
	ck_assert_msg(itest_counters().page_outs > before, "nothing was paged out to make room");
	CHK(cuStreamSynchronize(s1));
	CHK(cuStreamSynchronize(s2));
	simtest_expect_floats(x, 1024, 8.0f);
	simtest_expect_floats(y, 1024, 15.0f);
	simtest_expect_floats(a, NF, 7.0f);
	simtest_expect_floats(e, NF, 9.0f);
	CHK(cuCtxSynchronize());
}
END_TEST

/* A buffer freed while a slow kernel still writes it: its pages must not be reused (and written by
 * the new owner) or released before the kernel is done. */
START_TEST(test_inv2_free_waits_for_last_use)
{
	CUdeviceptr a, b, o[3];
	CUstream s;

	start_env(inv2_env[_i]);
	CHK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
	for (int i = 0; i < 3; i++)
		o[i] = alloc_filled(BUF, 20.0f + (float)i);
	a = alloc_filled(BUF, 1.0f);
	b = alloc_filled(4 * ITEST_KIB, 0.0f);
	CHK(simtest_fill(a, 7.0f, NF, s));
	CHK(simtest_axpy(b, a, 1.0f, 1024, s)); /* b = 7, read from a after the fill */
	CHK(cuMemFree(a));
	/* The new buffer may reuse a's pages, but only once the kernels are done. */
	CHK(cuMemAlloc(&a, BUF));
	CHK(cuMemsetD32(a, f2u(4.0f), NF));
	CHK(cuStreamSynchronize(s));
	simtest_expect_floats(b, 1024, 7.0f);
	simtest_expect_floats(a, NF, 4.0f);
	for (int i = 0; i < 3; i++)
		simtest_expect_floats(o[i], NF, 20.0f + (float)i);
	CHK(cuCtxSynchronize());
}
END_TEST

/* ---- invariant 3: paged data comes back byte for byte ---- */

#define INV3_N 7
static const size_t inv3_sizes[INV3_N] = {4097, 5003, 12289, 8191, 30001, 3 * 4096 + 1, 16383};

static const char *const inv3_env[2][8] = {
	{"SIMCUDA_MEM=64MiB", "SIMCUDA_GRANULARITY=4KiB", "MEMVIRT_SLAB_THRESHOLD=4KiB", "MEMVIRT_BUDGET=64KiB",
	 NET_OFF, NULL},
	{"SIMCUDA_MEM=64MiB", "SIMCUDA_GRANULARITY=4KiB", "MEMVIRT_SLAB_THRESHOLD=4KiB", "MEMVIRT_BUDGET=64KiB",
	 NULL},
};

/* Random operations on odd-sized buffers under a budget that holds a fraction of them, each step
 * checked against a host copy: whole and partial reads, partial writes at odd offsets, device to
 * device copies. `fail_ok`: an injected copy failure may make one call fail; it is retried. Returns
 * how many calls failed. */
static int inv3_run(uint64_t seed, int rounds, int fail_ok)
{
	CUdeviceptr d[INV3_N];
	unsigned char *ref[INV3_N], *tmp = malloc(32768);
	uint64_t rng = seed;
	int failures = 0;
	CUresult r;

	ck_assert_ptr_nonnull(tmp);
	for (int i = 0; i < INV3_N; i++) {
		ref[i] = malloc(inv3_sizes[i]);
		ck_assert_ptr_nonnull(ref[i]);
		itest_random_bytes(&rng, ref[i], inv3_sizes[i]);
		do
			r = cuMemAlloc(&d[i], inv3_sizes[i]);
		while (r != CUDA_SUCCESS && fail_ok && failures++ == 0);
		CHK(r);
		do
			r = cuMemcpyHtoD(d[i], ref[i], inv3_sizes[i]);
		while (r == CUDA_ERROR_UNKNOWN && fail_ok && failures++ == 0);
		CHK(r);
	}
#define RETRY(call)                                                                                      \
	do {                                                                                             \
		r = (call);                                                                              \
		if (r == CUDA_ERROR_UNKNOWN && fail_ok && failures++ == 0)                               \
			r = (call);                                                                      \
		if (r != CUDA_SUCCESS)                                                                   \
			ck_abort_msg("seed %llu round %d: %s failed: %s", (unsigned long long)seed, k, #call, \
				     simtest_err_name(r));                                               \
	} while (0)
	for (int k = 0; k < rounds; k++) {
		int i = (int)(itest_rand(&rng) % INV3_N), j = (int)(itest_rand(&rng) % INV3_N);
		size_t size = inv3_sizes[i], off = itest_rand(&rng) % size, len = 1 + itest_rand(&rng) % (size - off);
		switch (itest_rand(&rng) % 4) {
		case 0: /* whole read */
			RETRY(cuMemcpyDtoH(tmp, d[i], size));
			if (memcmp(tmp, ref[i], size) != 0)
				for (size_t b = 0; b < size; b++)
					ck_assert_msg(tmp[b] == ref[i][b],
						      "seed %llu round %d: buffer %d (%zu bytes) byte %zu is %#x, "
						      "expected %#x",
						      (unsigned long long)seed, k, i, size, b, tmp[b], ref[i][b]);
			break;
		case 1: /* partial read */
			RETRY(cuMemcpyDtoH(tmp, d[i] + off, len));
			ck_assert_msg(memcmp(tmp, ref[i] + off, len) == 0,
				      "seed %llu round %d: buffer %d bytes [%zu, %zu) differ", (unsigned long long)seed,
				      k, i, off, off + len);
			break;
		case 2: /* partial write */
			itest_random_bytes(&rng, tmp, len);
			RETRY(cuMemcpyHtoD(d[i] + off, tmp, len));
			memcpy(ref[i] + off, tmp, len);
			break;
		default: /* device to device, between two buffers */
			if (i == j)
				break;
			len = len < inv3_sizes[j] ? len : inv3_sizes[j];
			{
				size_t doff = itest_rand(&rng) % (inv3_sizes[j] - len + 1);
				RETRY(cuMemcpyDtoD(d[j] + doff, d[i] + off, len));
				memcpy(ref[j] + doff, ref[i] + off, len);
			}
			break;
		}
	}
#undef RETRY
	for (int i = 0; i < INV3_N; i++) {
		char what[64];
		snprintf(what, sizeof(what), "seed %llu, buffer %d at the end", (unsigned long long)seed, i);
		itest_expect_bytes(d[i], ref[i], inv3_sizes[i], what);
		CHK(cuMemFree(d[i]));
		free(ref[i]);
	}
	free(tmp);
	return failures;
}

START_TEST(test_inv3_roundtrip_byte_identical)
{
	struct memvirt_counters c;

	start_env(inv3_env[_i]);
	inv3_run(0x1234u + (uint64_t)_i, 400, 0);
	c = itest_counters();
	ck_assert_msg(c.page_outs >= 100 && c.page_ins >= 100, "too little paging: %llu out, %llu in",
		      (unsigned long long)c.page_outs, (unsigned long long)c.page_ins);
	CHK(cuCtxSynchronize());
}
END_TEST

/* A copy that fails (SIMCUDA_FAIL_COPY) anywhere, in a page-out, a page-in or the app's own copy,
 * loses nothing: at most the app's call fails, and the data is intact after. */
static const char *const inv3_fail[] = {
	"SIMCUDA_FAIL_COPY=d2h:3", "SIMCUDA_FAIL_COPY=d2h:10", "SIMCUDA_FAIL_COPY=d2h:25",
	"SIMCUDA_FAIL_COPY=h2d:9", "SIMCUDA_FAIL_COPY=h2d:14", "SIMCUDA_FAIL_COPY=h2d:30",
	"SIMCUDA_FAIL_COPY=any:20", "SIMCUDA_FAIL_COPY=any:41", "SIMCUDA_FAIL_COPY=d2d:2",
};

START_TEST(test_inv3_copy_failure_loses_nothing)
{
	struct memvirt_counters c;

	simtest_env(inv3_fail[_i], (const char *)0);
	start_env(inv3_env[0]);
	inv3_run(0x777u + (uint64_t)_i, 120, 1);
	c = itest_counters();
	ck_assert_uint_gt(c.page_outs, 10);
	CHK(cuCtxSynchronize());
}
END_TEST

/* ---- invariant 5: the rest behaves as without memvirt; out of memory only when it must be ---- */

START_TEST(test_inv5_unrelated_calls_unchanged)
{
	const char *env[] = {"SIMCUDA_MEM=64MiB", NULL};
	struct itest_child without = itest_run_helper("unrelated", 0, env, 60);
	struct itest_child with = itest_run_helper("unrelated", 1, env, 60);
	const char *a = without.out, *b = with.out;
	int lineno = 1;

	ck_assert_msg(itest_exit_code(&without) == 0, "without memvirt: %s; stderr: %s", itest_how(&without),
		      without.err);
	ck_assert_msg(strstr(without.out, "end: 0") != NULL, "without memvirt the probes did not finish");
	/* Compare line by line, to name the first call that differs. */
	while (*a != '\0' || *b != '\0') {
		size_t la = strcspn(a, "\n"), lb = strcspn(b, "\n");
		if (la != lb || strncmp(a, b, la) != 0)
			ck_abort_msg("line %d differs: without memvirt \"%.*s\", with memvirt \"%.*s\" (child %s; "
				     "stderr: %s)",
				     lineno, (int)la, a, (int)lb, *b ? b : "(nothing: it ended here)", itest_how(&with),
				     with.err);
		a += la + (a[la] == '\n');
		b += lb + (b[lb] == '\n');
		lineno++;
	}
	ck_assert_msg(itest_exit_code(&with) == 0, "with memvirt: %s; stderr: %s", itest_how(&with), with.err);
	itest_child_free(&without);
	itest_child_free(&with);
}
END_TEST

/* Ten budgets' worth of large buffers all fit (others are paged out); one buffer larger than the
 * whole budget cannot, and is the only refusal. Nothing paged out meanwhile is lost. */
START_TEST(test_inv5_oom_only_when_budget_cannot_be_met)
{
	enum { COUNT = 160 };
	const size_t size = 128 * ITEST_KIB, budget = 2 << 20;
	CUdeviceptr p[COUNT], big;
	size_t free_b = 0, total = 0;
	struct memvirt_counters c;

	simtest_start("SIMCUDA_MEM=2MiB", GRAN64, THR16, NET_OFF);
	for (int i = 0; i < COUNT; i++) {
		CUresult r = cuMemAlloc(&p[i], size);
		ck_assert_msg(r == CUDA_SUCCESS, "allocation %d of %d (%zu bytes each, budget %zu) failed: %s", i, COUNT,
			      size, budget, simtest_err_name(r));
		CHK(simtest_fill(p[i], (float)i, size / sizeof(float), NULL));
	}
	CHK(cuCtxSynchronize());
	c = itest_counters();
	ck_assert_uint_eq(c.oom, 0);
	ck_assert_uint_le(c.resident_bytes, budget);
	ck_assert_uint_ge(c.page_outs, COUNT - budget / size);
	CHK(cuMemGetInfo(&free_b, &total));
	ck_assert_uint_eq(total, budget);
	ck_assert_uint_le(free_b, total);

	CHK_ERR(cuMemAlloc(&big, budget + 64 * ITEST_KIB), CUDA_ERROR_OUT_OF_MEMORY);
	ck_assert_uint_eq(itest_counters().oom, 1);
	/* The refusal is not sticky, and everything is still there. */
	for (int i = 0; i < COUNT; i++)
		simtest_expect_floats(p[i], size / sizeof(float), (float)i);
	CHK(cuMemFree(p[0]));
	CHK(cuMemAlloc(&p[0], size));
	CHK(simtest_fill(p[0], 0.5f, size / sizeof(float), NULL));
	simtest_expect_floats(p[0], size / sizeof(float), 0.5f);
	ck_assert_uint_eq(itest_counters().oom, 1);
	CHK(cuCtxSynchronize());
}
END_TEST

START_TEST(test_inv5_percent_budget)
{
	size_t free_b = 0, total = 0, dev_total = 0;
	CUdeviceptr p;

	simtest_start("SIMCUDA_MEM=64MiB", "MEMVIRT_BUDGET=50%");
	CHK(cuMemGetInfo(&free_b, &total));
	ck_assert_uint_eq(total, 32ull << 20);
	ck_assert_uint_eq(free_b, 32ull << 20);
	ck_assert_uint_eq(itest_counters().budget, 32ull << 20);
	/* The device's own size is unrelated to memvirt and reads as before. */
	CHK(cuDeviceTotalMem(&dev_total, simtest_dev));
	ck_assert_uint_eq(dev_total, 64ull << 20);
	CHK(cuMemAlloc(&p, 4 << 20));
	CHK(cuMemGetInfo(&free_b, &total));
	ck_assert_uint_eq(total, 32ull << 20);
	ck_assert_uint_eq(free_b, 28ull << 20);
	CHK(cuMemFree(p));
}
END_TEST

/* ---- invariant 6: nothing on stdout, no exit, errors as codes plus a log line ---- */

START_TEST(test_inv6_never_prints_to_stdout)
{
	const char *bad[] = {"SIMCUDA_MEM=320KiB", GRAN64, THR16, "MEMVIRT_BUDGET=abc", "MEMVIRT_LOG=bogus", NULL};
	const char *debug[] = {"SIMCUDA_MEM=320KiB", GRAN64, THR16, "MEMVIRT_BUDGET=200KiB", "MEMVIRT_LOG=debug",
			       "MEMVIRT_HOST_LIMIT=xyz", "MEMVIRT_SAFETY_NET=maybe", NULL};
	struct itest_child c = itest_run_helper("noisy", 1, bad, 60);

	ck_assert_msg(itest_exit_code(&c) == 42, "bad settings: %s, expected the child's own exit 42; stderr: %s",
		      itest_how(&c), c.err);
	ck_assert_msg(c.out[0] == '\0', "the library wrote to stdout: \"%s\"", c.out);
	ck_assert_msg(strstr(c.err, "MEMVIRT_BUDGET=abc") != NULL, "stderr does not name the bad budget: %s", c.err);
	ck_assert_msg(strstr(c.err, "MEMVIRT_LOG=bogus") != NULL, "stderr does not name the bad log level: %s", c.err);
	itest_child_free(&c);

	/* Every debug and info line, the exit summary included, goes to stderr. */
	c = itest_run_helper("noisy", 1, debug, 60);
	ck_assert_msg(itest_exit_code(&c) == 42, "debug log: %s, expected exit 42; stderr: %s", itest_how(&c), c.err);
	ck_assert_msg(c.out[0] == '\0', "the library wrote to stdout: \"%s\"", c.out);
	ck_assert_msg(strstr(c.err, "MEMVIRT_HOST_LIMIT=xyz") != NULL, "stderr does not name the bad host limit");
	ck_assert_msg(strstr(c.err, "MEMVIRT_SAFETY_NET=maybe") != NULL, "stderr does not name the bad safety net");
	ck_assert_msg(strstr(c.err, "page-outs") != NULL, "no exit summary on stderr: %s", c.err);
	itest_child_free(&c);
}
END_TEST

/* ---- pointers uploaded into device memory ---- */

/* mv_gather_ptrs reads three large buffers only through a pointer table the app uploaded with
 * cuMemcpyHtoD: their addresses are in no kernel parameter. */
static void gather_case(int net)
{
	CUdeviceptr x[3], o[4], table, out;
	float vo[4] = {20, 21, 22, 23};
	uint64_t host_table[3];
	char logpath[PATH_MAX];
	struct memvirt_counters before;

	itest_tmpfile(logpath, sizeof(logpath), "log");
	simtest_env("MEMVIRT_LOG=debug", (const char *)0);
	ck_assert_int_eq(setenv("MEMVIRT_LOG_FILE", logpath, 1), 0);
	/* Budget: the slab chunk and four large buffers. */
	if (net)
		simtest_start("SIMCUDA_MEM=320KiB", GRAN64, THR16);
	else
		simtest_start("SIMCUDA_MEM=320KiB", GRAN64, THR16, NET_OFF);
	table = alloc_filled(4 * ITEST_KIB, 0.0f);
	out = alloc_filled(4 * ITEST_KIB, 0.0f);
	for (int i = 0; i < 3; i++) {
		x[i] = alloc_filled(BUF, (float)(1 << i));
		host_table[i] = x[i];
	}
	CHK(cuMemcpyHtoD(table, host_table, sizeof(host_table)));
	for (int i = 0; i < 4; i++)
		o[i] = alloc_filled(BUF, vo[i]);
	touch(o, vo, 4);
	before = itest_counters();
	ck_assert_uint_ge(before.host_bytes, 3 * BUF);
	{
		uint32_t count = 3;
		uint64_t n = 1024;
		void *args[] = {&out, &table, &count, &n};
		CHK(simtest_launch("mv_gather_ptrs", NULL, args));
	}
	CHK(cuCtxSynchronize());
	simtest_expect_floats(out, 1024, 7.0f);
	if (!net) {
		/* Without the safety net only the reference rule can have brought them in. */
		char *log = itest_slurp(logpath);
		ck_assert_uint_ge(itest_counters().page_ins, before.page_ins + 3);
		for (int i = 0; i < 3; i++) {
			char want[128];
			snprintf(want, sizeof(want), "buffer %#llx kept resident: its address was uploaded into %#llx",
				 (unsigned long long)x[i], (unsigned long long)table);
			ck_assert_msg(strstr(log, want) != NULL, "the log lacks \"%s\"", want);
		}
		free(log);
	}
	/* And the buffers read right through ordinary paths afterwards. */
	for (int i = 0; i < 3; i++)
		simtest_expect_floats(x[i], NF, (float)(1 << i));
	for (int i = 0; i < 4; i++)
		simtest_expect_floats(o[i], NF, vo[i]);
	CHK(cuCtxSynchronize());
	unlink(logpath);
}

START_TEST(test_gather_ptrs_safety_net_on)
{
	gather_case(1);
}
END_TEST

START_TEST(test_gather_ptrs_reference_rule)
{
	gather_case(0);
}
END_TEST

/* ---- partial residency ---- */

/* A kernel naming more than the budget holds at once: y (three granules) and x (three), in a
 * budget of four granules. With the safety net, y stays in host memory and the kernel reaches it
 * over the link; without, the launch is refused. Either way no data is lost. */
static void too_big_case(int net)
{
	CUdeviceptr y, x;
	char logpath[PATH_MAX];
	struct memvirt_counters before;
	CUresult r;

	itest_tmpfile(logpath, sizeof(logpath), "log");
	simtest_env("MEMVIRT_LOG=info", (const char *)0);
	ck_assert_int_eq(setenv("MEMVIRT_LOG_FILE", logpath, 1), 0);
	/* Budget: the slab chunk and four large buffers. */
	if (net)
		simtest_start("SIMCUDA_MEM=320KiB", GRAN64, THR16);
	else
		simtest_start("SIMCUDA_MEM=320KiB", GRAN64, THR16, NET_OFF);
	y = alloc_filled(3 * BUF, 1.0f);
	x = alloc_filled(3 * BUF, 2.0f);
	before = itest_counters();
	ck_assert_uint_ge(before.host_bytes, 3 * BUF);
	r = simtest_axpy(y, x, 3.0f, 3 * NF, NULL);
	if (net) {
		char *log;
		CHK(r);
		CHK(cuCtxSynchronize());
		ck_assert_uint_eq(itest_counters().host_mapped_runs, before.host_mapped_runs + 1);
		ck_assert_uint_eq(itest_counters().host_mapped_bytes, before.host_mapped_bytes + 3 * BUF);
		ck_assert_uint_eq(itest_counters().oom, before.oom);
		log = itest_slurp(logpath);
		ck_assert_msg(strstr(log, "reached in host memory over the link") != NULL,
			      "the log does not say the launch reached host memory: %s", log);
		free(log);
		simtest_expect_floats(y, 3 * NF, 7.0f);
	} else {
		ck_assert_int_eq(r, CUDA_ERROR_OUT_OF_MEMORY);
		ck_assert_uint_eq(itest_counters().host_mapped_runs, before.host_mapped_runs);
		simtest_expect_floats(y, 3 * NF, 1.0f);
	}
	simtest_expect_floats(x, 3 * NF, 2.0f);
	CHK(cuCtxSynchronize());
	unlink(logpath);
}

START_TEST(test_launch_bigger_than_budget_reaches_host)
{
	too_big_case(1);
}
END_TEST

START_TEST(test_launch_bigger_than_budget_refused_without_net)
{
	too_big_case(0);
}
END_TEST

/* A graph naming more than the budget holds: with the safety net its launches run with one of
 * the buffers in host memory, each launch's result right. */
START_TEST(test_graph_bigger_than_budget_reaches_host)
{
	CUdeviceptr y, x;
	CUgraph g;
	CUgraphExec e;
	CUstream s;
	struct memvirt_counters before;

	simtest_start("SIMCUDA_MEM=320KiB", GRAN64, THR16);
	CHK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
	y = alloc_filled(3 * BUF, 1.0f);
	x = alloc_filled(3 * BUF, 2.0f);
	CHK(cuStreamBeginCapture_v2(s, CU_STREAM_CAPTURE_MODE_GLOBAL));
	CHK(simtest_axpy(y, x, 3.0f, 3 * NF, s));
	CHK(cuStreamEndCapture(s, &g));
	CHK(cuGraphInstantiateWithFlags(&e, g, 0));
	CHK(cuGraphDestroy(g));
	before = itest_counters();
	CHK(cuGraphLaunch(e, s));
	CHK(cuGraphLaunch(e, s));
	CHK(cuStreamSynchronize(s));
	ck_assert_uint_eq(itest_counters().host_mapped_runs, before.host_mapped_runs + 2);
	simtest_expect_floats(y, 3 * NF, 13.0f);
	simtest_expect_floats(x, 3 * NF, 2.0f);
	CHK(cuGraphExecDestroy(e));
	CHK(cuStreamDestroy(s));
}
END_TEST

/* An allocation no room can be made for starts in host memory where the safety net maps it: one
 * bigger than the whole budget (six granules in five), used over the link, and one beside the
 * app's own VMM memory, brought in once that is released. Without the net the first is refused. */
static void alloc_on_host_case(int net)
{
	CUdeviceptr big, x;
	CUmemGenericAllocationHandle app;
	CUmemAllocationProp prop = simtest_prop(0);
	char logpath[PATH_MAX];
	struct memvirt_counters before;
	char *log;

	itest_tmpfile(logpath, sizeof(logpath), "log");
	simtest_env("MEMVIRT_LOG=info", (const char *)0);
	ck_assert_int_eq(setenv("MEMVIRT_LOG_FILE", logpath, 1), 0);
	/* Budget: the slab chunk and four large buffers. */
	if (net)
		simtest_start("SIMCUDA_MEM=320KiB", GRAN64, THR16);
	else
		simtest_start("SIMCUDA_MEM=320KiB", GRAN64, THR16, NET_OFF);
	before = itest_counters();
	if (!net) {
		ck_assert_int_eq(cuMemAlloc(&big, 6 * BUF), CUDA_ERROR_OUT_OF_MEMORY);
		ck_assert_uint_eq(itest_counters().oom, before.oom + 1);
		unlink(logpath);
		return;
	}
	CHK(cuMemAlloc(&big, 6 * BUF));
	ck_assert_uint_eq(itest_counters().host_bytes, before.host_bytes + 6 * BUF);
	ck_assert_uint_eq(itest_counters().oom, before.oom);
	CHK(simtest_fill(big, 4.0f, 6 * NF, NULL));
	CHK(cuCtxSynchronize());
	ck_assert_uint_eq(itest_counters().host_mapped_runs, before.host_mapped_runs + 1);
	simtest_expect_floats(big, 6 * NF, 4.0f);
	CHK(cuMemFree(big));
	CHK(cuCtxSynchronize());
	/* The pager gives its host memory back once its last uses are seen complete: up to 60 s. */
	for (int i = 0; i < 60000 && itest_counters().host_bytes != before.host_bytes; i++)
		usleep(1000);
	ck_assert_uint_eq(itest_counters().host_bytes, before.host_bytes);

	CHK(cuMemCreate(&app, 4 * BUF, &prop, 0));
	CHK(cuMemAlloc(&x, 2 * BUF));
	ck_assert_uint_eq(itest_counters().host_bytes, before.host_bytes + 2 * BUF);
	CHK(cuMemRelease(app));
	before = itest_counters();
	CHK(simtest_fill(x, 5.0f, 2 * NF, NULL));
	CHK(cuCtxSynchronize());
	ck_assert_uint_eq(itest_counters().page_ins, before.page_ins + 1);
	ck_assert_uint_eq(itest_counters().host_mapped_runs, before.host_mapped_runs);
	simtest_expect_floats(x, 2 * NF, 5.0f);
	CHK(cuMemFree(x));
	log = itest_slurp(logpath);
	ck_assert_msg(strstr(log, "placed in host memory, reached over the link") != NULL,
		      "the log does not say an allocation was placed in host memory: %s", log);
	free(log);
	unlink(logpath);
}

START_TEST(test_allocation_bigger_than_budget_starts_on_host)
{
	alloc_on_host_case(1);
}
END_TEST

START_TEST(test_allocation_bigger_than_budget_refused_without_net)
{
	alloc_on_host_case(0);
}
END_TEST

/* Holds a stream until opened: a host function waiting for the flag. */
static _Atomic int gate_open;

static void CUDA_CB gate_wait(void *arg)
{
	(void)arg;
	while (!atomic_load(&gate_open))
		usleep(1000);
}

/* Opens the gate once memvirt has issued a page-in beyond `since`, or after 300 ms without one: a
 * page-in issued while the gated kernel still uses the buffer in host memory would then copy stale
 * data over what the kernel writes (the copies here are slowed to half a second each). Whichever
 * comes first, the right outcome is the same; only a missing wait shows. */
struct opener {
	uint64_t since;
};

static void *open_gate(void *arg)
{
	const struct opener *o = arg;

	for (int i = 0; i < 300 && itest_counters().page_ins <= o->since; i++)
		usleep(1000);
	atomic_store(&gate_open, 1);
	return NULL;
}

/* A buffer used in host memory by a kernel still waiting to run is paged in only after that kernel:
 * room for it appears (the app releases its own VMM memory) without anything of the kernel's
 * leaving, and the app reads y after the kernel (an event orders its copy after it). */
START_TEST(test_page_in_waits_for_work_on_the_host)
{
	CUdeviceptr y, x;
	CUmemGenericAllocationHandle app;
	CUmemAllocationProp prop = simtest_prop(0);
	CUstream s;
	CUevent done;
	struct opener o;
	struct memvirt_counters before;
	pthread_t t;

	simtest_start("SIMCUDA_MEM=320KiB", GRAN64, THR16, "SIMCUDA_DELAY_H2D_US=500000");
	atomic_store(&gate_open, 0);
	CHK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
	CHK(cuEventCreate(&done, CU_EVENT_DISABLE_TIMING));
	y = alloc_filled(3 * BUF, 1.0f);
	x = alloc_filled(BUF, 2.0f);
	/* The app's own three granules push y out; x, used since, stays. */
	CHK(cuMemCreate(&app, 3 * BUF, &prop, 0));
	ck_assert_uint_ge(itest_counters().host_bytes, 3 * BUF);
	before = itest_counters();
	CHK(cuLaunchHostFunc(s, gate_wait, NULL));
	CHK(simtest_axpy(y, x, 3.0f, NF, s));
	CHK(cuEventRecord(done, s));
	ck_assert_uint_eq(itest_counters().host_mapped_runs, before.host_mapped_runs + 1);
	/* Room for y, while the kernel still waits at the gate. */
	CHK(cuMemRelease(app));
	o.since = itest_counters().page_ins;
	ck_assert_int_eq(pthread_create(&t, NULL, open_gate, &o), 0);
	{
		float *h = malloc(3 * BUF);
		ck_assert_ptr_nonnull(h);
		CHK(cuStreamWaitEvent(NULL, done, 0));
		CHK(cuMemcpyDtoH(h, y, 3 * BUF));
		simtest_expect_host(h, NF, 7.0f);
		simtest_expect_host(h + NF, 2 * NF, 1.0f);
		free(h);
	}
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	ck_assert_uint_gt(itest_counters().page_ins, o.since);
	CHK(cuStreamSynchronize(s));
	simtest_expect_floats(x, NF, 2.0f);
	CHK(cuEventDestroy(done));
	CHK(cuStreamDestroy(s));
}
END_TEST

/* ---- fork ---- */

struct hammer {
	CUdeviceptr b[6];
	float *tmp;        /* the thread's copy buffer, owned here so a forked child still reaches it */
	_Atomic int stop;  /* set by the test thread, read by the paging thread */
	int rounds;
	CUresult err;
};

/* Keeps memvirt busy (paging its own six buffers through a four-buffer budget) while the main
 * thread forks, so that the library's lock is often held at the moment of a fork. */
static void *hammer_run(void *arg)
{
	struct hammer *h = arg;
	float *tmp = h->tmp;

	if (cuCtxSetCurrent(simtest_ctx) != CUDA_SUCCESS || tmp == NULL) {
		h->err = CUDA_ERROR_UNKNOWN;
		return NULL;
	}
	while (!h->stop && h->err == CUDA_SUCCESS) {
		for (int i = 0; i < 6 && h->err == CUDA_SUCCESS; i++) {
			h->err = cuMemcpyDtoH(tmp, h->b[i], BUF);
			if (h->err == CUDA_SUCCESS && tmp[NF - 1] != (float)i)
				h->err = CUDA_ERROR_INVALID_VALUE;
		}
		h->rounds++;
	}
	return NULL;
}

START_TEST(test_fork_child_exits_parent_keeps_paging)
{
	struct hammer h;
	pthread_t t;
	uint64_t outs;
	char logpath[PATH_MAX];

	itest_tmpfile(logpath, sizeof(logpath), "log");
	/* The summary at exit (info) takes the library's lock in the child too. */
	simtest_env("MEMVIRT_LOG=info", (const char *)0);
	ck_assert_int_eq(setenv("MEMVIRT_LOG_FILE", logpath, 1), 0);
	simtest_start("SIMCUDA_MEM=320KiB", GRAN64, THR16, NET_OFF);
	memset(&h, 0, sizeof(h));
	for (int i = 0; i < 6; i++)
		h.b[i] = alloc_filled(BUF, (float)i);
	ck_assert_uint_gt(itest_counters().page_outs, 0);
	h.tmp = malloc(BUF);
	ck_assert_int_eq(pthread_create(&t, NULL, hammer_run, &h), 0);
	for (int k = 0; k < 20; k++) {
		pid_t pid;
		int status = 0, waited = 0;
		fflush(NULL);
		pid = fork();
		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			size_t f, tot;
			struct memvirt_counters c;
			memvirt_counters_fn fn = (memvirt_counters_fn)dlsym(RTLD_DEFAULT, MEMVIRT_COUNTERS);
			alarm(20);
			if (fn == NULL)
				_exit(5);
			fn(&c);
			if (cuMemGetInfo(&f, &tot) != CUDA_SUCCESS || tot != c.budget)
				_exit(6);
			exit(0);
		}
		for (;;) {
			pid_t w = waitpid(pid, &status, WNOHANG);
			if (w == pid)
				break;
			if (waited > 30000) {
				kill(pid, SIGKILL);
				waitpid(pid, &status, 0);
				h.stop = 1;
				ck_abort_msg("fork %d: the child hung", k);
			}
			usleep(1000);
			waited++;
		}
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "fork %d: the child ended with status %#x",
			      k, status);
	}
	h.stop = 1;
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	free(h.tmp);
	ck_assert_msg(h.err == CUDA_SUCCESS, "the paging thread failed: %s", simtest_err_name(h.err));
	/* The parent keeps paging correctly. */
	outs = itest_counters().page_outs;
	for (int k = 0; k < 3; k++)
		for (int i = 0; i < 6; i++)
			simtest_expect_floats(h.b[i], NF, (float)i);
	for (int i = 0; i < 6; i++)
		CHK(simtest_fill(h.b[i], (float)(i + 100), NF, NULL));
	for (int i = 0; i < 6; i++)
		simtest_expect_floats(h.b[i], NF, (float)(i + 100));
	ck_assert_uint_gt(itest_counters().page_outs, outs);
	CHK(cuCtxSynchronize());
	unlink(logpath);
}
END_TEST

/* ---- graphs ---- */

/* Launches captured while their buffers were paged out: every graph launch brings them in, and
 * after pressure has paged them out again, the next launch does too. Without the safety net a
 * graph launch over an evicted buffer would fault. */
START_TEST(test_graph_capture_pins_buffers)
{
	CUdeviceptr x, y, f[8];
	float vf[8];
	CUstream s;
	CUgraph g = NULL;
	CUgraphExec e = NULL;
	struct memvirt_counters c;
	uint64_t outs;

	/* Six 64KiB buffers fit. */
	simtest_start("SIMCUDA_MEM=384KiB", GRAN64, THR16, NET_OFF);
	CHK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
	x = alloc_filled(BUF, 2.0f);
	y = alloc_filled(BUF, 1.0f);
	for (int i = 0; i < 6; i++) {
		vf[i] = 30.0f + (float)i;
		f[i] = alloc_filled(BUF, vf[i]);
	}
	c = itest_counters();
	ck_assert_uint_ge(c.host_bytes, 2 * BUF); /* x and y are out */

	CHK(cuStreamBeginCapture_v2(s, CU_STREAM_CAPTURE_MODE_GLOBAL));
	CHK(simtest_axpy(y, x, 1.0f, NF, s));
	CHK(cuStreamEndCapture(s, &g));
	ck_assert_ptr_nonnull(g);
	CHK(cuGraphInstantiateWithFlags(&e, g, 0));
	CHK(cuGraphLaunch(e, s));
	CHK(cuGraphLaunch(e, s));
	CHK(cuStreamSynchronize(s));
	simtest_expect_floats(y, NF, 5.0f);

	/* Pressure: six other buffers cycle through the four slots x and y leave. */
	outs = itest_counters().page_outs;
	for (int i = 6; i < 8; i++) {
		vf[i] = 30.0f + (float)i;
		f[i] = alloc_filled(BUF, vf[i]);
	}
	for (int k = 0; k < 3; k++)
		touch(f, vf, 8);
	ck_assert_uint_gt(itest_counters().page_outs, outs + 8);
	/* x and y may be out again: this launch brings them in. */
	CHK(cuGraphLaunch(e, s));
	CHK(cuStreamSynchronize(s));
	simtest_expect_floats(y, NF, 7.0f);
	simtest_expect_floats(x, NF, 2.0f);
	for (int i = 0; i < 8; i++)
		simtest_expect_floats(f[i], NF, vf[i]);
	CHK(cuGraphExecDestroy(e));
	CHK(cuGraphDestroy(g));
	CHK(cuCtxSynchronize());
}
END_TEST

/* Nodes added to a graph by hand name buffers as captured launches do: a graph launch after
 * pressure brings them in, as does one after an exec's parameters are changed to name a buffer
 * that was paged out. Without that the launch faults. */
START_TEST(test_graph_explicit_nodes_pin_buffers)
{
	CUdeviceptr x, y, z, w, f[8];
	float vf[8], one = 1.0f;
	uint64_t n = NF;
	void *args[] = {&y, &x, &one, &n}, *args2[] = {&f[0], &x, &one, &n};
	CUstream s;
	CUgraph g;
	CUgraphExec e;
	CUgraphNode k, set, cp;
	CUDA_KERNEL_NODE_PARAMS kp = {0};
	CUDA_MEMSET_NODE_PARAMS mp = {0};
	CUDA_MEMCPY3D c = {0};
	uint64_t outs;

	/* Six 64KiB buffers fit; the graph names four. */
	simtest_start("SIMCUDA_MEM=384KiB", GRAN64, THR16, NET_OFF);
	CHK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
	x = alloc_filled(BUF, 2.0f);
	y = alloc_filled(BUF, 1.0f);
	z = alloc_filled(BUF, 0.0f);
	w = alloc_filled(BUF, 0.0f);
	CHK(cuGraphCreate(&g, 0));
	kp.func = simtest_func("mv_axpy");
	kp.gridDimX = kp.gridDimY = kp.gridDimZ = kp.blockDimX = kp.blockDimY = kp.blockDimZ = 1;
	kp.kernelParams = args;
	CHK(cuGraphAddKernelNode(&k, g, NULL, 0, &kp));
	mp.dst = z;
	mp.value = f2u(4.0f);
	mp.elementSize = 4;
	mp.width = NF;
	mp.height = 1;
	CHK(cuGraphAddMemsetNode(&set, g, &k, 1, &mp, simtest_ctx));
	c.srcMemoryType = c.dstMemoryType = CU_MEMORYTYPE_DEVICE;
	c.srcDevice = z;
	c.dstDevice = w;
	c.WidthInBytes = BUF;
	c.Height = c.Depth = 1;
	CHK(cuGraphAddMemcpyNode(&cp, g, &set, 1, &c, simtest_ctx));
	CHK(cuGraphInstantiate(&e, g, 0));

	/* Pressure: eight other buffers cycle through the two slots left. */
	outs = itest_counters().page_outs;
	for (int i = 0; i < 8; i++) {
		vf[i] = 30.0f + (float)i;
		f[i] = alloc_filled(BUF, vf[i]);
	}
	for (int r = 0; r < 3; r++)
		touch(f, vf, 8);
	ck_assert_uint_gt(itest_counters().page_outs, outs + 8);
	CHK(cuGraphLaunch(e, s));
	CHK(cuStreamSynchronize(s));
	simtest_expect_floats(y, NF, 3.0f);
	simtest_expect_floats(z, NF, 4.0f);
	simtest_expect_floats(w, NF, 4.0f);

	/* f[0] was paged out by the touches after it; naming it in the exec brings it in. */
	kp.kernelParams = args2;
	CHK(cuGraphExecKernelNodeSetParams(e, k, &kp));
	for (int i = 1; i < 8; i++)
		CHK(simtest_fill(f[i], vf[i], NF, NULL));
	CHK(cuGraphLaunch(e, s));
	CHK(cuStreamSynchronize(s));
	vf[0] += 2.0f;
	simtest_expect_floats(y, NF, 3.0f);
	simtest_expect_floats(x, NF, 2.0f);
	for (int i = 0; i < 8; i++)
		simtest_expect_floats(f[i], NF, vf[i]);
	CHK(cuGraphExecDestroy(e));
	CHK(cuGraphDestroy(g));
	CHK(cuCtxSynchronize());
}
END_TEST

/* ---- the app's own VMM allocations ---- */

START_TEST(test_app_vmm_counted)
{
	CUmemAllocationProp prop = simtest_prop(0), hprop = simtest_prop(1);
	CUmemGenericAllocationHandle h, hh;
	CUdeviceptr va, big[4], p;
	const size_t vsize = 256 * ITEST_KIB, budget = 1 << 20;
	struct memvirt_counters c0, c;
	size_t free_b, total;

	simtest_start("SIMCUDA_MEM=1MiB", GRAN64, THR16);
	CHK(cuMemGetInfo(&free_b, &total));
	c0 = itest_counters();
	ck_assert_uint_eq(c0.app_vmm_bytes, 0);
	CHK(cuMemCreate(&h, vsize, &prop, 0));
	c = itest_counters();
	ck_assert_uint_eq(c.app_vmm_bytes, vsize);
	ck_assert_uint_eq(c.resident_bytes, c0.resident_bytes + vsize);
	CHK(cuMemGetInfo(&free_b, &total));
	ck_assert_uint_eq(total, budget);
	ck_assert_uint_eq(free_b, budget - c.resident_bytes);
	/* Host-located memory is not device memory. */
	CHK(cuMemCreate(&hh, vsize, &hprop, 0));
	ck_assert_uint_eq(itest_counters().app_vmm_bytes, vsize);
	CHK(cuMemRelease(hh));

	CHK(cuMemAddressReserve(&va, vsize, 0, 0, 0));
	CHK(cuMemMap(va, vsize, 0, h, 0));
	CHK(simtest_set_access(va, vsize, CU_MEM_ACCESS_FLAGS_PROT_READWRITE));
	CHK(simtest_fill(va, 3.0f, vsize / sizeof(float), NULL));
	/* memvirt's buffers page around it; it is never paged (memvirt cannot know its mappings). */
	for (int i = 0; i < 4; i++)
		big[i] = alloc_filled(vsize, (float)i);
	c = itest_counters();
	ck_assert_uint_le(c.resident_bytes, budget);
	ck_assert_uint_gt(c.page_outs, 0);
	for (int i = 0; i < 4; i++)
		simtest_expect_floats(big[i], vsize / sizeof(float), (float)i);
	simtest_expect_floats(va, vsize / sizeof(float), 3.0f);
	/* With it holding a quarter of the budget, a buffer of more than the rest cannot fit on the
	 * device: it starts in host memory (the safety net maps it there), and comes in once the
	 * app's memory is gone. */
	c = itest_counters();
	CHK(cuMemAlloc(&p, budget - vsize + 64 * ITEST_KIB));
	ck_assert_uint_ge(itest_counters().host_bytes, c.host_bytes + budget - vsize + 64 * ITEST_KIB);
	ck_assert_uint_le(itest_counters().resident_bytes, budget);
	ck_assert_uint_eq(itest_counters().oom, c.oom);
	CHK(cuMemUnmap(va, vsize));
	CHK(cuMemAddressFree(va, vsize));
	CHK(cuMemRelease(h));
	c = itest_counters();
	ck_assert_uint_eq(c.app_vmm_bytes, 0);
	CHK(simtest_fill(p, 1.0f, (budget - vsize + 64 * ITEST_KIB) / sizeof(float), NULL));
	CHK(cuCtxSynchronize());
	ck_assert_uint_gt(itest_counters().page_ins, c.page_ins);
	simtest_expect_floats(p, (budget - vsize + 64 * ITEST_KIB) / sizeof(float), 1.0f);
	CHK(cuCtxSynchronize());
	for (int i = 0; i < 4; i++)
		simtest_expect_floats(big[i], vsize / sizeof(float), (float)i);
}
END_TEST

/* Graph A is captured, graph B built by hand; each names four buffers and fits alone, but not
 * both at once. Launched in turn, each launch brings its buffers in and pages the other graph's
 * out, and every result is exactly a plain run's. When graphs pinned their buffers for good, B's
 * first node could not be added (CUDA_ERROR_OUT_OF_MEMORY). */
START_TEST(test_graphs_page_in_turn)
{
	CUdeviceptr a[4], b[4];
	float one = 1.0f;
	uint64_t n = NF, outs;
	void *args[] = {&b[1], &b[0], &one, &n};
	CUDA_KERNEL_NODE_PARAMS kp = {0};
	CUDA_MEMCPY3D c = {0};
	CUgraph ga = NULL, gb;
	CUgraphExec ea, eb;
	CUgraphNode k, cp, cp2;
	CUstream s;

	/* Six 64KiB buffers fit. */
	simtest_start("SIMCUDA_MEM=384KiB", GRAN64, THR16, NET_OFF);
	CHK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
	for (int i = 0; i < 4; i++) {
		a[i] = alloc_filled(BUF, i == 0 ? 2.0f : 0.0f);
		b[i] = alloc_filled(BUF, i == 0 ? 3.0f : 0.0f);
	}
	/* A: a1 += a0; a2 += a1; a3 += a2. */
	CHK(cuStreamBeginCapture_v2(s, CU_STREAM_CAPTURE_MODE_GLOBAL));
	CHK(simtest_axpy(a[1], a[0], 1.0f, NF, s));
	CHK(simtest_axpy(a[2], a[1], 1.0f, NF, s));
	CHK(simtest_axpy(a[3], a[2], 1.0f, NF, s));
	CHK(cuStreamEndCapture(s, &ga));
	CHK(cuGraphInstantiateWithFlags(&ea, ga, 0));
	/* B: b1 += b0; b2 = b1; b3 = b1. */
	CHK(cuGraphCreate(&gb, 0));
	kp.func = simtest_func("mv_axpy");
	kp.gridDimX = kp.gridDimY = kp.gridDimZ = kp.blockDimX = kp.blockDimY = kp.blockDimZ = 1;
	kp.kernelParams = args;
	CHK(cuGraphAddKernelNode(&k, gb, NULL, 0, &kp));
	c.srcMemoryType = c.dstMemoryType = CU_MEMORYTYPE_DEVICE;
	c.srcDevice = b[1];
	c.dstDevice = b[2];
	c.WidthInBytes = BUF;
	c.Height = c.Depth = 1;
	CHK(cuGraphAddMemcpyNode(&cp, gb, &k, 1, &c, simtest_ctx));
	c.dstDevice = b[3];
	CHK(cuGraphAddMemcpyNode(&cp2, gb, &cp, 1, &c, simtest_ctx));
	CHK(cuGraphInstantiate(&eb, gb, 0));

	outs = itest_counters().page_outs;
	for (int i = 1; i <= 5; i++) {
		CHK(cuGraphLaunch(ea, s));
		CHK(cuGraphLaunch(eb, s));
		CHK(cuStreamSynchronize(s));
		simtest_expect_floats(a[1], NF, 2.0f * (float)i);
		simtest_expect_floats(a[2], NF, (float)(i * (i + 1)));
		simtest_expect_floats(a[3], NF, (float)(i * (i + 1) * (i + 2) / 3));
		simtest_expect_floats(b[2], NF, 3.0f * (float)i);
		simtest_expect_floats(b[3], NF, 3.0f * (float)i);
	}
	ck_assert_uint_gt(itest_counters().page_outs, outs);
	simtest_expect_floats(a[0], NF, 2.0f);
	simtest_expect_floats(b[0], NF, 3.0f);
	CHK(cuGraphExecDestroy(ea));
	CHK(cuGraphExecDestroy(eb));
	CHK(cuGraphDestroy(ga));
	CHK(cuGraphDestroy(gb));
	CHK(cuStreamDestroy(s));
}
END_TEST

/* A graph built by hand whose buffers are paged out between instantiation and launch, then its
 * exec updated (cuGraphExecUpdate) from a graph whose kernel names buffers paged out since: each
 * launch brings them in. When graph nodes pinned their buffers, none was paged out. */
START_TEST(test_graph_exec_update_pages_in)
{
	CUdeviceptr x, y, u, v, f[8];
	float vf[8], one = 1.0f;
	uint64_t n = NF;
	void *args[] = {&y, &x, &one, &n}, *args2[] = {&v, &u, &one, &n};
	CUDA_KERNEL_NODE_PARAMS kp = {0};
	CUgraphExecUpdateResultInfo info;
	uint64_t ins;
	CUgraph g, g2;
	CUgraphExec e;
	CUgraphNode k;
	CUstream s;

	simtest_start("SIMCUDA_MEM=384KiB", GRAN64, THR16, NET_OFF);
	CHK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
	x = alloc_filled(BUF, 2.0f);
	y = alloc_filled(BUF, 1.0f);
	u = alloc_filled(BUF, 5.0f);
	v = alloc_filled(BUF, 1.0f);
	kp.func = simtest_func("mv_axpy");
	kp.gridDimX = kp.gridDimY = kp.gridDimZ = kp.blockDimX = kp.blockDimY = kp.blockDimZ = 1;
	kp.kernelParams = args;
	CHK(cuGraphCreate(&g, 0));
	CHK(cuGraphAddKernelNode(&k, g, NULL, 0, &kp));
	CHK(cuGraphInstantiate(&e, g, 0));
	kp.kernelParams = args2;
	CHK(cuGraphCreate(&g2, 0));
	CHK(cuGraphAddKernelNode(&k, g2, NULL, 0, &kp));
	/* Eight other buffers cycle through the budget: x, y, u and v are paged out. */
	for (int i = 0; i < 8; i++) {
		vf[i] = 30.0f + (float)i;
		f[i] = alloc_filled(BUF, vf[i]);
	}
	touch(f, vf, 8);
	ins = itest_counters().page_ins;
	CHK(cuGraphLaunch(e, s));
	CHK(cuStreamSynchronize(s));
	ck_assert_uint_ge(itest_counters().page_ins, ins + 2); /* x and y were out, not pinned */
	simtest_expect_floats(y, NF, 3.0f);
	touch(f, vf, 8);
	CHK(cuGraphExecUpdate(e, g2, &info));
	touch(f, vf, 8);
	CHK(cuGraphLaunch(e, s));
	CHK(cuStreamSynchronize(s));
	simtest_expect_floats(v, NF, 6.0f);
	simtest_expect_floats(u, NF, 5.0f);
	simtest_expect_floats(y, NF, 3.0f);
	for (int i = 0; i < 8; i++)
		simtest_expect_floats(f[i], NF, vf[i]);
	CHK(cuGraphExecDestroy(e));
	CHK(cuGraphDestroy(g));
	CHK(cuGraphDestroy(g2));
	CHK(cuStreamDestroy(s));
}
END_TEST

/* A child graph's buffers are copied into its parent's when the child graph node is added, as the
 * driver copies the child: after pressure, the parent's launch brings them in. */
START_TEST(test_graph_child_pages_in)
{
	CUdeviceptr x, y, f[8];
	float vf[8];
	CUgraph child = NULL, parent;
	CUgraphExec e;
	CUgraphNode node;
	CUstream s;
	uint64_t ins;

	simtest_start("SIMCUDA_MEM=384KiB", GRAN64, THR16, NET_OFF);
	CHK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
	x = alloc_filled(BUF, 2.0f);
	y = alloc_filled(BUF, 1.0f);
	CHK(cuStreamBeginCapture_v2(s, CU_STREAM_CAPTURE_MODE_GLOBAL));
	CHK(simtest_axpy(y, x, 1.0f, NF, s));
	CHK(cuStreamEndCapture(s, &child));
	CHK(cuGraphCreate(&parent, 0));
	CHK(cuGraphAddChildGraphNode(&node, parent, NULL, 0, child));
	CHK(cuGraphDestroy(child));
	CHK(cuGraphInstantiate(&e, parent, 0));
	for (int i = 0; i < 8; i++) {
		vf[i] = 30.0f + (float)i;
		f[i] = alloc_filled(BUF, vf[i]);
	}
	touch(f, vf, 8);
	ins = itest_counters().page_ins;
	CHK(cuGraphLaunch(e, s));
	CHK(cuStreamSynchronize(s));
	ck_assert_uint_ge(itest_counters().page_ins, ins + 2);
	simtest_expect_floats(y, NF, 3.0f);
	simtest_expect_floats(x, NF, 2.0f);
	for (int i = 0; i < 8; i++)
		simtest_expect_floats(f[i], NF, vf[i]);
	CHK(cuGraphExecDestroy(e));
	CHK(cuGraphDestroy(parent));
	CHK(cuStreamDestroy(s));
}
END_TEST

/* A graph naming more than the budget holds is refused with CUDA_ERROR_OUT_OF_MEMORY and a line
 * naming its bytes, never run into a fault: the context goes on working. */
START_TEST(test_graph_over_budget_refused)
{
	CUdeviceptr p[8];
	CUgraph g = NULL;
	CUgraphExec e;
	CUstream s;
	char log[PATH_MAX];
	char *text;

	itest_tmpfile(log, sizeof(log), "graph-log");
	ck_assert_int_eq(setenv("MEMVIRT_LOG_FILE", log, 1), 0);
	simtest_start("SIMCUDA_MEM=384KiB", GRAN64, THR16, NET_OFF, "MEMVIRT_LOG=warn", "MEMVIRT_DAEMON=off");
	CHK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
	for (int i = 0; i < 8; i++)
		p[i] = alloc_filled(BUF, (float)i);
	CHK(cuStreamBeginCapture_v2(s, CU_STREAM_CAPTURE_MODE_GLOBAL));
	for (int i = 0; i < 8; i += 2)
		CHK(simtest_axpy(p[i + 1], p[i], 1.0f, NF, s));
	CHK(cuStreamEndCapture(s, &g));
	CHK(cuGraphInstantiateWithFlags(&e, g, 0));
	CHK_ERR(cuGraphLaunch(e, s), CUDA_ERROR_OUT_OF_MEMORY);
	CHK(cuStreamSynchronize(s));
	CHK(simtest_axpy(p[1], p[2], 1.0f, NF, s));
	CHK(cuStreamSynchronize(s));
	for (int i = 0; i < 8; i++)
		simtest_expect_floats(p[i], NF, i == 1 ? 3.0f : (float)i);
	CHK(cuGraphExecDestroy(e));
	CHK(cuGraphDestroy(g));
	text = itest_slurp(log);
	unlink(log);
	ck_assert_msg(strstr(text, "names 524288 bytes of buffers, more than the budget") != NULL,
		      "no line names the graph's bytes: %.400s", text);
	free(text);
}
END_TEST

/* Captures alloc t; t = 1 + 2 p[2]; p[1] += t; free t on s (alloc, kernel, kernel, kernel, free). */
static CUgraphExec capture_alloc_graph(CUstream s, const CUdeviceptr *p, CUdeviceptr *t)
{
	CUgraph g;
	CUgraphExec e;

	CHK(cuStreamBeginCapture_v2(s, CU_STREAM_CAPTURE_MODE_GLOBAL));
	CHK(cuMemAllocAsync(t, BUF, s));
	CHK(simtest_fill(*t, 1.0f, NF, s));
	CHK(simtest_axpy(*t, p[2], 2.0f, NF, s));
	CHK(simtest_axpy(p[1], *t, 1.0f, NF, s));
	CHK(cuMemFreeAsync(*t, s));
	CHK(cuStreamEndCapture(s, &g));
	CHK(cuGraphInstantiateWithFlags(&e, g, 0));
	CHK(cuGraphDestroy(g));
	return e;
}

/* A graph that allocates and frees inside, launched again and again under a budget that pages the
 * other buffers out between launches: every result exact, and the allocation charged only while
 * the graph runs (memvirt's free bytes are the same after every launch as before the first). */
START_TEST(test_graph_alloc_nodes_page)
{
	CUdeviceptr p[8], t;
	CUgraphExec e;
	CUstream s;
	float others[5] = {3, 4, 5, 6, 7};
	uint64_t outs;

	simtest_start("SIMCUDA_MEM=384KiB", GRAN64, THR16, NET_OFF);
	CHK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
	for (int i = 0; i < 8; i++)
		p[i] = alloc_filled(BUF, (float)i);
	e = capture_alloc_graph(s, p, &t);
	outs = itest_counters().page_outs;
	for (int k = 1; k <= 4; k++) {
		/* p[3..7] in use: p[1] and p[2] go out, and the launch brings them back. */
		touch(p + 3, others, 5);
		CHK(cuGraphLaunch(e, s));
		CHK(cuStreamSynchronize(s));
		simtest_expect_floats(p[1], NF, 1.0f + 5.0f * (float)k);
		simtest_expect_floats(p[2], NF, 2.0f);
	}
	ck_assert_uint_gt(itest_counters().page_outs, outs);
	for (int i = 3; i < 8; i++)
		simtest_expect_floats(p[i], NF, (float)i);
	/* Freed inside the graph, its memory is gone after the launch. */
	CHK(simtest_fill(t, 1.0f, NF, s));
	CHK_ERR(cuStreamSynchronize(s), CUDA_ERROR_ILLEGAL_ADDRESS);
}
END_TEST

/* What a graph allocates counts against the room its launch needs: four buffers and one
 * allocation fit the budget, four buffers and three allocations do not, and that launch is
 * refused with one line naming the bytes, touching nothing. */
START_TEST(test_graph_alloc_nodes_need_room)
{
	CUdeviceptr p[4], t[3];
	CUgraph g;
	CUgraphExec small, big;
	CUstream s;
	char log[PATH_MAX];
	char *text;

	itest_tmpfile(log, sizeof(log), "gmem-log");
	ck_assert_int_eq(setenv("MEMVIRT_LOG_FILE", log, 1), 0);
	simtest_start("SIMCUDA_MEM=384KiB", GRAN64, THR16, NET_OFF, "MEMVIRT_LOG=warn", "MEMVIRT_DAEMON=off");
	CHK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
	for (int i = 0; i < 4; i++)
		p[i] = alloc_filled(BUF, (float)i);
	for (int n = 1; n <= 3; n += 2) {
		CHK(cuStreamBeginCapture_v2(s, CU_STREAM_CAPTURE_MODE_GLOBAL));
		for (int i = 0; i < n; i++)
			CHK(cuMemAllocAsync(&t[i], BUF, s));
		CHK(simtest_axpy(p[1], p[0], 1.0f, NF, s));
		CHK(simtest_axpy(p[3], p[2], 1.0f, NF, s));
		CHK(simtest_fill(t[0], 1.0f, NF, s));
		for (int i = 0; i < n; i++)
			CHK(cuMemFreeAsync(t[i], s));
		CHK(cuStreamEndCapture(s, &g));
		CHK(cuGraphInstantiateWithFlags(n == 1 ? &small : &big, g, 0));
		CHK(cuGraphDestroy(g));
	}
	CHK(cuGraphLaunch(small, s));
	CHK(cuStreamSynchronize(s));
	CHK_ERR(cuGraphLaunch(big, s), CUDA_ERROR_OUT_OF_MEMORY);
	CHK(cuStreamSynchronize(s));
	CHK(cuGraphLaunch(small, s));
	CHK(cuStreamSynchronize(s));
	for (int i = 0; i < 4; i++)
		simtest_expect_floats(p[i], NF, i == 3 ? 7.0f : (float)i);
	text = itest_slurp(log);
	unlink(log);
	ck_assert_msg(strstr(text, "names 262144 bytes of buffers, more than the budget of 393216 bytes less the "
				   "196608 bytes it allocates") != NULL,
		      "no line names the graph's allocation: %.400s", text);
	free(text);
}
END_TEST

/* An allocation the graph keeps stays charged after the launch until the app frees it, outside
 * any graph; the exec cannot be launched again before. memvirt's own buffer cannot be freed by
 * the graph, and refusing it leaves the capture valid and the buffer whole. */
START_TEST(test_graph_alloc_outlives_launch)
{
	CUdeviceptr t, own;
	CUgraph g;
	CUgraphExec e;
	CUstream s;
	size_t before, now, total;

	simtest_start("SIMCUDA_MEM=384KiB", GRAN64, THR16, NET_OFF);
	CHK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
	own = alloc_filled(BUF, 4.0f);
	CHK(cuStreamBeginCapture_v2(s, CU_STREAM_CAPTURE_MODE_GLOBAL));
	CHK(cuMemAllocAsync(&t, BUF, s));
	CHK(simtest_fill(t, 7.0f, NF, s));
	CHK_ERR(cuMemFreeAsync(own, s), CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED);
	CHK(cuStreamEndCapture(s, &g));
	simtest_expect_floats(own, NF, 4.0f);
	CHK(cuGraphInstantiateWithFlags(&e, g, 0));
	CHK(cuMemGetInfo(&before, &total));
	for (int k = 0; k < 2; k++) {
		CHK(cuGraphLaunch(e, s));
		CHK(cuStreamSynchronize(s));
		simtest_expect_floats(t, NF, 7.0f);
		CHK(cuMemGetInfo(&now, &total));
		ck_assert_uint_eq(now, before - BUF);
		CHK_ERR(cuGraphLaunch(e, s), CUDA_ERROR_INVALID_VALUE);
		CHK(cuMemGetInfo(&now, &total));
		ck_assert_uint_eq(now, before - BUF);
		if (k == 0)
			CHK(cuMemFreeAsync(t, s));
		else
			CHK(cuMemFree(t));
		CHK(cuStreamSynchronize(s));
		CHK(cuMemGetInfo(&now, &total));
		ck_assert_uint_eq(now, before);
	}
	CHK(cuGraphExecDestroy(e));
	CHK(cuGraphDestroy(g));
}
END_TEST

struct relaxed_alloc {
	CUcontext ctx;
	CUresult r;
	uint64_t outs;
};

/* Another thread, relaxed, allocates (making room by paging out) while a global capture runs. */
static void *relaxed_alloc_run(void *arg)
{
	struct relaxed_alloc *t = arg;
	CUstreamCaptureMode m = CU_STREAM_CAPTURE_MODE_RELAXED;
	CUdeviceptr q;
	CUstream own;
	uint64_t before = itest_counters().page_outs;

	t->r = cuCtxSetCurrent(t->ctx);
	if (t->r == CUDA_SUCCESS)
		t->r = cuThreadExchangeStreamCaptureMode(&m);
	if (t->r == CUDA_SUCCESS)
		t->r = cuStreamCreate(&own, CU_STREAM_NON_BLOCKING);
	if (t->r == CUDA_SUCCESS && (t->r = cuMemAlloc(&q, 2 * BUF)) == CUDA_SUCCESS) {
		t->r = simtest_fill(q, 9.0f, 2 * NF, own);
		if (t->r == CUDA_SUCCESS)
			t->r = cuStreamSynchronize(own);
		if (t->r == CUDA_SUCCESS)
			t->r = cuMemFree(q);
	}
	t->outs = itest_counters().page_outs - before;
	return NULL;
}

/* A global-mode capture naming paged-out buffers, while another thread allocates under relaxed
 * mode and pages out to make room: nothing memvirt does invalidates the capture, nothing is made
 * resident while it records, and the graph runs on the right bytes. */
START_TEST(test_graph_capture_never_invalidated)
{
	CUdeviceptr x, y, f[6];
	float vf[6];
	struct relaxed_alloc t = {0};
	CUstreamCaptureStatus st;
	CUgraph g = NULL;
	CUgraphExec e;
	CUstream s;
	pthread_t th;
	uint64_t ins;

	simtest_start("SIMCUDA_MEM=384KiB", GRAN64, THR16, NET_OFF);
	CHK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
	x = alloc_filled(BUF, 2.0f);
	y = alloc_filled(BUF, 1.0f);
	for (int i = 0; i < 6; i++) {
		vf[i] = 30.0f + (float)i;
		f[i] = alloc_filled(BUF, vf[i]);
	}
	ck_assert_uint_ge(itest_counters().host_bytes, 2 * BUF); /* x and y are out */
	ins = itest_counters().page_ins;
	CHK(cuStreamBeginCapture_v2(s, CU_STREAM_CAPTURE_MODE_GLOBAL));
	CHK(simtest_axpy(y, x, 1.0f, NF, s));
	CHK(cuCtxGetCurrent(&t.ctx));
	ck_assert_int_eq(pthread_create(&th, NULL, relaxed_alloc_run, &t), 0);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	CHK(t.r);
	ck_assert_uint_gt(t.outs, 0);
	CHK(simtest_axpy(y, x, 1.0f, NF, s));
	CHK(cuStreamIsCapturing(s, &st));
	ck_assert_int_eq(st, CU_STREAM_CAPTURE_STATUS_ACTIVE);
	CHK(cuStreamEndCapture(s, &g));
	ck_assert_uint_eq(itest_counters().page_ins, ins); /* recorded, not run */
	CHK(cuGraphInstantiateWithFlags(&e, g, 0));
	CHK(cuGraphLaunch(e, s));
	CHK(cuStreamSynchronize(s));
	simtest_expect_floats(y, NF, 5.0f);
	simtest_expect_floats(x, NF, 2.0f);
	for (int i = 0; i < 6; i++)
		simtest_expect_floats(f[i], NF, vf[i]);
	CHK(cuGraphExecDestroy(e));
	CHK(cuGraphDestroy(g));
	CHK(cuStreamDestroy(s));
}
END_TEST

/* Copies and memsets captured with a kernel (as PyTorch captures a step that zeroes and copies
 * tensors): their buffers are recorded with the graph's, nothing is made resident while it
 * records, and each launch brings them all in, after fills of other buffers have paged them out.
 * Every launch gives the plain run's result, on the device and in pinned host memory. */
START_TEST(test_graph_captured_copies_page_in)
{
	CUdeviceptr x, y, z, f[6];
	CUgraph g = NULL;
	CUgraphExec e;
	CUstream s;
	float *out;
	uint64_t ins;

	simtest_start("SIMCUDA_MEM=384KiB", GRAN64, THR16, NET_OFF);
	CHK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
	CHK(cuMemAllocHost((void **)&out, BUF));
	x = alloc_filled(BUF, 3.0f);
	y = alloc_filled(BUF, 0.0f);
	z = alloc_filled(BUF, 0.0f);
	for (int i = 0; i < 6; i++)
		f[i] = alloc_filled(BUF, 40.0f + (float)i);
	ck_assert_uint_ge(itest_counters().host_bytes, 3 * BUF); /* x, y and z are out */
	ins = itest_counters().page_ins;
	/* y = 1.0 (its bits); z = x; z += 2 y; out = z. */
	CHK(cuStreamBeginCapture_v2(s, CU_STREAM_CAPTURE_MODE_GLOBAL));
	CHK(cuMemsetD32Async(y, f2u(1.0f), NF, s));
	CHK(cuMemcpyDtoDAsync(z, x, BUF, s));
	CHK(simtest_axpy(z, y, 2.0f, NF, s));
	CHK(cuMemcpyDtoHAsync(out, z, BUF, s));
	CHK(cuStreamEndCapture(s, &g));
	ck_assert_uint_eq(itest_counters().page_ins, ins); /* recorded, not run */
	CHK(cuGraphInstantiateWithFlags(&e, g, 0));
	for (int round = 0; round < 3; round++) {
		/* The fillers take the device: x, y and z go out again. */
		for (int i = 0; i < 6; i++)
			CHK(simtest_fill(f[i], 40.0f + (float)i, NF, s));
		CHK(cuStreamSynchronize(s));
		ins = itest_counters().page_ins;
		memset(out, 0, BUF);
		CHK(cuGraphLaunch(e, s));
		CHK(cuStreamSynchronize(s));
		ck_assert_uint_gt(itest_counters().page_ins, ins);
		for (uint64_t i = 0; i < NF; i++)
			if (out[i] != 5.0f)
				ck_abort_msg("round %d: element %llu of the copy out is %g", round, (unsigned long long)i,
					     out[i]);
		simtest_expect_floats(z, NF, 5.0f);
		simtest_expect_floats(y, NF, 1.0f);
		simtest_expect_floats(x, NF, 3.0f);
	}
	for (int i = 0; i < 6; i++)
		simtest_expect_floats(f[i], NF, 40.0f + (float)i);
	CHK(cuGraphExecDestroy(e));
	CHK(cuGraphDestroy(g));
	CHK(cuMemFreeHost(out));
	CHK(cuStreamDestroy(s));
}
END_TEST

/* A capture that forks to a second stream and joins it back (as PyTorch captures work on a side
 * stream): the side stream's launches name paged-out buffers. memvirt must see that the side
 * stream captures once it waits on the capture's event, so that it neither brings buffers in nor
 * marks the stream's work while it records (either would break the capture), and each launch of
 * the graph brings in what both streams named. */
START_TEST(test_graph_capture_fork_join)
{
	CUdeviceptr x, y, f[6];
	CUevent fork, join;
	CUgraph g = NULL;
	CUgraphExec e;
	CUstream a, b;
	uint64_t ins;

	simtest_start("SIMCUDA_MEM=384KiB", GRAN64, THR16, NET_OFF);
	CHK(cuStreamCreate(&a, CU_STREAM_NON_BLOCKING));
	CHK(cuStreamCreate(&b, CU_STREAM_NON_BLOCKING));
	CHK(cuEventCreate(&fork, CU_EVENT_DISABLE_TIMING));
	CHK(cuEventCreate(&join, CU_EVENT_DISABLE_TIMING));
	x = alloc_filled(BUF, 2.0f);
	y = alloc_filled(BUF, 1.0f);
	/* b has worked before the capture: its marks must not leak into it. */
	CHK(simtest_fill(y, 1.0f, NF, b));
	for (int i = 0; i < 6; i++)
		f[i] = alloc_filled(BUF, 40.0f + (float)i);
	ck_assert_uint_ge(itest_counters().host_bytes, 2 * BUF); /* x and y are out */
	ins = itest_counters().page_ins;
	/* a: y += x; fork b: y += x; join; a: y += x. */
	CHK(cuStreamBeginCapture_v2(a, CU_STREAM_CAPTURE_MODE_GLOBAL));
	CHK(simtest_axpy(y, x, 1.0f, NF, a));
	CHK(cuEventRecord(fork, a));
	CHK(cuStreamWaitEvent(b, fork, 0));
	CHK(simtest_axpy(y, x, 1.0f, NF, b));
	CHK(cuEventRecord(join, b));
	CHK(cuStreamWaitEvent(a, join, 0));
	CHK(simtest_axpy(y, x, 1.0f, NF, a));
	CHK(cuStreamEndCapture(a, &g));
	ck_assert_uint_eq(itest_counters().page_ins, ins); /* recorded, not run */
	CHK(cuGraphInstantiateWithFlags(&e, g, 0));
	for (int round = 1; round <= 2; round++) {
		for (int i = 0; i < 6; i++)
			CHK(simtest_fill(f[i], 40.0f + (float)i, NF, b));
		CHK(cuStreamSynchronize(b));
		CHK(cuGraphLaunch(e, a));
		CHK(cuStreamSynchronize(a));
		simtest_expect_floats(y, NF, 1.0f + 6.0f * (float)round);
		simtest_expect_floats(x, NF, 2.0f);
	}
	/* b works as before once the capture has ended. */
	CHK(simtest_fill(y, 3.0f, NF, b));
	CHK(cuStreamSynchronize(b));
	simtest_expect_floats(y, NF, 3.0f);
	for (int i = 0; i < 6; i++)
		simtest_expect_floats(f[i], NF, 40.0f + (float)i);
	CHK(cuGraphExecDestroy(e));
	CHK(cuGraphDestroy(g));
	CHK(cuStreamDestroy(a));
	CHK(cuStreamDestroy(b));
}
END_TEST

static Suite *invariants_suite(void)
{
	Suite *s = suite_create("interpose_invariants");
	TCase *tc;

	tc = simtest_tcase(s, "control", 120);
	tcase_add_test(tc, test_control_scenarios_exceed_the_device);
	tc = simtest_tcase(s, "inv1", 60);
	tcase_add_test(tc, test_inv1_kernel_waits_for_page_in);
	tcase_add_test(tc, test_inv1_copy_waits_for_page_in);
	tcase_add_test(tc, test_inv1_memset_waits_for_page_in);
	tc = simtest_tcase(s, "inv2", 60);
	tcase_add_loop_test(tc, test_inv2_page_out_waits_for_last_use, 0, 2);
	tcase_add_loop_test(tc, test_inv2_page_out_waits_for_every_stream, 0, 2);
	tcase_add_loop_test(tc, test_inv2_free_waits_for_last_use, 0, 2);
	tc = simtest_tcase(s, "inv3", 60);
	tcase_add_loop_test(tc, test_inv3_roundtrip_byte_identical, 0, 2);
	tcase_add_loop_test(tc, test_inv3_copy_failure_loses_nothing, 0,
			    (int)(sizeof(inv3_fail) / sizeof(inv3_fail[0])));
	tc = simtest_tcase(s, "inv5", 120);
	tcase_add_test(tc, test_inv5_unrelated_calls_unchanged);
	tcase_add_test(tc, test_inv5_oom_only_when_budget_cannot_be_met);
	tcase_add_test(tc, test_inv5_percent_budget);
	tc = simtest_tcase(s, "inv6", 60);
	tcase_add_test(tc, test_inv6_never_prints_to_stdout);
	tc = simtest_tcase(s, "rules", 90);
	tcase_add_test(tc, test_gather_ptrs_safety_net_on);
	tcase_add_test(tc, test_gather_ptrs_reference_rule);
	tcase_add_test(tc, test_launch_bigger_than_budget_reaches_host);
	tcase_add_test(tc, test_launch_bigger_than_budget_refused_without_net);
	tcase_add_test(tc, test_page_in_waits_for_work_on_the_host);
	tcase_add_test(tc, test_graph_bigger_than_budget_reaches_host);
	tcase_add_test(tc, test_allocation_bigger_than_budget_starts_on_host);
	tcase_add_test(tc, test_allocation_bigger_than_budget_refused_without_net);
	tcase_add_test(tc, test_graph_capture_pins_buffers);
	tcase_add_test(tc, test_graph_explicit_nodes_pin_buffers);
	tcase_add_test(tc, test_graphs_page_in_turn);
	tcase_add_test(tc, test_graph_exec_update_pages_in);
	tcase_add_test(tc, test_graph_child_pages_in);
	tcase_add_test(tc, test_graph_over_budget_refused);
	tcase_add_test(tc, test_graph_capture_never_invalidated);
	tcase_add_test(tc, test_graph_captured_copies_page_in);
	tcase_add_test(tc, test_graph_capture_fork_join);
	tcase_add_test(tc, test_graph_alloc_nodes_page);
	tcase_add_test(tc, test_graph_alloc_nodes_need_room);
	tcase_add_test(tc, test_graph_alloc_outlives_launch);
	tcase_add_test(tc, test_app_vmm_counted);
	/* Tagged so that a run can leave it out (CK_EXCLUDE_TAGS=fork) where the runtime cannot fork
	 * a multi-threaded process safely. */
	tc = simtest_tcase(s, "fork", 90);
	tcase_set_tags(tc, "fork");
	tcase_add_test(tc, test_fork_child_exits_parent_keeps_paging);
	return s;
}

int main(int argc, char **argv)
{
	const char *mode;

	itest_main_begin(argc, argv);
	mode = itest_helper_mode(argc, argv);
	if (mode != NULL)
		return helper_main(mode);
	return simtest_run(invariants_suite());
}
