"""An idle process-pool worker has the child of its first idle slot wait on the queues and
claim (worker/child_wait.py): the job starts in that child, never sent by the parent, and
keeps its guarantees when the child dies, stalls, or the worker stops during the wait. Most
tests stop the child (SIGSTOP) while Redis holds its blocking pop, so that what Redis claims
for it on an enqueue waits, unread, while the test acts."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from jobq_core import Job, Queue, Settings, Worker
from jobq_core.errors import RedisUnavailable
from jobq_core.keys import Keyspace
from jobq_core.server import LocalRedis, temp_dir
from jobq_core.worker.child import Outcomes
from jobq_core.worker.child_wait import ChildWait
from jobq_core.worker.pool import Pool
from jobq_core.worker.process_slot import ProcessSlot
from jobq_core.workers import connection_name
from tests import tasks
from tests.helpers import kill_group, start_worker, worker_thread
from tests.integration.test_hand_off import child_of
from tests.integration.test_process_pool import until

pytestmark = pytest.mark.single_only("the delegated wait is for one Redis")


def waiting_clients(w: Worker, r: redis.Redis) -> list[dict[str, str]]:
    """The worker's connections blocked in a command (its wait)."""
    name = connection_name(w.id)
    return [c for c in r.client_list() if c["name"] == name and "b" in c["flags"]]


def delegated(w: Worker) -> bool:
    return w.child_wait.delegated


def stopped_in_wait(w: Worker, r: redis.Redis) -> int:
    """Stop the idle child of slot 0 while Redis holds its wait (the parent waits for its
    report, not on Redis); returns its pid."""
    for _ in range(200):
        until(lambda: delegated(w) and bool(waiting_clients(w, r)), "the child's wait")
        pid = child_of(w)
        os.kill(pid, signal.SIGSTOP)
        if delegated(w) and waiting_clients(w, r):
            return pid
        os.kill(pid, signal.SIGCONT)
    raise AssertionError("never stopped the child in its wait")


def claimed_for_stopped_child(w: Worker, r: redis.Redis, queue: Queue,
                              ledger: Path) -> tuple[int, Job]:
    """After one job (the child is warm), stop the child in its wait and enqueue a job that
    Redis claims for it: the reply waits, unread, in the stopped child's socket."""
    assert queue.enqueue(tasks.add, 1, 1).result(timeout_s=15) == 2
    pid = stopped_in_wait(w, r)
    job = queue.enqueue(tasks.append_line, str(ledger), "ran")
    until(lambda: job.refresh().status == "processing", "Redis claimed it for the child")
    return pid, job


@pytest.fixture
def slow(settings: Settings) -> Settings:
    # A pick-up lease of 3 s (late after 2 s) and a wait of 1 s: room for the test to act.
    return settings.replace(lease_s=9.0, block_s=2.0)


def test_an_idle_workers_job_is_claimed_and_begun_by_the_waiting_child(
        settings: Settings, queue: Queue, r: redis.Redis, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    submitted: list[str] = []
    submit = Pool.submit
    monkeypatch.setattr(Pool, "submit", lambda self, job, at: (submitted.append(job.id),
                                                               submit(self, job, at))[1])
    ledger = tmp_path / "ledger"
    with worker_thread(settings, pool="process", concurrency=2) as w:
        assert queue.enqueue(tasks.add, 1, 1).result(timeout_s=15) == 2  # warm
        for _ in range(3):
            until(lambda: not w.pool.busy() and delegated(w), "the delegated wait")
            job = queue.enqueue(tasks.record_pid, str(ledger))
            assert job.result(timeout_s=15) == child_of(w, 0)
            assert job.id not in submitted  # claimed by the child, not sent by the parent
    pids = {line.split()[1] for line in ledger.read_text().splitlines()}
    assert len(pids) == 1


def test_a_child_killed_in_its_wait_loses_nothing(slow: Settings, queue: Queue,
                                                   r: redis.Redis, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    with worker_thread(slow, pool="process") as w:
        pid, job = claimed_for_stopped_child(w, r, queue, ledger)
        os.kill(pid, signal.SIGKILL)
        began = time.monotonic()
        assert job.result(timeout_s=15) is None
        # Handed back by the re-sent claim at once, not reaped once its pick-up lease ran out.
        assert time.monotonic() - began < slow.pickup_s
        assert child_of(w) != pid
    assert ledger.read_text().split() == ["ran"]
    job.refresh()
    assert job.status == "completed" and "lost" not in job.fields and job.retries == 0


def test_a_late_reply_is_handed_back_unstarted(slow: Settings, queue: Queue, r: redis.Redis,
                                               tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    ledger = tmp_path / "ledger"
    with worker_thread(slow, pool="process") as w:
        pid, job = claimed_for_stopped_child(w, r, queue, ledger)
        time.sleep(slow.pickup_s * 2 / 3 + 0.3)  # the reply is late, its lease still held
        with caplog.at_level(logging.WARNING, "jobq.worker"):
            os.kill(pid, signal.SIGCONT)
            assert job.result(timeout_s=15) is None
    assert "back unstarted" in caplog.text
    assert ledger.read_text().split() == ["ran"]  # once: by the claim after the hand-back
    job.refresh()
    assert job.fields["deliveries"] == "2" and "lost" not in job.fields


def test_stop_during_the_wait_is_prompt_and_hands_the_claim_back(
        slow: Settings, queue: Queue, r: redis.Redis, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    with worker_thread(slow, pool="process") as w:
        pid, job = claimed_for_stopped_child(w, r, queue, ledger)
        w.stop()
        os.kill(pid, signal.SIGCONT)
        until(lambda: job.refresh().status == "pending", "the hand-back", timeout_s=2)
    assert not ledger.exists()
    assert "lost" not in job.refresh().fields


def test_a_signal_ends_the_delegated_wait_at_once(slow: Settings, queue: Queue,
                                                  r: redis.Redis) -> None:
    with worker_thread(slow, pool="process") as w:
        assert queue.enqueue(tasks.add, 1, 1).result(timeout_s=15) == 2
        until(lambda: delegated(w) and bool(waiting_clients(w, r)), "the child's wait")
        w.stopping.set()  # what the SIGTERM handler does, without fetch.wake()
        until(lambda: not delegated(w), "the wait's end", timeout_s=0.6)


def test_an_outcome_read_with_the_report_is_not_left_behind(
        settings: Settings, queue: Queue, monkeypatch: pytest.MonkeyPatch) -> None:
    report = ChildWait._report

    def late_reader(self: ChildWait, slot: object, n: int, deadline: float,
                    stopping: object) -> object:
        # Read nothing until the job's outcome is in the pipe behind the report.
        outcomes = slot.outcomes  # type: ignore[attr-defined]
        if outcomes.wait(deadline - time.monotonic()):
            time.sleep(0.3)
        return report(self, slot, n, deadline, stopping)  # type: ignore[arg-type]

    monkeypatch.setattr(ChildWait, "_report", late_reader)
    with worker_thread(settings, pool="process") as w:
        until(lambda: delegated(w), "the delegated wait")
        assert queue.enqueue(tasks.add, 2, 3).result(timeout_s=5) == 5


def test_a_connection_lost_in_the_wait_is_waited_out(slow: Settings, queue: Queue,
                                                     r: redis.Redis,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    with worker_thread(slow, pool="process") as w, caplog.at_level(logging.ERROR, "jobq.worker"):
        assert queue.enqueue(tasks.add, 1, 1).result(timeout_s=15) == 2
        until(lambda: delegated(w) and bool(waiting_clients(w, r)), "the child's wait")
        for c in waiting_clients(w, r):
            r.client_kill_filter(_id=c["id"])
        until(lambda: "retrying in" in caplog.text, "the error waited out")
        job = queue.enqueue(tasks.add, 2, 2)
        assert job.result(timeout_s=15) == 4
        assert "lost" not in job.refresh().fields


# -- review 2026-12-06-session6: the job begun in the child, as the parent takes it on ------
def test_a_lease_lost_before_the_renewal_stops_the_begun_job(
        slow: Settings, queue: Queue, r: redis.Redis, tmp_path: Path) -> None:
    # A heartbeat slower than the job: only the renewal right after the report can stop it.
    slow = slow.replace(heartbeat_s=4.0)
    ledger = tmp_path / "ledger"
    with worker_thread(slow, pool="process") as w:
        assert queue.enqueue(tasks.add, 1, 1).result(timeout_s=15) == 2
        pid = stopped_in_wait(w, r)
        job = queue.enqueue(tasks.record_pid, str(ledger), 1.0)
        until(lambda: job.refresh().status == "processing", "Redis claimed it for the child")
        # Another worker's claim of it (its pick-up lease reaped and claimed again).
        r.hset(Keyspace(slow.prefix).job("default", job.id), "lease", "someone-else")
        os.kill(pid, signal.SIGCONT)
        until(lambda: getattr(w.pool.slots[0].proc, "pid", None) != pid, "the child killed",
              timeout_s=5)
        until(lambda: not _alive(pid), "the stopped child gone", timeout_s=5)
    # Killed before or after the task's first line (the ledger file may even be empty: the
    # kill can land between its open and its write), never past its 1 s sleep; once the
    # child is gone nothing can add to what it wrote.
    text = ledger.read_text() if ledger.exists() else ""
    mine = [line for line in text.splitlines() if line.endswith(f" {pid}")]
    assert mine in ([], [f"start {pid}"])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_delegated_job_that_kills_its_child_is_a_recorded_crash_each_time(
        settings: Settings, queue: Queue) -> None:
    with worker_thread(settings, pool="process") as w:
        assert queue.enqueue(tasks.add, 1, 1).result(timeout_s=15) == 2
        until(lambda: not w.pool.busy() and delegated(w), "the delegated wait")
        job = queue.enqueue(tasks.exit_hard, 3)
        until(lambda: job.refresh().status == "dead", "the last crash")
    # Each delivery ended in a recorded crash: none re-sent and run again unrecorded.
    assert job.refresh().fields["deliveries"] == str(job.retries + 1)


def test_a_delegated_job_is_current_and_renewed_past_its_pick_up_lease(
        slow: Settings, queue: Queue, r: redis.Redis, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    with worker_thread(slow, pool="process", concurrency=2) as w:
        assert queue.enqueue(tasks.add, 1, 1).result(timeout_s=15) == 2
        until(lambda: not w.pool.busy() and delegated(w), "the delegated wait")
        job = queue.enqueue(tasks.record_pid, str(ledger), slow.pickup_s + 1.5)
        until(lambda: any(e.job.id == job.id for e in w.pool.running()), "the job taken on")
        w.heartbeat.register()
        assert r.hget(Keyspace(slow.prefix).worker(w.id), "current") == f"default/{job.id}"
        assert job.result(timeout_s=15) == child_of(w, 0)
    job.refresh()
    assert "lost" not in job.fields and job.retries == 0


def test_jobs_sent_behind_a_delegated_job_run_once_each_in_order(
        settings: Settings, queue: Queue, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    with worker_thread(settings, pool="process", concurrency=1, prefetch=4) as w:
        assert queue.enqueue(tasks.add, 1, 1).result(timeout_s=15) == 2
        for round_ in range(3):
            until(lambda: not w.pool.busy() and delegated(w), "the delegated wait")
            first = queue.enqueue(tasks.record_pid, str(ledger), 0.5)
            # 8 words a round: 'start pid', 'end pid' and four lines
            until(lambda n=8 * round_: ledger.exists() and len(ledger.read_text().split()) > n,
                  "the delegated job's start")
            rest = [queue.enqueue(tasks.append_line, str(ledger), f"r{round_}-{i}")
                    for i in range(4)]
            assert first.result(timeout_s=15) == child_of(w, 0)
            for j in rest:
                assert j.result(timeout_s=15) is None
    words = ledger.read_text().split()
    for round_ in range(3):
        assert [x for x in words if x.startswith(f"r{round_}-")] == [
            f"r{round_}-{i}" for i in range(4)]


def test_an_error_in_the_report_wait_kills_the_waiting_child(
        settings: Settings, queue: Queue, monkeypatch: pytest.MonkeyPatch) -> None:
    # Else the child could go on to claim and begin a job that no ledger holds.
    report = ChildWait._report
    failed: list[int] = []

    def failing(self: ChildWait, slot: object, n: int, deadline: float,
                stopping: object) -> object:
        if not failed:
            failed.append(slot.proc.pid)  # type: ignore[attr-defined]
            raise RedisUnavailable("injected")
        return report(self, slot, n, deadline, stopping)  # type: ignore[arg-type]

    with worker_thread(settings, pool="process") as w:
        assert queue.enqueue(tasks.add, 1, 1).result(timeout_s=15) == 2
        monkeypatch.setattr(ChildWait, "_report", failing)
        until(lambda: bool(failed), "the failing report wait")
        until(lambda: w.pool.slots[0].proc is None or not w.pool.slots[0].proc.is_alive()  # type: ignore[attr-defined]
              or w.pool.slots[0].proc.pid != failed[0], "the child killed")  # type: ignore[attr-defined]
        assert queue.enqueue(tasks.add, 2, 2).result(timeout_s=15) == 4


# -- review 2026-12-06-session6 (informational): a stop while Redis is cut off ----------------
@pytest.fixture
def private_server() -> Iterator[LocalRedis]:
    """A Redis server of this test's own, to freeze (SIGSTOP): cut off, its sockets hang."""
    server = LocalRedis(temp_dir("jq-cw-")).start()
    assert server.proc is not None
    try:
        yield server
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)
        server.stop()
        shutil.rmtree(server.dir, ignore_errors=True)


def test_a_stop_while_redis_is_cut_off_ends_the_delegated_wait_with_the_childs(
        settings: Settings, private_server: LocalRedis) -> None:
    # The child's wait ends by its socket timeout; the stop comes late in it. The worker's
    # wake (which cannot reach Redis either) must not hold the loop for a timeout of its own.
    s = settings.replace(redis_url=private_server.url, socket_timeout_s=8.0)
    queue = Queue("default", settings=s)
    r = redis.Redis.from_url(s.redis_url)
    assert private_server.proc is not None
    with worker_thread(s, pool="process") as w:
        assert queue.enqueue(tasks.add, 1, 1).result(timeout_s=15) == 2
        until(lambda: delegated(w) and bool(waiting_clients(w, r)), "the child's wait")
        os.kill(private_server.proc.pid, signal.SIGSTOP)
        time.sleep(s.socket_timeout_s - 1.5)  # late in the child's wait, well before its end
        stopped = threading.Thread(target=w.stop, daemon=True)  # its own wake blocks too
        stopped.start()
        # Ends by the child's own timeout (~1.5 s from now); the old loop also sat out a
        # wake of its own (8 s).
        until(lambda: not delegated(w), "the wait's end", timeout_s=s.socket_timeout_s / 2)
        os.kill(private_server.proc.pid, signal.SIGCONT)
        stopped.join(s.socket_timeout_s + 5)
    r.close()


def _child_pid(w: Worker) -> int | None:
    return getattr(w.pool.slots[0], "proc", None) and w.pool.slots[0].proc.pid  # type: ignore[attr-defined]


def test_a_child_that_died_in_its_wait_is_replaced_for_the_next_wait(
        settings: Settings, queue: Queue, r: redis.Redis, tmp_path: Path) -> None:
    # Before, the slot's next job alone started another child: until a job came through the
    # worker loop's own wait, no wait was delegated.
    with worker_thread(settings, pool="process") as w:
        assert queue.enqueue(tasks.add, 1, 1).result(timeout_s=15) == 2
        until(lambda: delegated(w) and bool(waiting_clients(w, r)), "the child's wait")
        pid = child_of(w)
        os.kill(pid, signal.SIGKILL)
        until(lambda: _child_pid(w) not in (None, pid) and delegated(w)
              and bool(waiting_clients(w, r)), "a new child's delegated wait")
        ledger = tmp_path / "ledger"
        job = queue.enqueue(tasks.record_pid, str(ledger))
        assert job.result(timeout_s=15) == child_of(w) != pid


# -- review leftovers (session 8) ---------------------------------------------------------
@pytest.mark.parametrize("beat", ["under way", "none under way"])
def test_a_worker_stopped_while_redis_is_cut_off_exits_within_seconds(
        settings: Settings, private_server: LocalRedis, beat: str) -> None:
    # SIGINT to an idle worker whose Redis is frozen. Before, the stop sat out the delegated
    # wait (up to a socket timeout), a beat under way, and the unregistering (a socket timeout
    # each): 14-16 s measured at the defaults, 16 s and more with this socket timeout. Now the
    # child's wait is ended by a kill STOP_REPORT_S after the wake, and the stop's own calls
    # wait STOP_TIMEOUT_S at most: about 2 s. With a beat under way (heartbeat_s 1: it waits
    # for the frozen Redis) the stop leaves the registry entry to expire; with none (the first
    # beat is heartbeat_s after the start) it unregisters, on its own short-timeout client
    # (on the heartbeat's, whose timeout is min(socket_timeout_s, heartbeat_s): 8 s here).
    s = settings.replace(redis_url=private_server.url)
    queue = Queue("default", settings=s)
    r = redis.Redis.from_url(s.redis_url, decode_responses=True)
    assert private_server.proc is not None
    quiet = {"JOBQ_HEARTBEAT_S": "30", "JOBQ_LEASE_S": "60"} if beat == "none under way" else {}
    proc = start_worker(s, env={"JOBQ_SOCKET_TIMEOUT_S": "8", "JOBQ_POOL": "process", **quiet})
    try:
        assert queue.enqueue(tasks.add, 1, 1).result(timeout_s=30) == 2
        until(lambda: any("b" in c["flags"] for c in r.client_list()), "the child's wait")
        os.kill(private_server.proc.pid, signal.SIGSTOP)
        began = time.monotonic()
        proc.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(30)
        took = time.monotonic() - began
    finally:
        kill_group(proc)
        os.kill(private_server.proc.pid, signal.SIGCONT)
        r.close()
    out = proc.stdout.read().decode() if proc.stdout else ""
    assert proc.returncode == 0, out
    assert took < 6, f"the stop took {took:.1f} s\n{out}"


def test_a_child_that_began_its_job_is_not_killed_at_the_report_deadline(
        settings: Settings, queue: Queue, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The loop reads the report late, past its deadline (a stalled loop), while the child has
    # begun the job and runs it. Before, the child was killed mid-job at the deadline, its
    # job accounted for nowhere, and run again when the re-sent claim handed it back; now
    # the job number is withdrawn before a kill, which fails for a begun job: its report
    # (written before the job runs) is read, and the job runs once, to its end.
    ledger = tmp_path / "ledger"
    armed, ordered = threading.Event(), threading.Event()
    hidden: list[tuple[float, tuple[object, ...]]] = []  # until when, the report's values
    report, take = ChildWait._report, Outcomes.take_report

    def short(self: ChildWait, *args: object) -> object:
        if armed.is_set():
            args = (*args[:-2], time.monotonic() + 1.0, args[-1])  # the deadline
            ordered.set()
        return report(self, *args)  # type: ignore[arg-type]

    def late(self: Outcomes) -> tuple[object, ...] | None:
        if not hidden:
            got = take(self)
            if got is None or not armed.is_set() or not got[0]:  # Report.began
                return got
            hidden.append((time.monotonic() + 1.5, got))  # past the deadline, not its margin
        if time.monotonic() < hidden[0][0]:
            return None
        armed.clear()
        return hidden.pop()[1]

    monkeypatch.setattr(ChildWait, "_report", short)
    monkeypatch.setattr(Outcomes, "take_report", late)
    with worker_thread(settings.replace(lease_s=9.0), pool="process") as w:
        assert queue.enqueue(tasks.add, 1, 1).result(timeout_s=15) == 2
        first = child_of(w)
        armed.set()
        assert ordered.wait(15)
        job = queue.enqueue(tasks.record_pid, str(ledger), 1.0)
        pid = job.result(timeout_s=15)
        now = child_of(w)
    assert ledger.read_text().split() == ["start", str(pid), "end", str(pid)]
    job.refresh()
    assert job.fields["deliveries"] == "1" and "lost" not in job.fields
    assert pid == first == now  # the child was not killed
    assert not armed.is_set()  # and the report was read late


@pytest.mark.parametrize("how", ["exits at once", "cannot be spawned"])
def test_a_child_that_cannot_start_is_not_started_again_at_every_wait(
        settings: Settings, queue: Queue, r: redis.Redis, how: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # After the waiting child died, the next wait starts another (ab5b211): once until a
    # child reports. One that cannot start was tried again at every wait (every block_s).
    spawn, tries = ProcessSlot._spawn, []

    def failing(self: ProcessSlot) -> None:
        tries.append(self.index)
        if how == "cannot be spawned":
            raise OSError("injected: cannot start a child")
        spawn(self)
        assert self.proc is not None
        self.proc.kill()
        self.proc.join(5)

    with worker_thread(settings, pool="process") as w:
        assert queue.enqueue(tasks.add, 1, 1).result(timeout_s=15) == 2
        until(lambda: delegated(w) and bool(waiting_clients(w, r)), "the child's wait")
        own: list[int] = []
        wait = w.fetch.wait
        monkeypatch.setattr(w.fetch, "wait", lambda count=0: (own.append(count), wait(count))[1])
        monkeypatch.setattr(ProcessSlot, "_spawn", failing)
        os.kill(child_of(w), signal.SIGKILL)
        until(lambda: len(own) >= 10, "ten waits of the worker loop's own")
        assert tries == [0]
