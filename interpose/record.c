/* Recording: the trace file MEMVIRT_RECORD names (policies/trace.h), written by the learner's
 * thread only, never by an app thread. Records are encoded into a buffer and written whole, at
 * least every 100 ms, so a killed job leaves a file that ends at a record boundary or within the
 * last one, which the reader accepts as truncated. Buffers and functions are numbered in the file's
 * own order: a record naming something the file has not defined (its record was dropped) is left
 * out, or the reference is.
 *
 * A name with %p or %r is one file per process. A name without them is one file per job: it is
 * created with O_EXCL, so a second process of the job refuses to record rather than truncate the
 * first's trace (memvirt run removes an earlier run's file first). MEMVIRT_RECORD_MAX caps the
 * file: the record that would pass it is not written, END is, and the header says the trace was
 * cut. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "interpose/internal.h"
#include "policies/map.h"
#include "policies/trace.h"
#include "protocol/units.h"

#define REC_BUF (256u << 10)
#define REC_FUNCS 4096

static int fd = -1;
static char path[PATH_MAX];         /* the file, its name expanded */
static uint8_t *buf;
static size_t len;
static uint64_t written;            /* bytes written to the file so far */
static uint32_t header_flags;       /* the header's MV_TRACE_F_* as first written */
static uint64_t nrecords;
static uint32_t nbufs;
static uint32_t file_fn[REC_FUNCS];  /* live function number + 1 -> file number + 1; 0: not yet */
static uint32_t nfns;
static uint32_t *refs;

/* Live buffer id -> file buffer number. */
static struct mv_map file_buf = MV_MAP_INIT;

static void put_all(const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			mv_log(MV_LOG_WARN, "cannot write the trace %s: %s; recording stops", path,
			       w < 0 ? strerror(errno) : "short write");
			close(fd);
			fd = -1;
			return;
		}
		p += w;
		n -= (size_t)w;
		written += (uint64_t)w;
	}
}

void mv_record_flush(int end)
{
	if (fd < 0)
		return;
	if (end && REC_BUF - len >= MV_TRACE_RECORD_HEAD + 8)
		len += mv_trace_encode_end(buf + len, REC_BUF - len, nrecords);
	if (len > 0)
		put_all(buf, len);
	len = 0;
	if (end && fd >= 0) {
		close(fd);
		fd = -1;
	}
}

/* The cap is reached: the trace ends here, whole, with the header's flag saying it was cut. */
static void cut(void)
{
	uint8_t flags[4];
	uint32_t f = header_flags | MV_TRACE_F_CUT;
	char cap[32];

	mv_record_flush(0);
	if (fd < 0)
		return;
	for (int i = 0; i < 4; i++)
		flags[i] = (uint8_t)(f >> (8 * i));
	if (pwrite(fd, flags, sizeof(flags), 24) != (ssize_t)sizeof(flags))
		mv_log(MV_LOG_WARN, "cannot mark the trace %s as cut: %s", path, strerror(errno));
	mv_log(MV_LOG_WARN, "the trace %s reached its cap, MEMVIRT_RECORD_MAX=%llu bytes (%s), after "
	       "%llu records; recording stops, the job goes on", path,
	       (unsigned long long)mv_cfg.record_max, mv_format_size(mv_cfg.record_max, cap, sizeof(cap)),
	       (unsigned long long)nrecords);
	mv_record_flush(1);
}

/* Room for need more bytes, in the buffer and under the cap (which keeps room for END). */
static int room(size_t need)
{
	if (fd < 0)
		return 0;
	if (mv_cfg.record_max != 0 &&
	    written + len + need + MV_TRACE_RECORD_HEAD + 8 > mv_cfg.record_max) {
		cut();
		return 0;
	}
	if (REC_BUF - len < need)
		mv_record_flush(0);
	return fd >= 0 && REC_BUF - len >= need;
}

static void wrote(size_t n)
{
	if (n > 0) {
		len += n;
		nrecords++;
	}
}

/* Opens the file: one per process truncates what an earlier run left; one per job is created
 * only by the first of its processes. */
static int open_trace(const char *pattern, int per_process)
{
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | (per_process ? O_TRUNC : O_EXCL), 0644);
	if (fd >= 0)
		return 0;
	if (errno == EEXIST)
		mv_log(MV_LOG_WARN, "MEMVIRT_RECORD=%s exists: another process of the job records there "
		       "(or an earlier run left it); this process does not record: put %%p or %%r in "
		       "the name for a trace per process", pattern);
	else
		mv_log(MV_LOG_WARN, "cannot open MEMVIRT_RECORD=%s: %s; not recording", path,
		       strerror(errno));
	return -1;
}

int mv_record_open(const char *pattern, uint64_t device_total, uint32_t flags)
{
	int n = mv_trace_path_expand(pattern, (uint32_t)getpid(), mv_cfg.rank, path, sizeof(path));

	if (n < 0) {
		mv_log(MV_LOG_WARN, "MEMVIRT_RECORD=%s: %s; not recording", pattern, n == -EINVAL ?
		       "a % is followed by neither p (pid), r (rank) nor %" : "the name is too long");
		return -1;
	}
	buf = malloc(REC_BUF);
	refs = malloc(4096 * sizeof(*refs));
	if (buf == NULL || refs == NULL) {
		mv_log(MV_LOG_WARN, "no memory to record the trace %s", path);
		return -1;
	}
	if (open_trace(pattern, n > 0) < 0)
		return -1;
	len = mv_trace_encode_header_rank(buf, REC_BUF, device_total, flags, mv_cfg.rank);
	header_flags = (uint32_t)buf[24] | (uint32_t)buf[25] << 8 | (uint32_t)buf[26] << 16 |
		       (uint32_t)buf[27] << 24;
	mv_record_flush(0);
	return fd >= 0 ? 0 : -1;
}

void mv_record_func(uint32_t fn, const char *name)
{
	size_t n;

	if (fn >= REC_FUNCS || file_fn[fn] != 0 || !room(MV_TRACE_RECORD_HEAD + 4 + MV_TRACE_NAME_MAX))
		return;
	n = mv_trace_encode_func(buf + len, REC_BUF - len, nfns, name);
	if (n == 0)
		return;
	wrote(n);
	file_fn[fn] = ++nfns;
}

void mv_record_alloc(uint32_t id, uint32_t flags, uint64_t size, uint64_t site, uint64_t time_ns)
{
	size_t n;

	if (!room(MV_TRACE_RECORD_HEAD + 32) || mv_map_set(&file_buf, id, nbufs) != 0)
		return;
	n = mv_trace_encode_alloc(buf + len, REC_BUF - len, nbufs, flags, size, site, time_ns);
	wrote(n);
	nbufs++;
}

void mv_record_free(uint32_t id, uint64_t time_ns)
{
	uint32_t b;

	if (!mv_map_get(&file_buf, id, &b) || !room(MV_TRACE_RECORD_HEAD + 16))
		return;
	wrote(mv_trace_encode_free(buf + len, REC_BUF - len, b, time_ns));
	mv_map_del(&file_buf, id);
}

void mv_record_launch(uint32_t fn, uint32_t stream, uint64_t time_ns, uint64_t dur_ns, const uint32_t *ids,
		      uint32_t n)
{
	uint32_t nr = 0;

	if (fd < 0 || fn >= REC_FUNCS)
		return;
	if (file_fn[fn] == 0)
		mv_record_func(fn, mv_func_name(fn));
	if (file_fn[fn] == 0)
		return;
	for (uint32_t i = 0; i < n && nr < 4096; i++) {
		if (mv_map_get(&file_buf, ids[i], &refs[nr]))
			nr++;
	}
	if (!room(MV_TRACE_LAUNCH_SIZE(nr)))
		return;
	wrote(mv_trace_encode_launch(buf + len, REC_BUF - len, file_fn[fn] - 1, stream, time_ns, dur_ns, refs, nr));
}

void mv_record_mark(uint64_t time_ns)
{
	if (room(MV_TRACE_RECORD_HEAD + 16))
		wrote(mv_trace_encode_mark(buf + len, REC_BUF - len, time_ns));
}

void mv_record_page(uint32_t id, int in, uint64_t time_ns, uint64_t dur_ns, int waited)
{
	uint32_t b;

	if (mv_map_get(&file_buf, id, &b) && room(MV_TRACE_RECORD_HEAD + 32))
		wrote(mv_trace_encode_page(buf + len, REC_BUF - len, b, in, time_ns, dur_ns, waited));
}
