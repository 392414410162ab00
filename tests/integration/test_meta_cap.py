"""A task's own meta and progress writes are capped as the producer's meta and the result
are (Settings.max_payload_bytes): an oversize write raises PayloadError from the task's call
and stores nothing, so the job fails (or the task goes on) and the worker lives."""

from __future__ import annotations

import pytest

from jobq_core import Queue, Settings
from tests import tasks
from tests.helpers import drain

CAP = 2000


@pytest.mark.parametrize(("pool", "fn"), [
    ("thread", tasks.oversize_meta), ("process", tasks.oversize_meta),
    ("async", tasks.oversize_meta), ("async", tasks.oversize_meta_async),
    ("thread", tasks.oversize_meta_async)])
def test_an_oversize_meta_or_progress_write_raises_from_the_tasks_call(
        settings: Settings, queue: Queue, pool: str, fn: object) -> None:
    settings = settings.replace(max_payload_bytes=CAP)
    raised = queue.enqueue(fn, CAP, False)  # type: ignore[arg-type]
    caught = queue.enqueue(fn, CAP, True)  # type: ignore[arg-type]
    after = queue.enqueue(tasks.add, 2, 3)
    drain(settings, pool=pool)

    assert raised.refresh().status == "failed"
    assert "PayloadError" in (raised.error or "") and "above the cap of 2000" in raised.error
    assert raised.meta == {"stage": "small"}  # the oversize meta was not stored, not cut

    assert caught.result(timeout_s=1) == [
        "PayloadError: meta of 2030 bytes is above the cap of 2000 bytes "
        "(Settings.max_payload_bytes / JOBQ_MAX_PAYLOAD_BYTES); nothing was stored",
        "PayloadError: progress of 2012 bytes is above the cap of 2000 bytes "
        "(Settings.max_payload_bytes / JOBQ_MAX_PAYLOAD_BYTES); nothing was stored"]
    assert caught.refresh().meta == {"stage": "small"} and caught.progress in (None, 1.0)
    assert after.result(timeout_s=1) == 5  # the worker went on


def test_a_write_at_the_cap_is_stored_whole(settings: Settings, queue: Queue) -> None:
    settings = settings.replace(max_payload_bytes=CAP)
    job = queue.enqueue(tasks.oversize_meta, CAP - len('{"stage": "small", "blob": ""}'), True)
    drain(settings)
    assert job.result(timeout_s=1) == []
    assert len(job.refresh().meta["blob"]) == CAP - 30  # type: ignore[index]
