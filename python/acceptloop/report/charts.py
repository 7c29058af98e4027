"""The performance section's charts, as geometry: every coordinate is computed here and
templates/report/chart.svg.j2 draws it as inline SVG (no chart library, nothing fetched).

Two kinds of chart:
    line_chart  one line per implementation over a numeric (optionally log) or categorical x,
                each point a cell's median with a whisker from its min to its max
    bar_chart   one horizontal bar per implementation (and model), its length the median,
                with the same min–max whisker

Each implementation keeps one colour in every chart (Palette); the peers (role "peer" in the
registry) are drawn dashed with square markers so they never pass for one of the ports. A point or bar
whose cell carries a flag is drawn hollow, and its tooltip names the flag.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from acceptloop.report import numbers

# The fallback palette, for implementations whose registry entry declares no colour (bench.colour):
# Okabe–Ito's colours, told apart by most colour-blind readers, then Paul Tol's; past those, hues
# spread round the colour wheel. A colour some entry declares is never handed out as a fallback.
FALLBACK = ("#0072B2", "#D55E00", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#6F4E9C", "#882255",
            "#44AA99", "#332288", "#999933", "#000000", "#AA4499", "#117733", "#88CCEE", "#DDCC77")
PEER_DASH = "6 3"


def _spread_hue(i: int) -> str:
    """The i-th colour past the fallback palette: golden-angle hues at one lightness."""
    import colorsys
    r, g, b = colorsys.hls_to_rgb((i * 0.381966) % 1.0, 0.42, 0.65)
    return f"#{round(r * 255):02X}{round(g * 255):02X}{round(b * 255):02X}"


FONT = 11            # px, the charts' text size
CHAR = 6.2           # px, an average character at that size (for the legend's layout)


@dataclass
class Palette:
    """One colour per implementation, the same in every chart and table of a report: the colour its
    registry entry declares, else the next fallback colour no other implementation has."""
    roles: dict[str, str] = field(default_factory=dict)          # impl -> "port" | "peer" | "floor" | "control"
    colours: dict[str, str] = field(default_factory=dict)
    declared: set[str] = field(default_factory=set)              # colours entries asked for

    def declare(self, impl: str, role: str, colour: str) -> None:
        """An implementation whose entry names its colour (call before add() of the others)."""
        self.roles.setdefault(impl, role)
        if impl not in self.colours:
            self.colours[impl] = colour
            self.declared.add(colour.upper())

    def add(self, impl: str, role: str) -> None:
        self.roles.setdefault(impl, role)
        if impl not in self.colours:
            taken = {c.upper() for c in self.colours.values()} | self.declared
            free = [c for c in FALLBACK if c.upper() not in taken]
            i = 0
            while not free:
                candidate = _spread_hue(len(self.colours) + i)
                free = [candidate] if candidate not in taken else []
                i += 1
            self.colours[impl] = free[0]

    def style(self, impl: str) -> dict[str, Any]:
        peer = self.roles.get(impl) in ("peer", "floor")   # a reference, drawn dashed
        return {"impl": impl, "colour": self.colours.get(impl, "#59636e"), "peer": peer,
                "dash": PEER_DASH if peer else ""}

    def legend(self) -> list[dict[str, Any]]:
        return [self.style(impl) for impl in self.colours]


# -- scales and ticks --------------------------------------------------------------------------------
@dataclass
class Scale:
    """Maps a value in [lo, hi] to a pixel in [a, b] (b < a for a y axis), linearly or on log10."""
    lo: float
    hi: float
    a: float
    b: float
    log: bool = False

    def __call__(self, v: float) -> float:
        f = (lambda x: math.log10(x)) if self.log else (lambda x: x)
        lo, hi = f(self.lo), f(self.hi)
        if hi == lo:
            return round((self.a + self.b) / 2, 1)
        return round(self.a + (f(max(v, self.lo) if self.log else v) - lo) / (hi - lo) * (self.b - self.a), 1)


def linear_ticks(top: float, count: int = 5) -> list[float]:
    """Ticks from 0 to a round number at or above `top`, at steps of 1, 2, 2.5 or 5 × 10^k."""
    if top <= 0:
        return [0.0, 1.0]
    raw = top / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw * 0.999)
    n = math.ceil(top / step - 1e-9)
    return [round(i * step, 12) for i in range(n + 1)]


def log_ticks(lo: float, hi: float) -> list[float]:
    """1-2-5 ticks spanning [lo, hi] (both > 0); the first and last bound the axis."""
    candidates = [m * 10 ** k for k in range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 2)
                  for m in (1, 2, 5)]
    below = max(c for c in candidates if c <= lo * 1.0001)
    above = min(c for c in candidates if c >= hi * 0.9999)
    ticks = [c for c in candidates if below <= c <= above]
    decades = [t for t in ticks if math.isclose(t, 10 ** round(math.log10(t)))]
    # Over a wide range the decades alone are enough; keep the ends so the axis is bounded.
    if len(decades) >= 3:
        ticks = sorted({below, *decades, above})
    return ticks


# -- the frame both kinds share ----------------------------------------------------------------------
@dataclass
class Frame:
    width: float
    height: float
    left: float
    right: float
    top: float
    bottom: float

    @property
    def plot(self) -> dict[str, float]:
        return {"x": self.left, "y": self.top, "w": self.width - self.left - self.right,
                "h": self.height - self.top - self.bottom}


def _legend(entries: Sequence[dict[str, Any]], x0: float, y0: float, width: float) -> tuple[list[dict[str, Any]], float]:
    """Legend entries laid out in rows from (x0, y0); returns them and the height they take."""
    out, x, y = [], x0, y0
    for e in entries:
        w = 30 + CHAR * len(e["impl"]) + 14
        if x > x0 and x + w > x0 + width:
            x, y = x0, y + 16
        out.append({**e, "x": round(x, 1), "y": round(y, 1)})
        x += w
    return out, (y - y0 + 16) if entries else 0


# -- line charts ------------------------------------------------------------------------------------
def line_chart(*, title: str, series: Sequence[dict[str, Any]], palette: Palette, x_values: Sequence[Any],
               x_label: str, y_label: str, x_log: bool = False, x_names: dict[Any, str] | None = None,
               y_log: bool = False, y_format: Callable[[float], str] = numbers.si,
               width: float = 460, height: float = 300) -> dict[str, Any] | None:
    """A line per series over `x_values` (numbers, on a log scale if `x_log`; otherwise evenly
    spaced categories). Each series is {"impl", "points": [{"x", "median", "min", "max",
    "flags", "label"}]}; points without a median are left out, and a chart with no point at all
    is None (the template then says what is missing instead of drawing empty axes)."""
    series = [{**s, "points": [p for p in s["points"] if p.get("median") is not None]} for s in series]
    series = [s for s in series if s["points"]]
    if not series:
        return None
    xs = [x for x in x_values if any(p["x"] == x for s in series for p in s["points"])]
    values = [v for s in series for p in s["points"] for v in (p.get("min"), p["median"], p.get("max")) if v is not None]
    if y_log:
        positive = [v for v in values if v > 0] or [1.0]
        ticks = log_ticks(min(positive), max(positive))
    else:
        ticks = linear_ticks(max(values))
    y_labels = [numbers.trimmed(y_format(t)) for t in ticks]
    left = 30 + CHAR * max(len(t) for t in y_labels)          # room for the tick labels and the axis title
    legend_entries = [palette.style(s["impl"]) for s in series]
    legend, legend_h = _legend(legend_entries, 12, 36, width - 24)
    frame = Frame(width, height + legend_h, left=left, right=14, top=40 + legend_h, bottom=44)
    plot = frame.plot
    pad = min(28.0, plot["w"] / (2 * max(len(xs), 1)))
    left, right = plot["x"] + pad, plot["x"] + plot["w"] - pad
    if x_log:
        xscale = Scale(min(xs), max(xs), left, right, log=True)
        x_at = {x: xscale(x) for x in xs}
    else:
        step = (right - left) / max(len(xs) - 1, 1)
        x_at = {x: round(left + i * step if len(xs) > 1 else (left + right) / 2, 1) for i, x in enumerate(xs)}
    yscale = Scale(ticks[0], ticks[-1], plot["y"] + plot["h"], plot["y"], log=y_log)
    drawn = []
    for i, s in enumerate(series):
        style = palette.style(s["impl"])
        dodge = (i - (len(series) - 1) / 2) * 4            # side by side, so whiskers at one x do not hide each other
        points = []
        for p in sorted(s["points"], key=lambda p: xs.index(p["x"])):
            cx = round(x_at[p["x"]] + dodge, 1)
            lo, hi = p.get("min"), p.get("max")
            points.append({
                "cx": cx, "cy": yscale(p["median"]), "value": p["median"],
                "y_lo": yscale(lo) if lo is not None else None, "y_hi": yscale(hi) if hi is not None else None,
                "flagged": bool(p.get("flags")),
                "title": f"{s['impl']} · {p['label']}: {y_format(p['median'])}"
                         + (f" (min {y_format(lo)}, max {y_format(hi)})" if lo is not None and hi is not None else "")
                         + "".join(f"\n⚑ {f}" for f in p.get("flags") or ()),
            })
        path = " ".join(f"{'M' if j == 0 else 'L'}{q['cx']},{q['cy']}" for j, q in enumerate(points))
        drawn.append({**style, "path": path if len(points) > 1 else "", "points": points})
    return {
        "kind": "line", "title": title, "width": frame.width, "height": frame.height, "plot": plot,
        "legend": legend, "series": drawn, "x_label": x_label, "y_label": y_label,
        "x_ticks": [{"x": x_at[x], "label": (x_names or {}).get(x, str(x))} for x in xs],
        "y_ticks": [{"y": yscale(t), "label": label} for t, label in zip(ticks, y_labels)],
        "impls": [s["impl"] for s in drawn],
    }


# -- bar charts -------------------------------------------------------------------------------------
BAR, GAP = 14, 5


def bar_chart(*, title: str, bars: Sequence[dict[str, Any]], palette: Palette, x_label: str,
              x_format: Callable[[float], str] = numbers.si, binary: bool = False,
              width: float = 460) -> dict[str, Any] | None:
    """One horizontal bar per entry of `bars` ({"impl", "label", "median", "min", "max", "flags"}),
    from 0 to the median, with a min–max whisker; `binary` puts the ticks at round numbers of
    KiB or MiB rather than of thousands. None when no bar has a value."""
    bars = [b for b in bars if b.get("median") is not None]
    if not bars:
        return None
    label_w = max(60, CHAR * max(len(b["label"]) for b in bars) + 12)
    height = 30 + len(bars) * (BAR + GAP) + 40
    frame = Frame(width, height, left=label_w, right=58, top=30, bottom=40)
    plot = frame.plot
    top = max(max(b["median"], b.get("max") or 0) for b in bars)
    unit = 1024 ** max(0, math.floor(math.log(top, 1024))) if binary and top > 0 else 1
    ticks = [t * unit for t in linear_ticks(top / unit, count=4)]
    xscale = Scale(0, ticks[-1], plot["x"], plot["x"] + plot["w"])
    drawn = []
    for i, b in enumerate(bars):
        y = plot["y"] + GAP / 2 + i * (BAR + GAP)
        lo, hi = b.get("min"), b.get("max")
        flags = list(b.get("flags") or ())
        drawn.append({
            **palette.style(b["impl"]), "label": b["label"], "median": b["median"], "y": round(y, 1), "h": BAR, "x0": plot["x"],
            "w": round(xscale(b["median"]) - plot["x"], 1), "mid": round(y + BAR / 2, 1),
            "lo": xscale(lo) if lo is not None else None, "hi": xscale(hi) if hi is not None else None,
            "value": x_format(b["median"]) + (" ⚑" if flags else ""), "flagged": bool(flags),
            "value_x": round(max(xscale(b["median"]), xscale(hi) if hi is not None else 0) + 4, 1),
            "title": f"{b['label']}: {x_format(b['median'])}"
                     + (f" (min {x_format(lo)}, max {x_format(hi)})" if lo is not None and hi is not None else "")
                     + "".join(f"\n⚑ {f}" for f in flags),
        })
    return {
        "kind": "bars", "title": title, "width": frame.width, "height": frame.height, "plot": plot,
        "bars": drawn, "x_label": x_label, "legend": [],
        "x_ticks": [{"x": xscale(t), "label": numbers.trimmed(x_format(t))} for t in ticks],
        "impls": list(dict.fromkeys(b["impl"] for b in drawn)),
    }
