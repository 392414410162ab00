"""Claiming and recording outcomes (worker/fetch.py: Fetcher, Recorder)."""

from __future__ import annotations

import threading

import pytest

from jobq_core import Job, Queue, Settings
from jobq_core.runner import OK, RETRY, Outcome
from jobq_core.scripts import Scripts
from jobq_core.worker.recorder import Recorder
from tests import tasks

pytestmark = pytest.mark.cluster  # also on the Redis Cluster (tests/conftest.py)


def _recorder(settings: Settings, queue: Queue, scripts: Scripts) -> Recorder:
    return Recorder(settings, scripts, "w", threading.Event(),
                    lambda j: Job(queue, j.id, j.fields))


@pytest.mark.parametrize("delay_s", [float("inf"), float("nan")])
def test_retry_with_a_non_finite_delay_is_recorded(settings: Settings, queue: Queue,
                                                   delay_s: float) -> None:
    # Retry(delay_s=...) comes from task code: a value that is not a number of seconds
    # must not break recording (the planned backoff applies instead).
    job = queue.enqueue(tasks.add, 1, 1)
    scripts = Scripts(queue.client, settings)
    (claimed,) = scripts.claim(["default"], 1, "w").jobs
    states = [state for _, state in _recorder(settings, queue, scripts).record_many(
        [(claimed, Outcome(RETRY, error="Retry", delay_s=delay_s))])]
    assert states == ["scheduled"] and job.refresh().status == "scheduled"


def test_one_outcome_that_cannot_be_recorded_does_not_drop_the_others(
        settings: Settings, queue: Queue, monkeypatch: pytest.MonkeyPatch) -> None:
    # Outcomes are settled in batches; a failure recording one must not lose the rest
    # (they would be reaped and run again).
    bad, good = queue.enqueue(tasks.boom_once), queue.enqueue(tasks.add, 2, 2)
    scripts = Scripts(queue.client, settings)
    jobs = {j.id: j for j in scripts.claim(["default"], 2, "w").jobs}
    real_fail = scripts.fail

    def fail(job: object, *args: object, **kwargs: object) -> tuple[str, bool]:
        if getattr(job, "id", None) == bad.id:
            raise RuntimeError("cannot record this one")
        return real_fail(job, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(scripts, "fail", fail)
    states = [state for _, state in _recorder(settings, queue, scripts).record_many(
        [(jobs[bad.id], Outcome("error", error="ValueError")),
         (jobs[good.id], Outcome(OK, result_json="4"))])]
    assert states == ["", "completed"]
    assert good.result(timeout_s=1) == 4
