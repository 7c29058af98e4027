/* The connectionless path (--transport udp): the same contract over datagrams.
 *
 * "Wait for incoming data (connection-less) or connections (connection-oriented)":
 * a datagram server has no accept, no connection and nothing to close per
 * client. Every datagram is read with one recvfrom into a buffer of
 * AL_DATAGRAM_RECV_BUFFER bytes (65,536 + 1) with MSG_TRUNC, so that a datagram
 * longer than the buffer is seen (recvfrom returns its real length) and dropped
 * with one log line, never answered partly; the answer is one sendto to the
 * sender's address and port (the iterative model); the event model reads a ready
 * socket's datagrams with one recvmmsg, up to DATAGRAM_BATCH, and answers them
 * with one sendmmsg, each datagram as the iterative model would. What goes wrong with one datagram is that
 * datagram's problem (docs/protocol.md, the table of errors): ECONNREFUSED (a
 * port unreachable for an earlier answer), EAGAIN and EINTR silently, the rest
 * of sendto's failures with one log line; the server goes on.
 *
 *   al_open_datagram_sockets   resolve (SOCK_DGRAM); per address socket, options, bind
 *   al_run_datagram_iterative  poll the sockets and the stop descriptor; recvfrom one; answer
 *   al_run_datagram_event      the same through the event model's poller (epoll), in batches:
 *                              recvmmsg then sendmmsg
 *
 * --backlog, --max-conns and --idle-timeout have no effect here. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "errors.h"
#include "net.h"
#include "poller.h"
#include "protocol.h"
#include "server.h"

#define DATAGRAM_BATCH 64   /* the event model reads at most this many from one socket per report, in one recvmmsg */
#define CHARGEN_LINE (AL_CHARGEN_LINE_LENGTH + sizeof AL_CHARGEN_LINE_ENDING - 1)

/* One bound datagram socket on a (its port set to *port; 0: the kernel's choice, written back). */
static int open_datagram_socket(struct al_error *err, const struct al_config *cfg, struct al_address *a,
                                int v6only, int reuse_port, int *port)
{
    struct sockaddr *sa = (struct sockaddr *)&a->addr;
    char where[AL_ADDRESS_LEN + 8];
    (void)cfg, (void)reuse_port;   /* one datagram loop per port: --workers refuses udp */
    al_set_port(&a->addr, *port);
    al_describe_sockaddr(where, sizeof where, sa);
    /* step: dgram socket */
    /* No SO_REUSEADDR: nothing waits in TIME_WAIT, and on a UDP socket it would let
     * a second server bind the same port without a word. */
    int fd = socket(a->family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, a->protocol);
    if (fd < 0) {
        al_error_set(err, "socket", where, errno);
        return AL_ERR;
    }
    if (a->family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only) < 0) {
        al_error_set(err, "setsockopt", where, errno);
        goto fail;
    }
    /* end step */
    /* step: dgram bind */
    if (bind(fd, sa, a->len) < 0) {
        al_error_set(err, "bind", where, errno);
        goto fail;
    }
    /* end step */
    if (*port == 0 && al_bound_port(err, fd, where, port) != AL_OK)
        goto fail;
    return fd;
fail:
    close(fd);
    return AL_ERR;
}

int al_open_datagram_sockets(struct al_error *err, const struct al_config *cfg, int **fds_out)
{
    return al_open_each(err, cfg, SOCK_DGRAM, open_datagram_socket, 0, fds_out);
}

/* What a failed recvfrom or sendto means for that one datagram: 0 say nothing (a port
 * unreachable for an earlier answer, nothing to read now, a signal, a full socket buffer),
 * 1 log one line, -1 the socket itself is broken (the loop's error). */
static int datagram_error(int code)
{
    switch (code) {
    case ECONNREFUSED: case EAGAIN: case EINTR:
#if EWOULDBLOCK != EAGAIN
    case EWOULDBLOCK:
#endif
        return 0;
    case EMSGSIZE: case ENOBUFS: case ENOMEM: case EHOSTUNREACH: case ENETUNREACH: case EPERM:
    case EACCES: case ENETDOWN: case EHOSTDOWN: case EADDRNOTAVAIL: case EINVAL:
        return 1;
    default:
        return -1;
    }
}

/* The event model's batch: the datagrams of one recvmmsg and their answers for one sendmmsg. */
struct datagram_batch {
    struct mmsghdr in[DATAGRAM_BATCH], out[DATAGRAM_BATCH];
    struct iovec in_iov[DATAGRAM_BATCH], out_iov[DATAGRAM_BATCH];
    struct sockaddr_storage senders[DATAGRAM_BATCH];
    char lines[DATAGRAM_BATCH][128];   /* daytime's answers */
};

struct datagram_loop {
    struct al_server *srv;
    char *buf;                   /* AL_DATAGRAM_RECV_BUFFER bytes per datagram read at once: every datagram is read here */
    struct datagram_batch *batch;   /* the event model's; NULL in the iterative one */
    char chargen[AL_DATAGRAM_CHARGEN_LINES * CHARGEN_LINE];
};

/* The service's answer to the n bytes at data, in *out and its length; 0: no answer. */
static int answer(struct datagram_loop *l, char *data, size_t n, const char **out, size_t *len, char *line,
                  size_t linelen)
{
    switch (l->srv->cfg.service) {
    case AL_SERVICE_ECHO:
        *out = data, *len = n;
        return 1;
    case AL_SERVICE_CHARGEN:   /* stateless: the same 6 lines from the first, whoever asks */
        *out = l->chargen, *len = sizeof l->chargen;
        return 1;
    case AL_SERVICE_DAYTIME: {
        const struct al_config *cfg = &l->srv->cfg;
        *len = al_daytime_line(line, linelen, cfg->has_daytime_epoch ? (time_t)cfg->daytime_epoch : time(NULL));
        *out = line;
        return *len > 0;
    }
    default:                   /* discard: thrown away, no response */
        return 0;
    }
}

/* A failed read (`step`: recvfrom or recvmmsg) with errno `code`: 0 there was nothing to read,
 * 1 it failed on its own (logged when that says something), AL_ERR with err filled when the
 * socket itself failed. */
static int read_failed(const char *step, int code, struct al_error *err)
{
    int kind = datagram_error(code);
    if (code == EAGAIN || code == EWOULDBLOCK)
        return 0;
    if (kind < 0) {
        al_error_set(err, step, "socket", code);
        return AL_ERR;
    }
    if (kind > 0)
        al_log_error(step, "socket", code);
    return 1;
}

/* Reads one datagram from fd and answers it. Returns 1 when one was read (or
 * failed on its own), 0 when there was none to read, AL_ERR with err filled
 * when the socket itself failed. */
static int serve_one(struct datagram_loop *l, int fd, struct al_error *err)
{
    struct sockaddr_storage sender;
    socklen_t sender_len = sizeof sender;
    char where[AL_ADDRESS_LEN + 8];
    /* step: recvfrom */
    /* MSG_TRUNC: the datagram's real length comes back even when it did not fit. */
    ssize_t n = recvfrom(fd, l->buf, AL_DATAGRAM_RECV_BUFFER, MSG_TRUNC, (struct sockaddr *)&sender, &sender_len);
    if (n < 0)
        return read_failed("recvfrom", errno, err);
    al_describe_sockaddr(where, sizeof where, (struct sockaddr *)&sender);
    if (n > AL_DATAGRAM_RECV_BUFFER) {
        al_log("recvfrom %s: datagram of %zd bytes truncated; dropped", where, n);
        return 1;
    }
    /* end step */
    const char *out;
    size_t len;
    char line[128];
    if (!answer(l, l->buf, (size_t)n, &out, &len, line, sizeof line))
        return 1;
    /* step: sendto */
    if (sendto(fd, out, len, MSG_NOSIGNAL, (struct sockaddr *)&sender, sender_len) < 0 &&
        datagram_error(errno) != 0)
        al_log_error("sendto", where, errno);
    /* end step */
    return 1;
}

/* Datagram i of the batch: its answer as the batch's out[n], to its sender. Returns 1, or 0 when it
 * gets none (discard, or too long for the buffer: dropped with one line, as serve_one does). */
static int prepare(struct datagram_loop *l, int i, int n)
{
    struct datagram_batch *b = l->batch;
    struct msghdr *in = &b->in[i].msg_hdr;
    size_t got = b->in[i].msg_len;   /* with MSG_TRUNC the datagram's real length */
    if (got > AL_DATAGRAM_RECV_BUFFER) {
        char where[AL_ADDRESS_LEN + 8];
        al_describe_sockaddr(where, sizeof where, in->msg_name);
        al_log("recvmmsg %s: datagram of %zu bytes truncated; dropped", where, got);
        return 0;
    }
    const char *out;
    size_t len;
    if (!answer(l, in->msg_iov->iov_base, got, &out, &len, b->lines[i], sizeof b->lines[i]))
        return 0;
    b->out_iov[n] = (struct iovec){ .iov_base = (void *)out, .iov_len = len };
    b->out[n].msg_hdr = (struct msghdr){ .msg_name = in->msg_name, .msg_namelen = in->msg_namelen,
                                         .msg_iov = &b->out_iov[n], .msg_iovlen = 1 };
    return 1;
}

/* The batch's n answers on fd with sendmmsg: one call, unless an answer fails on its own, which
 * is that datagram's problem as for sendto (logged when it says something); the next call then
 * sends the ones after it. */
static void send_answers(struct datagram_batch *b, int fd, int n)
{
    for (int done = 0; done < n;) {
        int sent = sendmmsg(fd, b->out + done, (unsigned)(n - done), MSG_NOSIGNAL);
        if (sent > 0) {
            done += sent;
            continue;
        }
        if (datagram_error(errno) != 0) {
            char where[AL_ADDRESS_LEN + 8];
            al_describe_sockaddr(where, sizeof where, b->out[done].msg_hdr.msg_name);
            al_log_error("sendmmsg", where, errno);
        }
        done++;
    }
}

/* Reads up to DATAGRAM_BATCH datagrams from fd with one recvmmsg and answers them with one
 * sendmmsg. Returns as serve_one does. */
static int serve_batch(struct datagram_loop *l, int fd, struct al_error *err)
{
    struct datagram_batch *b = l->batch;
    for (int i = 0; i < DATAGRAM_BATCH; i++) {
        b->in_iov[i] = (struct iovec){ .iov_base = l->buf + (size_t)i * AL_DATAGRAM_RECV_BUFFER,
                                       .iov_len = AL_DATAGRAM_RECV_BUFFER };
        b->in[i].msg_hdr = (struct msghdr){ .msg_name = &b->senders[i], .msg_namelen = sizeof b->senders[i],
                                            .msg_iov = &b->in_iov[i], .msg_iovlen = 1 };
    }
    /* MSG_TRUNC: each datagram's real length comes back even when it did not fit. */
    int got = recvmmsg(fd, b->in, DATAGRAM_BATCH, MSG_TRUNC | MSG_DONTWAIT, NULL);
    if (got < 0)
        return read_failed("recvmmsg", errno, err);
    int n = 0;
    for (int i = 0; i < got; i++)
        n += prepare(l, i, n);
    send_answers(b, fd, n);
    return 1;
}

/* The loop's buffers: one datagram's (iterative), or a batch's and DATAGRAM_BATCH datagrams' (batched). */
static int loop_open(struct datagram_loop *l, struct al_server *srv, struct al_error *err, int batched)
{
    l->srv = srv;
    l->buf = malloc((size_t)(batched ? DATAGRAM_BATCH : 1) * AL_DATAGRAM_RECV_BUFFER);
    l->batch = batched ? malloc(sizeof *l->batch) : NULL;
    if (l->buf == NULL || (batched && l->batch == NULL)) {
        free(l->buf);
        free(l->batch);
        al_error_set(err, "malloc", "read buffer", ENOMEM);
        al_close_listeners(srv);
        return AL_ERR;
    }
    memcpy(l->chargen, al_chargen_cycle(), sizeof l->chargen);
    return AL_OK;
}

/* The plain loop: poll the stop and wake-up descriptors and every socket;
 * recvfrom one datagram from each ready socket and answer it; again, until a stop. */
int al_run_datagram_iterative(struct al_server *srv, struct al_error *err)
{
    struct datagram_loop l;
    if (loop_open(&l, srv, err, 0) != AL_OK)
        return AL_ERR;
    int n = srv->n_listeners, rc = AL_OK;
    struct pollfd *pfds = srv->pfds;   /* room for stop, wake and every socket (al_server_open) */
    pfds[0] = (struct pollfd){ .fd = srv->stop_r, .events = POLLIN };
    pfds[1] = (struct pollfd){ .fd = srv->wake_r, .events = POLLIN };
    for (int i = 0; i < n; i++)
        pfds[2 + i] = (struct pollfd){ .fd = srv->listeners[i], .events = POLLIN };
    while (!al_stopping(srv)) {
        if (poll(pfds, (nfds_t)n + 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            al_error_set(err, "poll", "sockets", errno);
            rc = AL_ERR;
            break;
        }
        if (pfds[1].revents)
            al_drain_wake(srv);
        for (int i = 0; i < n && !al_stopping(srv); i++)
            if (pfds[2 + i].revents && serve_one(&l, pfds[2 + i].fd, err) == AL_ERR) {
                rc = AL_ERR;
                break;
            }
        if (rc != AL_OK)
            break;
    }
    if (rc != AL_OK)
        al_server_stop(srv);
    al_close_listeners(srv);
    free(l.buf);
    return rc;
}

/* The event model's form: the poller (epoll) holds the stop and wake-up descriptors and every
 * socket; a ready socket's datagrams, up to DATAGRAM_BATCH, are read with one recvmmsg and
 * answered with one sendmmsg (serve_batch); what is left makes the poller report it again. */
int al_run_datagram_event(struct al_server *srv, struct al_error *err)
{
    struct datagram_loop l;
    if (loop_open(&l, srv, err, 1) != AL_OK)
        return AL_ERR;
    int rc = AL_OK;
    struct al_poller *p = al_poll_create();
    if (p == NULL || al_poll_add(p, srv->stop_r, AL_READABLE) < 0 || al_poll_add(p, srv->wake_r, AL_READABLE) < 0) {
        al_error_set(err, "epoll", "poller", errno);
        rc = AL_ERR;
    }
    for (int i = 0; rc == AL_OK && i < srv->n_listeners; i++)
        if (al_poll_add(p, srv->listeners[i], AL_READABLE) < 0) {
            al_error_set(err, "epoll", "sockets", errno);
            rc = AL_ERR;
        }
    while (rc == AL_OK && !al_stopping(srv)) {
        int fired = al_poll_wait(p, -1);
        if (fired < 0) {
            al_error_set(err, "epoll_wait", "poller", errno);
            rc = AL_ERR;
            break;
        }
        const struct al_fired *f = al_poll_fired(p);
        for (int i = 0; i < fired && rc == AL_OK && !al_stopping(srv); i++) {
            if (f[i].fd == srv->wake_r) {
                al_drain_wake(srv);
                continue;
            }
            if (f[i].fd == srv->stop_r)
                continue;
            if (serve_batch(&l, f[i].fd, err) == AL_ERR)
                rc = AL_ERR;
        }
    }
    if (rc != AL_OK)
        al_server_stop(srv);
    if (p != NULL)
        al_poll_free(p);
    al_close_listeners(srv);
    free(l.buf);
    free(l.batch);
    return rc;
}
