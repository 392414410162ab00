"""A producer's connections follow the master the sentinels name (Sentinel URLs only).

redis-py 8.2 asks the sentinels only when a connection connects: a producer whose
connections stay open to a primary the sentinels no longer name (after a second failover
the first promoted server stays up and writable for about ten seconds) keeps writing
there, and every job it writes is lost when the sentinels turn that server into a replica.
A worker asks once a heartbeat (worker/heartbeat.py); a producer has no heartbeat, so it
asks from its own writes, at most once per `Settings.sentinel_check_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

import redis
from redis.sentinel import SentinelConnectionPool

from .connection import follow_master
from .wire import Pinned

if TYPE_CHECKING:
    import redis.asyncio

log = logging.getLogger("jobq")

# Longest a write waits for the sentinels' answer before it goes out on the connection it
# has. A sentinel answers in well under a millisecond; silent ones (each asked within its
# own timeouts, one after another) would hold every write up for seconds: past this the
# ask goes on aside, its answer applies to the writes after it, and no other write waits
# for the sentinels until it ends.
ANSWER_WAIT_S = 0.2


def follows(client: Any) -> bool:
    """Whether `client` (sync or asyncio) is a client of a master named by sentinels."""
    pool = getattr(client, "connection_pool", None)
    if isinstance(pool, SentinelConnectionPool):
        return True
    if "redis.asyncio.sentinel" not in sys.modules:  # no asyncio Sentinel client exists
        return False
    from redis.asyncio.sentinel import SentinelConnectionPool as AsyncSentinelPool

    return isinstance(pool, AsyncSentinelPool)


# What a producer's failed ask leaves undone (AskFailures' warning)
PRODUCER_STALE = "a producer connection on a demoted primary is not dropped until they answer"


class AskFailures:
    """Failed asks of the sentinels: the first of a run of them is logged as a warning
    (saying `consequence`), the rest are not, until an ask is answered."""

    def __init__(self, consequence: str, logger: logging.Logger = log) -> None:
        self._consequence = consequence
        self._log = logger
        self._failing = False

    def failed(self, exc: BaseException) -> None:
        if not self._failing:
            # redis-py's text repeats every sentinel's client settings: its head only.
            self._log.warning("asking the sentinels for the master failed: %s (%s)",
                              str(exc).split(" : ")[0][:200], self._consequence)
        self._failing = True

    def answered(self) -> None:
        self._failing = False


class MasterCheck:
    """Called before each write of a producer on a Sentinel URL: at most once per `every_s`
    it asks the sentinels which server is master (one round trip to a sentinel, in a thread
    aside, waited for at most ANSWER_WAIT_S). When they name another server than the one the
    client's pool last knew, the pool drops its idle connections (and each in-use one on
    release), and `pinned`'s kept connection is given back before its next use, so the
    write goes to the master named now. A job written more than `every_s` after the
    sentinels name a new master is written there (if a sentinel answers within
    ANSWER_WAIT_S). Never raises; no sentinel answering is logged once (a warning), until
    one does. Callers may race on it: at worst the sentinels are asked twice."""

    def __init__(self, client: redis.Redis, pinned: Pinned | None, every_s: float) -> None:
        self._client = client
        self._pinned = pinned
        self._every_s = every_s
        # time.monotonic() of the next ask. Not at once: the first write's connection is
        # connected to the master the sentinels name then.
        self._due = time.monotonic() + every_s
        self._asker: threading.Thread | None = None
        self._asker_pid = 0  # the process that started _asker (a forked child has none)
        self._failures = AskFailures(PRODUCER_STALE)

    def __call__(self) -> None:
        now = time.monotonic()
        if now < self._due:
            return
        self._due = now + self._every_s
        asker = self._asker
        if asker is not None and asker.is_alive() and self._asker_pid == os.getpid():
            return  # the last ask still waits for silent sentinels: this write goes on
        asker = self._asker = threading.Thread(target=self.ask, name="jobq-sentinel",
                                               daemon=True)
        self._asker_pid = os.getpid()
        try:
            asker.start()
        except RuntimeError as exc:  # "can't start new thread": the write goes on unchecked
            self._asker = None
            self._failures.failed(exc)
            return
        asker.join(ANSWER_WAIT_S)

    def ask(self) -> None:
        """Ask the sentinels now, and have the connections that talk to another server
        dropped before their next use. Never raises."""
        try:
            master = follow_master([self._client])
        except (redis.RedisError, OSError) as exc:
            self._failures.failed(exc)
            return
        self._failures.answered()
        if self._pinned is not None:
            self._pinned.follow(master)


class AsyncMasterCheck:
    """MasterCheck for a redis.asyncio Sentinel client (AsyncQueue), awaited before each
    write; the ask runs as a task of the event loop, waited for at most ANSWER_WAIT_S.
    The pool has no kept connection: one that learns of a new master drops its idle
    connections, and each ask has every connection to another server dropped (see
    _leave_others): redis.asyncio's pool, unlike redis-py's sync one, keeps a connection
    released on the old server."""

    def __init__(self, client: redis.asyncio.Redis, every_s: float) -> None:
        self._pool: Any = client.connection_pool
        self._every_s = every_s
        self._due = time.monotonic() + every_s  # see MasterCheck
        self._asker: asyncio.Task[None] | None = None
        self._failures = AskFailures(PRODUCER_STALE)

    async def __call__(self) -> None:
        now = time.monotonic()
        if now < self._due:
            return
        self._due = now + self._every_s
        if self._asker is not None and not self._asker.done():
            return  # see MasterCheck
        asker = self._asker = asyncio.get_running_loop().create_task(self.ask())
        # asyncio.wait cancels nothing: past the wait (or if this caller is cancelled) the
        # ask runs on, and its answer applies to the writes after it.
        await asyncio.wait([asker], timeout=ANSWER_WAIT_S)

    async def ask(self) -> None:
        """Ask the sentinels now (the pool drops its connections to another server). Never
        raises but CancelledError."""
        try:
            master = await self._pool.get_master_address()
        except (redis.RedisError, OSError) as exc:
            self._failures.failed(exc)
            return
        self._failures.answered()
        await _leave_others(self._pool, master)


async def _leave_others(pool: Any, master: tuple[str, int]) -> None:
    """Have every connection of `pool` (a redis.asyncio SentinelConnectionPool) that talks
    to another server than `master` dropped: an idle one now, one in use when it is released.
    redis.asyncio's pool drops the idle ones only when it learns of a new master (in an ask,
    or in any connection's connect), and, unlike the sync pool (owns_connection), checks no
    connection on release: one in use then (another coroutine's command, another AsyncQueue
    on a shared client) came back on the old primary, was the next one lent (the pool lends
    the one released last), and stayed there, each ask seeing no change."""
    for conn in [c for c in pool._available_connections
                 if c.is_connected and (c.host, c.port) != master]:
        # Checked again after each await: one lent meanwhile carries a command now (it is
        # marked below). disconnect() lets go of the socket before its first await.
        if conn in pool._available_connections:
            with contextlib.suppress(Exception):  # as the pool's own disconnect()
                await conn.disconnect()
    for conn in list(pool._in_use_connections):
        mark = getattr(conn, "mark_for_reconnect", None)  # not in older redis-py
        if mark is not None and (conn.host, conn.port) != master:
            mark()  # release() disconnects it
