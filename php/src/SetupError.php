<?php
// A step that sets the server up failed: `bind 127.0.0.1:7: Address already in use (EADDRINUSE)`.
declare(strict_types=1);

namespace AcceptLoop;

final class SetupError extends \RuntimeException
{
    /** $errno becomes the code (a getaddrinfo code for resolve); $reason is already described. */
    public function __construct(
        public readonly string $step,
        public readonly string $address,
        int $errno,
        string $reason,
    ) {
        parent::__construct("{$step} {$address}: {$reason}", $errno);
    }

    /** For a failed socket call: errno read from the socket (or globally), named. */
    public static function fromSocket(string $step, string $address, ?\Socket $socket): self
    {
        $errno = Errno::last($socket);
        return new self($step, $address, $errno, Errno::describeError($errno));
    }
}
