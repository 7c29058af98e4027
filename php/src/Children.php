<?php
// The fork model's children: the child's whole life, and the parent's reaping and stopping.
declare(strict_types=1);

namespace AcceptLoop;

final class Children
{
    /** The signals runFork blocks across pcntl_fork(): those the parent has handlers for. */
    public const FORK_BLOCKED = [SIGTERM, SIGINT, SIGCHLD];

    /** @var array<int, true> pid => true, for every child not yet reaped */
    private array $pids = [];

    public function add(int $pid): void
    {
        $this->pids[$pid] = true;
    }

    public function count(): int
    {
        return count($this->pids);
    }

    /**
     * The child's whole life: serve one connection, then exit. It never returns into the
     * parent's loop, so it can never accept, reap or run the parent's stopping.
     *
     * exit() ends the child without running `finally` blocks of the callers; nothing here
     * registers shutdown functions or destructors that act, so PHP's shutdown only frees.
     *
     * The child starts with FORK_BLOCKED blocked (see runFork); $oldMask, the mask from before
     * the fork, is restored only once the parent's handlers are reset, so a SIGTERM the parent
     * sent meanwhile is acted on by the default action, never by the parent's handler.
     *
     * @param list<int> $oldMask
     */
    public function serveInChild(\Socket $sock, string $peer, Listeners $listeners, Config $config, Control $control,
        array $oldMask): never
    {
        $status = Protocol::EXIT_OK;
        try {
            $control->forgetInChild();
            pcntl_sigprocmask(SIG_SETMASK, $oldMask);
            $listeners->closeListeners();
            $this->pids = [];   // the parent's children are not this process's to reap
            Models::serveConnection(new Connection($sock, $peer, $config, Os::now()), null);
        } catch (\Throwable $e) {
            // A child must never unwind into the parent's code: one line, then exit.
            Os::log("child {$peer}: " . get_class($e) . ': ' . $e->getMessage());
            $status = Protocol::EXIT_FAILURE;
        }
        exit($status);
    }

    /** Collect every child that has exited, so none is left a zombie. */
    public function reap(): void
    {
        while ($this->pids !== []) {
            $status = 0;
            $pid = pcntl_waitpid(-1, $status, WNOHANG);
            if ($pid === -1) {
                if (pcntl_get_last_error() === PCNTL_EINTR) {
                    continue;
                }
                $this->pids = [];   // ECHILD: none left (reaped elsewhere); forget them
                return;
            }
            if ($pid === 0) {
                return;
            }
            unset($this->pids[$pid]);
        }
    }

    /** Let children finish until $deadline, then end the rest with SIGTERM and reap them. */
    public function stop(Control $control, float $deadline): void
    {
        while ($this->pids !== []) {
            $this->reap();
            $left = $deadline - Os::now();
            if ($this->pids === [] || $left <= 0) {
                break;
            }
            Select::wait([$control->wakeRead], [], $left);   // SIGCHLD writes to the wake pair
            $control->drainWake();
        }
        foreach (array_keys($this->pids) as $pid) {
            posix_kill($pid, SIGTERM);
        }
        foreach (array_keys($this->pids) as $pid) {
            // Bounded: a blocking waitpid is cut short by SIGCHLD (no SA_RESTART) at most once per child.
            for ($tries = 0; $tries < 100; $tries++) {
                $status = 0;
                if (pcntl_waitpid($pid, $status) !== -1 || pcntl_get_last_error() !== PCNTL_EINTR) {
                    break;
                }
            }
        }
        $this->pids = [];
    }
}
