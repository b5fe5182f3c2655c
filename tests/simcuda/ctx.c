/* Contexts: the primary context, created contexts and each thread's stack of current contexts. */
#include "config.h"

#include <stdlib.h>

#include "tests/simcuda/internal.h"

#define CTX_STACK_MAX 32

/* Every thread has its own stack; the top is the current context. */
static __thread struct sim_ctx *ctx_stack[CTX_STACK_MAX];
static __thread int ctx_depth;

/* Guards the primary contexts' reference counts and active flags. */
static pthread_mutex_t primary_lock = PTHREAD_MUTEX_INITIALIZER;
#define PRIMARY(d) {.magic = SIM_MAGIC_CTX, .primary = 1, .dev = (d)}
static struct sim_ctx primaries[SIM_MAX_DEVICES] = {
	PRIMARY(0), PRIMARY(1), PRIMARY(2), PRIMARY(3), PRIMARY(4), PRIMARY(5), PRIMARY(6), PRIMARY(7),
};

struct sim_ctx *sim_ctx_current(void)
{
	return ctx_depth > 0 ? ctx_stack[ctx_depth - 1] : NULL;
}

/* Checks that a context handle can be used; returns its sticky error if it has one. */
CUresult sim_ctx_check(struct sim_ctx *ctx)
{
	if (ctx == NULL || ctx->magic != SIM_MAGIC_CTX)
		return CUDA_ERROR_INVALID_CONTEXT;
	if (ctx->primary && !__atomic_load_n(&ctx->active, __ATOMIC_ACQUIRE))
		return CUDA_ERROR_CONTEXT_IS_DESTROYED;
	return __atomic_load_n(&ctx->sticky, __ATOMIC_ACQUIRE);
}

CUresult sim_enter_ctx(struct sim_ctx **out)
{
	struct sim_ctx *ctx;
	CUresult r = sim_enter();

	if (r != CUDA_SUCCESS)
		return r;
	ctx = sim_ctx_current();
	if (ctx == NULL)
		return CUDA_ERROR_INVALID_CONTEXT;
	r = sim_ctx_check(ctx);
	if (r != CUDA_SUCCESS)
		return r;
	if (out != NULL)
		*out = ctx;
	return CUDA_SUCCESS;
}

/* Makes an error sticky on its context, as an illegal access is on real hardware: the first one
 * wins and nothing clears it. */
void sim_ctx_fault(struct sim_ctx *ctx, CUresult err)
{
	CUresult expected = CUDA_SUCCESS;
	__atomic_compare_exchange_n(&ctx->sticky, &expected, err, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

uint64_t sim_ctx_epoch(const struct sim_ctx *ctx)
{
	return ctx == NULL ? 0 : __atomic_load_n(&ctx->epoch, __ATOMIC_ACQUIRE);
}

int sim_ctx_ended_since(const struct sim_ctx *ctx, uint64_t epoch)
{
	return sim_ctx_epoch(ctx) != epoch;
}

/* The context's streams and events die: a real driver frees them, and a handle used afterwards
 * (the same handle value may come back for a new context) is refused. */
static void ctx_end(struct sim_ctx *ctx)
{
	__atomic_add_fetch(&ctx->epoch, 1, __ATOMIC_ACQ_REL);
	sim_modules_end(ctx);
}

static CUresult ctx_new(unsigned flags, CUdevice dev, struct sim_ctx **out)
{
	struct sim_ctx *ctx;
	CUresult r = sim_dev_check(dev);

	if (r != CUDA_SUCCESS)
		return r;
	if (ctx_depth >= CTX_STACK_MAX)
		return CUDA_ERROR_OUT_OF_MEMORY;
	ctx = calloc(1, sizeof(*ctx));
	if (ctx == NULL)
		return CUDA_ERROR_OUT_OF_MEMORY;
	ctx->magic = SIM_MAGIC_CTX;
	ctx->flags = flags;
	ctx->dev = dev;
	ctx_stack[ctx_depth++] = ctx;
	*out = ctx;
	return CUDA_SUCCESS;
}

SIM_EXPORT CUresult cuCtxCreate_v2(CUcontext *pctx, unsigned int flags, CUdevice dev)
{
	if (pctx == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	return ctx_new(flags, dev, (struct sim_ctx **)pctx);
}

SIM_EXPORT CUresult cuCtxCreate_v4(CUcontext *pctx, CUctxCreateParams *params, unsigned int flags, CUdevice dev)
{
	if (pctx == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	/* Execution affinity and CIG parameters describe hardware partitioning that a simulated
	 * device does not have. */
	if (params != NULL && (params->execAffinityParams != NULL || params->cigParams != NULL))
		return CUDA_ERROR_NOT_SUPPORTED;
	return ctx_new(flags, dev, (struct sim_ctx **)pctx);
}

/* Drops ctx from this thread's stack wherever it is. */
static void unstack(struct sim_ctx *ctx)
{
	int j = 0;

	for (int i = 0; i < ctx_depth; i++)
		if (ctx_stack[i] != ctx)
			ctx_stack[j++] = ctx_stack[i];
	ctx_depth = j;
}

SIM_EXPORT CUresult cuCtxDestroy_v2(CUcontext h)
{
	struct sim_ctx *ctx = (struct sim_ctx *)h;
	CUresult r = sim_enter();

	if (r != CUDA_SUCCESS)
		return r;
	if (ctx == NULL || ctx->magic != SIM_MAGIC_CTX || ctx->primary)
		return CUDA_ERROR_INVALID_CONTEXT;
	sim_streams_idle(ctx);
	unstack(ctx);
	ctx_end(ctx);
	/* The struct stays allocated (marked dead) because streams and events may still point at it. */
	ctx->magic = SIM_MAGIC_DEAD;
	return CUDA_SUCCESS;
}

SIM_EXPORT CUresult cuCtxPushCurrent_v2(CUcontext h)
{
	struct sim_ctx *ctx = (struct sim_ctx *)h;
	CUresult r = sim_enter();

	if (r != CUDA_SUCCESS)
		return r;
	if (ctx == NULL || ctx->magic != SIM_MAGIC_CTX)
		return CUDA_ERROR_INVALID_CONTEXT;
	if (ctx_depth >= CTX_STACK_MAX)
		return CUDA_ERROR_INVALID_VALUE;
	ctx_stack[ctx_depth++] = ctx;
	return CUDA_SUCCESS;
}

SIM_EXPORT CUresult cuCtxPopCurrent_v2(CUcontext *pctx)
{
	CUresult r = sim_enter();

	if (r != CUDA_SUCCESS)
		return r;
	if (ctx_depth == 0)
		return CUDA_ERROR_INVALID_CONTEXT;
	ctx_depth--;
	if (pctx != NULL)
		*pctx = (CUcontext)ctx_stack[ctx_depth];
	return CUDA_SUCCESS;
}

SIM_EXPORT CUresult cuCtxSetCurrent(CUcontext h)
{
	struct sim_ctx *ctx = (struct sim_ctx *)h;
	CUresult r = sim_enter();

	if (r != CUDA_SUCCESS)
		return r;
	if (ctx == NULL) {
		/* NULL unbinds: the stack's top goes away. */
		if (ctx_depth > 0)
			ctx_depth--;
		return CUDA_SUCCESS;
	}
	if (ctx->magic != SIM_MAGIC_CTX)
		return CUDA_ERROR_INVALID_CONTEXT;
	if (ctx_depth == 0)
		ctx_depth = 1;
	ctx_stack[ctx_depth - 1] = ctx;
	return CUDA_SUCCESS;
}

SIM_EXPORT CUresult cuCtxGetCurrent(CUcontext *pctx)
{
	CUresult r = sim_enter();

	if (r != CUDA_SUCCESS)
		return r;
	if (pctx == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	*pctx = (CUcontext)sim_ctx_current();
	return CUDA_SUCCESS;
}

SIM_EXPORT CUresult cuCtxGetDevice(CUdevice *dev)
{
	CUresult r = sim_enter();

	if (r != CUDA_SUCCESS)
		return r;
	if (dev == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	if (sim_ctx_current() == NULL)
		return CUDA_ERROR_INVALID_CONTEXT;
	*dev = sim_ctx_current()->dev;
	return CUDA_SUCCESS;
}

/* The form that names its context (NULL: the current one); Numba resolves it first. */
SIM_EXPORT CUresult cuCtxGetDevice_v2(CUdevice *dev, CUcontext h)
{
	struct sim_ctx *ctx = (struct sim_ctx *)h;
	CUresult r;

	if (ctx == NULL)
		return cuCtxGetDevice(dev);
	r = sim_enter();
	if (r != CUDA_SUCCESS)
		return r;
	if (dev == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	if (ctx->magic != SIM_MAGIC_CTX)
		return CUDA_ERROR_INVALID_CONTEXT;
	*dev = ctx->dev;
	return CUDA_SUCCESS;
}

SIM_EXPORT CUresult cuCtxGetFlags(unsigned int *flags)
{
	struct sim_ctx *ctx;
	CUresult r = sim_enter_ctx(&ctx);

	if (r != CUDA_SUCCESS)
		return r;
	if (flags == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	*flags = ctx->flags;
	return CUDA_SUCCESS;
}

SIM_EXPORT CUresult cuCtxSynchronize(void)
{
	struct sim_ctx *ctx;
	CUresult r = sim_enter_ctx(&ctx);

	if (r != CUDA_SUCCESS)
		return r;
	sim_streams_idle(ctx);
	return sim_ctx_check(ctx);
}

SIM_EXPORT CUresult cuCtxGetStreamPriorityRange(int *least, int *greatest)
{
	CUresult r = sim_enter_ctx(NULL);

	if (r != CUDA_SUCCESS)
		return r;
	if (least != NULL)
		*least = 0;
	if (greatest != NULL)
		*greatest = -5;
	return CUDA_SUCCESS;
}

/* ---- the primary context ---- */

SIM_EXPORT CUresult cuDevicePrimaryCtxRetain(CUcontext *pctx, CUdevice dev)
{
	CUresult r = sim_enter();
	struct sim_ctx *primary;

	if (r != CUDA_SUCCESS)
		return r;
	if (pctx == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	r = sim_dev_check(dev);
	if (r != CUDA_SUCCESS)
		return r;
	primary = &primaries[dev];
	pthread_mutex_lock(&primary_lock);
	if (primary->refs++ == 0)
		__atomic_store_n(&primary->active, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&primary_lock);
	*pctx = (CUcontext)primary;
	return CUDA_SUCCESS;
}

SIM_EXPORT CUresult cuDevicePrimaryCtxRelease_v2(CUdevice dev)
{
	CUresult r = sim_enter();
	struct sim_ctx *primary;
	int last = 0;

	if (r != CUDA_SUCCESS)
		return r;
	r = sim_dev_check(dev);
	if (r != CUDA_SUCCESS)
		return r;
	primary = &primaries[dev];
	pthread_mutex_lock(&primary_lock);
	if (primary->refs == 0) {
		pthread_mutex_unlock(&primary_lock);
		return CUDA_ERROR_INVALID_CONTEXT;
	}
	last = --primary->refs == 0;
	pthread_mutex_unlock(&primary_lock);
	if (last) {
		/* The last release resets the context, as cuDevicePrimaryCtxReset does, unless a retain
		 * came meanwhile and keeps it. */
		sim_streams_idle(primary);
		pthread_mutex_lock(&primary_lock);
		if (primary->refs == 0) {
			ctx_end(primary);
			__atomic_store_n(&primary->active, 0, __ATOMIC_RELEASE);
		}
		pthread_mutex_unlock(&primary_lock);
	}
	return CUDA_SUCCESS;
}

SIM_EXPORT CUresult cuDevicePrimaryCtxGetState(CUdevice dev, unsigned int *flags, int *active)
{
	CUresult r = sim_enter();
	struct sim_ctx *primary;

	if (r != CUDA_SUCCESS)
		return r;
	r = sim_dev_check(dev);
	if (r != CUDA_SUCCESS)
		return r;
	primary = &primaries[dev];
	if (flags == NULL || active == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	pthread_mutex_lock(&primary_lock);
	*flags = primary->flags;
	*active = primary->refs > 0;
	pthread_mutex_unlock(&primary_lock);
	return CUDA_SUCCESS;
}

SIM_EXPORT CUresult cuDevicePrimaryCtxSetFlags_v2(CUdevice dev, unsigned int flags)
{
	CUresult r = sim_enter();
	struct sim_ctx *primary;

	if (r != CUDA_SUCCESS)
		return r;
	r = sim_dev_check(dev);
	if (r != CUDA_SUCCESS)
		return r;
	primary = &primaries[dev];
	pthread_mutex_lock(&primary_lock);
	primary->flags = flags;
	pthread_mutex_unlock(&primary_lock);
	return CUDA_SUCCESS;
}

SIM_EXPORT CUresult cuDevicePrimaryCtxReset_v2(CUdevice dev)
{
	CUresult r = sim_enter();
	struct sim_ctx *primary;

	if (r != CUDA_SUCCESS)
		return r;
	r = sim_dev_check(dev);
	if (r != CUDA_SUCCESS)
		return r;
	primary = &primaries[dev];
	sim_streams_idle(primary);
	ctx_end(primary);
	pthread_mutex_lock(&primary_lock);
	primary->refs = 0;
	primary->flags = 0;
	__atomic_store_n(&primary->peers, 0u, __ATOMIC_RELEASE);
	__atomic_store_n(&primary->active, 0, __ATOMIC_RELEASE);
	/* A reset starts the context afresh, so its sticky error goes with it. */
	__atomic_store_n(&primary->sticky, CUDA_SUCCESS, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&primary_lock);
	return CUDA_SUCCESS;
}

/* The same reset, by a name no interposer hooks (simcuda.h). */
SIM_EXPORT int simcuda_primary_ctx_reset(int dev)
{
	return cuDevicePrimaryCtxReset_v2(dev);
}

/* The first versions, which cudaVersion 7000 still resolves to, behave the same. */
SIM_EXPORT CUresult cuDevicePrimaryCtxRelease(CUdevice dev)
{
	return cuDevicePrimaryCtxRelease_v2(dev);
}

SIM_EXPORT CUresult cuDevicePrimaryCtxReset(CUdevice dev)
{
	return cuDevicePrimaryCtxReset_v2(dev);
}

SIM_EXPORT CUresult cuDevicePrimaryCtxSetFlags(CUdevice dev, unsigned int flags)
{
	return cuDevicePrimaryCtxSetFlags_v2(dev, flags);
}

/* ---- peer access ---- */

/* Every pair of distinct devices can reach each other, as on an NVLink or PCIe P2P machine. */
SIM_EXPORT CUresult cuDeviceCanAccessPeer(int *can, CUdevice dev, CUdevice peer)
{
	CUresult r = sim_dev_check(dev);

	if (r == CUDA_SUCCESS)
		r = sim_dev_check(peer);
	if (r != CUDA_SUCCESS)
		return r;
	if (can == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	*can = dev != peer;
	return CUDA_SUCCESS;
}

/* The current context and the peer context's device, for both peer access calls. */
static CUresult peer_args(CUcontext h, struct sim_ctx **cur, unsigned *bit)
{
	struct sim_ctx *peer = (struct sim_ctx *)h;
	CUresult r = sim_enter_ctx(cur);

	if (r != CUDA_SUCCESS)
		return r;
	if (peer == NULL || peer->magic != SIM_MAGIC_CTX)
		return CUDA_ERROR_INVALID_CONTEXT;
	if (peer->dev == (*cur)->dev)
		return CUDA_ERROR_INVALID_DEVICE;
	*bit = 1u << peer->dev;
	return CUDA_SUCCESS;
}

/* Access is kept per peer device rather than per peer context: with one context per device (the
 * primary ones) the two are the same. */
SIM_EXPORT CUresult cuCtxEnablePeerAccess(CUcontext h, unsigned int flags)
{
	struct sim_ctx *cur;
	unsigned bit;
	CUresult r = peer_args(h, &cur, &bit);

	if (r != CUDA_SUCCESS)
		return r;
	if (flags != 0)
		return CUDA_ERROR_INVALID_VALUE;
	if (__atomic_fetch_or(&cur->peers, bit, __ATOMIC_ACQ_REL) & bit)
		return CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED;
	return CUDA_SUCCESS;
}

SIM_EXPORT CUresult cuCtxDisablePeerAccess(CUcontext h)
{
	struct sim_ctx *cur;
	unsigned bit;
	CUresult r = peer_args(h, &cur, &bit);

	if (r != CUDA_SUCCESS)
		return r;
	if (!(__atomic_fetch_and(&cur->peers, ~bit, __ATOMIC_ACQ_REL) & bit))
		return CUDA_ERROR_PEER_ACCESS_NOT_ENABLED;
	return CUDA_SUCCESS;
}
