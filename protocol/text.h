/* Text that came from another process (job names, requests): checked as UTF-8, cleaned before it is
 * kept, and escaped wherever it is shown, so that no byte a client sends reaches a log line or a
 * terminal as a control. */
#ifndef MV_TEXT_H
#define MV_TEXT_H

#include <stddef.h>
#include <stdint.h>

/* Decodes one UTF-8 character at s[0, len). Returns its length (1 to 4) with *cp set, or 0 when
 * the bytes are not the shortest encoding of a Unicode scalar value (overlong forms, surrogates
 * and values past U+10FFFF are refused). */
size_t mv_utf8_decode(const unsigned char *s, size_t len, uint32_t *cp);

/* Whether cp may be shown as it is: not a C0 or C1 control, DEL, a line or paragraph separator, a
 * bidirectional or invisible formatting character, or a byte order mark. */
int mv_text_printable(uint32_t cp);

/* Copies in[0, len), up to a NUL, into out[size] (size >= 1) as valid, printable UTF-8: each byte
 * of an invalid sequence and each character that is not printable becomes '?'. It is cut on a
 * character boundary so that it fits with its NUL; an incomplete character at the end of in (a
 * name cut short by its sender) is left out. Returns the number of characters replaced. */
size_t mv_text_clean(const char *in, size_t len, char *out, size_t size);

/* For a terminal or a log: the NUL-terminated in, printable characters as they are and every other
 * byte written as \xHH, at most maxwidth characters wide (an escape is four), cut on a character
 * boundary and NUL-terminated in out[size] (size >= 1). Returns the width written, in
 * characters. */
size_t mv_text_escape(const char *in, char *out, size_t size, size_t maxwidth);

#endif
