"""Discard (RFC 863): everything is read and dropped; nothing is ever sent."""
from __future__ import annotations


from acceptloop.suite.catalog import scenario
from acceptloop.suite.scenario import BASIS_PROTOCOL, MUST, Context
from acceptloop.suite.scenarios.probes import payload

RFC = "RFC 863"
WORDS = ("Once a connection is established any data received is thrown away. No response is sent. "
         "This continues until the calling user terminates the connection.")


@scenario("discard.ingest", "10 MiB goes in, not one byte comes back, and SHUT_WR brings the server's FIN.",
          MUST, RFC, WORDS, service="discard", fingerprint=("received_bytes", "end"))
def ingest(ctx: Context) -> None:
    data = payload(863, 10 << 20)
    c = ctx.connect()
    c.exchange((data[i:i + (1 << 18)] for i in range(0, len(data), 1 << 18)), timeout=60)
    ctx.check(c.transcript.sent.count == len(data), "all 10 MiB is accepted", len(data), c.transcript.sent.count)
    ctx.check(c.transcript.received.count == 0, "no byte is sent back", 0, c.transcript.received.count)
    ctx.check(c.transcript.end == "FIN", "the client's SHUT_WR is answered with a FIN", "FIN", c.transcript.end,
              basis=BASIS_PROTOCOL)
    ctx.observe("received_bytes", c.transcript.received.count)
    ctx.observe("end", c.transcript.end)
    ctx.figure("duration", round(c.transcript.duration_s, 3), "s")


@scenario("discard.silent_while_open", "While the client keeps its side open, the server sends nothing and does not close.",
          MUST, RFC, WORDS, service="discard", fingerprint=("pending",))
def silent_while_open(ctx: Context) -> None:
    c = ctx.connect()
    c.send(b"anything at all\r\n" * 100)
    # Nothing may arrive: wait for data or a FIN for half a second, expecting neither.
    pending = c.pending(timeout=0.5)
    ctx.check(not pending, "nothing arrives (no data, no FIN) while the client's side is open", "nothing",
              "data or FIN" if pending else "nothing")
    ctx.observe("pending", pending)
