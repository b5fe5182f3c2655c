/* Traces: the builder, the encoders and the strict reader (round trips, every malformed case, cuts). */
#include <config.h>

#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policies/trace.h"
#include "tests/unit/policytest.h"

/* A trace using every record type. */
static struct mv_trace *sample(void)
{
	struct mv_trace *t = mv_trace_new(80 * PT_GIB, MV_TRACE_F_MODEL_ONLY);
	uint32_t f0, f1, b0, b1, b2, refs[3];

	ck_assert_ptr_nonnull(t);
	ck_assert_int_eq(mv_trace_add_func(t, "gemm", &f0), 0);
	ck_assert_int_eq(mv_trace_add_func(t, "relu_fwd", &f1), 0);
	ck_assert_int_eq(mv_trace_add_alloc(t, 4 * PT_MIB, 0xabc, 0, 100, &b0), 0);
	ck_assert_int_eq(mv_trace_add_alloc(t, 512, 0xdef, MV_TBUF_PINNED, 110, &b1), 0);
	ck_assert_int_eq(mv_trace_add_mark(t, 115), 0);
	refs[0] = b0;
	refs[1] = b1;
	ck_assert_int_eq(mv_trace_add_launch(t, f1, 3, 120, 777, refs, 2), 0);
	ck_assert_int_eq(mv_trace_add_alloc(t, 8 * PT_MIB, 0xabc, 0, 130, &b2), 0);
	refs[2] = b2;
	ck_assert_int_eq(mv_trace_add_launch(t, f0, 0, 130, 0, refs, 3), 0);
	ck_assert_int_eq(mv_trace_add_launch(t, f0, 65535, 131, 5, NULL, 0), 0);
	ck_assert_int_eq(mv_trace_add_page(t, b0, 0, 140, 1000, 0), 0);
	ck_assert_int_eq(mv_trace_add_page(t, b0, 1, 1200, 900, 1), 0);
	ck_assert_int_eq(mv_trace_add_sync(t, 7, 2500), 0);
	ck_assert_int_eq(mv_trace_add_free(t, b0, 2600), 0);
	ck_assert_int_eq(mv_trace_add_mark(t, 2600), 0);
	ck_assert_uint_eq(b0, 0);
	ck_assert_uint_eq(b2, 2);
	return t;
}

static void assert_same(const struct mv_trace *a, const struct mv_trace *b)
{
	uint32_t i;

	ck_assert_uint_eq(a->device_total, b->device_total);
	ck_assert_uint_eq(a->flags, b->flags);
	ck_assert_uint_eq(a->nbufs, b->nbufs);
	ck_assert_uint_eq(a->nops, b->nops);
	ck_assert_uint_eq(a->nrefs, b->nrefs);
	ck_assert_uint_eq(a->nfuncs, b->nfuncs);
	for (i = 0; i < a->nfuncs; i++)
		ck_assert_str_eq(a->funcs[i], b->funcs[i]);
	for (i = 0; i < a->nbufs; i++) {
		ck_assert_uint_eq(a->bufs[i].size, b->bufs[i].size);
		ck_assert_uint_eq(a->bufs[i].site, b->bufs[i].site);
		ck_assert_uint_eq(a->bufs[i].flags, b->bufs[i].flags);
		ck_assert_uint_eq(a->bufs[i].alloc_op, b->bufs[i].alloc_op);
		ck_assert_uint_eq(a->bufs[i].free_op, b->bufs[i].free_op);
	}
	for (i = 0; i < a->nops; i++) {
		const struct mv_trace_op *x = &a->ops[i], *y = &b->ops[i];

		ck_assert_uint_eq(x->kind, y->kind);
		ck_assert_uint_eq(x->dir, y->dir);
		ck_assert_uint_eq(x->waited, y->waited);
		ck_assert_uint_eq(x->stream, y->stream);
		ck_assert_uint_eq(x->id, y->id);
		ck_assert_uint_eq(x->nrefs, y->nrefs);
		ck_assert_uint_eq(x->ref0, y->ref0);
		ck_assert_uint_eq(x->time_ns, y->time_ns);
		ck_assert_uint_eq(x->dur_ns, y->dur_ns);
	}
	for (i = 0; i < a->nrefs; i++)
		ck_assert_uint_eq(a->refs[i], b->refs[i]);
}

START_TEST(round_trip)
{
	struct mv_trace *t = sample(), *r = NULL;
	size_t len, len2;
	uint8_t *img = mv_trace_encode(t, &len), *img2;
	char err[256];

	ck_assert_ptr_nonnull(img);
	/* header 32; FUNC gemm 16, relu_fwd 20; ALLOC 40 x3; MARK 24 x2; LAUNCH 40, 44, 32; PAGE 40 x2;
	 * SYNC 24; FREE 24; END 16 */
	ck_assert_uint_eq(len, 32 + 16 + 20 + 120 + 48 + 40 + 44 + 32 + 80 + 24 + 24 + 16);
	ck_assert_int_eq(mv_trace_read_mem(img, len, &r, err, sizeof err), 0);
	ck_assert_int_eq(r->truncated, 0);
	assert_same(t, r);
	ck_assert_uint_eq(r->ops[6].stream, 65535);
	ck_assert_uint_eq(r->bufs[0].free_op, 10);
	ck_assert_uint_eq(r->bufs[1].free_op, MV_TRACE_NONE);
	img2 = mv_trace_encode(r, &len2);
	ck_assert_uint_eq(len, len2);
	ck_assert_mem_eq(img, img2, len);
	free(img);
	free(img2);
	mv_trace_free(t);
	mv_trace_free(r);
}
END_TEST

/* Launches that name no buffers leave the trace without a refs array; encoding them must not
 * offset into it. That is undefined behaviour clang's UBSan reports (gcc's does not check it), so
 * the fuzz corpus keeps the input that found it, tests/fuzz/corpus/trace/crash-launch-without-refs. */
START_TEST(round_trip_no_refs)
{
	struct mv_trace *t = mv_trace_new(1 << 20, 0), *r = NULL;
	uint32_t f;
	size_t len;
	uint8_t *img;
	char err[256];

	ck_assert_ptr_nonnull(t);
	ck_assert_int_eq(mv_trace_add_func(t, "k", &f), 0);
	ck_assert_int_eq(mv_trace_add_launch(t, f, 0, 1, 2, NULL, 0), 0);
	ck_assert_ptr_null(t->refs);
	img = mv_trace_encode(t, &len);
	ck_assert_ptr_nonnull(img);
	ck_assert_int_eq(mv_trace_read_mem(img, len, &r, err, sizeof err), 0);
	assert_same(t, r);
	free(img);
	mv_trace_free(t);
	mv_trace_free(r);
}
END_TEST

START_TEST(round_trip_generated)
{
	struct pt_net net = pt_net_lstm(5, PT_MIB, 3 * PT_MIB);
	struct pt_gen g;
	struct mv_trace *r = NULL;
	size_t len;
	uint8_t *img;
	char err[256];

	net.mark = 1;
	pt_gen_init(&g, &net, PT_GIB);
	pt_gen_iterations(&g, 3);
	img = mv_trace_encode(g.t, &len);
	ck_assert_ptr_nonnull(img);
	ck_assert_int_eq(mv_trace_read_mem(img, len, &r, err, sizeof err), 0);
	assert_same(g.t, r);
	free(img);
	mv_trace_free(r);
	pt_gen_free(&g);
}
END_TEST

/* Functions first used out of number order are still written in number order. */
START_TEST(funcs_written_in_order)
{
	struct mv_trace *t = mv_trace_new(0, 0), *r = NULL;
	uint32_t f, b;
	size_t len;
	uint8_t *img;
	char err[256];

	ck_assert_int_eq(mv_trace_add_func(t, "a", &f), 0);
	ck_assert_int_eq(mv_trace_add_func(t, "b", &f), 0);
	ck_assert_int_eq(mv_trace_add_func(t, "never_launched", &f), 0);
	ck_assert_int_eq(mv_trace_add_alloc(t, 10, 1, 0, 0, &b), 0);
	ck_assert_int_eq(mv_trace_add_launch(t, 1, 0, 1, 1, &b, 1), 0);
	ck_assert_int_eq(mv_trace_add_launch(t, 0, 0, 2, 1, &b, 1), 0);
	img = mv_trace_encode(t, &len);
	ck_assert_int_eq(mv_trace_read_mem(img, len, &r, err, sizeof err), 0);
	assert_same(t, r);
	free(img);
	mv_trace_free(t);
	mv_trace_free(r);
}
END_TEST

/* ---- malformed files: each names the offset of the bad record and what is wrong ---------------------- */

/* A file being written record by record. */
struct img {
	uint8_t b[4096];
	size_t n;
	uint64_t records;
};

static void img_init(struct img *m)
{
	memset(m, 0, sizeof *m);
	m->n = mv_trace_encode_header(m->b, sizeof m->b, PT_GIB, 0);
	ck_assert_uint_eq(m->n, MV_TRACE_HEADER);
}

static size_t img_add(struct img *m, size_t sz)
{
	size_t at = m->n;

	ck_assert_uint_gt(sz, 0);
	m->n += sz;
	m->records++;
	return at;
}

static size_t add_func(struct img *m, uint32_t f, const char *name)
{
	return img_add(m, mv_trace_encode_func(m->b + m->n, sizeof m->b - m->n, f, name));
}

static size_t add_alloc(struct img *m, uint32_t buf, uint64_t time)
{
	return img_add(m, mv_trace_encode_alloc(m->b + m->n, sizeof m->b - m->n, buf, 0, PT_MIB, 7, time));
}

static size_t add_launch(struct img *m, uint32_t f, uint64_t time, const uint32_t *refs, uint32_t n)
{
	return img_add(m, mv_trace_encode_launch(m->b + m->n, sizeof m->b - m->n, f, 0, time, 10, refs, n));
}

static size_t add_free(struct img *m, uint32_t buf, uint64_t time)
{
	return img_add(m, mv_trace_encode_free(m->b + m->n, sizeof m->b - m->n, buf, time));
}

static size_t add_end(struct img *m)
{
	size_t at = m->n;

	m->n += mv_trace_encode_end(m->b + m->n, sizeof m->b - m->n, m->records);
	return at;
}

/* A valid prefix: FUNC 0 "k" at 32, ALLOC 0 at 45, ALLOC 1 at 85; 125 bytes. */
static void img_prefix(struct img *m)
{
	img_init(m);
	ck_assert_uint_eq(add_func(m, 0, "k"), 32);
	ck_assert_uint_eq(add_alloc(m, 0, 10), 45);
	ck_assert_uint_eq(add_alloc(m, 1, 20), 85);
}

static void expect_error(const struct img *m, const char *what)
{
	struct mv_trace *t = (struct mv_trace *)0x1;
	char err[256];

	ck_assert_int_eq(mv_trace_read_mem(m->b, m->n, &t, err, sizeof err), -EINVAL);
	ck_assert_ptr_null(t);
	if (strstr(err, what) == NULL)
		ck_abort_msg("error \"%s\" does not say \"%s\"", err, what);
}

START_TEST(bad_magic)
{
	struct img m;

	img_prefix(&m);
	add_end(&m);
	m.b[3] = 'X';
	expect_error(&m, "offset 0: bad magic");
}
END_TEST

START_TEST(bad_version)
{
	struct img m;

	img_prefix(&m);
	add_end(&m);
	m.b[8] = 2;
	expect_error(&m, "offset 8: trace version 2");
}
END_TEST

START_TEST(bad_header_size)
{
	struct img m;

	img_prefix(&m);
	add_end(&m);
	m.b[12] = 16;
	expect_error(&m, "offset 12: header size 16");
	m.b[12] = 0;
	m.b[13] = 0x10; /* 4096, past the end */
	expect_error(&m, "offset 12: header size 4096");
}
END_TEST

START_TEST(short_file)
{
	struct img m;

	img_init(&m);
	m.n = 20;
	expect_error(&m, "offset 0: a header needs 32 bytes, the file has 20");
}
END_TEST

/* A header longer than 32 bytes is skipped: a later version may add fields there. */
START_TEST(longer_header_skipped)
{
	struct img m;
	struct mv_trace *t = NULL;
	char err[256];

	img_init(&m);
	m.b[12] = 40;
	m.n = 40;
	add_func(&m, 0, "k");
	add_end(&m);
	ck_assert_int_eq(mv_trace_read_mem(m.b, m.n, &t, err, sizeof err), 0);
	ck_assert_uint_eq(t->nfuncs, 1);
	mv_trace_free(t);
}
END_TEST

START_TEST(unknown_type)
{
	struct img m;
	size_t at;

	img_prefix(&m);
	at = add_free(&m, 0, 30);
	ck_assert_uint_eq(at, 125);
	m.b[at] = 99;
	add_end(&m);
	expect_error(&m, "offset 125: unknown record type 99");
}
END_TEST

START_TEST(length_too_short)
{
	struct img m;
	size_t at;

	img_prefix(&m);
	at = add_alloc(&m, 2, 30);
	m.b[at + 4] = 24; /* 24 of the 32 payload bytes, and the rest read as the next record */
	expect_error(&m, "offset 125: ALLOC record of 24 bytes (32 expected)");
}
END_TEST

START_TEST(length_too_long)
{
	struct img m;
	size_t at;

	img_prefix(&m);
	at = add_free(&m, 0, 30);
	m.b[at + 4] = 20;
	m.n += 4;
	add_end(&m);
	expect_error(&m, "offset 125: FREE record of 20 bytes (16 expected)");
}
END_TEST

START_TEST(launch_length_mismatch)
{
	struct img m;
	uint32_t refs[2] = {0, 1};
	size_t at;

	img_prefix(&m);
	at = add_launch(&m, 0, 30, refs, 2);
	m.b[at + 14] = 5; /* nrefs 5, payload for 2 */
	add_end(&m);
	expect_error(&m, "offset 125: LAUNCH names 5 buffers but its payload holds 2");
	m.b[at + 14] = 1; /* nrefs 1, payload for 2 */
	expect_error(&m, "offset 125: LAUNCH record of 32 bytes for 1 buffers (28 expected)");
	m.b[at + 4] = 20; /* shorter than the fixed part */
	expect_error(&m, "offset 125: LAUNCH record of 20 bytes is too short");
}
END_TEST

START_TEST(unallocated_buffer)
{
	struct img m;
	uint32_t refs[2] = {1, 17};

	img_prefix(&m);
	add_launch(&m, 0, 30, refs, 2);
	add_end(&m);
	expect_error(&m, "offset 125: LAUNCH names buffer 17, which is not allocated");
}
END_TEST

START_TEST(use_after_free)
{
	struct img m;
	uint32_t refs[1] = {0};

	img_prefix(&m);
	add_free(&m, 0, 30);
	add_launch(&m, 0, 31, refs, 1); /* at 149 */
	add_end(&m);
	expect_error(&m, "offset 149: LAUNCH names buffer 0, which is not allocated");
}
END_TEST

START_TEST(double_free)
{
	struct img m;

	img_prefix(&m);
	add_free(&m, 1, 30);
	add_free(&m, 1, 31);
	add_end(&m);
	expect_error(&m, "offset 149: FREE of buffer 1, which was already freed");
}
END_TEST

START_TEST(free_never_allocated)
{
	struct img m;

	img_prefix(&m);
	add_free(&m, 9, 30);
	add_end(&m);
	expect_error(&m, "offset 125: FREE names buffer 9, which is not allocated");
}
END_TEST

START_TEST(alloc_out_of_order)
{
	struct img m;

	img_prefix(&m);
	add_alloc(&m, 5, 30);
	add_end(&m);
	expect_error(&m, "offset 125: ALLOC of buffer 5 where 2 comes next");
}
END_TEST

START_TEST(undefined_function)
{
	struct img m;

	img_prefix(&m);
	add_launch(&m, 1, 30, NULL, 0);
	add_end(&m);
	expect_error(&m, "offset 125: LAUNCH names function 1, which is not defined");
}
END_TEST

START_TEST(name_too_long)
{
	struct img m;
	char name[MV_TRACE_NAME_MAX + 2];
	size_t at;

	memset(name, 'x', sizeof name - 1);
	name[sizeof name - 1] = '\0';
	ck_assert_uint_eq(mv_trace_encode_func(NULL, 0, 0, name), 0);
	img_prefix(&m);
	name[MV_TRACE_NAME_MAX] = '\0';
	at = add_func(&m, 1, name);
	m.b[at + 4] += 1; /* a 256-byte name */
	m.n += 1;
	add_end(&m);
	expect_error(&m, "offset 125: FUNC name of 256 bytes");
}
END_TEST

START_TEST(name_empty)
{
	struct img m;
	size_t at;

	img_prefix(&m);
	at = add_func(&m, 1, "a");
	m.b[at + 4] = 4;
	m.n -= 1;
	add_end(&m);
	expect_error(&m, "offset 125: FUNC name of 0 bytes");
	m.b[at + 4] = 3;
	m.n -= 1;
	add_end(&m);
	expect_error(&m, "offset 125: FUNC record of 3 bytes is too short");
}
END_TEST

START_TEST(name_with_nul)
{
	struct img m;
	size_t at;

	img_prefix(&m);
	at = add_func(&m, 1, "ab");
	m.b[at + 12] = 0;
	add_end(&m);
	expect_error(&m, "offset 125: FUNC name holds a NUL byte");
}
END_TEST

START_TEST(time_decreasing)
{
	struct img m;

	img_prefix(&m);
	add_free(&m, 0, 19);
	add_end(&m);
	expect_error(&m, "offset 125: FREE time 19 is before the previous record's 20");
}
END_TEST

START_TEST(bad_page_fields)
{
	struct img m;
	size_t at;

	img_prefix(&m);
	at = img_add(&m, mv_trace_encode_page(m.b + m.n, sizeof m.b - m.n, 0, 1, 30, 5, 0));
	m.b[at + 12] = 2;
	add_end(&m);
	expect_error(&m, "offset 125: PAGE direction 2");
}
END_TEST

START_TEST(end_count_and_trailing)
{
	struct img m;
	size_t at;

	img_prefix(&m);
	at = add_end(&m);
	m.b[at + 8] = 2; /* three records before it */
	expect_error(&m, "offset 125: END counts 2 records, the file has 3");
	m.b[at + 8] = 3;
	m.b[at + 4] = 16;
	m.n += 8;
	expect_error(&m, "offset 125: END record of 16 bytes (8 expected)");
	m.b[at + 4] = 8;
	expect_error(&m, "offset 141: 8 bytes after END");
}
END_TEST

/* ---- truncation --------------------------------------------------------------------------------------- */

/* Every cut keeps exactly the complete records before it and says the file was cut short. */
START_TEST(every_cut_is_truncation)
{
	struct mv_trace *t = sample(), *r;
	size_t len, cut, off, i;
	uint8_t *img = mv_trace_encode(t, &len);
	size_t bounds[64];
	uint32_t nb = 0, funcs_before[64], ops_before[64];
	char err[256];

	/* Where each record ends, and what is complete there. */
	for (off = MV_TRACE_HEADER; off < len;) {
		uint32_t rlen = (uint32_t)img[off + 4] | (uint32_t)img[off + 5] << 8;
		unsigned type = img[off];

		funcs_before[nb] = nb == 0 ? 0 : funcs_before[nb - 1];
		ops_before[nb] = nb == 0 ? 0 : ops_before[nb - 1];
		if (type == MV_TREC_FUNC)
			funcs_before[nb]++;
		else if (type != MV_TREC_END)
			ops_before[nb]++;
		off += MV_TRACE_RECORD_HEAD + rlen;
		bounds[nb++] = off;
	}
	ck_assert_uint_eq(bounds[nb - 1], len);
	for (cut = MV_TRACE_HEADER; cut < len; cut++) {
		uint32_t want_ops = 0, want_funcs = 0;

		for (i = 0; i < nb && bounds[i] <= cut; i++) {
			want_ops = ops_before[i];
			want_funcs = funcs_before[i];
		}
		r = NULL;
		ck_assert_msg(mv_trace_read_mem(img, cut, &r, err, sizeof err) == 0, "cut %zu: %s", cut, err);
		ck_assert_int_eq(r->truncated, 1);
		ck_assert_uint_eq(r->nops, want_ops);
		ck_assert_uint_eq(r->nfuncs, want_funcs);
		mv_trace_free(r);
	}
	free(img);
	mv_trace_free(t);
}
END_TEST

/* Random corruption is either read or refused with an offset, never anything else. */
START_TEST(corruption_is_refused_cleanly)
{
	struct pt_net net = pt_net_layered(6, PT_MIB, PT_MIB);
	struct pt_gen g;
	uint64_t seed = 0x1234567;
	size_t len, i;
	uint8_t *img, *copy;
	char err[256];
	int refused = 0;

	pt_gen_init(&g, &net, PT_GIB);
	pt_gen_iterations(&g, 2);
	img = mv_trace_encode(g.t, &len);
	copy = malloc(len);
	for (i = 0; i < 3000; i++) {
		struct mv_trace *r = NULL;
		uint32_t flips = 1 + pt_rand_below(&seed, 4), j;
		size_t n = len - pt_rand_below(&seed, 64);
		int rc;

		memcpy(copy, img, len);
		for (j = 0; j < flips; j++)
			copy[MV_TRACE_HEADER + pt_rand_below(&seed, (uint32_t)(len - MV_TRACE_HEADER))] ^=
				(uint8_t)(1 + pt_rand_below(&seed, 255));
		rc = mv_trace_read_mem(copy, n, &r, err, sizeof err);
		if (rc == 0) {
			ck_assert_ptr_nonnull(r);
			mv_trace_free(r);
		} else {
			ck_assert_int_eq(rc, -EINVAL);
			ck_assert_ptr_null(r);
			ck_assert_msg(strncmp(err, "offset ", 7) == 0, "error without an offset: %s", err);
			refused++;
		}
	}
	ck_assert_int_gt(refused, 1000);
	free(copy);
	free(img);
	pt_gen_free(&g);
}
END_TEST

/* ---- the builder and the encoders ------------------------------------------------------------------- */

START_TEST(builder_checks)
{
	struct mv_trace *t = mv_trace_new(0, 0);
	uint32_t f, b, bad = 5;
	char longname[MV_TRACE_NAME_MAX + 2];

	memset(longname, 'y', sizeof longname - 1);
	longname[sizeof longname - 1] = '\0';
	ck_assert_int_eq(mv_trace_add_func(t, "", &f), -EINVAL);
	ck_assert_int_eq(mv_trace_add_func(t, longname, &f), -EINVAL);
	ck_assert_int_eq(mv_trace_add_func(t, "k", &f), 0);
	ck_assert_int_eq(mv_trace_add_alloc(t, 0, 1, 0, 10, &b), -EINVAL);
	ck_assert_int_eq(mv_trace_add_alloc(t, 100, 1, 0, 10, &b), 0);
	ck_assert_int_eq(mv_trace_add_launch(t, 1, 0, 10, 1, &b, 1), -EINVAL);
	ck_assert_int_eq(mv_trace_add_launch(t, f, 0, 10, 1, &bad, 1), -EINVAL);
	ck_assert_int_eq(mv_trace_add_launch(t, f, 65536, 10, 1, &b, 1), -EINVAL);
	ck_assert_int_eq(mv_trace_add_launch(t, f, 0, 9, 1, &b, 1), -EINVAL);
	ck_assert_int_eq(mv_trace_add_free(t, 1, 10), -EINVAL);
	ck_assert_int_eq(mv_trace_add_free(t, b, 10), 0);
	ck_assert_int_eq(mv_trace_add_free(t, b, 10), -EINVAL);
	ck_assert_int_eq(mv_trace_add_page(t, b, 1, 11, 1, 0), -EINVAL);
	/* Nothing refused was kept. */
	ck_assert_uint_eq(t->nops, 2);
	ck_assert_uint_eq(t->nrefs, 0);
	ck_assert_uint_eq(t->nfuncs, 1);
	mv_trace_free(t);
}
END_TEST

START_TEST(encoders_respect_cap)
{
	uint8_t b[64];
	uint32_t refs[2] = {1, 2};

	ck_assert_uint_eq(mv_trace_encode_header(b, 31, 0, 0), 0);
	ck_assert_uint_eq(mv_trace_encode_alloc(b, 39, 0, 0, 1, 1, 1), 0);
	ck_assert_uint_eq(mv_trace_encode_alloc(b, 40, 0, 0, 1, 1, 1), 40);
	ck_assert_uint_eq(mv_trace_encode_launch(b, 39, 0, 0, 0, 0, refs, 2), 0);
	ck_assert_uint_eq(mv_trace_encode_launch(b, 40, 0, 0, 0, 0, refs, 2), MV_TRACE_LAUNCH_SIZE(2));
	ck_assert_uint_eq(mv_trace_encode_launch(b, 64, 0, 70000, 0, 0, refs, 2), 0);
	ck_assert_uint_eq(mv_trace_encode_func(b, 64, 0, ""), 0);
	ck_assert_uint_eq(mv_trace_encode_end(b, 15, 0), 0);
	ck_assert_uint_eq(mv_trace_encode_mark(b, 24, 0), 24);
}
END_TEST

/* The header names the recording process's rank (flag and word), and a trace a recorder cut at
 * its size cap reads whole, with the cut flag; one with neither names no rank. */
START_TEST(header_rank_and_cut)
{
	struct img m;
	struct mv_trace *t = NULL;
	char err[256];

	memset(&m, 0, sizeof m);
	m.n = mv_trace_encode_header_rank(m.b, sizeof m.b, PT_GIB, MV_TRACE_F_CUT, 7);
	ck_assert_uint_eq(m.n, MV_TRACE_HEADER);
	ck_assert_uint_eq(m.b[24], MV_TRACE_F_CUT | MV_TRACE_F_RANK);
	ck_assert_uint_eq(m.b[28], 7);
	add_func(&m, 0, "k");
	add_alloc(&m, 0, 10);
	add_end(&m);
	ck_assert_int_eq(mv_trace_read_mem(m.b, m.n, &t, err, sizeof err), 0);
	ck_assert_uint_eq(t->rank, 7);
	ck_assert_uint_eq(t->flags, MV_TRACE_F_CUT | MV_TRACE_F_RANK);
	ck_assert_int_eq(t->truncated, 0);
	ck_assert_uint_eq(t->nbufs, 1);
	mv_trace_free(t);

	/* Rank 0 is a rank; no rank clears the flag whatever the caller passed. */
	mv_trace_encode_header_rank(m.b, sizeof m.b, PT_GIB, MV_TRACE_F_RANK, 0);
	ck_assert_int_eq(mv_trace_read_mem(m.b, m.n, &t, err, sizeof err), 0);
	ck_assert_uint_eq(t->rank, 0);
	ck_assert_uint_eq(t->flags, MV_TRACE_F_RANK);
	mv_trace_free(t);
	mv_trace_encode_header_rank(m.b, sizeof m.b, PT_GIB, MV_TRACE_F_RANK, MV_TRACE_NONE);
	ck_assert_uint_eq(m.b[28], 0);
	ck_assert_int_eq(mv_trace_read_mem(m.b, m.n, &t, err, sizeof err), 0);
	ck_assert_uint_eq(t->rank, MV_TRACE_NONE);
	ck_assert_uint_eq(t->flags, 0);
	mv_trace_free(t);
}
END_TEST

/* --record's patterns: %p, %r (x for no rank) and %%; anything else after % is refused. */
START_TEST(path_patterns)
{
	char out[32];

	ck_assert_int_eq(mv_trace_path_expand("/t/job.%p.%r.mvtrace", 4242, 3, out, sizeof out), 2);
	ck_assert_str_eq(out, "/t/job.4242.3.mvtrace");
	ck_assert_int_eq(mv_trace_path_expand("r%r-%r", 1, MV_TRACE_NONE, out, sizeof out), 2);
	ck_assert_str_eq(out, "rx-x");
	ck_assert_int_eq(mv_trace_path_expand("100%%.trace", 1, 0, out, sizeof out), 0);
	ck_assert_str_eq(out, "100%.trace");
	ck_assert_int_eq(mv_trace_path_expand("plain", 1, 0, out, sizeof out), 0);
	ck_assert_str_eq(out, "plain");
	ck_assert_int_eq(mv_trace_path_expand("a%q", 1, 0, out, sizeof out), -EINVAL);
	ck_assert_int_eq(mv_trace_path_expand("a%", 1, 0, out, sizeof out), -EINVAL);
	ck_assert_int_eq(mv_trace_path_expand("%p", 4294967295u, 0, out, 10), -ENAMETOOLONG);
	ck_assert_int_eq(mv_trace_path_expand("%p", 4294967295u, 0, out, 11), 1);
	ck_assert_str_eq(out, "4294967295");
	ck_assert_int_eq(mv_trace_path_expand("", 1, 0, out, 0), -ENAMETOOLONG);
}
END_TEST

static Suite *trace_suite(void)
{
	Suite *s = suite_create("trace");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, round_trip);
	tcase_add_test(tc, round_trip_no_refs);
	tcase_add_test(tc, round_trip_generated);
	tcase_add_test(tc, funcs_written_in_order);
	tcase_add_test(tc, bad_magic);
	tcase_add_test(tc, bad_version);
	tcase_add_test(tc, bad_header_size);
	tcase_add_test(tc, short_file);
	tcase_add_test(tc, longer_header_skipped);
	tcase_add_test(tc, unknown_type);
	tcase_add_test(tc, length_too_short);
	tcase_add_test(tc, length_too_long);
	tcase_add_test(tc, launch_length_mismatch);
	tcase_add_test(tc, unallocated_buffer);
	tcase_add_test(tc, use_after_free);
	tcase_add_test(tc, double_free);
	tcase_add_test(tc, free_never_allocated);
	tcase_add_test(tc, alloc_out_of_order);
	tcase_add_test(tc, undefined_function);
	tcase_add_test(tc, name_too_long);
	tcase_add_test(tc, name_empty);
	tcase_add_test(tc, name_with_nul);
	tcase_add_test(tc, time_decreasing);
	tcase_add_test(tc, bad_page_fields);
	tcase_add_test(tc, end_count_and_trailing);
	tcase_add_test(tc, every_cut_is_truncation);
	tcase_add_test(tc, corruption_is_refused_cleanly);
	tcase_add_test(tc, builder_checks);
	tcase_add_test(tc, encoders_respect_cap);
	tcase_add_test(tc, header_rank_and_cut);
	tcase_add_test(tc, path_patterns);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(trace_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
