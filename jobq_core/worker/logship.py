"""Per-job logs of the jobs running in this process: a LogBuffer per attempt (joblog.py),
and a thread that writes what they captured every Settings.log_flush_s, so the job page
can tail a running job. What is left when the job ends goes with its completion or failure
write (Outcome.logs), not in a call of its own: a job that printed nothing costs no round
trip at all.

A job's buffer is made at its first write (joblog.Capture): a job that writes nothing
costs no buffer, no lock and no write. The worker process has one shipper (thread and async
pools: jobs run there); each child of the process pool has its own, writing with the job's
lease token (logs.lua refuses a job that is no longer held).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Protocol

import redis

from ..config import Settings
from ..errors import JobqError
from ..joblog import Capture, LogBuffer
from ..scripts import Scripts

log = logging.getLogger("jobq.worker")
_NOTHING = contextlib.nullcontext()  # capture off (reusable: it keeps no state)


class JobRef(Protocol):
    """What a log needs of a job (a Claimed in the worker, a Call in a process pool child)."""

    @property
    def id(self) -> str: ...
    @property
    def queue(self) -> str: ...
    @property
    def token(self) -> str: ...
    @property
    def fields(self) -> Mapping[str, str]: ...


class LogShipper:
    """Opens, flushes (periodically, in its own thread) and closes the log buffers of the
    jobs running in this process. `connect` gives the client it writes with (called once,
    on the first write)."""

    def __init__(self, settings: Settings, connect: Callable[[], redis.Redis]) -> None:
        self.settings = settings
        self._connect = connect
        self._scripts: Scripts | None = None
        self._lock = threading.Lock()
        # The buffers of running jobs that wrote, by the job's id() (see finish). Changed
        # under _lock; read without it (a dict lookup is atomic). Empty while no running job
        # has written (the common case): a caller may then skip finish() for the job.
        self.live: dict[int, LogBuffer] = {}
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def capture(self, job: JobRef) -> AbstractContextManager[object]:
        """Capture the output of `job` (run it inside `with`, in this thread or task) until
        finish(id(job)) takes it. Nothing is made until the job writes (open_buffer)."""
        if not self.settings.capture_logs:
            return _NOTHING
        return Capture(self, job)

    def open_buffer(self, capture: Capture) -> LogBuffer:
        """The buffer of the job `capture` runs, made at its first write (joblog.Opener)."""
        job: JobRef = capture.ref
        s = self.settings
        with self._lock:
            buf = capture.buf
            if buf is not None:  # another thread of the job wrote first
                return buf
            try:
                attempt = int(job.fields.get("retries") or 0) + 1
            except ValueError:
                attempt = 1
            buf = LogBuffer(s.log_max_lines, s.log_max_bytes, echo=s.log_echo,
                            attempt=attempt, ref=(job.queue, job.id, job.token))
            self.live[id(job)] = buf
            capture.buf = buf
            if self._thread is None and not self._stopping.is_set():
                self._thread = threading.Thread(target=self._run, name="jobq-logs",
                                                daemon=True)
                self._thread.start()
        return buf

    def drop_buffer(self, capture: Capture) -> None:
        with self._lock:
            key = id(capture.ref)
            if self.live.get(key) is capture.buf:
                del self.live[key]

    def finish(self, key: int) -> str:
        """Close the buffer of the job `key` (its id()) and return its rest as the completion
        or failure write takes it ('' when nothing was captured). Call it once the job's
        capture block has ended (not needed while `live` is empty: it would return '')."""
        if key not in self.live:  # it wrote nothing: no buffer was made (the common case)
            return ""
        with self._lock:
            buf = self.live.pop(key, None)
        return buf.close() if buf is not None else ""

    def flush(self) -> None:
        """Write what each running job captured since the last flush (never raises)."""
        with self._lock:
            bufs = list(self.live.values())
        for buf in bufs:
            with buf.flushing:  # close() waits: its rest is written after this text
                if buf.closed:
                    continue
                text = buf.take()
                if text:
                    self._write(buf, text)

    def _write(self, buf: LogBuffer, text: str) -> None:
        queue, job_id, token = buf.ref
        try:
            if self._scripts is None:
                self._scripts = Scripts(self._connect(), self.settings)
            keys = self._scripts.keys
            self._scripts.append_logs(keys.job(queue, job_id), keys.logs(queue, job_id), token,
                                      text)
            buf.stored = True
        except (JobqError, redis.RedisError, OSError) as exc:
            buf.give_back(text)  # bounded by the cap; written with the next flush or the end
            log.debug("writing the log of job %s failed: %s", job_id, exc)

    def _run(self) -> None:
        while not self._stopping.wait(self.settings.log_flush_s):
            try:
                self.flush()
            except Exception:  # a bug of ours must not end the flushing
                log.exception("flushing job logs failed")

    def stop(self) -> None:
        """End the flushing thread (jobs still running keep their rest for their end)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(self.settings.socket_timeout_s + 1)
