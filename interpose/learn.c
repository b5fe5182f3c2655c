/* The learner: the app's threads append compact records of what they do (allocations, frees,
 * launches with the buffers they name, page copies, iteration marks) to a lock-free bounded queue
 * (ring.c); the planner thread feeds them to the learner of policies/learn.h, which makes a trace
 * of them, finds the training loop's iteration in it, plans the iteration with the selected policy
 * and installs the plan for the executor (exec.c). It also feeds the trace file (record.c) when
 * MEMVIRT_RECORD asks for one.
 *
 * The app never waits on any of it: a full queue drops the record and counts it, which makes the
 * trace unreliable, so the learner starts a new one and withdraws its plan until it has learned
 * the iteration again. Correctness never depends on the plan (exec.c). */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "interpose/internal.h"
#include "policies/learn.h"
#include "policies/policy.h"
#include "policies/trace.h"

static _Atomic unsigned learn_flags;

unsigned mv_learn_flags_now(void)
{
	return atomic_load_explicit(&learn_flags, memory_order_relaxed);
}

void mv_learn_plan_following(int on)
{
	if (on)
		atomic_fetch_or(&learn_flags, MV_LEARN_PLAN);
	else
		atomic_fetch_and(&learn_flags, ~MV_LEARN_PLAN);
}

/* ---- function numbers ---- */

#define MV_FUNCS 4096         /* functions numbered at most */
#define MV_FUNC_SLOTS 8192    /* hash slots, a power of two */
#define MV_FUNC_NAME 32

/* One function. Its key is published last; a lookup that reads its number and marker checks the
 * key again, as the slot may be forgotten and taken by another function meanwhile. */
struct fslot {
	_Atomic uintptr_t key;
	_Atomic uint32_t num;
	_Atomic int marker;
	void *owner;          /* its module or library (mv_func_owner), NULL when the driver will not say */
	CUcontext ctx;        /* where its module was loaded; NULL for a library's kernel */
	uint64_t since;       /* when it was first seen (mv_moment) */
};

/* A forgotten function's key (mv_funcs_forget): lookups go past it, and a new function may take its
 * slot. */
#define FKEY_GONE UINTPTR_MAX

static struct fslot fslots[MV_FUNC_SLOTS];
static const char *fnames[MV_FUNCS];
/* Number n's function was forgotten: the next new function of its name takes n again, so that a
 * kernel loaded again keeps its place in what was learned. */
static unsigned char fgone[MV_FUNCS];
static char fname_own[MV_FUNCS][MV_FUNC_NAME];
static uint32_t nfuncs;
/* Guards adding and forgetting functions; lookups read published slots without it. */
static pthread_mutex_t func_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const pseudo_names[] = {
	[MV_FK_HTOD] = "memcpyHtoD", [MV_FK_DTOH] = "memcpyDtoH", [MV_FK_DTOD] = "memcpyDtoD",
	[MV_FK_COPY] = "memcpy",     [MV_FK_MEMSET] = "memset",
};

static size_t fslot_of(uintptr_t key)
{
	uint64_t x = key;
	x ^= x >> 31;
	x *= 0x9e3779b97f4a7c15ull;
	x ^= x >> 29;
	return (size_t)x & (MV_FUNC_SLOTS - 1);
}

/* A number for fkey, named *name (or a name made from fkey where the driver gave none): a forgotten
 * function's of the same name, else the next one; UINT32_MAX when all are taken. *name becomes
 * the number's name. Called with func_lock held. */
static uint32_t func_new(uintptr_t fkey, const char **name)
{
	uint32_t num;

	if (*name != NULL && **name != '\0') {
		for (num = 0; num < nfuncs; num++)
			if (fgone[num] && strcmp(fnames[num], *name) == 0) {
				fgone[num] = 0;
				*name = fnames[num];
				return num;
			}
	}
	if (nfuncs >= MV_FUNCS)
		return UINT32_MAX;
	num = nfuncs++;
	if (*name == NULL || **name == '\0') {
		snprintf(fname_own[num], MV_FUNC_NAME, "func@%#llx", (unsigned long long)fkey);
		*name = fname_own[num];
	}
	fnames[num] = *name;
	return num;
}

/* fkey's number from its published slot, without the lock. Returns 0, or -1 when fkey has none
 * yet (or its slot changed under the lookup). */
static int func_lookup(uintptr_t fkey, uint32_t *num, int *marker)
{
	size_t i = fslot_of(fkey);

	for (size_t probe = 0; probe < MV_FUNC_SLOTS; probe++, i = (i + 1) & (MV_FUNC_SLOTS - 1)) {
		uintptr_t k = atomic_load_explicit(&fslots[i].key, memory_order_acquire);
		if (k == fkey) {
			*num = atomic_load_explicit(&fslots[i].num, memory_order_relaxed);
			*marker = atomic_load_explicit(&fslots[i].marker, memory_order_relaxed);
			/* Pairs with the release fence before a slot is filled again. */
			atomic_thread_fence(memory_order_acquire);
			return atomic_load_explicit(&fslots[i].key, memory_order_relaxed) == fkey ? 0 : -1;
		}
		if (k == 0)
			return -1;
	}
	return -1;
}

uint32_t mv_func_number(uintptr_t fkey, int *marker)
{
	size_t i, at = MV_FUNC_SLOTS;
	const char *name = NULL;
	char *copy = NULL;
	uint32_t num = UINT32_MAX;
	void *owner = NULL;
	CUcontext ctx = NULL;
	uint64_t since;

	if (func_lookup(fkey, &num, marker) == 0)
		return num;
	/* First sight: its name and owner from the driver, outside the lock. A copy of the name: the
	 * driver's string goes with the function's module, which may be unloaded before the planner
	 * reads it. The moment is taken first: an unload that began before it forgets this too. */
	since = mv_moment();
	if (fkey <= MV_FK_LAST) {
		name = pseudo_names[fkey];
	} else {
		mv_func_owner((CUfunction)fkey, 0, &owner, &ctx);
		if (mv_real.cuFuncGetName == NULL || mv_real.cuFuncGetName(&name, (CUfunction)fkey) != CUDA_SUCCESS)
			name = NULL;
		else if (name != NULL)
			name = copy = strdup(name);
	}
	*marker = 0;
	num = UINT32_MAX;
	pthread_mutex_lock(&func_lock);
	i = fslot_of(fkey);
	/* Its slot if another thread numbered it first; else the first forgotten one along its chain,
	 * or the free one that ends it. The chain is read to its end either way, so that fkey is
	 * never in two slots. */
	for (size_t probe = 0; probe < MV_FUNC_SLOTS; probe++, i = (i + 1) & (MV_FUNC_SLOTS - 1)) {
		uintptr_t k = atomic_load_explicit(&fslots[i].key, memory_order_relaxed);
		if (k == fkey) {
			*marker = atomic_load_explicit(&fslots[i].marker, memory_order_relaxed);
			num = atomic_load_explicit(&fslots[i].num, memory_order_relaxed);
			at = MV_FUNC_SLOTS;
			break;
		}
		if (k == FKEY_GONE && at == MV_FUNC_SLOTS)
			at = i;
		if (k == 0) {
			if (at == MV_FUNC_SLOTS)
				at = i;
			break;
		}
	}
	if (at != MV_FUNC_SLOTS && (num = func_new(fkey, &name)) != UINT32_MAX) {
		struct fslot *f = &fslots[at];
		int m = mv_cfg.marker != NULL && fkey > MV_FK_LAST && strcmp(name, mv_cfg.marker) == 0;
		if (name == copy)
			copy = NULL; /* kept */
		/* A lookup that read the slot's old key sees it changed once it reads these. */
		atomic_thread_fence(memory_order_release);
		atomic_store_explicit(&f->num, num, memory_order_relaxed);
		atomic_store_explicit(&f->marker, m, memory_order_relaxed);
		f->owner = owner;
		f->ctx = ctx;
		f->since = since;
		*marker = m;
		atomic_store_explicit(&f->key, fkey, memory_order_release);
	}
	pthread_mutex_unlock(&func_lock);
	free(copy);
	return num;
}

void mv_funcs_forget(void *owner, CUcontext ctx, uint64_t before)
{
	pthread_mutex_lock(&func_lock);
	for (size_t i = 0; i < MV_FUNC_SLOTS; i++) {
		struct fslot *f = &fslots[i];
		uintptr_t k = atomic_load_explicit(&f->key, memory_order_relaxed);
		if (k == 0 || k == FKEY_GONE || !mv_owned_by(f->owner, f->ctx, f->since, owner, ctx, before))
			continue;
		fgone[atomic_load_explicit(&f->num, memory_order_relaxed)] = 1;
		atomic_store_explicit(&f->key, FKEY_GONE, memory_order_relaxed);
	}
	pthread_mutex_unlock(&func_lock);
}

const char *mv_func_name(uint32_t fn)
{
	return fn < MV_FUNCS && fnames[fn] != NULL ? fnames[fn] : "?";
}

/* ---- the queue ---- */

#define LQ_REFS_PER 14      /* buffer numbers in a continuation slot */

enum { LR_ALLOC = 1, LR_FREE, LR_LAUNCH, LR_MARK, LR_PAGE };

/* Records from the app's threads to the planner (ring.c). A record is a head slot (w[0]: its kind,
 * then in bits 8-15 the slots it spans) and the continuation slots holding a launch's buffer
 * numbers, claimed together. */
static struct mv_ring lq;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void lq_put(uint64_t w0, uint64_t w1, uint64_t w2, uint64_t w3, uint64_t w5)
{
	uint64_t t, *w;

	if (mv_ring_claim(&lq, 1, &t) != 0)
		return;
	w = mv_ring_slot_at(&lq, t)->w;
	w[0] = w0 | (1u << 8);
	w[1] = w1;
	w[2] = w2;
	w[3] = w3;
	w[4] = now_ns();
	w[5] = w5;
	mv_ring_commit(&lq, t);
}

void mv_learn_alloc(const struct mv_buf *b, int pinned)
{
	lq_put(LR_ALLOC, b->id, b->size, b->site, pinned ? MV_TBUF_PINNED : 0);
}

void mv_learn_free(uint32_t id)
{
	lq_put(LR_FREE, id, 0, 0, 0);
}

void mv_learn_mark(void)
{
	lq_put(LR_MARK, 0, 0, 0, 0);
}

void mv_learn_page(uint32_t id, int in, uint64_t bytes, uint64_t dur_ns, int waited)
{
	lq_put(LR_PAGE, id, dur_ns, bytes, (uint64_t)(in != 0) | (uint64_t)(waited != 0) << 1);
}

void mv_learn_launch(uint32_t fn, uint32_t stream, struct mv_buf *const *named, size_t n, uint32_t tslot)
{
	unsigned k = 1 + (unsigned)((n + LQ_REFS_PER - 1) / LQ_REFS_PER);
	uint64_t t, *w;

	if (fn == UINT32_MAX || mv_ring_claim(&lq, k, &t) != 0) {
		if (tslot != 0)
			mv_learn_time_end(tslot, NULL); /* gives the timing slot back */
		return;
	}
	for (unsigned j = 1; j < k; j++) {
		uint32_t ids[LQ_REFS_PER];
		size_t from = (size_t)(j - 1) * LQ_REFS_PER;
		for (size_t r = 0; r < LQ_REFS_PER; r++)
			ids[r] = from + r < n ? named[from + r]->id : 0;
		memcpy(mv_ring_slot_at(&lq, t + j)->w, ids, sizeof(ids));
		mv_ring_commit(&lq, t + j);
	}
	w = mv_ring_slot_at(&lq, t)->w;
	w[0] = LR_LAUNCH | (uint64_t)k << 8 | (uint64_t)(stream & 0xffff) << 16 | (uint64_t)n << 32;
	w[1] = fn;
	w[2] = tslot;
	w[4] = now_ns();
	mv_ring_commit(&lq, t);
}

/* ---- launch timing ---- */

#define EV_PAIRS 1024

static CUevent ev_a[EV_PAIRS], ev_b[EV_PAIRS];
static _Atomic int ev_state[EV_PAIRS]; /* 0 free, 1 begun, 2 ended */
static _Atomic uint32_t ev_next;
static int ev_ready;

/* Claims timing slot i. A slot is busy while the planner has not yet taken the launch before it
 * (the app ran EV_PAIRS launches ahead). Learning can do without that launch's time; a recorded
 * trace cannot, so while recording the app waits for the planner, up to TIME_WAIT_NS, before it
 * gives the launch up as untimed (the trace then marks it so). */
#define TIME_WAIT_NS 2000000000ull

/* Set when a wait ran out: the device is held back (by the app itself, as a stream waiting on a
 * value the app writes later can be), so the launches after it are given up at once, not after
 * TIME_WAIT_NS each, until a slot is found free again. */
static _Atomic int ev_stalled;

static int time_claim(uint32_t i)
{
	struct timespec pause = {0, 50000};
	uint64_t waited = 0;
	int expected = 0;

	while (!atomic_compare_exchange_strong(&ev_state[i], &expected, 1)) {
		if (mv_cfg.record == NULL || atomic_load(&ev_stalled))
			return 0;
		if (waited >= TIME_WAIT_NS) {
			atomic_store(&ev_stalled, 1);
			return 0;
		}
		nanosleep(&pause, NULL);
		waited += (uint64_t)pause.tv_nsec;
		expected = 0;
	}
	atomic_store(&ev_stalled, 0);
	return 1;
}

uint32_t mv_learn_time_begin(CUstream h)
{
	uint32_t i = atomic_fetch_add_explicit(&ev_next, 1, memory_order_relaxed) % EV_PAIRS;

	if (!ev_ready || !time_claim(i))
		return 0;
	if (mv_real.cuEventRecord(ev_a[i], h) != CUDA_SUCCESS) {
		atomic_store(&ev_state[i], 0);
		return 0;
	}
	return i + 1;
}

void mv_learn_time_end(uint32_t slot, CUstream h)
{
	if (slot == 0)
		return;
	if (h == NULL || mv_real.cuEventRecord(ev_b[slot - 1], h) != CUDA_SUCCESS)
		atomic_store(&ev_state[slot - 1], 0);
	else
		atomic_store(&ev_state[slot - 1], 2);
}

/* The planner's side: the launch's device time, and the slot back in the pool. */
static uint64_t time_take(uint32_t slot)
{
	float ms = 0;
	uint64_t ns = 0;

	if (slot == 0 || slot > EV_PAIRS || atomic_load(&ev_state[slot - 1]) != 2)
		return 0;
	if (mv_real.cuEventSynchronize(ev_b[slot - 1]) == CUDA_SUCCESS &&
	    mv_real.cuEventElapsedTime(&ms, ev_a[slot - 1], ev_b[slot - 1]) == CUDA_SUCCESS && ms > 0)
		ns = (uint64_t)((double)ms * 1e6);
	atomic_store(&ev_state[slot - 1], 0);
	return ns;
}

/* ---- the planner's state (its thread's alone) ---- */

#define MV_TRACE_CAP (1u << 18)    /* ops kept before the trace starts over */
#define MV_DETECT_MIN 64           /* launches between tries to find the iteration */
#define MV_DEFAULT_BPS 12e9        /* copy bandwidth until one is measured */
#define MV_DEFAULT_LAUNCH_NS 10000

static struct mv_learner *lr;            /* the trace, while planning (policies/learn.h) */
static uint64_t last_time;               /* the time of the last record, for the trace file */
static uint64_t launches_since_detect, trace_launches;
static uint64_t resets_seen;             /* the learner's restarts already accounted for */
static uint64_t dur_sum, dur_n;          /* measured launch time, for the launches not timed */
static uint64_t bytes_h2d, ns_h2d, bytes_d2h, ns_d2h;

static int planning;                     /* a policy other than lru */
static const struct mv_policy *policy;
static struct mv_iter *iter;             /* the iteration learned, planned and installed */
static uint32_t fnmap[MV_FUNCS];         /* the live function number of each of iter's functions */
static uint32_t nfnmap;
static struct mv_feedback *fb;
static uint64_t *late_acc;
static uint64_t iter_seen, diverged_base, iters_installed;
static uint64_t planned_budget;
static int relearning;                  /* the plan stopped matching: the trace restarted */
static int recording;

static _Atomic int planner_started;
static _Atomic int planner_exiting;
static _Atomic int planner_done;

/* Learning starts over from the buffers alive now. */
static void relearn(const char *why)
{
	mv_learner_restart(lr, why);
	launches_since_detect = trace_launches = 0;
	resets_seen = mv_learner_stats(lr)->resets;
}

static uint64_t stamp(uint64_t t)
{
	if (t > last_time)
		last_time = t;
	return last_time;
}

static void on_alloc(const uint64_t *w)
{
	uint32_t id = (uint32_t)w[1], flags = (uint32_t)w[5];
	uint64_t size = w[2], site = w[3], t = stamp(w[4]);

	if (recording)
		mv_record_alloc(id, flags, size, site, t);
	if (lr != NULL)
		mv_learner_alloc(lr, id, size, site, flags, t);
}

static void on_free(const uint64_t *w)
{
	uint32_t id = (uint32_t)w[1];
	uint64_t t = stamp(w[4]);

	if (recording)
		mv_record_free(id, t);
	if (lr != NULL)
		mv_learner_freed(lr, id, t);
}

static void on_launch(const uint64_t *w)
{
	static uint32_t idv[LQ_REFS_PER * 40]; /* the buffer numbers of a launch */
	uint32_t stream = (uint32_t)(w[0] >> 16) & 0xffff;
	uint32_t n = (uint32_t)(w[0] >> 32), fn = (uint32_t)w[1];
	uint64_t t = stamp(w[4]), dur = time_take((uint32_t)w[2]), learnt;

	if (n > LQ_REFS_PER * 38)
		n = LQ_REFS_PER * 38;
	for (uint32_t j = 1; (j - 1) * LQ_REFS_PER < n; j++)
		memcpy(idv + (j - 1) * LQ_REFS_PER, mv_ring_slot_at(&lq, lq.head + j)->w,
		       LQ_REFS_PER * sizeof(uint32_t));
	if (dur > 0) {
		dur_sum += dur;
		dur_n++;
	}
	if (recording)
		mv_record_launch(fn, stream, t, dur, idv, n);
	if (lr == NULL)
		return;
	learnt = mv_learner_stats(lr)->launches;
	mv_learner_launch(lr, fn, mv_func_name(fn), stream, t, dur, n);
	for (uint32_t i = 0; i < n; i++)
		mv_learner_ref(lr, idv[i]);
	if (mv_learner_stats(lr)->launches != learnt) {
		launches_since_detect++;
		trace_launches++;
	}
}

static void on_page(const uint64_t *w)
{
	uint32_t id = (uint32_t)w[1];
	int in = w[5] & 1, waited = (w[5] >> 1) & 1;
	uint64_t dur = w[2], bytes = w[3], t = stamp(w[4]);

	if (dur > 0) {
		if (in) {
			bytes_h2d += bytes;
			ns_h2d += dur;
		} else {
			bytes_d2h += bytes;
			ns_d2h += dur;
		}
	}
	if (recording)
		mv_record_page(id, in, t, dur, waited);
	if (lr != NULL)
		mv_learner_page(lr, id, in, t, dur, waited);
}

static void on_mark(const uint64_t *w)
{
	uint64_t t = stamp(w[4]);

	if (recording)
		mv_record_mark(t);
	if (lr != NULL && mv_learner_mark(lr, t) == 0)
		launches_since_detect = MV_MAX(launches_since_detect, trace_launches); /* try at once */
}

/* Takes up to max records off the queue. Returns how many. */
static unsigned drain(unsigned max)
{
	const uint64_t *w;
	unsigned done = 0;

	while (done < max && (w = mv_ring_peek(&lq)) != NULL) {
		unsigned k = (unsigned)(w[0] >> 8) & 0xff;
		switch (w[0] & 0xff) {
		case LR_ALLOC:
			on_alloc(w);
			break;
		case LR_FREE:
			on_free(w);
			break;
		case LR_LAUNCH:
			on_launch(w);
			break;
		case LR_MARK:
			on_mark(w);
			break;
		case LR_PAGE:
			on_page(w);
			break;
		default:
			break;
		}
		mv_ring_release(&lq, k == 0 ? 1 : k);
		done++;
	}
	return done;
}

/* ---- planning ---- */

static double bps(uint64_t bytes, uint64_t ns, double gbps)
{
	if (gbps > 0)
		return gbps * 1e9;
	if (bytes > 0 && ns > 0)
		return (double)bytes / ((double)ns / 1e9);
	return MV_DEFAULT_BPS;
}

static uint64_t default_dur(void)
{
	return dur_n > 0 ? dur_sum / dur_n : MV_DEFAULT_LAUNCH_NS;
}

static uint64_t budget_now(void)
{
	uint64_t b;

	b = mv_budget_now();
	/* The app's own VMM allocations hold the device outside any plan. */
	b -= MV_MIN(b, mv_count_get(MV_COUNTER_app_vmm_bytes));
	return b;
}

/* Plans `iter` and installs the plan. */
static void plan_and_install(void)
{
	struct mv_policy_params p;
	struct mv_plan *plan = NULL;
	int r;

	mv_policy_defaults(&p);
	p.budget = planned_budget = budget_now();
	p.machine.h2d_bps = bps(bytes_h2d, ns_h2d, mv_cfg.h2d_gbps);
	p.machine.d2h_bps = bps(bytes_d2h, ns_d2h, mv_cfg.d2h_gbps);
	p.machine.launch_ns = default_dur();
	p.machine.host_mapped = mv_dev()->host_vmm;
	if (mv_cfg.page_min > 0)
		p.min_size = mv_cfg.page_min;
	if (mv_cfg.lookahead > 0)
		p.lookahead = mv_cfg.lookahead;
	if (mv_cfg.heavy_fraction > 0)
		p.heavy_fraction = mv_cfg.heavy_fraction;
	if (mv_cfg.headroom >= 0)
		p.headroom = mv_cfg.headroom;
	r = policy->plan(iter, &p, fb, &plan);
	if (r != 0 || plan == NULL) {
		mv_log(MV_LOG_DEBUG, "plan: %s could not plan the iteration (%d)", policy->name, r);
		return;
	}
	{
		uint32_t outs = 0, ins = 0;
		for (uint32_t i = 0; i < plan->nops; i++) {
			outs += plan->ops[i].kind == MV_PLAN_OUT;
			ins += plan->ops[i].kind == MV_PLAN_IN;
		}
		mv_log(MV_LOG_DEBUG, "plan: %s planned %u page-outs and %u page-ins for %u launches, %u buffers, "
		       "budget %llu", policy->name, outs, ins, iter->nlaunch, iter->nbufs, (unsigned long long)p.budget);
	}
	mv_exec_install_local(iter, plan, &p.machine, fnmap, nfnmap);
	mv_plan_free(plan);
}

/* Iterations the job left for good: detection can settle on an inner loop (a block repeated
 * within the step) when it looks at the wrong moment; that one is not taken again. */
#define MV_BAD_ITERS 16
static uint64_t bad_sig[MV_BAD_ITERS];
static unsigned nbad;

#define MV_ITER_MIN 8 /* launches: a shorter period is an inner loop, not a training step */

/* Function sequence and length, hashed. */
static uint64_t iter_sig(const struct mv_iter *it)
{
	return it->fingerprint ^ ((uint64_t)it->nlaunch * 0x9e3779b97f4a7c15ull);
}

static int iter_bad(const struct mv_iter *it)
{
	uint64_t sig = iter_sig(it);

	if (it->nlaunch < MV_ITER_MIN)
		return 1;
	for (unsigned i = 0; i < MV_MIN(nbad, MV_BAD_ITERS); i++)
		if (bad_sig[i] == sig)
			return 1;
	return 0;
}

/* The same launches on buffers of the same sizes. */
static int same_iter(const struct mv_iter *a, const struct mv_iter *b)
{
	if (a->fingerprint != b->fingerprint || a->nlaunch != b->nlaunch || a->nbufs != b->nbufs)
		return 0;
	for (uint32_t i = 0; i < a->nbufs; i++)
		if (a->bufs[i].size != b->bufs[i].size)
			return 0;
	return 1;
}

/* The live function number of each of the trace's functions, for the executor: fnmap[]. */
static void fnmap_take(void)
{
	nfnmap = MV_MIN(mv_learner_trace(lr)->nfuncs, MV_FUNCS);
	for (uint32_t f = 0; f < nfnmap; f++)
		fnmap[f] = UINT32_MAX;
	for (uint32_t fn = 0; fn < MV_FUNCS; fn++) {
		uint32_t f = mv_learner_func(lr, fn);
		if (f < nfnmap)
			fnmap[f] = fn;
	}
}

/* Looks for the iteration in the trace; a new one is planned and installed. */
static void detect(void)
{
	const struct mv_trace *tr = mv_learner_trace(lr);
	uint32_t first, nops;
	struct mv_iter *it = NULL;
	uint64_t iters, diverged;

	launches_since_detect = 0;
	if (mv_iter_detect(tr, &first, &nops) != 0)
		return;
	if (mv_iter_build(tr, first, nops, default_dur(), &it) != 0)
		return;
	if ((iter != NULL && same_iter(iter, it)) || iter_bad(it)) {
		mv_iter_free(it);
		return;
	}
	mv_log(MV_LOG_DEBUG, "plan: learned an iteration of %u launches and %u buffers (fingerprint %016llx)",
	       it->nlaunch, it->nbufs, (unsigned long long)it->fingerprint);
	mv_iter_free(iter);
	mv_feedback_free(fb);
	free(late_acc);
	relearning = 0;
	iter = it;
	fnmap_take();
	fb = mv_feedback_new(it);
	late_acc = calloc(it->nbufs + 1, sizeof(*late_acc));
	plan_and_install();
	mv_exec_progress(&iters, &diverged);
	iter_seen = iters_installed = iters;
	diverged_base = diverged;
	/* Durations are known now; recording still wants them. */
	if (!recording)
		atomic_fetch_and(&learn_flags, ~MV_LEARN_TIME);
}

/* One round of the planner's periodic work. */
static void planner_round(void)
{
	uint64_t iters, diverged;

	if (mv_ring_take_dropped(&lq, UINT64_MAX) != 0) {
		/* The trace missed records: start over and plan nothing until the iteration is relearned. */
		mv_log(MV_LOG_DEBUG, "plan: the learner's queue overflowed; relearning");
		mv_exec_install_local(NULL, NULL, NULL, NULL, 0);
		mv_iter_free(iter);
		iter = NULL;
		atomic_fetch_or(&learn_flags, MV_LEARN_TIME);
		relearn("records were lost");
		return;
	}
	if (mv_learner_stats(lr)->resets != resets_seen) {
		/* The trace filled up and started over from its live buffers. */
		resets_seen = mv_learner_stats(lr)->resets;
		launches_since_detect = trace_launches = 0;
	}
	if (iter == NULL) {
		/* Often enough to catch the iteration soon after its second repeat; each try is O(ops). */
		if (launches_since_detect >= MV_MAX(MV_DETECT_MIN, trace_launches / 8))
			detect();
		return;
	}
	mv_exec_progress(&iters, &diverged);
	if (!relearning && diverged - diverged_base > iter->nlaunch / 2 + MV_DETECT_MIN) {
		/* Off the plan for good: what came before is another iteration, so learn from here on. */
		mv_log(MV_LOG_DEBUG, "plan: %llu launches off the plan; learning the iteration anew",
		       (unsigned long long)(diverged - diverged_base));
		diverged_base = diverged;
		/* Left before two whole iterations: it never was the job's iteration. A job that changed
		 * shape after following it for longer may come back to it. */
		if (iters - iters_installed < 2)
			bad_sig[nbad++ % MV_BAD_ITERS] = iter_sig(iter);
		atomic_fetch_or(&learn_flags, MV_LEARN_TIME);
		relearn("the job left its iteration");
		relearning = 1;
		return;
	}
	if (relearning) {
		if (launches_since_detect >= MV_DETECT_MIN) {
			detect();
			if (!relearning)
				return;
		}
		mv_exec_progress(&iters, &diverged);
		diverged_base = diverged;
		return;
	}
	if (iters != iter_seen) {
		/* An iteration ended: late page-ins move earlier (Capuchin), and a new budget replans. */
		uint64_t late = 0;
		iter_seen = iters;
		if (mv_exec_take_late(iter->fingerprint, late_acc, iter->nbufs)) {
			double h2d = bps(bytes_h2d, ns_h2d, mv_cfg.h2d_gbps);
			for (uint32_t b = 0; b < iter->nbufs; b++) {
				if (late_acc[b] == 0)
					continue;
				fb->late_ns[b] += (uint64_t)((double)late_acc[b] / h2d * 1e9);
				late += late_acc[b];
				late_acc[b] = 0;
			}
		}
		if (late > 0 && mv_feedback_apply(fb, iter) > 0) {
			mv_log(MV_LOG_DEBUG, "plan: late page-ins (%llu bytes): replanning with them earlier",
			       (unsigned long long)late);
			plan_and_install();
		} else if (budget_now() != planned_budget) {
			plan_and_install();
		} else if (!mv_exec_daemon_active() && !(atomic_load(&learn_flags) & MV_LEARN_PLAN)) {
			plan_and_install();
		}
	}
}

static void *planner(void *arg)
{
	unsigned idle = 0;
	uint64_t next_flush = 0;

	(void)arg;
	mv_real.cuCtxSetCurrent(mv_dev()->ctx);
	for (;;) {
		int exiting = atomic_load(&planner_exiting);
		unsigned n = drain(4096);
		uint64_t now;
		if (n == 0 && exiting)
			break;
		/* After a burst of records, and once the queue has run dry. */
		if (planning && (n > 0 || idle == 0))
			planner_round();
		if (n > 0) {
			idle = 0;
		} else {
			struct timespec ts = {0, (long)MV_MIN(1000000u * (1u + idle), 20000000u)};
			if (idle < 64)
				idle++;
			nanosleep(&ts, NULL);
		}
		now = now_ns();
		if (recording && now >= next_flush) {
			mv_record_flush(0);
			next_flush = now + 100000000u;
		}
	}
	if (recording)
		mv_record_flush(1);
	atomic_store(&planner_done, 1);
	return NULL;
}

void mv_learn_start(void)
{
	int expected = 0;
	pthread_t t;
	pthread_attr_t attr;
	sigset_t all, old;
	unsigned flags = MV_LEARN_ON | MV_LEARN_TIME;

	if (atomic_load_explicit(&planner_started, memory_order_acquire))
		return;
	if (!atomic_compare_exchange_strong(&planner_started, &expected, 1))
		return;
	planning = strcmp(mv_cfg.policy, "lru") != 0;
	if (planning) {
		policy = mv_policy_find(mv_cfg.policy);
		if (policy == NULL) {
			mv_log(MV_LOG_WARN, "no policy named %s; paging reactively", mv_cfg.policy);
			planning = 0;
		}
	}
	if (mv_cfg.record != NULL) {
		/* A simulated device without backing bytes: the trace says so. */
		uint32_t tflags = mv_seam_sim_model_only() ? MV_TRACE_F_MODEL_ONLY : 0;

		recording = mv_record_open(mv_cfg.record, mv_dev()->total, tflags) == 0;
	}
	if (planning) {
		/* The library's own records are not hostile: only the trace's length is bounded. */
		static const struct mv_learner_limits lim = {MV_TRACE_CAP, UINT32_MAX, UINT32_MAX, UINT32_MAX,
							     UINT32_MAX};

		lr = mv_learner_new(mv_dev()->total, &lim, NULL, NULL);
		if (lr == NULL) {
			mv_log(MV_LOG_WARN, "no memory to learn the iteration; paging reactively");
			planning = 0;
		}
	}
	if (!planning && !recording)
		return;
	for (int i = 0; i < EV_PAIRS; i++) {
		if (mv_real.cuEventCreate(&ev_a[i], 0) != CUDA_SUCCESS || mv_real.cuEventCreate(&ev_b[i], 0) != CUDA_SUCCESS) {
			mv_log(MV_LOG_WARN, "cannot make the timing events: launches are not timed");
			flags &= ~MV_LEARN_TIME;
			break;
		}
	}
	ev_ready = (flags & MV_LEARN_TIME) != 0;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	if (pthread_create(&t, &attr, planner, NULL) != 0) {
		mv_log(MV_LOG_WARN, "cannot start the planner thread; paging reactively");
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		pthread_attr_destroy(&attr);
		return;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	atomic_store(&learn_flags, flags);
	mv_log(MV_LOG_DEBUG, "learner started: policy %s%s%s", mv_cfg.policy, recording ? ", recording to " : "",
	       recording ? mv_cfg.record : "");
}

/* At exit: the planner drains what is queued and ends the trace file, within a bounded time (30 s of
 * 5 ms naps, more on a loaded machine): it is done at once unless it is still planning. */
__attribute__((destructor)) static void learn_exit(void)
{
	struct timespec ts = {0, 5000000};

	if (!atomic_load(&planner_started) || !(atomic_load(&learn_flags) & MV_LEARN_ON))
		return;
	atomic_store(&learn_flags, 0);
	atomic_store(&planner_exiting, 1);
	for (int i = 0; i < 6000 && !atomic_load(&planner_done); i++)
		nanosleep(&ts, NULL);
}
