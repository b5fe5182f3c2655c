/* mvtrain: trains a model on the GPU through the CUDA driver API the way a framework does, then
 * checks every weight against a host reference computed with the same kernels (see mvtrain.h). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "interpose/memvirt.h"
#include "tests/simcuda/simcuda.h"
#include "tests/workloads/mvtrain.h"

#define MVT_BLOCK 256
#define MVT_MAX_GRID 65535
#define MVT_PROBE_COUNT 4

/* "rank R: " in front of what a rank prints, empty without ranks. */
static char mvt_tag[24];

const char *const mvt_kernel_names[MVK_COUNT] = {
	[MVK_FILL] = "mv_fill",
	[MVK_AXPY] = "mv_axpy",
	[MVK_RELU_FWD] = "mv_relu_fwd",
	[MVK_RELU_BWD] = "mv_relu_bwd",
	[MVK_ADD] = "mv_add",
	[MVK_SUB] = "mv_sub",
	[MVK_SGD] = "mv_sgd",
	[MVK_INIT_UNIFORM] = "mv_init_uniform",
	[MVK_GEMM] = "mv_gemm",
	[MVK_GEMM_EX] = "mv_gemm_ex",
	[MVK_GEMM_BATCHED] = "mv_gemm_batched",
	[MVK_CONV_FWD] = "mv_conv_fwd",
	[MVK_CONV_BWD] = "mv_conv_bwd",
	[MVK_POOL2_FWD] = "mv_pool2_fwd",
	[MVK_POOL2_BWD] = "mv_pool2_bwd",
	[MVK_GAP_FWD] = "mv_gap_fwd",
	[MVK_GAP_BWD] = "mv_gap_bwd",
	[MVK_HEADS_SPLIT] = "mv_heads_split",
	[MVK_HEADS_MERGE] = "mv_heads_merge",
	[MVK_PWNORM_FWD] = "mv_pwnorm_fwd",
	[MVK_PWNORM_BWD] = "mv_pwnorm_bwd",
	[MVK_LSTM_CELL_FWD] = "mv_lstm_cell_fwd",
	[MVK_LSTM_CELL_BWD] = "mv_lstm_cell_bwd",
	[MVK_CHECKSUM] = "mv_checksum",
	[MVK_GATHER_PTRS] = "mv_gather_ptrs",
};

/* ---- Errors ------------------------------------------------------------------------------------ */

static void
mvt_die_cu(CUresult r, const char *call, int code)
{
	const char *name = NULL, *str = NULL;

	if (cuGetErrorName(r, &name) != CUDA_SUCCESS || name == NULL)
		name = "unknown error";
	if (cuGetErrorString(r, &str) != CUDA_SUCCESS || str == NULL)
		str = "no description";
	fprintf(stderr, "mvtrain: %s%s failed: %s (%s)\n", mvt_tag, call, name, str);
	exit(code);
}

/* Any driver call: failure exits 1. */
void
mvt_check(CUresult r, const char *call)
{
	if (r != CUDA_SUCCESS)
		mvt_die_cu(r, call, 1);
}

/* Allocations: running out of device memory exits 3, anything else 1. The message says how much
 * was asked for on top of what the run already held. */
static void
mvt_check_alloc(CUresult r, const char *call, uint64_t bytes, uint64_t live)
{
	if (r == CUDA_SUCCESS)
		return;
	fprintf(stderr, "mvtrain: allocating %llu bytes with %llu bytes already allocated\n",
		(unsigned long long)bytes, (unsigned long long)live);
	mvt_die_cu(r, call, r == CUDA_ERROR_OUT_OF_MEMORY ? 3 : 1);
}

#define CK(fn, args) mvt_check(fn args, #fn)
#define CK_ALLOC(fn, args, bytes, live) mvt_check_alloc(fn args, #fn, bytes, live)

static void *
mvt_xmalloc(size_t n)
{
	void *p = malloc(n != 0 ? n : 1);

	if (p == NULL) {
		fprintf(stderr, "mvtrain: out of host memory (%zu bytes)\n", n);
		exit(1);
	}
	return p;
}

void *
mvt_xcalloc(size_t n, size_t size)
{
	void *p = calloc(n != 0 ? n : 1, size != 0 ? size : 1);

	if (p == NULL) {
		fprintf(stderr, "mvtrain: out of host memory (%zu items of %zu bytes)\n", n, size);
		exit(1);
	}
	return p;
}

/* ---- Memory ------------------------------------------------------------------------------------ */

static void
mvt_account(struct mvt *t, uint64_t bytes)
{
	t->live += bytes;
	if (t->live > t->peak)
		t->peak = t->live;
}

/* An allocation with the allocator --alloc names. */
static uint64_t
mvt_alloc_raw(struct mvt *t, uint64_t n)
{
	uint64_t bytes = 4 * n;
	CUdeviceptr p;

	if (t->host) {
		p = (CUdeviceptr)(uintptr_t)mvt_xmalloc(bytes);
	} else if (t->opts->alloc_async) {
		CK_ALLOC(cuMemAllocAsync, (&p, bytes, t->stream), bytes, t->live);
	} else {
		CK_ALLOC(cuMemAlloc_v2, (&p, bytes), bytes, t->live);
	}
	mvt_account(t, bytes);
	return p;
}

static void
mvt_free_raw(struct mvt *t, uint64_t addr, uint64_t n)
{
	if (t->host)
		free((void *)(uintptr_t)addr);
	else if (t->opts->alloc_async)
		CK(cuMemFreeAsync, (addr, t->stream));
	else
		CK(cuMemFree_v2, (addr));
	t->live -= 4 * n;
}

/* ---- CUDA graphs (--graphs) -------------------------------------------------------------------- */

/* Step 0 runs eagerly (the warm-up a framework runs before it captures) and records every allocation
 * of the step: its size and the pieces that allocate and free it. A buffer allocated and freed within
 * one piece is a temporary. Every other buffer gets a store, allocated outside any capture before
 * step 1 and handed out again in the same order by every later step, so that the addresses the
 * graphs name stay valid, as a graph's private pool keeps them; buffers of one size whose lives do
 * not overlap share a store. With --alloc async the temporaries are cuMemAllocAsync and
 * cuMemFreeAsync inside the capture, which makes them graph memory nodes; with --alloc sync they
 * get stores too. Step 1 captures each piece, instantiates it and launches it; later steps only
 * launch, and run everything outside pieces (inputs, loss, optimizer) eagerly on the same stores. */
enum mvt_phase { MVT_RECORD, MVT_CAPTURE, MVT_REPLAY };

/* One allocation of the step, in the order the step makes them. */
struct mvt_tape {
	uint64_t n;                     /* floats */
	int piece_alloc, piece_free;    /* -1: outside pieces; piece_free -2: never freed */
	int node;                       /* a graph memory node, else store is its buffer */
	unsigned store;
	uint64_t addr;                  /* its address in this step */
	int freed;                      /* freed in this step */
};

struct mvt_graphs {
	enum mvt_phase phase;
	int piece;                      /* the piece running, -1 outside pieces */
	unsigned begun;                 /* pieces begun in this step */
	unsigned pieces;                /* pieces of a step, counted in step 0 */
	struct mvt_tape *tape;
	unsigned ntape, captape, pos;   /* pos: the next allocation of this step */
	int *ev;                        /* step 0's allocations (i + 1) and frees (-i - 1), in order */
	unsigned nev, capev;
	uint64_t outs, ins;             /* memvirt's page-outs and page-ins before the first replay */
	uint64_t *store_addr, *store_n; /* store_n in floats */
	unsigned nstore, capstore, nodes;
	CUgraph *graph;
	CUgraphExec *exec;
};

void
mvt_grow(void **p, unsigned *cap, unsigned need, size_t size)
{
	if (need <= *cap)
		return;
	*cap = *cap != 0 ? 2 * *cap : 64;
	*p = realloc(*p, *cap * size);
	if (*p == NULL) {
		fprintf(stderr, "mvtrain: out of host memory\n");
		exit(1);
	}
}

/* A step that does not repeat step 0's allocations and pieces cannot replay graphs. */
static void
mvt_graphs_diverged(const struct mvt_graphs *g, const char *what)
{
	fprintf(stderr, "mvtrain: internal error: %s %u of this step (piece %d) differs from the "
	    "warm-up step's\n", what, g->pos, g->piece);
	exit(1);
}

/* The newest allocation of this step at addr that is not freed yet, or NULL. */
static struct mvt_tape *
mvt_tape_find(struct mvt_graphs *g, uint64_t addr)
{
	for (unsigned i = g->pos; i > 0; i--)
		if (!g->tape[i - 1].freed && g->tape[i - 1].addr == addr)
			return &g->tape[i - 1];
	return NULL;
}

static void
mvt_tape_event(struct mvt_graphs *g, int ev)
{
	mvt_grow((void **)&g->ev, &g->capev, g->nev + 1, sizeof(*g->ev));
	g->ev[g->nev++] = ev;
}

static void
mvt_tape_alloc(struct mvt_graphs *g, uint64_t addr, uint64_t n)
{
	struct mvt_tape *e;

	mvt_grow((void **)&g->tape, &g->captape, g->ntape + 1, sizeof(*g->tape));
	e = &g->tape[g->ntape];
	memset(e, 0, sizeof(*e));
	e->n = n;
	e->piece_alloc = g->piece;
	e->piece_free = -2;
	e->addr = addr;
	g->pos = ++g->ntape;
	mvt_tape_event(g, (int)g->ntape);
}

static void
mvt_tape_free(struct mvt_graphs *g, uint64_t addr, uint64_t n)
{
	struct mvt_tape *e = mvt_tape_find(g, addr);

	if (e == NULL || e->n != n)
		mvt_graphs_diverged(g, "free");
	e->freed = 1;
	e->piece_free = g->piece;
	mvt_tape_event(g, -(int)(e - g->tape) - 1);
}

/* A store of n floats free at this point of the step, or a new one. */
static unsigned
mvt_store_pick(struct mvt_graphs *g, unsigned char *busy, uint64_t n)
{
	for (unsigned s = 0; s < g->nstore; s++)
		if (!busy[s] && g->store_n[s] == n)
			return s;
	mvt_grow((void **)&g->store_n, &g->capstore, g->nstore + 1, sizeof(*g->store_n));
	g->store_n[g->nstore] = n;
	return g->nstore++;
}

/* After step 0: which allocations are memory nodes, the stores of the others, and the stores'
 * buffers, allocated here, outside any capture. */
static void
mvt_graphs_plan(struct mvt *t)
{
	struct mvt_graphs *g = t->graphs;
	unsigned char *busy = mvt_xmalloc(g->ntape);

	memset(busy, 0, g->ntape);
	for (unsigned i = 0; i < g->ntape; i++) {
		struct mvt_tape *e = &g->tape[i];

		e->node = t->opts->alloc_async && e->piece_alloc >= 0 &&
		    e->piece_alloc == e->piece_free;
		g->nodes += e->node;
	}
	for (unsigned i = 0; i < g->nev; i++) {
		struct mvt_tape *e = &g->tape[g->ev[i] > 0 ? g->ev[i] - 1 : -g->ev[i] - 1];

		if (e->node)
			continue;
		if (g->ev[i] > 0) {
			e->store = mvt_store_pick(g, busy, e->n);
			busy[e->store] = 1;
		} else {
			busy[e->store] = 0;
		}
	}
	free(busy);
	g->store_addr = mvt_xmalloc(g->nstore * sizeof(*g->store_addr));
	for (unsigned s = 0; s < g->nstore; s++)
		g->store_addr[s] = mvt_alloc_raw(t, g->store_n[s]);
	g->graph = mvt_xcalloc(g->pieces + 1, sizeof(*g->graph));
	g->exec = mvt_xcalloc(g->pieces + 1, sizeof(*g->exec));
}

static uint64_t
mvt_graphs_alloc(struct mvt *t, uint64_t n)
{
	struct mvt_graphs *g = t->graphs;
	struct mvt_tape *e;
	CUdeviceptr p;

	if (g->pos >= g->ntape || g->tape[g->pos].n != n || g->tape[g->pos].piece_alloc != g->piece)
		mvt_graphs_diverged(g, "allocation");
	e = &g->tape[g->pos++];
	e->freed = 0;
	if (!e->node) {
		e->addr = g->store_addr[e->store];
		return e->addr;
	}
	/* A replay's memory node has the address its capture gave. */
	if (g->phase == MVT_CAPTURE) {
		CK_ALLOC(cuMemAllocAsync, (&p, 4 * n, t->stream), 4 * n, t->live);
		e->addr = p;
	}
	mvt_account(t, 4 * n);
	return e->addr;
}

static void
mvt_graphs_free(struct mvt *t, uint64_t addr, uint64_t n)
{
	struct mvt_graphs *g = t->graphs;
	struct mvt_tape *e = mvt_tape_find(g, addr);

	if (e == NULL || e->n != n || e->piece_free != g->piece)
		mvt_graphs_diverged(g, "free");
	e->freed = 1;
	if (!e->node)
		return;
	if (g->phase == MVT_CAPTURE)
		CK(cuMemFreeAsync, (addr, t->stream));
	t->live -= 4 * n;
}

int
mvt_graphs_on(const struct mvt *t)
{
	return t->opts->graphs;
}

void
mvt_piece_begin(struct mvt *t)
{
	struct mvt_graphs *g = t->graphs;

	if (g == NULL)
		return;
	if (g->piece >= 0)
		mvt_graphs_diverged(g, "nested piece");
	g->piece = (int)g->begun++;
	if (g->phase != MVT_RECORD && g->begun > g->pieces)
		mvt_graphs_diverged(g, "piece");
	if (g->phase == MVT_CAPTURE)
		CK(cuStreamBeginCapture_v2, (t->stream, t->opts->capture_mode));
	else if (g->phase == MVT_REPLAY)
		CK(cuGraphLaunch, (g->exec[g->piece], t->stream));
}

void
mvt_piece_end(struct mvt *t)
{
	struct mvt_graphs *g = t->graphs;

	if (g == NULL)
		return;
	if (g->phase == MVT_CAPTURE) {
		CK(cuStreamEndCapture, (t->stream, &g->graph[g->piece]));
		CK(cuGraphInstantiateWithFlags, (&g->exec[g->piece], g->graph[g->piece], 0));
		CK(cuGraphLaunch, (g->exec[g->piece], t->stream));
	}
	g->piece = -1;
}

/* memvirt's page-outs and page-ins so far, when the program runs under it. */
static int
mvt_paged(uint64_t *outs, uint64_t *ins)
{
	memvirt_counters_fn fn = (memvirt_counters_fn)dlsym(RTLD_DEFAULT, MEMVIRT_COUNTERS);
	struct memvirt_counters c;

	if (fn == NULL)
		return 0;
	fn(&c);
	*outs = c.page_outs;
	*ins = c.page_ins;
	return 1;
}

/* Before step s: step 0 records, step 1 captures, later steps replay. */
static void
mvt_graphs_step(struct mvt *t, unsigned s)
{
	struct mvt_graphs *g = t->graphs;

	if (s == 0) {
		g = t->graphs = mvt_xcalloc(1, sizeof(*g));
		g->phase = MVT_RECORD;
	} else if (s == 1) {
		mvt_graphs_plan(t);
		g->phase = MVT_CAPTURE;
	} else {
		/* What the replays page is what shows that graphs page. */
		if (g->phase != MVT_REPLAY) {
			CK(cuStreamSynchronize, (t->stream));
			mvt_paged(&g->outs, &g->ins);
		}
		g->phase = MVT_REPLAY;
	}
	g->piece = -1;
	g->begun = 0;
	g->pos = 0;
}

/* After a step: it made step 0's allocations, frees and pieces, all of them. */
static void
mvt_graphs_step_end(struct mvt *t)
{
	struct mvt_graphs *g = t->graphs;

	if (g->piece >= 0)
		mvt_graphs_diverged(g, "unended piece");
	if (g->phase == MVT_RECORD) {
		g->pieces = g->begun;
		return;
	}
	if (g->pos != g->ntape || g->begun != g->pieces)
		mvt_graphs_diverged(g, "end");
	for (unsigned i = 0; i < g->ntape; i++)
		if (g->tape[i].freed != (g->tape[i].piece_free != -2))
			mvt_graphs_diverged(g, "free at the end");
}

/* What the graphs were, and what memvirt paged while they replayed. */
static void
mvt_graphs_report(struct mvt *t)
{
	struct mvt_graphs *g = t->graphs;
	uint64_t outs, ins;

	printf("%sgraphs: %u pieces, %u buffers, %u memory nodes\n", mvt_tag, g->pieces, g->nstore,
	    g->nodes);
	if (g->phase == MVT_REPLAY && mvt_paged(&outs, &ins))
		printf("%sgraphs: the replayed steps paged out %" PRIu64 " and in %" PRIu64 " buffers\n",
		    mvt_tag, outs - g->outs, ins - g->ins);
}

/* The graphs, the execs and the stores. */
static void
mvt_graphs_destroy(struct mvt *t)
{
	struct mvt_graphs *g = t->graphs;

	for (unsigned p = 0; g->exec != NULL && p < g->pieces; p++) {
		if (g->exec[p] != NULL)
			CK(cuGraphExecDestroy, (g->exec[p]));
		if (g->graph[p] != NULL)
			CK(cuGraphDestroy, (g->graph[p]));
	}
	for (unsigned s = 0; g->store_addr != NULL && s < g->nstore; s++)
		mvt_free_raw(t, g->store_addr[s], g->store_n[s]);
	free(g->tape);
	free(g->ev);
	free(g->store_addr);
	free(g->store_n);
	free(g->graph);
	free(g->exec);
	free(g);
	t->graphs = NULL;
}

/* ---- The interface used by models.c ------------------------------------------------------------ */

uint64_t
mvt_alloc(struct mvt *t, uint64_t n)
{
	uint64_t p;

	if (t->graphs != NULL && t->graphs->phase != MVT_RECORD)
		return mvt_graphs_alloc(t, n);
	p = mvt_alloc_raw(t, n);
	if (t->graphs != NULL)
		mvt_tape_alloc(t->graphs, p, n);
	return p;
}

void
mvt_free(struct mvt *t, uint64_t addr, uint64_t n)
{
	if (t->graphs != NULL && t->graphs->phase != MVT_RECORD) {
		mvt_graphs_free(t, addr, n);
		return;
	}
	if (t->graphs != NULL)
		mvt_tape_free(t->graphs, addr, n);
	mvt_free_raw(t, addr, n);
}

/* Weights and the probe live for the whole run: always the synchronous allocator. */
uint64_t
mvt_alloc_persistent(struct mvt *t, uint64_t bytes)
{
	CUdeviceptr p;

	if (t->host) {
		p = (CUdeviceptr)(uintptr_t)mvt_xmalloc(bytes);
	} else {
		CK_ALLOC(cuMemAlloc_v2, (&p, bytes), bytes, t->live);
	}
	mvt_account(t, bytes);
	return p;
}

void
mvt_free_persistent(struct mvt *t, uint64_t addr, uint64_t bytes)
{
	if (t->host)
		free((void *)(uintptr_t)addr);
	else
		CK(cuMemFree_v2, (addr));
	t->live -= bytes;
}

void
mvt_launch(struct mvt *t, enum mvt_kid k, uint64_t work, void **args)
{
	uint64_t grid = (work + MVT_BLOCK - 1) / MVT_BLOCK;

	if (t->host) {
		if (t->desc[k]->run(args, NULL) != 0) {
			fprintf(stderr, "mvtrain: host kernel %s failed\n", mvt_kernel_names[k]);
			exit(1);
		}
		return;
	}
	/* A replayed piece's kernels are in its graph. */
	if (t->graphs != NULL && t->graphs->phase == MVT_REPLAY && t->graphs->piece >= 0)
		return;
	if (grid < 1)
		grid = 1;
	if (grid > MVT_MAX_GRID)
		grid = MVT_MAX_GRID;
	CK(cuLaunchKernel, (t->fn[k], (unsigned)grid, 1, 1, MVT_BLOCK, 1, 1, 0, t->stream, args, NULL));
}

unsigned
mvt_weight_new(struct mvt *t, uint64_t n, float scale)
{
	uint64_t seed = 0x6d76747261696eull + t->nw;
	struct mvt_weight *w;
	void *args[4];

	mvt_grow((void **)&t->w, &t->capw, t->nw + 1, sizeof(*t->w));
	w = &t->w[t->nw];
	w->n = n;
	w->addr = mvt_alloc_persistent(t, 4 * n);
	args[0] = &w->addr;
	args[1] = &w->n;
	args[2] = &seed;
	args[3] = &scale;
	mvt_launch(t, MVK_INIT_UNIFORM, n, args);
	return t->nw++;
}

/* A 64-bit LCG per (step, which, rank), like a data loader's seeded shuffle. */
static void
mvt_fill_batch(float *p, uint64_t n, unsigned step, unsigned which, unsigned rank)
{
	uint64_t s = 0x9e3779b97f4a7c15ull * (2ull * step + which + 1) ^ 0xd1b54a32d192ed03ull * rank;

	for (uint64_t i = 0; i < n; i++) {
		s = s * 6364136223846793005ull + 1442695040888963407ull;
		p[i] = (float)(s >> 40) * (2.0f / 16777216.0f) - 1.0f;
	}
}

uint64_t
mvt_input(struct mvt *t, unsigned step, unsigned which, uint64_t n)
{
	uint64_t d;

	/* The staging buffers are pageable host memory, which a capture cannot copy from: inputs are
	 * refreshed between the graphs. */
	if (t->graphs != NULL && t->graphs->piece >= 0) {
		fprintf(stderr, "mvtrain: internal error: an input inside piece %d\n", t->graphs->piece);
		exit(1);
	}
	d = mvt_alloc(t, n);

	/* The previous step's copy has completed: each step ends with a synchronisation. */
	if (t->stage_n[which] < n) {
		free(t->stage[which]);
		t->stage[which] = mvt_xcalloc(n, 4);
		t->stage_n[which] = n;
	}
	/* Without backing bytes the contents do not matter; skipping them keeps full size fast. */
	if (!t->opts->model_only)
		mvt_fill_batch(t->stage[which], n, step, which, t->rank);
	if (t->host)
		memcpy((void *)(uintptr_t)d, t->stage[which], 4 * n);
	else
		CK(cuMemcpyHtoDAsync_v2, (d, t->stage[which], 4 * n, t->stream));
	return d;
}

void
mvt_sgd_step(struct mvt *t, const uint64_t *grads)
{
	uint32_t count = t->nw < MVT_PROBE_COUNT ? t->nw : MVT_PROBE_COUNT;
	uint64_t n = t->probe_n, table;
	float lr = t->lr;

	if (t->ranks != NULL)
		mvt_ranks_allreduce(t, grads);
	/* A gradient probe: sum the first few gradients through a pointer table in device memory. */
	for (uint32_t j = 0; j < count; j++)
		t->ptrtab_host[j] = grads[j];
	table = mvt_alloc(t, count * 2);
	if (t->host)
		memcpy((void *)(uintptr_t)table, t->ptrtab_host, 8 * count);
	else
		CK(cuMemcpyHtoDAsync_v2, (table, t->ptrtab_host, 8 * count, t->stream));
	{
		void *args[] = { &t->probe, &table, &count, &n };
		mvt_launch(t, MVK_GATHER_PTRS, n, args);
	}
	mvt_free(t, table, count * 2);

	for (unsigned i = 0; i < t->nw; i++) {
		void *args[] = { &t->w[i].addr, (void *)&grads[i], &lr, &t->w[i].n };

		if (grads[i] == 0) {
			fprintf(stderr, "mvtrain: internal error: weight %u has no gradient\n", i);
			exit(1);
		}
		mvt_launch(t, MVK_SGD, t->w[i].n, args);
	}
	for (unsigned i = 0; i < t->nw; i++)
		mvt_free(t, grads[i], t->w[i].n);
}

/* The probe's output: as long as the shortest of the gradients it sums, allocated with the weights. */
static void
mvt_probe_alloc(struct mvt *t)
{
	uint64_t n = UINT64_MAX;

	for (unsigned j = 0; j < t->nw && j < MVT_PROBE_COUNT; j++)
		if (t->w[j].n < n)
			n = t->w[j].n;
	t->probe_n = n;
	t->probe = mvt_alloc_persistent(t, 4 * n);
}

/* ---- Options ----------------------------------------------------------------------------------- */

static void
mvt_usage(FILE *f)
{
	fprintf(f,
	    "usage: mvtrain [options]\n"
	    "  --model vgg16|resnet50|transformer|lstm   model to train (default vgg16)\n"
	    "  --batch N            batch size (default: the model's)\n"
	    "  --scale F            multiply every dimension by F, 0 < F <= 1 (default 1)\n"
	    "  --steps N            training steps (default 3)\n"
	    "  --seq N              sequence length (transformer) or time steps (lstm)\n"
	    "  --model-only         run on the simulated driver without backing bytes\n"
	    "  --alloc sync|async   cuMemAlloc or cuMemAllocAsync for activations (default sync)\n"
	    "  --stream default|legacy   a created stream or the NULL stream (default default)\n"
	    "  --module FILE        load kernels from a cubin/fatbin instead of the built-in image\n"
	    "  --corrupt-byte OFF   flip byte OFF of the first weight before the checksum\n"
	    "  --reshape-at STEP    from step STEP on, train with twice the batch (a job whose shape changes)\n"
	    "  --hold-at STEP       before step STEP, wait until the file of --hold-file exists (at most\n"
	    "                       600 s), so that a test can act while the job is linked and idle;\n"
	    "                       up to 4 times, the K-th from the second on waiting for FILE.K\n"
	    "  --hold-file FILE     the file --hold-at waits for\n"
	    "  --graphs[=MODE]      run the first step eagerly, then capture each layer's forward and each\n"
	    "                       layer's backward into a graph of its own (MODE thread-local, the\n"
	    "                       default, global or relaxed), instantiate each once and replay them\n"
	    "                       every later step. Piecewise graphs, as torch.compile and vLLM use\n"
	    "                       them: one graph of a whole step names the whole working set, so it\n"
	    "                       could not page below the step's peak. Inputs are copied into fixed\n"
	    "                       buffers between graphs; with --alloc async a piece's temporaries are\n"
	    "                       allocated inside the capture (graph memory nodes)\n"
	    "  --ranks N            train data-parallel in N processes (at most 16), as torchrun does:\n"
	    "                       rank R drives device R modulo the device count and reads its own\n"
	    "                       shard of each batch, and the ranks average their gradients every\n"
	    "                       step through buffers shared with cuIpcGetMemHandle. Each rank prints\n"
	    "                       its lines after \"rank R: \"; the job then prints each step's slowest\n"
	    "                       rank, the largest peak, and the checksum all ranks agree on\n"
	    "  --help               print this and exit\n");
}

static void
mvt_bad_value(const char *opt, const char *val, const char *want)
{
	fprintf(stderr, "mvtrain: invalid %s value '%s' (expected %s)\n", opt, val, want);
	exit(2);
}

static unsigned long long
mvt_parse_uint(const char *opt, const char *val, unsigned long long min, unsigned long long max)
{
	char *end;
	unsigned long long v;

	errno = 0;
	if (val[0] < '0' || val[0] > '9')
		goto bad;
	v = strtoull(val, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		goto bad;
	return v;
bad:
	{
		char want[96];

		snprintf(want, sizeof(want), "an integer from %llu to %llu", min, max);
		mvt_bad_value(opt, val, want);
	}
	return 0;
}

static const struct mvt_model *
mvt_model_find(const char *name)
{
	for (const struct mvt_model *m = mvt_models; m->name != NULL; m++)
		if (strcmp(m->name, name) == 0)
			return m;
	return NULL;
}

static CUstreamCaptureMode
mvt_parse_capture_mode(const char *val)
{
	if (val == NULL || strcmp(val, "thread-local") == 0)
		return CU_STREAM_CAPTURE_MODE_THREAD_LOCAL;
	if (strcmp(val, "global") == 0)
		return CU_STREAM_CAPTURE_MODE_GLOBAL;
	if (strcmp(val, "relaxed") == 0)
		return CU_STREAM_CAPTURE_MODE_RELAXED;
	mvt_bad_value("--graphs", val, "thread-local, global or relaxed");
	return CU_STREAM_CAPTURE_MODE_THREAD_LOCAL;
}

static void
mvt_parse(int argc, char **argv, struct mvt_opts *o)
{
	enum { O_MODEL = 256, O_BATCH, O_SCALE, O_STEPS, O_SEQ, O_MODEL_ONLY, O_ALLOC, O_STREAM,
		O_MODULE, O_CORRUPT, O_RESHAPE, O_HOLD_AT, O_HOLD_FILE, O_GRAPHS, O_RANKS, O_HELP };
	static const struct option longopts[] = {
		{ "model", required_argument, NULL, O_MODEL },
		{ "batch", required_argument, NULL, O_BATCH },
		{ "scale", required_argument, NULL, O_SCALE },
		{ "steps", required_argument, NULL, O_STEPS },
		{ "seq", required_argument, NULL, O_SEQ },
		{ "model-only", no_argument, NULL, O_MODEL_ONLY },
		{ "alloc", required_argument, NULL, O_ALLOC },
		{ "stream", required_argument, NULL, O_STREAM },
		{ "module", required_argument, NULL, O_MODULE },
		{ "corrupt-byte", required_argument, NULL, O_CORRUPT },
		{ "reshape-at", required_argument, NULL, O_RESHAPE },
		{ "hold-at", required_argument, NULL, O_HOLD_AT },
		{ "hold-file", required_argument, NULL, O_HOLD_FILE },
		{ "graphs", optional_argument, NULL, O_GRAPHS },
		{ "ranks", required_argument, NULL, O_RANKS },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	memset(o, 0, sizeof(*o));
	o->model = "vgg16";
	o->scale = 1.0;
	o->steps = 3;
	o->corrupt = -1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case O_MODEL:
			if (mvt_model_find(optarg) == NULL)
				mvt_bad_value("--model", optarg, "vgg16, resnet50, transformer or lstm");
			o->model = optarg;
			break;
		case O_BATCH:
			o->batch = (unsigned)mvt_parse_uint("--batch", optarg, 1, 1u << 20);
			break;
		case O_SCALE: {
			char *end;

			errno = 0;
			o->scale = strtod(optarg, &end);
			if (errno != 0 || end == optarg || *end != '\0' || !(o->scale > 0.0) ||
			    o->scale > 1.0)
				mvt_bad_value("--scale", optarg, "a number with 0 < F <= 1");
			break;
		}
		case O_STEPS:
			o->steps = (unsigned)mvt_parse_uint("--steps", optarg, 1, 100000);
			break;
		case O_SEQ:
			o->seq = (unsigned)mvt_parse_uint("--seq", optarg, 1, 1u << 20);
			break;
		case O_MODEL_ONLY:
			o->model_only = 1;
			break;
		case O_ALLOC:
			if (strcmp(optarg, "sync") == 0)
				o->alloc_async = 0;
			else if (strcmp(optarg, "async") == 0)
				o->alloc_async = 1;
			else
				mvt_bad_value("--alloc", optarg, "sync or async");
			break;
		case O_STREAM:
			if (strcmp(optarg, "default") == 0)
				o->stream_legacy = 0;
			else if (strcmp(optarg, "legacy") == 0)
				o->stream_legacy = 1;
			else
				mvt_bad_value("--stream", optarg, "default or legacy");
			break;
		case O_MODULE:
			o->module = optarg;
			break;
		case O_CORRUPT:
			o->corrupt = (int64_t)mvt_parse_uint("--corrupt-byte", optarg, 0, INT64_MAX);
			break;
		case O_RESHAPE:
			o->reshape_at = (unsigned)mvt_parse_uint("--reshape-at", optarg, 1, 100000);
			break;
		case O_HOLD_AT:
			if (o->nholds == MVT_MAX_HOLDS) {
				fprintf(stderr, "mvtrain: --hold-at %s: at most %d holds\n", optarg, MVT_MAX_HOLDS);
				exit(2);
			}
			o->hold_at[o->nholds++] = (unsigned)mvt_parse_uint("--hold-at", optarg, 1, 100000);
			break;
		case O_HOLD_FILE:
			o->hold_file = optarg;
			break;
		case O_GRAPHS:
			o->graphs = 1;
			o->capture_mode = mvt_parse_capture_mode(optarg);
			break;
		case O_RANKS:
			o->ranks = (unsigned)mvt_parse_uint("--ranks", optarg, 1, MVT_MAX_RANKS);
			break;
		case O_HELP:
			mvt_usage(stdout);
			exit(0);
		default:
			fprintf(stderr, "mvtrain: try 'mvtrain --help'\n");
			exit(2);
		}
	}
	if (optind < argc) {
		fprintf(stderr, "mvtrain: unexpected argument '%s'\n", argv[optind]);
		exit(2);
	}
	if ((o->nholds != 0) != (o->hold_file != NULL)) {
		fprintf(stderr, "mvtrain: --hold-at and --hold-file go together\n");
		exit(2);
	}
	/* A capture needs a stream of its own, and a graph replays one shape. */
	if (o->graphs && (o->stream_legacy || o->reshape_at != 0)) {
		fprintf(stderr, "mvtrain: --graphs cannot go with %s\n",
		    o->stream_legacy ? "--stream legacy" : "--reshape-at");
		exit(2);
	}
}

/* Waits, with the device idle, until o->hold_file exists (hold k from 0; from the second on, the
 * file with ".K" after it, K = k + 1): the test that made the job hold acts meanwhile (and says so
 * by creating the file). A test that never does gives up after 600 s or more, a bound generous
 * enough for a loaded machine. */
static void
mvt_hold(const struct mvt_opts *o, unsigned k, unsigned step)
{
	struct timespec pause = { 0, 10 * 1000 * 1000 };
	char file[4096];

	if (k == 0)
		snprintf(file, sizeof(file), "%s", o->hold_file);
	else
		snprintf(file, sizeof(file), "%s.%u", o->hold_file, k + 1);
	fprintf(stderr, "mvtrain: holding before step %u until %s exists\n", step, file);
	for (unsigned i = 0; access(file, F_OK) != 0; i++) {
		if (i == 60000) {
			fprintf(stderr, "mvtrain: %s did not appear within 600 s\n", file);
			exit(3);
		}
		nanosleep(&pause, NULL);
	}
	fprintf(stderr, "mvtrain: going on with step %u\n", step);
}

/* ---- Setup, checksums and the run -------------------------------------------------------------- */

static void *
mvt_read_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long len;

	if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) != 0) {
		fprintf(stderr, "mvtrain: cannot read module %s: %s\n", path, strerror(errno));
		exit(2);
	}
	buf = mvt_xmalloc((size_t)len + 1);
	if (fread(buf, 1, (size_t)len, f) != (size_t)len) {
		fprintf(stderr, "mvtrain: cannot read module %s\n", path);
		exit(2);
	}
	buf[len] = '\0';
	fclose(f);
	return buf;
}

/* Checksums every weight and the probe into sums[0..nw]; returns their combination. */
static uint64_t
mvt_checksums(struct mvt *t, uint64_t *sums)
{
	unsigned n = t->nw + 1;
	uint64_t out = mvt_alloc_persistent(t, 8ull * n), h = 0xcbf29ce484222325ull;

	for (unsigned i = 0; i < n; i++) {
		uint64_t slot = out + 8ull * i;
		uint64_t addr = i < t->nw ? t->w[i].addr : t->probe;
		uint64_t bytes = 4 * (i < t->nw ? t->w[i].n : t->probe_n);
		void *args[] = { &slot, &addr, &bytes };

		mvt_launch(t, MVK_CHECKSUM, 1, args);
	}
	if (t->host) {
		memcpy(sums, (void *)(uintptr_t)out, 8ull * n);
	} else {
		CK(cuStreamSynchronize, (t->stream));
		CK(cuMemcpyDtoH_v2, (sums, out, 8ull * n));
	}
	mvt_free_persistent(t, out, 8ull * n);
	for (unsigned i = 0; i < n; i++)
		h = (h ^ sums[i]) * 0x100000001b3ull;
	return h;
}

/* Frees the weights, the probe and the staging buffers. */
static void
mvt_release(struct mvt *t, const struct mvt_model *m)
{
	if (t->graphs != NULL)
		mvt_graphs_destroy(t);
	for (unsigned i = 0; i < t->nw; i++)
		mvt_free_persistent(t, t->w[i].addr, 4 * t->w[i].n);
	if (t->probe != 0)
		mvt_free_persistent(t, t->probe, 4 * t->probe_n);
	m->destroy(t);
	free(t->w);
	if (t->live != 0)
		fprintf(stderr, "mvtrain: warning: %" PRIu64 " bytes still allocated at the end\n",
		    t->live);
	free(t->stage[0]);
	free(t->stage[1]);
}

static void
mvt_human(uint64_t bytes, char *buf, size_t len)
{
	static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)bytes;
	unsigned u = 0;

	while (v >= 1024.0 && u + 1 < sizeof(unit) / sizeof(unit[0])) {
		v /= 1024.0;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%" PRIu64 " B", bytes);
	else
		snprintf(buf, len, "%.1f %s", v, unit[u]);
}

static int
mvt_cmp_float(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;

	return x < y ? -1 : x > y;
}

void
mvt_print_peak(uint64_t bytes)
{
	char human[32];

	mvt_human(bytes, human, sizeof(human));
	printf("%speak device bytes %" PRIu64 " (%s)\n", mvt_tag, bytes, human);
}

double
mvt_median(const float *times, unsigned n)
{
	float *sorted = mvt_xmalloc(n * sizeof(*sorted));
	double median;

	memcpy(sorted, times, n * sizeof(*sorted));
	qsort(sorted, n, sizeof(*sorted), mvt_cmp_float);
	median = n % 2 ? sorted[n / 2] : ((double)sorted[n / 2 - 1] + sorted[n / 2]) / 2.0;
	free(sorted);
	return median;
}

/* Flips one byte of the first weight on the device, through the host. */
static void
mvt_corrupt(struct mvt *t, int64_t offset)
{
	uint64_t bytes = 4 * t->w[0].n;
	unsigned char *buf;

	if ((uint64_t)offset >= bytes) {
		fprintf(stderr, "mvtrain: invalid --corrupt-byte value '%" PRId64 "' (the first weight "
		    "has %" PRIu64 " bytes)\n", offset, bytes);
		exit(2);
	}
	buf = mvt_xmalloc(bytes);
	CK(cuStreamSynchronize, (t->stream));
	CK(cuMemcpyDtoH_v2, (buf, t->w[0].addr, bytes));
	buf[offset] ^= 0xff;
	CK(cuMemcpyHtoD_v2, (t->w[0].addr, buf, bytes));
	free(buf);
}

int
main(int argc, char **argv)
{
	struct mvt_opts o;
	const struct mvt_model *m;
	struct mvt dev, host;
	CUdevice device;
	CUcontext ctx;
	CUmodule mod;
	CUevent ev_start, ev_end;
	simcuda_model_only_fn model_only_fn;
	void *image = NULL;
	float *times;
	uint64_t *dsums, *hsums, dsum, hsum;
	struct mvt_ranks *ranks = NULL;
	int model_only, ndev = 1;

	mvt_parse(argc, argv, &o);
	m = mvt_model_find(o.model);
	if (o.module != NULL)
		image = mvt_read_file(o.module);
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("mvtrain: model %s batch %u scale %g steps %u\n", m->name,
	    o.batch != 0 ? o.batch : m->batch, o.scale, o.steps);

	/* The simulated driver reads its mode when it initialises. */
	if (o.model_only && setenv("SIMCUDA_MODEL_ONLY", "1", 1) != 0) {
		fprintf(stderr, "mvtrain: setenv: %s\n", strerror(errno));
		return 1;
	}
	/* The ranks start before any driver call, as a launcher's processes do. */
	if (o.ranks != 0) {
		ranks = mvt_ranks_fork(o.ranks, o.steps);
		snprintf(mvt_tag, sizeof(mvt_tag), "rank %u: ", mvt_ranks_rank(ranks));
	}
	CK(cuInit, (0));
	CK(cuDeviceGetCount, (&ndev));
	CK(cuDeviceGet, (&device, ranks != NULL ? (int)(mvt_ranks_rank(ranks) % (unsigned)ndev) : 0));
	if (ranks != NULL)
		printf("%sdevice %d of %d\n", mvt_tag, (int)device, ndev);
	CK(cuDevicePrimaryCtxRetain, (&ctx, device));
	CK(cuCtxSetCurrent, (ctx));
	model_only_fn = (simcuda_model_only_fn)dlsym(RTLD_DEFAULT, SIMCUDA_MODEL_ONLY);
	model_only = model_only_fn != NULL && model_only_fn() != 0;
	if (o.model_only && !model_only) {
		fprintf(stderr, "mvtrain: --model-only needs the simulated driver in model-only mode\n");
		return 2;
	}
	o.model_only = model_only;

	if (image != NULL) {
		CK(cuModuleLoadData, (&mod, image));
	} else {
		CK(cuModuleLoadData, (&mod, "simcuda"));
	}

	memset(&dev, 0, sizeof(dev));
	dev.opts = &o;
	dev.batch = o.batch != 0 ? o.batch : m->batch;
	dev.rank = ranks != NULL ? mvt_ranks_rank(ranks) : 0;
	for (unsigned k = 0; k < MVK_COUNT; k++) {
		CK(cuModuleGetFunction, (&dev.fn[k], mod, mvt_kernel_names[k]));
		dev.desc[k] = mv_kernel_find(mvt_kernel_names[k]);
		if (dev.desc[k] == NULL) {
			fprintf(stderr, "mvtrain: kernel %s missing from kernels.c\n", mvt_kernel_names[k]);
			return 1;
		}
	}
	if (o.stream_legacy)
		dev.stream = NULL;
	else
		CK(cuStreamCreate, (&dev.stream, CU_STREAM_DEFAULT));
	CK(cuEventCreate, (&ev_start, CU_EVENT_DEFAULT));
	CK(cuEventCreate, (&ev_end, CU_EVENT_DEFAULT));

	/* Training on the device. */
	times = mvt_xmalloc(o.steps * sizeof(*times));
	m->build(&dev);
	mvt_probe_alloc(&dev);
	if (ranks != NULL)
		mvt_ranks_attach(&dev, ranks);
	for (unsigned s = 0; s < o.steps; s++) {
		if (o.reshape_at != 0 && s == o.reshape_at)
			dev.batch *= 2;
		for (unsigned k = 0; k < o.nholds; k++)
			if (s == o.hold_at[k])
				mvt_hold(&o, k, s);
		if (o.graphs)
			mvt_graphs_step(&dev, s);
		CK(cuEventRecord, (ev_start, dev.stream));
		m->step(&dev, s);
		CK(cuEventRecord, (ev_end, dev.stream));
		if (o.graphs)
			mvt_graphs_step_end(&dev);
		CK(cuEventSynchronize, (ev_end));
		CK(cuEventElapsedTime_v2, (&times[s], ev_start, ev_end));
		printf("%sstep %u time %.3f ms\n", mvt_tag, s, times[s]);
	}
	mvt_ranks_detach(&dev);
	if (dev.graphs != NULL)
		mvt_graphs_report(&dev);
	if (o.corrupt >= 0 && !model_only)
		mvt_corrupt(&dev, o.corrupt);
	dsums = mvt_xmalloc((dev.nw + 1) * sizeof(*dsums));
	dsum = mvt_checksums(&dev, dsums);
	CK(cuStreamSynchronize, (dev.stream));

	mvt_print_peak(dev.peak);
	printf("%smodeled step time %.3f ms\n", mvt_tag, mvt_median(times, o.steps));
	/* Each rank pages on its own device: what it paged shows it did. */
	if (ranks != NULL) {
		uint64_t outs, ins;

		if (mvt_paged(&outs, &ins))
			printf("%spaged out %" PRIu64 " and in %" PRIu64 " buffers\n", mvt_tag, outs, ins);
	}
	if (ranks != NULL && model_only)
		mvt_ranks_result(ranks, times, dev.peak, 0, 1);

	mvt_release(&dev, m);
	CK(cuEventDestroy_v2, (ev_start));
	CK(cuEventDestroy_v2, (ev_end));
	if (dev.stream != NULL)
		CK(cuStreamDestroy_v2, (dev.stream));
	CK(cuModuleUnload, (mod));
	CK(cuDevicePrimaryCtxRelease_v2, (device));
	free(image);

	if (model_only) {
		printf("%schecksum skipped (model-only)\n", mvt_tag);
		free(dsums);
		free(times);
		mvt_ranks_free(ranks);
		return 0;
	}

	/* The host reference: the same model code on host memory with kernels.c. */
	memset(&host, 0, sizeof(host));
	host.opts = &o;
	host.host = 1;
	host.batch = o.batch != 0 ? o.batch : m->batch;
	host.rank = dev.rank;
	memcpy(host.desc, dev.desc, sizeof(host.desc));
	m->build(&host);
	mvt_probe_alloc(&host);
	if (ranks != NULL)
		mvt_ranks_attach(&host, ranks);
	for (unsigned s = 0; s < o.steps; s++) {
		if (o.reshape_at != 0 && s == o.reshape_at)
			host.batch *= 2;
		m->step(&host, s);
	}
	mvt_ranks_detach(&host);
	/* Diverged training would still compare equal; say so. */
	{
		unsigned bad = 0;

		for (unsigned i = 0; i < host.nw; i++) {
			const float *w = (const float *)(uintptr_t)host.w[i].addr;
			uint64_t j = 0;

			while (j < host.w[i].n && isfinite(w[j]))
				j++;
			bad += j < host.w[i].n;
		}
		if (bad != 0)
			fprintf(stderr, "mvtrain: warning: %u of %u weights are not finite\n", bad,
			    host.nw);
	}
	hsums = mvt_xmalloc((host.nw + 1) * sizeof(*hsums));
	hsum = mvt_checksums(&host, hsums);
	mvt_release(&host, m);

	if (dsum != hsum) {
		unsigned i = 0;

		while (i < dev.nw && dsums[i] == hsums[i])
			i++;
		printf("%schecksum MISMATCH device %016" PRIx64 " host %016" PRIx64 "\n", mvt_tag, dsum,
		    hsum);
		fprintf(stderr, "mvtrain: %schecksum mismatch: device %016" PRIx64 " host %016" PRIx64
		    " (first difference in %s %u)\n", mvt_tag, dsum, hsum, i < dev.nw ? "weight" : "probe", i);
		mvt_ranks_free(ranks);
		return 1;
	}
	printf("%schecksum OK %016" PRIx64 "\n", mvt_tag, dsum);
	if (ranks != NULL)
		mvt_ranks_result(ranks, times, dev.peak, dsum, 0);
	free(dsums);
	free(hsums);
	free(times);
	mvt_ranks_free(ranks);
	return 0;
}
