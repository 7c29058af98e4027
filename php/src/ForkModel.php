<?php
// The fork model: a child process per connection; the child's whole life, and the parent's
// reaping and stopping of its children (Python: models.run_fork).
declare(strict_types=1);

namespace AcceptLoop;

final class ForkModel implements HandOff
{
    /** The signals handOff blocks across pcntl_fork(): those the parent has handlers for. */
    private const FORK_BLOCKED = [SIGTERM, SIGINT, SIGCHLD];

    /** @var array<int, true> pid => true, for every child not yet reaped */
    private array $pids = [];

    public function __construct(
        private readonly Listeners $listeners,
        private readonly Config $config,
        private readonly Control $control,
    ) {
    }

    // step: loop fork
    /**
     * A child process per connection. The parent closes its copy of the client's socket
     * (else the client never sees EOF) and reaps children as SIGCHLD wakes it.
     */
    public function runFork(): void
    {
        (new AcceptLoop($this->listeners, $this->config, $this->control))->acceptLoop($this);
        $this->stopChildren($this->control->stopDeadline());
    }

    /** The children still running, once the exited ones are reaped. */
    public function inHand(): int
    {
        $this->reapChildren();
        return count($this->pids);
    }

    /** Fork; the child serves the connection and exits, the parent closes its copy. */
    public function handOff(\Socket $sock, string $peer): void
    {
        // The signals are blocked across the fork, and the child unblocks them only once
        // its own handlers are set (serveInChild). Otherwise a SIGTERM landing between
        // fork() and that reset runs the parent's handler in the child, which then serves
        // on with no stop: with --grace 0 the parent signals its children at once, and with
        // --idle-timeout 0 it would then wait for that child forever. A signal that comes
        // while they are blocked stays pending in the kernel for the process it was sent to
        // (a child does not inherit its parent's pending ones).
        $oldMask = [];
        pcntl_sigprocmask(SIG_BLOCK, self::FORK_BLOCKED, $oldMask);
        // pcntl_fork() warns before it returns -1, and the warning is an exception by now
        // (Os::installErrorHandler): caught here, a failed fork (EAGAIN at a pids or process
        // limit, ENOMEM) is that connection's problem, as in C: one line, the connection
        // closed, the loop goes on.
        try {
            $pid = pcntl_fork();
        } catch (\ErrorException) {
            $pid = -1;
        }
        if ($pid === 0) {
            $this->serveInChild($sock, $peer, $oldMask);
        }
        $forkErrno = $pid === -1 ? pcntl_get_last_error() : 0;
        pcntl_sigprocmask(SIG_SETMASK, $oldMask);   // the parent: a pending SIGTERM is handled now
        if ($pid === -1) {
            Os::log("fork {$peer}: " . Errno::describeError($forkErrno));
        } else {
            $this->pids[$pid] = true;
        }
        socket_close($sock);
    }
    // end step

    /**
     * The child's whole life: serve one connection, then exit. It never returns into the
     * parent's loop, so it can never accept, reap or run the parent's stopping.
     *
     * exit() ends the child without running `finally` blocks of the callers; nothing here
     * registers shutdown functions or destructors that act, so PHP's shutdown only frees.
     *
     * The child starts with FORK_BLOCKED blocked (see handOff); $oldMask, the mask from before
     * the fork, is restored only once the parent's handlers are reset, so a SIGTERM the parent
     * sent meanwhile is acted on by the default action, never by the parent's handler.
     *
     * @param list<int> $oldMask
     */
    private function serveInChild(\Socket $sock, string $peer, array $oldMask): never
    {
        $status = Protocol::EXIT_OK;
        try {
            $this->control->forgetInChild();
            pcntl_sigprocmask(SIG_SETMASK, $oldMask);
            $this->listeners->closeListeners();
            $this->pids = [];   // the parent's children are not this process's to reap
            AcceptLoop::serveConnection(new Connection($sock, $peer, $this->config, Os::now()), null);
        } catch (\Throwable $e) {
            // A child must never unwind into the parent's code: one line, then exit.
            Os::log("child {$peer}: " . get_class($e) . ': ' . $e->getMessage());
            $status = Protocol::EXIT_FAILURE;
        }
        exit($status);
    }

    /** Collect every child that has exited, so none is left a zombie. */
    private function reapChildren(): void
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
    private function stopChildren(float $deadline): void
    {
        while ($this->pids !== []) {
            $this->reapChildren();
            $left = $deadline - Os::now();
            if ($this->pids === [] || $left <= 0) {
                break;
            }
            Select::wait([$this->control->wakeRead], [], $left);   // SIGCHLD writes to the wake pair
            $this->control->drainWake();
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
