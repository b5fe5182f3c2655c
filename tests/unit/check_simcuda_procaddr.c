/* The simulated driver's cuGetProcAddress (by version and stream flags, with addresses that are not
 * the exported symbols'), a replay of what the CUDA runtime asks for, and its exports against
 * tests/simcuda/symbols.def. */
#include "config.h"

#include <ctype.h>
#include <dlfcn.h>

#include "tests/unit/simtest.h"

typedef CUresult (*mem_alloc_v2_fn)(CUdeviceptr *, size_t);
typedef CUresult (*ctx_create_v2_fn)(CUcontext *, unsigned int, CUdevice);
typedef CUresult (*ctx_create_v4_fn)(CUcontext *, CUctxCreateParams *, unsigned int, CUdevice);

static const char *const def_symbols[] = {
#define SIM_SYM(s) #s,
#include "tests/simcuda/symbols.def"
#undef SIM_SYM
};
#define NDEF (sizeof(def_symbols) / sizeof(def_symbols[0]))

/* The real driver's other exports, each a stub answering CUDA_ERROR_NOT_SUPPORTED. */
static const char *const stub_symbols[] = {
#define SIM_STUB(s) #s,
#include "tests/simcuda/stubs.def"
#undef SIM_STUB
	NULL,
};
#define NSTUB (sizeof(stub_symbols) / sizeof(stub_symbols[0]) - 1)

static int is_stub(const char *name)
{
	for (size_t i = 0; i < NSTUB; i++)
		if (strcmp(stub_symbols[i], name) == 0)
			return 1;
	return 0;
}

static void *resolve(const char *name, int version, cuuint64_t flags)
{
	void *pfn = (void *)1;
	CUdriverProcAddressQueryResult st = (CUdriverProcAddressQueryResult)99;

	CHK(cuGetProcAddress(name, &pfn, version, flags, &st));
	ck_assert_int_eq(st, CU_GET_PROC_ADDRESS_SUCCESS);
	ck_assert_ptr_nonnull(pfn);
	return pfn;
}

static void *driver(void)
{
	void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);

	if (h == NULL)
		h = dlopen("libcuda.so.1", RTLD_NOW);
	ck_assert_msg(h != NULL, "dlopen libcuda.so.1: %s", dlerror());
	return h;
}

START_TEST(test_works_before_init)
{
	CUresult (*init)(unsigned int);
	int count = 0;

	/* The runtime asks for cuInit before calling it. */
	init = (CUresult (*)(unsigned int))resolve("cuInit", 2000, 0);
	CHK(init(0));
	CHK(cuDeviceGetCount(&count));
	ck_assert_int_eq(count, 1);
}
END_TEST

START_TEST(test_mem_alloc_by_version)
{
	mem_alloc_v2_fn alloc;
	CUdeviceptr p = 0;
	void *exported;
	float v = 0;

	simtest_start("SIMCUDA_MEM=64MiB");
	alloc = (mem_alloc_v2_fn)resolve("cuMemAlloc", 12000, 0);
	exported = dlsym(driver(), "cuMemAlloc_v2");
	ck_assert_ptr_nonnull(exported);
	ck_assert_ptr_ne((void *)alloc, exported);
	CHK(alloc(&p, 4096));
	ck_assert_uint_ne(p, 0);
	CHK(simtest_fill(p, 6.5f, 1024, NULL));
	CHK(cuMemcpyDtoH(&v, p + 4092, sizeof(v)));
	ck_assert_float_eq(v, 6.5f);
	ck_assert_uint_eq(simtest_free_bytes(), 64 * SIMTEST_MIB - 4096);
	CHK(cuMemFree(p));
	/* The version a name first appeared in gives the same entry point as any later one. */
	ck_assert_ptr_eq(resolve("cuMemAlloc", 3020, 0), (void *)alloc);
}
END_TEST

START_TEST(test_ctx_create_by_version)
{
	void *v2, *v4;
	CUcontext c = NULL, cur = NULL;

	simtest_start();
	v2 = resolve("cuCtxCreate", 3020, 0);
	v4 = resolve("cuCtxCreate", 12050, 0);
	ck_assert_ptr_ne(v2, v4);
	CHK(((ctx_create_v4_fn)v4)(&c, NULL, 0, 0));
	ck_assert_ptr_nonnull(c);
	CHK(cuCtxGetCurrent(&cur));
	ck_assert_ptr_eq(cur, c);
	CHK(cuCtxDestroy(c));
	c = NULL;
	CHK(((ctx_create_v2_fn)v2)(&c, 0, 0));
	CHK(cuCtxGetCurrent(&cur));
	ck_assert_ptr_eq(cur, c);
	CHK(cuCtxDestroy(c));
	/* The newest version not above the request. */
	ck_assert_ptr_eq(resolve("cuCtxCreate", 11039, 0), v2);
	ck_assert_ptr_eq(resolve("cuCtxCreate", 13000, 0), v4);
}
END_TEST

START_TEST(test_not_found)
{
	void *pfn = (void *)1;
	CUdriverProcAddressQueryResult st = (CUdriverProcAddressQueryResult)99;

	simtest_start();
	CHK_ERR(cuGetProcAddress("cuMemAllocAsync", &pfn, 11000, 0, &st), CUDA_ERROR_NOT_FOUND);
	ck_assert_int_eq(st, CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT);
	ck_assert_ptr_null(pfn);
	ck_assert_ptr_nonnull(resolve("cuMemAllocAsync", 11020, 0));

	pfn = (void *)1;
	st = (CUdriverProcAddressQueryResult)99;
	CHK_ERR(cuGetProcAddress("cuNoSuchEntryPoint", &pfn, 13000, 0, &st), CUDA_ERROR_NOT_FOUND);
	ck_assert_int_eq(st, CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND);
	ck_assert_ptr_null(pfn);
	pfn = (void *)1;
	st = (CUdriverProcAddressQueryResult)99;
	CHK_ERR(cuGetProcAddress("", &pfn, 13000, 0, &st), CUDA_ERROR_NOT_FOUND);
	ck_assert_int_eq(st, CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND);
	ck_assert_ptr_null(pfn);
	/* The status is optional. */
	CHK_ERR(cuGetProcAddress("cuNoSuchEntryPoint", &pfn, 13000, 0, NULL), CUDA_ERROR_NOT_FOUND);
	CHK_ERR(cuGetProcAddress(NULL, &pfn, 13000, 0, &st), CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuGetProcAddress("cuInit", NULL, 13000, 0, &st), CUDA_ERROR_INVALID_VALUE);
}
END_TEST

START_TEST(test_stream_flags)
{
	void *legacy, *dflt, *ptds;
	void *pfn;
	CUdriverProcAddressQueryResult st;

	simtest_start();
	dflt = resolve("cuMemcpyHtoD", 12000, 0);
	legacy = resolve("cuMemcpyHtoD", 12000, CU_GET_PROC_ADDRESS_LEGACY_STREAM);
	ptds = resolve("cuMemcpyHtoD", 12000, CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM);
	ck_assert_ptr_eq(dflt, legacy);
	ck_assert_ptr_ne(dflt, ptds);
	ck_assert_ptr_ne(ptds, dlsym(driver(), "cuMemcpyHtoD_v2_ptds"));
	/* The per-thread variants appeared in 7.0: below that, the default one is the answer. */
	ck_assert_ptr_eq(resolve("cuMemcpyHtoD", 6050, CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM), dflt);
	/* A name without a per-thread variant resolves the same with either flag. */
	ck_assert_ptr_eq(resolve("cuMemAlloc", 12000, CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM),
			 resolve("cuMemAlloc", 12000, 0));
	ck_assert_ptr_ne(resolve("cuLaunchKernel", 12000, CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM),
			 resolve("cuLaunchKernel", 12000, 0));

	CHK_ERR(cuGetProcAddress("cuMemcpyHtoD", &pfn, 12000, 1ull << 2, &st), CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuGetProcAddress("cuMemcpyHtoD", &pfn, 12000, 1ull << 40, &st), CUDA_ERROR_INVALID_VALUE);
}
END_TEST

START_TEST(test_ptds_entry_works)
{
	CUresult (*htod)(CUdeviceptr, const void *, size_t);
	CUresult (*dtoh)(void *, CUdeviceptr, size_t);
	CUdeviceptr p;
	int in[64], out[64];

	simtest_start();
	htod = (CUresult (*)(CUdeviceptr, const void *, size_t))resolve(
		"cuMemcpyHtoD", 12000, CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM);
	dtoh = (CUresult (*)(void *, CUdeviceptr, size_t))resolve("cuMemcpyDtoH", 12000, 0);
	for (int i = 0; i < 64; i++) {
		in[i] = i * i;
		out[i] = -1;
	}
	CHK(cuMemAlloc(&p, sizeof(in)));
	CHK(htod(p, in, sizeof(in)));
	CHK(dtoh(out, p, sizeof(out)));
	ck_assert_mem_eq(in, out, sizeof(in));
}
END_TEST

/* Names the runtime cannot start without. */
static const char *const core[] = {
	"cuInit", "cuDriverGetVersion", "cuDeviceGet", "cuDeviceGetCount", "cuDeviceGetAttribute",
	"cuDeviceGetName", "cuDeviceTotalMem", "cuDevicePrimaryCtxRetain",
	"cuCtxGetCurrent", "cuCtxSetCurrent", "cuMemAlloc", "cuMemFree", "cuMemcpyHtoD", "cuMemcpyHtoDAsync",
	"cuMemcpyDtoH", "cuMemcpyDtoHAsync", "cuLaunchKernel", "cuModuleLoadData", "cuModuleGetFunction",
	"cuStreamCreate", "cuStreamSynchronize", "cuEventRecord", "cuGetProcAddress", "cuGetErrorName",
};

static int is_core(const char *name)
{
	for (size_t i = 0; i < sizeof(core) / sizeof(core[0]); i++)
		if (strcmp(core[i], name) == 0)
			return 1;
	return 0;
}

/* The requests the CUDA 13.0 runtime makes, from tests/data. */
static FILE *fixture_open(void)
{
	const char *top = getenv("MV_TOP_SRCDIR");
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/tests/data/cudart-13.0-getprocaddress.tsv", top != NULL ? top : ".");
	f = fopen(path, "r");
	ck_assert_msg(f != NULL, "cannot open %s", path);
	return f;
}

/* Reads the next request into sym (pointing into line), version and flags; returns 0 at the end. */
static int fixture_next(FILE *f, char *line, size_t size, char **sym, long *version, unsigned long long *flags)
{
	while (fgets(line, (int)size, f) != NULL) {
		char *ver, *flg, *end;

		line[strcspn(line, "\r\n")] = '\0';
		if (line[0] == '#' || line[0] == '\0')
			continue;
		*sym = line;
		ver = strchr(line, '\t');
		ck_assert_msg(ver != NULL, "malformed row '%s'", line);
		*ver++ = '\0';
		flg = strchr(ver, '\t');
		ck_assert_msg(flg != NULL, "malformed row for '%s'", line);
		*flg++ = '\0';
		*version = strtol(ver, &end, 10);
		ck_assert_msg(*end == '\0', "bad version '%s' for '%s'", ver, line);
		*flags = strtoull(flg, &end, 10);
		ck_assert_msg(*end == '\0', "bad flags '%s' for '%s'", flg, line);
		return 1;
	}
	return 0;
}

START_TEST(test_runtime_replay)
{
	char line[1024], *sym;
	long version;
	unsigned long long flags;
	FILE *f;
	int rows = 0, found = 0, cores = 0, empty_rows = 0;

	simtest_start();
	f = fixture_open();
	while (fixture_next(f, line, sizeof(line), &sym, &version, &flags)) {
		void *pfn = (void *)1;
		CUdriverProcAddressQueryResult st = (CUdriverProcAddressQueryResult)99;
		CUresult r;

		rows++;

		r = cuGetProcAddress(sym, &pfn, (int)version, flags, &st);
		if ((r == CUDA_SUCCESS) != (pfn != NULL))
			ck_abort_msg("%s %ld %llu: %s with pfn %p", sym, version, flags, simtest_err_name(r), pfn);
		if ((r == CUDA_SUCCESS) != (st == CU_GET_PROC_ADDRESS_SUCCESS))
			ck_abort_msg("%s %ld %llu: %s with status %d", sym, version, flags, simtest_err_name(r), (int)st);
		if (r != CUDA_SUCCESS && r != CUDA_ERROR_NOT_FOUND)
			ck_abort_msg("%s %ld %llu: unexpected %s", sym, version, flags, simtest_err_name(r));
		if (sym[0] == '\0') {
			empty_rows++;
			if (r != CUDA_ERROR_NOT_FOUND || st != CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND)
				ck_abort_msg("the empty name gave %s, status %d", simtest_err_name(r), (int)st);
		}
		if (is_core(sym)) {
			cores++;
			if (r != CUDA_SUCCESS)
				ck_abort_msg("core entry point %s %ld %llu: %s", sym, version, flags, simtest_err_name(r));
		}
		found += r == CUDA_SUCCESS;
	}
	fclose(f);
	ck_assert_int_gt(rows, 400);
	ck_assert_int_eq(empty_rows, 1);
	ck_assert_int_ge(cores, (int)(sizeof(core) / sizeof(core[0])));
	ck_assert_int_gt(found, 50);
	/* Replaying it after the fact, with the driver in use, still works. */
	{
		CUdeviceptr p;
		CHK(cuMemAlloc(&p, 16));
		CHK(cuMemFree(p));
	}
}
END_TEST

START_TEST(test_runtime_versions_of_implemented_names)
{
	char line[1024], *sym, missing[2048] = "";
	long version;
	unsigned long long flags;
	FILE *f;

	/* A name the driver implements at all must resolve at every version the runtime asks for it, as
	 * it does on a real driver; otherwise the runtime finds the entry point missing (it asks for
	 * cuDevicePrimaryCtxRelease at 7000 and cuStreamBeginCapture at 10000, the first versions). */
	simtest_start();
	f = fixture_open();
	while (fixture_next(f, line, sizeof(line), &sym, &version, &flags)) {
		void *pfn, *newest;
		CUdriverProcAddressQueryResult st;

		if (cuGetProcAddress(sym, &newest, 99999, flags, &st) != CUDA_SUCCESS)
			continue;
		if (cuGetProcAddress(sym, &pfn, (int)version, flags, &st) != CUDA_SUCCESS) {
			size_t at = strlen(missing);
			snprintf(missing + at, sizeof(missing) - at, " %s@%ld/%llu", sym, version, flags);
		}
	}
	fclose(f);
	ck_assert_msg(missing[0] == '\0', "not resolved at the versions the runtime asks for:%s", missing);
}
END_TEST

START_TEST(test_symbols_def_exported)
{
	void *h = driver();

	ck_assert_uint_gt(NDEF, 100);
	for (size_t i = 0; i < NDEF; i++)
		if (dlsym(h, def_symbols[i]) == NULL)
			ck_abort_msg("%s is in symbols.def but not exported", def_symbols[i]);
	/* And the library linked here is that one. */
	ck_assert_ptr_eq(dlsym(h, "cuInit"), (void *)cuInit);
}
END_TEST

START_TEST(test_exports_in_symbols_def)
{
	const char *top = getenv("MV_TOP_BUILDDIR");
	char cmd[4200], line[512];
	FILE *p;
	int seen = 0;

	snprintf(cmd, sizeof(cmd), "nm -D --defined-only '%s/tests/simcuda/libcuda.so.1'", top != NULL ? top : ".");
	p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	while (fgets(line, sizeof(line), p) != NULL) {
		char addr[64], type[8], name[256];
		size_t i;

		if (sscanf(line, "%63s %7s %255s", addr, type, name) != 3)
			continue;
		if (strncmp(name, "cu", 2) != 0)
			continue;
		seen++;
		for (i = 0; i < NDEF; i++)
			if (strcmp(def_symbols[i], name) == 0)
				break;
		if (i == NDEF && !is_stub(name)) {
			pclose(p);
			ck_abort_msg("%s is exported but neither in symbols.def nor a stub", name);
		}
	}
	ck_assert_int_eq(pclose(p), 0);
	/* Every entry of symbols.def and every stub was listed: nothing was lost in the reading. */
	ck_assert_int_eq(seen, (int)(NDEF + NSTUB));
}
END_TEST

START_TEST(test_stubs_not_supported)
{
	void *h = driver();
	CUresult (*array_create)(CUarray *, const CUDA_ARRAY_DESCRIPTOR *);
	CUarray arr = NULL;
	CUDA_ARRAY_DESCRIPTOR desc = {.Width = 16, .Height = 1, .Format = CU_AD_FORMAT_FLOAT, .NumChannels = 1};

	ck_assert_uint_gt(NDEF + NSTUB, 600);
	simtest_start();
	/* Every stub is exported and answers CUDA_ERROR_NOT_SUPPORTED, called with no arguments. */
	for (size_t i = 0; i < NSTUB; i++) {
		CUresult (*fn)(void) = (CUresult (*)(void))dlsym(h, stub_symbols[i]);

		ck_assert_msg(fn != NULL, "stub %s is not exported", stub_symbols[i]);
		ck_assert_msg(fn() == CUDA_ERROR_NOT_SUPPORTED, "stub %s does not answer NOT_SUPPORTED", stub_symbols[i]);
	}
	/* A real entry point that is not modelled resolves, as on a real driver, to an address that is
	 * not its export's, and answers the same. */
	ck_assert(is_stub("cuArrayCreate_v2"));
	array_create = (CUresult (*)(CUarray *, const CUDA_ARRAY_DESCRIPTOR *))resolve("cuArrayCreate", 13000, 0);
	ck_assert_ptr_ne((void *)array_create, dlsym(h, "cuArrayCreate_v2"));
	CHK_ERR(array_create(&arr, &desc), CUDA_ERROR_NOT_SUPPORTED);
	ck_assert_ptr_null(arr);
}
END_TEST

START_TEST(test_resolved_are_not_exports)
{
	void *h = driver();
	int distinct = 0;

	/* None of the addresses handed out is the exported symbol's, so nothing can rely on dladdr. */
	simtest_start();
	for (size_t i = 0; i < sizeof(core) / sizeof(core[0]); i++) {
		void *pfn = resolve(core[i], 13000, 0);
		Dl_info info;

		if (dladdr(pfn, &info) != 0 && info.dli_sname != NULL && strcmp(info.dli_sname, core[i]) == 0)
			ck_abort_msg("%s resolves to the symbol of the same name", core[i]);
		for (size_t j = 0; j < NDEF; j++)
			if (dlsym(h, def_symbols[j]) == pfn)
				ck_abort_msg("%s resolves to the exported %s", core[i], def_symbols[j]);
		distinct++;
	}
	ck_assert_int_eq(distinct, (int)(sizeof(core) / sizeof(core[0])));
}
END_TEST

static Suite *procaddr_suite(void)
{
	Suite *s = suite_create("simcuda_procaddr");
	TCase *tc = simtest_tcase(s, "resolve", 10);

	tcase_add_test(tc, test_works_before_init);
	tcase_add_test(tc, test_mem_alloc_by_version);
	tcase_add_test(tc, test_ctx_create_by_version);
	tcase_add_test(tc, test_not_found);
	tcase_add_test(tc, test_stream_flags);
	tcase_add_test(tc, test_ptds_entry_works);
	tcase_add_test(tc, test_runtime_replay);
	tcase_add_test(tc, test_runtime_versions_of_implemented_names);
	tc = simtest_tcase(s, "exports", 10);
	tcase_add_test(tc, test_symbols_def_exported);
	tcase_add_test(tc, test_exports_in_symbols_def);
	tcase_add_test(tc, test_stubs_not_supported);
	tcase_add_test(tc, test_resolved_are_not_exports);
	return s;
}

int main(void)
{
	return simtest_run(procaddr_suite());
}
