"""Message: the classic tutorial's exchange, read one message, log it, reply once, close.

The protocol's requirement has two sides, and every case checks both: the server answers *as soon
as* the message has ended (within AT_ONCE of its last byte, never after the step timeout), and *not
before* (while a message is unfinished, nothing comes back for QUIET seconds). The message ends at
its first LF, at its 255th byte, or at the client's FIN, however the bytes were split on the way:
the `_small_segments` cases send from a client with TCP_MAXSEG 88 and small buffers, one segment's
worth at a time, as a real network delivers a long line.
"""
from __future__ import annotations

from acceptloop import _protocol as P
from acceptloop.suite.catalog import scenario
from acceptloop.suite.client import SMALL_SEGMENT, Client
from acceptloop.suite.process import wait_until
from acceptloop.suite.scenario import AT_ONCE, MUST, QUIET, Context
from acceptloop.suite.scenarios.probes import end_within, escaped, quiet_for

DOC = "docs/protocol.md"
WORDS = ("read one message (up to LF, 255 bytes, or the client's EOF), log `Here is the message: <escaped message>` "
         "on stderr, reply `I got your message` + CRLF, close")
AS_SOON = ("The message is the bytes up to and including the first LF, or the first `max_bytes` (255) bytes if no "
           "LF comes before them, or whatever came before the client's FIN. The server MUST answer as soon as one "
           "of those ends it, without waiting for more.")
# Between two segments of the small-segments cases: a real network's round trip, on loopback.
SEGMENT_GAP = 0.02


def _answered(ctx: Context, c: Client, logged: bytes, what: str = "the message") -> None:
    """The reply comes at once (the message has just ended), exactly, then the server's FIN; the
    log line holds exactly `logged`, escaped."""
    end_within(ctx, c, AT_ONCE, f"{what} is answered at once: the reply and FIN within {AT_ONCE:g} s of its end")
    ctx.check(c.received == P.MESSAGE_REPLY, f"the reply to {what} is exactly the protocol's", P.MESSAGE_REPLY,
              c.received)
    ctx.check(c.transcript.end == "FIN", "the server closes after replying", "FIN", c.transcript.end)
    line = P.MESSAGE_LOG_PREFIX + escaped(logged)
    assert ctx.server is not None
    seen = wait_until(lambda: line in ctx.server.stderr_since_mark().splitlines(), AT_ONCE)
    ctx.check(seen, f"stderr holds the log line with {what}, escaped", line,
              ctx.server.stderr_since_mark().strip()[-300:] or "nothing")
    ctx.observe("reply", c.received.hex())
    ctx.observe("logged", seen)
    c.close()   # our FIN ends the server's linger: the next client (iterative: queued behind) is served


def _exchange(ctx: Context, message: bytes, half_close: bool, logged: bytes) -> None:
    c = ctx.connect()
    c.send(message)
    if half_close:
        c.shutdown_write()
    _answered(ctx, c, logged)


@scenario("message.exchange", "A line ending in LF is logged and answered at once, then the server closes.",
          MUST, DOC, WORDS, service="message", fingerprint=("reply", "logged"))
def exchange(ctx: Context) -> None:
    _exchange(ctx, b"Hello, server.\n", half_close=False, logged=b"Hello, server.\n")


@scenario("message.binary_escaped", "NUL, 0xff, backslash, tab and CR are logged escaped, on one line.",
          MUST, DOC, "the message escaped as one printable line: \\\\ \\n \\r \\t and \\xHH for other bytes",
          service="message", fingerprint=("reply", "logged"))
def binary_escaped(ctx: Context) -> None:
    message = b"a\x00b\xff\\\tc\r\n"
    _exchange(ctx, message, half_close=False, logged=message)


@scenario("message.max_bytes", "300 bytes without LF: the server answers at once after 255, without waiting for EOF.",
          MUST, DOC, WORDS, service="message", fingerprint=("reply", "logged"))
def max_bytes(ctx: Context) -> None:
    message = b"x" * 300
    _exchange(ctx, message, half_close=False, logged=message[:P.MESSAGE_MAX_BYTES])


@scenario("message.eof_ends_message", "A message without LF ends at the client's SHUT_WR, and is answered at once.",
          MUST, DOC, WORDS, service="message", fingerprint=("reply", "logged"))
def eof_ends_message(ctx: Context) -> None:
    _exchange(ctx, b"no newline", half_close=True, logged=b"no newline")


@scenario("message.split_segments", "`Hel`, then 0.5 s later `lo\\n`: nothing comes back after `Hel`; the whole "
          "line is logged and answered at once after its LF.",
          MUST, DOC, AS_SOON, service="message", fingerprint=("reply", "logged"))
def split_segments(ctx: Context) -> None:
    # A server that takes one read for the message (the tutorial's read(fd, buffer, 255)) answers
    # `Hel`; one that looks for the LF only in the latest read logs `lo\n`.
    c = ctx.connect()
    c.send(b"Hel")
    quiet_for(ctx, c, QUIET, "nothing comes back while the message is unfinished (`Hel`, no LF yet)")
    c.send(b"lo\n")
    _answered(ctx, c, b"Hello\n", what="`Hel` + `lo\\n`")


@scenario("message.max_bytes_exact", "254 bytes without LF: nothing for 0.5 s; the 255th byte ends the message and "
          "is answered at once. 256 bytes whose last is LF: the first 255 are the message.",
          MUST, DOC, AS_SOON, service="message", fingerprint=("reply", "logged"))
def max_bytes_exact(ctx: Context) -> None:
    n = P.MESSAGE_MAX_BYTES
    c = ctx.connect(label="254 + 1 bytes")
    c.send(b"x" * (n - 1))
    quiet_for(ctx, c, QUIET, f"nothing comes back after {n - 1} bytes without LF (one short of the limit)")
    c.send(b"y")
    _answered(ctx, c, b"x" * (n - 1) + b"y", what=f"exactly {n} bytes without LF")
    # The LF one byte past the limit is not the message's: the first 255 bytes are.
    d = ctx.connect(label="255 bytes + LF")
    d.send(b"z" * n + b"\n")
    _answered(ctx, d, b"z" * n, what=f"{n} bytes then LF (the LF past the limit)")


def _small_segments(message: bytes, logged: bytes, half_close: bool = False):
    """Send `message` from a small-segments client, one segment's worth (SMALL_SEGMENT bytes) at a
    time, SEGMENT_GAP apart; before the message has ended nothing may come back; after, at once."""
    length = len(logged) if len(logged) < len(message) else len(message)   # where the message ends

    def run(ctx: Context) -> None:
        c = ctx.connect(small_segments=True)
        for offset in range(0, len(message), SMALL_SEGMENT):
            piece = message[offset:offset + SMALL_SEGMENT]
            c.send(piece)
            if offset + len(piece) >= length:
                break
            if not quiet_for(ctx, c, SEGMENT_GAP, f"nothing comes back after {offset + len(piece)} of the "
                             f"message's {length} bytes"):
                break
        if half_close:
            c.shutdown_write()
        _answered(ctx, c, logged, what=f"a {length}-byte message in pieces of {SMALL_SEGMENT} bytes")
    return run


_LINE = bytes(range(0x21, 0x7F)) * 2 + b"!\n"                         # 190 printable bytes + LF: three segments
_NO_LF = bytes(b for b in range(256) if b != 0x0A)                     # every other byte value: exactly 255
for _name, _what, _message, _logged, _half in (
    ("exchange", "A 190-byte line ending in LF", _LINE, _LINE, False),
    ("max_bytes", "300 bytes without LF (answered after the 255th)", b"m" * 300, b"m" * P.MESSAGE_MAX_BYTES, False),
    ("binary_escaped", "Every byte value but LF, exactly 255 bytes", _NO_LF, _NO_LF, False),
    ("eof_ends_message", "200 bytes without LF, then SHUT_WR", b"e" * 200, b"e" * 200, True),
):
    scenario(f"message.{_name}_small_segments",
             f"{_what}, sent in pieces of {SMALL_SEGMENT} bytes from a client with TCP_MAXSEG {SMALL_SEGMENT}: "
             "nothing comes back before the message's end, the reply comes at once after it.",
             MUST, DOC, AS_SOON, service="message", fingerprint=("reply", "logged"))(
        _small_segments(_message, _logged, _half))
