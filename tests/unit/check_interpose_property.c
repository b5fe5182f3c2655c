/* libmemvirt.so under random programs: thousands of short random sequences of allocations, frees,
 * kernels, copies (2D ones too), memsets (2D ones too), stream memory operations and
 * synchronisations on several streams from four host threads (the per-thread-stream case too), each
 * checked against a host model of every buffer's bytes, under budgets that keep memvirt paging all
 * the time, with the safety net on and off.
 *
 * Each sequence has a seed; a failure names it, and MV_SEED=<seed> runs only that sequence (in every
 * configuration) to replay it; MV_TRACE=1 logs each operation to stderr and MV_VERBOSE=1 the paging
 * each configuration saw. The programs are race-free by construction: each thread owns its
 * buffers and two streams, and when a buffer moves from one stream to another the program orders it
 * with an event, so any wrong byte is memvirt's. */
#include "config.h"

#include <pthread.h>

#include "tests/unit/interposetest.h"

#define THREADS 4
#define STREAMS 2    /* per thread */
#define MAXBUF 10    /* live buffers per thread */
#define EVENTS 32    /* per thread, reused round robin */
#define MAXPEND 64   /* reads and uploads in flight per thread */

/* One configuration: the environment of its forked test and the sizes it draws. */
struct config {
	const char *name;
	const char *env[8];
	size_t slab_max;   /* small buffers: 4 .. slab_max bytes (below the threshold) */
	size_t large_min, large_max;
	int sequences;     /* sequences x THREADS x ops: the work, as it was with two threads */
	int ops;           /* per thread and sequence */
	int expect_paging; /* the budget is below what the sequences hold */
};

static const struct config configs[] = {
	{"net-on-4k",
	 {"SIMCUDA_MEM=64MiB", "SIMCUDA_GRANULARITY=4KiB", "MEMVIRT_SLAB_THRESHOLD=4KiB", "MEMVIRT_BUDGET=192KiB",
	  NULL},
	 2047, 4096, 28 * 1024 + 3, 300, 24, 1},
	{"net-off-4k",
	 {"SIMCUDA_MEM=64MiB", "SIMCUDA_GRANULARITY=4KiB", "MEMVIRT_SLAB_THRESHOLD=4KiB", "MEMVIRT_BUDGET=192KiB",
	  "SIMCUDA_NO_HOST_VMM=1", NULL},
	 2047, 4096, 28 * 1024 + 3, 300, 24, 1},
	{"net-off-64k",
	 {"SIMCUDA_MEM=64MiB", "SIMCUDA_GRANULARITY=64KiB", "MEMVIRT_SLAB_THRESHOLD=16KiB", "MEMVIRT_BUDGET=1152KiB",
	  "MEMVIRT_SAFETY_NET=0", NULL},
	 4095, 16384, 190 * 1024 + 1, 225, 24, 1},
	{"net-on-64k",
	 {"SIMCUDA_MEM=64MiB", "SIMCUDA_GRANULARITY=64KiB", "MEMVIRT_SLAB_THRESHOLD=16KiB", "MEMVIRT_BUDGET=1152KiB",
	  NULL},
	 4095, 16384, 190 * 1024 + 1, 225, 24, 1},
};

static int trace_on = -1;

#define NCONFIGS ((int)(sizeof(configs) / sizeof(configs[0])))

static CUfunction fn_fill, fn_axpy;
static CUstream streams[THREADS][STREAMS];

struct buf {
	CUdeviceptr p;
	size_t size;
	unsigned char *ref; /* what the device holds once every operation issued so far has run */
	int stream;         /* the stream of its last use, or -1 when nothing on a stream may still use it */
};

/* A read in flight into host memory, checked when its stream has been synchronised; or an upload
 * whose source must live until then (want == NULL). */
struct pending {
	unsigned char *host, *want;
	size_t n;
	int buf, op;
};

struct thread {
	const struct config *cfg;
	int tid;
	uint64_t seed, rng;
	CUevent ev[EVENTS];
	unsigned next_ev;
	struct buf b[MAXBUF];
	int nb;
	struct pending pend[MAXPEND];
	int npend;
	int op;
	char err[512];
};

#define TFAIL(t, ...)                                                                                    \
	do {                                                                                             \
		snprintf((t)->err, sizeof((t)->err), __VA_ARGS__);                                       \
		return -1;                                                                               \
	} while (0)

#define TCHK(t, call)                                                                                    \
	do {                                                                                             \
		CUresult tchk_r_ = (call);                                                               \
		if (tchk_r_ != CUDA_SUCCESS)                                                             \
			TFAIL(t, "thread %d op %d: %s failed: %s", (t)->tid, (t)->op, #call,             \
			      simtest_err_name(tchk_r_));                                                \
	} while (0)

static uint64_t rnd(struct thread *t, uint64_t n)
{
	return n == 0 ? 0 : itest_rand(&t->rng) % n;
}

static CUstream stream_of(struct thread *t, int s)
{
	return s < 0 ? NULL : streams[t->tid][s];
}

/* Orders stream s (-1: the legacy stream, for a synchronous call) after the last use of b. */
static int order(struct thread *t, struct buf *b, int s)
{
	CUevent e;

	if (b->stream < 0 || b->stream == s)
		return 0;
	e = t->ev[t->next_ev++ % EVENTS];
	TCHK(t, cuEventRecord(e, stream_of(t, b->stream)));
	TCHK(t, cuStreamWaitEvent(stream_of(t, s), e, 0));
	return 0;
}

/* Kernels do float arithmetic on whatever bytes the buffers hold; the model must match them bit for
 * bit, which holds as long as no NaN (whose payload depends on operand order), infinity or
 * subnormal appears. So every byte the program writes at the top byte of a float (buffer offset 3
 * mod 4) reads as a sign and an exponent between 24 and 127: every float is then zero or a normal
 * number below 2 and a multiple of 2^-126, and sums of such stay exact multiples, never subnormal. */
static unsigned char safe_top(struct thread *t)
{
	return (unsigned char)((0x0C + rnd(t, 0x40 - 0x0C)) | (rnd(t, 2) << 7));
}

/* After a use on stream s; a synchronous call has completed when it returns. */
static void used(struct buf *b, int s)
{
	b->stream = s;
}

static int check_bytes(struct thread *t, const unsigned char *got, const unsigned char *want, size_t n, int buf,
		       int op, const char *what)
{
	if (memcmp(got, want, n) == 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (got[i] != want[i])
			TFAIL(t, "thread %d: %s of buffer %d (issued at op %d, %zu bytes) differs at byte %zu: %#x, "
				 "expected %#x",
			      t->tid, what, buf, op, n, i, got[i], want[i]);
	return 0;
}

/* Synchronises the thread's streams and checks the reads that were in flight. */
static int sync_all(struct thread *t)
{
	for (int s = 0; s < STREAMS; s++)
		TCHK(t, cuStreamSynchronize(streams[t->tid][s]));
	for (int i = 0; i < t->npend; i++) {
		struct pending *p = &t->pend[i];
		int r = p->want != NULL ? check_bytes(t, p->host, p->want, p->n, p->buf, p->op, "an async read") : 0;
		free(p->host);
		free(p->want);
		if (r != 0) {
			for (int j = i + 1; j < t->npend; j++) {
				free(t->pend[j].host);
				free(t->pend[j].want);
			}
			t->npend = 0;
			return r;
		}
	}
	t->npend = 0;
	for (int i = 0; i < t->nb; i++)
		t->b[i].stream = -1;
	return 0;
}

static int pend(struct thread *t, unsigned char *host, unsigned char *want, size_t n, int buf)
{
	if (t->npend == MAXPEND) {
		free(host);
		free(want);
		TFAIL(t, "thread %d: too many operations in flight", t->tid);
	}
	t->pend[t->npend++] = (struct pending){host, want, n, buf, t->op};
	return 0;
}

/* Reads a whole buffer synchronously and compares it with the model. */
static int verify(struct thread *t, int i)
{
	struct buf *b = &t->b[i];
	unsigned char *h = malloc(b->size);
	int r;

	if (h == NULL)
		TFAIL(t, "out of host memory");
	if (order(t, b, -1) != 0) {
		free(h);
		return -1;
	}
	r = cuMemcpyDtoH(h, b->p, b->size);
	if (r != CUDA_SUCCESS) {
		free(h);
		TFAIL(t, "thread %d op %d: verifying cuMemcpyDtoH failed: %s", t->tid, t->op,
		      simtest_err_name((CUresult)r));
	}
	used(b, -1);
	r = check_bytes(t, h, b->ref, b->size, i, t->op, "a synchronous read");
	free(h);
	return r;
}

static int op_alloc(struct thread *t)
{
	const struct config *c = t->cfg;
	struct buf *b = &t->b[t->nb];
	int async = (int)rnd(t, 2), s = (int)rnd(t, STREAMS);
	unsigned char v = safe_top(t);

	b->size = rnd(t, 10) < 2 ? 4 + rnd(t, c->slab_max - 3) : c->large_min + rnd(t, c->large_max - c->large_min + 1);
	b->ref = malloc(b->size);
	if (b->ref == NULL)
		TFAIL(t, "out of host memory");
	/* A new buffer's bytes are undefined: the program sets them first. */
	memset(b->ref, v, b->size);
	if (async) {
		TCHK(t, cuMemAllocAsync(&b->p, b->size, streams[t->tid][s]));
		TCHK(t, cuMemsetD8Async(b->p, v, b->size, streams[t->tid][s]));
		used(b, s);
	} else {
		TCHK(t, cuMemAlloc(&b->p, b->size));
		TCHK(t, cuMemsetD8(b->p, v, b->size));
		used(b, -1);
	}
	t->nb++;
	return 0;
}

static int op_free(struct thread *t, int i)
{
	struct buf *b = &t->b[i];

	if (rnd(t, 2)) {
		int s = (int)rnd(t, STREAMS);
		if (order(t, b, s) != 0)
			return -1;
		TCHK(t, cuMemFreeAsync(b->p, streams[t->tid][s]));
	} else {
		/* The program has no use of it left to wait for: memvirt keeps the pages until its last
		 * uses are done. */
		TCHK(t, cuMemFree(b->p));
	}
	free(b->ref);
	t->b[i] = t->b[--t->nb];
	return 0;
}

/* A float-aligned range [off, off+n floats) of buffer b, n >= 1; -1 when b holds no float. */
static int float_range(struct thread *t, const struct buf *b, uint64_t *off, uint64_t *n)
{
	uint64_t nf = b->size / 4;

	if (nf == 0)
		return -1;
	*off = rnd(t, 3) == 0 ? rnd(t, nf) : 0;
	*n = 1 + rnd(t, nf - *off);
	if (rnd(t, 2))
		*n = nf - *off;
	return 0;
}

static int op_fill(struct thread *t)
{
	int i = (int)rnd(t, t->nb), s = (int)rnd(t, STREAMS);
	struct buf *b = &t->b[i];
	uint64_t off, n;
	float v = (float)((int)rnd(t, 64) - 32);
	CUdeviceptr p;
	void *args[3];

	if (float_range(t, b, &off, &n) != 0)
		return 0;
	if (order(t, b, s) != 0)
		return -1;
	p = b->p + off * 4; /* an interior pointer names the buffer too */
	args[0] = &p;
	args[1] = &v;
	args[2] = &n;
	if (trace_on > 0)
		fprintf(stderr, "T%d fill b%d+%llu n%llu v%g s%d\n", t->tid, i, (unsigned long long)off,
			(unsigned long long)n, v, s);
	TCHK(t, cuLaunchKernel(fn_fill, 1, 1, 1, 1, 1, 1, 0, streams[t->tid][s], args, NULL));
	for (uint64_t k = 0; k < n; k++)
		memcpy(b->ref + (off + k) * 4, &v, 4);
	used(b, s);
	return 0;
}

static int op_axpy(struct thread *t)
{
	int yi = (int)rnd(t, t->nb), xi = (int)rnd(t, t->nb), s = (int)rnd(t, STREAMS);
	struct buf *y = &t->b[yi], *x = &t->b[xi];
	static const float as[] = {1.0f, -1.0f, 2.0f, -2.0f};
	float a = as[rnd(t, 4)];
	uint64_t yoff, xoff, n, nx;
	CUdeviceptr py, px;
	void *args[4];

	if (yi == xi || float_range(t, y, &yoff, &n) != 0 || x->size / 4 == 0)
		return 0;
	nx = x->size / 4;
	if (n > nx)
		n = nx;
	xoff = rnd(t, nx - n + 1);
	if (order(t, y, s) != 0 || order(t, x, s) != 0)
		return -1;
	py = y->p + yoff * 4;
	px = x->p + xoff * 4;
	args[0] = &py;
	args[1] = &px;
	args[2] = &a;
	args[3] = &n;
	if (trace_on > 0)
		fprintf(stderr, "T%d axpy y%d+%llu x%d+%llu n%llu a%g s%d\n", t->tid, yi, (unsigned long long)yoff, xi,
			(unsigned long long)xoff, (unsigned long long)n, a, s);
	TCHK(t, cuLaunchKernel(fn_axpy, 1, 1, 1, 1, 1, 1, 0, streams[t->tid][s], args, NULL));
	/* The same arithmetic as the kernel, element by element. */
	for (uint64_t k = 0; k < n; k++) {
		float fy, fx;
		memcpy(&fy, y->ref + (yoff + k) * 4, 4);
		memcpy(&fx, x->ref + (xoff + k) * 4, 4);
		fy = fy + a * fx;
		memcpy(y->ref + (yoff + k) * 4, &fy, 4);
	}
	used(y, s);
	used(x, s);
	return 0;
}

static int op_htod(struct thread *t)
{
	int i = (int)rnd(t, t->nb), async = (int)rnd(t, 2), s = (int)rnd(t, STREAMS);
	struct buf *b = &t->b[i];
	size_t off = rnd(t, b->size), n = 1 + rnd(t, b->size - off);
	unsigned char *src = malloc(n);

	if (src == NULL)
		TFAIL(t, "out of host memory");
	itest_random_bytes(&t->rng, src, n);
	for (size_t k = 0; k < n; k++)
		if ((off + k) % 4 == 3)
			src[k] = safe_top(t);
	memcpy(b->ref + off, src, n);
	if (order(t, b, async ? s : -1) != 0) {
		free(src);
		return -1;
	}
	if (async) {
		CUresult r = cuMemcpyHtoDAsync(b->p + off, src, n, streams[t->tid][s]);
		if (pend(t, src, NULL, 0, i) != 0)
			return -1;
		TCHK(t, r);
		used(b, s);
	} else {
		CUresult r = cuMemcpyHtoD(b->p + off, src, n);
		free(src);
		TCHK(t, r);
		used(b, -1);
	}
	return 0;
}

static int op_dtoh(struct thread *t)
{
	int i = (int)rnd(t, t->nb), async = (int)rnd(t, 2), s = (int)rnd(t, STREAMS);
	struct buf *b = &t->b[i];
	size_t off = rnd(t, 2) ? 0 : rnd(t, b->size), n = 1 + rnd(t, b->size - off);
	unsigned char *dst = malloc(n), *want = malloc(n);

	if (dst == NULL || want == NULL) {
		free(dst);
		free(want);
		TFAIL(t, "out of host memory");
	}
	memcpy(want, b->ref + off, n);
	if (order(t, b, async ? s : -1) != 0) {
		free(dst);
		free(want);
		return -1;
	}
	if (async) {
		CUresult r = cuMemcpyDtoHAsync(dst, b->p + off, n, streams[t->tid][s]);
		if (pend(t, dst, want, n, i) != 0)
			return -1;
		TCHK(t, r);
		used(b, s);
	} else {
		CUresult r = cuMemcpyDtoH(dst, b->p + off, n);
		int c = r == CUDA_SUCCESS ? check_bytes(t, dst, want, n, i, t->op, "a synchronous partial read") : 0;
		free(dst);
		free(want);
		TCHK(t, r);
		used(b, -1);
		return c;
	}
	return 0;
}

static int op_dtod(struct thread *t)
{
	int di = (int)rnd(t, t->nb), si = (int)rnd(t, t->nb), async = (int)rnd(t, 2), s = (int)rnd(t, STREAMS);
	struct buf *d = &t->b[di], *src = &t->b[si];
	size_t n, soff, doff;

	if (di == si)
		return 0;
	n = 1 + rnd(t, d->size < src->size ? d->size : src->size);
	/* Offsets keep each byte's place in its float (see safe_top). */
	soff = rnd(t, src->size - n + 1) & ~(size_t)3;
	doff = rnd(t, d->size - n + 1) & ~(size_t)3;
	if (order(t, d, async ? s : -1) != 0 || order(t, src, async ? s : -1) != 0)
		return -1;
	if (async)
		TCHK(t, cuMemcpyDtoDAsync(d->p + doff, src->p + soff, n, streams[t->tid][s]));
	else
		TCHK(t, cuMemcpyDtoD(d->p + doff, src->p + soff, n));
	memmove(d->ref + doff, src->ref + soff, n);
	used(d, async ? s : -1);
	used(src, async ? s : -1);
	return 0;
}

static int op_memset(struct thread *t)
{
	int i = (int)rnd(t, t->nb), async = (int)rnd(t, 2), s = (int)rnd(t, STREAMS);
	struct buf *b = &t->b[i];
	unsigned elem = 1u << rnd(t, 3);
	size_t units = b->size / elem, off, n;
	uint32_t v;
	CUstream h = async ? streams[t->tid][s] : NULL;

	if (units == 0)
		return 0;
	off = rnd(t, units);
	n = 1 + rnd(t, units - off);
	/* Patterns whose bytes at a float's top byte pass safe_top. */
	v = (uint32_t)safe_top(t);
	if (elem == 2)
		v = v << 8 | (uint32_t)rnd(t, 256);
	else if (elem == 4)
		v = v << 24 | (uint32_t)rnd(t, 1u << 24);
	if (order(t, b, async ? s : -1) != 0)
		return -1;
	if (elem == 1)
		TCHK(t, async ? cuMemsetD8Async(b->p + off, (unsigned char)v, n, h) : cuMemsetD8(b->p + off, (unsigned char)v, n));
	else if (elem == 2)
		TCHK(t, async ? cuMemsetD16Async(b->p + off * 2, (unsigned short)v, n, h)
			      : cuMemsetD16(b->p + off * 2, (unsigned short)v, n));
	else
		TCHK(t, async ? cuMemsetD32Async(b->p + off * 4, v, n, h) : cuMemsetD32(b->p + off * 4, v, n));
	for (size_t k = 0; k < n; k++)
		memcpy(b->ref + (off + k) * elem, &v, elem); /* little-endian, as the device */
	used(b, async ? s : -1);
	return 0;
}

/* Issues the 2D copy of op_copy2d and brings the model along: a read is checked against it (now,
 * or once its stream is synchronised), a write is applied to it. Takes host. */
static int copy2d_finish(struct thread *t, const CUDA_MEMCPY2D *p, unsigned char *host, int dir, int di, int si,
			 size_t doff, size_t soff, int s)
{
	struct buf *d = &t->b[di], *src = &t->b[si];
	size_t pitch = p->srcPitch, w = p->WidthInBytes, rows = p->Height;
	unsigned char *want = NULL;
	CUresult r;

	if (dir == 1) {
		want = calloc(rows, pitch);
		if (want == NULL) {
			free(host);
			TFAIL(t, "out of host memory");
		}
		for (size_t y = 0; y < rows; y++)
			memcpy(want + y * pitch, src->ref + soff + y * pitch, w);
	}
	r = s < 0 ? cuMemcpy2D(p) : cuMemcpy2DAsync(p, streams[t->tid][s]);
	for (size_t y = 0; y < rows && dir != 1; y++)
		memmove(d->ref + doff + y * pitch, dir == 0 ? host + y * pitch : src->ref + soff + y * pitch, w);
	if (dir != 1)
		used(d, s);
	if (dir != 0)
		used(src, s);
	if (s >= 0) {
		if (pend(t, host, want, want != NULL ? rows * pitch : 0, dir == 1 ? si : di) != 0)
			return -1;
		TCHK(t, r);
		return 0;
	}
	if (r == CUDA_SUCCESS && dir == 1 && check_bytes(t, host, want, rows * pitch, si, t->op, "a 2D read") != 0) {
		free(host);
		free(want);
		return -1;
	}
	free(host);
	free(want);
	TCHK(t, r);
	return 0;
}

/* ---- pitched copies and memsets, stream memory operations ---- */

/* A pitched region inside a buffer of size bytes: rows of w bytes, pitch apart, from off; both
 * multiples of 4 (so each byte keeps its place in its float, see safe_top). 0, or -1 when the
 * buffer is too small. */
static int pitched_region(struct thread *t, size_t size, size_t *off, size_t *pitch, size_t *w, size_t *rows)
{
	if (size < 16)
		return -1;
	*pitch = 4 * (1 + rnd(t, (size < 4096 ? size : 4096) / 4));
	*w = 1 + rnd(t, *pitch);
	*rows = 1 + rnd(t, (size - *w) / *pitch + 1);
	*off = rnd(t, (size - ((*rows - 1) * *pitch + *w)) / 4 + 1) * 4;
	return 0;
}

/* A 2D copy host to device, device to host or device to device, synchronous or on a stream. */
static int op_copy2d(struct thread *t)
{
	int di = (int)rnd(t, t->nb), si = (int)rnd(t, t->nb), async = (int)rnd(t, 2), s = (int)rnd(t, STREAMS);
	int dir = (int)rnd(t, 3); /* 0 H2D, 1 D2H, 2 D2D */
	struct buf *d = &t->b[di], *src = &t->b[si];
	size_t doff, pitch, w, rows, soff = 0;
	CUDA_MEMCPY2D p;
	unsigned char *host;

	if ((dir == 2 && di == si) || pitched_region(t, dir == 1 ? src->size : d->size, &doff, &pitch, &w, &rows) != 0)
		return 0;
	if (dir == 2 && (rows - 1) * pitch + w > src->size)
		return 0;
	if (dir == 1)
		soff = doff; /* the region is in the source */
	else if (dir == 2)
		soff = rnd(t, (src->size - ((rows - 1) * pitch + w)) / 4 + 1) * 4;
	host = calloc(rows, pitch);
	if (host == NULL)
		TFAIL(t, "out of host memory");
	memset(&p, 0, sizeof(p));
	p.WidthInBytes = w;
	p.Height = rows;
	p.srcPitch = p.dstPitch = pitch;
	p.srcMemoryType = dir == 0 ? CU_MEMORYTYPE_HOST : CU_MEMORYTYPE_DEVICE;
	p.dstMemoryType = dir == 1 ? CU_MEMORYTYPE_HOST : CU_MEMORYTYPE_DEVICE;
	p.srcHost = p.dstHost = host;
	p.srcDevice = src->p + soff;
	p.dstDevice = d->p + doff;
	if (dir == 0) {
		itest_random_bytes(&t->rng, host, rows * pitch);
		for (size_t k = 3; k < rows * pitch; k += 4)
			host[k] = safe_top(t);
	}
	if ((dir != 1 && order(t, d, async ? s : -1) != 0) || (dir != 0 && order(t, src, async ? s : -1) != 0)) {
		free(host);
		return -1;
	}
	if (trace_on > 0)
		fprintf(stderr, "T%d copy2d dir%d d%d+%zu s%d+%zu pitch%zu w%zu rows%zu async%d s%d\n", t->tid, dir, di,
			doff, si, soff, pitch, w, rows, async, s);
	return copy2d_finish(t, &p, host, dir, di, si, doff, soff, async ? s : -1);
}

/* A pitched memset of 1, 2 or 4 byte elements, synchronous or on a stream. */
static int op_memset2d(struct thread *t)
{
	int i = (int)rnd(t, t->nb), async = (int)rnd(t, 2), s = (int)rnd(t, STREAMS);
	struct buf *b = &t->b[i];
	unsigned elem = 1u << rnd(t, 3);
	size_t off, pitch, w, rows;
	uint32_t v = (uint32_t)safe_top(t);
	CUstream h = async ? streams[t->tid][s] : NULL;

	if (pitched_region(t, b->size, &off, &pitch, &w, &rows) != 0 || w < elem)
		return 0;
	w /= elem;
	if (elem == 2)
		v = v << 8 | (uint32_t)rnd(t, 256);
	else if (elem == 4)
		v = v << 24 | (uint32_t)rnd(t, 1u << 24);
	if (order(t, b, async ? s : -1) != 0)
		return -1;
	if (elem == 1)
		TCHK(t, async ? cuMemsetD2D8Async(b->p + off, pitch, (unsigned char)v, w, rows, h)
			      : cuMemsetD2D8(b->p + off, pitch, (unsigned char)v, w, rows));
	else if (elem == 2)
		TCHK(t, async ? cuMemsetD2D16Async(b->p + off, pitch, (unsigned short)v, w, rows, h)
			      : cuMemsetD2D16(b->p + off, pitch, (unsigned short)v, w, rows));
	else
		TCHK(t, async ? cuMemsetD2D32Async(b->p + off, pitch, v, w, rows, h)
			      : cuMemsetD2D32(b->p + off, pitch, v, w, rows));
	for (size_t y = 0; y < rows; y++)
		for (size_t k = 0; k < w; k++)
			memcpy(b->ref + off + y * pitch + k * elem, &v, elem);
	used(b, async ? s : -1);
	return 0;
}

/* A stream write of a 32- or 64-bit word v at `at` on stream s, alone or as a batch. */
static int memop_write(struct thread *t, int s, CUdeviceptr at, uint64_t v, int wide)
{
	if (rnd(t, 2)) {
		CUstreamBatchMemOpParams op;
		memset(&op, 0, sizeof(op));
		op.writeValue.operation = wide ? CU_STREAM_MEM_OP_WRITE_VALUE_64 : CU_STREAM_MEM_OP_WRITE_VALUE_32;
		op.writeValue.address = at;
		if (wide)
			op.writeValue.value64 = v;
		else
			op.writeValue.value = (uint32_t)v;
		TCHK(t, cuStreamBatchMemOp(streams[t->tid][s], 1, &op, 0));
	} else if (wide) {
		TCHK(t, cuStreamWriteValue64(streams[t->tid][s], at, v, 0));
	} else {
		TCHK(t, cuStreamWriteValue32(streams[t->tid][s], at, (uint32_t)v, 0));
	}
	return 0;
}

/* A wait on stream o until the word at `at` is v. */
static int memop_wait(struct thread *t, int o, CUdeviceptr at, uint64_t v, int wide)
{
	if (wide)
		TCHK(t, cuStreamWaitValue64(streams[t->tid][o], at, v, CU_STREAM_WAIT_VALUE_EQ));
	else
		TCHK(t, cuStreamWaitValue32(streams[t->tid][o], at, (uint32_t)v, CU_STREAM_WAIT_VALUE_EQ));
	return 0;
}

/* A stream write of a 32- or 64-bit word, and sometimes a wait for it on the thread's other
 * stream, which then orders the buffer's next use. The wait may come first: its stream is then
 * held until the write, submitted next, has run, and memvirt must page nothing out meanwhile that
 * would wait for it. */
static int op_memop(struct thread *t)
{
	int i = (int)rnd(t, t->nb), s = (int)rnd(t, STREAMS), wide = (int)rnd(t, 2), how = (int)rnd(t, 4);
	int o = (s + 1) % STREAMS;
	struct buf *b = &t->b[i];
	uint64_t v = (uint64_t)safe_top(t) << 56 | (uint64_t)safe_top(t) << 24 | (rnd(t, 1u << 24) << 32) |
		     rnd(t, 1u << 24);
	CUdeviceptr at;
	size_t off;

	if (b->size < 8)
		return 0;
	off = rnd(t, b->size / 8) * 8;
	at = b->p + off;
	/* A wait needs a word that differs now, or it would not wait for the write. */
	if (how >= 2 && memcmp(b->ref + off, &v, wide ? 8 : 4) == 0)
		how = 0;
	if (trace_on > 0)
		fprintf(stderr, "T%d memop b%d+%zu wide%d how%d s%d\n", t->tid, i, off, wide, how, s);
	/* Both after the buffer's last use: the write must not wait for the waiting stream. */
	if (order(t, b, s) != 0 || (how == 3 && order(t, b, o) != 0))
		return -1;
	if ((how == 3 && memop_wait(t, o, at, v, wide) != 0) || memop_write(t, s, at, v, wide) != 0 ||
	    (how == 2 && memop_wait(t, o, at, v, wide) != 0))
		return -1;
	memcpy(b->ref + off, &v, wide ? 8 : 4);
	used(b, how >= 2 ? o : s);
	return 0;
}

/* One of the operations above. */
static int op_pitched_or_memop(struct thread *t)
{
	uint64_t r = rnd(t, 3);

	return r == 0 ? op_copy2d(t) : r == 1 ? op_memset2d(t) : op_memop(t);
}


static int step(struct thread *t)
{
	uint64_t r = rnd(t, 100);

	if (trace_on > 0) {
		fprintf(stderr, "T%d op %d r=%llu nb=%d:", t->tid, t->op, (unsigned long long)r, t->nb);
		for (int i = 0; i < t->nb; i++)
			fprintf(stderr, " [%d %#llx %zu s%d]", i, (unsigned long long)t->b[i].p, t->b[i].size, t->b[i].stream);
		fprintf(stderr, "\n");
	}

	if (t->nb == 0 || (r < 12 && t->nb < MAXBUF))
		return op_alloc(t);
	if (r < 18)
		return op_free(t, (int)rnd(t, t->nb));
	if (r < 36)
		return op_fill(t);
	if (r < 54)
		return op_axpy(t);
	if (r < 64)
		return op_htod(t);
	if (r < 74)
		return op_dtoh(t);
	if (r < 84)
		return op_dtod(t);
	if (r < 89)
		return op_memset(t);
	if (r < 93)
		return op_pitched_or_memop(t);
	if (sync_all(t) != 0)
		return -1;
	return verify(t, (int)rnd(t, t->nb));
}

/* One thread's part of a sequence: its operations, then a check of every buffer, then frees. */
static int run_thread(struct thread *t)
{
	/* Start with enough buffers that the threads together exceed the budget. */
	for (t->op = -5; t->op < 0; t->op++)
		if (op_alloc(t) != 0)
			return -1;
	for (t->op = 0; t->op < t->cfg->ops; t->op++)
		if (step(t) != 0)
			return -1;
	if (sync_all(t) != 0)
		return -1;
	for (int i = 0; i < t->nb; i++)
		if (verify(t, i) != 0)
			return -1;
	while (t->nb > 0)
		if (op_free(t, t->nb - 1) != 0)
			return -1;
	return sync_all(t);
}

static void *thread_main(void *arg)
{
	struct thread *t = arg;

	if (cuCtxSetCurrent(simtest_ctx) != CUDA_SUCCESS) {
		snprintf(t->err, sizeof(t->err), "thread %d: cannot make the context current", t->tid);
		return NULL;
	}
	if (run_thread(t) != 0 && t->err[0] == '\0')
		snprintf(t->err, sizeof(t->err), "thread %d failed", t->tid);
	/* Leave nothing behind for the next sequence, even after a failure. */
	for (int s = 0; s < STREAMS; s++)
		cuStreamSynchronize(streams[t->tid][s]);
	for (int i = 0; i < t->npend; i++) {
		free(t->pend[i].host);
		free(t->pend[i].want);
	}
	for (int i = 0; i < t->nb; i++)
		free(t->b[i].ref);
	return NULL;
}

static CUevent events[THREADS][EVENTS];

static void run_sequence(const struct config *c, uint64_t seed)
{
	struct thread t[THREADS];
	pthread_t th[THREADS];

	/* Read before the threads start, which all use it. */
	if (trace_on < 0)
		trace_on = getenv("MV_TRACE") != NULL;
	for (int k = 0; k < THREADS; k++) {
		memset(&t[k], 0, sizeof(t[k]));
		t[k].cfg = c;
		t[k].tid = k;
		t[k].seed = seed;
		t[k].rng = seed * 0x100000001b3ull + (uint64_t)k * 0x9e3779b97f4a7c15ull + 1;
		memcpy(t[k].ev, events[k], sizeof(t[k].ev));
		ck_assert_int_eq(pthread_create(&th[k], NULL, thread_main, &t[k]), 0);
	}
	for (int k = 0; k < THREADS; k++)
		ck_assert_int_eq(pthread_join(th[k], NULL), 0);
	for (int k = 0; k < THREADS; k++)
		ck_assert_msg(t[k].err[0] == '\0', "config %s, seed %llu (replay: MV_SEED=%llu): %s", c->name,
			      (unsigned long long)seed, (unsigned long long)seed, t[k].err);
}

/* Each configuration's sequences run as PARTS tests, each a process of its own under the case's
 * timeout: a bound on one part's work, whatever the sanitizer's slowdown. */
#define PARTS 4

START_TEST(test_random_sequences)
{
	const struct config *c = &configs[_i / PARTS];
	const char *replay = getenv("MV_SEED");
	struct memvirt_counters before, after;
	int part = _i % PARTS, lo = c->sequences * part / PARTS, count = c->sequences * (part + 1) / PARTS - lo;
	uint64_t first = (uint64_t)(_i / PARTS) * 100000 + 1 + (uint64_t)lo;

	if (replay != NULL && *replay != '\0' && part != 0)
		return;

	for (size_t i = 0; c->env[i] != NULL; i++)
		simtest_env(c->env[i], (const char *)0);
	simtest_init();
	CHK(cuModuleGetFunction(&fn_fill, simtest_mod, "mv_fill"));
	CHK(cuModuleGetFunction(&fn_axpy, simtest_mod, "mv_axpy"));
	for (int k = 0; k < THREADS; k++) {
		for (int s = 0; s < STREAMS; s++)
			CHK(cuStreamCreate(&streams[k][s], CU_STREAM_NON_BLOCKING));
		for (int e = 0; e < EVENTS; e++)
			CHK(cuEventCreate(&events[k][e], CU_EVENT_DISABLE_TIMING));
	}
	if (replay != NULL && *replay != '\0') {
		first = strtoull(replay, NULL, 0);
		count = 1;
	}
	before = itest_counters();
	for (int k = 0; k < count; k++)
		run_sequence(c, first + (uint64_t)k);
	CHK(cuCtxSynchronize());
	after = itest_counters();
	if (getenv("MV_VERBOSE") != NULL)
		fprintf(stderr, "config %s: %d sequences, %llu page-outs, %llu page-ins, %llu fault-ins\n", c->name,
			count, (unsigned long long)(after.page_outs - before.page_outs),
			(unsigned long long)(after.page_ins - before.page_ins),
			(unsigned long long)(after.fault_ins - before.fault_ins));
	ck_assert_uint_eq(after.oom, before.oom);
	ck_assert_uint_le(after.resident_bytes, after.budget);
	if (c->expect_paging && count > 1)
		ck_assert_msg(after.page_outs > before.page_outs + (uint64_t)count &&
				      after.page_ins > before.page_ins + (uint64_t)count,
			      "config %s: too little paging for the test to mean much: %llu page-outs, %llu page-ins "
			      "over %d sequences",
			      c->name, (unsigned long long)(after.page_outs - before.page_outs),
			      (unsigned long long)(after.page_ins - before.page_ins), count);
}
END_TEST

/* ---- per-thread default streams ---- */

/* Four threads, each on its per-thread default stream only (CU_STREAM_PER_THREAD through the
 * ordinary entry points, and cuLaunchKernel_ptsz), run random kernels, copies and memsets over
 * buffers of their own, checked against a host model, under a budget of six of their sixteen
 * buffers, with the safety net off and on. */
#define PT_THREADS 4
#define PT_BUFS 4
#define PT_NF (16 * 1024) /* floats per buffer: one 64KiB granule */
#define PT_OPS 60

static const char *const pt_env[2][6] = {
	{"SIMCUDA_MEM=64MiB", "SIMCUDA_GRANULARITY=64KiB", "MEMVIRT_SLAB_THRESHOLD=16KiB", "MEMVIRT_BUDGET=384KiB",
	 "SIMCUDA_NO_HOST_VMM=1", NULL},
	{"SIMCUDA_MEM=64MiB", "SIMCUDA_GRANULARITY=64KiB", "MEMVIRT_SLAB_THRESHOLD=16KiB", "MEMVIRT_BUDGET=384KiB",
	 NULL, NULL},
};

struct pt_thread {
	uint64_t rng;
	CUdeviceptr p[PT_BUFS];
	float *ref[PT_BUFS];
	char err[256];
};

typedef CUresult (*pt_launch_fn)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
				 unsigned, CUstream, void **, void **);
static pt_launch_fn pt_launch_ptsz;

/* A kernel on this thread's per-thread stream, by either way in. */
static CUresult pt_launch(struct pt_thread *t, CUfunction f, void **args)
{
	if (itest_rand(&t->rng) % 2)
		return pt_launch_ptsz(f, 1, 1, 1, 1, 1, 1, 0, NULL, args, NULL);
	return cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, CU_STREAM_PER_THREAD, args, NULL);
}

/* One random operation on the per-thread stream, and its effect on the model. */
static CUresult pt_step(struct pt_thread *t, float *host)
{
	static const float as[] = {1.0f, -1.0f, 2.0f, -2.0f};
	int i = (int)(itest_rand(&t->rng) % PT_BUFS), j = (int)(itest_rand(&t->rng) % PT_BUFS);
	uint64_t off = itest_rand(&t->rng) % PT_NF, n = 1 + itest_rand(&t->rng) % (PT_NF - off);
	float v = (float)((int)(itest_rand(&t->rng) % 64) - 32), a = as[itest_rand(&t->rng) % 4];
	CUdeviceptr p = t->p[i] + off * 4, q = t->p[j] + off * 4;
	CUresult r;

	switch (itest_rand(&t->rng) % 4) {
	case 0: {
		void *args[] = {&p, &v, &n};
		if ((r = pt_launch(t, fn_fill, args)) == CUDA_SUCCESS)
			for (uint64_t k = 0; k < n; k++)
				t->ref[i][off + k] = v;
		return r;
	}
	case 1: {
		void *args[] = {&p, &q, &a, &n};
		if (i == j)
			return CUDA_SUCCESS;
		if ((r = pt_launch(t, fn_axpy, args)) == CUDA_SUCCESS)
			for (uint64_t k = 0; k < n; k++)
				t->ref[i][off + k] = t->ref[i][off + k] + a * t->ref[j][off + k];
		return r;
	}
	case 2: {
		uint32_t bits;
		memcpy(&bits, &v, 4);
		if ((r = cuMemsetD32Async(p, bits, n, CU_STREAM_PER_THREAD)) == CUDA_SUCCESS)
			for (uint64_t k = 0; k < n; k++)
				t->ref[i][off + k] = v;
		return r;
	}
	default:
		for (uint64_t k = 0; k < n; k++)
			host[k] = v + (float)(k % 7);
		if ((r = cuMemcpyHtoDAsync(p, host, n * 4, CU_STREAM_PER_THREAD)) == CUDA_SUCCESS)
			r = cuStreamSynchronize(CU_STREAM_PER_THREAD); /* host is reused at once */
		if (r == CUDA_SUCCESS)
			memcpy(t->ref[i] + off, host, n * 4);
		return r;
	}
}

/* Runs a thread's operations, then compares every buffer with the model. Returns 0 or -1. */
static int pt_run(struct pt_thread *t, float *host)
{
	CUresult r = CUDA_SUCCESS;

	for (int op = 0; op < PT_OPS && r == CUDA_SUCCESS; op++)
		r = pt_step(t, host);
	if (r == CUDA_SUCCESS)
		r = cuStreamSynchronize(CU_STREAM_PER_THREAD);
	if (r != CUDA_SUCCESS) {
		snprintf(t->err, sizeof(t->err), "%s", simtest_err_name(r));
		return -1;
	}
	for (int i = 0; i < PT_BUFS; i++) {
		if ((r = cuMemcpyDtoHAsync(host, t->p[i], PT_NF * 4, CU_STREAM_PER_THREAD)) != CUDA_SUCCESS ||
		    (r = cuStreamSynchronize(CU_STREAM_PER_THREAD)) != CUDA_SUCCESS) {
			snprintf(t->err, sizeof(t->err), "reading buffer %d: %s", i, simtest_err_name(r));
			return -1;
		}
		if (memcmp(host, t->ref[i], PT_NF * 4) != 0) {
			snprintf(t->err, sizeof(t->err), "buffer %d differs from the model", i);
			return -1;
		}
	}
	return 0;
}

static void *pt_main(void *arg)
{
	struct pt_thread *t = arg;
	float *host = malloc(PT_NF * 4);

	if (host == NULL || cuCtxSetCurrent(simtest_ctx) != CUDA_SUCCESS)
		snprintf(t->err, sizeof(t->err), "cannot start");
	else
		pt_run(t, host);
	free(host);
	return NULL;
}

START_TEST(test_per_thread_sequences)
{
	struct pt_thread t[PT_THREADS];
	pthread_t th[PT_THREADS];
	uint64_t outs;

	for (size_t i = 0; pt_env[_i][i] != NULL; i++)
		simtest_env(pt_env[_i][i], (const char *)0);
	simtest_init();
	CHK(cuModuleGetFunction(&fn_fill, simtest_mod, "mv_fill"));
	CHK(cuModuleGetFunction(&fn_axpy, simtest_mod, "mv_axpy"));
	pt_launch_ptsz = (pt_launch_fn)dlsym(RTLD_DEFAULT, "cuLaunchKernel_ptsz");
	ck_assert_ptr_nonnull(pt_launch_ptsz);
	outs = itest_counters().page_outs;
	for (uint64_t seed = 1; seed <= 8; seed++) {
		for (int k = 0; k < PT_THREADS; k++) {
			memset(&t[k], 0, sizeof(t[k]));
			t[k].rng = seed * 0x9e3779b97f4a7c15ull + (uint64_t)k + 1;
			for (int i = 0; i < PT_BUFS; i++) {
				t[k].ref[i] = calloc(PT_NF, 4);
				ck_assert_ptr_nonnull(t[k].ref[i]);
				CHK(cuMemAlloc(&t[k].p[i], PT_NF * 4));
				CHK(cuMemsetD32(t[k].p[i], 0, PT_NF));
			}
		}
		for (int k = 0; k < PT_THREADS; k++)
			ck_assert_int_eq(pthread_create(&th[k], NULL, pt_main, &t[k]), 0);
		for (int k = 0; k < PT_THREADS; k++)
			ck_assert_int_eq(pthread_join(th[k], NULL), 0);
		for (int k = 0; k < PT_THREADS; k++) {
			ck_assert_msg(t[k].err[0] == '\0', "seed %llu, thread %d: %s", (unsigned long long)seed, k,
				      t[k].err);
			for (int i = 0; i < PT_BUFS; i++) {
				CHK(cuMemFree(t[k].p[i]));
				free(t[k].ref[i]);
			}
		}
	}
	ck_assert_msg(itest_counters().page_outs > outs + 8, "too little paging: %llu page-outs",
		      (unsigned long long)(itest_counters().page_outs - outs));
	ck_assert_uint_eq(itest_counters().oom, 0);
}
END_TEST

static Suite *property_suite(void)
{
	Suite *s = suite_create("interpose_property");
	TCase *tc = simtest_tcase(s, "random", 120);

	tcase_add_loop_test(tc, test_random_sequences, 0, NCONFIGS * PARTS);
	tc = simtest_tcase(s, "per_thread", 120);
	tcase_add_loop_test(tc, test_per_thread_sequences, 0, 2);
	return s;
}

int main(int argc, char **argv)
{
	itest_main_begin(argc, argv);
	return simtest_run(property_suite());
}
