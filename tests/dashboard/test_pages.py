"""Every page renders from the read API, shows what it should, and escapes job data."""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient

from jobq_core import Queue, Settings
from tests import tasks
from tests.dashboard.conftest import XSS, Fixture
from tests.helpers import drain

RAW_TAGS = re.compile(r"<script>alert|<img src=x onerror", re.I)


def _html(client: FlaskClient, url: str, status: int = 200) -> str:
    resp = client.get(url)
    assert resp.status_code == status, (url, resp.status_code, resp.data[:500])
    return resp.get_data(as_text=True)


def test_overview_counts_chart_and_redis(client: FlaskClient, jobs: Fixture) -> None:
    html = _html(client, "/")
    assert 'id="count-default-failed">1<' in html
    assert 'id="count-default-pending">2<' in html
    assert "Throughput" in html and "<svg" in html and "bar-fail" in html
    assert "eviction policy" in html and "noeviction" in html
    assert 'hx-trigger="every 3s"' in html and 'hx-sync="this:drop"' in html


def test_overview_chart_of_one_queue(client: FlaskClient, jobs: Fixture, settings: Settings,
                                     other_queue: Queue) -> None:
    other_queue.enqueue(tasks.add, 1, 1)
    drain(settings, ["emails"])
    everything = _html(client, "/")
    # default's jobs (1 completed, 2 failed attempts) and the one of emails.
    assert re.search(r"completed 2 · .*failed attempts 2 ", everything)
    assert '<option value="emails">emails</option>' in everything
    assert re.search(r'<text class="tick-label" [^>]*>\d\d:\d0</text>', everything)
    assert re.search(r'<text class="tip" [^>]*>\d\d:\d\d UTC: \d+ completed, \d+ failed</text>',
                     everything)
    one = _html(client, "/?queue=emails")
    assert re.search(r"completed 1 · .*failed attempts 0 ", one)
    assert "Throughput, last 60 minutes in emails" in one
    assert '<option value="emails" selected>emails</option>' in one
    assert 'hx-get="/?queue=emails"' in one  # the live poll keeps the choice
    assert client.get("/?queue=nope").status_code == 404
    hist = client.get("/api/history?minutes=5&queue=emails").json
    assert hist is not None and sum(p["completed"] for p in hist) == 1


def test_overview_fragment_for_htmx(client: FlaskClient, jobs: Fixture) -> None:
    resp = client.get("/", headers={"HX-Request": "true"})
    body = resp.get_data(as_text=True)
    assert resp.status_code == 200 and body.lstrip().startswith('<div id="overview"')
    assert "<html" not in body
    assert "HX-Request" in resp.headers["Vary"]


def test_overview_with_no_queues(client: FlaskClient) -> None:
    assert "No queues yet" in _html(client, "/")


@pytest.mark.parametrize("state", ["pending", "scheduled", "processing", "completed", "failed",
                                   "dead", "cancelled"])
def test_every_state_lists_its_job(client: FlaskClient, jobs: Fixture, state: str) -> None:
    html = _html(client, f"/jobs/{state}")
    assert getattr(jobs, state) in html
    assert not RAW_TAGS.search(html)


def test_list_columns_per_state(client: FlaskClient, jobs: Fixture) -> None:
    assert "ValueError: it broke" in _html(client, "/jobs/failed")
    assert "unknown task" in _html(client, "/jobs/dead")
    processing = _html(client, "/jobs/processing")
    assert "ghost-worker" in processing and "worker lost" in processing
    assert "Hand back now" in processing
    assert "due" in _html(client, "/jobs/scheduled")


def test_all_queues_concatenates_and_pages(client: FlaskClient, settings: Settings,
                                           queue: Queue, other_queue: Queue) -> None:
    queue.enqueue_many([(tasks.add, [i, i]) for i in range(7)])
    ids = [j.id for j in other_queue.enqueue_many([(tasks.add, [i, 0]) for i in range(5)])]
    first = _html(client, "/jobs/pending?per_page=10")
    second = _html(client, "/jobs/pending?per_page=10&page=2")
    assert "12</strong> pending jobs in 2 queues" in first
    assert "page 1 of 2" in first and "page 2 of 2" in second
    assert sum(i in first for i in ids) == 3 and sum(i in second for i in ids) == 2
    only = _html(client, "/jobs/pending?queue=emails")
    assert all(i in only for i in ids) and "5</strong> pending jobs" in only


def test_order_oldest_and_newest(client: FlaskClient, queue: Queue) -> None:
    a, b = queue.enqueue(tasks.add, 1, 1), queue.enqueue(tasks.add, 2, 2)
    oldest = _html(client, "/jobs/pending?order=oldest")
    newest = _html(client, "/jobs/pending?order=newest")
    assert oldest.index(a.id) < oldest.index(b.id)
    assert newest.index(b.id) < newest.index(a.id)


def test_filter_by_task_and_text_with_more_link(client: FlaskClient, settings: Settings,
                                                queue: Queue) -> None:
    from tests.helpers import drain

    queue.enqueue_many([(tasks.boom_once, [f"needle {i}" if i % 2 else "hay"])
                        for i in range(30)])
    drain(settings)
    html = _html(client, "/jobs/failed?text=needle&per_page=10")
    assert "10 matches" in html and "more matches" in html
    assert "ValueError: hay" not in html
    start = re.search(r'start=(\d+)', html)
    assert start is not None
    rest = _html(client, f"/jobs/failed?text=needle&per_page=10&start={start.group(1)}")
    assert "5 matches" in rest and "more matches" not in rest
    assert "0 matches" in _html(client, "/jobs/failed?task=nothing_like_this")


def test_filter_stops_at_its_time_budget_and_says_how_far(
        client: FlaskClient, queue: Queue, monkeypatch: pytest.MonkeyPatch) -> None:
    from dashboard import listing
    from jobq_core import inspect

    monkeypatch.setattr(listing, "SCAN_BUDGET_S", 0.0)
    monkeypatch.setattr(inspect, "SEARCH_SLICE", 5)
    queue.enqueue_many([(tasks.add, [i, i]) for i in range(12)])
    html = _html(client, "/jobs/pending?queue=default&text=nothing+like+it")
    assert "0 matches in 5 entries looked at (positions 1\u20135 of 12)." in html
    assert "A page looks at up to 2,000 entries or for 0 ms" in html
    start = re.search(r'id="next-page" href="[^"]*start=(\d+)', html)
    assert start is not None and start.group(1) == "5"
    more = _html(client, "/jobs/pending?queue=default&text=nothing+like+it&start=5")
    assert "(positions 6\u201310 of 12)" in more
    last = _html(client, "/jobs/pending?queue=default&text=nothing+like+it&start=10")
    assert "(positions 11\u201312 of 12)" in last and 'id="next-page"' not in last


def test_jump_to_job_id(client: FlaskClient, jobs: Fixture) -> None:
    resp = client.get(f"/jobs/pending?id={jobs.failed}")
    assert resp.status_code == 302 and resp.headers["Location"].endswith(
        f"/jobs/default/{jobs.failed}")
    resp = client.get(f"/job/{jobs.dead}")
    assert resp.status_code == 302 and resp.headers["Location"].endswith(f"/default/{jobs.dead}")


def test_detail_shows_everything_escaped(client: FlaskClient, jobs: Fixture) -> None:
    html = _html(client, f"/jobs/default/{jobs.failed}")
    assert "Traceback" in html and "ValueError: it broke" in html
    assert "Attempts (1)" in html and "Timeline" in html and "enqueued" in html
    assert "&lt;script&gt;alert(" in html and not RAW_TAGS.search(html)
    done = _html(client, f"/jobs/default/{jobs.completed}")
    assert "Result" in done and "Keyword arguments" in done and not RAW_TAGS.search(done)
    dead = _html(client, f"/jobs/default/{jobs.dead}")
    assert "unknown task" in dead


def test_detail_processing_with_lost_worker(client: FlaskClient, jobs: Fixture) -> None:
    html = _html(client, f"/jobs/default/{jobs.processing}")
    assert "lost: heartbeat stopped" in html and "Hand back from lost worker" in html
    assert 'hx-trigger="every 3s"' in html  # a running job's page stays live


def test_detail_of_final_job_stops_polling(client: FlaskClient, jobs: Fixture) -> None:
    assert "hx-trigger" not in _html(client, f"/jobs/default/{jobs.completed}").split(
        'id="job-detail"')[1].split(">")[0]


def test_large_payload_truncated_with_link(client: FlaskClient, queue: Queue) -> None:
    job = queue.enqueue(tasks.echo, "x" * 50_000)
    html = _html(client, f"/jobs/default/{job.id}")
    assert "See all" in html and "Showing 20,000 of" in html
    raw = client.get(f"/jobs/default/{job.id}/raw/args")
    assert raw.status_code == 200 and raw.mimetype == "text/plain"
    assert len(raw.data) > 50_000 and raw.headers["X-Content-Type-Options"] == "nosniff"


def test_raw_field_of_xss_payload_is_plain_text(client: FlaskClient, jobs: Fixture) -> None:
    raw = client.get(f"/jobs/default/{jobs.xss}/raw/args")
    assert raw.mimetype == "text/plain" and "<script>" in raw.get_data(as_text=True)


def test_queues_page(client: FlaskClient, jobs: Fixture, queue: Queue) -> None:
    queue.set_max_length(1000)
    html = _html(client, "/queues")
    assert 'id="queue-default"' in html and "1,000" in html and ">Pause<" in html


def test_workers_page_escapes_and_flags_lost(client: FlaskClient, settings: Settings,
                                             r: object, jobs: Fixture) -> None:
    from jobq_core.keys import Keyspace

    k = Keyspace(settings.prefix)
    client_r = __import__("redis").Redis.from_url(settings.redis_url, decode_responses=True)
    client_r.hset(k.worker("w1"), mapping={"id": "w1", "host": XSS, "pid": 1, "queues": "default",
                                           "state": "busy", "current": f"default/{jobs.processing}",
                                           "beat_ms": 1, "done": 3, "failed": 1})
    client_r.zadd(k.workers(), {"w1": 1, "gone": 0})
    html = _html(client, "/workers")
    assert "1 busy" in html and "1 lost" in html and "Forget lost workers" in html
    assert jobs.processing in html and not RAW_TAGS.search(html)


def test_audit_page_lists_actions(client: FlaskClient, jobs: Fixture) -> None:
    from tests.dashboard.conftest import post

    post(client, f"/jobs/default/{jobs.failed}/requeue")
    html = _html(client, "/audit")
    assert "requeue" in html and jobs.failed in html and "local (loopback)" in html


def test_security_headers(client: FlaskClient) -> None:
    resp = client.get("/")
    csp = resp.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Cache-Control"] == "no-store"


def test_no_inline_script_in_any_page(client: FlaskClient, jobs: Fixture) -> None:
    for url in ["/", "/jobs/failed", f"/jobs/default/{jobs.failed}", "/queues", "/workers",
                "/schedules", "/jobs/scheduled",
                "/audit", "/ops/new?queue=default&state=failed&action=requeue"]:
        html = _html(client, url)
        for tag in re.findall(r"<script[^>]*>", html):
            assert "src=" in tag, (url, tag)
        assert " on" not in " ".join(re.findall(r"<[a-z]+ [^>]*\bon\w+=", html))


def test_static_htmx_is_the_pinned_file(client: FlaskClient) -> None:
    import hashlib

    resp = client.get("/static/vendor/htmx-2.0.11.min.js")
    assert resp.status_code == 200
    assert hashlib.sha256(resp.data).hexdigest() == (
        "d6fdc75f204e6bdefa99b69bf1e6d4ac69b8a364f77929f45c13476b4000f717")
    resp.close()
