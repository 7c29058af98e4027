"""Which of the benchmark's cells go into which chart (charts.py draws them).

    throughput  echo, event model: ops/s against connections, one chart per message size
    cpu         server CPU µs per operation: one bar chart per workload, every model
    latency     p50 … p99.9 at one representative concurrency per echo size (and the connection rate)
    memory      server memory per idle connection (the idle workload)

A chart is made only from cells that exist: a quick profile gives a few charts with a few
points; a chart with nothing to show is not drawn, and `missing` says why; a line chart never has
a single x value (that is drawn as bars, and the chart's `note` says why). Implementations are
told apart only by the palette and the roles the document records, never by name.
"""
from __future__ import annotations

from typing import Any, Sequence

from acceptloop.report import numbers
from acceptloop.report.charts import Palette, bar_chart, line_chart

MODELS = ("event", "iterative", "fork", "threads")     # the order bars are listed in
PERCENTILES = (("p50", "p50"), ("p90", "p90"), ("p99", "p99"), ("p999", "p99.9"))
REPRESENTATIVE = (256, 16, 1000, 1)   # the concurrency a latency chart shows, first that exists


def size_label(size: int) -> str:
    return f"{size // 1024} KiB" if size >= 1024 else f"{size} B"


def workload_title(c: dict[str, Any]) -> str:
    """'echo 64 B, 16 connections', 'connect (daytime), 1 connection', 'datagram echo (UDP) 64 B, 16 sockets'."""
    n = c.get("connections", 0)
    kind = c.get("kind", "?")
    conns = f"{n} {'socket' if kind == 'datagram' else 'connection'}{'s' if n != 1 else ''}"
    if kind == "echo":
        return f"echo {size_label(c.get('size', 0))}, {conns}"
    if kind == "datagram":
        return f"datagram echo (UDP) {size_label(c.get('size', 0))}, {conns}"
    return f"{kind} ({c.get('service', '?')}), {conns}"


def _spread(s: dict[str, Any] | None) -> dict[str, Any]:
    s = s or {}
    return {"median": s.get("median"), "min": s.get("min"), "max": s.get("max")}


def _unusable(c: dict[str, Any]) -> bool:
    """A cell whose figures do not describe the workload: it failed, or held fewer connections."""
    return any(str(f).startswith(("failed", "unsupported")) for f in c.get("flags") or ())


def _impl_order(cells: Sequence[dict[str, Any]], palette: Palette) -> list[str]:
    order = list(palette.colours)
    return sorted({c["impl"] for c in cells}, key=lambda i: order.index(i) if i in order else len(order))


def throughput(cells: Sequence[dict[str, Any]], palette: Palette) -> list[dict[str, Any]]:
    """A line per implementation over the connections, one chart per message size; a size the run
    measured at one concurrency only has no line to draw, so it is drawn as bars, with a note."""
    echo = [c for c in cells if c.get("kind") == "echo" and c.get("model") == "event"]
    out = []
    for size in sorted({c.get("size", 0) for c in echo}):
        mine = [c for c in echo if c.get("size", 0) == size]
        levels = sorted({c["connections"] for c in mine if (c.get("ops_per_s") or {}).get("median") is not None})
        order = _impl_order(mine, palette)
        if len(levels) == 1:
            at = [c for c in mine if c["connections"] == levels[0]]
            at.sort(key=lambda c: order.index(c["impl"]))
            chart = bar_chart(title=f"echo {size_label(size)}, {levels[0]} connection{'s' if levels[0] != 1 else ''}: "
                                    "round trips per second",
                              bars=[{"impl": c["impl"], "label": c["impl"], **_spread(c.get("ops_per_s")),
                                     "flags": c.get("flags")} for c in at],
                              palette=palette, x_label="ops/s (median, whisker min–max)")
            if chart:
                chart["note"] = (f"echo {size_label(size)} was measured at one concurrency only "
                                 f"({levels[0]} connection{'s' if levels[0] != 1 else ''}): bars, since a line "
                                 "needs two")
                out.append(chart)
            continue
        series = [{"impl": impl, "points": [
            {"x": c["connections"], **_spread(c.get("ops_per_s")), "flags": c.get("flags"),
             "label": f"{c['connections']} connections"}
            for c in mine if c["impl"] == impl]} for impl in order]
        chart = line_chart(title=f"echo {size_label(size)}: round trips per second", series=series, palette=palette,
                           x_values=sorted({c["connections"] for c in mine}), x_log=True,
                           x_label="connections (log scale)", y_label="ops/s (median, whisker min–max)")
        if chart:
            out.append(chart)
    return out


def cpu(cells: Sequence[dict[str, Any]], palette: Palette) -> list[dict[str, Any]]:
    out = []
    order = list(palette.colours)
    for workload in dict.fromkeys(c.get("workload") for c in cells):
        mine = [c for c in cells if c.get("workload") == workload and c.get("server_cpu_us_per_op")]
        mine.sort(key=lambda c: (MODELS.index(c["model"]) if c.get("model") in MODELS else len(MODELS),
                                 order.index(c["impl"]) if c["impl"] in order else len(order)))
        if not mine:
            continue
        bars = [{"impl": c["impl"], "label": c["impl"] if c.get("model") == "event" else f"{c['impl']} · {c.get('model')}",
                 **_spread(c["server_cpu_us_per_op"]), "flags": c.get("flags")} for c in mine]
        chart = bar_chart(title=workload_title(mine[0]), bars=bars, palette=palette,
                          x_label=f"server CPU µs per {mine[0].get('op', 'operation')}", x_format=numbers.si)
        if chart:
            out.append(chart)
    return out


def latency(cells: Sequence[dict[str, Any]], palette: Palette) -> list[dict[str, Any]]:
    out = []
    event = [c for c in cells if c.get("model") == "event" and c.get("kind") in ("echo", "connect")
             and any((c.get("latency_us") or {}).get(p) for p, _ in PERCENTILES)]
    groups = [("echo", size) for size in sorted({c.get("size", 0) for c in event if c["kind"] == "echo"})]
    groups += [("connect", 0)] if any(c["kind"] == "connect" for c in event) else []
    for kind, size in groups:
        mine = [c for c in event if c["kind"] == kind and c.get("size", 0) == size]
        levels = {c["connections"] for c in mine}
        at = next((n for n in REPRESENTATIVE if n in levels), min(levels))
        mine = [c for c in mine if c["connections"] == at]
        series = [{"impl": impl, "points": [
            {"x": p, **_spread((c.get("latency_us") or {}).get(p)), "flags": c.get("flags"), "label": name}
            for c in mine if c["impl"] == impl for p, name in PERCENTILES]} for impl in _impl_order(mine, palette)]
        what = f"echo {size_label(size)}" if kind == "echo" else "connect"
        chart = line_chart(title=f"{what}, {at} connection{'s' if at != 1 else ''}: latency of one {mine[0].get('op', 'operation')}",
                           series=series, palette=palette, x_values=[p for p, _ in PERCENTILES],
                           x_names=dict(PERCENTILES), x_label="percentile", y_log=True, y_format=numbers.micros,
                           y_label="latency (log scale, median of runs)")
        if chart:
            out.append(chart)
    return out


def memory(cells: Sequence[dict[str, Any]], palette: Palette) -> list[dict[str, Any]]:
    out = []
    for workload in dict.fromkeys(c.get("workload") for c in cells if c.get("kind") == "idle"):
        mine = [c for c in cells if c.get("workload") == workload and c.get("model") == "event"]
        order = _impl_order(mine, palette)
        mine.sort(key=lambda c: order.index(c["impl"]))
        bars = [{"impl": c["impl"], "label": c["impl"], **_spread(c.get("rss_per_conn")), "flags": c.get("flags")}
                for c in mine if not _unusable(c)]
        chart = bar_chart(title=f"{mine[0]['connections']} idle connections: server memory per connection" if mine else "",
                          bars=bars, palette=palette, x_label="server RSS growth per connection held",
                          x_format=numbers.size, binary=True)
        if chart:
            out.append(chart)
    return out


def charts(cells: Sequence[dict[str, Any]], palette: Palette) -> dict[str, Any]:
    """Every chart group, and for each empty group a line saying why it is empty."""
    cells = [c for c in cells if c.get("impl") and c.get("workload")]
    groups = {"throughput": throughput(cells, palette), "cpu": cpu(cells, palette),
              "latency": latency(cells, palette), "memory": memory(cells, palette)}
    for name, drawn in groups.items():
        for chart in drawn:
            chart["group"] = name
    why = {"throughput": "no echo cell on the event model in this run",
           "cpu": "no cell with a server CPU figure in this run",
           "latency": "no echo or connect cell with latency samples in this run",
           "memory": "no idle-connection cell in this run"}
    return {**groups, "missing": {k: why[k] for k, v in groups.items() if not v},
            "notes": {k: [c["note"] for c in v if c.get("note")] for k, v in groups.items()},
            "levels": sorted({c["connections"] for c in cells if c.get("kind") == "echo" and c.get("model") == "event"}),
            "sizes": [size_label(s) for s in sorted({c.get("size", 0) for c in cells
                                                     if c.get("kind") == "echo" and c.get("model") == "event"})]}
