/* Error lines and the log (see errors.h). */
#include "errors.h"

#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* getaddrinfo's codes have no strerrorname_np; these are glibc's, named as
 * Python's socket module names them, so both ports print the same line. */
static const struct {
    int code;
    const char *name;
} gai_names[] = {
    { EAI_BADFLAGS, "EAI_BADFLAGS" },     { EAI_NONAME, "EAI_NONAME" },
    { EAI_AGAIN, "EAI_AGAIN" },           { EAI_FAIL, "EAI_FAIL" },
    { EAI_FAMILY, "EAI_FAMILY" },         { EAI_SOCKTYPE, "EAI_SOCKTYPE" },
    { EAI_SERVICE, "EAI_SERVICE" },       { EAI_MEMORY, "EAI_MEMORY" },
    { EAI_SYSTEM, "EAI_SYSTEM" },         { EAI_OVERFLOW, "EAI_OVERFLOW" },
    { EAI_NODATA, "EAI_NODATA" },         { EAI_ADDRFAMILY, "EAI_ADDRFAMILY" },
    { EAI_INPROGRESS, "EAI_INPROGRESS" }, { EAI_CANCELED, "EAI_CANCELED" },
    { EAI_NOTCANCELED, "EAI_NOTCANCELED" }, { EAI_ALLDONE, "EAI_ALLDONE" },
    { EAI_INTR, "EAI_INTR" },             { EAI_IDN_ENCODE, "EAI_IDN_ENCODE" },
};

void al_describe_error(char *buf, size_t len, int code)
{
    /* strerrordesc_np and strerrorname_np (glibc 2.32) return constant
     * strings, so unlike strerror they are safe from threads and children. */
    const char *text = strerrordesc_np(code);
    const char *name = strerrorname_np(code);
    char text_buf[32], name_buf[32];
    if (text == NULL) {
        snprintf(text_buf, sizeof text_buf, "Unknown error %d", code);
        text = text_buf;
    }
    if (name == NULL) {
        snprintf(name_buf, sizeof name_buf, "errno %d", code);
        name = name_buf;
    }
    snprintf(buf, len, "%s (%s)", text, name);
}

void al_error_set(struct al_error *err, const char *step, const char *address, int code)
{
    char text[128];
    al_describe_error(text, sizeof text, code);
    err->step = step;
    err->code = code;
    snprintf(err->message, sizeof err->message, "%s %s: %s", step, address, text);
}

void al_error_set_gai(struct al_error *err, const char *step, const char *address, int code)
{
    if (code == EAI_SYSTEM) {
        /* The real cause is in errno; Python reports it the same way. */
        al_error_set(err, step, address, errno);
        return;
    }
    const char *name = NULL;
    for (size_t i = 0; i < sizeof gai_names / sizeof gai_names[0]; i++) {
        if (gai_names[i].code == code) {
            name = gai_names[i].name;
            break;
        }
    }
    err->step = step;
    err->code = code;
    if (name != NULL)
        snprintf(err->message, sizeof err->message, "%s %s: %s (%s)", step, address, gai_strerror(code), name);
    else
        snprintf(err->message, sizeof err->message, "%s %s: %s (EAI_%d)", step, address, gai_strerror(code), code);
}

void al_log_write(const char *line, size_t len)
{
    while (len > 0) {
        ssize_t n = write(STDERR_FILENO, line, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return;   /* stderr is gone: there is nobody left to tell */
        }
        line += n;
        len -= (size_t)n;
    }
}

void al_log(const char *fmt, ...)
{
    char line[AL_ERROR_LEN + 64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof line - 2)
        n = (int)(sizeof line - 2);   /* truncated: still one whole line */
    line[n++] = '\n';
    al_log_write(line, (size_t)n);
}

void al_log_error(const char *step, const char *where, int code)
{
    struct al_error err;
    al_error_set(&err, step, where, code);
    al_log("%s", err.message);
}
