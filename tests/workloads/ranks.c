/* mvtrain --ranks N: N processes trained data-parallel, the shape torchrun gives a node. Each rank
 * drives one device (rank r takes device r modulo the device count) and reads its own shard of
 * every batch. After each backward pass the ranks average their gradients: each copies them, a
 * bucket at a time, into a device buffer it exported with cuIpcGetMemHandle, and reads every
 * rank's bucket through the handles it opened, summing them in rank order, so that every rank
 * gets the same bits and the weights stay equal. The host reference of each rank does the same
 * over shared host memory. The ranks meet at a process-shared barrier; the parent waits for
 * them, stops the rest when one fails, and prints the job's summary. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/workloads/mvtrain.h"

/* Floats in one exchange: at most 4 MiB, and at most an eighth of the gradients, as a trainer's
 * 25 MB bucket is of a model of some hundred million weights. */
#define MVT_BUCKET (1ull << 20)
#define MVT_BUCKETS_MIN 8
/* How long a rank waits for the others at a barrier: generous, for a loaded machine. */
#define MVT_BARRIER_S 600

/* What the ranks share: the barrier, the exported handles, each rank's results, and the host
 * reference's buckets after it. */
struct mvt_ranks_shm {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned count, waiting, generation;
	CUipcMemHandle handle[MVT_MAX_RANKS];
	uint64_t peak[MVT_MAX_RANKS];
	uint64_t sum[MVT_MAX_RANKS];
	int done[MVT_MAX_RANKS]; /* 1: trained and checked; 2: trained model-only, with no checksum */
};

/* One piece of a gradient in the bucket being filled. */
struct mvt_piece {
	unsigned w;              /* the weight */
	uint64_t woff, boff, n;  /* floats: offset in the gradient, in the bucket, and length */
};

struct mvt_ranks {
	struct mvt_ranks_shm *shm;
	float *times;            /* count × steps, in shared memory */
	float *host_comm;        /* count × MVT_BUCKET, in shared memory */
	unsigned rank, count, steps;
	uint64_t bucket;         /* floats per exchange */
	uint64_t comm[MVT_MAX_RANKS]; /* each rank's bucket as this backend addresses it */
	int opened;              /* comm[] of the other ranks are opened IPC handles */
	struct mvt_piece *pieces;
	unsigned npieces, cap;
	size_t shm_bytes;
};

static size_t
mvt_ranks_times_bytes(unsigned count, unsigned steps)
{
	return ((size_t)count * steps * sizeof(float) + 63) & ~(size_t)63;
}

/* Waits until every rank has come this far. */
static void
mvt_barrier(struct mvt_ranks *k)
{
	struct mvt_ranks_shm *s = k->shm;
	struct timespec until;
	unsigned gen;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += MVT_BARRIER_S;
	pthread_mutex_lock(&s->lock);
	gen = s->generation;
	if (++s->waiting == s->count) {
		s->waiting = 0;
		s->generation++;
		pthread_cond_broadcast(&s->cond);
	}
	while (s->generation == gen) {
		if (pthread_cond_timedwait(&s->cond, &s->lock, &until) == ETIMEDOUT &&
		    s->generation == gen) {
			pthread_mutex_unlock(&s->lock);
			fprintf(stderr, "mvtrain: rank %u: the other ranks did not come to the same point "
			    "of the job within %d s\n", k->rank, MVT_BARRIER_S);
			exit(1);
		}
	}
	pthread_mutex_unlock(&s->lock);
}

static void
mvt_ranks_summary(struct mvt_ranks *k)
{
	struct mvt_ranks_shm *s = k->shm;
	float *step_max = mvt_xcalloc(k->steps, sizeof(float));
	uint64_t peak = 0;
	double median;
	int model_only = 0;

	/* A data-parallel step ends when its slowest rank's does. */
	for (unsigned st = 0; st < k->steps; st++) {
		for (unsigned r = 0; r < k->count; r++)
			if (k->times[r * k->steps + st] > step_max[st])
				step_max[st] = k->times[r * k->steps + st];
		printf("step %u time %.3f ms\n", st, step_max[st]);
	}
	for (unsigned r = 0; r < k->count; r++)
		if (s->peak[r] > peak)
			peak = s->peak[r];
	mvt_print_peak(peak);
	median = mvt_median(step_max, k->steps);
	printf("modeled step time %.3f ms\n", median);
	free(step_max);
	for (unsigned r = 0; r < k->count; r++) {
		if (!s->done[r]) {
			fprintf(stderr, "mvtrain: rank %u exited without its result\n", r);
			exit(1);
		}
		/* The driver decides, in each rank: none has a checksum when one ran model-only. */
		model_only |= s->done[r] == 2;
		if (s->sum[r] != s->sum[0]) {
			printf("checksum MISMATCH rank 0 %016" PRIx64 " rank %u %016" PRIx64 "\n",
			    s->sum[0], r, s->sum[r]);
			fprintf(stderr, "mvtrain: the ranks' weights differ: rank 0 %016" PRIx64
			    ", rank %u %016" PRIx64 "\n", s->sum[0], r, s->sum[r]);
			exit(1);
		}
	}
	printf("ranks: %u, every rank's weights equal\n", k->count);
	if (model_only)
		printf("checksum skipped (model-only)\n");
	else
		printf("checksum OK %016" PRIx64 "\n", s->sum[0]);
}

struct mvt_ranks *
mvt_ranks_fork(unsigned count, unsigned steps)
{
	size_t times = mvt_ranks_times_bytes(count, steps);
	size_t bytes = sizeof(struct mvt_ranks_shm) + times + (size_t)count * MVT_BUCKET * sizeof(float);
	pid_t pid[MVT_MAX_RANKS], parent = getpid();
	int reaped[MVT_MAX_RANKS] = { 0 }, fail = 0;
	pthread_mutexattr_t ma;
	pthread_condattr_t ca;
	struct mvt_ranks *k;
	void *map;

	if (count == 0 || count > MVT_MAX_RANKS) {
		fprintf(stderr, "mvtrain: %u ranks, expected 1 to %d\n", count, MVT_MAX_RANKS);
		exit(2);
	}
	k = mvt_xcalloc(1, sizeof(*k));
	map = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (map == MAP_FAILED) {
		fprintf(stderr, "mvtrain: cannot map %zu bytes shared by the ranks: %s\n", bytes,
		    strerror(errno));
		exit(1);
	}
	k->shm = map;
	k->shm_bytes = bytes;
	k->times = (float *)((char *)map + sizeof(struct mvt_ranks_shm));
	k->host_comm = (float *)((char *)map + sizeof(struct mvt_ranks_shm) + times);
	k->count = count;
	k->steps = steps;
	k->shm->count = count;
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
	pthread_mutex_init(&k->shm->lock, &ma);
	pthread_condattr_init(&ca);
	pthread_condattr_setpshared(&ca, PTHREAD_PROCESS_SHARED);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&k->shm->cond, &ca);

	fflush(NULL);
	for (unsigned r = 0; r < count; r++) {
		pid[r] = fork();
		if (pid[r] < 0) {
			fprintf(stderr, "mvtrain: fork for rank %u: %s\n", r, strerror(errno));
			for (unsigned q = 0; q < r; q++)
				kill(pid[q], SIGKILL);
			exit(1);
		}
		if (pid[r] == 0) {
			/* A rank does not outlive the job. */
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (getppid() != parent)
				_exit(1);
			k->rank = r;
			return k;
		}
	}
	for (unsigned left = count; left > 0;) {
		int st, code;
		pid_t p = waitpid(-1, &st, 0);
		unsigned r = 0;

		if (p < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "mvtrain: waitpid: %s\n", strerror(errno));
			exit(1);
		}
		while (r < count && pid[r] != p)
			r++;
		if (r == count)
			continue;
		reaped[r] = 1;
		left--;
		code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		if (code != 0 && fail == 0) {
			fail = code;
			if (WIFEXITED(st))
				fprintf(stderr, "mvtrain: rank %u exited with status %d; stopping the others\n",
				    r, code);
			else
				fprintf(stderr, "mvtrain: rank %u ended by signal %d; stopping the others\n",
				    r, WTERMSIG(st));
			for (unsigned q = 0; q < count; q++)
				if (!reaped[q])
					kill(pid[q], SIGTERM);
		}
	}
	if (fail != 0)
		exit(fail);
	mvt_ranks_summary(k);
	mvt_ranks_free(k);
	exit(0);
}

unsigned
mvt_ranks_rank(const struct mvt_ranks *k)
{
	return k->rank;
}

/* The bucket: 4 MiB, or an eighth of the gradients where that is less. */
static uint64_t
mvt_ranks_bucket(const struct mvt *t)
{
	uint64_t total = 0, b;

	for (unsigned i = 0; i < t->nw; i++)
		total += t->w[i].n;
	b = (total + MVT_BUCKETS_MIN - 1) / MVT_BUCKETS_MIN;
	return b < MVT_BUCKET ? b : MVT_BUCKET;
}

void
mvt_ranks_attach(struct mvt *t, struct mvt_ranks *k)
{
	struct mvt_ranks_shm *s = k->shm;

	t->ranks = k;
	k->bucket = mvt_ranks_bucket(t);
	k->opened = 0;
	if (t->host) {
		for (unsigned r = 0; r < k->count; r++)
			k->comm[r] = (uint64_t)(uintptr_t)(k->host_comm + (uint64_t)r * MVT_BUCKET);
		return;
	}
	k->comm[k->rank] = mvt_alloc_persistent(t, 4 * k->bucket);
	if (t->opts->model_only) {
		/* No bytes to share: each rank reads its own bucket in the others' places, which
		 * costs the same modeled time. */
		for (unsigned r = 0; r < k->count; r++)
			k->comm[r] = k->comm[k->rank];
		return;
	}
	mvt_check(cuIpcGetMemHandle(&s->handle[k->rank], k->comm[k->rank]), "cuIpcGetMemHandle");
	mvt_barrier(k);
	for (unsigned r = 0; r < k->count; r++) {
		CUdeviceptr p;

		if (r == k->rank)
			continue;
		mvt_check(cuIpcOpenMemHandle_v2(&p, s->handle[r], CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS),
		    "cuIpcOpenMemHandle");
		k->comm[r] = p;
	}
	k->opened = 1;
}

void
mvt_ranks_detach(struct mvt *t)
{
	struct mvt_ranks *k = t->ranks;

	if (k == NULL)
		return;
	if (!t->host) {
		mvt_check(cuStreamSynchronize(t->stream), "cuStreamSynchronize");
		for (unsigned r = 0; k->opened && r < k->count; r++)
			if (r != k->rank)
				mvt_check(cuIpcCloseMemHandle(k->comm[r]), "cuIpcCloseMemHandle");
		/* No rank frees its bucket while another may still have it open. */
		if (k->opened)
			mvt_barrier(k);
		mvt_free_persistent(t, k->comm[k->rank], 4 * k->bucket);
	}
	k->opened = 0;
	t->ranks = NULL;
}

/* Sends the pieces gathered: each rank copies its gradients into its bucket, and once all have,
 * replaces them by the mean of every rank's, summed in rank order. */
static void
mvt_ranks_flush(struct mvt *t, const uint64_t *grads)
{
	struct mvt_ranks *k = t->ranks;
	float zero = 0.0f, a = 1.0f / (float)k->count;

	for (unsigned p = 0; p < k->npieces; p++) {
		const struct mvt_piece *q = &k->pieces[p];
		uint64_t dst = k->comm[k->rank] + 4 * q->boff, src = grads[q->w] + 4 * q->woff;

		if (t->host)
			memcpy((void *)(uintptr_t)dst, (const void *)(uintptr_t)src, 4 * q->n);
		else
			mvt_check(cuMemcpyDtoDAsync_v2(dst, src, 4 * q->n, t->stream),
			    "cuMemcpyDtoDAsync");
	}
	if (!t->host)
		mvt_check(cuStreamSynchronize(t->stream), "cuStreamSynchronize");
	mvt_barrier(k);
	for (unsigned p = 0; p < k->npieces; p++) {
		const struct mvt_piece *q = &k->pieces[p];
		uint64_t g = grads[q->w] + 4 * q->woff, n = q->n;
		void *fill[] = { &g, &zero, &n };

		mvt_launch(t, MVK_FILL, n, fill);
		for (unsigned r = 0; r < k->count; r++) {
			uint64_t x = k->comm[r] + 4 * q->boff;
			void *axpy[] = { &g, &x, &a, &n };

			mvt_launch(t, MVK_AXPY, n, axpy);
		}
	}
	if (!t->host)
		mvt_check(cuStreamSynchronize(t->stream), "cuStreamSynchronize");
	/* No rank refills its bucket while another still reads it. */
	mvt_barrier(k);
	k->npieces = 0;
}

void
mvt_ranks_allreduce(struct mvt *t, const uint64_t *grads)
{
	struct mvt_ranks *k = t->ranks;
	uint64_t fill = 0;

	for (unsigned i = 0; i < t->nw; i++) {
		for (uint64_t off = 0; off < t->w[i].n;) {
			uint64_t n = t->w[i].n - off;

			if (n > k->bucket - fill)
				n = k->bucket - fill;
			mvt_grow((void **)&k->pieces, &k->cap, k->npieces + 1, sizeof(*k->pieces));
			k->pieces[k->npieces++] = (struct mvt_piece){ i, off, fill, n };
			off += n;
			fill += n;
			if (fill == k->bucket) {
				mvt_ranks_flush(t, grads);
				fill = 0;
			}
		}
	}
	if (k->npieces > 0)
		mvt_ranks_flush(t, grads);
}

void
mvt_ranks_result(struct mvt_ranks *k, const float *times, uint64_t peak, uint64_t sum, int model_only)
{
	memcpy(k->times + (size_t)k->rank * k->steps, times, k->steps * sizeof(float));
	k->shm->peak[k->rank] = peak;
	k->shm->sum[k->rank] = sum;
	k->shm->done[k->rank] = model_only ? 2 : 1;
}

void
mvt_ranks_free(struct mvt_ranks *k)
{
	if (k == NULL)
		return;
	munmap(k->shm, k->shm_bytes);
	free(k->pieces);
	free(k);
}
