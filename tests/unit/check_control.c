/* JSON control messages (protocol/control.c) and the daemon's socket path (protocol/paths.c). */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "protocol/control.h"
#include "protocol/frame.h"
#include "protocol/paths.h"

/* Parses a C string as a payload; the error text goes to err. */
static json_t *parse_str(const char *s, char *err, size_t errlen)
{
	return mv_control_parse((const uint8_t *)s, strlen(s), err, errlen);
}

/* Encodes obj, checks the frame around it and returns a new reference to the object parsed back. */
static json_t *through_frame(uint16_t type, const json_t *obj, char *text, size_t textlen)
{
	uint8_t *out = NULL;
	size_t len = 0;
	struct mv_frame f;
	char err[256] = "";
	json_t *back;

	ck_assert_int_eq(mv_control_encode(type, obj, &out, &len), 0);
	ck_assert_ptr_nonnull(out);
	ck_assert_uint_gt(len, MV_FRAME_HEADER);
	ck_assert_int_eq(mv_frame_decode(out, len, &f), (ssize_t)len);
	ck_assert_uint_eq(f.type, type);
	ck_assert_uint_eq(f.length, len - MV_FRAME_HEADER);
	if (text != NULL) {
		ck_assert_uint_lt(f.length, textlen);
		memcpy(text, f.payload, f.length);
		text[f.length] = '\0';
	}
	back = mv_control_parse(f.payload, f.length, err, sizeof(err));
	ck_assert_msg(back != NULL, "encoded payload does not parse: %s", err);
	free(out);
	return back;
}

START_TEST(test_roundtrip)
{
	char text[256];
	json_t *req = json_pack("{s:s}", "cmd", "status");
	json_t *resp = json_pack("{s:b, s:s, s:I, s:I, s:n}", "ok", 1, "version", "0.1", "pid", (json_int_t)4242,
				 "uptime_s", (json_int_t)1 << 40, "config");
	json_t *back;

	ck_assert_ptr_nonnull(req);
	ck_assert_ptr_nonnull(resp);
	back = through_frame(MV_MSG_REQUEST, req, text, sizeof(text));
	/* Compact: no whitespace at all. */
	ck_assert_str_eq(text, "{\"cmd\":\"status\"}");
	ck_assert(json_equal(back, req));
	ck_assert_str_eq(mv_control_cmd(back), "status");
	json_decref(back);

	back = through_frame(MV_MSG_RESPONSE, resp, text, sizeof(text));
	ck_assert_ptr_null(strchr(text, ' '));
	ck_assert_ptr_null(strchr(text, '\n'));
	ck_assert(json_equal(back, resp));
	ck_assert_int_eq(json_integer_value(json_object_get(back, "uptime_s")), (json_int_t)1 << 40);
	ck_assert(json_is_null(json_object_get(back, "config")));
	json_decref(back);
	json_decref(req);
	json_decref(resp);
}
END_TEST

START_TEST(test_nested)
{
	static const char doc[] =
		"{\"ok\": true, \"sessions\": [{\"session\": 1, \"job\": \"train\", \"device\": \"ab01\"},"
		" {\"session\": 2, \"job\": \"caf\\u00e9\", \"stats\": {\"page_ins\": [1, 2, {\"x\": null}]}}],"
		" \"devices\": []}";
	char err[256] = "";
	json_t *obj = parse_str(doc, err, sizeof(err)), *back, *s;

	ck_assert_msg(obj != NULL, "%s", err);
	s = json_array_get(json_object_get(obj, "sessions"), 1);
	ck_assert_str_eq(json_string_value(json_object_get(s, "job")), "caf\xc3\xa9");
	ck_assert(json_is_null(json_object_get(
		json_array_get(json_object_get(json_object_get(s, "stats"), "page_ins"), 2), "x")));
	ck_assert_uint_eq(json_array_size(json_object_get(obj, "devices")), 0);

	back = through_frame(MV_MSG_RESPONSE, obj, NULL, 0);
	ck_assert(json_equal(back, obj));
	json_decref(back);
	json_decref(obj);
}
END_TEST

START_TEST(test_not_json)
{
	static const char *bad[] = {"{cmd: status}", "not json", "{\"cmd\":", "{\"cmd\":\"status\"", "{}x",
				    "{\"a\":1,}", "\xff\xfe{}"};
	char err[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		strcpy(err, "untouched");
		ck_assert_msg(parse_str(bad[i], err, sizeof(err)) == NULL, "accepted %s", bad[i]);
		/* Where jansson stopped, then what it found. */
		ck_assert_msg(strncmp(err, "line 1 column ", 14) == 0, "%s: error \"%s\"", bad[i], err);
		ck_assert_msg(strlen(err) > 20, "%s: error \"%s\" says nothing", bad[i], err);
	}
	/* A NUL inside the payload. */
	strcpy(err, "untouched");
	ck_assert_ptr_null(mv_control_parse((const uint8_t *)"{}\0", 3, err, sizeof(err)));
	ck_assert_str_ne(err, "untouched");
}
END_TEST

START_TEST(test_not_an_object)
{
	static const char *bad[] = {"[]", "[{\"cmd\":\"status\"}]", "\"status\"", "42", "true", "null"};
	char err[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		strcpy(err, "untouched");
		ck_assert_msg(parse_str(bad[i], err, sizeof(err)) == NULL, "accepted %s", bad[i]);
		ck_assert_str_eq(err, "not a JSON object");
	}
}
END_TEST

START_TEST(test_empty_payload)
{
	char err[256] = "untouched";

	ck_assert_ptr_null(mv_control_parse((const uint8_t *)"", 0, err, sizeof(err)));
	ck_assert_str_eq(err, "empty payload");
	strcpy(err, "untouched");
	ck_assert_ptr_null(mv_control_parse(NULL, 0, err, sizeof(err)));
	ck_assert_str_eq(err, "empty payload");
	strcpy(err, "untouched");
	ck_assert_ptr_null(parse_str("   ", err, sizeof(err)));
	ck_assert_str_ne(err, "untouched");
}
END_TEST

START_TEST(test_parse_bounds)
{
	char err[8];
	json_t *obj;

	/* Only len bytes are read: what follows the payload in the buffer is not part of it. */
	obj = mv_control_parse((const uint8_t *)"{\"a\":1}garbage", 7, NULL, 0);
	ck_assert_ptr_nonnull(obj);
	ck_assert_int_eq(json_integer_value(json_object_get(obj, "a")), 1);
	json_decref(obj);

	/* A short error buffer is cut and terminated; none at all is allowed. */
	memset(err, 'z', sizeof(err));
	ck_assert_ptr_null(parse_str("[1]", err, sizeof(err)));
	ck_assert_str_eq(err, "not a J");
	ck_assert_ptr_null(parse_str("nope", NULL, 0));
	memset(err, 'z', sizeof(err));
	ck_assert_ptr_null(parse_str("nope", err, 0));
	ck_assert_uint_eq(err[0], 'z');

	/* Duplicate keys would make a request mean two things. */
	ck_assert_ptr_null(parse_str("{\"cmd\":\"stop\",\"cmd\":\"status\"}", NULL, 0));
}
END_TEST

/* {"k":"xxx..."} with a payload of exactly size bytes. */
static json_t *object_of_size(size_t size)
{
	size_t n = size - 8; /* {"k":""} */
	char *s = malloc(n + 1);
	json_t *obj;

	ck_assert_ptr_nonnull(s);
	memset(s, 'x', n);
	s[n] = '\0';
	obj = json_pack("{s:s}", "k", s);
	free(s);
	ck_assert_ptr_nonnull(obj);
	return obj;
}

START_TEST(test_too_large)
{
	uint8_t *out = (uint8_t *)"sentinel";
	size_t len = 12345;
	json_t *obj;

	/* The largest payload a frame carries. */
	obj = object_of_size(MV_FRAME_MAX);
	ck_assert_int_eq(mv_control_encode(MV_MSG_RESPONSE, obj, &out, &len), 0);
	ck_assert_uint_eq(len, MV_FRAME_HEADER + MV_FRAME_MAX);
	ck_assert_uint_eq(mv_get_u32(out + 8), MV_FRAME_MAX);
	free(out);
	json_decref(obj);

	/* One byte more. */
	out = (uint8_t *)"sentinel";
	len = 12345;
	obj = object_of_size(MV_FRAME_MAX + 1);
	ck_assert_int_eq(mv_control_encode(MV_MSG_RESPONSE, obj, &out, &len), -1);
	ck_assert_str_eq((const char *)out, "sentinel");
	ck_assert_uint_eq(len, 12345);
	json_decref(obj);

	obj = object_of_size(3 * MV_FRAME_MAX);
	ck_assert_int_eq(mv_control_encode(MV_MSG_REQUEST, obj, &out, &len), -1);
	json_decref(obj);

	/* Nothing to encode. */
	ck_assert_int_eq(mv_control_encode(MV_MSG_REQUEST, NULL, &out, &len), -1);
}
END_TEST

START_TEST(test_cmd)
{
	json_t *o;

	o = json_pack("{s:s, s:i}", "cmd", "config.reload", "x", 1);
	ck_assert_str_eq(mv_control_cmd(o), "config.reload");
	json_decref(o);
	o = json_pack("{s:s}", "command", "stop");
	ck_assert_ptr_null(mv_control_cmd(o));
	json_decref(o);
	o = json_pack("{s:i}", "cmd", 5);
	ck_assert_ptr_null(mv_control_cmd(o));
	json_decref(o);
	o = json_pack("{s:n}", "cmd");
	ck_assert_ptr_null(mv_control_cmd(o));
	json_decref(o);
	o = json_pack("{s:[s]}", "cmd", "stop");
	ck_assert_ptr_null(mv_control_cmd(o));
	json_decref(o);
	o = json_pack("[s]", "cmd");
	ck_assert_ptr_null(mv_control_cmd(o));
	json_decref(o);
	ck_assert_ptr_null(mv_control_cmd(NULL));
}
END_TEST

START_TEST(test_socket_env_override)
{
	char buf[256];

	setenv("MEMVIRT_SOCKET", "/srv/test/mv.sock", 1);
	setenv("XDG_RUNTIME_DIR", "/run/user/1000", 1);
	memset(buf, 'z', sizeof(buf));
	ck_assert_int_eq(mv_socket_path(buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "/srv/test/mv.sock");

	/* An empty setting counts as none. */
	setenv("MEMVIRT_SOCKET", "", 1);
	ck_assert_int_eq(mv_socket_path(buf, sizeof(buf)), 0);
	ck_assert_str_ne(buf, "");
	ck_assert_str_ne(buf, "/srv/test/mv.sock");
}
END_TEST

START_TEST(test_socket_root)
{
	char buf[256];

	if (getuid() != 0)
		return; /* only root takes this branch; test_socket_user covers the others */
	unsetenv("MEMVIRT_SOCKET");
	unsetenv("XDG_RUNTIME_DIR");
	ck_assert_int_eq(mv_socket_path(buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "/run/memvirt/memvirtd.sock");
	/* A root login's XDG_RUNTIME_DIR does not move root's socket away from the system daemon's. */
	setenv("XDG_RUNTIME_DIR", "/run/user/0", 1);
	ck_assert_int_eq(mv_socket_path(buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "/run/memvirt/memvirtd.sock");
}
END_TEST

/* The user branches, checked without Check in whatever process runs them. Returns 0, or the number of
 * the check that failed. */
static int user_paths(void)
{
	char buf[256], want[64];

	unsetenv("MEMVIRT_SOCKET");
	setenv("XDG_RUNTIME_DIR", "/run/user/4321", 1);
	if (mv_socket_path(buf, sizeof(buf)) != 0)
		return 1;
	if (strcmp(buf, "/run/user/4321/memvirt/memvirtd.sock") != 0)
		return 2;
	unsetenv("XDG_RUNTIME_DIR");
	snprintf(want, sizeof(want), "/tmp/memvirt-%u/memvirtd.sock", (unsigned)getuid());
	if (mv_socket_path(buf, sizeof(buf)) != 0)
		return 3;
	if (strcmp(buf, want) != 0)
		return 4;
	setenv("XDG_RUNTIME_DIR", "", 1);
	if (mv_socket_path(buf, sizeof(buf)) != 0 || strcmp(buf, want) != 0)
		return 5;
	setenv("MEMVIRT_SOCKET", "/x.sock", 1);
	if (mv_socket_path(buf, sizeof(buf)) != 0 || strcmp(buf, "/x.sock") != 0)
		return 6;
	return 0;
}

START_TEST(test_socket_user)
{
	pid_t pid;
	int status = 0;

	if (getuid() != 0) {
		ck_assert_int_eq(user_paths(), 0);
		return;
	}
	/* As root, a child takes the user branches as nobody. */
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		if (setgid(65534) != 0 || setuid(65534) != 0 || getuid() != 65534)
			_exit(100);
		_exit(user_paths());
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_msg(WEXITSTATUS(status) == 0, "user path check %d failed", WEXITSTATUS(status));
}
END_TEST

START_TEST(test_socket_truncation)
{
	char buf[256], big[300];
	size_t n;

	setenv("MEMVIRT_SOCKET", "/srv/test/mv.sock", 1);
	n = strlen("/srv/test/mv.sock");
	ck_assert_int_eq(mv_socket_path(buf, n + 1), 0);
	ck_assert_str_eq(buf, "/srv/test/mv.sock");
	ck_assert_int_eq(mv_socket_path(buf, n), -1);
	ck_assert_int_eq(mv_socket_path(buf, 1), -1);
	ck_assert_int_eq(mv_socket_path(NULL, 0), -1);

	/* Longer than a Unix socket address holds. */
	memset(big, 'a', sizeof(big) - 1);
	big[0] = '/';
	big[sizeof(big) - 1] = '\0';
	setenv("MEMVIRT_SOCKET", big, 1);
	ck_assert_int_eq(mv_socket_path(buf, 108), -1);
	ck_assert_int_eq(mv_socket_path(buf, sizeof(buf)), -1);

	/* The built-in paths too. */
	unsetenv("MEMVIRT_SOCKET");
	ck_assert_int_eq(mv_socket_path(buf, sizeof(buf)), 0);
	n = strlen(buf);
	ck_assert_int_eq(mv_socket_path(buf, n + 1), 0);
	ck_assert_int_eq(mv_socket_path(buf, n), -1);
}
END_TEST

static Suite *control_suite(void)
{
	Suite *s = suite_create("control");
	TCase *tc;

	tc = tcase_create("json");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_roundtrip);
	tcase_add_test(tc, test_nested);
	tcase_add_test(tc, test_not_json);
	tcase_add_test(tc, test_not_an_object);
	tcase_add_test(tc, test_empty_payload);
	tcase_add_test(tc, test_parse_bounds);
	tcase_add_test(tc, test_too_large);
	tcase_add_test(tc, test_cmd);
	suite_add_tcase(s, tc);

	tc = tcase_create("paths");
	tcase_add_test(tc, test_socket_env_override);
	tcase_add_test(tc, test_socket_root);
	tcase_add_test(tc, test_socket_user);
	tcase_add_test(tc, test_socket_truncation);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(control_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
