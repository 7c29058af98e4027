<?php
// RFC 867 over UDP: each datagram, whatever it holds, is answered with the daytime line.
declare(strict_types=1);

namespace AcceptLoop;

final class DaytimeDatagram extends DatagramService
{
    /** @param int|null $epoch ACCEPTLOOP_DAYTIME_EPOCH; null: the clock */
    public function __construct(private readonly ?int $epoch)
    {
    }

    public function name(): string
    {
        return 'daytime';
    }

    public function answer(string $data): ?string
    {
        return DaytimeService::daytimeLine($this->epoch ?? time());
    }
}
