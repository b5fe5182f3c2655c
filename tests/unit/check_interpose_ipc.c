/* libmemvirt.so's interprocess memory handles, between two processes that both run under memvirt
 * on the simulated GPU with a small budget: an exported buffer stays resident while others page,
 * the importer reads exactly its bytes and its writes reach the exporter; what cannot be exported
 * is refused with a named error. */
#include "config.h"

#include "tests/unit/interposetest.h"

#define GRAN64 "SIMCUDA_GRANULARITY=64KiB"
#define THR16 "MEMVIRT_SLAB_THRESHOLD=16KiB"
#define NET_OFF "SIMCUDA_NO_HOST_VMM=1"
#define BUF (64 * ITEST_KIB)
#define NF (BUF / sizeof(float))

/* Exit codes of the importing child, each naming the step that went wrong. */
enum { IMP_OK, IMP_READ, IMP_OPEN, IMP_BYTES, IMP_WRITE, IMP_CLOSE };

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

/* The importer: opens the handle, checks every byte, adds the buffer to itself, closes, says so. */
static int importer(int in, int out)
{
	static float h[NF];
	CUipcMemHandle hd;
	CUdeviceptr p;
	char done = 'w';

	simtest_start("SIMCUDA_MEM=384KiB", GRAN64, THR16, NET_OFF);
	if (read_all(in, &hd, sizeof(hd)) != 0)
		return IMP_READ;
	if (cuIpcOpenMemHandle(&p, hd, CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS) != CUDA_SUCCESS)
		return IMP_OPEN;
	if (cuMemcpyDtoH(h, p, sizeof(h)) != CUDA_SUCCESS)
		return IMP_BYTES;
	for (size_t i = 0; i < NF; i++)
		if (h[i] != (float)i)
			return IMP_BYTES;
	if (simtest_axpy(p, p, 1.0f, NF, NULL) != CUDA_SUCCESS || cuCtxSynchronize() != CUDA_SUCCESS)
		return IMP_WRITE;
	if (cuIpcCloseMemHandle(p) != CUDA_SUCCESS)
		return IMP_CLOSE;
	return write(out, &done, 1) == 1 ? IMP_OK : IMP_READ;
}

/* An importer on a machine of two devices: opens the handle with device 0 current, then reads the
 * buffer in device 1's context, as a peer may. */
static int peer_importer(int in, int out)
{
	static float h[NF];
	CUipcMemHandle hd;
	CUdeviceptr p;
	CUcontext c1;
	char done = 'w';

	simtest_start("SIMCUDA_DEVICES=2", "SIMCUDA_MEM=384KiB", GRAN64, THR16, NET_OFF);
	if (read_all(in, &hd, sizeof(hd)) != 0)
		return IMP_READ;
	if (cuIpcOpenMemHandle(&p, hd, CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS) != CUDA_SUCCESS)
		return IMP_OPEN;
	if (cuDevicePrimaryCtxRetain(&c1, 1) != CUDA_SUCCESS || cuCtxSetCurrent(c1) != CUDA_SUCCESS ||
	    cuMemcpyDtoH(h, p, sizeof(h)) != CUDA_SUCCESS)
		return IMP_BYTES;
	for (size_t i = 0; i < NF; i++)
		if (h[i] != (float)i)
			return IMP_BYTES;
	if (cuCtxSetCurrent(simtest_ctx) != CUDA_SUCCESS || cuIpcCloseMemHandle(p) != CUDA_SUCCESS)
		return IMP_CLOSE;
	return write(out, &done, 1) == 1 ? IMP_OK : IMP_READ;
}

static CUdeviceptr alloc_filled(float v)
{
	CUdeviceptr p;

	CHK(cuMemAlloc(&p, BUF));
	CHK(simtest_fill(p, v, NF, NULL));
	CHK(cuCtxSynchronize());
	return p;
}

/* The importing child, and the parent's ends of the pipes to it and from it. */
struct child {
	pid_t pid;
	int to, from;
};

/* Starts fn(read end, write end) in a child process. */
static struct child spawn(int (*fn)(int, int))
{
	int to[2], from[2];
	struct child c;

	ck_assert_int_eq(pipe(to), 0);
	ck_assert_int_eq(pipe(from), 0);
	c.pid = fork();
	ck_assert_int_ge(c.pid, 0);
	if (c.pid == 0)
		_exit(fn(to[0], from[1]));
	/* The child's ends: a child that dies early ends the parent's reads. */
	close(to[0]);
	close(from[1]);
	c.to = to[1];
	c.from = from[0];
	return c;
}

/* Hands the child the handle, and waits for its answer and its exit, which must be IMP_OK. */
static void hand_over(struct child c, const CUipcMemHandle *hd)
{
	char done;
	int status;

	ck_assert_int_eq(write(c.to, hd, sizeof(*hd)), sizeof(*hd));
	read_all(c.from, &done, 1);
	ck_assert_int_eq(waitpid(c.pid, &status, 0), c.pid);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), IMP_OK);
	close(c.to);
	close(c.from);
}

/* A buffer holding 0, 1, 2, ...: what the importers check. */
static CUdeviceptr alloc_counting(void)
{
	static float h[NF];
	CUdeviceptr x;

	for (size_t i = 0; i < NF; i++)
		h[i] = (float)i;
	CHK(cuMemAlloc(&x, BUF));
	CHK(cuMemcpyHtoD(x, h, BUF));
	return x;
}

START_TEST(test_exported_buffer_shared_and_resident)
{
	static float h[NF];
	CUdeviceptr x, f[8];
	float vf[8];
	CUipcMemHandle hd, again;
	uint64_t outs;
	struct child c = spawn(importer);

	/* Six 64KiB buffers fit. */
	simtest_start("SIMCUDA_MEM=384KiB", GRAN64, THR16, NET_OFF);
	x = alloc_counting();
	CHK(cuIpcGetMemHandle(&hd, x));
	CHK(cuIpcGetMemHandle(&again, x));
	ck_assert_mem_eq(&hd, &again, sizeof(hd));
	CHK_ERR(cuIpcOpenMemHandle(&f[0], hd, CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS), CUDA_ERROR_INVALID_CONTEXT);

	/* Pressure: eight other buffers cycle through the five slots x leaves; x never goes. */
	outs = itest_counters().page_outs;
	for (int i = 0; i < 8; i++) {
		vf[i] = 30.0f + (float)i;
		f[i] = alloc_filled(vf[i]);
	}
	for (int r = 0; r < 3; r++)
		for (int i = 0; i < 8; i++)
			CHK(simtest_fill(f[i], vf[i], NF, NULL));
	CHK(cuCtxSynchronize());
	ck_assert_uint_gt(itest_counters().page_outs, outs + 8);

	hand_over(c, &hd);
	CHK(cuMemcpyDtoH(h, x, BUF));
	for (size_t i = 0; i < NF; i++)
		ck_assert_float_eq(h[i], 2.0f * (float)i);
	for (int i = 0; i < 8; i++)
		simtest_expect_floats(f[i], NF, vf[i]);
	CHK(cuMemFree(x));
}
END_TEST

/* An opened buffer may be used by every device that reaches its pages as a peer, as the driver's own
 * handles may, not only by the device current when it was opened. */
START_TEST(test_import_reached_by_a_peer)
{
	CUdeviceptr x;
	CUipcMemHandle hd;
	struct child c = spawn(peer_importer);

	simtest_start("SIMCUDA_DEVICES=2", "SIMCUDA_MEM=384KiB", GRAN64, THR16, NET_OFF);
	x = alloc_counting();
	CHK(cuIpcGetMemHandle(&hd, x));
	hand_over(c, &hd);
	CHK(cuMemFree(x));
}
END_TEST

/* A slab block and an interior pointer are refused, each with a log line saying why; a handle of
 * memvirt's is no handle to a process without memvirt. */
START_TEST(test_export_refused)
{
	CUdeviceptr small, big;
	CUipcMemHandle hd;
	char logpath[PATH_MAX];
	char *log;

	itest_tmpfile(logpath, sizeof(logpath), "log");
	ck_assert_int_eq(setenv("MEMVIRT_LOG_FILE", logpath, 1), 0);
	simtest_start("SIMCUDA_MEM=384KiB", GRAN64, THR16, NET_OFF, "MEMVIRT_LOG=info");
	CHK(cuMemAlloc(&small, 4096));
	CHK(cuMemAlloc(&big, BUF));
	CHK_ERR(cuIpcGetMemHandle(&hd, small), CUDA_ERROR_NOT_SUPPORTED);
	CHK_ERR(cuIpcGetMemHandle(&hd, big + 4096), CUDA_ERROR_INVALID_VALUE);
	log = itest_slurp(logpath);
	ck_assert_ptr_nonnull(log);
	ck_assert_msg(strstr(log, "is a slab block") != NULL, "no log line for the slab block: %s", log);
	ck_assert_msg(strstr(log, "is inside a buffer") != NULL, "no log line for the interior pointer: %s", log);
	free(log);
	unlink(logpath);
}
END_TEST

static Suite *ipc_suite(void)
{
	Suite *s = suite_create("interpose_ipc");
	TCase *tc = simtest_tcase(s, "ipc", 60);

	tcase_add_test(tc, test_exported_buffer_shared_and_resident);
	tcase_add_test(tc, test_export_refused);
	tcase_add_test(tc, test_import_reached_by_a_peer);
	return s;
}

int main(int argc, char **argv)
{
	itest_main_begin(argc, argv);
	return simtest_run(ipc_suite());
}
