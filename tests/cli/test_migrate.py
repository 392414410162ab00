"""`jobq migrate [--dry-run]` on an install of the previous version (key layout 1)."""

from __future__ import annotations

import pytest
import redis

from jobq_core import Settings
from jobq_core.inspect import Inspector
from jobq_core.keys import LegacyKeyspace
from jobq_core.layout import migration_lock
from tests.cli.conftest import Jobq
from tests.integration.test_layout import assert_readable, write_old_layout

pytestmark = pytest.mark.cluster  # also on the Redis Cluster (tests/conftest.py)


def test_jobq_migrate_dry_run_then_run_then_nothing_left(settings: Settings, r: redis.Redis,
                                                        jobq: Jobq) -> None:
    session_id = write_old_layout(r, settings)
    secret = str(r.get(LegacyKeyspace(settings.prefix).secret("dashboard")))
    dry = jobq("migrate", "--dry-run", "--json")
    assert dry.code == 0, dry.err
    assert dry.json["dry_run"] and dry.json["moved"] >= 6
    assert Inspector(settings).queues() == []
    done = jobq("migrate")
    assert done.code == 0, done.err
    assert f"{settings.prefix}:queues -> {settings.prefix}:{{@control}}:queues" in done.out
    assert_readable(settings, r, session_id, secret)
    again = jobq("migrate", "--json")
    assert again.code == 0 and again.json["moved"] == 0
    with migration_lock(r, settings.prefix):  # a worker starting and migrating right now
        busy = jobq("migrate")
    assert busy.code == 1 and "another process is migrating" in busy.err
