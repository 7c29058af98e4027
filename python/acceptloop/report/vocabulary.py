"""The vocabulary of docs/design.md: one name per step and helper, in every port.

docs/design.md keeps a table whose rows are ideas and whose columns are the ports, each cell
the name (or names) that idea has in that port's sources. `check` reads the table and looks
for every name, as a whole word, in the sources of the column's folder (named in the column's
header, e.g. "C (`cext/`)"): a name the table promises and a port no longer has is an error,
so the table and the code cannot drift apart. A cell that starts with "–" promises nothing.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from acceptloop.paths import ROOT
from acceptloop.report.walkthrough import WalkthroughError

DESIGN = ROOT / "docs" / "design.md"
HEADING = "## The vocabulary"
SUFFIXES = {".py", ".c", ".h", ".php"}


class VocabularyError(WalkthroughError):
    """The table cannot be read, or a port lacks a name the table gives it; one line says which."""


@dataclass(frozen=True)
class Column:
    port: str       # "Python"
    folder: Path    # ROOT / "python/acceptloop/server"


def read_table(path: Path = DESIGN) -> tuple[list[Column], list[tuple[str, list[list[str]]]]]:
    """The table's columns and its rows: (idea, [names per column])."""
    try:
        text = path.read_text()
    except OSError as e:
        raise VocabularyError(f"{path}: {e.strerror}") from None
    if HEADING not in text:
        raise VocabularyError(f"{path}: no section '{HEADING}'")
    section = text.split(HEADING, 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    if len(lines) < 3:
        raise VocabularyError(f"{path}: the vocabulary section has no table")
    header = _cells(lines[0])[1:]
    columns = []
    for cell in header:
        m = re.match(r"(.+?)\s*\(`([^`]+)`\)", cell)
        if not m:
            raise VocabularyError(f"{path}: the column {cell!r} names no folder, e.g. C (`cext/`)")
        columns.append(Column(m.group(1), ROOT / m.group(2)))
    rows = []
    for line in lines[2:]:
        cells = _cells(line)
        if len(cells) != len(columns) + 1:
            raise VocabularyError(f"{path}: the row {cells[0]!r} has {len(cells) - 1} cells for {len(columns)} ports")
        rows.append((cells[0], [_names(c) for c in cells[1:]]))
    return columns, rows


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _names(cell: str) -> list[str]:
    """The identifiers a cell promises: every `code` span before a "–" (a dash promises none)."""
    promised = cell.split("–", 1)[0]
    return [name for span in re.findall(r"`([^`]+)`", promised) for name in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", span)]


def missing(path: Path = DESIGN) -> list[str]:
    """Every promised name a port's sources lack, as `port: name (idea)`."""
    columns, rows = read_table(path)
    words = {column.port: _words(column.folder) for column in columns}
    return [f"{column.port}: {name} ({idea})"
            for idea, names in rows for column, cell in zip(columns, names)
            for name in cell if name not in words[column.port]]


def _words(folder: Path) -> set[str]:
    if not folder.is_dir():
        raise VocabularyError(f"{folder}: no such folder (named by docs/design.md's vocabulary)")
    found: set[str] = set()
    for path in folder.rglob("*"):
        if path.suffix in SUFFIXES and path.is_file():
            found.update(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", path.read_text(errors="replace")))
    return found


def check(path: Path = DESIGN) -> None:
    """VocabularyError naming the first few names a port lacks; None when every name is there."""
    lacking = missing(path)
    if lacking:
        more = f" (and {len(lacking) - 3} more)" if len(lacking) > 3 else ""
        raise VocabularyError(f"docs/design.md's vocabulary promises names a port lacks: {'; '.join(lacking[:3])}{more}")
