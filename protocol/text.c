/* UTF-8 checking, cleaning and escaping of text from other processes. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "protocol/text.h"

size_t mv_utf8_decode(const unsigned char *s, size_t len, uint32_t *cp)
{
	uint32_t c, min;
	size_t n, i;

	if (len == 0)
		return 0;
	c = s[0];
	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if ((c & 0xe0) == 0xc0) {
		n = 2;
		c &= 0x1f;
		min = 0x80;
	} else if ((c & 0xf0) == 0xe0) {
		n = 3;
		c &= 0x0f;
		min = 0x800;
	} else if ((c & 0xf8) == 0xf0) {
		n = 4;
		c &= 0x07;
		min = 0x10000;
	} else {
		return 0;
	}
	if (len < n)
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return n;
}

int mv_text_printable(uint32_t cp)
{
	if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f))
		return 0;
	/* Zero-width characters, line and paragraph separators, bidirectional embeddings,
	 * overrides and isolates, and invisible operators: each can make shown text lie about
	 * what it holds. */
	if ((cp >= 0x200b && cp <= 0x200f) || (cp >= 0x2028 && cp <= 0x202e) ||
	    (cp >= 0x2060 && cp <= 0x206f) || cp == 0xfeff)
		return 0;
	return 1;
}

/* Whether s[0, len) is the start of a valid character that was cut short by the end of s. */
static int text_truncated(const unsigned char *s, size_t len)
{
	unsigned char pad[4];
	uint32_t cp;
	size_t n;

	if (s[0] >= 0xf0)
		n = 4;
	else if (s[0] >= 0xe0)
		n = 3;
	else
		n = 2;
	if (len >= n)
		return 0;
	/* Completed with the smallest continuation bytes, would it be valid? For E0, ED, F0 and F4
	 * that depends on the second byte, which is there whenever it decides it. */
	memcpy(pad, s, len);
	memset(pad + len, 0x80, n - len);
	if (len >= 2)
		return mv_utf8_decode(pad, n, &cp) == n;
	return (s[0] >= 0xc2 && s[0] <= 0xf4);
}

size_t mv_text_clean(const char *in, size_t len, char *out, size_t size)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t i = 0, o = 0, n, replaced = 0;
	uint32_t cp;

	for (i = 0; i < len && s[i] != '\0';) {
		size_t end = i;

		while (end < len && s[end] != '\0' && end - i < 4)
			end++;
		n = mv_utf8_decode(s + i, end - i, &cp);
		if (n == 0 && end - i < 4 && (end == len || s[end] == '\0') && s[i] >= 0x80 &&
		    text_truncated(s + i, end - i))
			break;
		if (n == 0 || !mv_text_printable(cp)) {
			if (o + 1 >= size)
				break;
			out[o++] = '?';
			replaced++;
			i += n == 0 ? 1 : n;
			continue;
		}
		if (o + n >= size)
			break;
		memcpy(out + o, s + i, n);
		o += n;
		i += n;
	}
	out[o] = '\0';
	return replaced;
}

size_t mv_text_escape(const char *in, char *out, size_t size, size_t maxwidth)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t i = 0, o = 0, n, width = 0, len = strlen(in);
	uint32_t cp;

	while (i < len) {
		n = mv_utf8_decode(s + i, len - i, &cp);
		if (n == 0 || !mv_text_printable(cp)) {
			/* One escape per byte: the bytes of a control character such as U+0085 are
			 * all shown. */
			n = n == 0 ? 1 : n;
			for (size_t k = 0; k < n; k++) {
				if (width + 4 > maxwidth || o + 4 >= size)
					goto out;
				snprintf(out + o, 5, "\\x%02x", s[i + k]);
				o += 4;
				width += 4;
			}
			i += n;
			continue;
		}
		if (width + 1 > maxwidth || o + n >= size)
			break;
		memcpy(out + o, s + i, n);
		o += n;
		i += n;
		width++;
	}
out:
	out[o] = '\0';
	return width;
}
