/* Finding the daemon (protocol/paths.c, memvirt(1) DISCOVERY): the system socket, the rules' order,
 * and what counts as answering. */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "protocol/paths.h"

/* A fresh 0700 directory of this user, for sockets. */
static void scratch(char *dir, size_t len)
{
	snprintf(dir, len, "/tmp/mv-discover.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
}

/* A socket bound at path; listening when listening, else closed at once, leaving a stale file. */
static int bound(const char *path, int listening)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	ck_assert_int_ge(fd, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	if (listening) {
		ck_assert_int_eq(listen(fd, 4), 0);
		return fd;
	}
	close(fd);
	return -1;
}

START_TEST(test_system_path)
{
	char buf[256];

	unsetenv("MEMVIRT_SYSTEM_SOCKET");
	ck_assert_int_eq(mv_system_socket_path(buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, MV_SYSTEM_SOCKET);
	ck_assert_str_eq(buf, "/run/memvirt/memvirtd.sock");
	setenv("MEMVIRT_SYSTEM_SOCKET", "/srv/mv/system.sock", 1);
	ck_assert_int_eq(mv_system_socket_path(buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "/srv/mv/system.sock");
	/* An empty setting counts as none. */
	setenv("MEMVIRT_SYSTEM_SOCKET", "", 1);
	ck_assert_int_eq(mv_system_socket_path(buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, MV_SYSTEM_SOCKET);
	ck_assert_int_eq(mv_system_socket_path(buf, 5), -1);
}
END_TEST

/* Root's own socket is the system daemon's, wherever that is. */
START_TEST(test_root_is_system)
{
	char buf[256];

	if (getuid() != 0)
		return;
	setenv("MEMVIRT_SYSTEM_SOCKET", "/srv/mv/system.sock", 1);
	setenv("XDG_RUNTIME_DIR", "/run/user/0", 1);
	ck_assert_int_eq(mv_user_socket_path(buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "/srv/mv/system.sock");
}
END_TEST

/* MEMVIRT_SOCKET wins, as it is, with nothing probed. */
START_TEST(test_env_first)
{
	char dir[64], sys[128], buf[256];
	int fd;

	scratch(dir, sizeof(dir));
	snprintf(sys, sizeof(sys), "%s/system.sock", dir);
	fd = bound(sys, 1);
	setenv("MEMVIRT_SYSTEM_SOCKET", sys, 1);
	setenv("MEMVIRT_SOCKET", "/nowhere/mv.sock", 1);
	ck_assert_int_eq(mv_socket_discover(buf, sizeof(buf)), MV_FOUND_ENV);
	ck_assert_str_eq(buf, "/nowhere/mv.sock");
	close(fd);
	unlink(sys);
	rmdir(dir);
}
END_TEST

/* A system daemon that answers is found; a stale socket file, or none, leaves the user's own. */
START_TEST(test_system_then_user)
{
	char dir[64], sys[128], buf[256], user[256];
	int fd;

	scratch(dir, sizeof(dir));
	snprintf(sys, sizeof(sys), "%s/system.sock", dir);
	unsetenv("MEMVIRT_SOCKET");
	setenv("XDG_RUNTIME_DIR", dir, 1);
	setenv("MEMVIRT_SYSTEM_SOCKET", sys, 1);
	ck_assert_int_eq(mv_user_socket_path(user, sizeof(user)), 0);

	ck_assert_int_eq(mv_socket_answers(sys), 0);
	ck_assert_int_eq(mv_socket_discover(buf, sizeof(buf)), MV_FOUND_USER);
	ck_assert_str_eq(buf, user);

	bound(sys, 0);
	ck_assert_int_eq(mv_socket_answers(sys), 0);
	ck_assert_int_eq(mv_socket_discover(buf, sizeof(buf)), MV_FOUND_USER);
	ck_assert_str_eq(buf, user);
	unlink(sys);

	fd = bound(sys, 1);
	ck_assert_int_eq(mv_socket_answers(sys), 1);
	ck_assert_int_eq(mv_socket_discover(buf, sizeof(buf)), MV_FOUND_SYSTEM);
	ck_assert_str_eq(buf, sys);
	close(fd);
	unlink(sys);
	rmdir(dir);
}
END_TEST

/* A daemon answering where others may replace it is not answering for this user. */
START_TEST(test_untrusted_directory)
{
	char dir[64], sys[128], buf[256];
	int fd;

	scratch(dir, sizeof(dir));
	snprintf(sys, sizeof(sys), "%s/system.sock", dir);
	fd = bound(sys, 1);
	ck_assert_int_eq(chmod(dir, 0777), 0);
	unsetenv("MEMVIRT_SOCKET");
	setenv("MEMVIRT_SYSTEM_SOCKET", sys, 1);
	ck_assert_int_eq(mv_socket_answers(sys), 0);
	ck_assert_int_eq(mv_socket_discover(buf, sizeof(buf)), MV_FOUND_USER);
	close(fd);
	unlink(sys);
	rmdir(dir);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("discover");
	TCase *tc = tcase_create("discover");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_system_path);
	tcase_add_test(tc, test_root_is_system);
	tcase_add_test(tc, test_env_first);
	tcase_add_test(tc, test_system_then_user);
	tcase_add_test(tc, test_untrusted_directory);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
