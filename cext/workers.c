/* --workers N: N event loops on one port, one thread each.
 *
 * Each worker is a whole server (server.c) with listeners of its own, all
 * bound with SO_REUSEPORT to the one port, so the kernel spreads the incoming
 * connections over the workers' accept queues. Threads rather than processes:
 * the workers share --max-conns as one atomic counter in ordinary memory, a
 * signal reaches one process whose handler stops every worker, and there is
 * no child to reap or to leave behind; what a process per worker would add,
 * a fault confined to one worker, the C core does not need to survive
 * (docs/protocol.md "Many workers"). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "poller.h"
#include "server.h"
#include "workers.h"

struct worker {
    struct al_workers *all;
    al_server *srv;
    int index, rc;
    pthread_t thread;
    char err[AL_ERROR_LEN];
};

struct al_workers {
    int n;
    struct worker *w;
    atomic_int count;        /* connections held by every worker, against --max-conns */
    int done_r, done_w;      /* a worker whose loop returned writes its index here */
};

al_workers *al_workers_new(const struct al_config *cfg, int n)
{
    al_workers *w = calloc(1, sizeof *w);
    if (w == NULL || (w->w = calloc((size_t)n, sizeof *w->w)) == NULL) {
        free(w);
        errno = ENOMEM;
        return NULL;
    }
    w->done_r = w->done_w = -1;
    for (int i = 0; i < n; i++, w->n++) {
        w->w[i] = (struct worker){ .all = w, .index = i + 1, .srv = al_server_new(cfg) };
        if (w->w[i].srv == NULL) {
            int saved = errno;
            al_workers_free(w);
            errno = saved;
            return NULL;
        }
        w->w[i].srv->reuse_port = 1;
        w->w[i].srv->shared_count = &w->count;
    }
    return w;
}

/* What each worker needs besides its listeners, made before READY: its poller, and the pipe the
 * workers report their end on. AL_OK, or AL_ERR with err filled (the caller closes the rest). */
static int reserve(al_workers *w, char *err, size_t errlen)
{
    int done[2];
    const char *step = "pipe";
    if (pipe2(done, O_CLOEXEC) == 0) {
        w->done_r = done[0], w->done_w = done[1];
        step = "epoll";
        for (int i = 0; i < w->n; i++)
            if (w->w[i].srv->poller == NULL && (w->w[i].srv->poller = al_poll_create()) == NULL)   /* al_server_open made it (event) */
                goto fail;
        return AL_OK;
    }
fail:
    snprintf(err, errlen, "%s workers: %s (%s)", step, strerrordesc_np(errno), strerrorname_np(errno));
    return AL_ERR;
}

int al_workers_open(al_workers *w, char *err, size_t errlen)
{
    for (int i = 0; i < w->n; i++) {
        al_server *srv = w->w[i].srv;
        if (i > 0)   /* the port the first worker's listeners have: theirs, or the kernel's choice */
            srv->cfg.port = w->w[0].srv->cfg.port;
        if (al_server_open(srv, err, errlen) != AL_OK) {
            for (int j = 0; j < i; j++)
                al_close_listeners(w->w[j].srv);
            return AL_ERR;
        }
        char host[AL_ADDRESS_LEN];
        if (i == 0 && al_server_listener_address(srv, 0, host, sizeof host, &srv->cfg.port) != AL_OK) {
            al_error_set(&srv->error, "getsockname", srv->host_copy, errno);
            snprintf(err, errlen, "%s", srv->error.message);
            al_close_listeners(srv);
            return AL_ERR;
        }
    }
    if (reserve(w, err, errlen) != AL_OK) {
        for (int i = 0; i < w->n; i++)
            al_close_listeners(w->w[i].srv);
        return AL_ERR;
    }
    return AL_OK;
}

al_server *al_workers_first(al_workers *w)
{
    return w->w[0].srv;
}

static void *run_worker(void *arg)
{
    struct worker *k = arg;
    k->rc = al_server_run(k->srv, k->err, sizeof k->err);
    ssize_t n = write(k->all->done_w, &k->index, sizeof k->index);
    (void)n;   /* a pipe takes a few ints at once: it cannot be full */
    return NULL;
}

/* Starts the threads with the stop signals blocked in them, so the front end's handlers run
 * on the waiting thread. Returns how many started; on a failure err says why. */
static int start_workers(al_workers *w, char *err, size_t errlen)
{
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM), sigaddset(&block, SIGINT), sigaddset(&block, SIGCHLD);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    int started = 0;
    for (; started < w->n; started++) {
        int rc = pthread_create(&w->w[started].thread, NULL, run_worker, &w->w[started]);
        if (rc != 0) {
            snprintf(err, errlen, "pthread_create worker %d: %s (%s)", started + 1, strerrordesc_np(rc),
                     strerrorname_np(rc));
            break;
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return started;
}

/* Waits for `started` workers to return; the first that failed while the others ran stops
 * them all and is the one err names. Returns AL_OK when none failed. */
static int wait_workers(al_workers *w, int started, char *err, size_t errlen)
{
    int rc = AL_OK;
    for (int seen = 0; seen < started;) {
        int index;
        ssize_t n = read(w->done_r, &index, sizeof index);
        if (n < 0 && errno == EINTR)
            continue;
        if (n != (ssize_t)sizeof index)
            break;   /* cannot happen: only the workers write, whole ints */
        seen++;
        struct worker *k = &w->w[index - 1];
        if (k->rc != AL_OK && rc == AL_OK) {
            snprintf(err, errlen, "worker %d: %s", k->index, k->err);
            rc = AL_ERR;
        }
        al_workers_stop(w);   /* one worker's end is every worker's: a stop, or a failure */
    }
    for (int i = 0; i < started; i++)
        pthread_join(w->w[i].thread, NULL);
    return rc;
}

int al_workers_run(al_workers *w, char *err, size_t errlen)
{
    int started = start_workers(w, err, errlen);
    if (started < w->n)
        al_workers_stop(w);
    int rc = wait_workers(w, started, started < w->n ? NULL : err, started < w->n ? 0 : errlen);
    return started < w->n ? AL_ERR : rc;
}

void al_workers_stop(al_workers *w)
{
    for (int i = 0; i < w->n; i++)
        al_server_stop(w->w[i].srv);
}

void al_workers_free(al_workers *w)
{
    if (w == NULL)
        return;
    for (int i = 0; i < w->n; i++)
        al_server_free(w->w[i].srv);   /* and its poller, unless its loop took it */
    if (w->done_r >= 0)
        close(w->done_r), close(w->done_w);
    free(w->w);
    free(w);
}
