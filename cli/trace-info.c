/* memvirt trace info: what a trace holds, and the iteration found in it. */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include <jansson.h>

#include "cli/internal.h"
#include "policies/policy.h"
#include "policies/trace.h"
#include "protocol/units.h"

static uint32_t info_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int cli_trace_info(const struct cli_trace_opts *o)
{
	struct cli_trace_ctx c;
	uint32_t count[MV_TREC_END + 1] = {0}, pinned = 0, timed = 0, waited = 0, version;
	uint64_t first_ns = 0, last_ns = 0, peak = 0;
	int have_iter;
	char a[32], b[32];

	if (cli_trace_load(&c, o, 0) < 0)
		return 1;
	version = info_le32(c.image + 8);
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
	have_iter = mv_iter_detect_recorded(c.t, CLI_TRACE_TAIL_MAX, &c.first_op, &c.nops) == 0 &&
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
		cli_trace_ctx_free(&c);
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
	cli_trace_ctx_free(&c);
	return 0;
}
