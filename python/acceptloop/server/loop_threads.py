"""The threads model: a thread per connection, each running the per-connection loop. Every
thread also polls the stop descriptor (written once, never drained), so it learns of a stop at
once and closes its connection at the grace deadline by itself."""
from __future__ import annotations

import socket
import threading
import time

from acceptloop.contract import ServerConfig
from acceptloop.errors import log
from acceptloop.server.connection import Connection
from acceptloop.server.control import Control
from acceptloop.server.serve import PerConnectionModel, serve_connection


# step: loop threads
class ThreadsModel(PerConnectionModel):
    """The hand-off starts a thread; the threads alive are counted in a set under a lock."""

    def __init__(self, listeners: list[socket.socket], config: ServerConfig, control: Control) -> None:
        super().__init__(listeners, config, control)
        self.threads: set[threading.Thread] = set()
        self.lock = threading.Lock()

    def open_connections(self) -> int:
        with self.lock:
            return len(self.threads)

    def hand_off(self, sock: socket.socket, peer: str) -> None:
        thread = threading.Thread(target=self.serve, args=(Connection(sock, peer, self.config, time.monotonic()),),
                                  name=f"conn {peer}", daemon=True)
        with self.lock:
            self.threads.add(thread)
        try:
            thread.start()
        except RuntimeError as e:
            log(f"thread {peer}: {e}")
            sock.close()
            with self.lock:
                self.threads.discard(thread)

    def serve(self, conn: Connection) -> None:
        """A thread's whole life: drive its connection to its end, then leave the count."""
        try:
            serve_connection(conn, self.control)
        except Exception as e:  # noqa: BLE001 - one connection's failure is its own
            log(f"thread {conn.peer}: {e!r}")
        finally:
            conn.close()
            with self.lock:
                self.threads.discard(threading.current_thread())

    def join(self) -> None:
        """Wait for the threads to close their connections at the grace deadline (and a second more)."""
        deadline = self.control.stop_deadline() + 1.0
        with self.lock:
            threads = list(self.threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))


def run_threads(listeners: list[socket.socket], config: ServerConfig, control: Control) -> None:
    """Start a thread per connection until a stop; return once the threads have ended (or the grace is over)."""
    model = ThreadsModel(listeners, config, control)
    model.accept_loop()
    model.join()
# end step
