"""`jobq worker`, `jobq scheduler`, `jobq dashboard`: thin commands over the engine's entry
points, with clear errors when a part is missing."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from jobq_core import Queue, Settings
from tests import tasks
from tests.cli.conftest import Jobq
from tests.helpers import ROOT, worker_env


def _worker(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "jobq_core", "worker", "--burst", *args],
                          env=worker_env(settings), cwd=ROOT, capture_output=True, text=True,
                          timeout=60)


def test_worker_burst_runs_jobs(queue: Queue, settings: Settings) -> None:
    jobs = [queue.enqueue(tasks.add, i, 1) for i in range(3)]
    proc = _worker(settings, "-i", "tests.tasks", "-c", "2")
    assert proc.returncode == 0, proc.stderr
    assert [j.result(timeout_s=1) for j in jobs] == [1, 2, 3]


def test_worker_imports_and_queues_from_env(settings: Settings) -> None:
    job = Queue("low", settings=settings).enqueue(tasks.add, 2, 2)
    env = {**worker_env(settings), "JOBQ_IMPORTS": "tests.tasks", "JOBQ_QUEUES": "high low"}
    proc = subprocess.run([sys.executable, "-m", "jobq_core", "worker", "--burst"], env=env,
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert job.result(timeout_s=1) == 4
    assert "queues=high,low" in proc.stderr


def test_worker_json_logs(queue: Queue, settings: Settings) -> None:
    queue.enqueue(tasks.boom_once)
    proc = _worker(settings, "-i", "tests.tasks", "--json")
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in proc.stderr.splitlines()]
    assert {r["logger"] for r in records} == {"jobq.worker"}
    assert any(r["level"] == "warning" and "boom" in r["message"] for r in records)


def test_worker_bad_import_is_one_line(settings: Settings) -> None:
    proc = _worker(settings, "-i", "no_such_module_here")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "jobq: error: cannot import task module 'no_such_module_here': no module named "
        "'no_such_module_here' (run the worker from the folder that holds it, or put that "
        "folder on PYTHONPATH)"]


@pytest.mark.parametrize(("module", "says"), [
    ("myapp/tasks.py", "cannot import task module 'myapp/tasks.py': no module named "
                       "'myapp/tasks' (--import takes a module name such as myapp.tasks, "
                       "not a file path)"),
    ("needs_a_missing_dependency", "task module 'needs_a_missing_dependency' failed to "
                                   "import: No module named 'no_such_dependency_here'"),
])
def test_worker_import_errors_say_which_module_and_what_to_do(
        jobq: Jobq, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module: str,
        says: str) -> None:
    # Before (first-day review, 2026-12-06): "cannot import task module: No module named
    # 'no_such_dependency_here'", which reads as if the --import were wrong.
    (tmp_path / "needs_a_missing_dependency.py").write_text("import no_such_dependency_here\n")
    monkeypatch.chdir(tmp_path)  # the worker looks for --import modules from its folder
    run = jobq("worker", "--burst", "-i", module)
    assert run.code == 1
    assert run.one_line_error() == f"jobq: error: {says}"


def test_worker_bad_setting_is_one_line(settings: Settings) -> None:
    env = {**worker_env(settings), "JOBQ_LEASE_S": "x"}
    proc = subprocess.run([sys.executable, "-m", "jobq_core", "worker", "--burst"], env=env,
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.startswith("jobq: error: Invalid value for '--lease-s': 'x' is not a "
                                  "valid float")
    assert len(proc.stderr.strip().splitlines()) == 1
    env = {**worker_env(settings), "JOBQ_LEASE_S": "2", "JOBQ_HEARTBEAT_S": "2"}
    proc = subprocess.run([sys.executable, "-m", "jobq_core", "worker", "--burst"], env=env,
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.startswith("jobq: error: heartbeat_s (2.0) must be at most half")


def _module(name: str, **attrs: Any) -> types.ModuleType:
    module = types.ModuleType(name)
    for key, value in attrs.items():
        setattr(module, key, value)
    return module


def test_scheduler_bad_import_is_one_line(jobq: Jobq) -> None:
    # The command itself, against a real server: tests/cli/test_schedules.py.
    run = jobq("scheduler", "-i", "no_such_module_here")
    assert run.code == 1
    assert "cannot import no_such_module_here" in run.one_line_error()


def test_dashboard_missing_is_a_clear_error(jobq: Jobq, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "dashboard", _module("dashboard"))
    run = jobq("dashboard")
    assert run.code == 1
    assert "install jobq[dashboard]" in run.one_line_error()


def test_dashboard_calls_serve(jobq: Jobq, settings: Settings,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str, int]] = []
    fake = _module("dashboard", serve=lambda s, host, port: calls.append((s.prefix, host, port)))
    monkeypatch.setitem(sys.modules, "dashboard", fake)
    assert jobq("dashboard").code == 0
    assert jobq("dashboard", "--host", "0.0.0.0", "--port", "8123").code == 0
    assert jobq("dashboard", env={"PORT": "8200"}).code == 0
    assert jobq("dashboard", env={"JOBQ_DASHBOARD_PORT": "8300", "PORT": "8200"}).code == 0
    assert calls == [(settings.prefix, "127.0.0.1", 5000), (settings.prefix, "0.0.0.0", 8123),
                     (settings.prefix, "127.0.0.1", 8200), (settings.prefix, "127.0.0.1", 8300)]
    assert jobq("dashboard", "--port", "99999").code == 2
