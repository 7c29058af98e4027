"""The five services, as the events a connection hands them, and the protocol helpers they share.

A service never touches the socket: everything it says goes through its connection's `emit`
(sent now if nothing waits, the rest kept) or, for a producer, `offer` (sent now, nothing
kept), and `finish` ends it. The helpers (`chargen_cycle`, `daytime_line`, `escape_message`,
`complete_message`, `CHARGEN_CHUNK`) are the bytes on the wire: the asyncio peer uses them too.

    service   on open             on data                     on the client's FIN
    echo      -                   emit it                     finish
    discard   -                   drop it                     finish
    chargen   - (refill: offer    drop it                     ignore: keep sending
              the pattern)
    daytime   emit the line;      drop it                     -
              finish
    message   -                   collect up to LF or         log, reply, finish
                                  MESSAGE_MAX_BYTES; then
                                  log, reply, finish
"""
from __future__ import annotations

import time
from collections.abc import Callable

from acceptloop import _protocol as P
from acceptloop.contract import ServerConfig
from acceptloop.errors import log

TYPE_CHECKING = False   # typing.TYPE_CHECKING without importing typing: a server imports this at start-up
if TYPE_CHECKING:
    from acceptloop.server.connection import Connection


class Service:
    """What one service does with a connection: its events, each a no-op unless a service says more.

    `produces`: it writes without being asked (chargen), so its connection always wants writability
    and `refill` runs whenever the socket is writable and nothing waits.
    """

    name = ""
    produces = False

    def __init__(self, conn: Connection, config: ServerConfig) -> None:
        self.conn = conn
        self.config = config

    def on_open(self, now: float) -> None:
        """The connection was accepted."""

    def on_data(self, data: bytes, now: float) -> None:
        """The client sent `data` (never empty)."""

    def on_eof(self, now: float) -> None:
        """The client sent its FIN: by default the service is done."""
        self.conn.finish()

    def refill(self, now: float) -> None:
        """A producer's turn: the socket is writable and nothing waits."""


class EchoService(Service):
    """RFC 862: send back every byte; after the client's FIN, finish sending and close."""

    name = "echo"

    def on_data(self, data: bytes, now: float) -> None:
        self.conn.emit(data, now)


class DiscardService(Service):
    """RFC 863: read and drop everything; close after the client's FIN."""

    name = "discard"


def chargen_cycle() -> bytes:
    """Return one full period of RFC 864's pattern: 95 lines, each starting one character later."""
    alphabet = bytes(range(P.CHARGEN_FIRST_CHAR, P.CHARGEN_LAST_CHAR + 1))
    twice = alphabet * 2
    return b"".join(
        twice[start:start + P.CHARGEN_LINE_LENGTH] + P.CHARGEN_LINE_ENDING for start in range(len(alphabet))
    )


_CYCLE = chargen_cycle()
# Whole periods, at least LOW_WATER bytes: writing it whole never changes where the pattern stands
# (the asyncio peer writes it so).
CHARGEN_CHUNK = _CYCLE * -(-P.LOW_WATER // len(_CYCLE))
# One period more: LOW_WATER bytes can be offered from any place in the first period, without a copy.
_PATTERN = memoryview(CHARGEN_CHUNK + _CYCLE)


class ChargenService(Service):
    """RFC 864: the rotating pattern until the client goes away; input is read and ignored.

    The connection keeps nothing of it: each refill offers LOW_WATER bytes from where the pattern
    stands, and the place moves on by what the socket took (as the C core does).
    """

    name = "chargen"
    produces = True

    def __init__(self, conn: Connection, config: ServerConfig) -> None:
        super().__init__(conn, config)
        self.position = 0   # where the pattern stands, within one period

    def on_eof(self, now: float) -> None:
        pass  # a half-closed client may still be reading: keep sending until a send fails

    def refill(self, now: float) -> None:
        sent = self.conn.offer(_PATTERN[self.position:self.position + P.LOW_WATER], now)
        self.position = (self.position + sent) % len(_CYCLE)


def daytime_line(epoch: float) -> bytes:
    """Return RFC 867's line for `epoch`: `Weekday, Month DD, YYYY HH:MM:SS-UTC` + CRLF."""
    t = time.gmtime(epoch)
    weekday = P.DAYTIME_WEEKDAYS[(t.tm_wday + 1) % 7]   # gmtime counts from Monday, the table from Sunday
    text = P.DAYTIME_FORMAT % (weekday, P.DAYTIME_MONTHS[t.tm_mon - 1], t.tm_mday, t.tm_year,
                               t.tm_hour, t.tm_min, t.tm_sec)
    return text.encode("ascii") + P.DAYTIME_LINE_ENDING


class DaytimeService(Service):
    """RFC 867: one line, then close; input is ignored."""

    name = "daytime"

    def on_open(self, now: float) -> None:
        epoch = self.config.daytime_epoch if self.config.daytime_epoch is not None else time.time()
        self.conn.emit(daytime_line(epoch), now)
        self.conn.finish()


def escape_message(data: bytes) -> str:
    """Return the message as one printable line: `\\\\`, `\\n`, `\\r`, `\\t`, `\\xHH` for the rest."""
    named = {0x5C: "\\\\", 0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t"}
    return "".join(
        named.get(b) or (chr(b) if 0x20 <= b < 0x7F else "\\x%02x" % b) for b in data
    )


def complete_message(buffer: bytearray) -> bytes | None:
    """Return the message once `buffer` holds a whole one: up to and with the first LF, or the first
    MESSAGE_MAX_BYTES bytes; None while more may come (EOF ends it with what there is)."""
    end = buffer.find(P.MESSAGE_TERMINATOR, 0, P.MESSAGE_MAX_BYTES)
    if end >= 0:
        return bytes(buffer[:end + 1])
    if len(buffer) >= P.MESSAGE_MAX_BYTES:
        return bytes(buffer[:P.MESSAGE_MAX_BYTES])
    return None


class MessageService(Service):
    """The tutorial's exchange: one message (to LF, MESSAGE_MAX_BYTES or EOF), logged; one reply."""

    name = "message"

    def __init__(self, conn: Connection, config: ServerConfig) -> None:
        super().__init__(conn, config)
        self.buffer = bytearray()

    def on_data(self, data: bytes, now: float) -> None:
        self.buffer += data
        message = complete_message(self.buffer)
        if message is not None:
            self.reply(message, now)

    def on_eof(self, now: float) -> None:
        self.reply(bytes(self.buffer), now)

    def reply(self, message: bytes, now: float) -> None:
        """Log the message, send the reply, and finish."""
        log(P.MESSAGE_LOG_PREFIX + escape_message(message))
        self.conn.emit(P.MESSAGE_REPLY, now)
        self.conn.finish()


# The datagram forms (--transport udp, docs/protocol.md "The connectionless path"): what one
# received datagram is answered with, or None for no answer. Stateless: nothing is kept per sender.
# chargen: 6 whole lines from the pattern's first (444 bytes <= RFC 864's 512).
CHARGEN_DATAGRAM = _CYCLE[:P.DATAGRAM_CHARGEN_LINES * (P.CHARGEN_LINE_LENGTH + len(P.CHARGEN_LINE_ENDING))]


def datagram_echo(data: memoryview, config: ServerConfig) -> bytes | memoryview | None:
    """RFC 862: the data of the datagram, sent back whole."""
    return data


def datagram_discard(data: memoryview, config: ServerConfig) -> None:
    """RFC 863: thrown away; no response."""
    return None


def datagram_chargen(data: memoryview, config: ServerConfig) -> bytes:
    """RFC 864: the data is ignored; always the same 6 lines (no state per sender)."""
    return CHARGEN_DATAGRAM


def datagram_daytime(data: memoryview, config: ServerConfig) -> bytes:
    """RFC 867: the data is ignored; the daytime line."""
    return daytime_line(config.daytime_epoch if config.daytime_epoch is not None else time.time())


DATAGRAM_SERVICES: dict[str, Callable[[memoryview, ServerConfig], bytes | memoryview | None]] = {
    "echo": datagram_echo, "discard": datagram_discard, "chargen": datagram_chargen, "daytime": datagram_daytime,
}
assert tuple(DATAGRAM_SERVICES) == P.DATAGRAM_SERVICES, "every datagram service has its answer"


SERVICES: dict[str, Callable[[Connection, ServerConfig], Service]] = {
    "echo": EchoService, "discard": DiscardService, "chargen": ChargenService, "daytime": DaytimeService,
    "message": MessageService,
}
assert tuple(SERVICES) == P.SERVICES, "every service of the protocol definition has a class"
