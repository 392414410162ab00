"""Mounting into a host app under a prefix; serve()'s bind rule; the hash helper; the
installed wheel renders pages from its packaged templates and static files."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from flask import Flask

from dashboard import make_blueprint, serve
from dashboard.serving import check_bind, is_loopback_host
from jobq_core import ConfigError, Settings
from tests.dashboard.conftest import Fixture, fast_hash

ROOT = Path(__file__).resolve().parents[2]


def test_mounted_under_a_prefix(settings: Settings, jobs: Fixture) -> None:
    host = Flask("host")
    host.secret_key = "host-secret"

    @host.get("/")
    def home() -> str:
        return "host home"

    host.register_blueprint(make_blueprint(settings), url_prefix="/ops/jobq")
    c = host.test_client()
    assert c.get("/").data == b"host home"
    html = c.get("/ops/jobq/jobs/failed").get_data(as_text=True)
    assert jobs.failed in html
    assert 'href="/ops/jobq/jobs/default/' in html
    assert "/ops/jobq/static/vendor/htmx-2.0.11.min.js" in html
    assert c.get("/ops/jobq/static/app.css").status_code == 200
    assert c.get("/ops/jobq/jobs/bogus").status_code == 404
    assert c.get("/ops/jobq/api/jobs/bogus").is_json


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("[::1]", True),
    ("localhost", True), ("0.0.0.0", False), ("::", False), ("", False),
    ("10.0.0.5", False), ("example.com", False)])
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


def test_refuses_public_bind_without_credentials(settings: Settings) -> None:
    with pytest.raises(ConfigError, match="refusing"):
        check_bind(settings, "0.0.0.0")
    with pytest.raises(ConfigError, match="refusing"):
        serve(settings, "0.0.0.0", 0, echo=False)
    check_bind(settings, "127.0.0.1")
    check_bind(settings.replace(dashboard_user="a", dashboard_password_hash=fast_hash("pw")),
               "0.0.0.0")


def test_serve_answers_on_loopback(settings: Settings,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t = threading.Thread(target=serve, args=(settings, "127.0.0.1", port), daemon=True)
    t.start()
    deadline = time.monotonic() + 10
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
                assert resp.read() == b"ok\n"
                break
        except OSError:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    out = capsys.readouterr().out
    assert f"http://127.0.0.1:{port}/" in out and "no login configured" in out


def test_hashpw_reads_stdin() -> None:
    from werkzeug.security import check_password_hash

    out = subprocess.run([sys.executable, "-m", "dashboard.hashpw"], input="s3cret-pass\n",
                         capture_output=True, text=True, check=True, cwd=ROOT).stdout.strip()
    assert out.startswith("scrypt:") and check_password_hash(out, "s3cret-pass")
    short = subprocess.run([sys.executable, "-m", "dashboard.hashpw"], input="x\n",
                           capture_output=True, text=True, cwd=ROOT)
    assert short.returncode == 1


# Not marked slow: a few seconds, and the only check that the wheel ships templates and
# static files, so make test must run it.
def test_installed_wheel_renders_pages(tmp_path: Path, settings: Settings,
                                       jobs: Fixture) -> None:
    """Build the wheel, install it (without deps) into a directory put first on the path,
    and render pages from it: templates and static must be inside the wheel."""
    dist, site = tmp_path / "dist", tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(dist), str(ROOT)], check=True, cwd=tmp_path)
    wheel = next(dist.glob("jobq-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(site), str(wheel)], check=True, cwd=tmp_path)
    assert (site / "dashboard" / "templates" / "jobq" / "base.html").is_file()
    assert (site / "dashboard" / "static" / "vendor" / "htmx-2.0.11.min.js").is_file()
    script = (
        "import dashboard, sys\n"
        f"assert dashboard.__file__.startswith({str(site)!r}), dashboard.__file__\n"
        "from dashboard import create_app\n"
        "c = create_app().test_client()\n"
        "r = c.get('/jobs/failed')\n"
        "assert r.status_code == 200, r.status_code\n"
        f"assert {jobs.failed!r} in r.get_data(as_text=True)\n"
        "s = c.get('/static/vendor/htmx-2.0.11.min.js')\n"
        "assert s.status_code == 200 and len(s.data) == 52182\n"
        "s.close()\n"
        "print('rendered from', dashboard.__file__)\n")
    env = {**os.environ, "PYTHONPATH": str(site), "JOBQ_REDIS_URL": settings.redis_url,
           "JOBQ_PREFIX": settings.prefix, "JOBQ_DASHBOARD_SECRET_KEY": "k"}
    out = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "rendered from " + str(site) in out.stdout
