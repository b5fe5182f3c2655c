/* `memvirt run`'s framework profiles, in the process's own environment (protocol/profiles.c). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/internal.h"
#include "protocol/profiles.h"

static int env_get(void *ctx, const char *name, char *buf, size_t len)
{
	const char *v = getenv(name);

	(void)ctx;
	if (v != NULL && buf != NULL)
		snprintf(buf, len, "%s", v);
	return v != NULL;
}

static int env_set(void *ctx, const char *name, const char *value)
{
	(void)ctx;
	return setenv(name, value, 1) == 0 ? 0 : -1;
}

void cli_framework_profiles(const char *prog)
{
	const struct mv_env env = {env_get, env_set, NULL};
	int notes = mv_profiles_apply(&env);

	if (notes < 0) {
		fprintf(stderr, "%s: cannot set a framework profile in the environment\n", prog);
		return;
	}
	for (int note = 1; note <= MV_PROFILE_NOTE_EXPANDABLE; note <<= 1)
		if (notes & note)
			fprintf(stderr, "%s: note: %s\n", prog, mv_profiles_note(note));
}
