"""The worker's lifecycle around its main loop (worker/supervisor.py)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
import redis

from jobq_core import Queue, Settings, Worker, task
from jobq_core.job import Claimed
from jobq_core.keys import Keyspace
from jobq_core.records import WorkerInfo
from tests import tasks
from tests.helpers import worker_thread

GATE = threading.Event()
STARTED = threading.Event()


@task(name="tests.supervisor.hold")
def hold() -> str:
    STARTED.set()
    while not GATE.wait(0.01):
        pass
    return "done"


def test_stop_hands_back_prefetched_jobs_before_waiting_for_running_ones(
        settings: Settings, queue: Queue) -> None:
    # A prefetched job is not renewed once the worker stops; if it were handed back only
    # after the running job's grace, its lease would run out meanwhile (counted as lost).
    GATE.clear()
    STARTED.clear()
    running = queue.enqueue(hold)
    waiting = queue.enqueue(tasks.add, 1, 1)
    w = Worker(["default"], settings.replace(grace_s=60.0), imports=["tests.tasks"],
               pool="thread", concurrency=1, prefetch=1)
    handed: dict[str, bool] = {}
    handed_back = threading.Event()
    original = w._hand_back

    def hand_back(jobs: Sequence[Claimed], client: redis.Redis | None = None) -> None:
        original(jobs, client)
        if jobs:  # the main loop asks with none while there is no room
            for job in jobs:
                handed[job.id] = GATE.is_set()  # False: the running job was still running
            handed_back.set()

    w._hand_back = hand_back  # type: ignore[method-assign]
    t = threading.Thread(target=w.work, daemon=True)
    t.start()
    try:
        assert STARTED.wait(10)
        assert queue.job(waiting.id).status == "processing"  # type: ignore[union-attr]
        w.stop()
        assert handed_back.wait(10), "the prefetched job was not handed back during grace"
    finally:
        GATE.set()
        t.join(30)
    assert handed == {waiting.id: False}
    assert waiting.refresh().status == "pending" and "lost" not in waiting.fields
    assert running.refresh().status == "completed"


def test_worker_waits_out_a_busy_server(settings: Settings, queue: Queue,
                                        r: redis.Redis) -> None:
    # A script running past busy-reply-threshold makes Redis answer BUSY to everyone else
    # until it ends: a blink like a restart, which the worker must wait out, not die of.
    old = r.config_get("busy-reply-threshold")["busy-reply-threshold"]
    r.config_set("busy-reply-threshold", 50)
    busy = redis.Redis.from_url(settings.redis_url, socket_timeout=None)
    try:
        with worker_thread(settings.replace(socket_timeout_s=1.0)) as w:
            hit = threading.Event()
            for name in ("claim", "wait"):
                setattr(w.fetch, name, _noting_errors(getattr(w.fetch, name), hit))
            spinner = threading.Thread(target=_spin, args=(busy,), daemon=True)
            spinner.start()
            try:
                assert hit.wait(10), "the worker never met the busy server"
            finally:
                _kill_script(r)
                spinner.join(10)
            assert queue.enqueue(tasks.add, 2, 3).result(timeout_s=10) == 5
    finally:
        r.config_set("busy-reply-threshold", old)
        busy.close()


def _noting_errors(fn: Callable[..., object], hit: threading.Event,
                   text: str = "BUSY") -> Callable[..., object]:
    def call(*args: object) -> object:
        try:
            return fn(*args)
        except Exception as exc:
            if text in str(exc):
                hit.set()
            raise
    return call


def _spin(client: redis.Redis) -> None:
    with contextlib.suppress(redis.ResponseError):
        client.eval("while true do end", 0)


def _kill_script(r: redis.Redis) -> None:
    while True:
        try:
            r.script_kill()
            break
        except redis.ResponseError as exc:  # NOTBUSY: the script has not started yet
            if "NOTBUSY" not in str(exc):
                raise
    while True:  # the script stops at its next check; until then the answer is BUSY
        try:
            r.ping()
            return
        except redis.ResponseError as exc:
            if "BUSY" not in str(exc):
                raise


def test_worker_outlives_a_key_of_the_wrong_type(settings: Settings, queue: Queue,
                                                 r: redis.Redis) -> None:
    # A jobq key overwritten with another type makes Redis refuse the worker's commands
    # (WRONGTYPE) until an operator fixes it: logged and waited out, never fatal.
    from jobq_core.keys import Keyspace
    marker = Keyspace(settings.prefix).marker("default")
    first = queue.enqueue(tasks.add, 1, 1)
    r.set(marker, "not a zset")
    with worker_thread(settings) as w:
        hit = threading.Event()
        w.fetch.wait = _noting_errors(w.fetch.wait, hit, "WRONGTYPE")  # type: ignore[method-assign]
        assert first.result(timeout_s=10) == 2
        assert hit.wait(10), "the worker never met the broken key"
        r.delete(marker)
        assert queue.enqueue(tasks.add, 2, 3).result(timeout_s=20) == 5


@pytest.mark.parametrize("claim_on_wake", [False, True])
def test_after_a_partial_claim_the_worker_waits_for_the_marker(
        settings: Settings, monkeypatch: pytest.MonkeyPatch, claim_on_wake: bool) -> None:
    # A claim that got fewer jobs than it asked for saw the queues empty: the worker waits
    # for an enqueue (the marker) instead of claiming again at once, which would find
    # nothing and take CPU from the job it just started (it shows in idle latency).
    from jobq_core.worker.fetch import Fetcher, Submit
    got: list[tuple[str, int]] = []
    claim, wait = Fetcher.claim, Fetcher.wait

    def spy_claim(self: Fetcher, count: int, submit: Submit | None = None) -> list[Claimed]:
        jobs = claim(self, count, submit)
        got.append(("claim", len(jobs)))
        return jobs

    def spy_wait(self: Fetcher, count: int = 0) -> list[Claimed]:
        jobs = wait(self, count)
        got.append(("wait", len(jobs)))
        return jobs

    monkeypatch.setattr(Fetcher, "claim", spy_claim)
    monkeypatch.setattr(Fetcher, "wait", spy_wait)
    # No periodic wake-up during the test (a waiting claim times out after lease_s / 6).
    slow = settings.replace(block_s=30.0, lease_s=300.0, heartbeat_s=5.0,
                            claim_on_wake=claim_on_wake)
    queue = Queue("default", settings=slow)
    with worker_thread(slow, prefetch=8) as w:
        # Enqueue only once the first claim found nothing and the worker blocks on the marker:
        # enqueued earlier, that claim may take the job and the sequence below differs.
        assert w.blocked.wait(10), "the worker never blocked on the marker"
        assert queue.enqueue(tasks.add, 2, 3).result(timeout_s=10) == 5
        # Start: a claim finds nothing; the wait wakes for the job, which is claimed (in the
        # wait's own round trip with claim_on_wake); then the worker waits again (the
        # wait in progress is not in `got` yet): no claim in between.
        if claim_on_wake:
            assert got == [("claim", 0), ("wait", 1)]
        else:
            assert got == [("claim", 0), ("wait", 0), ("claim", 1)]


@pytest.mark.parametrize(("lease_s", "freeze_s", "refused"), [
    # The claim's pick-up lease is a third of the lease (Settings.pickup_s); a reply read
    # after two thirds of it is late.
    (9.0, 2.4, False),  # late (> 2 s), pick-up lease (3 s) still held: handed back, claimed again
    (3.0, 4.5, True),  # pick-up lease (1 s) expired and reaped meanwhile: hand-back refused
])
def test_a_claim_reply_that_arrives_late_is_handed_back_not_started(
        settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture, lease_s: float, freeze_s: float,
        refused: bool) -> None:
    # An idle worker's claim runs in Redis the moment its wait ends; if the process was
    # stopped then (SIGSTOP, a long GC pause, a stalled socket) the reply is read late and
    # its lease may have expired and been reaped meanwhile. Such jobs are handed back.
    from jobq_core.worker.fetch import Fetcher
    fast = settings.replace(lease_s=lease_s, heartbeat_s=1.0, claim_on_wake=True)
    wait = Fetcher.wait
    froze = threading.Event()

    def frozen_once(self: Fetcher, count: int = 0) -> list[Claimed]:
        jobs = wait(self, count)
        if jobs and not froze.is_set():
            froze.set()
            time.sleep(freeze_s)  # the fault: this thread did not run (too long)
        return jobs

    monkeypatch.setattr(Fetcher, "wait", frozen_once)
    out = tmp_path / "runs"
    queue = Queue("default", settings=fast)
    with worker_thread(fast) as w, caplog.at_level("WARNING", logger="jobq.worker"):
        # Enqueued before the first claim, that claim (not the wait) would take the job.
        assert w.blocked.wait(10), "the worker never blocked on the marker"
        job = queue.enqueue(tasks.append_line, str(out), "ran")
        job.result(timeout_s=20)
    assert froze.is_set()
    assert out.read_text() == "ran\n"  # once: the late copy never started
    fields = job.refresh().fields
    assert fields["deliveries"] == "2"
    assert "back unstarted" in caplog.text
    # Reaped meanwhile: its lease was lost once, and the hand-back was refused.
    assert ("could not hand back" in caplog.text) is refused
    assert fields.get("lost") == ("1" if refused else None)


def test_a_pickup_lease_lost_before_the_renewal_stops_the_job_and_says_how_late(
        settings: Settings, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    # The wait's claim leased the job; before the worker renewed it, the lease became
    # another's (reaped and claimed again). The job is stopped, and the warning says when
    # the renewal went out against the pick-up lease, which tells a slow renewal from a
    # lease that was never there to renew (a failover between the claim and the renewal).
    from jobq_core.worker.fetch import Fetcher
    s = settings.replace(lease_s=3.0, heartbeat_s=1.0, claim_on_wake=True)
    wait = Fetcher.wait
    r = redis.Redis.from_url(s.redis_url)
    taken = threading.Event()

    def taken_meanwhile(self: Fetcher, count: int = 0) -> list[Claimed]:
        jobs = wait(self, count)
        if jobs and not taken.is_set():
            taken.set()
            r.hset(Keyspace(s.prefix).job(jobs[0].queue, jobs[0].id), "lease", "another")
        return jobs

    monkeypatch.setattr(Fetcher, "wait", taken_meanwhile)
    queue = Queue("default", settings=s)
    with worker_thread(s) as w, caplog.at_level("WARNING", logger="jobq.worker"):
        assert w.blocked.wait(10), "the worker never blocked on the marker"
        queue.enqueue(tasks.sleep_for, 0.5)
        assert taken.wait(10)
        deadline = time.monotonic() + 10
        while "was lost before" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.02)
    line = next(m for m in caplog.messages if "was lost before" in m)
    assert "renewal sent" in line and "after the wait began" in line, line
    assert "pick-up lease 1 s" in line, line


def test_a_worker_frozen_while_idle_holds_a_claim_for_the_pickup_lease_only(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    # Claim on wake (the default): a worker that cannot read its wait's reply (frozen,
    # stalled) leased that claim's jobs for Settings.pickup_s only, so another worker runs
    # them a pick-up lease (plus a reaper round) later, not a whole lease later.
    from jobq_core.worker.fetch import Fetcher
    s = settings.replace(lease_s=15.0, heartbeat_s=1.0, claim_on_wake=True)
    assert s.pickup_s == 3.0
    wait = Fetcher.wait
    froze, thaw = threading.Event(), threading.Event()

    def frozen(self: Fetcher, count: int = 0) -> list[Claimed]:
        jobs = wait(self, count)
        if jobs and self.worker_id == "A" and not froze.is_set():
            froze.set()
            thaw.wait(30)  # the fault: A reads its reply only after the test is over
        return jobs

    monkeypatch.setattr(Fetcher, "wait", frozen)
    queue = Queue("default", settings=s)
    with worker_thread(s, name="A") as a:
        assert a.blocked.wait(10), "A never blocked on the marker"
        job = queue.enqueue(tasks.add, 2, 3)
        assert froze.wait(10), "A's wait never got the job"
        frozen_at = time.monotonic()
        with worker_thread(s, name="B"):
            assert job.result(timeout_s=14) == 5
            ran_after = time.monotonic() - frozen_at
        thaw.set()
    # Pick-up lease (3 s) + a reaper round (1 s) + slack, well short of the 15 s lease.
    assert ran_after < 8.0, ran_after
    assert job.refresh().fields["worker"] == "B"


@pytest.mark.parametrize("pool", ["process", "thread"])
def test_the_pickup_renewal_waits_for_the_job_to_be_on_its_way(
        settings: Settings, monkeypatch: pytest.MonkeyPatch, pool: str) -> None:
    # An idle worker's wake-up claim: the loop renews the pick-up lease and waits again only
    # once the job has reached its idle slot (sent to the child, in the process pool). Done
    # at once, that work competed with the hand-off for the GIL and a core and delayed the
    # job's start (idle latency).
    from multiprocessing.connection import Connection

    from jobq_core.scripts import Scripts
    from jobq_core.worker.pool import Pool
    events: list[str] = []
    send, take, extend = Connection._send_bytes, Pool.next, Scripts.extend  # type: ignore[attr-defined]

    def spy_send(self: Connection, buf: object) -> None:  # a process slot sends its child a job
        events.append("on its way")
        send(self, buf)

    def spy_take(self: Pool, *args: object, **kwargs: object) -> Claimed | None:
        job = take(self, *args, **kwargs)  # type: ignore[arg-type]
        if job is not None and pool == "thread":  # a thread slot runs the job it took
            events.append("on its way")
        return job

    def spy_extend(self: Scripts, *args: object, **kwargs: object) -> list[str]:
        events.append("renewed")
        return extend(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Connection, "_send_bytes", spy_send)
    monkeypatch.setattr(Pool, "next", spy_take)
    monkeypatch.setattr(Scripts, "extend", spy_extend)
    # No heartbeat renewal during the test; the claim comes from the wait (claim on wake).
    s = settings.replace(heartbeat_s=30.0, lease_s=300.0, claim_on_wake=True)
    queue = Queue("default", settings=s)
    with worker_thread(s, pool=pool, concurrency=2) as w:
        # The loop's own wait and hand-off (as while another slot runs a job): a fully idle
        # process pool's child waits and begins the job itself (test_child_wait.py).
        w.child_wait.enabled = False
        # Both slots ready (a process slot's child started) and the loop in its wait.
        deadline = time.monotonic() + 30
        while not (all(slot.idle for slot in w.pool.slots) and w.blocked.is_set()
                   and not w.child_wait.delegated):
            assert time.monotonic() < deadline, "the worker never became idle"
            w.stopping.wait(0.01)
        events.clear()
        assert queue.enqueue(tasks.add, 2, 3).result(timeout_s=30) == 5
    assert events[:2] == ["on its way", "renewed"], events


def test_the_registry_lists_the_jobs_a_worker_runs_not_those_it_holds_waiting(
        settings: Settings, queue: Queue, r: redis.Redis) -> None:
    """The worker's 'current' field (the dashboard's and `jobq info`'s current jobs) listed
    every held job, prefetched ones too: up to 512 with auto prefetch (de3a449), shown as
    running on the workers page and written at every beat."""
    GATE.clear()
    STARTED.clear()
    running = queue.enqueue(hold)
    for i in range(3):
        queue.enqueue(tasks.add, i, 1)
    try:
        with worker_thread(settings, concurrency=1, prefetch=3) as w:
            assert STARTED.wait(30)
            deadline = time.monotonic() + 30
            while w.pool.busy() < 4 and time.monotonic() < deadline:
                time.sleep(0.01)  # the three others are claimed behind it
            assert w.pool.busy() == 4
            w.heartbeat.register()
            fields = r.hgetall(Keyspace(settings.prefix).worker(w.id))
            assert fields["current"] == f"default/{running.id}"
            assert fields["state"] == "busy"
            GATE.set()  # before the worker stops: it would wait for the job
    finally:
        GATE.set()


def test_the_registry_lists_a_running_job_of_any_stored_id(
        settings: Settings, queue: Queue, r: redis.Redis) -> None:
    """'current' joined 'queue/id' with ',': a job another client stored under an id holding
    ',' read back as two jobs (two wrong links on the workers page)."""
    odd = "a,b%2C"
    keys = Keyspace(settings.prefix)
    GATE.clear()
    STARTED.clear()
    made = queue.enqueue(hold).id
    r.rename(keys.job("default", made), keys.job("default", odd))
    score = r.zscore(keys.pending("default"), made)
    assert score is not None
    r.zrem(keys.pending("default"), made)
    r.zadd(keys.pending("default"), {odd: score})
    try:
        with worker_thread(settings, concurrency=1, prefetch=0) as w:
            assert STARTED.wait(30)
            w.heartbeat.register()
            info = WorkerInfo(w.id, True, r.hgetall(keys.worker(w.id)))
            assert info.current == [f"default/{odd}"]
            GATE.set()
    finally:
        GATE.set()
