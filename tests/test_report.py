"""`acceptloop report`: the page and the summary built from a results file, the walkthrough
extracted from the marked sources (and its errors), and the page as headless Chromium shows it.

The results come from tests/fixtures/results-failed-missing.json: two implementations, a
few scenarios, one FAILED, one NON-STRICT, MISSING and INFO cells, rows that agree and rows
that do not. The performance section is tested with tests/fixtures/bench-quick.json (cut down
from a quick benchmark run; tests/fixtures/bench-small.json is an older kit's) and the robustness table with tests/fixtures/results-robustness.json
(cut down from `acceptloop check -k robustness`). The full-size report is built from a whole
check of the registry (tests/fixtures/results-full.json.xz) and the benchmark's full profile
planned for today's registry with made-up runs (full_profile_bench); it must stay under 1.5 MB.
"""
from __future__ import annotations

import contextlib
import copy
import json
import lzma
import math
import os
import random
import re
import textwrap
from html.parser import HTMLParser
from pathlib import Path

import pytest

from acceptloop import cli, render
from acceptloop.bench import plan as bench_plan
from acceptloop.bench import runner as bench_runner
from acceptloop.bench import summary as bench_summary
from acceptloop.report import build, cells, numbers, performance, walkthrough
from acceptloop.report import charts as charts_mod
from acceptloop.suite import matrix, session
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


DEFLATED = render.DEFLATED_BLOCK


def inflate(html: str) -> str:
    """The page as its script makes it on load: every deflated part replaced by its markup."""
    return render.unpacked_page(html)


class Page(HTMLParser):
    """The page parsed, after its deflated parts are inflated as the page's script does (packed=True:
    as stored, with the placeholders)."""

    def __init__(self, html: str, packed: bool = False) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {}, None)
        self.here = self.root
        self.feed(html if packed else inflate(html))
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


def cell_data(page: Page) -> dict:
    """The page's data block: every cell's detail (cells.data()), unpacked."""
    block = page.ids["cell-data"]
    assert block.tag == "script" and block.attrs["type"] == "application/octet-stream"
    return cells.decode(block.text())


# -- the report built from the fixture ----------------------------------------------------------
@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    index = build.write_report(FIXTURE, out / "no-bench.json", out, command=["acceptloop", "report"],
                               bench_required=False)
    packed = index.read_text()
    html = inflate(packed)
    page = Page(html)
    return {"index": index, "html": html, "packed": packed, "page": page, "md": (out / "REPORT.md").read_text(),
            "doc": results_io.read_json(FIXTURE), "raw": json.loads(FIXTURE.read_text()), "data": cell_data(page)}


def open_every_detail(index: Path, anchors: list[str], tmp_path: Path) -> dict:
    """Open each cell's detail in headless Chromium as a reader does (the URL names the cell: the
    first on load, then each in turn as a link would) and return each drawn detail, parsed by the
    small DOM above, with every request the page made."""
    expect = playwright_expect()
    requests: list[str] = []
    details: dict[str, Node] = {}
    errors: list[str] = []
    with headless_page(tmp_path) as page:
        page.on("request", lambda request: requests.append(request.url))
        page.on("pageerror", lambda error: errors.append(str(error)))
        load(page, f"{index.as_uri()}#{anchors[0]}")       # a link to a cell, from outside
        for anchor in anchors:
            page.evaluate("id => { location.hash = id; }", anchor)
            drawn = page.locator(f'section.detail[id="{anchor}"]')
            expect(drawn).to_be_visible(timeout=5_000)
            assert page.locator("section.detail").count() == 1, "only the open detail exists"
            details[anchor] = Page(drawn.evaluate("node => node.outerHTML")).root.one("section", "detail")
    assert not errors, errors
    return {"details": details, "requests": requests}


@pytest.fixture(scope="module")
def opened(built, tmp_path_factory):
    """Every cell's detail of the fixture's report, as Chromium draws it."""
    return open_every_detail(built["index"], list(built["data"]["cells"]), tmp_path_factory.mktemp("opened"))


def test_the_fixture_holds_a_failed_and_a_missing_cell_of_two_implementations(built):
    grades = {r.grade for r in built["doc"]["results"]}
    assert {"FAILED", "MISSING", "NON-STRICT", "INFO", "OK"} <= grades
    assert len({r.impl for r in built["doc"]["results"]}) == 2


def test_every_implementation_model_and_scenario_of_the_results_appears(built, opened):
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
        assert built["data"]["cells"][anchor]["grade"] == r.grade
        detail = opened["details"][anchor]
        assert "detail" in detail.classes and detail.attrs["data-grade"] == r.grade
    assert len(built["data"]["cells"]) == len(results)


def test_a_failed_cell_shows_its_grade_colour_reason_checks_transcript_and_stderr(built, opened):
    page = built["page"]
    failed = [r for r in built["doc"]["results"] if r.grade == "FAILED"]
    assert failed
    for r in failed:
        anchor = cells.anchor(r.impl, r.model, r.scenario)
        cell = next(td for td in page.root.find("td", "cell") if td.find("a", href=f"#{anchor}"))
        assert "g-failed" in cell.classes and cell.text().strip() == "FAIL"
        detail = opened["details"][anchor]
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


def test_each_detail_is_stored_once_as_data_and_none_is_drawn_until_its_cell_is_opened(built):
    page, html, data = built["page"], built["html"], built["data"]
    assert not page.root.find("section", "detail") and not page.ids["details"].children
    assert len(page.root.find("script", id="cell-data")) == 1
    scenarios = {s["id"]: s for s in built["raw"]["scenarios"]}
    assert set(data["scenarios"]) == set(scenarios)
    for sid, req in data["scenarios"].items():
        assert req == {k: scenarios[sid][k] for k in ("description", "level", "source", "text")}
    assert data["classes"] == cells.GRADE_CLASS
    raw = {(r["impl"], r["model"], r["scenario"]): r for r in built["raw"]["results"]}
    for r in built["doc"]["results"]:
        anchor = cells.anchor(r.impl, r.model, r.scenario)
        assert html.count(f'href="#{anchor}"') >= 1 and html.count(anchor) == html.count(f'href="#{anchor}"')
        d = data["cells"][anchor]
        assert (d["impl"], d["model"], d["scenario"], d["grade"], d["reason"]) == (r.impl, r.model, r.scenario, r.grade, r.reason)
        if r.grade == "MISSING":
            assert set(d) == {"impl", "model", "scenario", "grade", "reason"}
            continue
        assert d["checks"] == [{"what": c.what, "ok": c.ok, "level": c.level, "expected": c.expected,
                                "observed": c.observed, "basis": c.basis, "followed": c.followed} for c in r.checks]
        assert d["duration"] == cells.seconds(r.duration_s)
        for shown, t in zip(d["transcripts"], raw[(r.impl, r.model, r.scenario)]["transcripts"], strict=True):
            assert shown["end"] == t["end"] and shown["closed_first"] == (t["closed_first"] or "-")
            for direction in ("sent", "received"):
                s, whole = shown[direction], t[direction]
                assert s["bytes"] == whole["bytes"] and whole["sha256"].startswith(s["sha256"])
                assert [e["hex"] for e in s["edges"]][:1] == ([whole["head"]] if whole["head"] else [])
                if whole["bytes"] > len(whole["head"]) // 2:
                    assert s["edges"][-1] == {"label": f"last {len(whole['tail']) // 2} bytes", "hex": whole["tail"],
                                              "offset": whole["bytes"] - len(whole["tail"]) // 2}
        assert [(f["name"], float(f["value"]), f["unit"], f["note"]) for f in d["figures"]] == \
            [(f.name, pytest.approx(f.value, rel=1e-5), f.unit, f.note) for f in r.figures]
        assert [s["stderr"] for s in d["servers"]] == [s["stderr"] for s in cells.servers(r.server)]


def test_a_drawn_hex_dump_is_hexdump_c_of_the_stored_bytes(built, opened):
    for anchor, d in built["data"]["cells"].items():
        edges = [e for t in d.get("transcripts", []) for direction in ("sent", "received") for e in t[direction]["edges"]]
        dumps = [p.text() for p in opened["details"][anchor].find("pre", "hex")]
        assert dumps == ["".join(f"{line['offset']}  {line['hex']}  |{line['text']}|\n"
                                 for line in cells.hexdump(bytes.fromhex(e["hex"]), e["offset"])) for e in edges], anchor


def test_opening_every_detail_fetches_nothing(built, opened):
    index = built["index"]
    assert opened["requests"] and all(url.split("#")[0] == index.as_uri() for url in opened["requests"])


def test_a_missing_cell_shows_its_grade_colour_and_reason(built, opened):
    page = built["page"]
    missing = [r for r in built["doc"]["results"] if r.grade == "MISSING"]
    assert missing
    for r in missing:
        anchor = cells.anchor(r.impl, r.model, r.scenario)
        cell = next(td for td in page.root.find("td", "cell") if td.find("a", href=f"#{anchor}"))
        assert "g-missing" in cell.classes and cell.text().strip() == "miss"
        assert r.reason in cell.find("a")[0].attrs["title"]
        detail = opened["details"][anchor]
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


def assert_self_contained(page: Page, html: str) -> None:
    """No element, attribute, style or script of the page fetches anything; every link is an anchor in
    it: an element's id, or a cell whose detail the page's data holds (drawn when the link is followed)."""
    outside = {"link", "img", "iframe", "object", "embed", "source", "video", "audio", "base", "frame", "track"}
    stored = cell_data(page)["cells"]
    assert not [n.tag for n in page.root.walk() if n.tag in outside]
    for n in page.root.walk():
        for attr in ("src", "srcset", "action", "formaction", "poster", "data", "background", "xlink:href"):
            assert attr not in n.attrs, f"<{n.tag} {attr}=...>"
        href = n.attrs.get("href")
        if href is not None:
            assert href.startswith("#") and (href[1:] in page.ids or href[1:] in stored), \
                f"<{n.tag} href={href!r}> is not a link within the page"
    style = "".join(s.text() for s in page.root.find("style"))
    assert "url(" not in style and "@import" not in style
    script = "".join(s.text() for s in page.root.find("script"))
    for call in ("fetch(", "XMLHttpRequest", "import(", "WebSocket", "EventSource", "sendBeacon", "http"):
        assert call not in script
    assert not re.search(r"""(?:href|src)\s*=\s*["']?(?:https?:)?//""", html)


def test_the_page_references_nothing_outside_itself(built):
    assert_self_contained(built["page"], built["html"])


def test_the_large_parts_are_stored_deflated_and_inflating_them_gives_their_rows(benched):
    """The matrix, the failures, the benchmark's tables and charts are in the file only deflated
    (render.deflated), each in an inert script the page's own script replaces with its markup; the
    walkthrough is not, so that it shows, coloured and folded, before any script runs."""
    packed, page, raw = benched["packed"], benched["page"], Page(benched["packed"], packed=True)
    blocks = raw.root.find("script", "deflated")
    assert {"the conformance matrix", "the FAILED and NON-STRICT cells", "the MISSING cells", "the ratio table",
            "these charts", "the table of every cell"} <= {b.attrs["data-what"] for b in blocks}
    assert len(blocks) == len(DEFLATED.findall(packed))
    # As stored: none of the rows, cells or charts, not even as text.
    assert "matrix-table" not in raw.ids and not raw.root.find("tr", "row") and not raw.root.find("td", "cell")
    assert not raw.root.find("tr", "bench-row") and not raw.root.find("svg", "chart")
    for text in ('class="row ', 'class="cell ', 'class="bench-row', '<svg class="chart"', 'href="#cell-', 'id="bench-'):
        assert text not in packed, text
    # Inflated: every one of them.
    doc = results_io.read_json(FIXTURE)
    assert len(page.ids["matrix-table"].find("td", "cell")) == len(doc["results"])
    assert len(page.root.find("tr", "bench-row")) == len(benched["bench"]["cells"])
    assert page.root.find("svg", "chart") and page.ids["attention"].find("a")
    for block in blocks:
        assert block.attrs["type"] == render.DEFLATED_TYPE and re.fullmatch(r"[A-Za-z0-9+/]+=*", block.text())
        markup = render.inflate_base64(block.text())
        assert len(markup) == int(block.attrs["data-bytes"]) and len(block.text()) < len(markup)
        assert "<script" not in markup.decode()          # the page's script unpacks each once: none is nested
    # Not deflated: the walkthrough (coloured and folded as it is), and a line for a reader without script.
    assert raw.ids["walkthrough"].find("details", "step") and raw.ids["walkthrough"].find("span", "k")
    assert not raw.ids["walkthrough"].find("script", "deflated")
    [noscript] = raw.root.find("noscript")
    assert "REPORT.md" in noscript.text() and "script" in noscript.text()


def test_the_deflated_filter_stores_the_templates_own_escaped_output():
    env = render.environment(autoescape=True)
    html = env.from_string('{% filter deflated("a <b> part") %}<p title="{{ v }}">{{ v }}</p>{% endfilter %}').render(v='<i>"&')
    [(what, size, text)] = DEFLATED.findall(html)
    assert what == "a &lt;b&gt; part" and html.count("<") == 2          # the script's tags, nothing else
    assert render.inflate_base64(text).decode() == '<p title="&lt;i&gt;&#34;&amp;">&lt;i&gt;&#34;&amp;</p>'
    assert int(size) == len(render.inflate_base64(text)) and inflate(html) == render.inflate_base64(text).decode()


def test_every_walkthrough_step_has_code_for_every_language_it_is_declared_in(built):
    page = built["page"]
    walk = walkthrough.load()
    assert [s.name for s in walk.steps] == [n.attrs["data-step"] for n in page.root.find("details", "step")]
    expected_names = {"resolve", "socket", "options", "bind", "listen", "accept", "read/write", "shutdown and close",
                      "loop iterative", "loop fork", "loop threads", "loop event", "loop uring",
                      # the connectionless path (--transport udp)
                      "dgram socket", "dgram bind", "recvfrom", "sendto",
                      # the section "The same loop from four hosts", with its own columns
                      "load the core", "pass a callback", "the interpreter lock", "stop the loop",
                      # the section "POSIX sockets and Winsock 2" (cext/platform_*.c, issue 15)
                      "start-up", "socket and close", "last error", "non-blocking", "listener options",
                      "accept4 or accept", "send", "shutdown", "readiness", "wake-up pair", "stop signals",
                      "fork"}
    assert {s.name for s in walk.steps} == expected_names
    for step in walk.steps:
        article = page.root.one("details", data_step=step.name)
        assert " ".join(article.one("div", "note").text().split()), f"{step.name}: no note"
        for key, lang in walk.columns(step.section).items():
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


def test_the_walkthrough_has_a_table_of_contents_and_a_fold_per_step_the_first_open(built):
    page, walk = built["page"], walkthrough.load()
    toc = page.ids["walkthrough"].one("nav", "toc")
    links = toc.one("ol").find("a")
    steps = page.ids["walkthrough"].find("details", "step")
    assert [a.attrs["href"] for a in links] == [f"#{s.anchor}" for s in walk.steps] == [f"#{d.attrs['id']}" for d in steps]
    assert [a.text() for a in links] == [s.name for s in walk.steps]
    assert [("open" in d.attrs) for d in steps] == [True] + [False] * (len(steps) - 1)
    for step, fold in zip(walk.steps, steps):
        summary = fold.one("summary")
        assert step.name in summary.one("h3").text()
        for key, lang in walk.columns(step.section).items():   # what the fold holds, said while it is closed
            expect = f"{lang.label} {len(step.regions[key].lines)}" if key in step.regions else f"no {lang.label}"
            assert expect in summary.text() and expect in toc.text()
    assert {b.attrs["data-fold"] for b in toc.find("button")} == {"open", "close"}


def test_the_walkthrough_puts_every_languages_code_of_a_step_in_one_row_of_equal_columns(built):
    page, walk = built["page"], walkthrough.load()
    style = "".join(s.text() for s in page.root.find("style"))
    assert page.ids["walkthrough"].one("div", "steps").attrs["style"] == f"--cols: {len(walk.columns(''))}"
    assert re.search(r"\.code-cols \{[^}]*grid-template-columns: repeat\(var\(--cols, 3\), minmax\(0, 1fr\)\)", style)
    assert re.search(r"\.code-col \{[^}]*grid-template-rows: subgrid", style)          # heads share a height
    sections = {s.name: s.section for s in walk.steps}
    for fold in page.ids["walkthrough"].find("details", "step"):
        [row] = fold.find("div", "code-cols")
        section = sections[fold.attrs["data-step"]]
        assert [c.attrs["data-language"] for c in row.children if isinstance(c, Node)] == list(walk.columns(section))
        if section:   # a section's steps have its own number of columns, under its title
            assert fold.attrs["style"] == f"--cols: {len(walk.columns(section))}"
            assert page.ids["walkthrough"].one("h3", "section", data_section=section)


def test_the_walkthrough_is_coloured_when_written_by_pygments_with_the_pages_own_colours(built):
    page, walk = built["page"], walkthrough.load()
    style = "".join(s.text() for s in page.root.find("style"))
    classes = {cls for _, cls in walkthrough.TOKEN_CLASSES}
    for cls in classes:
        assert re.search(rf"pre\.code \.{cls}\b[^{{]*\{{[^}}]*color: #[0-9a-f]{{6}}", style), f"no colour for .{cls}"
    used: dict[str, set[str]] = {}
    quoted: set[str] = set()                    # the languages whose code shown holds a string literal
    for fold in page.ids["walkthrough"].find("details", "step"):
        for col in fold.find("div", "code-col"):
            for line in col.find("span", "ln"):
                for span in line.find("span"):
                    assert span.classes <= classes and not span.find("span")
                    used.setdefault(col.attrs["data-language"], set()).update(span.classes)
            if '"' in col.text():
                quoted.add(col.attrs["data-language"])
    for key in walk.languages:                  # every language is coloured: its keywords, strings, comments
        assert {"k", "c"} | ({"s"} if key in quoted else set()) <= used[key], (key, used[key])
    assert {"python", "c", "php"} <= quoted
    assert "kt" in used["c"] and "nf" in used["python"] and "nb" in used["php"]
    # A keyword of each language, as Pygments sees it.
    code = {word for n in page.ids["walkthrough"].find("span", "k") for word in n.text().split()}
    assert {"def", "return", "for", "if", "while"} <= set(code) and "function" in code
    script = "".join(s.text() for s in page.root.find("script"))
    assert "highlight" not in script.lower() and "pygments" not in script.lower()   # done when written, not here


def test_highlighting_keeps_every_line_as_it_is():
    lines = ("def f(a):", '    """two', '    lines"""', "    return a  # done", "", "x = 'y'")
    runs = walkthrough.highlight(lines, "python")
    assert ["".join(t for _, t in line) for line in runs] == list(lines)
    assert ("k", "def ") in runs[0] and runs[1][-1][0] == runs[2][0][0] == "s" and runs[3][-1] == ("c", "# done")
    php = walkthrough.highlight(("$s = socket_create(AF_INET, SOCK_STREAM, 0); // c",), "php")
    assert ("nb", "socket_create") in php[0] and php[0][-1] == ("c", "// c")
    assert walkthrough.highlight(("#include <stdio.h>",), "c") == [[("pp", "#include "), ("s", "<stdio.h>")]]


def test_headless_chromium_opens_a_folded_step_from_the_table_of_contents(built, tmp_path):
    expect = playwright_expect()
    walk = walkthrough.load()
    last = walk.steps[-1]
    with headless_page(tmp_path, viewport={"width": 1400, "height": 900}) as page:
        load(page, built["index"].as_uri())
        section = page.locator("#walkthrough")
        folded = section.evaluate("s => s.getBoundingClientRect().height")
        step = page.locator(f'details.step[data-step="{last.name}"]')
        code = step.locator("pre.code").first
        expect(code).to_be_hidden()
        page.locator(f'#walkthrough nav.toc a[href="#{last.anchor}"]').click()
        expect(code).to_be_visible(timeout=5_000)
        # One row: the first line of every language starts at the same height, side by side.
        tops = [step.locator(f'.code-col[data-language="{k}"] .ln').first.bounding_box() for k in last.regions]
        assert len({round(b["y"]) for b in tops}) == 1 and sorted(b["x"] for b in tops) == [b["x"] for b in tops]
        page.locator('#walkthrough button[data-fold="open"]').click()
        expect(page.locator("#walkthrough details.step:not([open])")).to_have_count(0)
        unfolded = section.evaluate("s => s.getBoundingClientRect().height")
        page.locator('#walkthrough button[data-fold="close"]').click()
        expect(page.locator("#walkthrough details.step[open]")).to_have_count(0)
        colour = step.locator("span.k").first.evaluate("n => getComputedStyle(n).color")
        assert colour == "rgb(207, 34, 46)"                           # the stylesheet's, nothing else
    print(f"\nwalkthrough at 1400 px: {folded:.0f} px as written (first step open), {unfolded:.0f} px unfolded")
    assert folded < unfolded / 2


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


# -- the performance section, from a small bench document ----------------------------------------
# tests/fixtures/bench-quick.json is cut down from a real `acceptloop bench --quick`: its cells of
# 64 B echo at 16 and 256 connections (six implementations and the c-again control twin), of the
# connection rate and of idle connections for a few, without the per-run records; its targets,
# ratios and noise floor are as that run computed them. tests/fixtures/bench-small.json is the same
# from an older kit: one concurrency, no colours, no target states, no noise floor.
BENCH = Path(__file__).parent / "fixtures" / "bench-quick.json"
OLD_BENCH = Path(__file__).parent / "fixtures" / "bench-small.json"


@pytest.fixture(scope="module")
def benched(tmp_path_factory):
    out = tmp_path_factory.mktemp("report-bench")
    index = build.write_report(FIXTURE, BENCH, out, command=["acceptloop", "report"])
    packed = index.read_text()
    html = inflate(packed)
    page = Page(html)
    return {"index": index, "html": html, "packed": packed, "page": page, "section": page.ids["performance"],
            "md": (out / "REPORT.md").read_text(), "bench": json.loads(BENCH.read_text())}


def charts(section: Node, group: str) -> list[Node]:
    return section.find("svg", "chart", data_chart=group)


def test_the_bench_fixture_is_a_quick_run_with_flagged_cells_and_cells_for_every_chart(benched):
    bench = benched["bench"]
    assert bench["schema"] == "acceptloop.bench/1" and bench["profile"]["name"] == "quick"
    cells = bench["cells"]
    assert len(cells) <= 25 and any(c["flags"] for c in cells) and any(not c["flags"] for c in cells)
    assert any(c["kind"] == "echo" and c["model"] == "event" for c in cells)
    assert any(c["kind"] == "idle" for c in cells) and any(c["model"] != "event" for c in cells)
    assert {"port", "peer", "control"} == {c["role"] for c in cells}
    assert {True, False, None} == {t["met"] for t in bench["targets"]}
    assert "not measured" not in {t["state"] for t in bench["targets"]} and bench["noise_floor"]["cpu_per_op"]


def test_the_performance_section_says_how_the_load_and_the_runs_were_made(benched):
    text = " ".join(benched["section"].text().split())
    bench = benched["bench"]
    assert "The load is closed-loop: each connection starts its next operation only when the last one is done" in text
    for words in ("interleaved", "fresh server", "/proc", "edges of the measured window"):
        assert words in text, words
    fairness = bench["fairness"]
    assert f"server on CPU {fairness['pinning']['server_cpu']}, load generator on CPU {fairness['pinning']['client_cpu']}" in text
    for value in (fairness["tcp_nodelay"], fairness["backlog"], fairness["somaxconn"], fairness["rmem_default"],
                  f"soft {fairness['fd_limit']['soft']}, hard {fairness['fd_limit']['hard']}",
                  fairness["tcp_rmem"].replace("\t", " "), fairness["tcp_wmem"].replace("\t", " ")):
        assert str(value) in text, value
    profile = bench["profile"]
    assert f"Profile: {profile['name']}" in text and f"{profile['rounds']} rounds" in text
    assert "200 ms window" in text and "50 ms warm-up" in text.replace("50.0 ms", "50 ms")
    for key in ("cpu", "commit", "kernel", "command"):
        assert str(bench["provenance"][key]) in text, key
    for value in bench["method"].values():
        assert value in text


def point_at(chart: Node, impl: str, label: str) -> list[Node]:
    """A line chart's points of one implementation whose tooltip names `label` ("16 connections")."""
    return [p for p in chart.find("g", "pt", data_impl=impl) if p.one("title").text().startswith(f"{impl} · {label}:")]


def test_the_throughput_chart_has_each_implementations_echo_cells_with_their_range(benched):
    echo = [c for c in benched["bench"]["cells"] if c["kind"] == "echo" and c["model"] == "event"]
    [chart] = charts(benched["section"], "throughput")          # one message size in the fixture
    assert chart.attrs["data-kind"] == "line"
    assert {k.attrs["data-impl"] for k in chart.find("g", "c-key")} == {c["impl"] for c in echo}   # the legend
    assert [t.text() for t in chart.find("text", "tick")][-2:] == ["16", "256"]                    # the x axis
    for c in echo:
        [point] = point_at(chart, c["impl"], f"{c['connections']} connections")
        assert float(point.attrs["data-value"]) == pytest.approx(c["ops_per_s"]["median"])
        assert len(point.find("line")) == 3                                                  # the min–max whisker
        assert ("flagged" in point.classes) == bool(c["flags"])
        for flag in c["flags"]:
            assert flag in point.one("title").text()


def test_the_cpu_and_memory_charts_have_a_bar_for_every_cell_with_the_figure(benched):
    cells = benched["bench"]["cells"]
    bars = [b for chart in charts(benched["section"], "cpu") for b in chart.find("g", "bar")]
    with_cpu = [c for c in cells if c["server_cpu_us_per_op"]]
    assert len(bars) == len(with_cpu)
    for c in with_cpu:
        label = c["impl"] if c["model"] == "event" else f"{c['impl']} · {c['model']}"
        assert any(b.attrs["data-label"] == label and float(b.attrs["data-value"]) ==
                   pytest.approx(c["server_cpu_us_per_op"]["median"]) for b in bars), c["id"]
    [memory] = charts(benched["section"], "memory")
    idle = [c for c in cells if c["kind"] == "idle"]
    assert {b.attrs["data-impl"]: float(b.attrs["data-value"]) for b in memory.find("g", "bar")} == \
        {c["impl"]: pytest.approx(c["rss_per_conn"]["median"]) for c in idle}


def test_the_latency_chart_has_four_percentiles_per_implementation(benched):
    echo = [c for c in benched["bench"]["cells"] if c["kind"] == "echo" and c["model"] == "event"]
    chart = next(c for c in charts(benched["section"], "latency") if "echo 64 B" in c.text())
    assert "256 connections" in chart.attrs["aria-label"]          # the representative concurrency
    assert [t.text() for t in chart.find("text", "tick")][-4:] == ["p50", "p90", "p99", "p99.9"]
    for c in [c for c in echo if c["connections"] == 256]:
        values = [float(p.attrs["data-value"]) for p in chart.find("g", "pt", data_impl=c["impl"])]
        assert values == [pytest.approx(c["latency_us"][p]["median"]) for p in ("p50", "p90", "p99", "p999")]


def test_each_implementation_keeps_one_colour_and_the_peers_are_dashed(benched):
    section, roles = benched["section"], {c["impl"]: c["role"] for c in benched["bench"]["cells"]}
    colours: dict[str, set[str]] = {}
    for chart in section.find("svg", "chart"):
        for g in chart.find("g", "series") + chart.find("g", "bar"):
            impl = g.attrs["data-impl"]
            lines = g.find("path") or g.find("rect")        # a series of one point has no line, only its marker
            for shape in lines + g.find("circle"):
                colours.setdefault(impl, set()).add(shape.attrs["stroke"])
            if g.find("path") or "bar" in g.classes:
                assert ("stroke-dasharray" in lines[0].attrs) == (roles[impl] == "peer"), g.attrs
            if "series" in g.classes:                      # round markers for ports, square for peers
                assert bool(g.find("rect")) == (roles[impl] == "peer") != bool(g.find("circle"))
    assert set(colours) == set(roles)
    assert all(len(c) == 1 for c in colours.values()), colours
    assert len({next(iter(c)) for c in colours.values()}) == len(colours)
    declared = {i["name"]: i["colour"] for i in benched["bench"]["implementations"] if i.get("colour")}
    assert declared and all(colours[impl] == {colour} for impl, colour in declared.items() if impl in colours)
    swatches = {r.attrs["data-impl"]: r.one("i", "sw").attrs["style"] for r in section.find("tr", "bench-row")}
    assert all(swatches[impl] == f"--c: {next(iter(c))}" for impl, c in colours.items())   # the tables too


def test_an_implementation_without_a_colour_gets_one_no_entry_declared():
    bench = {"implementations": [{"name": "a", "colour": "#0072B2"}, {"name": "b"}, {"name": "c-twin", "role": "control"}],
             "cells": [{"impl": "d"}]}
    palette = performance.palette(bench)
    assert palette.colours["a"] == "#0072B2" and len(set(palette.colours.values())) == 4
    assert "#0072B2" not in (palette.colours["b"], palette.colours["c-twin"], palette.colours["d"])
    many = charts_mod.Palette()
    for i in range(40):
        many.add(f"impl{i}", "port")
    assert len(set(many.colours.values())) == 40


def test_the_c_core_table_shows_each_pairs_ratios_coloured_by_better_or_worse(benched):
    table = benched["section"].one("table", "core")
    workloads = [th.text() for th in table.find("th", "workload")]
    for entry in benched["bench"]["core_table"]:
        row = table.one("tr", data_pair=entry["pair"])
        tds = row.find("td")
        i = workloads.index(entry["workload"])
        speed, cost = tds[2 * i].one("span", "ratio"), tds[2 * i + 1].one("span", "ratio")
        assert speed.text() == numbers.ratio(entry["throughput_ratio"])
        assert cost.text() == numbers.ratio(entry["cpu_per_op_ratio"])
        better = "r-better" in speed.classes, "r-better" in cost.classes
        assert better == (entry["throughput_ratio"] > 1.05, entry["cpu_per_op_ratio"] < 1 / 1.05), entry
    assert table.find("tr", data_pair="c-cffi vs c") and "between the ports" in table.text()
    control = table.one("tr", data_pair="c-again vs c")         # the control twin, in a block of its own
    groups = [th.text() for th in table.find("tr", "group-row")]
    assert groups[-1] == "the noise floor: a control twin against its original" and control is table.find("tr")[-1]


def test_every_target_is_marked_met_missed_within_noise_not_measured_or_shown(benched):
    rows = benched["section"].one("table", "targets").find("tr", None)[1:]
    targets = benched["bench"]["targets"]
    assert len(rows) == len(targets)
    for t, row in zip(targets, rows):
        assert row.find("td")[0].text() == t["target"]
        assert row.attrs["data-state"] == t["state"] and row.one("span", "badge").text() == t["state"]
        sign = {"at most": "≤", "at least": "≥"}[t["direction"]]
        assert row.find("td")[2].text().startswith(sign if t["bound"] is not None else "–")


def test_a_target_within_noise_is_not_red_and_the_report_says_what_within_noise_means(benched):
    section, md, bench = benched["section"], benched["md"], benched["bench"]
    noisy = [t for t in bench["targets"] if t["state"] == "within noise"]
    assert noisy                                          # the fixture's run missed two bounds by less than its noise
    for t in noisy:                                       # missed, by no more than the noise floor of its figure
        assert t["met"] is False and abs(t["value"] - t["bound"]) <= bench["noise_floor"][t["figure"]]["worst"]
        row = next(r for r in section.find("tr", data_state="within noise") if r.find("td")[0].text() == t["target"])
        badge = row.one("span", "badge")
        assert badge.text() == "within noise" and "t-noise" in badge.classes and "t-missed" not in badge.classes
        line = next(line for line in md.splitlines() if line.startswith(f"| {t['target']} |"))
        assert "| within noise |" in line and "**missed**" not in line
    definition = " ".join(section.one("p", "within-noise").text().split())
    assert bench["method"]["within_noise"] in definition and "noise floor of this run" in definition.lower()
    assert "c-again against c" in definition
    assert f"Within noise: {bench['method']['within_noise']}." in md.split("## Performance", 1)[1]


def test_no_line_chart_has_a_single_x_value_a_lone_concurrency_is_drawn_as_bars(benched, tmp_path):
    for chart in benched["section"].find("svg", "chart", data_kind="line"):
        assert len({t.attrs["x"] for t in chart.find("text", "tick") if t.attrs.get("text-anchor") == "middle"}) >= 2
    # An older document: 64 B echo at 16 connections only, no colours, targets without a state.
    old = json.loads(OLD_BENCH.read_text())
    out = tmp_path / "out"
    section = Page(build.write_report(FIXTURE, OLD_BENCH, out).read_text()).ids["performance"]
    [throughput] = charts(section, "throughput")
    assert throughput.attrs["data-kind"] == "bars" and "16 connections" in throughput.attrs["aria-label"]
    echo = [c for c in old["cells"] if c["kind"] == "echo" and c["model"] == "event"]
    assert {b.attrs["data-impl"]: float(b.attrs["data-value"]) for b in throughput.find("g", "bar")} == \
        {c["impl"]: pytest.approx(c["ops_per_s"]["median"]) for c in echo}
    note = " ".join(section.one("p", "chart-note").text().split())
    assert note == "Drawn as bars: echo 64 B was measured at one concurrency only (16 connections): bars, since a line needs two."
    assert not section.find("svg", "chart", data_kind="line", data_chart="throughput")
    states = [r.attrs["data-state"] for r in section.one("table", "targets").find("tr", None)[1:]]
    assert states == [{True: "met", False: "missed"}.get(t["met"]) or ("not measured" if t["value"] is None else "shown")
                      for t in old["targets"]]
    assert "does not define it" in section.one("p", "within-noise").text()


def test_every_cell_and_every_flag_is_in_the_table(benched):
    section = benched["section"]
    cells = benched["bench"]["cells"]
    rows = section.one("table", "bench-cells").find("tr", "bench-row")
    assert [r.attrs["data-cell"] for r in rows] == [c["id"] for c in cells]
    listed = " ".join(section.one("div", "flagged-list").text().split())
    for c, row in zip(cells, rows):
        text = " ".join(row.text().split())
        assert c["impl"] in text and c["model"] in text and ("peer" in text) == (c["role"] == "peer")
        assert [f.text() for f in row.find("span", "flag")] == c["flags"]
        assert ("flagged" in row.classes) == bool(c["flags"])
        if c["kind"] != "idle":
            assert numbers.si(c["ops_per_s"]["median"]) in text
        assert numbers.size(c["rss_per_conn"]["median"]) in text
        assert row.find("td")[-5].text() == (c.get("io") or "–"), c["id"]   # client I/O
        if c["flags"]:
            assert section.find("a", href=f"#{row.attrs['id']}") and all(f in listed for f in c["flags"])


def test_failed_unsupported_and_error_flags_are_marked_and_a_failed_cell_draws_nothing(tmp_path):
    bench = json.loads(BENCH.read_text())
    echo = [c for c in bench["cells"] if c["kind"] == "echo" and c["connections"] == 256]
    failed, unsupported, errors = echo[0], echo[1], echo[2]
    failed["flags"] = ["failed: the server did not start: bind 127.0.0.1:0: <b>oops</b>"]
    for figure in ("ops_per_s", "mb_per_s", "server_cpu_us_per_op", "client_cpu_pct", "rss_per_conn"):
        failed[figure] = None
    failed["latency_us"] = {p: None for p in ("p50", "p90", "p99", "p999")}
    unsupported["flags"] = ["unsupported: held 900 of 1000 connections (refused 100)"]
    errors["flags"], errors["errors"] = ["errors: reset 3"], {"reset": 3}
    (tmp_path / "bench.json").write_text(json.dumps(bench))
    page = Page(build.write_report(FIXTURE, tmp_path / "bench.json", tmp_path / "out").read_text())
    section = page.ids["performance"]
    for cell, cls in ((failed, "f-bad"), (unsupported, "f-gone"), (errors, "f-bad")):
        row = section.one("tr", data_cell=cell["id"])
        [flag] = row.find("span", "flag")
        assert flag.text() == cell["flags"][0] and cls in flag.classes
    assert "reset 3" in section.one("tr", data_cell=errors["id"]).one("td", "errors").text()
    [throughput] = charts(section, "throughput")
    assert not point_at(throughput, failed["impl"], "256 connections")
    assert point_at(throughput, unsupported["impl"], "256 connections")          # drawn, and marked
    echo_latency = next(c for c in charts(section, "latency") if "echo 64 B, 256 connections" in c.text())
    assert not echo_latency.find("g", "pt", data_impl=failed["impl"])
    assert echo_latency.find("g", "pt", data_impl=unsupported["impl"])
    assert "<b>oops</b>" in section.one("tr", data_cell=failed["id"]).text()   # escaped, not markup


def _datagram_cell(echo: dict, model: str, cpu: float, ops: float, lost: int) -> dict:
    """A datagram cell of c (UDP echo, 64 B at 16 sockets) made from an echo cell of the fixture."""
    def figure(v: float) -> dict:
        return {"median": v, "min": v, "max": v, "n": 3}
    return {**copy.deepcopy(echo), "id": f"c-{model}-datagram-64B-c16", "workload": "datagram-64B-c16",
            "kind": "datagram", "model": model, "op": "datagram echoed", "server_cpu_us_per_op": figure(cpu),
            "ops_per_s": figure(ops), "server_instructions_per_op": None, "floor": None, "lost": lost, "errors": {},
            "flags": [f"lost: {lost} datagrams unanswered within 200 ms over 3 runs"] if lost else []}


def test_the_datagram_cells_are_in_the_cell_table_and_the_batching_table_sets_the_two_models_side_by_side(tmp_path):
    from acceptloop.bench import summary
    from acceptloop.suite import registry
    bench = json.loads(BENCH.read_text())
    echo = next(c for c in bench["cells"] if c["id"] == "c-event-echo-64B-c16")
    bench["cells"] += [_datagram_cell(echo, "event", 6.0, 120e3, 0), _datagram_cell(echo, "iterative", 8.0, 100e3, 2)]
    bench["batching"] = summary.batching({c["id"]: c for c in bench["cells"]}, registry.load())
    (tmp_path / "bench.json").write_text(json.dumps(bench))
    out = tmp_path / "out"
    section = Page(build.write_report(FIXTURE, tmp_path / "bench.json", out).read_text()).ids["performance"]
    for model in ("event", "iterative"):
        group = section.one("tbody", data_workload="datagram-64B-c16", data_model=model)
        assert "one operation: one datagram echoed" in group.text() and "16 sockets" in group.text()
        assert group.one("tr", data_cell=f"c-{model}-datagram-64B-c16").find("td", "num")[4].text() == "–"  # × floor
    [flag] = section.one("tr", data_cell="c-iterative-datagram-64B-c16").find("span", "flag")
    assert flag.text().startswith("lost: 2 datagrams") and "f-warn" in flag.classes
    row = section.one("table", "batching").one("tr", data_impl="c", data_workload="datagram-64B-c16")
    tds = [" ".join(td.text().split()) for td in row.find("td")]
    assert tds[1:5] == ["event vs iterative", "120k vs 100k", "1.20×", "6.00 vs 8.00"] and tds[5] == "0.750×"
    assert tds[-1] == "event 0, iterative 2"
    words = bench["batching"][0]["words"]
    assert "recvmmsg" in words and words in " ".join(section.text().split())
    md = (out / "REPORT.md").read_text()
    assert "### Datagrams: what batching buys" in md
    assert "| c | datagram-64B-c16 | event vs iterative | 120k / 100k (1.20×) | 6.00 / 8.00 (0.750×) |" in md


def test_a_document_without_cells_draws_no_empty_axes(tmp_path):
    (tmp_path / "bench.json").write_text(json.dumps({"schema": "acceptloop.bench/1", "profile": {"name": "quick"}}))
    section = Page(build.write_report(FIXTURE, tmp_path / "bench.json", tmp_path / "out").read_text()).ids["performance"]
    assert not section.find("svg")
    assert len([p for p in section.find("p", "empty") if p.text().startswith("Not drawn")]) == 4


def test_the_page_with_a_bench_references_nothing_outside_itself(benched):
    assert_self_contained(benched["page"], benched["html"])


def test_the_markdown_summary_has_the_targets_the_core_table_and_the_flagged_cells(benched):
    md, bench = benched["md"], benched["bench"]
    perf = md.split("## Performance", 1)[1]
    for t in bench["targets"]:
        state = "**missed**" if t["state"] == "missed" else t["state"]
        line = next(line for line in perf.splitlines() if line.startswith(f"| {t['target'].replace('|', chr(92) + '|')} |"))
        assert f" {state} | " in line, line
    for e in bench["core_table"]:
        line = next(line for line in perf.splitlines() if line.startswith(f"| {e['pair']} |"))
        assert f"{numbers.ratio(e['throughput_ratio'])} / {numbers.ratio(e['cpu_per_op_ratio'])}" in line
    for c in bench["cells"]:
        if c["flags"]:
            assert f"- {c['impl']}/{c['model']} `{c['workload']}`: {'; '.join(c['flags'])}" in perf


# -- the charts' geometry --------------------------------------------------------------------------
def test_a_line_chart_puts_connections_on_a_log_axis_and_joins_the_points():
    palette = charts_mod.Palette()
    palette.add("c", "port")
    palette.add("uvloop", "peer")
    points = [{"x": n, "median": 100.0 * i + 50, "min": 100.0 * i, "max": 100.0 * i + 90, "label": str(n)}
              for i, n in enumerate((1, 16, 256, 1000))]
    chart = charts_mod.line_chart(title="t", series=[{"impl": "c", "points": points},
                                                     {"impl": "uvloop", "points": points[1:2]}],
                                  palette=palette, x_values=[1, 16, 256, 1000], x_log=True, x_label="x", y_label="y")
    xs = [t["x"] for t in chart["x_ticks"]]
    assert [t["label"] for t in chart["x_ticks"]] == ["1", "16", "256", "1000"] and xs == sorted(xs)
    assert (xs[1] - xs[0]) / (xs[3] - xs[2]) == pytest.approx(math.log10(16) / math.log10(1000 / 256), rel=0.02)
    c, uvloop = chart["series"]
    assert c["path"].count("L") == 3 and not c["dash"] and uvloop["dash"] and uvloop["path"] == ""
    assert all(p["y_hi"] < p["cy"] < p["y_lo"] for p in c["points"])       # the whisker spans the median
    assert chart["y_ticks"][0]["label"] == "0" and chart["y_ticks"][-1]["y"] <= min(p["y_hi"] for p in c["points"])


def test_a_chart_with_one_concurrency_centres_it_and_one_without_data_is_not_drawn():
    palette = charts_mod.Palette()
    palette.add("c", "port")
    one = charts_mod.line_chart(title="t", series=[{"impl": "c", "points": [{"x": 16, "median": 5.0, "label": "16"}]}],
                                palette=palette, x_values=[16], x_log=True, x_label="x", y_label="y")
    plot = one["plot"]
    assert one["x_ticks"][0]["x"] == pytest.approx(plot["x"] + plot["w"] / 2, abs=1)
    assert charts_mod.line_chart(title="t", series=[{"impl": "c", "points": [{"x": 16, "median": None, "label": ""}]}],
                                 palette=palette, x_values=[16], x_label="x", y_label="y") is None
    assert charts_mod.bar_chart(title="t", bars=[], palette=palette, x_label="x") is None


def test_axis_ticks_are_round_numbers():
    assert charts_mod.linear_ticks(73000) == [0, 20000, 40000, 60000, 80000]
    assert charts_mod.log_ticks(130, 42000) == [100, 1000, 10000, 50000]
    assert charts_mod.log_ticks(150, 700) == [100, 200, 500, 1000]


# -- the robustness table --------------------------------------------------------------------------
# tests/fixtures/results-robustness.json is cut down from a real `acceptloop check -k robustness`:
# six robustness scenarios in four columns, FAILED cells among them, each cell with its figures.
ROBUSTNESS = Path(__file__).parent / "fixtures" / "results-robustness.json"


@pytest.fixture(scope="module")
def robust(tmp_path_factory):
    out = tmp_path_factory.mktemp("report-robustness")
    index = build.write_report(ROBUSTNESS, out / "no-bench.json", out, bench_required=False)
    page = Page(index.read_text())
    return {"page": page, "packed": index.read_text(), "section": page.ids["robustness"], "md": (out / "REPORT.md").read_text(),
            "doc": results_io.read_json(ROBUSTNESS)}


def test_the_robustness_table_shows_every_scenario_and_column_with_grade_and_figure(robust):
    doc, page, section = robust["doc"], robust["page"], robust["section"]
    assert "robustness-table" not in Page(robust["packed"], packed=True).ids     # stored deflated
    assert "robustness-table" in page.ids and not section.find("script", "deflated")
    results = doc["results"]
    scenarios = {s["id"]: s for s in doc["scenarios"]}
    assert {r.grade for r in results} >= {"OK", "FAILED"} and all(r.figures for r in results)
    rows = section.find("tr", "row")
    stored = cell_data(page)["cells"]
    assert [r.attrs["data-scenario"] for r in rows] == matrix.rows(results, list(scenarios))
    columns = [(th.attrs["data-impl"], th.attrs["data-model"]) for th in section.find("th", "model")]
    assert columns == matrix.columns(results)
    for row in rows:
        scenario = row.attrs["data-scenario"]
        assert scenarios[scenario]["description"] == row.one("span", "desc").text()
        tds = row.find("td", "cell")
        assert len(tds) == len(columns)
        for (impl, model), td in zip(columns, tds):
            r = next(x for x in results if (x.scenario, x.impl, x.model) == (scenario, impl, model))
            link = td.one("a")
            assert link.attrs["href"] == f"#{cells.anchor(impl, model, scenario)}" and link.attrs["href"][1:] in stored
            assert f"g-{cells.GRADE_CLASS[r.grade]}" in td.classes and td.attrs["data-grade"] == r.grade
            main = r.figures[0]   # the scenario records its telling figure first
            assert td.one("span", "short").text() == matrix.SHORT[r.grade]
            assert td.one("span", "value").text() == numbers.with_unit(main.value, main.unit, main.name)
            for f in r.figures:
                assert f"{f.name}: {numbers.with_unit(f.value, f.unit, f.name)}" in link.attrs["title"]


def test_a_robustness_cell_says_what_its_figure_measures_with_its_unit_and_note(robust):
    doc, section = robust["doc"], robust["section"]
    seen = set()
    for r in doc["results"]:
        td = next(td for td in section.find("td", "cell") if td.find("a", href=f"#{cells.anchor(r.impl, r.model, r.scenario)}"))
        main = r.figures[0]
        text = " ".join(td.text().split())
        value = numbers.with_unit(main.value, main.unit, main.name)
        if main.unit:          # '3005 ms' then what it is: 'idle clients closed after'
            assert td.one("span", "what").text() == main.name
            assert text.startswith(f"{matrix.SHORT[r.grade]} {value} {main.name}") and value.endswith(f" {main.unit}")
        else:                  # a count carries its name already: '8 examples'
            assert not td.find("span", "what") and value == f"{main.value:.0f} {main.name}"
        assert [n.text() for n in td.find("span", "fnote")] == ([main.note] if main.note else [])
        seen.add((bool(main.unit), bool(main.note)))
    assert {(True, True), (True, False), (False, True)} <= seen     # the fixture has each kind


def test_robustness_figures_print_with_their_units():
    assert numbers.with_unit(0.5, "%") == "0.5 %" and numbers.with_unit(274.3, "ms") == "274 ms"
    assert numbers.with_unit(2.3, "MiB") == "2.3 MiB" and numbers.with_unit(8, "", "examples") == "8 examples"


def test_results_without_robustness_rows_say_how_to_produce_them(built):
    text = " ".join(built["page"].ids["robustness-missing"].text().split())
    assert "acceptloop check --json results/check.json" in text and "-k robustness" in text
    assert "## Robustness" in built["md"] and "acceptloop check --json" in built["md"].split("## Robustness")[1]


def test_only_robustness_scenarios_become_rows_of_the_robustness_table(tmp_path):
    both = json.loads(FIXTURE.read_text())
    extra = json.loads(ROBUSTNESS.read_text())
    both["scenarios"] += extra["scenarios"]
    both["results"] += extra["results"]
    (tmp_path / "check.json").write_text(json.dumps(both))
    page = Page(build.write_report(tmp_path / "check.json", tmp_path / "none.json", tmp_path / "out",
                                   bench_required=False).read_text())
    rows = [r.attrs["data-scenario"] for r in page.ids["robustness-table"].find("tr", "row")]
    assert rows and all(r.startswith("robustness.") for r in rows)
    assert set(rows) == {s["id"] for s in extra["scenarios"]}
    matrix_rows = {r.attrs["data-scenario"] for r in page.ids["matrix-table"].find("tr", "row")}
    assert set(rows) < matrix_rows                      # still in the matrix as well


def test_the_markdown_summary_has_the_robustness_table(robust):
    md, doc = robust["md"], robust["doc"]
    part = md.split("## Robustness", 1)[1].split("\n## ", 1)[0]
    cols = matrix.columns(doc["results"])
    for s in doc["scenarios"]:
        name = s["id"].split(".", 1)[1]
        line = next(line for line in part.splitlines() if line.startswith(f"| {name} |"))
        shown = [c.strip() for c in line.strip("|").split("|")][1:]
        for (impl, model), text in zip(cols, shown):
            r = next(x for x in doc["results"] if (x.scenario, x.impl, x.model) == (s["id"], impl, model))
            main = r.figures[0]
            assert text == f"{matrix.SHORT[r.grade]} {numbers.with_unit(main.value, main.unit, main.name)}"
        assert f"- `{name}`: {s['description']}" in part


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
def playwright_api():
    """playwright's sync API (sync_playwright, expect), or the test fails saying what to install."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"headless Chromium is needed at {CHROMIUM} (ACCEPTLOOP_CHROMIUM names another): "
                    f"`make test` installs Debian's chromium package, or run `apt-get install chromium`")
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        pytest.fail("the playwright package is missing: `pip install -e '.[test]'` installs it")
    return sync_playwright, expect


def playwright_expect():
    """playwright's `expect`, or the test fails saying what to install."""
    return playwright_api()[1]


@contextlib.contextmanager
def headless_page(tmp_path: Path, viewport: dict | None = None):
    """A page of headless Chromium with a profile of its own under tmp_path, the one way every test
    here opens the report; the browser is closed on the way out."""
    sync_playwright, _ = playwright_api()
    size = {"viewport": viewport} if viewport else {}
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, timeout=60_000,
            **size)
        try:
            yield context.new_page()
        finally:
            context.close()


# Whether the page's script has put every deflated part of the page into it.
UNPACKED = "() => document.querySelector('script.deflated') === null"


def load(page, url: str) -> None:
    """Open `url` as a reader does and wait until the page's script has unpacked its deflated parts."""
    page.goto(url, wait_until="load")
    page.wait_for_function(UNPACKED, timeout=20_000)


def test_headless_chromium_shows_the_matrix_and_the_filter_hides_agreeing_rows(built, tmp_path):
    expect = playwright_expect()
    index: Path = built["index"]
    doc = built["doc"]
    differing = matrix.disagreements(doc["results"], [s["id"] for s in doc["scenarios"]])
    agreeing = [s for s in matrix.rows(doc["results"]) if s not in differing]
    failed = next(r for r in doc["results"] if r.grade == "FAILED")
    requests: list[str] = []
    with headless_page(tmp_path) as page:
        page.on("request", lambda request: requests.append(request.url))
        load(page, index.as_uri())
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
    assert requests and all(url.split("#")[0] == index.as_uri() for url in requests), requests


def test_headless_chromium_shows_the_charts_and_a_robustness_cell_opens_its_detail(tmp_path):
    expect = playwright_expect()
    index = build.write_report(ROBUSTNESS, BENCH, tmp_path / "out")
    failed = next(r for r in results_io.read_json(ROBUSTNESS)["results"] if r.grade == "FAILED")
    anchor = cells.anchor(failed.impl, failed.model, failed.scenario)
    requests: list[str] = []
    with headless_page(tmp_path) as page:
        page.on("request", lambda request: requests.append(request.url))
        load(page, index.as_uri())
        svgs = page.locator("#performance svg.chart")
        assert svgs.count() >= 4
        for i in range(svgs.count()):
            chart = svgs.nth(i)
            chart.scroll_into_view_if_needed()
            expect(chart).to_be_visible()
            box = chart.bounding_box()
            assert box and box["width"] > 200 and box["height"] > 100, box
            point = chart.locator("g.pt, g.bar").first
            point_box = point.bounding_box()
            assert point_box and point_box["width"] > 0 and point_box["height"] > 0
        detail = page.locator(f'[id="{anchor}"]')
        expect(detail).to_be_hidden()
        page.locator(f'#robustness-table a[href="#{anchor}"]').click()
        expect(detail).to_be_visible(timeout=5_000)
        expect(page.locator(f'#robustness-table a[href="#{anchor}"]').locator("..")).to_have_class(re.compile("selected"))
        expect(detail.locator(".badge.g-failed")).to_have_text("FAILED")
    assert requests and all(url.split("#")[0] == index.as_uri() for url in requests), requests


def test_an_error_cell_has_its_own_colour_and_count_apart_from_failed(built, opened):
    page = built["page"]
    errors = [r for r in built["doc"]["results"] if r.grade == "ERROR"]
    assert errors
    for r in errors:
        anchor = cells.anchor(r.impl, r.model, r.scenario)
        cell = next(td for td in page.root.find("td", "cell") if td.find("a", href=f"#{anchor}"))
        assert "g-error" in cell.classes and "g-failed" not in cell.classes and cell.text().strip() == "ERR"
        assert r.reason in " ".join(opened["details"][anchor].text().split())
    count = page.root.one("ul", "counts").one("li", data_grade="ERROR")
    assert count.one("span", "n").text() == str(len(errors)) and count.find("span", "g-error")
    assert f"**ERROR** {errors[0].impl}/{errors[0].model}" in built["md"]


def test_every_check_shows_its_basis_and_a_basis_not_followed_is_marked_shown(built, opened):
    for r in built["doc"]["results"]:
        if not r.checks:
            continue
        rows = opened["details"][cells.anchor(r.impl, r.model, r.scenario)].one("table", "checks").find("tr")[1:]
        assert [row.find("td")[3].text().split()[0] for row in rows] == [c.basis for c in r.checks]
        for row, c in zip(rows, r.checks):
            assert ("(shown)" in row.find("td")[3].text()) == (not c.followed)
            assert ("shown" in row.classes) == (not c.ok and not c.followed)


# -- a full-size report ---------------------------------------------------------------------------
# tests/fixtures/results-full.json.xz is a whole `acceptloop check --json` of the registry (3,700
# cells: 100 scenarios x 37 implementation/model columns, its 200-client slowloris transcripts and
# server stderr included), xz-compressed (351 KB); regenerate it with `acceptloop check --json
# /tmp/c.json && xz -9e -c /tmp/c.json > tests/fixtures/results-full.json.xz`. The benchmark's
# full profile is planned here for today's registry (full_profile_bench), so it grows with it.
FULL_CHECK = Path(__file__).parent / "fixtures" / "results-full.json.xz"
# bytes: the page of a full check and a full benchmark, issue 11's bound. The matrix, the failures,
# the robustness table and the benchmark's tables and charts are stored deflated (render.deflated):
# 1.28 MB for the real check and full benchmark of 2026-12-01 (3.75 MB before), most of it the
# cells' details (630 KB) and the walkthrough (250 KB), which shows coloured and folded unpacked.
SIZE_BOUND = 1_500_000


def synthetic_run(cell, round_no: int) -> dict:
    """One run's record of `cell`, as the load generator writes it (bench/runner.py), with made-up
    figures: each cell has its own level (the same in every round) and a spread between rounds, wide
    (noisy) for about a third of the cells as in a real full run on a shared machine; instructions
    are counted (as on a machine with the CPU's counters: more for the page to show)."""
    w = cell.workload
    level, rng = random.Random(cell.id), random.Random(f"{cell.id}/{round_no}")
    spread = 1.8 if level.random() < 0.3 else 1.12

    def jitter() -> float:
        return rng.uniform(1 / math.sqrt(spread), math.sqrt(spread))
    cpu = level.uniform(4, 400) * jitter()
    ops_per_s = 0.0 if w.kind == "idle" else level.uniform(2_000, 80_000) / (1 + w.size / 16_384) * jitter()
    streams = w.kind in ("ingest", "egress")
    mb_per_s = level.uniform(200, 3_000) * jitter() if streams else ops_per_s * 2 * (w.size or 40) / 1e6
    timed = w.kind in ("echo", "connect", "datagram")
    p50 = w.connections / ops_per_s * 1e6 if timed else 0.0
    instructions = cpu * level.uniform(1_800, 3_200) * jitter()
    return {
        "round": round_no, "mode": w.kind, "io": w.io, "connections": w.connections,
        "ops": int(ops_per_s), "ops_per_s": ops_per_s, "mb_per_s": mb_per_s, "elapsed_s": 1.0,
        "latency_us": {"p50": p50, "p90": p50 * 1.6, "p99": p50 * 4.2, "p999": p50 * 11.5, "min": p50 / 3,
                       "max": p50 * 30, "mean": p50 * 1.3},
        "latency_samples": int(ops_per_s) if timed else 0,
        "client_cpu_pct": level.uniform(15, 94) * jitter() ** 0.2,
        "client_cpu_us_per_op": None if w.kind == "idle" else cpu * level.uniform(0.5, 2),
        "errors": {"refused": 0, "reset": 0, "broken_pipe": 0, "closed_early": 0, "mismatch": 0, "other": 0,
                   "timeout": rng.choice((0, 0, 0, 3)) if w.kind == "datagram" else 0},
        "server_cpu_us_per_op": None if w.kind == "idle" else cpu,
        "server_instructions_per_op": None if w.kind == "idle" else instructions,
        "server_user_instructions_per_op": None if w.kind == "idle" else instructions * 0.4,
        "server_rss_end": level.randint(1_400_000, 60_000_000), "server_exit": 0,
        "rss_per_conn": level.uniform(40, 30_000) if w.kind == "idle" else 0.0,
    }


def full_profile_bench(fixture: dict) -> dict:
    """The document `acceptloop bench --full` writes for today's registry: the benchmark's own plan
    (the full profile for every implementation it measures by default, the control twin and the
    floor: the 453 cells of the real run of 2026-12-01, echo on every model and on uring, the
    streams, idle, the datagram cells, the handler hosts), each run made up by synthetic_run, and
    the benchmark's own summary (bench/summary.py: medians, flags, floor ratios, the ratio table,
    the noise floor, the bindings, batching and targets). Fairness and provenance are `fixture`'s."""
    sel = session.Selection()
    impls = bench_plan.measured_by_default(session.implementations(sel, include_peers=True))
    plan = bench_plan.plan(impls, bench_plan.FULL, floors=session.floors(sel))
    runs = [bench_runner.Run(cell, n, synthetic_run(cell, n)) for n in range(1, plan.rounds + 1) for cell in plan.cells]
    measured = {c.impl.name: c.impl for c in plan.cells}
    described = [results_io.describe_impl(i) | {"role": i.role} for i in measured.values()]
    document = bench_summary.document(plan, runs, fixture["fairness"], fixture["provenance"], described)
    document["left_out"] = {}
    return document


@pytest.fixture(scope="module")
def full_size(tmp_path_factory):
    out = tmp_path_factory.mktemp("report-full")
    check, bench = out / "check.json", out / "bench.json"
    check.write_bytes(lzma.decompress(FULL_CHECK.read_bytes()))
    bench.write_text(json.dumps(full_profile_bench(json.loads(BENCH.read_text()))))
    index = build.write_report(check, bench, out / "report")
    packed = index.read_text()
    html = inflate(packed)
    return {"index": index, "packed": packed, "html": html, "page": Page(html), "raw": Page(packed, packed=True),
            "doc": results_io.read_json(check), "bench": json.loads(bench.read_text())}


def test_the_full_size_documents_have_the_size_of_a_whole_check_and_a_full_benchmark_of_the_registry(full_size):
    doc, bench = full_size["doc"], full_size["bench"]
    assert len(doc["results"]) >= 3_700 and len(doc["scenarios"]) >= 100 and len(matrix.columns(doc["results"])) >= 37
    assert max(len(r.transcripts) for r in doc["results"]) >= 200
    assert any(r.scenario.startswith("robustness.") for r in doc["results"])
    cells = bench["cells"]
    assert len(cells) >= 450 and len({c["id"] for c in cells}) == len(cells)
    assert {c["kind"] for c in cells} >= {"echo", "connect", "ingest", "egress", "idle", "datagram"}
    assert {c["model"] for c in cells} >= {"event", "uring", "iterative", "fork", "threads"}
    assert {c["role"] for c in cells} >= {"port", "peer", "control", "floor"}
    assert bench["bindings"] and bench["batching"] and bench["targets"] and len(bench["core_table"]) >= 700
    assert 0 < sum(1 for c in cells if c["flags"]) < len(cells)


def sections(html: str) -> dict[str, int]:
    """Each section's bytes in `html`, and what follows the last: the cells' details and the script."""
    starts = sorted((html.index(f'<section id="{name}">'), name) for name in
                    ("summary", "provenance", "matrix", "attention", "robustness", "walkthrough", "performance"))
    ends = [start for start, _ in starts[1:]] + [html.index('<div id="details">')]
    parts = {"head": len(html[:starts[0][0]].encode())}
    parts.update({name: len(html[start:end].encode()) for (start, name), end in zip(starts, ends)})
    parts["details and script"] = len(html[ends[-1]:].encode())
    return parts


def test_a_report_of_a_full_check_and_a_full_benchmark_is_under_the_size_bound(full_size):
    index, page, raw = full_size["index"], full_size["page"], full_size["raw"]
    size = index.stat().st_size
    elements = sum(1 for _ in page.root.walk())
    stored, inflated = sections(full_size["packed"]), sections(full_size["html"])
    print(f"\nfull-size report: {size:,} bytes ({len(full_size['html'].encode()):,} unpacked), {elements:,} elements "
          f"unpacked; the cells' data {len(page.ids['cell-data'].text()):,} bytes ({len(full_size['doc']['results'])} "
          f"details); sections as stored (unpacked): "
          + ", ".join(f"{k} {v:,} ({inflated[k]:,})" for k, v in stored.items()))
    assert size < SIZE_BOUND
    assert len(cell_data(page)["cells"]) == len(full_size["doc"]["results"])
    assert len(page.ids["matrix-table"].find("td", "cell")) == len(full_size["doc"]["results"])
    assert len(page.root.find("tr", "bench-row")) == len(full_size["bench"]["cells"])
    assert not page.root.find("section", "detail")
    assert_self_contained(page, full_size["html"])
    # As stored, the walkthrough is in the page: every step, folded but the first, coloured.
    steps = raw.ids["walkthrough"].find("details", "step")
    assert len(steps) == len(walkthrough.load().steps) and [("open" in d.attrs) for d in steps][:2] == [True, False]
    assert raw.ids["walkthrough"].find("span", "k") and not raw.ids["walkthrough"].find("script", "deflated")


# Follow a link to a cell (the URL's fragment) and resolve, in ms, once its detail is in the page and a frame has painted.
DRAWN = """id => new Promise(done => {
    const started = performance.now();
    location.hash = id;
    (function wait() {
        if (document.getElementById(id)) { requestAnimationFrame(() => done(performance.now() - started)); }
        else { requestAnimationFrame(wait); }
    })();
})"""


# Resolve, in ms since the navigation started, once the page's deflated parts are unpacked and a frame has painted.
UNPACKED_AT = """() => new Promise(done => {
    (function wait() {
        if (document.querySelector('script.deflated') === null) { requestAnimationFrame(() => done(performance.now())); }
        else { requestAnimationFrame(wait); }
    })();
})"""


def test_headless_chromium_paints_the_full_size_report_unpacks_its_tables_and_opens_its_largest_detail(full_size, tmp_path):
    """Measures first-contentful-paint (Performance API), the time until the deflated parts are in
    the page and the time to draw the largest detail, and prints them; asserts that the page painted,
    that every row of the unpacked tables is in it and that the detail opens whole, never a time."""
    expect = playwright_expect()
    index, doc, bench = full_size["index"], full_size["doc"], full_size["bench"]
    largest = max(doc["results"], key=lambda r: len(r.transcripts))
    anchor = cells.anchor(largest.impl, largest.model, largest.scenario)
    robustness_rows = len(full_size["page"].ids["robustness-table"].find("tr", "row"))
    charts = len(full_size["page"].ids["performance"].find("svg", "chart"))
    paints, unpacked, opens, requests = [], [], [], []
    with headless_page(tmp_path, viewport={"width": 1400, "height": 900}) as page:
        page.on("request", lambda request: requests.append(request.url))
        for _ in range(3):
            page.goto(index.as_uri(), wait_until="load")
            unpacked.append(page.evaluate(UNPACKED_AT))
            # Every row and chart that was stored deflated is in the page.
            assert page.locator("#matrix-table tr.row").count() == len(matrix.rows(doc["results"]))
            assert page.locator("#matrix-table td.cell").count() == len(doc["results"])
            assert page.locator("#robustness-table tr.row").count() == robustness_rows > 0
            assert page.locator("table.bench-cells tr.bench-row").count() == len(bench["cells"])
            assert page.locator("table.core tr[data-pair]").count() > 0
            assert page.locator("#performance svg.chart").count() == charts > 0
            paints.append(page.evaluate("""() => new Promise(done => new PerformanceObserver((list, observer) => {
                const fcp = list.getEntries().find(e => e.name === "first-contentful-paint");
                if (fcp) { observer.disconnect(); done(fcp.startTime); }
            }).observe({type: "paint", buffered: true}))"""))
            nodes = page.evaluate("document.getElementsByTagName('*').length")
            opens.append(page.evaluate(DRAWN, anchor))     # the first detail opened inflates the data
            detail = page.locator(f'section.detail[id="{anchor}"]')
            expect(detail).to_be_visible(timeout=10_000)
            expect(detail.locator("div.transcript")).to_have_count(len(largest.transcripts))
            page.goto("about:blank")
    print(f"\nfull-size report in headless Chromium at 1400 px: first-contentful-paint "
          f"{', '.join(f'{p:.0f}' for p in paints)} ms (median {sorted(paints)[1]:.0f}); unpacked and painted at "
          f"{', '.join(f'{u:.0f}' for u in unpacked)} ms; {nodes:,} elements; "
          f"largest detail ({len(largest.transcripts)} transcripts) drawn in {', '.join(f'{o:.0f}' for o in opens)} ms")
    assert all(p > 0 for p in paints)
    assert all(url.split("#")[0] in (index.as_uri(), "about:blank") for url in requests), requests


def test_headless_chromium_follows_links_into_the_unpacked_tables_of_the_full_size_report(full_size, tmp_path):
    """A flagged cell's link lands on its row of the every-cell table, followed while the table is
    still packed and after; a URL naming a row does on load; the filter
    hides the agreeing rows of the unpacked matrix; a cell of it opens its detail."""
    expect = playwright_expect()
    index, doc, page_ = full_size["index"], full_size["doc"], full_size["page"]
    flagged = [a.attrs["href"][1:] for a in page_.root.one("div", "flagged-list").find("a")]
    assert len(flagged) >= 3 and all(f in page_.ids for f in flagged)
    order = [s["id"] for s in doc["scenarios"]]
    differing = matrix.disagreements(doc["results"], order)
    assert 0 < len(differing) < len(matrix.rows(doc["results"], order))
    failed = next(r for r in doc["results"] if r.grade in ("FAILED", "NON-STRICT"))
    cell = cells.anchor(failed.impl, failed.model, failed.scenario)
    on_target = "id => { const row = document.getElementById(id); return row !== null && row.matches(':target'); }"
    requests: list[str] = []
    with headless_page(tmp_path, viewport={"width": 1400, "height": 900}) as page:
        page.on("request", lambda request: requests.append(request.url))
        # Followed before the table is unpacked (as the document is parsed, the page's script has
        # run, nothing is inflated yet): the page unpacks, then goes to the row.
        page.add_init_script("""document.addEventListener("DOMContentLoaded", () => {
            window.packedAtClick = document.querySelectorAll("script.deflated").length;
            document.querySelector('.flagged-list a[href="#%s"]').click();
        });""" % flagged[0])
        page.goto(index.as_uri(), wait_until="load")
        page.wait_for_function(UNPACKED, timeout=60_000)
        assert page.evaluate("window.packedAtClick") == len(full_size["raw"].root.find("script", "deflated"))
        row = page.locator(f'tr.bench-row[id="{flagged[0]}"]')
        expect(row).to_be_in_viewport(timeout=10_000)
        assert page.evaluate(on_target, flagged[0]) and page.evaluate("location.hash") == f"#{flagged[0]}"
        page.close()
        page = page.context.new_page()   # a fresh page of the same browser
        page.on("request", lambda request: requests.append(request.url))
        load(page, index.as_uri())
        # And after.
        page.locator(f'.flagged-list a[href="#{flagged[2]}"]').click()
        expect(page.locator(f'tr.bench-row[id="{flagged[2]}"]')).to_be_in_viewport(timeout=10_000)
        assert page.evaluate(on_target, flagged[2])
        # A URL naming a row, from outside: the row once it is unpacked.
        page.goto("about:blank")
        page.goto(f"{index.as_uri()}#{flagged[1]}", wait_until="load")
        page.wait_for_function(UNPACKED, timeout=60_000)
        expect(page.locator(f'tr.bench-row[id="{flagged[1]}"]')).to_be_in_viewport(timeout=10_000)
        assert page.evaluate(on_target, flagged[1])
        # The filter, on the unpacked matrix.
        shown = """() => [...document.querySelectorAll('#matrix-table tr.row')]
            .filter(r => r.getClientRects().length).map(r => r.dataset.scenario)"""
        assert page.evaluate(shown) == matrix.rows(doc["results"], order)
        page.locator("#only-disagreements").check()
        expect(page.locator("#matrix-table tr.row.agree").first).to_be_hidden(timeout=5_000)
        assert page.evaluate(shown) == differing
        expect(page.locator("#no-disagreements")).to_be_hidden()
        # A cell of it opens its detail, outlined in the matrix.
        page.locator(f'#matrix-table a[href="#{cell}"]').click()
        expect(page.locator(f'section.detail[id="{cell}"]')).to_be_visible(timeout=10_000)
        expect(page.locator(f'#matrix-table a[href="#{cell}"]').locator("..")).to_have_class(re.compile("selected"))
    assert all(url.split("#")[0] in (index.as_uri(), "about:blank") for url in requests), requests


@pytest.mark.parametrize("width", [1400, 400])
def test_headless_chromium_fits_the_page_to_the_screen_and_a_detail_takes_and_gives_back_the_focus(benched, width, tmp_path):
    expect = playwright_expect()
    failed = next(r for r in results_io.read_json(FIXTURE)["results"] if r.grade == "FAILED")
    anchor = cells.anchor(failed.impl, failed.model, failed.scenario)
    with headless_page(tmp_path, viewport={"width": width, "height": 900}) as page:
        load(page, benched["index"].as_uri())
        # Wide tables scroll in their own box; the page itself never scrolls sideways.
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        link = page.locator(f'#matrix-table a[href="#{anchor}"]')
        link.focus()
        page.keyboard.press("Enter")
        detail = page.locator(f'section.detail[id="{anchor}"]')
        expect(detail).to_be_visible(timeout=5_000)
        expect(detail).to_be_focused()
        box = detail.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= width + 1
        assert detail.get_attribute("role") == "dialog" and failed.scenario in detail.get_attribute("aria-label")
        page.keyboard.press("Escape")
        expect(detail).to_have_count(0, timeout=5_000)
        expect(link).to_be_focused()
