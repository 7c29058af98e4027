"""winsock/run, c-winsock's launcher: what it leaves running, and a bad setting."""
from __future__ import annotations

import os
import select
import signal
import subprocess
import time
from pathlib import Path

from acceptloop.suite.process import pid_alive

ROOT = Path(__file__).resolve().parent.parent
PREFIX = ROOT / "build" / "wineprefix"
RUN = [str(ROOT / "winsock" / "run"), "--service", "echo", "--model", "event", "--host", "127.0.0.1", "--port", "0"]


def _env(**extra: str) -> dict[str, str]:
    return dict(os.environ, WINEPREFIX=str(PREFIX), WINEDEBUG="-all", **extra)


def _wine_of_the_prefix() -> dict[int, str]:
    """Every process of this prefix (Wine's loader, the wineserver, Wine's services), by pid."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if f"WINEPREFIX={PREFIX}".encode() in (entry / "environ").read_bytes().split(b"\0"):
                found[int(entry.name)] = (entry / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
        except OSError:   # gone meanwhile, or not ours to read
            continue
    return found


def test_wine_and_its_services_end_by_themselves_once_no_server_has_run_for_the_linger():
    """A wineserver kept forever (`wineserver -p`) outlived every check and bench, its
    winedevice.exe using 3 % of a CPU for good. It now lingers ACCEPTLOOP_WINE_LINGER seconds (here
    1) after the last server: there while a server runs, gone with its services after it."""
    # A wineserver of this prefix started earlier (by the matrix's c-winsock lanes) keeps its own linger.
    subprocess.run(["wineserver", "-k"], env=_env(), timeout=30, check=False)
    subprocess.run(["wineserver", "-w"], env=_env(), timeout=30, check=False)
    server = subprocess.Popen(RUN, stdout=subprocess.PIPE, env=_env(ACCEPTLOOP_WINE_LINGER="1"), text=True)
    try:
        assert server.stdout.readline().startswith("LISTENING ")
        running = _wine_of_the_prefix()
        assert any(Path(cmd).name.startswith("wineserver") for cmd in running.values()), running
    finally:
        server.send_signal(signal.SIGINT)
        code = server.wait(10)
    assert code == 0
    deadline = time.monotonic() + 30.0
    for pid in running:   # each one's exit, awaited on a pidfd (they are not our children)
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue
        try:
            select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        finally:
            os.close(fd)
    assert not any(pid_alive(pid) for pid in running), f"still running 30 s after the last server: {_wine_of_the_prefix()}"


def test_a_linger_that_is_not_a_whole_number_of_seconds_is_one_line_and_exit_1():
    run = subprocess.run(RUN, env=_env(ACCEPTLOOP_WINE_LINGER="2m"), capture_output=True, text=True, timeout=30)
    assert run.returncode == 1
    assert run.stderr == "winsock/run: ACCEPTLOOP_WINE_LINGER must be a whole number of seconds, not '2m'\n"
