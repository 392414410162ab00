"""Admin actions for operators (dashboard, CLI): cancel, requeue, purge, pause.

Bulk actions work on a snapshot: the highest score present when the action starts bounds
it, and it proceeds in bounded batches, yielding progress, so it never runs one giant
script and never chases jobs that arrive while it runs.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import redis

from .config import Settings
from .connection import connect, redis_errors
from .errors import ConfigError, InvalidState
from .job import PURGE_STATES, REQUEUE_STATES
from .keys import Keyspace, check_queue_name, require_job_id
from .queue import Queue
from .scripts import Scripts


@dataclass(frozen=True)
class Progress:
    done: int  # jobs acted on so far
    left: int  # jobs of the snapshot still to do


class Admin:
    def __init__(self, settings: Settings | None = None, *, url: str | None = None,
                 redis: redis.Redis | None = None) -> None:
        base = settings or Settings.from_env()
        self.settings = base.replace(redis_url=url) if url else base
        self.client = redis if redis is not None else connect(self.settings)
        self.keys = Keyspace(self.settings.prefix)
        self.scripts = Scripts(self.client, self.settings)

    def queue(self, name: str) -> Queue:
        return Queue(name, settings=self.settings, redis=self.client)

    def cancel(self, queue: str, job_id: str) -> None:
        """Cancel a pending or scheduled job; raises JobNotFound or InvalidState."""
        check_queue_name(queue)
        self._translated_cancel(queue, require_job_id(job_id))

    @redis_errors
    def _translated_cancel(self, queue: str, job_id: str) -> None:
        self.scripts.cancel(queue, job_id)

    @redis_errors
    def requeue(self, queue: str, state: str, ids: Sequence[str]) -> int:
        """Move the given jobs of `state` back to pending; returns how many moved."""
        self._check(queue, state, REQUEUE_STATES, "requeue")
        ids = [require_job_id(i) for i in ids]
        moved = 0
        for i in range(0, len(ids), 500):
            moved += self.scripts.requeue(queue, state, ids[i:i + 500])[0]
        return moved

    @redis_errors
    def purge(self, queue: str, state: str, ids: Sequence[str]) -> int:
        """Delete the given jobs of `state`; returns how many were deleted."""
        self._check(queue, state, PURGE_STATES, "purge")
        ids = [require_job_id(i) for i in ids]
        deleted = 0
        for i in range(0, len(ids), 500):
            deleted += self.scripts.purge(queue, state, ids[i:i + 500])[0]
        return deleted

    def requeue_all(self, queue: str, state: str, batch: int = 500) -> Iterator[Progress]:
        """Requeue every job of `state` present now, in batches; yields progress."""
        self._check(queue, state, REQUEUE_STATES, "requeue")
        return self._bulk(self.scripts.requeue, queue, state, batch)

    def purge_all(self, queue: str, state: str, batch: int = 500) -> Iterator[Progress]:
        """Delete every job of `state` present now, in batches; yields progress."""
        self._check(queue, state, PURGE_STATES, "purge")
        return self._bulk(self.scripts.purge, queue, state, batch)

    def _bulk(self, action: object, queue: str, state: str, batch: int) -> Iterator[Progress]:
        batch = max(1, min(int(batch), 5000))
        cutoff = self._snapshot(queue, state)
        done = 0
        if cutoff is None:
            yield Progress(0, 0)
            return
        while True:
            moved, left = self._step(action, queue, state, cutoff, batch)
            done += moved
            yield Progress(done, left)
            if left == 0 or moved == 0:
                return

    @redis_errors
    def _snapshot(self, queue: str, state: str) -> float | None:
        top = self.client.zrevrange(self.keys.state_set(queue, state), 0, 0, withscores=True)
        return float(top[0][1]) if top else None

    @redis_errors
    def _step(self, action: object, queue: str, state: str, cutoff: float,
              batch: int) -> tuple[int, int]:
        result: tuple[int, int] = action(queue, state, upto=cutoff, batch=batch)  # type: ignore[operator]
        return result

    def _check(self, queue: str, state: str, allowed: frozenset[str], verb: str) -> None:
        check_queue_name(queue)
        if state not in allowed:
            raise InvalidState(f"cannot {verb} {state} jobs; allowed: {', '.join(sorted(allowed))}")

    @redis_errors
    def prune_workers(self) -> int:
        """Forget registry entries of workers whose heartbeat stopped; returns how many."""
        ids = [str(w) for w in self.client.zrange(self.keys.workers(), 0, 999)]
        pipe = self.client.pipeline(transaction=False)
        for wid in ids:
            pipe.exists(self.keys.worker(wid))
        gone = [wid for wid, n in zip(ids, pipe.execute(), strict=True) if not n]
        if gone:
            self.client.zrem(self.keys.workers(), *gone)
        return len(gone)

    def pause(self, queue: str) -> None:
        self.queue(queue).pause()

    def resume(self, queue: str) -> None:
        self.queue(queue).resume()


__all__ = ["Admin", "ConfigError", "Progress"]
