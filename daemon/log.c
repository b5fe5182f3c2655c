/* memvirtd's log: leveled lines to stderr, the journal or a file, and the fatal out-of-memory helpers. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "daemon/internal.h"

static const char *log_names[] = {"debug", "info", "warn", "error"};

/* The rate limiter's keys: a fixed table, so that a flood of distinct keys costs no memory. A key
 * that finds its probe run full takes the slot whose window is oldest, reporting its suppressed
 * lines first. */
#define LOG_KEYS 256
#define LOG_PROBE 8
#define LOG_KEY_MAX 96
#define LOG_WINDOW_S 60

struct log_key {
	char key[LOG_KEY_MAX];    /* empty: a free slot */
	uint64_t window;          /* when its window began, in monotonic seconds */
	unsigned lines;           /* logged in this window */
	unsigned long suppressed; /* not logged in this window */
	enum mvd_log_level level; /* of its last line, for the summary */
};

static struct log_key log_keys[LOG_KEYS];
static unsigned log_key_lines = 20; /* lines a key may log in a window */

static enum mvd_log_level log_level = MVD_LOG_INFO;
static int log_fd = STDERR_FILENO;
static char *log_path; /* NULL: stderr */
static int log_journal = -1; /* whether stderr is the journal's stream; -1: not known yet */

/* The syslog priority of each level, which the journal reads from a "<N>" prefix. */
static const int log_priorities[] = {7, 6, 4, 3};

int mvd_log_parse_level(const char *s, enum mvd_log_level *out)
{
	size_t i;

	for (i = 0; i < sizeof(log_names) / sizeof(log_names[0]); i++) {
		if (strcmp(s, log_names[i]) == 0) {
			*out = (enum mvd_log_level)i;
			return 0;
		}
	}
	/* "warning" is what people type as often as "warn". */
	if (strcmp(s, "warning") == 0) {
		*out = MVD_LOG_WARN;
		return 0;
	}
	return -1;
}

void mvd_log_set_level(enum mvd_log_level level)
{
	log_level = level;
}

int mvd_log_open(const char *path)
{
	int fd;

	if (path == NULL) {
		if (log_fd != STDERR_FILENO)
			close(log_fd);
		log_fd = STDERR_FILENO;
		free(log_path);
		log_path = NULL;
		return 0;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (fd < 0)
		return -errno;
	if (log_fd != STDERR_FILENO)
		close(log_fd);
	log_fd = fd;
	if (log_path != path) {
		free(log_path);
		log_path = mvd_xstrdup(path);
	}
	return 0;
}

void mvd_log_reopen(void)
{
	char *path;
	int rc;

	if (log_path == NULL)
		return;
	path = mvd_xstrdup(log_path);
	rc = mvd_log_open(path);
	if (rc < 0)
		mvd_warn("cannot reopen log file %s: %s; keeping the old one", path, strerror(-rc));
	free(path);
}

/* Whether stderr is connected to the journal: systemd says so by putting stderr's device and inode
 * in JOURNAL_STREAM (systemd.exec(5)). A daemon started from such a service with stderr
 * redirected elsewhere does not match. */
static int log_stderr_is_journal(void)
{
	const char *env = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	int n = 0;

	if (env == NULL || sscanf(env, "%llu:%llu%n", &dev, &ino, &n) != 2 || env[n] != '\0')
		return 0;
	if (fstat(STDERR_FILENO, &st) < 0)
		return 0;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

/* The start of a line: "<N>" for the journal, which stamps the time and pid itself; a timestamp,
 * pid and level otherwise. Returns its length. */
static size_t log_prefix(enum mvd_log_level level, char *line, size_t len)
{
	struct timespec ts;
	struct tm tm;
	size_t n;
	int m;

	if (log_journal < 0)
		log_journal = log_stderr_is_journal();
	if (log_fd == STDERR_FILENO && log_journal) {
		m = snprintf(line, len, "<%d>", log_priorities[level]);
		return m > 0 ? (size_t)m : 0;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	n = strftime(line, len, "%Y-%m-%dT%H:%M:%S", &tm);
	m = snprintf(line + n, len - n, ".%03ld memvirtd[%d] %s: ", ts.tv_nsec / 1000000,
		     (int)getpid(), log_names[level]);
	if (m > 0)
		n += (size_t)m;
	return n;
}

static void log_vwrite(enum mvd_log_level level, const char *fmt, va_list ap)
{
	char line[2048];
	size_t n;
	int m;

	n = log_prefix(level, line, sizeof(line));
	m = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	if (m > 0)
		n += (size_t)m;
	/* A long message is cut, keeping room for its newline. */
	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	/* One write per line, so that a line is never split between writers of one file. */
	if (write(log_fd, line, n) < 0)
		return;
}

void mvd_log(enum mvd_log_level level, const char *fmt, ...)
{
	va_list ap;

	if (level < log_level)
		return;
	va_start(ap, fmt);
	log_vwrite(level, fmt, ap);
	va_end(ap);
}

static void log_line(enum mvd_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void log_line(enum mvd_log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(level, fmt, ap);
	va_end(ap);
}

static uint64_t log_now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec;
}

/* Says how many of k's lines were not logged, and empties its count. */
static void log_key_report(struct log_key *k)
{
	if (k->suppressed > 0 && k->level >= log_level)
		log_line(k->level, "%lu more lines like '%s' in %d s were not logged", k->suppressed,
			 k->key, LOG_WINDOW_S);
	k->suppressed = 0;
}

/* k's slot: its own, a free one, or the oldest of its probe run. */
static struct log_key *log_key_slot(const char *key)
{
	uint32_t h = 2166136261u;
	struct log_key *k, *oldest = NULL;

	for (const char *p = key; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	for (unsigned i = 0; i < LOG_PROBE; i++) {
		k = &log_keys[(h + i) % LOG_KEYS];
		if (k->key[0] == '\0' || strncmp(k->key, key, LOG_KEY_MAX - 1) == 0)
			return k;
		if (oldest == NULL || k->window < oldest->window)
			oldest = k;
	}
	log_key_report(oldest);
	oldest->key[0] = '\0';
	return oldest;
}

void mvd_log_set_limit(unsigned lines)
{
	log_key_lines = lines > 0 ? lines : 1;
}

void mvd_log_limited(const char *key, enum mvd_log_level level, const char *fmt, ...)
{
	struct log_key *k;
	uint64_t now;
	va_list ap;

	if (level < log_level)
		return;
	now = log_now_s();
	k = log_key_slot(key);
	if (k->key[0] == '\0' || now - k->window >= LOG_WINDOW_S) {
		log_key_report(k);
		snprintf(k->key, sizeof(k->key), "%s", key);
		k->window = now;
		k->lines = 0;
	}
	k->level = level;
	if (k->lines >= log_key_lines) {
		k->suppressed++;
		return;
	}
	k->lines++;
	va_start(ap, fmt);
	log_vwrite(level, fmt, ap);
	va_end(ap);
}

void mvd_log_flush_limited(int all)
{
	uint64_t now = log_now_s();

	for (size_t i = 0; i < LOG_KEYS; i++) {
		struct log_key *k = &log_keys[i];

		if (k->key[0] != '\0' && (all || now - k->window >= LOG_WINDOW_S)) {
			log_key_report(k);
			k->key[0] = '\0';
		}
	}
}

void mvd_fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(MVD_LOG_ERROR, fmt, ap);
	va_end(ap);
	exit(1);
}

void *mvd_xmalloc(size_t n)
{
	void *p = malloc(n == 0 ? 1 : n);

	if (p == NULL)
		mvd_fatal("out of memory (%zu bytes)", n);
	return p;
}

void *mvd_xcalloc(size_t n, size_t size)
{
	void *p = calloc(n == 0 ? 1 : n, size == 0 ? 1 : size);

	if (p == NULL)
		mvd_fatal("out of memory (%zu x %zu bytes)", n, size);
	return p;
}

void *mvd_xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n == 0 ? 1 : n);

	if (q == NULL)
		mvd_fatal("out of memory (%zu bytes)", n);
	return q;
}

char *mvd_xstrdup(const char *s)
{
	char *p = strdup(s);

	if (p == NULL)
		mvd_fatal("out of memory (%zu bytes)", strlen(s) + 1);
	return p;
}
