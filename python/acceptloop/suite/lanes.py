"""Running the matrix in parallel lanes: one lane per (implementation, model), a few at a time.

Most of a cell's time is spent waiting (for a timeout to fire, a grace to run out, a server to
start), so several lanes side by side finish the matrix in a fraction of the time on two cores.
A lane runs its cells in order with its own pool of shared servers, exactly as the sequential
runner does, in a worker process of its own (forked, so the cells need no pickling): what one
lane's scenario does to its servers can never reach another lane's.

The parent keeps what matters when the run is cut short: every result already sent, and the
process group of every server any worker started, which it kills if a worker could not.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
from typing import Callable, Sequence

from acceptloop.suite import process
from acceptloop.suite.scenario import Result

# How long workers get to stop their servers when the run is interrupted, before SIGKILL.
WORKER_GRACE = 10.0


def usable_cpus() -> int:
    """The CPUs this process may run on: its affinity, and no more than its cgroup's CPU quota
    (cpu.max: a container given two CPUs of a larger machine)."""
    cpus = len(os.sched_getaffinity(0))
    try:
        quota, period = open("/sys/fs/cgroup/cpu.max").read().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, -(-int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return cpus


def exclusive_jobs(jobs: int) -> int:
    """How many exclusive cells run at once: two per CPU (at most `jobs`). Such a cell waits on its
    timers almost all the time; what its bounds cannot take is a CPU it has to wait for, and two per
    CPU leave the machine about half busy (docs/results.md: the 74 exclusive cells of the registry
    in 27 s instead of 49 s at one per CPU, their timings as before)."""
    return max(1, min(jobs, 2 * usable_cpus()))


def lanes_of(cells: Sequence) -> list[list[int]]:
    """The cells' indexes grouped by (implementation, model), in plan order."""
    lanes: dict[tuple[str, str], list[int]] = {}
    for i, cell in enumerate(cells):
        lanes.setdefault((cell.impl.name, cell.model), []).append(i)
    # The longest lanes first, so that the last lane to start is a short one.
    return sorted(lanes.values(), key=len, reverse=True)


class _Stop(BaseException):
    """A worker was told to stop (SIGTERM from the parent)."""


def _stop(signum: int, frame: object) -> None:
    raise _Stop()


def _worker(cells: Sequence, tasks: "multiprocessing.Queue", out: "multiprocessing.Queue",
            env: dict[str, str] | None, kit: int) -> None:
    """Take lanes from `tasks` until it is empty (None), run each, and send every result and
    every server pid to `out`. A kit that dies however it dies (SIGKILL: no clean-up of its own)
    sends it SIGTERM, and it stops its servers as when the kit stops it."""
    from acceptloop.suite import runner

    signal.signal(signal.SIGTERM, _stop)
    if not process.ask_for_the_death_signal(signal.SIGTERM, kit):
        return   # the kit is gone already: no lane to run, nobody to tell
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # the parent decides; it then sends SIGTERM
    process.SPAWNED.append(lambda pid: out.put(("spawned", pid)))
    process.CLOSED.append(lambda pid: out.put(("closed", pid)))
    try:
        while (lane := tasks.get()) is not None:
            lane_cells = [cells[i] for i in lane]
            positions = iter(lane)
            runner.run_in_order(lane_cells, env,   # what to run again alone, the parent decides
                                lambda done, total, cell, result: out.put(("result", next(positions),
                                                                           result.to_dict())), [], None)
    except _Stop:
        pass
    finally:
        process.terminate_all()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)   # done: a late stop needs no clean-up any more
        out.put(("done", os.getpid()))


def run(cells: Sequence, jobs: int, env: dict[str, str] | None = None,
        progress: Callable[[int, int, object, Result], None] | None = None,
        results: list[Result] | None = None, stop: Callable[[Result], bool] | None = None) -> list[Result]:
    """Run the cells in lanes, `jobs` at a time, then the exclusive ones (tight real-time bounds)
    with no other cell beside them, one per CPU (exclusive_jobs); results are appended to `results` as they
    come and the list is put back in plan order at the end. `stop(result)` true ends the run: the
    other lanes are stopped."""
    results = [] if results is None else results
    shared = [c for c in cells if not c.scenario.exclusive]
    alone = [c for c in cells if c.scenario.exclusive]
    stopped = _in_lanes(shared, jobs, env, progress, results, stop, offset=0, total=len(cells))
    if alone and not stopped:
        _in_lanes(alone, exclusive_jobs(jobs), env, progress, results, stop, offset=0, total=len(cells))
    order = {c.id: i for i, c in enumerate(cells)}
    results.sort(key=lambda r: order.get(r.cell, len(cells)))
    return results


def _in_lanes(cells: Sequence, jobs: int, env: dict[str, str] | None,
              progress: Callable[[int, int, object, Result], None] | None, results: list[Result],
              stop: Callable[[Result], bool] | None, offset: int, total: int) -> bool:
    """The lanes of `cells`, `jobs` at a time; True when `stop` ended them early."""
    if not cells:
        return False
    context = multiprocessing.get_context("fork")
    tasks, out = context.Queue(), context.Queue()
    lanes = lanes_of(cells)
    for lane in lanes:
        tasks.put(lane)
    workers = [context.Process(target=_worker, args=(cells, tasks, out, env, os.getpid()), daemon=True)
               for _ in range(min(jobs, len(lanes)))]
    for _ in workers:
        tasks.put(None)
    for w in workers:
        w.start()
    spawned: set[int] = set()
    finished: set[int] = set()
    stopped = False
    try:
        while len(finished) < len(workers):
            kind, *payload = out.get()
            if kind == "spawned":
                spawned.add(payload[0])
            elif kind == "closed":
                spawned.discard(payload[0])
            elif kind == "done":
                finished.add(payload[0])
            else:
                position, data = payload
                result = Result.from_dict(data)
                results.append(result)
                if progress:
                    progress(offset + len(results), total, cells[position], result)
                if stop is not None and stop(result):
                    stopped = True
                    break
    finally:
        _stop_workers([w for w in workers if w.pid not in finished], out, spawned)
        for w in workers:
            w.join(WORKER_GRACE)
    return stopped


def _stop_workers(workers: list, out: "multiprocessing.Queue", spawned: set[int]) -> None:
    """Every worker stopped (SIGTERM, SIGKILL after WORKER_GRACE), then any server whose worker
    could not stop it: its process group is killed."""
    for w in workers:
        if w.is_alive():
            os.kill(w.pid, signal.SIGTERM)
    for w in workers:
        w.join(WORKER_GRACE)
        if w.is_alive():
            w.kill()
            w.join(1.0)
    while not out.empty():   # pids a worker announced while stopping
        try:
            kind, *payload = out.get_nowait()
        except Exception:   # noqa: BLE001 - a queue emptied meanwhile, or a worker killed mid-put
            break
        if kind == "spawned":
            spawned.add(payload[0])
        elif kind == "closed":
            spawned.discard(payload[0])
    for pid in spawned:   # only servers no worker saw exit
        try:
            os.killpg(pid, signal.SIGKILL)   # each server leads a process group of its own
        except (ProcessLookupError, PermissionError):
            pass
