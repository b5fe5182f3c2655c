/* libFuzzer target: bytes read as a stream of frames the way memvirtd and the library read them,
 * each payload decoded by its type, then encoded back and compared with what came in. */
#include "config.h"

#include <stdint.h>
#include <string.h>

#include "protocol/control.h"
#include "protocol/frame.h"
#include "protocol/text.h"
#include "tests/fuzz/fuzz.h"

/* Large enough for any payload; static because a whole EVENTS frame is 1 MiB. */
static uint8_t out[MV_FRAME_MAX];
static struct mv_event events[MV_EVENTS_MAX];

/* What memvirtd keeps of a job name is printable UTF-8 that fits, whatever the bytes. */
static void job_clean(const char *job)
{
	char name[64];
	size_t i, n, len;
	uint32_t cp;

	mv_text_clean(job, 64, name, sizeof(name));
	len = strlen(name);
	for (i = 0; i < len; i += n) {
		n = mv_utf8_decode((const unsigned char *)name + i, len - i, &cp);
		FUZZ_CHECK(n > 0 && mv_text_printable(cp));
	}
}

static void fixed_payload(const struct mv_frame *f)
{
	const uint8_t *p = f->payload;
	size_t len = f->length, n = 0;

	switch (f->type) {
	case MV_MSG_HELLO: {
		struct mv_msg_hello m;

		/* A HELLO of the right size is refused only for its group token. */
		if (mv_hello_decode(p, len, &m) != 0) {
			FUZZ_CHECK(!mv_group_valid((const char *)p + 112, 64));
			return;
		}
		n = mv_hello_encode(&m, out);
		/* The job name's last byte (at 111, before the group token) is forced to NUL on the way
		 * in; every other byte survives. */
		FUZZ_CHECK(memcmp(out, p, 111) == 0 && out[111] == 0);
		FUZZ_CHECK(memcmp(out + 112, p + 112, MV_MSG_HELLO_SIZE - 112) == 0);
		FUZZ_CHECK(strlen(m.job) < sizeof(m.job));
		job_clean(m.job);
		break;
	}
	case MV_MSG_WELCOME: {
		struct mv_msg_welcome m;

		FUZZ_CHECK(mv_welcome_decode(p, len, &m) == 0);
		n = mv_welcome_encode(&m, out);
		FUZZ_CHECK(memcmp(out, p, n) == 0);
		break;
	}
	case MV_MSG_GRANT: {
		struct mv_msg_grant m;

		FUZZ_CHECK(mv_grant_decode(p, len, &m) == 0);
		n = mv_grant_encode(&m, out);
		FUZZ_CHECK(memcmp(out, p, n) == 0);
		break;
	}
	case MV_MSG_LAUNCHES: {
		struct mv_msg_launches m;

		/* Only 0 and 1 are decoded; either comes back as it came. */
		if (mv_launches_decode(p, len, &m) != 0) {
			FUZZ_CHECK(mv_get_u32(p) > 1);
			return;
		}
		n = mv_launches_encode(&m, out);
		FUZZ_CHECK(memcmp(out, p, n) == 0);
		break;
	}
	case MV_MSG_COUNTERS: {
		struct mv_msg_counters m;

		FUZZ_CHECK(mv_counters_decode(p, len, &m) == 0);
		n = mv_counters_encode(&m, out);
		FUZZ_CHECK(memcmp(out, p, n) == 0);
		break;
	}
	case MV_MSG_CONTROL_HELLO: {
		struct mv_msg_control_hello m;

		FUZZ_CHECK(mv_control_hello_decode(p, len, &m) == 0);
		n = mv_control_hello_encode(&m, out);
		FUZZ_CHECK(memcmp(out, p, n) == 0);
		break;
	}
	default:
		return;
	}
	FUZZ_CHECK(n == len);
}

static void events_payload(const struct mv_frame *f)
{
	struct mv_msg_events head;
	size_t n;

	/* The header checks only that the size is a head and whole events; the count is the
	 * payload decoder's to check. */
	if (mv_events_decode(f->payload, f->length, &head) != 0) {
		FUZZ_CHECK((f->length - MV_MSG_EVENTS_HEAD) / MV_EVENT_SIZE != mv_get_u32(f->payload));
		return;
	}
	FUZZ_CHECK(head.count <= MV_EVENTS_MAX);
	for (uint32_t i = 0; i < head.count; i++)
		mv_event_decode(f->payload + MV_MSG_EVENTS_HEAD + (size_t)i * MV_EVENT_SIZE, &events[i]);
	n = mv_events_encode(events, head.count, head.dropped, out);
	FUZZ_CHECK(n == f->length);
	FUZZ_CHECK(memcmp(out, f->payload, n) == 0);
	/* A payload one event short of its count is refused. */
	if (head.count > 0)
		FUZZ_CHECK(mv_events_decode(f->payload, f->length - MV_EVENT_SIZE, &head) ==
			   MV_FRAME_BAD_PAYLOAD);
}

/* A JSON payload that parses is encoded as a frame of its own, which must decode and parse to an
 * equal object. */
static void json_payload(const struct mv_frame *f)
{
	char err[256];
	json_t *obj, *again;
	uint8_t *frame;
	size_t len;
	struct mv_frame g;

	obj = mv_control_parse(f->payload, f->length, err, sizeof(err));
	if (obj == NULL) {
		FUZZ_CHECK(err[0] != '\0');
		return;
	}
	(void)mv_control_cmd(obj);
	if (mv_control_encode(f->type, obj, &frame, &len) != 0) {
		json_decref(obj);
		return;
	}
	FUZZ_CHECK(mv_frame_decode(frame, len, &g) == (ssize_t)len);
	FUZZ_CHECK(g.type == f->type);
	again = mv_control_parse(g.payload, g.length, err, sizeof(err));
	FUZZ_CHECK(again != NULL);
	FUZZ_CHECK(json_equal(obj, again));
	json_decref(again);
	json_decref(obj);
	free(frame);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 0;
	struct mv_frame f, g;
	uint8_t h[MV_FRAME_HEADER];
	ssize_t n;

	for (;;) {
		n = mv_frame_decode(data + off, size - off, &f);
		if (n == MV_FRAME_NEED_MORE) {
			int eof = mv_frame_at_eof(size - off);

			FUZZ_CHECK(eof == (size - off > 0 ? MV_FRAME_TRUNCATED : 0));
			break;
		}
		if (n < 0) {
			/* A header is judged as soon as its 16 bytes are there. */
			FUZZ_CHECK(size - off >= MV_FRAME_HEADER);
			FUZZ_CHECK(mv_frame_decode(data + off, MV_FRAME_HEADER, &g) == n);
			FUZZ_CHECK(mv_frame_strerror((int)n) != NULL);
			break;
		}
		FUZZ_CHECK((size_t)n == MV_FRAME_HEADER + f.length && (size_t)n <= size - off);
		FUZZ_CHECK(f.payload == data + off + MV_FRAME_HEADER);
		FUZZ_CHECK(mv_frame_decode(data + off, (size_t)n - 1, &g) == MV_FRAME_NEED_MORE);
		mv_frame_header(h, f.type, f.length);
		FUZZ_CHECK(memcmp(h, data + off, MV_FRAME_HEADER) == 0);
		switch (f.type) {
		case MV_MSG_EVENTS:
			events_payload(&f);
			break;
		case MV_MSG_REQUEST:
		case MV_MSG_RESPONSE:
			json_payload(&f);
			break;
		case MV_MSG_BYE:
		case MV_MSG_SHUTDOWN:
			FUZZ_CHECK(f.length == 0);
			break;
		default:
			fixed_payload(&f);
			break;
		}
		off += (size_t)n;
	}
	return 0;
}
