/* The server object's insides and what the four model loops share.
 * Internal: a host (Python) sees only acceptloop.h; main.c, built with the
 * core, also announces the listeners itself (al_server_listeners, al_announce). */
#ifndef AL_SERVER_H
#define AL_SERVER_H

#include <stdatomic.h>
#include <stddef.h>

#include "acceptloop.h"
#include "clock.h"
#include "errors.h"
#include "net.h"
#include "pause.h"
#include "platform.h"

struct al_conn;

struct al_server {
    struct al_config cfg;        /* cfg.host points at host_copy */
    char *host_copy;
    int *listeners;              /* open listening sockets; n_listeners == 0 once closed */
    int n_listeners;
    int opened;                  /* al_server_open succeeded, so run may start */
    struct pollfd *pfds;         /* al_wait_for_clients: stop, wake, then the listeners */
    int *ready;                  /* al_wait_for_clients: the listeners with a connection queued */
    /* stop: written once, never drained, so every poller holding stop_r wakes
     * (a broadcast). wake: drained by the main loop; SIGCHLD writes it.
     * Pipes on POSIX, loopback socket pairs on Winsock (al_pair_open). */
    int stop_r, stop_w, wake_r, wake_w;
    atomic_int stop_claimed;     /* the first al_server_stop wins */
    atomic_int stopping;         /* set after stopped_at, so a reader that sees it sees the time */
    double stopped_at;           /* monotonic seconds when the stop began */
    struct al_error error;       /* the last failure of open or run */
    /* --workers N > 1 (workers.c): one server a worker, each with listeners of its own on
     * the same port (SO_REUSEPORT), all counting their connections in one shared_count
     * against --max-conns. A lone server: 0 and NULL (the event loop counts its own). */
    int reuse_port;
    atomic_int *shared_count;
    /* A poller made before READY (workers.c), which the event loop takes instead of making its
     * own: so that a worker never fails for want of a descriptor after the announcement. */
    struct al_poller *poller;
};

/* Nonzero once a stop began; then al_stop_deadline is stopped_at + grace. */
int al_stopping(const struct al_server *srv);
double al_stop_deadline(const struct al_server *srv);

/* The listening descriptors of an open server (for al_announce); *count gets their number. */
const int *al_server_listeners(const al_server *srv, int *count);

/* Stop accepting: close every listener, so that from now on a connect is refused. */
void al_close_listeners(struct al_server *srv);

/* Blocks until a listener has a connection queued, a wake-up, a stop, or
 * `cap` seconds (cap < 0: no limit). Listeners are left out while the pause
 * lasts. Returns the number of ready listeners, whose descriptors it put in
 * srv->ready (0 after a signal, a wake-up or a stop), or AL_ERR with err
 * filled when poll itself fails. */
int al_wait_for_clients(struct al_server *srv, const struct al_pause *pause, double cap, struct al_error *err);

/* Logs the line al_accept_client left in err, if any. */
void al_log_accept_error(const struct al_error *err);

/* Empties the wake-up descriptor (a SIGCHLD, or al_server_wake). */
void al_drain_wake(struct al_server *srv);

/* Over --max-conns: the connection was accepted, and is closed at once
 * rather than left queued. */
void al_reject(int fd);

/* A read buffer of AL_READ_SIZE bytes; NULL with err filled (and the
 * listeners closed, so the model can return at once) when memory ran out. */
char *al_read_buffer(struct al_server *srv, struct al_error *err);

/* What a per-connection model (iterative, fork, threads) puts into the
 * skeleton: the hook `give` takes an accepted connection away (serves it,
 * forks a child, starts a thread) and owns fd from then on; `active` counts
 * the connections given and not yet over, against --max-conns; `reap`, if
 * not NULL, runs after every wait (fork: collect exited children). A model
 * embeds it first in its own state, so the hooks cast back to that. */
struct al_hand_off {
    void (*give)(struct al_hand_off *h, int fd, const char *peer);
    int (*active)(struct al_hand_off *h);
    void (*reap)(struct al_hand_off *h);
};

/* The per-connection models' skeleton: until a stop, wait for clients,
 * accept each, reject one over the limit, hand the others off; then close the
 * listeners. Returns AL_OK after a stop, or AL_ERR with err filled when
 * waiting failed (a stop is begun then). What is still running is the
 * model's to end. */
int al_accept_loop(struct al_server *srv, struct al_hand_off *h, struct al_error *err);

/* Drives one connection to its end (iterative, fork, threads): polls its
 * socket and the stop descriptor with the connection's deadline as timeout.
 * srv is NULL in a forked child, which the parent stops with SIGTERM. buf is
 * the caller's read buffer of AL_READ_SIZE bytes. on_stop, if not NULL, runs
 * each time round once a stop is seen (iterative: al_close_listeners, since
 * the skeleton is blocked here, so new clients are refused while this one
 * finishes). The connection is closed on return. */
void al_serve_connection(struct al_server *srv, struct al_conn *conn, char *buf, void (*on_stop)(struct al_server *srv));

/* The five models (uring: loop_uring.c). Each returns AL_OK after a graceful stop, or AL_ERR with
 * err filled after an error it could not survive (it still stops gracefully). */
int al_run_iterative(struct al_server *srv, struct al_error *err);
int al_run_fork(struct al_server *srv, struct al_error *err);
int al_run_threads(struct al_server *srv, struct al_error *err);
int al_run_event(struct al_server *srv, struct al_error *err);
int al_run_uring(struct al_server *srv, struct al_error *err);

/* Whether this process may use io_uring: sets up a small ring and ends it.
 * AL_ERR with err "io_uring_setup ring: TEXT (ENAME)" where it cannot (ENOSYS,
 * EPERM from kernel.io_uring_disabled or a seccomp filter). */
int al_uring_available(struct al_error *err);

/* The datagram models (datagram.c, --transport udp): the same contract, over recvfrom and sendto. */
int al_run_datagram_iterative(struct al_server *srv, struct al_error *err);
int al_run_datagram_event(struct al_server *srv, struct al_error *err);

/* The C signal handlers behind al_server_stop_on_signals, for any target: SIGTERM
 * and SIGINT call stop(target), SIGCHLD wake(target) when wake is not NULL (a
 * fork server). Both must be async-signal-safe. AL_OK, or AL_ERR with errno set
 * and nothing installed. The standalone front end stops its workers so. */
int al_signals_install(void (*stop)(void *), void (*wake)(void *), void *target);

#endif /* AL_SERVER_H */
