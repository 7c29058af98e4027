/* The clock (see clock.h). */
#include <time.h>

#include "clock.h"

double al_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int al_timeout_ms(double seconds)
{
    if (seconds < 0.0)
        return -1;
    double wanted = seconds * 1000.0;
    if (wanted > 2e9)
        return 2000000000;   /* about 23 days: poll's int would overflow */
    int ms = (int)wanted;
    return (double)ms < wanted ? ms + 1 : ms;   /* rounded up, so a deadline is never woken for early */
}
