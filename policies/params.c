/* The planning knobs people set, in memvirt.json, in MEMVIRT_* variables or on memvirt's command
 * line: one table of their types and ranges, and the checks and messages all three take from it. */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policies/policy.h"
#include "protocol/units.h"

/* The ranges of struct mv_policy_params' knobs. The link's speeds are in GB/s, as people give them;
 * a million GB/s is far beyond any link. */
static const struct mv_knob knobs[] = {
	{"page_min", MV_KNOB_SIZE, 1, INFINITY, 0, 0},
	{"lookahead", MV_KNOB_WHOLE, 1, 1000000, 0, 0},
	{"heavy_fraction", MV_KNOB_REAL, 0, 1, 1, 0},
	{"headroom", MV_KNOB_REAL, 0, 1, 0, 1},
	{"h2d_gbps", MV_KNOB_REAL, 0, 1e6, 1, 0},
	{"d2h_gbps", MV_KNOB_REAL, 0, 1e6, 1, 0},
};

#define NKNOBS (sizeof(knobs) / sizeof(knobs[0]))

const struct mv_knob *mv_knob_find(const char *name)
{
	for (size_t i = 0; i < NKNOBS; i++)
		if (strcmp(knobs[i].name, name) == 0)
			return &knobs[i];
	return NULL;
}

/* A bound as people write it: 1000000, not 1e+06. */
static const char *num(double v, char *buf, size_t len)
{
	snprintf(buf, len, "%.15g", v);
	return buf;
}

/* A value a message names: a whole number in full, a fraction as short as it reads. */
static const char *shown_value(double v, char *buf, size_t len)
{
	if (v == floor(v) && fabs(v) < 1e18)
		snprintf(buf, len, "%.0f", v);
	else
		snprintf(buf, len, "%g", v);
	return buf;
}

/* How a number's range reads in words: "from 1 to 1000000", "greater than 0 and at most 1", "from 0
 * up to but not including 1". */
static void range_words(const struct mv_knob *k, char *buf, size_t len)
{
	char lo[32], hi[32];

	num(k->lo, lo, sizeof(lo));
	num(k->hi, hi, sizeof(hi));
	if (!k->lo_open && !k->hi_open)
		snprintf(buf, len, "from %s to %s", lo, hi);
	else if (k->lo_open)
		snprintf(buf, len, "greater than %s and %s %s", lo, k->hi_open ? "less than" : "at most",
			 hi);
	else
		snprintf(buf, len, "from %s up to but not including %s", lo, hi);
}

const char *mv_knob_expected(const struct mv_knob *k, enum mv_knob_notation n, char *buf,
			     size_t len)
{
	char range[96], lo[32], hi[32];

	switch (k->type) {
	case MV_KNOB_SIZE:
		snprintf(buf, len, "a size of at least %s byte%s, such as 1MiB", num(k->lo, lo, sizeof(lo)),
			 k->lo == 1 ? "" : "s");
		break;
	case MV_KNOB_WHOLE:
		range_words(k, range, sizeof(range));
		snprintf(buf, len, "a whole number %s", range);
		break;
	case MV_KNOB_REAL:
		if (n == MV_KNOB_INTERVAL) {
			snprintf(buf, len, "a number in %s%s, %s%s", k->lo_open ? "(" : "[",
				 num(k->lo, lo, sizeof(lo)), num(k->hi, hi, sizeof(hi)),
				 k->hi_open ? ")" : "]");
		} else {
			range_words(k, range, sizeof(range));
			snprintf(buf, len, "a number %s", range);
		}
		break;
	}
	return buf;
}

static int in_range(const struct mv_knob *k, double v)
{
	return v >= k->lo && !(k->lo_open && v == k->lo) && v <= k->hi && !(k->hi_open && v == k->hi);
}

int mv_knob_check(const struct mv_knob *k, double v, char *msg, size_t len)
{
	char val[48], lo[32], hi[32];

	if (in_range(k, v))
		return 0;
	if (msg == NULL || len == 0)
		return -ERANGE;
	shown_value(v, val, sizeof(val));
	num(k->lo, lo, sizeof(lo));
	num(k->hi, hi, sizeof(hi));
	/* memvirt.json(5)'s wording, whose sizes are strings such as "1MiB". */
	switch (k->type) {
	case MV_KNOB_SIZE:
		snprintf(msg, len, "%s %s is out of range: at least %s byte%s, such as \"1MiB\"", k->name,
			 val, lo, k->lo == 1 ? "" : "s");
		break;
	case MV_KNOB_WHOLE:
		snprintf(msg, len, "%s %s is out of range %s..%s", k->name, val, lo, hi);
		break;
	case MV_KNOB_REAL:
		snprintf(msg, len, "%s %s is out of range: %s %s and %s %s", k->name, val,
			 k->lo_open ? "more than" : "at least", lo, k->hi_open ? "less than" : "at most",
			 hi);
		break;
	}
	return -ERANGE;
}

/* Reads text as k's type into *out; -EINVAL when it is not one. */
static int parse_text(const struct mv_knob *k, const char *text, struct mv_knob_value *out)
{
	unsigned long long u;
	char *end;
	double d;

	switch (k->type) {
	case MV_KNOB_SIZE:
		if (mv_parse_size(text, &out->u) != 0)
			return -EINVAL;
		out->d = (double)out->u;
		return 0;
	case MV_KNOB_WHOLE:
		/* Digits only: strtoull would take "-1", " 1" and "+1". */
		if (*text < '0' || *text > '9')
			return -EINVAL;
		errno = 0;
		u = strtoull(text, &end, 10);
		if (*end != '\0' || errno != 0)
			return -EINVAL;
		out->u = u;
		out->d = (double)u;
		return 0;
	case MV_KNOB_REAL:
		errno = 0;
		d = strtod(text, &end);
		if (end == text || *end != '\0' || errno != 0 || !isfinite(d))
			return -EINVAL;
		out->u = 0;
		out->d = d;
		return 0;
	}
	return -EINVAL;
}

int mv_knob_parse(const struct mv_knob *k, const char *text, enum mv_knob_notation n,
		  struct mv_knob_value *out, char *msg, size_t len)
{
	struct mv_knob_value v;
	char expected[128];
	int r = parse_text(k, text, &v);

	if (r == 0 && !in_range(k, v.d))
		r = -ERANGE;
	if (r == 0) {
		*out = v;
		return 0;
	}
	if (msg != NULL && len > 0)
		snprintf(msg, len, "'%s' is not %s", text,
			 mv_knob_expected(k, n, expected, sizeof(expected)));
	return r;
}

int mv_budget_absurd(uint64_t bytes, uint64_t granularity, uint64_t total, char *msg, size_t len)
{
	char a[32], b[32];

	if (bytes == 0) {
		snprintf(msg, len, "leaves no device memory");
		return 1;
	}
	/* Device memory is mapped a granule at a time: not one buffer could be resident. */
	if (granularity > 0 && bytes < granularity) {
		snprintf(msg, len, "is %s, less than the device's allocation granularity (%s): "
			 "every allocation would be refused", mv_format_size(bytes, a, sizeof(a)),
			 mv_format_size(granularity, b, sizeof(b)));
		return 1;
	}
	if (total > 0 && bytes > total) {
		snprintf(msg, len, "is %s, more than the device's %s: the device runs out of memory "
			 "before the budget is reached", mv_format_size(bytes, a, sizeof(a)),
			 mv_format_size(total, b, sizeof(b)));
		return 1;
	}
	return 0;
}
