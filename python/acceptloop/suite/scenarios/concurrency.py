"""Concurrency: fifty clients at once, all served together (or, iterative, one at a time in turn)."""
from __future__ import annotations

import selectors

from acceptloop.suite.catalog import scenario
from acceptloop.suite.client import StepTimeout
from acceptloop.suite.scenario import MUST, Context

CLIENTS = 50


@scenario("concurrency.fifty_clients",
          "50 clients connect and send at once: all are served together, or under iterative one at a time, in turn.",
          MUST, "docs/protocol.md",
          "fork, threads and event serve connections concurrently; iterative serves one client at a time",
          service="echo", fingerprint=("outcome",), basis="contract")
def fifty_clients(ctx: Context) -> None:
    clients = [ctx.connect(label=f"client {i + 1}") for i in range(CLIENTS)]
    messages = [f"client {i + 1} says hello\r\n".encode() for i in range(CLIENTS)]
    for c, m in zip(clients, messages):
        c.send(m)
    if ctx.model == "iterative":
        _one_at_a_time(ctx, clients, messages)
    else:
        _all_together(ctx, clients, messages)


def _all_together(ctx: Context, clients, messages) -> None:
    """Every client gets its echo while all fifty are still connected."""
    for c, m in zip(clients, messages):
        try:
            got = c.recv_exactly(len(m))
        except StepTimeout:
            got = b""
        if not ctx.check(got == m, f"{c.transcript.label} is served while all {CLIENTS} are connected", m, got):
            ctx.observe("outcome", "not all served together")
            return
    for c, m in zip(clients, messages):
        c.shutdown_write()
        c.recv_until_end()
        if not ctx.check(c.received == m and c.transcript.end == "FIN", f"{c.transcript.label} ends cleanly",
                         "its echo, then FIN", f"{c.received!r}, {c.transcript.end}"):
            return
    ctx.observe("outcome", "all served together")


def _one_at_a_time(ctx: Context, clients, messages) -> None:
    """Whenever a client has its echo, no other unfinished client has anything yet; each one, once
    served and closed, lets exactly one other in. All fifty are served in the end."""
    sel = selectors.DefaultSelector()
    for c in clients:
        sel.register(c.need_socket(), selectors.EVENT_READ, c)   # refused: ConnectionError, said in words
    served = 0
    order = []
    try:
        while served < CLIENTS:
            ready = [key.data for key, _ in sel.select(10.0)]
            if not ready:
                ctx.check(False, "the next client in the queue is served", f"{CLIENTS} served", f"{served} served")
                return
            if not ctx.check(len(ready) == 1, "only one client is being served at a time", "1 client with data",
                             ", ".join(c.transcript.label for c in ready)):
                return
            c = ready[0]
            sel.unregister(c.sock)
            i = clients.index(c)
            got = c.recv_exactly(len(messages[i]))
            if not ctx.check(got == messages[i], f"{c.transcript.label} gets its own echo", messages[i], got):
                return
            order.append(i)
            c.shutdown_write()
            c.recv_until_end()
            c.close()
            served += 1
    finally:
        sel.close()
    ctx.check(order == sorted(order), "the queue is served in the order the clients connected",
              "1, 2, 3, ...", ", ".join(str(i + 1) for i in order[:12]), level="SHOULD")
    ctx.observe("outcome", "served one at a time")
