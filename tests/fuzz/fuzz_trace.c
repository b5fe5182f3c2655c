/* libFuzzer target: a trace file through the reader `memvirt trace` uses. A trace it accepts is
 * encoded back into a file, which must read to the same trace and encode to the same bytes. */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "policies/trace.h"
#include "tests/fuzz/fuzz.h"

static void same_trace(const struct mv_trace *a, const struct mv_trace *b)
{
	FUZZ_CHECK(a->device_total == b->device_total && a->flags == b->flags);
	FUZZ_CHECK(a->nbufs == b->nbufs && a->nops == b->nops && a->nrefs == b->nrefs &&
		   a->nfuncs == b->nfuncs);
	FUZZ_CHECK(a->nbufs == 0 || memcmp(a->bufs, b->bufs, a->nbufs * sizeof(*a->bufs)) == 0);
	for (uint32_t i = 0; i < a->nops; i++) {
		const struct mv_trace_op *x = &a->ops[i], *y = &b->ops[i];

		FUZZ_CHECK(x->kind == y->kind && x->dir == y->dir && x->waited == y->waited &&
			   x->stream == y->stream && x->id == y->id && x->nrefs == y->nrefs &&
			   x->ref0 == y->ref0 && x->time_ns == y->time_ns && x->dur_ns == y->dur_ns);
	}
	FUZZ_CHECK(a->nrefs == 0 || memcmp(a->refs, b->refs, a->nrefs * sizeof(*a->refs)) == 0);
	for (uint32_t i = 0; i < a->nfuncs; i++)
		FUZZ_CHECK(strcmp(a->funcs[i], b->funcs[i]) == 0);
}

/* What the reader promises of a trace it returns (trace.h). */
static void well_formed(const struct mv_trace *t)
{
	uint64_t last = 0;

	for (uint32_t i = 0; i < t->nops; i++) {
		const struct mv_trace_op *op = &t->ops[i];

		FUZZ_CHECK(op->time_ns >= last);
		last = op->time_ns;
		if (op->kind == MV_TREC_ALLOC || op->kind == MV_TREC_FREE || op->kind == MV_TREC_PAGE)
			FUZZ_CHECK(op->id < t->nbufs);
		if (op->kind == MV_TREC_LAUNCH) {
			FUZZ_CHECK(op->id < t->nfuncs);
			FUZZ_CHECK((uint64_t)op->ref0 + op->nrefs <= t->nrefs);
		}
	}
	for (uint32_t i = 0; i < t->nrefs; i++)
		FUZZ_CHECK(t->refs[i] < t->nbufs);
	for (uint32_t i = 0; i < t->nbufs; i++) {
		FUZZ_CHECK(t->bufs[i].alloc_op < t->nops && t->ops[t->bufs[i].alloc_op].kind == MV_TREC_ALLOC);
		FUZZ_CHECK(t->bufs[i].free_op == MV_TRACE_NONE ||
			   (t->bufs[i].free_op < t->nops && t->bufs[i].free_op > t->bufs[i].alloc_op));
	}
	for (uint32_t i = 0; i < t->nfuncs; i++) {
		size_t n = strlen(t->funcs[i]);

		FUZZ_CHECK(n >= 1 && n <= MV_TRACE_NAME_MAX);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mv_trace *t = NULL, *again = NULL;
	char err[256];
	uint8_t *file, *file2;
	size_t len, len2;
	int rc;

	err[0] = '\0';
	rc = mv_trace_read_mem(data, size, &t, err, sizeof(err));
	if (rc != 0) {
		FUZZ_CHECK(rc == -EINVAL || rc == -ENOMEM);
		FUZZ_CHECK(err[0] != '\0');
		return 0;
	}
	well_formed(t);
	file = mv_trace_encode(t, &len);
	FUZZ_CHECK(file != NULL);
	rc = mv_trace_read_mem(file, len, &again, err, sizeof(err));
	if (rc != 0)
		fprintf(stderr, "re-reading an encoded trace: %s\n", err);
	FUZZ_CHECK(rc == 0);
	FUZZ_CHECK(!again->truncated);
	same_trace(t, again);
	file2 = mv_trace_encode(again, &len2);
	FUZZ_CHECK(file2 != NULL && len2 == len && memcmp(file, file2, len) == 0);
	free(file2);
	free(file);
	mv_trace_free(again);
	mv_trace_free(t);
	return 0;
}
