"""The robustness table: each scenario of the `robustness` group against every implementation
and model, showing the figure the scenario measured (CPU %, RSS growth, recovery time,
latency) beside its grade, and the scenario's one-line description so a reader learns what
it attacks.

The figures are the ones each scenario records with ctx.figure() (in the results' "figures"
list, in the order recorded); a cell shows the first, with its unit, what it measures and its
note, and links to the same detail as the matrix's cell.
"""
from __future__ import annotations

from typing import Any

from acceptloop.report import cells, numbers
from acceptloop.suite import matrix
from acceptloop.suite.scenario import Figure, Result

GROUP = "robustness"
PRODUCE = "acceptloop check --json results/check.json"     # every scenario, these included
ONLY = ("acceptloop check -k robustness --json results/robustness.json",   # only these, kept apart
        "acceptloop report --results results/robustness.json")
def is_robustness(scenario_id: str) -> bool:
    return scenario_id.split(".", 1)[0] == GROUP


def shown(f: Figure) -> dict[str, str]:
    """A figure as a cell shows it: its value with its unit ('3005 ms'), what it measures ('idle
    clients closed after': none for a count, whose name follows its value already, '8 examples')
    and the scenario's note on it ('--idle-timeout 1')."""
    return {"name": f.name, "text": numbers.with_unit(f.value, f.unit, f.name), "note": f.note, "unit": f.unit,
            "what": f.name if f.unit else ""}


def table(document: dict[str, Any]) -> dict[str, Any]:
    """Rows (scenario, description, cells in the matrix's column order), or `available` False."""
    results: list[Result] = document["results"]
    scenarios = {s["id"]: s for s in document.get("scenarios", [])}
    order = [s["id"] for s in document.get("scenarios", [])]
    cols = matrix.columns(results)
    by = {(r.scenario, r.impl, r.model): r for r in results}
    rows = []
    for scenario_id in matrix.rows(results, order):
        if not is_robustness(scenario_id):
            continue
        row_cells = []
        for impl, model in cols:
            r = by.get((scenario_id, impl, model))
            if r is None:
                row_cells.append(None)
                continue
            figures = [shown(f) for f in r.figures]   # the scenario records the telling one first
            title = f"{impl} / {model}: {r.grade}" + "".join(
                f"\n{f['name']}: {f['text']}" + (f" ({f['note']})" if f["note"] else "") for f in figures)
            if r.reason:
                title += f"\n{r.reason}"
            row_cells.append({
                "anchor": cells.anchor(impl, model, scenario_id), "impl": impl, "model": model,
                "grade": r.grade, "cls": cells.GRADE_CLASS[r.grade], "short": matrix.SHORT[r.grade],
                "main": figures[0] if figures else None, "more": figures[1:], "title": title,
                "first": model == next(m for i, m in cols if i == impl),
            })
        spec = scenarios.get(scenario_id, {})
        rows.append({"id": scenario_id, "name": scenario_id.split(".", 1)[1], "description": spec.get("description", ""),
                     "level": spec.get("level", ""), "cells": row_cells})
    return {"available": bool(rows), "rows": rows, "columns": cells.columns(results, document.get("implementations", [])),
            "column_count": len(cols), "produce": PRODUCE, "only": ONLY}
