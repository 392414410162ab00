"""JobOptions: one declaration of a job's options, which every way in must agree with."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from jobq_core import ConfigError, Queue
from jobq_core.cli.jobs import enqueue as enqueue_command
from jobq_core.options import JobOptions, option_names, schedule_option_names
from jobq_core.task import queue_for


def test_enqueue_call_takes_exactly_the_job_options() -> None:
    params = inspect.signature(Queue.enqueue_call).parameters
    keyword_only = {n for n, p in params.items() if p.kind is p.KEYWORD_ONLY}
    assert keyword_only == option_names()
    for name in keyword_only:  # and with the same defaults
        assert params[name].default == getattr(JobOptions(), name), name


def test_cli_enqueue_has_a_flag_per_option_with_a_flag() -> None:
    flags = {p.name for p in enqueue_command.params}
    wanted = {f.name for f in dataclasses.fields(JobOptions) if f.metadata["cli"] is not None}
    assert wanted <= flags
    assert "run_at" not in flags  # no flag type for a datetime: --delay-s does it


def test_schedules_may_set_only_what_each_tick_can_use() -> None:
    assert schedule_option_names() == {"priority", "timeout_s", "ttl_s", "result_ttl_s",
                                       "max_retries", "retry_backoff_s", "meta", "limit_key"}


def test_unknown_options_are_named() -> None:
    with pytest.raises(ConfigError, match=r"enqueue_many: unknown option.*prio"):
        JobOptions.of({"prio": 1}, "enqueue_many")
    assert JobOptions.of({"priority": 3}, "x").priority == 3


def test_task_enqueue_shares_one_queue_per_name_and_settings(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Task.enqueue used to build a Queue (a client, a pool, the scripts) on every call.
    monkeypatch.setenv("JOBQ_REDIS_URL", "unix:///nonexistent/jobq-test-options.sock")
    monkeypatch.setenv("JOBQ_PREFIX", "t1")
    first = queue_for("q1")
    assert queue_for("q1") is first
    assert queue_for("q2") is not first
    monkeypatch.setenv("JOBQ_PREFIX", "t2")  # the environment changed: a new handle
    second = queue_for("q1")
    assert second is not first and second.settings.prefix == "t2"
