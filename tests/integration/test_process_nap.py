"""The process slot's nap between reads (worker/process_slot.py NAP_S) works where
time.sleep does not: under libfaketime with the monotonic clock left real (fault scenario 6),
sleep's absolute-deadline clock_nanosleep fails with EINVAL."""

from __future__ import annotations

import errno
from typing import Any

import pytest

from jobq_core import Queue, Settings
from jobq_core.worker import process_slot
from tests import tasks
from tests.helpers import drain


def test_a_process_slot_naps_without_time_sleep(settings: Settings, queue: Queue,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []

    def faketime_sleep(seconds: float) -> None:  # what libfaketime's sleep does
        slept.append(seconds)
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(process_slot.time, "sleep", faketime_sleep)
    jobs = [queue.enqueue(tasks.add, i, 1) for i in range(400)]
    # Room for many jobs queued in the one child: the slot naps while it gets through them.
    s = settings.replace(prefetch=200)
    drain(s, [queue.name], pool="process")
    states: Any = [j.refresh().status for j in jobs]
    assert slept == [] and states.count("completed") == len(jobs), (slept[:3], set(states))
