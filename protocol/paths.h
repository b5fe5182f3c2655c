/* Where memvirtd listens, as every part of memvirt finds it. */
#ifndef MV_PATHS_H
#define MV_PATHS_H

#include <stddef.h>

/* The system daemon's socket, unless $MEMVIRT_SYSTEM_SOCKET names another. */
#define MV_SYSTEM_SOCKET "/run/memvirt/memvirtd.sock"

/* The rules by which every part of memvirt finds its daemon are written once, in memvirt(1),
 * DISCOVERY; these functions are them. Each returns -1 when the path does not fit in len. */

/* The system daemon's socket: $MEMVIRT_SYSTEM_SOCKET when set, else MV_SYSTEM_SOCKET. */
int mv_system_socket_path(char *buf, size_t len);

/* This user's own daemon's socket: $XDG_RUNTIME_DIR/memvirt/memvirtd.sock, else
 * /tmp/memvirt-UID/memvirtd.sock; for root, the system daemon's. Returns 0 or -1. */
int mv_user_socket_path(char *buf, size_t len);

/* Where memvirtd listens by default, and what a command given no socket stops or reloads:
 * $MEMVIRT_SOCKET when set, else mv_user_socket_path(). Returns 0 or -1. */
int mv_socket_path(char *buf, size_t len);

/* What mv_socket_discover found. */
enum mv_found {
	MV_FOUND_ENV = 1, /* $MEMVIRT_SOCKET, taken as it is */
	MV_FOUND_SYSTEM,  /* the system daemon, which answered */
	MV_FOUND_USER,    /* this user's own socket, whether or not a daemon answers there */
};

/* The daemon a job or a command uses: $MEMVIRT_SOCKET when set; else the system daemon's socket
 * when a daemon this user trusts answers there (mv_socket_answers); else this user's own socket.
 * Returns which (enum mv_found), or -1. */
int mv_socket_discover(char *buf, size_t len);

/* Whether a daemon this user trusts answers on path now: the socket passes mv_socket_trusted, a
 * connection is taken, and its peer passes mv_peer_trusted. Sends nothing. Returns 1 or 0. */
int mv_socket_answers(const char *path);

/* Whether a client of this user may connect to the socket at path: its directory is a real
 * directory (not a symbolic link) of this user or root that no other user can write (or a sticky
 * one, like /tmp), and the socket is a socket of this user or root. Nothing is followed. Returns 0,
 * or a negative errno with a sentence naming the path in why (-ENOENT: no socket there yet). */
int mv_socket_trusted(const char *path, char *why, size_t len);

/* Whether the process on the other end of the connected socket fd (at path) runs as this user or
 * root (SO_PEERCRED). Returns 0, or -EPERM with a sentence in why. */
int mv_peer_trusted(int fd, const char *path, char *why, size_t len);

#endif
