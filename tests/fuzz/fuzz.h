/* Shared by the libFuzzer targets: a property check that fails loudly, so a logic bug found by the
 * fuzzer is reported like a crash, with the input saved. */
#ifndef MV_FUZZ_H
#define MV_FUZZ_H

#include <stdio.h>
#include <stdlib.h>

#define FUZZ_CHECK(cond)                                                                      \
	do {                                                                                  \
		if (!(cond)) {                                                                \
			fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #cond); \
			abort();                                                              \
		}                                                                             \
	} while (0)

#endif
