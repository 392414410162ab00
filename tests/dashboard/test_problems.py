"""The problems panel (first on the overview), its fragment, GET /api/problems and the
hand-back of a lost worker's jobs (POST, CSRF, audited)."""

from __future__ import annotations

from flask.testing import FlaskClient

from jobq_core import Queue, Settings
from jobq_core.inspect import Inspector
from jobq_core.scripts import Scripts
from tests import tasks
from tests.dashboard.conftest import XSS, post


def _orphan(settings: Settings, queue: Queue, worker: str = "ghost-worker") -> str:
    """A processing job held by a worker that never beat (as one SIGKILLed long ago)."""
    job = queue.enqueue(tasks.echo, XSS)
    Scripts(queue.client, settings).claim(["default"], 1, worker)
    return job.id


def test_overview_shows_problems_first(client: FlaskClient, settings: Settings,
                                       queue: Queue) -> None:
    job_id = _orphan(settings, queue)
    queue.enqueue(tasks.add, 1, 2)
    html = client.get("/").get_data(as_text=True)
    assert html.index('id="problems"') < html.index("<h2>Queues")
    assert "worker ghost-worker stopped beating and still holds 1 processing job" in html
    assert "no live worker serves default" in html and job_id in html
    assert "1 pending job in default and no live worker serves it" in html
    assert 'href="/jobs/pending?queue=default"' in html
    assert "Hand back 1 job now" in html and "<script>alert" not in html


def test_problems_fragment_and_api(client: FlaskClient, settings: Settings,
                                   queue: Queue) -> None:
    resp = client.get("/problems", headers={"HX-Request": "true"})
    assert resp.status_code == 200 and b"No problems" in resp.data
    assert b"<html" not in resp.data
    assert client.get("/api/problems").get_json() == {"ok": True, "problems": []}
    job_id = _orphan(settings, queue)
    data = client.get("/api/problems").get_json()
    assert data["ok"] is False
    p = data["problems"][0]
    assert p["kind"] == "lost_worker" and p["worker"] == "ghost-worker"
    assert [j["id"] for j in p["jobs"]] == [job_id] and p["jobs"][0]["reaper_live"] is False
    assert p["url"] == "/jobs/processing?queue=default"


def test_hand_back_needs_csrf_is_audited_and_clears_the_problem(
        client: FlaskClient, settings: Settings, queue: Queue) -> None:
    job_id = _orphan(settings, queue)
    form = {"worker": "ghost-worker", "job": f"default/{job_id}"}
    assert client.post("/problems/hand-back", data=form).status_code in (400, 403)
    assert queue.job(job_id).status == "processing"  # type: ignore[union-attr]
    assert client.get("/problems/hand-back").status_code == 405  # no state change on GET
    resp = post(client, "/problems/hand-back", form)
    assert resp.status_code == 302
    assert queue.job(job_id).status == "pending"  # type: ignore[union-attr]
    entry = Inspector(settings).audit().entries[0]
    assert entry.action == "hand back orphan" and job_id in entry.detail
    kinds = [p["kind"] for p in client.get("/api/problems").get_json()["problems"]]
    assert kinds == ["no_worker"]  # the job is back, pending; nobody serves default
    again = post(client, "/problems/hand-back", form, follow_redirects=True)
    assert b"1 not handed back" in again.data


def test_hand_back_refuses_bad_references(client: FlaskClient) -> None:
    assert post(client, "/problems/hand-back", {"worker": "w"}).status_code == 400
    bad = post(client, "/problems/hand-back", {"worker": "w", "job": "default/x\ny"})
    assert bad.status_code == 400
