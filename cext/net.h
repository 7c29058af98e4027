/* The network steps of the C server (net.c), as the design names them. Internal:
 * the models, the server object and the standalone front end (main.c announces)
 * use them; a host sees only acceptloop.h. */
#ifndef AL_NET_H
#define AL_NET_H

#include <stddef.h>
#include <stdio.h>

#include "acceptloop.h"
#include "errors.h"
#include "pause.h"
#include "platform.h"

/* One address to listen on, as getaddrinfo gave it. */
struct al_address {
    int family, socktype, protocol;
    socklen_t len;
    struct sockaddr_storage addr;
};

/* Every address getaddrinfo(host, port, AF_UNSPEC, socktype (SOCK_STREAM, or
 * SOCK_DGRAM for --transport udp), AI_PASSIVE) gives, without repeats. Returns
 * their number (at least 1) and a malloc'd array in *out that the caller
 * frees, or AL_ERR with err filled. */
int al_resolve(struct al_error *err, const char *host, int port, int socktype, struct al_address **out);

/* One socket on one resolved address a (its port set to *port; with *port 0 the
 * kernel chooses, and *port gets its choice for the next ones): socket, options,
 * bind (and listen, for a listener). Returns the descriptor, or AL_ERR with err
 * filled and the socket closed. reuse_port: SO_REUSEPORT (--workers). */
typedef int (*al_open_one)(struct al_error *err, const struct al_config *cfg, struct al_address *a,
                           int v6only, int reuse_port, int *port);

/* What al_open_listeners and al_open_datagram_sockets share: resolve cfg->host
 * for socktype, then open_one on every address (one port for all of them; IPv6
 * sockets IPV6_V6ONLY when an IPv4 address is among them, or --ipv6-only).
 * Returns their number and a malloc'd array of descriptors in *fds, or AL_ERR
 * with err filled and every socket it opened closed. */
int al_open_each(struct al_error *err, const struct al_config *cfg, int socktype, al_open_one open_one,
                 int reuse_port, int **fds);

/* --transport udp (datagram.c): as al_open_listeners, with SOCK_DGRAM, no
 * SO_REUSEADDR and no listen: bound, non-blocking, close-on-exec sockets. */
int al_open_datagram_sockets(struct al_error *err, const struct al_config *cfg, int **fds);

/* A listening, non-blocking, close-on-exec socket for every address cfg->host
 * resolves to (design.md "Start-up"), with SO_REUSEPORT when reuse_port is
 * nonzero (--workers). Returns their number and a malloc'd array of
 * descriptors in *fds, or AL_ERR with err filled and every socket it opened
 * closed. */
int al_open_listeners(struct al_error *err, const struct al_config *cfg, int reuse_port, int **fds);

/* Prints "LISTENING <address> <port>" per listener, then "READY", to out and
 * flushes. Returns AL_OK, or AL_ERR with err filled when out fails. */
int al_announce(struct al_error *err, FILE *out, const int *fds, int count);

/* The next queued connection on a non-blocking listener: returns its
 * descriptor (non-blocking, close-on-exec, TCP_NODELAY) and writes its peer
 * ("127.0.0.1:5555", "[::1]:5555") to peer. Returns AL_ERR when there is none
 * to take now; err->message is then "" or, when the failure deserves a log
 * line (a pause begins, or an unexpected error), that line. */
int al_accept_client(struct al_error *err, int listener, struct al_pause *pause,
                     char *peer, size_t peerlen);

/* al_accept_client's two halves, for a loop that accepts elsewhere (uring: the
 * ring's multishot accept). al_accept_failed takes accept's errno: it begins
 * or lengthens the pause where the process is out of something and fills err
 * like al_accept_client; always AL_ERR. al_accepted sets up an accepted socket
 * (the pause ends, TCP_NODELAY) and writes its peer. */
int al_accept_failed(struct al_error *err, int listener, struct al_pause *pause, int code);
void al_accepted(int fd, const struct sockaddr *peer_addr, struct al_pause *pause, char *peer, size_t peerlen);

/* "127.0.0.1:7" or "[::1]:7". */
void al_format_address(char *buf, size_t len, const char *host, int port);

/* The numeric host (no brackets) and the port of a socket address; AL_OK or AL_ERR. */
int al_sockaddr_host(const struct sockaddr *sa, char *host, size_t len, int *port);

/* "ADDRESS:PORT" of a socket address (the host "?" where it cannot be read), for error
 * and log lines: al_format_address of al_sockaddr_host. */
void al_describe_sockaddr(char *buf, size_t len, const struct sockaddr *sa);

/* Sets the port of an AF_INET or AF_INET6 address (any other family is left as it is). */
void al_set_port(struct sockaddr_storage *ss, int port);

/* The port the bound socket fd has (the kernel's choice after a bind to port 0), into
 * *port. AL_OK, or AL_ERR with err filled ("getsockname" at where). */
int al_bound_port(struct al_error *err, int fd, const char *where, int *port);

#endif /* AL_NET_H */
