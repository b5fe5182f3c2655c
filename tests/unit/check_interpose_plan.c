/* libmemvirt.so's plan executor on the simulated driver: a synthetic training loop of layers whose
 * activations are made in a forward pass and read back in reverse, under a budget that cannot hold
 * them all. With a planning policy the library learns the loop and pages by plan; the data must
 * stay exact whatever the plan does: planned page-outs only after the last use, planned page-ins
 * complete before the launch that reads them, and a loop that changes shape falls back to reactive
 * paging without corrupting anything. A plan from memvirtd, played here by a thread of the test, is
 * taken when it is for the iteration the library learns, even when it comes before the library has
 * learned it. */
#include "config.h"

#include <check.h>
#include <dlfcn.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include "daemon/internal.h"
#include "tests/unit/interposetest.h"

#define L 8                             /* layers */
#define BUF (16 * ITEST_KIB)
#define NF (BUF / sizeof(float))
/* How long a loop runs iterations while it waits for the planner to plan: the planner thread may
 * be slow on a loaded machine under a sanitizer, so the bound is time, and generous. */
#define PLAN_WAIT_S 60
#define BUDGET (160 * ITEST_KIB)

/* The loop's persistent state: weights and an accumulator. */
static CUdeviceptr w[L], acc;

static void setup(const char *policy)
{
	simtest_start("SIMCUDA_MEM=64MiB", "SIMCUDA_GRANULARITY=4KiB", "SIMCUDA_NO_HOST_VMM=1",
		      "MEMVIRT_SLAB_THRESHOLD=4KiB", "MEMVIRT_PAGE_MIN=4KiB", "MEMVIRT_DAEMON=off",
		      /* 8 weights, the accumulator and 8 activations are 272 KiB: half of them fit. */
		      "MEMVIRT_BUDGET=160KiB", policy);
	for (int i = 0; i < L; i++) {
		CHK(cuMemAlloc(&w[i], BUF));
		CHK(simtest_fill(w[i], 0.5f * (float)i, NF, NULL));
	}
	CHK(cuMemAlloc(&acc, BUF));
	CHK(cuCtxSynchronize());
}

/* One iteration over `layers` layers: a[i] = (it + i + 1) + w[i] forward, then acc += a[i] in
 * reverse. Checks acc. */
static void iteration(int it, int layers)
{
	CUdeviceptr a[L];
	float want = 0;

	CHK(simtest_fill(acc, 0.0f, NF, NULL));
	for (int i = 0; i < layers; i++) {
		CHK(cuMemAlloc(&a[i], BUF));
		CHK(simtest_fill(a[i], (float)(it + i + 1), NF, NULL));
		CHK(simtest_axpy(a[i], w[i], 1.0f, NF, NULL));
	}
	for (int i = layers; i-- > 0;) {
		CHK(simtest_axpy(acc, a[i], 1.0f, NF, NULL));
		CHK(cuMemFree(a[i]));
		want += (float)(it + i + 1) + 0.5f * (float)i;
	}
	CHK(cuCtxSynchronize());
	simtest_expect_floats(acc, NF, want);
}

/* Whether a loop that started at start may still wait for the planner. */
static int plan_wait(time_t start)
{
	return time(NULL) - start < PLAN_WAIT_S;
}

/* Lets the planner thread catch up with the loop between iterations (the loop's pace, not a
 * condition of the test). */
static void pause_briefly(void)
{
	struct timespec ts = {0, 5 * 1000 * 1000};
	nanosleep(&ts, NULL);
}

START_TEST(test_planned_paging_keeps_data)
{
	static const char *const policies[] = {"MEMVIRT_POLICY=vdnn-all", "MEMVIRT_POLICY=mmcnn"};
	struct memvirt_counters c;
	int it = 0;

	setup(policies[_i]);
	/* Until the plan has moved something and then for a few iterations more. */
	for (time_t t0 = time(NULL); plan_wait(t0) && itest_counters().planned_outs == 0; it++) {
		iteration(it, L);
		pause_briefly();
	}
	for (int k = 0; k < 5; k++, it++)
		iteration(it, L);
	c = itest_counters();
	ck_assert_msg(c.planned_outs > 0, "%s: no planned page-out in %d iterations", policies[_i], it);
	ck_assert_msg(c.page_ins > 0, "nothing was paged back in");
	ck_assert_uint_le(c.late_ins, c.planned_ins);
	ck_assert_uint_eq(c.oom, 0);
	for (int i = 0; i < L; i++)
		simtest_expect_floats(w[i], NF, 0.5f * (float)i);
}
END_TEST

START_TEST(test_divergent_loop_falls_back)
{
	struct memvirt_counters c;
	uint64_t outs;
	int it = 0;

	setup("MEMVIRT_POLICY=mmcnn");
	for (time_t t0 = time(NULL); plan_wait(t0) && itest_counters().planned_outs == 0; it++) {
		iteration(it, L);
		pause_briefly();
	}
	outs = itest_counters().planned_outs;
	ck_assert_msg(outs > 0, "no plan after %d iterations", it);
	/* The loop changes: fewer layers, then back. Every result stays exact. */
	for (int k = 0; k < 6; k++, it++)
		iteration(it, L - 3);
	c = itest_counters();
	ck_assert_msg(c.divergences >= 1, "the changed loop was not noticed");
	for (int k = 0; k < 6; k++, it++) {
		iteration(it, L);
		pause_briefly();
	}
	for (int i = 0; i < L; i++)
		simtest_expect_floats(w[i], NF, 0.5f * (float)i);
	ck_assert_uint_eq(itest_counters().oom, 0);
}
END_TEST

START_TEST(test_lru_plans_nothing)
{
	struct memvirt_counters c;

	setup("MEMVIRT_POLICY=lru");
	for (int it = 0; it < 10; it++)
		iteration(it, L);
	c = itest_counters();
	ck_assert_msg(c.page_outs > 0, "the budget did not make it page");
	ck_assert_uint_eq(c.planned_outs, 0);
	ck_assert_uint_eq(c.planned_ins, 0);
	ck_assert_uint_eq(c.divergences, 0);
}
END_TEST

/* ---- memvirtd's plans ----
 *
 * The job runs in a helper child, the library linked to a memvirtd that a thread of the test plays:
 * it welcomes the session, may send a PLAN at once, and may learn the job's iteration from its
 * events with memvirtd's own learner (daemon/learn.c, daemon/plan.c). A first run learns the plan
 * memvirtd would send; a second run of the same job gets it before its first iteration. */

/* The settings of both runs; the test adds the socket, the log file and the helper's own. */
#define JOB_ENV "SIMCUDA_MEM=64MiB", "SIMCUDA_GRANULARITY=4KiB", "SIMCUDA_NO_HOST_VMM=1", \
	"MEMVIRT_SLAB_THRESHOLD=4KiB", "MEMVIRT_PAGE_MIN=4KiB", "MEMVIRT_BUDGET=160KiB", \
	"MEMVIRT_POLICY=mmcnn", "MEMVIRT_DAEMON=on", "MEMVIRT_LOG=debug"
#define LEARN_ITERS 10
#define WAIT_MS 20000

/* The daemon the test plays: one session at a time on its own socket. */
struct fakemvd {
	char dir[64], sock[80], ready[80], log[80];
	const uint8_t *plan;     /* sent right after the WELCOME when not NULL (borrowed) */
	size_t plan_len;
	struct mvd_learn *learn; /* fed the session's events when not NULL */
	int lfd;
	_Atomic int stop;        /* set once the job has ended: the thread ends with its session */
	int bad;                 /* the library sent something memvirtd would refuse */
	pthread_t thread;
};

static void fakemvd_send(int fd, uint16_t type, const uint8_t *payload, size_t len)
{
	uint8_t head[MV_FRAME_HEADER];

	mv_frame_header(head, type, (uint32_t)len);
	if (send(fd, head, sizeof(head), MSG_NOSIGNAL) != (ssize_t)sizeof(head) ||
	    (len > 0 && send(fd, payload, len, MSG_NOSIGNAL) != (ssize_t)len))
		fprintf(stderr, "fakemvd: send: %s\n", strerror(errno));
}

/* Acts on one frame from the library. */
static void fakemvd_frame(struct fakemvd *d, int fd, const struct mv_frame *f)
{
	if (f->type == MV_MSG_HELLO) {
		struct mv_msg_welcome welcome = {1, BUDGET, MV_HOST_GRANT_NONE};
		uint8_t p[MV_MSG_WELCOME_SIZE];

		fakemvd_send(fd, MV_MSG_WELCOME, p, mv_welcome_encode(&welcome, p));
		if (d->plan != NULL)
			fakemvd_send(fd, MV_MSG_PLAN, d->plan, d->plan_len);
	} else if (f->type == MV_MSG_EVENTS && d->learn != NULL) {
		struct mv_msg_events head;
		struct mv_event ev;

		if (mv_events_decode(f->payload, f->length, &head) < 0) {
			d->bad = 1;
			return;
		}
		mvd_learn_gap(d->learn, head.dropped);
		for (uint32_t i = 0; i < head.count; i++) {
			mv_event_decode(f->payload + MV_MSG_EVENTS_HEAD + (size_t)i * MV_EVENT_SIZE, &ev);
			mvd_learn_event(d->learn, &ev);
		}
	} else if (f->type == MV_MSG_COUNTERS) {
		/* The library sends counters from its session's loop, which it enters when it starts
		 * sending events: from here on memvirtd sees what the job does. */
		close(open(d->ready, O_WRONLY | O_CREAT, 0600));
	}
}

static void *fakemvd_main(void *arg)
{
	struct fakemvd *d = arg;
	size_t cap = MV_FRAME_HEADER + MV_FRAME_MAX, have = 0;
	uint8_t *buf = malloc(cap);
	int fd = -1;

	while (buf != NULL) {
		struct pollfd pfd = {.fd = fd >= 0 ? fd : d->lfd, .events = POLLIN};
		size_t at = 0;
		ssize_t n;
		if (fd < 0 && atomic_load(&d->stop))
			break;
		if (poll(&pfd, 1, 50) <= 0)
			continue;
		if (fd < 0) {
			fd = accept(d->lfd, NULL, NULL);
			have = 0;
			continue;
		}
		n = recv(fd, buf + have, cap - have, 0);
		if (n <= 0) {
			close(fd);
			fd = -1;
			continue;
		}
		have += (size_t)n;
		for (;;) {
			struct mv_frame f;
			ssize_t size = mv_frame_decode(buf + at, have - at, &f);
			if (size == MV_FRAME_NEED_MORE)
				break;
			if (size < 0) {
				d->bad = 1;
				at = have;
				break;
			}
			fakemvd_frame(d, fd, &f);
			at += (size_t)size;
		}
		memmove(buf, buf + at, have - at);
		have -= at;
	}
	if (fd >= 0)
		close(fd);
	free(buf);
	return NULL;
}

static void fakemvd_start(struct fakemvd *d, const uint8_t *plan, size_t plan_len, int learn)
{
	const char *tmp = getenv("TMPDIR");
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	memset(d, 0, sizeof(*d));
	/* A socket's path is short: TMPDIR only when it leaves room. */
	snprintf(d->dir, sizeof(d->dir), "%s/mv-plan.XXXXXX",
		 tmp != NULL && *tmp != '\0' && strlen(tmp) < 32 ? tmp : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(d->dir));
	snprintf(d->sock, sizeof(d->sock), "%s/sock", d->dir);
	snprintf(d->ready, sizeof(d->ready), "%s/ready", d->dir);
	snprintf(d->log, sizeof(d->log), "%s/log", d->dir);
	d->plan = plan;
	d->plan_len = plan_len;
	if (learn) {
		d->learn = mvd_learn_new(1, 64ull << 20);
		ck_assert_ptr_nonnull(d->learn);
	}
	memcpy(sa.sun_path, d->sock, strlen(d->sock) + 1);
	d->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(d->lfd, 0);
	ck_assert_int_eq(bind(d->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(d->lfd, 4), 0);
	ck_assert_int_eq(pthread_create(&d->thread, NULL, fakemvd_main, d), 0);
}

/* The library's log is too long for a failure message: the test's own log gets it. */
static void print_log(const char *log)
{
	fprintf(stderr, "--- the library's log\n%s--- end of the library's log\n", log);
}

/* Runs the job ("job" below) in a helper child linked to d, with until ("MV_ITEST_UNTIL=text") or
 * NULL, and returns the library's log; the caller frees it. */
static char *fakemvd_job(struct fakemvd *d, const char *until)
{
	char sock[128], log[128], ready[128];
	const char *env[] = {JOB_ENV, sock, log, ready, until, NULL};
	struct itest_child c;
	char *text;

	snprintf(sock, sizeof(sock), "MEMVIRT_SOCKET=%s", d->sock);
	snprintf(log, sizeof(log), "MEMVIRT_LOG_FILE=%s", d->log);
	snprintf(ready, sizeof(ready), "MV_ITEST_READY=%s", d->ready);
	c = itest_run_helper("job", 1, env, 90);
	atomic_store(&d->stop, 1);
	pthread_join(d->thread, NULL);
	text = itest_slurp(d->log);
	ck_assert_ptr_nonnull(text);
	if (itest_exit_code(&c) != 0 || d->bad)
		print_log(text);
	ck_assert_msg(itest_exit_code(&c) == 0, "the job (%s) ended with %s: %s", until ? until : "learning",
		      itest_how(&c), c.err);
	ck_assert_msg(!d->bad, "the library sent memvirtd a frame it would refuse");
	itest_child_free(&c);
	return text;
}

static void fakemvd_end(struct fakemvd *d)
{
	close(d->lfd);
	if (d->learn != NULL)
		mvd_learn_free(d->learn);
	unlink(d->sock);
	unlink(d->ready);
	unlink(d->log);
	rmdir(d->dir);
}

/* The first run: the plan memvirtd sends for the job's iteration (malloc'd; the caller frees it). */
static uint8_t *learn_plan(size_t *len, struct mv_msg_plan *head)
{
	struct fakemvd d;
	struct mv_policy_params p;
	uint8_t *payload = NULL;

	fakemvd_start(&d, NULL, 0, 1);
	free(fakemvd_job(&d, NULL));
	mv_policy_defaults(&p);
	p.budget = BUDGET;
	p.min_size = 4 * ITEST_KIB;
	ck_assert_msg(mvd_learn_plan(d.learn, "mmcnn", &p, &payload, len) == 1,
		      "memvirtd's learner made no plan of the job's %d iterations", LEARN_ITERS);
	ck_assert_int_eq(mv_plan_decode(payload, *len, head), 0);
	ck_assert_uint_gt(head->nops, 0);
	fakemvd_end(&d);
	return payload;
}

START_TEST(test_daemon_plan_before_iteration)
{
	struct fakemvd d;
	struct mv_msg_plan head;
	size_t len;
	uint8_t *plan = learn_plan(&len, &head);
	char *log, want[64];
	const char *at;
	unsigned bound = 0, total = 0;

	/* The second run gets the plan before its first iteration, and learns the iteration after. */
	fakemvd_start(&d, plan, len, 0);
	log = fakemvd_job(&d, "MV_ITEST_UNTIL= installed: ");
	snprintf(want, sizeof(want), "memvirtd's plan %llu installed: ", (unsigned long long)head.plan_id);
	at = strstr(log, want);
	if (at == NULL)
		print_log(log);
	ck_assert_msg(at != NULL, "the library never installed memvirtd's plan");
	ck_assert_int_eq(sscanf(at + strlen(want), "%u of %u", &bound, &total), 2);
	ck_assert_uint_eq(total, head.nops);
	ck_assert_msg(bound == total, "only %u of memvirtd's %u planned moves were bound", bound, total);
	free(log);
	free(plan);
	fakemvd_end(&d);
}
END_TEST

START_TEST(test_daemon_plan_other_iteration_refused)
{
	struct fakemvd d;
	struct mv_msg_plan head;
	struct mv_plan_op_wire op = {0, 0, MV_PLAN_OUT, 0, 0, 0, BUF};
	uint8_t plan[MV_MSG_PLAN_HEAD + MV_PLAN_OP_SIZE];
	size_t len;
	char *log;

	/* A plan for an iteration of the job's length that is not the job's. */
	free(learn_plan(&len, &head));
	head.fingerprint ^= 1;
	head.nops = 1;
	len = mv_plan_encode(&head, &op, plan);
	fakemvd_start(&d, plan, len, 0);
	log = fakemvd_job(&d, "MV_ITEST_UNTIL=does not fit the iteration learned here");
	if (strstr(log, " installed: ") != NULL)
		print_log(log);
	ck_assert_msg(strstr(log, " installed: ") == NULL, "the library installed a plan for another iteration");
	free(log);
	fakemvd_end(&d);
}
END_TEST

/* ---- the helper child ---- */

/* Whether the file at path holds text. */
static int file_has(const char *path, const char *text)
{
	char *s = itest_slurp(path);
	int found = s != NULL && strstr(s, text) != NULL;

	free(s);
	return found;
}

/* Waits up to WAIT_MS for the file at path to exist, or to hold text when text is not NULL. */
static int wait_file(const char *path, const char *text)
{
	for (int ms = 0; ms < WAIT_MS; ms += 5) {
		if (text != NULL ? file_has(path, text) : access(path, F_OK) == 0)
			return 1;
		pause_briefly();
	}
	return 0;
}

/* The kernels, looked up without Check. */
static CUfunction job_fill_fn, job_axpy_fn;

static void job_fill(CUdeviceptr p, float v)
{
	uint64_t n = NF;
	void *args[] = {&p, &v, &n};

	HCHK(cuLaunchKernel(job_fill_fn, 1, 1, 1, 1, 1, 1, 0, NULL, args, NULL));
}

static void job_axpy(CUdeviceptr y, CUdeviceptr x)
{
	float a = 1.0f;
	uint64_t n = NF;
	void *args[] = {&y, &x, &a, &n};

	HCHK(cuLaunchKernel(job_axpy_fn, 1, 1, 1, 1, 1, 1, 0, NULL, args, NULL));
}

/* iteration() without Check: exit 4 when acc is wrong. */
static void job_iteration(int it)
{
	static float h[NF];
	CUdeviceptr a[L];
	float want = 0;

	job_fill(acc, 0.0f);
	for (int i = 0; i < L; i++) {
		HCHK(cuMemAlloc(&a[i], BUF));
		job_fill(a[i], (float)(it + i + 1));
		job_axpy(a[i], w[i]);
	}
	for (int i = L; i-- > 0;) {
		job_axpy(acc, a[i]);
		HCHK(cuMemFree(a[i]));
		want += (float)(it + i + 1) + 0.5f * (float)i;
	}
	HCHK(cuCtxSynchronize());
	HCHK(cuMemcpyDtoH(h, acc, sizeof(h)));
	for (size_t k = 0; k < NF; k++)
		if (h[k] != want) {
			fprintf(stderr, "iteration %d: acc[%zu] is %g, expected %g\n", it, k, h[k], want);
			exit(4);
		}
}

/* "job": the loop of the tests above, linked to memvirtd. Once the session is up (MV_ITEST_READY
 * exists), LEARN_ITERS iterations. With MV_ITEST_UNTIL, the runs memvirtd sends a plan to: once
 * that plan has come, as many iterations as it takes the library to log that text, and a few
 * more. Exit 5 when what it waits for never comes. */
static int helper_job(void)
{
	const char *log = getenv("MEMVIRT_LOG_FILE"), *until = getenv("MV_ITEST_UNTIL");
	CUdeviceptr small;
	int it = 0;

	itest_helper_init();
	HCHK(cuModuleGetFunction(&job_fill_fn, simtest_mod, "mv_fill"));
	HCHK(cuModuleGetFunction(&job_axpy_fn, simtest_mod, "mv_axpy"));
	/* The first allocation starts the link; memvirtd is to see the loop's buffers made. */
	HCHK(cuMemAlloc(&small, 256));
	if (!wait_file(getenv("MV_ITEST_READY"), NULL))
		return 5;
	if (until != NULL && !wait_file(log, "plan: memvirtd's plan"))
		return 5;
	for (int i = 0; i < L; i++) {
		HCHK(cuMemAlloc(&w[i], BUF));
		job_fill(w[i], 0.5f * (float)i);
	}
	HCHK(cuMemAlloc(&acc, BUF));
	HCHK(cuCtxSynchronize());
	if (until == NULL) {
		for (; it < LEARN_ITERS; it++)
			job_iteration(it);
		return 0;
	}
	for (time_t t0 = time(NULL); !file_has(log, until); it++) {
		if (!plan_wait(t0))
			return 5;
		job_iteration(it);
		pause_briefly();
	}
	for (int k = 0; k < 3; k++)
		job_iteration(it++);
	return 0;
}

/* ---- victims by next use ----
 *
 * A loop that fits the budget: t = 1 + w[0] + ... + w[NW - 1] in a buffer of its own, then
 * acc = t; and at the loop's start one more allocation that makes one buffer go. The least recently
 * used buffer, w[0], is the one the second launch needs; the plan knows that acc is needed last. */

#define NW 8
#define VICTIM_ENV "SIMCUDA_MEM=64MiB", "SIMCUDA_GRANULARITY=4KiB", "SIMCUDA_NO_HOST_VMM=1", \
	"MEMVIRT_SLAB_THRESHOLD=4KiB", "MEMVIRT_PAGE_MIN=4KiB", "MEMVIRT_DAEMON=off", "MEMVIRT_LOG=debug", \
	/* The loop needs 160 KiB at most, within mmcnn's headroom; 144 KiB stay between steps, and \
	 * EXTRA more do not fit until one of them goes. */ \
	"MEMVIRT_BUDGET=168KiB"
#define EXTRA (2 * BUF)

static void weights_step(const CUdeviceptr *wv)
{
	CUdeviceptr t;

	CHK(cuMemAlloc(&t, BUF));
	CHK(simtest_fill(t, 1.0f, NF, NULL));
	for (int i = 0; i < NW; i++)
		CHK(simtest_axpy(t, wv[i], 1.0f, NF, NULL));
	CHK(simtest_fill(acc, 0.0f, NF, NULL));
	CHK(simtest_axpy(acc, t, 1.0f, NF, NULL));
	CHK(cuMemFree(t));
	CHK(cuCtxSynchronize());
}

/* Runs the loop under policy until it is followed (a planning policy) or for ten steps (lru), makes
 * one buffer go, and checks that w[want] (acc for NW) went, and that every byte comes back. */
static void victim_case(const char *policy, int want)
{
	char log[256], env[300], line[96], *text;
	CUdeviceptr wv[NW], extra, victim;
	int planning = strcmp(policy, "MEMVIRT_POLICY=lru") != 0, steps = 0;

	itest_tmpfile(log, sizeof(log), "victim");
	snprintf(env, sizeof(env), "MEMVIRT_LOG_FILE=%s", log);
	simtest_start(VICTIM_ENV, policy, env);
	for (int i = 0; i < NW; i++) {
		CHK(cuMemAlloc(&wv[i], BUF));
		CHK(simtest_fill(wv[i], (float)(i + 1), NF, NULL));
	}
	CHK(cuMemAlloc(&acc, BUF));
	for (time_t t0 = time(NULL); plan_wait(t0); steps++) {
		weights_step(wv);
		if (planning ? file_has(log, "plan: following the iteration") : steps >= 10)
			break;
		pause_briefly();
	}
	ck_assert_msg(!planning || file_has(log, "plan: following the iteration"),
		      "%s: the loop was not followed after %d steps", policy, steps);
	ck_assert_uint_eq(itest_counters().page_outs, 0);
	ck_assert_uint_eq(itest_counters().planned_outs, 0);
	/* The cursor is at the loop's start: t's fill, then w[0]. */
	CHK(cuMemAlloc(&extra, EXTRA));
	CHK(simtest_fill(extra, 100.0f, EXTRA / sizeof(float), NULL));
	ck_assert_uint_eq(itest_counters().page_outs, 1);
	text = itest_slurp(log);
	victim = want < NW ? wv[want] : acc;
	snprintf(line, sizeof(line), "page-out of %#llx (%llu bytes) issued", (unsigned long long)victim,
		 (unsigned long long)BUF);
	if (strstr(text, line) == NULL)
		print_log(text);
	ck_assert_msg(strstr(text, line) != NULL, "%s: buffer %d (w[0 .. NW), then acc) was not the victim", policy,
		      want);
	snprintf(line, sizeof(line), "victim %#llx: by the plan's next use", (unsigned long long)victim);
	ck_assert_msg((strstr(text, line) != NULL) == planning, "%s: %s the plan's next use", policy,
		      planning ? "not by" : "by");
	free(text);
	/* Everything comes back exact, the victim included. */
	weights_step(wv);
	simtest_expect_floats(acc, NF, 1.0f + NW * (NW + 1) / 2.0f);
	for (int i = 0; i < NW; i++)
		simtest_expect_floats(wv[i], NF, (float)(i + 1));
	simtest_expect_floats(extra, EXTRA / sizeof(float), 100.0f);
	ck_assert_uint_eq(itest_counters().oom, 0);
	unlink(log);
}

START_TEST(test_victim_by_next_use)
{
	victim_case("MEMVIRT_POLICY=mmcnn", NW);
}
END_TEST

START_TEST(test_victim_lru_without_plan)
{
	victim_case("MEMVIRT_POLICY=lru", 0);
}
END_TEST

static Suite *plan_suite(void)
{
	Suite *s = suite_create("interpose_plan");
	TCase *tc = simtest_tcase(s, "plan", 120);

	tcase_add_loop_test(tc, test_planned_paging_keeps_data, 0, 2);
	tcase_add_test(tc, test_divergent_loop_falls_back);
	tcase_add_test(tc, test_lru_plans_nothing);
	tc = simtest_tcase(s, "victim", 120);
	tcase_add_test(tc, test_victim_by_next_use);
	tcase_add_test(tc, test_victim_lru_without_plan);
	tc = simtest_tcase(s, "daemon", 120);
	tcase_add_test(tc, test_daemon_plan_before_iteration);
	tcase_add_test(tc, test_daemon_plan_other_iteration_refused);
	return s;
}

int main(int argc, char **argv)
{
	const char *mode;

	itest_main_begin(argc, argv);
	mode = itest_helper_mode(argc, argv);
	if (mode != NULL)
		return strcmp(mode, "job") == 0 ? helper_job() : 2;
	return simtest_run(plan_suite());
}
