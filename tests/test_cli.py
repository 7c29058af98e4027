"""`acceptloop check` as a user runs it: selection, JSON and JUnit output, exit codes."""
from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from acceptloop.suite.process import ServerProcess
from acceptloop.suite import registry

BROKEN = Path(__file__).parent / "fixtures" / "broken.toml"


def check(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "acceptloop", "check", "--quiet", *args],
                          capture_output=True, text=True, timeout=timeout)


def test_a_selection_runs_writes_json_and_junit_and_exits_0(tmp_path):
    out = check("--impl", "python", "c", "--model", "event", "-k", "echo.round_trip or daytime.format",
                "--json", str(tmp_path / "r.json"), "--junit", str(tmp_path / "r.xml"))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "echo.round_trip" in out.stdout and "disagreements: 0 row(s)" in out.stdout
    doc = json.loads((tmp_path / "r.json").read_text())
    cells = {(r["impl"], r["model"], r["scenario"]): r["grade"] for r in doc["results"]}
    assert cells == {(i, "event", s): "OK" for i in ("python", "c") for s in ("echo.round_trip", "daytime.format")}
    assert doc["provenance"]["commit"] and doc["provenance"]["command"].startswith("acceptloop check")
    suite = ET.parse(tmp_path / "r.xml").getroot()
    assert suite.get("tests") == "4" and suite.get("failures") == "0"


def test_a_failed_cell_makes_exit_1_and_shows_why():
    out = check("--implementations", str(BROKEN), "--impl", "nul-dropper", "--model", "event",
                "-k", "all_byte_values or round_trip")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "FAIL" in out.stdout
    assert "FAILED     nul-dropper/event echo.all_byte_values: every byte comes back" in out.stdout


def test_bad_selections_are_one_line_and_exit_2(tmp_path):
    for args, text in [(["--impl", "cobol"], "unknown implementation cobol"),
                       (["-k", "echo and ("], "-k:"),
                       (["-k", "no-such-scenario-anywhere"], "nothing matches"),
                       (["--implementations", str(tmp_path / "missing.toml")], "missing.toml")]:
        out = check(*args)
        assert out.returncode == 2, (args, out.stderr)
        assert text in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_a_server_already_running_is_checked_by_address(tmp_path):
    python = {i.name: i for i in registry.load()}["python"]
    with ServerProcess(python, "echo", "threads").start() as srv:
        host, port = srv.address
        extra = tmp_path / "running.toml"
        extra.write_text(f'[[implementation]]\nname = "running"\naddress = "{host}:{port}"\n'
                         f'models = ["threads"]\nservices = ["echo"]\n')
        out = check("--implementations", str(extra), "--impl", "running", "-k", "echo or lifecycle.ready_lines",
                    "--json", str(tmp_path / "r.json"))
    assert out.returncode == 0, out.stdout + out.stderr
    grades = {r["scenario"]: r["grade"] for r in json.loads((tmp_path / "r.json").read_text())["results"]}
    assert grades["echo.round_trip"] == "OK" and grades["echo.large_stream"] == "OK"
    assert grades["lifecycle.ready_lines"] == "MISSING"


def test_a_server_that_prints_nothing_is_detected_by_polling_its_port(tmp_path):
    """ready = "port": the kit picks a free port, fills it into the command, and waits until it accepts."""
    extra = tmp_path / "silent.toml"
    extra.write_text('''
[[implementation]]
name = "silent"
command = ["sh", "-c", "exec {python} -m acceptloop.server --service {service} --model {model} --host {host} --port {port} >/dev/null"]
models = ["event"]
services = ["echo"]
ready = "port"
''')
    out = check("--implementations", str(extra), "--impl", "silent", "-k", "echo.round_trip or lifecycle.ready_lines "
                "or lifecycle.sigterm_busy", "--json", str(tmp_path / "r.json"))
    assert out.returncode == 0, out.stdout + out.stderr
    grades = {r["scenario"]: (r["grade"], r["reason"]) for r in json.loads((tmp_path / "r.json").read_text())["results"]}
    assert grades["echo.round_trip"][0] == "OK"
    assert grades["lifecycle.ready_lines"] == ("INFO", "silent prints no READY line (registry: ready = port)")
    assert grades["lifecycle.sigterm_busy"] == ("MISSING", "silent does not accept --grace")


def test_a_command_whose_program_does_not_exist_is_error_and_exit_3(tmp_path):
    """The kit's failure (or the registry's), never the server's: ERROR, and exit 3."""
    extra = tmp_path / "absent.toml"
    extra.write_text('[[implementation]]\nname = "absent"\ncommand = "/nonexistent/echo-server {port}"\n'
                     'models = ["fork"]\nservices = ["echo"]\nready = "port"\n')
    out = check("--implementations", str(extra), "--impl", "absent", "-k", "echo.round_trip or robustness.emfile",
                "--json", str(tmp_path / "r.json"))
    assert out.returncode == 3, out.stdout + out.stderr
    results = json.loads((tmp_path / "r.json").read_text())["results"]
    assert {r["scenario"]: r["grade"] for r in results} == {"echo.round_trip": "ERROR", "robustness.emfile": "ERROR"}
    assert all("the server's command cannot be executed: /nonexistent/echo-server: No such file or directory"
               in r["reason"] for r in results), [r["reason"] for r in results]
