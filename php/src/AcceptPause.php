<?php
// The EMFILE strategy (asyncio's and Go's): when accept() runs out of descriptors, stop
// accepting for a while (5 ms, doubling to 1 s) instead of waking forever on a connection
// that stays queued. The first accept that succeeds ends it and resets the delay.
declare(strict_types=1);

namespace AcceptLoop;

final class AcceptPause
{
    /** The length of the last pause; 0: none since the last successful accept. */
    private float $delay = 0.0;
    /** When the pause ends (monotonic seconds). */
    private float $until = 0.0;

    /** Whether the pause lasts: the listeners stay out of the poll set until $this->until(). */
    public function active(float $now): bool
    {
        return $now < $this->until;
    }

    /** When the pause ends; in the past when none lasts. */
    public function until(): float
    {
        return $this->until;
    }

    /**
     * Begin a pause, or lengthen it: the delay doubles from ACCEPT_BACKOFF_INITIAL up to
     * ACCEPT_BACKOFF_MAX. True when a pause begins (none since the last successful accept),
     * the one moment worth a log line.
     */
    public function extend(float $now): bool
    {
        $begins = $this->delay === 0.0;
        $this->delay = min(max($this->delay * 2, Protocol::ACCEPT_BACKOFF_INITIAL), Protocol::ACCEPT_BACKOFF_MAX);
        $this->until = $now + $this->delay;
        return $begins;
    }

    /** An accept succeeded: the next pause starts from the shortest delay again. */
    public function clear(): void
    {
        $this->delay = 0.0;
    }
}
