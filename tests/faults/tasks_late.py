"""A task module deployed "later": the first worker of scenario 11 does not import it."""

from __future__ import annotations

from jobq_core import task

from .tasks import QUEUE, execution


@task(queue=QUEUE, max_retries=0)
def new_feature(key: str) -> str:
    with execution(key):
        pass
    return key
