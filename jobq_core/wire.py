"""Commands sent on a pooled connection without redis-py's per-command bookkeeping.

The hot path (a script call per claim, per batch of completions) goes through here: the
arguments packed by hiredis in C, one write, the replies read back; retries and a broken
connection are handled as redis-py's execute_command does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import redis
from redis.exceptions import DataError

_pack: Callable[[tuple[Any, ...]], bytes] | None
try:  # redis[hiredis] is a dependency; without it redis-py's own packer is used
    from hiredis import pack_command as _pack
except ImportError:  # pragma: no cover - only without the hiredis wheel
    _pack = None


def pack(*commands: tuple[Any, ...]) -> list[bytes] | None:
    """`commands` packed by hiredis in C (the bytes redis-py's encoder would produce; its
    per-argument Python call was half of a bulk enqueue's client time), or None without
    hiredis. Raises what redis-py raises for an argument it cannot send (DataError for a
    bool or None, UnicodeEncodeError for a lone surrogate) before a connection is taken."""
    if _pack is None:  # pragma: no cover - only without the hiredis wheel
        return None
    try:
        return [_pack(c) for c in commands]
    except TypeError as e:
        raise DataError(f"invalid command argument: {e}") from e


def pipelined(client: redis.Redis, *commands: tuple[Any, ...]) -> list[Any]:
    """Send `commands` in one write on a pooled connection and read every reply, an error
    reply as its exception (so the connection stays in step). Not retried: a command may
    have run. Lighter than a redis-py pipeline, whose set-up is most of an idle worker's
    Python between claiming a job and blocking again (the job's thread waits for the GIL)."""
    packed = pack(*commands)
    pool = client.connection_pool
    conn = pool.get_connection()
    try:
        if packed is None:  # pragma: no cover - only without the hiredis wheel
            packed = conn.pack_commands(commands)  # type: ignore[no-untyped-call]
        conn.send_packed_command(packed)  # type: ignore[no-untyped-call]
        replies: list[Any] = []
        for _ in commands:
            try:
                replies.append(conn.read_response())
            except redis.ResponseError as e:
                replies.append(e)
        return replies
    except BaseException:
        conn.disconnect()  # type: ignore[no-untyped-call]  # a reply may be unread
        raise
    finally:
        pool.release(conn)


def evalsha(client: redis.Redis, sha: str, numkeys: int, params: Sequence[Any]) -> Any:
    """EVALSHA on a pooled connection, as redis-py's execute_command does it (its retry
    policy; a failed connection is dropped, not reused) without its per-command metrics
    bookkeeping: that costs ~50 us per call, a quarter of a single enqueue."""
    packed = pack(("EVALSHA", sha, numkeys, *params))
    pool = client.connection_pool
    conn = pool.get_connection()

    def send() -> Any:
        if packed is None:  # pragma: no cover - only without the hiredis wheel
            conn.send_command("EVALSHA", sha, numkeys, *params)  # type: ignore[no-untyped-call]
        else:
            conn.send_packed_command(packed)  # type: ignore[no-untyped-call]
        return conn.read_response()

    try:
        return conn.retry.call_with_retry(
            send, lambda _error: conn.disconnect())  # type: ignore[no-untyped-call]
    finally:
        pool.release(conn)
