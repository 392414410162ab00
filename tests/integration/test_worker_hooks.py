"""Worker hooks: called around the loop; a failing hook is logged, never fatal."""

from __future__ import annotations

import logging

import pytest

from jobq_core import Queue, Settings, Worker
from jobq_core.hooks import WorkerContext, WorkerHook
from jobq_core.job import Claimed
from tests import tasks

pytestmark = pytest.mark.cluster  # also on the Redis Cluster (tests/conftest.py)


class Recording(WorkerHook):
    def __init__(self) -> None:
        self.calls: list[str] = []

    def after_start(self, ctx: WorkerContext) -> None:
        self.calls.append("start")

    def after_job(self, ctx: WorkerContext, job: Claimed, state: str) -> None:
        self.calls.append(f"job {job.task} {state}")

    def before_stop(self, ctx: WorkerContext) -> None:
        self.calls.append("stop")


class Broken(WorkerHook):
    def after_job(self, ctx: WorkerContext, job: Claimed, state: str) -> None:
        raise RuntimeError("hook bug")


def test_hooks_are_called_and_a_failing_one_is_not_fatal(
        queue: Queue, settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    rec = Recording()
    queue.enqueue(tasks.add, 1, 2)
    queue.enqueue(tasks.boom_once)
    with caplog.at_level(logging.ERROR, logger="jobq.worker"):
        Worker(["default"], settings, imports=["tests.tasks"], pool="thread",
               hooks=[Broken(), rec]).work(burst=True)
    assert rec.calls == ["start", "job tests.tasks.add completed",
                         "job tests.tasks.boom_once failed", "stop"]
    assert "worker hook Broken.after_job raised" in caplog.text
