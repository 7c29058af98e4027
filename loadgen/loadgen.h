/* acceptloop's load generator: the benchmark's client.
 *
 * The one public header of loadgen/, and the whole of what Python sees of it
 * (python/acceptloop/bench/loadgen.py, through cffi as acceptloop._loadgen).
 * The part between the "cdef" markers is plain declarations, because
 * loadgen/build_ffi.py hands exactly that text to cffi; keep it free of
 * preprocessor conditionals and of system types.
 *
 * It measures every port alike, so it shares no code with any of them: it
 * takes only the contract's facts (cext/protocol.h, generated from
 * protocol.toml). Its internals are in lg.h.
 *
 * ONE thread drives every connection through epoll (or, for echo, datagram and connect,
 * io_uring: cfg->io, loadgen_uring.c),
 * with non-blocking sockets and TCP_NODELAY on each, and makes no system call
 * it could avoid (an echo costs one send, one recv and a share of one
 * epoll_wait), so that the measuring tool is never the slowest thing in the
 * room. The result reports the thread's own CPU time so that this can be
 * checked: on loopback most of it is the kernel's TCP work, which for each
 * send includes the receiving side's processing.
 *
 * The load is CLOSED-LOOP: each connection starts its next operation only
 * when the previous one has finished, so the offered load follows the
 * server's speed. A run measures throughput and latency at a given
 * concurrency (`connections`), not latency under a fixed arrival rate; a
 * stalled server gets fewer requests, not a queue (coordinated omission).
 *
 * One run:
 *   1. connecting: at most 64 handshakes in flight at once, so that a
 *      128-deep accept queue does not drop SYNs. Connections not established
 *      within connect_timeout of the start are errors; the run goes on with
 *      the others. (Connect mode skips this phase: connecting is its load.)
 *   2. warm-up: the load starts on every connection at once and runs for
 *      `warmup` seconds, not counted.
 *   3. the window: `duration` seconds of load, measured.
 *   4. closing: a half-close (shutdown SHUT_WR) and up to 1 s to read the
 *      server's EOF, so that the server sees a clean end, not a reset.
 * So a run lasts at most connect_timeout + warmup + duration + 1 s, and
 * ends earlier when no connection is left (every mode but connect).
 *
 * The modes, one per workload:
 *   echo     each connection sends message_size bytes (a fixed pattern),
 *            waits until exactly that many have come back, checks them
 *            against the pattern, then sends the next. One op = one round
 *            trip; latency = first send of the message to its last byte back.
 *   connect  (daytime) each of `connections` slots connects, reads to EOF,
 *            closes and starts again. One op = one whole connection; latency
 *            = connect start to EOF. The server closes first, so TIME_WAIT
 *            stays on its side. After a failure a slot rests 10 ms.
 *   ingest   (discard) each connection writes chunks of read_size (64 KiB)
 *            non-stop. One op = one send() that wrote something; no latency.
 *   egress   (chargen) each connection reads non-stop. One op = one recv()
 *            (of at most 64 KiB) that read something; no latency. The recv
 *            takes MSG_TRUNC: the kernel drops the bytes without copying them
 *            out (tcp(7)), since nothing here looks at them (chargen's content
 *            is the conformance suite's to check). Chargen ignores a
 *            half-close, so closing resets these connections.
 *   idle     opens the connections, sends nothing, holds them for warmup +
 *            duration seconds, closes them. `connections` says how many
 *            were established; no ops.
 *   datagram (UDP echo) each of `connections` UDP sockets, connected to the
 *            server, sends a datagram of message_size bytes, waits for it to
 *            come back whole and equal, then sends the next. One op = one
 *            request/response; latency = send to reply. The first 8 bytes
 *            carry the socket's sequence number (from 8 bytes on), so a late
 *            reply is not taken for the current one. A datagram not answered
 *            within AL_LOAD_DATAGRAM_LOSS_MS (200 ms) is counted lost (timeout) and the next is sent.
 *            A socket's replies are read in one recvmmsg per readiness report.
 * In the other modes a connection that fails is not replaced.
 */
#ifndef AL_LOADGEN_H
#define AL_LOADGEN_H

#include <stddef.h>

/* cdef: begin */
#define AL_LOAD_OK 0
#define AL_LOAD_ERR -1
#define AL_LOAD_ERROR_LEN 1280   /* room for the longest one-line error: a long host, its port, the step and the OS's text */

#define AL_LOAD_ECHO 0
#define AL_LOAD_CONNECT 1
#define AL_LOAD_INGEST 2
#define AL_LOAD_EGRESS 3
#define AL_LOAD_IDLE 4
#define AL_LOAD_DATAGRAM 5
#define AL_LOAD_MODES 6
#define AL_LOAD_MAX_DATAGRAM 65507   /* bytes: the most a UDP datagram over IPv4 holds */
#define AL_LOAD_DATAGRAM_LOSS_MS 200 /* datagram: a request unanswered this long is counted lost */

/* How the load generator drives its sockets (al_load_config.io). */
#define AL_LOAD_IO_EPOLL 0    /* readiness: epoll_wait, then a send or recv per operation (every mode) */
#define AL_LOAD_IO_URING 1    /* completions: io_uring, one io_uring_enter per loop turn. echo: the sends
                                 batched, one multishot receive per connection; datagram: the same, per
                                 UDP socket; connect: one chain of linked requests per connection
                                 (connect, poll for the FIN, recv, close); not the other modes */
#define AL_LOAD_IOS 2

#define AL_LOAD_MAX_CONNS 2000
#define AL_LOAD_MAX_MESSAGE 16777216   /* bytes; the pattern is allocated once */
#define AL_LOAD_MAX_SECONDS 3600       /* for warmup and duration */
#define AL_LOAD_MAX_CONNECT_TIMEOUT 60

/* Socket errors, by kind: indexes into al_load_result.errors. */
#define AL_LOAD_ERR_REFUSED 0          /* ECONNREFUSED */
#define AL_LOAD_ERR_RESET 1            /* ECONNRESET */
#define AL_LOAD_ERR_PIPE 2             /* EPIPE */
#define AL_LOAD_ERR_TIMEOUT 3          /* not established (connect: not at EOF) within connect_timeout; ETIMEDOUT;
                                          datagram: a datagram not answered within AL_LOAD_DATAGRAM_LOSS_MS (lost) */
#define AL_LOAD_ERR_CLOSED_EARLY 4     /* EOF before the echo or the daytime line was complete, or at all (ingest, egress, idle) */
#define AL_LOAD_ERR_MISMATCH 5         /* echoed bytes differ from what was sent */
#define AL_LOAD_ERR_OTHER 6            /* anything else; other_errno names the last one */
#define AL_LOAD_ERR_KINDS 7

struct al_load_config {
    const char *host;        /* a name or numeric address; the first address getaddrinfo gives is used */
    int port;                /* 1..65535 */
    int mode;                /* AL_LOAD_ECHO ... AL_LOAD_DATAGRAM */
    int connections;         /* 1..AL_LOAD_MAX_CONNS: connections (connect: slots) at once */
    int message_size;        /* echo: bytes per message, 1..AL_LOAD_MAX_MESSAGE; datagram: bytes per
                                datagram, 1..AL_LOAD_MAX_DATAGRAM; unused otherwise */
    double warmup;           /* seconds of load before the window, 0..AL_LOAD_MAX_SECONDS */
    double duration;         /* seconds in the window, > 0 and <= AL_LOAD_MAX_SECONDS */
    int cpu;                 /* pin the calling thread to this CPU for the run, restored after; -1: no pinning */
    double connect_timeout;  /* seconds, > 0 and <= AL_LOAD_MAX_CONNECT_TIMEOUT */
    int watch_pid;           /* > 0: the server's pid, read from /proc (with its children's) at the
                                window's edges for server_cpu_s, server_instructions_* and
                                server_rss_*; 0: not */
    int io;                  /* AL_LOAD_IO_EPOLL (the default) or AL_LOAD_IO_URING (echo, datagram and connect) */
};

/* What a run measured. Counts and rates are of the window only; errors and
 * `connections` are of the whole run. MB = 10^6 bytes. */
struct al_load_result {
    unsigned long long ops;              /* operations completed inside the window */
    unsigned long long bytes_sent;       /* written inside the window */
    unsigned long long bytes_received;   /* read inside the window */
    double elapsed;                      /* the window's measured length, seconds (0 if it never opened) */
    double ops_per_s;
    double mb_per_s;                     /* the mode's payload, 10^6 bytes/s: received for echo, connect,
                                            egress; sent for ingest; 0 for idle */
    unsigned long long latency_count;    /* latency samples: one per op */
    double latency_min_us, latency_mean_us, latency_max_us;   /* exact */
    double latency_p50_us, latency_p90_us, latency_p99_us, latency_p999_us;   /* within 0.8% */
    double client_cpu_s;                 /* this thread's user + system CPU over the window (RUSAGE_THREAD) */
    double client_cpu_pct;               /* client_cpu_s / elapsed * 100; 100 = one whole CPU */
    double client_instructions;          /* this thread's instructions over the window, user + kernel (the
                                            CPU's counters); -1 when unavailable */
    int connections;                     /* the most connections established at once (connect: slots under way) */
    double server_cpu_s;                 /* watch_pid: its user + system CPU, and its children's (live and
                                            reaped), over exactly the window; -1 when unreadable */
    double server_instructions_user;     /* watch_pid: instructions retired in user space over the window,
                                            from the CPU's counters (perf_event_open); -1 when unavailable */
    double server_instructions_kernel;   /* ... and in the kernel on its behalf (its system calls, and the
                                            network stack's work done in its context) */
    unsigned long long server_rss_start; /* watch_pid: resident bytes (with live children) before connecting */
    unsigned long long server_rss_end;   /* ... and at the end of the window, all connections still open */
    int io;                              /* the I/O mode the run used: AL_LOAD_IO_* */
    unsigned long long errors[AL_LOAD_ERR_KINDS];
    char other_errno[32];                /* name of the last AL_LOAD_ERR_OTHER errno ("EMFILE"), "" if none */
    int error_code;                      /* after AL_LOAD_ERR: an errno value, or an EAI_* code for "resolve" */
    const char *error_step;              /* after AL_LOAD_ERR: "config", "resolve", "affinity", "epoll", "io_uring",
                                            "memory" */
};

/* Fills *cfg with the defaults: echo, 1 connection, 64-byte messages,
 * warmup 1 s, duration 5 s, no pinning, connect_timeout 3 s, no watched
 * server; host and port are left for the caller (NULL, 0). */
void al_load_config_defaults(struct al_load_config *cfg);

/* The index of a mode name ("echo" ...), or AL_LOAD_ERR when there is no such mode. */
int al_load_mode_index(const char *name);

/* The index of an I/O mode's name ("epoll", "uring"), or AL_LOAD_ERR; and the name of an index (NULL out of range). */
int al_load_io_index(const char *name);
const char *al_load_io_name(int io);

/* The name of a mode or of an error kind ("refused", "reset", "broken_pipe",
 * "timeout", "closed_early", "mismatch", "other"); NULL when out of range. */
const char *al_load_mode_name(int mode);
const char *al_load_error_name(int kind);

/* Runs one load as cfg says, blocking the calling thread until it is over.
 * Returns AL_LOAD_OK once the run has ended, with *res filled: socket errors are
 * results (res->errors), not failures, even when no connection could be made.
 * Returns AL_LOAD_ERR when the run could not start (bad config, resolve, pinning,
 * epoll, io_uring or memory failure) after writing one line to err
 * ("resolve nosuch.invalid:7: Name or service not known (EAI_NONAME)") and
 * setting res->error_code and res->error_step; nothing is left open. */
int al_load_run(char *err, size_t errlen, const struct al_load_config *cfg, struct al_load_result *res);
/* cdef: end */

#endif /* AL_LOADGEN_H */
