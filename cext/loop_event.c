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

struct event_loop {
    struct al_server *srv;
    struct al_poller *poller;
    struct al_conn **conns;   /* by descriptor; NULL where none */
    int cap, max_fd, count;
    int accepting;            /* the listeners are in the poller */
    char *buf;                /* the one read buffer of this loop */
};

/* Keeps the poller asking for what the connection wants, or forgets the
 * connection once it is closed. Only a change costs an epoll_ctl. */
static void update(struct event_loop *loop, struct al_conn *c)
{
    if (c->phase == AL_CLOSED) {
        loop->conns[c->fd] = NULL;
        loop->count--;
        if (loop->srv->shared_count != NULL)
            atomic_fetch_sub(loop->srv->shared_count, 1);
        free(c);
        return;
    }
    int mask = (al_conn_wants_read(c) ? AL_READABLE : 0) | (al_conn_wants_write(c) ? AL_WRITABLE : 0);
    if (c->poll_mask == (AL_IN_POLLER | mask))
        return;
    int rc = c->poll_mask & AL_IN_POLLER ? al_poll_modify(loop->poller, c->fd, mask)
                                         : al_poll_add(loop->poller, c->fd, mask);
    if (rc < 0) {
        al_conn_fail(c, "epoll_ctl", al_sock_error());
        update(loop, c);
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
        update(loop, c);
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
        update(loop, c);
    }
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
        update(loop, c);
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
    loop.poller = srv->poller != NULL ? srv->poller : al_poll_create();
    srv->poller = NULL;   /* the loop's from now on */
    if (loop.buf == NULL || loop.poller == NULL || al_poll_add(loop.poller, srv->stop_r, AL_READABLE) < 0 ||
        al_poll_add(loop.poller, srv->wake_r, AL_READABLE) < 0) {
        al_error_set(err, "epoll", "loop", al_sock_error());
        al_close_listeners(srv);
        al_poll_free(loop.poller);
        free(loop.buf);
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
        double timeout = loop.count > 0 ? AL_TIMER_TICK : -1.0;
        if (open && !loop.accepting) {
            double left = pause.until - now;
            if (timeout < 0.0 || left < timeout)
                timeout = left > 0.0 ? left : 0.0;
        }
        int n = al_poll_wait(loop.poller, al_timeout_ms(timeout));
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
        if (now >= next_tick) {
            next_tick = now + AL_TIMER_TICK;
            sweep_timers(&loop, now);
        }
    }
    close_all(&loop);
    al_poll_free(loop.poller);
    free(loop.buf);
    return rc;
}
/* end step */
