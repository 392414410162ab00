"""A claim or settle whose reply is lost after Redis ran it is sent again (by the client's
retry, or by the worker after an error): the second send answers as the first and changes
nothing (review finding 3). On one Redis and on the cluster."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis
from redis.connection import AbstractConnection

from jobq_core import Queue, Settings
from jobq_core.connection import connect
from jobq_core.errors import RedisUnavailable
from jobq_core.job import Claimed
from jobq_core.keys import Keyspace
from jobq_core.runner import FAIL, OK, RETRY, Outcome
from jobq_core.scripts import Scripts
from jobq_core.worker.fetch import Fetcher
from jobq_core.worker.recorder import Recorder
from tests import tasks

pytestmark = pytest.mark.cluster


@contextmanager
def losing(reply_matches: Callable[[Any], bool], times: int = 1) -> Iterator[list[Any]]:
    """Replies that match are read, then lost: the connection drops as a link cut just
    after the server answered does (`times` such replies; -1: all). Yields what was lost."""
    real = AbstractConnection.read_response
    lost: list[Any] = []
    me = threading.current_thread()

    def read_response(self: Any, *args: Any, **kwargs: Any) -> Any:
        reply = real(self, *args, **kwargs)
        if threading.current_thread() is me and reply_matches(reply) and \
                (times < 0 or len(lost) < times):
            lost.append(reply)
            self.disconnect()
            raise redis.ConnectionError("injected: the reply was lost")
        return reply

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(AbstractConnection, "read_response", read_response)
        yield lost


def a_claim(reply: Any) -> bool:
    return isinstance(reply, list) and len(reply) == 5 and isinstance(reply[0], list) \
        and len(reply[0]) > 0


def codes(reply: Any) -> bool:
    return isinstance(reply, list) and len(reply) == 1 and isinstance(reply[0], int)


@pytest.fixture
def scripts(settings: Settings) -> Scripts:
    return Scripts(connect(settings), settings)


@pytest.fixture
def fetch(settings: Settings, scripts: Scripts) -> Iterator[Fetcher]:
    f = Fetcher(settings, ["default"], "w1", scripts, connect(settings, blocking=True))
    yield f
    f.close()


def recorder(settings: Settings, scripts: Scripts) -> Recorder:
    return Recorder(settings, scripts, "w1", threading.Event(), lambda job: None)  # type: ignore[arg-type,return-value]


def enqueue(settings: Settings, n: int) -> list[str]:
    q = Queue("default", settings=settings)
    return [q.enqueue(tasks.add, i, 1).id for i in range(n)]


def claim_again(fetch: Fetcher, count: int) -> list[Claimed]:
    """As the worker claims: on one Redis a lost reply raises and the next round claims
    again; a cluster client retries it itself."""
    try:
        return fetch.claim(count)
    except RedisUnavailable:
        return fetch.claim(count)


def test_a_re_sent_claim_answers_with_the_batch_it_leased(settings: Settings, fetch: Fetcher,
                                                          r: redis.Redis) -> None:
    """A claim re-sent after its reply was lost leased a second batch before; the first
    stayed processing, leased to nobody, until reaped (a lost lease: poison after three)."""
    first, _ = enqueue(settings, 2)
    with losing(a_claim) as lost:
        jobs = claim_again(fetch, 1)
    assert lost, "no reply was lost"
    assert [j.id for j in jobs] == [first]
    assert r.zrange(Keyspace(settings.prefix).processing("default"), 0, -1) == [first]


def test_a_claim_that_raised_is_sent_again_by_the_next_claim(settings: Settings,
                                                              fetch: Fetcher,
                                                              r: redis.Redis) -> None:
    """Every reply lost until the call raises (the cluster client's retries too): the
    worker's next claim returns the jobs the failed one leased."""
    first, _ = enqueue(settings, 2)
    with losing(a_claim, times=-1), pytest.raises(RedisUnavailable):
        fetch.claim(1)
    assert [j.id for j in fetch.claim(1)] == [first]
    assert r.zrange(Keyspace(settings.prefix).processing("default"), 0, -1) == [first]


def test_a_re_sent_claims_jobs_keep_the_start_of_the_send_that_leased_them(
        settings: Settings, fetch: Fetcher, r: redis.Redis) -> None:
    """The client set a replayed job's started_ms to the re-send's time (a failure's attempt
    record then showed the attempt starting later than it did)."""
    [first] = enqueue(settings, 1)
    with losing(a_claim, times=-1), pytest.raises(RedisUnavailable):
        fetch.claim(1)
    time.sleep(0.01)  # the re-send runs a few ms after the first send
    [job] = fetch.claim(1)
    assert job.fields["started_ms"] == r.hget(Keyspace(settings.prefix).job("default", first),
                                              "started_ms")


@pytest.mark.parametrize("result_ttl", [60, 0])
def test_a_re_sent_completion_answers_completed(settings: Settings, scripts: Scripts,
                                                r: redis.Redis, result_ttl: int) -> None:
    """It answered "lease not held" before: the worker dropped the result as stale and
    skipped the success callbacks and the release of dependents. Also for a job deleted
    as it completed (retention 0)."""
    enqueue(settings, 1)
    (job,) = scripts.claim(["default"], 1, "w1").jobs
    job = Claimed(job.id, job.queue, job.token, {**job.fields, "result_ttl_s": str(result_ttl)})
    with losing(codes) as lost:
        [(_, state)] = recorder(settings, scripts).record_many([(job, Outcome(OK, "2"))])
    assert lost == [[1]]
    assert state == "completed"
    assert r.hget(Keyspace(settings.prefix).stats("default"), "completed") == "1"


def test_a_completion_under_another_lease_is_still_refused(settings: Settings,
                                                           scripts: Scripts) -> None:
    enqueue(settings, 1)
    (job,) = scripts.claim(["default"], 1, "w1").jobs
    assert scripts.complete_many("default", [(job, "2", 60, 5, "")]) == [1]
    other = Claimed(job.id, job.queue, "w2/1", job.fields)
    assert scripts.complete_many("default", [(other, "2", 60, 5, "")]) == [-2]


@pytest.mark.parametrize(("outcome", "state"), [(Outcome(FAIL, error="e"), "failed"),
                                                (Outcome(RETRY, delay_s=60.0), "scheduled")])
def test_a_re_sent_failure_report_answers_as_the_first(settings: Settings, scripts: Scripts,
                                                       r: redis.Redis, outcome: Outcome,
                                                       state: str) -> None:
    """It raised LeaseLost before (the on_failure callback and the dependents skipped)."""
    (jid,) = enqueue(settings, 1)
    (job,) = scripts.claim(["default"], 1, "w1").jobs
    with losing(lambda reply: isinstance(reply, int) and reply > 0) as lost:
        [(_, got)] = recorder(settings, scripts).record_many([(job, outcome)])
    assert lost
    assert got == state
    k = Keyspace(settings.prefix)
    assert r.hget(k.job("default", jid), "retries") == ("1" if state == "scheduled" else None)
    assert r.hget(k.stats("default"), "failed") == ("1" if state == "failed" else None)


def lease_began_earlier(r: redis.Redis, settings: Settings, job_ids: list[str],
                        by_ms: int) -> None:
    """As if the lost claim had been sent `by_ms` earlier: its record's time and the
    started_ms of its jobs (what a re-send checks to answer with them) moved back."""
    k = Keyspace(settings.prefix)
    record = k.claim_record("default", "w1")
    head, rest = str(r.get(record)).split("\n", 1)
    at, tail = rest.split(" ", 1)
    r.set(record, f"{head}\n{int(at) - by_ms} {tail}", px=settings.lease_ms - by_ms)
    for job_id in job_ids:
        r.hset(k.job("default", job_id), "started_ms", str(int(at) - by_ms))


@pytest.mark.parametrize("age_s", [1.0, 3.5])
def test_a_re_sent_claim_times_its_jobs_from_the_first_send(
        settings: Settings, fetch: Fetcher, r: redis.Redis, age_s: float) -> None:
    """A claim whose reply was lost, re-sent `age_s` later (lease_s 4, the pool fences a
    job 3 s after its lease was last known renewed): its jobs were submitted as leased at
    the re-send, so one whose lease was about to run out started, and ran alongside the
    worker that reaped it. Now they are timed from the first send, and handed back
    unstarted when the next heartbeat could not renew them in time."""
    jobs = enqueue(settings, 2)
    with losing(a_claim, times=-1), pytest.raises(RedisUnavailable):
        fetch.claim(2)
    lease_began_earlier(r, settings, jobs, int(age_s * 1000))
    got: list[tuple[Claimed, float]] = []
    sent = time.monotonic()
    returned = fetch.claim(2, lambda job, leased_at: got.append((job, leased_at)))
    k = Keyspace(settings.prefix)
    if age_s < settings.fence_after_s - settings.heartbeat_s:
        assert sorted(j.id for j, _ in got) == sorted(jobs) == sorted(j.id for j in returned)
        assert all(leased_at <= sent - age_s for _, leased_at in got)
    else:
        assert got == [] and returned == []
        assert sorted(r.zrange(k.pending("default"), 0, -1)) == sorted(jobs)
        assert r.zcard(k.processing("default")) == 0


@pytest.mark.single_only("a claim on wake rides a blocking pop on one connection: one "
                         "Redis or a cluster node (tests/cluster/test_node_fetch_resend.py)")
def test_a_claim_on_wake_whose_reply_was_lost_is_handed_back_by_the_next_claim(
        settings: Settings, fetch: Fetcher, r: redis.Redis) -> None:
    """The claim behind the blocking pop went out under a new id each time: its jobs stayed
    processing, leased to nobody, until the pick-up lease ended and a reaper counted each
    as a lost lease (poison after three). Now the next claim re-sends it and hands them
    back (too little of the pick-up lease is left to start them on)."""
    fetch.claim(0)  # loads claim.lua: the wait's EVALSHA is not retried after NOSCRIPT
    jobs = enqueue(settings, 2)
    with losing(a_claim, times=-1), pytest.raises(RedisUnavailable):
        fetch.wait(2)
    got: list[Claimed] = []
    assert fetch.claim(2, lambda job, _: got.append(job)) == [] and got == []
    k = Keyspace(settings.prefix)
    assert sorted(r.zrange(k.pending("default"), 0, -1)) == sorted(jobs)
    assert r.zcard(k.processing("default")) == 0
    assert [r.hget(k.job("default", j), "lost") for j in jobs] == [None, None]
    assert sorted(j.id for j in fetch.claim(2)) == sorted(jobs)


def pending_under(settings: Settings, r: redis.Redis, job_id: str) -> None:
    """A pending job stored under `job_id` as another client may write it (jobq's enqueue
    refuses such ids; the dashboard requeues a dead one of any stored id)."""
    k = Keyspace(settings.prefix)
    made = Queue("default", settings=settings).enqueue(tasks.add, 1, 1).id
    r.rename(k.job("default", made), k.job("default", job_id))
    score = r.zscore(k.pending("default"), made)
    assert score is not None
    r.zrem(k.pending("default"), made)
    r.zadd(k.pending("default"), {job_id: score})


@pytest.mark.parametrize("ids", [["with space"], ["x 1 y", "y"], ["100%", "a%20b"]])
def test_a_re_sent_claim_answers_with_jobs_of_any_stored_id(
        settings: Settings, fetch: Fetcher, r: redis.Redis, ids: list[str]) -> None:
    """The claim record kept the ids space-separated, read back as non-space runs: a job
    whose id holds a space was not answered by the re-send (leased to nobody until reaped),
    and an id like "x 1 y" read as a second copy of job "y", which the worker was then
    handed twice (and could start twice at once)."""
    for job_id in ids:
        pending_under(settings, r, job_id)
    with losing(a_claim, times=-1), pytest.raises(RedisUnavailable):
        fetch.claim(len(ids))
    assert sorted(j.id for j in fetch.claim(len(ids))) == sorted(ids)


@pytest.mark.single_only("flushes the server's script cache")
def test_a_wait_that_met_a_lost_script_keeps_the_lost_claims_request(
        settings: Settings, fetch: Fetcher, r: redis.Redis) -> None:
    """A claim's reply lost, then the wait's claim (claim on wake) met NOSCRIPT (a restarted
    or failed-over server): nothing ran, yet the wait marked the request answered, so the
    next claim went out under a new id and the first claim's jobs stayed leased to nobody
    until reaped (a lost lease each)."""
    first, _ = enqueue(settings, 2)
    with losing(a_claim, times=-1), pytest.raises(RedisUnavailable):
        fetch.claim(1)
    r.script_flush()
    assert fetch.wait(1) == []  # the marker is set (a job is pending): no blocking
    assert [j.id for j in fetch.claim(2)] == [first]


def test_requested_gives_the_request_id_and_whether_it_is_new(fetch: Fetcher) -> None:
    """A claim on wake asks whether its request id is new (then the claim need not look for
    a claim it repeats): read after request() registered the id, new() said False for a new
    one. requested() answers both in one call."""
    rid, new = fetch.requested(0)
    assert new and fetch.request(0) == rid
    assert fetch.requested(0) == (rid, False)  # unanswered: the same id, sent again
    fetch.answered(0)
    again, new = fetch.requested(0)
    assert new and again != rid
