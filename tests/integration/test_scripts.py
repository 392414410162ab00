"""State transitions run straight through the Lua scripts (jobq_core/scripts.py, lua/)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis

from jobq_core import Queue, Settings
from jobq_core.keys import Keyspace
from jobq_core.scripts import Scripts
from tests import tasks
from tests.helpers import drain


def test_attempt_log_is_retained_like_its_job(settings: Settings, queue: Queue,
                                              r: redis.Redis, tmp_path: Path) -> None:
    keys = Keyspace(settings.prefix)
    scripts = Scripts(queue.client, settings)
    # Retried, then completed.
    done = queue.enqueue_call(tasks.fail_until, args=(str(tmp_path / "n"), 1), result_ttl_s=100)
    # Retried, then completed with no retention at all.
    gone = queue.enqueue_call(tasks.fail_until, args=(str(tmp_path / "m"), 1), result_ttl_s=0)
    drain(settings)
    assert done.refresh().status == "completed"
    assert 0 < r.ttl(keys.attempts("default", done.id)) <= 100
    assert not r.exists(keys.job("default", gone.id), keys.attempts("default", gone.id))
    # Lost its lease max_deliveries times: dead as poison.
    poison = queue.enqueue(tasks.add, 1, 1)
    for _ in range(settings.max_deliveries):
        scripts.claim(["default"], 1, "w")
        r.zadd(keys.processing("default"), {poison.id: 0})
        scripts.reap("default")
    assert poison.refresh().status == "dead"
    assert 0 < r.ttl(keys.attempts("default", poison.id)) <= settings.dead_ttl_s
    # Failed once, then cancelled while waiting out its backoff.
    waiting = queue.enqueue(tasks.boom)
    drain(settings.replace(retry_backoff_s=60.0, retry_backoff_max_s=60.0, burst_wait_s=0.0))
    assert waiting.refresh().status == "scheduled" and waiting.cancel()
    assert 0 < r.ttl(keys.attempts("default", waiting.id)) <= settings.cancelled_ttl_s


def test_enqueued_counter_counts_only_created_jobs(settings: Settings, queue: Queue) -> None:
    from jobq_core.inspect import Inspector

    queue.enqueue_call(tasks.add, args=(1, 1), job_id="once")
    queue.enqueue_call(tasks.add, args=(1, 1), job_id="once")  # exists: nothing written
    queue.enqueue_many([{"task": tasks.add, "args": (1, 1), "job_id": "once"},
                        {"task": tasks.add, "args": (2, 2)}])
    assert Inspector(settings).queue_info("default")["stats"]["enqueued"] == 2


def test_requeued_expired_job_runs(settings: Settings, queue: Queue, r: redis.Redis) -> None:
    from jobq_core.admin import Admin

    job = queue.enqueue_call(tasks.add, args=(1, 2), ttl_s=60)
    r.hset(Keyspace(settings.prefix).job("default", job.id), "expires_ms", 1)
    drain(settings)
    assert job.refresh().status == "dead" and job.reason.startswith("expired")
    assert Admin(settings).requeue("default", "dead", [job.id]) == 1
    drain(settings)  # the operator asked for it to run now: its old TTL no longer applies
    assert job.result(timeout_s=1) == 3


def test_scripts_run_again_after_the_server_forgot_them(queue: Queue, r: redis.Redis,
                                                       settings: Settings) -> None:
    # A restarted server (or SCRIPT FLUSH) has no cached scripts: the next call loads its
    # script and runs it, once, with nothing lost or doubled.
    first = queue.enqueue(tasks.add, 1, 2)
    r.script_flush()
    second = queue.enqueue(tasks.add, 3, 4)
    many = queue.enqueue_many([(tasks.add, (i, i)) for i in range(3)])
    assert queue.count() == 5
    r.script_flush()
    assert drain(settings) == 5
    assert [j.refresh().status for j in (first, second, *many)] == ["completed"] * 5
    assert second.result() == 7


@pytest.mark.parametrize("bad", [None, True, "lone surrogate \udc80"])
def test_script_arguments_that_cannot_be_sent_fail_before_a_connection_is_taken(
        queue: Queue, bad: object) -> None:
    scripts = Scripts(queue.client, queue.settings)
    pool: Any = queue.client.connection_pool
    with pytest.raises((redis.DataError, UnicodeEncodeError)):
        scripts.extend("default", [("some-id", bad)])  # type: ignore[list-item]
    assert not pool._in_use_connections  # nothing checked out and left behind


def test_wait_and_claim_keeps_what_it_claimed_when_the_wait_fails(
        settings: Settings, queue: Queue, r: redis.Redis) -> None:
    from jobq_core.connection import connect

    keys = Keyspace(settings.prefix)
    scripts = Scripts(queue.client, settings)
    blocking = connect(settings, blocking=True)
    first_id = blocking.client_id()
    marker = keys.marker("default")
    job = queue.enqueue(tasks.add, 1, 1)
    r.delete(marker)
    r.set(marker, "not a zset")  # the pop fails; the claim behind it still runs
    got = scripts.wait_and_claim([marker], 0.1, ["default"], 5, "w1", blocking)
    assert got is not None and [j.id for j in got.jobs] == [job.id]
    assert r.hget(keys.job("default", job.id), "worker") == "w1"
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):  # nothing claimed: raised
        scripts.wait_and_claim([marker], 0.1, ["default"], 5, "w1", blocking)
    r.delete(marker)
    # The server forgot the claim script: nothing is claimed, the script is loaded again.
    second = queue.enqueue(tasks.add, 2, 2)
    r.script_flush()
    assert scripts.wait_and_claim([marker], 0.1, ["default"], 5, "w1", blocking) is None
    again = scripts.wait_and_claim([marker], 0.1, ["default"], 5, "w1", blocking)
    assert again is not None and [j.id for j in again.jobs] == [second.id]
    # Every reply was read: the same connection is handed out again (one left with unread
    # data would have been replaced by a new one, with a new client id).
    assert blocking.client_id() == first_id
    blocking.close()
