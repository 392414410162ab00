"""Scenario 11: a job for a task the worker does not know. "Old worker, new task": the producer
has a task module the running worker never imported, and a raw name nobody registered. No live
worker of the queue advertises either task, so once the grace period (JOBQ_UNKNOWN_TASK_GRACE_S,
1 s here) has passed the job goes to dead with "unknown task" (no retries, no redelivery storm:
the hand-backs meanwhile are not deliveries), the worker stays up, and after a deploy (a worker
that imports the module) a requeue runs it. (Old and new workers live together:
tests/integration/test_rolling_deploy.py.)"""

from __future__ import annotations

import time

from .harness.scenario import QUEUE, Scenario

NEW_TASK = "tests.faults.tasks_late.new_feature"
NOBODY = "tests.faults.nowhere.ghost"


def test_unknown_task_goes_dead_once_and_runs_after_deploy(scenario: Scenario) -> None:
    from jobq_core.admin import Admin

    srv = scenario.redis()
    q = scenario.queue(srv.url)
    producer = scenario.producer(q)
    old = scenario.worker(srv.url, name="old", concurrency=2,  # imports tests.faults.tasks only
                          env={"JOBQ_UNKNOWN_TASK_GRACE_S": "1"})
    new_key, outcome, new_job = producer.enqueue(NEW_TASK, key="new-feature")
    ghost_key, outcome2, ghost_job = producer.enqueue(NOBODY, key="ghost")
    assert outcome == outcome2 == "ok", producer.errors
    scenario.wait_until(
        lambda: all(j.refresh().status == "dead" for j in (new_job, ghost_job)),
        10,
        "both jobs to reach dead",
    )
    time.sleep(2.0)  # a retry storm would show up as more deliveries meanwhile
    deliveries = {
        k: int(j.refresh().fields.get("deliveries", "0"))
        for k, j in ((new_key, new_job), (ghost_key, ghost_job))
    }
    retries = {k: j.retries for k, j in ((new_key, new_job), (ghost_key, ghost_job))}
    reasons = {k: j.reason for k, j in ((new_key, new_job), (ghost_key, ghost_job))}
    statuses = {k: j.status for k, j in ((new_key, new_job), (ghost_key, ghost_job))}

    # Deploy: a worker that imports the new module replaces the old one; requeue the dead job.
    old.send()
    assert old.wait(10) == 0, scenario.workers.logs()
    scenario.worker(
        srv.url,
        name="new",
        concurrency=2,
        imports=("tests.faults.tasks", "tests.faults.tasks_late"),
    )
    moved = Admin(q.settings).requeue(QUEUE, "dead", [new_job.id])
    scenario.wait_ended({new_key}, 15)
    figs = scenario.check(expect_end=lambda k: k != ghost_key, stuck=scenario.stuck(srv))
    scenario.record(
        "11",
        "unknown task (old worker, new task; unregistered name)",
        figs,
        {"deliveries": "= 1", "retries": "= 0", "final": "dead, then completed after deploy"},
        deliveries=max(deliveries.values()),
        retries=max(retries.values()),
    )

    why = f"{scenario.explain(figs)}\n{statuses=} {deliveries=} {retries=} {reasons=}"
    assert all(s == "dead" for s in statuses.values()), why
    assert all("unknown task" in r for r in reasons.values()), why
    assert all(n == 1 for n in deliveries.values()), why
    assert all(n == 0 for n in retries.values()), why
    assert figs.worker_exits == 0, why
    assert moved == 1 and new_job.refresh().status == "completed", why
    assert figs.lost == 0 and figs.stuck == 0, why
