"""Every registered implementation, in every model it offers, against every scenario.

Every MUST and SHOULD scenario must be OK; an INFO scenario must say why.
"""
from __future__ import annotations

from conftest import explain

from acceptloop import _protocol as P
from acceptloop.suite.scenario import INFO, MISSING, OK


def _expect_ok(result) -> None:
    if result.grade == INFO:
        assert result.reason, "an INFO grade must say why"
        return
    assert result.grade == OK, explain(result)


def test_echo(cell, run):
    _expect_ok(run(cell))


def test_discard(cell, run):
    _expect_ok(run(cell))


def test_chargen(cell, run):
    _expect_ok(run(cell))


def test_daytime(cell, run):
    _expect_ok(run(cell))


def test_message(cell, run):
    _expect_ok(run(cell))


def test_concurrency(cell, run):
    _expect_ok(run(cell))


def test_leaks(cell, run):
    _expect_ok(run(cell))


def test_lifecycle(cell, run):
    result = run(cell)
    assert result.grade != MISSING, explain(result)
    _expect_ok(result)


def test_robustness(cell, run):
    _expect_ok(run(cell))


def test_udp(cell, run):
    # MISSING only where the datagram path cannot apply: a port that offers no udp (yet), a model
    # that needs an accept (fork, threads), or an option the case needs that the port does not
    # take (--workers); everywhere else every udp cell is OK.
    result = run(cell)
    lacking = cell.scenario.needs - cell.impl.options
    if "udp" not in cell.impl.transports or cell.model not in P.DATAGRAM_MODELS or lacking:
        assert result.grade == MISSING, explain(result)
        return
    _expect_ok(result)
