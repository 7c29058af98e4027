/* What the iterative, fork and threads models share: the stop and its
 * deadline, waiting for clients, their skeleton (al_accept_loop: wait, accept,
 * reject over the limit, hand off) and the per-connection loop that drives
 * one connection to its end. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

#include "conn.h"
#include "errors.h"
#include "protocol.h"
#include "server.h"

int al_stopping(const struct al_server *srv)
{
    return atomic_load(&srv->stopping);
}

double al_stop_deadline(const struct al_server *srv)
{
    return srv->stopped_at + srv->cfg.grace;
}

void al_close_listeners(struct al_server *srv)
{
    for (int i = 0; i < srv->n_listeners; i++)
        close(srv->listeners[i]);
    srv->n_listeners = 0;
}

void al_drain_wake(struct al_server *srv)
{
    char sink[64];
    while (read(srv->wake_r, sink, sizeof sink) > 0)
        ;
}

void al_reject(int fd)
{
    close(fd);   /* over --max-conns: closed at once rather than left queued */
}

char *al_read_buffer(struct al_server *srv, struct al_error *err)
{
    char *buf = malloc(AL_READ_SIZE);
    if (buf == NULL) {
        al_error_set(err, "malloc", "read buffer", ENOMEM);
        al_close_listeners(srv);
    }
    return buf;
}

int al_wait_for_clients(struct al_server *srv, const struct al_pause *pause, double cap, struct al_error *err)
{
    struct pollfd *pfds = srv->pfds;
    double now = al_now(), timeout = cap;
    int n = 0;
    pfds[n++] = (struct pollfd){ .fd = srv->stop_r, .events = POLLIN };
    pfds[n++] = (struct pollfd){ .fd = srv->wake_r, .events = POLLIN };
    if (al_pause_active(pause, now)) {
        double left = pause->until - now;
        if (timeout < 0.0 || left < timeout)
            timeout = left;
    } else {
        for (int i = 0; i < srv->n_listeners; i++)
            pfds[n++] = (struct pollfd){ .fd = srv->listeners[i], .events = POLLIN };
    }
    int rc = poll(pfds, (nfds_t)n, al_timeout_ms(timeout));
    if (rc < 0) {
        if (errno == EINTR)
            return 0;   /* a signal: the caller looks at the stop flag first */
        al_error_set(err, "poll", "listeners", errno);
        return AL_ERR;
    }
    if (pfds[1].revents)
        al_drain_wake(srv);
    int ready = 0;
    for (int i = 2; i < n; i++)
        if (pfds[i].revents)
            srv->ready[ready++] = pfds[i].fd;
    return ready;
}

void al_log_accept_error(const struct al_error *err)
{
    if (err->message[0] != '\0')
        al_log("%s", err->message);
}

int al_accept_loop(struct al_server *srv, struct al_hand_off *h, struct al_error *err)
{
    struct al_pause pause = { 0.0, 0.0 };
    int rc = AL_OK;
    while (!al_stopping(srv)) {
        /* A model that reaps (fork) wakes every tick while connections are
         * out, even when no SIGCHLD handler writes the wake pipe. */
        double cap = h->reap != NULL && h->active(h) > 0 ? AL_TIMER_TICK : -1.0;
        int ready = al_wait_for_clients(srv, &pause, cap, err);
        if (ready == AL_ERR) {
            rc = AL_ERR;
            al_server_stop(srv);
            break;
        }
        if (h->reap != NULL)
            h->reap(h);
        for (int i = 0; i < ready && !al_stopping(srv); i++) {
            struct al_error accept_err;
            char peer[AL_ADDRESS_LEN];
            int fd = al_accept_client(&accept_err, srv->ready[i], &pause, peer, sizeof peer);
            if (fd == AL_ERR)
                al_log_accept_error(&accept_err);
            else if (h->active(h) >= srv->cfg.max_conns)
                al_reject(fd);
            else
                h->give(h, fd, peer);
        }
    }
    al_close_listeners(srv);
    return rc;
}

void al_serve_connection(struct al_server *srv, struct al_conn *c, char *buf, void (*on_stop)(struct al_server *srv))
{
    struct pollfd pfds[2];
    while (c->phase != AL_CLOSED) {
        int n = 1;
        if (srv != NULL) {
            if (al_stopping(srv)) {
                /* Stopping: this connection has until the grace deadline. The
                 * stop descriptor stays readable now, so it leaves the set. */
                if (c->stop_by == 0.0)
                    c->stop_by = al_stop_deadline(srv);
                if (on_stop != NULL)
                    on_stop(srv);   /* iterative: al_close_listeners, idempotent */
            } else {
                pfds[n++] = (struct pollfd){ .fd = srv->stop_r, .events = POLLIN };
            }
        }
        pfds[0] = (struct pollfd){
            .fd = c->fd,
            .events = (short)((al_conn_wants_read(c) ? POLLIN : 0) | (al_conn_wants_write(c) ? POLLOUT : 0)),
        };
        double due = al_conn_deadline(c);
        double left = due - al_now();
        int rc = poll(pfds, (nfds_t)n, due > 0.0 ? al_timeout_ms(left > 0.0 ? left : 0.0) : -1);
        double now = al_now();
        if (rc < 0 && errno != EINTR) {
            al_conn_fail(c, "poll", errno);
            break;
        }
        if (rc > 0) {
            short ev = pfds[0].revents;
            if (ev & (POLLIN | POLLHUP | POLLERR))
                al_conn_on_readable(c, buf, now);
            if ((ev & (POLLOUT | POLLERR)) && al_conn_wants_write(c))
                al_conn_on_writable(c, now);
        }
        al_conn_on_timer(c, now);
    }
    al_conn_close(c);
}
