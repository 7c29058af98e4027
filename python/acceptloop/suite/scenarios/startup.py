"""Hostile start-up values: host names getaddrinfo refuses on its own terms, names of every length
the contract allows, and daytime epochs at and past the edges of their range."""
from __future__ import annotations

import re

from acceptloop import _protocol as P
from acceptloop.suite.catalog import scenario
from acceptloop.suite.scenario import BASIS_PROTOCOL, CONTRACT, MUST, Context
from acceptloop.suite.scenarios.probes import daytime_line
from acceptloop.suite.client import Client

PORT = 7   # a port none of these starts gets far enough to bind

HOSTS = {
    "an empty label (a..b)": "a..b",
    "a label of 64 bytes (DNS allows 63)": "l" * 64 + ".invalid",
    "a name of 300 bytes": ".".join(["n" * 59] * 5) + ".invalid",
    "a name of 1024 bytes, the longest the contract takes": ("m" * 63 + ".") * 15 + "m" * 56 + ".invalid",
}

BAD_EPOCHS = {
    "in exponent form (1e17)": "1e17",
    "one second past 9999-12-31 23:59:59": str(P.DAYTIME_EPOCH_MAX + 1),
    "before 1970 (-1)": "-1",
    "with a fraction (12.5)": "12.5",
    "far too large (10**30)": "1" + "0" * 30,
}

GOOD_EPOCHS = (P.DAYTIME_EPOCH_MIN, P.DAYTIME_EPOCH_MAX)


@scenario("robustness.hostile_startup", "Host names getaddrinfo refuses (a..b, a 64-byte label, 300 and 1024 bytes): "
          "exit 1 with one resolve line holding the whole address; daytime epochs outside 0..9999-12-31: usage, "
          "exit 2; the edges themselves are served.",
          MUST, CONTRACT, "If resolve fails: one line on stderr naming the step, the address and the error, then "
          "exit 1. ACCEPTLOOP_DAYTIME_EPOCH outside protocol.toml's range, or not a whole number: usage, exit 2.",
          service="daytime", shared=False, timeout=90, chooses=("host",))
def hostile_startup(ctx: Context) -> None:
    for what, host in HOSTS.items():
        proc = ctx.server_process(host=host, port=PORT)
        proc.spawn()
        code = proc.wait_exit(15.0)
        lines = [line for line in proc.stderr().splitlines() if line.strip()]
        ctx.check(code == P.EXIT_FAILURE, f"{what}: exit 1", 1, "still running" if code is None else code)
        want = rf"resolve {re.escape(host)}:{PORT}: .+ \(EAI_[A-Z]+\)"
        ctx.check(len(lines) == 1 and re.fullmatch(want, lines[0]) is not None,
                  f"{what}: one line, `resolve HOST:{PORT}: TEXT (EAI_NAME)`, the whole host and the port",
                  f"resolve {host[:40]}...:{PORT}: ... (EAI_...)", lines[:2] or "nothing")
    for what, text in BAD_EPOCHS.items():
        proc = ctx.server_process(env={P.DAYTIME_EPOCH_ENV: text})
        proc.spawn()
        code = proc.wait_exit(10.0)
        stderr = proc.stderr()
        ctx.check(code == P.EXIT_USAGE, f"{P.DAYTIME_EPOCH_ENV} {what}: exit {P.EXIT_USAGE}", P.EXIT_USAGE,
                  "still running" if code is None else code, basis=BASIS_PROTOCOL)
        ctx.check(P.DAYTIME_EPOCH_ENV in stderr and "usage" in stderr.lower(),
                  f"{P.DAYTIME_EPOCH_ENV} {what}: usage, and a line naming the variable", "usage: ...",
                  stderr.strip()[-200:] or "nothing", basis=BASIS_PROTOCOL)
    for epoch in GOOD_EPOCHS:
        srv = ctx.start_server(env={P.DAYTIME_EPOCH_ENV: str(epoch)})
        c = Client(srv.address, label=f"epoch {epoch}")
        ctx.clients.append(c)
        c.recv_until_end()
        ctx.check(c.received == daytime_line(epoch), f"{P.DAYTIME_EPOCH_ENV}={epoch}: the line for that second",
                  daytime_line(epoch), c.received, basis=BASIS_PROTOCOL)
