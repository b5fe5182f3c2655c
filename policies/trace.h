/* Traces: the buffers and operations of a run in the order the library saw them, in memory and as
 * the versioned binary file that `memvirt run --record` writes and `memvirt trace` reads.
 *
 * The file, all integers little-endian:
 *
 *     header, 32 bytes:
 *       offset 0  u8[8] magic         "MVTRACE\0"
 *       offset 8  u32   version       MV_TRACE_VERSION
 *       offset 12 u32   header_size   32; a reader skips what it does not know up to here
 *       offset 16 u64   device_total  the device's memory
 *       offset 24 u32   flags         MV_TRACE_F_*
 *       offset 28 u32   rank          the recording process's rank with MV_TRACE_F_RANK, else zero
 *     then records, each an 8-byte head then `length` bytes of payload:
 *       u16 type, u16 reserved (zero), u32 length
 *
 *     type                 payload
 *     MV_TREC_FUNC    1    u32 func, then the name: 1..MV_TRACE_NAME_MAX bytes, no NUL
 *     MV_TREC_ALLOC   2    u32 buf, u32 flags (MV_TBUF_*), u64 size, u64 site, u64 time_ns   (32)
 *     MV_TREC_FREE    3    u32 buf, u32 reserved, u64 time_ns                               (16)
 *     MV_TREC_LAUNCH  4    u32 func, u16 stream, u16 nrefs, u64 time_ns, u64 dur_ns,
 *                          then nrefs x u32 buf                                          (24 + 4n)
 *     MV_TREC_SYNC    5    u32 stream, u32 reserved, u64 time_ns                            (16)
 *     MV_TREC_MARK    6    u32 reserved, u32 reserved, u64 time_ns                          (16)
 *     MV_TREC_PAGE    7    u32 buf, u32 dir (0 out, 1 in), u64 time_ns, u64 dur_ns,
 *                          u64 waited (1 when a launch stalled on it)                       (32)
 *     MV_TREC_END     8    u64 records (every record before this one)                      (8)
 *
 * Buffers are numbered in ALLOC order from 0: an ALLOC's buf is the count of ALLOCs before it. A
 * FREE, LAUNCH or PAGE names only allocated, not yet freed buffers; a LAUNCH names only functions
 * defined by an earlier FUNC. Functions are numbered in FUNC order from 0 likewise. `site` is the
 * allocation's call-site hash (0 when unknown); `dur_ns` is the measured device time (0 when not
 * measured). Times are CLOCK_MONOTONIC nanoseconds and never decrease.
 *
 * A recorder that reached its size cap (--record-max) writes END and sets MV_TRACE_F_CUT in the
 * header: the file is whole, but the job went on past its last record.
 *
 * A file without END was cut short (a killed job): the reader keeps every complete record before
 * the cut and sets `truncated`. Anything else malformed is an error naming the offset.
 *
 * Bump MV_TRACE_VERSION whenever a record changes; never reuse a retired record type. */
#ifndef MV_POLICIES_TRACE_H
#define MV_POLICIES_TRACE_H

#include <stddef.h>
#include <stdint.h>

#define MV_TRACE_MAGIC "MVTRACE"  /* with its NUL, the 8 magic bytes */
#define MV_TRACE_VERSION 1
#define MV_TRACE_HEADER 32
#define MV_TRACE_RECORD_HEAD 8
#define MV_TRACE_NAME_MAX 255
#define MV_TRACE_NONE UINT32_MAX  /* no buffer, function or op */
#define MV_TRACE_MAX_LEAST 4096u  /* the smallest size cap a recorder takes */

enum mv_trace_record {
	MV_TREC_FUNC = 1,
	MV_TREC_ALLOC = 2,
	MV_TREC_FREE = 3,
	MV_TREC_LAUNCH = 4,
	MV_TREC_SYNC = 5,
	MV_TREC_MARK = 6,
	MV_TREC_PAGE = 7,
	MV_TREC_END = 8,
};

#define MV_TRACE_F_MODEL_ONLY 0x1u /* recorded on a simulated device without backing bytes */
#define MV_TRACE_F_RANK 0x2u       /* the header's rank word holds the process's rank in its job */
#define MV_TRACE_F_CUT 0x4u        /* the recorder stopped at its size cap; the job went on */

#define MV_TBUF_PINNED 0x1u /* never paged: a slab block or an allocation below the threshold */

/* The largest records, for callers that encode into a fixed buffer. */
#define MV_TRACE_REFS_MAX 65535u
#define MV_TRACE_LAUNCH_SIZE(nrefs) (MV_TRACE_RECORD_HEAD + 24 + 4 * (size_t)(nrefs))

/* One buffer of a trace. */
struct mv_trace_buf {
	uint64_t size;
	uint64_t site;
	uint32_t flags;   /* MV_TBUF_* */
	uint32_t alloc_op; /* index of its ALLOC in ops */
	uint32_t free_op;  /* index of its FREE in ops, MV_TRACE_NONE when never freed */
};

/* One operation: a record other than FUNC and END. */
struct mv_trace_op {
	uint8_t kind;     /* enum mv_trace_record */
	uint8_t dir;      /* PAGE: 0 out, 1 in */
	uint16_t waited;  /* PAGE: a launch stalled on it */
	uint32_t stream;  /* LAUNCH, SYNC */
	uint32_t id;      /* ALLOC, FREE, PAGE: the buffer; LAUNCH: the function */
	uint32_t nrefs;   /* LAUNCH: buffers named, at refs[ref0 .. ref0 + nrefs) */
	uint32_t ref0;
	uint64_t time_ns;
	uint64_t dur_ns;  /* LAUNCH, PAGE */
};

/* A whole trace. Owned by whoever read or built it; freed with mv_trace_free(). */
struct mv_trace {
	uint64_t device_total;
	uint32_t flags;       /* MV_TRACE_F_* */
	uint32_t rank;        /* the process's rank, MV_TRACE_NONE when the file names none */
	int truncated;        /* the file ended without END */
	struct mv_trace_buf *bufs;
	uint32_t nbufs;
	struct mv_trace_op *ops;
	uint32_t nops;
	uint32_t *refs;       /* buffer numbers named by launches */
	uint32_t nrefs;
	char **funcs;         /* function names, NUL-terminated */
	uint32_t nfuncs;
	uint32_t cap_ops, cap_refs, cap_bufs, cap_funcs; /* the builder's capacities */
};

/* Parses a whole trace file held in memory. Returns 0 and *out, or a negative errno (-EINVAL for a
 * malformed file, -ENOMEM) with a message naming the byte offset and the problem in err. */
int mv_trace_read_mem(const void *buf, size_t len, struct mv_trace **out, char *err, size_t errlen);
void mv_trace_free(struct mv_trace *t);

/* The launches among ops [first_op, first_op + nops) whose record has no measured duration
 * (dur_ns 0: the recording lost its timing); their number goes to *launches when not NULL. A model
 * of such an iteration charges them a guess, so a replay says how many there are. */
uint32_t mv_trace_untimed(const struct mv_trace *t, uint32_t first_op, uint32_t nops, uint32_t *launches);

/* Building a trace in memory, as the library and the daemon learn a run and tests make synthetic
 * ones. Each returns 0 or -ENOMEM (or -EINVAL for a buffer or function that does not exist); ALLOC
 * returns the new buffer's number through *buf. The builder does the same checks as the reader. */
struct mv_trace *mv_trace_new(uint64_t device_total, uint32_t flags);
int mv_trace_add_func(struct mv_trace *t, const char *name, uint32_t *func);
int mv_trace_add_alloc(struct mv_trace *t, uint64_t size, uint64_t site, uint32_t flags, uint64_t time_ns,
		       uint32_t *buf);
int mv_trace_add_free(struct mv_trace *t, uint32_t buf, uint64_t time_ns);
int mv_trace_add_launch(struct mv_trace *t, uint32_t func, uint32_t stream, uint64_t time_ns, uint64_t dur_ns,
			const uint32_t *refs, uint32_t nrefs);
int mv_trace_add_sync(struct mv_trace *t, uint32_t stream, uint64_t time_ns);
int mv_trace_add_mark(struct mv_trace *t, uint64_t time_ns);
int mv_trace_add_page(struct mv_trace *t, uint32_t buf, int in, uint64_t time_ns, uint64_t dur_ns, int waited);

/* Encoding for writers (no I/O here). Each writes one record (or the header) into out, at most
 * cap bytes, and returns its size, or 0 when it does not fit or a value is out of range. */
size_t mv_trace_encode_header(uint8_t *out, size_t cap, uint64_t device_total, uint32_t flags);
/* The same, for a process with a rank in its job (MV_TRACE_NONE: none, as the one above). */
size_t mv_trace_encode_header_rank(uint8_t *out, size_t cap, uint64_t device_total, uint32_t flags,
				   uint32_t rank);

/* A trace file's name from a pattern: %p is the pid, %r the rank (x when MV_TRACE_NONE), %% a %.
 * Returns how many %p and %r it expanded (0: one name for every process of a job), -EINVAL for a
 * % followed by anything else, -ENAMETOOLONG when the name does not fit in out[len]. */
int mv_trace_path_expand(const char *pattern, uint32_t pid, uint32_t rank, char *out, size_t len);
size_t mv_trace_encode_func(uint8_t *out, size_t cap, uint32_t func, const char *name);
size_t mv_trace_encode_alloc(uint8_t *out, size_t cap, uint32_t buf, uint32_t flags, uint64_t size,
			     uint64_t site, uint64_t time_ns);
size_t mv_trace_encode_free(uint8_t *out, size_t cap, uint32_t buf, uint64_t time_ns);
size_t mv_trace_encode_launch(uint8_t *out, size_t cap, uint32_t func, uint32_t stream, uint64_t time_ns,
			      uint64_t dur_ns, const uint32_t *refs, uint32_t nrefs);
size_t mv_trace_encode_sync(uint8_t *out, size_t cap, uint32_t stream, uint64_t time_ns);
size_t mv_trace_encode_mark(uint8_t *out, size_t cap, uint64_t time_ns);
size_t mv_trace_encode_page(uint8_t *out, size_t cap, uint32_t buf, int in, uint64_t time_ns, uint64_t dur_ns,
			    int waited);
size_t mv_trace_encode_end(uint8_t *out, size_t cap, uint64_t records);
/* The whole trace as a file image: header, FUNCs before their first use, ops, END. Returns a
 * malloc'd buffer and its length through *len, or NULL. */
uint8_t *mv_trace_encode(const struct mv_trace *t, size_t *len);

#endif
