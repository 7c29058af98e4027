"""The limits cases' helpers, against tiny servers made here that answer in a chosen order."""
from __future__ import annotations

import socket
import threading

import pytest

from acceptloop.suite.client import Client
from acceptloop.suite.registry import Implementation
from acceptloop.suite.scenario import MUST, Context, Scenario
from acceptloop.suite.scenarios.limits import _echo_each

PAYLOAD = b"cold\r\n"


def _context() -> Context:
    impl = Implementation(name="x", language="x", models=("event",), services=("echo",), command=("x",),
                          follows=frozenset({"rfc", "protocol", "contract"}))
    scenario = Scenario(id="robustness.t", description="", level=MUST, source="", text="", run=lambda c: None,
                        service="echo")
    return Context(scenario, impl, "event", None)


def _server(n: int, answer: str):
    """Accepts `n` clients, then answers them one at a time, the next only once the one before has
    closed: `last-first` from the last to connect back to the first (as two accept queues can),
    `never-first` all but the first, which is never answered."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []   # every accepted socket stays open until the test closes it

    def serve() -> None:
        conns = [listener.accept()[0] for _ in range(n)]
        held.extend(conns)
        order = conns[::-1] if answer == "last-first" else conns[1:]
        for conn in order:
            conn.sendall(conn.recv(64))
            while conn.recv(64):   # until the client's EOF: its slot is held until then
                pass
            conn.close()
        listener.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener.getsockname(), thread, held


def test_every_client_is_served_in_the_order_the_server_answers_not_the_order_they_connected():
    address, thread, _held = _server(3, "last-first")
    clients = [Client(address, label=f"burst {i + 1}", timeout=5.0) for i in range(3)]
    for c in clients:
        c.send(PAYLOAD)
    ctx = _context()
    assert _echo_each(ctx, clients, PAYLOAD, timeout=3.0) == 3
    assert all(check.ok for check in ctx.checks) and len(ctx.checks) == 3
    thread.join(5.0)


def test_a_client_the_server_never_answers_fails_the_check_once_the_others_are_served():
    address, thread, held = _server(3, "never-first")
    clients = [Client(address, label=f"burst {i + 1}", timeout=5.0) for i in range(3)]
    for c in clients:
        c.send(PAYLOAD)
    ctx = _context()
    assert _echo_each(ctx, clients, PAYLOAD, timeout=1.0) == 2
    failed = [check for check in ctx.checks if not check.ok]
    assert len(failed) == 1 and failed[0].what == "burst 1 is served once descriptors are free"
    assert "nothing received for 1 s by any of the 1 clients still waiting" in failed[0].observed
    clients[0].close()
    thread.join(5.0)
    for conn in held:
        conn.close()


@pytest.mark.parametrize("reply", [b"COLD\r\n", b""])
def test_a_wrong_echo_or_a_close_fails_the_check(reply):
    listener = socket.create_server(("127.0.0.1", 0))
    client = Client(listener.getsockname(), label="burst 1", timeout=5.0)
    conn = listener.accept()[0]
    client.send(PAYLOAD)
    conn.recv(64)
    if reply:
        conn.sendall(reply)
    conn.close()
    ctx = _context()
    assert _echo_each(ctx, [client], PAYLOAD, timeout=2.0) == 0
    assert [check.ok for check in ctx.checks] == [False]
    listener.close()
