"""Tell the harness that a job ran, from inside the job, at a cost of a few microseconds.

Every benchmark task ends with ``beacon.send(value)``. It writes one 8-byte double over a unix
stream socket to the harness's collector (``bench.collector``). This replaces the usual "INCR a
counter in Redis" so the queue's Redis sees only the library's own commands, and so the harness
adds no network round trip to each job (a redis-py round trip costs ~90 us here, an unread socket
write a few us). Stdlib only: it is imported inside every system's venv.
"""

from __future__ import annotations

import os
import socket
import struct

ENV_VAR = "BENCH_BEACON"
_FRAME = struct.Struct("<d")

_sock: socket.socket | None = None
_sock_pid = 0


def _connect() -> socket.socket:
    global _sock, _sock_pid
    path = os.environ.get(ENV_VAR)
    if not path:
        raise RuntimeError(f"{ENV_VAR} is not set: benchmark tasks must run under bench.run")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # a stuck collector must not hang a worker forever; the harness's own timeouts report it
    sock.settimeout(10.0)
    sock.connect(path)
    _sock, _sock_pid = sock, os.getpid()
    return sock


def send(value: float = 0.0) -> None:
    """Report one finished job; ``value`` is the measured latency in seconds, or 0.0."""
    sock = _sock
    # a forked pool child inherits the parent's socket: give each process its own stream so
    # frames from two processes never interleave mid-frame
    if sock is None or _sock_pid != os.getpid():
        sock = _connect()
    sock.sendall(_FRAME.pack(value))
