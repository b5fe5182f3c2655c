/* memvirt.json: the built-in defaults, every file under tests/data/valid/config loading, every file
 * under tests/data/invalid/config refused with the exact line in its .err sibling, job lookup and
 * the device budget. */
#include "config.h"

#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/conf.h"
#include "policies/policy.h"
#include "protocol/units.h"

#define GIB ((uint64_t)1 << 30)
#define MIB ((uint64_t)1 << 20)

/* The fewest cases each data folder must hold, so that a wrong MV_TOP_SRCDIR cannot pass. */
#define MIN_VALID 8
#define MIN_INVALID 40

static char *data_path(const char *kind, const char *name)
{
	const char *top = getenv("MV_TOP_SRCDIR");
	char *p;

	if (top == NULL || *top == '\0')
		top = ".";
	ck_assert_int_ge(asprintf(&p, "%s/tests/data/%s/config%s%s", top, kind, name ? "/" : "",
				  name ? name : ""), 0);
	return p;
}

static struct mvd_config *load_ok(const char *kind, const char *name)
{
	struct mvd_config *c = NULL;
	char err[1024] = "";
	char *path = data_path(kind, name);

	ck_assert_msg(mvd_config_load(path, &c, err, sizeof(err)) == 0, "%s: %s", path, err);
	ck_assert_ptr_nonnull(c);
	ck_assert_str_eq(c->path, path);
	free(path);
	return c;
}

static int is_json(const struct dirent *d)
{
	size_t n = strlen(d->d_name);

	return n > 5 && strcmp(d->d_name + n - 5, ".json") == 0;
}

/* The .json files of a data folder, sorted; returns how many. */
static int cases(const char *kind, struct dirent ***list)
{
	char *dir = data_path(kind, NULL);
	int n = scandir(dir, list, is_json, alphasort);

	ck_assert_msg(n >= 0, "cannot list %s (is MV_TOP_SRCDIR set?)", dir);
	free(dir);
	return n;
}

/* s with every occurrence of from replaced by to; the caller frees it. */
static char *replace(const char *s, const char *from, const char *to)
{
	size_t nf = strlen(from), nt = strlen(to), n = 0;
	char *out = malloc(strlen(s) * (nt > nf ? nt : 1) + nt + 1), *o = out;

	ck_assert_ptr_nonnull(out);
	while (*s != '\0') {
		if (nf > 0 && strncmp(s, from, nf) == 0) {
			memcpy(o, to, nt);
			o += nt;
			s += nf;
			n++;
		} else {
			*o++ = *s++;
		}
	}
	*o = '\0';
	return out;
}

/* The first line of a file, without its newline. */
static char *first_line(const char *path)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;

	ck_assert_msg(f != NULL, "%s is missing", path);
	n = getline(&line, &cap, f);
	fclose(f);
	ck_assert_msg(n > 0, "%s is empty", path);
	if (line[n - 1] == '\n')
		line[n - 1] = '\0';
	return line;
}

START_TEST(test_defaults)
{
	struct mvd_config *c = mvd_config_default();

	ck_assert_ptr_null(c->path);
	ck_assert_str_eq(c->log_level, "info");
	ck_assert_ptr_null(c->log_file);
	ck_assert_ptr_null(c->socket);
	ck_assert_str_eq(c->device_budget, "100%");
	ck_assert_str_eq(c->defaults.name, "default");
	ck_assert_uint_eq(c->defaults.weight, 1);
	ck_assert_uint_eq(c->defaults.min, 0);
	ck_assert_str_eq(c->defaults.policy, "lru");
	ck_assert_uint_eq(c->defaults.page_min, MIB);
	ck_assert_uint_eq(c->defaults.lookahead, 1);
	ck_assert(c->defaults.heavy_fraction == 0.5);
	ck_assert(c->defaults.headroom == 0.02);
	ck_assert_ptr_null(c->defaults.iteration_marker);
	ck_assert_uint_eq(c->defaults.set, 0);
	ck_assert_ptr_null(c->jobs);
	ck_assert_uint_eq(c->njobs, 0);
	ck_assert_uint_eq(c->slab_threshold, MIB);
	ck_assert_uint_eq(c->host_limit, 0);
	ck_assert_int_eq(c->safety_net, 1);
	ck_assert_uint_eq(mvd_config_device_budget(c, 80 * GIB), 80 * GIB);
	mvd_config_free(c);
	mvd_config_free(NULL);
}
END_TEST

/* The configuration knows the policies' own registry, and names all of them in messages. */
START_TEST(test_policies)
{
	char buf[256];
	size_t n = 0;

	while (mv_policies[n] != NULL)
		n++;
	ck_assert_uint_eq(n, 5);
	ck_assert_str_eq(mvd_policy_names("and", buf, sizeof(buf)),
			 "lru, vdnn-all, vdnn-conv, mmcnn and auto");
	ck_assert_str_eq(mvd_policy_names("or", buf, sizeof(buf)),
			 "lru, vdnn-all, vdnn-conv, mmcnn or auto");
}
END_TEST

/* Planning knobs: a job inherits "default"'s, overrides its own, and records which the file
 * gave, so that `memvirt run` passes on only those. */
START_TEST(test_planning_knobs)
{
	struct mvd_config *c = load_ok("valid", "planning-knobs.json");
	const struct mvd_job *j;

	ck_assert_str_eq(c->defaults.policy, "mmcnn");
	ck_assert(c->defaults.headroom == 0.05);
	ck_assert_uint_eq(c->defaults.page_min, 2 * MIB);
	ck_assert_uint_eq(c->defaults.set, MVD_JOB_POLICY | MVD_JOB_HEADROOM | MVD_JOB_PAGE_MIN);

	j = mvd_config_job(c, "vgg");
	ck_assert_str_eq(j->policy, "vdnn-all");
	ck_assert_uint_eq(j->lookahead, 3);
	ck_assert_uint_eq(j->page_min, 4 * MIB);
	ck_assert(j->headroom == 0.05);
	ck_assert(j->heavy_fraction == 0.5);
	ck_assert_str_eq(j->iteration_marker, "_Z12sgd_step_f32PfPKfif");
	ck_assert_uint_eq(j->set, MVD_JOB_POLICY | MVD_JOB_HEADROOM | MVD_JOB_PAGE_MIN |
				  MVD_JOB_LOOKAHEAD | MVD_JOB_ITERATION_MARKER);

	j = mvd_config_job(c, "resnet");
	ck_assert_str_eq(j->policy, "vdnn-conv");
	ck_assert(j->heavy_fraction == 1.0);
	ck_assert(j->headroom == 0.0);
	ck_assert_uint_eq(j->lookahead, 1);
	ck_assert_ptr_null(j->iteration_marker);

	j = mvd_config_job(c, "lstm");
	ck_assert_str_eq(j->policy, "mmcnn");
	ck_assert(j->heavy_fraction == 0.25);
	ck_assert_uint_eq(j->set, MVD_JOB_POLICY | MVD_JOB_HEADROOM | MVD_JOB_PAGE_MIN |
				  MVD_JOB_HEAVY_FRACTION);
	mvd_config_free(c);
}
END_TEST

START_TEST(test_full_file)
{
	struct mvd_config *c = load_ok("valid", "full.json");

	ck_assert_str_eq(c->log_level, "debug");
	ck_assert_str_eq(c->log_file, "/var/log/memvirtd.log");
	ck_assert_str_eq(c->socket, "/run/memvirt/memvirtd.sock");
	ck_assert_str_eq(c->device_budget, "90%");
	ck_assert_uint_eq(c->defaults.weight, 3);
	ck_assert_uint_eq(c->defaults.min, GIB);
	ck_assert_str_eq(c->defaults.policy, "lru");
	ck_assert_uint_eq(c->slab_threshold, 2 * MIB);
	ck_assert_uint_eq(c->host_limit, 64 * GIB);
	ck_assert_int_eq(c->safety_net, 0);
	/* "default" is not among the other jobs, which keep the file's order. */
	ck_assert_uint_eq(c->njobs, 2);
	ck_assert_str_eq(c->jobs[0].name, "train.py");
	ck_assert_str_eq(c->jobs[1].name, "eval");
	/* A job starts from "default" even when "default" comes later in the file. */
	ck_assert_uint_eq(c->jobs[0].weight, 2);
	ck_assert_uint_eq(c->jobs[0].min, 4 * GIB);
	ck_assert_str_eq(c->jobs[0].policy, "lru");
	ck_assert_uint_eq(c->jobs[1].weight, 3);
	ck_assert_uint_eq(c->jobs[1].min, 0);
	mvd_config_free(c);
}
END_TEST

START_TEST(test_sizes_as_numbers)
{
	struct mvd_config *c = load_ok("valid", "sizes-as-numbers.json");

	ck_assert_uint_eq(c->defaults.min, GIB);
	ck_assert_uint_eq(c->slab_threshold, 65536);
	ck_assert_uint_eq(c->host_limit, 10000000000ull);
	mvd_config_free(c);
}
END_TEST

START_TEST(test_job_names)
{
	struct mvd_config *c = load_ok("valid", "job-names.json");

	ck_assert_uint_eq(c->njobs, 3);
	ck_assert_uint_eq(mvd_config_job(c, "train.v2.py")->weight, 1000);
	ck_assert_str_eq(mvd_config_job(c, "résumé")->name, "résumé");
	ck_assert_uint_eq(mvd_config_job(c, "with space")->min, 1500000000ull);
	mvd_config_free(c);

	c = load_ok("valid", "escaped-keys.json");
	ck_assert_str_eq(c->log_level, "warn");
	mvd_config_free(c);
}
END_TEST

START_TEST(test_job_match)
{
	struct mvd_config *c = load_ok("valid", "full.json");

	ck_assert_ptr_eq(mvd_config_job(c, "train.py"), &c->jobs[0]);
	ck_assert_ptr_eq(mvd_config_job(c, "eval"), &c->jobs[1]);
	/* Names match exactly: no prefix, no case folding. */
	ck_assert_ptr_eq(mvd_config_job(c, "train"), &c->defaults);
	ck_assert_ptr_eq(mvd_config_job(c, "Train.py"), &c->defaults);
	ck_assert_ptr_eq(mvd_config_job(c, "default"), &c->defaults);
	ck_assert_ptr_eq(mvd_config_job(c, NULL), &c->defaults);
	mvd_config_free(c);
}
END_TEST

/* An entry's weight and min are for the identity it names, never for a name alone. */
START_TEST(test_job_identity)
{
	struct mvd_config *c = load_ok("valid", "identity.json");
	struct mvd_peer user = {.uid = 1000, .admin = 0, .cgroup = "/user.slice/user-1000.slice"};
	struct mvd_peer other = {.uid = 1001, .admin = 0, .cgroup = "/system.slice/train.service"};
	struct mvd_peer root = {.uid = 0, .admin = 0, .cgroup = "/system.slice/train.service/x"};
	struct mvd_peer rootless = {.uid = 0, .admin = 0, .cgroup = NULL};
	const struct mvd_job *j;

	ck_assert_uint_eq(c->device_total, 80 * GIB);
	ck_assert_uint_eq(c->weight_max, 10);
	j = mvd_config_job_for(c, "train.py", &user);
	ck_assert_str_eq(j->name, "train.py");
	ck_assert(mvd_config_job_trusted(c, j, &user));
	ck_assert_ptr_eq(mvd_config_job_for(c, "train.py", &other), &c->defaults);
	/* A cgroup entry: in the cgroup or below it, and of its uid. */
	ck_assert_str_eq(mvd_config_job_for(c, "svc", &root)->name, "svc");
	ck_assert_ptr_eq(mvd_config_job_for(c, "svc", &other), &c->defaults);
	ck_assert_ptr_eq(mvd_config_job_for(c, "svc", &rootless), &c->defaults);
	/* A unit entry: a component of the cgroup path, whole. */
	ck_assert_str_eq(mvd_config_job_for(c, "unit", &other)->name, "unit");
	ck_assert_ptr_eq(mvd_config_job_for(c, "unit", &user), &c->defaults);
	/* A name-only entry is found for anyone, but gives its weight and min only to root and
	 * memvirtd's own user. */
	j = mvd_config_job_for(c, "named", &other);
	ck_assert_str_eq(j->name, "named");
	ck_assert(!mvd_config_job_trusted(c, j, &other));
	ck_assert(mvd_config_job_trusted(c, j, &root));
	other.admin = 1001;
	ck_assert(mvd_config_job_trusted(c, j, &other));
	ck_assert(mvd_config_job_trusted(c, &c->defaults, &user));
	mvd_config_free(c);
}
END_TEST

START_TEST(test_device_budget)
{
	struct mvd_config *c = load_ok("valid", "full.json");

	/* 90% */
	ck_assert_uint_eq(mvd_config_device_budget(c, 80 * GIB), 72 * GIB);
	ck_assert_uint_eq(mvd_config_device_budget(c, 1000), 900);
	mvd_config_free(c);

	c = load_ok("valid", "budget-decimal-percent.json");
	ck_assert_uint_eq(mvd_config_device_budget(c, 16 * GIB), 6 * GIB);
	mvd_config_free(c);

	c = load_ok("valid", "budget-size.json");
	ck_assert_uint_eq(mvd_config_device_budget(c, 80 * GIB), 60 * GIB);
	/* A size beyond the device is the whole device. */
	ck_assert_uint_eq(mvd_config_device_budget(c, 16 * GIB), 16 * GIB);
	mvd_config_free(c);
}
END_TEST

/* What mv_format_size writes for people parses back, PiB included (memvirt config check shows
 * sizes that way, and a user may paste one into the file). */
START_TEST(test_format_reads_back)
{
	static const uint64_t sizes[] = {0, 1023, 1536, 5ull << 30, 1ull << 50, 3ull << 52, 15ull << 60};
	char buf[64];
	uint64_t x;

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		mv_format_size(sizes[i], buf, sizeof(buf));
		ck_assert_msg(mv_parse_size(buf, &x) == 0, "'%s' does not parse", buf);
		ck_assert_msg(x >= sizes[i] - sizes[i] / 20 && x - sizes[i] / 20 <= sizes[i],
			      "'%s' reads back as %llu", buf, (unsigned long long)x);
	}
	ck_assert_int_eq(mv_parse_size("2PiB", &x), 0);
	ck_assert_uint_eq(x, 2ull << 50);
	ck_assert_int_eq(mv_parse_size("1P", &x), 0);
	ck_assert_uint_eq(x, 1ull << 50);
	ck_assert_int_eq(mv_parse_size("3PB", &x), 0);
	ck_assert_uint_eq(x, 3000000000000000ull);
	ck_assert_int_eq(mv_parse_size("16384PiB", &x), -1);
}
END_TEST

/* Sizes are read exactly: decimal digits and a unit. Hex, exponents, signs and fractions of a
 * byte are refused, not half read; a fraction of a larger unit is exact where it comes to whole
 * bytes. */
START_TEST(test_sizes_exact)
{
	static const char *const refused[] = {"0x10", "0X10", "1.5", "1.5B", "0.5", "1e3", "1E3KiB", "inf", "nan",
					      "-1", "+1", " 1", "1.", ".5", ".5KiB", ".0", "1..5", "1.5.0", "0x10GiB", "1 2",
					      "18446744073709551616", "99999999999999999999999", "100.5%"};
	uint64_t x;

	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		ck_assert_msg(mv_parse_size(refused[i], &x) == -1, "'%s' parsed as %llu", refused[i],
			      (unsigned long long)x);
		ck_assert_msg(mv_parse_size_or_percent(refused[i], 1000, &x) == -1, "'%s' parsed as %llu",
			      refused[i], (unsigned long long)x);
	}
	ck_assert_int_eq(mv_parse_size("16", &x), 0);
	ck_assert_uint_eq(x, 16);
	ck_assert_int_eq(mv_parse_size("010", &x), 0);
	ck_assert_uint_eq(x, 10);
	ck_assert_int_eq(mv_parse_size("1.0", &x), 0);
	ck_assert_uint_eq(x, 1);
	ck_assert_int_eq(mv_parse_size("1.5GiB", &x), 0);
	ck_assert_uint_eq(x, 1610612736);
	ck_assert_int_eq(mv_parse_size("1.5 KiB", &x), 0);
	ck_assert_uint_eq(x, 1536);
	ck_assert_int_eq(mv_parse_size("0.001KB", &x), 0);
	ck_assert_uint_eq(x, 1);
	ck_assert_int_eq(mv_parse_size("2.000000000001GB", &x), 0);
	ck_assert_uint_eq(x, 2000000000);
	ck_assert_int_eq(mv_parse_size("0.1KiB", &x), 0);
	ck_assert_uint_eq(x, 102);
	ck_assert_int_eq(mv_parse_size("18446744073709551615", &x), 0);
	ck_assert_uint_eq(x, UINT64_MAX);
	ck_assert_int_eq(mv_parse_size("16383.9PiB", &x), 0);
	ck_assert_int_eq(mv_parse_size("16384PiB", &x), -1);
	ck_assert_int_eq(mv_parse_size_or_percent("40.5%", 1000, &x), 0);
	ck_assert_uint_eq(x, 405);
	ck_assert_int_eq(mv_parse_size_or_percent("100.0%", 1000, &x), 0);
	ck_assert_uint_eq(x, 1000);
}
END_TEST

/* 100% of a whole that a double cannot hold exactly is the whole, never a value converted from
 * 2^64 (undefined) or above the whole. */
START_TEST(test_percent_of_huge_whole)
{
	struct mvd_config *c = mvd_config_default();
	uint64_t x;

	ck_assert_uint_eq(mvd_config_device_budget(c, UINT64_MAX), UINT64_MAX);
	ck_assert_int_eq(mv_parse_size_or_percent("100%", UINT64_MAX, &x), 0);
	ck_assert_uint_eq(x, UINT64_MAX);
	ck_assert_int_eq(mv_parse_size_or_percent("100%", (1ull << 60) - 1, &x), 0);
	ck_assert_uint_eq(x, (1ull << 60) - 1);
	ck_assert_int_eq(mv_parse_size_or_percent("50%", UINT64_MAX, &x), 0);
	ck_assert_uint_eq(x, 1ull << 63);
	mvd_config_free(c);
}
END_TEST

/* MEMVIRT_BUDGET per device: a device's own entry, else the entry for every device, else none; and
 * every malformed entry refused by name, with why. */
START_TEST(test_budget_per_device)
{
	static const struct {
		const char *spec, *entry, *why;
	} refused[] = {
		{"0:x", "0:x", "a budget that is not a size such as 6GiB or a percentage such as 40%"},
		{"0:1MiB,,1:2MiB", "", "an empty entry"},
		{"0:1MiB,0:2MiB", "0:2MiB", "a device named twice"},
		{"1MiB,1:2MiB,3MiB", "3MiB", "two budgets for every device"},
		{"4096:1MiB", "4096:1MiB", "a device that is not an ordinal from 0 to 4095"},
		{"-1:1MiB", "-1:1MiB", "a device that is not an ordinal from 0 to 4095"},
		{":1MiB", ":1MiB", "a device that is not an ordinal from 0 to 4095"},
		{"0:0%", "0:0%", "a budget of nothing"},
		{"0:1MiB,", "", "an empty entry"},
	};
	const char *why;
	char entry[64];
	uint64_t x;

	ck_assert_int_eq(mv_budget_pick("0:6GiB,1:40%", 0, 1000ull << 30, &x, &why, entry, sizeof(entry)), 1);
	ck_assert_uint_eq(x, 6ull << 30);
	ck_assert_int_eq(mv_budget_pick("0:6GiB,1:40%", 1, 1000ull << 30, &x, &why, entry, sizeof(entry)), 1);
	ck_assert_uint_eq(x, 400ull << 30);
	/* Not named, and no entry for every device. */
	x = 7;
	ck_assert_int_eq(mv_budget_pick("0:6GiB,1:40%", 2, 1000ull << 30, &x, &why, entry, sizeof(entry)), 0);
	ck_assert_uint_eq(x, 7);
	/* The entry for every device, in any place, and a device's own entry over it. */
	ck_assert_int_eq(mv_budget_pick("1:6GiB,10%", 2, 1000, &x, &why, entry, sizeof(entry)), 1);
	ck_assert_uint_eq(x, 100);
	ck_assert_int_eq(mv_budget_pick("10%,1:6GiB", 1, 1000, &x, &why, entry, sizeof(entry)), 1);
	ck_assert_uint_eq(x, 6ull << 30);
	ck_assert_int_eq(mv_budget_pick("4095:1KiB", 4095, 1000, &x, &why, entry, sizeof(entry)), 1);
	ck_assert_uint_eq(x, 1024);
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		why = NULL;
		ck_assert_msg(mv_budget_pick(refused[i].spec, 0, 1000, &x, &why, entry, sizeof(entry)) == -1,
			      "'%s' was taken", refused[i].spec);
		ck_assert_str_eq(entry, refused[i].entry);
		ck_assert_str_eq(why, refused[i].why);
	}
}
END_TEST

START_TEST(test_valid_cases)
{
	struct dirent **list;
	int n = cases("valid", &list);

	ck_assert_int_ge(n, MIN_VALID);
	for (int i = 0; i < n; i++) {
		mvd_config_free(load_ok("valid", list[i]->d_name));
		free(list[i]);
	}
	free(list);
}
END_TEST

START_TEST(test_invalid_cases)
{
	struct dirent **list;
	int n = cases("invalid", &list);

	ck_assert_int_ge(n, MIN_INVALID);
	for (int i = 0; i < n; i++) {
		char *path = data_path("invalid", list[i]->d_name), *errpath, *want, *got;
		struct mvd_config *c = NULL;
		char err[1024] = "";

		ck_assert_msg(mvd_config_load(path, &c, err, sizeof(err)) == -1,
			      "%s loaded but should not", path);
		ck_assert_ptr_null(c);
		ck_assert_msg(strchr(err, '\n') == NULL, "%s: error is not one line: %s", path, err);
		errpath = strdup(path);
		strcpy(errpath + strlen(errpath) - 5, ".err");
		want = first_line(errpath);
		got = replace(err, path, "FILE");
		ck_assert_msg(strcmp(got, want) == 0, "%s:\n  got  %s\n  want %s", path, got, want);
		free(got);
		free(want);
		free(errpath);
		free(path);
		free(list[i]);
	}
	free(list);
}
END_TEST

/* Every .err in the invalid folder belongs to a case, so none is silently skipped. */
START_TEST(test_invalid_cases_paired)
{
	char *dir = data_path("invalid", NULL);
	DIR *d = opendir(dir);
	struct dirent *e;
	int errs = 0;

	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d)) != NULL) {
		size_t n = strlen(e->d_name);
		char *json;

		if (n <= 4 || strcmp(e->d_name + n - 4, ".err") != 0)
			continue;
		errs++;
		ck_assert_int_ge(asprintf(&json, "%s/%.*s.json", dir, (int)(n - 4), e->d_name), 0);
		ck_assert_msg(access(json, R_OK) == 0, "%s has no .json", e->d_name);
		free(json);
	}
	closedir(d);
	free(dir);
	ck_assert_int_ge(errs, MIN_INVALID);
}
END_TEST

START_TEST(test_missing_file)
{
	struct mvd_config *c = NULL;
	char err[1024];
	char *path = data_path("invalid", "no-such-file.json");
	char *want;

	ck_assert_int_eq(mvd_config_load(path, &c, err, sizeof(err)), -1);
	ck_assert_ptr_null(c);
	ck_assert_int_ge(asprintf(&want, "%s: cannot open: No such file or directory", path), 0);
	ck_assert_str_eq(err, want);
	free(want);
	free(path);
}
END_TEST

START_TEST(test_directory)
{
	struct mvd_config *c = NULL;
	char err[1024];
	char *path = data_path("valid", NULL);
	char *want;

	ck_assert_int_eq(mvd_config_load(path, &c, err, sizeof(err)), -1);
	ck_assert_int_ge(asprintf(&want, "%s: cannot read: Is a directory", path), 0);
	ck_assert_str_eq(err, want);
	free(want);
	free(path);
}
END_TEST

/* A short or missing error buffer truncates the message and nothing else. */
START_TEST(test_short_error_buffer)
{
	struct mvd_config *c = NULL;
	char *path = data_path("invalid", "unknown-key-job.json");
	char err[8];

	memset(err, 'x', sizeof(err));
	ck_assert_int_eq(mvd_config_load(path, &c, err, sizeof(err)), -1);
	ck_assert_uint_eq(strlen(err), sizeof(err) - 1);
	ck_assert_int_eq(mvd_config_load(path, &c, NULL, 0), -1);
	ck_assert_ptr_null(c);
	free(path);
}
END_TEST

static Suite *config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("config");

	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_policies);
	tcase_add_test(tc, test_planning_knobs);
	tcase_add_test(tc, test_full_file);
	tcase_add_test(tc, test_sizes_as_numbers);
	tcase_add_test(tc, test_job_names);
	tcase_add_test(tc, test_job_match);
	tcase_add_test(tc, test_job_identity);
	tcase_add_test(tc, test_device_budget);
	tcase_add_test(tc, test_percent_of_huge_whole);
	tcase_add_test(tc, test_budget_per_device);
	tcase_add_test(tc, test_format_reads_back);
	tcase_add_test(tc, test_sizes_exact);
	tcase_add_test(tc, test_valid_cases);
	tcase_add_test(tc, test_invalid_cases);
	tcase_add_test(tc, test_invalid_cases_paired);
	tcase_add_test(tc, test_missing_file);
	tcase_add_test(tc, test_directory);
	tcase_add_test(tc, test_short_error_buffer);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(config_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
