/* The load generator's io_uring mode (cfg->io = AL_LOAD_IO_URING), for echo, datagram and connect:
 * the same closed loop as the epoll mode (loadgen_conn.c), with the client's
 * system calls batched, so that the generator spends less of its CPU per
 * round trip than the server it measures.
 *
 * The connections are made as in the epoll mode (the connect phase is
 * loadgen.c's); then each gets one multishot receive into a ring of provided
 * buffers (sized to the message, 4-64 KiB), armed once for the whole run, and each message is one send
 * (MSG_WAITALL, so a short send is finished by the kernel, not by us). One
 * io_uring_enter per loop turn submits every send queued since the last and
 * waits for the next completion; the kernel runs the receives' work at that
 * call (DEFER_TASKRUN), not by interrupting us. Per round trip that is a
 * share of one system call, where the epoll mode makes a send, a recv and a
 * share of an epoll_wait.
 *
 * When the window is over, every request still in flight is cancelled and
 * waited for before the epoll mode's closing (loadgen.c's close_all) takes
 * the connections over, so that no armed receive can swallow the server's EOF.
 *
 * Datagram mode (UDP echo) is echo's loop with a datagram's rules (datagram_reply
 * below): each socket's request is one send from a buffer of its own (its first
 * 8 bytes the sequence number), each reply one completion of its multishot
 * receive; a request unanswered within LG_LOSS_NS is counted lost and the next
 * is sent, as in the epoll mode (the sweep every SWEEP_NS).
 *
 * Connect mode (daytime) is a chain of linked requests per connection
 * (connect_chain below): one socket(2) and a share of io_uring_enter each.
 *
 * Built only where liburing's header is (loadgen/build_ffi.py defines
 * LG_HAVE_URING); elsewhere the mode fails to start with ENOSYS.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lg.h"

#ifndef LG_HAVE_URING

int lg_uring_setup(struct lg_error *e, struct lg *lg)
{
    (void)lg;
    lg_error_set(e, "io_uring", "load generator (built without liburing)", ENOSYS);
    return AL_LOAD_ERR;
}

void lg_uring_load(struct lg *lg)
{
    (void)lg;
}

void lg_uring_teardown(struct lg *lg)
{
    (void)lg;
}

void lg_uring_datagram_send(struct lg *lg, struct lconn *c, uint64_t now)
{
    (void)lg, (void)c, (void)now;   /* never called: without a ring the epoll mode sends */
}

#else

#include <liburing.h>

#define BGID 1
/* The provided buffers: each the message's size rounded up to a power of two within
 * 4 KiB..64 KiB (a large echo comes back in few completions), as many as fill 16 MiB,
 * a power of two between 256 and 4096. */
#define MIN_BUF 4096
#define MAX_BUF 65536
#define BUF_BYTES (16u << 20)
#define OP_SEND 0u
#define OP_RECV 1u
#define OP_CANCEL 2u
#define OP_CLOSE 3u           /* connect mode: a chain's last link */
#define LINE_MAX 512          /* connect mode: room for the daytime line, per slot */
#define SWEEP_NS (10 * LG_MS)
/* A request's user_data: the connection's index and the request's kind; connect mode adds
 * the chain's number (its slot's seq), so a stale completion is known for one. */
#define UD(i, op) (((uint64_t)(i) << 2) | (op))
#define UD_CHAIN(i, op, seq) (((uint64_t)(uint32_t)(seq) << 32) | UD(i, op))
#define DRAIN_NS (1000 * LG_MS)

struct lg_uring {
    struct io_uring ring;
    struct io_uring_buf_ring *br;
    size_t br_size;
    unsigned char *bufs;
    unsigned nbufs, buf_size; /* the provided buffers: how many, and their size */
    int inflight;             /* requests whose last completion has not come */
    unsigned recycled;        /* buffers given back since the last advance */
    unsigned char *armed;     /* per connection: its multishot receive is armed (connect: its chain failed) */
    unsigned char *lines;     /* connect mode: LINE_MAX bytes per slot */
    int datagram;             /* datagram mode (UDP echo), with requests and sending below */
    unsigned char *requests;  /* datagram mode: each socket's request, pattern_len bytes per socket */
    unsigned char *sending;   /* datagram mode: per socket, its request's send has not completed */
};

static struct io_uring_sqe *sqe_get(struct lg_uring *u)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
    if (sqe == NULL) {   /* the queue is full: hand it to the kernel and take the next */
        io_uring_submit(&u->ring);
        sqe = io_uring_get_sqe(&u->ring);
    }
    return sqe;
}

/* Frees what setup made of u, the ring if it was made (ring_made), and u. */
static void uring_free(struct lg_uring *u, int ring_made)
{
    if (ring_made)
        io_uring_queue_exit(&u->ring);
    free(u->br);
    free(u->bufs);
    free(u->lines);
    free(u->requests);
    free(u->sending);
    free(u->armed);
    free(u);
}

static int setup_failed(struct lg_error *e, struct lg_uring *u, int ring_made, const char *step,
                        const char *where, int code)
{
    uring_free(u, ring_made);
    lg_error_set(e, step, where, code);
    return AL_LOAD_ERR;
}

int lg_uring_setup(struct lg_error *e, struct lg *lg)
{
    struct lg_uring *u = calloc(1, sizeof *u);
    if (u == NULL) {
        lg_error_set(e, "memory", "load generator", ENOMEM);
        return AL_LOAD_ERR;
    }
    int connect_mode = lg->cfg->mode == AL_LOAD_CONNECT, datagram_mode = lg->cfg->mode == AL_LOAD_DATAGRAM;
    size_t n = (size_t)lg->cfg->connections;
    /* A datagram's buffer holds one byte more than the request, so that a longer reply shows. */
    size_t need = lg->pattern_len + (datagram_mode ? 1 : 0);
    u->buf_size = MIN_BUF;
    while (u->buf_size < need && u->buf_size < MAX_BUF)
        u->buf_size *= 2;
    u->nbufs = BUF_BYTES / u->buf_size;
    if (u->nbufs > 4096)
        u->nbufs = 4096;
    u->armed = calloc(n, 1);
    u->bufs = malloc(connect_mode ? 1 : (size_t)u->nbufs * u->buf_size);
    u->lines = connect_mode ? malloc(n * LINE_MAX) : NULL;
    u->requests = datagram_mode ? malloc(n * lg->pattern_len) : NULL;
    u->sending = datagram_mode ? calloc(n, 1) : NULL;
    u->datagram = datagram_mode;
    if (u->armed == NULL || u->bufs == NULL || (connect_mode && u->lines == NULL)
        || (datagram_mode && (u->requests == NULL || u->sending == NULL)))
        return setup_failed(e, u, 0, "memory", "load generator", ENOMEM);
    /* Room for a send and a receive of every connection (connect: a chain of four); the
     * completions get twice that. */
    unsigned entries = 64;
    while (entries < (connect_mode ? 4u : 2u) * (unsigned)n && entries < 4096)
        entries *= 2;
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE;
    p.cq_entries = entries * 4;
    int rc = io_uring_queue_init_params(entries, &u->ring, &p);
    if (rc == -EINVAL) {   /* a kernel before 6.1: no DEFER_TASKRUN */
        memset(&p, 0, sizeof p);
        p.flags = IORING_SETUP_CQSIZE;
        p.cq_entries = entries * 4;
        rc = io_uring_queue_init_params(entries, &u->ring, &p);
    }
    if (rc < 0)
        return setup_failed(e, u, 0, "io_uring", "io_uring_queue_init", -rc);
    if (connect_mode) {   /* no provided buffers: each slot reads into its own line */
        lg->uring = u;
        return AL_LOAD_OK;
    }
    u->br_size = (size_t)u->nbufs * sizeof(struct io_uring_buf);
    if (posix_memalign((void **)&u->br, (size_t)sysconf(_SC_PAGESIZE), u->br_size) != 0) {
        u->br = NULL;
        return setup_failed(e, u, 1, "memory", "load generator", ENOMEM);
    }
    io_uring_buf_ring_init(u->br);
    struct io_uring_buf_reg reg = { .ring_addr = (unsigned long)u->br, .ring_entries = u->nbufs, .bgid = BGID };
    rc = io_uring_register_buf_ring(&u->ring, &reg, 0);
    if (rc < 0)
        return setup_failed(e, u, 1, "io_uring", "io_uring_register_buf_ring", -rc);
    int mask = io_uring_buf_ring_mask(u->nbufs);
    for (unsigned i = 0; i < u->nbufs; i++)
        io_uring_buf_ring_add(u->br, u->bufs + (size_t)i * u->buf_size, u->buf_size, (unsigned short)i, mask, (int)i);
    io_uring_buf_ring_advance(u->br, (int)u->nbufs);
    for (size_t i = 0; datagram_mode && i < n; i++)   /* each request's sequence number goes over its head */
        memcpy(u->requests + i * lg->pattern_len, lg->pattern, lg->pattern_len);
    lg->uring = u;
    return AL_LOAD_OK;
}

void lg_uring_teardown(struct lg *lg)
{
    if (lg->uring == NULL)
        return;
    uring_free(lg->uring, 1);
    lg->uring = NULL;
}

static void queue_send(struct lg *lg, int i)
{
    struct lg_uring *u = lg->uring;
    struct lconn *c = &lg->conns[i];
    struct io_uring_sqe *sqe = sqe_get(u);
    if (sqe == NULL) {
        lg_conn_fail(lg, c, AL_LOAD_ERR_OTHER, EBUSY, lg_now_ns());
        return;
    }
    /* MSG_WAITALL: the kernel finishes a short send itself; one completion per message. */
    io_uring_prep_send(sqe, c->fd, lg->pattern, lg->pattern_len, MSG_NOSIGNAL | MSG_WAITALL);
    io_uring_sqe_set_data64(sqe, UD(i, OP_SEND));
    u->inflight++;
}

static void arm_recv(struct lg *lg, int i)
{
    struct lg_uring *u = lg->uring;
    struct io_uring_sqe *sqe = sqe_get(u);
    if (sqe == NULL) {
        lg_conn_fail(lg, &lg->conns[i], AL_LOAD_ERR_OTHER, EBUSY, lg_now_ns());
        return;
    }
    io_uring_prep_recv_multishot(sqe, lg->conns[i].fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BGID;
    io_uring_sqe_set_data64(sqe, UD(i, OP_RECV));
    u->armed[i] = 1;
    u->inflight++;
}

/* A connection that failed: its requests are cancelled (their file references
 * would keep the socket open past close) and it is closed. */
static void fail(struct lg *lg, int i, int kind, int code, uint64_t now)
{
    struct lg_uring *u = lg->uring;
    struct lconn *c = &lg->conns[i];
    if (c->state != S_OPEN)
        return;
    struct io_uring_sqe *sqe = sqe_get(u);
    if (sqe != NULL) {
        io_uring_prep_cancel_fd(sqe, c->fd, IORING_ASYNC_CANCEL_ALL);
        io_uring_sqe_set_data64(sqe, UD(i, OP_CANCEL));
        u->inflight++;
        io_uring_submit(&u->ring);   /* before close: the cancel names the descriptor */
    }
    lg_conn_fail(lg, c, kind, code, now);
}

static void give_back(struct lg_uring *u, unsigned bid)
{
    io_uring_buf_ring_add(u->br, u->bufs + (size_t)bid * u->buf_size, u->buf_size, (unsigned short)bid,
                          io_uring_buf_ring_mask(u->nbufs), (int)u->recycled);
    u->recycled++;
}

/* An echoed chunk for connection i, in provided buffer data[0..n). */
static void on_data(struct lg *lg, int i, const unsigned char *data, size_t n, uint64_t now)
{
    struct lconn *c = &lg->conns[i];
    size_t size = lg->pattern_len;
    if (lg->phase == P_WINDOW)
        lg->res->bytes_received += n;
    if (c->got + n > size || memcmp(data, lg->pattern + c->got, n) != 0) {
        fail(lg, i, AL_LOAD_ERR_MISMATCH, 0, now);
        return;
    }
    c->got += n;
    if (c->got < size)
        return;
    uint64_t done = lg_now_ns();
    if (lg->phase == P_WINDOW) {
        lg->res->ops++;
        lg_hist_record(&lg->hist, done - c->started);
    }
    c->started = done;
    c->got = 0;
    queue_send(lg, i);
}

void lg_uring_datagram_send(struct lg *lg, struct lconn *c, uint64_t now)
{
    struct lg_uring *u = lg->uring;
    int i = (int)(c - lg->conns);
    size_t size = lg->pattern_len, head = size < 8 ? size : 8;
    unsigned char *request = u->requests + (size_t)i * size;
    memcpy(request, &c->seq, head);
    c->started = now;
    c->sent = 0;
    struct io_uring_sqe *sqe = sqe_get(u);
    if (sqe == NULL) {
        fail(lg, i, AL_LOAD_ERR_OTHER, EBUSY, now);
        return;
    }
    io_uring_prep_send(sqe, c->fd, request, size, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, UD(i, OP_SEND));
    u->sending[i] = 1;
    u->inflight++;
}

/* datagram mode: a reply for socket i, in provided buffer data[0..n). The one that carries the
 * awaited sequence number completes the op; a late one (lost, then answered) is dropped; a reply
 * of the right number but the wrong size or bytes is a mismatch. */
static void datagram_reply(struct lg *lg, int i, const unsigned char *data, size_t n)
{
    struct lconn *c = &lg->conns[i];
    size_t size = lg->pattern_len, head = size < 8 ? size : 8;
    uint64_t done = lg_now_ns();
    if (lg->phase == P_WINDOW)
        lg->res->bytes_received += n;
    if (!c->sent || n < head || memcmp(data, &c->seq, head) != 0)
        return;   /* not the awaited reply: a late one */
    if (n != size || memcmp(data + head, lg->pattern + head, size - head) != 0) {
        fail(lg, i, AL_LOAD_ERR_MISMATCH, 0, done);
        return;
    }
    if (lg->phase == P_WINDOW) {
        lg->res->ops++;
        lg_hist_record(&lg->hist, done - c->started);
    }
    c->seq++;
    lg_uring_datagram_send(lg, c, done);
}

/* datagram mode: a request unanswered for LG_LOSS_NS is lost (lg_datagram_lost sends the next);
 * one whose send has not completed yet waits for it. */
static void sweep_losses(struct lg *lg, uint64_t now)
{
    for (int i = 0; i < lg->cfg->connections; i++) {
        struct lconn *c = &lg->conns[i];
        if (c->state == S_OPEN && !lg->uring->sending[i] && now - c->started >= LG_LOSS_NS)
            lg_datagram_lost(lg, c, now);
    }
}

static void on_cqe(struct lg *lg, struct io_uring_cqe *cqe, uint64_t now)
{
    struct lg_uring *u = lg->uring;
    uint64_t ud = io_uring_cqe_get_data64(cqe);
    int i = (int)((ud & 0xffffffffu) >> 2);
    unsigned op = (unsigned)(ud & 3u);
    int res = cqe->res;
    struct lconn *c = &lg->conns[i];
    if (op == OP_RECV && (cqe->flags & IORING_CQE_F_BUFFER)) {
        unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
        if (res >= 0 && c->state == S_OPEN && lg->phase != P_DONE) {
            if (u->datagram)
                datagram_reply(lg, i, u->bufs + (size_t)bid * u->buf_size, (size_t)res);
            else if (res > 0)
                on_data(lg, i, u->bufs + (size_t)bid * u->buf_size, (size_t)res, now);
        }
        give_back(u, bid);
    }
    if (op == OP_RECV && (cqe->flags & IORING_CQE_F_MORE))
        return;   /* still armed */
    u->inflight--;
    if (op == OP_SEND && u->datagram)
        u->sending[i] = 0;
    if (op == OP_CANCEL || c->state != S_OPEN || lg->phase == P_DONE)
        return;
    if (op == OP_SEND) {
        if (res < 0 && u->datagram && (res == -EAGAIN || res == -ENOBUFS || res == -EINTR))
            return;   /* a datagram's send buffer is full: the loss sweep sends again, as in the epoll mode */
        if (res < 0) {
            fail(lg, i, lg_error_kind(-res), -res, now);
            return;
        }
        if (lg->phase == P_WINDOW)
            lg->res->bytes_sent += (unsigned long long)res;
        if (u->datagram)
            c->sent = lg->pattern_len;
        return;
    }
    /* The multishot receive ended. */
    u->armed[i] = 0;
    if (res == 0 && !u->datagram)   /* a stream's EOF (to a datagram socket, an empty datagram) */
        fail(lg, i, AL_LOAD_ERR_CLOSED_EARLY, 0, now);
    else if (res == -ENOBUFS || res >= 0)
        arm_recv(lg, i);   /* out of buffers for a moment (they are given back below): again */
    else if (res < 0)
        fail(lg, i, lg_error_kind(-res), -res, now);
}

/* Reaps every completion there is; returns how many. */
static unsigned reap(struct lg *lg, uint64_t now)
{
    struct lg_uring *u = lg->uring;
    struct io_uring_cqe *cqe;
    unsigned head, n = 0;
    io_uring_for_each_cqe(&u->ring, head, cqe) {
        on_cqe(lg, cqe, now);
        n++;
    }
    io_uring_cq_advance(&u->ring, n);
    if (u->recycled > 0) {
        io_uring_buf_ring_advance(u->br, (int)u->recycled);
        u->recycled = 0;
    }
    return n;
}

/* connect mode: slot i's whole connection as one chain of linked requests,
 * submitted at once: connect, wait for the server's FIN (poll POLLRDHUP),
 * read the line (it precedes the FIN, so one read has it all), close. Only the
 * read and the close report on success; a failure anywhere cancels the rest of
 * the chain, and the close's cancellation tells that the descriptor is still
 * ours to close. The socket itself comes from socket(2), the one system call
 * per connection besides a share of io_uring_enter. */
static void connect_chain(struct lg *lg, int i, uint64_t now)
{
    struct lg_uring *u = lg->uring;
    struct lconn *c = &lg->conns[i];
    c->started = now;
    c->retry_at = now + LG_RETRY_NS;
    u->armed[i] = 0;
    int fd = socket(lg->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        lg_count_error(lg, lg_error_kind(errno), errno);
        c->state = S_IDLE;
        return;
    }
    struct io_uring_sqe *sqe[4];
    if (io_uring_sq_space_left(&u->ring) < 4)
        io_uring_submit(&u->ring);
    for (int k = 0; k < 4; k++)
        sqe[k] = io_uring_get_sqe(&u->ring);
    if (sqe[3] == NULL) {   /* cannot happen: the queue holds four per slot */
        close(fd);
        lg_count_error(lg, AL_LOAD_ERR_OTHER, EBUSY);
        c->state = S_IDLE;
        return;
    }
    io_uring_prep_connect(sqe[0], fd, (struct sockaddr *)&lg->addr, lg->addrlen);
    io_uring_prep_poll_add(sqe[1], fd, POLLRDHUP);
    io_uring_prep_recv(sqe[2], fd, u->lines + (size_t)i * LINE_MAX, LINE_MAX, 0);
    io_uring_prep_close(sqe[3], fd);
    sqe[0]->flags |= IOSQE_IO_LINK | IOSQE_CQE_SKIP_SUCCESS;
    sqe[1]->flags |= IOSQE_IO_LINK | IOSQE_CQE_SKIP_SUCCESS;
    sqe[2]->flags |= IOSQE_IO_LINK;
    c->seq++;
    io_uring_sqe_set_data64(sqe[0], UD_CHAIN(i, OP_SEND, c->seq));
    io_uring_sqe_set_data64(sqe[1], UD_CHAIN(i, OP_SEND, c->seq));
    io_uring_sqe_set_data64(sqe[2], UD_CHAIN(i, OP_RECV, c->seq));
    io_uring_sqe_set_data64(sqe[3], UD_CHAIN(i, OP_CLOSE, c->seq));
    c->fd = fd;
    c->state = S_CONNECTING;
    lg->connecting++;
    u->inflight++;   /* one per chain: its close's completion ends it */
}

/* A chain's failure, counted once (the links it cancels report -ECANCELED). */
static void chain_failed(struct lg *lg, int i, int kind, int code)
{
    if (!lg->uring->armed[i])
        lg_count_error(lg, kind, code);
    lg->uring->armed[i] = 1;
}

static void on_connect_cqe(struct lg *lg, struct io_uring_cqe *cqe, uint64_t now)
{
    struct lg_uring *u = lg->uring;
    uint64_t ud = io_uring_cqe_get_data64(cqe);
    int i = (int)((ud & 0xffffffffu) >> 2), res = cqe->res;
    unsigned op = (unsigned)(ud & 3u);
    struct lconn *c = &lg->conns[i];
    if (op == OP_CANCEL || (uint32_t)(ud >> 32) != (uint32_t)c->seq || c->state != S_CONNECTING)
        return;   /* a cancel's own report, or a chain already ended */
    if (op == OP_SEND) {
        /* The connect or the poll failed (it reports only then: CQE_SKIP_SUCCESS). The kernel
         * cancels the rest of the chain without reports (a skipped link's failure skips the
         * reports of those after it), the close included: the chain ends here. */
        if (res != -ECANCELED)
            chain_failed(lg, i, lg_error_kind(-res), -res);
        else
            chain_failed(lg, i, AL_LOAD_ERR_TIMEOUT, ETIMEDOUT);   /* only sweep_slots cancels */
        close(c->fd);
        goto ended;
    }
    if (op != OP_CLOSE) {
        if (res < 0) {   /* the recv failed: the close is cancelled and reports it */
            if (res != -ECANCELED)
                chain_failed(lg, i, lg_error_kind(-res), -res);
            return;
        }
        /* The line, read at the FIN: whole if it ends the line. */
        if (res == 0 || u->lines[(size_t)i * LINE_MAX + (size_t)res - 1] != '\n') {
            chain_failed(lg, i, AL_LOAD_ERR_CLOSED_EARLY, 0);
            return;
        }
        int held = lg->connecting;
        if (held > lg->res->connections)
            lg->res->connections = held;
        if (lg->phase == P_WINDOW) {
            lg->res->bytes_received += (unsigned long long)res;
            lg->res->ops++;
            lg_hist_record(&lg->hist, lg_now_ns() - c->started);
        }
        return;
    }
    /* The chain is over; its descriptor is closed, by the chain or here. */
    if (res == -ECANCELED || res < 0)
        close(c->fd);
ended:
    u->inflight--;
    lg->connecting--;
    c->fd = -1;
    c->state = S_IDLE;
    if (!u->armed[i] && lg->phase != P_DONE)
        connect_chain(lg, i, now);   /* at once; a failed slot rests (sweep_slots) */
}

/* connect mode: a chain past connect_timeout is cancelled (a timeout); a rested slot starts again. */
static void sweep_slots(struct lg *lg, uint64_t now)
{
    struct lg_uring *u = lg->uring;
    for (int i = 0; i < lg->cfg->connections; i++) {
        struct lconn *c = &lg->conns[i];
        if (c->state == S_CONNECTING && now - c->started >= lg->timeout_ns && !u->armed[i]) {
            chain_failed(lg, i, AL_LOAD_ERR_TIMEOUT, ETIMEDOUT);
            struct io_uring_sqe *sqe = sqe_get(u);
            if (sqe != NULL) {
                io_uring_prep_cancel_fd(sqe, c->fd, IORING_ASYNC_CANCEL_ALL);
                io_uring_sqe_set_data64(sqe, UD(i, OP_CANCEL));
                sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
            }
        } else if (c->state == S_IDLE && now >= c->retry_at && lg->phase != P_DONE) {
            connect_chain(lg, i, now);
        }
    }
}

static void connect_load(struct lg *lg)
{
    struct lg_uring *u = lg->uring;
    uint64_t now = lg_now_ns(), next_sweep = now + SWEEP_NS, drain_until = 0;
    for (int i = 0; i < lg->cfg->connections; i++)
        connect_chain(lg, i, now);
    lg->started = lg->cfg->connections;
    for (;;) {
        now = lg_now_ns();
        int draining = lg->phase == P_DONE;
        if (draining && (u->inflight == 0 || now >= drain_until))
            break;
        uint64_t wake = draining ? now + 10 * LG_MS : (lg->phase_end < next_sweep ? lg->phase_end : next_sweep);
        uint64_t left = wake > now ? wake - now : 0;
        struct __kernel_timespec ts = { .tv_sec = (long long)(left / 1000000000u), .tv_nsec = (long long)(left % 1000000000u) };
        struct io_uring_cqe *cqe;
        io_uring_submit_and_wait_timeout(&u->ring, &cqe, 1, &ts, NULL);
        now = lg_now_ns();
        unsigned head, n = 0;
        io_uring_for_each_cqe(&u->ring, head, cqe) {
            on_connect_cqe(lg, cqe, now);
            n++;
        }
        io_uring_cq_advance(&u->ring, n);
        if (draining)
            continue;
        if (now >= next_sweep) {
            sweep_slots(lg, now);
            next_sweep = now + SWEEP_NS;
        }
        lg_check(lg, now);
        if (lg->phase == P_DONE) {
            /* Over: cancel every chain still waiting; their closes end them. */
            drain_until = now + DRAIN_NS;
            struct io_uring_sqe *sqe = sqe_get(u);
            if (sqe != NULL) {
                io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY | IORING_ASYNC_CANCEL_ALL);
                io_uring_sqe_set_data64(sqe, UD(0, OP_CANCEL));
            }
        }
    }
    /* A chain that did not end in time: its descriptor is closed here (the ring's exit
     * cancels its requests), and the closing (close_all) finds nothing left to do. */
    for (int i = 0; i < lg->cfg->connections; i++) {
        struct lconn *c = &lg->conns[i];
        if (c->state == S_CONNECTING && c->fd >= 0)
            close(c->fd);
        c->fd = -1;
        c->state = S_DEAD;
    }
    lg->connecting = lg->open = 0;
}

void lg_uring_load(struct lg *lg)
{
    struct lg_uring *u = lg->uring;
    uint64_t now = lg_now_ns();
    if (lg->cfg->mode == AL_LOAD_CONNECT) {
        connect_load(lg);
        return;
    }
    for (int i = 0; i < lg->cfg->connections; i++) {
        struct lconn *c = &lg->conns[i];
        if (c->state != S_OPEN)
            continue;
        /* epoll's interest is dropped for the load, taken up again for the closing. */
        if (lg_watch(lg, c, 0) < 0) {
            lg_conn_fail(lg, c, AL_LOAD_ERR_OTHER, errno, now);
            continue;
        }
        c->got = 0;
        c->started = now;
        arm_recv(lg, i);
        if (c->state == S_OPEN && u->datagram)
            lg_uring_datagram_send(lg, c, now);
        else if (c->state == S_OPEN)
            queue_send(lg, i);
    }
    uint64_t next_sweep = now + SWEEP_NS;
    while (lg->phase != P_DONE) {
        now = lg_now_ns();
        if (u->datagram && now >= next_sweep) {
            sweep_losses(lg, now);
            next_sweep = now + SWEEP_NS;
        }
        uint64_t wake = u->datagram && next_sweep < lg->phase_end ? next_sweep : lg->phase_end;
        uint64_t left = wake > now ? wake - now : 0;
        struct __kernel_timespec ts = { .tv_sec = (long long)(left / 1000000000u), .tv_nsec = (long long)(left % 1000000000u) };
        struct io_uring_cqe *cqe;
        int rc = io_uring_submit_and_wait_timeout(&u->ring, &cqe, 1, &ts, NULL);
        if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
            lg_count_error(lg, AL_LOAD_ERR_OTHER, -rc);
            lg_enter(lg, P_DONE, lg_now_ns());
            break;
        }
        now = lg_now_ns();
        reap(lg, now);
        lg_check(lg, lg_now_ns());
    }
    /* Over: cancel what is in flight and wait for it, so the closing finds the sockets quiet. */
    struct io_uring_sqe *sqe = sqe_get(u);
    if (sqe != NULL) {
        io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY | IORING_ASYNC_CANCEL_ALL);
        io_uring_sqe_set_data64(sqe, UD(0, OP_CANCEL));
        u->inflight++;
    }
    uint64_t until = lg_now_ns() + DRAIN_NS;
    while (u->inflight > 0 && (now = lg_now_ns()) < until) {
        uint64_t left = until - now;
        struct __kernel_timespec ts = { .tv_sec = (long long)(left / 1000000000u), .tv_nsec = (long long)(left % 1000000000u) };
        struct io_uring_cqe *cqe;
        io_uring_submit_and_wait_timeout(&u->ring, &cqe, 1, &ts, NULL);
        reap(lg, now);
    }
}

#endif /* LG_HAVE_URING */
