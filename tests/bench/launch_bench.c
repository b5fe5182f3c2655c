/* Host-side cost of launches and of allocations on whichever libcuda.so.1 the process loads: the
 * simulated GPU directly, or with libmemvirt.so preloaded in front of it. tests/bench/launch.sh and
 * tests/bench/alloc.sh run it both ways and compare.
 *
 * usage: launch_bench launch N_PTRS ITERS [REPS]   N_PTRS one of 2, 8, 32
 *        launch_bench alloc SIZE ITERS [REPS]      SIZE in bytes or with a suffix: 4KiB, 64MiB
 *
 * launch: ITERS launches of mv_touchN_PTRS on one stream, every pointer naming a buffer of its own
 * above the slab threshold, timed with CLOCK_MONOTONIC around the launches alone; the stream is
 * synchronised after each repetition, outside the timing. Prints the median ns per launch.
 * alloc: ITERS cuMemAlloc_v2/cuMemFree_v2 pairs of SIZE bytes. Prints the median pairs per second.
 * One untimed repetition of ITERS/10 comes first in both. Exits 0, 1 on a driver error, 2 on usage. */
#include <cuda.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define BENCH_MAX_PTRS 32
#define BENCH_MAX_REPS 101
#define BENCH_BUF_BYTES (4u << 20) /* each launch buffer: a large buffer under the default threshold */

#define CK(call, args) \
	do { \
		CUresult r_ = call args; \
		if (r_ != CUDA_SUCCESS) { \
			const char *name_ = NULL; \
			cuGetErrorName(r_, &name_); \
			fprintf(stderr, "launch_bench: %s failed: %s (%d)\n", #call, name_ ? name_ : "?", (int)r_); \
			exit(1); \
		} \
	} while (0)

static void bench_usage(void)
{
	fprintf(stderr, "usage: launch_bench launch N_PTRS ITERS [REPS]   (N_PTRS: 2, 8 or 32)\n"
			"       launch_bench alloc SIZE ITERS [REPS]\n");
	exit(2);
}

static double bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int bench_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double bench_median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), bench_cmp);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* A count or size: digits, optionally followed by KiB, MiB or GiB. 0 when malformed. */
static uint64_t bench_parse(const char *s)
{
	char *end;
	uint64_t v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || end == s)
		return 0;
	if (*end == '\0')
		return v;
	if (strcasecmp(end, "KiB") == 0)
		return v << 10;
	if (strcasecmp(end, "MiB") == 0)
		return v << 20;
	if (strcasecmp(end, "GiB") == 0)
		return v << 30;
	return 0;
}

static void bench_context(void)
{
	CUdevice dev;
	CUcontext ctx;

	CK(cuInit, (0));
	CK(cuDeviceGet, (&dev, 0));
	CK(cuDevicePrimaryCtxRetain, (&ctx, dev));
	CK(cuCtxSetCurrent, (ctx));
}

static void bench_launch(unsigned nptrs, uint64_t iters, int reps)
{
	CUdeviceptr bufs[BENCH_MAX_PTRS + 1];
	void *args[BENCH_MAX_PTRS + 1];
	double ns[BENCH_MAX_REPS];
	const char *mo = getenv("SIMCUDA_MODEL_ONLY");
	int model_only = mo != NULL && strcmp(mo, "1") == 0;
	char name[32];
	CUmodule mod;
	CUfunction f;
	CUstream s;

	bench_context();
	CK(cuModuleLoadData, (&mod, "simcuda"));
	snprintf(name, sizeof(name), "mv_touch%u", nptrs);
	CK(cuModuleGetFunction, (&f, mod, name));
	CK(cuStreamCreate, (&s, CU_STREAM_NON_BLOCKING));
	for (unsigned i = 0; i <= nptrs; i++) {
		CK(cuMemAlloc_v2, (&bufs[i], BENCH_BUF_BYTES));
		CK(cuMemsetD32_v2, (bufs[i], 0x3f800000u, BENCH_BUF_BYTES / 4)); /* 1.0f */
		args[i] = &bufs[i];
	}
	CK(cuCtxSynchronize, ());

	for (uint64_t i = 0; i < iters / 10 + 1; i++)
		CK(cuLaunchKernel, (f, 1, 1, 1, 1, 1, 1, 0, s, args, NULL));
	CK(cuStreamSynchronize, (s));
	for (int r = 0; r < reps; r++) {
		double t0 = bench_now_ns(), t1;
		for (uint64_t i = 0; i < iters; i++)
			CK(cuLaunchKernel, (f, 1, 1, 1, 1, 1, 1, 0, s, args, NULL));
		t1 = bench_now_ns();
		CK(cuStreamSynchronize, (s));
		ns[r] = (t1 - t0) / (double)iters;
	}

	/* The kernels ran (unless the device stores no bytes): out[0] is the sum of nptrs ones. */
	if (!model_only) {
		float out = 0;
		CK(cuMemcpyDtoH_v2, (&out, bufs[0], sizeof(out)));
		if (out != (float)nptrs) {
			fprintf(stderr, "launch_bench: %s wrote %g, expected %u\n", name, (double)out, nptrs);
			exit(1);
		}
	}
	for (unsigned i = 0; i <= nptrs; i++)
		CK(cuMemFree_v2, (bufs[i]));
	CK(cuStreamDestroy_v2, (s));
	printf("launch ptrs %u iters %" PRIu64 " reps %d median_ns %.1f\n", nptrs, iters, reps,
	       bench_median(ns, reps));
}

static void bench_alloc(uint64_t size, uint64_t iters, int reps)
{
	double rate[BENCH_MAX_REPS];
	CUdeviceptr p;

	bench_context();
	for (uint64_t i = 0; i < iters / 10 + 1; i++) {
		CK(cuMemAlloc_v2, (&p, size));
		CK(cuMemFree_v2, (p));
	}
	for (int r = 0; r < reps; r++) {
		double t0 = bench_now_ns(), t1;
		for (uint64_t i = 0; i < iters; i++) {
			CK(cuMemAlloc_v2, (&p, size));
			CK(cuMemFree_v2, (p));
		}
		t1 = bench_now_ns();
		rate[r] = (double)iters / ((t1 - t0) / 1e9);
	}
	printf("alloc size %" PRIu64 " iters %" PRIu64 " reps %d median_pairs_per_s %.0f\n", size, iters, reps,
	       bench_median(rate, reps));
}

int main(int argc, char **argv)
{
	uint64_t a, iters;
	int reps = 7;

	if (argc < 4 || argc > 5)
		bench_usage();
	a = bench_parse(argv[2]);
	iters = bench_parse(argv[3]);
	if (argc == 5)
		reps = (int)bench_parse(argv[4]);
	if (a == 0 || iters == 0 || reps < 1 || reps > BENCH_MAX_REPS)
		bench_usage();
	if (strcmp(argv[1], "launch") == 0) {
		if (a != 2 && a != 8 && a != 32)
			bench_usage();
		bench_launch((unsigned)a, iters, reps);
	} else if (strcmp(argv[1], "alloc") == 0) {
		bench_alloc(a, iters, reps);
	} else {
		bench_usage();
	}
	return 0;
}
