/* The rest of the real driver's surface: every entry point it exports that simcuda does not model
 * answers CUDA_ERROR_NOT_SUPPORTED and names itself once on stderr, so a program that resolves
 * symbols at start-up gets going and one that calls them learns what is missing. The list is
 * stubs.def, generated from driver-exports.txt less symbols.def. cuda.h is not included: these
 * take no declared arguments, and its prototypes would clash with that. */
#include "config.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/simcuda/stubs.h"

/* CUDA_ERROR_NOT_SUPPORTED in cuda.h's CUresult. */
#define SIM_NOT_SUPPORTED 801

enum {
#define SIM_STUB(sym) STUB_##sym,
#include "tests/simcuda/stubs.def"
#undef SIM_STUB
	STUB_COUNT
};

/* Whether each stub has named itself yet; one extra so that the array is never empty. */
static atomic_int logged[STUB_COUNT + 1];

static int unsupported(int index, const char *name)
{
	if (atomic_exchange(&logged[index], 1) == 0)
		fprintf(stderr, "simcuda: %s is not modelled: CUDA_ERROR_NOT_SUPPORTED\n", name);
	return SIM_NOT_SUPPORTED;
}

/* Any arguments the caller passes are ignored; the calling conventions let a function taking none
 * be called with some. */
#define SIM_STUB(sym) \
	__attribute__((visibility("default"))) int sym(void); \
	int sym(void) \
	{ \
		return unsupported(STUB_##sym, #sym); \
	} \
	SIM_TRAMP(sym) \
	__attribute__((visibility("hidden"))) void simtr_##sym(void);
#include "tests/simcuda/stubs.def"
#undef SIM_STUB

struct stub {
	const char *symbol;
	void (*fn)(void);
};

/* In stubs.def's order, which gen-stubs.sh sorts bytewise as strcmp compares. */
static const struct stub stubs[STUB_COUNT + 1] = {
#define SIM_STUB(sym) {#sym, simtr_##sym},
#include "tests/simcuda/stubs.def"
#undef SIM_STUB
	{NULL, NULL},
};

static int by_symbol(const void *key, const void *elem)
{
	return strcmp(key, ((const struct stub *)elem)->symbol);
}

void (*sim_stub_lookup(const char *symbol))(void)
{
	const struct stub *s = bsearch(symbol, stubs, STUB_COUNT, sizeof(stubs[0]), by_symbol);

	return s != NULL ? s->fn : NULL;
}
