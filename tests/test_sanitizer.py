"""The C core under AddressSanitizer and UndefinedBehaviorSanitizer: every scenario, every model.

A sanitizer report anywhere on the server's stderr fails the scenario (see
acceptloop.suite.scenario.STDERR_ALARMS), as does any broken requirement.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from conftest import explain

from acceptloop.paths import ROOT
from acceptloop.suite import registry, runner
from acceptloop.suite.scenario import INFO, OK

SANITIZED = registry.load([Path(__file__).parent / "fixtures" / "sanitizer.toml"], base=None)
# The cells that apply (a udp scenario has no fork, threads or uring form: MISSING by design, not run).
CELLS = [c for c in runner.plan(SANITIZED) if c.scenario.missing_reason(c.impl, c.model) is None]


def test_the_sanitizer_build_exists():
    binary = ROOT / "build" / "acceptloop-c-asan"
    assert binary.exists(), "make asan builds it; make test depends on it"


@pytest.mark.parametrize("sanitized", CELLS, ids=[f"{c.model}-{c.scenario.id}" for c in CELLS])
def test_c_under_sanitizers(sanitized, run):
    result = run(sanitized)
    assert result.grade in (OK, INFO), explain(result)
