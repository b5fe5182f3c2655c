/* The one hash map of the planning code: 64-bit keys to 32-bit values, open addressing. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "policies/map.h"

#define MAP_SLOTS_MIN 256

static uint32_t map_home(const struct mv_map *m, uint64_t key)
{
	return (uint32_t)((key * UINT64_C(0x9e3779b97f4a7c15)) >> 32) & m->mask;
}

static struct mv_map_slot *map_find(const struct mv_map *m, uint64_t key)
{
	uint32_t i;

	if (m->slot == NULL)
		return NULL;
	for (i = map_home(m, key); m->slot[i].used; i = (i + 1) & m->mask) {
		if (m->slot[i].key == key)
			return &m->slot[i];
	}
	return NULL;
}

/* Puts a key that is not there yet; there is room. */
static void map_put_new(struct mv_map *m, uint64_t key, uint32_t val)
{
	uint32_t i = map_home(m, key);

	while (m->slot[i].used)
		i = (i + 1) & m->mask;
	m->slot[i].key = key;
	m->slot[i].val = val;
	m->slot[i].used = 1;
	m->n++;
}

/* Twice the slots (or the first ones), every key moved over. */
static int map_grow(struct mv_map *m)
{
	struct mv_map old = *m;
	uint32_t nslots = m->slot == NULL ? MAP_SLOTS_MIN : (m->mask + 1) * 2, i;

	m->slot = calloc(nslots, sizeof(*m->slot));
	if (m->slot == NULL) {
		*m = old;
		return -ENOMEM;
	}
	m->mask = nslots - 1;
	m->n = 0;
	for (i = old.slot == NULL ? 0 : old.mask + 1; i-- > 0;) {
		if (old.slot[i].used)
			map_put_new(m, old.slot[i].key, old.slot[i].val);
	}
	free(old.slot);
	return 0;
}

int mv_map_get(const struct mv_map *m, uint64_t key, uint32_t *val)
{
	const struct mv_map_slot *s = map_find(m, key);

	if (s != NULL && val != NULL)
		*val = s->val;
	return s != NULL;
}

int mv_map_set(struct mv_map *m, uint64_t key, uint32_t val)
{
	struct mv_map_slot *s = map_find(m, key);

	if (s != NULL) {
		s->val = val;
		return 0;
	}
	if ((m->slot == NULL || (m->n + 1) * 2 > m->mask + 1) && map_grow(m) != 0)
		return -ENOMEM;
	map_put_new(m, key, val);
	return 0;
}

void mv_map_del(struct mv_map *m, uint64_t key)
{
	struct mv_map_slot *s = map_find(m, key);
	uint32_t i, j, home;

	if (s == NULL)
		return;
	i = (uint32_t)(s - m->slot);
	m->slot[i].used = 0;
	m->n--;
	/* Entries after the hole that could live in it move back, so every probe still finds its key
	 * before an empty slot. */
	for (j = (i + 1) & m->mask; m->slot[j].used; j = (j + 1) & m->mask) {
		home = map_home(m, m->slot[j].key);
		if (i <= j ? (i < home && home <= j) : (i < home || home <= j))
			continue;
		m->slot[i] = m->slot[j];
		m->slot[j].used = 0;
		i = j;
	}
}

void mv_map_clear(struct mv_map *m)
{
	free(m->slot);
	memset(m, 0, sizeof(*m));
}

int mv_map_next(const struct mv_map *m, uint32_t *pos, uint64_t *key, uint32_t *val)
{
	for (; m->slot != NULL && *pos <= m->mask; (*pos)++) {
		if (m->slot[*pos].used) {
			*key = m->slot[*pos].key;
			*val = m->slot[*pos].val;
			(*pos)++;
			return 1;
		}
	}
	return 0;
}

size_t mv_map_memory(const struct mv_map *m)
{
	return m->slot == NULL ? 0 : ((size_t)m->mask + 1) * sizeof(*m->slot);
}
