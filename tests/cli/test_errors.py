"""Every command fails with one line and a non-zero exit on bad URLs, Redis down and bad
settings; usage errors exit 2; no traceback."""

from __future__ import annotations

import pytest

from tests.cli.conftest import Jobq

COMMANDS = [
    ["info"],
    ["tasks"],
    ["jobs", "failed"],
    ["job", "0123456789abcdef"],
    ["enqueue", "tests.tasks.add", "[1, 2]"],
    ["requeue", "failed", "--all"],
    ["purge", "failed", "--all", "--yes"],
    ["cancel", "0123456789abcdef"],
    ["pause", "default"],
    ["resume", "default"],
]


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: a[0])
def test_redis_down(jobq: Jobq, args: list[str]) -> None:
    run = jobq(*args, "--url", "redis://127.0.0.1:1/0")
    assert run.code == 1
    line = run.one_line_error()
    assert "cannot reach Redis at redis://127.0.0.1:1/0" in line


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: a[0])
def test_bad_url(jobq: Jobq, args: list[str]) -> None:
    run = jobq(*args, env={"JOBQ_REDIS_URL": "http://example.invalid/"})
    assert run.code == 1
    assert "bad Redis URL 'http://example.invalid/'" in run.one_line_error()


def test_password_in_url_is_not_printed(jobq: Jobq) -> None:
    run = jobq("info", "--url", "redis://user:s3cret@127.0.0.1:1/0")
    assert run.code == 1
    assert "s3cret" not in run.one_line_error()


def test_bad_setting_in_environment(jobq: Jobq) -> None:
    run = jobq("info", env={"JOBQ_LEASE_S": "soon"})
    assert run.code == 1
    assert "JOBQ_LEASE_S='soon' is not a valid float" in run.one_line_error()


def test_redis_url_fallback(jobq: Jobq, redis_url: str) -> None:
    run = jobq("info", "--json", env={"JOBQ_REDIS_URL": "", "REDIS_URL": redis_url})
    assert run.code == 0, run.err


@pytest.mark.parametrize("args", [["nosuchcommand"], ["info", "--bogus"], ["job"],
                                  ["info", "--interval", "0"]])
def test_usage_errors_exit_2(jobq: Jobq, args: list[str]) -> None:
    run = jobq(*args)
    assert run.code == 2


def test_subcommand_usage_errors_are_one_line(jobq: Jobq) -> None:
    run = jobq("job")
    assert "Missing argument 'ID'" in run.one_line_error()
    assert "jobq job --help" in run.err


def test_help_and_version(jobq: Jobq) -> None:
    assert jobq("--help").code == 0
    assert jobq("--version").code == 0
    for command in ("info", "enqueue", "jobs", "requeue", "purge", "up", "worker"):
        run = jobq(command, "--help")
        assert run.code == 0 and "--url" in run.out and "--json" in run.out
