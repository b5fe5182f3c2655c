/* The workload kernels as plain C, with their parameter layouts, costs and memory ranges (see
 * kernels.h). Compiled with -ffp-contract=off: every sum runs in the order kernels.cu uses. */
#include "tests/workloads/kernels.h"

#include <string.h>

/* Argument access: args[i] points at parameter i's value, as in cuLaunchKernel. Pointer parameters hold
 * addresses that the caller has made valid host addresses. */
#define ARG_PTR(i, T) ((T *)(uintptr_t)(*(const uint64_t *)args[(i)]))
#define ARG_U64(i) (*(const uint64_t *)args[(i)])
#define ARG_U32(i) (*(const uint32_t *)args[(i)])
#define ARG_F32(i) (*(const float *)args[(i)])

/* Appends one range when its pointer is not NULL and there is room. */
static int
kranges_add(struct mv_krange *out, int n, int max, uint64_t addr, uint64_t bytes)
{
	if (addr == 0 || bytes == 0 || n >= max)
		return n;
	out[n].addr = addr;
	out[n].bytes = bytes;
	return n + 1;
}

static float
kernels_hsig(float x)
{
	if (x <= -2.0f)
		return 0.0f;
	if (x >= 2.0f)
		return 1.0f;
	return 0.25f * x + 0.5f;
}

static float
kernels_htanh(float x)
{
	if (x <= -1.0f)
		return -1.0f;
	if (x >= 1.0f)
		return 1.0f;
	return x;
}

/* ---- mv_fill(float *p, float v, uint64_t n) ---------------------------------------------------- */
static int
fill_run(void *const *args, const struct mv_kenv *env)
{
	float *p = ARG_PTR(0, float);
	float v = ARG_F32(1);
	uint64_t n = ARG_U64(2);

	for (uint64_t i = 0; i < n; i++)
		p[i] = v;
	return 0;
}

static void
fill_cost(void *const *args, double *flops, double *bytes)
{
	*flops = 0;
	*bytes = 4.0 * (double)ARG_U64(2);
}

static int
fill_ranges(void *const *args, struct mv_krange *out, int max)
{
	return kranges_add(out, 0, max, ARG_U64(0), 4 * ARG_U64(2));
}

/* ---- mv_axpy(float *y, const float *x, float a, uint64_t n) ------------------------------------ */
static int
axpy_run(void *const *args, const struct mv_kenv *env)
{
	float *y = ARG_PTR(0, float);
	const float *x = ARG_PTR(1, const float);
	float a = ARG_F32(2);
	uint64_t n = ARG_U64(3);

	for (uint64_t i = 0; i < n; i++)
		y[i] = y[i] + a * x[i];
	return 0;
}

static void
axpy_cost(void *const *args, double *flops, double *bytes)
{
	*flops = 2.0 * (double)ARG_U64(3);
	*bytes = 12.0 * (double)ARG_U64(3);
}

static int
axpy_ranges(void *const *args, struct mv_krange *out, int max)
{
	uint64_t b = 4 * ARG_U64(3);
	int n = kranges_add(out, 0, max, ARG_U64(0), b);
	return kranges_add(out, n, max, ARG_U64(1), b);
}

/* ---- Elementwise kernels over n floats: (out, in..., uint64_t n), nptr pointers before n. ------- */
static void
ew_cost(void *const *args, int nptr, double *flops, double *bytes)
{
	double n = (double)ARG_U64(nptr);

	*flops = n;
	*bytes = 4.0 * n * nptr;
}

static int
ew_ranges(void *const *args, int nptr, struct mv_krange *out, int max)
{
	uint64_t b = 4 * ARG_U64(nptr);
	int n = 0;

	for (int i = 0; i < nptr; i++)
		n = kranges_add(out, n, max, ARG_U64(i), b);
	return n;
}

static void
ew2_cost(void *const *args, double *flops, double *bytes)
{
	ew_cost(args, 2, flops, bytes);
}

static void
ew3_cost(void *const *args, double *flops, double *bytes)
{
	ew_cost(args, 3, flops, bytes);
}

static int
ew2_ranges(void *const *args, struct mv_krange *out, int max)
{
	return ew_ranges(args, 2, out, max);
}

static int
ew3_ranges(void *const *args, struct mv_krange *out, int max)
{
	return ew_ranges(args, 3, out, max);
}

/* mv_relu_fwd(float *y, const float *x, uint64_t n) */
static int
relu_fwd_run(void *const *args, const struct mv_kenv *env)
{
	float *y = ARG_PTR(0, float);
	const float *x = ARG_PTR(1, const float);
	uint64_t n = ARG_U64(2);

	for (uint64_t i = 0; i < n; i++)
		y[i] = x[i] > 0.0f ? x[i] : 0.0f;
	return 0;
}

/* mv_relu_bwd(float *dx, const float *dy, const float *x, uint64_t n) */
static int
relu_bwd_run(void *const *args, const struct mv_kenv *env)
{
	float *dx = ARG_PTR(0, float);
	const float *dy = ARG_PTR(1, const float);
	const float *x = ARG_PTR(2, const float);
	uint64_t n = ARG_U64(3);

	for (uint64_t i = 0; i < n; i++)
		dx[i] = x[i] > 0.0f ? dy[i] : 0.0f;
	return 0;
}

/* mv_add(float *y, const float *a, const float *b, uint64_t n): y = a + b */
static int
add_run(void *const *args, const struct mv_kenv *env)
{
	float *y = ARG_PTR(0, float);
	const float *a = ARG_PTR(1, const float);
	const float *b = ARG_PTR(2, const float);
	uint64_t n = ARG_U64(3);

	for (uint64_t i = 0; i < n; i++)
		y[i] = a[i] + b[i];
	return 0;
}

/* mv_sub(float *y, const float *a, const float *b, uint64_t n): y = a - b */
static int
sub_run(void *const *args, const struct mv_kenv *env)
{
	float *y = ARG_PTR(0, float);
	const float *a = ARG_PTR(1, const float);
	const float *b = ARG_PTR(2, const float);
	uint64_t n = ARG_U64(3);

	for (uint64_t i = 0; i < n; i++)
		y[i] = a[i] - b[i];
	return 0;
}

/* mv_mul(float *y, const float *a, const float *b, uint64_t n): y = a * b */
static int
mul_run(void *const *args, const struct mv_kenv *env)
{
	float *y = ARG_PTR(0, float);
	const float *a = ARG_PTR(1, const float);
	const float *b = ARG_PTR(2, const float);
	uint64_t n = ARG_U64(3);

	for (uint64_t i = 0; i < n; i++)
		y[i] = a[i] * b[i];
	return 0;
}

/* ---- mv_sgd(float *w, const float *g, float lr, uint64_t n) ------------------------------------ */
static int
sgd_run(void *const *args, const struct mv_kenv *env)
{
	float *w = ARG_PTR(0, float);
	const float *g = ARG_PTR(1, const float);
	float lr = ARG_F32(2);
	uint64_t n = ARG_U64(3);

	for (uint64_t i = 0; i < n; i++)
		w[i] = w[i] - lr * g[i];
	return 0;
}

/* ---- mv_init_uniform(float *p, uint64_t n, uint64_t seed, float scale) ------------------------- */
static int
init_uniform_run(void *const *args, const struct mv_kenv *env)
{
	float *p = ARG_PTR(0, float);
	uint64_t n = ARG_U64(1);
	uint64_t seed = ARG_U64(2);
	float scale = ARG_F32(3);

	for (uint64_t i = 0; i < n; i++) {
		/* splitmix64 of (seed, index): the top 24 bits convert to float exactly. */
		uint64_t z = seed ^ (i * 0x9E3779B97F4A7C15ull);
		z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
		z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
		z ^= z >> 31;
		float u = (float)(z >> 40) * (1.0f / 16777216.0f);
		p[i] = (u * 2.0f - 1.0f) * scale;
	}
	return 0;
}

static void
init_uniform_cost(void *const *args, double *flops, double *bytes)
{
	*flops = 3.0 * (double)ARG_U64(1);
	*bytes = 4.0 * (double)ARG_U64(1);
}

static int
init_uniform_ranges(void *const *args, struct mv_krange *out, int max)
{
	return kranges_add(out, 0, max, ARG_U64(0), 4 * ARG_U64(1));
}

/* ---- GEMM -------------------------------------------------------------------------------------- */

/* One (possibly transposed, possibly accumulating) row-major product. Each c element is the sum over
 * kk = 0..k-1 in order, started from 0, then added to c when accumulating; the loops run i-kk-j over
 * a block of columns so that the inner loop is contiguous, which keeps that per-element order. */
#define GEMM_JBLOCK 256
static void
kernels_gemm(float *c, const float *a, const float *b, uint32_t m, uint32_t n, uint32_t k,
    uint32_t flags)
{
	float acc[GEMM_JBLOCK];
	int ta = (flags & MV_GEMM_TRANS_A) != 0;
	int tb = (flags & MV_GEMM_TRANS_B) != 0;
	int accum = (flags & MV_GEMM_ACCUM) != 0;

	for (uint32_t i = 0; i < m; i++) {
		float *crow = c + (uint64_t)i * n;

		for (uint32_t j0 = 0; j0 < n; j0 += GEMM_JBLOCK) {
			uint32_t jn = n - j0 < GEMM_JBLOCK ? n - j0 : GEMM_JBLOCK;

			for (uint32_t j = 0; j < jn; j++)
				acc[j] = 0.0f;
			for (uint32_t kk = 0; kk < k; kk++) {
				float av = ta ? a[(uint64_t)kk * m + i] : a[(uint64_t)i * k + kk];

				if (tb) {
					for (uint32_t j = 0; j < jn; j++)
						acc[j] = acc[j] + av * b[(uint64_t)(j0 + j) * k + kk];
				} else {
					const float *brow = b + (uint64_t)kk * n + j0;

					for (uint32_t j = 0; j < jn; j++)
						acc[j] = acc[j] + av * brow[j];
				}
			}
			for (uint32_t j = 0; j < jn; j++)
				crow[j0 + j] = accum ? crow[j0 + j] + acc[j] : acc[j];
		}
	}
}

static void
gemm_cost_dims(uint32_t m, uint32_t n, uint32_t k, uint32_t flags, double batch, double *flops,
    double *bytes)
{
	double mm = m, nn = n, kk = k;

	*flops = batch * 2.0 * mm * nn * kk;
	*bytes = batch * 4.0 * (mm * kk + kk * nn + mm * nn * ((flags & MV_GEMM_ACCUM) ? 2.0 : 1.0));
}

static int
gemm_ranges_dims(void *const *args, uint32_t m, uint32_t n, uint32_t k, uint64_t batch,
    struct mv_krange *out, int max)
{
	int r = kranges_add(out, 0, max, ARG_U64(0), batch * 4 * (uint64_t)m * n);
	r = kranges_add(out, r, max, ARG_U64(1), batch * 4 * (uint64_t)m * k);
	return kranges_add(out, r, max, ARG_U64(2), batch * 4 * (uint64_t)k * n);
}

/* mv_gemm(float *c, const float *a, const float *b, uint32_t m, uint32_t n, uint32_t k) */
static int
gemm_run(void *const *args, const struct mv_kenv *env)
{
	kernels_gemm(ARG_PTR(0, float), ARG_PTR(1, const float), ARG_PTR(2, const float), ARG_U32(3),
	    ARG_U32(4), ARG_U32(5), 0);
	return 0;
}

static void
gemm_cost(void *const *args, double *flops, double *bytes)
{
	gemm_cost_dims(ARG_U32(3), ARG_U32(4), ARG_U32(5), 0, 1.0, flops, bytes);
}

static int
gemm_ranges(void *const *args, struct mv_krange *out, int max)
{
	return gemm_ranges_dims(args, ARG_U32(3), ARG_U32(4), ARG_U32(5), 1, out, max);
}

/* mv_gemm_ex(c, a, b, m, n, k, uint32_t flags) */
static int
gemm_ex_run(void *const *args, const struct mv_kenv *env)
{
	kernels_gemm(ARG_PTR(0, float), ARG_PTR(1, const float), ARG_PTR(2, const float), ARG_U32(3),
	    ARG_U32(4), ARG_U32(5), ARG_U32(6));
	return 0;
}

static void
gemm_ex_cost(void *const *args, double *flops, double *bytes)
{
	gemm_cost_dims(ARG_U32(3), ARG_U32(4), ARG_U32(5), ARG_U32(6), 1.0, flops, bytes);
}

/* mv_gemm_batched(c, a, b, m, n, k, flags, uint32_t batch): batch products packed back to back. */
static int
gemm_batched_run(void *const *args, const struct mv_kenv *env)
{
	float *c = ARG_PTR(0, float);
	const float *a = ARG_PTR(1, const float);
	const float *b = ARG_PTR(2, const float);
	uint64_t m = ARG_U32(3), n = ARG_U32(4), k = ARG_U32(5);
	uint32_t flags = ARG_U32(6), batch = ARG_U32(7);

	for (uint32_t z = 0; z < batch; z++)
		kernels_gemm(c + z * m * n, a + z * m * k, b + z * k * n, (uint32_t)m, (uint32_t)n,
		    (uint32_t)k, flags);
	return 0;
}

static void
gemm_batched_cost(void *const *args, double *flops, double *bytes)
{
	gemm_cost_dims(ARG_U32(3), ARG_U32(4), ARG_U32(5), ARG_U32(6), ARG_U32(7), flops, bytes);
}

static int
gemm_batched_ranges(void *const *args, struct mv_krange *out, int max)
{
	return gemm_ranges_dims(args, ARG_U32(3), ARG_U32(4), ARG_U32(5), ARG_U32(7), out, max);
}

/* ---- Convolution: NCHW, square images, stride 1, same padding, odd r. -------------------------- */

/* mv_conv_fwd(float *y, const float *x, const float *w, n, c, hw, k, r) */
static int
conv_fwd_run(void *const *args, const struct mv_kenv *env)
{
	float *y = ARG_PTR(0, float);
	const float *x = ARG_PTR(1, const float);
	const float *w = ARG_PTR(2, const float);
	int64_t n = ARG_U32(3), c = ARG_U32(4), hw = ARG_U32(5), k = ARG_U32(6), r = ARG_U32(7);
	int64_t pad = r / 2;

	for (int64_t in = 0; in < n; in++)
		for (int64_t ik = 0; ik < k; ik++)
			for (int64_t i = 0; i < hw; i++)
				for (int64_t j = 0; j < hw; j++) {
					float acc = 0.0f;

					for (int64_t ic = 0; ic < c; ic++) {
						const float *xp = x + (in * c + ic) * hw * hw;
						const float *wp = w + (ik * c + ic) * r * r;

						for (int64_t di = 0; di < r; di++) {
							int64_t si = i + di - pad;

							if (si < 0 || si >= hw)
								continue;
							for (int64_t dj = 0; dj < r; dj++) {
								int64_t sj = j + dj - pad;

								if (sj < 0 || sj >= hw)
									continue;
								acc = acc + xp[si * hw + sj] * wp[di * r + dj];
							}
						}
					}
					y[((in * k + ik) * hw + i) * hw + j] = acc;
				}
	return 0;
}

static void
conv_cost_dims(double n, double c, double hw, double k, double r, double *flops, double *bytes)
{
	*flops = 2.0 * n * k * c * hw * hw * r * r;
	*bytes = 4.0 * (n * c * hw * hw + k * c * r * r + n * k * hw * hw);
}

static void
conv_fwd_cost(void *const *args, double *flops, double *bytes)
{
	conv_cost_dims(ARG_U32(3), ARG_U32(4), ARG_U32(5), ARG_U32(6), ARG_U32(7), flops, bytes);
}

static int
conv_fwd_ranges(void *const *args, struct mv_krange *out, int max)
{
	uint64_t n = ARG_U32(3), c = ARG_U32(4), hw = ARG_U32(5), k = ARG_U32(6), r = ARG_U32(7);
	int q = kranges_add(out, 0, max, ARG_U64(0), 4 * n * k * hw * hw);

	q = kranges_add(out, q, max, ARG_U64(1), 4 * n * c * hw * hw);
	return kranges_add(out, q, max, ARG_U64(2), 4 * k * c * r * r);
}

/* mv_conv_bwd(float *dx, float *dw, const float *dy, const float *x, const float *w, n, c, hw, k, r) */
static int
conv_bwd_run(void *const *args, const struct mv_kenv *env)
{
	float *dx = ARG_PTR(0, float);
	float *dw = ARG_PTR(1, float);
	const float *dy = ARG_PTR(2, const float);
	const float *x = ARG_PTR(3, const float);
	const float *w = ARG_PTR(4, const float);
	int64_t n = ARG_U32(5), c = ARG_U32(6), hw = ARG_U32(7), k = ARG_U32(8), r = ARG_U32(9);
	int64_t pad = r / 2;

	if (dx != NULL) {
		for (int64_t in = 0; in < n; in++)
			for (int64_t ic = 0; ic < c; ic++)
				for (int64_t i = 0; i < hw; i++)
					for (int64_t j = 0; j < hw; j++) {
						float acc = 0.0f;

						for (int64_t ik = 0; ik < k; ik++) {
							const float *dyp = dy + (in * k + ik) * hw * hw;
							const float *wp = w + (ik * c + ic) * r * r;

							for (int64_t di = 0; di < r; di++) {
								int64_t si = i - di + pad;

								if (si < 0 || si >= hw)
									continue;
								for (int64_t dj = 0; dj < r; dj++) {
									int64_t sj = j - dj + pad;

									if (sj < 0 || sj >= hw)
										continue;
									acc = acc + dyp[si * hw + sj] *
									    wp[di * r + dj];
								}
							}
						}
						dx[((in * c + ic) * hw + i) * hw + j] = acc;
					}
	}
	for (int64_t ik = 0; ik < k; ik++)
		for (int64_t ic = 0; ic < c; ic++)
			for (int64_t di = 0; di < r; di++)
				for (int64_t dj = 0; dj < r; dj++) {
					float acc = 0.0f;

					for (int64_t in = 0; in < n; in++) {
						const float *dyp = dy + (in * k + ik) * hw * hw;
						const float *xp = x + (in * c + ic) * hw * hw;

						for (int64_t i = 0; i < hw; i++) {
							int64_t si = i + di - pad;

							if (si < 0 || si >= hw)
								continue;
							for (int64_t j = 0; j < hw; j++) {
								int64_t sj = j + dj - pad;

								if (sj < 0 || sj >= hw)
									continue;
								acc = acc + dyp[i * hw + j] * xp[si * hw + sj];
							}
						}
					}
					dw[((ik * c + ic) * r + di) * r + dj] = acc;
				}
	return 0;
}

static void
conv_bwd_cost(void *const *args, double *flops, double *bytes)
{
	double f, b;

	conv_cost_dims(ARG_U32(5), ARG_U32(6), ARG_U32(7), ARG_U32(8), ARG_U32(9), &f, &b);
	/* dw alone costs what the forward pass does; dx doubles it. */
	*flops = ARG_U64(0) != 0 ? 2.0 * f : f;
	*bytes = ARG_U64(0) != 0 ? 2.0 * b : b;
}

static int
conv_bwd_ranges(void *const *args, struct mv_krange *out, int max)
{
	uint64_t n = ARG_U32(5), c = ARG_U32(6), hw = ARG_U32(7), k = ARG_U32(8), r = ARG_U32(9);
	int q = kranges_add(out, 0, max, ARG_U64(0), 4 * n * c * hw * hw);

	q = kranges_add(out, q, max, ARG_U64(1), 4 * k * c * r * r);
	q = kranges_add(out, q, max, ARG_U64(2), 4 * n * k * hw * hw);
	q = kranges_add(out, q, max, ARG_U64(3), 4 * n * c * hw * hw);
	return kranges_add(out, q, max, ARG_U64(4), 4 * k * c * r * r);
}

/* ---- Pooling: (out, in, uint32_t nc, uint32_t hw); hw is the side of the larger image. ---------- */

/* mv_pool2_fwd(float *y, const float *x, nc, hw): 2x2 average, hw even. */
static int
pool2_fwd_run(void *const *args, const struct mv_kenv *env)
{
	float *y = ARG_PTR(0, float);
	const float *x = ARG_PTR(1, const float);
	uint64_t nc = ARG_U32(2), hw = ARG_U32(3), ho = hw / 2;

	for (uint64_t p = 0; p < nc; p++)
		for (uint64_t i = 0; i < ho; i++)
			for (uint64_t j = 0; j < ho; j++) {
				const float *s = x + (p * hw + 2 * i) * hw + 2 * j;

				y[(p * ho + i) * ho + j] = ((s[0] + s[1]) + (s[hw] + s[hw + 1])) * 0.25f;
			}
	return 0;
}

/* mv_pool2_bwd(float *dx, const float *dy, nc, hw) */
static int
pool2_bwd_run(void *const *args, const struct mv_kenv *env)
{
	float *dx = ARG_PTR(0, float);
	const float *dy = ARG_PTR(1, const float);
	uint64_t nc = ARG_U32(2), hw = ARG_U32(3), ho = hw / 2;

	for (uint64_t p = 0; p < nc; p++)
		for (uint64_t i = 0; i < hw; i++)
			for (uint64_t j = 0; j < hw; j++)
				dx[(p * hw + i) * hw + j] = dy[(p * ho + i / 2) * ho + j / 2] * 0.25f;
	return 0;
}

/* mv_gap_fwd(float *y, const float *x, nc, hw): mean over each hw x hw image. */
static int
gap_fwd_run(void *const *args, const struct mv_kenv *env)
{
	float *y = ARG_PTR(0, float);
	const float *x = ARG_PTR(1, const float);
	uint64_t nc = ARG_U32(2), hw2 = (uint64_t)ARG_U32(3) * ARG_U32(3);

	for (uint64_t p = 0; p < nc; p++) {
		float acc = 0.0f;

		for (uint64_t q = 0; q < hw2; q++)
			acc = acc + x[p * hw2 + q];
		y[p] = acc / (float)hw2;
	}
	return 0;
}

/* mv_gap_bwd(float *dx, const float *dy, nc, hw) */
static int
gap_bwd_run(void *const *args, const struct mv_kenv *env)
{
	float *dx = ARG_PTR(0, float);
	const float *dy = ARG_PTR(1, const float);
	uint64_t nc = ARG_U32(2), hw2 = (uint64_t)ARG_U32(3) * ARG_U32(3);

	for (uint64_t p = 0; p < nc; p++)
		for (uint64_t q = 0; q < hw2; q++)
			dx[p * hw2 + q] = dy[p] / (float)hw2;
	return 0;
}

static void
pool_cost_dims(void *const *args, uint64_t *big, uint64_t *small)
{
	uint64_t nc = ARG_U32(2), hw = ARG_U32(3);

	*big = nc * hw * hw;
	*small = nc * (hw / 2) * (hw / 2);
}

static void
pool2_cost(void *const *args, double *flops, double *bytes)
{
	uint64_t big, small;

	pool_cost_dims(args, &big, &small);
	*flops = (double)big;
	*bytes = 4.0 * (double)(big + small);
}

/* Forward kernels write the small image and read the large one; backward kernels the reverse. */
static int
pool2_fwd_ranges(void *const *args, struct mv_krange *out, int max)
{
	uint64_t big, small;

	pool_cost_dims(args, &big, &small);
	return kranges_add(out, kranges_add(out, 0, max, ARG_U64(0), 4 * small), max, ARG_U64(1),
	    4 * big);
}

static int
pool2_bwd_ranges(void *const *args, struct mv_krange *out, int max)
{
	uint64_t big, small;

	pool_cost_dims(args, &big, &small);
	return kranges_add(out, kranges_add(out, 0, max, ARG_U64(0), 4 * big), max, ARG_U64(1),
	    4 * small);
}

static void
gap_cost(void *const *args, double *flops, double *bytes)
{
	double nc = ARG_U32(2), hw = ARG_U32(3);

	*flops = nc * hw * hw;
	*bytes = 4.0 * (nc * hw * hw + nc);
}

static int
gap_fwd_ranges(void *const *args, struct mv_krange *out, int max)
{
	uint64_t nc = ARG_U32(2), hw = ARG_U32(3);

	return kranges_add(out, kranges_add(out, 0, max, ARG_U64(0), 4 * nc), max, ARG_U64(1),
	    4 * nc * hw * hw);
}

static int
gap_bwd_ranges(void *const *args, struct mv_krange *out, int max)
{
	uint64_t nc = ARG_U32(2), hw = ARG_U32(3);

	return kranges_add(out, kranges_add(out, 0, max, ARG_U64(0), 4 * nc * hw * hw), max,
	    ARG_U64(1), 4 * nc);
}

/* ---- Attention heads: (out, in, uint32_t b, uint32_t s, uint32_t h, uint32_t dh). --------------- */

/* mv_heads_split(float *y, const float *x, b, s, h, dh): y[b][h][s][dh] = x[b][s][h][dh] */
static int
heads_split_run(void *const *args, const struct mv_kenv *env)
{
	float *y = ARG_PTR(0, float);
	const float *x = ARG_PTR(1, const float);
	uint64_t b = ARG_U32(2), s = ARG_U32(3), h = ARG_U32(4), dh = ARG_U32(5);

	for (uint64_t ib = 0; ib < b; ib++)
		for (uint64_t ih = 0; ih < h; ih++)
			for (uint64_t is = 0; is < s; is++)
				memcpy(y + ((ib * h + ih) * s + is) * dh, x + ((ib * s + is) * h + ih) * dh,
				    dh * 4);
	return 0;
}

/* mv_heads_merge(float *y, const float *x, b, s, h, dh): y[b][s][h][dh] = x[b][h][s][dh] */
static int
heads_merge_run(void *const *args, const struct mv_kenv *env)
{
	float *y = ARG_PTR(0, float);
	const float *x = ARG_PTR(1, const float);
	uint64_t b = ARG_U32(2), s = ARG_U32(3), h = ARG_U32(4), dh = ARG_U32(5);

	for (uint64_t ib = 0; ib < b; ib++)
		for (uint64_t ih = 0; ih < h; ih++)
			for (uint64_t is = 0; is < s; is++)
				memcpy(y + ((ib * s + is) * h + ih) * dh, x + ((ib * h + ih) * s + is) * dh,
				    dh * 4);
	return 0;
}

static void
heads_cost(void *const *args, double *flops, double *bytes)
{
	double e = (double)ARG_U32(2) * ARG_U32(3) * ARG_U32(4) * ARG_U32(5);

	*flops = 0;
	*bytes = 8.0 * e;
}

static int
heads_ranges(void *const *args, struct mv_krange *out, int max)
{
	uint64_t e = 4ull * ARG_U32(2) * ARG_U32(3) * ARG_U32(4) * ARG_U32(5);

	return kranges_add(out, kranges_add(out, 0, max, ARG_U64(0), e), max, ARG_U64(1), e);
}

/* ---- Piecewise-linear row normalisation, the stand-in for softmax. ----------------------------- */

/* e = max(x, 0) + 1 and y = e / sum(e) over the row: positive, rows sum to one, no exponential. */
static float
pwnorm_row_sum(const float *x, uint32_t cols)
{
	float s = 0.0f;

	for (uint32_t j = 0; j < cols; j++)
		s = s + ((x[j] > 0.0f ? x[j] : 0.0f) + 1.0f);
	return s;
}

/* mv_pwnorm_fwd(float *y, const float *x, uint32_t rows, uint32_t cols) */
static int
pwnorm_fwd_run(void *const *args, const struct mv_kenv *env)
{
	float *y = ARG_PTR(0, float);
	const float *x = ARG_PTR(1, const float);
	uint64_t rows = ARG_U32(2), cols = ARG_U32(3);

	for (uint64_t r = 0; r < rows; r++) {
		const float *xr = x + r * cols;
		float s = pwnorm_row_sum(xr, (uint32_t)cols);

		for (uint64_t j = 0; j < cols; j++)
			y[r * cols + j] = ((xr[j] > 0.0f ? xr[j] : 0.0f) + 1.0f) / s;
	}
	return 0;
}

/* mv_pwnorm_bwd(float *dx, const float *dy, const float *x, uint32_t rows, uint32_t cols):
 * dx = [x > 0] (dy - sum(dy * y)) / sum(e). */
static int
pwnorm_bwd_run(void *const *args, const struct mv_kenv *env)
{
	float *dx = ARG_PTR(0, float);
	const float *dy = ARG_PTR(1, const float);
	const float *x = ARG_PTR(2, const float);
	uint64_t rows = ARG_U32(3), cols = ARG_U32(4);

	for (uint64_t r = 0; r < rows; r++) {
		const float *xr = x + r * cols, *dyr = dy + r * cols;
		float s = pwnorm_row_sum(xr, (uint32_t)cols);
		float t = 0.0f;

		for (uint64_t j = 0; j < cols; j++)
			t = t + dyr[j] * (((xr[j] > 0.0f ? xr[j] : 0.0f) + 1.0f) / s);
		for (uint64_t j = 0; j < cols; j++)
			dx[r * cols + j] = xr[j] > 0.0f ? (dyr[j] - t) / s : 0.0f;
	}
	return 0;
}

static void
pwnorm_fwd_cost(void *const *args, double *flops, double *bytes)
{
	double e = (double)ARG_U32(2) * ARG_U32(3);

	*flops = 4.0 * e;
	*bytes = 8.0 * e;
}

static int
pwnorm_fwd_ranges(void *const *args, struct mv_krange *out, int max)
{
	uint64_t e = 4ull * ARG_U32(2) * ARG_U32(3);

	return kranges_add(out, kranges_add(out, 0, max, ARG_U64(0), e), max, ARG_U64(1), e);
}

static void
pwnorm_bwd_cost(void *const *args, double *flops, double *bytes)
{
	double e = (double)ARG_U32(3) * ARG_U32(4);

	*flops = 8.0 * e;
	*bytes = 12.0 * e;
}

static int
pwnorm_bwd_ranges(void *const *args, struct mv_krange *out, int max)
{
	uint64_t e = 4ull * ARG_U32(3) * ARG_U32(4);
	int q = kranges_add(out, 0, max, ARG_U64(0), e);

	q = kranges_add(out, q, max, ARG_U64(1), e);
	return kranges_add(out, q, max, ARG_U64(2), e);
}

/* ---- LSTM cell with hard gates. gates rows are [i | f | g | o], each hd wide. ------------------- */

/* mv_lstm_cell_fwd(float *c, float *h, const float *gates, const float *cprev, uint32_t b,
 *     uint32_t hd); cprev NULL means zero. */
static int
lstm_cell_fwd_run(void *const *args, const struct mv_kenv *env)
{
	float *c = ARG_PTR(0, float);
	float *h = ARG_PTR(1, float);
	const float *gates = ARG_PTR(2, const float);
	const float *cprev = ARG_PTR(3, const float);
	uint64_t b = ARG_U32(4), hd = ARG_U32(5);

	for (uint64_t ib = 0; ib < b; ib++)
		for (uint64_t j = 0; j < hd; j++) {
			const float *g = gates + ib * 4 * hd + j;
			float cp = cprev != NULL ? cprev[ib * hd + j] : 0.0f;
			float si = kernels_hsig(g[0]), sf = kernels_hsig(g[hd]);
			float tg = kernels_htanh(g[2 * hd]), so = kernels_hsig(g[3 * hd]);
			float cn = sf * cp + si * tg;

			c[ib * hd + j] = cn;
			h[ib * hd + j] = so * kernels_htanh(cn);
		}
	return 0;
}

/* mv_lstm_cell_bwd(float *dgates, float *dcprev, const float *dh, const float *dc,
 *     const float *gates, const float *cprev, uint32_t b, uint32_t hd); dc and cprev NULL mean zero,
 *     dcprev NULL is not written. */
static int
lstm_cell_bwd_run(void *const *args, const struct mv_kenv *env)
{
	float *dgates = ARG_PTR(0, float);
	float *dcprev = ARG_PTR(1, float);
	const float *dh = ARG_PTR(2, const float);
	const float *dc = ARG_PTR(3, const float);
	const float *gates = ARG_PTR(4, const float);
	const float *cprev = ARG_PTR(5, const float);
	uint64_t b = ARG_U32(6), hd = ARG_U32(7);

	for (uint64_t ib = 0; ib < b; ib++)
		for (uint64_t j = 0; j < hd; j++) {
			uint64_t e = ib * hd + j;
			const float *g = gates + ib * 4 * hd + j;
			float *dg = dgates + ib * 4 * hd + j;
			float cp = cprev != NULL ? cprev[e] : 0.0f;
			float gi = g[0], gf = g[hd], gg = g[2 * hd], go = g[3 * hd];
			float si = kernels_hsig(gi), sf = kernels_hsig(gf);
			float tg = kernels_htanh(gg), so = kernels_hsig(go);
			float cn = sf * cp + si * tg;
			float tc = kernels_htanh(cn);
			float dct = (dc != NULL ? dc[e] : 0.0f) +
			    (cn > -1.0f && cn < 1.0f ? dh[e] * so : 0.0f);

			dg[0] = gi > -2.0f && gi < 2.0f ? (dct * tg) * 0.25f : 0.0f;
			dg[hd] = gf > -2.0f && gf < 2.0f ? (dct * cp) * 0.25f : 0.0f;
			dg[2 * hd] = gg > -1.0f && gg < 1.0f ? dct * si : 0.0f;
			dg[3 * hd] = go > -2.0f && go < 2.0f ? (dh[e] * tc) * 0.25f : 0.0f;
			if (dcprev != NULL)
				dcprev[e] = dct * sf;
		}
	return 0;
}

static void
lstm_cell_fwd_cost(void *const *args, double *flops, double *bytes)
{
	double e = (double)ARG_U32(4) * ARG_U32(5);

	*flops = 10.0 * e;
	*bytes = 4.0 * 7.0 * e;
}

static int
lstm_cell_fwd_ranges(void *const *args, struct mv_krange *out, int max)
{
	uint64_t e = 4ull * ARG_U32(4) * ARG_U32(5);
	int q = kranges_add(out, 0, max, ARG_U64(0), e);

	q = kranges_add(out, q, max, ARG_U64(1), e);
	q = kranges_add(out, q, max, ARG_U64(2), 4 * e);
	return kranges_add(out, q, max, ARG_U64(3), e);
}

static void
lstm_cell_bwd_cost(void *const *args, double *flops, double *bytes)
{
	double e = (double)ARG_U32(6) * ARG_U32(7);

	*flops = 20.0 * e;
	*bytes = 4.0 * 12.0 * e;
}

static int
lstm_cell_bwd_ranges(void *const *args, struct mv_krange *out, int max)
{
	uint64_t e = 4ull * ARG_U32(6) * ARG_U32(7);
	int q = kranges_add(out, 0, max, ARG_U64(0), 4 * e);

	q = kranges_add(out, q, max, ARG_U64(1), e);
	q = kranges_add(out, q, max, ARG_U64(2), e);
	q = kranges_add(out, q, max, ARG_U64(3), e);
	q = kranges_add(out, q, max, ARG_U64(4), 4 * e);
	return kranges_add(out, q, max, ARG_U64(5), e);
}

/* ---- mv_checksum(uint64_t *out, const void *p, uint64_t bytes): FNV-1a 64 ---------------------- */
static int
checksum_run(void *const *args, const struct mv_kenv *env)
{
	uint64_t *out = ARG_PTR(0, uint64_t);
	const unsigned char *p = ARG_PTR(1, const unsigned char);
	uint64_t bytes = ARG_U64(2);
	uint64_t h = 0xcbf29ce484222325ull;

	for (uint64_t i = 0; i < bytes; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	*out = h;
	return 0;
}

static void
checksum_cost(void *const *args, double *flops, double *bytes)
{
	*flops = 2.0 * (double)ARG_U64(2);
	*bytes = (double)ARG_U64(2) + 8.0;
}

static int
checksum_ranges(void *const *args, struct mv_krange *out, int max)
{
	return kranges_add(out, kranges_add(out, 0, max, ARG_U64(0), 8), max, ARG_U64(1), ARG_U64(2));
}

/* ---- mv_gather_ptrs(float *out, const float *const *ptrs, uint32_t count, uint64_t n) ---------- */
static int
gather_ptrs_run(void *const *args, const struct mv_kenv *env)
{
	float *out = ARG_PTR(0, float);
	const float *const *ptrs = ARG_PTR(1, const float *const);
	uint32_t count = ARG_U32(2);
	uint64_t n = ARG_U64(3);

	/* The pointers live in device memory, out of sight of ranges(): each is checked before use. */
	for (uint32_t j = 0; j < count; j++)
		if (env != NULL && env->check(env, (uint64_t)(uintptr_t)ptrs[j], n * 4) != 0)
			return -1;
	for (uint64_t i = 0; i < n; i++) {
		float acc = 0.0f;

		for (uint32_t j = 0; j < count; j++)
			acc = acc + ptrs[j][i];
		out[i] = acc;
	}
	return 0;
}

static void
gather_ptrs_cost(void *const *args, double *flops, double *bytes)
{
	double count = ARG_U32(2), n = (double)ARG_U64(3);

	*flops = count * n;
	*bytes = 4.0 * (count + 1.0) * n + 8.0 * count;
}

static int
gather_ptrs_ranges(void *const *args, struct mv_krange *out, int max)
{
	return kranges_add(out, kranges_add(out, 0, max, ARG_U64(0), 4 * ARG_U64(3)), max, ARG_U64(1),
	    8ull * ARG_U32(2));
}

/* ---- mv_touch2 / mv_touch8 / mv_touch32(float *out, const float *p0, ...) --------------------- */
/* out[0] = p0[0] + p1[0] + ... over the n inputs that follow out, in order. */
static int
touch_run(void *const *args, unsigned n)
{
	float *out = ARG_PTR(0, float);
	float acc = 0.0f;

	for (unsigned j = 0; j < n; j++)
		acc = acc + ARG_PTR(1 + j, const float)[0];
	out[0] = acc;
	return 0;
}

static int
touch_ranges(void *const *args, unsigned n, struct mv_krange *out, int max)
{
	int q = 0;

	for (unsigned j = 0; j <= n; j++)
		q = kranges_add(out, q, max, ARG_U64(j), 4);
	return q;
}

#define TOUCH_KERNEL(n) \
	static int \
	touch##n##_run(void *const *args, const struct mv_kenv *env) \
	{ \
		return touch_run(args, n); \
	} \
	static void \
	touch##n##_cost(void *const *args, double *flops, double *bytes) \
	{ \
		*flops = (n); \
		*bytes = 4.0 * ((n) + 1); \
	} \
	static int \
	touch##n##_ranges(void *const *args, struct mv_krange *out, int max) \
	{ \
		return touch_ranges(args, n, out, max); \
	}
TOUCH_KERNEL(2)
TOUCH_KERNEL(8)
TOUCH_KERNEL(32)

/* ---- The table. Offsets are the natural C layout: each parameter aligned to its own size. ------- */
#define P8 8
#define P4 4
const struct mv_kernel_desc mv_kernels[] = {
	{ "mv_fill", 3, { 0, 8, 16 }, { P8, P4, P8 }, fill_run, fill_cost, fill_ranges },
	{ "mv_axpy", 4, { 0, 8, 16, 24 }, { P8, P8, P4, P8 }, axpy_run, axpy_cost, axpy_ranges },
	{ "mv_relu_fwd", 3, { 0, 8, 16 }, { P8, P8, P8 }, relu_fwd_run, ew2_cost, ew2_ranges },
	{ "mv_relu_bwd", 4, { 0, 8, 16, 24 }, { P8, P8, P8, P8 }, relu_bwd_run, ew3_cost,
	    ew3_ranges },
	{ "mv_gemm", 6, { 0, 8, 16, 24, 28, 32 }, { P8, P8, P8, P4, P4, P4 }, gemm_run, gemm_cost,
	    gemm_ranges },
	{ "mv_gemm_ex", 7, { 0, 8, 16, 24, 28, 32, 36 }, { P8, P8, P8, P4, P4, P4, P4 }, gemm_ex_run,
	    gemm_ex_cost, gemm_ranges },
	{ "mv_gemm_batched", 8, { 0, 8, 16, 24, 28, 32, 36, 40 }, { P8, P8, P8, P4, P4, P4, P4, P4 },
	    gemm_batched_run, gemm_batched_cost, gemm_batched_ranges },
	{ "mv_conv_fwd", 8, { 0, 8, 16, 24, 28, 32, 36, 40 }, { P8, P8, P8, P4, P4, P4, P4, P4 },
	    conv_fwd_run, conv_fwd_cost, conv_fwd_ranges },
	{ "mv_conv_bwd", 10, { 0, 8, 16, 24, 32, 40, 44, 48, 52, 56 },
	    { P8, P8, P8, P8, P8, P4, P4, P4, P4, P4 }, conv_bwd_run, conv_bwd_cost, conv_bwd_ranges },
	{ "mv_sgd", 4, { 0, 8, 16, 24 }, { P8, P8, P4, P8 }, sgd_run, axpy_cost, axpy_ranges },
	{ "mv_checksum", 3, { 0, 8, 16 }, { P8, P8, P8 }, checksum_run, checksum_cost,
	    checksum_ranges },
	{ "mv_gather_ptrs", 4, { 0, 8, 16, 24 }, { P8, P8, P4, P8 }, gather_ptrs_run,
	    gather_ptrs_cost, gather_ptrs_ranges },
	{ "mv_add", 4, { 0, 8, 16, 24 }, { P8, P8, P8, P8 }, add_run, ew3_cost, ew3_ranges },
	{ "mv_sub", 4, { 0, 8, 16, 24 }, { P8, P8, P8, P8 }, sub_run, ew3_cost, ew3_ranges },
	{ "mv_mul", 4, { 0, 8, 16, 24 }, { P8, P8, P8, P8 }, mul_run, ew3_cost, ew3_ranges },
	{ "mv_init_uniform", 4, { 0, 8, 16, 24 }, { P8, P8, P8, P4 }, init_uniform_run,
	    init_uniform_cost, init_uniform_ranges },
	{ "mv_pool2_fwd", 4, { 0, 8, 16, 20 }, { P8, P8, P4, P4 }, pool2_fwd_run, pool2_cost,
	    pool2_fwd_ranges },
	{ "mv_pool2_bwd", 4, { 0, 8, 16, 20 }, { P8, P8, P4, P4 }, pool2_bwd_run, pool2_cost,
	    pool2_bwd_ranges },
	{ "mv_gap_fwd", 4, { 0, 8, 16, 20 }, { P8, P8, P4, P4 }, gap_fwd_run, gap_cost,
	    gap_fwd_ranges },
	{ "mv_gap_bwd", 4, { 0, 8, 16, 20 }, { P8, P8, P4, P4 }, gap_bwd_run, gap_cost,
	    gap_bwd_ranges },
	{ "mv_heads_split", 6, { 0, 8, 16, 20, 24, 28 }, { P8, P8, P4, P4, P4, P4 }, heads_split_run,
	    heads_cost, heads_ranges },
	{ "mv_heads_merge", 6, { 0, 8, 16, 20, 24, 28 }, { P8, P8, P4, P4, P4, P4 }, heads_merge_run,
	    heads_cost, heads_ranges },
	{ "mv_pwnorm_fwd", 4, { 0, 8, 16, 20 }, { P8, P8, P4, P4 }, pwnorm_fwd_run, pwnorm_fwd_cost,
	    pwnorm_fwd_ranges },
	{ "mv_pwnorm_bwd", 5, { 0, 8, 16, 24, 28 }, { P8, P8, P8, P4, P4 }, pwnorm_bwd_run,
	    pwnorm_bwd_cost, pwnorm_bwd_ranges },
	{ "mv_lstm_cell_fwd", 6, { 0, 8, 16, 24, 32, 36 }, { P8, P8, P8, P8, P4, P4 },
	    lstm_cell_fwd_run, lstm_cell_fwd_cost, lstm_cell_fwd_ranges },
	{ "mv_lstm_cell_bwd", 8, { 0, 8, 16, 24, 32, 40, 48, 52 },
	    { P8, P8, P8, P8, P8, P8, P4, P4 }, lstm_cell_bwd_run, lstm_cell_bwd_cost,
	    lstm_cell_bwd_ranges },
	{ "mv_touch2", 3, { 0, 8, 16 }, { P8, P8, P8 }, touch2_run, touch2_cost, touch2_ranges },
	{ "mv_touch8", 9, { 0, 8, 16, 24, 32, 40, 48, 56, 64 },
	    { P8, P8, P8, P8, P8, P8, P8, P8, P8 }, touch8_run, touch8_cost, touch8_ranges },
	{ "mv_touch32", 33, { 0, 8, 16, 24, 32, 40, 48, 56, 64, 72, 80, 88, 96, 104, 112, 120,
	    128, 136, 144, 152, 160, 168, 176, 184, 192, 200, 208, 216, 224, 232, 240, 248, 256 },
	    { P8, P8, P8, P8, P8, P8, P8, P8, P8, P8, P8, P8, P8, P8, P8, P8, P8,
	    P8, P8, P8, P8, P8, P8, P8, P8, P8, P8, P8, P8, P8, P8, P8, P8 },
	    touch32_run, touch32_cost, touch32_ranges },
	{ NULL, 0, { 0 }, { 0 }, NULL, NULL, NULL },
};

const struct mv_kernel_desc *
mv_kernel_find(const char *name)
{
	for (const struct mv_kernel_desc *k = mv_kernels; k->name != NULL; k++)
		if (strcmp(k->name, name) == 0)
			return k;
	return NULL;
}
