/* cuGetProcAddress: resolves a driver entry point by name, CUDA version and stream flags through the
 * table generated from the toolkit's cudaTypedefs.h, as the real driver does. The pointers it hands
 * out are trampolines, not the exported symbols, as a real driver's may be: nothing may rely on
 * dladdr naming them. */
#include "config.h"

#include <string.h>

#include "interpose/proclookup.h"
#include "tests/simcuda/internal.h"

#if defined(__x86_64__)
#define SIM_TRAMP(sym) \
	__asm__(".text\n.p2align 4\n.globl simtr_" #sym "\n.hidden simtr_" #sym "\n.type simtr_" #sym \
		", @function\nsimtr_" #sym ":\n\tjmp " #sym "\n.size simtr_" #sym ", .-simtr_" #sym "\n");
#elif defined(__aarch64__)
#define SIM_TRAMP(sym) \
	__asm__(".text\n.p2align 4\n.globl simtr_" #sym "\n.hidden simtr_" #sym "\n.type simtr_" #sym \
		", %function\nsimtr_" #sym ":\n\tb " #sym "\n.size simtr_" #sym ", .-simtr_" #sym "\n");
#else
#error "no trampoline for this architecture"
#endif

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
	return NULL;
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
		/* A real entry point this simulated driver does not implement. */
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
