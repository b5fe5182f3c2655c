/* The simulated driver's built-in module and kernel launches: every kernel against a naive reference
 * written here, every launch form, parameter layouts, and faults through pointers held in memory. */
#include "config.h"

#include <math.h>

#include "tests/unit/simtest.h"
#include "tests/workloads/kernels.h"

#define TOL 1e-5f

/* ---- helpers ---- */

/* Deterministic small test values, distinct per salt, clear of the gates' clamp points. */
static void values(float *h, size_t n, int salt)
{
	for (size_t i = 0; i < n; i++)
		h[i] = (float)((int)((i * 37 + (size_t)salt * 11) % 41) - 20) * 0.13f;
}

static float *host_new(size_t n)
{
	float *h = calloc(n ? n : 1, sizeof(float));
	ck_assert_ptr_nonnull(h);
	return h;
}

static CUdeviceptr up(const float *h, size_t n)
{
	CUdeviceptr d;

	CHK(cuMemAlloc(&d, n * sizeof(float)));
	CHK(cuMemcpyHtoD(d, h, n * sizeof(float)));
	return d;
}

/* A device buffer of n floats set to a sentinel, so an output that is not written shows. */
static CUdeviceptr out_buf(size_t n)
{
	CUdeviceptr d;

	CHK(cuMemAlloc(&d, n * sizeof(float)));
	CHK(cuMemsetD32(d, 0x7fc00000u, n)); /* NaN */
	return d;
}

static float *down(CUdeviceptr d, size_t n)
{
	float *h = host_new(n);
	CHK(cuMemcpyDtoH(h, d, n * sizeof(float)));
	return h;
}

static void run(const char *name, void **args)
{
	CHK(simtest_launch(name, NULL, args));
	CHK(cuCtxSynchronize());
}

/* Checks n device floats against a host reference. */
static void expect(CUdeviceptr d, const float *want, size_t n, const char *what)
{
	float *got = down(d, n);
	simtest_expect_near(got, want, n, TOL, what);
	free(got);
}

static void start(void)
{
	simtest_start("SIMCUDA_MEM=256MiB");
}

/* ---- elementwise kernels ---- */

START_TEST(test_fill)
{
	enum { n = 1000 };
	float want[n];
	CUdeviceptr p;
	float v = -2.5f;
	uint64_t cnt = n - 1;
	void *args[] = {&p, &v, &cnt};

	start();
	p = out_buf(n);
	run("mv_fill", args);
	for (int i = 0; i < n - 1; i++)
		want[i] = -2.5f;
	expect(p, want, n - 1, "mv_fill");
	/* It stops at n: the last element keeps the sentinel. */
	{
		float *h = down(p, n);
		ck_assert(isnan(h[n - 1]));
		free(h);
	}
}
END_TEST

/* Runs one of the kernels shaped (out, in..., n) with nin inputs and compares with op. */
static void elementwise(const char *name, int nin, float (*op)(const float *in))
{
	enum { n = 777 };
	float *in[3], want[n], tmp[3];
	CUdeviceptr out, din[3];
	uint64_t cnt = n;
	void *args[5];
	int a = 0;

	start();
	out = out_buf(n);
	args[a++] = &out;
	for (int k = 0; k < nin; k++) {
		in[k] = host_new(n);
		values(in[k], n, k + 1);
		din[k] = up(in[k], n);
		args[a++] = &din[k];
	}
	args[a++] = &cnt;
	run(name, args);
	for (int i = 0; i < n; i++) {
		for (int k = 0; k < nin; k++)
			tmp[k] = in[k][i];
		want[i] = op(tmp);
	}
	expect(out, want, n, name);
	for (int k = 0; k < nin; k++)
		free(in[k]);
}

static float op_relu(const float *v) { return v[0] > 0 ? v[0] : 0.0f; }
static float op_relu_bwd(const float *v) { return v[1] > 0 ? v[0] : 0.0f; } /* (dy, x) */
static float op_add(const float *v) { return v[0] + v[1]; }
static float op_sub(const float *v) { return v[0] - v[1]; }
static float op_mul(const float *v) { return v[0] * v[1]; }

START_TEST(test_relu_fwd) { elementwise("mv_relu_fwd", 1, op_relu); }
END_TEST
START_TEST(test_relu_bwd) { elementwise("mv_relu_bwd", 2, op_relu_bwd); }
END_TEST
START_TEST(test_add) { elementwise("mv_add", 2, op_add); }
END_TEST
START_TEST(test_sub) { elementwise("mv_sub", 2, op_sub); }
END_TEST
START_TEST(test_mul) { elementwise("mv_mul", 2, op_mul); }
END_TEST

/* mv_axpy and mv_sgd: (y, x, float a, n) in place. */
static void inplace(const char *name, float a, float sign)
{
	enum { n = 513 };
	float y[n], x[n], want[n];
	CUdeviceptr dy, dx;
	uint64_t cnt = n;
	void *args[] = {&dy, &dx, &a, &cnt};

	start();
	values(y, n, 1);
	values(x, n, 2);
	dy = up(y, n);
	dx = up(x, n);
	run(name, args);
	for (int i = 0; i < n; i++)
		want[i] = y[i] + sign * a * x[i];
	expect(dy, want, n, name);
	/* x is only read. */
	expect(dx, x, n, "input");
}

START_TEST(test_axpy) { inplace("mv_axpy", 1.5f, 1.0f); }
END_TEST
START_TEST(test_sgd) { inplace("mv_sgd", 0.25f, -1.0f); }
END_TEST

START_TEST(test_init_uniform)
{
	enum { n = 4096 };
	CUdeviceptr p, q;
	uint64_t cnt = n, seed = 1234;
	float scale = 0.5f;
	void *args[] = {&p, &cnt, &seed, &scale};
	float *a, *b, *c;
	double sum = 0;
	int distinct = 0;

	start();
	p = out_buf(n);
	run("mv_init_uniform", args);
	a = down(p, n);
	run("mv_init_uniform", args);
	b = down(p, n);
	seed = 1235;
	run("mv_init_uniform", args);
	c = down(p, n);
	for (int i = 0; i < n; i++) {
		if (!(a[i] >= -scale && a[i] < scale))
			ck_abort_msg("element %d = %g is outside [-%g, %g)", i, a[i], scale, scale);
		if (a[i] != b[i])
			ck_abort_msg("element %d differs between two runs with the same seed", i);
		distinct += a[i] != c[i];
		sum += a[i];
	}
	/* Another seed gives other values, and the values are spread around zero. */
	ck_assert_int_gt(distinct, n * 9 / 10);
	ck_assert_double_lt(fabs(sum / n), 0.05);
	{
		int below = 0;
		for (int i = 0; i < n; i++)
			below += a[i] < 0;
		ck_assert_int_gt(below, n * 4 / 10);
		ck_assert_int_lt(below, n * 6 / 10);
	}
	/* Index i's value does not depend on n. */
	cnt = 10;
	seed = 1234;
	CHK(cuMemAlloc(&q, 10 * sizeof(float)));
	{
		void *args2[] = {&q, &cnt, &seed, &scale};
		run("mv_init_uniform", args2);
	}
	expect(q, a, 10, "prefix");
	free(a);
	free(b);
	free(c);
}
END_TEST

/* ---- GEMM ---- */

static void ref_gemm(float *c, const float *a, const float *b, uint32_t m, uint32_t n, uint32_t k, uint32_t flags)
{
	for (uint32_t i = 0; i < m; i++)
		for (uint32_t j = 0; j < n; j++) {
			float s = 0;
			for (uint32_t kk = 0; kk < k; kk++) {
				float av = (flags & MV_GEMM_TRANS_A) ? a[kk * m + i] : a[i * k + kk];
				float bv = (flags & MV_GEMM_TRANS_B) ? b[j * k + kk] : b[kk * n + j];
				s += av * bv;
			}
			c[i * n + j] = (flags & MV_GEMM_ACCUM) ? c[i * n + j] + s : s;
		}
}

static void gemm_case(uint32_t m, uint32_t n, uint32_t k, int ex, uint32_t flags)
{
	float *a = host_new(m * k), *b = host_new(k * n), *c = host_new(m * n);
	CUdeviceptr da, db, dc;
	void *args[] = {&dc, &da, &db, &m, &n, &k, &flags};
	char what[64];

	values(a, m * k, 1);
	values(b, k * n, 2);
	values(c, m * n, 3);
	da = up(a, m * k);
	db = up(b, k * n);
	dc = up(c, m * n);
	run(ex ? "mv_gemm_ex" : "mv_gemm", args);
	ref_gemm(c, a, b, m, n, k, flags);
	snprintf(what, sizeof(what), "%s %ux%ux%u flags %u", ex ? "mv_gemm_ex" : "mv_gemm", m, n, k, flags);
	expect(dc, c, m * n, what);
	free(a);
	free(b);
	free(c);
}

START_TEST(test_gemm)
{
	start();
	gemm_case(5, 7, 3, 0, 0);
	gemm_case(1, 1, 1, 0, 0);
	/* Wider than one column block. */
	gemm_case(3, 300, 4, 0, 0);
}
END_TEST

START_TEST(test_gemm_ex)
{
	start();
	for (uint32_t flags = 0; flags < 8; flags++)
		gemm_case(4, 6, 5, 1, flags);
}
END_TEST

START_TEST(test_gemm_batched)
{
	uint32_t m = 3, n = 4, k = 5, batch = 3;

	start();
	for (uint32_t flags = 0; flags < 8; flags += 3) {
		float *a = host_new(batch * m * k), *b = host_new(batch * k * n), *c = host_new(batch * m * n);
		CUdeviceptr da, db, dc;
		void *args[] = {&dc, &da, &db, &m, &n, &k, &flags, &batch};

		values(a, batch * m * k, 4);
		values(b, batch * k * n, 5);
		values(c, batch * m * n, 6);
		da = up(a, batch * m * k);
		db = up(b, batch * k * n);
		dc = up(c, batch * m * n);
		run("mv_gemm_batched", args);
		for (uint32_t z = 0; z < batch; z++)
			ref_gemm(c + z * m * n, a + z * m * k, b + z * k * n, m, n, k, flags);
		expect(dc, c, batch * m * n, "mv_gemm_batched");
		free(a);
		free(b);
		free(c);
	}
}
END_TEST

/* ---- convolution ---- */

static float at4(const float *t, int d1, int d2, int d3, int i0, int i1, int i2, int i3)
{
	return t[((i0 * d1 + i1) * d2 + i2) * d3 + i3];
}

static void ref_conv_fwd(float *y, const float *x, const float *w, int n, int c, int hw, int k, int r)
{
	int pad = r / 2;

	for (int in = 0; in < n; in++)
		for (int ik = 0; ik < k; ik++)
			for (int i = 0; i < hw; i++)
				for (int j = 0; j < hw; j++) {
					float s = 0;
					for (int ic = 0; ic < c; ic++)
						for (int di = 0; di < r; di++)
							for (int dj = 0; dj < r; dj++) {
								int si = i + di - pad, sj = j + dj - pad;
								if (si < 0 || sj < 0 || si >= hw || sj >= hw)
									continue;
								s += at4(x, c, hw, hw, in, ic, si, sj) *
								     at4(w, c, r, r, ik, ic, di, dj);
							}
					y[((in * k + ik) * hw + i) * hw + j] = s;
				}
}

START_TEST(test_conv_fwd)
{
	uint32_t n = 2, c = 3, hw = 5, k = 4, r = 3;
	size_t nx = n * c * hw * hw, nw = k * c * r * r, ny = n * k * hw * hw;
	float *x = host_new(nx), *w = host_new(nw), *y = host_new(ny);
	CUdeviceptr dx, dw, dy;
	void *args[] = {&dy, &dx, &dw, &n, &c, &hw, &k, &r};

	start();
	values(x, nx, 1);
	values(w, nw, 2);
	dx = up(x, nx);
	dw = up(w, nw);
	dy = out_buf(ny);
	run("mv_conv_fwd", args);
	ref_conv_fwd(y, x, w, (int)n, (int)c, (int)hw, (int)k, (int)r);
	expect(dy, y, ny, "mv_conv_fwd");
	/* r = 1 is a per-pixel product over channels. */
	r = 1;
	nw = k * c;
	CHK(cuMemcpyHtoD(dw, w, nw * sizeof(float)));
	run("mv_conv_fwd", args);
	ref_conv_fwd(y, x, w, (int)n, (int)c, (int)hw, (int)k, 1);
	expect(dy, y, ny, "mv_conv_fwd r=1");
	free(x);
	free(w);
	free(y);
}
END_TEST

START_TEST(test_conv_bwd)
{
	uint32_t n = 2, c = 3, hw = 4, k = 2, r = 3;
	int pad = 1;
	size_t nx = n * c * hw * hw, nw = k * c * r * r, ny = n * k * hw * hw;
	float *x = host_new(nx), *w = host_new(nw), *gy = host_new(ny);
	float *gx = host_new(nx), *gw = host_new(nw);
	CUdeviceptr dx, dw, dgy, dgx, dgw, none = 0;

	start();
	values(x, nx, 1);
	values(w, nw, 2);
	values(gy, ny, 3);
	/* The gradients of y = conv(x, w) against dy, from the definition. */
	for (int in = 0; in < (int)n; in++)
		for (int ic = 0; ic < (int)c; ic++)
			for (int si = 0; si < (int)hw; si++)
				for (int sj = 0; sj < (int)hw; sj++) {
					float s = 0;
					for (int ik = 0; ik < (int)k; ik++)
						for (int di = 0; di < (int)r; di++)
							for (int dj = 0; dj < (int)r; dj++) {
								int i = si - di + pad, j = sj - dj + pad;
								if (i < 0 || j < 0 || i >= (int)hw || j >= (int)hw)
									continue;
								s += at4(gy, k, hw, hw, in, ik, i, j) *
								     at4(w, c, r, r, ik, ic, di, dj);
							}
					gx[((in * c + ic) * hw + si) * hw + sj] = s;
				}
	for (int ik = 0; ik < (int)k; ik++)
		for (int ic = 0; ic < (int)c; ic++)
			for (int di = 0; di < (int)r; di++)
				for (int dj = 0; dj < (int)r; dj++) {
					float s = 0;
					for (int in = 0; in < (int)n; in++)
						for (int i = 0; i < (int)hw; i++)
							for (int j = 0; j < (int)hw; j++) {
								int si = i + di - pad, sj = j + dj - pad;
								if (si < 0 || sj < 0 || si >= (int)hw || sj >= (int)hw)
									continue;
								s += at4(gy, k, hw, hw, in, ik, i, j) *
								     at4(x, c, hw, hw, in, ic, si, sj);
							}
					gw[((ik * c + ic) * r + di) * r + dj] = s;
				}
	dx = up(x, nx);
	dw = up(w, nw);
	dgy = up(gy, ny);
	dgx = out_buf(nx);
	dgw = out_buf(nw);
	{
		void *args[] = {&dgx, &dgw, &dgy, &dx, &dw, &n, &c, &hw, &k, &r};
		run("mv_conv_bwd", args);
	}
	expect(dgx, gx, nx, "mv_conv_bwd dx");
	expect(dgw, gw, nw, "mv_conv_bwd dw");
	/* Without dx, dw alone is written (overwritten, not accumulated). */
	CHK(cuMemsetD32(dgw, 0x3f800000u, nw));
	{
		void *args[] = {&none, &dgw, &dgy, &dx, &dw, &n, &c, &hw, &k, &r};
		run("mv_conv_bwd", args);
	}
	expect(dgw, gw, nw, "mv_conv_bwd dw only");
	free(x);
	free(w);
	free(gy);
	free(gx);
	free(gw);
}
END_TEST

/* ---- pooling ---- */

START_TEST(test_pool2)
{
	uint32_t nc = 3, hw = 6, ho = 3;
	size_t nb = nc * hw * hw, ns = nc * ho * ho;
	float *x = host_new(nb), *y = host_new(ns), *g = host_new(nb);
	CUdeviceptr dx, dy, dg;

	start();
	values(x, nb, 1);
	for (uint32_t p = 0; p < nc; p++)
		for (uint32_t i = 0; i < ho; i++)
			for (uint32_t j = 0; j < ho; j++) {
				const float *s = x + (p * hw + 2 * i) * hw + 2 * j;
				y[(p * ho + i) * ho + j] = (s[0] + s[1] + s[hw] + s[hw + 1]) / 4.0f;
			}
	dx = up(x, nb);
	dy = out_buf(ns);
	{
		void *args[] = {&dy, &dx, &nc, &hw};
		run("mv_pool2_fwd", args);
	}
	expect(dy, y, ns, "mv_pool2_fwd");
	/* Backward spreads each gradient evenly over its 2x2 window. */
	for (uint32_t p = 0; p < nc; p++)
		for (uint32_t i = 0; i < hw; i++)
			for (uint32_t j = 0; j < hw; j++)
				g[(p * hw + i) * hw + j] = y[(p * ho + i / 2) * ho + j / 2] / 4.0f;
	dg = out_buf(nb);
	{
		void *args[] = {&dg, &dy, &nc, &hw};
		run("mv_pool2_bwd", args);
	}
	expect(dg, g, nb, "mv_pool2_bwd");
	free(x);
	free(y);
	free(g);
}
END_TEST

START_TEST(test_gap)
{
	uint32_t nc = 4, hw = 5;
	size_t nb = nc * hw * hw;
	float *x = host_new(nb), *y = host_new(nc), *g = host_new(nb);
	CUdeviceptr dx, dy, dg;

	start();
	values(x, nb, 2);
	for (uint32_t p = 0; p < nc; p++) {
		float s = 0;
		for (uint32_t q = 0; q < hw * hw; q++)
			s += x[p * hw * hw + q];
		y[p] = s / (float)(hw * hw);
	}
	dx = up(x, nb);
	dy = out_buf(nc);
	{
		void *args[] = {&dy, &dx, &nc, &hw};
		run("mv_gap_fwd", args);
	}
	expect(dy, y, nc, "mv_gap_fwd");
	for (uint32_t p = 0; p < nc; p++)
		for (uint32_t q = 0; q < hw * hw; q++)
			g[p * hw * hw + q] = y[p] / (float)(hw * hw);
	dg = out_buf(nb);
	{
		void *args[] = {&dg, &dy, &nc, &hw};
		run("mv_gap_bwd", args);
	}
	expect(dg, g, nb, "mv_gap_bwd");
	free(x);
	free(y);
	free(g);
}
END_TEST

/* ---- attention heads ---- */

START_TEST(test_heads)
{
	uint32_t b = 2, s = 3, h = 4, dh = 5;
	size_t n = b * s * h * dh;
	float *x = host_new(n), *y = host_new(n);
	CUdeviceptr dx, dy, dz;

	start();
	values(x, n, 1);
	for (uint32_t ib = 0; ib < b; ib++)
		for (uint32_t is = 0; is < s; is++)
			for (uint32_t ih = 0; ih < h; ih++)
				for (uint32_t e = 0; e < dh; e++)
					y[((ib * h + ih) * s + is) * dh + e] = x[((ib * s + is) * h + ih) * dh + e];
	dx = up(x, n);
	dy = out_buf(n);
	dz = out_buf(n);
	{
		void *args[] = {&dy, &dx, &b, &s, &h, &dh};
		run("mv_heads_split", args);
	}
	expect(dy, y, n, "mv_heads_split");
	{
		void *args[] = {&dz, &dy, &b, &s, &h, &dh};
		run("mv_heads_merge", args);
	}
	expect(dz, x, n, "mv_heads_merge of the split");
	free(x);
	free(y);
}
END_TEST

/* ---- row normalisation ---- */

START_TEST(test_pwnorm)
{
	uint32_t rows = 3, cols = 7;
	size_t n = rows * cols;
	float *x = host_new(n), *y = host_new(n), *gy = host_new(n), *gx = host_new(n);
	CUdeviceptr dx, dy, dgy, dgx;

	start();
	values(x, n, 1);
	values(gy, n, 2);
	for (uint32_t r = 0; r < rows; r++) {
		float sum = 0, t = 0;
		for (uint32_t j = 0; j < cols; j++)
			sum += fmaxf(x[r * cols + j], 0.0f) + 1.0f;
		for (uint32_t j = 0; j < cols; j++)
			y[r * cols + j] = (fmaxf(x[r * cols + j], 0.0f) + 1.0f) / sum;
		/* d/dx of e_j / sum(e), e = max(x, 0) + 1, applied to dy. */
		for (uint32_t j = 0; j < cols; j++)
			t += gy[r * cols + j] * y[r * cols + j];
		for (uint32_t j = 0; j < cols; j++)
			gx[r * cols + j] = x[r * cols + j] > 0 ? (gy[r * cols + j] - t) / sum : 0.0f;
	}
	dx = up(x, n);
	dy = out_buf(n);
	{
		void *args[] = {&dy, &dx, &rows, &cols};
		run("mv_pwnorm_fwd", args);
	}
	expect(dy, y, n, "mv_pwnorm_fwd");
	{
		float *got = down(dy, n);
		for (uint32_t r = 0; r < rows; r++) {
			float s = 0;
			for (uint32_t j = 0; j < cols; j++)
				s += got[r * cols + j];
			ck_assert_float_eq_tol(s, 1.0f, 1e-5f);
		}
		free(got);
	}
	dgy = up(gy, n);
	dgx = out_buf(n);
	{
		void *args[] = {&dgx, &dgy, &dx, &rows, &cols};
		run("mv_pwnorm_bwd", args);
	}
	expect(dgx, gx, n, "mv_pwnorm_bwd");
	free(x);
	free(y);
	free(gy);
	free(gx);
}
END_TEST

/* ---- LSTM cell ---- */

static float hsig(float x) { return x <= -2 ? 0 : x >= 2 ? 1 : x / 4 + 0.5f; }
static float htanh(float x) { return x <= -1 ? -1 : x >= 1 ? 1 : x; }
static float dhsig(float x) { return x > -2 && x < 2 ? 0.25f : 0; }
static float dhtanh(float x) { return x > -1 && x < 1 ? 1 : 0; }

START_TEST(test_lstm_cell)
{
	uint32_t b = 3, hd = 5;
	size_t e = b * hd;
	float *gates = host_new(4 * e), *cprev = host_new(e), *c = host_new(e), *h = host_new(e);
	float *c0 = host_new(e), *h0 = host_new(e), *dh = host_new(e), *dc = host_new(e);
	float *dg = host_new(4 * e), *dcp = host_new(e);
	CUdeviceptr dgates, dcprev, dcc, dhh, ddh, ddc, ddg, ddcp, none = 0;

	start();
	values(gates, 4 * e, 1);
	for (size_t i = 0; i < 4 * e; i++)
		gates[i] *= 1.7f; /* reach both sides of every clamp */
	values(cprev, e, 2);
	values(dh, e, 3);
	values(dc, e, 4);
	for (uint32_t ib = 0; ib < b; ib++)
		for (uint32_t j = 0; j < hd; j++) {
			size_t q = ib * hd + j;
			const float *g = gates + ib * 4 * hd + j;
			float si = hsig(g[0]), sf = hsig(g[hd]), tg = htanh(g[2 * hd]), so = hsig(g[3 * hd]);
			float cn = sf * cprev[q] + si * tg;
			float dct = dc[q] + dh[q] * so * dhtanh(cn);
			float *d = dg + ib * 4 * hd + j;

			c[q] = cn;
			h[q] = so * htanh(cn);
			c0[q] = si * tg;
			h0[q] = so * htanh(c0[q]);
			d[0] = dct * tg * dhsig(g[0]);
			d[hd] = dct * cprev[q] * dhsig(g[hd]);
			d[2 * hd] = dct * si * dhtanh(g[2 * hd]);
			d[3 * hd] = dh[q] * htanh(cn) * dhsig(g[3 * hd]);
			dcp[q] = dct * sf;
		}
	dgates = up(gates, 4 * e);
	dcprev = up(cprev, e);
	dcc = out_buf(e);
	dhh = out_buf(e);
	{
		void *args[] = {&dcc, &dhh, &dgates, &dcprev, &b, &hd};
		run("mv_lstm_cell_fwd", args);
	}
	expect(dcc, c, e, "mv_lstm_cell_fwd c");
	expect(dhh, h, e, "mv_lstm_cell_fwd h");
	{
		void *args[] = {&dcc, &dhh, &dgates, &none, &b, &hd};
		run("mv_lstm_cell_fwd", args);
	}
	expect(dcc, c0, e, "mv_lstm_cell_fwd c, no cprev");
	expect(dhh, h0, e, "mv_lstm_cell_fwd h, no cprev");

	ddh = up(dh, e);
	ddc = up(dc, e);
	ddg = out_buf(4 * e);
	ddcp = out_buf(e);
	{
		void *args[] = {&ddg, &ddcp, &ddh, &ddc, &dgates, &dcprev, &b, &hd};
		run("mv_lstm_cell_bwd", args);
	}
	expect(ddg, dg, 4 * e, "mv_lstm_cell_bwd dgates");
	expect(ddcp, dcp, e, "mv_lstm_cell_bwd dcprev");
	free(gates);
	free(cprev);
	free(c);
	free(h);
	free(c0);
	free(h0);
	free(dh);
	free(dc);
	free(dg);
	free(dcp);
}
END_TEST

/* ---- checksum and pointer gathering ---- */

START_TEST(test_checksum)
{
	unsigned char bytes[1000];
	uint64_t want = 0xcbf29ce484222325ull, got = 0, n = sizeof(bytes);
	CUdeviceptr dp, dout;
	void *args[] = {&dout, &dp, &n};

	start();
	for (size_t i = 0; i < sizeof(bytes); i++)
		bytes[i] = (unsigned char)(i * 131 + 7);
	for (size_t i = 0; i < sizeof(bytes); i++) {
		want ^= bytes[i];
		want *= 0x100000001b3ull;
	}
	CHK(cuMemAlloc(&dp, sizeof(bytes)));
	CHK(cuMemAlloc(&dout, sizeof(got)));
	CHK(cuMemcpyHtoD(dp, bytes, sizeof(bytes)));
	run("mv_checksum", args);
	CHK(cuMemcpyDtoH(&got, dout, sizeof(got)));
	ck_assert_uint_eq(got, want);
	/* Of no bytes, the offset basis. */
	n = 0;
	run("mv_checksum", args);
	CHK(cuMemcpyDtoH(&got, dout, sizeof(got)));
	ck_assert_uint_eq(got, 0xcbf29ce484222325ull);
}
END_TEST

START_TEST(test_gather_ptrs)
{
	enum { n = 300, count = 3 };
	float *src[count], want[n];
	CUdeviceptr dsrc[count], dptrs, dout;
	uint32_t cnt = count;
	uint64_t len = n;
	void *args[] = {&dout, &dptrs, &cnt, &len};

	start();
	for (int j = 0; j < count; j++) {
		src[j] = host_new(n);
		values(src[j], n, j + 1);
		dsrc[j] = up(src[j], n);
	}
	for (int i = 0; i < n; i++)
		want[i] = src[0][i] + src[1][i] + src[2][i];
	CHK(cuMemAlloc(&dptrs, sizeof(dsrc)));
	CHK(cuMemcpyHtoD(dptrs, dsrc, sizeof(dsrc)));
	dout = out_buf(n);
	run("mv_gather_ptrs", args);
	expect(dout, want, n, "mv_gather_ptrs");
	for (int j = 0; j < count; j++)
		free(src[j]);
}
END_TEST

START_TEST(test_gather_ptrs_unmapped_faults)
{
	enum { n = 300, count = 3 };
	float src[n];
	CUdeviceptr dsrc[count], dptrs, dout, hole;
	uint32_t cnt = count;
	uint64_t len = n;
	void *args[] = {&dout, &dptrs, &cnt, &len};

	start();
	values(src, n, 1);
	dsrc[0] = up(src, n);
	dsrc[2] = up(src, n);
	/* The middle pointer is reserved address space with nothing mapped. */
	CHK(cuMemAddressReserve(&hole, 2 * SIMTEST_MIB, 0, 0, 0));
	dsrc[1] = hole;
	CHK(cuMemAlloc(&dptrs, sizeof(dsrc)));
	CHK(cuMemcpyHtoD(dptrs, dsrc, sizeof(dsrc)));
	dout = out_buf(n);
	CHK(simtest_launch("mv_gather_ptrs", NULL, args));
	CHK_ERR(cuCtxSynchronize(), CUDA_ERROR_ILLEGAL_ADDRESS);
	CHK_ERR(cuMemAlloc(&dout, 4), CUDA_ERROR_ILLEGAL_ADDRESS);
}
END_TEST

/* ---- launch forms ---- */

START_TEST(test_extra_buffer)
{
	enum { n = 100 };
	float y[n], x[n], want[n];
	CUdeviceptr dy, dx;
	float a = 2.0f;
	uint64_t cnt = n;
	unsigned char buf[32];
	size_t size = sizeof(buf);
	void *extra[] = {CU_LAUNCH_PARAM_BUFFER_POINTER, buf, CU_LAUNCH_PARAM_BUFFER_SIZE, &size, CU_LAUNCH_PARAM_END};
	void *params[] = {&dy, &dx, &a, &cnt};
	CUfunction f;

	start();
	f = simtest_func("mv_axpy");
	values(y, n, 1);
	values(x, n, 2);
	dy = up(y, n);
	dx = up(x, n);
	memset(buf, 0, sizeof(buf));
	memcpy(buf + 0, &dy, 8);
	memcpy(buf + 8, &dx, 8);
	memcpy(buf + 16, &a, 4);
	memcpy(buf + 24, &cnt, 8);
	CHK(cuLaunchKernel(f, 1, 1, 1, 32, 1, 1, 0, NULL, NULL, extra));
	CHK(cuCtxSynchronize());
	for (int i = 0; i < n; i++)
		want[i] = y[i] + 2.0f * x[i];
	expect(dy, want, n, "extra launch");

	/* A buffer shorter than the parameters is refused, as are both forms at once. */
	size = 31;
	CHK_ERR(cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, NULL, NULL, extra), CUDA_ERROR_INVALID_VALUE);
	size = sizeof(buf);
	CHK_ERR(cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, NULL, params, extra), CUDA_ERROR_INVALID_VALUE);
	{
		void *no_size[] = {CU_LAUNCH_PARAM_BUFFER_POINTER, buf, CU_LAUNCH_PARAM_END};
		CHK_ERR(cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, NULL, NULL, no_size), CUDA_ERROR_INVALID_VALUE);
	}
	CHK_ERR(cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, NULL, NULL, NULL), CUDA_ERROR_INVALID_VALUE);
	/* Nothing ran: y is as the first launch left it. */
	CHK(cuCtxSynchronize());
	expect(dy, want, n, "after refused launches");
}
END_TEST

START_TEST(test_launch_ex_and_cooperative)
{
	enum { n = 64 };
	CUdeviceptr p;
	float v = 3.0f;
	uint64_t cnt = n;
	void *args[] = {&p, &v, &cnt};
	CUlaunchConfig cfg;
	CUlaunchAttribute attr;
	CUstream s;
	CUfunction f;

	start();
	f = simtest_func("mv_fill");
	CHK(cuStreamCreate(&s, 0));
	p = out_buf(n);
	memset(&cfg, 0, sizeof(cfg));
	cfg.gridDimX = 2;
	cfg.gridDimY = cfg.gridDimZ = 1;
	cfg.blockDimX = 128;
	cfg.blockDimY = cfg.blockDimZ = 1;
	cfg.hStream = s;
	CHK(cuLaunchKernelEx(&cfg, f, args, NULL));
	CHK(cuStreamSynchronize(s));
	simtest_expect_floats(p, n, 3.0f);

	memset(&attr, 0, sizeof(attr));
	attr.id = CU_LAUNCH_ATTRIBUTE_COOPERATIVE;
	attr.value.cooperative = 1;
	cfg.attrs = &attr;
	cfg.numAttrs = 1;
	v = 4.0f;
	CHK(cuLaunchKernelEx(&cfg, f, args, NULL));
	CHK(cuStreamSynchronize(s));
	simtest_expect_floats(p, n, 4.0f);
	cfg.attrs = NULL;
	CHK_ERR(cuLaunchKernelEx(&cfg, f, args, NULL), CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuLaunchKernelEx(NULL, f, args, NULL), CUDA_ERROR_INVALID_VALUE);

	v = 5.0f;
	CHK(cuLaunchCooperativeKernel(f, 4, 1, 1, 256, 1, 1, 0, s, args));
	CHK(cuStreamSynchronize(s));
	simtest_expect_floats(p, n, 5.0f);
}
END_TEST

START_TEST(test_launch_dimensions)
{
	CUdeviceptr p;
	float v = 1.0f;
	uint64_t cnt = 4;
	void *args[] = {&p, &v, &cnt};
	CUfunction f;

	start();
	f = simtest_func("mv_fill");
	CHK(cuMemAlloc(&p, 16));
	CHK_ERR(cuLaunchKernel(f, 0, 1, 1, 1, 1, 1, 0, NULL, args, NULL), CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuLaunchKernel(f, 1, 1, 1, 0, 1, 1, 0, NULL, args, NULL), CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuLaunchKernel(f, 1, 1, 1, 1025, 1, 1, 0, NULL, args, NULL), CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuLaunchKernel(f, 1, 1, 1, 32, 32, 2, 0, NULL, args, NULL), CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuLaunchKernel(f, 1, 65536, 1, 1, 1, 1, 0, NULL, args, NULL), CUDA_ERROR_INVALID_VALUE);
	CHK(cuLaunchKernel(f, 1u << 20, 65535, 1, 32, 32, 1, 0, NULL, args, NULL));
	CHK_ERR(cuLaunchKernel(NULL, 1, 1, 1, 1, 1, 1, 0, NULL, args, NULL), CUDA_ERROR_INVALID_HANDLE);
	CHK(cuCtxSynchronize());
}
END_TEST

/* ---- the module and its functions ---- */

/* Each kernel's parameters by kind, from its CUDA C signature in kernels.h: P a pointer, L a
 * uint64_t, U a uint32_t, F a float. */
static const struct {
	const char *name, *sig;
} layouts[] = {
	{"mv_fill", "PFL"},
	{"mv_axpy", "PPFL"},
	{"mv_relu_fwd", "PPL"},
	{"mv_relu_bwd", "PPPL"},
	{"mv_add", "PPPL"},
	{"mv_sub", "PPPL"},
	{"mv_mul", "PPPL"},
	{"mv_sgd", "PPFL"},
	{"mv_init_uniform", "PLLF"},
	{"mv_gemm", "PPPUUU"},
	{"mv_gemm_ex", "PPPUUUU"},
	{"mv_gemm_batched", "PPPUUUUU"},
	{"mv_conv_fwd", "PPPUUUUU"},
	{"mv_conv_bwd", "PPPPPUUUUU"},
	{"mv_pool2_fwd", "PPUU"},
	{"mv_pool2_bwd", "PPUU"},
	{"mv_gap_fwd", "PPUU"},
	{"mv_gap_bwd", "PPUU"},
	{"mv_heads_split", "PPUUUU"},
	{"mv_heads_merge", "PPUUUU"},
	{"mv_pwnorm_fwd", "PPUU"},
	{"mv_pwnorm_bwd", "PPPUU"},
	{"mv_lstm_cell_fwd", "PPPPUU"},
	{"mv_lstm_cell_bwd", "PPPPPPUU"},
	{"mv_checksum", "PPL"},
	{"mv_gather_ptrs", "PPUL"},
	{"mv_touch2", "PPP"},
	{"mv_touch8", "PPPPPPPPP"},
	{"mv_touch32", "PPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPP"},
};

START_TEST(test_param_layouts)
{
	start();
	for (size_t i = 0; i < sizeof(layouts) / sizeof(layouts[0]); i++) {
		CUfunction f = simtest_func(layouts[i].name);
		const char *sig = layouts[i].sig, *name = NULL;
		size_t off = 0, n = strlen(sig);

		CHK(cuFuncGetName(&name, f));
		ck_assert_str_eq(name, layouts[i].name);
		for (size_t p = 0; p < n; p++) {
			size_t want = sig[p] == 'P' || sig[p] == 'L' ? 8 : 4, got_off = 99, got_size = 99;
			off = (off + want - 1) / want * want;
			CHK(cuFuncGetParamInfo(f, p, &got_off, &got_size));
			ck_assert_msg(got_off == off && got_size == want,
				      "%s parameter %zu: offset %zu size %zu, expected %zu and %zu", layouts[i].name, p,
				      got_off, got_size, off, want);
			off += want;
		}
		CHK_ERR(cuFuncGetParamInfo(f, n, &off, &off), CUDA_ERROR_INVALID_VALUE);
	}
}
END_TEST

START_TEST(test_gemm_param_info)
{
	static const size_t offs[] = {0, 8, 16, 24, 28, 32}, sizes[] = {8, 8, 8, 4, 4, 4};
	CUfunction f;
	size_t off = 99, size = 99;

	start();
	f = simtest_func("mv_gemm");
	for (size_t i = 0; i < 6; i++) {
		CHK(cuFuncGetParamInfo(f, i, &off, &size));
		ck_assert_uint_eq(off, offs[i]);
		ck_assert_uint_eq(size, sizes[i]);
	}
	CHK_ERR(cuFuncGetParamInfo(f, 6, &off, &size), CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuFuncGetParamInfo(f, 1000, &off, &size), CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuFuncGetParamInfo(NULL, 0, &off, &size), CUDA_ERROR_INVALID_HANDLE);
}
END_TEST

START_TEST(test_module_errors)
{
	CUmodule m;
	CUfunction f;
	static const char other[] = "\x7f" "ELF not the built-in module";

	start();
	CHK_ERR(cuModuleLoadData(&m, other), CUDA_ERROR_INVALID_IMAGE);
	CHK_ERR(cuModuleLoadData(&m, "simcuda2"), CUDA_ERROR_INVALID_IMAGE);
	CHK_ERR(cuModuleLoadData(&m, NULL), CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuModuleGetFunction(&f, simtest_mod, "mv_no_such_kernel"), CUDA_ERROR_NOT_FOUND);
	CHK_ERR(cuModuleGetFunction(&f, simtest_mod, "mv_gem"), CUDA_ERROR_NOT_FOUND);
	CHK_ERR(cuModuleGetFunction(&f, simtest_mod, NULL), CUDA_ERROR_INVALID_VALUE);
	CHK_ERR(cuModuleGetFunction(&f, NULL, "mv_fill"), CUDA_ERROR_INVALID_HANDLE);
	/* A second load of the built-in image works and unloads. */
	CHK(cuModuleLoadData(&m, "simcuda"));
	CHK(cuModuleGetFunction(&f, m, "mv_fill"));
	CHK(cuModuleUnload(m));
}
END_TEST

/* A module's functions die with it (at its unload, or its context's end), and a module loaded
 * afterwards may get their handles for other functions, as from a real driver, whose function
 * objects are freed memory then. */
START_TEST(test_module_unload_gives_handles_back)
{
	CUmodule m1, m2, of = NULL;
	CUfunction f1, f2;
	CUcontext c;
	const char *name = NULL;
	size_t off, size;

	start();
	CHK(cuModuleLoadData(&m1, "simcuda"));
	CHK(cuModuleGetFunction(&f1, m1, "mv_axpy"));
	CHK(cuFuncGetModule(&of, f1));
	ck_assert_ptr_eq(of, m1);
	CHK(cuModuleUnload(m1));
	CHK_ERR(cuFuncGetParamInfo(f1, 0, &off, &size), CUDA_ERROR_INVALID_HANDLE);
	CHK_ERR(cuFuncGetModule(&of, f1), CUDA_ERROR_INVALID_HANDLE);
	CHK(cuModuleLoadData(&m2, "simcuda"));
	CHK(cuFuncGetName(&name, f1));
	ck_assert_str_ne(name, "mv_axpy");
	CHK(cuFuncGetModule(&of, f1));
	ck_assert_ptr_eq(of, m2);
	CHK(cuModuleGetFunction(&f2, m2, "mv_axpy"));
	ck_assert_ptr_ne(f2, f1);
	CHK(cuModuleUnload(m2));
	/* The module the harness loaded has functions of its own. */
	CHK(cuFuncGetModule(&of, simtest_func("mv_fill")));
	ck_assert_ptr_eq(of, simtest_mod);
	/* A context's end unloads the modules loaded in it. */
	CHK(cuCtxCreate(&c, NULL, 0, 0));
	CHK(cuModuleLoadData(&m1, "simcuda"));
	CHK(cuModuleGetFunction(&f1, m1, "mv_fill"));
	CHK(cuCtxDestroy(c));
	CHK(cuCtxSetCurrent(simtest_ctx));
	CHK_ERR(cuFuncGetParamInfo(f1, 0, &off, &size), CUDA_ERROR_INVALID_HANDLE);
	CHK_ERR(cuModuleUnload(m1), CUDA_ERROR_INVALID_HANDLE);
	CHK(cuFuncGetModule(&of, simtest_func("mv_fill")));
	ck_assert_ptr_eq(of, simtest_mod);
}
END_TEST

static Suite *launch_suite(void)
{
	Suite *s = suite_create("simcuda_launch");
	TCase *tc = simtest_tcase(s, "kernels", 10);

	tcase_add_test(tc, test_fill);
	tcase_add_test(tc, test_relu_fwd);
	tcase_add_test(tc, test_relu_bwd);
	tcase_add_test(tc, test_add);
	tcase_add_test(tc, test_sub);
	tcase_add_test(tc, test_mul);
	tcase_add_test(tc, test_axpy);
	tcase_add_test(tc, test_sgd);
	tcase_add_test(tc, test_init_uniform);
	tcase_add_test(tc, test_gemm);
	tcase_add_test(tc, test_gemm_ex);
	tcase_add_test(tc, test_gemm_batched);
	tcase_add_test(tc, test_conv_fwd);
	tcase_add_test(tc, test_conv_bwd);
	tcase_add_test(tc, test_pool2);
	tcase_add_test(tc, test_gap);
	tcase_add_test(tc, test_heads);
	tcase_add_test(tc, test_pwnorm);
	tcase_add_test(tc, test_lstm_cell);
	tcase_add_test(tc, test_checksum);
	tcase_add_test(tc, test_gather_ptrs);
	tcase_add_test(tc, test_gather_ptrs_unmapped_faults);
	tc = simtest_tcase(s, "launch", 10);
	tcase_add_test(tc, test_extra_buffer);
	tcase_add_test(tc, test_launch_ex_and_cooperative);
	tcase_add_test(tc, test_launch_dimensions);
	tc = simtest_tcase(s, "module", 10);
	tcase_add_test(tc, test_param_layouts);
	tcase_add_test(tc, test_gemm_param_info);
	tcase_add_test(tc, test_module_errors);
	tcase_add_test(tc, test_module_unload_gives_handles_back);
	return s;
}

int main(void)
{
	return simtest_run(launch_suite());
}
