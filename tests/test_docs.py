"""The documents keep up with the code: docs/design.md's vocabulary names exist in every port, the
scenarios docs/failure-modes.md names exist, and the README points at nothing outside the checkout."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from acceptloop.paths import ROOT
from acceptloop.report import vocabulary
from acceptloop.suite.catalog import all_scenarios


def test_every_name_of_the_vocabulary_is_in_its_port():
    assert vocabulary.missing() == []


def test_a_name_the_table_promises_and_a_port_lacks_is_an_error(tmp_path):
    design = tmp_path / "design.md"
    design.write_text(f"{vocabulary.HEADING}\n\n| idea | C (`cext/`) | PHP (`php/src/`) |\n|---|---|---|\n"
                      "| resolve the host | `al_resolve` | `resolve` |\n"
                      "| a helper nobody wrote | `al_no_such_helper` | – (none: PHP has no such thing) |\n"
                      "\n## Next section\n| not | `part_of_it` | `at_all` |\n")
    assert vocabulary.missing(design) == ["C: al_no_such_helper (a helper nobody wrote)"]
    with pytest.raises(vocabulary.VocabularyError, match="al_no_such_helper"):
        vocabulary.check(design)


def test_every_scenario_docs_failure_modes_names_exists():
    ids = {s.id for s in all_scenarios()}
    text = (ROOT / "docs" / "failure-modes.md").read_text()
    named = set(re.findall(r"`((?:echo|discard|chargen|daytime|message|concurrency|leaks|lifecycle|robustness)"
                           r"\.[a-z0-9_*]+)`", text))
    assert named, "the table names scenarios"
    for name in named:
        pattern = re.compile(re.escape(name).replace(r"\*", ".*") + "$")
        assert any(pattern.match(i) for i in ids), f"docs/failure-modes.md names {name}, which no scenario is"


@pytest.mark.parametrize("document", ["README.md", *sorted(p.relative_to(ROOT).as_posix()
                                                              for p in (ROOT / "docs").glob("*.md"))])
def test_no_document_points_outside_the_checkout(document):
    text = (ROOT / document).read_text()
    outside = "../" + "shared"      # spelled in two parts, so that this test is not itself a pointer there
    assert outside not in text and "](../" not in text, f"{document} points outside the repository"


def test_pytest_k_runs_only_the_cells_it_selects_as_the_readme_says():
    # The matrix runs every cell the selected tests need at the first one's request: it must be
    # told the selection after -k has deselected the rest, or one cell would run them all.
    env = {**os.environ, "ACCEPTLOOP_SHOW_WANTED": "1"}
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-s", "-p", "no:cacheprovider",
                          str(ROOT / "tests" / "test_conformance.py"), "-k", "c-event-round_trip"],
                         capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert "acceptloop: 1 cell(s) wanted" in out.stdout, out.stdout[-2000:] + out.stderr[-2000:]
