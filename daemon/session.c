/* Library sessions: one libmemvirt.so process on one device, from its HELLO to its BYE. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/internal.h"
#include "protocol/text.h"
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

static void session_peer(const struct mvd_session *s, struct mvd_peer *who)
{
	who->uid = s->uid;
	who->admin = mvd_server_uid();
	who->cgroup = s->cgroup;
}

const struct mvd_job *mvd_session_job(const struct mvd_session *s)
{
	struct mvd_peer who;

	session_peer(s, &who);
	return mvd_config_job_for(mvd_server_config(), s->job, &who);
}

void mvd_session_configure(struct mvd_session *s, const struct mvd_config *cfg)
{
	struct mvd_peer who;
	const struct mvd_job *job;

	session_peer(s, &who);
	job = mvd_config_job_for(cfg, s->job, &who);
	/* A name any process may take gives nothing another user could be short of: only an entry
	 * that names the uid (or root's and memvirtd's own processes) gives its weight and min. */
	if (!mvd_config_job_trusted(cfg, job, &who))
		job = &cfg->defaults;
	/* The process's own MEMVIRT_WEIGHT wins over the config's, up to the config's cap; its
	 * minimum cannot be asked for, since minimums are the administrator's promise. */
	s->weight = job->weight;
	if (s->hello_weight != 0)
		s->weight = s->hello_weight < cfg->weight_max ? s->hello_weight : cfg->weight_max;
	s->min = job->min;
}

void mvd_session_bound(struct mvd_session *s, uint64_t total)
{
	s->device_total = s->device_claim < total ? s->device_claim : total;
	/* A process that names no budget of its own would use the whole device; one may ask for
	 * less than the device, never for more. */
	s->request = s->budget_claim != 0 && s->budget_claim < total ? s->budget_claim : total;
}

/* The process's cgroup path from /proc/PID/cgroup: the unified (v2) line "0::PATH", else v1's
 * "N:name=systemd:PATH". NULL when it cannot be read (the process is gone, or no /proc). */
static char *session_cgroup(pid_t pid)
{
	char path[64], line[4096], clean[4096], *v1 = NULL, *v2 = NULL, *p;
	FILE *f;

	if (pid <= 0)
		return NULL;
	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	f = fopen(path, "re");
	if (f == NULL)
		return NULL;
	while (v2 == NULL && fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		/* A user may name its own delegated cgroups with any bytes. */
		mv_text_clean(line, sizeof(line), clean, sizeof(clean));
		if (strncmp(clean, "0::", 3) == 0)
			v2 = mvd_xstrdup(clean + 3);
		else if (v1 == NULL && (p = strstr(clean, ":name=systemd:")) != NULL)
			v1 = mvd_xstrdup(p + strlen(":name=systemd:"));
	}
	fclose(f);
	if (v2 != NULL) {
		free(v1);
		return v2;
	}
	return v1;
}

/* The session's job name from the HELLO's, cleaned: whatever the process sent, what is kept is
 * printable UTF-8 that a log line, a table or a JSON string can hold. */
static void session_name(struct mvd_session *s, const struct mv_msg_hello *h)
{
	size_t bad = mv_text_clean(h->job, sizeof(h->job), s->job, sizeof(s->job));

	if (s->job[0] == '\0')
		snprintf(s->job, sizeof(s->job), "pid%u", s->pid);
	if (bad > 0)
		mvd_info("session %llu: pid %u sent a job name with %zu characters that are not "
			 "printable UTF-8; each is shown as '?'", (unsigned long long)s->id, s->pid, bad);
}

struct mvd_session *mvd_session_new(struct mvd_conn *c, const struct mv_msg_hello *h)
{
	struct mvd_session *s = mvd_xcalloc(1, sizeof(*s));

	s->id = session_next_id++;
	s->conn = c;
	/* The kernel's word for the pid is the one the daemon can act on; the process's own may be in
	 * another pid namespace. */
	s->pid = c->pid > 0 ? (uint32_t)c->pid : h->pid;
	s->uid = c->uid;
	s->cgroup = session_cgroup(c->pid);
	session_name(s, h);
	s->device = h->device;
	/* A rank past MV_RANK_MAX is no rank a library sends: it is shown as none. */
	s->rank = h->rank <= MV_RANK_MAX ? h->rank : MV_RANK_NONE;
	/* The decoder let only a token or nothing through; the arbiter pairs it with s->uid, the
	 * kernel's word, so that no other user's process can join the group. */
	memcpy(s->group, h->group, sizeof(s->group));
	s->group[sizeof(s->group) - 1] = '\0';
	memcpy(s->uuid, h->uuid, 16);
	s->device_claim = h->device_total;
	s->budget_claim = h->budget;
	mvd_session_bound(s, h->device_total);
	s->hello_weight = h->weight;
	s->host_want = h->host_want;
	s->host_grant = MV_HOST_GRANT_NONE;
	mvd_session_configure(s, mvd_server_config());
	TAILQ_INSERT_TAIL(&session_list, s, entry);

	/* The arbiter bounds the claims by the device's trusted total before the first grant. It
	 * divides the device once the loop's turn ends, however many sessions joined in it, and
	 * then welcomes the newcomers (mvd_session_welcome). */
	mvd_arbiter_join(s);
	s->learn = mvd_learn_new(s->id, s->device_total);
	if (h->pid != s->pid)
		mvd_debug("session %llu: the process calls itself pid %u", (unsigned long long)s->id,
			  h->pid);
	return s;
}

/* The first grant, now that the arbiter has divided the device with s on it. */
void mvd_session_welcome(struct mvd_session *s)
{
	struct mv_msg_welcome w;
	uint8_t payload[MV_MSG_WELCOME_SIZE];
	char uuid[33], grant[32], request[32];

	w.session = s->id;
	w.grant = s->grant;
	w.host_grant = s->host_grant;
	mv_welcome_encode(&w, payload);
	mvd_conn_send(s->conn, MV_MSG_WELCOME, payload, sizeof(payload));
	s->welcomed = 1;

	mvd_uuid_format(s->uuid, uuid);
	mv_format_size(s->grant, grant, sizeof(grant));
	mv_format_size(s->request, request, sizeof(request));
	mvd_info("session %llu: pid %u uid %u job '%s'%s%s on device %u (%s): asks %s, weight %u, "
		 "granted %s", (unsigned long long)s->id, s->pid, (unsigned)s->uid, s->job,
		 s->group[0] != '\0' ? " group " : "", s->group, s->device, uuid, request, s->weight,
		 grant);
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
	free(s->cgroup);
	free(s);
}

void mvd_session_send_grant(struct mvd_session *s)
{
	struct mv_msg_grant g;
	uint8_t payload[MV_MSG_GRANT_SIZE];

	if (!s->welcomed)
		return;
	g.grant = s->grant;
	g.host_grant = s->host_grant;
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
	case MV_MSG_COUNTERS: {
		uint64_t pool = s->counters.host_pool_bytes, need = s->counters.host_need_bytes;

		if (mv_counters_decode(f->payload, f->length, &s->counters) < 0) {
			*why = "COUNTERS payload of the wrong size";
			return -1;
		}
		mvd_arbiter_host_counters(s, pool, need);
		return 0;
	}
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
	const struct mvd_job *job = mvd_session_job(s);
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
	json_object_set_new(o, "host_want", json_integer((json_int_t)s->host_want));
	json_object_set_new(o, "host_grant", s->host_grant != MV_HOST_GRANT_NONE
					     ? json_integer((json_int_t)s->host_grant) : json_null());
	/* The library's own launch count is the counter "launches"; this one is what the events told. */
	json_object_set_new(o, "gpu_index", mvd_gpu_index(s->uuid) >= 0 ? json_integer(mvd_gpu_index(s->uuid))
									 : json_null());
	json_object_set_new(o, "launch_events", json_integer((json_int_t)s->launches));
	json_object_set_new(o, "rank", s->rank != MV_RANK_NONE ? json_integer((json_int_t)s->rank)
							   : json_null());
	json_object_set_new(o, "group", s->group[0] != '\0' ? json_string(s->group) : json_null());
	json_object_set_new(o, "policy", json_string(job->policy != NULL ? job->policy : "lru"));
	json_object_set_new(o, "cgroup", s->cgroup != NULL ? json_string(s->cgroup) : json_null());
	mvd_learn_json(s->learn, o);
	return o;
}
