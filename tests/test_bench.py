"""`acceptloop bench --quick`: the whole benchmark path, from a registry to results JSON, in under a minute.

Figures are the benchmark's business; this checks that every cell ran, was measured
the way the method says, and was summarized with its flags, ratios and targets.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from acceptloop.bench import plan as bench_plan
from acceptloop.suite import registry

# The CPU's counters, as perf_event_open offers them: a virtual machine may have none.
COUNTERS = os.path.exists("/sys/bus/event_source/devices/cpu/events/instructions") and os.geteuid() == 0


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    run = subprocess.run([sys.executable, "-m", "acceptloop", "bench", "--quick", "--quiet", "--json", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    return json.loads(out.read_text()), run.stdout


def test_every_implementation_and_model_is_measured(quick):
    doc, _ = quick
    impls = [i for i in registry.load() if i.unavailable() is None]
    expected = {c.id for c in bench_plan.plan(impls, bench_plan.QUICK).cells}
    assert {c["id"] for c in doc["cells"]} == expected
    assert {"asyncio", "c", "c-cffi", "php", "python"} <= {c["impl"] for c in doc["cells"]}
    assert {c["model"] for c in doc["cells"]} == {"iterative", "fork", "threads", "event"}


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
            assert sum(r["errors"].values()) == 0 or any(f.startswith(("errors", "unsupported")) for f in cell["flags"])
        if cell["kind"] == "echo":
            assert cell["latency_us"]["p50"]["median"] <= cell["latency_us"]["p999"]["median"]
        if COUNTERS and cell["kind"] != "idle":
            work, user = cell["server_instructions_per_op"], cell["server_user_instructions_per_op"]
            assert 0 < user["median"] < work["median"], cell["id"]


def test_interleaving_alternates_implementations_within_a_workload(quick):
    doc, _ = quick
    assert doc["method"]["interleaving"].startswith("each round runs every cell once")
    plan = bench_plan.plan([i for i in registry.load() if i.unavailable() is None], bench_plan.QUICK)
    first_workload = [c.impl.name for c in plan.cells if c.workload.id == "echo-64B-c16"]
    assert len(first_workload) >= 4 and len(set(first_workload)) == len(first_workload)


def test_fairness_provenance_ratios_and_targets_are_recorded(quick):
    doc, stdout = quick
    fair = doc["fairness"]
    assert fair["pinning"]["pinned"] == (len(__import__("os").sched_getaffinity(0)) >= 2)
    for key in ("tcp_nodelay", "somaxconn", "tcp_rmem", "tcp_wmem", "fd_limit", "backlog"):
        assert fair[key], key
    assert doc["provenance"]["commit"] and doc["provenance"]["cpu"]
    assert any(row["pair"] == "c vs python" for row in doc["core_table"])
    names = [t["target"] for t in doc["targets"]]
    assert any("uvloop" in n for n in names) and any("c-cffi" in n for n in names)
    rss = [t for t in doc["targets"] if t["target"].startswith("peak RSS per idle connection: c ")]
    assert rss and rss[0]["value"] is not None
    assert "results:" in stdout


def test_bad_bench_arguments_exit_2():
    run = subprocess.run([sys.executable, "-m", "acceptloop", "bench", "--quick", "--impl", "cobol"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "unknown implementation cobol" in run.stderr
