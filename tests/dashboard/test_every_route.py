"""Checks over every route of the app, so a route added later cannot skip them: every POST
needs the CSRF token, no route changes state on GET, every route's parameters are bounded."""

from __future__ import annotations

import base64
import re

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from dashboard import create_app
from jobq_core import Queue, Settings
from tests.dashboard.conftest import ADMIN_PW, Fixture, basic_auth, csrf_token, login, post

# Routes that answer both GET and POST: only the login form (its POST is CSRF-checked too).
GET_AND_POST = {"jobq.session.login"}


def _app(settings: Settings) -> Flask:
    return create_app(settings)


def _rules(app: Flask, method: str) -> list[tuple[str, str]]:
    out = []
    for rule in app.url_map.iter_rules():
        if method in (rule.methods or ()) and rule.endpoint != "jobq.static":
            # Fill every <param> with a well-formed value.
            url = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: {"state": "failed", "queue": "default",
                                                        "action": "requeue", "field": "args",
                                                        "name": "nightly"}.get(m[1], "x1"),
                         rule.rule)
            out.append((rule.endpoint, url))
    return sorted(out)


def test_only_login_takes_get_and_post(settings: Settings) -> None:
    app = _app(settings)
    both = {r.endpoint for r in app.url_map.iter_rules()
            if {"GET", "POST"} <= (r.methods or set())}
    assert both == GET_AND_POST


def test_every_post_needs_the_csrf_token(client: FlaskClient, jobs: Fixture,
                                         queue: Queue, settings: Settings) -> None:
    rules = _rules(_app(settings), "POST")
    assert len(rules) >= 12
    csrf_token(client)  # the session has a token; the requests below do not send it
    for endpoint, url in rules:
        resp = client.post(url, data={"confirm": "1"})
        assert resp.status_code == 403 and b"CSRF" in resp.data, (endpoint, resp.status_code)
        resp = client.post(url, json={"confirm": "1"})
        assert resp.status_code == 403, (endpoint, "json", resp.status_code)
    assert queue.job(jobs.failed).status == "failed" and not queue.is_paused()  # type: ignore[union-attr]


def test_every_post_refuses_a_basic_auth_form_without_token(
        auth_settings: Settings, jobs: Fixture) -> None:
    app = create_app(auth_settings)
    c = app.test_client(use_cookies=False)
    auth = basic_auth("admin", ADMIN_PW)
    for endpoint, url in _rules(app, "POST"):
        if endpoint == "jobq.session.login":
            continue
        resp = c.post(url, data={"confirm": "1"}, headers=auth)
        assert resp.status_code == 403, (endpoint, resp.status_code)


def test_no_get_changes_anything(client: FlaskClient, jobs: Fixture, settings: Settings,
                                 r: redis.Redis) -> None:
    def lasting() -> dict[str, object]:
        # Keys with a TTL (worker registry entries, ...) may expire meanwhile by themselves.
        return {k: r.dump(k) for k in r.scan_iter(f"{settings.prefix}:*") if r.pttl(k) == -1}

    client.get("/")  # the app's first request may create its shared session key
    before = lasting()
    for _endpoint, url in _rules(_app(settings), "GET"):
        client.get(url)
        client.get(url, headers={"HX-Request": "true"})
    assert lasting() == before


@pytest.mark.parametrize("size", [300, 100_000])
def test_long_basic_credentials_are_a_plain_401(auth_settings: Settings, size: int) -> None:
    c = create_app(auth_settings).test_client(use_cookies=False)
    token = base64.b64encode(f"{'a' * size}:{'b' * size}".encode()).decode()
    resp = c.get("/api/overview", headers={"Authorization": f"Basic {token}"})
    assert resp.status_code == 401


def test_login_gives_a_new_csrf_token(auth_app: Flask) -> None:
    c = auth_app.test_client()
    before = csrf_token(c)
    assert login(c).status_code == 302
    with c.session_transaction() as s:
        assert s.get("csrf") != before
    assert post(c, "/queues/default/pause").status_code in (302, 404)
