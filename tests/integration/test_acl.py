"""The ACL user docs/production.md recommends is enough to run jobq, and limited to its prefix."""

from __future__ import annotations

import uuid
from urllib.parse import quote

import pytest
import redis

from jobq_core import JobqError, Queue, Settings
from jobq_core.inspect import Inspector
from tests import tasks
from tests.helpers import drain

# Keep in sync with docs/production.md.
ACL_RULES = ("on resetkeys ~{prefix}:* resetchannels -@all +@read +@write +@keyspace +@scripting "
             "+@connection +@transaction +@blocking -@dangerous +info +time +client|setname "
             "+config|get")


def test_acl_user_limited_to_the_prefix(settings: Settings, r: redis.Redis) -> None:
    user, password = f"jobq-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex
    r.execute_command("ACL", "SETUSER", user, f">{password}",
                      *ACL_RULES.format(prefix=settings.prefix).split())
    try:
        path = settings.redis_url.removeprefix("unix://")
        url = f"unix://{quote(user)}@{path}?password={password}"
        limited = settings.replace(redis_url=url)
        q = Queue("default", settings=limited)
        job = q.enqueue(tasks.add, 1, 2)
        drain(limited)
        assert job.result(timeout_s=5) == 3
        insp = Inspector(limited)
        assert insp.counts()["default"]["completed"] == 1
        assert insp.server()["version"]
        other = Queue("default", settings=limited.replace(prefix="someoneelse"))
        with pytest.raises(JobqError, match="ACL"):
            other.enqueue(tasks.add, 1, 2)
    finally:
        r.execute_command("ACL", "DELUSER", user)
