/* memvirt stats: the daemon's live paging statistics as a table, its JSON, or Prometheus text. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/internal.h"
#include "protocol/prom.h"
#include "protocol/text.h"
#include "protocol/units.h"

enum stats_format { STATS_TABLE, STATS_JSON, STATS_PROMETHEUS };

/* Set by SIGINT or SIGTERM: --watch ends cleanly at the next sample. */
static volatile sig_atomic_t stats_stop;

static void stats_usage(FILE *f)
{
	fprintf(f,
		"usage: memvirt stats [--watch [SECONDS]] [--json | --prometheus] [--socket PATH]\n"
		"\n"
		"Shows each process's paging on each device, as the daemon last heard from it. The\n"
		"table shows every daemon found (memvirt(1), DISCOVERY: the system daemon and this\n"
		"user's own); --watch, --json and --prometheus read the first of them.\n"
		"\n"
		"  --watch [SECONDS]  redraw every SECONDS (default 1) until interrupted; with --json,\n"
		"                     print one JSON object per line instead\n"
		"  --json             print the daemon's answer as JSON\n"
		"  --prometheus       print the Prometheus text format, for node_exporter's textfile\n"
		"                     collector\n"
		"  --socket PATH      read only the daemon on PATH (default: $MEMVIRT_SOCKET, else\n"
		"                     the daemons found)\n"
		"  --help             print this and exit\n"
		"\n"
		"HIT is 1 - FAULTS / launches: the share of kernel launches that found every buffer they\n"
		"name resident. Where the daemon reports no launch count, all the session's events are\n"
		"the denominator, which overstates it.\n");
}

static uint64_t stats_u64(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);

	if (json_is_integer(v) && json_integer_value(v) > 0)
		return (uint64_t)json_integer_value(v);
	if (json_is_real(v) && json_real_value(v) > 0)
		return (uint64_t)json_real_value(v);
	return 0;
}

static const char *stats_str(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s != NULL ? s : "";
}

static char *stats_size(uint64_t bytes, char *buf, size_t len)
{
	return mv_format_size(bytes, buf, len);
}

static char *stats_duration(uint64_t ns, char *buf, size_t len)
{
	if (ns < 1000000)
		snprintf(buf, len, "%.0f us", (double)ns / 1e3);
	else if (ns < UINT64_C(1000000000))
		snprintf(buf, len, "%.1f ms", (double)ns / 1e6);
	else
		snprintf(buf, len, "%.2f s", (double)ns / 1e9);
	return buf;
}

/* The hit rate's denominator: the session's launches when the daemon reports them, else its
 * events. Negative when there is none. */
static double stats_hit_rate(const json_t *s)
{
	uint64_t faults = stats_u64(s, "fault_ins");
	uint64_t denom = json_object_get(s, "launches") != NULL ? stats_u64(s, "launches")
								  : stats_u64(s, "events");

	if (denom == 0)
		return -1;
	if (faults >= denom)
		return 0;
	return 1.0 - (double)faults / (double)denom;
}

/* How a column of the table or a metric shows its value. */
enum stats_unit { STATS_COUNT, STATS_BYTES, STATS_NS, STATS_TEXT, STATS_HIT, STATS_RANK };
/* counters.def's units. */
#define STATS_UNIT_count STATS_COUNT
#define STATS_UNIT_bytes STATS_BYTES
#define STATS_UNIT_ns STATS_NS

/* A column of the table: its heading (NULL for a counter the table leaves out), the session's
 * JSON key it shows, and how. */
struct stats_column {
	const char *head;
	const char *key;
	enum stats_unit unit;
	int cut; /* STATS_TEXT: the characters shown */
};

static const struct stats_column stats_columns[] = {
	{"PID", "pid", STATS_COUNT, 0},
	{"JOB", "job", STATS_TEXT, 20},
	{"RANK", "rank", STATS_RANK, 0},
	/* The group's token cut short: memvirt run's begin with its pid, which tells live jobs apart. */
	{"GROUP", "group", STATS_TEXT, 12},
	/* Eight hex digits tell a host's GPUs apart, as nvidia-smi's short UUIDs do. */
	{"DEVICE", "device", STATS_TEXT, 8},
	{"BUDGET", "budget", STATS_BYTES, 0},
	{"GRANT", "grant", STATS_BYTES, 0},
#define MV_COUNTER(name, source, type, unit, key, metric, column, ...) {column, key, STATS_UNIT_##unit, 0},
#include "protocol/counters.def"
#undef MV_COUNTER
	{"HIT", NULL, STATS_HIT, 0},
};
enum { STATS_NCOLUMNS = sizeof(stats_columns) / sizeof(stats_columns[0]) };

/* A cell's bytes: a text column's characters may take up to four bytes each. */
#define STATS_CELL 96

/* Session s's cell in column col, in buf[STATS_CELL]. Text is escaped: a job names itself, and
 * nothing it chose reaches the terminal as a control. */
static void stats_cell(const json_t *s, const struct stats_column *col, char *buf)
{
	double hit;

	switch (col->unit) {
	case STATS_COUNT:
		snprintf(buf, STATS_CELL, "%llu", (unsigned long long)stats_u64(s, col->key));
		break;
	case STATS_BYTES:
		stats_size(stats_u64(s, col->key), buf, STATS_CELL);
		break;
	case STATS_NS:
		stats_duration(stats_u64(s, col->key), buf, STATS_CELL);
		break;
	case STATS_TEXT:
		/* None (a process with no group) is "-", as a rank. */
		mv_text_escape(*stats_str(s, col->key) != '\0' ? stats_str(s, col->key) : "-", buf,
			       STATS_CELL, (size_t)col->cut);
		break;
	case STATS_RANK:
		/* A process that named no rank (protocol/proto.h's MV_RANK_NONE) is shown as "-". */
		if (json_is_integer(json_object_get(s, col->key)))
			snprintf(buf, STATS_CELL, "%llu", (unsigned long long)stats_u64(s, col->key));
		else
			snprintf(buf, STATS_CELL, "-");
		break;
	case STATS_HIT:
		hit = stats_hit_rate(s);
		if (hit < 0)
			snprintf(buf, STATS_CELL, "-");
		else
			snprintf(buf, STATS_CELL, "%.1f%%", 100 * hit);
		break;
	}
}

/* The characters text takes on a terminal: a cell holds printable UTF-8 only. */
static size_t stats_width(const char *text)
{
	size_t n = 0;

	for (; *text != '\0'; text++)
		if (((unsigned char)*text & 0xc0) != 0x80)
			n++;
	return n;
}

/* One cell of the table: the text columns read best on the left, numbers line up on the right. */
static void stats_print(const struct stats_column *col, size_t width, const char *text, int last)
{
	size_t pad = width - stats_width(text);

	if (col->unit == STATS_TEXT)
		printf("%s%*s%s", text, (int)pad, "", last ? "\n" : "  ");
	else
		printf("%*s%s%s", (int)pad, "", text, last ? "\n" : "  ");
}

static void stats_table(const json_t *resp, const char *path)
{
	const json_t *sessions = json_object_get(resp, "sessions");
	const json_t *devices = json_object_get(resp, "devices");
	const struct stats_column *cols[STATS_NCOLUMNS];
	const json_t *s;
	size_t n = json_array_size(sessions), ncols = 0, i, c, width[STATS_NCOLUMNS];
	char (*cells)[STATS_CELL];
	char a[32], b[32], dev[STATS_CELL];

	if (n == 0) {
		printf("no jobs are connected to memvirtd on %s\n", path);
		return;
	}
	for (c = 0; c < STATS_NCOLUMNS; c++)
		if (stats_columns[c].head != NULL)
			cols[ncols++] = &stats_columns[c];
	cells = xmalloc(n * ncols * sizeof(*cells));
	json_array_foreach(sessions, i, s) {
		for (c = 0; c < ncols; c++)
			stats_cell(s, cols[c], cells[i * ncols + c]);
	}
	for (c = 0; c < ncols; c++) {
		width[c] = strlen(cols[c]->head);
		for (i = 0; i < n; i++)
			if (stats_width(cells[i * ncols + c]) > width[c])
				width[c] = stats_width(cells[i * ncols + c]);
	}
	for (c = 0; c < ncols; c++)
		stats_print(cols[c], width[c], cols[c]->head, c + 1 == ncols);
	for (i = 0; i < n; i++)
		for (c = 0; c < ncols; c++)
			stats_print(cols[c], width[c], cells[i * ncols + c], c + 1 == ncols);
	free(cells);

	json_array_foreach(devices, i, s) {
		if (i == 0)
			printf("\n");
		mv_text_escape(stats_str(s, "device"), dev, sizeof(dev), 8);
		printf("device %s: budget %s, granted %s to %llu process%s\n", dev,
		       stats_size(stats_u64(s, "budget"), a, sizeof(a)),
		       stats_size(stats_u64(s, "granted"), b, sizeof(b)),
		       (unsigned long long)stats_u64(s, "sessions"),
		       stats_u64(s, "sessions") == 1 ? "" : "es");
	}
}

/* The same text as memvirtd's /metrics (protocol/prom.h). */
static void stats_prometheus(const json_t *resp)
{
	size_t len;
	char *text = mv_prom_render(resp, &len);

	if (text == NULL)
		xoom();
	fwrite(text, 1, len, stdout);
	free(text);
}

/* Asks for stats once. Returns 0 with *resp, or 1 after printing why not. */
static int stats_fetch(const char *path, json_t **resp, int quiet_missing)
{
	char err[256];
	const char *e;
	int r;

	r = cli_client_call(path, "stats", CLI_CLIENT_TIMEOUT_MS, resp, err, sizeof(err));
	if (r < 0) {
		if (!quiet_missing)
			cli_client_no_daemon("memvirt stats", path, r, err);
		return 1;
	}
	e = cli_client_error(*resp);
	if (e != NULL) {
		fprintf(stderr, "memvirt stats: %s\n", e);
		json_decref(*resp);
		return 1;
	}
	return 0;
}

/* The table of every daemon found that answers, each under its socket's name when there are
 * several. Returns 0, or 1 when none answered, after saying why. */
static int stats_tables(char paths[][CLI_PATH_MAX], int n)
{
	json_t *resp[2] = {NULL, NULL};
	int i, answered = 0, shown = 0;

	/* The system daemon, first and listed only when it answered, is asked quietly; the user's
	 * own is news only when no daemon answered. */
	for (i = 0; i < n; i++) {
		if (stats_fetch(paths[i], &resp[i], i + 1 < n || answered > 0) != 0)
			resp[i] = NULL;
		answered += resp[i] != NULL;
	}
	for (i = 0; i < n; i++) {
		if (resp[i] == NULL)
			continue;
		if (shown++ > 0)
			printf("\n");
		if (answered > 1)
			printf("memvirtd on %s:\n", paths[i]);
		stats_table(resp[i], paths[i]);
		json_decref(resp[i]);
	}
	return answered > 0 ? 0 : 1;
}

static void stats_on_signal(int sig)
{
	(void)sig;
	stats_stop = 1;
}

static int stats_watch(const char *path, enum stats_format fmt, double period)
{
	struct sigaction sa = {.sa_handler = stats_on_signal};
	struct timespec ts;
	json_t *resp;
	char *text;
	time_t now;
	char stamp[32];
	int ok, tty = isatty(STDOUT_FILENO), first = 1;

	sigemptyset(&sa.sa_mask);
	/* No SA_RESTART: the signal must cut the sleep short. */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	while (!stats_stop) {
		ok = stats_fetch(path, &resp, fmt == STATS_TABLE) == 0;
		if (fmt == STATS_JSON) {
			if (ok) {
				text = json_dumps(resp, JSON_COMPACT);
				if (text != NULL)
					printf("%s\n", text);
				free(text);
			}
		} else {
			now = time(NULL);
			strftime(stamp, sizeof(stamp), "%H:%M:%S", localtime(&now));
			/* On a terminal: clear the screen and go home, then draw the whole frame. In a
			 * pipe or a file, the snapshots follow each other, a blank line between. */
			if (tty)
				printf("\033[H\033[2J");
			else if (!first)
				printf("\n");
			first = 0;
			printf("memvirt stats on %s, every %gs, at %s (^C to stop)\n\n", path, period, stamp);
			if (ok)
				stats_table(resp, path);
			else
				printf("no daemon answers on %s; trying again\n", path);
		}
		if (ok)
			json_decref(resp);
		fflush(stdout);
		ts.tv_sec = (time_t)period;
		ts.tv_nsec = (long)((period - (double)ts.tv_sec) * 1e9);
		/* Interrupted by the signal: the loop test sees stats_stop. */
		nanosleep(&ts, NULL);
	}
	return 0;
}

/* The --watch periods taken: shorter would keep a core busy redrawing, longer is no watch. */
#define STATS_PERIOD_MIN 0.1
#define STATS_PERIOD_MAX 86400.0

/* Reads a --watch period, a number of seconds within the bounds. Returns 0 and *out, or -1 with
 * the error printed and *out as it was. */
static int stats_period(const char *s, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	/* !(v >= MIN) also refuses NaN. */
	if (errno != 0 || end == s || *end != '\0' || !(v >= STATS_PERIOD_MIN) ||
	    v > STATS_PERIOD_MAX) {
		fprintf(stderr, "memvirt stats: --watch '%s' is not a number of seconds from %g to %g\n",
			s, STATS_PERIOD_MIN, STATS_PERIOD_MAX);
		return -1;
	}
	*out = v;
	return 0;
}

/* Whether the word after a bare --watch is its period: stats takes no operands, so any word but an
 * option is one, and so is a negative number. */
static int stats_period_word(const char *s)
{
	return s[0] != '-' || isdigit((unsigned char)s[1]) || s[1] == '.';
}

int cmd_stats(int argc, char **argv)
{
	static const struct option opts[] = {
		{"watch", optional_argument, NULL, 'w'},
		{"json", no_argument, NULL, 'j'},
		{"prometheus", no_argument, NULL, 'p'},
		{"socket", required_argument, NULL, 's'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	enum stats_format fmt = STATS_TABLE;
	const char *sock = NULL;
	char paths[2][CLI_PATH_MAX], *text;
	double period = 1;
	int c, watch = 0, nfmt = 0, n;
	json_t *resp;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:h", opts, NULL)) != -1) {
		switch (c) {
		case 'w':
			watch = 1;
			/* --watch 2 as well as --watch=2. */
			if (optarg == NULL && optind < argc && stats_period_word(argv[optind]))
				optarg = argv[optind++];
			if (optarg != NULL && stats_period(optarg, &period) < 0)
				return 2;
			break;
		case 'j':
			fmt = STATS_JSON;
			nfmt++;
			break;
		case 'p':
			fmt = STATS_PROMETHEUS;
			nfmt++;
			break;
		case 's':
			sock = optarg;
			break;
		case 'h':
			stats_usage(stdout);
			return 0;
		default:
			cli_option_error("memvirt stats", c, argv, opts);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "memvirt stats: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (nfmt > 1) {
		fprintf(stderr, "memvirt stats: --json and --prometheus exclude each other\n");
		return 2;
	}
	/* A textfile collector needs one whole exposition per file, written and renamed at once. */
	if (watch && fmt == STATS_PROMETHEUS) {
		fprintf(stderr, "memvirt stats: --prometheus prints one exposition; run it from a timer "
				"instead of --watch\n");
		return 2;
	}
	if (cli_daemons_found(sock, paths, &n) < 0) {
		fprintf(stderr, "memvirt stats: the socket path is too long\n");
		return 2;
	}
	/* The first found is the one discovery names: --watch and the machine formats read it. */
	if (watch)
		return stats_watch(paths[0], fmt, period);
	if (fmt == STATS_TABLE)
		return stats_tables(paths, n);

	if (stats_fetch(paths[0], &resp, 0) != 0)
		return 1;
	switch (fmt) {
	case STATS_TABLE:
		break;
	case STATS_JSON:
		text = json_dumps(resp, JSON_INDENT(2));
		if (text == NULL)
			xoom();
		printf("%s\n", text);
		free(text);
		break;
	case STATS_PROMETHEUS:
		stats_prometheus(resp);
		break;
	}
	json_decref(resp);
	return 0;
}
