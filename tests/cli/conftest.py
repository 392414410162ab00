"""Run `jobq` commands in-process (click's CliRunner) against the session's Redis."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from click.testing import CliRunner

from jobq_core import Settings
from jobq_core.cli import main

CLEARED = ("JOBQ_REDIS_URL", "REDIS_URL", "JOBQ_PREFIX", "JOBQ_JSON", "JOBQ_EAGER")


@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def json(self) -> Any:
        return json.loads(self.out)

    def one_line_error(self) -> str:
        """The error line; fails unless stderr is exactly one `jobq: error:` line."""
        lines = self.err.strip().splitlines()
        assert len(lines) == 1, self.err
        assert lines[0].startswith("jobq: error: "), self.err
        assert "Traceback" not in self.err + self.out
        return lines[0]


Jobq = Callable[..., Run]


@pytest.fixture
def jobq(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Jobq:
    """jobq(*args, input=None, env={}) -> Run, with the test's Redis URL and key prefix."""
    for var in CLEARED:
        monkeypatch.delenv(var, raising=False)

    def run(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Run:
        base = {"JOBQ_REDIS_URL": settings.redis_url, "JOBQ_PREFIX": settings.prefix}
        result = CliRunner().invoke(main, list(args), input=input, env={**base, **(env or {})},
                                    catch_exceptions=False)
        return Run(result.exit_code, result.stdout, result.stderr)

    return run
