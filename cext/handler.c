/* The handler API (acceptloop.h, "The handler API"): a service whose events
 * call the handler's function pointers. The connection state machine
 * (conn.c) drives it like any other service; only what the service does is
 * somebody else's code. */
#include "handler.h"

#include "protocol.h"
#include "server.h"

static const struct al_handler *handler_of(const struct al_conn *c)
{
    return c->cfg->handler;
}

/* A callback said AL_ERR: it has logged why; the connection ends now. */
static void check(struct al_conn *c, int rc)
{
    if (rc != AL_OK)
        al_conn_close(c);
}

static void handler_on_open(struct al_conn *c, double now)
{
    (void)now;
    const struct al_handler *h = handler_of(c);
    if (h->on_open != NULL)
        check(c, h->on_open(c, h->data));
}

static void handler_on_data(struct al_conn *c, const char *data, size_t len, double now)
{
    (void)now;
    const struct al_handler *h = handler_of(c);
    if (h->on_data != NULL)
        check(c, h->on_data(c, data, len, h->data));
}

static void handler_on_eof(struct al_conn *c, double now)
{
    (void)now;
    const struct al_handler *h = handler_of(c);
    if (h->on_eof != NULL)
        check(c, h->on_eof(c, h->data));
    else
        al_conn_finish(c);
}

static void handler_refill(struct al_conn *c, double now)
{
    (void)now;
    const struct al_handler *h = handler_of(c);
    if (h->on_writable != NULL)
        check(c, h->on_writable(c, h->data));
}

/* Called by al_conn_close, once, after the socket is closed. */
static void handler_release(struct al_conn *c)
{
    const struct al_handler *h = handler_of(c);
    if (h->on_close != NULL)
        h->on_close(c, h->data);
}

/* One table per service name, with and without `produces`: the name is in the
 * core's log lines (idle timeout), which must read as the service's own. */
#define HANDLER_OPS(service, produces) \
    { service, produces, handler_on_open, handler_on_data, handler_on_eof, handler_refill, handler_release }

static const struct al_service_ops handler_ops[2][AL_SERVICE_COUNT] = {
    {
        [AL_SERVICE_ECHO] = HANDLER_OPS("echo", 0),
        [AL_SERVICE_DISCARD] = HANDLER_OPS("discard", 0),
        [AL_SERVICE_CHARGEN] = HANDLER_OPS("chargen", 0),
        [AL_SERVICE_DAYTIME] = HANDLER_OPS("daytime", 0),
        [AL_SERVICE_MESSAGE] = HANDLER_OPS("message", 0),
    },
    {
        [AL_SERVICE_ECHO] = HANDLER_OPS("echo", 1),
        [AL_SERVICE_DISCARD] = HANDLER_OPS("discard", 1),
        [AL_SERVICE_CHARGEN] = HANDLER_OPS("chargen", 1),
        [AL_SERVICE_DAYTIME] = HANDLER_OPS("daytime", 1),
        [AL_SERVICE_MESSAGE] = HANDLER_OPS("message", 1),
    },
};

const struct al_service_ops *al_handler_service(const struct al_config *cfg)
{
    return &handler_ops[cfg->handler->produces ? 1 : 0][cfg->service];
}

/* What the handler may call on its connection (from inside a callback). */

int al_handler_write(al_conn *c, const char *bytes, size_t len)
{
    al_conn_emit(c, bytes, len, al_now());
    return c->phase == AL_CLOSED ? AL_ERR : AL_OK;
}

long al_handler_offer(al_conn *c, const char *bytes, size_t len)
{
    if (c->phase == AL_CLOSED)
        return -1;
    if (al_conn_pending(c) > 0)
        return 0;   /* earlier output waits: this would overtake it */
    return (long)al_conn_offer(c, bytes, len, al_now());
}

void al_handler_end(al_conn *c)
{
    al_conn_finish(c);
}

const char *al_handler_peer(const al_conn *c)
{
    return c->peer;
}
