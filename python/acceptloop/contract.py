"""The command-line contract every server follows (its one-line error format is errors.py's).

The options come from the protocol definition (`_protocol.OPTIONS`), so the
Python server and `python -m acceptloop.cserver` accept exactly what the C and
PHP servers accept. Bad arguments print usage on stderr and exit 2.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence

from acceptloop import _protocol as P
# The one-line error format is errors.py's; these names stay importable from here.
from acceptloop.errors import SetupError, describe_error, fail, format_address  # noqa: F401


class ServerConfig:
    """One server's settings, as the contract's options give them; set once, never changed
    (replace() makes another). A plain class, not a dataclass: every Python server imports this
    module first, and dataclasses (inspect, ast and the generated methods' exec) cost each start
    about as much as the rest of its imports; the kit starts some thousand of them a check."""

    __slots__ = ("service", "model", "host", "port", "backlog", "grace", "max_conns", "idle_timeout",
                 "ipv6_only", "daytime_epoch", "transport", "workers")

    def __init__(self, service: str, model: str, host: str, port: int, backlog: int, grace: float,
                 max_conns: int, idle_timeout: float, ipv6_only: bool,
                 daytime_epoch: int | None,     # from ACCEPTLOOP_DAYTIME_EPOCH; None: use the clock
                 transport: str = "tcp",        # --transport: "tcp" (streams) or "udp" (datagrams)
                 workers: int = 1) -> None:     # event loops on the port (SO_REUSEPORT when more than one)
        values = (service, model, host, port, backlog, grace, max_conns, idle_timeout, ipv6_only,
                  daytime_epoch, transport, workers)
        for name, value in zip(self.__slots__, values):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"ServerConfig is set once: replace({name}=...) makes another")

    def fields(self) -> dict[str, object]:
        """Every setting by its name."""
        return {name: getattr(self, name) for name in self.__slots__}

    def replace(self, **changes: object) -> ServerConfig:
        """Another ServerConfig: this one's settings, `changes` overriding them."""
        return ServerConfig(**{**self.fields(), **changes})   # type: ignore[arg-type]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ServerConfig) and self.fields() == other.fields()

    def __hash__(self) -> int:
        return hash(tuple(self.fields().values()))

    def __repr__(self) -> str:
        return "ServerConfig(" + ", ".join(f"{k}={v!r}" for k, v in self.fields().items()) + ")"


# The contract's grammar for numbers (protocol.toml [grammar]): matched whole, before converting, so
# that what int() and float() would also take (`1_000`, ` 5`, `+5`, `1e3`, `inf`, non-ASCII digits)
# is refused here as it is in C and PHP.
GRAMMAR = {"int": re.compile(P.GRAMMAR_INT), "seconds": re.compile(P.GRAMMAR_SECONDS)}
NOT_A = {"int": "not a whole number", "seconds": "not a number"}


def bounds(low: float, high: float) -> str:
    """`0..65535`: the range as every port prints it."""
    return f"{low:.15g}..{high:.15g}"


def parse_number(kind: str, text: str, low: float, high: float) -> int | float:
    """`text` as the contract's `kind` ("int" or "seconds") within low..high; ValueError saying why not
    (`not a number: '0x10'`, `70000 is outside 0..65535`)."""
    if GRAMMAR[kind].fullmatch(text) is None:
        raise ValueError(f"{NOT_A[kind]}: {text!r}")
    value = int(text) if kind == "int" else float(text)
    if not low <= value <= high:
        raise ValueError(f"{text} is outside {bounds(low, high)}")
    return value


def _typed(kind: str, low: float | None, high: float | None):
    """argparse's `type` for one option (argparse adds `argument --name: ` to its complaint): a
    number of the grammar within its bounds, or a string no longer than `high` bytes (as the OS
    hands it over: argv is bytes)."""
    def parse(text: str):
        if kind == "string":
            if high is not None and len(os.fsencode(text)) > high:
                raise argparse.ArgumentTypeError(f"longer than {high:.15g} bytes")
            return text
        try:
            return parse_number(kind, text, low, high)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    return parse


class _ContractParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        """Usage and one line naming the problem on stderr, then the usage exit code."""
        self.print_usage(sys.stderr)
        self.exit(P.EXIT_USAGE, f"{self.prog}: {message}\n")


def build_parser(prog: str, models: Sequence[str]) -> argparse.ArgumentParser:
    """An argparse parser for the contract, offering only `models`."""
    parser = _ContractParser(prog=prog, description="A TCP accept loop that follows the acceptloop contract.")
    choices = {"services": P.SERVICES, "models": tuple(models), "transports": P.TRANSPORTS}
    for name, kind, default, low, high, choice_list, help_text in P.OPTIONS:
        flag = f"--{name}"
        if kind == "flag":
            parser.add_argument(flag, action="store_true", default=default, help=help_text)
        elif kind == "choice":
            parser.add_argument(flag, choices=choices[choice_list], default=default, help=help_text)
        else:
            parser.add_argument(flag, type=_typed(kind, low, high), default=default, help=help_text)
    return parser


def daytime_epoch_from_env(parser: argparse.ArgumentParser) -> int | None:
    """ACCEPTLOOP_DAYTIME_EPOCH: a whole number of seconds within the protocol's range, or None."""
    text = os.environ.get(P.DAYTIME_EPOCH_ENV)
    if text is None or text == "":
        return None
    try:
        return int(parse_number("int", text, P.DAYTIME_EPOCH_MIN, P.DAYTIME_EPOCH_MAX))
    except ValueError as e:
        parser.error(f"{P.DAYTIME_EPOCH_ENV}: {e}")
    raise AssertionError("unreachable")


def check_workers(parser: argparse.ArgumentParser, workers: int, model: str, transport: str, several: bool) -> None:
    """--workers N > 1 only with a model that runs an event loop and over tcp (protocol.toml
    [workers]), and only in a front end that can run several (`several`); else usage and exit 2."""
    if workers > 1 and model not in P.WORKER_MODELS:
        parser.error(P.WORKERS_REFUSAL % model)
    if workers > 1 and transport != "tcp":
        parser.error(P.WORKERS_UDP_REFUSAL)
    if workers > 1 and not several:
        parser.error(f"argument --workers: {parser.prog} runs one worker, not {workers}")


def parse_args(argv: Sequence[str] | None, prog: str, models: Sequence[str],
               several_workers: bool = False) -> ServerConfig:
    """Parse the contract's options; on a bad one print usage and exit 2. `several_workers`: this
    front end can run more than one worker (--workers N > 1)."""
    parser = build_parser(prog, models)
    ns = parser.parse_args(argv)
    check_transport(parser, ns.transport, ns.model, ns.service)
    check_workers(parser, ns.workers, ns.model, ns.transport, several_workers)
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
        transport=ns.transport,
        workers=ns.workers,
    )


def check_transport(parser: argparse.ArgumentParser, transport: str, model: str, service: str) -> None:
    """--transport udp takes the models that need no accept and the services with a datagram form
    (protocol.toml [datagram]); anything else is a usage error, in the same words in every port."""
    if transport != "udp":
        return
    if model not in P.DATAGRAM_MODELS:
        parser.error(P.DATAGRAM_WRONG_MODEL)
    if service not in P.DATAGRAM_SERVICES:
        parser.error(P.DATAGRAM_NO_DATAGRAM_FORM)
