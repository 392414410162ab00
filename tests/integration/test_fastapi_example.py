"""examples/fastapi_app: enqueue from async request handlers, show the result."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from jobq_core import Settings
from tests.helpers import worker_thread


@pytest.fixture
def client(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> TestClient:
    for var, value in (("JOBQ_REDIS_URL", settings.redis_url), ("JOBQ_PREFIX", settings.prefix)):
        monkeypatch.setenv(var, value)
    from examples.fastapi_app.app import app

    return TestClient(app)


def test_enqueue_from_a_handler_and_show_the_result(settings: Settings,
                                                    client: TestClient) -> None:
    with client:  # runs the app's lifespan: its AsyncQueue on the app's event loop
        made = client.post("/count", json={"text": "to be or not"})
        assert made.status_code == 202 and made.json()["status"] == "pending"
        job_id = made.json()["id"]
        digest = client.post("/digest", json={"text": "abc"}).json()["id"]
        assert client.get(f"/jobs/{job_id}").json()["status"] == "pending"  # no worker yet
        with worker_thread(settings, pool="async", concurrency=10):
            shown = client.get(f"/jobs/{job_id}", params={"wait_s": 10}).json()
            hashed = client.get(f"/jobs/{digest}", params={"wait_s": 10}).json()
        assert shown["status"] == "completed"
        assert shown["result"] == {"words": 4, "characters": 12}
        assert shown["progress"] == 1.0  # it reported 0.5; a completed job reads 1.0
        assert hashed["result"].startswith("ba7816bf")  # sha256("abc"), by a sync task
        assert client.get("/jobs/0123456789abcdef").status_code == 404
