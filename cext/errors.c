/* Error lines and the log (see errors.h). */
#include "errors.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "platform.h"

void al_describe_error(char *buf, size_t len, int code)
{
    al_error_text(buf, len, code);   /* errno or WSAE* names (platform.h) */
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
    if (al_gai_is_system(code)) {
        /* The real cause is in errno; Python reports it the same way. */
        al_error_set(err, step, address, errno);
        return;
    }
    char text[128];
    al_gai_text(text, sizeof text, code);
    err->step = step;
    err->code = code;
    snprintf(err->message, sizeof err->message, "%s %s: %s", step, address, text);
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
