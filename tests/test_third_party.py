"""Servers nobody here wrote, as fixtures of the suite: Debian's openbsd-inetd (its internal echo,
discard, chargen and daytime) and socat echo, registered from tests/fixtures/third-party.toml and
installed by `.ci/run` (or `make thirdparty`).

They print no READY line, so they follow the RFC's service only: a check on the kit's own choices
(docs/protocol.md) or on the contract is shown for them as INFO, never FAILED. The second half
reproduces, without them, each fault of the kit that they showed.
"""
from __future__ import annotations

import json
import re
import select
import shutil
import socket
import subprocess
import sys
import threading
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from acceptloop.paths import ROOT
from acceptloop.suite import registry, runner
from acceptloop.suite.catalog import by_id
from acceptloop.suite.client import Client
from acceptloop.suite.process import ServerProcess, pid_alive
from acceptloop.suite.scenario import ERROR, FAILED, INFO, MISSING, OK, Result

THIRD_PARTY = Path(__file__).parent / "fixtures" / "third-party.toml"
INETD = ("inetd-echo", "inetd-discard", "inetd-chargen", "inetd-daytime")
SOCAT = "socat-echo"


@dataclass
class Run:
    exit_code: int
    output: str
    results: list[Result]

    def cell(self, impl: str, scenario: str) -> Result:
        (found,) = [r for r in self.results if r.impl == impl and r.scenario == scenario]
        return found

    def of(self, impl: str) -> list[Result]:
        return [r for r in self.results if r.impl == impl]


@pytest.fixture(scope="module")
def checked(tmp_path_factory) -> dict[str, Run]:
    """`acceptloop check` as a user runs it, once for inetd's four services and once for socat, at
    the same time (they listen on different ports): {"inetd": Run, "socat": Run}."""
    missing = [name for name, there in (("openbsd-inetd", Path("/usr/sbin/inetd").exists()),
                                        ("socat", shutil.which("socat"))) if not there]
    assert not missing, f"{' and '.join(missing)} not installed: `make thirdparty` (or .ci/run) installs them"
    where = tmp_path_factory.mktemp("third-party")
    started = {}
    for key, impls in (("inetd", INETD), ("socat", (SOCAT,))):
        started[key] = subprocess.Popen(
            [sys.executable, "-m", "acceptloop", "check", "--quiet", "--implementations", str(THIRD_PARTY),
             "--impl", *impls, "--json", str(where / f"{key}.json")],
            cwd=where, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    runs = {}
    for key, proc in started.items():
        output, _ = proc.communicate(timeout=300)
        results = [Result.from_dict(r) for r in json.loads((where / f"{key}.json").read_text())["results"]]
        runs[key] = Run(proc.returncode, output, results)
    return runs


def _explain(results: list[Result]) -> str:
    return "\n".join(f"{r.impl}/{r.model} {r.scenario}: {r.grade}: {r.reason}" for r in results)


# -- the grades -------------------------------------------------------------------------------------

@pytest.mark.parametrize("impl", ["inetd-echo", "inetd-discard", "inetd-chargen"])
def test_inetd_echo_discard_and_chargen_are_ok_on_every_rfc_check(checked, impl):
    results = checked["inetd"].of(impl)
    assert results
    bad = [r for r in results if r.grade not in (OK, INFO, MISSING) or (r.grade == INFO and not r.reason)]
    assert not bad, _explain(bad)
    broken = [(r.scenario, c.what, c.observed) for r in results for c in r.checks if c.basis == "rfc" and not c.ok]
    assert not broken, broken
    ran = {r.scenario for r in results if r.grade != MISSING}
    service = impl.removeprefix("inetd-")
    assert {s.id for s in by_id().values() if s.group == service} <= ran


def test_inetd_daytime_fails_nothing_and_its_ctime_line_is_info(checked):
    results = checked["inetd"].of("inetd-daytime")
    bad = [r for r in results if r.grade in (FAILED, ERROR)]
    assert not bad, _explain(bad)
    fmt = checked["inetd"].cell("inetd-daytime", "daytime.format")
    assert fmt.grade == INFO and "RFC 867 sets no syntax" in fmt.reason and "protocol check" in fmt.reason
    line = next(c for c in fmt.checks if c.what == "one line of ASCII text arrives")
    assert re.fullmatch(r"\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}\r?\n?", line.observed), line
    assert all(c.ok for c in fmt.checks if c.basis == "rfc"), fmt.checks
    # inetd closes with the fuzzer's input unread, so its line comes before an RST: the line is
    # there (the client reads it before recording the reset), and only its format is shown.
    fuzz = checked["inetd"].cell("inetd-daytime", "robustness.fuzz_daytime")
    assert fuzz.grade == INFO and "not the protocol's format" in fuzz.reason, fuzz.reason


def test_check_exits_0_for_inetd(checked):
    assert checked["inetd"].exit_code == 0, checked["inetd"].output


def test_socat_fails_nothing_and_check_exits_0(checked):
    """Nothing is FAILED or ERROR, and `acceptloop check` exits 0, for the README's socat example.

    socat's parent exits (status 1, `E fork(): Resource temporarily unavailable`) at the first fork
    the kernel refuses. Surviving a process limit is the contract's promise, not an RFC's (a limit
    the machine sets is not a client's doing), so robustness.process_limit shows it as INFO."""
    run = checked["socat"]
    bad = [r for r in run.results if r.grade in (FAILED, ERROR)]
    assert not bad, _explain(bad)
    assert run.exit_code == 0, run.output
    limit = run.cell(SOCAT, "robustness.process_limit")
    assert limit.grade == INFO, limit.reason
    if not limit.reason.startswith("cannot limit"):
        # Which check reads socat's exit first depends on when it dies: the survival check just after
        # the clients (usually), or, on a loaded machine where socat had not exited yet, the ones after.
        assert limit.server["own"][0]["exit_code"] == 1 and "contract check" in limit.reason
        failed = {c.what for c in limit.checks if not c.ok}
        assert "once the limit is lifted, a new client is served" in failed, failed
        assert "E fork(): Resource temporarily unavailable" in limit.server["own"][0]["stderr"]


def test_socat_is_shown_not_blamed_for_the_contract(checked):
    run = checked["socat"]
    # SIGTERM: socat exits 143 (the contract says 0): a contract check, INFO.
    term = run.cell(SOCAT, "robustness.sigterm_in_accept")
    assert term.grade == INFO and "observed 143" in term.reason and "contract check" in term.reason
    # Its stderr is its own: `... socat[PID] E bind(...): Address already in use`.
    in_use = run.cell(SOCAT, "lifecycle.port_in_use")
    assert in_use.grade == INFO and "Address already in use" in in_use.reason
    # It cannot bind `::` with TCP-LISTEN: the contract's dual stack, INFO.
    dual = run.cell(SOCAT, "lifecycle.dual_stack")
    assert dual.grade == INFO and "::" in dual.reason and "contract check" in dual.reason, dual.reason
    # An unresolvable host: socat exits 1 with its own words (the kit picks its port; no kit error).
    resolve = run.cell(SOCAT, "lifecycle.resolve_failure")
    assert resolve.grade == INFO and "nonexistent.invalid" in resolve.reason, resolve.reason
    # The RFC's echo: OK, and every rfc check holds but where its parent dies of a refused fork.
    for scenario in ("echo.round_trip", "echo.all_byte_values", "echo.large_stream", "echo.half_close_flush",
                     "robustness.fuzz_echo"):
        assert run.cell(SOCAT, scenario).grade == OK, run.cell(SOCAT, scenario).reason
    broken = [(r.scenario, c.what, c.observed) for r in run.results if r.scenario != "robustness.process_limit"
              for c in r.checks if c.basis == "rfc" and not c.ok]
    assert not broken, broken


def test_no_option_socat_and_inetd_never_offered_is_passed_to_them(checked):
    """over_the_limit wants --backlog 2048, passed only where the entry offers it: the kit used to
    append it to socat's command line. Only bad_arguments hands them the contract's options, on
    purpose."""
    for run in checked.values():
        for r in run.results:
            for server in [r.server, *r.server.get("own", [])]:
                options = [w for w in server.get("command") or [] if w.startswith("--")]
                assert not options or r.scenario == "lifecycle.bad_arguments", (r.impl, r.scenario, server["command"])
    socat, listen, cat = checked["socat"].cell(SOCAT, "robustness.over_the_limit").server["own"][0]["command"]
    assert (socat, cat) == ("socat", "EXEC:cat") and re.fullmatch(r"TCP-LISTEN:\d+,bind=127\.0\.0\.1,reuseaddr,fork", listen)


def test_checks_observe_the_real_state_and_the_kit_never_fails_itself(checked):
    emfile = checked["inetd"].cell("inetd-echo", "robustness.emfile")
    (still,) = [c for c in emfile.checks if c.what == "the server is still running"]
    assert still.ok and still.observed == "running"
    for run in checked.values():
        for r in run.results:
            assert r.grade != ERROR, (r.scenario, r.reason)
            assert not [c for c in r.checks if "the server keeps the connection usable" in c.what], r.checks
        bad_info = [r for r in run.results if r.grade in (INFO, MISSING) and not r.reason]
        assert not bad_info, _explain(bad_info)


def test_the_readme_example_is_the_socat_entry_the_tests_run():
    block = re.search(r"### Adding a server.*?```toml\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert block, "README.md: no toml block under 'Adding a server'"
    example = tomllib.loads(block.group(1))["implementation"][0]
    fixture = {e["name"]: e for e in tomllib.loads(THIRD_PARTY.read_text())["implementation"]}[example["name"]]
    assert example == {k: v for k, v in fixture.items() if k != "language"}


# -- what these servers showed of the kit, reproduced without them ---------------------------------

def _closes_with_input_unread(line: bytes) -> tuple[socket.socket, int]:
    """A daytime server as inetd's is: it waits for the client's input, sends its line and closes
    with that input unread, so the kernel ends the connection with an RST after the line."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def serve() -> None:
        conn, _ = listener.accept()
        select.select([conn], [], [], 5.0)
        conn.sendall(line)
        conn.close()
    threading.Thread(target=serve, daemon=True).start()
    return listener, listener.getsockname()[1]


def test_a_send_that_meets_the_reset_does_not_lose_what_arrived_before_it():
    """inetd's daytime against robustness.fuzz_daytime: `daytime sent b''`, FAILED. The line had
    arrived; the client's next send met the RST and recorded the end, and no read was made."""
    line = b"Tue Dec  1 07:57:28 2026\r\n"
    listener, port = _closes_with_input_unread(line)
    with listener:
        c = Client(("127.0.0.1", port))
        c.send(b"x" * 100)
        time.sleep(0.2)              # the line and the RST are in
        c.send(b"y" * 100)           # ECONNRESET: recorded, not raised
        c.shutdown_write()
        c.recv_until_end()
        c.close()
    assert c.transcript.end == "RST"
    assert c.received == line


def test_a_server_given_a_host_that_does_not_resolve_gets_a_port_from_the_kit(tmp_path):
    """socat against lifecycle.resolve_failure: ERROR, `kit error: gaierror`. For a server that
    prints nothing the kit picks the port, and it tried to bind the scenario's unresolvable host."""
    entry = registry.parse_entry({"name": "silent", "command": "true {host} {port}", "models": ["event"],
                                  "services": ["echo"], "ready": "port"}, "test")
    proc = ServerProcess(entry, "echo", "event", host="nonexistent.invalid")
    argv = proc.argv
    assert argv[:2] == ["true", "nonexistent.invalid"] and 0 < int(argv[2]) < 65536
    proc.close()


def test_a_fixed_port_that_another_process_holds_is_error_not_that_process_graded():
    """inetd's services always listen on 7, 9, 19 and 13: a server that prints nothing is ready
    when its port accepts, so with another process on that port (a system inetd, a second run) the
    kit graded that other process. Now the cell is ERROR, naming the port."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        entry = registry.parse_entry({"name": "fixed", "command": ["sleep", "30"], "models": ["fork"],
                                      "services": ["echo"], "ready": "port", "port": port}, "test")
        result = runner.run([runner.Cell(entry, "fork", by_id()["echo.round_trip"])])[0]
    assert result.grade == ERROR, (result.grade, result.reason)
    assert f"127.0.0.1:{port} already accepts connections before the server starts" in result.reason


def test_a_server_that_has_exited_has_no_children_and_says_how_it_ended():
    """socat against robustness.process_limit: its parent exits when a fork is refused, and the
    kit's next look at its children raised FileNotFoundError (/proc/PID/task), which was graded as
    the server's failure; checks beside it said `observed: exited` as a literal, whatever the state."""
    entry = registry.parse_entry({"name": "brief", "command": ["sh", "-c", "exit 3"], "models": ["fork"],
                                  "services": ["echo"], "ready": "port", "port": 9}, "test")
    proc = ServerProcess(entry, "echo", "fork")
    proc.spawn()
    assert proc.wait_exit(5.0) == 3
    assert proc.children() == []
    assert proc.state() == "exited with 3"
    proc.close()


def test_a_child_that_outlives_its_server_is_ended_and_does_not_hang_the_kit():
    """socat against robustness.over_the_limit: socat's per-connection children outlive it (a
    connection whose client vanished), holding its stdout; closing that pipe while the kit's reader
    thread still blocked on it hung `acceptloop check` for good (ten minutes, until killed by hand)."""
    entry = registry.parse_entry({
        "name": "leaves-a-child", "models": ["event"], "services": ["echo"], "ready": "port",
        "command": ["sh", "-c", "sleep 60 & exec {python} -m acceptloop.server --service {service} "
                    "--model {model} --host {host} --port {port} >/dev/null"]}, "test")
    proc = ServerProcess(entry, "echo", "event").start()
    (child,) = [pid for pid, _ in proc.children()]
    closing = threading.Thread(target=proc.close, daemon=True)
    closing.start()
    closing.join(10.0)
    assert not closing.is_alive(), "close() hung on the child's copy of the server's stdout"
    assert not pid_alive(child), f"the server's child {child} still runs"
