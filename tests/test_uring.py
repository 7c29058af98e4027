"""The C core's uring model where io_uring is unavailable: one start-up line, exit 1, and the
kit grades every cell of the model MISSING with that line, never FAILED (suite/probe.py).

The unavailability is forced with the core's test hook ACCEPTLOOP_URING_FAIL=EPERM (or ENOSYS),
which makes the uring model take io_uring_setup to have failed so (docs/design.md, "The models"):
the same path a kernel without io_uring, kernel.io_uring_disabled=2 or a seccomp filter takes.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from acceptloop.paths import ROOT
from acceptloop.suite import probe, registry, runner
from acceptloop.suite.process import ServerProcess
from acceptloop.suite.scenario import MISSING

BINARY = ROOT / "build" / "acceptloop-c"
FORCED = {"ACCEPTLOOP_URING_FAIL": "EPERM"}


def _start(model: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([str(BINARY), "--service", "echo", "--model", model, "--port", "0"],
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=10)


@pytest.mark.parametrize("code, text", [("EPERM", "Operation not permitted"), ("ENOSYS", "Function not implemented")])
def test_the_server_says_so_in_one_line_and_exits_1(code, text):
    done = _start("uring", {"ACCEPTLOOP_URING_FAIL": code})
    assert done.returncode == 1
    assert done.stdout == ""   # before any listener: no LISTENING, no READY
    assert done.stderr == f"io_uring_setup ring: {text} ({code})\n"


def test_the_hook_concerns_the_uring_model_only():
    impl = {i.name: i for i in registry.load()}["c"]
    server = ServerProcess(impl, "echo", "event", env={**os.environ, **FORCED}).start()
    try:
        assert server.listening
    finally:
        server.close()


@pytest.mark.parametrize("impl_name", ["c", "c-cffi"])
def test_the_kit_grades_the_cells_missing_with_the_line(impl_name):
    impl = {i.name: i for i in registry.load()}[impl_name]
    cells = runner.plan([impl], models=["uring"], keyword="bad_arguments or echo.round_trip or emfile")
    assert len(cells) >= 3
    results = runner.run(cells, env={**os.environ, **FORCED})
    assert {r.grade for r in results} == {MISSING}
    for r in results:
        assert "io_uring_setup ring: Operation not permitted (EPERM)" in r.reason, r.reason


def test_only_an_unavailable_facility_is_missing():
    line = "io_uring_setup ring: Operation not permitted (EPERM)"
    assert probe.unavailable_line("io_uring_setup", 1, line + "\n") == line
    assert probe.unavailable_line("io_uring_setup", 1, "io_uring_setup ring: Function not implemented (ENOSYS)")
    # out of descriptors is a start-up failure the cells must see (limits.descriptor_limit_at_start)
    assert probe.unavailable_line("io_uring_setup", 1, "io_uring_setup ring: Too many open files (EMFILE)") is None
    assert probe.unavailable_line("io_uring_setup", 2, line) is None
    assert probe.unavailable_line("io_uring_setup", 1, line + "\nanother line\n") is None
    assert probe.unavailable_line("io_uring_setup", 1, "bind 127.0.0.1:7: Permission denied (EACCES)") is None


def test_a_probe_names_a_model_the_entry_offers(tmp_path: Path):
    extra = tmp_path / "extra.toml"
    extra.write_text('[[implementation]]\nname = "x"\nmodels = ["event"]\ncommand = "x"\n'
                     'probe = { uring = "io_uring_setup" }\n')
    with pytest.raises(registry.RegistryError, match="does not offer the model 'uring'"):
        registry.load([extra], base=None)


def test_c_and_c_cffi_offer_uring_and_probe_it():
    impls = {i.name: i for i in registry.load()}
    for name in ("c", "c-cffi"):
        assert "uring" in impls[name].models
        assert dict(impls[name].probes) == {"uring": "io_uring_setup"}
    for name in ("python", "php", "c-pyhandler", "c-ctypes-handler", "asyncio", "uvloop"):
        assert "uring" not in impls[name].models
