"""The Python reference server: the accept loop in pure Python sockets, one step per function.

    python -m acceptloop.server --service echo --model event --host localhost --port 0
"""
from __future__ import annotations

from typing import Callable, Sequence

from acceptloop import _protocol as P
from acceptloop.contract import ServerConfig, SetupError, describe_error, fail, parse_args
from acceptloop.server.control import Control
from acceptloop.server.models import run_event, run_fork, run_iterative, run_threads
from acceptloop.server.net import announce, open_listeners

MODELS: dict[str, Callable[..., None]] = {
    "iterative": run_iterative, "fork": run_fork, "threads": run_threads, "event": run_event,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run one server until SIGTERM/SIGINT; return the exit code (0, 1 or 2: see protocol.toml)."""
    config: ServerConfig = parse_args(argv, prog="python -m acceptloop.server", models=tuple(MODELS))
    try:
        control = Control()
        control.install_signal_handlers(watch_children=config.model == "fork")
        listeners = open_listeners(config)
    except SetupError as e:
        return fail(str(e))
    announce(listeners)
    try:
        MODELS[config.model](listeners, config, control)
    except OSError as e:
        return fail(f"{config.model} loop: {describe_error(e)}")
    except Exception as e:  # noqa: BLE001 - one line, never a traceback
        return fail(f"{config.model} loop: {e!r}")
    return P.EXIT_OK
