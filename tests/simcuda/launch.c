/* The built-in module "simcuda", its functions and their parameter layouts, and kernel launches in
 * every form: kernelParams or the extra buffer, cuLaunchKernel, cuLaunchKernelEx and the cooperative
 * launch. A kernel's pointer arguments are checked against the memory map before it runs. */
#include "config.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "tests/simcuda/internal.h"

struct sim_module;

/* A CUfunction (SIM_MAGIC_FUNC) or a CUkernel (SIM_MAGIC_KERNEL) of one built-in kernel. */
struct sim_func {
	uint32_t magic;
	const struct mv_kernel_desc *desc;
	struct sim_module *mod;  /* a function's module */
	struct sim_library *lib; /* a kernel's library */
};

/* A module's function objects, or a library's kernel objects. A real driver frees them at the
 * unload, and a module or library loaded later may get the same addresses as handles for other
 * functions: an unloaded set serves the next one loaded, each handle naming the next kernel along
 * from the one it named before. */
struct sim_funcs {
	struct sim_funcs *next; /* on the spare list */
	unsigned turn;          /* how many modules and libraries had it before */
	struct sim_func f[];
};

struct sim_module {
	uint32_t magic;
	uint64_t global; /* its module-scope variable, once asked for */
	struct sim_funcs *funcs;
	struct sim_ctx *ctx;      /* loaded in it: the module dies with it */
	struct sim_library *lib;  /* a library's module in ctx, loaded by cuKernelGetFunction */
	struct sim_module *next;  /* on the list of loaded modules, or of those its context's end unloads */
};

/* Guards the spare sets and the list of loaded modules. */
static pthread_mutex_t spare_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sim_funcs *spare;
static struct sim_module *loaded;

/* mv_wide(float *y, uint32_t n, uint32_t k1, ..., uint32_t k68, const float *x): y = 2 x over n
 * floats. A kernel of this driver's own, with more parameters than a launch path may expect: x is
 * the 71st. */
#define WIDE_PARAMS 71

static uint32_t wide_n(void *const *args)
{
	return *(const uint32_t *)args[1];
}

static int wide_run(void *const *args, const struct mv_kenv *env)
{
	float *y = (float *)(uintptr_t)*(const uint64_t *)args[0];
	const float *x = (const float *)(uintptr_t)*(const uint64_t *)args[WIDE_PARAMS - 1];

	for (uint32_t i = 0; i < wide_n(args); i++)
		y[i] = 2.0f * x[i];
	return 0;
}

static void wide_cost(void *const *args, double *flops, double *bytes)
{
	*flops = wide_n(args);
	*bytes = 8.0 * wide_n(args);
}

static int wide_ranges(void *const *args, struct mv_krange *out, int max)
{
	uint64_t bytes = 4ull * wide_n(args);

	if (max < 2 || bytes == 0)
		return 0;
	out[0] = (struct mv_krange){*(const uint64_t *)args[0], bytes};
	out[1] = (struct mv_krange){*(const uint64_t *)args[WIDE_PARAMS - 1], bytes};
	return 2;
}

/* The built-in image's kernels: the workloads' and this driver's own. */
static struct mv_kernel_desc wide = {"mv_wide", WIDE_PARAMS, {0}, {0}, wide_run, wide_cost, wide_ranges};

static const struct mv_kernel_desc *kernel_at(size_t i, size_t nwork)
{
	if (i < nwork)
		return &mv_kernels[i];
	/* y at 0, the 69 words from 8 on, x aligned to 8 after them. */
	wide.offset[0] = 0;
	wide.size[0] = 8;
	for (unsigned j = 1; j < WIDE_PARAMS - 1; j++) {
		wide.offset[j] = (uint16_t)(8 + 4 * (j - 1));
		wide.size[j] = 4;
	}
	wide.offset[WIDE_PARAMS - 1] = (uint16_t)((8 + 4 * (WIDE_PARAMS - 2) + 7) & ~7);
	wide.size[WIDE_PARAMS - 1] = 8;
	return &wide;
}

/* The built-in image's kernels, in the order a new set of handles names them. */
static const struct mv_kernel_desc **descs;
static size_t nfuncs;
static pthread_once_t funcs_once = PTHREAD_ONCE_INIT;

static void make_descs(void)
{
	size_t n = 0;

	while (mv_kernels[n].name != NULL)
		n++;
	n++; /* mv_wide */
	descs = calloc(n, sizeof(*descs));
	if (descs == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		descs[i] = kernel_at(i, n - 1);
	nfuncs = n;
}

int sim_funcs_ready(void)
{
	pthread_once(&funcs_once, make_descs);
	return descs != NULL;
}

/* A set of handles, each of the given magic, module and library: an unloaded one's where there is
 * one. */
static struct sim_funcs *funcs_new(uint32_t magic, struct sim_module *m, struct sim_library *lib)
{
	struct sim_funcs *fs;

	pthread_mutex_lock(&spare_lock);
	fs = spare;
	if (fs != NULL) {
		spare = fs->next;
		fs->turn++;
	}
	pthread_mutex_unlock(&spare_lock);
	if (fs == NULL && (fs = calloc(1, sizeof(*fs) + nfuncs * sizeof(fs->f[0]))) == NULL)
		return NULL;
	for (size_t i = 0; i < nfuncs; i++)
		fs->f[i] = (struct sim_func){magic, descs[(i + fs->turn) % nfuncs], m, lib};
	return fs;
}

/* The handles of fs die; the objects serve a later module or library. Called with spare_lock
 * held. */
static void funcs_end(struct sim_funcs *fs)
{
	for (size_t i = 0; i < nfuncs; i++)
		fs->f[i].magic = SIM_MAGIC_DEAD;
	fs->next = spare;
	spare = fs;
}

/* The handle in fs of the kernel named name, or of the kernel d; NULL when it has none. */
static struct sim_func *funcs_find(struct sim_funcs *fs, const char *name, const struct mv_kernel_desc *d)
{
	for (size_t i = 0; i < nfuncs; i++)
		if (name != NULL ? strcmp(fs->f[i].desc->name, name) == 0 : fs->f[i].desc == d)
			return &fs->f[i];
	return NULL;
}

struct sim_funcs *sim_kernels_new(struct sim_library *lib)
{
	return funcs_new(SIM_MAGIC_KERNEL, NULL, lib);
}

CUkernel sim_kernel_find(struct sim_funcs *ks, const char *name)
{
	return (CUkernel)funcs_find(ks, name, NULL);
}

static const struct sim_func *kernel_of(CUkernel k)
{
	const struct sim_func *fn = (const struct sim_func *)k;
	return fn != NULL && fn->magic == SIM_MAGIC_KERNEL ? fn : NULL;
}

const struct mv_kernel_desc *sim_kernel_desc(CUkernel k)
{
	const struct sim_func *fn = kernel_of(k);
	return fn != NULL ? fn->desc : NULL;
}

struct sim_library *sim_kernel_library(CUkernel k)
{
	const struct sim_func *fn = kernel_of(k);
	return fn != NULL ? fn->lib : NULL;
}

static struct sim_module *module_new(struct sim_ctx *ctx, struct sim_library *lib)
{
	struct sim_module *m = calloc(1, sizeof(*m));

	if (m == NULL)
		return NULL;
	m->funcs = funcs_new(SIM_MAGIC_FUNC, m, NULL);
	if (m->funcs == NULL) {
		free(m);
		return NULL;
	}
	m->magic = SIM_MAGIC_MODULE;
	m->ctx = ctx;
	m->lib = lib;
	return m;
}

/* lib's module in ctx, or NULL. Called with spare_lock held. */
static struct sim_module *library_module(struct sim_library *lib, struct sim_ctx *ctx)
{
	for (struct sim_module *m = loaded; m != NULL; m = m->next)
		if (m->lib == lib && m->ctx == ctx)
			return m;
	return NULL;
}

CUresult sim_library_module(struct sim_library *lib, struct sim_ctx *ctx, int load, CUmodule *mod)
{
	struct sim_module *m, *made = NULL;

	pthread_mutex_lock(&spare_lock);
	m = library_module(lib, ctx);
	pthread_mutex_unlock(&spare_lock);
	if (m == NULL && !load)
		return CUDA_ERROR_NOT_FOUND;
	if (m == NULL) {
		/* Made outside the lock, which funcs_new takes; a racing load may have won meanwhile. */
		made = module_new(ctx, lib);
		if (made == NULL)
			return CUDA_ERROR_OUT_OF_MEMORY;
		pthread_mutex_lock(&spare_lock);
		m = library_module(lib, ctx);
		/* Not once the library is unloaded, which a racing unload may have done meanwhile. */
		if (m == NULL && atomic_load(&lib->magic) == SIM_MAGIC_LIBRARY) {
			m = made;
			made = NULL;
			m->next = loaded;
			loaded = m;
		} else if (made != NULL) {
			made->magic = SIM_MAGIC_DEAD;
			funcs_end(made->funcs);
		}
		pthread_mutex_unlock(&spare_lock);
		free(made);
		if (m == NULL)
			return CUDA_ERROR_INVALID_HANDLE;
	}
	*mod = (CUmodule)m;
	return CUDA_SUCCESS;
}

CUresult sim_library_function(struct sim_library *lib, struct sim_ctx *ctx, CUkernel k, CUfunction *f)
{
	const struct sim_func *kf = kernel_of(k);
	CUmodule mod;
	CUresult r;

	if (kf == NULL || kf->lib != lib)
		return CUDA_ERROR_INVALID_HANDLE;
	r = sim_library_module(lib, ctx, 1, &mod);
	if (r != CUDA_SUCCESS)
		return r;
	*f = (CUfunction)funcs_find(((struct sim_module *)mod)->funcs, NULL, kf->desc);
	return *f != NULL ? CUDA_SUCCESS : CUDA_ERROR_NOT_FOUND;
}

SIM_EXPORT CUresult cuModuleLoadData(CUmodule *mod, const void *image)
{
	struct sim_module *m;
	struct sim_ctx *ctx;
	CUresult r = sim_enter_ctx(&ctx);

	if (r != CUDA_SUCCESS)
		return r;
	if (mod == NULL || image == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	/* The only image this device runs is the built-in one. */
	if (strcmp((const char *)image, "simcuda") != 0)
		return CUDA_ERROR_INVALID_IMAGE;
	if (!sim_funcs_ready())
		return CUDA_ERROR_OUT_OF_MEMORY;
	m = module_new(ctx, NULL);
	if (m == NULL)
		return CUDA_ERROR_OUT_OF_MEMORY;
	pthread_mutex_lock(&spare_lock);
	m->next = loaded;
	loaded = m;
	pthread_mutex_unlock(&spare_lock);
	*mod = (CUmodule)m;
	return CUDA_SUCCESS;
}

/* Unloads m, once off the list of loaded modules; its global, if any, is the caller's to free once
 * spare_lock is let go, as a free may wait for the device. Called with spare_lock held. */
static void module_end(struct sim_module *m)
{
	m->magic = SIM_MAGIC_DEAD;
	funcs_end(m->funcs);
}

/* Takes m off the list of loaded modules. Called with spare_lock held. */
static void module_unlink(struct sim_module *m)
{
	for (struct sim_module **at = &loaded; *at != NULL; at = &(*at)->next)
		if (*at == m) {
			*at = m->next;
			return;
		}
}

/* Unloads the modules loaded in ctx, or lib's modules and its kernels once lib is marked dead
 * (-1 when it was not live). */
static int modules_end(struct sim_ctx *ctx, struct sim_library *lib)
{
	struct sim_module *ended = NULL;

	pthread_mutex_lock(&spare_lock);
	if (lib != NULL) {
		if (atomic_load(&lib->magic) != SIM_MAGIC_LIBRARY) {
			pthread_mutex_unlock(&spare_lock);
			return -1;
		}
		atomic_store(&lib->magic, SIM_MAGIC_DEAD);
		funcs_end(lib->kernels);
	}
	for (struct sim_module **at = &loaded; *at != NULL;) {
		struct sim_module *m = *at;
		if (lib != NULL ? m->lib != lib : m->ctx != ctx) {
			at = &m->next;
			continue;
		}
		*at = m->next;
		module_end(m);
		m->next = ended;
		ended = m;
	}
	pthread_mutex_unlock(&spare_lock);
	/* A context's streams are idle: its end waited for them. A library's may not be. */
	for (struct sim_module *m = ended; m != NULL; m = m->next) {
		if (lib != NULL)
			sim_global_free(&m->global);
		else
			sim_global_release(&m->global);
	}
	return 0;
}

void sim_modules_end(struct sim_ctx *ctx)
{
	modules_end(ctx, NULL);
}

int sim_library_end(struct sim_library *lib)
{
	return modules_end(NULL, lib);
}

SIM_EXPORT CUresult cuModuleUnload(CUmodule hmod)
{
	struct sim_module *m = (struct sim_module *)hmod;
	CUresult r = sim_enter();

	if (r != CUDA_SUCCESS)
		return r;
	pthread_mutex_lock(&spare_lock);
	if (m == NULL || m->magic != SIM_MAGIC_MODULE) {
		pthread_mutex_unlock(&spare_lock);
		return CUDA_ERROR_INVALID_HANDLE;
	}
	module_unlink(m);
	module_end(m);
	pthread_mutex_unlock(&spare_lock);
	sim_global_free(&m->global);
	return CUDA_SUCCESS;
}

SIM_EXPORT CUresult cuModuleGetGlobal_v2(CUdeviceptr *dptr, size_t *bytes, CUmodule hmod, const char *name)
{
	struct sim_module *m = (struct sim_module *)hmod;
	CUresult r = sim_enter_ctx(NULL);

	if (r != CUDA_SUCCESS)
		return r;
	if (name == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	if (m == NULL || m->magic != SIM_MAGIC_MODULE)
		return CUDA_ERROR_INVALID_HANDLE;
	return sim_global_get(&m->global, name, dptr, bytes);
}

SIM_EXPORT CUresult cuModuleGetFunction(CUfunction *hfunc, CUmodule hmod, const char *name)
{
	struct sim_module *m = (struct sim_module *)hmod;
	CUresult r = sim_enter_ctx(NULL);

	if (r != CUDA_SUCCESS)
		return r;
	if (hfunc == NULL || name == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	if (m == NULL || m->magic != SIM_MAGIC_MODULE)
		return CUDA_ERROR_INVALID_HANDLE;
	for (size_t i = 0; i < nfuncs; i++) {
		if (strcmp(m->funcs->f[i].desc->name, name) == 0) {
			*hfunc = (CUfunction)&m->funcs->f[i];
			return CUDA_SUCCESS;
		}
	}
	return CUDA_ERROR_NOT_FOUND;
}

SIM_EXPORT CUresult cuFuncGetModule(CUmodule *hmod, CUfunction f)
{
	const struct sim_func *fn = (const struct sim_func *)f;
	CUresult r = sim_enter();

	if (r != CUDA_SUCCESS)
		return r;
	if (hmod == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	if (fn == NULL || fn->magic != SIM_MAGIC_FUNC)
		return CUDA_ERROR_INVALID_HANDLE;
	/* A library's function: its module in the function's context, as cuLibraryGetModule gives. */
	*hmod = (CUmodule)fn->mod;
	return CUDA_SUCCESS;
}

static const struct mv_kernel_desc *func_desc(CUfunction f)
{
	const struct sim_func *fn = (const struct sim_func *)f;
	return fn != NULL && fn->magic == SIM_MAGIC_FUNC ? fn->desc : NULL;
}

/* What a launch runs: a CUkernel is accepted where a CUfunction is, as cudart passes one with lazy
 * loading. */
static const struct mv_kernel_desc *desc_of(CUfunction f)
{
	const struct mv_kernel_desc *d = func_desc(f);
	return d != NULL ? d : sim_kernel_desc((CUkernel)f);
}

CUresult sim_param_info(const struct mv_kernel_desc *d, size_t index, size_t *offset, size_t *size)
{
	if (sim_inject_param_info_failure())
		return CUDA_ERROR_NOT_SUPPORTED;
	if (d == NULL)
		return CUDA_ERROR_INVALID_HANDLE;
	if (index >= d->nparams)
		return CUDA_ERROR_INVALID_VALUE;
	if (offset != NULL)
		*offset = d->offset[index];
	if (size != NULL)
		*size = d->size[index];
	return CUDA_SUCCESS;
}

/* A CUkernel is not a CUfunction here: its layout comes from cuKernelGetParamInfo. */
SIM_EXPORT CUresult cuFuncGetParamInfo(CUfunction f, size_t index, size_t *offset, size_t *size)
{
	CUresult r = sim_enter();

	if (r != CUDA_SUCCESS)
		return r;
	return sim_param_info(func_desc(f), index, offset, size);
}

SIM_EXPORT CUresult cuFuncGetName(const char **name, CUfunction f)
{
	const struct mv_kernel_desc *d = func_desc(f);

	if (name == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	if (d == NULL)
		return CUDA_ERROR_INVALID_HANDLE;
	*name = d->name;
	return CUDA_SUCCESS;
}

/* Bytes of a kernel's parameter buffer. */
static size_t args_size(const struct mv_kernel_desc *d)
{
	size_t n = 0;

	for (unsigned i = 0; i < d->nparams; i++)
		n = SIM_MAX(n, (size_t)d->offset[i] + d->size[i]);
	return n;
}

/* Copies the arguments into the op, from kernelParams or from the extra buffer. */
static CUresult marshal(struct sim_op *op, const struct mv_kernel_desc *d, void **params, void **extra)
{
	size_t need = args_size(d);

	if (need > SIM_KARG_BYTES)
		return CUDA_ERROR_INVALID_VALUE;
	if (params != NULL && extra != NULL)
		return CUDA_ERROR_INVALID_VALUE;
	if (extra != NULL) {
		void *buf = NULL;
		size_t *size = NULL;
		for (size_t i = 0; extra[i] != CU_LAUNCH_PARAM_END; i += 2) {
			if (extra[i] == CU_LAUNCH_PARAM_BUFFER_POINTER)
				buf = extra[i + 1];
			else if (extra[i] == CU_LAUNCH_PARAM_BUFFER_SIZE)
				size = extra[i + 1];
			else
				return CUDA_ERROR_INVALID_VALUE;
		}
		if (need > 0 && (buf == NULL || size == NULL || *size < need))
			return CUDA_ERROR_INVALID_VALUE;
		if (need > 0)
			memcpy(op->u.k.buf, buf, need);
	} else {
		if (d->nparams > 0 && params == NULL)
			return CUDA_ERROR_INVALID_VALUE;
		for (unsigned i = 0; i < d->nparams; i++)
			memcpy(op->u.k.buf + d->offset[i], params[i], d->size[i]);
	}
	for (unsigned i = 0; i < d->nparams; i++)
		op->u.k.args[i] = op->u.k.buf + d->offset[i];
	op->u.k.desc = d;
	return CUDA_SUCCESS;
}

/* The context of the kernel this worker thread runs, for pointers the body reads out of memory. */
static __thread const struct sim_ctx *kernel_ctx;

static int kcheck(const struct mv_kenv *env, uint64_t addr, uint64_t bytes)
{
	return sim_mem_check_in(kernel_ctx, addr, bytes, 1);
}

static int run_body(void *arg)
{
	struct sim_op *op = arg;
	static const struct mv_kenv env = {.check = kcheck};
	return op->u.k.desc->run(op->u.k.args, &env);
}

CUresult sim_kernel_exec(const struct sim_ctx *ctx, struct sim_op *op)
{
	struct mv_krange ranges[MV_KERNEL_MAX_PARAMS];
	int n = op->u.k.desc->ranges(op->u.k.args, ranges, MV_KERNEL_MAX_PARAMS);

	/* The ranges do not say which are written, so each must be mapped and readable here; a write to a
	 * read-only mapping faults inside the body and is caught by the fault net. */
	for (int i = 0; i < n; i++)
		if (sim_mem_check_in(ctx, ranges[i].addr, ranges[i].bytes, 1) != 0)
			return CUDA_ERROR_ILLEGAL_ADDRESS;
	if (sim_cfg.model_only)
		return CUDA_SUCCESS;
	kernel_ctx = ctx;
	return sim_guarded(run_body, op) == 0 ? CUDA_SUCCESS : CUDA_ERROR_ILLEGAL_ADDRESS;
}

uint64_t sim_kernel_cost_ns(const struct sim_op *op)
{
	struct mv_krange ranges[MV_KERNEL_MAX_PARAMS];
	const struct mv_kernel_desc *d = op->u.k.desc;
	int n = d->ranges(op->u.k.args, ranges, MV_KERNEL_MAX_PARAMS);
	double flops = 0, bytes = 0, spanned = 0, host = 0;

	d->cost(op->u.k.args, &flops, &bytes);
	for (int i = 0; i < n; i++) {
		spanned += (double)ranges[i].bytes;
		host += (double)sim_mem_host_bytes(ranges[i].addr, ranges[i].bytes);
	}
	/* The kernel touches each range in proportion to its size. */
	return sim_cost_kernel_split_ns(flops, bytes, host > 0 ? bytes * host / spanned : 0);
}

CUresult sim_kernel_prepare(struct sim_op *op, CUfunction f, const unsigned grid[3], const unsigned block[3],
			    void **params, void **extra)
{
	const struct mv_kernel_desc *d = desc_of(f);

	if (d == NULL)
		return CUDA_ERROR_INVALID_HANDLE;
	if (grid[0] == 0 || grid[1] == 0 || grid[2] == 0 || block[0] == 0 || block[1] == 0 || block[2] == 0 ||
	    grid[1] > 65535 || grid[2] > 65535 || block[2] > 64 || (uint64_t)block[0] * block[1] * block[2] > 1024)
		return CUDA_ERROR_INVALID_VALUE;
	return marshal(op, d, params, extra);
}

static CUresult launch(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
		       CUstream h, void **params, void **extra, int per_thread)
{
	const unsigned grid[3] = {gx, gy, gz}, block[3] = {bx, by, bz};
	struct sim_stream *s;
	struct sim_op *op;
	CUresult r = sim_enter_stream(h, per_thread, &s);

	if (r != CUDA_SUCCESS)
		return r;
	op = sim_op_new(SIM_OP_KERNEL);
	if (op == NULL)
		return CUDA_ERROR_OUT_OF_MEMORY;
	r = sim_kernel_prepare(op, f, grid, block, params, extra);
	if (r != CUDA_SUCCESS) {
		free(op);
		return r;
	}
	if (s->capture != NULL)
		return sim_graph_capture_op(s, op);
	sim_stream_submit(s, op, SIM_ENGINE_COMPUTE, sim_kernel_cost_ns(op));
	return CUDA_SUCCESS;
}

SIM_EXPORT CUresult cuLaunchKernel(CUfunction f, unsigned int gx, unsigned int gy, unsigned int gz, unsigned int bx,
				   unsigned int by, unsigned int bz, unsigned int shmem, CUstream h, void **params,
				   void **extra)
{
	return launch(f, gx, gy, gz, bx, by, bz, h, params, extra, 0);
}

SIM_EXPORT CUresult cuLaunchKernel_ptsz(CUfunction f, unsigned int gx, unsigned int gy, unsigned int gz,
					unsigned int bx, unsigned int by, unsigned int bz, unsigned int shmem, CUstream h,
					void **params, void **extra)
{
	return launch(f, gx, gy, gz, bx, by, bz, h, params, extra, 1);
}

SIM_EXPORT CUresult cuLaunchCooperativeKernel(CUfunction f, unsigned int gx, unsigned int gy, unsigned int gz,
					      unsigned int bx, unsigned int by, unsigned int bz, unsigned int shmem,
					      CUstream h, void **params)
{
	return launch(f, gx, gy, gz, bx, by, bz, h, params, NULL, 0);
}

SIM_EXPORT CUresult cuLaunchCooperativeKernel_ptsz(CUfunction f, unsigned int gx, unsigned int gy, unsigned int gz,
						   unsigned int bx, unsigned int by, unsigned int bz, unsigned int shmem,
						   CUstream h, void **params)
{
	return launch(f, gx, gy, gz, bx, by, bz, h, params, NULL, 1);
}

static CUresult launch_ex(const CUlaunchConfig *c, CUfunction f, void **params, void **extra, int per_thread)
{
	if (c == NULL || (c->numAttrs > 0 && c->attrs == NULL))
		return CUDA_ERROR_INVALID_VALUE;
	return launch(f, c->gridDimX, c->gridDimY, c->gridDimZ, c->blockDimX, c->blockDimY, c->blockDimZ, c->hStream,
		      params, extra, per_thread);
}

SIM_EXPORT CUresult cuLaunchKernelEx(const CUlaunchConfig *config, CUfunction f, void **params, void **extra)
{
	return launch_ex(config, f, params, extra, 0);
}

SIM_EXPORT CUresult cuLaunchKernelEx_ptsz(const CUlaunchConfig *config, CUfunction f, void **params, void **extra)
{
	return launch_ex(config, f, params, extra, 1);
}
