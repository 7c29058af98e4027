"""The four concurrency models of the Python server, and the per-connection loop they share.

    run_iterative  one client at a time: accept, serve it to the end, accept again
    run_fork       a process per connection; the parent closes its copy and reaps
    run_threads    a thread per connection
    run_event      one thread: every listener and connection in one selector

All four stop the same way (see control.py): stop accepting, close the
listeners, give connections in progress `--grace` seconds, then return.
"""
from __future__ import annotations

import math
import os
import select
import selectors
import signal
import socket
import sys
import threading
import time
from typing import Callable, NoReturn

from acceptloop import _protocol as P
from acceptloop.contract import ServerConfig, describe_error
from acceptloop.server.connection import CLOSED, Connection
from acceptloop.server.control import Control
from acceptloop.server.net import AcceptPause, accept_client, log, reject


# The signals a fork must not let through to the child before it has reset their handlers.
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGCHLD}


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else max(0, math.ceil(seconds * 1000))


def wait_for_clients(listeners: list[socket.socket], control: Control, pause: AcceptPause) -> list[socket.socket]:
    """Block until a listener has a connection queued (or a signal woke us); return those listeners."""
    poller = select.poll()
    poller.register(control.wake_r, select.POLLIN)
    now = time.monotonic()
    if pause.paused(now):
        timeout = pause.until - now
    else:
        timeout = None
        for listener in listeners:
            poller.register(listener, select.POLLIN)
    ready = {fd for fd, _ in poller.poll(_ms(timeout))}
    if control.wake_r in ready:
        control.drain_wake()
    return [listener for listener in listeners if listener.fileno() in ready]


def close_listeners(listeners: list[socket.socket]) -> None:
    """Stop accepting: from now on a connect is refused."""
    for listener in listeners:
        listener.close()


def serve_connection(conn: Connection, control: Control | None, grace: float,
                     on_stop: Callable[[], None] | None = None) -> None:
    """Drive one connection to its end: the loop of the iterative, fork and threads models.

    `control` is None in a forked child, which the parent stops with SIGTERM.
    `on_stop` runs once when a stop is seen (iterative: close the listeners at once,
    so new clients are refused while this one finishes).
    """
    poller = select.poll()
    watching_stop = False
    while not conn.closed:
        if control is not None:
            if control.stopping:
                if on_stop is not None:
                    on_stop()
                    on_stop = None
                conn.stop_by = conn.stop_by or control.stopped_at + grace
                if watching_stop:
                    poller.unregister(control.stop_r)
                    watching_stop = False
            elif not watching_stop:
                poller.register(control.stop_r, select.POLLIN)
                watching_stop = True
        mask = (select.POLLIN if conn.wants_read() else 0) | (select.POLLOUT if conn.wants_write() else 0)
        poller.register(conn.fd, mask)
        due = conn.deadline()
        events = poller.poll(_ms(due - time.monotonic()) if due else None)
        now = time.monotonic()
        for fd, event in events:
            if fd != conn.fd:
                continue
            if event & (select.POLLIN | select.POLLHUP | select.POLLERR):
                conn.on_readable(now)
            if event & (select.POLLOUT | select.POLLERR) and conn.wants_write():
                conn.on_writable(now)
        conn.on_timer(now)


# step: loop iterative
def run_iterative(listeners: list[socket.socket], config: ServerConfig, control: Control) -> None:
    """The tutorials' loop, made correct: one client at a time, served to its end."""
    pause = AcceptPause()
    while not control.stopping:
        for listener in wait_for_clients(listeners, control, pause):
            client = accept_client(listener, pause)
            if client is not None:
                sock, peer = client
                serve_connection(Connection(sock, peer, config, time.monotonic()), control, config.grace,
                                 on_stop=lambda: close_listeners(listeners))
            if control.stopping:
                break
    close_listeners(listeners)
# end step


# step: loop fork
def run_fork(listeners: list[socket.socket], config: ServerConfig, control: Control) -> None:
    """A child process per connection. The parent closes its copy of the client's socket
    (else the client never sees EOF) and reaps children as SIGCHLD wakes it."""
    pause = AcceptPause()
    children: set[int] = set()
    while not control.stopping:
        ready = wait_for_clients(listeners, control, pause)
        reap_children(children)
        for listener in ready:
            client = accept_client(listener, pause)
            if client is None:
                continue
            sock, peer = client
            if len(children) >= config.max_conns:
                reject(sock)
                continue
            # The stop signals wait while fork runs: one landing in the child before it has reset
            # its handlers would run the parent's handler there (and be lost), leaving a child
            # that ignores the stop. The child unblocks them once its own dispositions are set.
            saved = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
            try:
                pid = os.fork()
            except OSError as e:
                signal.pthread_sigmask(signal.SIG_SETMASK, saved)
                log(f"fork {peer}: {describe_error(e)}")
                sock.close()
                continue
            if pid == 0:
                serve_in_child(sock, peer, listeners, config, control, saved)
            signal.pthread_sigmask(signal.SIG_SETMASK, saved)
            children.add(pid)
            sock.close()
    close_listeners(listeners)
    stop_children(children, control, control.stopped_at + config.grace)
# end step


def serve_in_child(sock: socket.socket, peer: str, listeners: list[socket.socket],
                   config: ServerConfig, control: Control, mask: set[signal.Signals]) -> NoReturn:
    """The child's whole life: serve one connection, then _exit (never return into the parent's loop).

    `mask` is the signal mask to restore once the child's own dispositions are in place; a stop
    signal that arrived meanwhile is delivered then, to the default action."""
    status = P.EXIT_OK
    try:
        control.forget_in_child()
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        close_listeners(listeners)
        serve_connection(Connection(sock, peer, config, time.monotonic()), None, config.grace)
    except BaseException as e:  # noqa: BLE001 - a child must never unwind into the parent's code
        log(f"child {peer}: {e!r}")
        status = P.EXIT_FAILURE
    finally:
        sys.stderr.flush()
        os._exit(status)


def reap_children(children: set[int]) -> None:
    """Collect every child that has exited, so none is left a zombie."""
    while children:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            children.clear()
            return
        if pid == 0:
            return
        children.discard(pid)


def stop_children(children: set[int], control: Control, deadline: float) -> None:
    """Let children finish until `deadline`, then end the rest with SIGTERM and reap them."""
    while children:
        reap_children(children)
        left = deadline - time.monotonic()
        if not children or left <= 0:
            break
        select.select([control.wake_r], [], [], left)   # SIGCHLD writes to wake_r
        control.drain_wake()
    for pid in children:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    for pid in list(children):
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
    children.clear()


# step: loop threads
def run_threads(listeners: list[socket.socket], config: ServerConfig, control: Control) -> None:
    """A thread per connection; every thread also watches the stop pipe, so it learns of a stop at once."""
    pause = AcceptPause()
    active: set[threading.Thread] = set()
    lock = threading.Lock()

    def serve(conn: Connection) -> None:
        try:
            serve_connection(conn, control, config.grace)
        except Exception as e:  # noqa: BLE001 - one connection's failure is its own
            log(f"thread {conn.peer}: {e!r}")
        finally:
            conn.close()
            with lock:
                active.discard(threading.current_thread())

    while not control.stopping:
        for listener in wait_for_clients(listeners, control, pause):
            client = accept_client(listener, pause)
            if client is None:
                continue
            sock, peer = client
            with lock:
                full = len(active) >= config.max_conns
            if full:
                reject(sock)
                continue
            thread = threading.Thread(target=serve, args=(Connection(sock, peer, config, time.monotonic()),),
                                      name=f"conn {peer}", daemon=True)
            with lock:
                active.add(thread)
            try:
                thread.start()
            except RuntimeError as e:
                log(f"thread {peer}: {e}")
                sock.close()
                with lock:
                    active.discard(thread)
    close_listeners(listeners)
    # Each thread closes its connection at the grace deadline by itself; wait for them to see it.
    deadline = control.stopped_at + config.grace + 1.0
    for thread in list(active):
        thread.join(max(0.0, deadline - time.monotonic()))
# end step


# step: loop event
def run_event(listeners: list[socket.socket], config: ServerConfig, control: Control) -> None:
    """One thread and one selector (epoll on Linux) for every listener and connection."""
    sel = selectors.DefaultSelector()
    sel.register(control.wake_r, selectors.EVENT_READ, None)
    pause = AcceptPause()
    conns: dict[int, Connection] = {}
    registered: dict[int, int] = {}
    accepting = False
    next_tick = 0.0

    def update(conn: Connection) -> None:
        """Keep the selector asking for what the connection wants, or forget it once closed."""
        if conn.phase is CLOSED:
            if conns.get(conn.fd) is conn:   # not yet forgotten (its fd may be reused at once)
                sel.unregister(conn.fd)
                del conns[conn.fd], registered[conn.fd]
            return
        mask = conn.interest() or selectors.EVENT_READ   # always hear about errors
        if registered.get(conn.fd) != mask:
            if conn.fd in registered:
                sel.modify(conn.fd, mask, conn)
            else:
                sel.register(conn.fd, mask, conn)
            registered[conn.fd] = mask

    while True:
        now = time.monotonic()
        if control.stopping:
            if listeners:
                for listener in listeners:
                    if accepting:
                        sel.unregister(listener)
                close_listeners(listeners)
                listeners = []
                for conn in conns.values():
                    conn.stop_by = control.stopped_at + config.grace
            if not conns:
                break
        want_accept = bool(listeners) and not pause.paused(now)
        if want_accept != accepting:
            for listener in listeners:
                if want_accept:
                    sel.register(listener, selectors.EVENT_READ, listener)
                else:
                    sel.unregister(listener)
            accepting = want_accept
        timeout = P.TIMER_TICK if conns else None
        if listeners and not accepting:
            timeout = min(timeout or P.ACCEPT_BACKOFF_MAX, max(0.0, pause.until - now))
        ready = sel.select(timeout)
        now = time.monotonic()
        for key, mask in ready:
            conn = key.data
            if type(conn) is Connection:
                if mask & selectors.EVENT_READ:
                    conn.on_readable(now)
                if mask & selectors.EVENT_WRITE:
                    conn.on_writable(now)
                update(conn)
            elif conn is None:
                control.drain_wake()
            else:
                for _ in range(P.ACCEPT_BATCH):
                    client = accept_client(key.data, pause)
                    if client is None:
                        break
                    sock, peer = client
                    if len(conns) >= config.max_conns:
                        reject(sock)
                        continue
                    conn = Connection(sock, peer, config, now)
                    conns[conn.fd] = conn
                    update(conn)
        now = time.monotonic()
        if now >= next_tick:
            next_tick = now + P.TIMER_TICK
            for conn in list(conns.values()):
                conn.on_timer(now)
                update(conn)
    sel.close()
# end step
