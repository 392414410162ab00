"""The Procfile under honcho against the test Redis: a job completes, the dashboard answers
(when this install has one), and Ctrl-C stops every process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil

from jobq_core import Queue, Settings
from tests import tasks
from tests.cli.test_up import Output, _left
from tests.dashboard.conftest import fast_hash
from tests.helpers import ROOT

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _processes() -> list[str]:
    return ["web", "worker", "scheduler"]  # web first: honcho gives it the -p port


def test_procfile_under_honcho(settings: Settings, tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBQ_")}
    # The Procfile's web process listens on 0.0.0.0, which the dashboard serves only with a
    # login (without one it answers 403): configure one, as a Heroku app must.
    env.update(REDIS_URL=settings.redis_url, JOBQ_PREFIX=settings.prefix,
               JOBQ_IMPORTS="tests.tasks", PYTHONPATH=str(ROOT),
               PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
               JOBQ_DASHBOARD_USER="admin", JOBQ_DASHBOARD_PASSWORD_HASH=fast_hash("pw"))
    (tmp_path / ".env").write_text("")  # honcho reads .env from its cwd; keep it empty
    names = _processes()
    proc = subprocess.Popen([str(BIN / "honcho"), "-f", str(ROOT / "Procfile"), "-d", str(ROOT),
                             "start", "-p", str(port), *names], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    out = Output(proc)
    try:
        out.wait_for(r"worker\.1\s+\| .*worker .* started")
        job = Queue("default", settings=settings).enqueue(tasks.add, 20, 22)
        assert job.result(timeout_s=20) == 42
        if "web" in names:
            assert _answers(f"http://127.0.0.1:{port}/", timeout_s=20)
        family = [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
        assert _left(family, timeout_s=15) == []
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def _answers(url: str, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return resp.status == 200
        except urllib.error.HTTPError as exc:
            return exc.code in (302, 303, 401)
        except OSError:
            time.sleep(0.2)
    return False


def test_procfiles_are_valid() -> None:
    for name in ("Procfile", "Procfile.dev"):
        proc = subprocess.run([str(BIN / "honcho"), "-f", str(ROOT / name), "check"],
                              capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, proc.stderr
