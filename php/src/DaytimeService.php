<?php
// RFC 867: one line, then close; input is ignored.
declare(strict_types=1);

namespace AcceptLoop;

final class DaytimeService extends Service
{
    private const SECONDS_PER_DAY = 86400;
    /** 1970-01-01 was a Thursday: day 0 is weekday 4, counting from Sunday as the table does. */
    private const EPOCH_WEEKDAY = 4;

    public function name(): string
    {
        return 'daytime';
    }

    public function onOpen(float $now): void
    {
        $this->conn->emit(self::daytimeLine($this->config->daytimeEpoch ?? time()), $now);
        $this->conn->finish();
    }

    /**
     * RFC 867's line for $epoch: `Weekday, Month DD, YYYY HH:MM:SS-UTC` + CRLF.
     *
     * The fields come from calendar arithmetic, not gmdate(): the line is the protocol's
     * format and name tables, whatever date.timezone or PHP's own tables say.
     */
    public static function daytimeLine(int $epoch): string
    {
        $days = intdiv($epoch, self::SECONDS_PER_DAY);
        $secondOfDay = $epoch % self::SECONDS_PER_DAY;
        if ($secondOfDay < 0) {          // before 1970: floor, not truncation toward zero
            $secondOfDay += self::SECONDS_PER_DAY;
            $days--;
        }
        [$year, $month, $day] = self::civilFromDays($days);
        $weekday = (($days + self::EPOCH_WEEKDAY) % 7 + 7) % 7;
        $text = sprintf(
            Protocol::DAYTIME_FORMAT,
            Protocol::DAYTIME_WEEKDAYS[$weekday],
            Protocol::DAYTIME_MONTHS[$month - 1],
            $day,
            $year,
            intdiv($secondOfDay, 3600),
            intdiv($secondOfDay % 3600, 60),
            $secondOfDay % 60,
        );
        return $text . Protocol::DAYTIME_LINE_ENDING;
    }

    /**
     * [year, month 1-12, day 1-31] of the proleptic Gregorian calendar for days since
     * 1970-01-01: Howard Hinnant's civil_from_days, counting in 400-year eras that start on
     * March 1st so the leap day falls at the end of the year.
     *
     * @return array{int, int, int}
     */
    private static function civilFromDays(int $days): array
    {
        $z = $days + 719468;                                   // days since 0000-03-01
        $era = intdiv($z >= 0 ? $z : $z - 146096, 146097);    // 146097 days in 400 years
        $dayOfEra = $z - $era * 146097;
        $yearOfEra = intdiv($dayOfEra - intdiv($dayOfEra, 1460) + intdiv($dayOfEra, 36524)
            - intdiv($dayOfEra, 146096), 365);
        $dayOfYear = $dayOfEra - (365 * $yearOfEra + intdiv($yearOfEra, 4) - intdiv($yearOfEra, 100));
        $monthFromMarch = intdiv(5 * $dayOfYear + 2, 153);
        $day = $dayOfYear - intdiv(153 * $monthFromMarch + 2, 5) + 1;
        $month = $monthFromMarch < 10 ? $monthFromMarch + 3 : $monthFromMarch - 9;
        $year = $yearOfEra + $era * 400 + ($month <= 2 ? 1 : 0);
        return [$year, $month, $day];
    }
}
