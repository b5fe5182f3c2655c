/* The learner: buffer events in, a trace (policies/trace.h) out. The library's planner thread feeds
 * it the records of its own process and memvirtd feeds it each session's events; both then find
 * the iteration in the trace and plan it (policies/policy.h).
 *
 * The events: a buffer allocated or freed, a launch followed by one REF for each buffer it names (in
 * the order scanned), an iteration mark, a page copy. Buffers and functions are named by the
 * caller's 64-bit keys (the library's buffer ids and function numbers; memvirtd's buffer addresses
 * and the function numbers the library sends) and get the trace's numbers in the order first seen.
 * A function is named as the caller says, or "f<key>", the name memvirtd gives it. Times never go
 * back in the trace: an event earlier than the last is taken at the last one's time.
 *
 * The events may be wrong, or hostile (they come from a socket): what makes no sense is counted as
 * ignored, told to the note function, and not learnt. A REF of a buffer never allocated gets a
 * pinned stand-in, so that its launch keeps its place in the sequence and each REF its position.
 * The trace stays within the caller's limits: past one it restarts from its last iteration
 * (mv_learner_iteration) or from its live buffers, and when even that is too much learning starts
 * over from nothing.
 *
 * Pure: no I/O, no locks, no clocks, no globals; the caller logs what it is told. A function that
 * may allocate returns 0 or -ENOMEM, and after -ENOMEM the learner is whole, short of that event. */
#ifndef MV_POLICIES_LEARN_H
#define MV_POLICIES_LEARN_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "policies/trace.h"

struct mv_learner;

/* What the trace may hold; UINT32_MAX for no limit. */
struct mv_learner_limits {
	uint32_t ops;   /* operations */
	uint32_t refs;  /* buffers named by its launches */
	uint32_t bufs;  /* buffers, alive or freed */
	uint32_t live;  /* buffer keys alive at once: past it learning starts over */
	uint32_t funcs; /* distinct functions: past it learning starts over */
};

/* What the learner tells its caller: what a daemon logs at debug level or as a warning, and the
 * events it ignores (which a daemon logs a few of). The text is fmt with ap, as for vprintf. */
enum mv_learner_note { MV_LEARNER_DEBUG, MV_LEARNER_WARN, MV_LEARNER_IGNORED };
typedef void mv_learner_note_fn(void *ctx, enum mv_learner_note kind, const char *fmt, va_list ap);

struct mv_learner_stats {
	uint64_t launches; /* launches learnt */
	uint64_t resets;   /* times the trace restarted or learning started over */
	uint64_t ignored;  /* events ignored */
};

/* A learner for a device of device_total bytes. note (may be NULL) is called with ctx. Returns NULL
 * when out of memory. Freed with mv_learner_free(). */
struct mv_learner *mv_learner_new(uint64_t device_total, const struct mv_learner_limits *lim,
				  mv_learner_note_fn *note, void *ctx);
void mv_learner_free(struct mv_learner *l);

/* The events. Each but REF first ends a launch whose REFs are still due (it was promised more than
 * it got: ignored). */
int mv_learner_alloc(struct mv_learner *l, uint64_t key, uint64_t size, uint64_t site, uint32_t flags,
		     uint64_t time_ns);
int mv_learner_freed(struct mv_learner *l, uint64_t key, uint64_t time_ns);
/* A launch of function fkey (named name, or "f<fkey>" when NULL) on stream, measured at dur_ns (0:
 * not measured), which nrefs REFs follow. It is learnt with its last REF. */
int mv_learner_launch(struct mv_learner *l, uint64_t fkey, const char *name, uint32_t stream, uint64_t time_ns,
		      uint64_t dur_ns, uint64_t nrefs);
int mv_learner_ref(struct mv_learner *l, uint64_t key);
int mv_learner_mark(struct mv_learner *l, uint64_t time_ns);
/* A page copy of buffer key: out, or in (in != 0); waited when a launch stalled on it. */
int mv_learner_page(struct mv_learner *l, uint64_t key, int in, uint64_t time_ns, uint64_t dur_ns, int waited);
/* An event the trace does not keep: it ends a launch as any event does, and its time counts. */
void mv_learner_skip(struct mv_learner *l, uint64_t time_ns);
/* Counts an event the caller found malformed as ignored, and tells the note function. */
void mv_learner_ignore(struct mv_learner *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Starts the trace over from the buffers alive now (events were lost, or the job left its
 * iteration), keeping the function numbers; why is for the note. A launch whose REFs were due is
 * forgotten, and its REFs are ignored. */
int mv_learner_restart(struct mv_learner *l, const char *why);
/* Forgets everything learnt, the live buffers included (what is alive is no longer known); why is
 * for the note. Function numbers start over too. */
int mv_learner_forget(struct mv_learner *l, const char *why);
/* The iteration found last in the trace begins at op first_op: a trace that is full restarts from
 * there, so that the iteration is found again one iteration later. Forgotten at any restart. */
void mv_learner_iteration(struct mv_learner *l, uint32_t first_op);

/* The trace as learnt so far: borrowed, valid until the next call that takes l non-const. */
const struct mv_trace *mv_learner_trace(const struct mv_learner *l);
const struct mv_learner_stats *mv_learner_stats(const struct mv_learner *l);
/* The trace's number of function fkey, or MV_TRACE_NONE. */
uint32_t mv_learner_func(const struct mv_learner *l, uint64_t fkey);
/* The bytes l holds, its trace included. */
size_t mv_learner_memory(const struct mv_learner *l);

#endif
