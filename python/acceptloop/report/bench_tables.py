"""The benchmark's tables as the templates print them: every cell with its flags, the table of
ratios between implementations, and the targets with their state.

The figures themselves (medians, ratios, whether a target is met) are computed by
bench/summary.py when the benchmark runs; this module only formats and classifies them.
"""
from __future__ import annotations

import re
from typing import Any, Callable, Sequence

from acceptloop.report import numbers
from acceptloop.report.bench_charts import workload_title
from acceptloop.report.charts import Palette

EVEN = 1.05          # a ratio within 5 % of 1 is neither better nor worse
# A flag's kind (the words before its colon) and how loudly the table marks it.
FLAG_SEVERITY = {"failed": "bad", "errors": "bad", "unsupported": "gone", "noisy": "warn", "client-bound": "warn",
                 "lost": "warn"}
UNITS = {"ops_per_s": "ops/s", "mb_per_s": "MB/s"}


def anchor(cell_id: str) -> str:
    return "bench-" + re.sub(r"[^A-Za-z0-9_.-]+", "_", cell_id)


def flag(text: str) -> dict[str, str]:
    kind = str(text).split(":", 1)[0].strip()
    return {"text": str(text), "kind": kind, "cls": FLAG_SEVERITY.get(kind, "warn")}


def _median(s: dict[str, Any] | None) -> float | None:
    return s.get("median") if s else None


def _range(s: dict[str, Any] | None, fmt=numbers.si) -> str:
    """'min 35.0k, max 38.5k over 3 runs' for a tooltip."""
    if not s or s.get("median") is None:
        return ""
    return f"median {fmt(s['median'])}, min {fmt(s.get('min'))}, max {fmt(s.get('max'))} over {s.get('n', '?')} runs"


def row(c: dict[str, Any], palette: Palette) -> dict[str, Any]:
    """One cell as the table prints it."""
    primary = c.get("primary", "ops_per_s")
    lat = c.get("latency_us") or {}
    rss_conn = c.get("rss_per_conn")
    idle = c.get("kind") == "idle"
    errors = c.get("errors") or {}
    return {
        **palette.style(c.get("impl", "?")), "anchor": anchor(c.get("id", "?")), "id": c.get("id", "?"),
        "role": c.get("role", "port"), "model": c.get("model", "?"), "workload": c.get("workload", "?"),
        "primary": "–" if idle else numbers.spread(c.get(primary)),
        "primary_unit": "" if idle else UNITS.get(primary, primary),
        "primary_title": f"held {c.get('connections')} idle connections; see the RSS columns" if idle
        else _range(c.get(primary)),
        "mb_s": numbers.si(_median(c.get("mb_per_s"))) if not idle else "–",
        "cpu": numbers.si(_median(c.get("server_cpu_us_per_op"))), "cpu_title": _range(c.get("server_cpu_us_per_op")),
        "instructions": numbers.si(_median(c.get("server_instructions_per_op"))),
        "instructions_title": "; ".join(x for x in (
            _range(c.get("server_instructions_per_op")),
            f"of which user space: {numbers.si(_median(c.get('server_user_instructions_per_op')))}"
            if _median(c.get("server_user_instructions_per_op")) is not None else "") if x),
        "latency": [numbers.micros(_median(lat.get(p))) for p in ("p50", "p99", "p999")],
        # Each percentile's cell carries its own spread (p90's rides on p50's): one tooltip each, not all four thrice.
        "latency_titles": [f"p50: {_range(lat.get('p50'), numbers.micros)}; p90: {_range(lat.get('p90'), numbers.micros)}"
                           if lat.get("p50") else "", _range(lat.get("p99"), numbers.micros),
                           _range(lat.get("p999"), numbers.micros)],
        "client": numbers.percent(_median(c.get("client_cpu_pct"))),
        "client_io": c.get("io") or "–",
        "client_title": _client_title(c),
        "rss_peak": numbers.size(c.get("rss_peak")),
        "rss_conn": numbers.size(_median(rss_conn)), "rss_conn_title": _range(rss_conn, numbers.size),
        "errors": ", ".join(f"{k} {v}" for k, v in errors.items()) if errors else "0",
        "has_errors": bool(errors),
        "flags": [flag(f) for f in c.get("flags") or ()],
        **floor_column(c),
    }


def _client_title(c: dict[str, Any]) -> str:
    """The generator's CPU per operation beside the server's: above 1, one core of client
    cannot saturate one core of this server, however quiet the machine."""
    client, server = _median(c.get("client_cpu_us_per_op")), _median(c.get("server_cpu_us_per_op"))
    busy = _median(c.get("server_cpu_pct"))
    if client is None:
        return "the load generator's CPU, % of one CPU"
    text = f"the load generator's CPU per op: {numbers.sig(client)} µs"
    if server:
        text += f", {numbers.sig(client / server)}× the server's"
    if busy is not None:
        text += f"; the server used {numbers.percent(busy)} of its CPUs"
    return text


def floor_column(c: dict[str, Any]) -> dict[str, str]:
    """'1.02×' (server CPU per op over the floor's on the same workload) and a tooltip with the same
    in instructions; the floor's own row says it is the floor; '–' where the run has no floor."""
    if c.get("role") == "floor":
        return {"floor": "floor", "floor_title": "the floor itself: the least a server can do on this workload"}
    f = c.get("floor") or {}
    cpu, work = f.get("cpu_per_op"), f.get("instructions_per_op")
    if cpu is None and work is None:
        return {"floor": "–", "floor_title": "no floor cell in this run"}
    return {"floor": numbers.ratio(cpu) if cpu is not None else "–",
            "floor_title": f"server CPU per op ÷ {f.get('impl')}'s on the same workload: "
                           f"{numbers.sig(cpu) if cpu is not None else '–'}; instructions per op: "
                           f"{numbers.sig(work) if work is not None else '–'}"}


def cell_rows(cells: Sequence[dict[str, Any]], palette: Palette) -> list[dict[str, Any]]:
    """Every cell, grouped by (workload, model) in the document's order (ports and peers side by side)."""
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for c in cells:
        key = (c.get("workload", "?"), c.get("model", "?"))
        if key not in groups:
            groups[key] = {"workload": key[0], "model": key[1], "title": workload_title(c),
                           "op": c.get("op", "operation"), "rows": []}
        groups[key]["rows"].append(row(c, palette))
    return list(groups.values())


# -- the ratio table -------------------------------------------------------------------------------
def _judge(value: float | None, higher_is_better: bool) -> str:
    if value is None:
        return "none"
    if value > EVEN:
        return "better" if higher_is_better else "worse"
    if value < 1 / EVEN:
        return "worse" if higher_is_better else "better"
    return "even"


def pair_group(a: str, b: str, palette: Palette) -> str:
    """Which block of the ratio table a pair goes in: by the roles the registry gives a and b."""
    if palette.roles.get(a) == "control":
        return "the noise floor: a control twin against its original"
    if palette.roles.get(b) == "floor":
        return "against the floor: the least a server can do"
    if palette.roles.get(b) == "peer":
        return "against the peers"
    return "between the ports"


PAIR_GROUPS = ("between the ports", "against the peers", "against the floor: the least a server can do",
               "the noise floor: a control twin against its original")


def core_table(entries: Sequence[dict[str, Any]], palette: Palette) -> dict[str, Any]:
    """Pairs as rows, workloads as columns; each cell the throughput ratio and the CPU-per-op ratio."""
    workloads = list(dict.fromkeys(e.get("workload", "?") for e in entries))
    by = {(e.get("pair"), e.get("workload")): e for e in entries}
    pairs: dict[str, dict[str, Any]] = {}
    for e in entries:
        name = e.get("pair") or f"{e.get('a')} vs {e.get('b')}"
        if name in pairs:
            continue
        a, b = e.get("a", name.split(" vs ")[0]), e.get("b", name.split(" vs ")[-1])
        cells = []
        for w in workloads:
            x = by.get((name, w))
            if x is None:
                cells.append(None)
                continue
            speed, cost, work = x.get("throughput_ratio"), x.get("cpu_per_op_ratio"), x.get("instructions_per_op_ratio")
            cells.append({"speed": numbers.ratio(speed), "speed_cls": _judge(speed, True),
                          "cpu": numbers.ratio(cost), "cpu_cls": _judge(cost, False),
                          "title": f"{a} / {b} on {w}: throughput ×{numbers.sig(speed) if speed else '–'}, "
                                   f"server CPU per op ×{numbers.sig(cost) if cost else '–'}, "
                                   f"instructions per op ×{numbers.sig(work) if work else '–'}"})
        pairs[name] = {"pair": name, "a": palette.style(a), "b": palette.style(b),
                       "group": pair_group(a, b, palette), "cells": cells}
    rows = sorted(pairs.values(), key=lambda p: PAIR_GROUPS.index(p["group"]))
    return {"workloads": workloads, "rows": rows}


# -- the bindings table ------------------------------------------------------------------------------
def _difference(value: float | None, noise: float | None, fmt) -> dict[str, str]:
    if value is None:
        return {"value": "–", "noise": "", "cls": "none"}
    sign = "+" if value >= 0 else "−"
    within = noise is not None and abs(value) <= noise
    return {"value": f"{sign}{fmt(abs(value))}", "noise": f"±{fmt(noise)}" if noise is not None else "",
            "cls": "even" if within else ("worse" if value > 0 else "better")}


def bindings(entries: Sequence[dict[str, Any]], palette: Palette) -> list[dict[str, Any]]:
    """Per binding and workload: its cost over the core it runs, in server CPU µs per op and in
    instructions per op, each beside the control twin's own difference from the core on that cell
    (grey: within it, so not told apart from noise)."""
    out = []
    for e in entries:
        out.append({**palette.style(e.get("impl", "?")), "host": e.get("host", "?"), "core": e.get("core", "?"),
                    "what": "one callback per message" if e.get("callback") else "the loop alone",
                    "workload": e.get("workload", "?"), "control": e.get("control") or "–",
                    "cpu": _difference(e.get("cpu_per_op"), e.get("cpu_per_op_noise"), numbers.sig),
                    "instructions": _difference(e.get("instructions_per_op"), e.get("instructions_per_op_noise"),
                                                numbers.si)})
    return out


# -- the batching table ------------------------------------------------------------------------------
def _pair(figure: dict[str, Any] | None, fmt: Callable[[float | None], str], higher_is_better: bool) -> dict[str, str]:
    """One figure of a batching row: the batched model's median, the unbatched one's, their ratio."""
    f = figure or {}
    ratio = f.get("ratio")
    return {"batched": fmt(f.get("batched")), "unbatched": fmt(f.get("unbatched")),
            "ratio": numbers.ratio(ratio), "cls": _judge(ratio, higher_is_better)}


def batching(entries: Sequence[dict[str, Any]], palette: Palette) -> list[dict[str, Any]]:
    """Per implementation and datagram workload: the batched model against the unbatched one
    (bench.batching), in datagrams per second and in server CPU µs (and instructions) per datagram,
    each with both medians and the ratio; green where batching wins by more than 5 %."""
    out = []
    for e in entries:
        lost = e.get("lost") or {}
        out.append({**palette.style(e.get("impl", "?")), "words": e.get("words", ""),
                    "model": e.get("model", "?"), "against_model": e.get("against_model", "?"),
                    "workload": e.get("workload", "?"),
                    "throughput": _pair(e.get("throughput"), numbers.si, True),
                    "cpu": _pair(e.get("cpu_per_op"), numbers.si, False),
                    "instructions": _pair(e.get("instructions_per_op"), numbers.si, False),
                    "lost": ", ".join(f"{m} {n}" for m, n in lost.items() if n is not None) or "–"})
    return out


# -- the targets -------------------------------------------------------------------------------------
def _value(value: float | None, unit: str) -> str:
    if value is None:
        return "–"
    if unit == "x":
        return numbers.ratio(value)
    if unit == "fraction":
        return numbers.percent(value * 100)
    if unit == "bytes":
        return numbers.size(value)
    return f"{numbers.sig(value)} {unit}".strip()


STATES = {"met": "met", "missed": "missed", "within noise": "noise", "not measured": "unmeasured",
          "shown": "shown"}
DIRECTION = {"at most": "≤", "at least": "≥"}


def targets(entries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each target with its measured value, its bound and its state: met, missed, within noise
    (missed by less than the run's noise floor; bench/summary.py's WITHIN_NOISE), not measured
    (this run has no such cell), or shown (measured, no bound to meet).

    A document from before targets carried their state and direction gives met (True, False,
    None) and upper bounds only; both are read."""
    out = []
    for t in entries:
        value, bound, unit, met = t.get("value"), t.get("bound"), t.get("unit", ""), t.get("met")
        state = t.get("state")
        if state not in STATES:
            state = {True: "met", False: "missed"}.get(met) or ("not measured" if value is None else "shown")
        sign = DIRECTION.get(t.get("direction", "at most"), "≤")
        out.append({"target": t.get("target", "?"), "value": _value(value, unit),
                    "instructions": _value(t.get("instructions"), unit) if unit in ("x", "fraction") else "",
                    "bound": f"{sign} {numbers.trimmed(_value(bound, unit))}" if bound is not None else "–",
                    "noise": _value(t.get("noise_floor"), "fraction") if t.get("noise_floor") is not None else "",
                    "state": state, "cls": STATES[state], "how": t.get("how", "")})
    return out
