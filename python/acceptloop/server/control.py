"""How a running Python server learns that it must stop, or that a child exited.

Two pipes, as CPython's socketserver ought to have used instead of its 0.5 s poll:

* `wake`: the signal wake-up descriptor (`signal.set_wakeup_fd`). Any handled
  signal (SIGTERM, SIGINT, SIGCHLD) writes a byte, so the main loop's select
  returns at once and the Python-level handler has run by then. Only the main
  loop reads it, and empties it (`drain_wake`).
* `stop`: written once when stopping begins (`request_stop`) and never drained,
  so every thread polling it (the threads model) sees it readable: a broadcast.
"""
from __future__ import annotations

import os
import signal
import time

from acceptloop.errors import SetupError


class Control:
    """The stop and wake-up descriptors, and when the stop began."""

    def __init__(self, grace: float) -> None:
        """`grace`: the seconds connections in progress get once a stop begins (--grace).

        Raises SetupError("pipe", "control", ...) when the pipes cannot be made (out of descriptors).
        """
        fds: list[int] = []
        try:
            for _ in range(2):
                fds.extend(os.pipe())
        except OSError as e:
            for fd in fds:
                os.close(fd)
            raise SetupError("pipe", "control", e) from None
        self.wake_r, self.wake_w, self.stop_r, self.stop_w = fds
        for fd in fds:
            os.set_blocking(fd, False)
        self.grace = grace
        self.stopping = False
        self.stopped_at = 0.0

    def install_signal_handlers(self, watch_children: bool) -> None:
        """SIGTERM and SIGINT begin a graceful stop; SIGCHLD (fork model) only wakes the loop."""
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGTERM, self._on_stop_signal)
        signal.signal(signal.SIGINT, self._on_stop_signal)
        if watch_children:
            signal.signal(signal.SIGCHLD, lambda signum, frame: None)

    def _on_stop_signal(self, signum: int, frame: object) -> None:
        self.request_stop()

    def request_stop(self) -> None:
        """Begin a graceful stop: stop accepting; connections have `grace` seconds from now."""
        if not self.stopping:
            self.stopping = True
            self.stopped_at = time.monotonic()
            os.write(self.stop_w, b"s")

    def stop_deadline(self) -> float:
        """Return the grace deadline (monotonic time): when connections still open are closed.

        Meaningful once `stopping`."""
        return self.stopped_at + self.grace

    def drain_wake(self) -> None:
        """Empty the wake-up descriptor, so the next poll waits for the next signal."""
        try:
            while os.read(self.wake_r, 512):
                pass
        except BlockingIOError:
            pass

    def forget_in_child(self) -> None:
        """In a forked child: the parent's signals and pipes are not the child's business.

        SIGTERM ends the child (the parent sends it when the grace is over);
        SIGINT from the terminal is left to the parent, which stops gracefully.
        """
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        self._close_pipes()

    def close(self) -> None:
        """No more signals to the wake-up descriptor; close both pipes."""
        signal.set_wakeup_fd(-1)
        self._close_pipes()

    def close_pipes(self) -> None:
        """Close both pipes, leaving the signal handlers as they are (another process's copy)."""
        self._close_pipes()

    def _close_pipes(self) -> None:
        for fd in (self.wake_r, self.wake_w, self.stop_r, self.stop_w):
            os.close(fd)
