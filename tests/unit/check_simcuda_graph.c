/* The simulated driver's stream capture and graphs: captured launches run only when the graph is
 * launched, as many times as it is, and what cannot be captured is refused. */
#include "config.h"

#include <pthread.h>

#include "tests/unit/simtest.h"

/* The per-thread-stream form of a synchronous memset, which cuda.h declares only for that mode. */
CUresult cuMemsetD32_v2_ptds(CUdeviceptr dst, unsigned int value, size_t n);

#define N 1024

START_TEST(test_capture_and_replay)
{
	CUstream s;
	CUdeviceptr y, x;
	CUgraph g = NULL;
	CUgraphExec e = NULL;
	CUstreamCaptureStatus st = (CUstreamCaptureStatus)99;
	static float hx[N], hy[N];
	size_t count = 0;
	CUgraphNode nodes[4];

	simtest_start();
	CHK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
	for (int i = 0; i < N; i++) {
		hx[i] = (float)(i % 10);
		hy[i] = 1.0f;
	}
	CHK(cuMemAlloc(&x, sizeof(hx)));
	CHK(cuMemAlloc(&y, sizeof(hy)));
	CHK(cuMemcpyHtoD(x, hx, sizeof(hx)));
	CHK(cuMemcpyHtoD(y, hy, sizeof(hy)));

	CHK(cuStreamIsCapturing(s, &st));
	ck_assert_int_eq(st, CU_STREAM_CAPTURE_STATUS_NONE);
	CHK(cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL));
	CHK(cuStreamIsCapturing(s, &st));
	ck_assert_int_eq(st, CU_STREAM_CAPTURE_STATUS_ACTIVE);
	{
		/* The arguments are captured by value: changing a afterwards changes nothing. */
		float a = 2.0f;
		CHK(simtest_axpy(y, x, a, N, s));
		a = 3.0f;
		CHK(simtest_axpy(y, x, a, N, s));
	}
	CHK(cuStreamEndCapture(s, &g));
	ck_assert_ptr_nonnull(g);
	CHK(cuStreamIsCapturing(s, &st));
	ck_assert_int_eq(st, CU_STREAM_CAPTURE_STATUS_NONE);
	CHK(cuGraphGetNodes(g, NULL, &count));
	ck_assert_uint_eq(count, 2);
	count = 4;
	CHK(cuGraphGetNodes(g, nodes, &count));
	ck_assert_uint_eq(count, 2);

	/* Nothing ran during capture. */
	CHK(cuCtxSynchronize());
	simtest_expect_floats(y, N, 1.0f);

	CHK(cuGraphInstantiate(&e, g, 0));
	ck_assert_ptr_nonnull(e);
	CHK(cuGraphLaunch(e, s));
	CHK(cuStreamSynchronize(s));
	CHK(cuMemcpyDtoH(hy, y, sizeof(hy)));
	for (int i = 0; i < N; i++)
		if (hy[i] != 1.0f + 5.0f * hx[i])
			ck_abort_msg("after one launch, element %d is %g", i, hy[i]);
	/* A second launch applies the effect again, on any stream. */
	CHK(cuGraphLaunch(e, NULL));
	CHK(cuStreamSynchronize(NULL));
	CHK(cuMemcpyDtoH(hy, y, sizeof(hy)));
	for (int i = 0; i < N; i++)
		if (hy[i] != 1.0f + 10.0f * hx[i])
			ck_abort_msg("after two launches, element %d is %g", i, hy[i]);
	/* The graph outlives its instantiation's source. */
	CHK(cuGraphDestroy(g));
	CHK(cuGraphLaunch(e, s));
	CHK(cuStreamSynchronize(s));
	CHK(cuMemcpyDtoH(hy, y, sizeof(hy)));
	ck_assert_float_eq(hy[7], 1.0f + 15.0f * hx[7]);
	CHK(cuGraphExecDestroy(e));
	CHK(cuCtxSynchronize());
}
END_TEST

START_TEST(test_capture_refuses_other_work)
{
	CUstream s;
	CUdeviceptr d;
	CUgraph g;
	CUevent ev;
	static float h[N];

	simtest_start();
	CHK(cuStreamCreate(&s, 0));
	CHK(cuEventCreate(&ev, 0));
	CHK(cuMemAlloc(&d, sizeof(h)));
	CHK(cuMemsetD32(d, 0, N));
	for (int i = 0; i < N; i++)
		h[i] = 9.0f;
	CHK(cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL));
	/* An event recorded in the capture marks a point of it, which the host cannot wait for. */
	CHK(cuEventRecord(ev, s));
	CHK_ERR(cuEventQuery(ev), CUDA_ERROR_CAPTURED_EVENT);
	CHK_ERR(cuEventSynchronize(ev), CUDA_ERROR_CAPTURED_EVENT);
	CHK_ERR(cuStreamSynchronize(s), CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED);
	CHK_ERR(cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL), CUDA_ERROR_ILLEGAL_STATE);
	CHK(simtest_fill(d, 2.0f, N, s));
	CHK(cuStreamEndCapture(s, &g));
	/* None of the refused work happened, and the captured fill has not run either. */
	CHK(cuCtxSynchronize());
	CHK(cuMemcpyDtoH(h, d, sizeof(h)));
	simtest_expect_host(h, N, 0.0f);
	CHK_ERR(cuStreamEndCapture(s, &g), CUDA_ERROR_ILLEGAL_STATE);
	/* The legacy stream cannot be captured. */
	CHK_ERR(cuStreamBeginCapture(NULL, CU_STREAM_CAPTURE_MODE_GLOBAL), CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED);
	/* After capture, the stream works normally again. */
	CHK(cuMemcpyHtoDAsync(d, h, sizeof(h), s));
	CHK(cuStreamSynchronize(s));
	CHK(cuGraphDestroy(g));
}
END_TEST

/* During capture, asynchronous copies and memsets become nodes: nothing runs until the graph is
 * launched, and each launch runs them again, reading pinned host memory as it is then. A copy
 * through pageable host memory, or a synchronous copy or memset on the capturing stream, is
 * refused and invalidates the capture. */
START_TEST(test_capture_records_copies_and_memsets)
{
	CUstream s;
	CUdeviceptr a, b, c;
	CUgraph g = NULL;
	CUgraphExec e;
	CUstreamCaptureStatus st;
	float *pin, *out;
	static float pageable[N];

	simtest_start();
	CHK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
	CHK(cuMemAlloc(&a, N * sizeof(float)));
	CHK(cuMemAlloc(&b, N * sizeof(float)));
	CHK(cuMemAlloc(&c, N * sizeof(float)));
	CHK(cuMemsetD32(a, 0, N));
	CHK(cuMemsetD32(b, 0, N));
	CHK(cuMemsetD32(c, 0, N));
	CHK(cuMemAllocHost((void **)&pin, N * sizeof(float)));
	CHK(cuMemAllocHost((void **)&out, N * sizeof(float)));
	for (int i = 0; i < N; i++) {
		pin[i] = (float)i;
		out[i] = -1.0f;
	}
	/* a = pin; b = 2.0 (memset of its bits); b += 3 a; c = b; out = c. */
	CHK(cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL));
	CHK(cuMemcpyHtoDAsync(a, pin, N * sizeof(float), s));
	CHK(cuMemsetD32Async(b, 0x40000000u, N, s));
	CHK(simtest_axpy(b, a, 3.0f, N, s));
	CHK(cuMemcpyDtoDAsync(c, b, N * sizeof(float), s));
	CHK(cuMemcpyDtoHAsync(out, c, N * sizeof(float), s));
	CHK(cuStreamEndCapture(s, &g));
	ck_assert_ptr_nonnull(g);
	/* Recorded, not run. */
	CHK(cuCtxSynchronize());
	simtest_expect_floats(a, N, 0.0f);
	simtest_expect_floats(c, N, 0.0f);
	ck_assert_float_eq(out[5], -1.0f);
	CHK(cuGraphInstantiateWithFlags(&e, g, 0));
	CHK(cuGraphLaunch(e, s));
	CHK(cuStreamSynchronize(s));
	for (int i = 0; i < N; i++)
		if (out[i] != 2.0f + 3.0f * (float)i)
			ck_abort_msg("after a launch, element %d is %g", i, out[i]);
	/* The host source is read at each launch. */
	for (int i = 0; i < N; i++)
		pin[i] = 1.0f;
	CHK(cuGraphLaunch(e, s));
	CHK(cuStreamSynchronize(s));
	simtest_expect_floats(c, N, 5.0f);
	ck_assert_float_eq(out[N - 1], 5.0f);
	CHK(cuGraphExecDestroy(e));
	CHK(cuGraphDestroy(g));

	/* Pageable host memory: refused, and the capture ends without a graph. */
	CHK(cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL));
	CHK_ERR(cuMemcpyHtoDAsync(a, pageable, sizeof(pageable), s), CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED);
	CHK(cuStreamIsCapturing(s, &st));
	ck_assert_int_eq(st, CU_STREAM_CAPTURE_STATUS_INVALIDATED);
	g = NULL;
	CHK_ERR(cuStreamEndCapture(s, &g), CUDA_ERROR_STREAM_CAPTURE_INVALIDATED);
	ck_assert_ptr_null(g);
	CHK(cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL));
	CHK_ERR(cuMemcpyDtoHAsync(pageable, a, sizeof(pageable), s), CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED);
	CHK_ERR(cuStreamEndCapture(s, &g), CUDA_ERROR_STREAM_CAPTURE_INVALIDATED);
	/* A synchronous memset on the capturing per-thread stream, likewise. */
	CHK(cuStreamBeginCapture(CU_STREAM_PER_THREAD, CU_STREAM_CAPTURE_MODE_GLOBAL));
	CHK_ERR(cuMemsetD32_v2_ptds(a, 0, N), CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED);
	CHK_ERR(cuStreamEndCapture(CU_STREAM_PER_THREAD, &g), CUDA_ERROR_STREAM_CAPTURE_INVALIDATED);
	/* None of it ran. */
	CHK(cuCtxSynchronize());
	simtest_expect_floats(a, N, 1.0f);
	CHK(cuMemFreeHost(pin));
	CHK(cuMemFreeHost(out));
	CHK(cuStreamDestroy(s));
}
END_TEST

/* Fork and join: a stream that waits on an event recorded in a capture joins it, its work goes
 * into the same graph, and the capture ends once that work is joined back into the stream that
 * began it. Work left unjoined, a wait on uncaptured work, and an end on the wrong stream each
 * break the capture, as the driver's rules say. */
START_TEST(test_capture_fork_join)
{
	CUstream a, b, c;
	CUevent fork, join, outside;
	CUdeviceptr x, y;
	CUgraph g = NULL;
	CUgraphExec e;
	CUstreamCaptureStatus st;

	simtest_start();
	CHK(cuStreamCreate(&a, CU_STREAM_NON_BLOCKING));
	CHK(cuStreamCreate(&b, CU_STREAM_NON_BLOCKING));
	CHK(cuStreamCreate(&c, CU_STREAM_NON_BLOCKING));
	CHK(cuEventCreate(&fork, CU_EVENT_DISABLE_TIMING));
	CHK(cuEventCreate(&join, CU_EVENT_DISABLE_TIMING));
	CHK(cuEventCreate(&outside, CU_EVENT_DISABLE_TIMING));
	CHK(cuMemAlloc(&x, N * sizeof(float)));
	CHK(cuMemAlloc(&y, N * sizeof(float)));
	CHK(cuMemsetD32(x, 0, N));
	CHK(cuMemsetD32(y, 0, N));

	/* a: x = 1; fork b: y = 2; a: x += 3 (joined: x += y). */
	CHK(cuStreamBeginCapture(a, CU_STREAM_CAPTURE_MODE_GLOBAL));
	CHK(simtest_fill(x, 1.0f, N, a));
	CHK(cuEventRecord(fork, a));
	CHK(cuStreamWaitEvent(b, fork, 0));
	CHK(cuStreamIsCapturing(b, &st));
	ck_assert_int_eq(st, CU_STREAM_CAPTURE_STATUS_ACTIVE);
	CHK(simtest_fill(y, 2.0f, N, b));
	CHK(cuEventRecord(join, b));
	CHK(cuStreamWaitEvent(a, join, 0));
	CHK(simtest_axpy(x, y, 1.0f, N, a));
	CHK(cuStreamEndCapture(a, &g));
	ck_assert_ptr_nonnull(g);
	CHK(cuStreamIsCapturing(b, &st));
	ck_assert_int_eq(st, CU_STREAM_CAPTURE_STATUS_NONE);
	CHK_ERR(cuStreamWaitEvent(c, join, 0), CUDA_ERROR_CAPTURED_EVENT);
	/* Nothing ran; the graph runs all three nodes. */
	CHK(cuCtxSynchronize());
	simtest_expect_floats(x, N, 0.0f);
	CHK(cuGraphInstantiateWithFlags(&e, g, 0));
	CHK(cuGraphLaunch(e, c));
	CHK(cuStreamSynchronize(c));
	simtest_expect_floats(x, N, 3.0f);
	simtest_expect_floats(y, N, 2.0f);
	CHK(cuGraphExecDestroy(e));
	CHK(cuGraphDestroy(g));

	/* b's work is never joined back. */
	CHK(cuStreamBeginCapture(a, CU_STREAM_CAPTURE_MODE_GLOBAL));
	CHK(cuEventRecord(fork, a));
	CHK(cuStreamWaitEvent(b, fork, 0));
	CHK(simtest_fill(y, 5.0f, N, b));
	CHK_ERR(cuStreamEndCapture(a, &g), CUDA_ERROR_STREAM_CAPTURE_UNJOINED);
	ck_assert_ptr_null(g);
	CHK(cuStreamIsCapturing(b, &st));
	ck_assert_int_eq(st, CU_STREAM_CAPTURE_STATUS_NONE);
	/* Joined before b's last work: still unjoined. */
	CHK(cuStreamBeginCapture(a, CU_STREAM_CAPTURE_MODE_GLOBAL));
	CHK(cuEventRecord(fork, a));
	CHK(cuStreamWaitEvent(b, fork, 0));
	CHK(cuEventRecord(join, b));
	CHK(cuStreamWaitEvent(a, join, 0));
	CHK(simtest_fill(y, 5.0f, N, b));
	CHK_ERR(cuStreamEndCapture(a, &g), CUDA_ERROR_STREAM_CAPTURE_UNJOINED);
	/* Joined through another forked stream that is joined in turn. */
	CHK(cuStreamBeginCapture(a, CU_STREAM_CAPTURE_MODE_GLOBAL));
	CHK(cuEventRecord(fork, a));
	CHK(cuStreamWaitEvent(b, fork, 0));
	CHK(cuStreamWaitEvent(c, fork, 0));
	CHK(simtest_fill(y, 7.0f, N, b));
	CHK(cuEventRecord(join, b));
	CHK(cuStreamWaitEvent(c, join, 0));
	CHK(cuEventRecord(join, c));
	CHK(cuStreamWaitEvent(a, join, 0));
	CHK(cuStreamEndCapture(a, &g));
	CHK(cuGraphDestroy(g));
	/* Joined back, then only waiting again: no node of b's is left unjoined. A later, smaller
	 * join of b (by c, which is joined in turn) does not undo the one that covers it all. */
	CHK(cuStreamBeginCapture(a, CU_STREAM_CAPTURE_MODE_GLOBAL));
	CHK(cuEventRecord(fork, a));
	CHK(cuStreamWaitEvent(b, fork, 0));
	CHK(cuEventRecord(outside, b));
	CHK(simtest_fill(y, 7.0f, N, b));
	CHK(cuEventRecord(join, b));
	CHK(cuStreamWaitEvent(a, join, 0));
	CHK(cuStreamWaitEvent(b, fork, 0));
	CHK(cuStreamWaitEvent(c, outside, 0));
	CHK(simtest_fill(x, 7.0f, N, c));
	CHK(cuEventRecord(join, c));
	CHK(cuStreamWaitEvent(a, join, 0));
	CHK(cuStreamEndCapture(a, &g));
	CHK(cuGraphDestroy(g));
	/* A wait on uncaptured work. */
	CHK(cuEventRecord(outside, c));
	CHK(cuStreamBeginCapture(a, CU_STREAM_CAPTURE_MODE_GLOBAL));
	CHK_ERR(cuStreamWaitEvent(a, outside, 0), CUDA_ERROR_STREAM_CAPTURE_ISOLATION);
	CHK_ERR(cuStreamEndCapture(a, &g), CUDA_ERROR_STREAM_CAPTURE_INVALIDATED);
	/* An end on the stream that joined. */
	CHK(cuStreamBeginCapture(a, CU_STREAM_CAPTURE_MODE_GLOBAL));
	CHK(cuEventRecord(fork, a));
	CHK(cuStreamWaitEvent(b, fork, 0));
	CHK_ERR(cuStreamEndCapture(b, &g), CUDA_ERROR_STREAM_CAPTURE_UNMATCHED);
	CHK(cuEventRecord(join, b));
	CHK(cuStreamWaitEvent(a, join, 0));
	CHK_ERR(cuStreamEndCapture(a, &g), CUDA_ERROR_STREAM_CAPTURE_INVALIDATED);
	/* None of the broken captures ran. */
	CHK(cuCtxSynchronize());
	simtest_expect_floats(y, N, 2.0f);
	CHK(cuStreamDestroy(a));
	CHK(cuStreamDestroy(b));
	CHK(cuStreamDestroy(c));
}
END_TEST

/* An allocation on another thread, in that thread's capture mode: its result. */
struct other_alloc {
	CUstreamCaptureMode mode;
	CUresult r;
};

static void *alloc_on_other_thread(void *arg)
{
	struct other_alloc *o = arg;
	CUdeviceptr p = 0;

	if (cuCtxSetCurrent(simtest_ctx) != CUDA_SUCCESS || cuThreadExchangeStreamCaptureMode(&o->mode) != CUDA_SUCCESS) {
		o->r = CUDA_ERROR_UNKNOWN;
		return NULL;
	}
	o->r = cuMemAlloc(&p, 4096);
	if (o->r == CUDA_SUCCESS)
		o->r = cuMemFree(p);
	return NULL;
}

static CUresult alloc_elsewhere(CUstreamCaptureMode mode)
{
	struct other_alloc o = {.mode = mode, .r = CUDA_ERROR_UNKNOWN};
	pthread_t t;

	ck_assert_int_eq(pthread_create(&t, NULL, alloc_on_other_thread, &o), 0);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	return o.r;
}

/* Ends a capture that must have survived, and frees its graph. */
static void end_valid(CUstream s)
{
	CUgraph g = NULL;
	CUstreamCaptureStatus st;

	CHK(cuStreamIsCapturing(s, &st));
	ck_assert_int_eq(st, CU_STREAM_CAPTURE_STATUS_ACTIVE);
	CHK(cuStreamEndCapture(s, &g));
	ck_assert_ptr_nonnull(g);
	CHK(cuGraphDestroy(g));
}

/* Ends a capture that a forbidden call invalidated. */
static void end_invalidated(CUstream s)
{
	CUgraph g = (CUgraph)&g;
	CUstreamCaptureStatus st;

	CHK(cuStreamIsCapturing(s, &st));
	ck_assert_int_eq(st, CU_STREAM_CAPTURE_STATUS_INVALIDATED);
	CHK_ERR(cuStreamEndCapture(s, &g), CUDA_ERROR_STREAM_CAPTURE_INVALIDATED);
	ck_assert_ptr_null(g);
}

/* The capture-mode rules for a potentially unsafe call (cuMemAlloc, cuMemFree), as
 * cuThreadExchangeStreamCaptureMode documents them: refused, and the capture that forbade it
 * invalidated, unless the calling thread or the capture is relaxed, or the capture is another
 * thread's and either side is thread-local. */
START_TEST(test_capture_mode_rules)
{
	CUstreamCaptureMode m;
	CUdeviceptr p, q;
	CUstream s;

	simtest_start();
	CHK(cuStreamCreate(&s, 0));
	/* Global capture, global thread: refused, and the capture is lost. */
	CHK(cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL));
	CHK_ERR(cuMemAlloc(&p, 4096), CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED);
	end_invalidated(s);
	/* The thread relaxed for the call (what a caching allocator does): allowed. */
	CHK(cuMemAlloc(&q, 4096));
	CHK(cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL));
	m = CU_STREAM_CAPTURE_MODE_RELAXED;
	CHK(cuThreadExchangeStreamCaptureMode(&m));
	ck_assert_int_eq(m, CU_STREAM_CAPTURE_MODE_GLOBAL);
	CHK(cuMemAlloc(&p, 4096));
	CHK(cuMemFree(p));
	CHK(cuThreadExchangeStreamCaptureMode(&m));
	ck_assert_int_eq(m, CU_STREAM_CAPTURE_MODE_RELAXED);
	CHK_ERR(cuMemFree(q), CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED);
	end_invalidated(s);
	CHK(cuMemFree(q));
	/* A relaxed capture forbids nothing. */
	CHK(cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_RELAXED));
	CHK(cuMemAlloc(&p, 4096));
	ck_assert_int_eq(alloc_elsewhere(CU_STREAM_CAPTURE_MODE_GLOBAL), CUDA_SUCCESS);
	end_valid(s);
	CHK(cuMemFree(p));
	/* A thread-local capture forbids its own thread only. */
	CHK(cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL));
	ck_assert_int_eq(alloc_elsewhere(CU_STREAM_CAPTURE_MODE_GLOBAL), CUDA_SUCCESS);
	end_valid(s);
	/* A global capture forbids other threads in global mode, not those in thread-local mode. */
	CHK(cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL));
	ck_assert_int_eq(alloc_elsewhere(CU_STREAM_CAPTURE_MODE_THREAD_LOCAL), CUDA_SUCCESS);
	end_valid(s);
	CHK(cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL));
	ck_assert_int_eq(alloc_elsewhere(CU_STREAM_CAPTURE_MODE_GLOBAL), CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED);
	end_invalidated(s);
	/* Bad modes are refused. */
	m = (CUstreamCaptureMode)7;
	CHK_ERR(cuThreadExchangeStreamCaptureMode(&m), CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuThreadExchangeStreamCaptureMode(NULL), CUDA_ERROR_INVALID_VALUE);
	/* After all that, allocation works. */
	CHK(cuMemAlloc(&p, 4096));
	CHK(cuMemFree(p));
	CHK(cuStreamDestroy(s));
}
END_TEST

/* A capture into an existing graph appends what it records after the nodes it depends on, which
 * must be distinct nodes of that graph, and its end gives back the same graph. */
START_TEST(test_capture_to_graph)
{
	CUdeviceptr d;
	CUgraph g, other, ended = NULL;
	CUgraphNode first, foreign, twice[2];
	CUgraphExec e;
	CUstream s;
	size_t n = 0;

	simtest_start();
	CHK(cuStreamCreate(&s, 0));
	CHK(cuMemAlloc(&d, N * sizeof(float)));
	CHK(cuGraphCreate(&g, 0));
	CHK(cuGraphCreate(&other, 0));
	CHK(cuGraphAddEmptyNode(&first, g, NULL, 0));
	CHK(cuGraphAddEmptyNode(&foreign, other, NULL, 0));
	CHK_ERR(cuStreamBeginCaptureToGraph(s, g, &foreign, NULL, 1, CU_STREAM_CAPTURE_MODE_GLOBAL), CUDA_ERROR_INVALID_VALUE);
	twice[0] = twice[1] = first;
	CHK_ERR(cuStreamBeginCaptureToGraph(s, g, twice, NULL, 2, CU_STREAM_CAPTURE_MODE_GLOBAL), CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuStreamBeginCaptureToGraph(s, g, NULL, NULL, 1, CU_STREAM_CAPTURE_MODE_GLOBAL), CUDA_ERROR_INVALID_VALUE);
	CHK(cuStreamBeginCaptureToGraph(s, g, &first, NULL, 1, CU_STREAM_CAPTURE_MODE_GLOBAL));
	CHK(simtest_fill(d, 6.0f, N, s));
	CHK(cuStreamEndCapture(s, &ended));
	ck_assert_ptr_eq(ended, g);
	CHK(cuGraphGetNodes(g, NULL, &n));
	ck_assert_uint_eq(n, 2);
	CHK(cuGraphInstantiate(&e, g, 0));
	CHK(cuGraphLaunch(e, s));
	CHK(cuStreamSynchronize(s));
	simtest_expect_floats(d, N, 6.0f);
	CHK(cuGraphExecDestroy(e));
	CHK(cuGraphDestroy(g));
	CHK(cuGraphDestroy(other));
	CHK(cuMemFree(d));
	CHK(cuStreamDestroy(s));
}
END_TEST

START_TEST(test_empty_graph)
{
	CUstream s;
	CUgraph g;
	CUgraphExec e;
	size_t count = 99;

	simtest_start();
	CHK(cuStreamCreate(&s, 0));
	CHK(cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_RELAXED));
	CHK(cuStreamEndCapture(s, &g));
	CHK(cuGraphGetNodes(g, NULL, &count));
	ck_assert_uint_eq(count, 0);
	CHK(cuGraphInstantiate(&e, g, 0));
	CHK(cuGraphLaunch(e, s));
	CHK(cuStreamSynchronize(s));
	CHK(cuGraphExecDestroy(e));
	CHK(cuGraphDestroy(g));
	CHK_ERR(cuGraphInstantiate(&e, NULL, 0), CUDA_ERROR_INVALID_HANDLE);
	CHK_ERR(cuGraphLaunch(NULL, s), CUDA_ERROR_INVALID_HANDLE);
}
END_TEST

/* ---- explicit graphs ---- */

static CUDA_KERNEL_NODE_PARAMS kernel_params(const char *name, void **args)
{
	CUDA_KERNEL_NODE_PARAMS p = {0};

	p.func = simtest_func(name);
	p.gridDimX = p.gridDimY = p.gridDimZ = 1;
	p.blockDimX = p.blockDimY = p.blockDimZ = 1;
	p.kernelParams = args;
	return p;
}

static CUDA_MEMCPY3D linear_copy(CUmemorytype dt, void *dh, CUdeviceptr dd, CUmemorytype st, const void *sh,
				 CUdeviceptr sd, size_t bytes)
{
	CUDA_MEMCPY3D c = {0};

	c.srcMemoryType = st;
	c.srcHost = sh;
	c.srcDevice = sd;
	c.dstMemoryType = dt;
	c.dstHost = dh;
	c.dstDevice = dd;
	c.WidthInBytes = bytes;
	c.Height = c.Depth = 1;
	return c;
}

static CUDA_MEMSET_NODE_PARAMS memset32(CUdeviceptr dst, float v, size_t n)
{
	CUDA_MEMSET_NODE_PARAMS m = {0};
	uint32_t bits;

	memcpy(&bits, &v, 4);
	m.dst = dst;
	m.value = bits;
	m.elementSize = 4;
	m.width = n;
	m.height = 1;
	return m;
}

/* memset y, upload x, then y += 2x, a child graph's y += x, and a download: every node in order of
 * its dependencies, every launch from the start. */
START_TEST(test_explicit_nodes_run_in_order)
{
	static float hx[N], out[N];
	CUdeviceptr x, y;
	uint64_t n = N;
	float two = 2.0f, one = 1.0f;
	void *a2[] = {&y, &x, &two, &n}, *a1[] = {&y, &x, &one, &n};
	CUgraph g, child;
	CUgraphExec e;
	CUgraphNode set, up, k, sub, down, empty, deps[2], nodes[8];
	CUDA_KERNEL_NODE_PARAMS kp;
	CUDA_MEMCPY3D cp;
	CUDA_MEMSET_NODE_PARAMS mp;
	CUstream s;
	size_t count = 0;

	simtest_start();
	CHK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
	CHK(cuMemAlloc(&x, sizeof(hx)));
	CHK(cuMemAlloc(&y, sizeof(hx)));
	for (int i = 0; i < N; i++)
		hx[i] = (float)(i % 7);
	CHK(cuGraphCreate(&child, 0));
	kp = kernel_params("mv_axpy", a1);
	CHK(cuGraphAddKernelNode(&k, child, NULL, 0, &kp));
	CHK(cuGraphCreate(&g, 0));
	mp = memset32(y, 5.0f, N);
	CHK(cuGraphAddMemsetNode(&set, g, NULL, 0, &mp, simtest_ctx));
	cp = linear_copy(CU_MEMORYTYPE_DEVICE, NULL, x, CU_MEMORYTYPE_HOST, hx, 0, sizeof(hx));
	CHK(cuGraphAddMemcpyNode(&up, g, NULL, 0, &cp, simtest_ctx));
	deps[0] = set, deps[1] = up;
	kp = kernel_params("mv_axpy", a2);
	CHK(cuGraphAddKernelNode(&k, g, deps, 2, &kp));
	CHK(cuGraphAddChildGraphNode(&sub, g, &k, 1, child));
	/* The child was cloned: destroying it changes nothing. */
	CHK(cuGraphDestroy(child));
	CHK(cuGraphAddEmptyNode(&empty, g, &sub, 1));
	cp = linear_copy(CU_MEMORYTYPE_HOST, out, 0, CU_MEMORYTYPE_DEVICE, NULL, y, sizeof(out));
	CHK(cuGraphAddMemcpyNode(&down, g, &empty, 1, &cp, simtest_ctx));
	CHK(cuGraphGetNodes(g, NULL, &count));
	ck_assert_uint_eq(count, 6);
	count = 8;
	CHK(cuGraphGetNodes(g, nodes, &count));
	ck_assert_ptr_eq(nodes[2], k);
	CHK(cuGraphInstantiate(&e, g, 0));
	for (int rep = 0; rep < 2; rep++) {
		memset(out, 0, sizeof(out));
		CHK(cuGraphLaunch(e, s));
		CHK(cuStreamSynchronize(s));
		for (int i = 0; i < N; i++)
			ck_assert_float_eq(out[i], 5.0f + 3.0f * (float)(i % 7));
	}
	CHK(cuGraphExecDestroy(e));
	CHK(cuGraphDestroy(g));
}
END_TEST

/* What the add calls refuse: a foreign or repeated dependency, bad parameters, an array copy. */
START_TEST(test_explicit_nodes_refused)
{
	CUdeviceptr x;
	uint64_t n = 16;
	float v = 1.0f;
	void *args[] = {&x, &v, &n};
	CUgraph g, h;
	CUgraphNode a, b, deps[2];
	CUDA_KERNEL_NODE_PARAMS kp;
	CUDA_MEMCPY3D cp;
	CUDA_MEMSET_NODE_PARAMS mp;

	simtest_start();
	CHK(cuMemAlloc(&x, 4096));
	CHK(cuGraphCreate(&g, 0));
	CHK(cuGraphCreate(&h, 0));
	CHK_ERR(cuGraphCreate(&g, 1), CUDA_ERROR_INVALID_VALUE);
	CHK(cuGraphAddEmptyNode(&a, g, NULL, 0));
	CHK(cuGraphAddEmptyNode(&b, h, NULL, 0));
	CHK_ERR(cuGraphAddEmptyNode(&b, g, &b, 1), CUDA_ERROR_INVALID_VALUE);
	deps[0] = deps[1] = a;
	CHK_ERR(cuGraphAddEmptyNode(&b, g, deps, 2), CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuGraphAddEmptyNode(&b, NULL, NULL, 0), CUDA_ERROR_INVALID_VALUE);
	kp = kernel_params("mv_fill", args);
	kp.blockDimX = 2048;
	CHK_ERR(cuGraphAddKernelNode(&b, g, NULL, 0, &kp), CUDA_ERROR_INVALID_VALUE);
	kp = kernel_params("mv_fill", NULL);
	CHK_ERR(cuGraphAddKernelNode(&b, g, NULL, 0, &kp), CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuGraphAddKernelNode(&b, g, NULL, 0, NULL), CUDA_ERROR_INVALID_VALUE);
	mp = memset32(x + 2, 1.0f, 4);
	CHK_ERR(cuGraphAddMemsetNode(&b, g, NULL, 0, &mp, simtest_ctx), CUDA_ERROR_INVALID_VALUE);
	mp = memset32(x, 1.0f, 4);
	mp.elementSize = 3;
	CHK_ERR(cuGraphAddMemsetNode(&b, g, NULL, 0, &mp, simtest_ctx), CUDA_ERROR_INVALID_VALUE);
	cp = linear_copy(CU_MEMORYTYPE_DEVICE, NULL, 0, CU_MEMORYTYPE_HOST, &v, 0, 4);
	CHK_ERR(cuGraphAddMemcpyNode(&b, g, NULL, 0, &cp, simtest_ctx), CUDA_ERROR_INVALID_VALUE);
	cp = linear_copy(CU_MEMORYTYPE_ARRAY, NULL, 0, CU_MEMORYTYPE_HOST, &v, 0, 4);
	CHK_ERR(cuGraphAddMemcpyNode(&b, g, NULL, 0, &cp, simtest_ctx), CUDA_ERROR_NOT_SUPPORTED);
	CHK_ERR(cuGraphAddChildGraphNode(&b, g, NULL, 0, g), CUDA_ERROR_INVALID_VALUE);
	CHK(cuGraphDestroy(g));
	CHK(cuGraphDestroy(h));
}
END_TEST

/* A node whose range is freed before the graph runs faults when it runs: sticky, nothing after it
 * runs. */
START_TEST(test_explicit_node_checked_when_run)
{
	CUdeviceptr x, y;
	uint64_t n = 1024;
	float v = 3.0f;
	void *args[] = {&y, &v, &n};
	CUgraph g;
	CUgraphExec e;
	CUgraphNode k, set;
	CUDA_KERNEL_NODE_PARAMS kp;
	CUDA_MEMSET_NODE_PARAMS mp;

	simtest_start();
	CHK(cuMemAlloc(&x, 4096));
	CHK(cuMemAlloc(&y, 4096));
	CHK(cuGraphCreate(&g, 0));
	kp = kernel_params("mv_fill", args);
	CHK(cuGraphAddKernelNode(&k, g, NULL, 0, &kp));
	mp = memset32(x, 9.0f, 1024);
	CHK(cuGraphAddMemsetNode(&set, g, &k, 1, &mp, simtest_ctx));
	CHK(cuGraphInstantiate(&e, g, 0));
	CHK(cuGraphLaunch(e, NULL));
	CHK(cuCtxSynchronize());
	simtest_expect_floats(y, 1024, 3.0f);
	simtest_expect_floats(x, 1024, 9.0f);
	CHK(cuMemFree(y));
	CHK(cuGraphLaunch(e, NULL));
	CHK_ERR(cuCtxSynchronize(), CUDA_ERROR_ILLEGAL_ADDRESS);
	CHK_ERR(cuMemsetD8(x, 0, 1), CUDA_ERROR_ILLEGAL_ADDRESS);
}
END_TEST

/* The graph's setters change later instantiations only; the exec's change that exec only; an update
 * takes a same-shaped graph's parameters and refuses another shape. */
START_TEST(test_set_params_and_update)
{
	CUdeviceptr x, y;
	uint64_t n = 256;
	float v1 = 1.0f, v2 = 2.0f, v3 = 3.0f;
	void *ax[] = {&x, &v1, &n}, *ay[] = {&y, &v2, &n}, *az[] = {&x, &v3, &n};
	CUgraph g, g2, g3;
	CUgraphExec e, e2;
	CUgraphNode k, k2, m, extra;
	CUDA_KERNEL_NODE_PARAMS kp;
	CUDA_MEMSET_NODE_PARAMS mp;
	CUgraphExecUpdateResultInfo info;

	simtest_start();
	CHK(cuMemAlloc(&x, 1024));
	CHK(cuMemAlloc(&y, 1024));
	CHK(cuGraphCreate(&g, 0));
	kp = kernel_params("mv_fill", ax);
	CHK(cuGraphAddKernelNode(&k, g, NULL, 0, &kp));
	mp = memset32(y, 7.0f, 256);
	CHK(cuGraphAddMemsetNode(&m, g, &k, 1, &mp, simtest_ctx));
	CHK(cuGraphInstantiate(&e, g, 0));
	kp = kernel_params("mv_fill", ay);
	CHK(cuGraphKernelNodeSetParams(k, &kp));
	mp = memset32(x, 8.0f, 256);
	CHK(cuGraphExecMemsetNodeSetParams(e, m, &mp, simtest_ctx));
	CHK(cuGraphLaunch(e, NULL));
	CHK(cuCtxSynchronize());
	simtest_expect_floats(x, 256, 8.0f); /* fill x with 1, then the exec's memset of x */
	CHK(cuGraphInstantiate(&e2, g, 0));
	CHK(cuGraphLaunch(e2, NULL));
	CHK(cuCtxSynchronize());
	simtest_expect_floats(y, 256, 7.0f); /* fill y with 2, then the graph's memset of y */
	kp = kernel_params("mv_fill", az);
	CHK(cuGraphExecKernelNodeSetParams(e, k, &kp));
	CHK_ERR(cuGraphExecKernelNodeSetParams(e, m, &kp), CUDA_ERROR_INVALID_VALUE);
	CHK(cuMemsetD32(y, 0, 256));
	mp = memset32(y, 4.0f, 128);
	CHK(cuGraphExecMemsetNodeSetParams(e, m, &mp, simtest_ctx));
	CHK(cuGraphLaunch(e, NULL));
	CHK(cuCtxSynchronize());
	simtest_expect_floats(x, 256, 3.0f);
	simtest_expect_floats(y, 128, 4.0f);

	/* Same shape: the exec takes g2's parameters. */
	CHK(cuGraphCreate(&g2, 0));
	kp = kernel_params("mv_fill", ay);
	CHK(cuGraphAddKernelNode(&k2, g2, NULL, 0, &kp));
	mp = memset32(x, 6.0f, 256);
	CHK(cuGraphAddMemsetNode(&m, g2, &k2, 1, &mp, simtest_ctx));
	CHK(cuGraphExecUpdate(e, g2, &info));
	ck_assert_int_eq(info.result, CU_GRAPH_EXEC_UPDATE_SUCCESS);
	CHK(cuGraphLaunch(e, NULL));
	CHK(cuCtxSynchronize());
	simtest_expect_floats(y, 256, 2.0f);
	simtest_expect_floats(x, 256, 6.0f);
	/* Another shape: refused, and the exec runs as before. */
	CHK(cuGraphCreate(&g3, 0));
	CHK(cuGraphAddEmptyNode(&extra, g3, NULL, 0));
	CHK(cuGraphAddKernelNode(&k2, g3, &extra, 1, &kp));
	CHK_ERR(cuGraphExecUpdate(e, g3, &info), CUDA_ERROR_GRAPH_EXEC_UPDATE_FAILURE);
	ck_assert_int_eq(info.result, CU_GRAPH_EXEC_UPDATE_ERROR_TOPOLOGY_CHANGED);
	CHK(cuGraphExecDestroy(e));
	CHK(cuGraphExecDestroy(e2));
	CHK(cuGraphDestroy(g));
	CHK(cuGraphDestroy(g2));
	CHK(cuGraphDestroy(g3));
}
END_TEST

/* ---- memory nodes ---- */

/* The node types of g, in the order they were added. */
static void expect_types(CUgraph g, const CUgraphNodeType *want, size_t n)
{
	CUgraphNode nodes[8];
	size_t count = 8;

	CHK(cuGraphGetNodes(g, nodes, &count));
	ck_assert_uint_eq(count, n);
	for (size_t i = 0; i < n; i++) {
		CUgraphNodeType t;
		CHK(cuGraphNodeGetType(nodes[i], &t));
		ck_assert_int_eq(t, want[i]);
	}
}

/* alloc, kernel, kernel, kernel, free captured: the allocation is an alloc node whose address is
 * fixed, backed only while the graph runs, and the result of every launch is exact. */
START_TEST(test_capture_alloc_and_free)
{
	static const CUgraphNodeType want[] = {CU_GRAPH_NODE_TYPE_MEM_ALLOC, CU_GRAPH_NODE_TYPE_KERNEL,
					       CU_GRAPH_NODE_TYPE_KERNEL, CU_GRAPH_NODE_TYPE_KERNEL,
					       CU_GRAPH_NODE_TYPE_MEM_FREE};
	CUstream s;
	CUdeviceptr x, y, t = 0, got = 0;
	CUgraph g;
	CUgraphExec e;
	CUgraphNode nodes[5];
	CUDA_MEM_ALLOC_NODE_PARAMS ap;
	size_t count = 5, before;
	static float hx[N], hy[N];

	simtest_start();
	CHK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
	for (int i = 0; i < N; i++)
		hx[i] = (float)(i % 7);
	CHK(cuMemAlloc(&x, sizeof(hx)));
	CHK(cuMemAlloc(&y, sizeof(hy)));
	CHK(cuMemcpyHtoD(x, hx, sizeof(hx)));
	CHK(cuMemsetD32(y, 0, N));
	before = simtest_free_bytes();
	CHK(cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL));
	CHK(cuMemAllocAsync(&t, sizeof(hx), s));
	ck_assert_uint_ne(t, 0);
	CHK(simtest_fill(t, 1.0f, N, s));
	CHK(simtest_axpy(t, x, 2.0f, N, s));
	CHK(simtest_axpy(y, t, 1.0f, N, s));
	CHK(cuMemFreeAsync(t, s));
	CHK(cuStreamEndCapture(s, &g));
	expect_types(g, want, 5);
	CHK(cuGraphGetNodes(g, nodes, &count));
	CHK(cuGraphMemAllocNodeGetParams(nodes[0], &ap));
	ck_assert_uint_eq(ap.dptr, t);
	ck_assert_uint_eq(ap.bytesize, sizeof(hx));
	ck_assert_int_eq(ap.poolProps.location.type, CU_MEM_LOCATION_TYPE_DEVICE);
	ck_assert_int_eq(ap.poolProps.location.id, 0);
	CHK(cuGraphMemFreeNodeGetParams(nodes[4], &got));
	ck_assert_uint_eq(got, t);
	CHK_ERR(cuGraphMemFreeNodeGetParams(nodes[0], &got), CUDA_ERROR_INVALID_VALUE);
	/* Capture charged nothing. */
	ck_assert_uint_eq(simtest_free_bytes(), before);

	CHK(cuGraphInstantiate(&e, g, 0));
	for (int k = 1; k <= 3; k++) {
		CHK(cuGraphLaunch(e, s));
		CHK(cuStreamSynchronize(s));
		CHK(cuMemcpyDtoH(hy, y, sizeof(hy)));
		for (int i = 0; i < N; i++)
			if (hy[i] != (float)k * (1.0f + 2.0f * hx[i]))
				ck_abort_msg("after %d launches, element %d is %g", k, i, hy[i]);
		ck_assert_uint_eq(simtest_free_bytes(), before);
	}
	/* Freed inside the graph, the range is not reachable after a launch. */
	CHK(simtest_fill(t, 1.0f, N, s));
	CHK_ERR(cuStreamSynchronize(s), CUDA_ERROR_ILLEGAL_ADDRESS);
}
END_TEST

/* An allocation the graph does not free outlives the launch, charged until it is freed; the exec
 * cannot be launched again until then. */
START_TEST(test_alloc_outlives_launch)
{
	CUstream s;
	CUdeviceptr t = 0;
	CUgraph g;
	CUgraphExec e;
	size_t before;

	simtest_start();
	CHK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
	before = simtest_free_bytes();
	CHK(cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL));
	CHK(cuMemAllocAsync(&t, 3 * 4096 + 8, s));
	CHK(simtest_fill(t, 5.0f, 2, s));
	CHK(cuStreamEndCapture(s, &g));
	CHK(cuGraphInstantiate(&e, g, 0));
	CHK(cuGraphLaunch(e, s));
	CHK(cuStreamSynchronize(s));
	simtest_expect_floats(t, 2, 5.0f);
	ck_assert_uint_eq(simtest_free_bytes(), before - 4 * 4096);
	CHK_ERR(cuGraphLaunch(e, s), CUDA_ERROR_INVALID_VALUE);
	CHK(cuMemFreeAsync(t, s));
	CHK_ERR(cuMemFreeAsync(t, s), CUDA_ERROR_INVALID_VALUE);
	ck_assert_uint_eq(simtest_free_bytes(), before);
	CHK(cuGraphLaunch(e, s));
	CHK(cuStreamSynchronize(s));
	simtest_expect_floats(t, 2, 5.0f);
	CHK(cuMemFree(t));
	ck_assert_uint_eq(simtest_free_bytes(), before);
	CHK(cuGraphExecDestroy(e));
	CHK(cuGraphDestroy(g));
	CHK(simtest_fill(t, 1.0f, 2, s));
	CHK_ERR(cuStreamSynchronize(s), CUDA_ERROR_ILLEGAL_ADDRESS);
}
END_TEST

static CUDA_MEM_ALLOC_NODE_PARAMS alloc_params(size_t bytes)
{
	CUDA_MEM_ALLOC_NODE_PARAMS p;

	memset(&p, 0, sizeof(p));
	p.poolProps.allocType = CU_MEM_ALLOCATION_TYPE_PINNED;
	p.poolProps.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
	p.bytesize = bytes;
	return p;
}

/* Explicit memory nodes: what is refused, and an address untouchable before any launch. */
START_TEST(test_explicit_memory_nodes)
{
	CUdeviceptr d;
	CUgraph g, parent;
	CUgraphExec e;
	CUgraphNode a, f, c;
	CUDA_MEM_ALLOC_NODE_PARAMS p = alloc_params(4096), bad;
	size_t total, before;

	simtest_start();
	CHK(cuMemAlloc(&d, 4096));
	CHK(cuGraphCreate(&g, 0));
	CHK(cuGraphCreate(&parent, 0));
	bad = p;
	bad.bytesize = 0;
	CHK_ERR(cuGraphAddMemAllocNode(&a, g, NULL, 0, &bad), CUDA_ERROR_INVALID_VALUE);
	bad = p;
	bad.poolProps.location.id = 5;
	CHK_ERR(cuGraphAddMemAllocNode(&a, g, NULL, 0, &bad), CUDA_ERROR_INVALID_VALUE);
	/* Only what an alloc node gave can be freed by a free node. */
	CHK_ERR(cuGraphAddMemFreeNode(&f, g, NULL, 0, d), CUDA_ERROR_INVALID_VALUE);
	CHK(cuGraphAddMemAllocNode(&a, g, NULL, 0, &p));
	ck_assert_uint_ne(p.dptr, 0);
	CHK(cuGraphAddMemFreeNode(&f, g, &a, 1, p.dptr));
	CHK_ERR(cuGraphAddChildGraphNode(&c, parent, NULL, 0, g), CUDA_ERROR_NOT_SUPPORTED);
	/* More than the device holds: refused at launch, with nothing charged. */
	CHK(cuMemGetInfo(&before, &total));
	p = alloc_params(total + 4096);
	CHK(cuGraphAddMemAllocNode(&a, parent, NULL, 0, &p));
	CHK(cuGraphInstantiate(&e, parent, 0));
	CHK_ERR(cuGraphLaunch(e, NULL), CUDA_ERROR_OUT_OF_MEMORY);
	ck_assert_uint_eq(simtest_free_bytes(), before);
	/* Never launched, the address has no memory behind it. */
	CHK(simtest_fill(p.dptr, 1.0f, 4, NULL));
	CHK_ERR(cuCtxSynchronize(), CUDA_ERROR_ILLEGAL_ADDRESS);
}
END_TEST

static Suite *graph_suite(void)
{
	Suite *s = suite_create("simcuda_graph");
	TCase *tc = simtest_tcase(s, "capture", 10);

	tcase_add_test(tc, test_capture_and_replay);
	tcase_add_test(tc, test_capture_refuses_other_work);
	tcase_add_test(tc, test_capture_records_copies_and_memsets);
	tcase_add_test(tc, test_capture_fork_join);
	tcase_add_test(tc, test_capture_mode_rules);
	tcase_add_test(tc, test_capture_to_graph);
	tcase_add_test(tc, test_empty_graph);
	tcase_add_test(tc, test_explicit_nodes_run_in_order);
	tcase_add_test(tc, test_explicit_nodes_refused);
	tcase_add_test(tc, test_explicit_node_checked_when_run);
	tcase_add_test(tc, test_set_params_and_update);
	tcase_add_test(tc, test_capture_alloc_and_free);
	tcase_add_test(tc, test_alloc_outlives_launch);
	tcase_add_test(tc, test_explicit_memory_nodes);
	return s;
}

int main(void)
{
	return simtest_run(graph_suite());
}
