"""Daytime (RFC 867): one line with the date and time, then close; input is ignored."""
from __future__ import annotations

import select
import socket
import time

from acceptloop import _protocol as P
from acceptloop.suite.catalog import scenario
from acceptloop.suite.process import wait_until
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


# How long after the line the client sends more: past any first look a server takes at its lingering
# connection before it watches it (the C event loop looks once, 1 ms after its FIN, at connections
# that linger while others are open).
LATE = 0.1
HOLDERS = 2   # clients that read the line and keep their end open: the server's other connections


@scenario("daytime.late_input", f"Input {LATE:g} s after the line and the FIN, alone and (but under iterative) "
          f"with {HOLDERS} other clients lingering: drained, not reset; the server holds the connection until the client's FIN, then "
          "closes it at once.", MUST, "docs/protocol.md",
          "Then the server closes: it sends its FIN, reads and drops any input until the client's FIN (at most "
          "`linger_seconds`, 2 s), then closes the socket.", service="daytime", shared=False,
          fingerprint=("end",))
def late_input(ctx: Context) -> None:
    srv = ctx.start_server()
    at_ready = srv.tree_fd_count()
    warm = ctx.connect(srv.address, label="warm-up")   # what a server opens only for its first client
    warm.recv_until_end()
    warm.close()
    ctx.server_within(srv, lambda: srv.tree_fd_count() <= at_ready and not srv.children(), AT_ONCE)
    ends = {"alone": _late_input(ctx, srv, "alone")}
    if ctx.model == "iterative":          # one client at a time: a holder would hold the server
        ctx.observe("end", ends)
        return
    holders = []
    for i in range(HOLDERS):
        h = ctx.connect(srv.address, label=f"holder {i + 1}")
        h.recv_until_end(timeout=AT_ONCE)
        holders.append(h)
    ends[f"with {HOLDERS} others"] = _late_input(ctx, srv, f"with {HOLDERS} others lingering")
    for h in holders:
        h.close()
    ctx.observe("end", ends)


def _late_input(ctx: Context, srv, what: str) -> str:
    """One client that reads the line and the FIN, sends input LATE s later, then its FIN."""
    baseline = srv.steady_tree_fd_count()   # a connection just ended may still be on its way out
    c = ctx.connect(srv.address, label=f"late input, {what}")
    end_within(ctx, c, AT_ONCE, f"{what}: the line and the server's FIN come at once: within {AT_ONCE:g} s",
               basis=BASIS_RFC)
    sock = c.need_socket()
    select.select([], [], [], LATE)       # the client is slow to answer: the workload, not a wait for an event
    held = srv.tree_fd_count()
    if ctx.impl.sockets_not_descriptors:
        ctx.note(f"{what}: the connection still held before the client's FIN: not graded: "
                 f"{ctx.impl.sockets_not_descriptors}")
    else:
        ctx.check(held > baseline, f"{what}: {LATE:g} s after its FIN the server still holds the connection (it "
                  "lingers until the client's FIN, up to 2 s)", f"> {baseline} descriptors", held, basis=BASIS_PROTOCOL)
    try:
        sock.send(b"late input\r\n")
    except (ConnectionResetError, BrokenPipeError):
        pass
    # A server that has closed answers the input with a reset, which turns the socket to CLOSE.
    reset = wait_until(lambda: _tcp_state(sock) == TCP_CLOSE, LATE)
    ctx.check(not reset, f"{what}: input after the server's FIN is drained, not answered with a reset (RFC 1122 "
              "4.2.2.13)", "no reset", "RST" if reset else "FIN", level=SHOULD, basis=BASIS_PROTOCOL)
    client_fin = time.monotonic()
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass                              # reset already
    ctx.server_within(srv, lambda: srv.tree_fd_count() <= baseline, AT_ONCE)
    ctx.figure(f"closed after the client's FIN, {what}", round((time.monotonic() - client_fin) * 1000, 1), "ms")
    ctx.check_descriptors(srv.tree_fd_count(), baseline, f"{what}: the server closes the connection within "
                          f"{AT_ONCE:g} s of the client's FIN", basis=BASIS_PROTOCOL)
    return "RST" if reset else "FIN"


TCP_CLOSE = 7   # tcp_info's tcpi_state after a reset (linux/tcp_states.h)


def _tcp_state(sock: socket.socket) -> int:
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]
