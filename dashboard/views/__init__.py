"""One blueprint per area of the dashboard, all nested under the `jobq` blueprint."""

from __future__ import annotations

from .api import bp as api
from .audit import bp as audit
from .jobs import bp as jobs
from .metrics import bp as metrics
from .ops import bp as ops
from .overview import bp as overview
from .queues import bp as queues
from .session import bp as session
from .workers import bp as workers

BLUEPRINTS = (overview, jobs, ops, queues, workers, audit, session, api, metrics)
