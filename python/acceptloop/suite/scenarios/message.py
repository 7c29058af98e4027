"""Message: the classic tutorial's exchange, read one message, log it, reply once, close."""
from __future__ import annotations

from acceptloop import _protocol as P
from acceptloop.suite.catalog import scenario
from acceptloop.suite.process import wait_until
from acceptloop.suite.scenario import MUST, Context
from acceptloop.suite.scenarios.probes import escaped

DOC = "docs/protocol.md"
WORDS = ("read one message (up to LF, 255 bytes, or the client's EOF), log `Here is the message: <escaped message>` "
         "on stderr, reply `I got your message` + CRLF, close")


def _exchange(ctx: Context, message: bytes, half_close: bool, logged: bytes) -> None:
    c = ctx.connect()
    c.send(message)
    if half_close:
        c.shutdown_write()
    c.recv_until_end()
    ctx.check(c.received == P.MESSAGE_REPLY, "the reply is exactly the protocol's", P.MESSAGE_REPLY, c.received)
    ctx.check(c.transcript.end == "FIN", "the server closes after replying", "FIN", c.transcript.end)
    line = P.MESSAGE_LOG_PREFIX + escaped(logged)
    assert ctx.server is not None
    seen = wait_until(lambda: line in ctx.server.stderr_since_mark().splitlines(), 5.0)
    ctx.check(seen, "stderr holds the log line with the escaped message", line,
              ctx.server.stderr_since_mark().strip()[-300:] or "nothing")
    ctx.observe("reply", c.received.hex())
    ctx.observe("logged", seen)


@scenario("message.exchange", "A line ending in LF is logged and answered, then the server closes.",
          MUST, DOC, WORDS, service="message", fingerprint=("reply", "logged"))
def exchange(ctx: Context) -> None:
    _exchange(ctx, b"Hello, server.\n", half_close=False, logged=b"Hello, server.\n")


@scenario("message.binary_escaped", "NUL, 0xff, backslash, tab and CR are logged escaped, on one line.",
          MUST, DOC, "the message escaped as one printable line: \\\\ \\n \\r \\t and \\xHH for other bytes",
          service="message", fingerprint=("reply", "logged"))
def binary_escaped(ctx: Context) -> None:
    message = b"a\x00b\xff\\\tc\r\n"
    _exchange(ctx, message, half_close=False, logged=message)


@scenario("message.max_bytes", "300 bytes without LF: the server answers after 255, without waiting for EOF.",
          MUST, DOC, WORDS, service="message", fingerprint=("reply", "logged"))
def max_bytes(ctx: Context) -> None:
    message = b"x" * 300
    _exchange(ctx, message, half_close=False, logged=message[:P.MESSAGE_MAX_BYTES])


@scenario("message.eof_ends_message", "A message without LF ends at the client's SHUT_WR.",
          MUST, DOC, WORDS, service="message", fingerprint=("reply", "logged"))
def eof_ends_message(ctx: Context) -> None:
    _exchange(ctx, b"no newline", half_close=True, logged=b"no newline")
