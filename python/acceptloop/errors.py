"""How every Python front end reports a failure: one line on stderr, `STEP ADDRESS: TEXT (ENAME)`.

The Python server, `python -m acceptloop.cserver` (the C core's front end) and the peers all
write their errors this way, so the one-line format lives here, beside none of them:
`contract.py` (the options) imports it and keeps these names importable from there.
"""
from __future__ import annotations

import errno
import os
import socket
import sys

from acceptloop import _protocol as P

# getaddrinfo's error codes have no errno names; these are glibc's, by value.
_GAI_NAMES = {
    getattr(socket, name): name
    for name in dir(socket)
    if name.startswith("EAI_") and isinstance(getattr(socket, name), int)
}


class SetupError(Exception):
    """A step that sets the server up failed: `step address: reason (ENAME)`."""

    def __init__(self, step: str, address: str, error: OSError) -> None:
        super().__init__(f"{step} {address}: {describe_error(error)}")
        self.step = step
        self.address = address
        self.errno = error.errno


def describe_error(error: OSError) -> str:
    """Return `Permission denied (EACCES)`: the OS's text and the constant's name (`EAI_*` for getaddrinfo)."""
    if isinstance(error, socket.gaierror):
        name = _GAI_NAMES.get(error.errno, f"EAI_{error.errno}")
        text = error.strerror or "name resolution failed"
        return f"{text} ({name})"
    if error.errno is None:
        return str(error)
    name = errno.errorcode.get(error.errno, f"errno {error.errno}")
    return f"{os.strerror(error.errno)} ({name})"


def format_address(host: str, port: int) -> str:
    """Return `127.0.0.1:7`, or `[::1]:7` for an IPv6 address."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def log(line: str) -> None:
    """Write one line on stderr, flushed: the server's only log."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def fail(message: str) -> int:
    """Log `message` (the failure, one line) and return the failure exit code, for `return fail(...)`."""
    log(message)
    return P.EXIT_FAILURE
