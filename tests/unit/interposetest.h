/* Shared helpers of libmemvirt.so's suites on the simulated driver: re-running the program with the
 * library preloaded, helper children with and without it, memvirt's counters, and its log.
 *
 * Each suite calls itest_main_begin() first thing in main(). When libmemvirt.so is not loaded yet,
 * it re-executes the program with LD_PRELOAD naming the library ($MEMVIRT_LIB, else
 * $MV_TOP_BUILDDIR/interpose/.libs/libmemvirt.so, else the build tree around the program). Every
 * test then sets its environment and initialises the driver in its own forked child (CK_FORK), as
 * both the simulated driver and memvirt read their settings once.
 *
 * A program started as `prog --helper MODE` is a helper child: it skips the re-execution, so a
 * test can run the same program with or without the library and compare. */
#ifndef INTERPOSETEST_H
#define INTERPOSETEST_H

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "interpose/memvirt.h"
#include "tests/unit/simtest.h"

#define ITEST_KIB (1ull << 10)

/* Whether libmemvirt.so is loaded in this process. */
static SIMTEST_UNUSED int itest_loaded(void)
{
	return dlsym(RTLD_DEFAULT, MEMVIRT_COUNTERS) != NULL;
}

/* The library's path, or NULL when none of the places it could be holds it. */
static SIMTEST_UNUSED const char *itest_lib_path(void)
{
	static char path[PATH_MAX + 64];
	const char *v = getenv("MEMVIRT_LIB");

	if (v != NULL && *v != '\0')
		return access(v, R_OK) == 0 ? v : NULL;
	v = getenv("MV_TOP_BUILDDIR");
	if (v != NULL && *v != '\0') {
		snprintf(path, sizeof(path), "%s/interpose/.libs/libmemvirt.so", v);
		if (access(path, R_OK) == 0)
			return path;
	}
	/* The program lives in tests/unit of the build tree. */
	{
		char exe[PATH_MAX - 64];
		ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
		char *slash;
		if (n > 0) {
			exe[n] = '\0';
			slash = strrchr(exe, '/');
			if (slash != NULL) {
				*slash = '\0';
				snprintf(path, sizeof(path), "%s/../../interpose/.libs/libmemvirt.so", exe);
				if (access(path, R_OK) == 0)
					return path;
			}
		}
	}
	return NULL;
}

/* Re-executes the program with the library preloaded unless it is loaded already or this is a
 * helper child. Exits 99 (a hard error to the test harness) when the library cannot be found. */
static SIMTEST_UNUSED void itest_main_begin(int argc, char **argv)
{
	const char *lib, *old;
	char *preload;
	size_t len;

	if (argc >= 3 && strcmp(argv[1], "--helper") == 0)
		return;
	if (itest_loaded())
		return;
	if (getenv("MV_ITEST_REEXECUTED") != NULL) {
		fprintf(stderr, "%s: libmemvirt.so is still not loaded after re-executing with LD_PRELOAD=%s\n",
			argv[0], getenv("LD_PRELOAD") ? getenv("LD_PRELOAD") : "");
		exit(99);
	}
	lib = itest_lib_path();
	if (lib == NULL) {
		fprintf(stderr, "%s: cannot find libmemvirt.so; set MEMVIRT_LIB to its path\n", argv[0]);
		exit(99);
	}
	old = getenv("LD_PRELOAD");
	len = strlen(lib) + (old != NULL ? strlen(old) + 1 : 0) + 1;
	preload = malloc(len);
	if (preload == NULL)
		exit(99);
	snprintf(preload, len, "%s%s%s", lib, old != NULL && *old != '\0' ? ":" : "", old != NULL ? old : "");
	setenv("LD_PRELOAD", preload, 1);
	setenv("MV_ITEST_REEXECUTED", "1", 1);
	fflush(NULL);
	execv("/proc/self/exe", argv);
	fprintf(stderr, "%s: cannot re-execute: %s\n", argv[0], strerror(errno));
	exit(99);
}

/* The helper mode this process was started in, or NULL. */
static SIMTEST_UNUSED const char *itest_helper_mode(int argc, char **argv)
{
	return argc >= 3 && strcmp(argv[1], "--helper") == 0 ? argv[2] : NULL;
}

/* ---- memvirt's counters and log ---- */

static SIMTEST_UNUSED struct memvirt_counters itest_counters(void)
{
	struct memvirt_counters c;
	memvirt_counters_fn f = (memvirt_counters_fn)dlsym(RTLD_DEFAULT, MEMVIRT_COUNTERS);

	memset(&c, 0, sizeof(c));
	ck_assert_msg(f != NULL, "libmemvirt.so is not loaded: no %s", MEMVIRT_COUNTERS);
	f(&c);
	return c;
}

/* A fresh private file path under $TMPDIR (created empty); the caller unlinks it. */
static SIMTEST_UNUSED void itest_tmpfile(char *path, size_t len, const char *what)
{
	const char *dir = getenv("TMPDIR");
	int fd;

	snprintf(path, len, "%s/mv-%s.XXXXXX", dir != NULL && *dir != '\0' ? dir : "/tmp", what);
	fd = mkstemp(path);
	ck_assert_msg(fd >= 0, "mkstemp %s: %s", path, strerror(errno));
	close(fd);
}

/* The whole of a file as a NUL-terminated string (malloc'd; the caller frees), "" when absent. */
static SIMTEST_UNUSED char *itest_slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t n = 0, cap = 0;

	if (f != NULL) {
		for (;;) {
			size_t got;
			if (cap - n < 4096) {
				cap = cap ? cap * 2 : 8192;
				buf = realloc(buf, cap);
				if (buf == NULL)
					break;
			}
			got = fread(buf + n, 1, cap - n - 1, f);
			n += got;
			if (got == 0)
				break;
		}
		fclose(f);
	}
	if (buf == NULL) {
		buf = malloc(1);
		n = 0;
	}
	if (buf != NULL)
		buf[n] = '\0';
	return buf;
}

/* How many times text occurs in the file at path. */
static SIMTEST_UNUSED int itest_count_in(const char *path, const char *text)
{
	char *all = itest_slurp(path), *p = all;
	int n = 0;

	ck_assert_ptr_nonnull(all);
	while ((p = strstr(p, text)) != NULL) {
		n++;
		p += strlen(text);
	}
	free(all);
	return n;
}

/* ---- helper children ---- */

/* What a helper child did. */
struct itest_child {
	int status;    /* as waitpid reports it */
	int timed_out; /* it ran past the limit and was killed */
	char *out;     /* its stdout and stderr (malloc'd) */
	char *err;
};

static SIMTEST_UNUSED void itest_child_free(struct itest_child *c)
{
	free(c->out);
	free(c->err);
}

/* Runs this program as `--helper MODE` with the given "NAME=value" settings added to the
 * environment (a NULL-terminated array, or NULL), with the library preloaded or not, and waits for
 * it, killing it after limit_s seconds. */
static SIMTEST_UNUSED struct itest_child itest_run_helper(const char *mode, int preload, const char *const *env,
							  int limit_s)
{
	struct itest_child c;
	char outp[PATH_MAX], errp[PATH_MAX];
	pid_t pid;
	int waited_ms = 0;

	memset(&c, 0, sizeof(c));
	itest_tmpfile(outp, sizeof(outp), "out");
	itest_tmpfile(errp, sizeof(errp), "err");
	fflush(NULL);
	pid = fork();
	ck_assert_msg(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		int o = open(outp, O_WRONLY | O_TRUNC), e = open(errp, O_WRONLY | O_TRUNC);
		if (o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0)
			_exit(126);
		for (size_t i = 0; env != NULL && env[i] != NULL; i++) {
			char name[128];
			const char *eq = strchr(env[i], '=');
			if (eq == NULL || (size_t)(eq - env[i]) >= sizeof(name))
				_exit(126);
			memcpy(name, env[i], (size_t)(eq - env[i]));
			name[eq - env[i]] = '\0';
			setenv(name, eq + 1, 1);
		}
		if (!preload)
			unsetenv("LD_PRELOAD");
		execl("/proc/self/exe", "helper", "--helper", mode, (char *)NULL);
		_exit(127);
	}
	for (;;) {
		pid_t w = waitpid(pid, &c.status, WNOHANG);
		if (w == pid)
			break;
		ck_assert_msg(w == 0, "waitpid: %s", strerror(errno));
		if (waited_ms >= limit_s * 1000) {
			kill(pid, SIGKILL);
			waitpid(pid, &c.status, 0);
			c.timed_out = 1;
			break;
		}
		{
			struct timespec ts = {0, 5 * 1000 * 1000};
			nanosleep(&ts, NULL);
		}
		waited_ms += 5;
	}
	c.out = itest_slurp(outp);
	c.err = itest_slurp(errp);
	unlink(outp);
	unlink(errp);
	return c;
}

/* "exit N", "signal N" or "timed out": how a child ended, for messages. */
static SIMTEST_UNUSED const char *itest_how(const struct itest_child *c)
{
	static char buf[64];

	if (c->timed_out)
		snprintf(buf, sizeof(buf), "timed out");
	else if (WIFEXITED(c->status))
		snprintf(buf, sizeof(buf), "exit %d", WEXITSTATUS(c->status));
	else if (WIFSIGNALED(c->status))
		snprintf(buf, sizeof(buf), "signal %d", WTERMSIG(c->status));
	else
		snprintf(buf, sizeof(buf), "status %#x", c->status);
	return buf;
}

static SIMTEST_UNUSED int itest_exit_code(const struct itest_child *c)
{
	return !c->timed_out && WIFEXITED(c->status) ? WEXITSTATUS(c->status) : -1;
}

/* In a helper child, where Check is not running: a failed driver call ends the child with exit
 * code 3 and a line on stderr. */
#define HCHK(call)                                                                                       \
	do {                                                                                             \
		CUresult hchk_r_ = (call);                                                               \
		if (hchk_r_ != CUDA_SUCCESS) {                                                           \
			fprintf(stderr, "%s:%d: %s failed: %s (%d)\n", __FILE__, __LINE__, #call,       \
				simtest_err_name(hchk_r_), (int)hchk_r_);                                \
			exit(3);                                                                         \
		}                                                                                        \
	} while (0)

/* In a helper child: cuInit, the primary context and the built-in module, without Check. */
static SIMTEST_UNUSED void itest_helper_init(void)
{
	HCHK(cuInit(0));
	HCHK(cuDeviceGet(&simtest_dev, 0));
	HCHK(cuDevicePrimaryCtxRetain(&simtest_ctx, simtest_dev));
	HCHK(cuCtxSetCurrent(simtest_ctx));
	HCHK(cuModuleLoadData(&simtest_mod, "simcuda"));
}

/* ---- buffers ---- */

/* A deterministic pseudo-random generator (splitmix64), so that a seed replays. */
static SIMTEST_UNUSED uint64_t itest_rand(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static SIMTEST_UNUSED void itest_random_bytes(uint64_t *state, void *p, size_t n)
{
	unsigned char *b = p;

	for (size_t i = 0; i < n; i++)
		b[i] = (unsigned char)(itest_rand(state) >> 56);
}

/* Copies a device range to the host and fails at the first byte that differs from want. */
static SIMTEST_UNUSED void itest_expect_bytes(CUdeviceptr p, const void *want, size_t n, const char *what)
{
	unsigned char *h = malloc(n ? n : 1);
	const unsigned char *w = want;

	ck_assert_ptr_nonnull(h);
	CHK(cuMemcpyDtoH(h, p, n));
	for (size_t i = 0; i < n; i++)
		if (h[i] != w[i]) {
			unsigned got = h[i], exp = w[i];
			free(h);
			ck_abort_msg("%s: byte %zu of %zu is %#x, expected %#x", what, i, n, got, exp);
		}
	free(h);
}

#endif
