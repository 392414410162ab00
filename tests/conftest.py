"""Test fixtures: a private Redis server per session, a fresh key prefix per test.

A test or module marked `@pytest.mark.cluster` runs twice: on the single Redis server
([redis]) and on the session's Redis Cluster ([cluster]: 3 primaries + 3 replicas), through
the same `redis_url`, `settings`, `r` and `queue` fixtures. `@pytest.mark.single_only(reason)`
keeps one test of such a module on the single server (it relies on something a cluster does
not have, e.g. one server process to stop)."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator

import pytest
import redis
from redis.cluster import ClusterNode, RedisCluster

from jobq_core import Queue, Settings
from jobq_core.localcluster import LocalCluster
from jobq_core.server import LocalRedis, temp_dir


@pytest.fixture(scope="session")
def redis_server() -> Iterator[LocalRedis]:
    """A Redis server this session started on a unix socket in a temp dir (never 6379)."""
    server = LocalRedis(temp_dir("jq-test-")).start()
    yield server
    server.stop()
    shutil.rmtree(server.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[LocalCluster]:
    """A Redis/Valkey Cluster this session started: 3 primaries + 1 replica each, on free
    loopback ports (never 6379), slots in 3 even ranges (see LocalCluster.primary_of and
    localcluster.queue_names_on_distinct_primaries). Started on first use (~6 s)."""
    cluster = LocalCluster(temp_dir("jq-cluster-"), n_primaries=3, n_replicas=1).start()
    yield cluster
    cluster.destroy()


@pytest.fixture(scope="session")
def cluster_url(redis_cluster: LocalCluster) -> str:
    """`redis+cluster://` URL of the session's cluster."""
    return redis_cluster.url


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "redis_url" not in metafunc.fixturenames:
        return
    if metafunc.definition.get_closest_marker("cluster") is None or \
            metafunc.definition.get_closest_marker("single_only") is not None:
        return
    metafunc.parametrize("redis_backend", ["redis", "cluster"], indirect=True,
                         scope="session")


@pytest.fixture(scope="session")
def redis_backend(request: pytest.FixtureRequest) -> str:
    """"redis" (the single server) unless a test marked `cluster` asks for "cluster"."""
    return str(getattr(request, "param", "redis"))


@pytest.fixture(scope="session")
def redis_url(redis_backend: str, request: pytest.FixtureRequest) -> str:
    # getfixturevalue: the cluster starts only when a test runs on it.
    if redis_backend == "cluster":
        return str(request.getfixturevalue("cluster_url"))
    server: LocalRedis = request.getfixturevalue("redis_server")
    return server.url


def raw_client(url: str) -> redis.Redis:
    """A plain redis-py client (decoded replies) of `url`: a RedisCluster for a
    redis+cluster:// URL (typed as Redis: it has the same command methods)."""
    if url.startswith("redis+cluster://"):
        hosts = url.split("://", 1)[1].split(",")
        nodes = [ClusterNode(h.rsplit(":", 1)[0], int(h.rsplit(":", 1)[1])) for h in hosts]
        cluster = RedisCluster(startup_nodes=nodes, decode_responses=True)
        return cluster  # type: ignore[return-value]
    return redis.Redis.from_url(url, decode_responses=True)


@pytest.fixture
def settings(redis_url: str) -> Settings:
    """Settings with a key prefix of this test's own, and short timings for quick tests.
    One slot and no prefetch, which most tests reason about (which job runs where and when);
    tests of the defaults (slots from the CPU count, auto prefetch) ask for them."""
    return Settings(redis_url=redis_url, prefix=f"t{uuid.uuid4().hex[:10]}", lease_s=4.0,
                    heartbeat_s=1.0, retry_backoff_s=0.01, retry_backoff_max_s=0.05,
                    grace_s=5.0, block_s=0.2, kill_grace_s=0.5, concurrency=1, prefetch=0)


@pytest.fixture
def r(settings: Settings) -> Iterator[redis.Redis]:
    client = raw_client(settings.redis_url)
    yield client
    client.close()


@pytest.fixture
def queue(settings: Settings) -> Queue:
    return Queue("default", settings=settings)
