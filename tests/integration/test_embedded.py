"""EmbeddedWorker and the Flask extension, and the example Flask app, on a real Redis."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from jobq_core import Queue, Settings
from jobq_core.embedded import EmbeddedWorker, FlaskJobq, settings_from_config
from jobq_core.inspect import Inspector
from tests import tasks
from tests.helpers import wait_for_lines

ROOT = Path(__file__).resolve().parents[2]


def test_embedded_worker_runs_jobs_and_stops(queue: Queue, settings: Settings) -> None:
    worker = EmbeddedWorker(["default"], concurrency=2, settings=settings,
                            imports=["tests.tasks"]).start()
    try:
        assert worker.running
        assert worker.start() is worker  # idempotent
        jobs = [queue.enqueue(tasks.add, i, i) for i in range(5)]
        assert [j.result(timeout_s=10) for j in jobs] == [0, 2, 4, 6, 8]
        assert [w.id for w in Inspector(settings).workers()] == [worker.worker.id]  # type: ignore[union-attr]
    finally:
        worker.stop()
    assert not worker.running
    assert Inspector(settings).workers() == []


def _open_when_stopping(worker: EmbeddedWorker, gate: Path) -> threading.Thread:
    """Create `gate` once the worker's stop has begun, so a job waiting on it is still
    running when the stop starts and ends only during it (no timing involved)."""
    assert worker.worker is not None
    stopping = worker.worker.stopping

    def open_gate() -> None:
        if stopping.wait(60):
            gate.touch()

    t = threading.Thread(target=open_gate, daemon=True)
    t.start()
    return t


def test_stop_lets_a_running_job_finish(queue: Queue, settings: Settings,
                                        tmp_path: Path) -> None:
    started, gate = tmp_path / "started", tmp_path / "gate"
    with EmbeddedWorker("default", concurrency=1, settings=settings, grace_s=10) as worker:
        opener = _open_when_stopping(worker, gate)
        job = queue.enqueue(tasks.wait_for_gate, str(started), "running", str(gate))
        # The task's own line, not the job's "processing" state: a claimed job may still
        # wait for its slot, and a stopping worker hands such a job back.
        wait_for_lines(started, 1, timeout_s=60)
    opener.join(5)
    assert job.refresh().status == "completed"


def test_stops_cleanly_at_interpreter_exit(settings: Settings, tmp_path: Path) -> None:
    started, gate = tmp_path / "started", tmp_path / "gate"
    script = textwrap.dedent(f"""
        import threading
        from pathlib import Path
        from jobq_core import Queue, Settings
        from jobq_core.embedded import EmbeddedWorker
        from tests import tasks
        from tests.helpers import wait_for_lines
        s = Settings(redis_url={settings.redis_url!r}, prefix={settings.prefix!r}, block_s=0.2)
        worker = EmbeddedWorker(["default"], concurrency=2, settings=s).start()
        stopping, gate = worker.worker.stopping, Path({str(gate)!r})

        def open_gate():
            if stopping.wait(60):
                gate.touch()

        threading.Thread(target=open_gate, daemon=True).start()
        job = Queue("default", settings=s).enqueue(tasks.wait_for_gate, {str(started)!r},
                                                   "running", str(gate))
        print("enqueued", job.id, flush=True)
        wait_for_lines(Path({str(started)!r}), 1, timeout_s=60)
        # The script ends while the job runs, without stop(): the stop run at exit opens
        # the gate, and the job ends during that stop.
    """)
    # The timeout only bounds a hang: under load the interpreter's start-up alone can take
    # many seconds. A stop that waited out its grace would have handed the job back.
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    job_id = proc.stdout.split()[1]
    job = Queue("default", settings=settings).job(job_id)
    assert job is not None and job.status == "completed", proc.stderr
    assert Inspector(settings).workers() == []


def test_settings_from_config_typed_and_strings(settings: Settings) -> None:
    s = settings_from_config({"JOBQ_REDIS_URL": "redis://h:1/2", "JOBQ_CONCURRENCY": 3,
                              "JOBQ_EAGER": "true", "JOBQ_LEASE_S": "60", "OTHER": 1},
                             base=settings)
    assert (s.redis_url, s.concurrency, s.eager, s.lease_s) == ("redis://h:1/2", 3, True, 60.0)
    assert s.prefix == settings.prefix


def test_flask_extension_without_app_context_fails_clearly() -> None:
    from flask import Flask

    with Flask(__name__).app_context(), pytest.raises(RuntimeError, match="init_app"):
        FlaskJobq().queue()


@pytest.fixture
def example(settings: Settings):  # type: ignore[no-untyped-def]
    from examples.flask_app.app import create_app, jobq

    app = create_app({"JOBQ_REDIS_URL": settings.redis_url, "JOBQ_PREFIX": settings.prefix,
                      "JOBQ_BLOCK_S": 0.2, "JOBQ_HEARTBEAT_S": 1, "JOBQ_LEASE_S": 4})
    yield app
    worker = jobq.worker(app)
    if worker is not None:
        worker.stop()


def _wait_done(client, url: str) -> dict:  # type: ignore[no-untyped-def,type-arg]
    deadline = time.monotonic() + 10
    while True:
        body = client.get(url, headers={"Accept": "application/json"}).get_json()
        if body["status"] in ("completed", "failed", "dead") or time.monotonic() > deadline:
            return body  # type: ignore[no-any-return]
        time.sleep(0.05)


def test_example_app_enqueues_from_a_request_and_shows_the_result(example) -> None:  # type: ignore[no-untyped-def]
    client = example.test_client()
    assert client.get("/").status_code == 200
    resp = client.post("/count", json={"text": "three little words"})
    assert resp.status_code == 202
    body = _wait_done(client, resp.get_json()["url"])
    assert body["status"] == "completed"
    assert body["result"] == {"words": 3, "characters": 18}
    page = client.get(resp.get_json()["url"]).get_data(as_text=True)
    assert "3 words" in page


def test_example_app_shows_a_failure_and_escapes_input(example) -> None:  # type: ignore[no-untyped-def]
    client = example.test_client()
    resp = client.post("/count", data={"text": "  "})
    assert resp.status_code == 202
    job_url = "/jobs/" + resp.get_data(as_text=True).split("job ")[1].split(":")[0]
    body = _wait_done(client, job_url)
    assert body["status"] == "failed"
    assert "nothing to count" in body["error"][0]
    html = client.post("/count", data={"text": "<script>x</script>"}).get_data(as_text=True)
    assert "<script>x" not in html and "&lt;script&gt;" in html
    assert client.get("/jobs/nosuchjob", headers={"Accept": "application/json"}).status_code == 404
