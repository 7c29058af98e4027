"""One run of `acceptloop check`: what to run, running it so that an interrupt loses nothing, the
files it leaves, and the exit code.

Exit codes (README, `acceptloop check --help`):
    0    nothing FAILED or ERROR (with --strict: nothing NON-STRICT either)
    1    a cell FAILED (or, with --strict, was NON-STRICT)
    2    a bad selection or registry: one line, before any cell runs
    3    a cell is ERROR (the kit's own failure) and nothing FAILED
    130  interrupted (Ctrl-C or SIGTERM): what ran is written, every server the kit started is gone
"""
from __future__ import annotations

import shlex
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from acceptloop.suite import matrix, results as results_io, runner
from acceptloop.suite.catalog import all_scenarios
from acceptloop.suite.process import terminate_all
from acceptloop.suite.registry import Implementation, RegistryError, parse_entry
from acceptloop.suite.scenario import ERROR, FAILED, KIT_STALLED, NON_STRICT, Result

EXIT_OK, EXIT_FAILED, EXIT_SELECTION, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
# Where every run leaves its results, for --last-failed (as pytest keeps its cache).
LAST_RESULTS = Path(".acceptloop") / "last-check.json"
TARGET_NAME = "target"


class SelectionError(Exception):
    """The selection cannot be run (bad names, nothing matches, no earlier results): exit 2."""


@dataclass
class Selection:
    """What the command line asks for, as runner.plan takes it."""

    implementations: list[Path] = field(default_factory=list)
    impl: list[str] | None = None
    model: list[str] | None = None
    service: list[str] | None = None
    keyword: str | None = None
    cells: list[str] | None = None
    target: str | None = None
    follows: list[str] | None = None
    last_failed: bool = False


def target_implementation(target: str, service: str, model: str, follows: Sequence[str] | None) -> Implementation:
    """The running server at HOST:PORT as a registry entry of its own (it promises the RFC's
    service unless --follows says more)."""
    entry: dict[str, Any] = {"name": TARGET_NAME, "language": f"the server at {target}", "address": target,
                             "models": [model], "services": [service]}
    if follows:
        entry["follows"] = list(follows)
    return parse_entry(entry, "--target")


def implementations(sel: Selection, include_peers: bool = False) -> list[Implementation]:
    """The implementations the selection names: --target alone, --impl from the registry (and the
    extra files), or every port (and the peers if asked)."""
    from acceptloop.suite import registry

    if sel.target is not None:
        if not sel.service or len(sel.service) != 1:
            raise SelectionError("--target needs exactly one --service: the one the server at that address offers")
        if sel.model and len(sel.model) != 1:
            raise SelectionError("--target takes one --model: how the server at that address serves")
        return [target_implementation(sel.target, sel.service[0], sel.model[0] if sel.model else "event",
                                      sel.follows)]
    impls = registry.load(sel.implementations)
    if sel.impl:
        names = {i.name for i in impls}
        unknown = [n for n in sel.impl if n not in names]
        if unknown:
            raise SelectionError(f"unknown implementation {', '.join(unknown)} (known: {', '.join(sorted(names))})")
        chosen = [i for i in impls if i.name in sel.impl]
        floors = [i.name for i in chosen if i.role == registry.FLOOR]
        if floors and not include_peers:
            raise SelectionError(f"{', '.join(floors)} claims no conformance (role \"floor\"): the benchmark "
                                 "measures it, acceptloop check does not grade it")
        return chosen
    if include_peers:
        return [i for i in impls if i.role != registry.FLOOR]
    return [i for i in impls if i.role == "port"]


def floors(sel: Selection) -> list[Implementation]:
    """The registry's floor entries (role "floor"): the benchmark measures them in every run, whatever
    the selection names, so that every cell has its ratio to the floor."""
    from acceptloop.suite import registry

    if sel.target is not None:
        return []
    return [i for i in registry.load(sel.implementations) if i.role == registry.FLOOR]


def last_failed_cells(path: Path = LAST_RESULTS) -> list[str]:
    """The cells that FAILED or were ERROR in the last run; SelectionError when there is none."""
    if not path.exists():
        raise SelectionError(f"--last-failed: no results of an earlier run in {path} (run `acceptloop check` first)")
    try:
        document = results_io.read_json(path)
    except results_io.ResultsError as e:
        raise SelectionError(f"--last-failed: {e}") from None
    return [r.cell for r in document["results"] if r.grade in (FAILED, ERROR)]


def plan(sel: Selection) -> tuple[list[Implementation], list[runner.Cell]]:
    """The implementations and the cells to run; SelectionError (or RegistryError) when the selection
    cannot be run."""
    impls = implementations(sel)
    only = sel.cells
    if sel.last_failed:
        only = last_failed_cells() if only is None else [c for c in only if c in set(last_failed_cells())]
        if not only:
            raise SelectionError("--last-failed: nothing FAILED or was ERROR in the last run")
    try:
        cells = runner.plan(impls, sel.model if sel.target is None else None, sel.service, sel.keyword,
                            cells_only=only)
    except ValueError as e:
        raise SelectionError(str(e)) from None
    if not cells:
        raise SelectionError("nothing matches that selection")
    if sel.cells:
        known = {c.id for c in cells}
        unknown = [c for c in sel.cells if c not in known]
        if unknown and not sel.last_failed:
            raise SelectionError(f"--cell: no such cell {unknown[0]!r} (see --list)")
    return impls, cells


def rerun_command(result: Result, sel: Selection) -> str:
    """The exact command that runs this one cell again."""
    words = ["acceptloop", "check"]
    for path in sel.implementations:
        words += ["--implementations", str(path)]
    if sel.target is not None:
        words += ["--target", sel.target, "--service", *(sel.service or [])]
        if sel.model:
            words += ["--model", sel.model[0]]
        if sel.follows:
            words += ["--follows", *sel.follows]
    words += ["--cell", result.cell]
    return " ".join(shlex.quote(w) for w in words)


def exit_code(results: Sequence[Result], strict: bool) -> int:
    grades = {r.grade for r in results}
    if FAILED in grades or (strict and NON_STRICT in grades):
        return EXIT_FAILED
    if ERROR in grades:
        return EXIT_ERROR
    return EXIT_OK


def write_results(path: Path | None, junit: Path | None, impls: Sequence[Implementation],
                  results: Sequence[Result], provenance: dict[str, Any]) -> list[str]:
    """The JSON (to `path` and to LAST_RESULTS) and JUnit files; the lines saying where they are."""
    doc = results_io.to_document(impls, all_scenarios(), results, provenance)
    said = []
    for where in ([path] if path else []) + [LAST_RESULTS]:
        try:
            results_io.write_json(where, doc)
        except OSError as e:
            print(f"acceptloop check: cannot write {where}: {e.strerror}", file=sys.stderr)
            continue
        if where == path:
            said.append(f"results: {path}")
    if junit:
        try:
            results_io.write_junit(junit, results)
            said.append(f"junit: {junit}")
        except OSError as e:
            print(f"acceptloop check: cannot write {junit}: {e.strerror}", file=sys.stderr)
    return said


class _Interrupted(BaseException):
    """The kit was told to stop (SIGTERM); Ctrl-C arrives as KeyboardInterrupt."""


def _first_failure(result: Result) -> bool:
    """-x: a FAILED or ERROR cell ends the run; not one the kit's own stall made ERROR, which runs
    again alone once the others are done (runner.run_again_alone) and may pass then."""
    return result.grade == FAILED or (result.grade == ERROR and not result.reason.startswith(KIT_STALLED))


def _raise_interrupted(signum: int, frame: object) -> None:
    raise _Interrupted()


def run(sel: Selection, *, json_path: Path | None, junit: Path | None, quiet: bool, list_only: bool,
        first_failure: bool, strict: bool, provenance: Callable[[], dict[str, Any]], jobs: int = 1) -> int:
    """The whole command: plan, run (or list), report, write the files; returns the exit code."""
    try:
        impls, cells = plan(sel)
    except (SelectionError, RegistryError) as e:
        print(f"acceptloop check: {e}", file=sys.stderr)
        return EXIT_SELECTION
    if list_only:
        for cell in cells:
            print(cell.id)
        return EXIT_OK
    started = time.monotonic()
    tty = sys.stderr.isatty()

    def progress(done: int, total: int, cell: runner.Cell, result: Result) -> None:
        if quiet:
            return
        line = f"[{done:>4}/{total}] {time.monotonic() - started:6.1f}s {cell.id}: {result.grade}"
        if tty:
            sys.stderr.write("\r\033[K" + line[:150] + ("\n" if done == total else ""))
        elif result.grade in (FAILED, ERROR) or done == total or done % 25 == 0:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    results: list[Result] = []
    order = {cell.id: i for i, cell in enumerate(cells)}
    previous = signal.signal(signal.SIGTERM, _raise_interrupted)
    interrupted = False
    try:
        runner.run(cells, progress=progress, results=results,
                   stop=_first_failure if first_failure else None, jobs=jobs)
    except (KeyboardInterrupt, _Interrupted):
        interrupted = True
        # Nothing more may interrupt the clean-up: it is bounded (SIGTERM, then SIGKILL).
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        terminate_all()
    finally:
        signal.signal(signal.SIGTERM, previous)
    said = write_results(json_path, junit, impls, results, provenance())
    if interrupted:
        results.sort(key=lambda r: order.get(r.cell, len(order)))
        where = f"; results so far: {json_path}" if json_path else ""
        if tty and not quiet:
            sys.stderr.write("\n")
        print(f"acceptloop check: interrupted after {len(results)} of {len(cells)} cells{where}", file=sys.stderr)
        return EXIT_INTERRUPTED
    matrix.print_report(results, order=[s.id for s in all_scenarios()], rerun=lambda r: rerun_command(r, sel))
    for line in said:
        print(line)
    return exit_code(results, strict)
