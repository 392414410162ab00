"""What the CLI says: an enqueue that wrote nothing says so (exit 3), --json errors are JSON,
usage errors are one line, Redis-down says what to do, durations read as durations."""

from __future__ import annotations

import json

import pytest

from jobq_core import Queue, Settings
from tests import tasks
from tests.cli.conftest import Jobq
from tests.helpers import drain


def test_enqueue_of_an_existing_job_id_says_so_and_exits_3(jobq: Jobq, queue: Queue) -> None:
    first = jobq("enqueue", "tests.tasks.add", "[1, 2]", "--job-id", "report-42")
    assert first.code == 0 and first.out.startswith("enqueued report-42 "), first.err
    again = jobq("enqueue", "tests.tasks.add", "[5, 6]", "--job-id", "report-42")
    assert again.code == 3
    assert not again.out.startswith("enqueued")
    assert again.out.startswith("job report-42 already exists (pending, tests.tasks.add on "
                                "default); nothing was enqueued")
    as_json = jobq("enqueue", "tests.tasks.add", "[5, 6]", "--job-id", "report-42", "--json")
    assert as_json.code == 3
    assert as_json.json["created"] is False and as_json.json["state"] == "pending"
    job = queue.job("report-42")
    assert job is not None and job.args == [1, 2] and queue.count("pending") == 1


def test_enqueue_json_says_created(jobq: Jobq) -> None:
    run = jobq("enqueue", "tests.tasks.add", "[1, 2]", "--json")
    assert run.code == 0 and run.json["created"] is True


@pytest.mark.parametrize(("args", "code", "kind"), [
    (["job", "0123456789abcdef", "--json"], 1, "failed"),
    (["info", "--json", "--url", "redis://127.0.0.1:1/0"], 1, "failed"),
    (["enqueue", "tests.tasks.add", "[1,", "--json"], 2, "usage"),
    (["jobs", "--json"], 2, "usage"),
    (["--json", "nosuchcommand"], 2, "usage"),
])
def test_json_errors_are_json(jobq: Jobq, args: list[str], code: int, kind: str) -> None:
    run = jobq(*args)
    assert run.code == code
    assert run.out == ""
    lines = run.err.strip().splitlines()
    assert len(lines) == 1, run.err
    error = json.loads(lines[0])
    assert error["error"] == kind and error["exit_code"] == code and error["message"]


def test_json_errors_from_the_environment(jobq: Jobq) -> None:
    run = jobq("job", "0123456789abcdef", env={"JOBQ_JSON": "1"})
    assert json.loads(run.err)["error"] == "failed"


@pytest.mark.parametrize("args", [["jobs"], ["requeue"], ["purge"], ["--bogus"],
                                  ["nosuchcommand"], ["worker", "-c", "x"], ["job"]])
def test_usage_errors_are_one_short_line(jobq: Jobq, args: list[str]) -> None:
    run = jobq(*args)
    assert run.code == 2
    line = run.one_line_error()
    assert len(line) < 200, line
    assert "Usage:" not in run.err


def test_missing_state_names_the_choices_on_one_line(jobq: Jobq) -> None:
    line = jobq("requeue").one_line_error()
    assert "Missing argument 'STATE' (one of: cancelled, completed, dead, failed)" in line


def test_redis_down_says_what_to_do(jobq: Jobq) -> None:
    line = jobq("info", "--url", "redis://127.0.0.1:1/0").one_line_error()
    assert ".." not in line
    assert "start one with `jobq up` in this folder" in line
    assert "or set JOBQ_REDIS_URL" in line


@pytest.mark.parametrize(("seconds", "text"), [
    (0.4, "0 s"), (59, "59 s"), (61, "1 min 1 s"), (3600, "1 h"), (3 * 3600 + 120, "3 h 2 min"),
    (86400, "1 day"), (604782, "7 days"), (604800 - 3600, "6 days 23 h"),
    (30 * 86400, "30 days"),
])
def test_duration(seconds: float, text: str) -> None:
    from jobq_core.cli.show import duration

    assert duration(seconds) == text


def test_job_retention_is_a_human_duration(jobq: Jobq, queue: Queue,
                                           settings: Settings) -> None:
    job = queue.enqueue(tasks.boom_once, "x")
    drain(settings)
    run = jobq("job", job.id)
    assert run.code == 0, run.err
    assert "kept for 7 days" in " ".join(run.out.split())
    assert " s more" not in run.out
