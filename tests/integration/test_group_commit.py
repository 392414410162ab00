"""Group commit: single enqueues from threads sharing a Queue share script calls."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, cast

import pytest
import redis

from jobq_core import Queue
from jobq_core.errors import QueueFull, RedisUnavailable
from jobq_core.groupcommit import GroupCommit, Pending
from jobq_core.job import Job, JobSpec
from jobq_core.keys import Keyspace
from tests import tasks

pytestmark = pytest.mark.cluster  # also on the Redis Cluster (tests/conftest.py)

N = 16


def until(cond: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.001)


class Calls:
    """Wraps the queue's enqueue script call: records each batch and the thread that sent
    it, holds the first call in flight until the other callers wait behind it, and fails
    the calls listed in `fail` (by number, from 1) as a dropped connection would."""

    def __init__(self, queue: Queue, waiting: int, fail: Sequence[int] = ()) -> None:
        self.queue = queue
        self.waiting = waiting
        self.fail = set(fail)
        self.sizes: list[int] = []
        self.threads: list[str] = []
        self._orig = queue.scripts.enqueue
        queue.scripts.enqueue = self  # type: ignore[method-assign]

    def __call__(self, name: str, specs: Sequence[JobSpec], via: Any = None) -> list[bool | str]:
        self.sizes.append(len(specs))
        self.threads.append(threading.current_thread().name)
        n = len(self.sizes)
        if n == 1 and self.waiting:
            until(lambda: len(self.queue._group._queued) == self.waiting,
                  "the other callers to queue up behind the write in flight")
        if n in self.fail:
            raise redis.ConnectionError("injected: connection dropped")
        return self._orig(name, specs, via)


def run_callers(queue: Queue, r: redis.Redis, calls: Calls) -> list[Any]:
    """N threads each enqueue one job (caller 0 first, alone); each returns its Job or its
    error, and checks on return that its job is stored."""
    keys = Keyspace(queue.settings.prefix)
    out: list[Any] = [None] * N

    def call(i: int) -> None:
        try:
            job: Job = queue.enqueue(tasks.add, i, i)
        except Exception as exc:
            out[i] = exc
            return
        out[i] = (job, r.exists(keys.job("default", job.id)) == 1)

    threads = [threading.Thread(target=call, args=(i,), name=f"caller-{i}") for i in range(N)]
    threads[0].start()
    until(lambda: len(calls.sizes) == 1, "the first write in flight")
    for t in threads[1:]:
        t.start()
    for t in threads:
        t.join(30)
    return out


def test_a_lone_caller_writes_at_once_itself(queue: Queue, r: redis.Redis) -> None:
    calls = Calls(queue, waiting=0)
    job = queue.enqueue(tasks.add, 1, 2)
    assert calls.sizes == [1] and calls.threads == [threading.current_thread().name]
    assert job.refresh().status == "pending"


def test_concurrent_callers_share_one_script_call(queue: Queue, r: redis.Redis) -> None:
    calls = Calls(queue, waiting=N - 1)
    out = run_callers(queue, r, calls)
    # The first wrote alone; the 15 that came while it was in flight, in one call.
    assert calls.sizes == [1, N - 1]
    assert all(isinstance(o, tuple) and o[1] for o in out), out  # stored when it returned
    assert len({o[0].id for o in out}) == N
    assert queue.count("pending") == N


def test_an_error_reaches_only_the_callers_of_its_batch(queue: Queue, r: redis.Redis) -> None:
    calls = Calls(queue, waiting=N - 1, fail=[2])  # the shared call fails, not the first
    out = run_callers(queue, r, calls)
    assert calls.sizes == [1, N - 1]
    assert isinstance(out[0], tuple) and out[0][1]
    assert all(isinstance(o, RedisUnavailable) for o in out[1:]), out
    assert queue.count("pending") == 1
    # The first call failing instead: only its caller sees it.
    queue2 = Queue("default", settings=queue.settings)
    calls2 = Calls(queue2, waiting=N - 1, fail=[1])
    out2 = run_callers(queue2, r, calls2)
    assert isinstance(out2[0], RedisUnavailable)
    assert all(isinstance(o, tuple) and o[1] for o in out2[1:]), out2
    assert queue.count("pending") == 1 + N - 1


def test_a_full_queue_refuses_exactly_the_jobs_that_do_not_fit(queue: Queue,
                                                                r: redis.Redis) -> None:
    queue.set_max_length(5)
    calls = Calls(queue, waiting=N - 1)
    out = run_callers(queue, r, calls)
    # The batch of 15 was refused as a whole (only 4 fit), then written one by one.
    assert calls.sizes[:2] == [1, N - 1] and calls.sizes[2:] == [1] * (N - 1)
    stored = [o for o in out if isinstance(o, tuple)]
    assert len(stored) == 5 and all(ok for _, ok in stored)
    assert sum(isinstance(o, QueueFull) for o in out) == N - 5
    assert queue.count("pending") == 5


@pytest.mark.parametrize("threads", [16])
def test_many_threads_lose_nothing(queue: Queue, threads: int) -> None:
    """No gate: threads enqueue 50 jobs each as fast as they can; every job is stored once."""
    ids: list[str] = []
    lock = threading.Lock()

    def producer(t: int) -> None:
        mine = [queue.enqueue(tasks.add, t, i).id for i in range(50)]
        with lock:
            ids.extend(mine)

    workers = [threading.Thread(target=producer, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert len(ids) == len(set(ids)) == threads * 50
    assert queue.count("pending") == threads * 50


class _InterruptedWake:
    """A caller's wake lock whose acquire is interrupted (as by Ctrl-C) at the next bytecode
    after it returned: the window in which a waiter has just been handed the writer's role."""

    def __init__(self, lock: threading.Lock) -> None:
        self._lock = lock

    def acquire(self, blocking: bool = True) -> bool:
        got = self._lock.acquire(blocking)
        if blocking:
            raise KeyboardInterrupt
        return got

    def release(self) -> None:
        self._lock.release()

    def locked(self) -> bool:
        return self._lock.locked()


def _caller(group: GroupCommit, out: dict[str, Any]) -> Callable[[str], None]:
    """A thread target: caller `name` writes one job through `group`; its Job id, or what
    it raised (an interrupt too), lands in out[name]."""

    def call(name: str) -> None:
        try:
            out[name] = group.write(tasks_spec())
        except BaseException as exc:
            out[name] = exc

    return call


def test_a_waiter_interrupted_as_it_is_handed_the_role_passes_it_on(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Caller b waits behind a's write; a hands b the writer's role and b is interrupted
    right as its wait returns. The role goes on: a later caller c still writes (it hung
    forever before: the busy spell never ended)."""
    first_in_flight, go_on = threading.Event(), threading.Event()

    def write(specs: Sequence[JobSpec]) -> list[Job]:
        if not first_in_flight.is_set():
            first_in_flight.set()
            go_on.wait(10)
        return [cast(Job, spec.id) for spec in specs]

    class InterruptedPending(Pending):
        def __init__(self, spec: JobSpec) -> None:
            super().__init__(spec)
            if threading.current_thread().name == "b":
                self.wake = _InterruptedWake(self.wake)  # type: ignore[assignment]

    monkeypatch.setattr("jobq_core.groupcommit.Pending", InterruptedPending)
    group = GroupCommit(write)
    out: dict[str, Any] = {}
    call = _caller(group, out)  # b's KeyboardInterrupt is kept in `out` for the assertion
    a = threading.Thread(target=call, args=("a",), name="a")
    a.start()
    first_in_flight.wait(10)
    b = threading.Thread(target=call, args=("b",), name="b")
    b.start()
    until(lambda: len(group._queued) == 1, "b to queue up behind a's write")
    go_on.set()
    a.join(10)
    b.join(10)
    assert isinstance(out["b"], KeyboardInterrupt)
    c = threading.Thread(target=call, args=("c",), name="c")
    c.start()
    c.join(10)
    assert not c.is_alive(), "c hangs: the writer's role stayed with the interrupted b"
    assert isinstance(out["c"], str) and group._writer is None and group._queued == []


def test_a_writer_interrupted_before_its_call_settles_its_batch(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An interrupt after the writer took its batch but before the call's outcome: every
    caller of the batch gets the error (none waits forever) and the role is free again."""
    group = GroupCommit(lambda specs: [cast(Job, s.id) for s in specs])

    def interrupted(batch: list[Pending]) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(group, "_commit", interrupted)
    group._writer = object()  # a write in flight: the caller below queues up behind it
    out: dict[str, BaseException] = {}

    def call() -> None:
        try:
            group.write(tasks_spec())
        except BaseException as exc:  # its KeyboardInterrupt, kept for the assertion
            out["error"] = exc

    caller = threading.Thread(target=call, name="caller")
    caller.start()
    until(lambda: len(group._queued) == 1, "the caller to queue up")
    other = Pending(tasks_spec())
    with group._lock:
        group._queued.append(other)  # queued behind it, so taken into its batch
        group._hand_on()  # the write in flight answered: the caller becomes the writer
    caller.join(10)
    assert isinstance(out.get("error"), KeyboardInterrupt)
    assert other.done and isinstance(other.error, KeyboardInterrupt)
    assert not other.wake.locked(), "its caller was woken"
    assert group._writer is None and group._queued == []


def tasks_spec() -> JobSpec:
    return Queue("default", url="redis://unused")._plain_spec(tasks.add, (1, 2), {}, {})


def test_the_kept_connection_survives_a_dropped_link_and_a_lost_script(
        queue: Queue, r: redis.Redis) -> None:
    queue.enqueue(tasks.add, 1, 1)
    r.client_kill_filter(_type="normal", skipme=True)  # every client but r: the kept one too
    queue.enqueue(tasks.add, 2, 2)
    r.script_flush()
    queue.enqueue(tasks.add, 3, 3)
    assert queue.count("pending") == 3


@pytest.mark.single_only("a cluster client keeps no connection (no wire.Pinned)")
def test_a_lost_reply_is_sent_again_and_writes_the_job_once(
        queue: Queue, r: redis.Redis) -> None:
    """The script ran but its reply was lost (the link dropped before it arrived): the kept
    connection is dropped and the call sent once more on a fresh one; the job is written
    once and enqueue() returns it (it raised RedisUnavailable before)."""
    queue.enqueue(tasks.add, 0, 0)  # the group now keeps a connection
    conn = queue._pinned._conn  # type: ignore[union-attr]
    real = conn.read_response
    lost: list[Any] = []

    def read_response(*args: Any, **kwargs: Any) -> Any:
        reply = real(*args, **kwargs)
        if not lost:
            lost.append(reply)
            raise redis.ConnectionError("injected: reply lost")
        return reply

    conn.read_response = read_response
    job = queue.enqueue(tasks.add, 1, 1)
    assert lost == [[1]], "the first send wrote the job"
    assert r.exists(Keyspace(queue.settings.prefix).job("default", job.id)) == 1
    assert queue.count("pending") == 2


def _libc_fork() -> int:
    """fork() straight from libc, as uWSGI forks its workers: Python's at-fork hooks do not
    run in the child. PyDLL keeps the GIL held across the call, so the child has it."""
    import ctypes

    return int(ctypes.PyDLL(None).fork())


@pytest.mark.parametrize("fork", ["os.fork", "libc fork"])
def test_a_forked_child_does_not_write_on_its_parents_connection(queue: Queue, fork: str) -> None:
    """Parent and child enqueue at the same time after a fork: each on its own connection
    (one shared socket would mix their replies up), also after a fork that runs no at-fork
    hooks."""
    queue.enqueue(tasks.add, 0, 0)  # the parent now keeps a connection
    read, write = os.pipe()
    pid = os.fork() if fork == "os.fork" else _libc_fork()
    if pid == 0:  # the child: exit status 0 only if all its jobs were stored
        code = 1
        try:
            ids = {queue.enqueue(tasks.add, 1, i).id for i in range(300)}
            os.write(write, _kept_socket(queue).encode())
            code = 0 if len(ids) == 300 else 1
        finally:
            os._exit(code)
    os.close(write)
    ids = {queue.enqueue(tasks.add, 2, i).id for i in range(300)}
    _, status = os.waitpid(pid, 0)
    with os.fdopen(read) as pipe:
        child_socket = pipe.read()
    assert os.waitstatus_to_exitcode(status) == 0
    assert len(ids) == 300
    assert queue.count("pending") == 601
    # Replies of one shape (each enqueue's) hide a shared socket from the counts above: the
    # child's kept connection must be a socket of its own.
    assert child_socket != _kept_socket(queue) or queue._pinned is None


def _kept_socket(queue: Queue) -> str:
    """The inode of the queue's kept connection's socket ('' when it keeps none): one
    socket shared by two processes has one inode."""
    pinned = queue._pinned
    conn = pinned._conn if pinned is not None else None
    sock = getattr(conn, "_sock", None)
    return "" if sock is None else str(os.fstat(sock.fileno()).st_ino)


@pytest.mark.single_only("looks into the shared client's one connection pool")
def test_a_shared_client_keeps_no_connection(settings: Any, r: redis.Redis) -> None:
    shared = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    q = Queue("default", settings=settings, redis=shared)
    q.enqueue(tasks.add, 1, 1)
    assert q._pinned is None
    assert len(shared.connection_pool._in_use_connections) == 0  # type: ignore[attr-defined]
    shared.close()


class _InterruptedExit:
    """The group's lock, whose `with` block is interrupted (as by Ctrl-C) at the next bytecode
    after it is left, once, in thread `name`: the window between taking the writer's role
    (or queueing up) and the code that gives it back."""

    def __init__(self, lock: threading.Lock, name: str) -> None:
        self._lock, self._name, self.fired = lock, name, False

    def __enter__(self) -> bool:
        return self._lock.__enter__()

    def __exit__(self, *exc: object) -> None:
        self._lock.__exit__(*exc)
        if not self.fired and threading.current_thread().name == self._name:
            self.fired = True
            raise KeyboardInterrupt


def test_a_lone_caller_interrupted_as_it_takes_the_role_passes_it_on() -> None:
    """Caller a finds no write in flight and is interrupted right after taking the writer's
    role, before its write. The role is free again: a later caller b writes (it hung forever
    before: the role stayed taken and b waited to be handed it)."""
    group = GroupCommit(lambda specs: [cast(Job, s.id) for s in specs])
    lock = _InterruptedExit(group._lock, "a")  # type: ignore[arg-type]
    group._lock = lock  # type: ignore[assignment]
    out: dict[str, Any] = {}
    call = _caller(group, out)  # a's KeyboardInterrupt is kept in `out` for the assertion
    for name in ("a", "b"):
        t = threading.Thread(target=call, args=(name,), name=name, daemon=True)
        t.start()
        t.join(5)
        assert not t.is_alive(), f"{name} hangs: the writer's role stayed with the interrupted a"
    assert lock.fired and isinstance(out["a"], KeyboardInterrupt)
    assert isinstance(out["b"], str) and group._writer is None and group._queued == []
