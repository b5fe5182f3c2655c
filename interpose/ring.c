/* The bounded lock-free ring that carries records from the app's threads to one of the library's
 * own threads: the learner's queue (learn.c) and the link's events for memvirtd (link.c). Any thread
 * claims slots with one compare-and-swap and never waits: when the ring is full the record is
 * dropped and counted. No lock, no system call, no allocation. */
#include "config.h"

#include "interpose/internal.h"

/* Gives ticket t's slot, read or abandoned, to the producer of the next lap. */
static void give_back(struct mv_ring *r, uint64_t t, memory_order order)
{
	atomic_store_explicit(&mv_ring_slot_at(r, t)->seq, mv_ring_seq_free(t) + 2, order);
}

int mv_ring_claim(struct mv_ring *r, unsigned k, uint64_t *ticket)
{
	uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);

	for (;;) {
		uint64_t last = t + k - 1;
		uint64_t free_seq = mv_ring_seq_free(last);
		uint64_t seq = atomic_load_explicit(&mv_ring_slot_at(r, last)->seq, memory_order_acquire);
		/* The consumer frees slots in ticket order: the last one free means all k are. */
		if (seq == free_seq) {
			if (atomic_compare_exchange_weak_explicit(&r->tail, &t, t + k, memory_order_relaxed,
								  memory_order_relaxed)) {
				*ticket = t;
				return 0;
			}
		} else if ((int64_t)(seq - free_seq) < 0) {
			/* The slot still holds the previous lap's record: the ring is full. Never wait. */
			atomic_fetch_add_explicit(&r->dropped, k, memory_order_relaxed);
			return -1;
		} else {
			/* Another producer took this ticket first. */
			t = atomic_load_explicit(&r->tail, memory_order_relaxed);
		}
	}
}

const uint64_t *mv_ring_peek(struct mv_ring *r)
{
	struct mv_ring_slot *s = mv_ring_slot_at(r, r->head);

	if (atomic_load_explicit(&s->seq, memory_order_acquire) != mv_ring_seq_free(r->head) + 1)
		return NULL;
	return s->w;
}

void mv_ring_release(struct mv_ring *r, unsigned k)
{
	for (unsigned j = 0; j < k; j++, r->head++)
		give_back(r, r->head, memory_order_release);
}

uint64_t mv_ring_take_dropped(struct mv_ring *r, uint64_t max)
{
	uint64_t n = atomic_load_explicit(&r->dropped, memory_order_relaxed), take;

	do
		take = MV_MIN(n, max);
	while (!atomic_compare_exchange_weak_explicit(&r->dropped, &n, n - take, memory_order_relaxed,
						      memory_order_relaxed));
	return take;
}

void mv_ring_forked(struct mv_ring *r)
{
	uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);

	/* Slots the parent's threads claimed but may never finish here are given up as read. */
	for (; r->head != t; r->head++)
		give_back(r, r->head, memory_order_relaxed);
	atomic_store_explicit(&r->dropped, 0, memory_order_relaxed);
}
