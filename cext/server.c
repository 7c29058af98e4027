/* The server object both front ends use (acceptloop.h): open, run, stop, free. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "acceptloop.h"
#include "errors.h"
#include "platform.h"
#include "poller.h"
#include "protocol.h"
#include "server.h"

static int index_of(const char *const *names, int count, const char *name)
{
    for (int i = 0; name != NULL && i < count; i++)
        if (strcmp(names[i], name) == 0)
            return i;
    return AL_ERR;
}

int al_service_index(const char *name)
{
    return index_of(al_service_names, AL_SERVICE_COUNT, name);
}

int al_model_index(const char *name)
{
    return index_of(al_model_names, AL_MODEL_COUNT, name);
}

int al_transport_index(const char *name)
{
    return index_of(al_transport_names, AL_TRANSPORT_COUNT, name);
}

void al_config_defaults(struct al_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->service = al_service_index(AL_DEFAULT_SERVICE);
    cfg->model = al_model_index(AL_DEFAULT_MODEL);
    cfg->host = AL_DEFAULT_HOST;
    cfg->port = AL_DEFAULT_PORT;
    cfg->backlog = AL_DEFAULT_BACKLOG;
    cfg->grace = AL_DEFAULT_GRACE;
    cfg->max_conns = AL_DEFAULT_MAX_CONNS;
    cfg->idle_timeout = AL_DEFAULT_IDLE_TIMEOUT;
    cfg->ipv6_only = AL_DEFAULT_IPV6_ONLY;
    cfg->transport = al_transport_index(AL_DEFAULT_TRANSPORT);
}

al_server *al_server_new(const struct al_config *cfg)
{
    if (cfg->service < 0 || cfg->service >= AL_SERVICE_COUNT || cfg->model < 0 ||
        cfg->model >= AL_MODEL_COUNT || cfg->max_conns < 1 || cfg->grace < 0.0 ||
        cfg->idle_timeout < 0.0 || cfg->transport < 0 || cfg->transport >= AL_TRANSPORT_COUNT ||
        (cfg->transport == AL_TRANSPORT_UDP && (!AL_DATAGRAM_MODEL(cfg->model) || !AL_DATAGRAM_SERVICE(cfg->service)))) {
        errno = EINVAL;
        return NULL;
    }
    if (cfg->host != NULL && strlen(cfg->host) > AL_MAX_HOST) {
        errno = ENAMETOOLONG;
        return NULL;
    }
    struct al_server *srv = calloc(1, sizeof *srv);
    if (srv == NULL)
        return NULL;
    srv->stop_r = srv->stop_w = srv->wake_r = srv->wake_w = -1;
    srv->cfg = *cfg;
    srv->host_copy = strdup(cfg->host != NULL ? cfg->host : "");
    int stop[2], wake[2];
    if (srv->host_copy == NULL || al_pair_open(stop) < 0) {
        int saved = srv->host_copy == NULL ? errno : al_sock_error();
        al_server_free(srv);
        errno = saved;
        return NULL;
    }
    srv->stop_r = stop[0], srv->stop_w = stop[1];
    if (al_pair_open(wake) < 0) {
        int saved = al_sock_error();
        al_server_free(srv);
        errno = saved;
        return NULL;
    }
    srv->wake_r = wake[0], srv->wake_w = wake[1];
    srv->cfg.host = srv->host_copy;
    srv->error.step = "";
    return srv;
}

static int report(const struct al_error *e, char *err, size_t errlen)
{
    if (err != NULL && errlen > 0) {
        strncpy(err, e->message, errlen - 1);
        err[errlen - 1] = '\0';
    }
    return AL_ERR;
}

int al_server_open(al_server *srv, char *err, size_t errlen)
{
    if (srv->opened) {
        al_error_set(&srv->error, "open", "server", EALREADY);
        return report(&srv->error, err, errlen);
    }
    /* Before any listener: a machine without io_uring says so in one line, with nothing opened. */
    if (srv->cfg.model == AL_MODEL_URING && al_uring_available(&srv->error) != AL_OK)
        return report(&srv->error, err, errlen);
    int n = srv->cfg.transport == AL_TRANSPORT_UDP
                ? al_open_datagram_sockets(&srv->error, &srv->cfg, &srv->listeners)
                : al_open_listeners(&srv->error, &srv->cfg, srv->reuse_port, &srv->listeners);
    if (n == AL_ERR)
        return report(&srv->error, err, errlen);
    srv->n_listeners = n;
    srv->pfds = calloc((size_t)n + 2, sizeof *srv->pfds);
    srv->ready = calloc((size_t)n, sizeof *srv->ready);
    if (srv->pfds == NULL || srv->ready == NULL) {
        al_close_listeners(srv);
        al_error_set(&srv->error, "open", srv->host_copy, ENOMEM);
        return report(&srv->error, err, errlen);
    }
    /* The event loop's poller before READY, as each worker's (workers.c): what the server holds
     * when it says READY is all it holds while idle, so a count taken then is its baseline. */
    if (srv->cfg.model == AL_MODEL_EVENT && srv->cfg.transport == AL_TRANSPORT_TCP && srv->poller == NULL &&
        (srv->poller = al_poll_create()) == NULL) {
        al_error_set(&srv->error, "epoll", "loop", al_sock_error());
        al_close_listeners(srv);
        return report(&srv->error, err, errlen);
    }
    srv->opened = 1;
    return AL_OK;
}

int al_server_error_code(const al_server *srv)
{
    return srv->error.code;
}

const char *al_server_error_step(const al_server *srv)
{
    return srv->error.step != NULL ? srv->error.step : "";
}

int al_server_listener_count(const al_server *srv)
{
    return srv->n_listeners;
}

const int *al_server_listeners(const al_server *srv, int *count)
{
    *count = srv->n_listeners;
    return srv->listeners;
}

int al_server_listener_address(const al_server *srv, int i, char *buf, size_t len, int *port)
{
    if (i < 0 || i >= srv->n_listeners) {
        errno = EINVAL;
        return AL_ERR;
    }
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof ss;
    if (getsockname(srv->listeners[i], (struct sockaddr *)&ss, &sslen) < 0) {
        errno = al_sock_error();
        return AL_ERR;
    }
    return al_sockaddr_host((struct sockaddr *)&ss, buf, len, port);
}

int al_server_run(al_server *srv, char *err, size_t errlen)
{
    static int (*const runs[AL_MODEL_COUNT])(struct al_server *, struct al_error *) = {
        [AL_MODEL_ITERATIVE] = al_run_iterative,
        [AL_MODEL_FORK] = al_run_fork,
        [AL_MODEL_THREADS] = al_run_threads,
        [AL_MODEL_EVENT] = al_run_event,
        [AL_MODEL_URING] = al_run_uring,
    };
    if (!srv->opened || srv->n_listeners == 0) {
        al_error_set(&srv->error, "run", "server", EBADF);   /* never opened, or already run */
        return report(&srv->error, err, errlen);
    }
    struct al_error e = { .step = "", .code = 0, .message = "" };
    int (*run)(struct al_server *, struct al_error *) = runs[srv->cfg.model];
    if (srv->cfg.transport == AL_TRANSPORT_UDP)   /* datagram.c: no accept, recvfrom and sendto */
        run = srv->cfg.model == AL_MODEL_EVENT ? al_run_datagram_event : al_run_datagram_iterative;
    if (run(srv, &e) != AL_OK) {
        srv->error = e;
        return report(&srv->error, err, errlen);
    }
    return AL_OK;
}

void al_server_stop(al_server *srv)
{
    /* Only async-signal-safe calls: an atomic exchange, clock_gettime and write
     * (al_pair_signal keeps errno). */
    if (atomic_exchange(&srv->stop_claimed, 1) != 0)
        return;
    srv->stopped_at = al_now();
    atomic_store(&srv->stopping, 1);
    /* Never drained: every loop and thread polling stop_r wakes (a broadcast).
     * The channel is empty before this one write, so it cannot be full. */
    al_pair_signal(srv->stop_w, 's');
}

void al_server_wake(al_server *srv)
{
    al_pair_signal(srv->wake_w, 'w');   /* full: a wake-up is pending already */
}

void al_server_free(al_server *srv)
{
    if (srv == NULL)
        return;
    al_close_listeners(srv);
    int fds[] = { srv->stop_r, srv->stop_w, srv->wake_r, srv->wake_w };
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
        if (fds[i] >= 0)
            al_pair_close(fds[i]);
    al_poll_free(srv->poller);   /* NULL once its loop took it */
    free(srv->listeners);
    free(srv->pfds);
    free(srv->ready);
    free(srv->host_copy);
    free(srv);
}
