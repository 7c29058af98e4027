"""What a scenario is, what it may do to a server, and how its run is graded.

A scenario is defined once (in `acceptloop.suite.scenarios`): an id grouped by
service or area, a one-line description, the requirement it checks (MUST,
SHOULD or INFO, with the words it follows) and its client steps. Running it
against one implementation and model gives a Result holding the checks, the
transcripts, any figures, and the grade:

    OK          every check held
    NON-STRICT  a SHOULD check failed
    FAILED      a MUST check failed
    INFO        the scenario only records what happened (or why a case cannot apply)
    MISSING     the implementation does not offer what the scenario needs
"""
from __future__ import annotations

import re
import time
import traceback
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from acceptloop import _protocol as P
from acceptloop.suite.client import Client, StepTimeout
from acceptloop.suite.process import ServerProcess, ServerStartError, wait_until
from acceptloop.suite.registry import Implementation

OK, NON_STRICT, FAILED, INFO, MISSING = "OK", "NON-STRICT", "FAILED", "INFO", "MISSING"
GRADES = (OK, NON_STRICT, FAILED, INFO, MISSING)
MUST, SHOULD = "MUST", "SHOULD"

# What must never appear on a server's stderr (the contract: never a traceback, never a PHP
# warning), and the sanitizers' reports. The message service's log lines quote what a client
# sent, so they are left out before looking.
STDERR_ALARMS = {
    "a Python traceback": re.compile(r"^Traceback \(most recent call last\)", re.M),
    "a PHP error or warning": re.compile(r"^(PHP )?(Warning|Notice|Deprecated|Fatal error|Parse error):", re.M),
    "a sanitizer report": re.compile(r"ERROR: (Address|Leak|Thread)Sanitizer|runtime error: |SUMMARY: \w+Sanitizer"),
}
CONTRACT = "contract (docs/protocol.md)"


@dataclass(frozen=True)
class Scenario:
    id: str                       # "echo.half_close_flush": group, then name
    description: str              # one line
    level: str                    # MUST, SHOULD or INFO
    source: str                   # "RFC 862", "docs/protocol.md", ...
    text: str                     # the requirement's own words
    run: Callable[["Context"], None]
    service: str                  # the service it talks to
    shared: bool = True           # talks to the (impl, model, service) server the runner keeps;
                                  # False: starts its own servers
    needs: frozenset[str] = frozenset()   # contract options it passes (--grace, ...)
    fingerprint: tuple[str, ...] = ()     # observation keys every implementation must agree on
    timeout: float = 60.0

    @property
    def group(self) -> str:
        return self.id.split(".", 1)[0]

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "group": self.group, "description": self.description, "level": self.level,
                "source": self.source, "text": self.text, "service": self.service, "shared": self.shared,
                "needs": sorted(self.needs)}

    def missing_reason(self, impl: Implementation) -> str | None:
        """Why `impl` cannot take part in this scenario, or None."""
        unavailable = impl.unavailable()
        if unavailable:
            return f"{impl.name}: {unavailable}"
        if self.service not in impl.services:
            return f"{impl.name} does not offer the {self.service} service"
        if not self.shared and not impl.launchable:
            return f"{impl.name} runs elsewhere ({impl.address[0]}:{impl.address[1]}); the kit cannot start or stop it"
        lacking = sorted(self.needs - impl.options)
        if lacking:
            return f"{impl.name} does not accept " + ", ".join(f"--{o}" for o in lacking)
        return None


@dataclass
class Check:
    what: str
    ok: bool
    level: str
    expected: str = ""
    observed: str = ""


@dataclass
class Figure:
    name: str
    value: float
    unit: str
    note: str = ""


@dataclass
class Result:
    scenario: str
    impl: str
    model: str
    grade: str
    reason: str = ""                       # the first failed check, or why MISSING/INFO
    checks: list[Check] = field(default_factory=list)
    transcripts: list[dict[str, Any]] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    observed: dict[str, Any] = field(default_factory=dict)
    duration_s: float = 0.0
    server: dict[str, Any] = field(default_factory=dict)   # command, pid, exit code, stderr

    @property
    def cell(self) -> str:
        return f"{self.impl}-{self.model}-{self.scenario}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Result":
        d = dict(d)
        d["checks"] = [Check(**c) for c in d.get("checks", [])]
        d["figures"] = [Figure(**f) for f in d.get("figures", [])]
        return cls(**d)


class Context:
    """What a scenario's steps work with: its server, its clients, and where its checks go."""

    def __init__(self, scenario: Scenario, impl: Implementation, model: str,
                 server: ServerProcess | None) -> None:
        self.scenario = scenario
        self.impl = impl
        self.model = model
        self.server = server
        self.checks: list[Check] = []
        self.clients: list[Client] = []
        self.figures: list[Figure] = []
        self.observed: dict[str, Any] = {}
        self.own_servers: list[ServerProcess] = []
        self.info_reason: str | None = None

    # -- servers ---------------------------------------------------------------------------
    @property
    def address(self) -> tuple[str, int]:
        assert self.server is not None, "this scenario starts its own servers"
        return self.server.address

    def server_process(self, service: str | None = None, host: str = "127.0.0.1", port: int = 0,
                       options: dict[str, str | None] | None = None, env: dict[str, str] | None = None,
                       argv: list[str] | None = None, **kw: Any) -> ServerProcess:
        """A server of this implementation and model, not yet started; stopped when the scenario ends."""
        proc = ServerProcess(self.impl, service or self.scenario.service, self.model, host=host, port=port,
                             options=options, env=env, argv=argv, **kw)
        self.own_servers.append(proc)
        return proc

    def start_server(self, **kw: Any) -> ServerProcess:
        return self.server_process(**kw).start()

    # -- clients ---------------------------------------------------------------------------
    def connect(self, address: tuple[str, int] | None = None, label: str | None = None,
                keep: bool = True, timeout: float | None = None) -> Client:
        client = Client(address or self.address, label=label or f"client {len(self.clients) + 1}",
                        keep=keep, **({"timeout": timeout} if timeout else {}))
        self.clients.append(client)
        return client

    # -- checks and records ------------------------------------------------------------------
    def check(self, ok: bool, what: str, expected: Any = "", observed: Any = "", level: str | None = None) -> bool:
        self.checks.append(Check(what=what, ok=bool(ok), level=level or self.scenario.level,
                                 expected=_short(expected), observed=_short(observed)))
        return bool(ok)

    def observe(self, key: str, value: Any) -> None:
        """Record a fact of the observation (the keys in `fingerprint` are compared across implementations)."""
        self.observed[key] = value

    def figure(self, name: str, value: float, unit: str, note: str = "") -> None:
        self.figures.append(Figure(name, value, unit, note))

    def note(self, text: str) -> None:
        """A remark for the reader that grades nothing."""
        self.checks.append(Check(what=text, ok=True, level="INFO"))

    def info(self, reason: str) -> None:
        """Grade this run INFO with `reason`: the case cannot apply to this implementation or model."""
        self.info_reason = reason


def _short(value: Any, limit: int = 300) -> str:
    text = value.hex() if isinstance(value, (bytes, bytearray)) and not _printable(value) else (
        value.decode("ascii") if isinstance(value, (bytes, bytearray)) else str(value))
    return text if len(text) <= limit else text[:limit - 20] + f"... ({len(text)} chars)"


def _printable(data: bytes | bytearray) -> bool:
    return all(32 <= b < 127 or b in (9, 10, 13) for b in data)


def grade(scenario: Scenario, ctx: Context) -> tuple[str, str]:
    """The grade and its one-line reason."""
    if ctx.info_reason is not None:
        return INFO, ctx.info_reason
    failed = [c for c in ctx.checks if not c.ok]
    if scenario.level == "INFO":
        return INFO, failed[0].what if failed else ""
    must = [c for c in failed if c.level == MUST]
    if must:
        return FAILED, _reason(must[0])
    if failed:
        return NON_STRICT, _reason(failed[0])
    return OK, ""


def _reason(c: Check) -> str:
    parts = [c.what]
    if c.expected or c.observed:
        parts.append(f"expected {c.expected or '-'}, observed {c.observed or '-'}")
    return "; ".join(parts)


def execute(scenario: Scenario, impl: Implementation, model: str, server: ServerProcess | None) -> Result:
    """Run one scenario against one implementation and model, and grade it."""
    ctx = Context(scenario, impl, model, server)
    started = time.monotonic()
    watch = server is not None and server.proc is not None
    if server is not None:
        server.mark_stderr()
    baseline = server.tree_fd_count() if watch else 0
    try:
        scenario.run(ctx)
    except (StepTimeout, ServerStartError, OSError, AssertionError) as e:
        detail = str(e) or type(e).__name__
        if isinstance(e, ServerStartError) and e.stderr:
            detail += f" (stderr: {e.stderr.strip().splitlines()[-1][:200]})" if e.stderr.strip() else ""
        ctx.check(False, f"the scenario's steps completed: {type(e).__name__}: {detail}")
    except Exception as e:  # noqa: BLE001 - a kit bug must show as a failed cell, not stop the run
        ctx.check(False, f"kit error: {type(e).__name__}: {e}", observed=traceback.format_exc(limit=3))
    finally:
        for client in ctx.clients:
            client.close()
    stderr_parts = []
    server_info: dict[str, Any] = {}
    if watch:
        # The server may still be acting on the scenario's last close or reset (a chargen client
        # can only leave by resetting). Wait until it has let go of every connection the scenario
        # opened, so that whatever that does to it is blamed on this scenario and no later one.
        settled = wait_until(lambda: not server.alive() or server.tree_fd_count() <= baseline, 3.0)
        if not settled:
            ctx.note(f"3 s after the last client closed, the server still held "
                     f"{server.tree_fd_count() - baseline} more descriptor(s) than before the scenario")
        elif server.alive() and server.tree_fd_count() < baseline:
            server.wait_exit(1.0)   # fewer descriptors than it started with: it may be exiting
    if server is not None:
        alive = server.alive()
        stderr = server.stderr_since_mark()
        stderr_parts.append(stderr)
        server_info = {"command": server.argv if server.proc else None, "pid": server.proc.pid if server.proc else None,
                       "stderr": stderr[-4000:], "exit_code": None if alive else server.exit_code,
                       "shared": True}
        if not alive:
            server.wait_exit(1.0)
            server_info["exit_code"] = server.exit_code
            ctx.check(False, "the server is still running after the scenario", "running",
                      f"exited with {server.exit_code}", level=MUST)
    for own in ctx.own_servers:
        if own.proc is not None and own.listening and not own.told_to_stop and own.impl.launchable:
            # A server the scenario started and left running must still be running, and must
            # stop cleanly: a crash caused by the scenario's last reset shows here.
            if not own.alive():
                ctx.check(False, "the server is still running after the scenario", "running",
                          f"exited with {own.wait_exit(1.0)}", level=MUST)
            else:
                code = own.stop()
                ctx.check(code == P.EXIT_OK, "the server then exits 0 on SIGTERM", 0,
                          "killed after 10 s" if code is None else code, level=MUST)
        if own.proc is not None and own.proc.poll() is None:
            own.stop()
        stderr_parts.append(own.stderr())
        server_info.setdefault("own", []).append(
            {"command": own.argv if own.proc else None, "exit_code": own.exit_code, "stderr": own.stderr()[-4000:]})
        own.close()
    alarms = stderr_alarms("\n".join(stderr_parts))
    if alarms:
        ctx.check(False, "the server's stderr holds no traceback, PHP warning or sanitizer report",
                  "none", ", ".join(alarms), level=MUST)
    result = Result(scenario=scenario.id, impl=impl.name, model=model, grade=OK,
                    checks=ctx.checks, transcripts=[c.transcript.to_dict() for c in ctx.clients],
                    figures=ctx.figures, observed=ctx.observed, duration_s=time.monotonic() - started,
                    server=server_info)
    result.grade, result.reason = grade(scenario, ctx)
    return result


def stderr_alarms(stderr: str) -> list[str]:
    """What, of STDERR_ALARMS, `stderr` holds (leaving out the message service's log lines)."""
    own = "\n".join(line for line in stderr.splitlines() if not line.startswith(P.MESSAGE_LOG_PREFIX))
    return [name for name, pattern in STDERR_ALARMS.items() if pattern.search(own)]


def missing(scenario: Scenario, impl: Implementation, model: str, reason: str) -> Result:
    return Result(scenario=scenario.id, impl=impl.name, model=model, grade=MISSING, reason=reason)
