/* Library sessions: one libmemvirt.so process on one device, from its HELLO to its BYE. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "daemon/internal.h"
#include "protocol/units.h"

/* Every library session, oldest first. */
static struct mvd_sessions session_list = TAILQ_HEAD_INITIALIZER(session_list);
static uint64_t session_next_id = 1;

struct mvd_sessions *mvd_sessions(void)
{
	return &session_list;
}

void mvd_uuid_format(const uint8_t uuid[16], char *out)
{
	static const char hex[] = "0123456789abcdef";
	int i;

	for (i = 0; i < 16; i++) {
		out[2 * i] = hex[uuid[i] >> 4];
		out[2 * i + 1] = hex[uuid[i] & 15];
	}
	out[32] = '\0';
}

int mvd_session_visible(const struct mvd_session *s, uid_t viewer)
{
	return viewer == 0 || s->uid == viewer;
}

size_t mvd_session_count_visible(uid_t viewer)
{
	struct mvd_session *s;
	size_t n = 0;

	TAILQ_FOREACH(s, &session_list, entry) {
		if (mvd_session_visible(s, viewer))
			n++;
	}
	return n;
}

void mvd_session_configure(struct mvd_session *s, const struct mvd_config *cfg)
{
	const struct mvd_job *job = mvd_config_job(cfg, s->job);

	/* The process's own MEMVIRT_WEIGHT wins over the config's; its minimum cannot be asked for,
	 * since minimums are the administrator's promise. */
	s->weight = s->hello_weight != 0 ? s->hello_weight : job->weight;
	s->min = job->min;
}

struct mvd_session *mvd_session_new(struct mvd_conn *c, const struct mv_msg_hello *h)
{
	struct mvd_session *s = mvd_xcalloc(1, sizeof(*s));
	struct mv_msg_welcome w;
	uint8_t payload[MV_MSG_WELCOME_SIZE];
	char uuid[33], grant[32], request[32];

	s->id = session_next_id++;
	s->conn = c;
	/* The kernel's word for the pid is the one the daemon can act on; the process's own may be in
	 * another pid namespace. */
	s->pid = c->pid > 0 ? (uint32_t)c->pid : h->pid;
	s->uid = c->uid;
	memcpy(s->job, h->job, sizeof(s->job));
	s->job[sizeof(s->job) - 1] = '\0';
	if (s->job[0] == '\0')
		snprintf(s->job, sizeof(s->job), "pid%u", s->pid);
	s->device = h->device;
	memcpy(s->uuid, h->uuid, 16);
	s->device_total = h->device_total;
	s->hello_weight = h->weight;
	/* A process that names no budget of its own would use the whole device. */
	s->request = h->budget != 0 ? h->budget : h->device_total;
	mvd_session_configure(s, mvd_server_config());
	s->learn = mvd_learn_new(s->id, s->device_total);
	TAILQ_INSERT_TAIL(&session_list, s, entry);

	mvd_arbiter_join(s);

	w.session = s->id;
	w.grant = s->grant;
	mv_welcome_encode(&w, payload);
	mvd_conn_send(c, MV_MSG_WELCOME, payload, sizeof(payload));
	s->welcomed = 1;

	mvd_uuid_format(s->uuid, uuid);
	mv_format_size(s->grant, grant, sizeof(grant));
	mv_format_size(s->request, request, sizeof(request));
	mvd_info("session %llu: pid %u uid %u job '%s' on device %u (%s): asks %s, weight %u, "
		 "granted %s", (unsigned long long)s->id, s->pid, (unsigned)s->uid, s->job, s->device,
		 uuid, request, s->weight, grant);
	if (h->pid != s->pid)
		mvd_debug("session %llu: the process calls itself pid %u", (unsigned long long)s->id,
			  h->pid);
	return s;
}

void mvd_session_free(struct mvd_session *s)
{
	if (s == NULL)
		return;
	mvd_info("session %llu (pid %u, %s) ended after %llu events", (unsigned long long)s->id,
		 s->pid, s->job, (unsigned long long)s->events);
	TAILQ_REMOVE(&session_list, s, entry);
	mvd_arbiter_leave(s);
	mvd_learn_free(s->learn);
	free(s);
}

void mvd_session_send_grant(struct mvd_session *s)
{
	struct mv_msg_grant g;
	uint8_t payload[MV_MSG_GRANT_SIZE];

	if (!s->welcomed)
		return;
	g.grant = s->grant;
	mv_grant_encode(&g, payload);
	mvd_conn_send(s->conn, MV_MSG_GRANT, payload, sizeof(payload));
}

static int session_events(struct mvd_session *s, const struct mv_frame *f, const char **why)
{
	struct mv_msg_events head;
	struct mv_event ev;
	uint32_t i;

	if (mv_events_decode(f->payload, f->length, &head) < 0) {
		*why = "EVENTS count does not match its payload size";
		return -1;
	}
	s->events += head.count;
	s->events_dropped_heads += head.dropped;
	mvd_learn_gap(s->learn, head.dropped);
	for (i = 0; i < head.count; i++) {
		mv_event_decode(f->payload + MV_MSG_EVENTS_HEAD + (size_t)i * MV_EVENT_SIZE, &ev);
		if (ev.kind == MV_EV_LAUNCH)
			s->launches++;
		mvd_learn_event(s->learn, &ev);
	}
	return 0;
}

int mvd_session_frame(struct mvd_session *s, const struct mv_frame *f, const char **why)
{
	switch (f->type) {
	case MV_MSG_EVENTS:
		return session_events(s, f, why);
	case MV_MSG_COUNTERS:
		if (mv_counters_decode(f->payload, f->length, &s->counters) < 0) {
			*why = "COUNTERS payload of the wrong size";
			return -1;
		}
		return 0;
	case MV_MSG_BYE:
		return 1;
	case MV_MSG_HELLO:
		*why = "a second HELLO on one connection";
		return -1;
	default:
		*why = "a message type a library session may not send";
		return -1;
	}
}

json_t *mvd_session_json(const struct mvd_session *s)
{
	struct mv_msg_counters k = s->counters;
	const struct mvd_job *job = mvd_config_job(mvd_server_config(), s->job);
	char uuid[33];
	json_t *o;

	/* The library's total counts every lost event, the heads only those of batches that arrived:
	 * whichever is larger is the better count. */
	if (s->events_dropped_heads > k.events_dropped)
		k.events_dropped = s->events_dropped_heads;
	mvd_uuid_format(s->uuid, uuid);
	o = json_pack("{s:I, s:I, s:I, s:s, s:s, s:I, s:I, s:I, s:I}",
		      "session", (json_int_t)s->id, "pid", (json_int_t)s->pid,
		      "uid", (json_int_t)s->uid, "job", s->job, "device", uuid,
		      "weight", (json_int_t)s->weight, "min", (json_int_t)s->min,
		      "budget", (json_int_t)s->request, "grant", (json_int_t)s->grant);
	if (o == NULL)
		mvd_fatal("out of memory building session %llu's stats", (unsigned long long)s->id);
#define MV_COUNTER(name, source, type, unit, key, ...) \
	json_object_set_new(o, key, json_integer((json_int_t)k.name));
#include "protocol/counters.def"
#undef MV_COUNTER
	json_object_set_new(o, "events", json_integer((json_int_t)s->events));
	json_object_set_new(o, "launches", json_integer((json_int_t)s->launches));
	json_object_set_new(o, "policy", json_string(job->policy != NULL ? job->policy : "lru"));
	mvd_learn_json(s->learn, o);
	return o;
}
