/* MEMVIRT_* settings and the log. The library never prints to stdout and never exits its host
 * process: a bad setting gets one log line and its default. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "interpose/internal.h"
#include "policies/policy.h"
#include "policies/trace.h"
#include "protocol/frame.h"
#include "protocol/text.h"
#include "protocol/units.h"

struct mv_config mv_cfg = {
	.slab_threshold = 1u << 20,
	.safety_net = 1,
	.log_level = MV_LOG_WARN,
	.daemon = 1,
	.policy = "lru",
	.headroom = -1,
	.rank = MV_RANK_NONE,
	.host_wait_ms = 2000,
};

static void bad(const char *name, const char *value, const char *expected, const char *fallback);

/* A whole decimal number up to max in v, nothing else. Returns 0 and *out, or -1. */
static int parse_whole(const char *v, uint32_t max, uint32_t *out)
{
	unsigned long long w;
	char *end;

	errno = 0;
	w = strtoull(v, &end, 10);
	if (*v < '0' || *v > '9' || *end != '\0' || errno != 0 || w > max)
		return -1;
	*out = (uint32_t)w;
	return 0;
}

/* The built-in policies, for a message: "one of lru, vdnn-all, ...". Returns buf. */
static const char *policy_choices(char *buf, size_t len)
{
	size_t k;

	snprintf(buf, len, "one of");
	for (size_t i = 0; mv_policies[i] != NULL; i++) {
		k = strlen(buf);
		snprintf(buf + k, len - k, "%s %s", i > 0 ? "," : "", mv_policies[i]->name);
	}
	return buf;
}

/* A planning knob from var, in the range every setting of it is held to (policies/params.c).
 * Returns 0 and *out when var holds a good value; -1 when it is unset or bad, a bad one with a log
 * line saying that fallback stands. */
static int load_knob(const char *var, const char *knob, const char *fallback,
		     struct mv_knob_value *out)
{
	const struct mv_knob *k = mv_knob_find(knob);
	const char *v = getenv(var);
	char wanted[128];

	if (v == NULL || *v == '\0')
		return -1;
	if (mv_knob_parse(k, v, MV_KNOB_WORDS, out, NULL, 0) == 0)
		return 0;
	bad(var, v, mv_knob_expected(k, MV_KNOB_WORDS, wanted, sizeof(wanted)), fallback);
	return -1;
}

static void load_planning(void)
{
	static const char policy_default[] = "the policy's default";
	static const char measured[] = "the measured bandwidth";
	struct mv_knob_value x;
	const char *v;
	char choices[128];

	v = getenv("MEMVIRT_POLICY");
	if (v != NULL && *v != '\0') {
		if (mv_policy_find(v) != NULL)
			snprintf(mv_cfg.policy, sizeof(mv_cfg.policy), "%s", v);
		else
			bad("MEMVIRT_POLICY", v, policy_choices(choices, sizeof(choices)), "lru");
	}
	v = getenv("MEMVIRT_RECORD");
	if (v != NULL && *v != '\0')
		mv_cfg.record = v;
	v = getenv("MEMVIRT_RECORD_MAX");
	if (v != NULL && *v != '\0') {
		uint64_t cap;

		/* The cap holds at least the header and the END record. */
		if (mv_parse_size(v, &cap) != 0 || cap < MV_TRACE_MAX_LEAST)
			bad("MEMVIRT_RECORD_MAX", v, "a size of at least 4KiB, such as 512MiB", "no cap");
		else
			mv_cfg.record_max = cap;
	}
	if (load_knob("MEMVIRT_PAGE_MIN", "page_min", policy_default, &x) == 0)
		mv_cfg.page_min = x.u;
	if (load_knob("MEMVIRT_LOOKAHEAD", "lookahead", policy_default, &x) == 0)
		mv_cfg.lookahead = (uint32_t)x.u;
	if (load_knob("MEMVIRT_HEAVY_FRACTION", "heavy_fraction", policy_default, &x) == 0)
		mv_cfg.heavy_fraction = x.d;
	if (load_knob("MEMVIRT_HEADROOM", "headroom", policy_default, &x) == 0)
		mv_cfg.headroom = x.d;
	v = getenv("MEMVIRT_ITERATION_MARKER");
	if (v != NULL && *v != '\0')
		mv_cfg.marker = v;
	if (load_knob("MEMVIRT_H2D_GBPS", "h2d_gbps", measured, &x) == 0)
		mv_cfg.h2d_gbps = x.d;
	if (load_knob("MEMVIRT_D2H_GBPS", "d2h_gbps", measured, &x) == 0)
		mv_cfg.d2h_gbps = x.d;
}

static int log_fd = 2;

static const char *level_names[] = {"debug", "info", "warn", "error", "off"};

void mv_log(enum mv_log_level level, const char *fmt, ...)
{
	char line[1024];
	int n;
	va_list ap;

	if (level < mv_cfg.log_level)
		return;
	n = snprintf(line, sizeof(line), "memvirt[%d] %s: ", (int)getpid(), level_names[level]);
	va_start(ap, fmt);
	n += vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	/* One write per line, so lines from several threads do not interleave. */
	if (write(log_fd, line, (size_t)n) < 0)
		return;
}

static void bad(const char *name, const char *value, const char *expected, const char *fallback)
{
	mv_log(MV_LOG_WARN, "%s=%s is not %s; using %s", name, value, expected, fallback);
}

/* A budget of nothing: the reason comes from the one check of budgets (policies/params.c). */
static void budget_zero(const char *value)
{
	char why[160];

	mv_budget_absurd(0, 0, 0, why, sizeof(why));
	mv_log(MV_LOG_WARN, "MEMVIRT_BUDGET=%s %s; using the device's memory", value, why);
}

/* The launchers' rank variables, most specific first: the first one set names the rank. A value
 * that is not a whole number up to MV_RANK_MAX gets a warning and no rank; the job runs as it
 * would. */
static uint32_t load_rank(void)
{
	static const char *const vars[] = {"RANK", "LOCAL_RANK", "SLURM_PROCID", "OMPI_COMM_WORLD_RANK",
					   "PMI_RANK"};
	unsigned long long r;
	const char *v;
	char *end, shown[64];
	size_t i;

	for (i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
		v = getenv(vars[i]);
		if (v == NULL || *v == '\0')
			continue;
		errno = 0;
		r = strtoull(v, &end, 10);
		if (*v >= '0' && *v <= '9' && *end == '\0' && errno == 0 && r <= MV_RANK_MAX)
			return (uint32_t)r;
		mv_text_escape(v, shown, sizeof(shown), 32);
		mv_log(MV_LOG_WARN, "%s=%s is not a whole number up to %d; the process has no rank in stats "
		       "or traces", vars[i], shown, MV_RANK_MAX);
		return MV_RANK_NONE;
	}
	return MV_RANK_NONE;
}

/* Who the process is in its job: its rank, and the group whose budget it shares (MEMVIRT_GROUP,
 * which memvirt run sets). A group the daemon would refuse is dropped with a warning: the process
 * then has a budget of its own, as without a group. */
static void load_identity(void)
{
	const char *v = getenv("MEMVIRT_GROUP");
	char shown[96];

	mv_cfg.rank = load_rank();
	if (v == NULL || *v == '\0')
		return;
	memset(mv_cfg.group, 0, sizeof(mv_cfg.group));
	if (strlen(v) <= MV_GROUP_MAX) {
		memcpy(mv_cfg.group, v, strlen(v));
		if (mv_group_valid(mv_cfg.group, sizeof(mv_cfg.group)))
			return;
	}
	memset(mv_cfg.group, 0, sizeof(mv_cfg.group));
	mv_text_escape(v, shown, sizeof(shown), 64);
	mv_log(MV_LOG_WARN, "MEMVIRT_GROUP=%s is not 1 to %d letters, digits or ._:@+=-; the process "
	       "has a budget of its own", shown, MV_GROUP_MAX);
}

void mv_config_load(void)
{
	const char *v;
	uint64_t x;

	/* The log file first, so that every warning below goes there. */
	v = getenv("MEMVIRT_LOG_FILE");
	if (v != NULL && *v != '\0') {
		int fd = open(v, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (fd < 0)
			mv_log(MV_LOG_WARN, "cannot open MEMVIRT_LOG_FILE=%s; logging to stderr", v);
		else
			log_fd = fd;
	}
	v = getenv("MEMVIRT_LOG");
	if (v != NULL) {
		int found = 0;
		for (int i = 0; i <= MV_LOG_OFF; i++) {
			if (strcmp(v, level_names[i]) == 0) {
				mv_cfg.log_level = (enum mv_log_level)i;
				found = 1;
			}
		}
		if (!found)
			bad("MEMVIRT_LOG", v, "one of debug, info, warn, error, off", "warn");
	}
	v = getenv("MEMVIRT_BUDGET");
	if (v != NULL && strpbrk(v, ",:") != NULL) {
		/* Per device: every entry checked here, the device's picked once it is known. */
		const char *why = NULL;
		char entry[64], want[256];

		if (mv_budget_pick(v, -1, UINT64_C(1) << 40, &x, &why, entry, sizeof(entry)) < 0) {
			snprintf(want, sizeof(want), "a budget list such as 0:6GiB,1:40%% (entry '%s' has %s)", entry,
				 why);
			bad("MEMVIRT_BUDGET", v, want, "the device's memory");
		} else {
			mv_cfg.budget_spec = v;
		}
	} else if (v != NULL && *v != '\0') {
		/* Checked here for the log line; resolved against the device's size later. */
		/* The whole is a terabyte, so that only a budget of nothing reads as 0. */
		if (mv_parse_size_or_percent(v, UINT64_C(1) << 40, &x) != 0)
			bad("MEMVIRT_BUDGET", v, "a size such as 6GiB or a percentage such as 40%", "the device's memory");
		else if (x == 0)
			budget_zero(v);
		else
			mv_cfg.budget_spec = v;
	}
	v = getenv("MEMVIRT_SLAB_THRESHOLD");
	if (v != NULL) {
		if (mv_parse_size(v, &x) != 0 || x > (1ull << 30))
			bad("MEMVIRT_SLAB_THRESHOLD", v, "a size up to 1GiB", "1MiB");
		else
			mv_cfg.slab_threshold = x;
	}
	v = getenv("MEMVIRT_HOST_LIMIT");
	if (v != NULL) {
		if (mv_parse_size(v, &x) != 0 || x == 0)
			bad("MEMVIRT_HOST_LIMIT", v, "a positive size such as 64GiB", "three quarters of host memory");
		else
			mv_cfg.host_limit = x;
	}
	if (mv_cfg.host_limit == 0) {
		long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
		mv_cfg.host_limit = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page / 4 * 3 : 16ull << 30;
	}
	v = getenv("MEMVIRT_SAFETY_NET");
	if (v != NULL) {
		if (strcmp(v, "0") == 0 || strcmp(v, "off") == 0)
			mv_cfg.safety_net = 0;
		else if (strcmp(v, "1") == 0 || strcmp(v, "on") == 0)
			mv_cfg.safety_net = 1;
		else
			bad("MEMVIRT_SAFETY_NET", v, "on or off", "on where the device supports it");
	}
	v = getenv("MEMVIRT_DAEMON");
	if (v != NULL) {
		if (strcmp(v, "0") == 0 || strcmp(v, "off") == 0)
			mv_cfg.daemon = 0;
		else if (strcmp(v, "1") != 0 && strcmp(v, "on") != 0)
			bad("MEMVIRT_DAEMON", v, "on or off", "on");
	}
	v = getenv("MEMVIRT_WEIGHT");
	if (v != NULL && *v != '\0' && parse_whole(v, UINT32_MAX, &mv_cfg.weight) != 0)
		bad("MEMVIRT_WEIGHT", v, "a whole number up to 4294967295", "the daemon's default weight");
	v = getenv("MEMVIRT_HOST_WAIT");
	if (v != NULL && *v != '\0' && parse_whole(v, 3600000, &mv_cfg.host_wait_ms) != 0)
		bad("MEMVIRT_HOST_WAIT", v, "a whole number of milliseconds up to 3600000", "2000");
	load_planning();
	/* The job's name for the daemon's statistics: what the user called it, else the program. */
	v = getenv("MEMVIRT_JOB");
	if (v == NULL || *v == '\0')
		v = program_invocation_short_name;
	snprintf(mv_cfg.job, sizeof(mv_cfg.job), "%s", v != NULL ? v : "");
	load_identity();
}
