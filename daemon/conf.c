/* memvirt.json: loading it, checking every key, and reporting a bad one at its line and column. */
#include "config.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "daemon/conf.h"
#include "policies/policy.h"
#include "protocol/units.h"

/* A configuration file larger than this is refused rather than read (a device file, say). */
#define CONFIG_MAX_BYTES (4u << 20)

/* Keys deeper than this are not the schema's; their positions are not kept. */
#define CONFIG_MAX_DEPTH 4

static const char *const log_levels[] = {"debug", "info", "warn", "error", NULL};

/* The daemon treats running out of memory as fatal (STYLE.md). */
static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (p == NULL) {
		fputs("memvirt: out of memory\n", stderr);
		abort();
	}
	return p;
}

static char *xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = xcalloc(1, n);

	memcpy(p, s, n);
	return p;
}

/* Replaces the string *slot owns with a copy of s. */
static void set_string(char **slot, const char *s)
{
	free(*slot);
	*slot = s != NULL ? xstrdup(s) : NULL;
}

/* ---- positions -------------------------------------------------------------------------------- */

/* Where one key and its value start (1-based line and column, columns counted in characters as
 * jansson counts them). jansson keeps no positions, so a second pass over the text records them. */
struct pos {
	char **path;   /* the keys from the top level down to this one, decoded */
	size_t depth;  /* 0: the top-level value, which has no key */
	int key_line, key_col;
	int val_line, val_col;
};

struct posmap {
	struct pos *v;
	size_t n, cap;
};

/* The scanner's state. It runs only on text jansson has accepted, but never reads past the end. */
struct scan {
	const char *s, *end;
	int line, col;                    /* of the next character */
	struct posmap *map;
	char *stack[CONFIG_MAX_DEPTH];    /* the keys above the value being scanned, borrowed */
	size_t depth;
};

static int peek(const struct scan *sc)
{
	return sc->s < sc->end ? (unsigned char)*sc->s : -1;
}

static void advance(struct scan *sc)
{
	unsigned char c;

	if (sc->s >= sc->end)
		return;
	c = (unsigned char)*sc->s++;
	/* A UTF-8 continuation byte belongs to the character already counted. */
	if (c == '\n') {
		sc->line++;
		sc->col = 1;
	} else if ((c & 0xC0) != 0x80) {
		sc->col++;
	}
}

static void skip_space(struct scan *sc)
{
	int c;

	while ((c = peek(sc)) == ' ' || c == '\t' || c == '\n' || c == '\r')
		advance(sc);
}

static void put_utf8(char **o, unsigned long cp)
{
	unsigned char *p = (unsigned char *)*o;

	if (cp < 0x80) {
		*p++ = (unsigned char)cp;
	} else if (cp < 0x800) {
		*p++ = (unsigned char)(0xC0 | (cp >> 6));
		*p++ = (unsigned char)(0x80 | (cp & 0x3F));
	} else if (cp < 0x10000) {
		*p++ = (unsigned char)(0xE0 | (cp >> 12));
		*p++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
		*p++ = (unsigned char)(0x80 | (cp & 0x3F));
	} else {
		*p++ = (unsigned char)(0xF0 | (cp >> 18));
		*p++ = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
		*p++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
		*p++ = (unsigned char)(0x80 | (cp & 0x3F));
	}
	*o = (char *)p;
}

static unsigned long hex4(struct scan *sc)
{
	unsigned long v = 0;

	for (int i = 0; i < 4; i++) {
		int c = peek(sc);
		unsigned d;

		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			d = (unsigned)(c - 'A' + 10);
		else
			return v;
		v = v * 16 + d;
		advance(sc);
	}
	return v;
}

/* Scans a string at its opening quote and returns it decoded, as jansson decodes keys. An escape
 * never yields more bytes than it takes, so the text's length bounds the result. */
static char *scan_string(struct scan *sc)
{
	char *out = xcalloc(1, (size_t)(sc->end - sc->s) + 1), *o = out;
	int c;

	advance(sc);
	while ((c = peek(sc)) != -1 && c != '"') {
		if (c != '\\') {
			*o++ = (char)c;
			advance(sc);
			continue;
		}
		advance(sc);
		c = peek(sc);
		advance(sc);
		switch (c) {
		case 'b': *o++ = '\b'; break;
		case 'f': *o++ = '\f'; break;
		case 'n': *o++ = '\n'; break;
		case 'r': *o++ = '\r'; break;
		case 't': *o++ = '\t'; break;
		case 'u': {
			unsigned long cp = hex4(sc);

			/* A high surrogate and the low one after it make one character. */
			if (cp >= 0xD800 && cp < 0xDC00 && peek(sc) == '\\' && sc->s + 1 < sc->end &&
			    sc->s[1] == 'u') {
				unsigned long lo;

				advance(sc);
				advance(sc);
				lo = hex4(sc);
				cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
			}
			put_utf8(&o, cp);
			break;
		}
		case -1: break;
		default: *o++ = (char)c; break;
		}
	}
	advance(sc);
	return out;
}

static void record(struct scan *sc, const char *key, int kl, int kc, int vl, int vc)
{
	struct posmap *m = sc->map;
	struct pos *p;

	if (m->n == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 32;
		m->v = realloc(m->v, m->cap * sizeof(*m->v));
		if (m->v == NULL) {
			fputs("memvirt: out of memory\n", stderr);
			abort();
		}
	}
	p = &m->v[m->n++];
	p->depth = sc->depth + (key != NULL);
	p->path = xcalloc(p->depth, sizeof(*p->path));
	for (size_t i = 0; i < sc->depth; i++)
		p->path[i] = xstrdup(sc->stack[i]);
	if (key != NULL)
		p->path[sc->depth] = xstrdup(key);
	p->key_line = kl;
	p->key_col = kc;
	p->val_line = vl;
	p->val_col = vc;
}

static void scan_value(struct scan *sc, int keep);

/* An object's keys are kept while keep is set and the path is shallow enough. */
static void scan_object(struct scan *sc, int keep)
{
	advance(sc);
	skip_space(sc);
	while (peek(sc) == '"') {
		int kl = sc->line, kc = sc->col, vl, vc;
		char *key = scan_string(sc);
		int keep_this = keep && sc->depth < CONFIG_MAX_DEPTH;

		skip_space(sc);
		if (peek(sc) == ':')
			advance(sc);
		skip_space(sc);
		vl = sc->line;
		vc = sc->col;
		if (keep_this) {
			record(sc, key, kl, kc, vl, vc);
			sc->stack[sc->depth++] = key;
		}
		scan_value(sc, keep_this);
		if (keep_this)
			sc->depth--;
		free(key);
		skip_space(sc);
		if (peek(sc) != ',')
			break;
		advance(sc);
		skip_space(sc);
	}
	if (peek(sc) == '}')
		advance(sc);
}

static void scan_value(struct scan *sc, int keep)
{
	int c = peek(sc);

	if (c == '{') {
		scan_object(sc, keep);
	} else if (c == '[') {
		/* No key of the schema lies inside an array. */
		advance(sc);
		skip_space(sc);
		while (peek(sc) != -1 && peek(sc) != ']') {
			scan_value(sc, 0);
			skip_space(sc);
			if (peek(sc) != ',')
				break;
			advance(sc);
			skip_space(sc);
		}
		if (peek(sc) == ']')
			advance(sc);
	} else if (c == '"') {
		free(scan_string(sc));
	} else {
		while ((c = peek(sc)) != -1 && c != ',' && c != '}' && c != ']' && c != ' ' &&
		       c != '\t' && c != '\n' && c != '\r')
			advance(sc);
	}
}

static void posmap_build(struct posmap *m, const char *text, size_t len)
{
	struct scan sc = {.s = text, .end = text + len, .line = 1, .col = 1, .map = m};

	skip_space(&sc);
	record(&sc, NULL, sc.line, sc.col, sc.line, sc.col);
	scan_value(&sc, 1);
}

static void posmap_free(struct posmap *m)
{
	for (size_t i = 0; i < m->n; i++) {
		for (size_t j = 0; j < m->v[i].depth; j++)
			free(m->v[i].path[j]);
		free(m->v[i].path);
	}
	free(m->v);
}

static const struct pos *posmap_find(const struct posmap *m, const char *const *path, size_t depth)
{
	for (size_t i = 0; i < m->n; i++) {
		const struct pos *p = &m->v[i];
		size_t j;

		if (p->depth != depth)
			continue;
		for (j = 0; j < depth && strcmp(p->path[j], path[j]) == 0; j++)
			;
		if (j == depth)
			return p;
	}
	return NULL;
}

/* ---- messages --------------------------------------------------------------------------------- */

/* Copies s for a one-line message: control characters become '?', and a long one is cut short. */
static const char *shown(const char *s, char *buf, size_t len)
{
	size_t i = 0;

	for (; *s != '\0' && i + 1 < len; s++)
		buf[i++] = (unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s;
	buf[i] = '\0';
	if (*s != '\0' && len > 4)
		memcpy(buf + len - 4, "...", 4);
	return buf;
}

/* What a value is, for "expected X, got Y". */
static const char *kind_of(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "an array";
	case JSON_STRING: return "a string";
	case JSON_INTEGER: return "a number";
	case JSON_REAL: return "a number";
	case JSON_TRUE: return "a boolean";
	case JSON_FALSE: return "a boolean";
	default: return "null";
	}
}

/* The edit distance between two short strings, or a large number for long ones. */
static size_t levenshtein(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), row[65];

	if (la > 64 || lb > 64)
		return (size_t)-1;
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];

		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j], best = diag + (a[i - 1] != b[j - 1]);

			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			diag = up;
			row[j] = best;
		}
	}
	return row[lb];
}

/* ---- the schema ------------------------------------------------------------------------------- */

enum kind {
	K_SECTION,  /* an object of the fields in sub */
	K_JOBS,     /* job names to job objects */
	K_LEVEL,
	K_PATH,
	K_SOCKET,
	K_LISTEN,   /* an address and port to listen on (mvd_listen_parse) */
	K_BUDGET,
	K_SIZE,
	K_WEIGHT,
	K_POLICY,
	K_BOOL,
	K_KNOB,      /* a planning knob: its name's range in policies/params.c */
	K_KERNEL,    /* a kernel's name */
	K_LIMIT,     /* a per-user limit: its range in limit_ranges */
	K_UID,       /* a user id */
	K_CGROUP,    /* a cgroup path */
	K_UNIT,      /* a systemd unit's name */
};

/* One key: its name, what its value must be, where in the struct it goes, and for a job's knob
 * the MVD_JOB_* bit that says the file gave it. A K_KNOB key is named as its knob (mv_knob_find). */
struct field {
	const char *name;
	enum kind kind;
	size_t off;
	const struct field *sub;
	unsigned bit;
};

static const struct field daemon_fields[] = {
	{"log_level", K_LEVEL, offsetof(struct mvd_config, log_level), NULL, 0},
	{"log_file", K_PATH, offsetof(struct mvd_config, log_file), NULL, 0},
	{"socket", K_SOCKET, offsetof(struct mvd_config, socket), NULL, 0},
	{"metrics", K_LISTEN, offsetof(struct mvd_config, metrics), NULL, 0},
	{"metrics_job_names", K_BOOL, offsetof(struct mvd_config, metrics_job_names), NULL, 0},
	{NULL, 0, 0, NULL, 0},
};

static const struct field device_fields[] = {
	{"budget", K_BUDGET, offsetof(struct mvd_config, device_budget), NULL, 0},
	{"total", K_SIZE, offsetof(struct mvd_config, device_total), NULL, 0},
	{"weight_max", K_WEIGHT, offsetof(struct mvd_config, weight_max), NULL, 0},
	{NULL, 0, 0, NULL, 0},
};

static const struct field host_fields[] = {
	{"limit", K_BUDGET, offsetof(struct mvd_config, host_limit_spec), NULL, 0},
	{NULL, 0, 0, NULL, 0},
};

static const struct field library_fields[] = {
	{"slab_threshold", K_SIZE, offsetof(struct mvd_config, slab_threshold), NULL, 0},
	{"host_limit", K_SIZE, offsetof(struct mvd_config, host_limit), NULL, 0},
	{"safety_net", K_BOOL, offsetof(struct mvd_config, safety_net), NULL, 0},
	{NULL, 0, 0, NULL, 0},
};

static const struct field limits_fields[] = {
	{"connections_per_user", K_LIMIT, offsetof(struct mvd_config, conns_per_user), NULL, 0},
	{"sessions_per_user", K_LIMIT, offsetof(struct mvd_config, sessions_per_user), NULL, 0},
	{"buffered_per_user", K_LIMIT, offsetof(struct mvd_config, buffered_per_user), NULL, 0},
	{"reserve_fds", K_LIMIT, offsetof(struct mvd_config, reserve_fds), NULL, 0},
	{"frame_timeout", K_LIMIT, offsetof(struct mvd_config, frame_timeout_s), NULL, 0},
	{"log_lines", K_LIMIT, offsetof(struct mvd_config, log_lines), NULL, 0},
	{NULL, 0, 0, NULL, 0},
};

static const struct field top_fields[] = {
	{"daemon", K_SECTION, 0, daemon_fields, 0},
	{"device", K_SECTION, 0, device_fields, 0},
	{"host", K_SECTION, 0, host_fields, 0},
	{"jobs", K_JOBS, 0, NULL, 0},
	{"library", K_SECTION, 0, library_fields, 0},
	{"limits", K_SECTION, 0, limits_fields, 0},
	{NULL, 0, 0, NULL, 0},
};

static const struct field job_fields[] = {
	{"weight", K_WEIGHT, offsetof(struct mvd_job, weight), NULL, 0},
	{"min", K_SIZE, offsetof(struct mvd_job, min), NULL, 0},
	{"policy", K_POLICY, offsetof(struct mvd_job, policy), NULL, MVD_JOB_POLICY},
	{"page_min", K_KNOB, offsetof(struct mvd_job, page_min), NULL, MVD_JOB_PAGE_MIN},
	{"lookahead", K_KNOB, offsetof(struct mvd_job, lookahead), NULL, MVD_JOB_LOOKAHEAD},
	{"heavy_fraction", K_KNOB, offsetof(struct mvd_job, heavy_fraction), NULL,
	 MVD_JOB_HEAVY_FRACTION},
	{"headroom", K_KNOB, offsetof(struct mvd_job, headroom), NULL, MVD_JOB_HEADROOM},
	{"iteration_marker", K_KERNEL, offsetof(struct mvd_job, iteration_marker), NULL,
	 MVD_JOB_ITERATION_MARKER},
	{"uid", K_UID, offsetof(struct mvd_job, uid), NULL, 0},
	{"cgroup", K_CGROUP, offsetof(struct mvd_job, cgroup), NULL, 0},
	{"unit", K_UNIT, offsetof(struct mvd_job, unit), NULL, 0},
	{NULL, 0, 0, NULL, 0},
};

/* What each kind of value must look like, for "expected X". A knob says it itself
 * (mv_knob_expected). */
static const char *expected(enum kind k)
{
	switch (k) {
	case K_SECTION: return "an object";
	case K_JOBS: return "an object of job names";
	case K_LEVEL: return "a log level such as \"info\"";
	case K_PATH: return "a path such as \"/var/log/memvirtd.log\"";
	case K_SOCKET: return "a path such as \"/run/memvirt/memvirtd.sock\"";
	case K_LISTEN: return "an address such as \"127.0.0.1:9464\" or \"[::1]:9464\"";
	case K_BUDGET: return "a string such as \"60GiB\" or \"90%\"";
	case K_SIZE: return "a size such as \"4GiB\" or a number of bytes";
	case K_WEIGHT: return "a whole number from 1 to 1000";
	case K_POLICY: return "a policy name such as \"lru\"";
	case K_KERNEL: return "a kernel name";
	case K_LIMIT: return "a whole number";
	case K_UID: return "a user id from 0 to 4294967294";
	case K_CGROUP: return "a cgroup path such as \"/system.slice/train.service\"";
	case K_UNIT: return "a unit name such as \"train.service\"";
	default: return "true or false";
	}
}

/* ---- checking --------------------------------------------------------------------------------- */

struct loader {
	const char *file;
	struct posmap map;
	char *err;
	size_t errlen;
	const char *path[CONFIG_MAX_DEPTH];  /* the keys down to the value being checked, borrowed */
	size_t depth;
};

/* Writes the error line for the current path, at its key or at its value, and returns -1. */
static int fail(struct loader *l, int at_key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct loader *l, int at_key, const char *fmt, ...)
{
	const struct pos *p = posmap_find(&l->map, l->path, l->depth);
	char msg[512], keys[256], part[128];
	size_t k = 0;
	va_list ap;

	if (l->err == NULL || l->errlen == 0)
		return -1;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	keys[0] = '\0';
	for (size_t i = 0; i < l->depth && k < sizeof(keys); i++) {
		/* An empty job name would vanish between two dots. */
		const char *name = l->path[i][0] != '\0' ? shown(l->path[i], part, sizeof(part)) : "\"\"";
		int n = snprintf(keys + k, sizeof(keys) - k, "%s%s", i ? "." : "", name);

		if (n > 0)
			k += (size_t)n;
	}
	if (l->depth > 0 && k < sizeof(keys))
		snprintf(keys + k, sizeof(keys) - k, ": ");
	snprintf(l->err, l->errlen, "%s:%d:%d: %s%s", l->file,
		 p != NULL ? (at_key ? p->key_line : p->val_line) : 1,
		 p != NULL ? (at_key ? p->key_col : p->val_col) : 1, keys, msg);
	return -1;
}

/* v is not what wanted (a phrase of expected() or mv_knob_expected()) says. */
static int wrong_type(struct loader *l, const char *wanted, const json_t *v)
{
	return fail(l, 0, "expected %s, got %s", wanted, kind_of(v));
}

static int one_of(const char *s, const char *const *names)
{
	for (; *names != NULL; names++)
		if (strcmp(s, *names) == 0)
			return 1;
	return 0;
}

/* Joins names as "a, b or c" (or with "and"). */
static const char *list(const char *const *names, const char *conj, char *buf, size_t len)
{
	size_t k = 0, n = 0;

	while (names[n] != NULL)
		n++;
	buf[0] = '\0';
	for (size_t i = 0; i < n && k < len; i++) {
		int w;

		if (i > 0 && i + 1 == n)
			w = snprintf(buf + k, len - k, " %s %s", conj, names[i]);
		else
			w = snprintf(buf + k, len - k, "%s%s", i > 0 ? ", " : "", names[i]);
		if (w > 0)
			k += (size_t)w;
	}
	return buf;
}

/* A size given as a string ("4GiB") or as a whole number of bytes. */
static int check_size(struct loader *l, const json_t *v, uint64_t *out)
{
	char buf[64];

	if (json_is_string(v)) {
		if (mv_parse_size(json_string_value(v), out) != 0)
			return fail(l, 0, "'%s' is not a size such as 4GiB",
				    shown(json_string_value(v), buf, sizeof(buf)));
		return 0;
	}
	if (json_is_integer(v)) {
		if (json_integer_value(v) < 0)
			return fail(l, 0, "%lld is not a size such as 4GiB",
				    (long long)json_integer_value(v));
		*out = (uint64_t)json_integer_value(v);
		return 0;
	}
	if (json_is_real(v)) {
		double d = json_real_value(v);

		/* 1e9 is a whole number of bytes, even written as a real. */
		if (!(d >= 0) || d != floor(d) || d >= 18446744073709551615.0)
			return fail(l, 0, "%g is not a size such as 4GiB", d);
		*out = (uint64_t)d;
		return 0;
	}
	return wrong_type(l, expected(K_SIZE), v);
}

static int check_budget(struct loader *l, const json_t *v, char **out)
{
	const char *s;
	char buf[64], *end;
	uint64_t x;
	size_t n;

	/* A bare number is refused: 90 could mean bytes or a percentage. */
	if (!json_is_string(v))
		return wrong_type(l, expected(K_BUDGET), v);
	s = json_string_value(v);
	n = strlen(s);
	if (n > 0 && s[n - 1] == '%') {
		double pct;

		/* Checked against a large whole so that a small but non-zero percentage stays so. */
		if (mv_parse_size_or_percent(s, (uint64_t)1 << 50, &x) != 0) {
			pct = strtod(s, &end);
			while (*end == ' ')
				end++;
			if (end != s && strcmp(end, "%") == 0 && pct > 100 && s[0] != '-' && s[0] != '+')
				return fail(l, 0, "'%s' is more than 100%%", shown(s, buf, sizeof(buf)));
			return fail(l, 0, "'%s' is not a percentage such as 90%%",
				    shown(s, buf, sizeof(buf)));
		}
	} else if (mv_parse_size(s, &x) != 0) {
		return fail(l, 0, "'%s' is not a size such as 4GiB or a percentage such as 90%%",
			    shown(s, buf, sizeof(buf)));
	}
	if (x == 0)
		return fail(l, 0, "'%s' leaves no memory: the budget must be more than 0",
			    shown(s, buf, sizeof(buf)));
	set_string(out, s);
	return 0;
}

static int check_value(struct loader *l, struct mvd_config *c, const struct field *f,
		       const json_t *v, void *base);

/* Checks each key of obj against fields and stores the values into base. */
static int check_fields(struct loader *l, struct mvd_config *c, const json_t *obj,
			const struct field *fields, void *base)
{
	const char *key;
	json_t *v;

	json_object_foreach((json_t *)obj, key, v) {
		const struct field *f, *near = NULL;
		size_t best = 3;
		char buf[128], known[256];
		const char *names[16];
		size_t n = 0;
		int rc;

		for (f = fields; f->name != NULL && strcmp(f->name, key) != 0; f++)
			;
		l->path[l->depth++] = key;
		if (f->name == NULL) {
			for (f = fields; f->name != NULL; f++) {
				size_t d = levenshtein(key, f->name);

				if (d < best) {
					best = d;
					near = f;
				}
				if (n + 1 < sizeof(names) / sizeof(names[0]))
					names[n++] = f->name;
			}
			names[n] = NULL;
			if (near != NULL)
				return fail(l, 1, "unknown key '%s' (did you mean '%s'?)",
					    shown(key, buf, sizeof(buf)), near->name);
			return fail(l, 1, "unknown key '%s'; expected %s",
				    shown(key, buf, sizeof(buf)), list(names, "or", known, sizeof(known)));
		}
		rc = check_value(l, c, f, v, base);
		l->depth--;
		if (rc != 0)
			return rc;
		/* Only a job's fields have bits: base is then a struct mvd_job. */
		if (f->bit != 0)
			((struct mvd_job *)base)->set |= f->bit;
	}
	return 0;
}

/* "jobs": "default" first, whichever comes first in the file, since the other jobs start from it. */
static int check_jobs(struct loader *l, struct mvd_config *c, const json_t *obj)
{
	const char *key;
	json_t *v;

	v = json_object_get(obj, "default");
	if (v != NULL) {
		int rc;

		l->path[l->depth++] = "default";
		if (!json_is_object(v))
			return wrong_type(l, expected(K_SECTION), v);
		rc = check_fields(l, c, v, job_fields, &c->defaults);
		if (rc == 0 && (c->defaults.uid >= 0 || c->defaults.cgroup != NULL ||
				c->defaults.unit != NULL))
			rc = fail(l, 0, "the default job matches every process: it takes no uid, "
				  "cgroup or unit");
		l->depth--;
		if (rc != 0)
			return rc;
	}
	c->jobs = xcalloc(json_object_size(obj), sizeof(*c->jobs));
	json_object_foreach((json_t *)obj, key, v) {
		struct mvd_job *j;
		int rc;

		if (strcmp(key, "default") == 0)
			continue;
		l->path[l->depth++] = key;
		if (key[0] == '\0')
			return fail(l, 1, "a job name must not be empty");
		if (!json_is_object(v))
			return wrong_type(l, expected(K_SECTION), v);
		j = &c->jobs[c->njobs++];
		j->name = xstrdup(key);
		j->weight = c->defaults.weight;
		j->min = c->defaults.min;
		j->policy = xstrdup(c->defaults.policy);
		j->page_min = c->defaults.page_min;
		j->lookahead = c->defaults.lookahead;
		j->heavy_fraction = c->defaults.heavy_fraction;
		j->headroom = c->defaults.headroom;
		if (c->defaults.iteration_marker != NULL)
			j->iteration_marker = xstrdup(c->defaults.iteration_marker);
		j->set = c->defaults.set;
		j->uid = -1;
		rc = check_fields(l, c, v, job_fields, j);
		l->depth--;
		if (rc != 0)
			return rc;
	}
	return 0;
}

static int check_level(struct loader *l, const json_t *v, char **at)
{
	char buf[64], names[128];

	if (!json_is_string(v))
		return wrong_type(l, expected(K_LEVEL), v);
	if (!one_of(json_string_value(v), log_levels))
		return fail(l, 0, "'%s' is not a log level: %s",
			    shown(json_string_value(v), buf, sizeof(buf)),
			    list(log_levels, "or", names, sizeof(names)));
	set_string(at, json_string_value(v));
	return 0;
}

/* A file's path (K_PATH), or a socket's, which must fit in sun_path (K_SOCKET). */
static int check_path(struct loader *l, enum kind k, const json_t *v, char **at)
{
	if (!json_is_string(v))
		return wrong_type(l, expected(k), v);
	if (json_string_length(v) == 0)
		return fail(l, 0, "a path must not be empty");
	if (k == K_SOCKET && json_string_length(v) >= sizeof(((struct sockaddr_un *)NULL)->sun_path))
		return fail(l, 0, "a socket path must be shorter than %zu bytes",
			    sizeof(((struct sockaddr_un *)NULL)->sun_path));
	set_string(at, json_string_value(v));
	return 0;
}

static int check_listen(struct loader *l, const json_t *v, char **at)
{
	struct sockaddr_storage sa;
	char why[256];

	if (!json_is_string(v))
		return wrong_type(l, expected(K_LISTEN), v);
	if (mvd_listen_parse(json_string_value(v), &sa, why, sizeof(why)) < 0)
		return fail(l, 0, "%s", why);
	set_string(at, json_string_value(v));
	return 0;
}

static int check_weight(struct loader *l, const json_t *v, uint32_t *at)
{
	if (json_is_real(v))
		return fail(l, 0, "%g is not a whole number from 1 to 1000", json_real_value(v));
	if (!json_is_integer(v))
		return wrong_type(l, expected(K_WEIGHT), v);
	if (json_integer_value(v) < 1 || json_integer_value(v) > 1000)
		return fail(l, 0, "weight %lld is out of range 1..1000", (long long)json_integer_value(v));
	*at = (uint32_t)json_integer_value(v);
	return 0;
}

static int check_policy(struct loader *l, const json_t *v, char **at)
{
	char buf[64], names[128];

	if (!json_is_string(v))
		return wrong_type(l, expected(K_POLICY), v);
	if (mv_policy_find(json_string_value(v)) == NULL)
		return fail(l, 0, "unknown policy '%s'; the known policies are %s",
			    shown(json_string_value(v), buf, sizeof(buf)),
			    mvd_policy_names("and", names, sizeof(names)));
	set_string(at, json_string_value(v));
	return 0;
}

/* A planning knob: its spelling is the file's (a size as check_size reads it), its range the one
 * every setting of the knob is held to. A size goes in a uint64_t, a whole number in a uint32_t,
 * any other number in a double. */
static int check_knob(struct loader *l, const char *name, const json_t *v, void *at)
{
	const struct mv_knob *k = mv_knob_find(name);
	char wanted[128], msg[256];
	uint64_t size = 0;
	double d;

	mv_knob_expected(k, MV_KNOB_WORDS, wanted, sizeof(wanted));
	if (k->type == MV_KNOB_SIZE) {
		if (check_size(l, v, &size) != 0)
			return -1;
		d = (double)size;
	} else if (k->type == MV_KNOB_WHOLE && json_is_real(v)) {
		return fail(l, 0, "%g is not %s", json_real_value(v), wanted);
	} else if (k->type == MV_KNOB_WHOLE ? !json_is_integer(v) : !json_is_number(v)) {
		return wrong_type(l, wanted, v);
	} else {
		d = json_number_value(v);
	}
	if (mv_knob_check(k, d, msg, sizeof(msg)) != 0)
		return fail(l, 0, "%s", msg);
	if (k->type == MV_KNOB_SIZE)
		*(uint64_t *)at = size;
	else if (k->type == MV_KNOB_WHOLE)
		*(uint32_t *)at = (uint32_t)json_integer_value(v);
	else
		*(double *)at = d;
	return 0;
}

static int check_kernel(struct loader *l, const json_t *v, char **at)
{
	const char *k;
	char buf[64];

	if (!json_is_string(v))
		return wrong_type(l, expected(K_KERNEL), v);
	k = json_string_value(v);
	if (k[0] == '\0')
		return fail(l, 0, "a kernel name must not be empty");
	if (json_string_length(v) > MV_TRACE_NAME_MAX)
		return fail(l, 0, "a kernel name is at most %d bytes, not %zu", MV_TRACE_NAME_MAX,
			    json_string_length(v));
	for (const char *q = k; *q != '\0'; q++)
		if ((unsigned char)*q < 0x20 || *q == 0x7f)
			return fail(l, 0, "'%s' is not a kernel name: it holds a control character",
				    shown(k, buf, sizeof(buf)));
	set_string(at, k);
	return 0;
}

/* ---- limits ---- */

/* Each per-user limit's range. A size (buffered_per_user) goes in a uint64_t, the others, whole
 * numbers, in a uint32_t. The least buffer is a whole largest frame, so that a user can always
 * send one. */
static const struct {
	const char *name;
	int size;
	uint64_t lo, hi;
	const char *unit;
} limit_ranges[] = {
	{"connections_per_user", 0, 1, 1000000, "connections"},
	{"sessions_per_user", 0, 1, 1000000, "sessions"},
	{"buffered_per_user", 1, (2u << 20), (uint64_t)1 << 40, "bytes"},
	{"reserve_fds", 0, 8, 1000000, "descriptors"},
	{"frame_timeout", 0, 1, 3600, "seconds"},
	{"log_lines", 0, 1, 1000000, "lines a minute"},
};

static int check_limit(struct loader *l, const char *name, const json_t *v, void *at)
{
	size_t i = 0;
	uint64_t x;

	while (strcmp(limit_ranges[i].name, name) != 0)
		i++;
	if (limit_ranges[i].size) {
		if (check_size(l, v, &x) != 0)
			return -1;
	} else if (!json_is_integer(v)) {
		return fail(l, 0, "expected a whole number of %s from %llu to %llu, got %s",
			    limit_ranges[i].unit, (unsigned long long)limit_ranges[i].lo,
			    (unsigned long long)limit_ranges[i].hi,
			    json_is_real(v) ? "a fraction" : kind_of(v));
	} else if (json_integer_value(v) < 0) {
		return fail(l, 0, "%lld %s is out of range %llu..%llu", (long long)json_integer_value(v),
			    limit_ranges[i].unit, (unsigned long long)limit_ranges[i].lo,
			    (unsigned long long)limit_ranges[i].hi);
	} else {
		x = (uint64_t)json_integer_value(v);
	}
	if (x < limit_ranges[i].lo || x > limit_ranges[i].hi)
		return fail(l, 0, "%llu %s is out of range %llu..%llu", (unsigned long long)x,
			    limit_ranges[i].unit, (unsigned long long)limit_ranges[i].lo,
			    (unsigned long long)limit_ranges[i].hi);
	if (limit_ranges[i].size)
		*(uint64_t *)at = x;
	else
		*(uint32_t *)at = (uint32_t)x;
	return 0;
}

/* Who a job entry is for: a uid (K_UID), a cgroup path (K_CGROUP) or a unit's name (K_UNIT). */
static int check_ident(struct loader *l, enum kind k, const json_t *v, void *at)
{
	const char *t;
	char buf[64];

	if (k == K_UID) {
		if (!json_is_integer(v))
			return wrong_type(l, expected(k), v);
		if (json_integer_value(v) < 0 || json_integer_value(v) > (json_int_t)UINT32_MAX - 1)
			return fail(l, 0, "uid %lld is out of range 0..4294967294",
				    (long long)json_integer_value(v));
		*(long long *)at = (long long)json_integer_value(v);
		return 0;
	}
	if (!json_is_string(v))
		return wrong_type(l, expected(k), v);
	t = json_string_value(v);
	if (k == K_CGROUP && t[0] != '/')
		return fail(l, 0, "'%s' is not a cgroup path: it must start with '/'",
			    shown(t, buf, sizeof(buf)));
	if (k == K_UNIT && (t[0] == '\0' || strchr(t, '/') != NULL))
		return fail(l, 0, "'%s' is not a unit name", shown(t, buf, sizeof(buf)));
	for (const char *q = t; *q != '\0'; q++)
		if ((unsigned char)*q < 0x20 || *q == 0x7f)
			return fail(l, 0, "'%s' holds a control character", shown(t, buf, sizeof(buf)));
	set_string((char **)at, t);
	return 0;
}

/* Checks one value against its field and stores it at base + f->off. */
static int check_value(struct loader *l, struct mvd_config *c, const struct field *f,
		       const json_t *v, void *base)
{
	void *at = (char *)base + f->off;

	switch (f->kind) {
	case K_SECTION:
		if (!json_is_object(v))
			return wrong_type(l, expected(f->kind), v);
		return check_fields(l, c, v, f->sub, c);
	case K_JOBS:
		if (!json_is_object(v))
			return wrong_type(l, expected(f->kind), v);
		return check_jobs(l, c, v);
	case K_LEVEL:
		return check_level(l, v, at);
	case K_PATH:
	case K_SOCKET:
		return check_path(l, f->kind, v, at);
	case K_LISTEN:
		return check_listen(l, v, at);
	case K_BUDGET:
		return check_budget(l, v, at);
	case K_SIZE:
		return check_size(l, v, at);
	case K_WEIGHT:
		return check_weight(l, v, at);
	case K_POLICY:
		return check_policy(l, v, at);
	case K_KNOB:
		return check_knob(l, f->name, v, at);
	case K_KERNEL:
		return check_kernel(l, v, at);
	case K_LIMIT:
		return check_limit(l, f->name, v, at);
	case K_UID:
	case K_CGROUP:
	case K_UNIT:
		return check_ident(l, f->kind, v, at);
	case K_BOOL:
		if (!json_is_boolean(v))
			return wrong_type(l, expected(f->kind), v);
		*(int *)at = json_is_true(v);
		return 0;
	}
	return 0;
}

/* ---- the interface ---------------------------------------------------------------------------- */

char *mvd_policy_names(const char *conj, char *buf, size_t len)
{
	const char *names[16];
	size_t n = 0;

	for (size_t i = 0; mv_policies[i] != NULL && n + 1 < sizeof(names) / sizeof(names[0]); i++)
		names[n++] = mv_policies[i]->name;
	names[n] = NULL;
	list(names, conj, buf, len);
	return buf;
}

struct mvd_config *mvd_config_default(void)
{
	struct mvd_config *c = xcalloc(1, sizeof(*c));
	struct mv_policy_params pp;

	c->log_level = xstrdup("info");
	c->device_budget = xstrdup("100%");
	c->defaults.name = xstrdup("default");
	c->defaults.weight = 1;
	c->defaults.min = 0;
	c->defaults.uid = -1;
	c->weight_max = 1000;
	/* The library's own default without MEMVIRT_POLICY, so that a job pages alike with and
	 * without a configuration. */
	c->defaults.policy = xstrdup("lru");
	/* The planning knobs' defaults are the policies' own, so that the two cannot differ. */
	mv_policy_defaults(&pp);
	c->defaults.page_min = pp.min_size;
	c->defaults.lookahead = pp.lookahead;
	c->defaults.heavy_fraction = pp.heavy_fraction;
	c->defaults.headroom = pp.headroom;
	c->slab_threshold = (uint64_t)1 << 20;
	c->host_limit = 0;
	c->safety_net = 1;
	/* Limits that hold on a service of 1,024 descriptors: one user at its cap holds a quarter of
	 * them, and the reserve is root's whatever the others hold. */
	c->conns_per_user = 256;
	c->sessions_per_user = 128;
	c->buffered_per_user = (uint64_t)64 << 20;
	c->reserve_fds = 64;
	c->frame_timeout_s = 30;
	c->log_lines = 20;
	return c;
}

/* Reads a whole file; returns 0, or -1 with err set. */
static int read_file(const char *path, char **text, size_t *len, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	size_t cap = 4096, n = 0;
	char *buf;

	if (f == NULL)
		goto err_open;
	buf = xcalloc(1, cap + 1);
	for (;;) {
		size_t got = fread(buf + n, 1, cap - n, f);

		n += got;
		if (got == 0)
			break;
		if (n > CONFIG_MAX_BYTES)
			goto err_size;
		if (n == cap) {
			char *more = realloc(buf, cap * 2 + 1);

			if (more == NULL) {
				fputs("memvirt: out of memory\n", stderr);
				abort();
			}
			buf = more;
			cap *= 2;
		}
	}
	if (ferror(f))
		goto err_read;
	fclose(f);
	buf[n] = '\0';
	*text = buf;
	*len = n;
	return 0;

err_size:
	snprintf(err, errlen, "%s: larger than %u bytes; not a configuration file", path,
		 CONFIG_MAX_BYTES);
	free(buf);
	fclose(f);
	return -1;
err_read:
	snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
	free(buf);
	fclose(f);
	return -1;
err_open:
	snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
	return -1;
}

int mvd_config_parse(const char *name, const char *text, size_t len, struct mvd_config **out,
		     char *err, size_t errlen)
{
	struct loader l = {.file = name, .err = err, .errlen = errlen};
	struct mvd_config *c = NULL;
	char scratch[1], buf[256];
	json_error_t jerr;
	json_t *root;
	int rc;

	if (err == NULL || errlen == 0) {
		l.err = err = scratch;
		l.errlen = errlen = sizeof(scratch);
	}
	/* Any value is read so that a scalar at the top level gets this file's own message. */
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (root == NULL) {
		/* jansson counts the column of an empty file's end as 0. */
		if (jerr.line >= 1)
			snprintf(err, errlen, "%s:%d:%d: %s", name, jerr.line,
				 jerr.column >= 1 ? jerr.column : 1, shown(jerr.text, buf, sizeof(buf)));
		else
			snprintf(err, errlen, "%s: %s", name, shown(jerr.text, buf, sizeof(buf)));
		return -1;
	}
	posmap_build(&l.map, text, len);

	c = mvd_config_default();
	c->path = xstrdup(name);
	if (!json_is_object(root))
		rc = fail(&l, 0, "expected an object at the top level, got %s", kind_of(root));
	else
		rc = check_fields(&l, c, root, top_fields, c);
	json_decref(root);
	posmap_free(&l.map);
	if (rc != 0) {
		mvd_config_free(c);
		return -1;
	}
	*out = c;
	return 0;
}

int mvd_config_load(const char *path, struct mvd_config **out, char *err, size_t errlen)
{
	char scratch[1];
	char *text;
	size_t len;
	int rc;

	if (err == NULL || errlen == 0) {
		err = scratch;
		errlen = sizeof(scratch);
	}
	if (read_file(path, &text, &len, err, errlen) != 0)
		return -1;
	rc = mvd_config_parse(path, text, len, out, err, errlen);
	free(text);
	return rc;
}

static void job_free(struct mvd_job *j)
{
	free(j->name);
	free(j->policy);
	free(j->iteration_marker);
	free(j->cgroup);
	free(j->unit);
}

void mvd_config_free(struct mvd_config *c)
{
	if (c == NULL)
		return;
	free(c->path);
	free(c->log_level);
	free(c->log_file);
	free(c->socket);
	free(c->metrics);
	free(c->device_budget);
	free(c->host_limit_spec);
	job_free(&c->defaults);
	for (size_t i = 0; i < c->njobs; i++)
		job_free(&c->jobs[i]);
	free(c->jobs);
	free(c);
}

const struct mvd_job *mvd_config_job(const struct mvd_config *c, const char *job)
{
	if (job != NULL)
		for (size_t i = 0; i < c->njobs; i++)
			if (strcmp(c->jobs[i].name, job) == 0)
				return &c->jobs[i];
	return &c->defaults;
}

/* Whether cgroup path p is base or below it. */
static int conf_cgroup_under(const char *p, const char *base)
{
	size_t n = strlen(base);

	while (n > 1 && base[n - 1] == '/')
		n--;
	if (strncmp(p, base, n) != 0)
		return 0;
	return p[n] == '\0' || p[n] == '/' || n == 1;
}

/* Whether cgroup path p has a component named unit. */
static int conf_cgroup_unit(const char *p, const char *unit)
{
	size_t n = strlen(unit);

	for (const char *q = p; (q = strchr(q, '/')) != NULL; q++)
		if (strncmp(q + 1, unit, n) == 0 && (q[1 + n] == '\0' || q[1 + n] == '/'))
			return 1;
	return 0;
}

const struct mvd_job *mvd_config_job_for(const struct mvd_config *c, const char *job,
					 const struct mvd_peer *who)
{
	const struct mvd_job *j = mvd_config_job(c, job);

	if (j == &c->defaults)
		return j;
	if (j->uid >= 0 && (long long)who->uid != j->uid)
		return &c->defaults;
	if ((j->cgroup != NULL || j->unit != NULL) && who->cgroup == NULL)
		return &c->defaults;
	if (j->cgroup != NULL && !conf_cgroup_under(who->cgroup, j->cgroup))
		return &c->defaults;
	if (j->unit != NULL && !conf_cgroup_unit(who->cgroup, j->unit))
		return &c->defaults;
	return j;
}

int mvd_config_job_trusted(const struct mvd_config *c, const struct mvd_job *j,
			   const struct mvd_peer *who)
{
	return j == &c->defaults || j->uid >= 0 || who->uid == 0 || who->uid == who->admin;
}

/* Numeric only: a name would need a resolver, and which address a name means can change. */
int mvd_listen_parse(const char *s, struct sockaddr_storage *sa, char *err, size_t errlen)
{
	struct sockaddr_in *v4 = (struct sockaddr_in *)sa;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)sa;
	char host[64], buf[80];
	const char *colon, *port;
	size_t hlen;
	unsigned long p;
	char *end;
	int bracket = 0;

	shown(s, buf, sizeof(buf));
	memset(sa, 0, sizeof(*sa));
	colon = strrchr(s, ':');
	if (colon == NULL || colon == s) {
		snprintf(err, errlen, "'%s': expected ADDRESS:PORT, such as 127.0.0.1:9464 or [::1]:9464", buf);
		return -1;
	}
	port = colon + 1;
	errno = 0;
	p = strtoul(port, &end, 10);
	if (*port < '0' || *port > '9' || *end != '\0' || errno != 0 || p < 1 || p > 65535) {
		snprintf(err, errlen, "'%s': the port must be a number from 1 to 65535", buf);
		return -1;
	}
	hlen = (size_t)(colon - s);
	if (s[0] == '[' && hlen >= 2 && s[hlen - 1] == ']') {
		s++;
		hlen -= 2;
		bracket = 1;
	}
	if (hlen >= sizeof(host)) {
		snprintf(err, errlen, "'%s': the address is too long", buf);
		return -1;
	}
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	if (inet_pton(AF_INET, host, &v4->sin_addr) == 1 && !bracket) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons((uint16_t)p);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1 && bracket) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons((uint16_t)p);
		return 0;
	}
	snprintf(err, errlen, "'%s': the address is not a numeric IPv4 address or a bracketed IPv6 one "
		 "(127.0.0.1:9464, [::1]:9464)", buf);
	return -1;
}

uint64_t mvd_config_device_budget(const struct mvd_config *c, uint64_t total)
{
	uint64_t x;

	/* A budget larger than the device (a file written for a bigger card) is the whole device. */
	if (c == NULL || c->device_budget == NULL ||
	    mv_parse_size_or_percent(c->device_budget, total, &x) != 0 || x > total)
		return total;
	return x;
}

uint64_t mvd_config_host_limit(const struct mvd_config *c, uint64_t memtotal)
{
	uint64_t x;

	if (c == NULL || c->host_limit_spec == NULL ||
	    mv_parse_size_or_percent(c->host_limit_spec, memtotal, &x) != 0)
		return 0;
	/* A limit of nothing would refuse every page-out: the smallest is one byte, which the
	 * library's pool cannot grow under, and says so. */
	return x != 0 ? x : 1;
}
