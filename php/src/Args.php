<?php
// The command-line contract, read from Protocol::OPTIONS so this port accepts exactly what
// the Python and C servers accept. Like argparse and getopt_long: `--name value` or
// `--name=value`, an unambiguous prefix of a name is that name, the last repeat wins.
declare(strict_types=1);

namespace AcceptLoop;

final class Args
{
    public const PROG = 'php acceptloop.php';
    private const DESCRIPTION = 'A TCP accept loop that follows the acceptloop contract.';

    /**
     * The options' values, or null when --help was asked for (the caller prints help()).
     *
     * @param list<string> $argv the arguments after the script's name
     * @param list<string> $models the models this port offers (PHP has no threads)
     * @throws UsageError naming the first problem
     */
    public static function parse(array $argv, array $models, string|false $epochText): ?Config
    {
        $values = [];
        foreach (Protocol::OPTIONS as $name => [$kind, $default]) {
            $values[$name] = $kind === 'seconds' ? (float) $default : $default;
        }
        for ($i = 0; $i < count($argv); $i++) {
            $arg = $argv[$i];
            if ($arg === '-h') {
                return null;
            }
            if (!str_starts_with($arg, '--') || $arg === '--') {
                throw new UsageError("unrecognized arguments: {$arg}");
            }
            [$given, $inline] = str_contains($arg, '=') ? explode('=', substr($arg, 2), 2) : [substr($arg, 2), null];
            $name = self::match($given);
            if ($name === 'help') {
                return null;
            }
            [$kind, , $low, $high, $choices] = Protocol::OPTIONS[$name];
            if ($kind === 'flag') {
                if ($inline !== null) {
                    throw new UsageError("argument --{$name}: ignored explicit argument '{$inline}'");
                }
                $values[$name] = true;
                continue;
            }
            if ($inline === null) {
                $next = $argv[$i + 1] ?? null;
                // As argparse: a following option is not a value, a negative number is.
                if ($next === null || (str_starts_with($next, '-') && !is_numeric($next))) {
                    throw new UsageError("argument --{$name}: expected one argument");
                }
                $inline = $next;
                $i++;
            }
            $values[$name] = self::convert($name, $kind, $inline, $low, $high, $choices, $models);
        }
        return new Config(
            service: $values['service'],
            model: $values['model'],
            host: $values['host'],
            port: $values['port'],
            backlog: $values['backlog'],
            grace: $values['grace'],
            maxConns: $values['max-conns'],
            idleTimeout: $values['idle-timeout'],
            ipv6Only: $values['ipv6-only'],
            daytimeEpoch: self::daytimeEpoch($epochText),
        );
    }

    /** The option a `--name` stands for: itself, or the one option it is a prefix of. */
    private static function match(string $given): string
    {
        $names = [...array_keys(Protocol::OPTIONS), 'help'];
        if (in_array($given, $names, true)) {
            return $given;
        }
        $candidates = $given === '' ? [] : array_values(array_filter(
            $names,
            static fn (string $name): bool => str_starts_with($name, $given),
        ));
        if (count($candidates) === 1) {
            return $candidates[0];
        }
        if ($candidates !== []) {
            $list = implode(', ', array_map(static fn (string $n): string => "--{$n}", $candidates));
            throw new UsageError("ambiguous option: --{$given} could match {$list}");
        }
        throw new UsageError("unrecognized arguments: --{$given}");
    }

    /** @param list<string> $models */
    private static function convert(
        string $name,
        string $kind,
        string $text,
        int|float $low,
        int|float $high,
        ?string $choices,
        array $models,
    ): string|int|float {
        if ($kind === 'string') {
            return $text;
        }
        if ($kind === 'choice') {
            $allowed = $choices === 'models' ? $models : Protocol::SERVICES;
            if (!in_array($text, $allowed, true)) {
                $list = implode(', ', array_map(static fn (string $c): string => "'{$c}'", $allowed));
                $why = $choices === 'models' && in_array($text, Protocol::MODELS, true)
                    ? '; PHP has no threads' : '';
                throw new UsageError("argument --{$name}: invalid choice: '{$text}' (choose from {$list}){$why}");
            }
            return $text;
        }
        if ($kind === 'int') {
            $value = self::wholeNumber($text, "argument --{$name}", 'a whole number', "{$low}..{$high}");
        } else {
            $trimmed = trim($text);
            if (!is_numeric($trimmed) || !is_finite((float) $trimmed)) {
                throw new UsageError("argument --{$name}: not a number: '{$text}'");
            }
            $value = (float) $trimmed;
        }
        if ($value < $low || $value > $high) {
            throw new UsageError("argument --{$name}: {$text} is outside {$low}..{$high}");
        }
        return $value;
    }

    /** ACCEPTLOOP_DAYTIME_EPOCH as whole seconds; unset or empty: null (use the clock). */
    private static function daytimeEpoch(string|false $text): ?int
    {
        if ($text === false || $text === '') {
            return null;
        }
        return self::wholeNumber($text, Protocol::DAYTIME_EPOCH_ENV, 'a whole number of seconds',
            PHP_INT_MIN . '..' . PHP_INT_MAX);
    }

    /**
     * What Python's int() accepts: `42`, ` +042 `, `1_000`, `-5`.
     *
     * @throws UsageError `WHAT: not DESCRIPTION: 'x'`, or `WHAT: x is outside RANGE` when it
     *         does not fit in a PHP int (Python would take it, then fail later or find it out of range)
     */
    private static function wholeNumber(string $text, string $what, string $description, string $range): int
    {
        if (!preg_match('/^\s*([+-]?)(\d+(?:_\d+)*)\s*$/', $text, $m)) {
            throw new UsageError("{$what}: not {$description}: '{$text}'");
        }
        $digits = ltrim(str_replace('_', '', $m[2]), '0');
        $normal = ($m[1] === '-' && $digits !== '' ? '-' : '') . ($digits === '' ? '0' : $digits);
        $value = (int) $normal;
        if ((string) $value !== $normal) {
            throw new UsageError("{$what}: {$text} is outside {$range}");
        }
        return $value;
    }

    /** @param list<string> $models */
    public static function usage(array $models): string
    {
        $parts = ['[-h]'];
        foreach (Protocol::OPTIONS as $name => [$kind, , , , $choices]) {
            $parts[] = '[' . self::synopsis($name, $kind, $choices, $models) . ']';
        }
        $lead = 'usage: ' . self::PROG . ' ';
        // Wrapped between options, never inside one: "\0" holds an option's own spaces meanwhile.
        $joined = implode(' ', array_map(static fn (string $p): string => str_replace(' ', "\0", $p), $parts));
        $wrapped = wordwrap($joined, 78 - strlen($lead), "\n" . str_repeat(' ', strlen($lead)));
        return $lead . str_replace("\0", ' ', $wrapped) . "\n";
    }

    /** @param list<string> $models */
    public static function help(array $models): string
    {
        $lines = [self::usage($models), "\n" . self::DESCRIPTION . "\n", "\noptions:\n"];
        $lines[] = self::helpEntry('-h, --help', 'show this help message and exit');
        foreach (Protocol::OPTIONS as $name => [$kind, $default, , , $choices, $help]) {
            $shown = $kind === 'flag' ? '' : ' (default: ' . var_export($default, true) . ')';
            $lines[] = self::helpEntry(self::synopsis($name, $kind, $choices, $models), $help . $shown);
        }
        return implode('', $lines);
    }

    /** One option in argparse's layout: the synopsis, then the help in a column, wrapped. */
    private static function helpEntry(string $synopsis, string $help): string
    {
        $column = 24;
        $text = wordwrap($help, 78 - $column, "\n" . str_repeat(' ', $column));
        return strlen($synopsis) + 2 < $column - 1
            ? '  ' . str_pad($synopsis, $column - 2) . $text . "\n"
            : "  {$synopsis}\n" . str_repeat(' ', $column) . $text . "\n";
    }

    /** @param list<string> $models */
    private static function synopsis(string $name, string $kind, ?string $choices, array $models): string
    {
        return match ($kind) {
            'flag' => "--{$name}",
            'choice' => "--{$name} {" . implode(',', $choices === 'models' ? $models : Protocol::SERVICES) . '}',
            default => "--{$name} " . strtoupper(str_replace('-', '_', $name)),
        };
    }
}
