"""The worker's defaults: slots from the pool, auto prefetch sized from measured run times."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

import pytest
import redis
from click.testing import CliRunner

from jobq_core import Queue, Settings
from jobq_core.cli.run import PrefetchType
from jobq_core.config import AUTO_PREFETCH, THREAD_SLOTS
from jobq_core.errors import ConfigError
from jobq_core.job import Claimed
from jobq_core.keys import Keyspace
from jobq_core.worker.ledger import AUTO_CAP, AUTO_MAX, Ledger, Running
from tests import tasks
from tests.helpers import worker_thread


def test_default_slots_and_prefetch() -> None:
    s = Settings()
    assert s.prefetch == AUTO_PREFETCH
    assert s.slots == (os.cpu_count() or 1)
    assert s.replace(pool="thread").slots == THREAD_SLOTS
    assert s.replace(concurrency=3).slots == 3
    assert Settings.from_env({"JOBQ_PREFETCH": "auto"}).prefetch == AUTO_PREFETCH
    assert Settings.from_env({"JOBQ_PREFETCH": "7"}).prefetch == 7
    with pytest.raises(ConfigError):
        Settings(prefetch=-2)
    assert PrefetchType().convert("auto", None, None) == AUTO_PREFETCH
    assert PrefetchType().convert("0", None, None) == 0


def test_prefetch_option_refuses_garbage() -> None:
    from jobq_core.cli.app import main

    out = CliRunner().invoke(main, ["worker", "--prefetch", "lots"])
    assert out.exit_code == 2 and "'auto' or a number" in out.output


def _job(i: int) -> Claimed:
    return Claimed(id=str(i), queue="q", token=f"w/{i}", fields={})


def test_auto_prefetch_follows_run_times() -> None:
    ledger = Ledger(Settings(concurrency=2, lease_s=30.0))
    assert ledger.capacity() == 2  # nothing measured yet: no prefetch
    for _ in range(30):
        ledger.ran(0.0002)  # short jobs: claimed in batches
    assert ledger.capacity() == 2 + 2 * AUTO_MAX  # the cap is per free slot
    for _ in range(30):
        ledger.ran(1.0)  # long jobs: none held beyond the slots
    assert ledger.capacity() == 2
    for _ in range(30):
        ledger.ran(0.0002)
    # One slot runs a job far longer than the recent run time: only the other slot counts.
    with ledger.cond:
        ledger.held[("q", "1")] = Running(_job(1), time.monotonic(), slot=object(),  # type: ignore[arg-type]
                                          started=time.monotonic() - 5)
        assert 0 < ledger.prefetch() <= AUTO_MAX  # at most one free slot's worth
        ledger.held[("q", "2")] = Running(_job(2), time.monotonic(), slot=object(),  # type: ignore[arg-type]
                                          started=time.monotonic() - 5)
        assert ledger.prefetch() == 0  # every slot runs a long job
        ledger.held[("q", "3")] = Running(_job(3), time.monotonic())
    assert ledger.all_stuck()  # and a job waits behind them: it goes back
    assert not Ledger(Settings(concurrency=2, prefetch=0)).all_stuck()  # pinned: never


def test_auto_prefetch_is_capped_in_all() -> None:
    ledger = Ledger(Settings(concurrency=32, lease_s=30.0))
    for _ in range(30):
        ledger.ran(0.000001)
    assert ledger.capacity() == 32 + AUTO_CAP


def test_pinned_prefetch_is_what_it_says() -> None:
    ledger = Ledger(Settings(concurrency=2, prefetch=5))
    for _ in range(10):
        ledger.ran(1.0)
    assert ledger.capacity() == 7


@dataclass
class Span:
    worker: str
    task: str
    claimed: int  # ms, Redis time (started_ms: set by the claim)
    began: int  # ms: the end less the run time
    ended: int  # ms, Redis time (finished_ms)


def _spans(r: redis.Redis, keys: Keyspace, ids: Sequence[str]) -> list[Span]:
    spans = []
    for job_id in ids:
        f = r.hgetall(keys.job("default", job_id))
        assert f["state"] == "completed", f
        ended = int(f["finished_ms"])
        spans.append(Span(f["worker"], f["task"], int(f["started_ms"]),
                          ended - int(f["runtime_ms"]), ended))
    return spans


def _waited_behind_long(j: Span, spans: Sequence[Span], slots: int) -> bool:
    """Whether no-op job `j`, while held by its worker before it began, was at some moment
    behind `slots` long jobs of that worker with the other worker idle."""
    longs = [s for s in spans if s.worker == j.worker and s.task.endswith("sleep_for")]
    others = [s for s in spans if s.worker != j.worker]
    # The moments where the count of running long jobs rises: their claims (a long job is
    # started at once: with no measure yet, or one saying jobs are long, nothing is held).
    for t in sorted({s.claimed for s in longs} | {j.claimed}):
        if not j.claimed <= t < j.began:
            continue
        running = sum(1 for s in longs if s.claimed <= t < s.ended)
        other_busy = any(s.claimed <= t < s.ended for s in others)
        if running >= slots and not other_busy:
            return True
    return False


def test_mixed_load_no_short_job_waits_behind_a_long_one(settings: Settings, queue: Queue,
                                                         r: redis.Redis) -> None:
    """10 jobs of 1 s, then 1,000 no-op jobs, two workers with the default pool, slots and
    prefetch: no no-op job is held behind its worker's long jobs while the other is idle,
    and every job runs once."""
    defaults = settings.replace(concurrency=0, prefetch=AUTO_PREFETCH, pool="process")
    long = queue.enqueue_many([(tasks.sleep_for, (1.0,)) for _ in range(10)])
    short = queue.enqueue_many([(tasks.add, (i, 1)) for i in range(1000)])
    keys = Keyspace(settings.prefix)
    with worker_thread(defaults, pool="process") as a, worker_thread(defaults, pool="process"):
        deadline = time.monotonic() + 120
        while r.zcard(keys.completed("default")) < 1010:
            assert time.monotonic() < deadline, "the mixed load did not finish in 120 s"
            time.sleep(0.05)
        slots = a.settings.slots
    spans = _spans(r, keys, [j.id for j in [*long, *short]])
    assert len({s.worker for s in spans}) == 2
    behind = [s for s in spans[10:] if _waited_behind_long(s, spans, slots)]
    assert behind == [], f"{len(behind)} no-op jobs waited behind long ones: {behind[:3]}"
    assert int(r.hget(keys.stats("default"), "completed") or 0) == 1010  # each once
