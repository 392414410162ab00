"""Job data written into Redis by someone other than jobq (a bug in another client, a hand
edit, an attacker with write access): each bad job ends in dead with a reason, the worker
never dies, and the next good job runs. The plain cases (bad JSON, missing hash, wrong key
type) are in test_worker.py; these are the ones the first-day review of 2026-12-06 found."""

from __future__ import annotations

import pytest
import redis

from jobq_core import Queue, Settings, Worker, task
from jobq_core.keys import Keyspace
from tests import tasks
from tests.helpers import drain

pytestmark = pytest.mark.cluster  # also on the Redis Cluster (tests/conftest.py)


def _plant(r: redis.Redis, queue: Queue, settings: Settings, **fields: str | bytes) -> str:
    """A job of tests.tasks.add whose stored fields are then overwritten with `fields`."""
    job = queue.enqueue(tasks.add, 1, 1)
    r.hset(Keyspace(settings.prefix).job("default", job.id), mapping=fields)
    return job.id


@pytest.mark.parametrize("pool", ["thread", "process"])
def test_bytes_that_are_not_utf8_go_dead_and_the_worker_carries_on(
        settings: Settings, queue: Queue, r: redis.Redis, pool: str) -> None:
    # The claim's reply carries the job's fields: with strict decoding one byte 0xff in
    # them raised UnicodeDecodeError out of the worker's main loop, and every worker that
    # claimed the job died with it.
    bad = _plant(r, queue, settings, args=b"[\xff\xfe]")
    good = queue.enqueue(tasks.add, 2, 3)
    drain(settings, pool=pool)
    assert good.result(timeout_s=1) == 5
    job = queue.job(bad)
    assert job is not None and job.status == "dead" and "malformed payload" in job.reason


@pytest.mark.parametrize("pool", ["thread", "process"])
@pytest.mark.parametrize("args", ["[" * 100_000 + "]" * 100_000, "[" + "9" * 5000 + "]"])
def test_json_python_cannot_decode_is_a_malformed_payload(
        settings: Settings, queue: Queue, r: redis.Redis, pool: str, args: str) -> None:
    # Nested past the recursion limit (RecursionError) or an integer past Python's 4300
    # digits (ValueError): both escaped decode_call, the job's child died and the job was
    # retried as a crash instead of going to dead at once.
    bad = _plant(r, queue, settings, args=args)
    drain(settings, pool=pool)
    job = queue.job(bad)
    assert job is not None and job.status == "dead", (job and job.status, job and job.reason)
    assert "malformed payload" in job.reason
    assert job.fields.get("deliveries") == "1"


@pytest.mark.parametrize("meta", ["[" * 100_000 + "]" * 100_000, '{"n": ' + "9" * 5000 + "}"])
def test_meta_python_cannot_decode_reads_as_empty(settings: Settings, queue: Queue,
                                                  r: redis.Redis, meta: str) -> None:
    # current_job().meta of a bad stored meta is empty (runner._context); these two
    # escaped its except and crashed the job's child instead.
    planted = _plant(r, queue, settings, meta=meta)
    drain(settings, pool="process")
    job = queue.job(planted)
    assert job is not None and job.status == "completed", job and job.reason


def test_hand_backs_of_an_unknown_task_warn_once(settings: Settings, queue: Queue,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    # Not hostile, but the same first-day review: each job of a task no live worker knows
    # logged a warning at every hand-back (every 5 s for the 120 s grace), three quarters of
    # what `make run` printed. Now one warning per queue and task a minute, the rest debug.
    import logging

    for n in range(5):
        queue.enqueue("tests.tasks.nobody_knows_this", n)
    with caplog.at_level(logging.DEBUG, logger="jobq.worker"):
        drain(settings, burst_wait_s=0)  # hands the five back once each, then exits
    lines = [r for r in caplog.records if "nor advertised" in r.getMessage()]
    assert len(lines) == 5, caplog.text
    assert [r.levelno for r in lines].count(logging.WARNING) == 1
    assert queue.count("scheduled") == 5


# What os.fsdecode (os.listdir, sys.argv, os.environ) gives for a name that is not UTF-8: a
# str with a lone surrogate, which UTF-8 cannot encode.
NAME = "file-\udcff.txt"


@task(name="tests.hostile.surrogate_result")
def surrogate_result() -> str:
    return NAME


@task(name="tests.hostile.surrogate_error", max_retries=0)
def surrogate_error() -> None:
    raise ValueError(f"cannot open {NAME}")


@pytest.mark.parametrize("pool", ["thread", "process"])
def test_lone_surrogates_in_results_errors_and_args_are_stored(
        settings: Settings, queue: Queue, pool: str) -> None:
    # The outcome's write raised UnicodeEncodeError ("surrogates not allowed"): the job
    # stayed processing until its lease ran out and was run again, and so was every good job
    # settled in the same batch. Enqueueing such an argument raised it at the producer.
    echoed = queue.enqueue(tasks.echo, NAME)
    result = queue.enqueue(surrogate_result)
    error = queue.enqueue(surrogate_error)
    good = queue.enqueue(tasks.add, 2, 3)
    Worker(["default"], settings.replace(prefetch=8), pool=pool,
           imports=["tests.tasks", __name__]).work(burst=True)
    assert echoed.result(timeout_s=1) == {"args": [NAME], "kwargs": {}}  # read back the same
    assert result.result(timeout_s=1) == NAME
    assert good.result(timeout_s=1) == 5
    error.refresh()
    assert error.status == "failed" and "cannot open file-" in error.error
    assert [j.fields["deliveries"] for j in (echoed, result, error, good)] == ["1"] * 4
