/* The framework profiles: which allocator settings memvirt chooses, and when it leaves them. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "protocol/profiles.h"

/* One framework's profile (memvirt(1), "Framework profiles"): the variables it sets, and every
 * variable through which a user chooses that framework's allocator. A profile applies whole or not
 * at all: when any of its framework's variables is in the environment, even empty or "0", the
 * user has chosen, and nothing of that framework's is set. */
struct profile {
	const char *framework;
	const char *const *chosen_by; /* NULL-terminated */
	const char *const *sets;      /* NAME=VALUE pairs, NULL-terminated */
};

static const char *const torch_vars[] = {"PYTORCH_ALLOC_CONF", "PYTORCH_CUDA_ALLOC_CONF", "PYTORCH_HIP_ALLOC_CONF",
					 "PYTORCH_NO_CUDA_MEMORY_CACHING", "PYTORCH_NO_HIP_MEMORY_CACHING", NULL};
/* The stream-ordered backend: each tensor is a cuMemAllocAsync that memvirt serves, frees are
 * stream-ordered (no device-wide synchronisation), CUDA graphs capture, and PyTorch's statistics
 * come from the pool's usage figures, which memvirt answers. */
static const char *const torch_sets[] = {"PYTORCH_CUDA_ALLOC_CONF=backend:cudaMallocAsync", NULL};

static const char *const jax_vars[] = {"XLA_PYTHON_CLIENT_ALLOCATOR", "XLA_PYTHON_CLIENT_PREALLOCATE",
				       "XLA_CLIENT_MEM_FRACTION", "XLA_PYTHON_CLIENT_MEM_FRACTION", NULL};
/* XLA's stream-ordered allocator: each buffer is a cuMemAllocFromPoolAsync, freed asynchronously,
 * with statistics kept by XLA; without preallocation, or it would take most of the budget at once. */
static const char *const jax_sets[] = {"XLA_PYTHON_CLIENT_ALLOCATOR=cuda_async", "XLA_PYTHON_CLIENT_PREALLOCATE=false",
				       NULL};
/* The TFRT GPU client refuses cuda_async: its synchronous per-buffer allocator instead. */
static const char *const jax_tfrt_sets[] = {"XLA_PYTHON_CLIENT_ALLOCATOR=platform",
					    "XLA_PYTHON_CLIENT_PREALLOCATE=false", NULL};

static const char *const tf_vars[] = {"TF_GPU_ALLOCATOR", NULL};
static const char *const tf_sets[] = {"TF_GPU_ALLOCATOR=cuda_malloc_async", NULL};

/* The first of vars that env has, or NULL. */
static const char *chosen(const struct mv_env *env, const char *const *vars)
{
	for (; *vars != NULL; vars++)
		if (env->get(env->ctx, *vars, NULL, 0))
			return *vars;
	return NULL;
}

static int apply(const struct mv_env *env, const char *const *sets)
{
	for (; *sets != NULL; sets++) {
		const char *eq = strchr(*sets, '=');
		char name[64];

		snprintf(name, sizeof(name), "%.*s", (int)(eq - *sets), *sets);
		if (env->set(env->ctx, name, eq + 1) != 0)
			return -1;
	}
	return 0;
}

/* The note due for PyTorch under the user's own setting, or 0. */
static int torch_note(const struct mv_env *env)
{
	int async = 0, uncached = 0, expandable = 0;
	char v[512];

	for (const char *const *n = torch_vars; *n != NULL; n++) {
		if (!env->get(env->ctx, *n, v, sizeof(v)))
			continue;
		if (strstr(*n, "NO_") != NULL)
			uncached |= strcmp(v, "1") == 0;
		async |= strstr(v, "cudaMallocAsync") != NULL;
		expandable |= strstr(v, "expandable_segments:True") != NULL || strstr(v, "expandable_segments:true") != NULL;
	}
	if (async || uncached)
		return 0;
	return expandable ? MV_PROFILE_NOTE_EXPANDABLE : MV_PROFILE_NOTE_CACHING;
}

int mv_profiles_apply(const struct mv_env *env)
{
	char tfrt[16];
	int use_tfrt = env->get(env->ctx, "XLA_PYTHON_CLIENT_USE_TFRT_GPU_CLIENT", tfrt, sizeof(tfrt)) &&
		       strcmp(tfrt, "0") != 0;
	const struct profile profiles[] = {
		{"PyTorch", torch_vars, torch_sets},
		{"JAX", jax_vars, use_tfrt ? jax_tfrt_sets : jax_sets},
		{"TensorFlow", tf_vars, tf_sets},
	};
	int notes = 0;

	for (size_t i = 0; i < sizeof(profiles) / sizeof(profiles[0]); i++) {
		if (chosen(env, profiles[i].chosen_by) == NULL) {
			if (apply(env, profiles[i].sets) != 0)
				return -1;
		} else if (i == 0) {
			notes |= torch_note(env);
		}
	}
	return notes;
}

const char *mv_profiles_note(int note)
{
	if (note == MV_PROFILE_NOTE_EXPANDABLE)
		return "PyTorch's expandable segments map memory themselves; memvirt counts it against the budget "
		       "but cannot page it";
	return "PyTorch keeps its caching allocator as set in the environment; memvirt sees its segments, not "
	       "tensors, and pages only segments wholly cold";
}
