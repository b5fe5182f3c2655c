/* The simulated driver's several devices (SIMCUDA_DEVICES): ordinals, per-device memory, peer access
 * and peer copies with their modeled time. */
#include "config.h"

#include <sys/wait.h>
#include <unistd.h>

#include "tests/unit/simtest.h"

#define MEM_ENV "SIMCUDA_MEM=64MiB"

/* Device dev's primary context, retained. */
static CUcontext primary(CUdevice dev)
{
	CUcontext ctx = NULL;

	CHK(cuDevicePrimaryCtxRetain(&ctx, dev));
	return ctx;
}

/* Allocates bytes of device memory on ctx's device. */
static CUdeviceptr alloc_on(CUcontext ctx, size_t bytes)
{
	CUdeviceptr p = 0;

	CHK(cuCtxPushCurrent(ctx));
	CHK(cuMemAlloc(&p, bytes));
	CHK(cuCtxPopCurrent(NULL));
	return p;
}

static void expect_info(CUcontext ctx, size_t want_free, size_t want_total)
{
	size_t free_bytes = 0, total = 0;

	CHK(cuCtxPushCurrent(ctx));
	CHK(cuMemGetInfo(&free_bytes, &total));
	CHK(cuCtxPopCurrent(NULL));
	ck_assert_uint_eq(free_bytes, want_free);
	ck_assert_uint_eq(total, want_total);
}

START_TEST(test_one_device_by_default)
{
	int count = -1;
	CUdevice dev = -1;
	CUcontext ctx;

	unsetenv("SIMCUDA_DEVICES");
	simtest_start();
	CHK(cuDeviceGetCount(&count));
	ck_assert_int_eq(count, 1);
	CHK_ERR(cuDeviceGet(&dev, 1), CUDA_ERROR_INVALID_DEVICE);
	CHK_ERR(cuDevicePrimaryCtxRetain(&ctx, 1), CUDA_ERROR_INVALID_DEVICE);
}
END_TEST

/* A count outside 1..8, or not a number, is refused (a warning names it) and one device kept. Each
 * value needs a fresh cuInit, so each is tried in a child process. */
START_TEST(test_bad_count_refused)
{
	static const char *bad[] = {"SIMCUDA_DEVICES=0", "SIMCUDA_DEVICES=9", "SIMCUDA_DEVICES=-1",
				    "SIMCUDA_DEVICES=2x", "SIMCUDA_DEVICES=", "SIMCUDA_DEVICES=99999999999999999999"};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int status = -1, count = -1;
		pid_t pid = fork();

		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			simtest_env(bad[i], (const char *)0);
			_exit(cuInit(0) == CUDA_SUCCESS && cuDeviceGetCount(&count) == CUDA_SUCCESS && count == 1 ? 0 : 1);
		}
		ck_assert_int_eq(waitpid(pid, &status, 0), pid);
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s did not leave one device", bad[i]);
	}
}
END_TEST

START_TEST(test_count_and_ordinals)
{
	int count = -1, v = -1, bus[3];
	CUdevice dev = -1;
	CUcontext ctx, c2;
	CUuuid u[3];
	char name[64];
	size_t bytes = 0;
	unsigned flags;
	int active;
	CUmemoryPool pool;
	CUmemAllocationProp prop = simtest_prop(0);

	simtest_start("SIMCUDA_DEVICES=3", MEM_ENV);
	CHK(cuDeviceGetCount(&count));
	ck_assert_int_eq(count, 3);
	for (int i = 0; i < 3; i++) {
		CHK(cuDeviceGet(&dev, i));
		ck_assert_int_eq(dev, i);
		CHK(cuDeviceGetUuid(&u[i], i));
		CHK(cuDeviceGetAttribute(&bus[i], CU_DEVICE_ATTRIBUTE_PCI_BUS_ID, i));
		CHK(cuDeviceTotalMem(&bytes, i));
		ck_assert_uint_eq(bytes, 64 * SIMTEST_MIB);
	}
	ck_assert_int_ne(memcmp(&u[0], &u[1], sizeof(u[0])), 0);
	ck_assert_int_ne(memcmp(&u[1], &u[2], sizeof(u[0])), 0);
	ck_assert_int_ne(memcmp(&u[0], &u[2], sizeof(u[0])), 0);
	ck_assert_int_ne(bus[0], bus[1]);
	ck_assert_int_ne(bus[1], bus[2]);
	/* Every entry point that takes a device refuses ordinal 3 and -1. */
	for (int bad = -1; bad <= 3; bad += 4) {
		CHK_ERR(cuDeviceGet(&dev, bad), CUDA_ERROR_INVALID_DEVICE);
		CHK_ERR(cuDeviceGetAttribute(&v, CU_DEVICE_ATTRIBUTE_WARP_SIZE, bad), CUDA_ERROR_INVALID_DEVICE);
		CHK_ERR(cuDeviceGetName(name, sizeof(name), bad), CUDA_ERROR_INVALID_DEVICE);
		CHK_ERR(cuDeviceGetUuid(&u[0], bad), CUDA_ERROR_INVALID_DEVICE);
		CHK_ERR(cuDeviceTotalMem(&bytes, bad), CUDA_ERROR_INVALID_DEVICE);
		CHK_ERR(cuDevicePrimaryCtxRetain(&ctx, bad), CUDA_ERROR_INVALID_DEVICE);
		CHK_ERR(cuDevicePrimaryCtxRelease(bad), CUDA_ERROR_INVALID_DEVICE);
		CHK_ERR(cuDevicePrimaryCtxGetState(bad, &flags, &active), CUDA_ERROR_INVALID_DEVICE);
		CHK_ERR(cuDevicePrimaryCtxSetFlags(bad, 0), CUDA_ERROR_INVALID_DEVICE);
		CHK_ERR(cuDevicePrimaryCtxReset(bad), CUDA_ERROR_INVALID_DEVICE);
		CHK_ERR(cuCtxCreate(&ctx, NULL, 0, bad), CUDA_ERROR_INVALID_DEVICE);
		CHK_ERR(cuDeviceGetDefaultMemPool(&pool, bad), CUDA_ERROR_INVALID_DEVICE);
		CHK_ERR(cuDeviceGetMemPool(&pool, bad), CUDA_ERROR_INVALID_DEVICE);
		CHK_ERR(cuDeviceCanAccessPeer(&v, 0, bad), CUDA_ERROR_INVALID_DEVICE);
		CHK_ERR(cuDeviceCanAccessPeer(&v, bad, 0), CUDA_ERROR_INVALID_DEVICE);
		prop.location.id = bad;
		CHK_ERR(cuMemGetAllocationGranularity(&bytes, &prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM),
			CUDA_ERROR_INVALID_DEVICE);
	}
	/* A context belongs to its device. */
	ctx = primary(2);
	CHK(cuCtxPushCurrent(ctx));
	CHK(cuCtxGetDevice(&dev));
	ck_assert_int_eq(dev, 2);
	CHK(cuCtxCreate(&c2, NULL, 0, 1));
	CHK(cuCtxGetDevice(&dev));
	ck_assert_int_eq(dev, 1);
	CHK(cuCtxGetDevice_v2(&dev, ctx));
	ck_assert_int_eq(dev, 2);
	CHK(cuCtxDestroy(c2));
	CHK(cuDevicePrimaryCtxGetState(2, &flags, &active));
	ck_assert_int_eq(active, 1);
	CHK(cuDevicePrimaryCtxGetState(1, &flags, &active));
	ck_assert_int_eq(active, 0);
	CHK(cuDevicePrimaryCtxGetState(0, &flags, &active));
	ck_assert_int_eq(active, 1);
	CHK(cuDevicePrimaryCtxRelease(2));
	CHK(cuDevicePrimaryCtxGetState(2, &flags, &active));
	ck_assert_int_eq(active, 0);
}
END_TEST

/* Filling device 0 leaves device 1 all its memory; each answers cuMemGetInfo for itself. */
START_TEST(test_capacity_per_device)
{
	CUcontext c0, c1;
	CUdeviceptr a, b, extra;
	CUmemGenericAllocationHandle h;
	CUmemAllocationProp prop = simtest_prop(0);
	const size_t cap = 64 * SIMTEST_MIB;
	int ord = -1;

	simtest_start("SIMCUDA_DEVICES=2", MEM_ENV, "SIMCUDA_GRANULARITY=2MiB");
	c0 = simtest_ctx;
	c1 = primary(1);
	a = alloc_on(c0, cap);
	CHK_ERR(cuMemAlloc(&extra, 4096), CUDA_ERROR_OUT_OF_MEMORY);
	expect_info(c0, 0, cap);
	expect_info(c1, cap, cap);
	b = alloc_on(c1, cap / 2);
	expect_info(c1, cap / 2, cap);
	CHK(cuPointerGetAttribute(&ord, CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL, b));
	ck_assert_int_eq(ord, 1);
	CHK(cuPointerGetAttribute(&ord, CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL, a));
	ck_assert_int_eq(ord, 0);
	/* A VMM allocation is charged to its location's device, whatever context is current. */
	prop.location.id = 1;
	CHK(cuMemCreate(&h, 8 * SIMTEST_MIB, &prop, 0));
	expect_info(c1, cap / 2 - 8 * SIMTEST_MIB, cap);
	expect_info(c0, 0, cap);
	CHK(cuMemRelease(h));
	expect_info(c1, cap / 2, cap);
	/* Freeing uncharges the device it was charged to. */
	CHK(cuMemFree(a));
	expect_info(c0, cap, cap);
	expect_info(c1, cap / 2, cap);
	CHK(cuMemFree(b));
	expect_info(c1, cap, cap);
}
END_TEST

/* Each device has its own default pool; an allocation from it is charged to its device. */
START_TEST(test_pool_per_device)
{
	CUcontext c1;
	CUmemoryPool p0, p1, again;
	CUdeviceptr d;
	cuuint64_t used = 1;
	CUmemoryPool handle = NULL;
	const size_t cap = 64 * SIMTEST_MIB;

	simtest_start("SIMCUDA_DEVICES=2", MEM_ENV);
	c1 = primary(1);
	CHK(cuDeviceGetDefaultMemPool(&p0, 0));
	CHK(cuDeviceGetDefaultMemPool(&p1, 1));
	CHK(cuDeviceGetMemPool(&again, 1));
	ck_assert_ptr_ne(p0, p1);
	ck_assert_ptr_eq(again, p1);
	CHK(cuMemAllocFromPoolAsync(&d, SIMTEST_MIB, p1, NULL));
	expect_info(c1, cap - SIMTEST_MIB, cap);
	expect_info(simtest_ctx, cap, cap);
	CHK(cuMemPoolGetAttribute(p1, CU_MEMPOOL_ATTR_USED_MEM_CURRENT, &used));
	ck_assert_uint_eq(used, SIMTEST_MIB);
	CHK(cuMemPoolGetAttribute(p0, CU_MEMPOOL_ATTR_USED_MEM_CURRENT, &used));
	ck_assert_uint_eq(used, 0);
	CHK(cuPointerGetAttribute(&handle, CU_POINTER_ATTRIBUTE_MEMPOOL_HANDLE, d));
	ck_assert_ptr_eq(handle, p1);
	CHK(cuMemFreeAsync(d, NULL));
	CHK(cuCtxSynchronize());
	expect_info(c1, cap, cap);
	CHK(cuMemPoolGetAttribute(p1, CU_MEMPOOL_ATTR_USED_MEM_CURRENT, &used));
	ck_assert_uint_eq(used, 0);
	/* cuMemAllocAsync takes the current device's pool. */
	CHK(cuCtxPushCurrent(c1));
	CHK(cuMemAllocAsync(&d, SIMTEST_MIB, NULL));
	CHK(cuCtxPopCurrent(NULL));
	expect_info(c1, cap - SIMTEST_MIB, cap);
	CHK(cuMemPoolGetAttribute(p1, CU_MEMPOOL_ATTR_USED_MEM_CURRENT, &used));
	ck_assert_uint_eq(used, SIMTEST_MIB);
}
END_TEST

START_TEST(test_peer_access_errors)
{
	CUcontext c0, c1;
	int can = -1;

	simtest_start("SIMCUDA_DEVICES=2", MEM_ENV);
	c0 = simtest_ctx;
	c1 = primary(1);
	CHK(cuDeviceCanAccessPeer(&can, 0, 1));
	ck_assert_int_eq(can, 1);
	CHK(cuDeviceCanAccessPeer(&can, 1, 0));
	ck_assert_int_eq(can, 1);
	CHK(cuDeviceCanAccessPeer(&can, 1, 1));
	ck_assert_int_eq(can, 0);
	CHK_ERR(cuCtxEnablePeerAccess(c0, 0), CUDA_ERROR_INVALID_DEVICE);
	CHK_ERR(cuCtxEnablePeerAccess(c1, 1), CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuCtxDisablePeerAccess(c1), CUDA_ERROR_PEER_ACCESS_NOT_ENABLED);
	CHK(cuCtxEnablePeerAccess(c1, 0));
	CHK_ERR(cuCtxEnablePeerAccess(c1, 0), CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED);
	/* Access is one way: device 1's context has none to device 0 yet. */
	CHK(cuCtxPushCurrent(c1));
	CHK_ERR(cuCtxDisablePeerAccess(c0), CUDA_ERROR_PEER_ACCESS_NOT_ENABLED);
	CHK(cuCtxPopCurrent(NULL));
	CHK(cuCtxDisablePeerAccess(c1));
	CHK_ERR(cuCtxDisablePeerAccess(c1), CUDA_ERROR_PEER_ACCESS_NOT_ENABLED);
}
END_TEST

/* A kernel on device 0 that touches device 1's memory without peer access faults, stickily. */
START_TEST(test_illegal_without_peer_access)
{
	CUcontext c1;
	CUdeviceptr remote, local;
	const uint64_t n = 1024;

	simtest_start("SIMCUDA_DEVICES=2", MEM_ENV);
	c1 = primary(1);
	remote = alloc_on(c1, n * sizeof(float));
	CHK(cuMemAlloc(&local, n * sizeof(float)));
	CHK(simtest_fill(local, 1.0f, n, NULL));
	CHK(cuCtxSynchronize());
	CHK(simtest_fill(remote, 2.0f, n, NULL));
	CHK_ERR(cuCtxSynchronize(), CUDA_ERROR_ILLEGAL_ADDRESS);
	CHK_ERR(cuMemAlloc(&local, 4096), CUDA_ERROR_ILLEGAL_ADDRESS);
	/* Device 1's own context is untouched, and its memory was not written. */
	CHK(cuCtxPushCurrent(c1));
	simtest_expect_floats(remote, n, 0.0f);
	CHK(cuCtxPopCurrent(NULL));
}
END_TEST

/* With peer access enabled the same kernel runs and writes device 1's memory. */
START_TEST(test_kernel_with_peer_access)
{
	CUcontext c1;
	CUdeviceptr remote;
	const uint64_t n = 1024;

	simtest_start("SIMCUDA_DEVICES=2", MEM_ENV);
	c1 = primary(1);
	remote = alloc_on(c1, n * sizeof(float));
	CHK(cuCtxEnablePeerAccess(c1, 0));
	CHK(simtest_fill(remote, 2.0f, n, NULL));
	CHK(cuCtxSynchronize());
	simtest_expect_floats(remote, n, 2.0f);
	/* Disabled again, it faults. */
	CHK(cuCtxDisablePeerAccess(c1));
	CHK(simtest_fill(remote, 3.0f, n, NULL));
	CHK_ERR(cuCtxSynchronize(), CUDA_ERROR_ILLEGAL_ADDRESS);
}
END_TEST

/* Maps a new VMM allocation of bytes on device dev, with no device given access yet. */
static CUdeviceptr vmm_on(CUdevice dev, size_t bytes, int host)
{
	CUmemAllocationProp prop = simtest_prop(host);
	CUmemGenericAllocationHandle h;
	CUdeviceptr va;

	prop.location.id = host ? 0 : dev;
	CHK(cuMemAddressReserve(&va, bytes, 0, 0, 0));
	CHK(cuMemCreate(&h, bytes, &prop, 0));
	CHK(cuMemMap(va, bytes, 0, h, 0));
	CHK(cuMemRelease(h));
	return va;
}

static CUresult grant(CUdeviceptr va, size_t bytes, CUdevice dev, CUmemAccess_flags flags)
{
	CUmemAccessDesc d;

	memset(&d, 0, sizeof(d));
	d.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
	d.location.id = dev;
	d.flags = flags;
	return cuMemSetAccess(va, bytes, &d, 1);
}

static unsigned long long access_of(CUdeviceptr va, CUdevice dev)
{
	CUmemLocation loc = {.type = CU_MEM_LOCATION_TYPE_DEVICE, .id = dev};
	unsigned long long flags = 99;

	CHK(cuMemGetAccess(&flags, &loc, va));
	return flags;
}

/* VMM access is per device: a descriptor for one device leaves the others as they were, and a copy
 * or memset is carried out by its stream's device, which needs the access itself, wherever the pages
 * are (device 1's memory or host memory). */
START_TEST(test_vmm_access_per_device_copies)
{
	const size_t bytes = 2 * SIMTEST_MIB;
	CUdeviceptr va[2];
	CUcontext c1;
	uint32_t got[4];

	simtest_start("SIMCUDA_DEVICES=2", MEM_ENV);
	c1 = primary(1);
	va[0] = vmm_on(1, bytes, 0);
	va[1] = vmm_on(1, bytes, 1);
	for (int i = 0; i < 2; i++) {
		CHK(grant(va[i], bytes, 0, CU_MEM_ACCESS_FLAGS_PROT_READWRITE));
		ck_assert_uint_eq(access_of(va[i], 0), CU_MEM_ACCESS_FLAGS_PROT_READWRITE);
		ck_assert_uint_eq(access_of(va[i], 1), CU_MEM_ACCESS_FLAGS_PROT_NONE);
		/* Device 0 writes it, although device 1 or the host holds the pages. */
		CHK(cuMemsetD32(va[i], 0x5a5a5a5au + (unsigned)i, bytes / 4));
		CHK(grant(va[i], bytes, 1, CU_MEM_ACCESS_FLAGS_PROT_READ));
		ck_assert_uint_eq(access_of(va[i], 0), CU_MEM_ACCESS_FLAGS_PROT_READWRITE);
		ck_assert_uint_eq(access_of(va[i], 1), CU_MEM_ACCESS_FLAGS_PROT_READ);
	}
	CHK(cuCtxPushCurrent(c1));
	for (int i = 0; i < 2; i++) {
		/* Device 1 may read it now, not write it. */
		CHK(cuMemcpyDtoH(got, va[i], sizeof(got)));
		for (int k = 0; k < 4; k++)
			ck_assert_uint_eq(got[k], 0x5a5a5a5au + (unsigned)i);
	}
	CHK_ERR(cuMemsetD32(va[1], 7, 4), CUDA_ERROR_ILLEGAL_ADDRESS);
	CHK(cuCtxPopCurrent(NULL));
	/* Device 0 writes on; the bytes device 1 was refused were never written. */
	CHK(cuMemcpyDtoH(got, va[1], sizeof(got)));
	ck_assert_uint_eq(got[0], 0x5a5a5a5bu);
	CHK(cuMemsetD32(va[1], 7, 4));
	CHK(cuMemcpyDtoH(got, va[1], sizeof(got)));
	ck_assert_uint_eq(got[0], 7);
}
END_TEST

/* A kernel uses VMM memory only as its own device was granted: peer access does not stand in. */
START_TEST(test_vmm_access_per_device_kernels)
{
	const size_t bytes = 2 * SIMTEST_MIB;
	const uint64_t n = 1024;
	CUdeviceptr va;
	CUcontext c0, c1;

	simtest_start("SIMCUDA_DEVICES=2", MEM_ENV);
	CHK(cuCtxGetCurrent(&c0));
	c1 = primary(1);
	va = vmm_on(0, bytes, 0);
	CHK(grant(va, bytes, 0, CU_MEM_ACCESS_FLAGS_PROT_READWRITE));
	CHK(simtest_fill(va, 3.0f, n, NULL));
	CHK(cuCtxSynchronize());
	CHK(cuCtxPushCurrent(c1));
	CHK(cuCtxEnablePeerAccess(c0, 0));
	CHK(simtest_fill(va, 4.0f, n, NULL));
	CHK_ERR(cuCtxSynchronize(), CUDA_ERROR_ILLEGAL_ADDRESS);
	CHK(cuCtxPopCurrent(NULL));
	simtest_expect_floats(va, n, 3.0f);
}
END_TEST

/* An event records only on a stream of its own context, the legacy and per-thread streams being the
 * current context's; any stream may wait for it. cuStreamGetCtx names a stream's context. */
START_TEST(test_event_context)
{
	CUcontext c0, c1, got = NULL;
	CUstream s0, s1;
	CUevent e0;

	simtest_start("SIMCUDA_DEVICES=2", MEM_ENV);
	CHK(cuCtxGetCurrent(&c0));
	c1 = primary(1);
	CHK(cuStreamCreate(&s0, CU_STREAM_NON_BLOCKING));
	CHK(cuEventCreate(&e0, CU_EVENT_DISABLE_TIMING));
	CHK(cuCtxPushCurrent(c1));
	CHK(cuStreamCreate(&s1, CU_STREAM_NON_BLOCKING));
	CHK(cuStreamGetCtx(s1, &got));
	ck_assert_ptr_eq(got, c1);
	CHK(cuStreamGetCtx(s0, &got));
	ck_assert_ptr_eq(got, c0);
	CHK(cuStreamGetCtx(CU_STREAM_LEGACY, &got));
	ck_assert_ptr_eq(got, c1);
	CHK_ERR(cuEventRecord(e0, s1), CUDA_ERROR_INVALID_HANDLE);
	CHK_ERR(cuEventRecord(e0, CU_STREAM_LEGACY), CUDA_ERROR_INVALID_HANDLE);
	CHK_ERR(cuEventRecord(e0, NULL), CUDA_ERROR_INVALID_HANDLE);
	CHK_ERR(cuEventRecord(e0, CU_STREAM_PER_THREAD), CUDA_ERROR_INVALID_HANDLE);
	CHK(cuCtxPopCurrent(NULL));
	CHK(cuEventRecord(e0, s0));
	CHK(cuEventRecord(e0, CU_STREAM_LEGACY));
	CHK(cuEventRecord(e0, CU_STREAM_PER_THREAD));
	/* Device 1's streams wait for it. */
	CHK(cuCtxPushCurrent(c1));
	CHK(cuStreamWaitEvent(s1, e0, 0));
	CHK(cuStreamWaitEvent(CU_STREAM_LEGACY, e0, 0));
	CHK(cuCtxSynchronize());
	CHK(cuCtxPopCurrent(NULL));
	CHK(cuEventSynchronize(e0));
	CHK(cuEventDestroy(e0));
}
END_TEST

/* A context's streams and events die with it: at cuCtxDestroy, at cuDevicePrimaryCtxReset and at
 * a primary context's last release. The primary context keeps its handle when retained again, so
 * only the driver can tell an old event from a new one. */
START_TEST(test_context_end_kills_streams_and_events)
{
	CUcontext c1, again, made;
	CUstream s1, s2, s3;
	CUevent e1, e2, e3;
	CUdeviceptr p;
	CUstreamCaptureStatus status;

	simtest_start("SIMCUDA_DEVICES=2", MEM_ENV);
	c1 = primary(1);
	CHK(cuCtxPushCurrent(c1));
	CHK(cuStreamCreate(&s1, CU_STREAM_NON_BLOCKING));
	CHK(cuEventCreate(&e1, CU_EVENT_DISABLE_TIMING));
	CHK(cuEventRecord(e1, CU_STREAM_LEGACY));
	CHK(cuDevicePrimaryCtxReset(1));
	CHK(cuDevicePrimaryCtxRetain(&again, 1));
	ck_assert_ptr_eq(again, c1);
	CHK_ERR(cuEventRecord(e1, CU_STREAM_LEGACY), CUDA_ERROR_INVALID_HANDLE);
	CHK_ERR(cuEventQuery(e1), CUDA_ERROR_INVALID_HANDLE);
	CHK_ERR(cuStreamWaitEvent(CU_STREAM_LEGACY, e1, 0), CUDA_ERROR_INVALID_HANDLE);
	CHK_ERR(cuStreamSynchronize(s1), CUDA_ERROR_INVALID_HANDLE);
	CHK_ERR(cuStreamDestroy(s1), CUDA_ERROR_INVALID_HANDLE);
	/* What is made afterwards works, on the legacy stream too. */
	CHK(cuEventCreate(&e2, CU_EVENT_DISABLE_TIMING));
	CHK(cuStreamCreate(&s2, CU_STREAM_NON_BLOCKING));
	CHK(cuEventRecord(e2, CU_STREAM_LEGACY));
	CHK(cuEventRecord(e2, s2));
	CHK(cuEventSynchronize(e2));
	/* The last release ends it as a reset does (the reset dropped every retain before it). */
	CHK(cuDevicePrimaryCtxRelease(1));
	CHK(cuDevicePrimaryCtxRetain(&again, 1));
	CHK_ERR(cuEventRecord(e2, CU_STREAM_LEGACY), CUDA_ERROR_INVALID_HANDLE);
	CHK_ERR(cuStreamQuery(s2), CUDA_ERROR_INVALID_HANDLE);
	CHK(cuCtxPopCurrent(NULL));
	/* A created context's, at its destruction; a capture in global mode that it held forbids
	 * allocations while it runs, and ends with it. */
	CHK(cuCtxCreate(&made, NULL, 0, 1));
	CHK(cuEventCreate(&e3, CU_EVENT_DISABLE_TIMING));
	CHK(cuStreamCreate(&s3, CU_STREAM_NON_BLOCKING));
	CHK(cuStreamBeginCapture(s3, CU_STREAM_CAPTURE_MODE_GLOBAL));
	CHK_ERR(cuMemAlloc(&p, 4096), CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED);
	CHK(cuCtxDestroy(made));
	CHK_ERR(cuEventDestroy(e3), CUDA_ERROR_INVALID_HANDLE);
	CHK(cuCtxSetCurrent(simtest_ctx));
	ck_assert_int_ne(cuStreamIsCapturing(s3, &status), CUDA_SUCCESS);
	CHK(cuMemAlloc(&p, 4096));
	CHK(cuMemFree(p));
}
END_TEST

/* Peer copies need no peer access, as on hardware; the bytes arrive exactly. */
START_TEST(test_peer_copy_bytes)
{
	CUcontext c0, c1;
	CUdeviceptr src, dst, dst2;
	const size_t n = 3 * SIMTEST_MIB + 123;
	unsigned char *in = malloc(n), *out = malloc(n);

	ck_assert_ptr_nonnull(in);
	ck_assert_ptr_nonnull(out);
	for (size_t i = 0; i < n; i++)
		in[i] = (unsigned char)(i * 131 + 7);
	simtest_start("SIMCUDA_DEVICES=2", MEM_ENV);
	c0 = simtest_ctx;
	c1 = primary(1);
	src = alloc_on(c0, n);
	dst = alloc_on(c1, n);
	dst2 = alloc_on(c1, n);
	CHK(cuMemcpyHtoD(src, in, n));
	CHK(cuMemcpyPeer(dst, c1, src, c0, n));
	/* cuMemcpyDtoD between devices works too, under unified addressing. */
	CHK(cuMemcpyDtoD(dst2, src, n));
	CHK(cuCtxPushCurrent(c1));
	memset(out, 0, n);
	CHK(cuMemcpyDtoH(out, dst, n));
	ck_assert_int_eq(memcmp(in, out, n), 0);
	memset(out, 0, n);
	CHK(cuMemcpyDtoH(out, dst2, n));
	ck_assert_int_eq(memcmp(in, out, n), 0);
	CHK(cuCtxPopCurrent(NULL));
	free(in);
	free(out);
}
END_TEST

static double elapsed_ns(CUevent a, CUevent b)
{
	float ms = -1;

	CHK(cuEventElapsedTime(&ms, a, b));
	return (double)ms * 1e6;
}

static void near(double got, double want, const char *what)
{
	double d = got > want ? got - want : want - got;

	ck_assert_msg(d <= 0.01 * want, "%s: %.0f ns, expected %.0f ns", what, got, want);
}

/* A 16 MiB peer copy at SIMCUDA_PEER_GBPS=2 takes 8.39 ms, and holds the source device's D2H lane
 * and the destination's H2D lane meanwhile: an upload to device 1 queued behind it waits, an upload
 * to device 0 does not. */
START_TEST(test_peer_copy_time)
{
	CUcontext c0, c1;
	CUdeviceptr src, dst, up0, up1;
	CUstream s0, s1, s0b;
	CUevent a, b;
	void *h;
	const size_t n = 16 * SIMTEST_MIB;
	const double cost = (double)n / 2e9 * 1e9;
	uint64_t t0;

	simtest_start("SIMCUDA_DEVICES=2", "SIMCUDA_MEM=256MiB", "SIMCUDA_LAUNCH_US=0", "SIMCUDA_PEER_GBPS=2",
		      "SIMCUDA_H2D_GBPS=2");
	c0 = simtest_ctx;
	c1 = primary(1);
	src = alloc_on(c0, n);
	up0 = alloc_on(c0, n);
	dst = alloc_on(c1, n);
	up1 = alloc_on(c1, n);
	CHK(cuMemAllocHost(&h, n));
	CHK(cuStreamCreate(&s0, CU_STREAM_NON_BLOCKING));
	CHK(cuStreamCreate(&s0b, CU_STREAM_NON_BLOCKING));
	CHK(cuEventCreate(&a, 0));
	CHK(cuEventCreate(&b, 0));
	CHK(cuCtxPushCurrent(c1));
	CHK(cuStreamCreate(&s1, CU_STREAM_NON_BLOCKING));
	CHK(cuCtxPopCurrent(NULL));
	CHK(cuCtxSynchronize());

	CHK(cuEventRecord(a, s0));
	CHK(cuMemcpyPeerAsync(dst, c1, src, c0, n, s0));
	CHK(cuEventRecord(b, s0));
	CHK(cuStreamSynchronize(s0));
	near(elapsed_ns(a, b), cost, "16 MiB peer copy at 2 GB/s");

	/* The link is shared: an upload to device 0 overlaps a peer copy, one to device 1 waits. */
	t0 = simtest_makespan_ns();
	CHK(cuMemcpyPeerAsync(dst, c1, src, c0, n, s0));
	CHK(cuMemcpyHtoDAsync(up0, h, n, s0b));
	near((double)(simtest_makespan_ns() - t0), cost, "upload to device 0 beside a peer copy");
	CHK(cuCtxPushCurrent(c1));
	CHK(cuMemcpyHtoDAsync(up1, h, n, s1));
	CHK(cuCtxPopCurrent(NULL));
	near((double)(simtest_makespan_ns() - t0), 2 * cost, "upload to device 1 behind a peer copy");
	CHK(cuStreamSynchronize(s0));
	CHK(cuStreamSynchronize(s0b));
	CHK(cuStreamSynchronize(s1));
}
END_TEST

/* Each device has its own engines: kernels on two devices overlap. */
START_TEST(test_engines_per_device)
{
	CUcontext c1;
	CUdeviceptr p0, p1;
	const uint64_t n = SIMTEST_MIB;
	const double cost = (double)(n * sizeof(float)) / 1e9 * 1e9;
	uint64_t t0;

	simtest_start("SIMCUDA_DEVICES=2", MEM_ENV, "SIMCUDA_LAUNCH_US=0", "SIMCUDA_DRAM_GBPS=1");
	c1 = primary(1);
	p0 = alloc_on(simtest_ctx, n * sizeof(float));
	p1 = alloc_on(c1, n * sizeof(float));
	CHK(cuCtxSynchronize());
	t0 = simtest_makespan_ns();
	CHK(simtest_fill(p0, 1.0f, n, NULL));
	CHK(cuCtxPushCurrent(c1));
	CHK(simtest_fill(p1, 2.0f, n, NULL));
	near((double)(simtest_makespan_ns() - t0), cost, "fills on two devices side by side");
	CHK(cuCtxSynchronize());
	simtest_expect_floats(p1, n, 2.0f);
	CHK(cuCtxPopCurrent(NULL));
	CHK(cuCtxSynchronize());
	simtest_expect_floats(p0, n, 1.0f);
}
END_TEST

static Suite *devices_suite(void)
{
	Suite *s = suite_create("simcuda_devices");
	TCase *tc = simtest_tcase(s, "devices", 30);

	tcase_add_test(tc, test_one_device_by_default);
	tcase_add_test(tc, test_bad_count_refused);
	tcase_add_test(tc, test_count_and_ordinals);
	tcase_add_test(tc, test_capacity_per_device);
	tcase_add_test(tc, test_pool_per_device);
	tcase_add_test(tc, test_peer_access_errors);
	tcase_add_test(tc, test_illegal_without_peer_access);
	tcase_add_test(tc, test_kernel_with_peer_access);
	tcase_add_test(tc, test_peer_copy_bytes);
	tcase_add_test(tc, test_vmm_access_per_device_copies);
	tcase_add_test(tc, test_vmm_access_per_device_kernels);
	tcase_add_test(tc, test_event_context);
	tcase_add_test(tc, test_context_end_kills_streams_and_events);
	tc = simtest_tcase(s, "clock", 30);
	tcase_add_test(tc, test_peer_copy_time);
	tcase_add_test(tc, test_engines_per_device);
	return s;
}

int main(void)
{
	return simtest_run(devices_suite());
}
