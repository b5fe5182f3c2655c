/* The paging counters of protocol/counters.def: kept with atomics, read as one snapshot through
 * memvirt_counters() (the API the daemon link reads too), and printed as one line at exit when
 * MEMVIRT_LOG=info or debug. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "interpose/internal.h"
#include "protocol/proto.h"
#include "protocol/units.h"

/* Indexed by enum mv_counter_index; the slots of source budget stay zero. */
static _Atomic uint64_t count[MV_NCOUNTERS];

void mv_count_add(enum mv_counter_index c, uint64_t n)
{
	atomic_fetch_add(&count[c], n);
}

void mv_count_sub(enum mv_counter_index c, uint64_t n)
{
	atomic_fetch_sub(&count[c], n);
}

uint64_t mv_count_get(enum mv_counter_index c)
{
	return atomic_load(&count[c]);
}

/* The counters of source budget come from the budget (mv_budget_read), read by hand. */
#define COUNTER_IS_BUDGET_atomic 0
#define COUNTER_IS_BUDGET_budget 1
_Static_assert(0
#define MV_COUNTER(name, source, ...) + COUNTER_IS_BUDGET_##source
#include "protocol/counters.def"
#undef MV_COUNTER
	       == 2, "memvirt_counters() reads only budget and resident_bytes from the budget");

/* Each place in the summary line is below the number of counters; a place taken twice is a
 * duplicate case below. */
#define MV_COUNTER(name, source, type, unit, key, metric, column, place, ...) \
	_Static_assert((place) >= 0 && (place) < MV_NCOUNTERS, #name "'s place is past the summary line's end");
#include "protocol/counters.def"
#undef MV_COUNTER

MV_EXPORT void memvirt_counters(struct memvirt_counters *out)
{
	if (out == NULL)
		return;
	mv_budget_read(&out->budget, &out->resident_bytes);
#define MV_COUNTER(name, source, ...) COUNTER_LOAD_##source(name)
#define COUNTER_LOAD_atomic(name) out->name = atomic_load(&count[MV_COUNTER_##name]);
#define COUNTER_LOAD_budget(name)
#include "protocol/counters.def"
#undef MV_COUNTER
#undef COUNTER_LOAD_atomic
#undef COUNTER_LOAD_budget
}

/* A value of each unit as its counters.def fragment converts it: %s, %llu, or %f milliseconds. */
#define SAY_bytes(v, buf) mv_format_size(v, buf, sizeof(buf))
#define SAY_count(v, buf) (unsigned long long)(v)
#define SAY_ns(v, buf) ((double)(v) / 1e6)

__attribute__((destructor)) static void summary(void)
{
	struct memvirt_counters c;
	char line[1024], b[32];
	size_t n = 0;
	int at;

	if (mv_cfg.log_level > MV_LOG_INFO || mv_budget_now() == 0)
		return;
	memvirt_counters(&c);
	line[0] = '\0';
	/* Fragments go in the order of their places, not of the list: scripts read this line. */
	for (at = 0; at < MV_NCOUNTERS; at++) {
		switch (at) {
#define MV_COUNTER(name, source, type, unit, key, metric, column, place, say, help) \
		case place: \
			snprintf(line + n, sizeof(line) - n, say, SAY_##unit(c.name, b)); \
			break;
#include "protocol/counters.def"
#undef MV_COUNTER
		}
		n += strlen(line + n);
	}
	mv_log(MV_LOG_INFO, "%s", line);
}
