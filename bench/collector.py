"""Count the beacons that benchmark tasks send, and time when a target count is reached."""

from __future__ import annotations

import selectors
import socket
import struct
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType

_FRAME = struct.Struct("<d")


class Collector:
    """A unix-socket server on a background thread that counts 8-byte frames from tasks.

    Reads are batched (up to 64 KiB per wakeup), so counting 20,000 jobs/s costs the harness
    little CPU. ``perf_counter`` timestamps are taken when frames are read, so they lag the
    task by at most one loop turn (microseconds to a millisecond).
    """

    def __init__(self, directory: Path, keep_values: bool = False) -> None:
        self.path = Path(tempfile.mkstemp(prefix="beacon-", suffix=".sock", dir=directory)[1])
        self.path.unlink()
        self.keep_values = keep_values
        self.values: list[float] = []
        self.count = 0
        self.first_at: float | None = None
        self._targets: dict[int, float] = {}
        self._lock = threading.Condition()
        self._stop = threading.Event()
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(self.path))
        self._server.listen(64)
        self._server.setblocking(False)
        self._thread = threading.Thread(target=self._loop, name="beacon-collector", daemon=True)

    def __enter__(self) -> Collector:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop the thread, close every connection and remove the socket file."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._server.close()
        self.path.unlink(missing_ok=True)

    def watch(self, target: int) -> None:
        """Start timing ``target`` now, before the frames can arrive, so its time is exact."""
        with self._lock:
            self._targets.setdefault(target, 0.0)

    def wait_for(self, target: int, timeout_s: float) -> float | None:
        """Block until ``target`` frames arrived; return the perf_counter time it happened.

        Returns None when ``timeout_s`` passes first.
        """
        deadline = time.perf_counter() + timeout_s
        with self._lock:
            while self.count < target:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    return None
                self._targets.setdefault(target, 0.0)
                self._lock.wait(timeout=min(remaining, 0.5))
            return self._reached_at(target)

    def _reached_at(self, target: int) -> float:
        at = self._targets.get(target)
        # a target first asked for after it was already passed: the best we know is "by now"
        return at if at else time.perf_counter()

    def _loop(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self._server, selectors.EVENT_READ, data=None)
        partial: dict[socket.socket, bytes] = {}
        try:
            while not self._stop.is_set():
                for key, _ in selector.select(timeout=0.2):
                    if key.data is None:
                        conn, _addr = self._server.accept()
                        conn.setblocking(False)
                        selector.register(conn, selectors.EVENT_READ, data="conn")
                        partial[conn] = b""
                        continue
                    peer = key.fileobj
                    assert isinstance(peer, socket.socket)
                    conn = peer
                    try:
                        chunk = conn.recv(65536)
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError:
                        chunk = b""
                    if not chunk:
                        selector.unregister(conn)
                        conn.close()
                        partial.pop(conn, None)
                        continue
                    self._consume(partial, conn, chunk)
        finally:
            for key in list(selector.get_map().values()):
                if key.data is not None:
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    sock.close()
            selector.close()

    def _consume(
        self, partial: dict[socket.socket, bytes], conn: socket.socket, chunk: bytes
    ) -> None:
        now = time.perf_counter()
        data = partial[conn] + chunk
        whole = len(data) - len(data) % _FRAME.size
        partial[conn] = data[whole:]
        frames = whole // _FRAME.size
        if not frames:
            return
        with self._lock:
            if self.first_at is None:
                self.first_at = now
            if self.keep_values:
                self.values.extend(v for (v,) in _FRAME.iter_unpack(data[:whole]))
            before = self.count
            self.count += frames
            for target, at in self._targets.items():
                if not at and before < target <= self.count:
                    self._targets[target] = now
            self._lock.notify_all()
