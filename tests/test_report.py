"""`acceptloop report`: the page and the summary built from a results file, the walkthrough
extracted from the marked sources (and its errors), and the page as headless Chromium shows it.

The results come from tests/fixtures/results-failed-missing.json: two implementations, a
few scenarios, one FAILED, one NON-STRICT, MISSING and INFO cells, rows that agree and rows
that do not.
"""
from __future__ import annotations

import json
import os
import re
import textwrap
from html.parser import HTMLParser
from pathlib import Path

import pytest

from acceptloop import cli
from acceptloop.report import build, cells, walkthrough
from acceptloop.suite import matrix
from acceptloop.suite import results as results_io

FIXTURE = Path(__file__).parent / "fixtures" / "results-failed-missing.json"
CHROMIUM = os.environ.get("ACCEPTLOOP_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


# -- a small DOM, from the standard library's parser ------------------------------------------
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Node:
    def __init__(self, tag: str, attrs: dict[str, str], parent: "Node | None") -> None:
        self.tag, self.attrs, self.parent, self.children = tag, attrs, parent, []

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def walk(self):
        for c in self.children:
            if isinstance(c, Node):
                yield c
                yield from c.walk()

    def find(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> list["Node"]:
        return [n for n in self.walk() if (tag is None or n.tag == tag) and (cls is None or cls in n.classes)
                and all(n.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())]

    def one(self, *args, **kw) -> "Node":
        found = self.find(*args, **kw)
        assert len(found) == 1, f"expected one {args} {kw}, found {len(found)}"
        return found[0]


class Page(HTMLParser):
    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {}, None)
        self.here = self.root
        self.feed(html)
        self.close()
        self.ids = {n.attrs["id"]: n for n in self.root.walk() if "id" in n.attrs}

    def handle_starttag(self, tag, attrs):
        node = Node(tag, {k: v or "" for k, v in attrs}, self.here)
        self.here.children.append(node)
        if tag not in VOID:
            self.here = node

    def handle_startendtag(self, tag, attrs):
        self.here.children.append(Node(tag, {k: v or "" for k, v in attrs}, self.here))

    def handle_endtag(self, tag):
        node = self.here
        while node is not self.root and node.tag != tag:
            node = node.parent
        if node is not self.root:
            self.here = node.parent

    def handle_data(self, data):
        self.here.children.append(data)


# -- the report built from the fixture ----------------------------------------------------------
@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    index = build.write_report(FIXTURE, out / "no-bench.json", out, command=["acceptloop", "report"],
                               bench_required=False)
    html = index.read_text()
    return {"index": index, "html": html, "page": Page(html), "md": (out / "REPORT.md").read_text(),
            "doc": results_io.read_json(FIXTURE), "raw": json.loads(FIXTURE.read_text())}


def test_the_fixture_holds_a_failed_and_a_missing_cell_of_two_implementations(built):
    grades = {r.grade for r in built["doc"]["results"]}
    assert {"FAILED", "MISSING", "NON-STRICT", "INFO", "OK"} <= grades
    assert len({r.impl for r in built["doc"]["results"]}) == 2


def test_every_implementation_model_and_scenario_of_the_results_appears(built):
    page, results = built["page"], built["doc"]["results"]
    assert {n.attrs["data-impl"] for n in page.root.find("th", "impl")} == {r.impl for r in results}
    assert {(n.attrs["data-impl"], n.attrs["data-model"]) for n in page.root.find("th", "model")} == \
        {(r.impl, r.model) for r in results}
    rows = [n.attrs["data-scenario"] for n in page.root.find("tr", "row")]
    assert rows == matrix.rows(results, [s["id"] for s in built["doc"]["scenarios"]])
    groups = [n.attrs["data-group"] for n in page.root.find("tbody", "group")]
    assert groups == list(dict.fromkeys(s.split(".")[0] for s in rows))
    for r in results:
        anchor = cells.anchor(r.impl, r.model, r.scenario)
        row = page.root.one("tr", data_scenario=r.scenario)
        links = [a for a in row.find("a") if a.attrs.get("href") == f"#{anchor}"]
        assert len(links) == 1, f"{r.cell}: no link to its detail"
        detail = page.ids[anchor]
        assert "detail" in detail.classes and detail.attrs["data-grade"] == r.grade


def test_a_failed_cell_shows_its_grade_colour_reason_checks_transcript_and_stderr(built):
    page = built["page"]
    failed = [r for r in built["doc"]["results"] if r.grade == "FAILED"]
    assert failed
    for r in failed:
        anchor = cells.anchor(r.impl, r.model, r.scenario)
        cell = next(td for td in page.root.find("td", "cell") if td.find("a", href=f"#{anchor}"))
        assert "g-failed" in cell.classes and cell.text().strip() == "FAIL"
        detail = page.ids[anchor]
        text = " ".join(detail.text().split())
        assert "FAILED" in [b.text() for b in detail.find("span", "badge")]
        assert r.reason in text
        for c in r.checks:
            assert c.what in text and c.expected in text and c.observed in text
        failing = [tr for tr in detail.find("tr", "fail")]
        assert len(failing) == sum(not c.ok for c in r.checks)
        dumps = "\n".join(p.text() for p in detail.find("pre", "hex"))
        assert "00000000  00 01 02 03" in dumps and "|" in dumps          # hex and printable
        stderr = detail.one("pre", "stderr")
        assert "<b>not markup</b> & more" in stderr.text() and not stderr.find("b")   # escaped, not markup
        assert "FIN" in text and "closed first: server" in text


def test_a_missing_cell_shows_its_grade_colour_and_reason(built):
    page = built["page"]
    missing = [r for r in built["doc"]["results"] if r.grade == "MISSING"]
    assert missing
    for r in missing:
        anchor = cells.anchor(r.impl, r.model, r.scenario)
        cell = next(td for td in page.root.find("td", "cell") if td.find("a", href=f"#{anchor}"))
        assert "g-missing" in cell.classes and cell.text().strip() == "miss"
        assert r.reason in cell.find("a")[0].attrs["title"]
        detail = page.ids[anchor]
        text = " ".join(detail.text().split())
        assert "MISSING" in [b.text() for b in detail.find("span", "badge")]
        assert f"Not run: {r.reason}" in text
        assert not detail.find("pre", "hex") and not detail.find("table", "checks")


def test_every_grade_has_a_colour_and_a_legend_entry(built):
    style = "".join(s.text() for s in built["page"].root.find("style"))
    legend = built["page"].root.one("ul", "legend").text()
    for grade, cls in cells.GRADE_CLASS.items():
        assert re.search(rf"\.g-{cls}\s*{{[^}}]*background", style), f"no colour for {grade}"
        assert grade in legend


def test_the_filter_hides_exactly_the_rows_where_implementations_agree(built):
    page, doc = built["page"], built["doc"]
    differing = set(matrix.disagreements(doc["results"], [s["id"] for s in doc["scenarios"]]))
    assert differing and len(differing) < len(page.root.find("tr", "row"))
    for row in page.root.find("tr", "row"):
        assert ("agree" in row.classes) == (row.attrs["data-scenario"] not in differing), row.attrs["data-scenario"]
        assert ("disagree" in row.classes) == (row.attrs["data-scenario"] in differing)
    for group in page.root.find("tbody", "group"):
        rows = group.find("tr", "row")
        assert ("agree" in group.classes) == all("agree" in r.classes for r in rows)
    toggle = page.ids["only-disagreements"]
    assert toggle.tag == "input" and toggle.attrs["type"] == "checkbox"
    style = "".join(s.text() for s in page.root.find("style"))
    script = "".join(s.text() for s in page.root.find("script"))
    assert re.search(r"#matrix\.only-disagreements \.agree[^{]*\{\s*display:\s*none", style)
    assert 'classList.toggle("only-disagreements", toggle.checked)' in script


def test_the_page_references_nothing_outside_itself(built):
    page, html = built["page"], built["html"]
    outside = {"link", "img", "iframe", "object", "embed", "source", "video", "audio", "base", "frame", "track"}
    assert not [n.tag for n in page.root.walk() if n.tag in outside]
    for n in page.root.walk():
        for attr in ("src", "srcset", "action", "formaction", "poster", "data", "background", "xlink:href"):
            assert attr not in n.attrs, f"<{n.tag} {attr}=...>"
        href = n.attrs.get("href")
        if href is not None:
            assert href.startswith("#") and href[1:] in page.ids, f"<{n.tag} href={href!r}> is not a link within the page"
    style = "".join(s.text() for s in page.root.find("style"))
    assert "url(" not in style and "@import" not in style
    script = "".join(s.text() for s in page.root.find("script"))
    for call in ("fetch(", "XMLHttpRequest", "import(", "WebSocket", "EventSource", "sendBeacon", "http"):
        assert call not in script
    assert not re.search(r"""(?:href|src)\s*=\s*["']?(?:https?:)?//""", html)


def test_every_walkthrough_step_has_code_for_every_language_it_is_declared_in(built):
    page = built["page"]
    walk = walkthrough.load()
    assert [s.name for s in walk.steps] == [n.attrs["data-step"] for n in page.root.find("article", "step")]
    expected_names = {"resolve", "socket", "options", "bind", "listen", "accept", "read/write", "shutdown and close",
                      "loop iterative", "loop fork", "loop threads", "loop event"}
    assert {s.name for s in walk.steps} == expected_names
    for step in walk.steps:
        article = page.root.one("article", data_step=step.name)
        assert " ".join(article.one("div", "note").text().split()), f"{step.name}: no note"
        for key, lang in walk.languages.items():
            column = article.one("div", "code-col", data_language=key)
            if key in step.languages:
                region = step.regions[key]
                lines = column.one("pre", "code").find("span", "ln")
                assert lines and any(line.text().strip() for line in lines), f"{step.name}/{key}: no code"
                assert column.attrs["data-where"] == region.where
                # The code shown is the code in the file, at the lines it names.
                source = (walkthrough.ROOT / region.path).read_text().splitlines()
                shown = [line.text().rstrip("\n") for line in lines]
                original = source[region.first_line - 1:region.last_line]
                assert [s.strip() for s in shown] == [s.strip() for s in original], f"{step.name}/{key}"
                assert [int(line.attrs["data-n"]) for line in lines] == list(range(region.first_line, region.last_line + 1))
            else:
                why = " ".join(column.one("div", "absent-lang").text().split())
                assert step.absent[key] in why and f"No {lang.label} code" in why
    threads = walk.steps[[s.name for s in walk.steps].index("loop threads")]
    assert threads.languages == ("python", "c") and "threads" in threads.absent["php"]


def test_the_performance_section_says_how_to_produce_its_figures(built):
    placeholder = built["page"].ids["performance-placeholder"]
    assert "acceptloop bench" in placeholder.text()


def test_a_bench_file_comes_into_the_performance_section(tmp_path):
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps({"schema": "acceptloop.bench/1", "provenance": {"cpu": "Bench CPU"}}))
    index = build.write_report(FIXTURE, bench, tmp_path / "out")
    section = Page(index.read_text()).ids["performance"]
    assert "acceptloop.bench/1" in section.text() and "Bench CPU" in section.text()
    assert "performance-placeholder" not in Page(index.read_text()).ids


def test_provenance_names_the_machine_the_tools_and_the_commands(built):
    text = " ".join(built["page"].ids["provenance"].text().split())
    prov = built["raw"]["provenance"]
    for key in ("date", "commit", "cpu", "cpus", "kernel", "python", "php", "gcc", "cffi", "command"):
        assert str(prov[key]) in text, key
    assert "acceptloop report" in text
    for impl in built["raw"]["implementations"]:
        assert impl["command"] in text


def test_the_markdown_summary_has_provenance_counts_matrix_disagreements_and_reasons(built):
    md, doc = built["md"], built["doc"]
    for key in ("date", "commit", "cpu", "kernel", "php", "gcc", "cffi"):
        assert str(built["raw"]["provenance"][key]) in md
    for grade in ("OK", "NON-STRICT", "FAILED", "INFO", "MISSING"):
        count = sum(r.grade == grade for r in doc["results"])
        assert f"| {grade} | {count} |" in md
    table = [line for line in md.splitlines() if line.startswith("| ") and "." in line.split("|")[1]]
    assert [line.split("|")[1].strip() for line in table][:len(doc["scenarios"])] == \
        matrix.rows(doc["results"], [s["id"] for s in doc["scenarios"]])
    disagreements = md.split("## Disagreements", 1)[1].split("##", 1)[0]
    for scenario in matrix.disagreements(doc["results"], [s["id"] for s in doc["scenarios"]]):
        assert f"`{scenario}`" in disagreements
    for r in doc["results"]:
        if r.grade in ("FAILED", "NON-STRICT"):
            assert f"**{r.grade}** {r.impl}/{r.model} `{r.scenario}`: {r.reason}" in md
        if r.grade == "MISSING":
            assert f"{r.impl}/{r.model} `{r.scenario}`: {r.reason}" in md


# -- the command ----------------------------------------------------------------------------------
def test_acceptloop_report_writes_both_files_and_prints_the_page_path(tmp_path, capsys):
    rc = cli.main(["report", "--results", str(FIXTURE), "--out", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert out.strip() == str(tmp_path / "out" / "index.html")
    assert (tmp_path / "out" / "index.html").stat().st_size > 0 and (tmp_path / "out" / "REPORT.md").exists()


@pytest.mark.parametrize("content", [None, "not json", '{"schema": "something else"}'],
                         ids=["absent", "not_json", "another_schema"])
def test_acceptloop_report_on_unreadable_results_says_so_in_one_line_and_exits_2(tmp_path, capsys, content):
    results = tmp_path / "check.json"
    if content is not None:
        results.write_text(content)
    rc = cli.main(["report", "--results", str(results), "--out", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert rc == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("acceptloop report: ") and str(results) in err
    assert not (tmp_path / "out").exists()


def test_a_named_bench_file_that_does_not_exist_is_an_error(tmp_path, capsys):
    rc = cli.main(["report", "--results", str(FIXTURE), "--bench", str(tmp_path / "bench.json"),
                   "--out", str(tmp_path / "out")])
    assert rc == 2 and "bench.json" in capsys.readouterr().err


# -- walkthrough extraction errors, on small trees ------------------------------------------------
DEFINITION = """
[languages.python]
label = "Python"
root = "py"
suffixes = [".py"]
start = "# step: {name}"
end = "# end step"

[languages.c]
label = "C"
root = "c"
suffixes = [".c"]
start = "/* step: {name} */"
end = "/* end step */"

[languages.php]
label = "PHP"
root = "php"
suffixes = [".php"]
start = "// step: {name}"
end = "// end step"

[[step]]
name = "bind"
languages = ["python", "c", "php"]
note = "Binds."

[[step]]
name = "loop threads"
languages = ["python", "c"]
absent.php = "PHP has no threads."
note = "Threads."
"""
GOOD = {
    "py/net.py": "x = 1\n# step: bind\nsock.bind(a)\n# end step\n# step: loop threads\nrun()\n# end step\n",
    "c/net.c": "/* step: bind */\nbind(fd, sa, len);\n/* end step */\n/* step: loop threads */\nrun();\n/* end step */\n",
    "php/Net.php": "<?php\n    // step: bind\n    socket_bind($s, $a, $p);\n    // end step\n",
}


def tree(tmp_path: Path, files: dict[str, str], definition: str = DEFINITION) -> tuple[Path, Path]:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    (tmp_path / "walkthrough.toml").write_text(textwrap.dedent(definition))
    return tmp_path / "walkthrough.toml", tmp_path


def test_a_well_marked_tree_is_extracted_with_file_and_line(tmp_path):
    walk = walkthrough.load(*tree(tmp_path, GOOD))
    bind = walk.steps[0]
    assert bind.regions["python"].where == "py/net.py:3-3" and bind.regions["python"].lines == ("sock.bind(a)",)
    assert bind.regions["php"].where == "php/Net.php:3-3" and bind.regions["php"].lines == ("socket_bind($s, $a, $p);",)
    assert set(walk.steps[1].regions) == {"python", "c"}


BROKEN = {
    "missing_in_one_language": ({"php/Net.php": "<?php\n"}, ("'bind'", "php", "not marked")),
    "marked_twice": ({"c/other.c": "/* step: bind */\nagain();\n/* end step */\n"}, ("'bind'", "c", "twice")),
    "unclosed": ({"py/net.py": "# step: bind\nsock.bind(a)\n"}, ("'bind'", "python", "never closed")),
    "started_inside_another": ({"py/net.py": "# step: bind\nx\n# step: loop threads\ny\n# end step\n"},
                               ("'bind'", "python", "not closed before")),
    "unknown_name": ({"c/more.c": "/* step: bnid */\nx;\n/* end step */\n"}, ("'bnid'", "c", "unknown step")),
    "end_without_start": ({"php/More.php": "<?php\n// end step\n"}, ("php", "closes no step")),
    "malformed": ({"py/more.py": "#step bind\n"}, ("python", "malformed")),
    "marked_where_declared_absent": ({"php/T.php": "<?php\n// step: loop threads\nx();\n// end step\n"},
                                     ("'loop threads'", "php", "does not exist")),
    "empty": ({"py/net.py": "# step: bind\n\n# end step\n# step: loop threads\nrun()\n# end step\n"},
              ("'bind'", "python", "marks no code")),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_markers_raise_one_line_naming_the_step_and_language(tmp_path, case):
    files, words = BROKEN[case]
    with pytest.raises(walkthrough.WalkthroughError) as caught:
        walkthrough.load(*tree(tmp_path, {**GOOD, **files}))
    message = str(caught.value)
    assert "\n" not in message
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"


@pytest.mark.parametrize("case,definition,words", [
    ("absent_without_reason", DEFINITION.replace('absent.php = "PHP has no threads."\n', ""),
     ("'loop threads'", "php", "absent")),
    ("step_without_note", DEFINITION.replace('note = "Binds."\n', ""), ("'bind'", "note")),
    ("unknown_language", DEFINITION.replace('languages = ["python", "c", "php"]', 'languages = ["python", "go"]'),
     ("'bind'", "go")),
])
def test_a_broken_definition_raises_one_line(tmp_path, case, definition, words):
    with pytest.raises(walkthrough.WalkthroughError) as caught:
        walkthrough.load(*tree(tmp_path, GOOD, definition))
    assert "\n" not in str(caught.value)
    for word in words:
        assert word in str(caught.value)


def test_the_report_command_stops_on_a_walkthrough_error_with_one_line_and_exit_1(tmp_path, monkeypatch, capsys):
    definition, root = tree(tmp_path, {**GOOD, "php/Net.php": "<?php\n"})
    monkeypatch.setattr(walkthrough, "WALKTHROUGH_TOML", definition)
    monkeypatch.setattr(walkthrough, "ROOT", root)
    rc = cli.main(["report", "--results", str(FIXTURE), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 1 and len(err.strip().splitlines()) == 1 and "'bind' is not marked in php" in err


# -- the page in a browser ------------------------------------------------------------------------
def test_headless_chromium_shows_the_matrix_and_the_filter_hides_agreeing_rows(built, tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"headless Chromium is needed at {CHROMIUM} (ACCEPTLOOP_CHROMIUM names another): "
                    f"`make test` installs Debian's chromium package, or run `apt-get install chromium`")
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        pytest.fail("the playwright package is missing: `pip install -e '.[test]'` installs it")
    index: Path = built["index"]
    doc = built["doc"]
    differing = matrix.disagreements(doc["results"], [s["id"] for s in doc["scenarios"]])
    agreeing = [s for s in matrix.rows(doc["results"]) if s not in differing]
    failed = next(r for r in doc["results"] if r.grade == "FAILED")
    requests: list[str] = []
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, timeout=60_000)
        try:
            page = context.new_page()
            page.on("request", lambda request: requests.append(request.url))
            page.goto(index.as_uri(), wait_until="load")
            row = lambda scenario: page.locator(f'tr.row[data-scenario="{scenario}"]')  # noqa: E731
            expect(page.locator("#matrix-table")).to_be_visible()
            for scenario in agreeing + differing:
                expect(row(scenario)).to_be_visible()
            page.locator("#only-disagreements").check()
            for scenario in agreeing:
                expect(row(scenario)).to_be_hidden(timeout=5_000)
            for scenario in differing:
                expect(row(scenario)).to_be_visible()
            expect(page.locator('tbody.group[data-group="discard"]')).to_be_hidden()   # every row agrees
            # A cell opens its detail; Escape closes it.
            anchor = cells.anchor(failed.impl, failed.model, failed.scenario)
            detail = page.locator(f'[id="{anchor}"]')
            expect(detail).to_be_hidden()
            page.locator(f'a[href="#{anchor}"]').first.click()
            expect(detail).to_be_visible(timeout=5_000)
            expect(detail.locator(".badge.g-failed")).to_have_text("FAILED")
            page.keyboard.press("Escape")
            expect(detail).to_be_hidden(timeout=5_000)
            page.locator("#only-disagreements").uncheck()
            for scenario in agreeing:
                expect(row(scenario)).to_be_visible(timeout=5_000)
        finally:
            context.close()
    assert requests and all(url.split("#")[0] == index.as_uri() for url in requests), requests
