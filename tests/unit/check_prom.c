/* protocol/prom.c: the Prometheus text of a stats answer, labels, escaping and summed series; and
 * promtool's check of it. */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "protocol/prom.h"

#define UUID_A "00112233445566778899aabbccddeeff"
#define UUID_B "ffeeddccbbaa99887766554433221100"

/* A stats answer: two processes of job "train" rank 1 on device A (summed into one series), one of
 * rank 0, a job with no rank on device B whose name needs escaping (a control character is
 * shown as '?'), and both devices. */
static json_t *sample(void)
{
	json_t *o = json_pack(
		"{s:s, s:[{s:s, s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:I},"
		"         {s:s, s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:I},"
		"         {s:s, s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:I},"
		"         {s:s, s:s, s:n, s:n, s:i, s:i, s:i, s:i, s:I}],"
		" s:[{s:s, s:n, s:I, s:i, s:i, s:i}, {s:s, s:i, s:I, s:i, s:i, s:i}]}",
		"version", "1.2.3",
		"sessions",
		"device", UUID_A, "job", "train", "rank", 1, "gpu_index", 0, "launches", 10, "page_outs", 3,
		"stall_ns", 500000000, "pid", 11, "budget", (json_int_t)1 << 40,
		"device", UUID_A, "job", "train", "rank", 1, "gpu_index", 0, "launches", 5, "page_outs", 4,
		"stall_ns", 250000000, "pid", 12, "budget", (json_int_t)1 << 40,
		"device", UUID_A, "job", "train", "rank", 0, "gpu_index", 0, "launches", 7, "page_outs", 0,
		"stall_ns", 0, "pid", 13, "budget", (json_int_t)1,
		"device", UUID_B, "job", "a\"b\\c\nd", "rank", "gpu_index", "launches", 1, "page_outs", 2,
		"stall_ns", 1, "pid", 14, "budget", (json_int_t)2,
		"devices",
		"device", UUID_B, "gpu_index", "total", (json_int_t)80 << 30, "budget", 9, "granted", 8,
		"sessions", 1,
		"device", UUID_A, "gpu_index", 0, "total", (json_int_t)40 << 30, "budget", 7, "granted", 6,
		"sessions", 3);

	ck_assert_ptr_nonnull(o);
	return o;
}

static char *render(json_t *o)
{
	size_t len;
	char *text = mv_prom_render(o, &len);

	ck_assert_ptr_nonnull(text);
	ck_assert_uint_eq(strlen(text), len);
	json_decref(o);
	return text;
}

/* The lines of text that start with prefix, in order, each ending in '\n'. */
static char *lines(const char *text, const char *prefix)
{
	size_t cap = strlen(text) + 1, n = 0, k;
	char *out = calloc(1, cap);
	const char *p, *e;

	ck_assert_ptr_nonnull(out);
	for (p = text; *p != '\0'; p = e + 1) {
		e = strchr(p, '\n');
		ck_assert_ptr_nonnull(e);
		k = (size_t)(e - p) + 1;
		if (strncmp(p, prefix, strlen(prefix)) == 0) {
			memcpy(out + n, p, k);
			n += k;
		}
	}
	return out;
}

START_TEST(test_session_series)
{
	char *text = render(sample()), *got;

	got = lines(text, "memvirt_launches_total");
	ck_assert_str_eq(got,
		"memvirt_launches_total{gpu=\"GPU-00112233-4455-6677-8899-aabbccddeeff\",gpu_index=\"0\","
		"job=\"train\",rank=\"0\"} 7\n"
		"memvirt_launches_total{gpu=\"GPU-00112233-4455-6677-8899-aabbccddeeff\",gpu_index=\"0\","
		"job=\"train\",rank=\"1\"} 15\n"
		"memvirt_launches_total{gpu=\"GPU-ffeeddcc-bbaa-9988-7766-554433221100\",gpu_index=\"\","
		"job=\"a\\\"b\\\\c?d\",rank=\"\"} 1\n");
	free(got);
	/* Nanoseconds are seconds; the sum of two processes' stalls is one series. */
	got = lines(text, "memvirt_stall_seconds_total{gpu=\"GPU-0011");
	ck_assert_str_eq(got,
		"memvirt_stall_seconds_total{gpu=\"GPU-00112233-4455-6677-8899-aabbccddeeff\",gpu_index=\"0\","
		"job=\"train\",rank=\"0\"} 0\n"
		"memvirt_stall_seconds_total{gpu=\"GPU-00112233-4455-6677-8899-aabbccddeeff\",gpu_index=\"0\","
		"job=\"train\",rank=\"1\"} 0.75\n");
	free(got);
	got = lines(text, "memvirt_budget_bytes{gpu=\"GPU-0011");
	ck_assert_str_eq(got,
		"memvirt_budget_bytes{gpu=\"GPU-00112233-4455-6677-8899-aabbccddeeff\",gpu_index=\"0\","
		"job=\"train\",rank=\"0\"} 1\n"
		"memvirt_budget_bytes{gpu=\"GPU-00112233-4455-6677-8899-aabbccddeeff\",gpu_index=\"0\","
		"job=\"train\",rank=\"1\"} 2199023255552\n");
	free(got);
	/* No label that changes with every run. */
	ck_assert_ptr_null(strstr(text, "pid="));
	ck_assert_ptr_null(strstr(text, "session="));
	free(text);
}
END_TEST

START_TEST(test_device_series)
{
	char *text = render(sample()), *got;

	got = lines(text, "memvirt_gpu_memory_total_bytes");
	ck_assert_str_eq(got,
		"memvirt_gpu_memory_total_bytes{gpu=\"GPU-00112233-4455-6677-8899-aabbccddeeff\","
		"gpu_index=\"0\"} 42949672960\n"
		"memvirt_gpu_memory_total_bytes{gpu=\"GPU-ffeeddcc-bbaa-9988-7766-554433221100\","
		"gpu_index=\"\"} 85899345920\n");
	free(got);
	got = lines(text, "memvirt_build_info");
	ck_assert_str_eq(got, "memvirt_build_info{version=\"1.2.3\"} 1\n");
	free(got);
	got = lines(text, "# TYPE memvirt_launches_total");
	ck_assert_str_eq(got, "# TYPE memvirt_launches_total counter\n");
	free(got);
	free(text);
}
END_TEST

/* An answer with nothing in it still names every metric, and no build_info without a version. */
START_TEST(test_empty)
{
	char *text = render(json_pack("{s:[], s:[]}", "sessions", "devices"));

	ck_assert_ptr_nonnull(strstr(text, "# TYPE memvirt_launches_total counter\n"));
	ck_assert_ptr_null(strstr(text, "memvirt_build_info"));
	ck_assert_ptr_null(strstr(text, "{"));
	free(text);
}
END_TEST

/* promtool, Prometheus's own linter, accepts the text. */
START_TEST(test_promtool)
{
	char *text = render(sample()), path[] = "/tmp/check_prom.XXXXXX", cmd[256];
	FILE *f;
	int fd, rc;

	/* scripts/setup installs it (Debian's prometheus package). */
	ck_assert_msg(system("command -v promtool >/dev/null 2>&1") == 0,
		      "promtool is not installed: apt-get install prometheus");
	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	f = fdopen(fd, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
	snprintf(cmd, sizeof(cmd), "promtool check metrics <%s", path);
	rc = system(cmd);
	unlink(path);
	free(text);
	ck_assert_int_eq(rc, 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("prom");
	TCase *tc = tcase_create("render");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_session_series);
	tcase_add_test(tc, test_device_series);
	tcase_add_test(tc, test_empty);
	tcase_add_test(tc, test_promtool);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
