"""Reading a job's stored log (per-job logs) for the read API: Inspector.logs."""

from __future__ import annotations

import redis

from .errors import ConfigError
from .joblog import tail
from .keys import Keyspace, stored_job_id
from .records import JobLog


def read_log(client: redis.Redis, keys: Keyspace, queue: str, job_id: str,
             offset: int) -> JobLog | None:
    """The job's captured lines from byte `offset` of its log, as joblog.tail reads them
    (pass a JobLog's next_offset back for only newer lines); None if the job is unknown.
    One round trip, bounded by Settings.log_max_bytes per attempt. Raises ConfigError for a
    negative offset."""
    if not isinstance(offset, int) or offset < 0:
        raise ConfigError(f"offset must be a whole number of bytes, 0 or more, not {offset!r}")
    if not stored_job_id(job_id):
        return None
    pipe = client.pipeline(transaction=False)
    pipe.hget(keys.job(queue, job_id), "state")
    pipe.get(keys.logs(queue, job_id))
    state, stored = pipe.execute(raise_on_error=False)
    if not isinstance(state, str):
        return None
    return JobLog(job_id, queue, state, *tail(stored if isinstance(stored, str) else "", offset))
