/* cuGetProcAddress: resolves a driver entry point by name, CUDA version and stream flags through the
 * table generated from the toolkit's cudaTypedefs.h, as the real driver does. The pointers it hands
 * out are trampolines, not the exported symbols, as a real driver's may be: nothing may rely on
 * dladdr naming them. An entry point of the real driver that is not modelled resolves too, to its
 * stub (stubs.c), as a real driver resolves every entry point it exports. */
#include "config.h"

#include <string.h>

#include "interpose/proclookup.h"
#include "tests/simcuda/internal.h"
#include "tests/simcuda/stubs.h"

#define SIM_SYM(sym) SIM_TRAMP(sym)
#include "tests/simcuda/symbols.def"
#undef SIM_SYM

#define SIM_SYM(sym) SIM_HIDDEN void simtr_##sym(void);
#include "tests/simcuda/symbols.def"
#undef SIM_SYM

static const struct {
	const char *symbol;
	void (*fn)(void);
} implemented[] = {
#define SIM_SYM(sym) {#sym, simtr_##sym},
#include "tests/simcuda/symbols.def"
#undef SIM_SYM
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static void (*implementation(const char *symbol))(void)
{
	for (size_t i = 0; i < COUNT(implemented); i++)
		if (strcmp(implemented[i].symbol, symbol) == 0)
			return implemented[i].fn;
	return sim_stub_lookup(symbol);
}

SIM_EXPORT CUresult cuGetProcAddress_v2(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags,
					CUdriverProcAddressQueryResult *status)
{
	const char *chosen;
	void (*fn)(void);
	int seen;

	if (symbol == NULL || pfn == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	if (flags & ~(cuuint64_t)(CU_GET_PROC_ADDRESS_LEGACY_STREAM | CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM))
		return CUDA_ERROR_INVALID_VALUE;
	*pfn = NULL;
	chosen = mv_proc_resolve(symbol, cudaVersion, (flags & CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM) != 0, &seen);
	if (chosen == NULL) {
		if (status != NULL)
			*status = seen ? CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT : CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
		return CUDA_ERROR_NOT_FOUND;
	}
	fn = implementation(chosen);
	if (fn == NULL) {
		/* A name cudaTypedefs.h has that the real driver does not export. */
		if (status != NULL)
			*status = CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
		return CUDA_ERROR_NOT_FOUND;
	}
	*pfn = (void *)fn;
	if (status != NULL)
		*status = CU_GET_PROC_ADDRESS_SUCCESS;
	return CUDA_SUCCESS;
}

SIM_EXPORT CUresult cuGetProcAddress(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags)
{
	return cuGetProcAddress_v2(symbol, pfn, cudaVersion, flags, NULL);
}
