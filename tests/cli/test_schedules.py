"""`jobq schedules` over the scheduler's API (a stand-in here; the real scheduler's own
tests cover its behaviour), and a clear error when there is no scheduler."""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest

from tests.cli.conftest import Jobq


@dataclass(frozen=True)
class FakeSchedule:
    name: str
    task: str
    every_s: float | None = 30.0


@dataclass(frozen=True)
class FakeInfo:
    name: str
    schedule: FakeSchedule | None
    enabled: bool
    next_ms: int | None
    last_job_id: str = ""
    fired: int = 0
    missed: int = 0
    fields: dict[str, str] = field(default_factory=dict)

    @property
    def when(self) -> str:
        return "every 30s"


class FakeScheduler:
    calls: ClassVar[list[tuple[str, str]]] = []

    def __init__(self, settings: Any, redis: Any = None) -> None:
        self.settings = settings

    def list(self) -> list[FakeInfo]:
        return [FakeInfo("tick", FakeSchedule("tick", "tests.tasks.add"), True, 1, "j1", 3, 1)]

    def get(self, name: str) -> FakeInfo | None:
        return next((i for i in self.list() if i.name == name), None)

    def enable(self, name: str) -> None:
        self.calls.append(("enable", name))

    def disable(self, name: str) -> None:
        self.calls.append(("disable", name))

    def delete(self, name: str) -> bool:
        self.calls.append(("delete", name))
        return name == "tick"

    def run_now(self, name: str) -> Any:
        self.calls.append(("run", name))
        return types.SimpleNamespace(id="sched:tick:now", queue=types.SimpleNamespace(
            name="default"))


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> type[FakeScheduler]:
    module = types.ModuleType("jobq_core.scheduler")
    module.Scheduler = FakeScheduler  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "jobq_core.scheduler", module)
    FakeScheduler.calls = []
    return FakeScheduler


def test_list(jobq: Jobq, fake: type[FakeScheduler]) -> None:
    run = jobq("schedules")
    assert run.code == 0
    assert "tick" in run.out and "tests.tasks.add" in run.out and "every 30s" in run.out
    data = jobq("schedules", "--json").json
    assert data[0]["name"] == "tick" and data[0]["when"] == "every 30s"
    assert data[0]["schedule"]["task"] == "tests.tasks.add" and data[0]["fired"] == 3


def test_actions(jobq: Jobq, fake: type[FakeScheduler]) -> None:
    assert jobq("schedules", "disable", "tick").out.strip() == "disabled schedule tick"
    assert jobq("schedules", "enable", "tick", "--json").json == {"schedule": "tick",
                                                                   "action": "enable"}
    run = jobq("schedules", "run", "tick", "--json")
    assert run.json["id"] == "sched:tick:now"
    assert jobq("schedules", "delete", "tick", "--yes").code == 0
    missing = jobq("schedules", "delete", "nope", "--yes")
    assert missing.code == 1 and "no schedule named 'nope'" in missing.one_line_error()
    assert fake.calls == [("disable", "tick"), ("enable", "tick"), ("run", "tick"),
                          ("delete", "tick"), ("delete", "nope")]
    # Each change is in the audit log the dashboard writes, in the dashboard's words; the
    # refused delete is not.
    entries = jobq("audit", "--json").json["entries"]
    assert [(e["action"], e["detail"], e["count"]) for e in reversed(entries)] == [
        ("disable schedule", "tick", 0), ("enable schedule", "tick", 0),
        ("run schedule now", "tick: sched:tick:now", 1), ("delete schedule", "tick", 0)]
    assert all(e["actor"].startswith("cli:") for e in entries)


def test_bad_usage(jobq: Jobq, fake: type[FakeScheduler]) -> None:
    assert jobq("schedules", "enable").code == 2
    assert jobq("schedules", "explode", "tick").code == 2
