/* floor: the least a Linux server can do for echo, discard, chargen and daytime.
 *
 *     build/floor-server SERVICE HOST PORT
 *
 * One thread, one epoll, non-blocking sockets, level-triggered; no limits, no
 * timers, no lingering close, no graceful stop (SIGTERM ends it at once), no error lines, no checks the
 * benchmark does not need. It is not a server anyone should run: it is the
 * benchmark's physical reference, what this kernel's TCP path costs on this
 * machine for each workload, measured in the same run as the servers, so that
 * "fast" has a scale ("c: 1.05x the floor"). It claims no conformance and the
 * kit never grades it.
 *
 * It stays correct where correctness is free: a short write keeps what the
 * socket did not take and waits for EPOLLOUT, so every echoed byte arrives.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum service { ECHO, DISCARD, CHARGEN, DAYTIME };

#define READ_SIZE 65536
#define PATTERN_CHARS 95
#define PATTERN_LINE 74   /* 72 characters and CR LF */
#define MAX_EVENTS 1024

/* What a connection still owes its client: unsent echo (a short write's rest), or, for chargen,
 * where it stands in the pattern. */
struct conn {
    char *pending;
    size_t off, len;
    size_t chargen_pos;
};

static char buf[READ_SIZE];
static char pattern[PATTERN_CHARS * PATTERN_LINE * 2];   /* two periods: a 64 KiB slice from anywhere */
static struct conn **conns;
static int nconns;

static void build_pattern(void)
{
    char *p = pattern;
    for (int copy = 0; copy < 2; copy++)
        for (int line = 0; line < PATTERN_CHARS; line++) {
            for (int i = 0; i < 72; i++)
                *p++ = (char)(' ' + (line + i) % PATTERN_CHARS);
            *p++ = '\r';
            *p++ = '\n';
        }
}

static int listen_on(const char *host, const char *port)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE }, *ai;
    if (getaddrinfo(host, port, &hints, &ai) != 0)
        return -1;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 4096) < 0) {
        freeaddrinfo(ai);
        return -1;
    }
    freeaddrinfo(ai);
    return fd;
}

static struct conn *conn_of(int fd)
{
    if (fd >= nconns) {
        int n = nconns ? nconns : 1024;
        while (n <= fd)
            n *= 2;
        conns = realloc(conns, (size_t)n * sizeof *conns);
        memset(conns + nconns, 0, (size_t)(n - nconns) * sizeof *conns);
        nconns = n;
    }
    if (conns[fd] == NULL)
        conns[fd] = calloc(1, sizeof **conns);
    return conns[fd];
}

static void drop(int ep, int fd)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
    close(fd);
    if (fd < nconns && conns[fd] != NULL) {
        free(conns[fd]->pending);
        free(conns[fd]);
        conns[fd] = NULL;
    }
}

static void watch(int ep, int op, int fd, unsigned events)
{
    struct epoll_event ev = { .events = events, .data.fd = fd };
    epoll_ctl(ep, op, fd, &ev);
}

/* Sends what the socket takes; keeps the rest and asks for EPOLLOUT. 0, or -1 when the peer is gone. */
static int send_or_keep(int ep, int fd, struct conn *c, const char *data, size_t len)
{
    ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN)
        return -1;
    size_t sent = n < 0 ? 0 : (size_t)n;
    if (sent < len) {
        c->pending = malloc(len - sent);
        memcpy(c->pending, data + sent, len - sent);
        c->off = 0, c->len = len - sent;
        watch(ep, EPOLL_CTL_MOD, fd, EPOLLOUT);
    }
    return 0;
}

static void accept_all(int ep, int listener, enum service service)
{
    for (;;) {
        int fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC), one = 1;
        if (fd < 0)
            return;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (service == DAYTIME) {
            char line[64];
            time_t now = time(NULL);
            struct tm t;
            gmtime_r(&now, &t);
            size_t n = strftime(line, sizeof line, "%A, %B %d, %Y %H:%M:%S-UTC\r\n", &t);
            send(fd, line, n, MSG_NOSIGNAL | MSG_MORE);   /* held back: the close sends it with the FIN */
            close(fd);
            continue;
        }
        conn_of(fd);
        watch(ep, EPOLL_CTL_ADD, fd, service == CHARGEN ? EPOLLOUT : EPOLLIN);
    }
}

static void on_event(int ep, int fd, unsigned events, enum service service)
{
    struct conn *c = conn_of(fd);
    if (events & EPOLLOUT) {
        if (service == CHARGEN) {
            ssize_t n = send(fd, pattern + c->chargen_pos, READ_SIZE, MSG_NOSIGNAL);
            if (n < 0 && errno != EAGAIN) {
                drop(ep, fd);
                return;
            }
            if (n > 0)
                c->chargen_pos = (c->chargen_pos + (size_t)n) % (PATTERN_CHARS * PATTERN_LINE);
            return;
        }
        ssize_t n = send(fd, c->pending + c->off, c->len - c->off, MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN) {
            drop(ep, fd);
            return;
        }
        c->off += n > 0 ? (size_t)n : 0;
        if (c->off == c->len) {
            free(c->pending);
            c->pending = NULL;
            watch(ep, EPOLL_CTL_MOD, fd, EPOLLIN);
        }
        return;
    }
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN)) {
        drop(ep, fd);
        return;
    }
    if (n > 0 && service == ECHO && send_or_keep(ep, fd, c, buf, (size_t)n) < 0)
        drop(ep, fd);
}

/* The benchmark ends every server with SIGTERM and expects exit 0: the floor stops at once. */
static void on_stop(int sig)
{
    (void)sig;
    _exit(0);
}

int main(int argc, char **argv)
{
    static const char *const names[] = { "echo", "discard", "chargen", "daytime" };
    int service = -1;
    for (int i = 0; argc == 4 && i < 4; i++)
        if (strcmp(argv[1], names[i]) == 0)
            service = i;
    if (service < 0) {
        fprintf(stderr, "usage: floor-server echo|discard|chargen|daytime HOST PORT\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_stop);
    signal(SIGINT, on_stop);
    build_pattern();
    int listener = listen_on(argv[2], argv[3]), ep = epoll_create1(EPOLL_CLOEXEC);
    if (listener < 0 || ep < 0) {
        perror("floor-server");
        return 1;
    }
    watch(ep, EPOLL_CTL_ADD, listener, EPOLLIN);
    struct epoll_event events[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(ep, events, MAX_EVENTS, -1);
        for (int i = 0; i < n; i++) {
            if (events[i].data.fd == listener)
                accept_all(ep, listener, (enum service)service);
            else
                on_event(ep, events[i].data.fd, events[i].events, (enum service)service);
        }
    }
}
