"""Scenario 6: one worker's wall clock is 2 minutes off (libfaketime, monotonic clock left real).

Lease deadlines and due times must come from Redis TIME, so the skewed worker must not reap the
other worker's live leases early (no reruns at all, since nothing else goes wrong here), and
delayed jobs and retries it promotes must fire on time (within 1 s).
"""

from __future__ import annotations

import shutil
import time

import pytest

from .harness.ledger import read_ledger
from .harness.scenario import Scenario

WORK = "tests.faults.tasks.work"
RETRY_ONCE = "tests.faults.tasks.retry_once"
DELAY_S = 2.0
FIRING_BOUND_S = 1.0
SKEW_S = {"+2m": 120.0, "-2m": -120.0}


@pytest.mark.faults
@pytest.mark.skipif(
    shutil.which("faketime") is None, reason="needs libfaketime: apt-get install faketime"
)
@pytest.mark.parametrize("skew", ["+2m", "-2m"])
def test_clock_skew_causes_no_early_reaping(scenario: Scenario, skew: str) -> None:
    srv = scenario.redis()
    q = scenario.queue(srv.url)
    producer = scenario.producer(q)
    a = scenario.worker(srv.url, name="A", concurrency=2)
    scenario.worker(srv.url, name="B", concurrency=2, faketime=skew)
    # Jobs longer than the lease (3 s): they only survive if renewals count on Redis's clock.
    keys = set(producer.enqueue_n(12, WORK, 3.5, prefix="long"))
    scenario.wait_ended(keys, 40)

    # Now only the skewed worker runs, so it alone promotes due jobs.
    a.send()
    assert a.wait(10) == 0, scenario.workers.logs()
    delayed: dict[str, float] = {}
    for i in range(3):
        key = f"delayed-{i}"
        t0 = time.monotonic()
        job = q.enqueue_call(WORK, args=(key, 0.0), delay_s=DELAY_S)
        scenario.producer_log.record(key, "ok", t0, time.monotonic(), job_id=job.id)
        delayed[key] = time.monotonic() + DELAY_S
    retry_key, _, _ = producer.enqueue(RETRY_ONCE, DELAY_S, key="retry")
    scenario.wait_ended(set(delayed) | {retry_key}, 20)

    execs = scenario.execs()
    # The fault's evidence: the jobs B ran saw a wall clock off by the skew (the ledger logs
    # each event's wall and monotonic time; the monotonic clock is shared and left real).
    runs, _ = read_ledger(scenario.ledger_dir)
    here = time.time() - time.monotonic()
    offsets = sorted(r.wall - r.mono - here for r in runs if r.key in delayed)
    clock_offset_s = offsets[len(offsets) // 2] if offsets else None
    firing = [min(e.start for e in execs if e.key == k) - due for k, due in delayed.items()]
    retry_starts = sorted(e.start for e in execs if e.key == retry_key)
    retry_error = (retry_starts[1] - retry_starts[0]) - DELAY_S if len(retry_starts) > 1 else None
    worst_delayed = max(abs(x) for x in firing)
    worst_firing = max(worst_delayed, abs(retry_error) if retry_error is not None else 0.0)
    long_figs = scenario.check(expect_end=lambda k: k.startswith("long"))
    reruns_long = sum(1 for k in keys if sum(e.key == k for e in execs) > 1)
    figs = scenario.check(stuck=scenario.stuck(srv))
    figs.reruns = reruns_long  # the retry job reruns on purpose: count only the long jobs
    scenario.record(
        f"6{skew}",
        f"worker clock skewed {skew}",
        figs,
        {
            "reruns": "= 0 (no spurious requeue)",
            "dup_overlap": "= 0",
            "lost": "= 0",
            "firing_error_s": f"<= {FIRING_BOUND_S:g}",
        },
        firing_error_s=worst_delayed,
        retry_error_s=retry_error,
        skew_seen_s=abs(clock_offset_s) if clock_offset_s is not None else None,
    )

    why = (f"{scenario.explain(figs)}\nfiring={firing} retry_error={retry_error} "
           f"clock offset seen by B's jobs={clock_offset_s}")
    expected_s = SKEW_S[skew]
    assert clock_offset_s is not None and abs(clock_offset_s - expected_s) < 5, why
    assert reruns_long == 0, why
    assert long_figs.dup_overlap == 0 and figs.dup_overlap == 0, why
    assert figs.lost == 0 and figs.stuck == 0 and figs.worker_exits == 0, why
    assert retry_error is not None, why
    assert worst_firing <= FIRING_BOUND_S, why
