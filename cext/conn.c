/* The connection state machine (see conn.h): serving -> flushing -> lingering -> closed. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "errors.h"
#include "handler.h"
#include "platform.h"
#include "poller.h"
#include "protocol.h"

static void settle(struct al_conn *c, double now);
static void shutdown_conn(struct al_conn *c, double now);
static int keep(struct al_conn *c, const char *data, size_t len);
static ssize_t offer(struct al_conn *c, const char *data, size_t len, double now, int last);
static void emit(struct al_conn *c, const char *data, size_t len, double now, int last);

void al_conn_open(struct al_conn *c, int fd, const char *peer, const struct al_config *cfg,
                  struct al_poller *poller, double now)
{
    memset(c, 0, sizeof *c);
    c->fd = fd;
    c->phase = AL_SERVING;
    c->input_open = 1;
    c->service = cfg->handler != NULL ? al_handler_service(cfg) : al_services[cfg->service];   /* handler.c */
    c->cfg = cfg;
    c->poller = poller;
    c->ring = cfg->model == AL_MODEL_URING;   /* output waits in `out` for the ring (loop_uring.c) */
    c->last_active = now;
    snprintf(c->peer, sizeof c->peer, "%s", peer);
    if (c->service->on_open != NULL)
        c->service->on_open(c, now);
    settle(c, now);
}

int al_conn_wants_read(const struct al_conn *c)
{
    return c->input_open && !c->reading_paused && c->phase != AL_CLOSED;
}

int al_conn_wants_write(const struct al_conn *c)
{
    if (c->phase == AL_SERVING)
        return al_conn_pending(c) > 0 || c->service->produces;
    return c->phase == AL_FLUSHING;
}

double al_conn_deadline(const struct al_conn *c)
{
    double due = 0.0;
    if (c->stop_by > 0.0)
        due = c->stop_by;
    if (c->linger_until > 0.0 && (due == 0.0 || c->linger_until < due))
        due = c->linger_until;
    if (c->cfg->idle_timeout > 0.0) {
        double idle = c->last_active + c->cfg->idle_timeout;
        if (due == 0.0 || idle < due)
            due = idle;
    }
    return due;
}

/* step: read/write */
void al_conn_on_readable(struct al_conn *c, char *buf, double now)
{
    if (c->phase == AL_CLOSED || !c->input_open)
        return;
    ssize_t n = al_sock_recv(c->fd, buf, AL_READ_SIZE);
    if (n < 0) {
        int code = al_sock_error();
        if (!al_sock_retry_later(code))
            al_conn_fail(c, "recv", code);
        return;
    }
    al_conn_on_data(c, buf, (size_t)n, now);
}

void al_conn_on_data(struct al_conn *c, const char *buf, size_t n, double now)
{
    if (c->phase == AL_CLOSED || !c->input_open)
        return;
    c->last_active = now;
    if (n == 0) {
        c->input_open = 0;
        if (c->phase == AL_SERVING)
            c->service->on_eof(c, now);
        else if (c->phase == AL_LINGERING)
            al_conn_close(c);
    } else if (c->phase == AL_SERVING) {
        /* The service's output goes out at once (al_conn_emit): write-through,
         * so the poller is asked for writability only after a short write. */
        c->service->on_data(c, buf, n, now);
    }
    settle(c, now);
}

ssize_t al_conn_offer(struct al_conn *c, const char *data, size_t len, double now)
{
    return offer(c, data, len, now, 0);
}

/* last: nothing follows but our FIN (al_sock_send_last). */
static ssize_t offer(struct al_conn *c, const char *data, size_t len, double now, int last)
{
    if (c->ring) {
        /* uring: copied for the ring's next batch of sends (the loop takes `out`). */
        if (keep(c, data, len) < 0) {
            al_conn_fail(c, "send", ENOMEM);
            return -1;
        }
        return (ssize_t)len;
    }
    /* Never SIGPIPE: a reset peer is an error here (MSG_NOSIGNAL, platform.h). */
    ssize_t n = last ? al_sock_send_last(c->fd, data, len) : al_sock_send(c->fd, data, len);
    if (n < 0) {
        int code = al_sock_error();
        if (al_sock_retry_later(code))
            return 0;
        al_conn_fail(c, "send", code);
        return -1;
    }
    c->last_active = now;
    return n;
}

/* Keeps what a short write left behind, after what already waits. */
static int keep(struct al_conn *c, const char *data, size_t len)
{
    size_t pending = c->out_len - c->out_off;   /* what `out` keeps; in_flight is elsewhere */
    if (c->out_off > 0 && c->out_len + len > c->out_cap) {
        memmove(c->out, c->out + c->out_off, pending);
        c->out_off = 0;
        c->out_len = (uint32_t)pending;
    }
    if (c->out_len + len > c->out_cap) {
        size_t cap = (size_t)c->out_cap * 2;
        if (cap < c->out_len + len)
            cap = c->out_len + len;
        char *grown = realloc(c->out, cap);
        if (grown == NULL)
            return -1;
        c->out = grown;
        c->out_cap = (uint32_t)cap;
    }
    memcpy(c->out + c->out_len, data, len);
    c->out_len += (uint32_t)len;
    return 0;
}

static void drop_output(struct al_conn *c)
{
    free(c->out);
    c->out = NULL;
    c->out_off = c->out_len = c->out_cap = 0;
}

void al_conn_emit(struct al_conn *c, const char *data, size_t len, double now)
{
    emit(c, data, len, now, 0);
}

void al_conn_emit_last(struct al_conn *c, const char *data, size_t len, double now)
{
    emit(c, data, len, now, 1);
    al_conn_finish(c);
}

static void emit(struct al_conn *c, const char *data, size_t len, double now, int last)
{
    if (c->phase == AL_CLOSED || len == 0)
        return;
    if (al_conn_pending(c) == 0) {
        ssize_t sent = offer(c, data, len, now, last);
        if (sent < 0)
            return;
        data += sent;
        len -= (size_t)sent;
        if (len == 0)
            return;
    }
    if (keep(c, data, len) < 0)
        al_conn_fail(c, "send", ENOMEM);
}

static void send_output(struct al_conn *c, double now)
{
    ssize_t sent = al_conn_offer(c, c->out + c->out_off, c->out_len - c->out_off, now);
    if (sent <= 0)
        return;
    c->out_off += (uint32_t)sent;
    if (c->out_off == c->out_len)
        drop_output(c);   /* drained: an idle connection holds no buffer */
}

void al_conn_on_writable(struct al_conn *c, double now)
{
    if (c->phase == AL_CLOSED)
        return;
    if (al_conn_pending(c) > 0)
        send_output(c, now);
    al_conn_on_sent(c, now);
}

void al_conn_on_sent(struct al_conn *c, double now)
{
    if (c->phase == AL_CLOSED)
        return;
    if (c->phase == AL_SERVING && al_conn_pending(c) == 0 && c->service->refill != NULL)
        c->service->refill(c, now);
    settle(c, now);
}
/* end step */

void al_conn_on_timer(struct al_conn *c, double now)
{
    if (c->phase == AL_CLOSED)
        return;
    if (c->stop_by > 0.0 && now >= c->stop_by) {
        al_conn_close(c);
    } else if (c->linger_until > 0.0 && now >= c->linger_until) {
        al_conn_close(c);
    } else if (c->cfg->idle_timeout > 0.0 && now - c->last_active >= c->cfg->idle_timeout) {
        al_log("%s %s: idle for %g s; closed", c->service->name, c->peer, c->cfg->idle_timeout);
        al_conn_close(c);
    }
}

void al_conn_finish(struct al_conn *c)
{
    if (c->phase == AL_SERVING)
        c->phase = AL_FLUSHING;
}

/* After any event: apply backpressure, and move on once output is flushed. */
static void settle(struct al_conn *c, double now)
{
    if (c->phase == AL_CLOSED)
        return;
    size_t pending = al_conn_pending(c);
    if (pending >= AL_HIGH_WATER)
        c->reading_paused = 1;
    else if (pending < AL_LOW_WATER)
        c->reading_paused = 0;
    if (c->phase == AL_FLUSHING && pending == 0)
        shutdown_conn(c, now);
}

/* step: shutdown and close */
static void shutdown_conn(struct al_conn *c, double now)
{
    /* Our FIN first; the client's input is drained until its FIN (or the
     * linger time), because closing with unread input sends an RST that can
     * destroy the reply it has not read yet (RFC 1122 4.2.2.13). */
    if (al_sock_shutdown_write(c->fd) < 0) {   /* SHUT_WR, or SD_SEND */
        al_conn_close(c);   /* the peer is gone already: nothing left to tell it */
        return;
    }
    if (!c->input_open) {
        al_conn_close(c);
        return;
    }
    c->phase = AL_LINGERING;
    c->linger_until = now + AL_LINGER_SECONDS;
}

void al_conn_close(struct al_conn *c)
{
    if (c->phase == AL_CLOSED)
        return;
    c->phase = AL_CLOSED;
    /* Remove before close: if the socket is shared with a forked process, the
     * registration would outlive our descriptor and report a stranger's fd. */
    if (c->poller != NULL && (c->poll_mask & AL_IN_POLLER))
        al_poll_remove(c->poller, c->fd);
    c->poll_mask = 0;
    al_sock_close(c->fd);
    drop_output(c);
    if (c->service->release != NULL)
        c->service->release(c);
}
/* end step */

void al_conn_fail(struct al_conn *c, const char *step, int code)
{
    /* A connection's failure is that connection's problem: one line, then close. */
    al_log_error(step, c->peer, code);
    al_conn_close(c);
}
