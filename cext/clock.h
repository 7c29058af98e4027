/* The clock: monotonic seconds, and poll timeouts from them. Internal.
 * Its own file, so that the network steps (net.c) and the per-connection loop
 * (serve.c) both read the time without either depending on the other. */
#ifndef AL_CLOCK_H
#define AL_CLOCK_H

/* Monotonic seconds. */
double al_now(void);

/* Milliseconds for poll/epoll_wait for `seconds`, rounded up; -1 (no limit) when seconds < 0. */
int al_timeout_ms(double seconds);

#endif /* AL_CLOCK_H */
