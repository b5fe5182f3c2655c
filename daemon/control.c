/* Control sessions: the memvirt command's JSON requests (protocol/control.h) and their answers. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "daemon/internal.h"
#include "protocol/control.h"
#include "protocol/text.h"

static void control_respond(struct mvd_conn *c, json_t *resp)
{
	uint8_t *frame;
	size_t len;

	if (mv_control_encode(MV_MSG_RESPONSE, resp, &frame, &len) < 0) {
		/* Only a stats list of tens of thousands of sessions gets here. */
		json_decref(resp);
		resp = json_pack("{s:b, s:s}", "ok", 0, "error", "response too large for one frame");
		if (resp == NULL || mv_control_encode(MV_MSG_RESPONSE, resp, &frame, &len) < 0)
			mvd_fatal("cannot encode a control response");
	}
	json_decref(resp);
	mvd_conn_send_frame(c, frame, len);
}

static json_t *control_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static json_t *control_error(const char *fmt, ...)
{
	char msg[1024], clean[1024];
	va_list ap;
	json_t *o;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* A parser's message may quote the request's bytes, which need not be UTF-8: a JSON string
	 * could not hold them. */
	mv_text_clean(msg, sizeof(msg), clean, sizeof(clean));
	o = json_pack("{s:b, s:s}", "ok", 0, "error", clean);
	if (o == NULL)
		mvd_fatal("out of memory building a control response");
	return o;
}

static json_t *control_ok(void)
{
	json_t *o = json_pack("{s:b}", "ok", 1);

	if (o == NULL)
		mvd_fatal("out of memory building a control response");
	return o;
}

/* Root and the daemon's own user may change the daemon; others only look at their jobs. */
static int control_may_administer(const struct mvd_conn *c)
{
	return c->uid == 0 || c->uid == mvd_server_uid();
}

static json_t *control_status(struct mvd_conn *c)
{
	const struct mvd_config *cfg = mvd_server_config();
	json_t *o = control_ok();

	json_object_set_new(o, "version", json_string(PACKAGE_VERSION));
	json_object_set_new(o, "pid", json_integer((json_int_t)getpid()));
	json_object_set_new(o, "uptime_s", json_integer((json_int_t)mvd_server_uptime_s()));
	json_object_set_new(o, "sessions", json_integer((json_int_t)mvd_session_count_visible(c->uid)));
	json_object_set_new(o, "config", cfg->path != NULL ? json_string(cfg->path) : json_null());
	return o;
}

json_t *mvd_control_stats_json(uid_t viewer)
{
	struct mvd_session *s;
	json_t *o = control_ok(), *list = json_array();

	/* A session that joined in this loop turn, read just before this request, is divided and
	 * welcomed first: the answer never shows it before its first grant. */
	mvd_arbiter_settle();
	TAILQ_FOREACH(s, mvd_sessions(), entry) {
		if (mvd_session_visible(s, viewer))
			json_array_append_new(list, mvd_session_json(s));
	}
	json_object_set_new(o, "version", json_string(PACKAGE_VERSION));
	json_object_set_new(o, "sessions", list);
	json_object_set_new(o, "devices", mvd_arbiter_devices_json(viewer));
	json_object_set_new(o, "host", mvd_arbiter_host_json(viewer));
	return o;
}

static json_t *control_stats(struct mvd_conn *c)
{
	return mvd_control_stats_json(c->uid);
}

static json_t *control_reload(struct mvd_conn *c)
{
	char err[1024];

	if (!control_may_administer(c))
		return control_error("permission denied: only root or uid %u may reload memvirtd",
				     (unsigned)mvd_server_uid());
	mvd_info("config reload asked by uid %u (pid %d)", (unsigned)c->uid, (int)c->pid);
	if (mvd_server_reload(err, sizeof(err)) < 0)
		return control_error("%s", err);
	return control_ok();
}

static json_t *control_stop(struct mvd_conn *c, int *stop)
{
	if (!control_may_administer(c))
		return control_error("permission denied: only root or uid %u may stop memvirtd",
				     (unsigned)mvd_server_uid());
	mvd_info("stop asked by uid %u (pid %d)", (unsigned)c->uid, (int)c->pid);
	*stop = 1;
	return control_ok();
}

static void control_request(struct mvd_conn *c, const struct mv_frame *f)
{
	char err[512], shown[64];
	const char *cmd;
	json_t *req, *resp;
	int stop = 0;

	req = mv_control_parse(f->payload, f->length, err, sizeof(err));
	/* A request that is not JSON is the command's mistake, not a broken stream: it gets an
	 * answer and the session goes on. */
	if (req == NULL) {
		control_respond(c, control_error("bad request: %s", err));
		return;
	}
	cmd = mv_control_cmd(req);
	/* The command's name goes into a log line and an answer: a request may hold any bytes. */
	if (cmd != NULL)
		mv_text_escape(cmd, shown, sizeof(shown), sizeof(shown) - 1);
	if (cmd == NULL)
		resp = control_error("bad request: no \"cmd\" string");
	else if (strcmp(cmd, "status") == 0)
		resp = control_status(c);
	else if (strcmp(cmd, "stats") == 0)
		resp = control_stats(c);
	else if (strcmp(cmd, "config.reload") == 0)
		resp = control_reload(c);
	else if (strcmp(cmd, "stop") == 0)
		resp = control_stop(c, &stop);
	else
		resp = control_error("unknown command '%s'", shown);
	mvd_debug("connection %llu: request '%s'", (unsigned long long)c->id, cmd != NULL ? shown : "");
	json_decref(req);
	control_respond(c, resp);
	/* The answer is queued first: stopping flushes it before the connection closes. */
	if (stop)
		mvd_server_stop();
}

int mvd_control_frame(struct mvd_conn *c, const struct mv_frame *f, const char **why)
{
	switch (f->type) {
	case MV_MSG_REQUEST:
		control_request(c, f);
		return 0;
	case MV_MSG_CONTROL_HELLO:
		*why = "a second CONTROL_HELLO on one connection";
		return -1;
	default:
		*why = "a message type a control session may not send";
		return -1;
	}
}
