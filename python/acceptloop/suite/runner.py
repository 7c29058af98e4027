"""Planning and running the matrix: implementation x model x scenario.

Scenarios that talk to a shared server get one server per (implementation,
model, service), kept by the ServerPool; a server that died during a scenario
is blamed on that scenario and started afresh for the next. The CLI and the
pytest suite run cells through the same `run_cell`, and rerun them by the same rule
(`run_again_alone`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from acceptloop.suite import probe
from acceptloop.suite.catalog import all_scenarios
from acceptloop.suite.process import STOP_GRACE, LaunchError, ServerProcess, ServerStartError
from acceptloop.suite.registry import Implementation
from acceptloop.suite.scenario import (BASIS_CONTRACT, BASIS_RFC, ERROR, FAILED, INFO, KIT_STALLED, MUST, execute,
                                      missing, Check, Result, Scenario)


@dataclass(frozen=True)
class Cell:
    impl: Implementation
    model: str
    scenario: Scenario

    @property
    def id(self) -> str:
        return f"{self.impl.name}-{self.model}-{self.scenario.id}"


class KeywordFilter:
    """pytest's -k, for cell ids: words match as substrings; `and`, `or`, `not` and parentheses combine them."""

    def __init__(self, expression: str | None) -> None:
        self.expression = expression
        self.tokens = re.findall(r"\(|\)|[^\s()]+", expression or "")
        if self.tokens:
            self._pos = 0
            self._check = self._parse_or()
            if self._pos != len(self.tokens):
                raise ValueError(f"-k: cannot parse {expression!r} near {self.tokens[self._pos]!r}")

    def __call__(self, text: str) -> bool:
        return not self.tokens or self._check(text.lower())

    def _peek(self) -> str | None:
        return self.tokens[self._pos] if self._pos < len(self.tokens) else None

    def _take(self) -> str:
        if self._pos >= len(self.tokens):
            raise ValueError(f"-k: {self.expression!r} ends too early")
        self._pos += 1
        return self.tokens[self._pos - 1]

    def _parse_or(self) -> Callable[[str], bool]:
        left = self._parse_and()
        while self._peek() == "or":
            self._take()
            right, first = self._parse_and(), left
            left = lambda t, a=first, b=right: a(t) or b(t)  # noqa: E731
        return left

    def _parse_and(self) -> Callable[[str], bool]:
        left = self._parse_not()
        while self._peek() == "and":
            self._take()
            right, first = self._parse_not(), left
            left = lambda t, a=first, b=right: a(t) and b(t)  # noqa: E731
        return left

    def _parse_not(self) -> Callable[[str], bool]:
        if self._peek() == "not":
            self._take()
            inner = self._parse_not()
            return lambda t: not inner(t)
        token = self._take()
        if token == "(":
            inner = self._parse_or()
            if self._take() != ")":
                raise ValueError(f"-k: unbalanced parentheses in {self.expression!r}")
            return inner
        if token in ("and", "or", ")"):
            raise ValueError(f"-k: unexpected {token!r} in {self.expression!r}")
        word = token.lower()
        return lambda t: word in t


def plan(impls: Sequence[Implementation], models: Iterable[str] | None = None,
         services: Iterable[str] | None = None, keyword: str | None = None,
         scenarios: Sequence[Scenario] | None = None, cells_only: Iterable[str] | None = None) -> list[Cell]:
    """Every cell to run, grouped so that cells sharing a server are next to each other.
    `cells_only`: exactly these cell ids (impl-model-scenario), as well as the other filters."""
    want_models = set(models) if models else None
    want_services = set(services) if services else None
    want_cells = set(cells_only) if cells_only is not None else None
    match = KeywordFilter(keyword)
    cells = []
    for impl in impls:
        for model in impl.models:
            if want_models is not None and model not in want_models:
                continue
            for s in scenarios if scenarios is not None else all_scenarios():
                if want_services is not None and s.service not in want_services:
                    continue
                cell = Cell(impl, model, s)
                if match(cell.id) and (want_cells is None or cell.id in want_cells):
                    cells.append(cell)
    cells.sort(key=lambda c: (impls.index(c.impl), c.impl.models.index(c.model),
                              not c.scenario.shared, c.scenario.service))
    return cells


class ServerPool:
    """One running server per (implementation, model, service) for the scenarios that share one."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.env = env
        self.servers: dict[tuple[str, str, str], ServerProcess] = {}
        self.start_errors: dict[tuple[str, str, str], ServerStartError] = {}
        self.unavailable: dict[tuple[str, str], str | None] = {}

    def model_unavailable(self, impl: Implementation, model: str) -> str | None:
        """Why this model cannot run here (the registry's probe, run once per pool), or None."""
        key = (impl.name, model)
        if key not in self.unavailable:
            self.unavailable[key] = probe.model_unavailable(impl, model, self.env)
        return self.unavailable[key]

    def get(self, impl: Implementation, model: str, service: str) -> ServerProcess:
        """The live server for this key, started (or started again) if need be."""
        key = (impl.name, model, service)
        srv = self.servers.get(key)
        if srv is not None and srv.alive():
            return srv
        if srv is not None:
            srv.close()
        srv = ServerProcess(impl, service, model, env=self.env)
        self.servers[key] = srv
        srv.start()
        return srv

    def release(self, impl: str, model: str, service: str) -> None:
        """Stop the server for (implementation name, model, service), if one runs."""
        srv = self.servers.pop((impl, model, service), None)
        if srv is not None:
            srv.close(grace=STOP_GRACE)

    def close(self) -> None:
        for srv in self.servers.values():
            srv.close(grace=STOP_GRACE)
        self.servers.clear()


def run_cell(pool: ServerPool, cell: Cell) -> Result:
    """Run one cell: MISSING if it cannot apply, else the scenario against a (shared or own) server."""
    reason = cell.scenario.missing_reason(cell.impl, cell.model) or pool.model_unavailable(cell.impl, cell.model)
    if reason is not None:
        return missing(cell.scenario, cell.impl, cell.model, reason)
    server = None
    if cell.scenario.shared:
        try:
            server = pool.get(cell.impl, cell.model, cell.scenario.service)
        except LaunchError as e:
            return Result(scenario=cell.scenario.id, impl=cell.impl.name, model=cell.model, grade=ERROR,
                          reason=f"{e.summary}: {e}")
        except ServerStartError as e:
            # Not printing READY breaks the contract; a port that never accepts, the service.
            basis = BASIS_CONTRACT if cell.impl.ready == "line" else BASIS_RFC
            check = Check("the server starts and is ready", False, MUST, "ready", str(e), basis=basis,
                          followed=basis in cell.impl.follows)
            return Result(scenario=cell.scenario.id, impl=cell.impl.name, model=cell.model,
                          grade=FAILED if check.followed else INFO,
                          reason=f"the server did not start: {e}", checks=[check],
                          server={"exit_code": e.exit_code, "stderr": e.stderr[-4000:]})
    return execute(cell.scenario, cell.impl, cell.model, server)


# The start of the INFO check a cell run again alone carries: what its first run found.
RUN_AGAIN = "run again alone"


def run_again_alone(cells: Sequence[Cell], results: list[Result], env: dict[str, str] | None = None,
                    failures_at_most: int = 0) -> list[Result]:
    """One rule for a result that may be the machine's and not the server's: it runs once more,
    alone, after every other cell, and what that run finds stands (a second failure included),
    carrying the first run's grade and reason as its first check, so nothing is hidden.

    Such a result is a cell graded ERROR because the kit itself was not scheduled in time to judge a
    timer (KIT_STALLED: a busy machine); with `failures_at_most` > 0 (the pytest suite), every
    FAILED or ERROR cell while there are no more than that many (a change that breaks many cells
    is not run twice). Returns the second runs' results; `results` is updated in place."""
    by_id = {c.id: c for c in cells}
    failed = [r for r in results if r.grade in (FAILED, ERROR) and r.cell in by_id]
    again = failed if 0 < len(failed) <= failures_at_most else \
        [r for r in failed if r.grade == ERROR and r.reason.startswith(KIT_STALLED)]
    if not again:
        return []
    where = {r.cell: i for i, r in enumerate(results)}
    firsts = {r.cell: r for r in again}

    def replace(_done: int, _total: int, _cell: Cell, second: Result) -> None:
        # As each second run ends, so that an interrupt meanwhile keeps what was run again.
        first = firsts[second.cell]
        second.checks.insert(0, Check(what=f"{RUN_AGAIN}: the first run was {first.grade}: {first.reason}",
                                      ok=True, level="INFO"))
        results[where[second.cell]] = second

    return run_in_order([by_id[r.cell] for r in again], env, replace, [], None)


def run(cells: Sequence[Cell], env: dict[str, str] | None = None,
        progress: Callable[[int, int, Cell, Result], None] | None = None,
        results: list[Result] | None = None,
        stop: Callable[[Result], bool] | None = None, jobs: int = 1, failures_again: int = 0) -> list[Result]:
    """Run every cell in order; servers are released as soon as no later cell needs them.

    Results are appended to `results` (a list the caller may keep, so that what ran is still
    there when an interrupt stops the run); `stop(result)` true ends the run after that cell.
    With `jobs` > 1 the cells run in lanes, one per (implementation, model), that many at a
    time (suite/lanes.py); the results come back in plan order all the same. Then the cells whose
    result may be the machine's run again alone (run_again_alone; `failures_again` is its
    `failures_at_most`)."""
    results = [] if results is None else results
    if jobs > 1:
        from acceptloop.suite import lanes
        lanes.run(cells, jobs, env=env, progress=progress, results=results, stop=stop)
    else:
        run_in_order(cells, env, progress, results, stop)
    if stop is None or not any(stop(r) for r in results):
        run_again_alone(cells, results, env, failures_at_most=failures_again)
    return results


def run_in_order(cells: Sequence[Cell], env: dict[str, str] | None,
                  progress: Callable[[int, int, Cell, Result], None] | None, results: list[Result],
                  stop: Callable[[Result], bool] | None) -> list[Result]:
    pool = ServerPool(env)
    last_use = {}
    for i, cell in enumerate(cells):
        if cell.scenario.shared:
            last_use[(cell.impl.name, cell.model, cell.scenario.service)] = i
    try:
        for i, cell in enumerate(cells):
            result = run_cell(pool, cell)
            results.append(result)
            key = (cell.impl.name, cell.model, cell.scenario.service)
            if cell.scenario.shared and last_use.get(key) == i:
                pool.release(*key)
            if progress:
                progress(i + 1, len(cells), cell, result)
            if stop is not None and stop(result):
                break
    finally:
        pool.close()
    return results
