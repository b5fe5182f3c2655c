/* Encoding and decoding of protocol frames (proto.h). Pure functions over byte buffers: no I/O, no
 * allocation, safe on any input. */
#ifndef MV_FRAME_H
#define MV_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "protocol/proto.h"

/* A decoded frame; payload points into the caller's buffer. */
struct mv_frame {
	uint16_t type;
	uint32_t length;
	const uint8_t *payload;
};

/* Why a frame was refused. Each has a fixed message (mv_frame_strerror). */
enum mv_frame_status {
	MV_FRAME_NEED_MORE = 0,     /* not an error: fewer bytes than a whole frame so far */
	MV_FRAME_BAD_MAGIC = -1,
	MV_FRAME_BAD_VERSION = -2,
	MV_FRAME_TOO_LONG = -3,     /* length above MV_FRAME_MAX */
	MV_FRAME_UNKNOWN_TYPE = -4,
	MV_FRAME_BAD_RESERVED = -5, /* the reserved header word is not zero */
	MV_FRAME_TRUNCATED = -6,    /* the stream ended inside a frame (mv_frame_at_eof) */
	MV_FRAME_BAD_PAYLOAD = -7,  /* a payload's size does not match its type */
};

/* Decodes the frame at the start of buf[0, len). Returns the frame's whole size (header and
 * payload, > 0) with *f filled; MV_FRAME_NEED_MORE when buf holds only part of a frame; or a
 * negative enum mv_frame_status. A header is judged as soon as its 16 bytes are there, so a bad
 * magic, version, type or length (including a length its type cannot have: MV_FRAME_BAD_PAYLOAD) is
 * refused without waiting for the payload. */
ssize_t mv_frame_decode(const uint8_t *buf, size_t len, struct mv_frame *f);

/* What to say when a connection ends with len bytes of an unfinished frame: MV_FRAME_TRUNCATED
 * when len > 0 (a short header or a truncated payload), else 0. */
int mv_frame_at_eof(size_t len);

const char *mv_frame_strerror(int status);

/* Whether g[0, len) is a group field as proto.h's HELLO defines it: a token or all NUL. */
int mv_group_valid(const char *g, size_t len);

/* Writes a header for a payload of length bytes to out[0, MV_FRAME_HEADER). */
void mv_frame_header(uint8_t *out, uint16_t type, uint32_t length);

/* Fixed-size payloads: encode writes exactly the _SIZE bytes of proto.h to out and returns that
 * size; decode checks len is exactly that size and returns 0, or MV_FRAME_BAD_PAYLOAD. */
size_t mv_hello_encode(const struct mv_msg_hello *m, uint8_t *out);
/* HELLO's decode also refuses a group field that is not a token as proto.h writes it. */
int mv_hello_decode(const uint8_t *p, size_t len, struct mv_msg_hello *m);
size_t mv_welcome_encode(const struct mv_msg_welcome *m, uint8_t *out);
int mv_welcome_decode(const uint8_t *p, size_t len, struct mv_msg_welcome *m);
size_t mv_grant_encode(const struct mv_msg_grant *m, uint8_t *out);
int mv_grant_decode(const uint8_t *p, size_t len, struct mv_msg_grant *m);
size_t mv_launches_encode(const struct mv_msg_launches *m, uint8_t *out);
/* Refuses a send other than 0 or 1. */
int mv_launches_decode(const uint8_t *p, size_t len, struct mv_msg_launches *m);
size_t mv_counters_encode(const struct mv_msg_counters *m, uint8_t *out);
int mv_counters_decode(const uint8_t *p, size_t len, struct mv_msg_counters *m);
size_t mv_control_hello_encode(const struct mv_msg_control_hello *m, uint8_t *out);
int mv_control_hello_decode(const uint8_t *p, size_t len, struct mv_msg_control_hello *m);

/* EVENTS: encode writes the head and n events (n <= MV_EVENTS_MAX) and returns the payload size;
 * decode checks the head against len and returns 0 with *head filled, after which
 * mv_event_decode(p + MV_MSG_EVENTS_HEAD + i * MV_EVENT_SIZE, ...) reads event i < head->count. */
size_t mv_events_encode(const struct mv_event *ev, uint32_t n, uint32_t dropped, uint8_t *out);
int mv_events_decode(const uint8_t *p, size_t len, struct mv_msg_events *head);
void mv_event_decode(const uint8_t *p, struct mv_event *ev);

/* PLAN: encode writes the head and head->nops ops (at most MV_PLAN_OPS_MAX) and returns the payload
 * size, or 0; decode checks the head against len and returns 0, after which
 * mv_plan_op_decode(p + MV_MSG_PLAN_HEAD + i * MV_PLAN_OP_SIZE, head->nlaunch, ...) reads op i and
 * refuses (MV_FRAME_BAD_PAYLOAD) an unknown kind or a launch number outside the iteration. */
size_t mv_plan_encode(const struct mv_msg_plan *head, const struct mv_plan_op_wire *ops, uint8_t *out);
int mv_plan_decode(const uint8_t *p, size_t len, struct mv_msg_plan *head);
int mv_plan_op_decode(const uint8_t *p, uint32_t nlaunch, struct mv_plan_op_wire *op);

/* Little-endian fields. */
void mv_put_u16(uint8_t *p, uint16_t v);
void mv_put_u32(uint8_t *p, uint32_t v);
void mv_put_u64(uint8_t *p, uint64_t v);
uint16_t mv_get_u16(const uint8_t *p);
uint32_t mv_get_u32(const uint8_t *p);
uint64_t mv_get_u64(const uint8_t *p);

#endif
