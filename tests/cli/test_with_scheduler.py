"""`jobq worker --with-scheduler` fires due schedules while it works."""

from __future__ import annotations

from jobq_core import Queue, Settings
from jobq_core.schedule import Schedule
from jobq_core.scheduler import Scheduler
from tests.helpers import kill_group, start_worker


def test_worker_with_scheduler_fires_a_schedule(settings: Settings) -> None:
    Scheduler(settings).add(Schedule("tick", "tests.tasks.add", every_s=1, args=(1, 1)))
    w = start_worker(settings, "--with-scheduler")
    try:
        q = Queue("default", settings=settings)
        ids = _wait_for_completed(q)
        assert ids, "no scheduled tick completed"
    finally:
        kill_group(w)


def _wait_for_completed(q: Queue, timeout_s: float = 20.0) -> list[str]:
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if q.count("completed"):
            from jobq_core.inspect import Inspector

            return [r.id for r in Inspector(q.settings).jobs("completed", q.name).rows]
        time.sleep(0.1)
    return []
