/* memvirt daemon start|stop|status: manages a long-lived memvirtd for the jobs of this user. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/internal.h"
#include "daemon/conf.h"

/* How long start waits for the new daemon to answer, and stop for the old one to go: generous,
 * since a daemon that exits is seen at once and only a live one slow to answer (a loaded node, a
 * sanitizer build) is waited for. */
#define DAEMON_WAIT_MS 30000

/* The options every action takes; strings borrowed from argv. */
struct daemon_opts {
	const char *socket;
	const char *config;
	const char *log_file;
	const char *log_level;
	int json;
};

static void daemon_usage(FILE *f)
{
	fprintf(f,
		"usage: memvirt daemon start [--socket PATH] [--config FILE] [--log-file FILE]\n"
		"                            [--log-level LEVEL]\n"
		"       memvirt daemon stop [--socket PATH] [--config FILE]\n"
		"       memvirt daemon status [--socket PATH] [--config FILE] [--json]\n"
		"\n"
		"start runs memvirtd in the background, detached from the terminal, and waits until it\n"
		"answers; stop asks it to stop and waits until it has; status shows what it runs with\n"
		"(exit 1 when no daemon answers).\n"
		"\n"
		"  --socket PATH      the daemon's socket (default: $MEMVIRT_SOCKET, else the\n"
		"                     configuration's daemon.socket, else the per-user path)\n"
		"  --config FILE      the daemon's configuration (memvirt.json(5)); checked first\n"
		"  --log-file FILE    where the daemon logs (default: nowhere, since it is detached)\n"
		"  --log-level LEVEL  debug, info, warn or error\n"
		"  --json             status: print the daemon's answer as JSON\n"
		"  --help             print this and exit\n");
}

static void daemon_uptime(uint64_t s, char *buf, size_t len)
{
	if (s < 60)
		snprintf(buf, len, "%llus", (unsigned long long)s);
	else if (s < 3600)
		snprintf(buf, len, "%llum %llus", (unsigned long long)(s / 60),
			 (unsigned long long)(s % 60));
	else if (s < 86400)
		snprintf(buf, len, "%lluh %llum", (unsigned long long)(s / 3600),
			 (unsigned long long)(s / 60 % 60));
	else
		snprintf(buf, len, "%llud %lluh", (unsigned long long)(s / 86400),
			 (unsigned long long)(s / 3600 % 24));
}

static long long daemon_int(const json_t *o, const char *key)
{
	return (long long)json_integer_value(json_object_get(o, key));
}

/* Asks the daemon on path for its status; 0 with *resp, or a negative errno (err set). */
static int daemon_status_of(const char *path, json_t **resp, char *err, size_t errlen)
{
	const char *e;
	int r;

	r = cli_client_call(path, "status", CLI_CLIENT_TIMEOUT_MS, resp, err, errlen);
	if (r < 0)
		return r;
	e = cli_client_error(*resp);
	if (e != NULL) {
		snprintf(err, errlen, "%s", e);
		json_decref(*resp);
		return -EPROTO;
	}
	return 0;
}

static void daemon_print_status(const char *path, const json_t *st)
{
	const char *cfg = json_string_value(json_object_get(st, "config"));
	char up[64];

	daemon_uptime((uint64_t)daemon_int(st, "uptime_s"), up, sizeof(up));
	printf("memvirtd %s, pid %lld, up %s\n", json_string_value(json_object_get(st, "version")) != NULL
	       ? json_string_value(json_object_get(st, "version")) : "?", daemon_int(st, "pid"), up);
	printf("  socket    %s\n", path);
	printf("  config    %s\n", cfg != NULL ? cfg : "built-in defaults");
	printf("  sessions  %lld\n", daemon_int(st, "sessions"));
}

/* The child's side of start: a session of its own, stdin and stdout on /dev/null, stderr on the
 * log file when there is one (so that what is written before the log is open goes there too), else
 * on errfd, then memvirtd. */
static void daemon_exec(const char *exe, char **argv, int errfd, const char *log_file)
{
	int fd;

	if (log_file != NULL) {
		if (errfd >= 0)
			close(errfd);
		errfd = open(log_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	}

	/* No controlling terminal, no ^C or hangup from this shell. */
	setsid();
	fd = open("/dev/null", O_RDWR);
	if (fd >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		if (errfd < 0)
			dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
	if (errfd >= 0 && errfd != 2) {
		dup2(errfd, 2);
		close(errfd);
	}
	execvp(exe, argv);
	_exit(127);
}

/* Prints what a daemon that died before it answered wrote on its stderr (rfd, the pipe's read
 * end), and, when it logs to a file, what it added to log_file from offset from on: its own reason,
 * line by line, after start's. */
static void daemon_show_error(int rfd, const char *log_file, off_t from)
{
	char buf[4096];
	ssize_t n;
	int fd;

	if (rfd >= 0)
		while ((n = read(rfd, buf, sizeof(buf))) > 0)
			fwrite(buf, 1, (size_t)n, stderr);
	if (log_file == NULL)
		return;
	fd = open(log_file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	if (lseek(fd, from, SEEK_SET) == from)
		while ((n = read(fd, buf, sizeof(buf))) > 0)
			fwrite(buf, 1, (size_t)n, stderr);
	close(fd);
}

/* How long log_file is now: where lines a new daemon adds begin. 0 when it is absent. */
static off_t daemon_log_end(const char *log_file)
{
	struct stat st;

	return log_file != NULL && stat(log_file, &st) == 0 ? st.st_size : 0;
}

static int daemon_start(const struct daemon_opts *o, const char *path)
{
	char exe[PATH_MAX], err[256];
	char *argv[12];
	json_t *st;
	pid_t pid;
	off_t log_from;
	int argc = 0, flags, r, status, errpipe[2];

	r = daemon_status_of(path, &st, err, sizeof(err));
	if (r == 0) {
		printf("memvirtd already answers on %s (pid %lld)\n", path, daemon_int(st, "pid"));
		json_decref(st);
		return 0;
	}
	if (r == -EPERM) {
		/* Another user's socket or directory there: a daemon started on it would be theirs to
		 * intercept, and the wait for it would end in the same refusal. */
		cli_client_no_daemon("memvirt daemon start", path, r, err);
		return 1;
	}
	cli_memvirtd_path(exe, sizeof(exe));
	argv[argc++] = exe;
	argv[argc++] = (char *)"--socket";
	argv[argc++] = (char *)path;
	if (o->config != NULL) {
		argv[argc++] = (char *)"--config";
		argv[argc++] = (char *)o->config;
	}
	if (o->log_file != NULL) {
		argv[argc++] = (char *)"--log-file";
		argv[argc++] = (char *)o->log_file;
	}
	if (o->log_level != NULL) {
		argv[argc++] = (char *)"--log-level";
		argv[argc++] = (char *)o->log_level;
	}
	argv[argc] = NULL;

	/* Without a log file its stderr is a pipe until it answers, so that a daemon that fails to
	 * start is heard. The write end does not block: a daemon that writes much before answering
	 * loses lines, not time. Once start returns, its stderr writes fail (it ignores SIGPIPE) as
	 * they would on /dev/null. */
	if (o->log_file != NULL || pipe2(errpipe, O_CLOEXEC) < 0) {
		errpipe[0] = errpipe[1] = -1;
	} else {
		flags = fcntl(errpipe[1], F_GETFL);
		fcntl(errpipe[1], F_SETFL, flags | O_NONBLOCK);
	}
	log_from = daemon_log_end(o->log_file);
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "memvirt daemon start: fork: %s\n", strerror(errno));
		r = 1;
		goto out;
	}
	if (pid == 0)
		daemon_exec(exe, argv, errpipe[1], o->log_file);
	if (errpipe[1] >= 0)
		close(errpipe[1]);
	errpipe[1] = -1;
	r = cli_client_wait(path, DAEMON_WAIT_MS, pid, &status);
	if (r == -ECHILD) {
		if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
			fprintf(stderr, "memvirt daemon start: cannot run %s\n", exe);
		else
			fprintf(stderr, "memvirt daemon start: memvirtd exited (status %d) before it "
					"answered%s\n",
				WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status),
				o->log_file != NULL || errpipe[0] >= 0 ? ":" : "");
		daemon_show_error(errpipe[0], o->log_file, log_from);
		r = 1;
		goto out;
	}
	if (r < 0) {
		fprintf(stderr, "memvirt daemon start: memvirtd (pid %d) did not answer on %s within %d ms\n",
			(int)pid, path, DAEMON_WAIT_MS);
		r = 1;
		goto out;
	}
	printf("memvirtd started (pid %d), listening on %s\n", (int)pid, path);
	r = 0;
out:
	if (errpipe[0] >= 0)
		close(errpipe[0]);
	if (errpipe[1] >= 0)
		close(errpipe[1]);
	return r;
}

static int daemon_stop(const char *path)
{
	struct timespec pause = {.tv_sec = 0, .tv_nsec = 20 * 1000000};
	char err[256];
	const char *e;
	json_t *st, *resp;
	long long pid;
	int r, i;

	r = daemon_status_of(path, &st, err, sizeof(err));
	if (r < 0) {
		cli_client_no_daemon("memvirt daemon stop", path, r, err);
		return 1;
	}
	pid = daemon_int(st, "pid");
	json_decref(st);
	r = cli_client_call(path, "stop", CLI_CLIENT_TIMEOUT_MS, &resp, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "memvirt daemon stop: %s\n", err);
		return 1;
	}
	e = cli_client_error(resp);
	if (e != NULL) {
		fprintf(stderr, "memvirt daemon stop: %s\n", e);
		json_decref(resp);
		return 1;
	}
	json_decref(resp);
	/* Stopping is done once the process is gone, so that a start right after finds the socket
	 * free. The daemon is not our child: kill(pid, 0) watches it. */
	for (i = 0; i < DAEMON_WAIT_MS / 20; i++) {
		if (pid <= 0 || (kill((pid_t)pid, 0) < 0 && errno == ESRCH))
			break;
		/* A daemon this process started and has not reaped is a zombie, gone all the same. */
		if (waitpid((pid_t)pid, NULL, WNOHANG) == (pid_t)pid)
			break;
		nanosleep(&pause, NULL);
	}
	if (i == DAEMON_WAIT_MS / 20) {
		fprintf(stderr, "memvirt daemon stop: memvirtd (pid %lld) is still running after %d ms\n",
			pid, DAEMON_WAIT_MS);
		return 1;
	}
	printf("memvirtd (pid %lld) on %s stopped\n", pid, path);
	return 0;
}

static int daemon_status(const struct daemon_opts *o, const char *path)
{
	char err[256], *text;
	json_t *st;
	int r;

	r = daemon_status_of(path, &st, err, sizeof(err));
	if (r < 0) {
		if (r == -ENOENT || r == -ECONNREFUSED)
			fprintf(stderr, "memvirt daemon status: no daemon answers on %s\n", path);
		else if (r == -EPERM)
			cli_client_no_daemon("memvirt daemon status", path, r, err);
		else
			fprintf(stderr, "memvirt daemon status: %s: %s\n", path, err);
		return 1;
	}
	if (o->json) {
		text = json_dumps(st, JSON_INDENT(2));
		if (text == NULL)
			xoom();
		printf("%s\n", text);
		free(text);
	} else {
		daemon_print_status(path, st);
	}
	json_decref(st);
	return 0;
}

int cmd_daemon(int argc, char **argv)
{
	static const struct option opts[] = {
		{"socket", required_argument, NULL, 's'},
		{"config", required_argument, NULL, 'c'},
		{"log-file", required_argument, NULL, 'f'},
		{"log-level", required_argument, NULL, 'l'},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	static const char *const actions[] = {"start", "stop", "status", NULL};
	struct daemon_opts o = {NULL};
	struct mvd_config *cfg = NULL;
	const char *action = NULL, *guess;
	char path[PATH_MAX], err[512];
	int c, r;

	optind = 0;
	opterr = 0;
	/* Options may come before or after the action: "daemon --socket S start" reads as well. */
	while (optind < argc) {
		c = getopt_long(argc, argv, "+:h", opts, NULL);
		if (c == -1) {
			if (action != NULL) {
				fprintf(stderr, "memvirt daemon: unexpected argument '%s'\n", argv[optind]);
				return 2;
			}
			action = argv[optind++];
			continue;
		}
		switch (c) {
		case 's':
			o.socket = optarg;
			break;
		case 'c':
			o.config = optarg;
			break;
		case 'f':
			o.log_file = optarg;
			break;
		case 'l':
			o.log_level = optarg;
			break;
		case 'j':
			o.json = 1;
			break;
		case 'h':
			daemon_usage(stdout);
			return 0;
		default:
			cli_option_error("memvirt daemon", c, argv, opts);
			return 2;
		}
	}
	if (action == NULL) {
		fprintf(stderr, "memvirt daemon: say start, stop or status\n");
		daemon_usage(stderr);
		return 2;
	}
	if (strcmp(action, "start") != 0 && strcmp(action, "stop") != 0 &&
	    strcmp(action, "status") != 0) {
		guess = cli_closest(action, actions);
		fprintf(stderr, "memvirt daemon: unknown action '%s'", action);
		if (guess != NULL)
			fprintf(stderr, "; did you mean '%s'?", guess);
		fprintf(stderr, " (start, stop or status)\n");
		return 2;
	}
	if ((o.log_file != NULL || o.log_level != NULL) && strcmp(action, "start") != 0) {
		fprintf(stderr, "memvirt daemon %s: --log-file and --log-level are for start\n", action);
		return 2;
	}
	if (o.json && strcmp(action, "status") != 0) {
		fprintf(stderr, "memvirt daemon %s: --json is for status\n", action);
		return 2;
	}
	/* Checked here, so that a bad file is reported on this terminal, not in a detached log. */
	if (o.config != NULL && mvd_config_load(o.config, &cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "memvirt daemon %s: %s\n", action, err);
		return 2;
	}
	if (cli_client_socket(cli_socket_choice(o.socket, cfg), path, sizeof(path)) < 0) {
		fprintf(stderr, "memvirt daemon %s: the socket path is too long\n", action);
		r = 2;
		goto out;
	}
	if (strcmp(action, "start") == 0)
		r = daemon_start(&o, path);
	else if (strcmp(action, "stop") == 0)
		r = daemon_stop(path);
	else
		r = daemon_status(&o, path);
out:
	if (cfg != NULL)
		mvd_config_free(cfg);
	return r;
}
