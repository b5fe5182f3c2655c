/* Sizes and percentages, as every MEMVIRT_* setting and config key spells them. */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/units.h"

static const struct {
	const char *suffix;
	double mult;
} units[] = {
	{"", 1}, {"B", 1},
	{"K", 1024.0}, {"KiB", 1024.0}, {"KB", 1e3},
	{"M", 1048576.0}, {"MiB", 1048576.0}, {"MB", 1e6},
	{"G", 1073741824.0}, {"GiB", 1073741824.0}, {"GB", 1e9},
	{"T", 1099511627776.0}, {"TiB", 1099511627776.0}, {"TB", 1e12},
	/* mv_format_size writes sizes from 1 PiB up in PiB, and what it writes must read back. */
	{"P", 1125899906842624.0}, {"PiB", 1125899906842624.0}, {"PB", 1e15},
};

/* Parses the leading number of s; returns where it stopped, or NULL. */
static const char *number(const char *s, double *v)
{
	char *end;

	if (s == NULL || *s == '\0' || *s == '-' || *s == '+')
		return NULL;
	errno = 0;
	*v = strtod(s, &end);
	if (errno != 0 || end == s || !(*v >= 0) || isinf(*v))
		return NULL;
	while (*end == ' ')
		end++;
	return end;
}

int mv_parse_size(const char *s, uint64_t *out)
{
	double v;
	const char *rest = number(s, &v);

	if (rest == NULL)
		return -1;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(rest, units[i].suffix) == 0) {
			double bytes = v * units[i].mult;
			if (bytes >= 18446744073709551615.0)
				return -1;
			*out = (uint64_t)bytes;
			return 0;
		}
	}
	return -1;
}

int mv_parse_size_or_percent(const char *s, uint64_t whole, uint64_t *out)
{
	double v;
	const char *rest = number(s, &v);

	if (rest != NULL && strcmp(rest, "%") == 0) {
		double bytes;

		if (v > 100)
			return -1;
		/* A whole above 2^53 rounds as a double, possibly up, past UINT64_MAX for the
		 * largest: a share that rounds to the whole or above is the whole. */
		bytes = (double)whole * v / 100.0;
		*out = bytes >= (double)whole ? whole : (uint64_t)bytes;
		return 0;
	}
	return mv_parse_size(s, out);
}

char *mv_format_size(uint64_t bytes, char *buf, size_t len)
{
	static const char *names[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
	double v = (double)bytes;
	unsigned i = 0;

	while (v >= 1024 && i + 1 < sizeof(names) / sizeof(names[0])) {
		v /= 1024;
		i++;
	}
	if (i == 0)
		snprintf(buf, len, "%llu B", (unsigned long long)bytes);
	else
		snprintf(buf, len, "%.1f %s", v, names[i]);
	return buf;
}
