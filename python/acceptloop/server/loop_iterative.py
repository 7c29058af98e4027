"""The iterative model: the tutorials' loop, made correct. One client at a time: wait, accept
one, drive it to its end with the per-connection loop, accept again."""
from __future__ import annotations

import socket
import time

from acceptloop.contract import ServerConfig
from acceptloop.server.connection import Connection
from acceptloop.server.control import Control
from acceptloop.server.serve import PerConnectionModel, close_listeners, serve_connection


# step: loop iterative
class IterativeModel(PerConnectionModel):
    """The hand-off is the service itself: the next client waits in the backlog meanwhile."""

    def hand_off(self, sock: socket.socket, peer: str) -> None:
        # A stop seen while this client is served closes the listeners at once: new clients are
        # refused while this one gets the grace.
        serve_connection(Connection(sock, peer, self.config, time.monotonic()), self.control,
                         on_stop=lambda: close_listeners(self.listeners))


def run_iterative(listeners: list[socket.socket], config: ServerConfig, control: Control) -> None:
    """Serve one client at a time until a stop; return once the one in progress has ended."""
    IterativeModel(listeners, config, control).accept_loop()
# end step
