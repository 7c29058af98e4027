"""`acceptloop report`: read the check's results (and the benchmark's), render index.html and REPORT.md.

Both files come from one context each, built here from the results document, the
walkthrough (extracted from the sources now) and the performance section, and rendered by
the kit's one jinja2 Environment (acceptloop.render) from templates/report.html.j2 and
templates/REPORT.md.j2.
"""
from __future__ import annotations

import shlex
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from acceptloop import render
from acceptloop.paths import REPORT, ROOT
from acceptloop.report import cells, performance, robustness, vocabulary, walkthrough
from acceptloop.suite import matrix
from acceptloop.suite import results as results_io
from acceptloop.suite.scenario import ERROR, FAILED, GRADES, INFO, MISSING, NON_STRICT, OK

DEFAULT_RESULTS = ROOT / "results" / "check.json"
GRADE_ORDER = list(GRADES)
SEVERITY = [FAILED, ERROR, NON_STRICT, MISSING, INFO, OK]   # the order disagreements list grades in


def provenance(document: dict[str, Any], command: Sequence[str] | None) -> dict[str, Any]:
    """Where the results came from: the machine, the tools, and the exact commands."""
    p = document.get("provenance") or {}

    def get(key: str) -> str:
        value = p.get(key)
        return "unknown" if value in (None, "") else str(value)

    cpus = p.get("cpus")
    machine = [
        ("date of the results", get("date")),
        ("git commit", get("commit")),
        ("CPU model", get("cpu")),
        ("CPUs", str(cpus) if cpus else "unknown"),
        ("kernel", get("kernel")),
        ("Python", get("python")),
        ("PHP", get("php")),
        ("gcc", get("gcc")),
        ("cffi", get("cffi")),
        ("jinja2", get("jinja2")),
    ]
    commands = [("results", get("command"))]
    if command is not None:
        commands.append(("this report", shlex.join(command)))
    impls = [{"name": i.get("name", "?"), "language": i.get("language") or "-",
              "command": i.get("command") or (f"already running at {i['address']}" if i.get("address") else "-"),
              "models": ", ".join(i.get("models") or []), "source": i.get("source") or "-"}
             for i in document.get("implementations", [])]
    return {"machine": machine, "commands": commands, "implementations": impls,
            "date": get("date"), "commit": get("commit")}


def code_lines(region: walkthrough.Region | None, lexer: str) -> list[dict[str, Any]]:
    """Each line of a step's code: its number, its coloured runs (walkthrough.highlight) and its
    indentation (a wrapped line continues under its own indentation)."""
    if region is None:
        return []
    runs = walkthrough.highlight(region.lines, lexer)
    return [{"n": n, "runs": r, "indent": len(line) - len(line.lstrip(" ")) if line.strip() else 0}
            for (n, line), r in zip(region.numbered, runs)]


def step_summary(step: walkthrough.Step, walk: walkthrough.Walkthrough) -> str:
    """What a folded step says of itself: `Python 19 lines · C 48 · PHP 30` or `… · no PHP`."""
    parts = []
    for key, lang in walk.columns(step.section).items():
        region = step.regions.get(key)
        parts.append(f"{lang.label} {len(region.lines)}" if region else f"no {lang.label}")
    first = next((i for i, p in enumerate(parts) if not p.startswith("no ")), None)
    if first is not None:
        parts[first] += " lines"
    return " · ".join(parts)


def disagreements(table: dict[str, Any]) -> list[dict[str, Any]]:
    """Each row where implementations disagree, with its cells grouped by grade (worst first)."""
    out = []
    for group in table["groups"]:
        for row in group["rows"]:
            if row["agree"]:
                continue
            by: dict[str, list[str]] = {}
            for cell in row["cells"]:
                if cell is not None:
                    by.setdefault(cell["grade"], []).append(f"{cell['impl']}/{cell['model']}")
            ranked = sorted(by.items(), key=lambda kv: SEVERITY.index(kv[0]))
            out.append({"id": row["id"], "by_grade": ranked})
    return out


def context(document: dict[str, Any], walk: walkthrough.Walkthrough, perf: dict[str, Any],
            command: Sequence[str] | None) -> dict[str, Any]:
    """The explicit context both templates render from."""
    results = document["results"]
    order = [s["id"] for s in document.get("scenarios", [])]
    table = cells.table(document)
    steps = [{
        "name": s.name, "anchor": s.anchor, "note": walkthrough.paragraphs(s.note), "summary": step_summary(s, walk),
        "section": s.section,
        "columns": [{"language": lang.label, "key": k, "region": s.regions.get(k),
                     "lines": code_lines(s.regions.get(k), lang.lexer), "absent": s.absent.get(k)}
                    for k, lang in walk.columns(s.section).items()],
    } for s in walk.steps]
    return {
        "title": "acceptloop: comparison report",
        "written": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "provenance": provenance(document, command),
        "counts": cells.counts(results),
        "total": len(results),
        "summary": matrix.summary(results),
        "table": table,
        "robustness": robustness.table(document),
        "disagreements": disagreements(table),
        "cell_data": cells.encode(cells.data(document)),
        "attention": [{"grade": r.grade, "cls": cells.GRADE_CLASS[r.grade], "impl": r.impl, "model": r.model,
                       "scenario": r.scenario, "reason": r.reason, "anchor": cells.anchor(r.impl, r.model, r.scenario)}
                      for r in cells.attention(results, order)],
        "missing": [{"impl": r.impl, "model": r.model, "scenario": r.scenario, "reason": r.reason,
                     "anchor": cells.anchor(r.impl, r.model, r.scenario)} for r in results if r.grade == MISSING],
        "grades": [{"grade": g, "cls": cells.GRADE_CLASS[g], "short": matrix.SHORT[g],
                    "meaning": cells.GRADE_MEANING[g]} for g in GRADE_ORDER],
        "model_short": matrix.MODEL_SHORT,
        "walkthrough": steps,
        "performance": perf,
    }


def write_report(results_path: Path = DEFAULT_RESULTS, bench_path: Path | None = None, out_dir: Path = REPORT,
                 command: Sequence[str] | None = None, bench_required: bool | None = None,
                 walkthrough_toml: Path | None = None, sources: Path | None = None) -> Path:
    """Write `out_dir`/index.html and `out_dir`/REPORT.md; return index.html's path.

    The benchmark's results are read from `bench_path` (None: results/bench.json); a file
    that does not exist gives the placeholder unless `bench_required` (default: whether
    `bench_path` was given), which makes it an error.

    Raises results_io.ResultsError (results unreadable), performance.BenchError (bench
    results required but unreadable) and walkthrough.WalkthroughError (the marked sources
    and docs/walkthrough.toml disagree, or a port lacks a name docs/design.md's vocabulary
    promises: vocabulary.VocabularyError, one of them).
    """
    try:
        document = results_io.read_json(results_path)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise results_io.ResultsError(f"{results_path}: malformed results: {type(e).__name__}: {e}") from None
    required = bench_path is not None if bench_required is None else bench_required
    bench_path = bench_path or performance.DEFAULT_BENCH
    perf = performance.section(performance.load(bench_path, required=required), bench_path)
    walk = walkthrough.load(walkthrough_toml, sources)
    if walkthrough_toml is None and sources is None:
        vocabulary.check()          # the walkthrough's sources use every name the design's table promises
    ctx = context(document, walk, perf, command)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    index = out_dir / "index.html"
    index.write_text(render.render("report.html.j2", ctx))
    (out_dir / "REPORT.md").write_text(render.render("REPORT.md.j2", ctx))
    return index
