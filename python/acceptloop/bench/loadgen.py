"""The benchmark's load generator (loadgen/, in C) from Python: `run_load`.

This is the only module that touches its cffi module (`acceptloop._loadgen`). It is the
kit's own measuring tool, apart from every port: measuring a server never loads that
server's binding.

    run_load("127.0.0.1", port, "echo", connections=16, message_size=1024, duration=2.0)

cffi releases the GIL for the whole of the C call in API mode, so a run blocks only the
calling thread.
"""
from __future__ import annotations

import os
import socket
from typing import Any

from acceptloop._loadgen import ffi, lib

# The load generator's modes and error kinds, named by the C side (loadgen/loadgen.h).
LOAD_MODES: tuple[str, ...] = tuple(ffi.string(lib.al_load_mode_name(i)).decode() for i in range(lib.AL_LOAD_MODES))
# How it drives its sockets: "epoll" (every mode) or "uring" (echo, datagram and connect only).
LOAD_IOS: tuple[str, ...] = tuple(ffi.string(lib.al_load_io_name(i)).decode() for i in range(lib.AL_LOAD_IOS))
LOAD_ERRORS: tuple[str, ...] = tuple(
    ffi.string(lib.al_load_error_name(i)).decode() for i in range(lib.AL_LOAD_ERR_KINDS)
)
# datagram mode: a request unanswered this long (milliseconds) is counted lost, errors["timeout"].
DATAGRAM_LOSS_MS: int = lib.AL_LOAD_DATAGRAM_LOSS_MS


def _number(name: str, value: Any, low: float, high: float, *, integer: bool = False,
            low_open: bool = False) -> None:
    """ValueError unless value is a number (an int if `integer`) in low..high (excluding low if `low_open`)."""
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise ValueError(f"{name}: {value!r} is not {'an integer' if integer else 'a number'}")
    inside = (low < value if low_open else low <= value) and value <= high   # NaN fails both
    if not inside:
        raise ValueError(f"{name}: {value!r} is outside {'(' if low_open else ''}{low:g}..{high:g}")


def run_load(host: str, port: int, mode: str, connections: int, message_size: int | None = None,
             warmup: float | None = None, duration: float | None = None, cpu: int = -1,
             connect_timeout: float | None = None, watch_pid: int = 0, io: str = "epoll") -> dict[str, Any]:
    """Run the C load generator once against a server and return what it measured.

    One thread, epoll, non-blocking sockets with TCP_NODELAY; closed loop: each
    connection starts its next operation when the last one is done (loadgen/loadgen.h
    says what each mode does). `mode` is one of LOAD_MODES:
    echo (message_size bytes back and forth), connect (daytime: one op = one
    whole connection), ingest (discard: write 64 KiB chunks), egress (chargen:
    read), idle (hold the connections open, send nothing), datagram (UDP
    echo: `connections` connected UDP sockets, each a message_size-byte
    request and its reply at a time, at most 65507 bytes; a reply not back
    within DATAGRAM_LOSS_MS (200 ms) is counted lost, errors["timeout"]). Arguments left at
    None take the C defaults: message_size 64, warmup 1 s, duration 5 s,
    connect_timeout 3 s. `cpu` pins the calling thread for the run (-1: not).
    `io` is how it drives the sockets, one of LOAD_IOS: "epoll" (a send or recv
    per operation, readiness from epoll_wait) or "uring" (echo, datagram and connect: one
    io_uring_enter per loop turn; echo and datagram batch the turn's sends and keep a
    multishot receive per socket, connect submits each connection as one
    chain of connect, poll for the FIN, recv and close; so the client spends
    less CPU per operation); "uring" raises
    OSError (step "io_uring") where the kernel or the build has no io_uring.

    Blocks for about warmup + duration seconds (plus connecting, at most
    connect_timeout, and closing, at most 1 s) with the GIL released, and
    returns on its own. Returns a dict of plain values; counts and rates are of
    the measured window only (MB = 10^6 bytes), errors and connections are of
    the whole run:

        mode, io (the I/O mode used), connections (the most established at
        once), ops, ops_per_s,
        bytes_sent, bytes_received, elapsed_s, mb_per_s (received for echo,
        connect and egress; sent for ingest), latency_us {p50, p90, p99,
        p999, min, max, mean} (one sample per op, within 0.8%),
        latency_samples, client_cpu_s and client_cpu_pct (the generator
        thread's own user + system CPU over the window; 100 = one CPU),
        client_instructions (the instructions it retired meanwhile, user and
        kernel; None without the CPU's counters),
        errors {kind: count} for every kind in LOAD_ERRORS, other_errno
        (the errno name of the last "other" error, "" if none), and with
        `watch_pid` the server's CPU over the window (server_cpu_s, with its
        children's), the instructions it retired meanwhile in user space and
        in the kernel (server_instructions_user, server_instructions_kernel,
        from the CPU's counters; None where the machine has none or denies
        them), and its resident bytes before connecting and at the
        window's end (server_rss_start, server_rss_end); None without it.

    Socket errors (refused, reset, ...) are results, not exceptions: a port
    nobody listens on gives errors["refused"] and zero ops. Raises ValueError
    for a bad argument, socket.gaierror when the host does not resolve, and
    OSError (errno set, `.step` naming what failed) when the run could not
    start, e.g. pinning to a CPU that is offline.
    """
    if not isinstance(host, str) or not host:
        raise ValueError(f"host: {host!r} is not a host name or address")
    _number("port", port, 1, 65535, integer=True)
    if io not in LOAD_IOS:
        raise ValueError(f"io: no such I/O mode: {io!r} (one of {', '.join(LOAD_IOS)})")
    if mode not in LOAD_MODES:
        raise ValueError(f"mode: no such mode: {mode!r} (one of {', '.join(LOAD_MODES)})")
    _number("connections", connections, 1, lib.AL_LOAD_MAX_CONNS, integer=True)
    cfg = ffi.new("struct al_load_config *")
    lib.al_load_config_defaults(cfg)
    if message_size is not None:
        _number("message_size", message_size, 1, lib.AL_LOAD_MAX_MESSAGE, integer=True)
        cfg.message_size = message_size
    if warmup is not None:
        _number("warmup", warmup, 0, lib.AL_LOAD_MAX_SECONDS)
        cfg.warmup = warmup
    if duration is not None:
        _number("duration", duration, 0, lib.AL_LOAD_MAX_SECONDS, low_open=True)
        cfg.duration = duration
    if connect_timeout is not None:
        _number("connect_timeout", connect_timeout, 0, lib.AL_LOAD_MAX_CONNECT_TIMEOUT, low_open=True)
        cfg.connect_timeout = connect_timeout
    if cpu != -1:
        _number("cpu", cpu, 0, (os.cpu_count() or 1) - 1, integer=True)
    c_host = ffi.new("char[]", host.encode())   # alive until the call returns
    cfg.host = c_host
    cfg.port = port
    cfg.mode = lib.al_load_mode_index(mode.encode())
    cfg.connections = connections
    cfg.cpu = cpu
    cfg.io = lib.al_load_io_index(io.encode())
    if watch_pid:
        _number("watch_pid", watch_pid, 1, 2**31 - 1, integer=True)
        cfg.watch_pid = watch_pid
    res = ffi.new("struct al_load_result *")
    err = ffi.new("char[]", lib.AL_LOAD_ERROR_LEN)
    if lib.al_load_run(err, len(err), cfg, res) != lib.AL_LOAD_OK:   # the GIL is released meanwhile
        step = ffi.string(res.error_step).decode()
        message = ffi.string(err).decode(errors="replace")
        if step == "config":
            raise ValueError(message)
        error = (socket.gaierror if step == "resolve" else OSError)(res.error_code, message)
        error.step = step   # type: ignore[attr-defined]
        raise error
    return {
        "mode": mode,
        "io": LOAD_IOS[res.io],
        "connections": res.connections,
        "ops": res.ops,
        "ops_per_s": res.ops_per_s,
        "bytes_sent": res.bytes_sent,
        "bytes_received": res.bytes_received,
        "elapsed_s": res.elapsed,
        "mb_per_s": res.mb_per_s,
        "latency_us": {
            "p50": res.latency_p50_us, "p90": res.latency_p90_us, "p99": res.latency_p99_us,
            "p999": res.latency_p999_us, "min": res.latency_min_us, "max": res.latency_max_us,
            "mean": res.latency_mean_us,
        },
        "latency_samples": res.latency_count,
        "client_cpu_s": res.client_cpu_s,
        "client_cpu_pct": res.client_cpu_pct,
        "client_instructions": _counted(res.client_instructions),
        "errors": {name: res.errors[i] for i, name in enumerate(LOAD_ERRORS)},
        "other_errno": ffi.string(res.other_errno).decode(),
        "server_cpu_s": res.server_cpu_s if watch_pid else None,
        "server_instructions_user": _counted(res.server_instructions_user) if watch_pid else None,
        "server_instructions_kernel": _counted(res.server_instructions_kernel) if watch_pid else None,
        "server_rss_start": res.server_rss_start if watch_pid else None,
        "server_rss_end": res.server_rss_end if watch_pid else None,
    }


def _counted(value: float) -> float | None:
    """An instruction count, or None where the CPU's counters could not be read."""
    return value if value >= 0 else None
