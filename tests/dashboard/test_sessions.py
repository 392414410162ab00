"""Issue 12, dashboard: sessions end server-side (logout, password or role change), failed
logins are throttled (form and Basic), the cookie is Secure over https (proxy headers only
when trusted), and the no-login mode serves this machine only, however it is started."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from dashboard import create_app
from jobq_core import Queue, Settings
from jobq_core.inspect import Inspector
from jobq_core.keys import Keyspace
from tests.dashboard.conftest import (
    ADMIN_PW,
    VIEWER_PW,
    Fixture,
    basic_auth,
    csrf_token,
    fast_hash,
    login,
    post,
)

COOKIE = "jobq_session"


def _cookie(c: FlaskClient) -> str:
    cookie = c.get_cookie(COOKIE)
    assert cookie is not None
    return cookie.value


def _replay(app: Flask, cookie: str) -> FlaskClient:
    """A fresh client (another browser) that presents a copied session cookie."""
    thief = app.test_client()
    thief.set_cookie(COOKIE, cookie)
    return thief


def _audit(settings: Settings) -> list[str]:
    return [f"{e.actor}|{e.action}|{e.detail}" for e in Inspector(settings).audit().entries]


# -- sessions end on the server ---------------------------------------------------------------
def test_logout_revokes_a_copied_cookie(auth_app: Flask, jobs: Fixture, queue: Queue) -> None:
    c = auth_app.test_client()
    assert login(c).status_code == 302
    copied, token = _cookie(c), csrf_token(c)
    assert _replay(auth_app, copied).get("/").status_code == 200  # the copy works while logged in
    assert post(c, "/logout").status_code == 302
    thief = _replay(auth_app, copied)
    assert thief.get("/").status_code == 302  # to the login page
    assert thief.get("/api/overview").status_code == 401
    resp = thief.post(f"/jobs/default/{jobs.failed}/requeue", data={"csrf_token": token,
                                                                    "state": "failed"})
    assert resp.status_code in (302, 401, 403)
    assert queue.job(jobs.failed).status == "failed"


def test_password_change_revokes_sessions(auth_settings: Settings) -> None:
    app = create_app(auth_settings)
    c = app.test_client()
    login(c)
    copied = _cookie(c)
    changed = create_app(auth_settings.replace(dashboard_password_hash=fast_hash("new one!!")))
    assert _replay(changed, copied).get("/").status_code == 302
    # ... and stays revoked if the old password comes back (the record was deleted).
    assert _replay(app, copied).get("/").status_code == 302


def test_role_change_revokes_sessions(auth_settings: Settings) -> None:
    app = create_app(auth_settings)
    c = app.test_client()
    login(c, "viewer", VIEWER_PW)
    copied = _cookie(c)
    # The same name and password, now the admin account: the read-only session must not
    # become an admin one.
    promoted = create_app(auth_settings.replace(
        dashboard_user="viewer",
        dashboard_password_hash=auth_settings.dashboard_readonly_password_hash,
        dashboard_readonly_user="", dashboard_readonly_password_hash=""))
    assert _replay(promoted, copied).get("/").status_code == 302


def test_sessions_are_shared_by_web_processes(auth_settings: Settings) -> None:
    c = create_app(auth_settings).test_client()
    login(c)
    other = create_app(auth_settings)  # another gunicorn worker: same Redis, same key
    assert _replay(other, _cookie(c)).get("/").status_code == 200


# -- failed logins ----------------------------------------------------------------------------
@pytest.fixture
def throttled(auth_settings: Settings) -> Settings:
    return auth_settings.replace(dashboard_login_free_attempts=3,
                                 dashboard_login_lockout_max_s=4.0)


def _clear_waits(settings: Settings, r: redis.Redis) -> None:
    """What time does: every wait ends (their keys expire)."""
    for key in r.scan_iter(Keyspace(settings.prefix).dashboard("wait:*")):
        r.delete(key)


def _hold_waits(settings: Settings, r: redis.Redis) -> None:
    """Stop the clock: every client or account past its free attempts now waits 60 s from
    here, whether or not its first (1 s) wait already ran out on a loaded machine."""
    for key in r.scan_iter(Keyspace(settings.prefix).dashboard("failures:*")):
        if int(r.get(key) or 0) > settings.dashboard_login_free_attempts:
            r.set(key.replace(":failures:", ":wait:", 1), 1, px=60_000)


def test_form_logins_are_throttled_per_client(throttled: Settings, r: redis.Redis) -> None:
    c = create_app(throttled).test_client()
    for _ in range(3):
        assert login(c, "admin", "wrong").status_code == 401
    resp = login(c, "admin", "wrong")  # the 4th failure starts a wait
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "1"
    assert "Too many failed logins: try again in 1 s" in resp.get_data(as_text=True)
    _hold_waits(throttled, r)
    resp = login(c, "admin", ADMIN_PW)  # even the right password waits
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "60"
    assert login(c, "nobody", "x").status_code == 429  # per client, whatever the account
    waits = []
    for _ in range(4):
        _clear_waits(throttled, r)
        waits.append(int(login(c, "admin", "wrong").headers["Retry-After"]))
    assert waits == [2, 4, 4, 4]  # doubling, capped at dashboard_login_lockout_max_s
    entries = _audit(throttled)
    assert len(entries) == 5 and all("login throttled" in e for e in entries)
    assert "127.0.0.1 (form)" in entries[0] and "'admin'" in entries[0]


def test_success_resets_the_count(throttled: Settings, r: redis.Redis) -> None:
    c = create_app(throttled).test_client()
    for _ in range(4):
        login(c, "admin", "wrong")
    _clear_waits(throttled, r)
    assert login(c, "admin", ADMIN_PW).status_code == 302
    for _ in range(3):  # a fresh allowance
        assert login(c, "admin", "wrong").status_code == 401


def test_account_is_throttled_across_clients_but_not_for_its_known_client(
        throttled: Settings, r: redis.Redis) -> None:
    app = create_app(throttled)
    operator = app.test_client()
    assert login(operator, "admin", ADMIN_PW).status_code == 302  # from its usual address
    post(operator, "/logout")
    codes = []
    for i in range(4):  # a distributed guesser: a new address per try
        resp = post(app.test_client(), "/login", {"username": "admin", "password": "guess"},
                    environ_overrides={"REMOTE_ADDR": f"10.0.0.{i + 1}"})
        codes.append(resp.status_code)
    assert codes == [401, 401, 401, 429]
    _hold_waits(throttled, r)
    resp = post(app.test_client(), "/login", {"username": "admin", "password": ADMIN_PW},
                environ_overrides={"REMOTE_ADDR": "10.0.0.99"})
    assert resp.status_code == 429  # the account waits for addresses it does not know
    # The operator's own address logged in before: not locked out by the guesser.
    assert login(operator, "admin", ADMIN_PW).status_code == 302


def test_basic_auth_failures_are_throttled(throttled: Settings, jobs: Fixture,
                                           r: redis.Redis) -> None:
    c = create_app(throttled).test_client(use_cookies=False)
    for _ in range(3):
        assert c.get("/api/overview", headers=basic_auth("admin", "wrong")).status_code == 401
    resp = c.get("/api/overview", headers=basic_auth("admin", "wrong"))
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "1"
    assert resp.is_json and "Too many failed logins" in resp.json["message"]  # type: ignore[index]
    _hold_waits(throttled, r)
    assert c.get("/api/overview", headers=basic_auth("admin", ADMIN_PW)).status_code == 429
    assert "(basic)" in _audit(throttled)[0]


# -- Secure cookie, proxies -------------------------------------------------------------------
def _set_cookie(c: FlaskClient, **kwargs: object) -> str:
    resp = post(c, "/login", {"username": "admin", "password": ADMIN_PW}, **kwargs)
    assert resp.status_code == 302
    return ";".join(resp.headers.getlist("Set-Cookie"))


def test_cookie_is_secure_over_https(auth_app: Flask) -> None:
    c = auth_app.test_client()
    assert "Secure" in _set_cookie(c, base_url="https://localhost")
    assert "Secure" not in _set_cookie(auth_app.test_client())


def test_proxy_headers_are_ignored_unless_trusted(auth_settings: Settings) -> None:
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.5"}
    untrusted = create_app(auth_settings).test_client()
    assert "Secure" not in _set_cookie(untrusted, headers=headers)
    trusted = create_app(auth_settings.replace(dashboard_trusted_proxies=1)).test_client()
    assert "Secure" in _set_cookie(trusted, headers=headers)


def test_trusted_proxy_client_address_is_throttled(auth_settings: Settings,
                                                   r: redis.Redis) -> None:
    app = create_app(auth_settings.replace(dashboard_trusted_proxies=1,
                                           dashboard_login_free_attempts=1))
    c = app.test_client()
    fwd = {"X-Forwarded-For": "203.0.113.5"}
    assert post(c, "/login", {"username": "admin", "password": "x"}, headers=fwd).status_code == 401
    assert post(c, "/login", {"username": "x", "password": "x"}, headers=fwd).status_code == 429
    _hold_waits(auth_settings, r)
    assert post(c, "/login", {"username": "y", "password": "x"}, headers=fwd).status_code == 429
    other = {"X-Forwarded-For": "203.0.113.6"}  # another client behind the same proxy
    assert post(c, "/login", {"username": "viewer", "password": VIEWER_PW},
                headers=other).status_code == 302
    assert "203.0.113.5 (form)" in _audit(auth_settings)[0]


# -- the no-login mode: this machine only -----------------------------------------------------
@pytest.mark.parametrize("host", ["evil.example", "evil.example:5000", "127.0.0.1.nip.io",
                                  "localhost.evil.example", "[::2]:5000", "10.0.0.1"])
def test_no_login_refuses_other_host_names(client: FlaskClient, host: str) -> None:
    resp = client.get("/", headers={"Host": host})
    assert resp.status_code == 403
    assert "Host header" in resp.get_data(as_text=True)
    token = csrf_token(client)
    resp = client.post("/queues/default/pause", data={"csrf_token": token},
                       headers={"Host": host})
    assert resp.status_code == 403


@pytest.mark.parametrize("host", ["localhost", "localhost:5000", "127.0.0.1:8080", "[::1]:5000",
                                  "LOCALHOST"])
def test_no_login_serves_loopback_host_names(client: FlaskClient, host: str) -> None:
    assert client.get("/", headers={"Host": host}).status_code == 200


def test_allowed_hosts_setting(settings: Settings) -> None:
    c = create_app(settings.replace(dashboard_allowed_hosts="jobq.internal, box:1")).test_client()
    assert c.get("/", headers={"Host": "jobq.internal:5000"}).status_code == 200
    assert c.get("/", headers={"Host": "box"}).status_code == 200
    assert c.get("/", headers={"Host": "evil.example"}).status_code == 403


def test_login_mode_with_allowed_hosts_refuses_others(auth_settings: Settings) -> None:
    c = create_app(auth_settings.replace(dashboard_allowed_hosts="jobq.example")).test_client()
    assert c.get("/login", headers={"Host": "jobq.example"}).status_code == 200
    assert c.get("/login", headers={"Host": "evil.example"}).status_code == 400


@pytest.mark.parametrize("header", ["X-Forwarded-For", "X-Real-Ip", "Forwarded", "Via",
                                    "X-Forwarded-Host", "X-Forwarded-Proto"])
def test_no_login_refuses_proxied_requests(client: FlaskClient, header: str) -> None:
    assert client.get("/", headers={header: "203.0.113.9"}).status_code == 403


def test_no_login_refuses_proxied_requests_even_with_trusted_proxies(settings: Settings) -> None:
    c = create_app(settings.replace(dashboard_trusted_proxies=1)).test_client()
    assert c.get("/", headers={"X-Forwarded-For": "127.0.0.1"}).status_code == 403


@pytest.fixture
def public_listener(fresh_listeners: None) -> Iterator[socket.socket]:
    """This process also listens on every address (as gunicorn -b 0.0.0.0 would)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("0.0.0.0", 0))
    s.listen()
    yield s
    s.close()


def test_no_login_refuses_when_the_process_listens_beyond_loopback(
        client: FlaskClient, public_listener: socket.socket) -> None:
    resp = client.get("/")
    assert resp.status_code == 403
    assert "listens on 0.0.0.0" in resp.get_data(as_text=True)
    assert client.get("/api/overview").status_code == 403
    assert client.get("/healthz").status_code == 200  # says only ok


def test_no_login_serves_again_when_the_public_listener_is_gone(
        client: FlaskClient, fresh_listeners: None) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("0.0.0.0", 0))
    s.listen()
    assert client.get("/").status_code == 403
    s.close()
    assert client.get("/").status_code == 200


def test_with_a_login_a_public_listener_is_fine(auth_app: Flask,
                                                 public_listener: socket.socket) -> None:
    assert auth_app.test_client().get("/", headers=basic_auth("admin", ADMIN_PW)).status_code == 200
