/* mvsock: a small client of memvirtd's socket for the end-to-end scripts: raw bytes, a library
 * session, a control request, a socket handed over as systemd does, and flat JSON for the shell.
 *
 *   mvsock SOCKET raw [--eof] [--wait SECONDS]
 *       Sends standard input's bytes, then waits up to SECONDS (default 5) for the daemon to close
 *       the connection. --eof ends our side of the stream after the bytes (shutdown), as a peer
 *       that goes away would. Prints "received N" when the daemon sent N > 0 bytes, then "closed"
 *       and exits 0 when the daemon closed the connection, or "open" and exits 1 when it was still
 *       open at the end of the wait; 2 for any other failure.
 *   mvsock SOCKET hello [--budget N] [--total N] [--weight N] [--job NAME] [--uuid TEXT]
 *       Opens a library session and stays in it, printing one line per frame the daemon sends
 *       ("welcome SESSION GRANT", "grant GRANT", "shutdown"), until standard input ends. Each
 *       line of standard input is an action: "events N" sends N launch events, "counters
 *       PAGE_OUTS PAGE_INS FAULT_INS" a counter snapshot, "bye" a BYE. Prints "closed" and exits
 *       0 if the daemon closes the session first; 2 for any other failure.
 *   mvsock SOCKET request JSON
 *       Sends one control request and prints the response's JSON on one line. Exits 0 when it
 *       says "ok": true, 1 when it says false, 2 when no response came.
 *   mvsock SOCKET serve PROGRAM [ARG...]
 *       Binds and listens on SOCKET (mode 0666), then runs PROGRAM with the socket as file
 *       descriptor 3 and LISTEN_PID and LISTEN_FDS set, as systemd's socket activation does.
 *   mvsock flat
 *       Reads one JSON value on standard input and prints a line "PATH VALUE" for each scalar
 *       in it, PATH being the keys and array indices from the top joined by dots. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "protocol/control.h"
#include "protocol/frame.h"
#include "protocol/proto.h"

/* The fd systemd hands its first socket over as (sd_listen_fds(3)). */
#define MVSOCK_LISTEN_FD 3

static const char *mvsock_prog = "mvsock";

static void usage(void)
{
	fprintf(stderr,
		"usage: mvsock SOCKET raw [--eof] [--wait SECONDS]\n"
		"       mvsock SOCKET hello [--budget N] [--total N] [--weight N] [--job NAME] [--uuid TEXT]\n"
		"       mvsock SOCKET request JSON\n"
		"       mvsock SOCKET serve PROGRAM [ARG...]\n"
		"       mvsock flat\n");
	exit(2);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int fill_addr(const char *path, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa->sun_path))
		return -ENAMETOOLONG;
	strcpy(sa->sun_path, path);
	return 0;
}

/* A connected socket, or a negative errno. */
static int dial(const char *path)
{
	struct sockaddr_un sa;
	int fd, r;

	r = fill_addr(path, &sa);
	if (r < 0)
		return r;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

/* 0, or a negative errno: a peer that went away is an error, never a SIGPIPE. */
static int send_all(int fd, const uint8_t *p, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int send_frame(int fd, uint16_t type, const uint8_t *payload, size_t len)
{
	uint8_t head[MV_FRAME_HEADER];
	int r;

	mv_frame_header(head, type, (uint32_t)len);
	r = send_all(fd, head, sizeof(head));
	if (r == 0 && len > 0)
		r = send_all(fd, payload, len);
	return r;
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;

	errno = 0;
	*out = strtoull(s, &end, 0);
	return errno == 0 && end != s && *end == '\0' ? 0 : -1;
}

/* ---- raw ---- */

static int cmd_raw(const char *path, int argc, char **argv)
{
	uint8_t buf[65536];
	int64_t deadline;
	size_t got = 0;
	int eof = 0, wait_s = 5, fd, i, r;
	ssize_t n;

	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--eof") == 0)
			eof = 1;
		else if (strcmp(argv[i], "--wait") == 0 && i + 1 < argc)
			wait_s = atoi(argv[++i]);
		else
			usage();
	}
	fd = dial(path);
	if (fd < 0) {
		fprintf(stderr, "%s: connect %s: %s\n", mvsock_prog, path, strerror(-fd));
		return 2;
	}
	/* A daemon that closes while we still write has answered: the send error says so. */
	for (;;) {
		n = read(0, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		r = send_all(fd, buf, (size_t)n);
		if (r == -EPIPE || r == -ECONNRESET) {
			printf("closed\n");
			close(fd);
			return 0;
		}
		if (r < 0) {
			fprintf(stderr, "%s: send: %s\n", mvsock_prog, strerror(-r));
			close(fd);
			return 2;
		}
	}
	if (eof)
		shutdown(fd, SHUT_WR);
	deadline = now_ms() + (int64_t)wait_s * 1000;
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int64_t left = deadline - now_ms();

		if (left <= 0) {
			if (got > 0)
				printf("received %zu\n", got);
			printf("open\n");
			close(fd);
			return 1;
		}
		r = poll(&p, 1, (int)left);
		if (r < 0 && errno != EINTR) {
			fprintf(stderr, "%s: poll: %s\n", mvsock_prog, strerror(errno));
			close(fd);
			return 2;
		}
		if (r <= 0)
			continue;
		/* What the daemon says is counted, not decoded. */
		n = recv(fd, buf, sizeof(buf), 0);
		if (n > 0)
			got += (size_t)n;
		if (n == 0 || (n < 0 && errno == ECONNRESET)) {
			if (got > 0)
				printf("received %zu\n", got);
			printf("closed\n");
			close(fd);
			return 0;
		}
		if (n < 0 && errno != EINTR) {
			fprintf(stderr, "%s: recv: %s\n", mvsock_prog, strerror(errno));
			close(fd);
			return 2;
		}
	}
}

/* ---- hello ---- */

/* Prints each whole frame in buf[0, *len) and keeps the rest. Returns 0, or -1 on a frame that
 * is not one a daemon sends to a library. */
static int hello_frames(uint8_t *buf, size_t *len)
{
	struct mv_msg_welcome w;
	struct mv_msg_grant g;
	struct mv_frame f;
	size_t at = 0;
	ssize_t n;

	for (;;) {
		n = mv_frame_decode(buf + at, *len - at, &f);
		if (n == MV_FRAME_NEED_MORE)
			break;
		if (n < 0) {
			fprintf(stderr, "%s: bad frame from the daemon: %s\n", mvsock_prog,
				mv_frame_strerror((int)n));
			return -1;
		}
		at += (size_t)n;
		if (f.type == MV_MSG_WELCOME && mv_welcome_decode(f.payload, f.length, &w) == 0) {
			printf("welcome %" PRIu64 " %" PRIu64 "\n", w.session, w.grant);
		} else if (f.type == MV_MSG_GRANT && mv_grant_decode(f.payload, f.length, &g) == 0) {
			printf("grant %" PRIu64 "\n", g.grant);
		} else if (f.type == MV_MSG_SHUTDOWN) {
			printf("shutdown\n");
		} else {
			fprintf(stderr, "%s: unexpected frame type 0x%04x (%u bytes)\n", mvsock_prog,
				f.type, f.length);
			return -1;
		}
		fflush(stdout);
	}
	memmove(buf, buf + at, *len - at);
	*len -= at;
	return 0;
}

/* Runs one line of standard input. Returns 0, or a negative errno from the socket. */
static int hello_action(int fd, char *line)
{
	static uint64_t t;
	uint8_t payload[MV_MSG_COUNTERS_SIZE];
	struct mv_msg_counters k;
	struct mv_event *ev;
	unsigned long long a, b, c;
	uint8_t *p;
	size_t len;
	uint32_t n, i;
	int r;

	if (sscanf(line, "events %u", &n) == 1) {
		if (n > MV_EVENTS_MAX)
			n = MV_EVENTS_MAX;
		ev = calloc(n + 1, sizeof(*ev));
		p = malloc(MV_MSG_EVENTS_HEAD + (size_t)n * MV_EVENT_SIZE);
		if (ev == NULL || p == NULL) {
			free(ev);
			free(p);
			return -ENOMEM;
		}
		for (i = 0; i < n; i++) {
			ev[i].time_ns = ++t;
			ev[i].kind = MV_EV_LAUNCH;
			ev[i].arg = 1;
		}
		len = mv_events_encode(ev, n, 0, p);
		r = send_frame(fd, MV_MSG_EVENTS, p, len);
		free(ev);
		free(p);
		return r;
	}
	if (sscanf(line, "counters %llu %llu %llu", &a, &b, &c) == 3) {
		memset(&k, 0, sizeof(k));
		k.page_outs = a;
		k.page_ins = b;
		k.fault_ins = c;
		len = mv_counters_encode(&k, payload);
		return send_frame(fd, MV_MSG_COUNTERS, payload, len);
	}
	if (strncmp(line, "bye", 3) == 0)
		return send_frame(fd, MV_MSG_BYE, NULL, 0);
	fprintf(stderr, "%s: unknown action: %s", mvsock_prog, line);
	return 0;
}

static int cmd_hello(const char *path, int argc, char **argv)
{
	struct mv_msg_hello h;
	uint8_t payload[MV_MSG_HELLO_SIZE];
	uint8_t *rx;
	size_t rxlen = 0, inlen = 0;
	char in[4096];
	const char *uuid = "simcuda-device-0";
	uint64_t v;
	int fd, i, r, status = 2;
	ssize_t n;

	memset(&h, 0, sizeof(h));
	h.pid = (uint32_t)getpid();
	h.device_total = UINT64_C(1) << 30;
	h.budget = UINT64_C(1) << 30;
	snprintf(h.job, sizeof(h.job), "mvsock");
	for (i = 0; i < argc; i++) {
		if (i + 1 >= argc)
			usage();
		if (strcmp(argv[i], "--budget") == 0 && parse_u64(argv[i + 1], &v) == 0)
			h.budget = v;
		else if (strcmp(argv[i], "--total") == 0 && parse_u64(argv[i + 1], &v) == 0)
			h.device_total = v;
		else if (strcmp(argv[i], "--weight") == 0 && parse_u64(argv[i + 1], &v) == 0)
			h.weight = (uint32_t)v;
		else if (strcmp(argv[i], "--job") == 0)
			snprintf(h.job, sizeof(h.job), "%s", argv[i + 1]);
		else if (strcmp(argv[i], "--uuid") == 0)
			uuid = argv[i + 1];
		else
			usage();
		i++;
	}
	/* The UUID is 16 bytes of the given text, NUL-padded: simcuda's is "simcuda-device-0". */
	strncpy((char *)h.uuid, uuid, sizeof(h.uuid));

	rx = malloc(MV_FRAME_HEADER + MV_FRAME_MAX);
	if (rx == NULL)
		return 2;
	fd = dial(path);
	if (fd < 0) {
		fprintf(stderr, "%s: connect %s: %s\n", mvsock_prog, path, strerror(-fd));
		goto err_rx;
	}
	r = send_frame(fd, MV_MSG_HELLO, payload, mv_hello_encode(&h, payload));
	if (r < 0) {
		fprintf(stderr, "%s: HELLO: %s\n", mvsock_prog, strerror(-r));
		goto err_fd;
	}
	for (;;) {
		struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = 0, .events = POLLIN}};

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "%s: poll: %s\n", mvsock_prog, strerror(errno));
			goto err_fd;
		}
		if (p[0].revents != 0) {
			n = recv(fd, rx + rxlen, MV_FRAME_HEADER + MV_FRAME_MAX - rxlen, 0);
			if (n == 0 || (n < 0 && errno == ECONNRESET)) {
				printf("closed\n");
				status = 0;
				goto err_fd;
			}
			if (n < 0 && errno != EINTR) {
				fprintf(stderr, "%s: recv: %s\n", mvsock_prog, strerror(errno));
				goto err_fd;
			}
			if (n > 0) {
				rxlen += (size_t)n;
				if (hello_frames(rx, &rxlen) < 0)
					goto err_fd;
			}
		}
		if (p[1].revents != 0) {
			n = read(0, in + inlen, sizeof(in) - 1 - inlen);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				status = 0;
				goto err_fd;
			}
			inlen += (size_t)n;
			in[inlen] = '\0';
			/* Each whole line is one action; a line longer than the buffer is dropped. */
			for (char *nl; (nl = strchr(in, '\n')) != NULL;) {
				char line[sizeof(in)];
				size_t l = (size_t)(nl - in) + 1;

				memcpy(line, in, l);
				line[l] = '\0';
				memmove(in, in + l, inlen - l + 1);
				inlen -= l;
				r = hello_action(fd, line);
				if (r < 0) {
					fprintf(stderr, "%s: send: %s\n", mvsock_prog, strerror(-r));
					goto err_fd;
				}
			}
			if (inlen == sizeof(in) - 1)
				inlen = 0;
		}
	}

err_fd:
	fflush(stdout);
	close(fd);
err_rx:
	free(rx);
	return status;
}

/* ---- request ---- */

static int cmd_request(const char *path, const char *text)
{
	struct mv_msg_control_hello ctl = {.pid = (uint32_t)getpid()};
	uint8_t payload[MV_MSG_CONTROL_HELLO_SIZE];
	uint8_t *rx = NULL, *out;
	size_t rxlen = 0, outlen;
	struct mv_frame f;
	json_error_t jerr;
	json_t *req, *resp;
	char err[256];
	int64_t deadline;
	ssize_t n;
	char *dump;
	int fd, r, status = 2;

	req = json_loads(text, 0, &jerr);
	if (req == NULL) {
		fprintf(stderr, "%s: the request is not JSON: %s\n", mvsock_prog, jerr.text);
		return 2;
	}
	fd = dial(path);
	if (fd < 0) {
		fprintf(stderr, "%s: connect %s: %s\n", mvsock_prog, path, strerror(-fd));
		goto err_req;
	}
	if (mv_control_encode(MV_MSG_REQUEST, req, &out, &outlen) < 0)
		goto err_fd;
	r = send_frame(fd, MV_MSG_CONTROL_HELLO, payload, mv_control_hello_encode(&ctl, payload));
	if (r == 0)
		r = send_all(fd, out, outlen);
	free(out);
	if (r < 0) {
		fprintf(stderr, "%s: send: %s\n", mvsock_prog, strerror(-r));
		goto err_fd;
	}
	rx = malloc(MV_FRAME_HEADER + MV_FRAME_MAX);
	if (rx == NULL)
		goto err_fd;
	deadline = now_ms() + 5000;
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int64_t left = deadline - now_ms();

		n = mv_frame_decode(rx, rxlen, &f);
		if (n > 0)
			break;
		if (n < 0) {
			fprintf(stderr, "%s: bad frame: %s\n", mvsock_prog, mv_frame_strerror((int)n));
			goto err_fd;
		}
		if (left <= 0) {
			fprintf(stderr, "%s: no response within 5 s\n", mvsock_prog);
			goto err_fd;
		}
		if (poll(&p, 1, (int)left) <= 0)
			continue;
		n = recv(fd, rx + rxlen, MV_FRAME_HEADER + MV_FRAME_MAX - rxlen, 0);
		if (n <= 0) {
			fprintf(stderr, "%s: the daemon closed the connection without a response\n",
				mvsock_prog);
			goto err_fd;
		}
		rxlen += (size_t)n;
	}
	if (f.type != MV_MSG_RESPONSE) {
		fprintf(stderr, "%s: frame type 0x%04x instead of a response\n", mvsock_prog, f.type);
		goto err_fd;
	}
	resp = mv_control_parse(f.payload, f.length, err, sizeof(err));
	if (resp == NULL) {
		fprintf(stderr, "%s: bad response: %s\n", mvsock_prog, err);
		goto err_fd;
	}
	dump = json_dumps(resp, JSON_COMPACT);
	printf("%s\n", dump != NULL ? dump : "");
	free(dump);
	status = json_is_true(json_object_get(resp, "ok")) ? 0 : 1;
	json_decref(resp);

err_fd:
	free(rx);
	close(fd);
err_req:
	json_decref(req);
	return status;
}

/* ---- serve ---- */

static int cmd_serve(const char *path, char **argv)
{
	struct sockaddr_un sa;
	char pid[32];
	int fd;

	if (argv[0] == NULL)
		usage();
	if (fill_addr(path, &sa) < 0) {
		fprintf(stderr, "%s: %s: path too long\n", mvsock_prog, path);
		return 2;
	}
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0)
		goto err;
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || chmod(path, 0666) < 0 ||
	    listen(fd, 128) < 0)
		goto err;
	if (fd != MVSOCK_LISTEN_FD) {
		if (dup2(fd, MVSOCK_LISTEN_FD) < 0)
			goto err;
		close(fd);
	}
	/* exec keeps the pid: the program is the process LISTEN_PID names. */
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	setenv("LISTEN_PID", pid, 1);
	setenv("LISTEN_FDS", "1", 1);
	execvp(argv[0], argv);
err:
	fprintf(stderr, "%s: serve %s: %s\n", mvsock_prog, path, strerror(errno));
	return 2;
}

/* ---- flat ---- */

static void flat_print(const char *prefix, json_t *v)
{
	char path[1024];
	const char *key;
	json_t *item;
	size_t i;

	switch (json_typeof(v)) {
	case JSON_OBJECT:
		json_object_foreach(v, key, item) {
			snprintf(path, sizeof(path), "%s%s%s", prefix, *prefix != '\0' ? "." : "", key);
			flat_print(path, item);
		}
		break;
	case JSON_ARRAY:
		json_array_foreach(v, i, item) {
			snprintf(path, sizeof(path), "%s%s%zu", prefix, *prefix != '\0' ? "." : "", i);
			flat_print(path, item);
		}
		break;
	case JSON_STRING:
		printf("%s %s\n", prefix, json_string_value(v));
		break;
	case JSON_INTEGER:
		printf("%s %" JSON_INTEGER_FORMAT "\n", prefix, json_integer_value(v));
		break;
	case JSON_REAL:
		printf("%s %.17g\n", prefix, json_real_value(v));
		break;
	case JSON_TRUE:
		printf("%s true\n", prefix);
		break;
	case JSON_FALSE:
		printf("%s false\n", prefix);
		break;
	case JSON_NULL:
		printf("%s null\n", prefix);
		break;
	}
}

static int cmd_flat(void)
{
	json_error_t jerr;
	json_t *v;

	v = json_loadf(stdin, JSON_DECODE_ANY, &jerr);
	if (v == NULL) {
		fprintf(stderr, "%s: not JSON: line %d: %s\n", mvsock_prog, jerr.line, jerr.text);
		return 2;
	}
	flat_print("", v);
	json_decref(v);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "flat") == 0)
		return cmd_flat();
	if (argc < 3)
		usage();
	if (strcmp(argv[2], "raw") == 0)
		return cmd_raw(argv[1], argc - 3, argv + 3);
	if (strcmp(argv[2], "hello") == 0)
		return cmd_hello(argv[1], argc - 3, argv + 3);
	if (strcmp(argv[2], "request") == 0 && argc == 4)
		return cmd_request(argv[1], argv[3]);
	if (strcmp(argv[2], "serve") == 0)
		return cmd_serve(argv[1], argv + 3);
	usage();
	return 2;
}
