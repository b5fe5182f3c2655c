/* The framework profiles of `memvirt run`: allocator settings that let memvirt see each buffer. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/internal.h"

/* One framework's profile (memvirt(1), "Framework profiles"): the variables it sets, and every
 * variable through which a user chooses that framework's allocator. A profile applies whole or not
 * at all: when any of its framework's variables is in the environment, even empty or "0", the
 * user has chosen, and run changes nothing of that framework's. */
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

/* The first of vars that the environment has, or NULL. */
static const char *chosen(const char *const *vars)
{
	for (; *vars != NULL; vars++)
		if (getenv(*vars) != NULL)
			return *vars;
	return NULL;
}

static void apply(const char *const *sets)
{
	for (; *sets != NULL; sets++) {
		const char *eq = strchr(*sets, '=');
		char name[64];

		snprintf(name, sizeof(name), "%.*s", (int)(eq - *sets), *sets);
		setenv(name, eq + 1, 1);
	}
}

/* Says, once, what memvirt sees of PyTorch's memory under the user's own setting, when that is
 * less than every tensor. */
static void torch_notice(const char *prog)
{
	int async = 0, uncached = 0, expandable = 0;

	for (const char *const *v = torch_vars; *v != NULL; v++) {
		const char *s = getenv(*v);
		if (s == NULL)
			continue;
		if (strstr(*v, "NO_") != NULL)
			uncached |= strcmp(s, "1") == 0;
		async |= strstr(s, "cudaMallocAsync") != NULL;
		expandable |= strstr(s, "expandable_segments:True") != NULL ||
			      strstr(s, "expandable_segments:true") != NULL;
	}
	if (async || uncached)
		return;
	if (expandable)
		fprintf(stderr, "%s: note: PyTorch's expandable segments map memory themselves; memvirt counts "
				"it against the budget but cannot page it\n", prog);
	else
		fprintf(stderr, "%s: note: PyTorch keeps its caching allocator as set in the environment; memvirt "
				"sees its segments, not tensors, and pages only segments wholly cold\n", prog);
}

void cli_framework_profiles(const char *prog)
{
	const char *tfrt = getenv("XLA_PYTHON_CLIENT_USE_TFRT_GPU_CLIENT");
	const struct profile profiles[] = {
		{"PyTorch", torch_vars, torch_sets},
		{"JAX", jax_vars, tfrt != NULL && strcmp(tfrt, "0") != 0 ? jax_tfrt_sets : jax_sets},
		{"TensorFlow", tf_vars, tf_sets},
	};

	for (size_t i = 0; i < sizeof(profiles) / sizeof(profiles[0]); i++) {
		if (chosen(profiles[i].chosen_by) == NULL)
			apply(profiles[i].sets);
		else if (i == 0)
			torch_notice(prog);
	}
}
