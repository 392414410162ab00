"""Claim jobs (one Lua call for all queues), block until there may be work, hand jobs back
(recording outcomes: recorder.py)."""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import redis

from ..config import Settings
from ..connection import is_cluster, translated
from ..errors import JobqError, RedisUnavailable
from ..job import Claimed
from ..keys import Keyspace
from ..nap import nap
from ..replies import ClaimResult
from ..scripts import Code, Scripts
from ..wire import Pinned

log = logging.getLogger("jobq.worker")
# Redis times a blocking wait out on its next tick (hz 10 by default: up to 100 ms late on
# an idle server). A wait for a scheduled job's due time ends this much before it, and the
# rest is slept here: the job starts within a few ms of its due time.
SERVER_TICK_S = 0.1
# Jobs handed back per release.lua call: one call takes auto prefetch's most (512 plus the
# slots); a bigger batch is split so that no call holds the server more than a few ms.
RELEASE_CHUNK = 1000
# A hand-back's log line names this many job ids at most (then "and N more").
LOGGED_IDS = 5
# Takes a claimed job and the monotonic time its claim was sent (Pool.submit).
Submit = Callable[[Claimed, float], None]


@dataclass
class LastClaim:
    """The reply of a worker's last claim and when it was read (monotonic): what it says
    about scheduled jobs (Fetcher.due_in). A NodeFetcher's direct and routed paths share one."""

    result: ClaimResult | None = None
    read_at: float = 0.0


class Fetcher:
    """Claims for one worker and waits on the queues' markers when there is nothing to do."""

    def __init__(self, settings: Settings, queues: Sequence[str], worker_id: str,
                 scripts: Scripts, blocking: redis.Redis, pin: bool = True) -> None:
        self.settings = settings
        self.queues = list(queues)
        self.worker_id = worker_id
        self.scripts = scripts
        self.blocking = blocking
        # The claims on wake go out on one connection of `blocking` kept for them (with
        # `pin`: the client is this fetcher's alone, closed with it; a cluster client has no
        # one pool): the pool's get and release around each (a poll, a lock, metrics
        # bookkeeping) came between the reply and the job's hand-off.
        self.pinned = Pinned(blocking) if pin and not is_cluster(blocking) else None
        keys = Keyspace(settings.prefix)
        self._markers = [keys.marker(q) for q in self.queues]
        self.seen = LastClaim()
        self._unanswered: dict[int, str] = {}  # claim call -> request id sent, no reply read
        # Set while wait() blocks on the markers, cleared when it returns. Tests and embedders
        # wait on it to know that a job enqueued from now on can only reach this worker
        # through a marker (the worker's non-blocking claim has already run). One Event.set
        # and clear per blocking wait: no cost on the claim path.
        self.blocked = threading.Event()

    def claim(self, count: int, submit: Submit | None = None) -> list[Claimed]:
        """Lease up to `count` jobs; raises RedisUnavailable. With `submit`, each job is
        also handed to it with the monotonic time its claim was sent (its lease began no
        earlier) as soon as that claim's reply is read."""
        sent = time.monotonic()
        with translated(self.settings.redis_url):
            result = self.scripts.claim(self.queues, count, self.worker_id,
                                        request=self.request(0))
        self.answered(0)
        return self._took(result, submit, sent)

    @property
    def markers(self) -> tuple[str, ...]:
        """The marker keys a wait blocks on, one per queue in the order of `queues` (an
        enqueue sets its queue's)."""
        return tuple(self._markers)

    @property
    def last(self) -> ClaimResult | None:
        """The last claim's reply (None before the first)."""
        return self.seen.result

    def request(self, call: int) -> str:
        """The request id for claim call `call` (a slot's, in a cluster): that of the last
        such call while it is unanswered. A claim that raised may have leased jobs (its
        reply lost); sent again under its id it returns them (claim.lua) instead of leaving
        them leased to nobody until reaped, each counted as a lost lease."""
        return self.requested(call)[0]

    def requested(self, call: int) -> tuple[str, bool]:
        """request(call) and whether that id is new (made by this call: no claim sent under
        it is waiting for its reply). A claim sent with a new id once, never retried
        (wait()), need not look for a claim it repeats. One call, so the answer cannot be
        read after the id is registered (new() then says False for a new id)."""
        rid = self._unanswered.get(call)
        if rid is not None:
            return rid, False
        rid = self._unanswered[call] = self.scripts.request_id()
        return rid, True

    def answered(self, call: int) -> None:
        """The reply of claim call `call` was read: its next claim is a new request."""
        self._unanswered.pop(call, None)

    def took(self, result: ClaimResult) -> list[Claimed]:
        """Take in the reply of a claim made elsewhere for this worker (a child's wait:
        child_wait.py) as if this fetcher had read it: log its notes and keep it as the last
        claim (last, due_in, due_within). Returns its jobs; submits nothing, hands nothing
        back, and leaves the request ids alone (see answered)."""
        return self._took(result)

    def _took(self, result: ClaimResult, submit: Submit | None = None,
              sent: float = 0.0) -> list[Claimed]:
        for note in result.notes:
            log.warning("%s", note)
        self.seen.result, self.seen.read_at = result, time.monotonic()
        return result.jobs if submit is None else self.hand_over(result, submit, sent)

    def hand_over(self, result: ClaimResult, submit: Submit, sent: float) -> list[Claimed]:
        """Submit the jobs of `result`, a claim sent at `sent` (monotonic), with when their
        leases began as the pool counts them (lease_s from then): `sent` for a new claim
        (Redis leased them no earlier). A re-sent claim answers with the jobs its lost send
        leased, whose leases may be nearly spent (or a claim on wake's pick-up leases):
        they end no earlier than ClaimResult.lease_left_ms after `sent`. Those are handed
        back unstarted when the next heartbeat could not renew them before the pool would
        have to stop them (Settings.fence_after_s): by then they may be reaped and run
        elsewhere. Returns the jobs submitted."""
        s = self.settings
        leased_at = sent
        if result.lease_left_ms is not None:
            # Less a millisecond: Redis counts the record's TTL in whole ones.
            leased_at = sent + (result.lease_left_ms - 1) / 1000 - s.lease_s
            if time.monotonic() > leased_at + s.fence_after_s - s.heartbeat_s:
                log.warning("a re-sent claim returned %d job(s) with %.1fs of lease left; "
                            "handing them back unstarted", len(result.jobs),
                            result.lease_left_ms / 1000)
                self.hand_back_many(result.jobs)
                return []
        for job in result.jobs:
            submit(job, leased_at)
        return result.jobs

    def hand_back_many(self, jobs: Sequence[Claimed], client: redis.Redis | None = None) -> None:
        """Give jobs this worker holds back to their queues, unstarted or unfinished, in one
        release.lua call per queue (per RELEASE_CHUNK jobs), not a round trip each. Each job
        as alone: refused when its lease is no longer held, left to the lease when Redis
        fails. Logged as one line per call and outcome, whatever the number of jobs.
        `client`: another than the fetcher's (the stopping worker's, with a short timeout)."""
        by_queue: dict[str, list[Claimed]] = defaultdict(list)
        for job in jobs:
            by_queue[job.queue].append(job)
        for queue, held in by_queue.items():
            for start in range(0, len(held), RELEASE_CHUNK):
                self._release(queue, held[start:start + RELEASE_CHUNK], client)

    def _release(self, queue: str, jobs: Sequence[Claimed], client: redis.Redis | None) -> None:
        try:
            with translated(self.settings.redis_url):
                codes = self.scripts.release_many(queue, jobs, client)
        except (JobqError, redis.RedisError) as exc:
            log.warning("could not hand back %s (%s); the leases will bring them back",
                        _jobs(queue, [j.id for j in jobs]), exc)
            return
        for code, what in ((1, "handed back %s"),
                           (Code.LEASE_NOT_HELD, "could not hand back %s: this worker no "
                                                 "longer holds the lease (it runs elsewhere)"),
                           (Code.MISSING, "could not hand back %s: gone (purged?)")):
            ids = [j.id for j, c in zip(jobs, codes, strict=True) if c == code]
            if ids:
                log.warning(what, _jobs(queue, ids))

    def due_within(self, seconds: float) -> bool:
        """Whether a scheduled job (of the last claim's view) is due within `seconds`."""
        r = self.last
        return r is not None and r.next_due_ms >= 0 and r.next_due_ms - r.now_ms <= seconds * 1000

    def close(self) -> None:
        self.blocking.close()

    def due_in(self) -> float | None:
        """Seconds from now until the earliest scheduled job of the last claim's view is due
        (negative: overdue); None when it saw none."""
        r = self.last
        if r is None or r.next_due_ms < 0:
            return None
        return (r.next_due_ms - r.now_ms) / 1000 - (time.monotonic() - self.seen.read_at)

    def wake(self) -> None:
        """Best effort: end a blocking wait at once (by setting the markers it waits on)."""
        try:
            with translated(self.settings.redis_url):
                self.scripts.client.zadd(self._markers[0], {"m": 0})
        except RedisUnavailable:
            pass

    def wait_timeout(self, count: int = 0) -> float | None:
        """How long wait(count) blocks on the markers; None: it sleeps to the next scheduled
        job's due time instead (the last SERVER_TICK_S of it) and returns."""
        timeout = self.settings.block_s
        if count:
            # The claim's pick-up lease is counted (by the caller) from the wait's start, so
            # a claim at the end of a long wait leaves less of it for the renewal.
            timeout = min(timeout, self.settings.pickup_wait_s)
        due_in = self.due_in()
        if due_in is not None and due_in < timeout + SERVER_TICK_S:
            if due_in <= SERVER_TICK_S:
                return None
            timeout = due_in - SERVER_TICK_S
        return timeout

    def wait(self, count: int = 0) -> list[Claimed]:
        """Block until a marker says there may be work, the next scheduled job is due,
        or the wait times out; with `count`, then claim up to that many jobs in the same
        round trip (Scripts.wait_and_claim, under a pick-up lease of Settings.pickup_s), so
        a job enqueued for an idle worker starts without a second one. Raises
        RedisUnavailable.

        Jobs claimed this way were leased when the wait ended, which may be long after it
        began if this process was stopped or cut off meanwhile: the caller must check how
        old the reply is before starting them (Worker._wait_and_take).

        The claim goes out under the request id of claim call 0, as claim()'s: when its
        reply is lost (raised), the worker's next claim() re-sends it and hands its jobs
        back (their pick-up leases are too short to start them on), instead of leaving them
        leased to nobody until reaped, each counted as a lost lease."""
        timeout = self.wait_timeout(count)
        if timeout is None:
            # The last stretch to the due time, slept here; then the caller claims.
            # nap, not time.sleep: see jobq_core/nap.py.
            nap(self.due_in() or 0.0)
            return []
        self.blocked.set()
        try:
            with translated(self.settings.redis_url):
                if not count:
                    self.blocking.bzpopmin(self._markers, timeout=timeout)
                    return []
                rid, new = self.requested(0)
                result = self.scripts.wait_and_claim(self._markers, timeout, self.queues,
                                                     count, self.worker_id, self.blocking,
                                                     int(self.settings.pickup_s * 1000),
                                                     rid, new, self.pinned)
            if result is not None:
                # None: the server had lost the script, nothing ran; a request whose reply
                # was lost before stays unanswered, so the next claim still re-sends it.
                self.answered(0)
        finally:
            self.blocked.clear()
        if result is not None and result.lease_left_ms is not None:
            # It re-sent a claim whose reply was lost (claim() re-sends first, so only if
            # that failed too): those leases are not the pick-up leases the caller times.
            self.hand_back_many(self._took(result))
            return []
        return [] if result is None else self._took(result)


def _jobs(queue: str, ids: Sequence[str]) -> str:
    """`ids` of `queue` for a log line, the first LOGGED_IDS of them."""
    shown = ", ".join(ids[:LOGGED_IDS])
    more = f" and {len(ids) - LOGGED_IDS} more" if len(ids) > LOGGED_IDS else ""
    return f"job {shown}" if len(ids) == 1 else f"{len(ids)} jobs of {queue!r}: {shown}{more}"
