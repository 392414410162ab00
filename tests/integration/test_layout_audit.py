"""Moving an older jobq's audit log (layout.py) while a process of the old version keeps
recording actions into it: an entry it pushes during the move is never dropped, also when
the old log is full (capped at AUDIT_MAX_ENTRIES, as a long-running install's is)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import redis

from jobq_core import Settings
from jobq_core.admin import Admin
from jobq_core.keys import AUDIT_MAX_ENTRIES, Keyspace, LegacyKeyspace
from jobq_core.layout import migrate

pytestmark = pytest.mark.cluster  # also on the Redis Cluster (tests/conftest.py)


class _PushDuringMerge:
    """A client that lets an old-version process record one action right after the merge
    script ran (between the migration's read of the old log and its trim)."""

    def __init__(self, client: redis.Redis, push: Any) -> None:
        self._client, self._push = client, push

    def eval(self, *args: Any) -> Any:
        out = self._client.eval(*args)
        self._push()
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def _fill_old_audit(r: redis.Redis, settings: Settings, n: int) -> None:
    old = LegacyKeyspace(settings.prefix).audit()
    base = int(time.time() * 1000) - n
    entries = [json.dumps({"at_ms": base + i, "actor": "ops", "action": f"old {i}"})
               for i in range(n)]
    for i in range(0, n, 1000):
        r.lpush(old, *entries[i:i + 1000])  # newest at the head, as Admin.record pushed


def test_an_entry_pushed_into_a_full_old_log_during_the_move_is_kept(
        settings: Settings, r: redis.Redis) -> None:
    _fill_old_audit(r, settings, AUDIT_MAX_ENTRIES)
    old_admin = Admin(settings)
    old_admin.keys = LegacyKeyspace(settings.prefix)  # the previous version's key names
    pushed: list[str] = []

    def old_process_records() -> None:
        if not pushed:  # once: the first merge (the audit log's)
            pushed.append("late action")
            old_admin.record("ops", "late action")  # LPUSH + LTRIM to the cap

    migrate(_PushDuringMerge(r, old_process_records), settings.prefix)  # type: ignore[arg-type]
    assert pushed
    migrate(r, settings.prefix, full=False)  # the next sweep takes what was left
    new = Keyspace(settings.prefix).audit()
    actions = [json.loads(e)["action"] for e in r.lrange(new, 0, 4)]
    assert actions[0] == "late action", actions
    assert r.llen(LegacyKeyspace(settings.prefix).audit()) == 0
