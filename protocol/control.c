/* JSON control messages (control.h): one object per REQUEST or RESPONSE frame. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/control.h"
#include "protocol/frame.h"

static void control_error(char *err, size_t errlen, const char *msg)
{
	if (err != NULL && errlen > 0)
		snprintf(err, errlen, "%s", msg);
}

json_t *mv_control_parse(const uint8_t *p, size_t len, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *obj;
	char msg[256];

	if (len == 0) {
		control_error(err, errlen, "empty payload");
		return NULL;
	}
	/* Any JSON value is accepted by the parser so that a valid non-object gets its own message
	 * rather than jansson's "'[' or '{' expected". */
	obj = json_loadb((const char *)p, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
	if (obj == NULL) {
		snprintf(msg, sizeof(msg), "line %d column %d: %s", jerr.line, jerr.column, jerr.text);
		control_error(err, errlen, msg);
		return NULL;
	}
	if (!json_is_object(obj)) {
		json_decref(obj);
		control_error(err, errlen, "not a JSON object");
		return NULL;
	}
	return obj;
}

int mv_control_encode(uint16_t type, const json_t *obj, uint8_t **out, size_t *len)
{
	char *text;
	size_t n;
	uint8_t *frame;

	text = json_dumps(obj, JSON_COMPACT);
	if (text == NULL)
		return -1;
	n = strlen(text);
	if (n > MV_FRAME_MAX)
		goto err_text;
	frame = malloc(MV_FRAME_HEADER + n);
	if (frame == NULL)
		goto err_text;
	mv_frame_header(frame, type, (uint32_t)n);
	memcpy(frame + MV_FRAME_HEADER, text, n);
	free(text);
	*out = frame;
	*len = MV_FRAME_HEADER + n;
	return 0;

err_text:
	free(text);
	return -1;
}

const char *mv_control_cmd(const json_t *req)
{
	/* json_object_get is NULL for a non-object and json_string_value for a non-string. */
	return json_string_value(json_object_get(req, "cmd"));
}
