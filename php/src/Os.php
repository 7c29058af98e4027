<?php
// The process's plumbing that every other class leans on: warnings become
// exceptions where they happen, one monotonic clock, and the one-line log.
declare(strict_types=1);

namespace AcceptLoop;

final class Os
{
    /**
     * Turn every PHP warning or notice into an \ErrorException at the call that raised it.
     *
     * socket_* functions report a failure twice: a `false` result and an E_WARNING
     * ("unable to bind address [98]: ..."). The callers catch the exception, read errno with
     * socket_last_error() and raise a SetupError or log one line, so stderr never shows
     * "PHP Warning". Fatal errors cannot be caught, so they at least go to stderr,
     * never into the LISTENING/READY lines on stdout.
     */
    public static function installErrorHandler(): void
    {
        ini_set('display_errors', 'stderr');
        set_error_handler(static function (int $level, string $message, string $file, int $line): bool {
            throw new \ErrorException($message, 0, $level, $file, $line);
        });
    }

    /** Seconds on the monotonic clock: deadlines must not jump with the wall clock. */
    public static function now(): float
    {
        return hrtime(true) / 1e9;
    }

    /** One line on stderr: the server's only log. */
    public static function log(string $line): void
    {
        self::writeAll(STDERR, $line . "\n");
    }

    /**
     * Write all of $text to a stream, however many writes it takes.
     *
     * Signal handlers are installed without SA_RESTART (so socket_select wakes up), so a
     * write to a full pipe can be cut short by a signal; the loop is bounded so a stream
     * that accepts nothing at all cannot hold the server.
     *
     * @param resource $stream
     */
    public static function writeAll($stream, string $text): void
    {
        try {
            for ($tries = 0; $text !== '' && $tries < 1000; $tries++) {
                $written = fwrite($stream, $text);
                if ($written === false) {
                    return;
                }
                $text = substr($text, $written);
            }
            fflush($stream);
        } catch (\ErrorException) {
            // The reader is gone (EPIPE: PHP's notice, SIGPIPE being ignored): a line that
            // cannot be written has nowhere else to go, and must not stop the server.
        }
    }
}
