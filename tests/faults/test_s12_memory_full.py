"""Scenario 12: Redis memory full. With maxmemory-policy noeviction an enqueue that does not fit
raises a clear error and nothing already queued disappears; with an evicting policy the worker
warns loudly at start that Redis may evict queued jobs."""

from __future__ import annotations

import time

import pytest

from .harness.scenario import Scenario

SIZED = "tests.faults.tasks.sized"
BLOB = "x" * (16 * 1024)


@pytest.mark.faults
def test_noeviction_full_refuses_enqueue_and_keeps_jobs(scenario: Scenario) -> None:
    from jobq_core import JobqError

    srv = scenario.redis(maxmemory_policy="noeviction")
    r = srv.client()
    q = scenario.queue(srv.url)
    producer = scenario.producer(q)
    # A worker runs throughout: when Redis is full its claims and completions are refused too,
    # and it must wait that out, not exit.
    a = scenario.worker(srv.url, name="A", concurrency=1)
    producer.enqueue(SIZED, "warm-up", key="warm-up")  # scripts loaded, queue registered
    scenario.wait_ended({"warm-up"}, 15)
    used = int(r.info("memory")["used_memory"])
    r.config_set("maxmemory", used + 2 * 1024 * 1024)
    error = None
    for i in range(1000):
        key, outcome, res = producer.enqueue(SIZED, BLOB, key=f"fill-{i}")
        if outcome != "ok":
            error = res
            break
    acked = {e for e in producer_keys(scenario) if e != key}
    time.sleep(3.0)  # the worker meets the full Redis on its claims and completions
    alive_when_full = a.alive()

    # Free the memory limit, drain: every acknowledged job must still be there and run.
    r.config_set("maxmemory", 0)
    scenario.wait_ended(acked, 60)
    figs = scenario.check(stuck=scenario.stuck(srv))
    scenario.record(
        "12-noeviction",
        "Redis maxmemory full, noeviction",
        figs,
        {"lost": "= 0", "enqueue error": "clear JobqError"},
        acked_before_full=len(acked),
    )

    why = f"{scenario.explain(figs)}\nerror={error!r} acked={len(acked)}"
    assert isinstance(error, JobqError) and "memory" in str(error).lower(), why
    assert alive_when_full, why
    assert figs.lost == 0 and figs.stuck == 0 and figs.worker_exits == 0, why


def producer_keys(scenario: Scenario) -> set[str]:
    from .harness.ledger import read_ledger

    _, enqs = read_ledger(scenario.ledger_dir)
    return {e.key for e in enqs if e.outcome == "ok"}


@pytest.mark.faults
def test_evicting_policy_makes_the_worker_warn(scenario: Scenario) -> None:
    srv = scenario.redis(maxmemory="64mb", maxmemory_policy="allkeys-lru")
    w = scenario.worker(srv.url, name="A")
    scenario.wait_until(lambda: "maxmemory-policy" in w.log_text(), 10, "the eviction warning")
    text = w.log_text()
    scenario.record(
        "12-evicting",
        "Redis with allkeys-lru",
        scenario.check(),
        {"startup warning": "present"},
        warned=1,
    )
    assert "WARNING" in text and "allkeys-lru" in text and "noeviction" in text, text
