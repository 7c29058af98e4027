"""Where results came from: date, commit, machine and tool versions, and the command that made them."""
from __future__ import annotations

import os
import platform
import shlex
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from typing import Any

from acceptloop.paths import ROOT


def _run(argv: list[str]) -> str | None:
    if shutil.which(argv[0]) is None:
        return None
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, cwd=ROOT)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def collect(command: list[str] | None = None) -> dict[str, Any]:
    """Everything a reader needs to know where a result came from."""
    import cffi
    import jinja2

    commit = _run(["git", "rev-parse", "HEAD"])
    dirty = _run(["git", "status", "--porcelain", "--untracked-files=no"])
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "commit": (commit or "unknown") + (" (with uncommitted changes)" if dirty else ""),
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "php": _run(["php", "-r", "echo PHP_VERSION;"]),
        "gcc": _run(["gcc", "-dumpfullversion"]),
        "cffi": cffi.__version__,
        "jinja2": jinja2.__version__,
        "command": shlex.join(command if command is not None else ["acceptloop", *sys.argv[1:]]),
    }
