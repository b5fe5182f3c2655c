/* memvirt ps: the daemons that discovery finds, and the jobs on each that this user may see. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "cli/internal.h"
#include "protocol/paths.h"
#include "protocol/text.h"
#include "protocol/units.h"

static void ps_usage(FILE *f)
{
	fprintf(f,
		"usage: memvirt ps [--json] [--socket PATH]\n"
		"\n"
		"Lists the daemons found (memvirt(1), DISCOVERY: the system daemon and this user's\n"
		"own, each that answers) with their pid, user and uptime, and under each the jobs\n"
		"this user may see, one process and device a line.\n"
		"\n"
		"  --json         print the same as one JSON object\n"
		"  --socket PATH  ask only the daemon on PATH\n"
		"  --help         print this and exit\n");
}

int cli_daemons_found(const char *explicit_path, char paths[][CLI_PATH_MAX], int *n)
{
	const char *env = getenv("MEMVIRT_SOCKET");

	*n = 0;
	if (explicit_path != NULL || (env != NULL && *env != '\0')) {
		*n = 1;
		return cli_client_socket(explicit_path, paths[0], CLI_PATH_MAX);
	}
	/* The system daemon only when it answers; this user's own always, so that a command that
	 * finds none names the socket the user's daemon would have. */
	if (mv_system_socket_path(paths[0], CLI_PATH_MAX) < 0 ||
	    mv_user_socket_path(paths[1], CLI_PATH_MAX) < 0)
		return -ENAMETOOLONG;
	if (!mv_socket_answers(paths[0])) {
		memcpy(paths[0], paths[1], CLI_PATH_MAX);
		*n = 1;
	} else {
		*n = strcmp(paths[0], paths[1]) == 0 ? 1 : 2;
	}
	return 0;
}

static long long ps_int(const json_t *o, const char *key)
{
	return (long long)json_integer_value(json_object_get(o, key));
}

/* One request on an open session; 0 with *resp, or -1 with the reason in err. */
static int ps_ask(struct cli_client *c, const char *cmd, json_t **resp, char *err, size_t errlen)
{
	json_t *req = json_pack("{s:s}", "cmd", cmd);
	const char *e;

	if (req == NULL)
		xoom();
	if (cli_client_request(c, req, CLI_CLIENT_TIMEOUT_MS, resp, err, errlen) < 0) {
		json_decref(req);
		return -1;
	}
	json_decref(req);
	e = cli_client_error(*resp);
	if (e != NULL) {
		snprintf(err, errlen, "%s", e);
		json_decref(*resp);
		return -1;
	}
	return 0;
}

/* One job's row, as ps shows it: what the daemon said of one session. */
static json_t *ps_job(const json_t *s)
{
	json_t *rank = json_object_get(s, "rank");
	json_t *j = json_pack("{s:I, s:O, s:s, s:s, s:I, s:I, s:I}", "pid", ps_int(s, "pid"),
			      "rank", rank != NULL ? rank : json_null(),
			      "job", json_string_value(json_object_get(s, "job")) != NULL
					     ? json_string_value(json_object_get(s, "job")) : "",
			      "device", json_string_value(json_object_get(s, "device")) != NULL
					     ? json_string_value(json_object_get(s, "device")) : "",
			      "budget", ps_int(s, "budget"), "grant", ps_int(s, "grant"),
			      "resident", ps_int(s, "resident_bytes"));

	if (j == NULL)
		xoom();
	/* The host grant is null while the daemon divides no node host limit. */
	json_object_set_new(j, "host_pool", json_integer(ps_int(s, "host_pool_bytes")));
	json_object_set_new(j, "host_want", json_integer(ps_int(s, "host_want")));
	json_object_set_new(j, "host_grant", json_is_integer(json_object_get(s, "host_grant"))
					     ? json_integer(ps_int(s, "host_grant")) : json_null());
	return j;
}

/* Asks the daemon on path who it is and what runs on it. Returns its object, or NULL after
 * printing why not (*err the negative errno). */
static json_t *ps_daemon(const char *path, int *err)
{
	struct cli_client c;
	struct ucred cred;
	socklen_t n = sizeof(cred);
	struct passwd *pw;
	json_t *st, *stats, *d, *jobs, *s;
	char why[512];
	size_t i;

	*err = cli_client_open(&c, path, CLI_CLIENT_TIMEOUT_MS);
	if (*err == -EPERM) {
		/* Asked again for the words of the refusal: cli_client_open keeps them to itself. */
		if (cli_client_call(path, "status", CLI_CLIENT_TIMEOUT_MS, &st, why, sizeof(why)) == 0)
			json_decref(st);
		else
			cli_client_no_daemon("memvirt ps", path, -EPERM, why);
	}
	if (*err < 0)
		return NULL;
	/* The daemon's user as the kernel tells it, not as it says. */
	if (getsockopt(c.fd, SOL_SOCKET, SO_PEERCRED, &cred, &n) != 0)
		cred.uid = (uid_t)-1;
	if (ps_ask(&c, "status", &st, why, sizeof(why)) < 0) {
		cli_client_close(&c);
		fprintf(stderr, "memvirt ps: the daemon on %s: %s\n", path, why);
		*err = -EPROTO;
		return NULL;
	}
	if (ps_ask(&c, "stats", &stats, why, sizeof(why)) < 0) {
		stats = json_object();
		fprintf(stderr, "memvirt ps: the daemon on %s lists no jobs: %s\n", path, why);
	}
	cli_client_close(&c);
	pw = cred.uid != (uid_t)-1 ? getpwuid(cred.uid) : NULL;
	d = json_pack("{s:s, s:I, s:I, s:s, s:I, s:s}", "socket", path, "pid", ps_int(st, "pid"),
		      "uid", cred.uid != (uid_t)-1 ? (json_int_t)cred.uid : (json_int_t)-1,
		      "user", pw != NULL ? pw->pw_name : "", "uptime_s", ps_int(st, "uptime_s"),
		      "version", json_string_value(json_object_get(st, "version")) != NULL
				 ? json_string_value(json_object_get(st, "version")) : "");
	if (d == NULL)
		xoom();
	jobs = json_array();
	json_array_foreach(json_object_get(stats, "sessions"), i, s)
		json_array_append_new(jobs, ps_job(s));
	json_object_set_new(d, "jobs", jobs);
	json_decref(st);
	json_decref(stats);
	return d;
}

static void ps_uptime(long long s, char *buf, size_t len)
{
	if (s < 3600)
		snprintf(buf, len, "%lldm%02llds", s / 60, s % 60);
	else
		snprintf(buf, len, "%lldh%02lldm", s / 3600, s / 60 % 60);
}

/* The text: a line for each daemon, then its jobs, one a line, under a heading. */
static void ps_print(const json_t *daemons)
{
	char up[32], job[96], dev[40], b[32], g[32], r[32], rank[24], hp[32], hg[32];
	const json_t *d, *j, *rk;
	size_t i, k;

	json_array_foreach(daemons, i, d) {
		ps_uptime(ps_int(d, "uptime_s"), up, sizeof(up));
		printf("%smemvirtd pid %lld, user %s (uid %lld), up %s, on %s: %zu job%s\n", i > 0 ? "\n" : "",
		       ps_int(d, "pid"), json_string_value(json_object_get(d, "user")), ps_int(d, "uid"), up,
		       json_string_value(json_object_get(d, "socket")),
		       json_array_size(json_object_get(d, "jobs")),
		       json_array_size(json_object_get(d, "jobs")) == 1 ? "" : "s");
		if (json_array_size(json_object_get(d, "jobs")) == 0)
			continue;
		printf("  %8s %5s %-20s %-8s %10s %10s %10s %10s %10s\n", "PID", "RANK", "JOB", "DEVICE",
		       "BUDGET", "GRANT", "RESIDENT", "HOST POOL", "HOST GRANT");
		json_array_foreach(json_object_get(d, "jobs"), k, j) {
			/* A job names itself: what it chose reaches the terminal escaped. */
			mv_text_escape(json_string_value(json_object_get(j, "job")), job, sizeof(job), 20);
			mv_text_escape(json_string_value(json_object_get(j, "device")), dev, sizeof(dev), 8);
			rk = json_object_get(j, "rank");
			if (json_is_integer(rk))
				snprintf(rank, sizeof(rank), "%lld", (long long)json_integer_value(rk));
			else
				snprintf(rank, sizeof(rank), "-");
			if (json_is_integer(json_object_get(j, "host_grant")))
				mv_format_size((uint64_t)ps_int(j, "host_grant"), hg, sizeof(hg));
			else
				snprintf(hg, sizeof(hg), "-");
			printf("  %8lld %5s %-20s %-8s %10s %10s %10s %10s %10s\n", ps_int(j, "pid"), rank, job,
			       dev, mv_format_size((uint64_t)ps_int(j, "budget"), b, sizeof(b)),
			       mv_format_size((uint64_t)ps_int(j, "grant"), g, sizeof(g)),
			       mv_format_size((uint64_t)ps_int(j, "resident"), r, sizeof(r)),
			       mv_format_size((uint64_t)ps_int(j, "host_pool"), hp, sizeof(hp)), hg);
		}
	}
}

/* Reads the command line: 0 to go on, 1 after --help, -1 after a usage error (printed). */
static int ps_parse(int argc, char **argv, const char **sock, int *json)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'},
		{"socket", required_argument, NULL, 's'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:h", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			*json = 1;
			break;
		case 's':
			*sock = optarg;
			break;
		case 'h':
			ps_usage(stdout);
			return 1;
		default:
			cli_option_error("memvirt ps", c, argv, opts);
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "memvirt ps: unexpected argument '%s'\n", argv[optind]);
		return -1;
	}
	return 0;
}

int cmd_ps(int argc, char **argv)
{
	char paths[2][CLI_PATH_MAX];
	const char *sock = NULL;
	json_t *daemons, *d, *root;
	int json = 0, n, i, r, err = 0;

	r = ps_parse(argc, argv, &sock, &json);
	if (r != 0)
		return r > 0 ? 0 : 2;
	if (cli_daemons_found(sock, paths, &n) < 0) {
		fprintf(stderr, "memvirt ps: the socket path is too long\n");
		return 2;
	}
	daemons = json_array();
	for (i = 0; i < n; i++) {
		d = ps_daemon(paths[i], &r);
		if (d != NULL)
			json_array_append_new(daemons, d);
		else
			err = r;
	}
	if (json_array_size(daemons) == 0 && err != -EPERM && err != -EPROTO)
		cli_client_no_daemon("memvirt ps", paths[n - 1], err, strerror(-err));
	r = json_array_size(daemons) > 0 ? 0 : 1;
	if (json) {
		root = json_pack("{s:o}", "daemons", daemons);
		if (root == NULL)
			xoom();
		cli_print_json(root);
	} else {
		ps_print(daemons);
		json_decref(daemons);
	}
	return r;
}
