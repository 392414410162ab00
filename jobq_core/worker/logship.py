"""Per-job logs of the jobs running in this process: a LogBuffer per attempt (joblog.py),
and a thread that writes what they captured every Settings.log_flush_s, so the job page
can tail a running job. What is left when the job ends goes with its completion or failure
write (Outcome.logs), not in a call of its own: a job that printed nothing costs no round
trip at all.

The worker process has one (thread and async pools: jobs run there); each child of the
process pool has its own, writing with the job's lease token (logs.lua refuses a job that
is no longer held).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator

import redis

from ..config import Settings
from ..errors import JobqError
from ..job import Claimed
from ..joblog import LogBuffer, capturing
from ..scripts import Scripts

log = logging.getLogger("jobq.worker")


class LogShipper:
    """Opens, flushes (periodically, in its own thread) and closes the log buffers of the
    jobs running in this process. `connect` gives the client it writes with (called once,
    on the first write)."""

    def __init__(self, settings: Settings, connect: Callable[[], redis.Redis]) -> None:
        self.settings = settings
        self._connect = connect
        self._scripts: Scripts | None = None
        self._lock = threading.Lock()
        self._live: dict[int, LogBuffer] = {}  # by key (a Claimed's id())
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def open(self, key: int, queue: str, job_id: str, token: str,
             attempt: int) -> LogBuffer | None:
        """A buffer for one attempt of a job (None when capture is off)."""
        s = self.settings
        if not s.capture_logs:
            return None
        buf = LogBuffer(s.log_max_lines, s.log_max_bytes, echo=s.log_echo, attempt=attempt,
                        ref=(queue, job_id, token))
        with self._lock:
            self._live[key] = buf
            if self._thread is None and not self._stopping.is_set():
                self._thread = threading.Thread(target=self._run, name="jobq-logs",
                                                daemon=True)
                self._thread.start()
        return buf

    @contextlib.contextmanager
    def capture(self, job: Claimed) -> Iterator[None]:
        """Capture the output of `job` (run inside the block, in this thread or task) until
        finish(job) takes it."""
        buf = self.open(id(job), job.queue, job.id, job.token, job.int_field("retries", 0) + 1)
        with capturing(buf):
            yield

    def finish(self, key: int) -> str:
        """Close the buffer opened under `key` and return its rest as the completion or
        failure write takes it ('' when nothing was captured, or none was opened)."""
        with self._lock:
            buf = self._live.pop(key, None)
        return buf.close() if buf is not None else ""

    def flush(self) -> None:
        """Write what each running job captured since the last flush (never raises)."""
        with self._lock:
            bufs = list(self._live.values())
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
