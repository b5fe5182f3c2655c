/* The memvirt command's side of a control session with memvirtd: connect, control hello, one JSON
 * request and its response at a time. Also `memvirt config reload`, the simplest such request. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/internal.h"
#include "daemon/conf.h"
#include "protocol/control.h"
#include "protocol/frame.h"
#include "protocol/paths.h"

int cli_client_socket(const char *explicit_path, char *buf, size_t len)
{
	int n;

	if (explicit_path == NULL)
		return mv_socket_path(buf, len) == 0 ? 0 : -ENAMETOOLONG;
	n = snprintf(buf, len, "%s", explicit_path);
	return n >= 0 && (size_t)n < len ? 0 : -ENAMETOOLONG;
}

const char *cli_socket_choice(const char *explicit_path, const struct mvd_config *cfg)
{
	const char *env = getenv("MEMVIRT_SOCKET");

	/* memvirtd's own order: the command line, the environment, then the configuration. */
	if (explicit_path != NULL)
		return explicit_path;
	if ((env == NULL || *env == '\0') && cfg != NULL && cfg->socket != NULL)
		return cfg->socket;
	return NULL;
}

static int64_t client_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until fd is ready for events or the deadline passes; 0 or a negative errno. */
static int client_wait(int fd, short events, int64_t deadline)
{
	struct pollfd p = {.fd = fd, .events = events};
	int64_t left;
	int r;

	for (;;) {
		left = deadline - client_now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		r = poll(&p, 1, left > 60000 ? 60000 : (int)left);
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return -errno;
	}
}

static int client_write_all(int fd, const uint8_t *p, size_t len, int64_t deadline)
{
	ssize_t n;
	int err;

	while (len > 0) {
		err = client_wait(fd, POLLOUT, deadline);
		if (err < 0)
			return err;
		/* MSG_NOSIGNAL: a daemon that went away is an error to report, not a SIGPIPE. */
		n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* cli_client_open, with the reason for a refusal (-EPERM) in why. The socket, its directory and
 * the peer are checked as the library checks them (paths.h): a daemon that another user could
 * have put there is never sent a byte. */
static int client_open(struct cli_client *c, const char *path, int timeout_ms, char *why, size_t whylen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct mv_msg_control_hello hello = {.pid = (uint32_t)getpid()};
	uint8_t frame[MV_FRAME_HEADER + MV_MSG_CONTROL_HELLO_SIZE];
	int err;

	c->fd = -1;
	snprintf(why, whylen, "%s", strerror(ENOENT));
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	err = mv_socket_trusted(path, why, whylen);
	if (err == -EPERM || err == -ELOOP || err == -ENOTDIR || err == -ENOTSOCK)
		return -EPERM;
	if (err != 0)
		return err;
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -errno;
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		err = -errno;
		goto err_socket;
	}
	if (mv_peer_trusted(c->fd, path, why, whylen) != 0) {
		err = -EPERM;
		goto err_socket;
	}
	mv_frame_header(frame, MV_MSG_CONTROL_HELLO, MV_MSG_CONTROL_HELLO_SIZE);
	mv_control_hello_encode(&hello, frame + MV_FRAME_HEADER);
	err = client_write_all(c->fd, frame, sizeof(frame), client_now_ms() + timeout_ms);
	if (err < 0)
		goto err_socket;
	return 0;

err_socket:
	close(c->fd);
	c->fd = -1;
	return err;
}

int cli_client_open(struct cli_client *c, const char *path, int timeout_ms)
{
	char why[512];

	return client_open(c, path, timeout_ms, why, sizeof(why));
}

void cli_client_close(struct cli_client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

int cli_client_request(struct cli_client *c, const json_t *req, int timeout_ms, json_t **resp,
		       char *err, size_t errlen)
{
	int64_t deadline = client_now_ms() + timeout_ms;
	uint8_t *out, *buf;
	size_t outlen, have = 0, cap = 4096;
	struct mv_frame f;
	ssize_t n, size;
	int r;

	snprintf(err, errlen, "%s", "");
	if (mv_control_encode(MV_MSG_REQUEST, req, &out, &outlen) < 0) {
		snprintf(err, errlen, "request too large for a frame");
		return -EMSGSIZE;
	}
	r = client_write_all(c->fd, out, outlen, deadline);
	free(out);
	if (r < 0) {
		snprintf(err, errlen, "%s", strerror(-r));
		return r;
	}

	buf = xmalloc(cap);
	for (;;) {
		size = mv_frame_decode(buf, have, &f);
		if (size > 0)
			break;
		if (size < 0) {
			snprintf(err, errlen, "bad frame from the daemon: %s", mv_frame_strerror((int)size));
			r = -EPROTO;
			goto err_buf;
		}
		if (have == cap) {
			/* The header is whole by now, and decode refused any length above the
			 * maximum, so this stops at one frame's size. */
			cap *= 2;
			buf = xrealloc(buf, cap);
		}
		r = client_wait(c->fd, POLLIN, deadline);
		if (r < 0) {
			snprintf(err, errlen, "no answer within %d ms", timeout_ms);
			goto err_buf;
		}
		n = recv(c->fd, buf + have, cap - have, MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0) {
			r = -errno;
			snprintf(err, errlen, "%s", strerror(errno));
			goto err_buf;
		}
		if (n == 0) {
			snprintf(err, errlen, "the daemon closed the connection without answering");
			r = -ECONNRESET;
			goto err_buf;
		}
		have += (size_t)n;
	}
	if (f.type != MV_MSG_RESPONSE) {
		snprintf(err, errlen, "the daemon answered with frame type 0x%04x, not a response", f.type);
		r = -EPROTO;
		goto err_buf;
	}
	*resp = mv_control_parse(f.payload, f.length, err, errlen);
	if (*resp == NULL) {
		r = -EPROTO;
		goto err_buf;
	}
	free(buf);
	return 0;

err_buf:
	free(buf);
	return r;
}

int cli_client_call(const char *path, const char *cmd, int timeout_ms, json_t **resp, char *err,
		    size_t errlen)
{
	struct cli_client c;
	json_t *req;
	int r;

	r = client_open(&c, path, timeout_ms, err, errlen);
	if (r < 0) {
		if (r != -EPERM)
			snprintf(err, errlen, "%s", strerror(-r));
		return r;
	}
	req = json_pack("{s:s}", "cmd", cmd);
	if (req == NULL)
		xoom();
	r = cli_client_request(&c, req, timeout_ms, resp, err, errlen);
	json_decref(req);
	cli_client_close(&c);
	return r;
}

const char *cli_client_error(const json_t *resp)
{
	const char *e;

	if (json_is_true(json_object_get(resp, "ok")))
		return NULL;
	e = json_string_value(json_object_get(resp, "error"));
	return e != NULL ? e : "the daemon refused the request without saying why";
}

void cli_client_no_daemon(const char *prog, const char *path, int err, const char *msg)
{
	/* ENOENT and ECONNREFUSED both mean nobody listens there: no socket file, or a stale one. */
	if (err == -ENOENT || err == -ECONNREFUSED)
		fprintf(stderr, "%s: no daemon answers on %s (start one with 'memvirt daemon start')\n",
			prog, path);
	else if (err == -EPERM)
		fprintf(stderr, "%s: refusing the daemon on %s: %s\n", prog, path, msg);
	else
		fprintf(stderr, "%s: cannot talk to the daemon on %s: %s\n", prog, path, msg);
}

void cli_print_json(json_t *root)
{
	char *s = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

	if (s == NULL)
		xoom();
	printf("%s\n", s);
	free(s);
	json_decref(root);
}

void xoom(void)
{
	fprintf(stderr, "memvirt: out of memory\n");
	exit(1);
}

void *xmalloc(size_t n)
{
	void *p = malloc(n != 0 ? n : 1);

	if (p == NULL)
		xoom();
	return p;
}

void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n != 0 ? n : 1);
	if (p == NULL)
		xoom();
	return p;
}

static void reload_usage(FILE *f)
{
	fprintf(f, "usage: memvirt config reload [--socket PATH]\n"
		   "\n"
		   "Makes the running memvirtd read its configuration file again. A file with an error\n"
		   "is refused as a whole and the daemon keeps its current configuration.\n"
		   "\n"
		   "  --socket PATH   the daemon's socket (default: $MEMVIRT_SOCKET or the per-user path)\n"
		   "  --help          print this and exit\n");
}

int cmd_config_reload(int argc, char **argv)
{
	static const struct option opts[] = {
		{"socket", required_argument, NULL, 's'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *sock = NULL, *e;
	char path[256], err[256];
	json_t *resp;
	int c, r;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			sock = optarg;
			break;
		case 'h':
			reload_usage(stdout);
			return 0;
		default:
			cli_option_error("memvirt config reload", c, argv, opts);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "memvirt config reload: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (cli_client_socket(sock, path, sizeof(path)) < 0) {
		fprintf(stderr, "memvirt config reload: socket path too long\n");
		return 2;
	}
	r = cli_client_call(path, "config.reload", CLI_CLIENT_TIMEOUT_MS, &resp, err, sizeof(err));
	if (r < 0) {
		cli_client_no_daemon("memvirt config reload", path, r, err);
		return 1;
	}
	e = cli_client_error(resp);
	if (e != NULL) {
		fprintf(stderr, "memvirt config reload: %s\n", e);
		json_decref(resp);
		return 1;
	}
	printf("memvirtd on %s reloaded its configuration\n", path);
	json_decref(resp);
	return 0;
}

int cli_client_wait(const char *path, int timeout_ms, pid_t child, int *wstatus)
{
	int64_t deadline = client_now_ms() + timeout_ms;
	struct timespec pause = {.tv_sec = 0, .tv_nsec = 20 * 1000000};
	char err[256];
	json_t *resp;
	pid_t w;

	for (;;) {
		/* A status request, not just a connect: the daemon may bind before it serves. */
		if (cli_client_call(path, "status", 1000, &resp, err, sizeof(err)) == 0) {
			json_decref(resp);
			return 0;
		}
		if (child > 0) {
			w = waitpid(child, wstatus, WNOHANG);
			if (w == child)
				return -ECHILD;
		}
		if (client_now_ms() >= deadline)
			return -ETIMEDOUT;
		nanosleep(&pause, NULL);
	}
}
