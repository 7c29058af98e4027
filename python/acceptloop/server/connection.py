"""One client connection, as a state machine that never blocks; its service is in services.py.

Every model drives connections the same way: it waits until the socket is ready
for what `wants_read()`/`wants_write()` ask, or until `deadline()`, then calls
`on_readable`, `on_writable` or `on_timer`. A connection goes through four phases
(`Phase`):

    SERVING   the service reads and writes;
    FLUSHING  the service is done; unsent output is still going out;
    LINGERING the server's FIN is sent (shutdown SHUT_WR); unread input is read
              and dropped until the client's FIN or the linger time, so that the
              close does not turn into a reset that destroys the reply;
    CLOSED    the socket is closed.

A service sends with one of two verbs: `emit` (sent now if nothing waits; what the socket
does not take is kept in `out`) or, for a producer, `offer` (sent now, nothing kept).
Output is bounded: once `HIGH_WATER` bytes wait to be sent the connection stops
reading until they drain below `LOW_WATER`, and a producer is asked for more only
while nothing waits.
"""
from __future__ import annotations

import enum
import selectors
import socket
from typing import Callable

from acceptloop import _protocol as P
from acceptloop.contract import ServerConfig
from acceptloop.errors import describe_error, log
from acceptloop.server.services import SERVICES


class Phase(enum.Enum):
    """Where a connection is in its life; it only ever moves down this list."""

    SERVING = "serving"
    FLUSHING = "flushing"
    LINGERING = "lingering"
    CLOSED = "closed"


# The members by name, as `socket.AF_INET` stands for `socket.AddressFamily.AF_INET`: every event
# compares the phase several times, and in Python 3.11 `Phase.CLOSED` costs a lookup through the
# Enum's metaclass each time (about four times a global's), which the event model's echo would feel.
SERVING, FLUSHING, LINGERING, CLOSED = Phase
READ, WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE   # interest(): in the selector's own terms


class Connection:
    """One client: its non-blocking socket, its service and its unsent output."""

    def __init__(self, sock: socket.socket, peer: str, config: ServerConfig, now: float,
                 closing: Callable[[Connection], None] | None = None) -> None:
        """`closing` runs once, just before the socket is closed: a model whose poller holds the
        socket (the event model's selector) takes it out there, while the descriptor still names it."""
        self.sock = sock
        self.closing = closing
        self.fd = sock.fileno()
        self.peer = peer
        self.out = bytearray()
        self.phase = SERVING
        self.input_open = True        # the client has not sent its FIN
        self.reading_paused = False   # backpressure: too much output waiting
        self.idle_timeout = config.idle_timeout
        self.last_active = now
        self.linger_until = 0.0
        self.stop_by = 0.0            # the grace deadline once the server is stopping; 0: none
        self.service = SERVICES[config.service](self, config)
        self.service.on_open(now)
        self.settle(now)

    def fileno(self) -> int:
        """The socket's descriptor, also once it is closed (so a selector can still forget it)."""
        return self.fd

    @property
    def closed(self) -> bool:
        return self.phase is CLOSED

    def interest(self) -> int:
        """Return what a selector should wait for: READ, WRITE, both or neither (0)."""
        if self.phase is SERVING:
            write = WRITE if self.out or self.service.produces else 0
        else:
            write = WRITE if self.phase is FLUSHING else 0
        if self.input_open and not self.reading_paused and self.phase is not CLOSED:
            return READ | write
        return write

    def wants_read(self) -> bool:
        return bool(self.interest() & READ)

    def wants_write(self) -> bool:
        return bool(self.interest() & WRITE)

    def deadline(self) -> float:
        """Return when `on_timer` must run next (monotonic time); 0 when nothing is due."""
        due = [t for t in (self.stop_by, self.linger_until) if t]
        if self.idle_timeout > 0:
            due.append(self.last_active + self.idle_timeout)
        return min(due) if due else 0.0

    # step: read/write
    def on_readable(self, now: float) -> None:
        """Read what the client sent; hand it to the service, or drop it once the service is done."""
        if self.phase is CLOSED or not self.input_open:
            return
        try:
            data = self.sock.recv(P.READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            self.fail("recv", e)
            return
        self.last_active = now
        if not data:
            self.input_open = False
            if self.phase is SERVING:
                self.service.on_eof(now)
            elif self.phase is LINGERING:
                self.close()
                return
        elif self.phase is SERVING:
            self.service.on_data(data, now)   # its output went out at once (emit): write-through
        if self.out or self.phase is FLUSHING:
            self.settle(now)

    def emit(self, data: bytes, now: float) -> None:
        """A service's output: sent now if nothing waits (write-through); what the socket does not
        take is kept in `out`, after what already waits, and only then does the loop ask for
        writability."""
        if self.phase is CLOSED:
            return
        if self.out:   # earlier output still waits: this goes after it
            self.out += data
            return
        sent = self.send(data, now)
        if sent < len(data) and self.phase is not CLOSED:
            self.out += data[sent:]

    def offer(self, data: bytes, now: float) -> int:
        """A producer's output: send what the socket takes of `data` now and keep nothing.

        Return the bytes sent (0 when the socket took none or the send failed); the producer moves
        on by that much and offers again when the socket is writable.
        """
        if self.phase is CLOSED:
            return 0
        return self.send(data, now)

    def on_writable(self, now: float) -> None:
        """Send what waits as far as the socket takes it; once nothing waits, a producer refills."""
        if self.phase is CLOSED:
            return
        if self.out:
            self.send_output(now)
        if self.phase is SERVING and not self.out:
            self.service.refill(now)
        self.settle(now)

    def send_output(self, now: float) -> None:
        """Send as much waiting output as the socket takes; a short write keeps the rest."""
        del self.out[:self.send(self.out, now)]

    def send(self, data: bytes | bytearray | memoryview, now: float) -> int:
        """Send what the socket takes of `data` now, with MSG_NOSIGNAL (a reset peer is EPIPE or
        ECONNRESET, never SIGPIPE); a successful send counts as activity.

        Return the bytes sent: 0 when the socket would block, or when the send failed (then the
        connection is closed, with one line logged).
        """
        try:
            sent = self.sock.send(data, socket.MSG_NOSIGNAL)
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError as e:
            self.fail("send", e)
            return 0
        self.last_active = now
        return sent
    # end step

    def on_timer(self, now: float) -> None:
        """Close the connection if its idle, linger or grace time is up."""
        if self.phase is CLOSED:
            return
        if self.stop_by and now >= self.stop_by:
            self.close()
        elif self.linger_until and now >= self.linger_until:
            self.close()
        elif self.idle_timeout > 0 and now - self.last_active >= self.idle_timeout:
            log(f"{self.service.name} {self.peer}: idle for {self.idle_timeout:g} s; closed")
            self.close()

    def finish(self) -> None:
        """The service has nothing more to say: flush, then shut down."""
        if self.phase is SERVING:
            self.phase = FLUSHING

    def settle(self, now: float) -> None:
        """After an event that left output waiting or finished the service: apply backpressure,
        and shut down once a finished service's output is flushed."""
        if self.phase is CLOSED:
            return
        if len(self.out) >= P.HIGH_WATER:
            self.reading_paused = True
        elif len(self.out) < P.LOW_WATER:
            self.reading_paused = False
        if self.phase is FLUSHING and not self.out:
            self.shutdown(now)

    # step: shutdown and close
    def shutdown(self, now: float) -> None:
        """Send our FIN; drain the client's input until its FIN (or the linger time), then close."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self.close()   # the peer is gone already: nothing left to tell it
            return
        if not self.input_open:
            self.close()
            return
        self.phase = LINGERING
        self.linger_until = now + P.LINGER_SECONDS

    def close(self) -> None:
        """Close the socket, once (after `closing`, if the model gave one)."""
        if self.phase is not CLOSED:
            self.phase = CLOSED
            if self.closing is not None:
                self.closing(self)
            self.sock.close()
    # end step

    def fail(self, step: str, error: OSError) -> None:
        """This connection's failure is this connection's problem: log one line and close it."""
        log(f"{step} {self.peer}: {describe_error(error)}")
        self.close()
