/* One client connection and the five services, as state machines that never block.
 *
 * Every model drives connections the same way: it waits until the socket is
 * ready for what al_conn_wants_read/al_conn_wants_write ask, or until
 * al_conn_deadline, then calls al_conn_on_readable, _on_writable or _on_timer.
 * Phases: SERVING (the service reads and writes), FLUSHING (the service is
 * done, unsent output goes out), LINGERING (our FIN is sent; input is read and
 * dropped until the client's FIN or the linger time, so the close is not an
 * RST that destroys the reply), CLOSED.
 *
 * An idle connection holds no buffer: reads go into the caller's buffer (one
 * per loop or thread), output is sent at once, and only what a short write
 * leaves behind is copied into `out`, which is freed again once it drains.
 */
#ifndef AL_CONN_H
#define AL_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "acceptloop.h"

enum al_phase { AL_SERVING, AL_FLUSHING, AL_LINGERING, AL_CLOSED };

struct al_conn;
struct al_poller;

/* What one service does with a connection (a handler table per service). */
struct al_service_ops {
    const char *name;
    int produces;   /* writes without being asked (chargen): always wants to write while serving */
    void (*on_open)(struct al_conn *c, double now);
    void (*on_data)(struct al_conn *c, const char *data, size_t len, double now);
    void (*on_eof)(struct al_conn *c, double now);
    void (*refill)(struct al_conn *c, double now);   /* produces: writable and nothing waits */
    void (*release)(struct al_conn *c);               /* free the service's own memory */
};

/* The protocol's bytes, shared with the datagram forms (datagram.c): RFC 867's line for the second
 * `epoch`, line ending included (its length; 0 when the second has no calendar date), and the
 * chargen pattern from its first line (at least one period of 95 lines). */
size_t al_daytime_line(char *line, size_t len, time_t epoch);
const char *al_chargen_cycle(void);

/* The handler tables, indexed like al_service_names (services.c). */
extern const struct al_service_ops *const al_services[];

struct al_conn {
    int fd;
    unsigned char phase;            /* enum al_phase */
    unsigned char input_open;       /* the client has not sent its FIN */
    unsigned char reading_paused;   /* backpressure: too much output waiting */
    unsigned char poll_mask;        /* event model: what the poller watches, AL_IN_POLLER once added */
    unsigned char ring;             /* uring model: output is kept for the ring, never sent here */
    unsigned char linger_deferred;  /* event model: lingering, not yet in the poller (loop_event.c) */
    const struct al_service_ops *service;
    const struct al_config *cfg;
    struct al_poller *poller;       /* event model: forget the fd there before closing it */
    double last_active;             /* the last successful read or write */
    double linger_until;            /* 0: not lingering */
    double stop_by;                 /* the grace deadline once the server is stopping; 0: none */
    char *out;                      /* unsent output [out_off, out_len); NULL when none waits */
    uint32_t out_off, out_len, out_cap;
    uint32_t in_flight;             /* uring model: bytes the ring is sending (taken from out) */
    union {
        size_t chargen_pos;         /* where in the pattern's period the next byte is */
        struct {
            char *buf;              /* allocated only when a message spans reads */
            size_t len;
        } message;
    } state;
    char peer[AL_ADDRESS_LEN];
};

/* Marks a connection the event loop's poller already holds (in poll_mask). */
#define AL_IN_POLLER 4

/* Takes over fd and runs the service's on_open; the connection may be closed
 * on return (a send failed). poller is NULL except in the event model. */
void al_conn_open(struct al_conn *c, int fd, const char *peer, const struct al_config *cfg,
                  struct al_poller *poller, double now);

int al_conn_wants_read(const struct al_conn *c);
int al_conn_wants_write(const struct al_conn *c);

/* When al_conn_on_timer must run next (monotonic seconds); 0 when nothing is due. */
double al_conn_deadline(const struct al_conn *c);

/* Reads at most AL_READ_SIZE bytes into buf (the caller's) and hands them to
 * the service, sending its output at once; drops input once the service is done. */
void al_conn_on_readable(struct al_conn *c, char *buf, double now);

/* What al_conn_on_readable does once recv returned: n bytes of buf for the
 * service (0: the client's FIN). The uring model calls it with what the ring received. */
void al_conn_on_data(struct al_conn *c, const char *buf, size_t n, double now);

/* Sends as much unsent output as the socket takes; a short write keeps the rest. */
void al_conn_on_writable(struct al_conn *c, double now);

/* After output went out (a send, or the ring's send completed): a producer
 * refills when nothing waits, then backpressure and the flush move on. */
void al_conn_on_sent(struct al_conn *c, double now);

/* Closes the connection if its idle, linger or grace time is up. */
void al_conn_on_timer(struct al_conn *c, double now);

/* For the services: output (emit: sent now if nothing waits, the rest kept;
 * with c->ring set "sent" means copied into `out` for the ring's next batch),
 * a producer's offer (sent now, nothing kept: returns bytes sent, 0 if the
 * socket is full, -1 once closed after an error), "nothing more to say"
 * (finish), and a failure of this connection (fail). */
void al_conn_emit(struct al_conn *c, const char *data, size_t len, double now);
/* emit, then finish: the service's last bytes, which the FIN follows in the same segment. */
void al_conn_emit_last(struct al_conn *c, const char *data, size_t len, double now);
ssize_t al_conn_offer(struct al_conn *c, const char *data, size_t len, double now);
void al_conn_finish(struct al_conn *c);
void al_conn_fail(struct al_conn *c, const char *step, int code);

/* Output not yet sent: what `out` keeps and what the ring is sending. */
static inline size_t al_conn_pending(const struct al_conn *c)
{
    return (size_t)(c->out_len - c->out_off) + c->in_flight;
}

/* Closes the socket (once) and frees what the connection holds. */
void al_conn_close(struct al_conn *c);

#endif /* AL_CONN_H */
