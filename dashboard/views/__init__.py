"""One blueprint per area of the dashboard, all nested under the `jobq` blueprint."""

from __future__ import annotations

from . import (
    api,
    audit,
    errors,
    jobs,
    metrics,
    ops,
    overview,
    queues,
    schedules,
    session,
    tasks,
    workers,
)

BLUEPRINTS = (overview.bp, jobs.bp, errors.bp, ops.bp, queues.bp, schedules.bp, workers.bp,
              tasks.bp, audit.bp, session.bp, api.bp, metrics.bp)
