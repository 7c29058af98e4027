/* The event model: one thread and one poller (epoll) holding the stop and
 * wake descriptors, the listeners and every connection. Connections are
 * indexed by descriptor in a growable array, as redis ae does. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "errors.h"
#include "platform.h"
#include "poller.h"
#include "protocol.h"
#include "server.h"

/* A connection that is lingering before the poller ever held it (daytime: the line and our FIN go
 * out from the accept itself) is not put into the poller then. There the client's FIN would wake
 * this loop for nothing but a close, and on loopback the client's CPU pays for that wakeup. It
 * waits in `deferred` instead, and LINGER_LOOK seconds later one recv tells: the client's FIN (the
 * usual case), and it is closed without an epoll_ctl; anything else, and it joins the poller as
 * any lingering connection does. Only while at least two other connections (not waiting here
 * themselves) are open, though: their events wake the loop anyway and the look rides on them,
 * whereas for a loop's only connection, or one of two (one client reconnecting), the FIN's
 * wakeup is the one the loop needs (without it the loop sleeps longer, and on a virtual machine a
 * longer sleep makes the next wakeup slower and dearer). docs/performance.md, "The connection rate". */
#define LINGER_LOOK 0.001
#define DEFERRED_MAX 4096   /* when full, a lingering connection goes into the poller at once */

enum { DEFER_NOT_YET, DEFER_WAITING, DEFER_LOOKED };   /* al_conn.linger_deferred */

struct deferred {
    int fd;
    double due;
};

struct event_loop {
    struct al_server *srv;
    struct al_poller *poller;
    struct al_conn **conns;   /* by descriptor; NULL where none */
    int cap, max_fd, count;
    int accepting;            /* the listeners are in the poller */
    char *buf;                /* the one read buffer of this loop */
    struct deferred *deferred;   /* a ring of DEFERRED_MAX, oldest first */
    int first_deferred, n_deferred;
};

/* Puts a connection that lingers before it was ever polled into `deferred`; 0 if it does not. */
static int defer_linger(struct event_loop *loop, struct al_conn *c, double now)
{
    if (c->phase != AL_LINGERING || (c->poll_mask & AL_IN_POLLER) || c->linger_deferred != DEFER_NOT_YET ||
        loop->count - loop->n_deferred < 3 || loop->n_deferred == DEFERRED_MAX)
        return 0;
    struct deferred *d = &loop->deferred[(loop->first_deferred + loop->n_deferred++) % DEFERRED_MAX];
    d->fd = c->fd;
    d->due = now + LINGER_LOOK;
    c->linger_deferred = DEFER_WAITING;
    return 1;
}

/* Keeps the poller asking for what the connection wants, or forgets the
 * connection once it is closed. Only a change costs an epoll_ctl. */
static void update(struct event_loop *loop, struct al_conn *c, double now)
{
    if (c->phase == AL_CLOSED) {
        loop->conns[c->fd] = NULL;
        loop->count--;
        if (loop->srv->shared_count != NULL)
            atomic_fetch_sub(loop->srv->shared_count, 1);
        free(c);
        return;
    }
    if (c->linger_deferred == DEFER_WAITING || defer_linger(loop, c, now))
        return;
    int mask = (al_conn_wants_read(c) ? AL_READABLE : 0) | (al_conn_wants_write(c) ? AL_WRITABLE : 0);
    if (c->poll_mask == (AL_IN_POLLER | mask))
        return;
    int rc = c->poll_mask & AL_IN_POLLER ? al_poll_modify(loop->poller, c->fd, mask)
                                         : al_poll_add(loop->poller, c->fd, mask);
    if (rc < 0) {
        al_conn_fail(c, "epoll_ctl", al_sock_error());
        update(loop, c, now);
        return;
    }
    c->poll_mask = (unsigned char)(AL_IN_POLLER | mask);
}

/* Makes room for descriptor fd in the array; AL_ERR when memory ran out. */
static int make_room(struct event_loop *loop, int fd)
{
    if (fd < loop->cap)
        return AL_OK;
    int cap = loop->cap ? loop->cap : 1024;
    while (cap <= fd)
        cap *= 2;
    struct al_conn **grown = realloc(loop->conns, (size_t)cap * sizeof *grown);
    if (grown == NULL)
        return AL_ERR;
    memset(grown + loop->cap, 0, (size_t)(cap - loop->cap) * sizeof *grown);
    loop->conns = grown;
    loop->cap = cap;
    return AL_OK;
}

/* Whether one more connection fits under --max-conns, and if so counts it: in this loop's own
 * count, or (--workers) in the count every worker shares, taken exactly by compare-and-swap. */
static int take_slot(struct event_loop *loop)
{
    atomic_int *shared = loop->srv->shared_count;
    int max = loop->srv->cfg.max_conns;
    if (shared == NULL)
        return loop->count < max;
    int held = atomic_load(shared);
    while (held < max)
        if (atomic_compare_exchange_weak(shared, &held, held + 1))
            return 1;
    return 0;
}

/* Up to ACCEPT_BATCH connections from one listener that reported readiness. */
static void accept_batch(struct event_loop *loop, int listener, struct al_pause *pause, double now)
{
    for (int i = 0; i < AL_ACCEPT_BATCH; i++) {
        struct al_error accept_err;
        char peer[AL_ADDRESS_LEN];
        int fd = al_accept_client(&accept_err, listener, pause, peer, sizeof peer);
        if (fd == AL_ERR) {
            al_log_accept_error(&accept_err);
            return;
        }
        if (!take_slot(loop)) {
            al_reject(fd);
            continue;
        }
        struct al_conn *c = malloc(sizeof *c);
        if (c == NULL || make_room(loop, fd) != AL_OK) {
            al_log_error("accept", peer, ENOMEM);
            free(c);
            al_sock_close(fd);
            if (loop->srv->shared_count != NULL)
                atomic_fetch_sub(loop->srv->shared_count, 1);
            continue;
        }
        loop->conns[fd] = c;
        loop->count++;
        if (fd > loop->max_fd)
            loop->max_fd = fd;
        al_conn_open(c, fd, peer, &loop->srv->cfg, loop->poller, now);
        update(loop, c, now);
    }
}

/* Puts the listeners into the poller or takes them out (the accept pause, the stop). */
static void set_accepting(struct event_loop *loop, int on)
{
    struct al_server *srv = loop->srv;
    if (on == loop->accepting)
        return;
    for (int i = 0; i < srv->n_listeners; i++) {
        if (on)
            al_poll_add(loop->poller, srv->listeners[i], AL_READABLE);
        else
            al_poll_remove(loop->poller, srv->listeners[i]);
    }
    loop->accepting = on;
}

static int is_listener(const struct al_server *srv, int fd)
{
    for (int i = 0; i < srv->n_listeners; i++)
        if (srv->listeners[i] == fd)
            return 1;
    return 0;
}

/* Every connection's timers, once per tick rather than per event. */
static void sweep_timers(struct event_loop *loop, double now)
{
    for (int fd = 0; fd <= loop->max_fd && fd < loop->cap; fd++) {
        struct al_conn *c = loop->conns[fd];
        if (c == NULL)
            continue;
        al_conn_on_timer(c, now);
        update(loop, c, now);
    }
}

/* The deferred connections whose LINGER_LOOK is up: one recv each (the client's FIN closes it). */
static void look_at_deferred(struct event_loop *loop, double now)
{
    while (loop->n_deferred > 0) {
        struct deferred *d = &loop->deferred[loop->first_deferred];
        if (d->due > now)
            return;
        loop->first_deferred = (loop->first_deferred + 1) % DEFERRED_MAX;
        loop->n_deferred--;
        struct al_conn *c = d->fd < loop->cap ? loop->conns[d->fd] : NULL;
        if (c == NULL || c->linger_deferred != DEFER_WAITING)
            continue;   /* closed meanwhile (its grace ran out): the entry was stale */
        c->linger_deferred = DEFER_LOOKED;   /* from now on the poller's, like any lingering connection */
        al_conn_on_readable(c, loop->buf, now);
        update(loop, c, now);
    }
}

/* How long the poller may wait: forever with no connection, else until the next timer tick, the
 * end of the accept pause or the first deferred look, whichever comes first. */
static double poll_timeout(const struct event_loop *loop, const struct al_pause *pause, int open, double now)
{
    double timeout = loop->count > 0 ? AL_TIMER_TICK : -1.0;
    if (open && !loop->accepting) {
        double left = pause->until - now;
        if (timeout < 0.0 || left < timeout)
            timeout = left > 0.0 ? left : 0.0;
    }
    if (loop->n_deferred > 0) {
        double left = loop->deferred[loop->first_deferred].due - now;
        if (timeout < 0.0 || left < timeout)
            timeout = left > 0.0 ? left : 0.0;
    }
    return timeout;
}

/* Once stopping: stop accepting, close the listeners, give every connection the grace deadline. */
static void begin_stop(struct event_loop *loop)
{
    struct al_server *srv = loop->srv;
    set_accepting(loop, 0);
    al_close_listeners(srv);
    al_poll_remove(loop->poller, srv->stop_r);   /* never drained: it would fire forever */
    double deadline = al_stop_deadline(srv);
    for (int fd = 0; fd <= loop->max_fd && fd < loop->cap; fd++)
        if (loop->conns[fd] != NULL)
            loop->conns[fd]->stop_by = deadline;
}

static void handle(struct event_loop *loop, const struct al_fired *ev, struct al_pause *pause, double now)
{
    struct al_server *srv = loop->srv;
    if (ev->fd == srv->stop_r)
        return;   /* the loop's top sees the flag */
    if (ev->fd == srv->wake_r) {
        al_drain_wake(srv);
        return;
    }
    struct al_conn *c = ev->fd < loop->cap ? loop->conns[ev->fd] : NULL;
    if (c != NULL) {
        if (ev->mask & AL_READABLE)
            al_conn_on_readable(c, loop->buf, now);
        if ((ev->mask & AL_WRITABLE) && al_conn_wants_write(c))
            al_conn_on_writable(c, now);
        update(loop, c, now);
    } else if (loop->accepting && is_listener(srv, ev->fd)) {
        accept_batch(loop, ev->fd, pause, now);
    }
}

static void close_all(struct event_loop *loop)
{
    for (int fd = 0; fd <= loop->max_fd && fd < loop->cap; fd++) {
        if (loop->conns[fd] != NULL) {
            al_conn_close(loop->conns[fd]);
            free(loop->conns[fd]);
            if (loop->srv->shared_count != NULL)
                atomic_fetch_sub(loop->srv->shared_count, 1);
        }
    }
    free(loop->conns);
}

/* step: loop event */
int al_run_event(struct al_server *srv, struct al_error *err)
{
    struct event_loop loop = { .srv = srv, .max_fd = -1 };
    struct al_pause pause = { 0.0, 0.0 };
    int rc = AL_OK, stopped = 0;
    double next_tick = 0.0;
    loop.buf = malloc(AL_READ_SIZE);
    loop.deferred = malloc(DEFERRED_MAX * sizeof *loop.deferred);
    loop.poller = srv->poller != NULL ? srv->poller : al_poll_create();
    srv->poller = NULL;   /* the loop's from now on */
    if (loop.buf == NULL || loop.deferred == NULL || loop.poller == NULL || al_poll_add(loop.poller, srv->stop_r, AL_READABLE) < 0 ||
        al_poll_add(loop.poller, srv->wake_r, AL_READABLE) < 0) {
        al_error_set(err, "epoll", "loop", al_sock_error());
        al_close_listeners(srv);
        al_poll_free(loop.poller);
        free(loop.buf);
        free(loop.deferred);
        return AL_ERR;
    }
    for (;;) {
        double now = al_now();
        if (al_stopping(srv)) {
            if (!stopped) {
                begin_stop(&loop);
                stopped = 1;
            }
            if (loop.count == 0)
                break;
        }
        int open = srv->n_listeners > 0;
        set_accepting(&loop, open && !al_pause_active(&pause, now));
        int n = al_poll_wait(loop.poller, al_timeout_ms(poll_timeout(&loop, &pause, open, now)));
        if (n < 0) {
            /* The poller itself failed: nothing can be driven any more, so
             * the connections are closed below rather than given the grace. */
            al_error_set(err, "epoll_wait", "loop", al_sock_error());
            rc = AL_ERR;
            al_server_stop(srv);
            al_close_listeners(srv);
            break;
        }
        now = al_now();
        const struct al_fired *fired = al_poll_fired(loop.poller);
        for (int i = 0; i < n; i++)
            handle(&loop, &fired[i], &pause, now);
        look_at_deferred(&loop, now);
        if (now >= next_tick) {
            next_tick = now + AL_TIMER_TICK;
            sweep_timers(&loop, now);
        }
    }
    close_all(&loop);
    al_poll_free(loop.poller);
    free(loop.buf);
    free(loop.deferred);
    return rc;
}
/* end step */
