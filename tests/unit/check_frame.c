/* Frames and binary payloads (protocol/frame.c): the wire layout, round trips of every message type,
 * a clean status for every malformed frame, and a deterministic fuzz loop. */
#include "config.h"

#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/frame.h"

/* A frame of the given type around payload[0, n) into out; returns its whole size. */
static size_t build(uint8_t *out, uint16_t type, const uint8_t *payload, uint32_t n)
{
	mv_frame_header(out, type, n);
	if (n > 0)
		memcpy(out + MV_FRAME_HEADER, payload, n);
	return MV_FRAME_HEADER + (size_t)n;
}

/* A bare header with every field chosen by the test. */
static void raw_header(uint8_t *out, uint32_t magic, uint16_t version, uint16_t type, uint32_t length,
		       uint32_t reserved)
{
	mv_put_u32(out, magic);
	mv_put_u16(out + 4, version);
	mv_put_u16(out + 6, type);
	mv_put_u32(out + 8, length);
	mv_put_u32(out + 12, reserved);
}

/* Decodes buf[0, len) as exactly one frame of the given type and returns its payload. */
static const uint8_t *expect_frame(const uint8_t *buf, size_t len, uint16_t type, uint32_t n)
{
	struct mv_frame f;
	ssize_t r;

	memset(&f, 0xa5, sizeof(f));
	r = mv_frame_decode(buf, len, &f);
	ck_assert_int_eq(r, (ssize_t)len);
	ck_assert_uint_eq(f.type, type);
	ck_assert_uint_eq(f.length, n);
	ck_assert_ptr_eq(f.payload, buf + MV_FRAME_HEADER);
	return f.payload;
}

static const uint16_t all_types[] = {
	MV_MSG_HELLO, MV_MSG_EVENTS, MV_MSG_COUNTERS, MV_MSG_BYE, MV_MSG_WELCOME, MV_MSG_GRANT,
	MV_MSG_SHUTDOWN, MV_MSG_PLAN, MV_MSG_LAUNCHES, MV_MSG_CONTROL_HELLO, MV_MSG_REQUEST, MV_MSG_RESPONSE,
};
#define N_TYPES (sizeof(all_types) / sizeof(all_types[0]))

START_TEST(test_little_endian_fields)
{
	uint8_t b[8];

	mv_put_u16(b, 0x0102);
	ck_assert_uint_eq(b[0], 0x02);
	ck_assert_uint_eq(b[1], 0x01);
	ck_assert_uint_eq(mv_get_u16(b), 0x0102);

	mv_put_u32(b, 0x01020304u);
	ck_assert_uint_eq(b[0], 0x04);
	ck_assert_uint_eq(b[3], 0x01);
	ck_assert_uint_eq(mv_get_u32(b), 0x01020304u);

	mv_put_u64(b, 0x0102030405060708ull);
	for (int i = 0; i < 8; i++)
		ck_assert_uint_eq(b[i], 8 - i);
	ck_assert_uint_eq(mv_get_u64(b), 0x0102030405060708ull);

	mv_put_u64(b, UINT64_MAX);
	ck_assert_uint_eq(mv_get_u64(b), UINT64_MAX);
	mv_put_u32(b, 0x80000000u);
	ck_assert_uint_eq(mv_get_u32(b), 0x80000000u);
	mv_put_u16(b, 0x8001);
	ck_assert_uint_eq(mv_get_u16(b), 0x8001);
}
END_TEST

START_TEST(test_header_layout)
{
	uint8_t h[MV_FRAME_HEADER];
	static const uint8_t want[MV_FRAME_HEADER] = {
		'M', 'V', 'P', 'V', 0x09, 0x00, 0x03, 0x01, 0x78, 0x56, 0x34, 0x12, 0, 0, 0, 0,
	};

	memset(h, 0xff, sizeof(h));
	mv_frame_header(h, MV_MSG_BYE, 0x12345678u);
	ck_assert_mem_eq(h, want, sizeof(want));
}
END_TEST

static struct mv_msg_hello sample_hello(void)
{
	struct mv_msg_hello m;

	memset(&m, 0, sizeof(m));
	m.pid = 0x11223344u;
	m.device = 3;
	for (int i = 0; i < 16; i++)
		m.uuid[i] = (uint8_t)(0xf0 + i);
	m.device_total = 80ull << 30;
	m.budget = 0x0102030405060708ull;
	m.weight = 7;
	m.rank = 0x01020304u;
	strcpy(m.job, "python train.py");
	strcpy(m.group, "slurm-1234.0");
	m.host_want = 0x1112131415161718ull;
	return m;
}

START_TEST(test_hello_roundtrip)
{
	struct mv_msg_hello m = sample_hello(), d;
	uint8_t pl[MV_MSG_HELLO_SIZE + 1], buf[MV_FRAME_HEADER + MV_MSG_HELLO_SIZE];
	const uint8_t *p;
	size_t n;

	pl[MV_MSG_HELLO_SIZE] = 0xee;
	n = mv_hello_encode(&m, pl);
	ck_assert_uint_eq(n, MV_MSG_HELLO_SIZE);
	ck_assert_uint_eq(n, 184);
	ck_assert_uint_eq(pl[MV_MSG_HELLO_SIZE], 0xee);
	/* Field order and offsets on the wire. */
	ck_assert_uint_eq(pl[0], 0x44);
	ck_assert_uint_eq(mv_get_u32(pl), m.pid);
	ck_assert_uint_eq(mv_get_u32(pl + 4), 3);
	ck_assert_mem_eq(pl + 8, m.uuid, 16);
	ck_assert_uint_eq(mv_get_u64(pl + 24), m.device_total);
	ck_assert_uint_eq(pl[32], 0x08);
	ck_assert_uint_eq(mv_get_u64(pl + 32), m.budget);
	ck_assert_uint_eq(mv_get_u32(pl + 40), 7);
	ck_assert_uint_eq(mv_get_u32(pl + 44), 0x01020304u);
	ck_assert_uint_eq(pl[44], 0x04);
	ck_assert_mem_eq(pl + 48, m.job, 64);
	ck_assert_mem_eq(pl + 112, m.group, 64);
	ck_assert_uint_eq(mv_get_u64(pl + 176), m.host_want);
	ck_assert_uint_eq(pl[176], 0x18);

	n = build(buf, MV_MSG_HELLO, pl, MV_MSG_HELLO_SIZE);
	p = expect_frame(buf, n, MV_MSG_HELLO, MV_MSG_HELLO_SIZE);
	memset(&d, 0x5a, sizeof(d));
	ck_assert_int_eq(mv_hello_decode(p, MV_MSG_HELLO_SIZE, &d), 0);
	ck_assert_uint_eq(d.pid, m.pid);
	ck_assert_uint_eq(d.device, m.device);
	ck_assert_mem_eq(d.uuid, m.uuid, 16);
	ck_assert_uint_eq(d.device_total, m.device_total);
	ck_assert_uint_eq(d.budget, m.budget);
	ck_assert_uint_eq(d.weight, m.weight);
	ck_assert_uint_eq(d.rank, m.rank);
	ck_assert_str_eq(d.job, "python train.py");
	ck_assert_mem_eq(d.job, m.job, 64);
	ck_assert_str_eq(d.group, "slurm-1234.0");
	ck_assert_uint_eq(d.host_want, m.host_want);
}
END_TEST

/* The group field decides whose budget is shared: anything but a token and NUL padding (or all
 * NUL) is refused whole. */
START_TEST(test_hello_group_strict)
{
	struct mv_msg_hello m = sample_hello(), d;
	uint8_t pl[MV_MSG_HELLO_SIZE];

	memset(m.group, 0, sizeof(m.group));
	mv_hello_encode(&m, pl);
	ck_assert_int_eq(mv_hello_decode(pl, sizeof(pl), &d), 0);
	ck_assert_str_eq(d.group, "");

	memset(m.group, 'g', MV_GROUP_MAX);
	mv_hello_encode(&m, pl);
	ck_assert_int_eq(mv_hello_decode(pl, sizeof(pl), &d), 0);
	ck_assert_uint_eq(strlen(d.group), MV_GROUP_MAX);

	/* No NUL at all. */
	memset(m.group, 'g', sizeof(m.group));
	mv_hello_encode(&m, pl);
	ck_assert_int_eq(mv_hello_decode(pl, sizeof(pl), &d), MV_FRAME_BAD_PAYLOAD);
	/* A byte after the terminating NUL. */
	memset(m.group, 0, sizeof(m.group));
	strcpy(m.group, "run-1");
	m.group[40] = 'x';
	mv_hello_encode(&m, pl);
	ck_assert_int_eq(mv_hello_decode(pl, sizeof(pl), &d), MV_FRAME_BAD_PAYLOAD);
	/* A character outside the token's set. */
	memset(m.group, 0, sizeof(m.group));
	strcpy(m.group, "run 1");
	mv_hello_encode(&m, pl);
	ck_assert_int_eq(mv_hello_decode(pl, sizeof(pl), &d), MV_FRAME_BAD_PAYLOAD);
	strcpy(m.group, "run\n1");
	mv_hello_encode(&m, pl);
	ck_assert_int_eq(mv_hello_decode(pl, sizeof(pl), &d), MV_FRAME_BAD_PAYLOAD);
}
END_TEST

START_TEST(test_hello_job_terminated)
{
	struct mv_msg_hello m = sample_hello(), d;
	uint8_t pl[MV_MSG_HELLO_SIZE];

	memset(m.job, 'x', sizeof(m.job));
	mv_hello_encode(&m, pl);
	/* All 64 bytes travel as they are ... */
	ck_assert_uint_eq(pl[48 + 63], 'x');
	ck_assert_int_eq(mv_hello_decode(pl, sizeof(pl), &d), 0);
	/* ... and the decoder makes the name a C string. */
	ck_assert_uint_eq(d.job[63], '\0');
	ck_assert_uint_eq(strlen(d.job), 63);
	ck_assert_uint_eq(d.job[62], 'x');
}
END_TEST

START_TEST(test_welcome_grant_roundtrip)
{
	struct mv_msg_welcome w = {.session = 0xdeadbeefcafef00dull, .grant = 12ull << 30,
				   .host_grant = 3ull << 30}, wd;
	struct mv_msg_grant g = {.grant = 0x8000000000000001ull, .host_grant = MV_HOST_GRANT_NONE - 1}, gd;
	uint8_t pl[64], buf[128];
	const uint8_t *p;
	size_t n;

	n = mv_welcome_encode(&w, pl);
	ck_assert_uint_eq(n, MV_MSG_WELCOME_SIZE);
	ck_assert_uint_eq(mv_get_u64(pl), w.session);
	ck_assert_uint_eq(mv_get_u64(pl + 8), w.grant);
	ck_assert_uint_eq(mv_get_u64(pl + 16), w.host_grant);
	n = build(buf, MV_MSG_WELCOME, pl, (uint32_t)n);
	p = expect_frame(buf, n, MV_MSG_WELCOME, MV_MSG_WELCOME_SIZE);
	ck_assert_int_eq(mv_welcome_decode(p, MV_MSG_WELCOME_SIZE, &wd), 0);
	ck_assert_uint_eq(wd.session, w.session);
	ck_assert_uint_eq(wd.grant, w.grant);
	ck_assert_uint_eq(wd.host_grant, w.host_grant);

	n = mv_grant_encode(&g, pl);
	ck_assert_uint_eq(n, MV_MSG_GRANT_SIZE);
	ck_assert_uint_eq(pl[0], 0x01);
	ck_assert_uint_eq(pl[7], 0x80);
	ck_assert_uint_eq(mv_get_u64(pl + 8), g.host_grant);
	ck_assert_uint_eq(pl[8], 0xfe);
	n = build(buf, MV_MSG_GRANT, pl, (uint32_t)n);
	p = expect_frame(buf, n, MV_MSG_GRANT, MV_MSG_GRANT_SIZE);
	ck_assert_int_eq(mv_grant_decode(p, MV_MSG_GRANT_SIZE, &gd), 0);
	ck_assert_uint_eq(gd.grant, g.grant);
	ck_assert_uint_eq(gd.host_grant, g.host_grant);
	/* The v5 sizes, without the host grant, are refused. */
	ck_assert_int_eq(mv_grant_decode(p, 8, &gd), MV_FRAME_BAD_PAYLOAD);
	ck_assert_int_eq(mv_welcome_decode(pl, 16, &wd), MV_FRAME_BAD_PAYLOAD);
}
END_TEST

START_TEST(test_counters_roundtrip)
{
	struct mv_msg_counters c, d;
	uint8_t pl[MV_MSG_COUNTERS_SIZE], buf[MV_FRAME_HEADER + MV_MSG_COUNTERS_SIZE];
	const uint8_t *p;
	size_t n;

	c.budget = 1;
	c.resident_bytes = 2;
	c.host_bytes = 3;
	c.page_outs = 4;
	c.page_ins = 5;
	c.fault_ins = 6;
	c.bytes_out = 7;
	c.bytes_in = 8;
	c.stall_ns = 9;
	c.app_vmm_bytes = 10;
	c.oom = 11;
	c.events_sent = 0x4444;
	c.events_dropped = 0xffffffffffull;
	c.planned_outs = 0x1111;
	c.planned_ins = 0x2222;
	c.late_ins = 0x3333;
	c.divergences = 0x5555;
	n = mv_counters_encode(&c, pl);
	ck_assert_uint_eq(n, MV_MSG_COUNTERS_SIZE);
	/* Each counter at its place, in the order of the struct. */
	for (int i = 0; i < 11; i++)
		ck_assert_uint_eq(mv_get_u64(pl + 8 * i), (uint64_t)i + 1);
	ck_assert_uint_eq(mv_get_u64(pl + 88), c.events_sent);
	ck_assert_uint_eq(mv_get_u64(pl + 96), c.events_dropped);
	ck_assert_uint_eq(mv_get_u64(pl + 104), c.planned_outs);
	ck_assert_uint_eq(mv_get_u64(pl + 112), c.planned_ins);
	ck_assert_uint_eq(mv_get_u64(pl + 120), c.late_ins);
	ck_assert_uint_eq(mv_get_u64(pl + 128), c.divergences);

	n = build(buf, MV_MSG_COUNTERS, pl, (uint32_t)n);
	p = expect_frame(buf, n, MV_MSG_COUNTERS, MV_MSG_COUNTERS_SIZE);
	memset(&d, 0, sizeof(d));
	ck_assert_int_eq(mv_counters_decode(p, MV_MSG_COUNTERS_SIZE, &d), 0);
	ck_assert_uint_eq(d.budget, 1);
	ck_assert_uint_eq(d.resident_bytes, 2);
	ck_assert_uint_eq(d.host_bytes, 3);
	ck_assert_uint_eq(d.page_outs, 4);
	ck_assert_uint_eq(d.page_ins, 5);
	ck_assert_uint_eq(d.fault_ins, 6);
	ck_assert_uint_eq(d.bytes_out, 7);
	ck_assert_uint_eq(d.bytes_in, 8);
	ck_assert_uint_eq(d.stall_ns, 9);
	ck_assert_uint_eq(d.app_vmm_bytes, 10);
	ck_assert_uint_eq(d.oom, 11);
	ck_assert_uint_eq(d.events_sent, c.events_sent);
	ck_assert_uint_eq(d.events_dropped, c.events_dropped);
	ck_assert_uint_eq(d.planned_outs, c.planned_outs);
	ck_assert_uint_eq(d.planned_ins, c.planned_ins);
	ck_assert_uint_eq(d.late_ins, c.late_ins);
	ck_assert_uint_eq(d.divergences, c.divergences);
}
END_TEST

/* Every counter of protocol/counters.def travels: each is written at 8 times its index, the payload
 * holds them all and nothing else, and each comes back with its own value. */
START_TEST(test_counters_every_one)
{
	struct mv_msg_counters c, d;
	uint8_t pl[MV_MSG_COUNTERS_SIZE + 8];
	uint64_t seen = 0;
	size_t n;

	/* Distinct values in every byte: a counter written twice, or in another's place, shows. */
#define MV_COUNTER(name, ...) c.name = 0x0101010101010101ull * (MV_COUNTER_##name + 1) + MV_COUNTER_##name;
#include "protocol/counters.def"
#undef MV_COUNTER
	memset(pl, 0xee, sizeof(pl));
	n = mv_counters_encode(&c, pl);
	ck_assert_uint_eq(n, MV_MSG_COUNTERS_SIZE);
	ck_assert_uint_eq(n, sizeof(struct mv_msg_counters));
	ck_assert_uint_eq(pl[MV_MSG_COUNTERS_SIZE], 0xee);
	memset(&d, 0, sizeof(d));
	ck_assert_int_eq(mv_counters_decode(pl, n, &d), 0);
#define MV_COUNTER(name, ...)                                                                    \
	ck_assert_msg(mv_get_u64(pl + 8 * MV_COUNTER_##name) == c.name, "%s not at its place", #name); \
	ck_assert_msg(d.name == c.name, "%s came back as %#llx", #name, (unsigned long long)d.name);   \
	seen++;
#include "protocol/counters.def"
#undef MV_COUNTER
	ck_assert_uint_eq(seen, MV_NCOUNTERS);
}
END_TEST

START_TEST(test_control_hello_roundtrip)
{
	struct mv_msg_control_hello m = {.pid = 4242, .reserved = 0}, d = {.pid = 1, .reserved = 9};
	uint8_t pl[MV_MSG_CONTROL_HELLO_SIZE], buf[64];
	const uint8_t *p;
	size_t n;

	n = mv_control_hello_encode(&m, pl);
	ck_assert_uint_eq(n, MV_MSG_CONTROL_HELLO_SIZE);
	ck_assert_uint_eq(mv_get_u32(pl), 4242);
	ck_assert_uint_eq(mv_get_u32(pl + 4), 0);
	n = build(buf, MV_MSG_CONTROL_HELLO, pl, (uint32_t)n);
	p = expect_frame(buf, n, MV_MSG_CONTROL_HELLO, MV_MSG_CONTROL_HELLO_SIZE);
	ck_assert_int_eq(mv_control_hello_decode(p, MV_MSG_CONTROL_HELLO_SIZE, &d), 0);
	ck_assert_uint_eq(d.pid, 4242);
	ck_assert_uint_eq(d.reserved, 0);
}
END_TEST

static struct mv_event sample_event(uint32_t i)
{
	struct mv_event e = {
		.time_ns = 1000000000ull * i + 17,
		.kind = 1 + i % 6,
		.stream = i * 3,
		.addr = 0x7f0000000000ull + (uint64_t)i * 4096,
		.size = (uint64_t)i << 20,
		.arg = ~(uint64_t)i,
	};
	return e;
}

/* Encodes n sample events, frames them and decodes them all back. */
static void events_roundtrip(uint32_t n, uint32_t dropped)
{
	size_t size = MV_MSG_EVENTS_HEAD + (size_t)n * MV_EVENT_SIZE;
	struct mv_event *ev = calloc(n ? n : 1, sizeof(*ev));
	uint8_t *pl = malloc(size), *buf = malloc(MV_FRAME_HEADER + size);
	struct mv_msg_events head = {.count = 99, .dropped = 99};
	const uint8_t *p;
	size_t got;

	ck_assert_ptr_nonnull(ev);
	ck_assert_ptr_nonnull(pl);
	ck_assert_ptr_nonnull(buf);
	for (uint32_t i = 0; i < n; i++)
		ev[i] = sample_event(i);
	got = mv_events_encode(ev, n, dropped, pl);
	ck_assert_uint_eq(got, size);
	ck_assert_uint_eq(mv_get_u32(pl), n);
	ck_assert_uint_eq(mv_get_u32(pl + 4), dropped);
	if (n > 0) {
		/* The first event's fields in struct order. */
		ck_assert_uint_eq(mv_get_u64(pl + 8), ev[0].time_ns);
		ck_assert_uint_eq(mv_get_u32(pl + 16), ev[0].kind);
		ck_assert_uint_eq(mv_get_u32(pl + 20), ev[0].stream);
		ck_assert_uint_eq(mv_get_u64(pl + 24), ev[0].addr);
		ck_assert_uint_eq(mv_get_u64(pl + 32), ev[0].size);
		ck_assert_uint_eq(mv_get_u64(pl + 40), ev[0].arg);
	}
	got = build(buf, MV_MSG_EVENTS, pl, (uint32_t)size);
	p = expect_frame(buf, got, MV_MSG_EVENTS, (uint32_t)size);
	ck_assert_int_eq(mv_events_decode(p, size, &head), 0);
	ck_assert_uint_eq(head.count, n);
	ck_assert_uint_eq(head.dropped, dropped);
	for (uint32_t i = 0; i < head.count; i++) {
		struct mv_event d, want = sample_event(i);

		memset(&d, 0, sizeof(d));
		mv_event_decode(p + MV_MSG_EVENTS_HEAD + (size_t)i * MV_EVENT_SIZE, &d);
		ck_assert_msg(d.time_ns == want.time_ns && d.kind == want.kind && d.stream == want.stream &&
				      d.addr == want.addr && d.size == want.size && d.arg == want.arg,
			      "event %u of %u differs after the round trip", i, n);
	}
	free(ev);
	free(pl);
	free(buf);
}

START_TEST(test_events_roundtrip)
{
	events_roundtrip(0, 0);
	events_roundtrip(1, 5);
	events_roundtrip(3, 0xffffffffu);
	events_roundtrip(1000, 2);
}
END_TEST

START_TEST(test_events_largest_batch)
{
	ck_assert_uint_le(MV_MSG_EVENTS_HEAD + (size_t)MV_EVENTS_MAX * MV_EVENT_SIZE, MV_FRAME_MAX);
	ck_assert_uint_gt(MV_MSG_EVENTS_HEAD + (size_t)(MV_EVENTS_MAX + 1) * MV_EVENT_SIZE, MV_FRAME_MAX);
	events_roundtrip(MV_EVENTS_MAX, 1);
}
END_TEST

START_TEST(test_events_encode_refuses_too_many)
{
	struct mv_event *ev = calloc(MV_EVENTS_MAX + 1, sizeof(*ev));
	uint8_t *pl = malloc(MV_MSG_EVENTS_HEAD + (size_t)(MV_EVENTS_MAX + 1) * MV_EVENT_SIZE);

	ck_assert_ptr_nonnull(ev);
	ck_assert_ptr_nonnull(pl);
	ck_assert_uint_eq(mv_events_encode(ev, MV_EVENTS_MAX + 1, 0, pl), 0);
	free(ev);
	free(pl);
}
END_TEST

START_TEST(test_empty_and_json_frames)
{
	static const char json[] = "{\"cmd\":\"status\"}";
	uint8_t buf[64];
	const uint8_t *p;
	size_t n;

	n = build(buf, MV_MSG_BYE, NULL, 0);
	ck_assert_uint_eq(n, MV_FRAME_HEADER);
	expect_frame(buf, n, MV_MSG_BYE, 0);
	n = build(buf, MV_MSG_SHUTDOWN, NULL, 0);
	expect_frame(buf, n, MV_MSG_SHUTDOWN, 0);
	n = build(buf, MV_MSG_REQUEST, (const uint8_t *)json, sizeof(json) - 1);
	p = expect_frame(buf, n, MV_MSG_REQUEST, sizeof(json) - 1);
	ck_assert_mem_eq(p, json, sizeof(json) - 1);
	n = build(buf, MV_MSG_RESPONSE, (const uint8_t *)json, 5);
	p = expect_frame(buf, n, MV_MSG_RESPONSE, 5);
	ck_assert_mem_eq(p, json, 5);
	/* An empty JSON message is a valid frame; the control layer judges its payload. */
	n = build(buf, MV_MSG_REQUEST, NULL, 0);
	expect_frame(buf, n, MV_MSG_REQUEST, 0);
}
END_TEST

/* Several frames back to back come out one at a time, and a frame fed a byte at a time is NEED_MORE
 * until its last byte arrives. */
START_TEST(test_stream_of_frames)
{
	struct mv_msg_grant g = {.grant = 77};
	struct mv_msg_welcome w = {.session = 1, .grant = 2};
	uint8_t pl[64], buf[256];
	struct mv_frame f;
	size_t n = 0, off = 0, sizes[3];
	ssize_t r;

	sizes[0] = build(buf + n, MV_MSG_WELCOME, pl, (uint32_t)mv_welcome_encode(&w, pl));
	n += sizes[0];
	sizes[1] = build(buf + n, MV_MSG_BYE, NULL, 0);
	n += sizes[1];
	sizes[2] = build(buf + n, MV_MSG_GRANT, pl, (uint32_t)mv_grant_encode(&g, pl));
	n += sizes[2];

	for (int i = 0; i < 3; i++) {
		r = mv_frame_decode(buf + off, n - off, &f);
		ck_assert_int_eq(r, (ssize_t)sizes[i]);
		off += (size_t)r;
	}
	ck_assert_uint_eq(f.type, MV_MSG_GRANT);
	ck_assert_uint_eq(off, n);
	ck_assert_int_eq(mv_frame_decode(buf + off, 0, &f), MV_FRAME_NEED_MORE);

	for (size_t len = 0; len < sizes[0]; len++) {
		r = mv_frame_decode(buf, len, &f);
		ck_assert_msg(r == MV_FRAME_NEED_MORE, "%zu of %zu bytes gave %zd", len, sizes[0], r);
		ck_assert_int_eq(mv_frame_at_eof(len), len ? MV_FRAME_TRUNCATED : 0);
	}
	ck_assert_int_eq(mv_frame_decode(buf, sizes[0], &f), (ssize_t)sizes[0]);
}
END_TEST

START_TEST(test_short_header)
{
	uint8_t h[MV_FRAME_HEADER];
	struct mv_frame f;

	/* Even a header that will turn out bad is not judged before all 16 bytes are there. */
	raw_header(h, 0xdeadbeef, 9, 0x7777, UINT32_MAX, 1);
	for (size_t len = 0; len < MV_FRAME_HEADER; len++) {
		ck_assert_int_eq(mv_frame_decode(h, len, &f), MV_FRAME_NEED_MORE);
		if (len > 0)
			ck_assert_int_eq(mv_frame_at_eof(len), MV_FRAME_TRUNCATED);
	}
	ck_assert_int_eq(mv_frame_at_eof(0), 0);
	ck_assert_int_eq(mv_frame_decode(h, MV_FRAME_HEADER, &f), MV_FRAME_BAD_MAGIC);
}
END_TEST

START_TEST(test_bad_magic)
{
	uint8_t h[MV_FRAME_HEADER];
	struct mv_frame f;

	raw_header(h, 0, MV_PROTO_VERSION, MV_MSG_BYE, 0, 0);
	ck_assert_int_eq(mv_frame_decode(h, sizeof(h), &f), MV_FRAME_BAD_MAGIC);
	/* The magic read big-endian, as a peer with the wrong byte order would send it. */
	raw_header(h, __builtin_bswap32(MV_PROTO_MAGIC), MV_PROTO_VERSION, MV_MSG_BYE, 0, 0);
	ck_assert_int_eq(mv_frame_decode(h, sizeof(h), &f), MV_FRAME_BAD_MAGIC);
	for (int i = 0; i < 4; i++) {
		mv_frame_header(h, MV_MSG_BYE, 0);
		h[i] ^= 0x20;
		ck_assert_int_eq(mv_frame_decode(h, sizeof(h), &f), MV_FRAME_BAD_MAGIC);
	}
	/* Judged from the header alone, with a payload still to come. */
	raw_header(h, 0x50545448 /* "HTTP" */, MV_PROTO_VERSION, MV_MSG_REQUEST, 500, 0);
	ck_assert_int_eq(mv_frame_decode(h, sizeof(h), &f), MV_FRAME_BAD_MAGIC);
}
END_TEST

START_TEST(test_wrong_version)
{
	static const uint16_t bad[] = {0, MV_PROTO_VERSION + 1, 0x0100, 0xffff};
	uint8_t h[MV_FRAME_HEADER];
	struct mv_frame f;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		raw_header(h, MV_PROTO_MAGIC, bad[i], MV_MSG_HELLO, MV_MSG_HELLO_SIZE, 0);
		ck_assert_int_eq(mv_frame_decode(h, sizeof(h), &f), MV_FRAME_BAD_VERSION);
	}
}
END_TEST

START_TEST(test_oversized_length)
{
	static const uint32_t bad[] = {MV_FRAME_MAX + 1, MV_FRAME_MAX * 2, 0x80000000u, UINT32_MAX};
	uint8_t h[MV_FRAME_HEADER];
	struct mv_frame f;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		raw_header(h, MV_PROTO_MAGIC, MV_PROTO_VERSION, MV_MSG_REQUEST, bad[i], 0);
		ck_assert_int_eq(mv_frame_decode(h, sizeof(h), &f), MV_FRAME_TOO_LONG);
	}
	/* The largest payload is allowed: the decoder waits for it. */
	raw_header(h, MV_PROTO_MAGIC, MV_PROTO_VERSION, MV_MSG_REQUEST, MV_FRAME_MAX, 0);
	ck_assert_int_eq(mv_frame_decode(h, sizeof(h), &f), MV_FRAME_NEED_MORE);
}
END_TEST

START_TEST(test_max_frame_complete)
{
	size_t n = MV_FRAME_HEADER + MV_FRAME_MAX;
	uint8_t *buf = calloc(1, n + 1);
	struct mv_frame f;

	ck_assert_ptr_nonnull(buf);
	mv_frame_header(buf, MV_MSG_RESPONSE, MV_FRAME_MAX);
	ck_assert_int_eq(mv_frame_decode(buf, n - 1, &f), MV_FRAME_NEED_MORE);
	ck_assert_int_eq(mv_frame_decode(buf, n, &f), (ssize_t)n);
	ck_assert_int_eq(mv_frame_decode(buf, n + 1, &f), (ssize_t)n);
	ck_assert_uint_eq(f.length, MV_FRAME_MAX);
	free(buf);
}
END_TEST

START_TEST(test_truncated_payload)
{
	uint8_t buf[MV_FRAME_HEADER + 100];
	struct mv_frame f;

	memset(buf, 'a', sizeof(buf));
	mv_frame_header(buf, MV_MSG_REQUEST, 100);
	ck_assert_int_eq(mv_frame_decode(buf, MV_FRAME_HEADER + 50, &f), MV_FRAME_NEED_MORE);
	ck_assert_int_eq(mv_frame_at_eof(MV_FRAME_HEADER + 50), MV_FRAME_TRUNCATED);
	ck_assert_int_eq(mv_frame_decode(buf, MV_FRAME_HEADER + 99, &f), MV_FRAME_NEED_MORE);
	ck_assert_int_eq(mv_frame_decode(buf, MV_FRAME_HEADER, &f), MV_FRAME_NEED_MORE);
	ck_assert_int_eq(mv_frame_decode(buf, sizeof(buf), &f), (ssize_t)sizeof(buf));
}
END_TEST

START_TEST(test_unknown_type)
{
	static const uint16_t bad[] = {0, 0x0001, 0x00ff, 0x0104, 0x01ff, 0x0205, 0x0303, 0x0400, 0xffff};
	uint8_t h[MV_FRAME_HEADER];
	struct mv_frame f;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		raw_header(h, MV_PROTO_MAGIC, MV_PROTO_VERSION, bad[i], 0, 0);
		ck_assert_msg(mv_frame_decode(h, sizeof(h), &f) == MV_FRAME_UNKNOWN_TYPE, "type 0x%04x",
			      bad[i]);
	}
	/* Every known type with the right size is accepted. */
	for (size_t i = 0; i < N_TYPES; i++) {
		uint32_t len = 0;

		switch (all_types[i]) {
		case MV_MSG_HELLO: len = MV_MSG_HELLO_SIZE; break;
		case MV_MSG_COUNTERS: len = MV_MSG_COUNTERS_SIZE; break;
		case MV_MSG_WELCOME: len = MV_MSG_WELCOME_SIZE; break;
		case MV_MSG_GRANT: len = MV_MSG_GRANT_SIZE; break;
		case MV_MSG_LAUNCHES: len = MV_MSG_LAUNCHES_SIZE; break;
		case MV_MSG_CONTROL_HELLO: len = MV_MSG_CONTROL_HELLO_SIZE; break;
		case MV_MSG_EVENTS: len = MV_MSG_EVENTS_HEAD; break;
		case MV_MSG_PLAN: len = MV_MSG_PLAN_HEAD; break;
		}
		raw_header(h, MV_PROTO_MAGIC, MV_PROTO_VERSION, all_types[i], len, 0);
		ck_assert_msg(mv_frame_decode(h, sizeof(h), &f) == (len ? MV_FRAME_NEED_MORE : MV_FRAME_HEADER),
			      "type 0x%04x refused", all_types[i]);
	}
}
END_TEST

START_TEST(test_nonzero_reserved)
{
	uint8_t h[MV_FRAME_HEADER];
	struct mv_frame f;

	for (int i = 12; i < 16; i++) {
		mv_frame_header(h, MV_MSG_BYE, 0);
		h[i] = 1;
		ck_assert_int_eq(mv_frame_decode(h, sizeof(h), &f), MV_FRAME_BAD_RESERVED);
	}
}
END_TEST

/* A fixed-size type whose header names another size is refused at the header, and its payload
 * decoder refuses any other size too. */
START_TEST(test_fixed_size_mismatch)
{
	static const struct {
		uint16_t type;
		size_t size;
	} fixed[] = {
		{MV_MSG_HELLO, MV_MSG_HELLO_SIZE},     {MV_MSG_COUNTERS, MV_MSG_COUNTERS_SIZE},
		{MV_MSG_WELCOME, MV_MSG_WELCOME_SIZE}, {MV_MSG_GRANT, MV_MSG_GRANT_SIZE},
		{MV_MSG_CONTROL_HELLO, MV_MSG_CONTROL_HELLO_SIZE}, {MV_MSG_BYE, 0}, {MV_MSG_SHUTDOWN, 0},
		{MV_MSG_LAUNCHES, MV_MSG_LAUNCHES_SIZE},
	};
	uint8_t buf[MV_FRAME_HEADER + 256] = {0};
	const uint8_t *p = buf + MV_FRAME_HEADER;
	struct mv_msg_hello hello;
	struct mv_msg_counters counters;
	struct mv_msg_welcome welcome;
	struct mv_msg_grant grant;
	struct mv_msg_control_hello chello;
	struct mv_msg_launches launches;
	struct mv_frame f;

	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
		size_t wrong[3] = {fixed[i].size + 1, fixed[i].size ? fixed[i].size - 1 : 8, 200};

		for (int j = 0; j < 3; j++) {
			mv_frame_header(buf, fixed[i].type, (uint32_t)wrong[j]);
			ck_assert_msg(mv_frame_decode(buf, sizeof(buf), &f) == MV_FRAME_BAD_PAYLOAD,
				      "type 0x%04x with %zu bytes accepted", fixed[i].type, wrong[j]);
		}
	}

	for (size_t len = 0; len <= 200; len++) {
		ck_assert_int_eq(mv_hello_decode(p, len, &hello),
				 len == MV_MSG_HELLO_SIZE ? 0 : MV_FRAME_BAD_PAYLOAD);
		ck_assert_int_eq(mv_counters_decode(p, len, &counters),
				 len == MV_MSG_COUNTERS_SIZE ? 0 : MV_FRAME_BAD_PAYLOAD);
		ck_assert_int_eq(mv_welcome_decode(p, len, &welcome),
				 len == MV_MSG_WELCOME_SIZE ? 0 : MV_FRAME_BAD_PAYLOAD);
		ck_assert_int_eq(mv_grant_decode(p, len, &grant), len == MV_MSG_GRANT_SIZE ? 0 : MV_FRAME_BAD_PAYLOAD);
		ck_assert_int_eq(mv_control_hello_decode(p, len, &chello),
				 len == MV_MSG_CONTROL_HELLO_SIZE ? 0 : MV_FRAME_BAD_PAYLOAD);
		ck_assert_int_eq(mv_launches_decode(p, len, &launches),
				 len == MV_MSG_LAUNCHES_SIZE ? 0 : MV_FRAME_BAD_PAYLOAD);
	}
	/* A short payload is refused without being read. */
	ck_assert_int_eq(mv_hello_decode(NULL, 0, &hello), MV_FRAME_BAD_PAYLOAD);
	ck_assert_int_eq(mv_counters_decode(NULL, 0, &counters), MV_FRAME_BAD_PAYLOAD);
}
END_TEST

/* LAUNCHES carries 0 or 1, and comes back as it went; any other value is refused. */
START_TEST(test_launches_values)
{
	uint8_t b[MV_MSG_LAUNCHES_SIZE];
	struct mv_msg_launches m = {1}, back = {7};

	ck_assert_uint_eq(mv_launches_encode(&m, b), MV_MSG_LAUNCHES_SIZE);
	ck_assert_int_eq(mv_launches_decode(b, sizeof(b), &back), 0);
	ck_assert_uint_eq(back.send, 1);
	m.send = 0;
	mv_launches_encode(&m, b);
	ck_assert_int_eq(mv_launches_decode(b, sizeof(b), &back), 0);
	ck_assert_uint_eq(back.send, 0);
	mv_put_u32(b, 2);
	ck_assert_int_eq(mv_launches_decode(b, sizeof(b), &back), MV_FRAME_BAD_PAYLOAD);
	mv_put_u32(b, 0x100);
	ck_assert_int_eq(mv_launches_decode(b, sizeof(b), &back), MV_FRAME_BAD_PAYLOAD);
}
END_TEST

START_TEST(test_events_size_mismatch)
{
	size_t big = MV_MSG_EVENTS_HEAD + (size_t)(MV_EVENTS_MAX + 1) * MV_EVENT_SIZE;
	uint8_t *p = calloc(1, big);
	uint8_t h[MV_FRAME_HEADER];
	struct mv_msg_events head = {0, 0};
	struct mv_frame f;

	ck_assert_ptr_nonnull(p);
	/* Shorter than the head. */
	for (size_t len = 0; len < MV_MSG_EVENTS_HEAD; len++)
		ck_assert_int_eq(mv_events_decode(p, len, &head), MV_FRAME_BAD_PAYLOAD);
	ck_assert_int_eq(mv_events_decode(NULL, 0, &head), MV_FRAME_BAD_PAYLOAD);

	/* The count disagrees with the length, either way. */
	mv_put_u32(p, 2);
	ck_assert_int_eq(mv_events_decode(p, MV_MSG_EVENTS_HEAD + 1 * MV_EVENT_SIZE, &head), MV_FRAME_BAD_PAYLOAD);
	ck_assert_int_eq(mv_events_decode(p, MV_MSG_EVENTS_HEAD + 3 * MV_EVENT_SIZE, &head), MV_FRAME_BAD_PAYLOAD);
	ck_assert_int_eq(mv_events_decode(p, MV_MSG_EVENTS_HEAD + 2 * MV_EVENT_SIZE - 1, &head),
			 MV_FRAME_BAD_PAYLOAD);
	ck_assert_int_eq(mv_events_decode(p, MV_MSG_EVENTS_HEAD + 2 * MV_EVENT_SIZE, &head), 0);
	ck_assert_uint_eq(head.count, 2);
	mv_put_u32(p, 0);
	ck_assert_int_eq(mv_events_decode(p, MV_MSG_EVENTS_HEAD + MV_EVENT_SIZE, &head), MV_FRAME_BAD_PAYLOAD);

	/* A count above MV_EVENTS_MAX, even with a length that matches it. */
	mv_put_u32(p, MV_EVENTS_MAX + 1);
	ck_assert_int_eq(mv_events_decode(p, big, &head), MV_FRAME_BAD_PAYLOAD);
	/* Counts whose byte size wraps a 32-bit product. */
	mv_put_u32(p, UINT32_MAX);
	ck_assert_int_eq(mv_events_decode(p, MV_MSG_EVENTS_HEAD, &head), MV_FRAME_BAD_PAYLOAD);
	mv_put_u32(p, 0x80000000u / 5); /* 40 * count == 2^34, 0 in 32 bits */
	ck_assert_int_eq(mv_events_decode(p, MV_MSG_EVENTS_HEAD, &head), MV_FRAME_BAD_PAYLOAD);

	/* At the header: a length no count of events can fill. */
	for (uint32_t len = 0; len < MV_MSG_EVENTS_HEAD + 2 * MV_EVENT_SIZE; len++) {
		int want = len >= MV_MSG_EVENTS_HEAD && (len - MV_MSG_EVENTS_HEAD) % MV_EVENT_SIZE == 0
				   ? MV_FRAME_NEED_MORE
				   : MV_FRAME_BAD_PAYLOAD;

		raw_header(h, MV_PROTO_MAGIC, MV_PROTO_VERSION, MV_MSG_EVENTS, len, 0);
		ck_assert_msg(mv_frame_decode(h, sizeof(h), &f) == want, "EVENTS length %u", len);
	}
	free(p);
}
END_TEST

START_TEST(test_plan_roundtrip)
{
	struct mv_plan_op_wire ops[3] = {
		{.at = MV_PLAN_OP_BEFORE_FIRST, .need = 4, .kind = 2, .bind_launch = 1, .bind_index = 0, .size = 4096},
		{.at = 2, .need = 9, .kind = 1, .bind_launch = 2, .bind_index = 3, .size = 1ull << 33},
		{.at = 9, .need = 9, .kind = 2, .bind_launch = 0, .bind_index = 7, .size = 1},
	};
	struct mv_msg_plan head = {.fingerprint = 0x0123456789abcdefull, .nlaunch = 10, .nops = 3, .plan_id = 42};
	struct mv_msg_plan got;
	struct mv_plan_op_wire op;
	uint8_t buf[MV_FRAME_HEADER + MV_MSG_PLAN_HEAD + 3 * MV_PLAN_OP_SIZE];
	size_t n = mv_plan_encode(&head, ops, buf + MV_FRAME_HEADER);
	const uint8_t *p;

	ck_assert_uint_eq(n, MV_MSG_PLAN_HEAD + 3 * MV_PLAN_OP_SIZE);
	mv_frame_header(buf, MV_MSG_PLAN, (uint32_t)n);
	p = expect_frame(buf, sizeof(buf), MV_MSG_PLAN, (uint32_t)n);
	ck_assert_int_eq(mv_plan_decode(p, n, &got), 0);
	ck_assert_uint_eq(got.fingerprint, head.fingerprint);
	ck_assert_uint_eq(got.nlaunch, 10);
	ck_assert_uint_eq(got.nops, 3);
	ck_assert_uint_eq(got.plan_id, 42);
	for (uint32_t i = 0; i < 3; i++) {
		ck_assert_int_eq(mv_plan_op_decode(p + MV_MSG_PLAN_HEAD + i * MV_PLAN_OP_SIZE, got.nlaunch, &op), 0);
		ck_assert_uint_eq(op.at, ops[i].at);
		ck_assert_uint_eq(op.need, ops[i].need);
		ck_assert_uint_eq(op.kind, ops[i].kind);
		ck_assert_uint_eq(op.bind_launch, ops[i].bind_launch);
		ck_assert_uint_eq(op.bind_index, ops[i].bind_index);
		ck_assert_uint_eq(op.size, ops[i].size);
	}
	/* A launch number outside the iteration, or an unknown kind, is refused op by op. */
	ck_assert_int_eq(mv_plan_op_decode(p + MV_MSG_PLAN_HEAD, 4, &op), MV_FRAME_BAD_PAYLOAD);
	ck_assert_int_eq(mv_plan_op_decode(p + MV_MSG_PLAN_HEAD + MV_PLAN_OP_SIZE, 9, &op), MV_FRAME_BAD_PAYLOAD);
	mv_put_u32(buf + MV_FRAME_HEADER + MV_MSG_PLAN_HEAD + 8, 3);
	ck_assert_int_eq(mv_plan_op_decode(p + MV_MSG_PLAN_HEAD, 10, &op), MV_FRAME_BAD_PAYLOAD);
	/* A count that disagrees with the length, and a length between ops, are refused whole. */
	ck_assert_int_eq(mv_plan_decode(p, n - MV_PLAN_OP_SIZE, &got), MV_FRAME_BAD_PAYLOAD);
	mv_frame_header(buf, MV_MSG_PLAN, (uint32_t)n - 1);
	ck_assert_int_eq(mv_frame_decode(buf, sizeof(buf), &(struct mv_frame){0}), MV_FRAME_BAD_PAYLOAD);
	mv_frame_header(buf, MV_MSG_PLAN, MV_MSG_PLAN_HEAD - 8);
	ck_assert_int_eq(mv_frame_decode(buf, sizeof(buf), &(struct mv_frame){0}), MV_FRAME_BAD_PAYLOAD);
	head.nops = MV_PLAN_OPS_MAX + 1;
	ck_assert_uint_eq(mv_plan_encode(&head, ops, buf), 0);
}
END_TEST

START_TEST(test_strerror)
{
	static const struct {
		int status;
		const char *text;
	} want[] = {
		{MV_FRAME_BAD_MAGIC, "bad magic"},
		{MV_FRAME_BAD_VERSION, "unsupported protocol version"},
		{MV_FRAME_TOO_LONG, "frame longer than 1 MiB"},
		{MV_FRAME_UNKNOWN_TYPE, "unknown message type"},
		{MV_FRAME_BAD_RESERVED, "nonzero reserved field"},
		{MV_FRAME_TRUNCATED, "connection closed inside a frame"},
		{MV_FRAME_BAD_PAYLOAD, "payload size does not match its type"},
	};

	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		ck_assert_str_eq(mv_frame_strerror(want[i].status), want[i].text);
	/* Something printable for anything else. */
	ck_assert_ptr_nonnull(mv_frame_strerror(MV_FRAME_NEED_MORE));
	ck_assert_ptr_nonnull(mv_frame_strerror(-1000));
	ck_assert_ptr_nonnull(mv_frame_strerror(12345));
	ck_assert_str_ne(mv_frame_strerror(-1000), "bad magic");
}
END_TEST

/* xorshift64*: the same sequence on every run and every host. */
static uint64_t fuzz_state = 0x9e3779b97f4a7c15ull;

static uint64_t fuzz_next(void)
{
	fuzz_state ^= fuzz_state >> 12;
	fuzz_state ^= fuzz_state << 25;
	fuzz_state ^= fuzz_state >> 27;
	return fuzz_state * 0x2545f4914f6cdd1dull;
}

static uint32_t fuzz_below(uint32_t n)
{
	return (uint32_t)(fuzz_next() % n);
}

#define FUZZ_ITERATIONS 400000
#define FUZZ_MAXLEN 512
#define FUZZ_CHECK(cond, ...)                                                                               \
	do {                                                                                               \
		if (!(cond))                                                                               \
			ck_abort_msg(__VA_ARGS__);                                                         \
	} while (0)

/* Valid frames of every type, to mutate. */
struct fuzz_seed {
	uint8_t buf[256];
	size_t len;
};

static size_t fuzz_seeds(struct fuzz_seed *s)
{
	struct mv_msg_hello hello = sample_hello();
	struct mv_msg_welcome welcome = {.session = 5, .grant = 1 << 30};
	struct mv_msg_grant grant = {.grant = 1 << 29};
	struct mv_msg_counters counters;
	struct mv_msg_control_hello chello = {.pid = 99, .reserved = 0};
	struct mv_event ev[3] = {sample_event(0), sample_event(1), sample_event(2)};
	uint8_t pl[256];
	size_t n = 0;

	memset(&counters, 0x11, sizeof(counters));
	s[n].len = build(s[n].buf, MV_MSG_HELLO, pl, (uint32_t)mv_hello_encode(&hello, pl)), n++;
	s[n].len = build(s[n].buf, MV_MSG_WELCOME, pl, (uint32_t)mv_welcome_encode(&welcome, pl)), n++;
	s[n].len = build(s[n].buf, MV_MSG_GRANT, pl, (uint32_t)mv_grant_encode(&grant, pl)), n++;
	s[n].len = build(s[n].buf, MV_MSG_COUNTERS, pl, (uint32_t)mv_counters_encode(&counters, pl)), n++;
	s[n].len = build(s[n].buf, MV_MSG_CONTROL_HELLO, pl, (uint32_t)mv_control_hello_encode(&chello, pl)), n++;
	s[n].len = build(s[n].buf, MV_MSG_EVENTS, pl, (uint32_t)mv_events_encode(ev, 3, 1, pl)), n++;
	s[n].len = build(s[n].buf, MV_MSG_EVENTS, pl, (uint32_t)mv_events_encode(ev, 0, 0, pl)), n++;
	s[n].len = build(s[n].buf, MV_MSG_BYE, NULL, 0), n++;
	s[n].len = build(s[n].buf, MV_MSG_SHUTDOWN, NULL, 0), n++;
	s[n].len = build(s[n].buf, MV_MSG_REQUEST, (const uint8_t *)"{\"cmd\":\"stats\"}", 15), n++;
	s[n].len = build(s[n].buf, MV_MSG_RESPONSE, (const uint8_t *)"{\"ok\":true}", 11), n++;
	return n;
}

/* Fills buf with one fuzz input and returns its length. */
static size_t fuzz_input(uint8_t *buf, const struct fuzz_seed *seeds, size_t nseeds)
{
	size_t len, i;

	switch (fuzz_below(4)) {
	case 0:
		/* Random bytes. */
		len = fuzz_below(FUZZ_MAXLEN + 1);
		for (i = 0; i < len; i++)
			buf[i] = (uint8_t)fuzz_next();
		return len;
	case 1:
		/* A plausible header, random everything else. */
		len = MV_FRAME_HEADER + fuzz_below(FUZZ_MAXLEN - MV_FRAME_HEADER + 1);
		for (i = 0; i < len; i++)
			buf[i] = (uint8_t)fuzz_next();
		raw_header(buf, MV_PROTO_MAGIC, MV_PROTO_VERSION,
			   fuzz_below(4) ? all_types[fuzz_below(N_TYPES)] : (uint16_t)fuzz_next(),
			   fuzz_below(8) ? fuzz_below(FUZZ_MAXLEN) : (uint32_t)fuzz_next(), 0);
		if (len >= MV_FRAME_HEADER + MV_MSG_EVENTS_HEAD && fuzz_below(2))
			mv_put_u32(buf + MV_FRAME_HEADER, fuzz_below(16));
		return len;
	default: {
		/* A valid frame, mutated. */
		const struct fuzz_seed *s = &seeds[fuzz_below((uint32_t)nseeds)];
		int edits = 1 + (int)fuzz_below(4);

		memcpy(buf, s->buf, s->len);
		len = s->len;
		while (edits-- > 0) {
			switch (fuzz_below(6)) {
			case 0:
				if (len > 0)
					buf[fuzz_below((uint32_t)len)] = (uint8_t)fuzz_next();
				break;
			case 1:
				if (len > 0)
					buf[fuzz_below((uint32_t)len)] ^= (uint8_t)(1u << fuzz_below(8));
				break;
			case 2:
				len = fuzz_below((uint32_t)len + 1);
				break;
			case 3:
				for (i = fuzz_below(64); i > 0 && len < FUZZ_MAXLEN; i--)
					buf[len++] = (uint8_t)fuzz_next();
				break;
			case 4:
				/* The length field, near the payload's real size. */
				if (len >= MV_FRAME_HEADER)
					mv_put_u32(buf + 8, (uint32_t)(s->len - MV_FRAME_HEADER) + fuzz_below(81) - 40);
				break;
			case 5:
				/* The EVENTS count. */
				if (len >= MV_FRAME_HEADER + 4)
					mv_put_u32(buf + MV_FRAME_HEADER, fuzz_below(3) ? fuzz_below(6) : (uint32_t)fuzz_next());
				break;
			}
		}
		return len;
	}
	}
}

/* Every payload decoder over p[0, len): each refuses or accepts exactly its size. Returns how many
 * accepted. */
static int fuzz_payload(const uint8_t *p, size_t len)
{
	struct mv_msg_hello hello;
	struct mv_msg_welcome welcome;
	struct mv_msg_grant grant;
	struct mv_msg_counters counters;
	struct mv_msg_control_hello chello;
	struct mv_msg_events head;
	int r, ok = 0;

	r = mv_hello_decode(p, len, &hello);
	/* Of the right size, it is refused only for its group field (proto.h's token or all NUL). */
	FUZZ_CHECK(r == (len == MV_MSG_HELLO_SIZE && mv_group_valid((const char *)p + 112, 64) ? 0
										       : MV_FRAME_BAD_PAYLOAD),
		   "hello %zu -> %d", len, r);
	if (r == 0) {
		FUZZ_CHECK(hello.job[63] == '\0', "hello job not terminated");
		FUZZ_CHECK(strlen(hello.group) <= MV_GROUP_MAX &&
				   strspn(hello.group, MV_GROUP_CHARS) == strlen(hello.group),
			   "hello group not a token");
		ok++;
	}
	r = mv_welcome_decode(p, len, &welcome);
	FUZZ_CHECK(r == (len == MV_MSG_WELCOME_SIZE ? 0 : MV_FRAME_BAD_PAYLOAD), "welcome %zu -> %d", len, r);
	ok += r == 0;
	r = mv_grant_decode(p, len, &grant);
	FUZZ_CHECK(r == (len == MV_MSG_GRANT_SIZE ? 0 : MV_FRAME_BAD_PAYLOAD), "grant %zu -> %d", len, r);
	ok += r == 0;
	r = mv_counters_decode(p, len, &counters);
	FUZZ_CHECK(r == (len == MV_MSG_COUNTERS_SIZE ? 0 : MV_FRAME_BAD_PAYLOAD), "counters %zu -> %d", len, r);
	ok += r == 0;
	r = mv_control_hello_decode(p, len, &chello);
	FUZZ_CHECK(r == (len == MV_MSG_CONTROL_HELLO_SIZE ? 0 : MV_FRAME_BAD_PAYLOAD), "control hello %zu -> %d",
		   len, r);
	ok += r == 0;

	r = mv_events_decode(p, len, &head);
	FUZZ_CHECK(r == 0 || r == MV_FRAME_BAD_PAYLOAD, "events %zu -> %d", len, r);
	if (r == 0) {
		FUZZ_CHECK(head.count <= MV_EVENTS_MAX && len == MV_MSG_EVENTS_HEAD + (size_t)head.count * MV_EVENT_SIZE,
			   "events accepted %u with %zu bytes", head.count, len);
		FUZZ_CHECK(head.count == mv_get_u32(p) && head.dropped == mv_get_u32(p + 4), "events head misread");
		for (uint32_t i = 0; i < head.count; i++) {
			struct mv_event ev;

			mv_event_decode(p + MV_MSG_EVENTS_HEAD + (size_t)i * MV_EVENT_SIZE, &ev);
			FUZZ_CHECK(ev.addr == mv_get_u64(p + MV_MSG_EVENTS_HEAD + (size_t)i * MV_EVENT_SIZE + 16),
				   "event misread");
		}
		ok++;
	} else {
		FUZZ_CHECK(len < MV_MSG_EVENTS_HEAD || mv_get_u32(p) > MV_EVENTS_MAX ||
				   len != MV_MSG_EVENTS_HEAD + (size_t)mv_get_u32(p) * MV_EVENT_SIZE,
			   "valid events of %zu bytes refused", len);
	}
	return ok;
}

static int known_type(uint16_t t)
{
	for (size_t i = 0; i < N_TYPES; i++)
		if (all_types[i] == t)
			return 1;
	return 0;
}

START_TEST(test_fuzz)
{
	struct fuzz_seed seeds[16];
	size_t nseeds = fuzz_seeds(seeds);
	uint8_t scratch[FUZZ_MAXLEN];
	long seen[9] = {0}; /* [0] a whole frame, [1 + k] status -k */
	long payload_ok = 0;

	for (long it = 0; it < FUZZ_ITERATIONS; it++) {
		size_t len = fuzz_input(scratch, seeds, nseeds);
		/* An exact-size copy, so a sanitizer sees any read past len. */
		uint8_t *buf = malloc(len ? len : 1);
		struct mv_frame f;
		ssize_t r;

		FUZZ_CHECK(buf != NULL, "out of memory");
		memcpy(buf, scratch, len);
		r = mv_frame_decode(buf, len, &f);
		if (r > 0) {
			FUZZ_CHECK(r >= MV_FRAME_HEADER && (size_t)r <= len, "iteration %ld: %zd of %zu bytes", it, r,
				   len);
			FUZZ_CHECK(f.payload == buf + MV_FRAME_HEADER && f.length == (size_t)r - MV_FRAME_HEADER,
				   "iteration %ld: frame fields disagree with the size", it);
			FUZZ_CHECK(known_type(f.type) && f.type == mv_get_u16(buf + 6), "iteration %ld: type 0x%04x", it,
				   f.type);
			/* The frame is the same when nothing follows it. */
			FUZZ_CHECK(mv_frame_decode(buf, (size_t)r, &f) == r, "iteration %ld: depends on what follows",
				   it);
			payload_ok += fuzz_payload(f.payload, f.length);
			seen[0]++;
		} else {
			FUZZ_CHECK(r >= MV_FRAME_BAD_PAYLOAD, "iteration %ld: status %zd", it, r);
			FUZZ_CHECK(r != MV_FRAME_TRUNCATED, "iteration %ld: TRUNCATED before the end of the stream", it);
			/* Errors only once the header is whole; waiting only while the frame is not. */
			FUZZ_CHECK(r == MV_FRAME_NEED_MORE || len >= MV_FRAME_HEADER, "iteration %ld: judged early", it);
			FUZZ_CHECK(r != MV_FRAME_NEED_MORE || len < MV_FRAME_HEADER ||
					   len < MV_FRAME_HEADER + (size_t)mv_get_u32(buf + 8),
				   "iteration %ld: NEED_MORE with the frame all there", it);
			seen[-r + 1]++;
		}
		fuzz_payload(buf, len);
		if (len > MV_FRAME_HEADER)
			fuzz_payload(buf + MV_FRAME_HEADER, len - MV_FRAME_HEADER);
		free(buf);
	}
	/* The inputs reached every outcome; a generator stuck on one would test little. */
	for (int k = 0; k < 9; k++) {
		if (k == 1 - MV_FRAME_TRUNCATED)
			continue;
		ck_assert_msg(seen[k] > 0, "fuzz never reached outcome %d", k == 0 ? 1 : 1 - k);
	}
	ck_assert_int_gt(payload_ok, 1000);
}
END_TEST

static Suite *frame_suite(void)
{
	Suite *s = suite_create("frame");
	TCase *tc;

	tc = tcase_create("roundtrip");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_little_endian_fields);
	tcase_add_test(tc, test_header_layout);
	tcase_add_test(tc, test_hello_roundtrip);
	tcase_add_test(tc, test_hello_job_terminated);
	tcase_add_test(tc, test_hello_group_strict);
	tcase_add_test(tc, test_welcome_grant_roundtrip);
	tcase_add_test(tc, test_counters_roundtrip);
	tcase_add_test(tc, test_counters_every_one);
	tcase_add_test(tc, test_control_hello_roundtrip);
	tcase_add_test(tc, test_events_roundtrip);
	tcase_add_test(tc, test_events_largest_batch);
	tcase_add_test(tc, test_events_encode_refuses_too_many);
	tcase_add_test(tc, test_plan_roundtrip);
	tcase_add_test(tc, test_empty_and_json_frames);
	tcase_add_test(tc, test_stream_of_frames);
	suite_add_tcase(s, tc);

	tc = tcase_create("malformed");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_short_header);
	tcase_add_test(tc, test_bad_magic);
	tcase_add_test(tc, test_wrong_version);
	tcase_add_test(tc, test_oversized_length);
	tcase_add_test(tc, test_max_frame_complete);
	tcase_add_test(tc, test_truncated_payload);
	tcase_add_test(tc, test_unknown_type);
	tcase_add_test(tc, test_nonzero_reserved);
	tcase_add_test(tc, test_fixed_size_mismatch);
	tcase_add_test(tc, test_launches_values);
	tcase_add_test(tc, test_events_size_mismatch);
	tcase_add_test(tc, test_strerror);
	suite_add_tcase(s, tc);

	tc = tcase_create("fuzz");
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_fuzz);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(frame_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
