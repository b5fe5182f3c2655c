/* Where memvirtd listens, as every part of memvirt finds it. */
#ifndef MV_PATHS_H
#define MV_PATHS_H

#include <stddef.h>

/* The daemon's socket path: $MEMVIRT_SOCKET when set; else $XDG_RUNTIME_DIR/memvirt/memvirtd.sock
 * for a user, /run/memvirt/memvirtd.sock for root (or a user without XDG_RUNTIME_DIR:
 * /tmp/memvirt-UID/memvirtd.sock). Returns 0, or -1 when it does not fit in len. */
int mv_socket_path(char *buf, size_t len);

/* Whether a client of this user may connect to the socket at path: its directory is a real
 * directory (not a symbolic link) of this user or root that no other user can write (or a sticky
 * one, like /tmp), and the socket is a socket of this user or root. Nothing is followed. Returns 0,
 * or a negative errno with a sentence naming the path in why (-ENOENT: no socket there yet). */
int mv_socket_trusted(const char *path, char *why, size_t len);

/* Whether the process on the other end of the connected socket fd (at path) runs as this user or
 * root (SO_PEERCRED). Returns 0, or -EPERM with a sentence in why. */
int mv_peer_trusted(int fd, const char *path, char *why, size_t len);

#endif
