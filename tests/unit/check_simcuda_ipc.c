/* The simulated driver's interprocess memory handles, between two real processes: the importer sees
 * the exporter's bytes and its writes reach the exporter; what the real driver refuses is refused. */
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

static Suite *ipc_suite(void)
{
	Suite *s = suite_create("simcuda_ipc");
	TCase *tc = simtest_tcase(s, "memory", 30);

	tcase_add_test(tc, test_ipc_across_processes);
	tcase_add_test(tc, test_ipc_refused);
	return s;
}

int main(void)
{
	return simtest_run(ipc_suite());
}
