"""The connectionless path (--transport udp): the same contract over datagrams.

"Wait for incoming data (connection-less) or connections (connection-oriented)": a datagram
server has no accept, no connection and nothing to close per client. Every datagram is read with
one recvfrom into a buffer of DATAGRAM_RECV_BUFFER bytes (65,536 + 1) with MSG_TRUNC, so a
datagram longer than the buffer is seen (recvfrom then returns its real length) and dropped with
one log line, never answered partly; the answer (services.DATAGRAM_SERVICES) is one sendto to the
sender's address and port. What goes wrong with one datagram is that datagram's problem
(docs/protocol.md, the table of errors): ECONNREFUSED (a port unreachable for an earlier answer),
EAGAIN and EINTR silently, the rest of sendto's failures with one log line; the server goes on.

    open_datagram_sockets  resolve (SOCK_DGRAM), then per address: socket, options, bind (no listen)
    run_datagram_iterative poll the sockets and the stop descriptor; recvfrom one; answer; again
    run_datagram_event     the same in a selector (epoll), draining each ready socket in batches

--backlog, --max-conns and --idle-timeout have no effect here: there is no backlog, no
connection and nothing idle.
"""
from __future__ import annotations

import errno
import select
import selectors
import socket
from collections.abc import Callable

from acceptloop import _protocol as P
from acceptloop.contract import ServerConfig
from acceptloop.errors import SetupError, describe_error, format_address, log
from acceptloop.server.control import Control
from acceptloop.server.net import closed_on_failure, open_each
from acceptloop.server.services import DATAGRAM_SERVICES

# What a failed recvfrom or sendto means for that datagram only: nothing said (a port unreachable
# for an earlier answer, nothing to read now, a signal, a full socket buffer: UDP promises no delivery) ...
QUIET_ERRORS = frozenset({errno.ECONNREFUSED, errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR})
# ... or one log line, and the next datagram.
DATAGRAM_ERRORS = frozenset({
    errno.EMSGSIZE, errno.ENOBUFS, errno.ENOMEM, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EPERM,
    errno.EACCES, errno.ENETDOWN, errno.EHOSTDOWN, errno.EADDRNOTAVAIL, errno.EINVAL,
})
BATCH = 64   # the event model reads at most this many datagrams from one socket per readiness report


def open_datagram_sockets(config: ServerConfig) -> list[socket.socket]:
    """Return one bound, non-blocking datagram socket for each address `config.host` resolves to.

    As open_listeners (net.open_each), with SOCK_DGRAM and no listen. No SO_REUSEADDR: nothing
    sits in TIME_WAIT, and on a UDP socket it would let a second server bind the same port silently.
    """
    return open_each(config, socket.SOCK_DGRAM, open_datagram_socket)


def open_datagram_socket(family: int, type_: int, proto: int, sockaddr: tuple, v6only: bool,
                         config: ServerConfig) -> socket.socket:
    """One bound datagram socket on `sockaddr`: socket, options, bind; closed again if a step fails."""
    where = format_address(sockaddr[0], sockaddr[1])
    # step: dgram socket
    try:
        sock = socket.socket(family, socket.SOCK_DGRAM, proto)
    except OSError as e:
        raise SetupError("socket", where, e) from None
    with closed_on_failure(sock, "setsockopt", where):
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(v6only))
        sock.setblocking(False)
    # end step
    # step: dgram bind
    with closed_on_failure(sock, "bind", where):
        sock.bind(sockaddr)
    # end step
    return sock


class DatagramServer:
    """The sockets, the service's answer, and the one read buffer every datagram goes through."""

    def __init__(self, socks: list[socket.socket], config: ServerConfig) -> None:
        self.socks = socks
        self.config = config
        self.answer: Callable[[memoryview, ServerConfig], bytes | memoryview | None] = DATAGRAM_SERVICES[config.service]
        self.buffer = bytearray(P.DATAGRAM_RECV_BUFFER)
        self.view = memoryview(self.buffer)

    def serve_one(self, sock: socket.socket) -> bool:
        """Read one datagram from `sock` and answer it. False when there was none to read now."""
        # step: recvfrom
        try:
            # MSG_TRUNC: the datagram's real length comes back even when it did not fit.
            n, sender = sock.recvfrom_into(self.buffer, 0, socket.MSG_TRUNC)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as e:
            if e.errno in QUIET_ERRORS:
                return True        # ECONNREFUSED: an earlier answer met a port unreachable
            if e.errno in DATAGRAM_ERRORS:
                log(f"recvfrom {self.where(sock)}: {describe_error(e)}")
                return True
            raise                  # the socket itself is broken: the loop's error (exit 1)
        if n > len(self.buffer):
            log(f"recvfrom {format_address(sender[0], sender[1])}: datagram of {n} bytes truncated; dropped")
            return True
        # end step
        reply = self.answer(self.view[:n], self.config)
        if reply is not None:
            self.send(sock, reply, sender)
        return True

    def send(self, sock: socket.socket, reply: bytes | memoryview, sender: tuple) -> None:
        """One answering datagram to the sender; a failure drops it (logged unless it says nothing)."""
        # step: sendto
        try:
            sock.sendto(reply, sender)
        except OSError as e:
            if e.errno not in QUIET_ERRORS:
                log(f"sendto {format_address(sender[0], sender[1])}: {describe_error(e)}")
        # end step

    @staticmethod
    def where(sock: socket.socket) -> str:
        try:
            host, port = sock.getsockname()[:2]
            return format_address(host, port)
        except OSError:
            return "socket"

    def close(self) -> None:
        for sock in self.socks:
            sock.close()


def run_datagram_iterative(socks: list[socket.socket], config: ServerConfig, control: Control) -> None:
    """The plain loop: poll the sockets, the wake-up and the stop descriptor; recvfrom one datagram
    from each ready socket and answer it; again, until a stop. Then close the sockets."""
    server = DatagramServer(socks, config)
    poller = select.poll()
    poller.register(control.wake_r, select.POLLIN)
    poller.register(control.stop_r, select.POLLIN)
    by_fd = {sock.fileno(): sock for sock in socks}
    for fd in by_fd:
        poller.register(fd, select.POLLIN)
    try:
        while not control.stopping:
            ready = [fd for fd, _ in poller.poll()]
            if control.wake_r in ready:
                control.drain_wake()   # a signal: its handler has run, `stopping` says what it did
            for fd in ready:
                if fd in by_fd and not control.stopping:
                    server.serve_one(by_fd[fd])
    finally:
        server.close()


def run_datagram_event(socks: list[socket.socket], config: ServerConfig, control: Control) -> None:
    """The event model's form: one selector holding the wake-up descriptor and every socket; a
    ready socket is read until it has nothing more, or BATCH datagrams, then the others get a turn."""
    server = DatagramServer(socks, config)
    selector = selectors.DefaultSelector()
    try:
        selector.register(control.wake_r, selectors.EVENT_READ, None)
        for sock in socks:
            selector.register(sock, selectors.EVENT_READ, sock)
        while not control.stopping:
            for key, _events in selector.select():
                if key.data is None:
                    control.drain_wake()
                    continue
                for _ in range(BATCH):
                    if control.stopping or not server.serve_one(key.data):
                        break
    finally:
        selector.close()
        server.close()


DATAGRAM_MODELS: dict[str, Callable[[list[socket.socket], ServerConfig, Control], None]] = {
    "iterative": run_datagram_iterative, "event": run_datagram_event,
}
assert tuple(DATAGRAM_MODELS) == P.DATAGRAM_MODELS, "every datagram model has its loop"
