"""Running the benchmark: one fresh server per run, pinned to the server's CPUs (default CPU 0);
the C load generator pinned to the first of the client's CPUs (default CPU 1); the server's CPU
and memory read from /proc at the window's edges.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from acceptloop.bench.plan import Cell, Plan
from acceptloop.bench.loadgen import run_load
from acceptloop.suite.process import ServerProcess, ServerStartError, dies_with_the_kit

CONNECT_TIMEOUT = 5.0


def parse_cpus(text: str) -> tuple[int, ...]:
    """A CPU list as the kernel writes one (`0`, `0-3`, `0,2,4-5`): the CPUs, ascending, once
    each. ValueError naming what is wrong."""
    cpus: set[int] = set()
    for part in text.split(","):
        low, sep, high = part.strip().partition("-")
        if not low.isdigit() or (sep and not high.isdigit()):
            raise ValueError(f"not a CPU list: {text!r} (write it as 0, 0-3 or 0,2,4-5)")
        first, last = int(low), int(high) if sep else int(low)
        if last < first:
            raise ValueError(f"not a CPU list: {text!r} ({part} runs backwards)")
        cpus.update(range(first, last + 1))
    return tuple(sorted(cpus))


def pinning(server_cpus: Sequence[int] | None = None, client_cpus: Sequence[int] | None = None) -> dict[str, Any]:
    """Where the server and the load generator run. Given: those CPU sets (each must be available
    to this process, and the two must not overlap); not given: the server on the first available
    CPU and the client on the second, or no pinning on a machine of one CPU. ValueError when a
    given set cannot be used. The load generator is one thread: it runs on the first client CPU."""
    cpus = sorted(os.sched_getaffinity(0))
    given = server_cpus is not None or client_cpus is not None
    if not given and len(cpus) < 2:
        return {"server_cpu": None, "client_cpu": None, "server_cpus": [], "client_cpus": [],
                "pinned": False, "given": False}
    server = list(server_cpus) if server_cpus is not None else [c for c in cpus if c not in (client_cpus or ())][:1]
    client = list(client_cpus) if client_cpus is not None else [c for c in cpus if c not in server][:1]
    for what, chosen in (("--server-cpus", server), ("--client-cpus", client)):
        missing = [c for c in chosen if c not in cpus]
        if missing or not chosen:
            raise ValueError(f"{what}: CPU {missing[0] if missing else '(none left)'} is not available to this "
                             f"process (available: {','.join(map(str, cpus))})")
    if set(server) & set(client):
        raise ValueError(f"--server-cpus and --client-cpus share CPU {min(set(server) & set(client))}")
    return {"server_cpu": server[0], "client_cpu": client[0], "server_cpus": server, "client_cpus": client,
            "pinned": True, "given": given}


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def fairness(pins: dict[str, Any]) -> dict[str, Any]:
    """The settings that decide whether the comparison is fair, as this machine has them."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return {
        "pinning": pins,
        "tcp_nodelay": "set on every socket by the load generator and by every server on accepted sockets",
        "load": "closed loop: each connection starts its next operation when the last one is done",
        "backlog": "the contract's default (128) for every server",
        "somaxconn": _read("/proc/sys/net/core/somaxconn"),
        "tcp_rmem": _read("/proc/sys/net/ipv4/tcp_rmem"),
        "tcp_wmem": _read("/proc/sys/net/ipv4/tcp_wmem"),
        "rmem_default": _read("/proc/sys/net/core/rmem_default"),
        "wmem_default": _read("/proc/sys/net/core/wmem_default"),
        # Loopback streams pace by it (bbr or cubic, say): the streams' figures depend on it.
        "tcp_congestion_control": _read("/proc/sys/net/ipv4/tcp_congestion_control"),
        "fd_limit": {"soft": soft, "hard": hard},
        "cpus": os.cpu_count(),
    }


@dataclass
class Run:
    cell: Cell
    round: int
    data: dict[str, Any]


def measure(cell: Cell, round_no: int, plan: Plan, pins: dict[str, Any]) -> dict[str, Any]:
    """One run of one cell: start the server, load it, stop it. Always returns a record."""
    w = cell.workload
    pin = None
    if pins["pinned"]:
        server_cpus = set(pins["server_cpus"])
        pin = lambda: os.sched_setaffinity(0, server_cpus)   # noqa: E731 - runs in the child before exec
    preexec = dies_with_the_kit(then=pin)   # a bench killed outright leaves no server running
    srv = ServerProcess(cell.impl, w.service, cell.model, preexec=preexec, transport=w.transport)
    record: dict[str, Any] = {"round": round_no}
    try:
        srv.start()
    except ServerStartError as e:
        return {**record, "error": f"the server did not start: {e}"}
    try:
        host, port = srv.address
        options = dict(message_size=w.size or None, warmup=plan.profile.warmup, duration=plan.profile.duration,
                       cpu=pins["client_cpu"] if pins["pinned"] else -1, connect_timeout=CONNECT_TIMEOUT,
                       watch_pid=srv.pid)
        try:
            load = run_load(host, port, w.kind, w.connections, io=w.io, **options)
        except OSError as e:
            if getattr(e, "step", None) != "io_uring":
                raise
            # No io_uring on this machine (kernel, sysctl, seccomp): epoll, and the record says why.
            load = run_load(host, port, w.kind, w.connections, io="epoll", **options)
            record["io_fallback"] = str(e)
        record.update(load)
        alive = srv.alive()
    finally:
        code = srv.stop()
        srv.close()
    record["server_exit"] = code
    if not alive:
        record["error"] = "the server exited during the run"
    ops = per_op_count(w.kind, load)
    cpu = load.get("server_cpu_s")
    record["server_cpu_us_per_op"] = cpu / ops * 1e6 if ops and cpu is not None and cpu >= 0 else None
    # How busy the server's CPUs were (% of its CPU set; unpinned: of one CPU), beside the generator's
    # client_cpu_pct: which of the two saturated first (summary's client-bound).
    elapsed = load.get("elapsed_s")
    record["server_cpu_pct"] = (cpu / elapsed * 100 / max(1, len(pins["server_cpus"]))
                                if elapsed and cpu is not None and cpu >= 0 else None)
    # The generator's own CPU per operation, beside the server's: where it is the larger, a
    # generator with a core of its own saturates before the server does (client-bound).
    record["client_cpu_us_per_op"] = load["client_cpu_s"] / ops * 1e6 if ops else None
    user, kernel = load.get("server_instructions_user"), load.get("server_instructions_kernel")
    record["server_user_instructions_per_op"] = user / ops if ops and user is not None else None
    record["server_instructions_per_op"] = (user + kernel) / ops if ops and user is not None and kernel is not None else None
    if load["connections"] and load.get("server_rss_end"):
        # What each connection costs in server memory at this concurrency (for the idle workload:
        # an idle connection's cost).
        record["rss_per_conn"] = (load["server_rss_end"] - load["server_rss_start"]) / load["connections"]
    return record


def per_op_count(kind: str, load: dict[str, Any]) -> float:
    """How many operations the window held, as 'server CPU per operation' counts them:
    round trips, connections, datagrams echoed, or (streams) megabytes moved."""
    if kind == "ingest":
        return load["bytes_sent"] / 1e6
    if kind == "egress":
        return load["bytes_received"] / 1e6
    return float(load["ops"])


class Progress:
    """A progress bar with the time left, on stderr."""

    def __init__(self, total: int, quiet: bool) -> None:
        self.total, self.done, self.quiet = total, 0, quiet
        self.started = time.monotonic()
        self.tty = sys.stderr.isatty()

    def step(self, label: str) -> None:
        self.done += 1
        if self.quiet:
            return
        elapsed = time.monotonic() - self.started
        left = elapsed / self.done * (self.total - self.done)
        width = 30
        filled = int(width * self.done / self.total)
        line = (f"[{'=' * filled}{' ' * (width - filled)}] {self.done}/{self.total} "
                f"{int(elapsed) // 60}m{int(elapsed) % 60:02d}s elapsed, about {int(left) // 60}m{int(left) % 60:02d}s left  {label}")
        if self.tty:
            sys.stderr.write("\r\033[K" + line[:160] + ("\n" if self.done == self.total else ""))
        elif self.done == self.total or self.done % 10 == 0:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()


def run(plan: Plan, quiet: bool = False, on_run: Callable[[Run], None] | None = None,
        pins: dict[str, Any] | None = None) -> tuple[list[Run], dict[str, Any]]:
    """Every round of the plan, implementations interleaved; the runs and the fairness settings.
    `pins`: pinning()'s answer (default: the default pinning)."""
    pins = pins if pins is not None else pinning()
    rounds = plan.by_round()
    progress = Progress(sum(len(r) for r in rounds), quiet)
    runs = []
    for i, cells in enumerate(rounds, start=1):
        for cell in cells:
            r = Run(cell, i, measure(cell, i, plan, pins))
            runs.append(r)
            if on_run:
                on_run(r)
            progress.step(f"round {i}/{len(rounds)} {cell.id}")
    return runs, fairness(pins)
