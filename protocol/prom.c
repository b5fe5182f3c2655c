/* Prometheus text exposition of a stats answer, shared by memvirtd's /metrics and memvirt stats. */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/prom.h"
#include "protocol/text.h"

/* One metric: its name, type, help, the JSON key it comes from, and what multiplies the value
 * (stall_ns is exported in seconds). */
struct prom_metric {
	const char *name;
	const char *type;
	const char *help;
	const char *key;
	double scale;
};

#define PROM_SCALE_count 1
#define PROM_SCALE_bytes 1
#define PROM_SCALE_ns 1e-9

static const struct prom_metric prom_session_metrics[] = {
	{"memvirt_budget_bytes", "gauge", "Device bytes the process would use on its own.", "budget", 1},
	{"memvirt_grant_bytes", "gauge", "Device bytes the daemon granted the process.", "grant", 1},
#define MV_COUNTER(name, source, type, unit, key, metric, column, place, say, help) \
	{metric, #type, help, key, PROM_SCALE_##unit},
#include "protocol/counters.def"
#undef MV_COUNTER
	{"memvirt_events_total", "counter", "Buffer events the daemon received.", "events", 1},
	{"memvirt_host_want_bytes", "gauge", "Pinned host bytes the process's pool would use on its own.",
	 "host_want", 1},
	{"memvirt_host_grant_bytes", "gauge",
	 "The process's share of the node's pinned host limit (0 while the daemon divides none).",
	 "host_grant", 1},
};

static const struct prom_metric prom_device_metrics[] = {
	{"memvirt_gpu_memory_total_bytes", "gauge", "The device's memory.", "total", 1},
	{"memvirt_device_budget_bytes", "gauge", "The device's budget under the daemon's configuration.",
	 "budget", 1},
	{"memvirt_device_granted_bytes", "gauge", "The sum of the grants of the device's processes.",
	 "granted", 1},
	{"memvirt_device_sessions", "gauge", "Processes using the device through memvirt.", "sessions",
	 1},
};

#define PROM_NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* A series: the labels of one session, or of a device (job NULL). */
struct prom_row {
	const char *gpu;   /* the UUID's 32 hex digits, as the daemon writes it */
	const char *job;
	long long rank;    /* -1: none */
	long long index;   /* gpu_index, -1: unknown */
	const json_t *obj;
};

static uint64_t prom_u64(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);

	if (json_is_integer(v) && json_integer_value(v) > 0)
		return (uint64_t)json_integer_value(v);
	return 0;
}

static long long prom_int(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);

	return json_is_integer(v) && json_integer_value(v) >= 0 ? (long long)json_integer_value(v) : -1;
}

static const char *prom_str(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s != NULL ? s : "";
}

/* A label value: valid, printable UTF-8 (anything else is '?'), with backslash, double quote and
 * newline escaped as the format asks. */
static void prom_label(FILE *f, const char *text)
{
	char clean[256];
	const char *s;

	mv_text_clean(text, strlen(text), clean, sizeof(clean));
	for (s = clean; *s != '\0'; s++) {
		if (*s == '\\' || *s == '"')
			fprintf(f, "\\%c", *s);
		else if (*s == '\n')
			fputs("\\n", f);
		else
			fputc(*s, f);
	}
}

/* DCGM's form of a device: GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx. Anything but 32 hex digits is
 * shown as it came. */
static void prom_gpu(FILE *f, const char *hex)
{
	static const int cut[] = {8, 4, 4, 4, 12};
	size_t i, at = 0;

	if (strlen(hex) != 32 || strspn(hex, "0123456789abcdefABCDEF") != 32) {
		prom_label(f, hex);
		return;
	}
	fputs("GPU-", f);
	for (i = 0; i < PROM_NELEM(cut); i++) {
		fprintf(f, "%s%.*s", i > 0 ? "-" : "", cut[i], hex + at);
		at += (size_t)cut[i];
	}
}

static void prom_labels(FILE *f, const struct prom_row *r)
{
	fputs("{gpu=\"", f);
	prom_gpu(f, r->gpu);
	fputs("\",gpu_index=\"", f);
	if (r->index >= 0)
		fprintf(f, "%lld", r->index);
	if (r->job != NULL) {
		fputs("\",job=\"", f);
		prom_label(f, r->job);
		fputs("\",rank=\"", f);
		if (r->rank >= 0)
			fprintf(f, "%lld", r->rank);
	}
	fputs("\"}", f);
}

static void prom_value(FILE *f, double v)
{
	/* Integers stay exact up to 2^53; larger byte counts print in %.17g without loss of form. */
	if (v == floor(v) && fabs(v) < 9007199254740992.0)
		fprintf(f, " %.0f\n", v);
	else
		fprintf(f, " %.17g\n", v);
}

/* Orders the series by their labels, so that one series' processes are neighbours. */
static int prom_row_cmp(const void *pa, const void *pb)
{
	const struct prom_row *a = pa, *b = pb;
	int c = strcmp(a->gpu, b->gpu);

	if (c == 0 && a->job != NULL && b->job != NULL)
		c = strcmp(a->job, b->job);
	if (c == 0)
		c = (a->rank > b->rank) - (a->rank < b->rank);
	return c;
}

static int prom_same(const struct prom_row *a, const struct prom_row *b)
{
	return prom_row_cmp(a, b) == 0;
}

/* The rows of list (sessions when jobs, else devices), sorted. NULL with *n 0 when empty. */
static struct prom_row *prom_rows(const json_t *list, int jobs, size_t *n)
{
	struct prom_row *rows;
	const json_t *o;
	size_t i;

	*n = json_array_size(list);
	if (*n == 0)
		return NULL;
	rows = calloc(*n, sizeof(*rows));
	if (rows == NULL)
		return NULL;
	json_array_foreach(list, i, o) {
		rows[i].gpu = prom_str(o, "device");
		rows[i].job = jobs ? prom_str(o, "job") : NULL;
		rows[i].rank = jobs ? prom_int(o, "rank") : -1;
		rows[i].index = prom_int(o, "gpu_index");
		rows[i].obj = o;
	}
	qsort(rows, *n, sizeof(*rows), prom_row_cmp);
	return rows;
}

/* One metric over rows[0, n): a series per distinct label set, the sum of its rows' values. */
static void prom_metric(FILE *f, const struct prom_metric *m, const struct prom_row *rows, size_t n)
{
	size_t i, j;
	uint64_t sum;

	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", m->name, m->help, m->name, m->type);
	for (i = 0; i < n; i = j) {
		sum = 0;
		for (j = i; j < n && prom_same(&rows[i], &rows[j]); j++)
			sum += prom_u64(rows[j].obj, m->key);
		fputs(m->name, f);
		prom_labels(f, &rows[i]);
		prom_value(f, (double)sum * m->scale);
	}
}

/* The node's pinned host limit and what is granted of it, while the daemon divides one. */
static void prom_host(FILE *f, const json_t *host)
{
	if (!json_is_integer(json_object_get(host, "limit")))
		return;
	fprintf(f, "# HELP memvirt_host_limit_bytes The node's pinned host limit that the daemon divides.\n"
		"# TYPE memvirt_host_limit_bytes gauge\nmemvirt_host_limit_bytes");
	prom_value(f, (double)prom_u64(host, "limit"));
	fprintf(f, "# HELP memvirt_host_granted_bytes The sum of the processes' shares of it.\n"
		"# TYPE memvirt_host_granted_bytes gauge\nmemvirt_host_granted_bytes");
	prom_value(f, (double)prom_u64(host, "granted"));
}

char *mv_prom_render(const json_t *stats, size_t *len)
{
	struct prom_row *sessions, *devices;
	size_t ns, nd, k;
	char *text = NULL;
	const char *version = json_string_value(json_object_get(stats, "version"));
	FILE *f;

	sessions = prom_rows(json_object_get(stats, "sessions"), 1, &ns);
	devices = prom_rows(json_object_get(stats, "devices"), 0, &nd);
	f = open_memstream(&text, len);
	if (f == NULL || (ns > 0 && sessions == NULL) || (nd > 0 && devices == NULL)) {
		if (f != NULL)
			fclose(f);
		free(text);
		free(sessions);
		free(devices);
		return NULL;
	}
	if (version != NULL) {
		fputs("# HELP memvirt_build_info The memvirtd that answers, by version.\n"
		      "# TYPE memvirt_build_info gauge\nmemvirt_build_info{version=\"", f);
		prom_label(f, version);
		fputs("\"} 1\n", f);
	}
	for (k = 0; k < PROM_NELEM(prom_session_metrics); k++)
		prom_metric(f, &prom_session_metrics[k], sessions, ns);
	for (k = 0; k < PROM_NELEM(prom_device_metrics); k++)
		prom_metric(f, &prom_device_metrics[k], devices, nd);
	prom_host(f, json_object_get(stats, "host"));
	free(sessions);
	free(devices);
	if (ferror(f)) {
		fclose(f);
		free(text);
		return NULL;
	}
	if (fclose(f) != 0) {
		free(text);
		return NULL;
	}
	return text;
}
