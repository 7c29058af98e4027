"""The side-by-side matrix in the terminal: one row per scenario, one column per implementation x model."""
from __future__ import annotations

import os
import sys
from collections import Counter, defaultdict
from typing import Callable, Sequence, TextIO

from acceptloop import _protocol as P
from acceptloop.suite.scenario import ERROR, FAILED, GRADES, INFO, MISSING, NON_STRICT, OK, Result

SHORT = {OK: "ok", NON_STRICT: "NS", FAILED: "FAIL", ERROR: "ERR", INFO: "info", MISSING: "miss"}
MODEL_SHORT = {"iterative": "iter", "fork": "fork", "threads": "thr", "event": "evt"}
COLOUR = {OK: "32", NON_STRICT: "33", FAILED: "1;31", ERROR: "1;35", INFO: "36", MISSING: "2"}
LEGEND = ("ok = OK, NS = NON-STRICT (a SHOULD not met), FAIL = FAILED (a MUST broken), ERR = ERROR (the kit "
          "failed, not the server), info = INFO (shown, not graded), miss = MISSING (not offered)")
GROUP_ORDER = (*P.SERVICES, "concurrency", "leaks", "lifecycle", "robustness")


def columns(results: Sequence[Result]) -> list[tuple[str, str]]:
    """(implementation, model) pairs in first-seen implementation order and protocol model order."""
    impls: list[str] = []
    models: dict[str, set[str]] = defaultdict(set)
    for r in results:
        if r.impl not in impls:
            impls.append(r.impl)
        models[r.impl].add(r.model)
    return [(i, m) for i in impls for m in P.MODELS if m in models[i]]


def rows(results: Sequence[Result], order: Sequence[str] = ()) -> list[str]:
    """Scenario ids, grouped by service or area in the protocol's order; within a group in
    `order` (the catalogue's), then first seen."""
    seen: list[str] = []
    for r in results:
        if r.scenario not in seen:
            seen.append(r.scenario)
    rank = {g: i for i, g in enumerate(GROUP_ORDER)}
    ranked = {}
    for i, s in enumerate([*order, *seen]):
        ranked.setdefault(s, i)
    return sorted(seen, key=lambda s: (rank.get(s.split(".")[0], len(rank)), ranked[s]))


def disagreements(results: Sequence[Result], order: Sequence[str] = ()) -> list[str]:
    """The rows whose cells do not all carry the same grade."""
    grades: dict[str, set[str]] = defaultdict(set)
    for r in results:
        grades[r.scenario].add(r.grade)
    return [s for s in rows(results, order) if len(grades[s]) > 1]


def _paint(text: str, grade: str, colour: bool) -> str:
    return f"\033[{COLOUR[grade]}m{text}\033[0m" if colour else text


def use_colour(out: TextIO) -> bool:
    return out.isatty() and "NO_COLOR" not in os.environ


def render(results: Sequence[Result], only: Sequence[str] | None = None, colour: bool = False,
           order: Sequence[str] = ()) -> str:
    """The matrix as text; `only` restricts it to those scenario ids."""
    cols = columns(results)
    by = {(r.scenario, r.impl, r.model): r for r in results}
    names = [s for s in rows(results, order) if only is None or s in only]
    if not names:
        return "(no rows)\n"
    width = max(len(s) for s in names) + 4
    cells = cell_widths(cols)
    head = " " * width + "".join(f"{impl:<{sum(cells[(i, m)] for i, m in cols if i == impl)}}"
                                 for impl in dict.fromkeys(i for i, _ in cols))
    lines = [head.rstrip(),
             (f"{'scenario':<{width}}" + "".join(f"{MODEL_SHORT.get(m, m[:4]):<{cells[(i, m)]}}"
                                                 for i, m in cols)).rstrip()]
    group = None
    for s in names:
        g = s.split(".")[0]
        if g != group:
            lines.append(g)
            group = g
        out = f"  {s:<{width - 2}}"
        for impl, model in cols:
            r = by.get((s, impl, model))
            text = SHORT[r.grade] if r else "-"
            cell = cells[(impl, model)]
            out += _paint(f"{text:<{cell}}", r.grade, colour) if r else f"{text:<{cell}}"
        lines.append(out.rstrip())
    return "\n".join(lines) + "\n"


CELL = 5   # a grade's column: "FAIL" and a space


def cell_widths(cols: Sequence[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """Each column's width: CELL, widened so that every implementation's name fits whole over
    its columns (a name is never cut short)."""
    per_impl = Counter(i for i, _ in cols)
    return {(i, m): max(CELL, -(-(len(i) + 1) // per_impl[i])) for i, m in cols}


def summary(results: Sequence[Result]) -> str:
    counts = Counter(r.grade for r in results)
    return ", ".join(f"{counts[g]} {g}" for g in GRADES if counts[g]) or "no results"


def print_report(results: Sequence[Result], out: TextIO = sys.stdout, order: Sequence[str] = (),
                 rerun: Callable[[Result], str] | None = None) -> None:
    """The matrix, the disagreements view (with more than one implementation), and every FAILED,
    ERROR and NON-STRICT cell with its reason, each bad one ending with the command `rerun` gives
    for running that cell alone."""
    colour = use_colour(out)
    out.write(render(results, colour=colour, order=order))
    out.write(f"\n{LEGEND}\n")
    if len({r.impl for r in results}) > 1:
        rows_differing = disagreements(results, order)
        out.write(f"\ndisagreements: {len(rows_differing)} row(s) where implementations differ\n")
        if rows_differing:
            out.write(render(results, only=rows_differing, colour=colour, order=order))
    bad = [r for r in results if r.grade in (FAILED, ERROR, NON_STRICT)]
    if bad:
        out.write("\nwhy:\n")
        for r in bad:
            again = f"  [rerun: {rerun(r)}]" if rerun is not None and r.grade in (FAILED, ERROR) else ""
            out.write(f"  {_paint(f'{r.grade:<10}', r.grade, colour)} {r.impl}/{r.model} {r.scenario}: "
                      f"{r.reason}{again}\n")
    out.write(f"\n{summary(results)}\n")
