"""`acceptloop generate`: render protocol.toml into the Python, C and PHP constants files.

Each generated file is committed and names its source in its first line. With
`--check` nothing is written: every file that differs from a fresh rendering is
named, and the exit status is 1.
"""
from __future__ import annotations

import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from acceptloop.paths import PROTOCOL_TOML, ROOT
from acceptloop.render import render


@dataclass(frozen=True)
class Target:
    template: str   # under templates/
    output: str     # relative to the checkout


TARGETS = (
    Target("_protocol.py.j2", "python/acceptloop/_protocol.py"),
    Target("protocol.h.j2", "cext/protocol.h"),
    Target("Protocol.php.j2", "php/src/Protocol.php"),
)


def load_definition(path: Path = PROTOCOL_TOML) -> dict[str, Any]:
    with path.open("rb") as f:
        return tomllib.load(f)


def context(definition: dict[str, Any], source: Path) -> dict[str, Any]:
    """The explicit context every protocol template gets."""
    chargen = definition["chargen"]
    options = definition["options"]
    return {
        "p": definition,
        "source": source.relative_to(ROOT).as_posix() if source.is_relative_to(ROOT) else str(source),
        "services": [s["name"] for s in definition["services"]],
        "models": [m["name"] for m in definition["models"]],
        "chargen_alphabet": "".join(chr(c) for c in range(chargen["first_char"], chargen["last_char"] + 1)),
        "options": options,
        "defaults": {o["name"]: o["default"] for o in options},
    }


def render_all(definition_path: Path = PROTOCOL_TOML) -> dict[Path, str]:
    """Every target's path and the text it should hold."""
    ctx = context(load_definition(definition_path), definition_path)
    out = {}
    for target in TARGETS:
        out[ROOT / target.output] = render(target.template, {**ctx, "template": target.template})
    return out


def main(check: bool, definition_path: Path = PROTOCOL_TOML) -> int:
    try:
        rendered = render_all(definition_path)
    except (OSError, tomllib.TOMLDecodeError, KeyError) as e:
        print(f"generate: {definition_path}: {e}", file=sys.stderr)
        return 1
    stale = []
    for path, text in rendered.items():
        current = path.read_text() if path.exists() else None
        if current == text:
            continue
        stale.append(path)
        if not check:
            path.write_text(text)
    rel = [p.relative_to(ROOT).as_posix() for p in stale]
    if check:
        for name in rel:
            print(f"generate --check: {name} is stale; run `acceptloop generate`", file=sys.stderr)
        return 1 if stale else 0
    for name in rel:
        print(f"wrote {name}")
    return 0
