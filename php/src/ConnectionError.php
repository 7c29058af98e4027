<?php
// One connection's failure: `recv 127.0.0.1:5555: Connection reset by peer (ECONNRESET)`.
// It is that connection's problem: the owner logs the message and closes it; the loop goes on.
declare(strict_types=1);

namespace AcceptLoop;

final class ConnectionError extends \RuntimeException
{
    public function __construct(
        public readonly string $step,
        public readonly string $peer,
        int $errno,
    ) {
        parent::__construct("{$step} {$peer}: " . Errno::describeError($errno), $errno);
    }
}
