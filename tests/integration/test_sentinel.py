"""A redis+sentinel:// URL reaches the master a real Sentinel names."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobq_core import Queue, Settings
from jobq_core.server import LocalRedis, find_server_binary, temp_dir
from tests import tasks
from tests.helpers import drain


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def sentinel_url() -> Iterator[str]:
    d = temp_dir("jq-sentinel-")
    master = LocalRedis(d / "master", port=_free_port()).start()
    port = _free_port()
    conf = Path(d / "sentinel.conf")
    conf.write_text(f"port {port}\nbind 127.0.0.1\ndir {d}\n"
                    f"sentinel monitor jobs 127.0.0.1 {master.port} 1\n")
    proc = subprocess.Popen([find_server_binary(), str(conf), "--sentinel"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.skip("this Redis build cannot run as a Sentinel")
                time.sleep(0.05)
        yield f"redis+sentinel://127.0.0.1:{port}/jobs/0"
    finally:
        proc.terminate()
        proc.wait(10)
        master.stop()
        shutil.rmtree(d, ignore_errors=True)


def test_enqueue_and_run_through_sentinel(sentinel_url: str) -> None:
    settings = Settings(redis_url=sentinel_url, prefix="sentinel", heartbeat_s=1.0, lease_s=4.0,
                        block_s=0.2)
    job = Queue("default", settings=settings).enqueue(tasks.add, 40, 2)
    drain(settings)
    assert job.result(timeout_s=5) == 42
