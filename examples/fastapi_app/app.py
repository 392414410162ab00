"""A FastAPI app that enqueues jobs from its request handlers and shows their results.

Run it with a Redis (JOBQ_REDIS_URL, or a `jobq up` in the repository root) and an async
worker, from the repository root:

    jobq worker --pool async --concurrency 100 --import examples.fastapi_app.tasks
    uvicorn examples.fastapi_app.app:app

    curl -X POST localhost:8000/count -H 'content-type: application/json' -d '{"text": "a b c"}'
    curl 'localhost:8000/jobs/<id>?wait_s=5'

Handlers await an AsyncQueue (redis.asyncio): the event loop serves other requests while
Redis answers, and concurrent enqueues share one script call (group commit).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

from jobq_core import AsyncQueue, JobFailed, Timeout

from . import tasks


class Text(BaseModel):
    text: str


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # One AsyncQueue for the app's lifetime, made on the server's event loop.
    app.state.queue = AsyncQueue("default")
    yield
    await app.state.queue.aclose()


app = FastAPI(title="jobq example", lifespan=lifespan)


@app.post("/count", status_code=202)
async def count(body: Text) -> dict[str, Any]:
    """Enqueue the async task; the response has the job's id at once."""
    job = await app.state.queue.enqueue(tasks.word_count, body.text)
    return {"id": job.id, "status": job.status}


@app.post("/digest", status_code=202)
async def digest(body: Text) -> dict[str, Any]:
    """The same for a sync task, through Task.aenqueue."""
    job = await tasks.digest.aenqueue(body.text)
    return {"id": job.id, "status": job.status}


@app.get("/jobs/{job_id}")
async def show(job_id: str, wait_s: float = 0.0) -> dict[str, Any]:
    """The job's state and result; with `wait_s`, wait that long for it to end first (no
    polling: the handler awaits the notification the worker sends)."""
    job = await app.state.queue.job(job_id)
    if job is None:
        raise HTTPException(404, f"no job {job_id}")
    if wait_s > 0:
        try:
            await job.result(timeout_s=min(wait_s, 30.0))
        except (JobFailed, Timeout):
            pass  # the state and error below say what happened
        await job.refresh()
    return {"id": job.id, "status": job.status, "result": job.return_value,
            "progress": job.progress, "error": job.error.strip().splitlines()[-1:] or None}
