/* The memvirt wire protocol: the one definition of what travels between libmemvirt.so, memvirtd and
 * the memvirt command.
 *
 * One Unix stream connection per process and device (or per command). Every frame is a 16-byte
 * header, then `length` bytes of payload:
 *
 *     offset 0  u32 magic     MV_PROTO_MAGIC
 *     offset 4  u16 version   MV_PROTO_VERSION
 *     offset 6  u16 type      one of enum mv_msg_type
 *     offset 8  u32 length    payload bytes, at most MV_FRAME_MAX
 *     offset 12 u32 reserved  zero
 *
 * All integers are little-endian and fixed-width. Binary payloads are the structs below, each
 * encoded field by field in the order written (protocol/frame.c), never by copying the struct. The
 * control messages carry one JSON object (protocol/control.c).
 *
 * Bump MV_PROTO_VERSION whenever a payload changes. Never reuse a retired type number: list it in
 * the reserved comment of its block. */
#ifndef MV_PROTO_H
#define MV_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define MV_PROTO_MAGIC 0x5650564du /* "MVPV" as bytes on the wire */
#define MV_PROTO_VERSION 9
#define MV_FRAME_HEADER 16
#define MV_FRAME_MAX (1u << 20) /* largest payload accepted */

/* Message types, numbered in blocks by direction. */
enum mv_msg_type {
	/* 0x01xx library -> daemon */
	MV_MSG_HELLO = 0x0100,    /* struct mv_msg_hello: the first frame of a library session */
	MV_MSG_EVENTS = 0x0101,   /* struct mv_msg_events: a batch of buffer events */
	MV_MSG_COUNTERS = 0x0102, /* struct mv_msg_counters: a snapshot of the paging counters */
	MV_MSG_BYE = 0x0103,      /* no payload: the process is going away */

	/* 0x02xx daemon -> library */
	MV_MSG_WELCOME = 0x0200,  /* struct mv_msg_welcome: answer to HELLO */
	MV_MSG_GRANT = 0x0201,    /* struct mv_msg_grant: a new device budget for this session */
	MV_MSG_SHUTDOWN = 0x0202, /* no payload: the daemon is stopping; keep running on local policy */
	MV_MSG_PLAN = 0x0203,     /* struct mv_msg_plan: a paging plan for the session's iteration */
	MV_MSG_LAUNCHES = 0x0204, /* struct mv_msg_launches: whether the daemon wants LAUNCH events */

	/* 0x03xx control: the memvirt command <-> daemon */
	MV_MSG_CONTROL_HELLO = 0x0300, /* struct mv_msg_control_hello: the first frame of a control session */
	MV_MSG_REQUEST = 0x0301,       /* one JSON object: {"cmd": "...", ...} */
	MV_MSG_RESPONSE = 0x0302,      /* one JSON object: {"ok": true, ...} or {"ok": false, "error": "..."} */
};

/* HELLO: who is talking. */
struct mv_msg_hello {
	uint32_t pid;
	uint32_t device;            /* device ordinal in the process */
	uint8_t uuid[16];           /* the device's UUID, so sessions on one GPU share its budget */
	uint64_t device_total;      /* the device's memory */
	uint64_t budget;            /* what the process would use on its own (MEMVIRT_BUDGET or total) */
	uint32_t weight;            /* MEMVIRT_WEIGHT, 0 for the config's default */
	uint32_t rank;              /* the process's rank in its job (RANK, ...), or MV_RANK_NONE */
	char job[64];               /* a name for stats: the program, NUL-padded */
	char group[64];             /* the job's group token (MEMVIRT_GROUP), "" for none: see below */
	uint64_t host_want;         /* the pinned host pool it would use on its own (MEMVIRT_HOST_LIMIT) */
};
#define MV_MSG_HELLO_SIZE (4 + 4 + 16 + 8 + 8 + 4 + 4 + 64 + 64 + 8)
#define MV_RANK_NONE UINT32_MAX
#define MV_RANK_MAX INT32_MAX /* the largest rank a process may name */
/* A group token: 1 to MV_GROUP_MAX bytes of MV_GROUP_CHARS, then NUL bytes to the end of the field
 * (all NUL: no group). The processes of one uid that send the same token share one budget on each
 * device; the decoder refuses any other field. */
#define MV_GROUP_MAX 63
#define MV_GROUP_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:@+=-"

/* WELCOME: the session's id and its first grants. */
struct mv_msg_welcome {
	uint64_t session;
	uint64_t grant;
	uint64_t host_grant; /* as in GRANT */
};
#define MV_MSG_WELCOME_SIZE 24

/* GRANT: the session's device budget from now on; a smaller one makes the library evict down to it.
 * host_grant is its share of the node's pinned host memory (memvirt.json's host.limit), or
 * MV_HOST_GRANT_NONE when the daemon divides none: the pool then grows to MEMVIRT_HOST_LIMIT. A
 * host grant below the pool's size stops its growth; nothing already paged out is dropped. */
struct mv_msg_grant {
	uint64_t grant;
	uint64_t host_grant;
};
#define MV_MSG_GRANT_SIZE 16
#define MV_HOST_GRANT_NONE UINT64_MAX

/* LAUNCHES: send 0 asks the library to send no LAUNCH or REF events (the daemon has learnt the
 * iteration and its policy plans nothing for it), 1 to send them again. Every session starts at 1. */
struct mv_msg_launches {
	uint32_t send;
};
#define MV_MSG_LAUNCHES_SIZE 4

/* One buffer event. */
enum mv_event_kind {
	MV_EV_ALLOC = 1,    /* addr, size */
	MV_EV_FREE = 2,     /* addr */
	MV_EV_LAUNCH = 3,   /* arg: buffers named; stream */
	MV_EV_PAGE_OUT = 4, /* addr, size */
	MV_EV_PAGE_IN = 5,  /* addr, size; arg 1 when the app waited for it */
	/* 6 is retired (SYNC, which no library sent): never reuse it. */
	MV_EV_REF = 7,      /* addr: a buffer the LAUNCH just before names, in the order scanned */
	MV_EV_MARK = 8,     /* an explicit iteration boundary */
	/* The library follows memvirtd's plan (arg: iterations followed so far): no LAUNCH or REF
	 * follows until LOUD. ALLOC, FREE and PAGE events still do. */
	MV_EV_QUIET = 9,
	MV_EV_LOUD = 10,    /* the job left the plan's iteration: LAUNCH and REF events resume */
};
/* ALLOC carries the allocation's call-site hash in arg; LAUNCH carries the function in addr and
 * the number of REF events that follow it in arg. */

struct mv_event {
	uint64_t time_ns; /* CLOCK_MONOTONIC */
	uint32_t kind;
	uint32_t stream;  /* the library's index of the stream, 0 when none */
	uint64_t addr;
	uint64_t size;
	uint64_t arg;
};
#define MV_EVENT_SIZE 40

/* EVENTS: count events follow the 8-byte head. */
struct mv_msg_events {
	uint32_t count;
	uint32_t dropped; /* events lost since the previous batch because the ring was full */
};
#define MV_MSG_EVENTS_HEAD 8
#define MV_EVENTS_MAX ((MV_FRAME_MAX - MV_MSG_EVENTS_HEAD) / MV_EVENT_SIZE)

/* The paging counters of protocol/counters.def, numbered in its order. */
enum mv_counter_index {
#define MV_COUNTER(name, ...) MV_COUNTER_##name,
#include "protocol/counters.def"
#undef MV_COUNTER
	MV_NCOUNTERS
};

/* COUNTERS: a snapshot of the library's counters (interpose/memvirt.h), each a u64 at 8 times its
 * index. */
struct mv_msg_counters {
#define MV_COUNTER(name, ...) uint64_t name;
#include "protocol/counters.def"
#undef MV_COUNTER
};
#define MV_MSG_COUNTERS_SIZE (MV_NCOUNTERS * 8)

/* PLAN: what to move during the iteration whose function sequence hashes to `fingerprint`, in
 * iteration-relative launch numbers (policies/policy.h). nops ops of MV_PLAN_OP_SIZE bytes follow the
 * 24-byte head. A buffer is named by where the iteration first names it: launch bind_launch, the
 * bind_index-th buffer that launch names; size guards against a wrong match. A plan with no ops
 * withdraws the previous one. */
struct mv_msg_plan {
	uint64_t fingerprint;
	uint32_t nlaunch;
	uint32_t nops;
	uint64_t plan_id;
};
#define MV_MSG_PLAN_HEAD 24

struct mv_plan_op_wire {
	uint32_t at;          /* MV_PLAN_OP_BEFORE_FIRST: before the iteration's first launch */
	uint32_t need;
	uint32_t kind;        /* 1 out, 2 in */
	uint32_t bind_launch;
	uint32_t bind_index;
	uint32_t reserved;
	uint64_t size;
};
#define MV_PLAN_OP_SIZE 32
#define MV_PLAN_OP_BEFORE_FIRST UINT32_MAX
#define MV_PLAN_OPS_MAX ((MV_FRAME_MAX - MV_MSG_PLAN_HEAD) / MV_PLAN_OP_SIZE)

/* CONTROL_HELLO: a command's session. */
struct mv_msg_control_hello {
	uint32_t pid;
	uint32_t reserved;
};
#define MV_MSG_CONTROL_HELLO_SIZE 8

#endif
