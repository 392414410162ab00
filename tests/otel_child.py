"""Imported by a process-pool worker's job children in tests/integration/test_tracing.py:
in a child it sets an OpenTelemetry SDK provider that appends each ended span to a file, one
JSON object per line. The test names that file in POINTER (a child inherits the environment
of the fork server, started by whichever test first ran a process pool, so an environment
variable would not reach it); the test process itself, which also imports this module, is
left alone."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

# One per checkout, so test runs of two checkouts on one machine do not meet.
POINTER = Path(tempfile.gettempdir()) / ("jobq-otel-child-" + hashlib.sha1(
    str(Path(__file__).resolve()).encode()).hexdigest()[:12] + ".json")


def _target() -> str:
    try:
        conf = json.loads(POINTER.read_text())
    except (OSError, ValueError):
        return ""
    return str(conf["spans"]) if conf.get("test_pid") != os.getpid() else ""


SPANS = _target()

if SPANS:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import (
        SimpleSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    class FileExporter(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            with open(SPANS, "a") as f:
                for s in spans:
                    f.write(json.dumps({
                        "name": s.name, "trace_id": f"{s.context.trace_id:032x}",
                        "parent": f"{s.parent.span_id:016x}" if s.parent else "",
                        "pid": os.getpid(), "attributes": dict(s.attributes or {})}) + "\n")
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(FileExporter()))
    trace.set_tracer_provider(provider)
