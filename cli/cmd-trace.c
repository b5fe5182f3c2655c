/* memvirt trace: reads a trace that `memvirt run --record` wrote and hands it to a subcommand,
 * replay (trace-replay.c), timeline (trace-timeline.c), plot (trace-plot.c) or info (trace-info.c).
 * Here: the options they share, reading the trace and finding its iteration, and planning it under
 * a policy. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/internal.h"
#include "policies/policy.h"
#include "policies/trace.h"
#include "protocol/units.h"

/* The modeled link when the command line names none: an H100's PCIe 5 x16, each way. */
#define TRACE_DEFAULT_GBPS 55.0

/* The duration given to launches the trace did not time. */
#define TRACE_DEFAULT_LAUNCH_NS 10000u

/* Rounds of late-page-in feedback before the plan is measured, as a running job learns. */
#define TRACE_DEFAULT_FEEDBACK 3u

/* A file larger than this is not read whole into memory. */
#define TRACE_MAX_BYTES ((size_t)8 << 30)

static void trace_usage(FILE *f)
{
	fprintf(f,
		"usage: memvirt trace replay FILE [--policy NAME | --all] --budget SIZE [OPTIONS]\n"
		"       memvirt trace timeline FILE [--policy NAME --budget SIZE] [OPTIONS] > out.json\n"
		"       memvirt trace plot FILE [--policy NAME] --budget SIZE [OPTIONS] > out.svg\n"
		"       memvirt trace info FILE [--json]\n"
		"\n"
		"Reads a trace that 'memvirt run --record FILE' wrote. replay models one iteration\n"
		"under a policy and a device budget and reports peak memory, bytes moved, stall,\n"
		"overhead over unlimited memory and the bandwidth lower bound; timeline writes the\n"
		"Chrome trace event format for Perfetto (ui.perfetto.dev); plot draws resident memory\n"
		"over one iteration with and without the policy; info sums the trace up.\n"
		"\n"
		"  --policy NAME          the policy to plan with (default auto; 'memvirt policies')\n"
		"  --all                  replay: every policy, one row each\n"
		"  --budget SIZE          device memory: 12GiB, or a percentage of the iteration's\n"
		"                         unlimited peak such as 50%%\n"
		"  --h2d GB/s, --d2h GB/s the link's bandwidth each way (default 55)\n"
		"  --iteration FIRST:N    the iteration as N ops from op FIRST (default: detected)\n"
		"  --lookahead N          vdnn-*: layers ahead a page-in is issued (default 1)\n"
		"  --page-min SIZE        smallest buffer a plan pages (default 1MiB)\n"
		"  --heavy-fraction X     vdnn-conv: share of compute whose inputs are paged, 0<X<=1\n"
		"                         (default 0.5)\n"
		"  --headroom X           mmcnn: share of the budget kept free, 0<=X<1 (default 0.02)\n"
		"  --feedback N           rounds of late-page-in feedback before measuring (default 3)\n"
		"  --no-host-mapping      the device cannot map host memory (or the safety net is off):\n"
		"                         a launch's buffers must all fit the budget\n"
		"  --json                 replay, info: one JSON object instead of a table\n"
		"  --help                 print this and exit\n");
}

/* ---- reading ---------------------------------------------------------------------------------- */

static int trace_read_file(const char *path, uint8_t **out, size_t *len)
{
	struct stat st;
	uint8_t *buf;
	size_t n = 0, cap;
	ssize_t got;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		goto err_open;
	if (fstat(fd, &st) < 0)
		goto err_read;
	if (S_ISDIR(st.st_mode)) {
		errno = EISDIR;
		goto err_read;
	}
	/* A pipe or device has no size: grow as it comes. */
	cap = S_ISREG(st.st_mode) && st.st_size > 0 ? (size_t)st.st_size + 1 : 65536;
	buf = xmalloc(cap);
	for (;;) {
		if (n == cap) {
			if (cap >= TRACE_MAX_BYTES) {
				fprintf(stderr, "memvirt trace: %s: larger than %zu bytes; not read\n", path,
					TRACE_MAX_BYTES);
				free(buf);
				close(fd);
				return -1;
			}
			cap *= 2;
			buf = xrealloc(buf, cap);
		}
		got = read(fd, buf + n, cap - n);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			free(buf);
			goto err_read;
		}
		if (got == 0)
			break;
		n += (size_t)got;
	}
	close(fd);
	*out = buf;
	*len = n;
	return 0;

err_read:
	fprintf(stderr, "memvirt trace: %s: cannot read: %s\n", path, strerror(errno));
	close(fd);
	return -1;
err_open:
	fprintf(stderr, "memvirt trace: %s: cannot open: %s\n", path, strerror(errno));
	return -1;
}

void cli_trace_ctx_free(struct cli_trace_ctx *c)
{
	mv_iter_free(c->it);
	mv_trace_free(c->t);
	free(c->image);
	memset(c, 0, sizeof(*c));
}

int cli_trace_load(struct cli_trace_ctx *c, const struct cli_trace_opts *o, int want_iter)
{
	char err[512], a[32], b[32];
	int r;

	memset(c, 0, sizeof(*c));
	c->o = o;
	c->m.h2d_bps = o->h2d_gbps * 1e9;
	c->m.d2h_bps = o->d2h_gbps * 1e9;
	c->m.launch_ns = TRACE_DEFAULT_LAUNCH_NS;
	c->m.host_mapped = !o->no_host_mapping;
	if (trace_read_file(o->file, &c->image, &c->len) < 0)
		return -1;
	err[0] = '\0';
	r = mv_trace_read_mem(c->image, c->len, &c->t, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "memvirt trace: %s: %s\n", o->file, err[0] ? err : strerror(-r));
		goto err;
	}
	if (c->t->truncated)
		fprintf(stderr, "memvirt trace: warning: %s was cut short (no end record, as when the "
				"job was killed); using its %" PRIu32 " complete operations\n",
			o->file, c->t->nops);
	if (!want_iter)
		return 0;
	if (o->has_iter) {
		if ((uint64_t)o->iter_first + o->iter_n > c->t->nops || o->iter_n == 0) {
			fprintf(stderr, "memvirt trace: --iteration %" PRIu32 ":%" PRIu32 " is outside "
					"%s, which holds ops 0 to %" PRIu32 "\n", o->iter_first, o->iter_n,
				o->file, c->t->nops > 0 ? c->t->nops - 1 : 0);
			goto err;
		}
		c->first_op = o->iter_first;
		c->nops = o->iter_n;
	} else if ((r = mv_iter_detect_recorded(c->t, CLI_TRACE_TAIL_MAX, &c->first_op, &c->nops)) < 0) {
		if (r == -ENOENT)
			fprintf(stderr, "memvirt trace: %s: no iteration found: the launch sequence does not "
					"repeat with the memory back where it began; name one with "
					"--iteration FIRST:N\n", o->file);
		else
			fprintf(stderr, "memvirt trace: %s: finding the iteration: %s\n", o->file,
				strerror(-r));
		goto err;
	}
	r = mv_iter_build(c->t, c->first_op, c->nops, c->m.launch_ns, &c->it);
	if (r < 0) {
		fprintf(stderr, "memvirt trace: %s: ops %" PRIu32 ":%" PRIu32 " do not make an "
				"iteration: %s\n", o->file, c->first_op, c->nops, strerror(-r));
		goto err;
	}
	if (c->it->nlaunch == 0) {
		fprintf(stderr, "memvirt trace: %s: ops %" PRIu32 ":%" PRIu32 " hold no launch\n",
			o->file, c->first_op, c->nops);
		goto err;
	}
	c->peak = mv_model_peak(c->it);
	if (o->budget != NULL) {
		uint64_t need = mv_model_min_budget(c->it), pinned = mv_model_min_budget_mapped(c->it);

		if (mv_parse_size_or_percent(o->budget, c->peak, &c->budget) < 0 || c->budget == 0) {
			fprintf(stderr, "memvirt trace: --budget '%s' is not a size (such as 12GiB) or a "
					"percentage of the iteration's peak of %s (such as 50%%)\n",
				o->budget, mv_format_size(c->peak, a, sizeof(a)));
			goto err;
		}
		/* Where host memory is mapped, such launches read the rest over the link. */
		if (c->budget < need && !c->m.host_mapped) {
			fprintf(stderr, "memvirt trace: --budget %s (%s) is infeasible without host mapping: "
					"the iteration needs at least %s (%" PRIu64 " bytes) for its never-paged "
					"buffers and the buffers of its largest launch\n",
				o->budget, mv_format_size(c->budget, a, sizeof(a)),
				mv_format_size(need, b, sizeof(b)), need);
			goto err;
		}
		if (c->budget < pinned) {
			fprintf(stderr, "memvirt trace: --budget %s (%s) is infeasible: the iteration's "
					"never-paged buffers need %s (%" PRIu64 " bytes) at once\n",
				o->budget, mv_format_size(c->budget, a, sizeof(a)),
				mv_format_size(pinned, b, sizeof(b)), pinned);
			goto err;
		}
	}
	return 0;

err:
	cli_trace_ctx_free(c);
	return -1;
}

/* ---- planning --------------------------------------------------------------------------------- */

int cli_trace_plan_run(const struct cli_trace_ctx *c, const struct mv_policy *pol, uint64_t budget,
		       struct cli_trace_run *run)
{
	struct mv_policy_params p = c->o->plan.knobs;
	struct mv_feedback *fb;
	int r;

	memset(run, 0, sizeof(*run));
	run->pol = pol;
	p.budget = budget;
	p.machine = c->m;
	fb = mv_feedback_new(c->it);
	if (fb == NULL)
		xoom();
	for (uint32_t round = 0;; round++) {
		r = pol->plan(c->it, &p, fb, &run->plan);
		if (r < 0) {
			fprintf(stderr, "memvirt trace: %s: policy %s could not plan: %s\n", c->o->file,
				pol->name, strerror(-r));
			goto err;
		}
		r = mv_model_run(c->it, run->plan, budget, &c->m, &run->r, fb);
		if (r < 0) {
			fprintf(stderr, "memvirt trace: %s: the model failed on policy %s's plan: %s\n",
				c->o->file, pol->name, strerror(-r));
			goto err;
		}
		run->rounds = round;
		if (round >= c->o->feedback || run->r.late == 0 || mv_feedback_apply(fb, c->it) == 0)
			break;
		mv_plan_free(run->plan);
		run->plan = NULL;
	}
	mv_feedback_free(fb);
	return 0;

err:
	mv_plan_free(run->plan);
	run->plan = NULL;
	mv_feedback_free(fb);
	return -1;
}

int cli_trace_modeled(const struct cli_trace_ctx *c, const struct mv_policy *pol, uint64_t budget,
		      struct cli_trace_run *run, struct cli_sched *sched)
{
	if (cli_trace_plan_run(c, pol, budget, run) < 0)
		return -1;
	if (cli_sched_run(c->it, run->plan, budget, &c->m, sched) < 0) {
		fprintf(stderr, "memvirt trace: %s: cannot lay out policy %s's plan\n", c->o->file,
			pol->name);
		mv_plan_free(run->plan);
		run->plan = NULL;
		return -1;
	}
	return 0;
}

/* ---- the command line ------------------------------------------------------------------------- */

static int trace_uint(const char *opt, const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (*s < '0' || *s > '9' || *end != '\0' || errno != 0 || v < lo || v > hi) {
		fprintf(stderr, "memvirt trace: %s '%s' is not a whole number from %" PRIu64 " to %" PRIu64
				"\n", opt, s, lo, hi);
		return -1;
	}
	*out = v;
	return 0;
}

static const struct option trace_options[] = {
	CLI_PLAN_OPTIONS,
	{"all", no_argument, NULL, 'A'},
	{"budget", required_argument, NULL, 'b'},
	{"h2d", required_argument, NULL, 'H'},
	{"d2h", required_argument, NULL, 'D'},
	{"iteration", required_argument, NULL, 'i'},
	{"heavy-fraction", required_argument, NULL, 'F'},
	{"headroom", required_argument, NULL, 'R'},
	{"feedback", required_argument, NULL, 'f'},
	{"no-host-mapping", no_argument, NULL, 'M'},
	{"json", no_argument, NULL, 'j'},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

/* The subcommand, argv[1]. Returns 0, 1 for --help, or -1 for a usage error (printed). */
static int trace_parse_sub(int argc, char **argv, struct cli_trace_opts *o)
{
	static const char *const subs[] = {"replay", "timeline", "plot", "info", NULL};
	const char *guess;

	if (argc < 2) {
		trace_usage(stderr);
		return -1;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		trace_usage(stdout);
		return 1;
	}
	o->sub = argv[1];
	for (size_t i = 0; subs[i] != NULL; i++)
		if (strcmp(o->sub, subs[i]) == 0)
			return 0;
	guess = cli_closest(o->sub, subs);
	fprintf(stderr, "memvirt trace: unknown subcommand '%s'", o->sub);
	if (guess != NULL)
		fprintf(stderr, "; did you mean '%s'?", guess);
	fprintf(stderr, " (replay, timeline, plot or info)\n");
	return -1;
}

/* --budget: the percentage's whole, the iteration's peak, is known only once the file is read, so
 * here only the spelling is judged. */
static int trace_parse_budget(const char *arg, struct cli_trace_opts *o)
{
	uint64_t v;

	if (mv_parse_size_or_percent(arg, UINT64_C(1) << 50, &v) < 0 || v == 0) {
		fprintf(stderr, "memvirt trace: --budget '%s' is not a size (such as 12GiB) or a "
				"percentage of the iteration's peak (such as 50%%)\n", arg);
		return -1;
	}
	o->budget = arg;
	return 0;
}

/* --iteration FIRST:N. The colon is put back after reading each side. */
static int trace_parse_iteration(char *arg, struct cli_trace_opts *o)
{
	char *colon = strchr(arg, ':');
	uint64_t v, w;
	int r;

	if (colon == NULL) {
		fprintf(stderr, "memvirt trace: --iteration '%s' is not FIRST:N (the first op and how "
				"many ops)\n", arg);
		return -1;
	}
	*colon = '\0';
	r = trace_uint("--iteration's FIRST", arg, 0, UINT32_MAX - 1, &v) < 0 ||
	    trace_uint("--iteration's N", colon + 1, 1, UINT32_MAX, &w) < 0 ? -1 : 0;
	*colon = ':';
	if (r < 0)
		return -1;
	o->has_iter = 1;
	o->iter_first = (uint32_t)v;
	o->iter_n = (uint32_t)w;
	return 0;
}

/* A knob given as a number (policies/params.c has its range). Returns 0 or -1 (printed). */
static int trace_parse_knob(const char *option, const char *knob, const char *arg, double *out)
{
	struct mv_knob_value k;

	if (cli_knob_option("memvirt trace", option, knob, arg, &k) < 0)
		return -1;
	*out = k.d;
	return 0;
}

/* One option, c as getopt_long returned it. Returns 0, 1 for --help, or -1 for a usage error
 * (printed). */
static int trace_parse_option(int c, char *arg, struct cli_trace_opts *o)
{
	uint64_t v;

	switch (c) {
	case CLI_OPT_POLICY:
	case CLI_OPT_LOOKAHEAD:
	case CLI_OPT_PAGE_MIN:
		return cli_plan_option("memvirt trace", c, arg, &o->plan);
	case 'A':
		o->all = 1;
		return 0;
	case 'b':
		return trace_parse_budget(arg, o);
	case 'H':
		return trace_parse_knob("--h2d", "h2d_gbps", arg, &o->h2d_gbps);
	case 'D':
		return trace_parse_knob("--d2h", "d2h_gbps", arg, &o->d2h_gbps);
	case 'i':
		return trace_parse_iteration(arg, o);
	case 'F':
		return trace_parse_knob("--heavy-fraction", "heavy_fraction", arg,
					&o->plan.knobs.heavy_fraction);
	case 'R':
		return trace_parse_knob("--headroom", "headroom", arg, &o->plan.knobs.headroom);
	case 'f':
		if (trace_uint("--feedback", arg, 0, 100, &v) < 0)
			return -1;
		o->feedback = (uint32_t)v;
		return 0;
	case 'M':
		o->no_host_mapping = 1;
		return 0;
	case 'j':
		o->json = 1;
		return 0;
	case 'h':
		trace_usage(stdout);
		return 1;
	default:
		fprintf(stderr, "'memvirt trace --help' lists the options\n");
		return -1;
	}
}

/* After the options: the one trace file, and the options that do not go with the subcommand.
 * Returns 0 or -1 (printed). */
static int trace_parse_rest(int argc, char **argv, struct cli_trace_opts *o)
{
	if (optind + 1 >= argc) {
		fprintf(stderr, "memvirt trace %s: no trace file named\n", o->sub);
		return -1;
	}
	if (optind + 2 < argc) {
		fprintf(stderr, "memvirt trace %s: unexpected argument '%s'\n", o->sub, argv[optind + 2]);
		return -1;
	}
	o->file = argv[optind + 1];
	if (o->all && strcmp(o->sub, "replay") != 0) {
		fprintf(stderr, "memvirt trace %s: --all is for replay\n", o->sub);
		return -1;
	}
	if (o->all && o->plan.policy != NULL) {
		fprintf(stderr, "memvirt trace replay: --all replays every policy; drop --policy\n");
		return -1;
	}
	if (o->json && strcmp(o->sub, "replay") != 0 && strcmp(o->sub, "info") != 0) {
		fprintf(stderr, "memvirt trace %s: --json is for replay and info\n", o->sub);
		return -1;
	}
	if (strcmp(o->sub, "info") == 0 && (o->plan.policy != NULL || o->budget != NULL)) {
		fprintf(stderr, "memvirt trace info: takes no --policy or --budget\n");
		return -1;
	}
	if (strcmp(o->sub, "replay") == 0 && o->plan.policy == NULL && !o->all)
		o->plan.policy = "auto";
	return 0;
}

/* Returns 0, 1 for --help, or -1 for a usage error (printed). */
static int trace_parse(int argc, char **argv, struct cli_trace_opts *o)
{
	int c, r;

	memset(o, 0, sizeof(*o));
	o->h2d_gbps = o->d2h_gbps = TRACE_DEFAULT_GBPS;
	o->feedback = TRACE_DEFAULT_FEEDBACK;
	cli_plan_init(&o->plan);
	r = trace_parse_sub(argc, argv, o);
	if (r != 0)
		return r;
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc - 1, argv + 1, ":h", trace_options, NULL)) != -1) {
		if (c == '?' || c == ':') {
			cli_option_error("memvirt trace", c, argv + 1, trace_options);
			return -1;
		}
		r = trace_parse_option(c, optarg, o);
		if (r != 0)
			return r;
	}
	return trace_parse_rest(argc, argv, o);
}

int cmd_trace(int argc, char **argv)
{
	struct cli_trace_opts o;
	int r = trace_parse(argc, argv, &o);

	if (r != 0)
		return r > 0 ? 0 : 2;
	if (strcmp(o.sub, "replay") == 0)
		return cli_trace_replay(&o);
	if (strcmp(o.sub, "timeline") == 0)
		return cli_trace_timeline(&o);
	if (strcmp(o.sub, "plot") == 0)
		return cli_trace_plot(&o);
	return cli_trace_info(&o);
}
