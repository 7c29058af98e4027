<?php
// RFC 864: the rotating pattern until the client goes away; input is read and ignored.
declare(strict_types=1);

namespace AcceptLoop;

final class ChargenService extends Service
{
    /**
     * Whole periods, at least LOW_WATER bytes more than one: an offer taken from any place in
     * the first period is LOW_WATER bytes or more.
     */
    private static ?string $chunk = null;
    /** The length of one period of the pattern. */
    private static int $period = 0;

    /** Where in the period the next byte stands: what the socket took so far, modulo its length. */
    private int $position = 0;

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

    public function refill(float $now): void
    {
        if (self::$chunk === null) {
            $cycle = self::chargenCycle();
            self::$period = strlen($cycle);
            self::$chunk = str_repeat($cycle, intdiv(Protocol::LOW_WATER + self::$period - 1, self::$period) + 1);
        }
        $sent = $this->conn->offer(substr(self::$chunk, $this->position), $now);
        $this->position = ($this->position + $sent) % self::$period;
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
