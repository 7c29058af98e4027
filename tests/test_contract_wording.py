"""Every port refuses a bad argument or epoch in the same words, and with the same exit code.

The contract's grammar for numbers, the bounds, a host's longest length and the daytime epoch's
range are written once (protocol.toml) and enforced by three parsers; this holds them to one
wording. Each case runs every port of the registry that follows the contract; the program's name
(from its usage line) is the only part allowed to differ.
"""
from __future__ import annotations

import os
import re
import subprocess

import pytest

from acceptloop import _protocol as P
from acceptloop.paths import ROOT
from acceptloop.suite import registry

PORTS = [i for i in registry.load() if i.role == "port" and i.ready == "line"]

ARGUMENTS = [
    ["--grace", "0x10"], ["--backlog", "1_000"], ["--port", "70000"], ["--max-conns", "2000000"],
    ["--grace", "+5"], ["--grace", " 5"], ["--port", "5\n"], ["--grace", "1e3"], ["--grace", "inf"],
    ["--grace", "nan"], ["--grace", "-1"], ["--port", "a'b"], ["--host", "h" * 1025],
    ["--grace", "3600.5"], ["--port", "99999999999999999999999"], ["--idle-timeout", "86400.5"],
    ["--workers", "0"], ["--workers", "257"], ["--workers", "2x"],
    ["--model", "iterative", "--workers", "2"],   # more than one worker needs a model that runs an event loop
]
EPOCHS = ["1e17", str(P.DAYTIME_EPOCH_MAX + 1), "-1", " 1", "1_000", "1\n", "12.5", "99999999999999999999999"]


def last_line(argv: list[str], epoch: str | None = None) -> tuple[int, str]:
    """(exit code, the last stderr line with the program's own name replaced by PROG)."""
    env = {k: v for k, v in os.environ.items() if k != P.DAYTIME_EPOCH_ENV}
    if epoch is not None:
        env[P.DAYTIME_EPOCH_ENV] = epoch
    out = subprocess.run(argv, capture_output=True, env=env, timeout=30, cwd=ROOT)
    lines = out.stderr.decode(errors="replace").strip().splitlines() or [""]
    usage = re.match(r"usage: (.+?) \[-h\]", lines[0])
    line = lines[-1]
    if usage and line.startswith(usage.group(1) + ": "):
        line = "PROG" + line[len(usage.group(1)):]
    return out.returncode, line


def each_port(extra: list[str], epoch: str | None = None) -> dict[str, tuple[int, str]]:
    return {impl.name: last_line(impl.argv("echo", "event", "127.0.0.1", 0) + extra, epoch) for impl in PORTS}


@pytest.mark.parametrize("args", ARGUMENTS, ids=lambda a: repr(a)[:40])
def test_every_port_refuses_a_bad_argument_in_the_same_words(args):
    seen = each_port(args)
    assert len(set(seen.values())) == 1, seen
    code, line = next(iter(seen.values()))
    assert code == P.EXIT_USAGE and line.startswith("PROG: argument --"), seen


@pytest.mark.parametrize("epoch", EPOCHS, ids=repr)
def test_every_port_refuses_a_bad_daytime_epoch_in_the_same_words(epoch):
    seen = each_port(["--host", "a..b"], epoch)   # a good epoch would reach resolve and exit 1
    assert len(set(seen.values())) == 1, seen
    code, line = next(iter(seen.values()))
    assert code == P.EXIT_USAGE and line.startswith(f"PROG: {P.DAYTIME_EPOCH_ENV}: "), seen


def test_a_host_getaddrinfo_refuses_is_the_same_resolve_line_everywhere():
    seen = each_port(["--host", "a..b", "--port", "7"])
    assert set(seen.values()) == {(P.EXIT_FAILURE, "resolve a..b:7: Name or service not known (EAI_NONAME)")}, seen


def test_the_ports_under_test_are_all_there():
    # The wording is only held equal if there is more than one port to compare.
    assert len(PORTS) >= 3, [i.name for i in PORTS]



@pytest.mark.parametrize("model", ["fork", "threads"])
def test_every_port_refuses_udp_in_a_model_that_accepts_in_the_same_words(model):
    # Only the ports offering the model: the others refuse the model itself first.
    seen = {impl.name: last_line(impl.argv("echo", "event", "127.0.0.1", 0) + ["--transport", "udp", "--model", model])
            for impl in PORTS if model in impl.models}
    assert len(seen) >= 2, seen
    assert set(seen.values()) == {(P.EXIT_USAGE, f"PROG: {P.DATAGRAM_WRONG_MODEL}")}, seen


@pytest.mark.parametrize("args, words", [
    (["--transport", "udp", "--model", "iterative", "--service", "message"], P.DATAGRAM_NO_DATAGRAM_FORM),
    (["--transport", "tcpx"], "argument --transport: invalid choice: 'tcpx' (choose from 'tcp', 'udp')"),
], ids=["udp-message", "bad-transport"])
def test_every_port_refuses_a_transport_it_cannot_serve_in_the_same_words(args, words):
    # The registry's command puts --model event first; the later --model wins, as argparse has it.
    seen = each_port(args)
    assert set(seen.values()) == {(P.EXIT_USAGE, f"PROG: {words}")}, seen


def test_every_port_that_takes_workers_refuses_more_than_one_over_udp_in_the_same_words():
    # Before the refusal, a second worker's datagram socket failed at bind (EADDRINUSE, exit 1).
    seen = {impl.name: last_line(impl.argv("echo", "event", "127.0.0.1", 0) + ["--transport", "udp", "--workers", "2"])
            for impl in PORTS if "workers" in impl.options and "udp" in impl.transports}
    assert len(seen) >= 3, seen
    assert set(seen.values()) == {(P.EXIT_USAGE, f"PROG: {P.WORKERS_UDP_REFUSAL}")}, seen


def test_a_server_config_is_set_once_and_replace_changes_only_what_it_names():
    from acceptloop.contract import parse_args
    config = parse_args(["--port", "7007", "--grace", "2"], prog="test", models=("event",))
    other = config.replace(port=0, workers=2)
    assert (other.port, other.workers, other.grace, other.model) == (0, 2, 2.0, "event")
    assert (config.port, config.workers) == (7007, 1)
    assert other != config and config.replace() == config and hash(config.replace()) == hash(config)
    with pytest.raises(AttributeError, match=r"replace\(port=\.\.\.\)"):
        config.port = 1
    assert config.port == 7007
