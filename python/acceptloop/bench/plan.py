"""What the benchmark measures: the workloads, the profiles, and which cells each implementation runs.

A cell is (workload, implementation, model). The event model of every
implementation runs the whole matrix, the uring model (the C core's) every echo
workload in the full profile; the other models run a representative
subset (1 KiB echo at 1 and 16 connections, and the connection rate). The
datagram workloads (UDP echo) run on every model a datagram server has
(protocol.toml [datagram] models: iterative and event) of every implementation
whose registry entry takes --transport udp.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Sequence

from acceptloop import _protocol as P
from acceptloop.bench.spec import Bench, parse_workload
from acceptloop.suite.registry import Implementation
from acceptloop.suite.runner import KeywordFilter

KIB = 1024


@dataclass(frozen=True)
class Workload:
    kind: str              # the load generator's mode: echo, connect, ingest, egress, idle, datagram
    service: str
    connections: int       # datagram: UDP sockets, each with one request in flight
    size: int = 0          # echo: bytes per message; datagram: bytes per datagram

    @property
    def id(self) -> str:
        size = ""
        if self.kind in SIZED:
            size = f"-{self.size // KIB}KiB" if self.size >= KIB else f"-{self.size}B"
        return f"{self.kind}{size}-c{self.connections}"

    @property
    def transport(self) -> str:
        """How the server is started: "udp" (--transport udp) for the datagram workloads, else "tcp"."""
        return "udp" if self.kind == "datagram" else "tcp"

    @property
    def primary(self) -> str:
        """The figure the cell is judged by: operations per second, or MB/s for streams."""
        return "mb_per_s" if self.kind in ("ingest", "egress") else "ops_per_s"

    @property
    def io(self) -> str:
        """How the load generator drives this workload's sockets (IO_RULE): "uring" for echo of messages
        under URING_ECHO_BELOW bytes, datagrams and the connection rate, at URING_FROM connections or
        more, where it measured cheaper for the client than epoll (docs/performance.md); "epoll" for the
        rest (one connection waits on the server whatever the client's cost; a larger echo's cost is
        the kernel's copies, and there epoll measured as cheap or cheaper; the streams and idle are not
        driven by io_uring)."""
        small = self.kind != "echo" or self.size < URING_ECHO_BELOW
        return "uring" if self.kind in URING_KINDS and self.connections >= URING_FROM and small else "epoll"

    @property
    def op(self) -> str:
        """What one operation is, for 'server CPU per operation'."""
        return {"echo": "round trip", "connect": "connection", "ingest": "MB received",
                "egress": "MB sent", "idle": "connection held", "datagram": "datagram echoed"}[self.kind]


SIZED = ("echo", "datagram")   # the kinds whose id names a message size


URING_FROM = 16
URING_KINDS = ("echo", "datagram", "connect")
URING_ECHO_BELOW = 1024   # bytes: from 1 KiB up an echo's cost is the copies, and io_uring measured no cheaper
IO_RULE = (f"echo of messages under {URING_ECHO_BELOW} B, datagram and connect at {URING_FROM} connections or more: "
           f"io_uring (echo and datagram: batched sends, one multishot receive per socket; connect: one chain of "
           f"linked requests per connection), where it measured cheaper for the generator than epoll; everything "
           f"else: epoll; a machine without io_uring runs those cells on epoll, and each run records the mode it used")

SERVICE = {"echo": "echo", "connect": "daytime", "ingest": "discard", "egress": "chargen", "idle": "echo",
           "datagram": "echo"}


def workload(kind: str, connections: int, size: int = 0) -> Workload:
    return Workload(kind, SERVICE[kind], connections, size)


@dataclass(frozen=True)
class Profile:
    name: str
    event: tuple[Workload, ...]          # for the event model of every implementation
    other: tuple[Workload, ...]          # for the per-connection models (iterative, fork, threads)
    rounds: int
    warmup: float
    duration: float
    description: str = ""
    uring: tuple[Workload, ...] = ()     # for the uring model (the C core's)
    datagram: tuple[Workload, ...] = ()  # for every model a datagram server has (P.DATAGRAM_MODELS)


SIZES = (64, KIB, 16 * KIB, 256 * KIB)
CONCURRENCY = (1, 16, 256, 1000)

FULL = Profile(
    name="full",
    event=(*(workload("echo", c, s) for s in SIZES for c in CONCURRENCY),
           *(workload("connect", c) for c in (1, 16)),
           *(workload("ingest", c) for c in (1, 16)),
           *(workload("egress", c) for c in (1, 16)),
           workload("idle", 1000)),
    other=(workload("echo", 1, KIB), workload("echo", 16, KIB), workload("connect", 1), workload("connect", 16)),
    uring=tuple(workload("echo", c, s) for s in SIZES for c in CONCURRENCY),
    datagram=tuple(workload("datagram", c, s) for s in (64, KIB) for c in (1, 16)),
    rounds=3, warmup=0.3, duration=1.0,
    description="every workload on the event model, every echo workload on uring, a representative subset on "
                "the others, UDP echo (64 B and 1 KiB at 1 and 16 sockets) on the iterative and event models; "
                "3 rounds",
)

QUICK = Profile(
    name="quick",
    event=(workload("echo", 16, 64), workload("echo", 256, 64), workload("connect", 1)),
    other=(),
    uring=(workload("echo", 256, 64),),
    datagram=(workload("datagram", 16, 64),),
    rounds=3, warmup=0.05, duration=0.2,
    description="64 B echo at 16 and 256 connections and the connection rate on the event model, 64 B echo at 256 "
                "on uring, 64 B UDP echo at 16 sockets on the iterative and event models, and the cells the targets name (the other models' connection rate, 1,000 idle "
                "connections) for the implementations they compare; short windows",
)

SCALING = Profile(
    name="scaling",
    event=(workload("echo", 256, 64),),
    other=(),
    rounds=3, warmup=0.3, duration=1.0,
    description="64 B echo at 256 connections on the event model of every implementation that takes --workers, "
                "with --workers 1, 2, 4, ... up to the number of server CPUs (--server-cpus); 3 rounds",
)

PROFILES = {p.name: p for p in (QUICK, FULL, SCALING)}


@dataclass(frozen=True)
class Cell:
    workload: Workload
    impl: Implementation
    model: str

    @property
    def id(self) -> str:
        return f"{self.impl.name}-{self.model}-{self.workload.id}"


@dataclass
class Plan:
    profile: Profile
    cells: list[Cell] = field(default_factory=list)
    rounds: int = 3

    def by_round(self) -> list[list[Cell]]:
        """Each round runs every cell once; within a round the implementations take turns
        on each workload (A B C, A B C ...), so drift on a shared machine hits all of them."""
        return [list(self.cells) for _ in range(self.rounds)]


def control_twin(impl: Implementation) -> Implementation:
    """The second copy of `impl` its bench stanza declares (`control`): the same server under
    another name, measured in every echo cell beside the original. What separates the two is the
    measurement's own noise, the floor under which no difference between two implementations can
    be told apart on this machine."""
    assert impl.bench is not None and impl.bench.control is not None
    return dataclasses.replace(impl, name=impl.bench.control, role="control", bench=Bench(twin_of=impl.name))


def parse_workload_id(text: str) -> Workload:
    kind, connections, size = parse_workload(text)
    return workload(kind, connections, size)


def target_cells(impls: Sequence[Implementation]) -> dict[tuple[Workload, str], set[str]]:
    """The (workload, model) cells the registry's targets are read on, and who must run each:
    the target's own implementation and the one it is compared with."""
    need: dict[tuple[Workload, str], set[str]] = {}
    for impl in impls:
        for t in impl.bench.targets if impl.bench else ():
            for model, workload_id in t.cells():
                w = parse_workload_id(workload_id)
                need.setdefault((w, model), set()).add(impl.name)
                if t.against:
                    need.setdefault((w, t.against_model or model), set()).add(t.against)
    return need


def plan(impls: Sequence[Implementation], profile: Profile, models: Sequence[str] | None = None,
         keyword: str | None = None, rounds: int | None = None,
         floors: Sequence[Implementation] = ()) -> Plan:
    """Every cell of the profile, then the cells the targets name that the profile lacks (only
    for the implementations those targets compare); each echo cell of an implementation that
    declares a control twin is followed by the twin's. --model and -k narrow all of them.

    The floors (registry role "floor") are measured on every workload the plan holds, in their
    own model, whatever --model and -k say: each workload's floor cell comes first, so that every
    cell of the run has its ratio to the floor (add_floors)."""
    match = KeywordFilter(keyword)
    want = set(models) if models else None
    cells: list[Cell] = []
    groups: list[tuple[Workload, str, set[str] | None]] = []
    for w in profile.event:
        groups.append((w, "event", None))
    for w in profile.other:
        for m in ("iterative", "fork", "threads"):
            groups.append((w, m, None))
    for w in profile.uring:
        groups.append((w, "uring", None))
    for w in profile.datagram:
        groups += [(w, m, None) for m in P.DATAGRAM_MODELS]
    have = {(w, m) for w, m, _ in groups}
    for (w, m), names in target_cells(impls).items():
        if (w, m) not in have:
            groups.append((w, m, names))
    for w, model, only in groups:
        if want is not None and model not in want:
            continue
        for impl in impls:
            if only is not None and impl.name not in only:
                continue
            if impl.bench is not None and impl.bench.only_targets and not _targets_name(impl, w, model):
                continue   # measured only where its own targets say (bench.only_targets)
            if offers(impl, w, model):
                cell = Cell(w, impl, model)
                if match(cell.id):
                    cells.append(cell)
                    if impl.bench and impl.bench.control and w.kind == "echo":
                        cells.append(Cell(w, control_twin(impl), model))
    return Plan(profile, add_floors(cells, floors), rounds or profile.rounds)


def offers(impl: Implementation, w: Workload, model: str) -> bool:
    """Whether `impl` can serve workload `w` in `model`: the model and the service, and for a datagram
    workload --transport udp (the registry's `transports`), a model a datagram server has, and a READY
    line (a datagram port cannot be polled by connecting to it)."""
    if model not in impl.models or w.service not in impl.services or w.transport not in impl.transports:
        return False
    return w.transport == "tcp" or (model in P.DATAGRAM_MODELS and impl.ready == "line")


def _targets_name(impl: Implementation, w: Workload, model: str) -> bool:
    """Whether one of impl's own targets names the cell (workload w, model)."""
    return any((model, w.id) in t.cells() for t in impl.bench.targets)


def add_floors(cells: list[Cell], floors: Sequence[Implementation]) -> list[Cell]:
    """The cells with, before the first cell of each workload, one cell per floor that offers the
    workload (in the floor's first model: its service, over its transport): the physical reference of
    that workload. A TCP-only floor has no datagram cell, so datagram cells have no floor ratio."""
    out: list[Cell] = []
    seen: set[Workload] = set()
    names = {f.name for f in floors}
    for cell in cells:
        if cell.impl.name in names:
            continue
        if cell.workload not in seen:
            seen.add(cell.workload)
            out += [Cell(cell.workload, f, f.models[0]) for f in floors
                    if f.models and offers(f, cell.workload, f.models[0])]
        out.append(cell)
    return out


def worker_counts(server_cpus: int) -> list[int]:
    """--workers for the scaling profile: 1, 2, 4, ... up to the server CPUs (at least 1)."""
    counts = [1]
    while counts[-1] * 2 <= server_cpus:
        counts.append(counts[-1] * 2)
    return counts


def with_workers(impl: Implementation, workers: int) -> Implementation:
    """`impl` run with --workers N, under a name of its own (`NAME-workersN`); no bench stanza."""
    assert impl.command is not None
    return dataclasses.replace(impl, name=f"{impl.name}-workers{workers}",
                               command=(*impl.command, "--workers", str(workers)), bench=None)


def scaling_plan(impls: Sequence[Implementation], server_cpus: int, keyword: str | None = None,
                 rounds: int | None = None, floors: Sequence[Implementation] = ()) -> tuple[Plan, dict]:
    """The scaling profile: every implementation whose registry entry takes the contract's
    --workers (options) on its event model, once per worker count; and the record of what could
    be measured (the results' `scaling`: the counts, and whether more than one could be run)."""
    counts = worker_counts(server_cpus)
    scalable = [i for i in impls if "workers" in i.options and "event" in i.models and i.command is not None]
    variants = [with_workers(i, n) for n in counts for i in scalable]
    record = {
        "server_cpus": server_cpus,
        "workers": counts,
        "scaled": len(counts) > 1,
        "implementations": [i.name for i in scalable],
        "verdict": (f"measured with --workers {', '.join(map(str, counts))} on {server_cpus} server CPUs"
                    if len(counts) > 1 else
                    f"could not scale: {server_cpus} server CPU, so --workers 1 only; scaling needs at least 2 "
                    "server CPUs (--server-cpus 0-3 --client-cpus 4-7 on a larger machine)"),
    }
    return plan(variants, SCALING, None, keyword, rounds, floors), record


def measured_by_default(impls: Sequence[Implementation]) -> list[Implementation]:
    """What a bench run measures when no --impl names its implementations: every entry with a
    bench stanza (an entry without one, such as a port run with --workers 2 for the suite, is
    measured only when named, or by the scaling profile through the entry it derives from)."""
    return [i for i in impls if i.bench is not None]
