"""Python handlers over the C loop (the handler API): through cffi (acceptloop.pyhandler, via
CServer(handler=...)) and through ctypes (acceptloop.ctypes_handler, over build/libacceptloop.so).

tests/test_cserver_asan.py runs the cffi half of this file (`-k cffi`) over the core built
under AddressSanitizer and UBSan; the ctypes half loads the normal shared library.
"""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from acceptloop import _protocol as P
from acceptloop import handlers as H
from acceptloop.cserver import CServer, default_config
from acceptloop.paths import BUILD, ROOT
from acceptloop.suite.client import Client, connection_refused

MODELS = ("iterative", "threads", "event")
EPOCH = 1_700_000_000


def _cffi(service, model, handler, **options):
    return CServer(service=service, model=model, host="127.0.0.1", port=0, handler=handler, **options)


def _ctypes(service, model, handler, **options):
    assert (BUILD / "libacceptloop.so").exists(), "make lib builds build/libacceptloop.so (make test does)"
    from acceptloop.ctypes_handler import CtypesServer
    return CtypesServer(default_config(service=service, model=model, host="127.0.0.1", port=0, **options), handler)


BINDINGS = {"cffi": _cffi, "ctypes": _ctypes}
if os.environ.get("ACCEPTLOOP_CFFI_MODULE"):   # the sanitized run: the ctypes half loads no sanitized core
    BINDINGS.pop("ctypes")


def exchange(address, data: bytes, *, shutdown: bool = True) -> bytes:
    c = Client(address)
    if data:
        c.send(data)
    if shutdown:
        c.shutdown_write()
    c.recv_until_end()
    c.close()
    return c.received


def served(make, service, model, handler, data, **options) -> bytes:
    with make(service, model, handler, **options) as server:
        server.start()
        return exchange(server.addresses[0], data)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("binding", BINDINGS)
@pytest.mark.parametrize("service, data", [
    ("echo", bytes(range(256)) * 300),
    ("discard", b"x" * 100_000),
    ("daytime", b""),
    ("message", b"hi\\there\t\x00\xff\r\nand more"),
])
def test_a_handler_says_exactly_what_the_c_service_says(binding, model, service, data):
    handler = H.DaytimeHandler(EPOCH) if service == "daytime" else H.HANDLERS[service]()
    with CServer(service=service, model=model, host="127.0.0.1", port=0, daytime_epoch=EPOCH) as c:
        c.start()
        expected = exchange(c.addresses[0], data)
    assert served(BINDINGS[binding], service, model, handler, data) == expected


@pytest.mark.parametrize("binding", BINDINGS)
def test_chargen_as_a_handler_is_the_c_pattern_across_short_writes(binding):
    with CServer(service="chargen", model="event", host="127.0.0.1", port=0) as c:
        c.start()
        reader = Client(c.addresses[0])
        expected = reader.recv_exactly(500_000)
        reader.close()
    import socket
    with BINDINGS[binding]("chargen", "event", H.ChargenHandler()) as server:
        server.start()
        with socket.create_connection(server.addresses[0]) as s:
            got = b""
            while len(got) < 500_000:
                if len(got) % 7 == 0:
                    time.sleep(0.001)   # a slow reader now and then: short writes
                got += s.recv(65536)
    from acceptloop.server.services import CHARGEN_CHUNK
    assert got[:500_000] == (CHARGEN_CHUNK * 8)[:500_000] == expected


class Boom(H.EchoHandler):
    def on_data(self, conn, data):
        if data.startswith(b"boom"):
            raise ValueError("no booms here")
        super().on_data(conn, data)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("binding", BINDINGS)
def test_an_exception_in_a_handler_ends_that_connection_with_one_line_and_never_the_server(
        binding, model, capfd):
    with BINDINGS[binding]("echo", model, Boom()) as server:
        server.start()
        c = Client(server.addresses[0])
        c.send(b"boom")
        c.recv_until_end()   # the server closed this connection
        c.close()
        assert exchange(server.addresses[0], b"still here") == b"still here"
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if "no booms here" in line]
    assert len(lines) == 1 and lines[0].startswith("echo 127.0.0.1:"), err
    assert "handler raised ValueError: no booms here; closed" in lines[0]
    assert "Traceback" not in err


class Counting(H.EchoHandler):
    """Per-connection state and the open/close notifications, from any thread."""

    def __init__(self):
        self.opened = self.closed = 0
        self.lock = threading.Lock()

    def on_open(self, conn):
        conn.state = []
        with self.lock:
            self.opened += 1

    def on_data(self, conn, data):
        conn.state.append(len(data))
        conn.write(data)

    def on_close(self, conn):
        assert conn.write(b"late") is False   # the C connection is gone
        with self.lock:
            self.closed += 1


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("binding", BINDINGS)
def test_open_and_close_are_told_once_per_connection(binding, model):
    handler = Counting()
    with BINDINGS[binding]("echo", model, handler) as server:
        server.start()
        for i in range(20):
            assert exchange(server.addresses[0], b"%d" % i) == b"%d" % i
    assert handler.opened == handler.closed == 20


@pytest.mark.parametrize("binding", BINDINGS)
def test_a_stop_refuses_new_clients_within_100_ms_while_a_handler_is_in_use(binding):
    with BINDINGS[binding]("echo", "event", H.EchoHandler(), grace=0.0) as server:
        server.start()
        c = Client(server.addresses[0])
        c.send(b"held open")
        time.sleep(0.05)
        started = time.monotonic()
        server.request_stop()
        while not connection_refused(server.addresses[0]):
            assert time.monotonic() - started < 0.1, "still accepting 100 ms after the stop"
            time.sleep(0.005)
        # The open connection goes at the grace deadline, on the loop's next timer tick.
        assert server.wait(P.TIMER_TICK + 0.5)
        c.close()


@pytest.mark.parametrize("binding", BINDINGS)
def test_an_idle_server_with_a_handler_ends_within_100_ms_of_the_stop(binding):
    with BINDINGS[binding]("echo", "event", H.EchoHandler()) as server:
        server.start()
        assert exchange(server.addresses[0], b"one") == b"one"
        server.request_stop()
        assert server.wait(0.1), "the loop ended within 100 ms of the stop"


def test_cserver_refuses_fork_with_a_handler():
    with pytest.raises(ValueError, match="fork"):
        CServer(service="echo", model="fork", host="127.0.0.1", port=0, handler=H.EchoHandler())


@pytest.mark.parametrize("module", ["acceptloop.pyhandler", "acceptloop.ctypes_handler"])
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_the_front_end_stops_on_a_signal_within_100_ms(module, signum):
    if module.endswith("ctypes_handler") and "ctypes" not in BINDINGS:
        pytest.skip("the sanitized run loads no sanitized shared library")
    proc = subprocess.Popen([sys.executable, "-m", module, "--service", "echo", "--model", "event",
                             "--host", "127.0.0.1", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        lines = []
        while not lines or lines[-1] != "READY":
            lines.append(proc.stdout.readline().strip())
        host, port = lines[0].split()[1:]
        assert exchange((host, int(port)), b"ping") == b"ping"
        proc.send_signal(signum)
        started = time.monotonic()
        while not connection_refused((host, int(port))):
            assert time.monotonic() - started < 0.1, "still accepting 100 ms after the signal"
            time.sleep(0.005)
        assert proc.wait(5) == 0
    finally:
        proc.kill()
        proc.wait()


def test_the_ctypes_spelling_of_the_config_is_the_headers():
    """ctypes knows nothing of acceptloop.h: its AlConfig must list the same fields at the same
    offsets as the struct cffi compiled against the header (a field added to the header and not
    here would leave C reading past the end of what ctypes allocated)."""
    from acceptloop import ctypes_handler
    from acceptloop._cserver import ffi

    c_fields = dict(ffi.typeof("struct al_config").fields)
    spelled = [name for name, _ in ctypes_handler.AlConfig._fields_]
    assert spelled == list(c_fields)
    for name in spelled:
        assert getattr(ctypes_handler.AlConfig, name).offset == c_fields[name].offset, name
    assert ctypes.sizeof(ctypes_handler.AlConfig) == ffi.sizeof("struct al_config")
