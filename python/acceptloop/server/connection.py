"""One client connection and the five services, as state machines that never block.

Every model drives connections the same way: it waits until the socket is ready
for what `wants_read()`/`wants_write()` ask, or until `deadline()`, then calls
`on_readable`, `on_writable` or `on_timer`. A connection goes through four phases:

    SERVING   the service reads and writes;
    FLUSHING  the service is done; unsent output is still going out;
    LINGERING the server's FIN is sent (shutdown SHUT_WR); unread input is read
              and dropped until the client's FIN or the linger time, so that the
              close does not turn into a reset that destroys the reply;
    CLOSED    the socket is closed.

Output is bounded: once `HIGH_WATER` bytes wait to be sent the connection stops
reading until they drain below `LOW_WATER` (echo), and chargen only generates
while less than `LOW_WATER` is waiting.
"""
from __future__ import annotations

import selectors
import socket
import time
from typing import Callable

from acceptloop import _protocol as P
from acceptloop.contract import ServerConfig, describe_error
from acceptloop.server.net import log

SERVING, FLUSHING, LINGERING, CLOSED = "serving", "flushing", "lingering", "closed"
READ, WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE   # interest(): in the selector's own terms


class Connection:
    """One client: its non-blocking socket, its service and its unsent output."""

    def __init__(self, sock: socket.socket, peer: str, config: ServerConfig, now: float) -> None:
        self.sock = sock
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
        self._settle(now)

    @property
    def closed(self) -> bool:
        return self.phase == CLOSED

    def interest(self) -> int:
        """What the event loop's selector should wait for: READ, WRITE, both or neither."""
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
        """When `on_timer` must run next; 0 when nothing is due."""
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
            self.service.on_data(data, now)
        if self.out or self.phase is FLUSHING:
            self._settle(now)

    def emit(self, data: bytes, now: float) -> None:
        """Output from the service, sent at once (write-through): only what a short write leaves
        waits in `out`, and only then does the loop ask for writability."""
        if self.phase is CLOSED:
            return
        if self.out:   # earlier output still waits: this goes after it
            self.out += data
            return
        try:
            sent = self.sock.send(data, socket.MSG_NOSIGNAL)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as e:
            self.fail("send", e)
            return
        if sent:
            self.last_active = now
        if sent < len(data):
            self.out += data[sent:]

    def on_writable(self, now: float) -> None:
        """Send as much unsent output as the socket takes; a short write keeps the rest."""
        if self.phase is CLOSED:
            return
        if self.phase is SERVING:
            self.service.refill()
        if self.out:
            self.send_output(now)
            if self.phase is CLOSED:
                return
        self._settle(now)

    def send_output(self, now: float) -> None:
        try:
            sent = self.sock.send(self.out, socket.MSG_NOSIGNAL)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            self.fail("send", e)
            return
        del self.out[:sent]
        self.last_active = now
    # end step

    def on_timer(self, now: float) -> None:
        """Close the connection if its idle, linger or grace time is up."""
        if self.phase == CLOSED:
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
        if self.phase == SERVING:
            self.phase = FLUSHING

    def _settle(self, now: float) -> None:
        """After an event that left output waiting or finished the service: apply backpressure,
        and move on once output is flushed."""
        if len(self.out) >= P.HIGH_WATER:
            self.reading_paused = True
        elif len(self.out) < P.LOW_WATER:
            self.reading_paused = False
        if self.phase == FLUSHING and not self.out:
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
        if self.phase != CLOSED:
            self.phase = CLOSED
            self.sock.close()
    # end step

    def fail(self, step: str, error: OSError) -> None:
        """This connection's failure is this connection's problem: log one line and close it."""
        log(f"{step} {self.peer}: {describe_error(error)}")
        self.close()


class Service:
    """What one service does with a connection. `produces`: it writes without being asked."""

    name = ""
    produces = False

    def __init__(self, conn: Connection, config: ServerConfig) -> None:
        self.conn = conn
        self.config = config

    def on_open(self, now: float) -> None:
        pass

    def on_data(self, data: bytes, now: float) -> None:
        pass

    def on_eof(self, now: float) -> None:
        self.conn.finish()

    def refill(self) -> None:
        pass


class Echo(Service):
    """RFC 862: send back every byte; after the client's FIN, finish sending and close."""

    name = "echo"

    def on_data(self, data: bytes, now: float) -> None:
        self.conn.emit(data, now)


class Discard(Service):
    """RFC 863: read and drop everything; close after the client's FIN."""

    name = "discard"


def chargen_cycle() -> bytes:
    """One full period of RFC 864's pattern: 95 lines, each starting one character later."""
    alphabet = bytes(range(P.CHARGEN_FIRST_CHAR, P.CHARGEN_LAST_CHAR + 1))
    twice = alphabet * 2
    return b"".join(
        twice[start:start + P.CHARGEN_LINE_LENGTH] + P.CHARGEN_LINE_ENDING for start in range(len(alphabet))
    )


# Whole periods, at least LOW_WATER bytes: appending it never changes where the pattern stands.
_CYCLE = chargen_cycle()
CHARGEN_CHUNK = _CYCLE * -(-P.LOW_WATER // len(_CYCLE))


class Chargen(Service):
    """RFC 864: the rotating pattern until the client goes away; input is read and ignored."""

    name = "chargen"
    produces = True

    def on_eof(self, now: float) -> None:
        pass  # a half-closed client may still be reading: keep sending until a send fails

    def refill(self) -> None:
        if len(self.conn.out) < P.LOW_WATER:
            self.conn.out += CHARGEN_CHUNK


def daytime_line(epoch: float) -> bytes:
    """RFC 867's line for `epoch`: `Weekday, Month DD, YYYY HH:MM:SS-UTC` + CRLF."""
    t = time.gmtime(epoch)
    weekday = P.DAYTIME_WEEKDAYS[(t.tm_wday + 1) % 7]   # gmtime counts from Monday, the table from Sunday
    text = P.DAYTIME_FORMAT % (weekday, P.DAYTIME_MONTHS[t.tm_mon - 1], t.tm_mday, t.tm_year,
                               t.tm_hour, t.tm_min, t.tm_sec)
    return text.encode("ascii") + P.DAYTIME_LINE_ENDING


class Daytime(Service):
    """RFC 867: one line, then close; input is ignored."""

    name = "daytime"

    def on_open(self, now: float) -> None:
        epoch = self.config.daytime_epoch if self.config.daytime_epoch is not None else time.time()
        self.conn.out += daytime_line(epoch)
        self.conn.finish()


def escape_message(data: bytes) -> str:
    """The message as one printable line: `\\\\`, `\\n`, `\\r`, `\\t`, `\\xHH` for the rest."""
    named = {0x5C: "\\\\", 0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t"}
    return "".join(
        named.get(b) or (chr(b) if 0x20 <= b < 0x7F else "\\x%02x" % b) for b in data
    )


def complete_message(buffer: bytearray) -> bytes | None:
    """The message once `buffer` holds a whole one: up to and with the first LF, or the first
    MESSAGE_MAX_BYTES bytes; None while more may come (EOF ends it with what there is)."""
    end = buffer.find(P.MESSAGE_TERMINATOR, 0, P.MESSAGE_MAX_BYTES)
    if end >= 0:
        return bytes(buffer[:end + 1])
    if len(buffer) >= P.MESSAGE_MAX_BYTES:
        return bytes(buffer[:P.MESSAGE_MAX_BYTES])
    return None


class Message(Service):
    """The tutorial's exchange: one message (to LF, MESSAGE_MAX_BYTES or EOF), logged; one reply."""

    name = "message"

    def __init__(self, conn: Connection, config: ServerConfig) -> None:
        super().__init__(conn, config)
        self.buffer = bytearray()

    def on_data(self, data: bytes, now: float) -> None:
        self.buffer += data
        message = complete_message(self.buffer)
        if message is not None:
            self.reply(message)

    def on_eof(self, now: float) -> None:
        self.reply(bytes(self.buffer))

    def reply(self, message: bytes) -> None:
        log(P.MESSAGE_LOG_PREFIX + escape_message(message))
        self.conn.out += P.MESSAGE_REPLY
        self.conn.finish()


SERVICES: dict[str, Callable[[Connection, ServerConfig], Service]] = {
    "echo": Echo, "discard": Discard, "chargen": Chargen, "daytime": Daytime, "message": Message,
}
assert tuple(SERVICES) == P.SERVICES, "every service of the protocol definition has a class"
