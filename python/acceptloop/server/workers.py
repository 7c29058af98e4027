"""--workers N > 1: N event loops on one port, a process each, under a supervising parent.

The parent opens every worker's listeners (SO_REUSEPORT on each, before bind: net.py), the
first worker's choosing the port when --port is 0 and the others binding the same one, so a
start-up failure is one line and exit 1 with nothing forked. Then it forks the workers, each
keeping its own listeners, announces the first worker's (LISTENING ... READY: every worker
listens by then), and supervises:

* SIGTERM/SIGINT: every worker is sent SIGTERM and stops gracefully within the grace (its own
  event loop); the parent exits 0 once all have exited 0.
* a worker that exits while the parent is not stopping, or that exits otherwise than 0: one line
  naming it, the others are stopped gracefully, exit 1.
* a worker still there two seconds after the grace is killed (SIGKILL), exit 1.

--max-conns counts every worker's connections: one count in shared memory under a lock
(`SharedSlots`), so the limit is the server's, exactly, as with one loop.
"""
from __future__ import annotations

import ctypes
import os
import select
import signal
import socket
import time

from acceptloop import _protocol as P
from acceptloop.contract import ServerConfig
from acceptloop.errors import SetupError, describe_error, fail, log
from acceptloop.server.control import Control
from acceptloop.server.loop_event import EventLoop
from acceptloop.server.net import announce, open_listeners
from acceptloop.server.serve import close_listeners, timeout_ms

STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGCHLD}
KILL_AFTER_GRACE = 2.0   # seconds past the grace before a worker still there is killed


class SharedSlots:
    """--max-conns across the workers: one count in shared memory (inherited by fork), taken
    and given back under a process-shared lock, so no two workers can both take the last slot."""

    def __init__(self, limit: int) -> None:
        import multiprocessing   # only here: one loop never pays for its import
        self.limit = limit
        self.count = multiprocessing.RawValue("q", 0)
        self.lock = multiprocessing.Lock()

    def take(self, held: int) -> bool:
        """Whether one more connection fits in the whole server; if so it is counted."""
        with self.lock:
            if self.count.value >= self.limit:
                return False
            self.count.value += 1
            return True

    def give(self) -> None:
        """A counted connection has ended."""
        with self.lock:
            self.count.value -= 1


class Worker:
    """One worker, made whole in the parent before READY (so that a start-up failure is the
    server's, one line and exit 1): its listeners, its stop descriptors and its event loop."""

    def __init__(self, listeners: list[socket.socket], control: Control, loop: EventLoop) -> None:
        self.listeners = listeners
        self.control = control
        self.loop = loop

    def release(self) -> None:
        """Close this worker's descriptors in a process that is not this worker."""
        close_listeners(self.listeners)
        self.control.close_pipes()
        self.loop.selector.close()


def make_worker(config: ServerConfig, slots: SharedSlots) -> Worker:
    """One worker's listeners, stop descriptors and event loop; SetupError or OSError (with what
    it made closed) when a step fails."""
    listeners = open_listeners(config)
    control = None
    try:
        control = Control(config.grace)
        return Worker(listeners, control, EventLoop(listeners, config, control, slots))
    except (SetupError, OSError):
        close_listeners(listeners)
        if control is not None:
            control.close_pipes()
        raise


def make_workers(config: ServerConfig, slots: SharedSlots) -> list[Worker]:
    """Every worker, the first's listeners choosing the port for the rest. SetupError or OSError
    (with everything made so far closed) when a step fails."""
    workers: list[Worker] = []
    try:
        for _ in range(config.workers):
            workers.append(make_worker(config, slots))
            if config.port == 0:
                config = config.replace(port=workers[0].listeners[0].getsockname()[1])
    except (SetupError, OSError):
        for worker in workers:
            worker.release()
        raise
    return workers


def die_with_parent() -> None:
    """Ask the kernel for SIGTERM when the parent dies (prctl PR_SET_PDEATHSIG): a worker never
    outlives its supervisor."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def run_worker(me: Worker, workers: list[Worker], config: ServerConfig, parent: Control) -> int:
    """In a forked worker (the stop signals still blocked): drop what is not its own, take the
    stop signals, then its event loop until SIGTERM. Returns the exit code."""
    try:
        for other in workers:
            if other is not me:
                other.release()
        parent.close_pipes()
        me.control.install_signal_handlers(watch_children=False)
        die_with_parent()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)   # a pending SIGTERM stops it now
        me.loop.run()
    except OSError as e:
        return fail(f"{config.model} loop: {describe_error(e)}")
    except Exception as e:  # noqa: BLE001 - one line, never a traceback
        return fail(f"{config.model} loop: {e!r}")
    return P.EXIT_OK


def fork_workers(workers: list[Worker], config: ServerConfig, control: Control) -> dict[int, int]:
    """One process per worker; pid -> worker number (from 1). The stop signals are blocked across
    the forks, so a worker hears them only once its own handlers are in place. OSError (the
    workers forked so far are stopped) when a fork fails."""
    pids: dict[int, int] = {}
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        for index, me in enumerate(workers, 1):
            pid = os.fork()
            if pid == 0:
                code = run_worker(me, workers, config, control)
                os._exit(code)
            pids[pid] = index
    except OSError:
        for pid in pids:
            os.kill(pid, signal.SIGTERM)
            os.waitpid(pid, 0)
        raise
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    return pids


def how_it_ended(status: int) -> str:
    """`exited with status 1`, `was killed by SIGKILL`."""
    if os.WIFSIGNALED(status):
        return f"was killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited with status {os.waitstatus_to_exitcode(status)}"


def reap(workers: dict[int, int], control: Control) -> int:
    """Collect the workers that have exited; one that ended while the server was not stopping,
    or not with 0, is reported and begins the stop. Returns 1 if any was, else 0."""
    code = 0
    while workers:
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            break
        index = workers.pop(pid, None)
        if index is None:
            continue
        if not control.stopping or os.waitstatus_to_exitcode(status) != P.EXIT_OK:
            log(f"worker {index} (pid {pid}) {how_it_ended(status)}")
            code = P.EXIT_FAILURE
            control.request_stop()
    return code


def supervise(workers: dict[int, int], control: Control) -> int:
    """Until every worker has exited: pass a stop on to them all, reap, and kill what outlives the
    grace. Returns the server's exit code."""
    code, told, killed = P.EXIT_OK, False, False
    while workers:
        if control.stopping and not told:
            for pid in workers:
                os.kill(pid, signal.SIGTERM)
            told = True
        timeout = None
        if control.stopping:
            left = control.stop_deadline() + KILL_AFTER_GRACE - time.monotonic()
            if left <= 0 and not killed:
                for pid, index in workers.items():
                    log(f"worker {index} (pid {pid}) still running {KILL_AFTER_GRACE:g} s after the grace; killed")
                    os.kill(pid, signal.SIGKILL)
                code, killed = P.EXIT_FAILURE, True
            timeout = None if killed else max(left, 0.0)
        poller = select.poll()
        poller.register(control.wake_r, select.POLLIN)
        poller.poll(timeout_ms(timeout))
        control.drain_wake()
        code = max(code, reap(workers, control))
    return code


def serve_workers(config: ServerConfig) -> int:
    """The parent of `config.workers` event-loop processes on one port; the exit code."""
    try:
        control = Control(config.grace)
        control.install_signal_handlers(watch_children=True)
        workers = make_workers(config, SharedSlots(config.max_conns))
    except SetupError as e:
        return fail(str(e))
    except OSError as e:
        return fail(f"epoll workers: {describe_error(e)}")
    try:
        pids = fork_workers(workers, config, control)
    except OSError as e:
        for worker in workers:
            worker.release()
        return fail(f"fork workers: {describe_error(e)}")
    announce(workers[0].listeners)
    for worker in workers:
        worker.release()   # the workers hold their own; the parent's copies would only leak
    return supervise(pids, control)
