/* The platform layer on Windows through Winsock 2 (see platform.h), built
 * with mingw-w64 and run here under Wine. Compiled only for _WIN32.
 *
 * What differs from POSIX, step by step:
 *   start-up     WSAStartup(2.2) before any socket call, WSACleanup after
 *   sockets      SOCKET handles (kept in an int, see platform.h), closed with
 *                closesocket; INVALID_SOCKET and SOCKET_ERROR for failures
 *   errors       WSAGetLastError(), WSAE* codes, never errno
 *   non-blocking ioctlsocket(FIONBIO), no fcntl
 *   options      SO_EXCLUSIVEADDRUSE: Winsock's SO_REUSEADDR lets a second
 *                socket bind a port already in use, which is not what POSIX's
 *                SO_REUSEADDR does
 *   send         no MSG_NOSIGNAL: Windows has no SIGPIPE, a reset peer is
 *                WSAECONNRESET from send
 *   shutdown     SD_SEND for SHUT_WR
 *   readiness    WSAPoll (poll's struct pollfd, sockets only)
 *   wake-up      no pipe can be polled: a loopback TCP socket pair
 *   signals      none: console control events (SetConsoleCtrlHandler), in
 *                place of signals.c's al_signals_install
 *   fork         none: the fork model is not offered
 *   left out     io_uring (loop_uring.c), SO_REUSEPORT workers (workers.c) and
 *                the datagram path (datagram.c): stand-ins at the end refuse them
 */
#ifdef _WIN32

#include <errno.h>
#include <fcntl.h>
#include <io.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "acceptloop.h"
#include "errors.h"
#include "platform.h"   /* winsock2.h, which must come before windows.h */
#include <windows.h>
#include "net.h"
#include "protocol.h"
#include "server.h"
#include "workers.h"

/* winsock step: start-up */
void al_platform_stdio(void)
{
    /* The CRT writes "\r\n" for "\n" on a text-mode stream: the contract's lines (usage,
     * LISTENING, READY, the log) are to be the same bytes as on POSIX, so both are binary. */
    _setmode(_fileno(stdout), _O_BINARY);
    _setmode(_fileno(stderr), _O_BINARY);
}

int al_platform_start(void)
{
    WSADATA data;
    /* Winsock 2.2; WSAStartup returns its error itself (WSAGetLastError is not set yet). */
    int rc = WSAStartup(MAKEWORD(2, 2), &data);
    if (rc != 0)
        return rc;
    if (LOBYTE(data.wVersion) != 2 || HIBYTE(data.wVersion) != 2) {
        WSACleanup();
        return WSAVERNOTSUPPORTED;
    }
    return 0;
}

void al_platform_end(void)
{
    WSACleanup();
}
/* end winsock step */

/* winsock step: last error */
int al_sock_error(void)
{
    /* Winsock never sets errno: the code (WSAEADDRINUSE, ...) is the thread's last error. */
    return WSAGetLastError();
}

/* A SOCKET as the core keeps it: an int, -1 for INVALID_SOCKET. */
static int as_int(SOCKET s)
{
    return s == INVALID_SOCKET ? -1 : (int)s;
}

static SOCKET as_socket(int fd)
{
    return fd < 0 ? INVALID_SOCKET : (SOCKET)(unsigned int)fd;
}
/* end winsock step */

/* winsock step: socket and close */
int al_sock_open(int family, int type, int protocol)
{
    /* Not inherited by child processes: WSA_FLAG_NO_HANDLE_INHERIT (Windows 7 SP1). */
    SOCKET s = WSASocketW(family, type, protocol, NULL, 0, WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
    return as_int(s);
}

int al_sock_close(int fd)
{
    return closesocket(as_socket(fd)) == SOCKET_ERROR ? -1 : 0;
}
/* end winsock step */

/* winsock step: non-blocking */
int al_sock_nonblocking(int fd)
{
    u_long on = 1;
    return ioctlsocket(as_socket(fd), FIONBIO, &on) == SOCKET_ERROR ? -1 : 0;
}
/* end winsock step */

/* winsock step: listener options */
int al_sock_listener_options(int fd)
{
    /* Never SO_REUSEADDR here: on Winsock it lets another socket bind the
     * same port while we listen on it. SO_EXCLUSIVEADDRUSE forbids that; a
     * restart still binds while old connections wait in TIME_WAIT. */
    return al_sock_setopt_int(fd, SOL_SOCKET, SO_EXCLUSIVEADDRUSE, 1);
}
/* end winsock step */

int al_sock_reuse_port(int fd)
{
    /* Winsock has no SO_REUSEPORT: two listeners cannot share a port to have
     * the system spread connections over them (never called: no workers.c). */
    (void)fd;
    WSASetLastError(WSAEOPNOTSUPP);
    return -1;
}

int al_sock_setopt_int(int fd, int level, int name, int value)
{
    return setsockopt(as_socket(fd), level, name, (const char *)&value, (int)sizeof value) == SOCKET_ERROR ? -1 : 0;
}

/* winsock step: accept4 or accept */
int al_sock_accept(int listener, struct sockaddr *sa, socklen_t *len)
{
    SOCKET s = accept(as_socket(listener), sa, len);
    if (s == INVALID_SOCKET)
        return -1;
    /* An accepted socket takes its listener's properties, non-blocking mode
     * included; said again here, since the loops depend on it. */
    u_long on = 1;
    if (ioctlsocket(s, FIONBIO, &on) == SOCKET_ERROR) {
        int code = WSAGetLastError();
        closesocket(s);
        WSASetLastError(code);
        return -1;
    }
    (void)SetHandleInformation((HANDLE)s, HANDLE_FLAG_INHERIT, 0);
    return as_int(s);
}
/* end winsock step */

static int clamp(size_t len)
{
    return len > INT_MAX ? INT_MAX : (int)len;
}

/* winsock step: send */
ssize_t al_sock_send(int fd, const char *data, size_t len)
{
    /* No MSG_NOSIGNAL: Windows has no SIGPIPE; a reset peer is WSAECONNRESET. */
    int n = send(as_socket(fd), data, clamp(len), 0);
    return n == SOCKET_ERROR ? -1 : n;
}
/* end winsock step */

ssize_t al_sock_send_last(int fd, const char *data, size_t len)
{
    return al_sock_send(fd, data, len);   /* Winsock has no MSG_MORE */
}

ssize_t al_sock_recv(int fd, char *buf, size_t len)
{
    int n = recv(as_socket(fd), buf, clamp(len), 0);
    return n == SOCKET_ERROR ? -1 : n;
}

/* winsock step: shutdown */
int al_sock_shutdown_write(int fd)
{
    return shutdown(as_socket(fd), SD_SEND) == SOCKET_ERROR ? -1 : 0;
}
/* end winsock step */

int al_sock_retry_later(int code)
{
    return code == WSAEWOULDBLOCK || code == WSAEINTR || code == WSAEINPROGRESS;
}

/* Windows reports a connection reset while queued as WSAECONNRESET from
 * accept; Wine 8 as WSAENOTCONN (observed: a client that connects and resets
 * at once), which concerns that one connection just the same. */
int al_accept_error_is_per_connection(int code)
{
    switch (code) {
    case WSAEWOULDBLOCK: case WSAEINTR: case WSAEINPROGRESS: case WSAECONNRESET: case WSAENOTCONN:
    case WSAECONNABORTED: case WSAENETDOWN: case WSAENETUNREACH: case WSAEHOSTUNREACH:
    case WSAEHOSTDOWN: case WSAEOPNOTSUPP:
        return 1;
    default:
        return 0;
    }
}

int al_accept_error_is_resources(int code)
{
    return code == WSAEMFILE || code == WSAENOBUFS || code == WSA_NOT_ENOUGH_MEMORY;
}

/* winsock step: readiness */
int al_poll(struct pollfd *pfds, nfds_t n, int timeout_ms)
{
    /* poll's struct pollfd and flags, but sockets only: no pipe, no console, no file. */
    int rc = WSAPoll(pfds, n, timeout_ms);
    return rc == SOCKET_ERROR ? -1 : rc;
}

int al_poll_interrupted(int code)
{
    return code == WSAEINTR;   /* WSAPoll is not interrupted by anything the server sees */
}
/* end winsock step */

/* winsock step: wake-up pair */
/* Winsock polls sockets only, so the stop and wake-up channels are a
 * connected pair of TCP sockets on 127.0.0.1: a listener on port 0, a
 * connect to it, the accept, and the listener closed at once. Another local
 * process could connect to that port in between; the accepted peer is
 * compared with our own end, and any stranger is closed. */
int al_pair_open(int fds[2])
{
    struct sockaddr_in addr, mine, peer;
    int len = (int)sizeof addr;
    int listener = al_sock_open(AF_INET, SOCK_STREAM, IPPROTO_TCP), w = -1, r = -1, code;
    if (listener < 0)
        return -1;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    if (bind(as_socket(listener), (struct sockaddr *)&addr, (int)sizeof addr) == SOCKET_ERROR ||
        getsockname(as_socket(listener), (struct sockaddr *)&addr, &len) == SOCKET_ERROR ||
        listen(as_socket(listener), 1) == SOCKET_ERROR)
        goto fail;
    w = al_sock_open(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    if (w < 0 || connect(as_socket(w), (struct sockaddr *)&addr, (int)sizeof addr) == SOCKET_ERROR)
        goto fail;
    len = (int)sizeof mine;
    if (getsockname(as_socket(w), (struct sockaddr *)&mine, &len) == SOCKET_ERROR)
        goto fail;
    for (int tries = 0; tries < 16 && r < 0; tries++) {
        len = (int)sizeof peer;
        SOCKET s = accept(as_socket(listener), (struct sockaddr *)&peer, &len);
        if (s == INVALID_SOCKET)
            goto fail;
        if (peer.sin_port == mine.sin_port && peer.sin_addr.s_addr == mine.sin_addr.s_addr)
            r = as_int(s);
        else
            closesocket(s);   /* a stranger: not our other end */
    }
    /* end winsock step */
    if (r < 0) {
        WSASetLastError(WSAECONNREFUSED);
        goto fail;
    }
    closesocket(as_socket(listener));
    listener = -1;
    if (al_sock_nonblocking(r) < 0 || al_sock_nonblocking(w) < 0)
        goto fail;
    (void)SetHandleInformation((HANDLE)as_socket(r), HANDLE_FLAG_INHERIT, 0);
    (void)al_sock_setopt_int(w, IPPROTO_TCP, TCP_NODELAY, 1);
    fds[0] = r, fds[1] = w;
    return 0;
fail:
    code = WSAGetLastError();
    if (listener >= 0)
        closesocket(as_socket(listener));
    if (w >= 0)
        closesocket(as_socket(w));
    if (r >= 0)
        closesocket(as_socket(r));
    WSASetLastError(code);
    return -1;
}

void al_pair_signal(int w, char byte)
{
    int saved = errno, last = WSAGetLastError();
    (void)send(as_socket(w), &byte, 1, 0);   /* full: a wake-up is pending already */
    WSASetLastError(last);
    errno = saved;
}

void al_pair_drain(int r)
{
    char sink[64];
    while (recv(as_socket(r), sink, (int)sizeof sink, 0) > 0)
        ;
}

void al_pair_close(int fd)
{
    closesocket(as_socket(fd));
}

/* One error code of a table below: its name and its text, as "TEXT (NAME)" says them. */
struct named_code {
    int code;
    const char *name, *text;
};

/* "TEXT (NAME)" of code from table into buf: 1, or 0 when the table has no such code. */
static int name_code(char *buf, size_t len, int code, const struct named_code *table, size_t count)
{
    for (size_t i = 0; i < count; i++)
        if (table[i].code == code) {
            snprintf(buf, len, "%s (%s)", table[i].text, table[i].name);
            return 1;
        }
    return 0;
}

/* The WSAE* codes the server can meet, named as winerror.h names them, with
 * the text POSIX gives the matching errno, so that a line reads like the
 * other ports' lines but for the name: "Address already in use (WSAEADDRINUSE)". */
static const struct named_code wsa_errors[] = {
    { WSAEINTR, "WSAEINTR", "Interrupted system call" },
    { WSAEBADF, "WSAEBADF", "Bad file descriptor" },
    { WSAEACCES, "WSAEACCES", "Permission denied" },
    { WSAEFAULT, "WSAEFAULT", "Bad address" },
    { WSAEINVAL, "WSAEINVAL", "Invalid argument" },
    { WSAEMFILE, "WSAEMFILE", "Too many open files" },
    { WSAEWOULDBLOCK, "WSAEWOULDBLOCK", "Resource temporarily unavailable" },
    { WSAEINPROGRESS, "WSAEINPROGRESS", "Operation now in progress" },
    { WSAEALREADY, "WSAEALREADY", "Operation already in progress" },
    { WSAENOTSOCK, "WSAENOTSOCK", "Socket operation on non-socket" },
    { WSAEDESTADDRREQ, "WSAEDESTADDRREQ", "Destination address required" },
    { WSAEMSGSIZE, "WSAEMSGSIZE", "Message too long" },
    { WSAEPROTOTYPE, "WSAEPROTOTYPE", "Protocol wrong type for socket" },
    { WSAENOPROTOOPT, "WSAENOPROTOOPT", "Protocol not available" },
    { WSAEPROTONOSUPPORT, "WSAEPROTONOSUPPORT", "Protocol not supported" },
    { WSAESOCKTNOSUPPORT, "WSAESOCKTNOSUPPORT", "Socket type not supported" },
    { WSAEOPNOTSUPP, "WSAEOPNOTSUPP", "Operation not supported" },
    { WSAEPFNOSUPPORT, "WSAEPFNOSUPPORT", "Protocol family not supported" },
    { WSAEAFNOSUPPORT, "WSAEAFNOSUPPORT", "Address family not supported by protocol" },
    { WSAEADDRINUSE, "WSAEADDRINUSE", "Address already in use" },
    { WSAEADDRNOTAVAIL, "WSAEADDRNOTAVAIL", "Cannot assign requested address" },
    { WSAENETDOWN, "WSAENETDOWN", "Network is down" },
    { WSAENETUNREACH, "WSAENETUNREACH", "Network is unreachable" },
    { WSAENETRESET, "WSAENETRESET", "Network dropped connection on reset" },
    { WSAECONNABORTED, "WSAECONNABORTED", "Software caused connection abort" },
    { WSAECONNRESET, "WSAECONNRESET", "Connection reset by peer" },
    { WSAENOBUFS, "WSAENOBUFS", "No buffer space available" },
    { WSAEISCONN, "WSAEISCONN", "Transport endpoint is already connected" },
    { WSAENOTCONN, "WSAENOTCONN", "Transport endpoint is not connected" },
    { WSAESHUTDOWN, "WSAESHUTDOWN", "Cannot send after transport endpoint shutdown" },
    { WSAETIMEDOUT, "WSAETIMEDOUT", "Connection timed out" },
    { WSAECONNREFUSED, "WSAECONNREFUSED", "Connection refused" },
    { WSAENAMETOOLONG, "WSAENAMETOOLONG", "File name too long" },
    { WSAEHOSTDOWN, "WSAEHOSTDOWN", "Host is down" },
    { WSAEHOSTUNREACH, "WSAEHOSTUNREACH", "No route to host" },
    { WSASYSNOTREADY, "WSASYSNOTREADY", "Network subsystem is unavailable" },
    { WSAVERNOTSUPPORTED, "WSAVERNOTSUPPORTED", "Winsock version not supported" },
    { WSANOTINITIALISED, "WSANOTINITIALISED", "Winsock not initialised" },
    { WSA_NOT_ENOUGH_MEMORY, "WSA_NOT_ENOUGH_MEMORY", "Cannot allocate memory" },
};

/* The errno values the core itself sets (ENOMEM, EINVAL, ...): the CRT's
 * strerror has texts of its own, so the POSIX ones are written here. */
static const struct named_code c_errors[] = {
    { ENOMEM, "ENOMEM", "Cannot allocate memory" },
    { EINVAL, "EINVAL", "Invalid argument" },
    { EBADF, "EBADF", "Bad file descriptor" },
    { EALREADY, "EALREADY", "Operation already in progress" },
    { ENAMETOOLONG, "ENAMETOOLONG", "File name too long" },
    { EAFNOSUPPORT, "EAFNOSUPPORT", "Address family not supported by protocol" },
    { EAGAIN, "EAGAIN", "Resource temporarily unavailable" },
    { EMFILE, "EMFILE", "Too many open files" },
    { ENOSYS, "ENOSYS", "Function not implemented" },
    { EIO, "EIO", "Input/output error" },
    { EPIPE, "EPIPE", "Broken pipe" },
};

void al_error_text(char *buf, size_t len, int code)
{
    if (code >= WSABASEERR) {
        if (!name_code(buf, len, code, wsa_errors, sizeof wsa_errors / sizeof wsa_errors[0]))
            snprintf(buf, len, "Winsock error %d (WSA %d)", code, code);
    } else if (!name_code(buf, len, code, c_errors, sizeof c_errors / sizeof c_errors[0])) {
        snprintf(buf, len, "Unknown error %d (errno %d)", code, code);
    }
}

/* getaddrinfo's results on Winsock are WSA codes (EAI_NONAME is
 * WSAHOST_NOT_FOUND); named and worded as glibc and Python word them. */
static const struct named_code gai_errors[] = {
    { EAI_NONAME, "EAI_NONAME", "Name or service not known" },
    { EAI_AGAIN, "EAI_AGAIN", "Temporary failure in name resolution" },
    { EAI_FAIL, "EAI_FAIL", "Non-recoverable failure in name resolution" },
    { EAI_FAMILY, "EAI_FAMILY", "ai_family not supported" },
    { EAI_MEMORY, "EAI_MEMORY", "Memory allocation failure" },
    { EAI_SERVICE, "EAI_SERVICE", "Servname not supported for ai_socktype" },
    { EAI_SOCKTYPE, "EAI_SOCKTYPE", "ai_socktype not supported" },
    { EAI_BADFLAGS, "EAI_BADFLAGS", "Bad value for ai_flags" },
    { EAI_NODATA, "EAI_NODATA", "No address associated with hostname" },
};

void al_gai_text(char *buf, size_t len, int code)
{
    if (!name_code(buf, len, code, gai_errors, sizeof gai_errors / sizeof gai_errors[0]))
        al_error_text(buf, len, code);   /* any other WSA code getaddrinfo gives */
}

int al_gai_is_system(int code)
{
    (void)code;
    return 0;   /* Winsock has no EAI_SYSTEM: the code is the cause */
}

/* mingw has no <regex.h>. The contract's two number grammars, by hand:
 * AL_GRAMMAR_INT "^[0-9]+$" and AL_GRAMMAR_SECONDS
 * "^([0-9]+([.][0-9]*)?|[.][0-9]+)$". Any other pattern is refused, so a
 * change to protocol.toml's grammar shows here as refused arguments, never
 * as a laxer parser. */
static size_t digits(const char *s)
{
    size_t n = 0;
    while (s[n] >= '0' && s[n] <= '9')
        n++;
    return n;
}

int al_grammar_match(const char *pattern, const char *text)
{
    size_t n = digits(text);
    if (strcmp(pattern, AL_GRAMMAR_INT) == 0)
        return n > 0 && text[n] == '\0';
    if (strcmp(pattern, AL_GRAMMAR_SECONDS) != 0)
        return 0;
    if (text[n] == '\0')
        return n > 0;
    if (text[n] != '.')
        return 0;
    size_t m = digits(text + n + 1);
    return text[n + 1 + m] == '\0' && (n > 0 || m > 0);
}

/* winsock step: stop signals */
/* Windows has no SIGTERM: a console program learns of Ctrl-C, Ctrl-Break,
 * its console closing or a shutdown through a handler that the system runs
 * on a thread of its own. Each stops the server gracefully (al_server_stop
 * only marks the stop and writes to the stop pair). This is the Winsock form
 * of signals.c's al_signals_install (server.h), which is not built here; no
 * fork, so no SIGCHLD and `wake` is never called. What Wine turns a Unix
 * SIGTERM or SIGINT into is recorded in docs/winsock.md. */
static void (*volatile stop_target)(void *);
static void *volatile signal_target;

static BOOL WINAPI on_console_event(DWORD event)
{
    void (*stop)(void *) = stop_target;
    void *target = signal_target;
    switch (event) {
    case CTRL_C_EVENT: case CTRL_BREAK_EVENT: case CTRL_CLOSE_EVENT:
    case CTRL_LOGOFF_EVENT: case CTRL_SHUTDOWN_EVENT:
        if (stop != NULL && target != NULL)
            stop(target);
        return TRUE;   /* handled: the process is not ended for it */
    default:
        return FALSE;
    }
}

int al_signals_install(void (*stop)(void *), void (*wake)(void *), void *target)
{
    (void)wake;   /* no fork, so no SIGCHLD */
    if (target == NULL || stop == NULL) {
        errno = EINVAL;
        return AL_ERR;
    }
    stop_target = stop, signal_target = target;   /* before the handler can run */
    if (!SetConsoleCtrlHandler(on_console_event, TRUE)) {
        stop_target = NULL, signal_target = NULL;
        errno = EINVAL;
        return AL_ERR;
    }
    return AL_OK;
}
/* end winsock step */

static void stop_server(void *srv) { al_server_stop(srv); }

int al_server_stop_on_signals(al_server *srv)
{
    if (srv == NULL) {
        errno = EINVAL;
        return AL_ERR;
    }
    return al_signals_install(stop_server, NULL, srv);
}

void al_server_signals_release(void)
{
    /* Only forgets the target: a console event that arrives now finds none
     * (docs/winsock.md, "What is not there"). */
    signal_target = NULL;
    stop_target = NULL;
}

/* The proleptic Gregorian calendar from a day count: eras of 400 years
 * (146097 days) starting on 1 March, so that the leap day ends a year. */
int al_utc_time(long long epoch, struct tm *out)
{
    if (epoch < 0)
        return -1;   /* the contract's epochs start at 0 */
    long long days = epoch / 86400, secs = epoch % 86400;
    memset(out, 0, sizeof *out);
    out->tm_hour = (int)(secs / 3600);
    out->tm_min = (int)(secs / 60 % 60);
    out->tm_sec = (int)(secs % 60);
    out->tm_wday = (int)((days + 4) % 7);   /* 1 January 1970 was a Thursday */
    long long z = days + 719468;            /* days since 1 March of the year 0 */
    long long era = z / 146097, doe = z % 146097;
    long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    long long mp = (5 * doy + 2) / 153;     /* months since March */
    int mday = (int)(doy - (153 * mp + 2) / 5 + 1), mon = (int)(mp < 10 ? mp + 2 : mp - 10);
    long long year = yoe + era * 400 + (mon < 2 ? 1 : 0);
    out->tm_mday = mday;
    out->tm_mon = mon;
    out->tm_year = (int)(year - 1900);
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    static const int before[12] = { 0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334 };
    out->tm_yday = before[mon] + mday - 1 + (leap && mon > 1 ? 1 : 0);
    return 0;
}

int al_platform_has_fork(void)
{
    return 0;
}

/* What the Winsock build leaves out, besides fork (docs/winsock.md):
 *   --workers N > 1  workers.c binds one listener per worker to the same port with
 *                    SO_REUSEPORT and lets the kernel spread connections; Winsock
 *                    has no such option (SO_REUSEADDR there lets a socket take a
 *                    port over, not share it), so --workers > 1 is a usage error
 *   --transport udp  datagram.c is not ported to the platform layer yet (recvfrom
 *                    with MSG_TRUNC, sendto with MSG_NOSIGNAL, errno's datagram
 *                    errors), so udp is a usage error and c-winsock lists tcp only
 *   --model uring    Linux's io_uring: loop_uring.c is not built, and the model's
 *                    start-up fails as on a kernel without io_uring (ENOSYS) */
const char *al_platform_refusal(enum al_lack what)
{
    switch (what) {
    case AL_LACKS_WORKERS:
        return "argument --workers: more than one worker needs SO_REUSEPORT, which Winsock does not have";
    case AL_LACKS_DATAGRAMS:
        return "argument --transport: udp is not built for Winsock";
    }
    return NULL;
}

/* winsock step: fork */
/* Winsock has no fork: the fork model cannot run, and the registry's
 * c-winsock does not offer it (its cells are MISSING). */
int al_run_fork(struct al_server *srv, struct al_error *err)
{
    al_close_listeners(srv);
    al_error_set(err, "fork", "model", ENOSYS);
    return AL_ERR;
}
/* end winsock step */

/* What stands in for the files the Winsock build leaves out (al_platform_refusal
 * above), so that server.c and main.c are the same sources on both. */

/* loop_uring.c: io_uring is Linux's. The same line as a Linux kernel without it,
 * before any listener opens, so the kit's probe would call the model MISSING. */
int al_uring_available(struct al_error *err)
{
    al_error_set(err, "io_uring_setup", "ring", ENOSYS);
    return AL_ERR;
}

int al_run_uring(struct al_server *srv, struct al_error *err)
{
    al_close_listeners(srv);
    al_error_set(err, "io_uring_setup", "ring", ENOSYS);
    return AL_ERR;
}

/* datagram.c: main.c refuses --transport udp first (AL_LACKS_DATAGRAMS). */
int al_open_datagram_sockets(struct al_error *err, const struct al_config *cfg, int **fds)
{
    (void)cfg, (void)fds;
    al_error_set(err, "socket", "udp", ENOSYS);
    return AL_ERR;
}

int al_run_datagram_iterative(struct al_server *srv, struct al_error *err)
{
    al_close_listeners(srv);
    al_error_set(err, "recvfrom", "udp", ENOSYS);
    return AL_ERR;
}

int al_run_datagram_event(struct al_server *srv, struct al_error *err)
{
    return al_run_datagram_iterative(srv, err);
}

/* workers.c: main.c refuses --workers > 1 first (AL_LACKS_WORKERS). */
al_workers *al_workers_new(const struct al_config *cfg, int n)
{
    (void)cfg, (void)n;
    errno = ENOSYS;
    return NULL;
}

int al_workers_open(al_workers *w, char *err, size_t errlen)
{
    (void)w;
    snprintf(err, errlen, "workers: Function not implemented (ENOSYS)");
    return AL_ERR;
}

al_server *al_workers_first(al_workers *w)
{
    (void)w;
    return NULL;
}

int al_workers_run(al_workers *w, char *err, size_t errlen)
{
    return al_workers_open(w, err, errlen);
}

void al_workers_stop(al_workers *w)
{
    (void)w;
}

void al_workers_free(al_workers *w)
{
    (void)w;   /* al_workers_new never made one */
}

#endif /* _WIN32 */
