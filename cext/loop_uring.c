/* The uring model: one thread and one io_uring (liburing) holding every
 * request: a multishot accept per listener, a multishot receive per
 * connection into a ring of provided buffers, the sends of a turn submitted
 * together, and polls on the stop and wake descriptors. Each turn of the loop
 * is one io_uring_enter, which submits what the last turn queued and waits
 * for completions or the timer tick.
 *
 * The connection state machine is conn.c's, driven through al_conn_on_data
 * (what a receive brought), al_conn_on_sent (a send completed) and
 * al_conn_on_timer. With c->ring set, conn.c keeps every output byte in
 * c->out; update() takes that buffer for one send at a time (c->in_flight
 * counts it, so that backpressure and the flush still see it), and the
 * kernel reads it until the send completes.
 *
 * A request's user_data is a pointer (connections, malloc'd, so 16-aligned)
 * or a listener's index shifted left, with the kind in the low 3 bits. A
 * connection whose socket is closed stays allocated until the ring has
 * completed every request that names it (recv_armed, send_busy): closing the
 * descriptor does not end those requests, so update() cancels them. */
#include <errno.h>
#include <liburing.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "conn.h"
#include "errors.h"
#include "net.h"
#include "protocol.h"
#include "server.h"

enum op { OP_ACCEPT, OP_RECV, OP_SEND, OP_WRITABLE, OP_STOP, OP_WAKE, OP_IGNORE };
#define OP_MASK 7u
#define TAG(word, op) ((uint64_t)(word) | (uint64_t)(op))

#define RING_ENTRIES 4096     /* submission queue; the completion queue is 4x */
#define BUF_COUNT 512         /* provided receive buffers (a power of two) */
#define BUF_SIZE 16384
#define BUF_GROUP 0

/* A test hook (docs/design.md): set to EPERM or ENOSYS, io_uring_setup is taken to have failed so. */
#define AL_URING_FAIL_ENV "ACCEPTLOOP_URING_FAIL"

enum { ACCEPT_IDLE, ACCEPT_ARMED, ACCEPT_CANCELLED };   /* a listener's multishot accept */

struct uconn {
    struct al_conn c;         /* first: conn.c sees only this */
    struct uconn *prev, *next;
    char *sending;            /* the buffer the ring sends from, taken from c.out */
    uint32_t send_off;        /* where in it the send in flight begins */
    unsigned char recv_armed, recv_cancelled, send_busy, poll_busy, released;
};

struct uring_loop {
    struct al_server *srv;
    struct io_uring ring;
    struct io_uring_buf_ring *bufs;
    char *buf_base;
    struct uconn *conns;      /* every connection, open or waiting for its last completion */
    int count;                /* the open ones, against --max-conns */
    int accepting;            /* the listeners' accepts are wanted */
    unsigned char *accept_armed;   /* per listener: ACCEPT_IDLE, _ARMED, _CANCELLED */
    int ring_ready;                /* ring_init succeeded */
    int stopped;                   /* begin_stop ran */
    int stop_armed, wake_armed;
    struct al_pause pause;
};

/* The -EINVAL retry: a kernel without DEFER_TASKRUN (before 6.1) still takes a plain ring. */
static int ring_init(struct io_uring *ring, unsigned entries)
{
    struct io_uring_params p = { .flags = IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL |
                                          IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SINGLE_ISSUER |
                                          IORING_SETUP_DEFER_TASKRUN,
                                 .cq_entries = entries * 4 };
    const char *forced = getenv(AL_URING_FAIL_ENV);
    if (forced != NULL && forced[0] != '\0')
        return strcmp(forced, "ENOSYS") == 0 ? -ENOSYS : -EPERM;   /* the test hook (design.md) */
    int rc = io_uring_queue_init_params(entries, ring, &p);
    if (rc == -EINVAL) {
        memset(&p, 0, sizeof p);
        rc = io_uring_queue_init_params(entries, ring, &p);
    }
    return rc;
}

/* "io_uring_setup ring: TEXT (ENAME)", the contract's STEP WHERE form. */
static void set_setup_error(struct al_error *err, int code)
{
    al_error_set(err, "io_uring_setup", "ring", code);
}

int al_uring_available(struct al_error *err)
{
    struct io_uring ring;
    int rc = ring_init(&ring, 2);
    if (rc < 0) {
        set_setup_error(err, -rc);
        return AL_ERR;
    }
    io_uring_queue_exit(&ring);
    return AL_OK;
}

/* A free submission entry; when the queue is full, what it holds is submitted first. */
static struct io_uring_sqe *get_sqe(struct uring_loop *loop, uint64_t tag)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&loop->ring);
    if (sqe == NULL) {
        io_uring_submit(&loop->ring);
        sqe = io_uring_get_sqe(&loop->ring);
    }
    if (sqe != NULL)
        io_uring_sqe_set_data64(sqe, tag);
    return sqe;
}

/* A submission entry for one of the connection's requests; NULL (the connection failed) when none is free. */
static struct io_uring_sqe *conn_sqe(struct uring_loop *loop, struct uconn *u, enum op op)
{
    struct io_uring_sqe *sqe = get_sqe(loop, TAG(u, op));
    if (sqe == NULL)
        al_conn_fail(&u->c, "io_uring_get_sqe", EBUSY);
    return sqe;
}

static void cancel(struct uring_loop *loop, uint64_t tag)
{
    struct io_uring_sqe *sqe = get_sqe(loop, TAG(0, OP_IGNORE));
    if (sqe != NULL)
        io_uring_prep_cancel64(sqe, tag, 0);
}

static int setup_buffers(struct uring_loop *loop)
{
    size_t ring_bytes = BUF_COUNT * sizeof(struct io_uring_buf);
    void *mem = mmap(NULL, ring_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (mem == MAP_FAILED)
        return -errno;
    loop->bufs = mem;
    loop->buf_base = malloc((size_t)BUF_COUNT * BUF_SIZE);
    if (loop->buf_base == NULL)
        return -ENOMEM;
    struct io_uring_buf_reg reg = { .ring_addr = (uintptr_t)mem, .ring_entries = BUF_COUNT, .bgid = BUF_GROUP };
    int rc = io_uring_register_buf_ring(&loop->ring, &reg, 0);
    if (rc < 0)
        return rc;
    io_uring_buf_ring_init(loop->bufs);
    for (int i = 0; i < BUF_COUNT; i++)
        io_uring_buf_ring_add(loop->bufs, loop->buf_base + (size_t)i * BUF_SIZE, BUF_SIZE, (unsigned short)i,
                              io_uring_buf_ring_mask(BUF_COUNT), i);
    io_uring_buf_ring_advance(loop->bufs, BUF_COUNT);
    return 0;
}

static void recycle_buffer(struct uring_loop *loop, unsigned short bid)
{
    io_uring_buf_ring_add(loop->bufs, loop->buf_base + (size_t)bid * BUF_SIZE, BUF_SIZE, bid,
                          io_uring_buf_ring_mask(BUF_COUNT), 0);
    io_uring_buf_ring_advance(loop->bufs, 1);
}

static void unlink_conn(struct uring_loop *loop, struct uconn *u)
{
    if (u->prev != NULL)
        u->prev->next = u->next;
    else
        loop->conns = u->next;
    if (u->next != NULL)
        u->next->prev = u->prev;
    free(u->sending);
    free(u);
}

/* Hands what `out` keeps to the ring as one send; the kernel reads it until the send completes. */
static void start_send(struct uring_loop *loop, struct uconn *u)
{
    struct al_conn *c = &u->c;
    struct io_uring_sqe *sqe = conn_sqe(loop, u, OP_SEND);
    if (sqe == NULL)
        return;
    if (u->sending == NULL) {
        u->sending = c->out;
        u->send_off = c->out_off;
        c->in_flight = c->out_len - c->out_off;
        c->out = NULL;
        c->out_off = c->out_len = c->out_cap = 0;
    }
    io_uring_prep_send(sqe, c->fd, u->sending + u->send_off, c->in_flight, MSG_NOSIGNAL);
    u->send_busy = 1;
}

static void arm_recv(struct uring_loop *loop, struct uconn *u)
{
    struct io_uring_sqe *sqe = conn_sqe(loop, u, OP_RECV);
    if (sqe == NULL)
        return;
    io_uring_prep_recv_multishot(sqe, u->c.fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BUF_GROUP;
    u->recv_armed = 1;
    u->recv_cancelled = 0;
}

/* A producer (chargen) refills only once the socket is writable as poll sees
 * it (a third of its buffer free), as in the event model: sending again at once
 * after each completion would fill the buffer to the brim, and a slow reader
 * would then drain a third of megabytes before the next write succeeded. */
static void arm_writable(struct uring_loop *loop, struct uconn *u)
{
    struct io_uring_sqe *sqe = conn_sqe(loop, u, OP_WRITABLE);
    if (sqe == NULL)
        return;
    io_uring_prep_poll_add(sqe, u->c.fd, POLLOUT);
    u->poll_busy = 1;
}

/* The ring follows what the connection wants: a receive armed while it reads,
 * cancelled under backpressure; a send whenever output waits and none is in
 * flight. A closed connection has its requests cancelled and is freed once
 * the last has completed. */
static void update(struct uring_loop *loop, struct uconn *u)
{
    struct al_conn *c = &u->c;
    if (c->phase != AL_CLOSED) {
        int wants = al_conn_wants_read(c);
        if (wants && !u->recv_armed)
            arm_recv(loop, u);
        else if (!wants && u->recv_armed && !u->recv_cancelled) {
            cancel(loop, TAG(u, OP_RECV));
            u->recv_cancelled = 1;
        }
        /* in_flight left with no send busy: a short send, whose rest goes first */
        if (c->phase != AL_CLOSED && !u->send_busy && (c->in_flight > 0 || c->out_len > c->out_off))
            start_send(loop, u);
        if (c->phase == AL_SERVING && c->service->produces && al_conn_pending(c) == 0 && !u->poll_busy)
            arm_writable(loop, u);
    }
    if (c->phase != AL_CLOSED)
        return;
    if (!u->released) {
        u->released = 1;
        loop->count--;
        if (u->recv_armed && !u->recv_cancelled) {
            cancel(loop, TAG(u, OP_RECV));
            u->recv_cancelled = 1;
        }
        if (u->send_busy)
            cancel(loop, TAG(u, OP_SEND));
        if (u->poll_busy)
            cancel(loop, TAG(u, OP_WRITABLE));
    }
    if (!u->recv_armed && !u->send_busy && !u->poll_busy)
        unlink_conn(loop, u);
}

static void open_conn(struct uring_loop *loop, int fd, const char *peer, double now)
{
    struct uconn *u = calloc(1, sizeof *u);
    if (u == NULL) {
        al_log_error("accept", peer, ENOMEM);
        close(fd);
        return;
    }
    u->next = loop->conns;
    if (loop->conns != NULL)
        loop->conns->prev = u;
    loop->conns = u;
    loop->count++;
    al_conn_open(&u->c, fd, peer, &loop->srv->cfg, NULL, now);   /* sets c.ring for this model */
    update(loop, u);   /* a producer waits for writability (arm_writable) */
}

/* One completion of a listener's multishot accept. */
static void accept_batch(struct uring_loop *loop, int index, const struct io_uring_cqe *cqe, double now)
{
    struct al_server *srv = loop->srv;
    if (!(cqe->flags & IORING_CQE_F_MORE))
        loop->accept_armed[index] = ACCEPT_IDLE;
    if (cqe->res < 0) {
        if (cqe->res != -ECANCELED && index < srv->n_listeners) {
            struct al_error accept_err;
            al_accept_failed(&accept_err, srv->listeners[index], &loop->pause, -cqe->res);
            al_log_accept_error(&accept_err);
        }
        return;
    }
    int fd = cqe->res;
    if (srv->n_listeners == 0 || loop->count >= srv->cfg.max_conns) {
        al_reject(fd);   /* over the limit, or accepted while the stop closed the listeners */
        return;
    }
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char peer[AL_ADDRESS_LEN] = "?";
    if (getpeername(fd, (struct sockaddr *)&ss, &len) == 0)
        al_accepted(fd, (struct sockaddr *)&ss, &loop->pause, peer, sizeof peer);
    else
        al_pause_clear(&loop->pause);
    open_conn(loop, fd, peer, now);
}

/* Arms every listener's multishot accept, or cancels them (the accept pause, the stop). */
static void set_accepting(struct uring_loop *loop, int on)
{
    struct al_server *srv = loop->srv;
    if (!on && !loop->accepting)
        return;
    loop->accepting = on;
    for (int i = 0; i < srv->n_listeners; i++) {
        if (on && loop->accept_armed[i] == ACCEPT_IDLE) {
            struct io_uring_sqe *sqe = get_sqe(loop, TAG((uint64_t)i << 3, OP_ACCEPT));
            if (sqe == NULL)
                continue;
            io_uring_prep_multishot_accept(sqe, srv->listeners[i], NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
            loop->accept_armed[i] = ACCEPT_ARMED;
        } else if (!on && loop->accept_armed[i] == ACCEPT_ARMED) {
            cancel(loop, TAG((uint64_t)i << 3, OP_ACCEPT));
            loop->accept_armed[i] = ACCEPT_CANCELLED;   /* until its last completion */
        }
    }
}

/* The stop descriptor once (it is never drained) and the wake-up descriptor while it lasts. */
static void watch_control(struct uring_loop *loop)
{
    struct al_server *srv = loop->srv;
    struct io_uring_sqe *sqe;
    if (!loop->stop_armed && !al_stopping(srv) && (sqe = get_sqe(loop, TAG(0, OP_STOP))) != NULL) {
        io_uring_prep_poll_add(sqe, srv->stop_r, POLLIN);
        loop->stop_armed = 1;
    }
    if (!loop->wake_armed && (sqe = get_sqe(loop, TAG(0, OP_WAKE))) != NULL) {
        io_uring_prep_poll_multishot(sqe, srv->wake_r, POLLIN);
        loop->wake_armed = 1;
    }
}

static void on_recv(struct uring_loop *loop, struct uconn *u, const struct io_uring_cqe *cqe, double now)
{
    const char *data = NULL;
    int has_buffer = (cqe->flags & IORING_CQE_F_BUFFER) != 0;
    unsigned short bid = (unsigned short)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
    if (!(cqe->flags & IORING_CQE_F_MORE))
        u->recv_armed = 0;
    if (has_buffer)
        data = loop->buf_base + (size_t)bid * BUF_SIZE;
    if (cqe->res >= 0)
        al_conn_on_data(&u->c, data, (size_t)cqe->res, now);
    else if (cqe->res != -ENOBUFS && cqe->res != -ECANCELED && u->c.phase != AL_CLOSED)
        al_conn_fail(&u->c, "recv", -cqe->res);   /* ENOBUFS: re-armed by update */
    if (has_buffer)
        recycle_buffer(loop, bid);
}

static void on_send(struct uconn *u, const struct io_uring_cqe *cqe, double now)
{
    struct al_conn *c = &u->c;
    u->send_busy = 0;
    if (c->phase == AL_CLOSED || cqe->res < 0) {
        if (c->phase != AL_CLOSED)
            al_conn_fail(c, "send", -cqe->res);
        c->in_flight = 0;
        return;   /* unlink_conn frees the buffer */
    }
    c->last_active = now;
    u->send_off += (uint32_t)cqe->res;
    c->in_flight -= (uint32_t)cqe->res;
    if (c->in_flight > 0)
        return;   /* a short send: update() sends the rest from the same buffer */
    free(u->sending);
    u->sending = NULL;
    if (!(c->service->produces && c->phase == AL_SERVING))
        al_conn_on_sent(c, now);   /* a producer refills after arm_writable's poll instead */
}

/* One completion. */
static void handle(struct uring_loop *loop, const struct io_uring_cqe *cqe, double now)
{
    uint64_t data = io_uring_cqe_get_data64(cqe);
    unsigned op = (unsigned)(data & OP_MASK);
    struct uconn *u = (struct uconn *)(uintptr_t)(data & ~(uint64_t)OP_MASK);
    switch (op) {
    case OP_ACCEPT:
        accept_batch(loop, (int)(data >> 3), cqe, now);
        return;
    case OP_RECV:
        on_recv(loop, u, cqe, now);
        break;
    case OP_SEND:
        on_send(u, cqe, now);
        break;
    case OP_WRITABLE:
        u->poll_busy = 0;
        if (cqe->res >= 0)
            al_conn_on_sent(&u->c, now);   /* a producer's refill; an error shows in its send */
        break;
    case OP_STOP:
        loop->stop_armed = 0;   /* the loop's top sees the flag */
        return;
    case OP_WAKE:
        if (!(cqe->flags & IORING_CQE_F_MORE))
            loop->wake_armed = 0;
        al_drain_wake(loop->srv);
        return;
    default:
        return;   /* a cancellation's own completion */
    }
    update(loop, u);
}

/* Every connection's timers, once per tick rather than per event. */
static void sweep_timers(struct uring_loop *loop, double now)
{
    struct uconn *next;
    for (struct uconn *u = loop->conns; u != NULL; u = next) {
        next = u->next;   /* update may free u */
        if (u->c.phase == AL_CLOSED)
            continue;
        al_conn_on_timer(&u->c, now);
        update(loop, u);
    }
}

/* Once stopping: stop accepting, close the listeners, give every connection the grace deadline. */
static void begin_stop(struct uring_loop *loop)
{
    struct al_server *srv = loop->srv;
    set_accepting(loop, 0);
    /* A multishot accept holds the listening socket until its cancellation completes (and
     * ending the ring releases it later still, in the kernel's own time): shutdown stops the
     * listening itself now, so that from here on a connect is refused, as in the other models. */
    for (int i = 0; i < srv->n_listeners; i++)
        shutdown(srv->listeners[i], SHUT_RDWR);
    al_close_listeners(srv);
    double deadline = al_stop_deadline(srv);
    for (struct uconn *u = loop->conns; u != NULL; u = u->next)
        if (u->c.phase != AL_CLOSED)
            u->c.stop_by = deadline;
}

/* Once stopping: begins the stop (once); nonzero when the last connection is over. */
static int stop_done(struct uring_loop *loop)
{
    if (!al_stopping(loop->srv))
        return 0;
    if (!loop->stopped) {
        begin_stop(loop);
        loop->stopped = 1;
    }
    return loop->count == 0;
}

/* Waits for completions, submitting what the turn queued: one io_uring_enter.
 * Returns AL_OK (completions, the timeout or a signal) or AL_ERR with err filled. */
static int wait_turn(struct uring_loop *loop, double timeout, struct al_error *err)
{
    struct io_uring_cqe *cqe;
    struct __kernel_timespec ts;
    int ms = al_timeout_ms(timeout);
    if (ms >= 0) {
        ts.tv_sec = ms / 1000;
        ts.tv_nsec = (long long)(ms % 1000) * 1000000;
    }
    int rc = io_uring_submit_and_wait_timeout(&loop->ring, &cqe, 1, ms >= 0 ? &ts : NULL, NULL);
    if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
        al_error_set(err, "io_uring_enter", "loop", -rc);
        return AL_ERR;
    }
    return AL_OK;
}

static double turn_timeout(const struct uring_loop *loop, double now)
{
    double timeout = loop->count > 0 ? AL_TIMER_TICK : -1.0;
    if (loop->srv->n_listeners > 0 && !loop->accepting) {
        double left = loop->pause.until - now;
        if (timeout < 0.0 || left < timeout)
            timeout = left > 0.0 ? left : 0.0;
    }
    return timeout;
}

static int loop_init(struct uring_loop *loop, struct al_error *err)
{
    int rc = ring_init(&loop->ring, RING_ENTRIES);
    if (rc < 0) {
        set_setup_error(err, -rc);
        return AL_ERR;
    }
    loop->ring_ready = 1;
    /* Each io_uring_enter then skips looking the ring's descriptor up; without it, it just does. */
    (void)io_uring_register_ring_fd(&loop->ring);
    loop->accept_armed = calloc((size_t)loop->srv->n_listeners + 1, 1);
    rc = loop->accept_armed == NULL ? -ENOMEM : setup_buffers(loop);
    if (rc < 0) {
        al_error_set(err, "io_uring_register_buf_ring", "loop", -rc);
        return AL_ERR;
    }
    return AL_OK;
}

static void close_all(struct uring_loop *loop)
{
    /* Ending the ring ends every request it holds; only then is nothing read or written. */
    io_uring_queue_exit(&loop->ring);
    while (loop->conns != NULL) {
        al_conn_close(&loop->conns->c);
        unlink_conn(loop, loop->conns);
    }
    if (loop->bufs != NULL)
        munmap(loop->bufs, BUF_COUNT * sizeof(struct io_uring_buf));
    free(loop->buf_base);
    free(loop->accept_armed);
}

/* step: loop uring */
int al_run_uring(struct al_server *srv, struct al_error *err)
{
    struct uring_loop loop = { .srv = srv };
    int rc = AL_OK;
    double next_tick = 0.0;
    if (loop_init(&loop, err) != AL_OK) {
        al_close_listeners(srv);
        if (loop.ring_ready)
            close_all(&loop);
        return AL_ERR;
    }
    for (;;) {
        double now = al_now();
        if (stop_done(&loop))
            break;
        set_accepting(&loop, srv->n_listeners > 0 && !al_pause_active(&loop.pause, now));
        watch_control(&loop);
        if (wait_turn(&loop, turn_timeout(&loop, now), err) != AL_OK) {
            rc = AL_ERR;   /* the ring itself failed: the connections are closed, not given the grace */
            al_server_stop(srv);
            al_close_listeners(srv);
            break;
        }
        now = al_now();
        struct io_uring_cqe *cqe;
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&loop.ring, head, cqe) {
            handle(&loop, cqe, now);
            seen++;
        }
        io_uring_cq_advance(&loop.ring, seen);
        if (now >= next_tick) {
            next_tick = now + AL_TIMER_TICK;
            sweep_timers(&loop, now);
        }
    }
    close_all(&loop);
    return rc;
}
/* end step */
