"""Fixtures for the dashboard: an app per test on the test's own key prefix, with or
without accounts, a Flask test client, and a few jobs in every state."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.security import generate_password_hash

from dashboard import create_app
from jobq_core import Queue, Settings
from jobq_core.scripts import Scripts
from tests import tasks
from tests.helpers import drain

ADMIN_PW = "correct horse battery"
VIEWER_PW = "read only please"
XSS = '<script>alert("x")</script><img src=x onerror="document.title=\'XSS\'">'


def fast_hash(password: str) -> str:
    # Few iterations: the tests check many logins; production uses scrypt (hashpw).
    return generate_password_hash(password, method="pbkdf2:sha256:1000")


@pytest.fixture
def app(settings: Settings) -> Flask:
    a = create_app(settings)
    a.config["TESTING"] = True
    return a


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def auth_settings(settings: Settings) -> Settings:
    return settings.replace(dashboard_user="admin", dashboard_password_hash=fast_hash(ADMIN_PW),
                            dashboard_readonly_user="viewer",
                            dashboard_readonly_password_hash=fast_hash(VIEWER_PW),
                            dashboard_secret_key="test-secret")


@pytest.fixture
def auth_app(auth_settings: Settings) -> Flask:
    a = create_app(auth_settings)
    a.config["TESTING"] = True
    return a


def basic_auth(user: str, password: str) -> dict[str, str]:
    """The Authorization header of HTTP Basic auth."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def csrf_token(client: FlaskClient) -> str:
    """The session's CSRF token (created in the session if it has none yet)."""
    with client.session_transaction() as s:
        if "csrf" not in s:
            s["csrf"] = "t" * 43
        return str(s["csrf"])


def post(client: FlaskClient, url: str, data: dict[str, Any] | None = None,
         **kwargs: Any) -> Any:
    """POST a form with the session's CSRF token."""
    form = {"csrf_token": csrf_token(client), **(data or {})}
    return client.post(url, data=form, **kwargs)


def login(client: FlaskClient, user: str = "admin", password: str = ADMIN_PW) -> Any:
    return post(client, "/login", {"username": user, "password": password})


@dataclass
class Fixture:
    """Ids of jobs placed in known states."""

    pending: str
    scheduled: str
    completed: str
    failed: str
    dead: str
    cancelled: str
    processing: str
    xss: str


@pytest.fixture
def jobs(settings: Settings, queue: Queue) -> Fixture:
    failed = queue.enqueue(tasks.boom_once, "it broke: " + XSS)
    dead = queue.enqueue("tests.tasks.no_such_task", XSS)
    done = queue.enqueue(tasks.echo, XSS, note=XSS)
    drain(settings, unknown_task_grace_s=0)  # the unknown task: dead at once
    cancelled = queue.enqueue(tasks.add, 5, 5)
    cancelled.cancel()
    scheduled = queue.enqueue_in(3600, tasks.add, 3, 3)
    processing = queue.enqueue(tasks.add, 7, 7)
    Scripts(queue.client, settings).claim(["default"], 1, "ghost-worker")
    pending = queue.enqueue(tasks.add, 1, 2)
    xss = queue.enqueue(tasks.echo, XSS, meta_note=XSS)
    return Fixture(pending.id, scheduled.id, done.id, failed.id, dead.id, cancelled.id,
                   processing.id, xss.id)


@pytest.fixture
def fresh_listeners(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The no-login check looks at this process's listening sockets on every request (not
    every 2 s), and forgets what it saw when the test ends."""
    from dashboard import exposure

    monkeypatch.setattr(exposure, "LISTEN_CHECK_S", 0.0)
    yield
    exposure.forget_listeners()


@pytest.fixture
def other_queue(settings: Settings) -> Iterator[Queue]:
    yield Queue("emails", settings=settings)
