"""The JSON API, /metrics and /healthz."""

from __future__ import annotations

from flask.testing import FlaskClient

from jobq_core import Queue, Settings
from jobq_core.inspect import Inspector
from tests import tasks
from tests.dashboard.conftest import Fixture, csrf_token
from tests.helpers import drain


def _post(client: FlaskClient, url: str, body: dict[str, object] | None = None) -> object:
    return client.post(url, json=body or {}, headers={"X-CSRF-Token": csrf_token(client)})


def test_api_index_and_reads(client: FlaskClient, jobs: Fixture) -> None:
    assert "GET /api/overview" in client.get("/api/").json["endpoints"]  # type: ignore[index]
    ov = client.get("/api/overview").json
    assert ov is not None and ov["counts"]["default"]["failed"] == 1
    assert ov["totals"]["pending"] == 2 and "version" in ov["server"]
    queues = client.get("/api/queues").json
    assert queues is not None and queues[0]["name"] == "default" and queues[0]["paused"] is False
    page = client.get("/api/jobs/failed?queue=default").json
    assert page is not None and page["total"] == 1 and page["rows"][0]["id"] == jobs.failed
    assert page["page"] == 1 and page["last_page"] == 1
    found = client.get("/api/jobs/failed?text=broke").json
    assert found is not None and found["rows"][0]["id"] == jobs.failed
    assert found["next_start"] is None
    detail = client.get(f"/api/jobs/default/{jobs.failed}").json
    assert detail is not None and detail["state"] == "failed" and len(detail["attempts"]) == 1
    assert "ValueError" in detail["fields"]["error"]
    assert isinstance(client.get("/api/workers").json, list)
    hist = client.get("/api/history?minutes=5").json
    assert hist is not None and len(hist) == 5 and sum(p["failed"] for p in hist) >= 2


def test_api_actions_and_audit(client: FlaskClient, jobs: Fixture, queue: Queue) -> None:
    seen = {"state": "failed", "requeues": 0}
    resp = _post(client, f"/api/jobs/default/{jobs.failed}/requeue", seen)
    assert resp.json == {"id": jobs.failed, "queue": "default", "was": "failed",  # type: ignore[attr-defined]
                         "now": "pending"}
    assert _post(client, f"/api/jobs/default/{jobs.failed}/requeue", seen).status_code == 409  # type: ignore[attr-defined]
    assert _post(client, f"/api/jobs/default/{jobs.dead}/purge").json["now"] == "purged"  # type: ignore[attr-defined]
    assert _post(client, f"/api/jobs/default/{jobs.scheduled}/cancel").json["now"] == "cancelled"  # type: ignore[attr-defined]
    rel = _post(client, f"/api/jobs/default/{jobs.processing}/release", {"worker": "ghost-worker"})
    assert rel.json["now"] == "pending"  # type: ignore[attr-defined]
    assert _post(client, "/api/queues/default/pause").json == {"queue": "default", "paused": True}  # type: ignore[attr-defined]
    assert queue.is_paused()
    _post(client, "/api/queues/default/resume")
    log = client.get("/api/audit").json
    assert log is not None and log["total"] == 6
    assert [e["action"] for e in log["entries"]][:2] == ["resume", "pause"]


def test_api_bulk_operation(client: FlaskClient, settings: Settings, queue: Queue) -> None:
    queue.enqueue_many([(tasks.boom_once, [str(i)]) for i in range(7)])
    drain(settings)
    start = _post(client, "/api/ops", {"queue": "default", "state": "failed",
                                       "action": "requeue"})
    assert start.status_code == 201  # type: ignore[attr-defined]
    op = start.json  # type: ignore[attr-defined]
    assert op["total"] == 7 and not op["finished"]
    assert client.get(start.headers["Location"]).json["id"] == op["id"]  # type: ignore[attr-defined,index]
    done = _post(client, f"/api/ops/default/{op['id']}/step").json  # type: ignore[attr-defined]
    assert done["finished"] and done["done"] == 7 and done["percent"] == 100
    assert Inspector(settings).counts()["default"]["pending"] == 7
    bad = _post(client, "/api/ops", {"queue": "default", "state": "failed", "action": "x"})
    assert bad.status_code == 400  # type: ignore[attr-defined]


def test_api_body_must_be_an_object(client: FlaskClient, jobs: Fixture) -> None:
    resp = client.post("/api/ops", json=[1, 2], headers={"X-CSRF-Token": csrf_token(client)})
    assert resp.status_code == 400 and resp.json is not None


def test_metrics(client: FlaskClient, jobs: Fixture) -> None:
    resp = client.get("/metrics")
    text = resp.get_data(as_text=True)
    assert resp.status_code == 200 and resp.content_type.startswith("text/plain")
    assert 'jobq_jobs{queue="default",state="failed"} 1.0' in text
    assert 'jobq_jobs{queue="default",state="pending"} 2.0' in text
    assert 'jobq_completed_total{queue="default"} 1.0' in text
    assert 'jobq_queue_paused{queue="default"} 0.0' in text
    assert "jobq_next_pending_age_seconds" in text and 'jobq_workers{state="lost"}' in text
    om = client.get("/metrics", headers={"Accept": "application/openmetrics-text"})
    assert om.content_type.startswith("application/openmetrics-text")


def test_healthz(client: FlaskClient) -> None:
    resp = client.get("/healthz")
    assert resp.status_code == 200 and resp.data == b"ok\n"
