"""Actions where they are needed: retry now / kill on jobs waiting out a retry backoff, a
requeue button on each failed row, counts on the state tabs, progress on processing rows."""

from __future__ import annotations

import dataclasses

from flask.testing import FlaskClient

from jobq_core import Queue, Settings
from jobq_core.inspect import Inspector
from jobq_core.scripts import Scripts
from tests import tasks
from tests.dashboard.conftest import post
from tests.helpers import drain


def _backing_off(settings: Settings, queue: Queue) -> str:
    """A job that failed once and waits an hour before its retry."""
    slow = dataclasses.replace(settings, retry_backoff_s=3600, retry_backoff_max_s=3600)
    job = queue.enqueue(tasks.boom, "flaky upstream")
    drain(slow)
    assert job.refresh().status == "scheduled" and job.fields["retries"] == "1"
    return job.id


def test_retry_now_runs_the_retry_at_once(client: FlaskClient, settings: Settings,
                                          queue: Queue) -> None:
    job_id = _backing_off(settings, queue)
    html = client.get("/jobs/scheduled?queue=default").get_data(as_text=True)
    assert f'id="retry-now-{job_id}"' in html and f'id="kill-{job_id}"' in html
    assert client.post(f"/jobs/default/{job_id}/retry-now").status_code == 403  # CSRF
    resp = post(client, f"/jobs/default/{job_id}/retry-now")
    assert resp.status_code == 302
    fields = queue.job(job_id).fields  # type: ignore[union-attr]
    assert fields["state"] == "pending" and fields["retries"] == "1"  # the same retry
    assert Inspector(settings).audit().entries[0].action == "retry now"
    assert post(client, f"/jobs/default/{job_id}/retry-now").status_code == 409


def test_kill_a_retrying_job_sends_it_to_dead(client: FlaskClient, settings: Settings,
                                              queue: Queue) -> None:
    job_id = _backing_off(settings, queue)
    assert post(client, f"/jobs/default/{job_id}/kill").status_code == 302
    fields = queue.job(job_id).fields  # type: ignore[union-attr]
    assert fields["state"] == "dead" and "killed by" in fields["reason"]
    assert Inspector(settings).counts()["default"]["scheduled"] == 0
    delayed = queue.enqueue_in(3600, tasks.add, 1, 1)  # delayed, not a retry: refused
    assert post(client, f"/jobs/default/{delayed.id}/kill").status_code == 409
    assert f'id="kill-{delayed.id}"' not in client.get(
        "/jobs/scheduled?queue=default").get_data(as_text=True)


def test_requeue_button_on_each_failed_row_and_tab_counts(client: FlaskClient,
                                                          settings: Settings,
                                                          queue: Queue) -> None:
    jobs = [queue.enqueue(tasks.boom_once, str(i)) for i in range(3)]
    drain(settings)
    queue.enqueue(tasks.add, 1, 1)
    html = client.get("/jobs/failed?queue=default").get_data(as_text=True)
    assert all(f'id="requeue-{j.id}"' in html for j in jobs)
    assert 'id="tab-failed">failed <span class="chip-count alert-text">3</span>' in html
    assert 'id="tab-pending">pending <span class="chip-count">1</span>' in html
    resp = post(client, f"/jobs/default/{jobs[1].id}/requeue", {"state": "failed"})
    assert resp.status_code == 302 and jobs[1].refresh().status == "pending"
    assert [j.refresh().status for j in (jobs[0], jobs[2])] == ["failed", "failed"]


def test_progress_on_processing_rows(client: FlaskClient, settings: Settings,
                                     queue: Queue) -> None:
    a, b = queue.enqueue(tasks.add, 1, 1), queue.enqueue(tasks.add, 2, 2)
    Scripts(queue.client, settings).claim(["default"], 2, "w1")
    queue.client.hset(Inspector(settings).keys.job("default", a.id), "progress", "0.4")
    queue.client.hset(Inspector(settings).keys.job("default", b.id), "progress",
                      '{"step": "<b>copy</b>"}')
    html = client.get("/jobs/processing?queue=default").get_data(as_text=True)
    assert '<progress max="1" value="0.4"></progress> 40%' in html
    assert "<b>copy</b>" not in html and "\\u003cb\\u003ecopy" in html


def test_dead_rows_do_not_repeat_the_reason(client: FlaskClient, settings: Settings,
                                            queue: Queue) -> None:
    queue.enqueue("tests.tasks.no_such_task", 1)
    drain(settings, unknown_task_grace_s=0)  # no worker knows it: dead at once
    html = client.get("/jobs/dead?queue=default").get_data(as_text=True)
    assert html.count("unknown task &#39;tests.tasks.no_such_task&#39;") == 1
    assert "unknown task &#39;tests.tasks.no_such_task&#39;:" in html  # the longer line
