<?php
// The server's listening sockets and the network steps done on them: resolve, openListeners,
// announce, acceptClient, reject, closeListeners (Python: net.py; C: net.c). With
// --transport udp the same steps open bound datagram sockets instead (SOCK_DGRAM, no listen),
// which DatagramLoop serves.
// Each step is marked (`// step: NAME` ... `// end step`) so the report can show it beside
// the Python and C code that does the same thing.
declare(strict_types=1);

namespace AcceptLoop;

final class Listeners
{
    /** accept() errors that concern one connection only: try again later (accept(2), NOTES). */
    private const PER_CONNECTION_ERRORS = [
        SOCKET_ECONNABORTED, SOCKET_EPROTO, SOCKET_ECONNRESET, SOCKET_EINTR, SOCKET_EAGAIN, SOCKET_EWOULDBLOCK,
        SOCKET_EPERM, SOCKET_ENETDOWN, SOCKET_ENOPROTOOPT, SOCKET_EHOSTDOWN, SOCKET_ENONET,
        SOCKET_EHOSTUNREACH, SOCKET_EOPNOTSUPP, SOCKET_ENETUNREACH,
    ];
    /** accept() errors that mean the process is out of something: pause accepting, then retry. */
    private const RESOURCE_ERRORS = [SOCKET_EMFILE, SOCKET_ENFILE, SOCKET_ENOBUFS, SOCKET_ENOMEM];

    /**
     * What getaddrinfo(NULL, AI_PASSIVE) gives, in glibc's order. socket_addrinfo_lookup()
     * takes only a string, and "" is not NULL to getaddrinfo, so an empty --host asks for
     * these wildcard addresses by name.
     */
    private const WILDCARD_HOSTS = ['0.0.0.0', '::'];

    /**
     * The listening sockets, in the order the host resolved; empty once closed (socket_close()
     * on a closed socket is an Error, so they are closed once and forgotten).
     *
     * @var list<\Socket>
     */
    private array $sockets = [];

    /** SOCK_STREAM, or SOCK_DGRAM with --transport udp: what resolve asks for and socket opens. */
    private readonly int $socktype;

    public function __construct(private readonly Config $config)
    {
        $this->socktype = $config->transport === 'udp' ? SOCK_DGRAM : SOCK_STREAM;
    }

    /** @return list<\Socket> the listeners still open */
    public function sockets(): array
    {
        return $this->sockets;
    }

    /** Whether the listeners are open: they are until closeListeners(). */
    public function listening(): bool
    {
        return $this->sockets !== [];
    }

    // step: resolve
    /**
     * Every [family, protocol, address] getaddrinfo(AI_PASSIVE) gives for $host, without repeats.
     *
     * @return list<array{int, int, string}>
     * @throws SetupError("resolve", ...) when the name does not resolve
     */
    public function resolve(string $host, int $port): array
    {
        // No ai_family: the hints start zeroed, which is AF_UNSPEC (PHP has no constant for it).
        $hints = ['ai_socktype' => $this->socktype, 'ai_flags' => AI_PASSIVE];
        $seen = [];
        $out = [];
        foreach ($host === '' ? self::WILDCARD_HOSTS : [$host] as $name) {
            $infos = socket_addrinfo_lookup($name, (string) $port, $hints);
            if ($infos === false) {
                [$code, $reason] = GaiReason::explain($name, (string) $port, AI_PASSIVE, $this->socktype);
                throw new SetupError('resolve', self::formatAddress($host, $port), $code, $reason);
            }
            foreach ($infos as $info) {
                $explained = socket_addrinfo_explain($info);
                $family = $explained['ai_family'];
                $address = $explained['ai_addr']['sin6_addr'] ?? $explained['ai_addr']['sin_addr'];
                if (!isset($seen["{$family} {$address}"])) {
                    $seen["{$family} {$address}"] = true;
                    $out[] = [$family, $explained['ai_protocol'], $address];
                }
            }
        }
        return $out;
    }
    // end step

    /**
     * One listening, non-blocking socket for each address the configured host resolves to
     * (with --transport udp: one bound datagram socket, bindDatagram).
     *
     * With port 0, the first socket's port is reused for the rest. An IPv6 socket is
     * dual-stack unless --ipv6-only is given or an IPv4 address is also being listened on
     * (then the IPv4 socket takes IPv4). On any failure the sockets opened so far are
     * closed and SetupError names the step.
     *
     * @throws SetupError
     */
    public function openListeners(?int $port = null): void
    {
        $port ??= $this->config->port;   // another worker's: the port the first worker's listeners have
        $addresses = $this->resolve($this->config->host, $port);
        $v6Only = $this->config->ipv6Only || in_array(AF_INET, array_column($addresses, 0), true);
        try {
            foreach ($addresses as [$family, $protocol, $address]) {
                $sock = $this->socktype === SOCK_DGRAM
                    ? $this->bindDatagram($family, $protocol, $address, $port, $v6Only)
                    : $this->listenOn($family, $protocol, $address, $port, $v6Only);
                $this->sockets[] = $sock;
                if ($port === 0) {
                    [, $port] = self::localAddress($sock);
                }
            }
        } catch (\Throwable $e) {
            $this->closeListeners();
            throw $e;
        }
    }

    /**
     * One listener: socket, options, bind, listen. A step that fails closes the socket and
     * throws SetupError naming it.
     */
    private function listenOn(int $family, int $protocol, string $address, int $port, bool $v6Only): \Socket
    {
        $where = self::formatAddress($address, $port);
        // step: socket
        $sock = self::attempt(static fn () => socket_create($family, SOCK_STREAM, $protocol));
        if ($sock === false) {
            throw SetupError::fromSocket('socket', $where, null);
        }
        // end step
        // step: options
        // ext-sockets, unlike PHP streams, does not set SO_REUSEADDR: without it a restart
        // fails with EADDRINUSE while the last run's connections sit in TIME_WAIT.
        $reusePort = $this->config->workers > 1;   // every worker's listeners share the port (Workers)
        self::closedOnFailure($sock, 'setsockopt', $where, static fn () =>
            socket_set_option($sock, SOL_SOCKET, SO_REUSEADDR, 1)
            && (!$reusePort || socket_set_option($sock, SOL_SOCKET, SO_REUSEPORT, 1))
            && ($family !== AF_INET6 || socket_set_option($sock, IPPROTO_IPV6, IPV6_V6ONLY, (int) $v6Only))
            && socket_set_nonblock($sock));
        // end step
        // step: bind
        self::closedOnFailure($sock, 'bind', $where, static fn () => socket_bind($sock, $address, $port));
        // end step
        // step: listen
        $backlog = $this->config->backlog;
        self::closedOnFailure($sock, 'listen', $where, static fn () => socket_listen($sock, $backlog));
        // end step
        return $sock;
    }

    /**
     * One datagram socket (--transport udp): socket, options, bind, and no listen (a datagram
     * socket has no queue of connections). No SO_REUSEADDR either: nothing waits in TIME_WAIT,
     * and on a UDP socket it would let a second server bind the same port without a word.
     * A step that fails closes the socket and throws SetupError naming it.
     */
    private function bindDatagram(int $family, int $protocol, string $address, int $port, bool $v6Only): \Socket
    {
        $where = self::formatAddress($address, $port);
        // step: dgram socket
        $sock = self::attempt(static fn () => socket_create($family, SOCK_DGRAM, $protocol));
        if ($sock === false) {
            throw SetupError::fromSocket('socket', $where, null);
        }
        self::closedOnFailure($sock, 'setsockopt', $where, static fn () =>
            ($family !== AF_INET6 || socket_set_option($sock, IPPROTO_IPV6, IPV6_V6ONLY, (int) $v6Only))
            && socket_set_nonblock($sock));
        // end step
        // step: dgram bind
        self::closedOnFailure($sock, 'bind', $where, static fn () => socket_bind($sock, $address, $port));
        // end step
        return $sock;
    }

    /**
     * One setup step on $sock, already open: $call (a socket call, run through attempt())
     * failing closes $sock and throws SetupError naming $step, its errno read first. The
     * listener's and the datagram socket's steps share it (Python: closed_on_failure; C: goto fail).
     *
     * @throws SetupError
     */
    private static function closedOnFailure(\Socket $sock, string $step, string $where, \Closure $call): void
    {
        if (self::attempt($call) === false) {
            $error = SetupError::fromSocket($step, $where, $sock);
            socket_close($sock);
            throw $error;
        }
    }

    /**
     * Run one socket call; a warning it raises becomes `false`, as its own result does.
     *
     * The error handler has turned the warning into an \ErrorException; the caller reads
     * errno (socket_last_error) and says what failed, so nothing is lost.
     */
    private static function attempt(\Closure $call): mixed
    {
        try {
            return $call();
        } catch (\ErrorException) {
            return false;
        }
    }

    /** `LISTENING <address> <port>` for each listener, then `READY`, on stdout, flushed. */
    public function announce(): void
    {
        $text = '';
        foreach ($this->sockets as $sock) {
            [$address, $port] = self::localAddress($sock);
            $text .= sprintf(Protocol::ANNOUNCE_LISTENING, $address, $port) . "\n";
        }
        Os::writeAll(STDOUT, $text . Protocol::ANNOUNCE_READY . "\n");
    }

    // step: accept
    /**
     * The next queued connection as a non-blocking socket with TCP_NODELAY, and its peer.
     *
     * Null when there is none to take now: the queue is empty, the connection failed on its
     * own (ECONNABORTED and the like), or descriptors ran out (then $pause says when to try
     * again). socket_accept() warns for every errno but EAGAIN; the warning is caught here.
     * Every model waits on its connections with socket_select, so a connection whose descriptor
     * it cannot watch (see Select) is closed, and accepting pauses as for EMFILE.
     *
     * @return array{\Socket, string}|null
     */
    public function acceptClient(\Socket $listener, AcceptPause $pause): ?array
    {
        $sock = self::attempt(static fn () => socket_accept($listener));
        if ($sock === false) {
            $errno = Errno::last();   // socket_accept records errno globally, not on $listener
            if (in_array($errno, self::PER_CONNECTION_ERRORS, true)) {
                return null;
            }
            if ($pause->extend(Os::now()) || !in_array($errno, self::RESOURCE_ERRORS, true)) {
                $this->logPause($listener, Errno::describeError($errno));
            }
            return null;
        }
        if (!Select::canWatch($sock)) {
            // Out of descriptors socket_select can watch: the connection is out of the kernel's
            // queue already and cannot be served, so it is closed; the pause doubles as for EMFILE.
            $this->reject($sock);
            if ($pause->extend(Os::now())) {
                $this->logPause($listener, "descriptor beyond socket_select's FD_SETSIZE; connection closed");
            }
            return null;
        }
        $pause->clear();
        // A peer already gone makes these fail; the first recv will say so, with its errno.
        self::attempt(static fn () => socket_set_nonblock($sock) && socket_set_option($sock, SOL_TCP, TCP_NODELAY, 1));
        return [$sock, self::peerName($sock)];
    }
    // end step

    /** `accept 127.0.0.1:7: WHY; accepting paused`: the one line a pause gets. */
    private function logPause(\Socket $listener, string $why): void
    {
        [$address, $port] = self::localAddress($listener);
        Os::log('accept ' . self::formatAddress($address, $port) . ": {$why}; accepting paused");
    }

    /**
     * `127.0.0.1:5555`. socket_accept() does not hand back the address accept() returned, so
     * it is asked of getpeername(), which fails (ENOTCONN) once the peer has reset.
     */
    private static function peerName(\Socket $sock): string
    {
        $address = '';
        $port = 0;
        if (self::attempt(static function () use ($sock, &$address, &$port): bool {
            return socket_getpeername($sock, $address, $port);
        }) === false) {
            Errno::last($sock);
            return 'unknown peer';
        }
        return self::formatAddress($address, $port);
    }

    /** Over --max-conns: close the connection at once rather than leave it queued. */
    public function reject(\Socket $sock): void
    {
        socket_close($sock);
    }

    /** Stop accepting: from now on a connect is refused. Closing again does nothing. */
    public function closeListeners(): void
    {
        foreach ($this->sockets as $sock) {
            socket_close($sock);
        }
        $this->sockets = [];
    }

    /** The port the listeners have (the kernel's choice for --port 0), once open. */
    public function port(): int
    {
        return self::localAddress($this->sockets[0])[1];
    }

    /** @return array{string, int} where $sock listens: address and port */
    public static function localAddress(\Socket $sock): array
    {
        $address = '';
        $port = 0;
        socket_getsockname($sock, $address, $port);
        return [$address, $port];
    }

    /** `127.0.0.1:7` or `[::1]:7`. */
    public static function formatAddress(string $host, int $port): string
    {
        return str_contains($host, ':') ? "[{$host}]:{$port}" : "{$host}:{$port}";
    }
}
