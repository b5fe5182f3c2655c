/* The baseline a user would otherwise turn on: the iteration under demand paging as unified-memory
 * oversubscription does it, for replay to set beside the policies.
 *
 * Every buffer is managed memory in blocks of u->block bytes (2 MiB: the driver's migration and
 * eviction unit once its prefetcher has grown a fault to the whole block). A launch that names a
 * block not on the device stalls while the fault is serviced: a fixed cost per faulting block,
 * plus the block's copy in over the link. A block never written costs only its room, as a caching
 * allocator hands a new buffer blocks already on the device: the baseline is not charged for
 * faults a framework would not take. Room that a fault or a first touch finds full is made by
 * evicting the least recently used blocks, each copied out, on the same critical path: the driver
 * evicts inside its fault handling. Nothing is prefetched ahead of a launch, and no copy overlaps
 * a kernel.
 *
 * Fault cost: 45 us per far fault, as Ganguly et al. ("Interplay between Hardware Prefetcher and
 * Page Eviction Policy in CPU-GPU Unified Virtual Memory", ISCA 2019) calibrate their simulator
 * (66,645 cycles at 1,481 MHz), inside the 20-50 us Zheng et al. ("Towards High Performance Paged
 * Memory for GPUs", HPCA 2016) report. Kim et al. ("Batch-Aware Unified Memory Management in GPUs
 * for Irregular Workloads", ASPLOS 2020) measure eviction on the fault path, serialised with the
 * page-ins it makes room for, which is what this charges. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>

#include "policies/policy.h"

/* One block of one buffer, on the list of resident blocks in order of last use. */
struct ublock {
	uint32_t prev, next;  /* MV_TRACE_NONE at the ends; both NONE and off the list when not resident */
	uint64_t bytes;
	uint32_t used_at;     /* the last launch (counted over both passes) that named it */
	uint8_t resident;
	uint8_t written;      /* it holds data: a page-in copies it */
};

struct uvm_state {
	struct ublock *b;
	uint32_t *first;      /* per buffer: its first block */
	uint32_t head, tail;  /* least and most recently used resident blocks */
	uint64_t resident;
	uint64_t stall_ns;
	struct mv_model_result *r;
	int count;            /* the second pass: its copies and faults are the result */
};

static uint64_t copy_ns(uint64_t bytes, double bps)
{
	return bps > 0 ? (uint64_t)((double)bytes * 1e9 / bps + 0.5) : 0;
}

static void unlink_block(struct uvm_state *s, uint32_t i)
{
	struct ublock *k = &s->b[i];

	if (k->prev != MV_TRACE_NONE)
		s->b[k->prev].next = k->next;
	else
		s->head = k->next;
	if (k->next != MV_TRACE_NONE)
		s->b[k->next].prev = k->prev;
	else
		s->tail = k->prev;
	k->prev = k->next = MV_TRACE_NONE;
}

static void push_block(struct uvm_state *s, uint32_t i)
{
	struct ublock *k = &s->b[i];

	k->prev = s->tail;
	k->next = MV_TRACE_NONE;
	if (s->tail != MV_TRACE_NONE)
		s->b[s->tail].next = i;
	else
		s->head = i;
	s->tail = i;
}

/* Block i leaves the device: copied out when `copy` says its contents matter. */
static void drop_block(struct uvm_state *s, uint32_t i, int copy, const struct mv_machine *m)
{
	struct ublock *k = &s->b[i];

	unlink_block(s, i);
	k->resident = 0;
	s->resident -= k->bytes;
	if (!copy || !s->count)
		return;
	s->r->bytes_out += k->bytes;
	s->r->page_outs++;
	s->stall_ns += copy_ns(k->bytes, m->d2h_bps);
}

/* Launch `at` names block i. */
static void touch_block(struct uvm_state *s, uint32_t i, uint32_t at, uint64_t budget, const struct mv_machine *m,
			uint64_t fault_ns)
{
	struct ublock *k = &s->b[i];

	if (k->resident) {
		unlink_block(s, i);
		push_block(s, i);
		k->used_at = at;
		return;
	}
	while (s->resident + k->bytes > budget && s->head != MV_TRACE_NONE) {
		/* The launch's own blocks are the most recent: needing one of them out, it thrashes. */
		if (s->b[s->head].used_at == at) {
			s->r->over_budget = 1;
			break;
		}
		drop_block(s, s->head, 1, m);
	}
	if (s->count && k->written) {
		s->r->faults++;
		s->r->bytes_in += k->bytes;
		s->r->page_ins++;
		s->stall_ns += fault_ns + copy_ns(k->bytes, m->h2d_bps);
	}
	k->resident = 1;
	k->written = 1;
	k->used_at = at;
	s->resident += k->bytes;
	push_block(s, i);
	if (s->count && s->resident > s->r->peak)
		s->r->peak = s->resident;
}

/* The buffer's blocks are freed: off the device, with nothing to keep. */
static void free_buffer(struct uvm_state *s, uint32_t ib, const struct mv_machine *m)
{
	for (uint32_t i = s->first[ib]; i < s->first[ib + 1]; i++) {
		if (s->b[i].resident)
			drop_block(s, i, 0, m);
		s->b[i].written = 0;
	}
}

/* Between the passes, as the time model does: the buffers the iteration allocated and left alive are
 * the next one's buffers alive when it begins, which the iteration knows by other numbers. Those go
 * (their room is the others'), and the buffers alive at the start that the iteration freed come
 * back written, resident as far as the budget holds them. */
static void next_iteration(struct uvm_state *s, const struct mv_iter *it, uint64_t budget, const struct mv_machine *m)
{
	for (uint32_t ib = 0; ib < it->nbufs; ib++)
		if (it->bufs[ib].alloc_at != MV_TRACE_NONE && it->bufs[ib].free_at == MV_TRACE_NONE)
			free_buffer(s, ib, m);
	for (uint32_t ib = 0; ib < it->nbufs; ib++) {
		if (it->bufs[ib].alloc_at != MV_TRACE_NONE || it->bufs[ib].free_at == MV_TRACE_NONE)
			continue;
		for (uint32_t i = s->first[ib]; i < s->first[ib + 1]; i++) {
			struct ublock *k = &s->b[i];
			k->written = 1;
			if (!k->resident && s->resident + k->bytes <= budget) {
				k->resident = 1;
				s->resident += k->bytes;
				push_block(s, i);
			}
		}
	}
	s->r->peak = s->resident;
}

/* The buffers freed before each launch l (l = nlaunch: after the last), as frees[at[l] .. at[l + 1]).
 * Returns 0 or -ENOMEM. */
static int frees_by_launch(const struct mv_iter *it, uint32_t **at_out, uint32_t **frees_out)
{
	uint32_t *at = calloc((size_t)it->nlaunch + 2, sizeof(*at));
	uint32_t *frees = malloc(((size_t)it->nbufs + 1) * sizeof(*frees));

	if (at == NULL || frees == NULL) {
		free(at);
		free(frees);
		return -ENOMEM;
	}
	for (uint32_t ib = 0; ib < it->nbufs; ib++)
		if (it->bufs[ib].free_at <= it->nlaunch)
			at[it->bufs[ib].free_at + 1]++;
	for (uint32_t l = 0; l <= it->nlaunch; l++)
		at[l + 1] += at[l];
	for (uint32_t ib = 0, *fill = at; ib < it->nbufs; ib++)
		if (it->bufs[ib].free_at <= it->nlaunch)
			frees[fill[it->bufs[ib].free_at]++] = ib;
	/* fill[] moved each start to the next one's: shift them back. */
	for (uint32_t l = it->nlaunch + 1; l > 0; l--)
		at[l] = at[l - 1];
	at[0] = 0;
	*at_out = at;
	*frees_out = frees;
	return 0;
}

int mv_model_uvm(const struct mv_iter *it, uint64_t budget, const struct mv_machine *m, const struct mv_uvm *u,
		 struct mv_model_result *out)
{
	struct uvm_state s = {0};
	uint32_t *fat = NULL, *frees = NULL;
	uint64_t nblocks = 0;

	if (it == NULL || m == NULL || u == NULL || out == NULL || u->block == 0)
		return -EINVAL;
	*out = (struct mv_model_result){0};
	s.r = out;
	s.head = s.tail = MV_TRACE_NONE;
	s.first = malloc(((size_t)it->nbufs + 1) * sizeof(*s.first));
	if (s.first == NULL)
		return -ENOMEM;
	for (uint32_t ib = 0; ib < it->nbufs; ib++) {
		s.first[ib] = (uint32_t)nblocks;
		nblocks += (it->bufs[ib].size + u->block - 1) / u->block;
		if (nblocks >= MV_TRACE_NONE) {
			free(s.first);
			return -E2BIG;
		}
	}
	s.first[it->nbufs] = (uint32_t)nblocks;
	s.b = calloc(nblocks > 0 ? nblocks : 1, sizeof(*s.b));
	if (s.b == NULL || frees_by_launch(it, &fat, &frees) < 0) {
		free(s.b);
		free(s.first);
		return -ENOMEM;
	}
	for (uint32_t ib = 0; ib < it->nbufs; ib++) {
		uint64_t left = it->bufs[ib].size;
		for (uint32_t i = s.first[ib]; i < s.first[ib + 1]; i++) {
			s.b[i].bytes = left < u->block ? left : u->block;
			left -= s.b[i].bytes;
			s.b[i].prev = s.b[i].next = MV_TRACE_NONE;
			/* Alive when the iteration begins: it holds data, on the host until named. */
			s.b[i].written = it->bufs[ib].alloc_at == MV_TRACE_NONE;
		}
	}
	/* The first pass leaves the device as a previous iteration does; the second is measured. */
	for (s.count = 0; s.count < 2; s.count++) {
		if (s.count)
			next_iteration(&s, it, budget, m);
		s.stall_ns = 0;
		for (uint32_t l = 0; l <= it->nlaunch; l++) {
			uint32_t at = s.count * it->nlaunch + l + 1;
			for (uint32_t f = fat[l]; f < fat[l + 1]; f++)
				free_buffer(&s, frees[f], m);
			if (l == it->nlaunch)
				break;
			for (uint32_t j = 0; j < it->launch[l].nrefs; j++) {
				uint32_t ib = it->refs[it->launch[l].ref0 + j];
				for (uint32_t i = s.first[ib]; i < s.first[ib + 1]; i++)
					touch_block(&s, i, at, budget, m, u->fault_ns);
			}
			if (s.count)
				out->compute_ns += it->launch[l].dur_ns;
		}
	}
	out->stall_ns = s.stall_ns;
	out->step_ns = out->compute_ns + s.stall_ns;
	free(fat);
	free(frees);
	free(s.b);
	free(s.first);
	return 0;
}
