"""Start-up probes: whether a model can run on this machine at all.

A registry entry's `probe` names, per model, the start-up step whose failure means that the
machine lacks what the model needs rather than that the server is wrong: `probe = { uring =
"io_uring_setup" }` for the C core, whose uring model cannot run where io_uring_setup fails
(a kernel without io_uring, kernel.io_uring_disabled, a seccomp filter). Before the first cell
of such a model the kit starts the server once; when it exits 1 with one stderr line
`STEP WHERE: TEXT (ENAME)` for that step and an ENAME of UNAVAILABLE, every cell of the model
is MISSING with that line as the reason, never FAILED. Any other outcome (READY, another
failure) lets the cells run, and they say what is wrong."""
from __future__ import annotations

import re

from acceptloop.suite.process import LaunchError, ServerProcess, ServerStartError
from acceptloop.suite.registry import Implementation

# What a kernel or a sandbox answers when it does not offer a facility at all.
UNAVAILABLE = ("ENOSYS", "EPERM", "EACCES", "EOPNOTSUPP")


def unavailable_line(step: str, exit_code: int | None, stderr: str) -> str | None:
    """The server's one line when it says that `step` is unavailable here, or None."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    if exit_code != 1 or len(lines) != 1:
        return None
    names = "|".join(UNAVAILABLE)
    return lines[0] if re.fullmatch(rf"{re.escape(step)} \S+: .+ \(({names})\)", lines[0]) else None


def model_unavailable(impl: Implementation, model: str, env: dict[str, str] | None = None) -> str | None:
    """Why `model` of `impl` cannot run on this machine (its probe's line), or None."""
    step = dict(impl.probes).get(model)
    if step is None or not impl.launchable:
        return None
    server = ServerProcess(impl, impl.services[0], model, env=env)
    try:
        server.start()
    except ServerStartError as e:
        line = unavailable_line(step, e.exit_code, e.stderr)
        return None if line is None else f"{impl.name} {model}: unavailable on this machine: {line}"
    except LaunchError:
        return None
    finally:
        server.close()
    return None
