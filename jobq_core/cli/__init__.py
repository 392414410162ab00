"""The `jobq` command line (entry point `jobq_core.cli:main`).

`app` holds the group and the shared options; each module adds a family of commands.
"""

from . import info, jobs, run, up
from .app import main

__all__ = ["info", "jobs", "main", "run", "up"]
