"""The event model: one thread and one selector (epoll on Linux) holding the wake-up descriptor,
the listeners and every connection.

Each registration's data is what to call when its descriptor is ready, a bound method of the
loop, called as `data(what, events, now)`: `on_wake` for the wake-up descriptor, `accept_batch`
for a listener, `handle` for a connection (registered as itself). Dispatching a readiness
report is that one call.
"""
from __future__ import annotations

import selectors
import socket
import time

from acceptloop import _protocol as P
from acceptloop.contract import ServerConfig
from acceptloop.server.connection import CLOSED, READ, WRITE, Connection
from acceptloop.server.control import Control
from acceptloop.server.net import AcceptPause, accept_client, reject
from acceptloop.server.serve import close_listeners


class OwnSlots:
    """--max-conns counted by one loop alone: the connections it holds (workers.py shares a count)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def take(self, held: int) -> bool:
        """Whether one more connection fits, `held` being this loop's; if so it is counted."""
        return held < self.limit

    def give(self) -> None:
        """A counted connection has ended."""


class EventLoop:
    """The selector and what it holds; `run` is the loop, each of its steps a method."""

    def __init__(self, listeners: list[socket.socket], config: ServerConfig, control: Control,
                 slots: OwnSlots | None = None) -> None:
        """Opens the selector (after READY: a failure here is the loop's, an OSError). `slots`
        counts the connections against --max-conns (by default this loop's own)."""
        self.listeners = listeners
        self.config = config
        self.control = control
        self.slots = slots if slots is not None else OwnSlots(config.max_conns)
        self.pause = AcceptPause()
        self.conns: dict[int, Connection] = {}
        self.registered: dict[int, int] = {}   # what the selector asks of each connection's descriptor
        self.accepting = False                 # the listeners are in the selector
        self.selector = selectors.DefaultSelector()
        self.selector.register(control.wake_r, READ, self.on_wake)

    def begin_stop(self) -> None:
        """Stop accepting: the listeners leave the selector and close; every connection gets the grace deadline."""
        self.set_accepting(False)
        close_listeners(self.listeners)
        self.listeners = []
        deadline = self.control.stop_deadline()
        for conn in self.conns.values():
            conn.stop_by = deadline

    def set_accepting(self, on: bool) -> None:
        """Put the listeners into the selector or take them out (the accept pause, the stop)."""
        if on == self.accepting:
            return
        for listener in self.listeners:
            if on:
                self.selector.register(listener, READ, self.accept_batch)
            else:
                self.selector.unregister(listener)
        self.accepting = on

    def accept_batch(self, listener: socket.socket, events: int, now: float) -> None:
        """Up to ACCEPT_BATCH connections from a listener that reported readiness; over --max-conns,
        each is rejected."""
        for _ in range(P.ACCEPT_BATCH):
            client = accept_client(listener, self.pause)
            if client is None:
                return
            sock, peer = client
            if not self.slots.take(len(self.conns)):
                reject(sock)
                continue
            conn = Connection(sock, peer, self.config, now, closing=self.unwatch)
            self.conns[conn.fd] = conn
            self.update(conn)

    def sweep_timers(self, now: float) -> None:
        """Every connection's timers, once a tick rather than per event."""
        for conn in list(self.conns.values()):
            conn.on_timer(now)
            self.update(conn)

    def on_wake(self, fd: int, events: int, now: float) -> None:
        """A signal woke the loop: empty the wake-up descriptor (the loop's top sees a stop)."""
        self.control.drain_wake()

    def handle(self, conn: Connection, events: int, now: float) -> None:
        """One connection's readiness report: read, write, then follow what it wants now."""
        if events & READ:
            conn.on_readable(now)
        if events & WRITE:
            conn.on_writable(now)
        self.update(conn)

    def unwatch(self, conn: Connection) -> None:
        """A connection is about to close its socket: the selector lets go of it first, as selectors
        asks. Closed first, the epoll_ctl DEL fails on the stale descriptor, and should any other
        process hold the socket, epoll keeps reporting it under a number that names nothing."""
        if self.registered.pop(conn.fd, None) is not None:   # else closed as it opened
            self.selector.unregister(conn)

    def update(self, conn: Connection) -> None:
        """Keep the selector asking for what the connection wants (only a change costs a modify),
        or forget the connection once it is closed (its close took it out of the selector)."""
        if conn.phase is CLOSED:
            if self.conns.get(conn.fd) is conn:   # not yet forgotten (its fd may be reused at once)
                del self.conns[conn.fd]
                self.slots.give()
            return
        mask = conn.interest() or READ   # always hear about errors
        if self.registered.get(conn.fd) != mask:
            if conn.fd in self.registered:
                self.selector.modify(conn, mask, self.handle)
            else:
                self.selector.register(conn, mask, self.handle)
            self.registered[conn.fd] = mask

    # step: loop event
    def run(self) -> None:
        """Until stopped and every connection has ended: poll, hand each readiness report to what
        its registration carries, and run the timers once a tick. Closes the selector."""
        next_tick = 0.0
        while True:
            now = time.monotonic()
            if self.control.stopping:
                if self.listeners:
                    self.begin_stop()
                if not self.conns:
                    break
            self.set_accepting(bool(self.listeners) and not self.pause.active(now))
            timeout = P.TIMER_TICK if self.conns else None
            if self.listeners and not self.accepting:
                timeout = min(timeout or P.ACCEPT_BACKOFF_MAX, max(0.0, self.pause.until - now))
            ready = self.selector.select(timeout)
            now = time.monotonic()
            for key, events in ready:
                key.data(key.fileobj, events, now)   # on_wake, accept_batch or handle
            now = time.monotonic()
            if now >= next_tick:
                next_tick = now + P.TIMER_TICK
                self.sweep_timers(now)
        self.selector.close()


def run_event(listeners: list[socket.socket], config: ServerConfig, control: Control,
              slots: OwnSlots | None = None) -> None:
    """Serve every connection from one thread until a stop; return once they have all ended.

    Raises OSError when the selector cannot be opened or fails: the loop cannot go on."""
    EventLoop(listeners, config, control, slots).run()
# end step
