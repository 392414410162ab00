"""JobOptions: one declaration of a job's options, which every way in must agree with."""

from __future__ import annotations

import dataclasses
import inspect
import typing

import pytest

from jobq_core import AsyncQueue, ConfigError, Queue
from jobq_core.cli.jobs import enqueue as enqueue_command
from jobq_core.options import (
    EnqueueOptions,
    JobOptions,
    option_names,
    schedule_option_names,
)
from jobq_core.task import queue_for


def test_enqueue_call_takes_exactly_the_job_options() -> None:
    fields = {f.name: f for f in dataclasses.fields(JobOptions)}
    assert set(EnqueueOptions.__annotations__) == option_names() == set(fields)
    hints, wanted = typing.get_type_hints(EnqueueOptions), typing.get_type_hints(JobOptions)
    for name in fields:  # the same type (a keyword left out gets JobOptions' default)
        assert hints[name] == wanted[name], name
    for method in (Queue.enqueue_call, AsyncQueue.enqueue_call):
        params = inspect.signature(method).parameters
        assert [p.kind for p in params.values()][-1] is inspect.Parameter.VAR_KEYWORD
        assert params["options"].annotation == "Unpack[EnqueueOptions]", method
        assert not [p for p in params.values() if p.kind is p.KEYWORD_ONLY]


def test_enqueue_call_passes_each_option_on_and_refuses_others() -> None:
    q = Queue("default", url="redis://unused", settings=None)
    seen: list[JobOptions] = []
    q.enqueue_with = lambda task, opts, args, kwargs: seen.append(opts)  # type: ignore[method-assign,assignment,misc]
    q.enqueue_call("t", (1,), None, priority=3, unique=True, meta={"a": 1})
    assert seen == [JobOptions(priority=3, unique=True, meta={"a": 1})]
    with pytest.raises(TypeError, match="prio"):
        q.enqueue_call("t", prio=1)  # type: ignore[call-arg]


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
