"""The scenarios' datagram client (--transport udp): every step has a timeout, and every socket
keeps a transcript.

A datagram transcript has the TCP transcript's shape (suite/client.py: `sent` and `received`
counted and hashed over every datagram, so the report and the JSON show it alike), and lists the
datagrams themselves: direction, size, SHA-256, the peer they came from or went to, when. The
first KEEP of each direction are listed; the counts cover them all. Its notes say it in words
(the report shows notes), e.g. `→ 1472 B 3f2a…` and `← 1472 B 3f2a… from 127.0.0.1:40000`.

The socket is not connected: each answer's source address is read with recvfrom and compared with
the address the request went to, so a server answering from another address (a wildcard socket
with the wrong source) is seen, not filtered out by the kernel.
"""
from __future__ import annotations

import hashlib
import select
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from acceptloop.suite.client import STEP_TIMEOUT, StepTimeout, Stream

KEEP = 24            # datagrams of each direction listed one by one in a transcript
NOTES = 12           # of those, how many are also written out as notes
RECV_SIZE = 65536 + 1   # more than any datagram: a longer one is reported, never cut silently


def _peer(address: tuple) -> str:
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass
class DatagramTranscript:
    label: str
    address: tuple[str, int]
    sent: Stream = field(default_factory=lambda: Stream(keep=False))
    received: Stream = field(default_factory=lambda: Stream(keep=False))
    datagrams: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: {"sent": 0, "received": 0})
    end: str = "udp"                   # a datagram socket has no end: closed by the client
    first_byte_s: float | None = None
    duration_s: float = 0.0
    notes: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def record(self, direction: str, data: bytes, peer: tuple) -> None:
        self.counts[direction] += 1
        (self.sent if direction == "sent" else self.received).add(data)
        if sum(1 for d in self.datagrams if d["direction"] == direction) >= KEEP:
            return
        digest = hashlib.sha256(data).hexdigest()
        at = time.monotonic() - self.started
        self.datagrams.append({"direction": direction, "bytes": len(data), "sha256": digest,
                               "peer": _peer(peer), "at_s": round(at, 6), "head": data[:16].hex()})
        if sum(1 for n in self.notes if n[0] in "→←") < NOTES:
            arrow = "→" if direction == "sent" else "←"
            where = "to" if direction == "sent" else "from"
            self.notes.append(f"{arrow} {len(data)} B {digest[:8]}… {where} {_peer(peer)} at {at:.3f} s")

    def to_dict(self) -> dict[str, Any]:
        notes = [f"datagrams: {self.counts['sent']} sent, {self.counts['received']} received"] + self.notes
        return {
            "label": self.label, "address": list(self.address), "transport": "udp",
            "sent": self.sent.summary(), "received": self.received.summary(),
            "end": self.end, "closed_first": "client", "connect_s": 0.0,
            "first_byte_s": None if self.first_byte_s is None else round(self.first_byte_s, 6),
            "duration_s": round(self.duration_s, 6), "notes": notes,
            "datagrams": list(self.datagrams), "datagram_counts": dict(self.counts),
        }


class DatagramClient:
    """One UDP socket talking to one server address; `transcript` records every datagram."""

    def __init__(self, address: tuple[str, int], label: str = "udp client", timeout: float = STEP_TIMEOUT,
                 rcvbuf: int | None = None) -> None:
        self.address = address
        self.timeout = timeout
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.sock: socket.socket | None = socket.socket(family, socket.SOCK_DGRAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        self.sock.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0))
        self.sock.setblocking(False)
        self.transcript = DatagramTranscript(label=label, address=address)
        self.errors: list[str] = []     # errors a recv reported (ECONNREFUSED after an unanswered send)

    @property
    def local(self) -> tuple:
        assert self.sock is not None
        return self.sock.getsockname()

    def send(self, data: bytes) -> None:
        """One datagram to the server (retried while the socket buffer is full, within the timeout)."""
        assert self.sock is not None, "closed"
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                self.sock.sendto(data, self.address)
                break
            except (BlockingIOError, InterruptedError):
                if time.monotonic() > deadline:
                    raise StepTimeout(f"{self.transcript.label}: the socket took no datagram in {self.timeout:g} s")
                select.select([], [self.sock], [], 0.05)
            except ConnectionRefusedError:
                self.errors.append("ECONNREFUSED on send")   # an ICMP for an earlier datagram
        self.transcript.record("sent", data, self.address)

    def recv(self, timeout: float | None = None) -> tuple[bytes, tuple] | None:
        """The next datagram and where it came from, or None when none came within `timeout`."""
        assert self.sock is not None, "closed"
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            try:
                data, peer = self.sock.recvfrom(RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                select.select([self.sock], [], [], left)
                continue
            except ConnectionRefusedError:
                # No listener at the address (the ICMP for something sent): recorded, and waited on.
                self.errors.append("ECONNREFUSED")
                if time.monotonic() >= deadline:
                    return None
                select.select([self.sock], [], [], min(0.05, max(0.0, deadline - time.monotonic())))
                continue
            if self.transcript.first_byte_s is None:
                self.transcript.first_byte_s = time.monotonic() - self.transcript.started
            self.transcript.record("received", data, peer)
            return data, peer

    def exchange(self, data: bytes, timeout: float | None = None) -> bytes:
        """Send one datagram and return the answer; StepTimeout when none comes."""
        self.send(data)
        got = self.recv(timeout)
        if got is None:
            raise StepTimeout(f"{self.transcript.label}: no answer to a {len(data)}-byte datagram within "
                              f"{self.timeout if timeout is None else timeout:g} s")
        return got[0]

    def quiet(self, seconds: float) -> list[bytes]:
        """Every datagram that arrives within `seconds` (a check that nothing is sent)."""
        out = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            got = self.recv(left)
            if got is None:
                break
            out.append(got[0])
        return out

    def close(self) -> None:
        if self.sock is not None:
            self.transcript.duration_s = time.monotonic() - self.transcript.started
            self.sock.close()
            self.sock = None

    def __enter__(self) -> "DatagramClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
