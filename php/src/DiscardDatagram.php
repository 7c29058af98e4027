<?php
// RFC 863 over UDP: the datagram is dropped; nothing is sent.
declare(strict_types=1);

namespace AcceptLoop;

final class DiscardDatagram extends DatagramService
{
    public function name(): string
    {
        return 'discard';
    }

    public function answer(string $data): ?string
    {
        return null;
    }
}
