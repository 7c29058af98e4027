"""Starting, watching and stopping one server process through the contract.

The kit waits for events, never for a guessed time: the READY line (or, for
servers that print nothing, the port accepting), the process's exit, a count
in /proc reaching a value. Every wait has a timeout.
"""
from __future__ import annotations

import ctypes
import os
import queue
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, NamedTuple

from acceptloop import _protocol as P
from acceptloop.suite.registry import Implementation

START_TIMEOUT = 15.0
# How long an idle server may take to exit after SIGTERM before the kit kills it (the contract: a
# server idle in accept exits at once), and how long the kit waits for its servers when it is
# itself interrupted.
STOP_GRACE = 2.0
EXITING_GRACE = 10.0   # how long a server already in the kernel's exit path is given to be gone
THREADS_FALLING = 0.5   # a stopping threads server is waited for while it has fewer threads this often
PF_EXITING = 0x4       # linux/sched.h: the task is exiting

# Every server process the kit has started and not yet closed, so that an interrupted run
# (Ctrl-C, SIGTERM) leaves none of them running: terminate_all(). SPAWNED and CLOSED are called
# with a server's pid when it starts and once it is closed (the parallel lanes tell their parent).
LIVE: set["ServerProcess"] = set()
SPAWNED: list[Callable[[int], None]] = []
CLOSED: list[Callable[[int], None]] = []


class LaunchError(Exception):
    """The server's command could not be executed at all (no such program, not executable): a
    registry or machine problem, never the server's behaviour."""

    summary = "the server's command cannot be executed"


def terminate_all(grace: float = STOP_GRACE) -> int:
    """SIGTERM every server the kit started (with its process group: forked children too), then
    SIGKILL what is left after `grace` seconds; returns how many were still running."""
    running = [p for p in list(LIVE) if p.proc is not None and p.proc.poll() is None]
    for p in running:
        p.signal_group(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for p in running:
        if p.wait_exit(max(0.0, deadline - time.monotonic())) is None:
            p.kill()
    for p in list(LIVE):
        p.close(grace=0.0)
    return len(running)


INTERRUPTS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def interrupts_held() -> Iterator[None]:
    """SIGINT and SIGTERM wait until the block is over, then act as they would have. Around a
    server's start: Popen forks, then waits for the exec; a KeyboardInterrupt raised in that wait
    would leave the child running with no pid known to anyone, so terminate_all() could not stop it
    (a bench stopped by SIGTERM the moment it forked its first server left that server behind).
    Only the main thread may set handlers; elsewhere the signal reaches the main thread anyway."""
    if threading.current_thread() is not threading.main_thread() or any(
            signal.getsignal(s) is None for s in INTERRUPTS):   # None: set outside Python, cannot be put back
        yield
        return
    held: list[int] = []
    previous = {s: signal.signal(s, lambda signum, _frame: held.append(signum)) for s in INTERRUPTS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if held:
            signal.raise_signal(held[0])   # the handler that was there decides, now the pid is in LIVE


PR_SET_PDEATHSIG = 1   # linux/prctl.h


def ask_for_the_death_signal(signum: int, parent: int) -> bool:
    """Have the kernel send this process `signum` when the thread of `parent` that started it ends
    (prctl PR_SET_PDEATHSIG); False when `parent` had already gone before the ask."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0)
    return os.getppid() == parent


def dies_with_the_kit(then: Callable[[], None] | None = None) -> Callable[[], None]:
    """A preexec_fn that has the kernel SIGKILL the server when this process dies, however it dies:
    a kit killed outright (SIGKILL, the OOM killer) runs no clean-up and would leave its servers
    running. `then` runs after it. The signal comes when the thread that forked the server ends, so
    it is asked for only when this is made in the main thread (as the bench makes it, right before
    the start): a server started from another thread would be killed when that thread ends."""
    kit, asks = os.getpid(), _in_the_main_thread()

    def preexec() -> None:
        if asks and not ask_for_the_death_signal(signal.SIGKILL, kit):   # nobody is left to stop this one
            os._exit(1)
        if then is not None:
            then()
    return preexec


def _in_the_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


# The check's servers die with the kit however it dies, like the bench's (dies_with_the_kit), but
# without a preexec_fn: that makes every spawn a full fork of the kit (about 18 ms here for a
# 300 MB kit against 0.6 ms with vfork), and the matrix starts thousands. setpriv (util-linux)
# sets the death signal and execs the server in the same process; where there is no setpriv,
# the server runs without it.
SETPRIV = shutil.which("setpriv")


def with_the_kits_death(argv: list[str], path: str | None = None) -> list[str]:
    """`argv` started so that the kernel SIGKILLs it when the thread that started it ends (the kit's
    main thread, or a lane's): setpriv --pdeathsig in front of a command that can be executed. One
    that cannot is left as it is, so that starting it fails as the kit's launch error, not as a
    server that exited 127 (`path`: the PATH the server is given); so is one started from another
    thread than the main one, which would be killed when that thread ends."""
    if SETPRIV is None or not argv or shutil.which(argv[0], path=path) is None or not _in_the_main_thread():
        return argv
    return [SETPRIV, "--pdeathsig", "KILL", *argv]


class PortTaken(LaunchError):
    """The fixed port a server always listens on already accepts connections before the kit
    started it: another process holds it, and the kit could not tell that one from this one."""

    summary = "the kit cannot start the server"


class ServerStartError(Exception):
    """The server exited, or printed something unexpected, before it was ready."""

    def __init__(self, message: str, exit_code: int | None = None, stderr: str = "") -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.stderr = stderr


def raise_fd_limit(want: int = 65536) -> int:
    """Raise this process's soft RLIMIT_NOFILE towards `want` (servers started from here inherit it):
    the over-the-limit scenario holds 1,100 connections, more than a common default of 1,024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (for servers that cannot take port 0).

    A host the kit cannot bind (a name that does not resolve, an address not on this machine:
    what a scenario hands a server to watch it fail) gets a port free on every address of its
    family: the server's own failure is what the scenario is about, never the kit's."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, 0))
        except OSError:   # socket.gaierror too
            s.bind(("", 0))
        return s.getsockname()[1]


def stat_fields(path: str | Path) -> list[str]:
    """The fields of a /proc stat file after the command's name (which may hold spaces and
    parentheses): [0] the state, [3] the session id, [6] the flags, [11:15] utime stime cutime cstime."""
    return Path(path).read_text().rsplit(")", 1)[1].split()


def pid_alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie does not: it has exited and waits for its parent)."""
    try:
        return stat_fields(f"/proc/{pid}/stat")[0] != "Z"
    except OSError:
        return False


def children_of(pid: int) -> list[int]:
    """The pids of `pid`'s child processes (of every thread of it; zombies included), from /proc;
    none once it has gone."""
    found = []
    for tid in _tids(pid):
        try:
            found.extend(int(child) for child in Path(f"/proc/{pid}/task/{tid}/children").read_text().split())
        except OSError:   # that thread has ended meanwhile
            continue
    return found


def _tids(pid: int) -> list[str]:
    """The thread ids of `pid`, none once it has gone."""
    try:
        return os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []


class Sched(NamedTuple):
    """What the scheduler says of one thread: the seconds it has spent runnable but waiting for a CPU
    (the run delay, which counts a wait only once the wait is over) and how often it has been run."""
    waited: float
    runs: int


def machine_busy_seconds() -> float:
    """CPU time every CPU of the machine has spent on anything but idling, from /proc/stat."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def sched_of(pid: int) -> dict[int, Sched]:
    """Each thread of `pid` by thread id, from /proc/PID/task/TID/schedstat; none once it has gone."""
    found = {}
    for tid in _tids(pid):
        try:
            _ran, waited, runs = Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[:3]
        except (OSError, ValueError):   # that thread has ended meanwhile
            continue
        found[int(tid)] = Sched(int(waited) / 1e9, int(runs))
    return found


def _thread_state(pid: int, tid: int | str) -> str:
    """Thread `tid` of `pid`'s state letter (R, S, D, T, Z...); "" once it has gone."""
    try:
        return stat_fields(f"/proc/{pid}/task/{tid}/stat")[0]
    except OSError:
        return ""


def where_thread_stands(pid: int, tid: int) -> str:
    """Thread `tid` of `pid` as the kernel has it now: its state and the kernel function it sleeps
    in ("S in do_sys_poll", "R in user space"); "" once it has gone."""
    state = _thread_state(pid, tid)
    try:
        return f"{state} in {_wchan(f'/proc/{pid}/task/{tid}/wchan')}" if state else ""
    except OSError:
        return ""


def _wchan(path: str) -> str:
    """The kernel function a /proc wchan file names, or "user space" (it reads 0 there)."""
    return Path(path).read_text().strip().strip("0") or "user space"


def runnable_threads(pid: int) -> set[int]:
    """The threads of `pid` that are running or waiting for a CPU now (state R)."""
    return {int(tid) for tid in _tids(pid) if _thread_state(pid, tid) == "R"}


def cmdline_of(pid: int) -> str | None:
    """`pid`'s command line, its arguments joined by spaces; "" while it is in the middle of an exec
    (or a kernel thread); None once it has gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return None


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.01) -> bool:
    """Poll `predicate` until it holds or `timeout` passes; True if it held.

    For conditions the kernel offers no event for (a count in /proc); the
    interval grows so a long wait costs little.
    """
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(interval, left))
        interval = min(interval * 1.5, 0.2)


def connection_refused_now(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether a connect to host:port is refused (or cannot be made) right now."""
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError:
        return True
    return False


@dataclass
class Listening:
    host: str
    port: int


class ServerProcess:
    """One server, started from a registry entry (or standing for one already running)."""

    def __init__(self, impl: Implementation, service: str, model: str, host: str = "127.0.0.1",
                 port: int = 0, options: dict[str, str | None] | None = None,
                 env: dict[str, str] | None = None, argv: list[str] | None = None,
                 preexec: Callable[[], None] | None = None, prefix: list[str] | None = None,
                 transport: str = "tcp") -> None:
        self.impl = impl
        self.transport = transport     # "udp": --transport udp is appended (the registry's `transports`)
        self.service = service
        self.model = model
        self.host = host
        self.port = port
        self.options = dict(options or {})
        self.env = env
        self.preexec = preexec
        self.prefix = list(prefix or [])
        self.proc: subprocess.Popen[bytes] | None = None
        self.listening: list[Listening] = []
        self.workers: set[int] = set()    # its worker processes (registry: worker_processes)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stdout_after_ready: list[str] = []
        self.exit_code: int | None = None
        self._stderr_file = tempfile.TemporaryFile()
        self._stderr_mark = 0
        self._argv = argv
        self._reader: threading.Thread | None = None
        self.started_at = 0.0
        self.ready_after = 0.0
        self.told_to_stop = False      # a scenario signalled it; its exit is expected
        self.unheard: str | None = None  # the stop signal it was sent while ignoring it (SIG_IGN)
        self.threads_at_stop = 0         # its threads when it was told to stop (SIGTERM or SIGINT)
        self.kill_reason: str | None = None   # why stop() had to kill it: how it stood then, from /proc

    # -- starting ---------------------------------------------------------------------------
    @property
    def argv(self) -> list[str]:
        if self._argv is None:
            fixed = self.impl.fixed_port(self.service)
            if fixed is not None:
                self.port = fixed              # its command takes no {port}: it listens where it always does
            elif self.impl.ready == "port" and self.port == 0:
                self.port = free_port(self.host)
            options = dict(self.options)
            if self.transport != "tcp":
                options["transport"] = self.transport
            self._argv = self.prefix + self.impl.argv(self.service, self.model, self.host, self.port, options)
        return self._argv

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def watchable(self) -> bool:
        """Whether the kit runs this server, so that its processes can be watched (its descriptors,
        its CPU, its threads' waits); not one checked by its address alone."""
        return self.proc is not None

    def spawn(self) -> None:
        """Start the process without waiting for it to be ready."""
        env = dict(os.environ)
        env.update(self.env or {})
        self.started_at = time.monotonic()
        if (not_built := self.impl.not_built()) is not None:
            raise LaunchError(not_built)
        with interrupts_held():
            try:
                argv = self.argv if self.preexec is not None else with_the_kits_death(self.argv, env.get("PATH"))
                self.proc = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._stderr_file,
                    env=env, preexec_fn=self.preexec, start_new_session=True,
                )
            except OSError as e:
                raise LaunchError(f"{self.argv[0]}: {e.strerror or e} ({self.impl.origin}: {self.impl.name})") from None
            except subprocess.SubprocessError as e:   # the preexec_fn failed in the child
                raise LaunchError(f"{self.argv[0]}: {e}") from None
            LIVE.add(self)
            for hook in SPAWNED:
                hook(self.proc.pid)
        self._reader = threading.Thread(target=self._read_stdout, name=f"stdout {self.pid}", daemon=True)
        self._reader.start()

    def _read_stdout(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.put(raw.decode("utf-8", "replace").rstrip("\r\n"))
        self.lines.put(None)

    def start(self, timeout: float = START_TIMEOUT) -> "ServerProcess":
        """Spawn and wait until the server is ready; raise ServerStartError if it is not."""
        if self.impl.address is not None:
            self.listening = [Listening(*self.impl.address)]
            return self
        if self.impl.ready == "port":
            self._port_must_be_free()
        self.spawn()
        return self.wait_ready(timeout)

    def wait_ready(self, timeout: float = START_TIMEOUT) -> "ServerProcess":
        """After spawn(): wait until the server is ready (several servers can be spawned first and
        then waited for, so that their start-ups overlap)."""
        if self.impl.ready == "line":
            self._wait_ready_line(timeout)
        else:
            self._wait_port(timeout)
        self.ready_after = time.monotonic() - self.started_at
        return self

    def _wait_ready_line(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        listening_prefix = P.ANNOUNCE_LISTENING.split(" ", 1)[0] + " "
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.kill()
                raise ServerStartError(f"no {P.ANNOUNCE_READY} line within {timeout:g} s",
                                       stderr=self.stderr()) from None
            if line is None:
                code = self.wait_exit(5.0)
                raise ServerStartError(f"exited with {code} before {P.ANNOUNCE_READY}", code, self.stderr())
            if line == P.ANNOUNCE_READY:
                if not self.listening:
                    self.kill()
                    raise ServerStartError(f"{P.ANNOUNCE_READY} without any LISTENING line", stderr=self.stderr())
                self._note_workers()
                threading.Thread(target=self._collect_rest, daemon=True).start()
                return
            parts = line.split(" ")
            if line.startswith(listening_prefix) and len(parts) == 3 and parts[2].isdigit():
                self.listening.append(Listening(parts[1], int(parts[2])))
            else:
                self.kill()
                raise ServerStartError(f"unexpected line before {P.ANNOUNCE_READY}: {line!r}", stderr=self.stderr())

    def _collect_rest(self) -> None:
        while (line := self.lines.get()) is not None:
            self.stdout_after_ready.append(line)

    def _port_must_be_free(self) -> None:
        """A server that prints nothing is ready when its port accepts: if the port already accepts
        before it runs (a fixed port another process holds, a system inetd), the kit would be
        talking to that other process. PortTaken: the cell is ERROR, naming the port."""
        self.argv   # settles the port it will listen on
        if self.port and not connection_refused_now(self.host, self.port):
            raise PortTaken(f"{self.host}:{self.port} already accepts connections before the server starts: "
                            f"another process listens there ({self.impl.origin}: {self.impl.name})")

    def _wait_port(self, timeout: float) -> None:
        def accepting() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                return True
            try:
                socket.create_connection((self.host, self.port), timeout=0.5).close()
                return True
            except OSError:
                return False

        if not wait_until(accepting, timeout) or not self.alive():
            code = self.wait_exit(1.0)
            if code is None:
                self.kill()
            raise ServerStartError(f"port {self.port} never accepted", code, self.stderr())
        self.listening = [Listening(self.host, self.port)]

    # -- watching -------------------------------------------------------------------------
    @property
    def address(self) -> tuple[str, int]:
        first = self.listening[0]
        return first.host, first.port

    def alive(self) -> bool:
        if self.impl.address is not None:
            return True
        return self.proc is not None and self.proc.poll() is None

    def stderr(self) -> str:
        self._stderr_file.flush()
        self._stderr_file.seek(0)
        return self._stderr_file.read().decode("utf-8", "replace")

    def mark_stderr(self) -> None:
        """Remember where stderr stands, so stderr_since_mark() gives what came after."""
        self._stderr_mark = len(self.stderr().encode("utf-8", "replace"))

    def stderr_since_mark(self) -> str:
        return self.stderr().encode("utf-8", "replace")[self._stderr_mark:].decode("utf-8", "replace")

    def _note_workers(self) -> None:
        """A server whose registry entry says it runs worker processes (--workers) has them from
        READY on: they are the server, counted in its descriptors, never children left behind."""
        if self.impl.worker_processes:
            wait_until(lambda: len(self._direct_children()) >= self.impl.worker_processes, 5.0)
            self.workers = {pid for pid, _state in self._direct_children()}

    def accepting(self) -> list[int]:
        """The processes that accept connections: its worker processes where it has them (--workers:
        each on its own listener; their supervisor accepts nothing), else its own."""
        return sorted(self.workers) or [self.pid]

    def signal_accepting(self, signum: int) -> None:
        """Send `signum` to the processes that accept (SIGSTOP: connections then wait in the accept
        queue); a worker that has gone is skipped. SIGSTOP returns once every thread of theirs has
        stopped (at most a second): until then a thread still running may accept."""
        for pid in self.accepting():
            if pid == self.pid:
                self.signal(signum)
                continue
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass
        if signum == signal.SIGSTOP:
            wait_until(lambda: all(_thread_state(pid, tid) in ("T", "") for pid in self.accepting()
                                   for tid in _tids(pid)), 1.0, interval=0.001)

    def own_processes(self) -> list[int]:
        """The processes that are the server: its own and its worker processes' (--workers)."""
        return [self.pid, *sorted(self.workers)]

    def fd_count(self) -> int:
        """Descriptors the server holds: its process's, and its worker processes' if it has any."""
        return sum(self.fds_of(pid) for pid in self.own_processes())

    def busiest_fd_count(self) -> int:
        """The most descriptors one of the server's processes holds (one process: fd_count())."""
        return max(self.fds_of(pid) for pid in self.own_processes())

    @staticmethod
    def fds_of(pid: int) -> int:
        """Descriptors process `pid` holds; 0 once it has gone."""
        try:
            return len(os.listdir(f"/proc/{pid}/fd"))
        except OSError:
            return 0

    def tree_fd_count(self) -> int:
        """Descriptors held by the server's process and every process descended from it (its worker
        processes, fork's children), looked up at each count: a connection is seen whichever process
        took it. 0 once it has exited."""
        return sum(self.fds_of(pid) for pid in self.tree())

    def steady_tree_fd_count(self, timeout: float = 0.5, interval: float = 0.02) -> int:
        """tree_fd_count() once two looks `interval` apart agree (at most `timeout`): a server that
        has just printed READY may still be opening what it opens after it (an event loop's poller)."""
        last = self.tree_fd_count()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            time.sleep(interval)
            now = self.tree_fd_count()
            if now == last:
                return now
            last = now
        return last

    def tree(self) -> list[int]:
        """The server's pid and every process descended from it, looked up now: its worker
        processes (--workers: they are the ones that serve), fork's children, and theirs."""
        found, todo = [], [self.pid]
        while todo:
            pid = todo.pop()
            if pid not in found:
                found.append(pid)
                todo.extend(children_of(pid))
        return found

    def cpu_seconds(self) -> float:
        """User + system CPU of the server's tree (its threads, its workers, its live children) and of
        the children it has reaped."""
        tick = os.sysconf("SC_CLK_TCK")
        total = 0
        for pid in self.tree():
            try:
                fields = stat_fields(f"/proc/{pid}/stat")
            except OSError:
                continue
            total += sum(int(f) for f in fields[11:15])   # utime stime cutime cstime
        return total / tick

    def rss_bytes(self) -> int:
        """Resident memory of the server's tree (its workers, its live children)."""
        total = 0
        for pid in self.tree():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
            except OSError:
                continue
        return total

    def state(self) -> str:
        """What a wire-side check observes of the process: "running", or how it ended."""
        if self.alive():
            return "running"
        code = self.wait_exit(1.0)
        return "exited" if code is None else f"exited with {code}"

    def signal_disposition(self, signum: int) -> str:
        """How the live server stands towards `signum`, from /proc: its state, where it sleeps, and
        whether the signal is ignored, blocked, still pending or caught; "" once it has gone. What a
        check that waited in vain for an exit shows, so that "killed after 2 s" says why."""
        try:
            status = dict(line.split(":", 1) for line in
                          Path(f"/proc/{self.pid}/status").read_text().splitlines() if ":" in line)
            wchan = _wchan(f"/proc/{self.pid}/wchan")
        except (OSError, ValueError):
            return ""
        bit = 1 << (signum - 1)
        masks = {k: int(status.get(k, "0").strip(), 16) & bit for k in ("SigIgn", "SigBlk", "SigPnd", "ShdPnd", "SigCgt")}
        name = signal.Signals(signum).name
        how = ("ignored" if masks["SigIgn"] else "caught" if masks["SigCgt"] else "default action")
        if masks["SigBlk"]:
            how += ", blocked"
        if masks["SigPnd"] or masks["ShdPnd"]:
            how += ", pending"
        return f"state {status.get('State', '?').strip()}, in {wchan}, {status.get('Threads', '?').strip()} thread(s), {name} {how}"

    def children(self) -> list[tuple[int, str]]:
        """(pid, state) of the server's child processes, zombies included, its worker processes
        (--workers) and their children not among them; none once it has exited and been reaped."""
        return [(pid, state) for pid, state in self._direct_children() if pid not in self.workers]

    def _direct_children(self) -> list[tuple[int, str]]:
        out = []
        for child in children_of(self.pid):
            try:
                state = stat_fields(f"/proc/{child}/stat")[0]
            except OSError:
                continue
            out.append((child, state))
        return out

    # -- stopping -------------------------------------------------------------------------
    def signal(self, signum: int) -> None:
        if signum in (signal.SIGTERM, signal.SIGINT, signal.SIGKILL):
            self.told_to_stop = True
        if self.proc is not None and self.proc.poll() is None:
            ignored = signum in (signal.SIGTERM, signal.SIGINT) and self.ignores(signum)
            if signum in (signal.SIGTERM, signal.SIGINT) and not self.threads_at_stop:
                self.threads_at_stop = self.thread_count()
            self.proc.send_signal(signum)
            if ignored and self.ignores(signum):
                # The kernel discards a signal its target ignores: it cannot end the process, so no
                # wait for that exit (wait_exit) can succeed, and none is spent on it.
                self.unheard = signal.Signals(signum).name

    def ignores(self, signum: int) -> bool:
        """Whether the server's disposition for `signum` is SIG_IGN (/proc: SigIgn)."""
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("SigIgn:"):
                    return bool(int(line.split()[1], 16) & (1 << (signum - 1)))
        except (OSError, ValueError):
            pass
        return False

    def graceful(self, signum: int) -> int:
        """The signal to send for a graceful stop by `signum`: itself, except SIGTERM to a server whose
        registry entry names another stop_signal (c-winsock: under Wine SIGTERM ends the process at
        once, SIGINT arrives as a console control event), which gets that one instead."""
        if signum == signal.SIGTERM and self.impl.stop_signal != "SIGTERM":
            return self.impl.stop_signum
        return signum

    def signal_group(self, signum: int) -> None:
        """`signum` to the server and everything in its process group (it leads a session of its
        own: start_new_session), i.e. the children it forked."""
        if self.proc is None:
            return
        self.told_to_stop = True
        try:
            os.killpg(self.proc.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    def wait_exit(self, timeout: float, settle: bool = False) -> int | None:
        """The exit code once the process has exited, or None if it is still running at `timeout`.

        A process already in the kernel's exit path is waited for (EXITING_GRACE). With `settle` (the
        stop that ends a scenario, after its clients have gone; never a check of how fast a stop
        is), so is a threads server still ending the threads of connections just closed, for as
        long as their number keeps falling (at most EXITING_GRACE)."""
        if self.proc is None:
            return None
        if self.unheard is not None:
            timeout = 0.0   # the exit waited for is the stop's, and that stop was discarded: look once
        try:
            self.exit_code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            if settle and not self.exiting():
                return self._wait_while_threads_fall()
            if not self.exiting():
                return None
            # It has made its exit already and the kernel is tearing it down (unmapping its
            # memory): on a busy machine that alone can take seconds, and none of it is the
            # server's doing. Its exit code is set; wait for it, bounded.
            try:
                self.exit_code = self.proc.wait(EXITING_GRACE)
            except subprocess.TimeoutExpired:
                return None
        return self.exit_code

    def still_running(self, waited: float | None = None) -> str:
        """What a check that waited in vain for its exit shows: how long it waited, or, when the stop
        signal was discarded (the server ignores it), that no wait was spent at all."""
        if self.unheard is not None:
            return f"still running: it ignores {self.unheard} (SIG_IGN), so the kernel discards it"
        return "still running" if waited is None else f"still running after {waited:g} s"

    def _wait_while_threads_fall(self) -> int | None:
        """Told to stop while it still ended the threads of connections just closed (hundreds, on a
        busy machine), a threads server is finishing, not stuck: wait while their number keeps
        falling below what it was at the stop signal (looked at every THREADS_FALLING seconds),
        EXITING_GRACE at most; the exit code, or None."""
        assert self.proc is not None
        deadline = time.monotonic() + EXITING_GRACE
        last = self.threads_at_stop
        while 1 < (now := self.thread_count()) < last and time.monotonic() < deadline:
            last = now
            try:
                self.exit_code = self.proc.wait(min(THREADS_FALLING, max(0.0, deadline - time.monotonic())))
                return self.exit_code
            except subprocess.TimeoutExpired:
                continue
        if self.exiting():   # it got as far as its exit meanwhile
            return self.wait_exit(0.0)
        return self.proc.poll()

    def thread_count(self) -> int:
        """The server process's threads (/proc status), 0 once it has gone."""
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("Threads:"):
                    return int(line.split()[1])
        except (OSError, ValueError):
            pass
        return 0

    def exiting(self) -> bool:
        """Whether the server's main thread is in the kernel's exit path (/proc stat flags: PF_EXITING)."""
        try:
            fields = stat_fields(f"/proc/{self.pid}/stat")
            return bool(int(fields[6]) & PF_EXITING)
        except (OSError, ValueError, IndexError):
            return False

    def stop(self, timeout: float = STOP_GRACE) -> int | None:
        """SIGTERM (or its registry entry's stop_signal), wait up to `timeout`; SIGKILL if it will not
        go. The exit code (None: it had to be killed)."""
        if self.proc is None:
            return None
        self.told_to_stop = True   # whoever stops it judges how it ended
        if self.proc.poll() is None:
            self.signal(self.graceful(signal.SIGTERM))
            if self.wait_exit(timeout) is None:
                self.kill_reason = self.why_killed(timeout)
                self.kill()
                return None
        self.exit_code = self.proc.returncode
        return self.exit_code

    def why_killed(self, waited: float) -> str:
        """What a check observes of a stop the kit ends with SIGKILL after waiting `waited` for the
        exit in vain: how the server stood towards its stop signal then (from /proc), or that it
        ignores it, so that no wait was spent."""
        if self.unheard is not None:
            return f"killed at once: it ignores {self.unheard} (SIG_IGN), so the kernel discards it"
        stop = self.graceful(signal.SIGTERM)
        # and its workers or children, which a supervisor or fork's parent may be waiting for
        others = [f"pid {pid}: {where}" for pid in self.tree()[1:] if (where := where_thread_stands(pid, pid))]
        tail = ""
        if others:
            tail = "; its other processes: " + ", ".join(others[:4]) + (
                f" and {len(others) - 4} more" if len(others) > 4 else "")
        return f"killed after {waited:g} s ({self.signal_disposition(stop) or 'gone by then'}{tail})"

    def how_stopped(self) -> int | str | None:
        """What a check of stop() observes: the exit code, or why the kit had to kill the server."""
        return self.kill_reason or self.exit_code

    def kill(self) -> None:
        """SIGKILL the server and everything in its process group (forked children), by its pid."""
        if self.proc is None:
            return
        pids = [*self.workers, *(pid for pid, _ in self.children())] if self.proc.poll() is None else []
        self.signal_group(signal.SIGKILL)
        for pid in pids:   # a child that left the group (setsid) is still the server's to end
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass

    def leftovers(self) -> list[int]:
        """The processes still in the server's session once it has gone: the children it forked
        that outlived it (socat's, serving a connection whose client vanished). A session lives as
        long as one of its processes does, and its id (the server's pid) is not reused meanwhile,
        so every process found in it is the server's."""
        if self.proc is None:
            return []
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = stat_fields(entry / "stat")
            except OSError:
                continue
            if int(fields[3]) == self.proc.pid and fields[0] != "Z":   # the session id
                found.append(int(entry.name))
        return found

    def close(self, grace: float = STOP_GRACE) -> None:
        """Stop it (SIGTERM, then SIGKILL after `grace` seconds), end whatever it left running in its
        session, and release what it holds."""
        if self.proc is not None and self.proc.poll() is None:
            self.stop(grace)
        if self.proc is not None:
            for pid in self.leftovers():
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        if self._reader is not None:
            # Its stdout ends when the last process holding it does; closing the pipe while the
            # reader still blocks on it would wait for that forever.
            self._reader.join(2.0)
        if self.proc is not None and self.proc.stdout is not None and not (self._reader and self._reader.is_alive()):
            self.proc.stdout.close()
        if not self._stderr_file.closed:
            self._stderr_file.close()
        if self in LIVE:
            LIVE.discard(self)
            if self.proc is not None and self.proc.poll() is not None:
                for hook in CLOSED:
                    hook(self.proc.pid)

    def __enter__(self) -> "ServerProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
