"""Lifecycle: start-up, addresses, failures at start, signals and restarts, each with its own server."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from acceptloop import _protocol as P
from acceptloop.suite.catalog import scenario
from acceptloop.suite.client import connection_refused
from acceptloop.suite.process import ServerProcess, ServerStartError, free_port
from acceptloop.suite.scenario import AT_ONCE, BASIS_CONTRACT, CONTRACT, MUST, SHOULD, Context
from acceptloop.suite.scenarios.probes import echo_through_sigterm, payload, served


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
        ctx.note(f"this machine's resolver gives localhost only {expected}: lifecycle.every_address makes "
                 "a name with three addresses for the server itself")
    ctx.observe("addresses", got)


# lifecycle.every_address: a name the kit makes resolve to three addresses, for the server alone.
MULTI_NAME = "acceptloop-every-address.test"     # RFC 6761's .test: never a real name
MULTI_ADDRESSES = ("127.0.0.1", "127.0.0.2", "::1")
# Run the server in a mount namespace of its own in which a private hosts file is bind-mounted over
# /etc/hosts: the machine's resolver is left alone. `sh -c SCRIPT HOSTS ARGV...`.
IN_NAMESPACE = ["unshare", "--mount", "sh", "-c", 'mount --bind "$0" /etc/hosts && exec "$@"']
RESOLVE = ("import json, socket, sys; print(json.dumps(sorted({a[4][0] for a in socket.getaddrinfo(sys.argv[1], 0, "
           "socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)})))")


def _private_hosts(hosts: str) -> tuple[list[str] | None, str]:
    """What MULTI_NAME resolves to inside the namespace (getaddrinfo as the servers call it), or None
    and why the namespace cannot be set up here."""
    if shutil.which("unshare") is None:
        return None, "no unshare(1) on this machine"
    for address in MULTI_ADDRESSES:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        try:
            with socket.socket(family, socket.SOCK_STREAM) as s:
                s.bind((address, 0))
        except OSError as e:
            return None, f"this machine cannot bind {address}: {e.strerror or e}"
    try:
        done = subprocess.run(IN_NAMESPACE + [hosts, sys.executable, "-c", RESOLVE, MULTI_NAME],
                              capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, f"unshare --mount could not run: {e}"
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
        return None, f"a private /etc/hosts cannot be mounted here (unshare --mount, mount --bind; needs root): {why}"
    return json.loads(done.stdout), ""


@scenario("lifecycle.every_address", f"--host {MULTI_NAME}, a name that resolves to 127.0.0.1, 127.0.0.2 and ::1 "
          "(a private /etc/hosts in a mount namespace of the server's own): one listener per address, on one port, "
          "each serving.",
          MUST, CONTRACT, "`--host` is resolved with getaddrinfo(AI_PASSIVE). The server listens on every address it "
          "returns, one socket each. With port 0 the first socket's port is reused for the rest.",
          service="echo", shared=False, fingerprint=("addresses",), chooses=("host",))
def every_address(ctx: Context) -> None:
    # A resolver that gives localhost one address cannot tell a server that listens on the first
    # address only from one that listens on all: so the kit makes the case itself, a name with three
    # addresses in two families, seen by the server alone. Where that cannot be set up (not root, no
    # unshare, no 127.0.0.2), the case is INFO with the reason: never a pass.
    if not _needs_ready_line(ctx):
        return
    with tempfile.TemporaryDirectory(prefix="acceptloop-hosts-") as tmp:
        hosts = os.path.join(tmp, "hosts")
        with open(hosts, "w") as f:
            f.write("".join(f"{address} {MULTI_NAME}\n" for address in MULTI_ADDRESSES))
        os.chmod(tmp, 0o755)
        os.chmod(hosts, 0o644)
        expected, why = _private_hosts(hosts)
        if expected is None:
            ctx.info(why)
            return
        ctx.check(expected == sorted(MULTI_ADDRESSES), f"the namespace's resolver gives {MULTI_NAME} its three "
                  "addresses", sorted(MULTI_ADDRESSES), expected, basis="rfc")
        srv = ctx.start_server(host=MULTI_NAME, port=0, prefix=IN_NAMESPACE + [hosts])
        got = sorted(l.host for l in srv.listening)
        ctx.check(got == expected, "a LISTENING line, and a listener, for every address getaddrinfo gives",
                  expected, got)
        ports = {l.port for l in srv.listening}
        ctx.check(len(ports) == 1, "all listeners share the first one's port", "one port", sorted(ports))
        port = srv.listening[0].port
        for address in expected:
            served(ctx, "echo", (address, port), what=f"{address} serves", basis=BASIS_CONTRACT)
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
    # The error's name is the OS's: EADDRINUSE from errno, WSAEADDRINUSE from Winsock (c-winsock).
    _one_line(ctx, proc, code, P.EXIT_FAILURE, rf"bind 127\.0\.0\.1:{port}: .+ \((?:WSA)?EADDRINUSE\)",
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
        ctx.check(srv.stop() == P.EXIT_OK, f"{what}: exit 0 on SIGTERM", 0, srv.how_stopped())
    ctx.observe("started", started)


@scenario("lifecycle.sigint_idle", "SIGINT (Ctrl-C) to a server idle in accept: exit 0 within 1 s.",
          MUST, CONTRACT, "SIGTERM or SIGINT: stop accepting, close the listeners, let connections in progress finish "
          "(at most `--grace` seconds), exit 0.", service="echo", shared=False, fingerprint=("exit_code",))
def sigint_idle(ctx: Context) -> None:
    srv = ctx.start_server()
    started = time.monotonic()
    srv.signal(signal.SIGINT)
    code = ctx.exit_within(srv, 1.0)
    ctx.check(code == P.EXIT_OK, "exit status 0 within 1 s", 0,
              f"{srv.still_running(1.0)}; the server then: {ctx.missed_where}" if code is None else code)
    ctx.figure("exit after SIGINT", round(time.monotonic() - started, 3), "s")
    ctx.observe("exit_code", code)


# --grace's values, each on a server of its own, all stopped at the same moment: 0, a fraction, 1
# (by SIGINT), and the default (5 s) with a connection that finishes long before it.
GRACES = (("0", signal.SIGTERM), ("0.5", signal.SIGTERM), ("1", signal.SIGINT))
# A connection let go more than EARLY before its grace is up is let go too early: the server counts
# the grace from a moment after the kit's signal, so a correct one is never early at all, and 0.1 s
# is only for the clocks. LATE is generous instead: an event loop looks at its timers every
# timer_tick (0.25 s), a busy machine adds its own delay.
EARLY = 0.1
LATE = 1.0


def _time_end(c, timeout: float, ends: dict[str, float], started: float) -> None:
    """In a thread: wait for `c`'s end (FIN or RST), and note when, counted from `started`."""
    try:
        c.recv_until_end(timeout=timeout)
    except Exception:  # noqa: BLE001 - a timeout or a reset: the check reads the transcript
        return
    ends[c.transcript.label] = time.monotonic() - started


@scenario("lifecycle.sigterm_grace", "SIGTERM or SIGINT to servers with --grace 0, 0.5, 1 and the default, "
          "each holding a connection: new connects are refused at once while the connections go on; an idle "
          "client is let go at its grace (not before grace - 0.1 s, not after grace + 1 s); a connection that "
          "finishes first ends the stop at once; exit 0.",
          MUST, CONTRACT, "On SIGTERM or SIGINT the server stops accepting, closes its listeners (new connects "
          "are refused), lets connections in progress finish for at most `--grace` seconds, then exits 0.",
          service="echo", shared=False, needs=("grace",), fingerprint=("exit_codes",), timeout=30,
          chooses=("port",), exclusive=True)
def sigterm_grace(ctx: Context) -> None:
    configs = [{"options": {"grace": grace}} for grace, _ in GRACES] + [{}]
    *idle_servers, busy_server = ctx.start_servers(*configs)
    idle = []
    for (grace, _), srv in zip(GRACES, idle_servers):
        c = ctx.connect(srv.address, label=f"idle, --grace {grace}")
        c.send(b"ping\r\n")
        c.recv_exactly(6)           # being served, not just queued
        idle.append(c)
    busy = ctx.connect(busy_server.address, label="busy, default --grace")
    busy.send(b"ping\r\n")
    busy.recv_exactly(6)
    # The same moment for every server.
    started = time.monotonic()
    for (_, signum), srv in zip(GRACES, idle_servers):
        srv.signal(srv.graceful(signum))
    busy_server.signal(busy_server.graceful(signal.SIGTERM))
    ends: dict[str, float] = {}
    watchers = [threading.Thread(target=_time_end, args=(c, float(grace) + LATE + 1.0, ends, started), daemon=True)
                for (grace, _), c in zip(GRACES, idle)]
    for w in watchers:
        w.start()
    # New connects are refused at once, while every connection is still open and the busy one is
    # still being served: a round trip on it between looks.
    watched = {"default": busy_server, **{g: srv for (g, _), srv in zip(GRACES[1:], idle_servers[1:])}}
    refused: dict[str, float] = {}
    round_trips = 0
    while len(refused) < len(watched) and time.monotonic() - started < AT_ONCE:
        for grace, srv in watched.items():
            if grace not in refused and connection_refused(srv.address, 0.2):
                refused[grace] = time.monotonic() - started
        busy.send(b"still here\r\n")
        round_trips += busy.recv_exactly(12, timeout=AT_ONCE) == b"still here\r\n"
    for grace in watched:
        where = "the default --grace" if grace == "default" else f"--grace {grace}"
        ctx.check(grace in refused, f"{where}: new connects are refused within {AT_ONCE:g} s of the signal, "
                  "while a connection is still in progress", f"refused within {AT_ONCE:g} s",
                  f"refused after {refused[grace]:.3f} s" if grace in refused else f"still accepted after {AT_ONCE:g} s")
    busy.send(b"last\r\n")
    last = busy.recv_exactly(6, timeout=AT_ONCE)
    ctx.check(last == b"last\r\n" and round_trips > 0, "the connection in progress is still served after the signal",
              "its echo", f"{round_trips} round trips, then {last!r}")
    busy.shutdown_write()
    finished = time.monotonic()
    busy.recv_until_end(timeout=AT_ONCE)
    code = ctx.exit_within(busy_server, AT_ONCE)
    ctx.check(code == P.EXIT_OK, f"the default --grace: once its last connection has finished, the server exits 0 "
              f"within {AT_ONCE:g} s (it does not wait out the grace)", f"exit 0 within {AT_ONCE:g} s",
              busy_server.still_running(AT_ONCE) if code is None else f"exit {code}")
    ctx.figure("exit after the last connection finished", round(time.monotonic() - finished, 3), "s", "default --grace")
    codes = {"default": code}
    for w in watchers:
        w.join(float(GRACES[-1][0]) + LATE + 2.0)
    for (grace, signum), srv, c in zip(GRACES, idle_servers, idle):
        g = float(grace)
        low, high = max(0.0, g - EARLY), g + (AT_ONCE if g == 0 else LATE)
        took = ends.get(c.transcript.label)
        name = signal.Signals(signum).name
        ctx.check(took is not None and low <= took <= high and c.transcript.end in ("FIN", "RST"),
                  f"--grace {grace}, {name}: the idle client is let go at the grace, not before {low:g} s "
                  f"and not after {high:g} s", f"closed {low:g}..{high:g} s after {name}",
                  f"{c.transcript.end} after {took:.2f} s" if took is not None else f"{c.transcript.end}, not closed")
        code = srv.wait_exit(max(0.0, started + high + 0.5 - time.monotonic()))
        codes[grace] = code
        ctx.check(code == P.EXIT_OK, f"--grace {grace}, {name}: then exit 0", 0,
                  srv.still_running() if code is None else code)
        if took is not None:
            ctx.figure(f"idle client let go, --grace {grace}", round(took, 3), "s")
    ctx.observe("exit_codes", codes)


@scenario("lifecycle.sigterm_busy", "SIGTERM during an 8 MiB echo: new connects are refused, the transfer completes, exit 0.",
          MUST, CONTRACT, "SIGTERM or SIGINT: stop accepting, close the listeners, let connections in progress finish "
          "(at most `--grace` seconds), exit 0.", service="echo", shared=False, needs=("grace",),
          fingerprint=("received_sha256", "exit_code", "refused"))
def sigterm_busy(ctx: Context) -> None:
    echo_through_sigterm(ctx, payload(15, 8 << 20), signal_after=1 << 20)


@scenario("lifecycle.restart_same_port", "Serve daytime on a fixed port, stop, start again at once on the same port.",
          MUST, CONTRACT, "an immediate restart on the same port succeeds", service="daytime", shared=False,
          fingerprint=("restarted",), chooses=("port",))
def restart_same_port(ctx: Context) -> None:
    port = free_port()
    first = ctx.start_server(port=port)
    for _ in range(10):
        served(ctx, "daytime", first.address, what="the first server serves daytime", basis=BASIS_CONTRACT)
    ctx.check(first.stop() == P.EXIT_OK, "the first server exits 0 on SIGTERM", 0, first.how_stopped())
    try:
        second = ctx.start_server(port=port)
    except ServerStartError as e:
        ctx.check(False, "the second server starts on the same port", "READY", f"{e} {e.stderr.strip()[-200:]}")
        ctx.observe("restarted", False)
        return
    served(ctx, "daytime", second.address, what="the restarted server serves", basis=BASIS_CONTRACT)
    ctx.observe("restarted", True)
