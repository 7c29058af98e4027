"""Leaks: a thousand short connections, and a burst ended every way a connection can end, leave no
descriptor, zombie or thread behind."""
from __future__ import annotations

import os
import time
from typing import Callable

from acceptloop.suite.catalog import scenario
from acceptloop.suite.client import Client
from acceptloop.suite.process import ServerProcess, wait_until
from acceptloop.suite.scenario import MUST, SETTLE, Context
from acceptloop.suite.scenarios.probes import CHARGEN_LINE, served

CONNECTIONS = 1000


def _quiet(srv: ServerProcess, fds: int) -> bool:
    """No child left, and (where its descriptors are its sockets) no more descriptors than `fds`."""
    return (bool(srv.impl.sockets_not_descriptors) or srv.fd_count() <= fds) and not srv.children()


@scenario("leaks.sequential_connections",
          f"{CONNECTIONS:,} sequential daytime connections: the server's descriptors and children return to where they were.",
          MUST, "docs/protocol.md", "fork: children reaped, the parent closes its copy; no descriptor outlives its connection",
          service="daytime", shared=False, fingerprint=("leaked_fds", "zombies"), timeout=120, basis="rfc")
def sequential_connections(ctx: Context) -> None:
    srv = ctx.start_server()
    warm = ctx.connect(srv.address, label="warm-up")
    warm.recv_until_end()
    warm.close()
    wait_until(lambda: not srv.children(), 5.0)
    baseline = srv.fd_count()
    started = time.monotonic()
    for i in range(CONNECTIONS):
        c = ctx.connect(srv.address, label=f"connection {i + 1}")
        c.recv_until_end()
        c.close()
        if i < CONNECTIONS - 1:
            ctx.clients.pop()   # keep one transcript, not a thousand
    elapsed = time.monotonic() - started
    settled = ctx.server_within(srv, lambda: _quiet(srv, baseline), 10.0)
    fds = srv.fd_count()
    children = srv.children()
    zombies = [pid for pid, state in children if state == "Z"]
    ctx.check_descriptors(fds, baseline, "no descriptor is left behind", f"{baseline} open descriptors")
    ctx.check(not zombies, "no zombie child is left behind", "none", f"{len(zombies)} zombies")
    ctx.check(settled or not children, "every child has exited", "none left", f"{len(children)} children")
    ctx.figure("connections per second", round(CONNECTIONS / elapsed, 1), "conn/s", "closed loop, one at a time")
    ctx.observe("leaked_fds", 0 if ctx.impl.sockets_not_descriptors else max(0, fds - baseline))
    ctx.observe("zombies", len(zombies))


# leaks.every_ending: a burst of connections, each ended one of the ways a connection can end, at the
# same moment; then everything they held must be given back.
PER_ENDING = 8
RSS_PER_CONNECTION = 512 << 10   # bytes of the server's RSS one open connection may cost at most


def _threads(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return 0


def _echo_endings(ctx: Context, address) -> list[tuple[str, Callable[[], Client], Callable[[Client], None]]]:
    def opened() -> Client:
        c = ctx.connect(address)
        c.send(b"hello\r\n")
        c.recv_exactly(7)   # the step timeout: what this case checks is what the endings leave behind
        return c

    def orderly(c: Client) -> None:
        c.shutdown_write()
        c.recv_until_end()
        c.close()

    def flood_then_reset(c: Client) -> None:
        # Unread echo in both directions, then an RST: the server's next send or recv fails.
        sock = c.need_socket()
        sock.setblocking(False)
        try:
            for _ in range(16):
                sock.send(b"f" * 65536)
        except BlockingIOError:
            pass
        c.reset()

    return [("echo, orderly (FIN both ways)", opened, orderly),
            ("echo, reset by the client (recv error)", opened, Client.reset),
            ("echo, reset with echo in flight (send error)", opened, flood_then_reset)]


def _chargen_endings(ctx: Context, address):
    def opened() -> Client:
        c = ctx.connect(address)
        c.recv_exactly(10 * CHARGEN_LINE)
        return c

    return [("chargen, the client closes mid-stream (send error)", opened, Client.close),
            ("chargen, the client resets mid-stream (send error)", opened, Client.reset)]


def _daytime_endings(ctx: Context, address):
    def opened() -> Client:
        return ctx.connect(address)

    def read_then_close(c: Client) -> None:
        c.recv_until_end()
        c.close()

    return [("daytime, the server closes first", opened, read_then_close),
            ("daytime, reset before reading", opened, Client.reset)]


@scenario("leaks.every_ending", f"A burst of connections to echo, chargen and daytime ({PER_ENDING} for each way to "
          "end: orderly, reset, send and recv errors, the server closing first), all ended at once: the server's "
          "descriptors, children (no zombie) and threads return to where they were, its RSS per open connection "
          "stays bounded, and it serves on.",
          MUST, "docs/protocol.md", "A read or write error on a connection is that connection's problem: the "
          "connection is closed. fork: children reaped (waitpid(-1, WNOHANG) in a loop: one SIGCHLD can stand for "
          "several children); no descriptor outlives its connection.",
          service="echo", shared=False, fingerprint=("leaked_fds", "zombies"), timeout=60, basis="rfc",
          uses=("chargen", "daytime"), chooses=("port",))
def every_ending(ctx: Context) -> None:
    servers = dict(zip(("echo", "chargen", "daytime"), ctx.start_servers(
        {"service": "echo"}, {"service": "chargen"}, {"service": "daytime"})))
    before = {name: (srv.steady_tree_fd_count(), _threads(srv.pid), srv.rss_bytes()) for name, srv in servers.items()}
    endings = (_echo_endings(ctx, servers["echo"].address) + _chargen_endings(ctx, servers["chargen"].address)
               + _daytime_endings(ctx, servers["daytime"].address))
    if ctx.model == "iterative":
        # One client at a time: each is opened and ended in turn (the others would wait in the queue).
        for _what, open_, end in endings:
            for _ in range(PER_ENDING):
                end(open_())
        ctx.note("iterative: one connection at a time, so the burst is a sequence")
    else:
        opened = [(end, open_()) for _what, open_, end in endings for _ in range(PER_ENDING)]
        held = len(opened)
        for name, srv in servers.items():
            if ctx.model == "fork":
                continue   # the connections live in the children; the parent's pages are shared with them
            fds, _threads_before, rss = before[name]
            per = (srv.rss_bytes() - rss) / (held / 3)
            if ctx.model == "threads" and ctx.impl.thread_cost_why:
                # Its threads cost more than the bound allows on its host (its registry entry says
                # why): the figure is shown, not graded.
                ctx.note(f"{name}: RSS per open connection {per / 1024:.0f} KiB; not graded: "
                         f"{ctx.impl.thread_cost_why}")
                continue
            ctx.check(per <= RSS_PER_CONNECTION, f"{name}: RSS per open connection stays under "
                      f"{RSS_PER_CONNECTION >> 10} KiB", f"<= {RSS_PER_CONNECTION >> 10} KiB",
                      f"{per / 1024:.0f} KiB")
        for end, c in opened:      # all ended together: one SIGCHLD may stand for several children
            end(c)
    ended = time.monotonic()
    given_back: dict[str, float] = {}

    def settled() -> bool:
        for name, srv in servers.items():
            fds, threads, _rss = before[name]
            if name not in given_back and (ctx.impl.sockets_not_descriptors or srv.tree_fd_count() <= fds) \
                    and not srv.children() \
                    and _threads(srv.pid) <= threads:
                given_back[name] = time.monotonic() - ended
        return len(given_back) == len(servers)

    wait_until(settled, SETTLE)
    for name, srv in servers.items():
        fds, threads, _rss = before[name]
        children = srv.children()
        zombies = [pid for pid, state in children if state == "Z"]
        held = srv.tree_fd_count()   # read once: the check and what it shows are the same count
        ctx.check_descriptors(held, fds, f"{name}: every descriptor is given back within {SETTLE:g} s")
        ctx.check(not zombies, f"{name}: no zombie child is left after {SETTLE:g} s", "none",
                  f"{len(zombies)} zombies")
        ctx.check(not [pid for pid, state in children if state != "Z"], f"{name}: every child has exited",
                  "none left", f"{len(children) - len(zombies)} children")
        ctx.check(_threads(srv.pid) <= threads, f"{name}: every connection's thread has ended", f"<= {threads}",
                  _threads(srv.pid))
        ctx.observe(f"{name}_leaked_fds", 0 if ctx.impl.sockets_not_descriptors else max(0, held - fds))
        ctx.observe(f"{name}_zombies", len(zombies))
        if name in given_back:
            ctx.figure(f"{name}: given back within", round(given_back[name], 3), "s")
        served(ctx, name, srv.address, what=f"{name}: a new client is served afterwards")
    ctx.observe("leaked_fds", sum(v for k, v in ctx.observed.items() if k.endswith("_leaked_fds")))
    ctx.observe("zombies", sum(v for k, v in ctx.observed.items() if k.endswith("_zombies")))
