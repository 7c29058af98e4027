<?php
// socket_select() as every loop uses it: EINTR is "nothing ready", not an error.
//
// A signal handler installed without SA_RESTART makes select() fail with EINTR; PHP then
// warns "socket_select(): Unable to select [4]: Interrupted system call" and returns false.
// Like Python's selectors, that becomes an empty result, and the caller looks at the stop
// flag before it waits again. (The pcntl handler has already run by then: PHP checks for
// pending signals as soon as an internal function returns.)
//
// No wait is longer than SIGNAL_LATENCY, however idle the server. The wake pair alone
// cannot close one race: a pcntl handler runs between opcodes, so a signal that lands after
// PHP's last check for pending signals but before the select() syscall (the few opcodes
// and socket_select()'s own set-up) is handled only when select() returns. Python's
// set_wakeup_fd writes from the C handler and has no such gap; PHP offers nothing like it.
// The cap bounds that rare gap: the caller wakes, finds nothing ready, and looks at the
// stop flag. Every other signal still wakes the loop at once through the wake pair.
//
// select() is limited to descriptors below FD_SETSIZE (1024). Once any socket in the sets
// has a higher number, socket_select() fails for all of them ("You MUST recompile PHP with
// a larger value of FD_SETSIZE", errno 0). The --max-conns default (1000) keeps a server
// under it, with room for stdio, the listeners and the two control pairs. Only the event
// model holds that many sockets, but every model waits on its connections with socket_select,
// so with a larger --max-conns (and `ulimit -n` above 1024) acceptClient asks canWatch() about
// each new connection, closes one it could not watch and pauses accepting, as for EMFILE.
declare(strict_types=1);

namespace AcceptLoop;

final class Select
{
    /** The longest wait in seconds: how late a signal can be handled in the worst case (see above). */
    private const SIGNAL_LATENCY = 0.1;

    /**
     * Wait until a socket of $read is readable or one of $write writable, or $timeout passes.
     *
     * Keys are kept, so callers find their objects again by key.
     *
     * @param array<array-key, \Socket> $read
     * @param array<array-key, \Socket> $write
     * @param float|null $timeout seconds; null: no limit but SIGNAL_LATENCY
     * @return array{array<array-key, \Socket>, array<array-key, \Socket>} the ready ones
     */
    public static function wait(array $read, array $write, ?float $timeout): array
    {
        $except = null;
        // Rounded up, like Python's _ms(): waking a little early would just wait again.
        $total = (int) ceil(max(0.0, min($timeout ?? self::SIGNAL_LATENCY, self::SIGNAL_LATENCY)) * 1e6);
        $seconds = intdiv($total, 1_000_000);
        $micros = $total % 1_000_000;
        $warning = '';
        Errno::clear();   // errno 0 after a failure must mean "PHP refused", never an earlier error
        try {
            $n = socket_select($read, $write, $except, $seconds, $micros);
        } catch (\ErrorException $e) {
            $n = false;
            $warning = $e->getMessage();
        }
        if ($n === false) {
            $errno = Errno::last();
            if ($errno === SOCKET_EINTR) {
                return [[], []];
            }
            if ($errno === 0) {
                // No errno: PHP refused a descriptor at or above FD_SETSIZE before calling select().
                throw new \RuntimeException('select: ' . strtok($warning, "\n"));
            }
            throw new \RuntimeException('select: ' . Errno::describeError($errno), $errno);
        }
        return [$read, $write];
    }

    /**
     * Whether socket_select() can watch $sock: false when its descriptor is at or above FD_SETSIZE.
     *
     * PHP code cannot read a Socket's descriptor number (ext-sockets has no such function; only
     * the FD_SETSIZE warning's text tells it), so a zero-timeout select on $sock alone asks
     * instead. PHP checks the number before it calls select(): a descriptor too high fails with
     * no errno at all, whereas a select() that ran (and so had a descriptor below FD_SETSIZE)
     * either succeeds or sets one (EINTR, ENOMEM). The process-wide errno is cleared first, so
     * the answer depends on this probe only, never on what an earlier call left behind.
     */
    public static function canWatch(\Socket $sock): bool
    {
        $read = [$sock];
        $write = null;
        $except = null;
        Errno::clear();
        try {
            socket_select($read, $write, $except, 0);
        } catch (\ErrorException) {
            return Errno::last() !== 0;   // select() ran: the descriptor is watchable; recv/send report the rest
        }
        return true;
    }
}
