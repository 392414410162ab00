"""Schedules the scheduler processes of scenario 13 import (`jobq scheduler --import ...`)."""

from __future__ import annotations

from jobq_core.schedule import Schedule
from jobq_core.scheduler import declare

from .tasks import tick

EVERY_S = 1.0
FAULT_TICK = declare(Schedule("fault-tick", tick, every_s=EVERY_S, args=("fault-tick",)))
