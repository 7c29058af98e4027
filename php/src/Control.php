<?php
// How a running PHP server learns that it must stop, or that a child exited.
//
// Two socket pairs (socket_select can only watch sockets, so not pipes):
//   wake: every handled signal (SIGTERM, SIGINT, SIGCHLD) writes a byte, so the main loop's
//         socket_select returns at once. Only the main loop reads and drains it.
//   stop: written once when stopping begins and never drained, so every loop polling it
//         sees it readable from then on: a broadcast.
//
// pcntl_async_signals(true) runs a handler between two opcodes soon after the signal, not
// only at pcntl_signal_dispatch(). Handlers are installed without SA_RESTART
// (restart_syscalls: false): a restarted accept() or waitpid() would never let the handler
// run while the server is idle (FAILURE-MODES: "PHP blocked in accept ignores SIGTERM").
// socket_select() is never restarted anyway; it fails with EINTR, which Select turns into
// "nothing ready" so the loop looks at $stopping.
declare(strict_types=1);

namespace AcceptLoop;

final class Control
{
    public bool $stopping = false;
    private float $stoppedAt = 0.0;
    public readonly \Socket $wakeRead;
    public readonly \Socket $stopRead;
    private readonly \Socket $wakeWrite;
    private readonly \Socket $stopWrite;
    private bool $closed = false;

    /**
     * @param float $grace `--grace`: how long connections in progress may take once stopping begins
     * @throws SetupError `socketpair control: Too many open files (EMFILE)`
     */
    public function __construct(private readonly float $grace)
    {
        $wake = self::pair();
        try {
            $stop = self::pair();
        } catch (SetupError $e) {
            socket_close($wake[0]);
            socket_close($wake[1]);
            throw $e;
        }
        [$this->wakeRead, $this->wakeWrite] = $wake;
        [$this->stopRead, $this->stopWrite] = $stop;
        foreach ([...$wake, ...$stop] as $sock) {
            // A full wake pair must drop a byte, never block the handler (and so the server).
            socket_set_nonblock($sock);
        }
    }

    /**
     * One connected pair of sockets (the constructor makes them non-blocking).
     *
     * socket_create_pair() warns before it returns false, and the warning is an exception by
     * now (Os::installErrorHandler), so both are caught here and errno names the reason: with
     * few descriptors left (`ulimit -n` 5 to 7) this is the first step that needs one.
     *
     * @return array{\Socket, \Socket}
     * @throws SetupError
     */
    private static function pair(): array
    {
        $pair = [];
        try {
            $ok = socket_create_pair(AF_UNIX, SOCK_STREAM, 0, $pair);
        } catch (\ErrorException) {
            $ok = false;
        }
        if (!$ok) {
            throw SetupError::fromSocket('socketpair', 'control', null);   // recorded globally only
        }
        return $pair;
    }

    /** SIGTERM and SIGINT begin a graceful stop; SIGCHLD (fork model) only wakes the loop. */
    public function installSignalHandlers(bool $watchChildren): void
    {
        pcntl_async_signals(true);
        $onStop = function (int $signo): void {
            $this->poke($this->wakeWrite);
            $this->requestStop();
        };
        pcntl_signal(SIGTERM, $onStop, false);
        pcntl_signal(SIGINT, $onStop, false);
        if ($watchChildren) {
            pcntl_signal(SIGCHLD, function (int $signo): void {
                $this->poke($this->wakeWrite);
            }, false);
        }
    }

    /** Begin a graceful stop: stop accepting; connections have `grace` seconds from now. */
    public function requestStop(): void
    {
        if (!$this->stopping) {
            $this->stopping = true;
            $this->stoppedAt = Os::now();
            $this->poke($this->stopWrite);
        }
    }

    /** The grace deadline: when connections still open are closed (once stopping). */
    public function stopDeadline(): float
    {
        return $this->stoppedAt + $this->grace;
    }

    /** Write one byte, or nothing when the pair is full or gone: the reader only needs readability. */
    private function poke(\Socket $sock): void
    {
        if ($this->closed) {
            return;
        }
        try {
            socket_write($sock, 's', 1);
        } catch (\ErrorException) {
            Errno::last($sock);
        }
    }

    public function drainWake(): void
    {
        // Bounded: 64 reads of 512 bytes is far more than the signals that can be pending.
        for ($i = 0; $i < 64; $i++) {
            $bytes = null;
            try {
                $n = socket_recv($this->wakeRead, $bytes, 512, 0);
            } catch (\ErrorException) {
                $n = false;
            }
            if ($n === false || $n === 0) {
                Errno::last($this->wakeRead);   // EAGAIN: drained
                return;
            }
        }
    }

    /**
     * In a forked child: the parent's signals and pairs are not the child's business.
     *
     * SIGTERM ends the child (the parent sends it when the grace is over); SIGINT from the
     * terminal is left to the parent, which stops gracefully.
     */
    public function forgetInChild(): void
    {
        pcntl_signal(SIGTERM, SIG_DFL);
        pcntl_signal(SIGINT, SIG_IGN);
        pcntl_signal(SIGCHLD, SIG_DFL);
        $this->close();
    }

    public function close(): void
    {
        if (!$this->closed) {
            $this->closed = true;
            foreach ([$this->wakeRead, $this->wakeWrite, $this->stopRead, $this->stopWrite] as $sock) {
                socket_close($sock);
            }
        }
    }
}
