<?php
// errno values and getaddrinfo codes as the one-line error format shows them:
// `Address already in use (EADDRINUSE)`.
declare(strict_types=1);

namespace AcceptLoop;

final class Errno
{
    /**
     * getaddrinfo's error codes by value. PHP defines no EAI_* constants, so these are
     * glibc's (netdb.h), the same table Python builds from its socket module.
     */
    private const GAI_NAMES = [
        -1 => 'EAI_BADFLAGS', -2 => 'EAI_NONAME', -3 => 'EAI_AGAIN', -4 => 'EAI_FAIL',
        -5 => 'EAI_NODATA', -6 => 'EAI_FAMILY', -7 => 'EAI_SOCKTYPE', -8 => 'EAI_SERVICE',
        -9 => 'EAI_ADDRFAMILY', -10 => 'EAI_MEMORY', -11 => 'EAI_SYSTEM', -12 => 'EAI_OVERFLOW',
    ];

    /** @var array<int, string>|null errno value => name, from ext-sockets' SOCKET_E* constants */
    private static ?array $names = null;

    /** `EADDRINUSE` for 98; `errno N` for a value ext-sockets has no constant for. */
    public static function name(int $errno): string
    {
        if (self::$names === null) {
            self::$names = [];
            foreach (get_defined_constants(true)['sockets'] as $constant => $value) {
                // The first name wins, as in Python's errno.errorcode: EAGAIN before EWOULDBLOCK.
                if (str_starts_with($constant, 'SOCKET_E') && !isset(self::$names[$value])) {
                    self::$names[$value] = substr($constant, strlen('SOCKET_'));
                }
            }
        }
        return self::$names[$errno] ?? "errno {$errno}";
    }

    /** `Address already in use (EADDRINUSE)`: the OS's text and the constant's name. */
    public static function describeError(int $errno): string
    {
        return socket_strerror($errno) . ' (' . self::name($errno) . ')';
    }

    /** `Name or service not known (EAI_NONAME)` for a getaddrinfo code and its gai_strerror text. */
    public static function describeGai(int $code, string $text): string
    {
        return $text . ' (' . (self::GAI_NAMES[$code] ?? "EAI_{$code}") . ')';
    }

    /**
     * The errno of the socket call that just failed, and forget it.
     *
     * Calls on an existing socket record errno on it; socket_create, socket_accept and
     * socket_select only record it globally, so those pass null.
     *
     * ext-sockets keeps the errno of a call on a socket twice: on the socket and process-wide
     * (socket_last_error() without an argument). Both copies are forgotten here, else the
     * process-wide one outlives the failure it describes (an EAGAIN of a send to a slow
     * reader, an ECONNRESET) and a later look at it, such as Select::canWatch's, reads an
     * error that call never had.
     */
    public static function last(?\Socket $socket = null): int
    {
        $errno = $socket === null ? socket_last_error() : socket_last_error($socket);
        if ($socket !== null) {
            socket_clear_error($socket);
        }
        socket_clear_error();
        return $errno;
    }

    /**
     * Forget the process-wide errno before a call whose failure is told apart by whether it set
     * one (socket_select: PHP refuses a descriptor at or above FD_SETSIZE without calling
     * select(), and so without an errno), so that nothing recorded earlier can be mistaken for it.
     */
    public static function clear(): void
    {
        socket_clear_error();
    }
}
