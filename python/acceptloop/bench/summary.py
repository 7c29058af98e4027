"""From runs to what the report shows: each cell's median, min and max, its flags, the table of
ratios between implementations, the noise floor the control twins measure, and the targets.

Which pairs, which twins and which targets: the registry's bench stanzas (bench/spec.py) say;
this module names no implementation."""
from __future__ import annotations

import math
import statistics
from collections import defaultdict
from typing import Any, Sequence

from acceptloop.bench import spec as bench_spec
from acceptloop.bench.loadgen import DATAGRAM_LOSS_MS
from acceptloop.bench.plan import IO_RULE, Cell, Plan, Workload
from acceptloop.bench.runner import Run
from acceptloop.suite.registry import Implementation

SCHEMA = "acceptloop.bench/1"
NOISY = 1.25            # max/min of a cell's primary figure above this: noisy
SATURATED = 90.0        # a side's CPU above this (% of its CPUs): saturated. Client-bound: the generator
                        # saturated while the server did not
FIGURES = ("ops_per_s", "mb_per_s", "server_cpu_us_per_op", "server_instructions_per_op",
           "server_user_instructions_per_op", "client_cpu_pct", "client_cpu_us_per_op", "server_cpu_pct")
INSTRUCTIONS = "server_instructions_per_op"
PERCENTILES = ("p50", "p90", "p99", "p999")


def spread(values: Sequence[float]) -> dict[str, float] | None:
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def summarize_cell(cell: Cell, runs: list[dict[str, Any]]) -> dict[str, Any]:
    w = cell.workload
    good = [r for r in runs if "error" not in r]
    out: dict[str, Any] = {
        "id": cell.id, "workload": w.id, "kind": w.kind, "service": w.service, "size": w.size,
        "connections": w.connections, "impl": cell.impl.name, "role": cell.impl.role, "model": cell.model,
        "primary": w.primary, "op": w.op, "runs": runs, "flags": [],
    }
    for name in FIGURES:
        out[name] = spread([r.get(name) for r in good])
    out["latency_us"] = {p: spread([r["latency_us"][p] for r in good if r.get("latency_samples")])
                         for p in PERCENTILES}
    out["rss_peak"] = max((r.get("server_rss_end") or 0 for r in good), default=None)
    out["rss_per_conn"] = spread([r.get("rss_per_conn") for r in good])
    # How the load generator drove the sockets (bench/plan.py IO_RULE), as the runs used it.
    out["io"] = ", ".join(dict.fromkeys(r["io"] for r in good if r.get("io"))) or None
    errors: dict[str, int] = defaultdict(int)
    for r in good:
        for kind, n in r.get("errors", {}).items():
            errors[kind] += n
    out["errors"] = {k: v for k, v in errors.items() if v}
    if w.kind == "datagram":   # a datagram unanswered within DATAGRAM_LOSS_MS: lost, the generator's "timeout"
        out["lost"] = out["errors"].pop("timeout", 0)
    out["flags"] = _flags(w, runs, good, out)
    return out


def _flags(w: Workload, runs: list[dict[str, Any]], good: list[dict[str, Any]], out: dict[str, Any]) -> list[str]:
    """A cell's caveats: failed runs, connections not held, noisy, client-bound, datagrams lost, errors."""
    flags: list[str] = []
    failed = [r["error"] for r in runs if "error" in r]
    if failed:
        flags.append(f"failed: {failed[0]}")
    held = min((r.get("connections", 0) for r in good), default=0)
    if good and held < w.connections:
        flags.append(f"unsupported: held {held} of {w.connections} connections"
                     + (f" ({', '.join(f'{k} {v}' for k, v in out['errors'].items())})" if out["errors"] else ""))
    primary = out[w.primary]
    if primary and primary["min"] > 0 and primary["max"] / primary["min"] > NOISY:
        flags.append(f"noisy: max/min {primary['max'] / primary['min']:.2f}")
    client, server = out["client_cpu_pct"], out["server_cpu_pct"]
    if client and client["median"] > SATURATED and not (server and server["median"] > SATURATED):
        # The generator ran out of CPU first: the server waited for it. Where both did, the server's
        # figures are its own at full load.
        flags.append(f"client-bound: the load generator used {client['median']:.0f}% of its CPU"
                     + (f", the server {server['median']:.0f}% of its" if server else ""))
    if out.get("lost"):
        flags.append(f"lost: {out['lost']} datagrams unanswered within {DATAGRAM_LOSS_MS} ms over {len(good)} runs")
    if out["errors"] and not any(f.startswith("unsupported") for f in flags):
        flags.append("errors: " + ", ".join(f"{k} {v}" for k, v in out["errors"].items()))
    return flags


def _median(cells: dict[str, dict[str, Any]], impl: str, model: str, workload: str, figure: str) -> float | None:
    c = cells.get(f"{impl}-{model}-{workload}")
    if c is None or c.get(figure) is None or any(f.startswith(("unsupported", "failed")) for f in c["flags"]):
        return None
    return c[figure]["median"]


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b not in (None, 0) else None


# -- the ratio table -------------------------------------------------------------------------------
def pairs(impls: Sequence[Implementation]) -> list[tuple[str, str]]:
    """(numerator, denominator) for the ratio table, as the registry's stanzas ask: each
    implementation against each name of its `compare` the run holds, then each control twin
    against its original, then every implementation against each floor (role "floor")."""
    names = [i.name for i in impls]
    out = [(i.name, other) for i in impls if i.bench and not i.bench.twin_of
           for other in i.bench.compare if other in names]
    out += [(i.name, i.bench.twin_of) for i in impls if i.bench and i.bench.twin_of and i.bench.twin_of in names]
    out += [(i.name, f.name) for f in impls if f.role == FLOOR for i in impls if i.role not in (FLOOR, "control")]
    return list(dict.fromkeys(out))


FLOOR = "floor"
FLOOR_FIGURES = {"cpu_per_op": "server_cpu_us_per_op", "instructions_per_op": INSTRUCTIONS}


def floor_ratios(cells: dict[str, dict[str, Any]]) -> None:
    """Each cell's `floor`: its server CPU and instructions per op divided by the floor's on the
    same workload (the floor measures its own model, whatever the cell's), or None where the run
    has no floor cell for that workload."""
    floors = {c["workload"]: c for c in cells.values()
              if c["role"] == FLOOR and not any(x.startswith(("unsupported", "failed")) for x in c["flags"])}
    for c in cells.values():
        f = floors.get(c["workload"])
        if c["role"] == FLOOR or f is None or any(x.startswith(("unsupported", "failed")) for x in c["flags"]):
            c["floor"] = None
            continue
        c["floor"] = {"impl": f["impl"], **{name: _ratio(c[key]["median"] if c.get(key) else None,
                                                         f[key]["median"] if f.get(key) else None)
                                            for name, key in FLOOR_FIGURES.items()}}


def core_table(cells: dict[str, dict[str, Any]], workloads: Sequence[str],
               pairs: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    """For each pair and event-model workload: the ratio of throughput, of server CPU per op and of
    the server's instructions per op."""
    rows = []
    for a, b in pairs:
        for w in workloads:
            speed = _ratio(_median(cells, a, "event", w, _primary(cells, w)), _median(cells, b, "event", w, _primary(cells, w)))
            cost = _ratio(_median(cells, a, "event", w, "server_cpu_us_per_op"),
                          _median(cells, b, "event", w, "server_cpu_us_per_op"))
            work = _ratio(_median(cells, a, "event", w, INSTRUCTIONS), _median(cells, b, "event", w, INSTRUCTIONS))
            if speed is not None or cost is not None:
                rows.append({"pair": f"{a} vs {b}", "a": a, "b": b, "workload": w,
                             "throughput_ratio": speed, "cpu_per_op_ratio": cost,
                             "instructions_per_op_ratio": work})
    return rows


def _primary(cells: dict[str, dict[str, Any]], workload: str) -> str:
    for c in cells.values():
        if c["workload"] == workload:
            return c["primary"]
    return "ops_per_s"


# -- the bindings table ---------------------------------------------------------------------------
def bindings(cells: dict[str, dict[str, Any]], impls: Sequence[Implementation]) -> list[dict[str, Any]]:
    """Per implementation whose stanza declares a `binding`, per event-model echo workload both it
    and its core ran: what the crossing costs, as the difference from the core in server CPU µs per
    op and in instructions per op; beside it the same difference between each of the core's control
    twins and the core on that cell (what no difference can be told apart from)."""
    twins = {i.bench.twin_of: i.name for i in impls if i.bench and i.bench.twin_of}
    rows = []
    for impl in impls:
        b = impl.bench.binding if impl.bench else None
        if b is None:
            continue
        for w in sorted({c["workload"] for c in cells.values() if c["kind"] == "echo" and c["model"] == "event"
                         and c["impl"] == impl.name}, key=_echo_order):
            row: dict[str, Any] = {"impl": impl.name, "host": b.host, "core": b.core, "callback": b.callback,
                                   "workload": w, "control": twins.get(b.core)}
            for name, key in FLOOR_FIGURES.items():
                mine, core = _median(cells, impl.name, "event", w, key), _median(cells, b.core, "event", w, key)
                twin = _median(cells, twins[b.core], "event", w, key) if b.core in twins else None
                row[name] = None if mine is None or core is None else mine - core
                row[f"{name}_noise"] = None if twin is None or core is None else abs(twin - core)
            if row["cpu_per_op"] is not None or row["instructions_per_op"] is not None:
                rows.append(row)
    return rows


# -- the batching table ---------------------------------------------------------------------------
BATCHING_FIGURES = {"throughput": "ops_per_s", "cpu_per_op": "server_cpu_us_per_op",
                    "instructions_per_op": INSTRUCTIONS}


def batching(cells: dict[str, dict[str, Any]], impls: Sequence[Implementation]) -> list[dict[str, Any]]:
    """Per implementation whose stanza declares `batching`, per datagram workload it ran in both of
    its models: the batched model's medians, the unbatched one's, and the first divided by the
    second (throughput above 1 and CPU per datagram below 1: what batching buys)."""
    rows = []
    for impl in impls:
        b = impl.bench.batching if impl.bench else None
        if b is None:
            continue
        for w in sorted({c["workload"] for c in cells.values() if c["kind"] == "datagram" and c["impl"] == impl.name},
                        key=_echo_order):
            row: dict[str, Any] = {"impl": impl.name, "words": b.words, "model": b.model,
                                   "against_model": b.against_model, "workload": w}
            for name, key in BATCHING_FIGURES.items():
                mine = _median(cells, impl.name, b.model, w, key)
                theirs = _median(cells, impl.name, b.against_model, w, key)
                row[name] = {"batched": mine, "unbatched": theirs, "ratio": _ratio(mine, theirs)}
            row["lost"] = {m: (cells.get(f"{impl.name}-{m}-{w}") or {}).get("lost") for m in (b.model, b.against_model)}
            if row["throughput"]["ratio"] is not None or row["cpu_per_op"]["ratio"] is not None:
                rows.append(row)
    return rows


def _echo_order(workload: str) -> tuple[int, int]:
    _, conns, size = bench_spec.parse_workload(workload)
    return size, conns


# -- the noise floor -------------------------------------------------------------------------------
WITHIN_NOISE = ("a target whose bound is missed is shown 'within noise' when it misses by no more than the noise "
                "floor n: the largest |twin ÷ original − 1| of any control twin, on the target's own figure, over "
                "the target's own cells (its model and workload, and for a ratio the other side's) where a twin "
                "ran them, else over every cell a twin ran in this run; for a ratio or a deviation (numbers "
                "without a unit) the miss |value − bound| is at most n, for an absolute figure (bytes, µs) at most n × bound. Without a "
                "control twin measured on that figure nothing is within noise")


def _key(figure: str, cells: dict[str, dict[str, Any]], model: str, workload: str) -> str:
    """The summary's key for a bench stanza's figure on one cell ('throughput': the cell's primary)."""
    key = FIGURE_KEYS[figure]
    return _primary(cells, workload) if key == "primary" else key


FIGURE_KEYS = {name: key for name, (key, _) in bench_spec.FIGURES.items()}


def noise_floor(cells: dict[str, dict[str, Any]], impls: Sequence[Implementation]) -> dict[str, Any]:
    """For each figure: how far the control twins stray from their originals (the largest
    |twin/original - 1| over every cell a twin ran), where, and which twin; {} without a twin."""
    twins = [(i.name, i.bench.twin_of) for i in impls if i.bench and i.bench.twin_of]
    out: dict[str, Any] = {}
    for figure in bench_spec.FIGURES:
        best = None
        for twin, original in twins:
            where = sorted({(c["model"], c["workload"]) for c in cells.values() if c["impl"] == twin})
            d = _deviation(cells, twin, original, where, figure)
            if d["cells"] and (best is None or d["worst"] > best["worst"]):
                best = {**d, "control": twin, "of": original}
        if best is not None:
            out[figure] = best
    return out


# -- the targets -----------------------------------------------------------------------------------
def targets(cells: dict[str, dict[str, Any]], impls: Sequence[Implementation],
            noise: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every target of the registry's bench stanzas, with the measured value, the bound, whether it
    is met (None: not measured in this run, or no bound) and its state: met, missed, within noise
    (missed by less than the noise floor, WITHIN_NOISE), not measured, or shown. Each CPU-time
    target also carries the same comparison in instructions retired (`instructions`), which a noisy
    machine does not blur: the evidence when time alone cannot tell a few percent from noise. The
    grade stays with the target's figure."""
    noise = noise_floor(cells, impls) if noise is None else noise
    names = {i.name for i in impls}
    out = []
    for impl in impls:
        if not impl.bench or impl.bench.twin_of:
            continue
        for t in impl.bench.targets:
            out.append(_target(cells, impl.name, t, noise, names))
    return out


def _how_cell(t: bench_spec.Target) -> str:
    return f"{t.model} model, {t.workload}"


def _against_model(cells: dict[str, dict[str, Any]], t: bench_spec.Target) -> str:
    """The model of the cell a ratio target divides by: its against_model, else a floor's own model
    (a floor measures one model only, whatever the target's), else the target's model."""
    if t.against_model is not None:
        return t.against_model
    for c in cells.values():
        if c["impl"] == t.against and c["workload"] == t.workload and c.get("role") == FLOOR:
            return c["model"]
    return t.model


def _target(cells: dict[str, dict[str, Any]], owner: str, t: bench_spec.Target, noise: dict[str, Any],
            names: set[str]) -> dict[str, Any]:
    words = bench_spec.FIGURES[t.figure][1]
    entry: dict[str, Any] = {"target": t.words, "impl": owner, "against": t.against, "figure": t.figure,
                             "measure": t.measure, "model": t.model, "workload": t.workload,
                             "bound": t.bound, "direction": t.direction}
    if t.measure == "deviation":
        where = sorted({(c["model"], c["workload"]) for c in cells.values()
                        if c["kind"] == t.workload and (t.model == bench_spec.ANY_MODEL or c["model"] == t.model)})
        own = where
        d = _deviation(cells, owner, t.against, where, t.figure)
        value, unit = d["worst"], "fraction"
        how = f"the largest |{owner}/{t.against} - 1| in {words} over {d['cells']} {t.workload} cells"
        if d["cells"]:
            how += f", at {d['at']}; geometric mean of {owner}/{t.against} over them {d['mean_ratio']:.3f}"
        entry["mean_ratio"] = d["mean_ratio"]
        if t.figure == "cpu_per_op":
            work = _deviation(cells, owner, t.against, where, "instructions_per_op")
            entry["instructions"], entry["instructions_mean_ratio"] = work["worst"], work["mean_ratio"]
            floor = noise.get("instructions_per_op")
            entry["instructions_noise_floor"] = floor["worst"] if floor else None
            if work["cells"]:
                how += (f"; in instructions retired per op: largest |{owner}/{t.against} - 1| {work['worst']:.3f} "
                        f"at {work['at']}, geometric mean {work['mean_ratio']:.3f}"
                        + (f", against {floor['worst']:.3f} for the control {floor['control']}" if floor else ""))
    else:
        def read(impl: str, figure: str, model: str = t.model) -> float | None:
            return _median(cells, impl, model, t.workload, _key(figure, cells, model, t.workload))
        own = [(t.model, t.workload)]
        if t.measure == "ratio":
            theirs = entry["against_model"] = _against_model(cells, t)
            own = sorted({*own, (theirs, t.workload)})
            value, unit = _ratio(read(owner, t.figure), read(t.against, t.figure, theirs)), "x"
            how = f"{owner}'s median {words} divided by {t.against}'s ({theirs} model), {_how_cell(t)}"
            if t.figure == "cpu_per_op":
                entry["instructions"] = _ratio(read(owner, "instructions_per_op"),
                                               read(t.against, "instructions_per_op", theirs))
        else:
            value = read(owner, t.figure)
            unit = {"rss_per_conn": "bytes", "cpu_per_op": "µs", "instructions_per_op": "instructions"}.get(t.figure, "")
            how = f"{owner}'s median {words}, {_how_cell(t)}"
    if t.bound is not None:
        how += f"; {t.direction} {t.bound:g}"
    floor = _local_noise(cells, noise, own, t.figure)
    entry["noise_floor"] = floor["worst"] if floor else None
    if floor and t.bound is not None:
        how += (f"; noise floor: the control {floor['control']} against {floor['of']}, largest "
                f"|{floor['control']}/{floor['of']} - 1| {floor['worst']:.3f} at {floor['at']}"
                + (" (on the target's own cells)" if floor.get("local") else
                   " (over the run: no control ran the target's cells)"))
    if value is None:
        missing = [n for n in (owner, t.against) if n and n not in names]
        how += ("; not in this run: " + ", ".join(missing)) if missing else "; this run has no such cell"
    met = None if value is None or t.bound is None else t.meets(value)
    if met is None:
        state = "not measured" if value is None else "shown"
    elif met:
        state = "met"
    else:
        n = entry["noise_floor"]
        slack = None if n is None else (n if unit in ("x", "fraction") else n * abs(t.bound))
        state = "within noise" if slack is not None and abs(value - t.bound) <= slack else "missed"
    entry.update({"value": value, "unit": unit, "met": met, "state": state, "how": how})
    return entry


def _local_noise(cells: dict[str, dict[str, Any]], noise: dict[str, Any], own: Sequence[tuple[str, str]],
                 figure: str) -> dict[str, Any] | None:
    """The noise floor for a target on cells `own` ((model, workload) pairs): the run's control twin
    (noise[figure] names it) over those of the cells it ran, marked local; else the run-wide floor."""
    floor = noise.get(figure)
    if not floor:
        return None
    d = _deviation(cells, floor["control"], floor["of"], own, figure)
    return {**d, "control": floor["control"], "of": floor["of"], "local": True} if d["cells"] else floor


def _deviation(cells: dict[str, dict[str, Any]], a: str, b: str, where: Sequence[tuple[str, str]],
               figure: str) -> dict[str, Any]:
    """How far a's figure (a bench stanza's figure name) strays from b's over the (model, workload)
    cells: the largest |a/b - 1|, where, and the geometric mean of a/b (1.0: no systematic difference)."""
    ratios = [(f"{m}/{w}", r) for m, w in where
              if (r := _ratio(_median(cells, a, m, w, _key(figure, cells, m, w)),
                              _median(cells, b, m, w, _key(figure, cells, m, w)))) not in (None, 0)]
    if not ratios:
        return {"worst": None, "at": None, "mean_ratio": None, "cells": 0}
    at, worst = max(ratios, key=lambda ar: abs(ar[1] - 1.0))
    mean = math.exp(sum(math.log(r) for _, r in ratios) / len(ratios))
    return {"worst": abs(worst - 1.0), "at": at, "mean_ratio": mean, "cells": len(ratios)}


def document(plan: Plan, runs: list[Run], fairness: dict[str, Any], provenance: dict[str, Any],
             implementations: list[dict[str, Any]]) -> dict[str, Any]:
    by_cell: dict[str, tuple[Cell, list[dict[str, Any]]]] = {}
    for r in runs:
        by_cell.setdefault(r.cell.id, (r.cell, []))[1].append(r.data)
    cells = {cid: summarize_cell(cell, data) for cid, (cell, data) in by_cell.items()}
    floor_ratios(cells)
    impls = list({c.impl.name: c.impl for c in plan.cells}.values())     # the control twins included
    event_workloads = list(dict.fromkeys(c.workload.id for c in plan.cells if c.model == "event"))
    noise = noise_floor(cells, impls)
    stanzas = {i.name: i.bench for i in impls if i.bench}
    return {
        "schema": SCHEMA,
        "provenance": provenance,
        "profile": {"name": plan.profile.name, "description": plan.profile.description, "rounds": plan.rounds,
                    "warmup_s": plan.profile.warmup, "duration_s": plan.profile.duration},
        "method": {
            "interleaving": "each round runs every cell once; the implementations take turns on each workload",
            "server": "a fresh server per run",
            "noisy": f"max/min of a cell's primary figure above {NOISY}",
            "client_bound": f"the load generator's own CPU above {SATURATED:g}% of one CPU while the server's "
                            f"stayed at or below {SATURATED:g}% of its CPUs (the generator saturated first)",
            "client_io": IO_RULE,
            "server_cpu": "utime+stime of the server and its children (live and reaped) from /proc, "
                          "read by the load generator at the window's edges",
            "per_op": "echo: one round trip; connect: one connection; ingest/egress: one MB (10^6 bytes); "
                      "datagram: one datagram echoed (a request and its answer, UDP)",
            "loss": f"datagram: each socket has one request in flight; one unanswered within {DATAGRAM_LOSS_MS} ms "
                    "is counted lost (the cell's `lost`, flagged) and the socket sends its next",
            "within_noise": WITHIN_NOISE,
            "instructions": "instructions retired by the server and its children over the same window, in user "
                            "space and in the kernel, from the CPU's counters (perf_event_open, one counter per "
                            "thread, inherited by threads and processes started meanwhile); unlike CPU time they "
                            "do not stretch when other guests slow the machine down",
        },
        "fairness": fairness,
        "implementations": [{**i, "colour": stanzas[i["name"]].colour if i.get("name") in stanzas else None,
                             "control_of": stanzas[i["name"]].twin_of if i.get("name") in stanzas else None}
                            for i in implementations],
        "cells": list(cells.values()),
        "core_table": core_table(cells, event_workloads, pairs(impls)),
        "noise_floor": noise,
        "bindings": bindings(cells, impls),
        "batching": batching(cells, impls),
        "targets": targets(cells, impls, noise),
    }
