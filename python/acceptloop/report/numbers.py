"""Numbers as the report prints them: three significant figures, and the unit a reader expects
(k and M for rates, µs/ms/s for latency, B/KiB/MiB for memory, × for ratios).

Every function takes None (not measured) and returns "–" for it, so templates never test.
"""
from __future__ import annotations

import math
import re

NONE = "–"


def sig(value: float, digits: int = 3) -> str:
    """`value` to `digits` significant figures, without exponent: 36998 -> '37000', 0.1342 -> '0.134'."""
    if value == 0 or not math.isfinite(value):
        return "0" if value == 0 else str(value)
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    return f"{value:.{decimals}f}"


def si(value: float | None) -> str:
    """A rate or count: 36998 -> '37.0k', 1.2e6 -> '1.20M', 2.37 -> '2.37'."""
    if value is None:
        return NONE
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return sig(value / factor) + suffix
    return sig(value)


def micros(value: float | None) -> str:
    """A duration given in microseconds: 383 -> '383 µs', 4882 -> '4.88 ms', 1.5e6 -> '1.50 s'."""
    if value is None:
        return NONE
    if abs(value) >= 1e6:
        return f"{sig(value / 1e6)} s"
    if abs(value) >= 1e3:
        return f"{sig(value / 1e3)} ms"
    return f"{sig(value)} µs"


def size(value: float | None) -> str:
    """A size in bytes: 573 -> '573 B', 2785 -> '2.72 KiB', 15699968 -> '15.0 MiB'."""
    if value is None:
        return NONE
    for factor, suffix in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if abs(value) >= factor:
            return f"{sig(value / factor)} {suffix}"
    return f"{value:.0f} B"


def ratio(value: float | None) -> str:
    """A ratio of two medians: 1.5136 -> '1.51×'."""
    return NONE if value is None else f"{sig(value)}×"


def percent(value: float | None) -> str:
    """A percentage given as a number of percent: 75.0 -> '75.0 %'."""
    return NONE if value is None else f"{sig(value)} %"


def spread(s: dict | None, fmt=si) -> str:
    """A cell's median with its range: '37.0k (35.0k–38.5k)'; just the median when they agree."""
    if not s or s.get("median") is None:
        return NONE
    median, lo, hi = fmt(s["median"]), fmt(s.get("min")), fmt(s.get("max"))
    return median if lo == hi == median else f"{median} ({lo}–{hi})"


def trimmed(text: str) -> str:
    """An axis label without trailing zeros: '10.0 ms' -> '10 ms', '2.50k' -> '2.5k'."""
    return re.sub(r"(\d)\.(\d*?)0+(?!\d)", lambda m: m.group(1) + ("." + m.group(2) if m.group(2) else ""), text)


def with_unit(value: float, unit: str, name: str = "") -> str:
    """A figure as recorded by a scenario, to three significant figures but never rounding away
    whole units: '0.5 %', '12.5 MiB', '274 ms', '3005 ms'; unitless counts take their name
    instead ('8 examples')."""
    text = f"{value:.0f}" if abs(value) >= 100 else trimmed(sig(value))
    if unit:
        return f"{text} {unit}"
    return f"{text} {name}".strip()
