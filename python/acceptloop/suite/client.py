"""The scenarios' client: every step has a timeout, and every connection keeps a transcript.

A transcript records what an observer of the wire would: bytes sent and
received (counts, SHA-256, the first and last bytes), how the connection ended
(FIN, RST, timeout, refused) and who closed first, with durations.
"""
from __future__ import annotations

import errno
import hashlib
import selectors
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Any, Iterable

STEP_TIMEOUT = 10.0
# The small-segments mode (Client(small_segments=True)): TCP_MAXSEG and small socket buffers set on
# the client's socket before connect, so that on loopback the server sees what a real network gives
# it: a message in several segments, partial reads, and short writes into a small window.
SMALL_SEGMENT = 88
SMALL_BUFFER = 4096
EDGE = 64   # bytes of each stream's head and tail kept in a transcript
AROUND = 8  # bytes on each side of a first difference kept as its evidence
RECV_MAX = 1 << 20   # the most one read of a client takes


class StepTimeout(Exception):
    """A client step did not complete in time."""


@dataclass
class Stream:
    """One direction of a connection: counted and hashed as it goes, with its head and tail kept."""

    count: int = 0
    head: bytes = b""
    tail: bytes = b""
    keep: bool = True           # keep every byte (small streams) as well as the hash
    data: bytearray = field(default_factory=bytearray)
    _sha: Any = field(default_factory=hashlib.sha256)
    # expect(): what should arrive, compared as it goes, and where it first differed.
    _expected: memoryview | None = None
    difference: int | None = None           # the offset of the first byte that differs
    _observed_around: bytearray = field(default_factory=bytearray)

    _period: int = 0                        # expect(..., repeating=True): the cycle's length

    def expect(self, expected: bytes, repeating: bool = False) -> None:
        """Compare what arrives from now on against `expected` (from the stream's start), keeping
        the first difference and the bytes around it as evidence: see mismatch(). `repeating`:
        `expected` is one cycle of an endless stream (chargen's pattern), so any length is whole."""
        self._period = len(expected) if repeating else 0
        if repeating:   # a few cycles more than a read takes, so that a chunk's part is one slice
            expected = bytes(expected) * (RECV_MAX // len(expected) + 2)
        self._expected = memoryview(bytes(expected))

    def _want(self, start: int, size: int) -> bytes:
        """The expected bytes at stream offsets start .. start + size."""
        if not self._period:
            return bytes(self._expected[start:start + size])
        out = bytearray()
        while len(out) < size:
            at = (start + len(out)) % self._period
            out += self._expected[at:at + size - len(out)]
        return bytes(out)

    def add(self, chunk: bytes | memoryview) -> None:
        chunk = bytes(chunk)
        if not chunk:
            return
        self._sha.update(chunk)
        if self._expected is not None:
            self._compare(chunk)
        if len(self.head) < EDGE:
            self.head += chunk[:EDGE - len(self.head)]
        self.tail = (self.tail + chunk)[-EDGE:]
        self.count += len(chunk)
        if self.keep:
            self.data += chunk

    def _compare(self, chunk: bytes) -> None:
        assert self._expected is not None
        if self.difference is None:
            want = self._want(self.count, len(chunk))
            if chunk == want:
                return   # the common case, compared at C speed
            at = next((i for i, (a, b) in enumerate(zip(chunk, want)) if a != b), None)
            if at is None and len(chunk) > len(want):
                at = len(want)   # more than expected arrived
            if at is None:
                return
            self.difference = self.count + at
            before = (self.tail + chunk[:at])[-AROUND:]
            self._observed_around = bytearray(before + chunk[at:at + AROUND + 1])
        elif len(self._observed_around) < 2 * AROUND + 1:
            self._observed_around += chunk[:2 * AROUND + 1 - len(self._observed_around)]

    def mismatch(self) -> tuple[str, str] | None:
        """None when everything expected arrived and nothing else; else (expected, observed) as
        hex around the first difference, `@offset: 41 42 [43] 44`, or where the stream fell short."""
        if self._expected is None:
            return None
        if self.difference is None:
            if self._period or self.count == len(self._expected):
                return None
            return (f"{len(self._expected)} bytes", f"{self.count} bytes: the stream ends at offset {self.count}")
        at = self.difference
        start = max(0, at - AROUND)
        want = self._want(start, at + AROUND + 1 - start)
        return (f"@{at}: {_hex_marked(want, at - start)}", f"@{at}: {_hex_marked(bytes(self._observed_around), at - start)}")

    @property
    def sha256(self) -> str:
        return self._sha.hexdigest()

    def summary(self) -> dict[str, Any]:
        out = {"bytes": self.count, "sha256": self.sha256, "head": self.head.hex(), "tail": self.tail.hex()}
        if self.difference is not None:
            out["first_difference"] = self.difference
        return out


def _hex_marked(data: bytes, mark: int) -> str:
    """`41 42 [43] 44`: hex bytes, the one at `mark` in brackets (`[--]` past the end)."""
    words = [f"{b:02x}" for b in data]
    if mark < len(words):
        words[mark] = f"[{words[mark]}]"
    else:
        words.append("[--]")
    return " ".join(words)


@dataclass
class Transcript:
    label: str
    address: tuple[str, int]
    sent: Stream = field(default_factory=Stream)
    received: Stream = field(default_factory=Stream)
    end: str = "open"                 # FIN, RST, timeout, refused, open (the client closed first)
    closed_first: str | None = None   # "client" or "server"
    connect_s: float = 0.0
    first_byte_s: float | None = None
    duration_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label, "address": list(self.address),
            "sent": self.sent.summary(), "received": self.received.summary(),
            "end": self.end, "closed_first": self.closed_first, "connect_s": round(self.connect_s, 6),
            "first_byte_s": None if self.first_byte_s is None else round(self.first_byte_s, 6),
            "duration_s": round(self.duration_s, 6), "notes": list(self.notes),
        }


class Client:
    """One TCP client connection with a transcript. Methods raise StepTimeout past their timeout."""

    def __init__(self, address: tuple[str, int], label: str = "client", timeout: float = STEP_TIMEOUT,
                 keep: bool = True, small_segments: bool = False) -> None:
        self.transcript = Transcript(label=label, address=address)
        self.transcript.received.keep = keep
        self.transcript.sent.keep = False
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self._t0 = time.monotonic()
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        if small_segments:
            # Before connect: the MSS is agreed in the handshake (both directions use it), and the
            # window the client offers follows its receive buffer.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, SMALL_SEGMENT)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUFFER)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUFFER)
            self.transcript.notes.append(f"small segments: TCP_MAXSEG {SMALL_SEGMENT}, "
                                         f"SO_SNDBUF/SO_RCVBUF {SMALL_BUFFER}")
        sock.settimeout(timeout)
        try:
            sock.connect(address)
        except ConnectionRefusedError:
            sock.close()
            self.transcript.end = "refused"
            self._finish()
            return
        except ConnectionResetError:
            # The listener closed while this connect was still queued on it (a server exiting):
            # the kernel resets what it had not accepted. An ending, as a reset later is.
            sock.close()
            self.transcript.end, self.transcript.closed_first = "RST", "server"
            self.transcript.notes.append("reset while connecting: the listener closed with this connection queued")
            self._finish()
            return
        except (socket.timeout, TimeoutError):
            sock.close()
            self.transcript.end = "timeout"
            self._finish()
            raise StepTimeout(f"{label}: connect to {address[0]}:{address[1]} took over {timeout:g} s") from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        self.transcript.connect_s = time.monotonic() - self._t0

    # -- state ----------------------------------------------------------------------------
    @property
    def refused(self) -> bool:
        return self.transcript.end == "refused"

    @property
    def received(self) -> bytes:
        return bytes(self.transcript.received.data)

    @property
    def ended(self) -> bool:
        return self.transcript.end != "open" or self.sock is None

    def _finish(self) -> None:
        self.transcript.duration_s = time.monotonic() - self._t0

    def _record_end(self, end: str) -> None:
        if self.transcript.end == "open":
            self.transcript.end = end
            if self.transcript.closed_first is None:
                self.transcript.closed_first = "server"
        self._finish()

    def _reset_seen(self) -> None:
        """A send found the connection reset (EPIPE, ECONNRESET): record the end, after reading
        what the server sent before its reset. The kernel keeps it (a daytime server that closes
        with the client's input unread sends its line, then an RST): it arrived, and a wire
        observer saw it, though no later read will be made once the end is recorded."""
        sock = self.sock
        if sock is not None and self.transcript.end == "open":
            sock.setblocking(False)
            try:
                while chunk := sock.recv(65536):
                    self._got(chunk)
            except (BlockingIOError, ConnectionResetError):
                pass
            finally:
                sock.setblocking(True)
        self._record_end("RST")

    def _got(self, chunk: bytes) -> None:
        if self.transcript.first_byte_s is None and chunk:
            self.transcript.first_byte_s = time.monotonic() - self._t0
        self.transcript.received.add(chunk)

    def need_socket(self) -> socket.socket:
        if self.sock is None:
            raise ConnectionError(f"{self.transcript.label}: not connected ({self.transcript.end})")
        return self.sock

    # -- steps ----------------------------------------------------------------------------
    def expect(self, data: bytes, repeating: bool = False) -> None:
        """What the server should send, from the start: compared as it arrives (Stream.mismatch);
        `repeating`: `data` is one cycle of an endless stream."""
        self.transcript.received.expect(data, repeating)

    def send(self, data: bytes) -> None:
        """Send all of `data` (while not reading): for sizes the server can buffer.

        A server that has closed or reset the connection (EPIPE, ECONNRESET) is an observation,
        not an error: the end is recorded (RST, with a note) and what was not sent is not; a
        later send does nothing, a later read sees the end. Raises StepTimeout past the timeout."""
        if self.sock is None or self.transcript.end != "open":
            if self.sock is None and self.transcript.end == "open":
                raise ConnectionError(f"{self.transcript.label}: not connected")
            self.transcript.notes.append(f"{len(data)} bytes not sent: the connection had ended ({self.transcript.end})")
            return
        sock = self.sock
        sock.settimeout(self.timeout)
        view, sent = memoryview(data), 0
        try:
            while sent < len(view):
                sent += sock.send(view[sent:])
        except (socket.timeout, TimeoutError):
            self.transcript.sent.add(view[:sent])
            raise StepTimeout(f"{self.transcript.label}: sending {len(data)} bytes took over {self.timeout:g} s") from None
        except (BrokenPipeError, ConnectionResetError) as e:
            self.transcript.sent.add(view[:sent])
            self.transcript.notes.append(f"send: {e.strerror or e} after {sent} of {len(data)} bytes")
            self._reset_seen()
            return
        self.transcript.sent.add(data)

    def shutdown_write(self) -> None:
        """Our FIN: SHUT_WR, the half-close."""
        sock = self.need_socket()
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError as e:
            self.transcript.notes.append(f"shutdown(SHUT_WR): {e}")
        if self.transcript.closed_first is None and self.transcript.end == "open":
            self.transcript.closed_first = "client"

    def recv_exactly(self, n: int, timeout: float | None = None) -> bytes:
        """Exactly `n` more bytes (fewer only if the server closed first)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        start = self.transcript.received.count
        out = bytearray()
        while len(out) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise StepTimeout(f"{self.transcript.label}: {len(out)} of {n} bytes received before the timeout")
            chunk = self._recv_upto(n - len(out), left)
            if not chunk:
                break
            out += chunk
        assert self.transcript.received.count - start == len(out)
        return bytes(out)

    def _recv_upto(self, n: int, timeout: float) -> bytes:
        """At most `n` bytes, whatever arrives first; b'' at the server's FIN or RST (recorded)."""
        sock = self.need_socket()
        sock.settimeout(timeout)
        try:
            chunk = sock.recv(min(n, 65536))
        except (socket.timeout, TimeoutError):
            raise StepTimeout(f"{self.transcript.label}: nothing received for {timeout:.3g} s") from None
        except ConnectionResetError:
            self._record_end("RST")
            return b""
        if not chunk:
            self._record_end("FIN")
            return b""
        self._got(chunk)
        return chunk

    def recv_ready(self, n: int = 65536) -> bytes | None:
        """Without waiting: at most `n` bytes if some are there now, b'' if the server's FIN or RST
        is (recorded in `end`), None if nothing is."""
        if self.ended or not self.pending(0.0):
            return b"" if self.ended else None
        return self._recv_upto(n, self.timeout)

    def recv_until_end(self, timeout: float | None = None) -> bytes:
        """Everything until the server's FIN or RST (recorded in `end`); returns what came in this call."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        out = bytearray()
        while not self.ended:
            left = deadline - time.monotonic()
            if left <= 0:
                self.transcript.end = "timeout"
                self._finish()
                raise StepTimeout(f"{self.transcript.label}: no end of stream within {self.timeout if timeout is None else timeout:g} s "
                                  f"({self.transcript.received.count} bytes received)")
            out += self._recv_upto(65536, left)
        return bytes(out)

    def pending(self, timeout: float = 0.0) -> bool:
        """Whether bytes (or the server's FIN) are waiting to be read, or arrive within `timeout`."""
        sock = self.need_socket()
        sel = selectors.DefaultSelector()
        sel.register(sock, selectors.EVENT_READ)
        try:
            return bool(sel.select(timeout))
        finally:
            sel.close()

    def exchange(self, data: bytes | Iterable[bytes], half_close: bool = True, timeout: float | None = None) -> None:
        """Send `data` while reading whatever comes back (so neither side's buffers fill up),
        optionally half-close, then read until the server's FIN/RST."""
        sock = self.need_socket()
        chunks = iter([data] if isinstance(data, (bytes, bytearray, memoryview)) else data)
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        sock.setblocking(False)
        sel = selectors.DefaultSelector()
        current = memoryview(b"")
        sending = True
        try:
            sel.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
            while not self.ended:
                left = deadline - time.monotonic()
                if left <= 0:
                    self.transcript.end = "timeout"
                    self._finish()
                    raise StepTimeout(f"{self.transcript.label}: exchange unfinished after "
                                      f"{self.timeout if timeout is None else timeout:g} s "
                                      f"({self.transcript.sent.count} sent, {self.transcript.received.count} received)")
                for _key, mask in sel.select(min(left, 1.0)):
                    if mask & selectors.EVENT_READ:
                        try:
                            chunk = sock.recv(RECV_MAX)
                        except BlockingIOError:
                            chunk = None
                        except ConnectionResetError:
                            self._record_end("RST")
                            break
                        if chunk == b"":
                            self._record_end("FIN")
                            break
                        if chunk:
                            self._got(chunk)
                    if mask & selectors.EVENT_WRITE and sending:
                        if not current:
                            nxt = next(chunks, None)
                            if nxt is None:
                                sending = False
                                if half_close:
                                    self.shutdown_write()
                                sel.modify(sock, selectors.EVENT_READ)
                                continue
                            current = memoryview(bytes(nxt))
                        try:
                            n = sock.send(current)
                        except BlockingIOError:
                            continue
                        except (BrokenPipeError, ConnectionResetError):
                            self._reset_seen()
                            break
                        self.transcript.sent.add(current[:n])
                        current = current[n:]
                if not sending and not half_close:
                    return
        finally:
            sel.close()
            if self.sock is not None:
                self.sock.setblocking(True)

    def close(self) -> None:
        """An orderly close (FIN, or RST if unread data is left, as the kernel decides)."""
        if self.sock is not None:
            if self.transcript.closed_first is None:
                self.transcript.closed_first = "client"
            self.sock.close()
            self.sock = None
        self._finish()

    def reset(self) -> None:
        """An abortive close: SO_LINGER {1, 0} makes close() send an RST."""
        if self.sock is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            if self.transcript.closed_first is None:
                self.transcript.closed_first = "client"
            self.transcript.notes.append("client reset the connection")
            self.sock.close()
            self.sock = None
        self._finish()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connection_refused(address: tuple[str, int], timeout: float = 2.0) -> bool:
    """True if a connect to `address` is refused now."""
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect(address)
        except ConnectionRefusedError:
            return True
        except OSError as e:
            return e.errno == errno.ECONNREFUSED
        return False
