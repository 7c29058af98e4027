"""Echo (RFC 862): everything comes back, unchanged, until the client closes its side."""
from __future__ import annotations


from acceptloop.suite.catalog import scenario
from acceptloop.suite.scenario import BASIS_PROTOCOL, BASIS_RFC, MUST, Context
from acceptloop.suite.scenarios.probes import payload

RFC = "RFC 862"
WORDS = ("Once a connection is established any data received is sent back. "
         "This continues until the calling user terminates the connection.")


def _echo_client(ctx: Context, data: bytes, keep: bool = True, small_segments: bool = False):
    """A client that expects `data` back, byte for byte."""
    c = ctx.connect(keep=keep, small_segments=small_segments)
    c.expect(data)
    return c


def _check_echo(ctx: Context, sent: bytes, c) -> None:
    got = c.transcript.received
    ctx.check_stream(got, f"every byte comes back, unchanged ({len(sent)} bytes)", basis=BASIS_RFC)
    ctx.check(c.transcript.end == "FIN", "the server closes with a FIN once everything is echoed",
              "FIN", c.transcript.end, basis=BASIS_PROTOCOL)
    ctx.observe("received_sha256", got.sha256)
    ctx.observe("end", c.transcript.end)


@scenario("echo.round_trip", "A short line comes back unchanged, then the server's FIN.",
          MUST, RFC, WORDS, service="echo", fingerprint=("received_sha256", "end"))
def round_trip(ctx: Context) -> None:
    data = b"Hello, echo.\r\n"
    c = _echo_client(ctx, data)
    c.send(data)
    c.shutdown_write()
    c.recv_until_end()
    _check_echo(ctx, data, c)


@scenario("echo.all_byte_values", "All 256 byte values (NUL, CR, LF, 0x80-0xff) come back unchanged.",
          MUST, "contract (docs/protocol.md)", "Binary data is data: NUL, CR, LF and bytes >= 0x80 pass through unchanged.",
          service="echo", fingerprint=("received_sha256", "end"), basis="rfc")
def all_byte_values(ctx: Context) -> None:
    data = bytes(range(256)) * 16
    c = _echo_client(ctx, data)
    c.send(data)
    c.shutdown_write()
    c.recv_until_end()
    _check_echo(ctx, data, c)


@scenario("echo.large_stream", "16 MiB, read while it is sent, comes back with the same SHA-256.",
          MUST, RFC, WORDS, service="echo", fingerprint=("received_sha256", "end"))
def large_stream(ctx: Context) -> None:
    data = payload(862, 16 << 20)
    c = _echo_client(ctx, data, keep=False)
    c.exchange((data[i:i + (1 << 18)] for i in range(0, len(data), 1 << 18)), timeout=60)
    _check_echo(ctx, data, c)
    ctx.figure("duration", round(c.transcript.duration_s, 3), "s")


@scenario("echo.one_byte_fragments", "255 one-byte sends, each echoed before the next is sent.",
          MUST, RFC, WORDS, service="echo", fingerprint=("received_sha256", "end"))
def one_byte_fragments(ctx: Context) -> None:
    data = bytes(range(1, 256))
    c = _echo_client(ctx, data)
    for i in range(len(data)):
        c.send(data[i:i + 1])
        got = c.recv_exactly(1)
        if got != data[i:i + 1]:
            ctx.check(False, "each byte comes back before the next is sent", data[i:i + 1], got)
            break
    c.shutdown_write()
    c.recv_until_end()
    _check_echo(ctx, data, c)


@scenario("echo.half_close_flush", "1 MiB then SHUT_WR: the rest of the echo arrives, then the server's FIN.",
          MUST, "docs/protocol.md",
          "every byte received is sent back until the client closes its side; the server then finishes sending and closes",
          service="echo", fingerprint=("received_sha256", "end"))
def half_close_flush(ctx: Context) -> None:
    data = payload(1122, 1 << 20)
    c = _echo_client(ctx, data, keep=False)
    c.exchange([data], half_close=True, timeout=30)
    _check_echo(ctx, data, c)


# The same streams from a client with TCP_MAXSEG 88 and 4 KiB socket buffers (client.SMALL_SEGMENT):
# the server reads them in small pieces and writes into a small window, short writes and all, as on
# a real network.
def _small(data: bytes, how: str):
    def run(ctx: Context) -> None:
        c = _echo_client(ctx, data, keep=len(data) <= 1 << 16, small_segments=True)
        if how == "send":
            c.send(data)
            c.shutdown_write()
            c.recv_until_end()
        else:
            c.exchange((data[i:i + (1 << 16)] for i in range(0, len(data), 1 << 16)), timeout=30)
        _check_echo(ctx, data, c)
    return run


for _name, _what, _data, _how in (
    ("all_byte_values", "All 256 byte values, 4 KiB", bytes(range(256)) * 16, "send"),
    ("large_stream", "4 MiB, read while it is sent,", payload(88, 4 << 20), "exchange"),
    ("half_close_flush", "256 KiB then SHUT_WR", payload(89, 256 << 10), "exchange"),
):
    scenario(f"echo.{_name}_small_segments", f"{_what} from a client with TCP_MAXSEG 88 and 4 KiB buffers: "
             "partial reads and short writes, every byte back unchanged, then the server's FIN.",
             MUST, RFC, WORDS, service="echo", fingerprint=("received_sha256", "end"))(_small(_data, _how))
