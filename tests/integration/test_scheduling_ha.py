"""Three scheduler processes on one 1 s schedule; the leader is SIGKILLed, and a later leader
is SIGSTOPped past its lease and resumed: exactly one job per tick, and no tick missing
beyond the failover window (fault matrix row 13)."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from jobq_core import Queue, Settings
from jobq_core.inspect import Inspector
from tests.helpers import ROOT, wait_for_lines, worker_env, worker_thread


@dataclass
class Run:
    ticks: list[int]  # in ledger order
    logs: list[str]  # stderr of each scheduler process
    stopped_pid: int

    @property
    def duplicates(self) -> int:
        return len(self.ticks) - len(set(self.ticks))

    @property
    def longest_gap_s(self) -> float:
        t = sorted(set(self.ticks))
        return max(b - a for a, b in itertools.pairwise(t)) / 1000

    @property
    def missing(self) -> int:
        t = sorted(set(self.ticks))
        return (t[-1] - t[0]) // 1000 + 1 - len(t)


def leader_pid(settings: Settings, procs: list[subprocess.Popen[bytes]],
               timeout_s: float = 10) -> int:
    """The pid of the process holding the lease (waits for one to take it)."""
    pids = {p.pid for p in procs if p.poll() is None}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        owner = Inspector(settings).scheduler().leader
        if owner and int(owner.split(":")[-2]) in pids:
            return int(owner.split(":")[-2])
        time.sleep(0.05)
    raise AssertionError("no scheduler took the lease")


def run_three(settings: Settings, tmp: Path, lease_s: float, kill_at: float, stop_at: float,
              end_at: float) -> Run:
    ledger = tmp / "ledger"
    env = {**worker_env(settings), "JOBQ_SCHEDULER_LEASE_S": str(lease_s)}
    logs = [tmp / f"scheduler{i}.log" for i in range(3)]
    procs = [subprocess.Popen([sys.executable, "-m", "tests.run_scheduler", "ha", "1",
                               str(ledger)], env=env, cwd=ROOT, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=log.open("w"))
             for log in logs]
    stopped = 0
    try:
        with worker_thread(settings, concurrency=2):
            t0 = time.monotonic()
            time.sleep(kill_at)  # the schedule runs on the wall clock: let it
            os.kill(leader_pid(settings, procs), signal.SIGKILL)
            time.sleep(max(0.0, stop_at - (time.monotonic() - t0)))
            stopped = leader_pid(settings, procs)
            os.kill(stopped, signal.SIGSTOP)
            time.sleep(2 * lease_s)  # paused past its lease: another takes over
            os.kill(stopped, signal.SIGCONT)
            time.sleep(max(0.0, end_at - (time.monotonic() - t0)))
            for p in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            for p in procs:
                p.wait(15)
            q = Queue("default", settings=settings)
            created = int(q.client.hget(q.keys.stats("default"), "enqueued") or 0)
            lines = wait_for_lines(ledger, created, timeout_s=15)
    finally:
        for p in procs:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGCONT)
                p.kill()
                p.wait(5)
    return Run([int(line.rsplit(":", 1)[1]) for line in lines],
               [log.read_text() for log in logs], stopped)


def check(run: Run, lease_s: float, end_at: float) -> None:
    assert run.duplicates == 0
    # Failover: the lease runs out, then a follower (retrying at most every second, and
    # right when the lease ends) takes it within a second: no gap between two fired ticks
    # is longer than lease + 1 s + one period, and at most lease + 1 s of ticks is missing
    # for each of the two failovers.
    assert run.longest_gap_s <= lease_s + 2
    assert run.missing <= 2 * int(lease_s + 1)
    assert len(run.ticks) >= end_at - 2 - 2 * int(lease_s + 1)
    woken = next(log for log in run.logs if f" {run.stopped_pid} " in log)
    assert "lost the leader lease" in woken or "stepping down" in woken


def test_three_schedulers_short(settings: Settings, tmp_path: Path) -> None:
    run = run_three(settings, tmp_path, lease_s=1.5, kill_at=2.5, stop_at=5.0, end_at=10.0)
    check(run, 1.5, 10.0)


@pytest.mark.slow
def test_three_schedulers_for_a_minute(settings: Settings, tmp_path: Path) -> None:
    run = run_three(settings, tmp_path, lease_s=2.0, kill_at=15.0, stop_at=35.0, end_at=60.0)
    check(run, 2.0, 60.0)
