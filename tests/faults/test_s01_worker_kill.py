"""Scenario 1: a worker is SIGKILLed mid-job: the whole worker, only a job child, only the parent.

No job may be lost or run twice at once; cut jobs must rerun within lease + reaper + 1 s. In the
parent-only case the orphaned job child keeps running unless it notices its parent is gone: it
must stop itself before its lease can expire, or the rerun on the other worker would overlap it.
"""

from __future__ import annotations

import random
import time

import psutil
import pytest

from .harness.checker import Execution
from .harness.scenario import Scenario
from .harness.workers import WorkerProcess

WORK = "tests.faults.tasks.work"
LEASE_S = 3.0
HEARTBEAT_S = 1.0
# Any worker reaps expired leases on its heartbeat, so the reaper interval is one heartbeat.
RECOVERY_BOUND_S = LEASE_S + HEARTBEAT_S + 1.0
BARS = {
    "lost": "= 0",
    "dup_overlap": "= 0",
    "stuck": "= 0",
    "recovery_s": f"<= {RECOVERY_BOUND_S:g}",
    "worker_exits": "= 0",
}


def jobs_on(worker: WorkerProcess, running: list[Execution]) -> list[Execution]:
    pids = {worker.pid, *(c.pid for c in worker.children())}
    return [e for e in running if e.pid in pids]


def kill_mid_job(
    scenario: Scenario,
    variant: str,
    durations: list[float],
    concurrency: int,
    scenario_id: str,
    title: str,
    spare_slot: bool = False,
) -> None:
    """Kill worker A while it runs jobs; B must rerun them. With ``spare_slot``, A gets the first
    job alone and B keeps a free slot, so recovery measures the engine, not B's queue of work."""
    srv = scenario.redis()
    producer = scenario.producer(scenario.queue(srv.url))
    a = scenario.worker(srv.url, name="A", concurrency=concurrency)
    keys: set[str] = set()
    if spare_slot:
        keys.add(producer.enqueue(WORK, durations[0])[0])
        scenario.wait_until(lambda: bool(jobs_on(a, scenario.running())), 30, "A running")
        b = scenario.worker(srv.url, name="B", concurrency=concurrency + 1)
        scenario.warm_up(b, producer, concurrency + 1)  # A is full: the probes go to B
        keys |= {producer.enqueue(WORK, d)[0] for d in durations[1:]}
        scenario.wait_until(lambda: bool(jobs_on(b, scenario.running())), 30, "B running")
    else:
        b = scenario.worker(srv.url, name="B", concurrency=concurrency)
        keys |= {producer.enqueue(WORK, d)[0] for d in durations}
        scenario.wait_busy([a, b], concurrency)

    # Wait until A is mid-job (started at least 0.3 s ago), so the kill cuts real work.
    scenario.wait_until(
        lambda: any(time.monotonic() - e.start > 0.3 for e in jobs_on(a, scenario.running())),
        20,
        "A mid-job",
    )
    victims = jobs_on(a, scenario.running())
    fault_at = time.monotonic()
    orphan_life_s = detect_s = None
    if variant == "group":
        a.kill_group()
    elif variant == "child":
        WorkerProcess.kill_pids([e.pid for e in victims])
        # The parent must notice at once (it waits on the child), not after a lease.
        q = scenario.queue(srv.url)
        done = scenario.wait_until(
            lambda: all(
                (j := q.job(e.job_id)) is None or j.status != "processing" for e in victims
            ),
            5,
            "killed jobs to leave processing",
        )
        detect_s = done - fault_at
    elif variant == "parent":
        a.kill_parent()
        child_pids = {e.pid for e in victims} - {a.pid}
        done = scenario.wait_until(
            lambda: not any(map(running_pid, child_pids)),
            LEASE_S + 5,
            "orphaned job children to stop",
        )
        orphan_life_s = done - fault_at
    scenario.wait_ended(keys, 60)
    # Leave the reaper one more round to clean up before counting what is still processing.
    scenario.wait_until(
        lambda: scenario.processing(srv) == 0, LEASE_S + 2 * HEARTBEAT_S + 1, "processing to drain"
    )
    figs = scenario.check(fault_at=fault_at, stuck=scenario.stuck(srv))
    if variant == "child":
        assert a.alive(), "killing a job child must not take its worker down\n" + scenario.explain(
            figs
        )
    bars = dict(BARS)
    if variant == "child":
        # A crashed child is a retry by policy (backoff, then the back of the queue), so its
        # rerun time depends on the backlog; what the engine owes is noticing at once.
        bars["recovery_s"] = "per retry policy"
        bars["detect_s"] = "<= 1"
    scenario.record(
        scenario_id,
        title,
        figs,
        bars,
        in_flight=len(victims),
        orphan_life_s=orphan_life_s,
        detect_s=detect_s,
    )

    why = scenario.explain(figs)
    assert figs.lost == 0, why
    assert figs.dup_overlap == 0, why
    assert figs.unexpected == 0, why
    assert figs.stuck == 0, why
    assert figs.worker_exits == 0, why
    # The body may have finished just before the kill, with the ack never sent: at most once each.
    assert figs.dup_completions <= len(victims), why
    assert figs.recovery_s is not None, why
    if variant == "child":
        assert detect_s is not None and detect_s <= 1.0, f"detect_s={detect_s}\n{why}"
    else:
        assert figs.recovery_s <= RECOVERY_BOUND_S, why
    if orphan_life_s is not None:
        assert orphan_life_s < LEASE_S, (
            f"orphan ran {orphan_life_s:.2f}s after its parent died\n{why}"
        )


def running_pid(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def durations(n: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [round(rng.uniform(0.5, 2.0), 2) for _ in range(n)]


# Short forms: part of the default `make test`.
@pytest.mark.parametrize("variant", ["group", "parent"])
def test_kill_short(scenario: Scenario, variant: str) -> None:
    sid = f"1{'a' if variant == 'group' else 'c'}-short"
    # A's job outlasts B's warm-up (a few seconds on a loaded machine) so the kill cuts it.
    kill_mid_job(scenario, variant, [10.0, 3.0], 1, sid, f"SIGKILL {variant} (short)", True)


@pytest.mark.pools("async")
def test_kill_short_async(scenario: Scenario) -> None:
    """The same with --pool async: the job is a coroutine of the worker process itself."""
    kill_mid_job(scenario, "group", [10.0, 3.0], 1, "1a-short", "SIGKILL group (short)", True)


@pytest.mark.faults
@pytest.mark.pools("async")
def test_kill_async(scenario: Scenario) -> None:
    """The whole worker, with --pool async (no job children: the other variants are moot)."""
    kill_mid_job(scenario, "group", durations(40, seed=1), 2, "1a", "SIGKILL whole worker")


@pytest.mark.faults
@pytest.mark.parametrize(
    ("variant", "sid", "title"),
    [
        ("group", "1a", "SIGKILL whole worker"),
        ("child", "1b", "SIGKILL job child only"),
        ("parent", "1c", "SIGKILL parent only"),
    ],
)
def test_kill(scenario: Scenario, variant: str, sid: str, title: str) -> None:
    kill_mid_job(scenario, variant, durations(40, seed=1), 2, sid, title)
