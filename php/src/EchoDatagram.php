<?php
// RFC 862 over UDP: each datagram's data sent back in one datagram (an empty one too).
declare(strict_types=1);

namespace AcceptLoop;

final class EchoDatagram extends DatagramService
{
    public function name(): string
    {
        return 'echo';
    }

    public function answer(string $data): ?string
    {
        return $data;
    }
}
