"""The C load generator (loadgen/) through `acceptloop.bench.loadgen.run_load`.

Each mode runs for a fraction of a second against the C server of the registry
and must measure load without errors, with counts that agree with each other.
These tests check that the generator counts correctly; how fast anything is
belongs in the benchmark's report, never in an assert here.
"""
from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from acceptloop import _protocol as P
from acceptloop.bench.loadgen import LOAD_ERRORS, LOAD_IOS, LOAD_MODES, run_load
from acceptloop.suite import registry
from acceptloop.suite.process import ServerProcess, free_port

CHUNK = P.READ_SIZE  # ingest's writes and egress's reads (loadgen/lg.h)
WARMUP, DURATION = 0.1, 0.3
SERVICE = {"echo": "echo", "connect": "daytime", "ingest": "discard", "egress": "chargen", "idle": "echo",
           "datagram": "echo over UDP (udp_echo below)"}


@pytest.fixture(scope="module")
def servers():
    """One C event-model server per service, started on first use."""
    c = {i.name: i for i in registry.load()}["c"]
    running: dict[str, ServerProcess] = {}

    def address(service: str) -> tuple[str, int]:
        if service not in running:
            running[service] = ServerProcess(c, service, "event").start()
        return running[service].address

    yield address
    for server in running.values():
        server.close()


def run(servers, mode: str, connections: int, **options) -> dict:
    host, port = servers(SERVICE[mode])
    return run_load(host, port, mode, connections, warmup=WARMUP, duration=DURATION, **options)


def assert_a_sound_window(r: dict, connections: int) -> None:
    assert r["errors"] == {kind: 0 for kind in LOAD_ERRORS}, r
    assert r["other_errno"] == ""
    assert r["connections"] == connections
    # The window closes at the first look past its end: never early, late only by a loop turn.
    assert DURATION <= r["elapsed_s"] < DURATION + 1.0
    assert 0 <= r["client_cpu_s"] <= r["elapsed_s"] * 1.1 + 0.02
    assert math.isclose(r["client_cpu_pct"], r["client_cpu_s"] / r["elapsed_s"] * 100)
    assert math.isclose(r["ops_per_s"], r["ops"] / r["elapsed_s"])


def assert_latency_in_order(r: dict) -> None:
    lat = r["latency_us"]
    assert r["latency_samples"] == r["ops"]
    assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p999"] <= lat["max"]
    assert lat["min"] <= lat["mean"] <= lat["max"]


@pytest.mark.parametrize("size", [64, 16384, 262144])
def test_echo_round_trips_are_counted_and_checked(servers, size):
    connections = 4
    r = run(servers, "echo", connections, message_size=size)
    assert_a_sound_window(r, connections)
    assert r["ops"] > 0
    assert_latency_in_order(r)
    # A message straddling an edge of the window counts its bytes only in part.
    for key in ("bytes_sent", "bytes_received"):
        assert abs(r[key] - r["ops"] * size) <= connections * size, (key, r)
    assert math.isclose(r["mb_per_s"], r["bytes_received"] / r["elapsed_s"] / 1e6)


def uring_or_skip(servers) -> None:
    """Skips where this kernel or build has no io_uring (the mode then fails to start, step io_uring)."""
    host, port = servers("echo")
    try:
        run_load(host, port, "echo", 1, warmup=0, duration=0.05, io="uring")
    except OSError as e:
        if getattr(e, "step", None) == "io_uring":
            pytest.skip(f"no io_uring here: {e}")
        raise


@pytest.mark.parametrize("size", [64, 16384, 262144])
def test_the_uring_mode_counts_and_checks_echo_alike(servers, size):
    uring_or_skip(servers)
    connections = 8
    r = run(servers, "echo", connections, message_size=size, io="uring")
    assert r["io"] == "uring"
    assert_a_sound_window(r, connections)
    assert r["ops"] > 0
    assert_latency_in_order(r)
    for key in ("bytes_sent", "bytes_received"):
        assert abs(r[key] - r["ops"] * size) <= connections * size, (key, r)


def test_the_uring_mode_ends_cleanly_so_the_server_keeps_serving(servers):
    """Its receives are cancelled before the closing: the server sees each client's FIN, not a
    reset, and the next run (epoll) finds it as it was."""
    uring_or_skip(servers)
    for _ in range(3):
        r = run(servers, "echo", 16, io="uring")
        assert r["errors"] == {kind: 0 for kind in LOAD_ERRORS}, r
    r = run(servers, "echo", 16)
    assert r["io"] == "epoll" and r["ops"] > 0 and r["errors"] == {kind: 0 for kind in LOAD_ERRORS}


def test_the_uring_mode_drives_echo_datagram_and_connect_only(servers):
    host, port = servers("discard")
    with pytest.raises(ValueError, match="io: uring drives echo, datagram and connect only"):
        run_load(host, port, "ingest", 1, duration=0.1, io="uring")


def test_the_uring_mode_counts_whole_daytime_connections(servers):
    uring_or_skip(servers)
    r = run(servers, "connect", 4, io="uring")
    assert r["io"] == "uring"
    assert_a_sound_window(r, 4)
    assert r["ops"] > 0 and r["bytes_sent"] == 0
    assert_latency_in_order(r)
    assert 20 * (r["ops"] - 4) <= r["bytes_received"] <= 64 * (r["ops"] + 4)


@pytest.mark.parametrize("mode", ["echo", "connect"])
def test_the_uring_mode_leaves_no_descriptor_behind(servers, mode):
    uring_or_skip(servers)
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(3):
        r = run(servers, mode, 32, io="uring")
        assert r["ops"] > 0 and not any(r["errors"].values()), r
    assert len(os.listdir("/proc/self/fd")) == before


@pytest.mark.parametrize("io", LOAD_IOS)
def test_a_connect_that_gets_no_line_is_a_timeout_and_the_slot_goes_on(servers, io):
    """Connect mode against an echo server: connected, but no line and no FIN ever come."""
    if io == "uring":
        uring_or_skip(servers)
    before = len(os.listdir("/proc/self/fd"))
    host, port = servers("echo")
    r = run_load(host, port, "connect", 2, warmup=0, duration=1.0, connect_timeout=0.3, io=io)
    # Each slot times out every 0.3 s (and rests 10 ms): 2 slots, about 3 times each in 1 s.
    assert 4 <= r["errors"]["timeout"] <= 8, r
    assert r["ops"] == 0 and sum(r["errors"].values()) == r["errors"]["timeout"]
    assert len(os.listdir("/proc/self/fd")) == before


def test_the_uring_mode_counts_refused_connects_and_rests_the_slot():
    started = time.monotonic()
    try:
        r = run_load("127.0.0.1", free_port(), "connect", 2, warmup=0, duration=0.3, io="uring")
    except OSError as e:
        if getattr(e, "step", None) == "io_uring":
            pytest.skip(f"no io_uring here: {e}")
        raise
    # A refused slot rests 10 ms before it tries again: some tens of refusals, not thousands.
    assert 10 <= r["errors"]["refused"] <= 2 * (0.3 / 0.01 + 5), r
    assert r["ops"] == 0 and sum(r["errors"].values()) == r["errors"]["refused"]
    assert time.monotonic() - started < 3


def test_connect_counts_whole_daytime_connections(servers):
    r = run(servers, "connect", 4)
    assert_a_sound_window(r, 4)
    assert r["ops"] > 0 and r["bytes_sent"] == 0
    assert_latency_in_order(r)
    # One daytime line per connection ("Sunday, November 22, 2026 03:25:00-UTC\r\n"),
    # give or take the lines of connections at the window's edges.
    assert 20 * (r["ops"] - 4) <= r["bytes_received"] <= 64 * (r["ops"] + 4)


def test_ingest_writes_chunks(servers):
    r = run(servers, "ingest", 2)
    assert_a_sound_window(r, 2)
    assert r["ops"] > 0 and r["bytes_received"] == 0
    assert r["ops"] <= r["bytes_sent"] <= r["ops"] * CHUNK
    assert math.isclose(r["mb_per_s"], r["bytes_sent"] / r["elapsed_s"] / 1e6)
    assert r["latency_samples"] == 0


def test_egress_reads_chunks(servers):
    r = run(servers, "egress", 2)
    assert_a_sound_window(r, 2)
    assert r["ops"] > 0 and r["bytes_sent"] == 0
    assert r["ops"] <= r["bytes_received"] <= r["ops"] * CHUNK
    assert math.isclose(r["mb_per_s"], r["bytes_received"] / r["elapsed_s"] / 1e6)


def test_idle_holds_every_connection_open(servers):
    r = run(servers, "idle", 50)
    assert_a_sound_window(r, 50)
    assert r["ops"] == 0 and r["bytes_sent"] == 0 and r["bytes_received"] == 0


# The CPU's counters, as perf_event_open offers them: a virtual machine may have none.
COUNTERS = os.path.exists("/sys/bus/event_source/devices/cpu/events/instructions") and os.geteuid() == 0


def test_a_watched_server_is_measured_over_the_window():
    c = {i.name: i for i in registry.load()}["c"]
    with ServerProcess(c, "echo", "fork").start() as server:   # fork: the work is in its children
        host, port = server.address
        r = run_load(host, port, "echo", 4, message_size=64, warmup=WARMUP, duration=DURATION, watch_pid=server.pid)
    assert_a_sound_window(r, 4)
    assert 0 < r["server_cpu_s"] <= r["elapsed_s"] * 2 + 0.05   # two CPUs at most
    assert r["server_rss_end"] > 0 and r["server_rss_start"] > 0
    user, kernel = r["server_instructions_user"], r["server_instructions_kernel"]
    if COUNTERS:
        # Counted in the children that serve the connections, each round trip a recv and a send:
        # the kernel's share is far the larger for a C server.
        assert user > 0 and kernel > 0
        assert kernel > user, r
    else:
        assert user is None and kernel is None


def test_without_a_watched_server_nothing_is_read_from_proc(servers):
    r = run(servers, "echo", 1)
    for key in ("server_cpu_s", "server_instructions_user", "server_instructions_kernel",
                "server_rss_start", "server_rss_end"):
        assert r[key] is None, key


@pytest.mark.parametrize("bad", [
    {"mode": "gopher"}, {"connections": 0}, {"connections": 2001}, {"connections": 1.5},
    {"message_size": 0}, {"warmup": -1}, {"duration": 0}, {"duration": float("nan")},
    {"connect_timeout": 0}, {"cpu": -2}, {"cpu": os.cpu_count()}, {"port": 0}, {"host": ""},
    {"connections": True}, {"io": "kqueue"},
], ids=lambda bad: "-".join(f"{k}={v!r}" for k, v in bad.items()))
def test_a_bad_argument_raises_value_error_before_any_load(bad):
    args = {"host": "127.0.0.1", "port": 7, "mode": "echo", "connections": 1, "duration": 0.1} | bad
    with pytest.raises(ValueError, match=next(iter(bad))):
        run_load(**args)


def test_a_port_nobody_listens_on_gives_refused_errors_and_returns_at_once():
    started = time.monotonic()
    r = run_load("127.0.0.1", free_port(), "echo", 3, warmup=0, duration=5)
    assert r["errors"]["refused"] == 3 and r["connections"] == 0 and r["ops"] == 0
    assert r["elapsed_s"] == 0   # the window closed as it opened: nothing was left to measure
    assert time.monotonic() - started < 4


def test_a_name_that_does_not_resolve_raises_gaierror():
    with pytest.raises(socket.gaierror) as caught:
        run_load("nonexistent.invalid", 7, "echo", 1, duration=0.1)
    assert caught.value.errno != 0 and caught.value.step == "resolve"
    assert "resolve nonexistent.invalid:7: " in str(caught.value)


def test_the_run_releases_the_gil_and_restores_the_thread_affinity(servers):
    host, port = servers("echo")
    before = os.sched_getaffinity(0)
    result: list[dict] = []
    worker = threading.Thread(target=lambda: result.append(
        run_load(host, port, "echo", 2, warmup=0, duration=0.5)))
    worker.start()
    turns = 0
    while worker.is_alive():   # only runs if the C call gave the GIL up
        turns += 1
        time.sleep(0.01)
    worker.join()
    assert turns >= 10 and result[0]["ops"] > 0
    r = run_load(host, port, "echo", 1, warmup=0, duration=0.1, cpu=min(before))
    assert r["ops"] > 0 and os.sched_getaffinity(0) == before


def test_modes_are_named_by_the_c_side():
    assert LOAD_MODES == ("echo", "connect", "ingest", "egress", "idle", "datagram")
    assert LOAD_IOS == ("epoll", "uring")
    assert set(SERVICE) == set(LOAD_MODES)


# -- datagram mode: UDP request/response, against a UDP echo of the test's own (the servers'
# UDP support is not the load generator's business) ------------------------------------------
UDP_ECHO = """
import socketserver, sys
class Echo(socketserver.BaseRequestHandler):
    n = 0
    def handle(self):
        data, sock = self.request
        Echo.n += 1
        if DROP and Echo.n % DROP == 0:
            return
        sock.sendto(data[:-1] + bytes([data[-1] ^ 1]) if CORRUPT and len(data) > 8 else data, self.client_address)
DROP, CORRUPT = int(sys.argv[1]), sys.argv[2] == "corrupt"
server = socketserver.UDPServer(("127.0.0.1", 0), Echo)
server.max_packet_size = 65536
print(server.server_address[1], flush=True)
server.serve_forever()
"""


@pytest.fixture
def udp_echo():
    """Starts `python -c UDP_ECHO DROP KIND` (DROP: answer no datagram of every DROP-th, 0: none;
    KIND "corrupt": flip the last byte); yields (port, pid) for each started."""
    started: list[subprocess.Popen] = []

    def start(drop: int = 0, kind: str = "echo") -> tuple[int, int]:
        proc = subprocess.Popen([sys.executable, "-c", UDP_ECHO, str(drop), kind], stdout=subprocess.PIPE, text=True)
        started.append(proc)
        return int(proc.stdout.readline()), proc.pid

    yield start
    for proc in started:
        proc.kill()
        proc.wait()


@pytest.fixture(params=LOAD_IOS)
def datagram_io(request, servers) -> str:
    """Each way the generator drives its sockets, both for datagrams (uring: where this machine has it)."""
    if request.param == "uring":
        uring_or_skip(servers)
    return request.param


@pytest.mark.parametrize("size", [1, 64, 1400, 65507])
def test_datagrams_are_counted_and_checked(udp_echo, size, datagram_io):
    port, pid = udp_echo()
    # Four 64 KiB datagrams at once overflow the server socket's default receive buffer (real
    # UDP loss, counted as timeouts): the largest size runs one socket.
    sockets = 1 if size > 16384 else 4
    r = run_load("127.0.0.1", port, "datagram", sockets, message_size=size, warmup=WARMUP, duration=DURATION,
                 watch_pid=pid, io=datagram_io)
    assert r["io"] == datagram_io
    assert_a_sound_window(r, sockets)
    assert r["ops"] > 0
    assert_latency_in_order(r)
    for key in ("bytes_sent", "bytes_received"):
        assert abs(r[key] - r["ops"] * size) <= sockets * size, (key, r)
    assert r["server_cpu_s"] > 0   # server CPU per datagram: server_cpu_s / ops


def test_a_lost_datagram_is_counted_and_the_socket_goes_on(udp_echo, datagram_io):
    port, _ = udp_echo(drop=5)
    r = run_load("127.0.0.1", port, "datagram", 2, message_size=64, warmup=0, duration=1.0, io=datagram_io)
    # Every fifth goes unanswered: each costs its socket 200 ms, so a few per second per socket.
    assert 1 <= r["errors"]["timeout"] <= 2 * (1.0 / 0.2 + 1), r
    assert r["ops"] >= 4 * r["errors"]["timeout"] - 4
    assert sum(r["errors"].values()) == r["errors"]["timeout"]


def test_a_changed_datagram_is_a_mismatch(udp_echo, datagram_io):
    port, _ = udp_echo(kind="corrupt")
    r = run_load("127.0.0.1", port, "datagram", 3, message_size=64, warmup=0, duration=0.2, io=datagram_io)
    assert r["errors"]["mismatch"] == 3 and r["ops"] == 0


def test_datagrams_to_a_port_nobody_listens_on_are_refused(datagram_io):
    r = run_load("127.0.0.1", free_port(), "datagram", 2, message_size=64, warmup=0, duration=0.3, io=datagram_io)
    assert r["errors"]["refused"] == 2 and r["ops"] == 0


def test_a_datagram_larger_than_udp_allows_is_a_bad_argument():
    with pytest.raises(ValueError, match="message_size"):
        run_load("127.0.0.1", 7, "datagram", 1, message_size=65508, duration=0.1)
