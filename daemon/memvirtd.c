/* memvirtd: the command line, where to listen, and the daemon's life from start to clean stop. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "daemon/internal.h"
#include "protocol/paths.h"

static const char usage_text[] =
	"usage: memvirtd [--socket PATH] [--config FILE] [--log-level LEVEL] [--log-file FILE]\n"
	"                [--private] [--metrics ADDRESS:PORT] [--idle-exit SECONDS]\n"
	"\n"
	"The memvirt daemon: divides each GPU's memory among the processes running under\n"
	"libmemvirt.so and serves their statistics to the memvirt command.\n"
	"\n"
	"  --socket PATH      listen on PATH (default: $MEMVIRT_SOCKET, the config's daemon.socket,\n"
	"                     else $XDG_RUNTIME_DIR/memvirt/memvirtd.sock, /run/memvirt/memvirtd.sock\n"
	"                     for root)\n"
	"  --config FILE      read the configuration from FILE (memvirt.json(5)); default: built in\n"
	"  --log-level LEVEL  debug, info, warn or error (default: the config's, else info)\n"
	"  --log-file FILE    log to FILE instead of stderr\n"
	"  --private          a daemon for one caller: exit when the parent process dies, and use\n"
	"                     the socket's directory as the caller made it\n"
	"  --metrics ADDRESS:PORT  serve Prometheus metrics at http://ADDRESS:PORT/metrics, such as\n"
	"                     127.0.0.1:9464 or [::1]:9464 (default: the config's daemon.metrics)\n"
	"  --idle-exit SECONDS  stop cleanly once no client has been connected for SECONDS\n"
	"                     (default: never; memvirt run starts a daemon with 60)\n"
	"  --help             show this help\n"
	"  --version          show the version\n"
	"\n"
	"SIGHUP reloads the configuration; SIGTERM and SIGINT stop the daemon cleanly.\n";

static const struct option long_options[] = {
	{"socket", required_argument, NULL, 's'},
	{"config", required_argument, NULL, 'c'},
	{"log-level", required_argument, NULL, 'l'},
	{"log-file", required_argument, NULL, 'L'},
	{"private", no_argument, NULL, 'p'},
	{"metrics", required_argument, NULL, 'm'},
	{"idle-exit", required_argument, NULL, 'i'},
	{"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, 'V'},
	{NULL, 0, NULL, 0},
};

/* The listening socket systemd passed (sd_listen_fds(3)), or -1. Its path goes into path for log
 * lines. */
static int systemd_socket(char *path, size_t len)
{
	struct sockaddr_un sa;
	socklen_t salen = sizeof(sa);
	/* 1: the variables are for this process only; children must not take them as theirs. */
	int n = sd_listen_fds(1), fd = SD_LISTEN_FDS_START;

	if (n <= 0)
		return -1;
	if (n > 1)
		mvd_warn("systemd passed %d sockets; using the first", n);
	if (sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL, 0) <= 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &salen) < 0)
		mvd_fatal("systemd's fd %d is not a listening Unix stream socket (check "
			  "memvirtd.socket's ListenStream=)", fd);
	if (salen > offsetof(struct sockaddr_un, sun_path) && sa.sun_path[0] != '\0')
		snprintf(path, len, "%.*s", (int)(salen - offsetof(struct sockaddr_un, sun_path)),
			 sa.sun_path);
	else
		snprintf(path, len, "(systemd fd %d)", fd);
	return fd;
}

static void close_walk_cb(uv_handle_t *h, void *arg)
{
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

/* What the command line asked for; strings are borrowed from argv. */
struct memvirtd_opts {
	const char *socket, *config, *level, *log_file, *metrics;
	int private_mode;
	unsigned idle_exit; /* seconds; 0: never */
};

/* The longest --idle-exit: a week, far beyond any gap between jobs worth waiting out. */
#define MEMVIRTD_IDLE_MAX 604800

/* Reads --idle-exit's whole seconds. Returns 0, or -1 with the reason printed. */
static int parse_idle(const char *s, unsigned *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || s[0] == '+' || v > MEMVIRTD_IDLE_MAX) {
		fprintf(stderr, "memvirtd: --idle-exit '%s' is not a number of seconds from 0 (never) "
				"to %d\n", s, MEMVIRTD_IDLE_MAX);
		return -1;
	}
	*out = (unsigned)v;
	return 0;
}

/* Reads the command line and puts --log-level in force. Returns -1 to go on, or the exit status
 * to end with at once (--help, --version, a usage error). */
static int parse_args(int argc, char **argv, struct memvirtd_opts *o)
{
	enum mvd_log_level level;
	char err[256];
	int opt;

	memset(o, 0, sizeof(*o));
	while ((opt = getopt_long(argc, argv, "s:c:l:L:pm:i:hV", long_options, NULL)) != -1) {
		switch (opt) {
		case 's':
			o->socket = optarg;
			break;
		case 'c':
			o->config = optarg;
			break;
		case 'l':
			o->level = optarg;
			break;
		case 'L':
			o->log_file = optarg;
			break;
		case 'p':
			o->private_mode = 1;
			break;
		case 'm':
			if (mvd_listen_parse(optarg, &(struct sockaddr_storage){0}, err, sizeof(err)) < 0) {
				fprintf(stderr, "memvirtd: --metrics %s\n", err);
				return 2;
			}
			o->metrics = optarg;
			break;
		case 'i':
			if (parse_idle(optarg, &o->idle_exit) < 0)
				return 2;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		case 'V':
			printf("memvirtd %s (protocol %d)\n", PACKAGE_VERSION, MV_PROTO_VERSION);
			return 0;
		default:
			fputs(usage_text, stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "memvirtd: unexpected argument '%s'\n", argv[optind]);
		fputs(usage_text, stderr);
		return 2;
	}
	if (o->level != NULL) {
		if (mvd_log_parse_level(o->level, &level) < 0) {
			fprintf(stderr, "memvirtd: --log-level %s: expected debug, info, warn or error\n",
				o->level);
			return 2;
		}
		/* In force at once, so that even the config's errors are logged at this level. */
		mvd_log_set_level(level);
	}
	return -1;
}

/* --private: the daemon dies with the process that started it. Returns 0, or -1 when that parent
 * is gone already. */
static int follow_parent(void)
{
	/* The death signal comes only for a parent that dies after prctl: one already gone has left
	 * us with a new parent, and the daemon has nobody to serve. */
	pid_t parent = getppid();

	if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0)
		mvd_fatal("prctl(PR_SET_PDEATHSIG): %s", strerror(errno));
	return getppid() == parent ? 0 : -1;
}

/* The socket to listen on when systemd passed none. The command line first, then the environment,
 * then the config: the nearest word about this one run wins. */
static void socket_path(const struct memvirtd_opts *o, const struct mvd_config *cfg, char *path,
			size_t len)
{
	const char *env = getenv("MEMVIRT_SOCKET");

	if (o->socket != NULL) {
		snprintf(path, len, "%s", o->socket);
	} else if ((env != NULL && env[0] != '\0') || cfg->socket == NULL) {
		if (mv_socket_path(path, len) < 0)
			mvd_fatal("the socket path is too long");
	} else {
		snprintf(path, len, "%s", cfg->socket);
	}
}

/* Runs the server on l until it stops, then closes everything. Returns the exit status. */
static int serve(const struct memvirtd_opts *o, struct mvd_listen *l, struct mvd_config *cfg)
{
	uv_loop_t *loop = uv_default_loop();
	const char *metrics = o->metrics != NULL ? o->metrics : cfg->metrics;

	mvd_server_set_overrides(o->level, o->log_file);
	mvd_server_set_idle_exit(o->idle_exit);
	if (mvd_server_start(loop, l, cfg) < 0) {
		mvd_config_free(cfg);
		return 1;
	}
	/* A port that was asked for and cannot be had is an error the operator must see at once. */
	if (metrics != NULL && mvd_metrics_start(loop, metrics) < 0) {
		mvd_server_stop();
		uv_run(loop, UV_RUN_DEFAULT);
		mvd_server_cleanup();
		return 1;
	}
	/* The socket accepts from here on: systemd may start the units ordered after this one.
	 * Without NOTIFY_SOCKET (not under systemd) this does nothing. */
	sd_notifyf(0, "READY=1\nSTATUS=listening on %s", l->path);
	uv_run(loop, UV_RUN_DEFAULT);
	sd_notify(0, "STOPPING=1\nSTATUS=stopping");
	mvd_metrics_stop();

	mvd_server_cleanup();
	/* What the stop left open (its unreferenced timer) is closed so that the loop can be. */
	uv_walk(loop, close_walk_cb, NULL);
	uv_run(loop, UV_RUN_DEFAULT);
	uv_loop_close(loop);
	mvd_server_free();
	mvd_info("stopped");
	return 0;
}

int main(int argc, char **argv)
{
	struct memvirtd_opts o;
	struct mvd_config *cfg = NULL;
	struct mvd_listen l = {.fd = -1};
	char path[sizeof(((struct sockaddr_un *)0)->sun_path) + 64];
	char err[1024];
	int r;

	r = parse_args(argc, argv, &o);
	if (r >= 0)
		return r;
	if (o.private_mode && follow_parent() < 0)
		return 0;
	if (o.config != NULL) {
		if (mvd_config_load(o.config, &cfg, err, sizeof(err)) < 0) {
			mvd_error("%s", err);
			return 1;
		}
	} else {
		cfg = mvd_config_default();
	}

	l.private_dir = o.private_mode;
	l.fd = systemd_socket(path, sizeof(path));
	if (l.fd < 0)
		socket_path(&o, cfg, path, sizeof(path));
	l.path = path;
	return serve(&o, &l, cfg);
}
