"""Run time per task in the dashboard: the Tasks page, GET /api/tasks and the Prometheus
histogram in /metrics."""

from __future__ import annotations

import redis
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from jobq_core import Queue, Settings
from jobq_core.inspect import Inspector
from jobq_core.keys import Keyspace
from tests.dashboard.conftest import XSS
from tests.helpers import settle_with_runtimes

TASK = "tests.tasks.add"


def test_metrics_has_a_run_time_histogram(client: FlaskClient, settings: Settings,
                                          queue: Queue) -> None:
    settle_with_runtimes(settings, queue, [3] * 8 + [150, 700_000], failing_ms=[40])
    text = client.get("/metrics").get_data(as_text=True)
    families = {f.name: f for f in text_string_to_metric_families(text)}
    hist = families["jobq_job_run_seconds"]
    assert hist.type == "histogram"
    samples = {(s.name, s.labels.get("le")): s.value for s in hist.samples
               if s.labels["queue"] == "default" and s.labels["task"] == TASK}
    assert samples[("jobq_job_run_seconds_bucket", "0.002")] == 0
    assert samples[("jobq_job_run_seconds_bucket", "0.005")] == 8
    assert samples[("jobq_job_run_seconds_bucket", "0.05")] == 9
    assert samples[("jobq_job_run_seconds_bucket", "0.2")] == 10
    assert samples[("jobq_job_run_seconds_bucket", "600")] == 10
    assert samples[("jobq_job_run_seconds_bucket", "+Inf")] == 11
    assert samples[("jobq_job_run_seconds_count", None)] == 11
    assert abs(samples[("jobq_job_run_seconds_sum", None)] - 700.214) < 1e-6
    (fails,) = [s for s in families["jobq_job_run_failures"].samples if s.labels["task"] == TASK]
    assert fails.value == 1
    om = client.get("/metrics", headers={"Accept": "application/openmetrics-text"})
    assert 'jobq_job_run_seconds_bucket{le="0.005",queue="default",task="tests.tasks.add"} 8' \
        in om.get_data(as_text=True)


def test_tasks_page_and_api(client: FlaskClient, settings: Settings, queue: Queue,
                            r: redis.Redis) -> None:
    assert "No attempt ran in this window." in client.get("/tasks").get_data(as_text=True)
    settle_with_runtimes(settings, queue, [3] * 99 + [150], failing_ms=[40])
    # A task name nobody should have written, to check the page escapes what Redis holds.
    minute = Inspector(settings).server_time_ms() // 60000
    r.hset(Keyspace(settings.prefix).runtime("default", minute % settings.runtime_minutes),
           mapping={"m": minute, f"{XSS}|4": 2})
    html = client.get("/tasks").get_data(as_text=True)
    assert 'href="/tasks" aria-current="page">Tasks</a>' in html
    assert XSS not in html and "&lt;script&gt;alert(" in html
    assert f'<td class="mono"><a href="/jobs/completed?queue=default&amp;task={TASK}">{TASK}' \
        in html
    # The queue row: 103 attempts, 1 failed; p50 in the 2-5 ms bucket.
    assert '<th scope="row"><a href="/tasks?queue=default&amp;minutes=60">default</a></th>' \
        '<td class="num">103</td>' in html
    fragment = client.get("/tasks?minutes=5&queue=default", headers={"HX-Request": "true"})
    text = fragment.get_data(as_text=True)
    assert '<div id="tasks"' in text and "<nav>" not in text
    assert client.get("/tasks?minutes=0").status_code == 400
    assert client.get("/tasks?queue=nope").status_code == 404
    api = client.get("/api/tasks?minutes=5").json
    assert api is not None and api["minutes"] == 5
    (q,) = api["queues"]
    assert (q["queue"], q["count"], q["failures"]) == ("default", 103, 1)
    add = next(t for t in api["tasks"] if t["task"] == TASK)
    assert add["count"] == 101 and 2 < add["p50_ms"] <= 5 and add["buckets"]["5"] == 99
