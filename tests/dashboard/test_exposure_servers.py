"""The no-login mode refuses to serve when the server listens beyond loopback, however it
was started: gunicorn on 0.0.0.0 (dashboard.wsgi:app), `flask run --host 0.0.0.0`, a
werkzeug server made by hand. Each runs for real; requests come from 127.0.0.1."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from dashboard import create_app
from jobq_core import Settings

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, timeout_s: float = 20.0) -> tuple[int, str]:
    """Status and body of GET url, retried while the server is still starting."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.fixture
def env(settings: Settings) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("JOBQ_")}
    return {**clean, "JOBQ_REDIS_URL": settings.redis_url, "JOBQ_PREFIX": settings.prefix,
            "PYTHONPATH": str(ROOT)}


@contextmanager
def _run(cmd: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.parametrize("server", ["gunicorn", "flask"])
def test_no_login_server_on_every_address_refuses(env: dict[str, str], server: str) -> None:
    port = _free_port()
    cmd = ([str(BIN / "gunicorn"), "-b", f"0.0.0.0:{port}", "-w", "1", "dashboard.wsgi:app"]
           if server == "gunicorn" else
           [str(BIN / "flask"), "--app", "dashboard.wsgi", "run", "--host", "0.0.0.0",
            "--port", str(port)])
    with _run(cmd, env):
        status, body = _get(f"http://127.0.0.1:{port}/")
        assert status == 403 and "listens on 0.0.0.0" in body, body[:500]
        status, body = _get(f"http://127.0.0.1:{port}/api/overview")
        assert status == 403
        assert _get(f"http://127.0.0.1:{port}/healthz") == (200, "ok\n")


def test_no_login_gunicorn_on_loopback_serves(env: dict[str, str]) -> None:
    port = _free_port()
    cmd = [str(BIN / "gunicorn"), "-b", f"127.0.0.1:{port}", "-w", "1", "dashboard.wsgi:app"]
    with _run(cmd, env):
        assert _get(f"http://127.0.0.1:{port}/")[0] == 200


def test_no_login_hand_made_server_on_every_address_refuses(
        settings: Settings, fresh_listeners: None) -> None:
    from werkzeug.serving import make_server

    server = make_server("0.0.0.0", 0, create_app(settings), threaded=True)  # no check_bind
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        status, body = _get(f"http://127.0.0.1:{server.server_port}/queues")
        assert status == 403 and "listens on 0.0.0.0" in body
    finally:
        server.shutdown()
        server.server_close()
        t.join(5)
