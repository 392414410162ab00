"""Issue 12, dashboard: bad input is a clear 4xx (never a 500), redirects after login stay
on this site, names and ids are matched in full, and the API requeues by the CLI's rules."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from jobq_core import Queue, Settings
from tests import tasks
from tests.dashboard.conftest import ADMIN_PW, Fixture, basic_auth, csrf_token, post
from tests.helpers import drain

UNICODE_DIGITS = ["²", "\u0661", "\u0663", "\U0001d7d9", "½", "1²", "Ⅻ"]
PAGED = ["/jobs/failed?queue=all&{p}", "/jobs/pending?queue=default&{p}", "/audit?{p}",
         "/api/jobs/failed?{p}", "/api/audit?{p}"]


@pytest.mark.parametrize("digit", UNICODE_DIGITS)
@pytest.mark.parametrize("url", PAGED)
def test_unicode_digits_in_page_are_a_400(client: FlaskClient, jobs: Fixture, url: str,
                                          digit: str) -> None:
    resp = client.get(url.format(p=f"page={digit}"))
    assert resp.status_code == 400, resp.data[:300]
    assert "page must be a whole number" in resp.get_data(as_text=True)


@pytest.mark.parametrize("query", ["per_page=\uff12\uff15", "per_page=²", "start=²", "start=\u0663",
                                   "task=x&start=²"])
@pytest.mark.parametrize("base", ["/jobs/failed?queue=all", "/api/jobs/failed?queue=all"])
def test_unicode_digits_in_every_number_param_are_a_400(client: FlaskClient, jobs: Fixture,
                                                        base: str, query: str) -> None:
    assert client.get(f"{base}&{query}").status_code == 400


def test_unicode_minutes_in_history_is_a_400(client: FlaskClient) -> None:
    assert client.get("/api/history?minutes=\u0663").status_code == 400


def test_deeply_nested_json_is_a_400(client: FlaskClient, jobs: Fixture) -> None:
    headers = {"X-CSRF-Token": csrf_token(client), "Content-Type": "application/json"}
    for body in ("[" * 100_000 + "]" * 100_000, '{"a":' * 50_000 + "1" + "}" * 50_000):
        resp = client.post("/api/ops", data=body, headers=headers)
        assert resp.status_code == 400, resp.data[:200]
        assert resp.is_json and "JSON" in resp.json["message"]  # type: ignore[index]


def test_malformed_json_is_a_400(client: FlaskClient, jobs: Fixture) -> None:
    headers = {"X-CSRF-Token": csrf_token(client), "Content-Type": "application/json"}
    resp = client.post(f"/api/jobs/default/{jobs.processing}/release", data="{nope",
                       headers=headers)
    assert resp.status_code == 400


def test_oversize_json_is_refused_unread(auth_app: Flask, jobs: Fixture, queue: Queue) -> None:
    c = auth_app.test_client(use_cookies=False)
    big = b'{"pad": "' + b"x" * (10 * 1024 * 1024) + b'"}'
    resp = c.post(f"/api/jobs/default/{jobs.failed}/requeue", data=big,
                  headers={**basic_auth("admin", ADMIN_PW), "Content-Type": "application/json"})
    assert resp.status_code == 413
    assert queue.job(jobs.failed).status == "failed"  # nothing happened


@pytest.mark.parametrize("url", ["/jobs/default%0A/{id}", "/jobs/default/{id}%0A",
                                 "/api/jobs/default%0A/{id}", "/api/jobs/default/{id}%0A",
                                 "/job/{id}%0A", "/jobs/failed?queue=default%0A"])
def test_trailing_newline_in_names_and_ids_is_a_400(client: FlaskClient, jobs: Fixture,
                                                    url: str) -> None:
    resp = client.get(url.format(id=jobs.failed))
    assert resp.status_code == 400, resp.data[:300]


def test_trailing_newline_in_schedule_name_is_a_400(client: FlaskClient) -> None:
    resp = post(client, "/schedules/nightly%0A/run")
    assert resp.status_code == 400


@pytest.mark.parametrize("target", [
    "/\t/evil.example/", "/\n/evil.example", "/\r/evil.example",
    "/\\evil.example", "\\\\evil.example", "/\\/evil.example", "//evil.example",
    "///evil.example", "https://evil.example", "http:/evil.example",
    "javascript:alert(1)", " //evil.example", "/\x00/evil.example", "/\u3000/evil.example",
    "/\uff0f/evil.example", "\uff0f\uff0fevil.example", "/\x0b/evil.example",
    "/\x7f/evil.example", "/\u2028/evil.example",
])
def test_login_never_redirects_off_site(auth_app: Flask, target: str) -> None:
    c = auth_app.test_client()
    resp = post(c, "/login", {"username": "admin", "password": ADMIN_PW, "next": target})
    assert resp.status_code == 302
    assert resp.headers["Location"] == "/", (target, resp.headers["Location"])


def test_login_redirect_of_the_issue(auth_app: Flask) -> None:
    # The request as found: the form body carries next=/%09/evil.example/ (a tab).
    c = auth_app.test_client()
    body = (f"csrf_token={csrf_token(c)}&username=admin&password={ADMIN_PW.replace(' ', '+')}"
            "&next=/%09/evil.example/")
    resp = c.post("/login", data=body, content_type="application/x-www-form-urlencoded")
    assert resp.status_code == 302 and resp.headers["Location"] == "/"


def test_login_page_form_carries_only_a_safe_next(auth_app: Flask) -> None:
    body = auth_app.test_client().get("/login?next=/%09/evil.example/").get_data(as_text=True)
    assert "evil.example" not in body


def test_login_keeps_a_local_next(auth_app: Flask) -> None:
    c = auth_app.test_client()
    resp = post(c, "/login", {"username": "admin", "password": ADMIN_PW,
                              "next": "/jobs/failed?queue=all&page=2"})
    assert resp.headers["Location"] == "/jobs/failed?queue=all&page=2"


def test_api_requeue_of_a_completed_job_twice_is_refused(client: FlaskClient, queue: Queue,
                                                         settings: Settings) -> None:
    job = queue.enqueue(tasks.add, 1, 2)
    drain(settings)
    seen = client.get(f"/api/jobs/default/{job.id}").json
    assert seen is not None and seen["state"] == "completed" and seen["requeues"] == 0
    headers = {"X-CSRF-Token": csrf_token(client)}
    body = {"state": seen["state"], "requeues": seen["requeues"]}
    first = client.post(f"/api/jobs/default/{job.id}/requeue", json=body, headers=headers)
    assert first.status_code == 200
    drain(settings)  # it ran again and is completed again
    again = client.post(f"/api/jobs/default/{job.id}/requeue", json=body, headers=headers)
    assert again.status_code == 409, again.json
    assert "requeued" in again.json["message"]  # type: ignore[index]
    assert queue.job(job.id).status == "completed"


def test_api_requeue_says_what_it_needs(client: FlaskClient, jobs: Fixture) -> None:
    resp = client.post(f"/api/jobs/default/{jobs.failed}/requeue", json={},
                       headers={"X-CSRF-Token": csrf_token(client)})
    assert resp.status_code == 400 and "requeues" in resp.json["message"]  # type: ignore[index]


def test_api_requeue_of_the_wrong_state_is_a_409(client: FlaskClient, jobs: Fixture) -> None:
    resp = client.post(f"/api/jobs/default/{jobs.failed}/requeue",
                       json={"state": "dead", "requeues": 0},
                       headers={"X-CSRF-Token": csrf_token(client)})
    assert resp.status_code == 409 and "is failed, not dead" in resp.json["message"]  # type: ignore[index]


def test_page_requeue_double_submit_is_refused(client: FlaskClient, queue: Queue,
                                               settings: Settings) -> None:
    job = queue.enqueue(tasks.add, 1, 2)
    drain(settings)
    page = client.get(f"/jobs/default/{job.id}").get_data(as_text=True)
    assert 'name="requeues" value="0"' in page
    form = {"state": "completed", "requeues": "0"}
    assert post(client, f"/jobs/default/{job.id}/requeue", form).status_code == 302
    drain(settings)
    assert post(client, f"/jobs/default/{job.id}/requeue", form).status_code == 409


def _group_id(settings: Settings) -> str:
    from jobq_core.errorgroups import error_groups
    from jobq_core.inspect import Inspector

    return error_groups(Inspector(settings), None)[0].id


@pytest.mark.parametrize("form", [
    {"cutoff_ms": "nan", "done": "0"}, {"cutoff_ms": "inf", "done": "0"},
    {"cutoff_ms": "1e999", "done": "0"}, {"cutoff_ms": "\u0663", "done": "0"},
    {"cutoff_ms": "1_000", "done": "0"}, {"cutoff_ms": "5", "done": "-5"},
    {"cutoff_ms": "5", "done": "\u0663"}, {"cutoff_ms": "5", "done": "9" * 20},
])
def test_error_group_step_form_numbers_are_checked(client: FlaskClient, jobs: Fixture,
                                                   settings: Settings,
                                                   form: dict[str, str]) -> None:
    resp = post(client, f"/errors/default/{_group_id(settings)}/requeue", form)
    assert resp.status_code == 400, (form, resp.status_code)


def test_error_group_step_form_takes_what_the_page_wrote(client: FlaskClient, jobs: Fixture,
                                                         settings: Settings) -> None:
    resp = post(client, f"/errors/default/{_group_id(settings)}/requeue",
                {"cutoff_ms": "1765000000123.0", "done": "0"})
    assert resp.status_code == 200


@pytest.mark.parametrize("body", [{"cutoff_ms": True}, {"cutoff_ms": -1}, {"done": -5},
                                  {"done": 10**30}, {"cutoff_ms": 10**30}, {"done": "3"}])
def test_error_group_api_numbers_are_checked(client: FlaskClient, jobs: Fixture,
                                             settings: Settings, body: dict[str, object]) -> None:
    resp = client.post(f"/api/errors/default/{_group_id(settings)}/requeue", json=body,
                       headers={"X-CSRF-Token": csrf_token(client)})
    assert resp.status_code == 400, (body, resp.status_code)
