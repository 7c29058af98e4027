"""The suite catches what it claims to: deliberately broken servers, registered through
--implementations, are FAILED on exactly the scenarios they break and OK on all the rest."""
from __future__ import annotations

from pathlib import Path

import pytest

from acceptloop.suite import registry, runner
from acceptloop.suite.scenario import FAILED, INFO, MISSING, OK

BROKEN = Path(__file__).parent / "fixtures" / "broken.toml"

# The scenarios that send NUL bytes through echo.
NUL_SCENARIOS = {"echo.all_byte_values", "echo.large_stream", "echo.half_close_flush", "lifecycle.sigterm_busy",
                 "robustness.slow_reader", "robustness.sigterm_transfer", "robustness.single_write_64mib_echo",
                 "robustness.fuzz_echo"}
# Every chargen scenario ends with the client going away while the server writes: a reset or EPIPE;
# the robustness cases reset on purpose, and the fuzzer's examples include resets for every service.
RESET_SCENARIOS = {"chargen.pattern", "chargen.input_ignored", "chargen.client_closes_mid_stream",
                   "chargen.client_resets_mid_stream", "chargen.half_close_keeps_sending", "chargen.zero_byte",
                   "robustness.reset_before_accept", "robustness.reset_mid_echo", "robustness.reset_mid_chargen",
                   "robustness.cold_exhaustion", "robustness.fd_setsize_pending_errors",
                   *(f"robustness.fuzz_{s}" for s in ("echo", "discard", "chargen", "daytime", "message"))}


def _run(name: str, keyword: str | None = None):
    impls = [i for i in registry.load([BROKEN], base=None) if i.name == name]
    return runner.run(runner.plan(impls, keyword=keyword))


@pytest.mark.parametrize("name, broken, keyword", [
    ("nul-dropper", NUL_SCENARIOS, None),
    ("dies-on-reset", RESET_SCENARIOS, None),
])
def test_failed_exactly_where_broken(name, broken, keyword):
    results = _run(name, keyword)
    assert results, "the broken server's cells ran"
    failed = {r.scenario for r in results if r.grade == FAILED}
    # INFO is a case that cannot apply to this model (it says why): neither a pass nor a miss.
    other = {(r.scenario, r.model, r.grade, r.reason) for r in results
             if r.grade not in (OK, FAILED, MISSING, INFO) or (r.grade == INFO and not r.reason)
             or (r.grade == FAILED and r.scenario not in broken)}
    assert failed == broken, f"FAILED on {sorted(failed)}; expected {sorted(broken)}"
    # and FAILED under every model it runs, not only some
    for model in {r.model for r in results}:
        assert {r.scenario for r in results if r.grade == FAILED and r.model == model} == broken
    assert not other, other
