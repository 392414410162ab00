"""jobq: a Redis-backed background job queue.

    from jobq_core import Queue, task
    @task(queue="default")
    def add(a, b): return a + b
    job = Queue("default").enqueue(add, 1, 2)
    job.result(timeout_s=5)
"""

from .aqueue import AsyncJob, AsyncQueue
from .config import Settings
from .context import current_job
from .dependencies import Group, group
from .errors import (
    ArgumentError,
    ConfigError,
    Fail,
    InvalidState,
    JobFailed,
    JobNotFound,
    JobqError,
    LeaseLost,
    PayloadError,
    QueueFull,
    RedisUnavailable,
    ReplicationTimeout,
    Retry,
    ScheduleNotFound,
    Timeout,
    UnknownTask,
)
from .job import STATES, Job
from .queue import Queue
from .schedule import Schedule
from .scheduler import Scheduler, run_scheduler
from .task import Task, task
from .worker import Worker

__all__ = [
    "STATES",
    "ArgumentError",
    "AsyncJob",
    "AsyncQueue",
    "ConfigError",
    "Fail",
    "Group",
    "InvalidState",
    "Job",
    "JobFailed",
    "JobNotFound",
    "JobqError",
    "LeaseLost",
    "PayloadError",
    "Queue",
    "QueueFull",
    "RedisUnavailable",
    "ReplicationTimeout",
    "Retry",
    "Schedule",
    "ScheduleNotFound",
    "Scheduler",
    "Settings",
    "Task",
    "Timeout",
    "UnknownTask",
    "Worker",
    "current_job",
    "group",
    "run_scheduler",
    "task",
]
__version__ = "0.1.0"
