/* The platform layer: everything the core does differently on POSIX sockets
 * and on Winsock 2, behind one set of names, so that the loops, the
 * connection state machine and the network steps are the same sources on
 * both (issue 15). Internal.
 *
 * Two implementations, one file each, and exactly one of them is compiled
 * (each file is guarded by _WIN32, as redis keeps one poller per file):
 *   platform_posix.c    Linux and other POSIX systems (pipes, fcntl, errno)
 *   platform_winsock.c  Windows through Winsock 2, built by mingw-w64 and run
 *                       under Wine here (WSAStartup, closesocket, ioctlsocket,
 *                       WSAGetLastError, WSAPoll, a loopback socket pair)
 * and the readiness backend of the event model beside them: poller_epoll.c
 * (POSIX) and poller_wsapoll.c (Winsock), both behind poller.h.
 *
 * Sockets are ints everywhere in the core. On POSIX a socket is a descriptor.
 * On Windows a SOCKET is a UINT_PTR handle, but 64-bit Windows keeps handle
 * values within 32 bits (so that 32-bit and 64-bit processes can share them),
 * so an int holds every SOCKET the system gives; INVALID_SOCKET (~0) becomes
 * -1, the POSIX failure value. The platform files convert at the boundary.
 *
 * Error codes: al_sock_error() is errno on POSIX and WSAGetLastError() (a
 * WSAE* value, 10000 and up) on Winsock; the core passes it on untouched and
 * al_error_text names it ("Address already in use (EADDRINUSE)" on POSIX,
 * "Address already in use (WSAEADDRINUSE)" on Winsock). The core's own errno
 * values (ENOMEM, EINVAL, ...) are named too on both.
 */
#ifndef AL_PLATFORM_H
#define AL_PLATFORM_H

#include <stddef.h>

#ifdef _WIN32
#include "platform_winsock.h"
#else
#include "platform_posix.h"
#endif

struct al_server;

/* First thing in main: stdout and stderr write "\n" as it is (binary mode on
 * Windows, where the CRT's text mode writes "\r\n"), and a write to a closed
 * pipe or a reset peer is an error, never the end of the server (SIGPIPE
 * ignored on POSIX, where the core also passes MSG_NOSIGNAL; Windows has no
 * SIGPIPE). Not for a host such as Python, which owns its signals. */
void al_platform_stdio(void);

/* Before any socket call: nothing on POSIX, WSAStartup(2.2) on Winsock.
 * Returns 0, or the error code (and al_error_text names it). */
int al_platform_start(void);
/* After the last socket call: nothing on POSIX, WSACleanup on Winsock. */
void al_platform_end(void);

/* The code of the last failed socket call: errno, or WSAGetLastError(). */
int al_sock_error(void);

/* A socket that child processes do not inherit (SOCK_CLOEXEC, or
 * WSA_FLAG_NO_HANDLE_INHERIT); -1 on failure. */
int al_sock_open(int family, int type, int protocol);

/* close(2), or closesocket. */
int al_sock_close(int fd);

/* O_NONBLOCK through fcntl, or FIONBIO through ioctlsocket. 0 or -1. */
int al_sock_nonblocking(int fd);

/* SO_REUSEPORT, for --workers (several listeners on one port, workers.c);
 * Winsock has no such option (it fails with WSAEOPNOTSUPP; the Winsock build
 * refuses --workers > 1 before, al_platform_refusal). 0 or -1. */
int al_sock_reuse_port(int fd);

/* What a listener sets so that a restart binds at once and nobody else
 * can bind its port: SO_REUSEADDR on POSIX (which never lets a second
 * listener share the port), SO_EXCLUSIVEADDRUSE on Winsock (where
 * SO_REUSEADDR would let another socket take the port over). 0 or -1. */
int al_sock_listener_options(int fd);

/* setsockopt with an int value (Winsock wants it as const char *). 0 or -1. */
int al_sock_setopt_int(int fd, int level, int name, int value);

/* accept: the new socket non-blocking and not inherited (accept4 on Linux;
 * accept, then FIONBIO, on Winsock). -1 on failure. */
int al_sock_accept(int listener, struct sockaddr *sa, socklen_t *len);

/* send without SIGPIPE (MSG_NOSIGNAL; Winsock raises no signal at all) and
 * recv: the byte count, or -1. */
ssize_t al_sock_send(int fd, const char *data, size_t len);
ssize_t al_sock_recv(int fd, char *buf, size_t len);

/* al_sock_send for the last bytes before our FIN: on Linux with MSG_MORE, so that the shutdown
 * that follows puts the FIN into the same segment (one packet for the client to take, not two);
 * on Winsock a plain send. */
ssize_t al_sock_send_last(int fd, const char *data, size_t len);

/* Our FIN: shutdown(SHUT_WR), or shutdown(SD_SEND). 0 or -1. */
int al_sock_shutdown_write(int fd);

/* Whether a failed send or recv only means "not now" (EAGAIN, EWOULDBLOCK,
 * EINTR; WSAEWOULDBLOCK, WSAEINTR). */
int al_sock_retry_later(int code);

/* accept errors that concern one connection only (try the next one at once),
 * and those that mean the process is out of something (pause, then retry). */
int al_accept_error_is_per_connection(int code);
int al_accept_error_is_resources(int code);

/* poll(2), or WSAPoll: the same struct pollfd, POLLIN and POLLOUT. Returns
 * what they return; a failure's code is in al_sock_error(). */
int al_poll(struct pollfd *pfds, nfds_t n, int timeout_ms);
/* Whether a failed al_poll was only interrupted (EINTR; never on Winsock). */
int al_poll_interrupted(int code);

/* The stop and wake-up channels: fds[0] becomes readable once al_pair_signal
 * wrote to fds[1]. A non-blocking pipe on POSIX; on Winsock, which polls
 * sockets only, a connected pair of TCP sockets on 127.0.0.1 (a listener on
 * port 0 that accepts its one connection and is closed at once). 0, or -1
 * with the code in al_sock_error(). */
int al_pair_open(int fds[2]);
/* Writes one byte (async-signal-safe on POSIX; errno and the last error
 * are kept). A full channel is a wake-up already pending. */
void al_pair_signal(int w, char byte);
/* Reads whatever is queued. */
void al_pair_drain(int r);
/* Closes one end (close, or closesocket). */
void al_pair_close(int fd);

/* "TEXT (NAME)" for an error code: errno values everywhere, and WSAE*
 * values on Winsock. */
void al_error_text(char *buf, size_t len, int code);

/* "TEXT (EAI_NAME)" for a getaddrinfo result; EAI_SYSTEM is the caller's. */
void al_gai_text(char *buf, size_t len, int code);
/* Nonzero when a getaddrinfo result means "look at errno" (EAI_SYSTEM). */
int al_gai_is_system(int code);

/* Whether text matches the contract's grammar pattern (protocol.toml
 * [grammar], AL_GRAMMAR_INT or AL_GRAMMAR_SECONDS), matched whole: POSIX
 * regcomp/regexec, or, where there is no <regex.h> (mingw), a matcher for
 * exactly those two patterns; any other pattern is refused. */
int al_grammar_match(const char *pattern, const char *text);

/* The standalone front end's graceful stop is acceptloop.h's al_server_stop_on_signals and
 * al_server_signals_release, and server.h's al_signals_install behind them: on POSIX they are
 * signals.c (sigaction: SIGTERM and SIGINT stop, SIGCHLD with children wakes); on Winsock,
 * which has no such signals, platform_winsock.c installs a console control handler instead
 * (CTRL_C, CTRL_BREAK, CTRL_CLOSE, CTRL_SHUTDOWN stop; signals.c is not built). */

/* The UTC calendar date and time of the second `epoch`: gmtime_r on POSIX; on
 * Winsock computed here, since the CRT's gmtime_s stops at the year 3000 and
 * the contract's daytime epochs go to 9999. 0, or -1 when it has no date. */
struct tm;
int al_utc_time(long long epoch, struct tm *out);

/* Fork, where there is one (POSIX); Winsock has no fork, so the fork
 * model's run is a failure there (the registry does not offer it). */
int al_platform_has_fork(void);

/* What of the contract this build does not offer, as the reason for its usage
 * line, or NULL where it does: AL_LACKS_WORKERS, --workers N > 1 (SO_REUSEPORT,
 * workers.c), and AL_LACKS_DATAGRAMS, --transport udp (datagram.c). NULL for
 * both on POSIX; on Winsock neither is built (platform_winsock.c says why).
 * The uring model needs no entry: its start-up fails as on a Linux kernel
 * without io_uring ("io_uring_setup ring: ... (ENOSYS)", exit 1). */
enum al_lack { AL_LACKS_WORKERS, AL_LACKS_DATAGRAMS };
const char *al_platform_refusal(enum al_lack what);

#endif /* AL_PLATFORM_H */
