"""Robustness at the edges of the machine: out of descriptors from the very first burst, too few
descriptors to start, no more processes or threads, descriptors past FD_SETSIZE.

Each case drives a fresh server into the limit, then checks it from both sides: what must fail
fails the way the contract says (one line, that connection closed), and everything else goes on
(the listener, the other clients, a clean stop).
"""
from __future__ import annotations

import re
import select
import socket
import struct
import time

from acceptloop import _protocol as P
from acceptloop.suite.catalog import scenario
from acceptloop.suite.client import Client, StepTimeout
from acceptloop.suite.confine import LimitUnavailable, ProcessLimit, descriptor_limit_preexec
from acceptloop.suite.process import ServerStartError, wait_until
from acceptloop.suite.scenario import AT_ONCE, BASIS_CONTRACT, MUST, Context, Starved
from acceptloop.suite.scenarios.probes import holder, limit_accepting, probe as probe_service, served

FM = "docs/failure-modes.md"
# "STEP WHERE: TEXT (ENAME)": the contract's one-line failure (docs/protocol.md, "Failure to start").
FAILURE_LINE = re.compile(r"\S+ .*: .+ \((E[A-Z0-9_]+|EAI_[A-Z]+)\)")


def _echo_each(ctx: Context, clients: list[Client], payload: bytes, timeout: float) -> int:
    """Every client gets its echo and leaves, each as soon as the server answers it; how many did.
    Not in the order they connected: with several listeners (SO_REUSEPORT workers) the kernel
    spreads the clients over several accept queues, so no order of acceptance is promised, and a
    client served later may hold the descriptor an earlier one waits for. A check fails when none
    of those left is answered within `timeout`, or when one is answered wrongly."""
    waiting = list(clients)
    done = 0
    while waiting:
        gone = [c for c in waiting if c.sock is None]
        ready = ([] if gone else
                 select.select([c.sock for c in waiting], [], [], timeout)[0])
        if not gone and not ready:
            ctx.check(False, f"{waiting[0].transcript.label} is served once descriptors are free", payload,
                      f"nothing received for {timeout:g} s by any of the {len(waiting)} clients still waiting")
            return done
        for c in gone or [c for c in waiting if c.sock in ready]:
            try:
                got = c.recv_exactly(len(payload), timeout=timeout)
            except (StepTimeout, OSError) as e:
                ctx.check(False, f"{c.transcript.label} is served once descriptors are free", payload, f"{e}")
                return done
            if not ctx.check(got == payload, f"{c.transcript.label} is served once descriptors are free",
                             payload, got):
                return done
            c.shutdown_write()
            c.recv_until_end(timeout=timeout)
            c.close()
            waiting.remove(c)
            done += 1
    return done


@scenario("robustness.cold_exhaustion", "Out of descriptors from the very first traffic: a burst larger than the "
          "descriptor limit, one client resetting in the middle of it; then slots free up and every client is served.",
          MUST, FM, "Running out of descriptors (EMFILE in accept) never busy-loops and never kills the listener, "
          "even when it happens before the server has served anyone; service resumes once descriptors are free.",
          service="echo", shared=False, timeout=60)
def cold_exhaustion(ctx: Context) -> None:
    slots = 6
    if ctx.descriptors_unseen("a descriptor limit on the server process"):
        return
    srv = ctx.start_server()
    _limits, fill = limit_accepting(srv, slots)   # no warm-up client: the burst is the first traffic
    payload = b"cold\r\n"
    clients = [ctx.connect(srv.address, label=f"burst {i + 1}") for i in range(fill + 6)]
    for c in clients:
        c.send(payload)
    # One of the first clients resets while the server holds every slot it can.
    resetter = clients.pop(1)
    resetter.reset()
    cpu_before, t0 = srv.cpu_seconds(), time.monotonic()
    select.select([], [], [], 1.0)
    busy = (srv.cpu_seconds() - cpu_before) / (time.monotonic() - t0) * 100
    ctx.figure("server CPU while out of descriptors", round(busy, 1), "%", "over 1 s")
    ctx.check((state := srv.state()) == "running", "the server survives the burst", "running", state)
    ctx.check(busy < 20, "the server does not spin while connections wait (CPU under 20 % over 1 s)",
              "< 20 %", f"{busy:.1f} %")
    started = time.monotonic()
    served_count = _echo_each(ctx, clients, payload, timeout=10.0)
    ctx.figure("clients served after the burst", served_count, "", f"of {len(clients)}")
    ctx.figure("all served within", round(time.monotonic() - started, 2), "s")
    served(ctx, "echo", srv.address, what="a new client is served: the listener survived")


def _start_with_descriptors(ctx: Context, limit: int, wait: float) -> tuple[str, str]:
    """Start a server allowed `limit` descriptors; (outcome, detail) where outcome is "served"
    (READY, a client served within `wait` seconds, exit 0 on SIGTERM), "waits" (READY, the client
    still queued as under EMFILE, exit 0 on SIGTERM), "one line" (exit 1 with the contract's one
    line, before or after READY) or "broken"."""
    proc = ctx.server_process(preexec=descriptor_limit_preexec(limit))
    try:
        # A server of the contract prints READY or exits 1; one that prints nothing may neither
        # exit nor accept (inetd with 7 descriptors): what it does is shown, and 3 s show it.
        proc.start(timeout=10.0 if ctx.follows(BASIS_CONTRACT) else 3.0)
    except ServerStartError as e:
        code = e.exit_code if e.exit_code is not None else proc.wait_exit(5.0)
        lines = [line for line in proc.stderr().splitlines() if line.strip()]
        if code == P.EXIT_FAILURE and len(lines) == 1 and FAILURE_LINE.fullmatch(lines[0]):
            return "one line", lines[0]
        return "broken", f"exit {code}, stderr {lines[:3]}"
    # It says it is ready: then it serves, or keeps the client queued until a descriptor is
    # free (the accept pause), or fails as the contract says (an error it cannot survive).
    client = Client(proc.address, label=f"probe, {limit} descriptors", timeout=wait)
    ctx.clients.append(client)
    ok, _exact, observed = probe_service(client, "echo")
    waits = not ok and "nothing received" in observed and proc.alive()
    if not ok and not waits:
        proc.wait_exit(2.0)   # refused after READY: it may be exiting; a SIGTERM now would blur how
    code = proc.stop(5.0)
    lines = [line for line in proc.stderr().splitlines() if line.strip()]
    if code == P.EXIT_FAILURE and len(lines) == 1 and FAILURE_LINE.fullmatch(lines[0]):
        return "one line", f"after READY: {lines[0]}"
    if code == P.EXIT_OK and (ok or waits):
        return ("served", "READY, served, exit 0") if ok else ("waits", "READY, the client queued, exit 0")
    return "broken", f"READY, then {'' if ok else observed + ', '}exit {code}, stderr {lines[:3]}"


@scenario("robustness.descriptor_limit_at_start", "Started with too few descriptors for its listeners and its wake-up "
          "descriptors (every limit from 5 up to what it needs): one line naming the step and exit 1, or it serves.",
          MUST, "contract (docs/protocol.md)", "If resolve, socket, bind or listen fails (or the loop meets an error "
          "it cannot survive), the server prints one line on stderr naming the step, the address and the OS error, "
          "and exits 1. Never a traceback, never a PHP warning.", service="echo", shared=False, timeout=90,
          basis="contract")
def descriptor_limit_at_start(ctx: Context) -> None:
    # `needs`: what the server holds while it serves no one, after it has served a first client
    # (stdio, listeners, wake-up descriptors, the poller). From the limit 5 (stdio, and two for
    # the runtime to load itself) up to `needs`, every start must end as the contract allows: one
    # line and exit 1, or READY and then served or, with no descriptor left for the client, the
    # client kept queued as under EMFILE. One more than `needs`, and the client is served.
    if ctx.descriptors_unseen("a descriptor limit on the server process at start"):
        return      # (under Wine the limit stops the Wine loader itself, before the program runs)
    normal = ctx.start_server()
    at_ready = normal.fd_count()
    served(ctx, "echo", normal.address, what="with no limit, a client is served")
    wait_until(lambda: normal.fd_count() <= at_ready + 1, 3.0)   # + 1: a poller made after READY
    needs = max(at_ready, normal.fd_count())
    normal.stop()
    outcomes = {}
    for limit in range(5, needs + 2):
        outcome, detail = _start_with_descriptors(ctx, limit, wait=10.0 if limit > needs else 1.0)
        outcomes[limit] = outcome
        ctx.check(outcome != "broken", f"with {limit} descriptors: one line and exit 1, or READY and served "
                  "(or the client kept queued)", "one line `STEP WHERE: TEXT (ENAME)`, exit 1; or READY", detail)
    ctx.check(outcomes[needs + 1] == "served", f"with {needs + 1} descriptors (one more than it holds when ready) "
              "it serves", "served", outcomes[needs + 1])
    first = min((limit for limit, o in outcomes.items() if o == "served"), default=None)
    ctx.figure("fewest descriptors it serves with", first if first is not None else 0, "",
               f"{needs} held when ready")


@scenario("robustness.process_limit", "The kernel refuses new processes and threads (a pids cgroup, or RLIMIT_NPROC): "
          "connections it cannot hand off are closed with one log line each; the others are served; exit 0 on SIGTERM.",
          MUST, "contract (docs/protocol.md)", "A connection's failure is that connection's problem: the loop logs "
          "it and goes on. When fork or a new thread fails, that connection is closed and the server keeps serving.",
          service="echo", shared=False, timeout=60, basis="contract")
def process_limit(ctx: Context) -> None:
    # The contract's, not the RFC's: a limit the machine puts on processes is not a client's doing,
    # and a server that leaves surviving it to a supervisor (socat exits when fork fails) breaks no
    # RFC. What it does is still shown.
    if ctx.model not in ("fork", "threads"):
        ctx.info(f"{ctx.model}: the server starts no process or thread per connection")
        return
    srv = ctx.start_server()
    payload = b"nproc\r\n"
    clients: list[Client] = []
    try:
        limit = ProcessLimit(srv.pid, extra=2).__enter__()
    except LimitUnavailable as e:
        ctx.info(f"cannot limit the server's processes here: {e}")
        return
    try:
        ctx.note(f"limited by {limit.how}")
        clients = [ctx.connect(srv.address, label=f"client {i + 1}") for i in range(8)]
        for c in clients:
            c.send(payload)
        answered, closed, waiting, refused = 0, 0, [], 0
        for c in clients:
            if c.refused:          # the listener is gone: the server died, seen just below
                refused += 1
                continue
            # Served by a child or a thread, or closed at once: whoever holds the connection (the
            # server itself while it is queued) must run for that, which a busy machine can delay.
            watch = Starved(ctx, [holder(c, srv.tree()) or srv.pid], srv.cpu_seconds)
            watch.step()
            try:
                got = c.recv_exactly(len(payload), timeout=AT_ONCE)
            except StepTimeout:
                watch.missed(AT_ONCE)
                waiting.append(c)
                continue
            if got == payload:
                answered += 1
            elif got == b"" and c.transcript.end in ("FIN", "RST"):
                closed += 1
            else:
                ctx.check(False, f"{c.transcript.label} gets its echo or is closed", payload, got)
        ctx.figure("closed for want of a process or thread", closed, "", f"of {len(clients)}; {answered} served")
        ctx.check((state := srv.state()) == "running", "the server survives the refused forks and threads", "running", state)
        ctx.check(closed > 0, "the connections it could not hand off are closed at once, not left hanging",
                  "some closed", f"{closed} closed, {answered} served, {len(waiting)} neither")
        ctx.check(answered > 0, "the connections it could hand off are served", "some served", answered)
        ctx.check(not waiting, "no connection is left hanging", "none", len(waiting))
        ctx.check(not refused, "no client is refused: the listener is still there", "none", refused)
        logged = [line for line in srv.stderr().splitlines() if line.strip()]
        ctx.check(len(logged) >= closed, "one line on stderr for each connection it could not hand off",
                  f">= {closed} lines", f"{len(logged)}: {logged[:2]}", basis=BASIS_CONTRACT)
    finally:
        limit.__exit__()
    for c in clients:
        c.close()
    wait_until(lambda: not srv.children(), 5.0)
    served(ctx, "echo", srv.address, what="once the limit is lifted, a new client is served", basis=BASIS_CONTRACT)


def _fill_to_fd_setsize(srv, processes: int, idle: list[socket.socket]) -> None:
    """Idle clients (into `idle`) until the server's busiest process holds descriptors up to 1023,
    the last one select() can watch (descriptors are handed out lowest first, so 1,024 open ones
    are 0 to 1023). One server process: one round, as it always was. Worker processes share the
    connections as the kernel spreads them: each round adds no more clients than the busiest one
    lacks, so that none goes past 1023 (an idle client past it would be closed by design), and
    waits until the server has taken them all."""
    if processes == 1:
        for _ in range(1024 - srv.busiest_fd_count()):
            idle.append(socket.create_connection(srv.address, timeout=10))
        wait_until(lambda: srv.busiest_fd_count() >= 1024, 10.0)
        return
    for _ in range(64):
        gap, held = 1024 - srv.busiest_fd_count(), srv.fd_count()
        if gap <= 0:
            return
        for _ in range(gap):
            idle.append(socket.create_connection(srv.address, timeout=10))
        wait_until(lambda: srv.fd_count() >= held + gap, 10.0)


@scenario("robustness.fd_setsize_pending_errors", "Descriptors past FD_SETSIZE (1024) while a socket error is pending "
          "(a client floods echo without reading): the connection at 1024 is served or closed at once, every other "
          "client is still served.", MUST, FM, "PHP socket_select with a descriptor >= FD_SETSIZE fails for every "
          "socket: a server must never let one such descriptor stall the others.", service="echo", shared=False,
          needs=("max-conns",), wants=("backlog",), timeout=120)
def fd_setsize_pending_errors(ctx: Context) -> None:
    if ctx.model in ("iterative", "fork"):
        ctx.info(f"{ctx.model}: the server process holds at most one client's descriptor at a time "
                 "(iterative serves one; the fork parent hands each to a child), so its descriptors never "
                 "reach FD_SETSIZE")
        return
    if ctx.descriptors_unseen("filling the server process's descriptors up to FD_SETSIZE"):
        return
    # Worker processes (--workers) each hold their own descriptors: the busiest must reach 1023,
    # and the kernel spreads the connections, so the server is let hold as many as that takes.
    processes = max(1, ctx.impl.worker_processes)
    srv = ctx.start_server(options={"max-conns": str(2000 * processes), "backlog": "2048"})
    flooder = ctx.connect(srv.address, label="floods without reading", keep=False)
    sock = flooder.need_socket()
    sock.setblocking(False)
    chunk, flooded = b"f" * (1 << 16), 0
    while flooded < 16 << 20:                # until the server stops taking it (backpressure, EAGAIN)
        if not select.select([], [sock], [], 0.5)[1]:
            break
        try:
            flooded += sock.send(chunk)
        except BlockingIOError:
            continue
    ctx.figure("flooded before the server stopped reading", round(flooded / (1 << 20), 2), "MiB")
    idle: list[socket.socket] = []
    try:
        _fill_to_fd_setsize(srv, processes, idle)
        if not ctx.check(srv.busiest_fd_count() >= 1024, "the server's descriptors reach 1023", ">= 1024 open",
                         srv.busiest_fd_count()):
            return      # it never holds what the case needs: nothing past here could be seen
        extra = ctx.connect(srv.address, label="descriptor 1024")
        extra.send(b"past FD_SETSIZE\r\n")
        try:
            got = extra.recv_exactly(17, timeout=AT_ONCE)
        except StepTimeout:
            got = None
        ctx.check(got is not None and (got == b"past FD_SETSIZE\r\n" or extra.transcript.end in ("FIN", "RST")),
                  "the connection past FD_SETSIZE is served or closed at once", f"its echo, or closed within {AT_ONCE:g} s",
                  f"nothing within {AT_ONCE:g} s" if got is None else f"{got!r}, {extra.transcript.end}")
        ctx.check((state := srv.state()) == "running", "the server is still running", "running", state)
        for label, s in (("the first idle client", idle[0]), ("the last idle client", idle[-1])):
            s.settimeout(5.0)
            try:
                s.sendall(b"still here\r\n")
                back = b""
                while len(back) < 12:
                    part = s.recv(12 - len(back))
                    if not part:
                        break
                    back += part
            except OSError as e:
                back = f"{type(e).__name__}: {e}".encode()
            ctx.check(back == b"still here\r\n", f"{label} is still served", b"still here\r\n", back)
    finally:
        for s in idle:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
    flooder.reset()
    served(ctx, "echo", srv.address)
