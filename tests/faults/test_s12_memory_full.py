"""Scenario 12: Redis memory full. With maxmemory-policy noeviction an enqueue that does not fit
raises a clear error and nothing already queued disappears; with an evicting policy the worker
warns loudly at start that Redis may evict queued jobs."""

from __future__ import annotations

import time
from typing import Any

import pytest

from .harness.scenario import Scenario

SIZED = "tests.faults.tasks.sized"
WORK = "tests.faults.tasks.work"
BLOCKER_S = 2.0
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
    # Keep the worker's one slot busy while Redis fills up, so the fill jobs stay queued
    # (left free, it ran each one as it came and nothing was queued when Redis was full). The
    # blocker ends while maxmemory is still set: its completion and the claims that follow
    # meet the full Redis.
    producer.enqueue(WORK, BLOCKER_S, key="blocker")
    scenario.wait_until(lambda: any(e.key == "blocker" for e in scenario.running()), 15,
                        "the blocker running")
    used = int(r.info("memory")["used_memory"])
    r.config_set("maxmemory", used + 2 * 1024 * 1024)
    error = None
    fill: dict[str, Any] = {}  # acknowledged fill jobs (the warm-up job is not one)
    for i in range(1000):
        key, outcome, res = producer.enqueue(SIZED, BLOB, key=f"fill-{i}")
        if outcome != "ok":
            error = res
            break
        fill[key] = res
    # The fault's evidence, taken as Redis refuses the enqueue (the blocker still holds the
    # worker's slot): acknowledged fill jobs queued in a full Redis. "Nothing queued
    # disappears" is about these.
    queued_when_full = sum(1 for job in fill.values() if job.refresh().status == "pending")
    time.sleep(BLOCKER_S + 1)  # the worker meets the full Redis on its claims and completions
    alive_when_full = a.alive()

    # Free the memory limit, drain: every acknowledged job must still be there and run.
    r.config_set("maxmemory", 0)
    scenario.wait_ended(set(fill), 60)
    figs = scenario.check(stuck=scenario.stuck(srv))
    scenario.record(
        "12-noeviction",
        "Redis maxmemory full, noeviction",
        figs,
        {"lost": "= 0", "enqueue error": "clear JobqError", "queued_when_full": "> 0"},
        acked_before_full=len(fill),
        queued_when_full=queued_when_full,
    )

    why = (f"{scenario.explain(figs)}\nerror={error!r} fill acked={len(fill)} "
           f"queued when full={queued_when_full}")
    assert isinstance(error, JobqError) and "memory" in str(error).lower(), why
    assert fill and queued_when_full > 0, why
    assert alive_when_full, why
    assert figs.lost == 0 and figs.stuck == 0 and figs.worker_exits == 0, why


@pytest.mark.faults
def test_evicting_policy_makes_the_worker_warn(scenario: Scenario) -> None:
    srv = scenario.redis(maxmemory="64mb", maxmemory_policy="allkeys-lru")
    w = scenario.worker(srv.url, name="A")
    scenario.wait_until(lambda: "maxmemory-policy" in w.log_text(), 10, "the eviction warning")
    text = w.log_text()
    warned = sum(
        1
        for line in text.splitlines()
        if "maxmemory-policy" in line and "allkeys-lru" in line and "noeviction" in line
    )
    scenario.record(
        "12-evicting",
        "Redis with allkeys-lru",
        # No job here: the figure is the warning itself, counted in the worker's log.
        scenario.check(require_acked=False),
        {"warned": ">= 1"},
        warned=warned,
    )
    assert warned >= 1 and "WARNING" in text, text
