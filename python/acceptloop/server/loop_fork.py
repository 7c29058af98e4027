"""The fork model: a child process per connection. The parent closes its copy of the client's
socket (else the client never sees EOF) and reaps children whenever SIGCHLD wakes it; once
stopping it waits for them until the grace deadline, then ends the rest with SIGTERM."""
from __future__ import annotations

import os
import select
import signal
import socket
import sys
import time

from acceptloop import _protocol as P
from acceptloop.contract import ServerConfig
from acceptloop.errors import describe_error, log
from acceptloop.server.connection import Connection
from acceptloop.server.control import Control
from acceptloop.server.serve import PerConnectionModel, close_listeners, serve_connection

TYPE_CHECKING = False   # typing.TYPE_CHECKING without importing typing: a server imports this at start-up
if TYPE_CHECKING:
    from typing import NoReturn

# The signals a fork must not let through to the child before it has reset their handlers.
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGCHLD}


# step: loop fork
class ForkModel(PerConnectionModel):
    """The hand-off is a fork: the child serves the connection, the parent counts its children."""

    def __init__(self, listeners: list[socket.socket], config: ServerConfig, control: Control) -> None:
        super().__init__(listeners, config, control)
        self.children: set[int] = set()

    def open_connections(self) -> int:
        return len(self.children)

    def after_wait(self) -> None:
        reap_children(self.children)   # SIGCHLD ends a wait by writing the wake-up descriptor

    def hand_off(self, sock: socket.socket, peer: str) -> None:
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
            return
        if pid == 0:
            serve_in_child(sock, peer, self.listeners, self.config, self.control, saved)
        signal.pthread_sigmask(signal.SIG_SETMASK, saved)
        self.children.add(pid)
        sock.close()


def run_fork(listeners: list[socket.socket], config: ServerConfig, control: Control) -> None:
    """Fork a child per connection until a stop; return once every child has ended."""
    model = ForkModel(listeners, config, control)
    model.accept_loop()
    stop_children(model.children, control)
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
        serve_connection(Connection(sock, peer, config, time.monotonic()), None)
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


def stop_children(children: set[int], control: Control) -> None:
    """Let children finish until the grace deadline, then end the rest with SIGTERM and reap them."""
    deadline = control.stop_deadline()
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
