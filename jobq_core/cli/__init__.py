"""The `jobq` command line (entry point `jobq_core.cli:main`).

`app` holds the group and the shared options; each module adds a family of commands.
"""

from . import errors, info, jobs, logs, migrate, run, schedules, tasks, up
from .app import main

__all__ = ["errors", "info", "jobs", "logs", "main", "migrate", "run", "schedules", "tasks", "up"]
