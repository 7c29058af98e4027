"""What a scenario is, what it may do to a server, and how its run is graded.

A scenario is defined once (in `acceptloop.suite.scenarios`): an id grouped by
service or area, a one-line description, the requirement it checks (MUST,
SHOULD or INFO, with the words it follows) and its client steps. Running it
against one implementation and model gives a Result holding the checks, the
transcripts, any figures, and the grade:

    OK          every check held
    NON-STRICT  a SHOULD check failed
    FAILED      a MUST check failed
    ERROR       the kit itself failed (a scenario's own step, a command it cannot execute):
                nothing is known of the server
    INFO        the scenario only records what happened, a case cannot apply, or only checks
                on a basis the server does not follow failed (the observation is shown)
    MISSING     the implementation does not offer what the scenario needs

Every check names its basis, what it rests on:

    rfc         the RFC's service as a wire observer sees it, and staying up while doing it
                (the listener survives, the next client is served, nothing spins, memory and
                descriptors stay bounded)
    protocol    the kit's own choices in docs/protocol.md: the daytime format, the chargen
                pattern, the message exchange, FIN-then-linger, the limits' defaults
    contract    the server contract: arguments, LISTENING/READY, exit codes, stderr wording

An implementation's registry entry says which bases it follows; a check on any other is never
FAILED, only shown.
"""
from __future__ import annotations

import errno
import re
import signal
import socket
import time
import traceback
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from acceptloop import _protocol as P
from acceptloop.suite.client import Client, StepTimeout
from acceptloop.suite.process import (STOP_GRACE, LaunchError, ServerProcess, ServerStartError, Sched,
                                      machine_busy_seconds, runnable_threads, sched_of,
                                      wait_until, where_thread_stands)
from acceptloop.suite.registry import Implementation

OK, NON_STRICT, FAILED, ERROR, INFO, MISSING = "OK", "NON-STRICT", "FAILED", "ERROR", "INFO", "MISSING"
GRADES = (OK, NON_STRICT, FAILED, ERROR, INFO, MISSING)
MUST, SHOULD = "MUST", "SHOULD"
BASIS_RFC, BASIS_PROTOCOL, BASIS_CONTRACT = "rfc", "protocol", "contract"
BASES = (BASIS_RFC, BASIS_PROTOCOL, BASIS_CONTRACT)


KIT_STALLED = "kit stalled"   # the start of an ERROR's reason when the kit's own loop was late (Pace)
                              # or the machine kept the server from a CPU (Starved)


class KitError(Exception):
    """The kit could not do what a scenario asked (a bug, or a machine that does not let it):
    the cell is ERROR, never blamed on the server."""

# What must never appear on a server's stderr (the contract: never a traceback, never a PHP
# warning), and the sanitizers' reports. The message service's log lines quote what a client
# sent, so they are left out before looking.
STDERR_ALARMS = {
    "a Python traceback": re.compile(r"^Traceback \(most recent call last\)", re.M),
    "a PHP error or warning": re.compile(r"^(PHP )?(Warning|Notice|Deprecated|Fatal error|Parse error):", re.M),
    "a sanitizer report": re.compile(r"ERROR: (Address|Leak|Thread)Sanitizer|runtime error: |SUMMARY: \w+Sanitizer"),
}
CONTRACT = "contract (docs/protocol.md)"
# "At once" in docs/protocol.md (the message answered, a connection over --max-conns closed, new
# connects refused after SIGTERM, an idle server's exit): a bound of its own, far below the client's
# step timeout (client.STEP_TIMEOUT), which only says the kit gave up waiting.
AT_ONCE = 1.0
# How long "nothing happens" is watched for where a requirement has a "not before" side (a message
# not answered before its end).
QUIET = 0.5
# After a scenario's clients are gone, how long a shared server may take to let go of their
# descriptors (a chargen connection ends only when a send fails; a fork child must exit first).
SETTLE = 3.0


@dataclass(frozen=True)
class Scenario:
    id: str                       # "echo.half_close_flush": group, then name
    description: str              # one line
    level: str                    # MUST, SHOULD or INFO
    source: str                   # "RFC 862", "docs/protocol.md", ...
    text: str                     # the requirement's own words
    run: Callable[["Context"], None]
    service: str                  # the service it talks to
    shared: bool = True           # talks to the (impl, model, service) server the runner keeps;
                                  # False: starts its own servers
    needs: frozenset[str] = frozenset()   # contract options it passes (--grace, ...)
    fingerprint: tuple[str, ...] = ()     # observation keys every implementation must agree on
    timeout: float = 60.0
    basis: str = BASIS_RFC        # what its checks rest on unless a check says otherwise
    wants: frozenset[str] = frozenset()   # contract options it passes when offered, goes without otherwise
    chooses: frozenset[str] = frozenset()  # what it sets on the command line: "host", "port" (MISSING
                                           # for a server whose command does not take it); a scenario
                                           # with several servers at once chooses their ports
    uses: frozenset[str] = frozenset()     # services it starts servers of besides its own
    exclusive: bool = False       # its bounds are tight in real time (a fraction of a second, both
                                  # sides): it runs after the others, one such cell per CPU
    transport: str = "tcp"        # "udp": its servers are started with --transport udp (suite/datagram.py)

    @property
    def group(self) -> str:
        return self.id.split(".", 1)[0]

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "group": self.group, "description": self.description, "level": self.level,
                "source": self.source, "text": self.text, "service": self.service, "shared": self.shared,
                "needs": sorted(self.needs), "wants": sorted(self.wants), "chooses": sorted(self.chooses),
                "uses": sorted(self.uses), "exclusive": self.exclusive,
                "basis": self.basis, "transport": self.transport}

    def missing_reason(self, impl: Implementation, model: str | None = None) -> str | None:
        """Why `impl` (in `model`, when given) cannot take part in this scenario, or None."""
        unavailable = impl.unavailable()
        if unavailable:
            return f"{impl.name}: {unavailable}"
        lacking_services = [s for s in (self.service, *sorted(self.uses)) if s not in impl.services]
        if lacking_services:
            return f"{impl.name} does not offer the {' and '.join(lacking_services)} service"
        if self.transport not in impl.transports:
            return f"{impl.name} offers no {self.transport}"
        if self.transport == "udp" and model is not None and model not in P.DATAGRAM_MODELS:
            return f"a udp server has no accept: the {model} model does not apply (udp: iterative or event)"
        if self.transport != "tcp" and impl.ready != "line":
            return (f"{impl.name} prints no READY line, and a {self.transport} port cannot be polled by "
                    "connecting to it")
        if not self.shared and not impl.launchable:
            return f"{impl.name} runs elsewhere ({impl.address[0]}:{impl.address[1]}); the kit cannot start or stop it"
        lacking = sorted(self.needs - impl.options)
        if lacking:
            return f"{impl.name} does not accept " + ", ".join(f"--{o}" for o in lacking)
        fixed = sorted(what for what in self.chooses if not impl.takes(what))
        if fixed and impl.launchable:
            return (f"{impl.name}'s command takes no " + " or ".join("{" + w + "}" for w in fixed)
                    + ", which this case must choose")
        return None


@dataclass
class Check:
    what: str
    ok: bool
    level: str
    expected: str = ""
    observed: str = ""
    basis: str = BASIS_RFC
    followed: bool = True         # the implementation follows this basis: a failure counts


@dataclass
class Figure:
    name: str
    value: float
    unit: str
    note: str = ""


@dataclass
class Result:
    scenario: str
    impl: str
    model: str
    grade: str
    reason: str = ""                       # the first failed check, or why MISSING/INFO
    checks: list[Check] = field(default_factory=list)
    transcripts: list[dict[str, Any]] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    observed: dict[str, Any] = field(default_factory=dict)
    duration_s: float = 0.0
    server: dict[str, Any] = field(default_factory=dict)   # command, pid, exit code, stderr

    @property
    def cell(self) -> str:
        return f"{self.impl}-{self.model}-{self.scenario}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Result":
        d = dict(d)
        d["checks"] = [Check(**c) for c in d.get("checks", [])]
        d["figures"] = [Figure(**f) for f in d.get("figures", [])]
        return cls(**d)


class Pace:
    """The longest gap between two turns of one of the kit's own loops (a client that must read, send
    or look all along). A timing check is only as good as the kit's own punctuality: a client that
    was not scheduled for longer than `bound` (a fraction of the timer being judged) may have made
    the server's timer fire for real, and then the check cannot say whose fault a failure is."""

    def __init__(self, ctx: "Context", what: str, bound: float) -> None:
        self.ctx, self.what, self.bound = ctx, what, bound
        self.last: float | None = None
        self.longest = 0.0

    def turn(self) -> None:
        now = time.monotonic()
        if self.last is not None:
            self.longest = max(self.longest, now - self.last)
        self.last = now

    def done(self) -> None:
        """Record the stall, if there was one, for grade()."""
        if self.longest > self.bound:
            self.ctx.stalls.append(f"the kit's {self.what} went {self.longest:.2f} s without a turn "
                                   f"(its bound: {self.bound:g} s)")


class Starved:
    """Whether a timed step the server missed was the machine's doing: a process that serves the
    step (`holders`) was runnable but kept from a CPU for at least half the step's bound, or was
    held in the kernel uninterruptibly (state D) when the bound ran out, while the server's
    processes together used less than half of the CPU time the machine spent since this watch
    began (so it was not its own processes that took the CPU it waited for). Such a miss is a
    stall like Pace's: grade() makes the cell ERROR (KIT_STALLED) and the runner runs it again
    alone, where a server that is really late fails on its own. Call step() as each timed step
    starts, and missed() when one has missed its bound."""

    def __init__(self, ctx: "Context", holders: list[int] | Callable[[], list[int]],
                 server_cpu: Callable[[], float]) -> None:
        """`holders`: the pids, or what lists them at each look (server.tree: a fork child born
        during the step, to serve it, is watched too; all of its wait falls within the step)."""
        self.ctx, self.holders, self.server_cpu = ctx, holders, server_cpu
        self.cpu_from, self.busy_from = server_cpu(), machine_busy_seconds()
        self.at_step: dict[int, Sched] = {}
        self.stood = ""   # after missed(): where the server's threads stood at the miss (stood_at)

    def _pids(self) -> list[int]:
        return self.holders() if callable(self.holders) else self.holders

    def _sched(self) -> dict[int, Sched]:
        return {tid: s for pid in self._pids() for tid, s in sched_of(pid).items()}

    def _runnable(self) -> set[int]:
        return {tid for pid in self._pids() for tid in runnable_threads(pid)}

    def step(self) -> None:
        self.at_step = self._sched()

    def missed(self, bound: float) -> bool:
        """After a step that missed `bound`: record the stall if the machine kept a holder waiting.
        A wait is counted once it is over, so a thread still runnable is given up to `bound` more to
        be run first."""
        share = (self.server_cpu() - self.cpu_from) / max(machine_busy_seconds() - self.busy_from, 1e-3)
        at_miss, queued = self._sched(), self._runnable()
        standing = {tid: (pid, where_thread_stands(pid, tid)) for pid in self._pids() for tid in sched_of(pid)}

        def run_since() -> bool:
            now, still = self._sched(), self._runnable()
            return all(tid not in now or tid not in still or now[tid].runs > at_miss[tid].runs
                       for tid in queued if tid in at_miss)
        wait_until(run_since, bound)
        now = self._sched()
        waits = {tid: s.waited - (self.at_step[tid].waited if tid in self.at_step else 0.0) for tid, s in now.items()}
        self.stood = stood_at(standing, waits)
        waited, tid = max(((w, tid) for tid, w in waits.items()), default=(0.0, None))
        if share >= 0.5:
            return False
        if waited >= bound / 2:
            self.ctx.stalls.append(f"the server's thread {tid} waited {waited:.2f} s for a CPU during a "
                                   f"{bound:g} s step, while the server used {share:.0%} of the CPU time the "
                                   f"machine spent: the machine was busy with other processes")
            return True
        # Held in the kernel, uninterruptible (D), at the miss: not a wait the server chose. Seen:
        # php-ffi/fork's parent in dup_mmap, a fork copying its address space on a busy machine.
        blocked = next(((t, where) for t, (_pid, where) in standing.items() if where.startswith("D ")), None)
        if blocked is None:
            return False
        self.ctx.stalls.append(f"the server's thread {blocked[0]} was held in the kernel ({blocked[1]}, "
                               f"uninterruptible) when a {bound:g} s step ran out, while the server used "
                               f"{share:.0%} of the CPU time the machine spent: the machine's doing")
        return True


def stood_at(standing: dict[int, tuple[int, str]], waits: dict[int, float], most: int = 4) -> str:
    """What a missed step's reader needs to tell a server blocked from one kept from a CPU: each
    thread (by process; the longest waits for a CPU first, at most `most` of them) as the kernel had
    it at the miss, with the time it spent queued (runnable but waiting for a CPU) during the step:
    "pid 812: S in do_sys_poll, queued 0.01 s; pid 815: D in ..."; a thread other than its
    process's first is named by its id too."""
    order = sorted(standing, key=lambda tid: -waits.get(tid, 0.0))
    parts = []
    for tid in order[:most]:
        pid, where = standing[tid]
        who = f"pid {pid}" if tid == pid else f"pid {pid} thread {tid}"
        parts.append(f"{who}: {where or 'gone'}, queued {waits.get(tid, 0.0):.2f} s")
    if len(order) > most:
        parts.append(f"{len(order) - most} more thread(s)")
    return "; ".join(parts) or "no process left"


class Context:
    """What a scenario's steps work with: its server, its clients, and where its checks go."""

    def __init__(self, scenario: Scenario, impl: Implementation, model: str,
                 server: ServerProcess | None) -> None:
        self.scenario = scenario
        self.impl = impl
        self.model = model
        self.server = server
        self.checks: list[Check] = []
        self.clients: list[Client] = []
        self.figures: list[Figure] = []
        self.observed: dict[str, Any] = {}
        self.own_servers: list[ServerProcess] = []
        self.info_reason: str | None = None
        self.errors: list[str] = []   # the kit's own failures: the cell is ERROR
        self.stalls: list[str] = []   # the kit's own loops that were not run in time (Pace)
        self.missed_where = ""        # where the server's threads stood at server_within's last miss

    # -- servers ---------------------------------------------------------------------------
    @property
    def address(self) -> tuple[str, int]:
        assert self.server is not None, "this scenario starts its own servers"
        return self.server.address

    def server_process(self, service: str | None = None, host: str = "127.0.0.1", port: int = 0,
                       options: dict[str, str | None] | None = None, env: dict[str, str] | None = None,
                       argv: list[str] | None = None, **kw: Any) -> ServerProcess:
        """A server of this implementation and model, not yet started; stopped when the scenario ends.

        Every option must be one the scenario declares: in `needs` (the cell is MISSING without it)
        or in `wants` (passed only when the implementation accepts it). Anything else is a kit bug
        (KitError): a server must never be handed an option its entry did not offer."""
        service = service or self.scenario.service
        if service != self.scenario.service and service not in self.scenario.uses:
            raise KitError(f"{self.scenario.id} starts a {service} server without declaring it in uses")
        given = dict(options or {})
        undeclared = sorted(set(given) - self.scenario.needs - self.scenario.wants)
        if undeclared:
            raise KitError(f"{self.scenario.id} passes {', '.join('--' + o for o in undeclared)} "
                           "without declaring it in needs or wants")
        given = {name: value for name, value in given.items() if name in self.impl.options}
        kw.setdefault("transport", self.scenario.transport)
        proc = ServerProcess(self.impl, service, self.model, host=host, port=port,
                             options=given, env=env, argv=argv, **kw)
        self.own_servers.append(proc)
        return proc

    def start_server(self, **kw: Any) -> ServerProcess:
        return self.server_process(**kw).start()

    def server_within(self, server: ServerProcess, predicate: Callable[[], bool], bound: float) -> bool:
        """Wait up to `bound` for what the server must do by then (let go of a connection, end a
        child): True once `predicate` holds. A miss while the machine kept the server's processes
        from a CPU is recorded as a stall (Starved), so the check that follows is the machine's."""
        starved, self.missed_where = self.watch(server), ""
        if wait_until(predicate, bound):
            return True
        if starved is not None:
            starved.missed(bound)
            self.missed_where = starved.stood
        return False

    def exit_within(self, server: ServerProcess, bound: float) -> int | None:
        """The server's exit code once it has exited within `bound` (wait_exit), else None: a stop it
        must make by then. A miss while the machine kept its processes from a CPU is a stall
        (Starved), as in server_within; any other miss leaves where they stood in missed_where."""
        starved, self.missed_where = self.watch(server), ""
        code = server.wait_exit(bound)
        if code is None and starved is not None and server.alive():
            starved.missed(bound)
            self.missed_where = starved.stood
        return code

    def watch(self, server: ServerProcess) -> Starved | None:
        """A Starved over `server`'s processes, its step begun now; None for a server the kit does
        not run (checked by its address: it has no processes the kit can watch)."""
        if not server.watchable:
            return None
        starved = Starved(self, server.tree, server.cpu_seconds)
        starved.step()
        return starved

    def start_servers(self, *configs: dict[str, Any]) -> list[ServerProcess]:
        """Several servers (each given server_process's keywords), spawned together and then
        waited for: their start-ups overlap. Launchable implementations only; each needs a port of
        its own, so the scenario must declare chooses=("port",)."""
        if len(configs) > 1 and "port" not in self.scenario.chooses:
            raise KitError(f"{self.scenario.id} starts {len(configs)} servers at once without declaring "
                           "chooses=('port',)")
        procs = [self.server_process(**kw) for kw in configs]
        for proc in procs:
            proc.spawn()
        return [proc.wait_ready() for proc in procs]

    # -- clients ---------------------------------------------------------------------------
    def connect(self, address: tuple[str, int] | None = None, label: str | None = None,
                keep: bool = True, timeout: float | None = None, small_segments: bool = False) -> Client:
        client = Client(address or self.address, label=label or f"client {len(self.clients) + 1}",
                        keep=keep, small_segments=small_segments, **({"timeout": timeout} if timeout else {}))
        self.clients.append(client)
        return client

    # -- checks and records ------------------------------------------------------------------
    def check(self, ok: bool, what: str, expected: Any = "", observed: Any = "", level: str | None = None,
              basis: str | None = None) -> bool:
        """Record one check; returns `ok`. `basis` (default: the scenario's) is what it rests on:
        a failure on a basis the implementation does not follow is shown, never FAILED."""
        basis = basis or self.scenario.basis
        if basis not in BASES:
            raise KitError(f"{self.scenario.id}: unknown basis {basis!r}")
        self.checks.append(Check(what=what, ok=bool(ok), level=level or self.scenario.level,
                                 expected=_short(expected), observed=_short(observed), basis=basis,
                                 followed=basis in self.impl.follows))
        return bool(ok)

    def check_stream(self, stream: Any, what: str, level: str | None = None, basis: str | None = None) -> bool:
        """Check that a stream (client.Stream, given what to expect with expect() before the bytes
        came) holds exactly what was expected. A mismatch shows its first differing offset and the
        bytes around it, hex, expected beside observed."""
        found = stream.mismatch()
        if found is None:
            return self.check(True, what, f"{stream.count} bytes", f"{stream.count} bytes", level=level, basis=basis)
        expected, observed = found
        return self.check(False, what, expected, observed, level=level, basis=basis)

    def check_descriptors(self, held: int, bound: int, what: str, expected: Any = None,
                          basis: str | None = None) -> bool:
        """Check a descriptor count the scenario read once (`held` at most `bound`). When the registry
        entry says the server's sockets are not descriptors of its process (c-winsock: Wine keeps
        them in the wineserver), the count says nothing of its connections: it is shown as a note,
        not graded. Every descriptor count a scenario grades goes through here."""
        why = self.impl.sockets_not_descriptors
        if why:
            self.note(f"{what}: not graded ({held} descriptors, {bound} before): {why}")
            return True
        return self.check(held <= bound, what, f"<= {bound} descriptors" if expected is None else expected, held,
                          basis=basis)

    def follows(self, basis: str) -> bool:
        """Whether the implementation follows `basis` (a scenario may skip what would only be shown)."""
        return basis in self.impl.follows

    def observe(self, key: str, value: Any) -> None:
        """Record a fact of the observation (the keys in `fingerprint` are compared across implementations)."""
        self.observed[key] = value

    def figure(self, name: str, value: float, unit: str, note: str = "") -> None:
        self.figures.append(Figure(name, value, unit, note))

    def note(self, text: str) -> None:
        """A remark for the reader that grades nothing."""
        self.checks.append(Check(what=text, ok=True, level="INFO"))

    def info(self, reason: str) -> None:
        """Grade this run INFO with `reason`: the case cannot apply to this implementation or model."""
        self.info_reason = reason

    def threads_too_dear(self, what: str) -> bool:
        """For a case whose bound assumes a thread is cheap (hundreds started within its time or
        memory bound): in the threads model of a server whose registry entry says its threads cost
        more (c-winsock: a Wine thread), grade the run INFO with that reason and return True."""
        why = self.impl.thread_cost_why
        if why and self.model == "threads":
            self.info(f"{what} cannot apply to {self.impl.name}'s threads model: {why}")
            return True
        return False

    def descriptors_unseen(self, what: str) -> bool:
        """For a case that limits or counts the server process's descriptors: when its registry entry
        says its sockets are not descriptors of its process (c-winsock: Wine keeps them in the
        wineserver), grade the run INFO with that reason and return True; the caller returns."""
        why = self.impl.sockets_not_descriptors
        if why:
            self.info(f"{what} cannot apply to {self.impl.name}: {why}")
        return bool(why)


def _short(value: Any, limit: int = 300) -> str:
    text = value.hex() if isinstance(value, (bytes, bytearray)) and not _printable(value) else (
        value.decode("ascii") if isinstance(value, (bytes, bytearray)) else str(value))
    return text if len(text) <= limit else text[:limit - 20] + f"... ({len(text)} chars)"


def _printable(data: bytes | bytearray) -> bool:
    return all(32 <= b < 127 or b in (9, 10, 13) for b in data)


def grade(scenario: Scenario, ctx: Context) -> tuple[str, str]:
    """The grade and its one-line reason.

    The kit's own failure comes first (ERROR: nothing it saw can be trusted), then a case that
    cannot apply (INFO), then the checks on the bases the implementation follows (a MUST broken:
    FAILED; a SHOULD: NON-STRICT). Failures only on bases it does not follow are INFO, with the
    first one's observation as the reason."""
    if ctx.errors:
        return ERROR, ctx.errors[0]
    if ctx.info_reason is not None:
        return INFO, ctx.info_reason
    failed = [c for c in ctx.checks if not c.ok]
    if ctx.stalls and failed:
        # A failure beside the kit's own stall is not the server's to carry (runner.run_cell runs
        # such a cell once more).
        return ERROR, f"{KIT_STALLED}: {ctx.stalls[0]}; so this cannot judge: {_reason(failed[0])}"
    if scenario.level == "INFO":
        return INFO, failed[0].what if failed else ""
    counted = [c for c in failed if c.followed]
    must = [c for c in counted if c.level == MUST]
    if must:
        return FAILED, _reason(must[0])
    if counted:
        return NON_STRICT, _reason(counted[0])
    if failed:
        first = failed[0]
        return INFO, (f"{_reason(first)} (a {first.basis} check; {ctx.impl.name} follows "
                      f"{', '.join(sorted(ctx.impl.follows)) or 'none'})")
    return OK, ""


def _reason(c: Check) -> str:
    parts = [c.what]
    if c.expected or c.observed:
        parts.append(f"expected {c.expected or '-'}, observed {c.observed or '-'}")
    return "; ".join(parts)


# The contract's line for a bind that failed because the address is in use: `bind ADDRESS: TEXT (EADDRINUSE)`.
_BIND_IN_USE = re.compile(r"bind (\[[0-9A-Fa-f:.]+\]|[0-9.]+):(\d+): .*\((?:WSA)?EADDRINUSE\)")


def held_elsewhere(stderr: str) -> str | None:
    """The address (as `host:port`) of a start that failed on a bind in use, when that address is
    held right now by a socket that is not the server's (it has exited) and not in TIME_WAIT (a bind
    with SO_REUSEADDR fails too): a port the kit chose (0, or one free a moment ago) that a client
    of another lane took meanwhile. None for any other failure, and for an address nobody holds: a
    server that cannot rebind its own last run's port (no SO_REUSEADDR) is the server's doing."""
    lines = stderr.strip().splitlines()
    found = _BIND_IN_USE.fullmatch(lines[-1].strip()) if lines else None
    if found is None:
        return None
    host, port = found.group(1).strip("[]"), int(found.group(2))
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                return found.group(1) + f":{port}"
    return None


def _failure_check(ctx: Context, e: BaseException) -> None:
    """What an exception out of a scenario's steps says: about the server (a failed check), or
    about the kit (an error)."""
    detail = str(e) or type(e).__name__
    if isinstance(e, LaunchError):
        ctx.errors.append(f"{e.summary}: {detail}")
    elif isinstance(e, ServerStartError):
        if e.stderr.strip():
            detail += f" (stderr: {e.stderr.strip().splitlines()[-1][:200]})"
        if (held := held_elsewhere(e.stderr)) is not None:
            ctx.stalls.append(f"{held}, which the server could not bind, is held by another socket of this machine "
                              "(a client of another lane took it as its own port, say): the machine's doing")
        # Not printing READY breaks the contract; a port that never accepts breaks the service,
        # unless the scenario started it the contract's way (`--host ::`, an option, a limit): then
        # failing to start that way is a contract matter (socat cannot bind `::`).
        contract = ctx.impl.ready == "line" or ctx.scenario.basis == BASIS_CONTRACT
        ctx.check(False, f"the server starts: {detail}", "ready", "not ready", level=MUST,
                  basis=BASIS_CONTRACT if contract else BASIS_RFC)
    elif isinstance(e, StepTimeout):
        ctx.check(False, f"the server answers every step in time: {detail}", level=MUST)
    elif isinstance(e, AssertionError):
        ctx.check(False, detail, level=MUST)   # a scenario's own way of saying a MUST broke
    elif isinstance(e, KitError) or isinstance(e, socket.gaierror):
        ctx.errors.append(f"kit error: {type(e).__name__}: {detail}")
    elif isinstance(e, OSError):
        # A socket call of the client failed in a way the scenario did not expect of this server
        # (resets and closes the protocol allows are recorded in the transcript, not raised).
        ctx.check(False, f"the server keeps the connection usable: {type(e).__name__}: {detail}", level=MUST)
    else:
        ctx.errors.append(f"kit error: {type(e).__name__}: {detail} at {_where(e)}")


def _where(e: BaseException) -> str:
    """file:line of the innermost frame of e's traceback, for a kit error's one line."""
    frames = traceback.extract_tb(e.__traceback__)
    return f"{frames[-1].filename.rsplit('/', 2)[-1]}:{frames[-1].lineno}" if frames else "?"


def execute(scenario: Scenario, impl: Implementation, model: str, server: ServerProcess | None) -> Result:
    """Run one scenario against one implementation and model, and grade it."""
    ctx = Context(scenario, impl, model, server)
    started = time.monotonic()
    watch = server is not None and server.watchable
    if server is not None:
        server.mark_stderr()
    # The descriptors it holds idle, before the scenario: for a server that has only just started,
    # once what it opens after READY (an event loop's poller) is open.
    fresh = watch and time.monotonic() - server.started_at - server.ready_after < 1.0
    baseline = (server.steady_tree_fd_count() if fresh else server.tree_fd_count()) if watch else 0
    try:
        scenario.run(ctx)
    except Exception as e:  # noqa: BLE001 - graded: the server's failure, or the kit's (ERROR)
        _failure_check(ctx, e)
    except BaseException:
        # Ctrl-C or the kit's SIGTERM: every server this scenario started goes before the stop
        # goes on up (the runner stops the shared ones).
        for own in ctx.own_servers:
            own.close(grace=STOP_GRACE)
        raise
    finally:
        for client in ctx.clients:
            client.close()
    stderr_parts = []
    server_info: dict[str, Any] = {}
    if watch:
        # The server may still be acting on the scenario's last close or reset (a chargen client
        # can only leave by resetting). Wait until it has let go of every connection the scenario
        # opened, so that whatever that does to it is blamed on this scenario and no later one.
        # A connection left open after its client has gone is a leaked descriptor: a MUST, bounded.
        # (fork's children, say, kept from a CPU while they would exit: a stall)
        settled = ctx.server_within(server, lambda: not server.alive() or server.tree_fd_count() <= baseline,
                                    SETTLE)
        if not settled and server.impl.sockets_not_descriptors:
            # Its descriptors are not its sockets (its registry entry says why): the count says
            # nothing about the connections it holds, so it blames nobody.
            ctx.note(f"descriptors not back to {baseline} within {SETTLE:g} s; not graded: "
                     f"{server.impl.sockets_not_descriptors}")
        elif not settled:
            held = server.tree_fd_count() - baseline
            ctx.check(False, f"the server lets go of every connection within {SETTLE:g} s of its client leaving",
                      f"<= {baseline} descriptors (as before the scenario)",
                      f"{held} more descriptor(s) {SETTLE:g} s after the last client closed; the server "
                      f"then: {ctx.missed_where}", level=MUST,
                      basis=BASIS_RFC)
        elif server.alive() and server.tree_fd_count() < baseline:
            server.wait_exit(1.0)   # fewer descriptors than it started with: it may be exiting
    # A server that did not survive is judged on what the scenario put it through: on the RFC's
    # basis after a client's doing, on the contract's after a limit the kit set (a process limit).
    if server is not None:
        alive = server.alive()
        stderr = server.stderr_since_mark()
        stderr_parts.append(stderr)
        server_info = {"command": server.argv if server.proc else None, "pid": server.proc.pid if server.proc else None,
                       "stderr": stderr[-4000:], "exit_code": None if alive else server.exit_code,
                       "shared": True}
        if not alive:
            server.wait_exit(1.0)
            server_info["exit_code"] = server.exit_code
            ctx.check(False, "the server is still running after the scenario", "running",
                      f"exited with {server.exit_code}", level=MUST, basis=scenario.basis)
    # A server the scenario started and left running must still be running, and must stop cleanly:
    # a crash caused by the scenario's last reset shows here. They are all told at once, so that a
    # scenario's several servers take one STOP_GRACE between them, not one each.
    judged = [own for own in ctx.own_servers
              if own.proc is not None and own.listening and not own.told_to_stop and own.impl.launchable]
    stopping = []
    for own in judged:
        if not own.alive():
            ctx.check(False, "the server is still running after the scenario", "running",
                      f"exited with {own.wait_exit(1.0)}", level=MUST, basis=scenario.basis)
        else:
            own.signal(own.graceful(signal.SIGTERM))
            stopping.append(own)
    deadline = time.monotonic() + STOP_GRACE
    for own in stopping:
        # Idle by now (every client is closed): the contract says it exits at once (wait_exit gives
        # more time to one already exiting, or still ending the threads of closed connections).
        code = own.wait_exit(max(0.0, deadline - time.monotonic()), settle=True)
        observed: Any = code
        if code is None:
            observed = own.why_killed(STOP_GRACE)
            own.kill()
        ctx.check(code == P.EXIT_OK, "the server then exits 0 on SIGTERM", 0, observed, level=MUST,
                  basis=BASIS_CONTRACT)
    for own in ctx.own_servers:
        if own.proc is not None and own.proc.poll() is None:
            own.stop(STOP_GRACE)
        stderr_parts.append(own.stderr())
        server_info.setdefault("own", []).append(
            {"command": own.argv if own.proc else None, "exit_code": own.exit_code, "stderr": own.stderr()[-4000:]})
        own.close()
    alarms = stderr_alarms("\n".join(stderr_parts))
    if alarms:
        ctx.check(False, "the server's stderr holds no traceback, PHP warning or sanitizer report",
                  "none", ", ".join(alarms), level=MUST, basis=BASIS_CONTRACT)
    result = Result(scenario=scenario.id, impl=impl.name, model=model, grade=OK,
                    checks=ctx.checks, transcripts=[c.transcript.to_dict() for c in ctx.clients],
                    figures=ctx.figures, observed=ctx.observed, duration_s=time.monotonic() - started,
                    server=server_info)
    result.grade, result.reason = grade(scenario, ctx)
    return result


def stderr_alarms(stderr: str) -> list[str]:
    """What, of STDERR_ALARMS, `stderr` holds (leaving out the message service's log lines)."""
    own = "\n".join(line for line in stderr.splitlines() if not line.startswith(P.MESSAGE_LOG_PREFIX))
    return [name for name, pattern in STDERR_ALARMS.items() if pattern.search(own)]


def missing(scenario: Scenario, impl: Implementation, model: str, reason: str) -> Result:
    return Result(scenario=scenario.id, impl=impl.name, model=model, grade=MISSING, reason=reason)
