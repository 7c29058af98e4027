/* The readiness backend on Linux: epoll, level-triggered (see poller.h). */
#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "poller.h"

/* How many ready descriptors one epoll_wait may report. Large enough that a
 * busy loop with hundreds of connections handles them in one call; the rest
 * simply come in the next call, since epoll is level-triggered. */
#define MAX_FIRED 1024

struct al_poller {
    int epfd;
    struct epoll_event events[MAX_FIRED];
    struct al_fired fired[MAX_FIRED];
};

struct al_poller *al_poll_create(void)
{
    struct al_poller *p = malloc(sizeof *p);
    if (p == NULL)
        return NULL;
    p->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (p->epfd < 0) {
        int saved = errno;
        free(p);
        errno = saved;
        return NULL;
    }
    return p;
}

static int control(struct al_poller *p, int op, int fd, int mask)
{
    struct epoll_event ev;
    ev.events = (mask & AL_READABLE ? EPOLLIN : 0u) | (mask & AL_WRITABLE ? EPOLLOUT : 0u);
    ev.data.u64 = 0;   /* all of it defined, for valgrind and friends */
    ev.data.fd = fd;
    return epoll_ctl(p->epfd, op, fd, &ev);
}

int al_poll_add(struct al_poller *p, int fd, int mask)
{
    return control(p, EPOLL_CTL_ADD, fd, mask);
}

int al_poll_modify(struct al_poller *p, int fd, int mask)
{
    return control(p, EPOLL_CTL_MOD, fd, mask);
}

int al_poll_remove(struct al_poller *p, int fd)
{
    struct epoll_event ev = { 0 };   /* kernels before 2.6.9 wanted a non-NULL event */
    return epoll_ctl(p->epfd, EPOLL_CTL_DEL, fd, &ev);
}

int al_poll_wait(struct al_poller *p, int timeout_ms)
{
    int n = epoll_wait(p->epfd, p->events, MAX_FIRED, timeout_ms);
    if (n < 0)
        return errno == EINTR ? 0 : -1;
    for (int i = 0; i < n; i++) {
        unsigned int e = p->events[i].events;
        int mask = 0;
        if (e & EPOLLIN)
            mask |= AL_READABLE;
        if (e & EPOLLOUT)
            mask |= AL_WRITABLE;
        if (e & (EPOLLERR | EPOLLHUP))
            mask |= AL_READABLE | AL_WRITABLE;
        p->fired[i].fd = p->events[i].data.fd;
        p->fired[i].mask = mask;
    }
    return n;
}

const struct al_fired *al_poll_fired(const struct al_poller *p)
{
    return p->fired;
}

void al_poll_free(struct al_poller *p)
{
    if (p == NULL)
        return;
    close(p->epfd);
    free(p);
}
