/* The simulated driver's initialisation, device queries, contexts and error strings. */
#include "config.h"

#include "tests/unit/simtest.h"

START_TEST(test_init_required)
{
	int count = -1;
	CUdevice dev;
	CUcontext ctx;

	CHK_ERR(cuDeviceGetCount(&count), CUDA_ERROR_NOT_INITIALIZED);
	CHK_ERR(cuDeviceGet(&dev, 0), CUDA_ERROR_NOT_INITIALIZED);
	CHK_ERR(cuCtxGetCurrent(&ctx), CUDA_ERROR_NOT_INITIALIZED);
	CHK_ERR(cuDevicePrimaryCtxRetain(&ctx, 0), CUDA_ERROR_NOT_INITIALIZED);
	ck_assert_int_eq(count, -1);
	/* Flags must be zero, and a refused call does not initialise. */
	CHK_ERR(cuInit(1), CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuDeviceGetCount(&count), CUDA_ERROR_NOT_INITIALIZED);
	CHK(cuInit(0));
	CHK(cuDeviceGetCount(&count));
	ck_assert_int_eq(count, 1);
	/* A second cuInit is harmless. */
	CHK(cuInit(0));
}
END_TEST

START_TEST(test_device_identity)
{
	CUdevice dev = -1;
	char name[256];
	size_t total = 0;
	int version = 0;

	simtest_env("SIMCUDA_MEM=3GiB", NULL);
	CHK(cuInit(0));
	CHK(cuDeviceGet(&dev, 0));
	ck_assert_int_eq(dev, 0);
	CHK_ERR(cuDeviceGet(&dev, 1), CUDA_ERROR_INVALID_DEVICE);
	CHK_ERR(cuDeviceGet(NULL, 0), CUDA_ERROR_INVALID_VALUE);
	memset(name, 0, sizeof(name));
	CHK(cuDeviceGetName(name, sizeof(name), 0));
	ck_assert_msg(strstr(name, "simcuda") != NULL, "device name '%s' does not say it is simulated", name);
	CHK_ERR(cuDeviceGetName(name, sizeof(name), 1), CUDA_ERROR_INVALID_DEVICE);
	CHK(cuDeviceTotalMem(&total, 0));
	ck_assert_uint_eq(total, 3ull << 30);
	CHK(cuDriverGetVersion(&version));
	ck_assert_int_eq(version, CUDA_VERSION);
}
END_TEST

START_TEST(test_total_mem_decimal_units)
{
	size_t total = 0;

	/* Decimal units are decimal. */
	simtest_env("SIMCUDA_MEM=2GB", NULL);
	CHK(cuInit(0));
	CHK(cuDeviceTotalMem(&total, 0));
	ck_assert_uint_eq(total, 2000000000ull);
}
END_TEST

static int attr(CUdevice_attribute a)
{
	int v = -12345;

	CHK(cuDeviceGetAttribute(&v, a, 0));
	return v;
}

START_TEST(test_attributes)
{
	CHK(cuInit(0));
	ck_assert_int_eq(attr(CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED), 1);
	ck_assert_int_eq(attr(CU_DEVICE_ATTRIBUTE_HOST_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED), 1);
	ck_assert_int_eq(attr(CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING), 1);
	ck_assert_int_eq(attr(CU_DEVICE_ATTRIBUTE_WARP_SIZE), 32);
	ck_assert_int_eq(attr(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR), 9);
	ck_assert_int_eq(attr(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR), 0);
	ck_assert_int_eq(attr(CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK), 1024);
	ck_assert_int_eq(attr(CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED), 1);
	ck_assert_int_gt(attr(CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT), 0);
	ck_assert_int_ge(attr(CU_DEVICE_ATTRIBUTE_ASYNC_ENGINE_COUNT), 2);
}
END_TEST

START_TEST(test_no_host_vmm)
{
	simtest_env("SIMCUDA_NO_HOST_VMM=1", NULL);
	CHK(cuInit(0));
	ck_assert_int_eq(attr(CU_DEVICE_ATTRIBUTE_HOST_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED), 0);
	/* Device VMM is unaffected. */
	ck_assert_int_eq(attr(CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED), 1);
}
END_TEST

START_TEST(test_no_host_vmm_zero_means_unset)
{
	simtest_env("SIMCUDA_NO_HOST_VMM=0", NULL);
	CHK(cuInit(0));
	ck_assert_int_eq(attr(CU_DEVICE_ATTRIBUTE_HOST_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED), 1);
}
END_TEST

START_TEST(test_attribute_invalid)
{
	int v = 7;

	CHK(cuInit(0));
	CHK_ERR(cuDeviceGetAttribute(&v, (CUdevice_attribute)0, 0), CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuDeviceGetAttribute(&v, CU_DEVICE_ATTRIBUTE_MAX, 0), CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuDeviceGetAttribute(&v, (CUdevice_attribute)-3, 0), CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuDeviceGetAttribute(NULL, CU_DEVICE_ATTRIBUTE_WARP_SIZE, 0), CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuDeviceGetAttribute(&v, CU_DEVICE_ATTRIBUTE_WARP_SIZE, 1), CUDA_ERROR_INVALID_DEVICE);
	ck_assert_int_eq(v, 7);
}
END_TEST

START_TEST(test_ctx_stack)
{
	CUcontext created = NULL, primary = NULL, cur = (CUcontext)1, popped = NULL;
	CUdevice dev = -1;
	CUdeviceptr p;

	CHK(cuInit(0));
	CHK(cuCtxGetCurrent(&cur));
	ck_assert_ptr_null(cur);
	/* Without a context, context-bound calls are refused. */
	CHK_ERR(cuCtxSynchronize(), CUDA_ERROR_INVALID_CONTEXT);
	CHK_ERR(cuMemAlloc(&p, 4096), CUDA_ERROR_INVALID_CONTEXT);
	CHK_ERR(cuCtxGetDevice(&dev), CUDA_ERROR_INVALID_CONTEXT);
	CHK_ERR(cuCtxPopCurrent(&popped), CUDA_ERROR_INVALID_CONTEXT);

	/* A created context becomes current. */
	CHK(cuCtxCreate(&created, NULL, 0, 0));
	ck_assert_ptr_nonnull(created);
	CHK(cuCtxGetCurrent(&cur));
	ck_assert_ptr_eq(cur, created);
	CHK(cuCtxGetDevice(&dev));
	ck_assert_int_eq(dev, 0);
	CHK(cuCtxSynchronize());

	/* Push the primary context over it, then pop back. */
	CHK(cuDevicePrimaryCtxRetain(&primary, 0));
	ck_assert_ptr_ne(primary, created);
	CHK(cuCtxPushCurrent(primary));
	CHK(cuCtxGetCurrent(&cur));
	ck_assert_ptr_eq(cur, primary);
	CHK(cuMemAlloc(&p, 4096));
	CHK(cuMemFree(p));
	CHK(cuCtxPopCurrent(&popped));
	ck_assert_ptr_eq(popped, primary);
	CHK(cuCtxGetCurrent(&cur));
	ck_assert_ptr_eq(cur, created);

	/* Set replaces the top of the stack; NULL unbinds it. */
	CHK(cuCtxSetCurrent(primary));
	CHK(cuCtxGetCurrent(&cur));
	ck_assert_ptr_eq(cur, primary);
	CHK(cuCtxSetCurrent(NULL));
	CHK(cuCtxGetCurrent(&cur));
	ck_assert_ptr_null(cur);
	CHK(cuCtxPushCurrent(created));
	CHK(cuCtxGetCurrent(&cur));
	ck_assert_ptr_eq(cur, created);

	/* Destroying the current context unbinds it; the primary context cannot be destroyed. */
	CHK_ERR(cuCtxDestroy(primary), CUDA_ERROR_INVALID_CONTEXT);
	CHK(cuCtxDestroy(created));
	CHK(cuCtxGetCurrent(&cur));
	ck_assert_ptr_null(cur);
	CHK_ERR(cuCtxDestroy(created), CUDA_ERROR_INVALID_CONTEXT);
	CHK_ERR(cuCtxPushCurrent(created), CUDA_ERROR_INVALID_CONTEXT);
	CHK_ERR(cuCtxSetCurrent(created), CUDA_ERROR_INVALID_CONTEXT);
	CHK_ERR(cuCtxPushCurrent(NULL), CUDA_ERROR_INVALID_CONTEXT);
	CHK(cuDevicePrimaryCtxRelease(0));
}
END_TEST

START_TEST(test_ctx_synchronize_waits)
{
	CUstream s;
	CUdeviceptr p;
	const uint64_t n = 4096;

	simtest_start("SIMCUDA_DELAY_KERNEL_US=100000");
	CHK(cuStreamCreate(&s, 0));
	CHK(cuMemAlloc(&p, n * sizeof(float)));
	CHK(simtest_fill(p, 4.0f, n, s));
	CHK_ERR(cuStreamQuery(s), CUDA_ERROR_NOT_READY);
	CHK(cuCtxSynchronize());
	CHK(cuStreamQuery(s));
	simtest_expect_floats(p, n, 4.0f);
}
END_TEST

START_TEST(test_ctx_flags)
{
	CUcontext c;
	unsigned flags = 99;

	CHK(cuInit(0));
	CHK(cuCtxCreate(&c, NULL, CU_CTX_SCHED_BLOCKING_SYNC, 0));
	CHK(cuCtxGetFlags(&flags));
	ck_assert_uint_eq(flags, CU_CTX_SCHED_BLOCKING_SYNC);
	CHK_ERR(cuCtxCreate(&c, NULL, 0, 1), CUDA_ERROR_INVALID_DEVICE);
	CHK_ERR(cuCtxCreate(NULL, NULL, 0, 0), CUDA_ERROR_INVALID_VALUE);
}
END_TEST

START_TEST(test_primary_ctx)
{
	CUcontext a = NULL, b = NULL;
	unsigned flags = 99;
	int active = -1;
	CUdeviceptr p;

	CHK(cuInit(0));
	CHK(cuDevicePrimaryCtxGetState(0, &flags, &active));
	ck_assert_int_eq(active, 0);
	ck_assert_uint_eq(flags, 0);
	CHK_ERR(cuDevicePrimaryCtxGetState(1, &flags, &active), CUDA_ERROR_INVALID_DEVICE);
	CHK_ERR(cuDevicePrimaryCtxGetState(0, NULL, &active), CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuDevicePrimaryCtxRelease(0), CUDA_ERROR_INVALID_CONTEXT);

	CHK(cuDevicePrimaryCtxSetFlags(0, CU_CTX_SCHED_YIELD));
	CHK(cuDevicePrimaryCtxRetain(&a, 0));
	CHK(cuDevicePrimaryCtxRetain(&b, 0));
	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_eq(a, b);
	CHK(cuDevicePrimaryCtxGetState(0, &flags, &active));
	ck_assert_int_eq(active, 1);
	ck_assert_uint_eq(flags, CU_CTX_SCHED_YIELD);
	CHK(cuCtxSetCurrent(a));
	CHK(cuMemAlloc(&p, 4096));
	CHK(cuMemFree(p));

	/* Still active after one of two releases. */
	CHK(cuDevicePrimaryCtxRelease(0));
	CHK(cuDevicePrimaryCtxGetState(0, &flags, &active));
	ck_assert_int_eq(active, 1);
	CHK(cuMemAlloc(&p, 4096));
	CHK(cuMemFree(p));

	/* The last release deactivates it; the handle still current is now unusable. */
	CHK(cuDevicePrimaryCtxRelease(0));
	CHK(cuDevicePrimaryCtxGetState(0, &flags, &active));
	ck_assert_int_eq(active, 0);
	CHK_ERR(cuMemAlloc(&p, 4096), CUDA_ERROR_CONTEXT_IS_DESTROYED);
	CHK_ERR(cuDevicePrimaryCtxRelease(0), CUDA_ERROR_INVALID_CONTEXT);

	/* Retaining again revives the same handle. */
	CHK(cuDevicePrimaryCtxRetain(&b, 0));
	ck_assert_ptr_eq(a, b);
	CHK(cuMemAlloc(&p, 4096));
	CHK(cuMemFree(p));
	CHK_ERR(cuDevicePrimaryCtxRetain(&b, 1), CUDA_ERROR_INVALID_DEVICE);
	CHK_ERR(cuDevicePrimaryCtxRetain(NULL, 0), CUDA_ERROR_INVALID_VALUE);
}
END_TEST

START_TEST(test_error_strings)
{
	const char *s = NULL;

	/* Error strings need no cuInit. */
	CHK(cuGetErrorName(CUDA_ERROR_OUT_OF_MEMORY, &s));
	ck_assert_str_eq(s, "CUDA_ERROR_OUT_OF_MEMORY");
	CHK(cuGetErrorString(CUDA_ERROR_OUT_OF_MEMORY, &s));
	ck_assert_str_eq(s, "out of memory");
	CHK(cuGetErrorName(CUDA_SUCCESS, &s));
	ck_assert_str_eq(s, "CUDA_SUCCESS");
	CHK(cuGetErrorString(CUDA_SUCCESS, &s));
	ck_assert_str_eq(s, "no error");
	CHK(cuGetErrorName(CUDA_ERROR_ILLEGAL_ADDRESS, &s));
	ck_assert_str_eq(s, "CUDA_ERROR_ILLEGAL_ADDRESS");
	CHK(cuGetErrorString(CUDA_ERROR_ILLEGAL_ADDRESS, &s));
	ck_assert_str_eq(s, "an illegal memory access was encountered");
	CHK(cuGetErrorName(CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED, &s));
	ck_assert_str_eq(s, "CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED");
	CHK(cuGetErrorName(CUDA_ERROR_UNKNOWN, &s));
	ck_assert_str_eq(s, "CUDA_ERROR_UNKNOWN");

	s = "untouched";
	CHK_ERR(cuGetErrorName((CUresult)123456, &s), CUDA_ERROR_INVALID_VALUE);
	ck_assert_ptr_null(s);
	s = "untouched";
	CHK_ERR(cuGetErrorString((CUresult)123456, &s), CUDA_ERROR_INVALID_VALUE);
	ck_assert_ptr_null(s);
	CHK_ERR(cuGetErrorName(CUDA_SUCCESS, NULL), CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuGetErrorString(CUDA_SUCCESS, NULL), CUDA_ERROR_INVALID_VALUE);
}
END_TEST

static Suite *device_suite(void)
{
	Suite *s = suite_create("simcuda_device");
	TCase *tc = simtest_tcase(s, "device", 10);

	tcase_add_test(tc, test_init_required);
	tcase_add_test(tc, test_device_identity);
	tcase_add_test(tc, test_total_mem_decimal_units);
	tcase_add_test(tc, test_attributes);
	tcase_add_test(tc, test_no_host_vmm);
	tcase_add_test(tc, test_no_host_vmm_zero_means_unset);
	tcase_add_test(tc, test_attribute_invalid);
	tc = simtest_tcase(s, "context", 10);
	tcase_add_test(tc, test_ctx_stack);
	tcase_add_test(tc, test_ctx_synchronize_waits);
	tcase_add_test(tc, test_ctx_flags);
	tcase_add_test(tc, test_primary_ctx);
	tc = simtest_tcase(s, "errors", 10);
	tcase_add_test(tc, test_error_strings);
	return s;
}

int main(void)
{
	return simtest_run(device_suite());
}
