"""Scenario 10: garbage in Redis. Ids that are not valid, an id whose hash is missing, a hash with
bad JSON, a hash without its fields, a job key of the wrong type, and a pending key of the wrong
type. Each bad entry must end in dead with a reason (the broken pending key set aside), the
worker must stay up and go back to idle CPU, and the next valid job must start within 1 s."""

from __future__ import annotations

import time

import psutil

from .harness.scenario import QUEUE, Scenario
from .harness.workers import WorkerProcess

WORK = "tests.faults.tasks.work"
NEXT_JOB_BOUND_S = 1.0
IDLE_CPU_BOUND_PCT = 10.0


def cpu_seconds(worker: WorkerProcess) -> float:
    total = 0.0
    for p in [psutil.Process(worker.pid), *worker.children()]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            continue
    return total


def test_garbage_is_quarantined_and_the_worker_carries_on(scenario: Scenario) -> None:
    from jobq_core.inspect import Inspector
    from jobq_core.keys import Keyspace

    srv = scenario.redis()
    q = scenario.queue(srv.url)
    producer = scenario.producer(q)
    w = scenario.worker(srv.url, name="A", concurrency=2)
    k = Keyspace()
    r = srv.client()
    first = producer.enqueue(WORK, 0.0, key="before")[0]
    scenario.wait_ended({first}, 20)

    garbage = {
        "invalid id": "not a valid id!! \u00e9\u00e9",
        "missing hash": "missinghash00001",
        "bad json": "badjson000000001",
        "no fields": "nofields00000001",
        "wrong type": "wrongtype0000001",
    }
    r.hset(
        k.job(QUEUE, garbage["bad json"]),
        mapping={
            "task": WORK,
            "args": '["k", ',
            "kwargs": "{",
            "state": "pending",
            "priority": "0",
        },
    )
    r.hset(k.job(QUEUE, garbage["no fields"]), mapping={"junk": "1"})
    r.rpush(k.job(QUEUE, garbage["wrong type"]), "x")
    # Score 1 puts them ahead of everything (scores start at (100 - priority) * 1e13).
    r.zadd(k.pending(QUEUE), {g: 1 for g in garbage.values()})
    t0 = time.monotonic()
    valid = producer.enqueue(WORK, 0.0, key="after-garbage")[0]
    scenario.wait_ended({valid}, 10)
    next_job_s = min(e.start for e in scenario.execs() if e.key == valid) - t0

    inspector = Inspector(q.settings)
    # Entries that parse as jobs go through a job process, so they may land after the valid job.
    scenario.wait_until(
        lambda: inspector.jobs("dead", QUEUE, limit=50).total >= len(garbage),
        10,
        "every bad entry to reach dead",
    )
    dead = {d.id: d for d in inspector.jobs("dead", QUEUE, limit=50).rows}
    reasons = {name: (dead[g].reason if g in dead else None) for name, g in garbage.items()}

    # A pending key of the wrong type: the worker sets it aside and the queue works again.
    r.delete(k.pending(QUEUE))
    r.set(k.pending(QUEUE), "not a zset")
    scenario.wait_until(
        lambda: r.exists(k.corrupt(QUEUE, "pending")) == 1,
        5,
        "the broken pending key to be set aside",
    )
    t1 = time.monotonic()
    valid2 = producer.enqueue(WORK, 0.0, key="after-bad-pending")[0]
    scenario.wait_ended({valid2}, 10)
    next_job2_s = min(e.start for e in scenario.execs() if e.key == valid2) - t1

    time.sleep(1.0)  # let the worker settle into its idle wait
    c0 = cpu_seconds(w)
    time.sleep(3.0)
    idle_cpu_pct = 100.0 * (cpu_seconds(w) - c0) / 3.0

    figs = scenario.check(stuck=scenario.stuck(srv))
    scenario.record(
        "10",
        "garbage in Redis (5 bad entries + a pending key of the wrong type)",
        figs,
        {
            "quarantined": f"= {len(garbage)}",
            "worker_exits": "= 0",
            "next_job_s": f"<= {NEXT_JOB_BOUND_S:g}",
            "idle_cpu_pct": f"<= {IDLE_CPU_BOUND_PCT:g}",
        },
        quarantined=sum(1 for v in reasons.values() if v),
        next_job_s=max(next_job_s, next_job2_s),
        idle_cpu_pct=idle_cpu_pct,
    )

    why = (
        f"{scenario.explain(figs)}\nreasons={reasons} next_job_s={next_job_s:.2f}/"
        f"{next_job2_s:.2f} idle_cpu={idle_cpu_pct:.1f}%"
    )
    assert all(reasons.values()), why
    assert w.alive() and figs.worker_exits == 0, why
    assert figs.lost == 0 and figs.stuck == 0, why
    assert next_job_s <= NEXT_JOB_BOUND_S and next_job2_s <= NEXT_JOB_BOUND_S, why
    assert idle_cpu_pct <= IDLE_CPU_BOUND_PCT, why
