"""Claiming and waiting when the queues are spread over a Redis Cluster (docs/design.md,
"Redis Cluster"). The single-node path (fetch.Fetcher) claims every queue in one Lua call
and blocks with one BZPOPMIN over every marker; in a cluster a script and a blocking pop
may each touch one slot only, so:

- claim: one claim.lua call per slot, in the worker's queue order, until the batch is full
  (queues listed first are still served first; queues sharing a slot share a call);
- wait: one thread per slot blocks in BZPOPMIN on that slot's markers while the main loop
  waits, and hints the main loop (an Event) when one pops; the main loop then claims.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from itertools import groupby

import redis
from redis.crc import key_slot

from ..config import Settings
from ..connection import translated
from ..errors import JobqError
from ..job import Claimed
from ..keys import Keyspace
from ..replies import ClaimResult
from ..scripts import Scripts
from .fetch import Fetcher, Submit

log = logging.getLogger("jobq.worker")


def slot_groups(queues: Sequence[str]) -> list[list[str]]:
    """`queues` cut into runs of consecutive queues that share a cluster slot (their
    `{queue}` tag's), in order: each run is claimed with one script call."""
    return [list(run) for _, run in groupby(queues, key=lambda q: key_slot(q.encode()))]


def merged(results: Sequence[ClaimResult]) -> ClaimResult:
    """One ClaimResult of several claim calls (in the order they ran). The next due time
    and the clock are those of the call whose next job is due soonest by its own node's
    clock: nodes' clocks differ, and a due time of one node read against another's clock
    would end waits early (a spin) or late."""
    dues = [r for r in results if r.next_due_ms >= 0]
    soonest = min(dues, key=lambda r: r.next_due_ms - r.now_ms, default=None)
    return ClaimResult([j for r in results for j in r.jobs], [n for r in results for n in r.notes],
                       soonest.next_due_ms if soonest else -1,
                       soonest.now_ms if soonest else max((r.now_ms for r in results), default=0))


class _SlotWaiter(threading.Thread):
    """Blocks in BZPOPMIN on the markers of one slot while the fetcher is armed; a popped
    marker hints the fetcher. A marker popped after the main loop stopped waiting is put
    back, so an idle peer still sees it (this worker claims on its own next round)."""

    def __init__(self, fetcher: ClusterFetcher, markers: list[str]) -> None:
        super().__init__(name=f"jobq-wait-{markers[0]}", daemon=True)
        self.fetcher = fetcher
        self.markers = markers

    def run(self) -> None:
        f = self.fetcher
        pause = 0.05
        while not f.closed.is_set():
            if not f.armed.wait(f.settings.block_s):
                continue
            timeout = max(0.01, f.deadline - time.monotonic())
            try:
                with translated(f.settings.redis_url):
                    popped = f.blocking.bzpopmin(self.markers, timeout=timeout)
                    if popped and not f.armed.is_set():
                        f.blocking.zadd(str(popped[0]), {"m": 0})  # give the wake-up back
                pause = 0.05
            except (JobqError, redis.RedisError) as exc:
                if f.closed.is_set():
                    return
                log.debug("waiting on %s: %s; again in %.1fs", self.markers, exc, pause)
                f.closed.wait(pause)
                pause = min(pause * 2, f.settings.reconnect_max_s)
                continue
            if popped:
                f.hint.set()


class ClusterFetcher(Fetcher):
    """Fetcher for a cluster client: per-slot claims and one waiting thread per slot."""

    def __init__(self, settings: Settings, queues: Sequence[str], worker_id: str,
                 scripts: Scripts, blocking: redis.Redis) -> None:
        super().__init__(settings, queues, worker_id, scripts, blocking)
        self._groups = slot_groups(self.queues)
        self.hint = threading.Event()  # a marker popped: there may be work
        self.armed = threading.Event()  # set while the main loop waits for a hint
        self.closed = threading.Event()
        self.deadline = 0.0  # monotonic end of the current wait
        self._waiters: list[_SlotWaiter] = []

    def claim(self, count: int, submit: Submit | None = None) -> list[Claimed]:
        """Lease up to `count` jobs, one claim call per slot in queue order; with `submit`,
        each call's jobs are handed to it (with that call's send time) as soon as it
        returns, not after the later slots' calls. A slot whose call fails is skipped
        (logged), so one unreachable node does not starve the queues of the others; raises
        (RedisUnavailable, ...) only when no slot answered."""
        # Cleared before claiming: a marker popped from now on is a hint for the next wait.
        self.hint.clear()
        results: list[ClaimResult] = []
        failed: Exception | None = None
        for group in self._groups:
            left = count - sum(len(r.jobs) for r in results)
            if left <= 0:
                break
            sent = time.monotonic()
            try:
                with translated(self.settings.redis_url):
                    results.append(self.scripts.claim(group, left, self.worker_id))
            except (JobqError, redis.RedisError) as exc:
                log.warning("claiming from %s failed: %s", ",".join(group), exc)
                failed = exc
                continue
            if submit is not None:
                for job in results[-1].jobs:
                    submit(job, sent)
        if failed is not None and not results:
            raise failed
        return self._took(merged(results))

    def wake(self) -> None:
        self.hint.set()

    def wait(self, count: int = 0) -> list[Claimed]:
        """Block until a marker of any of the queues pops (on whichever node), the next
        scheduled job is due, or block_s passes. Claims nothing, whatever `count`: on one
        Redis claim-on-wake saves a round trip by sending the claim behind the blocking pop,
        which a cluster cannot do (a pop and a claim per slot), so the caller's next
        claim() takes the jobs, under a full lease (no pick-up lease to renew)."""
        timeout = self.settings.block_s
        r = self.last
        if r is not None and r.next_due_ms >= 0:
            timeout = min(timeout, max(0.0, (r.next_due_ms - r.now_ms) / 1000))
        if timeout <= 0.001:
            return []
        self._start_waiters()
        self.deadline = time.monotonic() + timeout
        self.armed.set()
        self.blocked.set()
        try:
            self.hint.wait(timeout)
        finally:
            self.armed.clear()
            self.blocked.clear()
        return []

    def _start_waiters(self) -> None:
        if self._waiters or self.closed.is_set():
            return
        keys = Keyspace(self.settings.prefix)
        for group in self._groups:
            waiter = _SlotWaiter(self, [keys.marker(q) for q in group])
            waiter.start()
            self._waiters.append(waiter)

    def close(self) -> None:
        """Stop the waiting threads and close the blocking client."""
        self.closed.set()
        self.armed.set()  # let idle waiters see `closed`
        self.blocking.close()

