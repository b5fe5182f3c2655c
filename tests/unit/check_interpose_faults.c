/* libmemvirt.so under device faults injected on the simulated GPU: a page-in whose cuMemCreate
 * fails, a page-out whose device-to-host copy fails, a page-in whose host-to-device copy fails, a
 * pinned host pool that is full or cannot be allocated, and very slow copy engines. Also where the
 * pool's pinned memory is placed: on the host NUMA node nearest the GPU.
 *
 * Every test ends the same way: either the app's call was served and the job goes on, or that call
 * returned a CUDA error and changed nothing. Each checks which of the two it was (the CUresult, the
 * counters, the log line) and then reads back every buffer, faulted or not, byte for byte against a
 * host copy. Faults are armed with simcuda_inject at the moment they are meant to hit, so they land
 * on the library's own call (the page-in's cuMemCreate, the page-out's copy) and not on the app's.
 * The safety net is off (SIMCUDA_NO_HOST_VMM=1), so a buffer left unmapped by a failed page-in is an
 * illegal address and not a quiet read of its host copy. */
#include "config.h"

#include "tests/unit/interposetest.h"

#define BUF (64 * ITEST_KIB) /* one granule */
#define NB 8                 /* buffers; the budget holds four */
#define ENV_MEM "SIMCUDA_MEM=64MiB"
#define ENV_GRAN "SIMCUDA_GRANULARITY=64KiB"
#define ENV_THR "MEMVIRT_SLAB_THRESHOLD=16KiB"
#define ENV_BUDGET "MEMVIRT_BUDGET=256KiB"
#define ENV_NET_OFF "SIMCUDA_NO_HOST_VMM=1"
#define ENV_NO_DAEMON "MEMVIRT_DAEMON=off"

/* The buffers of a test and what each must hold. */
struct bufs {
	CUdeviceptr d[NB];
	unsigned char *ref[NB];
	int n;
	uint64_t rng;
	char log[PATH_MAX];
};

static simcuda_inject_fn inject(void)
{
	return (simcuda_inject_fn)simtest_sym(SIMCUDA_INJECT);
}

static void arm(int kind, uint64_t skip, uint64_t count)
{
	ck_assert_int_eq(inject()(kind, skip, count), 0);
}

/* Logs at info to a private file, sets the common settings and the given ones, and initialises. */
static void start(struct bufs *t, const char *const *extra)
{
	memset(t, 0, sizeof(*t));
	t->rng = 0xfa17u;
	itest_tmpfile(t->log, sizeof(t->log), "log");
	ck_assert_int_eq(setenv("MEMVIRT_LOG_FILE", t->log, 1), 0);
	simtest_env("MEMVIRT_LOG=info", ENV_MEM, ENV_GRAN, ENV_THR, ENV_NO_DAEMON, (const char *)0);
	for (size_t i = 0; extra != NULL && extra[i] != NULL; i++)
		simtest_env(extra[i], (const char *)0);
	simtest_init();
}

/* Buffer i gets fresh random bytes through the app's own host-to-device copy. */
static void fill(struct bufs *t, int i)
{
	itest_random_bytes(&t->rng, t->ref[i], BUF);
	CHK(cuMemcpyHtoD(t->d[i], t->ref[i], BUF));
}

/* Allocates n buffers and fills each in order: under a budget of four, all but the last four end
 * up paged out, least recently used first. */
static void make(struct bufs *t, int n)
{
	for (int i = 0; i < n; i++) {
		t->ref[i] = malloc(BUF);
		ck_assert_ptr_nonnull(t->ref[i]);
		CHK(cuMemAlloc(&t->d[i], BUF));
		fill(t, i);
	}
	t->n = n;
	CHK(cuCtxSynchronize());
}

/* Every buffer holds exactly what it should: none changed, faulted or not. */
static void expect_all(struct bufs *t, const char *when)
{
	for (int i = 0; i < t->n; i++) {
		char what[96];
		if (t->d[i] == 0)
			continue;
		snprintf(what, sizeof(what), "%s: buffer %d", when, i);
		itest_expect_bytes(t->d[i], t->ref[i], BUF, what);
	}
}

static void finish(struct bufs *t)
{
	for (int i = 0; i < t->n; i++) {
		if (t->d[i] != 0)
			CHK(cuMemFree(t->d[i]));
		free(t->ref[i]);
	}
	CHK(cuCtxSynchronize());
	unlink(t->log);
}

/* How many lines of the log hold `text`. */
static int log_count(const struct bufs *t, const char *text)
{
	return itest_count_in(t->log, text);
}

/* The app's read of buffer i into a host buffer preset to a sentinel: returns the result, and
 * checks that a failed read wrote nothing and a served one read the right bytes. */
static CUresult read_buf(struct bufs *t, int i)
{
	unsigned char *h = malloc(BUF);
	CUresult r;

	ck_assert_ptr_nonnull(h);
	memset(h, 0xa5, BUF);
	r = cuMemcpyDtoH(h, t->d[i], BUF);
	for (size_t k = 0; k < BUF; k++) {
		unsigned char want = r == CUDA_SUCCESS ? t->ref[i][k] : 0xa5;
		if (h[k] != want) {
			unsigned got = h[k];
			free(h);
			ck_abort_msg("read of buffer %d (%s): byte %zu is %#x, expected %#x", i,
				     simtest_err_name(r), k, got, (unsigned)want);
		}
	}
	free(h);
	return r;
}

/* The app's kernel writing all of buffer i with a float pattern; on success the reference follows. */
static CUresult kernel_fill(struct bufs *t, int i, float v)
{
	CUresult r = simtest_fill(t->d[i], v, BUF / sizeof(float), NULL);

	if (r == CUDA_SUCCESS) {
		CHK(cuCtxSynchronize());
		for (size_t k = 0; k < BUF / sizeof(float); k++)
			memcpy(t->ref[i] + k * sizeof(float), &v, sizeof(float));
	}
	return r;
}

static const char *const base_env[] = {ENV_BUDGET, ENV_NET_OFF, NULL};

/* ---- cuMemCreate fails during a page-in ---- */

START_TEST(test_memcreate_fails_in_page_in)
{
	struct bufs t;
	struct memvirt_counters c0, c1;

	start(&t, base_env);
	make(&t, NB);
	c0 = itest_counters();
	ck_assert_uint_eq(c0.host_bytes, 4 * BUF); /* buffers 0..3 are on the host */

	/* The next device cuMemCreate is buffer 0's page-in: the read fails with the driver's error,
	 * writes nothing, and no page-in is counted. */
	arm(SIMCUDA_FAULT_DEVICE_CREATE, 0, 1);
	CHK_ERR(read_buf(&t, 0), CUDA_ERROR_OUT_OF_MEMORY);
	c1 = itest_counters();
	ck_assert_uint_eq(c1.page_ins, c0.page_ins);
	ck_assert_uint_eq(c1.oom, c0.oom); /* the budget had room: it was the driver that failed */
	ck_assert_int_eq(log_count(&t, "failed (CUDA_ERROR_OUT_OF_MEMORY); the buffer stays on the host"), 1);
	/* The fault has passed: the same read is served now. */
	CHK(read_buf(&t, 0));
	ck_assert_uint_eq(itest_counters().page_ins, c0.page_ins + 1);

	/* Every device cuMemCreate fails: a kernel, a memset and a copy that name a paged-out buffer
	 * each fail the same way every time, and none of them touched it. */
	arm(SIMCUDA_FAULT_DEVICE_CREATE, 0, UINT64_MAX);
	c0 = itest_counters();
	for (int k = 0; k < 3; k++) {
		CHK_ERR(kernel_fill(&t, 1, 42.0f), CUDA_ERROR_OUT_OF_MEMORY);
		CHK_ERR(cuMemsetD8(t.d[2], 0xee, BUF), CUDA_ERROR_OUT_OF_MEMORY);
		CHK_ERR(cuMemcpyHtoD(t.d[3], t.ref[0], BUF), CUDA_ERROR_OUT_OF_MEMORY);
	}
	ck_assert_uint_eq(itest_counters().page_ins, c0.page_ins);
	arm(SIMCUDA_FAULT_DEVICE_CREATE, 0, 0);
	expect_all(&t, "after failed page-ins");
	ck_assert_uint_gt(itest_counters().page_ins, c0.page_ins);
	finish(&t);
}
END_TEST

/* ---- the device-to-host copy fails during a page-out ---- */

START_TEST(test_d2h_fails_in_page_out)
{
	struct bufs t;
	struct memvirt_counters c0, c1;

	start(&t, base_env);
	make(&t, NB);
	c0 = itest_counters();

	/* A kernel on paged-out buffer 0 needs room; the page-out of the least recently used resident
	 * buffer fails at its copy. That buffer stays resident, another goes instead, and the kernel
	 * runs: the job goes on. */
	arm(SIMCUDA_FAULT_D2H, 0, 1);
	CHK(kernel_fill(&t, 0, 3.25f));
	c1 = itest_counters();
	ck_assert_int_eq(log_count(&t, "(CUDA_ERROR_UNKNOWN); the buffer stays resident"), 1);
	ck_assert_uint_eq(c1.page_outs, c0.page_outs + 1);
	ck_assert_uint_eq(c1.page_ins, c0.page_ins + 1);
	ck_assert_uint_eq(c1.oom, c0.oom);
	expect_all(&t, "after one failed page-out");

	/* Every device-to-host copy fails: nothing can be paged out, so a kernel on any of the four
	 * paged-out buffers is refused for want of room and does not run, while the four resident ones
	 * are served. */
	c0 = itest_counters();
	arm(SIMCUDA_FAULT_D2H, 0, UINT64_MAX);
	{
		int refused = 0;
		for (int i = 0; i < NB; i++) {
			CUresult r = kernel_fill(&t, i, 11.0f + (float)i);
			ck_assert_msg(r == CUDA_SUCCESS || r == CUDA_ERROR_OUT_OF_MEMORY, "kernel on buffer %d: %s",
				      i, simtest_err_name(r));
			refused += r != CUDA_SUCCESS;
		}
		ck_assert_int_eq(refused, 4);
	}
	c1 = itest_counters();
	ck_assert_uint_eq(c1.page_outs, c0.page_outs);
	ck_assert_uint_gt(c1.oom, c0.oom);
	ck_assert_uint_eq(c1.host_bytes, 4 * BUF);
	arm(SIMCUDA_FAULT_D2H, 0, 0);
	expect_all(&t, "after failed page-outs");
	ck_assert_uint_gt(itest_counters().page_outs, c1.page_outs);
	finish(&t);
}
END_TEST

/* ---- the host-to-device copy fails during a page-in ---- */

START_TEST(test_h2d_fails_in_page_in)
{
	struct bufs t;
	struct memvirt_counters c0, c1;

	start(&t, base_env);
	make(&t, NB);
	c0 = itest_counters();

	/* The read of paged-out buffer 1 needs its page-in, whose copy fails: the read returns the
	 * copy's error and writes nothing; buffer 1 stays on the host. */
	arm(SIMCUDA_FAULT_H2D, 0, 1);
	CHK_ERR(read_buf(&t, 1), CUDA_ERROR_UNKNOWN);
	c1 = itest_counters();
	ck_assert_uint_eq(c1.page_ins, c0.page_ins);
	ck_assert_int_eq(log_count(&t, "failed (CUDA_ERROR_UNKNOWN); the buffer stays on the host"), 1);
	CHK(read_buf(&t, 1));
	ck_assert_uint_eq(itest_counters().page_ins, c0.page_ins + 1);

	/* Every host-to-device copy fails: a kernel that would overwrite a paged-out buffer is refused
	 * and leaves it as it was. */
	arm(SIMCUDA_FAULT_H2D, 0, UINT64_MAX);
	c0 = itest_counters();
	for (int k = 0; k < 3; k++)
		CHK_ERR(kernel_fill(&t, 0, 5.0f), CUDA_ERROR_UNKNOWN);
	ck_assert_uint_eq(itest_counters().page_ins, c0.page_ins);
	arm(SIMCUDA_FAULT_H2D, 0, 0);
	expect_all(&t, "after failed page-ins");
	finish(&t);
}
END_TEST

/* ---- the pinned host pool is exhausted ---- */

/* A host pool of two buffers beside a budget of four: six buffers fit, a seventh is refused. */
static const char *const pool_env[] = {ENV_BUDGET, ENV_NET_OFF, "MEMVIRT_HOST_LIMIT=128KiB", NULL};

START_TEST(test_host_pool_full)
{
	struct bufs t;
	struct memvirt_counters c0, c1;
	CUdeviceptr extra;

	start(&t, pool_env);
	make(&t, 6);
	c0 = itest_counters();
	ck_assert_uint_eq(c0.host_bytes, 2 * BUF);
	ck_assert_uint_eq(c0.oom, 0);

	/* No room on the device, none on the host: the allocation is refused. */
	CHK_ERR(cuMemAlloc(&extra, BUF), CUDA_ERROR_OUT_OF_MEMORY);
	c1 = itest_counters();
	ck_assert_uint_eq(c1.oom, c0.oom + 1);
	ck_assert_uint_eq(c1.page_outs, c0.page_outs);
	ck_assert_int_eq(log_count(&t, "host pool full"), 1);
	/* Bringing a paged-out buffer back needs a page-out first, and the pool has no slot for it:
	 * refused as well, not waited for. */
	CHK_ERR(read_buf(&t, 0), CUDA_ERROR_OUT_OF_MEMORY);
	/* Resident ones are served. */
	CHK(read_buf(&t, 5));
	CHK(kernel_fill(&t, 4, 1.5f));
	/* Once the app frees one, everything is reachable again. */
	CHK(cuMemFree(t.d[5]));
	t.d[5] = 0;
	expect_all(&t, "after the pool was full");
	ck_assert_uint_gt(itest_counters().page_ins, c1.page_ins);
	finish(&t);
}
END_TEST

/* A host pool of three buffers, and page-ins that take 300 ms to land. */
static const char *const pool_slow_env[] = {ENV_BUDGET, ENV_NET_OFF, "MEMVIRT_HOST_LIMIT=192KiB",
					    "SIMCUDA_DELAY_H2D_US=300000", NULL};

/* The pool is full only for as long as a page-in still holds its host slot: a page-out that needs
 * a slot then waits for the page-in to land, and is not refused. */
START_TEST(test_host_pool_full_until_page_in_lands)
{
	struct bufs t;
	struct memvirt_counters c0, c1;
	CUstream s;
	float v0 = 2.5f, v1 = 3.5f;

	start(&t, pool_slow_env);
	make(&t, 6);
	CHK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
	c0 = itest_counters();
	ck_assert_uint_eq(c0.host_bytes, 2 * BUF); /* buffers 0 and 1; one slot free */
	/* Buffer 0 comes back: buffer 2 takes the free slot, and buffer 0's slot stays taken until its
	 * copy lands. */
	CHK(simtest_fill(t.d[0], v0, BUF / sizeof(float), s));
	/* Buffer 1 comes back at once: its room needs a page-out while all three slots are taken. */
	CHK(simtest_fill(t.d[1], v1, BUF / sizeof(float), s));
	CHK(cuStreamSynchronize(s));
	for (size_t w = 0; w < BUF / sizeof(float); w++) {
		memcpy(t.ref[0] + w * sizeof(float), &v0, sizeof(float));
		memcpy(t.ref[1] + w * sizeof(float), &v1, sizeof(float));
	}
	c1 = itest_counters();
	ck_assert_uint_eq(c1.oom, 0);
	ck_assert_uint_eq(c1.page_ins, c0.page_ins + 2);
	ck_assert_uint_eq(c1.page_outs, c0.page_outs + 2);
	expect_all(&t, "after page-outs that waited for a host slot");
	CHK(cuStreamDestroy(s));
	finish(&t);
}
END_TEST

/* Pinned host memory cannot be had at all: nothing pages out, so what does not fit the budget is
 * refused, and once host memory comes back the same allocation is served. */
START_TEST(test_host_alloc_fails)
{
	struct bufs t;
	struct memvirt_counters c0;
	CUdeviceptr extra;

	start(&t, base_env);
	arm(SIMCUDA_FAULT_HOST_ALLOC, 0, UINT64_MAX);
	make(&t, 4);
	c0 = itest_counters();
	ck_assert_uint_eq(c0.page_outs, 0);
	CHK_ERR(cuMemAlloc(&extra, BUF), CUDA_ERROR_OUT_OF_MEMORY);
	ck_assert_uint_eq(itest_counters().oom, c0.oom + 1);
	ck_assert_uint_eq(itest_counters().page_outs, 0);
	ck_assert_int_eq(log_count(&t, "of pinned host memory: cannot page out more"), 1);
	expect_all(&t, "while host memory fails");
	arm(SIMCUDA_FAULT_HOST_ALLOC, 0, 0);
	CHK(cuMemAlloc(&extra, BUF));
	ck_assert_uint_eq(itest_counters().page_outs, 1);
	CHK(cuMemsetD8(extra, 0x3c, BUF));
	expect_all(&t, "after host memory came back");
	{
		unsigned char *h = malloc(BUF);
		ck_assert_ptr_nonnull(h);
		memset(h, 0x3c, BUF);
		itest_expect_bytes(extra, h, BUF, "the extra buffer");
		free(h);
	}
	CHK(cuMemFree(extra));
	finish(&t);
}
END_TEST

/* ---- the host pool's NUMA node ---- */

/* Hosts with the GPU nearest node 1 of two, with node 0 of none, and a driver that takes host NUMA
 * locations only: the pool's chunks go to the node the device reports (0 without NUMA), and the
 * safety net stays on. */
static const struct {
	const char *env[5];
	int node;
	const char *line;
} numa_cases[] = {
	{{ENV_BUDGET, "SIMCUDA_NUMA_NODES=2", "SIMCUDA_HOST_NUMA=1", NULL}, 1, "host pool on NUMA node 1"},
	{{ENV_BUDGET, "SIMCUDA_NUMA_NODES=2", "SIMCUDA_HOST_NUMA=1", "SIMCUDA_NO_HOST_TYPE_VMM=1", NULL}, 1,
	 "host pool on NUMA node 1"},
	{{ENV_BUDGET, "SIMCUDA_NUMA_NODES=0", NULL}, 0, "host pool on the host"},
};

START_TEST(test_host_pool_on_nearest_node)
{
	simcuda_host_numa_created_fn created;
	struct bufs t;

	start(&t, numa_cases[_i].env);
	created = (simcuda_host_numa_created_fn)simtest_sym(SIMCUDA_HOST_NUMA_CREATED);
	make(&t, NB);
	ck_assert_uint_ge(itest_counters().page_outs, NB - 4);
	ck_assert_uint_ge(created(numa_cases[_i].node), itest_counters().host_bytes);
	ck_assert_uint_gt(created(numa_cases[_i].node), 0);
	ck_assert_uint_eq(created(1 - numa_cases[_i].node), 0);
	ck_assert_int_eq(log_count(&t, "safety net on; "), 1);
	ck_assert_int_eq(log_count(&t, numa_cases[_i].line), 1);
	expect_all(&t, "paged out to the GPU's node");
	finish(&t);
}
END_TEST

/* ---- very slow copy engines ---- */

/* Every copy on either engine really takes 20 ms, and the modeled bus is a thousandth of PCIe. */
static const char *const slow_env[] = {
	ENV_BUDGET, ENV_NET_OFF, "SIMCUDA_DELAY_H2D_US=20000", "SIMCUDA_DELAY_D2H_US=20000",
	"SIMCUDA_H2D_GBPS=0.05", "SIMCUDA_D2H_GBPS=0.05", NULL};

START_TEST(test_slow_copy_engines)
{
	struct bufs t;
	struct memvirt_counters c0, c1;
	CUstream s;

	start(&t, slow_env);
	make(&t, NB);
	c0 = itest_counters();
	CHK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
	/* Kernels on a stream of their own, each on a buffer that may be paged out or on its way
	 * out, each followed at once by a kernel on another: page-outs are still copying when the
	 * next buffer is wanted, and a buffer may be wanted back while its page-out is in flight. */
	for (int k = 0; k < 24; k++) {
		int i = (int)(itest_rand(&t.rng) % NB), j = (i + 1 + (int)(itest_rand(&t.rng) % (NB - 1))) % NB;
		float v = 100.0f + (float)k;
		CHK(simtest_fill(t.d[i], v, BUF / sizeof(float), s));
		for (size_t w = 0; w < BUF / sizeof(float); w++)
			memcpy(t.ref[i] + w * sizeof(float), &v, sizeof(float));
		if (k % 3 == 0) {
			CHK(cuStreamSynchronize(s));
			CHK(read_buf(&t, j));
		}
	}
	CHK(cuStreamSynchronize(s));
	c1 = itest_counters();
	ck_assert_uint_ge(c1.page_outs - c0.page_outs, 10);
	ck_assert_uint_ge(c1.page_ins - c0.page_ins, 10);
	ck_assert_uint_eq(c1.oom, 0);
	/* The launches waited for page-ins on the modeled bus. */
	ck_assert_uint_gt(c1.stall_ns, 0);
	expect_all(&t, "with slow copy engines");
	CHK(cuStreamDestroy(s));
	finish(&t);
}
END_TEST

static Suite *faults_suite(void)
{
	Suite *s = suite_create("interpose_faults");
	TCase *tc;

	tc = simtest_tcase(s, "device", 60);
	tcase_add_test(tc, test_memcreate_fails_in_page_in);
	tcase_add_test(tc, test_d2h_fails_in_page_out);
	tcase_add_test(tc, test_h2d_fails_in_page_in);
	tc = simtest_tcase(s, "host", 60);
	tcase_add_test(tc, test_host_pool_full);
	tcase_add_test(tc, test_host_pool_full_until_page_in_lands);
	tcase_add_test(tc, test_host_alloc_fails);
	tcase_add_loop_test(tc, test_host_pool_on_nearest_node, 0, (int)(sizeof(numa_cases) / sizeof(numa_cases[0])));
	tc = simtest_tcase(s, "slow", 60);
	tcase_add_test(tc, test_slow_copy_engines);
	return s;
}

int main(int argc, char **argv)
{
	itest_main_begin(argc, argv);
	return simtest_run(faults_suite());
}
