"""A producer's master check (follow.MasterCheck) when its ask cannot even start (no server)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from jobq_core import Settings
from jobq_core.connection import connect
from jobq_core.follow import MasterCheck


def test_a_check_whose_thread_cannot_start_lets_the_write_go_on(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    # Nothing listens: the client is never used, only its pool's kind (a Sentinel one).
    client = connect(Settings(redis_url="redis+sentinel://127.0.0.1:1/mymaster"))
    check = MasterCheck(client, None, every_s=0.0)
    started = threading.Thread.start

    def refuse(thread: threading.Thread, *args: Any) -> None:
        if thread.name == "jobq-sentinel":
            raise RuntimeError("can't start new thread")
        started(thread, *args)

    monkeypatch.setattr(threading.Thread, "start", refuse)
    with caplog.at_level("WARNING", logger="jobq"):
        check()  # documented as never raising: the caller's write goes on unchecked
        check()
    warned = [r.getMessage() for r in caplog.records if "sentinels" in r.getMessage()]
    assert len(warned) == 1 and "can't start new thread" in warned[0]
