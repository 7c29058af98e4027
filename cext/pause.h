/* The accept pause (design.md "Accepting"). Internal.
 *
 * After EMFILE and friends the listeners rest for `delay` seconds (5 ms
 * doubling to 1 s) until `until`, instead of waking forever on a connection
 * that stays queued; the first accept that succeeds ends it. al_accept_client
 * (net.c) begins and ends it; every loop asks whether it lasts. */
#ifndef AL_PAUSE_H
#define AL_PAUSE_H

struct al_pause {
    double delay;                /* 0 while accepts succeed */
    double until;                /* monotonic seconds */
};

/* Begins the pause (AL_ACCEPT_BACKOFF_INITIAL) or doubles it (at most
 * AL_ACCEPT_BACKOFF_MAX) from now. Returns nonzero when it just began. */
int al_pause_extend(struct al_pause *pause, double now);

/* Ends it after a successful accept: the next failure starts again from the shortest delay. */
void al_pause_clear(struct al_pause *pause);

/* Nonzero while the listeners rest. */
int al_pause_active(const struct al_pause *pause, double now);

#endif /* AL_PAUSE_H */
