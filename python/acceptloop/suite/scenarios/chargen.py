"""Chargen (RFC 864): the rotating pattern until the client goes away; input is ignored."""
from __future__ import annotations

from acceptloop.suite.catalog import scenario
from acceptloop.suite.scenario import BASIS_PROTOCOL, BASIS_RFC, MUST, SHOULD, Context
from acceptloop.suite.scenarios.probes import CHARGEN_LINE, chargen_lines, served

RFC = "RFC 864"
PATTERN = ("On the first line (line 0) send the characters starting with character number 0 and continuing "
           "for 72 characters. On line 1 send the characters starting with character number 1 [...] "
           "Each line is terminated with a carriage return and line feed.")
WORDS = ("Once a connection is established a stream of data is sent out the connection (and any data "
         "received is thrown away). This continues until the calling user terminates the connection.")


@scenario("chargen.pattern", "The first 10,000 lines are exactly RFC 864's rotating pattern.",
          MUST, "RFC 864 (its \"one popular pattern\", the protocol's choice)", PATTERN, service="chargen",
          fingerprint=("received_sha256",), basis="protocol")
def pattern(ctx: Context) -> None:
    lines = 10_000
    expected = chargen_lines(lines)
    c = ctx.connect(keep=False)
    c.expect(expected)
    got = c.recv_exactly(lines * CHARGEN_LINE, timeout=30)
    ctx.check(len(got) == len(expected), "a stream of data flows: 10,000 lines' worth arrives", len(expected),
              len(got), basis=BASIS_RFC)
    ctx.check_stream(c.transcript.received, "10,000 lines, exactly the pattern from line 0")
    ctx.observe("received_sha256", c.transcript.received.sha256)
    c.reset()
    served(ctx, "chargen")


@scenario("chargen.input_ignored", "Input sent while reading changes nothing in the pattern.",
          MUST, RFC, WORDS, service="chargen", fingerprint=("match",))
def input_ignored(ctx: Context) -> None:
    c = ctx.connect()
    c.expect(chargen_lines(2000))
    c.send(b"\x00garbage\xff\r\n" * 4096)
    got = c.recv_exactly(2000 * CHARGEN_LINE, timeout=30)
    ok = got == chargen_lines(2000)
    ctx.check(len(got) == 2000 * CHARGEN_LINE, "the stream keeps flowing although the client sent 48 KiB",
              2000 * CHARGEN_LINE, len(got), basis=BASIS_RFC)
    ctx.check_stream(c.transcript.received, "2,000 lines match the pattern although the client sent 48 KiB",
                     basis=BASIS_PROTOCOL)
    ctx.observe("match", ok)
    c.reset()
    served(ctx, "chargen")


@scenario("chargen.client_closes_mid_stream", "A client that closes mid-stream ends only its own stream; the next client is served.",
          MUST, "contract (docs/protocol.md)", "A client that resets, vanishes or sends garbage never stops the server, and SIGPIPE never kills it.",
          service="chargen", basis="rfc")
def client_closes(ctx: Context) -> None:
    c = ctx.connect()
    c.recv_exactly(100 * CHARGEN_LINE)
    c.close()
    served(ctx, "chargen")
    served(ctx, "chargen", what="a second new client is served too")


@scenario("chargen.client_resets_mid_stream", "A client that resets (RST) mid-stream ends only its own stream; the next client is served.",
          MUST, "contract (docs/protocol.md)", "A client that resets, vanishes or sends garbage never stops the server, and SIGPIPE never kills it.",
          service="chargen", basis="rfc")
def client_resets(ctx: Context) -> None:
    c = ctx.connect()
    c.recv_exactly(100 * CHARGEN_LINE)
    c.reset()
    served(ctx, "chargen")
    served(ctx, "chargen", what="a second new client is served too")


@scenario("chargen.half_close_keeps_sending", "After the client's SHUT_WR the pattern keeps coming: half-closing is not going away.",
          SHOULD, "docs/protocol.md", "A half-close (the client's FIN) is not the client going away: the server SHOULD keep "
          "sending.", service="chargen", fingerprint=("match",))
def half_close(ctx: Context) -> None:
    c = ctx.connect()
    c.recv_exactly(10 * CHARGEN_LINE)
    c.shutdown_write()
    got = c.recv_exactly(1000 * CHARGEN_LINE, timeout=10)
    ok = got == chargen_lines(1000, first=10)
    ctx.check(ok, "1,000 more lines of the pattern arrive after SHUT_WR", "the pattern",
              f"{len(got)} bytes" if not ok else "the pattern")
    ctx.observe("match", ok)
    c.reset()
    served(ctx, "chargen")


@scenario("chargen.pattern_small_segments", "2,000 lines read by a client with TCP_MAXSEG 88 and a 4 KiB receive "
          "buffer: the server's writes are short, and the pattern goes on exactly where each one stopped.",
          MUST, "RFC 864 (its \"one popular pattern\", the protocol's choice)", PATTERN, service="chargen",
          fingerprint=("received_sha256",), basis="protocol")
def pattern_small_segments(ctx: Context) -> None:
    lines = 2_000
    c = ctx.connect(keep=False, small_segments=True)
    c.expect(chargen_lines(lines))
    got = c.recv_exactly(lines * CHARGEN_LINE, timeout=30)
    ctx.check(len(got) == lines * CHARGEN_LINE, "a stream of data flows into the small window", lines * CHARGEN_LINE,
              len(got), basis=BASIS_RFC)
    ctx.check_stream(c.transcript.received, "2,000 lines, exactly the pattern from line 0")
    ctx.observe("received_sha256", c.transcript.received.sha256)
    c.reset()
    served(ctx, "chargen")
