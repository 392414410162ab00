"""Scenario 2: SIGTERM with long jobs. Warm shutdown lets jobs finish within the grace period and
hands the rest back; a second signal stops at once; Redis down during shutdown must not hang the
worker or lose the jobs (their leases bring them back)."""

from __future__ import annotations

import signal
import time
from collections import defaultdict

import psutil
import pytest

from .harness.checker import Execution
from .harness.scenario import Scenario
from .harness.workers import WorkerProcess

WORK = "tests.faults.tasks.work"


def leftovers(scenario: Scenario, worker: WorkerProcess) -> list[str]:
    """Processes of the exited worker still alive 2 s later (multiprocessing's resource tracker
    needs a moment to notice its parent is gone; a job child must not survive at all)."""
    deadline = time.monotonic() + 2.0
    while worker.group_pids() and time.monotonic() < deadline:
        time.sleep(0.1)
    out = []
    for pid in worker.group_pids():
        try:
            out.append(f"{pid}: {' '.join(psutil.Process(pid).cmdline())[:120]}")
        except psutil.NoSuchProcess:
            continue
    return out


LEASE_S = 3.0
HEARTBEAT_S = 1.0
GRACE_S = 3.0
SOCKET_TIMEOUT_S = 1.0  # scenario.WORKER_ENV
BARS = {
    "lost": "= 0",
    "dup_overlap": "= 0",
    "stuck": "= 0",
    "shutdown_s": f"<= grace + 1 = {GRACE_S + 1:g}",
}


@pytest.mark.faults
@pytest.mark.pools("process", "async")
def test_warm_shutdown_finishes_short_jobs_and_hands_back_long_ones(scenario: Scenario) -> None:
    srv = scenario.redis()
    producer = scenario.producer(scenario.queue(srv.url))
    # B is warmed up, then frozen while A claims both jobs: it must be ready to take the
    # handed-back job at once, but must not take the jobs first.
    b = scenario.worker(srv.url, name="B", concurrency=2, grace_s=GRACE_S)
    scenario.warm_up(b, producer, 2)
    b.kill_group(signal.SIGSTOP)
    a = scenario.worker(srv.url, name="A", concurrency=2, grace_s=GRACE_S)
    short, _, _ = producer.enqueue(WORK, 2.0, key="short")
    long_, _, _ = producer.enqueue(WORK, 10.0, key="long")
    scenario.wait_until(
        lambda: {e.key for e in scenario.running()} >= {short, long_}, 30, "both jobs running on A"
    )
    b.kill_group(signal.SIGCONT)
    b.meant_to_exit = False
    term_at = time.monotonic()
    a.send(signal.SIGTERM)
    rc = a.wait(GRACE_S + 5)
    shutdown_s = time.monotonic() - term_at
    scenario.wait_ended({short, long_}, 30)
    scenario.wait_until(lambda: scenario.processing(srv) == 0, LEASE_S + 3, "processing to drain")
    figs = scenario.check(stuck=scenario.stuck(srv))
    execs: dict[str, list[Execution]] = defaultdict(list)
    for e in scenario.execs():
        execs[e.key].append(e)
    # A stops claiming at SIGTERM, so a start after it is B's.
    rerun = [e for e in execs[long_] if e.start > term_at]
    handback_s = min(e.start for e in rerun) - term_at if rerun else None
    scenario.record(
        "2a",
        "SIGTERM warm shutdown (grace 3 s)",
        figs,
        BARS,
        shutdown_s=shutdown_s,
        handback_s=handback_s,
    )

    why = f"{scenario.explain(figs)}\nrc={rc} shutdown_s={shutdown_s:.2f}"
    assert rc == 0, why
    assert shutdown_s <= GRACE_S + 1, why
    assert figs.lost == 0 and figs.dup_overlap == 0 and figs.stuck == 0, why
    # The 2 s job fits in the grace period: it finishes on A, once.
    assert len(execs[short]) == 1 and execs[short][0].ended, why
    # The 10 s job does not: A stops it and hands it back, so B starts it without waiting a lease.
    assert handback_s is not None and handback_s <= GRACE_S + 2, why


@pytest.mark.faults
@pytest.mark.pools("process", "async")
def test_second_signal_stops_at_once_without_loss(scenario: Scenario) -> None:
    srv = scenario.redis()
    producer = scenario.producer(scenario.queue(srv.url))
    a = scenario.worker(srv.url, name="A", concurrency=2, grace_s=30)
    keys = {producer.enqueue(WORK, 10.0)[0] for _ in range(2)}
    scenario.wait_until(lambda: len(scenario.running()) == 2, 15, "both jobs running on A")
    fault_at = time.monotonic()
    a.send(signal.SIGTERM)
    time.sleep(0.3)
    a.send(signal.SIGINT)
    rc = a.wait(5)
    stop_s = time.monotonic() - fault_at
    scenario.worker(srv.url, name="B", concurrency=2)
    scenario.wait_ended(keys, 40)
    scenario.wait_until(lambda: scenario.processing(srv) == 0, LEASE_S + 3, "processing to drain")
    figs = scenario.check(fault_at=fault_at, stuck=scenario.stuck(srv))
    left = leftovers(scenario, a)
    scenario.record(
        "2b",
        "SIGTERM then SIGINT (hard stop)",
        figs,
        {**BARS, "shutdown_s": "<= 2 (second signal: at once)"},
        shutdown_s=stop_s,
    )

    why = f"{scenario.explain(figs)}\nrc={rc} stop_s={stop_s:.2f} leftovers={left}"
    assert rc is not None and stop_s <= 2.0, why
    assert not left, why
    assert figs.lost == 0 and figs.dup_overlap == 0 and figs.stuck == 0, why


@pytest.mark.faults
@pytest.mark.pools("process", "async")
def test_shutdown_with_redis_down_exits_and_loses_nothing(scenario: Scenario) -> None:
    srv = scenario.redis(appendonly=True, appendfsync="always")
    producer = scenario.producer(scenario.queue(srv.url))
    a = scenario.worker(srv.url, name="A", concurrency=2, grace_s=GRACE_S)
    keys = {producer.enqueue(WORK, 6.0)[0] for _ in range(2)}
    scenario.wait_until(lambda: len(scenario.running()) == 2, 15, "both jobs running on A")
    srv.kill()
    fault_at = time.monotonic()
    a.send(signal.SIGTERM)
    rc = a.wait(GRACE_S + 10)
    shutdown_s = time.monotonic() - fault_at
    left = leftovers(scenario, a)
    srv.start()
    scenario.worker(srv.url, name="B", concurrency=2)
    scenario.wait_ended(keys, 40)
    scenario.wait_until(lambda: scenario.processing(srv) == 0, LEASE_S + 3, "processing to drain")
    figs = scenario.check(stuck=scenario.stuck(srv))
    bound = GRACE_S + 2 * SOCKET_TIMEOUT_S + 1
    scenario.record(
        "2c",
        "SIGTERM while Redis is down",
        figs,
        {**BARS, "shutdown_s": f"<= grace + 2 socket timeouts + 1 = {bound:g}"},
        shutdown_s=shutdown_s,
    )

    why = f"{scenario.explain(figs)}\nrc={rc} shutdown_s={shutdown_s:.2f} leftovers={left}"
    assert rc is not None and shutdown_s <= bound, why
    assert not left, why
    assert figs.lost == 0 and figs.dup_overlap == 0 and figs.stuck == 0, why
