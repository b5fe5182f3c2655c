/* The Prometheus text exposition of a stats answer: the one renderer that memvirtd's /metrics and
 * 'memvirt stats --prometheus' share, so that both print the same metric names and labels.
 *
 * Labels: gpu ("GPU-" and the UUID in 8-4-4-4-12 form, as DCGM names a device), gpu_index (the
 * node's ordinal of the device, empty when the daemon could not list the devices), job and rank
 * (empty when the process named none). There is no per-process label: processes of one job that
 * share a rank and a device are summed into one series, so that a restarted run continues its
 * series instead of starting a new one. */
#ifndef MV_PROM_H
#define MV_PROM_H

#include <jansson.h>
#include <stddef.h>

/* The exposition format's media type, for an HTTP answer. */
#define MV_PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Renders stats, a stats answer (protocol/control.h: "sessions", "devices" and, when the daemon
 * names it, "version"), as exposition text. Returns a malloc'd NUL-terminated string with *len its
 * length, or NULL when out of memory. */
char *mv_prom_render(const json_t *stats, size_t *len);

#endif
