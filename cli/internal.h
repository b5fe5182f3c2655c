/* memvirt, the command-line front end: what its files share. Its own names take the prefix cli_
 * (the daemon's are mvd_, the shared modules' mv_).
 *
 * Each subcommand is a file cli/cmd-NAME.c with one entry point here (cmd_config, cmd_run,
 * cmd_stats, cmd_ps, cmd_daemon, cmd_policies, cmd_trace).
 *
 * An entry point gets the arguments from its own name on (argv[0] is "config", "run", ...) and
 * returns the exit status: 0 for success, 1 for a failure, 2 for a usage error.
 *
 * Errors, one rule everywhere: a line on stderr that starts with the command as far as its
 * subcommand, then ": " ("memvirt: unknown command ...", "memvirt run: --budget ...", "memvirt
 * trace replay: ..."), names the bad value in quotes, and, for a mistyped name, ends with "did you
 * mean '...'?" (cli_closest, cli_option_error). The one exception is a diagnostic about a line of a
 * file the user wrote (a configuration), which reads "FILE:LINE:COLUMN: ..." as compilers write
 * theirs, so that editors can jump to it. */
#ifndef MV_CLI_INTERNAL_H
#define MV_CLI_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "policies/policy.h"

/* memvirt config check FILE | memvirt config reload (cmd-config.c). */
int cmd_config(int argc, char **argv);

/* memvirt config reload: asks the running daemon to read its configuration file again. Called by
 * cmd_config with argv[0] "reload". */
int cmd_config_reload(int argc, char **argv);

/* ---- The control client (client.c): the memvirt command's session with memvirtd. ---- */

/* How long a command waits for the daemon's answer to one request. */
#define CLI_CLIENT_TIMEOUT_MS 30000

/* One control session: a connected socket that has sent MV_MSG_CONTROL_HELLO. */
struct cli_client {
	int fd;
};

/* The socket path a command uses: explicit_path when not NULL, else mv_socket_path(). Returns 0,
 * or -ENAMETOOLONG. */
int cli_client_socket(const char *explicit_path, char *buf, size_t len);

/* The socket a command given --socket explicit_path (may be NULL) and configuration cfg (may be
 * NULL) talks to, in memvirtd's order: explicit_path, $MEMVIRT_SOCKET, cfg's daemon.socket. NULL
 * means cli_client_socket's default. Borrowed from its arguments. */
struct mvd_config;
const char *cli_socket_choice(const char *explicit_path, const struct mvd_config *cfg);

/* Connects to the daemon's socket at path and sends the control hello. Returns 0, or a negative
 * errno: -ENOENT or -ECONNREFUSED when no daemon listens there, -EPERM when the socket, its
 * directory or the daemon is not this user's or root's (mv_socket_trusted, mv_peer_trusted). */
int cli_client_open(struct cli_client *c, const char *path, int timeout_ms);

/* Sends req (borrowed) and reads one response within timeout_ms. Returns 0 and *resp, a new
 * reference the caller json_decrefs; or a negative errno with one line in err. A response with
 * "ok": false is still 0: see cli_client_error. */
int cli_client_request(struct cli_client *c, const json_t *req, int timeout_ms, json_t **resp,
		       char *err, size_t errlen);

void cli_client_close(struct cli_client *c);

/* Opens a session, sends {"cmd": cmd}, reads the response and closes, as cli_client_request.
 * -EPERM: the daemon was refused, and err says why. */
int cli_client_call(const char *path, const char *cmd, int timeout_ms, json_t **resp, char *err,
		    size_t errlen);

/* The longest socket path a command keeps. */
#define CLI_PATH_MAX 256

/* The daemons a command reads (memvirt(1), DISCOVERY; cmd-ps.c): the one on explicit_path (--socket)
 * or $MEMVIRT_SOCKET alone when given; else the system daemon's socket when a daemon answers there,
 * and this user's own socket when it is another (always listed). Writes *n (1 or 2) paths;
 * returns 0, or -ENAMETOOLONG. */
int cli_daemons_found(const char *explicit_path, char paths[][CLI_PATH_MAX], int *n);

/* NULL when resp says "ok": true; else its "error" (borrowed from resp). */
const char *cli_client_error(const json_t *resp);

/* Prints why a command could not reach the daemon on path (err and msg from cli_client_call). */
void cli_client_no_daemon(const char *prog, const char *path, int err, const char *msg);

/* Prints root, indented and in its keys' order, on stdout, and drops the reference. */
void cli_print_json(json_t *root);

/* The command treats out-of-memory as fatal: these print a line and exit 1. */
void *xmalloc(size_t n);
void *xrealloc(void *p, size_t n);
void xoom(void);

/* ---- Subcommands of memvirt: each takes argv from the subcommand's name on and returns the
 * exit status. ---- */
int cmd_run(int argc, char **argv);             /* cmd-run.c */
/* Sets the framework profiles that the user's environment leaves open, and says once what memvirt
 * sees of a framework whose allocator the user chose (profiles.c). */
void cli_framework_profiles(const char *prog);
int cmd_stats(int argc, char **argv);           /* cmd-stats.c */
int cmd_ps(int argc, char **argv);              /* cmd-ps.c */
int cmd_daemon(int argc, char **argv);          /* cmd-daemon.c */
int cmd_policies(int argc, char **argv);        /* cmd-policies.c */
int cmd_trace(int argc, char **argv);           /* cmd-trace.c */

/* cmd-policies.c: 0 when name is a built-in policy; else prints "PROG: unknown policy 'NAME'"
 * with a suggestion and the list of known ones, and returns -1. */
int cli_policy_check(const char *prog, const char *name);

/* ---- The planning options run and trace share (options.c). ---- */

/* Their getopt_long values, and the entries for an option table; cli_plan_option reads them. */
enum {
	CLI_OPT_POLICY = 'p',
	CLI_OPT_LOOKAHEAD = 'L',
	CLI_OPT_PAGE_MIN = 'm',
};
#define CLI_PLAN_OPTIONS \
	{"policy", required_argument, NULL, CLI_OPT_POLICY}, \
	{"lookahead", required_argument, NULL, CLI_OPT_LOOKAHEAD}, \
	{"page-min", required_argument, NULL, CLI_OPT_PAGE_MIN}

/* What they asked for: each as given (borrowed from argv; NULL when not), and the knobs with
 * lookahead and min_size as read over mv_policy_defaults(). */
struct cli_plan {
	const char *policy;
	const char *lookahead;
	const char *page_min;
	struct mv_policy_params knobs;
};

/* Reports the option getopt_long just refused, with its own messages off (an optstring that
 * begins "+:" or ":", as every command's does): c is what it returned ('?' or ':') and argv what it
 * was given. Prints "PROG: unknown option '--budgte'; did you mean '--budget'?", or says which
 * value is missing, not taken or ambiguous, from the table opts. */
struct option;
void cli_option_error(const char *prog, int c, char **argv, const struct option *opts);

/* Nothing given: the policies' defaults. */
void cli_plan_init(struct cli_plan *p);

/* Checks and records option opt (CLI_OPT_*) with its argument. Returns 0, or -1 with the reason
 * printed after "PROG: ". */
int cli_plan_option(const char *prog, int opt, const char *arg, struct cli_plan *p);

/* cli_plan_option on each option recorded as given, for a command that reads its options first
 * and checks them after: policy, lookahead, then page_min. Returns 0 or -1. */
int cli_plan_check(const char *prog, struct cli_plan *p);

/* Reads arg, the argument of option (such as "--headroom"), as the planning knob of that name
 * (policies/params.c). Returns 0 and *out, or -1 with "PROG: OPTION 'ARG' is not ..." printed. */
int cli_knob_option(const char *prog, const char *option, const char *knob, const char *arg,
		    struct mv_knob_value *out);

/* ---- The modeled schedule (sched.c), for `memvirt trace timeline` and `plot`. ---- */

/* One copy: buffer buf out (in == 0) or in, on its engine from start to end (ns). */
struct cli_sched_copy {
	uint32_t buf;
	uint8_t in, kind, late; /* kind: enum mv_model_copy; late: a planned page-in its launch waited for */
	uint64_t start, end;
};

/* A change of the device bytes held, at time t. */
struct cli_sched_sample {
	uint64_t t;
	int64_t delta;
};

/* The reported (steady-state) iteration of mv_model_run(), event by event. Times are on the
 * model's timeline; the iteration runs from t0 to end. Owned by the caller; cli_sched_free(). */
struct cli_sched {
	uint64_t t0, end;
	uint64_t *start, *fin;            /* per launch */
	struct cli_sched_copy *copies;    /* in issue order; some, issued by the iteration before,
					   * start before t0 */
	uint32_t ncopies;
	uint64_t base;                    /* bytes held at t0, before the samples */
	struct cli_sched_sample *samples; /* in the order they arose, not sorted */
	uint32_t nsamples;
	uint64_t step_ns, stall_ns, compute_ns, peak;
	int over_budget;
};

/* Replays the iteration under the model (mv_model_observe) and keeps its schedule. Returns 0 or the
 * model's negative errno. */
int cli_sched_run(const struct mv_iter *it, const struct mv_plan *plan, uint64_t budget,
		  const struct mv_machine *m, struct cli_sched *out);
void cli_sched_free(struct cli_sched *s);

/* One point of a memory curve: from time t (ns since the iteration began), bytes are held. */
struct cli_sched_point {
	uint64_t t, bytes;
};

/* The schedule's device bytes over its iteration as a step curve, one point per instant that
 * changes it, from 0 to its end (s->samples is sorted on the way). Returns how many points, in
 * *out (malloc'd). */
size_t cli_sched_curve(struct cli_sched *s, struct cli_sched_point **out);

/* memvirt.c: the closest of the NULL-terminated names to word, or NULL when none is close enough
 * to suggest. */
const char *cli_closest(const char *word, const char *const *names);

/* Waits up to timeout_ms until a daemon answers a status request on path. Returns 0; -ETIMEDOUT;
 * or, when child > 0 and that child of ours exits first, -ECHILD with its status in *wstatus. */
int cli_client_wait(const char *path, int timeout_ms, pid_t child, int *wstatus);

/* memvirt.c: where this program lives, for the build tree's relative paths. Returns 0 with the
 * directory of /proc/self/exe in buf, or -1. */
int cli_exe_dir(char *buf, size_t len);

/* memvirt.c: the memvirtd to start: the build tree's daemon/memvirtd, else the one next to this
 * program, else the installed one, else "memvirtd" for a search of PATH. Writes into buf and
 * returns buf. */
char *cli_memvirtd_path(char *buf, size_t len);

/* ---- memvirt trace: what its subcommands share (cmd-trace.c). ---- */

/* Launches at the end of a recorded run that may lie outside the training loop (a final evaluation,
 * checksums, teardown) and are set aside to find it. */
#define CLI_TRACE_TAIL_MAX 4096u

/* What the command line asked for. Strings are borrowed from argv. */
struct cli_trace_opts {
	const char *sub;          /* "replay", "timeline", "plot" or "info" */
	const char *file;
	struct cli_plan plan;     /* --policy (NULL: not given), --lookahead, --page-min */
	const char *budget;       /* NULL: not given */
	int all, json;
	int has_iter;
	uint32_t iter_first, iter_n;
	double h2d_gbps, d2h_gbps;
	uint32_t feedback;
	int no_host_mapping;      /* --no-host-mapping: the device cannot reach host memory */
};

/* A trace read and its iteration, with the budget resolved. Owns what it points to. */
struct cli_trace_ctx {
	const struct cli_trace_opts *o;
	uint8_t *image;           /* the file's bytes */
	size_t len;
	struct mv_trace *t;
	uint32_t first_op, nops;
	struct mv_iter *it;
	struct mv_machine m;
	uint64_t peak;            /* the iteration's unlimited peak */
	uint64_t budget;          /* 0 when none was asked for */
};

/* One policy's outcome under the budget. */
struct cli_trace_run {
	const struct mv_policy *pol;
	struct mv_plan *plan;     /* owned */
	struct mv_model_result r;
	uint32_t rounds;          /* feedback rounds applied */
};

/* Reads the file and, when want_iter, finds and builds its iteration and resolves the budget.
 * Prints the reason and returns -1 on failure; cli_trace_ctx_free() frees what it read. */
int cli_trace_load(struct cli_trace_ctx *c, const struct cli_trace_opts *o, int want_iter);
void cli_trace_ctx_free(struct cli_trace_ctx *c);

/* Plans the iteration with pol and measures the plan, learning from late page-ins for up to
 * o->feedback rounds as the library does. Returns 0 or -1 with the reason printed. */
int cli_trace_plan_run(const struct cli_trace_ctx *c, const struct mv_policy *pol, uint64_t budget,
		       struct cli_trace_run *run);

/* cli_trace_plan_run, then the plan's schedule (cli_sched_run) in *sched. Returns 0 or -1. */
int cli_trace_modeled(const struct cli_trace_ctx *c, const struct mv_policy *pol, uint64_t budget,
		      struct cli_trace_run *run, struct cli_sched *sched);

/* The subcommands, one file each: they return the exit status. */
int cli_trace_replay(const struct cli_trace_opts *o);   /* trace-replay.c */
int cli_trace_info(const struct cli_trace_opts *o);     /* trace-info.c */
int cli_trace_timeline(const struct cli_trace_opts *o); /* trace-timeline.c */
int cli_trace_plot(const struct cli_trace_opts *o);     /* trace-plot.c */

#endif
