/* The daemon's socket path (paths.h). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "protocol/paths.h"

int mv_socket_path(char *buf, size_t len)
{
	const char *env;
	int n;

	env = getenv("MEMVIRT_SOCKET");
	if (env != NULL && env[0] != '\0') {
		n = snprintf(buf, len, "%s", env);
	} else if (getuid() == 0) {
		/* Root ignores XDG_RUNTIME_DIR: a root login has one (/run/user/0) while the system
		 * daemon does not, and both must agree on one socket. */
		n = snprintf(buf, len, "/run/memvirt/memvirtd.sock");
	} else if ((env = getenv("XDG_RUNTIME_DIR")) != NULL && env[0] != '\0') {
		n = snprintf(buf, len, "%s/memvirt/memvirtd.sock", env);
	} else {
		n = snprintf(buf, len, "/tmp/memvirt-%u/memvirtd.sock", (unsigned)getuid());
	}
	if (n < 0 || (size_t)n >= len)
		return -1;
	return 0;
}
