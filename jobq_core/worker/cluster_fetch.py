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
from dataclasses import replace
from itertools import groupby
from typing import Any

import redis
from redis.crc import key_slot
from redis.exceptions import MovedError

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
    marker hints the fetcher. A marker is state ("there may be work"), not a message: no
    pop may make one vanish unseen. So a marker popped after the main loop stopped waiting
    or while the fetcher closes is put back (an idle peer still sees it; this worker claims
    on its own next round), and so is every marker of the slot after a pop whose outcome
    is unknown (its reply lost, or any error): the pop is never re-sent, as a re-sent pop
    could time out having taken a marker. The loop outlives any error (a waiter that died
    would lose every later wake-up of its slot; ClusterFetcher restarts one anyway)."""

    def __init__(self, fetcher: ClusterFetcher, markers: list[str],
                 owed: set[str] | None = None) -> None:
        super().__init__(name=f"jobq-wait-{markers[0]}", daemon=True)
        self.fetcher = fetcher
        self.markers = markers
        self.owed: set[str] = owed or set()  # markers this waiter must put back

    def run(self) -> None:
        f = self.fetcher
        pause = 0.05
        while True:
            try:
                self._give_back()
                if f.closed.is_set():
                    return
                if f.armed.wait(f.settings.block_s) and not f.closed.is_set():
                    self._pop()
                pause = 0.05
            except Exception as exc:
                if f.closed.is_set() and not self.owed:
                    return
                if isinstance(exc, (JobqError, redis.RedisError)):
                    log.debug("waiting on %s: %s; again in %.1fs", self.markers, exc, pause)
                else:
                    log.exception("waiting on %s failed; again in %.1fs", self.markers, pause)
                if f.closed.is_set():  # one more try to put the markers back, then go
                    self._give_back()
                    return
                f.closed.wait(pause)
                pause = min(pause * 2, f.settings.reconnect_max_s)

    def _pop(self) -> None:
        f = self.fetcher
        cluster: Any = f.blocking
        timeout = max(0.01, f.deadline - time.monotonic())
        try:
            # To the slot's node, sent once: the cluster client retries nothing it was
            # given a target for (a retry of a pop whose reply was lost loses the marker).
            popped = cluster.execute_command("BZPOPMIN", *self.markers, timeout,
                                             target_nodes=cluster.get_node_from_key(
                                                 self.markers[0]))
        except MovedError as exc:  # nothing popped; the slot moved on
            cluster.nodes_manager.move_slot(exc)
            raise
        except redis.ResponseError:  # refused: nothing popped
            raise
        except BaseException:
            self.owed.update(self.markers)  # it may have popped one
            raise
        if popped and not f.hinted(str(popped[0])):
            self.owed.add(str(popped[0]))

    def _give_back(self) -> None:
        # The fetcher's command client, not the blocking one: close() closes that.
        while self.owed:
            marker = next(iter(self.owed))
            self.fetcher.scripts.client.zadd(marker, {"m": 0})
            self.owed.discard(marker)


class ClusterFetcher(Fetcher):
    """Fetcher for a cluster client: per-slot claims and one waiting thread per slot."""

    def __init__(self, settings: Settings, queues: Sequence[str], worker_id: str,
                 scripts: Scripts, blocking: redis.Redis) -> None:
        # Not pinned: its waits go through _SlotWaiter, on a cluster client (no one pool).
        super().__init__(settings, queues, worker_id, scripts, blocking, pin=False)
        self._groups = slot_groups(self.queues)
        self.hint = threading.Event()  # a marker popped: there may be work
        self.armed = threading.Event()  # set while the main loop waits for a hint
        self.closed = threading.Event()
        self.deadline = 0.0  # monotonic end of the current wait
        keys = Keyspace(self.settings.prefix)
        self._slot_markers = [[keys.marker(q) for q in g] for g in self._groups]
        self._waiters: list[_SlotWaiter] = []
        # Markers popped while the main loop waited: hints for its next claim, which puts
        # back those of the slots it does not claim from (claim.lua sets a marker again
        # where work is left; a slot not claimed would leave its marker lost).
        self._popped: set[str] = set()
        self._popped_lock = threading.Lock()
        # Each slot's last claim result and when it was read (monotonic): its next due time
        # still counts in a round that does not claim that slot.
        self._seen: dict[int, tuple[ClaimResult, float]] = {}

    def claim(self, count: int, submit: Submit | None = None) -> list[Claimed]:
        """Lease up to `count` jobs, one claim call per slot in queue order; with `submit`,
        each call's jobs are handed to it (with that call's send time) as soon as it
        returns, not after the later slots' calls. After a wait that markers ended, only
        the slots whose markers popped are claimed (still in queue order): a job on the
        last queue's node costs one claim call, not one per slot; a slot not claimed keeps
        its marker (never popped), so its work wakes the next wait at once. A slot whose
        call fails is skipped (logged), so one unreachable node does not starve the queues
        of the others; raises (RedisUnavailable, ...) only when no slot answered."""
        # Cleared before claiming: a marker popped from now on is a hint for the next wait.
        self.hint.clear()
        results: list[ClaimResult] = []
        failed: Exception | None = None
        claimed_from: list[int] = []
        for i in self._slots_to_claim():
            left = count - sum(len(r.jobs) for r in results)
            if left <= 0:
                break
            sent = time.monotonic()
            try:
                with translated(self.settings.redis_url):
                    results.append(self.scripts.claim(self._groups[i], left, self.worker_id,
                                                      request=self.request(i)))
                self.answered(i)
            except (JobqError, redis.RedisError) as exc:
                log.warning("claiming from %s failed: %s", ",".join(self._groups[i]), exc)
                failed = exc
                continue
            claimed_from.append(i)
            if submit is not None:
                results[-1] = replace(results[-1],
                                      jobs=self.hand_over(results[-1], submit, sent))
            self._seen[i] = (results[-1], time.monotonic())
        if self._popped:
            self._give_back({m for i in claimed_from for m in self._slot_markers[i]})
        if failed is not None and not results:
            raise failed
        return self._took(merged(results + self._unclaimed_dues(claimed_from)))

    def _slots_to_claim(self) -> list[int]:
        """The slots whose markers popped during the last wait, in queue order; every slot
        when none did (the first claim, a wait that timed out or was woken, a claim after a
        job ended). The popped markers stay in _popped until the claim gives back those of
        the slots it did not reach."""
        with self._popped_lock:
            popped = set(self._popped)
        hinted = [i for i, markers in enumerate(self._slot_markers) if popped & set(markers)]
        return hinted or list(range(len(self._groups)))

    def _unclaimed_dues(self, claimed: list[int]) -> list[ClaimResult]:
        """The next due time each slot not claimed this round last reported, as if read now
        on its node's clock (its clock moved on as much as ours since): a claim of some
        slots must not forget when another slot's scheduled job is due (only a claim there
        promotes it; no marker wakes the wait for it)."""
        now = time.monotonic()
        return [ClaimResult([], [], r.next_due_ms, r.now_ms + int((now - at) * 1000))
                for i, (r, at) in self._seen.items() if i not in claimed and r.next_due_ms >= 0]

    def hinted(self, marker: str) -> bool:
        """Take a marker a waiter popped as a hint for the main loop's next claim; False
        when the main loop no longer waits (the waiter puts the marker back)."""
        with self._popped_lock:
            if not self.armed.is_set() or self.closed.is_set():
                return False
            self._popped.add(marker)
        self.hint.set()
        return True

    def _give_back(self, claimed: set[str]) -> None:
        """Put back the popped markers of the slots the last claim did not run on."""
        with self._popped_lock:
            popped, self._popped = self._popped - claimed, set()
        for marker in popped:
            try:
                with translated(self.settings.redis_url):
                    self.scripts.client.zadd(marker, {"m": 0})
            except (JobqError, redis.RedisError) as exc:
                log.debug("putting back %s: %s; after the next claim", marker, exc)
                with self._popped_lock:
                    self._popped.add(marker)

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
            with self._popped_lock:  # a marker popped from now on is put back (hinted)
                self.armed.clear()
            self.blocked.clear()
        return []

    def _start_waiters(self) -> None:
        """One waiter per slot, started again if it ended (it outlives errors, but a
        waiter that is gone must not take its slot's wake-ups with it)."""
        if self.closed.is_set():
            return
        if len(self._waiters) == len(self._slot_markers) and \
                all(w.is_alive() for w in self._waiters):
            return
        for i, markers in enumerate(self._slot_markers):
            old = self._waiters[i] if i < len(self._waiters) else None
            if old is not None and old.is_alive():
                continue
            if old is not None:
                log.warning("the wait on %s had ended; started again", ",".join(markers))
            waiter = _SlotWaiter(self, markers, old.owed if old else None)
            waiter.start()
            if old is None:
                self._waiters.append(waiter)
            else:
                self._waiters[i] = waiter

    def close(self) -> None:
        """Stop the waiting threads and close the blocking client. A wait in progress is
        cut short (a marker it popped or may have popped is put back before close
        returns, within the socket timeout)."""
        self.closed.set()
        self.armed.set()  # let idle waiters see `closed`
        self.blocking.close()
        for waiter in self._waiters:
            waiter.join(self.settings.socket_timeout_s)

