"""The schedules page: what it shows (next and last run, the leader), its actions (enable,
disable, run now, delete with confirmation), their audit entries, and every way to get them
wrong (unknown or malformed name, unknown action, GET, read-only role, no CSRF token)."""

from __future__ import annotations

import time

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from jobq_core import Queue, Schedule, Settings
from jobq_core.inspect import Inspector
from jobq_core.keys import Keyspace
from jobq_core.scheduler import Scheduler
from tests.dashboard.conftest import VIEWER_PW, XSS, login, post

ACTIONS = ("enable", "disable", "run", "delete")


@pytest.fixture
def scheduler(settings: Settings) -> Scheduler:
    s = Scheduler(settings, name="sched-host:4242:abcd")
    s.add(Schedule("ping", "tests.tasks.add", every_s=3600, args=(1, 2)))
    s.add(Schedule("nightly-report", "tests.tasks.echo", cron="0 3 * * *",
                   timezone="Europe/Berlin", queue="reports", missed="run_once"))
    return s


def _audit(settings: Settings) -> list[str]:
    return [f"{e.action}|{e.queue}|{e.detail}" for e in Inspector(settings).audit().entries]


def _html(client: FlaskClient, url: str = "/schedules") -> str:
    resp = client.get(url)
    assert resp.status_code == 200, resp.data[:300]
    return resp.get_data(as_text=True)


def test_lists_schedules_without_a_leader(client: FlaskClient, scheduler: Scheduler) -> None:
    html = _html(client)
    assert 'id="schedule-ping"' in html and 'id="schedule-nightly-report"' in html
    assert "tests.tasks.add" in html and "tests.tasks.echo" in html
    assert "every 3600 s (1 h)" in html
    assert "cron <code>0 3 * * *</code>" in html and "Europe/Berlin" in html
    assert "missed ticks: run the latest once" in html
    assert html.count(">enabled<") == 2 and "never" in html
    # Next run in UTC and, for a cron schedule, in its own zone (03:00 Berlin).
    assert " 03:00 CET" in html or " 03:00 CEST" in html
    assert "No scheduler holds the leader lease: schedules are not firing" in html
    assert 'href="/schedules"' in html and ">Schedules<" in html  # in the nav


def test_empty_page(client: FlaskClient) -> None:
    html = _html(client)
    assert "No schedules stored" in html and "No scheduler holds the leader lease." in html


def test_shows_the_leader_and_the_last_run(client: FlaskClient, settings: Settings,
                                           queue: Queue) -> None:
    s = Scheduler(settings, name="sched-host:4242:abcd")
    s.add(Schedule("tick", "tests.tasks.add", every_s=1, args=(1, 1)))
    due = Inspector(settings).schedule("tick")
    assert due is not None and due.next_ms is not None
    time.sleep(max(0.0, (due.next_ms - Inspector(settings).server_time_ms()) / 1000) + 0.05)
    try:
        s.step()  # takes the lease, fires the due tick
        info = Inspector(settings).schedule("tick")
        assert info is not None and info.fired == 1
        html = _html(client)
        assert 'id="leader-name">sched-host:4242:abcd<' in html and "epoch 1" in html
        assert f'href="/jobs/default/{info.last_job_id}"' in html
        assert "No scheduler holds" not in html
    finally:
        s.resign()


def test_fragment_for_htmx(client: FlaskClient, scheduler: Scheduler) -> None:
    resp = client.get("/schedules", headers={"HX-Request": "true"})
    body = resp.get_data(as_text=True)
    assert resp.status_code == 200 and body.lstrip().startswith('<div id="schedules"')
    assert "<html" not in body and 'hx-trigger="every 3s"' in body


def test_disable_and_enable(client: FlaskClient, scheduler: Scheduler,
                            settings: Settings) -> None:
    resp = post(client, "/schedules/ping/disable")
    assert resp.status_code == 302 and resp.headers["Location"] == "/schedules"
    info = Inspector(settings).schedule("ping")
    assert info is not None and not info.enabled and info.next_ms is None
    page = _html(client)
    assert "Disabled schedule ping" in page and 'id="enable-ping"' in page
    assert post(client, "/schedules/ping/enable").status_code == 302
    info = Inspector(settings).schedule("ping")
    assert info is not None and info.enabled and info.next_ms is not None
    assert _audit(settings)[:2] == ["enable schedule|default|ping",
                                    "disable schedule|default|ping"]


def test_run_now_enqueues_one_job(client: FlaskClient, scheduler: Scheduler,
                                  settings: Settings) -> None:
    resp = post(client, "/schedules/nightly-report/run")
    assert resp.status_code == 302
    reports = Queue("reports", settings=settings)
    assert reports.count("pending") == 1
    job_id = Inspector(settings).jobs("pending", "reports").rows[0].id
    assert job_id.startswith("sched:nightly-report:now:")
    page = _html(client)
    assert f"Enqueued job {job_id} on queue reports" in page
    assert "run by hand" in page and f'href="/jobs/reports/{job_id}"' in page
    assert _audit(settings)[0] == f"run schedule now|reports|nightly-report: {job_id}"


def test_run_now_on_a_full_queue_is_a_conflict(client: FlaskClient, scheduler: Scheduler,
                                               queue: Queue) -> None:
    queue.set_max_length(1)
    queue.enqueue("tests.tasks.add", 1, 1)
    resp = post(client, "/schedules/ping/run")
    assert resp.status_code == 409 and b"max_length" in resp.data
    assert queue.count("pending") == 1


def test_delete_asks_first(client: FlaskClient, scheduler: Scheduler,
                           settings: Settings) -> None:
    ask = post(client, "/schedules/ping/delete")
    assert ask.status_code == 200
    body = ask.get_data(as_text=True)
    assert "Delete schedule <code>ping</code>?" in body and "disable it instead" in body
    assert Inspector(settings).schedule("ping") is not None  # asking changed nothing
    assert _audit(settings) == []
    done = post(client, "/schedules/ping/delete", {"confirm": "1"})
    assert done.status_code == 302 and Inspector(settings).schedule("ping") is None
    assert "Deleted schedule ping" in _html(client)
    assert _audit(settings)[0] == "delete schedule|default|ping"
    # Deleting it again: it is gone.
    assert post(client, "/schedules/ping/delete", {"confirm": "1"}).status_code == 404


def test_malformed_stored_schedule_shows_its_error_escaped(client: FlaskClient,
                                                           settings: Settings,
                                                           r: redis.Redis) -> None:
    k = Keyspace(settings.prefix)
    r.hset(k.schedule("broken"), mapping={"def": '{"task": "' + XSS.replace('"', "'") + '"}',
                                          "enabled": "0"})
    r.zadd(k.schedules(), {"broken": float("inf")})
    html = _html(client)
    assert 'id="schedule-broken"' in html and "stored malformed" in html
    assert "<script>alert" not in html and "&lt;script&gt;" in html
    # Enabling it is refused with a clear 400, not a 500.
    assert post(client, "/schedules/broken/enable").status_code == 400


@pytest.mark.parametrize("action", ACTIONS)
def test_unknown_schedule_is_404(client: FlaskClient, scheduler: Scheduler,
                                 action: str) -> None:
    resp = post(client, f"/schedules/no-such-schedule/{action}", {"confirm": "1"})
    assert resp.status_code == 404 and b"no schedule named" in resp.data


@pytest.mark.parametrize("name", ["bad%20name", "semi;colon", "x" * 65, "%3Cscript%3E",
                                  "nl%0A"])
def test_malformed_schedule_name_is_400(client: FlaskClient, scheduler: Scheduler,
                                        name: str) -> None:
    resp = post(client, f"/schedules/{name}/disable")
    assert resp.status_code == 400 and b"malformed schedule name" in resp.data
    assert b"<script>" not in resp.data


def test_unknown_action_is_404(client: FlaskClient, scheduler: Scheduler,
                               settings: Settings) -> None:
    resp = post(client, "/schedules/ping/explode")
    assert resp.status_code == 404 and b"no schedule action" in resp.data
    assert _audit(settings) == []


@pytest.mark.parametrize("action", ACTIONS)
def test_get_on_an_action_is_405(client: FlaskClient, scheduler: Scheduler,
                                 settings: Settings, action: str) -> None:
    assert client.get(f"/schedules/ping/{action}").status_code == 405
    info = Inspector(settings).schedule("ping")
    assert info is not None and info.enabled
    assert Queue("default", settings=settings).count("pending") == 0


@pytest.mark.parametrize("action", ACTIONS)
def test_post_without_csrf_token_is_refused(client: FlaskClient, scheduler: Scheduler,
                                            settings: Settings, action: str) -> None:
    resp = client.post(f"/schedules/ping/{action}", data={"confirm": "1"})
    assert resp.status_code == 403 and b"CSRF" in resp.data
    cross = post(client, f"/schedules/ping/{action}", {"confirm": "1"},
                 headers={"Origin": "https://evil.example"})
    assert cross.status_code == 403
    info = Inspector(settings).schedule("ping")
    assert info is not None and info.enabled and _audit(settings) == []


def test_read_only_sees_schedules_and_cannot_act(auth_app: Flask, scheduler: Scheduler,
                                                 settings: Settings) -> None:
    c = auth_app.test_client()
    login(c, "viewer", VIEWER_PW)
    html = c.get("/schedules").get_data(as_text=True)
    assert 'id="schedule-ping"' in html and 'id="disable-ping"' not in html
    assert "Run now" not in html
    for action in ACTIONS:
        resp = post(c, f"/schedules/ping/{action}", {"confirm": "1"})
        assert resp.status_code == 403, action
    info = Inspector(settings).schedule("ping")
    assert info is not None and info.enabled
    assert Queue("default", settings=settings).count("pending") == 0


def test_login_required(auth_app: Flask, scheduler: Scheduler, settings: Settings) -> None:
    c = auth_app.test_client()
    assert "/login" in c.get("/schedules").headers["Location"]
    assert post(c, "/schedules/ping/disable").status_code == 302
    info = Inspector(settings).schedule("ping")
    assert info is not None and info.enabled


# -- the JSON API ------------------------------------------------------------------------------
def _basic(user: str, password: str) -> dict[str, str]:
    import base64

    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_api_lists_schedules_and_leader(client: FlaskClient, scheduler: Scheduler) -> None:
    data = client.get("/api/schedules").json
    assert data is not None and data["leader"]["leader"] == ""
    by_name = {s["name"]: s for s in data["schedules"]}
    nightly = by_name["nightly-report"]
    assert nightly["enabled"] is True and nightly["next_ms"] > 0
    assert nightly["when"] == "cron 0 3 * * * (Europe/Berlin)"
    assert nightly["definition"]["queue"] == "reports"
    assert nightly["definition"]["missed"] == "run_once"
    assert by_name["ping"]["definition"]["args"] == [1, 2]


def test_api_actions_with_basic_auth(auth_app: Flask, scheduler: Scheduler,
                                     settings: Settings) -> None:
    from tests.dashboard.conftest import ADMIN_PW

    c = auth_app.test_client(use_cookies=False)
    admin = _basic("admin", ADMIN_PW)
    resp = c.post("/api/schedules/ping/disable", json={}, headers=admin)
    assert resp.status_code == 200 and resp.json is not None
    assert resp.json["action"] == "disable" and resp.json["job_id"] is None
    info = Inspector(settings).schedule("ping")
    assert info is not None and not info.enabled
    run = c.post("/api/schedules/ping/run", json={}, headers=admin).json
    assert run is not None and run["job_id"].startswith("sched:ping:now:")
    assert c.post("/api/schedules/ping/delete", json={}, headers=admin).status_code == 200
    assert Inspector(settings).schedule("ping") is None
    assert _audit(settings)[:3] == ["delete schedule|default|ping (API)",
                                    f"run schedule now|default|ping: {run['job_id']} (API)",
                                    "disable schedule|default|ping (API)"]
    viewer = _basic("viewer", VIEWER_PW)
    assert c.post("/api/schedules/nightly-report/disable", json={},
                  headers=viewer).status_code == 403
    assert c.get("/api/schedules", headers=viewer).status_code == 200


@pytest.mark.parametrize(("url", "status"), [
    ("/api/schedules/no-such/enable", 404), ("/api/schedules/bad%20name/enable", 400),
    ("/api/schedules/ping/explode", 404)])
def test_api_bad_schedule_requests_are_json(client: FlaskClient, scheduler: Scheduler,
                                            url: str, status: int) -> None:
    resp = post(client, url)
    assert resp.status_code == status and resp.is_json
    assert resp.json is not None and resp.json["status"] == status


def test_api_get_on_a_schedule_action_is_405(client: FlaskClient, scheduler: Scheduler) -> None:
    assert client.get("/api/schedules/ping/disable").status_code == 405


def test_api_queues_include_limits(client: FlaskClient, queue: Queue) -> None:
    queue.set_limit("api.example.com", concurrency=3)
    queue.enqueue("tests.tasks.add", 1, 1)
    data = client.get("/api/queues").json
    assert data is not None
    limits = data[0]["limits"]
    assert limits[0]["limit"] == {"key": "api.example.com", "concurrency": 3, "rate": 0,
                                  "per_s": 60.0}
    assert limits[0]["running"] == 0 and data[0]["deferred"] == 0


def test_schedule_nested_past_the_stack_is_stored_malformed(client: FlaskClient,
                                                             settings: Settings,
                                                             r: redis.Redis) -> None:
    # Schedule.from_json caught ValueError but not RecursionError: the schedules page
    # answered 500 (first-day review, 2026-12-06).
    k = Keyspace(settings.prefix)
    r.hset(k.schedule("deep"), mapping={"def": "[" * 100_000 + "]" * 100_000, "enabled": "1"})
    r.zadd(k.schedules(), {"deep": float("inf")})
    resp = client.get("/schedules")
    assert resp.status_code == 200
    assert "stored malformed" in resp.get_data(as_text=True)
