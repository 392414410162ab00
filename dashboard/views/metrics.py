"""/metrics for Prometheus (read at scrape time, so every web process answers the same)
and /healthz, which says only whether Redis answers."""

from __future__ import annotations

from collections.abc import Iterator

from flask import Blueprint, Response, request
from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder

from jobq_core import JobqError
from jobq_core.inspect import Inspector
from jobq_core.runtimes import BUCKETS_MS, lifetime_runtimes

from ..engine import engine
from ..models import worker_rows, worker_summary

bp = Blueprint("metrics", __name__)


class JobqCollector:
    """Queue depth per state, lifetime counters, workers, age of the next pending job, run
    time per task."""

    def __init__(self, inspector: Inspector) -> None:
        self.inspector = inspector

    def collect(self) -> Iterator[Metric]:
        insp = self.inspector
        counts = insp.counts()
        jobs = GaugeMetricFamily("jobq_jobs", "Jobs by queue and state",
                                 labels=["queue", "state"])
        for q, by_state in counts.items():
            for state, n in by_state.items():
                jobs.add_metric([q, state], n)
        yield jobs
        totals = {name: CounterMetricFamily(f"jobq_{name}", f"Jobs {name} since the queue "
                                            "was created", labels=["queue"])
                  for name in ("enqueued", "completed", "failed", "dead", "retried")}
        paused = GaugeMetricFamily("jobq_queue_paused", "1 when the queue is paused",
                                   labels=["queue"])
        age = GaugeMetricFamily("jobq_next_pending_age_seconds",
                                "How long the next job to run has waited", labels=["queue"])
        now = insp.server_time_ms()
        for q in counts:
            info = insp.queue_info(q)
            for name, fam in totals.items():
                fam.add_metric([q], info["stats"].get(name, 0))
            paused.add_metric([q], 1 if info["paused"] else 0)
            head = insp.jobs("pending", q, limit=1).rows if counts[q]["pending"] else []
            waited = (now - head[0].enqueued_ms) / 1000 if head and head[0].enqueued_ms else 0
            age.add_metric([q], max(0.0, waited))
        yield from totals.values()
        yield paused
        yield age
        workers = GaugeMetricFamily("jobq_workers", "Registered workers by state",
                                    labels=["state"])
        for state, n in worker_summary(worker_rows(insp.workers())).items():
            workers.add_metric([state], n)
        yield workers
        yield from run_time_metrics(insp)


def run_time_metrics(insp: Inspector) -> Iterator[Metric]:
    """The run time of every attempt that ran, per queue and task, as a histogram of
    counters since the queue's totals began (runtimes.lifetime_runtimes), and its failures."""
    hist = HistogramMetricFamily("jobq_job_run_seconds", "Run time of job attempts that ran "
                                 "(completed or failed)", labels=["queue", "task"])
    failures = CounterMetricFamily("jobq_job_run_failures", "Job attempts that ran and failed",
                                   labels=["queue", "task"])
    bounds = [f"{ms / 1000:g}" for ms in BUCKETS_MS] + ["+Inf"]
    for r in lifetime_runtimes(insp):
        cumulative, buckets = 0, []
        for le, n in zip(bounds, r.buckets, strict=True):
            cumulative += n
            buckets.append((le, cumulative))
        hist.add_metric([r.queue, r.task], buckets, r.sum_ms / 1000)
        failures.add_metric([r.queue, r.task], r.failures)
    yield hist
    yield failures


@bp.get("/metrics")
def metrics() -> Response:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(JobqCollector(engine().inspector))
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    return Response(encoder(registry), status=200, content_type=content_type)


@bp.get("/healthz")
def healthz() -> tuple[str, int, dict[str, str]]:
    try:
        engine().inspector.server_time_ms()
    except JobqError:
        return "redis unavailable\n", 503, {"Content-Type": "text/plain"}
    return "ok\n", 200, {"Content-Type": "text/plain"}
