/* memvirt trace timeline: a trace, or one iteration of it as the model plays it under a policy, in
 * the Chrome trace event format that Perfetto (ui.perfetto.dev) reads. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/internal.h"
#include "policies/policy.h"
#include "policies/trace.h"
#include "protocol/units.h"

/* Writes s as a JSON string's contents. */
static void timeline_json_str(FILE *f, const char *s)
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
	timeline_json_str(f, name);
	fputs("\"}}", f);
	tl_next(f, first);
	fprintf(f, "{\"name\":\"thread_sort_index\",\"ph\":\"M\",\"pid\":%d,\"tid\":%d,"
		   "\"args\":{\"sort_index\":%d}}", TL_PID, tid, tid);
}

/* The name of track tid. */
static void tl_track_name(int tid, char *name, size_t n)
{
	if (tid >= TL_TID_STREAM0)
		snprintf(name, n, "stream %d", tid - TL_TID_STREAM0);
	else
		snprintf(name, n, "%s", tid == TL_TID_OUT ? "page-out (D2H)" : tid == TL_TID_IN ? "page-in (H2D)" :
			 "stalls");
}

/* The tracks' names and order: streams 0 to maxstream, then the two copy engines and the stalls. */
static void tl_tracks(FILE *f, int *first, uint32_t maxstream)
{
	static const int engines[] = {TL_TID_OUT, TL_TID_IN, TL_TID_STALL};
	char name[32];

	for (uint32_t s = 0; s <= maxstream; s++) {
		tl_track_name(TL_TID_STREAM0 + (int)s, name, sizeof(name));
		tl_meta(f, first, TL_TID_STREAM0 + (int)s, name);
	}
	for (int i = 0; i < 3; i++) {
		tl_track_name(engines[i], name, sizeof(name));
		tl_meta(f, first, engines[i], name);
	}
}

static void tl_complete(FILE *f, int *first, int tid, const char *name, const char *cat,
			uint64_t ts_ns, uint64_t dur_ns)
{
	tl_next(f, first);
	fputs("{\"name\":\"", f);
	timeline_json_str(f, name);
	fprintf(f, "\",\"cat\":\"%s\",\"ph\":\"X\",\"pid\":%d,\"tid\":%d,\"ts\":%.3f,\"dur\":%.3f}", cat,
		TL_PID, tid, (double)ts_ns / 1e3, (double)dur_ns / 1e3);
}

/* Perfetto keeps a track's slices only when each is nested in or disjoint from the others: a slice
 * that starts inside another must end inside it. The slices are gathered, then laid out per track in
 * time order, one of two ways:
 * TL_QUEUE: a slice that starts before the track's last one ends starts where it ends, keeping its
 *   duration. A stream or copy engine runs its work in order, so a launch the host stamped while the
 *   one before it still ran cannot have started before that one ended.
 * TL_LANES: times are kept; a slice that overlaps one before it goes on the first extra lane of the
 *   track (a track of its own, "stalls (2)") that is free at its start. Stalls and modeled work keep
 *   their exact times this way. */
enum tl_fit { TL_QUEUE, TL_LANES };

#define TL_LANE_STRIDE 100000 /* lane l of track t is track t + l * TL_LANE_STRIDE */

struct tl_slice {
	uint64_t ts, dur;
	size_t seq;
	int tid;
	enum tl_fit fit;
	const char *cat;
	char *name;
};

struct tl_slices {
	struct tl_slice *v;
	size_t n, cap;
};

static void tl_slice(struct tl_slices *sl, enum tl_fit fit, int tid, const char *name, const char *cat,
		     uint64_t ts, uint64_t dur)
{
	size_t len = strlen(name) + 1;

	if (sl->n == sl->cap) {
		sl->cap = sl->cap ? sl->cap * 2 : 1024;
		sl->v = xrealloc(sl->v, sl->cap * sizeof(*sl->v));
	}
	sl->v[sl->n] = (struct tl_slice){ts, dur, sl->n, tid, fit, cat, xmalloc(len)};
	memcpy(sl->v[sl->n].name, name, len);
	sl->n++;
}

static int tl_slice_cmp(const void *a, const void *b)
{
	const struct tl_slice *x = a, *y = b;

	if (x->tid != y->tid)
		return x->tid < y->tid ? -1 : 1;
	if (x->ts != y->ts)
		return x->ts < y->ts ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* The lane of track tid a slice from ts goes on: the first whose last slice has ended (lane_end,
 * nlanes of them, grown as needed); a new lane is named after the track. */
static int tl_lane(FILE *f, int *first, int tid, const char *track, uint64_t ts, uint64_t **lane_end,
		   size_t *nlanes)
{
	char name[80];
	size_t l;

	for (l = 0; l < *nlanes && (*lane_end)[l] > ts; l++)
		;
	if (l == *nlanes) {
		*lane_end = xrealloc(*lane_end, (*nlanes + 1) * sizeof(**lane_end));
		(*nlanes)++;
		if (l > 0) {
			snprintf(name, sizeof(name), "%s (%zu)", track, l + 1);
			tl_meta(f, first, tid + (int)l * TL_LANE_STRIDE, name);
		}
	}
	return (int)l;
}

/* Writes the gathered slices, laid out track by track, and frees them. */
static void tl_flush(FILE *f, int *first, struct tl_slices *sl)
{
	uint64_t *lane_end = NULL, end = 0;
	size_t nlanes = 0;
	char track[48];

	qsort(sl->v, sl->n, sizeof(*sl->v), tl_slice_cmp);
	for (size_t i = 0; i < sl->n; i++) {
		struct tl_slice *x = &sl->v[i];
		int tid = x->tid;

		if (i == 0 || x->tid != sl->v[i - 1].tid) {
			end = 0;
			nlanes = 0;
			tl_track_name(x->tid, track, sizeof(track));
		}
		if (x->fit == TL_QUEUE) {
			if (x->ts < end)
				x->ts = end;
			end = x->ts + x->dur;
		} else {
			int l = tl_lane(f, first, x->tid, track, x->ts, &lane_end, &nlanes);

			lane_end[l] = x->ts + x->dur;
			tid += l * TL_LANE_STRIDE;
		}
		tl_complete(f, first, tid, x->name, x->cat, x->ts, x->dur);
		free(x->name);
	}
	free(lane_end);
	free(sl->v);
	*sl = (struct tl_slices){0};
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
static int timeline_recorded(const struct cli_trace_ctx *c, FILE *f)
{
	const struct mv_trace *t = c->t;
	struct tl_delta *d = xmalloc(((size_t)t->nops * 2 + 1) * sizeof(*d));
	uint8_t *resident = xmalloc((size_t)t->nbufs + 1);
	struct tl_slices sl = {0};
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
	timeline_json_str(f, c->o->file);
	fprintf(f, "\",\"source\":\"recorded\"},\"traceEvents\":[");
	tl_next(f, &first);
	fprintf(f, "{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":%d,\"args\":{\"name\":\"memvirt: ",
		TL_PID);
	timeline_json_str(f, c->o->file);
	fputs("\"}}", f);
	tl_tracks(f, &first, maxstream);
	for (uint32_t i = 0; i < t->nops; i++) {
		const struct mv_trace_op *op = &t->ops[i];
		uint64_t ts = op->time_ns - t0;

		switch (op->kind) {
		case MV_TREC_LAUNCH:
			tl_slice(&sl, TL_QUEUE, TL_TID_STREAM0 + (int)op->stream,
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
			tl_slice(&sl, TL_QUEUE, op->dir ? TL_TID_IN : TL_TID_OUT, name,
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
				tl_slice(&sl, TL_LANES, TL_TID_STALL, name, "stall", ts, op->dur_ns);
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
	tl_flush(f, &first, &sl);
	tl_counters(f, &first, d, nd);
	fputs("\n]}\n", f);
	free(resident);
	free(d);
	return 0;
}

static const char *timeline_func_name(const struct cli_trace_ctx *c, uint32_t k)
{
	uint32_t f = c->it->launch[k].func;

	return f < c->t->nfuncs ? c->t->funcs[f] : "?";
}

/* The timeline of one modeled iteration under the policy: launches on their streams, the copies
 * on the two engines, what launches waited for, and the memory held beside the budget. */
static int timeline_modeled(const struct cli_trace_ctx *c, const struct mv_policy *pol, FILE *f)
{
	static const char *const kinds[] = {"planned", "fault", "evicted"};
	struct cli_trace_run run;
	struct cli_sched s;
	struct cli_sched_point *pts;
	struct tl_slices sl = {0};
	uint32_t maxstream = 0;
	uint64_t prev;
	size_t n;
	int first = 1;
	char name[160], buf[32];

	if (cli_trace_modeled(c, pol, c->budget, &run, &s) < 0)
		return -1;
	for (uint32_t k = 0; k < c->it->nlaunch; k++)
		if (c->it->launch[k].stream > maxstream)
			maxstream = c->it->launch[k].stream;
	fprintf(f, "{\"displayTimeUnit\":\"ms\",\"otherData\":{\"file\":\"");
	timeline_json_str(f, c->o->file);
	fprintf(f, "\",\"source\":\"model\",\"policy\":\"%s\",\"budget\":%" PRIu64 ",\"step_ns\":%" PRIu64
		   ",\"stall_ns\":%" PRIu64 ",\"peak\":%" PRIu64 ",\"bytes_out\":%" PRIu64 ",\"bytes_in\":%"
		   PRIu64 ",\"first_op\":%" PRIu32 ",\"nops\":%" PRIu32 "},\"traceEvents\":[", pol->name,
		c->budget, run.r.step_ns, run.r.stall_ns, run.r.peak, run.r.bytes_out, run.r.bytes_in,
		c->first_op, c->nops);
	tl_next(f, &first);
	fprintf(f, "{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":%d,\"args\":{\"name\":\"memvirt: ",
		TL_PID);
	timeline_json_str(f, c->o->file);
	fprintf(f, ", %s, budget %s\"}}", pol->name, mv_format_size(c->budget, buf, sizeof(buf)));
	tl_tracks(f, &first, maxstream);
	prev = s.t0;
	for (uint32_t k = 0; k < c->it->nlaunch; k++) {
		tl_slice(&sl, TL_LANES, TL_TID_STREAM0 + (int)c->it->launch[k].stream,
			 timeline_func_name(c, k), "kernel", s.start[k] - s.t0, s.fin[k] - s.start[k]);
		if (s.start[k] > prev) {
			snprintf(name, sizeof(name), "launch %" PRIu32 " (%s) waits", k, timeline_func_name(c, k));
			tl_slice(&sl, TL_LANES, TL_TID_STALL, name, "stall", prev - s.t0,
				 s.start[k] - prev);
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
		tl_slice(&sl, TL_LANES, cp->in ? TL_TID_IN : TL_TID_OUT, name,
			 cp->in ? "page-in" : "page-out", from - s.t0, cp->end - from);
	}
	tl_flush(f, &first, &sl);
	n = cli_sched_curve(&s, &pts);
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

int cli_trace_timeline(const struct cli_trace_opts *o)
{
	struct cli_trace_ctx c;
	int rc;

	if ((o->plan.policy != NULL) != (o->budget != NULL)) {
		fprintf(stderr, "memvirt trace timeline: --policy and --budget go together: without them "
				"the timeline is what the trace recorded\n");
		return 2;
	}
	if (cli_trace_load(&c, o, o->plan.policy != NULL) < 0)
		return 1;
	if (o->plan.policy != NULL)
		rc = timeline_modeled(&c, mv_policy_find(o->plan.policy), stdout);
	else
		rc = timeline_recorded(&c, stdout);
	if (rc == 0 && (fflush(stdout) != 0 || ferror(stdout))) {
		fprintf(stderr, "memvirt trace timeline: writing: %s\n", strerror(errno));
		rc = -1;
	}
	cli_trace_ctx_free(&c);
	return rc < 0 ? 1 : 0;
}
