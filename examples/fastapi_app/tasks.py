"""The example app's tasks: one async, one sync; an async worker runs both."""

from __future__ import annotations

import asyncio
import hashlib

from jobq_core import current_job, task


@task(timeout_s=30)
async def word_count(text: str) -> dict[str, int]:
    """Count words as an async task would do I/O: awaiting, reporting progress."""
    job = current_job()
    await job.aset_progress(0.5)
    await asyncio.sleep(0.01)  # stands for an HTTP call, a database query ...
    return {"words": len(text.split()), "characters": len(text)}


@task
def digest(text: str) -> str:
    """A sync task: the async pool runs it in a thread, so it never blocks the loop."""
    return hashlib.sha256(text.encode()).hexdigest()
