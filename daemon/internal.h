/* memvirtd's internals: what the daemon's modules (server, session, arbiter, control, log) share.
 *
 * Everything runs on the one libuv loop thread, so nothing here is locked. Ownership:
 * - the server owns every struct mvd_conn; a connection is freed only in its uv_close callback;
 * - the server owns every struct mvd_user (a uid's connections, sessions and buffered bytes); a
 *   connection borrows its user's, which is freed with the user's last connection;
 * - a library connection owns its struct mvd_session, freed when the connection closes;
 * - the arbiter owns every struct mvd_device and borrows the sessions on it;
 * - a session owns its struct mvd_learn (learn.c), freed with it;
 * - the server owns the current struct mvd_config; everything else borrows it and must not keep
 *   pointers into it across a reload. */
#ifndef MVD_INTERNAL_H
#define MVD_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

#include <jansson.h>
#include <uv.h>

#include "daemon/conf.h"
#include "policies/map.h"
#include "policies/policy.h"
#include "protocol/frame.h"
#include "protocol/proto.h"

/* log.c: leveled log lines "TIME memvirtd[PID] LEVEL: message", and fatal errors. */
enum mvd_log_level {
	MVD_LOG_DEBUG,
	MVD_LOG_INFO,
	MVD_LOG_WARN,
	MVD_LOG_ERROR,
};

int mvd_log_parse_level(const char *s, enum mvd_log_level *out);
void mvd_log_set_level(enum mvd_log_level level);
/* Logs to path from now on (NULL: stderr). Returns 0, or a negative errno with the old target
 * kept. */
int mvd_log_open(const char *path);
/* Reopens the current log file, so that a rotated log is let go (SIGHUP). */
void mvd_log_reopen(void);
void mvd_log(enum mvd_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define mvd_debug(...) mvd_log(MVD_LOG_DEBUG, __VA_ARGS__)
#define mvd_info(...) mvd_log(MVD_LOG_INFO, __VA_ARGS__)
#define mvd_warn(...) mvd_log(MVD_LOG_WARN, __VA_ARGS__)
#define mvd_error(...) mvd_log(MVD_LOG_ERROR, __VA_ARGS__)
/* Rate-limited lines for events a peer can repeat at will: each key (the event and the user, say
 * "refused uid 1000") logs at most lines a minute (limits.log_lines); the rest are counted, and
 * the count is logged when the key's minute is over (mvd_log_flush_limited) or its slot is
 * needed. */
void mvd_log_set_limit(unsigned lines);
void mvd_log_limited(const char *key, enum mvd_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Reports the suppressed lines of keys whose minute is over (all: of every key), and frees them. */
void mvd_log_flush_limited(int all);
/* Logs at error and exits 1. */
void mvd_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* Out of memory is fatal in the daemon (STYLE.md): these never return NULL. */
void *mvd_xmalloc(size_t n);
void *mvd_xcalloc(size_t n, size_t size);
void *mvd_xrealloc(void *p, size_t n);
char *mvd_xstrdup(const char *s);

/* server.c: the listening socket, connections, signals and the current config. */

/* How the daemon listens. */
struct mvd_listen {
	const char *path;   /* the socket's path; borrowed */
	int fd;             /* an inherited listening socket (systemd), or -1 to create path */
	int private_dir;    /* the caller owns the socket's directory: do not create or judge it */
};

/* What a connection turned out to be, from its first frame. */
enum mvd_conn_kind {
	MVD_CONN_NEW,     /* nothing received yet */
	MVD_CONN_LIBRARY, /* HELLO: a libmemvirt.so process on one device */
	MVD_CONN_CONTROL, /* CONTROL_HELLO: the memvirt command */
};

struct mvd_user;

/* One accepted connection. */
struct mvd_conn {
	uv_pipe_t pipe;              /* first, so a handle pointer is a connection pointer */
	uint64_t id;                 /* for log lines */
	enum mvd_conn_kind kind;
	uid_t uid;                   /* the peer's, from SO_PEERCRED */
	pid_t pid;                   /* the peer's, from SO_PEERCRED; 0 when unknown */
	uint8_t *buf;                /* bytes received and not yet decoded */
	size_t len;
	size_t cap;
	int closing;                 /* uv_close called: send nothing more, decode nothing more */
	size_t queued;               /* memory held by writes not yet completed: frames and requests */
	uint64_t turn;               /* the loop turn `frames` counts in */
	unsigned frames;             /* frames handled in that turn */
	int paused;                  /* reading stopped until the next turn: its share is used up */
	struct mvd_session *session; /* a library connection's session; owned */
	struct mvd_user *user;       /* its uid's share of the limits (server.c); NULL before known */
	uint64_t owes_since;         /* loop time (ms) since it owes a whole frame; 0: owes none */
	int starved;                 /* reading stopped: its user's buffers are at their limit */
	int counted_session;         /* counted in its user's sessions */
	TAILQ_ENTRY(mvd_conn) entry;
};

int mvd_server_start(uv_loop_t *loop, const struct mvd_listen *l, struct mvd_config *cfg);
/* Begins a clean stop: no new connections, SHUTDOWN to every library session, then every
 * connection closes. The loop returns once all are gone. */
void mvd_server_stop(void);
int mvd_server_stopping(void);
/* Removes the socket file if this daemon created it and it is still the one it bound. */
void mvd_server_cleanup(void);
/* Frees the config once the loop has ended. */
void mvd_server_free(void);

/* The current config; borrowed until the next reload. */
const struct mvd_config *mvd_server_config(void);
/* Rereads the config file (the built-in defaults when the daemon has none). On success the new
 * config replaces the old, logging follows it and grants are recomputed; returns 0. Otherwise the
 * old config stays and err says why; returns -1. */
int mvd_server_reload(char *err, size_t errlen);
uint64_t mvd_server_uptime_s(void);
/* The uid memvirtd runs as: it may stop and reload the daemon, besides root. */
uid_t mvd_server_uid(void);
/* Set from the command line, never from the config: they survive reloads. */
void mvd_server_set_overrides(const char *log_level, const char *log_file);
/* --idle-exit: stop cleanly once no client has been connected for seconds (0: never). */
void mvd_server_set_idle_exit(unsigned seconds);

/* Queues a frame of type with payload[0, len) for c; a copy is made. Nothing when c is closing. */
void mvd_conn_send(struct mvd_conn *c, uint16_t type, const uint8_t *payload, size_t len);
/* Queues frame[0, len), a whole frame the caller malloc'd; takes ownership of it. */
void mvd_conn_send_frame(struct mvd_conn *c, uint8_t *frame, size_t len);
/* Closes c once what is queued for it is written; reason (may be NULL) is logged. */
void mvd_conn_close(struct mvd_conn *c, enum mvd_log_level level, const char *reason);

/* session.c: one library process on one device. */
struct mvd_device;

struct mvd_session {
	uint64_t id;
	struct mvd_conn *conn;       /* borrowed: the connection owns the session */
	uint32_t pid;
	uid_t uid;
	char job[64];                /* the HELLO's name cleaned (protocol/text.h): printable UTF-8 */
	char *cgroup;                /* from /proc/PID/cgroup at HELLO; NULL when unknown; owned */
	uint32_t device;             /* the ordinal in the process, for log lines */
	uint32_t rank;               /* the process's rank in its job, MV_RANK_NONE when it named none */
	char group[64];              /* the HELLO's group token (protocol/proto.h), "" for none */
	uint8_t uuid[16];
	uint64_t device_claim;       /* the device's memory as the process reported it */
	uint64_t device_total;       /* the claim, at most the device's trusted total */
	uint64_t budget_claim;       /* the HELLO's budget: 0 for the whole device */
	uint32_t hello_weight;       /* 0: the config's */
	uint32_t weight;             /* in force: hello_weight up to device.weight_max, else the
				      * config's for job */
	uint64_t min;                /* the config's for job, when it is for this process */
	uint64_t request;            /* what the process would use on its own, at most device_total */
	uint64_t grant;              /* the last grant computed */
	uint64_t host_want;          /* the HELLO's: the pinned host pool it would use on its own */
	uint64_t host_request;       /* its claim on the node's host limit at the last division */
	uint64_t host_grant;         /* its share of the node's host limit, MV_HOST_GRANT_NONE: none */
	int welcomed;                /* WELCOME sent: later changes go out as GRANT */
	struct mv_msg_counters counters; /* the latest snapshot (protocol/counters.def), zero until one arrives */
	uint64_t events;             /* events received */
	uint64_t events_dropped_heads; /* the sum of the EVENTS heads' dropped */
	uint64_t launches;           /* MV_EV_LAUNCH events received */
	struct mvd_learn *learn;     /* its iteration as learnt and planned for; owned */
	struct mvd_device *dev;      /* the arbiter's device; borrowed */
	TAILQ_ENTRY(mvd_session) entry;     /* every session */
	TAILQ_ENTRY(mvd_session) dev_entry; /* the device's sessions */
};
TAILQ_HEAD(mvd_sessions, mvd_session);

/* Makes the session of a library connection from its HELLO, joins it to its device's arbiter and
 * welcomes it with its first grant. */
struct mvd_session *mvd_session_new(struct mvd_conn *c, const struct mv_msg_hello *h);
/* Leaves the arbiter (the other sessions on the device may get more) and frees s. */
void mvd_session_free(struct mvd_session *s);
/* Handles one frame after HELLO. Returns 0, 1 when the process said BYE, or -1 with *why set. */
int mvd_session_frame(struct mvd_session *s, const struct mv_frame *f, const char **why);
/* Takes weight and min from cfg again. */
void mvd_session_configure(struct mvd_session *s, const struct mvd_config *cfg);
/* The config entry for s's job and identity (mvd_config_job_for). Borrowed until a reload. */
const struct mvd_job *mvd_session_job(const struct mvd_session *s);
/* Bounds what s claims by its device's trusted total (the arbiter's, once it joined). */
void mvd_session_bound(struct mvd_session *s, uint64_t total);
/* Sends GRANT (or, before the first, nothing: WELCOME carries it). */
void mvd_session_send_grant(struct mvd_session *s);
/* Sends WELCOME with s's first grant and logs the session (the arbiter, once it has divided). */
void mvd_session_welcome(struct mvd_session *s);
struct mvd_sessions *mvd_sessions(void);
size_t mvd_session_count_visible(uid_t viewer);
int mvd_session_visible(const struct mvd_session *s, uid_t viewer);
json_t *mvd_session_json(const struct mvd_session *s);
/* The UUID as 32 lowercase hex digits into out[33]. */
void mvd_uuid_format(const uint8_t uuid[16], char *out);

/* arbiter.c: each device's budget divided among its sessions. */

/* One session's claim on a device's budget. */
struct mvd_claim {
	uint64_t request; /* never granted more than this */
	uint64_t min;     /* granted first, up to request */
	uint32_t weight;  /* share of what is left after the minimums */
};

/* A claim with the group it belongs to. */
struct mvd_member {
	struct mvd_claim claim;
	uid_t uid;         /* whose claim it is: the peer's */
	const char *group; /* the group token; NULL or "" for a process on its own */
};

/* Divides budget among n claims into grants[0, n) by water-filling:
 * 1. each gets min(min, request); when those exceed the budget they are scaled down in
 *    proportion, and nothing more is given;
 * 2. what is left is shared in proportion to weight, never above a request; what a capped claim
 *    cannot take goes round again to the others.
 * The grants never sum above budget and each is at most its request. Pure: no state, no I/O. */
void mvd_arbiter_divide(uint64_t budget, size_t n, const struct mvd_claim *claims, uint64_t *grants);
/* The same for claims in groups: the claims of one uid with one token (a job of several processes)
 * are one claim on the budget, asking for the least request among them, with the sum of their
 * minimums and weights; what the group is granted is then divided among them as above. A token
 * never joins claims of different uids, and a claim with no token is a group of its own. So the
 * grants of a group never sum above its least request. Pure: no state, no I/O. */
void mvd_arbiter_divide_groups(uint64_t budget, size_t n, const struct mvd_member *members,
			       uint64_t *grants);

/* One GPU, known by UUID, and the sessions on it. */
struct mvd_device {
	uint8_t uuid[16];
	uint64_t total;        /* its memory, from the first trusted source (arbiter.c) */
	const char *source;    /* where total came from: "driver", "config" or "first process" */
	uint64_t budget;       /* mvd_config_device_budget(total) */
	uint64_t granted;      /* the sum of its sessions' grants */
	size_t nsessions;
	int dirty;             /* sessions joined or left since it was last divided */
	struct mvd_sessions sessions;
	TAILQ_ENTRY(mvd_device) entry;
};

/* Adds s to its device (made on first use), bounded by the device's trusted total; the device is
 * divided again at the next mvd_arbiter_settle, which welcomes s with its first grant. */
void mvd_arbiter_join(struct mvd_session *s);
/* Removes s; the rest are regranted at the next mvd_arbiter_settle. A device with no sessions
 * left is forgotten. */
void mvd_arbiter_leave(struct mvd_session *s);
/* Divides every device that sessions joined or left since the last call, sends GRANT to the
 * sessions whose grant changed and WELCOME to those that joined. Called once per loop turn, and
 * before a stats answer. */
void mvd_arbiter_settle(void);
/* The node's pinned host memory (memvirt.json's host.limit) is divided like a device, by
 * mvd_arbiter_divide over every session: each claims at least its pool's bytes now (never taken
 * back), and at most two pool chunks more than it holds or the pool size a page-out waits for
 * (host_need_bytes), whichever is more, but never more than its host_want, so that the grants
 * follow demand and no process is refused while the node's total is below the limit. */
/* s's claim on the node's host limit, from its latest COUNTERS. */
void mvd_arbiter_host_claim(const struct mvd_session *s, struct mvd_claim *c);
/* After a COUNTERS snapshot of s (its pool held old_pool bytes and its need was old_need before):
 * marks the node for a new division at the next mvd_arbiter_settle when the pool came within a
 * chunk of its claim, or a page-out waits for more than the grant. */
void mvd_arbiter_host_counters(struct mvd_session *s, uint64_t old_pool, uint64_t old_need);
/* The node's host limit (null: none), what is granted of it and what the pools hold, counting the
 * viewer's sessions (root: all). New reference. */
json_t *mvd_arbiter_host_json(uid_t viewer);

/* gpu.c. The memory of the GPU with uuid, from the CUDA driver (libcuda.so.1, loaded on the
 * first call). Returns 0 with *total, or -ENODEV when no driver lists that GPU. */
int mvd_gpu_total(const uint8_t uuid[16], uint64_t *total);
/* The node's ordinal of the GPU with uuid, as the driver lists it, or -1 when it does not. */
int mvd_gpu_index(const uint8_t uuid[16]);

/* Recomputes every device's budget and grants under the current config. */
void mvd_arbiter_recompute_all(void);
/* The devices the viewer has sessions on (root: all), as protocol/control.h's DEVICE list;
 * granted and sessions count only what the viewer may see. New reference. */
json_t *mvd_arbiter_devices_json(uid_t viewer);

/* learn.c and plan.c: each session's iteration learnt from its events, and the plans its job's
 * policy makes.
 *
 * Events feed the learner of policies/learn.h, whose trace is bounded: past a cap it restarts from
 * its last iteration or from its live buffers, and a gap in the events (EVENTS' dropped) restarts it
 * from its live buffers. Malformed sequences are counted, logged a few times, and not learnt. */
struct mv_learner;
struct mv_trace;
/* What one session's learning holds at most, whatever it is sent. */
#define MVD_LEARN_MEMORY_MAX (48u << 20)

/* One session's learning (learn.c) and what was last planned and sent from it (plan.c). */
struct mvd_learn {
	uint64_t session;          /* for log lines */
	struct mv_learner *learner; /* owned */
	uint32_t logged;           /* ignored events logged */

	/* The last iteration detected. */
	int found;                 /* an iteration was ever learnt (the stats' "period found") */
	uint32_t iter_nlaunch;
	uint64_t iter_fingerprint;
	uint64_t planned_launches; /* launches learnt at the last planning */

	/* The inputs of the last planning, so that unchanged ones are not planned again. */
	int planned;
	uint64_t key_fingerprint;
	uint32_t key_nlaunch;
	char key_policy[32];
	struct mv_policy_params key_params;

	/* What was last sent. */
	int sent_ops;              /* the last plan sent had ops: an empty one would withdraw it */
	uint64_t sent_hash;
	uint32_t sent_nops;
	uint64_t plan_id;
	uint64_t plans_sent;
	uint64_t plan_ns;          /* how long the last planning took */

	int warned_long;           /* logged that its iteration is too long to plan */

	/* While the library follows the plan quietly (MV_EV_QUIET to MV_EV_LOUD), the trace is left as
	 * it was, and the buffers allocated meanwhile wait here, to be learnt when launches resume. */
	int quiet;
	uint64_t quiet_spells;     /* times the library went quiet */
	int hushed;                /* memvirtd asked the library for no launches (MV_MSG_LAUNCHES) */
	struct mv_map qmap;        /* address -> index into qbufs */
	struct mvd_qbuf {
		uint64_t key, size, site;
	} *qbufs;
	uint32_t nq, capq;
	int qlost;                 /* more were allocated than LEARN_LIVE_MAX: the live set is unknown */
};

struct mvd_learn *mvd_learn_new(uint64_t session, uint64_t device_total);
/* The library was asked for no launches (on), or for launches again (off): while either this or
 * the library's own quiet spell lasts, the trace is kept as it is. */
void mvd_learn_hush(struct mvd_learn *l, int on);
void mvd_learn_free(struct mvd_learn *l);
/* One EVENTS head's count of lost events, before its events are fed. */
void mvd_learn_gap(struct mvd_learn *l, uint32_t dropped);
void mvd_learn_event(struct mvd_learn *l, const struct mv_event *ev);
/* Running out of memory while learning or planning is fatal (the daemon's xmalloc rule). */
void mvd_learn_nomem(int rc);
/* The bytes l holds. */
size_t mvd_learn_memory(const struct mvd_learn *l);
/* The trace as learnt so far; borrowed until the next event. */
const struct mv_trace *mvd_learn_trace(const struct mvd_learn *l);
/* Adds the learning's fields to a session's stats object. */
void mvd_learn_json(const struct mvd_learn *l, json_t *o);

/* plan.c. Plans for what l has learnt with the policy of that name, unless nothing changed since
 * the last planning (no new launches, same policy and params). Returns 1 with a PLAN payload in
 * *payload (malloc'd, the caller frees it) and *len when one should be sent: a new plan, or an empty
 * one withdrawing the last; otherwise 0. An identical plan is never returned twice in a row. */
int mvd_learn_plan(struct mvd_learn *l, const char *policy, const struct mv_policy_params *params,
		   uint8_t **payload, size_t *len);

/* Plans for s with its job's policy and grant, and sends the plan when there is a new one. */
void mvd_plan_session(struct mvd_session *s);
/* A timer plans for every session a few times a second. */
void mvd_plan_start(uv_loop_t *loop);
void mvd_plan_stop(void);

/* control.c: the memvirt command's requests. */

/* Handles one frame of a control connection. Returns 0, or -1 with *why set when the frame is not
 * one a control session may send. */
int mvd_control_frame(struct mvd_conn *c, const struct mv_frame *f, const char **why);
/* The stats answer ({"ok": true, "version", "sessions", "devices"}) as the viewer may see it, for
 * the stats command and for /metrics. New reference. */
json_t *mvd_control_stats_json(uid_t viewer);

/* metrics.c: Prometheus over HTTP (libmicrohttpd on the loop's thread). */

/* Serves GET /metrics on addr (mvd_listen_parse's form). Returns 0, or -1 after logging why. */
int mvd_metrics_start(uv_loop_t *loop, const char *addr);
/* Stops serving; called once the loop has ended. */
void mvd_metrics_stop(void);

#endif
