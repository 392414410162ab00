"""Commands sent on a pooled connection without redis-py's per-command bookkeeping.

The hot path (a script call per claim, per batch of completions) goes through here: the
arguments packed by hiredis in C, one write, the replies read back; retries and a broken
connection are handled as redis-py's execute_command does.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import redis
from redis.commands.core import Script
from redis.exceptions import (
    AskError,
    ClusterError,
    DataError,
    NoScriptError,
    RedisClusterException,
    TryAgainError,
)

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
        return _exchange(conn, packed, commands)
    finally:
        pool.release(conn)


def _exchange(conn: Any, packed: list[bytes] | None, commands: tuple[tuple[Any, ...], ...],
              ) -> list[Any]:
    """Send `commands` in one write on `conn` and read every reply, an error reply as its
    exception. On any other failure `conn` is disconnected (a reply may be unread)."""
    try:
        if packed is None:  # pragma: no cover - only without the hiredis wheel
            packed = conn.pack_commands(commands)
        conn.send_packed_command(packed)
        replies: list[Any] = []
        for _ in commands:
            try:
                replies.append(conn.read_response())
            except redis.ResponseError as e:
                replies.append(e)
        return replies
    except BaseException:
        conn.disconnect()
        raise


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


# A kept connection idle longer than this is checked for a close by the server before use.
IDLE_CHECK_S = 1.0


class Pinned:
    """One connection of a client's pool, kept between calls by a single user at a time.

    For a writer that calls far more often than it goes idle (a Queue's group commit): a
    pool's get and release cost about a tenth of a single enqueue (a poll of the socket, a
    lock, metrics bookkeeping). Only for a pool its owner does not share: the connection
    stays taken until the pool is disconnected or garbage collected. The connection is
    taken again after a fork, and dropped when a call fails in a way that may leave a reply
    unread, so it never gets out of step; such a call is re-sent once (see evalsha). After
    a failed call, a close by the server seen before a call, or a follow() away from its
    server, it is given back to the pool and another taken: only the pool's get connects
    a Sentinel connection to the master the sentinels name now.
    """

    def __init__(self, client: redis.Redis) -> None:
        self._pool = client.connection_pool
        self._conn: Any = None
        # The process that took _conn, checked on every call (a system call, half a
        # microsecond): os.register_at_fork hooks do not run after a fork made from C
        # (uWSGI's workers), whose child would then write on its parent's socket.
        self._pid = 0
        self._answered = 0.0  # time.monotonic() of the last reply read on _conn
        # Set by follow() (another thread) or a failed pipelined(), read before the next use:
        # _conn is then given back and another taken (see _kept).
        self._retake = False

    def evalsha(self, sha: str, numkeys: int, params: Sequence[Any]) -> Any:
        """EVALSHA on the kept connection; raises what redis-py raises. On a connection
        error or timeout before the reply (the script may or may not have run) it is sent
        once more on a fresh connection: only for a script that is harmless to run twice
        (enqueue.lua with the jobs' ids fixed: a job already written answers 0)."""
        command = ("EVALSHA", sha, numkeys, *params)
        packed = pack(command)
        conn = self._kept()
        try:
            reply = self._send(conn, packed, command)
        except (redis.ConnectionError, redis.TimeoutError):
            # A lost reply (a link dropped without FIN, a FIN after the check above):
            # failing would make a caller retry without its ids and double the jobs. Sent
            # on a connection taken through the pool: on Sentinel, to the master named now.
            reply = self._send(self._retaken(conn), packed, command)
        self._answered = time.monotonic()
        return reply

    def pipelined(self, *commands: tuple[Any, ...]) -> list[Any]:
        """pipelined() on the kept connection: sent once, never again (a command may have
        run); a failure drops the connection, and raises."""
        packed = pack(*commands)
        try:
            replies = _exchange(self._kept(), packed, commands)
        except (redis.ConnectionError, redis.TimeoutError):
            self._retake = True  # disconnected: reconnect through the pool (see _kept)
            raise
        self._answered = time.monotonic()
        return replies

    def _kept(self) -> Any:
        """The kept connection, taken from the pool the first time (and after a fork)."""
        conn = self._conn
        if conn is None or self._pid != os.getpid():
            conn = self._conn = self._pool.get_connection()
            self._pid = os.getpid()
            # Taken through the pool, as a retake would: a retake asked while there was no
            # connection (a failed call whose get failed) is done.
            self._retake = False
        elif self._retake:
            conn = self._retaken(conn)
        elif time.monotonic() - self._answered > IDLE_CHECK_S and _stale(conn):
            # As the pool checks before lending one: a connection the server closed while
            # it was idle (a restart, CLIENT KILL, its idle timeout) is replaced, so the call
            # does not fail. Not between calls in quick succession (the poll is a syscall
            # per call): evalsha's re-send covers a close in that gap, and pipelined()'s
            # caller meets it as a failed call.
            conn = self._retaken(conn)
        return conn

    def _retaken(self, conn: Any) -> Any:
        """`conn` disconnected and given back to the pool, and another taken (kept from now
        on). Through the pool, not by a send on the disconnected connection: only the
        pool's get_connection() connects a Sentinel connection to the master the sentinels
        name; a send reconnects to the address it had (redis-py 8.2)."""
        self._retake = False
        conn.disconnect()
        self._conn = None  # released: if the next get fails, the next call gets again
        self._pool.release(conn)
        conn = self._conn = self._pool.get_connection()
        return conn

    def follow(self, master: tuple[str, int]) -> None:
        """Drop the kept connection before its next use if it talks to another server than
        `master` (host, port): the master the sentinels name now (connection.follow_master).
        Safe from any thread: a call in progress on the connection (a blocking wait) is left
        to end on its own timeout. A kept connection is never released to its pool, so
        redis-py's check on release (SentinelConnectionPool.owns_connection) never sees it."""
        conn = self._conn
        if conn is not None and (conn.host, conn.port) != master:
            self._retake = True

    @staticmethod
    def _send(conn: Any, packed: list[bytes] | None, command: tuple[Any, ...]) -> Any:
        try:
            if packed is None:  # pragma: no cover - only without the hiredis wheel
                conn.send_command(*command)
            else:
                conn.send_packed_command(packed)
            return conn.read_response()
        except redis.ResponseError:  # the error reply was read: still in step
            raise
        except BaseException:
            conn.disconnect()  # a reply may be unread; the next call reconnects
            raise


def _stale(conn: Any) -> bool:
    """Whether a connection that should have nothing to read has: EOF or a stray reply."""
    try:
        return bool(conn.can_read())
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return True


# What a direct call to a node may meet that redis-py's routed call knows how to follow: a
# redirect (MOVED, ASK), a slot on the move (TRYAGAIN), a failover (CLUSTERDOWN, a dropped
# connection), a slot the cached map does not cover.
_REROUTE = (AskError, TryAgainError, ClusterError, RedisClusterException,
            redis.ConnectionError, redis.TimeoutError)


def cluster_evalsha(client: Any, script: Script, keys: Sequence[Any],
                    params: Sequence[Any]) -> Any:
    """`script` on a redis-py cluster client: sent straight to the pool of the node that
    serves its keys' slot, as evalsha() does on one Redis (the cluster client's routing
    costs about 110 us of client CPU a call, more than the script), loading the script
    there if the node lacks it. Anything the slot map may explain goes the routed way
    instead, which follows the redirect, refreshes the map and retries as redis-py does
    (a dropped connection is retried there, as redis-py's cluster client retries it)."""
    try:
        node = client.get_redis_connection(client.get_node_from_key(keys[0]))
        try:
            return evalsha(node, script.sha, len(keys), (*keys, *params))
        except NoScriptError:  # a node that never ran it, or restarted
            node.script_load(script.script)
            return evalsha(node, script.sha, len(keys), (*keys, *params))
    except _REROUTE:
        return script(keys=list(keys), args=list(params), client=client)
