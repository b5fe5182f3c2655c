/* Host-side cost of launches and of allocations on whichever libcuda.so.1 the process loads: the
 * simulated GPU directly, or with libmemvirt.so preloaded in front of it. tests/bench/launch.sh and
 * tests/bench/alloc.sh run it both ways and compare; tests/bench/daemon.sh runs it linked to memvirtd.
 *
 * usage: launch_bench [--linked] launch N_PTRS ITERS [REPS]   N_PTRS one of 2, 8, 32
 *        launch_bench alloc SIZE ITERS [REPS]               SIZE in bytes or with a suffix: 4KiB, 64MiB
 *        launch_bench rate N_PTRS RATE SECONDS
 *
 * launch: ITERS launches of mv_touchN_PTRS on one stream, every pointer naming a buffer of its own
 * above the slab threshold, timed with CLOCK_MONOTONIC around the launches alone; the stream is
 * synchronised after each repetition, outside the timing. The stream is a non-blocking one of its
 * own, or the legacy default stream with MV_BENCH_STREAM=legacy (the calling thread's per-thread one
 * with MV_BENCH_STREAM=per-thread). Prints the median ns per launch. With
 * --linked, the timing starts only once libmemvirt.so has sent memvirtd its first events.
 * alloc: ITERS cuMemAlloc_v2/cuMemFree_v2 pairs of SIZE bytes. Prints the median pairs per second.
 * One untimed repetition of ITERS/10 comes first in both.
 * rate: once linked (as --linked), RATE launches a second for SECONDS, paced by busy-waiting on
 * CLOCK_MONOTONIC (a late launch goes at once, so the average catches up if it can); then the
 * events the library sent to memvirtd and dropped meanwhile, and the rate reached. Needs
 * libmemvirt.so and a daemon.
 * Exits 0, 1 on a driver error or no link, 2 on usage. */
#include <cuda.h>
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "interpose/memvirt.h"

#define BENCH_MAX_PTRS 32
#define BENCH_MAX_REPS 101
#define BENCH_BUF_BYTES (4u << 20) /* each launch buffer: a large buffer under the default threshold */
#define BENCH_LINK_MS 5000         /* how long the library may take to link to memvirtd */
#define BENCH_FLUSH_MS 500         /* enough for the link thread's next batches (every 20 ms) */

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
	fprintf(stderr, "usage: launch_bench [--linked] launch N_PTRS ITERS [REPS]   (N_PTRS: 2, 8 or 32)\n"
			"       launch_bench alloc SIZE ITERS [REPS]\n"
			"       launch_bench event 1 ITERS [REPS]\n"
			"       launch_bench rate N_PTRS RATE SECONDS\n");
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

/* The buffers and kernel of the launch modes: one output and nptrs inputs. */
struct bench_kernel {
	unsigned nptrs;
	CUdeviceptr bufs[BENCH_MAX_PTRS + 1];
	void *args[BENCH_MAX_PTRS + 1];
	char name[32];
	CUmodule mod;
	CUfunction f;
	CUstream s;
};

static void bench_kernel_init(struct bench_kernel *k, unsigned nptrs)
{
	k->nptrs = nptrs;
	bench_context();
	CK(cuModuleLoadData, (&k->mod, "simcuda"));
	snprintf(k->name, sizeof(k->name), "mv_touch%u", nptrs);
	CK(cuModuleGetFunction, (&k->f, k->mod, k->name));
	if (getenv("MV_BENCH_STREAM") != NULL && strcmp(getenv("MV_BENCH_STREAM"), "legacy") == 0)
		k->s = CU_STREAM_LEGACY;
	else if (getenv("MV_BENCH_STREAM") != NULL && strcmp(getenv("MV_BENCH_STREAM"), "per-thread") == 0)
		k->s = CU_STREAM_PER_THREAD;
	else
		CK(cuStreamCreate, (&k->s, CU_STREAM_NON_BLOCKING));
	for (unsigned i = 0; i <= nptrs; i++) {
		CK(cuMemAlloc_v2, (&k->bufs[i], BENCH_BUF_BYTES));
		CK(cuMemsetD32_v2, (k->bufs[i], 0x3f800000u, BENCH_BUF_BYTES / 4)); /* 1.0f */
		k->args[i] = &k->bufs[i];
	}
	CK(cuCtxSynchronize, ());
}

static void bench_kernel_launch(struct bench_kernel *k)
{
	CK(cuLaunchKernel, (k->f, 1, 1, 1, 1, 1, 1, 0, k->s, k->args, NULL));
}

static void bench_kernel_fini(struct bench_kernel *k)
{
	for (unsigned i = 0; i <= k->nptrs; i++)
		CK(cuMemFree_v2, (k->bufs[i]));
	if (k->s != CU_STREAM_LEGACY)
		CK(cuStreamDestroy_v2, (k->s));
}

/* libmemvirt.so's counters; exits when the library is not loaded. */
static void bench_counters(struct memvirt_counters *c)
{
	static memvirt_counters_fn fn;

	if (fn == NULL)
		fn = (memvirt_counters_fn)dlsym(RTLD_DEFAULT, MEMVIRT_COUNTERS);
	if (fn == NULL) {
		fprintf(stderr, "launch_bench: no %s: libmemvirt.so is not loaded\n", MEMVIRT_COUNTERS);
		exit(1);
	}
	fn(c);
}

/* Launches one kernel a millisecond until the library has sent memvirtd events, so that what
 * follows runs with the link up. The link starts with the first allocation, and its first batch
 * goes within 100 ms of the WELCOME. */
static void bench_wait_linked(struct bench_kernel *k)
{
	struct memvirt_counters c;
	double deadline = bench_now_ns() + BENCH_LINK_MS * 1e6;

	for (;;) {
		bench_counters(&c);
		if (c.events_sent > 0)
			break;
		if (bench_now_ns() >= deadline) {
			fprintf(stderr, "launch_bench: libmemvirt.so did not link to memvirtd in %d ms\n",
				BENCH_LINK_MS);
			exit(1);
		}
		bench_kernel_launch(k);
		usleep(1000);
	}
	CK(cuStreamSynchronize, (k->s));
}

static void bench_launch(unsigned nptrs, uint64_t iters, int reps, int linked)
{
	struct bench_kernel k;
	double ns[BENCH_MAX_REPS];
	const char *mo = getenv("SIMCUDA_MODEL_ONLY");
	int model_only = mo != NULL && strcmp(mo, "1") == 0;

	bench_kernel_init(&k, nptrs);
	for (uint64_t i = 0; i < iters / 10 + 1; i++)
		bench_kernel_launch(&k);
	CK(cuStreamSynchronize, (k.s));
	if (linked)
		bench_wait_linked(&k);
	for (int r = 0; r < reps; r++) {
		double t0 = bench_now_ns(), t1;
		for (uint64_t i = 0; i < iters; i++)
			bench_kernel_launch(&k);
		t1 = bench_now_ns();
		CK(cuStreamSynchronize, (k.s));
		ns[r] = (t1 - t0) / (double)iters;
	}

	/* The kernels ran (unless the device stores no bytes): out[0] is the sum of nptrs ones. */
	if (!model_only) {
		float out = 0;
		CK(cuMemcpyDtoH_v2, (&out, k.bufs[0], sizeof(out)));
		if (out != (float)nptrs) {
			fprintf(stderr, "launch_bench: %s wrote %g, expected %u\n", k.name, (double)out, nptrs);
			exit(1);
		}
	}
	bench_kernel_fini(&k);
	printf("launch ptrs %u iters %" PRIu64 " reps %d median_ns %.1f\n", nptrs, iters, reps,
	       bench_median(ns, reps));
}

/* cuEventRecord on the bench's stream, outside any capture: what the library's fork-and-join hook
 * adds to a call frameworks make after most launches. */
static void bench_event(uint64_t iters, int reps)
{
	struct bench_kernel k;
	double ns[BENCH_MAX_REPS];
	CUevent e;

	bench_kernel_init(&k, 2);
	CK(cuEventCreate, (&e, CU_EVENT_DISABLE_TIMING));
	for (uint64_t i = 0; i < iters / 10 + 1; i++)
		CK(cuEventRecord, (e, k.s));
	for (int r = 0; r < reps; r++) {
		double t0 = bench_now_ns(), t1;
		for (uint64_t i = 0; i < iters; i++)
			CK(cuEventRecord, (e, k.s));
		t1 = bench_now_ns();
		ns[r] = (t1 - t0) / (double)iters;
	}
	CK(cuStreamSynchronize, (k.s));
	CK(cuEventDestroy_v2, (e));
	bench_kernel_fini(&k);
	printf("event iters %" PRIu64 " reps %d median_ns %.1f\n", iters, reps, bench_median(ns, reps));
}

static void bench_rate(unsigned nptrs, uint64_t rate, uint64_t seconds)
{
	struct memvirt_counters before, after;
	struct bench_kernel k;
	uint64_t n = rate * seconds;
	double period = 1e9 / (double)rate, t0, t1, late = 0;

	bench_kernel_init(&k, nptrs);
	bench_wait_linked(&k);
	/* The events of the wait are sent before the count starts. */
	usleep(BENCH_FLUSH_MS * 1000);
	bench_counters(&before);
	t0 = bench_now_ns();
	for (uint64_t i = 0; i < n; i++) {
		double due = t0 + (double)i * period, now;
		while ((now = bench_now_ns()) < due)
			;
		if (now - due > late)
			late = now - due;
		bench_kernel_launch(&k);
	}
	t1 = bench_now_ns();
	CK(cuStreamSynchronize, (k.s));
	usleep(BENCH_FLUSH_MS * 1000);
	bench_counters(&after);
	bench_kernel_fini(&k);
	printf("rate ptrs %u target_per_s %" PRIu64 " launches %" PRIu64 " seconds %.3f achieved_per_s %.0f "
	       "max_late_us %.1f events_sent %" PRIu64 " events_dropped %" PRIu64 "\n",
	       nptrs, rate, n, (t1 - t0) / 1e9, (double)n / ((t1 - t0) / 1e9), late / 1e3,
	       after.events_sent - before.events_sent, after.events_dropped - before.events_dropped);
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
	int reps = 7, linked = 0;

	if (argc > 1 && strcmp(argv[1], "--linked") == 0) {
		linked = 1;
		argc--;
		argv++;
	}
	if (argc < 4 || argc > 5)
		bench_usage();
	a = bench_parse(argv[2]);
	iters = bench_parse(argv[3]);
	if (argc == 5)
		reps = (int)bench_parse(argv[4]);
	if (strcmp(argv[1], "rate") == 0) {
		/* rate N_PTRS RATE SECONDS: the fourth word is the seconds. */
		if (argc != 5 || linked || (a != 2 && a != 8 && a != 32) || iters == 0 || reps < 1)
			bench_usage();
		bench_rate((unsigned)a, iters, (uint64_t)reps);
		return 0;
	}
	if (a == 0 || iters == 0 || reps < 1 || reps > BENCH_MAX_REPS)
		bench_usage();
	if (strcmp(argv[1], "launch") == 0) {
		if (a != 2 && a != 8 && a != 32)
			bench_usage();
		bench_launch((unsigned)a, iters, reps, linked);
	} else if (strcmp(argv[1], "alloc") == 0 && !linked) {
		bench_alloc(a, iters, reps);
	} else if (strcmp(argv[1], "event") == 0 && !linked && a == 1) {
		bench_event(iters, reps);
	} else {
		bench_usage();
	}
	return 0;
}
