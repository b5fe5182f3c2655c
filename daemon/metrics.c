/* Prometheus over HTTP: GET /metrics served by libmicrohttpd on the loop's own thread. */
#include "config.h"

#include <errno.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "daemon/internal.h"
#include "protocol/prom.h"

/* A scraper needs one or two connections; the limit keeps anyone who reaches the port from taking
 * the daemon's descriptors. */
#define METRICS_CONNECTIONS 16
#define METRICS_PER_IP 4
#define METRICS_TIMEOUT_S 10   /* an idle or stalled connection is closed after this */
#define METRICS_MEMORY (64 * 1024) /* per connection, for a request's head */

/* libmicrohttpd runs in its external mode: its epoll descriptor is watched by the loop, and every
 * request is answered between two of the loop's callbacks, where the sessions and the arbiter are
 * as consistent as the stats command sees them. Neither handle keeps the loop alive. */
static struct MHD_Daemon *metrics_daemon;
static uv_poll_t metrics_poll;
static uv_timer_t metrics_timer;

static void metrics_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	size_t n;

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n > 0 && msg[n - 1] == '\n')
		msg[--n] = '\0';
	mvd_info("metrics: %s", msg);
}

/* Whose job names a scrape shows: anyone can reach the port, so by default only the jobs of
 * memvirtd's own user keep theirs, and another user's job is shown as its uid. */
static void metrics_hide_jobs(json_t *stats)
{
	const json_t *sessions = json_object_get(stats, "sessions");
	char name[32];
	json_t *s;
	json_int_t uid;
	size_t i;

	if (mvd_server_config()->metrics_job_names)
		return;
	json_array_foreach(sessions, i, s) {
		uid = json_integer_value(json_object_get(s, "uid"));
		if ((uid_t)uid == mvd_server_uid())
			continue;
		snprintf(name, sizeof(name), "uid%lld", (long long)uid);
		json_object_set_new(s, "job", json_string(name));
	}
}

static enum MHD_Result metrics_answer(struct MHD_Connection *c, unsigned status, char *text, size_t len,
				      const char *type)
{
	struct MHD_Response *r;
	enum MHD_Result ok;

	r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
	if (r == NULL) {
		free(text);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET");
	ok = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ok;
}

static enum MHD_Result metrics_plain(struct MHD_Connection *c, unsigned status, const char *msg)
{
	char *text = mvd_xstrdup(msg);

	return metrics_answer(c, status, text, strlen(text), "text/plain; charset=utf-8");
}

static enum MHD_Result metrics_request(void *cls, struct MHD_Connection *c, const char *url,
				       const char *method, const char *version, const char *upload,
				       size_t *upload_size, void **state)
{
	json_t *stats;
	char *text;
	size_t len;

	(void)cls;
	(void)version;
	(void)upload;
	(void)state;
	/* A body is no part of a scrape: what came of one is dropped. */
	*upload_size = 0;
	if (strcmp(url, "/metrics") != 0)
		return metrics_plain(c, MHD_HTTP_NOT_FOUND, "not found: memvirtd serves /metrics only\n");
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0)
		return metrics_plain(c, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET is served\n");
	stats = mvd_control_stats_json(0);
	metrics_hide_jobs(stats);
	text = mv_prom_render(stats, &len);
	json_decref(stats);
	if (text == NULL)
		mvd_fatal("out of memory rendering the metrics");
	return metrics_answer(c, MHD_HTTP_OK, text, len, MV_PROM_CONTENT_TYPE);
}

static void metrics_timer_cb(uv_timer_t *h);

/* After each turn of libmicrohttpd: the next turn is due when its epoll descriptor is readable or
 * its timeout (an idle connection to close, data already read) comes. */
static void metrics_schedule(void)
{
	MHD_UNSIGNED_LONG_LONG ms;

	if (MHD_get_timeout(metrics_daemon, &ms) == MHD_YES)
		uv_timer_start(&metrics_timer, metrics_timer_cb, ms, 0);
	else
		uv_timer_stop(&metrics_timer);
}

static void metrics_turn(void)
{
	MHD_run(metrics_daemon);
	metrics_schedule();
}

static void metrics_poll_cb(uv_poll_t *h, int status, int events)
{
	(void)h;
	(void)status;
	(void)events;
	metrics_turn();
}

static void metrics_timer_cb(uv_timer_t *h)
{
	(void)h;
	metrics_turn();
}

int mvd_metrics_start(uv_loop_t *loop, const char *addr)
{
	struct sockaddr_storage sa;
	const union MHD_DaemonInfo *info;
	char err[256];
	unsigned flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG;

	if (mvd_listen_parse(addr, &sa, err, sizeof(err)) < 0) {
		mvd_error("metrics: %s", err);
		return -1;
	}
	if (sa.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	errno = 0;
	metrics_daemon = MHD_start_daemon(flags, 0, NULL, NULL, metrics_request, NULL,
					  MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
					  MHD_OPTION_CONNECTION_LIMIT, (unsigned)METRICS_CONNECTIONS,
					  MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)METRICS_PER_IP,
					  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)METRICS_TIMEOUT_S,
					  MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)METRICS_MEMORY,
					  MHD_OPTION_EXTERNAL_LOGGER, metrics_log, NULL, MHD_OPTION_END);
	if (metrics_daemon == NULL) {
		mvd_error("metrics: cannot serve on %s: %s", addr,
			  errno != 0 ? strerror(errno) : "libmicrohttpd refused to start");
		return -1;
	}
	info = MHD_get_daemon_info(metrics_daemon, MHD_DAEMON_INFO_EPOLL_FD);
	if (info == NULL || uv_poll_init(loop, &metrics_poll, info->epoll_fd) != 0) {
		mvd_error("metrics: cannot watch libmicrohttpd's descriptor");
		MHD_stop_daemon(metrics_daemon);
		metrics_daemon = NULL;
		return -1;
	}
	uv_timer_init(loop, &metrics_timer);
	uv_poll_start(&metrics_poll, UV_READABLE, metrics_poll_cb);
	uv_unref((uv_handle_t *)&metrics_poll);
	uv_unref((uv_handle_t *)&metrics_timer);
	metrics_schedule();
	mvd_info("serving Prometheus metrics on http://%s/metrics", addr);
	return 0;
}

void mvd_metrics_stop(void)
{
	if (metrics_daemon == NULL)
		return;
	if (!uv_is_closing((uv_handle_t *)&metrics_poll))
		uv_close((uv_handle_t *)&metrics_poll, NULL);
	if (!uv_is_closing((uv_handle_t *)&metrics_timer))
		uv_close((uv_handle_t *)&metrics_timer, NULL);
	MHD_stop_daemon(metrics_daemon);
	metrics_daemon = NULL;
}
