"""Lifecycle: start-up, addresses, failures at start, signals and restarts, each with its own server."""
from __future__ import annotations

import random
import re
import signal
import socket
import time

from acceptloop import _protocol as P
from acceptloop.suite.catalog import scenario
from acceptloop.suite.client import connection_refused
from acceptloop.suite.process import ServerProcess, ServerStartError, free_port
from acceptloop.suite.scenario import BASIS_CONTRACT, CONTRACT, MUST, SHOULD, Context
from acceptloop.suite.scenarios.probes import echo_through_sigterm, served


def _needs_ready_line(ctx: Context) -> bool:
    if ctx.impl.ready != "line":
        ctx.info(f"{ctx.impl.name} prints no {P.ANNOUNCE_READY} line (registry: ready = {ctx.impl.ready})")
        return False
    return True


@scenario("lifecycle.ready_lines", "With port 0: a LISTENING line with a real port, then READY; the port serves.",
          MUST, CONTRACT, "Once listening, it prints `LISTENING <address> <port>` on stdout for each socket, then `READY`, and flushes.",
          service="echo", shared=False, fingerprint=("listening",))
def ready_lines(ctx: Context) -> None:
    if not _needs_ready_line(ctx):
        return
    srv = ctx.start_server(host="127.0.0.1", port=0)
    hosts = [(l.host, l.port) for l in srv.listening]
    ctx.check(len(hosts) == 1 and hosts[0][0] == "127.0.0.1", "one LISTENING line, for 127.0.0.1", "127.0.0.1", hosts)
    ctx.check(all(port > 0 for _, port in hosts), "the port printed is the one bound, not 0", "> 0", hosts)
    served(ctx, "echo", srv.address, what="the printed address serves", basis=BASIS_CONTRACT)
    ctx.observe("listening", [h for h, _ in hosts])


def _passive_addresses(host: str) -> list[str]:
    infos = socket.getaddrinfo(host, 0, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)
    return sorted({sockaddr[0] for *_, sockaddr in infos})


@scenario("lifecycle.localhost_families",
          "--host localhost: one listener per address getaddrinfo gives (127.0.0.1 and ::1), on one port, each serving.",
          MUST, CONTRACT, "The server listens on every address it returns, one socket each: `localhost` gives 127.0.0.1 and ::1. "
          "With port 0, the first socket's port is reused for the rest.",
          service="echo", shared=False, fingerprint=("addresses",), chooses=("host",))
def localhost_families(ctx: Context) -> None:
    if not _needs_ready_line(ctx):
        return
    expected = _passive_addresses("localhost")
    srv = ctx.start_server(host="localhost", port=0)
    got = sorted(l.host for l in srv.listening)
    ctx.check(got == expected, "a listener for each address of localhost", expected, got)
    ports = {l.port for l in srv.listening}
    ctx.check(len(ports) == 1, "all listeners share the first one's port", "one port", sorted(ports))
    for l in srv.listening:
        served(ctx, "echo", (l.host, l.port), what=f"{l.host} serves", basis=BASIS_CONTRACT)
    if len(expected) < 2:
        ctx.note(f"this machine's resolver gives localhost only {expected}; "
                 "add `::1 localhost` to /etc/hosts to test both families")
    ctx.observe("addresses", got)


@scenario("lifecycle.dual_stack", "--host ::  is dual-stack: clients on 127.0.0.1 and on ::1 are both served.",
          MUST, CONTRACT, "`::` is dual-stack unless `--ipv6-only` is given.",
          service="echo", shared=False, fingerprint=("served",), chooses=("host",))
def dual_stack(ctx: Context) -> None:
    srv = ctx.start_server(host="::", port=0)
    port = srv.address[1]
    a = served(ctx, "echo", ("127.0.0.1", port), what="an IPv4 client is served", basis=BASIS_CONTRACT)
    b = served(ctx, "echo", ("::1", port), what="an IPv6 client is served", basis=BASIS_CONTRACT)
    ctx.observe("served", [a, b])


@scenario("lifecycle.ipv6_only", "--host :: --ipv6-only: ::1 is served, 127.0.0.1 is refused.",
          MUST, CONTRACT, "`::` is dual-stack unless `--ipv6-only` is given.",
          service="echo", shared=False, needs=("ipv6-only",), fingerprint=("refused",), chooses=("host", "port"))
def ipv6_only(ctx: Context) -> None:
    # The suite holds the IPv4 side of the port itself, bound but not listening: no other
    # process can listen there meanwhile, an IPv6-only listener binds beside it, and a
    # dual-stack one cannot bind at all.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
        try:
            ctx.start_server(host="::", port=port, options={"ipv6-only": None})
        except ServerStartError as e:
            ctx.check(False, "listens on :: beside an IPv4 socket on the same port", "listening", str(e))
            ctx.observe("refused", False)
            return
        served(ctx, "echo", ("::1", port), what="an IPv6 client is served", basis=BASIS_CONTRACT)
        refused = connection_refused(("127.0.0.1", port))
    ctx.check(refused, "an IPv4 client is refused", "refused", "refused" if refused else "accepted")
    ctx.observe("refused", refused)


def _one_line(ctx: Context, proc: ServerProcess, code: int | None, want_code: int, pattern: str,
              what: str, pattern_level: str = MUST) -> None:
    lines = [l for l in proc.stderr().splitlines() if l.strip()]
    ctx.check(code == want_code, f"exit status {want_code}", want_code, "still running" if code is None else code)
    ctx.check(len(lines) == 1, "exactly one line on stderr", 1, f"{len(lines)}: {lines[:3]}")
    if lines:
        ctx.check(re.fullmatch(pattern, lines[0]) is not None, what, pattern, lines[0], level=pattern_level)
    ctx.observe("exit_code", code)


@scenario("lifecycle.port_in_use", "A port already listened on: exit 1 with one line `bind ADDRESS: ... (EADDRINUSE)`.",
          MUST, CONTRACT, "If resolve, socket, bind or listen fails: one line on stderr naming the step, the address and "
          "the OS error, e.g. `bind 127.0.0.1:7: Permission denied (EACCES)`, then exit 1. Never a traceback.",
          service="echo", shared=False, fingerprint=("exit_code",), chooses=("port",))
def port_in_use(ctx: Context) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        proc = ctx.server_process(host="127.0.0.1", port=port)
        proc.spawn()
        code = proc.wait_exit(10.0)
    _one_line(ctx, proc, code, P.EXIT_FAILURE, rf"bind 127\.0\.0\.1:{port}: .+ \(EADDRINUSE\)",
              "the line names the step, the address and the error")


@scenario("lifecycle.resolve_failure", "A host that does not resolve: exit 1 with one line `resolve HOST:PORT: ...`.",
          MUST, CONTRACT, "If resolve, socket, bind or listen fails: one line on stderr naming the step, the address and "
          "the OS error, then exit 1.", service="echo", shared=False, fingerprint=("exit_code",), chooses=("host",))
def resolve_failure(ctx: Context) -> None:
    proc = ctx.server_process(host="nonexistent.invalid", port=0)
    proc.spawn()
    code = proc.wait_exit(15.0)
    _one_line(ctx, proc, code, P.EXIT_FAILURE, r"resolve nonexistent\.invalid:0: .+",
              "the line names the step and the address")
    lines = proc.stderr().strip().splitlines()
    ctx.check(bool(lines) and re.search(r"\(EAI_[A-Z]+\)$", lines[-1]) is not None,
              "the line ends with getaddrinfo's error name", "(EAI_NONAME)", lines[-1] if lines else "", level=SHOULD)


BAD_ARGUMENTS = {
    "an unknown option": ["--no-such-option"],
    "an unknown service": ["--service", "no-such-service"],
    "a port out of range": ["--port", "70000"],
    "a backlog that is not a number": ["--backlog", "many"],
    # The one grammar (protocol.toml [grammar]): what C's strtod or Python's int() would also take.
    "a hexadecimal grace (0x10)": ["--grace", "0x10"],
    "a backlog with a digit separator (1_000)": ["--backlog", "1_000"],
    "a grace in exponent form (1e3)": ["--grace", "1e3"],
    "a port with a leading space": ["--port", " 7"],
    "a port with a plus sign": ["--port", "+7"],
    "an infinite grace": ["--grace", "inf"],
    "a grace that is not a number (nan)": ["--grace", "nan"],
    "a negative idle timeout": ["--idle-timeout", "-1"],
    "a grace just past its maximum": ["--grace", "3600.5"],
    "no connections at all (--max-conns 0)": ["--max-conns", "0"],
    "a host longer than 1024 bytes": ["--host", "h" * 1025],
}


@scenario("lifecycle.bad_arguments", "Unknown options, services, out-of-range ports, non-numbers: usage on stderr, exit 2.",
          MUST, CONTRACT, "Bad or unknown arguments: usage on stderr, exit 2.",
          service="echo", shared=False, fingerprint=("exit_codes",))
def bad_arguments(ctx: Context) -> None:
    codes = {}
    for what, extra in BAD_ARGUMENTS.items():
        argv = ctx.impl.argv("echo", ctx.model, "127.0.0.1", 0) + extra
        proc = ctx.server_process(argv=argv)
        proc.spawn()
        code = proc.wait_exit(10.0)
        codes[what] = code
        stderr = proc.stderr()
        ctx.check(code == P.EXIT_USAGE, f"{what}: exit status {P.EXIT_USAGE}", P.EXIT_USAGE,
                  "still running" if code is None else code)
        ctx.check("usage" in stderr.lower(), f"{what}: usage on stderr", "usage: ...", stderr.strip()[:200] or "nothing")
    ctx.observe("exit_codes", codes)


EDGE_ARGUMENTS = {
    "--grace 0": {"grace": "0"},
    "--grace .5 and --idle-timeout 0.25": {"grace": ".5", "idle-timeout": "0.25"},
    "--grace 3600 (its maximum)": {"grace": "3600"},
    "--backlog 1 and --max-conns 1": {"backlog": "1", "max-conns": "1"},
    "--idle-timeout 0 (never)": {"idle-timeout": "0"},
    "leading zeros: --backlog 0128": {"backlog": "0128"},
}


@scenario("lifecycle.edge_arguments", "The smallest and largest values each option allows, and the grammar's other "
          "forms (.5, leading zeros): every one starts, serves and exits 0.",
          MUST, CONTRACT, "Arguments: `--backlog N`, `--grace SECONDS`, `--max-conns N`, `--idle-timeout SECONDS` "
          "within their bounds, written as protocol.toml's grammar allows, are accepted.",
          service="echo", shared=False, needs=("backlog", "grace", "max-conns", "idle-timeout"),
          fingerprint=("started",))
def edge_arguments(ctx: Context) -> None:
    started = {}
    for what, options in EDGE_ARGUMENTS.items():
        try:
            srv = ctx.start_server(options=options)
        except ServerStartError as e:
            ctx.check(False, f"{what}: the server starts", "READY", f"{e} {e.stderr.strip()[-200:]}")
            started[what] = False
            continue
        started[what] = served(ctx, "echo", srv.address, what=f"{what}: a client is served", basis=BASIS_CONTRACT)
        ctx.check(srv.stop() == P.EXIT_OK, f"{what}: exit 0 on SIGTERM", 0, srv.exit_code)
    ctx.observe("started", started)


@scenario("lifecycle.sigint_idle", "SIGINT (Ctrl-C) to a server idle in accept: exit 0 within 1 s.",
          MUST, CONTRACT, "SIGTERM or SIGINT: stop accepting, close the listeners, let connections in progress finish "
          "(at most `--grace` seconds), exit 0.", service="echo", shared=False, fingerprint=("exit_code",))
def sigint_idle(ctx: Context) -> None:
    srv = ctx.start_server()
    started = time.monotonic()
    srv.signal(signal.SIGINT)
    code = srv.wait_exit(1.0)
    ctx.check(code == P.EXIT_OK, "exit status 0 within 1 s", 0, "still running after 1 s" if code is None else code)
    ctx.figure("exit after SIGINT", round(time.monotonic() - started, 3), "s")
    ctx.observe("exit_code", code)


@scenario("lifecycle.sigterm_idle_connection", "SIGTERM with an idle client connected, --grace 1: the client is let go at "
          "the grace deadline and the server exits 0.",
          MUST, CONTRACT, "let connections in progress finish (at most `--grace` seconds), exit 0.",
          service="echo", shared=False, needs=("grace",), fingerprint=("exit_code",))
def sigterm_idle_connection(ctx: Context) -> None:
    srv = ctx.start_server(options={"grace": "1"})
    c = ctx.connect(srv.address)
    c.send(b"ping\r\n")
    c.recv_exactly(6)              # the connection is being served, not just queued
    started = time.monotonic()
    srv.signal(signal.SIGTERM)
    code = srv.wait_exit(3.0)
    ctx.check(code == P.EXIT_OK, "exit status 0 once the grace is over", 0, "still running after 3 s" if code is None else code)
    c.recv_until_end(timeout=2.0)
    ctx.check(c.transcript.end in ("FIN", "RST"), "the idle client's connection is closed", "FIN or RST", c.transcript.end)
    ctx.figure("exit after SIGTERM", round(time.monotonic() - started, 3), "s", "grace 1 s")
    ctx.observe("exit_code", code)


@scenario("lifecycle.sigterm_busy", "SIGTERM during an 8 MiB echo: new connects are refused, the transfer completes, exit 0.",
          MUST, CONTRACT, "SIGTERM or SIGINT: stop accepting, close the listeners, let connections in progress finish "
          "(at most `--grace` seconds), exit 0.", service="echo", shared=False, needs=("grace",),
          fingerprint=("received_sha256", "exit_code", "refused"))
def sigterm_busy(ctx: Context) -> None:
    echo_through_sigterm(ctx, random.Random(15).randbytes(8 << 20), signal_after=1 << 20)


@scenario("lifecycle.restart_same_port", "Serve daytime on a fixed port, stop, start again at once on the same port.",
          MUST, CONTRACT, "an immediate restart on the same port succeeds", service="daytime", shared=False,
          fingerprint=("restarted",), chooses=("port",))
def restart_same_port(ctx: Context) -> None:
    port = free_port()
    first = ctx.start_server(port=port)
    for _ in range(10):
        served(ctx, "daytime", first.address, what="the first server serves daytime", basis=BASIS_CONTRACT)
    ctx.check(first.stop() == P.EXIT_OK, "the first server exits 0 on SIGTERM", 0, first.exit_code)
    try:
        second = ctx.start_server(port=port)
    except ServerStartError as e:
        ctx.check(False, "the second server starts on the same port", "READY", f"{e} {e.stderr.strip()[-200:]}")
        ctx.observe("restarted", False)
        return
    served(ctx, "daytime", second.address, what="the restarted server serves", basis=BASIS_CONTRACT)
    ctx.observe("restarted", True)
