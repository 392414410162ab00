"""Scenario 4: Redis unavailable for 10 s in three ways: refused connections (server stopped),
a SIGSTOPped server (sockets open, no replies) and ``CLIENT PAUSE``. No worker exits; the blocking
claim connection recovers by itself; a producer gets a fast, clear error meanwhile."""

from __future__ import annotations

import time

import pytest
import redis

from .harness.scenario import WORKER_ENV, Scenario
from .harness.server import RedisServer

WORK = "tests.faults.tasks.work"
OUTAGE_S = 10.0
BACKOFF_CAP_S = float(WORKER_ENV["JOBQ_RECONNECT_MAX_S"])
RESUME_BOUND_S = BACKOFF_CAP_S + 2
CLIENT_TIMEOUTS_S = 1.0 + 1.0  # the producer's socket + connect timeouts (Scenario.queue)
PRODUCER_ERROR_BOUND_S = CLIENT_TIMEOUTS_S + 1.0


@pytest.mark.faults
@pytest.mark.parametrize("flavour", ["refused", "sigstop", "client_pause"])
def test_redis_unavailable_10s(scenario: Scenario, flavour: str) -> None:
    from jobq_core import JobqError

    srv = scenario.redis(appendonly=True, appendfsync="always")
    q = scenario.queue(srv.url)
    producer = scenario.producer(q)
    for name in ("A", "B"):
        scenario.worker(srv.url, name=name, concurrency=2)
    # Two jobs in flight when Redis goes away, and idle slots blocked in the claim.
    cut = {producer.enqueue(WORK, 1.5)[0] for _ in range(2)}
    scenario.wait_until(lambda: len(scenario.running()) == 2, 15, "jobs running")

    fault_at = time.monotonic()
    if flavour == "refused":
        srv.kill()
    elif flavour == "sigstop":
        srv.freeze()
    else:
        srv.client().execute_command("CLIENT", "PAUSE", int(OUTAGE_S * 1000), "ALL")

    # A producer during the outage must fail fast with a clear error, not hang or buffer.
    t0 = time.monotonic()
    _, outcome, err = producer.enqueue(WORK, 0.1, key="during-outage")
    producer_error_s = time.monotonic() - t0
    time.sleep(max(0.0, fault_at + OUTAGE_S - time.monotonic()))
    if flavour == "refused":
        srv.start()
    elif flavour == "sigstop":
        srv.thaw()
    back_at = time.monotonic()
    if flavour == "client_pause":
        scenario.wait_until(lambda: _answers(srv), 5, "pause to end")
        back_at = time.monotonic()

    # The blocking claim must wake for a job enqueued now, without any process restart.
    probe_key, probe_outcome, _ = producer.enqueue(WORK, 0.1, key="probe")
    assert probe_outcome == "ok", producer.errors
    scenario.wait_ended(cut | {probe_key}, 30)
    scenario.wait_until(lambda: scenario.processing(srv) == 0, 8, "processing to drain")
    probe_start = min(e.start for e in scenario.execs() if e.key == probe_key)
    figs = scenario.check(fault_end=back_at, stuck=scenario.stuck(srv))
    resume_s = probe_start - back_at
    figs.resume_s = resume_s
    scenario.record(
        f"4-{flavour}",
        f"Redis unavailable 10 s: {flavour}",
        figs,
        {
            "lost": "= 0",
            "dup_overlap": "= 0",
            "worker_exits": "= 0",
            "resume_s": f"<= {RESUME_BOUND_S:g}",
            "producer_error_s": f"<= {PRODUCER_ERROR_BOUND_S:g}",
        },
        producer_error_s=producer_error_s,
    )

    why = f"{scenario.explain(figs)}\nproducer: {outcome} {err!r} after {producer_error_s:.2f}s"
    assert outcome != "ok", why
    assert isinstance(err, JobqError) and "Redis" in str(err), why
    assert producer_error_s <= PRODUCER_ERROR_BOUND_S, why
    assert figs.worker_exits == 0, why
    assert figs.lost == 0 and figs.dup_overlap == 0 and figs.stuck == 0, why
    assert resume_s <= RESUME_BOUND_S, why
    assert all(w.alive() for w in scenario.workers.all), why


def _answers(srv: RedisServer) -> bool:
    try:
        return bool(srv.client(socket_timeout=0.3).ping())
    except (redis.ConnectionError, redis.TimeoutError):
        return False
