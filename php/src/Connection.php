<?php
// One client connection as a state machine that never blocks (Python: connection.Connection).
//
// Every model drives connections the same way: it waits until the socket is ready for
// what wantsRead()/wantsWrite() ask, or until deadline(), then calls onReadable,
// onWritable or onTimer. A connection goes through four phases (Phase):
//
//   SERVING   the service reads and writes;
//   FLUSHING  the service is done; unsent output is still going out;
//   LINGERING the server's FIN is sent (shutdown SHUT_WR); unread input is read and
//             dropped until the client's FIN or the linger time, so that the close does
//             not turn into a reset that destroys the reply (RFC 1122 4.2.2.13);
//   CLOSED    the socket is closed.
//
// Output is bounded: once HIGH_WATER bytes wait to be sent the connection stops reading
// until they drain below LOW_WATER (echo), and chargen only generates while less than
// LOW_WATER is waiting.
declare(strict_types=1);

namespace AcceptLoop;

final class Connection
{
    /** shutdown(2)'s SHUT_WR, which socket_shutdown() takes as the number 1 (PHP has no constant). */
    private const SHUT_WR = 1;

    /** The key the event loop files this connection under: Socket objects are not descriptors. */
    public readonly int $id;
    public Phase $phase = Phase::SERVING;
    /** The grace deadline once the server is stopping; 0: none. */
    public float $stopBy = 0.0;
    private string $out = '';
    private bool $inputOpen = true;          // the client has not sent its FIN
    private bool $readingPaused = false;     // backpressure: too much output waiting
    private readonly float $idleTimeout;
    private float $lastActive;
    private float $lingerUntil = 0.0;
    private readonly Service $service;

    public function __construct(
        private readonly \Socket $sock,
        public readonly string $peer,
        Config $config,
        float $now,
    ) {
        $this->id = spl_object_id($sock);
        $this->idleTimeout = $config->idleTimeout;
        $this->lastActive = $now;
        $this->service = Service::create($this, $config);
        $this->service->onOpen($now);
        $this->settle($now);
    }

    public function socket(): \Socket
    {
        return $this->sock;
    }

    public function closed(): bool
    {
        return $this->phase === Phase::CLOSED;
    }

    public function wantsRead(): bool
    {
        return $this->inputOpen && !$this->readingPaused && $this->phase !== Phase::CLOSED;
    }

    public function wantsWrite(): bool
    {
        if ($this->phase === Phase::SERVING) {
            return $this->out !== '' || $this->service->produces();
        }
        return $this->phase === Phase::FLUSHING;
    }

    /** When onTimer must run next; 0 when nothing is due. */
    public function deadline(): float
    {
        $due = array_filter([$this->stopBy, $this->lingerUntil]);
        if ($this->idleTimeout > 0) {
            $due[] = $this->lastActive + $this->idleTimeout;
        }
        return $due === [] ? 0.0 : min($due);
    }

    /**
     * A service's output: sent now (write-through), and only what a short write leaves is kept,
     * to go out, in order, when the socket is writable. Behind output that already waits, it
     * waits too.
     */
    public function emit(string $bytes, float $now): void
    {
        if ($this->phase === Phase::CLOSED) {
            return;
        }
        if ($this->out !== '') {
            $this->out .= $bytes;
            return;
        }
        $sent = $this->send($bytes, $now);
        if ($sent !== null && $sent < strlen($bytes)) {
            $this->out = substr($bytes, $sent);
        }
    }

    /**
     * A producer's offer (chargen): sent now, as much as the socket takes, and nothing kept;
     * the producer learns how many bytes went and goes on from there next time.
     */
    public function offer(string $bytes, float $now): int
    {
        if ($this->phase === Phase::CLOSED) {
            return 0;
        }
        return $this->send($bytes, $now) ?? 0;
    }

    // step: read/write
    /** Read what the client sent; hand it to the service, or drop it once the service is done. */
    public function onReadable(float $now): void
    {
        if ($this->phase === Phase::CLOSED || !$this->inputOpen) {
            return;
        }
        $data = null;
        try {
            $n = socket_recv($this->sock, $data, Protocol::READ_SIZE, 0);
        } catch (\ErrorException) {
            $n = false;     // socket_recv warns for every errno but EAGAIN; errno says which
        }
        if ($n === false) {
            $errno = Errno::last($this->sock);
            if ($errno !== SOCKET_EAGAIN && $errno !== SOCKET_EINTR) {
                $this->fail(new ConnectionError('recv', $this->peer, $errno));
            }
            return;
        }
        $this->lastActive = $now;
        if ($n === 0) {
            $this->inputOpen = false;
            if ($this->phase === Phase::SERVING) {
                $this->service->onEof($now);
            } elseif ($this->phase === Phase::LINGERING) {
                $this->close();
            }
        } elseif ($this->phase === Phase::SERVING) {
            $this->service->onData($data, $now);   // what it emits is sent at once
            if ($this->phase === Phase::CLOSED) {
                return;
            }
        }
        $this->settle($now);
    }

    /**
     * Send as much waiting output as the socket takes (a short write keeps the rest); with
     * none waiting, a producing service offers more.
     */
    public function onWritable(float $now): void
    {
        if ($this->phase === Phase::CLOSED) {
            return;
        }
        if ($this->out !== '') {
            $sent = $this->send($this->out, $now);
            if ($sent !== null) {
                $this->out = substr($this->out, $sent);
            }
        } elseif ($this->phase === Phase::SERVING) {
            $this->service->refill($now);
        }
        if ($this->phase === Phase::CLOSED) {
            return;
        }
        $this->settle($now);
    }

    /**
     * One send: how many bytes the socket took (0 when it takes none now), or null when the
     * send failed and the connection is closed.
     */
    private function send(string $bytes, float $now): ?int
    {
        // MSG_NOSIGNAL: a reset peer gives EPIPE/ECONNRESET, never SIGPIPE. (PHP CLI ignores
        // SIGPIPE as well, and forked children inherit that; this does not rely on it.)
        try {
            $sent = socket_send($this->sock, $bytes, strlen($bytes), MSG_NOSIGNAL);
        } catch (\ErrorException) {
            $sent = false;
        }
        if ($sent === false) {
            $errno = Errno::last($this->sock);
            if ($errno !== SOCKET_EAGAIN && $errno !== SOCKET_EINTR) {
                $this->fail(new ConnectionError('send', $this->peer, $errno));
                return null;
            }
            return 0;
        }
        $this->lastActive = $now;
        return $sent;
    }
    // end step

    /** Close the connection if its idle, linger or grace time is up. */
    public function onTimer(float $now): void
    {
        if ($this->phase === Phase::CLOSED) {
            return;
        }
        if ($this->stopBy > 0 && $now >= $this->stopBy) {
            $this->close();
        } elseif ($this->lingerUntil > 0 && $now >= $this->lingerUntil) {
            $this->close();
        } elseif ($this->idleTimeout > 0 && $now - $this->lastActive >= $this->idleTimeout) {
            // %g as Python's {:g}; they differ only in the exponent form, below 0.0001 s.
            Os::log(sprintf('%s %s: idle for %g s; closed', $this->service->name(), $this->peer, $this->idleTimeout));
            $this->close();
        }
    }

    /** The service has nothing more to say: flush, then shut down. */
    public function finish(): void
    {
        if ($this->phase === Phase::SERVING) {
            $this->phase = Phase::FLUSHING;
        }
    }

    /** After any event: apply backpressure, and move on once output is flushed. */
    private function settle(float $now): void
    {
        $pending = strlen($this->out);
        if ($pending >= Protocol::HIGH_WATER) {
            $this->readingPaused = true;
        } elseif ($pending < Protocol::LOW_WATER) {
            $this->readingPaused = false;
        }
        if ($this->phase === Phase::FLUSHING && $pending === 0) {
            $this->shutdown($now);
        }
    }

    // step: shutdown and close
    /** Send our FIN; drain the client's input until its FIN (or the linger time), then close. */
    private function shutdown(float $now): void
    {
        try {
            $ok = socket_shutdown($this->sock, self::SHUT_WR);
        } catch (\ErrorException) {
            $ok = false;
        }
        if (!$ok) {
            Errno::last($this->sock);
            $this->close();   // the peer is gone already: nothing left to tell it
            return;
        }
        if (!$this->inputOpen) {
            $this->close();
            return;
        }
        $this->phase = Phase::LINGERING;
        $this->lingerUntil = $now + Protocol::LINGER_SECONDS;
    }

    public function close(): void
    {
        if ($this->phase !== Phase::CLOSED) {
            $this->phase = Phase::CLOSED;
            $this->out = '';
            socket_close($this->sock);
        }
    }
    // end step

    /** This connection's failure is this connection's problem: log one line and close it. */
    public function fail(ConnectionError $error): void
    {
        Os::log($error->getMessage());
        $this->close();
    }
}
