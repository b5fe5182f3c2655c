/* memvirtd: the command line, where to listen, and the daemon's life from start to clean stop. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon/internal.h"
#include "protocol/paths.h"

/* systemd hands its sockets over from this descriptor on (sd_listen_fds(3)). */
#define SD_LISTEN_FDS_START 3

static const char usage_text[] =
	"usage: memvirtd [--socket PATH] [--config FILE] [--log-level LEVEL] [--log-file FILE]\n"
	"                [--private]\n"
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
	{"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, 'V'},
	{NULL, 0, NULL, 0},
};

/* The listening socket systemd passed, or -1. Its path goes into path for log lines. */
static int systemd_socket(char *path, size_t len)
{
	const char *pid_env = getenv("LISTEN_PID"), *fds_env = getenv("LISTEN_FDS");
	struct sockaddr_un sa;
	socklen_t salen = sizeof(sa);
	int type = 0, listening = 0;
	socklen_t optlen = sizeof(int);
	char *end;
	long pid, fds;

	if (pid_env == NULL || fds_env == NULL)
		return -1;
	pid = strtol(pid_env, &end, 10);
	if (*end != '\0' || pid != (long)getpid())
		return -1;
	fds = strtol(fds_env, &end, 10);
	/* The variables are for this process only: children must not take them as theirs. */
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	if (*end != '\0' || fds < 1)
		return -1;
	if (fds > 1)
		mvd_warn("systemd passed %ld sockets; using the first", fds);

	if (getsockopt(SD_LISTEN_FDS_START, SOL_SOCKET, SO_TYPE, &type, &optlen) < 0 ||
	    type != SOCK_STREAM ||
	    getsockopt(SD_LISTEN_FDS_START, SOL_SOCKET, SO_ACCEPTCONN, &listening, &optlen) < 0 ||
	    !listening ||
	    getsockname(SD_LISTEN_FDS_START, (struct sockaddr *)&sa, &salen) < 0 ||
	    sa.sun_family != AF_UNIX)
		mvd_fatal("systemd's fd %d is not a listening Unix stream socket (check "
			  "memvirtd.socket's ListenStream=)", SD_LISTEN_FDS_START);
	fcntl(SD_LISTEN_FDS_START, F_SETFD, FD_CLOEXEC);
	if (salen > offsetof(struct sockaddr_un, sun_path) && sa.sun_path[0] != '\0')
		snprintf(path, len, "%.*s", (int)(salen - offsetof(struct sockaddr_un, sun_path)),
			 sa.sun_path);
	else
		snprintf(path, len, "(systemd fd %d)", SD_LISTEN_FDS_START);
	return SD_LISTEN_FDS_START;
}

static void close_walk_cb(uv_handle_t *h, void *arg)
{
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

int main(int argc, char **argv)
{
	const char *socket_opt = NULL, *config_opt = NULL, *level_opt = NULL, *file_opt = NULL;
	struct mvd_config *cfg = NULL;
	struct mvd_listen l = {.fd = -1};
	enum mvd_log_level level;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path) + 64];
	char err[1024];
	uv_loop_t *loop;
	pid_t parent;
	int opt, private_mode = 0;

	while ((opt = getopt_long(argc, argv, "s:c:l:L:phV", long_options, NULL)) != -1) {
		switch (opt) {
		case 's':
			socket_opt = optarg;
			break;
		case 'c':
			config_opt = optarg;
			break;
		case 'l':
			level_opt = optarg;
			break;
		case 'L':
			file_opt = optarg;
			break;
		case 'p':
			private_mode = 1;
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
	if (level_opt != NULL) {
		if (mvd_log_parse_level(level_opt, &level) < 0) {
			fprintf(stderr, "memvirtd: --log-level %s: expected debug, info, warn or error\n",
				level_opt);
			return 2;
		}
		/* In force at once, so that even the config's errors are logged at this level. */
		mvd_log_set_level(level);
	}

	if (private_mode) {
		/* The death signal comes only for a parent that dies after prctl: one already gone
		 * has left us with a new parent, and the daemon has nobody to serve. */
		parent = getppid();
		if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0)
			mvd_fatal("prctl(PR_SET_PDEATHSIG): %s", strerror(errno));
		if (getppid() != parent)
			return 0;
	}

	if (config_opt != NULL) {
		if (mvd_config_load(config_opt, &cfg, err, sizeof(err)) < 0) {
			mvd_error("%s", err);
			return 1;
		}
	} else {
		cfg = mvd_config_default();
	}

	l.private_dir = private_mode;
	l.fd = systemd_socket(path, sizeof(path));
	if (l.fd < 0) {
		/* The command line first, then the environment, then the config: the nearest word
		 * about this one run wins. */
		if (socket_opt != NULL) {
			snprintf(path, sizeof(path), "%s", socket_opt);
		} else if ((getenv("MEMVIRT_SOCKET") != NULL && getenv("MEMVIRT_SOCKET")[0] != '\0') ||
			   cfg->socket == NULL) {
			if (mv_socket_path(path, sizeof(path)) < 0)
				mvd_fatal("the socket path is too long");
		} else {
			snprintf(path, sizeof(path), "%s", cfg->socket);
		}
	}
	l.path = path;

	mvd_server_set_overrides(level_opt, file_opt);
	loop = uv_default_loop();
	if (mvd_server_start(loop, &l, cfg) < 0) {
		mvd_config_free(cfg);
		return 1;
	}
	uv_run(loop, UV_RUN_DEFAULT);

	mvd_server_cleanup();
	/* What the stop left open (its unreferenced timer) is closed so that the loop can be. */
	uv_walk(loop, close_walk_cb, NULL);
	uv_run(loop, UV_RUN_DEFAULT);
	uv_loop_close(loop);
	mvd_server_free();
	mvd_info("stopped");
	return 0;
}
