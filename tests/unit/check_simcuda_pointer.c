/* The simulated driver's pointer attributes, for cuMemAlloc and pool memory, the app's VMM
 * reservations, pinned host memory and unknown addresses; and its libraries: CUkernel handles,
 * their parameter layouts, launches through cuLaunchKernel, and module-scope variables. */
#include "config.h"

#include "tests/unit/simtest.h"

static unsigned long long attr_u64(CUpointer_attribute a, CUdeviceptr p)
{
	unsigned long long v = 0;

	CHK(cuPointerGetAttribute(&v, a, p));
	return v;
}

static int attr_int(CUpointer_attribute a, CUdeviceptr p)
{
	int v = -1;

	CHK(cuPointerGetAttribute(&v, a, p));
	return v;
}

START_TEST(test_attrs_mem_alloc)
{
	CUdeviceptr a, b, start = 0;
	CUcontext ctx = NULL;
	CUmemoryPool pool = (CUmemoryPool)1;
	unsigned int type = 0;
	void *host = NULL;
	size_t size = 0;
	CUDA_POINTER_ATTRIBUTE_P2P_TOKENS tokens;

	simtest_start();
	CHK(cuMemAlloc(&a, 10000));
	CHK(cuMemAlloc(&b, 10000));
	CHK(cuPointerGetAttribute(&ctx, CU_POINTER_ATTRIBUTE_CONTEXT, a + 5));
	ck_assert_ptr_eq(ctx, simtest_ctx);
	CHK(cuPointerGetAttribute(&type, CU_POINTER_ATTRIBUTE_MEMORY_TYPE, a));
	ck_assert_uint_eq(type, CU_MEMORYTYPE_DEVICE);
	ck_assert_uint_eq(attr_u64(CU_POINTER_ATTRIBUTE_DEVICE_POINTER, a + 8), a + 8);
	CHK_ERR(cuPointerGetAttribute(&host, CU_POINTER_ATTRIBUTE_HOST_POINTER, a), CUDA_ERROR_INVALID_VALUE);
	CHK(cuPointerGetAttribute(&start, CU_POINTER_ATTRIBUTE_RANGE_START_ADDR, a + 9999));
	ck_assert_uint_eq(start, a);
	CHK(cuPointerGetAttribute(&size, CU_POINTER_ATTRIBUTE_RANGE_SIZE, a + 9999));
	ck_assert_uint_eq(size, 10000);
	/* Past the allocation's bytes (inside its page) is not the allocation. */
	CHK_ERR(cuPointerGetAttribute(&size, CU_POINTER_ATTRIBUTE_RANGE_SIZE, a + 10000), CUDA_ERROR_INVALID_VALUE);
	ck_assert_uint_ne(attr_u64(CU_POINTER_ATTRIBUTE_BUFFER_ID, a), attr_u64(CU_POINTER_ATTRIBUTE_BUFFER_ID, b));
	ck_assert_uint_eq(attr_u64(CU_POINTER_ATTRIBUTE_BUFFER_ID, a), attr_u64(CU_POINTER_ATTRIBUTE_BUFFER_ID, a + 64));
	ck_assert_int_eq(attr_int(CU_POINTER_ATTRIBUTE_IS_MANAGED, a), 0);
	ck_assert_int_eq(attr_int(CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL, a), 0);
	ck_assert_int_eq(attr_int(CU_POINTER_ATTRIBUTE_IS_LEGACY_CUDA_IPC_CAPABLE, a), 1);
	ck_assert_int_eq(attr_int(CU_POINTER_ATTRIBUTE_MAPPED, a), 1);
	ck_assert_int_eq(attr_int(CU_POINTER_ATTRIBUTE_ACCESS_FLAGS, a), CU_POINTER_ATTRIBUTE_ACCESS_FLAG_READWRITE);
	ck_assert_uint_eq(attr_u64(CU_POINTER_ATTRIBUTE_ALLOWED_HANDLE_TYPES, a), 0);
	CHK(cuPointerGetAttribute(&pool, CU_POINTER_ATTRIBUTE_MEMPOOL_HANDLE, a));
	ck_assert_ptr_null(pool);
	CHK_ERR(cuPointerGetAttribute(&tokens, CU_POINTER_ATTRIBUTE_P2P_TOKENS, a), CUDA_ERROR_NOT_SUPPORTED);
	CHK_ERR(cuPointerGetAttribute(&size, (CUpointer_attribute)99, a), CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuPointerGetAttribute(NULL, CU_POINTER_ATTRIBUTE_RANGE_SIZE, a), CUDA_ERROR_INVALID_VALUE);
	/* A freed allocation is gone, and a new one gets an ID never used before. */
	{
		unsigned long long id = attr_u64(CU_POINTER_ATTRIBUTE_BUFFER_ID, a);
		CHK(cuMemFree(a));
		CHK_ERR(cuPointerGetAttribute(&size, CU_POINTER_ATTRIBUTE_RANGE_SIZE, a), CUDA_ERROR_INVALID_VALUE);
		CHK(cuMemAlloc(&a, 10000));
		ck_assert_uint_ne(attr_u64(CU_POINTER_ATTRIBUTE_BUFFER_ID, a), id);
	}
}
END_TEST

START_TEST(test_attrs_pool_alloc)
{
	CUdeviceptr a;
	CUmemoryPool pool = NULL, want;

	simtest_start();
	CHK(cuDeviceGetDefaultMemPool(&want, simtest_dev));
	CHK(cuMemAllocAsync(&a, 4096, NULL));
	CHK(cuPointerGetAttribute(&pool, CU_POINTER_ATTRIBUTE_MEMPOOL_HANDLE, a));
	ck_assert_ptr_eq(pool, want);
	ck_assert_int_eq(attr_int(CU_POINTER_ATTRIBUTE_IS_LEGACY_CUDA_IPC_CAPABLE, a), 0);
	CHK(cuMemFreeAsync(a, NULL));
	CHK(cuCtxSynchronize());
}
END_TEST

START_TEST(test_attrs_vmm)
{
	CUmemAllocationProp prop = simtest_prop(0);
	CUmemGenericAllocationHandle h;
	CUdeviceptr va, p;
	size_t gran = 0, size = 0;
	unsigned long long block;

	simtest_start("SIMCUDA_GRANULARITY=64KiB");
	CHK(cuMemGetAllocationGranularity(&gran, &prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM));
	CHK(cuMemAddressReserve(&va, 4 * gran, 0, 0, 0));
	CHK(cuMemCreate(&h, gran, &prop, 0));
	CHK(cuMemMap(va + gran, gran, 0, h, 0));
	CHK(simtest_set_access(va + gran, gran, CU_MEM_ACCESS_FLAGS_PROT_READ));
	/* The range is the reservation, mapped or not; the mapping is what backs the address. */
	CHK(cuPointerGetAttribute(&p, CU_POINTER_ATTRIBUTE_RANGE_START_ADDR, va + gran + 8));
	ck_assert_uint_eq(p, va);
	CHK(cuPointerGetAttribute(&size, CU_POINTER_ATTRIBUTE_RANGE_SIZE, va + gran + 8));
	ck_assert_uint_eq(size, 4 * gran);
	ck_assert_int_eq(attr_int(CU_POINTER_ATTRIBUTE_MAPPED, va + gran), 1);
	ck_assert_int_eq(attr_int(CU_POINTER_ATTRIBUTE_ACCESS_FLAGS, va + gran), CU_POINTER_ATTRIBUTE_ACCESS_FLAG_READ);
	ck_assert_uint_eq(attr_u64(CU_POINTER_ATTRIBUTE_MAPPING_BASE_ADDR, va + gran + 8), va + gran);
	ck_assert_uint_eq(attr_u64(CU_POINTER_ATTRIBUTE_MAPPING_SIZE, va + gran + 8), gran);
	ck_assert_int_eq(attr_int(CU_POINTER_ATTRIBUTE_IS_LEGACY_CUDA_IPC_CAPABLE, va + gran), 0);
	block = attr_u64(CU_POINTER_ATTRIBUTE_MEMORY_BLOCK_ID, va + gran);
	ck_assert_uint_ne(block, attr_u64(CU_POINTER_ATTRIBUTE_BUFFER_ID, va + gran));
	/* Unmapped inside the reservation: known, but nothing backs it. */
	ck_assert_int_eq(attr_int(CU_POINTER_ATTRIBUTE_MAPPED, va), 0);
	CHK_ERR(cuPointerGetAttribute(&p, CU_POINTER_ATTRIBUTE_DEVICE_POINTER, va), CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuPointerGetAttribute(&size, CU_POINTER_ATTRIBUTE_MAPPING_SIZE, va), CUDA_ERROR_INVALID_VALUE);
	CHK(cuMemUnmap(va + gran, gran));
	CHK(cuMemRelease(h));
	CHK(cuMemAddressFree(va, 4 * gran));
	CHK_ERR(cuPointerGetAttribute(&size, CU_POINTER_ATTRIBUTE_RANGE_SIZE, va), CUDA_ERROR_INVALID_VALUE);
}
END_TEST

START_TEST(test_attrs_host_and_unknown)
{
	void *h, *hp = NULL;
	unsigned int type = 0;
	CUdeviceptr d = 0;
	static char pageable[64];

	simtest_start();
	CHK(cuMemHostAlloc(&h, 8192, 0));
	CHK(cuPointerGetAttribute(&type, CU_POINTER_ATTRIBUTE_MEMORY_TYPE, (CUdeviceptr)(uintptr_t)h + 1));
	ck_assert_uint_eq(type, CU_MEMORYTYPE_HOST);
	CHK(cuPointerGetAttribute(&hp, CU_POINTER_ATTRIBUTE_HOST_POINTER, (CUdeviceptr)(uintptr_t)h + 1));
	ck_assert_ptr_eq(hp, (char *)h + 1);
	CHK(cuPointerGetAttribute(&d, CU_POINTER_ATTRIBUTE_DEVICE_POINTER, (CUdeviceptr)(uintptr_t)h));
	ck_assert_uint_eq(d, (CUdeviceptr)(uintptr_t)h);
	ck_assert_uint_eq(attr_u64(CU_POINTER_ATTRIBUTE_RANGE_SIZE, (CUdeviceptr)(uintptr_t)h), 8192);
	ck_assert_int_eq(attr_int(CU_POINTER_ATTRIBUTE_IS_LEGACY_CUDA_IPC_CAPABLE, (CUdeviceptr)(uintptr_t)h), 0);
	CHK(cuMemFreeHost(h));
	/* Memory the driver does not know: every attribute is an error. */
	CHK_ERR(cuPointerGetAttribute(&type, CU_POINTER_ATTRIBUTE_MEMORY_TYPE, (CUdeviceptr)(uintptr_t)pageable),
		CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuPointerGetAttribute(&type, CU_POINTER_ATTRIBUTE_MEMORY_TYPE, (CUdeviceptr)(uintptr_t)h),
		CUDA_ERROR_INVALID_VALUE);
}
END_TEST

START_TEST(test_attrs_batch)
{
	CUdeviceptr a, start = 1;
	static char pageable[64];
	unsigned int type = 7;
	void *host = (void *)1;
	unsigned long long id = 1;
	CUpointer_attribute attrs[] = {CU_POINTER_ATTRIBUTE_MEMORY_TYPE, CU_POINTER_ATTRIBUTE_HOST_POINTER,
				       CU_POINTER_ATTRIBUTE_BUFFER_ID, CU_POINTER_ATTRIBUTE_RANGE_START_ADDR};
	void *data[] = {&type, &host, &id, &start};
	CUpointer_attribute bad[] = {CU_POINTER_ATTRIBUTE_P2P_TOKENS};
	CUDA_POINTER_ATTRIBUTE_P2P_TOKENS tokens;
	void *bad_data[] = {&tokens};

	simtest_start();
	CHK(cuMemAlloc(&a, 5000));
	CHK(cuPointerGetAttributes(4, attrs, data, a + 100));
	ck_assert_uint_eq(type, CU_MEMORYTYPE_DEVICE);
	ck_assert_ptr_null(host); /* does not apply: a zero value, not an error */
	ck_assert_uint_eq(id, attr_u64(CU_POINTER_ATTRIBUTE_BUFFER_ID, a));
	ck_assert_uint_eq(start, a);
	/* An unknown address: zero values and success. */
	CHK(cuPointerGetAttributes(4, attrs, data, (CUdeviceptr)(uintptr_t)pageable));
	ck_assert_uint_eq(type, 0);
	ck_assert_uint_eq(id, 0);
	ck_assert_uint_eq(start, 0);
	CHK_ERR(cuPointerGetAttributes(1, bad, bad_data, a), CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuPointerGetAttributes(0, attrs, data, a), CUDA_ERROR_INVALID_VALUE);
}
END_TEST

/* ---- libraries and CUkernel ---- */

START_TEST(test_library_kernel)
{
	CUlibrary lib, l2 = NULL;
	CUkernel k, k2;
	CUfunction f, f2;
	CUmodule m, m2, fm;
	CUcontext c;
	const char *fname = NULL;
	CUdeviceptr y, x;
	size_t off = 1, size = 0;
	const uint64_t n = 1000;

	simtest_start();
	CHK_ERR(cuLibraryLoadData(&lib, "elsewhere", NULL, NULL, 0, NULL, NULL, 0), CUDA_ERROR_INVALID_IMAGE);
	CHK(cuLibraryLoadData(&lib, "simcuda", NULL, NULL, 0, NULL, NULL, 0));
	CHK_ERR(cuLibraryGetKernel(&k, lib, "mv_nothing"), CUDA_ERROR_NOT_FOUND);
	CHK(cuLibraryGetKernel(&k, lib, "mv_axpy"));
	CHK(cuLibraryGetKernel(&k2, lib, "mv_axpy"));
	ck_assert_ptr_eq(k, k2);
	/* mv_axpy(float *y, const float *x, float a, uint64_t n) */
	CHK(cuKernelGetParamInfo(k, 2, &off, &size));
	ck_assert_uint_eq(off, 16);
	ck_assert_uint_eq(size, 4);
	CHK(cuKernelGetParamInfo(k, 3, &off, &size));
	ck_assert_uint_eq(off, 24);
	ck_assert_uint_eq(size, 8);
	CHK_ERR(cuKernelGetParamInfo(k, 4, &off, &size), CUDA_ERROR_INVALID_VALUE);
	/* A CUkernel is not a CUfunction to cuFuncGetParamInfo, nor a CUfunction a CUkernel. */
	CHK_ERR(cuFuncGetParamInfo((CUfunction)k, 0, &off, &size), CUDA_ERROR_INVALID_HANDLE);
	CHK_ERR(cuKernelGetParamInfo((CUkernel)simtest_func("mv_axpy"), 0, &off, &size), CUDA_ERROR_INVALID_HANDLE);
	/* The library's own function, not the one of a module loaded beside it. */
	CHK_ERR(cuLibraryGetModule(&m, lib), CUDA_ERROR_NOT_FOUND);
	CHK(cuKernelGetFunction(&f, k));
	CHK(cuFuncGetName(&fname, f));
	ck_assert_str_eq(fname, "mv_axpy");
	ck_assert_ptr_ne(f, simtest_func("mv_axpy"));
	/* It sits in the library's module in this context, loaded for it. */
	CHK(cuKernelGetLibrary(&l2, k));
	ck_assert_ptr_eq(l2, lib);
	CHK(cuLibraryGetModule(&m, lib));
	CHK(cuFuncGetModule(&fm, f));
	ck_assert_ptr_eq(fm, m);
	/* Another context gets a module and a function of its own, which die with it; the kernel lives. */
	CHK(cuCtxCreate(&c, NULL, 0, 0));
	CHK_ERR(cuLibraryGetModule(&m2, lib), CUDA_ERROR_NOT_FOUND);
	CHK(cuKernelGetFunction(&f2, k));
	ck_assert_ptr_ne(f2, f);
	CHK(cuFuncGetModule(&m2, f2));
	ck_assert_ptr_ne(m2, m);
	CHK(cuCtxDestroy(c));
	CHK(cuCtxSetCurrent(simtest_ctx));
	CHK_ERR(cuFuncGetName(&fname, f2), CUDA_ERROR_INVALID_HANDLE);
	CHK(cuKernelGetParamInfo(k, 0, &off, &size));
	CHK(cuFuncGetName(&fname, f));
	/* Launched as a CUfunction, as cudart does with lazy loading. */
	CHK(cuMemAlloc(&y, n * sizeof(float)));
	CHK(cuMemAlloc(&x, n * sizeof(float)));
	CHK(simtest_fill(y, 1.0f, n, NULL));
	CHK(simtest_fill(x, 2.0f, n, NULL));
	{
		float a = 3.0f;
		uint64_t nn = n;
		void *args[] = {&y, &x, &a, (void *)&nn};
		CHK(cuLaunchKernel((CUfunction)k, 1, 1, 1, 1, 1, 1, 0, NULL, args, NULL));
	}
	simtest_expect_floats(y, n, 7.0f);
	CHK(cuLibraryUnload(lib));
	CHK_ERR(cuLibraryUnload(lib), CUDA_ERROR_INVALID_HANDLE);
	/* Its kernels die with it, and its module in every context with their functions. */
	CHK_ERR(cuKernelGetParamInfo(k, 0, &off, &size), CUDA_ERROR_INVALID_HANDLE);
	CHK_ERR(cuKernelGetLibrary(&l2, k), CUDA_ERROR_INVALID_HANDLE);
	CHK_ERR(cuFuncGetName(&fname, f), CUDA_ERROR_INVALID_HANDLE);
	CHK_ERR(cuFuncGetModule(&fm, f), CUDA_ERROR_INVALID_HANDLE);
	CHK_ERR(cuLibraryGetKernel(&k, lib, "mv_axpy"), CUDA_ERROR_INVALID_HANDLE);
}
END_TEST

START_TEST(test_globals)
{
	CUlibrary lib;
	CUdeviceptr g = 0, g2 = 0, m = 0;
	size_t bytes = 0;

	simtest_start();
	CHK(cuLibraryLoadData(&lib, "simcuda", NULL, NULL, 0, NULL, NULL, 0));
	CHK_ERR(cuLibraryGetGlobal(&g, &bytes, lib, "nothing"), CUDA_ERROR_NOT_FOUND);
	CHK(cuLibraryGetGlobal(&g, &bytes, lib, "mv_scratch"));
	ck_assert_uint_eq(bytes, 256);
	CHK(cuLibraryGetGlobal(&g2, NULL, lib, "mv_scratch"));
	ck_assert_uint_eq(g, g2);
	CHK(cuModuleGetGlobal(&m, &bytes, simtest_mod, "mv_scratch"));
	ck_assert_uint_ne(m, g);
	/* Device memory like any other: filled and read back. */
	CHK(simtest_fill(g, 5.0f, 64, NULL));
	simtest_expect_floats(g, 64, 5.0f);
	CHK_ERR(cuModuleGetGlobal(&m, &bytes, simtest_mod, "nothing"), CUDA_ERROR_NOT_FOUND);
	CHK(cuLibraryUnload(lib));
	CHK_ERR(cuLibraryGetGlobal(&g, &bytes, lib, "mv_scratch"), CUDA_ERROR_INVALID_HANDLE);
}
END_TEST

/* mv_wide: 71 parameters, the last a pointer past 64 of them. */
START_TEST(test_wide_kernel)
{
	CUfunction f;
	CUdeviceptr y, x;
	size_t off = 0, size = 0;
	uint32_t words[69] = {100};
	void *args[71];

	simtest_start();
	f = simtest_func("mv_wide");
	CHK(cuFuncGetParamInfo(f, 69, &off, &size));
	ck_assert_uint_eq(off, 280);
	ck_assert_uint_eq(size, 4);
	CHK(cuFuncGetParamInfo(f, 70, &off, &size));
	ck_assert_uint_eq(off, 288);
	ck_assert_uint_eq(size, 8);
	CHK_ERR(cuFuncGetParamInfo(f, 71, &off, &size), CUDA_ERROR_INVALID_VALUE);
	CHK(cuMemAlloc(&y, 400));
	CHK(cuMemAlloc(&x, 400));
	CHK(simtest_fill(x, 1.5f, 100, NULL));
	args[0] = &y;
	for (int i = 0; i < 69; i++)
		args[1 + i] = &words[i];
	args[70] = &x;
	CHK(simtest_launch("mv_wide", NULL, args));
	simtest_expect_floats(y, 100, 3.0f);
}
END_TEST

static Suite *pointer_suite(void)
{
	Suite *s = suite_create("simcuda_pointer");
	TCase *tc = simtest_tcase(s, "attributes", 10);

	tcase_add_test(tc, test_attrs_mem_alloc);
	tcase_add_test(tc, test_attrs_pool_alloc);
	tcase_add_test(tc, test_attrs_vmm);
	tcase_add_test(tc, test_attrs_host_and_unknown);
	tcase_add_test(tc, test_attrs_batch);
	tc = simtest_tcase(s, "library", 10);
	tcase_add_test(tc, test_library_kernel);
	tcase_add_test(tc, test_globals);
	tcase_add_test(tc, test_wide_kernel);
	return s;
}

int main(void)
{
	return simtest_run(pointer_suite());
}
