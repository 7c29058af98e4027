"""The shared conformance suite: pytest parametrized over implementation x model x scenario.

Each `test_<group>` in test_conformance.py gets one test per cell of that group,
with ids that read as sentences: `test_echo[php-event-half_close_flush]`.
Cells run through the same `run_cell` as `acceptloop check`; servers shared by
several cells are kept in one pool and stopped after their last cell.
"""
from __future__ import annotations

import pytest

from acceptloop.suite import registry, runner
from acceptloop.suite.process import raise_fd_limit
from acceptloop.suite.scenario import Result

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


def _server_key(item: pytest.Item):
    cell = getattr(item, "callspec", None) and item.callspec.params.get("cell")
    if cell is None or not cell.scenario.shared:
        return None
    return (cell.impl.name, cell.model, cell.scenario.service)


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the cells that share a server one after another, and note each server's last cell."""
    order = {c.id: i for i, c in enumerate(CELLS)}

    def rank(item: pytest.Item) -> tuple:
        cell = getattr(item, "callspec", None) and item.callspec.params.get("cell")
        if cell is None:
            return (1, 0)
        return (0, order[cell.id])

    items.sort(key=rank)
    last: dict[tuple, pytest.Item] = {}
    for item in items:
        key = _server_key(item)
        if key is not None:
            last[key] = item
    config.stash[LAST_USE] = {id(item): key for key, item in last.items()}


LAST_USE = pytest.StashKey[dict]()
RESULTS: dict[str, Result] = {}


@pytest.fixture(scope="session")
def pool():
    p = runner.ServerPool()
    yield p
    p.close()


@pytest.fixture
def run(pool, request):
    """Run a cell (once per session: the cross-implementation test reuses the result)."""
    def run_cell(cell: runner.Cell) -> Result:
        if cell.id not in RESULTS:
            RESULTS[cell.id] = runner.run_cell(pool, cell)
        return RESULTS[cell.id]
    yield run_cell
    key = request.config.stash.get(LAST_USE, {}).get(id(request.node))
    if key is not None:
        pool.release(*key)


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
