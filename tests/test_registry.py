"""The registry: one data file the CLI and the tests read; extra files join it without code changes."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from acceptloop.paths import ROOT
from acceptloop.suite import registry
from acceptloop.suite.catalog import by_id


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "extra.toml"
    path.write_text(text)
    return path


def test_the_base_registry_holds_the_ports_and_two_peers():
    impls = {i.name: i for i in registry.load()}
    assert {n for n, i in impls.items() if i.role == "port"} == {
        "python", "c", "c-cffi", "php", "c-pyhandler", "c-ctypes-handler", "php-ffi", "php-ffi-handler",
        "python-workers", "c-workers", "php-workers", "c-winsock"}
    assert {n for n, i in impls.items() if i.role == "peer"} == {"asyncio", "uvloop"}
    assert impls["uvloop"].requires == ("uvloop",)
    assert impls["php"].models == ("iterative", "fork", "event")
    assert impls["c"].models == impls["c-cffi"].models == ("iterative", "fork", "threads", "event", "uring")
    # Python handlers over the C loop: every model but fork (see the registry's comment) and uring.
    assert impls["c-pyhandler"].models == impls["c-ctypes-handler"].models == ("iterative", "threads", "event")
    assert impls["php-ffi"].models == impls["c"].models   # the C core's loop, every model it offers
    # Winsock under Wine: no fork; stopped by SIGINT (Wine ends a program at SIGTERM), its sockets
    # live in the wineserver, its threads are dear (docs/winsock.md).
    # Nor uring (Linux's io_uring), --workers (SO_REUSEPORT) or udp: its build leaves them out.
    winsock = impls["c-winsock"]
    assert winsock.models == ("iterative", "threads", "event") and winsock.transports == ("tcp",)
    assert "workers" not in winsock.options and winsock.worker_processes == 0
    assert winsock.stop_signal == "SIGINT" and winsock.stop_signal_why
    assert winsock.sockets_not_descriptors and winsock.thread_cost_why
    assert impls["c"].stop_signal == "SIGTERM" and not impls["c"].sockets_not_descriptors


def test_a_stop_signal_other_than_sigterm_says_why(tmp_path):
    entry = '''
[[implementation]]
name = "x"
command = "x --port {port}"
models = ["event"]
stop_signal = "%s"
'''
    with pytest.raises(registry.RegistryError, match="needs stop_signal_why"):
        registry.load([write(tmp_path, entry % "SIGINT")])
    with pytest.raises(registry.RegistryError, match="stop_signal must be one of"):
        registry.load([write(tmp_path, entry % "SIGHUP")])
    ok = write(tmp_path, entry % "SIGINT" + 'stop_signal_why = "its host ends it at SIGTERM"\n')
    impl = {i.name: i for i in registry.load([ok])}["x"]
    assert impl.stop_signal == "SIGINT" and impl.stop_signum == 2


def test_the_workers_entries_run_each_port_with_two_event_loops():
    impls = {i.name: i for i in registry.load()}
    for port in ("python", "c", "php"):
        entry = impls[f"{port}-workers"]
        assert entry.models == ("event",) and entry.bench is None
        assert entry.services == impls[port].services
        assert entry.options | {"workers"} == impls[port].options
        argv = entry.argv("echo", "event", "h", 1)
        assert argv[argv.index("--workers") + 1] == "2"
    # Processes in Python and PHP: the kit counts them as the server; C runs threads.
    assert [impls[f"{p}-workers"].worker_processes for p in ("python", "c", "php")] == [2, 0, 2]


def test_worker_processes_must_be_a_whole_number(tmp_path):
    path = write(tmp_path, '[[implementation]]\nname = "x"\ncommand = "x"\nmodels = ["event"]\n'
                           'services = ["echo"]\nworker_processes = -1\n')
    with pytest.raises(registry.RegistryError, match="worker_processes"):
        registry.load(extra=[path])


def test_command_placeholders_and_options_are_filled_in():
    impl = {i.name: i for i in registry.load()}["c"]
    argv = impl.argv("echo", "event", "::1", 7007, {"grace": "2", "ipv6-only": None})
    assert argv == [f"{ROOT}/build/acceptloop-c", "--service", "echo", "--model", "event", "--host", "::1",
                    "--port", "7007", "--grace", "2", "--ipv6-only"]
    assert {i.name: i for i in registry.load()}["python"].argv("echo", "fork", "h", 1)[0] == sys.executable


def test_an_extra_file_adds_and_replaces_entries(tmp_path):
    extra = write(tmp_path, '''
[[implementation]]
name = "socat-echo"
command = "socat TCP-LISTEN:{port},bind={host},reuseaddr,fork EXEC:cat"
models = ["fork"]
services = ["echo"]
ready = "port"

[[implementation]]
name = "php"
command = "{php} {root}/php/acceptloop.php --service {service} --model {model} --host {host} --port {port}"
models = ["event"]
''')
    impls = {i.name: i for i in registry.load([extra])}
    assert impls["socat-echo"].ready == "port" and impls["socat-echo"].options == frozenset()
    assert impls["php"].models == ("event",)
    assert list(impls)[:4] == ["python", "c", "c-cffi", "php"]


@pytest.mark.parametrize("body, message", [
    ('[[implementation]]\nmodels = ["event"]\ncommand = "x"\n', "has no name"),
    ('[[implementation]]\nname = "x"\nmodels = ["coroutines"]\ncommand = "x"\n', "unknown model 'coroutines'"),
    ('[[implementation]]\nname = "x"\nmodels = ["event"]\nservices = ["qotd"]\ncommand = "x"\n', "unknown service 'qotd'"),
    ('[[implementation]]\nname = "x"\nmodels = ["event"]\n', "exactly one of 'command' and 'address'"),
    ('[[implementation]]\nname = "x"\nmodels = ["event"]\ncommand = "x"\naddress = "h:1"\n', "exactly one"),
    ('[[implementation]]\nname = "x"\nmodels = ["event"]\ncommand = "x"\nready = "maybe"\n', "ready must be"),
    ('[[implementation]]\nname = "x"\nmodels = ["event"]\ncommand = "x"\noptions = ["turbo"]\n', "unknown option 'turbo'"),
    ('[[implementation]]\nname = "x"\nmodels = ["event"]\nservices = ["echo"]\naddress = "nowhere"\n', "host:port"),
    ('not toml at all [', "extra.toml"),
    ('title = "no entries"\n', "no [[implementation]] entries"),
])
def test_a_bad_entry_is_one_clear_line(tmp_path, body, message):
    with pytest.raises(registry.RegistryError) as info:
        registry.load([write(tmp_path, body)], base=None)
    text = str(info.value)
    assert message in text and "\n" not in text


def test_a_running_server_takes_only_the_shared_scenarios(tmp_path):
    extra = write(tmp_path, '''
[[implementation]]
name = "elsewhere"
address = "127.0.0.1:7"
models = ["event"]
services = ["echo"]
''')
    (impl,) = registry.load([extra], base=None)
    scenarios = by_id()
    assert not impl.launchable
    assert scenarios["echo.round_trip"].missing_reason(impl) is None
    assert "runs elsewhere" in scenarios["lifecycle.sigterm_busy"].missing_reason(impl)
    assert "does not offer the chargen service" in scenarios["chargen.pattern"].missing_reason(impl)


def test_a_missing_optional_module_makes_cells_missing(tmp_path):
    extra = write(tmp_path, '''
[[implementation]]
name = "needs-something"
role = "peer"
requires = ["no_such_module_anywhere"]
command = "true"
models = ["event"]
''')
    (impl,) = registry.load([extra], base=None)
    assert "no_such_module_anywhere is not installed" in by_id()["echo.round_trip"].missing_reason(impl)


def test_transports_default_to_tcp_and_a_udp_scenario_needs_udp(tmp_path):
    extra = write(tmp_path, '''
[[implementation]]
name = "stream-only"
command = "true {service} {model} {host} {port}"
models = ["iterative", "event"]

[[implementation]]
name = "both"
command = "true {service} {model} {host} {port}"
models = ["iterative", "fork", "event"]
transports = ["tcp", "udp"]

[[implementation]]
name = "silent"
ready = "port"
command = "true {service} {model} {host} {port}"
models = ["event"]
transports = ["tcp", "udp"]
''')
    stream, both, silent = registry.load([extra], base=None)
    assert stream.transports == ("tcp",) and both.transports == ("tcp", "udp")
    udp = by_id()["udp.echo_round_trip"]
    assert udp.transport == "udp" and not udp.shared
    assert udp.missing_reason(stream, "event") == "stream-only offers no udp"
    assert udp.missing_reason(both, "event") is None
    assert "fork model does not apply" in udp.missing_reason(both, "fork")
    assert "cannot be polled" in udp.missing_reason(silent, "event")
    assert by_id()["echo.round_trip"].missing_reason(both, "fork") is None


def test_an_unknown_transport_is_refused(tmp_path):
    extra = write(tmp_path, '''
[[implementation]]
name = "sctp"
command = "true"
models = ["event"]
transports = ["sctp"]
''')
    with pytest.raises(registry.RegistryError, match="unknown transport 'sctp'"):
        registry.load([extra], base=None)


def test_the_ports_that_offer_udp_are_the_ones_whose_servers_have_it():
    offered = {i.name for i in registry.load() if "udp" in i.transports}
    assert {"python", "c", "c-cffi"} <= offered
