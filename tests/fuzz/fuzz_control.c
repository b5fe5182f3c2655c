/* libFuzzer target: a JSON control message as the daemon and the command parse it; one that parses
 * is encoded as a frame and must come back equal. */
#include "config.h"

#include <stdint.h>
#include <string.h>

#include "protocol/control.h"
#include "protocol/frame.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256] = "";
	json_t *req, *again;
	const char *cmd;
	uint8_t *frame;
	size_t len;
	struct mv_frame f;

	req = mv_control_parse(data, size, err, sizeof(err));
	if (req == NULL) {
		FUZZ_CHECK(err[0] != '\0');
		/* A message too short for the buffer is still cut short and terminated. */
		FUZZ_CHECK(mv_control_parse(data, size, err, 4) == NULL && strlen(err) < 4);
		return 0;
	}
	FUZZ_CHECK(json_is_object(req));
	cmd = mv_control_cmd(req);
	FUZZ_CHECK(cmd == NULL || json_is_string(json_object_get(req, "cmd")));
	if (mv_control_encode(MV_MSG_REQUEST, req, &frame, &len) == 0) {
		FUZZ_CHECK(mv_frame_decode(frame, len, &f) == (ssize_t)len);
		FUZZ_CHECK(f.type == MV_MSG_REQUEST);
		again = mv_control_parse(f.payload, f.length, err, sizeof(err));
		FUZZ_CHECK(again != NULL);
		FUZZ_CHECK(json_equal(req, again));
		if (cmd != NULL)
			FUZZ_CHECK(strcmp(cmd, mv_control_cmd(again)) == 0);
		json_decref(again);
		free(frame);
	}
	json_decref(req);
	return 0;
}
