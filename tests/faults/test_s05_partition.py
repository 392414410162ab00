"""Scenario 5: worker A is cut off from Redis by the test proxy for 2x the lease, worker B is not.

A must stop its jobs itself when it cannot renew their leases (self-fencing), B reruns them after
the leases expire, and when the partition heals A's late completion is refused by the lease token:
the result Redis keeps is that of the last execution that finished. A must be back at work soon
after the heal (no socket stuck on a dead connection).
"""

from __future__ import annotations

import signal
import time

import pytest

from .harness.proxy import Mode
from .harness.scenario import WORKER_ENV, Scenario
from .harness.workers import WorkerProcess

WORK = "tests.faults.tasks.work"
LEASE_S = 3.0
HEARTBEAT_S = 1.0
# The worker stops a job this long after its last renewal it knows of (pool._stale's margin).
FENCE_AFTER_S = LEASE_S - min(HEARTBEAT_S, (LEASE_S - HEARTBEAT_S) / 2)
SOCKET_TIMEOUT_S = float(WORKER_ENV["JOBQ_SOCKET_TIMEOUT_S"])
BACKOFF_CAP_S = float(WORKER_ENV["JOBQ_RECONNECT_MAX_S"])
A_RESUME_BOUND_S = SOCKET_TIMEOUT_S + BACKOFF_CAP_S + 2
SHORT_JOB_S = 3.0
SHORT_END_AFTER_CUT_S = 0.4


def pids_of(worker: WorkerProcess) -> set[int]:
    return {worker.pid, *(c.pid for c in worker.children())}


@pytest.mark.faults
@pytest.mark.pools("process", "async")
@pytest.mark.parametrize("mode", ["blackhole", "half_open"])
def test_partition_of_one_worker(scenario: Scenario, mode: Mode) -> None:
    srv = scenario.redis()
    proxy = scenario.proxy(srv)
    q = scenario.queue(srv.url)
    producer = scenario.producer(q)
    # B first, warmed up, then frozen while A (through the proxy) claims the two jobs: B must
    # be ready to rerun them, yet must not take them first.
    b = scenario.worker(srv.url, name="B", concurrency=2)
    scenario.warm_up(b, producer, 2)
    b.kill_group(signal.SIGSTOP)
    a = scenario.worker(proxy.url, name="A", concurrency=2)
    # A 10 s job A must stop itself, and a short job whose body ends just after the cut (its
    # completion cannot reach Redis in time, so B reruns it and A's late write must be refused).
    long_key, _, long_job = producer.enqueue(WORK, 10.0, key="long")
    short_key, _, short_job = producer.enqueue(WORK, SHORT_JOB_S, key="short")
    scenario.wait_until(
        lambda: {e.key for e in scenario.running()} >= {long_key, short_key},
        30,
        "both jobs running on A",
    )
    a_pids = pids_of(a)
    b.kill_group(signal.SIGCONT)
    b.meant_to_exit = False
    time.sleep(0.5)
    # Cut SHORT_END_AFTER_CUT_S before the short job's body ends: well before A fences it
    # (FENCE_AFTER_S after its last renewal, at most a heartbeat before the cut), so A holds
    # a finished result it cannot write: the stale-completion path this scenario is about.
    short_start = next(e.start for e in scenario.running() if e.key == short_key)
    time.sleep(max(0.0, short_start + SHORT_JOB_S - SHORT_END_AFTER_CUT_S - time.monotonic()))

    cut_at = time.monotonic()
    proxy.set_mode(mode)
    time.sleep(2 * LEASE_S)
    proxy.set_mode("pass")
    healed_at = time.monotonic()

    # After the heal A must claim again promptly: give it work B cannot take all of.
    after = {producer.enqueue(WORK, 1.0, key=f"after-{i}")[0] for i in range(6)}
    scenario.wait_ended({long_key, short_key} | after, 40)
    scenario.wait_until(lambda: scenario.processing(srv) == 0, LEASE_S + 3, "processing to drain")
    execs = scenario.execs()
    a_pids |= pids_of(a)
    a_after = [e.start for e in execs if e.key.startswith("after") and e.pid in a_pids]
    a_resume_s = min(a_after) - healed_at if a_after else float("inf")

    # A stale completion accepted would leave the result of an execution that was not the last
    # one to finish.
    stale = 0
    for key, job in ((long_key, long_job), (short_key, short_job)):
        ended = sorted(
            (e for e in execs if e.key == key and e.ended), key=lambda e: e.end_mono or 0
        )
        result = job.refresh().return_value or {}
        if ended and result.get("exec") != ended[-1].exec_id:
            stale += 1
    a_long = [e for e in execs if e.key == long_key and e.pid in a_pids]
    # The stale-completion path ran: A's run of the short job ended (a result to write) and
    # A's worker logged that Redis refused it (lease token no longer A's).
    a_short_ended = sum(1 for e in execs if e.key == short_key and e.pid in a_pids and e.ended)
    stale_refused = sum(
        1
        for line in a.log_text(tail=100_000).splitlines()
        if short_job.id in line and "refused" in line and "stale result dropped" in line
    )
    a_long_life_s = max(e.last for e in a_long) - cut_at if a_long else None

    figs = scenario.check(fault_at=cut_at, stuck=scenario.stuck(srv))
    # Blackhole: A's renewals stop at the cut. Half-open: they still land in Redis until A gives
    # the job up (FENCE_AFTER_S after its last acknowledged renewal), so the lease ends later.
    renew_tail = 0.0 if mode == "blackhole" else FENCE_AFTER_S
    recovery_bound = renew_tail + LEASE_S + HEARTBEAT_S + 1
    # Half-open: A's completion of the short job reaches Redis while A still holds the lease
    # (its renewals land too); only the reply is lost. A writes it again after the heal, and
    # that re-send must be answered as the first was (04e7c0b), not refused as stale: before,
    # the refusal dropped the success callbacks of a result Redis had stored.
    short_runs = sum(1 for e in execs if e.key == short_key)
    a_resent = sum(
        1 for line in a.log_text(tail=100_000).splitlines() if "cannot record" in line
    )
    path = (
        {"stale_refused": ">= 1"}
        if mode == "blackhole"
        else {"resend_refused": "= 0", "short_runs": "= 1", "resent_writes": ">= 1"}
    )
    scenario.record(
        f"5-{mode}",
        f"partition of one worker for 2x lease: {mode}",
        figs,
        {
            "lost": "= 0",
            "dup_overlap": "= 0",
            "stale_accepted": "= 0",
            **path,
            "recovery_s": f"<= {recovery_bound:g}",
            "a_resume_s": f"<= {A_RESUME_BOUND_S:g}",
            "a_long_life_s": f"< {LEASE_S:g}",
        },
        stale_accepted=stale,
        a_resume_s=a_resume_s,
        a_long_life_s=a_long_life_s,
        **(
            {"stale_refused": stale_refused}
            if mode == "blackhole"
            else {"resend_refused": stale_refused, "short_runs": short_runs,
                  "resent_writes": a_resent}
        ),
    )

    why = (
        f"{scenario.explain(figs)}\nstale={stale} a_resume_s={a_resume_s:.2f} "
        f"a_long_life_s={a_long_life_s}"
    )
    assert figs.lost == 0 and figs.dup_overlap == 0 and figs.stuck == 0, why
    assert figs.worker_exits == 0, why
    assert stale == 0, why
    if mode == "blackhole":
        assert a_short_ended == 1 and stale_refused >= 1, (
            f"the stale-completion path did not run (A ended the short job {a_short_ended}x, "
            f"{stale_refused} refusals logged)\n{why}"
        )
    else:
        assert a_short_ended == 1 and short_runs == 1 and a_resent >= 1, (
            f"the lost-reply path did not run (A ended the short job {a_short_ended}x, it ran "
            f"{short_runs}x, A re-sent {a_resent} writes)\n{why}"
        )
        assert stale_refused == 0, f"A's re-sent completion was refused as stale\n{why}"
    # A stopped the long job itself, before its lease could expire (blackhole: no renewal
    # landed after the cut).
    assert a_long_life_s is not None and a_long_life_s < LEASE_S + renew_tail, why
    assert figs.recovery_s is not None and figs.recovery_s <= recovery_bound, why
    assert a_resume_s <= A_RESUME_BOUND_S, why
