<?php
// The one hook of the per-connection models' skeleton (AcceptLoop::acceptLoop): what the
// model does with a connection it accepted (Python: models.hand_off; C: al_hand_off).
declare(strict_types=1);

namespace AcceptLoop;

interface HandOff
{
    /**
     * How many connections the model has in hand now, for --max-conns. Asked after every
     * wake-up and before every hand-off, so the fork model reaps its exited children here.
     */
    public function inHand(): int;

    /** Give the accepted connection away: serve it to its end (iterative) or to a child (fork). */
    public function handOff(\Socket $sock, string $peer): void;
}
