/* The readiness backend of the event model, behind a small fixed set of
 * functions (after redis ae's aeApi*). One implementation: poller_epoll.c.
 *
 * Level-triggered: a descriptor is reported for as long as it is ready for
 * what it asks. Errors and hang-ups are always reported, as both readable and
 * writable, so the owner finds out by trying.
 */
#ifndef AL_POLLER_H
#define AL_POLLER_H

#define AL_READABLE 1
#define AL_WRITABLE 2

struct al_poller;

struct al_fired {
    int fd;
    int mask;   /* AL_READABLE | AL_WRITABLE */
};

/* Returns a new poller, or NULL with errno set. */
struct al_poller *al_poll_create(void);

/* Start watching fd for mask (which may be 0: errors only), change what it
 * is watched for, or stop watching it. Each returns 0, or -1 with errno set. */
int al_poll_add(struct al_poller *p, int fd, int mask);
int al_poll_modify(struct al_poller *p, int fd, int mask);
int al_poll_remove(struct al_poller *p, int fd);

/* Waits up to timeout_ms (-1: no limit). Returns how many descriptors fired,
 * now in al_poll_fired(p)[0..n); 0 on timeout and on EINTR, so that the
 * caller looks at its stop flag before waiting again; -1 with errno set on
 * any other failure. */
int al_poll_wait(struct al_poller *p, int timeout_ms);
const struct al_fired *al_poll_fired(const struct al_poller *p);

void al_poll_free(struct al_poller *p);

#endif /* AL_POLLER_H */
