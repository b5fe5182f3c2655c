/* Context-independent loading: cuLibraryLoadData of the built-in image, its kernels as CUkernel
 * handles (cuLibraryGetKernel, cuKernelGetFunction, cuKernelGetLibrary, cuKernelGetParamInfo), its
 * module in each context (cuLibraryGetModule), and the one module-scope variable that a library or
 * a module holds (cuLibraryGetGlobal, cuModuleGetGlobal). */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "tests/simcuda/internal.h"

CUresult sim_global_get(uint64_t *slot, const char *name, CUdeviceptr *dptr, size_t *bytes)
{
	CUresult r = CUDA_SUCCESS;

	if (strcmp(name, SIM_GLOBAL_NAME) != 0)
		return CUDA_ERROR_NOT_FOUND;
	pthread_mutex_lock(&sim_mem_lock);
	if (*slot == 0)
		r = sim_alloc_new(SIM_GLOBAL_BYTES, slot);
	pthread_mutex_unlock(&sim_mem_lock);
	if (r != CUDA_SUCCESS)
		return r;
	if (dptr != NULL)
		*dptr = *slot;
	if (bytes != NULL)
		*bytes = SIM_GLOBAL_BYTES;
	return CUDA_SUCCESS;
}

void sim_global_release(uint64_t *slot)
{
	if (*slot == 0)
		return;
	pthread_mutex_lock(&sim_mem_lock);
	sim_alloc_free(*slot);
	pthread_mutex_unlock(&sim_mem_lock);
	*slot = 0;
}

void sim_global_free(uint64_t *slot)
{
	if (*slot == 0)
		return;
	sim_streams_idle(NULL);
	sim_global_release(slot);
}

static struct sim_library *library_of(CUlibrary l)
{
	struct sim_library *lib = (struct sim_library *)l;
	return lib != NULL && lib->magic == SIM_MAGIC_LIBRARY ? lib : NULL;
}

/* Options are accepted and ignored, as the built-in image needs none. */
SIM_EXPORT CUresult cuLibraryLoadData(CUlibrary *library, const void *code, CUjit_option *jit_options,
				      void **jit_values, unsigned int njit, CUlibraryOption *lib_options,
				      void **lib_values, unsigned int nlib)
{
	struct sim_library *lib;
	CUresult r = sim_enter();

	if (r != CUDA_SUCCESS)
		return r;
	if (library == NULL || code == NULL || (njit > 0 && (jit_options == NULL || jit_values == NULL)) ||
	    (nlib > 0 && (lib_options == NULL || lib_values == NULL)))
		return CUDA_ERROR_INVALID_VALUE;
	if (strcmp((const char *)code, "simcuda") != 0)
		return CUDA_ERROR_INVALID_IMAGE;
	if (!sim_funcs_ready())
		return CUDA_ERROR_OUT_OF_MEMORY;
	lib = calloc(1, sizeof(*lib));
	if (lib == NULL)
		return CUDA_ERROR_OUT_OF_MEMORY;
	lib->kernels = sim_kernels_new(lib);
	if (lib->kernels == NULL) {
		free(lib);
		return CUDA_ERROR_OUT_OF_MEMORY;
	}
	lib->magic = SIM_MAGIC_LIBRARY;
	*library = (CUlibrary)lib;
	return CUDA_SUCCESS;
}

SIM_EXPORT CUresult cuLibraryUnload(CUlibrary library)
{
	struct sim_library *lib = library_of(library);
	CUresult r = sim_enter();

	if (r != CUDA_SUCCESS)
		return r;
	/* Its kernels die, and its module in each context with their functions; a second unload
	 * racing with this one finds it dead. */
	if (lib == NULL || sim_library_end(lib) != 0)
		return CUDA_ERROR_INVALID_HANDLE;
	sim_global_free(&lib->global);
	sim_retire(lib);
	return CUDA_SUCCESS;
}

SIM_EXPORT CUresult cuLibraryGetKernel(CUkernel *kernel, CUlibrary library, const char *name)
{
	struct sim_library *lib = library_of(library);
	CUresult r = sim_enter();
	CUkernel k;

	if (r != CUDA_SUCCESS)
		return r;
	if (kernel == NULL || name == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	if (lib == NULL)
		return CUDA_ERROR_INVALID_HANDLE;
	k = sim_kernel_find(lib->kernels, name);
	if (k == NULL)
		return CUDA_ERROR_NOT_FOUND;
	*kernel = k;
	return CUDA_SUCCESS;
}

/* The function of a kernel in the current context: its library's module there, loaded on first
 * need, holds it, and it dies with that module (the library's unload or the context's end). */
SIM_EXPORT CUresult cuKernelGetFunction(CUfunction *func, CUkernel kernel)
{
	struct sim_ctx *ctx;
	struct sim_library *lib;
	CUresult r = sim_enter_ctx(&ctx);

	if (r != CUDA_SUCCESS)
		return r;
	if (func == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	lib = sim_kernel_library(kernel);
	if (library_of((CUlibrary)lib) == NULL)
		return CUDA_ERROR_INVALID_HANDLE;
	return sim_library_function(lib, ctx, kernel, func);
}

SIM_EXPORT CUresult cuKernelGetLibrary(CUlibrary *library, CUkernel kernel)
{
	struct sim_library *lib;
	CUresult r = sim_enter();

	if (r != CUDA_SUCCESS)
		return r;
	if (library == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	lib = sim_kernel_library(kernel);
	if (library_of((CUlibrary)lib) == NULL)
		return CUDA_ERROR_INVALID_HANDLE;
	*library = (CUlibrary)lib;
	return CUDA_SUCCESS;
}

/* The library's module in the current context; CUDA_ERROR_NOT_FOUND where none is loaded there
 * yet (cuKernelGetFunction loads it). */
SIM_EXPORT CUresult cuLibraryGetModule(CUmodule *mod, CUlibrary library)
{
	struct sim_library *lib = library_of(library);
	struct sim_ctx *ctx;
	CUresult r = sim_enter_ctx(&ctx);

	if (r != CUDA_SUCCESS)
		return r;
	if (mod == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	if (lib == NULL)
		return CUDA_ERROR_INVALID_HANDLE;
	return sim_library_module(lib, ctx, 0, mod);
}

SIM_EXPORT CUresult cuKernelGetParamInfo(CUkernel kernel, size_t index, size_t *offset, size_t *size)
{
	CUresult r = sim_enter();

	if (r != CUDA_SUCCESS)
		return r;
	return sim_param_info(sim_kernel_desc(kernel), index, offset, size);
}

SIM_EXPORT CUresult cuKernelGetName(const char **name, CUkernel kernel)
{
	const struct mv_kernel_desc *d = sim_kernel_desc(kernel);

	if (name == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	if (d == NULL)
		return CUDA_ERROR_INVALID_HANDLE;
	*name = d->name;
	return CUDA_SUCCESS;
}

SIM_EXPORT CUresult cuLibraryGetGlobal(CUdeviceptr *dptr, size_t *bytes, CUlibrary library, const char *name)
{
	struct sim_library *lib = library_of(library);
	CUresult r = sim_enter_ctx(NULL);

	if (r != CUDA_SUCCESS)
		return r;
	if (name == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	if (lib == NULL)
		return CUDA_ERROR_INVALID_HANDLE;
	return sim_global_get(&lib->global, name, dptr, bytes);
}
