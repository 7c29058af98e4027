/* The load generator's run and its public API (loadgen.h): the phases
 * (connect, warm-up, window, closing), the loop that drives them, and the
 * setup and summary around it. What a connection does is in loadgen_conn.c,
 * the latency histogram in loadgen_hist.c, the watched server's counters in
 * loadgen_watch.c, the error lines in loadgen_error.c.
 */
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lg.h"

#define MAX_EVENTS 256
#define MAX_HANDSHAKES 64           /* connects in flight while ramping up: half a 128-deep backlog */
#define SWEEP_NS (10 * LG_MS)       /* how often connect timeouts and retries are looked at */
#define DRAIN_NS (1000 * LG_MS)     /* closing: how long to wait for the server's EOF */

static const char *const mode_names[AL_LOAD_MODES] = { "echo", "connect", "ingest", "egress", "idle", "datagram" };
static const char *const io_names[AL_LOAD_IOS] = { "epoll", "uring" };
static const char *const error_names[AL_LOAD_ERR_KINDS] = {
    "refused", "reset", "broken_pipe", "timeout", "closed_early", "mismatch", "other",
};

static double thread_cpu(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_THREAD, &ru) < 0)
        return 0;
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

void lg_enter(struct lg *lg, int phase, uint64_t now)
{
    const struct al_load_config *cfg = lg->cfg;
    if (lg->phase == P_CONNECT && cfg->mode != AL_LOAD_CONNECT) {
        /* The connect time is over: who is not connected by now never will be. */
        for (int i = 0; i < cfg->connections; i++) {
            struct lconn *c = &lg->conns[i];
            if (i >= lg->started) {
                lg_count_error(lg, AL_LOAD_ERR_TIMEOUT, ETIMEDOUT);
                c->state = S_DEAD;
            } else if (c->state == S_CONNECTING) {
                lg_conn_fail(lg, c, AL_LOAD_ERR_TIMEOUT, ETIMEDOUT, now);
            }
        }
        lg->started = cfg->connections;
        lg->phase = phase;   /* the load starts now, on every connection at once */
        for (int i = 0; i < cfg->connections && phase != P_DONE && lg->uring == NULL; i++)
            if (lg->conns[i].state == S_OPEN)
                lg_start_load(lg, &lg->conns[i], now);
    }
    if (phase == P_WARMUP) {
        lg->phase_end = now + (uint64_t)(cfg->warmup * 1e9);
    } else if (phase == P_WINDOW) {
        lg->window_start = now;
        lg->cpu_start = thread_cpu();
        lg_self_counters_open(lg->self_counters);
        if (cfg->watch_pid > 0) {
            lg_counters_open(&lg->counters, cfg->watch_pid);
            lg->server_cpu_start = lg_proc_cpu(cfg->watch_pid);
        }
        lg->phase_end = now + (uint64_t)(cfg->duration * 1e9);
    } else if (phase == P_DONE && lg->phase == P_WINDOW) {
        lg->res->elapsed = (double)(now - lg->window_start) / 1e9;
        lg->res->client_cpu_s = thread_cpu() - lg->cpu_start;
        lg->res->client_instructions = lg_self_counters_close(lg->self_counters);
        if (cfg->watch_pid > 0) {
            double end = lg_proc_cpu(cfg->watch_pid);
            lg->res->server_cpu_s = end < 0 || lg->server_cpu_start < 0 ? -1.0 : end - lg->server_cpu_start;
            lg_counters_close(&lg->counters, &lg->res->server_instructions_user,
                              &lg->res->server_instructions_kernel);
            lg->res->server_rss_end = lg_proc_rss(cfg->watch_pid);
        }
    }
    lg->phase = phase;
}

void lg_check(struct lg *lg, uint64_t now)
{
    if (lg->phase == P_CONNECT && lg->started == lg->cfg->connections && lg->connecting == 0)
        lg_enter(lg, P_WARMUP, now);
    while (lg->phase != P_DONE && now >= lg->phase_end)
        lg_enter(lg, lg->phase + 1, now);
    if (lg->phase != P_DONE && lg->phase != P_CONNECT && lg->cfg->mode != AL_LOAD_CONNECT
        && lg->open == 0 && lg->connecting == 0)
        lg_enter(lg, P_DONE, now);   /* nothing left to measure */
}

/* Connect timeouts, and connect mode's retries after a failure. */
static void sweep(struct lg *lg, uint64_t now)
{
    int connect_mode = lg->cfg->mode == AL_LOAD_CONNECT;
    for (int i = 0; i < lg->started; i++) {
        struct lconn *c = &lg->conns[i];
        if ((c->state == S_CONNECTING || (connect_mode && c->state == S_OPEN)) && now - c->started >= lg->timeout_ns)
            lg_conn_fail(lg, c, AL_LOAD_ERR_TIMEOUT, ETIMEDOUT, now);
        else if (connect_mode && c->state == S_IDLE && now >= c->retry_at)
            lg_slot_connect(lg, c, now);
        else if (lg->cfg->mode == AL_LOAD_DATAGRAM && c->state == S_OPEN && lg->phase != P_CONNECT
                 && now - c->started >= LG_LOSS_NS)
            lg_datagram_lost(lg, c, now);
    }
}

static int wait_ms(uint64_t now, uint64_t until)
{
    return now >= until ? 0 : (int)((until - now + LG_MS - 1) / LG_MS);
}

/* Closing: a half-close, then the server's EOF, so it sees a clean end
 * rather than a reset (closing with unread input sends an RST). That goes
 * for connections still "connecting" too: on loopback most have finished the
 * handshake and only their report is pending; shutdown fails (ENOTCONN) for
 * the others, which are simply closed. Egress cannot end cleanly (chargen
 * ignores our FIN and sends until a send fails), so it closes at once and
 * the server sees a reset; a datagram socket has nothing to end. */
static void close_all(struct lg *lg, struct epoll_event *evs)
{
    uint64_t now = lg_now_ns(), until = now + DRAIN_NS;
    for (int i = 0; i < lg->started; i++) {
        struct lconn *c = &lg->conns[i];
        if ((c->state == S_OPEN || c->state == S_CONNECTING) && lg->cfg->mode != AL_LOAD_EGRESS
            && lg->cfg->mode != AL_LOAD_DATAGRAM
            && shutdown(c->fd, SHUT_WR) == 0 && lg_watch(lg, c, EPOLLIN) == 0) {
            if (c->state == S_CONNECTING) {
                lg->connecting--;
                lg->open++;
            }
            c->state = S_CLOSING;
        } else if (c->state != S_IDLE && c->state != S_DEAD) {
            lg_conn_close(lg, c, S_DEAD, now);
        }
    }
    while (lg->open > 0 && now < until) {
        int n = epoll_wait(lg->ep, evs, MAX_EVENTS, wait_ms(now, until));
        for (int i = 0; i < n; i++)
            lg_handle(lg, evs[i].data.ptr, evs[i].events, now);
        now = lg_now_ns();
    }
    for (int i = 0; i < lg->started; i++)
        if (lg->conns[i].state == S_CLOSING)
            lg_conn_close(lg, &lg->conns[i], S_DEAD, now);
}

static void run(struct lg *lg)
{
    struct epoll_event evs[MAX_EVENTS];
    int mode = lg->cfg->mode;
    uint64_t now = lg_now_ns(), next_sweep = now + SWEEP_NS;
    lg->phase = P_CONNECT;
    lg->phase_end = now + lg->timeout_ns;
    if (mode == AL_LOAD_CONNECT)
        lg_enter(lg, P_WARMUP, now);   /* connecting is connect mode's load */
    while (lg->phase != P_DONE) {
        if (lg->uring != NULL && lg->phase != P_CONNECT) {
            lg_uring_load(lg);   /* the load, to the window's end */
            break;
        }
        while (lg->started < lg->cfg->connections && lg->connecting < MAX_HANDSHAKES
               && (lg->phase == P_CONNECT || mode == AL_LOAD_CONNECT)) {
            lg_slot_connect(lg, &lg->conns[lg->started++], now);
        }
        uint64_t wake = lg->phase_end < next_sweep ? lg->phase_end : next_sweep;
        int n = epoll_wait(lg->ep, evs, MAX_EVENTS, wait_ms(now, wake));
        if (n < 0 && errno != EINTR) {
            lg_count_error(lg, AL_LOAD_ERR_OTHER, errno);   /* cannot happen with a valid epoll set */
            lg_enter(lg, P_DONE, lg_now_ns());
            break;
        }
        for (int i = 0; i < n; i++) {
            now = lg_now_ns();
            lg_check(lg, now);
            if (lg->phase == P_DONE)
                break;
            lg_handle(lg, evs[i].data.ptr, evs[i].events, now);
        }
        now = lg_now_ns();
        if (now >= next_sweep) {
            sweep(lg, now);
            next_sweep = now + SWEEP_NS;
        }
        lg_check(lg, now);
    }
    close_all(lg, evs);
}

void al_load_config_defaults(struct al_load_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->mode = AL_LOAD_ECHO;
    cfg->connections = 1;
    cfg->message_size = 64;
    cfg->warmup = 1.0;
    cfg->duration = 5.0;
    cfg->cpu = -1;
    cfg->connect_timeout = 3.0;
}

int al_load_mode_index(const char *name)
{
    for (int i = 0; name != NULL && i < AL_LOAD_MODES; i++)
        if (strcmp(name, mode_names[i]) == 0)
            return i;
    return AL_LOAD_ERR;
}

int al_load_io_index(const char *name)
{
    for (int i = 0; name != NULL && i < AL_LOAD_IOS; i++)
        if (strcmp(name, io_names[i]) == 0)
            return i;
    return AL_LOAD_ERR;
}

const char *al_load_io_name(int io)
{
    return io >= 0 && io < AL_LOAD_IOS ? io_names[io] : NULL;
}

const char *al_load_mode_name(int mode)
{
    return mode >= 0 && mode < AL_LOAD_MODES ? mode_names[mode] : NULL;
}

const char *al_load_error_name(int kind)
{
    return kind >= 0 && kind < AL_LOAD_ERR_KINDS ? error_names[kind] : NULL;
}

/* The first bad setting, written as "config: NAME: VALUE is outside LOW..HIGH";
 * NaN fails every comparison, so each test is written to reject it. */
static int check_config(struct lg_error *e, const struct al_load_config *cfg)
{
    const char *bad = NULL;
    double value = 0, low = 0, high = 0;
#define BOUND(name, v, lo, hi, ok) \
    if (bad == NULL && !(ok)) { bad = name; value = (double)(v); low = lo; high = hi; }
    BOUND("port", cfg->port, 1, 65535, cfg->port >= 1 && cfg->port <= 65535)
    BOUND("mode", cfg->mode, 0, AL_LOAD_MODES - 1, cfg->mode >= 0 && cfg->mode < AL_LOAD_MODES)
    BOUND("connections", cfg->connections, 1, AL_LOAD_MAX_CONNS,
          cfg->connections >= 1 && cfg->connections <= AL_LOAD_MAX_CONNS)
    BOUND("message_size", cfg->message_size, 1, AL_LOAD_MAX_MESSAGE, cfg->mode != AL_LOAD_ECHO
          || (cfg->message_size >= 1 && cfg->message_size <= AL_LOAD_MAX_MESSAGE))
    BOUND("message_size", cfg->message_size, 1, AL_LOAD_MAX_DATAGRAM, cfg->mode != AL_LOAD_DATAGRAM
          || (cfg->message_size >= 1 && cfg->message_size <= AL_LOAD_MAX_DATAGRAM))
    BOUND("warmup", cfg->warmup, 0, AL_LOAD_MAX_SECONDS, cfg->warmup >= 0 && cfg->warmup <= AL_LOAD_MAX_SECONDS)
    BOUND("duration", cfg->duration, 0, AL_LOAD_MAX_SECONDS, cfg->duration > 0 && cfg->duration <= AL_LOAD_MAX_SECONDS)
    BOUND("connect_timeout", cfg->connect_timeout, 0, AL_LOAD_MAX_CONNECT_TIMEOUT,
          cfg->connect_timeout > 0 && cfg->connect_timeout <= AL_LOAD_MAX_CONNECT_TIMEOUT)
    BOUND("io", cfg->io, 0, AL_LOAD_IOS - 1, cfg->io >= 0 && cfg->io < AL_LOAD_IOS)
    BOUND("cpu", cfg->cpu, -1, CPU_SETSIZE - 1, cfg->cpu >= -1 && cfg->cpu < CPU_SETSIZE)
#undef BOUND
    e->step = "config";
    e->code = EINVAL;
    if (cfg->host == NULL || cfg->host[0] == '\0') {
        snprintf(e->message, sizeof e->message, "config: host: empty");
        return AL_LOAD_ERR;
    }
    if (bad != NULL) {
        snprintf(e->message, sizeof e->message, "config: %s: %.15g is outside %.15g..%.15g", bad, value, low, high);
        return AL_LOAD_ERR;
    }
    if (cfg->io == AL_LOAD_IO_URING && cfg->mode != AL_LOAD_ECHO && cfg->mode != AL_LOAD_CONNECT
        && cfg->mode != AL_LOAD_DATAGRAM) {
        snprintf(e->message, sizeof e->message, "config: io: uring drives echo, datagram and connect only, not %s",
                 mode_names[cfg->mode]);
        return AL_LOAD_ERR;
    }
    return AL_LOAD_OK;
}

/* The first address the host resolves to; a client needs only one. */
static int resolve(struct lg_error *e, struct lg *lg)
{
    char port[8], where[AL_LOAD_ERROR_LEN / 2];
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_flags = AI_NUMERICSERV,
                              .ai_socktype = lg->cfg->mode == AL_LOAD_DATAGRAM ? SOCK_DGRAM : SOCK_STREAM };
    struct addrinfo *list;
    snprintf(port, sizeof port, "%d", lg->cfg->port);
    snprintf(where, sizeof where, strchr(lg->cfg->host, ':') ? "[%s]:%s" : "%s:%s", lg->cfg->host, port);
    int rc = getaddrinfo(lg->cfg->host, port, &hints, &list);
    if (rc != 0) {
        lg_error_set_gai(e, "resolve", where, rc);
        return AL_LOAD_ERR;
    }
    memcpy(&lg->addr, list->ai_addr, list->ai_addrlen);
    lg->addrlen = list->ai_addrlen;
    freeaddrinfo(list);
    return AL_LOAD_OK;
}

static void summarize(struct lg *lg)
{
    struct al_load_result *res = lg->res;
    int mode = lg->cfg->mode;
    if (res->elapsed > 0) {
        unsigned long long payload = mode == AL_LOAD_INGEST ? res->bytes_sent
                                   : mode == AL_LOAD_IDLE ? 0 : res->bytes_received;
        res->ops_per_s = (double)res->ops / res->elapsed;
        res->mb_per_s = (double)payload / res->elapsed / 1e6;
        res->client_cpu_pct = res->client_cpu_s / res->elapsed * 100.0;
    }
    lg_hist_summarize(&lg->hist, res);
}

int al_load_run(char *err, size_t errlen, const struct al_load_config *cfg, struct al_load_result *res)
{
    struct lg_error e = { .step = "", .code = 0, .message = "" };
    struct lg *lg = NULL;
    cpu_set_t old_cpus;
    int pinned = 0, rc = AL_LOAD_ERR;
    memset(res, 0, sizeof *res);
    res->error_step = "";
    res->server_cpu_s = res->server_instructions_user = res->server_instructions_kernel = -1.0;
    res->client_instructions = -1.0;
    if (check_config(&e, cfg) != AL_LOAD_OK)
        goto out;
    lg = calloc(1, sizeof *lg);   /* the histogram makes it too big for a thread's stack */
    if (lg == NULL) {
        lg_error_set(&e, "memory", "load generator", ENOMEM);
        goto out;
    }
    lg->cfg = cfg;
    lg->res = res;
    lg->ep = -1;
    lg->self_counters[0] = lg->self_counters[1] = -1;
    lg->timeout_ns = (uint64_t)(cfg->connect_timeout * 1e9);
    lg->pattern_len = cfg->mode == AL_LOAD_ECHO || cfg->mode == AL_LOAD_DATAGRAM ? (size_t)cfg->message_size : LG_CHUNK;
    if (resolve(&e, lg) != AL_LOAD_OK)
        goto out;
    lg->conns = calloc((size_t)cfg->connections, sizeof *lg->conns);
    lg->pattern = malloc(lg->pattern_len);
    lg->rbuf = malloc(LG_RECV_BUF);
    if (lg->conns == NULL || lg->pattern == NULL || lg->rbuf == NULL) {
        lg_error_set(&e, "memory", "load generator", ENOMEM);
        goto out;
    }
    /* A pattern with no short period, so an echo shifted by some bytes
     * (lost or repeated data) cannot match by accident. */
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < lg->pattern_len; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        lg->pattern[i] = (unsigned char)x;
    }
    for (int i = 0; i < cfg->connections; i++)
        lg->conns[i].fd = -1;
    if (cfg->watch_pid > 0)
        res->server_rss_start = lg_proc_rss(cfg->watch_pid);
    lg_hist_init(&lg->hist);
    res->io = cfg->io;
    if (cfg->io == AL_LOAD_IO_URING && lg_uring_setup(&e, lg) != AL_LOAD_OK)
        goto out;
    lg->ep = epoll_create1(EPOLL_CLOEXEC);
    if (lg->ep < 0) {
        lg_error_set(&e, "epoll", "epoll_create1", errno);
        goto out;
    }
    if (cfg->cpu >= 0) {
        /* The calling thread only, and only for the run: it may be Python's main thread. */
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(cfg->cpu, &one);
        int code = pthread_getaffinity_np(pthread_self(), sizeof old_cpus, &old_cpus);
        if (code == 0)
            code = pthread_setaffinity_np(pthread_self(), sizeof one, &one);
        if (code != 0) {
            char where[32];
            snprintf(where, sizeof where, "cpu %d", cfg->cpu);
            lg_error_set(&e, "affinity", where, code);
            goto out;
        }
        pinned = 1;
    }
    run(lg);
    summarize(lg);
    rc = AL_LOAD_OK;
out:
    if (pinned)
        pthread_setaffinity_np(pthread_self(), sizeof old_cpus, &old_cpus);
    if (lg != NULL) {
        if (lg->counters.n > 0) {   /* the run ended inside the window */
            double unused_user, unused_kernel;
            lg_counters_close(&lg->counters, &unused_user, &unused_kernel);
        }
        if (lg->self_counters[0] >= 0 || lg->self_counters[1] >= 0)
            lg_self_counters_close(lg->self_counters);
        lg_uring_teardown(lg);
        if (lg->ep >= 0)
            close(lg->ep);
        free(lg->conns);
        free(lg->pattern);
        free(lg->rbuf);
        free(lg);
    }
    if (rc != AL_LOAD_OK) {
        res->error_code = e.code;
        res->error_step = e.step;
        if (errlen > 0)
            snprintf(err, errlen, "%s", e.message);
    }
    return rc;
}
