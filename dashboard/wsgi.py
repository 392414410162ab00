"""WSGI entry point: `gunicorn -k gthread -w 2 --threads 4 dashboard.wsgi:app`.

Settings come from the environment (JOBQ_*, REDIS_URL). Without JOBQ_DASHBOARD_USER and
JOBQ_DASHBOARD_PASSWORD_HASH the app answers only requests made on this machine.
"""

from __future__ import annotations

from . import create_app

app = create_app()
