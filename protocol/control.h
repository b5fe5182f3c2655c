/* The JSON control messages between the memvirt command and memvirtd (MV_MSG_REQUEST and
 * MV_MSG_RESPONSE frames). Used by the daemon and the command only: libmemvirt.so never links
 * jansson.
 *
 * Requests, each one JSON object with a "cmd" string:
 *   {"cmd": "status"}         -> {"ok": true, "version": "...", "pid": N, "uptime_s": N,
 *                                 "sessions": N, "config": "path or null"}
 *   {"cmd": "stats"}          -> {"ok": true, "version": "...", "sessions": [SESSION...],
 *                                 "devices": [DEVICE...]}
 *        SESSION: {"session": N, "pid": N, "uid": N, "job": "...", "device": "uuid hex",
 *                  "weight": N, "budget": N, "grant": N, "resident_bytes": N, "host_bytes": N,
 *                  "page_outs": N, "page_ins": N, "fault_ins": N, "bytes_out": N, "bytes_in": N,
 *                  "stall_ns": N, "oom": N, "events": N, "events_dropped": N, "min": N,
 *                  "app_vmm_bytes": N, "launches": N, "launch_events": N, "rank": N or null,
 *                  "gpu_index": N or null}
 *        DEVICE:  {"device": "uuid hex", "total": N, "budget": N, "granted": N, "sessions": N,
 *                  "gpu_index": N or null}
 *   {"cmd": "config.reload"}  -> {"ok": true} or {"ok": false, "error": "file:line:col: ..."}
 *   {"cmd": "stop"}           -> {"ok": true}, then the daemon stops
 * Any failure: {"ok": false, "error": "what went wrong"}. A user sees and controls only their own
 * sessions; root sees all. */
#ifndef MV_CONTROL_H
#define MV_CONTROL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Parses a REQUEST or RESPONSE payload. Returns a new reference to a JSON object, or NULL with a
 * message in err (a payload that is not JSON, or not an object). */
json_t *mv_control_parse(const uint8_t *p, size_t len, char *err, size_t errlen);

/* Encodes obj as a whole frame of the given type (header and compact JSON payload). Returns 0 with
 * *out (malloc'd, the caller frees) and *len set, or -1 when it is too large for a frame. */
int mv_control_encode(uint16_t type, const json_t *obj, uint8_t **out, size_t *len);

/* The request's "cmd", or NULL when it has none or it is not a string. Borrowed. */
const char *mv_control_cmd(const json_t *req);

#endif
