"""A small test-owned TCP proxy in front of Redis, to cut one worker off without touching others.

It runs an asyncio loop in a daemon thread of the test process. Modes (switchable at any time):

- ``pass``: forward both directions.
- ``blackhole``: keep every socket open but drop all bytes both ways; new connections are accepted
  and never answered. This is a partition as TCP sees it: only a client-side timeout can notice.
- ``half_open``: forward client -> server, drop server -> client (commands run, replies vanish).
- ``reset``: abort every connection with an RST and refuse new ones the same way.
- ``latency``: forward, but hold each chunk for ``latency_s`` first.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
from typing import Literal

from .server import free_port

Mode = Literal["pass", "blackhole", "half_open", "reset", "latency"]
MODES: tuple[str, ...] = ("pass", "blackhole", "half_open", "reset", "latency")


def _abort_with_rst(writer: asyncio.StreamWriter) -> None:
    # SO_LINGER with a zero timeout makes close() send RST instead of FIN: the peer sees
    # "connection reset by peer", as after a NAT or firewall drop, not a clean shutdown.
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class TcpProxy:
    """Forward 127.0.0.1:<port> to an upstream host:port, with a fault mode switch."""

    def __init__(
        self, upstream_port: int, upstream_host: str = "127.0.0.1", port: int | None = None
    ) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = port or free_port()
        self.mode: Mode = "pass"
        self.latency_s = 0.0
        self.connections_accepted = 0
        # (wall time, mode) of every switch, to line up with worker logs when diagnosing.
        self.history: list[tuple[float, str]] = []
        self.bytes_forwarded = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="fault-proxy", daemon=True
        )
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self._thread.start()
        fut = asyncio.run_coroutine_threadsafe(self._start_server(), self._loop)
        fut.result(5)

    async def _start_server(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    def set_mode(self, mode: Mode, latency_s: float = 0.0) -> None:
        """Switch mode; ``reset`` also aborts every open connection at once."""
        if mode not in MODES:
            raise ValueError(f"unknown proxy mode {mode!r}; expected one of {MODES}")
        self.latency_s = latency_s
        self.mode = mode
        self.history.append((time.time(), mode))
        if mode == "reset":
            asyncio.run_coroutine_threadsafe(self._reset_all(), self._loop).result(5)

    async def _reset_all(self) -> None:
        for w in list(self._writers):
            _abort_with_rst(w)
        self._writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A handler cancelled at stop() must end quietly: asyncio's start_server callback would
        # otherwise log the CancelledError as an unhandled exception.
        with contextlib.suppress(asyncio.CancelledError):
            await self._serve(reader, writer)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections_accepted += 1
        if self.mode == "reset":
            _abort_with_rst(writer)
            return
        if self.mode == "blackhole":
            # Accept, then swallow bytes until the client gives up; never dial upstream.
            self._writers.add(writer)
            try:
                while await reader.read(65536):
                    pass
            except (ConnectionError, OSError):
                pass
            finally:
                self._writers.discard(writer)
                writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            # Upstream down: pass the refusal on as a reset, like a direct connect would see it.
            _abort_with_rst(writer)
            return
        self._writers.update((writer, up_writer))
        try:
            await asyncio.gather(
                self._pump(reader, up_writer, upstream=True),
                self._pump(up_reader, writer, upstream=False),
            )
        finally:
            for w in (writer, up_writer):
                self._writers.discard(w)
                if not w.is_closing():
                    w.close()

    async def _pump(
        self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, *, upstream: bool
    ) -> None:
        try:
            while True:
                chunk = await src.read(65536)
                if not chunk:
                    break
                mode = self.mode
                if mode == "blackhole" or (mode == "half_open" and not upstream):
                    continue
                if mode == "reset":
                    break
                if mode == "latency" and self.latency_s > 0:
                    await asyncio.sleep(self.latency_s)
                dst.write(chunk)
                self.bytes_forwarded += len(chunk)
                await dst.drain()
        except (ConnectionError, OSError, asyncio.CancelledError):
            pass
        finally:
            # One side ended: end the other too, so neither peer waits on a half-dead pair.
            if not dst.is_closing():
                if self.mode == "reset":
                    _abort_with_rst(dst)
                else:
                    dst.close()

    def stop(self) -> None:
        async def _stop() -> None:
            if self._server is not None:
                self._server.close()
            await self._reset_all()
            # Cancel the connection handlers so the loop stops with nothing pending.
            me = asyncio.current_task()
            tasks = [t for t in asyncio.all_tasks() if t is not me]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(_stop(), self._loop).result(5)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)

    def __enter__(self) -> TcpProxy:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
