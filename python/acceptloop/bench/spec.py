"""A registry entry's `bench` stanza: how the benchmark treats that implementation.

    colour    "#RRGGBB", its colour in every chart and table (entries without one get the next
              colour of the report's fallback palette)
    control   the name of a control twin: a second copy of this server, measured under that name
              in every echo cell of the run; what separates the two is the measurement's own noise
    compare   the implementations this one is divided by in the ratio table ("this vs each")
    targets   what this implementation is expected to reach (Target below)
    only_targets  true: measure this implementation only in the cells its own targets name, not in
              every cell of the profile (a server under Wine takes seconds where the others
              take milliseconds, and its idle-c1000 cell alone would outlast a quick run)
    batching  its datagram path reads and answers in batches in one model and one at a time in
              another (Batching below): the report's batching table sets the two side by side

The registry (suite/registry.py) calls parse() on every entry's stanza, so a mistake stops the
run before any cell; the names a stanza mentions are resolved when the benchmark runs: a target
against an implementation the run does not hold is "not measured", never an error.

This module knows the shape and the words, nothing about which servers exist.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from acceptloop import _protocol as P

# What a target can be judged on: the name a stanza uses -> (the summary's key of a cell, words).
# "throughput" is each cell's primary figure (ops/s, or MB/s for the streams).
FIGURES = {
    "cpu_per_op": ("server_cpu_us_per_op", "server CPU µs per op"),
    "instructions_per_op": ("server_instructions_per_op", "instructions retired per op"),
    "throughput": ("primary", "throughput (ops/s, or MB/s for streams)"),
    "rss_per_conn": ("rss_per_conn", "server RSS growth per connection held"),
}
MEASURES = ("ratio", "deviation", "value")
DIRECTIONS = ("at most", "at least")
KINDS = ("echo", "connect", "ingest", "egress", "idle", "datagram")
ANY_MODEL = "any"
STANZA_KEYS = ("colour", "control", "compare", "targets", "binding", "batching", "only_targets")
BINDING_KEYS = ("host", "core", "callback")
BATCHING_KEYS = ("words", "model", "against_model")
TARGET_KEYS = ("words", "figure", "against", "measure", "workload", "model", "against_model", "bound", "direction")
COLOUR = re.compile(r"#[0-9A-Fa-f]{6}")
# Workload ids as bench/plan.py writes them: echo-64B-c256, echo-16KiB-c1, connect-c16, idle-c1000,
# datagram-64B-c16 (UDP echo: a size, and sockets for connections).
WORKLOAD_ID = re.compile(r"(?P<kind>echo|datagram)-(?P<size>\d+)(?P<unit>B|KiB)-c(?P<conns>\d+)"
                         r"|(?P<other>connect|ingest|egress|idle)-c(?P<oconns>\d+)")


def parse_workload(text: str) -> tuple[str, int, int]:
    """'echo-64B-c256' -> ("echo", 256, 64); 'datagram-1KiB-c16' -> ("datagram", 16, 1024); 'connect-c16' ->
    ("connect", 16, 0). ValueError otherwise."""
    m = WORKLOAD_ID.fullmatch(text)
    if not m:
        raise ValueError(f"workload {text!r} is not a workload id (echo-64B-c256, echo-1KiB-c16, connect-c1, "
                         f"ingest-c16, egress-c1, idle-c1000, datagram-64B-c16)")
    if m["kind"]:
        size = int(m["size"]) * (1024 if m["unit"] == "KiB" else 1)
        return m["kind"], int(m["conns"]), size
    return m["other"], int(m["oconns"]), 0


@dataclass(frozen=True)
class Target:
    """One target of the implementation whose stanza holds it ("this").

    measure  "ratio": this one's median figure divided by `against`'s on one cell (model, workload);
             "deviation": the largest |this / against - 1| over every cell of the workload kind
             `workload` ("echo") both were measured on, in any model (or only `model`'s);
             "value": this one's median figure on one cell
    against_model  a ratio's model for `against`'s cell (default: `model`, or a floor's own model):
             an implementation may then be divided by itself in another model
    bound    the figure's limit, and `direction` "at most" or "at least"; no bound: measured and shown
    words    how the report names the target
    """
    words: str
    figure: str
    measure: str
    workload: str
    model: str
    against: str | None = None
    against_model: str | None = None
    bound: float | None = None
    direction: str = "at most"

    def cells(self) -> tuple[tuple[str, str], ...]:
        """The (model, workload id) cells a ratio or value target needs; a deviation needs none of its own."""
        return () if self.measure == "deviation" else ((self.model, self.workload),)

    def meets(self, value: float) -> bool:
        assert self.bound is not None
        return value <= self.bound if self.direction == "at most" else value >= self.bound


@dataclass(frozen=True)
class Bench:
    colour: str | None = None
    control: str | None = None                 # the name of its control twin
    compare: tuple[str, ...] = ()
    targets: tuple[Target, ...] = ()
    twin_of: str | None = None                 # set on a control twin itself: the implementation it copies
    binding: "Binding | None" = None
    batching: "Batching | None" = None
    only_targets: bool = False                 # measured only in the cells its own targets name


@dataclass(frozen=True)
class Batching:
    """What a `batching` table says: in `model` this implementation reads and answers datagrams in
    batches, in `against_model` one at a time; `words` says how ("recvmmsg/sendmmsg against
    recvfrom/sendto"). The report's batching table divides the first by the second on every datagram
    cell both ran: what batching buys."""
    words: str
    model: str = "event"
    against_model: str = "iterative"


def _table(table: Any, keys: tuple[str, ...], what: str) -> dict[str, Any] | None:
    """A stanza's sub-table `what`, checked to be a table of known keys; None when it is absent."""
    if table is None:
        return None
    if not isinstance(table, dict):
        raise ValueError(f"{what} must be a table ({', '.join(keys)})")
    _unknown(table, keys, what)
    return table


def parse_batching(value: Any) -> Batching | None:
    table = _table(value, BATCHING_KEYS, "bench.batching")
    if table is None:
        return None
    words = _text(table.get("words"), "bench.batching.words")
    model, against = table.get("model", "event"), table.get("against_model", "iterative")
    for key, value in (("model", model), ("against_model", against)):
        if value not in P.DATAGRAM_MODELS:
            raise ValueError(f"bench.batching.{key} must be a model a datagram server has "
                             f"({', '.join(P.DATAGRAM_MODELS)}), not {value!r}")
    if model == against:
        raise ValueError("bench.batching: model and against_model are the same")
    return Batching(words=words, model=model, against_model=against)


@dataclass(frozen=True)
class Binding:
    """What a `binding` table says: this implementation runs the loop of `core` from `host` ("Python
    via cffi"), with one callback into the host per message (`callback`) or none (the loop alone).
    The bindings table shows each one's cost as the difference from `core`, cell by cell."""
    host: str
    core: str
    callback: bool = False


def parse_binding(value: Any, owner: str) -> Binding | None:
    table = _table(value, BINDING_KEYS, "bench.binding")
    if table is None:
        return None
    host = _text(table.get("host"), "bench.binding.host")
    core = _text(table.get("core"), "bench.binding.core")
    if core == owner:
        raise ValueError("bench.binding.core names the implementation itself")
    callback = table.get("callback", False)
    if not isinstance(callback, bool):
        raise ValueError(f"bench.binding.callback must be true or false, not {callback!r}")
    return Binding(host=host, core=core, callback=callback)


def _unknown(table: dict[str, Any], known: tuple[str, ...], what: str) -> None:
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise ValueError(f"{what}: unknown key {', '.join(repr(k) for k in unknown)} (known: {', '.join(known)})")


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must be a non-empty string, not {value!r}")
    return value


def parse_target(t: Any, owner: str, i: int) -> Target:
    what = f"bench.targets[{i}]"
    if not isinstance(t, dict):
        raise ValueError(f"{what} must be a table")
    _unknown(t, TARGET_KEYS, what)
    words = _text(t.get("words"), f"{what}.words")
    figure = t.get("figure")
    if figure not in FIGURES:
        raise ValueError(f"{what}.figure must be one of {', '.join(FIGURES)}, not {figure!r}")
    against = t.get("against")
    against_model = t.get("against_model")
    if against_model is not None and (against_model not in P.MODELS or t.get("measure", "ratio") != "ratio"):
        raise ValueError(f"{what}.against_model: a ratio's model for its against, one of {', '.join(P.MODELS)}")
    if against is not None:
        _text(against, f"{what}.against")
        if against == owner and against_model in (None, t.get("model", "event")):
            raise ValueError(f"{what}.against names the implementation itself (in the same model)")
    measure = t.get("measure", "value" if against is None else "ratio")
    if measure not in MEASURES:
        raise ValueError(f"{what}.measure must be one of {', '.join(MEASURES)}, not {measure!r}")
    if (measure == "value") != (against is None):
        raise ValueError(f"{what}: a {measure!r} target " + ("takes no 'against'" if measure == "value"
                                                             else "needs 'against', the implementation it is divided by"))
    workload = _text(t.get("workload"), f"{what}.workload")
    if measure == "deviation":
        if workload not in KINDS:
            raise ValueError(f"{what}.workload: a deviation spans every cell of a workload kind "
                             f"({', '.join(KINDS)}), not {workload!r}")
    else:
        parse_workload(workload)
    model = t.get("model", ANY_MODEL if measure == "deviation" else "event")
    if model != ANY_MODEL and model not in P.MODELS:
        raise ValueError(f"{what}.model must be one of {', '.join(P.MODELS)}" +
                         (f" or {ANY_MODEL!r}" if measure == "deviation" else "") + f", not {model!r}")
    if model == ANY_MODEL and measure != "deviation":
        raise ValueError(f"{what}.model: a {measure} target is read on one cell; name its model")
    bound = t.get("bound")
    if bound is not None and (isinstance(bound, bool) or not isinstance(bound, (int, float))):
        raise ValueError(f"{what}.bound must be a number, not {bound!r}")
    direction = t.get("direction", "at most")
    if direction not in DIRECTIONS:
        raise ValueError(f"{what}.direction must be one of {', '.join(repr(d) for d in DIRECTIONS)}")
    if measure == "deviation" and direction != "at most":
        raise ValueError(f"{what}.direction: a deviation is bounded from above ('at most')")
    return Target(words=words, figure=figure, measure=measure, workload=workload, model=model, against=against,
                  against_model=against_model, bound=float(bound) if bound is not None else None,
                  direction=direction)


def parse(stanza: Any, owner: str) -> Bench | None:
    """An entry's `bench` table as a Bench; ValueError (one line, naming the key) when it is malformed."""
    if stanza is None:
        return None
    if not isinstance(stanza, dict):
        raise ValueError("bench must be a table")
    _unknown(stanza, STANZA_KEYS, "bench")
    colour = stanza.get("colour")
    if colour is not None and (not isinstance(colour, str) or not COLOUR.fullmatch(colour)):
        raise ValueError(f"bench.colour must be \"#RRGGBB\", not {colour!r}")
    control = stanza.get("control")
    if control is not None:
        _text(control, "bench.control")
        if control == owner:
            raise ValueError("bench.control: the twin needs a name of its own")
    compare = stanza.get("compare", [])
    if not isinstance(compare, list) or not all(isinstance(c, str) and c for c in compare):
        raise ValueError("bench.compare must be a list of implementation names")
    if owner in compare:
        raise ValueError("bench.compare names the implementation itself")
    targets = stanza.get("targets", [])
    if not isinstance(targets, list):
        raise ValueError("bench.targets must be a list of tables ([[implementation.bench.targets]])")
    only_targets = stanza.get("only_targets", False)
    if not isinstance(only_targets, bool):
        raise ValueError("bench.only_targets must be true or false")
    return Bench(colour=colour, control=control, compare=tuple(dict.fromkeys(compare)),
                 targets=tuple(parse_target(t, owner, i) for i, t in enumerate(targets)),
                 binding=parse_binding(stanza.get("binding"), owner), batching=parse_batching(stanza.get("batching")),
                 only_targets=only_targets)
