"""The Python reference server: the accept loop in pure Python sockets, one step per function.

    python -m acceptloop.server --service echo --model event --host localhost --port 0

    contract.py        (acceptloop/) the options: parse_args, ServerConfig
    errors.py          (acceptloop/) the one-line errors: SetupError, describe_error, log, fail
    control.py         the stop and wake-up descriptors: Control
    net.py             resolve, open_listeners, announce, accept_client, reject, AcceptPause
    connection.py      one connection's state machine: Connection, Phase
    services.py        the five services and the protocol's helpers
    serve.py           what the models share: wait_for_clients, close_listeners,
                       serve_connection, and the per-connection models' skeleton
                       (PerConnectionModel.accept_loop, its hook hand_off)
    loop_iterative.py  run_iterative      loop_fork.py     run_fork
    loop_threads.py    run_threads        loop_event.py    run_event (EventLoop)
    datagram.py        --transport udp: open_datagram_sockets, run_datagram_iterative,
                       run_datagram_event (recvfrom, then sendto the sender)
    workers.py         serve_workers: --workers N > 1, N event-loop processes on one port
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

from acceptloop import _protocol as P
from acceptloop.contract import ServerConfig, parse_args
from acceptloop.errors import SetupError, describe_error, fail
from acceptloop.server.control import Control
from acceptloop.server.net import announce, open_listeners

MODELS = ("iterative", "fork", "threads", "event")


def model_loop(model: str, udp: bool) -> Callable[[list, ServerConfig, Control], None]:
    """The chosen model's loop, imported once it is chosen: a server runs one model, and most of
    a Python server's start-up is its imports (each loop module brings its own: threading,
    selectors, the datagram services)."""
    if udp:
        from acceptloop.server.datagram import DATAGRAM_MODELS
        return DATAGRAM_MODELS[model]
    if model == "iterative":
        from acceptloop.server.loop_iterative import run_iterative
        return run_iterative
    if model == "fork":
        from acceptloop.server.loop_fork import run_fork
        return run_fork
    if model == "threads":
        from acceptloop.server.loop_threads import run_threads
        return run_threads
    from acceptloop.server.loop_event import run_event
    return run_event


def main(argv: Sequence[str] | None = None) -> int:
    """Run one server until SIGTERM/SIGINT; return the exit code (0, 1 or 2: see protocol.toml)."""
    config: ServerConfig = parse_args(argv, prog="python -m acceptloop.server", models=MODELS,
                                      several_workers=True)
    if config.workers > 1:
        from acceptloop.server.workers import serve_workers
        return serve_workers(config)
    udp = config.transport == "udp"
    # The model's module is imported before the first descriptor is taken: an import opens files,
    # and a server started with few descriptors must fail at a step, in one line, not in an import.
    run = model_loop(config.model, udp)
    open_sockets = open_listeners
    if udp:
        from acceptloop.server.datagram import open_datagram_sockets as open_sockets
    try:
        control = Control(config.grace)
        control.install_signal_handlers(watch_children=config.model == "fork")
        listeners = open_sockets(config)
    except SetupError as e:
        return fail(str(e))
    announce(listeners)
    try:
        run(listeners, config, control)
    except OSError as e:
        return fail(f"{config.model} loop: {describe_error(e)}")
    except Exception as e:  # noqa: BLE001 - one line, never a traceback
        return fail(f"{config.model} loop: {e!r}")
    return P.EXIT_OK
