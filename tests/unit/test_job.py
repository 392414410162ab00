"""The job handles' shared part (JobView): what Job and AsyncJob read from a job's fields
and how result()'s wait decides from the state watch.lua answered. No server: a handle's
Queue sends no command until asked to."""

from __future__ import annotations

import time

import pytest

from jobq_core import JobFailed, JobNotFound, Settings, Timeout
from jobq_core.aqueue import AsyncJob, AsyncQueue
from jobq_core.job import Job, JobView
from jobq_core.queue import Queue

SETTINGS = Settings(redis_url="redis://127.0.0.1:1/0", prefix="unit")


class View(JobView):
    @property
    def queue_name(self) -> str:
        return "q"


def test_both_handles_show_the_same_repr() -> None:
    fields = {"task": "tests.tasks.add", "state": "pending"}
    job = Job(Queue("q", settings=SETTINGS), "a1", fields)
    ajob = AsyncJob(AsyncQueue("q", settings=SETTINGS), "a1", fields)
    assert repr(job) == "<Job a1 tests.tasks.add pending queue=q>"
    assert repr(ajob) == "<AsyncJob a1 tests.tasks.add pending queue=q>"


@pytest.mark.parametrize("state", ["completed", "failed", "dead", "cancelled"])
def test_wait_ends_on_a_final_state(state: str) -> None:
    assert View("j").wait_left(state, time.monotonic() + 5, 5) is None


@pytest.mark.parametrize("state", ["pending", "scheduled", "processing"])
def test_wait_goes_on_until_the_deadline(state: str) -> None:
    job = View("j", {"state": "pending"})
    left = job.wait_left(state, time.monotonic() + 5, 5)
    assert left is not None and 0 < left <= 5
    with pytest.raises(Timeout, match=f"job j still {state} after 5 s"):
        job.wait_left(state, time.monotonic() - 0.001, 5)
    assert job.status == state  # the handle shows the state it timed out in


@pytest.mark.parametrize("state", [None, ""])
def test_wait_on_a_job_that_is_gone(state: str | None) -> None:
    with pytest.raises(JobNotFound, match="job j not found in queue 'q'"):
        View("j").wait_left(state, time.monotonic() + 5, 5)


def test_outcome_of_an_ended_job() -> None:
    assert View("j", {"state": "completed", "result": "[1,2]"}).outcome() == [1, 2]
    with pytest.raises(JobFailed, match="boom"):
        View("j", {"state": "failed", "error": "ValueError: boom"}).outcome()
