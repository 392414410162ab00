"""The checker must catch the failures the fault suite exists to find. No server, runs in ms."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from .harness.checker import NothingAcknowledged, check, check_dir, executions
from .harness.ledger import EnqueueEvent, ProducerLog, RunEvent, RunLedger, read_ledger


def run(event: str, key: str, exec_id: str, t: float, pid: int = 100) -> RunEvent:
    return RunEvent(event, key, exec_id, "1", pid, t, 1_700_000_000 + t, "-")


def enq(key: str, outcome: str = "ok", t: float = 0.0) -> EnqueueEvent:
    return EnqueueEvent(key, outcome, 1, t, t + 0.001, 1_700_000_000 + t, "-", "")


def one_clean_run(key: str, exec_id: str, t0: float, t1: float, pid: int = 100) -> list[RunEvent]:
    return [
        run("start", key, exec_id, t0, pid),
        run("tick", key, exec_id, (t0 + t1) / 2, pid),
        run("end", key, exec_id, t1, pid),
    ]


def test_clean_history_has_no_findings() -> None:
    runs = one_clean_run("a", "x1", 1, 2) + one_clean_run("b", "x2", 1.5, 3)
    f = check(runs, [enq("a"), enq("b")])
    assert (f.lost, f.dup_overlap, f.dup_completions, f.reruns, f.unexpected) == (0, 0, 0, 0, 0)
    assert f.completed == 2 and f.executions == 2


def test_a_ledger_without_acknowledged_enqueues_is_refused() -> None:
    # Nothing acknowledged, so nothing can be lost: "lost = 0" would pass any scenario.
    with pytest.raises(NothingAcknowledged):
        check([], [])
    with pytest.raises(NothingAcknowledged):
        check(one_clean_run("a", "x1", 1, 2), [enq("a", "error"), enq("b", "unknown")])
    assert check(one_clean_run("a", "x1", 1, 2), [enq("a", "error"), enq("a")]).lost == 0


def test_detects_loss() -> None:
    f = check(one_clean_run("a", "x1", 1, 2), [enq("a"), enq("b")])
    assert f.lost == 1
    assert f.details["lost"] == ["b"]


def test_unknown_or_failed_enqueue_that_never_ran_is_not_lost() -> None:
    f = check([], [enq("a", "unknown"), enq("b", "error")], require_acked=False)
    assert f.lost == 0 and f.enqueued_unknown == 1 and f.enqueued_error == 1


def test_expect_end_excludes_poison_keys_from_loss() -> None:
    f = check(
        [run("start", "poison-1", "x1", 1)],
        [enq("poison-1"), enq("good-1")],
        expect_end=lambda k: not k.startswith("poison"),
    )
    assert f.lost == 1 and f.details["lost"] == ["good-1"]


def test_detects_overlap_of_a_killed_execution_still_ticking() -> None:
    # The first execution never ends (its worker was cut off) but kept ticking until t=6,
    # while a second execution started at t=4: a concurrent duplicate.
    runs = [run("start", "a", "x1", 1, pid=1), run("tick", "a", "x1", 6, pid=1)]
    runs += one_clean_run("a", "x2", 4, 5, pid=2)
    f = check(runs, [enq("a")])
    assert f.dup_overlap == 1
    assert f.reruns == 1
    assert f.dup_completions == 0
    assert f.lost == 0


def test_sequential_rerun_is_not_an_overlap() -> None:
    runs = [run("start", "a", "x1", 1, pid=1), run("tick", "a", "x1", 1.2, pid=1)]
    runs += one_clean_run("a", "x2", 4.5, 5, pid=2)
    f = check(runs, [enq("a")])
    assert f.dup_overlap == 0 and f.reruns == 1


def test_detects_duplicate_completion() -> None:
    runs = one_clean_run("a", "x1", 1, 2, pid=1) + one_clean_run("a", "x2", 5, 6, pid=2)
    f = check(runs, [enq("a")])
    assert f.dup_completions == 1 and f.dup_overlap == 0 and f.reruns == 1


def test_detects_unexpected_execution() -> None:
    f = check(
        one_clean_run("ghost", "x1", 1, 2) + one_clean_run("b", "x2", 1, 2), [enq("b", "error")],
        require_acked=False,
    )
    assert f.unexpected == 2


def test_recovery_is_delay_from_fault_to_rerun_of_cut_jobs() -> None:
    runs = [run("start", "a", "x1", 1, pid=1)]  # cut by the fault at t=2
    runs += one_clean_run("a", "x2", 5.5, 6, pid=2)  # rerun 3.5 s later
    runs += one_clean_run("b", "x3", 1, 3, pid=2)  # unaffected: it ended
    f = check(runs, [enq("a"), enq("b")], fault_at=2.0)
    assert f.recovery_s == 3.5


def test_recovery_is_infinite_when_a_cut_job_never_reruns() -> None:
    f = check([run("start", "a", "x1", 1)], [enq("a")], fault_at=2.0)
    assert f.recovery_s == math.inf and f.lost == 1


def test_resume_waits_for_throughput_back_near_baseline() -> None:
    # Baseline 10 starts/s. The fault ends at t=10: one straggler at 10.5, full speed from 13.
    runs: list[RunEvent] = []
    times = [10.5] + [13 + i * 0.1 for i in range(20)]
    for i, t in enumerate(times):
        runs += one_clean_run(f"k{i}", f"x{i}", t, t + 0.05)
    f = check(runs, [], fault_end=10.0, baseline_rate=10.0, require_acked=False)
    assert f.resume_s is not None and 3.7 <= f.resume_s <= 3.9
    assert check(runs, [], fault_end=10.0, require_acked=False).resume_s == 0.5


def test_ledger_files_round_trip_and_survive_sigkill(tmp_path: Path) -> None:
    ProducerLog(tmp_path).record("a", "ok", 1.0, 1.1, job_id="j1")
    # A child writes start + tick then dies by SIGKILL: its lines must still be there.
    code = textwrap.dedent(f"""
        import os, signal
        from tests.faults.harness.ledger import RunLedger
        led = RunLedger({str(tmp_path)!r})
        x = led.new_exec()
        led.event("start", "a", x, 1, "j1")
        led.event("tick", "a", x, 1, "j1")
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    rc = subprocess.run([sys.executable, "-c", code], env=env, cwd=root).returncode
    assert rc == -9
    runs, enqs = read_ledger(tmp_path)
    assert [r.event for r in runs] == ["start", "tick"]
    assert enqs[0].key == "a" and enqs[0].outcome == "ok" and enqs[0].job_id == "j1"
    (ex,) = executions(runs)
    assert not ex.ended
    f = check_dir(tmp_path)
    assert f.lost == 1


def test_torn_last_line_is_ignored(tmp_path: Path) -> None:
    led = RunLedger(tmp_path)
    led.event("start", "a", "x1", 1)
    with open(next(tmp_path.glob("run-*.log")), "a") as fh:
        fh.write("run end a x1 1 12")  # writer died mid-line: no newline
    runs, _ = read_ledger(tmp_path)
    assert [r.event for r in runs] == ["start"]
