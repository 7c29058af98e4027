<?php
// The EMFILE strategy (asyncio's and Go's): when accept() runs out of descriptors, stop
// accepting for a while (5 ms, doubling to 1 s) instead of waking forever on a connection
// that stays queued. The first accept that succeeds resets the delay.
declare(strict_types=1);

namespace AcceptLoop;

final class AcceptPause
{
    public float $delay = 0.0;
    public float $until = 0.0;

    public function paused(float $now): bool
    {
        return $now < $this->until;
    }

    public function pause(float $now): void
    {
        $this->delay = min(max($this->delay * 2, Protocol::ACCEPT_BACKOFF_INITIAL), Protocol::ACCEPT_BACKOFF_MAX);
        $this->until = $now + $this->delay;
    }

    public function reset(): void
    {
        $this->delay = 0.0;
    }
}
