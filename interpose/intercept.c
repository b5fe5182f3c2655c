/* cuGetProcAddress, the third way in: the real resolver answers first, then the exact versioned
 * symbol that the request means (from the table generated from cudaTypedefs.h) decides whether the
 * app gets a hook. Nothing depends on dladdr naming the driver's pointer. */
#include "config.h"

#include <string.h>

#include "interpose/internal.h"
#include "interpose/proclookup.h"

static const struct {
	const char *symbol;
	void *hook;
} hooks[] = {
#define MV_HOOK(sym) {#sym, (void *)sym},
#include "interpose/hooks.def"
#undef MV_HOOK
};

void *mv_hook_for(const char *symbol)
{
	for (size_t i = 0; i < sizeof(hooks) / sizeof(hooks[0]); i++)
		if (strcmp(hooks[i].symbol, symbol) == 0)
			return hooks[i].hook;
	return NULL;
}

static CUresult resolve(const char *symbol, void **pfn, int version, cuuint64_t flags,
			CUdriverProcAddressQueryResult *status, int v2)
{
	CUresult r;
	const char *exact;
	void *hook;

	if (mv_init() != 0)
		return CUDA_ERROR_NOT_INITIALIZED;
	if (v2) {
		if (mv_real.cuGetProcAddress_v2 == NULL)
			return CUDA_ERROR_NOT_SUPPORTED;
		r = mv_real.cuGetProcAddress_v2(symbol, pfn, version, flags, status);
	} else {
		if (mv_real.cuGetProcAddress == NULL)
			return CUDA_ERROR_NOT_SUPPORTED;
		r = mv_real.cuGetProcAddress(symbol, pfn, version, flags);
	}
	if (r != CUDA_SUCCESS || pfn == NULL || *pfn == NULL || symbol == NULL)
		return r;
	exact = mv_proc_lookup(symbol, version, (flags & CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM) != 0);
	if (exact != NULL && (hook = mv_hook_for(exact)) != NULL)
		*pfn = hook;
	return r;
}

MV_EXPORT CUresult cuGetProcAddress_v2(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags,
				       CUdriverProcAddressQueryResult *status)
{
	return resolve(symbol, pfn, cudaVersion, flags, status, 1);
}

MV_EXPORT CUresult cuGetProcAddress(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags)
{
	return resolve(symbol, pfn, cudaVersion, flags, NULL, 0);
}
