/* Where memvirtd listens, as every part of memvirt finds it. */
#ifndef MV_PATHS_H
#define MV_PATHS_H

#include <stddef.h>

/* The daemon's socket path: $MEMVIRT_SOCKET when set; else $XDG_RUNTIME_DIR/memvirt/memvirtd.sock
 * for a user, /run/memvirt/memvirtd.sock for root (or a user without XDG_RUNTIME_DIR:
 * /tmp/memvirt-UID/memvirtd.sock). Returns 0, or -1 when it does not fit in len. */
int mv_socket_path(char *buf, size_t len);

#endif
