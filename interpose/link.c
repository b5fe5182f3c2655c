/* The link to memvirtd: a lock-free ring (ring.c) of buffer events that the app's threads fill,
 * and the link thread that drains it to the daemon in batches, sends counter snapshots, and applies
 * the daemon's grants. The app never waits on any of it (DESIGN §3, invariant 4): a full ring drops
 * the event and counts it, and while no daemon is linked an event costs the app one atomic load.
 * Without a daemon the link thread retries with a growing pause and the local budget applies; a
 * daemon that goes away leaves the last grant in force. Only a daemon of this user or root is
 * trusted (paths.h), and no grant exceeds the local budget. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "interpose/internal.h"
#include "protocol/frame.h"
#include "protocol/paths.h"
#include "protocol/proto.h"
#include "protocol/text.h"
#include "protocol/units.h"

#define MV_LINK_BUSY_MS 20       /* how soon the next batch goes while events flow */
#define MV_LINK_IDLE_MS 100      /* and while they do not */
#define MV_LINK_COUNTERS_MS 500
#define MV_LINK_NUDGE_MS 20      /* the soonest a snapshot asked for by the host pool goes */
/* The link thread waits these out, never the app: generous, so that a live daemon slow to answer on
 * a loaded node is not taken for a lost one. */
#define MV_LINK_WELCOME_MS 10000 /* how long a daemon may take to answer HELLO */
#define MV_LINK_SEND_MS 10000    /* a daemon that takes no bytes for this long is gone */
#define MV_LINK_EXIT_MS 200      /* the last batch and BYE at exit */
#define MV_LINK_BACKOFF_MIN_MS 100
#define MV_LINK_BACKOFF_MAX_MS 5000

/* ---- the event ring ---- */

/* One event a slot: the app's threads fill it, the link thread drains it (ring.c). Its dropped
 * count is what the next batch reports lost. */
static struct mv_ring ring;
_Static_assert(sizeof(struct mv_event) <= sizeof(((struct mv_ring_slot *)0)->w), "an event fills one slot");

static _Atomic int link_up;
/* The daemon asked for no LAUNCH events (MV_MSG_LAUNCHES); every session starts without. */
static _Atomic int launches_unwanted;
/* Set on the link thread itself. */
static __thread int link_self;
/* The host pool asked for a COUNTERS snapshot now (mv_link_nudge); the link thread clears it. */
static _Atomic int nudged;
/* From the link's start until its first session is welcomed or has failed. */
static _Atomic int greeting;

int mv_link_greeting(void)
{
	return atomic_load(&greeting);
}

/* The first session is welcomed or failed: a page-out waiting for the first host grant goes on. */
static void greeted(void)
{
	if (atomic_exchange(&greeting, 0))
		mv_host_grant_heard();
}

int mv_link_is_self(void)
{
	return link_self;
}

int mv_link_launches_unwanted(void)
{
	return atomic_load_explicit(&launches_unwanted, memory_order_relaxed);
}

int mv_link_is_up(void)
{
	return atomic_load_explicit(&link_up, memory_order_relaxed);
}

/* CLOCK_MONOTONIC is read through the vDSO: no system call. */
static uint64_t event_time(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Claims k slots for k events, or counts them lost when the ring is full. */
static int claim_events(unsigned k, uint64_t *ticket)
{
	if (mv_ring_claim(&ring, k, ticket) == 0)
		return 0;
	mv_count_add(MV_COUNTER_events_dropped, k);
	return -1;
}

static void put_event(uint64_t ticket, const struct mv_event *ev)
{
	memcpy(mv_ring_slot_at(&ring, ticket)->w, ev, sizeof(*ev));
}

void mv_link_push(uint32_t kind, uint32_t stream, uint64_t addr, uint64_t size, uint64_t arg)
{
	struct mv_event ev = {event_time(), kind, stream, addr, size, arg};
	uint64_t t;

	if (claim_events(1, &t) != 0)
		return;
	put_event(t, &ev);
	mv_ring_commit(&ring, t);
}

void mv_link_launch(uint32_t stream, uint32_t fn, struct mv_buf *const *named, size_t n)
{
	struct mv_event ev = {event_time(), MV_EV_LAUNCH, stream, fn, 0, n};
	uint64_t t;

	/* The LAUNCH and its REFs in one claim: the daemon never sees another event between them. */
	if (claim_events(1 + (unsigned)n, &t) != 0)
		return;
	for (size_t i = 0; i < n; i++) {
		struct mv_event ref = {ev.time_ns, MV_EV_REF, stream, named[i]->va, 0, 0};
		put_event(t + 1 + i, &ref);
		mv_ring_commit(&ring, t + 1 + i);
	}
	put_event(t, &ev);
	mv_ring_commit(&ring, t);
}

/* Takes up to max events off the ring, in ticket order; stops early at a slot whose producer has
 * not finished writing it. */
static uint32_t ring_drain(struct mv_event *out, uint32_t max)
{
	const uint64_t *w;
	uint32_t n = 0;

	while (n < max && (w = mv_ring_peek(&ring)) != NULL) {
		if (out != NULL)
			memcpy(&out[n], w, sizeof(*out));
		n++;
		mv_ring_release(&ring, 1);
	}
	return n;
}

/* ---- the link thread's state ---- */

/* Set once the link thread has been started in this process (or starting it failed). */
static _Atomic int started;
/* Set by the exit handler: the link thread sends what it has, says BYE and ends. */
static _Atomic int exiting;
/* The link thread's: the daemon connection, and the pipe the exit handler wakes it with. */
static int sock = -1;
static int wake_pipe[2] = {-1, -1};
static char sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
/* The link thread's buffers: a batch of events, and one outgoing and one incoming frame. */
static struct mv_event *batch;
static uint8_t *tx, *rx;
static size_t rxlen;
/* Guards `finished`, set when the link thread has ended (after its BYE at exit). */
static pthread_mutex_t end_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t end_cond = PTHREAD_COND_INITIALIZER;
static int finished;
static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- frames ---- */

/* Writes all of p to the daemon, waiting for room at most until `deadline` (now_ms). Returns 0 or
 * a negative errno. */
static int send_all(const uint8_t *p, size_t len, uint64_t deadline)
{
	while (len > 0) {
		ssize_t n = send(sock, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			struct pollfd pfd = {.fd = sock, .events = POLLOUT};
			uint64_t now = now_ms();
			if (now >= deadline)
				return -ETIMEDOUT;
			poll(&pfd, 1, (int)(deadline - now));
			continue;
		}
		return n < 0 ? -errno : -EPIPE;
	}
	return 0;
}

/* Sends the frame of type whose payload of len bytes is already at tx + MV_FRAME_HEADER. */
static int send_frame(uint16_t type, size_t len, uint64_t deadline)
{
	mv_frame_header(tx, type, (uint32_t)len);
	return send_all(tx, MV_FRAME_HEADER + len, deadline);
}

static const char *send_failure(int err)
{
	return err == -ETIMEDOUT ? "the daemon stopped reading" : strerror(-err);
}

/* Drains the ring into EVENTS frames until it is empty, with the count of events dropped since the
 * last one. Returns the number of events sent, or a negative errno. */
static long send_events(uint64_t deadline)
{
	long sent = 0;

	for (;;) {
		uint32_t n = ring_drain(batch, MV_EVENTS_MAX);
		uint64_t lost = mv_ring_take_dropped(&ring, UINT32_MAX);
		int r;
		if (n == 0 && lost == 0)
			return sent;
		r = send_frame(MV_MSG_EVENTS, mv_events_encode(batch, n, (uint32_t)lost, tx + MV_FRAME_HEADER), deadline);
		if (r != 0)
			return r;
		mv_count_add(MV_COUNTER_events_sent, n);
		sent += n;
		if (n < MV_EVENTS_MAX)
			return sent;
	}
}

static int send_counters(uint64_t deadline)
{
	struct memvirt_counters c;
	struct mv_msg_counters m;

	memvirt_counters(&c);
#define MV_COUNTER(name, ...) m.name = c.name;
#include "protocol/counters.def"
#undef MV_COUNTER
	return send_frame(MV_MSG_COUNTERS, mv_counters_encode(&m, tx + MV_FRAME_HEADER), deadline);
}

static int send_hello(uint64_t deadline)
{
	struct mv_msg_hello h;
	CUuuid uuid;

	memset(&h, 0, sizeof(h));
	h.pid = (uint32_t)getpid();
	h.device = (uint32_t)mv_dev()->device;
	/* Sessions on one GPU share its memory: the UUID says which GPU, whatever its ordinal here. */
	if (mv_real.cuDeviceGetUuid_v2 != NULL && mv_real.cuDeviceGetUuid_v2(&uuid, mv_dev()->device) == CUDA_SUCCESS)
		memcpy(h.uuid, uuid.bytes, sizeof(h.uuid));
	h.device_total = mv_dev()->total;
	h.budget = mv_budget_local();
	h.weight = mv_cfg.weight;
	h.rank = mv_cfg.rank;
	memcpy(h.group, mv_cfg.group, sizeof(h.group));
	memcpy(h.job, mv_cfg.job, sizeof(h.job));
	h.job[sizeof(h.job) - 1] = '\0';
	h.host_want = mv_cfg.host_limit;
	return send_frame(MV_MSG_HELLO, mv_hello_encode(&h, tx + MV_FRAME_HEADER), deadline);
}

/* What the daemon's frames did: nothing to act on, its WELCOME, or the end of the session. */
enum rx_result { RX_OK, RX_WELCOME, RX_END };

/* Set once a daemon has granted a budget: from then on that grant stays when the daemon goes. */
static int granted;

/* A grant above the job's own budget is the job's own budget: a daemon divides memory, it does not
 * add to what the job was given. */
static uint64_t clamp_grant(uint64_t grant)
{
	uint64_t local = mv_budget_local();
	char a[32], b[32];

	if (grant <= local)
		return grant;
	mv_log(MV_LOG_DEBUG, "memvirtd granted %s, more than the job's own budget %s: %s it is",
	       mv_format_size(grant, a, sizeof(a)), mv_format_size(local, b, sizeof(b)), b);
	return local;
}

static void apply_grant(uint64_t grant, const char *why)
{
	char a[32];

	grant = clamp_grant(grant);
	mv_log(MV_LOG_DEBUG, "%s: budget %s", why, mv_format_size(grant, a, sizeof(a)));
	mv_budget_set(grant);
	granted = 1;
}

/* Reads what the daemon has sent and acts on every whole frame. *reason says why a session ends. */
static enum rx_result receive(int welcomed, const char **reason)
{
	enum rx_result res = RX_OK;
	size_t at = 0;
	ssize_t n;

	n = recv(sock, rx + rxlen, MV_FRAME_HEADER + MV_FRAME_MAX - rxlen, MSG_DONTWAIT);
	if (n == 0) {
		*reason = rxlen > 0 ? mv_frame_strerror(mv_frame_at_eof(rxlen)) : "the daemon closed the connection";
		return RX_END;
	}
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return RX_OK;
		*reason = strerror(errno);
		return RX_END;
	}
	rxlen += (size_t)n;
	while (res != RX_END) {
		struct mv_frame f;
		ssize_t size = mv_frame_decode(rx + at, rxlen - at, &f);
		if (size == MV_FRAME_NEED_MORE)
			break;
		if (size < 0) {
			*reason = mv_frame_strerror((int)size);
			res = RX_END;
			break;
		}
		at += (size_t)size;
		if (f.type == MV_MSG_WELCOME && !welcomed) {
			struct mv_msg_welcome w;
			if (mv_welcome_decode(f.payload, f.length, &w) != 0) {
				*reason = mv_frame_strerror(MV_FRAME_BAD_PAYLOAD);
				res = RX_END;
				break;
			}
			{
				char a[32], b[48];
				w.grant = clamp_grant(w.grant);
				b[0] = '\0';
				if (w.host_grant != MV_HOST_GRANT_NONE) {
					memcpy(b, ", host share ", 14);
					mv_format_size(w.host_grant, b + 13, sizeof(b) - 13);
				}
				mv_log(MV_LOG_INFO, "linked to memvirtd at %s: session %llu, budget %s%s", sock_path,
				       (unsigned long long)w.session, mv_format_size(w.grant, a, sizeof(a)), b);
			}
			mv_budget_set(w.grant);
			mv_host_grant_set(w.host_grant);
			granted = 1;
			welcomed = 1;
			res = RX_WELCOME;
		} else if (f.type == MV_MSG_GRANT && welcomed) {
			struct mv_msg_grant g;
			if (mv_grant_decode(f.payload, f.length, &g) != 0) {
				*reason = mv_frame_strerror(MV_FRAME_BAD_PAYLOAD);
				res = RX_END;
				break;
			}
			apply_grant(g.grant, "grant from memvirtd");
			if (g.host_grant != MV_HOST_GRANT_NONE) {
				char a[32];
				mv_log(MV_LOG_DEBUG, "host share from memvirtd: %s",
				       mv_format_size(g.host_grant, a, sizeof(a)));
			}
			mv_host_grant_set(g.host_grant);
		} else if (f.type == MV_MSG_PLAN && welcomed) {
			struct mv_msg_plan ph;
			if (mv_plan_decode(f.payload, f.length, &ph) != 0) {
				*reason = mv_frame_strerror(MV_FRAME_BAD_PAYLOAD);
				res = RX_END;
				break;
			}
			/* One for an iteration not learned here (yet) waits for it: the local plan stays. */
			mv_exec_from_daemon(f.payload, f.length);
		} else if (f.type == MV_MSG_LAUNCHES && welcomed) {
			struct mv_msg_launches m;
			if (mv_launches_decode(f.payload, f.length, &m) != 0) {
				*reason = mv_frame_strerror(MV_FRAME_BAD_PAYLOAD);
				res = RX_END;
				break;
			}
			if (atomic_exchange(&launches_unwanted, !m.send) != !m.send)
				mv_log(MV_LOG_DEBUG, "memvirtd %s", m.send ? "wants launches again" :
				       "has learnt the iteration and plans nothing for it: launches are not sent");
		} else if (f.type == MV_MSG_SHUTDOWN) {
			*reason = "the daemon is shutting down";
			res = RX_END;
		} else {
			/* A frame the daemon has no business sending now (or ever). */
			*reason = "unexpected message from the daemon";
			res = RX_END;
		}
	}
	memmove(rx, rx + at, rxlen - at);
	rxlen -= at;
	return res;
}

/* ---- sessions ---- */

/* The last refusal logged: a daemon refused for the same reason again is not logged again. */
static char refused[256];

/* Logs why the daemon at sock_path is not trusted, once for each new reason. */
static void refuse(const char *why)
{
	if (strcmp(why, refused) == 0) {
		mv_log(MV_LOG_DEBUG, "not linking to memvirtd: %s", why);
		return;
	}
	snprintf(refused, sizeof(refused), "%s", why);
	mv_log(MV_LOG_WARN, "not linking to memvirtd: %s; running on the job's own budget", why);
}

/* Connects to the daemon, if one of this user or root is there: the socket and its directory are
 * checked before connecting, and the peer's credentials before a byte is sent. Returns the
 * socket, or a negative errno (-EPERM: refused, and logged). */
static int dial(void)
{
	struct sockaddr_un sa;
	char why[256 + sizeof(sock_path)];
	int fd, r;

	r = mv_socket_trusted(sock_path, why, sizeof(why));
	if (r == -EPERM || r == -ELOOP || r == -ENOTDIR || r == -ENOTSOCK) {
		refuse(why);
		return -EPERM;
	}
	if (r != 0)
		return r;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, sock_path, sizeof(sa.sun_path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		int err = errno;
		close(fd);
		return -err;
	}
	if (mv_peer_trusted(fd, sock_path, why, sizeof(why)) != 0) {
		close(fd);
		refuse(why);
		return -EPERM;
	}
	refused[0] = '\0';
	return fd;
}

/* Waits until the daemon's socket is readable, the exit handler wakes this thread, or timeout_ms
 * passes (sock < 0: only the latter two). Returns whether the socket is readable. */
static int wait_for(int timeout_ms)
{
	struct pollfd pfd[2] = {{.fd = wake_pipe[0], .events = POLLIN}, {.fd = sock, .events = POLLIN}};
	char drain[64];

	if (poll(pfd, sock >= 0 ? 2 : 1, timeout_ms) <= 0)
		return 0;
	/* A nudge's byte is read here, so that the pipe wakes the next poll only for a new one;
	 * the exit handler sets its flag before it writes. */
	if (pfd[0].revents & POLLIN)
		while (read(wake_pipe[0], drain, sizeof(drain)) > 0)
			;
	return sock >= 0 && (pfd[1].revents & (POLLIN | POLLHUP | POLLERR)) != 0;
}

/* HELLO, then the WELCOME within MV_LINK_WELCOME_MS. Returns 0, or -1 with *reason. */
static int handshake(const char **reason)
{
	uint64_t deadline = now_ms() + MV_LINK_WELCOME_MS;

	rxlen = 0;
	if (send_hello(deadline) != 0) {
		*reason = "HELLO could not be sent";
		return -1;
	}
	for (;;) {
		uint64_t now = now_ms();
		if (atomic_load(&exiting)) {
			*reason = "the process is exiting";
			return -1;
		}
		if (now >= deadline) {
			*reason = "no WELCOME in time";
			return -1;
		}
		if (!wait_for((int)(deadline - now)))
			continue;
		switch (receive(0, reason)) {
		case RX_WELCOME:
			return 0;
		case RX_END:
			return -1;
		default:
			break;
		}
	}
}

/* One session with the daemon, from connect to its end. Returns 1 when it got as far as a WELCOME,
 * 0 otherwise. */
static int session(void)
{
	const char *reason = NULL;
	uint64_t next_events, next_counters, last_counters;
	int r;

	sock = dial();
	if (sock < 0) {
		greeted();
		if (sock != -EPERM)
			mv_log(MV_LOG_DEBUG, "no memvirtd at %s: %s", sock_path, strerror(-sock));
		sock = -1;
		return 0;
	}
	r = handshake(&reason);
	greeted();
	if (r != 0) {
		close(sock);
		sock = -1;
		if (!atomic_load(&exiting))
			mv_log(MV_LOG_INFO, "memvirtd at %s: %s; %s", sock_path, reason,
			       granted ? "keeping its last grant" : "using the local budget");
		return 0;
	}
	/* Whatever the ring holds is from an earlier session. */
	while (ring_drain(NULL, MV_RING_SLOTS) > 0)
		;
	atomic_store(&link_up, 1);
	next_events = now_ms() + MV_LINK_IDLE_MS;
	next_counters = now_ms() + MV_LINK_COUNTERS_MS;
	last_counters = now_ms();
	for (;;) {
		uint64_t now = now_ms(), until;
		/* A nudge brings the next snapshot forward, at most one per MV_LINK_NUDGE_MS. */
		if (atomic_load(&nudged))
			next_counters = MV_MIN(next_counters, last_counters + MV_LINK_NUDGE_MS);
		until = MV_MIN(next_events, next_counters);
		if (atomic_load(&exiting)) {
			/* Best effort, in bounded time: the last events, the final counters, BYE. */
			uint64_t deadline = now + MV_LINK_EXIT_MS;
			atomic_store(&link_up, 0);
			if (send_events(deadline) >= 0 && send_counters(deadline) == 0)
				send_frame(MV_MSG_BYE, 0, deadline);
			reason = "the process is exiting";
			break;
		}
		if (now < until && wait_for((int)(until - now)) && receive(1, &reason) == RX_END)
			break;
		now = now_ms();
		if (now >= next_events) {
			long sent = send_events(now + MV_LINK_SEND_MS);
			if (sent < 0) {
				reason = send_failure((int)sent);
				break;
			}
			next_events = now + (sent > 0 ? MV_LINK_BUSY_MS : MV_LINK_IDLE_MS);
		}
		if (now >= next_counters) {
			atomic_store(&nudged, 0);
			r = send_counters(now + MV_LINK_SEND_MS);
			if (r != 0) {
				reason = send_failure(r);
				break;
			}
			next_counters = now + MV_LINK_COUNTERS_MS;
			last_counters = now;
		}
	}
	atomic_store(&link_up, 0);
	atomic_store(&launches_unwanted, 0);
	close(sock);
	sock = -1;
	/* The daemon's plan goes with it. */
	mv_exec_from_daemon(NULL, 0);
	/* The last grant stays in force: jumping to the whole local budget would take memory the
	 * daemon gave to other jobs, just when it cannot arbitrate. A daemon that comes back grants
	 * again. */
	if (!atomic_load(&exiting)) {
		char a[32];
		mv_log(MV_LOG_INFO, "lost memvirtd (%s); keeping its last grant %s", reason,
		       mv_format_size(mv_budget_now(), a, sizeof(a)));
	}
	return 1;
}

static void *link_main(void *arg)
{
	int backoff = MV_LINK_BACKOFF_MIN_MS;

	(void)arg;
	link_self = 1;
	/* Page-outs for a smaller grant are issued from this thread. */
	mv_real.cuCtxSetCurrent(mv_dev()->ctx);
	/* After fork the budget may still be the parent's grant. */
	mv_budget_set(mv_budget_local());
	mv_host_grant_set(MV_HOST_GRANT_NONE);
	granted = 0;
	while (!atomic_load(&exiting)) {
		if (session())
			backoff = MV_LINK_BACKOFF_MIN_MS;
		if (atomic_load(&exiting))
			break;
		/* No daemon: asleep in poll until the next try, or until the process exits. */
		wait_for(backoff);
		if (backoff < MV_LINK_BACKOFF_MAX_MS)
			backoff = MV_MIN(backoff * 2, MV_LINK_BACKOFF_MAX_MS);
	}
	pthread_mutex_lock(&end_lock);
	finished = 1;
	pthread_cond_broadcast(&end_cond);
	pthread_mutex_unlock(&end_lock);
	return NULL;
}

void mv_link_start(void)
{
	pthread_attr_t attr;
	pthread_t t;
	sigset_t all, old;
	int expected = 0, r;

	if (atomic_load_explicit(&started, memory_order_acquire) || !mv_cfg.daemon)
		return;
	if (!atomic_compare_exchange_strong(&started, &expected, 1))
		return;
	/* memvirt(1), DISCOVERY: the system daemon when it answers, else this user's own. */
	if (mv_socket_discover(sock_path, sizeof(sock_path)) < 0) {
		mv_log(MV_LOG_WARN, "the daemon's socket path is too long; running without memvirtd");
		return;
	}
	if (batch == NULL)
		batch = malloc((size_t)MV_EVENTS_MAX * sizeof(*batch));
	if (tx == NULL)
		tx = malloc(MV_FRAME_HEADER + MV_FRAME_MAX);
	if (rx == NULL)
		rx = malloc(MV_FRAME_HEADER + MV_FRAME_MAX);
	if (batch == NULL || tx == NULL || rx == NULL) {
		mv_log(MV_LOG_WARN, "no memory for the link to memvirtd; running without it");
		return;
	}
	if (pipe2(wake_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
		mv_log(MV_LOG_WARN, "cannot make the link thread's pipe (%s); running without memvirtd", strerror(errno));
		return;
	}
	/* Before the thread runs, so that no page-out before its HELLO takes the pool for its own. */
	atomic_store(&greeting, 1);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	/* The app's signals are for the app's threads. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = pthread_create(&t, &attr, link_main, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (r != 0) {
		mv_log(MV_LOG_WARN, "cannot start the link thread (%s); running without memvirtd", strerror(r));
		greeted();
		close(wake_pipe[0]);
		close(wake_pipe[1]);
		wake_pipe[0] = wake_pipe[1] = -1;
		return;
	}
	mv_log(MV_LOG_DEBUG, "link thread started for %s", sock_path);
}

/* After fork the child has neither the link thread nor a session of its own: the parent's socket
 * and events are the parent's. The next allocation starts a new link. Runs single-threaded. */
void mv_link_forked(void)
{
	mv_ring_forked(&ring);
	atomic_store(&link_up, 0);
	atomic_store(&launches_unwanted, 0);
	atomic_store(&exiting, 0);
	atomic_store(&nudged, 0);
	atomic_store(&greeting, 0);
	if (sock >= 0)
		close(sock);
	sock = -1;
	if (wake_pipe[0] >= 0) {
		close(wake_pipe[0]);
		close(wake_pipe[1]);
	}
	wake_pipe[0] = wake_pipe[1] = -1;
	rxlen = 0;
	pthread_mutex_init(&end_lock, NULL);
	pthread_cond_init(&end_cond, NULL);
	finished = 0;
	atomic_store(&started, 0);
}

void mv_link_nudge(void)
{
	if (!mv_link_is_up() || atomic_exchange(&nudged, 1))
		return;
	if (write(wake_pipe[1], "n", 1) < 0) {
		/* The pipe is full: the thread is awake already. */
	}
}

/* At exit: wakes the link thread to send its last batch and BYE, and waits for it a bounded time. */
__attribute__((destructor)) static void link_exit(void)
{
	struct timespec until;

	if (!atomic_load(&started) || wake_pipe[1] < 0)
		return;
	atomic_store(&exiting, 1);
	if (write(wake_pipe[1], "x", 1) < 0) {
		/* The pipe is full: the thread is awake already. */
	}
	mv_deadline_ms(&until, 2 * MV_LINK_EXIT_MS);
	pthread_mutex_lock(&end_lock);
	while (!finished)
		if (pthread_cond_timedwait(&end_cond, &end_lock, &until) != 0)
			break;
	pthread_mutex_unlock(&end_lock);
}
