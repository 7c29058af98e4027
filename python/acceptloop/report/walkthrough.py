"""The side-by-side walkthrough: each step's code, extracted from the marked regions of the real sources.

`docs/walkthrough.toml` defines the steps, the languages each exists in (and why it is
absent from the others), where each language's sources are and how it marks a step, and a
note per step. `load()` reads it and extracts every step's code at render time. Whatever
does not fit raises WalkthroughError, one line naming the step and the language: a step
marked in one language and missing in another, a step marked twice, a marker never closed,
an end marker without a start, a malformed marker, or a marker naming an unknown step.

Steps come in sections: those without a `section` are the ports' accept loop (the
languages without a `section`); a step with `section = "TITLE"` is shown under that title,
with the columns of the languages that name the same section (the hosts of the C core, for
"The same loop from four hosts"), and needs a reason only for those it lacks.

`highlight()` colours a step's code when the report is written, with Pygments (each language's
`lexer` in docs/walkthrough.toml): the page gets plain spans with a few classes of its own,
which its stylesheet colours; nothing is highlighted in the browser.
"""
from __future__ import annotations

import re
import textwrap
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pygments import token as T
from pygments.lexer import Lexer
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

from acceptloop.paths import ROOT

WALKTHROUGH_TOML = ROOT / "docs" / "walkthrough.toml"


class WalkthroughError(Exception):
    """The walkthrough's definition and the marked sources disagree; the message is one line."""


@dataclass(frozen=True)
class Language:
    key: str
    label: str
    root: str                 # the sources, relative to the checkout (several: joined with ", ")
    suffixes: tuple[str, ...]
    start: str                # "# step: {name}"
    end: str                  # "# end step"
    lexer: str = ""           # the Pygments lexer that colours its code (default: the key)
    section: str = ""         # the section whose steps it is a column of ("": the ports' steps)
    roots: tuple[str, ...] = ()   # every directory of its sources (root may list several)

    def start_pattern(self) -> re.Pattern[str]:
        before, _, after = self.start.partition("{name}")
        return re.compile(r"^\s*" + re.escape(before) + r"(?P<name>.+?)" + re.escape(after) + r"\s*$")

    def end_pattern(self) -> re.Pattern[str]:
        return re.compile(r"^\s*" + re.escape(self.end) + r"\s*$")

    def loose_pattern(self, known: set[str]) -> re.Pattern[str]:
        """What looks like a marker of this language (its comment opener, then `step:`, `end step`,
        or `step` and a step's name): a line that matches this but neither exact pattern is malformed."""
        opener = self.start.split("step", 1)[0].strip()
        names = "|".join(re.escape(k) for k in sorted(known, key=len, reverse=True))
        return re.compile(r"^\s*" + re.escape(opener) + r"\s*(?:step\s*:|end[\s_-]*step\b|step\s+(?:"
                          + names + r")\b)", re.I)


@dataclass(frozen=True)
class Region:
    """One step's code in one language: the lines between its markers."""

    step: str
    language: str
    path: str                 # relative to the checkout, with forward slashes
    first_line: int           # of the code, not of the marker
    lines: tuple[str, ...]    # dedented

    @property
    def last_line(self) -> int:
        return self.first_line + len(self.lines) - 1

    @property
    def where(self) -> str:
        """`python/acceptloop/server/net.py:28-43`."""
        return f"{self.path}:{self.first_line}-{self.last_line}"

    @property
    def numbered(self) -> list[tuple[int, str]]:
        return [(self.first_line + i, line) for i, line in enumerate(self.lines)]


@dataclass(frozen=True)
class Step:
    name: str
    languages: tuple[str, ...]          # where it exists, in column order
    absent: dict[str, str]              # language key -> why the step does not exist there
    note: str
    regions: dict[str, Region] = field(default_factory=dict)
    section: str = ""                   # "": the ports' accept loop; else the title it is shown under

    @property
    def anchor(self) -> str:
        return "step-" + re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-")


@dataclass(frozen=True)
class Walkthrough:
    languages: dict[str, Language]      # in column order
    steps: list[Step]

    def columns(self, section: str) -> dict[str, Language]:
        """The languages that are columns of `section`'s steps, in column order."""
        return {k: lang for k, lang in self.languages.items() if lang.section == section}


def _fail(message: str) -> None:
    raise WalkthroughError(message)


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        _fail(f"{what} must be a non-empty string")
    return value.strip()


def read_definition(path: Path) -> Walkthrough:
    """The languages and steps of `path`, checked, without any code yet."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except OSError as e:
        raise WalkthroughError(f"walkthrough definition {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise WalkthroughError(f"walkthrough definition {path}: {e}") from None
    languages: dict[str, Language] = {}
    for key, spec in (data.get("languages") or {}).items():
        where = f"{path.name}: language {key}"
        roots = spec.get("root")
        roots = [roots] if isinstance(roots, str) else roots
        if not isinstance(roots, list) or not roots:
            _fail(f"{where}: root must be a string or a list of strings")
        roots = [_text(r, f"{where}: root") for r in roots]
        suffixes = spec.get("suffixes")
        if not isinstance(suffixes, list) or not suffixes:
            _fail(f"{where}: suffixes must list file endings")
        lang = Language(key=key, label=_text(spec.get("label"), f"{where}: label"),
                        root=", ".join(roots), suffixes=tuple(suffixes),
                        start=_text(spec.get("start"), f"{where}: start"), end=_text(spec.get("end"), f"{where}: end"),
                        lexer=str(spec.get("lexer") or key), section=str(spec.get("section") or "").strip(),
                        roots=tuple(roots))
        if lang.start.count("{name}") != 1:
            _fail(f"{where}: start must hold {{name}} once")
        try:
            lexer(lang.lexer)
        except ClassNotFound:
            _fail(f"{where}: Pygments has no lexer {lang.lexer!r}")
        languages[key] = lang
    if not languages:
        _fail(f"{path.name}: no [languages.*]")
    steps: list[Step] = []
    for spec in data.get("step") or []:
        name = _text(spec.get("name"), f"{path.name}: a step's name")
        where = f"{path.name}: step {name!r}"
        if any(s.name == name for s in steps):
            _fail(f"{where} is defined twice")
        section = str(spec.get("section") or "").strip()
        columns = [k for k, lang in languages.items() if lang.section == section]
        if not columns:
            _fail(f"{where}: no language is a column of section {section!r}")
        present = spec.get("languages")
        if not isinstance(present, list) or not present:
            _fail(f"{where}: languages must list where the step exists")
        unknown = [k for k in present if k not in columns]
        if unknown:
            _fail(f"{where}: unknown language {', '.join(unknown)} (known: {', '.join(columns)})")
        absent = spec.get("absent") or {}
        for key in columns:
            if key not in present and not str(absent.get(key, "")).strip():
                _fail(f"{where} does not exist in {key} but absent.{key} does not say why")
            if key in present and key in absent:
                _fail(f"{where} exists in {key} and also says why it is absent there")
        note = _text(spec.get("note"), f"{where}: note")
        ordered = tuple(k for k in columns if k in present)
        steps.append(Step(name=name, languages=ordered, note=note, section=section,
                          absent={k: " ".join(str(v).split()) for k, v in absent.items()}))
    if not steps:
        _fail(f"{path.name}: no [[step]]")
    return Walkthrough(languages=languages, steps=steps)


def scan(lang: Language, root: Path, known: set[str]) -> dict[str, Region]:
    """Every marked region of `lang` under `root`/`lang.root`, by step name."""
    start_re, end_re, loose_re = lang.start_pattern(), lang.end_pattern(), lang.loose_pattern(known)
    files = []
    for top in lang.roots or (lang.root,):
        base = root / top
        if not base.is_dir():
            _fail(f"walkthrough: {lang.key} sources {top} are not a directory")
        files += sorted(p for p in base.rglob("*") if p.is_file() and p.name.endswith(lang.suffixes))
    found: dict[str, Region] = {}
    for file in files:
        rel = file.relative_to(root).as_posix()
        open_name, open_line, body = None, 0, []
        for number, line in enumerate(file.read_text(errors="replace").splitlines(), start=1):
            start, end = start_re.match(line), end_re.match(line)
            if start:
                name = start.group("name").strip()
                if open_name is not None:
                    _fail(f"walkthrough: step {open_name!r} in {lang.key} ({rel}:{open_line}) is not closed "
                          f"before step {name!r} starts at line {number}")
                if name not in known:
                    _fail(f"walkthrough: unknown step {name!r} in {lang.key} ({rel}:{number}); "
                          f"docs/walkthrough.toml lists {', '.join(sorted(known))}")
                if name in found:
                    _fail(f"walkthrough: step {name!r} is marked twice in {lang.key}: "
                          f"{found[name].path}:{found[name].first_line - 1} and {rel}:{number}")
                open_name, open_line, body = name, number, []
            elif end:
                if open_name is None:
                    _fail(f"walkthrough: {lang.end!r} in {lang.key} ({rel}:{number}) closes no step")
                code = textwrap.dedent("\n".join(body)).split("\n")
                if not any(s.strip() for s in code):
                    _fail(f"walkthrough: step {open_name!r} in {lang.key} ({rel}:{open_line}) marks no code")
                found[open_name] = Region(step=open_name, language=lang.key, path=rel,
                                          first_line=open_line + 1, lines=tuple(code))
                open_name = None
            elif loose_re.match(line):
                _fail(f"walkthrough: malformed step marker in {lang.key} ({rel}:{number}): {line.strip()!r}; "
                      f"expected {lang.start!r} or {lang.end!r}")
            elif open_name is not None:
                body.append(line.rstrip().expandtabs(4))
        if open_name is not None:
            _fail(f"walkthrough: step {open_name!r} in {lang.key} ({rel}:{open_line}) is never closed "
                  f"(no {lang.end!r} after it)")
    return found


def load(definition: Path | None = None, root: Path | None = None) -> Walkthrough:
    """The walkthrough with every step's code, from the sources under `root` (default: this checkout)."""
    walk = read_definition(definition or WALKTHROUGH_TOML)
    root = root or ROOT
    known = {s.name for s in walk.steps}
    regions = {key: scan(lang, root, known) for key, lang in walk.languages.items()}
    steps = []
    for step in walk.steps:
        for key, lang in walk.languages.items():
            region = regions[key].get(step.name)
            if lang.section != step.section and region is None:
                continue
            if key in step.languages and region is None:
                marked = [k for k in step.languages if step.name in regions[k]]
                marker = lang.start.replace("{name}", step.name)
                _fail(f"walkthrough: step {step.name!r} is not marked in {key} (no {marker!r} under {lang.root})"
                      + (f" but is in {', '.join(marked)}" if marked else ""))
            if key not in step.languages and region is not None:
                _fail(f"walkthrough: step {step.name!r} is marked in {key} ({region.where}), "
                      f"where docs/walkthrough.toml says it does not exist")
        steps.append(Step(name=step.name, languages=step.languages, absent=step.absent, note=step.note,
                          regions={k: regions[k][step.name] for k in step.languages}, section=step.section))
    return Walkthrough(languages=walk.languages, steps=steps)


def paragraphs(text: str) -> list[list[tuple[str, bool]]]:
    """A note as paragraphs of (text, is_code) runs: blank lines part paragraphs, `backticks` mark code."""
    out = []
    for para in re.split(r"\n\s*\n", text.strip()):
        joined = " ".join(para.split())
        parts = joined.split("`")
        out.append([(part, i % 2 == 1) for i, part in enumerate(parts) if part])
    return out


# The token classes the page colours (style.css.j2's `pre.code .k` and the rest), the first
# that a token's type falls under; every other token (names, operators, punctuation) is plain.
TOKEN_CLASSES: tuple[tuple[Any, str], ...] = (
    (T.Comment.PreprocFile, "s"),     # <stdio.h>
    (T.Comment.Preproc, "pp"),        # #include, #define
    (T.Comment, "c"),
    (T.Keyword.Type, "kt"),           # int, size_t, void
    (T.Keyword, "k"),
    (T.Operator.Word, "k"),           # and, or, not, in
    (T.Name.Function, "nf"),          # a function being defined
    (T.Name.Class, "nc"),
    (T.Name.Decorator, "nd"),
    (T.Name.Builtin, "nb"),           # len, socket_create, ...
    (T.String, "s"),
    (T.Number, "m"),
)


def lexer(name: str) -> Lexer:
    """Pygments' lexer `name`, keeping every line as it is (PHP's code starts without `<?php`)."""
    return get_lexer_by_name(name, stripnl=False, stripall=False, ensurenl=True, startinline=True)


def token_class(ttype: Any) -> str:
    return next((cls for parent, cls in TOKEN_CLASSES if ttype in parent), "")


def highlight(lines: tuple[str, ...] | list[str], lexer_name: str) -> list[list[tuple[str, str]]]:
    """Each line as (class, text) runs, class "" for plain text: the runs of a line join to exactly
    that line (a token across lines, such as a docstring, is cut at each line's end)."""
    out: list[list[tuple[str, str]]] = [[]]
    for ttype, value in lexer(lexer_name).get_tokens("\n".join(lines) + "\n"):
        cls = token_class(ttype)
        for i, part in enumerate(value.split("\n")):
            if i:
                out.append([])
            if not part:
                continue
            line = out[-1]
            if line and (line[-1][0] == cls or not part.strip()):     # spaces join the run before them
                line[-1] = (line[-1][0], line[-1][1] + part)
            else:
                line.append((cls, part))
    out = out[:len(lines)]
    if ["".join(text for _, text in line) for line in out] != list(lines):   # never show other code than the file's
        return [[("", line)] if line else [] for line in lines]
    return out
