/* The load generator's connections (see loadgen.h): how one connects,
 * counts, fails and closes, and what each mode does when epoll reports it
 * ready.
 *
 * A connection is a small state machine driven by level-triggered epoll, like
 * the servers' own: it asks for EPOLLOUT only while a write is pending, so a
 * connection that waits costs nothing per loop. One receive buffer serves
 * every connection, and the clock is read once per readiness report plus
 * once per completed operation (vDSO, no syscall), so the client spends its
 * time in the socket calls it must make.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "lg.h"

uint64_t lg_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int lg_error_kind(int code)
{
    switch (code) {
    case ECONNREFUSED: return AL_LOAD_ERR_REFUSED;
    case ECONNRESET: return AL_LOAD_ERR_RESET;
    case EPIPE: return AL_LOAD_ERR_PIPE;
    case ETIMEDOUT: return AL_LOAD_ERR_TIMEOUT;
    default: return AL_LOAD_ERR_OTHER;
    }
}

/* Errors count over the whole run but not while closing: by then the window
 * is over, and a reset there says nothing about the server under load. */
void lg_count_error(struct lg *lg, int kind, int code)
{
    if (lg->phase == P_DONE)
        return;
    lg->res->errors[kind]++;
    if (kind == AL_LOAD_ERR_OTHER) {
        const char *name = strerrorname_np(code);
        if (name != NULL)
            snprintf(lg->res->other_errno, sizeof lg->res->other_errno, "%s", name);
        else
            snprintf(lg->res->other_errno, sizeof lg->res->other_errno, "errno %d", code);
    }
}

static void count_io(struct lg *lg, unsigned long long *counter, ssize_t n, int is_op)
{
    if (lg->phase != P_WINDOW)
        return;
    *counter += (unsigned long long)n;
    if (is_op)
        lg->res->ops++;
}

static void op_done(struct lg *lg, struct lconn *c, uint64_t now)
{
    if (lg->phase != P_WINDOW)
        return;
    lg->res->ops++;
    lg_hist_record(&lg->hist, now - c->started);
}

void lg_conn_close(struct lg *lg, struct lconn *c, int next, uint64_t now)
{
    if (c->state == S_CONNECTING)
        lg->connecting--;
    else if (c->state == S_OPEN || c->state == S_CLOSING)
        lg->open--;
    if (c->fd >= 0)
        close(c->fd);   /* also takes it out of the epoll set */
    c->fd = -1;
    c->state = next;
    c->retry_at = now + LG_RETRY_NS;
}

/* A failed connection is not replaced, except in connect mode, where the
 * slot connects again after LG_RETRY_NS (sweep). */
void lg_conn_fail(struct lg *lg, struct lconn *c, int kind, int code, uint64_t now)
{
    lg_count_error(lg, kind, code);
    lg_conn_close(lg, c, lg->cfg->mode == AL_LOAD_CONNECT ? S_IDLE : S_DEAD, now);
}

int lg_watch(struct lg *lg, struct lconn *c, uint32_t events)
{
    if (c->events == events)
        return 0;
    struct epoll_event ev = { .events = events, .data.ptr = c };
    if (epoll_ctl(lg->ep, EPOLL_CTL_MOD, c->fd, &ev) < 0)
        return -1;
    c->events = events;
    return 0;
}

static void on_established(struct lg *lg, struct lconn *c, uint64_t now);

/* datagram: a connected UDP socket, "established" at once (connect only sets its peer). */
static void datagram_open(struct lg *lg, struct lconn *c, uint64_t now)
{
    int fd = socket(lg->addr.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    c->fd = fd;
    c->state = S_CONNECTING;
    lg->connecting++;
    c->started = now;
    c->sent = c->got = 0;
    if (fd < 0 || connect(fd, (struct sockaddr *)&lg->addr, lg->addrlen) < 0) {
        lg_conn_fail(lg, c, lg_error_kind(errno), errno, now);
        return;
    }
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
    if (epoll_ctl(lg->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
        lg_conn_fail(lg, c, AL_LOAD_ERR_OTHER, errno, now);
        return;
    }
    c->events = EPOLLIN;
    on_established(lg, c, now);
}

void lg_slot_connect(struct lg *lg, struct lconn *c, uint64_t now)
{
    if (lg->cfg->mode == AL_LOAD_DATAGRAM) {
        datagram_open(lg, c, now);
        return;
    }
    int fd = socket(lg->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        c->fd = -1;
        lg_conn_fail(lg, c, lg_error_kind(errno), errno, now);
        return;
    }
    /* No Nagle: a small echo must leave at once, as it would from any
     * latency-minded client; otherwise the client would time its own delay.
     * Connect mode sends nothing, so it spares the call. */
    int one = 1, connect_mode = lg->cfg->mode == AL_LOAD_CONNECT;
    if (!connect_mode)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->fd = fd;
    c->state = S_CONNECTING;
    lg->connecting++;
    c->started = now;
    c->sent = c->got = 0;
    c->last = 0;
    if (connect(fd, (struct sockaddr *)&lg->addr, lg->addrlen) < 0 && errno != EINPROGRESS) {
        lg_conn_fail(lg, c, lg_error_kind(errno), errno, now);
        return;
    }
    /* Writability reports the handshake's end, success or failure alike.
     * Connect mode asks at once for what it waits for, the server's FIN
     * (EPOLLRDHUP): the handshake's end needs no report of its own (a failed
     * one comes as EPOLLERR/EPOLLHUP, a stuck one is the sweep's timeout), and
     * the line is read in one recv once the FIN is in, since it precedes it. */
    uint32_t events = connect_mode ? EPOLLRDHUP : EPOLLOUT;
    struct epoll_event ev = { .events = events, .data.ptr = c };
    if (epoll_ctl(lg->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
        lg_conn_fail(lg, c, AL_LOAD_ERR_OTHER, errno, now);
        return;
    }
    c->events = events;
}

/* Sends what is left of the echo message; asks for EPOLLOUT only while
 * some is left. A short send means the socket buffer is full, so it stops
 * there instead of spending a syscall on the EAGAIN that would follow. */
static void echo_send(struct lg *lg, struct lconn *c, uint64_t now)
{
    size_t size = lg->pattern_len;
    while (c->sent < size) {
        ssize_t n = send(c->fd, lg->pattern + c->sent, size - c->sent, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            lg_conn_fail(lg, c, lg_error_kind(errno), errno, now);
            return;
        }
        count_io(lg, &lg->res->bytes_sent, n, 0);
        size_t asked = size - c->sent;
        c->sent += (size_t)n;
        if ((size_t)n < asked)
            break;
    }
    if (lg_watch(lg, c, EPOLLIN | (c->sent < size ? EPOLLOUT : 0u)) < 0)
        lg_conn_fail(lg, c, AL_LOAD_ERR_OTHER, errno, now);
}

/* Reads at most what is missing of the message, so that a byte too many
 * would show as a mismatch of the next one rather than being swallowed. */
static void echo_read(struct lg *lg, struct lconn *c, uint64_t now)
{
    size_t size = lg->pattern_len;
    for (;;) {
        size_t want = size - c->got < LG_RECV_BUF ? size - c->got : LG_RECV_BUF;
        ssize_t n = recv(c->fd, lg->rbuf, want, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                lg_conn_fail(lg, c, lg_error_kind(errno), errno, now);
            return;
        }
        if (n == 0) {
            lg_conn_fail(lg, c, AL_LOAD_ERR_CLOSED_EARLY, 0, now);
            return;
        }
        count_io(lg, &lg->res->bytes_received, n, 0);
        if (memcmp(lg->rbuf, lg->pattern + c->got, (size_t)n) != 0) {
            lg_conn_fail(lg, c, AL_LOAD_ERR_MISMATCH, 0, now);
            return;
        }
        c->got += (size_t)n;
        if (c->got == size) {
            uint64_t done = lg_now_ns();   /* after the last read, not before it */
            op_done(lg, c, done);
            c->started = done;
            c->sent = c->got = 0;
            echo_send(lg, c, done);
            return;
        }
        if ((size_t)n < want)
            return;
    }
}

/* connect: reads the daytime line to EOF, then closes and starts over.
 * `fin`: the server's FIN is in (EPOLLRDHUP), so one read returns the
 * whole line and the EOF needs no read of its own. */
static void connect_read(struct lg *lg, struct lconn *c, int fin, uint64_t now)
{
    for (;;) {
        ssize_t n = recv(c->fd, lg->rbuf, LG_RECV_BUF, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                lg_conn_fail(lg, c, lg_error_kind(errno), errno, now);
            return;
        }
        if (n == 0)
            break;
        count_io(lg, &lg->res->bytes_received, n, 0);
        c->got += (size_t)n;
        c->last = lg->rbuf[n - 1];
        if (fin && (size_t)n < LG_RECV_BUF)
            break;   /* what is left is the EOF */
    }
    if (c->got == 0 || c->last != '\n') {
        lg_conn_fail(lg, c, AL_LOAD_ERR_CLOSED_EARLY, 0, now);
        return;
    }
    uint64_t done = lg_now_ns();
    op_done(lg, c, done);
    /* The server sent its FIN first and waits for ours: a plain close ends
     * it, and TIME_WAIT stays on the server's side, not on our ports. */
    lg_conn_close(lg, c, S_IDLE, done);
    lg_slot_connect(lg, c, done);
}

/* datagram: sends the request, its first 8 bytes (or fewer) the sequence number. */
static void datagram_send(struct lg *lg, struct lconn *c, uint64_t now)
{
    if (lg->uring != NULL) {   /* the io_uring mode's load: its own send */
        lg_uring_datagram_send(lg, c, now);
        return;
    }
    size_t size = lg->pattern_len, head = size < 8 ? size : 8;
    struct iovec iov[2] = { { &c->seq, head }, { lg->pattern + head, size - head } };
    struct msghdr msg = { .msg_iov = iov, .msg_iovlen = size > head ? 2 : 1 };
    c->started = now;
    c->sent = 0;
    ssize_t n = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ENOBUFS)
            return;   /* the send buffer is full: the loss timer sends again */
        lg_conn_fail(lg, c, lg_error_kind(errno), errno, now);
        return;
    }
    c->sent = size;
    count_io(lg, &lg->res->bytes_sent, n, 0);
}

void lg_datagram_lost(struct lg *lg, struct lconn *c, uint64_t now)
{
    if (c->sent)
        lg_count_error(lg, AL_LOAD_ERR_TIMEOUT, ETIMEDOUT);
    c->seq++;
    datagram_send(lg, c, now);
}

#define DGRAM_BATCH 8

/* datagram: every reply waiting on the socket, in one recvmmsg. The one that
 * carries the awaited sequence number completes the op; a late one (lost,
 * then answered) is dropped; a reply of the right number but the wrong size
 * or bytes is a mismatch. */
static void datagram_read(struct lg *lg, struct lconn *c, uint64_t now)
{
    size_t size = lg->pattern_len, head = size < 8 ? size : 8;
    size_t slot = size + 1;   /* one byte more, so that a longer datagram shows */
    unsigned vlen = (unsigned)(LG_RECV_BUF / slot < DGRAM_BATCH ? LG_RECV_BUF / slot : DGRAM_BATCH);
    struct mmsghdr msgs[DGRAM_BATCH];
    struct iovec iov[DGRAM_BATCH];
    memset(msgs, 0, sizeof msgs);
    for (unsigned k = 0; k < vlen; k++) {
        iov[k].iov_base = lg->rbuf + k * slot;
        iov[k].iov_len = slot;
        msgs[k].msg_hdr.msg_iov = &iov[k];
        msgs[k].msg_hdr.msg_iovlen = 1;
    }
    int n = recvmmsg(c->fd, msgs, vlen, MSG_DONTWAIT, NULL);
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            lg_conn_fail(lg, c, lg_error_kind(errno), errno, now);
        return;
    }
    int answered = 0;
    for (int k = 0; k < n; k++) {
        const unsigned char *d = lg->rbuf + (size_t)k * slot;
        size_t len = msgs[k].msg_len;
        count_io(lg, &lg->res->bytes_received, (ssize_t)len, 0);
        if (answered || !c->sent || len < head || memcmp(d, &c->seq, head) != 0)
            continue;   /* not the awaited reply: a late one */
        if (len != size || memcmp(d + head, lg->pattern + head, size - head) != 0) {
            lg_conn_fail(lg, c, AL_LOAD_ERR_MISMATCH, 0, now);
            return;
        }
        answered = 1;
    }
    if (answered) {
        uint64_t done = lg_now_ns();
        op_done(lg, c, done);
        c->seq++;
        datagram_send(lg, c, done);
    }
}

/* ingest (write) and egress (read): up to LG_MAX_BATCH full chunks, one op each. Egress reads
 * with MSG_TRUNC: counted, never copied out (a copy would be the generator's largest cost). */
static void stream_io(struct lg *lg, struct lconn *c, int writing, uint64_t now)
{
    for (int i = 0; i < LG_MAX_BATCH; i++) {
        ssize_t n = writing ? send(c->fd, lg->pattern, LG_CHUNK, MSG_NOSIGNAL) : recv(c->fd, lg->rbuf, LG_CHUNK, MSG_TRUNC);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                lg_conn_fail(lg, c, lg_error_kind(errno), errno, now);
            return;
        }
        if (n == 0) {
            lg_conn_fail(lg, c, AL_LOAD_ERR_CLOSED_EARLY, 0, now);
            return;
        }
        count_io(lg, writing ? &lg->res->bytes_sent : &lg->res->bytes_received, n, 1);
        if (n < LG_CHUNK)
            return;
    }
}

/* ingest and idle read only to learn of the server's EOF or reset: neither
 * discard nor an idle echo sends anything. Closing: the same, until EOF. */
static void watch_read(struct lg *lg, struct lconn *c, uint64_t now)
{
    for (;;) {
        ssize_t n = recv(c->fd, lg->rbuf, LG_RECV_BUF, 0);
        if (n > 0) {
            count_io(lg, &lg->res->bytes_received, n, 0);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (c->state == S_CLOSING)
            lg_conn_close(lg, c, S_DEAD, now);
        else
            lg_conn_fail(lg, c, n == 0 ? AL_LOAD_ERR_CLOSED_EARLY : lg_error_kind(errno), n == 0 ? 0 : errno, now);
        return;
    }
}

void lg_start_load(struct lg *lg, struct lconn *c, uint64_t now)
{
    int mode = lg->cfg->mode;
    /* EPOLLIN always (connect: EPOLLRDHUP, its FIN): it is how every mode learns of EOF and resets. */
    uint32_t events = mode == AL_LOAD_CONNECT ? EPOLLRDHUP : EPOLLIN | (mode == AL_LOAD_INGEST ? EPOLLOUT : 0u);
    if (lg_watch(lg, c, events) < 0) {
        lg_conn_fail(lg, c, AL_LOAD_ERR_OTHER, errno, now);
        return;
    }
    if (mode == AL_LOAD_ECHO) {
        c->started = now;
        echo_send(lg, c, now);
    } else if (mode == AL_LOAD_DATAGRAM) {
        datagram_send(lg, c, now);
    }
}

static void on_established(struct lg *lg, struct lconn *c, uint64_t now)
{
    lg->connecting--;
    lg->open++;
    c->state = S_OPEN;
    /* Connect mode learns of a handshake's end only with the server's FIN, so
     * its slots still connecting count too: they are as many at once. */
    int held = lg->open + (lg->cfg->mode == AL_LOAD_CONNECT ? lg->connecting : 0);
    if (held > lg->res->connections)
        lg->res->connections = held;
    if (lg->phase != P_CONNECT) {
        lg_start_load(lg, c, now);
        return;
    }
    /* The others are still connecting: load now would keep the server too
     * busy to accept them (a full accept queue drops SYNs, which come again
     * only a second later). Egress asks for nothing, so that chargen's data
     * waits in the socket; errors are reported all the same. */
    if (lg_watch(lg, c, lg->cfg->mode == AL_LOAD_EGRESS ? 0u : EPOLLIN) < 0)
        lg_conn_fail(lg, c, AL_LOAD_ERR_OTHER, errno, now);
}

void lg_handle(struct lg *lg, struct lconn *c, uint32_t events, uint64_t now)
{
    int mode = lg->cfg->mode;
    if (c->state == S_CONNECTING) {
        if (events & (EPOLLERR | EPOLLHUP)) {
            int code = 0;
            socklen_t len = sizeof code;
            getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &code, &len);
            lg_conn_fail(lg, c, code ? lg_error_kind(code) : AL_LOAD_ERR_CLOSED_EARLY, code, now);
            return;
        }
        /* Connect mode asked for the FIN only (lg_slot_connect): its report
         * says the handshake is over too. */
        if (!(events & (mode == AL_LOAD_CONNECT ? EPOLLRDHUP | EPOLLIN : EPOLLOUT)))
            return;
        on_established(lg, c, now);
        if (mode == AL_LOAD_ECHO || c->state != S_OPEN || lg->phase == P_CONNECT)
            return;   /* echo has just sent (the reply comes later), or the load has not begun */
    }
    if (c->state == S_CLOSING) {
        watch_read(lg, c, now);
        return;
    }
    if (c->state != S_OPEN)
        return;
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP)) {
        switch (mode) {
        case AL_LOAD_ECHO: echo_read(lg, c, now); break;
        case AL_LOAD_CONNECT: connect_read(lg, c, (events & EPOLLRDHUP) != 0, now); return;   /* the slot may hold a new socket now */
        case AL_LOAD_EGRESS: stream_io(lg, c, 0, now); break;
        case AL_LOAD_DATAGRAM: datagram_read(lg, c, now); break;
        default: watch_read(lg, c, now); break;
        }
    }
    if (c->state == S_OPEN && (events & EPOLLOUT)) {
        if (mode == AL_LOAD_ECHO)
            echo_send(lg, c, now);
        else if (mode == AL_LOAD_INGEST)
            stream_io(lg, c, 1, now);
    }
}
