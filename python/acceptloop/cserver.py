"""The C core from Python: `CServer`, and `python -m acceptloop.cserver`.

This is the only module that touches the cffi module (`acceptloop._cserver`):
it turns C error codes into exceptions and keeps `ffi` objects to itself. When
the environment variable ACCEPTLOOP_CFFI_MODULE names another module built from
cext/build_ffi.py, that one is loaded instead: the tests run this module over
`_acceptloop_cserver_asan`, the core under AddressSanitizer and UBSan (`make
asan-cffi`; tests/test_cserver_asan.py).

    with CServer(service="echo", model="event", port=0) as server:
        print(server.addresses)     # [('::1', 40123), ('127.0.0.1', 40123)]
        server.start()              # the C loop runs in a thread, without the GIL
        ...
    # leaving the block stops the server gracefully and joins its thread

    python -m acceptloop.cserver --service echo --model event --host localhost --port 0

cffi releases the GIL for the whole of every C call in API mode, so the loop
thread never holds up Python; the loop learns of `stop()` through its stop
descriptor, never through a Python signal handler (those run only in the main
thread, and only when it returns to Python).
"""
from __future__ import annotations

import importlib
import os
import signal
import socket
import sys
import threading
from collections.abc import Sequence

from acceptloop import _protocol as P
from acceptloop.contract import ServerConfig, parse_args
from acceptloop.errors import fail

TYPE_CHECKING = False   # typing.TYPE_CHECKING without importing typing: a server imports this at start-up
if TYPE_CHECKING:
    from typing import Any

# The cffi module: acceptloop._cserver, or the one the environment names (a sanitized build).
CFFI_MODULE = os.environ.get("ACCEPTLOOP_CFFI_MODULE") or "acceptloop._cserver"
_cffi = importlib.import_module(CFFI_MODULE)
ffi, lib = _cffi.ffi, _cffi.lib

MODELS: tuple[str, ...] = P.MODELS   # the C core offers every model

# The signals a front end handles: the loop thread blocks them, so that they
# reach the main thread and interrupt its wait at once.
_FRONT_END_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGCHLD}


def default_config(**options: Any) -> ServerConfig:
    """A ServerConfig with the contract's defaults, overridden by `options`."""
    config = ServerConfig(
        service=P.DEFAULT_SERVICE, model=P.DEFAULT_MODEL, host=P.DEFAULT_HOST, port=P.DEFAULT_PORT,
        backlog=P.DEFAULT_BACKLOG, grace=float(P.DEFAULT_GRACE), max_conns=P.DEFAULT_MAX_CONNS,
        idle_timeout=float(P.DEFAULT_IDLE_TIMEOUT), ipv6_only=P.DEFAULT_IPV6_ONLY, daytime_epoch=None,
    )
    return config.replace(**options)


def _check(config: ServerConfig) -> None:
    """The contract's bounds (protocol.toml), so that a bad keyword fails before any C runs."""
    for name, kind, _default, low, high, _choices, _help in P.OPTIONS:
        value = getattr(config, name.replace("-", "_"))
        if kind in ("int", "seconds") and not low <= value <= high:
            raise ValueError(f"{name}: {value} is outside {low:g}..{high:g}")
        if kind == "string" and high is not None and len(os.fsencode(value)) > high:
            raise ValueError(f"{name}: longer than {high:g} bytes")
    if config.service not in P.SERVICES:
        raise ValueError(f"service: no such service: {config.service!r}")
    if config.model not in MODELS:
        raise ValueError(f"model: no such model: {config.model!r}")


def _c_config(config: ServerConfig, binding: Any) -> tuple[Any, Any]:
    """The `struct al_config` for `config`, and the host's C string it points at (alive until
    al_server_new has copied it)."""
    cfg = ffi.new("struct al_config *")
    lib.al_config_defaults(cfg)
    host = ffi.new("char[]", config.host.encode())
    cfg.service = lib.al_service_index(config.service.encode())
    cfg.model = lib.al_model_index(config.model.encode())
    cfg.host = host
    cfg.port = config.port
    cfg.backlog = config.backlog
    cfg.grace = config.grace
    cfg.max_conns = config.max_conns
    cfg.idle_timeout = config.idle_timeout
    cfg.ipv6_only = int(config.ipv6_only)
    cfg.transport = lib.al_transport_index(config.transport.encode())
    cfg.has_daytime_epoch = int(config.daytime_epoch is not None)
    cfg.daytime_epoch = config.daytime_epoch or 0
    if binding is not None:
        cfg.handler = binding.struct
    return cfg, host


class CServer:
    """One C server: listening from construction, serving in a thread after `start()`.

    Raises OSError (socket.gaierror for the step "resolve") when a start-up
    step fails, with `.errno` set and `.step` naming the step; its message is
    the one-line error, e.g. "bind 127.0.0.1:7: Permission denied (EACCES)".
    Nothing stays open after a failed constructor.

    With `handler` (an acceptloop.handlers.Handler), that Python object replaces the
    service's C code, called back from the C loop (acceptloop.pyhandler); every model
    but fork (ValueError).
    """

    def __init__(self, config: ServerConfig | None = None, *, handler: Any = None, **options: Any) -> None:
        # _srv is read by request_stop() and wake() from any thread and from signal
        # handlers, so close() takes it away (sets it to NULL) under this lock before it
        # frees it, and they call C only under the same lock: each either sees NULL or
        # finishes its call before the free begins. An RLock, because a Python signal
        # handler runs in the main thread between two bytecodes, possibly while that very
        # thread holds the lock (inside request_stop(), wake(), close() or start()); a
        # plain Lock would deadlock there. Letting the handler in is safe: the lock is held
        # only around a C call that has returned by then (handlers never run inside C),
        # around the exchange in close(), or around _claim_run's flag, and until that
        # exchange has completed the server is not freed (the free runs after it, outside
        # the lock), so the handler sees either a live server or NULL. The lock is never
        # held while waiting, so another thread's handler-side wait for it is brief.
        self._lock = threading.RLock()
        self._srv = ffi.NULL
        self._thread: threading.Thread | None = None
        # Set by the loop thread itself once al_server_run has returned. Thread.join and
        # is_alive are not to be trusted here: a KeyboardInterrupt landing inside join() can
        # leave a still-running thread marked as stopped (CPython's bpo-45274 handling), and
        # freeing the C server under a running loop corrupts the heap.
        self._done = threading.Event()
        self._run_claimed = False   # see _claim_run
        self._run_error: str | None = None
        self.config = default_config(**options) if config is None else config.replace(**options)
        _check(self.config)
        self._binding = _bind(handler, self.config.model)   # alive as long as the server
        cfg, host = _c_config(self.config, self._binding)
        srv = lib.al_server_new(cfg)
        del host            # al_server_new copied it
        if srv == ffi.NULL:
            code = ffi.errno
            # The config is checked already: what is left to fail is making the stop and
            # wake-up pipes (EMFILE at a low descriptor limit) or memory; the same line as C's.
            raise OSError(code, f"pipe control: {_strerror(code)}")
        self._srv = srv
        err = ffi.new("char[]", lib.AL_ERROR_LEN)
        if lib.al_server_open(srv, err, len(err)) != lib.AL_OK:
            code = lib.al_server_error_code(srv)
            step = ffi.string(lib.al_server_error_step(srv)).decode()
            message = ffi.string(err).decode(errors="replace")
            self.close()
            error = (socket.gaierror if step == "resolve" else OSError)(code, message)
            error.step = step   # type: ignore[attr-defined]
            raise error
        try:
            self.addresses: list[tuple[str, int]] = [
                self._address(i) for i in range(lib.al_server_listener_count(srv))
            ]
        except BaseException:
            self.close()
            raise

    def _address(self, i: int) -> tuple[str, int]:
        buf = ffi.new("char[]", lib.AL_ADDRESS_LEN)
        port = ffi.new("int *")
        if lib.al_server_listener_address(self._srv, i, buf, len(buf), port) != lib.AL_OK:
            code = ffi.errno
            raise OSError(code, f"getsockname: {_strerror(code)}")
        return ffi.string(buf).decode(), port[0]

    def start(self) -> None:
        """Run the loop in a background thread and return None at once.

        Raises RuntimeError when the server is closed or was started already, and
        whatever Thread.start() raised (RuntimeError: can't start new thread) when
        the thread could not be started; the server is then left for close(), which
        returns at once.
        """
        if self._srv == ffi.NULL:
            raise RuntimeError("the server is closed")
        if self._thread is not None:
            raise RuntimeError("the server was started already")
        self._thread = threading.Thread(target=self._run, name="acceptloop-cserver", daemon=True)
        try:
            self._thread.start()
        except BaseException:
            # A loop that never begins never sets _done, and close() would wait for it
            # forever: give the run up, so that it never begins, and say it is over. If the
            # thread claimed it first (the error came after it had started, e.g. a
            # KeyboardInterrupt while Thread.start waited for it), the loop sets _done itself.
            if self._claim_run():
                self._done.set()
            raise

    def _claim_run(self) -> bool:
        """True for the first caller only: the loop thread about to run al_server_run,
        or start() giving the run up after Thread.start() failed."""
        with self._lock:
            claimed, self._run_claimed = self._run_claimed, True
        return not claimed

    def _run(self) -> None:
        if not self._claim_run():
            return   # start() gave the run up and set _done
        # Threads the loop creates and children it forks inherit this mask; a
        # forked child clears it again before it serves.
        # cffi step: the interpreter lock
        signal.pthread_sigmask(signal.SIG_BLOCK, _FRONT_END_SIGNALS)
        err = ffi.new("char[]", lib.AL_ERROR_LEN)
        try:
            if lib.al_server_run(self._srv, err, len(err)) != lib.AL_OK:   # the GIL is released meanwhile
                self._run_error = ffi.string(err).decode(errors="replace")
        finally:
            self._done.set()
        # end cffi step

    def request_stop(self) -> None:
        """Begin a graceful stop and return None at once; does nothing after close().
        Safe from any thread and in a signal handler."""
        with self._lock:   # close() cannot free the server meanwhile (see __init__)
            if self._srv != ffi.NULL:
                lib.al_server_stop(self._srv)

    def wake(self) -> None:
        """Have the loop reap exited children now (fork model; for a SIGCHLD handler);
        returns None, and does nothing after close()."""
        with self._lock:
            if self._srv != ffi.NULL:
                lib.al_server_wake(self._srv)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the loop to end; True once it has (or never ran)."""
        if self._thread is None:
            return True
        return self._done.wait(timeout)

    def stop(self, timeout: float | None = None) -> None:
        """Stop gracefully: refuse new connections, give those in progress --grace
        seconds, and wait for the loop to end. An idle server ends at once."""
        self.request_stop()
        self.wait(timeout)

    def serve_forever(self) -> None:
        """Start, then block until the server stops. Ctrl-C (KeyboardInterrupt)
        stops it gracefully before the exception goes on. Raises RuntimeError
        when the loop failed."""
        if self._thread is None:
            self.start()
        try:
            # Short joins keep the main thread responsive to signals.
            while not self.wait(0.1):
                pass
        except KeyboardInterrupt:
            self.stop()
            raise
        if self._run_error is not None:
            raise RuntimeError(self._run_error)

    @property
    def error(self) -> str | None:
        """The loop's one-line error after it failed, else None."""
        return self._run_error

    def close(self) -> None:
        """Stop, wait for the loop to end, and free the C server; returns None.
        Idempotent, and safe against request_stop() and wake() from other threads and
        signal handlers: they do nothing once close() has taken the server away."""
        if self._srv == ffi.NULL:
            return
        self.stop()
        if self._thread is not None and not self._done.is_set():
            return   # never free memory a running loop still uses
        with self._lock:   # taken away first, so nobody can reach it once the free begins
            srv, self._srv = self._srv, ffi.NULL
        if srv != ffi.NULL:   # NULL: another thread's close() took it
            lib.al_server_free(srv)

    def __enter__(self) -> CServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        # A server dropped without close() is freed when its loop never started or has
        # ended (a running loop's thread holds the server, so it cannot be dropped then);
        # close() then returns at once. Anything else is left allocated, never freed under a loop.
        if getattr(self, "_srv", ffi.NULL) == ffi.NULL:
            return
        if getattr(self, "_thread", None) is None or self._done.is_set():
            self.close()


def _strerror(code: int) -> str:
    import errno
    import os
    return f"{os.strerror(code)} ({errno.errorcode.get(code, f'errno {code}')})"


def _bind(handler: Any, model: str) -> Any:
    """The handler API's binding for a Python handler (acceptloop.pyhandler), or None."""
    if handler is None:
        return None
    from acceptloop import pyhandler
    if model not in pyhandler.MODELS:
        raise ValueError(f"model: {model!r} cannot call Python handlers (see acceptloop.pyhandler)")
    if pyhandler._ffi is None:
        pyhandler._register(ffi, lib)
    return pyhandler.Binding(handler)


def main(argv: Sequence[str] | None = None, prog: str = "python -m acceptloop.cserver",
         models: Sequence[str] = MODELS, handler_for: Any = None) -> int:
    """Run one C server until SIGTERM/SIGINT; return the exit code (0, 1 or 2: see protocol.toml).
    With `handler_for` (config -> handler) the service is that Python handler (acceptloop.pyhandler)."""
    config = parse_args(argv, prog=prog, models=models)
    try:
        server = CServer(config, handler=handler_for(config) if handler_for is not None else None)
    except OSError as e:
        return fail(e.strerror or str(e))
    with server:
        # The previous handlers are back before the server is closed (the finally runs
        # before __exit__), so that no late signal reaches a freed server.
        previous: dict[int, Any] = {}
        try:
            # cffi step: stop the loop
            previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, lambda signum, frame: server.request_stop())
            previous[signal.SIGINT] = signal.signal(signal.SIGINT, lambda signum, frame: server.request_stop())
            # end cffi step
            if config.model == "fork":
                previous[signal.SIGCHLD] = signal.signal(signal.SIGCHLD, lambda signum, frame: server.wake())
            for address, port in server.addresses:
                print(P.ANNOUNCE_LISTENING % (address, port))
            print(P.ANNOUNCE_READY, flush=True)
            try:
                server.serve_forever()
            except RuntimeError as e:
                return fail(f"{config.model} loop: {e}")
        finally:
            for signum, handler in previous.items():   # None: a handler not set from Python
                signal.signal(signum, signal.SIG_DFL if handler is None else handler)
    return P.EXIT_OK


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # noqa: BLE001 - one line, never a traceback
        sys.exit(fail(f"cserver: {e!r}"))
