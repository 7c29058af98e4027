"""The terminal matrix and its disagreements view."""
from __future__ import annotations

from acceptloop.suite import matrix
from acceptloop.suite.scenario import Result


def r(scenario, impl, model, grade):
    return Result(scenario=scenario, impl=impl, model=model, grade=grade, reason=f"{grade} because")


RESULTS = [
    r("echo.round_trip", "a", "event", "OK"), r("echo.round_trip", "b", "event", "OK"),
    r("echo.round_trip", "b", "fork", "OK"),
    r("chargen.pattern", "a", "event", "OK"), r("chargen.pattern", "b", "event", "FAILED"),
    r("chargen.pattern", "b", "fork", "OK"),
    r("lifecycle.ready_lines", "a", "event", "MISSING"), r("lifecycle.ready_lines", "b", "event", "OK"),
    r("lifecycle.ready_lines", "b", "fork", "OK"),
]


def test_columns_follow_implementations_then_protocol_model_order():
    assert matrix.columns(RESULTS) == [("a", "event"), ("b", "fork"), ("b", "event")]


def test_rows_are_grouped_by_service_in_protocol_order():
    assert matrix.rows(RESULTS) == ["echo.round_trip", "chargen.pattern", "lifecycle.ready_lines"]


def test_disagreements_hold_only_rows_whose_grades_differ():
    assert matrix.disagreements(RESULTS) == ["chargen.pattern", "lifecycle.ready_lines"]
    text = matrix.render(RESULTS, only=matrix.disagreements(RESULTS))
    assert "echo.round_trip" not in text and "chargen.pattern" in text and "FAIL" in text


def test_the_report_explains_failures():
    import io
    out = io.StringIO()
    matrix.print_report(RESULTS, out)
    assert "FAILED     b/event chargen.pattern: FAILED because" in out.getvalue()
    assert "2 row(s) where implementations differ" in out.getvalue()
