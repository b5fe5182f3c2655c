/* The simulated driver's stream capture and graphs: captured launches run only when the graph is
 * launched, as many times as it is, and what cannot be captured is refused. */
#include "config.h"

#include "tests/unit/simtest.h"

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
	CHK_ERR(cuMemcpyHtoDAsync(d, h, sizeof(h), s), CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED);
	CHK_ERR(cuMemcpyDtoHAsync(h, d, sizeof(h), s), CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED);
	CHK_ERR(cuMemcpyDtoDAsync(d, d, 16, s), CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED);
	CHK_ERR(cuMemsetD32Async(d, 1, N, s), CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED);
	CHK_ERR(cuEventRecord(ev, s), CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED);
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

static Suite *graph_suite(void)
{
	Suite *s = suite_create("simcuda_graph");
	TCase *tc = simtest_tcase(s, "capture", 10);

	tcase_add_test(tc, test_capture_and_replay);
	tcase_add_test(tc, test_capture_refuses_other_work);
	tcase_add_test(tc, test_empty_graph);
	return s;
}

int main(void)
{
	return simtest_run(graph_suite());
}
