/* memvirt trace: reads a trace that `memvirt run --record` wrote and replays it under a policy and
 * a budget (replay), draws it for Perfetto (timeline) or as an SVG chart (plot), or sums it up
 * (info). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "cli/internal.h"
#include "daemon/conf.h"
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
/* Launches at the end of a recorded run that may lie outside the training loop (a final evaluation,
 * checksums, teardown) and are set aside to find it. */
#define TRACE_TAIL_MAX 4096u

/* What the command line asked for. Strings are borrowed from argv. */
struct trace_opts {
	const char *sub;          /* "replay", "timeline", "plot" or "info" */
	const char *file;
	struct cli_plan plan;     /* --policy (NULL: not given), --lookahead, --page-min */
	const char *budget;       /* NULL: not given */
	int all, json;
	int has_iter;
	uint32_t iter_first, iter_n;
	double h2d_gbps, d2h_gbps;
	uint32_t feedback;
};

/* A trace read and its iteration, with the budget resolved. Owns what it points to. */
struct trace_ctx {
	const struct trace_opts *o;
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
struct trace_run {
	const struct mv_policy *pol;
	struct mv_plan *plan;     /* owned */
	struct mv_model_result r;
	uint32_t rounds;          /* feedback rounds applied */
};

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

static void trace_ctx_free(struct trace_ctx *c)
{
	mv_iter_free(c->it);
	mv_trace_free(c->t);
	free(c->image);
	memset(c, 0, sizeof(*c));
}

/* Reads the file and, when want_iter, finds and builds its iteration and resolves the budget.
 * Prints the reason and returns -1 on failure. */
static int trace_load(struct trace_ctx *c, const struct trace_opts *o, int want_iter)
{
	char err[512], a[32], b[32];
	int r;

	memset(c, 0, sizeof(*c));
	c->o = o;
	c->m.h2d_bps = o->h2d_gbps * 1e9;
	c->m.d2h_bps = o->d2h_gbps * 1e9;
	c->m.launch_ns = TRACE_DEFAULT_LAUNCH_NS;
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
	} else if ((r = mv_iter_detect_recorded(c->t, TRACE_TAIL_MAX, &c->first_op, &c->nops)) < 0) {
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
		uint64_t need = mv_model_min_budget(c->it);

		if (mv_parse_size_or_percent(o->budget, c->peak, &c->budget) < 0 || c->budget == 0) {
			fprintf(stderr, "memvirt trace: --budget '%s' is not a size (such as 12GiB) or a "
					"percentage of the iteration's peak of %s (such as 50%%)\n",
				o->budget, mv_format_size(c->peak, a, sizeof(a)));
			goto err;
		}
		if (c->budget < need) {
			fprintf(stderr, "memvirt trace: --budget %s (%s) is infeasible: the iteration "
					"needs at least %s (%" PRIu64 " bytes) for its never-paged buffers "
					"and the buffers of its largest launch\n",
				o->budget, mv_format_size(c->budget, a, sizeof(a)),
				mv_format_size(need, b, sizeof(b)), need);
			goto err;
		}
	}
	return 0;

err:
	trace_ctx_free(c);
	return -1;
}

/* ---- replay ----------------------------------------------------------------------------------- */

/* Plans the iteration with pol and measures the plan, learning from late page-ins for up to
 * o->feedback rounds as the library does. Returns 0 or -1 with the reason printed. */
static int trace_plan_run(const struct trace_ctx *c, const struct mv_policy *pol, uint64_t budget,
			  struct trace_run *run)
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

static double trace_pct(uint64_t step, uint64_t base)
{
	return base > 0 ? ((double)step - (double)base) * 100.0 / (double)base : 0.0;
}

static double trace_ratio(uint64_t step, uint64_t bound)
{
	return bound > 0 ? (double)step / (double)bound : 0.0;
}

static json_t *trace_run_json(const struct trace_run *run, const struct mv_model_result *base,
			      uint64_t bound)
{
	const struct mv_model_result *r = &run->r;

	return json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:I, s:I, s:b, "
			 "s:I}",
			 "policy", run->pol->name,
			 "peak", (json_int_t)r->peak,
			 "bytes_out", (json_int_t)r->bytes_out,
			 "bytes_in", (json_int_t)r->bytes_in,
			 "page_outs", (json_int_t)r->page_outs,
			 "page_ins", (json_int_t)r->page_ins,
			 "stall_ns", (json_int_t)r->stall_ns,
			 "step_ns", (json_int_t)r->step_ns,
			 "compute_ns", (json_int_t)r->compute_ns,
			 "plan_ops", (json_int_t)(run->plan != NULL ? run->plan->nops : 0),
			 "overhead_pct", trace_pct(r->step_ns, base->step_ns),
			 "lower_bound_ratio", trace_ratio(r->step_ns, bound),
			 "late", (json_int_t)r->late,
			 "faults", (json_int_t)r->faults,
			 "over_budget", r->over_budget,
			 "feedback_rounds", (json_int_t)run->rounds);
}

static void trace_ms(uint64_t ns, char *buf, size_t len)
{
	snprintf(buf, len, "%.3f ms", (double)ns / 1e6);
}

/* One policy's report as a table of name and value. */
static void trace_replay_print_one(const struct trace_ctx *c, const struct trace_run *run,
				   const struct mv_model_result *base, uint64_t bound, uint64_t must)
{
	const struct mv_model_result *r = &run->r;
	char a[32], b[32];

	printf("trace            %s\n", c->o->file);
	printf("iteration        ops %" PRIu32 ":%" PRIu32 ", %" PRIu32 " launches, %" PRIu32
	       " buffers\n", c->first_op, c->nops, c->it->nlaunch, c->it->nbufs);
	printf("policy           %s\n", run->pol->name);
	printf("budget           %s (%" PRIu64 " bytes)\n", mv_format_size(c->budget, a, sizeof(a)),
	       c->budget);
	printf("link             %g GB/s host to device, %g GB/s device to host\n",
	       c->o->h2d_gbps, c->o->d2h_gbps);
	printf("peak             %s (%" PRIu64 " bytes); unlimited %s (%" PRIu64 " bytes)\n",
	       mv_format_size(r->peak, a, sizeof(a)), r->peak, mv_format_size(base->peak, b, sizeof(b)),
	       base->peak);
	printf("moved out        %s (%" PRIu64 " bytes) in %" PRIu32 " page-outs\n",
	       mv_format_size(r->bytes_out, a, sizeof(a)), r->bytes_out, r->page_outs);
	printf("moved in         %s (%" PRIu64 " bytes) in %" PRIu32 " page-ins\n",
	       mv_format_size(r->bytes_in, a, sizeof(a)), r->bytes_in, r->page_ins);
	trace_ms(r->stall_ns, a, sizeof(a));
	printf("stall            %s\n", a);
	trace_ms(r->step_ns, a, sizeof(a));
	trace_ms(base->step_ns, b, sizeof(b));
	printf("step             %s; unlimited %s\n", a, b);
	printf("overhead         %.2f%%\n", trace_pct(r->step_ns, base->step_ns));
	trace_ms(bound, a, sizeof(a));
	printf("lower bound      %s (%s must leave the device at the tightest launch)\n", a,
	       mv_format_size(must, b, sizeof(b)));
	printf("step/bound       %.3f\n", trace_ratio(r->step_ns, bound));
	printf("late page-ins    %" PRIu32 "\n", r->late);
	printf("faults           %" PRIu32 "\n", r->faults);
	printf("feedback rounds  %" PRIu32 "\n", run->rounds);
	if (r->over_budget)
		printf("over budget      yes: even reactive paging cannot keep the budget; the job "
		       "would get out-of-memory errors\n");
}

/* Several policies, one row each. */
static void trace_replay_print_table(const struct trace_ctx *c, const struct trace_run *runs,
				     size_t n, const struct mv_model_result *base, uint64_t bound,
				     uint64_t must)
{
	char a[32], b[32], d[32];

	printf("%s: iteration ops %" PRIu32 ":%" PRIu32 " (%" PRIu32 " launches), budget %s, link "
	       "%g/%g GB/s\n", c->o->file, c->first_op, c->nops, c->it->nlaunch,
	       mv_format_size(c->budget, a, sizeof(a)), c->o->h2d_gbps, c->o->d2h_gbps);
	printf("unlimited: peak %s, step %.3f ms; lower bound %.3f ms (%s must leave the device)\n",
	       mv_format_size(base->peak, a, sizeof(a)), (double)base->step_ns / 1e6,
	       (double)bound / 1e6, mv_format_size(must, b, sizeof(b)));
	printf("%-10s %12s %12s %12s %7s %7s %10s %10s %9s %8s %5s %6s\n", "policy", "peak", "out",
	       "in", "outs", "ins", "stall ms", "step ms", "overhead", "x bound", "late", "faults");
	for (size_t i = 0; i < n; i++) {
		const struct mv_model_result *r = &runs[i].r;

		printf("%-10s %12s %12s %12s %7" PRIu32 " %7" PRIu32 " %10.3f %10.3f %8.2f%% %8.3f %5"
		       PRIu32 " %6" PRIu32 "%s\n", runs[i].pol->name,
		       mv_format_size(r->peak, a, sizeof(a)), mv_format_size(r->bytes_out, b, sizeof(b)),
		       mv_format_size(r->bytes_in, d, sizeof(d)), r->page_outs, r->page_ins,
		       (double)r->stall_ns / 1e6, (double)r->step_ns / 1e6,
		       trace_pct(r->step_ns, base->step_ns), trace_ratio(r->step_ns, bound), r->late,
		       r->faults, r->over_budget ? "  over budget" : "");
	}
}

static int trace_replay(const struct trace_opts *o)
{
	struct trace_ctx c;
	struct trace_run *runs;
	struct mv_model_result base;
	uint64_t bound, must = 0;
	size_t n = 0, want = 1;
	int rc = 1, r;

	if (o->budget == NULL) {
		fprintf(stderr, "memvirt trace replay: --budget is required (a size such as 12GiB or a "
				"percentage of the iteration's peak such as 50%%)\n");
		return 2;
	}
	if (trace_load(&c, o, 1) < 0)
		return 1;
	if (o->all)
		for (want = 0; mv_policies[want] != NULL; want++)
			;
	runs = xmalloc(want * sizeof(*runs));
	r = mv_model_run(c.it, NULL, UINT64_MAX, &c.m, &base, NULL);
	if (r < 0) {
		fprintf(stderr, "memvirt trace: %s: the model failed with unlimited memory: %s\n", o->file,
			strerror(-r));
		goto out;
	}
	bound = mv_model_lower_bound(c.it, c.budget, &c.m, &must);
	for (n = 0; n < want; n++) {
		const struct mv_policy *pol = o->all ? mv_policies[n] : mv_policy_find(o->plan.policy);

		if (trace_plan_run(&c, pol, c.budget, &runs[n]) < 0)
			goto out;
	}
	if (o->json) {
		json_t *root, *arr = json_array();
		char *s;

		for (size_t i = 0; i < n; i++) {
			json_t *one = trace_run_json(&runs[i], &base, bound);

			json_object_set_new(one, "budget", json_integer((json_int_t)c.budget));
			json_array_append_new(arr, one);
		}
		root = json_pack("{s:s, s:b, s:{s:I, s:I, s:I, s:I}, s:I, s:f, s:f, s:{s:I, s:I}, "
				 "s:I, s:I, s:o}",
				 "file", o->file, "truncated", c.t->truncated,
				 "iteration", "first_op", (json_int_t)c.first_op, "nops",
				 (json_int_t)c.nops, "launches", (json_int_t)c.it->nlaunch, "buffers",
				 (json_int_t)c.it->nbufs,
				 "budget", (json_int_t)c.budget,
				 "h2d_gbps", o->h2d_gbps, "d2h_gbps", o->d2h_gbps,
				 "unlimited", "peak", (json_int_t)base.peak, "step_ns",
				 (json_int_t)base.step_ns,
				 "lower_bound_ns", (json_int_t)bound, "must_move", (json_int_t)must,
				 "results", arr);
		if (root == NULL)
			xoom();
		s = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		if (s == NULL)
			xoom();
		printf("%s\n", s);
		free(s);
		json_decref(root);
	} else if (o->all) {
		trace_replay_print_table(&c, runs, n, &base, bound, must);
	} else {
		trace_replay_print_one(&c, &runs[0], &base, bound, must);
	}
	rc = 0;
	for (size_t i = 0; i < n; i++)
		if (runs[i].r.over_budget)
			rc = 1;
out:
	for (size_t i = 0; i < n; i++)
		mv_plan_free(runs[i].plan);
	free(runs);
	trace_ctx_free(&c);
	return rc;
}

/* ---- info ------------------------------------------------------------------------------------- */

static uint32_t trace_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int trace_info(const struct trace_opts *o)
{
	struct trace_ctx c;
	uint32_t count[MV_TREC_END + 1] = {0}, pinned = 0, timed = 0, waited = 0, version;
	uint64_t first_ns = 0, last_ns = 0, peak = 0;
	int have_iter;
	char a[32], b[32];

	if (trace_load(&c, o, 0) < 0)
		return 1;
	version = trace_le32(c.image + 8);
	for (uint32_t i = 0; i < c.t->nops; i++) {
		if (c.t->ops[i].kind <= MV_TREC_END)
			count[c.t->ops[i].kind]++;
		timed += c.t->ops[i].kind == MV_TREC_LAUNCH && c.t->ops[i].dur_ns > 0;
		waited += c.t->ops[i].kind == MV_TREC_PAGE && c.t->ops[i].waited;
		if (i == 0)
			first_ns = c.t->ops[i].time_ns;
		last_ns = c.t->ops[i].time_ns + (c.t->ops[i].kind == MV_TREC_LAUNCH ?
						 c.t->ops[i].dur_ns : 0);
	}
	for (uint32_t i = 0; i < c.t->nbufs; i++)
		pinned += (c.t->bufs[i].flags & MV_TBUF_PINNED) != 0;
	have_iter = mv_iter_detect_recorded(c.t, TRACE_TAIL_MAX, &c.first_op, &c.nops) == 0 &&
		    mv_iter_build(c.t, c.first_op, c.nops, c.m.launch_ns, &c.it) == 0;
	if (have_iter)
		peak = mv_model_peak(c.it);
	if (o->json) {
		json_t *root;
		char *s;

		root = json_pack("{s:s, s:I, s:I, s:b, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
				 "s:I, s:I, s:I, s:I}",
				 "file", o->file, "version", (json_int_t)version,
				 "device_total", (json_int_t)c.t->device_total,
				 "model_only", (c.t->flags & MV_TRACE_F_MODEL_ONLY) != 0,
				 "truncated", c.t->truncated,
				 "ops", (json_int_t)c.t->nops,
				 "launches", (json_int_t)count[MV_TREC_LAUNCH],
				 "timed_launches", (json_int_t)timed,
				 "refs", (json_int_t)c.t->nrefs,
				 "allocs", (json_int_t)count[MV_TREC_ALLOC],
				 "frees", (json_int_t)count[MV_TREC_FREE],
				 "syncs", (json_int_t)count[MV_TREC_SYNC],
				 "marks", (json_int_t)count[MV_TREC_MARK],
				 "pages", (json_int_t)count[MV_TREC_PAGE],
				 "waited_pages", (json_int_t)waited,
				 "functions", (json_int_t)c.t->nfuncs,
				 "buffers", (json_int_t)c.t->nbufs,
				 "pinned_buffers", (json_int_t)pinned,
				 "span_ns", (json_int_t)(last_ns - first_ns));
		if (root == NULL)
			xoom();
		if (have_iter)
			json_object_set_new(root, "iteration",
					    json_pack("{s:I, s:I, s:I, s:I, s:I}", "first_op",
						      (json_int_t)c.first_op, "nops", (json_int_t)c.nops,
						      "launches", (json_int_t)c.it->nlaunch, "buffers",
						      (json_int_t)c.it->nbufs, "peak", (json_int_t)peak));
		else
			json_object_set_new(root, "iteration", json_null());
		s = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		if (s == NULL)
			xoom();
		printf("%s\n", s);
		free(s);
		json_decref(root);
		trace_ctx_free(&c);
		return 0;
	}
	printf("file        %s\n", o->file);
	printf("version     %" PRIu32 "\n", version);
	printf("device      %s (%" PRIu64 " bytes)%s\n", mv_format_size(c.t->device_total, a, sizeof(a)),
	       c.t->device_total, (c.t->flags & MV_TRACE_F_MODEL_ONLY) ? ", simulated, model only" : "");
	printf("ops         %" PRIu32 ": %" PRIu32 " launches, %" PRIu32 " allocations, %" PRIu32
	       " frees, %" PRIu32 " syncs, %" PRIu32 " marks, %" PRIu32 " page records\n", c.t->nops,
	       count[MV_TREC_LAUNCH], count[MV_TREC_ALLOC], count[MV_TREC_FREE], count[MV_TREC_SYNC],
	       count[MV_TREC_MARK], count[MV_TREC_PAGE]);
	printf("timed       %" PRIu32 " launches with a measured duration; %" PRIu32 " page records a "
	       "launch waited for\n", timed, waited);
	printf("references  %" PRIu32 " buffers named by launches\n", c.t->nrefs);
	printf("functions   %" PRIu32 "\n", c.t->nfuncs);
	printf("buffers     %" PRIu32 " (%" PRIu32 " never paged)\n", c.t->nbufs, pinned);
	printf("span        %.3f ms\n", (double)(last_ns - first_ns) / 1e6);
	printf("truncated   %s\n", c.t->truncated ? "yes: the file ends without its end record" : "no");
	if (have_iter) {
		uint64_t compute = 0;

		for (uint32_t i = 0; i < c.it->nlaunch; i++)
			compute += c.it->launch[i].dur_ns;
		printf("iteration   ops %" PRIu32 ":%" PRIu32 " (%" PRIu32 " launches, %" PRIu32
		       " buffers), %s\n", c.first_op, c.nops, c.it->nlaunch, c.it->nbufs,
		       c.t->nops > 0 && count[MV_TREC_MARK] >= 2 ? "between the last two marks" :
		       "detected from the launch sequence");
		printf("peak        %s (%" PRIu64 " bytes) alive at once in the iteration\n",
		       mv_format_size(peak, b, sizeof(b)), peak);
		printf("compute     %.3f ms per iteration\n", (double)compute / 1e6);
	} else {
		printf("iteration   none found: no launch sequence repeats yet\n");
	}
	trace_ctx_free(&c);
	return 0;
}

/* ---- timeline and plot ------------------------------------------------------------------------ */

/* Writes s as a JSON string's contents. */
static void trace_json_str(FILE *f, const char *s)
{
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20 || ch == 0x7f)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
}

/* Writes s as XML character data. */
static void trace_xml_str(FILE *f, const char *s)
{
	for (; *s != '\0'; s++) {
		switch (*s) {
		case '<': fputs("&lt;", f); break;
		case '>': fputs("&gt;", f); break;
		case '&': fputs("&amp;", f); break;
		case '"': fputs("&quot;", f); break;
		default:
			if ((unsigned char)*s >= 0x20 || *s == '\t')
				fputc(*s, f);
		}
	}
}

/* The timeline's tracks, as Chrome's thread ids within one process. */
enum {
	TL_PID = 1,
	TL_TID_OUT = 1,
	TL_TID_IN = 2,
	TL_TID_STALL = 3,
	TL_TID_STREAM0 = 10, /* application stream s is TL_TID_STREAM0 + s */
};

/* The start of one event line: commas go between events. */
static void tl_next(FILE *f, int *first)
{
	fputs(*first ? "\n" : ",\n", f);
	*first = 0;
}

static void tl_meta(FILE *f, int *first, int tid, const char *name)
{
	tl_next(f, first);
	fprintf(f, "{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":%d,\"tid\":%d,\"args\":{\"name\":\"",
		TL_PID, tid);
	trace_json_str(f, name);
	fputs("\"}}", f);
	tl_next(f, first);
	fprintf(f, "{\"name\":\"thread_sort_index\",\"ph\":\"M\",\"pid\":%d,\"tid\":%d,"
		   "\"args\":{\"sort_index\":%d}}", TL_PID, tid, tid);
}

static void tl_complete(FILE *f, int *first, int tid, const char *name, const char *cat,
			uint64_t ts_ns, uint64_t dur_ns)
{
	tl_next(f, first);
	fputs("{\"name\":\"", f);
	trace_json_str(f, name);
	fprintf(f, "\",\"cat\":\"%s\",\"ph\":\"X\",\"pid\":%d,\"tid\":%d,\"ts\":%.3f,\"dur\":%.3f}", cat,
		TL_PID, tid, (double)ts_ns / 1e3, (double)dur_ns / 1e3);
}

/* A change of the resident or allocated bytes at a time, for the counter tracks. */
struct tl_delta {
	uint64_t t;
	int64_t resident, allocated;
};

static int tl_delta_cmp(const void *a, const void *b)
{
	const struct tl_delta *x = a, *y = b;

	return x->t < y->t ? -1 : x->t > y->t;
}

/* Emits the counter tracks from deltas, sorted in place. */
static void tl_counters(FILE *f, int *first, struct tl_delta *d, size_t n)
{
	int64_t res = 0, alloc = 0;

	qsort(d, n, sizeof(*d), tl_delta_cmp);
	for (size_t i = 0; i < n; i++) {
		res += d[i].resident;
		alloc += d[i].allocated;
		/* Changes at one instant make one sample. */
		if (i + 1 < n && d[i + 1].t == d[i].t)
			continue;
		tl_next(f, first);
		fprintf(f, "{\"name\":\"device memory (MiB)\",\"ph\":\"C\",\"pid\":%d,\"ts\":%.3f,"
			   "\"args\":{\"resident\":%.3f,\"allocated\":%.3f}}", TL_PID,
			(double)d[i].t / 1e3, (double)res / 1048576.0, (double)alloc / 1048576.0);
	}
}

/* The timeline of what the trace recorded: its launches, its page records and the memory they
 * leave resident. */
static int trace_timeline_recorded(const struct trace_ctx *c, FILE *f)
{
	const struct mv_trace *t = c->t;
	struct tl_delta *d = xmalloc(((size_t)t->nops * 2 + 1) * sizeof(*d));
	uint8_t *resident = xmalloc((size_t)t->nbufs + 1);
	uint32_t maxstream = 0;
	uint64_t t0 = t->nops > 0 ? t->ops[0].time_ns : 0;
	size_t nd = 0;
	int first = 1;
	char name[64], buf[32];

	memset(resident, 0, (size_t)t->nbufs + 1);
	for (uint32_t i = 0; i < t->nops; i++)
		if (t->ops[i].kind == MV_TREC_LAUNCH && t->ops[i].stream > maxstream)
			maxstream = t->ops[i].stream;
	fprintf(f, "{\"displayTimeUnit\":\"ms\",\"otherData\":{\"file\":\"");
	trace_json_str(f, c->o->file);
	fprintf(f, "\",\"source\":\"recorded\"},\"traceEvents\":[");
	tl_next(f, &first);
	fprintf(f, "{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":%d,\"args\":{\"name\":\"memvirt: ",
		TL_PID);
	trace_json_str(f, c->o->file);
	fputs("\"}}", f);
	for (uint32_t s = 0; s <= maxstream; s++) {
		snprintf(name, sizeof(name), "stream %" PRIu32, s);
		tl_meta(f, &first, TL_TID_STREAM0 + (int)s, name);
	}
	tl_meta(f, &first, TL_TID_OUT, "page-out (D2H)");
	tl_meta(f, &first, TL_TID_IN, "page-in (H2D)");
	tl_meta(f, &first, TL_TID_STALL, "stalls");
	for (uint32_t i = 0; i < t->nops; i++) {
		const struct mv_trace_op *op = &t->ops[i];
		uint64_t ts = op->time_ns - t0;

		switch (op->kind) {
		case MV_TREC_LAUNCH:
			tl_complete(f, &first, TL_TID_STREAM0 + (int)op->stream,
				    op->id < t->nfuncs ? t->funcs[op->id] : "?", "kernel", ts, op->dur_ns);
			break;
		case MV_TREC_ALLOC:
			resident[op->id] = 1;
			d[nd++] = (struct tl_delta){ts, (int64_t)t->bufs[op->id].size,
						    (int64_t)t->bufs[op->id].size};
			break;
		case MV_TREC_FREE:
			d[nd++] = (struct tl_delta){ts, resident[op->id] ? -(int64_t)t->bufs[op->id].size : 0,
						    -(int64_t)t->bufs[op->id].size};
			resident[op->id] = 0;
			break;
		case MV_TREC_PAGE:
			snprintf(name, sizeof(name), "%s buffer %" PRIu32 " (%s)",
				 op->dir ? "in" : "out", op->id,
				 mv_format_size(t->bufs[op->id].size, buf, sizeof(buf)));
			tl_complete(f, &first, op->dir ? TL_TID_IN : TL_TID_OUT, name,
				    op->dir ? "page-in" : "page-out", ts, op->dur_ns);
			/* A page-out frees its pages once copied; a page-in maps them first. */
			if (op->dir) {
				if (!resident[op->id])
					d[nd++] = (struct tl_delta){ts, (int64_t)t->bufs[op->id].size, 0};
				resident[op->id] = 1;
			} else {
				if (resident[op->id])
					d[nd++] = (struct tl_delta){ts + op->dur_ns,
								    -(int64_t)t->bufs[op->id].size, 0};
				resident[op->id] = 0;
			}
			if (op->dir && op->waited) {
				snprintf(name, sizeof(name), "waited for buffer %" PRIu32, op->id);
				tl_complete(f, &first, TL_TID_STALL, name, "stall", ts, op->dur_ns);
			}
			break;
		case MV_TREC_MARK:
			tl_next(f, &first);
			fprintf(f, "{\"name\":\"iteration mark\",\"ph\":\"i\",\"s\":\"p\",\"pid\":%d,"
				   "\"tid\":%d,\"ts\":%.3f}", TL_PID, TL_TID_STREAM0, (double)ts / 1e3);
			break;
		default:
			break;
		}
	}
	tl_counters(f, &first, d, nd);
	fputs("\n]}\n", f);
	free(resident);
	free(d);
	return 0;
}

/* One point of a memory curve: from time t (ns since the iteration began), bytes are held. */
struct trace_point {
	uint64_t t, bytes;
};

static int trace_sample_cmp(const void *a, const void *b)
{
	const struct cli_sched_sample *x = a, *y = b;

	return x->t < y->t ? -1 : x->t > y->t;
}

/* The schedule's device bytes over its iteration as a step curve, one point per instant that
 * changes it, from 0 to its end. Returns how many points, in *out (malloc'd). */
static size_t trace_curve(struct cli_sched *s, struct trace_point **out)
{
	struct trace_point *p = xmalloc(((size_t)s->nsamples + 2) * sizeof(*p));
	int64_t v = (int64_t)s->base;
	size_t n = 0;

	qsort(s->samples, s->nsamples, sizeof(*s->samples), trace_sample_cmp);
	p[n++] = (struct trace_point){0, s->base};
	for (uint32_t i = 0; i < s->nsamples; i++) {
		uint64_t t = s->samples[i].t > s->t0 ? s->samples[i].t - s->t0 : 0;

		if (s->samples[i].t > s->end)
			break;
		v += s->samples[i].delta;
		if (n > 0 && p[n - 1].t == t)
			p[n - 1].bytes = v > 0 ? (uint64_t)v : 0;
		else
			p[n++] = (struct trace_point){t, v > 0 ? (uint64_t)v : 0};
	}
	v = (int64_t)p[n - 1].bytes;
	p[n++] = (struct trace_point){s->end - s->t0, (uint64_t)v};
	*out = p;
	return n;
}

/* Plans with the asked-for policy and replays the plan for its schedule. Returns 0 or -1. */
static int trace_modeled(const struct trace_ctx *c, const struct mv_policy *pol, uint64_t budget,
			 struct trace_run *run, struct cli_sched *sched)
{
	if (trace_plan_run(c, pol, budget, run) < 0)
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

static const char *trace_func_name(const struct trace_ctx *c, uint32_t k)
{
	uint32_t f = c->it->launch[k].func;

	return f < c->t->nfuncs ? c->t->funcs[f] : "?";
}

/* The timeline of one modeled iteration under the policy: launches on their streams, the copies
 * on the two engines, what launches waited for, and the memory held beside the budget. */
static int trace_timeline_modeled(const struct trace_ctx *c, const struct mv_policy *pol, FILE *f)
{
	static const char *const kinds[] = {"planned", "fault", "evicted"};
	struct trace_run run;
	struct cli_sched s;
	struct trace_point *pts;
	uint32_t maxstream = 0;
	uint64_t prev;
	size_t n;
	int first = 1;
	char name[160], buf[32];

	if (trace_modeled(c, pol, c->budget, &run, &s) < 0)
		return -1;
	for (uint32_t k = 0; k < c->it->nlaunch; k++)
		if (c->it->launch[k].stream > maxstream)
			maxstream = c->it->launch[k].stream;
	fprintf(f, "{\"displayTimeUnit\":\"ms\",\"otherData\":{\"file\":\"");
	trace_json_str(f, c->o->file);
	fprintf(f, "\",\"source\":\"model\",\"policy\":\"%s\",\"budget\":%" PRIu64 ",\"step_ns\":%" PRIu64
		   ",\"stall_ns\":%" PRIu64 ",\"peak\":%" PRIu64 ",\"bytes_out\":%" PRIu64 ",\"bytes_in\":%"
		   PRIu64 ",\"first_op\":%" PRIu32 ",\"nops\":%" PRIu32 "},\"traceEvents\":[", pol->name,
		c->budget, run.r.step_ns, run.r.stall_ns, run.r.peak, run.r.bytes_out, run.r.bytes_in,
		c->first_op, c->nops);
	tl_next(f, &first);
	fprintf(f, "{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":%d,\"args\":{\"name\":\"memvirt: ",
		TL_PID);
	trace_json_str(f, c->o->file);
	fprintf(f, ", %s, budget %s\"}}", pol->name, mv_format_size(c->budget, buf, sizeof(buf)));
	for (uint32_t st = 0; st <= maxstream; st++) {
		snprintf(name, sizeof(name), "stream %" PRIu32, st);
		tl_meta(f, &first, TL_TID_STREAM0 + (int)st, name);
	}
	tl_meta(f, &first, TL_TID_OUT, "page-out (D2H)");
	tl_meta(f, &first, TL_TID_IN, "page-in (H2D)");
	tl_meta(f, &first, TL_TID_STALL, "stalls");
	prev = s.t0;
	for (uint32_t k = 0; k < c->it->nlaunch; k++) {
		tl_complete(f, &first, TL_TID_STREAM0 + (int)c->it->launch[k].stream, trace_func_name(c, k),
			    "kernel", s.start[k] - s.t0, s.fin[k] - s.start[k]);
		if (s.start[k] > prev) {
			snprintf(name, sizeof(name), "launch %" PRIu32 " (%s) waits", k, trace_func_name(c, k));
			tl_complete(f, &first, TL_TID_STALL, name, "stall", prev - s.t0, s.start[k] - prev);
		}
		prev = s.fin[k];
	}
	for (uint32_t i = 0; i < s.ncopies; i++) {
		const struct cli_sched_copy *cp = &s.copies[i];
		uint64_t from = cp->start > s.t0 ? cp->start : s.t0;

		if (cp->end <= s.t0 || cp->start >= s.end)
			continue;
		snprintf(name, sizeof(name), "%s buffer %" PRIu32 " (%s, %s%s)", cp->in ? "in" : "out",
			 cp->buf, mv_format_size(c->it->bufs[cp->buf].size, buf, sizeof(buf)),
			 kinds[cp->kind], cp->late ? ", late" : "");
		tl_complete(f, &first, cp->in ? TL_TID_IN : TL_TID_OUT, name,
			    cp->in ? "page-in" : "page-out", from - s.t0, cp->end - from);
	}
	n = trace_curve(&s, &pts);
	for (size_t i = 0; i < n; i++) {
		tl_next(f, &first);
		fprintf(f, "{\"name\":\"resident (MiB)\",\"ph\":\"C\",\"pid\":%d,\"ts\":%.3f,"
			   "\"args\":{\"resident\":%.3f}}", TL_PID, (double)pts[i].t / 1e3,
			(double)pts[i].bytes / 1048576.0);
	}
	for (int i = 0; i < 2; i++) {
		tl_next(f, &first);
		fprintf(f, "{\"name\":\"budget (MiB)\",\"ph\":\"C\",\"pid\":%d,\"ts\":%.3f,"
			   "\"args\":{\"budget\":%.3f}}", TL_PID, i ? (double)(s.end - s.t0) / 1e3 : 0.0,
			(double)c->budget / 1048576.0);
	}
	fputs("\n]}\n", f);
	free(pts);
	cli_sched_free(&s);
	mv_plan_free(run.plan);
	return 0;
}

/* ---- plot ------------------------------------------------------------------------------------- */

/* The chart's frame, in SVG user units. */
#define PLOT_W 960
#define PLOT_H 540
#define PLOT_LEFT 90
#define PLOT_RIGHT 30
#define PLOT_TOP 60
#define PLOT_BOTTOM 70

/* A tick step of 1, 2 or 5 times a power of ten, giving about `want` ticks over span. */
static double plot_step(double span, int want)
{
	double raw = span / want, mag, f;

	if (!(raw > 0))
		return 1;
	mag = pow(10, floor(log10(raw)));
	f = raw / mag;
	return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
}

/* The unit memory is labelled in: GiB, MiB or KiB, whichever keeps the largest value above 1. */
static void plot_unit(uint64_t max, double *div, const char **name)
{
	if (max >= ((uint64_t)1 << 30)) {
		*div = 1073741824.0;
		*name = "GiB";
	} else if (max >= ((uint64_t)1 << 20)) {
		*div = 1048576.0;
		*name = "MiB";
	} else {
		*div = 1024.0;
		*name = "KiB";
	}
}

/* A step curve as an SVG polyline. */
static void plot_curve(FILE *f, const struct trace_point *p, size_t n, double xs, double ys,
		       const char *id, const char *color)
{
	fprintf(f, "<polyline id=\"%s\" fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"", id,
		color);
	for (size_t i = 0; i < n; i++) {
		double x = PLOT_LEFT + (double)p[i].t * xs, y = PLOT_H - PLOT_BOTTOM - (double)p[i].bytes * ys;

		/* A step: hold the previous value until this instant. */
		if (i > 0)
			fprintf(f, " %.2f,%.2f", x, PLOT_H - PLOT_BOTTOM - (double)p[i - 1].bytes * ys);
		fprintf(f, " %.2f,%.2f", x, y);
	}
	fprintf(f, "\"/>\n");
}

static int trace_plot(const struct trace_opts *o)
{
	const struct mv_policy *pol = mv_policy_find(o->plan.policy != NULL ? o->plan.policy : "auto");
	struct trace_ctx c;
	struct trace_run run;
	struct cli_sched su, sp;
	struct trace_point *pu, *pp;
	size_t nu, np;
	uint64_t tmax, ymax = 0;
	double xs, ys, div, step, xstep, ystep;
	const char *unit;
	char a[32], b[32];
	FILE *f = stdout;
	int rc = 1;

	if (o->budget == NULL) {
		fprintf(stderr, "memvirt trace plot: --budget is required (a size such as 12GiB or a "
				"percentage of the iteration's peak such as 50%%)\n");
		return 2;
	}
	if (trace_load(&c, o, 1) < 0)
		return 1;
	if (cli_sched_run(c.it, NULL, UINT64_MAX, &c.m, &su) < 0) {
		trace_ctx_free(&c);
		return 1;
	}
	if (trace_modeled(&c, pol, c.budget, &run, &sp) < 0) {
		cli_sched_free(&su);
		trace_ctx_free(&c);
		return 1;
	}
	nu = trace_curve(&su, &pu);
	np = trace_curve(&sp, &pp);
	tmax = pu[nu - 1].t > pp[np - 1].t ? pu[nu - 1].t : pp[np - 1].t;
	if (tmax == 0)
		tmax = 1;
	for (size_t i = 0; i < nu; i++)
		ymax = pu[i].bytes > ymax ? pu[i].bytes : ymax;
	for (size_t i = 0; i < np; i++)
		ymax = pp[i].bytes > ymax ? pp[i].bytes : ymax;
	ymax = c.budget > ymax ? c.budget : ymax;
	plot_unit(ymax, &div, &unit);
	/* Headroom above the highest line, then whole ticks. */
	ystep = plot_step((double)ymax * 1.1 / div, 6);
	ys = (double)(PLOT_H - PLOT_TOP - PLOT_BOTTOM) / (ceil((double)ymax * 1.1 / div / ystep) * ystep * div);
	xstep = plot_step((double)tmax / 1e6, 8);
	xs = (double)(PLOT_W - PLOT_LEFT - PLOT_RIGHT) / (ceil((double)tmax / 1e6 / xstep) * xstep * 1e6);

	fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		   "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
		   "font-family=\"sans-serif\" font-size=\"12\">\n", PLOT_W, PLOT_H, PLOT_W, PLOT_H);
	fprintf(f, "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", PLOT_W, PLOT_H);
	fprintf(f, "<text id=\"title\" x=\"%d\" y=\"28\" text-anchor=\"middle\" font-size=\"16\">"
		   "Device memory over one iteration: ", PLOT_W / 2);
	trace_xml_str(f, o->file);
	fprintf(f, ", policy %s, budget %s</text>\n", pol->name, mv_format_size(c.budget, a, sizeof(a)));
	fprintf(f, "<text x=\"%d\" y=\"46\" text-anchor=\"middle\" fill=\"#555\">step %.3f ms "
		   "(unlimited %.3f ms), peak %s (unlimited %s), link %g/%g GB/s</text>\n", PLOT_W / 2,
		(double)run.r.step_ns / 1e6, (double)su.step_ns / 1e6,
		mv_format_size(run.r.peak, a, sizeof(a)), mv_format_size(su.peak, b, sizeof(b)),
		o->h2d_gbps, o->d2h_gbps);

	/* Axes, ticks and grid. */
	fprintf(f, "<g id=\"axes\" stroke=\"black\">\n<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>\n"
		   "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>\n</g>\n",
		PLOT_LEFT, PLOT_H - PLOT_BOTTOM, PLOT_W - PLOT_RIGHT, PLOT_H - PLOT_BOTTOM, PLOT_LEFT, PLOT_TOP,
		PLOT_LEFT, PLOT_H - PLOT_BOTTOM);
	fprintf(f, "<g id=\"xticks\">\n");
	for (step = 0; PLOT_LEFT + step * 1e6 * xs <= PLOT_W - PLOT_RIGHT + 0.5; step += xstep) {
		double x = PLOT_LEFT + step * 1e6 * xs;

		fprintf(f, "<line x1=\"%.2f\" y1=\"%d\" x2=\"%.2f\" y2=\"%d\" stroke=\"#ddd\"/>"
			   "<line x1=\"%.2f\" y1=\"%d\" x2=\"%.2f\" y2=\"%d\" stroke=\"black\"/>"
			   "<text x=\"%.2f\" y=\"%d\" text-anchor=\"middle\">%g</text>\n",
			x, PLOT_TOP, x, PLOT_H - PLOT_BOTTOM, x, PLOT_H - PLOT_BOTTOM, x, PLOT_H - PLOT_BOTTOM + 5,
			x, PLOT_H - PLOT_BOTTOM + 20, step);
	}
	fprintf(f, "</g>\n<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">time (ms)</text>\n",
		(PLOT_LEFT + PLOT_W - PLOT_RIGHT) / 2, PLOT_H - PLOT_BOTTOM + 42);
	fprintf(f, "<g id=\"yticks\">\n");
	for (step = 0; PLOT_H - PLOT_BOTTOM - step * div * ys >= PLOT_TOP - 0.5; step += ystep) {
		double y = PLOT_H - PLOT_BOTTOM - step * div * ys;

		fprintf(f, "<line x1=\"%d\" y1=\"%.2f\" x2=\"%d\" y2=\"%.2f\" stroke=\"#ddd\"/>"
			   "<line x1=\"%d\" y1=\"%.2f\" x2=\"%d\" y2=\"%.2f\" stroke=\"black\"/>"
			   "<text x=\"%d\" y=\"%.2f\" text-anchor=\"end\">%g</text>\n",
			PLOT_LEFT, y, PLOT_W - PLOT_RIGHT, y, PLOT_LEFT - 5, y, PLOT_LEFT, y, PLOT_LEFT - 8, y + 4,
			step);
	}
	fprintf(f, "</g>\n<text x=\"24\" y=\"%d\" text-anchor=\"middle\" transform=\"rotate(-90 24 %d)\">"
		   "resident device memory (%s)</text>\n", (PLOT_TOP + PLOT_H - PLOT_BOTTOM) / 2,
		(PLOT_TOP + PLOT_H - PLOT_BOTTOM) / 2, unit);

	/* The budget, then the two curves. */
	fprintf(f, "<line id=\"budget\" x1=\"%d\" y1=\"%.2f\" x2=\"%d\" y2=\"%.2f\" stroke=\"#c00\" "
		   "stroke-width=\"1.5\" stroke-dasharray=\"6 4\"/>\n", PLOT_LEFT,
		PLOT_H - PLOT_BOTTOM - (double)c.budget * ys, PLOT_W - PLOT_RIGHT,
		PLOT_H - PLOT_BOTTOM - (double)c.budget * ys);
	plot_curve(f, pu, nu, xs, ys, "unlimited", "#888");
	plot_curve(f, pp, np, xs, ys, "policy", "#1f5fbf");

	/* The legend, top right. */
	fprintf(f, "<g id=\"legend\" transform=\"translate(%d %d)\">\n"
		   "<rect x=\"-8\" y=\"-14\" width=\"250\" height=\"62\" fill=\"white\" stroke=\"#aaa\"/>\n"
		   "<line x1=\"0\" y1=\"0\" x2=\"24\" y2=\"0\" stroke=\"#888\" stroke-width=\"1.5\"/>"
		   "<text x=\"30\" y=\"4\">unlimited memory (peak %s)</text>\n",
		PLOT_W - PLOT_RIGHT - 250, PLOT_TOP + 10, mv_format_size(su.peak, a, sizeof(a)));
	fprintf(f, "<line x1=\"0\" y1=\"18\" x2=\"24\" y2=\"18\" stroke=\"#1f5fbf\" stroke-width=\"1.5\"/>"
		   "<text x=\"30\" y=\"22\">%s (peak %s)</text>\n", pol->name,
		mv_format_size(run.r.peak, a, sizeof(a)));
	fprintf(f, "<line x1=\"0\" y1=\"36\" x2=\"24\" y2=\"36\" stroke=\"#c00\" stroke-width=\"1.5\" "
		   "stroke-dasharray=\"6 4\"/><text x=\"30\" y=\"40\">budget %s</text>\n</g>\n</svg>\n",
		mv_format_size(c.budget, a, sizeof(a)));
	rc = fflush(f) == 0 && !ferror(f) ? 0 : 1;
	if (rc != 0)
		fprintf(stderr, "memvirt trace plot: writing: %s\n", strerror(errno));
	free(pu);
	free(pp);
	cli_sched_free(&su);
	cli_sched_free(&sp);
	mv_plan_free(run.plan);
	trace_ctx_free(&c);
	return rc;
}

static int trace_timeline(const struct trace_opts *o)
{
	struct trace_ctx c;
	int rc;

	if ((o->plan.policy != NULL) != (o->budget != NULL)) {
		fprintf(stderr, "memvirt trace timeline: --policy and --budget go together: without them "
				"the timeline is what the trace recorded\n");
		return 2;
	}
	if (trace_load(&c, o, o->plan.policy != NULL) < 0)
		return 1;
	if (o->plan.policy != NULL)
		rc = trace_timeline_modeled(&c, mv_policy_find(o->plan.policy), stdout);
	else
		rc = trace_timeline_recorded(&c, stdout);
	if (rc == 0 && (fflush(stdout) != 0 || ferror(stdout))) {
		fprintf(stderr, "memvirt trace timeline: writing: %s\n", strerror(errno));
		rc = -1;
	}
	trace_ctx_free(&c);
	return rc < 0 ? 1 : 0;
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

/* Returns 0, 1 for --help, or -1 for a usage error (printed). */
static int trace_parse(int argc, char **argv, struct trace_opts *o)
{
	static const struct option opts[] = {
		CLI_PLAN_OPTIONS,
		{"all", no_argument, NULL, 'A'},
		{"budget", required_argument, NULL, 'b'},
		{"h2d", required_argument, NULL, 'H'},
		{"d2h", required_argument, NULL, 'D'},
		{"iteration", required_argument, NULL, 'i'},
		{"heavy-fraction", required_argument, NULL, 'F'},
		{"headroom", required_argument, NULL, 'R'},
		{"feedback", required_argument, NULL, 'f'},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct mv_knob_value k;
	uint64_t v, w;
	char *colon;
	int c;

	memset(o, 0, sizeof(*o));
	o->h2d_gbps = o->d2h_gbps = TRACE_DEFAULT_GBPS;
	o->feedback = TRACE_DEFAULT_FEEDBACK;
	cli_plan_init(&o->plan);
	if (argc < 2) {
		trace_usage(stderr);
		return -1;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		trace_usage(stdout);
		return 1;
	}
	o->sub = argv[1];
	if (strcmp(o->sub, "replay") != 0 && strcmp(o->sub, "timeline") != 0 &&
	    strcmp(o->sub, "plot") != 0 && strcmp(o->sub, "info") != 0) {
		static const char *const subs[] = {"replay", "timeline", "plot", "info", NULL};
		const char *guess = cli_closest(o->sub, subs);

		fprintf(stderr, "memvirt trace: unknown subcommand '%s'", o->sub);
		if (guess != NULL)
			fprintf(stderr, "; did you mean '%s'?", guess);
		fprintf(stderr, " (replay, timeline, plot or info)\n");
		return -1;
	}
	optind = 0;
	while ((c = getopt_long(argc - 1, argv + 1, "h", opts, NULL)) != -1) {
		switch (c) {
		case CLI_OPT_POLICY:
		case CLI_OPT_LOOKAHEAD:
		case CLI_OPT_PAGE_MIN:
			if (cli_plan_option("memvirt trace", c, optarg, &o->plan) < 0)
				return -1;
			break;
		case 'A':
			o->all = 1;
			break;
		case 'b':
			/* The percentage's whole, the iteration's peak, is known only once the file
			 * is read: here only the spelling is judged. */
			if (mv_parse_size_or_percent(optarg, UINT64_C(1) << 50, &v) < 0 || v == 0) {
				fprintf(stderr, "memvirt trace: --budget '%s' is not a size (such as 12GiB) "
						"or a percentage of the iteration's peak (such as 50%%)\n",
					optarg);
				return -1;
			}
			o->budget = optarg;
			break;
		case 'H':
			if (cli_knob_option("memvirt trace", "--h2d", "h2d_gbps", optarg, &k) < 0)
				return -1;
			o->h2d_gbps = k.d;
			break;
		case 'D':
			if (cli_knob_option("memvirt trace", "--d2h", "d2h_gbps", optarg, &k) < 0)
				return -1;
			o->d2h_gbps = k.d;
			break;
		case 'i':
			colon = strchr(optarg, ':');
			if (colon == NULL) {
				fprintf(stderr, "memvirt trace: --iteration '%s' is not FIRST:N (the first op and "
						"how many ops)\n", optarg);
				return -1;
			}
			*colon = '\0';
			if (trace_uint("--iteration's FIRST", optarg, 0, UINT32_MAX - 1, &v) < 0 ||
			    trace_uint("--iteration's N", colon + 1, 1, UINT32_MAX, &w) < 0) {
				*colon = ':';
				return -1;
			}
			*colon = ':';
			o->has_iter = 1;
			o->iter_first = (uint32_t)v;
			o->iter_n = (uint32_t)w;
			break;
		case 'F':
			if (cli_knob_option("memvirt trace", "--heavy-fraction", "heavy_fraction", optarg,
					    &k) < 0)
				return -1;
			o->plan.knobs.heavy_fraction = k.d;
			break;
		case 'R':
			if (cli_knob_option("memvirt trace", "--headroom", "headroom", optarg, &k) < 0)
				return -1;
			o->plan.knobs.headroom = k.d;
			break;
		case 'f':
			if (trace_uint("--feedback", optarg, 0, 100, &v) < 0)
				return -1;
			o->feedback = (uint32_t)v;
			break;
		case 'j':
			o->json = 1;
			break;
		case 'h':
			trace_usage(stdout);
			return 1;
		default:
			fprintf(stderr, "'memvirt trace --help' lists the options\n");
			return -1;
		}
	}
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

int cmd_trace(int argc, char **argv)
{
	struct trace_opts o;
	int r = trace_parse(argc, argv, &o);

	if (r != 0)
		return r > 0 ? 0 : 2;
	if (strcmp(o.sub, "replay") == 0)
		return trace_replay(&o);
	if (strcmp(o.sub, "timeline") == 0)
		return trace_timeline(&o);
	if (strcmp(o.sub, "plot") == 0)
		return trace_plot(&o);
	return trace_info(&o);
}
