"""Producer API: enqueue by name or callable, options, validation before Redis, batches."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from redis.cluster import RedisCluster

from jobq_core import (
    ArgumentError,
    ConfigError,
    JobqError,
    PayloadError,
    Queue,
    QueueFull,
    Settings,
    UnknownTask,
    task,
)
from jobq_core.keys import Keyspace
from tests import tasks

pytestmark = pytest.mark.cluster  # also on the Redis Cluster (tests/conftest.py)


def test_enqueue_by_name_and_by_callable_store_the_same_task(queue: Queue) -> None:
    by_name = queue.enqueue("tests.tasks.add", 1, 2)
    by_callable = queue.enqueue(tasks.add, 1, 2)
    assert queue.job(by_name.id).task == queue.job(by_callable.id).task == "tests.tasks.add"
    assert queue.job(by_name.id).args == [1, 2]
    assert by_name.status == "pending"


def test_unregistered_callable_is_refused(queue: Queue) -> None:
    def not_a_task() -> None: ...

    with pytest.raises(UnknownTask, match="not a registered task"):
        queue.enqueue(not_a_task)


@pytest.mark.parametrize("bad", [object(), {1, 2}, b"bytes", float("nan")])
def test_non_json_args_fail_before_redis_is_touched(bad: object) -> None:
    # The URL points nowhere: if enqueue reached Redis we would see RedisUnavailable instead.
    q = Queue("default", settings=Settings(redis_url="redis://127.0.0.1:1/0"))
    with pytest.raises(PayloadError, match="JSON"):
        q.enqueue(tasks.echo, bad)
    with pytest.raises(TypeError):  # PayloadError is a TypeError too
        q.enqueue(tasks.echo, x=bad)


def test_payload_cap(settings: Settings) -> None:
    q = Queue("default", settings=settings.replace(max_payload_bytes=1000))
    q.enqueue(tasks.echo, "x" * 900)
    with pytest.raises(PayloadError, match="above the cap of 1000 bytes"):
        q.enqueue(tasks.echo, "x" * 1001)
    # meta has the same cap (it was stored whatever its size: first-day review, 2026-12-06)
    q.enqueue_call(tasks.echo, meta={"note": "x" * 900})
    with pytest.raises(PayloadError, match="meta of 1011 bytes is above the cap of 1000"):
        q.enqueue_call(tasks.echo, meta={"note": "x" * 1000})
    assert q.count("pending") == 2


def test_default_cap_is_one_mib(queue: Queue) -> None:
    queue.enqueue(tasks.echo, "x" * (1024 * 1024 - 10))
    with pytest.raises(PayloadError):
        queue.enqueue(tasks.echo, "x" * (1024 * 1024 + 1))


def test_a_call_without_positional_args_stores_no_args_field(queue: Queue, r: redis.Redis,
                                                             settings: Settings) -> None:
    # 16 bytes less per pending job; readers and the worker take a missing field as [].
    job = queue.enqueue(tasks.echo, word="hi")
    fields = r.hgetall(Keyspace(queue.settings.prefix).job("default", job.id))
    assert "args" not in fields and fields["kwargs"] == '{"word":"hi"}'
    assert queue.job(job.id).args == []
    from tests.helpers import drain
    assert drain(settings) == 1
    assert job.result(timeout_s=5) == {"args": [], "kwargs": {"word": "hi"}}


def test_enqueue_call_options_are_stored(queue: Queue, r: redis.Redis) -> None:
    job = queue.enqueue_call(tasks.add, args=(1, 2), kwargs={}, priority=5, timeout_s=30,
                             ttl_s=600, result_ttl_s=3600, max_retries=7, job_id="my-id-1")
    assert job.id == "my-id-1"
    fields = r.hgetall(Keyspace(queue.settings.prefix).job("default", "my-id-1"))
    assert fields["priority"] == "5"
    assert fields["timeout_s"] == "30.0"
    assert fields["max_retries"] == "7"
    assert fields["result_ttl_s"] == "3600"
    assert int(fields["expires_ms"]) - int(fields["enqueued_ms"]) == 600_000


def test_existing_job_id_returns_the_existing_job(queue: Queue) -> None:
    first = queue.enqueue_call(tasks.add, args=(1, 2), job_id="same")
    second = queue.enqueue_call(tasks.add, args=(5, 5), job_id="same")
    assert second.id == first.id and second.args == [1, 2]
    assert queue.count("pending") == 1


@pytest.mark.parametrize("opts", [{"priority": 101}, {"priority": "high"}, {"timeout_s": -1},
                                  {"job_id": "bad id!"}, {"delay_s": float("inf")},
                                  {"max_retries": -2}])
def test_bad_options_are_clear_errors(queue: Queue, opts: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        queue.enqueue_call(tasks.add, args=(1, 2), **opts)  # type: ignore[arg-type]
    assert queue.count("pending") == 0


def test_enqueue_many_is_one_round_trip_per_batch(queue: Queue, r: redis.Redis) -> None:
    queue.enqueue(tasks.add, 0, 0)  # registers the queue and loads the script first
    before = _calls(r, "evalsha")
    jobs = queue.enqueue_many([(tasks.add, (i, i)) for i in range(500)]
                              + [{"task": "tests.tasks.add", "args": [1, 1], "priority": 3}])
    assert _calls(r, "evalsha") - before == 1
    assert len(jobs) == 501 and len({j.id for j in jobs}) == 501
    assert queue.count("pending") == 502


def test_enqueue_many_validates_everything_first(queue: Queue) -> None:
    with pytest.raises(PayloadError):
        queue.enqueue_many([(tasks.add, (1, 2)), (tasks.echo, (object(),))])
    assert queue.count("pending") == 0


def test_max_length_gives_backpressure(queue: Queue) -> None:
    queue.set_max_length(2)
    queue.enqueue(tasks.add, 1, 1)
    queue.enqueue(tasks.add, 1, 1)
    with pytest.raises(QueueFull, match="max_length"):
        queue.enqueue(tasks.add, 1, 1)
    assert queue.count("pending") == 2
    queue.set_max_length(None)
    queue.enqueue(tasks.add, 1, 1)


def test_task_enqueue_uses_task_defaults(settings: Settings, monkeypatch: pytest.MonkeyPatch,
                                         r: redis.Redis) -> None:
    monkeypatch.setenv("JOBQ_REDIS_URL", settings.redis_url)
    monkeypatch.setenv("JOBQ_PREFIX", settings.prefix)

    @task(queue="mail", max_retries=9, priority=-3)
    def send(to: str) -> str:
        return to

    job = send.enqueue("a@example.com")
    assert job.queue.name == "mail"
    fields = r.hgetall(Keyspace(settings.prefix).job("mail", job.id))
    assert fields["max_retries"] == "9" and fields["priority"] == "-3"
    assert send("direct") == "direct"  # still callable as a function


def test_bad_queue_name(settings: Settings) -> None:
    with pytest.raises(ConfigError, match="queue name"):
        Queue("no spaces{}", settings=settings)


def test_redis_down_is_a_clear_error() -> None:
    from jobq_core import RedisUnavailable

    q = Queue("default", settings=Settings(redis_url="redis://127.0.0.1:1/0",
                                           connect_timeout_s=0.5))
    with pytest.raises(RedisUnavailable, match="cannot reach Redis"):
        q.enqueue(tasks.add, 1, 2)


def _calls(r: redis.Redis, command: str) -> int:
    """Calls of `command` the server (every node of a cluster) has served."""
    if isinstance(r, RedisCluster):
        per_node: Any = r.info("commandstats", target_nodes=RedisCluster.ALL_NODES)
        return sum(int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))
                   for stats in per_node.values())
    stats = r.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


@pytest.mark.parametrize("call", [
    {"task": tasks.add, "args": (1, 2), "prioritty": 5},  # a misspelt option
    {"task": tasks.add, "args": (1, 2), "meta": "not a dict"},
    {"task": tasks.add, "args": (1, 2), "meta": [1, 2]},
])
def test_enqueue_many_bad_call_is_a_clear_error(queue: Queue, call: dict[str, object]) -> None:
    # e.g. one line of `jobq enqueue --file`: a JobqError becomes one line and exit 1.
    with pytest.raises(ConfigError):
        queue.enqueue_many([call])
    assert queue.count("pending") == 0


def test_enqueue_many_gives_each_call_its_tasks_defaults_and_keeps_fifo(
        queue: Queue, r: redis.Redis, settings: Settings) -> None:
    # Plain (task, args) calls share their task's resolved defaults (computed once per
    # batch); ids, args and the pending order are still per call, FIFO across batches.
    first = queue.enqueue(tasks.add, 0, 0)
    batch = queue.enqueue_many([(tasks.boom, ("a",)), (tasks.add, (1, 1)), ("tests.tasks.boom",
                                                                              ("b",))])
    last = queue.enqueue(tasks.add, 9, 9)
    keys = Keyspace(settings.prefix)
    stored = [r.hgetall(keys.job("default", j.id)) for j in batch]
    assert len({j.id for j in batch}) == 3
    assert [f.get("args") for f in stored] == ['["a"]', "[1,1]", '["b"]']
    assert [f.get("max_retries") for f in stored] == ["2", None, "2"]
    order = r.zrange(keys.pending("default"), 0, -1)
    assert order == [first.id, *(j.id for j in batch), last.id]


@pytest.mark.single_only("registers a task in this process: a second run finds it registered")
def test_a_task_registered_after_enqueues_by_name_gets_its_defaults(queue: Queue) -> None:
    # enqueue() remembers a registered task's defaults per Queue; a name not registered yet
    # must not be remembered without them.
    name = "tests.enqueue.late_registered"
    before = queue.enqueue(name, 1)
    assert "max_retries" not in before.fields and queue.job(before.id) is not None

    @task(name=name, max_retries=4)
    def late(x: int) -> int:
        return x

    after = queue.enqueue(name, 2)
    again = queue.enqueue(late, 3)
    stored = [queue.job(j.id) for j in (before, after, again)]
    assert [j.fields.get("max_retries") for j in stored if j] == [None, "4", "4"]
    assert [j.args for j in stored if j] == [[1], [2], [3]]


def test_a_batch_stores_each_job_as_a_single_enqueue_would(queue: Queue, r: redis.Redis,
                                                           settings: Settings) -> None:
    # A batch sends calls that differ only in id and args in a short form; every job must
    # still be stored exactly as the same call enqueued on its own. (echo takes any
    # arguments: calls of add without its two would be refused at enqueue.)
    parent = queue.enqueue(tasks.add, 0, 0)
    calls: list[dict[str, Any]] = [
        {"task": "tests.tasks.echo", "args": [1, 2]},
        {"task": "tests.tasks.echo", "args": [3, 4]},
        {"task": "tests.tasks.echo"},
        {"task": "tests.tasks.echo", "args": [5, 6], "priority": 7},
        {"task": "tests.tasks.echo", "args": [5, 6], "priority": 7},
        {"task": "tests.tasks.echo", "args": [1], "kwargs": {"k": "v"}},
        {"task": "tests.tasks.echo", "args": [2], "kwargs": {"k": "w"}},
        {"task": "tests.tasks.echo", "args": [3], "kwargs": {"k": "w"}, "ttl_s": 60},
        {"task": "tests.tasks.echo", "args": [3], "kwargs": {"k": "w"}, "unique": True},
        {"task": "tests.tasks.echo", "args": [4], "kwargs": {"k": "w"}, "unique": True},
        {"task": "tests.tasks.boom", "args": ["x"], "delay_s": 30},
        {"task": "tests.tasks.boom", "args": ["y"], "delay_s": 30},
        {"task": "tests.tasks.echo", "args": [7, 8]},
        {"task": "tests.tasks.echo", "args": [1, 1], "meta": {"who": "me"}},
        {"task": "tests.tasks.echo", "args": [2, 2], "meta": {"who": "me"}},
        {"task": "tests.tasks.echo", "args": [], "limit_key": "lk"},
        {"task": "tests.tasks.echo", "args": [3, 3], "limit_key": "lk"},
        {"task": "tests.tasks.echo", "args": [4, 4], "depends_on": parent},
        {"task": "tests.tasks.echo", "args": [5, 5], "depends_on": parent},
        {"task": "tests.tasks.echo", "args": []},
    ]
    keys = Keyspace(settings.prefix)
    volatile = {"enqueued_ms", "expires_ms"}

    def stored(jobs: list[Any]) -> list[dict[str, str]]:
        return [{k: v for k, v in r.hgetall(keys.job("default", j.id)).items()
                 if k not in volatile} for j in jobs]

    batch = queue.enqueue_many(calls)
    from_batch = stored(batch)
    r.delete(*(keys.job("default", j.id) for j in batch))
    r.delete(keys.pending("default"), keys.scheduled("default"))
    # (their unique locks stay, but a lock whose job is gone holds nothing)
    alone = [queue.enqueue_call(c["task"], args=c.get("args", ()), kwargs=c.get("kwargs"),
                                **{k: v for k, v in c.items()
                                   if k not in ("task", "args", "kwargs")})
             for c in calls]
    assert from_batch == stored(alone)
    assert [j.status for j in batch] == (["pending"] * 10 + ["scheduled"] * 2 + ["pending"] * 5
                                         + ["scheduled"] * 2 + ["pending"])
    assert [f.get("args") for f in from_batch][:3] == ["[1,2]", "[3,4]", None]
    assert [f.get("args") for f in from_batch][-5:] == [None, "[3,3]", "[4,4]", "[5,5]", None]
    # (the comparison above is against the same script: check a few fields by name too)
    assert from_batch[0]["task"] == "tests.tasks.echo" and from_batch[15]["limit_key"] == "lk"


@pytest.mark.parametrize(("args", "kwargs", "mismatch"), [
    ((1,), {}, "missing a required argument: 'b'"),
    ((1, 2, 3), {}, "too many positional arguments"),
    ((1,), {"b": 2, "c": 3}, "unexpected keyword argument 'c'"),
])
def test_arguments_that_do_not_fit_a_registered_task_are_refused(
        queue: Queue, args: tuple[object, ...], kwargs: dict[str, object], mismatch: str) -> None:
    # The producer has the task registered: a call it cannot take is refused at enqueue,
    # not stored to fail max_retries+1 times in a worker.
    for call in (lambda: queue.enqueue(tasks.add, *args, **kwargs),
                 lambda: queue.enqueue_call("tests.tasks.add", args=args, kwargs=kwargs),
                 lambda: queue.enqueue_many([(tasks.add, args, kwargs)])):
        with pytest.raises(ArgumentError, match=mismatch) as info:
            call()
        assert "tests.tasks.add" in str(info.value) and "(it is add(a, b))" in str(info.value)
        assert isinstance(info.value, JobqError) and isinstance(info.value, TypeError)
    assert queue.count("pending") == 0
    # Calls that fit, including defaults, *args and **kwargs, go through.
    queue.enqueue(tasks.add, 1, b=2)
    queue.enqueue(tasks.echo, 1, 2, x=3)
    queue.enqueue(tasks.boom)
    queue.enqueue("tests.tasks.not_registered_here", 1, 2, 3)  # nothing to check against
    assert queue.count("pending") == 4
