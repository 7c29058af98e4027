"""The C core inside Python: CServer, through the cffi extension built by `pip install`."""
from __future__ import annotations

import errno
import signal
import socket
import subprocess
import sys
import time

import pytest

from acceptloop import _protocol as P
from acceptloop.cserver import CServer
from acceptloop.suite.client import Client, connection_refused

MODELS = P.MODELS


def echo_once(address: tuple[str, int], data: bytes = b"hello from the main thread\r\n") -> bytes:
    c = Client(address)
    c.send(data)
    c.shutdown_write()
    c.recv_until_end()
    c.close()
    return c.received


@pytest.mark.parametrize("model", MODELS)
def test_cserver_serves_while_python_runs_and_stops_within_100_ms(model):
    with CServer(service="echo", model=model, host="127.0.0.1", port=0) as server:
        assert server.addresses and server.addresses[0][0] == "127.0.0.1" and server.addresses[0][1] > 0
        server.start()
        # The client runs in this (the main) thread: it only gets its echo if the C loop
        # serves without holding the GIL.
        assert echo_once(server.addresses[0]) == b"hello from the main thread\r\n"
        server.request_stop()
        assert server.wait(0.1), "the loop ended within 100 ms of stop()"
        assert connection_refused(server.addresses[0])


def test_cserver_localhost_reports_every_address():
    with CServer(service="daytime", model="event", host="localhost", port=0) as server:
        expected = sorted({a[4][0] for a in socket.getaddrinfo("localhost", 0, type=socket.SOCK_STREAM,
                                                               flags=socket.AI_PASSIVE)})
        assert sorted(h for h, _ in server.addresses) == expected
        assert len({p for _, p in server.addresses}) == 1


def test_c_errors_arrive_as_oserror_with_errno_and_step():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError) as info:
            CServer(service="echo", model="event", host="127.0.0.1", port=port)
    assert info.value.errno == errno.EADDRINUSE and info.value.step == "bind"
    assert str(info.value).endswith(f"bind 127.0.0.1:{port}: Address already in use (EADDRINUSE)")
    with pytest.raises(socket.gaierror) as info:
        CServer(service="echo", model="event", host="nonexistent.invalid", port=0)
    assert info.value.step == "resolve"
    with pytest.raises(ValueError):
        CServer(service="qotd")


SCRIPT = """
import sys
from acceptloop.cserver import CServer
server = CServer(service="echo", model=sys.argv[1], host="127.0.0.1", port=0)
print("LISTENING", *server.addresses[0], flush=True)
try:
    server.serve_forever()
except KeyboardInterrupt:
    print("STOPPED", flush=True)
    server.close()
"""


@pytest.mark.parametrize("model", MODELS)
def test_sigint_reaches_a_cserver_blocked_in_c_within_100_ms(model):
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, model], stdout=subprocess.PIPE, text=True)
    try:
        host, port = proc.stdout.readline().split()[1:]
        assert echo_once((host, int(port)), b"x") == b"x"   # the loop is running, in C
        proc.send_signal(signal.SIGINT)
        sent = time.monotonic()
        line = proc.stdout.readline()              # returns when the script prints, or exits
        took = time.monotonic() - sent
        assert line.strip() == "STOPPED"
        assert took < 0.1, f"KeyboardInterrupt stopped the C loop after {took * 1000:.0f} ms"
        assert proc.wait(5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
