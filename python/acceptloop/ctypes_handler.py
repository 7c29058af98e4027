"""Python handlers over the C loop through the standard library's ctypes: `c-ctypes-handler`.

The same handlers as acceptloop.pyhandler (acceptloop.handlers), the same C core,
bound the other way: no build step on the Python side, only `ctypes.CDLL` over
build/libacceptloop.so (`make lib`, from the same sources as every other build),
the structures spelled again in ctypes (they must match cext/acceptloop.h), and
the callbacks as `CFUNCTYPE` objects.

The GIL: a call through a CDLL releases it for the call, so `al_server_run`
runs without it; a CFUNCTYPE callback takes it back itself (PyGILState_Ensure)
for the call only. Signals reach the main thread, whose handler calls
`al_server_stop` (async-signal-safe, a write to the stop pipe).

    python -m acceptloop.ctypes_handler --service echo --model event --host localhost --port 0

Not fork, for the reason acceptloop.pyhandler gives.
"""
from __future__ import annotations

import ctypes
import os
import signal
import socket
import sys
import threading
from collections.abc import Sequence

from acceptloop import _protocol as P
from acceptloop.contract import ServerConfig, describe_error, fail, parse_args
from acceptloop.handlers import Handler, handler_failed, handler_for
from acceptloop.paths import BUILD

TYPE_CHECKING = False   # typing.TYPE_CHECKING without importing typing: a server imports this at start-up
if TYPE_CHECKING:
    from typing import Any

LIBRARY = os.environ.get("ACCEPTLOOP_LIBRARY") or str(BUILD / "libacceptloop.so")
MODELS: tuple[str, ...] = tuple(m for m in P.MODELS if m not in ("fork", "uring"))
_FRONT_END_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGCHLD}

AL_OK, AL_ERR = 0, -1
AL_ERROR_LEN, AL_ADDRESS_LEN = 1280, 64   # acceptloop.h's, which ctypes cannot read

# The callbacks' C types (acceptloop.h, struct al_handler). A pointer arrives as an int.
ON_EVENT = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
ON_DATA = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p)
ON_CLOSE = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)


class AlHandler(ctypes.Structure):
    _fields_ = [("produces", ctypes.c_int), ("on_open", ON_EVENT), ("on_data", ON_DATA),
                ("on_eof", ON_EVENT), ("on_writable", ON_EVENT), ("on_close", ON_CLOSE),
                ("data", ctypes.c_void_p)]


class AlConfig(ctypes.Structure):
    _fields_ = [("service", ctypes.c_int), ("model", ctypes.c_int), ("host", ctypes.c_char_p),
                ("port", ctypes.c_int), ("backlog", ctypes.c_int), ("grace", ctypes.c_double),
                ("max_conns", ctypes.c_int), ("idle_timeout", ctypes.c_double), ("ipv6_only", ctypes.c_int),
                ("has_daytime_epoch", ctypes.c_int), ("daytime_epoch", ctypes.c_longlong),
                ("handler", ctypes.POINTER(AlHandler)), ("transport", ctypes.c_int)]


# What this module calls, and how: ctypes knows nothing of the header.
SIGNATURES: dict[str, tuple[Any, list[Any]]] = {
    "al_config_defaults": (None, [ctypes.POINTER(AlConfig)]),
    "al_service_index": (ctypes.c_int, [ctypes.c_char_p]),
    "al_model_index": (ctypes.c_int, [ctypes.c_char_p]),
    "al_server_new": (ctypes.c_void_p, [ctypes.POINTER(AlConfig)]),
    "al_server_open": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]),
    "al_server_error_code": (ctypes.c_int, [ctypes.c_void_p]),
    "al_server_error_step": (ctypes.c_char_p, [ctypes.c_void_p]),
    "al_server_listener_count": (ctypes.c_int, [ctypes.c_void_p]),
    "al_server_listener_address": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p,
                                                  ctypes.c_size_t, ctypes.POINTER(ctypes.c_int)]),
    "al_server_run": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]),
    "al_server_stop": (None, [ctypes.c_void_p]),
    "al_server_free": (None, [ctypes.c_void_p]),
    "al_handler_write": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]),
    "al_handler_offer": (ctypes.c_long, [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]),
    "al_handler_end": (None, [ctypes.c_void_p]),
    "al_handler_peer": (ctypes.c_char_p, [ctypes.c_void_p]),
}


def load(path: str = LIBRARY) -> ctypes.CDLL:
    """The core as a shared library, with the signatures this module calls."""
    # ctypes step: load the core
    lib = ctypes.CDLL(path, use_errno=True)   # dlopen; every call through it releases the GIL
    for name, (restype, argtypes) in SIGNATURES.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, argtypes
    return lib
    # end ctypes step


_lib: ctypes.CDLL | None = None


def library() -> ctypes.CDLL:
    global _lib
    if _lib is None:
        _lib = load()
    return _lib


class CtypesConn:
    """One connection's Python side (acceptloop.handlers.Conn), over the C pointer (an int)."""

    __slots__ = ("_ptr", "_lib", "peer", "state")

    def __init__(self, lib: ctypes.CDLL, ptr: int, peer: str) -> None:
        self._lib = lib
        self._ptr: int | None = ptr
        self.peer = peer
        self.state: Any = None

    def write(self, data: bytes) -> bool:
        ptr = self._ptr
        if ptr is None:
            return False
        if data.__class__ is not bytes:
            data = bytes(data)
        return self._lib.al_handler_write(ptr, data, len(data)) == AL_OK

    def offer(self, data: bytes, start: int, length: int) -> int:
        if self._ptr is None:
            return -1
        length = max(0, min(length, len(data) - start))
        address = ctypes.cast(data, ctypes.c_void_p).value   # the bytes object's own buffer: no copy
        return self._lib.al_handler_offer(self._ptr, address + start, length)

    def end(self) -> None:
        if self._ptr is not None:
            self._lib.al_handler_end(self._ptr)


class Binding:
    """A Python handler as a `struct al_handler` of CFUNCTYPE callbacks. The callback objects
    must outlive the server (ctypes frees their trampolines with them): this object holds them."""

    def __init__(self, lib: ctypes.CDLL, handler: Handler) -> None:
        self.lib = lib
        self.handler = handler
        self.conns: dict[int, CtypesConn] = {}
        # ctypes step: pass a callback
        self.struct = AlHandler(int(bool(handler.produces)), ON_EVENT(self._on_open), ON_DATA(self._on_data),
                                ON_EVENT(self._on_eof), ON_EVENT(self._on_writable), ON_CLOSE(self._on_close),
                                None)

    def _on_data(self, conn: int, buf: int, length: int, _data: int) -> int:
        c = self.conns[conn]
        try:
            self.handler.on_data(c, ctypes.string_at(buf, length))
        except BaseException as e:  # noqa: BLE001
            return self._fail(c, e)
        return AL_OK
    # end ctypes step

    def _fail(self, conn: CtypesConn, error: BaseException) -> int:
        handler_failed(self.handler.name, conn.peer, error)
        return AL_ERR

    def _on_open(self, conn: int, _data: int) -> int:
        c = self.conns[conn] = CtypesConn(self.lib, conn, self.lib.al_handler_peer(conn).decode())
        try:
            self.handler.on_open(c)
        except BaseException as e:  # noqa: BLE001 - this connection's problem only
            return self._fail(c, e)
        return AL_OK

    def _on_eof(self, conn: int, _data: int) -> int:
        c = self.conns[conn]
        try:
            self.handler.on_eof(c)
        except BaseException as e:  # noqa: BLE001
            return self._fail(c, e)
        return AL_OK

    def _on_writable(self, conn: int, _data: int) -> int:
        c = self.conns[conn]
        try:
            self.handler.on_writable(c)
        except BaseException as e:  # noqa: BLE001
            return self._fail(c, e)
        return AL_OK

    def _on_close(self, conn: int, _data: int) -> None:
        c = self.conns.pop(conn, None)
        if c is None:
            return
        c._ptr = None
        try:
            self.handler.on_close(c)
        except BaseException as e:  # noqa: BLE001
            handler_failed(self.handler.name, c.peer, e)


class CtypesServer:
    """One C server with a Python handler, through ctypes: listening from construction,
    serving in a thread after start(); stop() from any thread or a signal handler."""

    def __init__(self, config: ServerConfig, handler: Handler) -> None:
        if config.model not in MODELS:
            raise ValueError(f"model: {config.model!r} cannot call Python handlers (see acceptloop.pyhandler)")
        lib = self.lib = library()
        self.config = config
        self.binding = Binding(lib, handler)
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.RLock()   # as CServer's: stop() never reaches a freed server
        self.error: str | None = None
        cfg = AlConfig()
        lib.al_config_defaults(ctypes.byref(cfg))
        cfg.service = lib.al_service_index(config.service.encode())
        cfg.model = lib.al_model_index(config.model.encode())
        cfg.host = config.host.encode()   # al_server_new copies it
        cfg.port, cfg.backlog, cfg.grace = config.port, config.backlog, config.grace
        cfg.max_conns, cfg.idle_timeout, cfg.ipv6_only = config.max_conns, config.idle_timeout, int(config.ipv6_only)
        cfg.has_daytime_epoch = int(config.daytime_epoch is not None)
        cfg.daytime_epoch = config.daytime_epoch or 0
        cfg.handler = ctypes.pointer(self.binding.struct)
        self._srv = lib.al_server_new(ctypes.byref(cfg))
        if not self._srv:
            code = ctypes.get_errno()
            raise OSError(code, f"pipe control: {describe_error(OSError(code, os.strerror(code)))}")
        err = ctypes.create_string_buffer(AL_ERROR_LEN)
        if lib.al_server_open(self._srv, err, len(err)) != AL_OK:
            code = lib.al_server_error_code(self._srv)
            step = lib.al_server_error_step(self._srv).decode()
            self.close()
            raise (socket.gaierror if step == "resolve" else OSError)(code, err.value.decode(errors="replace"))
        self.addresses = [self._address(i) for i in range(lib.al_server_listener_count(self._srv))]

    def _address(self, i: int) -> tuple[str, int]:
        buf, port = ctypes.create_string_buffer(AL_ADDRESS_LEN), ctypes.c_int()
        if self.lib.al_server_listener_address(self._srv, i, buf, len(buf), ctypes.byref(port)) != AL_OK:
            code = ctypes.get_errno()
            raise OSError(code, f"getsockname: {describe_error(OSError(code, os.strerror(code)))}")
        return buf.value.decode(), port.value

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="acceptloop-ctypes", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        # ctypes step: the interpreter lock
        signal.pthread_sigmask(signal.SIG_BLOCK, _FRONT_END_SIGNALS)   # signals go to the main thread
        err = ctypes.create_string_buffer(AL_ERROR_LEN)
        try:
            if self.lib.al_server_run(self._srv, err, len(err)) != AL_OK:   # CDLL: without the GIL
                self.error = err.value.decode(errors="replace")
        finally:
            self._done.set()
        # end ctypes step

    def request_stop(self) -> None:
        with self._lock:
            if self._srv:
                self.lib.al_server_stop(self._srv)

    def wait(self, timeout: float | None = None) -> bool:
        return self._thread is None or self._done.wait(timeout)
    
    def close(self) -> None:
        """Stop, wait for the loop, free the server; idempotent."""
        self.request_stop()
        if not self.wait():
            return
        with self._lock:
            srv, self._srv = self._srv, None
        if srv:
            self.lib.al_server_free(srv)

    def __enter__(self) -> CtypesServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Run one server until SIGTERM/SIGINT; return the exit code (0, 1 or 2: see protocol.toml)."""
    config = parse_args(argv, prog="python -m acceptloop.ctypes_handler", models=MODELS)
    try:
        server = CtypesServer(config, handler_for(config))
    except OSError as e:
        return fail(e.strerror or str(e))
    with server:
        previous: dict[int, Any] = {}
        try:
            # ctypes step: stop the loop
            for signum in (signal.SIGTERM, signal.SIGINT):
                previous[signum] = signal.signal(signum, lambda signum, frame: server.request_stop())
            # end ctypes step
            for address, port in server.addresses:
                print(P.ANNOUNCE_LISTENING % (address, port))
            print(P.ANNOUNCE_READY, flush=True)
            server.start()
            while not server.wait(0.1):   # short waits: the main thread stays free for signals
                pass
            if server.error is not None:
                return fail(f"{config.model} loop: {server.error}")
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, signal.SIG_DFL if handler is None else handler)
    return P.EXIT_OK


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # noqa: BLE001 - one line, never a traceback
        sys.exit(fail(f"ctypes_handler: {e!r}"))
