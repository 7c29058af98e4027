<?php
// The three concurrency models of the PHP server, and the per-connection loop they share
// (Python: server/models.py; PHP has no threads, so no runThreads).
//
//   runIterative  one client at a time: accept, serve it to the end, accept again
//   runFork       a process per connection; the parent closes its copy and reaps
//   runEvent      one process: every listener and connection in one socket_select
//
// All stop the same way (see Control): stop accepting, close the listeners, give
// connections in progress `--grace` seconds, then return.
declare(strict_types=1);

namespace AcceptLoop;

final class Models
{
    /** The models this port offers, by contract name => method. */
    public const OFFERED = ['iterative' => 'runIterative', 'fork' => 'runFork', 'event' => 'runEvent'];

    /**
     * Block until a listener has a connection queued (or a signal woke us); return those listeners.
     *
     * @return list<\Socket>
     */
    private static function waitForClients(Listeners $listeners, Control $control, AcceptPause $pause): array
    {
        $read = ['wake' => $control->wakeRead];
        $now = Os::now();
        if ($pause->active($now)) {
            $timeout = $pause->until() - $now;
        } else {
            $timeout = null;
            $read += $listeners->sockets();
        }
        [$ready] = Select::wait($read, [], $timeout);
        if (isset($ready['wake'])) {
            $control->drainWake();
        }
        unset($ready['wake']);
        return array_values($ready);
    }

    /**
     * Drive one connection to its end: the loop of the iterative and fork models.
     *
     * $control is null in a forked child, which the parent stops with SIGTERM.
     * $onStop runs once when a stop is seen (iterative: close the listeners at once, so new
     * clients are refused while this one finishes).
     */
    public static function serveConnection(Connection $conn, ?Control $control, ?\Closure $onStop = null): void
    {
        while (!$conn->closed()) {
            $read = [];
            if ($control !== null) {
                if ($control->stopping) {
                    if ($onStop !== null) {
                        $onStop();
                        $onStop = null;
                    }
                    // The stop pair stays readable once written: watching it now would spin.
                    $conn->stopBy = $conn->stopBy ?: $control->stopDeadline();
                } else {
                    $read['stop'] = $control->stopRead;
                }
            }
            $wantsWrite = $conn->wantsWrite();
            if ($conn->wantsRead() || !$wantsWrite) {
                // Reading is also how select reports an error or a hang-up (poll's POLLERR/POLLHUP).
                $read['conn'] = $conn->socket();
            }
            $write = $wantsWrite ? ['conn' => $conn->socket()] : [];
            $due = $conn->deadline();
            [$readable, $writable] = Select::wait($read, $write, $due > 0 ? $due - Os::now() : null);
            $now = Os::now();
            if (isset($readable['conn'])) {
                $conn->onReadable($now);
            }
            if (isset($writable['conn']) && $conn->wantsWrite()) {
                $conn->onWritable($now);
            }
            $conn->onTimer($now);
        }
    }

    // step: loop iterative
    /** The tutorials' loop, made correct: one client at a time, served to its end. */
    public static function runIterative(Listeners $listeners, Config $config, Control $control): void
    {
        $pause = new AcceptPause();
        $closeListeners = $listeners->closeListeners(...);
        while (!$control->stopping) {
            foreach (self::waitForClients($listeners, $control, $pause) as $listener) {
                $client = $listeners->acceptClient($listener, $pause);
                if ($client !== null) {
                    [$sock, $peer] = $client;
                    self::serveConnection(new Connection($sock, $peer, $config, Os::now()), $control, $closeListeners);
                }
                if ($control->stopping) {
                    break;
                }
            }
        }
        $listeners->closeListeners();
    }
    // end step

    // step: loop fork
    /**
     * A child process per connection. The parent closes its copy of the client's socket
     * (else the client never sees EOF) and reaps children as SIGCHLD wakes it.
     */
    public static function runFork(Listeners $listeners, Config $config, Control $control): void
    {
        $pause = new AcceptPause();
        $children = new Children();
        while (!$control->stopping) {
            $ready = self::waitForClients($listeners, $control, $pause);
            $children->reap();
            foreach ($ready as $listener) {
                $client = $listeners->acceptClient($listener, $pause);
                if ($client === null) {
                    continue;
                }
                [$sock, $peer] = $client;
                if ($children->count() >= $config->maxConns) {
                    $listeners->reject($sock);
                    continue;
                }
                // The signals are blocked across the fork, and the child unblocks them only once
                // its own handlers are set (Children::serveInChild). Otherwise a SIGTERM landing
                // between fork() and that reset runs the parent's handler in the child, which
                // then serves on with no stop: with --grace 0 the parent signals its children at
                // once, and with --idle-timeout 0 it would then wait for that child forever. A
                // signal that comes while they are blocked stays pending in the kernel for the
                // process it was sent to (a child does not inherit its parent's pending ones).
                $oldMask = [];
                pcntl_sigprocmask(SIG_BLOCK, Children::FORK_BLOCKED, $oldMask);
                // pcntl_fork() warns before it returns -1, and the warning is an exception by now
                // (Os::installErrorHandler): caught here, a failed fork (EAGAIN at a pids or
                // process limit, ENOMEM) is that connection's problem, as in C: one line, the
                // connection closed, the loop goes on.
                try {
                    $pid = pcntl_fork();
                } catch (\ErrorException) {
                    $pid = -1;
                }
                if ($pid === 0) {
                    $children->serveInChild($sock, $peer, $listeners, $config, $control, $oldMask);
                }
                $forkErrno = $pid === -1 ? pcntl_get_last_error() : 0;
                pcntl_sigprocmask(SIG_SETMASK, $oldMask);   // the parent: a pending SIGTERM is handled now
                if ($pid === -1) {
                    Os::log("fork {$peer}: " . Errno::describeError($forkErrno));
                    socket_close($sock);
                    continue;
                }
                $children->add($pid);
                socket_close($sock);
            }
        }
        $listeners->closeListeners();
        $children->stop($control, $control->stopDeadline());
    }
    // end step

    /**
     * One process and one socket_select for every listener and connection; the loop
     * (`loop event`) is EventLoop::run, a class because it keeps state between readiness reports.
     */
    public static function runEvent(Listeners $listeners, Config $config, Control $control): void
    {
        (new EventLoop($listeners, $config, $control))->run();
    }
}
