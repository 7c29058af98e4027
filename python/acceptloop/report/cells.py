"""The conformance results as the report shows them: the matrix's rows and cells, and each cell's detail.

The rows, their grouping and order, the columns and the disagreements are suite/matrix.py's,
so the report and `acceptloop check` always show the same matrix. This module only turns
them into plain values a template can print (anchors, colour classes, durations), and every
cell's detail into the data the page stores once (data(), encode()) and its script renders
when the cell is opened.
"""
from __future__ import annotations

import json
import re
import shlex
from collections import Counter
from typing import Any, Sequence

from acceptloop import render
from acceptloop.suite import matrix
from acceptloop.suite.scenario import ERROR, FAILED, GRADES, INFO, MISSING, NON_STRICT, OK, Result

# The colour class of each grade (report.html.j2's stylesheet colours them), and what it means.
GRADE_CLASS = {OK: "ok", NON_STRICT: "non-strict", FAILED: "failed", ERROR: "error", INFO: "info", MISSING: "missing"}
GRADE_MEANING = {
    OK: "every check held",
    NON_STRICT: "a SHOULD was not met",
    FAILED: "a MUST was broken",
    ERROR: "the kit itself failed (not the server): nothing is known of the server",
    INFO: "recorded only, or the case cannot apply",
    MISSING: "not offered by that implementation: nothing was run",
}
HEX_WIDTH = 16   # bytes per line of a hex dump


def anchor(impl: str, model: str, scenario: str) -> str:
    """The id of a cell's detail: `cell-php-event-echo.half_close_flush` (safe in a URL fragment)."""
    return "cell-" + "-".join(re.sub(r"[^A-Za-z0-9_.]+", "_", part) for part in (impl, model, scenario))


def seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.3f} s"


def hexdump(data: bytes, offset: int) -> list[dict[str, str]]:
    """hexdump -C's lines: offset, hex bytes, and the printable characters (others as '.').

    The page's script draws the same lines from an edge's hex (script.js.j2's hexLines);
    tests/test_report.py holds the two to each other."""
    lines = []
    for start in range(0, len(data), HEX_WIDTH):
        chunk = data[start:start + HEX_WIDTH]
        lines.append({
            "offset": f"{offset + start:08x}",
            "hex": " ".join(f"{b:02x}" for b in chunk).ljust(HEX_WIDTH * 3 - 1),
            "text": "".join(chr(b) if 32 <= b < 127 else "." for b in chunk),
        })
    return lines


def stream(summary: dict[str, Any]) -> dict[str, Any]:
    """One direction of a transcript: its count, the start of its hash, and its first and last
    bytes as hex (the script dumps them): an edge the head already shows is left out."""
    count = int(summary.get("bytes", 0))
    head, tail = summary.get("head", ""), summary.get("tail", "")
    edges = []
    if head:
        edges.append({"label": "all bytes" if len(head) // 2 >= count else f"first {len(head) // 2} bytes",
                      "offset": 0, "hex": head})
    if tail and count > len(head) // 2:
        edges.append({"label": f"last {len(tail) // 2} bytes", "offset": count - len(tail) // 2, "hex": tail})
    return {"bytes": count, "sha256": summary.get("sha256", "")[:16], "edges": edges}


def transcript(t: dict[str, Any]) -> dict[str, Any]:
    address = t.get("address") or ["?", 0]
    host = f"[{address[0]}]" if ":" in str(address[0]) else str(address[0])
    return {
        "label": t.get("label", "client"), "address": f"{host}:{address[1]}",
        "sent": stream(t.get("sent", {})), "received": stream(t.get("received", {})),
        "end": t.get("end", "?"), "closed_first": t.get("closed_first") or "-",
        "connect": seconds(t.get("connect_s")), "first_byte": seconds(t.get("first_byte_s")),
        "duration": seconds(t.get("duration_s")), "notes": list(t.get("notes", [])),
    }


def _command(value: Any) -> str:
    if not value:
        return "-"
    return shlex.join(str(v) for v in value) if isinstance(value, list) else str(value)


def servers(server: dict[str, Any]) -> list[dict[str, Any]]:
    """The server the kit kept for the cell (shared) and those the scenario started itself."""
    out = []
    if server.get("command") is not None or "stderr" in server:
        out.append({"role": "shared server", "command": _command(server.get("command")),
                    "pid": server.get("pid"), "exit_code": server.get("exit_code"),
                    "stderr": server.get("stderr", "")})
    for i, own in enumerate(server.get("own", []), start=1):
        out.append({"role": f"server {i} started by the scenario", "command": _command(own.get("command")),
                    "pid": own.get("pid"), "exit_code": own.get("exit_code"), "stderr": own.get("stderr", "")})
    return out


def requirement(scenario: dict[str, Any]) -> dict[str, str]:
    """What a scenario checks, once for all its cells."""
    return {"description": scenario.get("description", ""), "level": scenario.get("level", "?"),
            "source": scenario.get("source", "?"), "text": scenario.get("text", "")}


def detail(r: Result) -> dict[str, Any]:
    """Everything the report says about one cell, as the page's script renders it (the cell's
    requirement is its scenario's, in data()'s "scenarios")."""
    d: dict[str, Any] = {"impl": r.impl, "model": r.model, "scenario": r.scenario, "grade": r.grade,
                         "reason": r.reason}
    if r.grade == MISSING:
        return d
    d.update({
        "duration": seconds(r.duration_s),
        "checks": [{"what": c.what, "ok": c.ok, "level": c.level, "expected": c.expected, "observed": c.observed,
                    "basis": c.basis, "followed": c.followed} for c in r.checks],
        "transcripts": [transcript(t) for t in r.transcripts],
        "figures": [{"name": f.name, "value": f"{f.value:g}", "unit": f.unit, "note": f.note} for f in r.figures],
        "observed": json.dumps(r.observed, indent=1, sort_keys=True, default=str) if r.observed else "",
        "servers": servers(r.server or {}),
    })
    return d


def columns(results: Sequence[Result], implementations: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The matrix's columns (implementation x model, as suite/matrix.py orders them), grouped by implementation."""
    language = {i.get("name"): i.get("language") or i.get("name") for i in implementations}
    groups: list[dict[str, Any]] = []
    for impl, model in matrix.columns(results):
        if not groups or groups[-1]["impl"] != impl:
            groups.append({"impl": impl, "language": language.get(impl, impl), "models": []})
        groups[-1]["models"].append(model)
    return groups


def table(document: dict[str, Any]) -> dict[str, Any]:
    """The matrix: groups of rows (service or area), each row's cells in column order, and the filter's marks.

    A row is `agree` when every cell it has carries the same grade (matrix.disagreements'
    definition); a group is `agree` when all its rows are, so the filter hides it whole.
    """
    results: list[Result] = document["results"]
    scenarios = {s["id"]: s for s in document.get("scenarios", [])}
    order = [s["id"] for s in document.get("scenarios", [])]
    cols = matrix.columns(results)
    by = {(r.scenario, r.impl, r.model): r for r in results}
    differing = set(matrix.disagreements(results, order))
    groups: list[dict[str, Any]] = []
    for scenario_id in matrix.rows(results, order):
        name = scenario_id.split(".", 1)[0]
        if not groups or groups[-1]["name"] != name:
            groups.append({"name": name, "rows": [], "agree": True})
        cells = []
        for impl, model in cols:
            r = by.get((scenario_id, impl, model))
            cells.append(None if r is None else {
                "anchor": anchor(impl, model, scenario_id), "impl": impl, "model": model, "grade": r.grade, "cls": GRADE_CLASS[r.grade],
                "short": matrix.SHORT[r.grade], "title": f"{impl} / {model}: {r.grade}" + (f": {r.reason}" if r.reason else ""),
            })
        spec = scenarios.get(scenario_id, {})
        agree = scenario_id not in differing
        groups[-1]["rows"].append({"id": scenario_id, "description": spec.get("description", ""),
                                   "level": spec.get("level", ""), "agree": agree, "cells": cells})
        groups[-1]["agree"] = groups[-1]["agree"] and agree
    first_models: dict[str, str] = {}
    for impl, model in cols:
        first_models.setdefault(impl, model)
    return {"groups": groups, "columns": columns(results, document.get("implementations", [])),
            "first_models": first_models,
            "disagreements": [s for s in matrix.rows(results, order) if s in differing],
            "row_count": sum(len(g["rows"]) for g in groups), "column_count": len(cols)}


def counts(results: Sequence[Result]) -> list[dict[str, Any]]:
    """Cells per grade, in GRADES order, with each grade's share of a 100-wide bar (for the SVG)."""
    tally = Counter(r.grade for r in results)
    total = sum(tally.values()) or 1
    out, x = [], 0.0
    for grade in GRADES:
        width = 100.0 * tally[grade] / total
        out.append({"grade": grade, "cls": GRADE_CLASS[grade], "count": tally[grade], "meaning": GRADE_MEANING[grade],
                    "x": round(x, 3), "width": round(width, 3)})
        x += width
    return out


def data(document: dict[str, Any]) -> dict[str, Any]:
    """Every cell's detail, by anchor in matrix order (row, then column), with each scenario's
    requirement once and the grades' colour classes: what the page's script renders a detail from."""
    results: list[Result] = document["results"]
    scenarios = {s["id"]: s for s in document.get("scenarios", [])}
    order = [s["id"] for s in document.get("scenarios", [])]
    rank = {s: i for i, s in enumerate(matrix.rows(results, order))}
    col = {c: i for i, c in enumerate(matrix.columns(results))}
    ordered = sorted(results, key=lambda r: (rank[r.scenario], col[(r.impl, r.model)]))
    return {"classes": GRADE_CLASS,
            "scenarios": {s: requirement(scenarios.get(s, {})) for s in rank},
            "cells": {anchor(r.impl, r.model, r.scenario): detail(r) for r in ordered}}


def encode(value: Any) -> str:
    """`value` as the page stores it: compact JSON, deflated (zlib), in base64. The details of a
    full check are some 2 MB of JSON, most of it repeated (the same checks, commands and hex in
    every column), which deflate takes to under a tenth; the page's script inflates it with the
    browser's own DecompressionStream("deflate") when a cell is first opened."""
    return render.deflate_base64(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def decode(text: str) -> Any:
    """encode()'s inverse (for the tests and for anyone reading a page's data by hand)."""
    return json.loads(render.inflate_base64(text))


def attention(results: Sequence[Result], order: Sequence[str]) -> list[Result]:
    """The FAILED and NON-STRICT cells, FAILED first, in matrix order."""
    rank = {s: i for i, s in enumerate(matrix.rows(results, order))}
    bad = [r for r in results if r.grade in (FAILED, ERROR, NON_STRICT)]
    return sorted(bad, key=lambda r: ((FAILED, ERROR, NON_STRICT).index(r.grade), rank[r.scenario], r.impl, r.model))
