"""OpenTelemetry tracing (the optional extra `jobq[otel]`): the producer's trace context
travels with the job, and the enqueue and each attempt's run are spans of that trace.

Costs nothing without the package: opentelemetry is imported once, here, and when that
fails the decorators below return the function they decorate, untouched. With the package
but no tracer provider set (no SDK configured) nothing is traced either: each call checks
the global provider, so one set later is used from then on.

- enqueue (Queue and AsyncQueue, one span per call, a batch included): a PRODUCER span
  "send <queue>" in the caller's context; its W3C `traceparent` (and `tracestate`) are
  stored in each job's hash with the job.
- run (runner.run and runner.arun, so every pool and eager mode): a CONSUMER span
  "process <queue>" per attempt, a child of the enqueue span and linked to it, current
  while the task runs so the task's own spans nest under it. Earlier failed attempts
  (retries) and leases lost (the reaper's or a stopping worker's hand-back) are events at
  its start; a failed attempt records its exception and sets the status to error.

Attributes follow the messaging semantic conventions where they fit: messaging.system=jobq,
messaging.operation.type (send | process), messaging.destination.name=<queue>,
messaging.message.id=<job id> (messaging.batch.message_count for a batch).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

try:
    from opentelemetry import propagate, trace
    from opentelemetry.trace import Link, SpanKind, Status, StatusCode

    # What the API has before an SDK provider is set: nothing to trace with.
    _OFF: tuple[type, ...] = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)
except ImportError:  # the extra is not installed: tracing is off, at no cost
    trace = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from .job import JobSpec

F = TypeVar("F", bound=Callable[..., Any])
SYSTEM = "jobq"
CONTEXT_FIELDS = ("traceparent", "tracestate")  # the job hash fields carrying the context
RECHECK_S = 1.0  # how soon a provider set after the first job is noticed
_found: Any = None
_next_check = 0.0


def trace_id(fields: Mapping[str, str]) -> str:
    """The trace id (32 hex digits) in a job's stored `traceparent`; '' without one. Reads
    the stored text only: works without the package."""
    parts = fields.get("traceparent", "").split("-")
    if len(parts) >= 4 and len(parts[1]) == 32 and parts[1].isalnum():
        return parts[1].lower()
    return ""


def _tracer() -> Any:
    """jobq's tracer from the global provider; None until an SDK provider is set. Looked up
    at most once a second until found (the API reads os.environ on each lookup while none
    is set), then kept: the global provider can be set only once."""
    global _found, _next_check
    if _found is not None:
        return _found
    now = time.monotonic()
    if now < _next_check:
        return None
    _next_check = now + RECHECK_S
    provider = trace.get_tracer_provider()
    if isinstance(provider, _OFF):
        return None
    _found = provider.get_tracer("jobq")
    return _found


def traced_enqueue(write: F) -> F:
    """Decorate a Queue/AsyncQueue method `write(self, spec_or_specs)` (sync or async) with
    an enqueue span whose context goes into every spec's stored fields."""
    if trace is None:
        return write
    if _is_coroutine(write):
        @functools.wraps(write)
        async def awrapper(q: Any, specs: Any) -> Any:
            tracer = _tracer()
            if tracer is None:
                return await write(q, specs)
            with _enqueue_span(tracer, q.name, specs):
                return await write(q, specs)
        return awrapper  # type: ignore[return-value]

    @functools.wraps(write)
    def wrapper(q: Any, specs: Any) -> Any:
        tracer = _tracer()
        if tracer is None:
            return write(q, specs)
        with _enqueue_span(tracer, q.name, specs):
            return write(q, specs)
    return wrapper  # type: ignore[return-value]


@contextmanager
def _enqueue_span(tracer: Any, queue: str, specs: JobSpec | Sequence[JobSpec],
                  ) -> Iterator[None]:
    batch = list(specs) if isinstance(specs, Sequence) else [specs]
    attrs: dict[str, Any] = {"messaging.system": SYSTEM, "messaging.operation.type": "send",
                             "messaging.operation.name": "enqueue",
                             "messaging.destination.name": queue}
    if len(batch) == 1:
        attrs["messaging.message.id"] = batch[0].id
    else:
        attrs["messaging.batch.message_count"] = len(batch)
    with tracer.start_as_current_span(f"send {queue}", kind=SpanKind.PRODUCER,
                                      attributes=attrs):
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        context = {k: v for k, v in carrier.items() if k in CONTEXT_FIELDS}
        if context:
            # Specs of one batch often share their options dict (enqueue.lua then sends
            # them compactly): they share the new one too.
            stamped: dict[int, Mapping[str, str]] = {}
            for spec in batch:
                opts = stamped.get(id(spec.options))
                if opts is None:
                    opts = stamped[id(spec.options)] = {**spec.options, **context}
                spec.options = opts
        yield


def traced_run(run: F) -> F:
    """Decorate runner.run or runner.arun (`(call, ...) -> Outcome`) with a run span."""
    if trace is None:
        return run
    if _is_coroutine(run):
        @functools.wraps(run)
        async def awrapper(call: Any, *args: Any, **kwargs: Any) -> Any:
            tracer = _tracer()
            if tracer is None:
                return await run(call, *args, **kwargs)
            with _run_span(tracer, call) as span:
                return _ended(span, await run(call, *args, **kwargs))
        return awrapper  # type: ignore[return-value]

    @functools.wraps(run)
    def wrapper(call: Any, *args: Any, **kwargs: Any) -> Any:
        tracer = _tracer()
        if tracer is None:
            return run(call, *args, **kwargs)
        with _run_span(tracer, call) as span:
            return _ended(span, run(call, *args, **kwargs))
    return wrapper  # type: ignore[return-value]


@contextmanager
def _run_span(tracer: Any, call: Any) -> Iterator[Any]:
    fields: Mapping[str, str] = call.fields
    carrier = {k: fields[k] for k in CONTEXT_FIELDS if fields.get(k)}
    parent = propagate.extract(carrier) if carrier else None
    producer = trace.get_current_span(parent).get_span_context() if parent else None
    links = [Link(producer)] if producer is not None and producer.is_valid else []
    retries, lost = _count(fields, "retries"), _count(fields, "lost")
    attrs = {"messaging.system": SYSTEM, "messaging.operation.type": "process",
             "messaging.operation.name": "run", "messaging.destination.name": call.queue,
             "messaging.message.id": call.id, "jobq.task": fields.get("task", ""),
             "jobq.attempt": retries + 1}
    with tracer.start_as_current_span(f"process {call.queue}", context=parent,
                                      kind=SpanKind.CONSUMER, attributes=attrs,
                                      links=links) as span:
        if retries:
            last = fields.get("error", "").strip().splitlines()
            span.add_event("jobq.retry", {"jobq.failed_attempts": retries,
                                          "jobq.last_error": last[-1][:500] if last else ""})
        if lost:
            span.add_event("jobq.lease_lost", {"jobq.leases_lost": lost,
                                               "jobq.handed_back_by": "reaper or a stopping "
                                                                      "worker"})
        yield span


def _ended(span: Any, outcome: Any) -> Any:
    """Record how the attempt ended on its span; returns `outcome`."""
    span.set_attribute("jobq.outcome", outcome.kind)
    if outcome.kind != "ok":
        lines = outcome.error.strip().splitlines()
        head = lines[-1] if lines else outcome.kind
        etype, _, message = head.partition(": ")
        span.add_event("exception", {"exception.type": etype[:200],
                                     "exception.message": message[:2000],
                                     "exception.stacktrace": outcome.error[-8000:]})
        span.set_status(Status(StatusCode.ERROR, head[:500]))
    return outcome


def _count(fields: Mapping[str, str], name: str) -> int:
    try:
        return int(fields.get(name) or 0)
    except ValueError:
        return 0


def _is_coroutine(fn: Any) -> bool:
    import inspect

    return inspect.iscoroutinefunction(fn)
