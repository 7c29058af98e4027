"""What every service must survive: a client that connects and leaves without a word."""
from __future__ import annotations

from acceptloop import _protocol as P
from acceptloop.suite.catalog import scenario
from acceptloop.suite.scenario import MUST, Context
from acceptloop.suite.scenarios.probes import served


def _zero_byte(service: str):
    def run(ctx: Context) -> None:
        c = ctx.connect()
        ctx.check(not c.refused, "the connection is accepted", "connected", c.transcript.end)
        c.close()
        served(ctx, service)
    return run


for _service in P.SERVICES:
    scenario(f"{_service}.zero_byte", "Connect, then close at once without sending: the next client is served.",
             MUST, "contract (docs/protocol.md)", "A client that resets, vanishes or sends garbage never stops the server.",
             service=_service, basis="rfc")(_zero_byte(_service))
