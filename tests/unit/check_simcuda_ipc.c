/* The simulated driver's interprocess memory and event handles, between two real processes: the
 * importer sees the exporter's bytes and its writes reach the exporter, a record in one process
 * orders work in the other; what the real driver refuses is refused. */
#include "config.h"

#include <sys/wait.h>
#include <unistd.h>

#include "tests/unit/simtest.h"

#define N 4096

/* Exit codes of the importing child, each naming the step that went wrong. */
enum { IMP_OK, IMP_READ, IMP_OPEN, IMP_BYTES, IMP_WRITE, IMP_CLOSE, IMP_STALE, IMP_INIT };

static int read_all(int fd, void *buf, size_t n)
{
	char *p = buf;

	while (n > 0) {
		ssize_t k = read(fd, p, n);
		if (k <= 0)
			return -1;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/* The importer: opens the handle twice (one mapping, counted), checks the bytes, doubles them, says
 * so, then waits for a second handle that names a freed allocation. */
static int importer(int in, int out)
{
	static float h[N];
	CUipcMemHandle hd, stale;
	CUdeviceptr p, q;
	char done = 'w';

	simtest_start();
	if (read_all(in, &hd, sizeof(hd)) != 0)
		return IMP_READ;
	if (cuIpcOpenMemHandle(&p, hd, CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS) != CUDA_SUCCESS ||
	    cuIpcOpenMemHandle(&q, hd, CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS) != CUDA_SUCCESS || p != q)
		return IMP_OPEN;
	if (cuMemcpyDtoH(h, p, sizeof(h)) != CUDA_SUCCESS)
		return IMP_BYTES;
	for (int i = 0; i < N; i++)
		if (h[i] != (float)i)
			return IMP_BYTES;
	if (simtest_axpy(p, p, 1.0f, N, NULL) != CUDA_SUCCESS || cuCtxSynchronize() != CUDA_SUCCESS)
		return IMP_WRITE;
	if (cuIpcCloseMemHandle(p) != CUDA_SUCCESS || cuIpcCloseMemHandle(p) != CUDA_SUCCESS ||
	    cuIpcCloseMemHandle(p) != CUDA_ERROR_INVALID_VALUE)
		return IMP_CLOSE;
	if (write(out, &done, 1) != 1 || read_all(in, &stale, sizeof(stale)) != 0)
		return IMP_READ;
	if (cuIpcOpenMemHandle(&p, stale, CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS) != CUDA_ERROR_INVALID_HANDLE)
		return IMP_STALE;
	return IMP_OK;
}

START_TEST(test_ipc_across_processes)
{
	static float h[N];
	int to[2], from[2], status;
	CUdeviceptr x, y;
	CUipcMemHandle hd, again;
	char done;
	pid_t pid;

	ck_assert_int_eq(pipe(to), 0);
	ck_assert_int_eq(pipe(from), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(importer(to[0], from[1]));
	/* The child's ends: a child that dies early ends the parent's reads. */
	close(to[0]);
	close(from[1]);
	simtest_start();
	for (int i = 0; i < N; i++)
		h[i] = (float)i;
	CHK(cuMemAlloc(&x, sizeof(h)));
	CHK(cuMemAlloc(&y, sizeof(h)));
	CHK(cuMemcpyHtoD(x, h, sizeof(h)));
	CHK(cuIpcGetMemHandle(&hd, x));
	/* The same allocation gives the same handle; the exporter cannot open its own. */
	CHK(cuIpcGetMemHandle(&again, x));
	ck_assert_mem_eq(&hd, &again, sizeof(hd));
	CHK_ERR(cuIpcOpenMemHandle(&y, hd, CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS), CUDA_ERROR_INVALID_CONTEXT);
	/* Exporting moved the bytes, not changed them, and the device still uses them. */
	simtest_expect_floats(x + sizeof(float), 1, 1.0f);
	ck_assert_int_eq(write(to[1], &hd, sizeof(hd)), sizeof(hd));
	ck_assert_int_eq(read_all(from[0], &done, 1), 0);
	CHK(cuMemcpyDtoH(h, x, sizeof(h)));
	for (int i = 0; i < N; i++)
		ck_assert_float_eq(h[i], 2.0f * (float)i);
	/* A freed allocation's handle opens nothing. */
	CHK(cuIpcGetMemHandle(&hd, y));
	CHK(cuMemFree(y));
	ck_assert_int_eq(write(to[1], &hd, sizeof(hd)), sizeof(hd));
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), IMP_OK);
	CHK(cuMemFree(x));
}
END_TEST

/* What cuIpcGetMemHandle and cuIpcOpenMemHandle refuse. */
START_TEST(test_ipc_refused)
{
	CUipcMemHandle hd;
	CUmemAllocationProp prop = simtest_prop(0);
	CUmemGenericAllocationHandle ph;
	CUdeviceptr x, va, p;
	size_t gran;

	simtest_start();
	CHK(cuMemAlloc(&x, 8192));
	CHK_ERR(cuIpcGetMemHandle(NULL, x), CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuIpcGetMemHandle(&hd, x + 4096), CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuIpcGetMemHandle(&hd, 0), CUDA_ERROR_INVALID_VALUE);
	/* VMM memory has no legacy IPC handle. */
	CHK(cuMemGetAllocationGranularity(&gran, &prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM));
	CHK(cuMemAddressReserve(&va, gran, 0, 0, 0));
	CHK(cuMemCreate(&ph, gran, &prop, 0));
	CHK(cuMemMap(va, gran, 0, ph, 0));
	CHK_ERR(cuIpcGetMemHandle(&hd, va), CUDA_ERROR_INVALID_VALUE);
	CHK(cuIpcGetMemHandle(&hd, x));
	CHK_ERR(cuIpcOpenMemHandle(&p, hd, 0), CUDA_ERROR_INVALID_VALUE);
	memset(&hd, 0x5a, sizeof(hd));
	CHK_ERR(cuIpcOpenMemHandle(&p, hd, CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS), CUDA_ERROR_INVALID_HANDLE);
	CHK_ERR(cuIpcCloseMemHandle(x), CUDA_ERROR_INVALID_VALUE);
	CHK(cuMemUnmap(va, gran));
	CHK(cuMemRelease(ph));
	CHK(cuMemAddressFree(va, gran));
}
END_TEST

/* ---- interprocess events ---- */

/* A host function that holds its stream until a byte arrives on the pipe it names. */
static void CUDA_CB gate_fn(void *arg)
{
	char c;

	(void)!read(((int *)arg)[0], &c, 1);
}

static int gate_open(int *gate)
{
	return write(gate[1], "g", 1) == 1 ? 0 : -1;
}

/* What the event's opener sends back, and the steps its exit code names. */
enum { EVC_OK, EVC_READ, EVC_OPEN, EVC_PENDING, EVC_DATA, EVC_DONE, EVC_RECORD, EVC_DESTROY, EVC_INIT };

struct ev_handles {
	CUipcMemHandle mem;
	CUipcEventHandle ev;
};

/* The opener: waits in its stream for the exporter's record, then records the same event after a
 * write of its own that the exporter waits for. */
static int event_opener(int in, int out)
{
	static float h[N];
	struct ev_handles hd;
	CUdeviceptr px, y;
	CUstream cs;
	CUevent ev;
	int gate[2];
	char c;

	simtest_start();
	if (pipe(gate) != 0 || cuStreamCreate(&cs, CU_STREAM_NON_BLOCKING) != CUDA_SUCCESS ||
	    cuMemAlloc(&y, sizeof(h)) != CUDA_SUCCESS)
		return EVC_INIT;
	if (read_all(in, &hd, sizeof(hd)) != 0)
		return EVC_READ;
	if (cuIpcOpenMemHandle(&px, hd.mem, CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS) != CUDA_SUCCESS ||
	    cuIpcOpenEventHandle(&ev, hd.ev) != CUDA_SUCCESS)
		return EVC_OPEN;
	/* The exporter's stream is held, so its record is pending, and so is what waits for it here. */
	if (cuEventQuery(ev) != CUDA_ERROR_NOT_READY || cuStreamWaitEvent(cs, ev, 0) != CUDA_SUCCESS ||
	    cuMemcpyDtoDAsync(y, px, sizeof(h), cs) != CUDA_SUCCESS || cuStreamQuery(cs) != CUDA_ERROR_NOT_READY)
		return EVC_PENDING;
	if (write(out, "q", 1) != 1 || cuStreamSynchronize(cs) != CUDA_SUCCESS ||
	    cuMemcpyDtoH(h, y, sizeof(h)) != CUDA_SUCCESS)
		return EVC_DATA;
	for (int i = 0; i < N; i++)
		if (h[i] != 2.0f)
			return EVC_DATA;
	if (cuEventSynchronize(ev) != CUDA_SUCCESS || cuEventQuery(ev) != CUDA_SUCCESS)
		return EVC_DONE;
	/* Now this side records, behind a write held until the exporter says so. */
	if (cuLaunchHostFunc(cs, gate_fn, gate) != CUDA_SUCCESS || simtest_fill(px, 3.0f, N, cs) != CUDA_SUCCESS ||
	    cuEventRecord(ev, cs) != CUDA_SUCCESS || write(out, "r", 1) != 1 || read_all(in, &c, 1) != 0 ||
	    gate_open(gate) != 0 || cuStreamSynchronize(cs) != CUDA_SUCCESS)
		return EVC_RECORD;
	if (cuEventDestroy(ev) != CUDA_SUCCESS || cuEventDestroy(ev) != CUDA_ERROR_INVALID_HANDLE ||
	    cuIpcCloseMemHandle(px) != CUDA_SUCCESS)
		return EVC_DESTROY;
	return EVC_OK;
}

/* A record in one process orders a stream of another, both ways, through one event. */
START_TEST(test_ipc_event_across_processes)
{
	struct ev_handles hd;
	CUdeviceptr x, z;
	CUstream ps;
	CUevent ev;
	int to[2], from[2], gate[2], status;
	char c;
	pid_t pid;

	ck_assert_int_eq(pipe(to), 0);
	ck_assert_int_eq(pipe(from), 0);
	ck_assert_int_eq(pipe(gate), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(event_opener(to[0], from[1]));
	close(to[0]);
	close(from[1]);
	simtest_start();
	CHK(cuStreamCreate(&ps, CU_STREAM_NON_BLOCKING));
	CHK(cuMemAlloc(&x, N * sizeof(float)));
	CHK(cuMemAlloc(&z, N * sizeof(float)));
	CHK(simtest_fill(x, 1.0f, N, NULL));
	CHK(cuCtxSynchronize());
	CHK(cuEventCreate(&ev, CU_EVENT_INTERPROCESS | CU_EVENT_DISABLE_TIMING));
	CHK(cuIpcGetMemHandle(&hd.mem, x));
	CHK(cuIpcGetEventHandle(&hd.ev, ev));
	/* The record waits behind a write that waits for the opener's word. */
	CHK(cuLaunchHostFunc(ps, gate_fn, gate));
	CHK(simtest_fill(x, 2.0f, N, ps));
	CHK(cuEventRecord(ev, ps));
	ck_assert_int_eq(write(to[1], &hd, sizeof(hd)), sizeof(hd));
	ck_assert_int_eq(read_all(from[0], &c, 1), 0);
	ck_assert_int_eq(gate_open(gate), 0);
	/* The opener's record is held in its process: it is pending here, and so is a wait for it. */
	ck_assert_int_eq(read_all(from[0], &c, 1), 0);
	CHK_ERR(cuEventQuery(ev), CUDA_ERROR_NOT_READY);
	CHK(cuStreamWaitEvent(ps, ev, 0));
	CHK(cuMemcpyDtoDAsync(z, x, N * sizeof(float), ps));
	CHK_ERR(cuStreamQuery(ps), CUDA_ERROR_NOT_READY);
	ck_assert_int_eq(write(to[1], "g", 1), 1);
	CHK(cuEventSynchronize(ev));
	CHK(cuEventQuery(ev));
	CHK(cuStreamSynchronize(ps));
	simtest_expect_floats(z, N, 3.0f);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), EVC_OK);
	CHK(cuEventDestroy(ev));
}
END_TEST

/* What cuIpcGetEventHandle and cuIpcOpenEventHandle refuse, and an exportable event used alone. */
START_TEST(test_ipc_event_refused)
{
	CUipcEventHandle hd;
	CUevent plain, only_ipc, ev, opened;
	CUstream s;
	CUdeviceptr x;
	float ms;

	simtest_start();
	CHK(cuEventCreate(&plain, CU_EVENT_DISABLE_TIMING));
	CHK(cuEventCreate(&only_ipc, CU_EVENT_INTERPROCESS));
	CHK(cuEventCreate(&ev, CU_EVENT_INTERPROCESS | CU_EVENT_DISABLE_TIMING));
	CHK_ERR(cuIpcGetEventHandle(&hd, plain), CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuIpcGetEventHandle(&hd, only_ipc), CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuIpcGetEventHandle(NULL, ev), CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuIpcGetEventHandle(&hd, NULL), CUDA_ERROR_INVALID_HANDLE);
	CHK(cuIpcGetEventHandle(&hd, ev));
	/* The exporter cannot open its own handle; garbage is no handle. */
	CHK_ERR(cuIpcOpenEventHandle(&opened, hd), CUDA_ERROR_INVALID_CONTEXT);
	CHK_ERR(cuIpcOpenEventHandle(NULL, hd), CUDA_ERROR_INVALID_VALUE);
	memset(&hd, 0x5a, sizeof(hd));
	CHK_ERR(cuIpcOpenEventHandle(&opened, hd), CUDA_ERROR_INVALID_HANDLE);
	/* In its own process the event orders streams as any event does, and keeps no time. */
	CHK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
	CHK(cuMemAlloc(&x, N * sizeof(float)));
	CHK(cuEventQuery(ev));
	CHK(simtest_fill(x, 5.0f, N, s));
	CHK(cuEventRecord(ev, s));
	CHK(cuStreamWaitEvent(NULL, ev, 0));
	CHK(simtest_axpy(x, x, 1.0f, N, NULL));
	CHK(cuEventSynchronize(ev));
	CHK(cuEventQuery(ev));
	CHK(cuCtxSynchronize());
	simtest_expect_floats(x, N, 10.0f);
	CHK_ERR(cuEventElapsedTime(&ms, ev, ev), CUDA_ERROR_INVALID_HANDLE);
	CHK(cuEventDestroy(ev));
	CHK_ERR(cuIpcGetEventHandle(&hd, ev), CUDA_ERROR_INVALID_HANDLE);
	CHK(cuEventDestroy(plain));
	CHK(cuEventDestroy(only_ipc));
	CHK(cuMemFree(x));
}
END_TEST

static Suite *ipc_suite(void)
{
	Suite *s = suite_create("simcuda_ipc");
	TCase *tc = simtest_tcase(s, "memory", 30);

	tcase_add_test(tc, test_ipc_across_processes);
	tcase_add_test(tc, test_ipc_refused);
	tc = simtest_tcase(s, "events", 30);
	tcase_add_test(tc, test_ipc_event_across_processes);
	tcase_add_test(tc, test_ipc_event_refused);
	return s;
}

int main(void)
{
	return simtest_run(ipc_suite());
}
