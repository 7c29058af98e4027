"""The Python port's event model, driven step by step in this process (no server started)."""
from __future__ import annotations

import os
import select
import socket
import time

from acceptloop.contract import ServerConfig
from acceptloop.server.connection import READ
from acceptloop.server.control import Control
from acceptloop.server.loop_event import EventLoop


def _wait_readable(fd: int) -> None:
    readable, _, _ = select.select([fd], [], [], 5.0)
    assert readable, f"descriptor {fd} did not become readable within 5 s"


def test_a_closed_connection_is_out_of_the_selector_even_when_another_holder_keeps_its_socket():
    """selectors asks that a file be unregistered before it is closed. Closed first, the epoll_ctl
    DEL fails on the stale descriptor (EBADF, which selectors swallows), and epoll forgets the
    socket only once its last holder closes it: a forked child's copy, here a dup, keeps it there,
    and every wait then reports an end-of-file under a descriptor that names nothing."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    port = listener.getsockname()[1]
    config = ServerConfig("echo", "event", "127.0.0.1", port, backlog=8, grace=1.0, max_conns=8,
                          idle_timeout=0.0, ipv6_only=False, daytime_epoch=None)
    control = Control(config.grace)
    loop = EventLoop([listener], config, control)
    client = socket.create_connection(("127.0.0.1", port), timeout=5.0)
    watcher = select.epoll.fromfd(os.dup(loop.selector.fileno()))   # the loop's own epoll instance
    shared = -1
    try:
        _wait_readable(listener.fileno())
        loop.accept_batch(listener, READ, time.monotonic())
        (conn,) = loop.conns.values()
        shared = os.dup(conn.fd)
        client.shutdown(socket.SHUT_WR)   # the client's FIN: echo has nothing left and closes
        _wait_readable(conn.fd)
        loop.handle(conn, READ, time.monotonic())
        assert conn.closed and not loop.conns
        assert client.recv(16) == b"", "the server's FIN reached the client"
        assert watcher.poll(0) == [], "the loop's epoll still reports the closed connection"
    finally:
        if shared >= 0:
            os.close(shared)
        watcher.close()
        client.close()
        loop.selector.close()
        listener.close()
