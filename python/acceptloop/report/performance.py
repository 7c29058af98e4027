"""The report's performance section: the one place where the benchmark's results come in.

`acceptloop bench` (a later part of the kit) writes results/bench.json. `load()` reads it
when it exists and `section()` turns it into the context that templates/report/performance.html.j2
and REPORT.md.j2 render. Until the benchmark exists the section is a placeholder that says how
to produce the figures; when it lands, its document is rendered here and nowhere else.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from acceptloop.paths import ROOT

DEFAULT_BENCH = ROOT / "results" / "bench.json"
PRODUCE = ["acceptloop bench", "acceptloop report"]   # the commands that fill the section


class BenchError(Exception):
    """A benchmark results file was named but cannot be read."""


def load(path: Path | None, required: bool) -> dict[str, Any] | None:
    """The bench document at `path`; None when there is none and none was asked for by name."""
    if path is None or (not required and not Path(path).exists()):
        return None
    try:
        document = json.loads(Path(path).read_text())
    except OSError as e:
        raise BenchError(f"{path}: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise BenchError(f"{path}: not JSON: {e}") from None
    if not isinstance(document, dict):
        raise BenchError(f"{path}: not an `acceptloop bench` results file")
    return document


def _shown(path: Path | None) -> str:
    """`results/bench.json` rather than the checkout's absolute path."""
    path = Path(path or DEFAULT_BENCH)
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def section(bench: dict[str, Any] | None, path: Path | None) -> dict[str, Any]:
    """The performance section's context: a placeholder until `bench` holds results.

    Rendering the benchmark's figures belongs here: this function is what turns a bench
    document into rows and charts for the templates.
    """
    if bench is None:
        return {"available": False, "produce": PRODUCE, "path": _shown(path), "schema": None,
                "provenance": {}}
    return {"available": True, "produce": PRODUCE, "path": _shown(path), "schema": bench.get("schema", "unknown"),
            "provenance": bench.get("provenance") or {}}
