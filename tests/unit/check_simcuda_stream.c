/* The simulated driver's streams and events: real asynchrony, ordering by events, the legacy stream,
 * host functions, flags and priorities, and the per-thread default stream entry points. */
#include "config.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include "tests/unit/simtest.h"

/* The per-thread-default-stream entry points, which cuda.h declares only when that mode is chosen. */
CUresult cuMemcpyHtoDAsync_v2_ptsz(CUdeviceptr dst, const void *src, size_t bytes, CUstream s);
CUresult cuMemcpyDtoHAsync_v2_ptsz(void *dst, CUdeviceptr src, size_t bytes, CUstream s);
CUresult cuLaunchKernel_ptsz(CUfunction f, unsigned int gx, unsigned int gy, unsigned int gz, unsigned int bx,
			     unsigned int by, unsigned int bz, unsigned int shmem, CUstream s, void **params,
			     void **extra);
CUresult cuStreamSynchronize_ptsz(CUstream s);
CUresult cuStreamQuery_ptsz(CUstream s);
CUresult cuLaunchHostFunc_ptsz(CUstream s, CUhostFn fn, void *data);
CUresult cuMemsetD32Async_ptsz(CUdeviceptr p, unsigned int v, size_t n, CUstream s);

#define HOLD "SIMCUDA_DELAY_KERNEL_US=200000"
#define N 4096

/* A device buffer of N floats, all set to v by a copy (kernels and memsets are held back). */
static CUdeviceptr buffer_of(float v)
{
	static float h[N];
	CUdeviceptr p;

	for (int i = 0; i < N; i++)
		h[i] = v;
	CHK(cuMemAlloc(&p, N * sizeof(float)));
	CHK(cuMemcpyHtoD(p, h, sizeof(h)));
	return p;
}

START_TEST(test_unsynchronised_reads_old_data)
{
	CUstream a, b;
	CUdeviceptr p;
	static float h[N];

	simtest_start(HOLD);
	CHK(cuStreamCreate(&a, 0));
	CHK(cuStreamCreate(&b, 0));
	p = buffer_of(1.0f);
	/* Nothing orders b after a: the copy overtakes the held kernel. */
	CHK(simtest_fill(p, 2.0f, N, a));
	CHK(cuMemcpyDtoHAsync(h, p, sizeof(h), b));
	CHK(cuStreamSynchronize(b));
	simtest_expect_host(h, N, 1.0f);
	CHK(cuStreamSynchronize(a));
	simtest_expect_floats(p, N, 2.0f);
}
END_TEST

START_TEST(test_event_orders_streams)
{
	CUstream a, b;
	CUevent e;
	CUdeviceptr p;
	static float h[N];

	simtest_start(HOLD);
	CHK(cuStreamCreate(&a, 0));
	CHK(cuStreamCreate(&b, 0));
	CHK(cuEventCreate(&e, CU_EVENT_DISABLE_TIMING));
	p = buffer_of(1.0f);
	CHK(simtest_fill(p, 3.0f, N, a));
	CHK(cuEventRecord(e, a));
	CHK(cuStreamWaitEvent(b, e, 0));
	CHK(cuMemcpyDtoHAsync(h, p, sizeof(h), b));
	CHK(cuStreamSynchronize(b));
	simtest_expect_host(h, N, 3.0f);
	/* Waiting on b was enough: a had to finish first. */
	CHK(cuStreamQuery(a));
	CHK(cuEventQuery(e));
	CHK_ERR(cuStreamWaitEvent(b, e, 0x10), CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuStreamWaitEvent(b, NULL, 0), CUDA_ERROR_INVALID_HANDLE);
}
END_TEST

START_TEST(test_query_not_ready_while_held)
{
	CUstream a;
	CUevent e, never;
	CUdeviceptr p;

	simtest_start(HOLD);
	CHK(cuStreamCreate(&a, 0));
	CHK(cuEventCreate(&e, 0));
	CHK(cuEventCreate(&never, 0));
	p = buffer_of(1.0f);
	CHK(cuStreamQuery(a));
	CHK(simtest_fill(p, 2.0f, N, a));
	CHK(cuEventRecord(e, a));
	CHK_ERR(cuStreamQuery(a), CUDA_ERROR_NOT_READY);
	CHK_ERR(cuEventQuery(e), CUDA_ERROR_NOT_READY);
	/* An event never recorded has nothing to wait for. */
	CHK(cuEventQuery(never));
	CHK(cuEventSynchronize(never));
	CHK(cuEventSynchronize(e));
	CHK(cuEventQuery(e));
	CHK(cuStreamQuery(a));
	simtest_expect_floats(p, N, 2.0f);
}
END_TEST

START_TEST(test_legacy_waits_for_blocking)
{
	CUstream blocking;
	CUdeviceptr p;
	static float h[N];

	simtest_start(HOLD);
	CHK(cuStreamCreate(&blocking, 0));
	p = buffer_of(1.0f);
	CHK(simtest_fill(p, 2.0f, N, blocking));
	CHK(cuMemcpyDtoHAsync(h, p, sizeof(h), NULL));
	CHK(cuStreamSynchronize(NULL));
	simtest_expect_host(h, N, 2.0f);
}
END_TEST

START_TEST(test_blocking_waits_for_legacy)
{
	CUstream blocking;
	CUdeviceptr p;
	static float h[N];

	simtest_start(HOLD);
	CHK(cuStreamCreate(&blocking, 0));
	p = buffer_of(1.0f);
	CHK(simtest_fill(p, 2.0f, N, NULL));
	CHK(cuMemcpyDtoHAsync(h, p, sizeof(h), blocking));
	CHK(cuStreamSynchronize(blocking));
	simtest_expect_host(h, N, 2.0f);
}
END_TEST

START_TEST(test_non_blocking_not_ordered_with_legacy)
{
	CUstream nb;
	CUdeviceptr p;
	static float h[N];

	simtest_start(HOLD);
	CHK(cuStreamCreate(&nb, CU_STREAM_NON_BLOCKING));
	p = buffer_of(1.0f);
	/* Work on a non-blocking stream does not hold back the legacy stream... */
	CHK(simtest_fill(p, 2.0f, N, nb));
	CHK(cuMemcpyDtoHAsync(h, p, sizeof(h), NULL));
	CHK(cuStreamSynchronize(NULL));
	simtest_expect_host(h, N, 1.0f);
	CHK(cuCtxSynchronize());
	/* ...nor does the legacy stream hold it back. */
	CHK(simtest_fill(p, 3.0f, N, NULL));
	CHK(cuMemcpyDtoHAsync(h, p, sizeof(h), nb));
	CHK(cuStreamSynchronize(nb));
	simtest_expect_host(h, N, 2.0f);
	CHK(cuCtxSynchronize());
	simtest_expect_floats(p, N, 3.0f);
}
END_TEST

struct hostfn_probe {
	const float *watch;
	float seen;
	int order;
};

static atomic_int hostfn_counter;

static void CUDA_CB probe(void *arg)
{
	struct hostfn_probe *pr = arg;

	pr->seen = pr->watch[N - 1];
	pr->order = atomic_fetch_add(&hostfn_counter, 1) + 1;
}

START_TEST(test_host_func_in_stream_order)
{
	CUstream a;
	float *pinned;
	CUdeviceptr d;
	struct hostfn_probe before, after;

	simtest_start(HOLD);
	CHK(cuStreamCreate(&a, 0));
	CHK(cuMemHostAlloc((void **)&pinned, N * sizeof(float), CU_MEMHOSTALLOC_DEVICEMAP));
	for (int i = 0; i < N; i++)
		pinned[i] = 0.0f;
	CHK(cuMemHostGetDevicePointer(&d, pinned, 0));
	before = (struct hostfn_probe){.watch = pinned, .seen = -1.0f};
	after = (struct hostfn_probe){.watch = pinned, .seen = -1.0f};
	CHK(cuLaunchHostFunc(a, probe, &before));
	CHK(simtest_fill(d, 5.0f, N, a));
	CHK(cuLaunchHostFunc(a, probe, &after));
	CHK(cuStreamSynchronize(a));
	ck_assert_float_eq(before.seen, 0.0f);
	ck_assert_float_eq(after.seen, 5.0f);
	ck_assert_int_eq(before.order, 1);
	ck_assert_int_eq(after.order, 2);
	CHK_ERR(cuLaunchHostFunc(a, NULL, NULL), CUDA_ERROR_INVALID_VALUE);
}
END_TEST

START_TEST(test_flags_and_priorities)
{
	CUstream s;
	unsigned flags = 99;
	int least = 99, greatest = 99, prio = 99;

	simtest_start();
	CHK(cuCtxGetStreamPriorityRange(&least, &greatest));
	ck_assert_int_eq(least, 0);
	ck_assert_int_eq(greatest, -5);

	CHK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
	CHK(cuStreamGetFlags(s, &flags));
	ck_assert_uint_eq(flags, CU_STREAM_NON_BLOCKING);
	CHK(cuStreamGetPriority(s, &prio));
	ck_assert_int_eq(prio, 0);
	CHK(cuStreamDestroy(s));

	CHK(cuStreamCreateWithPriority(&s, 0, -3));
	CHK(cuStreamGetPriority(s, &prio));
	ck_assert_int_eq(prio, -3);
	CHK(cuStreamGetFlags(s, &flags));
	ck_assert_uint_eq(flags, 0);
	CHK(cuStreamDestroy(s));
	/* Out of range priorities are clamped to the range. */
	CHK(cuStreamCreateWithPriority(&s, 0, -100));
	CHK(cuStreamGetPriority(s, &prio));
	ck_assert_int_eq(prio, greatest);
	CHK(cuStreamDestroy(s));
	CHK(cuStreamCreateWithPriority(&s, CU_STREAM_NON_BLOCKING, 7));
	CHK(cuStreamGetPriority(s, &prio));
	ck_assert_int_eq(prio, least);
	CHK(cuStreamDestroy(s));

	CHK_ERR(cuStreamCreate(&s, 0x4), CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuStreamCreate(NULL, 0), CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuStreamDestroy(NULL), CUDA_ERROR_INVALID_HANDLE);
	CHK_ERR(cuStreamDestroy(CU_STREAM_LEGACY), CUDA_ERROR_INVALID_HANDLE);
	CHK(cuStreamGetFlags(NULL, &flags));
	ck_assert_uint_eq(flags, 0);
}
END_TEST

START_TEST(test_destroy_lets_queued_work_finish)
{
	CUstream s;
	CUdeviceptr p;

	simtest_start(HOLD);
	CHK(cuStreamCreate(&s, 0));
	p = buffer_of(1.0f);
	CHK(simtest_fill(p, 4.0f, N, s));
	CHK(cuStreamDestroy(s));
	CHK_ERR(cuStreamQuery(s), CUDA_ERROR_INVALID_HANDLE);
	CHK_ERR(cuStreamDestroy(s), CUDA_ERROR_INVALID_HANDLE);
	{
		/* Nothing more can be recorded on it, as on a real driver. */
		CUevent e;
		CHK(cuEventCreate(&e, 0));
		CHK_ERR(cuEventRecord(e, s), CUDA_ERROR_INVALID_HANDLE);
		CHK(cuEventDestroy(e));
	}
	CHK(cuCtxSynchronize());
	simtest_expect_floats(p, N, 4.0f);
}
END_TEST

START_TEST(test_events)
{
	CUstream a;
	CUevent start, end, untimed, unrecorded;
	CUdeviceptr p;
	float ms = -1.0f;

	simtest_start(HOLD);
	CHK(cuStreamCreate(&a, 0));
	CHK(cuEventCreate(&start, CU_EVENT_DEFAULT));
	CHK(cuEventCreate(&end, CU_EVENT_BLOCKING_SYNC));
	CHK(cuEventCreate(&untimed, CU_EVENT_DISABLE_TIMING));
	CHK(cuEventCreate(&unrecorded, 0));
	CHK_ERR(cuEventCreate(&unrecorded, 0x100), CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuEventCreate(NULL, 0), CUDA_ERROR_INVALID_VALUE);
	p = buffer_of(1.0f);

	CHK(cuEventRecord(start, a));
	CHK(simtest_fill(p, 2.0f, N, a));
	CHK(cuEventRecord(end, a));
	CHK(cuEventRecord(untimed, a));
	/* Not done yet. */
	CHK_ERR(cuEventElapsedTime(&ms, start, end), CUDA_ERROR_NOT_READY);
	CHK(cuEventSynchronize(end));
	CHK(cuEventQuery(end));
	CHK(cuEventElapsedTime(&ms, start, end));
	ck_assert_float_ge(ms, 0.0f);
	/* The kernel took modeled time, so the end is strictly later. */
	ck_assert_float_gt(ms, 0.0f);
	CHK(cuEventElapsedTime(&ms, end, start));
	ck_assert_float_le(ms, 0.0f);
	CHK_ERR(cuEventElapsedTime(&ms, start, untimed), CUDA_ERROR_INVALID_HANDLE);
	CHK_ERR(cuEventElapsedTime(&ms, untimed, end), CUDA_ERROR_INVALID_HANDLE);
	CHK_ERR(cuEventElapsedTime(&ms, start, unrecorded), CUDA_ERROR_INVALID_HANDLE);
	CHK_ERR(cuEventElapsedTime(NULL, start, end), CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuEventRecordWithFlags(start, a, 0x80), CUDA_ERROR_INVALID_VALUE);
	CHK(cuEventRecordWithFlags(start, a, 0));
	CHK_ERR(cuEventRecord(NULL, a), CUDA_ERROR_INVALID_HANDLE);
	CHK(cuEventDestroy(start));
	CHK(cuEventDestroy(end));
	CHK(cuEventDestroy(untimed));
	CHK(cuEventDestroy(unrecorded));
	CHK_ERR(cuEventDestroy(NULL), CUDA_ERROR_INVALID_HANDLE);
}
END_TEST

START_TEST(test_per_thread_default_stream)
{
	CUdeviceptr y, x;
	static float hx[N], hy[N];
	float a = 2.0f;
	uint64_t n = N;
	void *args[] = {&y, &x, &a, &n};
	CUfunction axpy;

	simtest_start(HOLD);
	axpy = simtest_func("mv_axpy");
	CHK(cuMemAlloc(&y, sizeof(hy)));
	CHK(cuMemAlloc(&x, sizeof(hx)));
	for (int i = 0; i < N; i++) {
		hx[i] = (float)i;
		hy[i] = 1.0f;
	}
	CHK(cuMemcpyHtoDAsync_v2_ptsz(x, hx, sizeof(hx), NULL));
	CHK(cuMemcpyHtoDAsync_v2_ptsz(y, hy, sizeof(hy), NULL));
	CHK(cuLaunchKernel_ptsz(axpy, 1, 1, 1, 1, 1, 1, 0, NULL, args, NULL));
	/* NULL here is this thread's own stream, not the legacy one, which has nothing queued. */
	CHK_ERR(cuStreamQuery_ptsz(NULL), CUDA_ERROR_NOT_READY);
	CHK(cuStreamQuery(CU_STREAM_LEGACY));
	CHK(cuMemcpyDtoHAsync_v2_ptsz(hy, y, sizeof(hy), NULL));
	CHK(cuStreamSynchronize_ptsz(NULL));
	for (int i = 0; i < N; i++)
		if (hy[i] != 1.0f + 2.0f * (float)i)
			ck_abort_msg("element %d is %g", i, hy[i]);
	/* CU_STREAM_PER_THREAD names the same stream through the ordinary entry points. */
	CHK(cuLaunchKernel(axpy, 1, 1, 1, 1, 1, 1, 0, CU_STREAM_PER_THREAD, args, NULL));
	CHK_ERR(cuStreamQuery_ptsz(NULL), CUDA_ERROR_NOT_READY);
	CHK(cuStreamSynchronize(CU_STREAM_PER_THREAD));
	CHK(cuStreamQuery_ptsz(NULL));
	CHK(cuMemcpyDtoH(hy, y, sizeof(hy)));
	for (int i = 0; i < N; i++)
		if (hy[i] != 1.0f + 4.0f * (float)i)
			ck_abort_msg("element %d is %g after the second launch", i, hy[i]);
}
END_TEST

/* A host function that holds its stream until the test lets it go. */
static atomic_int gate;

static void CUDA_CB hold_gate(void *arg)
{
	(void)arg;
	while (!atomic_load(&gate))
		sched_yield();
}

struct other_thread {
	CUdeviceptr p;
	CUresult r;
};

/* Another thread's per-thread stream: set p to 5.0f there and wait for it. */
static void *other_per_thread(void *arg)
{
	struct other_thread *o = arg;

	o->r = cuCtxSetCurrent(simtest_ctx);
	if (o->r == CUDA_SUCCESS)
		o->r = cuMemsetD32Async_ptsz(o->p, 0x40a00000u, N, NULL);
	if (o->r == CUDA_SUCCESS)
		o->r = cuStreamSynchronize_ptsz(NULL);
	return NULL;
}

/* The per-thread default stream is a blocking stream of its thread's own: the legacy stream waits
 * for it, and it is not ordered with any other thread's per-thread stream. */
START_TEST(test_per_thread_streams_apart)
{
	struct other_thread o;
	pthread_t t;
	CUdeviceptr p = 0;

	simtest_start();
	p = buffer_of(1.0f);
	o.p = buffer_of(1.0f);
	o.r = CUDA_ERROR_UNKNOWN;
	atomic_store(&gate, 0);
	CHK(cuLaunchHostFunc_ptsz(NULL, hold_gate, NULL));
	/* The other thread's stream finishes while this thread's is held (else this waits forever and
	 * the case times out). */
	ck_assert_int_eq(pthread_create(&t, NULL, other_per_thread, &o), 0);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	CHK(o.r);
	/* The legacy stream waits for this thread's per-thread stream. */
	CHK(cuMemsetD32Async(p, 0x40000000u, N, CU_STREAM_LEGACY));
	CHK_ERR(cuStreamQuery(CU_STREAM_LEGACY), CUDA_ERROR_NOT_READY);
	CHK_ERR(cuStreamQuery_ptsz(NULL), CUDA_ERROR_NOT_READY);
	atomic_store(&gate, 1);
	CHK(cuStreamSynchronize(CU_STREAM_LEGACY));
	CHK(cuStreamQuery_ptsz(NULL));
	simtest_expect_floats(p, N, 2.0f);
	simtest_expect_floats(o.p, N, 5.0f);
	/* And the per-thread stream waits for the legacy one. */
	atomic_store(&gate, 0);
	CHK(cuLaunchHostFunc(CU_STREAM_LEGACY, hold_gate, NULL));
	CHK(cuMemsetD32Async_ptsz(p, 0x40400000u, N, NULL));
	CHK_ERR(cuStreamQuery_ptsz(NULL), CUDA_ERROR_NOT_READY);
	atomic_store(&gate, 1);
	CHK(cuStreamSynchronize_ptsz(NULL));
	simtest_expect_floats(p, N, 3.0f);
	/* It cannot be destroyed. */
	CHK_ERR(cuStreamDestroy(CU_STREAM_PER_THREAD), CUDA_ERROR_INVALID_HANDLE);
}
END_TEST

static Suite *stream_suite(void)
{
	Suite *s = suite_create("simcuda_stream");
	TCase *tc = simtest_tcase(s, "ordering", 10);

	tcase_add_test(tc, test_unsynchronised_reads_old_data);
	tcase_add_test(tc, test_event_orders_streams);
	tcase_add_test(tc, test_query_not_ready_while_held);
	tcase_add_test(tc, test_legacy_waits_for_blocking);
	tcase_add_test(tc, test_blocking_waits_for_legacy);
	tcase_add_test(tc, test_non_blocking_not_ordered_with_legacy);
	tcase_add_test(tc, test_host_func_in_stream_order);
	tc = simtest_tcase(s, "objects", 10);
	tcase_add_test(tc, test_flags_and_priorities);
	tcase_add_test(tc, test_destroy_lets_queued_work_finish);
	tcase_add_test(tc, test_events);
	tcase_add_test(tc, test_per_thread_default_stream);
	tcase_add_test(tc, test_per_thread_streams_apart);
	return s;
}

int main(void)
{
	return simtest_run(stream_suite());
}
