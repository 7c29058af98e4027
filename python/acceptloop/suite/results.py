"""Results on disk: the JSON that `acceptloop check --json` writes and `acceptloop report` reads, and JUnit XML."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Sequence

from acceptloop.suite.registry import Implementation
from acceptloop.suite.scenario import ERROR, FAILED, INFO, MISSING, NON_STRICT, Result, Scenario

SCHEMA = "acceptloop.check/1"


def describe_impl(impl: Implementation) -> dict[str, Any]:
    return {"name": impl.name, "language": impl.language, "models": list(impl.models),
            "services": list(impl.services), "origin": impl.origin, "source": impl.source,
            "command": " ".join(impl.command) if impl.command else None,
            "address": f"{impl.address[0]}:{impl.address[1]}" if impl.address else None,
            "follows": sorted(impl.follows)}


def to_document(impls: Sequence[Implementation], scenarios: Sequence[Scenario], results: Sequence[Result],
                provenance: dict[str, Any]) -> dict[str, Any]:
    used = {r.scenario for r in results}
    return {
        "schema": SCHEMA,
        "provenance": provenance,
        "implementations": [describe_impl(i) for i in impls],
        "scenarios": [s.describe() for s in scenarios if s.id in used],
        "results": [r.to_dict() for r in results],
    }


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1, default=str) + "\n")


class ResultsError(Exception):
    """A results file is unreadable or not of this kit's schema."""


def read_json(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(Path(path).read_text())
    except OSError as e:
        raise ResultsError(f"{path}: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise ResultsError(f"{path}: not JSON: {e}") from None
    if not isinstance(document, dict) or document.get("schema") != SCHEMA:
        raise ResultsError(f"{path}: not an `acceptloop check --json` file (schema {SCHEMA})")
    document["results"] = [Result.from_dict(r) for r in document["results"]]
    return document


def write_junit(path: Path, results: Sequence[Result]) -> None:
    """One testcase per cell: FAILED is a failure, ERROR (the kit's own) an error, MISSING is skipped,
    NON-STRICT and INFO pass with a note; every check is listed with its level and basis."""
    suite = ET.Element("testsuite", name="acceptloop", tests=str(len(results)),
                       failures=str(sum(r.grade == FAILED for r in results)),
                       errors=str(sum(r.grade == ERROR for r in results)),
                       skipped=str(sum(r.grade == MISSING for r in results)),
                       time=f"{sum(r.duration_s for r in results):.3f}")
    for r in results:
        case = ET.SubElement(suite, "testcase", classname=f"{r.impl}.{r.model}", name=r.scenario,
                             time=f"{r.duration_s:.3f}")
        checks = "\n".join(f"{'ok  ' if c.ok else 'FAIL'} [{c.level} {c.basis}{'' if c.followed else ', not followed'}] "
                           f"{c.what}" for c in r.checks)
        if r.grade == FAILED:
            ET.SubElement(case, "failure", message=r.reason).text = checks
        elif r.grade == ERROR:
            ET.SubElement(case, "error", message=r.reason).text = checks
        elif r.grade == MISSING:
            ET.SubElement(case, "skipped", message=r.reason)
        elif r.grade in (NON_STRICT, INFO):
            ET.SubElement(case, "system-out").text = f"{r.grade}: {r.reason}\n{checks}"
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)
