/* Writes the synthetic trace files tests/e2e/trace-cli.sh reads, with the trace encoder:
 *
 *   layered.mvtrace    a three-layer network trained for three iterations, small enough to replay
 *                      by hand (see trace-cli.sh for the numbers);
 *   marked.mvtrace     the same with an iteration mark before each iteration;
 *   single.mvtrace     one iteration only, so none can be detected;
 *   truncated.mvtrace  four iterations cut short inside a record of the fourth, without END;
 *   malformed.mvtrace  a FREE of a buffer never allocated; its offset is printed;
 *   untimed.mvtrace    layered.mvtrace with no measured duration for fwd3 and bwd3 (2 of each
 *                      iteration's 6 launches), as a recording that lost their timings.
 *
 * usage: mktrace DIR; prints "malformed-offset N". */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policies/trace.h"

#define MIB ((uint64_t)1 << 20)
#define MS ((uint64_t)1000000)

/* An image being written. */
struct img {
	uint8_t buf[1 << 16];
	size_t len;
	uint64_t records;
	uint64_t now;      /* the trace's clock, ns */
	uint32_t nbufs;
};

static void put(struct img *m, size_t n)
{
	if (n == 0) {
		fprintf(stderr, "mktrace: a record did not encode\n");
		exit(1);
	}
	m->len += n;
	m->records++;
}

#define ROOM(m) ((m)->buf + (m)->len), (sizeof((m)->buf) - (m)->len)

static uint32_t alloc(struct img *m, uint64_t size)
{
	put(m, mv_trace_encode_alloc(ROOM(m), m->nbufs, 0, size, 0x5100 + m->nbufs % 3, m->now));
	return m->nbufs++;
}

/* Set while writing untimed.mvtrace: fwd3 and bwd3 launches have no duration. */
static int untimed;

static void launch(struct img *m, uint32_t func, uint32_t a, uint32_t b)
{
	uint32_t refs[2] = {a, b};
	uint64_t dur = untimed && (func == 2 || func == 3) ? 0 : 1 * MS;

	put(m, mv_trace_encode_launch(ROOM(m), func, 0, m->now, dur, refs, 2));
	m->now += 1 * MS;
}

static void release(struct img *m, uint32_t buf)
{
	put(m, mv_trace_encode_free(ROOM(m), buf, m->now));
}

/* fwd1 (W, A1), fwd2 (A1, A2), fwd3 (A2, A3), bwd3 (A3, A2), bwd2 (A2, A1), bwd1 (A1, W): 1 ms
 * each, every buffer 4 MiB, each activation freed after its last use. With pages, the first
 * iteration also records W paged out before fwd3 and back in, waited for, before bwd1. */
static void iteration(struct img *m, uint32_t w, int mark, int pages)
{
	uint32_t a1, a2, a3;

	if (mark)
		put(m, mv_trace_encode_mark(ROOM(m), m->now));
	a1 = alloc(m, 4 * MIB);
	launch(m, 0, w, a1);
	a2 = alloc(m, 4 * MIB);
	launch(m, 1, a1, a2);
	if (pages) {
		put(m, mv_trace_encode_page(ROOM(m), w, 0, m->now, 4 * MS, 0));
		m->now += 4 * MS;
	}
	a3 = alloc(m, 4 * MIB);
	launch(m, 2, a2, a3);
	launch(m, 3, a3, a2);
	release(m, a3);
	launch(m, 4, a2, a1);
	release(m, a2);
	if (pages) {
		put(m, mv_trace_encode_page(ROOM(m), w, 1, m->now, 4 * MS, 1));
		m->now += 4 * MS;
	}
	launch(m, 5, a1, w);
	release(m, a1);
}

static const char *const funcs[] = {"fwd1", "fwd2", "fwd3", "bwd3", "bwd2", "bwd1"};

static uint32_t start(struct img *m)
{
	memset(m, 0, sizeof(*m));
	m->now = 1000 * MS;
	m->len = mv_trace_encode_header(m->buf, sizeof(m->buf), 80ull << 30, MV_TRACE_F_MODEL_ONLY);
	if (m->len != MV_TRACE_HEADER) {
		fprintf(stderr, "mktrace: the header did not encode\n");
		exit(1);
	}
	for (uint32_t f = 0; f < sizeof(funcs) / sizeof(funcs[0]); f++)
		put(m, mv_trace_encode_func(ROOM(m), f, funcs[f]));
	return alloc(m, 4 * MIB);
}

static void end(struct img *m)
{
	put(m, mv_trace_encode_end(ROOM(m), m->records));
}

static void save(const char *dir, const char *name, const struct img *m, size_t len)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (f == NULL || fwrite(m->buf, 1, len, f) != len || fclose(f) != 0) {
		perror(path);
		exit(1);
	}
}

int main(int argc, char **argv)
{
	static struct img m;
	uint32_t w;
	size_t cut, bad;

	if (argc != 2) {
		fprintf(stderr, "usage: mktrace DIR\n");
		return 2;
	}

	w = start(&m);
	for (int i = 0; i < 3; i++)
		iteration(&m, w, 0, i == 0);
	end(&m);
	save(argv[1], "layered.mvtrace", &m, m.len);

	w = start(&m);
	for (int i = 0; i < 3; i++)
		iteration(&m, w, 1, 0);
	put(&m, mv_trace_encode_mark(ROOM(&m), m.now));
	end(&m);
	save(argv[1], "marked.mvtrace", &m, m.len);

	w = start(&m);
	iteration(&m, w, 0, 0);
	end(&m);
	save(argv[1], "single.mvtrace", &m, m.len);

	w = start(&m);
	for (int i = 0; i < 3; i++)
		iteration(&m, w, 0, 0);
	cut = m.len;
	iteration(&m, w, 0, 0);
	/* Inside the fourth iteration's second record (its first launch), as a killed job leaves it. */
	cut += MV_TRACE_RECORD_HEAD + 32 + 10;
	save(argv[1], "truncated.mvtrace", &m, cut);

	w = start(&m);
	iteration(&m, w, 0, 0);
	bad = m.len;
	release(&m, 999);
	end(&m);
	save(argv[1], "malformed.mvtrace", &m, m.len);

	untimed = 1;
	w = start(&m);
	for (int i = 0; i < 3; i++)
		iteration(&m, w, 0, i == 0);
	end(&m);
	save(argv[1], "untimed.mvtrace", &m, m.len);
	untimed = 0;
	printf("malformed-offset %zu\n", bad);
	return 0;
}
