"""Error groups kept by fail.lua: 300 failures of 3 kinds make 3 groups; acting on a group
moves exactly its jobs."""

from __future__ import annotations

from collections import Counter

import pytest

from jobq_core import Queue, Settings
from jobq_core.admin import Admin
from jobq_core.errorgroups import act_on_group, error_group, error_groups
from jobq_core.grouping import normalise, signature
from jobq_core.inspect import Inspector
from tests import tasks
from tests.helpers import drain

pytestmark = pytest.mark.cluster  # also on the Redis Cluster (tests/conftest.py)

KINDS = ("key", "value", "runtime")


@pytest.fixture
def failed_300(settings: Settings, queue: Queue) -> dict[str, set[str]]:
    ids: dict[str, set[str]] = {k: set() for k in KINDS}
    jobs = queue.enqueue_many([(tasks.raise_kind, (KINDS[i % 3], i)) for i in range(300)])
    for i, job in enumerate(jobs):
        ids[KINDS[i % 3]].add(job.id)
    drain(settings, concurrency=4)
    return ids


def test_300_failures_of_3_kinds_make_3_groups(settings: Settings,
                                                failed_300: dict[str, set[str]]) -> None:
    groups = error_groups(Inspector(settings))
    assert len(groups) == 3
    assert sorted(g.type for g in groups) == ["KeyError", "RuntimeError", "ValueError"]
    assert all(g.count == 100 and g.jobs == 100 for g in groups)
    assert all(g.task == "tests.tasks.raise_kind" and g.first_ms <= g.last_ms for g in groups)
    by_type = {g.type: g for g in groups}
    assert by_type["ValueError"].message == "amount <n> for '…' is over the limit"
    assert by_type["RuntimeError"].message == "upstream <id> timed out after <n> ms"
    assert "Traceback" in by_type["KeyError"].sample
    assert by_type["KeyError"].sample_id in failed_300["key"]


def test_requeue_group_moves_exactly_its_jobs(settings: Settings, queue: Queue,
                                              failed_300: dict[str, set[str]]) -> None:
    insp = Inspector(settings)
    key = next(g for g in error_groups(insp) if g.type == "KeyError")
    steps = list(act_on_group(Admin(settings), "default", key.id, "requeue", batch=30))
    assert steps[-1].done == 100 and steps[-1].left == 0 and len(steps) >= 4  # batches
    states = Counter(j.fields["state"] for j in (queue.job(i) for i in failed_300["key"]) if j)
    assert states == Counter({"pending": 100})
    others = failed_300["value"] | failed_300["runtime"]
    assert insp.counts()["default"]["failed"] == 200
    assert {r.id for r in insp.jobs("pending", "default", limit=500).rows} == failed_300["key"]
    assert {r.id for r in insp.jobs("failed", "default", limit=500).rows} == others
    after = error_group(insp, "default", key.id)
    assert after is not None and after.jobs == 0 and after.count == 100
    # They fail again: back in the same group, which a purge then empties.
    drain(settings, concurrency=4)
    again = error_group(insp, "default", key.id)
    assert again is not None and again.count == 200 and again.jobs == 100
    assert list(act_on_group(Admin(settings), "default", key.id, "purge"))[-1].done == 100
    assert insp.counts()["default"]["failed"] == 200


def test_signature_masks_numbers_ids_and_quoted_values() -> None:
    assert normalise("user 'bob' has 3 items, id 5f3a9c0b1d2e, 0xdeadbeef") == \
        "user '…' has <n> items, id <id>, <id>"
    a = signature("t", "Traceback (most recent call last):\n  ...\nKeyError: 'user-1'")
    b = signature("t", "Traceback (most recent call last):\n  ...\nKeyError: 'user-99'")
    c = signature("u", "Traceback (most recent call last):\n  ...\nKeyError: 'user-99'")
    assert a.id == b.id != c.id and a.type == "KeyError"
    assert signature("t", "", "unknown task 'x'").type == ""


def test_a_job_requeued_or_purged_elsewhere_leaves_its_group(
        settings: Settings, failed_300: dict[str, set[str]]) -> None:
    insp, admin = Inspector(settings), Admin(settings)
    key = next(g for g in error_groups(insp) if g.type == "KeyError")
    one, two = sorted(failed_300["key"])[:2]
    assert admin.requeue("default", "failed", [one]) == 1
    assert admin.purge("default", "failed", [two]) == 1
    after = error_group(insp, "default", key.id)
    assert after is not None and after.jobs == 98 and after.count == 100
    steps = list(act_on_group(admin, "default", key.id, "requeue"))
    assert steps[-1].done == 98


def test_a_job_the_reaper_declares_poison_joins_the_group_python_names(
        settings: Settings, queue: Queue) -> None:
    import dataclasses

    from jobq_core.scripts import Scripts

    once = dataclasses.replace(settings, max_deliveries=1)
    job = queue.enqueue(tasks.sleep_for, 30)
    scripts = Scripts(queue.client, once)
    scripts.claim(["default"], 1, "gone-worker")
    queue.client.zadd(Inspector(once).keys.processing("default"), {job.id: 0}, xx=True)
    assert scripts.reap("default") == [(job.id, "dead")]
    [group] = error_groups(Inspector(once))
    expected = signature("tests.tasks.sleep_for", "", job.refresh().fields["reason"])
    assert (group.id, group.type, group.message) == (expected.id, "poison", expected.message)
    assert group.count == 1 and group.sample_id == job.id and "poison" in group.sample
