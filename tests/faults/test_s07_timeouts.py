"""Scenario 7: jobs past their timeout. An interruptible job (sleeps in Python) and a stubborn one
(all catchable signals blocked, standing in for a C call that never returns) must both be stopped
by timeout + kill grace, while heartbeats keep the lease alive meanwhile (no false stall: a 3 s
lease outlived by a 4-6 s run must not be reaped), and the worker survives."""

from __future__ import annotations

import time

import pytest

from .harness.scenario import Scenario

WORK = "tests.faults.tasks.work"
STUBBORN = "tests.faults.tasks.stubborn"
# Longer than lease + reaper interval (3 + 1 s): a job starved of heartbeats would be reaped
# and rerun before its timeout fires.
TIMEOUT_S = 4.0
KILL_GRACE_S = 2.0  # Settings.kill_grace_s default
STOP_BOUND_S = TIMEOUT_S + KILL_GRACE_S + 1


@pytest.mark.faults
@pytest.mark.pools("process", "async")
def test_timeouts_stop_interruptible_and_stubborn_jobs(scenario: Scenario) -> None:
    srv = scenario.redis()
    q = scenario.queue(srv.url)
    producer = scenario.producer(q)
    workers = [scenario.worker(srv.url, name=n, concurrency=2) for n in ("A", "B")]
    jobs = {
        "soft": producer.enqueue(WORK, 10.0, key="soft", timeout_s=TIMEOUT_S)[2],
        "stubborn": producer.enqueue(STUBBORN, 30.0, key="stubborn", timeout_s=TIMEOUT_S)[2],
    }
    ended_at: dict[str, float] = {}
    deadline = time.monotonic() + 20
    while len(ended_at) < len(jobs) and time.monotonic() < deadline:
        for name, job in jobs.items():
            if name not in ended_at and job.refresh().status not in ("pending", "processing"):
                ended_at[name] = time.monotonic()
        time.sleep(0.05)
    time.sleep(1.0)  # a false stall would show as a rerun shortly after
    execs = scenario.execs()
    run_s = {
        k: max(e.last for e in execs if e.key == k) - min(e.start for e in execs if e.key == k)
        for k in jobs
    }
    detect_s = {
        k: ended_at.get(k, float("inf")) - min(e.start for e in execs if e.key == k) for k in jobs
    }
    logs = scenario.workers.logs()
    figs = scenario.check(expect_end=lambda k: False, stuck=scenario.stuck(srv))
    scenario.record(
        "7",
        "job timeout: interruptible and signal-blocking jobs",
        figs,
        {
            "run_s": f"<= timeout + kill grace + 1 = {STOP_BOUND_S:g}",
            "reruns": "= 0 (no false stall)",
            "dup_overlap": "= 0",
            "worker_exits": "= 0",
        },
        run_s=max(run_s.values()),
        detect_s=max(detect_s.values()),
    )

    why = f"{scenario.explain(figs)}\nrun_s={run_s} detect_s={detect_s}"
    for name, job in jobs.items():
        job.refresh()
        assert job.status == "failed", f"{name}: {job.status} {job.error[-300:]}\n{why}"
        assert "timeout" in (job.error + job.reason).lower(), f"{name}: {job.error[-300:]}\n{why}"
        assert run_s[name] <= STOP_BOUND_S and detect_s[name] <= STOP_BOUND_S, why
    # The reaper's line, not any "reaped" (a lease-lost warning also says "reaped, requeued").
    assert figs.reruns == 0 and "(lease expired)" not in logs, why
    assert figs.dup_overlap == 0 and figs.worker_exits == 0 and figs.stuck == 0, why
    assert all(w.alive() for w in workers), why
