/* Traces: the strict reader of the binary trace file, the in-memory builder, and the encoders. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policies/trace.h"

/* Payload sizes of the fixed-size records. */
#define ALLOC_LEN 32u
#define FREE_LEN 16u
#define LAUNCH_LEN 24u
#define SYNC_LEN 16u
#define MARK_LEN 16u
#define PAGE_LEN 32u
#define END_LEN 8u

/* A count past which a trace is refused outright: op and buffer numbers must stay below
 * MV_TRACE_NONE. */
#define COUNT_MAX (MV_TRACE_NONE - 1)

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (uint16_t)p[1] << 8);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)v);
	put16(p + 2, (uint16_t)(v >> 16));
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

/* ---- the in-memory trace ------------------------------------------------------------------------ */

struct mv_trace *mv_trace_new(uint64_t device_total, uint32_t flags)
{
	struct mv_trace *t = calloc(1, sizeof *t);

	if (t == NULL)
		return NULL;
	t->device_total = device_total;
	t->flags = flags;
	t->rank = MV_TRACE_NONE;
	return t;
}

uint32_t mv_trace_untimed(const struct mv_trace *t, uint32_t first_op, uint32_t nops, uint32_t *launches)
{
	uint32_t untimed = 0, n = 0;

	for (uint32_t i = first_op; i < t->nops && i - first_op < nops; i++) {
		if (t->ops[i].kind != MV_TREC_LAUNCH)
			continue;
		n++;
		if (t->ops[i].dur_ns == 0)
			untimed++;
	}
	if (launches != NULL)
		*launches = n;
	return untimed;
}

void mv_trace_free(struct mv_trace *t)
{
	uint32_t i;

	if (t == NULL)
		return;
	for (i = 0; i < t->nfuncs; i++)
		free(t->funcs[i]);
	free(t->funcs);
	free(t->bufs);
	free(t->ops);
	free(t->refs);
	free(t);
}

/* Makes room for `more` elements of `size` bytes after `n`, doubling. */
static int grow(void **arr, uint32_t *cap, uint32_t n, uint32_t more, size_t size)
{
	uint64_t want = (uint64_t)n + more, c = *cap;
	void *p;

	if (want <= c)
		return 0;
	if (want > COUNT_MAX)
		return -ENOMEM;
	if (c < 16)
		c = 16;
	while (c < want)
		c *= 2;
	if (c > COUNT_MAX)
		c = COUNT_MAX;
	if (c > SIZE_MAX / size)
		return -ENOMEM;
	p = realloc(*arr, (size_t)c * size);
	if (p == NULL)
		return -ENOMEM;
	*arr = p;
	*cap = (uint32_t)c;
	return 0;
}

/* Where a check failed: the reader passes the record's offset, the builder nothing. */
struct where {
	char *err;
	size_t errlen;
	size_t off;
	int reading;
};

static int fail(struct where *w, int rc, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (w == NULL || w->err == NULL || w->errlen == 0)
		return rc;
	n = snprintf(w->err, w->errlen, "offset %zu: ", w->off);
	if (n >= 0 && (size_t)n < w->errlen) {
		va_start(ap, fmt);
		vsnprintf(w->err + n, w->errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return rc;
}

static const char *rec_name(unsigned type)
{
	static const char *const names[] = {"?", "FUNC", "ALLOC", "FREE", "LAUNCH", "SYNC", "MARK", "PAGE", "END"};

	return type < sizeof names / sizeof names[0] ? names[type] : "?";
}

static uint64_t last_time(const struct mv_trace *t)
{
	return t->nops == 0 ? 0 : t->ops[t->nops - 1].time_ns;
}

static int check_time(struct mv_trace *t, struct where *w, unsigned type, uint64_t time_ns)
{
	if (time_ns < last_time(t))
		return fail(w, -EINVAL, "%s time %llu is before the previous record's %llu", rec_name(type),
			    (unsigned long long)time_ns, (unsigned long long)last_time(t));
	return 0;
}

/* The buffer exists and is not freed. */
static int check_live(struct mv_trace *t, struct where *w, unsigned type, uint32_t buf)
{
	if (buf >= t->nbufs || t->bufs[buf].free_op != MV_TRACE_NONE)
		return fail(w, -EINVAL, "%s names buffer %u, which is not allocated", rec_name(type), buf);
	return 0;
}

static struct mv_trace_op *new_op(struct mv_trace *t, unsigned kind, uint64_t time_ns)
{
	struct mv_trace_op *op;

	if (grow((void **)&t->ops, &t->cap_ops, t->nops, 1, sizeof *t->ops) != 0)
		return NULL;
	op = &t->ops[t->nops];
	memset(op, 0, sizeof *op);
	op->kind = (uint8_t)kind;
	op->time_ns = time_ns;
	op->id = MV_TRACE_NONE;
	op->ref0 = t->nrefs;
	return op;
}

static int add_func(struct mv_trace *t, struct where *w, const char *name, size_t len)
{
	char *s;

	if (len == 0 || len > MV_TRACE_NAME_MAX)
		return fail(w, -EINVAL, "FUNC name of %zu bytes (1 to %d allowed)", len, MV_TRACE_NAME_MAX);
	if (memchr(name, '\0', len) != NULL)
		return fail(w, -EINVAL, "FUNC name holds a NUL byte");
	if (grow((void **)&t->funcs, &t->cap_funcs, t->nfuncs, 1, sizeof *t->funcs) != 0)
		return fail(w, -ENOMEM, "out of memory");
	s = malloc(len + 1);
	if (s == NULL)
		return fail(w, -ENOMEM, "out of memory");
	memcpy(s, name, len);
	s[len] = '\0';
	t->funcs[t->nfuncs++] = s;
	return 0;
}

static int add_alloc(struct mv_trace *t, struct where *w, uint64_t size, uint64_t site, uint32_t flags,
		     uint64_t time_ns, uint32_t *buf)
{
	struct mv_trace_op *op;
	struct mv_trace_buf *b;
	int rc;

	if (size == 0)
		return fail(w, -EINVAL, "ALLOC of buffer %u has size 0", t->nbufs);
	rc = check_time(t, w, MV_TREC_ALLOC, time_ns);
	if (rc != 0)
		return rc;
	if (grow((void **)&t->bufs, &t->cap_bufs, t->nbufs, 1, sizeof *t->bufs) != 0)
		return fail(w, -ENOMEM, "out of memory");
	op = new_op(t, MV_TREC_ALLOC, time_ns);
	if (op == NULL)
		return fail(w, -ENOMEM, "out of memory");
	op->id = t->nbufs;
	b = &t->bufs[t->nbufs];
	b->size = size;
	b->site = site;
	b->flags = flags;
	b->alloc_op = t->nops;
	b->free_op = MV_TRACE_NONE;
	if (buf != NULL)
		*buf = t->nbufs;
	t->nbufs++;
	t->nops++;
	return 0;
}

static int add_free(struct mv_trace *t, struct where *w, uint32_t buf, uint64_t time_ns)
{
	struct mv_trace_op *op;
	int rc;

	if (buf < t->nbufs && t->bufs[buf].free_op != MV_TRACE_NONE)
		return fail(w, -EINVAL, "FREE of buffer %u, which was already freed", buf);
	rc = check_live(t, w, MV_TREC_FREE, buf);
	if (rc == 0)
		rc = check_time(t, w, MV_TREC_FREE, time_ns);
	if (rc != 0)
		return rc;
	op = new_op(t, MV_TREC_FREE, time_ns);
	if (op == NULL)
		return fail(w, -ENOMEM, "out of memory");
	op->id = buf;
	t->bufs[buf].free_op = t->nops++;
	return 0;
}

/* The refs are already at t->refs[t->nrefs ..] (room made by the caller); this checks and keeps them. */
static int add_launch(struct mv_trace *t, struct where *w, uint32_t func, uint32_t stream, uint64_t time_ns,
		      uint64_t dur_ns, uint32_t nrefs)
{
	struct mv_trace_op *op;
	uint32_t i;
	int rc;

	if (func >= t->nfuncs)
		return fail(w, -EINVAL, "LAUNCH names function %u, which is not defined", func);
	if (stream > UINT16_MAX)
		return fail(w, -EINVAL, "LAUNCH on stream %u (at most %u)", stream, UINT16_MAX);
	if (nrefs > MV_TRACE_REFS_MAX)
		return fail(w, -EINVAL, "LAUNCH names %u buffers (at most %u)", nrefs, MV_TRACE_REFS_MAX);
	for (i = 0; i < nrefs; i++) {
		rc = check_live(t, w, MV_TREC_LAUNCH, t->refs[t->nrefs + i]);
		if (rc != 0)
			return rc;
	}
	rc = check_time(t, w, MV_TREC_LAUNCH, time_ns);
	if (rc != 0)
		return rc;
	op = new_op(t, MV_TREC_LAUNCH, time_ns);
	if (op == NULL)
		return fail(w, -ENOMEM, "out of memory");
	op->id = func;
	op->stream = stream;
	op->dur_ns = dur_ns;
	op->nrefs = nrefs;
	op->ref0 = t->nrefs;
	t->nrefs += nrefs;
	t->nops++;
	return 0;
}

static int add_simple(struct mv_trace *t, struct where *w, unsigned kind, uint32_t stream, uint64_t time_ns)
{
	struct mv_trace_op *op;
	int rc = check_time(t, w, kind, time_ns);

	if (rc != 0)
		return rc;
	op = new_op(t, kind, time_ns);
	if (op == NULL)
		return fail(w, -ENOMEM, "out of memory");
	op->stream = stream;
	t->nops++;
	return 0;
}

static int add_page(struct mv_trace *t, struct where *w, uint32_t buf, uint64_t dir, uint64_t time_ns,
		    uint64_t dur_ns, uint64_t waited)
{
	struct mv_trace_op *op;
	int rc;

	if (dir > 1)
		return fail(w, -EINVAL, "PAGE direction %llu (0 out, 1 in)", (unsigned long long)dir);
	if (waited > 1)
		return fail(w, -EINVAL, "PAGE waited %llu (0 or 1)", (unsigned long long)waited);
	rc = check_live(t, w, MV_TREC_PAGE, buf);
	if (rc == 0)
		rc = check_time(t, w, MV_TREC_PAGE, time_ns);
	if (rc != 0)
		return rc;
	op = new_op(t, MV_TREC_PAGE, time_ns);
	if (op == NULL)
		return fail(w, -ENOMEM, "out of memory");
	op->id = buf;
	op->dir = (uint8_t)dir;
	op->waited = (uint16_t)waited;
	op->dur_ns = dur_ns;
	t->nops++;
	return 0;
}

/* ---- the builder --------------------------------------------------------------------------------- */

int mv_trace_add_func(struct mv_trace *t, const char *name, uint32_t *func)
{
	uint32_t f = t->nfuncs;
	int rc;

	if (name == NULL)
		return -EINVAL;
	rc = add_func(t, NULL, name, strnlen(name, MV_TRACE_NAME_MAX + 1));
	if (rc == 0 && func != NULL)
		*func = f;
	return rc;
}

int mv_trace_add_alloc(struct mv_trace *t, uint64_t size, uint64_t site, uint32_t flags, uint64_t time_ns,
		       uint32_t *buf)
{
	return add_alloc(t, NULL, size, site, flags, time_ns, buf);
}

int mv_trace_add_free(struct mv_trace *t, uint32_t buf, uint64_t time_ns)
{
	return add_free(t, NULL, buf, time_ns);
}

int mv_trace_add_launch(struct mv_trace *t, uint32_t func, uint32_t stream, uint64_t time_ns, uint64_t dur_ns,
			const uint32_t *refs, uint32_t nrefs)
{
	if (nrefs > MV_TRACE_REFS_MAX || (nrefs > 0 && refs == NULL))
		return -EINVAL;
	if (grow((void **)&t->refs, &t->cap_refs, t->nrefs, nrefs, sizeof *t->refs) != 0)
		return -ENOMEM;
	if (nrefs > 0)
		memcpy(t->refs + t->nrefs, refs, nrefs * sizeof *refs);
	return add_launch(t, NULL, func, stream, time_ns, dur_ns, nrefs);
}

int mv_trace_add_sync(struct mv_trace *t, uint32_t stream, uint64_t time_ns)
{
	return add_simple(t, NULL, MV_TREC_SYNC, stream, time_ns);
}

int mv_trace_add_mark(struct mv_trace *t, uint64_t time_ns)
{
	return add_simple(t, NULL, MV_TREC_MARK, 0, time_ns);
}

int mv_trace_add_page(struct mv_trace *t, uint32_t buf, int in, uint64_t time_ns, uint64_t dur_ns, int waited)
{
	return add_page(t, NULL, buf, in != 0, time_ns, dur_ns, waited != 0);
}

/* ---- the reader ---------------------------------------------------------------------------------- */

static int read_record(struct mv_trace *t, struct where *w, unsigned type, const uint8_t *p, uint32_t len)
{
	uint32_t nrefs, i;

	switch (type) {
	case MV_TREC_FUNC:
		if (len < 4)
			return fail(w, -EINVAL, "FUNC record of %u bytes is too short (at least 5)", len);
		if (get32(p) != t->nfuncs)
			return fail(w, -EINVAL, "FUNC defines function %u where %u comes next", get32(p), t->nfuncs);
		return add_func(t, w, (const char *)p + 4, len - 4);
	case MV_TREC_ALLOC:
		if (len != ALLOC_LEN)
			return fail(w, -EINVAL, "ALLOC record of %u bytes (%u expected)", len, ALLOC_LEN);
		if (get32(p) != t->nbufs)
			return fail(w, -EINVAL, "ALLOC of buffer %u where %u comes next", get32(p), t->nbufs);
		return add_alloc(t, w, get64(p + 8), get64(p + 16), get32(p + 4), get64(p + 24), NULL);
	case MV_TREC_FREE:
		if (len != FREE_LEN)
			return fail(w, -EINVAL, "FREE record of %u bytes (%u expected)", len, FREE_LEN);
		return add_free(t, w, get32(p), get64(p + 8));
	case MV_TREC_LAUNCH:
		if (len < LAUNCH_LEN)
			return fail(w, -EINVAL, "LAUNCH record of %u bytes is too short (at least %u)", len,
				    LAUNCH_LEN);
		nrefs = get16(p + 6);
		if ((len - LAUNCH_LEN) / 4 < nrefs)
			return fail(w, -EINVAL, "LAUNCH names %u buffers but its payload holds %u", nrefs,
				    (len - LAUNCH_LEN) / 4);
		if (len != LAUNCH_LEN + 4 * nrefs)
			return fail(w, -EINVAL, "LAUNCH record of %u bytes for %u buffers (%u expected)", len, nrefs,
				    LAUNCH_LEN + 4 * nrefs);
		if (grow((void **)&t->refs, &t->cap_refs, t->nrefs, nrefs, sizeof *t->refs) != 0)
			return fail(w, -ENOMEM, "out of memory");
		for (i = 0; i < nrefs; i++)
			t->refs[t->nrefs + i] = get32(p + LAUNCH_LEN + 4 * i);
		return add_launch(t, w, get32(p), get16(p + 4), get64(p + 8), get64(p + 16), nrefs);
	case MV_TREC_SYNC:
		if (len != SYNC_LEN)
			return fail(w, -EINVAL, "SYNC record of %u bytes (%u expected)", len, SYNC_LEN);
		return add_simple(t, w, MV_TREC_SYNC, get32(p), get64(p + 8));
	case MV_TREC_MARK:
		if (len != MARK_LEN)
			return fail(w, -EINVAL, "MARK record of %u bytes (%u expected)", len, MARK_LEN);
		return add_simple(t, w, MV_TREC_MARK, 0, get64(p + 8));
	case MV_TREC_PAGE:
		if (len != PAGE_LEN)
			return fail(w, -EINVAL, "PAGE record of %u bytes (%u expected)", len, PAGE_LEN);
		return add_page(t, w, get32(p), get32(p + 4), get64(p + 8), get64(p + 16), get64(p + 24));
	default:
		return fail(w, -EINVAL, "unknown record type %u", type);
	}
}

int mv_trace_read_mem(const void *buf, size_t len, struct mv_trace **out, char *err, size_t errlen)
{
	const uint8_t *p = buf;
	struct where w = {err, errlen, 0, 1};
	struct mv_trace *t;
	uint64_t records = 0;
	uint32_t version, hsize;
	size_t off;
	int rc = 0, ended = 0;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	*out = NULL;
	if (buf == NULL && len > 0)
		return -EINVAL;
	if (len < MV_TRACE_HEADER)
		return fail(&w, -EINVAL, "a header needs %d bytes, the file has %zu", MV_TRACE_HEADER, len);
	if (memcmp(p, MV_TRACE_MAGIC, 8) != 0)
		return fail(&w, -EINVAL, "bad magic: not a memvirt trace");
	version = get32(p + 8);
	w.off = 8;
	if (version != MV_TRACE_VERSION)
		return fail(&w, -EINVAL, "trace version %u (this reader knows %d)", version, MV_TRACE_VERSION);
	hsize = get32(p + 12);
	w.off = 12;
	if (hsize < MV_TRACE_HEADER || hsize > len)
		return fail(&w, -EINVAL, "header size %u (at least %d, within the file's %zu bytes)",
			    hsize, MV_TRACE_HEADER, len);
	t = mv_trace_new(get64(p + 16), get32(p + 24));
	if (t == NULL)
		return -ENOMEM;
	if (t->flags & MV_TRACE_F_RANK) {
		t->rank = get32(p + 28);
		if (t->rank == MV_TRACE_NONE) {
			w.off = 28;
			rc = fail(&w, -EINVAL, "the header's rank is %u, which stands for no rank", t->rank);
			goto err_trace;
		}
	}

	for (off = hsize; off < len;) {
		unsigned type;
		uint32_t rlen;

		w.off = off;
		if (ended) {
			rc = fail(&w, -EINVAL, "%zu bytes after END", len - off);
			goto err_trace;
		}
		/* A head or payload the file ends inside is where a killed writer stopped. */
		if (len - off < MV_TRACE_RECORD_HEAD)
			break;
		type = get16(p + off);
		rlen = get32(p + off + 4);
		if (rlen > len - off - MV_TRACE_RECORD_HEAD)
			break;
		if (type == MV_TREC_END) {
			if (rlen != END_LEN) {
				rc = fail(&w, -EINVAL, "END record of %u bytes (%u expected)", rlen, END_LEN);
				goto err_trace;
			}
			if (get64(p + off + MV_TRACE_RECORD_HEAD) != records) {
				rc = fail(&w, -EINVAL, "END counts %llu records, the file has %llu",
					  (unsigned long long)get64(p + off + MV_TRACE_RECORD_HEAD),
					  (unsigned long long)records);
				goto err_trace;
			}
			ended = 1;
		} else {
			if (t->nops >= COUNT_MAX || t->nrefs >= COUNT_MAX - MV_TRACE_REFS_MAX) {
				rc = fail(&w, -EINVAL, "too many records");
				goto err_trace;
			}
			rc = read_record(t, &w, type, p + off + MV_TRACE_RECORD_HEAD, rlen);
			if (rc != 0)
				goto err_trace;
		}
		records++;
		off += MV_TRACE_RECORD_HEAD + (size_t)rlen;
	}
	t->truncated = !ended;
	*out = t;
	return 0;

err_trace:
	mv_trace_free(t);
	return rc;
}

/* ---- the encoders --------------------------------------------------------------------------------- */

static size_t head(uint8_t *out, size_t cap, unsigned type, size_t len)
{
	if (len > UINT32_MAX || cap < MV_TRACE_RECORD_HEAD || cap - MV_TRACE_RECORD_HEAD < len)
		return 0;
	put16(out, (uint16_t)type);
	put16(out + 2, 0);
	put32(out + 4, (uint32_t)len);
	return MV_TRACE_RECORD_HEAD + len;
}

size_t mv_trace_encode_header_rank(uint8_t *out, size_t cap, uint64_t device_total, uint32_t flags,
				   uint32_t rank)
{
	if (cap < MV_TRACE_HEADER)
		return 0;
	flags &= ~MV_TRACE_F_RANK;
	if (rank != MV_TRACE_NONE)
		flags |= MV_TRACE_F_RANK;
	memcpy(out, MV_TRACE_MAGIC, 8);
	put32(out + 8, MV_TRACE_VERSION);
	put32(out + 12, MV_TRACE_HEADER);
	put64(out + 16, device_total);
	put32(out + 24, flags);
	put32(out + 28, rank != MV_TRACE_NONE ? rank : 0);
	return MV_TRACE_HEADER;
}

size_t mv_trace_encode_header(uint8_t *out, size_t cap, uint64_t device_total, uint32_t flags)
{
	return mv_trace_encode_header_rank(out, cap, device_total, flags, MV_TRACE_NONE);
}

int mv_trace_path_expand(const char *pattern, uint32_t pid, uint32_t rank, char *out, size_t len)
{
	size_t n = 0;
	int expanded = 0, w;
	char num[16];

	for (const char *p = pattern; *p != '\0'; p++) {
		const char *piece = num;

		if (*p != '%') {
			num[0] = *p;
			num[1] = '\0';
		} else if (p[1] == '%') {
			piece = "%";
			p++;
		} else if (p[1] == 'p' || p[1] == 'r') {
			if (p[1] == 'r' && rank == MV_TRACE_NONE)
				piece = "x";
			else
				snprintf(num, sizeof(num), "%u", p[1] == 'p' ? pid : rank);
			expanded++;
			p++;
		} else {
			return -EINVAL;
		}
		w = snprintf(out + n, len - n, "%s", piece);
		if (w < 0 || (size_t)w >= len - n)
			return -ENAMETOOLONG;
		n += (size_t)w;
	}
	if (len == 0)
		return -ENAMETOOLONG;
	out[n] = '\0';
	return expanded;
}

size_t mv_trace_encode_func(uint8_t *out, size_t cap, uint32_t func, const char *name)
{
	size_t n = name != NULL ? strnlen(name, MV_TRACE_NAME_MAX + 1) : 0, sz;

	if (n == 0 || n > MV_TRACE_NAME_MAX)
		return 0;
	sz = head(out, cap, MV_TREC_FUNC, 4 + n);
	if (sz == 0)
		return 0;
	put32(out + 8, func);
	memcpy(out + 12, name, n);
	return sz;
}

size_t mv_trace_encode_alloc(uint8_t *out, size_t cap, uint32_t buf, uint32_t flags, uint64_t size,
			     uint64_t site, uint64_t time_ns)
{
	size_t sz = head(out, cap, MV_TREC_ALLOC, ALLOC_LEN);

	if (sz == 0)
		return 0;
	put32(out + 8, buf);
	put32(out + 12, flags);
	put64(out + 16, size);
	put64(out + 24, site);
	put64(out + 32, time_ns);
	return sz;
}

static size_t encode_pair(uint8_t *out, size_t cap, unsigned type, uint32_t a, uint64_t time_ns)
{
	size_t sz = head(out, cap, type, 16);

	if (sz == 0)
		return 0;
	put32(out + 8, a);
	put32(out + 12, 0);
	put64(out + 16, time_ns);
	return sz;
}

size_t mv_trace_encode_free(uint8_t *out, size_t cap, uint32_t buf, uint64_t time_ns)
{
	return encode_pair(out, cap, MV_TREC_FREE, buf, time_ns);
}

size_t mv_trace_encode_launch(uint8_t *out, size_t cap, uint32_t func, uint32_t stream, uint64_t time_ns,
			      uint64_t dur_ns, const uint32_t *refs, uint32_t nrefs)
{
	size_t sz, i;

	if (stream > UINT16_MAX || nrefs > MV_TRACE_REFS_MAX || (nrefs > 0 && refs == NULL))
		return 0;
	sz = head(out, cap, MV_TREC_LAUNCH, LAUNCH_LEN + 4 * (size_t)nrefs);
	if (sz == 0)
		return 0;
	put32(out + 8, func);
	put16(out + 12, (uint16_t)stream);
	put16(out + 14, (uint16_t)nrefs);
	put64(out + 16, time_ns);
	put64(out + 24, dur_ns);
	for (i = 0; i < nrefs; i++)
		put32(out + 32 + 4 * i, refs[i]);
	return sz;
}

size_t mv_trace_encode_sync(uint8_t *out, size_t cap, uint32_t stream, uint64_t time_ns)
{
	return encode_pair(out, cap, MV_TREC_SYNC, stream, time_ns);
}

size_t mv_trace_encode_mark(uint8_t *out, size_t cap, uint64_t time_ns)
{
	return encode_pair(out, cap, MV_TREC_MARK, 0, time_ns);
}

size_t mv_trace_encode_page(uint8_t *out, size_t cap, uint32_t buf, int in, uint64_t time_ns, uint64_t dur_ns,
			    int waited)
{
	size_t sz = head(out, cap, MV_TREC_PAGE, PAGE_LEN);

	if (sz == 0)
		return 0;
	put32(out + 8, buf);
	put32(out + 12, in != 0);
	put64(out + 16, time_ns);
	put64(out + 24, dur_ns);
	put64(out + 32, waited != 0);
	return sz;
}

size_t mv_trace_encode_end(uint8_t *out, size_t cap, uint64_t records)
{
	size_t sz = head(out, cap, MV_TREC_END, END_LEN);

	if (sz == 0)
		return 0;
	put64(out + 8, records);
	return sz;
}

static size_t op_size(const struct mv_trace_op *op)
{
	switch (op->kind) {
	case MV_TREC_ALLOC:
	case MV_TREC_PAGE:
		return MV_TRACE_RECORD_HEAD + 32;
	case MV_TREC_LAUNCH:
		return MV_TRACE_LAUNCH_SIZE(op->nrefs);
	default:
		return MV_TRACE_RECORD_HEAD + 16;
	}
}

static size_t encode_op(const struct mv_trace *t, const struct mv_trace_op *op, uint8_t *out, size_t cap)
{
	const struct mv_trace_buf *b;

	switch (op->kind) {
	case MV_TREC_ALLOC:
		b = &t->bufs[op->id];
		return mv_trace_encode_alloc(out, cap, op->id, b->flags, b->size, b->site, op->time_ns);
	case MV_TREC_FREE:
		return mv_trace_encode_free(out, cap, op->id, op->time_ns);
	case MV_TREC_LAUNCH:
		/* A trace whose launches name no buffers has no refs array at all: no offset into
		 * NULL. */
		return mv_trace_encode_launch(out, cap, op->id, op->stream, op->time_ns, op->dur_ns,
					      op->nrefs > 0 ? t->refs + op->ref0 : NULL, op->nrefs);
	case MV_TREC_SYNC:
		return mv_trace_encode_sync(out, cap, op->stream, op->time_ns);
	case MV_TREC_MARK:
		return mv_trace_encode_mark(out, cap, op->time_ns);
	case MV_TREC_PAGE:
		return mv_trace_encode_page(out, cap, op->id, op->dir, op->time_ns, op->dur_ns, op->waited);
	default:
		return 0;
	}
}

uint8_t *mv_trace_encode(const struct mv_trace *t, size_t *len)
{
	size_t total = MV_TRACE_HEADER + MV_TRACE_RECORD_HEAD + END_LEN, off, n;
	uint64_t records = 0;
	uint32_t i, funcs = 0;
	uint8_t *out;

	if (t == NULL || len == NULL)
		return NULL;
	for (i = 0; i < t->nfuncs; i++)
		total += MV_TRACE_RECORD_HEAD + 4 + strlen(t->funcs[i]);
	for (i = 0; i < t->nops; i++)
		total += op_size(&t->ops[i]);
	out = malloc(total);
	if (out == NULL)
		return NULL;
	off = mv_trace_encode_header_rank(out, total, t->device_total, t->flags, t->rank);
	for (i = 0; i <= t->nops; i++) {
		const struct mv_trace_op *op = i < t->nops ? &t->ops[i] : NULL;
		/* Functions are numbered in FUNC order, so one is written with every function before it. */
		uint32_t upto = op == NULL ? t->nfuncs : op->kind == MV_TREC_LAUNCH ? op->id + 1 : 0;

		while (funcs < upto && funcs < t->nfuncs) {
			n = mv_trace_encode_func(out + off, total - off, funcs, t->funcs[funcs]);
			if (n == 0)
				goto err_out;
			off += n;
			funcs++;
			records++;
		}
		if (op == NULL)
			break;
		n = encode_op(t, op, out + off, total - off);
		if (n == 0)
			goto err_out;
		off += n;
		records++;
	}
	n = mv_trace_encode_end(out + off, total - off, records);
	if (n == 0)
		goto err_out;
	*len = off + n;
	return out;

err_out:
	free(out);
	return NULL;
}
