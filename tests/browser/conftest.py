"""Headless Chromium (Debian's /usr/bin/chromium, driven by Playwright) against a live
dashboard served on a free loopback port. `.ci/run` installs chromium with apt."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from dashboard import create_app
from jobq_core import Settings

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

if not os.path.exists(CHROMIUM):
    pytest.skip(f"browser tests need Debian's chromium at {CHROMIUM} "
                "(apt-get install -y chromium; .ci/run does this)", allow_module_level=True)

sync_api = pytest.importorskip("playwright.sync_api",
                               reason="browser tests need playwright (the test extra)")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    # Exactly one sync_playwright() per process.
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def live_url(settings: Settings) -> Iterator[str]:
    from werkzeug.serving import make_server

    app = create_app(settings)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    t.join(5)


class PageWatch:
    """Records what must never happen on a dashboard page: dialogs, page errors, CSP
    violations."""

    def __init__(self) -> None:
        self.dialogs: list[str] = []
        self.errors: list[str] = []

    def on_dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def on_console(self, msg: Any) -> None:
        if msg.type == "error" and "Content Security Policy" in msg.text:
            self.errors.append(msg.text)

    def on_pageerror(self, exc: Any) -> None:
        self.errors.append(str(exc))


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    pg = browser.new_page(viewport={"width": 1300, "height": 900})
    watch = PageWatch()
    pg.on("dialog", watch.on_dialog)
    pg.on("console", watch.on_console)
    pg.on("pageerror", watch.on_pageerror)
    pg.watch = watch
    try:
        yield pg
    finally:
        pg.close()  # a page left open keeps polling
    assert watch.dialogs == [], f"a dialog fired: {watch.dialogs}"
    assert watch.errors == [], f"page errors / CSP violations: {watch.errors}"
