/* The five services as handler tables: echo_service, discard_service,
 * chargen_service, daytime_service, message_service (docs/protocol.md says
 * what each does on the wire; docs/design.md lists their events). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conn.h"
#include "errors.h"
#include "platform.h"
#include "protocol.h"

static void finish_on_eof(struct al_conn *c, double now)
{
    (void)now;
    al_conn_finish(c);
}

static void drop_data(struct al_conn *c, const char *data, size_t len, double now)
{
    (void)c, (void)data, (void)len, (void)now;
}

/* echo (RFC 862): send back every byte; after the client's FIN, flush and close. */

static void echo_on_data(struct al_conn *c, const char *data, size_t len, double now)
{
    al_conn_emit(c, data, len, now);
}

static const struct al_service_ops echo_service = {
    "echo", 0, NULL, echo_on_data, finish_on_eof, NULL, NULL,
};

/* discard (RFC 863): read and drop everything; close after the client's FIN. */

static const struct al_service_ops discard_service = {
    "discard", 0, NULL, drop_data, finish_on_eof, NULL, NULL,
};

/* chargen (RFC 864): the rotating pattern until the client goes away. One
 * period is 95 lines, each starting one character later. The pattern is kept
 * once, repeated so that LOW_WATER bytes can be sent from any point of the
 * period in one call: a connection only remembers where it stands, and what a
 * short write did not take is simply sent again from there. So a chargen
 * connection holds no output buffer at all, and never more than LOW_WATER
 * bytes are offered at once: it generates only while nothing waits. */

#define CHARGEN_CHARS (AL_CHARGEN_LAST_CHAR - AL_CHARGEN_FIRST_CHAR + 1)
#define CHARGEN_ENDING_LEN (sizeof AL_CHARGEN_LINE_ENDING - 1)
#define CHARGEN_LINE (AL_CHARGEN_LINE_LENGTH + CHARGEN_ENDING_LEN)
#define CHARGEN_PERIOD (CHARGEN_CHARS * CHARGEN_LINE)
#define CHARGEN_COPIES ((CHARGEN_PERIOD + AL_LOW_WATER + CHARGEN_PERIOD - 1) / CHARGEN_PERIOD)

static char chargen_pattern[CHARGEN_PERIOD * CHARGEN_COPIES];
static pthread_once_t chargen_once = PTHREAD_ONCE_INIT;

static void chargen_build(void)
{
    char *p = chargen_pattern;
    for (size_t copy = 0; copy < CHARGEN_COPIES; copy++) {
        for (int start = 0; start < CHARGEN_CHARS; start++) {
            for (int i = 0; i < AL_CHARGEN_LINE_LENGTH; i++)
                *p++ = (char)(AL_CHARGEN_FIRST_CHAR + (start + i) % CHARGEN_CHARS);
            memcpy(p, AL_CHARGEN_LINE_ENDING, CHARGEN_ENDING_LEN);
            p += CHARGEN_ENDING_LEN;
        }
    }
}

const char *al_chargen_cycle(void)
{
    pthread_once(&chargen_once, chargen_build);
    return chargen_pattern;
}

static void chargen_on_open(struct al_conn *c, double now)
{
    (void)now;
    pthread_once(&chargen_once, chargen_build);
    c->state.chargen_pos = 0;
}

static void chargen_on_eof(struct al_conn *c, double now)
{
    (void)c, (void)now;   /* a half-closed client may still be reading: keep sending until a send fails */
}

static void chargen_refill(struct al_conn *c, double now)
{
    ssize_t sent = al_conn_offer(c, chargen_pattern + c->state.chargen_pos, AL_LOW_WATER, now);
    if (sent > 0)
        c->state.chargen_pos = (c->state.chargen_pos + (size_t)sent) % CHARGEN_PERIOD;
}

static const struct al_service_ops chargen_service = {
    "chargen", 1, chargen_on_open, drop_data, chargen_on_eof, chargen_refill, NULL,
};

/* daytime (RFC 867): one line, then close; input is ignored. */

/* RFC 867's line for the second `epoch`, line ending included, in line; returns its
 * length, 0 when the second has no calendar date (al_utc_time fails). */
size_t al_daytime_line(char *line, size_t len, time_t epoch)
{
    struct tm t;
    if (al_utc_time((long long)epoch, &t) < 0)
        return 0;
    int n = snprintf(line, len, AL_DAYTIME_FORMAT AL_DAYTIME_LINE_ENDING,
                     al_daytime_weekdays[t.tm_wday], al_daytime_months[t.tm_mon], t.tm_mday,
                     t.tm_year + 1900, t.tm_hour, t.tm_min, t.tm_sec);
    if (n <= 0)
        return 0;
    return (size_t)n < len ? (size_t)n : len - 1;
}

static void daytime_on_open(struct al_conn *c, double now)
{
    time_t epoch = c->cfg->has_daytime_epoch ? (time_t)c->cfg->daytime_epoch : time(NULL);
    char line[128];
    size_t n = al_daytime_line(line, sizeof line, epoch);
    if (n == 0) {
        al_conn_fail(c, "daytime", EOVERFLOW);
        return;
    }
    al_conn_emit_last(c, line, n, now);
}

static const struct al_service_ops daytime_service = {
    "daytime", 0, daytime_on_open, drop_data, finish_on_eof, NULL, NULL,
};

/* message: the tutorial's exchange. One message (to LF, MESSAGE_MAX_BYTES or
 * EOF) is logged as one printable line, then one reply, then close. */

_Static_assert(sizeof AL_MESSAGE_TERMINATOR == 2, "the message terminator is one byte");

static void message_release(struct al_conn *c)
{
    free(c->state.message.buf);
    c->state.message.buf = NULL;
    c->state.message.len = 0;
}

/* The message as one printable line, appended at line + n: \\, \n, \r, \t,
 * \xHH for the rest. Each byte becomes at most four, which `size` must allow
 * for. Returns the new length. */
static size_t escape_message(char *line, size_t n, size_t size, const char *msg, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char b = (unsigned char)msg[i];
        switch (b) {
        case '\\': line[n++] = '\\'; line[n++] = '\\'; break;
        case '\n': line[n++] = '\\'; line[n++] = 'n'; break;
        case '\r': line[n++] = '\\'; line[n++] = 'r'; break;
        case '\t': line[n++] = '\\'; line[n++] = 't'; break;
        default:
            if (b >= 0x20 && b <= 0x7e)
                line[n++] = (char)b;
            else
                n += (size_t)snprintf(line + n, size - n, "\\x%02x", b);
        }
    }
    return n;
}

static void message_reply(struct al_conn *c, const char *msg, size_t len, double now)
{
    char line[sizeof AL_MESSAGE_LOG_PREFIX + 4 * AL_MESSAGE_MAX_BYTES + 1];
    size_t n = sizeof AL_MESSAGE_LOG_PREFIX - 1;
    memcpy(line, AL_MESSAGE_LOG_PREFIX, n);
    n = escape_message(line, n, sizeof line, msg, len);
    line[n++] = '\n';
    al_log_write(line, n);
    al_conn_emit_last(c, AL_MESSAGE_REPLY, sizeof AL_MESSAGE_REPLY - 1, now);
    message_release(c);   /* the message is told: keep nothing */
}

/* Where a message ends: of `len` new bytes after `have` already kept, how many
 * belong to the message (up to and with the first LF, or to MESSAGE_MAX_BYTES
 * in all); *complete says whether that ends it (else more may come, and EOF
 * ends it with what there is). */
static size_t complete_message(const char *data, size_t len, size_t have, int *complete)
{
    size_t take = AL_MESSAGE_MAX_BYTES - have;
    if (take > len)
        take = len;
    const char *lf = memchr(data, AL_MESSAGE_TERMINATOR[0], take);
    if (lf != NULL)
        take = (size_t)(lf - data) + 1;
    *complete = lf != NULL || have + take == AL_MESSAGE_MAX_BYTES;
    return take;
}

static void message_on_data(struct al_conn *c, const char *data, size_t len, double now)
{
    size_t have = c->state.message.len;
    int complete;
    size_t take = complete_message(data, len, have, &complete);
    if (have == 0 && complete) {
        message_reply(c, data, take, now);   /* the whole message in one read: no copy */
        return;
    }
    if (c->state.message.buf == NULL) {
        c->state.message.buf = malloc(AL_MESSAGE_MAX_BYTES);
        if (c->state.message.buf == NULL) {
            al_conn_fail(c, "recv", ENOMEM);
            return;
        }
    }
    memcpy(c->state.message.buf + have, data, take);
    c->state.message.len = have + take;
    if (complete)
        message_reply(c, c->state.message.buf, c->state.message.len, now);
}

static void message_on_eof(struct al_conn *c, double now)
{
    message_reply(c, c->state.message.buf, c->state.message.len, now);
}

static const struct al_service_ops message_service = {
    "message", 0, NULL, message_on_data, message_on_eof, NULL, message_release,
};

const struct al_service_ops *const al_services[AL_SERVICE_COUNT] = {
    [AL_SERVICE_ECHO] = &echo_service,
    [AL_SERVICE_DISCARD] = &discard_service,
    [AL_SERVICE_CHARGEN] = &chargen_service,
    [AL_SERVICE_DAYTIME] = &daytime_service,
    [AL_SERVICE_MESSAGE] = &message_service,
};
