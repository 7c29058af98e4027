/* The load generator's error lines (see lg.h): "STEP WHERE: TEXT (ENAME)",
 * the format the servers use too. It is written again here, not taken from
 * cext/errors.c, because the load generator measures every port alike and
 * must not be built from one port's sources. */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>

#include "lg.h"

/* getaddrinfo's codes have no strerrorname_np; named as Python's socket
 * module names them, so that run_load's socket.gaierror reads like Python's. */
static const char *gai_name(int code)
{
#define NAME(c) \
    case c:     \
        return #c;
    switch (code) {
    NAME(EAI_BADFLAGS) NAME(EAI_NONAME) NAME(EAI_AGAIN) NAME(EAI_FAIL) NAME(EAI_FAMILY)
    NAME(EAI_SOCKTYPE) NAME(EAI_SERVICE) NAME(EAI_MEMORY) NAME(EAI_SYSTEM) NAME(EAI_OVERFLOW)
    NAME(EAI_NODATA) NAME(EAI_ADDRFAMILY) NAME(EAI_INPROGRESS) NAME(EAI_CANCELED)
    NAME(EAI_NOTCANCELED) NAME(EAI_ALLDONE) NAME(EAI_INTR) NAME(EAI_IDN_ENCODE)
    default:
        return NULL;
    }
#undef NAME
}

void lg_error_set(struct lg_error *e, const char *step, const char *where, int code)
{
    /* strerrordesc_np and strerrorname_np (glibc 2.32) return constant strings. */
    const char *text = strerrordesc_np(code), *name = strerrorname_np(code);
    e->step = step;
    e->code = code;
    if (text != NULL && name != NULL)
        snprintf(e->message, sizeof e->message, "%s %s: %s (%s)", step, where, text, name);
    else
        snprintf(e->message, sizeof e->message, "%s %s: Unknown error %d (errno %d)", step, where, code, code);
}

void lg_error_set_gai(struct lg_error *e, const char *step, const char *where, int code)
{
    if (code == EAI_SYSTEM) {
        lg_error_set(e, step, where, errno);   /* the real cause is in errno */
        return;
    }
    const char *name = gai_name(code);
    e->step = step;
    e->code = code;
    if (name != NULL)
        snprintf(e->message, sizeof e->message, "%s %s: %s (%s)", step, where, gai_strerror(code), name);
    else
        snprintf(e->message, sizeof e->message, "%s %s: %s (EAI_%d)", step, where, gai_strerror(code), code);
}
