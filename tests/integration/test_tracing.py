"""OpenTelemetry: the producer's trace context travels with the job; enqueue and each
attempt's run are spans of that trace (jobq_core/tracing.py), checked with the SDK's
in-memory exporter. Tracing is switched on per test by pointing jobq at a tracer of a
provider of the test's own (the global provider stays unset for the rest of the suite)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

# The SDK comes with the test extra; a venv made before it was added skips these (make test
# reinstalls when pyproject.toml changes).
pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from jobq_core import AsyncQueue, Queue, Settings, Worker, tracing
from jobq_core.keys import Keyspace
from jobq_core.scripts import Scripts
from tests import tasks
from tests.helpers import ROOT, drain, run_async


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    monkeypatch.setattr(tracing, "_tracer", lambda: tracer)
    yield exporter
    provider.shutdown()


def _named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == name]


def test_run_span_is_a_child_of_the_enqueue_span(spans: InMemorySpanExporter,
                                                  settings: Settings, queue: Queue) -> None:
    outer = tracing._tracer()
    with outer.start_as_current_span("web request") as request:
        job = queue.enqueue(tasks.add, 1, 2)
    trace_id = f"{request.get_span_context().trace_id:032x}"
    assert tracing.trace_id(job.refresh().fields) == trace_id  # stored in the job's hash
    drain(settings)
    (send,) = _named(spans, "send default")
    (process,) = _named(spans, "process default")
    assert send.kind == SpanKind.PRODUCER and send.parent is not None
    assert send.parent.span_id == request.get_span_context().span_id
    assert send.attributes is not None and dict(send.attributes) == {
        "messaging.system": "jobq", "messaging.operation.type": "send",
        "messaging.operation.name": "enqueue", "messaging.destination.name": "default",
        "messaging.message.id": job.id}
    assert process.kind == SpanKind.CONSUMER and process.parent is not None
    assert process.parent.span_id == send.context.span_id
    assert process.context.trace_id == send.context.trace_id
    assert [link.context.span_id for link in process.links] == [send.context.span_id]
    assert process.attributes is not None
    assert process.attributes["messaging.message.id"] == job.id
    assert process.attributes["jobq.task"] == "tests.tasks.add"
    assert process.attributes["jobq.outcome"] == "ok"
    assert process.status.status_code != StatusCode.ERROR


def test_retries_and_errors_are_recorded(spans: InMemorySpanExporter, settings: Settings,
                                         queue: Queue, tmp_path: Path) -> None:
    queue.enqueue(tasks.fail_until, str(tmp_path / "n"), 1)  # fails once, then completes
    drain(settings)
    first, second = sorted(_named(spans, "process default"), key=lambda s: s.start_time or 0)
    assert first.status.status_code == StatusCode.ERROR
    assert first.attributes is not None and first.attributes["jobq.outcome"] == "error"
    (exc,) = [e for e in first.events if e.name == "exception"]
    assert exc.attributes is not None and exc.attributes["exception.type"] == "RuntimeError"
    assert second.attributes is not None and second.attributes["jobq.attempt"] == 2
    (retry,) = [e for e in second.events if e.name == "jobq.retry"]
    assert retry.attributes is not None and retry.attributes["jobq.failed_attempts"] == 1
    assert second.status.status_code != StatusCode.ERROR
    assert first.parent == second.parent  # both children of the one enqueue span


def test_reapers_hand_back_is_an_event(spans: InMemorySpanExporter, settings: Settings,
                                       queue: Queue, r: redis.Redis) -> None:
    job = queue.enqueue(tasks.add, 1, 1)
    scripts = Scripts(queue.client, settings)
    scripts.claim(["default"], 1, "w-lost")
    r.zadd(Keyspace(settings.prefix).processing("default"), {job.id: 0})  # lease ran out
    assert scripts.reap("default") == [(job.id, "pending")]
    drain(settings)
    (process,) = _named(spans, "process default")
    (lost,) = [e for e in process.events if e.name == "jobq.lease_lost"]
    assert lost.attributes is not None and lost.attributes["jobq.leases_lost"] == 1


def test_async_queue_batch_and_async_pool(spans: InMemorySpanExporter,
                                          settings: Settings) -> None:
    async def produce() -> list[str]:
        q = AsyncQueue("default", settings=settings)
        try:
            one = await q.enqueue(tasks.async_add, 1, 2)
            many = await q.enqueue_many([(tasks.add, [i, i]) for i in range(3)])
            return [one.id] + [j.id for j in many]
        finally:
            await q.aclose()

    ids = run_async(produce)
    drain(settings, pool="async")
    sends = _named(spans, "send default")
    assert len(sends) == 2
    batch = next(s for s in sends if s.attributes and "messaging.batch.message_count" in
                 s.attributes)
    assert batch.attributes is not None
    assert batch.attributes["messaging.batch.message_count"] == 3
    runs = {s.attributes["messaging.message.id"]: s for s in _named(spans, "process default")
            if s.attributes}
    assert sorted(runs) == sorted(ids)
    for job_id in ids[1:]:
        assert runs[job_id].parent is not None
        assert runs[job_id].parent.span_id == batch.context.span_id


def test_no_provider_means_no_trace_context(settings: Settings, queue: Queue,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    # The package is installed here, but no SDK provider is set: nothing is traced.
    assert tracing._tracer() is None
    assert "traceparent" not in queue.enqueue(tasks.add, 1, 2).refresh().fields
    # A provider set later is found at the next look (once a second; here at once).
    monkeypatch.setattr(tracing, "RECHECK_S", 0.0)
    monkeypatch.setattr(tracing, "_next_check", 0.0)
    monkeypatch.setattr(tracing, "_found", None)
    provider = TracerProvider()
    monkeypatch.setattr(tracing.trace, "get_tracer_provider", lambda: provider)
    assert tracing._tracer() is not None
    assert "traceparent" in queue.enqueue(tasks.add, 1, 2).refresh().fields


def test_without_the_package_nothing_is_imported(settings: Settings) -> None:
    script = textwrap.dedent(f"""
        import sys
        sys.modules["opentelemetry"] = None  # as if jobq[otel] were not installed
        from jobq_core import Queue, Settings, runner, tracing
        from jobq_core.queue import Queue as Q
        from tests import tasks
        assert tracing.trace is None
        assert not hasattr(runner.run, "__wrapped__") and not hasattr(Q._write_one, "__wrapped__")
        s = Settings(redis_url={settings.redis_url!r}, prefix={settings.prefix!r}, eager=True)
        assert Queue("default", settings=s).enqueue(tasks.add, 2, 3).result() == 5
        assert [m for m in sys.modules if m.startswith("opentelemetry") and sys.modules[m]] == []
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_job_page_shows_the_trace_id(spans: InMemorySpanExporter, settings: Settings,
                                     queue: Queue) -> None:
    from dashboard import create_app

    job = queue.enqueue(tasks.add, 1, 2)
    (send,) = _named(spans, "send default")
    html = create_app(settings).test_client().get(f"/jobs/default/{job.id}").get_data(
        as_text=True)
    assert f'id="trace-id" title="OpenTelemetry trace id of the enqueue and its runs">' \
        f"{send.context.trace_id:032x}</dd>" in html
    assert tracing.trace_id({"traceparent": "garbage"}) == ""


def test_process_pool_runs_in_the_producers_trace(spans: InMemorySpanExporter,
                                                  settings: Settings, queue: Queue,
                                                  tmp_path: Path) -> None:
    from tests.otel_child import POINTER

    out = tmp_path / "spans.jsonl"
    job = queue.enqueue(tasks.add, 2, 2)
    (send,) = _named(spans, "send default")
    POINTER.write_text(json.dumps({"spans": str(out), "test_pid": os.getpid()}))
    try:
        Worker(["default"], settings, imports=["tests.tasks", "tests.otel_child"],
               pool="process").work(burst=True)
    finally:
        POINTER.unlink()
    assert job.refresh().status == "completed"
    (run,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert run["name"] == "process default" and run["pid"] != os.getpid()
    assert run["trace_id"] == f"{send.context.trace_id:032x}"
    assert run["parent"] == f"{send.context.span_id:016x}"
    assert run["attributes"]["messaging.message.id"] == job.id
