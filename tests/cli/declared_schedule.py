"""A task module that declares a schedule, for `jobq scheduler -i tests.cli.declared_schedule`."""

from jobq_core.schedule import Schedule
from jobq_core.scheduler import declare

declare(Schedule("every-second", "tests.tasks.add", every_s=1, args=(2, 3)))
