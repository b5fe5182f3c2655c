/* Shared helpers for the simulated driver's unit tests: checked driver calls, the standard context and
 * module, launches by kernel name and the simulated driver's own entry points.
 *
 * The simulated driver reads its configuration once, at the first cuInit, so every test sets its
 * environment and initialises inside its own forked child (CK_FORK): the runner never calls cuInit. */
#ifndef SIMTEST_H
#define SIMTEST_H

#include <check.h>
#include <cuda.h>
#include <dlfcn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/simcuda/simcuda.h"

#define SIMTEST_UNUSED __attribute__((unused))

static SIMTEST_UNUSED const char *simtest_err_name(CUresult r)
{
	const char *name = NULL;

	if (cuGetErrorName(r, &name) != CUDA_SUCCESS || name == NULL)
		return "(unknown CUresult)";
	return name;
}

/* Fails the test with the error's name when a driver call does not succeed. */
#define CHK(call)                                                                                        \
	do {                                                                                             \
		CUresult chk_r_ = (call);                                                                \
		if (chk_r_ != CUDA_SUCCESS)                                                              \
			ck_abort_msg("%s:%d: %s failed: %s (%d)", __FILE__, __LINE__, #call,             \
				     simtest_err_name(chk_r_), (int)chk_r_);                             \
	} while (0)

/* Fails the test unless a driver call returns exactly the expected result. */
#define CHK_ERR(call, want)                                                                              \
	do {                                                                                             \
		CUresult chk_r_ = (call), chk_w_ = (want);                                               \
		if (chk_r_ != chk_w_)                                                                    \
			ck_abort_msg("%s:%d: %s returned %s (%d), expected %s (%d)", __FILE__, __LINE__, \
				     #call, simtest_err_name(chk_r_), (int)chk_r_,                       \
				     simtest_err_name(chk_w_), (int)chk_w_);                             \
	} while (0)

#define SIMTEST_MIB (1ull << 20)

/* What simtest_start sets up; valid in the test that called it. */
static SIMTEST_UNUSED CUdevice simtest_dev;
static SIMTEST_UNUSED CUcontext simtest_ctx;
static SIMTEST_UNUSED CUmodule simtest_mod;

/* Sets "NAME=value" settings (a NULL-terminated list) in the environment. */
static SIMTEST_UNUSED void simtest_env(const char *setting, ...)
{
	va_list ap;

	va_start(ap, setting);
	for (const char *s = setting; s != NULL; s = va_arg(ap, const char *)) {
		const char *eq = strchr(s, '=');
		char name[128];

		ck_assert_msg(eq != NULL && (size_t)(eq - s) < sizeof(name), "bad setting %s", s);
		memcpy(name, s, (size_t)(eq - s));
		name[eq - s] = '\0';
		ck_assert_int_eq(setenv(name, eq + 1, 1), 0);
	}
	va_end(ap);
}

/* The module image named by SIMTEST_MODULE (the kernels built by nvcc, when scripts/gpu-check runs
 * these tests on a real driver), or NULL. The image is kept for the test's life. */
static SIMTEST_UNUSED void *simtest_module_image(void)
{
	const char *path = getenv("SIMTEST_MODULE");
	FILE *f;
	char *image;
	long n;

	if (path == NULL || path[0] == '\0')
		return NULL;
	f = fopen(path, "rb");
	ck_assert_msg(f != NULL, "SIMTEST_MODULE: cannot open %s", path);
	ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	ck_assert_msg(n > 0, "SIMTEST_MODULE: %s is empty", path);
	rewind(f);
	image = malloc((size_t)n);
	ck_assert_ptr_nonnull(image);
	ck_assert_msg(fread(image, 1, (size_t)n, f) == (size_t)n, "SIMTEST_MODULE: cannot read %s", path);
	fclose(f);
	return image;
}

/* Initialises the driver, makes the primary context current and loads the built-in module (or the
 * image SIMTEST_MODULE names). */
static SIMTEST_UNUSED void simtest_init(void)
{
	void *image = simtest_module_image();

	CHK(cuInit(0));
	CHK(cuDeviceGet(&simtest_dev, 0));
	CHK(cuDevicePrimaryCtxRetain(&simtest_ctx, simtest_dev));
	CHK(cuCtxSetCurrent(simtest_ctx));
	CHK(cuModuleLoadData(&simtest_mod, image != NULL ? image : "simcuda"));
}

/* Sets the given settings (NULL-terminated, possibly none), then simtest_init(). */
#define simtest_start(...) simtest_start_((const char *)0, ##__VA_ARGS__, (const char *)0)
static SIMTEST_UNUSED void simtest_start_(const char *unused, ...)
{
	va_list ap;

	va_start(ap, unused);
	for (const char *s = va_arg(ap, const char *); s != NULL; s = va_arg(ap, const char *))
		simtest_env(s, (const char *)0);
	va_end(ap);
	simtest_init();
}

static SIMTEST_UNUSED CUfunction simtest_func(const char *name)
{
	CUfunction f = NULL;

	CHK(cuModuleGetFunction(&f, simtest_mod, name));
	ck_assert_ptr_nonnull(f);
	return f;
}

/* Launches a built-in kernel by name on one thread block, with kernelParams. */
static SIMTEST_UNUSED CUresult simtest_launch(const char *name, CUstream s, void **params)
{
	return cuLaunchKernel(simtest_func(name), 1, 1, 1, 1, 1, 1, 0, s, params, NULL);
}

/* mv_fill(p, v, n) and mv_axpy(y, x, a, n), the two kernels most tests use. */
static SIMTEST_UNUSED CUresult simtest_fill(CUdeviceptr p, float v, uint64_t n, CUstream s)
{
	void *args[] = {&p, &v, &n};
	return simtest_launch("mv_fill", s, args);
}

static SIMTEST_UNUSED CUresult simtest_axpy(CUdeviceptr y, CUdeviceptr x, float a, uint64_t n, CUstream s)
{
	void *args[] = {&y, &x, &a, &n};
	return simtest_launch("mv_axpy", s, args);
}

/* Copies n floats from the device and checks that every one equals want. */
static SIMTEST_UNUSED void simtest_expect_floats(CUdeviceptr p, uint64_t n, float want)
{
	float *h = malloc(n * sizeof(float));

	ck_assert_ptr_nonnull(h);
	CHK(cuMemcpyDtoH(h, p, n * sizeof(float)));
	for (uint64_t i = 0; i < n; i++)
		if (h[i] != want) {
			float got = h[i];
			free(h);
			ck_abort_msg("element %llu is %g, expected %g", (unsigned long long)i, got, want);
		}
	free(h);
}

/* Checks that every one of n host floats equals want. */
static SIMTEST_UNUSED void simtest_expect_host(const float *h, uint64_t n, float want)
{
	for (uint64_t i = 0; i < n; i++)
		if (h[i] != want)
			ck_abort_msg("element %llu is %g, expected %g", (unsigned long long)i, h[i], want);
}

/* Fails at the first element where got and want differ by more than tol (relative to want, or
 * absolute below 1). Loops check by hand and assert once: every passing assertion costs a write to
 * the test runner. */
static SIMTEST_UNUSED void simtest_expect_near(const float *got, const float *want, uint64_t n, float tol,
					       const char *what)
{
	for (uint64_t i = 0; i < n; i++) {
		float w = want[i], d = got[i] - w, scale = w < 0 ? -w : w;
		if (scale < 1.0f)
			scale = 1.0f;
		if (!(d <= tol * scale && -d <= tol * scale))
			ck_abort_msg("%s: element %llu is %.9g, expected %.9g", what, (unsigned long long)i, got[i], w);
	}
}

/* The simulated driver's own entry points (tests/simcuda/simcuda.h); a test fails without them. */
static SIMTEST_UNUSED void *simtest_sym(const char *name)
{
	void *p = dlsym(RTLD_DEFAULT, name);

	ck_assert_msg(p != NULL, "the driver does not export %s", name);
	return p;
}

static SIMTEST_UNUSED uint64_t simtest_clock_ns(void)
{
	return ((simcuda_clock_ns_fn)simtest_sym(SIMCUDA_CLOCK_NS))();
}

static SIMTEST_UNUSED uint64_t simtest_makespan_ns(void)
{
	return ((simcuda_makespan_ns_fn)simtest_sym(SIMCUDA_MAKESPAN_NS))();
}

static SIMTEST_UNUSED int simtest_model_only(void)
{
	return ((simcuda_model_only_fn)simtest_sym(SIMCUDA_MODEL_ONLY))();
}

static SIMTEST_UNUSED void simtest_mem_usage(uint64_t *used, uint64_t *peak)
{
	((simcuda_mem_usage_fn)simtest_sym(SIMCUDA_MEM_USAGE))(used, peak);
}

static SIMTEST_UNUSED size_t simtest_free_bytes(void)
{
	size_t free_bytes = 0, total = 0;

	CHK(cuMemGetInfo(&free_bytes, &total));
	return free_bytes;
}

/* VMM allocation properties for device 0 or for host memory. */
static SIMTEST_UNUSED CUmemAllocationProp simtest_prop(int host)
{
	CUmemAllocationProp prop;

	memset(&prop, 0, sizeof(prop));
	prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
	prop.location.type = host ? CU_MEM_LOCATION_TYPE_HOST : CU_MEM_LOCATION_TYPE_DEVICE;
	prop.location.id = 0;
	return prop;
}

/* Gives the device read-write (or other) access to [va, va+size). */
static SIMTEST_UNUSED CUresult simtest_set_access(CUdeviceptr va, size_t size, CUmemAccess_flags flags)
{
	CUmemAccessDesc d;

	memset(&d, 0, sizeof(d));
	d.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
	d.location.id = 0;
	d.flags = flags;
	return cuMemSetAccess(va, size, &d, 1);
}

/* Runs a suite in its own runner and returns the exit status for main(). */
static SIMTEST_UNUSED int simtest_run(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* Adds a test case of its own, with a timeout, to a suite. */
static SIMTEST_UNUSED TCase *simtest_tcase(Suite *s, const char *name, double timeout)
{
	TCase *tc = tcase_create(name);

	tcase_set_timeout(tc, timeout);
	suite_add_tcase(s, tc);
	return tc;
}

#endif
