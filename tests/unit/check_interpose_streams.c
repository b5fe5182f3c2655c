/* libmemvirt.so and the app's streams on the simulated GPU: per-thread default streams, streams
 * destroyed with work still queued, and many threads paging under a small budget.
 *
 * A hang is a failure here, not a stuck run: each case has a generous timeout (its work takes well
 * under a second), after which Check fails it. The safety net is off, so any access memvirt failed
 * to prepare is a sticky CUDA_ERROR_ILLEGAL_ADDRESS; data is checked exactly. */
#include "config.h"

#include <pthread.h>

#include "tests/unit/interposetest.h"

#define GRAN64 "SIMCUDA_GRANULARITY=64KiB"
#define THR16 "MEMVIRT_SLAB_THRESHOLD=16KiB"
#define NET_OFF "SIMCUDA_NO_HOST_VMM=1"
#define BUF (64 * ITEST_KIB) /* one granule with GRAN64 */
#define NF (BUF / sizeof(float))

typedef CUresult (*launch_fn)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
			      CUstream, void **, void **);

static CUdeviceptr alloc_filled(float v)
{
	CUdeviceptr p;

	CHK(cuMemAlloc(&p, BUF));
	CHK(simtest_fill(p, v, NF, NULL));
	CHK(cuCtxSynchronize());
	return p;
}

/* The per-thread form of cuLaunchKernel, as a program built with per-thread default streams calls
 * it: memvirt's hook, found the way the app's link would find it. */
static launch_fn launch_ptsz(void)
{
	launch_fn f = (launch_fn)dlsym(RTLD_DEFAULT, "cuLaunchKernel_ptsz");

	ck_assert_msg(f != NULL, "cuLaunchKernel_ptsz is not exported");
	return f;
}

static CUresult fill_ptsz(CUdeviceptr p, float v)
{
	uint64_t n = NF;
	void *args[] = {&p, &v, &n};

	return launch_ptsz()(simtest_func("mv_fill"), 1, 1, 1, 1, 1, 1, 0, NULL, args, NULL);
}

static CUresult axpy_ptsz(CUdeviceptr y, CUdeviceptr x, float a)
{
	uint64_t n = NF;
	void *args[] = {&y, &x, &a, &n};

	return launch_ptsz()(simtest_func("mv_axpy"), 1, 1, 1, 1, 1, 1, 0, NULL, args, NULL);
}

/* ---- the per-thread default stream ---- */

/* A budget of three buffers. x is paged out; a, used last on more streams than a buffer's uses
 * remember, is the next victim. A kernel on the per-thread default stream that needs x must page a
 * out, and that page-out must not wait for the kernel's own submission. */
START_TEST(test_ptsz_page_in_victim_on_many_streams)
{
	CUdeviceptr x, a, c, d;
	CUstream s[5];

	simtest_start("SIMCUDA_MEM=192KiB", GRAN64, THR16, NET_OFF);
	x = alloc_filled(1.0f);
	a = alloc_filled(2.0f);
	c = alloc_filled(3.0f);
	d = alloc_filled(4.0f);
	ck_assert_msg(itest_counters().page_outs >= 1, "x was not paged out");
	for (int i = 0; i < 5; i++) {
		CHK(cuStreamCreate(&s[i], CU_STREAM_NON_BLOCKING));
		CHK(simtest_fill(a, 2.0f, NF, s[i]));
	}
	CHK(cuCtxSynchronize());
	CHK(simtest_fill(c, 3.0f, NF, NULL));
	CHK(simtest_fill(d, 4.0f, NF, NULL));
	CHK(cuCtxSynchronize());
	CHK(fill_ptsz(x, 5.0f));
	CHK(cuCtxSynchronize());
	simtest_expect_floats(x, NF, 5.0f);
	simtest_expect_floats(a, NF, 2.0f);
	simtest_expect_floats(c, NF, 3.0f);
	simtest_expect_floats(d, NF, 4.0f);
	CHK(cuCtxSynchronize());
}
END_TEST

/* Eight threads, each adding SHARED buffers in turn into its own one, 24 times, on its per-thread
 * default stream, under a budget of five buffers out of twelve. The shared ones are used on every
 * stream, so their page-outs wait for every stream's latest work, never for a submission still on
 * its way. */
#define THREADS 8
#define SHARED 4

struct worker {
	CUdeviceptr shared[SHARED], own;
	int nshared;
	int per_thread; /* 1: the per-thread default stream; 0: a stream of its own */
	int iters;
	pthread_barrier_t *start;
	CUresult r;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	CUstream s = NULL;
	CUfunction axpy;
	CUresult r;

	if ((r = cuCtxSetCurrent(simtest_ctx)) != CUDA_SUCCESS ||
	    (r = cuModuleGetFunction(&axpy, simtest_mod, "mv_axpy")) != CUDA_SUCCESS)
		goto out;
	if (!w->per_thread && (r = cuStreamCreate(&s, CU_STREAM_NON_BLOCKING)) != CUDA_SUCCESS)
		goto out;
	/* All together, and each waiting for its own launch before the next, so that they take turns. */
	pthread_barrier_wait(w->start);
	for (int i = 0; i < w->iters && r == CUDA_SUCCESS; i++) {
		r = w->per_thread ? axpy_ptsz(w->own, w->shared[i % w->nshared], 1.0f)
				  : simtest_axpy(w->own, w->shared[i % w->nshared], 1.0f, NF, s);
		if (r == CUDA_SUCCESS)
			r = w->per_thread ? cuStreamSynchronize(CU_STREAM_PER_THREAD) : cuStreamSynchronize(s);
	}
out:
	w->r = r;
	return NULL;
}

/* Runs the eight workers and checks every buffer exactly: own[t] = t + iters * 2. nshared: how
 * many buffers the threads share, or 0 for one each. */
static void run_workers(int per_thread, int nshared, int iters)
{
	struct worker w[THREADS];
	pthread_t th[THREADS];
	pthread_barrier_t start;
	CUdeviceptr shared[SHARED];

	for (int i = 0; i < nshared; i++)
		shared[i] = alloc_filled(2.0f);
	for (int t = 0; t < THREADS; t++) {
		w[t].nshared = nshared > 0 ? nshared : 1;
		for (int i = 0; i < w[t].nshared; i++)
			w[t].shared[i] = nshared > 0 ? shared[i] : alloc_filled(2.0f);
		w[t].own = alloc_filled((float)t);
		w[t].per_thread = per_thread;
		w[t].start = &start;
		w[t].iters = iters;
		w[t].r = CUDA_ERROR_UNKNOWN;
	}
	ck_assert_int_eq(pthread_barrier_init(&start, NULL, THREADS), 0);
	for (int t = 0; t < THREADS; t++)
		ck_assert_int_eq(pthread_create(&th[t], NULL, worker_main, &w[t]), 0);
	for (int t = 0; t < THREADS; t++)
		ck_assert_int_eq(pthread_join(th[t], NULL), 0);
	pthread_barrier_destroy(&start);
	for (int t = 0; t < THREADS; t++) {
		const char *name = "?";
		cuGetErrorName(w[t].r, &name);
		ck_assert_msg(w[t].r == CUDA_SUCCESS, "thread %d: %s", t, name);
	}
	ck_assert_msg(itest_counters().page_outs >= THREADS, "only %llu page-outs",
		      (unsigned long long)itest_counters().page_outs);
	for (int t = 0; t < THREADS; t++) {
		simtest_expect_floats(w[t].own, NF, (float)t + (float)iters * 2.0f);
		for (int i = 0; i < w[t].nshared; i++)
			simtest_expect_floats(w[t].shared[i], NF, 2.0f);
	}
	CHK(cuCtxSynchronize());
}

START_TEST(test_ptsz_eight_threads)
{
	simtest_start("SIMCUDA_MEM=320KiB", GRAN64, THR16, NET_OFF);
	run_workers(1, SHARED, 24);
}
END_TEST

/* ---- contention ---- */

/* Eight threads on streams of their own, each launch naming two buffers of its thread's, under a
 * budget of six: three launches fit at once. Every resident buffer may be named by a launch on its
 * way while its thread waits for room for its other one: the threads must wait for each other,
 * not fail with CUDA_ERROR_OUT_OF_MEMORY. */
START_TEST(test_contention_waits_not_oom)
{
	simtest_start("SIMCUDA_MEM=384KiB", GRAN64, THR16, NET_OFF, "SIMCUDA_DELAY_H2D_US=2000");
	run_workers(0, 0, 100);
}
END_TEST

/* A launch that could never fit (three buffers, a budget of two) fails at once with the named
 * error, and loses nothing. */
START_TEST(test_contention_never_fits_fails)
{
	CUdeviceptr b[3];
	uint64_t n = NF;
	void *args[] = {&b[0], &b[1], &b[2], &n};

	simtest_start("SIMCUDA_MEM=128KiB", GRAN64, THR16, NET_OFF);
	for (int i = 0; i < 3; i++)
		b[i] = alloc_filled((float)i);
	CHK_ERR(simtest_launch("mv_add", NULL, args), CUDA_ERROR_OUT_OF_MEMORY);
	for (int i = 0; i < 3; i++)
		simtest_expect_floats(b[i], NF, (float)i);
	CHK(cuCtxSynchronize());
}
END_TEST

/* ---- destroyed streams ---- */

/* A slow kernel writes a on a stream the app destroys at once; a is then forced out. The page-out
 * must wait for that kernel although nothing can be recorded on the stream any more: else it copies
 * stale bytes and unmaps pages the kernel is writing (CUDA_ERROR_ILLEGAL_ADDRESS). */
START_TEST(test_destroyed_stream_queued_work_kept)
{
	CUdeviceptr a, o[2], e;
	CUstream s;
	uint64_t before;

	simtest_start("SIMCUDA_MEM=192KiB", GRAN64, THR16, NET_OFF, "SIMCUDA_DELAY_KERNEL_US=150000");
	a = alloc_filled(1.0f);
	o[0] = alloc_filled(20.0f);
	o[1] = alloc_filled(21.0f);
	CHK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
	CHK(simtest_fill(a, 7.0f, NF, s));
	CHK(cuStreamDestroy(s));
	/* The others are used after it (by copies: kernels and memsets are slow), so a is the least
	 * recently used. */
	for (int i = 0; i < 2; i++) {
		float v = 20.0f + (float)i;
		CHK(cuMemcpyHtoD(o[i], &v, sizeof(v)));
	}
	before = itest_counters().page_outs;
	CHK(cuMemAlloc(&e, BUF));
	CHK(cuMemsetD32(e, 0x41100000u, NF)); /* 9.0f */
	ck_assert_msg(itest_counters().page_outs > before, "nothing was paged out to make room");
	CHK(cuCtxSynchronize());
	simtest_expect_floats(a, NF, 7.0f);
	simtest_expect_floats(e, NF, 9.0f);
	CHK(cuCtxSynchronize());
}
END_TEST

/* The same while the stream captures a graph: nothing may be recorded on it then (the record would
 * join the graph), so the page-out waits on a mark made before the capture began. */
START_TEST(test_capturing_stream_queued_work_kept)
{
	CUdeviceptr a, o[2], e;
	CUstream s;
	CUgraph g;
	uint64_t before;

	simtest_start("SIMCUDA_MEM=192KiB", GRAN64, THR16, NET_OFF, "SIMCUDA_DELAY_KERNEL_US=150000");
	a = alloc_filled(1.0f);
	o[0] = alloc_filled(20.0f);
	o[1] = alloc_filled(21.0f);
	CHK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
	CHK(simtest_fill(a, 7.0f, NF, s));
	CHK(cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_RELAXED));
	for (int i = 0; i < 2; i++) {
		float v = 20.0f + (float)i;
		CHK(cuMemcpyHtoD(o[i], &v, sizeof(v)));
	}
	before = itest_counters().page_outs;
	CHK(cuMemAlloc(&e, BUF));
	CHK(cuMemsetD32(e, 0x41100000u, NF)); /* 9.0f */
	ck_assert_msg(itest_counters().page_outs > before, "nothing was paged out to make room");
	CHK(cuStreamEndCapture(s, &g));
	CHK(cuCtxSynchronize());
	simtest_expect_floats(a, NF, 7.0f);
	simtest_expect_floats(e, NF, 9.0f);
	CHK(cuGraphDestroy(g));
	/* After the capture the stream is marked as before: the same again, without a capture. */
	CHK(cuMemFree(e));
	CHK(simtest_fill(a, 8.0f, NF, s));
	for (int i = 0; i < 2; i++) {
		float v = 20.0f + (float)i;
		CHK(cuMemcpyHtoD(o[i], &v, sizeof(v)));
	}
	before = itest_counters().page_outs;
	CHK(cuMemAlloc(&e, BUF));
	CHK(cuMemsetD32(e, 0x41100000u, NF));
	ck_assert_msg(itest_counters().page_outs > before, "nothing was paged out to make room after the capture");
	CHK(cuCtxSynchronize());
	simtest_expect_floats(a, NF, 8.0f);
	CHK(cuCtxSynchronize());
}
END_TEST

/* memvirt serves cuMemAlloc and cuMemFree without the driver, yet a capture forbids them exactly
 * where the driver would (cuThreadExchangeStreamCaptureMode): refused, the capture invalidated,
 * and nothing allocated or freed; a thread relaxed for the call is served, and the graph captured
 * around it runs on the buffer. */
START_TEST(test_capture_forbids_alloc_as_driver_does)
{
	CUstreamCaptureMode m;
	CUstreamCaptureStatus st;
	CUdeviceptr p, q;
	CUgraphExec e;
	CUstream s;
	CUgraph g = NULL;

	simtest_start("SIMCUDA_MEM=384KiB", GRAN64, THR16, NET_OFF);
	CHK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
	q = alloc_filled(4.0f);
	CHK(cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL));
	CHK_ERR(cuMemAlloc(&p, BUF), CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED);
	CHK(cuStreamIsCapturing(s, &st));
	ck_assert_int_eq(st, CU_STREAM_CAPTURE_STATUS_INVALIDATED);
	CHK_ERR(cuStreamEndCapture(s, &g), CUDA_ERROR_STREAM_CAPTURE_INVALIDATED);

	CHK(cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL));
	m = CU_STREAM_CAPTURE_MODE_RELAXED;
	CHK(cuThreadExchangeStreamCaptureMode(&m));
	CHK(cuMemAlloc(&p, BUF));
	CHK(cuThreadExchangeStreamCaptureMode(&m));
	CHK(simtest_fill(p, 2.0f, NF, s));
	CHK(cuStreamEndCapture(s, &g));
	ck_assert_ptr_nonnull(g);
	CHK(cuGraphInstantiateWithFlags(&e, g, 0));
	CHK(cuGraphDestroy(g));
	CHK(cuGraphLaunch(e, s));
	CHK(cuStreamSynchronize(s));
	simtest_expect_floats(p, NF, 2.0f);

	/* A forbidden free frees nothing. */
	CHK(cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL));
	CHK_ERR(cuMemFree(q), CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED);
	CHK_ERR(cuStreamEndCapture(s, &g), CUDA_ERROR_STREAM_CAPTURE_INVALIDATED);
	simtest_expect_floats(q, NF, 4.0f);
	CHK(cuMemFree(q));
	CHK(cuGraphExecDestroy(e));
	CHK(cuStreamDestroy(s));
}
END_TEST

/* The library forgets a destroyed stream: streams made and destroyed one after another, more than
 * its table holds, are each tracked as the first one was (none falls back to synchronising). */
START_TEST(test_destroyed_streams_forgotten)
{
	CUdeviceptr a, b, c, x;
	char log[PATH_MAX];
	char *text;

	itest_tmpfile(log, sizeof(log), "streams-log");
	ck_assert_int_eq(setenv("MEMVIRT_LOG_FILE", log, 1), 0);
	simtest_start("SIMCUDA_MEM=192KiB", GRAN64, THR16, NET_OFF, "MEMVIRT_LOG=warn", "MEMVIRT_DAEMON=off");
	a = alloc_filled(1.0f);
	b = alloc_filled(2.0f);
	c = alloc_filled(3.0f);
	x = alloc_filled(4.0f);
	/* More streams than the library's table holds, one at a time, each touching every buffer. */
	for (int i = 0; i < 300; i++) {
		CUstream s;
		CUdeviceptr all[] = {a, b, c, x};
		CHK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
		for (int j = 0; j < 4; j++)
			CHK(simtest_axpy(all[(i + j) % 4], all[(i + j) % 4], 0.0f, NF, s));
		/* Done before it goes, so that its place can be taken at once. */
		CHK(cuStreamSynchronize(s));
		CHK(cuStreamDestroy(s));
	}
	CHK(cuCtxSynchronize());
	simtest_expect_floats(a, NF, 1.0f);
	simtest_expect_floats(b, NF, 2.0f);
	simtest_expect_floats(c, NF, 3.0f);
	simtest_expect_floats(x, NF, 4.0f);
	CHK(cuCtxSynchronize());
	text = itest_slurp(log);
	unlink(log);
	ck_assert_msg(strstr(text, "more than") == NULL, "the library ran out of streams: %.200s", text);
	free(text);
}
END_TEST

/* Threads that each launch on their per-thread default stream and end without waiting for it, many
 * more than the library's table of streams holds, one after another, under a budget of three
 * buffers out of five: every ended thread's entry is given back (none falls back to synchronising),
 * and a page-out still waits for the last launch of a thread that has ended. */
#define SHORT_THREADS 400

struct short_worker {
	CUdeviceptr y, x;
	CUresult r;
};

static void *short_main(void *arg)
{
	struct short_worker *w = arg;

	w->r = cuCtxSetCurrent(simtest_ctx);
	if (w->r == CUDA_SUCCESS)
		w->r = axpy_ptsz(w->y, w->x, 1.0f);
	return NULL;
}

START_TEST(test_ended_threads_streams_given_back)
{
	CUdeviceptr b[4], ones;
	char log[PATH_MAX];
	char *text;

	itest_tmpfile(log, sizeof(log), "threads-log");
	ck_assert_int_eq(setenv("MEMVIRT_LOG_FILE", log, 1), 0);
	simtest_start("SIMCUDA_MEM=192KiB", GRAN64, THR16, NET_OFF, "MEMVIRT_LOG=warn", "MEMVIRT_DAEMON=off",
		      "SIMCUDA_DELAY_KERNEL_US=200");
	ones = alloc_filled(1.0f);
	for (int i = 0; i < 4; i++)
		b[i] = alloc_filled((float)i);
	for (int i = 0; i < SHORT_THREADS; i++) {
		struct short_worker w = {b[i % 4], ones, CUDA_ERROR_UNKNOWN};
		pthread_t th;
		ck_assert_int_eq(pthread_create(&th, NULL, short_main, &w), 0);
		ck_assert_int_eq(pthread_join(th, NULL), 0);
		ck_assert_msg(w.r == CUDA_SUCCESS, "thread %d: %d", i, (int)w.r);
	}
	CHK(cuCtxSynchronize());
	ck_assert_msg(itest_counters().page_outs >= SHORT_THREADS / 2, "only %llu page-outs",
		      (unsigned long long)itest_counters().page_outs);
	for (int i = 0; i < 4; i++)
		simtest_expect_floats(b[i], NF, (float)i + SHORT_THREADS / 4);
	simtest_expect_floats(ones, NF, 1.0f);
	CHK(cuCtxSynchronize());
	text = itest_slurp(log);
	unlink(log);
	ck_assert_msg(strstr(text, "more than") == NULL, "the library ran out of streams: %.200s", text);
	free(text);
}
END_TEST

static Suite *streams_suite(void)
{
	Suite *s = suite_create("interpose_streams");
	TCase *tc;

	tc = simtest_tcase(s, "per_thread", 60);
	tcase_add_test(tc, test_ptsz_page_in_victim_on_many_streams);
	tcase_add_test(tc, test_ptsz_eight_threads);
	tcase_add_test(tc, test_ended_threads_streams_given_back);
	tc = simtest_tcase(s, "contention", 60);
	tcase_add_test(tc, test_contention_waits_not_oom);
	tcase_add_test(tc, test_contention_never_fits_fails);
	tc = simtest_tcase(s, "destroy", 60);
	tcase_add_test(tc, test_destroyed_stream_queued_work_kept);
	tcase_add_test(tc, test_capturing_stream_queued_work_kept);
	tcase_add_test(tc, test_capture_forbids_alloc_as_driver_does);
	tcase_add_test(tc, test_destroyed_streams_forgotten);
	return s;
}

int main(int argc, char **argv)
{
	itest_main_begin(argc, argv);
	return simtest_run(streams_suite());
}
