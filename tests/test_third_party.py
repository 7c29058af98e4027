"""Servers nobody here wrote, as fixtures of the suite: Debian's openbsd-inetd (its internal echo,
discard, chargen and daytime) and socat echo, registered from tests/fixtures/third-party.toml and
installed by `.ci/run` (or `make thirdparty`).

They print no READY line, so they follow the RFC's service only: a check on the kit's own choices
(docs/protocol.md) or on the contract is shown for them as INFO, never FAILED. The second half
reproduces, without them, each fault of the kit that they showed.
"""
from __future__ import annotations

import select
import socket
import threading
import time
from pathlib import Path

from acceptloop.suite import registry, runner
from acceptloop.suite.catalog import by_id
from acceptloop.suite.client import Client
from acceptloop.suite.process import ServerProcess
from acceptloop.suite.scenario import ERROR


# -- what these servers showed of the kit, reproduced without them ---------------------------------

def _closes_with_input_unread(line: bytes) -> tuple[socket.socket, int]:
    """A daytime server as inetd's is: it waits for the client's input, sends its line and closes
    with that input unread, so the kernel ends the connection with an RST after the line."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def serve() -> None:
        conn, _ = listener.accept()
        select.select([conn], [], [], 5.0)
        conn.sendall(line)
        conn.close()
    threading.Thread(target=serve, daemon=True).start()
    return listener, listener.getsockname()[1]


def test_a_send_that_meets_the_reset_does_not_lose_what_arrived_before_it():
    """inetd's daytime against robustness.fuzz_daytime: `daytime sent b''`, FAILED. The line had
    arrived; the client's next send met the RST and recorded the end, and no read was made."""
    line = b"Tue Dec  1 07:57:28 2026\r\n"
    listener, port = _closes_with_input_unread(line)
    with listener:
        c = Client(("127.0.0.1", port))
        c.send(b"x" * 100)
        time.sleep(0.2)              # the line and the RST are in
        c.send(b"y" * 100)           # ECONNRESET: recorded, not raised
        c.shutdown_write()
        c.recv_until_end()
        c.close()
    assert c.transcript.end == "RST"
    assert c.received == line


def test_a_server_given_a_host_that_does_not_resolve_gets_a_port_from_the_kit(tmp_path):
    """socat against lifecycle.resolve_failure: ERROR, `kit error: gaierror`. For a server that
    prints nothing the kit picks the port, and it tried to bind the scenario's unresolvable host."""
    entry = registry.parse_entry({"name": "silent", "command": "true {host} {port}", "models": ["event"],
                                  "services": ["echo"], "ready": "port"}, "test")
    proc = ServerProcess(entry, "echo", "event", host="nonexistent.invalid")
    argv = proc.argv
    assert argv[:2] == ["true", "nonexistent.invalid"] and 0 < int(argv[2]) < 65536
    proc.close()


def test_a_fixed_port_that_another_process_holds_is_error_not_that_process_graded():
    """inetd's services always listen on 7, 9, 19 and 13: a server that prints nothing is ready
    when its port accepts, so with another process on that port (a system inetd, a second run) the
    kit graded that other process. Now the cell is ERROR, naming the port."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        entry = registry.parse_entry({"name": "fixed", "command": ["sleep", "30"], "models": ["fork"],
                                      "services": ["echo"], "ready": "port", "port": port}, "test")
        result = runner.run([runner.Cell(entry, "fork", by_id()["echo.round_trip"])])[0]
    assert result.grade == ERROR, (result.grade, result.reason)
    assert f"127.0.0.1:{port} already accepts connections before the server starts" in result.reason


def test_a_server_that_has_exited_has_no_children_and_says_how_it_ended():
    """socat against robustness.process_limit: its parent exits when a fork is refused, and the
    kit's next look at its children raised FileNotFoundError (/proc/PID/task), which was graded as
    the server's failure; checks beside it said `observed: exited` as a literal, whatever the state."""
    entry = registry.parse_entry({"name": "brief", "command": ["sh", "-c", "exit 3"], "models": ["fork"],
                                  "services": ["echo"], "ready": "port", "port": 9}, "test")
    proc = ServerProcess(entry, "echo", "fork")
    proc.spawn()
    assert proc.wait_exit(5.0) == 3
    assert proc.children() == []
    assert proc.state() == "exited with 3"
    proc.close()


def test_a_child_that_outlives_its_server_is_ended_and_does_not_hang_the_kit():
    """socat against robustness.over_the_limit: socat's per-connection children outlive it (a
    connection whose client vanished), holding its stdout; closing that pipe while the kit's reader
    thread still blocked on it hung `acceptloop check` for good (ten minutes, until killed by hand)."""
    entry = registry.parse_entry({
        "name": "leaves-a-child", "models": ["event"], "services": ["echo"], "ready": "port",
        "command": ["sh", "-c", "sleep 60 & exec {python} -m acceptloop.server --service {service} "
                    "--model {model} --host {host} --port {port} >/dev/null"]}, "test")
    proc = ServerProcess(entry, "echo", "event").start()
    (child,) = [pid for pid, _ in proc.children()]
    closing = threading.Thread(target=proc.close, daemon=True)
    closing.start()
    closing.join(10.0)
    assert not closing.is_alive(), "close() hung on the child's copy of the server's stdout"
    assert not _runs(child), f"the server's child {child} still runs"


def _runs(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
