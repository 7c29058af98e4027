<?php
// RFC 864 over UDP: each datagram is answered with the pattern's first lines, whatever it holds.
// The RFC lets a server keep a place in the pattern per client; this one keeps none, so every
// answer starts at the pattern's first line and is the same DATAGRAM_CHARGEN_LINES whole lines.
declare(strict_types=1);

namespace AcceptLoop;

final class ChargenDatagram extends DatagramService
{
    private readonly string $lines;

    public function __construct()
    {
        $length = Protocol::DATAGRAM_CHARGEN_LINES * (Protocol::CHARGEN_LINE_LENGTH + strlen(Protocol::CHARGEN_LINE_ENDING));
        $this->lines = substr(ChargenService::chargenCycle(), 0, $length);
    }

    public function name(): string
    {
        return 'chargen';
    }

    public function answer(string $data): ?string
    {
        return $this->lines;
    }
}
