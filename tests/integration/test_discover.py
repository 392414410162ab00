"""Queue(), Worker, Settings and the CLI find the Redis of a `jobq up` running in this folder
or one above it (the URL file it publishes), and ignore a file whose Redis is gone."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from jobq_core import Queue, Settings, Worker, discover
from jobq_core.cli import main
from jobq_core.server import LocalRedis, temp_dir

DEFAULT_URL = Settings().redis_url


@pytest.fixture
def project(tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder whose `jobq up` (the session's Redis) published its URL; the test
    runs in a folder two levels below it, with no URL in the environment."""
    for var in ("JOBQ_REDIS_URL", "REDIS_URL", "JOBQ_DATA_DIR", "JOBQ_PREFIX"):
        monkeypatch.delenv(var, raising=False)
    discover.publish(tmp_path / ".jobq", redis_url)
    below = tmp_path / "src" / "app"
    below.mkdir(parents=True)
    monkeypatch.chdir(below)
    return tmp_path


def test_queue_worker_and_settings_find_it(project: Path, redis_url: str) -> None:
    assert Settings.from_env().redis_url == redis_url
    q = Queue("found")
    assert q.settings.redis_url == redis_url
    job = q.enqueue("tests.tasks.add", 1, 2)
    w = Worker(["found"], imports=["tests.tasks"])
    assert w.settings.redis_url == redis_url
    assert w.work(burst=True) == 1
    assert job.result(timeout_s=5) == 3


def test_the_cli_finds_it(project: Path) -> None:
    result = CliRunner().invoke(main, ["enqueue", "tests.tasks.add", "[1, 2]", "--queue",
                                       "found-cli", "--json"], env={"JOBQ_REDIS_URL": None})
    assert result.exit_code == 0, result.stderr
    assert Queue("found-cli").count("pending") == 1


def test_the_environment_wins(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBQ_REDIS_URL", "redis://elsewhere:1/0")
    assert Settings.from_env().redis_url == "redis://elsewhere:1/0"
    assert Queue("x", url="redis://there:2/0").settings.redis_url == "redis://there:2/0"


def test_a_file_whose_redis_is_gone_is_ignored(project: Path) -> None:
    server = LocalRedis(temp_dir("jq-gone-")).start()
    discover.publish(project / "src" / ".jobq", server.url)  # nearer than the live one
    assert Settings.from_env().redis_url == server.url
    server.stop()  # as if `jobq up` was SIGKILLed: its URL file stays
    discover._seen.clear()  # a process started after that has not seen it answer
    assert Settings.from_env().redis_url == DEFAULT_URL


def test_an_absolute_data_dir(tmp_path: Path, redis_url: str,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOBQ_REDIS_URL", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    discover.publish(tmp_path / "elsewhere", redis_url)
    assert Settings.from_env().redis_url == DEFAULT_URL
    monkeypatch.setenv("JOBQ_DATA_DIR", str(tmp_path / "elsewhere"))
    assert Settings.from_env().redis_url == redis_url


def test_nothing_published() -> None:
    assert discover.find(start=Path("/")) is None
