"""`acceptloop bench --quick`: the whole benchmark path, from a registry to results JSON, in under a minute.

Figures are the benchmark's business; this checks that every cell ran, was measured
the way the method says, and was summarized with its flags, ratios and targets.
"""
from __future__ import annotations

import ast
import io
import json
import os
import re
import subprocess
import sys
import tokenize
import tomllib
from html import unescape
from pathlib import Path

import pytest

from acceptloop import _protocol as P, render
from acceptloop.bench import congestion, plan as bench_plan, summary
from acceptloop.bench.loadgen import DATAGRAM_LOSS_MS
from acceptloop.paths import ROOT
from acceptloop.report import bench_charts, bench_tables, performance
from acceptloop.suite import registry

# The CPU's counters, as perf_event_open offers them: a virtual machine may have none.
COUNTERS = os.path.exists("/sys/bus/event_source/devices/cpu/events/instructions") and os.geteuid() == 0


# The machine's TCP congestion control before and after the quick run (the bench sets its own for the run).
CONGESTION: dict[str, str | None] = {}


def _congestion() -> str | None:
    try:
        return congestion.SYSCTL.read_text().strip()
    except OSError:
        return None


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    CONGESTION["before"] = _congestion()
    run = subprocess.run([sys.executable, "-m", "acceptloop", "bench", "--quick", "--quiet", "--json", str(out)],
                         capture_output=True, text=True, timeout=300)
    CONGESTION["after"] = _congestion()
    CONGESTION["stderr"] = run.stderr
    assert run.returncode == 0, run.stdout + run.stderr
    return json.loads(out.read_text()), run.stdout


def _measured() -> tuple[list[registry.Implementation], list[registry.Implementation]]:
    """What a plain `acceptloop bench` measures: the registry without its floors, and the floors."""
    impls = [i for i in registry.load() if i.unavailable() is None]
    return (bench_plan.measured_by_default([i for i in impls if i.role != registry.FLOOR]),
            [i for i in impls if i.role == registry.FLOOR])


def test_every_implementation_and_model_is_measured(quick):
    doc, _ = quick
    impls, floors = _measured()
    expected = {c.id for c in bench_plan.plan(impls, bench_plan.QUICK, floors=floors).cells}
    assert {c["id"] for c in doc["cells"]} == expected
    assert {"asyncio", "c", "c-cffi", "php", "python"} <= {c["impl"] for c in doc["cells"]}
    assert {c["model"] for c in doc["cells"]} >= {"iterative", "event", "uring"}   # the others: --full


def test_each_cell_has_three_interleaved_runs_and_a_summary(quick):
    doc, _ = quick
    for cell in doc["cells"]:
        assert [r["round"] for r in cell["runs"]] == [1, 2, 3], cell["id"]
        assert not [f for f in cell["flags"] if f.startswith("failed")], cell["flags"]
        primary = cell[cell["primary"]]
        assert primary["min"] <= primary["median"] <= primary["max"] and primary["n"] == 3
        if cell["kind"] != "idle":
            assert primary["median"] > 0, cell["id"]
            assert cell["server_cpu_us_per_op"]["median"] > 0, cell["id"]
        for r in cell["runs"]:
            assert r["server_exit"] == 0, (cell["id"], r)
            cpus = len(doc["fairness"]["pinning"]["server_cpus"]) or 1
            assert r["server_cpu_pct"] == pytest.approx(r["server_cpu_s"] / r["elapsed_s"] * 100 / cpus), cell["id"]
            assert sum(r["errors"].values()) == 0 or any(f.startswith(("errors", "unsupported", "lost")) for f in cell["flags"])
        if cell["kind"] == "echo":
            assert cell["latency_us"]["p50"]["median"] <= cell["latency_us"]["p999"]["median"]
        if COUNTERS and cell["kind"] != "idle":
            work, user = cell["server_instructions_per_op"], cell["server_user_instructions_per_op"]
            assert 0 < user["median"] < work["median"], cell["id"]


def test_each_run_records_the_load_generators_io_mode_by_the_rule(quick):
    doc, _ = quick
    assert doc["method"]["client_io"] == bench_plan.IO_RULE
    for cell in doc["cells"]:
        w = bench_plan.workload(cell["kind"], cell["connections"], cell["size"])
        for r in cell["runs"]:
            # The rule's mode, or epoll where this machine has no io_uring (and the run says why).
            assert r["io"] == w.io or (r["io"] == "epoll" and r.get("io_fallback")), (cell["id"], r.get("io"))
        assert cell["io"] == ", ".join(dict.fromkeys(r["io"] for r in cell["runs"])), cell["id"]
        if cell["kind"] != "idle":   # the generator's cost per op, to hold beside the server's
            assert cell["client_cpu_us_per_op"]["median"] > 0, cell["id"]


def test_the_io_rule_takes_io_uring_for_small_echo_datagrams_and_connect_at_16_connections_and_more():
    io = {w.id: w.io for w in (*bench_plan.FULL.event, *bench_plan.FULL.other, *bench_plan.FULL.datagram)}
    assert io["echo-64B-c16"] == io["echo-64B-c1000"] == io["connect-c16"] == io["datagram-1KiB-c16"] == "uring"
    assert io["echo-1KiB-c16"] == io["echo-16KiB-c256"] == io["echo-256KiB-c16"] == "epoll"   # the copies' cost
    assert io["echo-64B-c1"] == io["connect-c1"] == io["ingest-c16"] == io["egress-c16"] == io["idle-c1000"] == "epoll"
    assert io["datagram-64B-c1"] == "epoll"


def test_a_machine_without_io_uring_runs_the_cell_on_epoll_and_says_why(monkeypatch):
    from acceptloop.bench import runner

    real = runner.run_load

    def no_uring(*args, io="epoll", **kwargs):
        if io == "uring":
            error = OSError(38, "io_uring io_uring_queue_init: Function not implemented (ENOSYS)")
            error.step = "io_uring"
            raise error
        return real(*args, io=io, **kwargs)

    monkeypatch.setattr(runner, "run_load", no_uring)
    c = {i.name: i for i in registry.load()}["c"]
    cell = bench_plan.Cell(bench_plan.workload("echo", 16, 64), c, "event")
    assert cell.workload.io == "uring"
    record = runner.measure(cell, 1, bench_plan.Plan(bench_plan.QUICK, [cell], 1), runner.pinning())
    assert record["io"] == "epoll" and "ENOSYS" in record["io_fallback"] and record["ops"] > 0


def test_interleaving_alternates_implementations_within_a_workload(quick):
    doc, _ = quick
    assert doc["method"]["interleaving"].startswith("each round runs every cell once")
    plan = bench_plan.plan(*_measured()[:1], bench_plan.QUICK, floors=_measured()[1])
    first_workload = [c.impl.name for c in plan.cells if c.workload.id == "echo-64B-c16"]
    assert len(first_workload) >= 4 and len(set(first_workload)) == len(first_workload)


def test_fairness_provenance_ratios_and_targets_are_recorded(quick):
    doc, stdout = quick
    fair = doc["fairness"]
    assert fair["pinning"]["pinned"] == (len(__import__("os").sched_getaffinity(0)) >= 2)
    for key in ("tcp_nodelay", "somaxconn", "tcp_rmem", "tcp_wmem", "tcp_congestion_control", "fd_limit", "backlog"):
        assert fair[key], key
    assert doc["provenance"]["commit"] and doc["provenance"]["cpu"]
    assert any(row["pair"] == "c vs python" for row in doc["core_table"])
    names = [t["target"] for t in doc["targets"]]
    assert any("uvloop" in n for n in names) and any("c-cffi" in n for n in names)
    rss = [t for t in doc["targets"] if t["target"].startswith("peak RSS per idle connection: c ")]
    assert rss and rss[0]["value"] is not None
    assert "results:" in stdout


def test_the_run_measures_under_cubic_where_it_may_set_it_and_puts_the_machines_back(quick):
    doc, _ = quick
    fair = doc["fairness"]
    machine = CONGESTION["before"]
    assert CONGESTION["after"] == machine
    # Read from /proc/sys during the run, not taken from the option.
    if machine == congestion.DEFAULT:
        assert fair["tcp_congestion_control"] == machine and fair["tcp_congestion_control_how"] == "the machine's"
    elif "cannot set TCP congestion control" in CONGESTION["stderr"]:
        assert fair["tcp_congestion_control"] == machine
        assert fair["tcp_congestion_control_how"].startswith("the machine's: setting cubic failed")
    else:
        assert fair["tcp_congestion_control"] == congestion.DEFAULT
        assert fair["tcp_congestion_control_how"].startswith("set by the bench for this run")
        assert f"the machine's is {machine}" in fair["tcp_congestion_control_how"]


def test_the_floor_is_measured_on_every_workload_and_every_cell_shows_its_ratio(quick):
    doc, _ = quick
    measured = {c["workload"]: c for c in doc["cells"] if c["role"] == registry.FLOOR}
    floors_offered = [i for i in registry.load() if i.role == registry.FLOOR]
    assert measured, "the registry has a floor and the run measured it"
    for c in doc["cells"]:
        w = bench_plan.workload(c["kind"], c["connections"], c["size"])
        if any(bench_plan.offers(f, w, f.models[0]) for f in floors_offered):
            assert c["workload"] in measured, c["id"]
        else:   # a workload no floor offers (the datagram cells, a TCP-only floor): no ratio, not an error
            assert c["workload"] not in measured and c["floor"] is None, c["id"]
    # A floor cell that failed to run (a loaded machine) gives no ratio: the summary's rule, kept here.
    floors = {w: c for w, c in measured.items() if not any(f.startswith(("failed", "unsupported")) for f in c["flags"])}
    assert len(floors) >= len(measured) - 1, [c["flags"] for c in measured.values()]
    for c in doc["cells"]:
        if c["role"] == registry.FLOOR or c["workload"] not in floors or any(
                f.startswith(("failed", "unsupported")) for f in c["flags"]):
            continue
        f = floors[c["workload"]]
        assert c["floor"]["impl"] == f["impl"]
        if c["server_cpu_us_per_op"] is None or f["server_cpu_us_per_op"] is None:     # idle: no op to divide by
            assert c["floor"]["cpu_per_op"] is None, c["id"]
            continue
        expected = c["server_cpu_us_per_op"]["median"] / f["server_cpu_us_per_op"]["median"]
        assert c["floor"]["cpu_per_op"] == pytest.approx(expected), c["id"]
    floor_name = next(iter(floors.values()))["impl"]
    assert any(r["pair"] == f"c vs {floor_name}" for r in doc["core_table"])
    assert not any(r["a"] == floor_name or r["pair"].startswith("c-again vs " + floor_name) for r in doc["core_table"])


def test_the_run_has_a_bindings_row_for_every_binding_the_registry_declares(quick):
    doc, _ = quick
    declared = {i.name for i in registry.load() if i.bench and i.bench.binding and i.unavailable() is None}
    assert declared, "the registry declares bindings"
    assert {r["impl"] for r in doc["bindings"]} == declared
    for r in doc["bindings"]:
        assert r["cpu_per_op"] is not None and r["workload"].startswith("echo-"), r


def test_the_floor_comes_first_on_each_workload_whatever_the_selection():
    impls, floors = _measured()
    assert floors
    cells = bench_plan.plan(impls, bench_plan.QUICK, models=["iterative"], keyword="c-iterative",
                            floors=floors).cells
    workloads = {c.workload for c in cells}
    assert workloads and all(c.impl.name != floors[0].name or c.model == floors[0].models[0] for c in cells)
    assert any(w.kind == "datagram" for w in workloads)
    for w in workloads:
        here = [c for c in cells if c.workload == w]
        if not bench_plan.offers(floors[0], w, floors[0].models[0]):   # a TCP-only floor: no datagram floor cell
            assert [c.impl.name for c in here] == ["c"]
            continue
        assert here[0].impl.role == registry.FLOOR and sum(c.impl.role == registry.FLOOR for c in here) == 1
        assert [c.impl.name for c in here[1:]] == ["c"]


def test_check_refuses_the_floor_it_claims_no_conformance():
    floors = [i.name for i in registry.load() if i.role == registry.FLOOR]
    run = subprocess.run([sys.executable, "-m", "acceptloop", "check", "--impl", floors[0]],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "claims no conformance" in run.stderr, run.stderr
    listed = subprocess.run([sys.executable, "-m", "acceptloop", "check", "--list"],
                            capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0 and floors[0] not in listed.stdout


def test_bad_bench_arguments_exit_2():
    run = subprocess.run([sys.executable, "-m", "acceptloop", "bench", "--quick", "--impl", "cobol"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "unknown implementation cobol" in run.stderr


def test_no_target_is_left_not_measured_and_no_line_chart_has_one_x_value(quick):
    doc, _ = quick
    here = {c["impl"] for c in doc["cells"]}
    for t in doc["targets"]:
        if {t["impl"], t["against"]} - {None} <= here:
            assert t["state"] != "not measured", t
        assert t["state"] in ("met", "missed", "within noise", "shown", "not measured"), t
    assert doc["method"]["within_noise"] == summary.WITHIN_NOISE
    drawn = bench_charts.charts(doc["cells"], performance.palette(doc))
    lines = [c for group in ("throughput", "cpu", "latency", "memory") for c in drawn[group] if c["kind"] == "line"]
    assert lines and all(len(c["x_ticks"]) >= 2 for c in lines), [c["title"] for c in lines]


# -- the benchmark knows no implementation by name ---------------------------------------------------
NAMELESS = (sorted((ROOT / "python" / "acceptloop" / "bench").glob("*.py"))
            + [ROOT / "python" / "acceptloop" / "report" / f"{m}.py"
               for m in ("charts", "bench_charts", "bench_tables", "performance")])


def test_the_benchmark_and_its_report_name_no_implementation():
    """Every string literal (docstrings and the literal parts of f-strings included) and every comment
    of the benchmark and of its part of the report, searched for the registry's names and its
    control twins' names as whole words."""
    impls = registry.load()
    names = {i.name for i in impls} | {i.bench.control for i in impls if i.bench and i.bench.control}
    word = re.compile(r"(?<![\w-])(" + "|".join(map(re.escape, sorted(names, key=len, reverse=True))) + r")(?![\w-])")
    hits = []
    assert len(NAMELESS) >= 8 and all(p.exists() for p in NAMELESS)
    for path in NAMELESS:
        source = path.read_text()
        texts = [(n.lineno, n.value) for n in ast.walk(ast.parse(source))
                 if isinstance(n, ast.Constant) and isinstance(n.value, str)]
        texts += [(t.start[0], t.string) for t in tokenize.generate_tokens(io.StringIO(source).readline)
                  if t.type == tokenize.COMMENT]
        hits += [f"{path.relative_to(ROOT)}:{line}: {m.group(1)!r} in {text[:60]!r}"
                 for line, text in texts for m in word.finditer(text)]
    assert not hits, "\n".join(hits)


# -- the bench stanza --------------------------------------------------------------------------------
BASE = """
[[implementation]]
name = "x"
command = "{root}/build/acceptloop-c --port {port}"
models = ["event"]
"""


@pytest.mark.parametrize("stanza,message", [
    ('[implementation.bench]\ncolor = "#000000"', "unknown key 'color'"),
    ('[implementation.bench]\ncolour = "red"', "bench.colour must be \"#RRGGBB\""),
    ('[implementation.bench]\ncontrol = "x"', "bench.control: the twin needs a name of its own"),
    ('[implementation.bench]\ncompare = "c"', "bench.compare must be a list"),
    ('[[implementation.bench.targets]]\nwords = "w"\nfigure = "speed"\nworkload = "idle-c10"', "figure must be one of"),
    ('[[implementation.bench.targets]]\nwords = "w"\nfigure = "cpu_per_op"\nagainst = "c"\nworkload = "echo-64-c1"',
     "is not a workload id"),
    ('[[implementation.bench.targets]]\nwords = "w"\nfigure = "cpu_per_op"\nagainst = "c"\nmeasure = "deviation"\n'
     'workload = "echo-64B-c1"', "a deviation spans every cell of a workload kind"),
    ('[[implementation.bench.targets]]\nwords = "w"\nfigure = "cpu_per_op"\nmeasure = "ratio"\nworkload = "echo-64B-c1"',
     "needs 'against'"),
    ('[[implementation.bench.targets]]\nwords = "w"\nfigure = "cpu_per_op"\nagainst = "c"\nworkload = "echo-64B-c1"\n'
     'direction = "below"', "direction must be one of"),
    ('[[implementation.bench.targets]]\nwords = "w"\nfigure = "cpu_per_op"\nagainst = "c"\nworkload = "echo-64B-c1"\n'
     'bound = "1"', "bound must be a number"),
    ('[[implementation.bench.targets]]\nwords = "w"\nfigure = "rss_per_conn"\nworkload = "idle-c10"\nmodel = "async"',
     "model must be one of"),
    ('[[implementation.bench.targets]]\nwords = "w"\nfigure = "rss_per_conn"\nworkload = "idle-c10"\nwhy = "?"',
     "unknown key 'why'"),
])
def test_a_bad_bench_stanza_is_one_line_naming_the_entry(tmp_path, stanza, message):
    path = tmp_path / "extra.toml"
    path.write_text(BASE + stanza + "\n")
    with pytest.raises(registry.RegistryError) as e:
        registry.load_file(path)
    assert message in str(e.value) and str(e.value).startswith(f"{path}: x: ") and "\n" not in str(e.value)


def test_every_profile_runs_the_cells_its_targets_name_for_both_implementations():
    impls, floors = _measured()
    names = {i.name for i in impls + floors}
    for profile in bench_plan.PROFILES.values():
        ids = {c.id for c in bench_plan.plan(impls, profile, floors=floors).cells}
        for impl in impls:
            for t in impl.bench.targets if impl.bench else ():
                for model, workload in t.cells():
                    assert f"{impl.name}-{model}-{workload}" in ids, (profile.name, t.words, impl.name)
                    if t.against not in names:
                        continue
                    # the against's cell: in its against_model, a floor's in the floor's own model
                    floor = next((f for f in floors if f.name == t.against), None)
                    theirs = t.against_model or (floor.models[0] if floor else model)
                    assert f"{t.against}-{theirs}-{workload}" in ids, (profile.name, t.words, t.against)


# -- within noise ------------------------------------------------------------------------------------
def _impl(name: str, bench: str = "") -> registry.Implementation:
    text = BASE.replace('"x"', f'"{name}"') + bench
    return registry.parse_entry(tomllib.loads(text)["implementation"][0], "test")


def _cell(impl: str, workload: str, cpu: float, rss: float | None = None, model: str = "event") -> dict:
    kind = workload.split("-")[0]
    return {"id": f"{impl}-{model}-{workload}", "impl": impl, "model": model, "workload": workload, "kind": kind,
            "primary": "ops_per_s", "flags": [], "ops_per_s": {"median": 1000 / cpu},
            "server_cpu_us_per_op": {"median": cpu}, "server_instructions_per_op": None,
            "rss_per_conn": {"median": rss} if rss is not None else None}


def test_a_target_missed_by_less_than_the_control_twins_deviation_is_within_noise():
    targets = """
[implementation.bench]
control = "a-twin"
compare = ["b"]
[[implementation.bench.targets]]
words = "near"
figure = "cpu_per_op"
against = "b"
workload = "echo-64B-c16"
bound = 1.0
[[implementation.bench.targets]]
words = "far"
figure = "cpu_per_op"
against = "b"
workload = "echo-64B-c16"
bound = 0.9
[[implementation.bench.targets]]
words = "at least"
figure = "throughput"
against = "b"
workload = "echo-64B-c16"
bound = 1.0
direction = "at least"
[[implementation.bench.targets]]
words = "bytes"
figure = "rss_per_conn"
workload = "idle-c10"
bound = 1000
[[implementation.bench.targets]]
words = "spread"
figure = "cpu_per_op"
against = "b"
measure = "deviation"
workload = "echo"
bound = 0.05
[[implementation.bench.targets]]
words = "elsewhere"
figure = "cpu_per_op"
against = "nobody"
workload = "echo-64B-c16"
bound = 1.0
"""
    a, b = _impl("a", targets), _impl("b")
    twin = bench_plan.control_twin(a)
    assert (twin.name, twin.role, twin.bench.twin_of) == ("a-twin", "control", "a")
    cells = {c["id"]: c for c in (
        _cell("a", "echo-64B-c16", 1.10, rss=100), _cell("b", "echo-64B-c16", 1.00, rss=100),
        _cell("a-twin", "echo-64B-c16", 1.10 * 1.15, rss=110),      # the noise floor: 15 %, 10 % in RSS
        _cell("a", "idle-c10", 1.0, rss=1080))}
    noise = summary.noise_floor(cells, [a, b, twin])
    assert noise["cpu_per_op"]["worst"] == pytest.approx(0.15) and noise["cpu_per_op"]["control"] == "a-twin"
    got = {t["target"]: t for t in summary.targets(cells, [a, b, twin], noise)}
    assert got["near"]["state"] == "within noise" and got["near"]["met"] is False   # 1.10 misses 1.0 by 0.10 ≤ 0.15
    assert got["far"]["state"] == "missed"                                           # misses 0.9 by 0.20 > 0.15
    assert got["at least"]["state"] == "within noise"                                # 0.909 ≥ 1.0 - 0.13
    assert got["bytes"]["state"] == "within noise" and got["bytes"]["unit"] == "bytes"   # 1080 ≤ 1000 + 10 % of 1000
    assert got["spread"]["state"] == "within noise" and got["spread"]["value"] == pytest.approx(0.10)
    assert got["elsewhere"]["state"] == "not measured" and "nobody" in got["elsewhere"]["how"]
    assert summary.pairs([a, b, twin]) == [("a", "b"), ("a-twin", "a")]
    alone = {k: v for k, v in cells.items() if not k.startswith("a-twin")}
    assert summary.targets(alone, [a, b])[0]["state"] == "missed"                   # no twin, no noise floor


def test_a_targets_noise_floor_is_the_twins_on_the_targets_own_cells_where_the_twin_ran_them():
    targets = """
[implementation.bench]
control = "a-twin"
[[implementation.bench.targets]]
words = "quiet cell"
figure = "cpu_per_op"
against = "b"
workload = "echo-64B-c16"
bound = 1.0
[[implementation.bench.targets]]
words = "no twin here"
figure = "cpu_per_op"
against = "b"
workload = "echo-1KiB-c16"
bound = 1.0
"""
    a, b = _impl("a", targets), _impl("b")
    twin = bench_plan.control_twin(a)
    cells = {c["id"]: c for c in (
        _cell("a", "echo-64B-c16", 1.10), _cell("b", "echo-64B-c16", 1.00), _cell("a-twin", "echo-64B-c16", 1.10 * 1.02),
        _cell("a", "echo-256KiB-c16", 10.0), _cell("a-twin", "echo-256KiB-c16", 14.0),   # one wild cell: 40 %
        _cell("a", "echo-1KiB-c16", 1.10), _cell("b", "echo-1KiB-c16", 1.00))}
    noise = summary.noise_floor(cells, [a, b, twin])
    assert noise["cpu_per_op"]["worst"] == pytest.approx(0.40)
    got = {t["target"]: t for t in summary.targets(cells, [a, b, twin], noise)}
    # 1.10 misses 1.0 by 0.10: more than the twin strayed on this cell (2 %), less than on the wild one.
    assert got["quiet cell"]["state"] == "missed" and got["quiet cell"]["noise_floor"] == pytest.approx(0.02)
    assert "on the target's own cells" in got["quiet cell"]["how"]
    assert got["no twin here"]["state"] == "within noise" and got["no twin here"]["noise_floor"] == pytest.approx(0.40)
    assert "no control ran the target's cells" in got["no twin here"]["how"]


def test_a_ratio_reads_a_floor_in_its_own_model_and_against_model_where_given():
    targets = """
[[implementation.bench.targets]]
words = "vs the floor"
figure = "cpu_per_op"
against = "floor"
model = "uring"
workload = "echo-64B-c256"
bound = 0.75
[[implementation.bench.targets]]
words = "vs itself"
figure = "cpu_per_op"
against = "a"
against_model = "event"
model = "uring"
workload = "echo-64B-c256"
bound = 1.0
"""
    a = _impl("a", targets)
    floor_cell = {**_cell("floor", "echo-64B-c256", 4.0), "role": "floor"}
    cells = {c["id"]: c for c in (floor_cell, _cell("a", "echo-64B-c256", 3.0, model="uring"),
                                  _cell("a", "echo-64B-c256", 5.0, model="event"))}
    got = {t["target"]: t for t in summary.targets(cells, [a], {})}
    assert got["vs the floor"]["value"] == pytest.approx(0.75) and got["vs the floor"]["against_model"] == "event"
    assert got["vs the floor"]["state"] == "met"
    assert got["vs itself"]["value"] == pytest.approx(0.6) and got["vs itself"]["state"] == "met"
    with pytest.raises(registry.RegistryError, match="itself"):
        _impl("a", targets.replace('against_model = "event"\n', ""))


# -- a server added by data alone --------------------------------------------------------------------
COPY = Path(__file__).parent / "fixtures" / "bench-copy.toml"
CHECK_RESULTS = Path(__file__).parent / "fixtures" / "results-failed-missing.json"


def test_a_server_added_to_the_registry_appears_in_the_benchmarks_charts_tables_and_targets(tmp_path):
    """c-copy, the C server under another name, added by tests/fixtures/bench-copy.toml only: the
    quick profile narrowed to one round of the event model of c and c-copy (about 13 runs)."""
    out = tmp_path / "bench.json"
    run = subprocess.run([sys.executable, "-m", "acceptloop", "bench", "--quick", "--rounds", "1", "--model", "event",
                          "--implementations", str(COPY), "--impl", "c", "c-copy", "--quiet", "--json", str(out)],
                         capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stdout + run.stderr
    doc = json.loads(out.read_text())
    [entry] = [i for i in doc["implementations"] if i["name"] == "c-copy"]
    assert entry["colour"] == "#117733"
    mine = [c for c in doc["cells"] if c["impl"] == "c-copy"]
    assert {c["workload"] for c in mine} >= {"echo-64B-c16", "echo-64B-c256", "idle-c1000", "echo-1KiB-c4"}
    assert any(e["pair"] == "c-copy vs c" for e in doc["core_table"])
    [target] = [t for t in doc["targets"] if t["impl"] == "c-copy" and t["figure"] == "cpu_per_op"]
    assert target["state"] in ("met", "missed", "within noise") and target["value"] is not None, target
    assert f"target {'met' if target['met'] else 'MISSED':>12}: {target['target']}" in run.stdout
    report = tmp_path / "report"
    run = subprocess.run([sys.executable, "-m", "acceptloop", "report", "--results", str(CHECK_RESULTS),
                          "--bench", str(out), "--out", str(report)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    html = render.unpacked_page((report / "index.html").read_text())   # the charts are stored deflated
    section = unescape(html[html.index('id="performance"'):])
    svgs = re.findall(r'<svg class="chart" data-kind="(\w+)" data-chart="(\w+)"(.*?)</svg>', section, re.S)
    with_copy = {group for _, group, body in svgs if 'data-impl="c-copy"' in body}
    assert with_copy == {"throughput", "cpu", "latency", "memory"}
    for _, _, body in svgs:          # its declared colour, wherever it is drawn
        for g in re.findall(r'<g class="(?:series|bar[^"]*)" data-impl="c-copy".*?</g>', body, re.S):
            assert 'stroke="#117733"' in g
    assert re.search(r'<tr id="bench-c-copy-event-echo-64B-c16"[^>]*data-impl="c-copy"', section)   # every cell
    assert 'data-pair="c-copy vs c"' in section                                                      # the ratios
    row = re.search(r'<tr data-state="([^"]+)"><td>' + re.escape(target["target"]) + "</td>", section)
    assert row and row.group(1) == target["state"]                                                   # the targets
    assert "Within noise" in section and summary.WITHIN_NOISE in section
    md = (report / "REPORT.md").read_text().split("## Performance", 1)[1]
    assert f"| {target['target']} |" in md and "| c-copy vs c |" in md


# -- the datagram cells --------------------------------------------------------------------------------
def test_datagram_cells_are_planned_only_where_the_registry_offers_udp_in_a_datagram_model():
    impls, floors = _measured()
    offering = {(i.name, m) for i in impls if "udp" in i.transports and i.ready == "line"
                for m in P.DATAGRAM_MODELS if m in i.models}
    assert offering and any(i.name not in {n for n, _ in offering} for i in impls)   # some entries are TCP only
    for profile in (bench_plan.QUICK, bench_plan.FULL):
        cells = [c for c in bench_plan.plan(impls, profile, floors=floors).cells if c.workload.kind == "datagram"]
        assert {(c.impl.name, c.model) for c in cells} == offering, profile.name
        for c in cells:
            assert c.workload.transport == "udp" and c.workload.service == "echo"
            assert c.workload.io == ("uring" if c.workload.connections >= bench_plan.URING_FROM else "epoll")
            assert bench_plan.parse_workload_id(c.workload.id) == c.workload
    assert {w.id for w in bench_plan.FULL.datagram} == {"datagram-64B-c1", "datagram-64B-c16", "datagram-1KiB-c1",
                                                        "datagram-1KiB-c16"}
    assert [w.id for w in bench_plan.QUICK.datagram] == ["datagram-64B-c16"]
    # An entry that takes udp but prints no READY line, or offers no datagram model: no datagram cell.
    silent = _impl("silent", 'transports = ["tcp", "udp"]\nready = "port"\n')
    forks = registry.parse_entry({**tomllib.loads(BASE)["implementation"][0], "name": "forks", "models": ["fork"],
                                  "transports": ["tcp", "udp"]}, "test")
    w = bench_plan.workload("datagram", 16, 64)
    assert not bench_plan.offers(silent, w, "event") and not bench_plan.offers(forks, w, "fork")


def test_the_quick_run_has_its_datagram_cells_with_loss_and_a_batching_row(quick):
    doc, _ = quick
    cells = [c for c in doc["cells"] if c["kind"] == "datagram"]
    assert {c["model"] for c in cells} == set(P.DATAGRAM_MODELS)
    assert all(c["op"] == "datagram echoed" and c["lost"] is not None and c["floor"] is None for c in cells)
    declared = {i.name for i in registry.load() if i.bench and i.bench.batching}
    assert declared and {r["impl"] for r in doc["batching"]} == declared
    assert "datagram" in doc["method"]["loss"] and "datagram" in doc["method"]["per_op"]


@pytest.mark.parametrize("client, server, flag", [
    (97.0, 60.0, "client-bound: the load generator used 97% of its CPU, the server 60% of its"),
    (97.0, 89.0, "client-bound: the load generator used 97% of its CPU, the server 89% of its"),
    (97.0, None, "client-bound: the load generator used 97% of its CPU"),   # a run from before server_cpu_pct
    (97.0, 96.0, None),   # both saturated: the server's figures are its own at full load
    (88.0, 40.0, None),   # the generator had room: the server was slow on its own
])
def test_a_cell_is_client_bound_only_where_the_generator_saturated_and_the_server_did_not(client, server, flag):
    cell = bench_plan.Cell(bench_plan.workload("echo", 256, 64), _impl("x"), "event")
    runs = [{"round": i, "ops_per_s": 1000.0, "connections": 256, "io": "uring", "latency_samples": 0, "errors": {},
             "client_cpu_pct": client, **({"server_cpu_pct": server} if server is not None else {})}
            for i in (1, 2, 3)]
    flags = [f for f in summary.summarize_cell(cell, runs)["flags"] if f.startswith("client-bound")]
    assert flags == ([flag] if flag else [])


def test_a_datagram_cells_lost_datagrams_are_counted_and_flagged_apart_from_errors():
    udp = _impl("udp", 'transports = ["tcp", "udp"]\n')
    cell = bench_plan.Cell(bench_plan.workload("datagram", 16, 64), udp, "event")
    runs = [{"round": i, "ops_per_s": 1000.0, "connections": 16, "io": "epoll", "latency_samples": 0,
             "errors": {"timeout": n, "refused": 0}} for i, n in ((1, 0), (2, 2), (3, 1))]
    out = summary.summarize_cell(cell, runs)
    assert out["lost"] == 3 and out["errors"] == {}
    assert out["flags"] == [f"lost: 3 datagrams unanswered within {DATAGRAM_LOSS_MS} ms over 3 runs"]


def test_the_batching_table_divides_the_batched_model_by_the_unbatched_one_on_each_datagram_cell():
    core = _impl("core", '\n[implementation.bench.batching]\nwords = "many at once against one by one"\n')
    other = _impl("other")
    cells = {c["id"]: c for c in (
        _cell("core", "datagram-64B-c16", 5.0), _cell("core", "datagram-64B-c16", 8.0, model="iterative"),
        _cell("core", "datagram-1KiB-c1", 9.0),                                          # no iterative cell
        _cell("core", "echo-64B-c16", 4.0), _cell("core", "echo-64B-c16", 6.0, model="iterative"),   # TCP
        _cell("other", "datagram-64B-c16", 5.0), _cell("other", "datagram-64B-c16", 8.0, model="iterative"))}
    cells["core-iterative-datagram-64B-c16"]["lost"] = 3
    rows = summary.batching(cells, [core, other])
    assert [(r["impl"], r["workload"], r["model"], r["against_model"]) for r in rows] == [
        ("core", "datagram-64B-c16", "event", "iterative")]
    assert rows[0]["cpu_per_op"] == {"batched": 5.0, "unbatched": 8.0, "ratio": pytest.approx(0.625)}
    assert rows[0]["throughput"]["ratio"] == pytest.approx(1.6) and rows[0]["lost"] == {"event": None, "iterative": 3}
    shown = bench_tables.batching(rows, performance.palette({"cells": list(cells.values())}))
    assert shown[0]["cpu"] == {"batched": "5.00", "unbatched": "8.00", "ratio": "0.625×", "cls": "better"}
    assert shown[0]["throughput"]["cls"] == "better" and shown[0]["lost"] == "iterative 3"


@pytest.mark.parametrize("batching, message", [
    ('words = "w"\nmodel = "fork"', "bench.batching.model must be a model a datagram server has"),
    ('words = "w"\nmodel = "iterative"', "model and against_model are the same"),
    ('model = "event"', "bench.batching.words must be a non-empty string"),
    ('words = "w"\nhow = 1', "unknown key 'how'"),
])
def test_a_bad_batching_is_one_line_naming_the_key(batching, message):
    with pytest.raises(registry.RegistryError, match=message):
        _impl("x", f"\n[implementation.bench.batching]\n{batching}\n")


def test_datagram_workload_ids_parse_and_name_size_and_sockets():
    from acceptloop.bench import spec
    assert spec.parse_workload("datagram-64B-c16") == ("datagram", 16, 64)
    assert spec.parse_workload("datagram-1KiB-c1") == ("datagram", 1, 1024)
    assert bench_plan.workload("datagram", 16, 1024).id == "datagram-1KiB-c16"
    with pytest.raises(ValueError):
        spec.parse_workload("datagram-c16")


# -- the bindings table --------------------------------------------------------------------------------
def test_the_bindings_table_is_each_bindings_difference_from_its_core_beside_the_controls():
    core = _impl("core", '\n[implementation.bench]\ncontrol = "core-again"\n')
    twin = bench_plan.control_twin(core)
    loop = _impl("loop", '\n[implementation.bench.binding]\nhost = "Host via glue"\ncore = "core"\n')
    calls = _impl("calls", '\n[implementation.bench.binding]\nhost = "Host via glue"\ncore = "core"\ncallback = true\n')
    cells = {c["id"]: c for c in (
        _cell("core", "echo-64B-c256", 10.0), _cell("core-again", "echo-64B-c256", 10.5),
        _cell("loop", "echo-64B-c256", 10.3), _cell("calls", "echo-64B-c256", 14.0),
        _cell("core", "echo-1KiB-c16", 20.0), _cell("calls", "echo-1KiB-c16", 26.0),
        _cell("core", "connect-c16", 30.0), _cell("calls", "connect-c16", 90.0))}
    for c in cells.values():
        c["server_instructions_per_op"] = {"median": c["server_cpu_us_per_op"]["median"] * 1000}
    rows = summary.bindings(cells, [core, twin, loop, calls])
    got = {(r["impl"], r["workload"]): r for r in rows}
    assert set(got) == {("loop", "echo-64B-c256"), ("calls", "echo-64B-c256"), ("calls", "echo-1KiB-c16")}
    assert got["loop", "echo-64B-c256"]["cpu_per_op"] == pytest.approx(0.3)
    assert got["loop", "echo-64B-c256"]["cpu_per_op_noise"] == pytest.approx(0.5)
    assert got["calls", "echo-64B-c256"]["instructions_per_op"] == pytest.approx(4000)
    assert got["calls", "echo-1KiB-c16"]["cpu_per_op_noise"] is None          # the twin ran no such cell
    assert got["calls", "echo-64B-c256"]["callback"] and not got["loop", "echo-64B-c256"]["callback"]
    shown = bench_tables.bindings(rows, performance.palette({"cells": list(cells.values())}))
    first = next(r for r in shown if r["impl"] == "loop")
    assert first["cpu"] == {"value": "+0.300", "noise": "±0.500", "cls": "even"}     # within the control's own
    assert next(r for r in shown if r["impl"] == "calls")["cpu"]["cls"] == "worse"


@pytest.mark.parametrize("binding, message", [
    ('host = "H"', "bench.binding.core must be a non-empty string"),
    ('host = "H"\ncore = "x"', "names the implementation itself"),
    ('host = "H"\ncore = "c"\ncallback = "yes"', "callback must be true or false"),
    ('host = "H"\ncore = "c"\nhow = 1', "unknown key 'how'"),
])
def test_a_bad_binding_is_one_line_naming_the_key(binding, message):
    with pytest.raises(registry.RegistryError, match=message):
        _impl("x", f"\n[implementation.bench.binding]\n{binding}\n")


def test_cpu_lists_are_read_as_the_kernel_writes_them():
    from acceptloop.bench.runner import parse_cpus
    assert parse_cpus("0") == (0,)
    assert parse_cpus("0-3") == (0, 1, 2, 3)
    assert parse_cpus("4-5,0,2") == (0, 2, 4, 5)
    for bad in ("", "x", "3-1", "1-", "-1", "0,,1"):
        with pytest.raises(ValueError):
            parse_cpus(bad)


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
def test_the_cpu_sets_given_are_the_pinning_recorded():
    from acceptloop.bench.runner import pinning
    first, second = sorted(os.sched_getaffinity(0))[:2]
    pins = pinning((first,), (second,))
    assert pins["pinned"] and pins["server_cpus"] == [first] and pins["client_cpus"] == [second]
    assert pins["server_cpu"] == first and pins["client_cpu"] == second and pins["given"]
    assert pinning()["server_cpus"] == [first] and not pinning()["given"]
    with pytest.raises(ValueError, match="share CPU"):
        pinning((first,), (first, second))
    with pytest.raises(ValueError, match="not available"):
        pinning((max(os.sched_getaffinity(0)) + 1,), (first,))


def test_the_scaling_profile_runs_what_the_server_cpus_allow_and_says_so():
    assert [bench_plan.worker_counts(n) for n in (1, 2, 3, 4, 8)] == [[1], [1, 2], [1, 2], [1, 2, 4], [1, 2, 4, 8]]
    impls = [i for i in registry.load() if i.role != registry.FLOOR]
    floors = [i for i in registry.load() if i.role == registry.FLOOR]
    scalable = {i.name for i in impls if "workers" in i.options and "event" in i.models}
    assert scalable, "some port's registry entry takes --workers"
    one, record = bench_plan.scaling_plan(impls, 1, floors=floors)
    assert record["workers"] == [1] and record["scaled"] is False and record["verdict"].startswith("could not scale")
    four, record = bench_plan.scaling_plan(impls, 4, floors=floors)
    assert record["workers"] == [1, 2, 4] and record["scaled"] is True
    measured = [c for c in four.cells if c.impl.role != registry.FLOOR]
    assert {c.workload.id for c in four.cells} == {"echo-64B-c256"} and {c.model for c in measured} == {"event"}
    assert len(measured) == 3 * len(scalable)
    for c in measured:
        assert c.impl.command[-2] == "--workers" and c.impl.name.endswith(f"-workers{c.impl.command[-1]}")
    assert all(c.impl.role == registry.FLOOR for c in one.cells[:1])


def test_an_entry_without_a_bench_stanza_is_measured_only_when_named():
    impls = registry.load()
    default = {i.name for i in bench_plan.measured_by_default(impls)}
    assert {i.name for i in impls if i.bench is None} & default == set()
    assert {"python", "c", "php"} <= default
