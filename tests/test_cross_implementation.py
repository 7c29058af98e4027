"""Implementations must agree: on every MUST scenario, what each observed (its fingerprint)
is the same for every implementation that offers the model."""
from __future__ import annotations

from collections import defaultdict

import pytest
from conftest import CELLS

from acceptloop.suite.scenario import MISSING, MUST


def _groups():
    by = defaultdict(list)
    for cell in CELLS:
        if cell.scenario.level == MUST and cell.scenario.fingerprint:
            by[(cell.model, cell.scenario.id)].append(cell)
    return {k: v for k, v in by.items() if len({c.impl.name for c in v}) > 1}


GROUPS = _groups()


@pytest.mark.parametrize("key", sorted(GROUPS), ids=[f"{m}-{s}" for m, s in sorted(GROUPS)])
def test_implementations_agree(key, run):
    observations = {}
    for cell in GROUPS[key]:
        result = run(cell)
        if result.grade == MISSING:
            continue
        observations[cell.impl.name] = {k: result.observed.get(k) for k in cell.scenario.fingerprint}
    distinct = {repr(v) for v in observations.values()}
    assert len(distinct) <= 1, f"{key[1]} under {key[0]}: implementations disagree:\n" + "\n".join(
        f"  {name}: {obs}" for name, obs in observations.items())
