/* The daemon's socket path, and whether a client may trust what listens there (paths.h). */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "protocol/paths.h"

int mv_system_socket_path(char *buf, size_t len)
{
	const char *env = getenv("MEMVIRT_SYSTEM_SOCKET");
	int n;

	if (env != NULL && env[0] != '\0')
		n = snprintf(buf, len, "%s", env);
	else
		n = snprintf(buf, len, "%s", MV_SYSTEM_SOCKET);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

int mv_user_socket_path(char *buf, size_t len)
{
	const char *env;
	int n;

	/* Root ignores XDG_RUNTIME_DIR: a root login has one (/run/user/0) while the system daemon
	 * does not, and both must agree on one socket. */
	if (getuid() == 0)
		return mv_system_socket_path(buf, len);
	if ((env = getenv("XDG_RUNTIME_DIR")) != NULL && env[0] != '\0')
		n = snprintf(buf, len, "%s/memvirt/memvirtd.sock", env);
	else
		n = snprintf(buf, len, "/tmp/memvirt-%u/memvirtd.sock", (unsigned)getuid());
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

int mv_socket_path(char *buf, size_t len)
{
	const char *env = getenv("MEMVIRT_SOCKET");
	int n;

	if (env == NULL || env[0] == '\0')
		return mv_user_socket_path(buf, len);
	n = snprintf(buf, len, "%s", env);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* The uids a client trusts to run its daemon: its own and root's. */
static int trusted_uid(uid_t uid)
{
	return uid == getuid() || uid == 0;
}

/* lstat never follows a link: a symlink in the socket's place, or in its directory's, is itself
 * what is checked (and refused). */
static int check_dir(const char *dir, char *why, size_t len)
{
	struct stat st;

	if (lstat(dir, &st) != 0) {
		int e = errno; /* snprintf may change errno */

		snprintf(why, len, "the socket's directory %s: %s", dir, strerror(e));
		return -e;
	}
	if (S_ISLNK(st.st_mode)) {
		snprintf(why, len, "the socket's directory %s is a symbolic link", dir);
		return -ELOOP;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(why, len, "the socket's directory %s is not a directory", dir);
		return -ENOTDIR;
	}
	if (!trusted_uid(st.st_uid)) {
		snprintf(why, len, "the socket's directory %s belongs to uid %u, not to this user or root", dir,
			 (unsigned)st.st_uid);
		return -EPERM;
	}
	/* A directory others may write lets them replace the socket, unless it is sticky (like
	 * /tmp): there only the socket's owner can, and the socket's own owner is checked. */
	if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0 && (st.st_mode & S_ISVTX) == 0) {
		snprintf(why, len, "the socket's directory %s is writable by other users (mode %04o)", dir,
			 (unsigned)(st.st_mode & 07777));
		return -EPERM;
	}
	return 0;
}

int mv_socket_trusted(const char *path, char *why, size_t len)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	struct stat st;
	int r;

	if (slash == NULL)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == path)
		snprintf(dir, sizeof(dir), "/");
	else if ((size_t)(slash - path) >= sizeof(dir))
		return -ENAMETOOLONG;
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	r = check_dir(dir, why, len);
	if (r != 0)
		return r;
	if (lstat(path, &st) != 0) {
		int e = errno; /* snprintf may change errno */

		/* No socket: nothing to trust or refuse yet. */
		snprintf(why, len, "%s: %s", path, strerror(e));
		return -e;
	}
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(why, len, "%s is not a socket", path);
		return -ENOTSOCK;
	}
	if (!trusted_uid(st.st_uid)) {
		snprintf(why, len, "the socket %s belongs to uid %u, not to this user or root", path,
			 (unsigned)st.st_uid);
		return -EPERM;
	}
	return 0;
}

int mv_peer_trusted(int fd, const char *path, char *why, size_t len)
{
	struct ucred cred;
	socklen_t n = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &n) != 0 || n != sizeof(cred)) {
		snprintf(why, len, "the peer on %s: SO_PEERCRED: %s", path, strerror(errno));
		return -EPERM;
	}
	if (!trusted_uid(cred.uid)) {
		snprintf(why, len, "the daemon on %s runs as uid %u (pid %d), not as this user or root", path,
			 (unsigned)cred.uid, (int)cred.pid);
		return -EPERM;
	}
	return 0;
}

int mv_socket_answers(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char why[PATH_MAX + 128];
	int fd, ok;

	if (strlen(path) >= sizeof(sa.sun_path) || mv_socket_trusted(path, why, sizeof(why)) != 0)
		return 0;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	/* Non-blocking: a daemon whose backlog is full does not hold up the job (a Unix connect then
	 * fails with EAGAIN) and counts as not answering. */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return 0;
	/* Nothing is sent: the daemon sees a connection that closes before its first frame. */
	ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	     mv_peer_trusted(fd, path, why, sizeof(why)) == 0;
	close(fd);
	return ok;
}

int mv_socket_discover(char *buf, size_t len)
{
	const char *env = getenv("MEMVIRT_SOCKET");
	int n;

	if (env != NULL && env[0] != '\0') {
		n = snprintf(buf, len, "%s", env);
		return n < 0 || (size_t)n >= len ? -1 : MV_FOUND_ENV;
	}
	if (mv_system_socket_path(buf, len) < 0)
		return -1;
	if (mv_socket_answers(buf))
		return MV_FOUND_SYSTEM;
	return mv_user_socket_path(buf, len) < 0 ? -1 : MV_FOUND_USER;
}
