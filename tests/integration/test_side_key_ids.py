"""A job id that names another job's side key (its id plus ':settled', ':logs', ...) is
refused at enqueue: 'a:settled' was overwritten when job 'a', kept 0 s, completed (its
outcome is left there for a re-sent completion), and lost."""

from __future__ import annotations

import pytest

from jobq_core import Queue
from jobq_core.errors import ConfigError
from jobq_core.keys import SIDE_KEY_SUFFIXES
from tests import tasks


@pytest.mark.parametrize("suffix", SIDE_KEY_SUFFIXES)
def test_a_job_id_naming_another_jobs_side_key_is_refused(
        queue: Queue, suffix: str) -> None:
    with pytest.raises(ConfigError, match="another job's keys"):
        queue.enqueue_call(tasks.add, args=(2, 2), job_id=f"a{suffix}")
    assert queue.enqueue_call(tasks.add, args=(2, 2), job_id=f"a{suffix}:x").id  # inside: fine

