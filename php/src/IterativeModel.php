<?php
// The iterative model: one client at a time, served to its end (Python: models.run_iterative).
declare(strict_types=1);

namespace AcceptLoop;

final class IterativeModel implements HandOff
{
    public function __construct(
        private readonly Listeners $listeners,
        private readonly Config $config,
        private readonly Control $control,
    ) {
    }

    // step: loop iterative
    /** The tutorials' loop, made correct: one client at a time, served to its end. */
    public function runIterative(): void
    {
        (new AcceptLoop($this->listeners, $this->config, $this->control))->acceptLoop($this);
    }

    /** None: the one connection is served to its end before the next accept. */
    public function inHand(): int
    {
        return 0;
    }

    /** Serve it here; a stop closes the listeners at once, so new clients are refused meanwhile. */
    public function handOff(\Socket $sock, string $peer): void
    {
        AcceptLoop::serveConnection(new Connection($sock, $peer, $this->config, Os::now()), $this->control,
            $this->listeners->closeListeners(...));
    }
    // end step
}
