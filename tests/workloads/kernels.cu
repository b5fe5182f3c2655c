/* The workload kernels in CUDA C, for a real GPU: the same names, parameters and per-element
 * arithmetic as kernels.c. Build with nvcc -fmad=false so that no multiply-add is fused; each output
 * element is computed by one thread in the order the C version uses, so results agree bit for bit. */
#include <stdint.h>

#define MV_GEMM_TRANS_A 1u
#define MV_GEMM_TRANS_B 2u
#define MV_GEMM_ACCUM 4u

/* Grid-stride loop over total work items. */
#define MV_FOR(i, total) \
	for (uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (total); \
	     i += (uint64_t)blockDim.x * gridDim.x)

static __device__ float
mv_hsig(float x)
{
	if (x <= -2.0f)
		return 0.0f;
	if (x >= 2.0f)
		return 1.0f;
	return 0.25f * x + 0.5f;
}

static __device__ float
mv_htanh(float x)
{
	if (x <= -1.0f)
		return -1.0f;
	if (x >= 1.0f)
		return 1.0f;
	return x;
}

extern "C" __global__ void
mv_fill(float *p, float v, uint64_t n)
{
	MV_FOR(i, n)
		p[i] = v;
}

extern "C" __global__ void
mv_axpy(float *y, const float *x, float a, uint64_t n)
{
	MV_FOR(i, n)
		y[i] = y[i] + a * x[i];
}

extern "C" __global__ void
mv_relu_fwd(float *y, const float *x, uint64_t n)
{
	MV_FOR(i, n)
		y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

extern "C" __global__ void
mv_relu_bwd(float *dx, const float *dy, const float *x, uint64_t n)
{
	MV_FOR(i, n)
		dx[i] = x[i] > 0.0f ? dy[i] : 0.0f;
}

extern "C" __global__ void
mv_add(float *y, const float *a, const float *b, uint64_t n)
{
	MV_FOR(i, n)
		y[i] = a[i] + b[i];
}

extern "C" __global__ void
mv_sub(float *y, const float *a, const float *b, uint64_t n)
{
	MV_FOR(i, n)
		y[i] = a[i] - b[i];
}

extern "C" __global__ void
mv_mul(float *y, const float *a, const float *b, uint64_t n)
{
	MV_FOR(i, n)
		y[i] = a[i] * b[i];
}

extern "C" __global__ void
mv_sgd(float *w, const float *g, float lr, uint64_t n)
{
	MV_FOR(i, n)
		w[i] = w[i] - lr * g[i];
}

extern "C" __global__ void
mv_init_uniform(float *p, uint64_t n, uint64_t seed, float scale)
{
	MV_FOR(i, n) {
		uint64_t z = seed ^ (i * 0x9E3779B97F4A7C15ull);
		z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
		z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
		z ^= z >> 31;
		float u = (float)(z >> 40) * (1.0f / 16777216.0f);
		p[i] = (u * 2.0f - 1.0f) * scale;
	}
}

static __device__ void
mv_gemm_one(float *c, const float *a, const float *b, uint32_t m, uint32_t n, uint32_t k,
    uint32_t flags, uint64_t e)
{
	uint64_t i = e / n, j = e % n;
	float acc = 0.0f;

	for (uint32_t kk = 0; kk < k; kk++) {
		float av = (flags & MV_GEMM_TRANS_A) ? a[(uint64_t)kk * m + i] : a[i * k + kk];
		float bv = (flags & MV_GEMM_TRANS_B) ? b[j * k + kk] : b[(uint64_t)kk * n + j];
		acc = acc + av * bv;
	}
	c[e] = (flags & MV_GEMM_ACCUM) ? c[e] + acc : acc;
}

extern "C" __global__ void
mv_gemm(float *c, const float *a, const float *b, uint32_t m, uint32_t n, uint32_t k)
{
	MV_FOR(e, (uint64_t)m * n)
		mv_gemm_one(c, a, b, m, n, k, 0, e);
}

extern "C" __global__ void
mv_gemm_ex(float *c, const float *a, const float *b, uint32_t m, uint32_t n, uint32_t k,
    uint32_t flags)
{
	MV_FOR(e, (uint64_t)m * n)
		mv_gemm_one(c, a, b, m, n, k, flags, e);
}

extern "C" __global__ void
mv_gemm_batched(float *c, const float *a, const float *b, uint32_t m, uint32_t n, uint32_t k,
    uint32_t flags, uint32_t batch)
{
	uint64_t mn = (uint64_t)m * n;

	MV_FOR(e, mn * batch) {
		uint64_t z = e / mn;
		mv_gemm_one(c + z * mn, a + z * m * k, b + z * k * n, m, n, k, flags, e % mn);
	}
}

extern "C" __global__ void
mv_conv_fwd(float *y, const float *x, const float *w, uint32_t n, uint32_t c, uint32_t hw,
    uint32_t k, uint32_t r)
{
	int64_t pad = r / 2, hw_ = hw, r_ = r;

	MV_FOR(e, (uint64_t)n * k * hw * hw) {
		int64_t j = e % hw, i = (e / hw) % hw, ik = (e / hw / hw) % k, in = e / hw / hw / k;
		float acc = 0.0f;

		for (int64_t ic = 0; ic < c; ic++) {
			const float *xp = x + (in * c + ic) * hw_ * hw_;
			const float *wp = w + (ik * c + ic) * r_ * r_;

			for (int64_t di = 0; di < r_; di++) {
				int64_t si = i + di - pad;

				if (si < 0 || si >= hw_)
					continue;
				for (int64_t dj = 0; dj < r_; dj++) {
					int64_t sj = j + dj - pad;

					if (sj < 0 || sj >= hw_)
						continue;
					acc = acc + xp[si * hw_ + sj] * wp[di * r_ + dj];
				}
			}
		}
		y[e] = acc;
	}
}

/* One thread per dx element, then one per dw element. */
extern "C" __global__ void
mv_conv_bwd(float *dx, float *dw, const float *dy, const float *x, const float *w, uint32_t n,
    uint32_t c, uint32_t hw, uint32_t k, uint32_t r)
{
	int64_t pad = r / 2, hw_ = hw, r_ = r;
	uint64_t ndx = dx != 0 ? (uint64_t)n * c * hw * hw : 0;
	uint64_t ndw = (uint64_t)k * c * r * r;

	MV_FOR(e, ndx + ndw) {
		float acc = 0.0f;

		if (e < ndx) {
			int64_t j = e % hw, i = (e / hw) % hw, ic = (e / hw / hw) % c,
			    in = e / hw / hw / c;

			for (int64_t ik = 0; ik < k; ik++) {
				const float *dyp = dy + (in * k + ik) * hw_ * hw_;
				const float *wp = w + (ik * c + ic) * r_ * r_;

				for (int64_t di = 0; di < r_; di++) {
					int64_t si = i - di + pad;

					if (si < 0 || si >= hw_)
						continue;
					for (int64_t dj = 0; dj < r_; dj++) {
						int64_t sj = j - dj + pad;

						if (sj < 0 || sj >= hw_)
							continue;
						acc = acc + dyp[si * hw_ + sj] * wp[di * r_ + dj];
					}
				}
			}
			dx[e] = acc;
		} else {
			uint64_t f = e - ndx;
			int64_t dj = f % r, di = (f / r) % r, ic = (f / r / r) % c, ik = f / r / r / c;

			for (int64_t in = 0; in < n; in++) {
				const float *dyp = dy + (in * k + ik) * hw_ * hw_;
				const float *xp = x + (in * c + ic) * hw_ * hw_;

				for (int64_t i = 0; i < hw_; i++) {
					int64_t si = i + di - pad;

					if (si < 0 || si >= hw_)
						continue;
					for (int64_t j = 0; j < hw_; j++) {
						int64_t sj = j + dj - pad;

						if (sj < 0 || sj >= hw_)
							continue;
						acc = acc + dyp[i * hw_ + j] * xp[si * hw_ + sj];
					}
				}
			}
			dw[f] = acc;
		}
	}
}

extern "C" __global__ void
mv_pool2_fwd(float *y, const float *x, uint32_t nc, uint32_t hw)
{
	uint64_t ho = hw / 2;

	MV_FOR(e, (uint64_t)nc * ho * ho) {
		uint64_t j = e % ho, i = (e / ho) % ho, p = e / ho / ho;
		const float *s = x + (p * hw + 2 * i) * hw + 2 * j;

		y[e] = ((s[0] + s[1]) + (s[hw] + s[hw + 1])) * 0.25f;
	}
}

extern "C" __global__ void
mv_pool2_bwd(float *dx, const float *dy, uint32_t nc, uint32_t hw)
{
	uint64_t ho = hw / 2;

	MV_FOR(e, (uint64_t)nc * hw * hw) {
		uint64_t j = e % hw, i = (e / hw) % hw, p = e / hw / hw;

		dx[e] = dy[(p * ho + i / 2) * ho + j / 2] * 0.25f;
	}
}

extern "C" __global__ void
mv_gap_fwd(float *y, const float *x, uint32_t nc, uint32_t hw)
{
	uint64_t hw2 = (uint64_t)hw * hw;

	MV_FOR(p, (uint64_t)nc) {
		float acc = 0.0f;

		for (uint64_t q = 0; q < hw2; q++)
			acc = acc + x[p * hw2 + q];
		y[p] = acc / (float)hw2;
	}
}

extern "C" __global__ void
mv_gap_bwd(float *dx, const float *dy, uint32_t nc, uint32_t hw)
{
	uint64_t hw2 = (uint64_t)hw * hw;

	MV_FOR(e, (uint64_t)nc * hw2)
		dx[e] = dy[e / hw2] / (float)hw2;
}

extern "C" __global__ void
mv_heads_split(float *y, const float *x, uint32_t b, uint32_t s, uint32_t h, uint32_t dh)
{
	MV_FOR(e, (uint64_t)b * s * h * dh) {
		uint64_t d = e % dh, is = (e / dh) % s, ih = (e / dh / s) % h, ib = e / dh / s / h;

		y[e] = x[((ib * s + is) * h + ih) * dh + d];
	}
}

extern "C" __global__ void
mv_heads_merge(float *y, const float *x, uint32_t b, uint32_t s, uint32_t h, uint32_t dh)
{
	MV_FOR(e, (uint64_t)b * s * h * dh) {
		uint64_t d = e % dh, ih = (e / dh) % h, is = (e / dh / h) % s, ib = e / dh / h / s;

		y[e] = x[((ib * h + ih) * s + is) * dh + d];
	}
}

static __device__ float
mv_pwnorm_row_sum(const float *x, uint32_t cols)
{
	float s = 0.0f;

	for (uint32_t j = 0; j < cols; j++)
		s = s + ((x[j] > 0.0f ? x[j] : 0.0f) + 1.0f);
	return s;
}

extern "C" __global__ void
mv_pwnorm_fwd(float *y, const float *x, uint32_t rows, uint32_t cols)
{
	MV_FOR(e, (uint64_t)rows * cols) {
		const float *xr = x + (e / cols) * cols;
		float s = mv_pwnorm_row_sum(xr, cols);

		y[e] = ((x[e] > 0.0f ? x[e] : 0.0f) + 1.0f) / s;
	}
}

extern "C" __global__ void
mv_pwnorm_bwd(float *dx, const float *dy, const float *x, uint32_t rows, uint32_t cols)
{
	MV_FOR(e, (uint64_t)rows * cols) {
		const float *xr = x + (e / cols) * cols, *dyr = dy + (e / cols) * cols;
		float s = mv_pwnorm_row_sum(xr, cols);
		float t = 0.0f;

		for (uint32_t j = 0; j < cols; j++)
			t = t + dyr[j] * (((xr[j] > 0.0f ? xr[j] : 0.0f) + 1.0f) / s);
		dx[e] = x[e] > 0.0f ? (dy[e] - t) / s : 0.0f;
	}
}

extern "C" __global__ void
mv_lstm_cell_fwd(float *c, float *h, const float *gates, const float *cprev, uint32_t b,
    uint32_t hd)
{
	MV_FOR(e, (uint64_t)b * hd) {
		uint64_t ib = e / hd, j = e % hd;
		const float *g = gates + ib * 4 * hd + j;
		float cp = cprev != 0 ? cprev[e] : 0.0f;
		float si = mv_hsig(g[0]), sf = mv_hsig(g[hd]);
		float tg = mv_htanh(g[2 * hd]), so = mv_hsig(g[3 * hd]);
		float cn = sf * cp + si * tg;

		c[e] = cn;
		h[e] = so * mv_htanh(cn);
	}
}

extern "C" __global__ void
mv_lstm_cell_bwd(float *dgates, float *dcprev, const float *dh, const float *dc,
    const float *gates, const float *cprev, uint32_t b, uint32_t hd)
{
	MV_FOR(e, (uint64_t)b * hd) {
		uint64_t ib = e / hd, j = e % hd;
		const float *g = gates + ib * 4 * hd + j;
		float *dg = dgates + ib * 4 * hd + j;
		float cp = cprev != 0 ? cprev[e] : 0.0f;
		float gi = g[0], gf = g[hd], gg = g[2 * hd], go = g[3 * hd];
		float si = mv_hsig(gi), sf = mv_hsig(gf);
		float tg = mv_htanh(gg), so = mv_hsig(go);
		float cn = sf * cp + si * tg;
		float tc = mv_htanh(cn);
		float dct = (dc != 0 ? dc[e] : 0.0f) + (cn > -1.0f && cn < 1.0f ? dh[e] * so : 0.0f);

		dg[0] = gi > -2.0f && gi < 2.0f ? (dct * tg) * 0.25f : 0.0f;
		dg[hd] = gf > -2.0f && gf < 2.0f ? (dct * cp) * 0.25f : 0.0f;
		dg[2 * hd] = gg > -1.0f && gg < 1.0f ? dct * si : 0.0f;
		dg[3 * hd] = go > -2.0f && go < 2.0f ? (dh[e] * tc) * 0.25f : 0.0f;
		if (dcprev != 0)
			dcprev[e] = dct * sf;
	}
}

/* FNV-1a is sequential: one thread of the grid does it all. */
extern "C" __global__ void
mv_checksum(uint64_t *out, const void *p, uint64_t bytes)
{
	if (blockIdx.x != 0 || threadIdx.x != 0)
		return;
	const unsigned char *q = (const unsigned char *)p;
	uint64_t h = 0xcbf29ce484222325ull;

	for (uint64_t i = 0; i < bytes; i++) {
		h ^= q[i];
		h *= 0x100000001b3ull;
	}
	*out = h;
}

extern "C" __global__ void
mv_gather_ptrs(float *out, const float *const *ptrs, uint32_t count, uint64_t n)
{
	MV_FOR(i, n) {
		float acc = 0.0f;

		for (uint32_t j = 0; j < count; j++)
			acc = acc + ptrs[j][i];
		out[i] = acc;
	}
}

/* Launch-cost probes: one thread sums the first float of each input in order. */
extern "C" __global__ void
mv_touch2(float *out, const float *p0, const float *p1)
{
	if (blockIdx.x != 0 || threadIdx.x != 0)
		return;
	float acc = 0.0f;

	acc = acc + p0[0];
	acc = acc + p1[0];
	out[0] = acc;
}

extern "C" __global__ void
mv_touch8(float *out, const float *p0, const float *p1, const float *p2, const float *p3,
    const float *p4, const float *p5, const float *p6, const float *p7)
{
	if (blockIdx.x != 0 || threadIdx.x != 0)
		return;
	const float *const p[8] = { p0, p1, p2, p3, p4, p5, p6, p7 };
	float acc = 0.0f;

	for (int j = 0; j < 8; j++)
		acc = acc + p[j][0];
	out[0] = acc;
}

extern "C" __global__ void
mv_touch32(float *out, const float *p0, const float *p1, const float *p2, const float *p3,
    const float *p4, const float *p5, const float *p6, const float *p7, const float *p8,
    const float *p9, const float *p10, const float *p11, const float *p12, const float *p13,
    const float *p14, const float *p15, const float *p16, const float *p17, const float *p18,
    const float *p19, const float *p20, const float *p21, const float *p22, const float *p23,
    const float *p24, const float *p25, const float *p26, const float *p27, const float *p28,
    const float *p29, const float *p30, const float *p31)
{
	if (blockIdx.x != 0 || threadIdx.x != 0)
		return;
	const float *const p[32] = { p0, p1, p2, p3, p4, p5, p6, p7, p8, p9, p10, p11, p12, p13, p14, p15,
	    p16, p17, p18, p19, p20, p21, p22, p23, p24, p25, p26, p27, p28, p29, p30, p31 };
	float acc = 0.0f;

	for (int j = 0; j < 32; j++)
		acc = acc + p[j][0];
	out[0] = acc;
}
