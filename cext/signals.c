/* The stop through C signal handlers (acceptloop.h): SIGTERM and SIGINT begin
 * a graceful stop, SIGCHLD wakes a fork server so that it reaps at once.
 *
 * For front ends whose own signal handlers cannot run while the loop runs:
 * the standalone executable (main.c) and PHP through FFI (php/ffi), whose
 * pcntl handlers run only between two PHP opcodes, never while the process is
 * inside al_server_run. Python's binding never calls it: Python owns its
 * signals, and its handlers call al_server_stop from the main thread.
 *
 * POSIX only: the Winsock build (Windows has no SIGTERM, no sigaction) has
 * the same three functions in platform_winsock.c, over a console control
 * handler (platform.h).
 */
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>

#include "acceptloop.h"
#include "protocol.h"
#include "server.h"

/* c step: stop the loop */
/* What the handlers stop or wake, and how: one per process, like the signals. */
static void (*volatile stop_target)(void *);
static void (*volatile wake_target)(void *);
static void *volatile signal_target;

static void on_stop_signal(int signo)
{
    (void)signo;
    stop_target(signal_target);   /* al_server_stop: async-signal-safe, an atomic exchange and a write */
}

static void on_child_signal(int signo)
{
    (void)signo;
    wake_target(signal_target);   /* al_server_wake: one byte on the wake pipe */
}
/* end c step */

static const int handled[] = {SIGTERM, SIGINT, SIGCHLD};
#define HANDLED (sizeof handled / sizeof handled[0])
static struct sigaction previous[HANDLED];
static int installed[HANDLED];

static int install(size_t i, void (*handler)(int), int flags)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    /* SA_RESTART for the calls that may restart; poll and epoll_wait never
     * restart whatever it says, and the loops look at the stop flag then. */
    sa.sa_flags = SA_RESTART | flags;
    if (sigaction(handled[i], &sa, &previous[i]) < 0)
        return AL_ERR;
    installed[i] = 1;
    return AL_OK;
}

/* Puts back what install replaced, leaving errno as it was. */
static void restore_previous(void)
{
    int saved = errno;
    for (size_t i = 0; i < HANDLED; i++)
        if (installed[i]) {
            sigaction(handled[i], &previous[i], NULL);
            installed[i] = 0;
        }
    errno = saved;
}

/* posix step: stop signals */
int al_signals_install(void (*stop)(void *), void (*wake)(void *), void *target)
{
    if (target == NULL || stop == NULL) {
        errno = EINVAL;
        return AL_ERR;
    }
    stop_target = stop, wake_target = wake, signal_target = target;   /* before any handler can run */
    if (install(0, on_stop_signal, 0) != AL_OK || install(1, on_stop_signal, 0) != AL_OK ||
        (wake != NULL && install(2, on_child_signal, SA_NOCLDSTOP) != AL_OK)) {
        restore_previous();
        return AL_ERR;
    }
    return AL_OK;
}
/* end posix step */

static void stop_server(void *srv) { al_server_stop(srv); }
static void wake_server(void *srv) { al_server_wake(srv); }

int al_server_stop_on_signals(al_server *srv)
{
    if (srv == NULL) {
        errno = EINVAL;
        return AL_ERR;
    }
    return al_signals_install(stop_server, srv->cfg.model == AL_MODEL_FORK ? wake_server : NULL, srv);
}

void al_server_signals_release(void)
{
    /* No handler may touch the server once it is freed: a late signal waits,
     * blocked, unheard, until the process exits or unblocks it. */
    sigset_t stops;
    sigemptyset(&stops);
    for (size_t i = 0; i < HANDLED; i++)
        sigaddset(&stops, handled[i]);
    sigprocmask(SIG_BLOCK, &stops, NULL);
    restore_previous();
}
