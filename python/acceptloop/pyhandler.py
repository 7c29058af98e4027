"""Python handlers over the C loop through cffi's API mode: `c-pyhandler`.

The C loop runs without the GIL (cffi releases it for the whole of
`al_server_run`); when a connection has news, the core calls one of the
`extern "Python"` functions that cext/build_ffi.py declares, and cffi takes the
GIL for that call only (PyGILState_Ensure), runs the function below, and
releases it when it returns. They find the server's Binding through the handler
struct's `data` (an ffi.new_handle) and the connection's Python side by the
C pointer, and call the handler (acceptloop.handlers).

    with CServer(service="echo", model="event", port=0, handler=EchoHandler()) as server:
        server.start()

    python -m acceptloop.pyhandler --service echo --model event --host localhost --port 0

The fork model is not offered: the core forks from C, outside os.fork(), so the
child never runs CPython's after-fork repair, and a lock another thread held at
that instant (the GIL, stderr's buffer) stays held in the child for ever.
"""
from __future__ import annotations

import sys
from collections.abc import Sequence

from acceptloop import _protocol as P
from acceptloop.handlers import Handler, handler_failed, handler_for

TYPE_CHECKING = False   # typing.TYPE_CHECKING without importing typing: a server imports this at start-up
if TYPE_CHECKING:
    from typing import Any

# Every model but fork (see above) and uring (the registry does not list it for the handler hosts).
MODELS: tuple[str, ...] = tuple(m for m in P.MODELS if m not in ("fork", "uring"))


class CffiConn:
    """One connection's Python side: what a handler may do with it (acceptloop.handlers.Conn)."""

    __slots__ = ("_ptr", "peer", "state")

    def __init__(self, ptr: Any, peer: str) -> None:
        self._ptr = ptr
        self.peer = peer
        self.state: Any = None

    def write(self, data: bytes) -> bool:
        ptr = self._ptr
        if ptr is None:
            return False
        if data.__class__ is not bytes:
            data = bytes(data)
        return _write(ptr, data, len(data)) == 0   # AL_OK

    def offer(self, data: bytes, start: int, length: int) -> int:
        if self._ptr is None:
            return -1
        length = max(0, min(length, len(data) - start))
        return _lib.al_handler_offer(self._ptr, _ffi.from_buffer(data) + start, length)

    def end(self) -> None:
        if self._ptr is not None:
            _lib.al_handler_end(self._ptr)


class Binding:
    """One server's handler as the core sees it: a `struct al_handler` whose function pointers
    are the extern "Python" callbacks, and whose data is a handle to this object. Keep it alive
    as long as the server (CServer does)."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.on_data = handler.on_data   # bound once: the per-message path looks up nothing more
        self.conns: dict[Any, CffiConn] = {}   # by the C pointer (cffi hashes pointers by address)
        self._self_handle = _ffi.new_handle(self)
        self.struct = _ffi.new("struct al_handler *")
        self.struct.produces = int(bool(handler.produces))
        self.struct.on_open = _lib.al_py_on_open
        self.struct.on_data = _lib.al_py_on_data
        self.struct.on_eof = _lib.al_py_on_eof
        self.struct.on_writable = _lib.al_py_on_writable
        self.struct.on_close = _lib.al_py_on_close
        self.struct.data = self._self_handle

    def fail(self, conn: CffiConn, error: BaseException) -> int:
        handler_failed(self.handler.name, conn.peer, error)
        return _lib.AL_ERR


# The callbacks. Each catches everything its handler raises (a callback cannot raise into C):
# one line on stderr, AL_ERR, and the core closes that connection.

def _on_open(conn: Any, data: Any) -> int:
    binding: Binding = _ffi.from_handle(data)
    c = binding.conns[conn] = CffiConn(conn, _ffi.string(_lib.al_handler_peer(conn)).decode())
    try:
        binding.handler.on_open(c)
    except BaseException as e:  # noqa: BLE001 - this connection's problem only
        return binding.fail(c, e)
    return 0


def _on_eof(conn: Any, data: Any) -> int:
    binding: Binding = _ffi.from_handle(data)
    c = binding.conns[conn]
    try:
        binding.handler.on_eof(c)
    except BaseException as e:  # noqa: BLE001
        return binding.fail(c, e)
    return 0


def _on_writable(conn: Any, data: Any) -> int:
    binding: Binding = _ffi.from_handle(data)
    c = binding.conns[conn]
    try:
        binding.handler.on_writable(c)
    except BaseException as e:  # noqa: BLE001
        return binding.fail(c, e)
    return 0


def _on_close(conn: Any, data: Any) -> None:
    binding: Binding = _ffi.from_handle(data)
    c = binding.conns.pop(conn, None)
    if c is None:
        return
    c._ptr = None   # the C connection is gone (or about to be): nothing may reach it any more
    try:
        binding.handler.on_close(c)
    except BaseException as e:  # noqa: BLE001
        handler_failed(binding.handler.name, c.peer, e)


# cffi step: pass a callback
def _on_data(conn: Any, buf: Any, length: int, data: Any) -> int:
    binding: Binding = _from_handle(data)
    c = binding.conns[conn]
    try:
        binding.on_data(c, _unpack(buf, length))
    except BaseException as e:  # noqa: BLE001
        return binding.fail(c, e)
    return 0


def _register(ffi: Any, lib: Any) -> None:
    """Attach the callbacks to the cffi module acceptloop.cserver loaded (the normal one or
    the sanitized one: both are built from cext/build_ffi.py, with the same extern "Python")."""
    global _ffi, _lib, _from_handle, _unpack, _write
    _ffi, _lib = ffi, lib
    _from_handle, _unpack, _write = ffi.from_handle, ffi.unpack, lib.al_handler_write
    ffi.def_extern(name="al_py_on_open")(_on_open)
    ffi.def_extern(name="al_py_on_data")(_on_data)
    ffi.def_extern(name="al_py_on_eof")(_on_eof)
    ffi.def_extern(name="al_py_on_writable")(_on_writable)
    ffi.def_extern(name="al_py_on_close")(_on_close)
# end cffi step


_ffi: Any = None
_lib: Any = None
_from_handle: Any = None
_unpack: Any = None
_write: Any = None


def main(argv: Sequence[str] | None = None) -> int:
    """The contract's front end: the C loop, the service as a Python handler."""
    from acceptloop import cserver
    return cserver.main(argv, prog="python -m acceptloop.pyhandler", models=MODELS, handler_for=handler_for)


if __name__ == "__main__":
    from acceptloop.contract import fail
    try:
        sys.exit(main())
    except Exception as e:  # noqa: BLE001 - one line, never a traceback
        sys.exit(fail(f"pyhandler: {e!r}"))
