/* memvirt trace info: what a trace holds, and the iteration found in it. */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli/internal.h"
#include "policies/policy.h"
#include "policies/trace.h"
#include "protocol/units.h"

static uint32_t info_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* What info reports of a trace beside its header. */
struct info_counts {
	uint32_t count[MV_TREC_END + 1]; /* records of each kind */
	uint32_t version;
	uint32_t pinned;                 /* buffers never paged */
	uint32_t timed;                  /* launches with a measured duration */
	uint32_t waited;                 /* page records a launch waited for */
	uint64_t span_ns;                /* from the first record to the end of the last */
	int have_iter;                   /* c->it holds the iteration found, of peak bytes */
	uint64_t peak;
};

/* Counts the trace's records and looks for its iteration, which it builds into c->it. */
static void info_count(struct cli_trace_ctx *c, struct info_counts *n)
{
	const struct mv_trace *t = c->t;
	uint64_t first_ns = 0, last_ns = 0;

	memset(n, 0, sizeof(*n));
	n->version = info_le32(c->image + 8);
	for (uint32_t i = 0; i < t->nops; i++) {
		if (t->ops[i].kind <= MV_TREC_END)
			n->count[t->ops[i].kind]++;
		n->timed += t->ops[i].kind == MV_TREC_LAUNCH && t->ops[i].dur_ns > 0;
		n->waited += t->ops[i].kind == MV_TREC_PAGE && t->ops[i].waited;
		if (i == 0)
			first_ns = t->ops[i].time_ns;
		last_ns = t->ops[i].time_ns + (t->ops[i].kind == MV_TREC_LAUNCH ? t->ops[i].dur_ns : 0);
	}
	n->span_ns = last_ns - first_ns;
	for (uint32_t i = 0; i < t->nbufs; i++)
		n->pinned += (t->bufs[i].flags & MV_TBUF_PINNED) != 0;
	n->have_iter = mv_iter_detect_recorded(t, CLI_TRACE_TAIL_MAX, &c->first_op, &c->nops) == 0 &&
		       mv_iter_build(t, c->first_op, c->nops, c->m.launch_ns, &c->it) == 0;
	if (n->have_iter)
		n->peak = mv_model_peak(c->it);
}

static void info_print_json(const struct cli_trace_ctx *c, const struct info_counts *n)
{
	const struct mv_trace *t = c->t;
	json_t *root;

	root = json_pack("{s:s, s:I, s:I, s:b, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
			 "s:I, s:I, s:I, s:I}",
			 "file", c->o->file, "version", (json_int_t)n->version,
			 "device_total", (json_int_t)t->device_total,
			 "model_only", (t->flags & MV_TRACE_F_MODEL_ONLY) != 0,
			 "truncated", t->truncated,
			 "ops", (json_int_t)t->nops,
			 "launches", (json_int_t)n->count[MV_TREC_LAUNCH],
			 "timed_launches", (json_int_t)n->timed,
			 "refs", (json_int_t)t->nrefs,
			 "allocs", (json_int_t)n->count[MV_TREC_ALLOC],
			 "frees", (json_int_t)n->count[MV_TREC_FREE],
			 "syncs", (json_int_t)n->count[MV_TREC_SYNC],
			 "marks", (json_int_t)n->count[MV_TREC_MARK],
			 "pages", (json_int_t)n->count[MV_TREC_PAGE],
			 "waited_pages", (json_int_t)n->waited,
			 "functions", (json_int_t)t->nfuncs,
			 "buffers", (json_int_t)t->nbufs,
			 "pinned_buffers", (json_int_t)n->pinned,
			 "span_ns", (json_int_t)n->span_ns);
	if (root == NULL)
		xoom();
	json_object_set_new(root, "rank", t->rank != MV_TRACE_NONE ? json_integer((json_int_t)t->rank)
								   : json_null());
	json_object_set_new(root, "cut", json_boolean((t->flags & MV_TRACE_F_CUT) != 0));
	if (n->have_iter)
		json_object_set_new(root, "iteration",
				    json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "first_op",
					      (json_int_t)c->first_op, "nops", (json_int_t)c->nops,
					      "launches", (json_int_t)c->it->nlaunch, "buffers",
					      (json_int_t)c->it->nbufs, "peak", (json_int_t)n->peak,
					      "untimed_launches",
					      (json_int_t)mv_trace_untimed(c->t, c->first_op, c->nops, NULL)));
	else
		json_object_set_new(root, "iteration", json_null());
	cli_print_json(root);
}

static void info_print_table(const struct cli_trace_ctx *c, const struct info_counts *n)
{
	const struct mv_trace *t = c->t;
	const uint32_t *count = n->count;
	char a[32];

	printf("file        %s\n", c->o->file);
	printf("version     %" PRIu32 "\n", n->version);
	printf("device      %s (%" PRIu64 " bytes)%s\n", mv_format_size(t->device_total, a, sizeof(a)),
	       t->device_total, (t->flags & MV_TRACE_F_MODEL_ONLY) ? ", simulated, model only" : "");
	printf("ops         %" PRIu32 ": %" PRIu32 " launches, %" PRIu32 " allocations, %" PRIu32
	       " frees, %" PRIu32 " syncs, %" PRIu32 " marks, %" PRIu32 " page records\n", t->nops,
	       count[MV_TREC_LAUNCH], count[MV_TREC_ALLOC], count[MV_TREC_FREE], count[MV_TREC_SYNC],
	       count[MV_TREC_MARK], count[MV_TREC_PAGE]);
	printf("timed       %" PRIu32 " launches with a measured duration; %" PRIu32 " page records a "
	       "launch waited for\n", n->timed, n->waited);
	printf("references  %" PRIu32 " buffers named by launches\n", t->nrefs);
	printf("functions   %" PRIu32 "\n", t->nfuncs);
	printf("buffers     %" PRIu32 " (%" PRIu32 " never paged)\n", t->nbufs, n->pinned);
	printf("span        %.3f ms\n", (double)n->span_ns / 1e6);
	if (t->rank != MV_TRACE_NONE)
		printf("rank        %" PRIu32 "\n", t->rank);
	else
		printf("rank        none\n");
	printf("truncated   %s\n", t->truncated ? "yes: the file ends without its end record" : "no");
	printf("cut         %s\n", (t->flags & MV_TRACE_F_CUT) ? "yes: recording stopped at its size cap "
	       "(--record-max); the job went on" : "no");
	if (n->have_iter) {
		uint64_t compute = 0;
		uint32_t untimed;

		for (uint32_t i = 0; i < c->it->nlaunch; i++)
			compute += c->it->launch[i].dur_ns;
		printf("iteration   ops %" PRIu32 ":%" PRIu32 " (%" PRIu32 " launches, %" PRIu32
		       " buffers), %s\n", c->first_op, c->nops, c->it->nlaunch, c->it->nbufs,
		       t->nops > 0 && count[MV_TREC_MARK] >= 2 ? "between the last two marks" :
		       "detected from the launch sequence");
		printf("peak        %s (%" PRIu64 " bytes) alive at once in the iteration\n",
		       mv_format_size(n->peak, a, sizeof(a)), n->peak);
		printf("compute     %.3f ms per iteration\n", (double)compute / 1e6);
		untimed = mv_trace_untimed(t, c->first_op, c->nops, NULL);
		printf("untimed     %" PRIu32 " launches in the iteration have no measured duration%s\n", untimed,
		       untimed > 0 ? " (the recording lost their timing; replays charge them a guess)" : "");
	} else {
		printf("iteration   none found: no launch sequence repeats yet\n");
	}
}

int cli_trace_info(const struct cli_trace_opts *o)
{
	struct cli_trace_ctx c;
	struct info_counts n;

	if (cli_trace_load(&c, o, 0) < 0)
		return 1;
	info_count(&c, &n);
	if (o->json)
		info_print_json(&c, &n);
	else
		info_print_table(&c, &n);
	cli_trace_ctx_free(&c);
	return 0;
}
