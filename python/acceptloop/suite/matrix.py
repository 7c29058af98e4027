"""The side-by-side matrix in the terminal: one row per scenario, one column per implementation x model."""
from __future__ import annotations

import os
import sys
from collections import Counter, defaultdict
from typing import Sequence, TextIO

from acceptloop import _protocol as P
from acceptloop.suite.scenario import FAILED, GRADES, INFO, MISSING, NON_STRICT, OK, Result

SHORT = {OK: "ok", NON_STRICT: "NS", FAILED: "FAIL", INFO: "info", MISSING: "miss"}
MODEL_SHORT = {"iterative": "iter", "fork": "fork", "threads": "thr", "event": "evt"}
COLOUR = {OK: "32", NON_STRICT: "33", FAILED: "1;31", INFO: "36", MISSING: "2"}
LEGEND = "ok = OK, NS = NON-STRICT (a SHOULD not met), FAIL = FAILED (a MUST broken), info = INFO, miss = MISSING (not offered)"
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
    cell = 5
    impl_widths: dict[str, int] = Counter(i for i, _ in cols)
    head1 = " " * width + "".join(f"{impl:<{impl_widths[impl] * cell}.{impl_widths[impl] * cell - 1}}"
                                  for impl in dict.fromkeys(i for i, _ in cols))
    head2 = f"{'scenario':<{width}}" + "".join(f"{MODEL_SHORT.get(m, m[:4]):<{cell}}" for _, m in cols)
    lines = [head1.rstrip(), head2.rstrip()]
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
            out += _paint(f"{text:<{cell}}", r.grade, colour) if r else f"{text:<{cell}}"
        lines.append(out.rstrip())
    return "\n".join(lines) + "\n"


def summary(results: Sequence[Result]) -> str:
    counts = Counter(r.grade for r in results)
    return ", ".join(f"{counts[g]} {g}" for g in GRADES if counts[g]) or "no results"


def print_report(results: Sequence[Result], out: TextIO = sys.stdout, order: Sequence[str] = ()) -> None:
    """The matrix, the disagreements view, and every FAILED and NON-STRICT cell with its reason."""
    colour = use_colour(out)
    out.write(render(results, colour=colour, order=order))
    out.write(f"\n{LEGEND}\n")
    rows_differing = disagreements(results, order)
    out.write(f"\ndisagreements: {len(rows_differing)} row(s) where implementations differ\n")
    if rows_differing:
        out.write(render(results, only=rows_differing, colour=colour, order=order))
    bad = [r for r in results if r.grade in (FAILED, NON_STRICT)]
    if bad:
        out.write("\nwhy:\n")
        for r in bad:
            out.write(f"  {r.grade:<10} {r.impl}/{r.model} {r.scenario}: {r.reason}\n")
    out.write(f"\n{summary(results)}\n")
