/* The simulated driver's virtual memory management: reservations, physical allocations on the device
 * and on the host, mappings, access, and the illegal address raised by touching what is not mapped. */
#include "config.h"

#include "tests/unit/simtest.h"

#define GRAN (2 * SIMTEST_MIB)

/* Reserves size bytes, creates one allocation of that size, maps it and gives read-write access. */
static CUdeviceptr map_new(size_t size, int host, CUmemGenericAllocationHandle *out)
{
	CUmemAllocationProp prop = simtest_prop(host);
	CUmemGenericAllocationHandle h;
	CUdeviceptr va;

	CHK(cuMemAddressReserve(&va, size, 0, 0, 0));
	CHK(cuMemCreate(&h, size, &prop, 0));
	CHK(cuMemMap(va, size, 0, h, 0));
	CHK(simtest_set_access(va, size, CU_MEM_ACCESS_FLAGS_PROT_READWRITE));
	if (out != NULL)
		*out = h;
	return va;
}

START_TEST(test_granularity)
{
	CUmemAllocationProp prop = simtest_prop(0);
	size_t g = 0;

	simtest_start("SIMCUDA_MEM=64MiB");
	CHK(cuMemGetAllocationGranularity(&g, &prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM));
	ck_assert_uint_eq(g, GRAN);
	g = 0;
	CHK(cuMemGetAllocationGranularity(&g, &prop, CU_MEM_ALLOC_GRANULARITY_RECOMMENDED));
	ck_assert_uint_eq(g, GRAN);
	prop = simtest_prop(1);
	g = 0;
	CHK(cuMemGetAllocationGranularity(&g, &prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM));
	ck_assert_uint_eq(g, GRAN);
	CHK_ERR(cuMemGetAllocationGranularity(&g, &prop, (CUmemAllocationGranularity_flags)7),
		CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuMemGetAllocationGranularity(&g, NULL, CU_MEM_ALLOC_GRANULARITY_MINIMUM), CUDA_ERROR_INVALID_VALUE);
}
END_TEST

START_TEST(test_lifecycle)
{
	CUmemAllocationProp prop = simtest_prop(0);
	CUmemGenericAllocationHandle h;
	CUdeviceptr va = 0;
	const size_t size = 2 * GRAN;
	const uint64_t n = size / sizeof(float);

	simtest_start("SIMCUDA_MEM=64MiB");
	CHK(cuMemAddressReserve(&va, size, 0, 0, 0));
	ck_assert_uint_ne(va, 0);
	ck_assert_uint_eq(va % GRAN, 0);
	/* A reservation costs no memory; the allocation does. */
	ck_assert_uint_eq(simtest_free_bytes(), 64 * SIMTEST_MIB);
	CHK(cuMemCreate(&h, size, &prop, 0));
	ck_assert_uint_eq(simtest_free_bytes(), 60 * SIMTEST_MIB);
	CHK(cuMemMap(va, size, 0, h, 0));
	CHK(simtest_set_access(va, size, CU_MEM_ACCESS_FLAGS_PROT_READWRITE));
	CHK(simtest_fill(va, 6.0f, n, NULL));
	CHK(cuCtxSynchronize());
	simtest_expect_floats(va, n, 6.0f);
	CHK(cuMemsetD32(va, 0x3f800000u, n)); /* 1.0f */
	simtest_expect_floats(va, n, 1.0f);

	/* Unmapping alone does not free the allocation while the handle is held. */
	CHK(cuMemUnmap(va, size));
	ck_assert_uint_eq(simtest_free_bytes(), 60 * SIMTEST_MIB);
	CHK(cuMemRelease(h));
	ck_assert_uint_eq(simtest_free_bytes(), 64 * SIMTEST_MIB);
	CHK(cuMemAddressFree(va, size));
	CHK_ERR(cuMemAddressFree(va, size), CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuMemRelease(h), CUDA_ERROR_INVALID_VALUE);
	/* The context is still healthy. */
	CHK(cuCtxSynchronize());
}
END_TEST

START_TEST(test_release_while_mapped)
{
	CUmemGenericAllocationHandle h;
	CUdeviceptr va;
	const size_t size = GRAN;

	simtest_start("SIMCUDA_MEM=64MiB");
	va = map_new(size, 0, &h);
	/* Releasing the handle first keeps the memory while it is mapped. */
	CHK(cuMemRelease(h));
	ck_assert_uint_eq(simtest_free_bytes(), 62 * SIMTEST_MIB);
	CHK(simtest_fill(va, 2.0f, size / 4, NULL));
	simtest_expect_floats(va, size / 4, 2.0f);
	CHK(cuMemUnmap(va, size));
	ck_assert_uint_eq(simtest_free_bytes(), 64 * SIMTEST_MIB);
	CHK(cuMemAddressFree(va, size));
}
END_TEST

START_TEST(test_invalid_arguments)
{
	CUmemAllocationProp prop = simtest_prop(0);
	CUmemGenericAllocationHandle h;
	CUdeviceptr va, other;

	simtest_start("SIMCUDA_MEM=64MiB");
	CHK_ERR(cuMemAddressReserve(&va, GRAN + 4096, 0, 0, 0), CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuMemAddressReserve(&va, 0, 0, 0, 0), CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuMemCreate(&h, GRAN / 2, &prop, 0), CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuMemCreate(&h, 128 * SIMTEST_MIB, &prop, 0), CUDA_ERROR_OUT_OF_MEMORY);
	prop.location.id = 1;
	CHK_ERR(cuMemCreate(&h, GRAN, &prop, 0), CUDA_ERROR_INVALID_DEVICE);
	prop = simtest_prop(0);

	CHK(cuMemAddressReserve(&va, 2 * GRAN, 0, 0, 0));
	CHK(cuMemCreate(&h, GRAN, &prop, 0));
	/* Misaligned address, size larger than the allocation, offset past it. */
	CHK_ERR(cuMemMap(va + 4096, GRAN, 0, h, 0), CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuMemMap(va, 2 * GRAN, 0, h, 0), CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuMemMap(va, GRAN, GRAN, h, 0), CUDA_ERROR_INVALID_VALUE);
	/* Outside any reservation, or over the end of this one. */
	CHK(cuMemAddressReserve(&other, GRAN, 0, 0, 0));
	CHK(cuMemAddressFree(other, GRAN));
	CHK_ERR(cuMemMap(other, GRAN, 0, h, 0), CUDA_ERROR_INVALID_VALUE);
	/* Mapping twice over the same range is refused. */
	CHK(cuMemMap(va, GRAN, 0, h, 0));
	ck_assert_int_ne(cuMemMap(va, GRAN, 0, h, 0), CUDA_SUCCESS);
	CHK(cuMemUnmap(va, GRAN));
	CHK(cuMemRelease(h));
	CHK(cuMemAddressFree(va, 2 * GRAN));
}
END_TEST

START_TEST(test_two_chunks_one_buffer)
{
	CUmemAllocationProp prop = simtest_prop(0);
	CUmemGenericAllocationHandle h1, h2;
	CUdeviceptr va, alias;
	const uint64_t n = 2 * GRAN / sizeof(float), half = GRAN / sizeof(float);
	float *host;

	simtest_start("SIMCUDA_MEM=64MiB");
	CHK(cuMemAddressReserve(&va, 2 * GRAN, 0, 0, 0));
	CHK(cuMemCreate(&h1, GRAN, &prop, 0));
	CHK(cuMemCreate(&h2, GRAN, &prop, 0));
	CHK(cuMemMap(va, GRAN, 0, h1, 0));
	CHK(cuMemMap(va + GRAN, GRAN, 0, h2, 0));
	/* One access call may span both mappings. */
	CHK(simtest_set_access(va, 2 * GRAN, CU_MEM_ACCESS_FLAGS_PROT_READWRITE));

	host = malloc(2 * GRAN);
	ck_assert_ptr_nonnull(host);
	for (uint64_t i = 0; i < n; i++)
		host[i] = (float)(i % 1000);
	CHK(cuMemcpyHtoD(va, host, 2 * GRAN));
	/* One kernel over the whole buffer, across the seam. */
	{
		CUdeviceptr x;
		CHK(cuMemAlloc(&x, 2 * GRAN));
		CHK(simtest_fill(x, 1.0f, n, NULL));
		CHK(simtest_axpy(va, x, 3.0f, n, NULL));
		CHK(cuCtxSynchronize());
		CHK(cuMemFree(x));
	}
	CHK(cuMemcpyDtoH(host, va, 2 * GRAN));
	for (uint64_t i = 0; i < n; i++)
		if (host[i] != (float)(i % 1000) + 3.0f)
			ck_abort_msg("element %llu is %g", (unsigned long long)i, host[i]);

	/* The second chunk really holds the second half: map it alone elsewhere and look. */
	CHK(cuMemAddressReserve(&alias, GRAN, 0, 0, 0));
	CHK(cuMemMap(alias, GRAN, 0, h2, 0));
	CHK(simtest_set_access(alias, GRAN, CU_MEM_ACCESS_FLAGS_PROT_READ));
	CHK(cuMemcpyDtoH(host, alias, GRAN));
	for (uint64_t i = 0; i < half; i++)
		if (host[i] != (float)((i + half) % 1000) + 3.0f)
			ck_abort_msg("second chunk element %llu is %g", (unsigned long long)i, host[i]);
	free(host);

	/* Both chunks are unmapped with one call. */
	CHK(cuMemUnmap(va, 2 * GRAN));
	CHK(cuMemUnmap(alias, GRAN));
	CHK(cuMemRelease(h1));
	CHK(cuMemRelease(h2));
	CHK(cuMemAddressFree(va, 2 * GRAN));
	CHK(cuMemAddressFree(alias, GRAN));
	ck_assert_uint_eq(simtest_free_bytes(), 64 * SIMTEST_MIB);
}
END_TEST

START_TEST(test_alias)
{
	CUmemAllocationProp prop = simtest_prop(0);
	CUmemGenericAllocationHandle h;
	CUdeviceptr a, b;
	const uint64_t n = GRAN / sizeof(float);
	float v = 0;

	simtest_start("SIMCUDA_MEM=64MiB");
	CHK(cuMemCreate(&h, GRAN, &prop, 0));
	CHK(cuMemAddressReserve(&a, GRAN, 0, 0, 0));
	CHK(cuMemAddressReserve(&b, GRAN, 0, 0, 0));
	ck_assert_uint_ne(a, b);
	CHK(cuMemMap(a, GRAN, 0, h, 0));
	CHK(cuMemMap(b, GRAN, 0, h, 0));
	CHK(simtest_set_access(a, GRAN, CU_MEM_ACCESS_FLAGS_PROT_READWRITE));
	CHK(simtest_set_access(b, GRAN, CU_MEM_ACCESS_FLAGS_PROT_READWRITE));
	/* Mapped twice, charged once. */
	ck_assert_uint_eq(simtest_free_bytes(), 62 * SIMTEST_MIB);

	CHK(simtest_fill(a, 9.0f, n, NULL));
	simtest_expect_floats(b, n, 9.0f);
	CHK(simtest_fill(b, -1.0f, n / 2, NULL));
	CHK(cuMemcpyDtoH(&v, a, sizeof(v)));
	ck_assert_float_eq(v, -1.0f);
	CHK(cuMemcpyDtoH(&v, a + GRAN - sizeof(v), sizeof(v)));
	ck_assert_float_eq(v, 9.0f);
	v = 42.0f;
	CHK(cuMemcpyHtoD(b + 400, &v, sizeof(v)));
	v = 0;
	CHK(cuMemcpyDtoH(&v, a + 400, sizeof(v)));
	ck_assert_float_eq(v, 42.0f);

	/* Unmapping one view leaves the other intact. */
	CHK(cuMemUnmap(a, GRAN));
	CHK(cuMemRelease(h));
	ck_assert_uint_eq(simtest_free_bytes(), 62 * SIMTEST_MIB);
	v = 0;
	CHK(cuMemcpyDtoH(&v, b + 400, sizeof(v)));
	ck_assert_float_eq(v, 42.0f);
	CHK(cuMemUnmap(b, GRAN));
	ck_assert_uint_eq(simtest_free_bytes(), 64 * SIMTEST_MIB);
}
END_TEST

START_TEST(test_host_located)
{
	CUmemGenericAllocationHandle h, hd;
	CUmemAllocationProp prop = simtest_prop(0), got;
	CUdeviceptr va, x;
	const size_t size = 128 * SIMTEST_MIB; /* twice the device's capacity */
	const uint64_t n = GRAN / sizeof(float);

	simtest_start("SIMCUDA_MEM=64MiB");
	va = map_new(size, 1, &h);
	ck_assert_uint_eq(simtest_free_bytes(), 64 * SIMTEST_MIB);
	/* The device's whole capacity is still there for device memory. */
	CHK(cuMemCreate(&hd, 64 * SIMTEST_MIB, &prop, 0));
	ck_assert_uint_eq(simtest_free_bytes(), 0);
	CHK(cuMemRelease(hd));

	CHK(cuMemGetAllocationPropertiesFromHandle(&got, h));
	ck_assert_int_eq(got.location.type, CU_MEM_LOCATION_TYPE_HOST);

	/* Kernels use it through its device address: the first and the last 2 MiB. */
	CHK(cuMemAlloc(&x, GRAN));
	CHK(simtest_fill(x, 2.0f, n, NULL));
	CHK(simtest_fill(va, 1.0f, n, NULL));
	CHK(simtest_fill(va + size - GRAN, 5.0f, n, NULL));
	CHK(simtest_axpy(va, x, 2.0f, n, NULL));
	CHK(simtest_axpy(va + size - GRAN, va, 1.0f, n, NULL));
	CHK(cuCtxSynchronize());
	simtest_expect_floats(va, n, 5.0f);
	simtest_expect_floats(va + size - GRAN, n, 10.0f);
	CHK(cuMemUnmap(va, size));
	CHK(cuMemRelease(h));
	CHK(cuMemAddressFree(va, size));
	CHK(cuCtxSynchronize());
}
END_TEST

START_TEST(test_host_located_refused_without_host_vmm)
{
	CUmemAllocationProp prop = simtest_prop(1);
	CUmemGenericAllocationHandle h;
	size_t g;
	int v = -1;

	simtest_start("SIMCUDA_MEM=64MiB", "SIMCUDA_NO_HOST_VMM=1");
	CHK(cuDeviceGetAttribute(&v, CU_DEVICE_ATTRIBUTE_HOST_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED, 0));
	ck_assert_int_eq(v, 0);
	CHK_ERR(cuMemCreate(&h, GRAN, &prop, 0), CUDA_ERROR_NOT_SUPPORTED);
	CHK_ERR(cuMemGetAllocationGranularity(&g, &prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM), CUDA_ERROR_NOT_SUPPORTED);
	/* Device allocations still work. */
	prop = simtest_prop(0);
	CHK(cuMemCreate(&h, GRAN, &prop, 0));
	CHK(cuMemRelease(h));
}
END_TEST

/* Host NUMA locations: a node that exists, each device's nearest one as the attribute reports it, the
 * properties handed back as made; the calling thread's node is no cuMemCreate location. */
START_TEST(test_host_numa_locations)
{
	CUmemAllocationProp prop = simtest_prop(1), got;
	CUmemGenericAllocationHandle h;
	int v = -2;

	simtest_start("SIMCUDA_MEM=64MiB", "SIMCUDA_DEVICES=2", "SIMCUDA_NUMA_NODES=2", "SIMCUDA_HOST_NUMA=1,0");
	CHK(cuDeviceGetAttribute(&v, CU_DEVICE_ATTRIBUTE_HOST_NUMA_ID, 0));
	ck_assert_int_eq(v, 1);
	CHK(cuDeviceGetAttribute(&v, CU_DEVICE_ATTRIBUTE_HOST_NUMA_ID, 1));
	ck_assert_int_eq(v, 0);
	prop.location.type = CU_MEM_LOCATION_TYPE_HOST_NUMA;
	prop.location.id = 1;
	CHK(cuMemCreate(&h, GRAN, &prop, 0));
	CHK(cuMemGetAllocationPropertiesFromHandle(&got, h));
	ck_assert_int_eq(got.location.type, CU_MEM_LOCATION_TYPE_HOST_NUMA);
	ck_assert_int_eq(got.location.id, 1);
	CHK(cuMemRelease(h));
	ck_assert_uint_eq(((simcuda_host_numa_created_fn)simtest_sym(SIMCUDA_HOST_NUMA_CREATED))(1), GRAN);
	prop.location.id = 2;
	CHK_ERR(cuMemCreate(&h, GRAN, &prop, 0), CUDA_ERROR_INVALID_VALUE);
	prop.location.id = -1;
	CHK_ERR(cuMemCreate(&h, GRAN, &prop, 0), CUDA_ERROR_INVALID_VALUE);
	prop.location.type = CU_MEM_LOCATION_TYPE_HOST_NUMA_CURRENT;
	prop.location.id = 0;
	CHK_ERR(cuMemCreate(&h, GRAN, &prop, 0), CUDA_ERROR_INVALID_VALUE);
}
END_TEST

/* A driver that takes host NUMA nodes only: the unspecific host location is refused, node 0 of a
 * host without NUMA is what it takes, and the device reports no node. */
START_TEST(test_host_numa_only)
{
	CUmemAllocationProp prop = simtest_prop(1);
	CUmemGenericAllocationHandle h;
	int v = -2;

	simtest_start("SIMCUDA_MEM=64MiB", "SIMCUDA_NO_HOST_TYPE_VMM=1", "SIMCUDA_NUMA_NODES=0");
	CHK(cuDeviceGetAttribute(&v, CU_DEVICE_ATTRIBUTE_HOST_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED, 0));
	ck_assert_int_eq(v, 0);
	CHK(cuDeviceGetAttribute(&v, CU_DEVICE_ATTRIBUTE_HOST_NUMA_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED, 0));
	ck_assert_int_eq(v, 1);
	CHK(cuDeviceGetAttribute(&v, CU_DEVICE_ATTRIBUTE_HOST_NUMA_ID, 0));
	ck_assert_int_eq(v, -1);
	CHK_ERR(cuMemCreate(&h, GRAN, &prop, 0), CUDA_ERROR_INVALID_VALUE);
	prop.location.type = CU_MEM_LOCATION_TYPE_HOST_NUMA;
	prop.location.id = 1;
	CHK_ERR(cuMemCreate(&h, GRAN, &prop, 0), CUDA_ERROR_INVALID_VALUE);
	prop.location.id = 0;
	CHK(cuMemCreate(&h, GRAN, &prop, 0));
	CHK(cuMemRelease(h));
}
END_TEST

START_TEST(test_retain_and_access)
{
	CUmemGenericAllocationHandle h, r = 0;
	CUmemAllocationProp prop = simtest_prop(0);
	CUmemLocation loc = {.type = CU_MEM_LOCATION_TYPE_DEVICE, .id = 0};
	unsigned long long flags = 99;
	CUdeviceptr va, plain;

	simtest_start("SIMCUDA_MEM=64MiB");
	CHK(cuMemAddressReserve(&va, 2 * GRAN, 0, 0, 0));
	CHK(cuMemCreate(&h, 2 * GRAN, &prop, 0));
	CHK(cuMemMap(va, 2 * GRAN, 0, h, 0));
	/* No access until it is set. */
	CHK(cuMemGetAccess(&flags, &loc, va));
	ck_assert_uint_eq(flags, CU_MEM_ACCESS_FLAGS_PROT_NONE);
	CHK(simtest_set_access(va, 2 * GRAN, CU_MEM_ACCESS_FLAGS_PROT_READ));
	CHK(cuMemGetAccess(&flags, &loc, va + GRAN + 12));
	ck_assert_uint_eq(flags, CU_MEM_ACCESS_FLAGS_PROT_READ);
	CHK(simtest_set_access(va, 2 * GRAN, CU_MEM_ACCESS_FLAGS_PROT_READWRITE));
	CHK(cuMemGetAccess(&flags, &loc, va));
	ck_assert_uint_eq(flags, CU_MEM_ACCESS_FLAGS_PROT_READWRITE);
	loc.type = CU_MEM_LOCATION_TYPE_HOST;
	CHK_ERR(cuMemGetAccess(&flags, &loc, va), CUDA_ERROR_INVALID_VALUE);
	loc.type = CU_MEM_LOCATION_TYPE_DEVICE;

	/* The handle behind any address of the mapping is the one mapped there. */
	CHK(cuMemRetainAllocationHandle(&r, (void *)(uintptr_t)(va + GRAN + 100)));
	ck_assert_uint_eq(r, h);
	/* Two references now: one release leaves it usable. */
	CHK(cuMemRelease(h));
	CHK(cuMemGetAllocationPropertiesFromHandle(&prop, r));
	ck_assert_int_eq(prop.location.type, CU_MEM_LOCATION_TYPE_DEVICE);
	CHK(cuMemRelease(r));

	/* Not for plain cuMemAlloc memory, nor for what is not mapped. */
	CHK(cuMemAlloc(&plain, 4096));
	CHK_ERR(cuMemRetainAllocationHandle(&r, (void *)(uintptr_t)plain), CUDA_ERROR_INVALID_VALUE);
	CHK(cuMemUnmap(va, 2 * GRAN));
	CHK_ERR(cuMemRetainAllocationHandle(&r, (void *)(uintptr_t)va), CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuMemGetAccess(&flags, &loc, va), CUDA_ERROR_INVALID_VALUE);
	CHK(cuMemAddressFree(va, 2 * GRAN));
}
END_TEST

START_TEST(test_retain_after_release_while_mapped)
{
	CUmemGenericAllocationHandle h, r = 0;
	CUdeviceptr va;

	simtest_start("SIMCUDA_MEM=64MiB");
	va = map_new(GRAN, 0, &h);
	/* The mapping keeps the allocation alive after its handle is released, and the handle can be
	 * had back from the address (then released once more), as the driver API documents. */
	CHK(cuMemRelease(h));
	CHK(cuMemRetainAllocationHandle(&r, (void *)(uintptr_t)va));
	ck_assert_uint_eq(r, h);
	CHK(cuMemRelease(r));
	CHK(cuMemUnmap(va, GRAN));
	ck_assert_uint_eq(simtest_free_bytes(), 64 * SIMTEST_MIB);
}
END_TEST

START_TEST(test_partial_unmap_and_busy_free_refused)
{
	CUmemGenericAllocationHandle h;
	CUdeviceptr va;
	const uint64_t n = 2 * GRAN / sizeof(float);

	simtest_start("SIMCUDA_MEM=64MiB");
	va = map_new(2 * GRAN, 0, &h);
	CHK(simtest_fill(va, 8.0f, n, NULL));
	CHK_ERR(cuMemUnmap(va, GRAN), CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuMemUnmap(va + GRAN, GRAN), CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuMemAddressFree(va, 2 * GRAN), CUDA_ERROR_INVALID_VALUE);
	/* Nothing changed: the whole buffer is still mapped and intact. */
	CHK(simtest_axpy(va, va, 1.0f, n, NULL));
	simtest_expect_floats(va, n, 16.0f);
	CHK(cuMemUnmap(va, 2 * GRAN));
	CHK(cuMemAddressFree(va, 2 * GRAN));
	CHK(cuMemRelease(h));
	CHK(cuCtxSynchronize());
}
END_TEST

START_TEST(test_readonly_mapping_write_faults)
{
	CUmemGenericAllocationHandle h;
	CUdeviceptr va, out;
	const uint64_t n = GRAN / sizeof(float);

	simtest_start("SIMCUDA_MEM=64MiB");
	va = map_new(GRAN, 0, &h);
	CHK(simtest_fill(va, 3.0f, n, NULL));
	CHK(cuCtxSynchronize());
	CHK(simtest_set_access(va, GRAN, CU_MEM_ACCESS_FLAGS_PROT_READ));
	/* Reading it is fine. */
	CHK(cuMemAlloc(&out, GRAN));
	CHK(simtest_fill(out, 0.0f, n, NULL));
	CHK(simtest_axpy(out, va, 1.0f, n, NULL));
	simtest_expect_floats(out, n, 3.0f);
	/* Writing it is an illegal address. */
	CHK(simtest_fill(va, 4.0f, n, NULL));
	CHK_ERR(cuCtxSynchronize(), CUDA_ERROR_ILLEGAL_ADDRESS);
}
END_TEST

/* ---- touching what is not mapped ---- */

static void expect_sticky(void)
{
	CUdeviceptr p;
	CUstream s;

	CHK_ERR(cuCtxSynchronize(), CUDA_ERROR_ILLEGAL_ADDRESS);
	CHK_ERR(cuMemAlloc(&p, 4096), CUDA_ERROR_ILLEGAL_ADDRESS);
	CHK_ERR(cuCtxSynchronize(), CUDA_ERROR_ILLEGAL_ADDRESS);
	CHK_ERR(cuStreamCreate(&s, 0), CUDA_ERROR_ILLEGAL_ADDRESS);
	CHK_ERR(cuMemAlloc(&p, 4096), CUDA_ERROR_ILLEGAL_ADDRESS);
}

START_TEST(test_kernel_on_reserved_never_mapped)
{
	CUdeviceptr va;

	simtest_start("SIMCUDA_MEM=64MiB");
	CHK(cuMemAddressReserve(&va, GRAN, 0, 0, 0));
	CHK(simtest_fill(va, 1.0f, 16, NULL));
	expect_sticky();
}
END_TEST

START_TEST(test_kernel_on_unmapped_after_map)
{
	CUmemGenericAllocationHandle h;
	CUdeviceptr va;
	CUstream s;

	simtest_start("SIMCUDA_MEM=64MiB");
	va = map_new(GRAN, 0, &h);
	CHK(cuStreamCreate(&s, 0));
	CHK(simtest_fill(va, 1.0f, 16, s));
	CHK(cuStreamSynchronize(s));
	CHK(cuMemUnmap(va, GRAN));
	CHK(simtest_fill(va, 1.0f, 16, s));
	CHK_ERR(cuStreamSynchronize(s), CUDA_ERROR_ILLEGAL_ADDRESS);
	expect_sticky();
	/* The memory behind the handle is still held, but nothing runs any more. */
	CHK_ERR(cuStreamQuery(s), CUDA_ERROR_ILLEGAL_ADDRESS);
}
END_TEST

START_TEST(test_kernel_running_off_the_mapping)
{
	CUdeviceptr va;
	CUmemGenericAllocationHandle h;
	CUmemAllocationProp prop = simtest_prop(0);

	simtest_start("SIMCUDA_MEM=64MiB");
	/* Two granules reserved, only the first mapped: a kernel one float too long faults. */
	CHK(cuMemAddressReserve(&va, 2 * GRAN, 0, 0, 0));
	CHK(cuMemCreate(&h, GRAN, &prop, 0));
	CHK(cuMemMap(va, GRAN, 0, h, 0));
	CHK(simtest_set_access(va, GRAN, CU_MEM_ACCESS_FLAGS_PROT_READWRITE));
	CHK(simtest_fill(va, 1.0f, GRAN / sizeof(float), NULL));
	CHK(cuCtxSynchronize());
	CHK(simtest_fill(va, 1.0f, GRAN / sizeof(float) + 1, NULL));
	expect_sticky();
}
END_TEST

START_TEST(test_mapped_without_access_faults)
{
	CUmemAllocationProp prop = simtest_prop(0);
	CUmemGenericAllocationHandle h;
	CUdeviceptr va;

	simtest_start("SIMCUDA_MEM=64MiB");
	CHK(cuMemAddressReserve(&va, GRAN, 0, 0, 0));
	CHK(cuMemCreate(&h, GRAN, &prop, 0));
	CHK(cuMemMap(va, GRAN, 0, h, 0));
	CHK(simtest_fill(va, 1.0f, 16, NULL));
	expect_sticky();
}
END_TEST

START_TEST(test_copy_to_unmapped)
{
	CUdeviceptr va;
	float buf[16] = {0};

	simtest_start("SIMCUDA_MEM=64MiB");
	CHK(cuMemAddressReserve(&va, GRAN, 0, 0, 0));
	CHK_ERR(cuMemcpyHtoD(va, buf, sizeof(buf)), CUDA_ERROR_ILLEGAL_ADDRESS);
	expect_sticky();
}
END_TEST

START_TEST(test_async_copy_to_unmapped)
{
	CUmemGenericAllocationHandle h;
	CUdeviceptr va;
	CUstream s;
	static float buf[1024];

	simtest_start("SIMCUDA_MEM=64MiB");
	va = map_new(GRAN, 0, &h);
	CHK(cuStreamCreate(&s, 0));
	CHK(cuMemcpyHtoDAsync(va, buf, sizeof(buf), s));
	CHK(cuStreamSynchronize(s));
	CHK(cuMemUnmap(va, GRAN));
	/* The call is accepted; the fault is found when the copy runs. */
	CHK(cuMemcpyHtoDAsync(va, buf, sizeof(buf), s));
	CHK_ERR(cuStreamSynchronize(s), CUDA_ERROR_ILLEGAL_ADDRESS);
	expect_sticky();
}
END_TEST

START_TEST(test_copy_from_unmapped)
{
	CUdeviceptr va;
	float buf[16];

	for (int i = 0; i < 16; i++)
		buf[i] = 0.25f;
	simtest_start("SIMCUDA_MEM=64MiB");
	CHK(cuMemAddressReserve(&va, GRAN, 0, 0, 0));
	CHK_ERR(cuMemcpyDtoH(buf, va, sizeof(buf)), CUDA_ERROR_ILLEGAL_ADDRESS);
	simtest_expect_host(buf, 16, 0.25f);
	expect_sticky();
}
END_TEST

START_TEST(test_memset_unmapped)
{
	CUdeviceptr va;

	simtest_start("SIMCUDA_MEM=64MiB");
	CHK(cuMemAddressReserve(&va, GRAN, 0, 0, 0));
	CHK_ERR(cuMemsetD32(va, 7, 16), CUDA_ERROR_ILLEGAL_ADDRESS);
	expect_sticky();
}
END_TEST

START_TEST(test_memset_async_unmapped)
{
	CUmemGenericAllocationHandle h;
	CUdeviceptr va;

	simtest_start("SIMCUDA_MEM=64MiB");
	va = map_new(GRAN, 0, &h);
	CHK(cuMemUnmap(va, GRAN));
	CHK(cuMemsetD8Async(va, 7, 16, NULL));
	CHK_ERR(cuStreamSynchronize(NULL), CUDA_ERROR_ILLEGAL_ADDRESS);
	expect_sticky();
}
END_TEST

static Suite *vmm_suite(void)
{
	Suite *s = suite_create("simcuda_vmm");
	TCase *tc = simtest_tcase(s, "mapping", 10);

	tcase_add_test(tc, test_granularity);
	tcase_add_test(tc, test_lifecycle);
	tcase_add_test(tc, test_release_while_mapped);
	tcase_add_test(tc, test_invalid_arguments);
	tcase_add_test(tc, test_two_chunks_one_buffer);
	tcase_add_test(tc, test_alias);
	tcase_add_test(tc, test_host_located);
	tcase_add_test(tc, test_host_located_refused_without_host_vmm);
	tcase_add_test(tc, test_host_numa_locations);
	tcase_add_test(tc, test_host_numa_only);
	tcase_add_test(tc, test_retain_and_access);
	tcase_add_test(tc, test_retain_after_release_while_mapped);
	tcase_add_test(tc, test_partial_unmap_and_busy_free_refused);
	tcase_add_test(tc, test_readonly_mapping_write_faults);
	tc = simtest_tcase(s, "unmapped", 10);
	tcase_add_test(tc, test_kernel_on_reserved_never_mapped);
	tcase_add_test(tc, test_kernel_on_unmapped_after_map);
	tcase_add_test(tc, test_kernel_running_off_the_mapping);
	tcase_add_test(tc, test_mapped_without_access_faults);
	tcase_add_test(tc, test_copy_to_unmapped);
	tcase_add_test(tc, test_async_copy_to_unmapped);
	tcase_add_test(tc, test_copy_from_unmapped);
	tcase_add_test(tc, test_memset_unmapped);
	tcase_add_test(tc, test_memset_async_unmapped);
	return s;
}

int main(void)
{
	return simtest_run(vmm_suite());
}
