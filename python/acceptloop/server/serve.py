"""What the models share: waiting for clients, closing the listeners, the per-connection loop
(`serve_connection`), and the skeleton of the iterative, fork and threads models.

The skeleton is `PerConnectionModel.accept_loop` (wait → accept → reject over --max-conns →
hand off), as socketserver's `serve_forever`; a model is the class that overrides `hand_off`
(socketserver's `process_request`): serve the connection here and now (iterative), in a child
process (fork) or in a thread (threads). The event model has a loop of its own (loop_event.py).
"""
from __future__ import annotations

import math
import select
import socket
import time
from collections.abc import Callable

from acceptloop.contract import ServerConfig
from acceptloop.server.connection import Connection
from acceptloop.server.control import Control
from acceptloop.server.net import AcceptPause, accept_client, reject


def timeout_ms(seconds: float | None) -> int | None:
    """Return a poll timeout in whole milliseconds, rounded up (never 0 for a wait that is due
    later, so it never spins); None (wait forever) for None."""
    return None if seconds is None else max(0, math.ceil(seconds * 1000))


def wait_for_clients(listeners: list[socket.socket], control: Control, pause: AcceptPause) -> list[socket.socket]:
    """Block until a listener has a connection queued or a signal woke us (the wake-up descriptor is
    then drained); while the accept pause lasts, wait only for it to end. Return the ready listeners."""
    poller = select.poll()
    poller.register(control.wake_r, select.POLLIN)
    now = time.monotonic()
    if pause.active(now):
        timeout = pause.until - now
    else:
        timeout = None
        for listener in listeners:
            poller.register(listener, select.POLLIN)
    ready = {fd for fd, _ in poller.poll(timeout_ms(timeout))}
    if control.wake_r in ready:
        control.drain_wake()
    return [listener for listener in listeners if listener.fileno() in ready]


def close_listeners(listeners: list[socket.socket]) -> None:
    """Stop accepting: from now on a connect is refused. Closing one twice does nothing."""
    for listener in listeners:
        listener.close()


def serve_connection(conn: Connection, control: Control | None, on_stop: Callable[[], None] | None = None) -> None:
    """Drive one connection to its end: the loop of the iterative, fork and threads models.

    Polls the connection's socket for what it wants and the stop descriptor, with the
    connection's deadline as timeout. `control` is None in a forked child, which the parent
    stops with SIGTERM. Once a stop is seen the connection gets the grace deadline, and
    `on_stop` runs once (iterative: close the listeners at once, so new clients are refused
    while this one finishes).
    """
    poller = select.poll()
    watching_stop = False
    while not conn.closed:
        if control is not None and control.stopping:
            if on_stop is not None:
                on_stop()
                on_stop = None
            conn.stop_by = conn.stop_by or control.stop_deadline()
            if watching_stop:
                poller.unregister(control.stop_r)   # never drained: it would report forever
                watching_stop = False
        elif control is not None and not watching_stop:
            poller.register(control.stop_r, select.POLLIN)
            watching_stop = True
        mask = (select.POLLIN if conn.wants_read() else 0) | (select.POLLOUT if conn.wants_write() else 0)
        poller.register(conn.fd, mask)
        due = conn.deadline()
        events = poller.poll(timeout_ms(due - time.monotonic()) if due else None)
        now = time.monotonic()
        for fd, event in events:
            if fd != conn.fd:
                continue
            if event & (select.POLLIN | select.POLLHUP | select.POLLERR):
                conn.on_readable(now)
            if event & (select.POLLOUT | select.POLLERR) and conn.wants_write():
                conn.on_writable(now)
        conn.on_timer(now)


class PerConnectionModel:
    """The skeleton of the models that hand every connection away whole: `accept_loop`.

    A model overrides `hand_off`; one that serves several connections at once also says how
    many it serves (`open_connections`), and the fork model reaps after every wait (`after_wait`).
    """

    def __init__(self, listeners: list[socket.socket], config: ServerConfig, control: Control) -> None:
        self.listeners = listeners
        self.config = config
        self.control = control
        self.pause = AcceptPause()

    def accept_loop(self) -> None:
        """Until a stop: wait → accept → reject over --max-conns → hand off. Then close the listeners.

        Returns once stopping; what the model still serves then is the caller's to wait for.
        """
        while not self.control.stopping:
            ready = wait_for_clients(self.listeners, self.control, self.pause)
            self.after_wait()
            for listener in ready:
                if self.control.stopping:
                    break
                client = accept_client(listener, self.pause)
                if client is None:
                    continue
                sock, peer = client
                if self.open_connections() >= self.config.max_conns:
                    reject(sock)
                    continue
                self.hand_off(sock, peer)
        close_listeners(self.listeners)

    def open_connections(self) -> int:
        """Return how many connections the model serves now, counted against --max-conns.

        By default none: a model that serves one at a time has finished it before it accepts again."""
        return 0

    def after_wait(self) -> None:
        """Runs after every wait, whatever ended it (a listener, a signal, the accept pause)."""

    def hand_off(self, sock: socket.socket, peer: str) -> None:
        """Give the accepted connection (a non-blocking socket, TCP_NODELAY) away: serve it, or have it served."""
        raise NotImplementedError
