"""Test fixtures: a private Redis server per session, a fresh key prefix per test."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator

import pytest
import redis

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


@pytest.fixture(scope="session")
def redis_url(redis_server: LocalRedis) -> str:
    return redis_server.url


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
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def queue(settings: Settings) -> Queue:
    return Queue("default", settings=settings)
