<?php
// The datagram server (--transport udp): one socket_select over the wake pair and every bound
// socket; each datagram read is answered at once, to the address and port it came from
// (Python: server/loop_datagram.py).
//
// There is no connection to serve to its end, to hand to a child or to keep state for: a
// datagram is read, answered and forgotten in one step. So the iterative and the event model
// are one loop here (runIterative and runEvent both run it): it never blocks on a socket (they
// are non-blocking, and it reads a socket only when select said it is readable), serves every
// socket of the host, and reads at most DATAGRAM_BATCH datagrams from one socket before the
// others and the stop flag get their turn.
//
// A failed recvfrom or sendto (ECONNREFUSED from an ICMP port unreachable, EMSGSIZE, ENOBUFS,
// EAGAIN, EINTR) is that datagram's problem: one line (none for EAGAIN and EINTR: nothing was
// lost to them on a read), the datagram or its answer dropped, and the loop goes on.
declare(strict_types=1);

namespace AcceptLoop;

final class DatagramLoop
{
    /** Key of the wake pair in the read set; the sockets are keyed by their place in Listeners. */
    private const WAKE = 'wake';
    /**
     * What recvfrom is asked for: one byte more than READ_SIZE, the longest datagram the server
     * answers, so a datagram that fills the whole buffer was longer and is known to be truncated.
     */
    private const RECV_SIZE = Protocol::READ_SIZE + 1;
    /** Datagrams read from one socket per readiness report before the loop looks around again. */
    private const DATAGRAM_BATCH = Protocol::ACCEPT_BATCH;
    /** recvfrom errors that lose nothing: nothing is queued now, or a signal came first. */
    private const NOTHING_LOST = [SOCKET_EAGAIN, SOCKET_EWOULDBLOCK, SOCKET_EINTR];

    private readonly DatagramService $service;

    public function __construct(
        private readonly Listeners $listeners,
        Config $config,
        private readonly Control $control,
    ) {
        $this->service = DatagramService::create($config);
    }

    /** The iterative model over UDP: the one datagram loop (see above). */
    public function runIterative(): void
    {
        $this->serveDatagrams();
    }

    /** The event model over UDP: the one datagram loop (see above). */
    public function runEvent(): void
    {
        $this->serveDatagrams();
    }

    /**
     * Until a stop: wait for a readable socket, answer what it holds; then close the sockets.
     * Nothing is in progress between two datagrams, so a stop needs no grace.
     */
    private function serveDatagrams(): void
    {
        while (!$this->control->stopping) {
            foreach ($this->waitForDatagrams() as $sock) {
                $this->serveBatch($sock);
                if ($this->control->stopping) {
                    break;
                }
            }
        }
        $this->listeners->closeListeners();
    }

    /**
     * Block until a socket has a datagram queued (or a signal woke us); return those sockets.
     *
     * @return list<\Socket>
     */
    private function waitForDatagrams(): array
    {
        $read = [self::WAKE => $this->control->wakeRead] + $this->listeners->sockets();
        [$ready] = Select::wait($read, [], null);
        if (isset($ready[self::WAKE])) {
            $this->control->drainWake();
        }
        unset($ready[self::WAKE]);
        return array_values($ready);
    }

    /** Answer up to DATAGRAM_BATCH datagrams queued on $sock, until none is left or one failed. */
    private function serveBatch(\Socket $sock): void
    {
        for ($i = 0; $i < self::DATAGRAM_BATCH; $i++) {
            $datagram = $this->receiveDatagram($sock);
            if ($datagram === null) {
                return;     // still readable after a failure: the next select says so
            }
            [$data, $address, $port] = $datagram;
            $answer = $this->service->answer($data);
            if ($answer !== null) {
                $this->sendDatagram($sock, $answer, $address, $port);
            }
        }
    }

    /**
     * The next datagram queued on $sock and who sent it; null when none is queued, the read
     * failed, or the datagram was longer than the buffer (dropped whole, never answered in part).
     *
     * @return array{string, string, int}|null [data, address, port]
     */
    private function receiveDatagram(\Socket $sock): ?array
    {
        $data = '';
        $address = '';
        $port = 0;
        try {
            $n = socket_recvfrom($sock, $data, self::RECV_SIZE, 0, $address, $port);
        } catch (\ErrorException) {
            $n = false;     // socket_recvfrom warns for every errno but EAGAIN; errno says which
        }
        if ($n === false) {
            $errno = Errno::last($sock);
            if (!in_array($errno, self::NOTHING_LOST, true)) {
                [$local, $localPort] = Listeners::localAddress($sock);
                $this->logDropped('recvfrom ' . Listeners::formatAddress($local, $localPort), Errno::describeError($errno));
            }
            return null;
        }
        if ($n >= self::RECV_SIZE) {
            $this->logDropped('recvfrom ' . Listeners::formatAddress($address, $port),
                sprintf('datagram longer than %d bytes, truncated', Protocol::READ_SIZE));
            return null;
        }
        return [$data, $address, $port];
    }

    /** Send $answer to $address:$port in one datagram; a failure drops it, with one line. */
    private function sendDatagram(\Socket $sock, string $answer, string $address, int $port): void
    {
        try {
            $sent = socket_sendto($sock, $answer, strlen($answer), 0, $address, $port);
        } catch (\ErrorException) {
            $sent = false;
        }
        if ($sent === false) {
            $errno = Errno::last($sock);
            $this->logDropped('sendto ' . Listeners::formatAddress($address, $port), Errno::describeError($errno));
        }
    }

    /** `sendto 127.0.0.1:5555: Message too long (EMSGSIZE)`: one line for a datagram lost. */
    private function logDropped(string $where, string $why): void
    {
        Os::log("{$where}: {$why}");
    }
}
