"""The five services as Python handlers over the C loop (the handler API, cext/acceptloop.h).

A handler is one object for every connection of a server; what one connection
needs to remember lives on that connection's `conn.state`. The binding (cffi:
acceptloop.cserver; ctypes: acceptloop.ctypes_handler) calls, with the GIL held
for the call only:

    on_open(conn)          once, when the connection is accepted
    on_data(conn, data)    with the bytes one recv read (a bytes object)
    on_eof(conn)           the client sent its FIN (default: conn.end())
    on_writable(conn)      only when `produces` is set: the socket takes more
                           and none of our output waits (chargen)
    on_close(conn)         once, last; conn can do nothing any more

and `conn` offers, inside those calls:

    conn.write(data)       sends what the socket takes now and keeps the rest,
                           in order; False once the connection is closed
    conn.offer(data, start, length)  sends data[start:start + length] (no copy)
                           as far as the socket takes it now and keeps nothing:
                           the bytes taken (0: full, or output waits; -1: closed)
    conn.end()             nothing more to say: flush, then close
    conn.peer              "127.0.0.1:5555"
    conn.state             the handler's own, None at first

An exception from a handler ends that connection (one line on stderr, see
`handler_failed`), never the server. The bytes on the wire are docs/protocol.md's,
from the Python port's own helpers (acceptloop.server.services), so these
handlers and the C services cannot say different things.

    with CServer(service="echo", model="event", port=0, handler=EchoHandler()) as server:
        server.start()
"""
from __future__ import annotations

import time

from acceptloop import _protocol as P
from acceptloop.contract import ServerConfig
from acceptloop.server.services import CHARGEN_CHUNK, chargen_cycle, complete_message, daytime_line, escape_message
from acceptloop.errors import log


TYPE_CHECKING = False   # typing.TYPE_CHECKING without importing typing: a server imports this at start-up
if TYPE_CHECKING:
    from typing import Any, Protocol

    class Conn(Protocol):
        """What a binding hands a handler for one connection."""

        peer: str
        state: Any

        def write(self, data: bytes) -> bool: ...
        def offer(self, data: bytes, start: int, length: int) -> int: ...
        def end(self) -> None: ...


class Handler:
    """The base: reads and drops everything, ends after the client's FIN."""

    name = ""          # the service it replaces (the C core's log lines use it)
    produces = False   # True: on_writable is called whenever the socket can take more

    def on_open(self, conn: Conn) -> None:
        pass

    def on_data(self, conn: Conn, data: bytes) -> None:
        pass

    def on_eof(self, conn: Conn) -> None:
        conn.end()

    def on_writable(self, conn: Conn) -> None:
        pass

    def on_close(self, conn: Conn) -> None:
        pass


class EchoHandler(Handler):
    """RFC 862: every byte back; after the client's FIN, flush and close."""

    name = "echo"

    def on_data(self, conn: Conn, data: bytes) -> None:
        conn.write(data)


class DiscardHandler(Handler):
    """RFC 863: read and drop everything; close after the client's FIN."""

    name = "discard"


# The pattern from any point of its period, LOW_WATER bytes at a time: whole periods and one more.
_PERIOD = len(chargen_cycle())
_PATTERN = CHARGEN_CHUNK + chargen_cycle()
assert len(_PATTERN) >= _PERIOD + P.LOW_WATER


class ChargenHandler(Handler):
    """RFC 864: the rotating pattern until the client goes away. Like the C service it keeps
    no output: it remembers where in the period it stands and offers LOW_WATER bytes from there."""

    name = "chargen"
    produces = True

    def on_open(self, conn: Conn) -> None:
        conn.state = 0

    def on_eof(self, conn: Conn) -> None:
        pass   # a half-closed client may still be reading: keep sending until a send fails

    def on_writable(self, conn: Conn) -> None:
        sent = conn.offer(_PATTERN, conn.state, P.LOW_WATER)
        if sent > 0:
            conn.state = (conn.state + sent) % _PERIOD


class DaytimeHandler(Handler):
    """RFC 867: one line, then close; input is ignored."""

    name = "daytime"

    def __init__(self, epoch: int | None = None) -> None:
        self.epoch = epoch   # None: the clock

    def on_open(self, conn: Conn) -> None:
        conn.write(daytime_line(self.epoch if self.epoch is not None else time.time()))
        conn.end()


class MessageHandler(Handler):
    """The tutorial's exchange: one message (to LF, MESSAGE_MAX_BYTES or EOF), logged as one
    printable line; one reply, then close."""

    name = "message"

    def on_open(self, conn: Conn) -> None:
        conn.state = bytearray()

    def on_data(self, conn: Conn, data: bytes) -> None:
        if conn.state is None:
            return   # told already: what follows is dropped
        conn.state += data
        message = complete_message(conn.state)
        if message is not None:
            self.reply(conn, message)

    def on_eof(self, conn: Conn) -> None:
        if conn.state is not None:
            self.reply(conn, bytes(conn.state))

    def reply(self, conn: Conn, message: bytes) -> None:
        log(P.MESSAGE_LOG_PREFIX + escape_message(message))
        conn.state = None
        conn.write(P.MESSAGE_REPLY)
        conn.end()


HANDLERS = {
    "echo": EchoHandler, "discard": DiscardHandler, "chargen": ChargenHandler,
    "daytime": DaytimeHandler, "message": MessageHandler,
}
assert tuple(HANDLERS) == P.SERVICES, "every service of the protocol definition has a handler"


def handler_for(config: ServerConfig) -> Handler:
    """The handler that replaces config.service's C code."""
    if config.service == "daytime":
        return DaytimeHandler(config.daytime_epoch)
    return HANDLERS[config.service]()


def handler_failed(name: str, peer: str, error: BaseException) -> None:
    """The one line an exception in a handler costs: the connection ends, the server goes on."""
    log(f"{name or 'handler'} {peer}: handler raised {type(error).__name__}: {error}; closed")
