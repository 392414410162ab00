"""Fixtures of the cluster tests: settings on the session's cluster (tests/conftest.py)."""

from __future__ import annotations

import uuid

import pytest

from jobq_core import Settings


@pytest.fixture
def csettings(cluster_url: str) -> Settings:
    """As tests/conftest.py's `settings` (short timings, one slot, no prefetch), on the
    session's Redis Cluster."""
    return Settings(redis_url=cluster_url, prefix=f"t{uuid.uuid4().hex[:10]}", lease_s=4.0,
                    heartbeat_s=1.0, retry_backoff_s=0.01, retry_backoff_max_s=0.05,
                    grace_s=5.0, block_s=0.2, kill_grace_s=0.5, concurrency=1, prefetch=0)
