/* The models mvtrain trains: VGG-16, ResNet-50, a BERT-large-like Transformer encoder and an LSTM,
 * with the published shapes (shrunk by --scale), written once for the device and the host reference.
 *
 * Each forward layer allocates its output; the backward pass consumes activations in reverse order and
 * frees each one as soon as nothing needs it, as a framework does. Simplifications that keep every
 * kernel exact and deterministic: no biases or normalisation layers, ReLU or hard (piecewise-linear)
 * gates instead of transcendental functions, and a piecewise-linear normalisation in place of softmax. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "tests/workloads/mvtrain.h"

/* The loss sums over its rows (samples, or tokens); dividing the rate by their number makes this the
 * usual mean loss. */
static void
models_set_lr(struct mvt *t, float lr, unsigned rows)
{
	t->lr = lr / (float)rows;
}

/* ---- Scaling ----------------------------------------------------------------------------------- */

static unsigned
models_dim(const struct mvt *t, double full)
{
	long v = lround(full * t->opts->scale);

	return v < 1 ? 1 : (unsigned)v;
}

/* Image side for networks that halve it five times: a multiple of 32, 224 at full scale. */
static unsigned
models_image_side(const struct mvt *t)
{
	return 32 * models_dim(t, 7.0);
}

static unsigned
models_seq(const struct mvt *t, double full)
{
	return t->opts->seq != 0 ? t->opts->seq : models_dim(t, full);
}

static void *
models_xcalloc(size_t n, size_t size)
{
	void *p = calloc(n, size);

	if (p == NULL) {
		fprintf(stderr, "mvtrain: out of host memory\n");
		exit(1);
	}
	return p;
}

/* ---- Kernel launches --------------------------------------------------------------------------- */

static void
k_relu_fwd(struct mvt *t, uint64_t y, uint64_t x, uint64_t n)
{
	void *a[] = { &y, &x, &n };
	mvt_launch(t, MVK_RELU_FWD, n, a);
}

static void
k_relu_bwd(struct mvt *t, uint64_t dx, uint64_t dy, uint64_t x, uint64_t n)
{
	void *a[] = { &dx, &dy, &x, &n };
	mvt_launch(t, MVK_RELU_BWD, n, a);
}

static void
k_add(struct mvt *t, uint64_t y, uint64_t p, uint64_t q, uint64_t n)
{
	void *a[] = { &y, &p, &q, &n };
	mvt_launch(t, MVK_ADD, n, a);
}

static void
k_sub(struct mvt *t, uint64_t y, uint64_t p, uint64_t q, uint64_t n)
{
	void *a[] = { &y, &p, &q, &n };
	mvt_launch(t, MVK_SUB, n, a);
}

static void
k_axpy(struct mvt *t, uint64_t y, uint64_t x, float alpha, uint64_t n)
{
	void *a[] = { &y, &x, &alpha, &n };
	mvt_launch(t, MVK_AXPY, n, a);
}

static void
k_fill(struct mvt *t, uint64_t p, float v, uint64_t n)
{
	void *a[] = { &p, &v, &n };
	mvt_launch(t, MVK_FILL, n, a);
}

static void
k_gemm(struct mvt *t, uint64_t c, uint64_t pa, uint64_t pb, uint32_t m, uint32_t n, uint32_t k,
    uint32_t flags)
{
	if (flags == 0) {
		void *a[] = { &c, &pa, &pb, &m, &n, &k };
		mvt_launch(t, MVK_GEMM, (uint64_t)m * n, a);
	} else {
		void *a[] = { &c, &pa, &pb, &m, &n, &k, &flags };
		mvt_launch(t, MVK_GEMM_EX, (uint64_t)m * n, a);
	}
}

static void
k_gemm_batched(struct mvt *t, uint64_t c, uint64_t pa, uint64_t pb, uint32_t m, uint32_t n,
    uint32_t k, uint32_t flags, uint32_t batch)
{
	void *a[] = { &c, &pa, &pb, &m, &n, &k, &flags, &batch };
	mvt_launch(t, MVK_GEMM_BATCHED, (uint64_t)m * n * batch, a);
}

static void
k_conv_fwd(struct mvt *t, uint64_t y, uint64_t x, uint64_t w, uint32_t n, uint32_t c, uint32_t hw,
    uint32_t k, uint32_t r)
{
	void *a[] = { &y, &x, &w, &n, &c, &hw, &k, &r };
	mvt_launch(t, MVK_CONV_FWD, (uint64_t)n * k * hw * hw, a);
}

static void
k_conv_bwd(struct mvt *t, uint64_t dx, uint64_t dw, uint64_t dy, uint64_t x, uint64_t w, uint32_t n,
    uint32_t c, uint32_t hw, uint32_t k, uint32_t r)
{
	void *a[] = { &dx, &dw, &dy, &x, &w, &n, &c, &hw, &k, &r };
	uint64_t work = (uint64_t)k * c * r * r + (dx != 0 ? (uint64_t)n * c * hw * hw : 0);
	mvt_launch(t, MVK_CONV_BWD, work, a);
}

static void
k_pool(struct mvt *t, enum mvt_kid kid, uint64_t out, uint64_t in, uint32_t nc, uint32_t hw,
    uint64_t work)
{
	void *a[] = { &out, &in, &nc, &hw };
	mvt_launch(t, kid, work, a);
}

static void
k_heads(struct mvt *t, enum mvt_kid kid, uint64_t y, uint64_t x, uint32_t b, uint32_t s, uint32_t h,
    uint32_t dh)
{
	void *a[] = { &y, &x, &b, &s, &h, &dh };
	mvt_launch(t, kid, (uint64_t)b * s * h * dh, a);
}

static void
k_pwnorm_fwd(struct mvt *t, uint64_t y, uint64_t x, uint32_t rows, uint32_t cols)
{
	void *a[] = { &y, &x, &rows, &cols };
	mvt_launch(t, MVK_PWNORM_FWD, (uint64_t)rows * cols, a);
}

static void
k_pwnorm_bwd(struct mvt *t, uint64_t dx, uint64_t dy, uint64_t x, uint32_t rows, uint32_t cols)
{
	void *a[] = { &dx, &dy, &x, &rows, &cols };
	mvt_launch(t, MVK_PWNORM_BWD, (uint64_t)rows * cols, a);
}

static void
k_lstm_fwd(struct mvt *t, uint64_t c, uint64_t h, uint64_t gates, uint64_t cprev, uint32_t b,
    uint32_t hd)
{
	void *a[] = { &c, &h, &gates, &cprev, &b, &hd };
	mvt_launch(t, MVK_LSTM_CELL_FWD, (uint64_t)b * hd, a);
}

static void
k_lstm_bwd(struct mvt *t, uint64_t dgates, uint64_t dcprev, uint64_t dh, uint64_t dc, uint64_t gates,
    uint64_t cprev, uint32_t b, uint32_t hd)
{
	void *a[] = { &dgates, &dcprev, &dh, &dc, &gates, &cprev, &b, &hd };
	mvt_launch(t, MVK_LSTM_CELL_BWD, (uint64_t)b * hd, a);
}

/* L2 loss: dy = y - target, for a fresh dy; frees y and the target. */
static uint64_t
models_loss(struct mvt *t, uint64_t y, unsigned step, uint64_t n)
{
	uint64_t target = mvt_input(t, step, 1, n);
	uint64_t dy = mvt_alloc(t, n);

	k_sub(t, dy, y, target, n);
	mvt_free(t, target, n);
	mvt_free(t, y, n);
	return dy;
}

/* ---- Convolutional building blocks (NCHW activations of batch b) ------------------------------- */

/* An activation with its shape: c channels of hw x hw (hw 1 for flat vectors of c values). */
struct act {
	uint64_t addr;
	unsigned c, hw;
};

static uint64_t
act_n(const struct mvt *t, struct act a)
{
	return (uint64_t)t->batch * a.c * a.hw * a.hw;
}

static struct act
act_new(struct mvt *t, unsigned c, unsigned hw)
{
	struct act a = { 0, c, hw };

	a.addr = mvt_alloc(t, act_n(t, a));
	return a;
}

static void
act_free(struct mvt *t, struct act a)
{
	mvt_free(t, a.addr, act_n(t, a));
}

/* A new conv weight with He-uniform initialisation, times gain. */
static unsigned
conv_weight(struct mvt *t, unsigned k, unsigned c, unsigned r, float gain)
{
	return mvt_weight_new(t, (uint64_t)k * c * r * r, gain * sqrtf(6.0f / (float)(c * r * r)));
}

/* Where a layer followed by ReLU writes its raw output: y itself (ReLU runs in place), or with
 * --graphs a workspace of the layer's own, as an unfused framework's kernels use one, so that each
 * captured piece has a temporary. The values are the same either way. */
static uint64_t
relu_raw(struct mvt *t, struct act y, int relu)
{
	return relu && mvt_graphs_on(t) ? mvt_alloc(t, act_n(t, y)) : y.addr;
}

/* ReLU from raw into y, and the workspace's release. */
static void
relu_out(struct mvt *t, struct act y, uint64_t raw, int relu)
{
	if (relu)
		k_relu_fwd(t, y.addr, raw, act_n(t, y));
	if (raw != y.addr)
		mvt_free(t, raw, act_n(t, y));
}

/* y = conv(x) with weight wi (k outputs, r x r), then ReLU when relu is set. */
static struct act
conv_fwd(struct mvt *t, struct act x, unsigned wi, unsigned k, unsigned r, int relu)
{
	struct act y = act_new(t, k, x.hw);
	uint64_t raw = relu_raw(t, y, relu);

	k_conv_fwd(t, raw, x.addr, t->w[wi].addr, t->batch, x.c, x.hw, k, r);
	relu_out(t, y, raw, relu);
	return y;
}

/* Backward of conv_fwd given dy (consumed: ReLU backward runs in place on it, using the output y);
 * writes the weight gradient to a new grads[wi] and returns dx (0 when want_dx is clear). */
static uint64_t
conv_bwd(struct mvt *t, struct act x, struct act y, uint64_t dy, unsigned wi, unsigned r, int relu,
    int want_dx, uint64_t *grads)
{
	uint64_t dx = want_dx ? mvt_alloc(t, act_n(t, x)) : 0;

	if (relu)
		k_relu_bwd(t, dy, dy, y.addr, act_n(t, y));
	grads[wi] = mvt_alloc(t, t->w[wi].n);
	k_conv_bwd(t, dx, grads[wi], dy, x.addr, t->w[wi].addr, t->batch, x.c, x.hw, y.c, r);
	return dx;
}

static struct act
pool_fwd(struct mvt *t, struct act x)
{
	struct act y = act_new(t, x.c, x.hw / 2);

	k_pool(t, MVK_POOL2_FWD, y.addr, x.addr, t->batch * x.c, x.hw, act_n(t, y));
	return y;
}

/* dx from dy through the pool over x. */
static uint64_t
pool_bwd(struct mvt *t, struct act x, uint64_t dy)
{
	uint64_t dx = mvt_alloc(t, act_n(t, x));

	k_pool(t, MVK_POOL2_BWD, dx, dy, t->batch * x.c, x.hw, act_n(t, x));
	return dx;
}

/* A fully connected layer on a flat batch: y[b][out] = x[b][in] . w[in][out]. */
static struct act
fc_fwd(struct mvt *t, struct act x, unsigned wi, unsigned out, int relu)
{
	unsigned in = x.c * x.hw * x.hw;
	struct act y = act_new(t, out, 1);
	uint64_t raw = relu_raw(t, y, relu);

	k_gemm(t, raw, x.addr, t->w[wi].addr, t->batch, out, in, 0);
	relu_out(t, y, raw, relu);
	return y;
}

static uint64_t
fc_bwd(struct mvt *t, struct act x, struct act y, uint64_t dy, unsigned wi, int relu, uint64_t *grads)
{
	unsigned in = x.c * x.hw * x.hw, out = y.c;
	uint64_t dx = mvt_alloc(t, act_n(t, x));

	if (relu)
		k_relu_bwd(t, dy, dy, y.addr, act_n(t, y));
	grads[wi] = mvt_alloc(t, t->w[wi].n);
	k_gemm(t, grads[wi], x.addr, dy, in, out, t->batch, MV_GEMM_TRANS_A);
	k_gemm(t, dx, dy, t->w[wi].addr, t->batch, in, out, MV_GEMM_TRANS_B);
	return dx;
}

/* ---- VGG-16 ------------------------------------------------------------------------------------ */

/* 13 3x3 convolutions (0 marks a 2x2 pool), then FC 4096, 4096, 1000 on 224x224x3. */
static const int vgg_cfg[] = { 64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0,
	512, 512, 512, 0 };
#define VGG_NCFG (sizeof(vgg_cfg) / sizeof(vgg_cfg[0]))
#define VGG_NLAYERS (VGG_NCFG + 3)

struct vgg {
	unsigned hw;
	unsigned ch[VGG_NCFG];          /* channels of each conv (0 for pools) */
	unsigned wi[VGG_NLAYERS];       /* weight index of each conv and FC layer */
	unsigned fc[3];
};

static void
vgg_build(struct mvt *t)
{
	struct vgg *v = models_xcalloc(1, sizeof(*v));
	unsigned c = 3, hw;

	v->hw = hw = models_image_side(t);
	for (unsigned i = 0; i < VGG_NCFG; i++) {
		if (vgg_cfg[i] == 0) {
			hw /= 2;
			continue;
		}
		v->ch[i] = models_dim(t, vgg_cfg[i]);
		v->wi[i] = conv_weight(t, v->ch[i], c, 3, 1.0f);
		c = v->ch[i];
	}
	v->fc[0] = models_dim(t, 4096);
	v->fc[1] = models_dim(t, 4096);
	v->fc[2] = models_dim(t, 1000);
	c = c * hw * hw;
	for (unsigned i = 0; i < 3; i++) {
		float gain = i < 2 ? 6.0f : 3.0f;

		v->wi[VGG_NCFG + i] = mvt_weight_new(t, (uint64_t)c * v->fc[i], sqrtf(gain / (float)c));
		c = v->fc[i];
	}
	models_set_lr(t, 0.01f, t->batch);
	t->model = v;
}

static void
vgg_step(struct mvt *t, unsigned step)
{
	struct vgg *v = t->model;
	struct act a[VGG_NLAYERS + 1];
	uint64_t *grads = models_xcalloc(t->nw, sizeof(*grads));
	uint64_t dy;

	a[0].c = 3;
	a[0].hw = v->hw;
	a[0].addr = mvt_input(t, step, 0, act_n(t, a[0]));
	for (unsigned i = 0; i < VGG_NLAYERS; i++) {
		mvt_piece_begin(t);
		if (i >= VGG_NCFG)
			a[i + 1] = fc_fwd(t, a[i], v->wi[i], v->fc[i - VGG_NCFG], i + 1 < VGG_NLAYERS);
		else if (vgg_cfg[i] == 0)
			a[i + 1] = pool_fwd(t, a[i]);
		else
			a[i + 1] = conv_fwd(t, a[i], v->wi[i], v->ch[i], 3, 1);
		mvt_piece_end(t);
	}

	dy = models_loss(t, a[VGG_NLAYERS].addr, step, act_n(t, a[VGG_NLAYERS]));
	for (unsigned i = VGG_NLAYERS; i-- > 0;) {
		uint64_t dx;

		mvt_piece_begin(t);
		if (i >= VGG_NCFG)
			dx = fc_bwd(t, a[i], a[i + 1], dy, v->wi[i], i + 1 < VGG_NLAYERS, grads);
		else if (vgg_cfg[i] == 0)
			dx = pool_bwd(t, a[i], dy);
		else
			dx = conv_bwd(t, a[i], a[i + 1], dy, v->wi[i], 3, 1, i > 0, grads);
		mvt_free(t, dy, act_n(t, a[i + 1]));
		/* The last output was freed by the loss. */
		if (i + 1 < VGG_NLAYERS)
			act_free(t, a[i + 1]);
		mvt_piece_end(t);
		dy = dx;
	}
	act_free(t, a[0]);
	mvt_sgd_step(t, grads);
	free(grads);
}

/* ---- ResNet-50 --------------------------------------------------------------------------------- */

/* Bottleneck stages [3, 4, 6, 3] of widths (64, 256), (128, 512), (256, 1024), (512, 2048) after a
 * 7x7/64 stem, then global average pooling and FC 1000. Every convolution has stride 1: the stem's
 * stride-2 convolution and max pool, and each later stage's stride-2 entry, are replaced by a 2x2
 * average pool, which gives the published spatial sizes (56, 28, 14, 7). No batch normalisation: the
 * last convolution of each residual branch starts small instead, so the sum stays bounded. */
static const unsigned resnet_blocks[4] = { 3, 4, 6, 3 };
#define RESNET_NBLOCKS 16

struct resnet_block {
	unsigned w1, w2, w3, ws;        /* weight indices; ws is UINT32_MAX without a projection */
	unsigned cin, width, cout;
	int pool;                       /* a 2x2 pool precedes the block */
};

struct resnet {
	unsigned hw;
	unsigned stem_c, stem_w, fc_w, classes;
	struct resnet_block b[RESNET_NBLOCKS];
};

static void
resnet_build(struct mvt *t)
{
	struct resnet *r = models_xcalloc(1, sizeof(*r));
	unsigned c, nb = 0;

	r->hw = models_image_side(t);
	r->stem_c = models_dim(t, 64);
	r->stem_w = conv_weight(t, r->stem_c, 3, 7, 1.0f);
	c = r->stem_c;
	for (unsigned s = 0; s < 4; s++)
		for (unsigned i = 0; i < resnet_blocks[s]; i++) {
			struct resnet_block *b = &r->b[nb++];

			b->cin = c;
			b->width = models_dim(t, 64u << s);
			b->cout = models_dim(t, 256u << s);
			b->pool = s > 0 && i == 0;
			b->w1 = conv_weight(t, b->width, c, 1, 1.0f);
			b->w2 = conv_weight(t, b->width, b->width, 3, 1.0f);
			b->w3 = conv_weight(t, b->cout, b->width, 1, 0.1f);
			b->ws = c != b->cout ? conv_weight(t, b->cout, c, 1, 0.5f) : UINT32_MAX;
			c = b->cout;
		}
	r->classes = models_dim(t, 1000);
	r->fc_w = mvt_weight_new(t, (uint64_t)c * r->classes, sqrtf(3.0f / (float)c));
	models_set_lr(t, 0.01f, t->batch);
	t->model = r;
}

/* What one block keeps for its backward pass. */
struct resnet_saved {
	struct act in;                  /* the block's input, after its pool if any */
	struct act pooled_from;         /* the pool's input when the block pools */
	struct act a1, a2, out;
};

static struct act
resnet_block_fwd(struct mvt *t, const struct resnet_block *b, struct act x, struct resnet_saved *sv)
{
	struct act out;

	if (b->pool) {
		sv->pooled_from = x;
		x = pool_fwd(t, x);
	}
	sv->in = x;
	sv->a1 = conv_fwd(t, x, b->w1, b->width, 1, 1);
	sv->a2 = conv_fwd(t, sv->a1, b->w2, b->width, 3, 1);
	out = conv_fwd(t, sv->a2, b->w3, b->cout, 1, 0);
	if (b->ws != UINT32_MAX) {
		struct act sc = conv_fwd(t, x, b->ws, b->cout, 1, 0);

		k_add(t, out.addr, out.addr, sc.addr, act_n(t, out));
		act_free(t, sc);
	} else {
		k_add(t, out.addr, out.addr, x.addr, act_n(t, out));
	}
	k_relu_fwd(t, out.addr, out.addr, act_n(t, out));
	sv->out = out;
	return out;
}

/* Consumes dout and the block's own activations; returns the gradient of the block's input (before
 * its pool). */
static uint64_t
resnet_block_bwd(struct mvt *t, const struct resnet_block *b, struct resnet_saved *sv, uint64_t dout,
    uint64_t *grads)
{
	uint64_t n_out = act_n(t, sv->out);
	uint64_t da2, da1, dx;

	k_relu_bwd(t, dout, dout, sv->out.addr, n_out);
	/* The branch ends in conv3 before the add, so its backward has no ReLU step of its own. */
	da2 = conv_bwd(t, sv->a2, sv->out, dout, b->w3, 1, 0, 1, grads);
	act_free(t, sv->out);
	da1 = conv_bwd(t, sv->a1, sv->a2, da2, b->w2, 3, 1, 1, grads);
	mvt_free(t, da2, act_n(t, sv->a2));
	act_free(t, sv->a2);
	dx = conv_bwd(t, sv->in, sv->a1, da1, b->w1, 1, 1, 1, grads);
	mvt_free(t, da1, act_n(t, sv->a1));
	act_free(t, sv->a1);
	/* The shortcut adds its gradient to the branch's. */
	if (b->ws != UINT32_MAX) {
		struct act sc_shape = { 0, b->cout, sv->in.hw };
		uint64_t dxs = conv_bwd(t, sv->in, sc_shape, dout, b->ws, 1, 0, 1, grads);

		k_axpy(t, dx, dxs, 1.0f, act_n(t, sv->in));
		mvt_free(t, dxs, act_n(t, sv->in));
	} else {
		k_axpy(t, dx, dout, 1.0f, act_n(t, sv->in));
	}
	mvt_free(t, dout, n_out);
	if (b->pool) {
		uint64_t dxp = pool_bwd(t, sv->pooled_from, dx);

		mvt_free(t, dx, act_n(t, sv->in));
		act_free(t, sv->in);
		dx = dxp;
	}
	return dx;
}

static void
resnet_step(struct mvt *t, unsigned step)
{
	struct resnet *r = t->model;
	struct resnet_saved sv[RESNET_NBLOCKS];
	uint64_t *grads = models_xcalloc(t->nw, sizeof(*grads));
	struct act in = { 0, 3, r->hw }, stem, p1, p2, x, g, y;
	uint64_t dy, dx;

	in.addr = mvt_input(t, step, 0, act_n(t, in));
	/* The stem's layers are pieces of their own: at full size its activations are the largest. */
	mvt_piece_begin(t);
	stem = conv_fwd(t, in, r->stem_w, r->stem_c, 7, 1);
	mvt_piece_end(t);
	mvt_piece_begin(t);
	p1 = pool_fwd(t, stem);
	mvt_piece_end(t);
	mvt_piece_begin(t);
	p2 = pool_fwd(t, p1);
	mvt_piece_end(t);
	x = p2;
	for (unsigned i = 0; i < RESNET_NBLOCKS; i++) {
		mvt_piece_begin(t);
		x = resnet_block_fwd(t, &r->b[i], x, &sv[i]);
		mvt_piece_end(t);
	}
	mvt_piece_begin(t);
	g = act_new(t, x.c, 1);
	k_pool(t, MVK_GAP_FWD, g.addr, x.addr, t->batch * x.c, x.hw, act_n(t, g));
	y = fc_fwd(t, g, r->fc_w, r->classes, 0);
	mvt_piece_end(t);

	dy = models_loss(t, y.addr, step, act_n(t, y));
	mvt_piece_begin(t);
	dx = fc_bwd(t, g, y, dy, r->fc_w, 0, grads);
	mvt_free(t, dy, act_n(t, y));
	act_free(t, g);
	dy = mvt_alloc(t, act_n(t, x));
	k_pool(t, MVK_GAP_BWD, dy, dx, t->batch * x.c, x.hw, act_n(t, x));
	mvt_free(t, dx, act_n(t, g));
	mvt_piece_end(t);
	for (unsigned i = RESNET_NBLOCKS; i-- > 0;) {
		mvt_piece_begin(t);
		dy = resnet_block_bwd(t, &r->b[i], &sv[i], dy, grads);
		mvt_piece_end(t);
	}
	mvt_piece_begin(t);
	dx = pool_bwd(t, p1, dy);
	mvt_free(t, dy, act_n(t, p2));
	act_free(t, p2);
	mvt_piece_end(t);
	mvt_piece_begin(t);
	dy = pool_bwd(t, stem, dx);
	mvt_free(t, dx, act_n(t, p1));
	act_free(t, p1);
	mvt_piece_end(t);
	mvt_piece_begin(t);
	conv_bwd(t, in, stem, dy, r->stem_w, 7, 1, 0, grads);
	mvt_free(t, dy, act_n(t, stem));
	act_free(t, stem);
	mvt_piece_end(t);
	act_free(t, in);
	mvt_sgd_step(t, grads);
	free(grads);
}

/* ---- Transformer encoder ----------------------------------------------------------------------- */

/* BERT-large-like: 24 layers, d_model 1024, 16 heads, feed-forward 4096, sequence 512. Each layer is
 * attention (Q, K, V, output projections) and a ReLU feed-forward block, each with a residual add. The
 * seq x seq scores of every head are materialised, before and after normalisation, as an unfused
 * framework does. Softmax is replaced by mv_pwnorm (e = max(x, 0) + 1, y = e / sum(e) per row), and
 * there is no layer normalisation. */
#define TF_LAYERS 24

struct tf {
	unsigned seq, d, heads, dh, ff;
	unsigned wq[TF_LAYERS], wk[TF_LAYERS], wv[TF_LAYERS], wo[TF_LAYERS], w1[TF_LAYERS],
	    w2[TF_LAYERS];
};

struct tf_saved {
	uint64_t x, qh, kh, vh, p, a, o, r1, g;
};

static void
tf_build(struct mvt *t)
{
	struct tf *f = models_xcalloc(1, sizeof(*f));
	float s_in, s_out, s_ff;

	f->seq = models_seq(t, 512);
	f->heads = models_dim(t, 16);
	f->dh = models_dim(t, 1024) / f->heads > 0 ? models_dim(t, 1024) / f->heads : 1;
	f->d = f->heads * f->dh;
	f->ff = models_dim(t, 4096);
	s_in = sqrtf(3.0f / (float)f->d);
	s_out = s_in / sqrtf(2.0f * TF_LAYERS);
	s_ff = sqrtf(3.0f / (float)f->ff) / sqrtf(2.0f * TF_LAYERS);
	for (unsigned l = 0; l < TF_LAYERS; l++) {
		uint64_t dd = (uint64_t)f->d * f->d, dff = (uint64_t)f->d * f->ff;

		f->wq[l] = mvt_weight_new(t, dd, s_in);
		f->wk[l] = mvt_weight_new(t, dd, s_in);
		f->wv[l] = mvt_weight_new(t, dd, s_in);
		f->wo[l] = mvt_weight_new(t, dd, s_out);
		f->w1[l] = mvt_weight_new(t, dff, sqrtf(6.0f / (float)f->d));
		f->w2[l] = mvt_weight_new(t, dff, s_ff);
	}
	/* Without layer normalisation the deep stack needs a small rate to stay finite. */
	models_set_lr(t, 1e-4f, t->batch * f->seq);
	t->model = f;
}

static uint64_t
tf_layer_fwd(struct mvt *t, const struct tf *f, unsigned l, uint64_t x, struct tf_saved *sv)
{
	uint32_t bs = t->batch * f->seq, bh = t->batch * f->heads;
	uint64_t nx = (uint64_t)bs * f->d, ns = (uint64_t)bh * f->seq * f->seq;
	uint64_t nf = (uint64_t)bs * f->ff;
	uint64_t q, oh, out;
	uint64_t *heads[3] = { &sv->qh, &sv->kh, &sv->vh };
	unsigned ws[3] = { f->wq[l], f->wk[l], f->wv[l] };

	sv->x = x;
	for (unsigned i = 0; i < 3; i++) {
		q = mvt_alloc(t, nx);
		k_gemm(t, q, x, t->w[ws[i]].addr, bs, f->d, f->d, 0);
		*heads[i] = mvt_alloc(t, nx);
		k_heads(t, MVK_HEADS_SPLIT, *heads[i], q, t->batch, f->seq, f->heads, f->dh);
		mvt_free(t, q, nx);
	}
	sv->p = mvt_alloc(t, ns);
	k_gemm_batched(t, sv->p, sv->qh, sv->kh, f->seq, f->seq, f->dh, MV_GEMM_TRANS_B, bh);
	sv->a = mvt_alloc(t, ns);
	k_pwnorm_fwd(t, sv->a, sv->p, bh * f->seq, f->seq);
	oh = mvt_alloc(t, nx);
	k_gemm_batched(t, oh, sv->a, sv->vh, f->seq, f->dh, f->seq, 0, bh);
	sv->o = mvt_alloc(t, nx);
	k_heads(t, MVK_HEADS_MERGE, sv->o, oh, t->batch, f->seq, f->heads, f->dh);
	mvt_free(t, oh, nx);
	sv->r1 = mvt_alloc(t, nx);
	k_gemm(t, sv->r1, sv->o, t->w[f->wo[l]].addr, bs, f->d, f->d, 0);
	k_add(t, sv->r1, sv->r1, x, nx);
	sv->g = mvt_alloc(t, nf);
	k_gemm(t, sv->g, sv->r1, t->w[f->w1[l]].addr, bs, f->ff, f->d, 0);
	k_relu_fwd(t, sv->g, sv->g, nf);
	out = mvt_alloc(t, nx);
	k_gemm(t, out, sv->g, t->w[f->w2[l]].addr, bs, f->d, f->ff, 0);
	k_add(t, out, out, sv->r1, nx);
	return out;
}

/* Consumes dout (it becomes the returned dx) and the layer's saved activations, input included. */
static uint64_t
tf_layer_bwd(struct mvt *t, const struct tf *f, unsigned l, uint64_t dout, struct tf_saved *sv,
    uint64_t *grads)
{
	uint32_t bs = t->batch * f->seq, bh = t->batch * f->heads;
	uint64_t nx = (uint64_t)bs * f->d, ns = (uint64_t)bh * f->seq * f->seq;
	uint64_t nf = (uint64_t)bs * f->ff;
	uint64_t dg, dr1 = dout, d_o, doh, da, dp, dh3[3], dm;
	unsigned ws[3] = { f->wq[l], f->wk[l], f->wv[l] };
	unsigned i;

	/* Feed-forward block; its residual makes dout the start of dr1. */
	dg = mvt_alloc(t, nf);
	k_gemm(t, dg, dout, t->w[f->w2[l]].addr, bs, f->ff, f->d, MV_GEMM_TRANS_B);
	grads[f->w2[l]] = mvt_alloc(t, t->w[f->w2[l]].n);
	k_gemm(t, grads[f->w2[l]], sv->g, dout, f->ff, f->d, bs, MV_GEMM_TRANS_A);
	k_relu_bwd(t, dg, dg, sv->g, nf);
	mvt_free(t, sv->g, nf);
	grads[f->w1[l]] = mvt_alloc(t, t->w[f->w1[l]].n);
	k_gemm(t, grads[f->w1[l]], sv->r1, dg, f->d, f->ff, bs, MV_GEMM_TRANS_A);
	k_gemm(t, dr1, dg, t->w[f->w1[l]].addr, bs, f->d, f->ff, MV_GEMM_TRANS_B | MV_GEMM_ACCUM);
	mvt_free(t, dg, nf);
	mvt_free(t, sv->r1, nx);

	/* Attention output projection. */
	grads[f->wo[l]] = mvt_alloc(t, t->w[f->wo[l]].n);
	k_gemm(t, grads[f->wo[l]], sv->o, dr1, f->d, f->d, bs, MV_GEMM_TRANS_A);
	d_o = mvt_alloc(t, nx);
	k_gemm(t, d_o, dr1, t->w[f->wo[l]].addr, bs, f->d, f->d, MV_GEMM_TRANS_B);
	mvt_free(t, sv->o, nx);
	doh = mvt_alloc(t, nx);
	k_heads(t, MVK_HEADS_SPLIT, doh, d_o, t->batch, f->seq, f->heads, f->dh);
	mvt_free(t, d_o, nx);

	/* Per-head products and the normalisation. */
	da = mvt_alloc(t, ns);
	k_gemm_batched(t, da, doh, sv->vh, f->seq, f->seq, f->dh, MV_GEMM_TRANS_B, bh);
	dh3[2] = mvt_alloc(t, nx);
	k_gemm_batched(t, dh3[2], sv->a, doh, f->seq, f->dh, f->seq, MV_GEMM_TRANS_A, bh);
	mvt_free(t, doh, nx);
	mvt_free(t, sv->a, ns);
	mvt_free(t, sv->vh, nx);
	dp = mvt_alloc(t, ns);
	k_pwnorm_bwd(t, dp, da, sv->p, bh * f->seq, f->seq);
	mvt_free(t, da, ns);
	mvt_free(t, sv->p, ns);
	dh3[0] = mvt_alloc(t, nx);
	k_gemm_batched(t, dh3[0], dp, sv->kh, f->seq, f->dh, f->seq, 0, bh);
	dh3[1] = mvt_alloc(t, nx);
	k_gemm_batched(t, dh3[1], dp, sv->qh, f->seq, f->dh, f->seq, MV_GEMM_TRANS_A, bh);
	mvt_free(t, dp, ns);
	mvt_free(t, sv->qh, nx);
	mvt_free(t, sv->kh, nx);

	/* Q, K, V projections; the residual makes dr1 the start of dx. */
	for (i = 0; i < 3; i++) {
		dm = mvt_alloc(t, nx);
		k_heads(t, MVK_HEADS_MERGE, dm, dh3[i], t->batch, f->seq, f->heads, f->dh);
		mvt_free(t, dh3[i], nx);
		grads[ws[i]] = mvt_alloc(t, t->w[ws[i]].n);
		k_gemm(t, grads[ws[i]], sv->x, dm, f->d, f->d, bs, MV_GEMM_TRANS_A);
		k_gemm(t, dr1, dm, t->w[ws[i]].addr, bs, f->d, f->d, MV_GEMM_TRANS_B | MV_GEMM_ACCUM);
		mvt_free(t, dm, nx);
	}
	mvt_free(t, sv->x, nx);
	return dr1;
}

static void
tf_step(struct mvt *t, unsigned step)
{
	struct tf *f = t->model;
	struct tf_saved sv[TF_LAYERS];
	uint64_t *grads = models_xcalloc(t->nw, sizeof(*grads));
	uint64_t nx = (uint64_t)t->batch * f->seq * f->d;
	uint64_t x, dy;

	x = mvt_input(t, step, 0, nx);
	for (unsigned l = 0; l < TF_LAYERS; l++) {
		mvt_piece_begin(t);
		x = tf_layer_fwd(t, f, l, x, &sv[l]);
		mvt_piece_end(t);
	}
	dy = models_loss(t, x, step, nx);
	for (unsigned l = TF_LAYERS; l-- > 0;) {
		mvt_piece_begin(t);
		dy = tf_layer_bwd(t, f, l, dy, &sv[l], grads);
		mvt_piece_end(t);
	}
	mvt_free(t, dy, nx);
	mvt_sgd_step(t, grads);
	free(grads);
}

/* ---- LSTM -------------------------------------------------------------------------------------- */

/* One layer of hidden size 1024 unrolled over 1000 time steps (input size equal to the hidden size),
 * gates [i|f|g|o] with hard sigmoid and hard tanh, and a linear head on the last hidden state. Every
 * time step's gates, cell and hidden state are kept for the backward pass, each in its own
 * allocation. */
struct lstm {
	unsigned hd, steps;
	unsigned wx, wh, wy;
	uint64_t *gates, *c, *h;        /* per time step, during a training step */
};

static void
lstm_build(struct mvt *t)
{
	struct lstm *m = models_xcalloc(1, sizeof(*m));

	m->hd = models_dim(t, 1024);
	m->steps = models_seq(t, 1000);
	m->wx = mvt_weight_new(t, (uint64_t)m->hd * 4 * m->hd, sqrtf(3.0f / (float)m->hd));
	m->wh = mvt_weight_new(t, (uint64_t)m->hd * 4 * m->hd, sqrtf(1.0f / (float)m->hd));
	m->wy = mvt_weight_new(t, (uint64_t)m->hd * m->hd, sqrtf(3.0f / (float)m->hd));
	m->gates = models_xcalloc(m->steps, sizeof(uint64_t));
	m->c = models_xcalloc(m->steps, sizeof(uint64_t));
	m->h = models_xcalloc(m->steps, sizeof(uint64_t));
	models_set_lr(t, 0.01f, t->batch);
	t->model = m;
}

static void
lstm_step(struct mvt *t, unsigned step)
{
	struct lstm *m = t->model;
	uint32_t b = t->batch, hd = m->hd;
	uint64_t nh = (uint64_t)b * hd, ng = 4 * nh;
	uint64_t *grads = models_xcalloc(t->nw, sizeof(*grads));
	uint64_t x = mvt_input(t, step, 0, nh * m->steps);
	uint64_t y, dy, dh, dc = 0;

	for (unsigned s = 0; s < m->steps; s++) {
		mvt_piece_begin(t);
		m->gates[s] = mvt_alloc(t, ng);
		k_gemm(t, m->gates[s], x + 4 * s * nh, t->w[m->wx].addr, b, 4 * hd, hd, 0);
		if (s > 0)
			k_gemm(t, m->gates[s], m->h[s - 1], t->w[m->wh].addr, b, 4 * hd, hd,
			    MV_GEMM_ACCUM);
		m->c[s] = mvt_alloc(t, nh);
		m->h[s] = mvt_alloc(t, nh);
		k_lstm_fwd(t, m->c[s], m->h[s], m->gates[s], s > 0 ? m->c[s - 1] : 0, b, hd);
		mvt_piece_end(t);
	}
	mvt_piece_begin(t);
	y = mvt_alloc(t, nh);
	k_gemm(t, y, m->h[m->steps - 1], t->w[m->wy].addr, b, hd, hd, 0);
	mvt_piece_end(t);

	dy = models_loss(t, y, step, nh);
	mvt_piece_begin(t);
	grads[m->wy] = mvt_alloc(t, t->w[m->wy].n);
	k_gemm(t, grads[m->wy], m->h[m->steps - 1], dy, hd, hd, b, MV_GEMM_TRANS_A);
	dh = mvt_alloc(t, nh);
	k_gemm(t, dh, dy, t->w[m->wy].addr, b, hd, hd, MV_GEMM_TRANS_B);
	mvt_free(t, dy, nh);
	grads[m->wx] = mvt_alloc(t, t->w[m->wx].n);
	grads[m->wh] = mvt_alloc(t, t->w[m->wh].n);
	k_fill(t, grads[m->wx], 0.0f, t->w[m->wx].n);
	k_fill(t, grads[m->wh], 0.0f, t->w[m->wh].n);
	mvt_piece_end(t);
	for (unsigned s = m->steps; s-- > 0;) {
		uint64_t dgates, dcprev;

		mvt_piece_begin(t);
		dgates = mvt_alloc(t, ng);
		dcprev = s > 0 ? mvt_alloc(t, nh) : 0;
		k_lstm_bwd(t, dgates, dcprev, dh, dc, m->gates[s], s > 0 ? m->c[s - 1] : 0, b, hd);
		k_gemm(t, grads[m->wx], x + 4 * s * nh, dgates, hd, 4 * hd, b,
		    MV_GEMM_TRANS_A | MV_GEMM_ACCUM);
		mvt_free(t, dh, nh);
		dh = 0;
		if (s > 0) {
			k_gemm(t, grads[m->wh], m->h[s - 1], dgates, hd, 4 * hd, b,
			    MV_GEMM_TRANS_A | MV_GEMM_ACCUM);
			dh = mvt_alloc(t, nh);
			k_gemm(t, dh, dgates, t->w[m->wh].addr, b, hd, 4 * hd, MV_GEMM_TRANS_B);
		}
		if (dc != 0)
			mvt_free(t, dc, nh);
		dc = dcprev;
		mvt_free(t, dgates, ng);
		mvt_free(t, m->gates[s], ng);
		mvt_free(t, m->c[s], nh);
		mvt_free(t, m->h[s], nh);
		mvt_piece_end(t);
	}
	mvt_free(t, x, nh * m->steps);
	mvt_sgd_step(t, grads);
	free(grads);
}

static void
lstm_destroy(struct mvt *t)
{
	struct lstm *m = t->model;

	free(m->gates);
	free(m->c);
	free(m->h);
	free(m);
}

static void
models_free_state(struct mvt *t)
{
	free(t->model);
}

const struct mvt_model mvt_models[] = {
	{ "vgg16", 64, vgg_build, vgg_step, models_free_state },
	{ "resnet50", 64, resnet_build, resnet_step, models_free_state },
	{ "transformer", 8, tf_build, tf_step, models_free_state },
	{ "lstm", 64, lstm_build, lstm_step, lstm_destroy },
	{ NULL, 0, NULL, NULL, NULL },
};
