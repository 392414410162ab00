"""Bad input gets a clear 4xx (page with navigation, or JSON for the API), never a 500, and
is never echoed at length."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from dashboard import create_app
from jobq_core import Settings
from tests.dashboard.conftest import Fixture, post

LONG = "a" * 10_000


@pytest.mark.parametrize(("url", "status", "says"), [
    ("/jobs/bogus", 404, "no job state"),
    ("/jobs/failed?page=0", 400, "page must be"),
    ("/jobs/failed?page=-5", 400, "page must be"),
    ("/jobs/failed?page=abc", 400, "page must be"),
    ("/jobs/failed?page=99999999999999999999", 400, "page must be"),
    ("/jobs/failed?page=5000", 404, "past the last page"),
    ("/jobs/failed?per_page=0", 400, "per_page"),
    ("/jobs/failed?per_page=10000", 400, "per_page"),
    ("/jobs/failed?order=sideways", 400, "order must be"),
    ("/jobs/failed?queue=no%20such!", 400, "malformed queue name"),
    ("/jobs/failed?queue=nosuchqueue", 404, "no queue named"),
    ("/jobs/failed?task=" + "x" * 201, 400, "limited to 200"),
    ("/jobs/failed?start=x", 400, "start must be"),
    ("/jobs/failed?id=bad%20id", 404, "no job with id"),  # any stored id may be asked for
    ("/jobs/failed?id=nosuchjob", 404, "no job with id"),
    ("/jobs/default/nosuchjob", 404, "may have expired"),
    ("/jobs/default/bad%20id!", 404, "may have expired"),
    ("/jobs/nosuchqueue/abc", 404, "no queue named"),
    ("/jobs/default/" + LONG, 400, "malformed job id"),
    ("/job/nosuchjob", 404, "no job with id"),
    ("/job/..%2F..%2Fetc", 404, ""),
    ("/jobs/default/{failed}/raw/secrets", 404, "no field"),
    ("/ops/new?queue=default&state=failed&action=explode", 400, "unknown bulk action"),
    ("/ops/new?queue=default&state=processing&action=purge", 400, "cannot purge processing"),
    ("/ops/new?queue=default&state=nope&action=purge", 404, "no job state"),
    ("/ops/default/nosuchop", 404, "no bulk operation"),
    ("/ops/default/bad%20id", 404, "no bulk operation"),
    ("/audit?page=0", 400, "page must be"),
    ("/audit?page=150", 404, "past the last page"),
    ("/no/such/page", 404, "Not Found"),
])
def test_bad_get_is_a_clear_4xx(client: FlaskClient, jobs: Fixture, url: str, status: int,
                                says: str) -> None:
    resp = client.get(url.format(failed=jobs.failed))
    body = resp.get_data(as_text=True)
    assert resp.status_code == status, (url, resp.status_code, body[:300])
    assert says in body
    assert LONG not in body
    if says and not url.startswith("/no/"):  # routed (unrouted URLs never reach the app)
        assert "Back to the overview" in body  # a page with navigation, not a bare error


@pytest.mark.parametrize(("url", "data", "status"), [
    ("/jobs/default/nosuchjob/requeue", {}, 404),
    ("/jobs/default/{failed}/explode", {}, 404),
    ("/jobs/default/{failed}/cancel", {"confirm": "1"}, 409),
    ("/jobs/default/{pending}/purge", {"confirm": "1"}, 302),
    ("/selection/failed", {"action": "requeue"}, 400),
    ("/selection/failed", {"action": "explode", "ids": "default/x"}, 400),
    ("/selection/failed", {"action": "requeue", "ids": "default/" + LONG}, 400),
    ("/selection/failed", {"action": "requeue", "ids": "nosuch/abc"}, 400),
    ("/selection/processing", {"action": "requeue", "ids": "default/abc"}, 400),
    ("/selection/bogus", {"action": "requeue", "ids": "default/abc"}, 404),
    ("/queues/default/explode", {}, 404),
    ("/queues/nosuch/pause", {}, 404),
    ("/ops", {"queue": "default", "state": "failed", "action": "explode", "confirm": "1"}, 400),
    ("/ops/default/nosuchop/step", {}, 404),
])
def test_bad_post_is_a_clear_4xx(client: FlaskClient, jobs: Fixture, url: str,
                                 data: dict[str, str], status: int) -> None:
    resp = post(client, url.format(failed=jobs.failed, pending=jobs.pending), data)
    assert resp.status_code == status, (url, resp.status_code, resp.data[:300])


def test_too_many_selected(client: FlaskClient, jobs: Fixture) -> None:
    ids = [f"default/j{i}" for i in range(501)]
    resp = post(client, "/selection/failed", {"action": "requeue", "ids": ids})
    assert resp.status_code == 400 and b"at most 500" in resp.data


def test_huge_body_is_refused(client: FlaskClient) -> None:
    resp = post(client, "/selection/failed", {"action": "requeue", "ids": "x" * 2_000_000})
    assert resp.status_code == 413


@pytest.mark.parametrize(("url", "status"), [
    ("/api/jobs/bogus", 404), ("/api/jobs/failed?per_page=7", 400),
    ("/api/jobs/default/nosuch", 404), ("/api/jobs/default/bad%0Aid", 400),
    ("/api/history?minutes=0", 400), ("/api/history?minutes=100000", 400),
    ("/api/ops/default/nosuch", 404), ("/api/nothing-here", 404),
])
def test_api_errors_are_json(client: FlaskClient, jobs: Fixture, url: str, status: int) -> None:
    resp = client.get(url)
    assert resp.status_code == status
    assert resp.is_json and resp.json is not None and resp.json["status"] == status


def test_redis_down_is_a_503_page_not_a_500(settings: Settings) -> None:
    down = settings.replace(redis_url="redis://127.0.0.1:1/0", connect_timeout_s=0.2,
                            socket_timeout_s=0.2, dashboard_secret_key="k")
    c = create_app(down).test_client()
    resp = c.get("/")
    assert resp.status_code == 503 and b"Redis unreachable" in resp.data
    assert c.get("/healthz").status_code == 503
    frag = c.get("/jobs/failed", headers={"HX-Request": "true"})
    assert frag.status_code == 503 and b"<html" not in frag.data


@pytest.mark.parametrize("url", ["/", "/queues", "/jobs/failed", "/errors", "/tasks",
                                 "/problems", "/metrics", "/api/queues", "/api/overview",
                                 "/api/jobs/failed", "/api/problems"])
def test_a_bad_name_in_the_queue_registry_fails_no_page(client: FlaskClient, jobs: Fixture,
                                                        settings: Settings, url: str) -> None:
    # Another writer's entry, or an old version's: names ending in a newline were accepted
    # before 2026-11 (issue 12) and the layout migration carries them over. One such entry
    # made every page and command that lists queues answer 400 "invalid queue name".
    from jobq_core.keys import Keyspace
    from tests.conftest import raw_client

    r = raw_client(settings.redis_url)
    r.sadd(Keyspace(settings.prefix).queues(), "reports\n", "<script>x</script>")
    resp = client.get(url)
    assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
    assert "<script>x" not in resp.get_data(as_text=True)


@pytest.mark.parametrize("stored", ["[" + "9" * 5000 + "]", "[" * 100_000 + "]" * 100_000])
def test_a_job_page_shows_json_python_cannot_decode_as_text(
        client: FlaskClient, settings: Settings, stored: str) -> None:
    # Written by another client: an integer past Python's 4300 digits made the job page
    # answer 500 (ValueError, not a JSONDecodeError).
    from jobq_core import Queue
    from jobq_core.keys import Keyspace
    from tests import tasks
    from tests.conftest import raw_client

    job = Queue("default", settings=settings).enqueue(tasks.add, 1, 1)
    raw_client(settings.redis_url).hset(Keyspace(settings.prefix).job("default", job.id),
                                        mapping={"args": stored, "meta": stored})
    for url in (f"/jobs/default/{job.id}", f"/api/jobs/default/{job.id}"):
        assert client.get(url).status_code == 200, url
