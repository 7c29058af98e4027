/* Error lines and the log: the one format every failure is reported in,
 * "STEP ADDRESS: TEXT (ENAME)", and the server's only output channel, stderr. */
#ifndef AL_ERRORS_H
#define AL_ERRORS_H

#include <stddef.h>

#include "acceptloop.h"

/* An error as the steps report it: the step, the OS's code and the line. */
struct al_error {
    const char *step;            /* a static string: "resolve", "bind", ... */
    int code;                    /* errno, or an EAI_* code for "resolve" */
    char message[AL_ERROR_LEN];  /* "STEP ADDRESS: TEXT (ENAME)"; "" when nothing to say */
};

/* Fills err: step, code, and "STEP ADDRESS: TEXT (ENAME)" for an errno value. */
void al_error_set(struct al_error *err, const char *step, const char *address, int code);

/* The same for a getaddrinfo result code (EAI_*); EAI_SYSTEM reads errno. */
void al_error_set_gai(struct al_error *err, const char *step, const char *address, int code);

/* Writes "TEXT (ENAME)" for an errno value to buf, e.g. "Permission denied (EACCES)". */
void al_describe_error(char *buf, size_t len, int code);

/* One line on stderr, written with a single write(2) so that lines from
 * threads and forked children never interleave. Adds the newline. */
void al_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Logs "STEP WHERE: TEXT (ENAME)" for an errno value. */
void al_log_error(const char *step, const char *where, int code);

/* Writes len bytes (a whole line, newline included) to stderr. */
void al_log_write(const char *line, size_t len);

#endif /* AL_ERRORS_H */
