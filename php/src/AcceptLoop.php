<?php
// The skeleton the per-connection models (iterative, fork) share: wait for a queued
// connection, accept it, reject it over --max-conns, hand it off (the model's one hook,
// HandOff); and the loop that drives one connection to its end (Python: server/models.py).
//
// Every model stops the same way (see Control): stop accepting, close the listeners, give
// connections in progress `--grace` seconds, then return.
declare(strict_types=1);

namespace AcceptLoop;

final class AcceptLoop
{
    private readonly AcceptPause $pause;

    public function __construct(
        private readonly Listeners $listeners,
        private readonly Config $config,
        private readonly Control $control,
    ) {
        $this->pause = new AcceptPause();
    }

    /** Until a stop: wait → accept → reject over the limit → hand off; then close the listeners. */
    public function acceptLoop(HandOff $model): void
    {
        while (!$this->control->stopping) {
            $ready = $this->waitForClients();
            $model->inHand();
            foreach ($ready as $listener) {
                $client = $this->listeners->acceptClient($listener, $this->pause);
                if ($client !== null) {
                    [$sock, $peer] = $client;
                    if ($model->inHand() >= $this->config->maxConns) {
                        $this->listeners->reject($sock);
                    } else {
                        $model->handOff($sock, $peer);
                    }
                }
                if ($this->control->stopping) {
                    break;
                }
            }
        }
        $this->listeners->closeListeners();
    }

    /**
     * Block until a listener has a connection queued (or a signal woke us); return those listeners.
     *
     * @return list<\Socket>
     */
    private function waitForClients(): array
    {
        $read = ['wake' => $this->control->wakeRead];
        $now = Os::now();
        if ($this->pause->active($now)) {
            $timeout = $this->pause->until() - $now;
        } else {
            $timeout = null;
            $read += $this->listeners->sockets();
        }
        [$ready] = Select::wait($read, [], $timeout);
        if (isset($ready['wake'])) {
            $this->control->drainWake();
        }
        unset($ready['wake']);
        return array_values($ready);
    }

    /**
     * Drive one connection to its end: the loop of the iterative model and of a forked child.
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
}
