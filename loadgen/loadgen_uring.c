/* The load generator's io_uring mode (cfg->io = AL_LOAD_IO_URING), for echo:
 * the same closed loop as the epoll mode (loadgen_conn.c), with the client's
 * system calls batched, so that the generator spends less of its CPU per
 * round trip than the server it measures.
 *
 * The connections are made as in the epoll mode (the connect phase is
 * loadgen.c's); then each gets one multishot receive into a ring of provided
 * buffers, armed once for the whole run, and each message is one send
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
 * Built only where liburing's header is (loadgen/build_ffi.py defines
 * LG_HAVE_URING); elsewhere the mode fails to start with ENOSYS.
 */
#include <errno.h>
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

#else

#include <liburing.h>

#define BGID 1
#define NBUFS 4096            /* provided buffers: a power of two */
#define BUF_SIZE 4096         /* bytes each: 16 MiB in all */
#define OP_SEND 0u
#define OP_RECV 1u
#define OP_CANCEL 2u
#define UD(i, op) (((uint64_t)(i) << 2) | (op))
#define DRAIN_NS (1000 * LG_MS)

struct lg_uring {
    struct io_uring ring;
    struct io_uring_buf_ring *br;
    size_t br_size;
    unsigned char *bufs;
    int inflight;             /* requests whose last completion has not come */
    unsigned recycled;        /* buffers given back since the last advance */
    unsigned char *armed;     /* per connection: its multishot receive is armed */
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

int lg_uring_setup(struct lg_error *e, struct lg *lg)
{
    struct lg_uring *u = calloc(1, sizeof *u);
    if (u == NULL) {
        lg_error_set(e, "memory", "load generator", ENOMEM);
        return AL_LOAD_ERR;
    }
    u->armed = calloc((size_t)lg->cfg->connections, 1);
    u->bufs = malloc((size_t)NBUFS * BUF_SIZE);
    if (u->armed == NULL || u->bufs == NULL) {
        free(u->armed);
        free(u->bufs);
        free(u);
        lg_error_set(e, "memory", "load generator", ENOMEM);
        return AL_LOAD_ERR;
    }
    /* Room for a send and a receive of every connection; the completions get twice that. */
    unsigned entries = 64;
    while (entries < 2u * (unsigned)lg->cfg->connections && entries < 4096)
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
    if (rc < 0) {
        free(u->armed);
        free(u->bufs);
        free(u);
        lg_error_set(e, "io_uring", "io_uring_queue_init", -rc);
        return AL_LOAD_ERR;
    }
    u->br_size = (size_t)NBUFS * sizeof(struct io_uring_buf);
    if (posix_memalign((void **)&u->br, (size_t)sysconf(_SC_PAGESIZE), u->br_size) != 0) {
        io_uring_queue_exit(&u->ring);
        free(u->armed);
        free(u->bufs);
        free(u);
        lg_error_set(e, "memory", "load generator", ENOMEM);
        return AL_LOAD_ERR;
    }
    io_uring_buf_ring_init(u->br);
    struct io_uring_buf_reg reg = { .ring_addr = (unsigned long)u->br, .ring_entries = NBUFS, .bgid = BGID };
    rc = io_uring_register_buf_ring(&u->ring, &reg, 0);
    if (rc < 0) {
        io_uring_queue_exit(&u->ring);
        free(u->br);
        free(u->armed);
        free(u->bufs);
        free(u);
        lg_error_set(e, "io_uring", "io_uring_register_buf_ring", -rc);
        return AL_LOAD_ERR;
    }
    int mask = io_uring_buf_ring_mask(NBUFS);
    for (int i = 0; i < NBUFS; i++)
        io_uring_buf_ring_add(u->br, u->bufs + (size_t)i * BUF_SIZE, BUF_SIZE, (unsigned short)i, mask, i);
    io_uring_buf_ring_advance(u->br, NBUFS);
    lg->uring = u;
    return AL_LOAD_OK;
}

void lg_uring_teardown(struct lg *lg)
{
    struct lg_uring *u = lg->uring;
    if (u == NULL)
        return;
    io_uring_queue_exit(&u->ring);
    free(u->br);
    free(u->bufs);
    free(u->armed);
    free(u);
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
    io_uring_buf_ring_add(u->br, u->bufs + (size_t)bid * BUF_SIZE, BUF_SIZE, (unsigned short)bid,
                          io_uring_buf_ring_mask(NBUFS), (int)u->recycled);
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

static void on_cqe(struct lg *lg, struct io_uring_cqe *cqe, uint64_t now)
{
    struct lg_uring *u = lg->uring;
    uint64_t ud = io_uring_cqe_get_data64(cqe);
    int i = (int)(ud >> 2);
    unsigned op = (unsigned)(ud & 3u);
    int res = cqe->res;
    struct lconn *c = &lg->conns[i];
    if (op == OP_RECV && (cqe->flags & IORING_CQE_F_BUFFER)) {
        unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
        if (res > 0 && c->state == S_OPEN && lg->phase != P_DONE)
            on_data(lg, i, u->bufs + (size_t)bid * BUF_SIZE, (size_t)res, now);
        give_back(u, bid);
    }
    if (op == OP_RECV && (cqe->flags & IORING_CQE_F_MORE))
        return;   /* still armed */
    u->inflight--;
    if (op == OP_CANCEL || c->state != S_OPEN || lg->phase == P_DONE)
        return;
    if (op == OP_SEND) {
        if (res < 0)
            fail(lg, i, lg_error_kind(-res), -res, now);
        else if (lg->phase == P_WINDOW)
            lg->res->bytes_sent += (unsigned long long)res;
        return;
    }
    /* The multishot receive ended. */
    u->armed[i] = 0;
    if (res == 0)
        fail(lg, i, AL_LOAD_ERR_CLOSED_EARLY, 0, now);
    else if (res == -ENOBUFS || res > 0)
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

void lg_uring_load(struct lg *lg)
{
    struct lg_uring *u = lg->uring;
    uint64_t now = lg_now_ns();
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
        if (c->state == S_OPEN)
            queue_send(lg, i);
    }
    while (lg->phase != P_DONE) {
        now = lg_now_ns();
        uint64_t left = lg->phase_end > now ? lg->phase_end - now : 0;
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
