/* Units shared by every part of memvirt: sizes such as 8GiB and percentages of a whole. */
#ifndef MV_UNITS_H
#define MV_UNITS_H

#include <stddef.h>
#include <stdint.h>

/* Parses a size: a decimal number with an optional unit, B, KiB/MiB/GiB/TiB/PiB (powers of 1024,
 * also K/M/G/T/P) or KB/MB/GB/TB/PB (powers of 1000), e.g. "6GiB", "1.5GB", "4096". The number is
 * digits with an optional fraction: no sign, exponent or hex ("0x10" is refused). A fraction of a
 * byte ("1.5", "1.5B") is refused; a fraction of a larger unit is exact where it comes to whole bytes
 * and rounded down to a whole byte where not. Returns 0, or -1 when s is not a size or does not fit
 * in 64 bits. Reads back whatever mv_format_size writes. */
int mv_parse_size(const char *s, uint64_t *out);

/* Parses a size or a percentage of whole such as "40%" (0 to 100, decimals allowed, written as
 * for a size). Returns 0 or -1. */
int mv_parse_size_or_percent(const char *s, uint64_t whole, uint64_t *out);

/* MEMVIRT_BUDGET per device: entries separated by commas, each DEVICE:BUDGET (DEVICE an ordinal,
 * 0 to 4095) or BUDGET alone for every device not named; BUDGET as mv_parse_size_or_percent takes
 * it, of whole, and not nothing. Picks the entry of device (-1: none but the one for every device).
 * Returns 1 with *out, 0 when no entry applies, -1 when any entry is malformed: then *why says what
 * is wrong and err (of errlen bytes) holds the entry. */
int mv_budget_pick(const char *spec, long device, uint64_t whole, uint64_t *out, const char **why, char *err,
		   size_t errlen);

/* Writes a size the way people read it ("1.5 GiB", "512 MiB", "100 B") into buf; returns buf. */
char *mv_format_size(uint64_t bytes, char *buf, size_t len);

#endif
