/* The server: the listening socket, each connection's frames, signals, and the config in force. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "daemon/internal.h"
#include "protocol/control.h"

/* A connection's receive buffer never grows beyond this: a whole frame is at most
 * MV_FRAME_HEADER + MV_FRAME_MAX, so a well-behaved peer always fits. */
#define SERVER_BUF_MAX (2u << 20)
#define SERVER_BUF_MIN (64u << 10)
/* A peer that lets this much of our output pile up is not reading: it is dropped. Counted as the
 * memory the queued writes hold (each frame and its request), since a flood of small answers
 * holds far more than its bytes. */
#define SERVER_WRITE_MAX (16u << 20)
/* Frames one connection may have handled in one turn of the loop: past them it waits for the next
 * turn, so that a peer sending as fast as it can does not keep the others (and `memvirt stats`)
 * waiting. Large enough that a busy session's batches do not wait needlessly. */
#define SERVER_TURN_FRAMES 64
/* How long a stop waits for connections to take their last frames before cutting them. */
#define SERVER_STOP_MS 3000
/* How often frame timeouts and the socket file are checked. */
#define SERVER_SWEEP_MS 500
/* Descriptors the daemon needs besides its connections (listener, log, loop, signals). */
#define SERVER_OWN_FDS 16

/* One uid's share of the limits: what its connections hold. Made at its first connection, freed
 * with its last. */
struct mvd_user {
	uid_t uid;
	unsigned conns;    /* accepted and not yet closed */
	unsigned sessions; /* library sessions */
	size_t buffered;   /* its connections' receive buffers, in bytes */
	TAILQ_ENTRY(mvd_user) entry;
};

/* One queued write; data is freed with it. */
struct server_write {
	uv_write_t req;
	uint8_t *data;
	size_t held; /* counted in the connection's `queued` */
};

static uv_loop_t *server_loop;
static uv_pipe_t server_listener;
static uv_signal_t server_sighup, server_sigterm, server_sigint;
static uv_timer_t server_stop_timer;
/* Runs before every wait for I/O: starts a new turn and resumes the connections paused in the last. */
static uv_prepare_t server_turns;
static uint64_t server_turn;
static int server_stopping_flag;
static TAILQ_HEAD(, mvd_conn) server_conns = TAILQ_HEAD_INITIALIZER(server_conns);
static uint64_t server_next_conn = 1;
static TAILQ_HEAD(, mvd_user) server_users = TAILQ_HEAD_INITIALIZER(server_users);
static unsigned server_nconns;  /* connections accepted and not yet closed */
static unsigned server_nofile;  /* RLIMIT_NOFILE at start */
static uv_timer_t server_sweep;
/* The socket file's state at the last sweep: 0 ours, 1 gone, 2 another file; logged on change. */
static int server_path_state;

static struct mvd_config *server_cfg;
static const char *server_override_level; /* --log-level, borrowed from argv */
static const char *server_override_file;  /* --log-file, borrowed from argv */
static struct timespec server_started;
/* --idle-exit in ms (0: off), and the loop time since which no connection has been open. */
static uint64_t server_idle_ms;
static uint64_t server_idle_since;

/* The socket file this daemon bound, to remove at exit; empty when it was inherited. */
static char server_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
static dev_t server_path_dev;
static ino_t server_path_ino;
/* The socket file watched for removal or replacement (bound or inherited), and its identity. */
static char server_watch[sizeof(server_path)];
static dev_t server_watch_dev;
static ino_t server_watch_ino;
/* PATH.lock, flock'd for the daemon's life; removed at exit. */
static char server_lock_path[PATH_MAX];
static int server_lock_fd = -1;

static void server_close_cb(uv_handle_t *h);

const struct mvd_config *mvd_server_config(void)
{
	return server_cfg;
}

uid_t mvd_server_uid(void)
{
	return geteuid();
}

int mvd_server_stopping(void)
{
	return server_stopping_flag;
}

uint64_t mvd_server_uptime_s(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (uint64_t)(now.tv_sec - server_started.tv_sec);
}

void mvd_server_set_overrides(const char *log_level, const char *log_file)
{
	server_override_level = log_level;
	server_override_file = log_file;
}

void mvd_server_set_idle_exit(unsigned seconds)
{
	server_idle_ms = (uint64_t)seconds * 1000;
}

/* --idle-exit: a daemon started for whoever comes next goes once nobody has come for that long. A
 * client that connects while the stop begins is closed with the rest, as in any stop, and finds
 * the socket gone or refusing; memvirt run then starts a daemon again. */
static void server_check_idle(void)
{
	uint64_t now = uv_now(server_loop);

	if (server_idle_ms == 0 || server_stopping_flag)
		return;
	if (server_nconns > 0 || server_idle_since == 0) {
		server_idle_since = now;
		return;
	}
	if (now - server_idle_since < server_idle_ms)
		return;
	mvd_info("no client for %llu s (--idle-exit): stopping",
		 (unsigned long long)(server_idle_ms / 1000));
	mvd_server_stop();
}

/* Points the log where cfg and the command line say. Returns 0, or -1 with err set; the log is
 * left as it was then. */
static int server_apply_log(const struct mvd_config *cfg, char *err, size_t errlen)
{
	const char *level = server_override_level != NULL ? server_override_level : cfg->log_level;
	const char *file = server_override_file != NULL ? server_override_file : cfg->log_file;
	enum mvd_log_level l = MVD_LOG_INFO;
	int rc;

	if (level != NULL && mvd_log_parse_level(level, &l) < 0) {
		snprintf(err, errlen, "unknown log level '%s'", level);
		return -1;
	}
	/* Opening again even an unchanged path is what lets a rotated log go on SIGHUP. */
	rc = mvd_log_open(file);
	if (rc < 0) {
		snprintf(err, errlen, "cannot open log file %s: %s", file, strerror(-rc));
		return -1;
	}
	mvd_log_set_level(l);
	return 0;
}

int mvd_server_reload(char *err, size_t errlen)
{
	struct mvd_config *next, *old = server_cfg;
	struct mvd_session *s;
	char why[512];

	if (old->path != NULL) {
		if (mvd_config_load(old->path, &next, err, errlen) < 0)
			return -1;
	} else {
		next = mvd_config_default();
	}
	server_cfg = next;
	if (server_apply_log(next, why, sizeof(why)) < 0)
		mvd_warn("config reload: %s; logging goes on as before", why);
	if ((next->socket == NULL) != (old->socket == NULL) ||
	    (next->socket != NULL && strcmp(next->socket, old->socket) != 0))
		mvd_warn("config reload: daemon.socket changed; it takes effect at the next start");
	if ((next->metrics == NULL) != (old->metrics == NULL) ||
	    (next->metrics != NULL && strcmp(next->metrics, old->metrics) != 0))
		mvd_warn("config reload: daemon.metrics changed; it takes effect at the next start");
	/* Sessions keep going under the new rules: only their weights, minimums and grants change. */
	TAILQ_FOREACH(s, mvd_sessions(), entry)
		mvd_session_configure(s, next);
	mvd_arbiter_recompute_all();
	mvd_config_free(old);
	mvd_log_set_limit(next->log_lines);
	mvd_info("config reloaded from %s", next->path != NULL ? next->path : "the built-in defaults");
	return 0;
}

static void server_write_cb(uv_write_t *req, int status)
{
	struct server_write *w = (struct server_write *)req;
	struct mvd_conn *c = (struct mvd_conn *)req->handle;

	if (status < 0 && status != UV_ECANCELED && !c->closing) {
		char why[128];

		snprintf(why, sizeof(why), "write failed: %s", uv_strerror(status));
		mvd_conn_close(c, MVD_LOG_INFO, why);
	}
	c->queued -= w->held;
	free(w->data);
	free(w);
}

void mvd_conn_send_frame(struct mvd_conn *c, uint8_t *frame, size_t len)
{
	struct server_write *w;
	uv_buf_t buf;
	int rc;

	if (c->closing) {
		free(frame);
		return;
	}
	if (c->queued + len + sizeof(*w) > SERVER_WRITE_MAX) {
		free(frame);
		mvd_conn_close(c, MVD_LOG_WARN, "the peer does not read what it is sent");
		/* The clean close writes what is queued first, which this peer would hold up forever
		 * (with our memory): cut it now. */
		if (!uv_is_closing((uv_handle_t *)&c->pipe))
			uv_close((uv_handle_t *)&c->pipe, server_close_cb);
		return;
	}
	w = mvd_xmalloc(sizeof(*w));
	w->data = frame;
	w->held = len + sizeof(*w);
	c->queued += w->held;
	buf = uv_buf_init((char *)frame, (unsigned int)len);
	rc = uv_write(&w->req, (uv_stream_t *)&c->pipe, &buf, 1, server_write_cb);
	if (rc < 0) {
		char why[128];

		c->queued -= w->held;
		free(frame);
		free(w);
		snprintf(why, sizeof(why), "write failed: %s", uv_strerror(rc));
		mvd_conn_close(c, MVD_LOG_INFO, why);
	}
}

void mvd_conn_send(struct mvd_conn *c, uint16_t type, const uint8_t *payload, size_t len)
{
	uint8_t *frame;

	if (c->closing)
		return;
	frame = mvd_xmalloc(MV_FRAME_HEADER + len);
	mv_frame_header(frame, type, (uint32_t)len);
	if (len > 0)
		memcpy(frame + MV_FRAME_HEADER, payload, len);
	mvd_conn_send_frame(c, frame, MV_FRAME_HEADER + len);
}

/* ---- what each user holds ---- */

static struct mvd_user *server_user_get(uid_t uid)
{
	struct mvd_user *u;

	TAILQ_FOREACH(u, &server_users, entry) {
		if (u->uid == uid)
			return u;
	}
	u = mvd_xcalloc(1, sizeof(*u));
	u->uid = uid;
	TAILQ_INSERT_TAIL(&server_users, u, entry);
	return u;
}

/* Resizes c's receive buffer (0: frees it), counting it against its user. */
static void server_set_cap(struct mvd_conn *c, size_t cap)
{
	if (cap == 0) {
		free(c->buf);
		c->buf = NULL;
	} else {
		c->buf = mvd_xrealloc(c->buf, cap);
	}
	if (c->user != NULL)
		c->user->buffered = c->user->buffered - c->cap + cap;
	c->cap = cap;
}

/* What c's buffer grows to when it has less than SERVER_BUF_MIN of room; its size when full. */
static size_t server_next_cap(const struct mvd_conn *c)
{
	size_t cap = c->cap == 0 ? SERVER_BUF_MIN : c->cap * 2;

	return cap > SERVER_BUF_MAX ? SERVER_BUF_MAX : cap;
}

/* The key a connection's log line is rate-limited under: its uid and the reason's words before
 * the first number or parenthesis, so that a peer cannot dodge the limit by varying a count. */
static void server_log_key(const struct mvd_conn *c, const char *reason, char *key, size_t len)
{
	size_t n = strcspn(reason, "0123456789(");

	while (n > 0 && (reason[n - 1] == ' ' || reason[n - 1] == ':'))
		n--;
	snprintf(key, len, "uid %u: %.*s", (unsigned)c->uid, (int)n, reason);
}

static void server_shutdown_cb(uv_shutdown_t *req, int status)
{
	uv_handle_t *h = (uv_handle_t *)req->handle;

	free(req);
	if (!uv_is_closing(h))
		uv_close(h, server_close_cb);
}

/* Why a connection ends, rate-limited per uid and reason. */
static void server_log_close(const struct mvd_conn *c, enum mvd_log_level level, const char *reason)
{
	char key[96];

	if (reason == NULL)
		return;
	server_log_key(c, reason, key, sizeof(key));
	mvd_log_limited(key, level, "connection %llu (pid %d uid %u): %s", (unsigned long long)c->id,
			(int)c->pid, (unsigned)c->uid, reason);
}

void mvd_conn_close(struct mvd_conn *c, enum mvd_log_level level, const char *reason)
{
	uv_shutdown_t *req;

	if (c->closing)
		return;
	c->closing = 1;
	server_log_close(c, level, reason);
	uv_read_stop((uv_stream_t *)&c->pipe);
	if (c->counted_session) {
		c->user->sessions--;
		c->counted_session = 0;
	}
	/* The session leaves now, not when the socket is finally closed, so that the others on its
	 * device get its share at once. */
	if (c->session != NULL) {
		mvd_session_free(c->session);
		c->session = NULL;
	}
	/* What is queued (a last answer, SHUTDOWN) is written before the close. */
	req = mvd_xmalloc(sizeof(*req));
	if (uv_shutdown(req, (uv_stream_t *)&c->pipe, server_shutdown_cb) < 0) {
		free(req);
		uv_close((uv_handle_t *)&c->pipe, server_close_cb);
	}
}

static void server_close_cb(uv_handle_t *h)
{
	struct mvd_conn *c = (struct mvd_conn *)h;

	TAILQ_REMOVE(&server_conns, c, entry);
	server_set_cap(c, 0);
	if (c->user != NULL) {
		if (--server_nconns == 0)
			server_idle_since = uv_now(server_loop);
		if (--c->user->conns == 0) {
			TAILQ_REMOVE(&server_users, c->user, entry);
			free(c->user);
		}
	}
	free(c);
}

/* Turns c away for reason, in words its peer can show: a control client reads them in a RESPONSE,
 * a library is sent SHUTDOWN and goes on with its local policy. */
static void server_refuse(struct mvd_conn *c, const char *reason)
{
	json_t *resp;
	uint8_t *frame;
	size_t len;

	if (c->kind == MVD_CONN_LIBRARY) {
		mvd_conn_send(c, MV_MSG_SHUTDOWN, NULL, 0);
	} else {
		resp = json_pack("{s:b, s:s}", "ok", 0, "error", reason);
		if (resp != NULL && mv_control_encode(MV_MSG_RESPONSE, resp, &frame, &len) == 0)
			mvd_conn_send_frame(c, frame, len);
		json_decref(resp);
	}
	mvd_conn_close(c, MVD_LOG_WARN, reason);
}

/* The first frame says what the connection is. Returns 0 or -1 with *why set. */
static int server_first_frame(struct mvd_conn *c, const struct mv_frame *f, const char **why)
{
	struct mv_msg_hello hello;
	struct mv_msg_control_hello ctl;
	char msg[160];

	switch (f->type) {
	case MV_MSG_HELLO:
		if (mv_hello_decode(f->payload, f->length, &hello) < 0) {
			*why = "HELLO payload of the wrong size or with a malformed group token";
			return -1;
		}
		c->kind = MVD_CONN_LIBRARY;
		if (c->user->sessions >= server_cfg->sessions_per_user) {
			snprintf(msg, sizeof(msg), "too many sessions (uid %u has %u; "
				 "limits.sessions_per_user is %u)", (unsigned)c->uid, c->user->sessions,
				 (unsigned)server_cfg->sessions_per_user);
			server_refuse(c, msg);
			return 0;
		}
		c->user->sessions++;
		c->counted_session = 1;
		c->session = mvd_session_new(c, &hello);
		return 0;
	case MV_MSG_CONTROL_HELLO:
		if (mv_control_hello_decode(f->payload, f->length, &ctl) < 0) {
			*why = "CONTROL_HELLO payload of the wrong size";
			return -1;
		}
		c->kind = MVD_CONN_CONTROL;
		mvd_debug("connection %llu: control session of pid %d uid %u", (unsigned long long)c->id,
			  (int)c->pid, (unsigned)c->uid);
		return 0;
	default:
		*why = "the first frame is neither HELLO nor CONTROL_HELLO";
		return -1;
	}
}

static void server_frame(struct mvd_conn *c, const struct mv_frame *f)
{
	const char *why = NULL;
	char msg[160];
	int rc;

	switch (c->kind) {
	case MVD_CONN_NEW:
		rc = server_first_frame(c, f, &why);
		break;
	case MVD_CONN_LIBRARY:
		rc = mvd_session_frame(c->session, f, &why);
		if (rc == 1) {
			mvd_conn_close(c, MVD_LOG_DEBUG, "BYE");
			return;
		}
		break;
	case MVD_CONN_CONTROL:
	default:
		rc = mvd_control_frame(c, f, &why);
		break;
	}
	if (rc < 0) {
		snprintf(msg, sizeof(msg), "bad frame (type 0x%04x, %u bytes): %s", f->type, f->length,
			 why);
		mvd_conn_close(c, MVD_LOG_WARN, msg);
	}
}

static void server_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void server_read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

/* Decodes and handles the whole frames in c's buffer, keeping a partial one for later. Once the
 * connection has had its frames for this turn it stops reading, and the rest waits for the next
 * turn (server_turns_cb). */
static void server_drain(struct mvd_conn *c)
{
	struct mv_frame f;
	size_t off = 0;
	ssize_t n;
	char msg[128];

	if (c->turn != server_turn) {
		c->turn = server_turn;
		c->frames = 0;
	}
	while (!c->closing) {
		if (c->frames >= SERVER_TURN_FRAMES) {
			if (!c->paused) {
				uv_read_stop((uv_stream_t *)&c->pipe);
				c->paused = 1;
			}
			break;
		}
		n = mv_frame_decode(c->buf + off, c->len - off, &f);
		if (n == MV_FRAME_NEED_MORE)
			break;
		if (n < 0) {
			snprintf(msg, sizeof(msg), "bad frame: %s", mv_frame_strerror((int)n));
			mvd_conn_close(c, MVD_LOG_WARN, msg);
			return;
		}
		server_frame(c, &f);
		c->frames++;
		off += (size_t)n;
	}
	if (c->closing)
		return;
	/* Nothing to move when all was handled, and buf may be NULL then: memmove must not see it. */
	if (c->len > off)
		memmove(c->buf, c->buf + off, c->len - off);
	c->len -= off;
	/* A whole frame is progress: the time to finish the next starts now (and none runs while
	 * nothing is owed). Bytes alone are not, or a byte a second would keep a peer forever. */
	if (off > 0)
		c->owes_since = c->len > 0 ? uv_now(server_loop) : 0;
	/* A buffer grown for one large frame is given back once it has been handled. */
	if (c->len == 0 && c->cap > SERVER_BUF_MIN)
		server_set_cap(c, 0);
}

static void server_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct mvd_conn *c = (struct mvd_conn *)h;
	size_t cap;

	(void)suggested;
	c->starved = 0;
	if (c->cap - c->len < SERVER_BUF_MIN && c->cap < SERVER_BUF_MAX) {
		cap = server_next_cap(c);
		/* Past its user's limit a buffer does not grow: the room it has is used, and with none
		 * left the connection waits for the user's others to give some back. */
		if (c->user->buffered - c->cap + cap <= server_cfg->buffered_per_user)
			server_set_cap(c, cap);
		else if (c->cap == c->len)
			c->starved = 1;
	}
	/* A full buffer gives libuv no room, and the read callback then hears UV_ENOBUFS. */
	if (c->buf == NULL)
		*buf = uv_buf_init(NULL, 0);
	else
		*buf = uv_buf_init((char *)c->buf + c->len, (unsigned int)(c->cap - c->len));
}

static void server_read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	struct mvd_conn *c = (struct mvd_conn *)stream;
	char msg[128];

	if (c->closing)
		return;
	/* A process that exits with our last frame unread resets the connection rather than
	 * closing it: for the daemon that is the same ending. */
	if (nread == UV_EOF || nread == UV_ECONNRESET) {
		if (c->len > 0) {
			snprintf(msg, sizeof(msg), "bad frame: %s",
				 mv_frame_strerror(mv_frame_at_eof(c->len)));
			mvd_conn_close(c, MVD_LOG_WARN, msg);
		} else {
			mvd_conn_close(c, c->kind == MVD_CONN_LIBRARY ? MVD_LOG_INFO : MVD_LOG_DEBUG,
				       c->kind == MVD_CONN_LIBRARY ? "closed without BYE" : "closed");
		}
		return;
	}
	if (nread == UV_ENOBUFS && c->starved) {
		char key[64];

		uv_read_stop((uv_stream_t *)&c->pipe);
		snprintf(key, sizeof(key), "uid %u: buffers full", (unsigned)c->uid);
		mvd_log_limited(key, MVD_LOG_WARN, "uid %u: its connections hold %zu bytes of frames not "
				"yet whole, the limit (limits.buffered_per_user); connection %llu waits",
				(unsigned)c->uid, c->user->buffered, (unsigned long long)c->id);
		return;
	}
	if (nread < 0) {
		snprintf(msg, sizeof(msg), "read failed: %s", uv_strerror((int)nread));
		mvd_conn_close(c, MVD_LOG_WARN, msg);
		return;
	}
	if (nread > 0 && c->owes_since == 0)
		c->owes_since = uv_now(server_loop);
	c->len += (size_t)nread;
	server_drain(c);
}

/* A new turn: each paused connection handles what it has buffered and, unless that uses up its
 * turn again, reads again. */
static void server_turns_cb(uv_prepare_t *h)
{
	struct mvd_conn *c, *next;
	int rc;

	(void)h;
	server_turn++;
	for (c = TAILQ_FIRST(&server_conns); c != NULL; c = next) {
		next = TAILQ_NEXT(c, entry);
		if (c->closing)
			continue;
		/* A starved connection reads again once its user has room for its next buffer. */
		if (c->starved && !c->paused) {
			if (c->user->buffered - c->cap + server_next_cap(c) > server_cfg->buffered_per_user)
				continue;
			c->starved = 0;
		} else if (!c->paused) {
			continue;
		} else {
			c->paused = 0;
			server_drain(c);
			if (c->paused || c->closing)
				continue;
		}
		rc = uv_read_start((uv_stream_t *)&c->pipe, server_alloc_cb, server_read_cb);
		if (rc < 0) {
			char why[128];

			snprintf(why, sizeof(why), "cannot read: %s", uv_strerror(rc));
			mvd_conn_close(c, MVD_LOG_WARN, why);
		}
	}
	/* Last, so that sessions that joined in this turn, drained here or read before it, are
	 * divided and welcomed before the loop waits again. */
	mvd_arbiter_settle();
}

/* A connection refused as it is accepted has nothing queued: its answer goes out in one
 * non-blocking send and its descriptor is closed at once. A burst of refusals then never holds
 * the descriptors the daemon keeps for others while writes and shutdowns wait their turn (should
 * the socket's buffer be full, the answer is lost but the peer still sees the close). */
static void server_refuse_now(struct mvd_conn *c, const char *reason)
{
	json_t *resp = json_pack("{s:b, s:s}", "ok", 0, "error", reason);
	uint8_t *frame;
	size_t len;
	uv_os_fd_t fd;

	if (resp != NULL && mv_control_encode(MV_MSG_RESPONSE, resp, &frame, &len) == 0) {
		if (uv_fileno((uv_handle_t *)&c->pipe, &fd) == 0)
			(void)send(fd, frame, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		free(frame);
	}
	json_decref(resp);
	server_log_close(c, MVD_LOG_WARN, reason);
	c->closing = 1;
	uv_close((uv_handle_t *)&c->pipe, server_close_cb);
}

/* Whether c's uid may hold one more connection: its own limit, and the descriptors no one but
 * root and the daemon's own user may take. Refuses c when not; returns 0 or -1. */
static int server_admit(struct mvd_conn *c)
{
	const struct mvd_config *cfg = server_cfg;
	unsigned own = SERVER_OWN_FDS + cfg->reserve_fds;
	unsigned shared = server_nofile > own ? server_nofile - own : 0;
	char why[192];

	if (c->user->conns > cfg->conns_per_user)
		snprintf(why, sizeof(why), "too many connections (uid %u has %u open; "
			 "limits.connections_per_user is %u)", (unsigned)c->uid, c->user->conns - 1,
			 (unsigned)cfg->conns_per_user);
	else if (c->uid != 0 && c->uid != geteuid() && server_nconns > shared)
		snprintf(why, sizeof(why), "too many connections (%u open; the last %u of the %u "
			 "descriptors are kept for root, limits.reserve_fds)", server_nconns - 1,
			 (unsigned)cfg->reserve_fds, server_nofile);
	else if (server_nconns + SERVER_OWN_FDS > server_nofile)
		snprintf(why, sizeof(why), "too many connections (%u open; %u descriptors in all)",
			 server_nconns - 1, server_nofile);
	else
		return 0;
	server_refuse_now(c, why);
	return -1;
}

static void server_connection_cb(uv_stream_t *listener, int status)
{
	struct mvd_conn *c;
	struct ucred cred;
	socklen_t credlen = sizeof(cred);
	uv_os_fd_t fd;
	int rc;

	if (status < 0) {
		mvd_warn("accept: %s", uv_strerror(status));
		return;
	}
	c = mvd_xcalloc(1, sizeof(*c));
	c->id = server_next_conn++;
	c->kind = MVD_CONN_NEW;
	uv_pipe_init(server_loop, &c->pipe, 0);
	TAILQ_INSERT_TAIL(&server_conns, c, entry);
	rc = uv_accept(listener, (uv_stream_t *)&c->pipe);
	if (rc < 0) {
		mvd_warn("accept: %s", uv_strerror(rc));
		c->closing = 1;
		uv_close((uv_handle_t *)&c->pipe, server_close_cb);
		return;
	}
	/* Who the peer is decides what it may see: without its credentials it gets nothing. */
	if (uv_fileno((uv_handle_t *)&c->pipe, &fd) < 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &credlen) < 0) {
		mvd_warn("connection %llu: cannot learn the peer's credentials: %s",
			 (unsigned long long)c->id, strerror(errno));
		c->closing = 1;
		uv_close((uv_handle_t *)&c->pipe, server_close_cb);
		return;
	}
	c->uid = cred.uid;
	c->pid = cred.pid;
	c->user = server_user_get(c->uid);
	c->user->conns++;
	server_nconns++;
	/* Until its first frame is whole it owes one, as if it had sent part of it. */
	c->owes_since = uv_now(server_loop);
	mvd_debug("connection %llu: pid %d uid %u", (unsigned long long)c->id, (int)c->pid,
		  (unsigned)c->uid);
	if (server_admit(c) < 0)
		return;
	rc = uv_read_start((uv_stream_t *)&c->pipe, server_alloc_cb, server_read_cb);
	if (rc < 0) {
		char why[128];

		snprintf(why, sizeof(why), "cannot read: %s", uv_strerror(rc));
		mvd_conn_close(c, MVD_LOG_WARN, why);
	}
}

/* ---- the socket file ---- */

/* Makes the socket file again after it was removed: the lock says no other daemon serves the
 * path, so this one should be reachable there. */
static void server_rebind_cb(uv_handle_t *h)
{
	struct stat st;
	int rc;

	(void)h;
	if (server_stopping_flag)
		return;
	uv_pipe_init(server_loop, &server_listener, 0);
	rc = uv_pipe_bind(&server_listener, server_path);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&server_listener, 128, server_connection_cb);
	if (rc < 0 || stat(server_path, &st) < 0) {
		mvd_error("cannot make the socket %s again: %s; new clients cannot connect until "
			  "memvirtd restarts", server_path, rc < 0 ? uv_strerror(rc) : strerror(errno));
		return;
	}
	server_path_dev = server_watch_dev = st.st_dev;
	server_path_ino = server_watch_ino = st.st_ino;
	server_path_state = 0;
	mvd_warn("made the socket %s again; new clients connect to this daemon", server_path);
}

/* Says when the socket file was removed or replaced. One this daemon bound and that vanished is
 * made again; one systemd passed, or another file in its place, is left alone, and the daemon
 * serves the connections it has (memvirtd(8)). */
static void server_check_path(void)
{
	struct stat st;
	int state;

	if (server_watch[0] == '\0' || server_stopping_flag)
		return;
	if (stat(server_watch, &st) < 0)
		state = errno == ENOENT ? 1 : server_path_state;
	else
		state = st.st_dev == server_watch_dev && st.st_ino == server_watch_ino ? 0 : 2;
	if (state == server_path_state)
		return;
	server_path_state = state;
	if (state == 1 && server_path[0] != '\0') {
		mvd_warn("the socket %s was removed; making it again", server_watch);
		uv_close((uv_handle_t *)&server_listener, server_rebind_cb);
	} else if (state == 1) {
		mvd_error("the socket %s was removed; new clients cannot connect until memvirtd.socket "
			  "restarts; serving the %u connections open", server_watch, server_nconns);
	} else if (state == 2) {
		mvd_error("the socket %s was replaced by another file; new clients do not reach this "
			  "daemon; serving the %u connections open", server_watch, server_nconns);
	}
}

/* Records which file the daemon listens on, to notice when it goes. */
static void server_watch_path(const char *path)
{
	struct stat st;

	if (path[0] != '/' || strlen(path) >= sizeof(server_watch) || stat(path, &st) < 0)
		return;
	snprintf(server_watch, sizeof(server_watch), "%s", path);
	server_watch_dev = st.st_dev;
	server_watch_ino = st.st_ino;
}

/* Takes PATH.lock next to the socket, so that one daemon at a time serves the path, even once its
 * socket file was deleted. Returns 0; -1 when another daemon holds it (then *holder is its pid, 0
 * if unknown) or with a negative errno when the file cannot be made. */
static int server_lock(const char *path, pid_t *holder)
{
	struct stat a, b;
	char buf[32];
	ssize_t n;
	int fd;

	if (snprintf(server_lock_path, sizeof(server_lock_path), "%s.lock", path) >=
	    (int)sizeof(server_lock_path))
		return -ENAMETOOLONG;
	for (;;) {
		fd = open(server_lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
		if (fd < 0)
			return -errno;
		if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
			n = pread(fd, buf, sizeof(buf) - 1, 0);
			buf[n > 0 ? n : 0] = '\0';
			*holder = (pid_t)strtol(buf, NULL, 10);
			close(fd);
			return -1;
		}
		/* A daemon that stopped between our open and our flock removed the file it held:
		 * the lock that counts is on the file at the path now. */
		if (fstat(fd, &a) == 0 && stat(server_lock_path, &b) == 0 && a.st_dev == b.st_dev &&
		    a.st_ino == b.st_ino)
			break;
		close(fd);
	}
	n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
	if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, (size_t)n, 0) != n)
		mvd_warn("cannot write the pid to %s: %s", server_lock_path, strerror(errno));
	server_lock_fd = fd;
	return 0;
}

/* server_lock with its messages. strict: a lock file that cannot be made stops the start too (a
 * socket the daemon makes itself, in a directory it checked). Returns 0 or -1. */
static int server_take_lock(const char *path, int strict)
{
	pid_t holder = 0;
	int rc = server_lock(path, &holder);

	if (rc == -1) {
		if (holder > 0)
			mvd_error("another memvirtd (pid %d) serves %s; not starting", (int)holder, path);
		else
			mvd_error("another memvirtd serves %s (%s.lock is locked); not starting", path, path);
		return -1;
	}
	if (rc < 0) {
		server_lock_path[0] = '\0';
		if (strict) {
			mvd_error("cannot lock %s.lock: %s", path, strerror(-rc));
			return -1;
		}
		/* A socket systemd made, in a directory this daemon may not write (DynamicUser=,
		 * ProtectSystem=strict): systemd starts one daemon per socket unit, so the lock is not
		 * missed there. Any other reason is worth a warning. */
		if (rc == -EACCES || rc == -EROFS || rc == -EPERM)
			mvd_info("no lock file %s.lock (%s): one daemon per socket is left to systemd", path,
				 strerror(-rc));
		else
			mvd_warn("cannot lock %s.lock: %s; a second daemon on %s would not be stopped", path,
				 strerror(-rc), path);
	}
	return 0;
}

/* Drops peers that owe a frame for longer than limits.frame_timeout, watches the socket file, and
 * reports the log lines the rate limiter held back. */
static void server_sweep_cb(uv_timer_t *t)
{
	uint64_t now = uv_now(server_loop), limit = (uint64_t)server_cfg->frame_timeout_s * 1000;
	struct mvd_conn *c, *next;
	char why[128];

	(void)t;
	for (c = TAILQ_FIRST(&server_conns); c != NULL; c = next) {
		next = TAILQ_NEXT(c, entry);
		if (c->closing || c->owes_since == 0 || now - c->owes_since < limit)
			continue;
		snprintf(why, sizeof(why), "no whole frame in %u s (limits.frame_timeout)",
			 (unsigned)server_cfg->frame_timeout_s);
		mvd_conn_close(c, MVD_LOG_INFO, why);
		/* A peer this slow may not read either: it does not get to hold the close up. */
		if (!uv_is_closing((uv_handle_t *)&c->pipe))
			uv_close((uv_handle_t *)&c->pipe, server_close_cb);
	}
	server_check_path();
	mvd_log_flush_limited(0);
	server_check_idle();
}

static void server_signal_cb(uv_signal_t *h, int signum)
{
	char err[1024];

	if (signum == SIGHUP) {
		mvd_info("SIGHUP: reloading the config");
		if (mvd_server_reload(err, sizeof(err)) < 0) {
			mvd_warn("config reload failed, keeping the old config: %s", err);
			mvd_log_reopen();
		}
		return;
	}
	mvd_info("%s: stopping", signum == SIGTERM ? "SIGTERM" : "SIGINT");
	mvd_server_stop();
}

/* Creates dir and its missing parents, 0700 each. Returns 0 or a negative errno. */
static int server_mkdir_p(const char *dir)
{
	char buf[PATH_MAX];
	char *p;

	if (snprintf(buf, sizeof(buf), "%s", dir) >= (int)sizeof(buf))
		return -ENAMETOOLONG;
	for (p = buf + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0700) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, 0700) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* Makes the socket's directory, or checks the one there: only its owner may reach the socket
 * through it, since the per-uid checks are all a shared socket would have. */
static int server_prepare_dir(const char *path)
{
	char dir[PATH_MAX];
	char *slash;
	struct stat st;
	int rc;

	if (snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir)) {
		mvd_error("socket path %s is too long", path);
		return -1;
	}
	slash = strrchr(dir, '/');
	if (slash == NULL)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';

	rc = server_mkdir_p(dir);
	if (rc < 0) {
		mvd_error("cannot create the socket directory %s: %s", dir, strerror(-rc));
		return -1;
	}
	if (lstat(dir, &st) < 0) {
		mvd_error("cannot examine the socket directory %s: %s", dir, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		mvd_error("the socket directory %s is not a directory (a symbolic link is refused "
			  "too); remove it or choose another --socket", dir);
		return -1;
	}
	if (st.st_uid != geteuid()) {
		mvd_error("the socket directory %s belongs to uid %u, not to uid %u that memvirtd runs "
			  "as; refusing to listen there (remove it or choose another --socket)", dir,
			  (unsigned)st.st_uid, (unsigned)geteuid());
		return -1;
	}
	if ((st.st_mode & 077) != 0) {
		mvd_error("the socket directory %s has mode %04o; it must be 0700 so that only its "
			  "owner reaches the socket (chmod 700 %s, or choose another --socket)", dir,
			  (unsigned)(st.st_mode & 07777), dir);
		return -1;
	}
	return 0;
}

/* Removes a socket file nothing answers on. Returns 0 when path is free to bind. */
static int server_clear_stale(const char *path)
{
	struct sockaddr_un sa;
	struct stat st;
	int fd, rc;

	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		mvd_error("cannot examine %s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISSOCK(st.st_mode)) {
		mvd_error("%s exists and is not a socket; refusing to replace it", path);
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		mvd_error("socket: %s", strerror(errno));
		return -1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	close(fd);
	if (rc == 0) {
		mvd_error("another memvirtd is already listening on %s", path);
		return -1;
	}
	/* Only "nobody listens" makes the file stale; any other failure leaves it alone. */
	if (errno != ECONNREFUSED) {
		mvd_error("cannot tell whether %s is in use: %s", path, strerror(errno));
		return -1;
	}
	if (unlink(path) < 0 && errno != ENOENT) {
		mvd_error("cannot remove the stale socket %s: %s", path, strerror(errno));
		return -1;
	}
	mvd_info("removed the stale socket %s", path);
	return 0;
}

static int server_listen_path(const struct mvd_listen *l)
{
	struct stat st;
	int rc;

	if (strlen(l->path) >= sizeof(server_path)) {
		mvd_error("socket path %s is longer than a Unix socket allows (%zu bytes)", l->path,
			  sizeof(server_path) - 1);
		return -1;
	}
	if (!l->private_dir && server_prepare_dir(l->path) < 0)
		return -1;
	/* The lock, not the socket file, says whether another daemon serves the path: that file can
	 * be deleted under a running daemon. */
	if (server_take_lock(l->path, 1) < 0)
		return -1;
	if (server_clear_stale(l->path) < 0)
		return -1;
	rc = uv_pipe_bind(&server_listener, l->path);
	if (rc < 0) {
		mvd_error("cannot bind %s: %s", l->path, uv_strerror(rc));
		return -1;
	}
	snprintf(server_path, sizeof(server_path), "%s", l->path);
	if (stat(l->path, &st) == 0) {
		server_path_dev = st.st_dev;
		server_path_ino = st.st_ino;
	}
	return 0;
}

/* Reads the descriptor limit the connection limits are judged against. */
static void server_read_nofile(const struct mvd_config *cfg)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > UINT_MAX)
		server_nofile = UINT_MAX;
	else
		server_nofile = (unsigned)rl.rlim_cur;
	mvd_info("limits: %u descriptors, the last %u kept for root; per user %u connections, "
		 "%u sessions, %llu bytes buffered; a frame must be whole within %u s",
		 server_nofile, (unsigned)cfg->reserve_fds, (unsigned)cfg->conns_per_user,
		 (unsigned)cfg->sessions_per_user, (unsigned long long)cfg->buffered_per_user,
		 (unsigned)cfg->frame_timeout_s);
	if ((uint64_t)cfg->reserve_fds + SERVER_OWN_FDS >= server_nofile)
		mvd_warn("limits.reserve_fds %u leaves no descriptors of the %u for users other than "
			 "root", (unsigned)cfg->reserve_fds, server_nofile);
}

int mvd_server_start(uv_loop_t *loop, const struct mvd_listen *l, struct mvd_config *cfg)
{
	char err[512];
	int rc;

	server_loop = loop;
	server_cfg = cfg;
	clock_gettime(CLOCK_MONOTONIC, &server_started);
	server_idle_since = uv_now(loop);
	if (server_apply_log(cfg, err, sizeof(err)) < 0) {
		mvd_error("%s", err);
		return -1;
	}
	/* A peer that goes away mid-write must cost an error code, not the daemon. */
	signal(SIGPIPE, SIG_IGN);
	mvd_log_set_limit(cfg->log_lines);

	uv_pipe_init(loop, &server_listener, 0);
	if (l->fd >= 0) {
		/* systemd made the socket, where this daemon may not write: without a lock file it
		 * still serves, since systemd starts one daemon per socket. */
		if (l->path[0] == '/' && server_take_lock(l->path, 0) < 0)
			return -1;
		rc = uv_pipe_open(&server_listener, l->fd);
		if (rc < 0) {
			mvd_error("cannot use the inherited socket (fd %d): %s", l->fd, uv_strerror(rc));
			return -1;
		}
	} else if (server_listen_path(l) < 0) {
		mvd_server_cleanup();
		return -1;
	}
	server_watch_path(l->path);
	server_read_nofile(cfg);
	rc = uv_listen((uv_stream_t *)&server_listener, 128, server_connection_cb);
	if (rc < 0) {
		mvd_error("cannot listen on %s: %s", l->path, uv_strerror(rc));
		mvd_server_cleanup();
		return -1;
	}

	uv_signal_init(loop, &server_sighup);
	uv_signal_start(&server_sighup, server_signal_cb, SIGHUP);
	uv_signal_init(loop, &server_sigterm);
	uv_signal_start(&server_sigterm, server_signal_cb, SIGTERM);
	uv_signal_init(loop, &server_sigint);
	uv_signal_start(&server_sigint, server_signal_cb, SIGINT);
	uv_timer_init(loop, &server_stop_timer);
	/* Like the turns, the sweep does not keep the loop alive. */
	uv_timer_init(loop, &server_sweep);
	uv_timer_start(&server_sweep, server_sweep_cb, SERVER_SWEEP_MS, SERVER_SWEEP_MS);
	uv_unref((uv_handle_t *)&server_sweep);
	mvd_plan_start(loop);
	/* It does not keep the loop alive: the connections do. */
	uv_prepare_init(loop, &server_turns);
	uv_prepare_start(&server_turns, server_turns_cb);
	uv_unref((uv_handle_t *)&server_turns);

	mvd_info("memvirtd %s listening on %s%s (config: %s)", PACKAGE_VERSION, l->path,
		 l->fd >= 0 ? " (socket from systemd)" : "",
		 cfg->path != NULL ? cfg->path : "built-in defaults");
	return 0;
}

/* Cuts every connection still open when the stop's grace period is over. */
static void server_stop_timer_cb(uv_timer_t *t)
{
	struct mvd_conn *c;

	TAILQ_FOREACH(c, &server_conns, entry) {
		if (!uv_is_closing((uv_handle_t *)&c->pipe)) {
			mvd_debug("connection %llu: still open at the end of the stop; closing it",
				  (unsigned long long)c->id);
			uv_close((uv_handle_t *)&c->pipe, server_close_cb);
		}
	}
	uv_close((uv_handle_t *)t, NULL);
}

void mvd_server_stop(void)
{
	struct mvd_conn *c, *next;

	if (server_stopping_flag)
		return;
	server_stopping_flag = 1;
	/* It is closing already when a removed socket file is being made again. */
	if (!uv_is_closing((uv_handle_t *)&server_listener))
		uv_close((uv_handle_t *)&server_listener, NULL);
	uv_close((uv_handle_t *)&server_sweep, NULL);
	mvd_log_flush_limited(1);
	uv_close((uv_handle_t *)&server_sighup, NULL);
	uv_close((uv_handle_t *)&server_sigterm, NULL);
	uv_close((uv_handle_t *)&server_sigint, NULL);
	mvd_plan_stop();
	uv_close((uv_handle_t *)&server_turns, NULL);
	/* Sessions are told first, so that each process goes on with its local policy instead of
	 * waiting on grants that will not come. */
	for (c = TAILQ_FIRST(&server_conns); c != NULL; c = next) {
		next = TAILQ_NEXT(c, entry);
		if (c->closing)
			continue;
		if (c->kind == MVD_CONN_LIBRARY)
			mvd_conn_send(c, MV_MSG_SHUTDOWN, NULL, 0);
		mvd_conn_close(c, MVD_LOG_DEBUG, NULL);
	}
	/* The timer does not keep the loop alive: the loop ends as soon as the last connection has
	 * closed, and the timer only fires if one hangs. */
	uv_timer_start(&server_stop_timer, server_stop_timer_cb, SERVER_STOP_MS, 0);
	uv_unref((uv_handle_t *)&server_stop_timer);
}

void mvd_server_cleanup(void)
{
	struct stat st;

	/* Removed while still locked, so that no daemon can lock the file and then lose it; a
	 * daemon that opened it meanwhile sees the path changed and takes a new one. */
	if (server_lock_fd >= 0) {
		if (server_lock_path[0] != '\0' && unlink(server_lock_path) < 0 && errno != ENOENT)
			mvd_warn("cannot remove %s: %s", server_lock_path, strerror(errno));
		close(server_lock_fd);
		server_lock_fd = -1;
	}
	if (server_path[0] == '\0')
		return;
	/* A socket another daemon has bound at the same path since then is not ours to remove. */
	if (stat(server_path, &st) == 0 && st.st_dev == server_path_dev &&
	    st.st_ino == server_path_ino && unlink(server_path) < 0)
		mvd_warn("cannot remove %s: %s", server_path, strerror(errno));
	server_path[0] = '\0';
}

void mvd_server_free(void)
{
	mvd_config_free(server_cfg);
	server_cfg = NULL;
}
