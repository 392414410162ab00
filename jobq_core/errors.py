"""The one exception tree of jobq: everything the engine raises on purpose is a JobqError."""

from __future__ import annotations


class JobqError(Exception):
    """Root of every error jobq raises on purpose."""


class ConfigError(JobqError, ValueError):
    """A setting or argument has a value jobq cannot use."""


class PayloadError(JobqError, TypeError):
    """Args, kwargs or a result cannot be stored: not JSON, or larger than the cap."""


class ArgumentError(JobqError, TypeError):
    """The arguments of a call do not fit its task's signature (checked at enqueue where
    the producer has the task registered, and by the worker before it runs the job)."""


class UnknownTask(JobqError, LookupError):
    """No task with this name is registered in this process."""


class QueueFull(JobqError):
    """The queue holds `max_length` jobs already; retry later (backpressure)."""


class RedisUnavailable(JobqError, ConnectionError):
    """Redis could not be reached or did not answer within the socket timeout."""


class ReplicationTimeout(JobqError, TimeoutError):
    """Fewer replicas than Settings.wait_replicas confirmed a write within
    wait_replicas_timeout_s. The primary applied it, but a failover before it reaches a
    replica may undo it: it may or may not survive. An enqueue retried with the same job_id
    stores the job at most once (and waits for the replicas again)."""

    def __init__(self, message: str, *, acked: int = 0, wanted: int = 0) -> None:
        self.acked = acked
        self.wanted = wanted
        # An enqueue's: the ids of the jobs it wrote, to retry with (job_id=...).
        self.job_ids: list[str] = []
        super().__init__(message)

    def for_jobs(self, job_ids: list[str]) -> ReplicationTimeout:
        """A copy naming `job_ids` (each caller of a shared write gets its own jobs)."""
        dup = ReplicationTimeout(str(self), acked=self.acked, wanted=self.wanted)
        dup.job_ids = job_ids
        return dup.with_traceback(self.__traceback__)


class LeaseLost(JobqError):
    """The worker no longer holds the lease of a job, so its completion was refused."""


class JobNotFound(JobqError, LookupError):
    """No job with this id exists (never enqueued, or its retention expired)."""


class ScheduleNotFound(JobqError, LookupError):
    """No periodic schedule with this name is stored."""


class InvalidState(JobqError):
    """The job is not in a state that allows the requested action."""


class Timeout(JobqError, TimeoutError):
    """A wait (for a result, or a job's own time limit) ran out."""


class JobFailed(JobqError):
    """The job ended failed, dead or cancelled; carries its status and the remote error text."""

    def __init__(self, job_id: str, status: str, error: str | None) -> None:
        self.job_id = job_id
        self.status = status
        self.error = error or ""
        first = self.error.strip().splitlines()[-1] if self.error.strip() else status
        super().__init__(f"job {job_id} {status}: {first}")


class Fail(JobqError):
    """Raised by a task to fail the job now, without the retries it has left: it goes to
    failed with this message as its reason (for errors another attempt cannot fix)."""


class Retry(JobqError):
    """Raised by a task to ask for another attempt, after `delay_s` when given."""

    def __init__(self, message: str = "retry requested", *, delay_s: float | None = None) -> None:
        self.delay_s = delay_s
        super().__init__(message)
