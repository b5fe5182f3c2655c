/* The exact versioned symbol a cuGetProcAddress request means, from the table scripts/gen-proctable
 * generates out of the toolkit's cudaTypedefs.h: the newest version of the name not above the
 * request's, in its per-thread-default-stream form when one is asked for and exists. Shared by the
 * library and the simulated driver, which must agree on it. */
#ifndef MV_PROCLOOKUP_H
#define MV_PROCLOOKUP_H

#include <string.h>

static const struct {
	const char *name;
	int version;
	int per_thread;
	const char *symbol;
} mv_proctable[] = {
#define MV_PROC(name, version, per_thread, symbol) {#name, version, per_thread, #symbol},
#include "interpose/proctable.h"
#undef MV_PROC
};

/* The newest entry for name not above version of one variant; *known says whether name has any. */
static inline const char *mv_proc_pick(const char *name, int version, int per_thread, int *known)
{
	const char *best = NULL;
	int best_version = -1;

	for (size_t i = 0; i < sizeof(mv_proctable) / sizeof(mv_proctable[0]); i++) {
		if (strcmp(mv_proctable[i].name, name) != 0)
			continue;
		*known = 1;
		if (mv_proctable[i].per_thread != per_thread || mv_proctable[i].version > version ||
		    mv_proctable[i].version <= best_version)
			continue;
		best = mv_proctable[i].symbol;
		best_version = mv_proctable[i].version;
	}
	return best;
}

/* The symbol a request resolves to, or NULL; *known (may be NULL) says whether the name exists at
 * any version. */
static inline const char *mv_proc_resolve(const char *name, int version, int per_thread, int *known)
{
	const char *s = NULL;
	int k = 0;

	if (per_thread)
		s = mv_proc_pick(name, version, 1, &k);
	if (s == NULL)
		s = mv_proc_pick(name, version, 0, &k);
	if (known != NULL)
		*known = k;
	return s;
}

#define mv_proc_lookup(name, version, per_thread) mv_proc_resolve(name, version, per_thread, NULL)

#endif
