/* The load generator's internals, shared by loadgen.c (the run and the
 * public API), loadgen_conn.c (a connection and each mode's I/O),
 * loadgen_hist.c (the latency histogram), loadgen_watch.c (the watched
 * server) and loadgen_error.c (its error lines). The public part is loadgen.h.
 *
 * These names carry the lg_ prefix and are hidden: they are not exported from
 * the cffi extension, so they can never clash with anything outside it.
 */
#ifndef LG_H
#define LG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "loadgen.h"
/* The contract's facts only (generated from protocol.toml), never the C server's code: the
 * load generator measures every port alike. */
#include "../cext/protocol.h"

#pragma GCC visibility push(hidden)

#define LG_CHUNK AL_READ_SIZE          /* ingest's writes and egress's reads: the servers' read_size */
#define LG_RECV_BUF (256 * 1024)      /* the one receive buffer: a whole 256 KiB echo in one read */
#define LG_MAX_BATCH 4                /* full-size reads or writes in a row before others get a turn */
#define LG_MS UINT64_C(1000000)
#define LG_RETRY_NS (10 * LG_MS)      /* connect mode: a failed slot rests this long, so a dead server is not hammered */
#define LG_LOSS_NS (AL_LOAD_DATAGRAM_LOSS_MS * LG_MS)   /* datagram mode: a request unanswered this long is lost */

/* A log-linear histogram of nanoseconds, after HdrHistogram: values below
 * 2 * LG_SUB are counted exactly; above, every power of two [2^k, 2^(k+1))
 * is split into LG_SUB equal sub-buckets, so a bucket is at most 1/64 (1.6%)
 * of its values wide, and reporting its midpoint errs by at most 0.8%. One
 * record is a few shifts and an add: cheap enough for every operation, and
 * the memory (17 KiB) does not grow with the number of samples. */
#define LG_SUB_BITS 6
#define LG_SUB (1 << LG_SUB_BITS)
#define LG_MAX_EXP 36   /* 2^37 ns = 137 s: longer latencies are clamped there */
#define LG_BUCKETS (2 * LG_SUB + (LG_MAX_EXP - LG_SUB_BITS) * LG_SUB)

struct lg_hist {
    uint64_t counts[LG_BUCKETS];
    uint64_t count, min, max;   /* min and max are exact, not bucketed */
    double sum;                 /* for the mean */
};

void lg_hist_init(struct lg_hist *h);
void lg_hist_record(struct lg_hist *h, uint64_t ns);

/* The value (ns) at or below which `percent` of the samples lie, as the
 * midpoint of its bucket clamped to [min, max]; 0 without samples. */
double lg_hist_percentile(const struct lg_hist *h, double percent);

/* Fills res's latency fields (microseconds) from h. */
void lg_hist_summarize(const struct lg_hist *h, struct al_load_result *res);

/* Why a run could not start: the step, the OS's code and the line al_load_run reports. */
struct lg_error {
    const char *step;                  /* a static string: "config", "resolve", ... */
    int code;                          /* errno, or an EAI_* code for "resolve" */
    char message[AL_LOAD_ERROR_LEN];   /* "STEP WHERE: TEXT (ENAME)" */
};

/* Fills e: step, code, and "STEP WHERE: TEXT (ENAME)" for an errno value. */
void lg_error_set(struct lg_error *e, const char *step, const char *where, int code);

/* The same for a getaddrinfo result code (EAI_*); EAI_SYSTEM reads errno. */
void lg_error_set_gai(struct lg_error *e, const char *step, const char *where, int code);

enum lg_phase { P_CONNECT, P_WARMUP, P_WINDOW, P_DONE };
enum lg_state { S_IDLE, S_CONNECTING, S_OPEN, S_CLOSING, S_DEAD };

/* One connection (connect mode: one slot, whose socket changes every op). */
struct lconn {
    int fd;                 /* -1 when it has none */
    int state;              /* enum lg_state */
    uint32_t events;        /* the epoll interest registered now */
    unsigned char last;     /* connect: the last byte read, so EOF can tell a whole line */
    size_t sent, got;       /* echo: this message's bytes sent and received; connect: got = line bytes */
    uint64_t started;       /* ns: the connect's start, or the echo message's first send */
    uint64_t retry_at;      /* connect mode, S_IDLE: connect again no sooner than this */
    uint64_t seq;           /* datagram mode: the sequence number the awaited reply carries */
};

#define LG_MAX_COUNTED 512   /* server threads whose instructions are counted; more: not counted */

/* The server's instruction counters over the window (loadgen_watch.c). */
struct lg_counters {
    int n;                         /* threads with counters */
    int overflow;                  /* the server had more than LG_MAX_COUNTED threads */
    int failed[2];                 /* [0] user, [1] kernel: some counter could not be opened */
    int fds[2][LG_MAX_COUNTED];
};

struct lg_uring;   /* loadgen_uring.c's state, for cfg->io == AL_LOAD_IO_URING */

/* One run. */
struct lg {
    const struct al_load_config *cfg;
    struct al_load_result *res;   /* counted into as the run goes */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    int ep;                       /* the epoll descriptor */
    struct lconn *conns;          /* cfg->connections of them */
    int started;                  /* slots that have begun their first connect, in order */
    int connecting, open;         /* connections in S_CONNECTING; in S_OPEN or S_CLOSING */
    int phase;                    /* enum lg_phase */
    uint64_t phase_end, window_start, timeout_ns;
    double cpu_start;
    double server_cpu_start;      /* watch_pid's CPU when the window opened */
    struct lg_counters counters;  /* watch_pid's instruction counters, open during the window */
    int self_counters[2];         /* this thread's, open during the window; -1: closed */
    unsigned char *pattern;       /* echo: the message; ingest: the chunk */
    size_t pattern_len;
    unsigned char *rbuf;          /* LG_RECV_BUF bytes */
    struct lg_hist hist;
    struct lg_uring *uring;       /* the io_uring mode's ring and buffers; NULL in the epoll mode */
};

/* The CPU seconds (user + system, its reaped children's included) of a
 * process and of its live children, from /proc; -1 when pid is unreadable. */
double lg_proc_cpu(int pid);

/* Resident bytes of a process and of its live children, from /proc; 0 when unreadable. */
unsigned long long lg_proc_rss(int pid);

/* Opens user and kernel instruction counters on every thread of pid and of
 * its live children; they count from now on. */
void lg_counters_open(struct lg_counters *k, int pid);

/* Reads the counters' sums (instructions; -1 for a kind that could not be
 * counted: no hardware counters, no permission, too many threads) and
 * closes them. */
void lg_counters_close(struct lg_counters *k, double *user, double *kernel);

/* The calling thread's own instruction counters (user, kernel), counting from
 * now; a descriptor is -1 where the counter could not be opened. */
void lg_self_counters_open(int fds[2]);

/* Their sum (user + kernel instructions), or -1 when either could not be
 * counted; closes them. */
double lg_self_counters_close(int fds[2]);

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t lg_now_ns(void);

/* The error kind (AL_LOAD_ERR_*) of an errno value. */
int lg_error_kind(int code);

/* Moves the run to `phase` (loadgen.c): opens and closes the window's measurements. */
void lg_enter(struct lg *lg, int phase, uint64_t now);

/* Moves through the phases as time and the connections say (loadgen.c). */
void lg_check(struct lg *lg, uint64_t now);

/* The io_uring mode (loadgen_uring.c), for echo, datagram and connect. setup: the ring and its provided buffers,
 * before the run (AL_LOAD_ERR with e filled: no io_uring here, or no memory);
 * load: drives every open connection from the warm-up to the window's end, then
 * leaves them quiet for the closing; teardown: frees what setup made. */
int lg_uring_setup(struct lg_error *e, struct lg *lg);
void lg_uring_load(struct lg *lg);
void lg_uring_teardown(struct lg *lg);

/* datagram mode under io_uring: queues c's request (its sequence number c->seq) from c's own
 * buffer, to be submitted at the loop's next turn. */
void lg_uring_datagram_send(struct lg *lg, struct lconn *c, uint64_t now);

/* Counts an error of a kind (AL_LOAD_ERR_*), naming code for "other";
 * nothing once the run is closing. */
void lg_count_error(struct lg *lg, int kind, int code);

/* Starts a connect in slot c; a failure is counted and leaves the slot
 * S_IDLE (connect mode) or S_DEAD. */
void lg_slot_connect(struct lg *lg, struct lconn *c, uint64_t now);

/* Sets c's epoll interest. Returns 0, or -1 with errno set. */
int lg_watch(struct lg *lg, struct lconn *c, uint32_t events);

/* Closes c's socket, leaving the slot in state `next`. */
void lg_conn_close(struct lg *lg, struct lconn *c, int next, uint64_t now);

/* Counts the error, then closes: S_IDLE in connect mode (it will try again
 * after LG_RETRY_NS), S_DEAD otherwise (the others are not replaced). */
void lg_conn_fail(struct lg *lg, struct lconn *c, int kind, int code, uint64_t now);

/* Sets an open connection to work: its mode's interest, and echo's first
 * message. Connections established while others are still connecting wait
 * for it until the connect phase is over. */
void lg_start_load(struct lg *lg, struct lconn *c, uint64_t now);

/* datagram mode: the awaited reply did not come within LG_LOSS_NS; counts it lost
 * (AL_LOAD_ERR_TIMEOUT) and sends the next request. */
void lg_datagram_lost(struct lg *lg, struct lconn *c, uint64_t now);

/* Does what c's state and mode ask, for the epoll events reported. */
void lg_handle(struct lg *lg, struct lconn *c, uint32_t events, uint64_t now);

#pragma GCC visibility pop

#endif /* LG_H */
