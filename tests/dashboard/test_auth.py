"""Who gets in: loopback-only without accounts, password login, Basic auth, the read-only
role, CSRF on every POST, and no state change on GET."""

from __future__ import annotations

import base64

import pytest
from flask import Flask
from flask.testing import FlaskClient

from dashboard import create_app
from dashboard.auth import Accounts
from jobq_core import ConfigError, Queue, Settings
from tests.dashboard.conftest import (
    ADMIN_PW,
    VIEWER_PW,
    Fixture,
    csrf_token,
    fast_hash,
    login,
    post,
)


def _basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


# -- no accounts: this machine only ---------------------------------------------------------
def test_no_accounts_serves_loopback(client: FlaskClient) -> None:
    assert client.get("/").status_code == 200


def test_no_accounts_refuses_remote_clients(client: FlaskClient) -> None:
    resp = client.get("/", environ_overrides={"REMOTE_ADDR": "10.1.2.3"})
    assert resp.status_code == 403 and b"JOBQ_DASHBOARD_USER" in resp.data
    assert client.get("/api/overview",
                      environ_overrides={"REMOTE_ADDR": "10.1.2.3"}).status_code == 403


def test_no_accounts_refuses_forwarded_requests(client: FlaskClient) -> None:
    # A reverse proxy on this machine forwards the world: not "local".
    resp = client.get("/", headers={"X-Forwarded-For": "203.0.113.9"})
    assert resp.status_code == 403


def test_healthz_needs_no_login_and_reveals_nothing(auth_app: Flask) -> None:
    resp = auth_app.test_client().get("/healthz", environ_overrides={"REMOTE_ADDR": "10.0.0.1"})
    assert resp.status_code == 200 and resp.data == b"ok\n"


# -- accounts --------------------------------------------------------------------------------
def test_pages_redirect_to_login(auth_app: Flask) -> None:
    resp = auth_app.test_client().get("/jobs/failed?queue=all")
    assert resp.status_code == 302
    assert "/login?next=" in resp.headers["Location"]


def test_htmx_poll_without_session_gets_hx_redirect(auth_app: Flask) -> None:
    resp = auth_app.test_client().get("/", headers={"HX-Request": "true"})
    assert resp.status_code == 401 and "/login" in resp.headers["HX-Redirect"]


def test_api_and_metrics_answer_401_with_basic_challenge(auth_app: Flask) -> None:
    c = auth_app.test_client()
    for url in ("/api/overview", "/metrics"):
        resp = c.get(url)
        assert resp.status_code == 401 and resp.headers["WWW-Authenticate"].startswith("Basic")


def test_login_logout_and_next(auth_app: Flask) -> None:
    c = auth_app.test_client()
    assert c.get("/login").status_code == 200
    bad = login(c, "admin", "wrong")
    assert bad.status_code == 401 and b"Wrong user name or password" in bad.data
    assert login(c, "nobody", ADMIN_PW).status_code == 401
    ok = post(c, "/login", {"username": "admin", "password": ADMIN_PW, "next": "/queues"})
    assert ok.status_code == 302 and ok.headers["Location"] == "/queues"
    page = c.get("/")
    assert page.status_code == 200 and b"admin \xc2\xb7 admin" in page.data
    assert post(c, "/logout").status_code == 302
    assert c.get("/").status_code == 302


def test_login_refuses_offsite_next(auth_app: Flask) -> None:
    c = auth_app.test_client()
    resp = post(c, "/login", {"username": "admin", "password": ADMIN_PW,
                              "next": "//evil.example/x"})
    assert resp.headers["Location"] == "/"


def test_login_without_csrf_token_is_refused(auth_app: Flask) -> None:
    c = auth_app.test_client()
    resp = c.post("/login", data={"username": "admin", "password": ADMIN_PW})
    assert resp.status_code == 403


def test_password_change_ends_old_sessions(auth_settings: Settings) -> None:
    c = create_app(auth_settings).test_client()
    login(c)
    assert c.get("/").status_code == 200
    changed = create_app(auth_settings.replace(dashboard_password_hash=fast_hash("new one!!")))
    with c.session_transaction() as s:
        cookie = dict(s)
    c2 = changed.test_client()
    with c2.session_transaction() as s:
        s.update(cookie)
    assert c2.get("/").status_code == 302


def test_basic_auth(auth_app: Flask) -> None:
    c = auth_app.test_client()
    assert c.get("/", headers=_basic("admin", ADMIN_PW)).status_code == 200
    assert c.get("/api/queues", headers=_basic("viewer", VIEWER_PW)).status_code == 200
    assert c.get("/api/queues", headers=_basic("admin", "nope")).status_code == 401


def test_api_post_with_basic_auth_and_json_needs_no_token(auth_app: Flask,
                                                          jobs: Fixture) -> None:
    c = auth_app.test_client(use_cookies=False)
    resp = c.post(f"/api/jobs/default/{jobs.failed}/requeue",
                  json={"state": "failed", "requeues": 0},
                  headers=_basic("admin", ADMIN_PW))
    assert resp.status_code == 200 and resp.json is not None and resp.json["now"] == "pending"


def test_basic_auth_form_post_still_needs_token(auth_app: Flask, jobs: Fixture) -> None:
    # Browsers replay Basic credentials on cross-site form posts: the token still counts.
    c = auth_app.test_client(use_cookies=False)
    resp = c.post(f"/jobs/default/{jobs.failed}/requeue", data={},
                  headers=_basic("admin", ADMIN_PW))
    assert resp.status_code == 403


def test_read_only_sees_everything_changes_nothing(auth_app: Flask, jobs: Fixture,
                                                   queue: Queue) -> None:
    c = auth_app.test_client()
    login(c, "viewer", VIEWER_PW)
    listing = c.get("/jobs/failed").get_data(as_text=True)
    assert jobs.failed in listing and "Requeue selected" not in listing
    assert "Requeue all" not in listing
    detail = c.get(f"/jobs/default/{jobs.failed}").get_data(as_text=True)
    assert "ValueError" in detail and 'id="action-requeue"' not in detail
    assert ">Pause<" not in c.get("/queues").get_data(as_text=True)
    for url in (f"/jobs/default/{jobs.failed}/requeue", f"/jobs/default/{jobs.failed}/purge",
                "/queues/default/pause", "/workers/prune", "/selection/failed", "/ops"):
        assert post(c, url, {"confirm": "1"}).status_code == 403, url
    api = c.post(f"/api/jobs/default/{jobs.failed}/requeue", json={},
                 headers={"X-CSRF-Token": csrf_token(c)})
    assert api.status_code == 403
    assert queue.job(jobs.failed) is not None and queue.job(jobs.failed).status == "failed"  # type: ignore[union-attr]
    assert not queue.is_paused()


def test_accounts_validation() -> None:
    with pytest.raises(ConfigError, match="both"):
        Accounts(Settings(dashboard_user="admin"))
    with pytest.raises(ConfigError, match="not a password hash"):
        Accounts(Settings(dashboard_user="admin", dashboard_password_hash="hunter2"))
    with pytest.raises(ConfigError, match="different names"):
        Accounts(Settings(dashboard_user="a", dashboard_password_hash=fast_hash("x"),
                          dashboard_readonly_user="a",
                          dashboard_readonly_password_hash=fast_hash("y")))


# -- CSRF and methods --------------------------------------------------------------------------
def test_post_without_token_is_refused(client: FlaskClient, jobs: Fixture,
                                       queue: Queue) -> None:
    resp = client.post(f"/jobs/default/{jobs.failed}/requeue")
    assert resp.status_code == 403 and b"CSRF" in resp.data
    csrf_token(client)
    wrong = client.post(f"/jobs/default/{jobs.failed}/requeue", data={"csrf_token": "x" * 43})
    assert wrong.status_code == 403
    assert queue.job(jobs.failed).status == "failed"  # type: ignore[union-attr]


def test_cross_origin_post_is_refused_even_with_token(client: FlaskClient,
                                                      jobs: Fixture) -> None:
    url = f"/jobs/default/{jobs.failed}/requeue"
    assert post(client, url, headers={"Origin": "https://evil.example"}).status_code == 403
    assert post(client, url, headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
    assert post(client, url, headers={"Origin": "null"}).status_code == 403


def test_same_origin_post_with_token_works(client: FlaskClient, jobs: Fixture,
                                           queue: Queue) -> None:
    resp = post(client, f"/jobs/default/{jobs.failed}/requeue",
                headers={"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"})
    assert resp.status_code == 302
    assert queue.job(jobs.failed).status == "pending"  # type: ignore[union-attr]


def test_htmx_header_token_is_accepted(client: FlaskClient, jobs: Fixture) -> None:
    resp = client.post(f"/jobs/default/{jobs.failed}/requeue",
                       headers={"X-CSRF-Token": csrf_token(client), "HX-Request": "true"})
    assert resp.status_code == 302


@pytest.mark.parametrize("url", ["/jobs/default/{id}/requeue", "/jobs/default/{id}/purge",
                                 "/queues/default/pause", "/workers/prune", "/ops",
                                 "/selection/failed", "/logout",
                                 "/api/jobs/default/{id}/requeue"])
def test_no_state_change_on_get(client: FlaskClient, jobs: Fixture, queue: Queue,
                                url: str) -> None:
    resp = client.get(url.format(id=jobs.failed))
    assert resp.status_code == 405
    assert queue.job(jobs.failed).status == "failed"  # type: ignore[union-attr]
    assert not queue.is_paused()
