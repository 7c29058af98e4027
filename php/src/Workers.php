<?php
// --workers N > 1: N event loops on one port, a process each, under a supervising parent
// (Python: server/workers.py, which says the same in the same order).
//
// The parent opens every worker's listeners (SO_REUSEPORT on each, before bind), the first
// worker's choosing the port for --port 0 and the others binding the same one, so a start-up
// failure is one line and exit 1 with nothing forked. It forks the workers, each keeping its
// own listeners, announces the first worker's (every worker listens by then) and supervises:
// SIGTERM/SIGINT is passed on to every worker, which stops gracefully within the grace, and
// the parent exits 0 once all have exited 0; a worker that exits while the server is not
// stopping, or not with 0, is reported in one line, the others are stopped, exit 1; a worker
// still there two seconds after the grace is killed, exit 1.
declare(strict_types=1);

namespace AcceptLoop;

final class Workers
{
    private const STOP_SIGNALS = [SIGTERM, SIGINT, SIGCHLD];
    private const KILL_AFTER_GRACE = 2.0;

    /** @var array<int, int> pid => worker number (from 1) */
    private array $workers = [];
    private bool $told = false;
    private bool $killed = false;

    private function __construct(private readonly Config $config, private readonly Control $control)
    {
    }

    /** The parent of $config->workers event-loop processes on one port; the exit code. */
    public static function serveWorkers(Config $config): int
    {
        $sets = [];
        try {
            $control = new Control($config->grace);
            $control->installSignalHandlers(watchChildren: true);
            $port = null;
            // Each worker's listeners and stop pairs are made here, before READY, so that a
            // start-up failure (EMFILE at a low limit) is the server's: one line, exit 1.
            for ($i = 0; $i < $config->workers; $i++) {
                $sets[] = [$listeners = new Listeners($config), null];
                $listeners->openListeners($port);
                $port ??= $listeners->port();
                $sets[$i][1] = new Control($config->grace);
            }
            $slots = new SharedSlots($config->maxConns, $config->workers);
        } catch (SetupError $e) {
            self::release($sets);
            return Server::fail($e->getMessage());
        }
        $self = new self($config, $control);
        try {
            $self->fork($sets, $slots);
            $sets[0][0]->announce();
            self::release($sets);   // the workers hold their own; the parent's copies would only leak
            $slots->release();
            return $self->supervise();
        } catch (SetupError $e) {
            self::release($sets);
            $slots->release();
            return Server::fail($e->getMessage());
        }
    }

    /**
     * Close the listeners and stop pairs of workers that are not this process.
     *
     * @param list<array{Listeners, ?Control}> $sets
     */
    private static function release(array $sets, ?Listeners $except = null): void
    {
        foreach ($sets as [$listeners, $control]) {
            if ($listeners !== $except) {
                $listeners->closeListeners();
                $control?->close();
            }
        }
    }

    /**
     * One process per listener set, the stop signals blocked across the forks so that a worker
     * hears them only once its own handlers are in place.
     *
     * @param list<array{Listeners, Control}> $sets
     * @throws SetupError when a fork fails (the workers forked so far are stopped)
     */
    private function fork(array $sets, SharedSlots $slots): void
    {
        pcntl_sigprocmask(SIG_BLOCK, self::STOP_SIGNALS);
        try {
            foreach ($sets as $index => [$mine, $control]) {
                $pid = pcntl_fork();
                if ($pid === 0) {
                    exit($this->runWorker($index, $mine, $control, $sets, $slots));
                }
                if ($pid < 0) {
                    $errno = pcntl_get_last_error();
                    $this->stopAll();
                    while (pcntl_waitpid(-1, $status) > 0);
                    throw new SetupError('fork', 'workers', $errno, Errno::describeError($errno));
                }
                $this->workers[$pid] = $index + 1;
            }
        } finally {
            pcntl_sigprocmask(SIG_UNBLOCK, self::STOP_SIGNALS);
        }
    }

    /**
     * In a forked worker: its own listeners, stop pairs and handlers, then one event loop until
     * SIGTERM. Returns the exit code.
     *
     * @param list<array{Listeners, Control}> $sets
     */
    private function runWorker(int $index, Listeners $mine, Control $control, array $sets, SharedSlots $slots): int
    {
        try {
            self::release($sets, $mine);
            $slots->keep($index);
            self::dieWithParent();
            $control->installSignalHandlers(watchChildren: false);
            $this->control->close();
            pcntl_sigprocmask(SIG_UNBLOCK, self::STOP_SIGNALS);   // a pending SIGTERM stops it now
            (new EventLoop($mine, $this->config, $control, $slots))->runEvent();
        } catch (\Throwable $e) {
            return Server::fail("{$this->config->model} loop: " . get_class($e) . ': ' . $e->getMessage());
        }
        return Protocol::EXIT_OK;
    }

    /**
     * Ask the kernel for SIGTERM when the parent dies (prctl PR_SET_PDEATHSIG, through FFI, as
     * Python's supervisor does through ctypes): a worker never outlives its supervisor. Where
     * FFI is unavailable the worker goes on without it.
     */
    private static function dieWithParent(): void
    {
        try {
            \FFI::cdef('int prctl(int option, unsigned long arg2);', 'libc.so.6')->prctl(1, SIGTERM);
        } catch (\Throwable) {
        }
    }

    /** Until every worker has exited: pass a stop on, reap, kill what outlives the grace. */
    private function supervise(): int
    {
        $code = Protocol::EXIT_OK;
        while ($this->workers !== []) {
            if ($this->control->stopping && !$this->told) {
                $this->stopAll();
            }
            $timeout = null;
            if ($this->control->stopping) {
                $timeout = $this->control->stopDeadline() + self::KILL_AFTER_GRACE - Os::now();
                if ($timeout <= 0 && !$this->killed) {
                    $code = $this->killAll();
                }
                $timeout = $this->killed ? null : max($timeout, 0.0);
            }
            Select::wait(['wake' => $this->control->wakeRead], [], $timeout);
            $this->control->drainWake();
            $code = max($code, $this->reap());
        }
        return $code;
    }

    private function stopAll(): void
    {
        foreach (array_keys($this->workers) as $pid) {
            posix_kill($pid, SIGTERM);
        }
        $this->told = true;
    }

    private function killAll(): int
    {
        foreach ($this->workers as $pid => $index) {
            Os::log(sprintf('worker %d (pid %d) still running %g s after the grace; killed', $index, $pid,
                self::KILL_AFTER_GRACE));
            posix_kill($pid, SIGKILL);
        }
        $this->killed = true;
        return Protocol::EXIT_FAILURE;
    }

    /** `SIGKILL` for 9, as Python's signal.Signals names it. */
    private static function signalName(int $signo): string
    {
        foreach (get_defined_constants(true)['pcntl'] as $name => $value) {
            if ($value === $signo && preg_match('/^SIG[A-Z0-9]+$/', $name) === 1 && $name !== 'SIGIOT') {
                return $name;
            }
        }
        return "signal {$signo}";
    }

    /** Collect the workers that exited; one that ended unasked, or not with 0, is reported. */
    private function reap(): int
    {
        $code = Protocol::EXIT_OK;
        while ($this->workers !== [] && ($pid = pcntl_waitpid(-1, $status, WNOHANG)) > 0) {
            $index = $this->workers[$pid] ?? null;
            unset($this->workers[$pid]);
            $exited = pcntl_wifexited($status) ? pcntl_wexitstatus($status) : null;
            if ($index !== null && (!$this->control->stopping || $exited !== Protocol::EXIT_OK)) {
                $how = $exited !== null ? "exited with status {$exited}"
                    : 'was killed by ' . self::signalName(pcntl_wtermsig($status));
                Os::log("worker {$index} (pid {$pid}) {$how}");
                $code = Protocol::EXIT_FAILURE;
                $this->control->requestStop();
            }
        }
        return $code;
    }
}
