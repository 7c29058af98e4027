"""The command-line contract every server follows, and its one-line error format.

The options come from the protocol definition (`_protocol.OPTIONS`), so the
Python server and `python -m acceptloop.cserver` accept exactly what the C and
PHP servers accept. Bad arguments print usage on stderr and exit 2.
"""
from __future__ import annotations

import argparse
import errno
import os
import socket
import sys
from dataclasses import dataclass
from typing import Sequence

from acceptloop import _protocol as P

# getaddrinfo's error codes have no errno names; these are glibc's, by value.
_GAI_NAMES = {
    getattr(socket, name): name
    for name in dir(socket)
    if name.startswith("EAI_") and isinstance(getattr(socket, name), int)
}


@dataclass(frozen=True)
class ServerConfig:
    """One server's settings, as the contract's options give them."""

    service: str
    model: str
    host: str
    port: int
    backlog: int
    grace: float
    max_conns: int
    idle_timeout: float
    ipv6_only: bool
    daytime_epoch: int | None   # from ACCEPTLOOP_DAYTIME_EPOCH; None: use the clock


class SetupError(Exception):
    """A step that sets the server up failed: `step address: reason (ENAME)`."""

    def __init__(self, step: str, address: str, error: OSError) -> None:
        super().__init__(f"{step} {address}: {describe_error(error)}")
        self.step = step
        self.address = address
        self.errno = error.errno


def describe_error(error: OSError) -> str:
    """`Permission denied (EACCES)`: the OS's text and the constant's name."""
    if isinstance(error, socket.gaierror):
        name = _GAI_NAMES.get(error.errno, f"EAI_{error.errno}")
        text = error.strerror or "name resolution failed"
        return f"{text} ({name})"
    if error.errno is None:
        return str(error)
    name = errno.errorcode.get(error.errno, f"errno {error.errno}")
    return f"{os.strerror(error.errno)} ({name})"


def format_address(host: str, port: int) -> str:
    """`127.0.0.1:7` or `[::1]:7`."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _bounded(kind: str, low: float, high: float):
    convert = int if kind == "int" else float

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a {'whole number' if kind == 'int' else 'number'}: {text!r}")
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} is outside {low:g}..{high:g}")
        return value

    return parse


class _ContractParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        """Usage and one line naming the problem on stderr, then the usage exit code."""
        self.print_usage(sys.stderr)
        self.exit(P.EXIT_USAGE, f"{self.prog}: {message}\n")


def build_parser(prog: str, models: Sequence[str]) -> argparse.ArgumentParser:
    """An argparse parser for the contract, offering only `models`."""
    parser = _ContractParser(prog=prog, description="A TCP accept loop that follows the acceptloop contract.")
    choices = {"services": P.SERVICES, "models": tuple(models)}
    for name, kind, default, low, high, choice_list, help_text in P.OPTIONS:
        flag = f"--{name}"
        if kind == "flag":
            parser.add_argument(flag, action="store_true", default=default, help=help_text)
        elif kind == "choice":
            parser.add_argument(flag, choices=choices[choice_list], default=default, help=help_text)
        elif kind == "string":
            parser.add_argument(flag, default=default, help=help_text)
        else:
            parser.add_argument(flag, type=_bounded(kind, low, high), default=default, help=help_text)
    return parser


def daytime_epoch_from_env(parser: argparse.ArgumentParser) -> int | None:
    text = os.environ.get(P.DAYTIME_EPOCH_ENV)
    if text is None or text == "":
        return None
    try:
        return int(text)
    except ValueError:
        parser.error(f"{P.DAYTIME_EPOCH_ENV}: not a whole number of seconds: {text!r}")
    raise AssertionError("unreachable")


def parse_args(argv: Sequence[str] | None, prog: str, models: Sequence[str]) -> ServerConfig:
    """Parse the contract's options; on a bad one print usage and exit 2."""
    parser = build_parser(prog, models)
    ns = parser.parse_args(argv)
    return ServerConfig(
        service=ns.service,
        model=ns.model,
        host=ns.host,
        port=ns.port,
        backlog=ns.backlog,
        grace=float(ns.grace),
        max_conns=ns.max_conns,
        idle_timeout=float(ns.idle_timeout),
        ipv6_only=ns.ipv6_only,
        daytime_epoch=daytime_epoch_from_env(parser),
    )


def fail(message: str) -> int:
    """Print one line on stderr and give the failure exit code."""
    print(message, file=sys.stderr, flush=True)
    return P.EXIT_FAILURE
