/* The plan executor: follows the learned iteration launch by launch, binds the plan's iteration
 * buffers to live ones, and issues the plan's page-outs and page-ins after the launches it names.
 *
 * Everything per launch happens under mv_lock, which mv_submit holds anyway: comparing the
 * function with the one expected, a few bindings and the moves due, all O(1) per launch beyond
 * the plan's own ops. The moves themselves are issued after the launch, without the lock, through
 * residency.c's page-out and page-in paths, which keep every invariant: a page-out waits for the
 * buffer's last uses, and every launch still makes its buffers resident itself. A plan only moves
 * things earlier; when the job leaves the iteration, paging is reactive until the launches match
 * the iteration's first ones again. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "interpose/internal.h"
#include "policies/policy.h"
#include "protocol/frame.h"
#include "protocol/proto.h"

#define MV_RESYNC 4 /* consecutive launches matching the iteration's first ones to follow it again */
#define MV_EXEC_DEFAULT_BPS 12e9 /* copy bandwidth assumed when the plan's maker gave none */
/* Iterations of memvirtd's plan followed before its launches stop going to memvirtd: enough for it
 * to find the iteration again in what it learnt since the job last left it. */
#define MV_QUIET_AFTER 3

/* One move due after a launch. */
struct xop {
	uint32_t ibuf;
	uint32_t in;
};

/* Where the iteration first names a buffer: the buffer bound there, checked by size. */
struct xbind {
	uint32_t index; /* among the buffers that launch names, in scan order */
	uint32_t ibuf;
	uint64_t size;
};

/* An iteration and its plan in the form the executor follows. Immutable once installed, except
 * the lateness counters; replaced and freed under mv_lock. */
struct xplan {
	uint64_t fingerprint;
	uint64_t wire_fingerprint; /* the same with memvirtd's names for the functions: its plans carry it */
	uint64_t sig;        /* a hash of the buffers' sizes: the same launches on other shapes differ */
	uint32_t nlaunch, nbufs;
	uint32_t *func;      /* the live function number of each launch */
	uint32_t *bind0;     /* binds[bind0[i] .. bind0[i+1]) at launch i */
	struct xbind *binds;
	uint32_t *op0;       /* ops[op0[i] .. op0[i+1]) after launch i */
	struct xop *ops;
	uint32_t *ref0;      /* the iteration's refs[ref0[i] .. ref0[i+1]) of launch i (daemon binding) */
	uint32_t *refs;
	uint64_t *size;      /* each iteration buffer's size */
	uint64_t *late_bytes; /* bytes of late planned page-ins per buffer since the planner last looked */
	int daemon;          /* the plan came from memvirtd */
	/* Next uses, for choosing victims (mv_exec_victim_key), built once per iteration installed. */
	uint32_t *use0;      /* upos[use0[b] .. use0[b+1]): the launches naming buffer b, ascending */
	uint32_t *upos;
	uint8_t *life;       /* XLIFE_* per buffer */
	uint64_t *at_ns;     /* when launch i starts, modeled from the iteration's start; [nlaunch]: its length */
	double move_ns;      /* ns per byte of a page-out and the page-in back */
};

/* What follows an iteration buffer's last use in the iteration. */
enum {
	XLIFE_WRAP,    /* alive across the iteration's end: used next at its first use in the next one */
	XLIFE_ENDS,    /* freed within the iteration: never used again */
	XLIFE_CARRIED, /* allocated within it and freed in a later one, where the iteration knows it as
			* another of its buffers: assumed used as soon as the next iteration starts */
};

/* Guarded by mv_lock. */
static struct xplan *cur;
static struct mv_buf **bound;     /* per iteration buffer */
static uint32_t cursor;           /* the next launch expected, while following */
static int following;
static uint64_t follow_clock;     /* the use clock when following began */
static uint32_t matched;          /* launches matching the iteration's start, while not following */
/* Launches seen since the plan was installed before the iteration's start came round: up to one
 * iteration of them is the wait for its start, not a departure from it. */
static uint32_t awaiting;
static int synced;                /* followed since installed */
/* memvirtd's plan is followed, and its launches are not sent (MV_EV_QUIET to MV_EV_LOUD): the
 * daemon has the iteration, and each launch it would be sent only tells it the same again. */
static int quiet;
static uint32_t wraps;            /* iterations ended since following began */
/* Read by the planner without the lock. */
static _Atomic uint64_t iterations_done;
static _Atomic uint64_t diverged_launches;
static _Atomic int daemon_active;
/* memvirtd's latest plan that fitted no iteration learned here when it came: a copy of its payload
 * (NULL: none), kept until the learner installs an iteration, and the wire fingerprint of the one it
 * was last tried on (0: none). Guarded by daemon_lock, which also serialises the link thread's
 * installing and withdrawing of memvirtd's plans with the planner's retries of the kept one: a plan
 * kept as the learner installs its iteration is either tried by the learner or finds the iteration
 * itself. Taken before mv_lock, never by an app thread but around fork. */
static pthread_mutex_t daemon_lock = PTHREAD_MUTEX_INITIALIZER;
static uint8_t *kept;
static size_t kept_len;
static uint64_t kept_tried;

static void kept_retry(uint64_t wire_fingerprint);

static void xplan_free(struct xplan *x)
{
	if (x == NULL)
		return;
	free(x->func);
	free(x->bind0);
	free(x->binds);
	free(x->op0);
	free(x->ops);
	free(x->ref0);
	free(x->refs);
	free(x->size);
	free(x->late_bytes);
	free(x->use0);
	free(x->upos);
	free(x->life);
	free(x->at_ns);
	free(x);
}

/* Function names as memvirtd knows them: "f" and the number the library sends in LAUNCH events. */
struct wire_names {
	const uint32_t *fnmap;
	uint32_t nfn;
	char buf[16];
};

static const char *wire_name(void *ctx, uint32_t func)
{
	struct wire_names *w = ctx;

	snprintf(w->buf, sizeof(w->buf), "f%u", func < w->nfn ? w->fnmap[func] : UINT32_MAX);
	return w->buf;
}

/* The next-use tables of x, whose refs are in place: each buffer's uses in launch order (a
 * counting sort of the refs, which name a buffer at most once per launch), its life, and the
 * launches' start times. O(launches + refs + buffers), once per iteration installed. */
static int xplan_uses(struct xplan *x, const struct mv_iter *it)
{
	uint32_t nr = x->ref0[x->nlaunch];

	x->use0 = calloc(x->nbufs + 2, sizeof(*x->use0));
	x->upos = calloc(nr + 1, sizeof(*x->upos));
	x->life = calloc(x->nbufs + 1, 1);
	x->at_ns = malloc((x->nlaunch + 1) * sizeof(*x->at_ns));
	if (x->use0 == NULL || x->upos == NULL || x->life == NULL || x->at_ns == NULL)
		return -1;
	/* Counts at use0[b + 2], starts at use0[b + 1], then ends at use0[b + 1] once filled. */
	for (uint32_t r = 0; r < nr; r++)
		if (x->refs[r] < x->nbufs)
			x->use0[x->refs[r] + 2]++;
	for (uint32_t b = 0; b < x->nbufs; b++)
		x->use0[b + 2] += x->use0[b + 1];
	x->at_ns[0] = 0;
	for (uint32_t i = 0; i < x->nlaunch; i++) {
		for (uint32_t r = x->ref0[i]; r < x->ref0[i + 1]; r++)
			if (x->refs[r] < x->nbufs)
				x->upos[x->use0[x->refs[r] + 1]++] = i;
		/* One more ns a launch, so that launches of no measured length still order uses. */
		x->at_ns[i + 1] = x->at_ns[i] + it->launch[i].dur_ns + 1;
	}
	for (uint32_t b = 0; b < x->nbufs; b++) {
		const struct mv_iter_buf *ib = &it->bufs[b];
		x->life[b] = ib->free_at != MV_TRACE_NONE ? XLIFE_ENDS :
			     ib->alloc_at == MV_TRACE_NONE ? XLIFE_WRAP : XLIFE_CARRIED;
	}
	return 0;
}

/* The iteration half of an xplan: functions, bindings and refs. fnmap maps the iteration's
 * function numbers to live ones. */
static struct xplan *xplan_iter(const struct mv_iter *it, const uint32_t *fnmap, uint32_t nfn)
{
	struct xplan *x = calloc(1, sizeof(*x));
	uint32_t nb = 0;

	if (x == NULL)
		return NULL;
	x->fingerprint = it->fingerprint;
	{
		struct wire_names w = {fnmap, nfn, {0}};

		x->wire_fingerprint = mv_iter_fingerprint(it, wire_name, &w);
	}
	x->nlaunch = it->nlaunch;
	x->nbufs = it->nbufs;
	x->func = malloc((it->nlaunch + 1) * sizeof(*x->func));
	x->bind0 = calloc(it->nlaunch + 1, sizeof(*x->bind0));
	x->binds = malloc((it->nbufs + 1) * sizeof(*x->binds));
	x->ref0 = malloc((it->nlaunch + 1) * sizeof(*x->ref0));
	x->refs = malloc((it->nrefs + 1) * sizeof(*x->refs));
	x->size = malloc((it->nbufs + 1) * sizeof(*x->size));
	x->late_bytes = calloc(it->nbufs + 1, sizeof(*x->late_bytes));
	if (x->func == NULL || x->bind0 == NULL || x->binds == NULL || x->ref0 == NULL || x->refs == NULL ||
	    x->size == NULL || x->late_bytes == NULL)
		goto err;
	x->sig = 0xcbf29ce484222325ull;
	for (uint32_t b = 0; b < it->nbufs; b++) {
		x->size[b] = it->bufs[b].size;
		x->sig = (x->sig ^ it->bufs[b].size) * 0x100000001b3ull;
	}
	for (uint32_t i = 0, r = 0; i < it->nlaunch; i++) {
		const struct mv_iter_launch *l = &it->launch[i];
		x->func[i] = l->func < nfn ? fnmap[l->func] : UINT32_MAX;
		x->ref0[i] = r;
		x->bind0[i] = nb;
		for (uint32_t k = 0; k < l->nrefs; k++, r++) {
			uint32_t b = it->refs[l->ref0 + k];
			x->refs[r] = b;
			/* Bound where it is first named. */
			if (b < it->nbufs && it->bufs[b].first_use == i) {
				int dup = 0;
				for (uint32_t j = x->bind0[i]; j < nb; j++)
					dup |= x->binds[j].ibuf == b;
				if (!dup)
					x->binds[nb++] = (struct xbind){k, b, it->bufs[b].size};
			}
		}
		x->ref0[i + 1] = r;
	}
	x->bind0[it->nlaunch] = nb;
	if (xplan_uses(x, it) != 0)
		goto err;
	return x;
err:
	xplan_free(x);
	return NULL;
}

/* Adds ops (already in plan order) to x; at == MV_TRACE_NONE goes after the iteration's last
 * launch, which is where the previous iteration leaves off. */
static int xplan_ops(struct xplan *x, const uint32_t *at, const uint32_t *ibuf, const uint32_t *in, uint32_t n)
{
	x->op0 = calloc(x->nlaunch + 1, sizeof(*x->op0));
	x->ops = malloc((n + 1) * sizeof(*x->ops));
	if (x->op0 == NULL || x->ops == NULL)
		return -1;
	/* Counting sort by launch, stable. */
	for (uint32_t i = 0; i < n; i++) {
		uint32_t a = at[i] == MV_TRACE_NONE ? x->nlaunch - 1 : at[i];
		x->op0[a + 1]++;
	}
	for (uint32_t i = 0; i < x->nlaunch; i++)
		x->op0[i + 1] += x->op0[i];
	{
		uint32_t *fill = calloc(x->nlaunch + 1, sizeof(*fill));
		if (fill == NULL)
			return -1;
		for (uint32_t i = 0; i < n; i++) {
			uint32_t a = at[i] == MV_TRACE_NONE ? x->nlaunch - 1 : at[i];
			x->ops[x->op0[a] + fill[a]++] = (struct xop){ibuf[i], in[i]};
		}
		free(fill);
	}
	return 0;
}

/* Launches go to memvirtd again, after a quiet spell; why is for the log. Called with mv_lock held. */
static void go_loud(const char *why)
{
	if (!quiet)
		return;
	quiet = 0;
	mv_link_event(MV_EV_LOUD, 0, 0, 0, 0);
	mv_log(MV_LOG_DEBUG, "plan: %s; launches go to memvirtd again", why);
}

/* Swaps in x (NULL: none). Keeps the cursor and bindings when x is the same iteration. Returns
 * whether x went in; when it did not, x is freed. */
static int install(struct xplan *x)
{
	struct xplan *old;
	struct mv_buf **nb = NULL, **ob;
	int same;

	if (x != NULL) {
		nb = calloc(x->nbufs + 1, sizeof(*nb));
		if (nb == NULL) {
			xplan_free(x);
			return 0;
		}
	}
	mv_lock();
	/* The learner checked before planning, but memvirtd's plan may have come in since: it stays. */
	if ((x == NULL || !x->daemon) && atomic_load(&daemon_active)) {
		mv_unlock();
		xplan_free(x);
		free(nb);
		return 0;
	}
	old = cur;
	ob = bound;
	same = old != NULL && x != NULL && old->fingerprint == x->fingerprint && old->nlaunch == x->nlaunch &&
	       old->nbufs == x->nbufs && old->sig == x->sig;
	if (x == NULL || !x->daemon || !same)
		go_loud(x == NULL ? "the plan was withdrawn" : "another plan came in");
	if (same) {
		memcpy(nb, ob, x->nbufs * sizeof(*nb));
	} else {
		if (old != NULL)
			for (uint32_t b = 0; b < old->nbufs; b++)
				if (ob[b] != NULL)
					ob[b]->ibuf = UINT32_MAX;
		following = 0;
		matched = 0;
		cursor = 0;
		synced = 0;
		awaiting = 0;
	}
	cur = x;
	bound = nb;
	mv_learn_plan_following(x != NULL);
	mv_unlock();
	xplan_free(old);
	free(ob);
	return 1;
}

/* Nanoseconds per byte of a page-out and the page-in back at m's bandwidths; the learner's
 * default bandwidth where one is unknown. */
static double move_ns(const struct mv_machine *m)
{
	double d2h = m != NULL && m->d2h_bps > 0 ? m->d2h_bps : MV_EXEC_DEFAULT_BPS;
	double h2d = m != NULL && m->h2d_bps > 0 ? m->h2d_bps : MV_EXEC_DEFAULT_BPS;

	return 1e9 / d2h + 1e9 / h2d;
}

/* Called by the learner: the plan p for iteration it. fnmap maps it's function numbers to live
 * ones. A daemon's plan in force is left alone; one kept for later is tried on the iteration.
 * Returns 0, or -1 without memory. */
int mv_exec_install_local(const struct mv_iter *it, const struct mv_plan *p, const struct mv_machine *m,
			  const uint32_t *fnmap, uint32_t nfn)
{
	struct xplan *x;
	uint32_t *at, *ib, *in;
	int r = 0;

	if (atomic_load(&daemon_active))
		return 0;
	if (it == NULL || p == NULL) {
		install(NULL);
		return 0;
	}
	x = xplan_iter(it, fnmap, nfn);
	at = malloc((p->nops + 1) * sizeof(*at));
	ib = malloc((p->nops + 1) * sizeof(*ib));
	in = malloc((p->nops + 1) * sizeof(*in));
	if (x == NULL || at == NULL || ib == NULL || in == NULL) {
		r = -1;
		goto out;
	}
	x->move_ns = move_ns(m);
	for (uint32_t i = 0; i < p->nops; i++) {
		at[i] = p->ops[i].at;
		ib[i] = p->ops[i].buf;
		in[i] = p->ops[i].kind == MV_PLAN_IN;
	}
	if (xplan_ops(x, at, ib, in, p->nops) != 0) {
		r = -1;
		goto out;
	}
	{
		/* Read first: once x is installed, memvirtd's plan may replace and free it. */
		uint64_t wire_fingerprint = x->wire_fingerprint;

		if (install(x))
			kept_retry(wire_fingerprint);
	}
	x = NULL;
out:
	xplan_free(x);
	free(at);
	free(ib);
	free(in);
	return r;
}

/* A malloc'd copy of len bytes at p; NULL without memory. */
static void *dup_array(const void *p, size_t len)
{
	void *d = malloc(len);

	if (d != NULL)
		memcpy(d, p, len);
	return d;
}

/* A copy of the iteration half of c, for memvirtd's plan; NULL without memory. Called with mv_lock
 * held, c being the plan in force. */
static struct xplan *xplan_copy_iter(const struct xplan *c)
{
	uint32_t nr = c->ref0[c->nlaunch], nbind = c->bind0[c->nlaunch];
	struct xplan *x = calloc(1, sizeof(*x));

	if (x == NULL)
		return NULL;
	*x = (struct xplan){.fingerprint = c->fingerprint, .wire_fingerprint = c->wire_fingerprint, .sig = c->sig,
			    .nlaunch = c->nlaunch, .nbufs = c->nbufs};
	x->func = malloc((c->nlaunch + 1) * sizeof(*x->func));
	x->bind0 = malloc((c->nlaunch + 1) * sizeof(*x->bind0));
	x->binds = malloc((nbind + 1) * sizeof(*x->binds));
	x->ref0 = malloc((c->nlaunch + 1) * sizeof(*x->ref0));
	x->refs = malloc((nr + 1) * sizeof(*x->refs));
	x->size = malloc((c->nbufs + 1) * sizeof(*x->size));
	x->late_bytes = calloc(c->nbufs + 1, sizeof(*x->late_bytes));
	x->use0 = dup_array(c->use0, (c->nbufs + 2) * sizeof(*x->use0));
	x->upos = dup_array(c->upos, (nr + 1) * sizeof(*x->upos));
	x->life = dup_array(c->life, c->nbufs + 1);
	x->at_ns = dup_array(c->at_ns, (c->nlaunch + 1) * sizeof(*x->at_ns));
	x->move_ns = c->move_ns;
	if (x->func == NULL || x->bind0 == NULL || x->binds == NULL || x->ref0 == NULL || x->refs == NULL ||
	    x->size == NULL || x->late_bytes == NULL || x->use0 == NULL || x->upos == NULL || x->life == NULL ||
	    x->at_ns == NULL) {
		xplan_free(x);
		return NULL;
	}
	memcpy(x->func, c->func, c->nlaunch * sizeof(*x->func));
	memcpy(x->bind0, c->bind0, (c->nlaunch + 1) * sizeof(*x->bind0));
	memcpy(x->binds, c->binds, nbind * sizeof(*x->binds));
	memcpy(x->ref0, c->ref0, (c->nlaunch + 1) * sizeof(*x->ref0));
	memcpy(x->refs, c->refs, nr * sizeof(*x->refs));
	memcpy(x->size, c->size, c->nbufs * sizeof(*x->size));
	return x;
}

/* Adds memvirtd's moves (head decoded from payload) to x, each bound where the daemon says the
 * iteration names its buffer, checked by size; *nbound says how many were. Returns 0, -EINVAL for a
 * malformed move, or -ENOMEM. */
static int daemon_ops(struct xplan *x, const uint8_t *payload, const struct mv_msg_plan *head, uint32_t *nbound)
{
	uint32_t *at, *ib, *in, n = 0;
	int r = -ENOMEM;

	at = malloc((head->nops + 1) * sizeof(*at));
	ib = malloc((head->nops + 1) * sizeof(*ib));
	in = malloc((head->nops + 1) * sizeof(*in));
	if (at == NULL || ib == NULL || in == NULL)
		goto out;
	for (uint32_t i = 0; i < head->nops; i++) {
		struct mv_plan_op_wire op;
		uint32_t b;
		if (mv_plan_op_decode(payload + MV_MSG_PLAN_HEAD + (size_t)i * MV_PLAN_OP_SIZE, head->nlaunch, &op) != 0) {
			r = -EINVAL;
			goto out;
		}
		if (op.bind_launch >= x->nlaunch || op.bind_index >= x->ref0[op.bind_launch + 1] - x->ref0[op.bind_launch])
			continue;
		b = x->refs[x->ref0[op.bind_launch] + op.bind_index];
		if (b >= x->nbufs || x->size[b] != op.size)
			continue;
		at[n] = op.at == MV_PLAN_OP_BEFORE_FIRST ? MV_TRACE_NONE : op.at;
		ib[n] = b;
		in[n] = op.kind == MV_PLAN_IN;
		n++;
	}
	if (xplan_ops(x, at, ib, in, n) == 0) {
		*nbound = n;
		r = 0;
	}
out:
	free(at);
	free(ib);
	free(in);
	return r;
}

/* Installs memvirtd's plan (head decoded from payload) when it is for the iteration of the plan in
 * force, which is the library's own. Returns 0; -ESRCH when it is for another iteration, or the
 * library has learned none yet; -EINVAL for a malformed move; or -ENOMEM. */
static int daemon_install(const uint8_t *payload, const struct mv_msg_plan *head)
{
	struct xplan *x = NULL;
	uint32_t n = 0;
	int r = -ESRCH, was;

	mv_lock();
	if (cur != NULL && cur->wire_fingerprint == head->fingerprint && cur->nlaunch == head->nlaunch) {
		x = xplan_copy_iter(cur);
		r = -ENOMEM;
	}
	mv_unlock();
	if (x == NULL)
		return r;
	x->daemon = 1;
	r = daemon_ops(x, payload, head, &n);
	if (r != 0) {
		xplan_free(x);
		return r;
	}
	was = atomic_exchange(&daemon_active, 1);
	if (!install(x)) {
		atomic_store(&daemon_active, was);
		return -ENOMEM;
	}
	mv_log(MV_LOG_DEBUG, "plan: memvirtd's plan %llu installed: %u of %u moves bound",
	       (unsigned long long)head->plan_id, n, head->nops);
	return 0;
}

/* Replaces the plan kept for later with p, a malloc'd payload of len bytes, or NULL. Called with
 * daemon_lock held. */
static void kept_set(uint8_t *p, size_t len)
{
	free(kept);
	kept = p;
	kept_len = len;
	kept_tried = 0;
}

/* The learner installed an iteration whose wire fingerprint is wire_fingerprint: memvirtd's plan
 * kept for later may be for it. Tried once per iteration. */
static void kept_retry(uint64_t wire_fingerprint)
{
	struct mv_msg_plan head;
	int r;

	pthread_mutex_lock(&daemon_lock);
	/* Decoded when it came. */
	if (kept != NULL && kept_tried != wire_fingerprint && mv_plan_decode(kept, kept_len, &head) == 0) {
		r = daemon_install(kept, &head);
		if (r == -ESRCH) {
			kept_tried = wire_fingerprint;
			mv_log(MV_LOG_DEBUG, "plan: memvirtd's plan %llu does not fit the iteration "
			       "learned here either; still kept", (unsigned long long)head.plan_id);
		} else if (r != -ENOMEM) {
			kept_set(NULL, 0);
		}
	}
	pthread_mutex_unlock(&daemon_lock);
}

int mv_exec_from_daemon(const uint8_t *payload, size_t len)
{
	struct mv_msg_plan head;
	uint8_t *copy;
	int r = 0;

	if (payload != NULL && mv_plan_decode(payload, len, &head) != 0)
		return -EINVAL;
	pthread_mutex_lock(&daemon_lock);
	if (payload == NULL || head.nops == 0) {
		/* Back to the local plan: the learner installs it again at its next round. */
		kept_set(NULL, 0);
		if (atomic_exchange(&daemon_active, 0))
			mv_log(MV_LOG_DEBUG, "plan: %s; back to the local one",
			       payload == NULL ? "memvirtd's plan withdrawn" : "memvirtd withdrew its plan");
		mv_lock();
		go_loud("memvirtd's plan is no longer in force");
		mv_unlock();
		goto out;
	}
	r = daemon_install(payload, &head);
	if (r != -ESRCH) {
		/* Installed or unusable: either way it replaces what memvirtd sent before. */
		kept_set(NULL, 0);
		goto out;
	}
	/* memvirtd learns from the events as the learner here does, and often first: the learner
	 * tries the plan again when it installs an iteration. memvirtd does not send it twice. */
	copy = malloc(len);
	if (copy != NULL)
		memcpy(copy, payload, len);
	kept_set(copy, len);
	r = copy != NULL ? 0 : -ENOMEM;
	mv_log(MV_LOG_DEBUG, "plan: memvirtd's plan %llu fits no iteration learned here yet (%u launches); %s",
	       (unsigned long long)head.plan_id, head.nlaunch,
	       copy != NULL ? "kept for the next one" : "no memory to keep it");
out:
	pthread_mutex_unlock(&daemon_lock);
	return r;
}

/* fork (real.c): daemon_lock is held across it, as mv_lock is, so that the child finds it free. */
void mv_exec_fork_prepare(void)
{
	pthread_mutex_lock(&daemon_lock);
}

void mv_exec_fork_parent(void)
{
	pthread_mutex_unlock(&daemon_lock);
}

/* The child's link starts a session of its own: the plan kept from the parent's is not for it. */
void mv_exec_forked(void)
{
	/* Nor is the parent's memvirtd plan: the child's session has learnt nothing, so it must hear
	 * the child's launches. */
	quiet = 0;
	atomic_store(&daemon_active, 0);
	kept_set(NULL, 0);
	pthread_mutex_unlock(&daemon_lock);
}

/* Whether a launch of fn naming named[0 .. n) is launch i of the iteration: the same function, and
 * the buffers it first names there of the sizes learned. */
static int matches(uint32_t i, uint32_t fn, struct mv_buf *const *named, size_t n)
{
	if (fn != cur->func[i])
		return 0;
	for (uint32_t j = cur->bind0[i]; j < cur->bind0[i + 1]; j++)
		if (cur->binds[j].index >= n || named[cur->binds[j].index]->size != cur->binds[j].size)
			return 0;
	return 1;
}

/* Binds the buffers the iteration first names at launch i. */
static void bind_at(uint32_t i, struct mv_buf *const *named, size_t n)
{
	for (uint32_t j = cur->bind0[i]; j < cur->bind0[i + 1]; j++) {
		const struct xbind *bd = &cur->binds[j];
		struct mv_buf *b;
		if (bd->index >= n)
			continue;
		b = named[bd->index];
		if (b->size != bd->size || bound[bd->ibuf] == b)
			continue;
		if (bound[bd->ibuf] != NULL)
			bound[bd->ibuf]->ibuf = UINT32_MAX;
		if (b->ibuf != UINT32_MAX && b->ibuf < cur->nbufs && bound[b->ibuf] == b)
			bound[b->ibuf] = NULL;
		bound[bd->ibuf] = b;
		b->ibuf = bd->ibuf;
	}
}

int mv_exec_on_launch(uint32_t fn, struct mv_buf *const *named, size_t n, struct mv_exec_step *out)
{
	uint32_t i;

	if (cur == NULL)
		return 0;
	if (!following) {
		/* Looking for the iteration's start: binding as it goes, moving nothing. */
		if (!matches(matched, fn, named, n))
			matched = matches(0, fn, named, n) ? 1 : 0;
		else
			matched++;
		if (matched > 0)
			bind_at(matched - 1, named, n);
		if (matched >= MV_MIN(MV_RESYNC, cur->nlaunch)) {
			following = 1;
			wraps = 0;
			follow_clock = mv_clock_now();
			synced = 1;
			cursor = matched % cur->nlaunch;
			mv_log(MV_LOG_DEBUG, "plan: following the iteration from launch %u (planned out so far %llu)",
			       matched, (unsigned long long)mv_count_get(MV_COUNTER_planned_outs));
		} else if (synced || ++awaiting > cur->nlaunch) {
			atomic_fetch_add_explicit(&diverged_launches, 1, memory_order_relaxed);
		}
		return 0;
	}
	i = cursor;
	if (!matches(i, fn, named, n)) {
		following = 0;
		matched = matches(0, fn, named, n) ? 1 : 0;
		if (matched > 0)
			bind_at(0, named, n);
		go_loud("the job left the plan's iteration");
		mv_count_add(MV_COUNTER_divergences, 1);
		atomic_fetch_add_explicit(&diverged_launches, 1, memory_order_relaxed);
		mv_log(MV_LOG_DEBUG, "plan: launch %u of the iteration expected function %u and its buffers, got "
		       "function %u: reactive paging (planned out so far %llu)", i, cur->func[i], fn,
		       (unsigned long long)mv_count_get(MV_COUNTER_planned_outs));
		return 0;
	}
	bind_at(i, named, n);
	for (uint32_t j = cur->op0[i]; j < cur->op0[i + 1] && out->n < MV_EXEC_STEP_OPS; j++) {
		const struct xop *op = &cur->ops[j];
		struct mv_buf *b = op->ibuf < cur->nbufs ? bound[op->ibuf] : NULL;
		if (b == NULL || b->kind != MV_KIND_LARGE || b->pinned || b->freed)
			continue;
		if (op->in ? b->state != MV_HOST : b->state != MV_RESIDENT || b->ready_pending)
			continue;
		/* Held until the move is issued, so that a free cannot release it meanwhile. */
		atomic_fetch_add_explicit(&b->busy, 1, memory_order_relaxed);
		out->buf[out->n] = b;
		out->in[out->n] = (uint8_t)op->in;
		out->n++;
	}
	if (++cursor == cur->nlaunch) {
		uint64_t done = atomic_fetch_add_explicit(&iterations_done, 1, memory_order_relaxed) + 1;

		cursor = 0;
		if (++wraps >= MV_QUIET_AFTER && cur->daemon && !quiet && atomic_load(&daemon_active) &&
		    mv_link_is_up()) {
			quiet = 1;
			mv_link_push(MV_EV_QUIET, 0, 0, 0, done);
			mv_log(MV_LOG_DEBUG, "plan: memvirtd's plan followed for %u iterations; its launches "
			       "are no longer sent to it", wraps);
		}
	}
	return quiet;
}

/* ---- victims by next use ----
 *
 * While the iteration is followed, reactive eviction (mv_registry_victim) ranks the candidates by
 * when the plan uses them next, counted from the cursor in the launches' modeled time, wrapping
 * into the next iteration (Belady's furthest next use), and by what their move costs. The key's
 * tiers, best victim first:
 *   MV_VICTIM_DEAD: bound to a buffer of the iteration with no use left before its free; it never
 *     comes back. Value: its fit (below).
 *   MV_VICTIM_UNKNOWN: bound to none, and untouched since the iteration has been followed, so that
 *     no launch of the iteration names it: the plan says nothing about it, so it counts as used
 *     furthest away. Value: its fit.
 *   MV_VICTIM_IN_TIME: next used t ns from now, with t at least the time to leave and come back
 *     (span * move_ns). Value: t * fit, so that of two buffers used about as late, the one that
 *     frees what is needed in fewer moves, and copies fewer bytes beyond it, goes first.
 *   MV_VICTIM_TOO_SOON: used sooner than its round trip takes, a certain stall of -slack ns, where
 *     slack = t - span * move_ns. Value: slack / fit: the smallest stall per byte needed first.
 *     A buffer bound to none but touched since the iteration has been followed is one of the
 *     iteration's that the executor cannot tell apart (allocated for a use to come, or named where
 *     the iteration did not bind it): it counts as needed by the very next launch.
 * fit = min(span, need) / max(span, need): 1 for a buffer that frees exactly the bytes needed, less
 * for one that frees only part of them (more moves to come) or far more (bytes copied out and back
 * for nothing): under a tight budget the step is bound by the bytes copied. Ties go to the least
 * recently used. O(log uses) per candidate. */

int mv_exec_ranks_victims(void)
{
	return cur != NULL && following;
}

/* When the plan uses iteration buffer ib next, in ns from the cursor's launch; UINT64_MAX when
 * never again (freed first, or never used). */
static uint64_t next_use_ns(uint32_t ib)
{
	const uint32_t *pos = &cur->upos[cur->use0[ib]];
	uint32_t n = cur->use0[ib + 1] - cur->use0[ib], lo = 0, hi = n;
	uint64_t now = cur->at_ns[cursor], end = cur->at_ns[cur->nlaunch];

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (pos[mid] < cursor)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < n)
		return cur->at_ns[pos[lo]] - now;
	if (n == 0 || cur->life[ib] == XLIFE_ENDS)
		return UINT64_MAX;
	if (cur->life[ib] == XLIFE_CARRIED)
		return end - now;
	return end - now + cur->at_ns[pos[0]];
}

void mv_exec_victim_key(const struct mv_buf *b, uint64_t need, struct mv_victim_key *k)
{
	double fit = need == 0 || b->span == need ? 1.0 :
		     b->span > need ? (double)need / (double)b->span : (double)b->span / (double)need;
	double slack;
	uint64_t t;

	if (b->ibuf < cur->nbufs && bound[b->ibuf] == b) {
		t = next_use_ns(b->ibuf);
		if (t == UINT64_MAX) {
			*k = (struct mv_victim_key){MV_VICTIM_DEAD, fit};
			return;
		}
	} else if (b->lru < follow_clock) {
		*k = (struct mv_victim_key){MV_VICTIM_UNKNOWN, fit};
		return;
	} else {
		t = 0;
	}
	slack = (double)t - (double)b->span * cur->move_ns;
	if (slack >= 0)
		*k = (struct mv_victim_key){MV_VICTIM_IN_TIME, (double)t * fit};
	else
		*k = (struct mv_victim_key){MV_VICTIM_TOO_SOON, slack / fit};
}

void mv_exec_issue(struct mv_exec_step *st)
{
	for (int i = 0; i < st->n; i++) {
		struct mv_buf *b = st->buf[i];
		if (st->in[i]) {
			if (mv_page_in_planned(b) == 0)
				mv_count_add(MV_COUNTER_planned_ins, 1);
		} else if (mv_page_out_planned(b) == 0) {
			mv_count_add(MV_COUNTER_planned_outs, 1);
		}
		atomic_fetch_sub_explicit(&b->busy, 1, memory_order_release);
	}
	st->n = 0;
}

void mv_exec_unbind(struct mv_buf *b)
{
	if (cur != NULL && b->ibuf < cur->nbufs && bound[b->ibuf] == b)
		bound[b->ibuf] = NULL;
	b->ibuf = UINT32_MAX;
}

void mv_exec_late(struct mv_buf *b)
{
	mv_count_add(MV_COUNTER_late_ins, 1);
	mv_lock();
	b->plan_waited = 1;
	if (cur != NULL && b->ibuf < cur->nbufs)
		cur->late_bytes[b->ibuf] += b->size;
	mv_unlock();
}

/* For the learner: iterations completed and launches spent off the plan, so far. */
void mv_exec_progress(uint64_t *iterations, uint64_t *diverged)
{
	*iterations = atomic_load_explicit(&iterations_done, memory_order_relaxed);
	*diverged = atomic_load_explicit(&diverged_launches, memory_order_relaxed);
}

/* Moves the late bytes per iteration buffer into late[0 .. nbufs) (added), when the plan in force
 * is for an iteration with that fingerprint. Returns whether it was. */
int mv_exec_take_late(uint64_t fingerprint, uint64_t *late, uint32_t nbufs)
{
	int r = 0;

	mv_lock();
	if (cur != NULL && cur->fingerprint == fingerprint && cur->nbufs == nbufs) {
		for (uint32_t b = 0; b < nbufs; b++) {
			late[b] += cur->late_bytes[b];
			cur->late_bytes[b] = 0;
		}
		r = 1;
	}
	mv_unlock();
	return r;
}

int mv_exec_daemon_active(void)
{
	return atomic_load(&daemon_active);
}
