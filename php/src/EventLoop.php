<?php
// The event model: one process, one socket_select over the wake pair, the listeners and
// every connection (Python: models.run_event with a selector; C: epoll).
//
// socket_select has no registrations to keep up to date: each turn builds its read and
// write sets from what every connection wantsRead()/wantsWrite(), so a closed connection
// only has to be forgotten. Its limits (FD_SETSIZE) are described in Select.
declare(strict_types=1);

namespace AcceptLoop;

final class EventLoop
{
    /** Key of the wake pair in the read set; listeners are `l0`, `l1` ...; connections their int id. */
    private const WAKE = 'wake';

    /** @var array<int, Connection> by Connection::$id */
    private array $conns = [];
    private readonly AcceptPause $pause;
    private float $nextTick = 0.0;

    public function __construct(
        private readonly Listeners $listeners,
        private readonly Config $config,
        private readonly Control $control,
        /** --workers: the count every worker shares against --max-conns; null: this loop's own. */
        private readonly ?SharedSlots $slots = null,
    ) {
        $this->pause = new AcceptPause();
    }

    /** One process and one socket_select for every listener and connection. */
    public function runEvent(): void
    {
        // step: loop event
        while (true) {
            if ($this->control->stopping) {
                $this->beginStop();
                if ($this->conns === []) {
                    break;
                }
            }
            $now = Os::now();
            $read = [self::WAKE => $this->control->wakeRead];
            $write = [];
            $accepting = $this->setAccepting($read, $now);
            foreach ($this->conns as $id => $conn) {
                $this->update($id, $conn, $read, $write);
            }
            $timeout = $this->conns !== [] ? Protocol::TIMER_TICK : null;
            if ($this->listeners->listening() && !$accepting) {
                $timeout = min($timeout ?? Protocol::ACCEPT_BACKOFF_MAX, max(0.0, $this->pause->until() - $now));
            }
            [$readable, $writable] = Select::wait($read, $write, $timeout);
            $this->handle($readable, $writable, Os::now());
            $this->sweepTimers(Os::now());
        }
        // end step
    }

    /** Stop accepting: close the listeners (once) and give every connection the grace deadline. */
    private function beginStop(): void
    {
        if (!$this->listeners->listening()) {
            return;
        }
        $this->listeners->closeListeners();
        $deadline = $this->control->stopDeadline();
        foreach ($this->conns as $conn) {
            $conn->stopBy = $deadline;
        }
    }

    /**
     * The listeners in the read set, unless they are closed or the accept pause lasts;
     * whether they are in.
     *
     * @param array<int|string, \Socket> $read
     */
    private function setAccepting(array &$read, float $now): bool
    {
        if (!$this->listeners->listening() || $this->pause->active($now)) {
            return false;
        }
        foreach ($this->listeners->sockets() as $i => $listener) {
            $read["l{$i}"] = $listener;
        }
        return true;
    }

    /**
     * The sets follow what $conn wants: socket_select has no registrations, so each turn
     * puts every connection in again.
     *
     * @param array<int|string, \Socket> $read
     * @param array<int, \Socket> $write
     */
    private function update(int $id, Connection $conn, array &$read, array &$write): void
    {
        $wantsWrite = $conn->wantsWrite();
        if ($conn->wantsRead() || !$wantsWrite) {
            $read[$id] = $conn->socket();    // also how select reports an error or hang-up
        }
        if ($wantsWrite) {
            $write[$id] = $conn->socket();
        }
    }

    /**
     * One readiness report: the wake pair drained, the ready listeners accepted from, then
     * each ready connection's events.
     *
     * @param array<int|string, \Socket> $readable
     * @param array<int|string, \Socket> $writable
     */
    private function handle(array $readable, array $writable, float $now): void
    {
        foreach ($readable as $key => $sock) {
            if ($key === self::WAKE) {
                $this->control->drainWake();
            } elseif (is_string($key)) {
                $this->acceptBatch($sock, $now);
            }
        }
        foreach (array_keys($readable + $writable) as $key) {
            $conn = is_int($key) ? ($this->conns[$key] ?? null) : null;
            if ($conn === null) {
                continue;
            }
            if (isset($readable[$key])) {
                $conn->onReadable($now);
            }
            if (isset($writable[$key])) {
                $conn->onWritable($now);
            }
            $this->forgetIfClosed($conn);
        }
    }

    /** Every connection's timers, once a TIMER_TICK. */
    private function sweepTimers(float $now): void
    {
        if ($now < $this->nextTick) {
            return;
        }
        $this->nextTick = $now + Protocol::TIMER_TICK;
        foreach ($this->conns as $conn) {
            $conn->onTimer($now);
            $this->forgetIfClosed($conn);
        }
    }

    /** Up to ACCEPT_BATCH connections per readiness report; over --max-conns, accept and close. */
    private function acceptBatch(\Socket $listener, float $now): void
    {
        for ($i = 0; $i < Protocol::ACCEPT_BATCH; $i++) {
            $client = $this->listeners->acceptClient($listener, $this->pause);
            if ($client === null) {
                return;
            }
            [$sock, $peer] = $client;
            $full = $this->slots !== null ? !$this->slots->take() : count($this->conns) >= $this->config->maxConns;
            if ($full) {
                $this->listeners->reject($sock);
                continue;
            }
            $conn = new Connection($sock, $peer, $this->config, $now);
            $this->conns[$conn->id] = $conn;
            $this->forgetIfClosed($conn);
        }
    }

    private function forgetIfClosed(Connection $conn): void
    {
        if ($conn->closed()) {
            unset($this->conns[$conn->id]);
            $this->slots?->give();
        }
    }
}
