"""The registry of implementations: implementations.toml, plus any `--implementations FILE`.

Both the CLI and the tests read it; adding a server to the comparison means
adding an entry, never touching code.
"""
from __future__ import annotations

import importlib.util
import shlex
import signal
import shutil
import string
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from acceptloop import _protocol as P
from acceptloop.bench import spec as bench_spec
from acceptloop.paths import IMPLEMENTATIONS_TOML, ROOT

READY_KINDS = ("line", "port")
ROLES = ("port", "peer", "floor")
FLOOR = "floor"   # the role of the benchmark's physical reference: measured in every run, never graded
# --transport is not among them: the `transports` key says which an implementation takes.
CONTRACT_OPTIONS = tuple(name for name, *_ in P.OPTIONS if name not in ("service", "model", "host", "port", "transport"))
BASES = ("rfc", "protocol", "contract")   # what a check rests on (suite/scenario.py)
PLACEHOLDERS = ("service", "model", "host", "port", "python", "root", "php")
KEYS = ("name", "language", "command", "address", "models", "services", "ready", "options", "source", "role",
        "requires", "follows", "port", "bench", "worker_processes", "transports", "probe", "stop_signal",
        "stop_signal_why", "sockets_not_descriptors", "thread_cost_why", "poll_cost_why", "built", "built_by")
# The signals a registry entry may name as the one that stops it gracefully (stop_signal).
STOP_SIGNALS = ("SIGTERM", "SIGINT")


class RegistryError(Exception):
    """A registry file or entry is unusable; the message is one line naming the file and the entry."""


@dataclass(frozen=True)
class Implementation:
    name: str
    language: str
    models: tuple[str, ...]
    services: tuple[str, ...]
    ready: str = "line"
    command: tuple[str, ...] | None = None     # a template; see argv()
    address: tuple[str, int] | None = None     # a server already running elsewhere
    options: frozenset[str] = field(default_factory=frozenset)
    source: str | None = None
    role: str = "port"                         # "port": one of ours; "peer": a server to measure against;
                                               # "floor": the least a server can do (never graded)
    requires: tuple[str, ...] = ()             # Python modules it needs (an optional extra)
    origin: str = ""                           # the file the entry came from
    follows: frozenset[str] = frozenset(BASES)  # the bases whose checks it is graded on
    port: int | dict[str, int] | None = None   # where it always listens, when its command takes no {port}
    placeholders: frozenset[str] = frozenset()  # what its command lets the kit choose
    bench: bench_spec.Bench | None = None       # its `bench` stanza: colour, control twin, pairs, targets
    worker_processes: int = 0                   # --workers as processes: the children it has from READY on
    transports: tuple[str, ...] = ("tcp",)      # what --transport it takes: "tcp" (no option needed), "udp"
    probes: tuple[tuple[str, str], ...] = ()    # (model, start-up step) pairs: suite/probe.py
    stop_signal: str = "SIGTERM"               # the signal the kit stops it with (the contract: SIGTERM or SIGINT)
    stop_signal_why: str = ""                  # why SIGTERM cannot stop it gracefully, when stop_signal is not SIGTERM
    sockets_not_descriptors: str = ""          # why its sockets are not descriptors of its process ("": they are)
    thread_cost_why: str = ""                  # why its threads cost more than the kit's bounds allow ("": they do not)
    poll_cost_why: str = ""                    # why one wait on a thousand sockets is slow on its host ("": it is not)
    built: tuple[str, ...] = ()                # files its command needs (under the repository), made by built_by
    built_by: str = ""                         # the command that makes them ("make winsock")

    @property
    def stop_signum(self) -> int:
        """The signal number of stop_signal."""
        return int(getattr(signal, self.stop_signal))

    def takes(self, what: str) -> bool:
        """Whether the kit can choose `what` ("host", "port") on this server's command line."""
        return what in self.placeholders

    def fixed_port(self, service: str) -> int | None:
        """The port it listens on whatever the kit asks, or None when the kit chooses."""
        if isinstance(self.port, dict):
            return self.port.get(service)
        return self.port

    def unavailable(self) -> str | None:
        """Why this implementation cannot run on this machine, or None."""
        lacking = [m for m in self.requires if importlib.util.find_spec(m) is None]
        if lacking:
            return f"{', '.join(lacking)} is not installed (pip install -e '.[peers]')"
        return None

    def not_built(self) -> str | None:
        """What its command needs that is not built on this machine (one line), or None: a setup
        fault of the machine, never the server's behaviour."""
        missing = [f for f in self.built if not (ROOT / f).exists()]
        if missing:
            return f"{', '.join(missing)} missing: run `{self.built_by}` ({self.origin}: {self.name})"
        return None

    @property
    def launchable(self) -> bool:
        """Whether the kit starts this server itself (and so can test its lifecycle)."""
        return self.command is not None

    def argv(self, service: str, model: str, host: str, port: int,
             options: dict[str, str | None] | None = None) -> list[str]:
        """The command line for one server: the template's placeholders filled in, then the
        contract's other options (`--grace 2`, `--ipv6-only`) appended."""
        if self.command is None:
            raise RegistryError(f"{self.name}: has no command; it runs at {self.address}")
        values = {
            "service": service, "model": model, "host": host, "port": str(port),
            "python": sys.executable, "root": str(ROOT), "php": shutil.which("php") or "php",
        }
        out = [token.format(**values) for token in self.command]   # checked when the entry was read
        for name, value in (options or {}).items():
            out.append(f"--{name}")
            if value is not None:
                out.append(value)
        return out


def _strings(entry: dict[str, Any], key: str, where: str, default: tuple[str, ...] | None = None) -> tuple[str, ...]:
    value = entry.get(key, default)
    if value is None:
        raise RegistryError(f"{where}: missing {key!r}")
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise RegistryError(f"{where}: {key!r} must be a list of strings")
    return tuple(value)


def parse_entry(entry: dict[str, Any], origin: str) -> Implementation:
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise RegistryError(f"{origin}: an [[implementation]] has no name")
    where = f"{origin}: {name}"
    unknown = sorted(set(entry) - set(KEYS))
    if unknown:
        raise RegistryError(f"{where}: unknown key {', '.join(repr(k) for k in unknown)} "
                            f"(known: {', '.join(KEYS)})")
    models = _strings(entry, "models", where)
    services = _strings(entry, "services", where, P.SERVICES)
    for m in models:
        if m not in P.MODELS:
            raise RegistryError(f"{where}: unknown model {m!r} (known: {', '.join(P.MODELS)})")
    for s in services:
        if s not in P.SERVICES:
            raise RegistryError(f"{where}: unknown service {s!r} (known: {', '.join(P.SERVICES)})")
    ready = entry.get("ready", "line")
    if ready not in READY_KINDS:
        raise RegistryError(f"{where}: ready must be one of {', '.join(READY_KINDS)}")
    options = _strings(entry, "options", where, ())
    for o in options:
        if o not in CONTRACT_OPTIONS:
            raise RegistryError(f"{where}: unknown option {o!r} (known: {', '.join(CONTRACT_OPTIONS)})")
    role = entry.get("role", "port")
    if role not in ROLES:
        raise RegistryError(f"{where}: role must be one of {', '.join(ROLES)}")
    requires = _strings(entry, "requires", where, ())
    transports = _strings(entry, "transports", where, ("tcp",))
    for t in transports:
        if t not in P.TRANSPORTS:
            raise RegistryError(f"{where}: unknown transport {t!r} (known: {', '.join(P.TRANSPORTS)})")
    parsed_command, parsed_address, used = _command_or_address(entry, where, services, models)
    port = _fixed_port(entry.get("port"), where, services)
    if parsed_command is not None and ready == "port" and "port" not in used and port is None:
        raise RegistryError(f"{where}: its command takes no {{port}} and it prints no LISTENING line: "
                            "give 'port', where it listens")
    # A server that prints no READY line, or runs elsewhere, promises the RFC's service only,
    # unless its entry says more.
    default_follows = BASES if parsed_command is not None and ready == "line" else ("rfc",)
    follows = _strings(entry, "follows", where, default_follows)
    for b in follows:
        if b not in BASES:
            raise RegistryError(f"{where}: follows: unknown basis {b!r} (known: {', '.join(BASES)})")
    stop_signal, stop_signal_why = _stop_signal(entry, where)
    try:
        bench = bench_spec.parse(entry.get("bench"), name)
    except ValueError as e:
        raise RegistryError(f"{where}: {e}") from None
    return Implementation(
        name=name, language=str(entry.get("language", name)), models=models, services=services,
        ready=ready, command=parsed_command, address=parsed_address, options=frozenset(options),
        source=entry.get("source"), role=role, requires=requires, origin=origin,
        follows=frozenset(follows), port=port, placeholders=frozenset(used), bench=bench,
        worker_processes=_worker_processes(entry.get("worker_processes", 0), where), transports=transports,
        probes=_probes(entry.get("probe", {}), where, models), stop_signal=stop_signal,
        stop_signal_why=stop_signal_why, sockets_not_descriptors=str(entry.get("sockets_not_descriptors", "")),
        thread_cost_why=str(entry.get("thread_cost_why", "")), poll_cost_why=str(entry.get("poll_cost_why", "")),
        built=_strings(entry, "built", where, ()), built_by=str(entry.get("built_by", "make")),
    )


def _command_or_address(entry: dict[str, Any], where: str, services: tuple[str, ...], models: tuple[str, ...]
                        ) -> tuple[tuple[str, ...] | None, tuple[str, int] | None, set[str]]:
    """The entry's command (split like a shell would) and the placeholders it uses, or the address
    of a server already running; RegistryError unless exactly one of them is given, and usable."""
    command = entry.get("command")
    address = entry.get("address")
    if (command is None) == (address is None):
        raise RegistryError(f"{where}: give exactly one of 'command' and 'address'")
    parsed_command = None
    parsed_address = None
    used: set[str] = set()
    if command is not None:
        if isinstance(command, str):
            try:
                parsed_command = tuple(shlex.split(command))
            except ValueError as e:
                raise RegistryError(f"{where}: command: {e}") from None
        else:
            parsed_command = _strings(entry, "command", where)
        if not parsed_command:
            raise RegistryError(f"{where}: empty command")
        used = _placeholders(parsed_command, where)
    else:
        host, sep, port = str(address).rpartition(":")
        if not sep or not port.isdigit():
            raise RegistryError(f"{where}: address must be host:port, not {address!r}")
        parsed_address = (host.strip("[]"), int(port))
        if len(services) != 1 or len(models) != 1:
            raise RegistryError(f"{where}: a running server offers one service and one model")
    return parsed_command, parsed_address, used


def _stop_signal(entry: dict[str, Any], where: str) -> tuple[str, str]:
    """stop_signal (SIGTERM unless said) and stop_signal_why, which another signal needs."""
    stop_signal = entry.get("stop_signal", "SIGTERM")
    if stop_signal not in STOP_SIGNALS:
        raise RegistryError(f"{where}: stop_signal must be one of {', '.join(STOP_SIGNALS)}")
    stop_signal_why = str(entry.get("stop_signal_why", ""))
    if stop_signal != "SIGTERM" and not stop_signal_why:
        raise RegistryError(f"{where}: stop_signal {stop_signal} needs stop_signal_why: why SIGTERM cannot stop it")
    return stop_signal, stop_signal_why


def _probes(value: Any, where: str, models: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """'probe': a table of model = the start-up step whose failure means "not on this machine"."""
    if not isinstance(value, dict) or not all(isinstance(v, str) and v for v in value.values()):
        raise RegistryError(f"{where}: 'probe' must be a table of model = step name")
    for m in value:
        if m not in models:
            raise RegistryError(f"{where}: probe: it does not offer the model {m!r}")
    return tuple(sorted(value.items()))


def _worker_processes(value: object, where: str) -> int:
    """worker_processes: a whole number from 0 (a server with no workers of its own, or threads)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RegistryError(f"{where}: worker_processes must be a whole number from 0, not {value!r}")
    return value


def _placeholders(command: tuple[str, ...], where: str) -> set[str]:
    """The placeholders the command uses; RegistryError for one the kit does not know, or bad braces."""
    used = set()
    for token in command:
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(token) if f is not None]
        except ValueError as e:
            raise RegistryError(f"{where}: command: {token!r}: {e}") from None
        for field_name in fields:
            if field_name not in PLACEHOLDERS:
                raise RegistryError(f"{where}: command: unknown placeholder {{{field_name}}} "
                                    f"(known: {', '.join('{' + p + '}' for p in PLACEHOLDERS)})")
            used.add(field_name)
    return used


def _fixed_port(value: Any, where: str, services: tuple[str, ...]) -> int | dict[str, int] | None:
    """'port': a number, or a table of service = number; None when not given."""
    def one(v: Any, what: str) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 65535:
            raise RegistryError(f"{where}: {what} must be a port number 1..65535, not {v!r}")
        return v
    if value is None:
        return None
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(services))
        if unknown:
            raise RegistryError(f"{where}: port: no such service of this entry: {', '.join(unknown)}")
        return {s: one(v, f"port.{s}") for s, v in value.items()}
    return one(value, "port")


def load_file(path: Path) -> list[Implementation]:
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise RegistryError(f"{path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise RegistryError(f"{path}: {e}") from None
    entries = data.get("implementation")
    if not isinstance(entries, list) or not entries:
        raise RegistryError(f"{path}: no [[implementation]] entries")
    resolved = path.resolve()
    origin = str(resolved.relative_to(ROOT)) if resolved.is_relative_to(ROOT) else str(path)
    return [parse_entry(entry, origin) for entry in entries]


def load(extra: list[Path] | tuple[Path, ...] = (), base: Path | None = IMPLEMENTATIONS_TOML) -> list[Implementation]:
    """The base registry, then each extra file; an extra entry with a taken name replaces it."""
    found: dict[str, Implementation] = {}
    for path in ([base] if base else []) + list(extra):
        for impl in load_file(Path(path)):
            found[impl.name] = impl
    return list(found.values())
