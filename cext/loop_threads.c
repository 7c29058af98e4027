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
    struct al_hand_off hand_off;   /* first: the skeleton's pointer is this one's */
    struct al_server *srv;
    pthread_attr_t attr;           /* detached */
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
        al_serve_connection(job->srv, &job->conn, buf, NULL);
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

/* The hand-off: a thread for the new connection. When none can be started the
 * connection is closed with one line, and the loop goes on. */
static void start_thread(struct al_hand_off *h, int fd, const char *peer)
{
    struct crew *crew = (struct crew *)h;
    struct job *job = malloc(sizeof *job);
    if (job == NULL) {
        al_log_error("thread", peer, ENOMEM);
        close(fd);
        return;
    }
    job->srv = crew->srv;
    job->crew = crew;
    al_conn_open(&job->conn, fd, peer, &crew->srv->cfg, NULL, al_now());
    pthread_mutex_lock(&crew->lock);
    crew->active++;
    pthread_mutex_unlock(&crew->lock);
    pthread_t thread;
    int rc = pthread_create(&thread, &crew->attr, serve, job);
    if (rc != 0) {
        al_log_error("thread", peer, rc);
        al_conn_close(&job->conn);
        free(job);
        pthread_mutex_lock(&crew->lock);
        crew->active--;
        pthread_mutex_unlock(&crew->lock);
    }
}

/* The threads still serving, against --max-conns. */
static int active_threads(struct al_hand_off *h)
{
    struct crew *crew = (struct crew *)h;
    pthread_mutex_lock(&crew->lock);
    int active = crew->active;
    pthread_mutex_unlock(&crew->lock);
    return active;
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
    struct crew crew = { .hand_off = { start_thread, active_threads, NULL }, .srv = srv, .active = 0 };
    pthread_condattr_t cattr;
    pthread_mutex_init(&crew.lock, NULL);
    pthread_condattr_init(&cattr);
    pthread_condattr_setclock(&cattr, CLOCK_MONOTONIC);
    pthread_cond_init(&crew.done, &cattr);
    pthread_condattr_destroy(&cattr);
    pthread_attr_init(&crew.attr);
    pthread_attr_setdetachstate(&crew.attr, PTHREAD_CREATE_DETACHED);
    int rc = al_accept_loop(srv, &crew.hand_off, err);
    wait_for_threads(&crew, al_stop_deadline(srv));
    pthread_attr_destroy(&crew.attr);
    pthread_cond_destroy(&crew.done);
    pthread_mutex_destroy(&crew.lock);
    return rc;
}
/* end step */
