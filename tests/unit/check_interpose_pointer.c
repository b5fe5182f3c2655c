/* libmemvirt.so's answers to pointer queries on its buffers (resident, paged out, slab), its refusal
 * to hand out its own allocation handles, CUkernel launches, and launches whose parameter layout the
 * driver will not report, on the simulated GPU.
 *
 * The safety net is off unless a test says otherwise, so that a launch memvirt failed to prepare
 * faults (a sticky CUDA_ERROR_ILLEGAL_ADDRESS) instead of reading the host copy. Whether a launch
 * found its buffer still leaving (and kept its pages) or paged it back in is the library's race to
 * win: the tests check the bytes, not which. */
#include "config.h"

#include "tests/unit/interposetest.h"

#define GRAN64 "SIMCUDA_GRANULARITY=64KiB"
#define THR16 "MEMVIRT_SLAB_THRESHOLD=16KiB"
#define NET_OFF "SIMCUDA_NO_HOST_VMM=1"
#define BUF (64 * ITEST_KIB) /* one granule with GRAN64 */
#define NF (BUF / sizeof(float))
/* Five buffers of BUF on a budget of four: the first is paged out by the others. */
#define ENV "SIMCUDA_MEM=256KiB", GRAN64, THR16

struct five {
	CUdeviceptr a, o[4];
};

static CUdeviceptr alloc_filled(uint64_t bytes, float v)
{
	CUdeviceptr p;

	CHK(cuMemAlloc(&p, bytes));
	CHK(simtest_fill(p, v, bytes / sizeof(float), NULL));
	CHK(cuCtxSynchronize());
	return p;
}

/* a (asize bytes, filled with 3) is paged out by four buffers filled with 10 .. 13. */
static void five_setup(struct five *t, uint64_t asize)
{
	struct memvirt_counters c;

	t->a = alloc_filled(asize, 3.0f);
	for (int i = 0; i < 4; i++)
		t->o[i] = alloc_filled(BUF, 10.0f + (float)i);
	c = itest_counters();
	ck_assert_msg(c.page_outs >= 1 && c.host_bytes >= asize, "a was not paged out: %llu page-outs, %llu on host",
		      (unsigned long long)c.page_outs, (unsigned long long)c.host_bytes);
}

static unsigned long long attr_u64(CUpointer_attribute a, CUdeviceptr p)
{
	unsigned long long v = 0;

	CHK(cuPointerGetAttribute(&v, a, p));
	return v;
}

static int attr_int(CUpointer_attribute a, CUdeviceptr p)
{
	int v = -1;

	CHK(cuPointerGetAttribute(&v, a, p));
	return v;
}

/* ---- pointer attributes ---- */

/* Every attribute a real driver gives cuMemAlloc memory, for a buffer at p of `size` bytes. */
static void expect_allocation(CUdeviceptr p, uint64_t size, const char *what)
{
	CUdeviceptr base = 0;
	size_t range = 0;
	CUcontext ctx = NULL;
	unsigned int type = 0;
	void *host = NULL;

	CHK(cuMemGetAddressRange(&base, &range, p + size - 1));
	ck_assert_msg(base == p && range == size, "%s: cuMemGetAddressRange gives %#llx + %zu", what,
		      (unsigned long long)base, range);
	ck_assert_msg(attr_u64(CU_POINTER_ATTRIBUTE_RANGE_START_ADDR, p + size - 1) == p, "%s: range start", what);
	ck_assert_msg(attr_u64(CU_POINTER_ATTRIBUTE_RANGE_SIZE, p + 1) == range, "%s: range size %llu, not %zu", what,
		      attr_u64(CU_POINTER_ATTRIBUTE_RANGE_SIZE, p + 1), range);
	CHK(cuPointerGetAttribute(&type, CU_POINTER_ATTRIBUTE_MEMORY_TYPE, p));
	ck_assert_uint_eq(type, CU_MEMORYTYPE_DEVICE);
	CHK(cuPointerGetAttribute(&ctx, CU_POINTER_ATTRIBUTE_CONTEXT, p));
	ck_assert_ptr_eq(ctx, simtest_ctx);
	ck_assert_uint_eq(attr_u64(CU_POINTER_ATTRIBUTE_DEVICE_POINTER, p + 4), p + 4);
	ck_assert_int_eq(attr_int(CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL, p), 0);
	ck_assert_int_eq(attr_int(CU_POINTER_ATTRIBUTE_MAPPED, p), 1);
	ck_assert_int_eq(attr_int(CU_POINTER_ATTRIBUTE_IS_LEGACY_CUDA_IPC_CAPABLE, p), 1);
	ck_assert_int_eq(attr_int(CU_POINTER_ATTRIBUTE_IS_MANAGED, p), 0);
	ck_assert_int_eq(attr_int(CU_POINTER_ATTRIBUTE_ACCESS_FLAGS, p), CU_POINTER_ATTRIBUTE_ACCESS_FLAG_READWRITE);
	ck_assert_uint_eq(attr_u64(CU_POINTER_ATTRIBUTE_ALLOWED_HANDLE_TYPES, p), 0);
	CHK_ERR(cuPointerGetAttribute(&host, CU_POINTER_ATTRIBUTE_HOST_POINTER, p), CUDA_ERROR_INVALID_VALUE);
}

START_TEST(test_attrs_describe_the_allocation)
{
	struct five t;
	const uint64_t asize = BUF - 96;
	CUdeviceptr s1, s2;
	unsigned long long ids[7];
	float *h;

	simtest_start(ENV, NET_OFF);
	five_setup(&t, asize);
	expect_allocation(t.a, asize, "paged-out buffer");
	expect_allocation(t.o[0], BUF, "resident buffer");
	/* Two slab blocks share a chunk, not their range or ID. */
	CHK(cuMemAlloc(&s1, 1000));
	CHK(cuMemAlloc(&s2, 1000));
	expect_allocation(s1, 1000, "slab block 1");
	expect_allocation(s2, 1000, "slab block 2");
	ids[0] = attr_u64(CU_POINTER_ATTRIBUTE_BUFFER_ID, t.a);
	ids[1] = attr_u64(CU_POINTER_ATTRIBUTE_BUFFER_ID, s1);
	ids[2] = attr_u64(CU_POINTER_ATTRIBUTE_BUFFER_ID, s2 + 999);
	for (int i = 0; i < 4; i++)
		ids[3 + i] = attr_u64(CU_POINTER_ATTRIBUTE_BUFFER_ID, t.o[i] + 8);
	for (int i = 0; i < 7; i++)
		for (int j = i + 1; j < 7; j++)
			ck_assert_msg(ids[i] != ids[j], "buffers %d and %d share BUFFER_ID %llu", i, j, ids[i]);
	ck_assert_uint_eq(attr_u64(CU_POINTER_ATTRIBUTE_BUFFER_ID, t.a + 100), ids[0]);
	/* Answering moved nothing: a is still paged out, and its bytes come back whole. */
	h = malloc(asize);
	CHK(cuMemcpyDtoH(h, t.a, asize));
	simtest_expect_host(h, asize / sizeof(float), 3.0f);
	free(h);
}
END_TEST

START_TEST(test_attrs_batch_and_others)
{
	struct five t;
	unsigned int type = 9;
	void *host = (void *)1, *pinned;
	size_t size = 0;
	unsigned long long id = 0;
	CUpointer_attribute attrs[] = {CU_POINTER_ATTRIBUTE_MEMORY_TYPE, CU_POINTER_ATTRIBUTE_HOST_POINTER,
				       CU_POINTER_ATTRIBUTE_RANGE_SIZE, CU_POINTER_ATTRIBUTE_BUFFER_ID};
	void *data[] = {&type, &host, &size, &id};

	simtest_start(ENV, NET_OFF);
	five_setup(&t, BUF);
	CHK(cuPointerGetAttributes(4, attrs, data, t.a + 64));
	ck_assert_uint_eq(type, CU_MEMORYTYPE_DEVICE);
	ck_assert_ptr_null(host);
	ck_assert_uint_eq(size, BUF);
	ck_assert_uint_eq(id, attr_u64(CU_POINTER_ATTRIBUTE_BUFFER_ID, t.a));
	/* Memory memvirt does not serve is the driver's to describe. */
	CHK(cuMemAllocHost(&pinned, 4096));
	CHK(cuPointerGetAttributes(4, attrs, data, (CUdeviceptr)(uintptr_t)pinned));
	ck_assert_uint_eq(type, CU_MEMORYTYPE_HOST);
	ck_assert_ptr_eq(host, pinned);
	ck_assert_uint_eq(size, 4096);
	CHK(cuMemFreeHost(pinned));
	{
		unsigned long long flags = 0;
		CUmemLocation loc = {.type = CU_MEM_LOCATION_TYPE_DEVICE, .id = 0};
		CHK(cuMemGetAccess(&flags, &loc, t.a));
		ck_assert_uint_eq(flags, CU_MEM_ACCESS_FLAGS_PROT_READWRITE);
	}
	simtest_expect_floats(t.a, NF, 3.0f);
}
END_TEST

/* ---- allocation handles ---- */

START_TEST(test_retain_handle_refused_for_buffers)
{
	struct five t;
	CUdeviceptr s, va;
	CUmemGenericAllocationHandle h = 0, mine, again = 0;
	CUmemAllocationProp prop = simtest_prop(0);

	simtest_start(ENV, NET_OFF);
	five_setup(&t, BUF);
	CHK(cuMemAlloc(&s, 1000));
	CHK_ERR(cuMemRetainAllocationHandle(&h, (void *)(uintptr_t)t.a), CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuMemRetainAllocationHandle(&h, (void *)(uintptr_t)(t.o[1] + 8)), CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuMemRetainAllocationHandle(&h, (void *)(uintptr_t)s), CUDA_ERROR_INVALID_VALUE);
	ck_assert_uint_eq(h, 0);
	/* The app's own cuMemCreate mappings are the driver's to answer for. */
	CHK(cuMemAddressReserve(&va, BUF, 0, 0, 0));
	CHK(cuMemCreate(&mine, BUF, &prop, 0));
	CHK(cuMemMap(va, BUF, 0, mine, 0));
	CHK(cuMemRetainAllocationHandle(&again, (void *)(uintptr_t)va));
	ck_assert_uint_eq(again, mine);
	CHK(cuMemRelease(again));
	CHK(cuMemUnmap(va, BUF));
	CHK(cuMemRelease(mine));
	CHK(cuMemAddressFree(va, BUF));
	simtest_expect_floats(t.a, NF, 3.0f);
}
END_TEST

/* ---- kernels whose layout comes from elsewhere, or not at all ---- */

/* o[0] += 2 a through f, then the exact sums; a was paged out. */
static void axpy_through(struct five *t, CUfunction f)
{
	float two = 2.0f;
	uint64_t n = NF;
	void *args[] = {&t->o[0], &t->a, &two, &n};

	CHK(cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, NULL, args, NULL));
	CHK(cuCtxSynchronize());
	simtest_expect_floats(t->o[0], NF, 10.0f + 2.0f * 3.0f);
	simtest_expect_floats(t->a, NF, 3.0f);
}

START_TEST(test_cukernel_launch_pages_in)
{
	struct five t;
	CUlibrary lib;
	CUkernel k;

	simtest_start(ENV, NET_OFF);
	five_setup(&t, BUF);
	CHK(cuLibraryLoadData(&lib, "simcuda", NULL, NULL, 0, NULL, NULL, 0));
	CHK(cuLibraryGetKernel(&k, lib, "mv_axpy"));
	axpy_through(&t, (CUfunction)k);
	CHK(cuLibraryUnload(lib));
}
END_TEST

/* A module is unloaded (_i 0), or the context it was loaded in destroyed (_i 1), and another module
 * loaded, and a handle of the first (mv_fill's, whose layout memvirt learned at its launch) comes
 * back naming another function: mv_axpy, whose second pointer sits where mv_fill has a 4-byte
 * float. Its launch must be scanned with mv_axpy's layout, or the paged-out buffer it names there
 * is missed and the kernel faults. */
START_TEST(test_handle_of_an_unloaded_module)
{
	struct five t;
	CUmodule m1, m2;
	CUcontext c = NULL;
	CUfunction f;
	CUdeviceptr p;
	const char *name = NULL;
	float one = 1.0f;
	uint64_t n = NF;
	void *args[] = {&p, &one, &n};

	simtest_start(ENV, NET_OFF);
	CHK(cuMemAlloc(&p, BUF));
	if (_i == 1)
		CHK(cuCtxCreate(&c, NULL, 0, 0));
	CHK(cuModuleLoadData(&m1, "simcuda"));
	CHK(cuModuleGetFunction(&f, m1, "mv_fill"));
	CHK(cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, NULL, args, NULL));
	CHK(cuCtxSynchronize());
	if (_i == 1) {
		CHK(cuCtxDestroy(c));
		CHK(cuCtxSetCurrent(simtest_ctx));
	} else {
		CHK(cuModuleUnload(m1));
	}
	simtest_expect_floats(p, NF, 1.0f);
	CHK(cuMemFree(p));
	CHK(cuModuleLoadData(&m2, "simcuda"));
	CHK(cuFuncGetName(&name, f));
	ck_assert_str_eq(name, "mv_axpy");
	five_setup(&t, BUF);
	axpy_through(&t, f);
	CHK(cuModuleUnload(m2));
}
END_TEST

/* A library's function, from cuKernelGetFunction in a context other than the one current at the
 * library's unload, belongs to the library's module in its own context: it dies at the unload, and
 * its handle comes back from a later module naming mv_axpy. Scanned with mv_fill's layout, the
 * launch would miss the paged-out buffer it names second. */
START_TEST(test_handle_of_an_unloaded_library)
{
	struct five t;
	CUlibrary lib;
	CUkernel k;
	CUmodule m2, m3;
	CUcontext c;
	CUfunction f;
	CUdeviceptr p;
	const char *name = NULL;
	float one = 1.0f;
	uint64_t n = NF;
	void *args[] = {&p, &one, &n};

	simtest_start(ENV, NET_OFF);
	CHK(cuMemAlloc(&p, BUF));
	CHK(cuLibraryLoadData(&lib, "simcuda", NULL, NULL, 0, NULL, NULL, 0));
	CHK(cuLibraryGetKernel(&k, lib, "mv_fill"));
	CHK(cuCtxCreate(&c, NULL, 0, 0));
	CHK(cuKernelGetFunction(&f, k));
	CHK(cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, NULL, args, NULL));
	CHK(cuCtxSynchronize());
	CHK(cuCtxSetCurrent(simtest_ctx));
	CHK(cuLibraryUnload(lib));
	simtest_expect_floats(p, NF, 1.0f);
	CHK(cuMemFree(p));
	/* The first takes the library's kernel objects, the second the functions of its module in c. */
	CHK(cuModuleLoadData(&m2, "simcuda"));
	CHK(cuModuleLoadData(&m3, "simcuda"));
	CHK(cuFuncGetName(&name, f));
	ck_assert_str_eq(name, "mv_axpy");
	five_setup(&t, BUF);
	axpy_through(&t, f);
	CHK(cuModuleUnload(m3));
	CHK(cuModuleUnload(m2));
	CHK(cuCtxDestroy(c));
}
END_TEST

/* The helper of test_unloaded_function_named_again: mv_fill through a handle of module m1 (its
 * parameters in kernelParams, or in the extra buffer, which takes no layout), then, once m1 is
 * unloaded, the same handle as module m2's mv_axpy (the simulated driver gives each handle the
 * next kernel along), then m2's mv_fill. Run with MEMVIRT_RECORD: the trace is written at exit. */
static int helper_reload(int in_extra)
{
	CUmodule m1, m2;
	CUfunction f;
	CUdeviceptr p, q;
	const char *name = NULL;
	float one = 1.0f;
	uint64_t n = NF;
	void *fill[] = {&p, &one, &n}, *axpy[] = {&p, &q, &one, &n};

	itest_helper_init();
	HCHK(cuMemAlloc(&p, BUF));
	HCHK(cuMemAlloc(&q, BUF));
	HCHK(cuModuleLoadData(&m1, "simcuda"));
	HCHK(cuModuleGetFunction(&f, m1, "mv_fill"));
	if (in_extra) {
		/* mv_fill's layout: p at 0, v at 8, n at 16. */
		unsigned char buf[24] = {0};
		size_t size = sizeof(buf);
		void *extra[] = {CU_LAUNCH_PARAM_BUFFER_POINTER, buf, CU_LAUNCH_PARAM_BUFFER_SIZE, &size,
				 CU_LAUNCH_PARAM_END};
		memcpy(buf, &p, 8);
		memcpy(buf + 8, &one, 4);
		memcpy(buf + 16, &n, 8);
		HCHK(cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, NULL, NULL, extra));
	} else {
		HCHK(cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, NULL, fill, NULL));
	}
	HCHK(cuModuleUnload(m1));
	HCHK(cuModuleLoadData(&m2, "simcuda"));
	HCHK(cuFuncGetName(&name, f));
	if (strcmp(name, "mv_axpy") != 0) {
		fprintf(stderr, "the reloaded handle names %s, not mv_axpy\n", name);
		return 4;
	}
	HCHK(cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, NULL, axpy, NULL));
	HCHK(cuModuleGetFunction(&f, m2, "mv_fill"));
	HCHK(cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, NULL, fill, NULL));
	HCHK(cuCtxSynchronize());
	return 0;
}

/* How many times the n bytes at needle occur in the len bytes at all. */
static int count_bytes(const char *all, size_t len, const char *needle, size_t n)
{
	const char *p = all, *end = all + len;
	int count = 0;

	while ((p = memmem(p, (size_t)(end - p), needle, n)) != NULL) {
		count++;
		p += n;
	}
	return count;
}

/* A function handle that names another kernel once its module is unloaded is that kernel in what
 * memvirt learns and records: the trace names mv_axpy, not a second launch of mv_fill. The kernel
 * loaded again keeps its function: the trace names mv_fill once. Whether its first launch passed
 * kernelParams (_i 0) or the extra buffer (_i 1). */
START_TEST(test_unloaded_function_named_again)
{
	char trace[PATH_MAX], rec[PATH_MAX + 32], *all;
	const char *env[] = {rec, NET_OFF, "MEMVIRT_DAEMON=off", NULL};
	struct itest_child c;
	struct stat st;
	size_t len;

	itest_tmpfile(trace, sizeof(trace), "trace");
	/* A trace for one process is written only where no file is. */
	unlink(trace);
	snprintf(rec, sizeof(rec), "MEMVIRT_RECORD=%s", trace);
	c = itest_run_helper(_i ? "reload-extra" : "reload", 1, env, 120);
	ck_assert_msg(itest_exit_code(&c) == 0, "the helper ended with %s: %s", itest_how(&c), c.err);
	itest_child_free(&c);
	ck_assert_msg(stat(trace, &st) == 0 && st.st_size > 0, "no trace was written to %s", trace);
	all = itest_slurp(trace);
	len = (size_t)st.st_size;
	ck_assert_msg(count_bytes(all, len, "mv_axpy", 7) == 1,
		      "the trace names mv_axpy %d times, not once: its launch went under the unloaded mv_fill's number",
		      count_bytes(all, len, "mv_axpy", 7));
	ck_assert_msg(count_bytes(all, len, "mv_fill", 7) == 1,
		      "the trace names mv_fill %d times, not once: loaded again, it is another function",
		      count_bytes(all, len, "mv_fill", 7));
	free(all);
	unlink(trace);
}
END_TEST

/* How many lines of the file hold needle. */
static int count_lines(const char *path, const char *needle)
{
	char *all = itest_slurp(path), *p = all;
	int n = 0;

	while ((p = strstr(p, needle)) != NULL) {
		n++;
		p += strlen(needle);
	}
	free(all);
	return n;
}

/* More functions launched than memvirt keeps layouts for (16384: mv_fill of 16,400 modules): the
 * launch of one more, mv_axpy's, is prepared as if its layout were unknown, every buffer brought
 * in, never with another function's layout, which would miss the paged-out buffer it names; and
 * the driver is not asked for that layout at each launch. */
START_TEST(test_layout_table_full)
{
	struct five t;
	CUmodule m;
	CUfunction f;
	CUdeviceptr p;
	float one = 1.0f;
	uint64_t n = 1;
	void *args[] = {&p, &one, &n};
	char logpath[PATH_MAX];

	itest_tmpfile(logpath, sizeof(logpath), "log");
	ck_assert_int_eq(setenv("MEMVIRT_LOG_FILE", logpath, 1), 0);
	ck_assert_int_eq(setenv("MEMVIRT_LOG", "warn", 1), 0);
	simtest_start(ENV, NET_OFF);
	five_setup(&t, BUF);
	/* Room for every buffer, as a launch with no layout brings them all in. */
	CHK(cuMemFree(t.o[2]));
	CHK(cuMemFree(t.o[3]));
	CHK(cuMemAlloc(&p, 64));
	for (int i = 0; i < 16400; i++) {
		CHK(cuModuleLoadData(&m, "simcuda"));
		CHK(cuModuleGetFunction(&f, m, "mv_fill"));
		CHK(cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, NULL, args, NULL));
	}
	CHK(cuCtxSynchronize());
	simtest_expect_floats(p, 1, 1.0f);
	CHK(cuMemFree(p));
	ck_assert_int_eq(count_lines(logpath, "more than 16384 kernel functions"), 1);
	/* A function the full table has no slot for is not asked for its layout: a driver that would
	 * not tell it is never asked, so its launches do not warn each time. */
	ck_assert_int_eq(((simcuda_inject_fn)simtest_sym(SIMCUDA_INJECT))(SIMCUDA_FAULT_PARAM_INFO, 0, UINT64_MAX), 0);
	CHK(cuModuleGetFunction(&f, m, "mv_axpy"));
	axpy_through(&t, f);
	ck_assert_int_eq(count_lines(logpath, "reports no parameter layout"), 0);
	unlink(logpath);
}
END_TEST

/* The driver will not report mv_axpy's layout: its launch must still find a's bytes, through the
 * safety net (_i 1) or by bringing every buffer in (_i 0), and the warning comes once. */
START_TEST(test_unknown_layout_falls_back)
{
	struct five t;
	simcuda_inject_fn inject;
	char logpath[PATH_MAX];

	itest_tmpfile(logpath, sizeof(logpath), "log");
	ck_assert_int_eq(setenv("MEMVIRT_LOG_FILE", logpath, 1), 0);
	ck_assert_int_eq(setenv("MEMVIRT_LOG", "warn", 1), 0);
	if (_i == 0)
		simtest_start(ENV, NET_OFF);
	else
		simtest_start(ENV);
	five_setup(&t, BUF);
	/* Room for a beside the two buffers the launch names: every buffer fits. */
	CHK(cuMemFree(t.o[2]));
	CHK(cuMemFree(t.o[3]));
	inject = (simcuda_inject_fn)simtest_sym(SIMCUDA_INJECT);
	ck_assert_int_eq(inject(SIMCUDA_FAULT_PARAM_INFO, 0, UINT64_MAX), 0);
	axpy_through(&t, simtest_func("mv_axpy"));
	/* Twice: the layout is asked for once, and the warning written once. */
	{
		float zero = 0.0f;
		uint64_t n = NF;
		void *args[] = {&t.o[1], &t.a, &zero, &n};
		CHK(simtest_launch("mv_axpy", NULL, args));
		CHK(cuCtxSynchronize());
	}
	simtest_expect_floats(t.o[1], NF, 11.0f);
	ck_assert_int_eq(inject(SIMCUDA_FAULT_PARAM_INFO, 0, 0), 0);
	ck_assert_int_eq(count_lines(logpath, "reports no parameter layout"), 1);
	unlink(logpath);
}
END_TEST

/* mv_wide's 71st parameter names a paged-out buffer: the scan reaches it. */
START_TEST(test_wide_kernel_scanned_whole)
{
	struct five t;
	uint32_t words[69] = {NF};
	void *args[71];

	simtest_start(ENV, NET_OFF);
	five_setup(&t, BUF);
	args[0] = &t.o[0];
	for (int i = 0; i < 69; i++)
		args[1 + i] = &words[i];
	args[70] = &t.a;
	CHK(simtest_launch("mv_wide", NULL, args));
	CHK(cuCtxSynchronize());
	simtest_expect_floats(t.o[0], NF, 6.0f);
	simtest_expect_floats(t.a, NF, 3.0f);
}
END_TEST

/* ---- stream-ordered pools' usage ---- */

static cuuint64_t pool_u64(CUmemoryPool pool, CUmemPool_attribute a)
{
	cuuint64_t v = 0;

	CHK(cuMemPoolGetAttribute(pool, a, &v));
	return v;
}

/* memvirt serves stream-ordered allocations from its own pages, so the driver's pool holds none:
 * the pool's usage figures, which frameworks read as their memory statistics, come from memvirt
 * and count them, paged out or not, and their resets work. */
START_TEST(test_pool_usage_counts_served_allocations)
{
	CUmemoryPool pool;
	CUstream s;
	CUdeviceptr a, b, c;
	cuuint64_t zero = 0, five = 5;

	simtest_start(ENV, NET_OFF);
	CHK(cuDeviceGetDefaultMemPool(&pool, 0));
	CHK(cuStreamCreate(&s, 0));
	CHK(cuMemAllocAsync(&a, BUF - 96, s));
	CHK(cuMemAllocFromPoolAsync(&b, 2 * BUF, pool, s));
	CHK(cuMemAllocAsync(&c, 1000, s)); /* a slab block */
	CHK(cuStreamSynchronize(s));
	ck_assert_uint_eq(pool_u64(pool, CU_MEMPOOL_ATTR_USED_MEM_CURRENT), BUF - 96 + 2 * BUF + 1000);
	ck_assert_uint_eq(pool_u64(pool, CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT), BUF + 2 * BUF + 1000);
	/* Paged out by plain allocations, a still counts: the app holds it. */
	{
		struct five t;
		five_setup(&t, BUF);
	}
	ck_assert_uint_eq(pool_u64(pool, CU_MEMPOOL_ATTR_USED_MEM_CURRENT), BUF - 96 + 2 * BUF + 1000);
	CHK(cuMemFreeAsync(b, s));
	CHK(cuMemFree(c));
	CHK(cuStreamSynchronize(s));
	ck_assert_uint_eq(pool_u64(pool, CU_MEMPOOL_ATTR_USED_MEM_CURRENT), BUF - 96);
	ck_assert_uint_eq(pool_u64(pool, CU_MEMPOOL_ATTR_USED_MEM_HIGH), BUF - 96 + 2 * BUF + 1000);
	ck_assert_uint_eq(pool_u64(pool, CU_MEMPOOL_ATTR_RESERVED_MEM_HIGH), BUF + 2 * BUF + 1000);
	CHK(cuMemPoolSetAttribute(pool, CU_MEMPOOL_ATTR_USED_MEM_HIGH, &zero));
	CHK(cuMemPoolSetAttribute(pool, CU_MEMPOOL_ATTR_RESERVED_MEM_HIGH, &zero));
	ck_assert_uint_eq(pool_u64(pool, CU_MEMPOOL_ATTR_USED_MEM_HIGH), BUF - 96);
	ck_assert_uint_eq(pool_u64(pool, CU_MEMPOOL_ATTR_RESERVED_MEM_HIGH), BUF);
	/* The driver still checks the call. */
	CHK_ERR(cuMemPoolSetAttribute(pool, CU_MEMPOOL_ATTR_USED_MEM_HIGH, &five), CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuMemPoolGetAttribute(pool, CU_MEMPOOL_ATTR_USED_MEM_CURRENT, NULL), CUDA_ERROR_INVALID_VALUE);
	CHK(cuMemFreeAsync(a, s));
	CHK(cuStreamSynchronize(s));
	ck_assert_uint_eq(pool_u64(pool, CU_MEMPOOL_ATTR_USED_MEM_CURRENT), 0);
	ck_assert_uint_eq(pool_u64(pool, CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT), 0);
	CHK(cuStreamDestroy(s));
}
END_TEST

static Suite *pointer_suite(void)
{
	Suite *s = suite_create("interpose_pointer");
	TCase *tc = simtest_tcase(s, "attributes", 60);

	tcase_add_test(tc, test_attrs_describe_the_allocation);
	tcase_add_test(tc, test_attrs_batch_and_others);
	tcase_add_test(tc, test_retain_handle_refused_for_buffers);
	tcase_add_test(tc, test_pool_usage_counts_served_allocations);
	tc = simtest_tcase(s, "layouts", 60);
	tcase_add_test(tc, test_cukernel_launch_pages_in);
	tcase_add_loop_test(tc, test_handle_of_an_unloaded_module, 0, 2);
	tcase_add_test(tc, test_handle_of_an_unloaded_library);
	tcase_add_test(tc, test_layout_table_full);
	tcase_add_loop_test(tc, test_unloaded_function_named_again, 0, 2);
	tcase_add_loop_test(tc, test_unknown_layout_falls_back, 0, 2);
	tcase_add_test(tc, test_wide_kernel_scanned_whole);
	return s;
}

int main(int argc, char **argv)
{
	const char *mode;

	itest_main_begin(argc, argv);
	mode = itest_helper_mode(argc, argv);
	if (mode != NULL && strcmp(mode, "reload") == 0)
		return helper_reload(0);
	if (mode != NULL && strcmp(mode, "reload-extra") == 0)
		return helper_reload(1);
	if (mode != NULL)
		return 2;
	return simtest_run(pointer_suite());
}
