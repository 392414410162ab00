"""Scenario 8: poison jobs that kill their process (os._exit, SIGSEGV, a memory blow-up under an
rlimit) mixed into good jobs. Poison runs at most max_deliveries times and ends dead (the memory
case may end failed: Python raises MemoryError, a normal exception); good jobs are not lost and
keep at least 80 % of the throughput they have without poison.

Good jobs sleep 50 ms, as sleep-based jobs keep the two cores free for the engine: a crashed job
process costs a respawn (a fresh interpreter importing the task modules), and with 0 ms jobs the
comparison would measure that start-up against a 1 ms job rather than the engine's behaviour."""

from __future__ import annotations

import time
from typing import Any

import pytest

from .harness.checker import Figures
from .harness.scenario import Scenario

WORK = "tests.faults.tasks.work"
GOOD_JOB_S = 0.05
POISONS = {
    "exit": "tests.faults.tasks.crash_exit",
    "segv": "tests.faults.tasks.crash_segv",
    "memory": "tests.faults.tasks.crash_memory",
}
MAX_DELIVERIES = 3  # the engine default
BARS = {
    "lost": "= 0 (good jobs)",
    "dup_overlap": "= 0",
    "worker_exits": "= 0",
    "poison_runs": f"<= {MAX_DELIVERIES}",
    "throughput_pct": ">= 80",
}


def enqueue_ok(producer: Any, task: str, *args: Any, key: str) -> str:
    """Enqueue a good job; no fault touches the producer here, so an error is a failure (a
    good job whose enqueue failed would silently drop out of ``lost``)."""
    key, outcome, job = producer.enqueue(task, *args, key=key)
    assert outcome == "ok", f"enqueue of {key} failed: {job!r}"
    return key


def drain_time(scenario: Scenario, keys: set[str]) -> float:
    """Seconds from the first start to the last end among ``keys`` (worker start-up excluded)."""
    execs = [e for e in scenario.execs() if e.key in keys]
    return max(e.last for e in execs) - min(e.start for e in execs)


def run_mix(
    scenario: Scenario,
    n_good: int,
    poisons: list[str],
    concurrency: int,
    measure_baseline: bool,
    scenario_id: str,
    title: str,
) -> None:
    srv = scenario.redis()
    q = scenario.queue(srv.url)
    producer = scenario.producer(q)

    baseline_s = None
    if measure_baseline:
        w = scenario.worker(srv.url, name="base", concurrency=concurrency)
        scenario.warm_up(w, producer, concurrency)  # measure the engine, not its start-up
        base_keys = {enqueue_ok(producer, WORK, GOOD_JOB_S, key=producer.next_key("base"))
                     for _ in range(n_good)}
        scenario.wait_ended(base_keys, 120)
        w.send()  # warm stop; the mixed run gets a fresh worker
        assert w.wait(10) == 0, scenario.workers.logs()
        baseline_s = drain_time(scenario, base_keys)

    w = scenario.worker(srv.url, name="mixed", concurrency=concurrency)
    if measure_baseline:
        scenario.warm_up(w, producer, concurrency)
    good: set[str] = set()
    poison_jobs: dict[str, Any] = {}
    step = max(1, n_good // (len(poisons) + 1))
    for i in range(n_good):
        good.add(enqueue_ok(producer, WORK, GOOD_JOB_S, key=producer.next_key("good")))
        if i % step == step - 1 and len(poison_jobs) < len(poisons):
            kind = poisons[len(poison_jobs)]
            _, outcome, job = producer.enqueue(POISONS[kind], key=f"poison-{kind}")
            assert outcome == "ok", job
            poison_jobs[kind] = job

    quarantine_s: dict[str, float] = {}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for kind, job in poison_jobs.items():
            if kind not in quarantine_s and job.refresh().status in ("dead", "failed"):
                first = min(e.start for e in scenario.execs() if e.key == f"poison-{kind}")
                quarantine_s[kind] = time.monotonic() - first
        if len(quarantine_s) == len(poison_jobs) and good <= scenario.ended_keys():
            break
        time.sleep(0.2)

    figs: Figures = scenario.check(
        expect_end=lambda k: not k.startswith("poison"), stuck=scenario.stuck(srv)
    )
    runs = {
        kind: sum(1 for e in scenario.execs() if e.key == f"poison-{kind}") for kind in poison_jobs
    }
    mixed_s = drain_time(scenario, good)
    pct = 100.0 * baseline_s / mixed_s if baseline_s else None
    crashes = sum(runs.values())
    # Wall time each poison run cost the good jobs, in slot-seconds (respawn included).
    crash_cost_s = (
        (mixed_s - baseline_s) * concurrency / crashes if baseline_s and crashes else None
    )
    scenario.record(
        scenario_id,
        title,
        figs,
        BARS,
        poison_runs=max(runs.values()),
        throughput_pct=pct,
        quarantine_s=max(quarantine_s.values(), default=None),
        crash_cost_s=crash_cost_s,
    )

    why = f"{scenario.explain(figs)}\npoison runs {runs}, quarantine {quarantine_s}"
    assert w.alive(), why
    assert figs.lost == 0 and figs.dup_overlap == 0 and figs.worker_exits == 0, why
    assert figs.stuck == 0, why
    for kind, job in poison_jobs.items():
        assert runs[kind] <= MAX_DELIVERIES, why
        status = job.refresh().status
        allowed = ("dead", "failed") if kind == "memory" else ("dead",)
        assert status in allowed, f"poison {kind} ended {status!r}\n{why}"
        assert job.reason or job.error, f"poison {kind} has no reason recorded\n{why}"
    if pct is not None:
        assert pct >= 80.0, f"throughput with poison {pct:.0f}% of baseline\n{why}"


def test_poison_short(scenario: Scenario) -> None:
    run_mix(scenario, 30, ["exit"], 2, False, "8-short", "poison os._exit among 30 jobs (short)")


@pytest.mark.faults
def test_poison(scenario: Scenario) -> None:
    run_mix(
        scenario,
        500,
        ["exit", "segv", "memory"],
        2,
        True,
        "8",
        "poison (exit, SIGSEGV, memory) among 500 jobs",
    )
