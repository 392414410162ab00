"""Actions from the pages: one job, selected jobs, all jobs (stepped bulk operations),
queues and workers; every one confirmed when destructive and written to the audit log."""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient

from jobq_core import Queue, Settings
from jobq_core.inspect import Inspector
from tests import tasks
from tests.dashboard.conftest import Fixture, post
from tests.helpers import drain


def _audit(settings: Settings) -> list[str]:
    return [f"{e.action}|{e.state}|{e.count}" for e in Inspector(settings).audit().entries]


def test_requeue_one_failed_job(client: FlaskClient, jobs: Fixture, queue: Queue,
                                settings: Settings) -> None:
    resp = post(client, f"/jobs/default/{jobs.failed}/requeue")
    assert resp.status_code == 302 and resp.headers["Location"].endswith(jobs.failed)
    assert queue.job(jobs.failed).status == "pending"  # type: ignore[union-attr]
    page = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert "Requeued job" in page
    assert _audit(settings)[0] == "requeue|failed|1"


def test_requeue_of_a_pending_job_is_a_conflict(client: FlaskClient, jobs: Fixture) -> None:
    resp = post(client, f"/jobs/default/{jobs.pending}/requeue")
    assert resp.status_code == 409 and b"only" in resp.data


def test_purge_one_asks_first(client: FlaskClient, jobs: Fixture, queue: Queue,
                              settings: Settings) -> None:
    ask = post(client, f"/jobs/default/{jobs.dead}/purge")
    assert ask.status_code == 200 and b"Purge 1 dead job" in ask.data
    assert queue.job(jobs.dead) is not None
    done = post(client, f"/jobs/default/{jobs.dead}/purge", {"confirm": "1"})
    assert done.status_code == 302 and queue.job(jobs.dead) is None
    assert _audit(settings)[0] == "purge|dead|1"


def test_cancel_pending_job(client: FlaskClient, jobs: Fixture, queue: Queue) -> None:
    assert b"Cancel 1 pending job" in post(client, f"/jobs/default/{jobs.pending}/cancel").data
    post(client, f"/jobs/default/{jobs.pending}/cancel", {"confirm": "1"})
    assert queue.job(jobs.pending).status == "cancelled"  # type: ignore[union-attr]


def test_hand_back_orphan(client: FlaskClient, jobs: Fixture, queue: Queue,
                          settings: Settings) -> None:
    resp = post(client, f"/jobs/default/{jobs.processing}/release", {"worker": "ghost-worker"})
    assert resp.status_code == 302
    assert queue.job(jobs.processing).status == "pending"  # type: ignore[union-attr]
    assert _audit(settings)[0].startswith("hand back orphan")
    again = post(client, f"/jobs/default/{jobs.processing}/release", {"worker": "ghost-worker"})
    assert again.status_code == 409


def test_requeue_selected(client: FlaskClient, settings: Settings, queue: Queue) -> None:
    queue.enqueue_many([(tasks.boom_once, [str(i)]) for i in range(5)])
    drain(settings)
    ids = [r.id for r in Inspector(settings).jobs("failed", "default").rows]
    resp = post(client, "/selection/failed", {"action": "requeue", "queue": "default",
                                               "ids": [f"default/{i}" for i in ids[:3]]})
    assert resp.status_code == 302 and "queue=default" in resp.headers["Location"]
    counts = Inspector(settings).counts()["default"]
    assert counts["failed"] == 2 and counts["pending"] == 3
    assert "Requeued 3 of 3" in client.get(resp.headers["Location"]).get_data(as_text=True)


def test_purge_selected_confirms_with_count(client: FlaskClient, settings: Settings,
                                            queue: Queue) -> None:
    queue.enqueue_many([(tasks.boom_once, [str(i)]) for i in range(4)])
    drain(settings)
    picked = [f"default/{r.id}" for r in Inspector(settings).jobs("failed", "default").rows]
    ask = post(client, "/selection/failed", {"action": "purge", "queue": "default",
                                              "ids": picked})
    assert b"Purge 4 failed jobs" in ask.data
    assert Inspector(settings).counts()["default"]["failed"] == 4
    post(client, "/selection/failed", {"action": "purge", "queue": "default", "ids": picked,
                                        "confirm": "1"})
    assert Inspector(settings).counts()["default"]["failed"] == 0
    assert _audit(settings)[0] == "purge selected|failed|4"


def test_selection_reports_jobs_that_moved_on(client: FlaskClient, jobs: Fixture) -> None:
    resp = post(client, "/selection/failed", {"action": "requeue", "queue": "default",
                                               "ids": [f"default/{jobs.failed}",
                                                       f"default/{jobs.pending}"]})
    page = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert "Requeued 1 of 2" in page and "moved on meanwhile" in page


def test_bulk_requeue_all_in_steps(client: FlaskClient, settings: Settings,
                                   queue: Queue) -> None:
    queue.enqueue_many([(tasks.boom_once, [str(i)]) for i in range(12)])
    drain(settings)
    ask = client.get("/ops/new?queue=default&state=failed&action=requeue")
    assert ask.status_code == 200 and b"Requeue all 12 failed jobs" in ask.data
    assert Inspector(settings).counts()["default"]["failed"] == 12  # GET changed nothing
    start = post(client, "/ops", {"queue": "default", "state": "failed", "action": "requeue",
                                  "confirm": "1"})
    assert start.status_code == 302
    status_url = start.headers["Location"]
    page = client.get(status_url).get_data(as_text=True)
    assert 'hx-trigger="load delay:50ms"' in page
    step_url = re.search(r'hx-post="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    frag = post(client, step_url, headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "Done." in frag and "12 jobs requeued" in frag and "hx-post" not in frag
    assert Inspector(settings).counts()["default"]["pending"] == 12
    log = _audit(settings)
    assert log[0] == "requeue all: finished|failed|12"
    assert log[1] == "requeue all: started|failed|12"
    # A finished operation stays finished; stepping again changes nothing.
    post(client, step_url)
    assert _audit(settings)[0] == log[0] and len(_audit(settings)) == 2


def test_bulk_purge_with_filter(client: FlaskClient, settings: Settings, queue: Queue) -> None:
    queue.enqueue_many([(tasks.boom_once, ["needle" if i % 3 == 0 else "hay"])
                        for i in range(9)])
    drain(settings)
    listing = client.get("/jobs/failed?queue=default&text=needle").get_data(as_text=True)
    assert "Purge all matching" in listing
    ask = client.get("/ops/new?queue=default&state=failed&action=purge&text=needle")
    assert b"contain \xe2\x80\x9cneedle\xe2\x80\x9d" in ask.data
    start = post(client, "/ops", {"queue": "default", "state": "failed", "action": "purge",
                                  "text": "needle", "confirm": "1"})
    post(client, start.headers["Location"] + "/step")
    assert Inspector(settings).counts()["default"]["failed"] == 6


def test_bulk_purge_of_many_asks_for_the_queue_name(client: FlaskClient, settings: Settings,
                                                    queue: Queue,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from dashboard.views import ops

    monkeypatch.setattr(ops, "CONFIRM_NAME_AT", 3)
    queue.enqueue_many([(tasks.add, [i, i]) for i in range(5)])
    assert b"Type the queue name" in client.get(
        "/ops/new?queue=default&state=pending&action=purge").data
    form = {"queue": "default", "state": "pending", "action": "purge", "confirm": "1"}
    assert post(client, "/ops", form).status_code == 400
    assert post(client, "/ops", {**form, "confirm_name": "wrong"}).status_code == 400
    ok = post(client, "/ops", {**form, "confirm_name": "default"})
    assert ok.status_code == 302
    post(client, ok.headers["Location"] + "/step")
    assert Inspector(settings).counts()["default"]["pending"] == 0


def test_bulk_start_needs_confirmation(client: FlaskClient, jobs: Fixture) -> None:
    assert post(client, "/ops", {"queue": "default", "state": "failed",
                                 "action": "requeue"}).status_code == 400


def test_pause_and_resume_queue(client: FlaskClient, jobs: Fixture, queue: Queue,
                                settings: Settings) -> None:
    post(client, "/queues/default/pause")
    assert queue.is_paused()
    assert b">Resume<" in client.get("/queues").data
    post(client, "/queues/default/resume")
    assert not queue.is_paused()
    assert _audit(settings)[:2] == ["resume||0", "pause||0"]


def test_prune_lost_workers(client: FlaskClient, settings: Settings, queue: Queue) -> None:
    from jobq_core.keys import Keyspace

    queue.client.zadd(Keyspace(settings.prefix).workers(), {"gone-1": 0, "gone-2": 0})
    resp = post(client, "/workers/prune")
    assert "Forgot 2 lost worker" in client.get(resp.headers["Location"]).get_data(as_text=True)
