"""`jobq errors`: the groups, --json, and --requeue/--purge of a whole group."""

from __future__ import annotations

from jobq_core import Queue, Settings
from jobq_core.inspect import Inspector
from tests import tasks
from tests.cli.conftest import Jobq
from tests.helpers import drain


def test_errors_list_requeue_and_purge_a_group(jobq: Jobq, queue: Queue,
                                               settings: Settings) -> None:
    assert "no error groups" in jobq("errors").out
    queue.enqueue_many([(tasks.raise_kind, ("key", i)) for i in range(20)])
    queue.enqueue_many([(tasks.raise_kind, ("runtime", i)) for i in range(5)])
    drain(settings, concurrency=4)
    out = jobq("errors").out
    assert "KeyError" in out and "RuntimeError: upstream <id> timed out after <n> ms" in out
    groups = {g["type"]: g for g in jobq("errors", "--json").json}
    assert groups["KeyError"]["count"] == 20 and groups["RuntimeError"]["count"] == 5
    run = jobq("errors", "--requeue", groups["KeyError"]["id"])
    assert run.code == 0 and "requeued 20 job(s) of KeyError" in run.out
    counts = Inspector(settings).counts()["default"]
    assert counts["pending"] == 20 and counts["failed"] == 5
    assert jobq("errors", "--purge", groups["RuntimeError"]["id"]).code != 0  # asks; no tty
    assert Inspector(settings).counts()["default"]["failed"] == 5
    done = jobq("errors", "--purge", groups["RuntimeError"]["id"], "--yes", "--json").json
    assert done["done"] == 5 and Inspector(settings).counts()["default"]["failed"] == 0
    assert jobq("errors", "--requeue", "0123456789abcdef").code == 2
