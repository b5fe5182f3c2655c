/* The workload kernels as plain C: one definition shared by the simulated driver's built-in module
 * (which runs them on the memory behind device addresses) and by mvtrain's host reference (which runs
 * them on ordinary arrays). tests/workloads/kernels.cu holds the same kernels for nvcc.
 *
 * Every kernel is deterministic and computes each output element with one sequential loop in a fixed
 * order, without fused multiply-add, so the C and CUDA versions agree bit for bit. */
#ifndef MV_KERNELS_H
#define MV_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#define MV_KERNEL_MAX_PARAMS 72 /* mv_touch32 has 33; the simulated driver's own mv_wide, 71 */

/* One memory range a kernel touches, named by its parameters (device addresses on the device). */
struct mv_krange {
	uint64_t addr;
	uint64_t bytes;
};

/* What a running kernel may ask of whoever runs it. The simulated driver passes one that checks every
 * address a kernel reads through memory (pointer arrays): a kernel must call check() before it
 * dereferences such a pointer and stop when it fails. The host reference passes NULL. */
struct mv_kenv {
	int (*check)(const struct mv_kenv *env, uint64_t addr, uint64_t bytes);
	void *opaque;
};

/* One kernel: its name and parameter layout (as cuFuncGetParamInfo reports it), and three functions
 * over its argument array (args[i] points at parameter i's value, as in cuLaunchKernel):
 *   run     computes the results; returns 0, or -1 when env->check refused an address;
 *   cost    the work it does, for the time model: floating-point operations and bytes moved;
 *   ranges  the memory ranges its pointer parameters span; returns how many it wrote (at most max). */
struct mv_kernel_desc {
	const char *name;
	unsigned nparams;
	uint16_t offset[MV_KERNEL_MAX_PARAMS];
	uint16_t size[MV_KERNEL_MAX_PARAMS];
	int (*run)(void *const *args, const struct mv_kenv *env);
	void (*cost)(void *const *args, double *flops, double *bytes);
	int (*ranges)(void *const *args, struct mv_krange *out, int max);
};

/* The kernels, by name and CUDA C signature (pointers are device addresses; n counts floats):
 *   mv_fill(float *p, float v, uint64_t n)                          p = v
 *   mv_axpy(float *y, const float *x, float a, uint64_t n)          y += a x
 *   mv_relu_fwd(float *y, const float *x, uint64_t n)
 *   mv_relu_bwd(float *dx, const float *dy, const float *x, uint64_t n)
 *   mv_add / mv_sub / mv_mul(float *y, const float *a, const float *b, uint64_t n)   y = a op b
 *   mv_sgd(float *w, const float *g, float lr, uint64_t n)          w -= lr g
 *   mv_init_uniform(float *p, uint64_t n, uint64_t seed, float scale)
 *       p[i] uniform in [-scale, scale) from a hash of (seed, i)
 *   mv_gemm(float *c, const float *a, const float *b, uint32_t m, uint32_t n, uint32_t k)
 *       row-major c[m][n] = a[m][k] . b[k][n]
 *   mv_gemm_ex(c, a, b, m, n, k, uint32_t flags)                    MV_GEMM_* below
 *   mv_gemm_batched(c, a, b, m, n, k, uint32_t flags, uint32_t batch)
 *       batch products stored back to back (c + z m n, a + z m k, b + z k n)
 *   mv_conv_fwd(float *y, const float *x, const float *w, uint32_t n, uint32_t c, uint32_t hw,
 *       uint32_t k, uint32_t r)
 *       NCHW, square hw x hw images, stride 1, same padding (r odd): x[n][c][hw][hw],
 *       w[k][c][r][r], y[n][k][hw][hw]
 *   mv_conv_bwd(float *dx, float *dw, const float *dy, const float *x, const float *w,
 *       uint32_t n, uint32_t c, uint32_t hw, uint32_t k, uint32_t r)
 *       writes dw and, unless dx is NULL, dx (both overwritten, not accumulated)
 *   mv_pool2_fwd(float *y, const float *x, uint32_t nc, uint32_t hw)   2x2 average, hw even
 *   mv_pool2_bwd(float *dx, const float *dy, uint32_t nc, uint32_t hw) (hw: the larger side)
 *   mv_gap_fwd(float *y, const float *x, uint32_t nc, uint32_t hw)     global average of hw x hw
 *   mv_gap_bwd(float *dx, const float *dy, uint32_t nc, uint32_t hw)
 *   mv_heads_split(float *y, const float *x, uint32_t b, uint32_t s, uint32_t h, uint32_t dh)
 *       y[b][h][s][dh] = x[b][s][h][dh]; mv_heads_merge is the inverse, same parameters
 *   mv_pwnorm_fwd(float *y, const float *x, uint32_t rows, uint32_t cols)
 *       softmax stand-in per row: e = max(x, 0) + 1, y = e / sum(e)
 *   mv_pwnorm_bwd(float *dx, const float *dy, const float *x, uint32_t rows, uint32_t cols)
 *   mv_lstm_cell_fwd(float *c, float *h, const float *gates, const float *cprev, uint32_t b,
 *       uint32_t hd)
 *       gates rows [i|f|g|o]; c = hsig(f) cprev + hsig(i) htanh(g), h = hsig(o) htanh(c), with
 *       hsig(x) = clamp(x/4 + 1/2, 0, 1) and htanh(x) = clamp(x, -1, 1); cprev NULL is zero
 *   mv_lstm_cell_bwd(float *dgates, float *dcprev, const float *dh, const float *dc,
 *       const float *gates, const float *cprev, uint32_t b, uint32_t hd)
 *       dc and cprev NULL are zero; dcprev NULL is not written
 *   mv_checksum(uint64_t *out, const void *p, uint64_t bytes)       FNV-1a 64 of the bytes
 *   mv_gather_ptrs(float *out, const float *const *ptrs, uint32_t count, uint64_t n)
 *       out[i] = sum over j of ptrs[j][i], ptrs read from device memory
 *   mv_touch2(float *out, const float *p0, const float *p1)
 *   mv_touch8(float *out, const float *p0, ..., const float *p7)
 *   mv_touch32(float *out, const float *p0, ..., const float *p31)
 *       out[0] = p0[0] + p1[0] + ... in that order: a launch that names many buffers and does
 *       almost nothing, to measure the cost of launching
 * cost() counts 2mnk flops per gemm, 2 n k c hw^2 r^2 per convolution forward and twice that for a
 * backward pass that writes dx (once for dw alone); bytes are those read plus those written. */

/* The table of every kernel, terminated by an entry whose name is NULL. */
extern const struct mv_kernel_desc mv_kernels[];

/* Finds a kernel by name; NULL when there is none. */
const struct mv_kernel_desc *mv_kernel_find(const char *name);

/* Flags of mv_gemm_ex. */
#define MV_GEMM_TRANS_A 1u /* a is stored k x m */
#define MV_GEMM_TRANS_B 2u /* b is stored n x k */
#define MV_GEMM_ACCUM 4u   /* c += a.b instead of c = a.b */

#endif
