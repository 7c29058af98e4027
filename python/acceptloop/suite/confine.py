"""Limits the scenarios put on a running server: its descriptors and the processes (and threads) it
may start, so that accept, fork and pthread_create fail the way they fail on a crowded machine.

Descriptors: RLIMIT_NOFILE, set on the running server with prlimit(2).

Processes: RLIMIT_NPROC does not bind root (the kernel exempts the initial user namespace's root),
so as root the server is moved into a cgroup of the pids controller (v1 or v2) whose pids.max
allows only a few more tasks than it has; any other user gets RLIMIT_NPROC, counted over every task
of that user. Where neither can be set, `ProcessLimit` raises LimitUnavailable with the reason.
"""
from __future__ import annotations

import os
import resource
from pathlib import Path


class LimitUnavailable(Exception):
    """This machine does not let the kit put that limit on a server; the message says why."""


def limit_descriptors(pid: int, limit: int) -> None:
    """Lower the soft RLIMIT_NOFILE of the running process `pid` to `limit`."""
    _soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (limit, hard))


def descriptor_limit_preexec(limit: int):
    """A preexec_fn that starts a server with at most `limit` descriptors."""
    def set_limit() -> None:
        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    return set_limit


def _pids_cgroup_root() -> tuple[Path, str] | None:
    """(the directory to make a child cgroup in, "v1" or "v2"), or None without a pids controller."""
    v1 = Path("/sys/fs/cgroup/pids")
    if (v1 / "cgroup.procs").exists():
        return v1, "v1"
    unified = Path("/sys/fs/cgroup")
    controllers = unified / "cgroup.controllers"
    if controllers.exists() and "pids" in controllers.read_text().split():
        return unified, "v2"
    return None


def _tasks_of_user(uid: int) -> int:
    """How many tasks (threads included, as RLIMIT_NPROC counts them) `uid` runs now."""
    count = 0
    for status in Path("/proc").glob("[0-9]*/task/[0-9]*/status"):
        try:
            for line in status.read_text().splitlines():
                if line.startswith("Uid:"):
                    count += int(line.split()[1]) == uid
                    break
        except (OSError, ValueError, IndexError):
            continue
    return count


def _tasks_of(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return 0


class ProcessLimit:
    """While entered, the server `pid` (and what it forks) may run at most `extra` tasks beyond the
    ones it has: a fork or a thread more fails with EAGAIN.

        with ProcessLimit(server.pid, extra=2) as limit:
            ...            # limit.how says which mechanism holds it
    """

    def __init__(self, pid: int, extra: int) -> None:
        self.pid = pid
        self.extra = extra
        self.how = ""
        self._group: Path | None = None
        self._home: Path | None = None
        self._saved_nproc: tuple[int, int] | None = None

    def __enter__(self) -> "ProcessLimit":
        if os.geteuid() != 0:
            uid = os.stat(f"/proc/{self.pid}").st_uid
            limit = _tasks_of_user(uid) + self.extra
            self._saved_nproc = resource.prlimit(self.pid, resource.RLIMIT_NPROC)
            resource.prlimit(self.pid, resource.RLIMIT_NPROC, (limit, self._saved_nproc[1]))
            self.how = f"RLIMIT_NPROC {limit} (every task of uid {uid})"
            return self
        found = _pids_cgroup_root()
        if found is None:
            raise LimitUnavailable("running as root, RLIMIT_NPROC does not apply, and this kernel has no "
                                   "pids cgroup controller to limit the server's processes with")
        root, version = found
        if version == "v2":
            try:
                (root / "cgroup.subtree_control").write_text("+pids")
            except OSError as e:
                raise LimitUnavailable(f"cannot enable the pids controller under {root}: {e.strerror}") from None
        group = root / f"acceptloop-{os.getpid()}-{self.pid}"
        try:
            group.mkdir()
        except OSError as e:
            raise LimitUnavailable(f"cannot make the cgroup {group}: {e.strerror}") from None
        self._group, self._home = group, root
        try:
            (group / "cgroup.procs").write_text(str(self.pid))
            limit = _tasks_of(self.pid) + self.extra
            (group / "pids.max").write_text(str(limit))
        except OSError as e:
            self.__exit__()
            raise LimitUnavailable(f"cannot limit the server in {group}: {e.strerror}") from None
        self.how = f"pids cgroup ({version}) {group}: pids.max {limit}"
        return self

    def __exit__(self, *exc: object) -> None:
        if self._saved_nproc is not None:
            try:
                resource.prlimit(self.pid, resource.RLIMIT_NPROC, self._saved_nproc)
            except (ProcessLookupError, OSError):
                pass
            self._saved_nproc = None
        if self._group is None or self._home is None:
            return
        # Whatever is still in the group goes back where it came from; then the group can go.
        try:
            for task in (self._group / "cgroup.procs").read_text().split():
                try:
                    (self._home / "cgroup.procs").write_text(task)
                except OSError:
                    pass   # it exited meanwhile
            self._group.rmdir()
        except OSError:
            pass
        self._group = None
