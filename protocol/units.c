/* Sizes and percentages, as every MEMVIRT_* setting and config key spells them. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/units.h"

/* Each unit as a ratio: bytes = count * num / den. Exact integers, so that "1.5GiB" is exactly
 * 1610612736 bytes. */
static const struct {
	const char *suffix;
	uint64_t mult;
} units[] = {
	{"", 1}, {"B", 1},
	{"K", 1ull << 10}, {"KiB", 1ull << 10}, {"KB", 1000ull},
	{"M", 1ull << 20}, {"MiB", 1ull << 20}, {"MB", 1000000ull},
	{"G", 1ull << 30}, {"GiB", 1ull << 30}, {"GB", 1000000000ull},
	{"T", 1ull << 40}, {"TiB", 1ull << 40}, {"TB", 1000000000000ull},
	/* mv_format_size writes sizes from 1 PiB up in PiB, and what it writes must read back. */
	{"P", 1ull << 50}, {"PiB", 1ull << 50}, {"PB", 1000000000000000ull},
};

/* A number as written: decimal digits, then optionally a point and more digits. Nothing else
 * (no sign, exponent, hex, inf or nan), so that a value means what it reads as. */
struct decimal {
	unsigned __int128 whole;  /* the digits before the point */
	uint64_t frac;            /* the digits after it, trailing zeros dropped */
	uint64_t scale;           /* 10 to the number of those digits */
};

#define MV_UNITS_TOO_BIG ((unsigned __int128)1 << 64)

/* Reads the leading number of s; returns where it stopped (spaces skipped), or NULL. */
static const char *decimal(const char *s, struct decimal *d)
{
	const char *p = s;
	unsigned digits = 0;

	memset(d, 0, sizeof(*d));
	d->scale = 1;
	if (s == NULL)
		return NULL;
	for (; *p >= '0' && *p <= '9'; p++, digits++)
		if (d->whole < MV_UNITS_TOO_BIG)
			d->whole = d->whole * 10 + (unsigned)(*p - '0');
	if (digits == 0)
		return NULL;
	if (*p == '.') {
		uint64_t zeros = 1;

		p++;
		if (!(*p >= '0' && *p <= '9'))
			return NULL;
		for (; *p >= '0' && *p <= '9'; p++) {
			/* Zeros count only once a non-zero digit follows them. */
			if (*p == '0') {
				if (zeros > UINT64_MAX / 10)
					return NULL;
				zeros *= 10;
				continue;
			}
			if (d->scale > UINT64_MAX / 10 / zeros)
				return NULL;
			d->frac = d->frac * zeros * 10 + (unsigned)(*p - '0');
			d->scale *= zeros * 10;
			zeros = 1;
		}
	}
	while (*p == ' ')
		p++;
	return p;
}

/* count * mult in bytes: a fraction of a unit of at least 1 KiB is rounded down to a whole byte
 * (that is how mv_format_size's "1.1 GiB" reads back); a fraction of a byte is refused. */
static int to_bytes(const struct decimal *d, uint64_t mult, uint64_t *out)
{
	unsigned __int128 b, f;

	if (d->whole >= MV_UNITS_TOO_BIG)
		return -1;
	f = (unsigned __int128)d->frac * mult;
	if (mult == 1 && d->frac != 0)
		return -1;
	b = d->whole * mult + f / d->scale;
	if (b > UINT64_MAX)
		return -1;
	*out = (uint64_t)b;
	return 0;
}

int mv_parse_size(const char *s, uint64_t *out)
{
	struct decimal d;
	const char *rest = decimal(s, &d);

	if (rest == NULL)
		return -1;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (strcmp(rest, units[i].suffix) == 0)
			return to_bytes(&d, units[i].mult, out);
	return -1;
}

int mv_parse_size_or_percent(const char *s, uint64_t whole, uint64_t *out)
{
	struct decimal d;
	const char *rest = decimal(s, &d);

	if (rest != NULL && strcmp(rest, "%") == 0) {
		double v, bytes;

		if (d.whole > 100 || (d.whole == 100 && d.frac != 0))
			return -1;
		v = (double)d.whole + (double)d.frac / (double)d.scale;
		/* A whole above 2^53 rounds as a double, possibly up, past UINT64_MAX for the
		 * largest: a share that rounds to the whole or above is the whole. */
		bytes = (double)whole * v / 100.0;
		*out = bytes >= (double)whole ? whole : (uint64_t)bytes;
		return 0;
	}
	return mv_parse_size(s, out);
}

/* One entry of a per-device budget: its device (-1 for every device) and its bytes. Returns 0, or
 * -1 with *why. */
static int budget_entry(const char *e, size_t len, uint64_t whole, long *device, uint64_t *bytes,
			const char **why)
{
	char buf[64];
	const char *colon;

	if (len == 0 || len >= sizeof(buf)) {
		*why = len == 0 ? "an empty entry" : "an entry too long";
		return -1;
	}
	memcpy(buf, e, len);
	buf[len] = '\0';
	colon = strchr(buf, ':');
	*device = -1;
	if (colon != NULL) {
		long d = 0;

		if (colon == buf || colon - buf > 4) {
			*why = "a device that is not an ordinal from 0 to 4095";
			return -1;
		}
		for (const char *c = buf; c < colon; c++) {
			if (*c < '0' || *c > '9') {
				*why = "a device that is not an ordinal from 0 to 4095";
				return -1;
			}
			d = d * 10 + (*c - '0');
		}
		if (d > 4095) {
			*why = "a device that is not an ordinal from 0 to 4095";
			return -1;
		}
		*device = d;
	}
	if (mv_parse_size_or_percent(colon != NULL ? colon + 1 : buf, whole, bytes) != 0) {
		*why = "a budget that is not a size such as 6GiB or a percentage such as 40%";
		return -1;
	}
	if (*bytes == 0) {
		*why = "a budget of nothing";
		return -1;
	}
	return 0;
}

int mv_budget_pick(const char *spec, long device, uint64_t whole, uint64_t *out, const char **why, char *err,
		   size_t errlen)
{
	long seen[64];
	size_t nseen = 0;
	int found = 0, any = 0;
	uint64_t every = 0, mine = 0;
	const char *e = spec;

	for (;;) {
		size_t len = strcspn(e, ",");
		long d;
		uint64_t b;
		const char *w = NULL;

		if (budget_entry(e, len, whole, &d, &b, &w) == 0) {
			for (size_t i = 0; i < nseen && w == NULL; i++)
				if (seen[i] == d)
					w = d < 0 ? "two budgets for every device" : "a device named twice";
			if (w == NULL && nseen == sizeof(seen) / sizeof(seen[0]))
				w = "more than 64 entries";
		}
		if (w != NULL) {
			*why = w;
			snprintf(err, errlen, "%.*s", (int)len, e);
			return -1;
		}
		seen[nseen++] = d;
		if (d < 0) {
			any = 1;
			every = b;
		} else if (d == device) {
			found = 1;
			mine = b;
		}
		if (e[len] == '\0')
			break;
		e += len + 1;
	}
	if (found) {
		*out = mine;
		return 1;
	}
	if (any) {
		*out = every;
		return 1;
	}
	return 0;
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
