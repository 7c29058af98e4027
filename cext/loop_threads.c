/* The threads model: a thread per connection. Every thread also polls the
 * stop descriptor, so it learns of a stop at once. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "errors.h"
#include "protocol.h"
#include "server.h"

/* What the accepting loop and its threads share. */
struct crew {
    pthread_mutex_t lock;
    pthread_cond_t done;   /* signalled when a thread ends; waited on with CLOCK_MONOTONIC */
    int active;
};

struct job {
    struct al_server *srv;
    struct crew *crew;
    struct al_conn conn;
};

static void *serve(void *arg)
{
    struct job *job = arg;
    /* Each thread has its own read buffer, freed when its connection ends. */
    char *buf = malloc(AL_READ_SIZE);
    if (buf == NULL)
        al_conn_fail(&job->conn, "thread", ENOMEM);
    else
        al_serve_connection(job->srv, &job->conn, buf, 0);
    al_conn_close(&job->conn);
    free(buf);
    struct crew *crew = job->crew;
    free(job);
    pthread_mutex_lock(&crew->lock);
    crew->active--;
    pthread_cond_signal(&crew->done);
    pthread_mutex_unlock(&crew->lock);
    return NULL;
}

/* Starts a thread for a new connection; AL_ERR when none could be started. */
static int start_thread(struct al_server *srv, struct crew *crew, pthread_attr_t *attr, int fd, const char *peer)
{
    struct job *job = malloc(sizeof *job);
    if (job == NULL) {
        al_log_error("thread", peer, ENOMEM);
        close(fd);
        return AL_ERR;
    }
    job->srv = srv;
    job->crew = crew;
    al_conn_open(&job->conn, fd, peer, &srv->cfg, NULL, al_now());
    pthread_mutex_lock(&crew->lock);
    crew->active++;
    pthread_mutex_unlock(&crew->lock);
    pthread_t thread;
    int rc = pthread_create(&thread, attr, serve, job);
    if (rc != 0) {
        al_log_error("thread", peer, rc);
        al_conn_close(&job->conn);
        free(job);
        pthread_mutex_lock(&crew->lock);
        crew->active--;
        pthread_mutex_unlock(&crew->lock);
        return AL_ERR;
    }
    return AL_OK;
}

/* Each thread closes its connection at the grace deadline by itself, so all
 * of them end soon after it. They hold pointers into the server, so the loop
 * must not return before the last one is gone. */
static void wait_for_threads(struct crew *crew, double deadline)
{
    int warned = 0;
    pthread_mutex_lock(&crew->lock);
    while (crew->active > 0) {
        struct timespec now, until;
        clock_gettime(CLOCK_MONOTONIC, &now);
        until = now;
        until.tv_sec += 1;   /* re-check once a second; a thread's end signals earlier */
        pthread_cond_timedwait(&crew->done, &crew->lock, &until);
        if (!warned && crew->active > 0 && al_now() > deadline + 1.0) {
            al_log("threads: %d still running after the grace time; waiting for them", crew->active);
            warned = 1;
        }
    }
    pthread_mutex_unlock(&crew->lock);
}

/* step: loop threads */
int al_run_threads(struct al_server *srv, struct al_error *err)
{
    struct crew crew = { .active = 0 };
    pthread_condattr_t cattr;
    pthread_attr_t attr;
    struct al_pause pause = { 0.0, 0.0 };
    int rc = AL_OK;
    pthread_mutex_init(&crew.lock, NULL);
    pthread_condattr_init(&cattr);
    pthread_condattr_setclock(&cattr, CLOCK_MONOTONIC);
    pthread_cond_init(&crew.done, &cattr);
    pthread_condattr_destroy(&cattr);
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    while (!al_stopping(srv)) {
        int ready = al_wait_for_clients(srv, &pause, -1.0, err);
        if (ready == AL_ERR) {
            rc = AL_ERR;
            al_server_stop(srv);
            break;
        }
        for (int i = 0; i < ready; i++) {
            struct al_error accept_err;
            char peer[AL_ADDRESS_LEN];
            int fd = al_accept_client(&accept_err, srv->ready[i], &pause, peer, sizeof peer);
            if (fd == AL_ERR) {
                al_log_accept_error(&accept_err);
                continue;
            }
            pthread_mutex_lock(&crew.lock);
            int full = crew.active >= srv->cfg.max_conns;
            pthread_mutex_unlock(&crew.lock);
            if (full) {
                close(fd);   /* reject: closed at once rather than left queued */
                continue;
            }
            start_thread(srv, &crew, &attr, fd, peer);
        }
    }
    al_close_listeners(srv);
    wait_for_threads(&crew, al_stop_deadline(srv));
    pthread_attr_destroy(&attr);
    pthread_cond_destroy(&crew.done);
    pthread_mutex_destroy(&crew.lock);
    return rc;
}
/* end step */
