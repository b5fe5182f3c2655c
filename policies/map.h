/* An open-addressing map from a 64-bit key to a 32-bit value, for the learner's buffers and
 * functions and the trace recorder's buffer numbers. Linear probing with backward-shift deletion,
 * so no tombstones pile up; kept at most half full. Not thread-safe: one owner, who frees it with
 * mv_map_clear(). Zero-filled memory (MV_MAP_INIT) is an empty map. */
#ifndef MV_POLICIES_MAP_H
#define MV_POLICIES_MAP_H

#include <stddef.h>
#include <stdint.h>

struct mv_map_slot {
	uint64_t key;
	uint32_t val;
	uint32_t used;
};

struct mv_map {
	struct mv_map_slot *slot;
	uint32_t mask; /* slots - 1; 0 with no slots */
	uint32_t n;    /* keys held */
};

#define MV_MAP_INIT {NULL, 0, 0}

/* Whether key is in m; its value through *val (which may be NULL). */
int mv_map_get(const struct mv_map *m, uint64_t key, uint32_t *val);
/* Sets key to val. Returns 0, or -ENOMEM with m unchanged. */
int mv_map_set(struct mv_map *m, uint64_t key, uint32_t val);
void mv_map_del(struct mv_map *m, uint64_t key);
/* Frees the slots: m is empty again. */
void mv_map_clear(struct mv_map *m);
/* Walks m in slot order: from *pos = 0, each call returns 1 with the next key and value, then 0.
 * m must not change during the walk. */
int mv_map_next(const struct mv_map *m, uint32_t *pos, uint64_t *key, uint32_t *val);
/* The bytes m's slots take. */
size_t mv_map_memory(const struct mv_map *m);

#endif
