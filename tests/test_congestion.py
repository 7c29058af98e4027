"""The congestion control a bench run measures under: set for the run, put back after it, and
said in the fairness record; a setting the kit may not write is measured under the machine's."""
from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from acceptloop.bench import congestion
from acceptloop.suite.process import children_of, cmdline_of, pid_alive, wait_until


class Sysctl(type(Path())):
    """A file that stands in for /proc/sys/net/ipv4/tcp_congestion_control; `refuse` makes every
    write fail with that errno, as the kernel's would."""
    refuse: int | None = None

    def write_text(self, data, *args, **kwargs):
        if self.refuse is not None:
            raise OSError(self.refuse, os.strerror(self.refuse))
        return super().write_text(data, *args, **kwargs)


def _sysctl(tmp_path: Path, value: str, refuse: int | None = None) -> Sysctl:
    path = Sysctl(tmp_path / "tcp_congestion_control")
    Path(path).write_text(value + "\n")
    path.refuse = refuse
    return path


@pytest.fixture(autouse=True)
def marker(tmp_path, monkeypatch) -> Path:
    """The record a bench keeps while it has the setting changed, in a scratch place."""
    path = tmp_path / "run" / "tcp_congestion_control"
    monkeypatch.setattr(congestion, "MARKER", path)
    return path


def test_the_algorithm_is_set_for_the_block_and_the_machines_put_back_after_it(tmp_path, marker):
    path = _sysctl(tmp_path, "bbr")
    with congestion.congestion_control("cubic", path) as cc:
        assert path.read_text() == "cubic\n"
        assert marker.read_text() == f"{os.getpid()} bbr\n"   # written before the change
        assert cc["in_effect"] == "cubic" and cc["machine"] == "bbr"
        assert "set by the bench" in cc["how"] and "bbr" in cc["how"]
    assert path.read_text() == "bbr\n"
    assert not marker.exists()


def test_the_machines_algorithm_is_put_back_when_the_block_fails(tmp_path):
    path = _sysctl(tmp_path, "bbr")
    with pytest.raises(RuntimeError):
        with congestion.congestion_control("cubic", path):
            raise RuntimeError("a run broke")
    assert path.read_text() == "bbr\n"


def test_a_sigterm_during_the_block_ends_it_as_ctrl_c_does_and_puts_the_machines_algorithm_back(tmp_path):
    path = _sysctl(tmp_path, "bbr")
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        with congestion.congestion_control("cubic", path):
            assert path.read_text() == "cubic\n"
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(10)   # the handler's exception ends the sleep at once
            pytest.fail("SIGTERM did not end the block")
    assert path.read_text() == "bbr\n"
    assert signal.getsignal(signal.SIGTERM) == before



def test_a_bench_stopped_by_sigterm_exits_130_puts_the_machines_algorithm_back_and_stops_its_servers():
    machine = congestion.SYSCTL.read_text()
    bench = subprocess.Popen([sys.executable, "-m", "acceptloop", "bench", "--full", "--quiet", "--json",
                              os.devnull], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_until(lambda: set(children_of(bench.pid)), 60.0), "the bench started no server"
        servers = set(children_of(bench.pid))
        during = congestion.SYSCTL.read_text()
        bench.send_signal(signal.SIGTERM)
        out, err = bench.communicate(timeout=60)
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.wait()
    assert bench.returncode == 130, out + err
    assert err.strip().splitlines()[-1].startswith("acceptloop bench: interrupted")
    if "cannot set TCP congestion control" in err:
        assert during == machine
    else:
        assert during == congestion.DEFAULT + "\n"   # set before the first server started
    assert congestion.SYSCTL.read_text() == machine
    # The SIGTERM came as the first server was forked: every process the bench had started is gone
    # (before process.interrupts_held(), one forked in that moment ran on with no pid in LIVE).
    assert wait_until(lambda: not any(pid_alive(p) for p in servers), 10.0), \
        {p: cmdline_of(p) for p in servers if pid_alive(p)}


def _killed_bench(path: Path, marker: Path) -> int:
    """A process that sets cubic as a bench does and is then killed outright; its pid."""
    code = ("import os, signal, sys; from pathlib import Path; from acceptloop.bench import congestion\n"
            "held = congestion.congestion_control('cubic', Path(sys.argv[1]), Path(sys.argv[2]))\n"
            "held.__enter__()   # kept, so that nothing closes it before the kill\n"
            "os.kill(os.getpid(), signal.SIGKILL)")
    child = subprocess.run([sys.executable, "-c", code, str(path), str(marker)], timeout=60)
    assert child.returncode == -signal.SIGKILL
    return int(marker.read_text().split()[0])


def test_a_bench_killed_outright_is_cleaned_up_after_by_the_next_one(tmp_path, marker, capsys):
    path = _sysctl(tmp_path, "bbr")
    pid = _killed_bench(path, marker)
    assert path.read_text() == "cubic\n" and marker.read_text() == f"{pid} bbr\n"   # what SIGKILL leaves
    with congestion.congestion_control("keep", path) as cc:
        assert path.read_text() == "bbr\n" and cc["in_effect"] == "bbr" and cc["machine"] == "bbr"
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and f"pid {pid}" in err[0] and "put back to the machine's bbr" in err[0], err
    assert not marker.exists()


def test_a_record_whose_bench_still_runs_is_left_to_that_bench(tmp_path, marker, capsys):
    path = _sysctl(tmp_path, "cubic")
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)  # acceptloop bench"])
    try:
        marker.parent.mkdir()
        marker.write_text(f"{other.pid} bbr\n")
        congestion.put_back_what_a_killed_bench_left(path)
        assert path.read_text() == "cubic\n" and marker.read_text() == f"{other.pid} bbr\n"
        assert capsys.readouterr().err == ""
    finally:
        other.kill()
        other.wait()
    congestion.put_back_what_a_killed_bench_left(path)   # now it is gone: what it left is undone
    assert path.read_text() == "bbr\n" and not marker.exists()


@pytest.mark.parametrize("record", ["", "12 cubic;reboot", "x bbr", "1 2 3"])
def test_a_record_no_bench_wrote_is_removed_and_nothing_changes(tmp_path, marker, record):
    path = _sysctl(tmp_path, "cubic")
    marker.parent.mkdir()
    marker.write_text(record)
    congestion.put_back_what_a_killed_bench_left(path)
    assert path.read_text() == "cubic\n" and not marker.exists()


@pytest.mark.parametrize("wanted, how", [("keep", "the machine's (--congestion-control keep)"),
                                         ("bbr", "the machine's")])
def test_keep_or_the_machines_own_algorithm_changes_nothing(tmp_path, wanted, how):
    path = _sysctl(tmp_path, "bbr", refuse=errno.EACCES)   # a write would fail the test
    with congestion.congestion_control(wanted, path) as cc:
        assert cc["in_effect"] == "bbr" and cc["how"] == how
    assert path.read_text() == "bbr\n"


@pytest.mark.parametrize("refused", [errno.EACCES, errno.EROFS])
def test_a_setting_the_kit_may_not_write_is_measured_under_the_machines_with_a_warning(tmp_path, capsys, refused,
                                                                                       marker):
    path = _sysctl(tmp_path, "bbr", refuse=refused)
    with congestion.congestion_control("cubic", path) as cc:
        assert cc["in_effect"] == "bbr"
        assert cc["how"].startswith("the machine's: setting cubic failed")
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "cannot set TCP congestion control cubic" in err[0] and "bbr" in err[0]
    assert path.read_text() == "bbr\n"
    assert not marker.exists()


def test_an_algorithm_the_kernel_does_not_have_is_a_usage_error_before_anything_changes(tmp_path):
    path = _sysctl(tmp_path, "bbr", refuse=errno.ENOENT)
    with pytest.raises(congestion.CongestionError, match="this kernel has no such algorithm"):
        with congestion.congestion_control("vegas", path):
            pytest.fail("the block ran")
    assert path.read_text() == "bbr\n"


def test_an_unreadable_setting_is_recorded_as_unknown(tmp_path):
    with congestion.congestion_control("cubic", Sysctl(tmp_path / "absent")) as cc:
        assert cc["in_effect"] is None and cc["how"].startswith("unknown")


@pytest.mark.parametrize("name", ["BBR", "cubic;reboot", "", "a" * 17])
def test_a_name_no_algorithm_could_have_exits_2_in_one_line(name):
    before = congestion.SYSCTL.read_text()
    run = subprocess.run([sys.executable, "-m", "acceptloop", "bench", "--quick", "--quiet",
                          "--congestion-control", name], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.stderr.count("\n") == 1 and "not an algorithm's name" in run.stderr
    assert congestion.SYSCTL.read_text() == before
