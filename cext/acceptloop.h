/* acceptloop: the C port of the accept loop (docs/design.md).
 *
 * The one public header. Two front ends use it: the standalone executable
 * (main.c) and the Python binding (python/acceptloop/cserver.py, through cffi).
 * The part between the "cdef" markers is plain declarations, because
 * cext/build_ffi.py hands exactly that text to cffi; keep it free of
 * preprocessor conditionals and of system types. PHP's FFI (php-ffi) reads the
 * same text at start-up (php/ffi/Core.php), which takes a #define only when its
 * value is an integer (it becomes an enum constant there).
 *
 * Conventions, after redis anet.c: a function that can fail takes the caller's
 * error record first, returns a descriptor, a count or AL_OK, or AL_ERR after
 * filling the record; and a function that fails closes what it opened. No
 * function here ever calls abort() or exit(): the core also runs inside Python.
 */
#ifndef ACCEPTLOOP_H
#define ACCEPTLOOP_H

#include <stddef.h>

/* cdef: begin */
#define AL_OK 0
#define AL_ERR -1
#define AL_ERROR_LEN 1280    /* room for the longest one-line error: a host of 1024 bytes (the contract's
                                longest, protocol.toml), its port, the step and the OS's text */
#define AL_ADDRESS_LEN 64    /* "[" + an IPv6 address + "]:" + a port, with room to spare */

struct al_handler;   /* the handler API, below */

/* One server's settings, as the contract's options give them. */
struct al_config {
    int service;             /* an index into al_service_names (protocol.h); see al_service_index */
    int model;               /* an index into al_model_names; see al_model_index */
    const char *host;        /* copied by al_server_new; NULL or "" means every local address */
    int port;                /* 0 picks a free port, reused for every listener */
    int backlog;
    double grace;            /* seconds connections may take to finish once stopping begins */
    int max_conns;           /* connections served at once; one more is accepted and closed */
    double idle_timeout;     /* seconds without a successful read or write; 0 disables it */
    int ipv6_only;
    int has_daytime_epoch;   /* nonzero: daytime reports daytime_epoch instead of the clock */
    long long daytime_epoch;
    const struct al_handler *handler;   /* NULL: the service runs in C; else this handler replaces it
                                           (see "The handler API" below); not copied: keep it alive */
    int transport;           /* an index into al_transport_names: tcp (0, the default) or udp (datagram.c) */
};

/* Fills *cfg with the contract's defaults (protocol.h). */
void al_config_defaults(struct al_config *cfg);

/* The index of a service or model name, or AL_ERR when there is no such name. */
int al_service_index(const char *name);
int al_model_index(const char *name);
int al_transport_index(const char *name);

typedef struct al_server al_server;

/* A server that is not listening yet. Returns NULL with errno set (EINVAL for
 * a bad service, model or limit, ENAMETOOLONG for a host longer than the
 * contract allows, ENOMEM, or what pipe2 said). */
al_server *al_server_new(const struct al_config *cfg);

/* Resolves the host and opens the listeners. Returns AL_OK, or AL_ERR after
 * writing the one-line error ("bind 127.0.0.1:7: Permission denied (EACCES)")
 * to err and closing every socket it had opened; al_server_error_code and
 * al_server_error_step then say what failed. */
int al_server_open(al_server *srv, char *err, size_t errlen);

/* The last failure of al_server_open or al_server_run: an errno value (for the
 * step "resolve": a getaddrinfo EAI_* code), and the step's name ("" if none). */
int al_server_error_code(const al_server *srv);
const char *al_server_error_step(const al_server *srv);

/* The listeners al_server_open opened, in resolution order. The address
 * function writes the numeric address (no brackets) to buf and the port to
 * *port; it returns AL_OK, or AL_ERR with errno set. */
int al_server_listener_count(const al_server *srv);
int al_server_listener_address(const al_server *srv, int i, char *buf, size_t len, int *port);

/* Runs the configured model until al_server_stop, then lets connections in
 * progress finish within the grace time and closes the listeners. Blocks.
 * Returns AL_OK after a graceful stop, AL_ERR (err filled) when the loop met an
 * error it cannot survive; the loop still stops gracefully before returning. */
int al_server_run(al_server *srv, char *err, size_t errlen);

/* Begins a graceful stop: sets the flag and writes the stop byte, once. Safe
 * from any thread and from a signal handler; harmless before or after run. */
void al_server_stop(al_server *srv);

/* Wakes the loop so it reaps children now (fork model). Async-signal-safe:
 * meant for a SIGCHLD handler. */
void al_server_wake(al_server *srv);

/* For a front end whose own signal handlers cannot run while al_server_run
 * blocks (main.c; PHP through FFI): installs C handlers (signals.c) that call
 * al_server_stop on SIGTERM and SIGINT and, for the fork model, al_server_wake
 * on SIGCHLD. One server per process. Returns AL_OK, or AL_ERR with errno set
 * and the previous handlers back. Python's binding never calls it: Python owns
 * its signals. */
int al_server_stop_on_signals(al_server *srv);

/* Before al_server_free: blocks those signals in the calling thread (a late
 * one waits, unheard) and puts the previous handlers back. */
void al_server_signals_release(void);

/* Closes whatever is still open and frees the server. Not while it runs. */
void al_server_free(al_server *srv);

/* ---- The handler API (cext/handler.c) ------------------------------------
 *
 * A handler replaces the configured service's C code with callbacks, for
 * every connection, in every model; the loop, the limits (backpressure, idle
 * timeout, max-conns, grace) and the connection's ending stay the core's.
 * cfg->service still names what it replaces (its name is in the log lines).
 *
 * The loop calls, on the thread that serves the connection:
 *   on_open(conn, data)              once, when the connection is accepted
 *   on_data(conn, bytes, len, data)  with what one recv read (the bytes are
 *                                    the loop's: valid during the call only)
 *   on_eof(conn, data)               the client sent its FIN; NULL: al_handler_end
 *   on_writable(conn, data)          only with `produces` set: the socket can
 *                                    take more and none of our output waits
 *   on_close(conn, data)             once, last: conn is invalid on return
 * Any of them may be NULL. A callback returns AL_OK, or AL_ERR to end the
 * connection at once (it has said why on stderr itself); on_close returns nothing.
 *
 * Inside a callback (and only there, on that connection) the handler may call:
 *   al_handler_write  sends now what the socket takes and keeps the rest, in
 *                  order (reading pauses while too much waits): AL_OK, or
 *                  AL_ERR once the connection is closed (a send failed)
 *   al_handler_offer  sends what the socket takes now and keeps nothing: the
 *                  bytes taken, 0 when it is full, -1 once closed (chargen)
 *   al_handler_end    nothing more to say: flush, then the core's shutdown
 *   al_handler_peer   "127.0.0.1:5555"
 * Nothing here locks: the threads model calls different connections'
 * callbacks from different threads at once; a fork child calls them in its
 * own copy of the process. */
typedef struct al_conn al_conn;

struct al_handler {
    int produces;            /* nonzero: on_writable whenever the socket is writable and nothing waits */
    int (*on_open)(al_conn *conn, void *data);
    int (*on_data)(al_conn *conn, const char *bytes, size_t len, void *data);
    int (*on_eof)(al_conn *conn, void *data);
    int (*on_writable)(al_conn *conn, void *data);
    void (*on_close)(al_conn *conn, void *data);
    void *data;              /* passed to every callback */
};

int al_handler_write(al_conn *conn, const char *bytes, size_t len);
long al_handler_offer(al_conn *conn, const char *bytes, size_t len);
void al_handler_end(al_conn *conn);
const char *al_handler_peer(const al_conn *conn);
/* ---- end of the handler API ---- */
/* cdef: end */

#endif /* ACCEPTLOOP_H */
