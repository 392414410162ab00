"""The built-in hooks while Redis cannot be reached: one line each, no traceback wall.

A worker started with REDIS_URL pointing at nothing logged, at every heartbeat, the full
redis-py traceback of DependencyHook.after_beat under the one-line "cannot reach Redis"
the worker itself prints (first-day review, 2026-12-06)."""

from __future__ import annotations

import logging

import pytest

from jobq_core import Settings
from jobq_core.connection import connect
from jobq_core.hooks import Hooks, WorkerContext
from jobq_core.scripts import Scripts
from jobq_core.worker.builtin_hooks import builtin_hooks

NOWHERE = "redis://127.0.0.1:1/0"  # port 1: nothing listens, the connect is refused at once


def test_hooks_say_in_one_line_that_redis_is_away(caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(redis_url=NOWHERE, connect_timeout_s=0.5)
    client = connect(settings)
    hooks = Hooks(WorkerContext("w1", ("default",), settings, client, Scripts(client, settings)),
                  builtin_hooks(with_scheduler=False))
    with caplog.at_level(logging.WARNING, logger="jobq.worker"):
        hooks.after_beat()
    records = [r for r in caplog.records if "DependencyHook.after_beat" in r.getMessage()]
    assert len(records) == 1, caplog.text
    assert "cannot reach Redis at redis://127.0.0.1:1/0" in records[0].getMessage()
    assert records[0].exc_info is None and "Traceback" not in caplog.text
