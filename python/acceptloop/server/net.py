"""The network steps of the Python server: resolve, open_listeners, announce, accept_client, reject.

Each step is marked (`# step: NAME` ... `# end step`) so the report can show it
beside the C and PHP code that does the same thing.
"""
from __future__ import annotations

import errno
import os
import socket
import time
from collections.abc import Callable

from acceptloop import _protocol as P
from acceptloop.contract import ServerConfig
from acceptloop.errors import SetupError, describe_error, format_address, log

# accept() errors that concern one connection only: retry at once (accept(2), NOTES).
PER_CONNECTION_ERRORS = frozenset({
    errno.ECONNABORTED, errno.EPROTO, errno.ECONNRESET, errno.EINTR, errno.EAGAIN, errno.EWOULDBLOCK,
    errno.EPERM, errno.ENETDOWN, errno.ENOPROTOOPT, errno.EHOSTDOWN, errno.ENONET,
    errno.EHOSTUNREACH, errno.EOPNOTSUPP, errno.ENETUNREACH,
})
# accept() errors that mean the process is out of something: pause accepting, then retry.
RESOURCE_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


# step: resolve
def resolve(host: str, port: int, socktype: int = socket.SOCK_STREAM) -> list[tuple[int, int, int, tuple]]:
    """Return every (family, type, proto, sockaddr) getaddrinfo(AI_PASSIVE) gives for host, without repeats.

    Raises SetupError("resolve", ...) when the name does not resolve. The name goes to getaddrinfo
    as the bytes the command line gave, as C and PHP pass it: a str would first be encoded with
    Python's IDNA codec, which fails on its own (UnicodeError) for `a..b` or a label over 63 bytes.
    """
    try:
        infos = socket.getaddrinfo(os.fsencode(host) if host else None, port, socket.AF_UNSPEC,
                                   socktype, 0, socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise SetupError("resolve", format_address(host, port), e) from None
    seen: set[tuple] = set()
    out = []
    for family, type_, proto, _canonname, sockaddr in infos:
        if (family, sockaddr) not in seen:
            seen.add((family, sockaddr))
            out.append((family, type_, proto, sockaddr))
    return out
# end step


# What one socket on one resolved address takes: its family, type, protocol and address (its port
# already the one every socket shares), whether an IPv6 one is IPv6-only, and the configuration.
OpenOne = Callable[[int, int, int, tuple, bool, ServerConfig], socket.socket]


def open_each(config: ServerConfig, socktype: int, open_one: OpenOne) -> list[socket.socket]:
    """What open_listeners and open_datagram_sockets share: resolve `config.host` for `socktype`, then
    `open_one` on every address. With port 0, the first socket's port is reused for the rest. An IPv6
    socket is dual-stack unless --ipv6-only is given or an IPv4 address is also among them (then the
    IPv4 socket takes IPv4). On any failure, the sockets opened so far are closed and SetupError
    names the step."""
    addresses = resolve(config.host, config.port, socktype)
    v6only = config.ipv6_only or any(family == socket.AF_INET for family, *_ in addresses)
    socks: list[socket.socket] = []
    port = config.port
    try:
        for family, type_, proto, sockaddr in addresses:
            socks.append(open_one(family, type_, proto, (sockaddr[0], port, *sockaddr[2:]), v6only, config))
            if port == 0:
                port = socks[-1].getsockname()[1]
    except BaseException:
        for sock in socks:
            sock.close()
        raise
    return socks


def open_listeners(config: ServerConfig) -> list[socket.socket]:
    """Return one listening, non-blocking socket for each address `config.host` resolves to (open_each)."""
    return open_each(config, socket.SOCK_STREAM, open_listener)


def open_listener(family: int, type_: int, proto: int, sockaddr: tuple, v6only: bool,
                  config: ServerConfig) -> socket.socket:
    """One listener on `sockaddr`: socket, options, bind, listen; closed again if a step fails."""
    where = format_address(sockaddr[0], sockaddr[1])
    # step: socket
    try:
        sock = socket.socket(family, type_, proto)
    except OSError as e:
        raise SetupError("socket", where, e) from None
    # end step
    # step: options
    with closed_on_failure(sock, "setsockopt", where):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if config.workers > 1:   # every worker's listeners share the port (workers.py)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(v6only))
        sock.setblocking(False)
    # end step
    # step: bind
    with closed_on_failure(sock, "bind", where):
        sock.bind(sockaddr)
    # end step
    # step: listen
    with closed_on_failure(sock, "listen", where):
        sock.listen(config.backlog)
    # end step
    return sock


class closed_on_failure:
    """One setup step on a socket already open, as a `with` block: an OSError in it closes the
    socket and becomes SetupError(step, where, error); anything else passes through untouched.
    The listener's and the datagram socket's steps share it (C: `goto fail`, PHP: closeAndFail)."""

    __slots__ = ("sock", "step", "where")

    def __init__(self, sock: socket.socket, step: str, where: str) -> None:
        self.sock = sock
        self.step = step
        self.where = where

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, traceback: object) -> bool:
        if isinstance(error, OSError):
            self.sock.close()
            raise SetupError(self.step, self.where, error) from None
        return False


def announce(listeners: list[socket.socket]) -> None:
    """Print `LISTENING <address> <port>` for each listener, then `READY`, on stdout, flushed."""
    for sock in listeners:
        address, port = sock.getsockname()[:2]
        print(P.ANNOUNCE_LISTENING % (address, port))
    print(P.ANNOUNCE_READY, flush=True)


class AcceptPause:
    """The EMFILE strategy: when accept() runs out of descriptors, stop accepting for a
    while (5 ms, doubling to 1 s) instead of waking forever on a connection that
    stays queued. The first accept that succeeds clears it."""

    def __init__(self) -> None:
        self.delay = 0.0   # the current pause's length; 0: none since the last successful accept
        self.until = 0.0   # when accepting may resume (monotonic time)

    def active(self, now: float) -> bool:
        """Return whether the pause lasts at `now`."""
        return now < self.until

    def extend(self, now: float) -> bool:
        """Begin the pause, or lengthen it (doubling, up to the maximum), from `now`.

        Return True when it begins (no pause since the last successful accept)."""
        begins = self.delay == 0.0
        self.delay = min(max(self.delay * 2, P.ACCEPT_BACKOFF_INITIAL), P.ACCEPT_BACKOFF_MAX)
        self.until = now + self.delay
        return begins

    def clear(self) -> None:
        """An accept succeeded: the next pause begins short again."""
        self.delay = 0.0


def peer_name(sockaddr: tuple) -> str:
    """Return `host:port` for a socket address."""
    return format_address(sockaddr[0], sockaddr[1])


# step: accept
def accept_client(listener: socket.socket, pause: AcceptPause) -> tuple[socket.socket, str] | None:
    """Return the next queued connection as a non-blocking socket with TCP_NODELAY, and its peer.

    None when there is none to take now: the queue is empty, the connection
    failed on its own (ECONNABORTED and the like), or descriptors ran out (then
    `pause` is extended: it says when to try again).
    """
    try:
        sock, sockaddr = listener.accept()
    except (BlockingIOError, InterruptedError):
        return None
    except OSError as e:
        if e.errno in PER_CONNECTION_ERRORS:
            return None
        if pause.extend(time.monotonic()) or e.errno not in RESOURCE_ERRORS:
            log(f"accept {peer_name(listener.getsockname())}: {describe_error(e)}; accepting paused")
        return None
    pause.clear()
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass  # the peer is already gone; the first recv will say so
    return sock, peer_name(sockaddr)
# end step


def reject(sock: socket.socket) -> None:
    """Over --max-conns: close the connection at once rather than leave it queued."""
    sock.close()

