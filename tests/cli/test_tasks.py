"""`jobq tasks`: run time per task and per queue."""

from __future__ import annotations

from jobq_core import Queue, Settings
from tests.cli.conftest import Jobq
from tests.helpers import settle_with_runtimes


def test_tasks_table_and_json(jobq: Jobq, settings: Settings, queue: Queue) -> None:
    empty = jobq("tasks")
    assert empty.code == 0 and "no attempt ran in the last 60 min" in empty.out
    settle_with_runtimes(settings, queue, [3] * 99 + [150], failing_ms=[40])
    run = jobq("tasks", "--minutes", "5")
    assert run.code == 0, run.err
    lines = [line.split() for line in run.out.splitlines()]
    assert lines[2][:5] == ["default", "(all", "tasks)", "101", "1"]
    assert lines[3][:4] == ["default", "tests.tasks.add", "101", "1"]
    data = jobq("tasks", "--json", "-q", "default").json
    assert data["minutes"] == 60 and data["queues"][0]["count"] == 101
    (add,) = data["tasks"]
    assert add["failures"] == 1 and 2 < add["p50_ms"] <= 5 and 20 < add["p99_ms"] <= 50
