"""Daytime (RFC 867): one line with the date and time, then close; input is ignored."""
from __future__ import annotations

import time

from acceptloop import _protocol as P
from acceptloop.suite.catalog import scenario
from acceptloop.suite.scenario import AT_ONCE, BASIS_PROTOCOL, BASIS_RFC, MUST, SHOULD, Context
from acceptloop.suite.scenarios.probes import ASCII_LINE, DAYTIME_LINE, daytime_epoch, daytime_line, end_within

RFC = "RFC 867"
WORDS = ("Once a connection is established the current date and time is sent out the connection as a ascii "
         "character string (and any data received is thrown away). The service closes the connection after "
         "sending the quote.")
FIXED_EPOCH = 951825599   # 2000-02-29 11:59:59 UTC: a leap day, a Tuesday


@scenario("daytime.format", "One line `Weekday, Month DD, YYYY HH:MM:SS-UTC` CRLF with the current time, then FIN.",
          MUST, RFC, "The daytime should be just one line. One popular syntax is: Weekday, Month Day, Year Time-Zone",
          service="daytime", fingerprint=("format", "end"))
def format_(ctx: Context) -> None:
    before = time.time()
    c = ctx.connect()
    end_within(ctx, c, AT_ONCE, f"the line and the close come at once: within {AT_ONCE:g} s of connecting",
               basis=BASIS_RFC)
    after = time.time()
    line = c.received
    ok = bool(DAYTIME_LINE.match(line))
    ctx.check(bool(ASCII_LINE.match(line)), "one line of ASCII text arrives", "one line", line, basis=BASIS_RFC)
    ctx.check(c.transcript.end in ("FIN", "RST"), "the server closes the connection after sending it", "closed",
              c.transcript.end, basis=BASIS_RFC)
    ctx.check(ok, "the line has the protocol's format (RFC 867 sets no syntax)",
              "Weekday, Month DD, YYYY HH:MM:SS-UTC\\r\\n", line, basis=BASIS_PROTOCOL)
    ctx.check(c.transcript.end == "FIN", "the server closes with a FIN after the line", "FIN", c.transcript.end,
              basis=BASIS_PROTOCOL)
    stamp = daytime_epoch(line)
    if stamp is not None:
        ctx.check(before - 2 <= stamp <= after + 2, "the time is the current UTC time (within 2 s)",
                  time.strftime("%H:%M:%S", time.gmtime(before)), line, basis=BASIS_PROTOCOL)
    ctx.observe("format", ok)
    ctx.observe("end", c.transcript.end)


@scenario("daytime.fixed_epoch", f"With {P.DAYTIME_EPOCH_ENV}={FIXED_EPOCH} the line is exactly the expected bytes.",
          MUST, "docs/protocol.md", f"{P.DAYTIME_EPOCH_ENV}=<seconds> in the environment fixes the clock so results compare byte for byte.",
          service="daytime", shared=False, fingerprint=("received",))
def fixed_epoch(ctx: Context) -> None:
    srv = ctx.start_server(env={P.DAYTIME_EPOCH_ENV: str(FIXED_EPOCH)})
    c = ctx.connect(srv.address)
    end_within(ctx, c, AT_ONCE, f"the line and the close come at once: within {AT_ONCE:g} s of connecting",
               basis=BASIS_RFC)
    want = daytime_line(FIXED_EPOCH)
    ctx.check(c.received == want, "the line is byte for byte the expected one", want, c.received)
    ctx.observe("received", c.received.hex())


@scenario("daytime.input_ignored", "4 KiB sent before reading: the line still arrives, then a FIN rather than a reset.",
          MUST, RFC, WORDS, service="daytime", fingerprint=("format", "end"))
def input_ignored(ctx: Context) -> None:
    c = ctx.connect()
    c.send(b"ignore me\r\n" * 372)
    end_within(ctx, c, AT_ONCE, f"the line and the close come at once, input or not: within {AT_ONCE:g} s",
               basis=BASIS_RFC)
    ok = bool(DAYTIME_LINE.match(c.received))
    ctx.check(bool(ASCII_LINE.match(c.received)), "the line arrives whole", "one line", c.received, basis=BASIS_RFC)
    ctx.check(ok, "it is the protocol's daytime line", "one daytime line", c.received, basis=BASIS_PROTOCOL)
    ctx.check(c.transcript.end == "FIN", "the connection ends with a FIN: unread input is drained, not reset "
              "(RFC 1122 4.2.2.13)", "FIN", c.transcript.end, level=SHOULD, basis=BASIS_PROTOCOL)
    ctx.observe("format", ok)
    ctx.observe("end", c.transcript.end)
