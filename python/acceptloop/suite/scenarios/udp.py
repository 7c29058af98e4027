"""The connectionless path (--transport udp, docs/protocol.md "The connectionless path"): echo,
discard, chargen and daytime over datagrams, in the models that need no accept (iterative, event).

Every scenario starts its own server with `--transport udp` (shared=False, transport="udp"), so
the kit's own end-of-scenario judgement applies to each: the server must still be running, and
must then exit 0 on SIGTERM. The client is suite/datagram.py; its transcripts list the datagrams.
"""
from __future__ import annotations

import hashlib
import re
import signal
import socket
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from acceptloop import _protocol as P
from acceptloop.suite.catalog import scenario
from acceptloop.suite.datagram import DatagramClient
from acceptloop.suite.process import STOP_GRACE
from acceptloop.suite.scenario import BASIS_CONTRACT, BASIS_PROTOCOL, BASIS_RFC, MUST, QUIET, Context
from acceptloop.suite.scenarios.probes import ASCII_LINE, DAYTIME_LINE, chargen_lines, daytime_epoch, daytime_line

ECHO = ("RFC 862: \"A server listens for UDP datagrams on UDP port 7. When a datagram is received, the data "
        "from it is sent back in an answering datagram.\"")
DISCARD = "RFC 863: \"When a datagram is received, it is thrown away. No response is sent.\""
CHARGEN = ("RFC 864: \"When a datagram is received, an answering datagram is sent containing a random number "
           "(between 0 and 512) of characters (the data in the received datagram is ignored).\" \"There is no "
           "history or state information associated with the UDP version of this service, so there is no "
           "continuity of data from one answering datagram to another.\"")
DAYTIME = ("RFC 867: \"When a datagram is received, an answering datagram is sent containing the current date "
           "and time as a ASCII character string (the data in the received datagram is ignored).\"")
ANSWER = 2.0            # seconds an answer may take on loopback before it counts as not sent
SIZES = (0, 1, 1472, 8192, P.DATAGRAM_MAX_PAYLOAD)
CHARGEN_ANSWER = chargen_lines(P.DATAGRAM_CHARGEN_LINES)   # 6 whole lines from the first: 444 bytes
BURST = 2000            # datagrams in the burst scenario
BURST_RATE = 10000.0    # at most this many per second
WINDOW = 16             # awaited in a window of this many in flight
FIXED_EPOCH = 951825599   # 2000-02-29 11:59:59 UTC, as daytime.fixed_epoch


def udp(id: str, description: str, level: str, source: str, text: str, service: str, **kw):
    """A scenario of the group `udp`: its own server, started with --transport udp."""
    return scenario(f"udp.{id}", description, level, source, text, service=service, shared=False,
                    transport="udp", **kw)


def dgram(ctx: Context, address: tuple[str, int], label: str | None = None) -> DatagramClient:
    """A datagram client whose transcript goes into the cell's result, closed when the scenario ends."""
    c = DatagramClient(address, label=label or f"udp client {len(ctx.clients) + 1}", timeout=ANSWER)
    ctx.clients.append(c)   # type: ignore[arg-type] - the same transcript and close() as a Client
    return c


def answered(ctx: Context, c: DatagramClient, data: bytes, what: str, server: tuple[str, int]) -> bytes | None:
    """Send `data`, wait for one answer: a MUST that it comes, from the address it was sent to."""
    c.send(data)
    got = c.recv(ANSWER)
    ctx.check(got is not None, f"{what}: an answering datagram arrives within {ANSWER:g} s", "one datagram",
              "none" if got is None else f"{len(got[0])} bytes", basis=BASIS_RFC)
    if got is None:
        return None
    data_back, peer = got
    same = (peer[0], peer[1]) == (server[0], server[1]) or (
        peer[0].removeprefix("::ffff:") == server[0] and peer[1] == server[1])
    if not same:
        ctx.check(False, f"{what}: the answer comes from the address the datagram went to",
                  f"{server[0]}:{server[1]}", f"{peer[0]}:{peer[1]}", basis=BASIS_RFC)
    return data_back


def echoed(ctx: Context, c: DatagramClient, data: bytes, what: str, server: tuple[str, int]) -> bool:
    back = answered(ctx, c, data, what, server)
    if back is None:
        return False
    same = hashlib.sha256(back).hexdigest() == hashlib.sha256(data).hexdigest()
    return ctx.check(same, f"{what}: the answer holds exactly the datagram's data (SHA-256)",
                     f"{len(data)} bytes {hashlib.sha256(data).hexdigest()[:16]}",
                     f"{len(back)} bytes {hashlib.sha256(back).hexdigest()[:16]}", basis=BASIS_RFC)


# -- echo -----------------------------------------------------------------------------------------

@udp("echo_round_trip", "One datagram to echo over UDP comes back, whole, from the server's address.",
     MUST, "RFC 862", ECHO, service="echo", fingerprint=("echoed",))
def echo_round_trip(ctx: Context) -> None:
    srv = ctx.start_server()
    c = dgram(ctx, srv.address)
    ok = echoed(ctx, c, b"hello, datagram\r\n", "a 17-byte datagram", srv.address)
    ctx.observe("echoed", ok)


@udp("echo_all_bytes", "A datagram holding all 256 byte values comes back unchanged.",
     MUST, "RFC 862", ECHO, service="echo", fingerprint=("echoed",))
def echo_all_bytes(ctx: Context) -> None:
    srv = ctx.start_server()
    c = dgram(ctx, srv.address)
    ctx.observe("echoed", echoed(ctx, c, bytes(range(256)), "bytes 0..255", srv.address))


@udp("echo_sizes", "Datagrams of 0, 1, 1,472, 8,192 and 65,507 bytes each come back whole (SHA-256).",
     MUST, "RFC 862", ECHO + " docs/protocol.md: in full, up to the largest the socket takes (65,507 bytes "
     "over IPv4).", service="echo", fingerprint=("sizes",))
def echo_sizes(ctx: Context) -> None:
    srv = ctx.start_server()
    c = dgram(ctx, srv.address)
    good = []
    for size in SIZES:
        data = bytes((i * 7 + size) & 0xFF for i in range(size))
        if echoed(ctx, c, data, f"{size} bytes", srv.address):
            good.append(size)
    ctx.observe("sizes", good)


@udp("echo_interleaved", "Four clients' datagrams interleaved: each client is answered at its own address "
     "with its own data.", MUST, "RFC 862", ECHO + " The answer goes to the sender's address and port.",
     service="echo", fingerprint=("all_own",))
def echo_interleaved(ctx: Context) -> None:
    srv = ctx.start_server()
    clients = [dgram(ctx, srv.address, f"client {i + 1}") for i in range(4)]
    rounds, wrong, missing = 5, [], 0
    for r in range(rounds):
        for i, c in enumerate(clients):   # every client sends before any reads: the answers interleave
            c.send(f"client {i + 1} round {r + 1} from port {c.local[1]}".encode())
        for i, c in enumerate(clients):
            got = c.recv(ANSWER)
            want = f"client {i + 1} round {r + 1} from port {c.local[1]}".encode()
            if got is None:
                missing += 1
            elif got[0] != want:
                wrong.append(f"client {i + 1} got {got[0][:40]!r}")
    ctx.check(missing == 0, "every datagram of every client is answered", f"{rounds * len(clients)} answers",
              f"{rounds * len(clients) - missing} answers")
    ctx.check(not wrong, "each client receives its own data, at its own address and port", "its own",
              wrong[0] if wrong else "its own")
    ctx.observe("all_own", missing == 0 and not wrong)


@udp("echo_ipv6", "With --host ::1 the echo answers an IPv6 client at its address.", MUST, "RFC 862", ECHO,
     service="echo", chooses=("host",), fingerprint=("echoed",))
def echo_ipv6(ctx: Context) -> None:
    srv = ctx.start_server(host="::1")
    ctx.check(all(":" in l.host for l in srv.listening), "the server listens on ::1 only", "::1",
              ", ".join(l.host for l in srv.listening), basis=BASIS_CONTRACT)
    c = dgram(ctx, ("::1", srv.address[1]), "IPv6 client")
    ctx.observe("echoed", echoed(ctx, c, b"over IPv6\r\n" + bytes(range(200)), "an IPv6 datagram", ("::1", srv.address[1])))


@udp("echo_dual_stack", "With --host :: one dual-stack socket answers an IPv4 client (127.0.0.1) and an IPv6 "
     "client (::1).", MUST, "docs/protocol.md", "As for TCP: `::` is dual-stack unless --ipv6-only; one socket "
     "per address.", service="echo", chooses=("host",), fingerprint=("both",))
def echo_dual_stack(ctx: Context) -> None:
    srv = ctx.start_server(host="::")
    port = srv.address[1]
    v4 = dgram(ctx, ("127.0.0.1", port), "IPv4 client")
    v6 = dgram(ctx, ("::1", port), "IPv6 client")
    a = echoed(ctx, v4, b"IPv4 to the dual-stack socket", "IPv4", ("127.0.0.1", port))
    b = echoed(ctx, v6, b"IPv6 to the dual-stack socket", "IPv6", ("::1", port))
    ctx.observe("both", a and b)


@udp("echo_vanished_client", "Clients that send and close their socket at once (each answer meets an ICMP "
     "port unreachable, which Linux reports as ECONNREFUSED) are followed by a client that is still answered.",
     MUST, "docs/protocol.md", "ECONNREFUSED (an ICMP port unreachable for an earlier answer) is that "
     "datagram's problem, never the server's: no exit, other clients unaffected.", service="echo",
     fingerprint=("answered_after",))
def echo_vanished_client(ctx: Context) -> None:
    srv = ctx.start_server()
    for i in range(20):
        gone = DatagramClient(srv.address, label=f"vanishing {i + 1}")
        gone.send(b"answer me, though I will not be there" * 10)
        gone.close()
    time.sleep(0.1)   # let the answers meet their port unreachables before the next client
    c = dgram(ctx, srv.address, "the client after")
    ok = echoed(ctx, c, b"still there?", "the next client after 20 vanished ones", srv.address)
    ok = echoed(ctx, c, b"and again", "its second datagram", srv.address) and ok
    ctx.check(srv.alive(), "the server is still running", "running", srv.state(), basis=BASIS_RFC)
    ctx.observe("answered_after", ok)


@udp("echo_burst", f"{BURST:,} datagrams at most {BURST_RATE:,.0f}/s, {WINDOW} in flight at a time: none lost "
     "on loopback (the count is recorded).", MUST, "docs/protocol.md",
     "Echo answers each datagram; on loopback, at a moderate bounded rate, none is lost.",
     service="echo", fingerprint=("none_lost",), timeout=90)
def echo_burst(ctx: Context) -> None:
    srv = ctx.start_server()
    c = dgram(ctx, srv.address, "burst")
    sent = answered_ok = wrong = lost = 0
    outstanding: dict[bytes, float] = {}
    gap = 1.0 / BURST_RATE
    started = time.monotonic()
    next_send = started
    while answered_ok + wrong + lost < BURST:
        while sent < BURST and len(outstanding) < WINDOW:
            now = time.monotonic()
            if now < next_send:
                time.sleep(next_send - now)
            payload = b"burst %06d " % sent + b"x" * 48
            c.send(payload)
            outstanding[payload] = time.monotonic()
            sent += 1
            next_send = max(next_send + gap, time.monotonic() - 0.01)
        got = c.recv(ANSWER)
        if got is None:
            lost += len(outstanding)   # nothing came within ANSWER: the window's datagrams are lost
            outstanding.clear()
            continue
        if got[0] in outstanding:
            del outstanding[got[0]]
            answered_ok += 1
        else:
            wrong += 1
    elapsed = time.monotonic() - started
    ctx.figure("datagrams", sent, "", f"{WINDOW} in flight, at most {BURST_RATE:,.0f}/s")
    ctx.figure("answered", answered_ok, "")
    ctx.figure("lost", lost, "")
    ctx.figure("rate", sent / elapsed if elapsed else 0.0, "datagrams/s")
    ctx.check(lost == 0, "no datagram is lost on loopback", f"{BURST} answered", f"{answered_ok} answered, "
              f"{lost} lost", basis=BASIS_PROTOCOL)
    ctx.check(wrong == 0, "every answer is one of the datagrams sent", "0 others", f"{wrong} others",
              basis=BASIS_RFC)
    ctx.observe("none_lost", lost == 0 and wrong == 0)


FLOOD = 5000   # datagrams one client sends as fast as it can, never reading


@udp("echo_flood_other_client", f"One client floods echo with {FLOOD:,} datagrams it never reads; another client, "
     "retrying every 0.1 s as a UDP client must, is answered within 3 s, and again once the flood is over.",
     MUST, "docs/protocol.md", "A flood from one source never stops the server or delays other clients beyond "
     "what the shared socket buffer holds; what the kernel drops is the network's loss, not the server's.",
     service="echo", fingerprint=("answered",), timeout=60)
def echo_flood_other_client(ctx: Context) -> None:
    srv = ctx.start_server()
    flood = dgram(ctx, srv.address, "flooder")
    other = dgram(ctx, srv.address, "the other client")
    started = time.monotonic()
    for i in range(FLOOD):
        flood.send(b"flood %05d " % i + b"f" * 100)
    ctx.figure("flood sent in", time.monotonic() - started, "s", f"{FLOOD:,} datagrams of 111 bytes")
    started = time.monotonic()
    during = None
    deadline = time.monotonic() + 3.0
    tries = 0
    while during is None and time.monotonic() < deadline:
        tries += 1
        other.send(b"am I still served? %d" % tries)
        got = other.recv(0.1)
        while got is not None and not got[0].startswith(b"am I still served?"):
            got = other.recv(0.1)
        if got is not None:
            during = time.monotonic() - started
    ctx.check(during is not None, "the other client is answered within 3 s of the flood's end", "answered",
              "no answer in 3 s" if during is None else f"after {during:.3f} s, {tries} tries")
    if during is not None:
        ctx.figure("other client answered after", during, "s", f"from the flood's end; {tries} tries, 0.1 s apart")
    flood.close()
    ok = echoed(ctx, other, b"after the flood", "the other client once the flood is over", srv.address)
    ctx.observe("answered", during is not None and ok)


# -- discard, chargen, daytime --------------------------------------------------------------------

@udp("discard_silent", f"Datagrams to discard over UDP get no answer within {QUIET:g} s.", MUST, "RFC 863",
     DISCARD, service="discard", fingerprint=("silent",))
def discard_silent(ctx: Context) -> None:
    srv = ctx.start_server()
    c = dgram(ctx, srv.address)
    for data in (b"", b"thrown away\r\n", bytes(range(256)) * 4):
        c.send(data)
    got = c.quiet(QUIET)
    ctx.check(not got, f"nothing is sent back within {QUIET:g} s", "no datagram",
              f"{len(got)} datagram(s)" if got else "no datagram")
    ctx.observe("silent", not got)


@udp("chargen_answer", "Each datagram to chargen over UDP, whatever it holds, is answered with one datagram "
     f"of {P.DATAGRAM_CHARGEN_LINES} whole lines of the pattern from its first line ({len(CHARGEN_ANSWER)} bytes).",
     MUST, "RFC 864", CHARGEN + " docs/protocol.md: always 6 whole lines (72 characters + CR LF each, 444 "
     "bytes) from the pattern's first line: stateless.", service="chargen", fingerprint=("exact",))
def chargen_answer(ctx: Context) -> None:
    srv = ctx.start_server()
    c = dgram(ctx, srv.address)
    exact = True
    for i, data in enumerate((b"", b"x", b"\x00\xff" * 700, b"again")):
        back = answered(ctx, c, data, f"datagram {i + 1} ({len(data)} bytes)", srv.address)
        if back is None:
            exact = False
            continue
        ctx.check(len(back) <= 512, f"answer {i + 1} holds between 0 and 512 characters", "<= 512",
                  len(back), basis=BASIS_RFC)
        ok = back == CHARGEN_ANSWER
        ctx.check(ok, f"answer {i + 1} is the protocol's 6 lines from the pattern's first",
                  CHARGEN_ANSWER[:80], back[:80] if back[:80] != CHARGEN_ANSWER[:80] else f"{len(back)} bytes",
                  basis=BASIS_PROTOCOL)
        exact = exact and ok
    ctx.observe("exact", exact)


@udp("daytime_format", "Each datagram to daytime over UDP is answered with the daytime line, the current time.",
     MUST, "RFC 867", DAYTIME, service="daytime", fingerprint=("format",))
def daytime_format(ctx: Context) -> None:
    srv = ctx.start_server()
    c = dgram(ctx, srv.address)
    before = time.time()
    line = answered(ctx, c, b"what time is it?", "a datagram", srv.address)
    after = time.time()
    if line is None:
        ctx.observe("format", False)
        return
    ctx.check(bool(ASCII_LINE.match(line)), "the answer is one line of ASCII text", "one line", line,
              basis=BASIS_RFC)
    ok = bool(DAYTIME_LINE.match(line))
    ctx.check(ok, "the line has the protocol's format", "Weekday, Month DD, YYYY HH:MM:SS-UTC\\r\\n", line,
              basis=BASIS_PROTOCOL)
    stamp = daytime_epoch(line)
    if stamp is not None:
        ctx.check(before - 2 <= stamp <= after + 2, "the time is the current UTC time (within 2 s)",
                  time.strftime("%H:%M:%S", time.gmtime(before)), line, basis=BASIS_PROTOCOL)
    ctx.observe("format", ok)


@udp("daytime_fixed_epoch", f"With {P.DAYTIME_EPOCH_ENV}={FIXED_EPOCH} the answering datagram is exactly the "
     "expected line.", MUST, "docs/protocol.md", f"{P.DAYTIME_EPOCH_ENV}=<seconds> fixes the clock, over UDP "
     "as over TCP.", service="daytime", fingerprint=("received",))
def daytime_fixed_epoch(ctx: Context) -> None:
    srv = ctx.start_server(env={P.DAYTIME_EPOCH_ENV: str(FIXED_EPOCH)})
    c = dgram(ctx, srv.address)
    line = answered(ctx, c, b"", "an empty datagram", srv.address)
    want = daytime_line(FIXED_EPOCH)
    ctx.check(line == want, "the line is byte for byte the expected one", want, line or b"")
    ctx.observe("received", (line or b"").hex())


# -- stopping ---------------------------------------------------------------------------------------

@udp("stop_sigterm", "A UDP echo server that has answered stops on SIGTERM at once and exits 0.", MUST,
     "contract (docs/protocol.md)", "On SIGTERM or SIGINT the server stops reading, closes its sockets and "
     "exits 0, within the grace.", service="echo", fingerprint=("exit",))
def stop_sigterm(ctx: Context) -> None:
    srv = ctx.start_server()
    c = dgram(ctx, srv.address)
    echoed(ctx, c, b"before the stop", "a datagram before SIGTERM", srv.address)
    started = time.monotonic()
    srv.signal(signal.SIGTERM)
    code = srv.wait_exit(STOP_GRACE)
    took = time.monotonic() - started
    if code is None:
        srv.kill()
    ctx.check(code == P.EXIT_OK, f"the server exits 0 within {STOP_GRACE:g} s of SIGTERM", 0,
              srv.still_running(STOP_GRACE) if code is None else f"{code} after {took:.2f} s")
    ctx.observe("exit", code)


# -- start-up ---------------------------------------------------------------------------------------

STARTUP = ("If resolve, socket or bind fails: one line on stderr naming the step, the address and the OS error, "
           "then exit 1, as for TCP; a model or service --transport udp cannot serve is a usage error, exit 2.")


def _one_line(ctx: Context, proc, code: int | None, want_code: int, pattern: str, what: str) -> None:
    lines = [l for l in proc.stderr().splitlines() if l.strip()]
    ctx.check(code == want_code, f"exit status {want_code}", want_code, "still running" if code is None else code)
    if want_code == P.EXIT_FAILURE:
        ctx.check(len(lines) == 1, "exactly one line on stderr", 1, f"{len(lines)}: {lines[:3]}")
    last = lines[-1] if lines else ""
    ctx.check(re.fullmatch(pattern, last) is not None, what, pattern, last)
    ctx.observe("exit_code", code)


@udp("port_in_use", "A UDP port already bound: exit 1 with one line `bind ADDRESS: ... (EADDRINUSE)`.", MUST,
     "contract (docs/protocol.md)", STARTUP, service="echo", chooses=("port",), fingerprint=("exit_code",))
def port_in_use(ctx: Context) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as blocker:
        blocker.bind(("127.0.0.1", 0))
        port = blocker.getsockname()[1]
        proc = ctx.server_process(host="127.0.0.1", port=port)
        proc.spawn()
        code = proc.wait_exit(10.0)
    _one_line(ctx, proc, code, P.EXIT_FAILURE, rf"bind 127\.0\.0\.1:{port}: .+ \(EADDRINUSE\)",
              "the line names the step, the address and the error")


@udp("resolve_failure", "A host that does not resolve: exit 1 with one line `resolve HOST:PORT: ...`.", MUST,
     "contract (docs/protocol.md)", STARTUP, service="echo", chooses=("host",), fingerprint=("exit_code",))
def resolve_failure(ctx: Context) -> None:
    proc = ctx.server_process(host="nonexistent.invalid", port=0)
    proc.spawn()
    code = proc.wait_exit(15.0)
    _one_line(ctx, proc, code, P.EXIT_FAILURE, r"resolve nonexistent\.invalid:0: .+ \(EAI_[A-Z]+\)",
              "the line names the step, the address and getaddrinfo's error")


@udp("message_refused", "--transport udp --service message: a usage error, exit 2, in the contract's words.",
     MUST, "contract (docs/protocol.md)", STARTUP + " `" + P.DATAGRAM_NO_DATAGRAM_FORM + "`.", service="message",
     fingerprint=("exit_code",))
def message_refused(ctx: Context) -> None:
    proc = ctx.server_process(service="message")
    proc.spawn()
    code = proc.wait_exit(10.0)
    _one_line(ctx, proc, code, P.EXIT_USAGE, r".+: " + re.escape(P.DATAGRAM_NO_DATAGRAM_FORM),
              "the last line says message has no datagram form")


@udp("workers_refused", "--transport udp --workers 2: a usage error, exit 2, in the contract's words.", MUST,
     "contract (docs/protocol.md)", STARTUP + " More than one worker needs --transport tcp: `"
     + P.WORKERS_UDP_REFUSAL + "` (in a model that runs no event loop, the model's refusal comes first).",
     service="echo", needs=("workers",), fingerprint=("exit_code",))
def workers_refused(ctx: Context) -> None:
    proc = ctx.server_process(options={"workers": "2"})
    proc.spawn()
    code = proc.wait_exit(10.0)
    words = P.WORKERS_UDP_REFUSAL if ctx.model in P.WORKER_MODELS else P.WORKERS_REFUSAL % ctx.model
    _one_line(ctx, proc, code, P.EXIT_USAGE, r".+: " + re.escape(words), "the last line refuses the second worker")


# -- fuzz -------------------------------------------------------------------------------------------

# Sizes and contents: mostly small datagrams, some near the largest.
_datagrams = st.one_of(
    st.binary(max_size=1500),
    st.integers(min_value=1500, max_value=P.DATAGRAM_MAX_PAYLOAD).flatmap(
        lambda n: st.binary(min_size=n, max_size=n) if n <= 8192 else st.just(bytes([n & 0xFF]) * n)),
)


def _fuzz(ctx: Context) -> None:
    srv = ctx.start_server(env={P.DAYTIME_EPOCH_ENV: str(FIXED_EPOCH)})
    service = ctx.scenario.service
    c = dgram(ctx, srv.address, "fuzz")
    examples: list[int] = []
    want = {"chargen": CHARGEN_ANSWER, "daytime": daytime_line(FIXED_EPOCH)}

    @given(data=_datagrams)
    def run(data: bytes) -> None:
        examples.append(len(data))
        c.send(data)
        got = c.recv(ANSWER)
        assert got is not None, f"no answer to a {len(data)}-byte datagram within {ANSWER:g} s"
        expected = data if service == "echo" else want[service]
        assert got[0] == expected, (f"the answer to a {len(data)}-byte datagram is {len(got[0])} bytes "
                                    f"{got[0][:24]!r}, not the expected {len(expected)}")

    try:
        run()
    except Exception as e:  # noqa: BLE001 - an assertion or several
        first = e.exceptions[0] if isinstance(e, BaseExceptionGroup) else e
        ctx.check(False, "every generated datagram is answered exactly", "all examples pass",
                  f"{type(first).__name__}: {str(first).splitlines()[0] if str(first) else ''}")
        ctx.observe("passed", False)
    else:
        ctx.check(True, "every generated datagram is answered exactly")
        ctx.observe("passed", True)
    ctx.check(srv.alive(), "the server is still running after the examples", "running", srv.state(),
              basis=BASIS_RFC)
    ctx.figure("examples", len(examples), "", f"profile {settings._current_profile}; largest "
               f"{max(examples, default=0)} bytes")


for _service, _words in (("echo", ECHO), ("chargen", CHARGEN), ("daytime", DAYTIME)):
    udp(f"fuzz_{_service}", f"Hypothesis: generated datagrams (sizes to {P.DATAGRAM_MAX_PAYLOAD:,} bytes, any "
        f"contents) to {_service} over UDP; each is answered exactly and the server survives.", MUST,
        "docs/protocol.md", _words, service=_service, fingerprint=("passed",), timeout=120)(_fuzz)
