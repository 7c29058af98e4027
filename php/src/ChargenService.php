<?php
// RFC 864: the rotating pattern until the client goes away; input is read and ignored.
declare(strict_types=1);

namespace AcceptLoop;

final class ChargenService extends Service
{
    /** Whole periods, at least LOW_WATER bytes: appending it never changes where the pattern stands. */
    private static ?string $chunk = null;

    public function name(): string
    {
        return 'chargen';
    }

    public function produces(): bool
    {
        return true;
    }

    public function onEof(float $now): void
    {
        // A half-closed client may still be reading: keep sending until a send fails.
    }

    public function refill(): void
    {
        if ($this->conn->pending() < Protocol::LOW_WATER) {
            if (self::$chunk === null) {
                $cycle = self::chargenCycle();
                self::$chunk = str_repeat($cycle, intdiv(Protocol::LOW_WATER + strlen($cycle) - 1, strlen($cycle)));
            }
            $this->conn->queue(self::$chunk);
        }
    }

    /** One full period of RFC 864's pattern: 95 lines, each starting one character later. */
    public static function chargenCycle(): string
    {
        $alphabet = implode('', array_map('chr', range(Protocol::CHARGEN_FIRST_CHAR, Protocol::CHARGEN_LAST_CHAR)));
        $twice = $alphabet . $alphabet;
        $lines = '';
        for ($start = 0; $start < strlen($alphabet); $start++) {
            $lines .= substr($twice, $start, Protocol::CHARGEN_LINE_LENGTH) . Protocol::CHARGEN_LINE_ENDING;
        }
        return $lines;
    }
}
