/* libmemvirt.so in a process that uses two devices, or two contexts: memvirt pages the device of
 * the first allocation (or, when MEMVIRT_BUDGET limits only some devices, the first of those), and
 * every allocation made in another device's context goes to the driver unchanged.
 * So the other device's buffers stay where the driver put them, its cuMemGetInfo is the driver's,
 * and a page-in made while the calling thread has the other device's context current still lands
 * on the paged device. The safety net is off, so a buffer mapped on the wrong device is found by
 * the memory figures, not hidden by a host mapping. */
#include "config.h"

#include "tests/unit/interposetest.h"

#define BUF (64 * ITEST_KIB) /* one granule */
#define N0 8                 /* buffers on device 0, whose budget holds four */
#define N1 6                 /* buffers on device 1 */
#define FLOATS (BUF / sizeof(float))

static char logpath[PATH_MAX];

/* Two devices of 64 MiB with 64 KiB granules, and the library's log in logpath; the settings given
 * come on top. Device 0 (or whichever the first allocation is on) is paged under 256 KiB. */
#define start_with(...) \
	do { \
		itest_tmpfile(logpath, sizeof(logpath), "log"); \
		ck_assert_int_eq(setenv("MEMVIRT_LOG_FILE", logpath, 1), 0); \
		simtest_start("SIMCUDA_DEVICES=2", "SIMCUDA_MEM=64MiB", "SIMCUDA_GRANULARITY=64KiB", \
			      "MEMVIRT_BUDGET=256KiB", "MEMVIRT_SLAB_THRESHOLD=16KiB", "MEMVIRT_DAEMON=off", \
			      "MEMVIRT_LOG=info", ##__VA_ARGS__); \
	} while (0)

static void start(void)
{
	start_with("SIMCUDA_NO_HOST_VMM=1");
}

static CUfunction fill_in(CUmodule m)
{
	CUfunction f = NULL;

	CHK(cuModuleGetFunction(&f, m, "mv_fill"));
	return f;
}

/* Loads the kernels in the current context: mv_fill from them. */
static CUfunction fill_here(CUmodule *m)
{
	CHK(cuModuleLoadData(m, simtest_module_image() != NULL ? simtest_module_image() : "simcuda"));
	return fill_in(*m);
}

static CUresult fill(CUfunction f, CUdeviceptr p, float v, CUstream s)
{
	uint64_t n = FLOATS;
	void *args[] = {&p, &v, &n};

	return cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, s, args, NULL);
}

static void info(size_t *free_bytes, size_t *total)
{
	CHK(cuMemGetInfo(free_bytes, total));
}

static int ordinal(CUdeviceptr p)
{
	int d = -1;

	CHK(cuPointerGetAttribute(&d, CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL, p));
	return d;
}

START_TEST(test_other_device_passes_through)
{
	CUdeviceptr d0[N0], d1[N1], small, async;
	CUcontext ctx1;
	CUmodule mod1;
	CUstream s1;
	CUfunction f0, f1;
	size_t free0, total0, free1, total1, free_before, free_alloc;
	struct memvirt_counters c;

	start();
	f0 = fill_in(simtest_mod);
	for (int i = 0; i < N0; i++) {
		CHK(cuMemAlloc(&d0[i], BUF));
		CHK(fill(f0, d0[i], (float)i, NULL));
	}
	CHK(cuCtxSynchronize());
	info(&free0, &total0);
	ck_assert_uint_eq(total0, 256 * ITEST_KIB);

	/* Device 1: the driver's memory figures, the driver's allocations. */
	CHK(cuDevicePrimaryCtxRetain(&ctx1, 1));
	CHK(cuCtxSetCurrent(ctx1));
	f1 = fill_here(&mod1);
	info(&free_before, &total1);
	ck_assert_uint_eq(total1, 64 * SIMTEST_MIB);
	for (int i = 0; i < N1; i++) {
		CHK(cuMemAlloc(&d1[i], BUF));
		CHK(fill(f1, d1[i], 100.0f + (float)i, NULL));
	}
	CHK(cuMemAlloc(&small, 4 * ITEST_KIB));
	CHK(cuStreamCreate(&s1, CU_STREAM_NON_BLOCKING));
	CHK(cuMemAllocAsync(&async, BUF, s1));
	CHK(fill(f1, async, 7.0f, s1));
	CHK(cuCtxSynchronize());
	info(&free_alloc, &total1);
	ck_assert_uint_le(free_alloc, free_before - (N1 + 1) * BUF);
	for (int i = 0; i < N1; i++)
		ck_assert_int_eq(ordinal(d1[i]), 1);
	ck_assert_int_eq(ordinal(async), 1);

	/* Device 0's buffers read from device 1's context: the paged-out ones come back on device 0. */
	for (int i = 0; i < N0; i++)
		simtest_expect_floats(d0[i], FLOATS, (float)i);
	c = itest_counters();
	ck_assert_uint_ge(c.page_outs, N0 - 4);
	ck_assert_uint_ge(c.page_ins, 1);
	info(&free1, &total1);
	ck_assert_uint_eq(free1, free_alloc);
	for (int i = 0; i < N1; i++)
		simtest_expect_floats(d1[i], FLOATS, 100.0f + (float)i);
	simtest_expect_floats(async, FLOATS, 7.0f);

	/* Frees in device 1's context go to the driver, which gets all of it back. */
	CHK(cuMemFreeAsync(async, s1));
	CHK(cuStreamSynchronize(s1));
	for (int i = 0; i < N1; i++)
		CHK(cuMemFree(d1[i]));
	CHK(cuMemFree(small));
	info(&free1, &total1);
	ck_assert_uint_eq(free1, free_before);
	CHK_ERR(cuMemFree(d1[0]), CUDA_ERROR_INVALID_VALUE);
	CHK(cuStreamDestroy(s1));

	/* Device 0 is as it was: its budget, its buffers. */
	CHK(cuCtxSetCurrent(simtest_ctx));
	info(&free0, &total0);
	ck_assert_uint_eq(total0, 256 * ITEST_KIB);
	for (int i = 0; i < N0; i++) {
		simtest_expect_floats(d0[i], FLOATS, (float)i);
		CHK(cuMemFree(d0[i]));
	}
	ck_assert_int_eq(itest_count_in(logpath, "device 1: its allocations go to the driver unpaged; memvirt pages device 0"), 1);
	unlink(logpath);
}
END_TEST

/* A process whose first allocation is on device 1 pages device 1, with the host pool's chunks
 * host-located VMM memory (the safety net on). Each copy is carried out by its context's device,
 * which needs access to both sides: device 1's copy streams to the chunks, and device 0's context
 * reading device 1's buffers as it could read the driver's cuMemAlloc memory. A cuMemCreate on
 * device 0 is not charged to device 1's budget. */
START_TEST(test_paged_device_one)
{
	CUdeviceptr d[N0];
	CUcontext ctx1;
	CUmodule mod1;
	CUfunction f1;
	CUmemAllocationProp prop;
	CUmemGenericAllocationHandle h;
	struct memvirt_counters c;
	size_t free1, total1, free0, total0;

	start_with();
	CHK(cuDevicePrimaryCtxRetain(&ctx1, 1));
	CHK(cuCtxSetCurrent(ctx1));
	f1 = fill_here(&mod1);
	for (int i = 0; i < N0; i++) {
		CHK(cuMemAlloc(&d[i], BUF));
		CHK(fill(f1, d[i], 10.0f + (float)i, NULL));
	}
	CHK(cuCtxSynchronize());
	info(&free1, &total1);
	ck_assert_uint_eq(total1, 256 * ITEST_KIB);
	c = itest_counters();
	ck_assert_uint_ge(c.page_outs, N0 - 4);
	for (int i = 0; i < N0; i++) {
		simtest_expect_floats(d[i], FLOATS, 10.0f + (float)i);
		ck_assert_int_eq(ordinal(d[i]), 1);
	}
	ck_assert_uint_ge(itest_counters().page_ins, N0 - 4);

	/* Device 0's context: the driver's figures there, and device 1's buffers read and written. */
	CHK(cuCtxSetCurrent(simtest_ctx));
	info(&free0, &total0);
	ck_assert_uint_eq(total0, 64 * SIMTEST_MIB);
	prop = simtest_prop(0);
	CHK(cuMemCreate(&h, 2 * SIMTEST_MIB, &prop, 0));
	ck_assert_uint_eq(itest_counters().app_vmm_bytes, 0);
	for (int i = 0; i < N0; i++) {
		simtest_expect_floats(d[i], FLOATS, 10.0f + (float)i);
		CHK(cuMemsetD32(d[i], 0, FLOATS));
		simtest_expect_floats(d[i], FLOATS, 0.0f);
	}
	CHK(cuMemRelease(h));
	CHK(cuCtxSetCurrent(ctx1));
	info(&free1, &total1);
	ck_assert_uint_eq(total1, 256 * ITEST_KIB);
	for (int i = 0; i < N0; i++)
		CHK(cuMemFree(d[i]));
	ck_assert_int_eq(itest_count_in(logpath, "failed"), 0);
	unlink(logpath);
}
END_TEST

/* MEMVIRT_BUDGET=1:256KiB limits device 1 alone: memvirt pages device 1, although the process
 * allocates on device 0 first. Device 0's allocations, beyond 256 KiB, go to the driver unpaged,
 * and its cuMemGetInfo is the driver's; device 1's budget holds four of its eight buffers. */
START_TEST(test_budget_names_the_paged_device)
{
	CUdeviceptr d0[N1], d1[N0];
	CUcontext ctx1;
	CUmodule mod1;
	CUfunction f0, f1;
	size_t free_bytes, total;

	start_with("SIMCUDA_NO_HOST_VMM=1", "MEMVIRT_BUDGET=1:256KiB");
	f0 = fill_in(simtest_mod);
	for (int i = 0; i < N1; i++) {
		CHK(cuMemAlloc(&d0[i], BUF));
		CHK(fill(f0, d0[i], 1.0f + (float)i, NULL));
	}
	CHK(cuCtxSynchronize());
	info(&free_bytes, &total);
	ck_assert_uint_eq(total, 64 * SIMTEST_MIB);
	ck_assert_uint_eq(itest_counters().page_outs, 0);
	CHK(cuDevicePrimaryCtxRetain(&ctx1, 1));
	CHK(cuCtxSetCurrent(ctx1));
	f1 = fill_here(&mod1);
	for (int i = 0; i < N0; i++) {
		CHK(cuMemAlloc(&d1[i], BUF));
		CHK(fill(f1, d1[i], 10.0f + (float)i, NULL));
	}
	CHK(cuCtxSynchronize());
	info(&free_bytes, &total);
	ck_assert_uint_eq(total, 256 * ITEST_KIB);
	ck_assert_uint_ge(itest_counters().page_outs, N0 - 4);
	for (int i = 0; i < N0; i++) {
		simtest_expect_floats(d1[i], FLOATS, 10.0f + (float)i);
		ck_assert_int_eq(ordinal(d1[i]), 1);
	}
	CHK(cuCtxSetCurrent(simtest_ctx));
	for (int i = 0; i < N1; i++) {
		simtest_expect_floats(d0[i], FLOATS, 1.0f + (float)i);
		ck_assert_int_eq(ordinal(d0[i]), 0);
		CHK(cuMemFree(d0[i]));
	}
	CHK(cuCtxSetCurrent(ctx1));
	for (int i = 0; i < N0; i++)
		CHK(cuMemFree(d1[i]));
	ck_assert_int_eq(itest_count_in(logpath, "device 0: MEMVIRT_BUDGET=1:256KiB sets no budget for it"), 1);
	ck_assert_int_eq(itest_count_in(logpath, "failed"), 0);
	unlink(logpath);
}
END_TEST

/* Under a budget for device 1 alone, device 0 is the driver's: a graph that allocates there (an
 * alloc node, from cuMemAllocAsync captured on device 0) launches as the driver would run it, its
 * bytes charged to no budget of memvirt's. Three launches add 2 to p each. */
START_TEST(test_graph_on_a_device_the_budget_leaves_out)
{
	CUdeviceptr p, t;
	CUstream s;
	CUgraph g;
	CUgraphExec e;
	CUfunction f0;

	start_with("SIMCUDA_NO_HOST_VMM=1", "MEMVIRT_BUDGET=1:256KiB");
	f0 = fill_in(simtest_mod);
	CHK(cuMemAlloc(&p, BUF));
	CHK(fill(f0, p, 0.0f, NULL));
	CHK(cuCtxSynchronize());
	CHK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
	CHK(cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL));
	CHK(cuMemAllocAsync(&t, BUF, s));
	CHK(fill(f0, t, 2.0f, s));
	CHK(simtest_axpy(p, t, 1.0f, FLOATS, s));
	CHK(cuMemFreeAsync(t, s));
	CHK(cuStreamEndCapture(s, &g));
	CHK(cuGraphInstantiateWithFlags(&e, g, 0));
	CHK(cuGraphDestroy(g));
	for (int i = 0; i < 3; i++) {
		CHK(cuGraphLaunch(e, s));
		CHK(cuStreamSynchronize(s));
	}
	simtest_expect_floats(p, FLOATS, 6.0f);
	CHK(cuGraphExecDestroy(e));
	CHK(cuStreamDestroy(s));
	CHK(cuMemFree(p));
	ck_assert_int_eq(itest_count_in(logpath, "launch refused"), 0);
	unlink(logpath);
}
END_TEST

/* Device 0's buffer `a` (1.0, returned) and b[0..2] (20, 21, 22), filled and synchronised: with
 * them device 0's budget is full. */
static CUdeviceptr fill_four(CUdeviceptr *b)
{
	CUfunction f0 = fill_in(simtest_mod);
	CUdeviceptr a;

	CHK(cuMemAlloc(&a, BUF));
	CHK(fill(f0, a, 1.0f, NULL));
	for (int i = 0; i < 3; i++) {
		CHK(cuMemAlloc(&b[i], BUF));
		CHK(fill(f0, b[i], 20.0f + (float)i, NULL));
	}
	CHK(cuCtxSynchronize());
	return a;
}

/* Device 0 again, at once (no kernel there: each would wait too, with the delay the callers set):
 * four new buffers b[3..6] push the four older ones out, `a` among them. Then `a` must read v and
 * b[0..2] what fill_four wrote, and both contexts are synchronised. */
static void push_out(CUdeviceptr a, CUdeviceptr *b, float v, CUcontext other)
{
	CHK(cuCtxSetCurrent(simtest_ctx));
	for (int i = 3; i < 7; i++)
		CHK(cuMemAlloc(&b[i], BUF));
	ck_assert_uint_ge(itest_counters().page_outs, 4);
	simtest_expect_floats(a, FLOATS, v);
	for (int i = 0; i < 3; i++)
		simtest_expect_floats(b[i], FLOATS, 20.0f + (float)i);
	CHK(cuCtxSetCurrent(other));
	CHK(cuCtxSynchronize());
	CHK(cuCtxSetCurrent(simtest_ctx));
	CHK(cuCtxSynchronize());
}

/* The legacy stream is each context's own. A kernel on device 1's legacy stream writes a buffer of
 * the paged device 0 (a slow kernel: the simulated driver waits before running it); pressure on
 * device 0 then pages that buffer out. The page-out must wait for device 1's kernel, which only a
 * mark on device 1's legacy stream tells, made with an event of device 1's context. */
START_TEST(test_legacy_stream_per_context)
{
	CUdeviceptr a, b[7];
	CUcontext ctx1;
	CUmodule mod1;
	CUfunction f1;

	start_with("SIMCUDA_NO_HOST_VMM=1", "SIMCUDA_DELAY_KERNEL_US=300000");
	a = fill_four(b);
	CHK(cuDevicePrimaryCtxRetain(&ctx1, 1));
	CHK(cuCtxSetCurrent(ctx1));
	f1 = fill_here(&mod1);
	CHK(fill(f1, a, 2.0f, NULL));
	push_out(a, b, 2.0f, ctx1);
	unlink(logpath);
}
END_TEST

/* A context's end takes its streams' events with it, and a primary context keeps its handle when
 * retained again. Device 1's context writes a buffer of the paged device 0 on stream s (the legacy
 * or the per-thread one), is reset and retained again, and a slow kernel writes the buffer again on
 * s. When pressure pages the buffer out, the page-out must wait for that kernel with a mark made
 * with an event of the new context: one of the old context's would be refused, and nothing would
 * be waited for, or the stream synchronised in its stead, which the debug log tells.
 * With unseen set, the reset is one memvirt does not see (as when another thread resets the
 * context while a call is on its way): the refused mark tells it, once, and the stream is
 * synchronised in its stead. */
static void reset_then_page_out(CUstream s, int unseen)
{
	CUdeviceptr a, b[7];
	CUcontext ctx1, again;
	CUmodule mod1;
	CUfunction f1;

	start_with("SIMCUDA_NO_HOST_VMM=1", "SIMCUDA_DELAY_KERNEL_US=300000", "MEMVIRT_LOG=debug");
	a = fill_four(b);
	CHK(cuDevicePrimaryCtxRetain(&ctx1, 1));
	CHK(cuCtxSetCurrent(ctx1));
	f1 = fill_here(&mod1);
	CHK(fill(f1, a, 2.0f, s));
	CHK(cuCtxSynchronize());
	if (unseen)
		CHK((CUresult)((simcuda_primary_ctx_reset_fn)simtest_sym(SIMCUDA_PRIMARY_CTX_RESET))(1));
	else
		CHK(cuDevicePrimaryCtxReset(1));
	CHK(cuDevicePrimaryCtxRetain(&again, 1));
	ck_assert_ptr_eq(again, ctx1);
	CHK(cuCtxSetCurrent(again));
	f1 = fill_here(&mod1);
	CHK(fill(f1, a, 3.0f, s));
	push_out(a, b, 3.0f, again);
	ck_assert_int_eq(itest_count_in(logpath, "failed"), 0);
	ck_assert_int_eq(itest_count_in(logpath, "cannot be marked"), unseen);
	unlink(logpath);
}

START_TEST(test_context_reset_retires_its_streams)
{
	reset_then_page_out(NULL, 0);
}
END_TEST

START_TEST(test_context_reset_retires_its_per_thread_stream)
{
	reset_then_page_out(CU_STREAM_PER_THREAD, 0);
}
END_TEST

START_TEST(test_unseen_context_reset)
{
	reset_then_page_out(NULL, 1);
}
END_TEST

/* A free from a thread whose current context is none (_i 0), or a primary context that was reset
 * (_i 1), asks whether the freed buffer's last use, on a stream of the paged context, has
 * completed. The mark that answers is made in that stream's context: in the caller's it would be
 * refused, and the stream taken for one whose context ended, its work counted complete while a
 * slow kernel still writes `a`, which a page-out then copies too early. */
START_TEST(test_free_from_another_context)
{
	CUdeviceptr a, b[7], c;
	CUcontext ctx1;
	CUstream s0;
	CUfunction f0;

	start_with("SIMCUDA_NO_HOST_VMM=1", "SIMCUDA_DELAY_KERNEL_US=300000");
	a = fill_four(b);
	f0 = fill_in(simtest_mod);
	CHK(cuStreamCreate(&s0, CU_STREAM_NON_BLOCKING));
	CHK(cuMemAlloc(&c, BUF));
	CHK(cuCtxSynchronize());
	CHK(fill(f0, a, 5.0f, s0));
	CHK(fill(f0, c, 6.0f, s0));
	if (_i == 0) {
		CHK(cuCtxSetCurrent(NULL));
	} else {
		CHK(cuDevicePrimaryCtxRetain(&ctx1, 1));
		CHK(cuCtxSetCurrent(ctx1));
		CHK(cuDevicePrimaryCtxReset(1));
	}
	/* memvirt's own free needs no context; the driver's answer does not matter here. */
	(void)cuMemFree(c);
	push_out(a, b, 5.0f, simtest_ctx);
	CHK(cuStreamDestroy(s0));
	unlink(logpath);
}
END_TEST

/* Contexts made and destroyed one after another, each launching on its legacy stream and on a
 * stream of its own: the ended contexts' entries serve the new ones' streams, so the table (of 128)
 * never fills, and no launch is left to synchronise for want of an entry. */
START_TEST(test_many_context_ends)
{
	CUdeviceptr a;
	CUcontext c;
	CUstream s;
	CUmodule mod;
	CUfunction f;

	start();
	CHK(cuMemAlloc(&a, BUF));
	for (int i = 0; i < 100; i++) {
		CHK(cuCtxCreate(&c, NULL, 0, 0));
		f = fill_here(&mod);
		/* A blocking stream: it runs after what the legacy stream has queued. */
		CHK(cuStreamCreate(&s, 0));
		CHK(fill(f, a, (float)i, NULL));
		CHK(fill(f, a, (float)i + 0.5f, s));
		CHK(cuCtxSynchronize());
		CHK(cuCtxDestroy(c));
	}
	CHK(cuCtxSetCurrent(simtest_ctx));
	simtest_expect_floats(a, FLOATS, 99.5f);
	CHK(cuMemFree(a));
	ck_assert_int_eq(itest_count_in(logpath, "more than"), 0);
	unlink(logpath);
}
END_TEST

/* The paged context ends (a reset of device 0's primary context, retained again under the same
 * handle). memvirt's copy streams went with it, so from then on allocations are the driver's, and
 * the log says why; memvirt serving them would fail its first page-out on a dead stream. */
START_TEST(test_paged_context_end_passes_through)
{
	CUdeviceptr d[N0];
	CUcontext again;
	CUmodule mod;
	CUfunction f;
	CUmemAllocationProp prop = {0};
	CUmemGenericAllocationHandle h;
	uint64_t outs;
	size_t free_bytes, total;

	start();
	CHK(cuMemAlloc(&d[0], BUF));
	CHK(cuMemFree(d[0]));
	CHK(cuDevicePrimaryCtxReset(0));
	ck_assert_int_eq(itest_count_in(logpath, "memvirt pages no more in this process"), 1);
	CHK(cuDevicePrimaryCtxRetain(&again, 0));
	ck_assert_ptr_eq(again, simtest_ctx);
	CHK(cuCtxSetCurrent(again));
	f = fill_here(&mod);
	outs = itest_counters().page_outs;
	for (int i = 0; i < N0; i++) {
		CHK(cuMemAlloc(&d[i], BUF));
		CHK(fill(f, d[i], 40.0f + (float)i, NULL));
	}
	CHK(cuCtxSynchronize());
	for (int i = 0; i < N0; i++)
		simtest_expect_floats(d[i], FLOATS, 40.0f + (float)i);
	ck_assert_uint_eq(itest_counters().page_outs, outs);
	info(&free_bytes, &total);
	ck_assert_uint_eq(total, 64 * SIMTEST_MIB);
	/* The app's own VMM memory too: 1 MiB under a budget of 256 KiB. */
	prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
	prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
	prop.location.id = 0;
	CHK(cuMemCreate(&h, 16 * BUF, &prop, 0));
	CHK(cuMemRelease(h));
	for (int i = 0; i < N0; i++)
		CHK(cuMemFree(d[i]));
	CHK(cuModuleUnload(mod));
	ck_assert_int_eq(itest_count_in(logpath, "failed"), 0);
	unlink(logpath);
}
END_TEST

/* cuMemGetAccess answers for each device memvirt's mappings grant, wherever the buffer's pages are
 * now: a paged-out buffer has no mapping the driver could read the answer from. */
START_TEST(test_access_of_a_paged_out_buffer)
{
	CUdeviceptr d[N0];
	CUmemLocation loc = {.type = CU_MEM_LOCATION_TYPE_DEVICE};
	unsigned long long flags;

	start();
	for (int i = 0; i < N0; i++) {
		CHK(cuMemAlloc(&d[i], BUF));
		CHK(simtest_fill(d[i], 50.0f + (float)i, FLOATS, NULL));
	}
	CHK(cuCtxSynchronize());
	ck_assert_uint_ge(itest_counters().page_outs, N0 - 4);
	for (int dev = 0; dev < 2; dev++) {
		loc.id = dev;
		flags = 0;
		CHK(cuMemGetAccess(&flags, &loc, d[0]));
		ck_assert_uint_eq(flags, CU_MEM_ACCESS_FLAGS_PROT_READWRITE);
		flags = 0;
		CHK(cuMemGetAccess(&flags, &loc, d[N0 - 1]));
		ck_assert_uint_eq(flags, CU_MEM_ACCESS_FLAGS_PROT_READWRITE);
	}
	simtest_expect_floats(d[0], FLOATS, 50.0f);
	for (int i = 0; i < N0; i++)
		CHK(cuMemFree(d[i]));
	unlink(logpath);
}
END_TEST

/* A second context on the paged device, made by the app and current when it allocates: memvirt
 * serves it, and the buffers' copy events are made in the paged context, whose copy streams record
 * them, so the page-outs and page-ins work. */
START_TEST(test_second_context_on_the_paged_device)
{
	CUdeviceptr d[N0];
	CUcontext other;
	CUmodule mod;
	CUfunction f;
	struct memvirt_counters c;

	start();
	/* The first allocation sets up the paged device in the primary context. */
	CHK(cuMemAlloc(&d[0], BUF));
	CHK(cuCtxCreate(&other, NULL, 0, 0));
	f = fill_here(&mod);
	CHK(fill(f, d[0], 30.0f, NULL));
	for (int i = 1; i < N0; i++) {
		CHK(cuMemAlloc(&d[i], BUF));
		CHK(fill(f, d[i], 30.0f + (float)i, NULL));
	}
	CHK(cuCtxSynchronize());
	c = itest_counters();
	ck_assert_uint_ge(c.page_outs, N0 - 4);
	for (int i = 0; i < N0; i++)
		simtest_expect_floats(d[i], FLOATS, 30.0f + (float)i);
	ck_assert_uint_ge(itest_counters().page_ins, N0 - 4);
	for (int i = 0; i < N0; i++)
		CHK(cuMemFree(d[i]));
	CHK(cuModuleUnload(mod));
	CHK(cuCtxSetCurrent(simtest_ctx));
	CHK(cuCtxDestroy(other));
	ck_assert_int_eq(itest_count_in(logpath, "failed"), 0);
	unlink(logpath);
}
END_TEST

/* A capture runs on a stream of a context that ends before the capture does (a reset in the middle
 * of a capture). The capture ended with it: while it ran, each allocation memvirt served asked the
 * driver whether a capture forbids it, with one byte allocated and kept until no capture runs;
 * afterwards allocations from the slab take no device memory at all. The end is a cuCtxDestroy
 * (_i 0), or one no hook sees (_i 1: simcuda_primary_ctx_reset of device 1, as another thread's
 * reset racing with a call of memvirt's would be), which the next allocation finds by asking the
 * driver; so a stream that gets the old handle does not count as capturing either. */
START_TEST(test_capture_ends_with_its_context)
{
	CUdeviceptr p[8], first;
	CUcontext c;
	CUstream s;
	uint64_t before, after;

	start();
	/* The slab chunk that serves the later allocations. */
	CHK(cuMemAlloc(&first, 1024));
	if (_i == 0)
		CHK(cuCtxCreate(&c, NULL, 0, 1));
	else
		CHK(cuDevicePrimaryCtxRetain(&c, 1));
	CHK(cuCtxSetCurrent(c));
	CHK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
	CHK(cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL));
	CHK(cuCtxSetCurrent(simtest_ctx));
	/* The capture in global mode forbids it, as the driver would. */
	CHK_ERR(cuMemAlloc(&p[0], 1024), CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED);
	if (_i == 0)
		CHK(cuCtxDestroy(c));
	else
		CHK((CUresult)((simcuda_primary_ctx_reset_fn)simtest_sym(SIMCUDA_PRIMARY_CTX_RESET))(1));
	CHK(cuCtxSetCurrent(simtest_ctx));
	simtest_mem_usage(&before, NULL);
	for (int i = 0; i < 8; i++)
		CHK(cuMemAlloc(&p[i], 1024));
	simtest_mem_usage(&after, NULL);
	ck_assert_uint_eq(after, before);
	for (int i = 0; i < 8; i++)
		CHK(cuMemFree(p[i]));
	CHK(cuMemFree(first));
	ck_assert_int_eq(itest_count_in(logpath, "failed"), 0);
	unlink(logpath);
}
END_TEST

static Suite *devices_suite(void)
{
	Suite *s = suite_create("interpose_devices");
	TCase *tc = simtest_tcase(s, "two", 60);

	tcase_add_test(tc, test_other_device_passes_through);
	tcase_add_test(tc, test_paged_device_one);
	tcase_add_test(tc, test_budget_names_the_paged_device);
	tcase_add_test(tc, test_graph_on_a_device_the_budget_leaves_out);
	tcase_add_test(tc, test_legacy_stream_per_context);
	tcase_add_test(tc, test_context_reset_retires_its_streams);
	tcase_add_test(tc, test_context_reset_retires_its_per_thread_stream);
	tcase_add_test(tc, test_unseen_context_reset);
	tcase_add_loop_test(tc, test_free_from_another_context, 0, 2);
	tcase_add_test(tc, test_second_context_on_the_paged_device);
	tcase_add_test(tc, test_paged_context_end_passes_through);
	tcase_add_test(tc, test_many_context_ends);
	tcase_add_test(tc, test_access_of_a_paged_out_buffer);
	tcase_add_loop_test(tc, test_capture_ends_with_its_context, 0, 2);
	return s;
}

int main(int argc, char **argv)
{
	itest_main_begin(argc, argv);
	return simtest_run(devices_suite());
}
