/* A load generator for memvirtd: CLIENTS threads, each a library session of its own on the daemon's
 * socket, sending EVENTS frames as fast as the daemon takes them. tests/bench/daemon.sh counts what
 * the daemon ingests against what these clients send.
 *
 * usage: event_flood [-n CLIENTS] [-k EVENTS] [-t SECONDS] [-w SECONDS] SOCKET
 *
 * Each client connects, sends HELLO (all on one simulated device), reads its WELCOME, waits for the
 * others to be welcomed, then sends EVENTS frames of EVENTS launch events each (default 1024) for
 * SECONDS (default 10), then BYE, and waits for the daemon to close the connection. Prints one line
 * per client and a total; a frame counts once all its bytes are written. With -w, the total line
 * also gives the rate between the first and the last W seconds of the flood, leaving out its start
 * and end. SIGTERM or SIGINT ends the flood early, as if SECONDS had passed, so that a test can
 * flood for as long as something else runs. Exits 0, 1 on a socket or protocol error, 2 on usage. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdatomic.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "protocol/frame.h"
#include "protocol/proto.h"

#define FLOOD_MAX_CLIENTS 256
#define FLOOD_WELCOME_MS 30000 /* how long the daemon may take to answer HELLO */
#define FLOOD_CLOSE_MS 30000   /* and to close the connection after BYE */

/* One client thread's connection and its count. */
struct flood_client {
	int index;
	int fd;
	_Atomic uint64_t events; /* written by the client, read by the main thread as it goes */
	uint64_t frames;
	const char *error; /* NULL while all is well */
	pthread_t thread;
};

/* Set before the threads start; read-only afterwards. */
static const char *flood_socket;
static uint32_t flood_batch = 1024;
static double flood_seconds = 10;
static double flood_warm;
/* Holds the clients until every one is welcomed, so they all flood at once. */
static pthread_barrier_t flood_start;
/* The end of the flood (CLOCK_MONOTONIC ns), set by the main thread before it releases the barrier. */
static double flood_end_ns;
/* Set by SIGTERM or SIGINT: the flood ends now. */
static volatile sig_atomic_t flood_stopped;

static void flood_stop(int sig)
{
	(void)sig;
	flood_stopped = 1;
}

static void flood_usage(void)
{
	fprintf(stderr, "usage: event_flood [-n CLIENTS] [-k EVENTS] [-t SECONDS] [-w SECONDS] SOCKET\n");
	exit(2);
}

static double flood_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Writes all of p; blocking. Returns 0 or a negative errno. */
static int flood_send_all(int fd, const uint8_t *p, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EPIPE;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int flood_send_frame(int fd, uint16_t type, const uint8_t *payload, size_t len)
{
	uint8_t head[MV_FRAME_HEADER];
	int r;

	mv_frame_header(head, type, (uint32_t)len);
	r = flood_send_all(fd, head, sizeof(head));
	if (r == 0 && len > 0)
		r = flood_send_all(fd, payload, len);
	return r;
}

/* Reads frames until the WELCOME; GRANTs that come first are ignored. Returns 0, or -1 with
 * c->error set. */
static int flood_welcome(struct flood_client *c)
{
	uint8_t buf[4096];
	size_t len = 0;
	double deadline = flood_now_ns() + FLOOD_WELCOME_MS * 1e6;

	for (;;) {
		struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
		struct mv_frame f;
		ssize_t size, n;
		double now = flood_now_ns();

		while ((size = mv_frame_decode(buf, len, &f)) > 0) {
			if (f.type == MV_MSG_WELCOME) {
				struct mv_msg_welcome w;
				if (mv_welcome_decode(f.payload, f.length, &w) != 0) {
					c->error = "bad WELCOME payload";
					return -1;
				}
				return 0;
			}
			if (f.type != MV_MSG_GRANT) {
				c->error = "unexpected frame before WELCOME";
				return -1;
			}
			memmove(buf, buf + size, len - (size_t)size);
			len -= (size_t)size;
		}
		if (size < 0) {
			c->error = mv_frame_strerror((int)size);
			return -1;
		}
		if (now >= deadline) {
			c->error = "no WELCOME in time";
			return -1;
		}
		if (poll(&pfd, 1, (int)((deadline - now) / 1e6) + 1) <= 0)
			continue;
		n = recv(c->fd, buf + len, sizeof(buf) - len, 0);
		if (n == 0) {
			c->error = "the daemon closed the connection before WELCOME";
			return -1;
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			c->error = strerror(errno);
			return -1;
		}
		len += (size_t)n;
	}
}

/* Discards whatever the daemon has sent (grants as sessions come and go) without waiting. */
static void flood_drain(int fd)
{
	uint8_t buf[4096];

	while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
		;
}

static void *flood_client_main(void *arg)
{
	struct flood_client *c = arg;
	struct mv_event *ev = NULL;
	uint8_t *frame = NULL;
	size_t payload;
	int r;

	/* One frame of launch events, made once: the daemon reads each event, it keeps none. */
	ev = calloc(flood_batch, sizeof(*ev));
	frame = malloc(MV_FRAME_HEADER + MV_MSG_EVENTS_HEAD + (size_t)flood_batch * MV_EVENT_SIZE);
	if (ev == NULL || frame == NULL) {
		c->error = "out of memory";
		goto err_wait;
	}
	for (uint32_t i = 0; i < flood_batch; i++) {
		ev[i].time_ns = (uint64_t)flood_now_ns() + i;
		ev[i].kind = MV_EV_LAUNCH;
		ev[i].stream = 1;
		ev[i].arg = 8;
	}
	payload = mv_events_encode(ev, flood_batch, 0, frame + MV_FRAME_HEADER);
	mv_frame_header(frame, MV_MSG_EVENTS, (uint32_t)payload);

	pthread_barrier_wait(&flood_start);
	if (c->error != NULL)
		goto out;
	while (!flood_stopped && flood_now_ns() < flood_end_ns) {
		r = flood_send_all(c->fd, frame, MV_FRAME_HEADER + payload);
		if (r != 0) {
			c->error = strerror(-r);
			goto out;
		}
		atomic_fetch_add_explicit(&c->events, flood_batch, memory_order_relaxed);
		c->frames++;
		if ((c->frames & 63) == 0)
			flood_drain(c->fd);
	}
	r = flood_send_frame(c->fd, MV_MSG_BYE, NULL, 0);
	if (r != 0) {
		c->error = strerror(-r);
		goto out;
	}
	/* After BYE the daemon ends the session; its closing the connection means it has read
	 * everything sent before. */
	shutdown(c->fd, SHUT_WR);
	for (;;) {
		struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
		uint8_t buf[4096];
		ssize_t n;
		if (poll(&pfd, 1, FLOOD_CLOSE_MS) <= 0) {
			c->error = "the daemon did not close the connection after BYE";
			break;
		}
		n = recv(c->fd, buf, sizeof(buf), 0);
		if (n == 0 || (n < 0 && errno != EINTR))
			break;
	}
out:
	free(ev);
	free(frame);
	return NULL;

err_wait:
	/* The others wait at the barrier for this thread too. */
	pthread_barrier_wait(&flood_start);
	free(ev);
	free(frame);
	return NULL;
}

/* Connects and says HELLO. Returns 0, or -1 with c->error set. */
static int flood_connect(struct flood_client *c)
{
	struct sockaddr_un sa;
	struct mv_msg_hello h;
	uint8_t payload[MV_MSG_HELLO_SIZE];

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (strlen(flood_socket) >= sizeof(sa.sun_path)) {
		c->error = "socket path too long";
		return -1;
	}
	strcpy(sa.sun_path, flood_socket);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		c->error = strerror(errno);
		return -1;
	}
	memset(&h, 0, sizeof(h));
	h.pid = (uint32_t)getpid();
	memcpy(h.uuid, "event-flood-dev0", 16);
	h.device_total = 80ull << 30;
	snprintf(h.job, sizeof(h.job), "event_flood-%d", c->index);
	mv_hello_encode(&h, payload);
	if (flood_send_frame(c->fd, MV_MSG_HELLO, payload, sizeof(payload)) != 0) {
		c->error = "HELLO could not be sent";
		return -1;
	}
	return flood_welcome(c);
}

int main(int argc, char **argv)
{
	static struct flood_client clients[FLOOD_MAX_CLIENTS];
	uint64_t total = 0;
	double t0, steady[2] = {0, 0}, at[2] = {0, 0};
	int nclients = 8, opt, failed = 0;
	char *end;

	while ((opt = getopt(argc, argv, "n:k:t:w:")) != -1) {
		switch (opt) {
		case 'n':
			nclients = (int)strtol(optarg, &end, 10);
			if (*end != '\0' || nclients < 1 || nclients > FLOOD_MAX_CLIENTS)
				flood_usage();
			break;
		case 'k':
			flood_batch = (uint32_t)strtoul(optarg, &end, 10);
			if (*end != '\0' || flood_batch < 1 || flood_batch > MV_EVENTS_MAX)
				flood_usage();
			break;
		case 't':
			flood_seconds = strtod(optarg, &end);
			if (*end != '\0' || !(flood_seconds > 0))
				flood_usage();
			break;
		case 'w':
			flood_warm = strtod(optarg, &end);
			if (*end != '\0' || !(flood_warm > 0))
				flood_usage();
			break;
		default:
			flood_usage();
		}
	}
	if (optind != argc - 1 || 2 * flood_warm >= flood_seconds)
		flood_usage();
	flood_socket = argv[optind];

	{
		struct sigaction sa;
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = flood_stop;
		sigaction(SIGTERM, &sa, NULL);
		sigaction(SIGINT, &sa, NULL);
	}
	/* Sessions are opened one by one, so every client is welcomed before any floods. */
	pthread_barrier_init(&flood_start, NULL, (unsigned)nclients + 1);
	for (int i = 0; i < nclients; i++) {
		clients[i].index = i;
		clients[i].fd = -1;
		if (flood_connect(&clients[i]) != 0) {
			fprintf(stderr, "event_flood: client %d: %s\n", i, clients[i].error);
			return 1;
		}
		if (pthread_create(&clients[i].thread, NULL, flood_client_main, &clients[i]) != 0) {
			fprintf(stderr, "event_flood: cannot start client %d\n", i);
			return 1;
		}
	}
	t0 = flood_now_ns();
	flood_end_ns = t0 + flood_seconds * 1e9;
	pthread_barrier_wait(&flood_start);
	/* The steady part: the counts at W seconds in and at W seconds before the end. */
	for (int j = 0; flood_warm > 0 && j < 2; j++) {
		double due = j == 0 ? t0 + flood_warm * 1e9 : flood_end_ns - flood_warm * 1e9;
		struct timespec ts;
		double left = due - flood_now_ns();
		if (left > 0) {
			ts.tv_sec = (time_t)(left / 1e9);
			ts.tv_nsec = (long)(left - (double)ts.tv_sec * 1e9);
			while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
				;
		}
		at[j] = flood_now_ns();
		for (int i = 0; i < nclients; i++)
			steady[j] += (double)atomic_load_explicit(&clients[i].events, memory_order_relaxed);
	}
	for (int i = 0; i < nclients; i++)
		pthread_join(clients[i].thread, NULL);
	/* Stopped early: the rate is over the time it ran. */
	if (flood_stopped && (flood_now_ns() - t0) / 1e9 < flood_seconds)
		flood_seconds = (flood_now_ns() - t0) / 1e9;

	for (int i = 0; i < nclients; i++) {
		uint64_t events = atomic_load(&clients[i].events);
		printf("client %d events %" PRIu64 " frames %" PRIu64 "%s%s\n", i, events, clients[i].frames,
		       clients[i].error != NULL ? " error " : "",
		       clients[i].error != NULL ? clients[i].error : "");
		total += events;
		if (clients[i].error != NULL)
			failed = 1;
		close(clients[i].fd);
	}
	printf("total clients %d batch %" PRIu32 " seconds %.3f events %" PRIu64 " events_per_s %.0f", nclients,
	       flood_batch, flood_seconds, total, (double)total / flood_seconds);
	if (flood_warm > 0)
		printf(" steady_seconds %.3f steady_events_per_s %.0f", (at[1] - at[0]) / 1e9,
		       (steady[1] - steady[0]) / ((at[1] - at[0]) / 1e9));
	printf("\n");
	return failed;
}
