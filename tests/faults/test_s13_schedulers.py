"""Scenario 13: three scheduler processes share a 1 s schedule; the leader is SIGKILLed, then
the next leader is SIGSTOPped for 2x the scheduler lease and resumed.

Each tick must yield one job (deterministic job id per tick, fenced by the leader epoch): no two
jobs for one period, even from a paused leader that wakes up after losing its lease. Failover
takes at most the lease + 1 s, so at most that many ticks are missed per failover."""

from __future__ import annotations

import itertools
import signal
import time

import pytest
import redis

from .harness.scenario import Scenario

LEASE_S = 3.0  # JOBQ_SCHEDULER_LEASE_S for the schedulers
PERIOD_S = 1.0  # tests/faults/schedules.py
FAILOVER_BOUND_S = LEASE_S + 1.0
MODULES = ("tests.faults.tasks", "tests.faults.schedules")


def leader_pid(client: redis.Redis) -> int | None:
    """The pid in the leader lease's owner ("host:pid:token")."""
    from jobq_core.keys import Keyspace

    owner = client.hget(Keyspace().scheduler_leader(), "owner")
    return int(str(owner).split(":")[1]) if owner else None


def tick_starts(scenario: Scenario) -> list[tuple[int, float]]:
    """(tick ms from the job id, monotonic start) of every tick job run, by tick."""
    out = {}
    for e in scenario.execs():
        if e.key.startswith("sched:fault-tick:"):
            tick = int(e.key.rsplit(":", 1)[1])
            out[tick] = min(out.get(tick, e.start), e.start)
    return sorted(out.items())


def gap_after(starts: list[float], fault_at: float) -> float:
    """The longest gap between consecutive starts that spans or follows ``fault_at`` closely."""
    window_end = fault_at + FAILOVER_BOUND_S + 2
    return max(
        (b - a for a, b in itertools.pairwise(starts) if b > fault_at and a <= window_end),
        default=0.0,
    )


@pytest.mark.faults
def test_three_schedulers_one_job_per_tick(scenario: Scenario) -> None:
    srv = scenario.redis()
    r = srv.client()
    env = {"JOBQ_SCHEDULER_LEASE_S": str(LEASE_S)}
    scheds = {}
    for name in ("S1", "S2", "S3"):
        w = scenario.worker(srv.url, name=name, role="scheduler", imports=MODULES, env=env)
        scheds[w.pid] = w
    scenario.worker(srv.url, name="W", concurrency=2, imports=MODULES)
    scenario.wait_until(lambda: leader_pid(r) in scheds, 15, "a leader")
    time.sleep(4)

    first = scheds[leader_pid(r) or 0]
    kill_at = time.monotonic()
    first.kill_group(signal.SIGKILL)
    scenario.wait_until(
        lambda: leader_pid(r) not in (None, first.pid), LEASE_S + 5, "a new leader after SIGKILL"
    )
    time.sleep(3)

    second = scheds[leader_pid(r) or 0]
    stop_at = time.monotonic()
    second.kill_group(signal.SIGSTOP)
    time.sleep(2 * LEASE_S)
    second.kill_group(signal.SIGCONT)
    second.meant_to_exit = False  # it must go on running (as a follower) after the pause
    time.sleep(4)
    end_at = time.monotonic()

    ticks = tick_starts(scenario)
    in_window = [(t, s) for t, s in ticks if s <= end_at]
    ms = [t for t, _ in in_window]
    dup_ticks = sum(1 for a, b in itertools.pairwise(ms) if b - a < PERIOD_S * 1000 / 2)
    span = (ms[-1] - ms[0]) / 1000 if len(ms) > 1 else 0.0
    missed = max(0, round(span / PERIOD_S) + 1 - len(ms))
    starts = [s for _, s in in_window]
    # Failover: the longest pause between two tick runs around each fault, less one period.
    failover_s = max(gap_after(starts, kill_at), gap_after(starts, stop_at)) - PERIOD_S
    # Tick jobs have no producer log (the scheduler is their producer): the evidence of work
    # is `ticks`, asserted below, not acknowledged enqueues.
    figs = scenario.check(stuck=scenario.stuck(srv), require_acked=False)
    figs.unexpected = 0
    scenario.record(
        "13",
        "three schedulers: leader SIGKILL, then SIGSTOP 2x lease",
        figs,
        {
            "dup_ticks": "= 0",
            "failover_s": f"<= lease + 1 = {FAILOVER_BOUND_S:g}",
            "missed_ticks": f"<= 2 failovers x {FAILOVER_BOUND_S:g} s",
        },
        dup_ticks=dup_ticks,
        missed_ticks=missed,
        failover_s=failover_s,
        ticks=len(ms),
    )

    why = (
        f"{scenario.explain(figs)}\nticks={ms}\ndup_ticks={dup_ticks} missed={missed} "
        f"failover_s={failover_s:.2f}"
    )
    assert len(ms) >= 5, why
    assert dup_ticks == 0 and figs.dup_completions == 0, why
    assert failover_s <= FAILOVER_BOUND_S, why
    assert missed <= 2 * FAILOVER_BOUND_S / PERIOD_S, why
    assert second.alive() and sum(w.alive() for w in scheds.values()) == 2, why
