/* The framework profiles (memvirt(1), "Framework profiles"): the allocator settings under which
 * PyTorch, JAX and TensorFlow hand each buffer to the driver, where memvirt can see and page it.
 * Shared by `memvirt run` and the Slurm plugin, each with its own environment. */
#ifndef MV_PROFILES_H
#define MV_PROFILES_H

#include <stddef.h>

/* An environment: the process's own, or a task's that another program prepares. */
struct mv_env {
	/* Whether name is set (even empty); its value into buf, cut to len, when buf is not NULL. */
	int (*get)(void *ctx, const char *name, char *buf, size_t len);
	/* Sets name to value; 0 or -1. */
	int (*set)(void *ctx, const char *name, const char *value);
	void *ctx;
};

/* What memvirt sees of PyTorch under a user's own setting, when that is less than every tensor. */
enum {
	MV_PROFILE_NOTE_CACHING = 1,    /* the caching allocator: segments, not tensors */
	MV_PROFILE_NOTE_EXPANDABLE = 2, /* expandable segments: mapped by PyTorch, never paged */
};

/* Sets each framework's profile that env leaves open. A profile applies whole or not at all: when
 * any variable through which a framework's allocator is chosen is set, even empty or "0", nothing
 * of that framework's is set. Returns the notes due (MV_PROFILE_NOTE_*), or -1 when a set failed. */
int mv_profiles_apply(const struct mv_env *env);

/* One note's text, without a prefix. */
const char *mv_profiles_note(int note);

#endif
