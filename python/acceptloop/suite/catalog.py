"""The one catalogue of scenarios: each module in `scenarios/` adds its own with @scenario."""
from __future__ import annotations

import importlib
import pkgutil
from typing import Callable, Iterable

from acceptloop import _protocol as P
from acceptloop.suite.scenario import BASES, BASIS_CONTRACT, BASIS_PROTOCOL, BASIS_RFC, Context, Scenario

_SCENARIOS: dict[str, Scenario] = {}


def scenario(id: str, description: str, level: str, source: str, text: str, service: str,
             shared: bool = True, needs: Iterable[str] = (), fingerprint: Iterable[str] = (),
             timeout: float = 60.0, basis: str | None = None, wants: Iterable[str] = (),
             chooses: Iterable[str] = (), uses: Iterable[str] = (),
             exclusive: bool = False, transport: str = "tcp") -> Callable[[Callable[[Context], None]], Callable[[Context], None]]:
    """Register the decorated function as the client steps of scenario `id`.

    `basis` is what its checks rest on unless a check says otherwise (BASES); by default what its
    `source` says: an RFC is "rfc", docs/protocol.md "protocol", the contract "contract", and the
    failure modes "rfc" (what any server of the service must survive, seen on the wire)."""
    def register(run: Callable[[Context], None]) -> Callable[[Context], None]:
        if id in _SCENARIOS:
            raise ValueError(f"scenario {id} is defined twice")
        if service not in P.SERVICES:
            raise ValueError(f"scenario {id}: unknown service {service}")
        if transport not in P.TRANSPORTS:
            raise ValueError(f"scenario {id}: unknown transport {transport}")
        if transport != "tcp" and shared:
            raise ValueError(f"scenario {id}: a {transport} scenario starts its own servers (shared=False)")
        chosen = basis or default_basis(source)
        if chosen not in BASES:
            raise ValueError(f"scenario {id}: unknown basis {chosen!r}")
        _SCENARIOS[id] = Scenario(id=id, description=description, level=level, source=source, text=text,
                                  run=run, service=service, shared=shared, needs=frozenset(needs),
                                  fingerprint=tuple(fingerprint), timeout=timeout, basis=chosen,
                                  wants=frozenset(wants), chooses=frozenset(chooses), uses=frozenset(uses),
                                  exclusive=exclusive, transport=transport)
        return run
    return register


def default_basis(source: str) -> str:
    """The basis a scenario's `source` implies (see scenario())."""
    if source.startswith("RFC"):
        return BASIS_RFC
    if source.startswith("docs/protocol.md"):
        return BASIS_PROTOCOL
    if source.startswith("contract"):
        return BASIS_CONTRACT
    return BASIS_RFC


def all_scenarios() -> list[Scenario]:
    """Every scenario, in the order of the modules and of their definitions."""
    from acceptloop.suite import scenarios as package
    for module in package.ORDER:
        importlib.import_module(f"{package.__name__}.{module}")
    missing = {m.name for m in pkgutil.iter_modules(package.__path__)} - set(package.ORDER) - {"probes"}
    if missing:
        raise RuntimeError(f"scenario modules not listed in scenarios.ORDER: {sorted(missing)}")
    return list(_SCENARIOS.values())


def by_id() -> dict[str, Scenario]:
    return {s.id: s for s in all_scenarios()}
