"""Eager mode: jobs run at enqueue, in the caller's thread, with a worker's error rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from jobq_core import AsyncQueue, JobFailed, Queue, Settings, task
from tests import tasks
from tests.helpers import run_async

# Nothing listens here: eager mode must not touch Redis.
NO_REDIS = "redis://127.0.0.1:1/0"


@pytest.fixture
def eager() -> Queue:
    return Queue("default", settings=Settings(redis_url=NO_REDIS, eager=True))


def test_runs_at_enqueue_without_redis(eager: Queue) -> None:
    job = eager.enqueue(tasks.add, 1, 2)
    assert job.status == "completed"
    assert job.result(timeout_s=0) == 3
    assert job.refresh().status == "completed"


def test_args_go_through_json(eager: Queue) -> None:
    job = eager.enqueue(tasks.echo, (1, 2), key="v")
    assert job.result() == {"args": [[1, 2]], "kwargs": {"key": "v"}}


def test_error_is_retried_then_failed_with_traceback(eager: Queue) -> None:
    job = eager.enqueue(tasks.boom, "bad")  # max_retries=2
    assert job.status == "failed"
    assert job.retries == 2
    with pytest.raises(JobFailed) as info:
        job.result()
    assert "ValueError: bad" in info.value.error
    assert info.value.status == "failed"


def test_failure_then_success_counts_retries(eager: Queue, tmp_path: Path) -> None:
    job = eager.enqueue(tasks.fail_until, str(tmp_path / "n"), 2)
    assert job.status == "completed"
    assert job.result() == 3
    assert job.retries == 2


def test_retry_request_runs_again_without_waiting(eager: Queue, tmp_path: Path) -> None:
    job = eager.enqueue(tasks.ask_retry, str(tmp_path / "n"))
    assert job.result() == "second time lucky"


def test_unknown_task_is_dead(eager: Queue) -> None:
    job = eager.enqueue("nobody.registers.this")
    assert job.status == "dead"
    assert "unknown task" in job.reason
    with pytest.raises(JobFailed):
        job.result()


def test_payload_errors_are_raised_at_enqueue(eager: Queue) -> None:
    from jobq_core import PayloadError

    with pytest.raises(PayloadError):
        eager.enqueue(tasks.add, object(), 1)


def test_unserialisable_result_fails(eager: Queue) -> None:
    job = eager.enqueue_call(tasks.not_json, max_retries=0)
    assert job.status == "failed"
    assert "PayloadError" in job.error


def test_progress_and_meta_are_kept(eager: Queue) -> None:
    job = eager.enqueue(tasks.report_progress)
    assert job.progress == 1.0  # completed, as after a worker
    assert eager.enqueue(tasks.progress_then_fail).progress == 0.75
    assert job.meta == {"stage": "half"}


def test_delay_runs_now_and_cancel_is_refused(eager: Queue) -> None:
    job = eager.enqueue_in(3600, tasks.add, 2, 2)
    assert job.result() == 4
    assert job.cancel() is False


seen: list[Any] = []


@task(max_retries=0, on_success=lambda job, value: seen.append(("ok", job.id, value)),
      on_failure=lambda job, err: seen.append(("fail", job.id, err.splitlines()[-1])))
def with_callbacks(fail: bool) -> str:
    if fail:
        raise RuntimeError("no")
    return "yes"


def test_callbacks_run(eager: Queue) -> None:
    seen.clear()
    ok = eager.enqueue(with_callbacks, False)
    bad = eager.enqueue(with_callbacks, True)
    assert seen == [("ok", ok.id, "yes"), ("fail", bad.id, "RuntimeError: no")]


def test_eager_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBQ_EAGER", "1")
    monkeypatch.setenv("JOBQ_REDIS_URL", NO_REDIS)
    assert tasks.add.enqueue(5, 6).result() == 11


def test_enqueue_many_runs_each(eager: Queue) -> None:
    jobs = eager.enqueue_many([(tasks.add, (1, 1)), (tasks.boom_once, ("x",))])
    assert [j.status for j in jobs] == ["completed", "failed"]


def test_async_task_runs_eagerly(eager: Queue) -> None:
    job = eager.enqueue(tasks.async_add, 2, 3)
    assert job.status == "completed" and job.result() == 5
    failed = eager.enqueue(tasks.async_boom, "bad")
    assert failed.status == "failed" and "ValueError: bad" in failed.error


def test_async_task_sees_its_job_and_writes_progress_eagerly(eager: Queue) -> None:
    job = eager.enqueue(tasks.async_context)
    assert job.result() == [job.id, job.id]  # in the coroutine and in a task it spawned
    assert job.meta == {"stage": "async"} and job.progress == {"step": 3, "of": 4}


def test_async_task_runs_eagerly_from_a_running_loop(eager: Queue) -> None:
    async def handler() -> Any:  # an async web app enqueueing with eager=True in its tests
        job = eager.enqueue(tasks.async_context)
        return job.result() == [job.id, job.id] and job.progress == {"step": 3, "of": 4}

    assert run_async(handler)


# Nothing listens here either: an eager Queue on a Sentinel URL must not ask the sentinels.
NO_SENTINEL = "redis+sentinel://127.0.0.1:1/mymaster"


def test_an_eager_queue_on_a_sentinel_url_asks_no_sentinel(
        caplog: pytest.LogCaptureFixture) -> None:
    # sentinel_check_s 0: a queue that follows the master would ask before every write, and
    # with no sentinel listening log "asking the sentinels for the master failed"
    settings = Settings(redis_url=NO_SENTINEL, eager=True, sentinel_check_s=0.0)
    queue = Queue("default", settings=settings)
    with caplog.at_level("WARNING", logger="jobq"):
        assert queue.enqueue(tasks.add, 1, 2).result(timeout_s=0) == 3
        assert [job.result() for job in queue.enqueue_many([(tasks.add, (2, 3))])] == [5]

    async def main() -> Any:
        aqueue = AsyncQueue("default", settings=settings)
        job = await aqueue.enqueue(tasks.add, 3, 4)
        return await job.result()

    with caplog.at_level("WARNING", logger="jobq"):
        assert run_async(main) == 7
    assert not [r for r in caplog.records if "sentinels" in r.getMessage()]
