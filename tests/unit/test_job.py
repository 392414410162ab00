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


def test_job_ids_are_distinct_across_threads_and_refills() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from jobq_core.job import _ID_BATCH, new_job_id

    def draw(_: int) -> list[str]:
        return [new_job_id() for _ in range(_ID_BATCH)]

    with ThreadPoolExecutor(8) as pool:
        ids = [i for chunk in pool.map(draw, range(8)) for i in chunk]
    assert len(set(ids)) == len(ids) == 8 * _ID_BATCH
    assert all(len(i) == 16 and int(i, 16) >= 0 for i in ids)


def _libc_fork() -> int:
    """fork() straight from libc, as uWSGI forks its workers: Python's at-fork hooks do not
    run in the child. PyDLL keeps the GIL held across the call, so the child has it."""
    import ctypes

    return int(ctypes.PyDLL(None).fork())


@pytest.mark.parametrize("fork", ["os.fork", "libc fork"])
def test_a_forked_child_does_not_hand_out_its_parents_job_ids(fork: str) -> None:
    # ids are cut from one CSPRNG read per batch: the child must not inherit the parent's
    # unused ones, or parent and child would enqueue distinct jobs under one id
    import os

    from jobq_core.job import new_job_id

    new_job_id()  # the parent now holds a batch of unused ids
    read, write = os.pipe()
    pid = os.fork() if fork == "os.fork" else _libc_fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, " ".join(new_job_id() for _ in range(10)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as pipe:
        child = set(pipe.read().split())
    parent = {new_job_id() for _ in range(10)}
    assert len(child) == 10
    assert not child & parent


def test_a_forked_child_given_a_pid_back_does_not_hand_out_its_parents_job_ids() -> None:
    # A pid names a process only while it runs: a child whose pid is the one that filled the
    # ids it inherited (the filler exited, the pid was reused) must not hand them out.
    import os
    import types

    from jobq_core import job

    job.new_job_id()  # the parent now holds a batch of unused ids
    parent_pid = os.getpid()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        job.os = types.SimpleNamespace(getpid=lambda: parent_pid, urandom=os.urandom)  # type: ignore[assignment]
        os.write(write, " ".join(job.new_job_id() for _ in range(10)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as pipe:
        child = set(pipe.read().split())
    parent = {job.new_job_id() for _ in range(10)}
    assert len(child) == 10
    assert not child & parent
