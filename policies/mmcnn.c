/* mmcnn: budget-driven planning after mmCNN. From the learned iteration it computes the bytes alive
 * at each launch; when the peak fits the budget less its headroom the plan is empty. Otherwise it
 * pages the fewest bytes it can find, preferring the buffers idle longest over the launches that are
 * over budget: any pageable buffer (not pinned, at least min_size; weights and optimizer state
 * included) is a candidate for each stretch between two consecutive uses. A stretch is worth paging
 * only if the page-out (size / d2h) can finish and the page-in (size / h2d) can start within it,
 * given the measured durations of the launches in between; it then frees the launches between the
 * page-out's end and the page-in's issue.
 *
 * Choosing: sweeping the launches in order, at each run of launches over the target it takes, among
 * the stretches covering the whole run, the smallest that removes the run's largest excess (or the
 * largest, repeatedly, when none is big enough); where no stretch covers the whole run it takes the
 * one reaching furthest. Then each chosen stretch whose removal keeps every launch within the
 * target is dropped again, largest first. Where launches are still over the budget itself (no
 * stretch can free them without a wait), the stretches run late: a buffer stays out until the
 * launch before its next use (its page-in waits for room), then page-outs start right after the
 * last use, and a buffer dead from its last use until its free is paged out without coming back;
 * a planned wait beats the reactive fault, which may evict the buffer the next launch needs.
 * Only a stretch at least as long as the buffer's copy out plus its copy in runs late: a shorter
 * one would move the buffer out and straight back in for less work than the copies take.
 * Scheduling: a page-out follows its buffer's last use
 * before the stretch (when the D2H engine falls behind, launches wait for room rather than the
 * plan giving up); page-ins are issued just in time in the order they are needed, each at the
 * latest launch from which its copy, queued behind the page-ins before it on the one H2D engine,
 * completes before the launch that needs it starts, and earlier by the launches the planner was
 * told it was late (fb). A page-in moved earlier that way holds its bytes sooner, so it is issued
 * no earlier than the profile has room for it: the budget comes first, a late page-in only
 * stalls. It costs O((launches + uses) log launches).
 *
 * A variant for auto (mv_policy_mmcnn_belady) chooses by Belady's rule instead (mm_select_belady)
 * and schedules its page-ins the same way.
 *
 * Knobs: budget, min_size, headroom (default 0.02 of the budget kept free), the machine's h2d and
 * d2h bandwidths. Choose it whenever the iteration repeats: it moves nothing when memory suffices
 * and the least it can when it does not. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "policies/policy.h"

enum { MM_FREE, MM_CHOSEN, MM_DROPPED };

/* One idle stretch of one buffer that paging could free. */
struct mm_cand {
	uint64_t size;
	uint32_t buf;
	uint32_t ua, ub;  /* the uses before and after the stretch */
	uint32_t o, q;    /* scheduled alone: launches [o, q) are freed; the page-in is issued at q */
	uint32_t aq;      /* the page-in's launch as scheduled with every chosen stretch */
	uint32_t idx;
	uint8_t state;
	uint8_t valid;    /* o < q */
	uint8_t tail;     /* from the last use to the free: paged out, never in (ub is the free) */
};

/* The planner's working state for one iteration. */
struct mm {
	const struct mv_iter *it;
	const struct mv_feedback *fb;
	uint32_t n;
	uint64_t *start;  /* n + 1: each launch's start on a stall-free compute engine, then the end */
	double h2d, d2h;
	int64_t *base;    /* per launch: bytes alive minus the target */
	int64_t *cur;     /* the same under the chosen stretches */
	int64_t *diff;    /* n + 1 */
	struct mm_cand *c;
	uint32_t nc;
	struct mm_cand **by_o; /* candidates by (o, idx) */
	uint32_t *heap, nheap;
	struct mm_cand **sel;
	uint32_t nsel;
	struct mm_cand **tmp;
	uint32_t *skip;   /* over tmp: the next entry not taken */
	int64_t *mx, *lz; /* a max segment tree with lazy adds over cur */
	uint32_t segn;    /* nodes in mx and lz */
	int64_t slack;    /* subtracted from cur: the headroom, while stretches run late only for the budget */
	int belady;       /* choose by furthest next use instead (mm_select_belady) */
};

static uint64_t mm_copy_ns(uint64_t size, double bps)
{
	if (!(bps > 0))
		return 0;
	return (uint64_t)((double)size * 1e9 / bps + 0.5);
}

/* The first launch starting at or after t (n when none). */
static uint32_t mm_first_from(const struct mm *m, uint64_t t)
{
	uint32_t lo = 0, hi = m->n, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (m->start[mid] >= t)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

/* The last launch before lim starting at or before t (MV_TRACE_NONE when none). */
static uint32_t mm_last_by(const struct mm *m, uint64_t t, uint32_t lim)
{
	uint32_t lo = 0, hi = lim, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (m->start[mid] > t)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo == 0 ? MV_TRACE_NONE : lo - 1;
}

static uint32_t mm_advance(const struct mm *m, uint32_t buf)
{
	const struct mv_feedback *fb = m->fb;

	return fb != NULL && fb->advance != NULL && buf < fb->nbufs ? fb->advance[buf] : 0;
}

/* A page-in issued at `at` for a stretch after ua, moved earlier by the feedback, never before the
 * launch after ua. */
static uint32_t mm_in_at(const struct mm *m, const struct mm_cand *c, uint32_t at)
{
	uint32_t adv = mm_advance(m, c->buf);

	if (at == MV_TRACE_NONE || at <= c->ua)
		return c->ua + 1;
	return at - c->ua - 1 > adv ? at - adv : c->ua + 1;
}

/* How far c reaches for the heap: its q, or past everything for a tail stretch when choosing by
 * next use (its buffer is never used again). */
static uint32_t mm_reach(const struct mm *m, const struct mm_cand *c)
{
	return m->belady && c->tail ? UINT32_MAX : c->q;
}

/* Heap order: furthest-reaching first, then larger, then earlier. */
static int mm_heap_before(const struct mm *m, uint32_t a, uint32_t b)
{
	const struct mm_cand *x = &m->c[a], *y = &m->c[b];

	if (mm_reach(m, x) != mm_reach(m, y))
		return mm_reach(m, x) > mm_reach(m, y);
	if (x->size != y->size)
		return x->size > y->size;
	return a < b;
}

static void mm_heap_push(struct mm *m, uint32_t v)
{
	uint32_t i = m->nheap++, up;

	m->heap[i] = v;
	while (i > 0) {
		up = (i - 1) / 2;
		if (!mm_heap_before(m, m->heap[i], m->heap[up]))
			break;
		v = m->heap[up];
		m->heap[up] = m->heap[i];
		m->heap[i] = v;
		i = up;
	}
}

static uint32_t mm_heap_pop(struct mm *m)
{
	uint32_t top = m->heap[0], i = 0, l, best, v;

	m->heap[0] = m->heap[--m->nheap];
	for (;;) {
		l = 2 * i + 1;
		best = i;
		if (l < m->nheap && mm_heap_before(m, m->heap[l], m->heap[best]))
			best = l;
		if (l + 1 < m->nheap && mm_heap_before(m, m->heap[l + 1], m->heap[best]))
			best = l + 1;
		if (best == i)
			break;
		v = m->heap[best];
		m->heap[best] = m->heap[i];
		m->heap[i] = v;
		i = best;
	}
	return top;
}

static int mm_cmp_o(const void *a, const void *b)
{
	const struct mm_cand *x = *(struct mm_cand *const *)a, *y = *(struct mm_cand *const *)b;

	if (x->o != y->o)
		return x->o < y->o ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Smaller first, then reaching further, then earlier. */
static int mm_cmp_fit(const void *a, const void *b)
{
	const struct mm_cand *x = *(struct mm_cand *const *)a, *y = *(struct mm_cand *const *)b;

	if (x->size != y->size)
		return x->size < y->size ? -1 : 1;
	if (x->q != y->q)
		return x->q > y->q ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static int mm_cmp_in(const void *a, const void *b)
{
	const struct mm_cand *x = *(struct mm_cand *const *)a, *y = *(struct mm_cand *const *)b;

	if (x->ub != y->ub)
		return x->ub < y->ub ? -1 : 1;
	if (x->buf != y->buf)
		return x->buf < y->buf ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static int mm_cmp_size_desc(const void *a, const void *b)
{
	const struct mm_cand *x = *(struct mm_cand *const *)a, *y = *(struct mm_cand *const *)b;

	if (x->size != y->size)
		return x->size > y->size ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static uint32_t mm_skip(struct mm *m, uint32_t k)
{
	uint32_t r = k, nx;

	while (m->skip[r] != r)
		r = m->skip[r];
	while (m->skip[k] != r) {
		nx = m->skip[k];
		m->skip[k] = r;
		k = nx;
	}
	return r;
}

static void mm_choose(struct mm *m, struct mm_cand *c, int64_t *red)
{
	c->state = MM_CHOSEN;
	*red += (int64_t)c->size;
	m->diff[c->q] -= (int64_t)c->size;
}

/* One sweep choosing stretches, each by its interval when scheduled alone, until m->cur fits or
 * nothing covers what is over. Returns how many it chose. */
static uint32_t mm_select(struct mm *m)
{
	uint32_t t, j = 0, r, k, nt, lo, hi, top, last, added = 0;
	int64_t red = 0, rr, e, x;
	struct mm_cand *c;

	memset(m->diff, 0, ((size_t)m->n + 1) * sizeof(*m->diff));
	m->nheap = 0;
	for (t = 0; t < m->n; t++) {
		red += m->diff[t];
		for (; j < m->nc && m->by_o[j]->o <= t; j++)
			if (m->by_o[j]->state == MM_FREE && m->by_o[j]->valid)
				mm_heap_push(m, m->by_o[j]->idx);
		if (m->cur[t] - red <= 0)
			continue;
		/* The run of launches over the target from here, and its largest excess. */
		e = 0;
		rr = red;
		for (r = t; r < m->n; r++) {
			if (r > t)
				rr += m->diff[r];
			x = m->cur[r] - rr;
			if (x <= 0)
				break;
			if (x > e)
				e = x;
		}
		/* Among the stretches covering the whole run: the smallest big enough, else the largest. */
		nt = 0;
		for (k = 0; k < m->nheap; k++) {
			c = &m->c[m->heap[k]];
			if (c->state == MM_FREE && c->q >= r)
				m->tmp[nt++] = c;
		}
		qsort(m->tmp, nt, sizeof(*m->tmp), mm_cmp_fit);
		/* m->skip[k]: the first entry from k on not yet taken (nt: none), path-compressed. */
		for (k = 0; k <= nt; k++)
			m->skip[k] = k;
		last = nt;
		while (e > 0) {
			lo = 0;
			hi = nt;
			while (lo < hi) {
				k = lo + (hi - lo) / 2;
				if ((int64_t)m->tmp[k]->size >= e)
					hi = k;
				else
					lo = k + 1;
			}
			k = mm_skip(m, lo);
			if (k == nt) {
				/* None big enough: the largest left. */
				while (last > 0 && mm_skip(m, last - 1) != last - 1)
					last--;
				if (last == 0)
					break;
				k = --last;
			}
			c = m->tmp[k];
			m->skip[k] = k + 1;
			mm_choose(m, c, &red);
			e -= (int64_t)c->size;
			added++;
		}
		/* What is still over: whatever reaches furthest. */
		while (m->cur[t] - red > 0 && m->nheap > 0) {
			top = mm_heap_pop(m);
			c = &m->c[top];
			if (c->state != MM_FREE)
				continue;
			if (c->q <= t) {
				m->nheap = 0;
				break;
			}
			mm_choose(m, c, &red);
			added++;
		}
	}
	return added;
}

/* Chooses as Belady's rule would evict: sweeping the launches in order, while a launch is over the
 * target, the stretch covering it whose buffer is used again furthest away (a buffer never used
 * again first, then the larger). Each stretch runs from the launch after its last use; pass 0 has it
 * back by the launch before its next use, pass 1 (run late) only by its next use, the page-in
 * waiting for room. Chosen stretches stay chosen across passes. */
static void mm_select_belady(struct mm *m, uint32_t pass)
{
	uint32_t t, j = 0, i, top;
	int64_t red = 0;
	struct mm_cand *c;

	memset(m->diff, 0, ((size_t)m->n + 1) * sizeof(*m->diff));
	for (i = 0; i < m->nc; i++) {
		c = &m->c[i];
		c->o = c->ua + 1;
		c->q = c->tail || pass == 1 ? c->ub : c->ub - 1;
		c->valid = c->o < c->q;
		if (c->state == MM_CHOSEN) {
			m->diff[c->o] -= (int64_t)c->size;
			m->diff[c->q] += (int64_t)c->size;
		}
	}
	qsort(m->by_o, m->nc, sizeof(*m->by_o), mm_cmp_o);
	m->nheap = 0;
	for (t = 0; t < m->n; t++) {
		red -= m->diff[t];
		for (; j < m->nc && m->by_o[j]->o <= t; j++)
			if (m->by_o[j]->state == MM_FREE && m->by_o[j]->valid)
				mm_heap_push(m, m->by_o[j]->idx);
		while (m->base[t] - m->slack - red > 0 && m->nheap > 0) {
			top = mm_heap_pop(m);
			c = &m->c[top];
			if (c->state != MM_FREE || c->q <= t)
				continue;
			c->state = MM_CHOSEN;
			red += (int64_t)c->size;
			m->diff[c->q] += (int64_t)c->size;
		}
	}
}

/* m->cur from the base and the chosen stretches' real intervals; returns its largest value. */
static int64_t mm_profile(struct mm *m)
{
	uint32_t i, t;
	int64_t run = 0, best = INT64_MIN;

	memset(m->diff, 0, ((size_t)m->n + 1) * sizeof(*m->diff));
	for (i = 0; i < m->nc; i++)
		if (m->c[i].state == MM_CHOSEN) {
			m->diff[m->c[i].o] -= (int64_t)m->c[i].size;
			m->diff[m->c[i].q] += (int64_t)m->c[i].size;
		}
	for (t = 0; t < m->n; t++) {
		run += m->diff[t];
		m->cur[t] = m->base[t] + run - m->slack;
		if (m->cur[t] > best)
			best = m->cur[t];
	}
	return best;
}

static void mm_seg_build(struct mm *m, uint32_t node, uint32_t l, uint32_t r)
{
	uint32_t mid = l + (r - l) / 2;

	m->lz[node] = 0;
	if (r - l == 1) {
		m->mx[node] = m->cur[l];
		return;
	}
	mm_seg_build(m, 2 * node, l, mid);
	mm_seg_build(m, 2 * node + 1, mid, r);
	m->mx[node] = m->mx[2 * node] > m->mx[2 * node + 1] ? m->mx[2 * node] : m->mx[2 * node + 1];
}

/* Adds v over [ql, qr) and returns the largest value there before the add (v == 0: a query). */
static int64_t mm_seg(struct mm *m, uint32_t node, uint32_t l, uint32_t r, uint32_t ql, uint32_t qr, int64_t v)
{
	uint32_t mid = l + (r - l) / 2;
	int64_t a = INT64_MIN, b = INT64_MIN;

	if (qr <= l || r <= ql)
		return INT64_MIN;
	if (ql <= l && r <= qr) {
		a = m->mx[node];
		m->mx[node] += v;
		m->lz[node] += v;
		return a;
	}
	if (m->lz[node]) {
		m->mx[2 * node] += m->lz[node];
		m->lz[2 * node] += m->lz[node];
		m->mx[2 * node + 1] += m->lz[node];
		m->lz[2 * node + 1] += m->lz[node];
		m->lz[node] = 0;
	}
	a = mm_seg(m, 2 * node, l, mid, ql, qr, v);
	b = mm_seg(m, 2 * node + 1, mid, r, ql, qr, v);
	m->mx[node] = m->mx[2 * node] > m->mx[2 * node + 1] ? m->mx[2 * node] : m->mx[2 * node + 1];
	return a > b ? a : b;
}

/* Drops, largest first, every chosen stretch without which every launch still fits. */
static void mm_prune(struct mm *m)
{
	uint32_t k;
	struct mm_cand *c;

	mm_seg_build(m, 1, 0, m->n);
	m->nsel = 0;
	for (k = 0; k < m->nc; k++)
		if (m->c[k].state == MM_CHOSEN)
			m->sel[m->nsel++] = &m->c[k];
	qsort(m->sel, m->nsel, sizeof(*m->sel), mm_cmp_size_desc);
	for (k = 0; k < m->nsel; k++) {
		c = m->sel[k];
		if (mm_seg(m, 1, 0, m->n, c->o, c->q, 0) + (int64_t)c->size > 0)
			continue;
		mm_seg(m, 1, 0, m->n, c->o, c->q, (int64_t)c->size);
		c->state = MM_DROPPED;
	}
}

/* Issues the chosen page-ins just in time on the one H2D engine: backwards from the last needed,
 * each must be done before its launch starts and before the next page-in must start; the feedback
 * moves it earlier still. A page-in issued before its stretch's end holds its bytes from there,
 * so it goes no earlier than the profile (m's segment tree, every chosen stretch freed) has room
 * for it: the budget comes first, a late page-in only stalls. */
static void mm_schedule(struct mm *m)
{
	uint32_t i, k, at, lo, hi, mid;
	uint64_t dl, nxt = UINT64_MAX, tin;
	struct mm_cand *c;

	m->nsel = 0;
	for (i = 0; i < m->nc; i++)
		if (m->c[i].state == MM_CHOSEN)
			m->sel[m->nsel++] = &m->c[i];
	qsort(m->sel, m->nsel, sizeof(*m->sel), mm_cmp_in);
	for (k = m->nsel; k-- > 0;) {
		c = m->sel[k];
		if (c->tail)
			continue;
		tin = mm_copy_ns(c->size, m->h2d);
		dl = m->start[c->ub] < nxt ? m->start[c->ub] : nxt;
		if (dl >= tin) {
			nxt = dl - tin;
			at = mm_in_at(m, c, mm_last_by(m, nxt, c->ub));
		} else {
			nxt = 0;
			at = c->ua + 1;
		}
		if (at > c->q)
			at = c->q;
		/* The earliest launch from which it fits until its stretch's end. */
		lo = at;
		hi = c->q;
		while (lo < hi) {
			mid = lo + (hi - lo) / 2;
			if (mm_seg(m, 1, 0, m->n, mid, c->q, 0) + (int64_t)c->size <= 0)
				hi = mid;
			else
				lo = mid + 1;
		}
		/* A stretch kept to its next use (mm_relax) is paged in after the launch before it at
		 * the latest, the room for it waited for. */
		if (lo >= c->ub)
			lo = c->ub - 1;
		if (lo < c->q)
			mm_seg(m, 1, 0, m->n, lo, c->q, (int64_t)c->size);
		c->aq = lo;
	}
}

/* Per-buffer use lists into m->c: one candidate per stretch between consecutive uses. */
static int mm_candidates(struct mm *m, uint64_t min_size)
{
	const struct mv_iter *it = m->it;
	struct mv_iter_uses u = { NULL, NULL };
	uint32_t *off, *use, k, b, nc = 0;
	const struct mv_iter_buf *bf;
	struct mm_cand *c;
	uint64_t tin;
	int err = -ENOMEM;

	if (mv_iter_uses_build(it, &u) < 0)
		goto out;
	off = u.off;
	use = u.use;
	for (b = 0; b < it->nbufs; b++) {
		bf = &it->bufs[b];
		if ((bf->flags & MV_IBUF_PINNED) || bf->size < min_size || bf->size > INT64_MAX / 4)
			continue;
		for (k = off[b] + 1; k < off[b + 1]; k++)
			nc += use[k] >= use[k - 1] + 2;
		nc += off[b + 1] > off[b] && bf->free_at != MV_TRACE_NONE && bf->free_at <= m->n &&
		      bf->free_at >= use[off[b + 1] - 1] + 2;
	}
	m->c = calloc((size_t)nc + 1, sizeof(*m->c));
	m->by_o = malloc(((size_t)nc + 1) * sizeof(*m->by_o));
	m->heap = malloc(((size_t)nc + 1) * sizeof(*m->heap));
	m->sel = malloc(((size_t)nc + 1) * sizeof(*m->sel));
	m->tmp = malloc(((size_t)nc + 1) * sizeof(*m->tmp));
	m->skip = malloc(((size_t)nc + 1) * sizeof(*m->skip));
	if (m->c == NULL || m->by_o == NULL || m->heap == NULL || m->sel == NULL || m->tmp == NULL ||
	    m->skip == NULL)
		goto out;
	for (b = 0; b < it->nbufs; b++) {
		bf = &it->bufs[b];
		if ((bf->flags & MV_IBUF_PINNED) || bf->size < min_size || bf->size > INT64_MAX / 4)
			continue;
		for (k = off[b] + 1; k < off[b + 1]; k++) {
			if (use[k] < use[k - 1] + 2)
				continue;
			c = &m->c[m->nc];
			c->idx = m->nc;
			c->size = bf->size;
			c->buf = b;
			c->ua = use[k - 1];
			c->ub = use[k];
			c->o = mm_first_from(m, m->start[c->ua + 1] + mm_copy_ns(c->size, m->d2h));
			tin = mm_copy_ns(c->size, m->h2d);
			c->q = mm_in_at(m, c, m->start[c->ub] >= tin ? mm_last_by(m, m->start[c->ub] - tin, c->ub)
								     : MV_TRACE_NONE);
			c->valid = c->o < c->q;
			m->by_o[m->nc] = c;
			m->nc++;
		}
		/* Dead from its last use until its free: paging it out frees the launches in between. */
		if (off[b + 1] > off[b] && bf->free_at != MV_TRACE_NONE && bf->free_at <= m->n &&
		    bf->free_at >= use[off[b + 1] - 1] + 2) {
			c = &m->c[m->nc];
			c->idx = m->nc;
			c->size = bf->size;
			c->buf = b;
			c->ua = use[off[b + 1] - 1];
			c->ub = bf->free_at;
			c->tail = 1;
			c->o = mm_first_from(m, m->start[c->ua + 1] + mm_copy_ns(c->size, m->d2h));
			c->q = c->ub;
			c->valid = c->o < c->q;
			m->by_o[m->nc] = c;
			m->nc++;
		}
	}
	qsort(m->by_o, m->nc, sizeof(*m->by_o), mm_cmp_o);
	err = 0;
out:
	mv_iter_uses_free(&u);
	return err;
}

/* Whether c's buffer can go out and come back in within the work between its two uses: its copy
 * out and its copy in, each on its own engine, take no longer than the launches in between. A
 * stretch shorter than that is never let run late: moving the buffer out and straight back in
 * would cost the copy engines more than the launches it frees, so keeping it costs less. A
 * stretch the stall-free schedule takes always passes (its page-out ends and its page-in starts
 * within it). */
static int mm_round_trip_fits(const struct mm *m, const struct mm_cand *c)
{
	return m->start[c->ub] - m->start[c->ua + 1] >= mm_copy_ns(c->size, m->d2h) + mm_copy_ns(c->size, m->h2d);
}

/* Lets stretches run late so that they cover what the stall-free schedule cannot: pass 0 keeps a
 * buffer out until its next use (the page-in waits), for the free stretches and for the chosen ones
 * whose page-in lands on a launch still over the target; pass 1 also starts the free stretches'
 * page-outs right after their last use (so does the page-out). Only a stretch whose round trip
 * fits (mm_round_trip_fits) runs late. Needs m->cur up to date. */
static void mm_relax(struct mm *m, uint32_t pass)
{
	uint32_t i, t;
	struct mm_cand *c;

	for (i = 0; i < m->nc; i++) {
		c = &m->c[i];
		if (c->tail)
			continue;
		if (c->state == MM_CHOSEN && pass == 0) {
			for (t = c->q; t < c->ub && m->cur[t] <= 0; t++)
				;
			if (t < c->ub)
				c->q = c->ub;
			continue;
		}
		if (c->state != MM_FREE || !mm_round_trip_fits(m, c))
			continue;
		if (pass == 0)
			c->q = c->ub;
		else
			c->o = c->ua + 1;
		c->valid = c->o < c->q;
	}
	for (i = 0; i < m->nc; i++)
		if (m->c[i].tail && m->c[i].state == MM_FREE && pass == 1) {
			m->c[i].o = m->c[i].ua + 1;
			m->c[i].valid = m->c[i].o < m->c[i].q;
		}
	qsort(m->by_o, m->nc, sizeof(*m->by_o), mm_cmp_o);
	mm_profile(m);
}

static void mm_release(struct mm *m)
{
	free(m->start);
	free(m->base);
	free(m->cur);
	free(m->diff);
	free(m->c);
	free(m->by_o);
	free(m->heap);
	free(m->sel);
	free(m->tmp);
	free(m->skip);
	free(m->mx);
	free(m->lz);
}

/* Allocates m's working arrays for the iteration's launches, and their start times on a stall-free
 * compute engine. */
static int mm_init(struct mm *m, const struct mv_iter *it, const struct mv_policy_params *p,
		   const struct mv_feedback *fb)
{
	uint64_t t;
	uint32_t i;

	m->it = it;
	m->fb = fb;
	m->n = it->nlaunch;
	m->h2d = p->machine.h2d_bps;
	m->d2h = p->machine.d2h_bps;
	m->start = malloc(((size_t)m->n + 1) * sizeof(*m->start));
	m->base = calloc((size_t)m->n + 1, sizeof(*m->base));
	m->cur = calloc((size_t)m->n + 1, sizeof(*m->cur));
	m->diff = calloc((size_t)m->n + 1, sizeof(*m->diff));
	m->segn = 4 * m->n + 4;
	m->mx = malloc((size_t)m->segn * sizeof(*m->mx));
	m->lz = malloc((size_t)m->segn * sizeof(*m->lz));
	if (m->start == NULL || m->base == NULL || m->cur == NULL || m->diff == NULL || m->mx == NULL ||
	    m->lz == NULL)
		return -ENOMEM;
	for (i = 0, t = 0; i < m->n; i++) {
		m->start[i] = t;
		t += m->it->launch[i].dur_ns;
	}
	m->start[m->n] = t;
	return 0;
}

/* m->base and m->cur: the bytes alive at each launch, whether used there or not, less target.
 * Returns the largest. */
static int64_t mm_alive(struct mm *m, uint64_t target)
{
	const struct mv_iter_buf *bf;
	uint32_t i, a, f;
	int64_t run, worst = INT64_MIN;

	for (i = 0; i < m->it->nbufs; i++) {
		bf = &m->it->bufs[i];
		a = bf->alloc_at == MV_TRACE_NONE ? 0 : bf->alloc_at;
		f = bf->free_at == MV_TRACE_NONE || bf->free_at > m->n ? m->n : bf->free_at;
		if (a >= f)
			continue;
		m->diff[a] += (int64_t)(bf->size > INT64_MAX / 4 ? INT64_MAX / 4 : bf->size);
		m->diff[f] -= (int64_t)(bf->size > INT64_MAX / 4 ? INT64_MAX / 4 : bf->size);
	}
	for (i = 0, run = 0; i < m->n; i++) {
		run += m->diff[i];
		m->base[i] = run - (int64_t)target;
		m->cur[i] = m->base[i];
		if (m->base[i] > worst)
			worst = m->base[i];
	}
	return worst;
}

/* Chooses the stretches and schedules their page-ins; slack is the headroom, the bytes between the
 * budget and the target. */
static void mm_plan_stretches(struct mm *m, int64_t slack)
{
	uint32_t pass;

	if (m->belady) {
		/* Run late only where a launch is over the budget itself, as below. */
		mm_select_belady(m, 0);
		m->slack = slack;
		if (mm_profile(m) > 0)
			mm_select_belady(m, 1);
		m->slack = 0;
		mm_profile(m);
		mm_prune(m);
		mm_schedule(m);
		return;
	}
	mm_select(m);
	/* What no stretch can free without a wait and is over the budget itself, not only its
	 * headroom: let the stretches run late, first to their next use (the page-in waits), then
	 * from the launch after their last one (so does the page-out). A launch that waits for a
	 * planned copy still beats a reactive fault, which may evict a buffer needed next. */
	m->slack = slack;
	for (pass = 0; pass < 2 && mm_profile(m) > 0; pass++) {
		mm_relax(m, pass);
		mm_select(m);
	}
	m->slack = 0;
	mm_profile(m);
	mm_prune(m);
	mm_schedule(m);
}

/* The scheduled stretches as plan ops: a tail stretch's page-out has no page-in. */
static int mm_emit(const struct mm *m, struct mv_plan *plan)
{
	uint32_t k;

	for (k = 0; k < m->nsel; k++) {
		const struct mm_cand *c = m->sel[k];

		if (c->state != MM_CHOSEN)
			continue;
		if (c->tail) {
			if (mv_plan_add(plan, MV_PLAN_OUT, c->ua, c->buf, MV_TRACE_NONE) < 0)
				return -ENOMEM;
			continue;
		}
		if (mv_plan_add(plan, MV_PLAN_OUT, c->ua, c->buf, c->ub) < 0 ||
		    mv_plan_add(plan, MV_PLAN_IN, c->aq, c->buf, c->ub) < 0)
			return -ENOMEM;
	}
	return 0;
}

static int mm_plan(const struct mv_iter *it, const struct mv_policy_params *p, const struct mv_feedback *fb,
		   int belady, struct mv_plan **out)
{
	struct mm m;
	struct mv_plan *plan;
	uint64_t target;
	double keep;
	int err = -ENOMEM;

	if (it == NULL || p == NULL || out == NULL)
		return -EINVAL;
	plan = mv_plan_new(it);
	if (plan == NULL)
		return -ENOMEM;
	memset(&m, 0, sizeof(m));
	m.belady = belady;
	keep = p->headroom > 0 && p->headroom < 1 ? p->headroom : 0;
	target = p->budget - (uint64_t)((double)p->budget * keep);
	/* No budget, or nothing to plan over. */
	if (p->budget == 0 || it->nlaunch == 0 || target > INT64_MAX)
		goto done;
	if (mm_init(&m, it, p, fb) < 0)
		goto fail;
	if (mm_alive(&m, target) <= 0)
		goto done;
	if (mm_candidates(&m, p->min_size) < 0)
		goto fail;
	mm_plan_stretches(&m, (int64_t)(p->budget - target));
	if (mm_emit(&m, plan) < 0)
		goto fail;
	mv_plan_sort(plan);
done:
	mm_release(&m);
	*out = plan;
	return 0;
fail:
	mm_release(&m);
	mv_plan_free(plan);
	return err;
}

static int mmcnn_plan(const struct mv_iter *it, const struct mv_policy_params *p, const struct mv_feedback *fb,
		      struct mv_plan **out)
{
	return mm_plan(it, p, fb, 0, out);
}

static int mmcnn_belady_plan(const struct mv_iter *it, const struct mv_policy_params *p,
			     const struct mv_feedback *fb, struct mv_plan **out)
{
	return mm_plan(it, p, fb, 1, out);
}

const struct mv_policy mv_policy_mmcnn_belady = {
	.name = "mmcnn-belady",
	.summary = "mmcnn's schedule with the stretches chosen by furthest next use (auto tries it)",
	.plan = mmcnn_belady_plan,
};

const struct mv_policy mv_policy_mmcnn = {
	.name = "mmcnn",
	.summary = "budget-driven: page the fewest, longest-idle buffers to fit the budget, page in just in time",
	.plan = mmcnn_plan,
};
