"""What the scenarios compare against: the services' expected bytes, computed here from the
protocol definition (never by calling a server's code), and the 'is it still serving?' probe."""
from __future__ import annotations

import errno
import functools
import hashlib
import os
import random
import re
import select
import signal
import socket
import struct
import threading
import time
from datetime import datetime, timezone

from acceptloop import _protocol as P
from acceptloop.suite.client import Client, StepTimeout, connection_refused
from acceptloop.suite.confine import limit_descriptors
from acceptloop.suite.process import wait_until
from acceptloop.suite.scenario import AT_ONCE, BASIS_CONTRACT, BASIS_PROTOCOL, BASIS_RFC, MUST, Context, KitError

CHARGEN_RING = bytes(range(P.CHARGEN_FIRST_CHAR, P.CHARGEN_LAST_CHAR + 1))
CHARGEN_LINE = P.CHARGEN_LINE_LENGTH + len(P.CHARGEN_LINE_ENDING)


def chargen_lines(count: int, first: int = 0) -> bytes:
    """RFC 864's lines `first` .. `first + count - 1`: line i starts at character i of the ring."""
    out = bytearray()
    for i in range(first, first + count):
        k = i % len(CHARGEN_RING)
        out += (CHARGEN_RING[k:] + CHARGEN_RING[:k] * 2)[:P.CHARGEN_LINE_LENGTH] + P.CHARGEN_LINE_ENDING
    return bytes(out)


def _daytime_pattern() -> re.Pattern[bytes]:
    names = iter([P.DAYTIME_WEEKDAYS, P.DAYTIME_MONTHS])

    def field(m: re.Match[str]) -> str:
        spec = m.group(0)
        if spec == "%s":
            return "(" + "|".join(next(names)) + ")"
        return r"(\d{%s})" % spec[2]          # %02d, %04d

    body = re.sub(r"%s|%0\dd", field, re.escape(P.DAYTIME_FORMAT).replace(r"\%", "%"))
    return re.compile(("^" + body).encode() + re.escape(P.DAYTIME_LINE_ENDING) + b"$")


DAYTIME_LINE = _daytime_pattern()


def daytime_line(epoch: int) -> bytes:
    """The daytime line for `epoch`, computed with datetime rather than gmtime."""
    t = datetime.fromtimestamp(epoch, timezone.utc)
    text = P.DAYTIME_FORMAT % (P.DAYTIME_WEEKDAYS[t.isoweekday() % 7], P.DAYTIME_MONTHS[t.month - 1],
                               t.day, t.year, t.hour, t.minute, t.second)
    return text.encode("ascii") + P.DAYTIME_LINE_ENDING


def daytime_epoch(line: bytes) -> int | None:
    """The seconds since the epoch a daytime line stands for, or None if it is not one."""
    m = DAYTIME_LINE.match(line)
    if not m:
        return None
    _wd, month, day, year, hh, mm, ss = (g.decode() for g in m.groups())
    t = datetime(int(year), P.DAYTIME_MONTHS.index(month) + 1, int(day), int(hh), int(mm), int(ss),
                 tzinfo=timezone.utc)
    return int(t.timestamp())


def escaped(message: bytes) -> str:
    """docs/protocol.md's escaping of a logged message."""
    named = {0x5C: "\\\\", 0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t"}
    return "".join(named.get(b) or (chr(b) if 0x20 <= b < 0x7F else f"\\x{b:02x}") for b in message)


# A daytime line as RFC 867 asks for it, whatever its syntax: "just one line" of ASCII text.
ASCII_LINE = re.compile(rb"^[\x20-\x7e\t]+\r?\n$")


def served(ctx: Context, service: str, address: tuple[str, int] | None = None,
           what: str = "a new client is served afterwards", basis: str = BASIS_RFC) -> bool:
    """Check that a fresh client gets `service`'s answer from the server at `address`: on `basis`
    (the RFC's service, unless a scenario checks a contract promise such as a `::` listener), and
    then, for a server that answered, on the protocol's exact form (a FIN, the pattern, the format).
    Returns whether it was served in every respect."""
    wire, exact, observed = probe(ctx.connect(address, label="probe"), service)
    if not wire:
        return ctx.check(False, what, "served", observed, level=MUST, basis=basis)
    if not exact:
        return ctx.check(False, f"{what}, in the protocol's form", "the protocol's answer", observed,
                         level=MUST, basis=BASIS_PROTOCOL)
    return ctx.check(True, what, "served", "served", level=MUST, basis=BASIS_PROTOCOL if service == "message" else basis)


def probe(c: Client, service: str) -> tuple[bool, bool, str]:
    """What the fresh client `c` gets of `service`: (the RFC's answer, the protocol's exact answer,
    what it saw). The message service has no RFC: both are the protocol's reply."""
    try:
        if c.refused:
            return False, False, "connection refused"
        if service == "echo":
            c.send(b"probe\r\n")
            c.shutdown_write()
            c.recv_until_end()
            wire = c.received == b"probe\r\n"
            exact = wire and c.transcript.end == "FIN"
        elif service == "discard":
            c.send(b"probe\r\n")
            c.shutdown_write()
            c.recv_until_end()
            wire = c.received == b""
            exact = wire and c.transcript.end == "FIN"
        elif service == "chargen":
            got = c.recv_exactly(CHARGEN_LINE * 2)
            wire = len(got) == CHARGEN_LINE * 2   # RFC 864: "a stream of data"; its pattern is a choice
            exact = got == chargen_lines(2)
        elif service == "daytime":
            c.recv_until_end(timeout=AT_ONCE)   # RFC 867: sent once the connection is established
            wire = bool(ASCII_LINE.match(c.received))
            exact = bool(DAYTIME_LINE.match(c.received))
        else:
            # docs/protocol.md: the server MUST answer as soon as the LF ends the message.
            c.send(b"probe\n")
            c.recv_until_end(timeout=AT_ONCE)
            wire = exact = c.received == P.MESSAGE_REPLY
        c.close()
    except (StepTimeout, OSError) as e:
        c.close()
        return False, False, f"{type(e).__name__}: {e}"
    return wire, exact, "served" if exact else f"{c.received[:80]!r}, then {c.transcript.end}"


def echo_through_sigterm(ctx: Context, data: bytes, signal_after: int, pace: float = 0.0,
                         grace: float = 5.0) -> None:
    """SIGTERM a fresh echo server while `data` is being echoed, and grade what the contract asks:
    the transfer completes (then FIN), new connects are refused meanwhile, the exit status is 0.

    A first round trip makes sure the connection is being served, not still queued. SIGTERM goes
    out once `signal_after` bytes have been sent; `pace` seconds pass between 64 KiB chunks.
    """
    srv = ctx.start_server(options={"grace": f"{grace:g}"})
    marks: dict[str, float] = {}

    def watch() -> None:
        if wait_until(lambda: connection_refused(srv.address, 0.5), 4.0):
            marks["refused"] = time.monotonic() - marks["signal"]

    watcher = threading.Thread(target=watch, daemon=True)

    def chunks():
        for offset in range(0, len(data), 1 << 16):
            if offset == signal_after:
                marks["signal"] = time.monotonic()
                srv.signal(srv.graceful(signal.SIGTERM))
                watcher.start()
            if pace:
                select.select([], [], [], pace)
            if offset + (1 << 16) >= len(data):
                marks["last"] = time.monotonic()   # the last chunk goes now: the server cannot be done before
            yield data[offset:offset + (1 << 16)]

    c = ctx.connect(srv.address, keep=False)
    c.send(b"ping")
    c.recv_exactly(4)
    c.exchange(chunks(), timeout=30)
    finished = time.monotonic() - marks["signal"]
    code = srv.wait_exit(grace + 2)
    exited = time.monotonic() - marks["signal"]
    watcher.join(5.0)
    want = hashlib.sha256(b"ping" + data).hexdigest()
    # A graceful stop is the contract's promise, every part of it.
    ctx.check(c.transcript.received.sha256 == want and c.transcript.end == "FIN",
              "the transfer in progress completes, then FIN", f"{len(data) >> 20} MiB echoed, FIN",
              f"{c.transcript.received.count} bytes, {c.transcript.end}", basis=BASIS_CONTRACT)
    refused = marks.get("refused")
    ctx.check(refused is not None and refused <= AT_ONCE,
              f"new connects are refused within {AT_ONCE:g} s of SIGTERM (the listeners close at once)",
              f"refused within {AT_ONCE:g} s", "still accepted" if refused is None else f"refused after {refused:.3f} s",
              basis=BASIS_CONTRACT)
    if pace:
        # A paced transfer is still going well after the signal: the refusal must come before the
        # client sends its last chunk (no server can have finished before that), not with the exit.
        # Not before the client has read everything: on a busy machine that can come after the exit.
        last = marks["last"] - marks["signal"]
        ctx.check(refused is not None and refused < last,
                  "new connects are refused while the transfer is still going",
                  f"refused before the last chunk is sent, {last:.2f} s after SIGTERM",
                  "still accepted" if refused is None else f"refused after {refused:.3f} s", basis=BASIS_CONTRACT)
    ctx.check(code == P.EXIT_OK, "exit status 0 within the grace", 0, srv.still_running(grace + 2) if code is None else code,
              basis=BASIS_CONTRACT)
    if "refused" in marks:
        ctx.figure("new connects refused after SIGTERM", round(marks["refused"] * 1000, 1), "ms")
    ctx.figure("transfer finished after SIGTERM", round(finished, 3), "s")
    ctx.figure("exit after SIGTERM", round(exited, 3), "s", f"grace {grace:g} s")
    ctx.observe("received_sha256", c.transcript.received.sha256)
    ctx.observe("exit_code", code)
    ctx.observe("refused", "refused" in marks)


def end_within(ctx: Context, c: Client, bound: float, what: str, basis: str | None = None,
               wait: float = 2.5) -> float | None:
    """Read until the server's FIN or RST, and check that it came within `bound` seconds (a
    requirement's own "at once", not the step timeout). When it did not, go on reading for up to
    `wait` more seconds so the other checks see what the server did in the end. Returns the
    seconds it took, or None if it never came."""
    started = time.monotonic()
    try:
        c.recv_until_end(timeout=bound)
    except StepTimeout:
        c.transcript.end = "open"     # not the end: the server was only late
        try:
            c.recv_until_end(timeout=wait)
        except StepTimeout:
            pass
    took = time.monotonic() - started
    came = c.transcript.end in ("FIN", "RST")
    ctx.check(came and took <= bound, what, f"within {bound:g} s",
              f"{took:.2f} s" if came else f"nothing within {bound + wait:g} s", level=MUST, basis=basis)
    return took if came else None


def quiet_for(ctx: Context, c: Client, seconds: float, what: str, basis: str | None = None) -> bool:
    """Check that nothing (no byte, no FIN) arrives on `c` for `seconds`: the "not too early" side."""
    early = c.pending(timeout=seconds)
    return ctx.check(not early, what, f"nothing for {seconds:g} s",
                     "data or the end arrived" if early else "nothing", level=MUST, basis=basis)


PAYLOAD_BLOCK = 1 << 20


@functools.lru_cache(maxsize=8)
def payload(seed: int, size: int) -> bytes:
    """`size` pseudo-random bytes from `seed`, the same in every run, made once per process (each
    lane asks for the same ones): a first MiB of random bytes, and each further MiB that one passed
    through a random permutation of the byte values of its own, so that no two MiB are alike and a
    stream cut, shifted, repeated or reordered anywhere does not compare equal. (bytes.translate
    runs at memory speed: the 170 MiB a lane asks for took a second of CPU as randbytes.)"""
    rng = random.Random(seed)
    first = rng.randbytes(min(size, PAYLOAD_BLOCK))
    parts, made = [first], len(first)
    while made < size:
        part = first.translate(bytes(rng.sample(range(256), 256)))[:size - made]
        parts.append(part)
        made += len(part)
    return b"".join(parts)


def limit_accepting(srv, slots: int) -> tuple[dict[int, int], int]:
    """Give each process of `srv` that accepts `slots` descriptors more than it holds (once its
    count is steady: a worker just forked still holds the other workers' listeners a moment). Those
    are its worker processes where it has them (--workers: each accepts on its own listener, their
    supervisor nothing), else the server's own. Returns (the limits by pid, how many clients fill
    every one of them): the kernel spreads connections over workers by a hash, so several are given
    twice their slots between them."""
    srv.steady_tree_fd_count()
    limits = {pid: srv.fds_of(pid) + slots for pid in srv.accepting()}
    for pid, most in limits.items():
        limit_descriptors(pid, most)
    return limits, slots * len(limits) * (2 if len(limits) > 1 else 1)


TCP_STATES = {"01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1", "05": "FIN_WAIT2",
              "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT", "09": "LAST_ACK", "0A": "LISTEN", "0B": "CLOSING"}


# The kernel's sock_diag interface (linux/inet_diag.h): one request names one socket by its four-tuple
# and the kernel looks it up in its hash table, so a lookup costs the same however many sockets the
# machine holds. /proc/net/tcp, the fallback, prints every socket (tens of thousands in TIME_WAIT
# after a busy run: megabytes per read).
_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST = 1
_NLMSG_ERROR = 2
# struct inet_diag_msg: 4 bytes, the 48-byte sockid, then expires, rqueue, wqueue, uid and the inode.
_DIAG_INODE = 4 + 48 + 4 * 4
_NOCOOKIE = 0xFFFFFFFF


def _sockid(local: tuple, remote: tuple, family: int) -> bytes:
    """struct inet_diag_sockid of the socket whose own end is `local`: ports and addresses in network
    order, the interface any, no cookie."""
    def address(host: str) -> bytes:
        return socket.inet_pton(family, host).ljust(16, b"\0")
    return (struct.pack("!HH", local[1], remote[1]) + address(local[0]) + address(remote[0])
            + struct.pack("=III", 0, _NOCOOKIE, _NOCOOKIE))


def _diag_state(local: tuple, remote: tuple, family: int) -> str | None:
    """The state of the TCP socket whose own end is `local` and whose peer is `remote` (sock_diag),
    None when the kernel holds no such socket. OSError where sock_diag cannot answer."""
    found = _diag_socket(local, remote, family)
    return None if found is None else found[0]


def _diag_socket(local: tuple, remote: tuple, family: int) -> tuple[str, str] | None:
    """The state and the inode (as /proc/PID/fd names it) of the TCP socket whose own end is
    `local` and whose peer is `remote` (sock_diag), None when the kernel holds no such socket.
    OSError where sock_diag cannot answer."""
    request = struct.pack("=BBBBI", family, socket.IPPROTO_TCP, 0, 0, 0xFFFFFFFF) + _sockid(local, remote, family)
    header = struct.pack("=IHHII", 16 + len(request), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST, 1, 0)
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG) as nl:
        nl.settimeout(AT_ONCE)
        nl.send(header + request)
        reply = nl.recv(1 << 16)
    length, kind = struct.unpack_from("=IH", reply)
    if kind == _NLMSG_ERROR:
        error = -struct.unpack_from("=i", reply, 16)[0]
        if error == errno.ENOENT:
            return None
        raise OSError(error, f"sock_diag: {os.strerror(error)}")
    # struct inet_diag_msg: family, state, timer, retrans, then the sockid. A four-tuple the kernel
    # holds no connection for is answered with the listener on the local end: not that socket.
    state, (peer_port,) = reply[16 + 1], struct.unpack_from("!H", reply, 16 + 4 + 2)
    if peer_port != remote[1]:
        return None
    (inode,) = struct.unpack_from("=I", reply, 16 + _DIAG_INODE)
    return TCP_STATES.get(f"{state:02X}", f"{state:02X}"), str(inode)


def _proc_net_address(host: str, port: int) -> str:
    return "".join(f"{b:02X}" for b in reversed(socket.inet_aton(host))) + f":{port:04X}"


def _proc_net_tcp(path: str = "/proc/net/tcp") -> str:
    """/proc/net/tcp (or tcp6) in as few reads as it takes (each read is one pass of the kernel's
    table; many small reads can miss a socket that moved meanwhile)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        parts = []
        while chunk := os.read(fd, 1 << 20):
            parts.append(chunk)
    finally:
        os.close(fd)
    return b"".join(parts).decode("ascii", "replace")


_DIAG = [True]   # whether sock_diag answers here (else /proc/net/tcp)


def server_side(c: Client) -> str | None:
    """The kernel's state of the server's end of `c`'s connection: ESTABLISHED while the server
    holds it open, FIN_WAIT1 and on once it has closed it (even with output still queued that the
    client has not read: a client that never reads cannot see the FIN itself), None when the
    kernel holds no such socket (any more). OSError where neither sock_diag nor /proc/net/tcp is
    there."""
    if c.sock is None:   # a scenario asks this only of a client the server accepted (and the kit has not closed)
        raise KitError(f"{c.transcript.label}: the server side of a client with no connection ({c.transcript.end})")
    local, remote = c.sock.getsockname(), c.sock.getpeername()
    if _DIAG[0]:
        try:
            return _diag_state(remote, local, c.sock.family)
        except OSError:
            _DIAG[0] = False
    want = (_proc_net_address(remote[0], remote[1]), _proc_net_address(local[0], local[1]))
    for line in _proc_net_tcp().splitlines()[1:]:
        fields = line.split()
        if len(fields) > 3 and (fields[1], fields[2]) == want:
            return TCP_STATES.get(fields[3], fields[3])
    return None


def holder(c: Client, pids: list[int]) -> int | None:
    """Which of `pids` holds the server's end of `c`'s connection (a descriptor naming its socket),
    None when none does or the kernel cannot say (no sock_diag; a server whose sockets are not
    descriptors of its processes)."""
    if c.sock is None:
        raise KitError(f"{c.transcript.label}: the holder of a client with no connection ({c.transcript.end})")
    try:
        found = _diag_socket(c.sock.getpeername(), c.sock.getsockname(), c.sock.family)
    except OSError:
        return None
    if found is None:
        return None
    return next((pid for pid in pids if found[1] in (_socket_inodes(pid) or ())), None)


def _socket_inodes(pid: int) -> set[str] | None:
    """The inodes of the sockets `pid` holds (as /proc/net/tcp names them), None once it has gone."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None
    return {link[8:-1] for link in map(_fd_link(pid), fds) if link.startswith("socket:[")}


OPEN_STATES = ("ESTABLISHED", "CLOSE_WAIT", "SYN_RECV")


def _fd_link(pid: int):
    """What /proc/`pid`/fd/N names, "" for a descriptor the process has closed since it was listed
    (a process opens and closes files while it runs: one such descriptor says nothing of the rest)."""
    def link(fd: str) -> str:
        try:
            return os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            return ""
    return link


def awaiting_fin(pids: list[int]) -> list[int]:
    """Those of `pids` holding a TCP connection the peer's FIN has not reached yet (ESTABLISHED or
    SYN_RECV: not CLOSE_WAIT), from their descriptors and /proc/net/tcp and tcp6. A process that
    waits for its client's EOF cannot see one the kernel has not delivered."""
    inodes = {pid: held for pid in pids if (held := _socket_inodes(pid)) is not None}
    waiting: set[str] = set()
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            table = _proc_net_tcp(path)
        except OSError:
            continue
        for line in table.splitlines()[1:]:
            fields = line.split()
            if len(fields) > 9 and TCP_STATES.get(fields[3]) in ("ESTABLISHED", "SYN_RECV"):
                waiting.add(fields[9])
    return [pid for pid, held in inodes.items() if held & waiting]


def server_closed(c: Client) -> bool:
    """Whether the server has closed its end of `c`: a closing state, or no such socket in two looks
    running (one pass over a changing table may miss a socket)."""
    state = server_side(c)
    if state is None:
        state = server_side(c)
    return state not in OPEN_STATES
