/* The budget arbiter: each GPU's budget divided among the processes on it, and the grants pushed
 * to them whenever the division changes. */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/internal.h"
#include "protocol/units.h"

/* Every device with at least one session. */
static TAILQ_HEAD(, mvd_device) arbiter_devices = TAILQ_HEAD_INITIALIZER(arbiter_devices);

static uint64_t arbiter_min(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static uint64_t arbiter_max(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

/* Shares left among the claims still below their request, in proportion to weight. A claim is
 * still open while grants[i] < request and its weight is nonzero, so no bookkeeping is needed
 * beyond the grants themselves. */
static void arbiter_fill(uint64_t left, size_t n, const struct mvd_claim *claims, uint64_t *grants)
{
	unsigned __int128 share;
	uint64_t weights, need, given;
	size_t i;
	int capped;

	while (left > 0) {
		weights = 0;
		for (i = 0; i < n; i++) {
			if (grants[i] < claims[i].request)
				weights += claims[i].weight;
		}
		if (weights == 0)
			return;

		/* Claims whose share of this round would reach their request take only their need.
		 * The others wait for the next round, where the shares are recomputed without the
		 * capped ones: that is how a capped claim's leftover goes round again. */
		capped = 0;
		given = 0;
		for (i = 0; i < n; i++) {
			if (grants[i] >= claims[i].request || claims[i].weight == 0)
				continue;
			need = claims[i].request - grants[i];
			share = (unsigned __int128)left * claims[i].weight / weights;
			if (share >= need) {
				grants[i] += need;
				given += need;
				capped = 1;
			}
		}
		if (capped) {
			left -= given;
			continue;
		}

		/* Nobody reaches their request: everyone takes their share, and the few bytes the
		 * rounding down left over go one each to the first open claims, which each still have
		 * room (share < need). */
		for (i = 0; i < n; i++) {
			if (grants[i] >= claims[i].request || claims[i].weight == 0)
				continue;
			share = (unsigned __int128)left * claims[i].weight / weights;
			grants[i] += (uint64_t)share;
			given += (uint64_t)share;
		}
		left -= given;
		for (i = 0; i < n && left > 0; i++) {
			if (grants[i] >= claims[i].request || claims[i].weight == 0)
				continue;
			grants[i]++;
			left--;
		}
		return;
	}
}

void mvd_arbiter_divide(uint64_t budget, size_t n, const struct mvd_claim *claims, uint64_t *grants)
{
	unsigned __int128 mins = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		grants[i] = arbiter_min(claims[i].min, claims[i].request);
		mins += grants[i];
	}
	if (mins > budget) {
		/* The minimums alone do not fit: each gets the same fraction of its own, and there is
		 * nothing left to share by weight. */
		for (i = 0; i < n; i++)
			grants[i] = (uint64_t)((unsigned __int128)grants[i] * budget / mins);
		return;
	}
	arbiter_fill(budget - (uint64_t)mins, n, claims, grants);
}

/* Orders members by group: uid, then token; the members with no token stay apart. */
static int arbiter_group_cmp(const void *a, const void *b)
{
	const struct mvd_member *x = *(const struct mvd_member *const *)a;
	const struct mvd_member *y = *(const struct mvd_member *const *)b;
	int xg = x->group != NULL && x->group[0] != '\0', yg = y->group != NULL && y->group[0] != '\0';
	int c;

	if (xg != yg)
		return xg - yg;
	if (xg && x->uid != y->uid)
		return x->uid < y->uid ? -1 : 1;
	c = xg ? strcmp(x->group, y->group) : 0;
	return c != 0 ? c : (x > y) - (x < y);
}

static int arbiter_same_group(const struct mvd_member *x, const struct mvd_member *y)
{
	return x->group != NULL && x->group[0] != '\0' && y->group != NULL && x->uid == y->uid &&
	       strcmp(x->group, y->group) == 0;
}

/* The group of the m members at order[0, m) as one claim. */
static struct mvd_claim arbiter_group_claim(const struct mvd_member *const *order, size_t m)
{
	struct mvd_claim g = {UINT64_MAX, 0, 0};
	unsigned __int128 mins = 0;
	uint64_t weights = 0;

	for (size_t k = 0; k < m; k++) {
		g.request = arbiter_min(g.request, order[k]->claim.request);
		mins += arbiter_min(order[k]->claim.min, order[k]->claim.request);
		weights += order[k]->claim.weight;
	}
	g.min = mins < g.request ? (uint64_t)mins : g.request;
	g.weight = weights < UINT32_MAX ? (uint32_t)weights : UINT32_MAX;
	return g;
}

void mvd_arbiter_divide_groups(uint64_t budget, size_t n, const struct mvd_member *members,
			       uint64_t *grants)
{
	const struct mvd_member **order = mvd_xcalloc(n + 1, sizeof(*order));
	struct mvd_claim *gc = mvd_xcalloc(n + 1, sizeof(*gc)), *mc = mvd_xcalloc(n + 1, sizeof(*mc));
	size_t *first = mvd_xcalloc(n + 2, sizeof(*first)), ng = 0, i, k, m;
	uint64_t *gg = mvd_xcalloc(n + 1, sizeof(*gg)), *mg = mvd_xcalloc(n + 1, sizeof(*mg));

	for (i = 0; i < n; i++)
		order[i] = &members[i];
	qsort(order, n, sizeof(*order), arbiter_group_cmp);
	for (i = 0; i < n; i = k) {
		for (k = i + 1; k < n && arbiter_same_group(order[i], order[k]); k++)
			;
		first[ng] = i;
		gc[ng++] = arbiter_group_claim(order + i, k - i);
	}
	first[ng] = n;
	mvd_arbiter_divide(budget, ng, gc, gg);
	/* Inside a group its grant is divided by the same rules, each member asking for no more than
	 * the group could have. */
	for (size_t g = 0; g < ng; g++) {
		m = first[g + 1] - first[g];
		for (k = 0; k < m; k++) {
			mc[k] = order[first[g] + k]->claim;
			mc[k].request = arbiter_min(mc[k].request, gc[g].request);
		}
		mvd_arbiter_divide(gg[g], m, mc, mg);
		for (k = 0; k < m; k++)
			grants[order[first[g] + k] - members] = mg[k];
	}
	free(mg);
	free(gg);
	free(first);
	free(mc);
	free(gc);
	free(order);
}

static struct mvd_device *arbiter_device(const uint8_t uuid[16])
{
	struct mvd_device *d;

	TAILQ_FOREACH(d, &arbiter_devices, entry) {
		if (memcmp(d->uuid, uuid, 16) == 0)
			return d;
	}
	d = mvd_xcalloc(1, sizeof(*d));
	memcpy(d->uuid, uuid, 16);
	TAILQ_INIT(&d->sessions);
	TAILQ_INSERT_TAIL(&arbiter_devices, d, entry);
	return d;
}

/* d's memory from the first source that no process chose: the driver, else the config. With
 * neither, the first process's word is taken, and no later process can raise it. */
static void arbiter_trust(struct mvd_device *d, const struct mvd_session *first)
{
	const struct mvd_config *cfg = mvd_server_config();
	const char *was = d->source;
	uint64_t old = d->total;
	char hex[33], size[32];

	if (was != NULL && strcmp(was, "driver") == 0)
		return;
	if (was == NULL && mvd_gpu_total(d->uuid, &d->total) == 0) {
		d->source = "driver";
	} else if (cfg->device_total != 0) {
		d->total = cfg->device_total;
		d->source = "config";
	} else if (was == NULL) {
		d->total = first->device_claim;
		d->source = "first process";
	}
	if (d->source == was && d->total == old)
		return;
	mvd_uuid_format(d->uuid, hex);
	mvd_info("device %s: %s of memory, from the %s", hex,
		 mv_format_size(d->total, size, sizeof(size)), d->source);
}

/* At most this many changed grants are logged one by one at info; more are summed up in one
 * line, and each is a debug line, so that a recompute writes a bounded log whatever the
 * sessions. */
#define ARBITER_LOG_EACH 8

/* Divides d's budget again and tells every welcomed session whose grant changed. */
static void arbiter_recompute(struct mvd_device *d)
{
	const struct mvd_config *cfg = mvd_server_config();
	struct mvd_session *s;
	struct mvd_member *claims;
	uint64_t *grants;
	char was[32], now[32], budget[32], hex[33];
	size_t i, changed = 0;
	enum mvd_log_level level;

	arbiter_trust(d, TAILQ_FIRST(&d->sessions));
	d->budget = mvd_config_device_budget(cfg, d->total);
	mv_format_size(d->budget, budget, sizeof(budget));

	claims = mvd_xcalloc(d->nsessions, sizeof(*claims));
	grants = mvd_xcalloc(d->nsessions, sizeof(*grants));
	i = 0;
	TAILQ_FOREACH(s, &d->sessions, dev_entry) {
		mvd_session_bound(s, d->total);
		claims[i].claim.request = s->request;
		claims[i].claim.min = s->min;
		claims[i].claim.weight = s->weight;
		claims[i].uid = s->uid;
		claims[i].group = s->group;
		i++;
	}
	mvd_arbiter_divide_groups(d->budget, d->nsessions, claims, grants);
	i = 0;
	TAILQ_FOREACH(s, &d->sessions, dev_entry)
		changed += s->welcomed && grants[i++] != s->grant;
	level = changed > ARBITER_LOG_EACH ? MVD_LOG_DEBUG : MVD_LOG_INFO;

	d->granted = 0;
	i = 0;
	TAILQ_FOREACH(s, &d->sessions, dev_entry) {
		d->granted += grants[i];
		if (grants[i] != s->grant || !s->welcomed) {
			if (s->welcomed) {
				mvd_log(level, "session %llu (pid %u, %s): grant %s, was %s (device "
					"budget %s, sessions on it %zu)", (unsigned long long)s->id, s->pid,
					s->job, mv_format_size(grants[i], now, sizeof(now)),
					mv_format_size(s->grant, was, sizeof(was)), budget, d->nsessions);
			}
			s->grant = grants[i];
			mvd_session_send_grant(s);
		}
		i++;
	}
	free(grants);
	free(claims);
	if (changed > ARBITER_LOG_EACH) {
		mvd_uuid_format(d->uuid, hex);
		mvd_info("device %s: %zu of %zu sessions' grants changed (budget %s)", hex, changed,
			 d->nsessions, budget);
	}
}

/* ---- the node's pinned host memory ---------------------------------------------------------- */

/* The library's pool grows in chunks of at most this size (interpose/hostpool.c; under a node
 * limit it doubles from 2 MiB up to it): a claim asks for two more than the pool holds, and the
 * node is divided again once a pool is within one of that. */
#define ARBITER_HOST_CHUNK (256ull << 20)

/* The node's host limit as last divided (0: none), its memory, and the sessions' grants' sum. */
static uint64_t host_limit, host_memtotal, host_granted;
/* Sessions joined or left, or a pool moved past its claim, since the node was last divided. */
static int host_dirty;

/* The node's memory from /proc/meminfo's MemTotal, 0 when it cannot be read. */
static uint64_t arbiter_memtotal(void)
{
	char line[256];
	unsigned long long kib;
	uint64_t total = 0;
	FILE *f = fopen("/proc/meminfo", "re");

	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (sscanf(line, "MemTotal: %llu kB", &kib) == 1) {
			total = (uint64_t)kib << 10;
			break;
		}
	}
	fclose(f);
	return total;
}

void mvd_arbiter_host_claim(const struct mvd_session *s, struct mvd_claim *c)
{
	uint64_t pool = s->counters.host_pool_bytes;

	/* What a pool holds is pinned and never taken back; beyond it the claim follows demand,
	 * two chunks ahead, or as far as a page-out that waits says it needs (a buffer larger than
	 * that), so that no process waits while the node has room. */
	c->min = pool;
	c->request = arbiter_min(s->host_want, arbiter_max(pool + 2 * ARBITER_HOST_CHUNK,
							   s->counters.host_need_bytes));
	if (c->request < pool)
		c->request = pool;
	c->weight = s->weight;
}

/* Divides the node's host limit among every session again and tells those whose share changed. */
static void arbiter_host_divide(void)
{
	struct mvd_sessions *all = mvd_sessions();
	struct mvd_session *s;
	struct mvd_claim *claims;
	uint64_t *grants;
	size_t n = 0, i = 0;
	char a[32], b[32], c[32];

	if (host_memtotal == 0)
		host_memtotal = arbiter_memtotal();
	host_limit = mvd_config_host_limit(mvd_server_config(), host_memtotal);
	TAILQ_FOREACH(s, all, entry)
		n++;
	claims = mvd_xcalloc(n + 1, sizeof(*claims));
	grants = mvd_xcalloc(n + 1, sizeof(*grants));
	TAILQ_FOREACH(s, all, entry)
		mvd_arbiter_host_claim(s, &claims[i++]);
	if (host_limit != 0)
		mvd_arbiter_divide(host_limit, n, claims, grants);
	host_granted = 0;
	i = 0;
	TAILQ_FOREACH(s, all, entry) {
		uint64_t g = host_limit != 0 ? grants[i] : MV_HOST_GRANT_NONE;

		s->host_request = claims[i++].request;
		if (host_limit != 0)
			host_granted += g;
		if (g == s->host_grant)
			continue;
		if (s->welcomed && host_limit != 0)
			mvd_debug("session %llu (pid %u, %s): host grant %s, pool %s (node host limit %s)",
				  (unsigned long long)s->id, s->pid, s->job, mv_format_size(g, a, sizeof(a)),
				  mv_format_size(s->counters.host_pool_bytes, b, sizeof(b)),
				  mv_format_size(host_limit, c, sizeof(c)));
		s->host_grant = g;
		mvd_session_send_grant(s);
	}
	free(grants);
	free(claims);
}

void mvd_arbiter_host_counters(struct mvd_session *s, uint64_t old_pool, uint64_t old_need)
{
	uint64_t pool = s->counters.host_pool_bytes, need = s->counters.host_need_bytes;

	if (host_limit == 0)
		return;
	/* A page-out waits for more than the grant: divide again at once. */
	if (need != old_need && need > s->host_grant) {
		host_dirty = 1;
		return;
	}
	/* Otherwise only a pool that moved, and came within a chunk of its claim or its grant, asks
	 * for the node to be divided again: a few times per gigabyte a process pages out while the
	 * node has room, and never for a snapshot that says nothing new. */
	if (pool == old_pool || pool + ARBITER_HOST_CHUNK < arbiter_min(s->host_request, s->host_grant))
		return;
	host_dirty = 1;
}

json_t *mvd_arbiter_host_json(uid_t viewer)
{
	struct mvd_session *s;
	uint64_t granted = 0, pools = 0;
	size_t n = 0;
	json_t *o;

	TAILQ_FOREACH(s, mvd_sessions(), entry) {
		if (!mvd_session_visible(s, viewer))
			continue;
		if (host_limit != 0)
			granted += s->host_grant;
		pools += s->counters.host_pool_bytes;
		n++;
	}
	o = json_pack("{s:I, s:I, s:I, s:I}", "granted", (json_int_t)granted, "pool_bytes",
		      (json_int_t)pools, "sessions", (json_int_t)n, "memtotal", (json_int_t)host_memtotal);
	if (o == NULL)
		mvd_fatal("out of memory building the host stats");
	json_object_set_new(o, "limit",
			    host_limit != 0 ? json_integer((json_int_t)host_limit) : json_null());
	return o;
}

void mvd_arbiter_join(struct mvd_session *s)
{
	struct mvd_device *d = arbiter_device(s->uuid);

	s->dev = d;
	TAILQ_INSERT_TAIL(&d->sessions, s, dev_entry);
	d->nsessions++;
	/* The device's total is settled now, so that s is bounded by it from the start; the
	 * division waits for mvd_arbiter_settle. */
	arbiter_trust(d, TAILQ_FIRST(&d->sessions));
	mvd_session_bound(s, d->total);
	d->dirty = 1;
	host_dirty = 1;
}

void mvd_arbiter_leave(struct mvd_session *s)
{
	struct mvd_device *d = s->dev;

	if (d == NULL)
		return;
	TAILQ_REMOVE(&d->sessions, s, dev_entry);
	d->nsessions--;
	s->dev = NULL;
	host_dirty |= !mvd_server_stopping();
	if (d->nsessions == 0) {
		TAILQ_REMOVE(&arbiter_devices, d, entry);
		free(d);
		return;
	}
	/* While stopping, every session is about to be told SHUTDOWN: new grants would be noise. */
	if (!mvd_server_stopping())
		d->dirty = 1;
}

/* Once a turn of the loop: each device that sessions joined or left is divided once, however
 * many came and went, so that a burst of n sessions costs n, not n squared; then the sessions
 * that joined are welcomed with their first grant. */
void mvd_arbiter_settle(void)
{
	struct mvd_device *d;
	struct mvd_session *s;

	/* The node first, so that a newcomer's WELCOME carries its host grant. */
	if (host_dirty) {
		host_dirty = 0;
		arbiter_host_divide();
	}
	TAILQ_FOREACH(d, &arbiter_devices, entry) {
		if (!d->dirty)
			continue;
		d->dirty = 0;
		arbiter_recompute(d);
		TAILQ_FOREACH(s, &d->sessions, dev_entry)
			if (!s->welcomed)
				mvd_session_welcome(s);
	}
}

void mvd_arbiter_recompute_all(void)
{
	struct mvd_device *d;

	host_dirty = 0;
	arbiter_host_divide();
	TAILQ_FOREACH(d, &arbiter_devices, entry)
		arbiter_recompute(d);
}

json_t *mvd_arbiter_devices_json(uid_t viewer)
{
	struct mvd_device *d;
	struct mvd_session *s;
	json_t *list = json_array(), *o;
	uint64_t granted;
	size_t n;
	char hex[33];

	TAILQ_FOREACH(d, &arbiter_devices, entry) {
		granted = 0;
		n = 0;
		TAILQ_FOREACH(s, &d->sessions, dev_entry) {
			if (!mvd_session_visible(s, viewer))
				continue;
			granted += s->grant;
			n++;
		}
		/* A user learns nothing of a GPU only other users' jobs run on. */
		if (n == 0)
			continue;
		mvd_uuid_format(d->uuid, hex);
		o = json_pack("{s:s, s:I, s:I, s:I, s:I}", "device", hex, "total", (json_int_t)d->total,
			      "budget", (json_int_t)d->budget, "granted", (json_int_t)granted,
			      "sessions", (json_int_t)n);
		if (o == NULL)
			mvd_fatal("out of memory building the device list");
		json_object_set_new(o, "total_from", json_string(d->source));
		json_object_set_new(o, "gpu_index", mvd_gpu_index(d->uuid) >= 0
							    ? json_integer(mvd_gpu_index(d->uuid))
							    : json_null());
		json_array_append_new(list, o);
	}
	return list;
}
