/* --workers N: N event loops on one port, one thread each (workers.c).
 * Internal, for the standalone front end (main.c): the core's public API
 * (acceptloop.h) still runs one server. */
#ifndef AL_WORKERS_H
#define AL_WORKERS_H

#include <stddef.h>

#include "acceptloop.h"

typedef struct al_workers al_workers;

/* n servers for cfg, not listening yet; NULL with errno set (as al_server_new). */
al_workers *al_workers_new(const struct al_config *cfg, int n);

/* Opens every worker's listeners, all with SO_REUSEPORT: the first worker's
 * choose the port when cfg->port is 0, the others bind the same one. AL_OK,
 * or AL_ERR with the one-line error in err and every listener closed. */
int al_workers_open(al_workers *w, char *err, size_t errlen);

/* The first worker's server: what to announce (its listeners show the port). */
al_server *al_workers_first(al_workers *w);

/* Runs every worker on a thread of its own until al_workers_stop, then waits
 * for them all. AL_OK after a graceful stop; AL_ERR with err naming the
 * worker ("worker 2: epoll_wait loop: ...") when one ended on an error, after
 * the others were stopped gracefully. */
int al_workers_run(al_workers *w, char *err, size_t errlen);

/* Begins a graceful stop of every worker. Async-signal-safe. */
void al_workers_stop(al_workers *w);

/* Closes and frees everything. Not while running. */
void al_workers_free(al_workers *w);

#endif /* AL_WORKERS_H */
