/* The planning interface: learning a training loop's iteration from a trace, the plans policies
 * produce, the built-in policies, and the time model that replays an iteration under a budget.
 *
 * Everything here is pure and deterministic: no I/O, no clocks, no threads, no globals that
 * change. The same code runs in libmemvirt.so (the in-process planner), in memvirtd and in
 * `memvirt trace replay`, and is unit-tested on synthetic traces. */
#ifndef MV_POLICIES_POLICY_H
#define MV_POLICIES_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "policies/trace.h"

/* ---- iterations (iter.c) ---- */

/* One launch of an iteration. */
struct mv_iter_launch {
	uint32_t func;      /* the trace's function number */
	uint32_t stream;
	uint32_t nrefs;     /* buffers named, at refs[ref0 .. ref0 + nrefs), iteration buffer numbers */
	uint32_t ref0;
	uint64_t dur_ns;    /* measured, or the model's estimate when the trace has none */
};

#define MV_IBUF_PINNED 0x1u /* never paged */

/* One buffer as the iteration knows it. Its identity across iterations is (site, size, ordinal),
 * never its address. */
struct mv_iter_buf {
	uint64_t size;
	uint64_t site;      /* allocation call-site hash */
	uint32_t ordinal;   /* among the iteration's buffers of the same site and size, in allocation order */
	uint32_t flags;     /* MV_IBUF_* */
	uint32_t alloc_at;  /* allocated before this launch; MV_TRACE_NONE: alive when the iteration begins */
	uint32_t free_at;   /* freed before this launch (nlaunch: after the last); MV_TRACE_NONE: outlives it */
	uint32_t first_use; /* launch numbers of its first and last use; MV_TRACE_NONE when unused */
	uint32_t last_use;
	uint32_t trace_buf; /* its number in the trace the iteration came from */
};

/* One learned iteration: launches 0 .. nlaunch-1 in issue order. Owned by its builder; freed with
 * mv_iter_free(). */
struct mv_iter {
	uint32_t nlaunch;
	struct mv_iter_launch *launch;
	uint32_t nbufs;
	struct mv_iter_buf *bufs;
	uint32_t *refs;
	uint32_t nrefs;
	uint32_t first_op;  /* the trace op the iteration starts at, and how many ops it spans */
	uint32_t nops;
	uint64_t fingerprint; /* a hash of the function sequence: equal iterations, equal fingerprints */
};

/* Finds the training loop's period in a trace: the last complete iteration, as [*first_op,
 * *first_op + *nops) of t->ops. With marks (MV_TREC_MARK) the iteration is the span between the
 * last two marks. Otherwise it is the shortest span that repeats the launch sequence of the span
 * before it exactly and after which the bytes allocated are what they were before it, so that an
 * inner loop (an LSTM's time steps) is not taken for the iteration. Returns 0, or -ENOENT when no
 * iteration has completed twice yet. O(nops) time. */
int mv_iter_detect(const struct mv_trace *t, uint32_t *first_op, uint32_t *nops);
/* The same for a whole recorded run, which ends with work that is not part of the loop (a final
 * evaluation, checksums, teardown): when the loop does not reach the end, the last launches are set
 * aside one at a time, up to max_tail of them, until it does. O(nops * launches set aside). */
int mv_iter_detect_recorded(const struct mv_trace *t, uint32_t max_tail, uint32_t *first_op, uint32_t *nops);
/* Builds the iteration of ops [first_op, first_op + nops). Launches without a measured duration
 * get default_dur_ns. Returns 0 or a negative errno. */
int mv_iter_build(const struct mv_trace *t, uint32_t first_op, uint32_t nops, uint64_t default_dur_ns,
		  struct mv_iter **out);
void mv_iter_free(struct mv_iter *it);
/* Each buffer's uses in an iteration: the launches naming it, ascending, at use[off[b] .. off[b + 1]). */
struct mv_iter_uses {
	uint32_t *off; /* nbufs + 1 */
	uint32_t *use; /* nrefs */
};
/* Returns 0, or -ENOMEM with nothing to free. */
int mv_iter_uses_build(const struct mv_iter *it, struct mv_iter_uses *u);
void mv_iter_uses_free(struct mv_iter_uses *u);
/* The fingerprint of the function sequence with each function named by name(ctx, func) and the
 * number of buffers each launch names. mv_iter_build sets it->fingerprint with the trace's own names;
 * the library computes it again with the names memvirtd gives its functions ("f" and the number the
 * library sends), to recognise memvirtd's plans for its iteration. */
uint64_t mv_iter_fingerprint(const struct mv_iter *it, const char *(*name)(void *ctx, uint32_t func), void *ctx);

/* ---- plans (plan.c) ---- */

enum mv_plan_kind {
	MV_PLAN_OUT = 1, /* after launch `at` is issued, page out `buf` (its last use before `need`) */
	MV_PLAN_IN = 2,  /* after launch `at` is issued, page in `buf`, which launch `need` names */
};

/* One planned move, in iteration-relative launch numbers. An IN issued before the first launch
 * has at == MV_TRACE_NONE. */
struct mv_plan_op {
	uint32_t at;
	uint32_t buf;     /* iteration buffer number */
	uint32_t need;    /* OUT: its next use (MV_TRACE_NONE: none in this iteration); IN: the launch */
	uint32_t kind;    /* enum mv_plan_kind */
};

/* A plan for one iteration, ops sorted by (at, kind with OUT first, buf). Owned by its maker; freed
 * with mv_plan_free(). */
struct mv_plan {
	uint32_t nlaunch;     /* the iteration it is for */
	uint64_t fingerprint;
	uint32_t nops;
	struct mv_plan_op *ops;
	uint32_t cap;
};

struct mv_plan *mv_plan_new(const struct mv_iter *it);
int mv_plan_add(struct mv_plan *p, uint32_t kind, uint32_t at, uint32_t buf, uint32_t need);
void mv_plan_sort(struct mv_plan *p);
void mv_plan_free(struct mv_plan *p);

/* ---- the time model (model.c) ---- */

/* What a device does: copy bandwidths and the cost of a launch without a measured duration. */
struct mv_machine {
	double h2d_bps;        /* bytes per second, host to device */
	double d2h_bps;
	uint64_t launch_ns;    /* duration assumed for launches the trace did not time */
	/* The device reaches paged-out buffers in host memory (host-located VMM, the safety net): a
	 * launch whose buffers the budget cannot hold runs with the rest left there, read over the
	 * link (partial residency); else the budget is exceeded and the run reports over_budget. */
	int host_mapped;
};

/* The outcome of replaying an iteration under a plan (or reactively) within a budget. */
struct mv_model_result {
	uint64_t step_ns;      /* the iteration's time */
	uint64_t compute_ns;   /* its launches alone: the step time with unlimited memory */
	uint64_t stall_ns;     /* time launches waited for page-ins or for room */
	uint64_t peak;         /* most device bytes resident at once */
	uint64_t bytes_out, bytes_in;
	uint32_t page_outs, page_ins;
	uint32_t late;         /* page-ins that were not complete when their launch was due */
	uint32_t faults;       /* page-ins nobody planned: a launch needed a buffer that was out */
	int over_budget;       /* the budget could not be kept even reactively: the job would get OOM */
	uint32_t host_runs;    /* launches run with buffers left in host memory (machine host_mapped) */
	uint64_t host_bytes;   /* the bytes of those buffers, summed over those launches */
};

/* Late page-ins per buffer, which the planner feeds back (Capuchin-style) to move them earlier. */
struct mv_feedback {
	uint32_t nbufs;
	uint64_t *late_ns;     /* per iteration buffer: how late its page-in was, summed */
	uint32_t *advance;     /* per iteration buffer: launches its page-in is moved earlier; owned by the
				* planner, grown by mv_feedback_apply() */
	uint32_t *late_at;     /* per iteration buffer: the launch its latest late page-in held up
				* (MV_TRACE_NONE: none); may be NULL, when its last use stands in */
};

/* Replays the iteration in steady state (buffers alive when it begins start resident, as they are
 * after a previous iteration under the same plan) under `budget`: launches run in order on one
 * compute engine; page-outs and page-ins run on the D2H and H2D engines in the order issued, a
 * page-out starting when its buffer's last use has finished; a launch starts once every buffer it
 * names is resident. A plan of NULL, and anything the plan leaves out, is handled reactively as
 * the library does (least recently used out, fault in on demand). fb, when not NULL, receives each
 * buffer's lateness. Returns 0 or a negative errno. */
int mv_model_run(const struct mv_iter *it, const struct mv_plan *plan, uint64_t budget, const struct mv_machine *m,
		 struct mv_model_result *out, struct mv_feedback *fb);

/* Demand paging as unified-memory oversubscription does it (uvm.c): the baseline beside the
 * policies. Blocks of `block` bytes fault in when a launch names them, each at `fault_ns` of
 * service besides its copy (a first touch costs only its room); a full budget evicts the least
 * recently used blocks, copied out on the fault's path. */
struct mv_uvm {
	uint64_t block;
	uint64_t fault_ns;
};
#define MV_UVM_BLOCK (2ull << 20)
#define MV_UVM_FAULT_NS 45000ull /* Ganguly et al., ISCA 2019; uvm.c says more */

/* The iteration in steady state under that paging and `budget`: step, compute and stall time,
 * bytes and blocks copied each way (page_outs, page_ins), faults (as many as page_ins), the peak,
 * and over_budget where one launch names more than the budget holds.
 * Returns 0 or a negative errno. */
int mv_model_uvm(const struct mv_iter *it, uint64_t budget, const struct mv_machine *m, const struct mv_uvm *u,
		 struct mv_model_result *out);

/* How a copy in the model came to be. */
enum mv_model_copy {
	MV_COPY_PLANNED = 0,  /* the plan's page-out or page-in */
	MV_COPY_FAULT = 1,    /* a launch named a buffer that was out */
	MV_COPY_REACTIVE = 2, /* evicted, least recently used, to make room */
};

/* The schedule behind mv_model_run's totals, event by event, for a caller that draws it. Times are
 * on the model's timeline. Any callback may be NULL. Copies are reported from both runs, since one
 * the first run issues may reach into the reported one; everything else from the reported run
 * only. */
struct mv_model_observer {
	void *ctx;
	/* The reported run begins at t0, holding `held` device bytes. */
	void (*begin)(void *ctx, uint64_t t0, uint64_t held);
	void (*launch)(void *ctx, uint32_t k, uint64_t start, uint64_t fin);
	/* Buffer buf copied out (in == 0) or in, on its engine from start to end; kind: mv_model_copy. */
	void (*copy)(void *ctx, uint32_t buf, int in, int kind, uint64_t start, uint64_t end);
	/* The device bytes held change by delta at t: told when the change is decided, not in time order. */
	void (*held)(void *ctx, uint64_t t, int64_t delta);
	/* A launch waited for buf's planned page-in, the latest copy in of buf reported. */
	void (*late)(void *ctx, uint32_t buf);
};

/* mv_model_run, telling obs (which may be NULL) what happens. */
int mv_model_observe(const struct mv_iter *it, const struct mv_plan *plan, uint64_t budget,
		     const struct mv_machine *m, struct mv_model_result *out, struct mv_feedback *fb,
		     const struct mv_model_observer *obs);

/* The bandwidth lower bound of memvirt-policies(7): a step time no schedule can beat under this
 * budget and these bandwidths. Also reports the bytes that must leave the device at the tightest
 * launch. */
uint64_t mv_model_lower_bound(const struct mv_iter *it, uint64_t budget, const struct mv_machine *m,
			      uint64_t *must_move);

/* mv_model_lower_bound, and in *chunk_bound (when not NULL) the same bound for a schedule that copies
 * in pieces of chunk bytes instead of whole buffers (a page-in may then use room as the page-out
 * ahead of it frees it): never above the whole-buffer bound, it is what chunk-granular paging could
 * reach at best. The terms both share are computed once. */
uint64_t mv_model_bounds(const struct mv_iter *it, uint64_t budget, const struct mv_machine *m, uint64_t chunk,
			 uint64_t *must_move, uint64_t *chunk_bound);

/* The chunk the bounds and memvirt trace replay speak of: the allocation granularity. */
#define MV_MODEL_CHUNK (2ull << 20)

/* The iteration's peak with unlimited memory: the most bytes alive at once. */
uint64_t mv_model_peak(const struct mv_iter *it);

/* The least budget under which any schedule can run the iteration (bound.c): at its tightest
 * launch, the never-paged buffers alive and every buffer the launch names, each counted once. A
 * smaller budget is infeasible for every policy. */
uint64_t mv_model_min_budget(const struct mv_iter *it);
/* The same where the device maps host memory (mv_machine host_mapped): every paged buffer may be
 * left (or start) there, so only the never-paged buffers alive at each launch must fit. */
uint64_t mv_model_min_budget_mapped(const struct mv_iter *it);

/* Every buffer's uses in the iteration, for mv_bound_timed (bound.c). NULL when out of memory. */
struct mv_uses *mv_uses_new(const struct mv_iter *it);
void mv_uses_free(struct mv_uses *u);
/* The per-launch bound at launch p with R bytes off the device besides the ones never used, given
 * the compute time before each launch (cb) and in all (total): each byte leaves no earlier than its
 * last use before p ends and is back before its next use after p starts (memvirt-policies(7)). */
double mv_bound_timed(const struct mv_iter *it, struct mv_uses *u, uint32_t p, double R, const uint64_t *cb,
		      uint64_t total, const struct mv_machine *m);

struct mv_feedback *mv_feedback_new(const struct mv_iter *it);
/* Moves each late buffer's page-in earlier by enough launches to cover its lateness (at least one),
 * and clears late_ns. Returns how many buffers moved. */
uint32_t mv_feedback_apply(struct mv_feedback *fb, const struct mv_iter *it);
void mv_feedback_free(struct mv_feedback *fb);

/* ---- policies (policy.c and one file per policy) ---- */

/* What a policy plans for. Knobs a policy does not use are ignored. */
struct mv_policy_params {
	uint64_t budget;        /* device bytes the job may keep resident */
	struct mv_machine machine;
	uint64_t min_size;      /* smallest buffer worth paging (default 1 MiB) */
	uint32_t lookahead;     /* vdnn-*: layers ahead a page-in is issued (default 1) */
	double heavy_fraction;  /* vdnn-conv: the share of compute time whose kernels' inputs are paged
				 * (default 0.5: the heaviest kernels making up half the step) */
	double headroom;        /* mmcnn: fraction of the budget kept free for the unforeseen (default 0.02) */
};

/* Fills the defaults above. */
void mv_policy_defaults(struct mv_policy_params *p);

struct mv_policy {
	const char *name;
	const char *summary;   /* one line for `memvirt policies` */
	/* Plans the iteration. fb (may be NULL) carries the advances learned from late page-ins, which
	 * the policy applies to its page-ins. Returns 0 and *out, or a negative errno. */
	int (*plan)(const struct mv_iter *it, const struct mv_policy_params *p, const struct mv_feedback *fb,
		    struct mv_plan **out);
};

/* The built-in policies, NULL-terminated: lru, vdnn-all, vdnn-conv, mmcnn, auto. */
extern const struct mv_policy *const mv_policies[];
/* The policy of that name, or NULL. */
const struct mv_policy *mv_policy_find(const char *name);

extern const struct mv_policy mv_policy_lru;       /* policies/lru.c: an empty plan; all reactive */
extern const struct mv_policy mv_policy_vdnn_all;  /* policies/vdnn-all.c */
extern const struct mv_policy mv_policy_vdnn_conv; /* policies/vdnn-conv.c */
extern const struct mv_policy mv_policy_mmcnn;     /* policies/mmcnn.c */
/* policies/mmcnn.c: mmcnn with Belady's choice; not in mv_policies[], auto tries it */
extern const struct mv_policy mv_policy_mmcnn_belady;
extern const struct mv_policy mv_policy_auto;      /* policies/auto.c */

/* ---- the planning knobs people set (params.c) ---- */

/* How a knob's value is written. */
enum mv_knob_type {
	MV_KNOB_SIZE,   /* bytes: "4MiB" or a number of bytes; at least lo, with no top */
	MV_KNOB_WHOLE,  /* a whole number */
	MV_KNOB_REAL,   /* a decimal number */
};

/* One knob of struct mv_policy_params and the values it takes: lo to hi, either end left out when
 * its flag is set. memvirt.json, the MEMVIRT_* variables and memvirt's options all check against
 * this one range. The name is the file's key (memvirt.json(5)) and the stem of the variable:
 * page_min, lookahead, heavy_fraction, headroom, h2d_gbps and d2h_gbps (the link's speeds, in GB/s). */
struct mv_knob {
	const char *name;
	enum mv_knob_type type;
	double lo, hi;
	int lo_open, hi_open;
};

/* A knob's value as read: a size or whole number in u, and every value, as near as it goes, in d. */
struct mv_knob_value {
	uint64_t u;
	double d;
};

/* How a message writes a number's range: in words ("from 0 up to but not including 1"), or as an
 * interval ("[0, 1)"), as memvirt's options do. Whole numbers and sizes read in words either way. */
enum mv_knob_notation {
	MV_KNOB_WORDS,
	MV_KNOB_INTERVAL,
};

/* The knob of that name, or NULL. Borrowed from a static table. */
const struct mv_knob *mv_knob_find(const char *name);

/* What k takes, to follow "expected" or "is not": "a whole number from 1 to 1000000". Returns buf. */
const char *mv_knob_expected(const struct mv_knob *k, enum mv_knob_notation n, char *buf, size_t len);

/* Reads text as a value of k. Returns 0 and *out; or -EINVAL when text is not of k's type, -ERANGE
 * when it is outside k's range, with msg (unless NULL) "'TEXT' is not " and what k takes. */
int mv_knob_parse(const struct mv_knob *k, const char *text, enum mv_knob_notation n,
		  struct mv_knob_value *out, char *msg, size_t len);

/* Checks a value read already (a number in memvirt.json). Returns 0, or -ERANGE with msg (unless
 * NULL) naming k, v and the range as memvirt.json(5) words it: "headroom 1 is out of range: at
 * least 0 and less than 1", "lookahead 0 is out of range 1..1000000". */
int mv_knob_check(const struct mv_knob *k, double v, char *msg, size_t len);

/* Whether a device budget of bytes makes no sense on a device with that allocation granularity and
 * total memory (either 0 when not known): 1 with the reason in msg ("is 1 B, less than the device's
 * allocation granularity (2.0 MiB): ...", to follow the budget as given), else 0. Zero bytes, a
 * budget below one granule and one above the device are the absurd ones; every place that takes a
 * budget warns or refuses with this reason. */
int mv_budget_absurd(uint64_t bytes, uint64_t granularity, uint64_t total, char *msg, size_t len);

#endif
