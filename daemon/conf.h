/* memvirt.json: the configuration memvirtd and `memvirt config check` read. Every key is checked:
 * an unknown key, a wrong type or a bad value is refused with file:line:col, the key's path and,
 * when a key looks misspelt, the key it probably meant. memvirt.json(5) lists every key.
 *
 *   {
 *     "daemon":  { "log_level": "info", "log_file": "/var/log/memvirtd.log",
 *                  "socket": "/run/memvirt/memvirtd.sock", "metrics": "127.0.0.1:9464",
 *                  "metrics_job_names": false },
 *     "device":  { "budget": "90%" },
 *     "host":    { "limit": "50%" },
 *     "jobs":    { "default":  { "weight": 1, "min": "0", "policy": "lru" },
 *                  "train.py": { "weight": 2, "min": "4GiB", "policy": "vdnn-all",
 *                                "lookahead": 2, "page_min": "4MiB" } },
 *     "library": { "slab_threshold": "1MiB", "host_limit": "64GiB", "safety_net": true },
 *     "limits":  { "connections_per_user": 256, "sessions_per_user": 128,
 *                  "buffered_per_user": "64MiB", "reserve_fds": 64, "frame_timeout": 30,
 *                  "log_lines": 20 }
 *   }
 *
 * Ownership: mvd_config_load and mvd_config_parse return a config the caller frees with
 * mvd_config_free; everything reached from it is owned by it. */
#ifndef MVD_CONF_H
#define MVD_CONF_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Which of a job's planning knobs the file gives (the others are the library's defaults, which
 * `memvirt run` then leaves alone). */
#define MVD_JOB_POLICY           0x01u
#define MVD_JOB_PAGE_MIN         0x02u
#define MVD_JOB_LOOKAHEAD        0x04u
#define MVD_JOB_HEAVY_FRACTION   0x08u
#define MVD_JOB_HEADROOM         0x10u
#define MVD_JOB_ITERATION_MARKER 0x20u

/* How the arbiter and the planner treat one job (a process whose job name matches, or
 * "default"). */
struct mvd_job {
	char *name;
	uint32_t weight;   /* share of the device budget beyond the minimums, 1 to 1000 */
	uint64_t min;      /* bytes the job is granted before any weighted share */
	char *policy;      /* the paging policy's name, one of mv_policies (memvirt-policies(7)) */
	uint64_t page_min; /* smallest buffer a plan pages, > 0 (default 1 MiB) */
	uint32_t lookahead;      /* vdnn-*: layers ahead a page-in is issued (default 1) */
	double heavy_fraction;   /* vdnn-conv: in (0, 1] (default 0.5) */
	double headroom;         /* mmcnn: in [0, 1) (default 0.02) */
	char *iteration_marker;  /* a kernel name that starts each iteration; NULL: detect it */
	unsigned set;            /* MVD_JOB_*: the knobs the file gives, itself or by "default" */
	/* Whose processes the entry is for, besides their job name; unset, anyone's. An entry that
	 * names none of them gives its weight and min only to root's and memvirtd's own user's
	 * processes, since any process can call itself by any name. */
	long long uid;           /* -1: any */
	char *cgroup;            /* a cgroup path the process must be in or below; NULL: any */
	char *unit;              /* a systemd unit its cgroup path must name; NULL: any */
};

/* Who a process is, from what the daemon can check itself: its socket's credentials and
 * /proc/PID/cgroup. */
struct mvd_peer {
	uid_t uid;
	uid_t admin;             /* memvirtd's own uid, trusted like root */
	const char *cgroup;      /* the process's cgroup path (v2, or v1's systemd one); NULL: unknown */
};

struct mvd_config {
	char *path;               /* the file it came from, NULL for the built-in defaults */
	char *log_level;          /* "debug", "info", "warn" or "error" */
	char *log_file;           /* NULL: stderr */
	char *socket;             /* NULL: the default path (protocol/paths.h) */
	char *device_budget;      /* a size ("60GiB") or a percentage of each device ("90%") */
	uint64_t device_total;    /* each device's memory when the driver cannot be asked; 0: none */
	uint32_t weight_max;      /* the most weight a process may ask for itself (MEMVIRT_WEIGHT) */
	struct mvd_job defaults;  /* "jobs"."default", or the built-in one */
	struct mvd_job *jobs;     /* every other "jobs" entry */
	size_t njobs;
	uint64_t slab_threshold;  /* handed to the library of jobs that memvirt run starts */
	uint64_t host_limit;      /* 0: the library's default */
	char *host_limit_spec;    /* "host"."limit": a size or a percentage of MemTotal; NULL: none */
	int safety_net;
	/* "limits": what one user may hold of the daemon, so that no user starves the others. */
	uint32_t conns_per_user;    /* open connections */
	uint32_t sessions_per_user; /* library sessions */
	uint64_t buffered_per_user; /* bytes of receive buffers, which hold frames not yet whole */
	uint32_t reserve_fds;       /* descriptors only root and the daemon's own user may take */
	uint32_t frame_timeout_s;   /* a peer that leaves a frame (or its first) unfinished this long is dropped */
	uint32_t log_lines;         /* lines a minute of one kind of event from one user */
	/* Prometheus over HTTP (daemon/metrics.c). */
	char *metrics;              /* "ADDRESS:PORT" to serve /metrics on; NULL: not served */
	int metrics_job_names;      /* show every job's name there, not only the daemon's own user's */
};

/* The built-in configuration: log level info, budget 100%, weight 1, min 0, policy lru, and the
 * planning knobs of mv_policy_defaults(). */
struct mvd_config *mvd_config_default(void);

/* Reads and checks path. Returns 0 and *out, or -1 with err holding one line:
 * "FILE:LINE:COL: KEY.PATH: MESSAGE" (and " (did you mean 'KEY'?)" for a misspelt key). A file
 * that cannot be read or is not JSON gets "FILE: ..." or "FILE:LINE:COL: ..." alike. */
int mvd_config_load(const char *path, struct mvd_config **out, char *err, size_t errlen);

/* The same check over text[0, len) (not NUL-terminated), which messages and the config's path call
 * name: mvd_config_load on a file that holds the text. */
int mvd_config_parse(const char *name, const char *text, size_t len, struct mvd_config **out,
		     char *err, size_t errlen);

void mvd_config_free(struct mvd_config *c);

/* The rule for a job name: its own entry, else the defaults. Borrowed. */
const struct mvd_job *mvd_config_job(const struct mvd_config *c, const char *job);

/* The entry for a process of that job name and identity: the job's own entry when it is for
 * who (its uid, cgroup and unit, where it names them), else the defaults. Borrowed. */
const struct mvd_job *mvd_config_job_for(const struct mvd_config *c, const char *job,
					 const struct mvd_peer *who);

/* Whether j's weight and min apply to who: j is the defaults, names a uid, or who is root or
 * memvirtd's own user. */
int mvd_config_job_trusted(const struct mvd_config *c, const struct mvd_job *j,
			   const struct mvd_peer *who);

struct sockaddr_storage;

/* An address to listen on: "IPV4:PORT" or "[IPV6]:PORT", numeric, port 1 to 65535. Returns 0 with
 * *sa, or -1 with err naming the bad part. */
int mvd_listen_parse(const char *s, struct sockaddr_storage *sa, char *err, size_t errlen);

/* The budget for a device of total bytes. */
uint64_t mvd_config_device_budget(const struct mvd_config *c, uint64_t total);

/* The node's pinned host limit that the daemon divides among its processes: "host"."limit" of
 * memtotal bytes (the node's memory), or 0 when the config sets none. */
uint64_t mvd_config_host_limit(const struct mvd_config *c, uint64_t memtotal);

/* The policy names, for messages: "lru, vdnn-all, ... and auto" (from mv_policies). Returns buf. */
char *mvd_policy_names(const char *conj, char *buf, size_t len);

#endif
