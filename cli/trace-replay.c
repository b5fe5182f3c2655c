/* memvirt trace replay: one iteration of a trace under a policy (or all of them) and a budget, as
 * the time model plays it: peak memory, bytes moved, stall, overhead and the bandwidth bound. */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli/internal.h"
#include "policies/policy.h"
#include "protocol/units.h"

static double replay_pct(uint64_t step, uint64_t base)
{
	return base > 0 ? ((double)step - (double)base) * 100.0 / (double)base : 0.0;
}

static double replay_ratio(uint64_t step, uint64_t bound)
{
	return bound > 0 ? (double)step / (double)bound : 0.0;
}

/* The bounds hold only where every launch's buffers fit the budget at once: at a budget below that
 * (host mapping lets the replay run it) there is none, UINT64_MAX. */
#define REPLAY_NO_BOUND UINT64_MAX

/* A bound or a ratio to it as JSON: null where there is no bound. */
static json_t *replay_bound_json(uint64_t bound)
{
	return bound == REPLAY_NO_BOUND ? json_null() : json_integer((json_int_t)bound);
}

/* A result's figures, as each policy's entry and the baseline's have them. */
static json_t *replay_result_json(const struct mv_model_result *r, const struct mv_model_result *base,
				  uint64_t bound)
{
	return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:o, s:I, s:b, s:I, s:I}",
			 "peak", (json_int_t)r->peak,
			 "bytes_out", (json_int_t)r->bytes_out,
			 "bytes_in", (json_int_t)r->bytes_in,
			 "page_outs", (json_int_t)r->page_outs,
			 "page_ins", (json_int_t)r->page_ins,
			 "stall_ns", (json_int_t)r->stall_ns,
			 "step_ns", (json_int_t)r->step_ns,
			 "compute_ns", (json_int_t)r->compute_ns,
			 "overhead_pct", replay_pct(r->step_ns, base->step_ns),
			 "lower_bound_ratio", bound == REPLAY_NO_BOUND ? json_null() :
					      json_real(replay_ratio(r->step_ns, bound)),
			 "faults", (json_int_t)r->faults,
			 "over_budget", r->over_budget,
			 "host_runs", (json_int_t)r->host_runs,
			 "host_bytes", (json_int_t)r->host_bytes);
}

static json_t *replay_run_json(const struct cli_trace_run *run, const struct mv_model_result *base,
			       uint64_t bound, const struct mv_model_result *uvm)
{
	const struct mv_model_result *r = &run->r;
	json_t *one = replay_result_json(r, base, bound);

	if (one == NULL ||
	    json_object_set_new(one, "policy", json_string(run->pol->name)) != 0 ||
	    json_object_set_new(one, "plan_ops", json_integer(run->plan != NULL ? run->plan->nops : 0)) != 0 ||
	    json_object_set_new(one, "late", json_integer(r->late)) != 0 ||
	    json_object_set_new(one, "uvm_ratio", json_real(replay_ratio(r->step_ns, uvm->step_ns))) != 0 ||
	    json_object_set_new(one, "feedback_rounds", json_integer(run->rounds)) != 0)
		xoom();
	return one;
}

static void replay_ms(uint64_t ns, char *buf, size_t len)
{
	snprintf(buf, len, "%.3f ms", (double)ns / 1e6);
}

/* The lower bounds for whole-buffer copies and for copies in MV_MODEL_CHUNK pieces, and the bytes
 * that must leave the device at the tightest launch. */
struct replay_bounds {
	uint64_t whole, chunk, must;
};

/* One policy's report as a table of name and value. */
static void replay_print_one(const struct cli_trace_ctx *c, const struct cli_trace_run *run,
			     const struct mv_model_result *base, const struct replay_bounds *lb,
			     const struct mv_model_result *uvm)
{
	const struct mv_model_result *r = &run->r;
	char a[32], b[32], d[32], e[32];

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
	replay_ms(r->stall_ns, a, sizeof(a));
	printf("stall            %s\n", a);
	replay_ms(r->step_ns, a, sizeof(a));
	replay_ms(base->step_ns, b, sizeof(b));
	printf("step             %s; unlimited %s\n", a, b);
	printf("overhead         %.2f%%\n", replay_pct(r->step_ns, base->step_ns));
	if (lb->whole == REPLAY_NO_BOUND) {
		printf("lower bound      none: a launch names more than the budget, which the bound does "
		       "not model\n");
	} else {
		replay_ms(lb->whole, a, sizeof(a));
		printf("lower bound      %s (%s must leave the device at the tightest launch)\n", a,
		       mv_format_size(lb->must, b, sizeof(b)));
		replay_ms(lb->chunk, a, sizeof(a));
		printf("chunk bound      %s (copies in %s pieces)\n", a,
		       mv_format_size(MV_MODEL_CHUNK, b, sizeof(b)));
		printf("step/bound       %.3f\n", replay_ratio(r->step_ns, lb->whole));
	}
	printf("over the link    %" PRIu32 " launches read %s (%" PRIu64 " bytes) of buffers left in host "
	       "memory\n", r->host_runs, mv_format_size(r->host_bytes, a, sizeof(a)), r->host_bytes);
	printf("late page-ins    %" PRIu32 "\n", r->late);
	printf("faults           %" PRIu32 "\n", r->faults);
	printf("feedback rounds  %" PRIu32 "\n", run->rounds);
	replay_ms(uvm->step_ns, a, sizeof(a));
	printf("uvm baseline     step %s (%.2f%% over unlimited), %" PRIu32 " %s faults, %s in, %s out%s; "
	       "this policy's step is %.3f of it\n", a, replay_pct(uvm->step_ns, base->step_ns), uvm->faults,
	       mv_format_size(MV_UVM_BLOCK, d, sizeof(d)), mv_format_size(uvm->bytes_in, b, sizeof(b)),
	       mv_format_size(uvm->bytes_out, e, sizeof(e)), uvm->over_budget ? ", thrashing within a launch" : "",
	       replay_ratio(r->step_ns, uvm->step_ns));
	if (r->over_budget)
		printf("over budget      yes: even reactive paging cannot keep the budget; the job "
		       "would get out-of-memory errors\n");
}

/* Several policies, one row each. */
/* One row of the table: a policy's, or the baseline's. */
static void replay_print_row(const char *name, const struct mv_model_result *r, const struct mv_model_result *base,
			     const struct replay_bounds *lb, const struct mv_model_result *uvm)
{
	char a[32], b[32], d[32];

	char x[16] = "-", link[48] = "";

	if (lb->whole != REPLAY_NO_BOUND)
		snprintf(x, sizeof(x), "%.3f", replay_ratio(r->step_ns, lb->whole));
	if (r->host_runs > 0)
		snprintf(link, sizeof(link), "  over the link %" PRIu32, r->host_runs);
	printf("%-10s %12s %12s %12s %7" PRIu32 " %7" PRIu32 " %10.3f %10.3f %8.2f%% %8s %7.3f %5" PRIu32
	       " %6" PRIu32 "%s%s\n", name, mv_format_size(r->peak, a, sizeof(a)),
	       mv_format_size(r->bytes_out, b, sizeof(b)), mv_format_size(r->bytes_in, d, sizeof(d)), r->page_outs,
	       r->page_ins, (double)r->stall_ns / 1e6, (double)r->step_ns / 1e6, replay_pct(r->step_ns, base->step_ns),
	       x, replay_ratio(r->step_ns, uvm->step_ns), r->late, r->faults, link,
	       r->over_budget ? "  over budget" : "");
}

static void replay_print_table(const struct cli_trace_ctx *c, const struct cli_trace_run *runs,
			       size_t n, const struct mv_model_result *base, const struct replay_bounds *lb,
			       const struct mv_model_result *uvm)
{
	char a[32], b[32], d[32];

	printf("%s: iteration ops %" PRIu32 ":%" PRIu32 " (%" PRIu32 " launches), budget %s, link "
	       "%g/%g GB/s\n", c->o->file, c->first_op, c->nops, c->it->nlaunch,
	       mv_format_size(c->budget, a, sizeof(a)), c->o->h2d_gbps, c->o->d2h_gbps);
	if (lb->whole == REPLAY_NO_BOUND)
		printf("unlimited: peak %s, step %.3f ms; no lower bound (a launch names more than the "
		       "budget)\n", mv_format_size(base->peak, a, sizeof(a)), (double)base->step_ns / 1e6);
	else
		printf("unlimited: peak %s, step %.3f ms; lower bound %.3f ms, %.3f ms in %s pieces (%s must "
		       "leave the device)\n", mv_format_size(base->peak, a, sizeof(a)),
		       (double)base->step_ns / 1e6, (double)lb->whole / 1e6, (double)lb->chunk / 1e6,
		       mv_format_size(MV_MODEL_CHUNK, d, sizeof(d)), mv_format_size(lb->must, b, sizeof(b)));
	printf("%-10s %12s %12s %12s %7s %7s %10s %10s %9s %8s %7s %5s %6s\n", "policy", "peak", "out",
	       "in", "outs", "ins", "stall ms", "step ms", "overhead", "x bound", "x uvm", "late", "faults");
	for (size_t i = 0; i < n; i++)
		replay_print_row(runs[i].pol->name, &runs[i].r, base, lb, uvm);
	/* The baseline: its outs and ins are blocks, its faults every block it faulted in. */
	replay_print_row("uvm", uvm, base, lb, uvm);
}

/* A recording that lost launch timings models those launches at a guess (the launch cost): the
 * step and overhead it reports are then wrong, so it says how many. */
static void replay_warn_untimed(const struct cli_trace_ctx *c)
{
	uint32_t launches, untimed = mv_trace_untimed(c->t, c->first_op, c->nops, &launches);

	if (untimed == 0)
		return;
	fprintf(stderr, "memvirt trace replay: warning: %s: %" PRIu32 " of %" PRIu32 " launches in the "
			"iteration have no measured duration; each is modeled at %.3f ms, so the times below "
			"are not the recorded job's (record it again)\n",
		c->o->file, untimed, launches, (double)c->m.launch_ns / 1e6);
}

int cli_trace_replay(const struct cli_trace_opts *o)
{
	struct cli_trace_ctx c;
	struct cli_trace_run *runs;
	struct mv_model_result base, uvm;
	struct replay_bounds lb = {0, 0, 0};
	size_t n = 0, want = 1;
	int rc = 1, r;

	if (o->budget == NULL) {
		fprintf(stderr, "memvirt trace replay: --budget is required (a size such as 12GiB or a "
				"percentage of the iteration's peak such as 50%%)\n");
		return 2;
	}
	if (cli_trace_load(&c, o, 1) < 0)
		return 1;
	replay_warn_untimed(&c);
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
	lb.whole = mv_model_bounds(c.it, c.budget, &c.m, MV_MODEL_CHUNK, &lb.must, &lb.chunk);
	if (lb.whole == UINT64_MAX) {
		lb.whole = lb.chunk = REPLAY_NO_BOUND;
		lb.must = 0;
	}
	r = mv_model_uvm(c.it, c.budget, &c.m, &(struct mv_uvm){MV_UVM_BLOCK, MV_UVM_FAULT_NS}, &uvm);
	if (r < 0) {
		fprintf(stderr, "memvirt trace: %s: the unified-memory baseline failed: %s\n", o->file, strerror(-r));
		goto out;
	}
	for (n = 0; n < want; n++) {
		const struct mv_policy *pol = o->all ? mv_policies[n] : mv_policy_find(o->plan.policy);

		if (cli_trace_plan_run(&c, pol, c.budget, &runs[n]) < 0)
			goto out;
	}
	if (o->json) {
		json_t *root, *arr = json_array();

		for (size_t i = 0; i < n; i++) {
			json_t *one = replay_run_json(&runs[i], &base, lb.whole, &uvm);

			json_object_set_new(one, "budget", json_integer((json_int_t)c.budget));
			json_array_append_new(arr, one);
		}
		root = json_pack("{s:s, s:b, s:{s:I, s:I, s:I, s:I, s:I}, s:I, s:f, s:f, s:{s:I, s:I}, "
				 "s:o, s:o, s:I, s:o}",
				 "file", o->file, "truncated", c.t->truncated,
				 "iteration", "first_op", (json_int_t)c.first_op, "nops",
				 (json_int_t)c.nops, "launches", (json_int_t)c.it->nlaunch, "buffers",
				 (json_int_t)c.it->nbufs, "untimed_launches",
				 (json_int_t)mv_trace_untimed(c.t, c.first_op, c.nops, NULL),
				 "budget", (json_int_t)c.budget,
				 "h2d_gbps", o->h2d_gbps, "d2h_gbps", o->d2h_gbps,
				 "unlimited", "peak", (json_int_t)base.peak, "step_ns",
				 (json_int_t)base.step_ns,
				 "lower_bound_ns", replay_bound_json(lb.whole), "chunk_bound_ns",
				 replay_bound_json(lb.chunk),
				 "must_move", (json_int_t)lb.must,
				 "results", arr);
		if (root == NULL ||
		    json_object_set_new(root, "uvm", replay_result_json(&uvm, &base, lb.whole)) != 0)
			xoom();
		cli_print_json(root);
	} else if (o->all) {
		replay_print_table(&c, runs, n, &base, &lb, &uvm);
	} else {
		replay_print_one(&c, &runs[0], &base, &lb, &uvm);
	}
	rc = 0;
	for (size_t i = 0; i < n; i++)
		if (runs[i].r.over_budget)
			rc = 1;
out:
	for (size_t i = 0; i < n; i++)
		mv_plan_free(runs[i].plan);
	free(runs);
	cli_trace_ctx_free(&c);
	return rc;
}
