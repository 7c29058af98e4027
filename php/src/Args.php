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
    /** The characters Python's repr() writes by name. */
    private const NAMED_ESCAPES = ["\n" => '\\n', "\r" => '\\r', "\t" => '\\t'];

    /**
     * The options' values, or null when --help was asked for (the caller prints help()).
     *
     * @param list<string> $argv the arguments after the script's name
     * @param list<string> $models the models this port offers (PHP has no threads)
     * @throws UsageError naming the first problem
     */
    public static function parseArgs(array $argv, array $models, string|false $epochText): ?Config
    {
        $values = self::readOptions($argv, $models);
        if ($values === null) {
            return null;
        }
        self::checkTransport($values['transport'], $values['model'], $values['service']);
        self::checkWorkers($values['workers'], $values['model'], $values['transport']);
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
            transport: $values['transport'],
            workers: $values['workers'],
        );
    }

    /**
     * Every option's value by name: its default, or what $argv gives it (the last repeat wins);
     * null when -h or --help is among them.
     *
     * @param list<string> $argv
     * @param list<string> $models
     * @return array<string, mixed>|null
     * @throws UsageError naming the first argument that is not one of the options or lacks its value
     */
    private static function readOptions(array $argv, array $models): ?array
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
                    throw new UsageError("argument --{$name}: ignored explicit argument " . self::quote($inline));
                }
                $values[$name] = true;
                continue;
            }
            if ($inline === null) {
                $next = $argv[$i + 1] ?? null;
                if ($next === null || self::looksLikeOption($next)) {
                    throw new UsageError("argument --{$name}: expected one argument");
                }
                $inline = $next;
                $i++;
            }
            $values[$name] = self::convert($name, $kind, $inline, $low, $high, $choices, $models);
        }
        return $values;
    }

    /**
     * --transport udp takes only the models that need no accept and only the services with a
     * datagram form (protocol.toml [datagram]).
     *
     * @throws UsageError
     */
    private static function checkTransport(string $transport, string $model, string $service): void
    {
        if ($transport !== 'udp') {
            return;
        }
        if (!in_array($model, Protocol::DATAGRAM_MODELS, true)) {
            throw new UsageError(Protocol::DATAGRAM_WRONG_MODEL);
        }
        if (!in_array($service, Protocol::DATAGRAM_SERVICES, true)) {
            throw new UsageError(Protocol::DATAGRAM_NO_DATAGRAM_FORM);
        }
    }

    /**
     * --workers N > 1 only with a model that runs an event loop, and over tcp (protocol.toml
     * [workers]).
     *
     * @throws UsageError
     */
    private static function checkWorkers(int $workers, string $model, string $transport): void
    {
        if ($workers > 1 && !in_array($model, Protocol::WORKER_MODELS, true)) {
            throw new UsageError(sprintf(Protocol::WORKERS_REFUSAL, $model));
        }
        if ($workers > 1 && $transport !== 'tcp') {
            throw new UsageError(Protocol::WORKERS_UDP_REFUSAL);
        }
    }

    /**
     * Whether argparse would take $arg for an option rather than a value: it starts with `-`,
     * is not `-` alone, and is neither a negative number (`-5`, `-.5`, its \\d any decimal
     * digit, its `$` also before a final newline, as Python's re reads it) nor has a space.
     */
    private static function looksLikeOption(string $arg): bool
    {
        return str_starts_with($arg, '-') && $arg !== '-'
            && preg_match('/^-\d+$|^-\d*\.\d+$/u', $arg) !== 1 && !str_contains($arg, ' ');
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

    /**
     * The names a choice option offers: the port's models, the transports, or the services.
     * @param list<string> $models
     * @return list<string>
     */
    private static function choices(?string $choices, array $models): array
    {
        return match ($choices) {
            'models' => $models,
            'transports' => Protocol::TRANSPORTS,
            default => Protocol::SERVICES,
        };
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
            // A string's max is its longest length in bytes (0: no limit), counted as the OS
            // handed the argument over; a host longer than any name getaddrinfo takes is refused here.
            if ($high > 0 && strlen($text) > $high) {
                throw new UsageError(sprintf('argument --%s: longer than %.15g bytes', $name, $high));
            }
            return $text;
        }
        if ($kind === 'choice') {
            $allowed = self::choices($choices, $models);
            if (!in_array($text, $allowed, true)) {
                $list = implode(', ', array_map(self::quote(...), $allowed));
                $why = $choices === 'models' && in_array($text, Protocol::MODELS, true)
                    ? '; PHP has no threads' : '';
                throw new UsageError("argument --{$name}: invalid choice: " . self::quote($text)
                    . " (choose from {$list}){$why}");
            }
            return $text;
        }
        return self::number($kind, $text, $low, $high, "argument --{$name}");
    }

    /** ACCEPTLOOP_DAYTIME_EPOCH as whole seconds within the protocol's range; unset or empty: null (use the clock). */
    private static function daytimeEpoch(string|false $text): ?int
    {
        if ($text === false || $text === '') {
            return null;
        }
        return (int) self::number('int', $text, Protocol::DAYTIME_EPOCH_MIN, Protocol::DAYTIME_EPOCH_MAX,
            Protocol::DAYTIME_EPOCH_ENV);
    }

    /**
     * $text as the contract's $kind ("int" or "seconds") within $low..$high.
     *
     * The text is matched whole against its kind's pattern (Protocol::GRAMMAR_*, protocol.toml
     * [grammar]) before it is converted, so what PHP's casts or is_numeric() would also take
     * (` 5`, `+5`, `1e3`, `5\n`, `1_000` for Python's int()) is refused as in Python and C. The D
     * modifier keeps `$` from matching before a final newline; without `u` the pattern reads
     * bytes, so `[0-9]` is ASCII digits only, as in the other ports.
     *
     * @throws UsageError `WHAT: not a number: '0x10'`, `WHAT: 70000 is outside 0..65535`
     */
    private static function number(string $kind, string $text, int|float $low, int|float $high, string $what): int|float
    {
        $pattern = $kind === 'int' ? Protocol::GRAMMAR_INT : Protocol::GRAMMAR_SECONDS;
        if (preg_match('~' . str_replace('~', '\\~', $pattern) . '~D', $text) !== 1) {
            $description = $kind === 'int' ? 'a whole number' : 'a number';
            throw new UsageError("{$what}: not {$description}: " . self::quote($text));
        }
        if ($kind === 'int') {
            // Digits only by now. More of them than a PHP int holds is beyond every bound the
            // contract has (none is near PHP_INT_MAX), so it need not be converted to be refused.
            $digits = ltrim($text, '0');
            $value = strlen($digits) < strlen((string) PHP_INT_MAX) ? (int) $text : null;
        } else {
            $value = (float) $text;   // digits and one point: PHP reads it as Python's float() does
        }
        if ($value === null || $value < $low || $value > $high) {
            // The bounds as Python's {:.15g}: plain integers for whole ones.
            throw new UsageError(sprintf('%s: %s is outside %.15g..%.15g', $what, $text, $low, $high));
        }
        return $value;
    }

    /**
     * $text as Python's repr() shows a str, which is how argparse quotes a value in its errors:
     * single quotes (double ones when the text holds only single ones), `\\`, `\n`, `\r`, `\t`,
     * `\xHH`, `\uHHHH` or `\UHHHHHHHH` for what is not printable, and `\udcHH` for a byte that is
     * not UTF-8 (Python decodes argv with surrogateescape). A valid UTF-8 character is shown as is
     * unless Unicode calls it a control, format, private-use, unassigned or separator character
     * (str.isprintable(); the space is the one separator shown).
     */
    private static function quote(string $text): string
    {
        $quote = str_contains($text, "'") && !str_contains($text, '"') ? '"' : "'";
        preg_match_all('/[\x00-\x7F]|[\xC2-\xDF][\x80-\xBF]|\xE0[\xA0-\xBF][\x80-\xBF]'
            . '|[\xE1-\xEC\xEE\xEF][\x80-\xBF]{2}|\xED[\x80-\x9F][\x80-\xBF]|\xF0[\x90-\xBF][\x80-\xBF]{2}'
            . '|[\xF1-\xF3][\x80-\xBF]{3}|\xF4[\x80-\x8F][\x80-\xBF]{2}|./s', $text, $chars);
        $out = '';
        foreach ($chars[0] as $char) {
            $byte = ord($char);
            if (strlen($char) === 1 && $byte >= 0x80) {
                $out .= sprintf('\\udc%02x', $byte);
            } elseif ($char === '\\' || $char === $quote) {
                $out .= '\\' . $char;
            } elseif (isset(self::NAMED_ESCAPES[$char])) {
                $out .= self::NAMED_ESCAPES[$char];
            } elseif ($char === ' ' || preg_match('/^[^\p{C}\p{Z}]$/u', $char) === 1) {
                $out .= $char;
            } else {
                $code = self::codePoint($char);
                $out .= sprintf($code < 0x100 ? '\\x%02x' : ($code < 0x10000 ? '\\u%04x' : '\\U%08x'), $code);
            }
        }
        return $quote . $out . $quote;
    }

    /** The code point of one valid UTF-8 character. */
    private static function codePoint(string $char): int
    {
        $lead = ord($char[0]);
        $length = strlen($char);
        $code = $length === 1 ? $lead : $lead & (0xFF >> ($length + 1));
        for ($i = 1; $i < $length; $i++) {
            $code = ($code << 6) | (ord($char[$i]) & 0x3F);
        }
        return $code;
    }

    /**
     * @param list<string> $models
     * @param string $prog the program's name, as argparse's prog: another front end's (php-ffi)
     */
    public static function usage(array $models, string $prog = self::PROG): string
    {
        $parts = ['[-h]'];
        foreach (Protocol::OPTIONS as $name => [$kind, , , , $choices]) {
            $parts[] = '[' . self::synopsis($name, $kind, $choices, $models) . ']';
        }
        $lead = 'usage: ' . $prog . ' ';
        // Wrapped between options, never inside one: "\0" holds an option's own spaces meanwhile.
        $joined = implode(' ', array_map(static fn (string $p): string => str_replace(' ', "\0", $p), $parts));
        $wrapped = wordwrap($joined, 78 - strlen($lead), "\n" . str_repeat(' ', strlen($lead)));
        return $lead . str_replace("\0", ' ', $wrapped) . "\n";
    }

    /** @param list<string> $models */
    public static function help(array $models, string $prog = self::PROG): string
    {
        $lines = [self::usage($models, $prog), "\n" . self::DESCRIPTION . "\n", "\noptions:\n"];
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
            'choice' => "--{$name} {" . implode(',', self::choices($choices, $models)) . '}',
            default => "--{$name} " . strtoupper(str_replace('-', '_', $name)),
        };
    }
}
