from __future__ import annotations

import pytest

from jobq_core import Queue, Settings, Worker
from tests import tasks

pytestmark = pytest.mark.cluster  # also on the Redis Cluster (tests/conftest.py)


def test_enqueue_run_result(queue: Queue, settings: Settings) -> None:
    job = queue.enqueue(tasks.add, 1, 2)
    assert job.status == "pending"
    Worker(["default"], settings, imports=["tests.tasks"], pool="thread").work(burst=True)
    assert job.result(timeout_s=1) == 3
    assert job.refresh().status == "completed"


def test_process_pool_runs_job(queue: Queue, settings: Settings) -> None:
    job = queue.enqueue("tests.tasks.add", 2, 3)
    Worker(["default"], settings, imports=["tests.tasks"]).work(burst=True)
    assert job.result(timeout_s=1) == 5
