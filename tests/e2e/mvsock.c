/* mvsock: a small client of memvirtd's socket for the end-to-end scripts: raw bytes, a library
 * session, a control request, a socket handed over as systemd does, and flat JSON for the shell.
 *
 *   mvsock SOCKET raw [--eof] [--wait SECONDS] [--answered]
 *       Sends standard input's bytes, then waits up to SECONDS (default 5) for the daemon to close
 *       the connection. --eof ends our side of the stream after the bytes (shutdown), as a peer
 *       that goes away would. Prints "received N" when the daemon sent N > 0 bytes, then "closed"
 *       and exits 0 when the daemon closed the connection, or "open" and exits 1 when it was still
 *       open at the end of the wait; 2 for any other failure.
 *   mvsock SOCKET hello [--budget N] [--total N] [--weight N] [--host-want N] [--job NAME] [--uuid TEXT]
 *       Opens a library session and stays in it (on the device "mvsock-device-0", which no driver
 *       lists, unless --uuid names one), printing one line per frame the daemon sends
 *       ("welcome SESSION GRANT", "grant GRANT", each ending " host HOST_GRANT" while the daemon
 *       divides a node host limit, "shutdown", "launches 0|1" (whether the daemon wants launch
 *       events), and for a plan "plan ID FINGERPRINT
 *       NLAUNCH NOPS" followed by NOPS lines "plan-op out|in AT NEED BIND_LAUNCH BIND_INDEX
 *       SIZE", AT and NEED being "-" for none), until standard input ends. Each line of
 *       standard input is an action: "events N" sends N launch events, "counters PAGE_OUTS
 *       PAGE_INS FAULT_INS" a counter snapshot, "host-pool BYTES" one whose host pool holds
 *       BYTES, "bye" a BYE. Crafted event sequences, one EVENTS
 *       frame each: "alloc ADDR SIZE [SITE]", "free ADDR", "launch FUNC [ADDR...]" (a LAUNCH
 *       and one REF per ADDR; each launch advances the events' clock by a millisecond, other
 *       events by a microsecond), "sync" (an event of the retired kind 6), "mark", "gap N" (an
 *       empty batch that says N events were lost). "expect" prints "expect FINGERPRINT NLAUNCH": the iteration that policies/iter.c
 *       finds in the crafted events sent so far, or "expect none". Prints "closed" and exits 0 if
 *       the daemon closes the session first; 2 for any other failure.
 *   mvsock SOCKET request JSON
 *       Sends one control request and prints the response's JSON on one line. Exits 0 when it
 *       says "ok": true, 1 when it says false, 2 when no response came.
 *   mvsock SOCKET flood MODE N [--wait SECONDS] [--job NAME] [--total N] [--budget N]
 *       Opens N connections, as a hostile peer would, and keeps them until the daemon has closed
 *       them all or SECONDS (default 60) have passed. MODE idle sends nothing; slow sends one
 *       byte a second on each, of a control hello and then of a 1 MiB request never finished;
 *       partial sends on each the header of a 1 MiB frame and all of it but its last byte;
 *       hello opens a library session on each (options as for hello). Prints "connected C
 *       failed F" once connected (F connects failed), for hello "answered W S" once each has
 *       been welcomed (W) or sent SHUTDOWN (S), and at the end "closed X open Y" (X closed by
 *       the daemon); exits 0 when all were closed, 1 when some were still open.
 *   mvsock SOCKET serve PROGRAM [ARG...]
 *       Binds and listens on SOCKET (mode 0666), then runs PROGRAM with the socket as file
 *       descriptor 3 and LISTEN_PID and LISTEN_FDS set, as systemd's socket activation does.
 *   mvsock SOCKET fake GRANT
 *       A daemon that is not memvirtd: binds and listens on SOCKET (mode 0666) and prints
 *       "listening"; then, one connection at a time, answers a library session's HELLO with a
 *       WELCOME granting GRANT bytes and reads whatever follows until the peer goes. Prints
 *       "hello JOB" for each HELLO and "control" for each control hello. Runs until killed.
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
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "policies/policy.h"
#include "protocol/control.h"
#include "protocol/frame.h"
#include "protocol/proto.h"

/* The fd systemd hands its first socket over as (sd_listen_fds(3)). */
#define MVSOCK_LISTEN_FD 3

static const char *mvsock_prog = "mvsock";

static void usage(void)
{
	fprintf(stderr,
		"usage: mvsock SOCKET raw [--eof] [--wait SECONDS] [--answered]\n"
		"       mvsock SOCKET hello [--budget N] [--total N] [--weight N] [--host-want N] [--job NAME]\n"
		"                         [--uuid TEXT]\n"
		"       mvsock SOCKET request JSON\n"
		"       mvsock SOCKET flood idle|slow|partial|hello N [--wait S] [hello options]\n"
		"       mvsock SOCKET serve PROGRAM [ARG...]\n"
		"       mvsock SOCKET fake GRANT\n"
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
	int eof = 0, answered = 0, wait_s = 5, fd, i, r;
	ssize_t n;

	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--eof") == 0)
			eof = 1;
		else if (strcmp(argv[i], "--answered") == 0)
			answered = 1;
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
		/* --answered: the first bytes end the wait, but for one more second in which a close
		 * would still be seen. */
		if (n > 0 && got == 0 && answered && deadline > now_ms() + 1000)
			deadline = now_ms() + 1000;
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

/* Ends a welcome or grant line: " host H" when the daemon divides a node host limit. */
static void host_grant_print(uint64_t host_grant)
{
	if (host_grant != MV_HOST_GRANT_NONE)
		printf(" host %" PRIu64, host_grant);
	printf("\n");
}

/* Prints each whole frame in buf[0, *len) and keeps the rest. Returns 0, or -1 on a frame that
 * is not one a daemon sends to a library. */
static int hello_frames(uint8_t *buf, size_t *len)
{
	struct mv_msg_welcome w;
	struct mv_msg_grant g;
	struct mv_msg_launches lm;
	struct mv_msg_plan plan;
	struct mv_plan_op_wire op;
	struct mv_frame f;
	size_t at = 0;
	ssize_t n;
	uint32_t i;
	char a[16], b[16];

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
			printf("welcome %" PRIu64 " %" PRIu64, w.session, w.grant);
			host_grant_print(w.host_grant);
		} else if (f.type == MV_MSG_GRANT && mv_grant_decode(f.payload, f.length, &g) == 0) {
			printf("grant %" PRIu64, g.grant);
			host_grant_print(g.host_grant);
		} else if (f.type == MV_MSG_LAUNCHES && mv_launches_decode(f.payload, f.length, &lm) == 0) {
			printf("launches %u\n", lm.send);
		} else if (f.type == MV_MSG_SHUTDOWN) {
			printf("shutdown\n");
		} else if (f.type == MV_MSG_PLAN && mv_plan_decode(f.payload, f.length, &plan) == 0) {
			printf("plan %" PRIu64 " %016" PRIx64 " %u %u\n", plan.plan_id, plan.fingerprint,
			       plan.nlaunch, plan.nops);
			for (i = 0; i < plan.nops; i++) {
				if (mv_plan_op_decode(f.payload + MV_MSG_PLAN_HEAD + (size_t)i * MV_PLAN_OP_SIZE,
						      plan.nlaunch, &op) < 0) {
					fprintf(stderr, "%s: PLAN op %u is malformed\n", mvsock_prog, i);
					return -1;
				}
				snprintf(a, sizeof(a), "%u", op.at);
				snprintf(b, sizeof(b), "%u", op.need);
				printf("plan-op %s %s %s %u %u %" PRIu64 "\n", op.kind == 1 ? "out" : "in",
				       op.at == MV_PLAN_OP_BEFORE_FIRST ? "-" : a,
				       op.need == MV_PLAN_OP_BEFORE_FIRST ? "-" : b, op.bind_launch,
				       op.bind_index, op.size);
			}
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

/* The crafted events sent so far, as a trace, for "expect". Buffers by address, functions by the
 * library's number, both looked up linearly: the scripts send a few hundred. */
static struct mv_trace *mirror;
static uint64_t mirror_time;
static uint64_t *mirror_addr;
static uint32_t *mirror_buf, mirror_nlive;
static uint64_t *mirror_fnum;
static uint32_t mirror_nfuncs;

static int mirror_find(uint64_t addr)
{
	uint32_t i;

	for (i = 0; i < mirror_nlive; i++) {
		if (mirror_addr[i] == addr)
			return (int)i;
	}
	return -1;
}

/* Sends events ev[0, n) as one EVENTS frame saying dropped were lost. */
static int send_events(int fd, const struct mv_event *ev, uint32_t n, uint32_t dropped)
{
	uint8_t *p = malloc(MV_MSG_EVENTS_HEAD + (size_t)n * MV_EVENT_SIZE);
	size_t len;
	int r;

	if (p == NULL)
		return -ENOMEM;
	len = mv_events_encode(ev, n, dropped, p);
	r = send_frame(fd, MV_MSG_EVENTS, p, len);
	free(p);
	return r;
}

/* One crafted action; returns 1 when line is none, else 0 or a negative errno. */
static int crafted_action(int fd, const char *line)
{
	struct mv_event ev[65];
	unsigned long long a, b, c = 0;
	uint32_t refs[64], n = 0, func, buf;
	char name[32];
	const char *p;
	int k, used;

	if (mirror == NULL) {
		mirror = mv_trace_new(0, 0);
		if (mirror == NULL)
			return -ENOMEM;
	}
	memset(ev, 0, sizeof(ev));
	mirror_time += 1000;
	if (sscanf(line, "alloc %lli %lli %lli", &a, &b, &c) >= 2) {
		ev[0].kind = MV_EV_ALLOC;
		ev[0].addr = a;
		ev[0].size = b;
		ev[0].arg = c;
		ev[0].time_ns = mirror_time;
		if (mirror_find(a) >= 0 || mv_trace_add_alloc(mirror, b, c, 0, mirror_time, &buf) < 0)
			return -EINVAL;
		mirror_addr = realloc(mirror_addr, (mirror_nlive + 1) * sizeof(*mirror_addr));
		mirror_buf = realloc(mirror_buf, (mirror_nlive + 1) * sizeof(*mirror_buf));
		if (mirror_addr == NULL || mirror_buf == NULL)
			return -ENOMEM;
		mirror_addr[mirror_nlive] = a;
		mirror_buf[mirror_nlive++] = buf;
		return send_events(fd, ev, 1, 0);
	}
	if (sscanf(line, "free %lli", &a) == 1) {
		ev[0].kind = MV_EV_FREE;
		ev[0].addr = a;
		ev[0].time_ns = mirror_time;
		k = mirror_find(a);
		if (k < 0 || mv_trace_add_free(mirror, mirror_buf[k], mirror_time) < 0)
			return -EINVAL;
		mirror_addr[k] = mirror_addr[--mirror_nlive];
		mirror_buf[k] = mirror_buf[mirror_nlive];
		return send_events(fd, ev, 1, 0);
	}
	if (sscanf(line, "launch %lli%n", &a, &used) == 1) {
		mirror_time += 1000000;
		for (p = line + used; n < 64 && sscanf(p, " %lli%n", &b, &used) == 1; p += used) {
			k = mirror_find(b);
			if (k < 0)
				return -EINVAL;
			refs[n] = mirror_buf[k];
			ev[1 + n].kind = MV_EV_REF;
			ev[1 + n].addr = b;
			ev[1 + n].time_ns = mirror_time;
			n++;
		}
		ev[0].kind = MV_EV_LAUNCH;
		ev[0].addr = a;
		ev[0].arg = n;
		ev[0].time_ns = mirror_time;
		for (func = 0; func < mirror_nfuncs && mirror_fnum[func] != a; func++)
			;
		if (func == mirror_nfuncs) {
			snprintf(name, sizeof(name), "f%llu", a);
			mirror_fnum = realloc(mirror_fnum, (mirror_nfuncs + 1) * sizeof(*mirror_fnum));
			if (mirror_fnum == NULL || mv_trace_add_func(mirror, name, &func) < 0)
				return -ENOMEM;
			mirror_fnum[mirror_nfuncs++] = a;
		}
		if (mv_trace_add_launch(mirror, func, 0, mirror_time, 0, refs, n) < 0)
			return -EINVAL;
		return send_events(fd, ev, n + 1, 0);
	}
	if (strncmp(line, "sync", 4) == 0) {
		/* Kind 6, once SYNC, is retired: the daemon ignores it as any kind it does not know. */
		ev[0].kind = 6;
		ev[0].time_ns = mirror_time;
		return send_events(fd, ev, 1, 0);
	}
	if (strncmp(line, "mark", 4) == 0) {
		ev[0].kind = MV_EV_MARK;
		ev[0].time_ns = mirror_time;
		if (mv_trace_add_mark(mirror, mirror_time) < 0)
			return -EINVAL;
		return send_events(fd, ev, 1, 0);
	}
	if (sscanf(line, "gap %llu", &a) == 1)
		return send_events(fd, ev, 0, (uint32_t)a);
	if (strncmp(line, "expect", 6) == 0) {
		struct mv_iter *it;
		uint32_t first, nops;

		if (mv_iter_detect(mirror, &first, &nops) < 0 ||
		    mv_iter_build(mirror, first, nops, 1000, &it) < 0) {
			printf("expect none\n");
		} else {
			printf("expect %016" PRIx64 " %u\n", it->fingerprint, it->nlaunch);
			mv_iter_free(it);
		}
		fflush(stdout);
		return 0;
	}
	return 1;
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
	memset(&k, 0, sizeof(k));
	if (sscanf(line, "host-pool %llu", &a) == 1) {
		k.host_pool_bytes = a;
		len = mv_counters_encode(&k, payload);
		return send_frame(fd, MV_MSG_COUNTERS, payload, len);
	}
	if (sscanf(line, "counters %llu %llu %llu", &a, &b, &c) == 3) {
		k.page_outs = a;
		k.page_ins = b;
		k.fault_ins = c;
		len = mv_counters_encode(&k, payload);
		return send_frame(fd, MV_MSG_COUNTERS, payload, len);
	}
	if (strncmp(line, "bye", 3) == 0)
		return send_frame(fd, MV_MSG_BYE, NULL, 0);
	r = crafted_action(fd, line);
	if (r == -EINVAL) {
		fprintf(stderr, "%s: a crafted event the trace refuses (an unknown address?): %s",
			mvsock_prog, line);
		return 0;
	}
	if (r <= 0)
		return r;
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
	const char *uuid = "mvsock-device-0";
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
		else if (strcmp(argv[i], "--host-want") == 0 && parse_u64(argv[i + 1], &v) == 0)
			h.host_want = v;
		else if (strcmp(argv[i], "--job") == 0)
			snprintf(h.job, sizeof(h.job), "%s", argv[i + 1]);
		else if (strcmp(argv[i], "--uuid") == 0)
			uuid = argv[i + 1];
		else
			usage();
		i++;
	}
	/* The UUID is 16 bytes of the given text, NUL-padded: simcuda's is "simcuda-device-0". The
	 * default is a device no driver lists, so that memvirtd takes the total claimed here. */
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

/* ---- flood ---- */

/* One connection of a flood: what is left to send, what has come back. */
struct flood_conn {
	int fd;          /* -1 once the daemon closed it, -2 when the connect failed */
	size_t sent;     /* bytes of the mode's stream sent */
	uint8_t rx[256]; /* frames from the daemon not yet whole */
	size_t rxlen;
	int answered;    /* hello: welcomed or sent SHUTDOWN */
};

enum flood_mode { FLOOD_IDLE, FLOOD_SLOW, FLOOD_PARTIAL, FLOOD_HELLO };

/* The stream a slow or partial connection sends, of which it has sent c->sent bytes: a frame
 * header and payload that is never whole. Returns how many of its next bytes are in out. */
static size_t flood_stream(enum flood_mode mode, size_t at, uint8_t *out, size_t len)
{
	uint8_t head[MV_FRAME_HEADER + MV_MSG_CONTROL_HELLO_SIZE + MV_FRAME_HEADER];
	size_t total, nhead, n;

	memset(head, 0, sizeof(head));
	if (mode == FLOOD_SLOW) {
		mv_frame_header(head, MV_MSG_CONTROL_HELLO, MV_MSG_CONTROL_HELLO_SIZE);
		mv_frame_header(head + MV_FRAME_HEADER + MV_MSG_CONTROL_HELLO_SIZE, MV_MSG_REQUEST,
				MV_FRAME_MAX);
		nhead = sizeof(head);
		total = nhead + MV_FRAME_MAX - 1;
	} else {
		mv_frame_header(head, MV_MSG_REQUEST, MV_FRAME_MAX);
		nhead = MV_FRAME_HEADER;
		total = nhead + MV_FRAME_MAX - 1;
	}
	if (at >= total)
		return 0;
	n = total - at < len ? total - at : len;
	for (size_t i = 0; i < n; i++)
		out[i] = at + i < nhead ? head[at + i] : ' ';
	return n;
}

/* Reads what the daemon sent c; for hello counts WELCOME and SHUTDOWN. Closes c at its end. */
static void flood_read(struct flood_conn *c, unsigned *welcomed, unsigned *shut)
{
	struct mv_frame f;
	ssize_t n = recv(c->fd, c->rx + c->rxlen, sizeof(c->rx) - c->rxlen, MSG_DONTWAIT);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		close(c->fd);
		c->fd = -1;
		return;
	}
	c->rxlen += (size_t)n;
	while ((n = mv_frame_decode(c->rx, c->rxlen, &f)) > 0) {
		if (!c->answered && f.type == MV_MSG_WELCOME)
			(*welcomed)++, c->answered = 1;
		else if (!c->answered && f.type == MV_MSG_SHUTDOWN)
			(*shut)++, c->answered = 1;
		memmove(c->rx, c->rx + n, c->rxlen - (size_t)n);
		c->rxlen -= (size_t)n;
	}
	/* A frame too large for rx (a RESPONSE, say) is not ours to read: it is dropped. */
	if (n < 0 || c->rxlen == sizeof(c->rx))
		c->rxlen = 0;
}

/* Sends c its share of the stream: all it can for partial, one byte a second for slow. */
static void flood_send(struct flood_conn *c, enum flood_mode mode, int64_t *next_byte)
{
	uint8_t out[65536];
	size_t n;
	ssize_t w;

	if (mode == FLOOD_SLOW && now_ms() < *next_byte)
		return;
	n = flood_stream(mode, c->sent, out, mode == FLOOD_SLOW ? 1 : sizeof(out));
	if (n == 0)
		return;
	w = send(c->fd, out, n, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (w > 0)
		c->sent += (size_t)w;
}

static int flood_loop(struct flood_conn *cs, unsigned n, enum flood_mode mode, int wait_s)
{
	struct pollfd *p = calloc(n, sizeof(*p));
	int64_t deadline = now_ms() + (int64_t)wait_s * 1000, next_byte = now_ms() + 1000;
	unsigned welcomed = 0, shut = 0, open, closed, done, said = 0, i;
	uint8_t probe[1];

	if (p == NULL)
		return 2;
	for (;;) {
		open = closed = done = 0;
		for (i = 0; i < n; i++) {
			p[i].fd = cs[i].fd;
			/* Only while it has bytes left, or poll would never wait. */
			p[i].events = POLLIN;
			if (mode == FLOOD_PARTIAL && flood_stream(mode, cs[i].sent, probe, 1) > 0)
				p[i].events |= POLLOUT;
			open += cs[i].fd >= 0;
			closed += cs[i].fd == -1;
			done += cs[i].fd < 0 || cs[i].answered;
		}
		if (mode == FLOOD_HELLO && !said && done == n) {
			printf("answered %u %u\n", welcomed, shut);
			fflush(stdout);
			said = 1;
		}
		if (open == 0 || now_ms() >= deadline)
			break;
		if (poll(p, n, 200) < 0 && errno != EINTR)
			break;
		for (i = 0; i < n; i++) {
			if (cs[i].fd >= 0 && (p[i].revents & (POLLIN | POLLHUP | POLLERR)))
				flood_read(&cs[i], &welcomed, &shut);
			if (cs[i].fd >= 0 && (mode == FLOOD_PARTIAL || mode == FLOOD_SLOW))
				flood_send(&cs[i], mode, &next_byte);
		}
		if (mode == FLOOD_SLOW && now_ms() >= next_byte)
			next_byte += 1000;
	}
	printf("closed %u open %u\n", closed, open);
	free(p);
	return open == 0 ? 0 : 1;
}

static int cmd_flood(const char *path, int argc, char **argv)
{
	static const char *const modes[] = {"idle", "slow", "partial", "hello"};
	struct mv_msg_hello h = {.device_total = UINT64_C(1) << 30, .budget = UINT64_C(1) << 30};
	uint8_t payload[MV_MSG_HELLO_SIZE];
	struct flood_conn *cs;
	struct rlimit rl;
	unsigned n, failed = 0, i, mode;
	int wait_s = 60, r;
	uint64_t v;

	if (argc < 2 || parse_u64(argv[1], &v) < 0 || v == 0 || v > 100000)
		usage();
	for (mode = 0; mode < 4 && strcmp(argv[0], modes[mode]) != 0; mode++)
		;
	if (mode == 4)
		usage();
	n = (unsigned)v;
	h.pid = (uint32_t)getpid();
	snprintf(h.job, sizeof(h.job), "mvsock-flood");
	/* simcuda's UUID: 16 bytes of text, no NUL. */
	memcpy(h.uuid, "simcuda-device-0", sizeof(h.uuid));
	for (i = 2; i + 1 < (unsigned)argc; i += 2) {
		if (strcmp(argv[i], "--wait") == 0)
			wait_s = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--job") == 0)
			snprintf(h.job, sizeof(h.job), "%s", argv[i + 1]);
		else if (strcmp(argv[i], "--total") == 0 && parse_u64(argv[i + 1], &v) == 0)
			h.device_total = v;
		else if (strcmp(argv[i], "--budget") == 0 && parse_u64(argv[i + 1], &v) == 0)
			h.budget = v;
		else
			usage();
	}
	if (i != (unsigned)argc)
		usage();
	/* As many descriptors as the hard limit lets an unprivileged peer have. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	cs = calloc(n, sizeof(*cs));
	if (cs == NULL)
		return 2;
	for (i = 0; i < n; i++) {
		cs[i].fd = dial(path);
		if (cs[i].fd < 0) {
			cs[i].fd = -2;
			failed++;
			continue;
		}
		if (mode == FLOOD_HELLO &&
		    send_frame(cs[i].fd, MV_MSG_HELLO, payload, mv_hello_encode(&h, payload)) < 0) {
			close(cs[i].fd);
			cs[i].fd = -1;
		}
	}
	printf("connected %u failed %u\n", n - failed, failed);
	fflush(stdout);
	r = flood_loop(cs, n, (enum flood_mode)mode, wait_s);
	for (i = 0; i < n; i++)
		if (cs[i].fd >= 0)
			close(cs[i].fd);
	free(cs);
	return r;
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
	deadline = now_ms() + 30000;
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
			fprintf(stderr, "%s: no response within 30 s\n", mvsock_prog);
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

/* ---- fake ---- */

/* Acts on the whole frames at the start of rx[0..have): a WELCOME for the first HELLO. Returns
 * the bytes used, or -1 for bytes that are not frames. */
static ssize_t fake_frames(int c, const uint8_t *rx, size_t have, uint64_t grant, int *welcomed)
{
	struct mv_msg_welcome w = {.session = 1, .grant = grant, .host_grant = MV_HOST_GRANT_NONE};
	uint8_t out[MV_MSG_WELCOME_SIZE];
	struct mv_msg_hello h;
	struct mv_frame f;
	size_t at = 0;
	ssize_t size;

	while ((size = mv_frame_decode(rx + at, have - at, &f)) > 0) {
		at += (size_t)size;
		if (f.type == MV_MSG_HELLO && !*welcomed && mv_hello_decode(f.payload, f.length, &h) == 0) {
			h.job[sizeof(h.job) - 1] = '\0';
			printf("hello %s\n", h.job);
			mv_welcome_encode(&w, out);
			send_frame(c, MV_MSG_WELCOME, out, sizeof(out));
			*welcomed = 1;
		} else if (f.type == MV_MSG_CONTROL_HELLO) {
			printf("control\n");
		}
		fflush(stdout);
	}
	return size < 0 ? -1 : (ssize_t)at;
}

static int cmd_fake(const char *path, const char *grant_text)
{
	static uint8_t rx[MV_FRAME_HEADER + MV_FRAME_MAX];
	struct sockaddr_un sa;
	uint64_t grant;
	int fd;

	if (parse_u64(grant_text, &grant) < 0 || fill_addr(path, &sa) < 0)
		usage();
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	unlink(path);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || chmod(path, 0666) < 0 ||
	    listen(fd, 16) < 0) {
		fprintf(stderr, "%s: fake %s: %s\n", mvsock_prog, path, strerror(errno));
		return 2;
	}
	printf("listening\n");
	fflush(stdout);
	for (;;) {
		size_t have = 0;
		int welcomed = 0, c = accept(fd, NULL, NULL);
		ssize_t n, used;

		if (c < 0)
			continue;
		while ((n = recv(c, rx + have, sizeof(rx) - have, 0)) > 0) {
			have += (size_t)n;
			used = fake_frames(c, rx, have, grant, &welcomed);
			if (used < 0)
				break;
			memmove(rx, rx + used, have - (size_t)used);
			have -= (size_t)used;
		}
		close(c);
	}
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
	if (strcmp(argv[2], "flood") == 0)
		return cmd_flood(argv[1], argc - 3, argv + 3);
	if (strcmp(argv[2], "serve") == 0)
		return cmd_serve(argv[1], argv + 3);
	if (strcmp(argv[2], "fake") == 0 && argc == 4)
		return cmd_fake(argv[1], argv[3]);
	usage();
	return 2;
}
