"""Scenario 3: Redis SIGKILLed under load and restarted on the same AOF directory.

With ``appendfsync always`` nothing acknowledged may be lost; with ``everysec`` only enqueues
acknowledged in the last ~second before the crash may be. Workers must carry on without a restart
and be back at speed within the reconnect backoff cap + 2 s.
"""

from __future__ import annotations

import time

import pytest

from .harness.checker import executions, start_rate
from .harness.ledger import read_ledger
from .harness.producer import BackgroundProducer
from .harness.scenario import WORKER_ENV, Scenario

WORK = "tests.faults.tasks.work"
BACKOFF_CAP_S = float(WORKER_ENV["JOBQ_RECONNECT_MAX_S"])
RESUME_BOUND_S = BACKOFF_CAP_S + 2
EVERYSEC_WINDOW_S = 2.0  # everysec fsyncs each second; a write may wait up to ~2 s (Redis docs)


@pytest.mark.faults
@pytest.mark.parametrize("fsync", ["always", "everysec"])
def test_redis_kill9_and_restart_on_aof(scenario: Scenario, fsync: str) -> None:
    srv = scenario.redis(appendonly=True, appendfsync=fsync)
    producer = scenario.producer(scenario.queue(srv.url))
    workers = [scenario.worker(srv.url, name=name, concurrency=2) for name in ("A", "B")]
    load = BackgroundProducer(producer, WORK, (0.05,), rate_per_s=60, limit=900)
    load.start()
    scenario.on_close(load.stop)
    # Crash Redis in steady state: both workers warm and busy, then 3 s of load as baseline.
    scenario.wait_busy(workers, 2)
    time.sleep(3)
    kill_at = time.monotonic()
    srv.kill()
    time.sleep(2)
    srv.start()
    back_at = time.monotonic()
    time.sleep(4)  # load goes on after the restart, so resumption can be measured
    load.stop()

    runs, enqs = read_ledger(scenario.ledger_dir)
    acked = {e.key for e in enqs if e.outcome == "ok"}
    # Everything acknowledged should end; under everysec the crash may have dropped a few, so wait
    # for the rest and let the checker name the missing ones.
    try:
        scenario.wait_ended(acked, 45)
    except AssertionError:
        if fsync == "always":
            raise
    scenario.wait_until(lambda: scenario.processing(srv) == 0, 8, "processing to drain")
    execs = executions(runs)
    baseline = start_rate(execs, kill_at - 3, kill_at)
    figs = scenario.check(fault_end=back_at, baseline_rate=baseline, stuck=scenario.stuck(srv))
    recent = {
        e.key for e in enqs if e.outcome == "ok" and e.mono_done >= kill_at - EVERYSEC_WINDOW_S
    }
    lost_keys = set(figs.details["lost"])
    bars = {
        "lost": "= 0" if fsync == "always" else f"only acks of the last {EVERYSEC_WINDOW_S:g} s",
        "dup_overlap": "= 0",
        "resume_s": f"<= {RESUME_BOUND_S:g}",
        "worker_exits": "= 0",
    }
    scenario.record(
        f"3-{fsync}",
        f"Redis kill -9 + restart, appendfsync {fsync}",
        figs,
        bars,
        producer_errors=load.outcomes["error"] + load.outcomes["unknown"],
    )

    why = scenario.explain(figs)
    # The fault happened under load: enqueues were acknowledged before the kill and after the
    # restart, and some failed while Redis was down.
    assert any(e.mono_done < kill_at for e in enqs if e.outcome == "ok"), why
    assert any(e.mono_invoke > back_at for e in enqs if e.outcome == "ok"), why
    assert load.outcomes["error"] + load.outcomes["unknown"] > 0, why
    if fsync == "always":
        assert figs.lost == 0, why
    else:
        assert lost_keys <= recent, f"lost acks older than {EVERYSEC_WINDOW_S}s\n{why}"
    assert figs.dup_overlap == 0, why
    assert figs.worker_exits == 0, why
    assert figs.stuck == 0, why
    assert figs.resume_s is not None and figs.resume_s <= RESUME_BOUND_S, why
