/* The platform layer on POSIX (see platform.h): descriptors, errno, pipes,
 * fcntl, poll. Compiled everywhere but Windows. The stop signals
 * (sigaction) are signals.c's, POSIX only too. */
#ifndef _WIN32

#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "acceptloop.h"
#include "platform.h"

void al_platform_stdio(void)
{
    /* POSIX streams write bytes as they are. A write to a reset peer must be an error, never
     * the end of the server; the core also passes MSG_NOSIGNAL, this covers stdout and stderr. */
    signal(SIGPIPE, SIG_IGN);
}

/* posix step: start-up */
int al_platform_start(void)
{
    return 0;   /* POSIX sockets need no start-up */
}

void al_platform_end(void)
{
}
/* end posix step */

/* posix step: last error */
int al_sock_error(void)
{
    return errno;   /* every socket call sets errno; al_error_text names it (strerrorname_np) */
}

void al_error_text(char *buf, size_t len, int code)
{
    /* strerrordesc_np and strerrorname_np (glibc 2.32) return constant
     * strings, so unlike strerror they are safe from threads and children. */
    const char *text = strerrordesc_np(code);
    const char *name = strerrorname_np(code);
    char text_buf[32], name_buf[32];
    if (text == NULL) {
        snprintf(text_buf, sizeof text_buf, "Unknown error %d", code);
        text = text_buf;
    }
    if (name == NULL) {
        snprintf(name_buf, sizeof name_buf, "errno %d", code);
        name = name_buf;
    }
    snprintf(buf, len, "%s (%s)", text, name);
}
/* end posix step */

/* posix step: socket and close */
int al_sock_open(int family, int type, int protocol)
{
    /* Close-on-exec: inside Python a subprocess must not inherit the listener. */
    return socket(family, type | SOCK_CLOEXEC, protocol);
}

int al_sock_close(int fd)
{
    return close(fd);
}
/* end posix step */

/* posix step: non-blocking */
int al_sock_nonblocking(int fd)
{
    int flags = fcntl(fd, F_GETFL);
    return flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 ? -1 : 0;
}
/* end posix step */

/* posix step: listener options */
int al_sock_listener_options(int fd)
{
    /* A restart binds at once despite connections in TIME_WAIT; a second
     * live listener on the port is still refused (EADDRINUSE). */
    return al_sock_setopt_int(fd, SOL_SOCKET, SO_REUSEADDR, 1);
}
/* end posix step */

int al_sock_reuse_port(int fd)
{
    /* Every worker's listener on the one port; the kernel spreads the connections. */
    return al_sock_setopt_int(fd, SOL_SOCKET, SO_REUSEPORT, 1);
}

int al_sock_setopt_int(int fd, int level, int name, int value)
{
    return setsockopt(fd, level, name, &value, sizeof value);
}

/* posix step: accept4 or accept */
int al_sock_accept(int listener, struct sockaddr *sa, socklen_t *len)
{
    /* accept4 makes the socket non-blocking and close-on-exec in the same call. */
    return accept4(listener, sa, len, SOCK_NONBLOCK | SOCK_CLOEXEC);
}
/* end posix step */

/* posix step: send */
ssize_t al_sock_send(int fd, const char *data, size_t len)
{
    /* MSG_NOSIGNAL: a reset peer gives EPIPE/ECONNRESET here, never SIGPIPE. */
    return send(fd, data, len, MSG_NOSIGNAL);
}
/* end posix step */

ssize_t al_sock_send_last(int fd, const char *data, size_t len)
{
    /* MSG_MORE holds a short segment back; the shutdown that follows sends it with the FIN. */
    return send(fd, data, len, MSG_NOSIGNAL | MSG_MORE);
}

ssize_t al_sock_recv(int fd, char *buf, size_t len)
{
    return recv(fd, buf, len, 0);
}

/* posix step: shutdown */
int al_sock_shutdown_write(int fd)
{
    return shutdown(fd, SHUT_WR);
}
/* end posix step */

int al_sock_retry_later(int code)
{
    return code == EAGAIN || code == EWOULDBLOCK || code == EINTR;
}

/* accept(2) errors that concern one connection only: try again at once (accept(2), NOTES). */
int al_accept_error_is_per_connection(int code)
{
    switch (code) {
    case EAGAIN:
#if EWOULDBLOCK != EAGAIN
    case EWOULDBLOCK:
#endif
    case EINTR: case ECONNABORTED: case EPROTO: case ECONNRESET: case EPERM:
    case ENETDOWN: case ENOPROTOOPT: case EHOSTDOWN: case ENONET:
    case EHOSTUNREACH: case EOPNOTSUPP: case ENETUNREACH:
        return 1;
    default:
        return 0;
    }
}

/* accept(2) errors that mean the process is out of something: pause, then retry. */
int al_accept_error_is_resources(int code)
{
    return code == EMFILE || code == ENFILE || code == ENOBUFS || code == ENOMEM;
}

/* posix step: readiness */
int al_poll(struct pollfd *pfds, nfds_t n, int timeout_ms)
{
    return poll(pfds, n, timeout_ms);   /* any descriptor: sockets and the stop pipe alike */
}

int al_poll_interrupted(int code)
{
    return code == EINTR;   /* a signal: the caller looks at the stop flag first */
}
/* end posix step */

/* posix step: wake-up pair */
int al_pair_open(int fds[2])
{
    return pipe2(fds, O_NONBLOCK | O_CLOEXEC);
}

void al_pair_signal(int w, char byte)
{
    int saved = errno;
    ssize_t n = write(w, &byte, 1);
    (void)n;   /* full means a wake-up is pending already, which is all we want */
    errno = saved;
}
/* end posix step */

void al_pair_drain(int r)
{
    char sink[64];
    while (read(r, sink, sizeof sink) > 0)
        ;
}

void al_pair_close(int fd)
{
    close(fd);
}

/* getaddrinfo's codes have no strerrorname_np; these are glibc's, named as
 * Python's socket module names them, so both ports print the same line. */
static const struct {
    int code;
    const char *name;
} gai_names[] = {
    { EAI_BADFLAGS, "EAI_BADFLAGS" },     { EAI_NONAME, "EAI_NONAME" },
    { EAI_AGAIN, "EAI_AGAIN" },           { EAI_FAIL, "EAI_FAIL" },
    { EAI_FAMILY, "EAI_FAMILY" },         { EAI_SOCKTYPE, "EAI_SOCKTYPE" },
    { EAI_SERVICE, "EAI_SERVICE" },       { EAI_MEMORY, "EAI_MEMORY" },
    { EAI_SYSTEM, "EAI_SYSTEM" },         { EAI_OVERFLOW, "EAI_OVERFLOW" },
    { EAI_NODATA, "EAI_NODATA" },         { EAI_ADDRFAMILY, "EAI_ADDRFAMILY" },
    { EAI_INPROGRESS, "EAI_INPROGRESS" }, { EAI_CANCELED, "EAI_CANCELED" },
    { EAI_NOTCANCELED, "EAI_NOTCANCELED" }, { EAI_ALLDONE, "EAI_ALLDONE" },
    { EAI_INTR, "EAI_INTR" },             { EAI_IDN_ENCODE, "EAI_IDN_ENCODE" },
};

void al_gai_text(char *buf, size_t len, int code)
{
    for (size_t i = 0; i < sizeof gai_names / sizeof gai_names[0]; i++) {
        if (gai_names[i].code == code) {
            snprintf(buf, len, "%s (%s)", gai_strerror(code), gai_names[i].name);
            return;
        }
    }
    snprintf(buf, len, "%s (EAI_%d)", gai_strerror(code), code);
}

int al_gai_is_system(int code)
{
    return code == EAI_SYSTEM;
}

int al_grammar_match(const char *pattern, const char *text)
{
    regex_t re;
    if (regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB) != 0)
        return 0;   /* cannot happen for the generated patterns; refusing is the safe answer */
    int match = regexec(&re, text, 0, NULL, 0) == 0;
    regfree(&re);
    return match;
}

int al_utc_time(long long epoch, struct tm *out)
{
    time_t t = (time_t)epoch;
    return gmtime_r(&t, out) != NULL ? 0 : -1;
}

int al_platform_has_fork(void)
{
    return 1;
}

const char *al_platform_refusal(enum al_lack what)
{
    (void)what;
    return NULL;   /* POSIX builds workers.c and datagram.c */
}

#endif /* !_WIN32 */
