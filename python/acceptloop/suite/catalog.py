"""The one catalogue of scenarios: each module in `scenarios/` adds its own with @scenario."""
from __future__ import annotations

import importlib
import pkgutil
from typing import Callable, Iterable

from acceptloop import _protocol as P
from acceptloop.suite.scenario import Context, Scenario

_SCENARIOS: dict[str, Scenario] = {}


def scenario(id: str, description: str, level: str, source: str, text: str, service: str,
             shared: bool = True, needs: Iterable[str] = (), fingerprint: Iterable[str] = (),
             timeout: float = 60.0) -> Callable[[Callable[[Context], None]], Callable[[Context], None]]:
    """Register the decorated function as the client steps of scenario `id`."""
    def register(run: Callable[[Context], None]) -> Callable[[Context], None]:
        if id in _SCENARIOS:
            raise ValueError(f"scenario {id} is defined twice")
        if service not in P.SERVICES:
            raise ValueError(f"scenario {id}: unknown service {service}")
        _SCENARIOS[id] = Scenario(id=id, description=description, level=level, source=source, text=text,
                                  run=run, service=service, shared=shared, needs=frozenset(needs),
                                  fingerprint=tuple(fingerprint), timeout=timeout)
        return run
    return register


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
