/* memvirt run: starts a command with libmemvirt.so preloaded and talking to the daemon that
 * memvirt(1)'s DISCOVERY names (started when it is this user's own and none answers), and ends with
 * the command's own exit status. */
#include "config.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/internal.h"
#include "daemon/conf.h"
#include "protocol/paths.h"
#include "policies/trace.h"
#include "protocol/units.h"

/* How long a daemon has to answer: one started for the job, or one found, asked for its status. A
 * daemon that is not there refuses the connection at once, and one started here that exits is
 * seen at once too, so the wait is only ever spent on a live daemon that is slow to answer, as on a
 * loaded node: it is generous, rather than a reason to start a second daemon. */
#define RUN_DAEMON_WAIT_MS 30000
/* How often run starts this user's own daemon before it gives up on it: a start loses only to a
 * daemon that another run starts at the same moment, or to one that is stopping as it idles. */
#define RUN_SHARED_TRIES 5
/* --idle-exit for the daemon run starts for this user, unless $MEMVIRT_IDLE_EXIT says otherwise. */
#define RUN_IDLE_EXIT "60"

/* What the command line asked for. Every string is borrowed from argv. */
struct run_opts {
	const char *config;
	struct cli_plan plan;  /* --policy, --lookahead, --page-min */
	const char *budget;
	const char *device;
	const char *socket;
	int simulate;
	int budget_per_process; /* --budget-per-process: no group, each process its own budget */
	char record[PATH_MAX]; /* --record's file made absolute; empty when not asked */
	char record_one[PATH_MAX]; /* the file, when its name has no %p or %r: one for the job */
	const char *record_max; /* --record-max */
	char **cmd; /* the command and its arguments, NULL-terminated */
};

/* A daemon this run started and must stop: its pid and the private directory of its socket. */
struct run_daemon {
	pid_t pid;        /* 0 when the job uses a daemon that was already there */
	char dir[PATH_MAX];
	char socket[PATH_MAX + 32];
	/* A control session held open on a shared daemon while the job runs, so that the daemon
	 * does not stop as idle before the job's library has linked (fd -1: none). */
	struct cli_client hold;
};

/* The signals a shell or a batch system sends to stop or poke a job: they go to the command. */
static const int run_forwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
#define RUN_NFORWARDED (sizeof(run_forwarded) / sizeof(run_forwarded[0]))

static void run_usage(FILE *f)
{
	fprintf(f,
		"usage: memvirt run [OPTIONS] [--] COMMAND [ARGS...]\n"
		"\n"
		"Runs COMMAND with libmemvirt.so preloaded, so that it may use more device memory than\n"
		"its budget: cold buffers are paged to host memory and back. The job links to the\n"
		"system memvirtd when it answers, else to this user's own, started when none answers\n"
		"(memvirt(1), DISCOVERY). The exit status is COMMAND's.\n"
		"\n"
		"  --budget SIZE     device memory the job may hold: 6GiB, 1.5GB or 40%% of the device,\n"
		"                    or per device, such as 0:6GiB,1:40%%\n"
		"                    (sets MEMVIRT_BUDGET)\n"
		"  --device N        run on device N only (sets CUDA_VISIBLE_DEVICES)\n"
		"  --policy NAME     the paging policy (sets MEMVIRT_POLICY); see 'memvirt policies'\n"
		"  --lookahead N     vdnn-*: issue page-ins N layers ahead, N >= 1\n"
		"                    (sets MEMVIRT_LOOKAHEAD)\n"
		"  --page-min SIZE   page no buffer smaller than SIZE (sets MEMVIRT_PAGE_MIN)\n"
		"  --budget-per-process\n"
		"                    give each process of the job the whole budget, instead of\n"
		"                    sharing it among them (unsets MEMVIRT_GROUP)\n"
		"  --record FILE     write the job's trace to FILE for 'memvirt trace'; %%p is the\n"
		"                    pid, %%r the rank: one file per process (sets MEMVIRT_RECORD)\n"
		"  --record-max SIZE end each trace cleanly once it reaches SIZE\n"
		"                    (sets MEMVIRT_RECORD_MAX)\n"
		"  --config FILE     the configuration for a daemon run starts; its \"library\" settings\n"
		"                    and the job's planning knobs (\"jobs\") are handed to the job\n"
		"                    unless the environment or an option sets them\n"
		"  --socket PATH     the daemon's socket (default: $MEMVIRT_SOCKET, else discovery);\n"
		"                    a private daemon is started when none answers there\n"
		"  --simulate        run on the simulated GPU of the build tree (tests/simcuda)\n"
		"  --help            print this and exit\n");
}

/* Exit statuses of run's own failures, as env(1) and timeout(1) use them. */
enum {
	RUN_EXIT_USAGE = 2,
	RUN_EXIT_FAILED = 125,   /* memvirt could not set the job up */
	RUN_EXIT_CANNOT_EXEC = 126,
	RUN_EXIT_NOT_FOUND = 127,
};

/* --record's %p, %r and %%: only in the file's name (a directory per process would not exist yet).
 * Returns how many %p and %r the name has, with the name for the job's one file in one[len] when
 * it has none; -1 with the reason printed. */
static int run_record_pattern(const char *file, const char *path, char *one, size_t len)
{
	const char *slash = strrchr(path, '/');
	int n;

	if (memchr(path, '%', (size_t)(slash - path)) != NULL) {
		fprintf(stderr, "memvirt run: --record %s: %%p, %%r and %%%% may be only in the file's "
				"name, not in its directory\n", file);
		return -1;
	}
	n = mv_trace_path_expand(path, 0, MV_TRACE_NONE, one, len);
	if (n == -EINVAL)
		fprintf(stderr, "memvirt run: --record %s: a %% is followed by neither p (the pid), r "
				"(the rank) nor %%\n", file);
	else if (n < 0)
		fprintf(stderr, "memvirt run: --record %s: the path is too long\n", file);
	if (n > 0)
		one[0] = '\0';
	return n < 0 ? -1 : n;
}

/* --record: the file as an absolute path (the job may change its directory), in a directory this
 * user can write, so that a long job does not run for nothing. */
static int run_check_record(const char *file, char *out, size_t len, char *one, size_t onelen)
{
	char cwd[PATH_MAX], dir[PATH_MAX];
	struct stat st;
	char *slash;
	int n;

	if (*file == '\0') {
		fprintf(stderr, "memvirt run: --record needs a file name\n");
		return -1;
	}
	if (file[0] == '/') {
		n = snprintf(out, len, "%s", file);
	} else {
		if (getcwd(cwd, sizeof(cwd)) == NULL) {
			fprintf(stderr, "memvirt run: --record %s: cannot tell the current directory: %s\n",
				file, strerror(errno));
			return -1;
		}
		n = snprintf(out, len, "%s/%s", cwd, file);
	}
	if (n < 0 || (size_t)n >= len) {
		fprintf(stderr, "memvirt run: --record %s: the path is too long\n", file);
		return -1;
	}
	if (out[strlen(out) - 1] == '/' || (stat(out, &st) == 0 && S_ISDIR(st.st_mode))) {
		fprintf(stderr, "memvirt run: --record %s: is a directory; name a file in it\n", file);
		return -1;
	}
	if (run_record_pattern(file, out, one, onelen) < 0)
		return -1;
	snprintf(dir, sizeof(dir), "%s", out);
	slash = strrchr(dir, '/');
	if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "memvirt run: --record %s: no directory %s\n", file, dir);
		return -1;
	}
	if (access(dir, W_OK | X_OK) != 0) {
		fprintf(stderr, "memvirt run: --record %s: cannot write in %s: %s\n", file, dir,
			strerror(errno));
		return -1;
	}
	if (one[0] != '\0' && access(one, F_OK) == 0 && access(one, W_OK) != 0) {
		fprintf(stderr, "memvirt run: --record %s: cannot write it: %s\n", file, strerror(errno));
		return -1;
	}
	return 0;
}

/* --record-max: a size (as --budget spells one, without the percentage) that holds a trace. */
static int run_check_record_max(const char *v, int recording)
{
	uint64_t bytes;

	if (!recording) {
		fprintf(stderr, "memvirt run: --record-max needs --record\n");
		return -1;
	}
	if (mv_parse_size(v, &bytes) < 0 || bytes < MV_TRACE_MAX_LEAST) {
		fprintf(stderr, "memvirt run: --record-max '%s' is not a size of at least 4KiB (such as "
				"512MiB)\n", v);
		return -1;
	}
	return 0;
}

/* CUDA_VISIBLE_DEVICES takes an ordinal or a device's UUID (GPU-..., MIG-...). */
static int run_check_device(const char *d)
{
	if (strncmp(d, "GPU-", 4) == 0 || strncmp(d, "MIG-", 4) == 0)
		return d[4] != '\0' ? 0 : -1;
	if (*d == '\0')
		return -1;
	for (const char *p = d; *p != '\0'; p++)
		if (!isdigit((unsigned char)*p))
			return -1;
	return 0;
}

static int run_parse(int argc, char **argv, struct run_opts *o)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		CLI_PLAN_OPTIONS,
		{"budget", required_argument, NULL, 'b'},
		{"device", required_argument, NULL, 'd'},
		{"simulate", no_argument, NULL, 'S'},
		{"socket", required_argument, NULL, 's'},
		{"record", required_argument, NULL, 'r'},
		{"record-max", required_argument, NULL, 'R'},
		{"budget-per-process", no_argument, NULL, 'P'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *record = NULL;
	uint64_t bytes;
	int c;

	memset(o, 0, sizeof(*o));
	cli_plan_init(&o->plan);
	optind = 0;
	opterr = 0;
	/* "+": stop at the command, so that its own options stay its own. */
	while ((c = getopt_long(argc, argv, "+:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			o->config = optarg;
			break;
		case CLI_OPT_POLICY:
			o->plan.policy = optarg;
			break;
		case CLI_OPT_LOOKAHEAD:
			o->plan.lookahead = optarg;
			break;
		case CLI_OPT_PAGE_MIN:
			o->plan.page_min = optarg;
			break;
		case 'b':
			o->budget = optarg;
			break;
		case 'd':
			o->device = optarg;
			break;
		case 'S':
			o->simulate = 1;
			break;
		case 's':
			o->socket = optarg;
			break;
		case 'r':
			record = optarg;
			break;
		case 'R':
			o->record_max = optarg;
			break;
		case 'P':
			o->budget_per_process = 1;
			break;
		case 'h':
			run_usage(stdout);
			return 1;
		default:
			cli_option_error("memvirt run", c, argv, opts);
			return -1;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "memvirt run: no command to run\n");
		run_usage(stderr);
		return -1;
	}
	o->cmd = argv + optind;

	/* The percentage's whole is the device, unknown here: only the spelling is judged. */
	if (o->budget != NULL && strpbrk(o->budget, ",:") != NULL) {
		const char *why = NULL;
		char entry[64];

		if (mv_budget_pick(o->budget, -1, UINT64_C(1) << 40, &bytes, &why, entry, sizeof(entry)) < 0) {
			fprintf(stderr, "memvirt run: --budget '%s': entry '%s' has %s (a list is DEVICE:BUDGET "
					"entries, and at most one BUDGET for every other device, such as 0:6GiB,1:40%%)\n",
				o->budget, entry, why);
			return -1;
		}
	} else if (o->budget != NULL) {
		if (mv_parse_size_or_percent(o->budget, UINT64_C(1) << 40, &bytes) < 0) {
			fprintf(stderr, "memvirt run: --budget '%s' is not a size (such as 6GiB or 1.5GB) "
					"or a percentage of the device (such as 40%%)\n", o->budget);
			return -1;
		}
		if (bytes == 0) {
			fprintf(stderr, "memvirt run: --budget '%s' leaves the job no device memory\n",
				o->budget);
			return -1;
		}
	}
	/* The job sees its one device as device 0: a list naming devices would name the wrong one. */
	if (o->device != NULL && o->budget != NULL && strchr(o->budget, ':') != NULL) {
		fprintf(stderr, "memvirt run: --budget '%s' names devices, but with --device the job sees "
				"its one device as device 0: give --budget one budget\n", o->budget);
		return -1;
	}
	if (o->device != NULL && run_check_device(o->device) < 0) {
		fprintf(stderr, "memvirt run: --device '%s' is not a device number (0, 1, ...) or UUID "
				"(GPU-...)\n", o->device);
		return -1;
	}
	if (cli_plan_check("memvirt run", &o->plan) < 0)
		return -1;
	if (record != NULL && run_check_record(record, o->record, sizeof(o->record), o->record_one,
					       sizeof(o->record_one)) < 0)
		return -1;
	if (o->record_max != NULL && run_check_record_max(o->record_max, record != NULL) < 0)
		return -1;
	return 0;
}

/* Absolute path of an existing file, or -1. */
static int run_existing(const char *path, char *out)
{
	return realpath(path, out) != NULL && access(out, R_OK) == 0 ? 0 : -1;
}

/* libmemvirt.so: $MEMVIRT_LIBRARY, else the build tree's, else the installed one. */
static int run_find_library(char *out)
{
	char dir[PATH_MAX], path[PATH_MAX + 64];
	const char *env = getenv("MEMVIRT_LIBRARY");

	if (env != NULL && *env != '\0') {
		if (run_existing(env, out) == 0)
			return 0;
		fprintf(stderr, "memvirt run: MEMVIRT_LIBRARY=%s: %s\n", env, strerror(errno));
		return -1;
	}
	if (cli_exe_dir(dir, sizeof(dir)) == 0) {
		snprintf(path, sizeof(path), "%s/../interpose/.libs/libmemvirt.so", dir);
		if (run_existing(path, out) == 0)
			return 0;
	}
	if (run_existing(MV_PKGLIBDIR "/libmemvirt.so", out) == 0)
		return 0;
	fprintf(stderr, "memvirt run: cannot find libmemvirt.so (looked in %s and next to the build "
			"tree); set MEMVIRT_LIBRARY to its path\n", MV_PKGLIBDIR);
	return -1;
}

/* The simulated driver's directory: $MEMVIRT_SIMCUDA_DIR, else the build tree's tests/simcuda. */
static int run_find_simcuda(char *out)
{
	char dir[PATH_MAX], path[PATH_MAX + 64];
	const char *env = getenv("MEMVIRT_SIMCUDA_DIR");

	if (env != NULL && *env != '\0')
		snprintf(path, sizeof(path), "%s", env);
	else if (cli_exe_dir(dir, sizeof(dir)) == 0)
		snprintf(path, sizeof(path), "%s/../tests/simcuda", dir);
	else
		path[0] = '\0';
	if (path[0] != '\0' && realpath(path, out) != NULL) {
		snprintf(path, sizeof(path), "%s/libcuda.so.1", out);
		if (access(path, R_OK) == 0)
			return 0;
	}
	fprintf(stderr, "memvirt run: --simulate: no simulated GPU (libcuda.so.1) in %s; it exists only "
			"in a build tree: set MEMVIRT_SIMCUDA_DIR to its tests/simcuda\n",
		path[0] != '\0' ? path : "the build tree");
	return -1;
}

/* Puts value in front of a list variable (LD_PRELOAD, LD_LIBRARY_PATH), unless it is first
 * already. */
static void run_prepend(const char *name, const char *value)
{
	const char *old = getenv(name);
	size_t n = strlen(value);
	char *v;

	if (old == NULL || *old == '\0') {
		setenv(name, value, 1);
		return;
	}
	if (strncmp(old, value, n) == 0 && (old[n] == '\0' || old[n] == ':' || old[n] == ' '))
		return;
	v = xmalloc(n + strlen(old) + 2);
	sprintf(v, "%s:%s", value, old);
	setenv(name, v, 1);
	free(v);
}

static void run_setenv_u64(const char *name, uint64_t v)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
	setenv(name, buf, 0);
}

/* Removes the private directory and what the daemon left in it (its socket, nothing deeper). */
static void run_remove_dir(const char *dir)
{
	char path[PATH_MAX + 256];
	struct dirent *e;
	DIR *d = opendir(dir);

	if (d != NULL) {
		while ((e = readdir(d)) != NULL) {
			if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
				continue;
			snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
			unlink(path);
		}
		closedir(d);
	}
	rmdir(dir);
}

/* The private directory's name: memvirt-run.PID.XXXXXX, PID being the memvirt run that owns it. */
#define RUN_DIR_PREFIX "memvirt-run."

/* Whether a daemon still takes connections on dir's socket (opened from parent, never followed). */
static int run_dir_serves(const char *tmp, const char *name)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd, n, r;

	n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s/memvirtd.sock", tmp, name);
	if (n < 0 || (size_t)n >= sizeof(sa.sun_path))
		return 1;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 1;
	r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	close(fd);
	return r == 0;
}

/* Removes one private directory left by a run that was killed: only a real directory (O_NOFOLLOW)
 * of this user, and in it only what is not a directory (a symlink is removed, never followed). */
static void run_reap_one(int parent, const char *name)
{
	struct dirent *e;
	struct stat st;
	DIR *d;
	int fd;

	fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return;
	if (fstat(fd, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != getuid()) {
		close(fd);
		return;
	}
	d = fdopendir(fd);
	if (d == NULL) {
		close(fd);
		return;
	}
	while ((e = readdir(d)) != NULL) {
		if (fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISDIR(st.st_mode))
			unlinkat(fd, e->d_name, 0);
	}
	closedir(d);
	if (unlinkat(parent, name, AT_REMOVEDIR) == 0)
		fprintf(stderr, "memvirt run: removed %s, left by a run (pid %ld) that was killed\n", name,
			strtol(name + strlen(RUN_DIR_PREFIX), NULL, 10));
}

/* A memvirt run killed with SIGKILL cannot remove its private directory; its daemon ends with it
 * (PR_SET_PDEATHSIG). The next run removes such directories of this user in tmp: those whose run
 * is gone (no process has its pid) and on whose socket no daemon answers. */
static void run_reap_dirs(const char *tmp)
{
	struct dirent *e;
	DIR *d = opendir(tmp);
	size_t plen = strlen(RUN_DIR_PREFIX);

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		char *end;
		long pid;

		if (strncmp(e->d_name, RUN_DIR_PREFIX, plen) != 0)
			continue;
		errno = 0;
		pid = strtol(e->d_name + plen, &end, 10);
		if (errno != 0 || end == e->d_name + plen || *end != '.' || strlen(end + 1) != 6 || pid <= 0 ||
		    pid > INT_MAX)
			continue;
		/* EPERM: the pid runs, as another user. */
		if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue;
		if (run_dir_serves(tmp, e->d_name))
			continue;
		run_reap_one(dirfd(d), e->d_name);
	}
	closedir(d);
}

static void run_restore_signals(const sigset_t *mask)
{
	signal(SIGCHLD, SIG_DFL);
	sigprocmask(SIG_SETMASK, mask, NULL);
}

/* Starts memvirtd --private on a socket in a fresh 0700 directory and waits until it answers. */
static int run_start_daemon(const struct run_opts *o, struct run_daemon *d, const sigset_t *oldmask)
{
	const char *tmp = getenv("TMPDIR");
	char exe[PATH_MAX];
	char *argv[10];
	pid_t parent = getpid();
	int argc = 0, r, status, fd;

	/* A socket's path must fit in sun_path (108 bytes): a long TMPDIR gives way to /tmp. */
	if (tmp == NULL || *tmp == '\0' || strlen(tmp) > 60)
		tmp = "/tmp";
	run_reap_dirs(tmp);
	snprintf(d->dir, sizeof(d->dir), "%s/" RUN_DIR_PREFIX "%d.XXXXXX", tmp, (int)getpid());
	/* mkdtemp makes the directory 0700: only this user reaches the socket in it. */
	if (mkdtemp(d->dir) == NULL) {
		fprintf(stderr, "memvirt run: cannot make a directory for a private daemon in %s: %s\n",
			tmp, strerror(errno));
		d->dir[0] = '\0';
		return -1;
	}
	snprintf(d->socket, sizeof(d->socket), "%s/memvirtd.sock", d->dir);
	cli_memvirtd_path(exe, sizeof(exe));
	argv[argc++] = exe;
	argv[argc++] = (char *)"--private";
	argv[argc++] = (char *)"--socket";
	argv[argc++] = d->socket;
	if (o->config != NULL) {
		argv[argc++] = (char *)"--config";
		argv[argc++] = (char *)o->config;
	} else {
		/* The job's terminal is no place for the daemon's info lines; a configuration
		 * may still ask for them. */
		argv[argc++] = (char *)"--log-level";
		argv[argc++] = (char *)"warn";
	}
	argv[argc] = NULL;

	d->pid = fork();
	if (d->pid < 0) {
		fprintf(stderr, "memvirt run: fork: %s\n", strerror(errno));
		d->pid = 0;
		return -1;
	}
	if (d->pid == 0) {
		/* The daemon goes away with this process, even one killed with SIGKILL. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(1);
		/* Its own process group: a ^C at the terminal is for the job, which may want the
		 * daemon while it handles it; the daemon is stopped after the job ends. */
		setpgid(0, 0);
		fd = open("/dev/null", O_RDWR);
		if (fd >= 0) {
			dup2(fd, 0);
			dup2(fd, 1);
			if (fd > 2)
				close(fd);
		}
		run_restore_signals(oldmask);
		execvp(exe, argv);
		fprintf(stderr, "memvirt run: cannot start %s: %s\n", exe, strerror(errno));
		_exit(127);
	}
	r = cli_client_wait(d->socket, RUN_DAEMON_WAIT_MS, d->pid, &status);
	if (r == -ECHILD) {
		d->pid = 0;
		if (WIFEXITED(status))
			fprintf(stderr, "memvirt run: the private memvirtd (%s) exited with status %d "
					"before it answered\n", exe, WEXITSTATUS(status));
		else
			fprintf(stderr, "memvirt run: the private memvirtd (%s) was killed by signal %d "
					"before it answered\n", exe, WTERMSIG(status));
		return -1;
	}
	if (r < 0) {
		fprintf(stderr, "memvirt run: the private memvirtd (%s) did not answer on %s within "
				"%d ms\n", exe, d->socket, RUN_DAEMON_WAIT_MS);
		return -1;
	}
	return 0;
}

/* Stops a daemon this run started: politely, then with signals, and removes its directory. */
static void run_stop_daemon(struct run_daemon *d)
{
	struct timespec pause = {.tv_sec = 0, .tv_nsec = 10 * 1000000};
	char err[256];
	json_t *resp;
	int i, status;

	if (d->pid > 0) {
		if (cli_client_call(d->socket, "stop", 1000, &resp, err, sizeof(err)) == 0)
			json_decref(resp);
		else
			kill(d->pid, SIGTERM);
		for (i = 0; i < 300 && waitpid(d->pid, &status, WNOHANG) == 0; i++) {
			if (i == 200)
				kill(d->pid, SIGTERM);
			nanosleep(&pause, NULL);
		}
		if (i == 300) {
			kill(d->pid, SIGKILL);
			waitpid(d->pid, &status, 0);
		}
		d->pid = 0;
	}
	if (d->dir[0] != '\0')
		run_remove_dir(d->dir);
	d->dir[0] = '\0';
	cli_client_close(&d->hold);
}

/* Takes the control session that keeps a shared daemon on path from stopping as idle while the
 * job runs: it answered a status request on it, so it counts the session as a client. Returns 0,
 * or a negative errno with the reason in err (-EPERM: the daemon is refused). */
static int run_hold(const char *path, struct cli_client *hold, char *err, size_t errlen)
{
	json_t *req, *resp;
	int r;

	r = cli_client_open(hold, path, RUN_DAEMON_WAIT_MS);
	if (r < 0) {
		/* Asked again for the words: cli_client_open keeps its reason to itself. */
		r = cli_client_call(path, "status", RUN_DAEMON_WAIT_MS, &resp, err, errlen);
		if (r == 0)
			json_decref(resp);
		return r < 0 ? r : -EAGAIN;
	}
	req = json_pack("{s:s}", "cmd", "status");
	if (req == NULL)
		xoom();
	r = cli_client_request(hold, req, RUN_DAEMON_WAIT_MS, &resp, err, errlen);
	json_decref(req);
	if (r < 0) {
		cli_client_close(hold);
		return r;
	}
	json_decref(resp);
	return 0;
}

/* The child's side of run_spawn_shared: a session of its own, so that the job's ^C and hangup
 * are not the daemon's; stdin and stdout on /dev/null, stderr on errfd (when >= 0). */
static void run_exec_shared(char **argv, int errfd, const sigset_t *oldmask)
{
	int fd = open("/dev/null", O_RDWR);

	setsid();
	if (fd >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		if (fd > 2)
			close(fd);
	}
	if (errfd > 2) {
		dup2(errfd, 2);
		close(errfd);
	}
	run_restore_signals(oldmask);
	execvp(argv[0], argv);
	fprintf(stderr, "cannot start %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

/* How long this user's own daemon has to answer once started; it is not stopped when late. */
#define RUN_SHARED_WAIT_MS 10000

/* Starts memvirtd on this user's socket path, detached from this run: it serves every job that
 * finds it and stops once idle (--idle-exit). Returns 0 once it answers; -EAGAIN when it exited
 * first (having lost the path to a daemon started at the same moment, or failed: its stderr is in
 * err); -EINVAL when it refused its command line; -ETIMEDOUT. */
static int run_spawn_shared(const struct run_opts *o, const char *path, const sigset_t *oldmask,
			    char *err, size_t errlen)
{
	const char *idle = getenv("MEMVIRT_IDLE_EXIT");
	char exe[PATH_MAX];
	char *argv[10];
	int argc = 0, p[2] = {-1, -1}, r, status;
	ssize_t n;
	pid_t pid;

	argv[argc++] = cli_memvirtd_path(exe, sizeof(exe));
	argv[argc++] = (char *)"--socket";
	argv[argc++] = (char *)path;
	argv[argc++] = (char *)"--idle-exit";
	argv[argc++] = (char *)(idle != NULL && *idle != '\0' ? idle : RUN_IDLE_EXIT);
	argv[argc++] = (char *)(o->config != NULL ? "--config" : "--log-level");
	argv[argc++] = (char *)(o->config != NULL ? o->config : "warn");
	argv[argc] = NULL;
	/* Its stderr is a pipe until it answers, so that a daemon that cannot start is heard. The
	 * write end does not block, and once nobody reads it the daemon's writes fail (it ignores
	 * SIGPIPE) as they would on /dev/null. */
	if (pipe2(p, O_CLOEXEC) == 0)
		fcntl(p[1], F_SETFL, O_NONBLOCK);
	fflush(NULL);
	pid = fork();
	if (pid == 0)
		run_exec_shared(argv, p[1], oldmask);
	if (p[1] >= 0)
		close(p[1]);
	r = pid < 0 ? -errno : cli_client_wait(path, RUN_SHARED_WAIT_MS, pid, &status);
	snprintf(err, errlen, "%s", pid < 0 ? strerror(errno) : "");
	if (r == -ECHILD && p[0] >= 0) {
		n = read(p[0], err, errlen - 1);
		err[n > 0 ? n : 0] = '\0';
		err[strcspn(err, "\n")] = '\0';
	}
	if (p[0] >= 0)
		close(p[0]);
	if (r == -ECHILD && WIFEXITED(status) && (WEXITSTATUS(status) == 2 || WEXITSTATUS(status) == 127))
		return -EINVAL;
	return r == -ECHILD ? -EAGAIN : r;
}

/* The job's daemon when discovery names this user's own socket: the one that answers there, else
 * one started there now. Two runs that start one at once both do; the daemon's lock lets one
 * serve, the other exits, and its run takes the first. Returns 0 with d->hold open (1: started by
 * this run), or -1 with the reason printed, for a private daemon to serve instead. */
static int run_join_user(const struct run_opts *o, const char *path, struct run_daemon *d,
			 const sigset_t *oldmask)
{
	char err[512], derr[512] = "";
	int i, r, started = 0;

	for (i = 0;; i++) {
		r = run_hold(path, &d->hold, err, sizeof(err));
		if (r == 0)
			return started;
		if (r == -EPERM) {
			fprintf(stderr, "memvirt run: refusing the daemon on %s: %s; starting a private one\n",
				path, err);
			return -1;
		}
		if (i == RUN_SHARED_TRIES)
			break;
		r = run_spawn_shared(o, path, oldmask, derr, sizeof(derr));
		started = r == 0;
		if (r == -EINVAL)
			break;
		/* It lost to another daemon, which may be starting or stopping: the time to answer. */
		if (r == -EAGAIN)
			cli_client_wait(path, RUN_DAEMON_WAIT_MS, 0, NULL);
	}
	fprintf(stderr, "memvirt run: memvirtd did not stay up on %s%s%s; starting a private one\n", path,
		derr[0] != '\0' ? ": " : "", derr);
	return -1;
}

/* Finds the job's daemon by memvirt(1)'s DISCOVERY (found: which rule named socket): the system
 * daemon, or this user's own (started when none answers), or the one an option or $MEMVIRT_SOCKET
 * named; when none of these will do, a private one, whose socket replaces socket[len]. Returns 0,
 * or -1 with the reason printed. */
static int run_find_daemon(const struct run_opts *o, struct run_daemon *d, char *socket, size_t len,
			   int found, const sigset_t *oldmask)
{
	char err[512];
	json_t *resp;
	int r = -1;

	if (found == MV_FOUND_SYSTEM && run_hold(socket, &d->hold, err, sizeof(err)) == 0)
		r = 0;
	/* A system daemon that went since discovery saw it: this user's own serves instead. */
	else if (found == MV_FOUND_SYSTEM && mv_user_socket_path(socket, len) == 0)
		found = MV_FOUND_USER;
	if (found == MV_FOUND_USER) {
		r = run_join_user(o, socket, d, oldmask);
	} else if (found == MV_FOUND_ENV) {
		r = cli_client_call(socket, "status", RUN_DAEMON_WAIT_MS, &resp, err, sizeof(err));
		if (r == 0)
			json_decref(resp);
		else if (r == -EPERM)
			fprintf(stderr, "memvirt run: refusing the daemon on %s: %s; starting a private one\n",
				socket, err);
		else if (r == -ETIMEDOUT)
			fprintf(stderr, "memvirt run: the daemon on %s did not answer within %d s; starting a "
					"private one\n", socket, RUN_DAEMON_WAIT_MS / 1000);
		else if (o->socket != NULL)
			fprintf(stderr, "memvirt run: no daemon answers on %s; starting a private one\n",
				socket);
	}
	if (r == 0 && o->config != NULL)
		fprintf(stderr, "memvirt run: memvirtd on %s runs with its own configuration; "
				"--config gives the job only its \"library\" and \"jobs\" settings\n", socket);
	if (r >= 0)
		return 0;
	if (run_start_daemon(o, d, oldmask) < 0)
		return -1;
	snprintf(socket, len, "%s", d->socket);
	return 0;
}

/* The job's planning knobs from the configuration, for those the file gives: under the command
 * line's flags and the environment, which the job would see otherwise. */
static void run_job_settings(const struct run_opts *o, const struct mvd_config *cfg)
{
	const struct mvd_job *j;
	const char *name = getenv("MEMVIRT_JOB"), *slash;
	char buf[64];

	/* The name the library gives the daemon: MEMVIRT_JOB, else the program's. */
	if (name == NULL || *name == '\0') {
		slash = strrchr(o->cmd[0], '/');
		name = slash != NULL ? slash + 1 : o->cmd[0];
	}
	j = mvd_config_job(cfg, name);
	if (j->set & MVD_JOB_POLICY)
		setenv("MEMVIRT_POLICY", j->policy, 0);
	if (j->set & MVD_JOB_PAGE_MIN)
		run_setenv_u64("MEMVIRT_PAGE_MIN", j->page_min);
	if (j->set & MVD_JOB_LOOKAHEAD)
		run_setenv_u64("MEMVIRT_LOOKAHEAD", j->lookahead);
	if (j->set & MVD_JOB_HEAVY_FRACTION) {
		snprintf(buf, sizeof(buf), "%.17g", j->heavy_fraction);
		setenv("MEMVIRT_HEAVY_FRACTION", buf, 0);
	}
	if (j->set & MVD_JOB_HEADROOM) {
		snprintf(buf, sizeof(buf), "%.17g", j->headroom);
		setenv("MEMVIRT_HEADROOM", buf, 0);
	}
	if (j->set & MVD_JOB_ITERATION_MARKER)
		setenv("MEMVIRT_ITERATION_MARKER", j->iteration_marker, 0);
}

/* The job's group (MEMVIRT_GROUP): its processes share the budget on each device. A group already
 * in the environment (a batch system's, the user's) stands; otherwise the token is made of this
 * run's pid, which no other live run has, the time and random bits, for a pid used again. */
static void run_group(const struct run_opts *o)
{
	const char *v = getenv("MEMVIRT_GROUP");
	struct timespec ts;
	uint32_t rnd = 0;
	char token[64];
	int fd;

	if (o->budget_per_process) {
		unsetenv("MEMVIRT_GROUP");
		return;
	}
	if (v != NULL && *v != '\0')
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || read(fd, &rnd, sizeof(rnd)) != (ssize_t)sizeof(rnd))
		rnd = (uint32_t)ts.tv_nsec * 2654435761u;
	if (fd >= 0)
		close(fd);
	snprintf(token, sizeof(token), "run-%d-%llx-%08x", (int)getpid(), (unsigned long long)ts.tv_sec,
		 (unsigned)(rnd ^ (uint32_t)ts.tv_nsec));
	setenv("MEMVIRT_GROUP", token, 1);
}

/* --record: the job's one trace file is made by its first process only (O_EXCL), so an earlier
 * run's file of that name goes now, as a plain truncate would have taken it. */
static void run_record(const struct run_opts *o)
{
	struct stat st;

	if (o->record[0] == '\0')
		return;
	setenv("MEMVIRT_RECORD", o->record, 1);
	if (o->record_max != NULL)
		setenv("MEMVIRT_RECORD_MAX", o->record_max, 1);
	if (o->record_one[0] != '\0' && lstat(o->record_one, &st) == 0 && !S_ISDIR(st.st_mode) &&
	    unlink(o->record_one) != 0)
		fprintf(stderr, "memvirt run: --record: cannot remove the earlier %s: %s; the job "
				"will not record\n", o->record_one, strerror(errno));
}

/* Sets the job's environment. After the daemon is started, so that it gets none of it. */
static void run_environment(const struct run_opts *o, const struct mvd_config *cfg,
			    const char *lib, const char *simdir, const char *socket)
{
	char path[PATH_MAX + 32];

	run_prepend("LD_PRELOAD", lib);
	setenv("MEMVIRT_SOCKET", socket, 1);
	if (o->budget != NULL)
		setenv("MEMVIRT_BUDGET", o->budget, 1);
	if (o->device != NULL)
		setenv("CUDA_VISIBLE_DEVICES", o->device, 1);
	if (o->plan.policy != NULL)
		setenv("MEMVIRT_POLICY", o->plan.policy, 1);
	if (o->plan.lookahead != NULL)
		setenv("MEMVIRT_LOOKAHEAD", o->plan.lookahead, 1);
	if (o->plan.page_min != NULL)
		setenv("MEMVIRT_PAGE_MIN", o->plan.page_min, 1);
	run_record(o);
	run_group(o);
	cli_framework_profiles("memvirt run");
	if (cfg != NULL) {
		run_setenv_u64("MEMVIRT_SLAB_THRESHOLD", cfg->slab_threshold);
		if (cfg->host_limit != 0)
			run_setenv_u64("MEMVIRT_HOST_LIMIT", cfg->host_limit);
		setenv("MEMVIRT_SAFETY_NET", cfg->safety_net ? "on" : "off", 0);
		run_job_settings(o, cfg);
	}
	if (simdir != NULL) {
		run_prepend("LD_LIBRARY_PATH", simdir);
		snprintf(path, sizeof(path), "%s/libcuda.so.1", simdir);
		setenv("MEMVIRT_REAL_LIBCUDA", path, 1);
	}
}

/* Forks and execs the command. Returns its pid, or a negative exit status for run to return
 * when it could not be started (with the reason printed). */
static pid_t run_spawn(char **cmd, const sigset_t *oldmask)
{
	int pfd[2], e = 0;
	ssize_t n;
	pid_t pid;

	/* A close-on-exec pipe tells the parent whether exec worked: it reads EOF, or errno. */
	if (pipe2(pfd, O_CLOEXEC) < 0) {
		fprintf(stderr, "memvirt run: pipe: %s\n", strerror(errno));
		return -RUN_EXIT_FAILED;
	}
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "memvirt run: fork: %s\n", strerror(errno));
		close(pfd[0]);
		close(pfd[1]);
		return -RUN_EXIT_FAILED;
	}
	if (pid == 0) {
		close(pfd[0]);
		run_restore_signals(oldmask);
		execvp(cmd[0], cmd);
		e = errno;
		if (write(pfd[1], &e, sizeof(e)) < 0)
			_exit(RUN_EXIT_FAILED);
		_exit(e == ENOENT ? RUN_EXIT_NOT_FOUND : RUN_EXIT_CANNOT_EXEC);
	}
	close(pfd[1]);
	do
		n = read(pfd[0], &e, sizeof(e));
	while (n < 0 && errno == EINTR);
	close(pfd[0]);
	if (n == (ssize_t)sizeof(e)) {
		waitpid(pid, NULL, 0);
		if (e == ENOENT && strchr(cmd[0], '/') == NULL) {
			fprintf(stderr, "memvirt run: %s: command not found\n", cmd[0]);
			return -RUN_EXIT_NOT_FOUND;
		}
		fprintf(stderr, "memvirt run: %s: %s\n", cmd[0], strerror(e));
		return e == ENOENT ? -RUN_EXIT_NOT_FOUND : -RUN_EXIT_CANNOT_EXEC;
	}
	return pid;
}

/* Waits for the command, forwarding signals to it and reaping the private daemon should it die
 * first. Returns the command's wait status. */
static int run_wait(pid_t child, struct run_daemon *d, const sigset_t *set)
{
	siginfo_t si;
	int status, dstatus;
	pid_t w;

	for (;;) {
		if (sigwaitinfo(set, &si) < 0)
			continue;
		if (si.si_signo != SIGCHLD) {
			/* A signal from the terminal (^C, ^\) reached the whole foreground process
			 * group, the command included: sending it again would deliver it twice. */
			if (si.si_code != SI_KERNEL)
				kill(child, si.si_signo);
			continue;
		}
		if (d->pid > 0 && waitpid(d->pid, &dstatus, WNOHANG) == d->pid) {
			fprintf(stderr, "memvirt run: the private memvirtd exited; the job goes on with "
					"its in-process paging\n");
			d->pid = 0;
		}
		w = waitpid(child, &status, WNOHANG);
		if (w == child)
			return status;
	}
}

/* Ends this process the way the command ended: with its exit status, or its signal. */
static int run_exit_like(int status)
{
	struct rlimit none = {0, 0};
	sigset_t set;
	int sig;

	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (!WIFSIGNALED(status))
		return RUN_EXIT_FAILED;
	sig = WTERMSIG(status);
	fflush(NULL);
	/* The command dumped core already, if it was going to: not memvirt as well. */
	setrlimit(RLIMIT_CORE, &none);
	signal(sig, SIG_DFL);
	sigemptyset(&set);
	sigaddset(&set, sig);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	raise(sig);
	/* Still here: the signal is not one that ends a process (or could not be raised). */
	return 128 + sig;
}

static void run_sigchld(int sig)
{
	(void)sig;
}

int cmd_run(int argc, char **argv)
{
	struct run_opts o;
	struct run_daemon d = {.pid = 0, .hold = {.fd = -1}};
	struct mvd_config *cfg = NULL;
	char lib[PATH_MAX], simdir[PATH_MAX], socket[PATH_MAX + 32], err[512];
	const char *explicit;
	sigset_t set, oldmask;
	pid_t child;
	int r, status, found;

	r = run_parse(argc, argv, &o);
	if (r != 0)
		return r > 0 ? 0 : RUN_EXIT_USAGE;
	if (o.config != NULL && mvd_config_load(o.config, &cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "memvirt run: %s\n", err);
		return RUN_EXIT_USAGE;
	}
	if (run_find_library(lib) < 0 || (o.simulate && run_find_simcuda(simdir) < 0)) {
		r = RUN_EXIT_FAILED;
		goto out_config;
	}
	/* An option, the configuration or $MEMVIRT_SOCKET names the daemon; else discovery does. */
	explicit = cli_socket_choice(o.socket, cfg);
	found = explicit != NULL ? MV_FOUND_ENV : mv_socket_discover(socket, sizeof(socket));
	if (found < 0 || (explicit != NULL && cli_client_socket(explicit, socket, sizeof(socket)) < 0)) {
		fprintf(stderr, "memvirt run: the socket path is too long\n");
		r = RUN_EXIT_USAGE;
		goto out_config;
	}

	/* From here every signal waits for sigwaitinfo, so none ends memvirt between starting the
	 * daemon and the command and leaves either behind. */
	signal(SIGCHLD, run_sigchld);
	sigemptyset(&set);
	for (size_t i = 0; i < RUN_NFORWARDED; i++)
		sigaddset(&set, run_forwarded[i]);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, &oldmask);

	if (run_find_daemon(&o, &d, socket, sizeof(socket), found, &oldmask) < 0) {
		r = RUN_EXIT_FAILED;
		goto out_daemon;
	}

	run_environment(&o, cfg, lib, o.simulate ? simdir : NULL, socket);
	child = run_spawn(o.cmd, &oldmask);
	if (child < 0) {
		r = -child;
		goto out_daemon;
	}
	status = run_wait(child, &d, &set);
	run_stop_daemon(&d);
	if (cfg != NULL)
		mvd_config_free(cfg);
	return run_exit_like(status);

out_daemon:
	run_stop_daemon(&d);
out_config:
	if (cfg != NULL)
		mvd_config_free(cfg);
	return r;
}
