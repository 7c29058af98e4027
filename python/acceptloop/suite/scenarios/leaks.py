"""Leaks: a thousand short connections leave no descriptor and no zombie behind."""
from __future__ import annotations

import time

from acceptloop.suite.catalog import scenario
from acceptloop.suite.process import ServerProcess, wait_until
from acceptloop.suite.scenario import MUST, Context

CONNECTIONS = 1000


def _quiet(srv: ServerProcess, fds: int) -> bool:
    return srv.fd_count() <= fds and not srv.children()


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
    settled = wait_until(lambda: _quiet(srv, baseline), 10.0)
    fds = srv.fd_count()
    children = srv.children()
    zombies = [pid for pid, state in children if state == "Z"]
    ctx.check(fds <= baseline, "no descriptor is left behind", f"{baseline} open descriptors", f"{fds}")
    ctx.check(not zombies, "no zombie child is left behind", "none", f"{len(zombies)} zombies")
    ctx.check(settled, "every child has exited", "none left", f"{len(children)} children")
    ctx.figure("connections per second", round(CONNECTIONS / elapsed, 1), "conn/s", "closed loop, one at a time")
    ctx.observe("leaked_fds", max(0, fds - baseline))
    ctx.observe("zombies", len(zombies))
