"""Logout ends the session on the server: in Chromium, log in, copy the session cookie, log
out, and replay the copy in a fresh browser context: refused for GET and for POST."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from dashboard import create_app
from jobq_core import Queue, Settings
from tests import tasks
from tests.dashboard.conftest import ADMIN_PW, fast_hash


@pytest.fixture
def login_url(settings: Settings) -> Iterator[str]:
    """A live dashboard with an admin account, on a free loopback port."""
    from werkzeug.serving import make_server

    app = create_app(settings.replace(dashboard_user="admin",
                                      dashboard_password_hash=fast_hash(ADMIN_PW),
                                      dashboard_secret_key="browser-test"))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
    t.join(5)


def test_replayed_cookie_after_logout_is_refused(browser: Any, page: Any, login_url: str,
                                                 queue: Queue) -> None:
    page.goto(login_url + "/queues")
    expect(page).to_have_url(login_url + "/login?next=/queues")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", ADMIN_PW)
    page.click("button[type=submit]")
    expect(page).to_have_url(login_url + "/queues")
    copied = [c for c in page.context.cookies() if c["name"] == "jobq_session"]
    assert len(copied) == 1
    token = page.locator("input[name=csrf_token]").first.input_value()

    thief = browser.new_context()
    try:
        thief.add_cookies(copied)
        assert thief.request.get(login_url + "/api/overview").status == 200  # works before

        page.click("button:has-text('Log out')")
        expect(page).to_have_url(login_url + "/login")

        assert thief.request.get(login_url + "/api/overview").status == 401
        other = thief.new_page()
        other.goto(login_url + "/queues")
        expect(other).to_have_url(login_url + "/login?next=/queues")  # GET: back to login
        job = queue.enqueue(tasks.add, 1, 2)
        resp = thief.request.post(f"{login_url}/queues/default/pause",
                                  form={"csrf_token": token},
                                  headers={"Origin": login_url}, max_redirects=0)
        assert resp.status in (302, 401, 403)  # POST: refused, nothing changed
        assert not queue.is_paused() and queue.job(job.id).status == "pending"  # type: ignore[union-attr]
    finally:
        thief.close()
