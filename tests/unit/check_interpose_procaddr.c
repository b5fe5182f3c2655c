/* libmemvirt.so's lookup paths on the simulated driver: every request the CUDA 13.0 runtime makes,
 * through cuGetProcAddress_v2 and cuGetProcAddress, against the driver's own answers; dlsym on a
 * libcuda handle; and the per-thread-default-stream flag. The program re-runs itself with the
 * library preloaded. */
#include "config.h"

#include <dlfcn.h>
#include <limits.h>
#include <unistd.h>

#include "interpose/memvirt.h"
#include "tests/unit/simtest.h"

typedef void *(*dlsym_fn)(void *, const char *);
typedef CUresult (*procaddr_v2_fn)(const char *, void **, int, cuuint64_t, CUdriverProcAddressQueryResult *);
typedef CUresult (*procaddr_v1_fn)(const char *, void **, int, cuuint64_t);
typedef CUresult (*mem_alloc_fn)(CUdeviceptr *, size_t);
typedef CUresult (*htod_fn)(CUdeviceptr, const void *, size_t);
typedef CUresult (*dtoh_fn)(void *, CUdeviceptr, size_t);

/* Set when the program re-runs itself, so that a library that does not load cannot loop. */
#define REEXEC_MARK "MV_CHECK_INTERPOSE_PROCADDR_PRELOADED"

/* The hooked symbols, from the same list the library is built from. */
static const char *const hooked[] = {
#define MV_HOOK(sym) #sym,
#include "interpose/hooks.def"
#undef MV_HOOK
};
#define NHOOKED (sizeof(hooked) / sizeof(hooked[0]))

static int is_hooked(const char *symbol)
{
	for (size_t i = 0; i < NHOOKED; i++)
		if (strcmp(hooked[i], symbol) == 0)
			return 1;
	return 0;
}

static const char *lib_path(void)
{
	static char path[PATH_MAX];
	const char *lib = getenv("MEMVIRT_LIB"), *top = getenv("MV_TOP_BUILDDIR");

	if (lib != NULL && *lib != '\0')
		return lib;
	snprintf(path, sizeof(path), "%s/interpose/.libs/libmemvirt.so", top != NULL ? top : ".");
	return path;
}

/* The C library's dlsym, found by version: the plain name is the library's hook. */
static dlsym_fn libc_dlsym(void)
{
	static const char *const versions[] = {"GLIBC_2.34", "GLIBC_2.2.5", "GLIBC_2.17", "GLIBC_2.0"};
	Dl_info info;

	for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
		void *p = dlvsym(RTLD_DEFAULT, "dlsym", versions[i]);
		if (p == NULL)
			continue;
		ck_assert_msg(dladdr(p, &info) != 0 && info.dli_fname != NULL, "dladdr of the C library's dlsym");
		ck_assert_msg(strstr(info.dli_fname, "libmemvirt") == NULL, "dlvsym found the hook, in %s",
			      info.dli_fname);
		return (dlsym_fn)p;
	}
	ck_abort_msg("no versioned dlsym in the C library");
	return NULL;
}

static void *handle_of(const char *name)
{
	void *h = dlopen(name, RTLD_NOW | RTLD_NOLOAD);

	if (h == NULL)
		h = dlopen(name, RTLD_NOW);
	ck_assert_msg(h != NULL, "dlopen %s: %s", name, dlerror());
	return h;
}

static void *driver_handle(void)
{
	return handle_of("libcuda.so.1");
}

static void *memvirt_handle(void)
{
	void *h = dlopen(lib_path(), RTLD_NOW | RTLD_NOLOAD);

	ck_assert_msg(h != NULL, "%s is not loaded in this process", lib_path());
	return h;
}

/* The file that holds p, by its last path component. */
static const char *object_of(const void *p)
{
	Dl_info info;
	const char *slash;

	if (dladdr(p, &info) == 0 || info.dli_fname == NULL)
		return "(none)";
	slash = strrchr(info.dli_fname, '/');
	return slash != NULL ? slash + 1 : info.dli_fname;
}

/* The library's export of symbol: the hook the app must get for it. */
static void *export_of(const char *symbol)
{
	void *p = libc_dlsym()(memvirt_handle(), symbol);

	ck_assert_msg(p != NULL, "hooks.def lists %s but the library does not export it", symbol);
	ck_assert_str_eq(object_of(p), "libmemvirt.so");
	/* Preloaded, it is also what the program finds first. */
	ck_assert_ptr_eq(p, dlsym(RTLD_DEFAULT, symbol));
	return p;
}

/* ---- the table of versioned symbols, read from the generated header ---- */

struct proc_row {
	char name[128];
	int version;
	int per_thread;
	char symbol[128];
};

static struct proc_row *proc_rows;
static size_t proc_count;

static void proctable_load(void)
{
	const char *top = getenv("MV_TOP_BUILDDIR");
	char path[PATH_MAX], line[512];
	size_t cap = 0;
	FILE *f;

	if (proc_rows != NULL)
		return;
	snprintf(path, sizeof(path), "%s/interpose/proctable.h", top != NULL ? top : ".");
	f = fopen(path, "r");
	ck_assert_msg(f != NULL, "cannot open %s", path);
	while (fgets(line, sizeof(line), f) != NULL) {
		struct proc_row r;

		if (strncmp(line, "MV_PROC(", 8) != 0)
			continue;
		if (sscanf(line, "MV_PROC(%127[^,], %d, %d, %127[^)])", r.name, &r.version, &r.per_thread, r.symbol) != 4)
			ck_abort_msg("malformed line in %s: %s", path, line);
		if (proc_count == cap) {
			cap = cap ? cap * 2 : 256;
			proc_rows = realloc(proc_rows, cap * sizeof(*proc_rows));
			ck_assert_ptr_nonnull(proc_rows);
		}
		proc_rows[proc_count++] = r;
	}
	fclose(f);
	ck_assert_uint_gt(proc_count, 500);
}

/* The newest row of name and variant not above version, or NULL. */
static const char *proctable_pick(const char *name, int version, int per_thread)
{
	const struct proc_row *best = NULL;

	for (size_t i = 0; i < proc_count; i++) {
		const struct proc_row *r = &proc_rows[i];
		if (strcmp(r->name, name) == 0 && r->per_thread == per_thread && r->version <= version &&
		    (best == NULL || r->version > best->version))
			best = r;
	}
	return best != NULL ? best->symbol : NULL;
}

/* The exact versioned symbol a request means: the per-thread variant when the flags ask for it and
 * one exists at that version, else the default one. */
static const char *exact_symbol(const char *name, int version, cuuint64_t flags)
{
	const char *s = NULL;

	proctable_load();
	if (flags & CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM)
		s = proctable_pick(name, version, 1);
	if (s == NULL)
		s = proctable_pick(name, version, 0);
	return s;
}

/* ---- the fixture: what the CUDA 13.0 runtime asks for ---- */

static FILE *fixture_open(void)
{
	const char *top = getenv("MV_TOP_SRCDIR");
	char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "%s/tests/data/cudart-13.0-getprocaddress.tsv", top != NULL ? top : ".");
	f = fopen(path, "r");
	ck_assert_msg(f != NULL, "cannot open %s", path);
	return f;
}

/* Reads the next request into sym (pointing into line), version and flags; returns 0 at the end. */
static int fixture_next(FILE *f, char *line, size_t size, char **sym, int *version, cuuint64_t *flags)
{
	while (fgets(line, (int)size, f) != NULL) {
		char *ver, *flg, *end;
		long v;

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
		v = strtol(ver, &end, 10);
		ck_assert_msg(*end == '\0' && *ver != '\0', "bad version '%s' for '%s'", ver, line);
		*version = (int)v;
		*flags = strtoull(flg, &end, 10);
		ck_assert_msg(*end == '\0' && *flg != '\0', "bad flags '%s' for '%s'", flg, line);
		return 1;
	}
	return 0;
}

/* Mismatches collected over a replay, reported together. */
struct report {
	char text[4096];
	int count;
};

static void report_add(struct report *rep, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void report_add(struct report *rep, const char *fmt, ...)
{
	size_t at = strlen(rep->text);
	va_list ap;

	if (rep->count++ >= 20 || at + 2 >= sizeof(rep->text))
		return;
	rep->text[at++] = '\n';
	va_start(ap, fmt);
	vsnprintf(rep->text + at, sizeof(rep->text) - at, fmt, ap);
	va_end(ap);
}

struct replay_counts {
	int rows, hooked, passed, not_found, empty;
};

/* Replays the fixture through the library's resolver and the driver's own, version 1 or 2. */
static void replay(int v2, struct replay_counts *n)
{
	void *drv = driver_handle();
	void *mine_fn, *real_fn;
	const char *entry = v2 ? "cuGetProcAddress_v2" : "cuGetProcAddress";
	char line[1024], *sym;
	int version;
	cuuint64_t flags;
	struct report rep = {"", 0};
	FILE *f;

	real_fn = libc_dlsym()(drv, entry);
	ck_assert_msg(real_fn != NULL, "the driver does not export %s", entry);
	ck_assert_str_eq(object_of(real_fn), "libcuda.so.1");
	mine_fn = export_of(entry);
	if (v2)
		/* What this program linked against is the library's, since it is preloaded. */
		ck_assert_ptr_eq((void *)cuGetProcAddress_v2, mine_fn);

	memset(n, 0, sizeof(*n));
	f = fixture_open();
	while (fixture_next(f, line, sizeof(line), &sym, &version, &flags)) {
		void *got = (void *)1, *want = (void *)1, *expect;
		CUdriverProcAddressQueryResult st_got = (CUdriverProcAddressQueryResult)99;
		CUdriverProcAddressQueryResult st_want = (CUdriverProcAddressQueryResult)99;
		CUresult r_got, r_want;
		const char *exact;

		n->rows++;
		n->empty += sym[0] == '\0';
		if (v2) {
			r_want = ((procaddr_v2_fn)real_fn)(sym, &want, version, flags, &st_want);
			r_got = ((procaddr_v2_fn)mine_fn)(sym, &got, version, flags, &st_got);
		} else {
			r_want = ((procaddr_v1_fn)real_fn)(sym, &want, version, flags);
			r_got = ((procaddr_v1_fn)mine_fn)(sym, &got, version, flags);
		}
		if (r_got != r_want)
			report_add(&rep, "'%s' %d %llu: returned %s, the driver %s", sym, version,
				   (unsigned long long)flags, simtest_err_name(r_got), simtest_err_name(r_want));
		if (v2 && st_got != st_want)
			report_add(&rep, "'%s' %d %llu: status %d, the driver's %d", sym, version,
				   (unsigned long long)flags, (int)st_got, (int)st_want);

		exact = exact_symbol(sym, version, flags);
		if (r_want == CUDA_SUCCESS && exact != NULL && is_hooked(exact)) {
			n->hooked++;
			expect = export_of(exact);
		} else {
			if (r_want == CUDA_SUCCESS)
				n->passed++;
			else
				n->not_found++;
			expect = want;
		}
		if (got != expect)
			report_add(&rep, "'%s' %d %llu (%s): got %p in %s, expected %p in %s", sym, version,
				   (unsigned long long)flags, exact != NULL ? exact : "no such symbol", got,
				   object_of(got), expect, object_of(expect));
	}
	fclose(f);
	ck_assert_msg(rep.count == 0, "%s: %d of %d requests differ:%s", entry, rep.count, n->rows, rep.text);
	ck_assert_int_gt(n->rows, 400);
	ck_assert_int_eq(n->empty, 1);
	/* Both classes occur, or the comparison proves little. */
	ck_assert_int_gt(n->hooked, 0);
	ck_assert_int_gt(n->passed, 0);
}

START_TEST(test_replay_v2)
{
	struct replay_counts n;

	/* The runtime asks before cuInit, so the replay does too. */
	replay(1, &n);
	/* The runtime asks for the allocation, copy and launch entry points memvirt hooks. */
	ck_assert_int_ge(n.hooked, 20);
	ck_assert_int_gt(n.not_found, 0);
}
END_TEST

START_TEST(test_replay_v1)
{
	struct replay_counts n;

	replay(0, &n);
}
END_TEST

START_TEST(test_replay_after_init)
{
	struct replay_counts n;

	/* The same answers with the driver in use and memvirt's device side set up. */
	simtest_start("SIMCUDA_MEM=64MiB");
	{
		CUdeviceptr p;
		CHK(cuMemAlloc(&p, 4 << 20));
		CHK(cuMemFree(p));
	}
	replay(1, &n);
}
END_TEST

START_TEST(test_unhooked_names_untouched)
{
	void *drv = driver_handle();
	procaddr_v2_fn real_v2 = (procaddr_v2_fn)libc_dlsym()(drv, "cuGetProcAddress_v2");
	static const struct {
		const char *name;
		int version;
		cuuint64_t flags;
	} cases[] = {
		/* Older versions of hooked names mean unhooked symbols. */
		{"cuStreamBeginCapture", 10000, 0},
		{"cuStreamBeginCapture", 10000, CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM},
		/* Names memvirt does not hook, some of them about memory. */
		{"cuMemAllocHost", 3020, 0},
		{"cuMemHostAlloc", 13000, 0},
		{"cuStreamQuery", 13000, CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM},
		{"cuDeviceGetName", 13000, 0},
		{"cuStreamSynchronize", 13000, CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM},
		{"cuEventQuery", 13000, 0},
		{"cuModuleLoadData", 13000, 0},
	};

	ck_assert_ptr_nonnull(real_v2);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		void *got = NULL, *want = NULL;
		CUdriverProcAddressQueryResult st;

		CHK(real_v2(cases[i].name, &want, cases[i].version, cases[i].flags, &st));
		CHK(cuGetProcAddress_v2(cases[i].name, &got, cases[i].version, cases[i].flags, &st));
		ck_assert_int_eq(st, CU_GET_PROC_ADDRESS_SUCCESS);
		if (got != want)
			ck_abort_msg("%s %d %llu: got %p in %s, the driver's is %p", cases[i].name, cases[i].version,
				     (unsigned long long)cases[i].flags, got, object_of(got), want);
		ck_assert_str_eq(object_of(got), "libcuda.so.1");
	}
}
END_TEST

/* ---- dlsym on the driver's handle ---- */

START_TEST(test_dlsym_on_driver_handle)
{
	void *drv = driver_handle();
	dlsym_fn real = libc_dlsym();
	void *alloc, *name, *ptds;
	Dl_info info;

	/* The dlsym this program calls is the library's. */
	ck_assert_str_eq(object_of((void *)dlsym), "libmemvirt.so");

	alloc = dlsym(drv, "cuMemAlloc_v2");
	ck_assert_ptr_nonnull(alloc);
	ck_assert_ptr_eq(alloc, export_of("cuMemAlloc_v2"));
	ck_assert_ptr_eq(alloc, dlsym(RTLD_DEFAULT, "cuMemAlloc_v2"));
	ck_assert_ptr_ne(alloc, real(drv, "cuMemAlloc_v2"));
	ck_assert_int_ne(dladdr(alloc, &info), 0);
	ck_assert_str_eq(object_of(alloc), "libmemvirt.so");
	ck_assert_str_eq(info.dli_sname, "cuMemAlloc_v2");

	ptds = dlsym(drv, "cuMemcpyHtoD_v2_ptds");
	ck_assert_ptr_eq(ptds, export_of("cuMemcpyHtoD_v2_ptds"));
	ck_assert_ptr_eq(dlsym(drv, "cuGetProcAddress_v2"), export_of("cuGetProcAddress_v2"));

	name = dlsym(drv, "cuDeviceGetName");
	ck_assert_ptr_nonnull(name);
	ck_assert_ptr_eq(name, real(drv, "cuDeviceGetName"));
	ck_assert_str_eq(object_of(name), "libcuda.so.1");
	/* The first version of a name whose second is hooked is the driver's. */
	ck_assert_ptr_eq(dlsym(drv, "cuStreamBeginCapture_v2"), export_of("cuStreamBeginCapture_v2"));
	ck_assert_ptr_nonnull(real(drv, "cuStreamBeginCapture"));
	ck_assert_ptr_eq(dlsym(drv, "cuStreamBeginCapture"), real(drv, "cuStreamBeginCapture"));
	ck_assert_str_eq(object_of(dlsym(drv, "cuStreamBeginCapture")), "libcuda.so.1");

	/* Misses and other libraries' names are the C library's answers. */
	ck_assert_ptr_null(dlsym(drv, "cuNoSuchEntryPoint"));
	ck_assert_ptr_eq(dlsym(RTLD_DEFAULT, "malloc"), real(RTLD_DEFAULT, "malloc"));
	ck_assert_ptr_eq(dlsym(RTLD_NEXT, "free"), real(RTLD_NEXT, "free"));
}
END_TEST

START_TEST(test_dlsym_rtld_next)
{
	dlsym_fn real = libc_dlsym();
	void *want;

	/* RTLD_NEXT means the objects after the caller: the app, not the library answering for it.
	 * From this program the next object is the preloaded library itself, which exports
	 * memvirt_counters; calls unrelated to memory behave as without memvirt. */
	want = real(RTLD_NEXT, MEMVIRT_COUNTERS);
	ck_assert_ptr_nonnull(want);
	ck_assert_str_eq(object_of(want), "libmemvirt.so");
	ck_assert_ptr_eq(dlsym(RTLD_NEXT, MEMVIRT_COUNTERS), want);
	ck_assert_ptr_eq(dlsym(RTLD_NEXT, "dlsym"), real(RTLD_NEXT, "dlsym"));
}
END_TEST

START_TEST(test_dlsym_hook_serves_allocations)
{
	mem_alloc_fn alloc;
	memvirt_counters_fn counters;
	struct memvirt_counters c;
	CUdeviceptr p = 0;

	simtest_start("SIMCUDA_MEM=64MiB");
	alloc = (mem_alloc_fn)dlsym(driver_handle(), "cuMemAlloc_v2");
	counters = (memvirt_counters_fn)dlsym(RTLD_DEFAULT, MEMVIRT_COUNTERS);
	ck_assert_ptr_nonnull(counters);
	CHK(alloc(&p, 8 << 20));
	ck_assert_uint_ne(p, 0);
	counters(&c);
	/* The allocation went through memvirt: its budget is set and the buffer is charged to it. */
	ck_assert_uint_eq(c.budget, 64ull << 20);
	ck_assert_uint_ge(c.resident_bytes, 8ull << 20);
	CHK(simtest_fill(p, 2.5f, (8 << 20) / sizeof(float), NULL));
	simtest_expect_floats(p, (8 << 20) / sizeof(float), 2.5f);
	CHK(cuMemFree(p));
}
END_TEST

/* ---- the per-thread default stream flag ---- */

static void *resolve(const char *name, int version, cuuint64_t flags)
{
	void *pfn = NULL;
	CUdriverProcAddressQueryResult st = (CUdriverProcAddressQueryResult)99;

	CHK(cuGetProcAddress_v2(name, &pfn, version, flags, &st));
	ck_assert_int_eq(st, CU_GET_PROC_ADDRESS_SUCCESS);
	ck_assert_ptr_nonnull(pfn);
	return pfn;
}

START_TEST(test_per_thread_flag)
{
	const cuuint64_t ptds = CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM;
	void *htod_ptds = export_of("cuMemcpyHtoD_v2_ptds"), *htod = export_of("cuMemcpyHtoD_v2");

	ck_assert_ptr_ne(htod_ptds, htod);
	ck_assert_ptr_eq(resolve("cuMemcpyHtoD", 12000, ptds), htod_ptds);
	ck_assert_ptr_eq(resolve("cuMemcpyHtoD", 12000, 0), htod);
	ck_assert_ptr_eq(resolve("cuMemcpyHtoD", 12000, CU_GET_PROC_ADDRESS_LEGACY_STREAM), htod);
	/* The per-thread variants appeared in 7.0; below, the flag selects the default one. */
	ck_assert_ptr_eq(resolve("cuMemcpyHtoD", 6050, ptds), htod);
	ck_assert_ptr_eq(resolve("cuMemcpyHtoD", 7000, ptds), htod_ptds);
	/* Asynchronous forms take the per-thread stream as _ptsz. */
	ck_assert_ptr_eq(resolve("cuLaunchKernel", 12000, ptds), export_of("cuLaunchKernel_ptsz"));
	ck_assert_ptr_eq(resolve("cuLaunchKernel", 12000, 0), export_of("cuLaunchKernel"));
	ck_assert_ptr_eq(resolve("cuMemsetD32Async", 12000, ptds), export_of("cuMemsetD32Async_ptsz"));
	/* A name without a per-thread form is the same hook either way. */
	ck_assert_ptr_eq(resolve("cuMemAlloc", 12000, ptds), export_of("cuMemAlloc_v2"));
	ck_assert_ptr_eq(resolve("cuMemAlloc", 12000, 0), export_of("cuMemAlloc_v2"));
}
END_TEST

START_TEST(test_per_thread_hook_copies)
{
	htod_fn htod;
	dtoh_fn dtoh;
	CUdeviceptr p;
	int in[1024], out[1024];

	simtest_start("SIMCUDA_MEM=64MiB");
	htod = (htod_fn)resolve("cuMemcpyHtoD", 12000, CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM);
	dtoh = (dtoh_fn)resolve("cuMemcpyDtoH", 12000, 0);
	for (int i = 0; i < 1024; i++) {
		in[i] = i * 7 - 3;
		out[i] = -1;
	}
	CHK(cuMemAlloc(&p, sizeof(in)));
	CHK(htod(p, in, sizeof(in)));
	CHK(dtoh(out, p, sizeof(out)));
	ck_assert_mem_eq(in, out, sizeof(in));
	CHK(cuMemFree(p));
}
END_TEST

static Suite *procaddr_suite(void)
{
	Suite *s = suite_create("interpose_procaddr");
	TCase *tc = simtest_tcase(s, "getprocaddress", 20);

	tcase_add_test(tc, test_replay_v2);
	tcase_add_test(tc, test_replay_v1);
	tcase_add_test(tc, test_replay_after_init);
	tcase_add_test(tc, test_unhooked_names_untouched);
	tc = simtest_tcase(s, "dlsym", 10);
	tcase_add_test(tc, test_dlsym_on_driver_handle);
	tcase_add_test(tc, test_dlsym_rtld_next);
	tcase_add_test(tc, test_dlsym_hook_serves_allocations);
	tc = simtest_tcase(s, "per_thread", 10);
	tcase_add_test(tc, test_per_thread_flag);
	tcase_add_test(tc, test_per_thread_hook_copies);
	return s;
}

/* Re-runs this program with the library preloaded unless it already is. Returns only when it is. */
static int preload_self(char **argv)
{
	const char *lib = lib_path(), *old = getenv("LD_PRELOAD");
	char *value;
	size_t len;

	if (dlopen(lib, RTLD_NOW | RTLD_NOLOAD) != NULL)
		return 0;
	if (getenv(REEXEC_MARK) != NULL) {
		fprintf(stderr, "check_interpose_procaddr: %s is not loaded even with LD_PRELOAD=%s\n", lib,
			old != NULL ? old : "");
		return -1;
	}
	if (access(lib, R_OK) != 0) {
		fprintf(stderr, "check_interpose_procaddr: %s is not built\n", lib);
		return -1;
	}
	len = strlen(lib) + (old != NULL ? strlen(old) + 1 : 0) + 1;
	value = malloc(len);
	if (value == NULL)
		return -1;
	snprintf(value, len, "%s%s%s", lib, old != NULL && *old != '\0' ? ":" : "", old != NULL ? old : "");
	if (setenv("LD_PRELOAD", value, 1) != 0 || setenv(REEXEC_MARK, "1", 1) != 0)
		return -1;
	execv("/proc/self/exe", argv);
	perror("check_interpose_procaddr: execv /proc/self/exe");
	return -1;
}

int main(int argc, char **argv)
{
	if (preload_self(argv) != 0)
		return 99;
	return simtest_run(procaddr_suite());
}
