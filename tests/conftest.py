"""The shared conformance suite: pytest parametrized over implementation x model x scenario.

Each `test_<group>` in test_conformance.py gets one test per cell of that group,
with ids that read as sentences: `test_echo[php-event-half_close_flush]`.
Cells run through the same runner as `acceptloop check`: the first test that asks for a
cell's result runs every cell the session collected, in parallel lanes (one per
implementation and model, ACCEPTLOOP_JOBS of them side by side, by default as many as
`acceptloop check` runs, three per CPU: most cells wait on sockets and timers, not a CPU; the few
whose bounds are fractions of a second run after the others, two per CPU), and each test
then grades its own cell.
"""
from __future__ import annotations

import os

import pytest

from acceptloop.cli import DEFAULT_JOBS
from acceptloop.suite import registry, runner
from acceptloop.suite.process import raise_fd_limit
from acceptloop.suite.scenario import ERROR, FAILED, Result

raise_fd_limit()
IMPLEMENTATIONS = [i for i in registry.load() if i.role == "port"]
CELLS = runner.plan(IMPLEMENTATIONS)


def cell_id(cell: runner.Cell) -> str:
    return f"{cell.impl.name}-{cell.model}-{cell.scenario.id.split('.', 1)[1]}"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--implementations", action="append", default=[],
                     help="another registry file whose implementations join the suite")


def pytest_configure(config: pytest.Config) -> None:
    extra = config.getoption("--implementations")
    if extra:
        global IMPLEMENTATIONS, CELLS
        IMPLEMENTATIONS = [i for i in registry.load(extra) if i.role == "port"]
        CELLS = runner.plan(IMPLEMENTATIONS)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "cell" in metafunc.fixturenames:
        group = metafunc.function.__name__.removeprefix("test_")
        cells = [c for c in CELLS if c.scenario.group == group]
        metafunc.parametrize("cell", cells, ids=[cell_id(c) for c in cells])


def _cells_of(item: pytest.Item) -> list[runner.Cell]:
    """The cells a collected test will ask for: its own, or those of its cross-implementation group."""
    params = getattr(item, "callspec", None) and item.callspec.params
    if not params:
        return []
    if "cell" in params:
        return [params["cell"]]
    if "sanitized" in params:
        return [params["sanitized"]]
    if "key" in params and item.module.__name__.endswith("test_cross_implementation"):
        return list(item.module.GROUPS[params["key"]])
    return []


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Note every cell the selected tests need: the first of them runs them all. Last among the
    hooks, so that `-k` and `-m` have deselected what they leave out: `-k c-event-round_trip` runs
    that cell, not the whole matrix."""
    wanted: dict[str, runner.Cell] = {}
    for item in items:
        for cell in _cells_of(item):
            wanted.setdefault(cell.id, cell)
    config.stash[WANTED] = list(wanted.values())
    if os.environ.get("ACCEPTLOOP_SHOW_WANTED"):   # for tests/test_docs.py: what a selection runs
        print(f"acceptloop: {len(wanted)} cell(s) wanted", flush=True)


WANTED = pytest.StashKey[list]()
RESULTS: dict[str, Result] = {}
REPEATED: list[str] = []   # what _run_again_alone saw pass on its second run, for the session's summary
RUN_AGAIN_AT_MOST = 12
JOBS = int(os.environ.get("ACCEPTLOOP_JOBS", DEFAULT_JOBS))


@pytest.fixture(scope="session")
def matrix_results(request) -> dict[str, Result]:
    """Every wanted cell's result, run once per session in parallel lanes."""
    wanted = [c for c in request.config.stash.get(WANTED, []) if c.id not in RESULTS]
    if wanted:
        order = {c.id: i for i, c in enumerate(wanted)}
        wanted.sort(key=lambda c: (c.impl.name, c.model, not c.scenario.shared, c.scenario.service, order[c.id]))
        # A cell that FAILED or was ERROR in the parallel matrix runs once more, alone (the runner's
        # one rule, run_again_alone; a few at most). If it passes then, that result stands and the
        # first run's reason is listed at the end of the session: a failure that does not repeat is
        # shown, not hidden; one that repeats fails its test as before.
        for result in runner.run(wanted, jobs=JOBS, failures_again=RUN_AGAIN_AT_MOST):
            RESULTS[result.cell] = result
            first = result.checks[0].what if result.checks else ""
            if first.startswith(runner.RUN_AGAIN) and result.grade not in (FAILED, ERROR):
                REPEATED.append(f"{result.cell}: {first[:400]}; {result.grade} the second time")
    return RESULTS


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if REPEATED:
        terminalreporter.section("cells that failed in the parallel matrix and passed run again alone")
        for line in REPEATED:
            terminalreporter.write_line(line)


@pytest.fixture
def run(matrix_results):
    """A cell's result (run in the session's matrix; once only, so the cross-implementation test
    reuses it). A cell nobody announced at collection runs on its own here."""
    def result_of(cell: runner.Cell) -> Result:
        if cell.id not in matrix_results:
            matrix_results[cell.id] = runner.run([cell])[0]
        return matrix_results[cell.id]
    return result_of


def explain(result: Result) -> str:
    """A failure message a reader can act on: the grade, the failed checks, the server's stderr."""
    lines = [f"{result.impl}/{result.model} {result.scenario}: {result.grade}: {result.reason}"]
    for c in result.checks:
        if not c.ok:
            lines.append(f"  [{c.level}] {c.what}: expected {c.expected or '-'}, observed {c.observed or '-'}")
    stderr = (result.server or {}).get("stderr") or ""
    if stderr.strip():
        lines.append("  server stderr (tail): " + stderr.strip()[-600:].replace("\n", "\n    "))
    return "\n".join(lines)
