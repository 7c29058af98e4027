/* The accept pause (see pause.h). */
#include "pause.h"
#include "protocol.h"

int al_pause_extend(struct al_pause *pause, double now)
{
    int first = pause->delay == 0.0;
    double delay = pause->delay * 2;
    if (delay < AL_ACCEPT_BACKOFF_INITIAL)
        delay = AL_ACCEPT_BACKOFF_INITIAL;
    if (delay > AL_ACCEPT_BACKOFF_MAX)
        delay = AL_ACCEPT_BACKOFF_MAX;
    pause->delay = delay;
    pause->until = now + delay;
    return first;
}

void al_pause_clear(struct al_pause *pause)
{
    pause->delay = 0.0;
}

int al_pause_active(const struct al_pause *pause, double now)
{
    return now < pause->until;
}
