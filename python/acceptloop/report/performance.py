"""The report's performance section: the one place where the benchmark's results come in.

`acceptloop bench` writes results/bench.json (schema acceptloop.bench/1). `load()` reads it
when it exists and `section()` turns it into the context that templates/report/performance.html.j2
and REPORT.md.j2 render: how the load was made (method, fairness, profile, provenance), the
charts (bench_charts.py picks the cells, charts.py draws them), and the tables (bench_tables.py:
the ratio table, the targets, every cell and its flags). Without a document the section is a
placeholder that says how to produce one.

Every key of the document is read with a default: a partial document (a filtered or failed
run, an older kit) gives a shorter section, never an exception.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from acceptloop.paths import ROOT
from acceptloop.report import bench_charts, bench_tables, numbers
from acceptloop.report.charts import Palette

DEFAULT_BENCH = ROOT / "results" / "bench.json"
PRODUCE = ["acceptloop bench --quick", "acceptloop report"]   # the commands that fill the section
FULL = "acceptloop bench --full"                               # every workload (about 15 minutes)
UNKNOWN = "not recorded"


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
    if not isinstance(document, dict) or not isinstance(document.get("cells", []), list):
        raise BenchError(f"{path}: not an `acceptloop bench` results file")
    return document


def _shown(path: Path | None) -> str:
    """`results/bench.json` rather than the checkout's absolute path."""
    path = Path(path or DEFAULT_BENCH)
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def _text(value: Any) -> str:
    if value is None or value == "":
        return UNKNOWN
    if isinstance(value, dict):
        return ", ".join(f"{k} {_text(v)}" for k, v in value.items())
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def palette(bench: dict[str, Any]) -> Palette:
    """Colours in the document's implementation order (ports first as the registry lists them):
    first the colours the registry's entries declare (bench.colour, recorded in the document), then
    the fallback palette for the rest, a control twin included."""
    p = Palette()
    impls = [i for i in bench.get("implementations") or [] if isinstance(i, dict) and i.get("name")]
    for i in impls:
        if isinstance(i.get("colour"), str) and i["colour"]:
            p.declare(i["name"], i.get("role", "port"), i["colour"])
    for i in impls:
        p.add(i["name"], i.get("role", "port"))
    for c in bench.get("cells") or []:
        if isinstance(c, dict):
            p.add(c.get("impl", "?"), c.get("role", "port"))
    return p


def fairness(f: dict[str, Any]) -> list[tuple[str, str]]:
    """The settings that make the comparison fair, in words."""
    pins = f.get("pinning") or {}
    if pins.get("pinned") and max(len(pins.get("server_cpus") or ()), len(pins.get("client_cpus") or ())) > 1:
        pinning = (f"server on CPUs {','.join(map(str, pins['server_cpus']))}, load generator on CPU "
                   f"{pins.get('client_cpu')} (of {','.join(map(str, pins['client_cpus']))})")
    elif pins.get("pinned"):
        pinning = f"server on CPU {pins.get('server_cpu')}, load generator on CPU {pins.get('client_cpu')}"
    elif pins:
        pinning = "none (fewer than two CPUs): server and load generator share the CPUs"
    else:
        pinning = UNKNOWN
    limit = f.get("fd_limit") or {}
    rows = [
        ("CPU pinning", pinning),
        ("TCP_NODELAY", _text(f.get("tcp_nodelay"))),
        ("listen backlog", _text(f.get("backlog"))),
        ("net.core.somaxconn", _text(f.get("somaxconn"))),
        ("descriptor limit", f"soft {limit.get('soft')}, hard {limit.get('hard')}" if limit else UNKNOWN),
        ("TCP buffers", (f"tcp_rmem {_text(f.get('tcp_rmem'))}, tcp_wmem {_text(f.get('tcp_wmem'))}"
                         " (min default max, bytes)").replace("\t", " ")),
        ("socket buffers", f"rmem_default {_text(f.get('rmem_default'))}, wmem_default {_text(f.get('wmem_default'))} (bytes)"),
        ("TCP congestion control", _text(f.get("tcp_congestion_control"))
         + (f" ({f['tcp_congestion_control_how']})" if f.get("tcp_congestion_control_how") else "")),
        ("CPUs", _text(f.get("cpus"))),
    ]
    known = {"pinning", "tcp_nodelay", "backlog", "somaxconn", "fd_limit", "tcp_rmem", "tcp_wmem",
             "rmem_default", "wmem_default", "tcp_congestion_control", "tcp_congestion_control_how", "cpus", "load"}
    rows += [(k, _text(v)) for k, v in f.items() if k not in known]
    return rows


METHOD_LABELS = {"interleaving": "rounds", "server": "servers", "server_cpu": "server CPU",
                 "per_op": "one operation", "noisy": "flagged noisy", "client_bound": "flagged client-bound",
                 "client_io": "client I/O", "loss": "datagram loss",
                 "within_noise": "within noise"}


def noise_floor(bench: dict[str, Any]) -> list[str]:
    """The noise floor the control twins measured, one line per figure, for the targets' note."""
    out = []
    for figure, n in (bench.get("noise_floor") or {}).items():
        if isinstance(n, dict) and n.get("worst") is not None:
            out.append(f"{figure}: {numbers.percent(n['worst'] * 100)} ({n.get('control', '?')} against "
                       f"{n.get('of', '?')}, worst at {n.get('at', '?')}, over {n.get('cells', '?')} cells)")
    return out


def section(bench: dict[str, Any] | None, path: Path | None) -> dict[str, Any]:
    """The performance section's context: a placeholder until `bench` holds results."""
    if bench is None:
        return {"available": False, "produce": PRODUCE, "full": FULL, "path": _shown(path), "schema": None,
                "provenance": []}
    cells = [c for c in bench.get("cells") or [] if isinstance(c, dict)]
    colours = palette(bench)
    profile = bench.get("profile") or {}
    method = bench.get("method") or {}
    prov = bench.get("provenance") or {}
    quick = profile.get("name") == "quick"
    rows = bench_tables.cell_rows(cells, colours)
    return {
        "available": True, "produce": PRODUCE, "full": FULL, "path": _shown(path),
        "schema": bench.get("schema", "unknown"),
        "provenance": [(k, _text(v)) for k, v in prov.items()],
        "command": prov.get("command") or UNKNOWN,
        "load": (bench.get("fairness") or {}).get("load"),
        "profile": {"name": profile.get("name", UNKNOWN), "description": profile.get("description", ""),
                    "rounds": profile.get("rounds", UNKNOWN),
                    "warmup": numbers.micros(profile["warmup_s"] * 1e6) if profile.get("warmup_s") is not None else UNKNOWN,
                    "window": numbers.micros(profile["duration_s"] * 1e6) if profile.get("duration_s") is not None else UNKNOWN,
                    "quick": quick},
        "method": [(METHOD_LABELS.get(k, k), _text(v)) for k, v in method.items()],
        "fairness": fairness(bench.get("fairness") or {}),
        "left_out": [(k, _text(v)) for k, v in (bench.get("left_out") or {}).items()],
        "legend": [s for s in colours.legend() if any(c.get("impl") == s["impl"] for c in cells)],
        "charts": bench_charts.charts(cells, colours),
        "core": bench_tables.core_table(bench.get("core_table") or [], colours),
        "bindings": bench_tables.bindings(bench.get("bindings") or [], colours),
        "batching": bench_tables.batching(bench.get("batching") or [], colours),
        "targets": bench_tables.targets(bench.get("targets") or []),
        "within_noise": method.get("within_noise"),
        "noise_floor": noise_floor(bench),
        "groups": rows,
        "flagged": [r for g in rows for r in g["rows"] if r["flags"]],
        "cell_count": len(cells),
        "impl_count": len({c.get("impl") for c in cells}),
    }
