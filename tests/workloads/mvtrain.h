/* mvtrain: a training workload that drives a GPU through the CUDA driver API only. The model code in
 * models.c is written once against the small interface below and runs twice: on the device, and as a
 * host reference that calls the kernels of kernels.c on ordinary memory. */
#ifndef MVTRAIN_H
#define MVTRAIN_H

#include <stdint.h>

#include <cuda.h>

#include "tests/workloads/kernels.h"

/* The kernels mvtrain launches; mvt_kernel_names gives each one's name in the module. */
enum mvt_kid {
	MVK_FILL,
	MVK_AXPY,
	MVK_RELU_FWD,
	MVK_RELU_BWD,
	MVK_ADD,
	MVK_SUB,
	MVK_SGD,
	MVK_INIT_UNIFORM,
	MVK_GEMM,
	MVK_GEMM_EX,
	MVK_GEMM_BATCHED,
	MVK_CONV_FWD,
	MVK_CONV_BWD,
	MVK_POOL2_FWD,
	MVK_POOL2_BWD,
	MVK_GAP_FWD,
	MVK_GAP_BWD,
	MVK_HEADS_SPLIT,
	MVK_HEADS_MERGE,
	MVK_PWNORM_FWD,
	MVK_PWNORM_BWD,
	MVK_LSTM_CELL_FWD,
	MVK_LSTM_CELL_BWD,
	MVK_CHECKSUM,
	MVK_GATHER_PTRS,
	MVK_COUNT
};

extern const char *const mvt_kernel_names[MVK_COUNT];

/* Command-line options. */
struct mvt_opts {
	const char *model;
	unsigned batch;      /* 0: the model's default */
	double scale;        /* (0, 1]: every dimension is multiplied by it */
	unsigned steps;
	unsigned seq;        /* 0: the model's default, scaled */
	int model_only;
	int alloc_async;     /* cuMemAllocAsync/cuMemFreeAsync for activations and gradients */
	int stream_legacy;   /* the NULL stream instead of a created one */
	const char *module;  /* cubin/fatbin file, or NULL for the simulated driver's built-in image */
	int64_t corrupt;     /* byte of the first weight to flip before the checksum, or -1 */
	unsigned reshape_at; /* from this step on the batch is doubled (0: never) */
#define MVT_MAX_HOLDS 4
	unsigned hold_at[MVT_MAX_HOLDS]; /* before these steps, wait until hold_file (the first), or
					    hold_file.K (the K-th) exists */
	unsigned nholds;
	const char *hold_file;
	int graphs;          /* after a warm-up step, replay each piece of the step as a CUDA graph */
	CUstreamCaptureMode capture_mode;
	unsigned ranks;      /* 0: one process; else that many ranks, data-parallel (ranks.c) */
};

/* The most ranks --ranks takes. */
#define MVT_MAX_RANKS 16

/* One weight tensor: its address and length in floats. */
struct mvt_weight {
	uint64_t addr;
	uint64_t n;
};

/* One run of a model on one backend. Addresses are device addresses on the device and host addresses
 * (as integers) in the host reference. */
struct mvt {
	const struct mvt_opts *opts;
	int host;                       /* nonzero: the host reference */
	unsigned batch;                 /* resolved batch size */
	CUstream stream;
	CUfunction fn[MVK_COUNT];
	const struct mv_kernel_desc *desc[MVK_COUNT];
	uint64_t live, peak;            /* bytes of allocations made through mvt_alloc */
	struct mvt_weight *w;           /* owned; the buffers are freed by mvt_release */
	unsigned nw, capw;
	float *stage[2];                /* host staging for input (0) and target (1), owned */
	uint64_t stage_n[2];
	uint64_t ptrtab_host[4];        /* the pointer table of the gradient probe, as uploaded */
	uint64_t probe;                 /* the probe's output buffer, kept for the checksum */
	uint64_t probe_n;
	float lr;                       /* SGD learning rate, set by the model's build */
	struct mvt_graphs *graphs;      /* --graphs: the pieces and the step's allocations, owned */
	struct mvt_ranks *ranks;        /* --ranks: this rank's part of the job, or NULL */
	unsigned rank;                  /* its rank, which picks its shard of each batch */
	void *model;                    /* the model's own state, owned by the model */
};

/* A model: build allocates its weights (mvt_weight_new) and state, step runs one training step
 * (forward, loss, backward, mvt_sgd_step), destroy frees its state. */
struct mvt_model {
	const char *name;
	unsigned batch;                 /* default batch size */
	void (*build)(struct mvt *t);
	void (*step)(struct mvt *t, unsigned step);
	void (*destroy)(struct mvt *t);
};

/* The models, terminated by an entry whose name is NULL. */
extern const struct mvt_model mvt_models[];

/* Memory: a buffer of n floats, and its release (n again, for the accounting). Exits on failure. */
uint64_t mvt_alloc(struct mvt *t, uint64_t n);
void mvt_free(struct mvt *t, uint64_t addr, uint64_t n);

/* Launches kernel k over work output elements; args as for cuLaunchKernel. */
void mvt_launch(struct mvt *t, enum mvt_kid k, uint64_t work, void **args);

/* A piece of a step: one layer's forward or backward, the unit --graphs captures into one graph.
 * Between mvt_piece_begin and mvt_piece_end a model only launches kernels and allocates and frees
 * buffers; inputs (mvt_input) and the optimizer stay outside pieces. No-ops without --graphs. */
void mvt_piece_begin(struct mvt *t);
void mvt_piece_end(struct mvt *t);

/* Whether the step runs as graphs; models add the per-layer workspace a framework's kernels use
 * then, so that pieces have temporaries. */
int mvt_graphs_on(const struct mvt *t);

/* A new weight of n floats, uniform in [-scale, scale) from a seed that is its index; returns the
 * index into t->w. */
unsigned mvt_weight_new(struct mvt *t, uint64_t n, float scale);

/* A buffer of n floats filled on the host with step's data (which: 0 input, 1 target), uniform in
 * [-1, 1), uploaded on the stream like a data loader does. Each rank gets its own shard (rank 0 the
 * data of a run without ranks). The caller frees it. */
uint64_t mvt_input(struct mvt *t, unsigned step, unsigned which, uint64_t n);

/* The optimizer: with ranks, first averages the gradients over them; then probes a few gradients
 * through a device-resident pointer table, applies SGD to every weight and frees the gradients
 * (grads[i] belongs to weight i, as n floats of t->w[i].n). */
void mvt_sgd_step(struct mvt *t, const uint64_t *grads);

/* Used by ranks.c. Any failed driver call exits 1, naming the call. */
void mvt_check(CUresult r, const char *call);
/* calloc that exits 1 when the host has no memory left. */
void *mvt_xcalloc(size_t n, size_t size);
/* Makes room for need elements of size bytes in *p, of *cap now (doubling, from 64); exits 1 when
 * the host has no memory left. */
void mvt_grow(void **p, unsigned *cap, unsigned need, size_t size);
uint64_t mvt_alloc_persistent(struct mvt *t, uint64_t bytes);
void mvt_free_persistent(struct mvt *t, uint64_t addr, uint64_t bytes);
void mvt_print_peak(uint64_t bytes);
double mvt_median(const float *times, unsigned n);

/* --ranks (ranks.c). mvt_ranks_fork starts the ranks: it returns in each of them, and in the parent
 * waits for all, prints the job's summary from their results and exits. mvt_ranks_attach gives a
 * backend (device or host reference) its buckets, once its weights exist; mvt_ranks_detach takes
 * them away. mvt_ranks_allreduce replaces every gradient by the mean of all ranks'.
 * mvt_ranks_result hands the parent a rank's step times (unsorted), peak and checksum. */
struct mvt_ranks;
struct mvt_ranks *mvt_ranks_fork(unsigned count, unsigned steps);
unsigned mvt_ranks_rank(const struct mvt_ranks *k);
void mvt_ranks_attach(struct mvt *t, struct mvt_ranks *k);
void mvt_ranks_detach(struct mvt *t);
void mvt_ranks_allreduce(struct mvt *t, const uint64_t *grads);
void mvt_ranks_result(struct mvt_ranks *k, const float *times, uint64_t peak, uint64_t sum, int model_only);
/* A rank's part, once it has handed over its result. */
void mvt_ranks_free(struct mvt_ranks *k);

#endif
