"""The TCP congestion control a bench run measures under.

Loopback streams pace by the congestion control every new socket takes from
net.ipv4.tcp_congestion_control, the server's accepted sockets included; the kit cannot choose it
for a server's sockets any other way. Under bbr the streams on loopback are bistable (the same run
lands at 4 or 9 GB/s) and 256 KiB echo runs at 60-75 % of what it does under cubic
(docs/performance.md), so a run under bbr measures bbr's pacing more than the servers. The bench
therefore sets the algorithm it is told (cubic by default, Linux's own default) for the length of
the run and puts the machine's back afterwards, also when it is interrupted. Where it may not set
it (not root, a read-only /proc/sys), it measures under the machine's and says so; the fairness
record carries what was in effect and how it came to be.

A bench killed outright (SIGKILL, the OOM killer) runs no clean-up. So while the setting is changed,
MARKER holds the bench's pid and the machine's algorithm; the next bench finds it, sees that pid
gone, and puts the machine's algorithm back before anything else. /run is emptied at boot, as the
sysctl is reset.
"""

from __future__ import annotations

import os
import re
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from acceptloop.suite.process import cmdline_of, pid_alive

SYSCTL = Path("/proc/sys/net/ipv4/tcp_congestion_control")
DEFAULT = "cubic"
MARKER = Path("/run/acceptloop/tcp_congestion_control")   # "PID ALGORITHM" while a bench has it changed
KEEP = "keep"   # measure under the machine's, whatever it is
NAME = re.compile(r"[a-z0-9_]{1,16}")   # the kernel's names (TCP_CA_NAME_MAX is 16)


class CongestionError(ValueError):
    """The algorithm asked for is not a name the kernel could have: a usage error."""


def check_name(wanted: str) -> str:
    """`wanted` when it can be an algorithm's name (or `keep`); CongestionError otherwise."""
    if wanted != KEEP and not NAME.fullmatch(wanted):
        raise CongestionError(f"--congestion-control {wanted!r}: not an algorithm's name (say cubic, reno, bbr "
                              f"or {KEEP})")
    return wanted


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _a_bench_runs(pid: int) -> bool:
    """Whether `pid` still runs and is an acceptloop process, not a later one given the same pid. A
    process in the middle of its exec shows an empty command line: it counts as running."""
    cmdline = cmdline_of(pid) if pid_alive(pid) else None
    return cmdline is not None and (not cmdline or "acceptloop" in cmdline)


def _marked(marker: Path) -> tuple[int, str] | None:
    """The pid and the machine's algorithm MARKER records, or None (none, or not one of ours)."""
    try:
        pid, machine = marker.read_text().split()
        return (int(pid), machine) if NAME.fullmatch(machine) else None
    except (OSError, ValueError):
        return None


def put_back_what_a_killed_bench_left(path: Path = SYSCTL, marker: Path | None = None) -> None:
    """A bench that was killed with the setting changed left MARKER: its algorithm is put back (one
    line on stderr). Nothing happens while that bench still runs: its own clean-up will do it."""
    marker = marker or MARKER
    marked = _marked(marker)
    if marked is None:
        _unmark(marker)   # none, or not a record a bench wrote
        return
    pid, machine = marked
    if _a_bench_runs(pid):
        return
    left = _read(path)
    if left is not None and left != machine:
        try:
            path.write_text(machine + "\n")
        except OSError as e:
            print(f"acceptloop bench: a bench stopped without its clean-up (pid {pid}) left TCP congestion control "
                  f"at {left} and it cannot be put back ({e.strerror or e}); set it with: "
                  f"sysctl net.ipv4.tcp_congestion_control={machine}", file=sys.stderr)
            return
        print(f"acceptloop bench: TCP congestion control put back to the machine's {machine}: a bench stopped "
              f"without its clean-up (pid {pid}) had left it at {left}", file=sys.stderr)
    _unmark(marker)


def _unmark(marker: Path) -> None:
    try:
        marker.unlink(missing_ok=True)
    except OSError:
        pass


def _mark(marker: Path, machine: str) -> bool:
    """Records this bench's pid and the machine's algorithm before the setting is changed; False
    where another bench that still runs holds the record (its algorithm is the machine's)."""
    marked = _marked(marker)
    if marked is not None and marked[0] != os.getpid() and _a_bench_runs(marked[0]):
        return False
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(f"{os.getpid()} {machine}\n")
    except OSError:
        return False   # a safety net only: the run's own clean-up still puts it back
    return True


def stop(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt   # as Ctrl-C: the bench's caller ends the run the same way for both


@contextmanager
def congestion_control(wanted: str, path: Path = SYSCTL, marker: Path | None = None) -> Iterator[dict[str, Any]]:
    """Runs the block under `wanted` where it can, and puts the machine's algorithm back after it.
    Yields a record: `machine` (the algorithm before), `in_effect` (during the block) and `how`
    (one line for the fairness table). An unknown algorithm raises CongestionError before
    anything changes; a setting the kit may not write is a warning on stderr, not an error."""
    check_name(wanted)
    marker = marker or MARKER
    put_back_what_a_killed_bench_left(path, marker)
    machine = _read(path)
    record: dict[str, Any] = {"machine": machine, "in_effect": machine, "wanted": wanted}
    if machine is None:
        record["how"] = f"unknown: {path} cannot be read"
        yield record
        return
    if wanted in (KEEP, machine):
        record["how"] = "the machine's" + (" (--congestion-control keep)" if wanted == KEEP else "")
        yield record
        return
    marked = _mark(marker, machine)
    try:
        path.write_text(wanted + "\n")
    except OSError as e:
        if marked:
            _unmark(marker)
        if e.errno == 2:   # ENOENT: the kernel has no such algorithm, and no module by that name
            raise CongestionError(f"--congestion-control {wanted}: this kernel has no such algorithm "
                                  f"(loaded: {_read(path.with_name('tcp_available_congestion_control'))})") from None
        record["how"] = f"the machine's: setting {wanted} failed ({e.strerror or e})"
        print(f"acceptloop bench: cannot set TCP congestion control {wanted} ({e.strerror or e}); "
              f"measuring under the machine's {machine}", file=sys.stderr)
        yield record
        return
    record["in_effect"] = wanted
    record["how"] = f"set by the bench for this run; the machine's is {machine}, put back after it"
    try:
        previous = signal.signal(signal.SIGTERM, stop)   # a stop runs the finally below, as Ctrl-C does
    except ValueError:   # not the main thread: signals are the main thread's to handle
        previous = None
    try:
        yield record
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        try:
            path.write_text(machine + "\n")
            if marked:
                _unmark(marker)
        except OSError as e:
            print(f"acceptloop bench: could not put TCP congestion control back to {machine} ({e.strerror or e}); "
                  f"set it with: sysctl net.ipv4.tcp_congestion_control={machine}", file=sys.stderr)
