/* mvtrace-check FILE: reads a trace file with the planning code's reader and prints what it holds,
 * one "name value" line each, for the end-to-end tests. Exits 1 when the reader refuses the file. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include "policies/trace.h"

int main(int argc, char **argv)
{
	FILE *f;
	char *buf = NULL, err[256] = "";
	size_t len = 0, cap = 0, n;
	struct mv_trace *t;
	unsigned long count[MV_TREC_END + 1] = {0}, waited = 0, timed = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: mvtrace-check FILE\n");
		return 2;
	}
	f = fopen(argv[1], "rb");
	if (f == NULL) {
		perror(argv[1]);
		return 2;
	}
	do {
		if (len == cap) {
			cap = cap ? cap * 2 : 1 << 20;
			buf = realloc(buf, cap);
			if (buf == NULL)
				return 2;
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
	} while (n > 0);
	fclose(f);
	if (mv_trace_read_mem(buf, len, &t, err, sizeof(err)) != 0) {
		fprintf(stderr, "mvtrace-check: %s: %s\n", argv[1], err);
		return 1;
	}
	for (uint32_t i = 0; i < t->nops; i++) {
		const struct mv_trace_op *op = &t->ops[i];
		if (op->kind <= MV_TREC_END)
			count[op->kind]++;
		if (op->kind == MV_TREC_PAGE && op->waited)
			waited++;
		if (op->kind == MV_TREC_LAUNCH && op->dur_ns > 0)
			timed++;
	}
	printf("truncated %d\nflags %u\nfuncs %u\nbuffers %u\nallocs %lu\nfrees %lu\nlaunches %lu\ntimed %lu\n"
	       "refs %u\nmarks %lu\npages %lu\nwaited %lu\n",
	       t->truncated, t->flags, t->nfuncs, t->nbufs, count[MV_TREC_ALLOC], count[MV_TREC_FREE],
	       count[MV_TREC_LAUNCH], timed, t->nrefs, count[MV_TREC_MARK], count[MV_TREC_PAGE], waited);
	mv_trace_free(t);
	free(buf);
	return 0;
}
