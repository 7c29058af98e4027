<?php
// The datagram server (--transport udp): one socket_select over the wake pair and every bound
// socket; each datagram read is answered at once, in one datagram, to the address and port it
// came from (Python: server/datagram.py; C: cext/datagram.c).
//
// A datagram server has no accept, no connection and nothing to close per client: a datagram
// is read, answered and forgotten in one step. So the iterative and the event model are one
// loop here, which never blocks on a socket (each is non-blocking, and read only once select
// said it is readable) and serves every socket of the host; they differ only in how many
// datagrams a ready socket gives before the loop looks around again: iterative one (wait,
// recvfrom one, answer, wait), event up to BATCH. (socket_select is also the PHP event model's
// poller: PHP has no epoll.)
//
// What goes wrong with one datagram is that datagram's problem (docs/protocol.md, "Reading and
// answering"): ECONNREFUSED (an earlier answer's ICMP port unreachable), EAGAIN and EINTR
// silently, a truncated datagram and sendto's other failures with one line; the loop goes on.
// Only a recvfrom error that says the socket itself is broken ends the loop (exit 1).
declare(strict_types=1);

namespace AcceptLoop;

final class DatagramLoop
{
    /** Key of the wake pair in the read set; the sockets are keyed by their place in Listeners. */
    private const WAKE = 'wake';
    /** The event model reads at most this many datagrams from one socket per readiness report. */
    private const BATCH = 64;
    /** Errors that drop nothing worth a line: a port unreachable for an earlier answer, nothing now, a signal. */
    private const QUIET_ERRORS = [SOCKET_ECONNREFUSED, SOCKET_EAGAIN, SOCKET_EWOULDBLOCK, SOCKET_EINTR];
    /** recvfrom errors that concern one datagram: one line, and the next datagram. */
    private const DATAGRAM_ERRORS = [
        SOCKET_EMSGSIZE, SOCKET_ENOBUFS, SOCKET_ENOMEM, SOCKET_EHOSTUNREACH, SOCKET_ENETUNREACH, SOCKET_EPERM,
        SOCKET_EACCES, SOCKET_ENETDOWN, SOCKET_EHOSTDOWN, SOCKET_EADDRNOTAVAIL, SOCKET_EINVAL,
    ];

    private readonly DatagramService $service;

    public function __construct(
        private readonly Listeners $listeners,
        Config $config,
        private readonly Control $control,
    ) {
        $this->service = DatagramService::create($config);
    }

    /** The iterative model over UDP: wait, one datagram from each ready socket, answer, wait. */
    public function runIterative(): void
    {
        $this->serveDatagrams(1);
    }

    /** The event model over UDP: the same loop, draining each ready socket up to BATCH datagrams. */
    public function runEvent(): void
    {
        $this->serveDatagrams(self::BATCH);
    }

    /**
     * Until a stop: wait for readable sockets, answer up to $batch datagrams from each; then
     * close the sockets. Nothing is in progress between two datagrams, so a stop needs no grace.
     */
    private function serveDatagrams(int $batch): void
    {
        while (!$this->control->stopping) {
            foreach ($this->waitForDatagrams() as $sock) {
                for ($i = 0; $i < $batch && !$this->control->stopping; $i++) {
                    if (!$this->serveOne($sock)) {
                        break;
                    }
                }
            }
        }
        $this->listeners->closeListeners();
    }

    /**
     * Block until a socket has a datagram queued (or a signal woke us); return those sockets.
     * Select caps the wait (SIGNAL_LATENCY), so a signal PHP handles late is still seen soon.
     *
     * @return list<\Socket>
     */
    private function waitForDatagrams(): array
    {
        $read = [self::WAKE => $this->control->wakeRead] + $this->listeners->sockets();
        [$ready] = Select::wait($read, [], null);
        if (isset($ready[self::WAKE])) {
            $this->control->drainWake();   // a signal: its handler has run, `stopping` says what it did
        }
        unset($ready[self::WAKE]);
        return array_values($ready);
    }

    /** Read one datagram from $sock and answer it; false when there was none to read now. */
    private function serveOne(\Socket $sock): bool
    {
        $datagram = $this->receiveDatagram($sock);
        if (!is_array($datagram)) {
            return $datagram;
        }
        [$data, $address, $port] = $datagram;
        $answer = $this->service->answer($data);
        if ($answer !== null) {
            $this->sendDatagram($sock, $answer, $address, $port);
        }
        return true;
    }

    /**
     * The next datagram on $sock and its sender as [data, address, port]; false when none is
     * queued now; true when one was read and dropped (a failure, or too long for the buffer).
     *
     * PHP 8.2's socket_recvfrom cannot take MSG_TRUNC (it sets its string's length to what the
     * call returns, so a real length past the buffer would be written past its end): a datagram
     * that fills all DATAGRAM_RECV_BUFFER bytes is the sign of one longer than 65,536, truncated.
     * socket_recvfrom warns for every errno but EAGAIN; the warning is caught and errno says which.
     *
     * @return array{string, string, int}|bool
     * @throws \RuntimeException when the socket itself is broken: the loop's error
     */
    private function receiveDatagram(\Socket $sock): array|bool
    {
        $data = '';
        $address = '';
        $port = 0;
        // step: recvfrom
        try {
            $n = socket_recvfrom($sock, $data, Protocol::DATAGRAM_RECV_BUFFER, 0, $address, $port);
        } catch (\ErrorException) {
            $n = false;
        }
        if ($n === false) {
            return $this->recvfromFailed($sock, Errno::last($sock));
        }
        if ($n >= Protocol::DATAGRAM_RECV_BUFFER) {
            Os::log('recvfrom ' . Listeners::formatAddress($address, $port) . ': datagram of more than '
                . ($n - 1) . ' bytes truncated; dropped');
            return true;
        }
        // end step
        return [$data, $address, $port];
    }

    /**
     * What a failed recvfrom means: false for nothing queued now (or a signal first); true, the
     * next datagram, after ECONNREFUSED (an earlier answer met a port unreachable: no line) or
     * one of DATAGRAM_ERRORS (one line); otherwise the socket is broken.
     *
     * @throws \RuntimeException `recvfrom 127.0.0.1:7: Bad file descriptor (EBADF)`
     */
    private function recvfromFailed(\Socket $sock, int $errno): bool
    {
        if ($errno === SOCKET_EAGAIN || $errno === SOCKET_EWOULDBLOCK || $errno === SOCKET_EINTR) {
            return false;
        }
        if (in_array($errno, self::QUIET_ERRORS, true)) {
            return true;
        }
        $line = 'recvfrom ' . Listeners::formatAddress(...Listeners::localAddress($sock)) . ': '
            . Errno::describeError($errno);
        if (!in_array($errno, self::DATAGRAM_ERRORS, true)) {
            throw new \RuntimeException($line, $errno);
        }
        Os::log($line);
        return true;
    }

    /**
     * One answering datagram to the sender, whole or not at all (UDP has no partial send): a
     * failure drops it, with one line unless it is one of QUIET_ERRORS (a full socket buffer's
     * EAGAIN: UDP promises no delivery).
     */
    private function sendDatagram(\Socket $sock, string $answer, string $address, int $port): void
    {
        // step: sendto
        try {
            $sent = socket_sendto($sock, $answer, strlen($answer), 0, $address, $port);
        } catch (\ErrorException) {
            $sent = false;
        }
        if ($sent === false && !in_array($errno = Errno::last($sock), self::QUIET_ERRORS, true)) {
            Os::log('sendto ' . Listeners::formatAddress($address, $port) . ': ' . Errno::describeError($errno));
        }
        // end step
    }
}
