<?php
// RFC 862: send back every byte; after the client's FIN, finish sending and close.
declare(strict_types=1);

namespace AcceptLoop;

final class EchoService extends Service
{
    public function name(): string
    {
        return 'echo';
    }

    public function onData(string $data, float $now): void
    {
        $this->conn->emit($data, $now);
    }
}
