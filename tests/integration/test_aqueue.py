"""AsyncQueue: Queue's producer API awaited on redis.asyncio, with group commit."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Sequence
from typing import Any

import pytest
import redis

from jobq_core import AsyncQueue, JobFailed, Queue, RedisUnavailable, Settings, Timeout
from jobq_core.aqueue import Written
from jobq_core.job import JobSpec
from tests import tasks
from tests.helpers import drain, run_async, worker_thread

pytestmark = pytest.mark.cluster  # also on the Redis Cluster (tests/conftest.py)


def test_same_enqueue_options_as_queue() -> None:
    for name in ("enqueue", "enqueue_call", "enqueue_many", "job"):
        assert inspect.signature(getattr(AsyncQueue, name)).parameters.keys() == \
            inspect.signature(getattr(Queue, name)).parameters.keys(), name


def test_enqueue_then_await_the_result(settings: Settings) -> None:
    async def main() -> tuple[Any, ...]:
        aq = AsyncQueue("default", settings=settings)
        a = await aq.enqueue(tasks.add, 1, 2)
        b = await aq.enqueue_call(tasks.async_add, (3, 4), priority=5, meta={"k": 1})
        many = await aq.enqueue_many([(tasks.add, (i, i)) for i in range(5)])
        assert a.status == "pending" and a.created
        found = await aq.job(b.id)
        assert found is not None and found.meta == {"k": 1}
        assert await aq.job("nope") is None
        with pytest.raises(Timeout):
            await a.result(timeout_s=0.1)  # no worker yet
        with worker_thread(settings):
            results = await asyncio.gather(a.result(timeout_s=10), b.result(timeout_s=10),
                                           *(j.result(timeout_s=10) for j in many))
        await a.refresh()
        await aq.aclose()
        return a.status, results

    status, results = run_async(main)
    assert status == "completed"
    assert results == [3, 7, 0, 2, 4, 6, 8]


def test_failed_job_raises_and_task_aenqueue(settings: Settings,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    for var, value in (("JOBQ_REDIS_URL", settings.redis_url), ("JOBQ_PREFIX", settings.prefix)):
        monkeypatch.setenv(var, value)

    async def main() -> None:
        job = await tasks.async_boom.aenqueue("told you")
        assert job.queue.settings.prefix == settings.prefix
        with worker_thread(settings), pytest.raises(JobFailed, match="told you"):
            await job.result(timeout_s=10)

    run_async(main)


def test_a_lone_caller_is_written_at_once(settings: Settings) -> None:
    calls = _recorded_sends(settings)

    async def main() -> None:
        aq = calls.queue
        for i in range(3):
            await aq.enqueue(tasks.add, i, i)  # one after another: no one to wait for

    run_async(main)
    assert [len(batch) for batch in calls.batches] == [1, 1, 1]


def test_concurrent_enqueues_share_script_calls(settings: Settings, r: redis.Redis) -> None:
    calls = _recorded_sends(settings)

    async def main() -> list[str]:
        jobs = await asyncio.gather(*(calls.queue.enqueue(tasks.add, i, 1) for i in range(1000)))
        return [j.id for j in jobs]

    ids = run_async(main)
    assert len(set(ids)) == 1000  # each caller its own job
    stored = Queue("default", settings=settings)
    assert stored.count("pending") == 1000
    assert all(stored.job(i) is not None for i in ids[::50])
    assert sum(len(b) for b in calls.batches) == 1000
    assert len(calls.batches) < 10  # coalesced, not one script call per caller


@pytest.mark.single_only("injects the dropped link through the client's one connection pool")
def test_a_failed_write_fails_only_the_callers_of_its_batch(settings: Settings) -> None:
    calls = _recorded_sends(settings, fail_call=2)

    async def main() -> list[Any]:
        async def one(i: int) -> Any:
            wave = i % 4  # wave k arrives while write k is in flight: it is write k + 1
            if wave:
                await calls.sending(wave)
            return i, await calls.queue.enqueue(tasks.add, i, 1)

        return await asyncio.gather(*(one(i) for i in range(1000)), return_exceptions=True)

    outcomes = run_async(main)
    assert [len(b) for b in calls.batches] == [250] * 4
    failed_batch = {spec.id for spec in calls.batches[1]}
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(errors) == 250 and all(isinstance(e, RedisUnavailable) for e in errors)
    ok = [o for o in outcomes if not isinstance(o, BaseException)]
    assert all(i % 4 != 1 for i, _ in ok)  # the second wave, and only it, failed
    stored = Queue("default", settings=settings)
    assert stored.count("pending") == 750
    ok_ids = {job.id for _, job in ok}
    assert len(ok_ids) == 750 and not ok_ids & failed_batch
    assert all(stored.job(i) is None for i in list(failed_batch)[::25])
    assert all(stored.job(i) is not None for i in list(ok_ids)[::25])


def test_a_cancelled_caller_leaves_its_batch_to_be_written(settings: Settings) -> None:
    # A caller cancelled while its job waits for the write: the others get their jobs and
    # the cancelled one's job is stored all the same (it was in the batch), with no
    # "exception never retrieved" for the cancelled call.
    async def main() -> tuple[list[str], bool]:
        aq = AsyncQueue("default", settings=settings)
        calls = [asyncio.ensure_future(aq.enqueue(tasks.add, i, 1)) for i in range(6)]
        await asyncio.sleep(0)  # every call has queued its job; the write has not begun
        calls[0].cancel()
        done = await asyncio.gather(*calls, return_exceptions=True)
        await aq.aclose()
        return ([j.id for j in done[1:] if not isinstance(j, BaseException)],
                isinstance(done[0], asyncio.CancelledError))

    ids, cancelled = run_async(main)
    assert cancelled and len(ids) == 5
    stored = Queue("default", settings=settings)
    assert stored.count("pending") == 6
    assert all(stored.job(i) is not None for i in ids)


def test_eager_async_queue_runs_async_tasks(settings: Settings) -> None:
    eager = settings.replace(redis_url="redis://127.0.0.1:1/0", eager=True)

    async def main() -> Any:
        aq = AsyncQueue("default", settings=eager)
        job = await aq.enqueue(tasks.async_add, 20, 22)
        assert job.status == "completed"
        return await job.result()

    assert run_async(main) == 42


def test_dependencies_through_the_async_queue(settings: Settings) -> None:
    async def main() -> Any:
        aq = AsyncQueue("default", settings=settings)
        parent = await aq.enqueue(tasks.add, 1, 1)
        child = await aq.enqueue_call(tasks.add, (2, 2), depends_on=parent)
        assert child.status == "scheduled"
        drain(settings)
        return await child.result(timeout_s=5)

    assert run_async(main) == 4


class _Sends:
    def __init__(self, queue: AsyncQueue) -> None:
        self.queue = queue
        self.batches: list[list[JobSpec]] = []
        self._sent: dict[int, asyncio.Event] = {}

    def started(self) -> None:
        self._event(len(self.batches)).set()

    async def sending(self, n: int) -> None:
        """Wait until script call number `n` has begun."""
        await self._event(n).wait()

    def _event(self, n: int) -> asyncio.Event:
        return self._sent.setdefault(n, asyncio.Event())


def _recorded_sends(settings: Settings, fail_call: int = 0) -> _Sends:
    """An AsyncQueue whose script calls are recorded; call number `fail_call` (1-based)
    meets a dropped connection, as if Redis went away during that write."""
    aq = AsyncQueue("default", settings=settings)
    rec = _Sends(aq)
    real = aq._send

    async def send(specs: Sequence[JobSpec]) -> Sequence[Written]:
        rec.batches.append(list(specs))
        rec.started()
        if len(rec.batches) == fail_call:
            # Fails inside the translated block, as a real dropped connection would.
            aq.client.connection_pool.reset()
            raise_in = aq.client.evalsha

            async def broken(*args: Any) -> Any:
                aq.client.evalsha = raise_in  # type: ignore[method-assign]
                await asyncio.sleep(0.05)  # the round trip in which the link drops
                raise redis.ConnectionError("Connection reset by peer (injected)")

            aq.client.evalsha = broken  # type: ignore[method-assign]
        return await real(specs)

    aq._send = send  # type: ignore[method-assign]
    return rec
