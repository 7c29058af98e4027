"""The peers: the services written the way a Python user would write them instead, on the
standard library's asyncio (Protocol API), or on uvloop with `--loop uvloop`.

They are here so that every benchmark chart shows where the three ports stand against
what a user would pick instead. They follow the contract (options, LISTENING/READY,
SIGTERM/SIGINT with a grace, exit codes) and use asyncio's own flow control
(pause_writing/resume_writing) rather than the ports' hand-written buffers.

    python -m acceptloop.peers.asyncio_server --loop uvloop --service echo --port 0
"""
from __future__ import annotations

import asyncio
import ctypes
import importlib.util
import os
import signal
import socket
import sys
import time
from typing import Sequence

from acceptloop import _protocol as P
from acceptloop.contract import build_parser
from acceptloop.errors import SetupError, describe_error, format_address
# The bytes on the wire are the protocol's; only the I/O around them is asyncio's.
from acceptloop.server.services import CHARGEN_CHUNK, complete_message, daytime_line, escape_message

LOOPS = ("asyncio", "uvloop")


class Base(asyncio.Protocol):
    """Connection bookkeeping shared by the services: the open set, flow control, closing."""

    def __init__(self, server: "PeerServer") -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.can_write = asyncio.Event()
        self.can_write.set()
        self.linger: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.open.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.open.discard(self)
        if self.linger is not None:
            self.linger.cancel()
        if not self.server.open:
            self.server.drained.set()

    def pause_writing(self) -> None:
        self.can_write.clear()
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.can_write.set()
        self.transport.resume_reading()

    def finish(self) -> None:
        """Send our FIN once the buffer drains; drop input until the client's FIN, then close."""
        try:
            if self.transport.can_write_eof():
                self.transport.write_eof()
        except OSError:          # asyncio's write_eof raises ENOTCONN when the client is already gone
            self.transport.abort()
            return
        self.linger = asyncio.get_running_loop().call_later(P.LINGER_SECONDS, self.transport.abort)

    def eof_received(self) -> bool:
        return False      # close the transport (after flushing what is buffered)


class Echo(Base):
    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


class Discard(Base):
    def data_received(self, data: bytes) -> None:
        pass


class Chargen(Base):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.task = asyncio.get_running_loop().create_task(self.produce())

    async def produce(self) -> None:
        chunk = CHARGEN_CHUNK
        while not self.transport.is_closing():
            await self.can_write.wait()
            self.transport.write(chunk)
            await asyncio.sleep(0)

    def data_received(self, data: bytes) -> None:
        pass

    def eof_received(self) -> bool:
        return True       # a half-close is not going away: keep sending

    def connection_lost(self, exc: Exception | None) -> None:
        self.task.cancel()
        super().connection_lost(exc)


class Daytime(Base):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        epoch = self.server.daytime_epoch if self.server.daytime_epoch is not None else time.time()
        self.transport.write(daytime_line(epoch))
        self.finish()

    def data_received(self, data: bytes) -> None:
        pass


class Message(Base):
    def __init__(self, server: "PeerServer") -> None:
        super().__init__(server)
        self.buffer = bytearray()
        self.replied = False

    def data_received(self, data: bytes) -> None:
        if self.replied:
            return
        self.buffer += data
        message = complete_message(self.buffer)
        if message is not None:
            self.reply(message)

    def eof_received(self) -> bool:
        if not self.replied:
            self.reply(bytes(self.buffer))
            return True
        return False

    def reply(self, message: bytes) -> None:
        self.replied = True
        print(P.MESSAGE_LOG_PREFIX + escape_message(message), file=sys.stderr, flush=True)
        self.transport.write(P.MESSAGE_REPLY)
        self.finish()


SERVICES = {"echo": Echo, "discard": Discard, "chargen": Chargen, "daytime": Daytime, "message": Message}


class PeerServer:
    def __init__(self, daytime_epoch: int | None) -> None:
        self.open: set[Base] = set()
        self.drained = asyncio.Event()
        self.daytime_epoch = daytime_epoch


def listen_sockets(host: str, port: int, backlog: int, ipv6_only: bool) -> list[socket.socket]:
    """The same addresses the ports listen on: every getaddrinfo(AI_PASSIVE) answer, one port."""
    try:
        infos = socket.getaddrinfo(host or None, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise SetupError("resolve", format_address(host, port), e) from None
    also_ipv4 = any(i[0] == socket.AF_INET for i in infos)
    socks: list[socket.socket] = []
    try:
        for family, type_, proto, _, sockaddr in infos:
            sockaddr = (sockaddr[0], port, *sockaddr[2:])
            where = format_address(sockaddr[0], port)
            sock = socket.socket(family, type_, proto)
            socks.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(ipv6_only or also_ipv4))
            for step, call in (("bind", lambda: sock.bind(sockaddr)), ("listen", lambda: sock.listen(backlog))):
                try:
                    call()
                except OSError as e:
                    raise SetupError(step, where, e) from None
            sock.setblocking(False)
            port = port or sock.getsockname()[1]
    except BaseException:
        for s in socks:
            s.close()
        raise
    return socks


async def serve(args, socks: list[socket.socket], daytime_epoch: int | None) -> None:
    loop = asyncio.get_running_loop()
    peer = PeerServer(daytime_epoch)
    factory = SERVICES[args.service]
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    servers = [await loop.create_server(lambda: factory(peer), sock=s) for s in socks]
    for s in socks:
        address, port = s.getsockname()[:2]
        print(P.ANNOUNCE_LISTENING % (address, port))
    print(P.ANNOUNCE_READY, flush=True)
    await stop.wait()
    for server in servers:
        server.close()
    if peer.open:
        peer.drained.clear()
        try:
            await asyncio.wait_for(peer.drained.wait(), args.grace)
        except asyncio.TimeoutError:
            for conn in list(peer.open):
                conn.transport.abort()
    for server in servers:
        await server.wait_closed()


def steady_heap() -> None:
    """Keep glibc's heap from returning memory to the system on every read.

    asyncio reads into a fresh 256 KiB bytes object and shrinks it to what arrived. Whether
    glibc serves that from mmap (an mmap, mremap and munmap per read) or from a heap that is
    trimmed back with brk on every read depends on its dynamic thresholds, which move with
    whatever the process allocated and freed before: the same server then costs 20 or 60 µs
    of CPU per 64-byte echo from one start to the next. A peer is measured at its best and
    the same way every time, so the thresholds are fixed high from the start."""
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(M_MMAP_THRESHOLD, 1 << 20)
        libc.mallopt(M_TRIM_THRESHOLD, 4 << 20)
    except (OSError, AttributeError):   # not glibc: nothing to steady
        pass


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3   # <malloc.h>


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser("python -m acceptloop.peers.asyncio_server", models=("event",))
    parser.add_argument("--loop", choices=LOOPS, default="asyncio", help="the event loop: the standard library's, or uvloop")
    args = parser.parse_args(argv)
    epoch_text = os.environ.get(P.DAYTIME_EPOCH_ENV)
    if epoch_text and not epoch_text.lstrip("-").isdigit():
        parser.error(f"{P.DAYTIME_EPOCH_ENV}: not a whole number of seconds: {epoch_text!r}")
    if args.loop == "uvloop" and importlib.util.find_spec("uvloop") is None:
        print("uvloop is not installed: pip install -e '.[peers]'", file=sys.stderr)
        return P.EXIT_FAILURE
    try:
        socks = listen_sockets(args.host, args.port, args.backlog, args.ipv6_only)
    except SetupError as e:
        print(e, file=sys.stderr)
        return P.EXIT_FAILURE
    except OSError as e:
        print(f"socket {args.host}: {describe_error(e)}", file=sys.stderr)
        return P.EXIT_FAILURE
    steady_heap()
    runner = asyncio.run
    if args.loop == "uvloop":
        import uvloop
        runner = uvloop.run
    runner(serve(args, socks, int(epoch_text) if epoch_text else None))
    return P.EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
