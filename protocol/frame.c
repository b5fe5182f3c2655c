/* Frames and binary payloads of the wire protocol (proto.h), field by field, over caller buffers. */
#include "config.h"

#include <string.h>

#include "protocol/frame.h"

void mv_put_u16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

void mv_put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

void mv_put_u64(uint8_t *p, uint64_t v)
{
	mv_put_u32(p, (uint32_t)v);
	mv_put_u32(p + 4, (uint32_t)(v >> 32));
}

uint16_t mv_get_u16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (uint16_t)p[1] << 8);
}

uint32_t mv_get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

uint64_t mv_get_u64(const uint8_t *p)
{
	return (uint64_t)mv_get_u32(p) | (uint64_t)mv_get_u32(p + 4) << 32;
}

/* The payload size a type requires, or -1 when its size varies (EVENTS, the JSON messages) or the
 * type is not one of enum mv_msg_type; *known says which. */
static long frame_fixed_size(uint16_t type, int *known)
{
	*known = 1;
	switch (type) {
	case MV_MSG_HELLO:
		return MV_MSG_HELLO_SIZE;
	case MV_MSG_COUNTERS:
		return MV_MSG_COUNTERS_SIZE;
	case MV_MSG_WELCOME:
		return MV_MSG_WELCOME_SIZE;
	case MV_MSG_GRANT:
		return MV_MSG_GRANT_SIZE;
	case MV_MSG_LAUNCHES:
		return MV_MSG_LAUNCHES_SIZE;
	case MV_MSG_CONTROL_HELLO:
		return MV_MSG_CONTROL_HELLO_SIZE;
	case MV_MSG_BYE:
	case MV_MSG_SHUTDOWN:
		return 0;
	case MV_MSG_EVENTS:
	case MV_MSG_PLAN:
	case MV_MSG_REQUEST:
	case MV_MSG_RESPONSE:
		return -1;
	}
	*known = 0;
	return -1;
}

/* Judges a whole header; 0 when the frame may follow. */
static int frame_check_header(const uint8_t *h)
{
	uint16_t type = mv_get_u16(h + 6);
	uint32_t length = mv_get_u32(h + 8);
	long fixed;
	int known;

	if (mv_get_u32(h) != MV_PROTO_MAGIC)
		return MV_FRAME_BAD_MAGIC;
	if (mv_get_u16(h + 4) != MV_PROTO_VERSION)
		return MV_FRAME_BAD_VERSION;
	if (mv_get_u32(h + 12) != 0)
		return MV_FRAME_BAD_RESERVED;
	if (length > MV_FRAME_MAX)
		return MV_FRAME_TOO_LONG;
	fixed = frame_fixed_size(type, &known);
	if (!known)
		return MV_FRAME_UNKNOWN_TYPE;
	/* A size the type cannot have is refused now rather than after buffering up to 1 MiB of it;
	 * the payload decoders check the same sizes again, and the EVENTS count. */
	if (fixed >= 0 && length != (uint32_t)fixed)
		return MV_FRAME_BAD_PAYLOAD;
	if (type == MV_MSG_EVENTS &&
	    (length < MV_MSG_EVENTS_HEAD || (length - MV_MSG_EVENTS_HEAD) % MV_EVENT_SIZE != 0))
		return MV_FRAME_BAD_PAYLOAD;
	if (type == MV_MSG_PLAN &&
	    (length < MV_MSG_PLAN_HEAD || (length - MV_MSG_PLAN_HEAD) % MV_PLAN_OP_SIZE != 0))
		return MV_FRAME_BAD_PAYLOAD;
	return 0;
}

ssize_t mv_frame_decode(const uint8_t *buf, size_t len, struct mv_frame *f)
{
	uint32_t length;
	int rc;

	if (len < MV_FRAME_HEADER)
		return MV_FRAME_NEED_MORE;
	rc = frame_check_header(buf);
	if (rc < 0)
		return rc;
	length = mv_get_u32(buf + 8);
	if (len - MV_FRAME_HEADER < length)
		return MV_FRAME_NEED_MORE;
	f->type = mv_get_u16(buf + 6);
	f->length = length;
	f->payload = buf + MV_FRAME_HEADER;
	return (ssize_t)(MV_FRAME_HEADER + (size_t)length);
}

int mv_frame_at_eof(size_t len)
{
	return len > 0 ? MV_FRAME_TRUNCATED : 0;
}

const char *mv_frame_strerror(int status)
{
	switch (status) {
	case MV_FRAME_NEED_MORE:
		return "incomplete frame";
	case MV_FRAME_BAD_MAGIC:
		return "bad magic";
	case MV_FRAME_BAD_VERSION:
		return "unsupported protocol version";
	case MV_FRAME_TOO_LONG:
		return "frame longer than 1 MiB";
	case MV_FRAME_UNKNOWN_TYPE:
		return "unknown message type";
	case MV_FRAME_BAD_RESERVED:
		return "nonzero reserved field";
	case MV_FRAME_TRUNCATED:
		return "connection closed inside a frame";
	case MV_FRAME_BAD_PAYLOAD:
		return "payload size does not match its type";
	}
	return "unknown frame error";
}

void mv_frame_header(uint8_t *out, uint16_t type, uint32_t length)
{
	mv_put_u32(out, MV_PROTO_MAGIC);
	mv_put_u16(out + 4, MV_PROTO_VERSION);
	mv_put_u16(out + 6, type);
	mv_put_u32(out + 8, length);
	mv_put_u32(out + 12, 0);
}

int mv_group_valid(const char *g, size_t len)
{
	size_t n = strnlen(g, len);

	/* A group decides whose budget is shared: a token means exactly one thing or it is refused. */
	if (n == len || n > MV_GROUP_MAX || strspn(g, MV_GROUP_CHARS) != n)
		return 0;
	for (size_t i = n; i < len; i++)
		if (g[i] != '\0')
			return 0;
	return 1;
}

size_t mv_hello_encode(const struct mv_msg_hello *m, uint8_t *out)
{
	mv_put_u32(out, m->pid);
	mv_put_u32(out + 4, m->device);
	memcpy(out + 8, m->uuid, 16);
	mv_put_u64(out + 24, m->device_total);
	mv_put_u64(out + 32, m->budget);
	mv_put_u32(out + 40, m->weight);
	mv_put_u32(out + 44, m->rank);
	memcpy(out + 48, m->job, 64);
	memcpy(out + 112, m->group, 64);
	mv_put_u64(out + 176, m->host_want);
	return MV_MSG_HELLO_SIZE;
}

int mv_hello_decode(const uint8_t *p, size_t len, struct mv_msg_hello *m)
{
	if (len != MV_MSG_HELLO_SIZE)
		return MV_FRAME_BAD_PAYLOAD;
	m->pid = mv_get_u32(p);
	m->device = mv_get_u32(p + 4);
	memcpy(m->uuid, p + 8, 16);
	m->device_total = mv_get_u64(p + 24);
	m->budget = mv_get_u64(p + 32);
	m->weight = mv_get_u32(p + 40);
	m->rank = mv_get_u32(p + 44);
	memcpy(m->job, p + 48, 64);
	/* The peer may fill all 64 bytes; the name is used as a C string. */
	m->job[63] = '\0';
	memcpy(m->group, p + 112, 64);
	m->host_want = mv_get_u64(p + 176);
	return mv_group_valid(m->group, sizeof(m->group)) ? 0 : MV_FRAME_BAD_PAYLOAD;
}

size_t mv_welcome_encode(const struct mv_msg_welcome *m, uint8_t *out)
{
	mv_put_u64(out, m->session);
	mv_put_u64(out + 8, m->grant);
	mv_put_u64(out + 16, m->host_grant);
	return MV_MSG_WELCOME_SIZE;
}

int mv_welcome_decode(const uint8_t *p, size_t len, struct mv_msg_welcome *m)
{
	if (len != MV_MSG_WELCOME_SIZE)
		return MV_FRAME_BAD_PAYLOAD;
	m->session = mv_get_u64(p);
	m->grant = mv_get_u64(p + 8);
	m->host_grant = mv_get_u64(p + 16);
	return 0;
}

size_t mv_grant_encode(const struct mv_msg_grant *m, uint8_t *out)
{
	mv_put_u64(out, m->grant);
	mv_put_u64(out + 8, m->host_grant);
	return MV_MSG_GRANT_SIZE;
}

int mv_grant_decode(const uint8_t *p, size_t len, struct mv_msg_grant *m)
{
	if (len != MV_MSG_GRANT_SIZE)
		return MV_FRAME_BAD_PAYLOAD;
	m->grant = mv_get_u64(p);
	m->host_grant = mv_get_u64(p + 8);
	return 0;
}

size_t mv_launches_encode(const struct mv_msg_launches *m, uint8_t *out)
{
	mv_put_u32(out, m->send);
	return MV_MSG_LAUNCHES_SIZE;
}

int mv_launches_decode(const uint8_t *p, size_t len, struct mv_msg_launches *m)
{
	if (len != MV_MSG_LAUNCHES_SIZE || mv_get_u32(p) > 1)
		return MV_FRAME_BAD_PAYLOAD;
	m->send = mv_get_u32(p);
	return 0;
}

/* Each counter of counters.def is a u64 at 8 times its index. */
size_t mv_counters_encode(const struct mv_msg_counters *m, uint8_t *out)
{
#define MV_COUNTER(name, ...) mv_put_u64(out + 8 * MV_COUNTER_##name, m->name);
#include "protocol/counters.def"
#undef MV_COUNTER
	return MV_MSG_COUNTERS_SIZE;
}

int mv_counters_decode(const uint8_t *p, size_t len, struct mv_msg_counters *m)
{
	if (len != MV_MSG_COUNTERS_SIZE)
		return MV_FRAME_BAD_PAYLOAD;
#define MV_COUNTER(name, ...) m->name = mv_get_u64(p + 8 * MV_COUNTER_##name);
#include "protocol/counters.def"
#undef MV_COUNTER
	return 0;
}

size_t mv_control_hello_encode(const struct mv_msg_control_hello *m, uint8_t *out)
{
	mv_put_u32(out, m->pid);
	mv_put_u32(out + 4, m->reserved);
	return MV_MSG_CONTROL_HELLO_SIZE;
}

int mv_control_hello_decode(const uint8_t *p, size_t len, struct mv_msg_control_hello *m)
{
	if (len != MV_MSG_CONTROL_HELLO_SIZE)
		return MV_FRAME_BAD_PAYLOAD;
	m->pid = mv_get_u32(p);
	m->reserved = mv_get_u32(p + 4);
	return 0;
}

size_t mv_events_encode(const struct mv_event *ev, uint32_t n, uint32_t dropped, uint8_t *out)
{
	uint8_t *q;
	uint32_t i;

	/* More events than a frame holds is the caller's bug: write nothing rather than a frame
	 * every peer would refuse. */
	if (n > MV_EVENTS_MAX)
		return 0;
	mv_put_u32(out, n);
	mv_put_u32(out + 4, dropped);
	q = out + MV_MSG_EVENTS_HEAD;
	for (i = 0; i < n; i++, q += MV_EVENT_SIZE) {
		mv_put_u64(q, ev[i].time_ns);
		mv_put_u32(q + 8, ev[i].kind);
		mv_put_u32(q + 12, ev[i].stream);
		mv_put_u64(q + 16, ev[i].addr);
		mv_put_u64(q + 24, ev[i].size);
		mv_put_u64(q + 32, ev[i].arg);
	}
	return MV_MSG_EVENTS_HEAD + (size_t)n * MV_EVENT_SIZE;
}

int mv_events_decode(const uint8_t *p, size_t len, struct mv_msg_events *head)
{
	uint32_t count;

	if (len < MV_MSG_EVENTS_HEAD)
		return MV_FRAME_BAD_PAYLOAD;
	count = mv_get_u32(p);
	/* Bounding count first keeps the product below from overflowing. */
	if (count > MV_EVENTS_MAX || len != MV_MSG_EVENTS_HEAD + (size_t)count * MV_EVENT_SIZE)
		return MV_FRAME_BAD_PAYLOAD;
	head->count = count;
	head->dropped = mv_get_u32(p + 4);
	return 0;
}

void mv_event_decode(const uint8_t *p, struct mv_event *ev)
{
	ev->time_ns = mv_get_u64(p);
	ev->kind = mv_get_u32(p + 8);
	ev->stream = mv_get_u32(p + 12);
	ev->addr = mv_get_u64(p + 16);
	ev->size = mv_get_u64(p + 24);
	ev->arg = mv_get_u64(p + 32);
}

size_t mv_plan_encode(const struct mv_msg_plan *head, const struct mv_plan_op_wire *ops, uint8_t *out)
{
	uint8_t *q;
	uint32_t i;

	if (head->nops > MV_PLAN_OPS_MAX)
		return 0;
	mv_put_u64(out, head->fingerprint);
	mv_put_u32(out + 8, head->nlaunch);
	mv_put_u32(out + 12, head->nops);
	mv_put_u64(out + 16, head->plan_id);
	q = out + MV_MSG_PLAN_HEAD;
	for (i = 0; i < head->nops; i++, q += MV_PLAN_OP_SIZE) {
		mv_put_u32(q, ops[i].at);
		mv_put_u32(q + 4, ops[i].need);
		mv_put_u32(q + 8, ops[i].kind);
		mv_put_u32(q + 12, ops[i].bind_launch);
		mv_put_u32(q + 16, ops[i].bind_index);
		mv_put_u32(q + 20, 0);
		mv_put_u64(q + 24, ops[i].size);
	}
	return MV_MSG_PLAN_HEAD + (size_t)head->nops * MV_PLAN_OP_SIZE;
}

int mv_plan_decode(const uint8_t *p, size_t len, struct mv_msg_plan *head)
{
	uint32_t nops;

	if (len < MV_MSG_PLAN_HEAD)
		return MV_FRAME_BAD_PAYLOAD;
	nops = mv_get_u32(p + 12);
	if (nops > MV_PLAN_OPS_MAX || len != MV_MSG_PLAN_HEAD + (size_t)nops * MV_PLAN_OP_SIZE)
		return MV_FRAME_BAD_PAYLOAD;
	head->fingerprint = mv_get_u64(p);
	head->nlaunch = mv_get_u32(p + 8);
	head->nops = nops;
	head->plan_id = mv_get_u64(p + 16);
	return 0;
}

int mv_plan_op_decode(const uint8_t *p, uint32_t nlaunch, struct mv_plan_op_wire *op)
{
	op->at = mv_get_u32(p);
	op->need = mv_get_u32(p + 4);
	op->kind = mv_get_u32(p + 8);
	op->bind_launch = mv_get_u32(p + 12);
	op->bind_index = mv_get_u32(p + 16);
	op->reserved = mv_get_u32(p + 20);
	op->size = mv_get_u64(p + 24);
	/* Launch numbers index the receiver's tables: each is checked against the iteration's length. */
	if (op->kind != 1 && op->kind != 2)
		return MV_FRAME_BAD_PAYLOAD;
	if (op->at != MV_PLAN_OP_BEFORE_FIRST && op->at >= nlaunch)
		return MV_FRAME_BAD_PAYLOAD;
	if (op->need != MV_PLAN_OP_BEFORE_FIRST && op->need >= nlaunch)
		return MV_FRAME_BAD_PAYLOAD;
	if (op->bind_launch >= nlaunch || op->reserved != 0 || op->size == 0)
		return MV_FRAME_BAD_PAYLOAD;
	return 0;
}
