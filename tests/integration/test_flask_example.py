"""examples/flask_app/README.md, run as written: `make run` (= `jobq up --demo`) in a
folder holding the repository's `examples/` and `.venv`, the app started with the README's
command (on a free port instead of 5001), its curl lines, then the same with a separate
`jobq worker`. Before the fix the app answered 500 (it looked for Redis on 127.0.0.1:6379)
and the worker registered the task under another name than the app enqueued."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.cli.upstack import (
    BIN,
    REPO,
    Output,
    commands,
    fenced_blocks,
    free_port,
    jobq_up,
    run_shell,
    shell_env,
)

pytest.importorskip("flask")
EXAMPLE = REPO / "examples" / "flask_app"
BLOCKS = fenced_blocks((EXAMPLE / "README.md").read_text(), "sh")


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A folder laid out like the repository root: examples/ and .venv."""
    (tmp_path / "examples" / "flask_app").mkdir(parents=True)
    shutil.copy(REPO / "examples" / "__init__.py", tmp_path / "examples")
    for path in EXAMPLE.glob("*.py"):
        shutil.copy(path, tmp_path / "examples" / "flask_app")
    (tmp_path / ".venv").symlink_to(BIN.parent)
    return tmp_path


@contextmanager
def background(line: str, cwd: Path, env: dict[str, str]) -> Iterator[Output]:
    """A long-running command of the README, in bash, stopped with SIGTERM at the end."""
    proc = subprocess.Popen(["bash", "-c", f"source .venv/bin/activate\n{line}"],
                            cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    out = Output(proc)
    try:
        yield out
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # bash and the command it runs
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def count_words(cwd: Path, env: dict[str, str], port: int) -> dict[str, object]:
    """The README's two curl lines; returns the job's JSON once it ended."""
    post, show = (line.replace("5001", str(port)) for line in commands(BLOCKS[1]))
    run = run_shell(post, cwd, env)
    assert run.returncode == 0, run.stderr
    job_id = json.loads(run.stdout)["id"]
    deadline = time.monotonic() + 30
    while True:
        run = run_shell(show.replace("JOB_ID", job_id), cwd, env)
        assert run.returncode == 0, run.stderr
        job: dict[str, object] = json.loads(run.stdout)
        if job["status"] not in ("pending", "processing") or time.monotonic() > deadline:
            return job
        time.sleep(0.1)


def wait_listening(out: Output, port: int) -> None:
    out.wait_for(rf"Running on http://127\.0\.0\.1:{port}", timeout_s=30)


@pytest.mark.skipif(shutil.which("curl") is None, reason="the README's requests use curl")
def test_the_example_readme_as_written(checkout: Path) -> None:
    env = shell_env()
    [activate, app_line] = commands(BLOCKS[0])
    assert activate == "source .venv/bin/activate"
    port = free_port()
    with jobq_up(checkout, env, "jobq up --demo"):
        with background(app_line.replace("5001", str(port)), checkout, env) as app:
            wait_listening(app, port)
            job = count_words(checkout, env, port)
        assert job["status"] == "completed", job
        assert job["result"] == {"characters": 18, "words": 6}
        assert re.search(r"\b500\b", "\n".join(app.lines)) is None

        # A separate worker process: it must know the task by the name the app enqueues.
        app_line, worker_line = commands(BLOCKS[2])
        with (background(app_line.replace("5001", str(port)), checkout, env) as app,
              background(worker_line, checkout, env) as worker):
            wait_listening(app, port)
            job = count_words(checkout, env, port)
        assert job["status"] == "completed", (job, worker.lines)
        assert job["result"] == {"characters": 18, "words": 6}
        assert not any("unknown task" in line for line in worker.lines), worker.lines
