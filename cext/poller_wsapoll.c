/* The readiness backend on Winsock: WSAPoll, level-triggered (see poller.h).
 * Compiled only for _WIN32; poller_epoll.c is the POSIX one.
 *
 * WSAPoll has no kernel-side set like epoll: the set is an array of struct
 * pollfd passed whole to every call, so a wait costs O(watched sockets), as
 * poll(2) does. Sockets are found in the array through a table indexed by
 * the socket's value (Winsock handles are small numbers, as descriptors are;
 * see platform.h). A socket watched for nothing (mask 0) stays in the array
 * with events 0: WSAPoll still reports its errors and hang-ups. */
#ifdef _WIN32

#include <stdlib.h>
#include <string.h>

#include "platform.h"
#include "poller.h"

struct al_poller {
    struct pollfd *pfds;        /* the watched sockets, [0, count) */
    struct al_fired *fired;     /* fired_cap entries, grown only in al_poll_wait */
    int count, cap, fired_cap;
    int *slot;                  /* slot[fd]: index into pfds, or -1 */
    int slot_cap;
};

static int out_of_memory(void)
{
    WSASetLastError(WSA_NOT_ENOUGH_MEMORY);
    return -1;
}

struct al_poller *al_poll_create(void)
{
    struct al_poller *p = calloc(1, sizeof *p);
    if (p == NULL)
        out_of_memory();
    return p;
}

static short events_for(int mask)
{
    return (short)((mask & AL_READABLE ? POLLRDNORM : 0) | (mask & AL_WRITABLE ? POLLWRNORM : 0));
}

static int slot_of(const struct al_poller *p, int fd)
{
    return fd >= 0 && fd < p->slot_cap ? p->slot[fd] : -1;
}

int al_poll_add(struct al_poller *p, int fd, int mask)
{
    if (fd < 0) {
        WSASetLastError(WSAENOTSOCK);
        return -1;
    }
    if (slot_of(p, fd) >= 0) {
        WSASetLastError(WSAEALREADY);
        return -1;
    }
    if (fd >= p->slot_cap) {
        int cap = p->slot_cap ? p->slot_cap : 1024;
        while (cap <= fd)
            cap *= 2;
        int *grown = realloc(p->slot, (size_t)cap * sizeof *grown);
        if (grown == NULL)
            return out_of_memory();
        for (int i = p->slot_cap; i < cap; i++)
            grown[i] = -1;
        p->slot = grown;
        p->slot_cap = cap;
    }
    if (p->count == p->cap) {
        int cap = p->cap ? p->cap * 2 : 64;
        struct pollfd *pfds = realloc(p->pfds, (size_t)cap * sizeof *pfds);
        if (pfds == NULL)
            return out_of_memory();
        p->pfds = pfds;
        p->cap = cap;
    }
    p->pfds[p->count].fd = (SOCKET)(unsigned int)fd;
    p->pfds[p->count].events = events_for(mask);
    p->pfds[p->count].revents = 0;
    p->slot[fd] = p->count++;
    return 0;
}

int al_poll_modify(struct al_poller *p, int fd, int mask)
{
    int i = slot_of(p, fd);
    if (i < 0) {
        WSASetLastError(WSAENOTSOCK);
        return -1;
    }
    p->pfds[i].events = events_for(mask);
    return 0;
}

int al_poll_remove(struct al_poller *p, int fd)
{
    int i = slot_of(p, fd);
    if (i < 0) {
        WSASetLastError(WSAENOTSOCK);
        return -1;
    }
    /* The last one takes the removed one's place. */
    int last = --p->count;
    if (i != last) {
        p->pfds[i] = p->pfds[last];
        p->slot[(int)p->pfds[i].fd] = i;
    }
    p->slot[fd] = -1;
    return 0;
}

int al_poll_wait(struct al_poller *p, int timeout_ms)
{
    /* The fired array grows here and nowhere else: the caller holds al_poll_fired's pointer
     * while it handles the events, and adding a socket then must not move it. */
    if (p->fired_cap < p->count) {
        struct al_fired *fired = realloc(p->fired, (size_t)p->cap * sizeof *fired);
        if (fired == NULL)
            return out_of_memory();
        p->fired = fired;
        p->fired_cap = p->cap;
    }
    if (p->count == 0) {
        /* WSAPoll refuses an empty set (WSAEINVAL): just wait. */
        Sleep(timeout_ms < 0 ? INFINITE : (DWORD)timeout_ms);
        return 0;
    }
    int n = WSAPoll(p->pfds, (ULONG)p->count, timeout_ms);
    if (n == SOCKET_ERROR)
        return WSAGetLastError() == WSAEINTR ? 0 : -1;
    int fired = 0;
    for (int i = 0; i < p->count && fired < n; i++) {
        short e = p->pfds[i].revents;
        if (e == 0)
            continue;
        int mask = 0;
        if (e & (POLLRDNORM | POLLRDBAND))
            mask |= AL_READABLE;
        if (e & POLLWRNORM)
            mask |= AL_WRITABLE;
        if (e & (POLLERR | POLLHUP | POLLNVAL))
            mask |= AL_READABLE | AL_WRITABLE;
        p->fired[fired].fd = (int)p->pfds[i].fd;
        p->fired[fired].mask = mask;
        fired++;
    }
    return fired;
}

const struct al_fired *al_poll_fired(const struct al_poller *p)
{
    return p->fired;
}

void al_poll_free(struct al_poller *p)
{
    if (p == NULL)
        return;
    free(p->pfds);
    free(p->fired);
    free(p->slot);
    free(p);
}

#endif /* _WIN32 */
